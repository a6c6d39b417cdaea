//! A proptest-state-machine test of the responder's pool against a reference model:
//! `BTreeMap<(tenant, node), VecDeque<ConnId>>` of idle tunnels in FIFO order, the in-use set, and the
//! waiting claims in FIFO order with their deadlines.
//!
//! Transitions: register a tunnel (node, tenant, data mode), claim (a node id or the cluster id, in a
//! tenant), close a tunnel, echo a ping, cancel a waiting claim, and let time pass. Tenant isolation is
//! on, so pools are keyed by (tenant, node).
//!
//! Pings are the environment: their times come from the machine's seeded jitter, so the model learns of
//! them from the `RPING` transmits, as a driver would, and keeps the set of tunnels with a ping in flight.
//! Every pool decision is predicted by the model and compared exactly: which claim gets which tunnel and
//! when (FIFO per node among the freshest tunnels, oldest claim first, cluster claims round-robin over the
//! cluster's nodes; tunnels with no ping in flight first, claim-marker tunnels also with a ping in flight
//! while its echo is not overdue, never a tunnel with a missed echo), which claims expire, and the counts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use revtun_core::command::ConnId;
use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use revtun_core::keepalive::{KeepaliveConfig, RDATA, RPING};
use revtun_core::responder::{ClaimId, LostReason, Responder, ResponderConfig, ResponderEvent};

const NODES: [&str; 3] = ["n0", "n1", "n2"];
const TENANTS: [&str; 2] = ["ta", "tb"];
/// Every tunnel registers with this cluster; claiming it round-robins over the nodes.
const CLUSTER: &str = "c";
const CLAIM_TIMEOUT: Duration = Duration::from_millis(1500);
/// The keepalive's echo deadline: half the 1 s ping interval.
const ECHO_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
enum Transition {
    Register {
        node: usize,
        tenant: usize,
        claim_marker: bool,
    },
    /// `target` < 3: a node id; 3: the cluster id.
    Claim { target: usize, tenant: usize },
    /// Closes the `pick`-th live tunnel (idle or in use), if any.
    Close { pick: usize },
    /// Echoes the `pick`-th ping in flight, if any.
    Echo { pick: usize },
    /// Cancels the `pick`-th waiting claim, if any.
    Cancel { pick: usize },
    /// Lets `ms` milliseconds pass, firing every deadline on the way.
    Tick { ms: u64 },
}

/// The transitions carry indices resolved against the live state, so every sequence is valid and the
/// reference state needs no more than the step count.
struct Transitions;

impl ReferenceStateMachine for Transitions {
    type State = usize;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Self::State> {
        Just(0).boxed()
    }

    fn transitions(_state: &Self::State) -> BoxedStrategy<Self::Transition> {
        prop_oneof![
            3 => (0..NODES.len(), 0..TENANTS.len(), any::<bool>()).prop_map(|(node, tenant, claim_marker)| {
                Transition::Register { node, tenant, claim_marker }
            }),
            3 => (0..=NODES.len(), 0..TENANTS.len())
                .prop_map(|(target, tenant)| Transition::Claim { target, tenant }),
            1 => any::<usize>().prop_map(|pick| Transition::Close { pick }),
            2 => any::<usize>().prop_map(|pick| Transition::Echo { pick }),
            1 => any::<usize>().prop_map(|pick| Transition::Cancel { pick }),
            2 => (0..1500u64).prop_map(|ms| Transition::Tick { ms }),
        ]
        .boxed()
    }

    fn apply(state: Self::State, _transition: &Self::Transition) -> Self::State {
        state + 1
    }
}

type Key = (String, String);

/// The reference model of the pool.
#[derive(Debug, Default)]
struct Model {
    /// Idle tunnels per (tenant, node), oldest first.
    idle: BTreeMap<Key, VecDeque<ConnId>>,
    /// Live tunnels: key and whether it uses the claim marker.
    tunnels: BTreeMap<ConnId, (Key, bool)>,
    in_use: BTreeSet<ConnId>,
    /// Idle tunnels with a ping in flight (learned from the transmits), with when it was sent.
    in_flight: BTreeMap<ConnId, Instant>,
    /// Waiting claims, oldest first: (claim, tenant, target, deadline).
    waiting: VecDeque<(ClaimId, String, String, Instant)>,
    /// Round-robin cursor of the cluster per tenant: the node served last (forgotten with the cluster's
    /// last live tunnel).
    cursor: BTreeMap<String, String>,
}

