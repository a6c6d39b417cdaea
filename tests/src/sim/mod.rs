//! A deterministic network simulation that proves the [initiator](revtun_core::initiator) and
//! [responder](revtun_core::responder) state machines under faults (issue 3, "The simulation").
//!
//! Everything runs in simulated time from one `u64` seed: no sockets, no sleeping, no threads. The only
//! real clock reading is one base [`Instant`](std::time::Instant) per process ([`clock::base`]); every
//! decision depends on offsets from it, so a seed replays identically in any process
//! (`REVTUN_SIM_SEED=<n> cargo test -p revtun-tests --test sim`).
//!
//! # The world
//! - 1–3 **responders** at `10.0.0.N:9000`, each a [`Responder`](revtun_core::responder::Responder) with
//!   claim-marker support on or off, sometimes tenant isolation, sometimes a per-node cap with
//!   `retry-after`.
//! - 1–4 **initiators** with distinct node ids (cluster ids shared, so cluster claims round-robin), 1–2
//!   target clusters each resolving to some of the responders, `count` 1–4, offering the claim marker or
//!   not. So both data modes (Envoy and claim-marker) occur, also side by side. A quarter of the runs use
//!   upgrade mode (`101`) with `POST` and a custom path on both sides; in a quarter, 5 % of the dials of
//!   the faulty phase fail locally (`cannot_connect`).
//! - Short protocol timers ([`scenario::Timing`]): ping interval 100–500 ms, failure threshold 1–3,
//!   connect, handshake and claim timeouts 1 s, idle timeout 3 × 1.15 × ping interval + 150 ms, backoff
//!   cap 2–4 s. A run covers many keepalive and backoff cycles in a few simulated seconds.
//! - [`net`]: simulated TCP pipes with seeded latency (1 ms up to `ping_interval / 5`), in-order delivery,
//!   random chunking and coalescing (byte by byte included), FIN after in-flight bytes, resets.
//!   A dial becomes a pipe after the latency if the responder is up (`handle_accepted` on the responder,
//!   `handle_connected` on the initiator), is refused if it is down, and waits while partitioned (the
//!   initiator's own connect timeout gives up on it).
//! - [`faults`]: a seeded schedule of 0–6 faults within the first 0.3–3 s (connection resets, responder
//!   restarts with < 1 s downtime, partitions of an initiator from a responder that heal, a reader that
//!   stalls, byte-by-byte delivery, and host-set changes: `set_hosts` with other responders or none,
//!   undone when the fault heals), then a quiet tail.
//! - [`apps`]: an echo service behind every initiator (it takes a tunnel on `Claimed`) and front-door
//!   clients on every responder (random claims for nodes, clusters and unknown ids, in the right tenant or
//!   not; on `HandedOut` they write a random payload, read the echo, check it and close).
//!
//! # The run ([`world`])
//! 1. **Faulty phase** until the last fault healed: faults and random claims (some cancelled).
//! 2. **Restoring**: no more claims; every initiator must have `count` idle tunnels per host (all hosts
//!    are reachable again) within [`restore_bound`] of the moment the last fault healed.
//! 3. **Settling**: stale connections finish and pending claims end, until every tunnel is whole on both
//!    sides ([`invariants::quiescent`]).
//! 4. **Steady**: one idle timeout (plus 100 ms) on a healthy network with full pools and no
//!    claims, during which no machine may emit any event or command (no tunnel dies or is replaced: no
//!    false positive of either side's liveness checks).
//! 5. **Final**: each initiator's node (or cluster) is claimed 1–2 times in its tenant; each claim must be
//!    handed out and its data leg must complete; then the pools must be full again and quiescent.
//!
//! # Invariants (checked after every step; a violation fails the run with its seed)
//! Statistics snapshots are compared after every step for each machine that did anything in it that can
//! move a statistic, and for all machines at every phase change ([`invariants::check_all`]); everything
//! else is checked for all machines after every step, or where it happens.
//! - no panic (the test harness catches one and names the seed);
//! - every machine's `counts().is_balanced()`, and `counts()` equals the simulation's own view;
//! - every gauge in `stats()` equals the value recomputed from the simulation's view of the connections
//!   (initiator: per host and cluster `connecting`, `connected`, `idle`, `in_use`, `backoff`,
//!   `recovered`, `unknown`; responder: `nodes.<n>`, `clusters.<c>` (tenant-scoped under isolation),
//!   `total_*`, `claims.waiting`), every counter the count recomputed from the event log (`failed`,
//!   `cannot_connect`, `handshake_failed.<reason>`, `reverse_tunnel.handshake.*`, `claims.*`), the
//!   machine lists no other name, and counters never decrease (a removed host's names stay while its
//!   in-use tunnels finish, then its counters fold into its cluster's and its names go, as the initiator
//!   documents);
//! - `host_counts()` (initiator), `nodes()` and `pending_handshakes()` (responder) equal the view;
//! - initiator pools are topped up at once and never beyond: idle + establishing ≤ `count`, and `= count`
//!   whenever the pool is not backing off (a claimed, lost or failed tunnel is replaced in the same call);
//! - a responder sends only its handshake response, then `RPING`s, then (claim-marker mode) one `RDATA`
//!   and nothing after it; a lost tunnel's `failed_attempt` is true exactly when its first `RPING` had not
//!   arrived;
//! - every byte written into a claimed tunnel arrives once, in order, unmodified, on the other side
//!   (claim-marker mode with arbitrary payloads, also ones starting with `RPING`/`RDATA`; Envoy mode with
//!   payloads that do not start with a prefix of `RPING`);
//! - a claim is answered (hand-out or expiry) within `claim_timeout` + [`world::CLAIM_SLACK`]; a hand-out
//!   names a tunnel of the claimed node or cluster, registered with the identity the initiator really
//!   has, and under isolation of the claim's tenant;
//! - commands and transmits only name connections the machine holds, in a phase where they make sense
//!   (no transmit or close on a handed-out tunnel, no transmit before connected); a connection a machine
//!   ends is closed by its command or was reported closed; `handle_closed` always ends the connection;
//! - after `handle_timeout(now)` `poll_timeout` is later than `now` (no spin); a spurious
//!   `handle_timeout` (nothing due) changes nothing: no output, same `poll_timeout`, same statistics;
//! - the pools are restored within [`restore_bound`]; nothing happens in the steady phase; final claims
//!   succeed;
//! - same seed ⇒ identical trace: the hash of the event log ([`trace`]).

