//! Fuzz body for the initiator state machine: a sequence of driver operations applied to an [`Initiator`],
//! with a model of what a faithful driver knows about every connection, and the statistics invariants
//! checked after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::command::{Command, ConnId};
use crate::handshake::{Rejection, encode_accept};
use crate::initiator::{ConnectFailure, Initiator, InitiatorConfig, InitiatorEvent, TargetCluster};
use crate::stats::{StatKind, StatsSnapshot};

/// The two target clusters.
const CLUSTERS: [&str; 2] = ["alpha", "beta"];
/// Control bytes before the operations; shorter inputs read as if padded with zeros.
const HEADER_LEN: usize = 4;
/// Wall clock at the fuzz clock's origin.
const UNIX_ORIGIN_MS: u64 = 1_764_201_600_000;
/// How many raw bytes an `InputRaw` operation carries at most.
const MAX_RAW: u8 = 32;

/// The hosts a `SetHosts` mask picks from (one IPv6).
fn hosts() -> [SocketAddr; 4] {
    [
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 9000)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 9000)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 3), 9001)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 9000)),
    ]
}

/// The dictionary of `Input` operations: real responses, markers, and near misses.
fn dictionary() -> Vec<Bytes> {
    let accept_ping = [&encode_accept(false, true)[..], b"RPING"].concat();
    vec![
        encode_accept(false, false),
        encode_accept(false, true),
        encode_accept(true, false),
        encode_accept(true, true),
        Rejection::TooManyTunnels {
            retry_after_secs: Some(2),
        }
        .encode(),
        Rejection::RegistrationUnavailable.encode(),
        Rejection::AuthenticationFailed.encode(),
        Bytes::from_static(b"RPING"),
        Bytes::from_static(b"RDATA"),
        Bytes::from_static(b"RPINGhello"),
        Bytes::from_static(b"RPI"),
        Bytes::from_static(b"NG"),
        Bytes::from_static(b"RPINGRDATAdata"),
        Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
        Bytes::from_static(b"HTTP/1.1 200 OK\r\n"),
        Bytes::from_static(b"\r\n"),
        Bytes::from_static(b"SSH-2.0-OpenSSH\r\n"),
        Bytes::from(accept_ping),
    ]
}

/// One driver operation.
#[derive(Clone, Debug)]
enum Op {
    SetHosts { cluster: usize, mask: u8 },
    Connected(u8),
    ConnectFailed(u8, ConnectFailure),
    Input(u8, usize),
    InputRaw(u8, Vec<u8>),
    Closed(u8),
    Advance(Duration),
    FireNext,
    Shutdown,
    ResolveFailed(usize),
}

/// Reads operations from bytes; a truncated operation ends the sequence.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn op(&mut self) -> Option<Op> {
        Some(match self.byte()? % 10 {
            0 => {
                let a = self.byte()?;
                Op::SetHosts {
                    cluster: usize::from(a & 1),
                    mask: (a >> 1) & 0x0f,
                }
            }
            1 => Op::Connected(self.byte()?),
            2 => {
                let conn = self.byte()?;
                let kind = match self.byte()? % 4 {
                    0 => ConnectFailure::Refused,
                    1 => ConnectFailure::Unreachable,
                    2 => ConnectFailure::TimedOut,
                    _ => ConnectFailure::LocalError,
                };
                Op::ConnectFailed(conn, kind)
            }
            3 => Op::Input(self.byte()?, usize::from(self.byte()?)),
            4 => Op::Closed(self.byte()?),
            5 => Op::Advance(Duration::from_millis(u64::from(self.byte()?) * 10)),
            6 => Op::Shutdown,
            7 => Op::ResolveFailed(usize::from(self.byte()? & 1)),
            8 => Op::FireNext,
            _ => {
                let conn = self.byte()?;
                let len = self.byte()? % (MAX_RAW + 1);
                let mut raw = Vec::with_capacity(usize::from(len));
                for _ in 0..len {
                    raw.push(self.byte()?);
                }
                Op::InputRaw(conn, raw)
            }
        })
    }
}

/// What the driver knows about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    /// Dial ordered, not reported yet.
    Dialling,
    /// Connected (handshaking, or idle once `ready`).
    Open { ready: bool },
    /// The core ordered a close; its event is due in the same drain.
    ClosingByCore,
    /// Handed over by `Claimed`.
    Claimed,
    /// Gone.
    Closed,
}

