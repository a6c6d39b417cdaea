//! The initiator state machine, driven by a small fake driver on a fake clock: filling, replacement without
//! a tick, attempts in flight, backoff timings and folding, retry-after, timeouts, claims in both data
//! modes, host removal, the per-host cap, shutdown, statistics by name, determinism, and the committed fuzz
//! corpus.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use revtun_core::RcAddress;
use revtun_core::command::{Command, ConnId};
use revtun_core::handshake::{HeaderError, Rejection, encode_accept};
use revtun_core::initiator::{
    CannotConnectCause, ConnectFailure, HandshakeFailure, Initiator, InitiatorConfig,
    InitiatorConfigError, InitiatorEvent, LostReason, TargetCluster,
};
use revtun_core::stats::StatKind;

const UNIX_ORIGIN_MS: u64 = 1_764_201_600_000;
const PREFIX: &str = "downstream_reverse_connection";

/// An arbitrary origin for the fake clock; only offsets from it matter.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn h1() -> SocketAddr {
    "10.0.0.1:9000".parse().unwrap()
}

fn h2() -> SocketAddr {
    "10.0.0.2:9000".parse().unwrap()
}

fn h6() -> SocketAddr {
    "[2001:db8::1]:9000".parse().unwrap()
}

/// One target cluster `upstream` with `count`, sub-second timeouts.
fn config(count: u32) -> InitiatorConfig {
    let mut c = InitiatorConfig::new(
        "node-1",
        "edge",
        "tenant-a",
        vec![TargetCluster {
            name: "upstream".into(),
            count,
        }],
    );
    c.connect_timeout = ms(300);
    c.handshake_timeout = ms(400);
    c.idle_timeout = ms(500);
    c
}

/// What the fake driver saw, in drain order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Dial(ConnId, SocketAddr),
    Close(ConnId),
    Write(ConnId, Bytes),
    Event(InitiatorEvent),
}

/// The fake driver: drains every queue after every call and checks the counts.
struct Net {
    init: Initiator,
    origin: Instant,
    now: Instant,
    out: Vec<Out>,
    /// Everything ever seen, with `BackingOff` times as offsets, for determinism checks.
    trace: Vec<String>,
}

impl Net {
    fn new(config: InitiatorConfig) -> Self {
        Self::with_seed(config, [7; 32])
    }

    fn with_seed(config: InitiatorConfig, seed: [u8; 32]) -> Self {
        let origin = origin();
        let init = Initiator::new(config, seed, origin).expect("valid config");
        Self {
            init,
            origin,
            now: origin,
            out: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn unix_ms(&self) -> u64 {
        UNIX_ORIGIN_MS + u64::try_from((self.now - self.origin).as_millis()).unwrap()
    }

    fn at(&self, t: Instant) -> Duration {
        t - self.origin
    }

    fn drain(&mut self) {
        while let Some(t) = self.init.poll_transmit() {
            self.record(Out::Write(t.conn, t.data));
        }
        while let Some(c) = self.init.poll_command() {
            match c {
                Command::Dial { conn, addr } => self.record(Out::Dial(conn, addr)),
                Command::Close { conn } => self.record(Out::Close(conn)),
            }
        }
        while let Some(e) = self.init.poll_event() {
            self.record(Out::Event(e));
        }
        self.check();
    }

    fn record(&mut self, out: Out) {
        let line = match &out {
            Out::Event(InitiatorEvent::BackingOff { host, until, .. }) => {
                format!("backoff {host} {:?}", self.at(*until))
            }
            other => format!("{:?} {other:?}", self.at(self.now)),
        };
        self.trace.push(line);
        self.out.push(out);
    }

    /// Counts balanced, gauges equal to the counts, `poll_timeout` after now.
    fn check(&self) {
        let counts = self.init.counts();
        assert!(counts.is_balanced(), "{counts:?}");
        let stats = self.init.stats();
        let prefix = &self.init.config().stat_prefix;
        let sum = |level: &str, state: &str| -> u64 {
            stats
                .iter()
                .filter(|(n, _)| {
                    n.starts_with(&format!("{prefix}.{level}."))
                        && n.ends_with(&format!(".{state}"))
                })
                .filter(|(n, _)| !n.contains(".handshake_failed."))
                .map(|(_, v)| v)
                .sum()
        };
        for level in ["host", "cluster"] {
            assert_eq!(
                sum(level, "connecting"),
                counts.connecting + counts.handshaking
            );
            assert_eq!(sum(level, "connected"), counts.idle + counts.in_use);
        }
        assert_eq!(sum("host", "idle"), counts.idle);
        assert_eq!(sum("host", "in_use"), counts.in_use);
        if let Some(t) = self.init.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout not after now with the queues drained"
            );
        }
    }

