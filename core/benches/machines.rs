//! Criterion micro-benchmarks of revtun-core's state machines: the responder (handshake accept, keepalive
//! round trip and claim against a pool of 10,000 idle tunnels) and the initiator (`RPING` echo).
//!
//! Run with `cargo bench -p revtun-core --bench machines`. Time is artificial: one `Instant::now()` at
//! setup, then offsets from it.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use revtun_core::command::{Command, ConnId};
use revtun_core::handshake::{
    DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest, encode_accept,
};
use revtun_core::initiator::{Initiator, InitiatorConfig, InitiatorEvent, TargetCluster};
use revtun_core::keepalive::RPING;
use revtun_core::responder::{Responder, ResponderConfig, ResponderEvent};

const NODES: usize = 100;
const TUNNELS_PER_NODE: usize = 100;
const POOL: usize = NODES * TUNNELS_PER_NODE;
const CLUSTER: &str = "edge";

/// An arbitrary origin for the artificial clock; only offsets from it matter.
#[allow(clippy::disallowed_methods)] // the benchmark's only wall-clock read; time then advances artificially
fn origin() -> Instant {
    Instant::now()
}

fn node_name(node: usize) -> String {
    format!("edge-node-{node:04}")
}

/// The request bytes of `node` (Envoy mode: no claim marker offered).
fn request_bytes(node: &str) -> Vec<u8> {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: SocketAddr::from(([10, 0, 0, 1], 9000)),
        node,
        cluster: CLUSTER,
        tenant: "",
        target_cluster: "upstream",
        initiation_time_ms: 1_764_201_600_000,
        upgrade: false,
        offer_claim_marker: false,
        extra_headers: &[],
    }
    .to_bytes()
    .to_vec()
}

/// Peer `n`, spread over many source addresses (256 ports per IP).
fn peer(n: usize) -> SocketAddr {
    let ip = 0x0a00_0000u32 + u32::try_from(n / 256).expect("small");
    let port = 40_000 + u16::try_from(n % 256).expect("small");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

/// Drains every queue of the responder; returns (transmits, commands, events) counts.
fn drain_responder(r: &mut Responder) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    while let Some(t) = r.poll_transmit() {
        let _ = black_box(t);
        counts.0 += 1;
    }
    while let Some(c) = r.poll_command() {
        let _ = black_box(c);
        counts.1 += 1;
    }
    while let Some(e) = r.poll_event() {
        let _ = black_box(e);
        counts.2 += 1;
    }
    counts
}

/// Accepts and registers one tunnel of `node`; returns its id.
fn register(r: &mut Responder, peer_index: usize, request: &[u8], now: Instant) -> ConnId {
    let conn = r.handle_accepted(peer(peer_index), None, now);
    r.handle_input(conn, request, now);
    let response = r.poll_transmit().expect("the 200");
    debug_assert!(response.data.starts_with(b"HTTP/1.1 200"));
    let _ = black_box(response);
    assert!(r.poll_command().is_none(), "a registration closes nothing");
    match r.poll_event() {
        Some(ResponderEvent::Registered { conn: c, .. }) if c == conn => {}
        other => panic!("expected Registered, got {other:?}"),
    }
    conn
}

/// A responder holding `POOL` idle tunnels from `NODES` nodes; also the request bytes of each node.
fn full_responder(now: Instant) -> (Responder, Vec<Vec<u8>>) {
    let config = ResponderConfig {
        max_pending_handshakes: POOL * 2,
        max_pending_handshakes_per_ip: POOL * 2,
        ..ResponderConfig::default()
    };
    let mut r = Responder::new(config, [7; 32], now).expect("valid config");
    let requests: Vec<Vec<u8>> = (0..NODES).map(|n| request_bytes(&node_name(n))).collect();
    for t in 0..TUNNELS_PER_NODE {
        for (n, request) in requests.iter().enumerate() {
            register(&mut r, t * NODES + n, request, now);
        }
    }
    assert_eq!(r.counts().idle, POOL as u64);
    (r, requests)
}

