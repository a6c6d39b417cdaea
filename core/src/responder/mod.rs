//! The responder state machine: accepts handshakes, keeps the idle pool with keepalive, and hands tunnels
//! out to claims (DESIGN.md, "Handshake response and the responder's checks", "Idle phase", the two
//! data-phase modes, "Responder behaviour", "Responder statistics").
//!
//! Sans-IO, in the shape of STYLE.md §3: the driver reports what happened with `handle_*(…, now)` and the
//! API calls ([`Responder::claim`], [`Responder::cancel_claim`], [`Responder::set_accepting`],
//! [`Responder::shutdown`]), then drains the outputs, then sleeps until [`Responder::poll_timeout`].
//!
//! # Driving it
//! 1. A socket was accepted: [`handle_accepted`](Responder::handle_accepted) gives its [`ConnId`]. With
//!    tunnel TLS, [`handle_accepted_tls`](Responder::handle_accepted_tls) at TCP accept time, then
//!    [`handle_tls_established`](Responder::handle_tls_established) (with the verified client identity)
//!    or [`handle_tls_failed`](Responder::handle_tls_failed) once the driver's TLS handshake ends.
//! 2. Bytes arrived: [`handle_input`](Responder::handle_input). EOF or an I/O error:
//!    [`handle_closed`](Responder::handle_closed) (for a handed-out tunnel: the driver is done with it).
//! 3. The timer fired: [`handle_timeout`](Responder::handle_timeout) (early or repeated calls are no-ops).
//! 4. After **every** call above, drain in this order: [`poll_transmit`](Responder::poll_transmit) (write
//!    each one in order on its connection), [`poll_command`](Responder::poll_command) (only
//!    [`Command::Close`]: flush that connection's transmits, then close it; the core has forgotten it and
//!    wants no `handle_closed`), [`poll_event`](Responder::poll_event). Then re-read
//!    [`poll_timeout`](Responder::poll_timeout): while output is queued it returns the latest `now`.
//!
//! ```
//! use std::time::Instant;
//! use revtun_core::command::Command;
//! use revtun_core::handshake::{HandshakeRequest, DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH};
//! use revtun_core::responder::{Responder, ResponderConfig, ResponderEvent};
//!
//! let now = Instant::now();
//! let mut responder = Responder::new(ResponderConfig::default(), [0; 32], now)?;
//! let conn = responder.handle_accepted("10.0.0.7:40000".parse()?, None, now);
//! let request = HandshakeRequest {
//!     method: DEFAULT_REQUEST_METHOD, path: DEFAULT_REQUEST_PATH, host: "10.0.0.1:9000".parse()?,
//!     node: "edge-1", cluster: "edge", tenant: "", target_cluster: "upstream",
//!     initiation_time_ms: 0, upgrade: false, offer_claim_marker: false, extra_headers: &[],
//! };
//! responder.handle_input(conn, &request.to_bytes(), now);
//! let claim = responder.claim("edge", None, now);
//!
//! let response = responder.poll_transmit().expect("the 200");
//! assert_eq!(&response.data[..], b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
//! assert!(responder.poll_command().is_none());
//! assert!(matches!(responder.poll_event(), Some(ResponderEvent::Registered { .. })));
//! match responder.poll_event() {
//!     Some(ResponderEvent::HandedOut { claim: c, conn: tunnel, .. }) => {
//!         assert_eq!((c, tunnel), (claim, conn)); // the driver now owns the socket
//!     }
//!     other => panic!("{other:?}"),
//! }
//! responder.handle_closed(conn, now); // later: the data leg ended
//! assert!(responder.counts().is_balanced());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Event order
//! Within one call, outputs are queued in the order things happen, and per connection:
//! - A handshake ends in exactly one of: [`ResponderEvent::Registered`] (its success response is the
//!   first transmit of the connection) or [`ResponderEvent::Rejected`] (a rejection's response transmit,
//!   if any, then its close command).
//! - A registered tunnel then sees `RPING` transmits while idle, and ends in exactly one of:
//!   [`ResponderEvent::HandedOut`], [`ResponderEvent::TunnelLost`].
//!   In claim-marker mode the `RDATA` transmit is queued in the same call as the `HandedOut`, before it.
//!   `Registered` and `HandedOut` for the same tunnel can come from one call when a claim was waiting.
//! - A claim ends in exactly one of: [`ResponderEvent::HandedOut`], [`ResponderEvent::ClaimExpired`], or
//!   nothing when cancelled.
//! - A close command follows every `Rejected` and `TunnelLost` except those caused by the driver's own
//!   reports ([`RejectReason::PeerClosed`], [`RejectReason::TlsFailed`], [`LostReason::Closed`]).
//!
//! # Behaviour
//! - **Handshake.** Rows 0–7 by [`RequestParser`](crate::handshake::RequestParser) and
//!   [`check_request`](crate::handshake::check_request); row 8: the [`Authorizer`] says
//!   `Unauthenticated` (401); row 9: the node's live tunnels (idle + in use, in its tenant
//!   scope) reached `max_tunnels_per_node` (429, `retry-after` = `retry_after` rounded up to whole seconds,
//!   at least 1); row 10: the authorizer says `Forbidden` (403); row 11: not accepting (503). The
//!   authorizer runs once, after rows 0–7. Bytes after the request head in the same read are discarded
//!   (the response is queued in the same call, so nothing else can arrive before it).
//! - **Pending caps.** A new connection at the per-IP cap closes that address's oldest pending handshake;
//!   then, at the total cap, the oldest pending handshake of all ([`RejectReason::PendingCapEvicted`],
//!   counted as revtun's `reverse_tunnel.handshake.pending_evicted`; DESIGN.md names no counter). A
//!   handshake the peer closes before its request is complete is counted as revtun's
//!   `reverse_tunnel.handshake.peer_closed`, so every accepted connection ends in exactly one counter
//!   (or `Shutdown`, or a 404, which has none).
//! - **Keepalive.** One [`ResponderKeepalive`](crate::keepalive::ResponderKeepalive) per idle tunnel, on
//!   its own `ChaCha8Rng` seeded with 32 bytes drawn from the machine's RNG at registration.
//! - **Claims.** [`claim`](Responder::claim) tries the id as a cluster (its nodes round-robin from the one
//!   after the last served, skipping nodes with no claimable tunnel of that cluster), then as a node.
//!   Claimable: idle with no missed echo, and in Envoy mode with no ping in flight. Within a node a
//!   claim takes the oldest tunnel with no ping in flight, else (claim-marker mode) the oldest with one.
//!   Claims that find nothing wait, oldest first, and are served as tunnels register or become
//!   claimable (an echo arrives); they expire after `claim_timeout`. A tenant-less claim under isolation
//!   expires at once.
//! - **Hand-out.** Both modes hand the tunnel out in the same call as the claim finds it. **Envoy mode**
//!   writes nothing. **Claim-marker mode** writes `RDATA` (the pinging stops) and does *not* wait for the
//!   initiator's `RDATA` answer, so the user's first bytes follow the marker at once and a claim costs
//!   one round trip less; the `HandedOut` event carries a [`PendingAnswer`] with which the driver strips
//!   the answer (`RPING` echoes, then `RDATA`) from the read side, and its deadline,
//!   [`claim_answer_timeout`] = echo timeout (`ping_interval / 2`) × `ping_failure_threshold` after the
//!   hand-out (the time the keepalive would have given the tunnel before declaring it dead), at least
//!   1 s.
//!   Consequence: a claimed tunnel that turns out dead (EOF, reset, garbage or no answer by that
//!   deadline) fails the user's stream; its claim does not go back to the queue, since the user may
//!   already have written data. Only tunnels with no missed echo are handed out, so this is rare, and
//!   the user sees what a failed dial looks like.
//! - **Reconnects.** The per-node cap counts only live tunnels and every tunnel is its own entry, so a node
//!   that comes back after a crash registers at once; its stale tunnels die by keepalive.
//! - **Shutdown** closes pending handshakes and idle tunnels, expires every claim, and from
//!   then on closes new connections at once and expires new claims at once. In-use tunnels stay with the
//!   driver.
//! - **Statistics**: see [`stats`]; [`Responder::counts`] keeps `opened == closed + live`.
//! - **Driver misuse** (an unknown or forgotten [`ConnId`], input on a handed-out tunnel, an unknown
//!   [`ClaimId`]) is logged at trace level and ignored; time going backwards is taken as the latest `now`.

