//! cargo-fuzz target `keepalive`: see `revtun_core::fuzzing::keepalive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::keepalive(data));
