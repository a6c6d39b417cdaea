//! cargo-fuzz target `handshake_request`: see `revtun_core::fuzzing::handshake_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::handshake_request(data));