/// The fuzz driver: the machine, a fake clock, and the model of every connection.
struct Harness {
    init: Initiator,
    origin: Instant,
    now: Instant,
    counts: [u32; 2],
    max: u32,
    conns: BTreeMap<ConnId, (SocketAddr, Driver)>,
    order: Vec<ConnId>,
    listed: [BTreeSet<SocketAddr>; 2],
    failed: BTreeMap<String, u64>,
    cannot_connect: BTreeMap<String, u64>,
    last: StatsSnapshot,
    shut_down: bool,
    dictionary: Vec<Bytes>,
    summary: InitiatorOpsSummary,
}

/// What a run of [`initiator_ops`] went through, so tests can check that a seed reaches what its name says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InitiatorOpsSummary {
    /// Operations decoded and applied.
    pub ops: usize,
    /// `Dial` commands.
    pub dials: u64,
    /// `Close` commands.
    pub closes: u64,
    /// `TunnelReady` events.
    pub ready: u64,
    /// `Claimed` events.
    pub claimed: u64,
    /// `ConnectFailed` events.
    pub connect_failed: u64,
    /// `HandshakeFailed` events.
    pub handshake_failed: u64,
    /// `TunnelLost` events.
    pub lost: u64,
    /// `BackingOff` events.
    pub backoffs: u64,
    /// `CannotConnect` events.
    pub cannot_connect: u64,
}

/// Fuzz body for [`Initiator`]. Never panics on any input except when an invariant breaks.
///
/// Input layout (missing header bytes read as 0):
///
/// | byte | meaning |
/// |---|---|
/// | 0 | flags: bit 0 = upgrade mode; bit 1 = do not offer the claim marker; bits 2..8 = seed |
/// | 1, 2 | `count` of clusters `alpha` and `beta`: `1 + b % 4` |
/// | 3 | `max_tunnels_per_host`: `1 + b % 8` |
/// | 4.. | operations, each an opcode byte (`% 10`) and its arguments, until the input ends |
///
/// | opcode | operation | arguments |
/// |---|---|---|
/// | 0 | `set_hosts` | bit 0 = cluster, bits 1..5 = mask over four hosts (the fourth IPv6) |
/// | 1 | `handle_connected` | connection |
/// | 2 | `handle_connect_failed` | connection, kind (`% 4`: refused, unreachable, timed out, local) |
/// | 3 | `handle_input` from the dictionary | connection, entry (mod its length) |
/// | 4 | `handle_closed` | connection |
/// | 5 | advance the clock by `10 ms × b`, firing every timer due on the way | b |
/// | 6 | `shutdown` | — |
/// | 7 | `handle_resolve_failed` | bit 0 = cluster |
/// | 8 | jump to `poll_timeout` and fire it | — |
/// | 9 | `handle_input` with raw bytes | connection, length (`% 33`), bytes |
///
/// A connection byte below `0x80` picks among the connections the driver holds, otherwise among all ever
/// dialled; `0xff` is an id the core never gave. Timeouts are short (connect 300 ms, handshake 400 ms,
/// idle 500 ms, backoff cap 2 s).
///
/// Asserted after every operation, with all queues drained: `counts()` balanced and equal to the
/// driver's own view (dialling, open, claimed connections); host-level and cluster-level gauges sum to the
/// counts; no counter ever decreases; each cluster's `failed` and `cannot_connect` equal what its events
/// report; dial ids are fresh; transmits, closes and events only concern connections in a phase that
/// allows them, each connection ends once; every host has at most its clusters' `count` attempts in flight
/// and at most `max_tunnels_per_host` live tunnels per cluster; no dial after shutdown; and
/// `poll_timeout` lies after `now`.
pub fn initiator_ops(data: &[u8]) {
    let _ = initiator_ops_summary(data);
}

