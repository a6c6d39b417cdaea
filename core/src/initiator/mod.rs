//! The initiator state machine (DESIGN.md, "Initiator behaviour" and "Initiator statistics"): keeps `count`
//! idle tunnels per host of every target cluster, runs the handshake, echoes keepalives, detects claims,
//! backs off per host, and counts everything.
//!
//! Sans-IO: the driver dials and closes sockets when told ([`Command`]), writes [`Transmit`]s, reports what
//! happens with `handle_*(…, now)`, and calls [`Initiator::handle_timeout`] at [`Initiator::poll_timeout`].
//! The core allocates every [`ConnId`] (in its `Dial` command) and never reuses one.
//!
//! # Driving
//! After **every** call that takes `now` (including [`set_hosts`](Initiator::set_hosts) and
//! [`shutdown`](Initiator::shutdown)), drain in this order:
//! 1. [`poll_transmit`](Initiator::poll_transmit) until `None`: write each, in order, on its connection;
//! 2. [`poll_command`](Initiator::poll_command) until `None`: start each `Dial`; for each `Close`, flush the
//!    connection's transmits, then close it (the core has forgotten it and ignores later reports about it);
//! 3. [`poll_event`](Initiator::poll_event) until `None`: on `Claimed`, hand the socket over;
//! 4. [`poll_timeout`](Initiator::poll_timeout): (re)arm the one timer. While output is queued it returns the
//!    last `now`, so a driver that skipped a queue wakes at once.
//!
//! Time never goes backwards: a `now` earlier than one seen before is taken as the latest seen. Spurious or
//! early `handle_timeout` calls do nothing; after `handle_timeout(now)` with the queues drained,
//! `poll_timeout` is later than `now` (or `None`).
//!
//! Calls about a connection the core does not hold (unknown, already closed by the core, or in the wrong
//! phase, e.g. input while dialling) are ignored and logged at trace level: the driver may race the core.
//!
//! # Lifecycle of a connection and the order of events
//! ```text
//! Dial ─┬─ ConnectFailed                                   (driver report or connect_timeout)
//!       └─ connected → request written ─┬─ HandshakeFailed (rejection, malformed, timeout, closed)
//!                                       └─ TunnelReady ─┬─ Claimed → in use … handle_closed
//!                                                       └─ TunnelLost (closed, idle timeout, protocol error)
//! any phase before in use ── TunnelLost (host removed, shutdown)
//! ```
//! - Per connection, events come in the order above: `TunnelReady` before its `Claimed` or `TunnelLost`,
//!   and nothing after `Claimed`, `ConnectFailed`, `HandshakeFailed` or `TunnelLost`.
//! - When one input completes the handshake and already holds pings or the claim (bytes after the response
//!   head), `TunnelReady` comes first, then the echoes and the claim.
//! - Transmits caused by an input are queued before the event of the same input: the `RPING` echoes of a read
//!   before its `Claimed`, and in claim-marker mode the `RDATA` answer before `Claimed`.
//! - A failure's event comes before the `BackingOff` it causes; the `Close` of an ended connection is queued
//!   before the `Dial` of its replacement.
//! - [`set_hosts`](Initiator::set_hosts) emits `CannotConnect` for an empty list, then closes removed hosts'
//!   connections (their `TunnelLost` events), then dials new and under-filled hosts in address order.
//!
//! # Decisions where DESIGN.md is silent
//! - **Pools.** The unit of `count`, backoff, `max_tunnels_per_host` and the host gauges is the pair
//!   (target cluster, host): a host listed in two clusters is two pools. Host-level statistic names sum
//!   them ([`stats`]); [`Initiator::host_counts`] sums them too.
//! - **Filling.** A host is dialled until `idle + dialling + handshaking = count`, within
//!   `max_tunnels_per_host` live tunnels; so at most `count` attempts are in flight. Filling happens after
//!   every change (claim, loss, failure, backoff end, host added); there is no maintenance tick.
//! - **Success** of an attempt is the tunnel's first `RPING`, or its claim if that comes first (a responder
//!   may claim a fresh tunnel before its first ping). It resets the host's backoff; a backoff still running
//!   ends at once and the host is filled. `recovered` becomes 1 if the host had failed since its last
//!   success, and 0 when a backoff starts or is extended.
//! - **Failures.** Every failed attempt counts in `failed` (an outage that fails `count` attempts counts
//!   `count`), but attempts started before the current backoff began do not increase the backoff step
//!   ([`Backoff`](crate::backoff::Backoff)). A dial's local error ([`ConnectFailure::LocalError`]) counts in
//!   `cannot_connect` instead and backs off too (so a driver that fails every dial at once cannot spin).
//!   Only a 429's `retry-after` sets the backoff. `handle_closed` before `handle_connected` counts as a close
//!   during the handshake.
//! - **Timeouts.** `connect_timeout` runs from the dial, `handshake_timeout` from the connect to the complete
//!   response head, `idle_timeout` from the handshake's end and again from every `RPING`. On each the core
//!   orders a `Close`.
//! - **Initiation time.** Each pool records the `unix_ms` of the first connect after it last had no
//!   established (idle or in-use) tunnel; every request sends it until the pool has no tunnel again. During
//!   an outage all attempts thus carry the time the outage's first attempt connected.
//! - **No hosts, resolution failure.** `set_hosts` with an empty list and `handle_resolve_failed` each
//!   count one cluster-level `cannot_connect` and emit `CannotConnect`; a resolution failure keeps the
//!   current hosts.
//! - **Removed hosts** keep their statistics while in-use tunnels remain, then their counters fold into the
//!   cluster's ([`stats`]). Removal ends a running backoff; a host re-added before its names went continues
//!   with its pool (counters and backoff step kept) and is dialled at once.
//! - **Shutdown** is final: backoffs end (gauge 0), nothing is dialled again, and later `set_hosts` calls
//!   only record hosts and retire removed ones.

