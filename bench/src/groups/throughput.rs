//! Group `throughput` (issue #7, items 1 and 8): one stream and 8 parallel streams to a sink, through the
//! front door and a claimed tunnel vs straight to the sink; and CPU-seconds per GiB relayed by the
//! responder and initiator processes during the tunnelled runs. Direct and tunnelled runs alternate for
//! a few rounds and each side's median is reported, so machine noise hits both alike.

use std::path::Path;
use std::time::Duration;

use crate::RunArgs;
use crate::client::{Sent, send_parallel};
use crate::groups::procs::{front_door_pair, harness_runtime};
use crate::report::{Report, Row, Target};
use crate::roles::RuntimeKind;
use crate::services::{Service, ServiceKind};
use crate::sys::cpu_seconds;

/// Runs the group on tokio.
///
/// # Errors
/// A role or a transfer failed.
pub fn run(args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    measure(args, report, RuntimeKind::Tokio, None, &[1, 8])
}

/// Throughput and CPU/GiB with the library on `runtime`, for each number of parallel `streams`.
///
/// # Errors
/// A role or a transfer failed.
pub fn measure(
    args: &RunArgs,
    report: &mut Report,
    runtime: RuntimeKind,
    tls_dir: Option<&Path>,
    streams: &[usize],
) -> anyhow::Result<()> {
    let (rounds, duration) = if args.quick {
        (1, Duration::from_millis(300))
    } else {
        (3, Duration::from_secs(1))
    };
    let rt = harness_runtime()?;
    let sink = rt.block_on(Service::start(ServiceKind::Sink))?;
    let (responder, initiator) = front_door_pair(runtime, tls_dir, 8, sink.addr())?;
    let front = responder.front()?;
    let group = super::group_name("throughput", runtime, tls_dir);
    let cpu = |pid| cpu_seconds(pid).unwrap_or(0.0);
    for &n in streams {
        let (mut direct, mut revtun) = (Vec::new(), Vec::new());
        let mut used = (0.0, 0.0);
        let mut bytes = 0u64;
        for _ in 0..rounds {
            direct.push(mib_per_s(rt.block_on(send_parallel(
                sink.addr(),
                n,
                duration,
            ))?));
            let before = (cpu(responder.child.pid()), cpu(initiator.child.pid()));
            let sent = rt.block_on(send_parallel(front, n, duration))?;
            used.0 += cpu(responder.child.pid()) - before.0;
            used.1 += cpu(initiator.child.pid()) - before.1;
            bytes += sent.bytes;
            revtun.push(mib_per_s(sent));
        }
        let streams = if n == 1 {
            "1 stream".to_owned()
        } else {
            format!("{n} streams")
        };
        report.push(Row::new(
            group,
            format!("{} {streams}", super::stack_label(runtime, tls_dir)),
            "MiB/s",
            median(&mut revtun),
            Some(median(&mut direct)),
            // The targets are for plaintext tunnels; with TLS the figures are for information.
            (n == 1 && tls_dir.is_none()).then_some(Target::RatioAtLeast(0.30)),
        ));
        #[allow(clippy::cast_precision_loss)]
        let gib = bytes as f64 / f64::from(1u32 << 30);
        eprintln!(
            "    CPU during {streams}: responder {:.2} s, initiator {:.2} s, {gib:.2} GiB",
            used.0, used.1
        );
        report.push(Row::new(
            "cpu",
            format!(
                "{} {streams}: responder+initiator",
                super::stack_label(runtime, tls_dir)
            ),
            "CPU-s/GiB",
            (used.0 + used.1) / gib,
            None,
            None,
        ));
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn mib_per_s(sent: Sent) -> f64 {
    sent.bytes as f64 / f64::from(1u32 << 20) / sent.elapsed.as_secs_f64()
}

/// The middle value (the upper one of an even count); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