    fn take(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    fn set_hosts(&mut self, hosts: &[SocketAddr]) {
        self.init.set_hosts("upstream", hosts, self.now).unwrap();
        self.drain();
    }

    fn connected(&mut self, conn: ConnId) {
        let unix_ms = self.unix_ms();
        self.init.handle_connected(conn, self.now, unix_ms);
        self.drain();
    }

    fn connect_failed(&mut self, conn: ConnId, error: ConnectFailure) {
        self.init.handle_connect_failed(conn, error, self.now);
        self.drain();
    }

    fn input(&mut self, conn: ConnId, data: &[u8]) {
        self.init.handle_input(conn, data, self.now);
        self.drain();
    }

    fn closed(&mut self, conn: ConnId) {
        self.init.handle_closed(conn, self.now);
        self.drain();
    }

    /// Advances the clock to `target`, firing each timer at its deadline, as a faithful driver does.
    fn advance_to(&mut self, target: Instant) {
        while let Some(t) = self.init.poll_timeout().filter(|&t| t <= target) {
            self.now = self.now.max(t);
            self.init.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(target);
    }

    fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    /// Connects `conn` and answers its handshake with 200 (with the claim marker if `marker`).
    fn accept(&mut self, conn: ConnId, marker: bool) {
        self.connected(conn);
        self.input(conn, &encode_accept(false, marker));
    }

    /// Accepts and pings `conn`: an established tunnel whose attempt succeeded.
    fn establish(&mut self, conn: ConnId, marker: bool) {
        self.accept(conn, marker);
        self.input(conn, b"RPING");
    }

    fn stat(&self, name: &str) -> u64 {
        let full = format!("{PREFIX}.{name}");
        self.init
            .stats()
            .get(&full)
            .unwrap_or_else(|| panic!("no statistic {full}"))
    }
}

fn dials(out: &[Out]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|o| match o {
            Out::Dial(c, _) => Some(*c),
            _ => None,
        })
        .collect()
}

fn dials_to(out: &[Out], host: SocketAddr) -> Vec<ConnId> {
    out.iter()
        .filter_map(|o| match o {
            Out::Dial(c, a) if *a == host => Some(*c),
            _ => None,
        })
        .collect()
}

fn closes(out: &[Out]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|o| match o {
            Out::Close(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn events(out: &[Out]) -> Vec<InitiatorEvent> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn writes(out: &[Out], conn: ConnId) -> Vec<Bytes> {
    out.iter()
        .filter_map(|o| match o {
            Out::Write(c, d) if *c == conn => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn backoffs(out: &[Out]) -> Vec<Instant> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(InitiatorEvent::BackingOff { until, .. }) => Some(*until),
            _ => None,
        })
        .collect()
}

/// `d` lies in `[base, 1.15·base)`.
fn assert_jittered(d: Duration, base: Duration) {
    assert!(d >= base, "{d:?} < {base:?}");
    assert!(
        d.as_nanos() * 100 < base.as_nanos() * 115,
        "{d:?} ≥ 1.15 × {base:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Filling and replacement

#[test]
fn fills_count_per_host_and_sends_the_exact_request() {
    let mut net = Net::new(config(3));
    net.set_hosts(&[h1(), h2()]);
    let out = net.take();
    assert_eq!(dials_to(&out, h1()).len(), 3);
    assert_eq!(dials_to(&out, h2()).len(), 3);
    assert_eq!(net.init.counts().connecting, 6);

    let conns = dials(&out);
    net.now += ms(25);
    net.connected(conns[0]);
    let request = writes(&net.take(), conns[0]);
    let expected = format!(
        "GET /reverse_connections/request HTTP/1.1\r\n\
         host: 10.0.0.1:9000\r\n\
         x-envoy-reverse-tunnel-node-id: node-1\r\n\
         x-envoy-reverse-tunnel-cluster-id: edge\r\n\
         x-envoy-reverse-tunnel-tenant-id: tenant-a\r\n\
         x-envoy-reverse-tunnel-upstream-cluster-name: upstream\r\n\
         x-envoy-reverse-tunnel-initiation-time: {}\r\n\
         x-revtun-features: claim-marker\r\n\
         content-length: 0\r\n\r\n",
        UNIX_ORIGIN_MS + 25
    );
    assert_eq!(request, vec![Bytes::from(expected)]);

    for &c in &conns {
        net.establish(c, true);
    }
    let counts = net.init.counts();
    assert_eq!((counts.idle, counts.live()), (6, 6));
    assert_eq!(dials(&net.take()), vec![], "a full pool dials nothing");
    assert_eq!(net.init.host_counts(h1()).unwrap().idle, 3);
    assert_eq!(net.init.host_counts("10.9.9.9:1".parse().unwrap()), None);
    // Setting the same hosts again changes nothing.
    net.set_hosts(&[h2(), h1(), h1()]);
    assert_eq!(net.take(), vec![]);
}

#[test]
fn claim_is_replaced_at_once_without_a_tick() {
    let mut net = Net::new(config(2));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    for &c in &conns {
        net.establish(c, true);
    }
    net.take();
    net.input(conns[0], b"RDATA");
    let out = net.take();
    assert_eq!(
        dials(&out).len(),
        1,
        "replacement dialled in the same call: {out:?}"
    );
    assert_eq!(net.init.counts().in_use, 1);
    assert_eq!(net.init.counts().connecting, 1);
    assert_eq!(net.now, net.origin, "no time passed");
}

#[test]
fn loss_after_first_ping_is_replaced_at_once_without_backoff() {
    let mut net = Net::new(config(2));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    for &c in &conns {
        net.establish(c, false);
    }
    net.take();
    net.closed(conns[1]);
    let out = net.take();
    assert_eq!(
        events(&out)[0],
        InitiatorEvent::TunnelLost {
            conn: conns[1],
            cluster: "upstream".into(),
            host: h1(),
            reason: LostReason::Closed,
            failed_attempt: false,
        }
    );
    assert_eq!(
        closes(&out),
        vec![],
        "the driver reported the close: no Close order"
    );
    assert_eq!(dials(&out).len(), 1);
    assert!(backoffs(&out).is_empty());
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 0);
}

#[test]
fn never_more_than_count_attempts_in_flight() {
    let mut net = Net::new(config(3));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    assert_eq!(conns.len(), 3);
    // Handshakes pending, one tunnel up and claimed, another lost: still at most 3 in flight.
    net.connected(conns[0]);
    net.connected(conns[1]);
    net.set_hosts(&[h1()]);
    assert_eq!(dials(&net.take()), vec![]);
    net.input(conns[0], &encode_accept(false, true));
    net.input(conns[0], b"RPINGRDATA");
    let out = net.take();
    assert_eq!(dials(&out).len(), 1, "claimed: one replacement");
    let c = net.init.counts();
    assert_eq!(c.connecting + c.handshaking, 3);
    assert_eq!(c.connecting + c.handshaking + c.idle, 3);
}

// ---------------------------------------------------------------------------------------------------------
// Backoff

#[test]
fn connect_failures_back_off_exponentially_with_jitter() {
    let mut cfg = config(1);
    cfg.max_reconnect_backoff = Duration::from_secs(4);
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let mut conn = dials(&net.take())[0];
    for base in [1, 2, 4, 4, 4] {
        let failed_at = net.now;
        net.connect_failed(conn, ConnectFailure::Refused);
        let out = net.take();
        let until = backoffs(&out);
        assert_eq!(until.len(), 1, "{out:?}");
        assert_jittered(until[0] - failed_at, Duration::from_secs(base));
        assert_eq!(dials(&out), vec![], "no dial during backoff");
        assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 1);
        // Just before the end: nothing.
        net.advance_to(until[0] - ms(1));
        assert_eq!(dials(&net.take()), vec![]);
        net.advance_to(until[0]);
        let out = net.take();
        assert_eq!(dials(&out).len(), 1, "dialled again when the backoff ended");
        assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 0);
        conn = dials(&out)[0];
    }
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 5);
    assert_eq!(net.stat("cluster.upstream.failed"), 5);
}

#[test]
fn one_outage_of_count_attempts_is_one_backoff_step() {
    let mut net = Net::new(config(4));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    net.now += ms(10);
    let start = net.now;
    // The four attempts of one outage fail one after the other.
    for &c in &conns {
        net.connect_failed(c, ConnectFailure::Refused);
        net.now += ms(20);
    }
    let out = net.take();
    let until = backoffs(&out);
    assert_eq!(
        until.len(),
        1,
        "one backoff for four failures of one outage"
    );
    assert_jittered(until[0] - start, Duration::from_secs(1));
    assert_eq!(
        net.stat("host.10.0.0.1:9000.failed"),
        4,
        "every attempt counts"
    );

    net.advance_to(until[0]);
    let conns = dials(&net.take());
    assert_eq!(conns.len(), 4);
    let start = net.now;
    for &c in &conns {
        net.connect_failed(c, ConnectFailure::Unreachable);
    }
    let until = backoffs(&net.take());
    assert_eq!(until.len(), 1);
    assert_jittered(until[0] - start, Duration::from_secs(2));
}

#[test]
fn retry_after_of_a_429_sets_the_backoff() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connected(conn);
    let rejection = Rejection::TooManyTunnels {
        retry_after_secs: Some(7),
    };
    net.input(conn, &rejection.encode());
    let out = net.take();
    assert_eq!(closes(&out), vec![conn]);
    match &events(&out)[0] {
        InitiatorEvent::HandshakeFailed { reason, .. } => {
            assert_eq!(reason.counter(), "http_429");
        }
        other => panic!("{other:?}"),
    }
    let until = backoffs(&out);
    assert_jittered(until[0] - net.now, Duration::from_secs(7));
    assert_eq!(net.stat("host.10.0.0.1:9000.handshake_failed.http_429"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);

    // Another status's retry-after is only a hint: the usual 2 s step.
    net.advance_to(until[0]);
    let conn = dials(&net.take())[0];
    net.connected(conn);
    net.input(
        conn,
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 60\r\ncontent-length: 0\r\n\r\n",
    );
    let until = backoffs(&net.take());
    assert_jittered(until[0] - net.now, Duration::from_secs(2));
}

#[test]
fn local_errors_count_cannot_connect_and_back_off() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connect_failed(conn, ConnectFailure::LocalError);
    let out = net.take();
    assert_eq!(backoffs(&out).len(), 1, "a local error must not spin");
    assert_eq!(dials(&out), vec![]);
    assert_eq!(net.stat("host.10.0.0.1:9000.cannot_connect"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 0);
    assert_eq!(net.stat("cluster.upstream.cannot_connect"), 1);
    assert_eq!(
        ConnectFailure::from_io_kind(std::io::ErrorKind::ConnectionRefused),
        ConnectFailure::Refused
    );
    assert_eq!(
        ConnectFailure::from_io_kind(std::io::ErrorKind::OutOfMemory),
        ConnectFailure::LocalError
    );
}

#[test]
fn success_resets_the_backoff_and_sets_recovered() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connect_failed(conn, ConnectFailure::Refused);
    let until = backoffs(&net.take())[0];
    net.advance_to(until);
    let conn = dials(&net.take())[0];
    net.connect_failed(conn, ConnectFailure::Refused);
    let until = backoffs(&net.take())[0];
    assert_jittered(until - net.now, Duration::from_secs(2));
    assert_eq!(net.stat("host.10.0.0.1:9000.recovered"), 0);
    net.advance_to(until);
    let conn = dials(&net.take())[0];
    net.accept(conn, true);
    assert_eq!(
        net.stat("host.10.0.0.1:9000.recovered"),
        0,
        "success is the first RPING"
    );
    net.input(conn, b"RPING");
    assert_eq!(net.stat("host.10.0.0.1:9000.recovered"), 1);
    assert_eq!(net.stat("cluster.upstream.recovered"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 0);
    // The next failure starts again at 1 s, and recovered drops.
    net.closed(conn);
    let conn = dials(&net.take())[0];
    net.connect_failed(conn, ConnectFailure::Refused);
    let until = backoffs(&net.take())[0];
    assert_jittered(until - net.now, Duration::from_secs(1));
    assert_eq!(net.stat("host.10.0.0.1:9000.recovered"), 0);
}

#[test]
fn first_ping_during_a_backoff_ends_it() {
    let mut net = Net::new(config(2));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    net.accept(conns[0], true);
    net.connect_failed(conns[1], ConnectFailure::Refused);
    assert_eq!(backoffs(&net.take()).len(), 1);
    net.input(conns[0], b"RPING");
    let out = net.take();
    assert_eq!(
        dials(&out).len(),
        1,
        "success ended the backoff: dial at once"
    );
    assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 0);
    assert_eq!(net.stat("host.10.0.0.1:9000.recovered"), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Timeouts and early deaths

#[test]
fn connect_timeout_closes_and_fails_the_attempt() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.advance(ms(299));
    assert_eq!(net.take(), vec![]);
    net.advance(ms(1));
    let out = net.take();
    assert_eq!(closes(&out), vec![conn]);
    assert!(matches!(
        events(&out)[0],
        InitiatorEvent::ConnectFailed {
            error: ConnectFailure::TimedOut,
            ..
        }
    ));
    assert_eq!(backoffs(&out).len(), 1);
    // The driver's late report about the forgotten connection is ignored.
    net.connected(conn);
    assert_eq!(net.take(), vec![]);
}

#[test]
fn handshake_timeout_closes_silently_and_counts() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.advance(ms(100));
    net.connected(conn);
    net.input(conn, b"HTTP/1.1 200 OK\r\n");
    net.take();
    net.advance(ms(399));
    assert_eq!(net.take(), vec![], "the timeout runs from the connect");
    net.advance(ms(1));
    let out = net.take();
    assert_eq!(closes(&out), vec![conn]);
    assert_eq!(
        events(&out)[0],
        InitiatorEvent::HandshakeFailed {
            conn,
            cluster: "upstream".into(),
            host: h1(),
            reason: HandshakeFailure::Timeout,
        }
    );
    assert_eq!(net.stat("host.10.0.0.1:9000.handshake_failed.timeout"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);
}

#[test]
fn handshake_failures_count_by_reason() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let cases: [(&[u8], &str); 4] = [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "malformed"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
            "malformed",
        ),
        (&Rejection::AuthenticationFailed.encode(), "http_401"),
        (b"", "closed"),
    ];
    for (response, reason) in cases {
        let conn = dials(&net.take())
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no dial before {reason}"));
        net.connected(conn);
        if response.is_empty() {
            net.closed(conn);
        } else {
            net.input(conn, response);
        }
        let until = backoffs(&net.out)[0];
        assert!(
            net.stat(&format!("host.10.0.0.1:9000.handshake_failed.{reason}")) >= 1,
            "{reason}"
        );
        net.advance_to(until);
    }
    assert_eq!(net.stat("host.10.0.0.1:9000.handshake_failed.malformed"), 2);
    assert_eq!(net.stat("host.10.0.0.1:9000.handshake_failed.tls"), 0);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 4);
}

