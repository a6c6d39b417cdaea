//! Group `smol` (issue #7, item 6): throughput (1 stream) and connect + echo latency with the responder
//! and initiator on `revtun-smol`, each beside its own direct baseline.

use crate::RunArgs;
use crate::groups::{latency, throughput};
use crate::report::Report;
use crate::roles::RuntimeKind;

/// Runs the group.
///
/// # Errors
/// A role or a run failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    throughput::measure(args, report, RuntimeKind::Smol, None, &[1])?;
    latency::measure(args, report, RuntimeKind::Smol, None)
}
