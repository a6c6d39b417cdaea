//! cargo-fuzz target `responder_ops`: see `revtun_core::fuzzing::responder_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::responder_ops(data));