#[test]
fn idle_timeout_closes_and_replaces() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.establish(conn, true);
    net.take();
    // Pings keep it alive: each re-arms the 500 ms timer.
    for _ in 0..3 {
        net.advance(ms(400));
        net.input(conn, b"RPING");
    }
    assert_eq!(closes(&net.take()), vec![]);
    net.advance(ms(499));
    assert_eq!(closes(&net.take()), vec![]);
    net.advance(ms(1));
    let out = net.take();
    assert_eq!(closes(&out), vec![conn]);
    assert!(matches!(
        events(&out)[0],
        InitiatorEvent::TunnelLost {
            reason: LostReason::IdleTimeout,
            failed_attempt: false,
            ..
        }
    ));
    assert_eq!(dials(&out).len(), 1, "replaced at once: it had pinged");
    assert!(backoffs(&out).is_empty());
}

#[test]
fn death_before_the_first_ping_is_a_failed_attempt() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.accept(conn, true);
    let out = net.take();
    assert!(matches!(
        events(&out)[0],
        InitiatorEvent::TunnelReady { .. }
    ));
    net.closed(conn);
    let out = net.take();
    assert_eq!(
        events(&out)[0],
        InitiatorEvent::TunnelLost {
            conn,
            cluster: "upstream".into(),
            host: h1(),
            reason: LostReason::Closed,
            failed_attempt: true,
        }
    );
    assert_eq!(backoffs(&out).len(), 1, "no hot reconnect loop");
    assert_eq!(dials(&out), vec![]);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);

    // An idle timeout before the first ping fails the attempt too.
    net.advance_to(backoffs(&out)[0]);
    let conn = dials(&net.take())[0];
    net.accept(conn, true);
    net.take();
    net.advance(ms(500));
    let out = net.take();
    assert!(matches!(
        events(&out)[0],
        InitiatorEvent::TunnelLost {
            reason: LostReason::IdleTimeout,
            failed_attempt: true,
            ..
        }
    ));
    assert_eq!(backoffs(&out).len(), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 2);
}

