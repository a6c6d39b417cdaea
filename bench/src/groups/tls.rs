//! Group `tls` (issue #7, item 6 "with TLS on"): NOT YET AVAILABLE. The roles take `--tls`
//! ([`crate::roles::Common::tls`]) and refuse it until the driver's TLS options are merged; then this
//! group runs [`throughput::measure`](super::throughput::measure) and
//! [`latency::measure`](super::latency::measure) with `--tls` passed to both roles.

use crate::RunArgs;
use crate::report::Report;

/// Reports that the TLS variant cannot be measured yet (rather than measuring plaintext under its name).
///
/// # Errors
/// Always, until the driver has TLS options.
pub fn run(_args: &RunArgs, _report: &mut Report) -> anyhow::Result<()> {
    anyhow::bail!(
        "not yet available: the roles' --tls switch waits for the driver's TLS options (ListenerOptions / ResponderOptions)"
    )
}
