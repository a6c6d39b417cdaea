//! cargo-fuzz target `initiator_ops`: see `revtun_core::fuzzing::initiator_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| revtun_core::fuzzing::initiator_ops(data));