// ---------------------------------------------------------------------------------------------------------
// Idle phase and claims

#[test]
fn envoy_mode_claim_echoes_then_hands_over_the_data() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.accept(conn, false);
    net.take();
    net.input(conn, b"RPINGRPI");
    assert_eq!(
        writes(&net.take(), conn),
        vec![Bytes::from_static(b"RPING")]
    );
    net.input(conn, b"NGRPINGhello");
    let out = net.take();
    assert_eq!(writes(&out, conn), vec![Bytes::from_static(b"RPINGRPING")]);
    let claimed = events(&out)
        .into_iter()
        .find(|e| matches!(e, InitiatorEvent::Claimed { .. }))
        .expect("claimed");
    assert_eq!(
        claimed,
        InitiatorEvent::Claimed {
            conn,
            cluster: "upstream".into(),
            host: h1(),
            data: Bytes::from_static(b"hello"),
        }
    );
    // The echoes were queued before the event.
    let write_at = out
        .iter()
        .position(|o| matches!(o, Out::Write(..)))
        .unwrap();
    let event_at = out
        .iter()
        .position(|o| matches!(o, Out::Event(InitiatorEvent::Claimed { .. })))
        .unwrap();
    assert!(write_at < event_at);
    assert_eq!(net.init.counts().in_use, 1);
    // The driver owns the socket: input is ignored, no timer fires for it.
    net.input(conn, b"RPING");
    assert!(writes(&net.take(), conn).is_empty());
    net.advance(Duration::from_secs(5));
    assert!(!closes(&net.take()).contains(&conn));
    assert_eq!(net.init.counts().in_use, 1);
    net.closed(conn);
    assert_eq!(net.init.counts().in_use, 0);
}

#[test]
fn claim_marker_claim_answers_rdata_before_the_event() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.accept(conn, true);
    net.take();
    net.input(conn, b"RPINGRDATARPING is data");
    let out = net.take();
    assert_eq!(
        writes(&out, conn),
        vec![Bytes::from_static(b"RPING"), Bytes::from_static(b"RDATA")]
    );
    assert!(matches!(out[0], Out::Write(..)) && matches!(out[1], Out::Write(..)));
    assert!(events(&out).contains(&InitiatorEvent::Claimed {
        conn,
        cluster: "upstream".into(),
        host: h1(),
        data: Bytes::from_static(b"RPING is data"),
    }));
}

#[test]
fn claim_before_the_first_ping_is_a_success() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connected(conn);
    net.take();
    // The response and the claim in one read: ready first, then claimed.
    let read = [&encode_accept(false, true)[..], b"RDATA"].concat();
    net.input(conn, &read);
    let out = net.take();
    let kinds: Vec<_> = events(&out)
        .iter()
        .map(|e| match e {
            InitiatorEvent::TunnelReady { .. } => "ready",
            InitiatorEvent::Claimed { .. } => "claimed",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ready", "claimed"]);
    assert_eq!(writes(&out, conn), vec![Bytes::from_static(b"RDATA")]);
    assert_eq!(dials(&out).len(), 1);
    net.closed(conn);
    assert!(
        backoffs(&net.take()).is_empty(),
        "an in-use tunnel's end is no failure"
    );
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 0);
}

