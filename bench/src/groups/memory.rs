//! Group `memory` (issue #7, item 3): resident memory of the responder and initiator processes with N
//! idle tunnels (defaults: 2 s pings), per tunnel: `(RSS with N idle − RSS after start-up) / N`. The
//! responder listens on 10 ports and the initiator keeps `N / 10` tunnels per host (`count` ≤ 1024 per
//! host); each runs in its own process with the open-file limit raised to its hard limit.

use std::time::Duration;

use anyhow::Context as _;

use crate::RunArgs;
use crate::groups::procs::{InitiatorProc, ResponderProc, ResponderSpec};
use crate::report::{Report, Row, Target};
use crate::roles::RuntimeKind;
use crate::sys::rss_kib;

/// Handshake ports (hosts of the initiator's target cluster).
const PORTS: usize = 10;
/// Time the pool must stay full before RSS is read: more than one ping interval (2 s + 15 % jitter),
/// so every tunnel has pinged at least once.
const SETTLE: Duration = Duration::from_millis(2500);
/// Target of issue #7: at most this many KiB per idle tunnel at 10,000 tunnels.
const KIB_PER_TUNNEL_AT_10K: f64 = 8.0;

/// Runs the group.
///
/// # Errors
/// A role failed or the pool did not fill.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    let sizes: &[u64] = if args.quick {
        &[1_000]
    } else {
        &[1_000, 10_000]
    };
    for &n in sizes {
        measure(n, report)?;
    }
    Ok(())
}

fn measure(n: u64, report: &mut Report) -> anyhow::Result<()> {
    let per_host = u32::try_from(n / PORTS as u64)?;
    let mut responder = ResponderProc::spawn(&ResponderSpec {
        // No pending-handshake cap in the way of one initiator dialling everything at once.
        pending_cap: Some(20_000),
        ..ResponderSpec::ports(PORTS)
    })?;
    let mut initiator =
        InitiatorProc::spawn(RuntimeKind::Tokio, &responder.handshake, per_host, None)?;
    let rss = |pid| rss_kib(pid).context("no VmRSS in /proc");
    let base = (rss(responder.child.pid())?, rss(initiator.child.pid())?);
    initiator.go()?;
    let filled = responder.wait_idle(n, Duration::from_secs(90), Duration::from_millis(100))?;
    std::thread::sleep(SETTLE);
    responder.wait_idle(n, Duration::from_secs(10), Duration::from_millis(100))?;
    let full = (rss(responder.child.pid())?, rss(initiator.child.pid())?);
    eprintln!(
        "    {n} tunnels idle after {filled:?}; RSS KiB responder {} → {}, initiator {} → {}",
        base.0, full.0, base.1, full.1
    );
    let target = (n >= 10_000).then_some(Target::AtMost(KIB_PER_TUNNEL_AT_10K));
    for (side, (before, after)) in [
        ("responder", (base.0, full.0)),
        ("initiator", (base.1, full.1)),
    ] {
        #[allow(clippy::cast_precision_loss)]
        let per_tunnel = after.saturating_sub(before) as f64 / n as f64;
        report.push(Row::new(
            "memory",
            format!("RSS/tunnel {side}, {n} idle"),
            "KiB",
            per_tunnel,
            None,
            target,
        ));
    }
    Ok(())
}
