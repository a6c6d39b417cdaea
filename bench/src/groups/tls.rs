//! Group `tls` (issue #7, item 6 "with TLS on"): one-stream throughput, CPU per GiB and connect + echo
//! latency with tunnel mutual TLS (rustls, ring) between initiator and responder, each beside its own
//! direct (plaintext) baseline. Certificates are made at run time ([`CertDir`]).

use crate::RunArgs;
use crate::certs::CertDir;
use crate::groups::{latency, throughput};
use crate::report::Report;
use crate::roles::RuntimeKind;

/// Runs the group.
///
/// # Errors
/// The certificates could not be made, or a role or a run failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    let certs = CertDir::write()?;
    throughput::measure(args, report, RuntimeKind::Tokio, Some(certs.path()), &[1])?;
    latency::measure(args, report, RuntimeKind::Tokio, Some(certs.path()))
}