mod attempt;
mod config;
mod event;
mod host;
mod hosts;
mod input;
mod state;
pub mod stats;
mod timer;
mod tunnel;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_TUNNELS_PER_HOST, DEFAULT_STAT_PREFIX, InitiatorConfig, InitiatorConfigError,
    TargetCluster,
};
pub use event::{
    CannotConnectCause, ConnectFailure, HandshakeFailure, InitiatorEvent, LostReason,
    UnknownCluster,
};

use attempt::Ending;
use host::{ClusterState, Counters, Pool, PoolKey};
use timer::{TimerIndex, TimerKey, TunnelTimer};
use tunnel::{Tunnel, TunnelState};

use crate::command::{Command, ConnId, Outbox, Transmit};
use crate::stats::{StatsSnapshot, TunnelCounts};

/// The initiator side of revtun: see the [module documentation](self).
#[derive(Debug)]
pub struct Initiator {
    config: InitiatorConfig,
    clusters: Vec<ClusterState>,
    pools: BTreeMap<PoolKey, Pool>,
    /// Counters of folded pools whose host is still a pool of another cluster.
    retired_hosts: BTreeMap<SocketAddr, Counters>,
    tunnels: BTreeMap<ConnId, Tunnel>,
    timers: TimerIndex,
    rng: ChaCha8Rng,
    next_conn: u64,
    counts: TunnelCounts,
    shut_down: bool,
    last_now: Instant,
    out: Outbox<InitiatorEvent>,
}