#[test]
fn claim_marker_protocol_error_closes_the_tunnel() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.establish(conn, true);
    net.take();
    net.input(conn, b"hello");
    let out = net.take();
    assert_eq!(closes(&out), vec![conn]);
    assert!(matches!(
        &events(&out)[0],
        InitiatorEvent::TunnelLost {
            reason: LostReason::ProtocolError(_),
            failed_attempt: false,
            ..
        }
    ));
    assert_eq!(dials(&out).len(), 1);
}

#[test]
fn upgrade_mode_expects_101() {
    let mut cfg = config(1);
    cfg.upgrade = true;
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connected(conn);
    let request = writes(&net.take(), conn).concat();
    let text = String::from_utf8(request).unwrap();
    assert!(
        text.contains("host: 10.0.0.1:9000\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n")
    );
    net.input(conn, &encode_accept(true, true));
    assert!(matches!(
        events(&net.take())[0],
        InitiatorEvent::TunnelReady { .. }
    ));
}

#[test]
fn initiation_time_is_kept_while_the_host_has_tunnels() {
    let mut net = Net::new(config(2));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    let header = |net: &mut Net, conn| {
        let text = String::from_utf8(writes(&net.take(), conn).concat()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("x-envoy-reverse-tunnel-initiation-time: "))
            .map(str::to_owned)
            .unwrap()
    };
    net.now += ms(10);
    net.connected(conns[0]);
    assert_eq!(
        header(&mut net, conns[0]),
        (UNIX_ORIGIN_MS + 10).to_string()
    );
    net.now += ms(10);
    net.connected(conns[1]);
    assert_eq!(
        header(&mut net, conns[1]),
        (UNIX_ORIGIN_MS + 10).to_string()
    );
    net.input(conns[0], &encode_accept(false, true));
    net.input(conns[0], b"RPING");
    net.input(conns[1], &encode_accept(false, true));
    net.input(conns[1], b"RPING");
    net.take();
    // Lose one: the host still has a tunnel, so the replacement keeps the time.
    net.now += ms(10);
    net.closed(conns[0]);
    let c = dials(&net.take())[0];
    net.connected(c);
    assert_eq!(header(&mut net, c), (UNIX_ORIGIN_MS + 10).to_string());
    // Lose every established tunnel: the next try starts a new time.
    net.closed(conns[1]);
    let d = dials(&net.take())[0];
    net.now += ms(10);
    net.connected(d);
    assert_eq!(header(&mut net, d), (UNIX_ORIGIN_MS + 40).to_string());
}

// ---------------------------------------------------------------------------------------------------------
// Hosts, cap, shutdown

#[test]
fn removed_host_closes_idle_and_handshaking_but_not_in_use() {
    let mut net = Net::new(config(3));
    net.set_hosts(&[h1(), h2()]);
    let out = net.take();
    let on_h1 = dials_to(&out, h1());
    net.establish(on_h1[0], true);
    net.input(on_h1[0], b"RDATA");
    net.establish(on_h1[1], true);
    net.connected(on_h1[2]);
    let replacement = dials(&net.take());
    assert_eq!(replacement.len(), 1);
    // h1 now: in use, idle, handshaking, dialling.
    net.connect_failed(replacement[0], ConnectFailure::Refused);
    net.take();
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);

    net.set_hosts(&[h2()]);
    let out = net.take();
    let mut closed = closes(&out);
    closed.sort();
    assert_eq!(closed, vec![on_h1[1], on_h1[2]]);
    assert_eq!(
        dials(&out),
        vec![],
        "no dial to a removed host, none needed for h2"
    );
    let lost: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                InitiatorEvent::TunnelLost {
                    reason: LostReason::HostRemoved,
                    failed_attempt: false,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(lost.len(), 2);
    assert_eq!(net.stat("host.10.0.0.1:9000.in_use"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 0);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);

    // The in-use tunnel finishes: the host's names go, the cluster keeps its counter; nothing is dialled.
    net.closed(on_h1[0]);
    assert_eq!(dials(&net.take()), vec![]);
    assert_eq!(
        net.init
            .stats()
            .get(&format!("{PREFIX}.host.10.0.0.1:9000.failed")),
        None
    );
    assert_eq!(net.stat("cluster.upstream.failed"), 1);
    assert_eq!(net.init.host_counts(h1()), None);

    // Added again: dialled at once, counters start over at host level.
    net.set_hosts(&[h1(), h2()]);
    assert_eq!(dials_to(&net.take(), h1()).len(), 3);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 0);
    assert_eq!(net.stat("cluster.upstream.failed"), 1);
}

#[test]
fn removed_host_stops_its_backoff_and_a_readded_one_keeps_its_pool() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.establish(conn, false);
    net.input(conn, b"data");
    let c = dials(&net.take())[0];
    net.connect_failed(c, ConnectFailure::Refused);
    let until = backoffs(&net.take())[0];
    net.set_hosts(&[]);
    let out = net.take();
    assert_eq!(
        events(&out),
        vec![InitiatorEvent::CannotConnect {
            cluster: "upstream".into(),
            cause: CannotConnectCause::NoHosts,
        }]
    );
    net.advance_to(until + ms(1));
    assert_eq!(
        dials(&net.take()),
        vec![],
        "a removed host's backoff does not dial"
    );
    // Back while its in-use tunnel still runs: same pool, counters kept, dialled at once.
    net.set_hosts(&[h1()]);
    assert_eq!(dials(&net.take()).len(), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.in_use"), 1);
    assert_eq!(net.stat("cluster.upstream.cannot_connect"), 1);
}

#[test]
fn max_tunnels_per_host_caps_replacement() {
    let mut cfg = config(2);
    cfg.max_tunnels_per_host = 3;
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    for &c in &conns {
        net.establish(c, true);
    }
    net.input(conns[0], b"RDATA");
    let third = dials(&net.take());
    assert_eq!(third.len(), 1, "live 2 → 3");
    net.establish(third[0], true);
    net.input(conns[1], b"RDATA");
    assert_eq!(dials(&net.take()), vec![], "live 3 = max: no replacement");
    assert_eq!(net.init.counts().live(), 3);
    net.closed(conns[0]);
    assert_eq!(
        dials(&net.take()).len(),
        1,
        "an in-use tunnel finished: room again"
    );
}

