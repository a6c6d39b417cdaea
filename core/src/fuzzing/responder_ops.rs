//! Fuzz body for the responder state machine: a sequence of driver inputs, API calls and time steps,
//! with the machine's invariants checked after every one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::command::{Command, ConnId};
use crate::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use crate::keepalive::{KeepaliveConfig, RDATA, RPING};
use crate::responder::{
    ClaimId, LostReason, RejectReason, Responder, ResponderConfig, ResponderEvent,
};
use crate::stats::{StatKind, StatsSnapshot};

/// Most operations run per input, so one input stays fast.
const MAX_OPS: usize = 512;

/// Flag bits of byte 0.
const FLAG_ISOLATION: u8 = 1 << 0;
const FLAG_UPGRADE: u8 = 1 << 1;
const FLAG_NO_CLAIM_MARKER: u8 = 1 << 2;
const FLAG_NODE_CAP: u8 = 1 << 3;
const FLAG_REQUIRE_TENANT: u8 = 1 << 4;

/// Claim ids the fuzzer picks from: nodes, clusters, and an id nobody registers.
const CLAIM_IDS: [&str; 6] = ["n0", "n1", "n2", "c0", "c1", "x"];
const NODES: [&str; 3] = ["n0", "n1", "n2"];
const TENANTS: [&str; 3] = ["t0", "t1", ""];
const CLUSTERS: [&str; 2] = ["c0", "c1"];

/// Fixed inputs for [`Op::Input`].
const DICTIONARY: [&[u8]; 10] = [
    &RPING,
    &RDATA,
    b"RPI",
    b"NG",
    b"HELLO",
    b"RDATAhello",
    b"RPINGRPING",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /reverse_connections/request HTTP/1.1\r\nx-envoy-reverse-tunnel-node-id: n0\r\nx-envoy-reverse-tunnel-cluster-id: c0\r\nx-envoy-reverse-tunnel-tenant-id: t0\r\ncontent-length: 3\r\n\r\nabc",
    b"GET /elsewhere HTTP/1.1\r\n\r\n",
];