pub mod apps;
pub mod clock;
pub mod faults;
pub mod invariants;
pub mod net;
pub mod rng;
pub mod scenario;
pub mod trace;
pub mod view;
pub mod world;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

pub use scenario::Scenario;
pub use world::{RunReport, World};

use clock::ms;

/// How long after the last fault healed every pool must be full again.
///
/// Let `L` = the largest one-way latency plus 3 ms of chunk spacing, and `q` the moment the last fault
/// healed (every responder up, no partition, stall or slow window left). From `q` on the network is
/// healthy, so an attempt that *starts* after `q` succeeds: its dial is answered after `L`, and request and
/// response take `L` each (`D_est = 3L`). What can still fail after `q` are attempts started before it, and
/// tunnels hurt before it:
/// - a dial ends within `connect_timeout`; a handshake within `handshake_timeout` of its connect (+ `L`);
/// - an idle tunnel whose responder side was killed dies when its FIN arrives (`≤ L` after `q`, since
///   held bytes are delivered at `q`), or by the initiator's `idle_timeout`;
/// - a tunnel whose pings were held dies by the responder's keepalive within one jittered interval plus
///   `threshold` echo timeouts (`1.15 · ping_interval + threshold · ping_interval / 2 + 2L`);
/// - claims made before `q` take tunnels until `claim_timeout` after `q` (their data leg is short).
///
/// So the last failure is at most `D_fail = max(all of the above) + 2L` after `q`. Its backoff lasts at
/// most `1.15 × max_reconnect_backoff` (the jitter is below 15 %, and a 429's `retry-after` is clamped
/// to the cap too); attempts started after it succeed, and a success fills the pool at once. With a
/// per-node cap, a replacement can still meet a 429 while claimed tunnels are in use within `D_fail`, so
/// one more `retry-after` backoff (clamped, with jitter) and establishment are added for capped runs:
///
/// `bound = D_fail + 1.15 · max_backoff + D_est (+ 1.15 · clamp(retry_after) + D_est if capped) + 100 ms`.
pub fn restore_bound(scenario: &Scenario) -> Duration {
    let t = &scenario.timing;
    let l = t.max_latency + Duration::from_millis(3);
    let d_est = l * 3;
    let echo_timeout = t.ping_interval / 2;
    let keepalive_death =
        t.ping_interval.mul_f64(1.15) + echo_timeout * t.failure_threshold + l * 2;
    let d_fail = t
        .connect_timeout
        .max(t.handshake_timeout + l)
        .max(t.idle_timeout)
        .max(keepalive_death)
        .max(t.claim_timeout + Duration::from_millis(100))
        + l * 2;
    let backoff = t.max_backoff.mul_f64(1.15);
    let capped = scenario
        .responders
        .iter()
        .filter(|r| r.max_tunnels_per_node.is_some())
        .filter_map(|r| r.retry_after)
        .max()
        .map_or(Duration::ZERO, |retry| {
            let secs = Duration::from_secs(retry.as_secs() + u64::from(retry.subsec_nanos() > 0));
            secs.clamp(
                Duration::from_secs(1),
                t.max_backoff.max(Duration::from_secs(1)),
            )
            .mul_f64(1.15)
                + d_est
        });
    d_fail + backoff + d_est + capped + Duration::from_millis(100)
}