#[test]
fn a_host_in_two_clusters_is_two_pools() {
    let mut cfg = config(2);
    cfg.targets.push(TargetCluster {
        name: "other".into(),
        count: 1,
    });
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    net.init.set_hosts("other", &[h1()], net.now).unwrap();
    net.drain();
    let out = net.take();
    assert_eq!(dials_to(&out, h1()).len(), 3);
    assert_eq!(net.stat("host.10.0.0.1:9000.connecting"), 3);
    assert_eq!(net.stat("cluster.upstream.connecting"), 2);
    assert_eq!(net.stat("cluster.other.connecting"), 1);
    assert_eq!(net.init.host_counts(h1()).unwrap().connecting, 3);
    // The request names the target cluster of the pool.
    let last = *dials(&out).last().unwrap();
    net.connected(last);
    let text = String::from_utf8(writes(&net.take(), last).concat()).unwrap();
    assert!(text.contains("x-envoy-reverse-tunnel-upstream-cluster-name: other\r\n"));
    // Failing in one cluster backs off only that pool.
    net.connect_failed(dials(&out)[0], ConnectFailure::Refused);
    let out = net.take();
    assert_eq!(backoffs(&out).len(), 1);
    assert_eq!(net.stat("cluster.upstream.backoff"), 1);
    assert_eq!(net.stat("cluster.other.backoff"), 0);
    assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 1);
    // Removing it from one cluster keeps its host-level counter.
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);
    net.set_hosts(&[]);
    assert_eq!(net.stat("host.10.0.0.1:9000.failed"), 1);
    assert_eq!(net.stat("cluster.upstream.failed"), 1);
    assert_eq!(
        net.init.set_hosts("nope", &[h1()], net.now),
        Err(revtun_core::initiator::UnknownCluster("nope".into()))
    );
}

#[test]
fn resolve_failure_counts_cannot_connect_and_keeps_hosts() {
    let mut net = Net::new(config(1));
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.init.handle_resolve_failed("upstream", net.now);
    net.init.handle_resolve_failed("nope", net.now);
    net.drain();
    assert_eq!(
        events(&net.take()),
        vec![InitiatorEvent::CannotConnect {
            cluster: "upstream".into(),
            cause: CannotConnectCause::ResolveFailed,
        }]
    );
    assert_eq!(net.stat("cluster.upstream.cannot_connect"), 1);
    assert_eq!(net.stat("host.10.0.0.1:9000.cannot_connect"), 0);
    net.establish(conn, true);
    assert_eq!(net.init.counts().idle, 1);
}