mod accept;
mod auth;
mod claim;
mod claiming;
mod config;
mod event;
mod idle;
mod pool;
pub mod stats;
mod timers;
mod tls;
mod tunnel;

#[cfg(feature = "fuzzing")]
mod audit;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

pub use auth::{AllowAll, AuthDecision, Authorizer, HandshakeContext, PeerTlsIdentity};
pub use claim::ClaimId;
pub use config::{
    DEFAULT_CLAIM_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_PENDING_HANDSHAKES,
    DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP, DEFAULT_STAT_PREFIX, ResponderConfig,
    ResponderConfigError,
};
pub use event::{LostReason, PendingAnswer, RejectReason, ResponderEvent};
pub use pool::NodeSummary;

use self::claim::Claims;
use self::pool::{Membership, Pool, Slot};
use self::stats::Counters;
use self::timers::{TimerKey, Timers};
use self::tunnel::{Conn, ConnState};
use crate::command::{Command, ConnId, Outbox, Transmit};
use crate::keepalive::KeepaliveConfig;
use crate::stats::{StatsSnapshot, TunnelCounts};

/// How long a tunnel handed out in claim-marker mode may take to answer `RDATA` before its read side
/// fails with a timeout ([`PendingAnswer::deadline`]): the keepalive's echo timeout times its failure
/// threshold (with the defaults, 1 s × 3 = 3 s), at least [`MIN_CLAIM_ANSWER_TIMEOUT`] (1 s).
#[must_use]
pub fn claim_answer_timeout(keepalive: KeepaliveConfig) -> Duration {
    let k = keepalive.normalized();
    k.echo_timeout()
        .saturating_mul(k.failure_threshold)
        .max(MIN_CLAIM_ANSWER_TIMEOUT)
}

