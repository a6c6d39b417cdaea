//! cargo-fuzz target `address`: see `revtun_core::fuzzing::address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::address(data));
