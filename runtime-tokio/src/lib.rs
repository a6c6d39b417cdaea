//! # revtun-tokio
//!
//! Drives [`revtun_core`]'s reverse-tunnel state machines on tokio. The driver, the `revtun` program and
//! its admin endpoint land with the runtime issue; today this crate re-exports the core so that dependents
//! can already name it.

pub use revtun_core as core;