/// [`initiator_ops`], returning what the run went through.
pub fn initiator_ops_summary(data: &[u8]) -> InitiatorOpsSummary {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let counts = [1 + u32::from(byte(1) % 4), 1 + u32::from(byte(2) % 4)];
    let max = 1 + u32::from(byte(3) % 8);
    let targets = CLUSTERS
        .iter()
        .zip(counts)
        .map(|(name, count)| TargetCluster {
            name: (*name).to_owned(),
            count,
        })
        .collect();
    let mut config = InitiatorConfig::new("node", "edge", "tenant", targets);
    config.upgrade = flags & 1 != 0;
    config.offer_claim_marker = flags & 2 == 0;
    config.connect_timeout = Duration::from_millis(300);
    config.handshake_timeout = Duration::from_millis(400);
    config.idle_timeout = Duration::from_millis(500);
    config.max_reconnect_backoff = Duration::from_secs(2);
    config.max_tunnels_per_host = max;
    // The fuzz body needs some origin for its fake clock; only offsets from it matter, so runs replay.
    #[allow(clippy::disallowed_methods)]
    let origin = Instant::now();
    let init = match Initiator::new(config, [flags >> 2; 32], origin) {
        Ok(init) => init,
        Err(e) => panic!("fuzz config rejected: {e}"),
    };
    let mut h = Harness {
        init,
        origin,
        now: origin,
        counts,
        max,
        conns: BTreeMap::new(),
        order: Vec::new(),
        listed: [BTreeSet::new(), BTreeSet::new()],
        failed: BTreeMap::new(),
        cannot_connect: BTreeMap::new(),
        last: StatsSnapshot::new(),
        shut_down: false,
        dictionary: dictionary(),
        summary: InitiatorOpsSummary::default(),
    };
    let mut reader = Reader(data.get(HEADER_LEN..).unwrap_or_default());
    while let Some(op) = reader.op() {
        h.apply(op);
        h.check();
        h.summary.ops += 1;
    }
    h.summary
}

impl Harness {
    fn unix_ms(&self) -> u64 {
        let elapsed = self.now.saturating_duration_since(self.origin).as_millis();
        UNIX_ORIGIN_MS + u64::try_from(elapsed).unwrap_or(u64::MAX / 2)
    }

    /// The connection a byte names.
    fn pick(&self, b: u8) -> ConnId {
        if b == 0xff || self.order.is_empty() {
            return ConnId(u64::MAX - u64::from(b));
        }
        if b < 0x80 {
            let held: Vec<ConnId> = self
                .order
                .iter()
                .copied()
                .filter(|c| {
                    matches!(
                        self.conns.get(c),
                        Some((_, Driver::Dialling | Driver::Open { .. } | Driver::Claimed))
                    )
                })
                .collect();
            if let Some(&conn) = held.get(usize::from(b) % held.len().max(1)) {
                return conn;
            }
        }
        self.order[usize::from(b) % self.order.len()]
    }

    fn state(&self, conn: ConnId) -> Option<Driver> {
        self.conns.get(&conn).map(|&(_, s)| s)
    }