impl Initiator {
    /// A new initiator with no hosts yet (give them with [`set_hosts`](Self::set_hosts)). The `seed` feeds
    /// the `ChaCha8Rng` of the backoff jitter: the same seed and inputs give the same outputs.
    pub fn new(
        config: InitiatorConfig,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Self, InitiatorConfigError> {
        config.validate()?;
        let clusters = config
            .targets
            .iter()
            .map(|t| ClusterState::new(t.name.clone(), t.count))
            .collect();
        Ok(Self {
            config,
            clusters,
            pools: BTreeMap::new(),
            retired_hosts: BTreeMap::new(),
            tunnels: BTreeMap::new(),
            timers: TimerIndex::default(),
            rng: ChaCha8Rng::from_seed(seed),
            next_conn: 0,
            counts: TunnelCounts::default(),
            shut_down: false,
            last_now: now,
            out: Outbox::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &InitiatorConfig {
        &self.config
    }

    /// Replaces the extra request headers (e.g. a rotated `authorization: Bearer …`) of every handshake
    /// request written from now on. Tunnels already handshaking or established are untouched.
    ///
    /// # Errors
    /// A header fails the checks of [`InitiatorConfig::validate`]; the headers in force stay.
    pub fn set_extra_headers(
        &mut self,
        headers: Vec<(String, String)>,
    ) -> Result<(), InitiatorConfigError> {
        config::validate_extra_headers(&headers)?;
        self.config.extra_headers = headers;
        Ok(())
    }

    /// Sets the hosts of target cluster `cluster` (duplicates are ignored). Hosts no longer listed have
    /// their dials, handshakes and idle tunnels closed at once (`Close` commands, `TunnelLost` with
    /// [`LostReason::HostRemoved`]); their in-use tunnels finish. New hosts, and listed hosts below `count`,
    /// are dialled at once. An empty list counts one `cannot_connect`.
    pub fn set_hosts(
        &mut self,
        cluster: &str,
        hosts: &[SocketAddr],
        now: Instant,
    ) -> Result<(), UnknownCluster> {
        let now = self.advance(now);
        self.replace_hosts(cluster, hosts, now)
    }

    /// Resolving `cluster` failed: counts one cluster-level `cannot_connect` and emits `CannotConnect`. The
    /// cluster keeps its current hosts. An unknown cluster is ignored.
    pub fn handle_resolve_failed(&mut self, cluster: &str, now: Instant) {
        self.advance(now);
        match self.clusters.iter().position(|c| c.name == cluster) {
            Some(index) => self.cannot_connect(index, event::CannotConnectCause::ResolveFailed),
            None => tracing::trace!(cluster, "resolve failure of an unknown cluster ignored"),
        }
    }

    /// The dial of `conn` succeeded: the core queues the handshake request. `unix_ms` is the wall clock in
    /// unix epoch milliseconds, for the initiation-time header.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant, unix_ms: u64) {
        let now = self.advance(now);
        self.connected(conn, now, unix_ms);
    }

    /// The dial of `conn` failed: a failed attempt (`ConnectFailed`, backoff), or for
    /// [`ConnectFailure::LocalError`] an attempt that could not start (`cannot_connect`, backoff too).
    pub fn handle_connect_failed(&mut self, conn: ConnId, error: ConnectFailure, now: Instant) {
        let now = self.advance(now);
        match self.tunnels.get(&conn).map(|t| t.state.phase()) {
            Some(tunnel::Phase::Connecting) => {
                self.end(conn, Ending::Connect(error), false, now);
            }
            _ => tracing::trace!(%conn, "connect failure of a connection not dialling ignored"),
        }
    }

    /// Tunnel TLS failed on `conn`: its TLS handshake (which the driver runs after the connect, within
    /// `handshake_timeout`), or a TLS error read before the handshake response was complete (a responder
    /// refusing the client certificate alerts after the client's side of the TLS handshake is done). The
    /// driver has closed the socket. During the handshake it is a failed attempt with reason `tls`
    /// (`HandshakeFailed`, `handshake_failed.tls`, backoff); on an idle tunnel it is a close
    /// (`TunnelLost`, [`LostReason::Closed`]). Ignored for a connection in use or unknown.
    pub fn handle_tls_failed(&mut self, conn: ConnId, now: Instant) {
        let now = self.advance(now);
        match self.tunnels.get(&conn).map(|t| t.state.phase()) {
            Some(tunnel::Phase::Connecting | tunnel::Phase::Handshaking) => {
                self.end(conn, Ending::Handshake(HandshakeFailure::Tls), false, now);
            }
            Some(tunnel::Phase::Idle) => {
                self.end(conn, Ending::Lost(LostReason::Closed), false, now);
            }
            _ => tracing::trace!(%conn, "TLS failure of a connection not establishing ignored"),
        }
    }

    /// The target cluster `conn` was dialled for, while the core holds it (e.g. to pick that cluster's
    /// tunnel TLS settings when the `Dial` command comes).
    pub fn cluster_of(&self, conn: ConnId) -> Option<&str> {
        let key = self.tunnels.get(&conn)?.pool;
        self.clusters.get(key.cluster).map(|c| c.name.as_str())
    }

    /// Bytes read from `conn` (handshake response, then keepalives and the claim). Ignored for a connection
    /// in use: the driver owns it.
    pub fn handle_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let now = self.advance(now);
        self.input(conn, data, now);
    }

    /// `conn` was closed by the peer or failed (read/write error); for an in-use tunnel, the driver has
    /// finished with it. A handshake ends as `HandshakeFailed` (`closed`), an idle tunnel as `TunnelLost`
    /// (a failed attempt before its first `RPING`); an in-use tunnel just leaves the counts. The core
    /// orders no `Close` for it and dials a replacement if the host may.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        let now = self.advance(now);
        let Some(tunnel) = self.tunnels.get(&conn) else {
            tracing::trace!(%conn, "close of an unknown connection ignored");
            return;
        };
        let key = tunnel.pool;
        match tunnel.state.phase() {
            tunnel::Phase::Connecting | tunnel::Phase::Handshaking => {
                self.end(
                    conn,
                    Ending::Handshake(HandshakeFailure::Closed),
                    false,
                    now,
                );
            }
            tunnel::Phase::Idle => self.end(conn, Ending::Lost(LostReason::Closed), false, now),
            tunnel::Phase::InUse => {
                self.set_state(conn, TunnelState::Closed, now);
                self.fill(key, now);
            }
            tunnel::Phase::New | tunnel::Phase::Closed => {}
        }
    }

    /// Fires every timer due at `now`: connect, handshake and idle timeouts (each closes its connection) and
    /// backoff ends (the host is dialled again). Calls with nothing due do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Tunnel(conn, timer) => self.tunnel_timeout(conn, timer, now),
                TimerKey::Backoff(pool) => {
                    // The index entry is gone already; clear the host's record of it.
                    self.set_backoff(pool, None);
                    self.fill(pool, now);
                }
            }
        }
    }

    /// Stops dialling for good; closes every dial, handshake and idle tunnel (`Close` commands, `TunnelLost`
    /// with [`LostReason::Shutdown`]). In-use tunnels finish; report them with `handle_closed`.
    pub fn shutdown(&mut self, now: Instant) {
        let now = self.advance(now);
        self.shut_down(now);
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// The next order for the driver: dial or close a connection.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.commands.pop_front()
    }

    /// The next bytes to write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<InitiatorEvent> {
        self.out.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the earliest timer, or the last `now` while
    /// any output is queued; `None` when nothing is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(self.last_now);
        }
        self.timers.first()
    }

    /// Tunnels by phase over all hosts, and how many were ever opened and closed;
    /// `opened == closed + live` at every step.
    pub fn counts(&self) -> TunnelCounts {
        self.counts
    }

    /// The tunnel counts of `host`, summed over every target cluster that lists it (and over a removed host's
    /// pool while its in-use tunnels finish); `None` if no pool has it. `opened`/`closed` cover the pools'
    /// lifetime: a removed host's are forgotten with it.
    pub fn host_counts(&self, host: SocketAddr) -> Option<TunnelCounts> {
        let mut found = None;
        for (_, pool) in self.pools.iter().filter(|(k, _)| k.host == host) {
            let sum: &mut TunnelCounts = found.get_or_insert_with(TunnelCounts::default);
            let t = pool.tunnels;
            sum.opened += t.opened;
            sum.closed += t.closed;
            sum.connecting += t.connecting;
            sum.handshaking += t.handshaking;
            sum.idle += t.idle;
            sum.in_use += t.in_use;
        }
        found
    }

    /// Every statistic, named as DESIGN.md says (see [`stats`]).
    pub fn stats(&self) -> StatsSnapshot {
        stats::snapshot(
            &self.config.stat_prefix,
            &self.clusters,
            self.pools.iter().map(|(k, p)| (k.cluster, k.host, p)),
            &self.retired_hosts,
        )
    }

    /// The latest `now` seen, never earlier than before.
    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// A connection's timer fired.
    fn tunnel_timeout(&mut self, conn: ConnId, timer: TunnelTimer, now: Instant) {
        let Some(tunnel) = self.tunnels.get_mut(&conn) else {
            return;
        };
        let phase = tunnel.state.phase();
        if phase.timer() != Some(timer) {
            tracing::trace!(%conn, ?timer, ?phase, "stale timer ignored");
            return;
        }
        let ending = match timer {
            TunnelTimer::Connect => Ending::Connect(ConnectFailure::TimedOut),
            TunnelTimer::Handshake => Ending::Handshake(HandshakeFailure::Timeout),
            TunnelTimer::Idle => Ending::Lost(LostReason::IdleTimeout),
        };
        self.end(conn, ending, true, now);
    }
}