#[test]
fn shutdown_closes_all_but_in_use_and_never_dials_again() {
    let mut net = Net::new(config(3));
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    net.establish(conns[0], true);
    net.input(conns[0], b"RDATA");
    net.establish(conns[1], true);
    net.connected(conns[2]);
    let fourth = dials(&net.take())[0];
    net.connect_failed(fourth, ConnectFailure::Refused);
    net.take();
    net.init.shutdown(net.now);
    net.drain();
    assert!(net.init.is_shut_down());
    let out = net.take();
    let mut closed = closes(&out);
    closed.sort();
    assert_eq!(closed, vec![conns[1], conns[2]]);
    assert!(events(&out).iter().all(|e| matches!(
        e,
        InitiatorEvent::TunnelLost {
            reason: LostReason::Shutdown,
            ..
        }
    )));
    assert_eq!(net.stat("host.10.0.0.1:9000.backoff"), 0);
    net.advance(Duration::from_secs(60));
    net.set_hosts(&[h1(), h2()]);
    net.closed(conns[0]);
    assert_eq!(dials(&net.take()), vec![]);
    assert_eq!(net.init.counts().live(), 0);
    assert_eq!(net.init.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------------------------
// Driver misuse, time, the timer

#[test]
fn unknown_and_misplaced_reports_are_ignored() {
    let mut net = Net::new(config(1));
    let ghost = ConnId(4242);
    net.connected(ghost);
    net.connect_failed(ghost, ConnectFailure::Refused);
    net.input(ghost, b"RPING");
    net.closed(ghost);
    assert_eq!(net.take(), vec![]);
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.input(conn, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(net.take(), vec![], "input while dialling is ignored");
    net.connected(conn);
    net.take();
    net.connected(conn);
    net.connect_failed(conn, ConnectFailure::Refused);
    assert_eq!(
        net.take(),
        vec![],
        "reports for the wrong phase are ignored"
    );
    assert_eq!(net.init.counts().handshaking, 1);
}

#[test]
fn poll_timeout_is_now_while_output_is_queued_and_time_never_goes_back() {
    let origin = origin();
    let mut init = Initiator::new(config(1), [1; 32], origin).unwrap();
    assert_eq!(init.poll_timeout(), None);
    let later = origin + ms(50);
    init.set_hosts("upstream", &[h1()], later).unwrap();
    assert_eq!(init.poll_timeout(), Some(later), "a Dial is queued");
    let Some(Command::Dial { conn, .. }) = init.poll_command() else {
        panic!("no dial");
    };
    assert_eq!(init.poll_timeout(), Some(later + ms(300)));
    // Spurious and early timeouts do nothing; an earlier `now` is taken as the latest.
    init.handle_timeout(origin);
    init.handle_timeout(later + ms(299));
    assert_eq!(init.poll_command(), None);
    init.handle_connected(conn, origin, UNIX_ORIGIN_MS);
    assert!(init.poll_transmit().is_some());
    assert_eq!(
        init.poll_timeout(),
        Some(later + ms(299) + ms(400)),
        "the handshake timer starts at the latest now seen"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and determinism

#[test]
fn stats_names_and_values_exactly() {
    let mut cfg = config(2);
    cfg.idle_timeout = Duration::from_secs(5);
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    net.establish(conns[0], true);
    net.connected(conns[1]);
    net.input(conns[1], &Rejection::RegistrationUnavailable.encode());
    let until = backoffs(&net.take())[0];
    let host = |s: &str| format!("{PREFIX}.host.10.0.0.1:9000.{s}");
    let cluster = |s: &str| format!("{PREFIX}.cluster.upstream.{s}");
    let expected = |backoff: u64, recovered: u64, connecting: u64| {
        use StatKind::{Counter, Gauge};
        let mut v = vec![
            (cluster("backoff"), Gauge, backoff),
            (cluster("cannot_connect"), Counter, 0),
            (cluster("connected"), Gauge, 1),
            (cluster("connecting"), Gauge, connecting),
            (cluster("failed"), Counter, 1),
            (cluster("recovered"), Gauge, recovered),
            (cluster("unknown"), Gauge, 0),
            (host("backoff"), Gauge, backoff),
            (host("cannot_connect"), Counter, 0),
            (host("connected"), Gauge, 1),
            (host("connecting"), Gauge, connecting),
            (host("failed"), Counter, 1),
            (host("handshake_failed.closed"), Counter, 0),
            (host("handshake_failed.http_503"), Counter, 1),
            (host("handshake_failed.malformed"), Counter, 0),
            (host("handshake_failed.timeout"), Counter, 0),
            (host("handshake_failed.tls"), Counter, 0),
            (host("idle"), Gauge, 1),
            (host("in_use"), Gauge, 0),
            (host("recovered"), Gauge, recovered),
            (host("unknown"), Gauge, 0),
        ];
        v.sort();
        v
    };
    let snapshot = |net: &Net| {
        net.init
            .stats()
            .iter_with_kind()
            .map(|(n, k, v)| (n.to_owned(), k, v))
            .collect::<Vec<_>>()
    };
    assert_eq!(snapshot(&net), expected(1, 0, 0));
    net.advance_to(until);
    assert_eq!(snapshot(&net), expected(0, 0, 1));
    let conn = dials(&net.take())[0];
    net.establish(conn, true);
    net.closed(conn);
    let conn = dials(&net.take())[0];
    assert_eq!(snapshot(&net), expected(0, 1, 1));
    net.establish(conn, true);

    // IPv6 hosts are written [addr]:port; the prefix is configurable.
    let mut cfg = config(1);
    cfg.stat_prefix = "edge_rc".into();
    let mut net = Net::new(cfg);
    net.set_hosts(&[h6()]);
    assert_eq!(
        net.init
            .stats()
            .get("edge_rc.host.[2001:db8::1]:9000.connecting"),
        Some(1)
    );
}

/// A scenario with failures, jitter, claims and losses; returns the trace.
fn scripted_run(seed: [u8; 32]) -> Vec<String> {
    let mut net = Net::with_seed(config(3), seed);
    net.set_hosts(&[h1(), h2()]);
    for round in 0..6u64 {
        let out = net.take();
        for (i, conn) in dials(&out).into_iter().enumerate() {
            match (round + i as u64) % 4 {
                0 => net.connect_failed(conn, ConnectFailure::Refused),
                1 => net.establish(conn, true),
                2 => {
                    net.establish(conn, true);
                    net.input(conn, b"RDATApayload");
                }
                _ => {
                    net.connected(conn);
                    net.input(
                        conn,
                        &Rejection::TooManyTunnels {
                            retry_after_secs: Some(1),
                        }
                        .encode(),
                    );
                }
            }
        }
        net.advance(Duration::from_millis(1500 + 300 * round));
    }
    net.trace
}

#[test]
fn same_seed_gives_the_same_trace() {
    let a = scripted_run([3; 32]);
    let b = scripted_run([3; 32]);
    assert!(a.len() > 50, "the scenario does something: {}", a.len());
    assert_eq!(a, b);
    let c = scripted_run([4; 32]);
    assert_ne!(a, c, "the seed drives the jitter");
}

// ---------------------------------------------------------------------------------------------------------
// Configuration

#[test]
fn config_from_addresses() {
    let a: RcAddress = "rc://node-1:edge:t@upstream:4".parse().unwrap();
    let b: RcAddress = "rc://node-1:edge:t@other:2".parse().unwrap();
    let cfg = InitiatorConfig::from_addresses(&[a.clone(), b]).unwrap();
    assert_eq!(
        (cfg.node.as_str(), cfg.cluster.as_str(), cfg.tenant.as_str()),
        ("node-1", "edge", "t")
    );
    assert_eq!(
        cfg.targets,
        vec![
            TargetCluster {
                name: "upstream".into(),
                count: 4
            },
            TargetCluster {
                name: "other".into(),
                count: 2
            },
        ]
    );
    assert_eq!(cfg.request_method, "GET");
    assert_eq!(cfg.request_path, "/reverse_connections/request");
    assert!(cfg.offer_claim_marker && !cfg.upgrade);
    assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
    assert_eq!(cfg.handshake_timeout, Duration::from_secs(10));
    assert_eq!(cfg.idle_timeout, Duration::from_secs(10));
    assert_eq!(cfg.max_reconnect_backoff, Duration::from_secs(30));
    assert_eq!(cfg.max_tunnels_per_host, 256);
    assert_eq!(cfg.stat_prefix, "downstream_reverse_connection");

    assert_eq!(
        InitiatorConfig::from_addresses(&[]),
        Err(InitiatorConfigError::NoTargets)
    );
    let other_tenant: RcAddress = "rc://node-1:edge:u@other:2".parse().unwrap();
    assert_eq!(
        InitiatorConfig::from_addresses(&[a.clone(), other_tenant]),
        Err(InitiatorConfigError::MixedIdentity {
            field: "tenant",
            first: "t".into(),
            other: "u".into(),
        })
    );
    let err = InitiatorConfig::from_addresses(&[a.clone(), a]).unwrap_err();
    assert_eq!(
        err,
        InitiatorConfigError::DuplicateTarget {
            name: "upstream".into()
        }
    );
    assert!(err.to_string().starts_with("targets:"), "{err}");
}

#[test]
fn config_validation_names_the_field() {
    let check = |edit: fn(&mut InitiatorConfig), field: &str| {
        let mut cfg = config(1);
        edit(&mut cfg);
        let err = Initiator::new(cfg, [0; 32], origin()).unwrap_err();
        assert!(
            err.to_string().starts_with(field),
            "{err} should name {field}"
        );
    };
    check(|c| c.targets.clear(), "targets");
    check(|c| c.targets[0].count = 0, "targets");
    check(|c| c.targets[0].count = 1025, "targets");
    check(|c| c.node.clear(), "targets");
    check(|c| c.targets[0].name = "a:b".into(), "targets");
    check(|c| c.request_method = "G T".into(), "request_method");
    check(|c| c.request_path = "no-slash".into(), "request_path");
    check(
        |c| c.extra_headers.push(("host".into(), "x".into())),
        "extra_headers",
    );
    check(
        |c| {
            c.extra_headers
                .push(("authorization".into(), "a\r\nb".into()))
        },
        "extra_headers",
    );
    check(|c| c.connect_timeout = Duration::ZERO, "connect_timeout");
    check(
        |c| c.handshake_timeout = Duration::ZERO,
        "handshake_timeout",
    );
    check(|c| c.idle_timeout = Duration::ZERO, "idle_timeout");
    check(
        |c| c.max_reconnect_backoff = Duration::ZERO,
        "max_reconnect_backoff",
    );
    check(|c| c.max_tunnels_per_host = 0, "max_tunnels_per_host");
    check(|c| c.stat_prefix.clear(), "stat_prefix");
    check(
        |c| c.head_limits.max_head_bytes = 0,
        "head_limits.max_head_bytes",
    );
    let mut cfg = config(1);
    cfg.extra_headers.push(("connection".into(), "x".into()));
    assert!(matches!(
        cfg.validate(),
        Err(InitiatorConfigError::Header {
            field: "extra_headers",
            source: HeaderError::Reserved { .. }
        })
    ));
    let mut cfg = config(1);
    cfg.extra_headers
        .push(("Authorization".into(), "Bearer secret-token".into()));
    assert!(cfg.validate().is_ok());
    let debug = format!("{cfg:?}");
    assert!(
        debug.contains("Authorization") && !debug.contains("secret-token"),
        "{debug}"
    );
}

#[test]
fn extra_headers_go_into_the_request() {
    let mut cfg = config(1);
    cfg.extra_headers
        .push(("Authorization".into(), "Bearer t0k".into()));
    cfg.offer_claim_marker = false;
    cfg.request_method = "POST".into();
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let conn = dials(&net.take())[0];
    net.connected(conn);
    let text = String::from_utf8(writes(&net.take(), conn).concat()).unwrap();
    assert!(text.starts_with("POST /reverse_connections/request HTTP/1.1\r\n"));
    assert!(text.ends_with("x-envoy-reverse-tunnel-initiation-time: 1764201600000\r\nauthorization: Bearer t0k\r\ncontent-length: 0\r\n\r\n"), "{text}");
    // Not offered: an echoed marker is ignored, so RDATA is data in Envoy mode.
    net.input(conn, &encode_accept(false, true));
    net.input(conn, b"RDATA");
    let out = net.take();
    assert!(writes(&out, conn).is_empty());
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Claimed { data, .. } if data == "RDATA"))
    );
}

#[test]
fn set_extra_headers_changes_the_next_requests_only() {
    let mut cfg = config(2);
    cfg.extra_headers
        .push(("authorization".into(), "Bearer old".into()));
    let mut net = Net::new(cfg);
    net.set_hosts(&[h1()]);
    let conns = dials(&net.take());
    net.connected(conns[0]);
    let first = String::from_utf8(writes(&net.take(), conns[0]).concat()).unwrap();
    assert!(
        first.contains("\r\nauthorization: Bearer old\r\n"),
        "{first}"
    );
    net.input(conns[0], &encode_accept(false, true));
    net.input(conns[0], b"RPING");
    net.take();

    // A bad header is refused and the headers in force stay.
    let refused = net
        .init
        .set_extra_headers(vec![("authorization".into(), "Bearer bad\r\n".into())]);
    assert!(matches!(
        refused,
        Err(InitiatorConfigError::Header {
            field: "extra_headers",
            source: HeaderError::InvalidValue { .. }
        })
    ));
    assert_eq!(
        net.init.config().extra_headers,
        vec![("authorization".to_owned(), "Bearer old".to_owned())]
    );

    net.init
        .set_extra_headers(vec![
            ("x-team".into(), "edge".into()),
            ("authorization".into(), "Bearer new".into()),
        ])
        .unwrap();
    net.connected(conns[1]);
    let out = net.take();
    let second = String::from_utf8(writes(&out, conns[1]).concat()).unwrap();
    assert!(
        second
            .contains("\r\nx-team: edge\r\nauthorization: Bearer new\r\ncontent-length: 0\r\n\r\n"),
        "{second}"
    );
    assert!(!second.contains("Bearer old"), "{second}");
    // The established tunnel is untouched: nothing written to it, not closed.
    assert!(writes(&out, conns[0]).is_empty() && closes(&out).is_empty());
    assert_eq!(net.init.counts().idle, 1);
}

// ---------------------------------------------------------------------------------------------------------
// The fuzz body: corpus replay and random operation sequences

#[cfg(feature = "fuzzing")]
mod fuzz_body {
    use proptest::prelude::*;
    use revtun_core::fuzzing::initiator_ops;

    /// Operation bytes biased towards meaningful opcodes and the first connections.
    fn ops() -> impl Strategy<Value = Vec<u8>> {
        let op = prop_oneof![
            (Just(0u8), 0u8..32).prop_map(|(o, a)| vec![o, a]),
            (Just(1u8), 0u8..8).prop_map(|(o, c)| vec![o, c]),
            (Just(2u8), 0u8..8, 0u8..4).prop_map(|(o, c, k)| vec![o, c, k]),
            (Just(3u8), 0u8..8, 0u8..18).prop_map(|(o, c, d)| vec![o, c, d]),
            (Just(4u8), 0u8..8).prop_map(|(o, c)| vec![o, c]),
            (Just(5u8), any::<u8>()).prop_map(|(o, d)| vec![o, d]),
            (Just(7u8), 0u8..2).prop_map(|(o, c)| vec![o, c]),
            Just(vec![8u8]),
            (
                Just(9u8),
                0u8..8,
                proptest::collection::vec(any::<u8>(), 0..12)
            )
                .prop_map(|(o, c, raw)| {
                    let mut v = vec![o, c, raw.len() as u8];
                    v.extend(raw);
                    v
                }),
        ];
        (
            proptest::collection::vec(any::<u8>(), 4),
            proptest::collection::vec(prop_oneof![40 => op, 1 => Just(vec![6u8])], 0..80),
        )
            .prop_map(|(header, ops)| {
                let mut data = header;
                for op in ops {
                    data.extend(op);
                }
                data
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_operation_sequences_keep_the_invariants(data in ops()) {
            initiator_ops(&data);
        }
    }
}
