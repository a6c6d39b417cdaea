//! Group `latency` (issue #7, item 2): sequential connect + 1-byte echo + close through the responder's
//! front door (a claimed tunnel, relayed to an echo service) vs straight to the echo service; p50, p90,
//! p99. Direct and tunnelled runs alternate, so machine noise hits both alike. The pool keeps 16 idle tunnels, so a claim always finds one (the initiator replaces a claimed
//! tunnel at once).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use crate::RunArgs;
use crate::child::Child;
use crate::client::echo_pairs;
use crate::groups::procs::{START_WITHIN, front_door_pair, harness_runtime};
use crate::percentile::Percentiles;
use crate::report::{Report, Row, Target};
use crate::roles::RuntimeKind;
use crate::services::{Service, ServiceKind};

/// Idle tunnels kept for the latency runs.
const POOL: u32 = 16;
/// Unmeasured runs first (connection set-up paths warm, pool refilled).
const WARM_UP: usize = 20;

/// Runs the group on tokio.
///
/// # Errors
/// A role or a run failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    measure(args, report, RuntimeKind::Tokio, None)
}

/// Connect + echo percentiles with the library on `runtime`.
///
/// # Errors
/// A role or a run failed.
pub fn measure(
    args: &RunArgs,
    report: &mut Report,
    runtime: RuntimeKind,
    tls_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let runs = if args.quick { 100 } else { 1000 };
    let rt = harness_runtime()?;
    let echo = rt.block_on(Service::start(ServiceKind::Echo))?;
    let (responder, initiator) = front_door_pair(runtime, tls_dir, POOL, echo.addr())?;
    let front = responder.front()?;
    rt.block_on(echo_pairs(echo.addr(), front, WARM_UP))?;
    let (mut direct, mut revtun) = rt.block_on(echo_pairs(echo.addr(), front, runs))?;
    let (Some(direct), Some(revtun)) = (Percentiles::of(&mut direct), Percentiles::of(&mut revtun))
    else {
        anyhow::bail!("no samples");
    };
    let group = super::group_name("latency", runtime, tls_dir);
    let name = super::stack_label(runtime, tls_dir);
    report.push(Row::new(
        group,
        format!("{name} p50 connect+echo ({runs} runs)"),
        "µs",
        revtun.p50,
        Some(direct.p50),
        // The targets are for plaintext tunnels; with TLS the figures are for information.
        tls_dir.is_none().then_some(Target::RatioAtMost(1.6)),
    ));
    report.push(Row::new(
        group,
        format!("{name} p90 connect+echo"),
        "µs",
        revtun.p90,
        Some(direct.p90),
        None,
    ));
    report.push(Row::new(
        group,
        format!("{name} p99 connect+echo"),
        "µs",
        revtun.p99,
        Some(direct.p99),
        None,
    ));
    // The role processes stop before the next measurement.
    drop((responder, initiator));
    if runtime == RuntimeKind::Tokio && tls_dir.is_none() {
        relay_chain_floor(&rt, echo.addr(), runs, report)?;
    }
    Ok(())
}

/// The floor of any tunnel whose bytes cross two relaying processes: connect + echo through two
/// [`plain-relay`](crate::roles::plain_relay) processes in a chain (client → relay → relay → echo) vs
/// direct, in the same run.
fn relay_chain_floor(
    rt: &tokio::runtime::Runtime,
    echo: SocketAddr,
    runs: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let relay = |upstream: SocketAddr| -> anyhow::Result<(Child, SocketAddr)> {
        let (child, ready) = Child::spawn(
            "plain-relay",
            &["--upstream".to_owned(), upstream.to_string()],
            START_WITHIN,
        )?;
        let addr = ready
            .strip_prefix("addr=")
            .and_then(|a| a.parse().ok())
            .context("plain-relay: no address")?;
        Ok((child, addr))
    };
    let (_inner, inner_addr) = relay(echo)?;
    let (_outer, outer_addr) = relay(inner_addr)?;
    rt.block_on(echo_pairs(echo, outer_addr, WARM_UP))?;
    let (mut direct, mut chained) = rt.block_on(echo_pairs(echo, outer_addr, runs))?;
    let (Some(direct), Some(chained)) =
        (Percentiles::of(&mut direct), Percentiles::of(&mut chained))
    else {
        anyhow::bail!("no samples");
    };
    report.push(Row::new(
        "latency",
        "floor: p50 through 2 plain TCP relays in 2 processes",
        "µs",
        chained.p50,
        Some(direct.p50),
        None,
    ));
    Ok(())
}
