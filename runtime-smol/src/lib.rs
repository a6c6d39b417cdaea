//! # revtun-smol
//!
//! Drives [`revtun_core`]'s reverse-tunnel state machines on async-io (smol, async-executor, and programs
//! that already run on async-io). The driver lands with the runtime issue; today this crate re-exports the
//! core so that dependents can already name it.

pub use revtun_core as core;