    fn set(&mut self, conn: ConnId, state: Driver) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.1 = state;
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::SetHosts { cluster, mask } => {
                let hosts: Vec<SocketAddr> = hosts()
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, h)| h)
                    .collect();
                self.listed[cluster] = hosts.iter().copied().collect();
                assert!(self.init.set_hosts(CLUSTERS[cluster], &hosts, now).is_ok());
                assert!(self.init.set_hosts("unknown", &hosts, now).is_err());
            }
            Op::Connected(b) => {
                let conn = self.pick(b);
                if self.state(conn) == Some(Driver::Dialling) {
                    self.set(conn, Driver::Open { ready: false });
                }
                let unix_ms = self.unix_ms();
                self.init.handle_connected(conn, now, unix_ms);
            }
            Op::ConnectFailed(b, kind) => {
                let conn = self.pick(b);
                self.init.handle_connect_failed(conn, kind, now);
            }
            Op::Input(b, entry) => {
                let conn = self.pick(b);
                let data = self.dictionary[entry % self.dictionary.len()].clone();
                self.init.handle_input(conn, &data, now);
            }
            Op::InputRaw(b, raw) => {
                let conn = self.pick(b);
                self.init.handle_input(conn, &raw, now);
            }
            Op::Closed(b) => {
                let conn = self.pick(b);
                if self.state(conn) == Some(Driver::Claimed) {
                    self.set(conn, Driver::Closed);
                }
                self.init.handle_closed(conn, now);
            }
            Op::Advance(d) => {
                let target = now + d;
                while let Some(at) = self.init.poll_timeout().filter(|&at| at <= target) {
                    self.now = self.now.max(at);
                    self.init.handle_timeout(self.now);
                    self.drain();
                }
                self.now = target;
                // A spurious call: nothing is due.
                self.init.handle_timeout(target);
            }
            Op::FireNext => {
                if let Some(at) = self.init.poll_timeout() {
                    self.now = self.now.max(at);
                    self.init.handle_timeout(self.now);
                }
            }
            Op::Shutdown => {
                self.shut_down = true;
                self.init.shutdown(now);
            }
            Op::ResolveFailed(cluster) => self.init.handle_resolve_failed(CLUSTERS[cluster], now),
        }
        self.drain();
    }

    /// Drains every queue as a driver does, checking each output against the model.
    fn drain(&mut self) {
        while let Some(t) = self.init.poll_transmit() {
            assert!(
                matches!(self.state(t.conn), Some(Driver::Open { .. })),
                "transmit on {} in {:?}",
                t.conn,
                self.state(t.conn)
            );
            assert!(!t.data.is_empty(), "empty transmit");
        }
        while let Some(command) = self.init.poll_command() {
            match command {
                Command::Dial { conn, addr } => {
                    self.summary.dials += 1;
                    assert!(!self.shut_down, "dial after shutdown");
                    assert!(
                        self.conns.insert(conn, (addr, Driver::Dialling)).is_none(),
                        "{conn} dialled twice"
                    );
                    self.order.push(conn);
                }
                Command::Close { conn } => {
                    self.summary.closes += 1;
                    assert!(
                        matches!(
                            self.state(conn),
                            Some(Driver::Dialling | Driver::Open { .. })
                        ),
                        "close of {conn} in {:?}",
                        self.state(conn)
                    );
                    self.set(conn, Driver::ClosingByCore);
                }
            }
        }
        while let Some(event) = self.init.poll_event() {
            self.on_event(event);
        }
        assert!(
            !self
                .conns
                .values()
                .any(|&(_, s)| s == Driver::ClosingByCore),
            "a core close without its event"
        );
    }

    fn on_event(&mut self, event: InitiatorEvent) {
        let cluster = event.cluster().to_owned();
        assert!(CLUSTERS.contains(&cluster.as_str()), "cluster {cluster}");
        let state = event.conn().map(|c| self.state(c));
        let s = &mut self.summary;
        match &event {
            InitiatorEvent::TunnelReady { .. } => s.ready += 1,
            InitiatorEvent::Claimed { .. } => s.claimed += 1,
            InitiatorEvent::ConnectFailed { .. } => s.connect_failed += 1,
            InitiatorEvent::HandshakeFailed { .. } => s.handshake_failed += 1,
            InitiatorEvent::TunnelLost { .. } => s.lost += 1,
            InitiatorEvent::BackingOff { .. } => s.backoffs += 1,
            InitiatorEvent::CannotConnect { .. } => s.cannot_connect += 1,
        }
        if let (Some(conn), Some(host)) = (event.conn(), event.host()) {
            assert_eq!(self.conns.get(&conn).map(|&(a, _)| a), Some(host));
        }
        match &event {
            InitiatorEvent::TunnelReady { conn, .. } => match state.flatten() {
                Some(Driver::Open { ready: false }) => {
                    self.set(*conn, Driver::Open { ready: true });
                }
                Some(Driver::ClosingByCore) => {}
                other => panic!("TunnelReady for {conn} in {other:?}"),
            },
            InitiatorEvent::Claimed { conn, .. } => {
                assert_eq!(state.flatten(), Some(Driver::Open { ready: true }));
                self.set(*conn, Driver::Claimed);
            }
            InitiatorEvent::ConnectFailed { conn, error, .. } => {
                assert!(matches!(
                    state.flatten(),
                    Some(Driver::Dialling | Driver::ClosingByCore)
                ));
                self.set(*conn, Driver::Closed);
                let counter = if error.is_failed_attempt() {
                    &mut self.failed
                } else {
                    &mut self.cannot_connect
                };
                *counter.entry(cluster).or_default() += 1;
            }
            InitiatorEvent::HandshakeFailed { conn, .. } => {
                assert!(
                    matches!(
                        state.flatten(),
                        Some(
                            Driver::Dialling
                                | Driver::Open { ready: false }
                                | Driver::ClosingByCore
                        )
                    ),
                    "HandshakeFailed for {conn} in {state:?}"
                );
                self.set(*conn, Driver::Closed);
                *self.failed.entry(cluster).or_default() += 1;
            }
            InitiatorEvent::TunnelLost {
                conn,
                failed_attempt,
                ..
            } => {
                assert!(
                    matches!(
                        state.flatten(),
                        Some(Driver::Dialling | Driver::Open { .. } | Driver::ClosingByCore)
                    ),
                    "TunnelLost for {conn} in {state:?}"
                );
                self.set(*conn, Driver::Closed);
                if *failed_attempt {
                    *self.failed.entry(cluster).or_default() += 1;
                }
            }
            InitiatorEvent::BackingOff { until, .. } => {
                assert!(*until > self.now, "backoff in the past");
            }
            InitiatorEvent::CannotConnect { .. } => {
                *self.cannot_connect.entry(cluster).or_default() += 1;
            }
        }
    }

    /// The invariants, after a drained step.
    fn check(&mut self) {
        let counts = self.init.counts();
        assert!(counts.is_balanced(), "{counts:?}");
        let (mut dialling, mut open, mut claimed) = (0, 0, 0);
        let mut per_host: BTreeMap<SocketAddr, (u64, u64)> = BTreeMap::new();
        for &(addr, state) in self.conns.values() {
            let entry = per_host.entry(addr).or_default();
            match state {
                Driver::Dialling => {
                    dialling += 1;
                    entry.0 += 1;
                }
                Driver::Open { ready } => {
                    open += 1;
                    entry.0 += u64::from(!ready);
                    entry.1 += 1;
                }
                Driver::Claimed => {
                    claimed += 1;
                    entry.1 += 1;
                }
                Driver::ClosingByCore | Driver::Closed => {}
            }
        }
        assert_eq!(counts.connecting, dialling, "dialling");
        assert_eq!(counts.handshaking + counts.idle, open, "open");
        assert_eq!(counts.in_use, claimed, "claimed");
        assert_eq!(counts.opened, self.order.len() as u64, "opened");

        for (host, (establishing, _)) in &per_host {
            let clusters = (0..2).filter(|&i| self.listed[i].contains(host));
            let allowed: u64 = clusters.map(|i| u64::from(self.counts[i])).sum();
            assert!(
                *establishing <= allowed,
                "{host}: {establishing} attempts in flight, count allows {allowed}"
            );
            if let Some(c) = self.init.host_counts(*host) {
                assert_eq!(c.connecting + c.handshaking, *establishing);
                assert!(c.live() <= 2 * u64::from(self.max), "{host}: {c:?}");
            }
        }

        let stats = self.init.stats();
        let sum = |level: &str, state: &str| -> u64 {
            stats
                .iter()
                .filter(|(name, _)| {
                    name.starts_with(&format!("downstream_reverse_connection.{level}."))
                        && name.ends_with(&format!(".{state}"))
                        && !name.contains(".handshake_failed.")
                })
                .map(|(_, v)| v)
                .sum()
        };
        for level in ["host", "cluster"] {
            assert_eq!(
                sum(level, "connecting"),
                counts.connecting + counts.handshaking
            );
            assert_eq!(sum(level, "connected"), counts.idle + counts.in_use);
            assert_eq!(sum(level, "unknown"), 0);
        }
        assert_eq!(sum("host", "idle"), counts.idle);
        assert_eq!(sum("host", "in_use"), counts.in_use);
        for cluster in CLUSTERS {
            let get = |state: &str| {
                stats.get(&format!(
                    "downstream_reverse_connection.cluster.{cluster}.{state}"
                ))
            };
            assert_eq!(
                get("failed"),
                Some(self.failed.get(cluster).copied().unwrap_or(0))
            );
            assert_eq!(
                get("cannot_connect"),
                Some(self.cannot_connect.get(cluster).copied().unwrap_or(0))
            );
        }
        for (name, kind, before) in self.last.iter_with_kind() {
            if kind == StatKind::Counter {
                if let Some(after) = stats.get(name) {
                    assert!(after >= before, "{name} went from {before} to {after}");
                }
            }
        }
        self.last = stats;

        if let Some(at) = self.init.poll_timeout() {
            assert!(at > self.now, "poll_timeout {at:?} not after now");
        }
    }
}