/// Fuzz body for `responder_ops`. Never panics on any input except when an invariant breaks.
///
/// Input layout (missing bytes read as 0): byte 0 = flags (bit 0 tenant isolation, bit 1 upgrade mode,
/// bit 2 no claim-marker support, bit 3 per-node cap of 2, bit 4 tenant required), byte 1 = RNG seed byte,
/// then operations, each an opcode byte (mod 13) and its argument bytes:
///
/// | op | args | action |
/// |---|---|---|
/// | 0 | ip | `handle_accepted` from `10.0.0.(ip % 4)` |
/// | 1 | conn, identity | the whole handshake request of `identity` in one read |
/// | 2 | conn, identity, split | the same request in two reads, split at `split` (mod its length) |
/// | 3 | conn, word | a dictionary input: `RPING`, `RDATA`, `RPI`, `NG`, `HELLO`, `RDATAhello`, `RPINGRPING`, a TLS hello, a request with a body, a wrong path |
/// | 4 | conn, len, bytes… | raw bytes |
/// | 5 | conn | `handle_closed` |
/// | 6 | id, tenant | `claim` of one of `n0 n1 n2 c0 c1 x`, tenant `t0`, `t1` or none |
/// | 7 | claim | `cancel_claim` |
/// | 8 | ms | time passes by `4 × ms` milliseconds, then `handle_timeout` |
/// | 9 | — | time passes to `poll_timeout`, then `handle_timeout` |
/// | 10 | bit | `set_accepting(bit & 1 == 1)` |
/// | 11 | — | `shutdown` |
/// | 12 | ip, identity | accept and send the whole request (registers a tunnel in one step) |
///
/// `conn` picks one of the connections allocated so far (or, one past the end, an id never allocated);
/// `claim` one of the claims made so far (or one never made); `identity` selects node `n0..n2`, tenant
/// `t0`, `t1` or empty, cluster `c0`/`c1` and whether the claim marker is offered.
///
/// After every operation all outputs are drained and checked against a tracker that follows the events as
/// a driver would: `counts()` is balanced and equals the tracker's handshaking / idle / in-use tallies;
/// transmits go only to connections the core still owns (never to a handed-out or forgotten one); a close
/// order only for a connection that just ended; every claim is answered at most once, and the waiting-claims
/// gauge equals the tracker's unanswered claims; counters never decrease; node and cluster gauges sum to
/// the live tunnels, and the totals count them; after `handle_timeout(now)` the next deadline lies after
/// `now`; the machine's own [`Responder::audit`] holds.
pub fn responder_ops(data: &[u8]) {
    let mut input = Reader { data, pos: 0 };
    let flags = input.byte();
    let seed = input.byte();
    let mut config = ResponderConfig {
        keepalive: KeepaliveConfig {
            interval: Duration::from_millis(100),
            failure_threshold: 2,
        },
        handshake_timeout: Duration::from_millis(200),
        claim_timeout: Duration::from_millis(300),
        max_pending_handshakes: 6,
        max_pending_handshakes_per_ip: 3,
        retry_after: Some(Duration::from_millis(1500)),
        ..ResponderConfig::default()
    };
    config.policy.tenant_isolation = flags & FLAG_ISOLATION != 0;
    config.policy.upgrade = flags & FLAG_UPGRADE != 0;
    config.policy.claim_marker = flags & FLAG_NO_CLAIM_MARKER == 0;
    config.policy.require_tenant = flags & FLAG_REQUIRE_TENANT != 0;
    if flags & FLAG_NODE_CAP != 0 {
        config.max_tunnels_per_node = Some(2);
    }
    let upgrade = config.policy.upgrade;
    // The fuzz body needs some origin for its fake clock; only offsets from it matter, so runs replay.
    #[allow(clippy::disallowed_methods)]
    let origin = Instant::now();
    let Ok(responder) = Responder::new(config, [seed; 32], origin) else {
        panic!("the fuzz config is valid");
    };
    let mut h = Harness {
        r: responder,
        now: origin,
        tracker: Tracker::default(),
        counters: StatsSnapshot::new(),
        conns: Vec::new(),
        claims: Vec::new(),
    };
    h.check(false);

    for _ in 0..MAX_OPS {
        let Some(op) = input.next() else {
            break;
        };
        let mut fired = false;
        match op % 13 {
            0 => h.accept(input.byte()),
            1 => {
                let conn = h.pick_conn(input.byte());
                let request = request(input.byte(), upgrade);
                h.r.handle_input(conn, &request, h.now);
            }
            2 => {
                let conn = h.pick_conn(input.byte());
                let request = request(input.byte(), upgrade);
                let split = usize::from(input.byte()) % request.len().max(1);
                let (a, b) = request.split_at(split);
                h.r.handle_input(conn, a, h.now);
                h.drain();
                h.check(false);
                h.r.handle_input(conn, b, h.now);
            }
            3 => {
                let conn = h.pick_conn(input.byte());
                let word = DICTIONARY[usize::from(input.byte()) % DICTIONARY.len()];
                h.r.handle_input(conn, word, h.now);
            }
            4 => {
                let conn = h.pick_conn(input.byte());
                let len = usize::from(input.byte());
                let bytes = input.take(len);
                h.r.handle_input(conn, bytes, h.now);
            }
            5 => {
                let conn = h.pick_conn(input.byte());
                h.tracker.driver_closed(conn);
                h.r.handle_closed(conn, h.now);
            }
            6 => {
                let id = CLAIM_IDS[usize::from(input.byte()) % CLAIM_IDS.len()];
                let tenant = match input.byte() % 3 {
                    0 => Some("t0"),
                    1 => Some("t1"),
                    _ => None,
                };
                let claim = h.r.claim(id, tenant, h.now);
                assert!(
                    h.claims.last().is_none_or(|&last| last < claim),
                    "claim ids increase"
                );
                h.claims.push(claim);
                h.tracker.unanswered.insert(claim);
            }
            7 => {
                let pick = usize::from(input.byte());
                let claim = h
                    .claims
                    .get(pick % (h.claims.len() + 1))
                    .copied()
                    .unwrap_or(ClaimId(u64::MAX));
                h.tracker.unanswered.remove(&claim);
                h.r.cancel_claim(claim, h.now);
            }
            8 => {
                h.now += Duration::from_millis(4 * u64::from(input.byte()));
                h.r.handle_timeout(h.now);
                fired = true;
            }
            9 => {
                if let Some(at) = h.r.poll_timeout() {
                    h.now = h.now.max(at);
                }
                h.r.handle_timeout(h.now);
                fired = true;
            }
            10 => h.r.set_accepting(input.byte() & 1 == 1),
            11 => h.r.shutdown(h.now),
            _ => {
                let conn = h.accept_conn(input.byte());
                let request = request(input.byte(), upgrade);
                h.drain();
                h.check(false);
                h.r.handle_input(conn, &request, h.now);
            }
        }
        h.drain();
        h.check(fired);
    }
}