impl Model {
    /// Whether the tunnel's ping, if any, has missed its echo deadline (half the ping interval) at `now`.
    fn missed(&self, conn: ConnId, now: Instant) -> bool {
        self.in_flight
            .get(&conn)
            .is_some_and(|&sent| now >= sent + ECHO_TIMEOUT)
    }

    /// The oldest idle tunnel of `key` with no ping in flight; else the oldest claim-marker one whose
    /// ping in flight is not overdue.
    fn first_eligible(&self, key: &Key, now: Instant) -> Option<ConnId> {
        let idle = self.idle.get(key)?;
        let fresh = idle
            .iter()
            .copied()
            .find(|c| !self.in_flight.contains_key(c));
        fresh.or_else(|| {
            idle.iter()
                .copied()
                .find(|&c| self.tunnels.get(&c).is_some_and(|&(_, cm)| cm) && !self.missed(c, now))
        })
    }

    /// The tunnel a claim gets now, if any.
    fn pick(&mut self, tenant: &str, target: &str, now: Instant) -> Option<ConnId> {
        if target == CLUSTER {
            // The cluster's nodes: those with a live tunnel in this tenant.
            let nodes: Vec<String> = self
                .tunnels
                .values()
                .filter(|((t, _), _)| t == tenant)
                .map(|((_, n), _)| n.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let start = match self.cursor.get(tenant) {
                Some(last) => nodes.iter().position(|n| n > last).unwrap_or(0),
                None => 0,
            };
            for i in 0..nodes.len() {
                let node = &nodes[(start + i) % nodes.len()];
                if let Some(conn) = self.first_eligible(&(tenant.to_owned(), node.clone()), now) {
                    self.cursor.insert(tenant.to_owned(), node.clone());
                    return Some(conn);
                }
            }
            return None;
        }
        self.first_eligible(&(tenant.to_owned(), target.to_owned()), now)
    }

    fn take(&mut self, conn: ConnId) {
        let key = self.tunnels[&conn].0.clone();
        if let Some(q) = self.idle.get_mut(&key) {
            q.retain(|&c| c != conn);
        }
        self.in_flight.remove(&conn);
        self.in_use.insert(conn);
    }

    /// Serves waiting claims oldest first; returns the expected hand-outs in order.
    fn serve(&mut self, now: Instant) -> Vec<(ClaimId, ConnId)> {
        let mut served = Vec::new();
        let waiting: Vec<_> = self.waiting.iter().cloned().collect();
        for (claim, tenant, target, _) in waiting {
            if let Some(conn) = self.pick(&tenant, &target, now) {
                self.take(conn);
                self.waiting.retain(|w| w.0 != claim);
                served.push((claim, conn));
            }
        }
        served
    }

    fn remove(&mut self, conn: ConnId) {
        if let Some((key, _)) = self.tunnels.remove(&conn) {
            if let Some(q) = self.idle.get_mut(&key) {
                q.retain(|&c| c != conn);
                if q.is_empty() {
                    self.idle.remove(&key);
                }
            }
            // A cluster with no live tunnel is forgotten, its cursor with it.
            if !self.tunnels.values().any(|((t, _), _)| *t == key.0) {
                self.cursor.remove(&key.0);
            }
        }
        self.in_use.remove(&conn);
        self.in_flight.remove(&conn);
    }

    fn idle_count(&self) -> u64 {
        self.idle.values().map(|q| q.len() as u64).sum()
    }
}

struct Sut {
    r: Responder,
    now: Instant,
    model: Model,
}

/// What one step produced.
#[derive(Debug, Default)]
struct Observed {
    handed_out: Vec<(ClaimId, ConnId)>,
    expired: Vec<ClaimId>,
    /// Pings sent, with when.
    pings: Vec<(ConnId, Instant)>,
    /// `RDATA` transmits not yet matched with their hand-out.
    rdata: Vec<ConnId>,
    registered: Vec<ConnId>,
    lost: Vec<ConnId>,
}

impl Sut {
    /// Drains the machine like a driver and records what it did. `RDATA` must come right before its
    /// tunnel's hand-out (the answer is the driver's to read).
    fn drain(&mut self, seen: &mut Observed) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.r.poll_transmit() {
                progressed = true;
                if t.data[..] == RPING {
                    seen.pings.push((t.conn, self.now));
                } else if t.data[..] == RDATA {
                    seen.rdata.push(t.conn);
                }
            }
            if let Some(c) = self.r.poll_command() {
                panic!("no tunnel should be closed by the machine here: {c:?}");
            }
            while let Some(e) = self.r.poll_event() {
                progressed = true;
                match e {
                    ResponderEvent::HandedOut {
                        claim,
                        conn,
                        answer,
                        ..
                    } => {
                        let claim_marker = answer.is_some();
                        assert_eq!(
                            claim_marker,
                            self.model.tunnels.get(&conn).is_some_and(|t| t.1),
                            "an answer filter exactly for claim-marker tunnels"
                        );
                        if claim_marker {
                            assert_eq!(seen.rdata.pop(), Some(conn), "RDATA before the hand-out");
                        }
                        seen.handed_out.push((claim, conn));
                    }
                    ResponderEvent::ClaimExpired { claim } => seen.expired.push(claim),
                    ResponderEvent::Registered { conn, .. } => seen.registered.push(conn),
                    ResponderEvent::TunnelLost {
                        conn,
                        reason: LostReason::Closed,
                        ..
                    } => seen.lost.push(conn),
                    other => panic!("unexpected event {other:?}"),
                }
            }
            if !progressed {
                break;
            }
        }
    }
}