fn responder(c: &mut Criterion) {
    let t0 = origin();
    let mut group = c.benchmark_group("responder");

    // 1. One more handshake against a full pool, closed again so the pool stays at POOL.
    group.throughput(Throughput::Elements(1));
    {
        let (mut r, requests) = full_responder(t0);
        let request = &requests[0];
        let mut next_peer = POOL;
        group.bench_function("handshake_accept", |b| {
            b.iter(|| {
                let conn = register(&mut r, next_peer, request, t0);
                next_peer += 1;
                r.handle_closed(conn, t0);
                black_box(drain_responder(&mut r))
            })
        });
        assert_eq!(r.counts().idle, POOL as u64);
    }

    // 2. One keepalive round trip: time moves to the next ping, its echo comes straight back.
    {
        let (mut r, _) = full_responder(t0);
        let mut pings: u64 = 0;
        let mut iterations: u64 = 0;
        group.throughput(Throughput::Elements(1));
        group.bench_function("ping_echo", |b| {
            b.iter(|| {
                let at = r.poll_timeout().expect("pings are scheduled");
                r.handle_timeout(at);
                let mut handled = 0;
                while let Some(t) = r.poll_transmit() {
                    debug_assert_eq!(&t.data[..], &RPING[..]);
                    r.handle_input(t.conn, &RPING, at);
                    handled += 1;
                }
                assert!(r.poll_command().is_none(), "no tunnel may die");
                while let Some(e) = r.poll_event() {
                    let _ = black_box(e);
                }
                pings += handled;
                iterations += 1;
                handled
            })
        });
        assert_eq!(r.counts().idle, POOL as u64);
        // The throughput above assumes one ping per timer wake-up; say so when that did not hold.
        if iterations > 0 && pings != iterations {
            eprintln!(
                "responder/ping_echo: {pings} pings over {iterations} wake-ups ({:.3} per wake-up)",
                pings as f64 / iterations as f64
            );
        }
    }

    // 3. A claim handed out at once (Envoy mode), then the tunnel closed and replaced.
    {
        let (mut r, requests) = full_responder(t0);
        let mut next_peer = POOL;
        let mut node = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("claim", |b| {
            b.iter(|| {
                let name = node_name(node);
                let claim = r.claim(&name, None, t0);
                let mut handed = None;
                while let Some(t) = r.poll_transmit() {
                    let _ = black_box(t);
                }
                while let Some(cmd) = r.poll_command() {
                    let _ = black_box(cmd);
                }
                while let Some(e) = r.poll_event() {
                    if let ResponderEvent::HandedOut { claim: c, conn, .. } = e {
                        assert_eq!(c, claim);
                        handed = Some(conn);
                    }
                }
                let conn = handed.expect("an idle tunnel is handed out at once");
                r.handle_closed(conn, t0);
                register(&mut r, next_peer, &requests[node], t0);
                next_peer += 1;
                node = (node + 1) % NODES;
                conn
            })
        });
        assert_eq!(r.counts().idle, POOL as u64);
    }
    group.finish();
}

/// An initiator with `HOSTS` hosts and count 8, every tunnel idle (handshake done, first ping echoed).
fn idle_initiator(now: Instant) -> (Initiator, Vec<ConnId>) {
    const HOSTS: u8 = 4;
    let config = InitiatorConfig::new(
        "edge-node-0042",
        CLUSTER,
        "",
        vec![TargetCluster {
            name: "upstream".into(),
            count: 8,
        }],
    );
    let mut init = Initiator::new(config, [9; 32], now).expect("valid config");
    let hosts: Vec<SocketAddr> = (1..=HOSTS)
        .map(|h| SocketAddr::from(([10, 1, 0, h], 9000)))
        .collect();
    init.set_hosts("upstream", &hosts, now)
        .expect("known cluster");
    let mut dials = Vec::new();
    while init.poll_transmit().is_some() {}
    while let Some(cmd) = init.poll_command() {
        if let Command::Dial { conn, .. } = cmd {
            dials.push(conn);
        }
    }
    while init.poll_event().is_some() {}
    assert_eq!(dials.len(), 8 * usize::from(HOSTS));
    let accept = encode_accept(false, false);
    for &conn in &dials {
        init.handle_connected(conn, now, 1_764_201_600_000);
        let request = init.poll_transmit().expect("the request");
        let _ = black_box(request);
        init.handle_input(conn, &accept, now);
        init.handle_input(conn, &RPING, now);
        let echo = init.poll_transmit().expect("the echo");
        assert_eq!(&echo.data[..], &RPING[..]);
        assert!(init.poll_command().is_none());
        while let Some(e) = init.poll_event() {
            assert!(
                matches!(e, InitiatorEvent::TunnelReady { .. }),
                "unexpected {e:?}"
            );
        }
    }
    assert_eq!(init.counts().idle, dials.len() as u64);
    (init, dials)
}

fn initiator(c: &mut Criterion) {
    let t0 = origin();
    let (mut init, conns) = idle_initiator(t0);
    let mut group = c.benchmark_group("initiator");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut now = t0;
    group.bench_function("echo", |b| {
        b.iter(|| {
            let conn = conns[i % conns.len()];
            i += 1;
            // Each tunnel sees a ping every ~32 µs of artificial time, far inside its idle timeout.
            now += Duration::from_micros(1);
            init.handle_input(conn, &RPING, now);
            let echo = init.poll_transmit().expect("the echo");
            debug_assert_eq!(echo.conn, conn);
            while let Some(cmd) = init.poll_command() {
                let _ = black_box(cmd);
            }
            while let Some(e) = init.poll_event() {
                let _ = black_box(e);
            }
            echo
        })
    });
    assert_eq!(init.counts().idle, conns.len() as u64);
    group.finish();
}

criterion_group!(benches, responder, initiator);
criterion_main!(benches);