/// A failed run: the seed, when, what, and the end of the event log.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed that fails.
    pub seed: u64,
    /// Simulated time of the violation.
    pub at: Duration,
    /// What went wrong.
    pub message: String,
    /// The last lines of the event log.
    pub recent: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at {}: {}",
            self.seed,
            ms(self.at),
            self.message
        )?;
        writeln!(
            f,
            "replay: REVTUN_SIM_SEED={} cargo test -p revtun-tests --test sim",
            self.seed
        )?;
        writeln!(f, "last events:")?;
        for line in &self.recent {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Runs `scenario` to the end; a violation or a panic becomes a [`SimFailure`].
pub fn run_scenario(scenario: Scenario) -> Result<RunReport, SimFailure> {
    let seed = scenario.seed;
    // `REVTUN_SIM_TRACE=1` keeps the whole event log and prints all of it on failure.
    let keep_all = std::env::var_os("REVTUN_SIM_TRACE").is_some();
    let mut world = match World::new(scenario, keep_all) {
        Ok(mut world) => {
            if let Some(n) = std::env::var("REVTUN_SIM_CHECK_EVERY")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                world.check_every = n;
            }
            world
        }
        Err(message) => {
            return Err(SimFailure {
                seed,
                at: Duration::ZERO,
                message,
                recent: Vec::new(),
            });
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| world.run()));
    let message = match outcome {
        Ok(Ok(report)) => return Ok(report),
        Ok(Err(message)) => message,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "non-string panic".to_owned());
            format!("panic: {text}")
        }
    };
    Err(SimFailure {
        seed,
        at: world.clock.now(),
        message,
        recent: if keep_all {
            world.trace.all().to_vec()
        } else {
            world.trace.recent().map(str::to_owned).collect()
        },
    })
}

/// Runs the random scenario of `seed`.
pub fn run_seed(seed: u64) -> Result<RunReport, SimFailure> {
    run_scenario(Scenario::random(seed))
}