fn now0() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Self;
    type Reference = Transitions;

    fn init_test(_ref_state: &usize) -> Self {
        let now = now0();
        let mut config = ResponderConfig {
            keepalive: KeepaliveConfig {
                interval: Duration::from_millis(1000),
                // Misses never kill a tunnel here: liveness is tested elsewhere.
                failure_threshold: u32::MAX,
            },
            claim_timeout: CLAIM_TIMEOUT,
            handshake_timeout: Duration::from_secs(3600),
            ..ResponderConfig::default()
        };
        config.policy.tenant_isolation = true;
        Sut {
            r: Responder::new(config, [3; 32], now).expect("valid config"),
            now,
            model: Model::default(),
        }
    }

    fn apply(mut sut: Self, _ref_state: &usize, transition: Transition) -> Self {
        let mut seen = Observed::default();
        let mut expected_handed = Vec::new();
        let mut expected_expired = Vec::new();
        match transition {
            Transition::Register {
                node,
                tenant,
                claim_marker,
            } => {
                let conn = sut.r.handle_accepted(
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 5000)),
                    None,
                    sut.now,
                );
                let request = HandshakeRequest {
                    method: DEFAULT_REQUEST_METHOD,
                    path: DEFAULT_REQUEST_PATH,
                    host: SocketAddr::from((Ipv4Addr::LOCALHOST, 9000)),
                    node: NODES[node],
                    cluster: CLUSTER,
                    tenant: TENANTS[tenant],
                    target_cluster: "up",
                    initiation_time_ms: 0,
                    upgrade: false,
                    offer_claim_marker: claim_marker,
                    extra_headers: &[],
                }
                .to_bytes();
                sut.r.handle_input(conn, &request, sut.now);
                let key = (TENANTS[tenant].to_owned(), NODES[node].to_owned());
                sut.model.tunnels.insert(conn, (key.clone(), claim_marker));
                sut.model.idle.entry(key).or_default().push_back(conn);
                expected_handed = sut.model.serve(sut.now);
                sut.drain(&mut seen);
                assert_eq!(seen.registered, vec![conn]);
            }
            Transition::Claim { target, tenant } => {
                let target = NODES.get(target).copied().unwrap_or(CLUSTER);
                let tenant = TENANTS[tenant];
                let claim = sut.r.claim(target, Some(tenant), sut.now);
                sut.model.waiting.push_back((
                    claim,
                    tenant.to_owned(),
                    target.to_owned(),
                    sut.now + CLAIM_TIMEOUT,
                ));
                expected_handed = sut.model.serve(sut.now);
                sut.drain(&mut seen);
            }
            Transition::Close { pick } => {
                let live: Vec<ConnId> = sut.model.tunnels.keys().copied().collect();
                if let Some(&conn) = live.get(pick % live.len().max(1)) {
                    sut.r.handle_closed(conn, sut.now);
                    let was_idle = !sut.model.in_use.contains(&conn);
                    sut.model.remove(conn);
                    sut.drain(&mut seen);
                    // An idle tunnel's close is reported back as lost; an in-use one's silently.
                    assert_eq!(seen.lost, if was_idle { vec![conn] } else { vec![] });
                }
            }
            Transition::Echo { pick } => {
                let in_flight: Vec<ConnId> = sut.model.in_flight.keys().copied().collect();
                if let Some(&conn) = in_flight.get(pick % in_flight.len().max(1)) {
                    sut.r.handle_input(conn, &RPING, sut.now);
                    sut.model.in_flight.remove(&conn);
                    expected_handed = sut.model.serve(sut.now);
                    sut.drain(&mut seen);
                }
            }
            Transition::Cancel { pick } => {
                let n = sut.model.waiting.len();
                if n > 0 {
                    let (claim, ..) = sut.model.waiting.remove(pick % n).expect("in range");
                    sut.r.cancel_claim(claim, sut.now);
                    sut.drain(&mut seen);
                }
            }
            Transition::Tick { ms } => {
                let end = sut.now + Duration::from_millis(ms);
                while let Some(due) = sut.r.poll_timeout() {
                    if due > end {
                        break;
                    }
                    sut.now = sut.now.max(due);
                    sut.r.handle_timeout(sut.now);
                    sut.drain(&mut seen);
                }
                sut.now = end;
                for &(conn, sent) in &seen.pings {
                    assert!(
                        !sut.model.in_flight.contains_key(&conn),
                        "two pings in flight on {conn}"
                    );
                    assert!(
                        !sut.model.in_use.contains(&conn),
                        "ping on a handed-out {conn}"
                    );
                    sut.model.in_flight.insert(conn, sent);
                }
                let now = sut.now;
                expected_expired = sut
                    .model
                    .waiting
                    .iter()
                    .filter(|w| w.3 <= now)
                    .map(|w| w.0)
                    .collect();
                sut.model.waiting.retain(|w| w.3 > now);
            }
        }
        // Both modes hand out in the same step as the claim finds the tunnel, oldest claim first.
        assert_eq!(seen.handed_out, expected_handed, "hand-outs");
        assert!(
            seen.rdata.is_empty(),
            "RDATA with no hand-out: {:?}",
            seen.rdata
        );
        assert_eq!(seen.expired, expected_expired, "expiries");
        for (_, conn) in &seen.handed_out {
            assert!(sut.model.in_use.contains(conn));
        }
        sut
    }

    fn check_invariants(sut: &Self, _ref_state: &usize) {
        let counts = sut.r.counts();
        assert!(counts.is_balanced(), "{counts:?}");
        assert_eq!(counts.idle, sut.model.idle_count(), "idle");
        assert_eq!(counts.in_use, sut.model.in_use.len() as u64, "in use");
        assert_eq!(counts.handshaking, 0);
        let stats = sut.r.stats();
        assert_eq!(
            stats.get("reverse_connections.claims.waiting"),
            Some(sut.model.waiting.len() as u64)
        );
        for ((tenant, node), _) in sut.model.tunnels.values().map(|t| (t.0.clone(), ())) {
            let live = sut
                .model
                .tunnels
                .values()
                .filter(|((t, n), _)| *t == tenant && *n == node)
                .count() as u64;
            assert_eq!(
                stats.get(&format!(
                    "reverse_connections.tenants.{tenant}.nodes.{node}"
                )),
                Some(live)
            );
        }
        #[cfg(feature = "fuzzing")]
        sut.r.audit().expect("audit");
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 256,
        .. Config::default()
    })]

    #[test]
    fn pool_matches_the_reference_model(sequential 1..60 => Sut);
}
