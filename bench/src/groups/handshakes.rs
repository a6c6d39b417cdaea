//! Group `handshakes` (issue #7, item 4): handshakes one responder accepts per second (its
//! `reverse_tunnel.handshake.accepted` counter over the load's duration), from a load generator in its
//! own process that closes each tunnel after its `200`. Both pending-handshake caps are raised to 4096:
//! all load comes from 127.0.0.1, and the per-IP default (64) would otherwise drop handshakes as a flood.

use std::time::Duration;

use anyhow::Context as _;

use crate::RunArgs;
use crate::child::Child;
use crate::groups::procs::{ResponderProc, ResponderSpec, START_WITHIN, numbers};
use crate::report::{Report, Row, Target};
use crate::roles::join_addrs;
use crate::sys::cpu_seconds;

/// Handshake ports the load spreads over (more 4-tuples for a load that closes first).
const PORTS: usize = 4;
/// Handshakes in flight.
const CONCURRENCY: usize = 128;
/// Target of issue #7 on 2 cores.
const TARGET_PER_S: f64 = 10_000.0;

/// Runs the group.
///
/// # Errors
/// A role failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    let duration_ms: u64 = if args.quick { 500 } else { 3000 };
    let mut responder = ResponderProc::spawn(&ResponderSpec {
        pending_cap: Some(4096),
        ..ResponderSpec::ports(PORTS)
    })?;
    let load_args = [
        "--targets".to_owned(),
        join_addrs(&responder.handshake),
        "--concurrency".to_owned(),
        CONCURRENCY.to_string(),
        "--duration-ms".to_owned(),
        duration_ms.to_string(),
    ];
    let (mut load, _) = Child::spawn("handshake-load", &load_args, START_WITHIN)?;
    let accepted = |r: &mut ResponderProc| -> anyhow::Result<u64> {
        r.stats()?.get("accepted").copied().context("no accepted")
    };
    let before = accepted(&mut responder)?;
    let cpu_before = cpu_seconds(responder.child.pid()).unwrap_or(0.0);
    let done = load.ask(
        "GO",
        Duration::from_millis(duration_ms) + Duration::from_secs(30),
    )?;
    let cpu = cpu_seconds(responder.child.pid()).unwrap_or(0.0) - cpu_before;
    let after = accepted(&mut responder)?;
    let load_figures = numbers::<f64>(&done)?;
    let secs = load_figures.get("secs").copied().context("no secs")?;
    let figure = |k: &str| load_figures.get(k).copied().unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss)]
    let rate = (after - before) as f64 / secs;
    eprintln!(
        "    {} accepted in {secs:.2} s; load: ok {}, errors {}",
        after - before,
        figure("ok"),
        figure("errors")
    );
    report.push(Row::new(
        "handshakes",
        format!("accepted/s ({CONCURRENCY} in flight)"),
        "1/s",
        rate,
        None,
        Some(Target::AtLeast(TARGET_PER_S)),
    ));
    report.push(Row::new(
        "handshakes",
        "responder CPU",
        "cores",
        cpu / secs,
        None,
        None,
    ));
    #[allow(clippy::cast_precision_loss)]
    report.push(Row::new(
        "handshakes",
        "responder CPU per handshake",
        "µs",
        cpu * 1e6 / (after - before).max(1) as f64,
        None,
        None,
    ));
    report.push(Row::new(
        "handshakes",
        "load generator CPU",
        "cores",
        figure("cpu") / secs,
        None,
        None,
    ));
    report.push(Row::new(
        "handshakes",
        "load generator errors",
        "count",
        figure("errors"),
        None,
        None,
    ));
    Ok(())
}
