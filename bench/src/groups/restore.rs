//! Group `restore` (issue #7, item 5): the responder is killed (SIGKILL) and restarted on the same ports
//! within a fraction of a second; the time from its restart until every initiator pool is full again
//! (4 hosts × `count` 8), with the initiator's default backoff (first retry after 1 s + up to 15 %
//! jitter), as a user would run it.

use std::time::{Duration, Instant};

use crate::RunArgs;
use crate::groups::procs::{InitiatorProc, ResponderProc, ResponderSpec};
use crate::report::{Report, Row, Target};
use crate::roles::RuntimeKind;

/// Handshake ports (hosts).
const HOSTS: usize = 4;
/// Idle tunnels per host.
const COUNT: u32 = 8;
/// How long the responder stays down.
const DOWN: Duration = Duration::from_millis(300);
/// Target of issue #7.
const TARGET_SECS: f64 = 2.0;

/// Runs the group.
///
/// # Errors
/// A role failed or the pool did not come back within 30 s.
pub fn run(_args: &RunArgs, report: &mut Report) -> anyhow::Result<()> {
    let full = (HOSTS as u64) * u64::from(COUNT);
    let poll = Duration::from_millis(10);
    let mut responder = ResponderProc::spawn(&ResponderSpec::ports(HOSTS))?;
    let mut initiator =
        InitiatorProc::spawn(RuntimeKind::Tokio, &responder.handshake, COUNT, None)?;
    initiator.go()?;
    responder.wait_idle(full, Duration::from_secs(10), poll)?;

    let addrs = responder.handshake.clone();
    let killed = Instant::now();
    responder.child.kill();
    std::thread::sleep(DOWN);
    let mut responder = ResponderProc::spawn(&ResponderSpec {
        bind: addrs,
        ..ResponderSpec::ports(HOSTS)
    })?;
    let down = killed.elapsed();
    let restored = responder.wait_idle(full, Duration::from_secs(30), poll)?;
    eprintln!(
        "    down {:.0} ms; {full} tunnels idle again {:.0} ms after the restart",
        down.as_secs_f64() * 1e3,
        restored.as_secs_f64() * 1e3
    );
    report.push(Row::new(
        "restore",
        format!("pools full after restart ({HOSTS}×{COUNT})"),
        "s",
        restored.as_secs_f64(),
        None,
        Some(Target::AtMost(TARGET_SECS)),
    ));
    report.push(Row::new(
        "restore",
        "responder down (kill → listening)",
        "s",
        down.as_secs_f64(),
        None,
        None,
    ));
    drop(initiator);
    Ok(())
}