/// The handshake request of identity selector `b`.
fn request(b: u8, upgrade: bool) -> Vec<u8> {
    let b = usize::from(b);
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 9000)),
        node: NODES[b % 3],
        cluster: CLUSTERS[(b / 9) % 2],
        tenant: TENANTS[(b / 3) % 3],
        target_cluster: "upstream",
        initiation_time_ms: 0,
        upgrade,
        offer_claim_marker: (b / 18) % 2 == 0,
        extra_headers: &[],
    }
    .to_bytes()
    .to_vec()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }
}

/// Where a connection stands, as the driver learns it from the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Handshaking,
    Idle,
    InUse,
}

#[derive(Debug, Default)]
struct Tracker {
    live: BTreeMap<ConnId, Known>,
    /// Connections the core forgot (or the driver closed): no output may name them again.
    gone: BTreeSet<ConnId>,
    unanswered: BTreeSet<ClaimId>,
}

impl Tracker {
    fn driver_closed(&mut self, conn: ConnId) {
        // The core reports idle and handshaking closes with an event; an in-use one ends silently.
        if self.live.get(&conn) == Some(&Known::InUse) {
            self.live.remove(&conn);
            self.gone.insert(conn);
        }
    }

    fn end(&mut self, conn: ConnId, from: &[Known]) {
        let state = self.live.remove(&conn);
        assert!(
            state.is_some_and(|s| from.contains(&s)),
            "{conn} ended from {state:?}"
        );
        self.gone.insert(conn);
    }

    fn count(&self, known: Known) -> u64 {
        self.live.values().filter(|&&k| k == known).count() as u64
    }
}

struct Harness {
    r: Responder,
    now: Instant,
    tracker: Tracker,
    /// Counter values seen so far.
    counters: StatsSnapshot,
    conns: Vec<ConnId>,
    claims: Vec<ClaimId>,
}

impl Harness {
    fn accept(&mut self, ip: u8) {
        self.accept_conn(ip);
    }

    fn accept_conn(&mut self, ip: u8) -> ConnId {
        let peer = SocketAddr::from((Ipv4Addr::new(10, 0, 0, ip % 4), 40000));
        let conn = self.r.handle_accepted(peer, None, self.now);
        assert!(
            self.conns.last().is_none_or(|&last| last < conn),
            "connection ids increase"
        );
        assert!(
            !self.tracker.live.contains_key(&conn) && !self.tracker.gone.contains(&conn),
            "{conn} reused"
        );
        self.conns.push(conn);
        self.tracker.live.insert(conn, Known::Handshaking);
        conn
    }

    fn pick_conn(&self, b: u8) -> ConnId {
        self.conns
            .get(usize::from(b) % (self.conns.len() + 1))
            .copied()
            .unwrap_or(ConnId(u64::MAX))
    }

