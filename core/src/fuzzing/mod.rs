//! Bodies of the cargo-fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//!
//! Each function takes the raw fuzzer input, must never panic on any input, and asserts the invariants of
//! its module. `fuzz/fuzz_targets/*.rs` are one-line wrappers around them, and `tests/` replays the committed
//! corpus `fuzz/corpus/<target>/` through them on stable Rust.

mod address;
#[cfg(feature = "config")]
mod config;
mod handshake;
mod initiator_ops;
mod keepalive;
mod responder_ops;

pub use address::address;
#[cfg(feature = "config")]
pub use config::config;
pub use handshake::{handshake_controls, handshake_request, handshake_response};
pub use initiator_ops::{InitiatorOpsSummary, initiator_ops, initiator_ops_summary};
pub use keepalive::keepalive;
pub use responder_ops::responder_ops;
