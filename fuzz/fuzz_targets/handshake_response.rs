//! cargo-fuzz target `handshake_response`: see `revtun_core::fuzzing::handshake_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::handshake_response(data));
