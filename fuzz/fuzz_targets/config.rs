//! cargo-fuzz target `config`: see `revtun_core::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::config(data));
