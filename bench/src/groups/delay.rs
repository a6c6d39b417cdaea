//! Group `delay` (issue #7, item 7): the initiator and responder 20 ms apart (one way; a 40 ms round
//! trip) through a [`DelayRelay`] that the tunnels cross. New-connection latency (connect + 1-byte echo +
//! close) through the front door and a pre-opened tunnel vs a direct connection that crosses the same
//! kind of relay to the echo service, in claim-marker mode and in Envoy mode; and, in claim-marker mode,
//! a burst of simultaneous new connections with pool `count` 8.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::RunArgs;
use crate::client::{echo_once, echo_pairs};
use crate::delay_relay::DelayRelay;
use crate::groups::procs::{InitiatorProc, ResponderProc, ResponderSpec, harness_runtime};
use crate::percentile::Percentiles;
use crate::report::{Report, Row, Target};
use crate::roles::RuntimeKind;
use crate::services::{Service, ServiceKind};

/// One-way delay between initiator and responder.
pub const ONE_WAY: Duration = Duration::from_millis(20);
/// Idle tunnels per host.
const COUNT: u32 = 8;

/// A responder, an initiator `ONE_WAY` from it and the relay between them.
struct Apart {
    responder: ResponderProc,
    _relay: DelayRelay,
    _initiator: InitiatorProc,
}

impl Apart {
    /// Every tunnel idle again (the initiator replaces claimed ones through the relay).
    fn refill(&mut self) -> anyhow::Result<()> {
        self.responder
            .wait_idle(
                u64::from(COUNT),
                Duration::from_secs(10),
                Duration::from_millis(20),
            )
            .map(drop)
    }
}

/// Runs the group.
///
/// # Errors
/// A role or the relay failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    let (runs, burst) = if args.quick { (10, 20) } else { (50, 100) };
    let rt = harness_runtime()?;
    let echo = rt.block_on(Service::start(ServiceKind::Echo))?;
    let direct_relay = rt.block_on(DelayRelay::start(echo.addr(), ONE_WAY))?;

    for (mode, extra) in [
        ("claim marker", &[][..]),
        ("Envoy mode", &["--no-claim-marker"][..]),
    ] {
        let mut apart = start(&rt, echo.addr(), extra)?;
        let front = apart.responder.front()?;
        let (mut direct, mut revtun) = rt.block_on(echo_pairs(direct_relay.addr(), front, runs))?;
        let (Some(direct), Some(revtun)) =
            (Percentiles::of(&mut direct), Percentiles::of(&mut revtun))
        else {
            anyhow::bail!("no samples");
        };
        report.push(Row::new(
            "delay",
            format!("p50 new connect+echo, 20 ms apart, {mode} ({runs} runs)"),
            "ms",
            revtun.p50 / 1e3,
            Some(direct.p50 / 1e3),
            Some(Target::RatioAtMost(0.55)),
        ));
        if mode != "claim marker" {
            continue;
        }
        apart.refill()?;
        let direct = rt.block_on(burst_of(direct_relay.addr(), burst));
        let revtun = rt.block_on(burst_of(front, burst));
        report.push(Row::new(
            "delay",
            format!("burst of {burst}: all answered (pool {COUNT})"),
            "ms",
            revtun.0.as_secs_f64() * 1e3,
            Some(direct.0.as_secs_f64() * 1e3),
            None,
        ));
        #[allow(clippy::cast_precision_loss)]
        report.push(Row::new(
            "delay",
            format!("burst of {burst}: errors"),
            "count",
            revtun.1 as f64,
            Some(direct.1 as f64),
            Some(Target::AtMost(0.0)),
        ));
    }
    Ok(())
}

/// A responder with a front door and an initiator (`extra` role arguments) whose tunnels cross a
/// [`DelayRelay`], every tunnel idle.
fn start(
    rt: &tokio::runtime::Runtime,
    service: SocketAddr,
    extra: &[&str],
) -> anyhow::Result<Apart> {
    let responder = ResponderProc::spawn(&ResponderSpec::with_front_door(RuntimeKind::Tokio))?;
    let relay = rt.block_on(DelayRelay::start(responder.handshake[0], ONE_WAY))?;
    let mut initiator = InitiatorProc::spawn_with(
        RuntimeKind::Tokio,
        &[relay.addr()],
        COUNT,
        Some(service),
        extra,
    )?;
    initiator.go()?;
    let mut apart = Apart {
        responder,
        _relay: relay,
        _initiator: initiator,
    };
    apart.refill()?;
    Ok(apart)
}

/// `n` simultaneous [`echo_once`] to `addr`: time until the last ends, and how many failed.
async fn burst_of(addr: SocketAddr, n: usize) -> (Duration, usize) {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(echo_once(addr));
    }
    let mut errors = 0;
    while let Some(joined) = set.join_next().await {
        if !matches!(joined, Ok(Ok(_))) {
            errors += 1;
        }
    }
    (start.elapsed(), errors)
}