/// The least time a claimed tunnel gets to answer `RDATA`, whatever the keepalive: sub-second ping
/// intervals (tests, aggressive deployments) must not turn a briefly busy initiator into a failed stream.
pub const MIN_CLAIM_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// The responder state machine; see the [module documentation](self).
pub struct Responder {
    config: ResponderConfig,
    authorizer: Arc<dyn Authorizer>,
    rng: ChaCha8Rng,
    accepting: bool,
    shut_down: bool,
    last_now: Instant,
    next_conn: u64,
    next_seq: u64,
    conns: BTreeMap<ConnId, Conn>,
    /// Handshakes in progress, oldest (smallest id) first; maintained by `set_state`.
    pending: BTreeSet<ConnId>,
    pending_by_ip: BTreeMap<IpAddr, BTreeSet<ConnId>>,
    pool: Pool,
    claims: Claims,
    timers: Timers,
    out: Outbox<ResponderEvent>,
    counts: TunnelCounts,
    counters: Counters,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("accepting", &self.accepting)
            .field("shut_down", &self.shut_down)
            .field("counts", &self.counts)
            .field("pending", &self.pending.len())
            .field("claims", &self.claims.len())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder with `config`, drawing all randomness from `seed`, starting at `now`. It accepts
    /// handshakes, and authorizes every one ([`AllowAll`]) until [`with_authorizer`](Self::with_authorizer).
    ///
    /// # Errors
    /// The config fails [`ResponderConfig::validate`].
    pub fn new(
        config: ResponderConfig,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Self, ResponderConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            authorizer: Arc::new(AllowAll),
            rng: ChaCha8Rng::from_seed(seed),
            accepting: true,
            shut_down: false,
            last_now: now,
            next_conn: 0,
            next_seq: 0,
            conns: BTreeMap::new(),
            pending: BTreeSet::new(),
            pending_by_ip: BTreeMap::new(),
            pool: Pool::default(),
            claims: Claims::default(),
            timers: Timers::default(),
            out: Outbox::default(),
            counts: TunnelCounts::default(),
            counters: Counters::default(),
        })
    }

    /// Replaces the authentication / authorization hook (rows 8 and 10).
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The config in use.
    #[must_use]
    pub fn config(&self) -> &ResponderConfig {
        &self.config
    }

    /// `false` makes handshakes that pass rows 0–10 get the 503 of row 11; `true` registers them again
    /// (not after [`shutdown`](Self::shutdown)). Tunnels already registered are not touched.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting && !self.shut_down;
    }

    /// Whether new handshakes can register.
    #[must_use]
    pub fn is_accepting(&self) -> bool {
        self.accepting
    }

    /// Bytes read from a connection, in order. A handshake's bytes go to its parser (and, once complete,
    /// through the checks); an idle tunnel's to its keepalive.
    /// Input for a handed-out tunnel belongs to the driver and is ignored.
    pub fn handle_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let now = self.advance(now);
        match self.conns.get(&conn).map(Conn::state) {
            None => tracing::trace!(%conn, "handle_input: unknown connection ignored"),
            Some(ConnState::Handshaking) => self.handshake_input(conn, data, now),
            Some(ConnState::Idle) => self.tunnel_input(conn, data, now),
            Some(ConnState::InUse) => {
                tracing::trace!(%conn, "handle_input: tunnel handed out, input ignored");
            }
        }
    }

    /// The driver is done with a connection: the peer closed it, an I/O error hit it, or (for a
    /// handed-out tunnel) the data leg ended. A handshake ends with [`RejectReason::PeerClosed`], an idle
    /// tunnel with [`LostReason::Closed`], an in-use
    /// tunnel silently. No close command follows.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        let now = self.advance(now);
        match self.conns.get(&conn).map(Conn::state) {
            None => tracing::trace!(%conn, "handle_closed: unknown connection ignored"),
            Some(ConnState::Handshaking) => {
                self.set_state(conn, |_| (None, ()));
                self.counters.handshake("peer_closed");
                self.out.events.push_back(ResponderEvent::Rejected {
                    conn,
                    reason: RejectReason::PeerClosed,
                });
            }
            Some(ConnState::Idle) => {
                self.lose(conn, LostReason::Closed, false);
                self.serve_waiting(now);
            }
            Some(ConnState::InUse) => {
                tracing::trace!(%conn, "in-use tunnel closed by the driver");
                self.set_state(conn, |_| (None, ()));
            }
        }
    }

    /// Does what is due at `now`: handshake deadlines, pings, echo deadlines, claim expiries. Calls before anything is due do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        for key in self.timers.due(now) {
            if self.timers.get(key).is_none_or(|at| at > now) {
                continue;
            }
            match key {
                TimerKey::Conn(conn) => self.conn_timeout(conn, now),
                TimerKey::Claim(claim) => self.expire_claim(claim),
            }
        }
        self.serve_waiting(now);
    }

    /// Closes pending handshakes ([`RejectReason::Shutdown`]) and idle tunnels
    /// ([`LostReason::Shutdown`]), then expires every claim. Afterwards new connections are closed at once
    /// and new claims expire at once. In-use tunnels stay with the driver; report their close as usual.
    pub fn shutdown(&mut self, now: Instant) {
        self.advance(now);
        self.shut_down = true;
        self.accepting = false;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            match self.conns.get(&conn).map(Conn::state) {
                Some(ConnState::Handshaking) => {
                    self.drop_handshake(conn, RejectReason::Shutdown, None, None, true);
                }
                Some(ConnState::Idle) => {
                    self.lose(conn, LostReason::Shutdown, true);
                }
                Some(ConnState::InUse) | None => {}
            }
        }
        for claim in self.claims.ids() {
            self.expire_claim(claim);
        }
    }

    /// The next order for the driver (only [`Command::Close`]).
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
    pub fn poll_event(&mut self) -> Option<ResponderEvent> {
        self.out.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the earliest deadline, or the latest `now`
    /// seen while output is still queued; `None` when nothing is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(self.last_now);
        }
        self.timers.first()
    }

    /// Connections per phase; `opened == closed + live` always holds.
    #[must_use]
    pub fn counts(&self) -> TunnelCounts {
        self.counts
    }

    /// The statistics with DESIGN.md's names; see [`stats`].
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        stats::render(&stats::StatsInput {
            prefix: &self.config.stat_prefix,
            isolation: self.config.policy.tenant_isolation,
            pool: &self.pool,
            counters: &self.counters,
            unanswered_claims: self.claims.len() as u64,
        })
    }

    /// One entry per node (per tenant under isolation) with live tunnels, sorted by (tenant, node): what
    /// `/reverse_connections` shows.
    #[must_use]
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.pool.summaries(self.config.policy.tenant_isolation)
    }

    /// Handshakes in progress.
    #[must_use]
    pub fn pending_handshakes(&self) -> usize {
        self.pending.len()
    }

    // -----------------------------------------------------------------------------------------------------
    // Internals shared by the submodules.

    /// Time never goes backwards: returns the latest `now` seen.
    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// The tenant scope of a tenant id: itself under isolation, empty otherwise.
    fn scope(&self, tenant: &str) -> String {
        if self.config.policy.tenant_isolation {
            tenant.to_owned()
        } else {
            String::new()
        }
    }

    fn transmit(&mut self, conn: ConnId, data: Bytes) {
        self.out.transmits.push_back(Transmit { conn, data });
    }

    /// THE chokepoint: every change of a connection's state goes through here. `f` gets the old
    /// connection (`None` if new) and returns the new one (`None` if it ends). Updates the tunnel counts,
    /// the pending-handshake index, the pool (idle queues, gauges, cap tallies) and the connection's timer.
    fn set_state<R>(&mut self, id: ConnId, f: impl FnOnce(Option<Conn>) -> (Option<Conn>, R)) -> R {
        let old = self.conns.remove(&id);
        let old_state = old.as_ref().map(Conn::state);
        let old_slot: Option<(Membership, Slot)> = old
            .as_ref()
            .and_then(|c| c.slot().map(|(m, s)| (m.clone(), s)));
        let old_peer = old.as_ref().and_then(Conn::handshake_peer);
        let (new, out) = f(old);

        let new_state = new.as_ref().map(Conn::state);
        match (old_state.is_some(), new_state.is_some()) {
            (false, true) => self.counts.opened += 1,
            (true, false) => self.counts.closed += 1,
            _ => {}
        }
        if let Some(state) = old_state {
            *self.count_of(state) -= 1;
        }
        if let Some(state) = new_state {
            *self.count_of(state) += 1;
        }

        if let Some(peer) = old_peer {
            self.pending.remove(&id);
            if let Some(set) = self.pending_by_ip.get_mut(&peer.ip()) {
                set.remove(&id);
                if set.is_empty() {
                    self.pending_by_ip.remove(&peer.ip());
                }
            }
        }
        if let Some(peer) = new.as_ref().and_then(Conn::handshake_peer) {
            self.pending.insert(id);
            self.pending_by_ip.entry(peer.ip()).or_default().insert(id);
        }

        let new_slot = new.as_ref().and_then(Conn::slot);
        let membership = new_slot
            .map(|(m, _)| m)
            .or(old_slot.as_ref().map(|(m, _)| m));
        if let Some(m) = membership {
            self.pool.transition(
                id,
                m,
                old_slot.as_ref().map(|&(_, s)| s),
                new_slot.map(|(_, s)| s),
            );
        }

        self.timers.set(
            TimerKey::Conn(id),
            new.as_ref().and_then(Conn::timer).map(|(_, at)| at),
        );
        if let Some(conn) = new {
            self.conns.insert(id, conn);
        }
        out
    }

    fn count_of(&mut self, state: ConnState) -> &mut u64 {
        match state {
            ConnState::Handshaking => &mut self.counts.handshaking,
            ConnState::Idle => &mut self.counts.idle,
            ConnState::InUse => &mut self.counts.in_use,
        }
    }

    /// Re-arms a connection's timer after an in-place change (keepalive input or timeout).
    fn reschedule(&mut self, id: ConnId) {
        let at = self.conns.get(&id).and_then(Conn::timer).map(|(_, at)| at);
        self.timers.set(TimerKey::Conn(id), at);
    }
}
