//! The measurement groups of issue #7, each side by side with a direct connection where one applies.

pub mod delay;
pub mod handshakes;
pub mod latency;
pub mod memory;
pub mod procs;
pub mod restore;
pub mod smol;
pub mod throughput;
pub mod tls;

use std::path::Path;

use crate::roles::RuntimeKind;

/// The table group of a measurement that runs on several stacks: `plain` on tokio without TLS, else
/// `tls` or `smol`.
fn group_name(plain: &'static str, runtime: RuntimeKind, tls_dir: Option<&Path>) -> &'static str {
    match (runtime, tls_dir) {
        (_, Some(_)) => "tls",
        (RuntimeKind::Tokio, None) => plain,
        (RuntimeKind::Smol, None) => "smol",
    }
}

/// The stack's words at the start of a row's metric: the runtime, `+tls` with tunnel TLS.
fn stack_label(runtime: RuntimeKind, tls_dir: Option<&Path>) -> String {
    match tls_dir {
        Some(_) => format!("{}+tls", runtime.name()),
        None => runtime.name().to_owned(),
    }
}