    /// Drains every output, checking each against the tracker.
    fn drain(&mut self) {
        let mut transmits = Vec::new();
        while let Some(t) = self.r.poll_transmit() {
            transmits.push(t);
        }
        let mut closes = Vec::new();
        while let Some(c) = self.r.poll_command() {
            match c {
                Command::Close { conn } => closes.push(conn),
                Command::Dial { .. } => panic!("the responder never dials"),
            }
        }
        for t in &transmits {
            assert!(!t.data.is_empty(), "empty transmit");
            let state = self.tracker.live.get(&t.conn);
            assert!(
                matches!(state, Some(Known::Handshaking | Known::Idle)),
                "transmit on {} in state {state:?}",
                t.conn
            );
        }
        let mut ended_with_close = BTreeSet::new();
        while let Some(event) = self.r.poll_event() {
            match event {
                ResponderEvent::Registered { conn, .. } => {
                    let state = self.tracker.live.get_mut(&conn);
                    assert!(
                        state.as_deref() == Some(&Known::Handshaking),
                        "{conn} registered from {state:?}"
                    );
                    self.tracker.live.insert(conn, Known::Idle);
                }
                ResponderEvent::Rejected { conn, reason } => {
                    self.tracker.end(conn, &[Known::Handshaking]);
                    if reason != RejectReason::PeerClosed {
                        ended_with_close.insert(conn);
                    }
                }
                ResponderEvent::HandedOut { claim, conn, .. } => {
                    assert!(
                        self.tracker.unanswered.remove(&claim),
                        "{claim} answered twice or cancelled"
                    );
                    let state = self.tracker.live.get(&conn);
                    assert!(
                        state == Some(&Known::Idle),
                        "{conn} handed out from {state:?}"
                    );
                    self.tracker.live.insert(conn, Known::InUse);
                }
                ResponderEvent::ClaimExpired { claim } => {
                    assert!(
                        self.tracker.unanswered.remove(&claim),
                        "{claim} expired twice or cancelled"
                    );
                }
                ResponderEvent::TunnelLost { conn, reason, .. } => {
                    self.tracker.end(conn, &[Known::Idle]);
                    if reason != LostReason::Closed {
                        ended_with_close.insert(conn);
                    }
                }
            }
        }
        let closes_set: BTreeSet<ConnId> = closes.iter().copied().collect();
        assert_eq!(closes.len(), closes_set.len(), "a connection closed twice");
        assert_eq!(
            closes_set, ended_with_close,
            "close orders match the endings"
        );
    }

    fn check(&mut self, fired: bool) {
        let counts = self.r.counts();
        assert!(counts.is_balanced(), "{counts:?}");
        assert_eq!(counts.connecting, 0);
        assert_eq!(counts.handshaking, self.tracker.count(Known::Handshaking));
        assert_eq!(counts.idle, self.tracker.count(Known::Idle));
        assert_eq!(counts.in_use, self.tracker.count(Known::InUse));
        assert_eq!(counts.opened, self.conns.len() as u64);
        assert_eq!(counts.closed, self.tracker.gone.len() as u64);
        if let Err(problem) = self.r.audit() {
            panic!("audit: {problem}");
        }
        if fired {
            let next = self.r.poll_timeout();
            assert!(
                next.is_none_or(|t| t > self.now),
                "deadline not past now after handle_timeout"
            );
        }

        let stats = self.r.stats();
        let prefix = self.r.config().stat_prefix.clone();
        let mut node_sum = 0;
        let mut nodes = 0;
        let mut cluster_sum = 0;
        let mut clusters = 0;
        for (name, kind, value) in stats.iter_with_kind() {
            if kind == StatKind::Counter {
                let before = self.counters.get(name).unwrap_or(0);
                assert!(
                    value >= before,
                    "counter {name} went from {before} to {value}"
                );
            }
            let Some(rest) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let rest = match rest.strip_prefix(".tenants.") {
                Some(scoped) => scoped.split_once('.').map_or("", |(_, r)| r),
                None => rest.strip_prefix('.').unwrap_or(rest),
            };
            if rest.starts_with("nodes.") {
                assert!(value > 0, "zero gauge {name} listed");
                node_sum += value;
                nodes += 1;
            } else if rest.starts_with("clusters.") {
                assert!(value > 0, "zero gauge {name} listed");
                cluster_sum += value;
                clusters += 1;
            }
        }
        for (name, kind, value) in self.counters.clone().iter_with_kind() {
            assert!(
                stats.get(name).is_some(),
                "counter {name} ({value}) vanished"
            );
            let _ = kind;
        }
        let live_tunnels = counts.idle + counts.in_use;
        assert_eq!(node_sum, live_tunnels, "node gauges");
        assert_eq!(cluster_sum, live_tunnels, "cluster gauges");
        assert_eq!(stats.get(&format!("{prefix}.total_nodes")), Some(nodes));
        assert_eq!(
            stats.get(&format!("{prefix}.total_clusters")),
            Some(clusters)
        );
        assert_eq!(
            stats.get(&format!("{prefix}.claims.waiting")),
            Some(self.tracker.unanswered.len() as u64)
        );
        let summaries = self.r.nodes();
        assert_eq!(
            summaries.iter().map(|n| n.idle + n.in_use).sum::<u64>(),
            live_tunnels
        );
        self.counters = StatsSnapshot::new();
        for (name, kind, value) in stats.iter_with_kind() {
            if kind == StatKind::Counter {
                self.counters.set(name, kind, value);
            }
        }
    }
}
