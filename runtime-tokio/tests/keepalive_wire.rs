//! The idle-phase keepalive on real loopback sockets, against a hand-written peer: the responder's
//! `RPING`s on the wire and its eviction of a peer that stops echoing, and the initiator's `idle_timeout`
//! closing and replacing a tunnel whose responder went silent.

mod common;

use std::time::Duration;

use common::*;
use revtun_tokio::core::keepalive::KeepaliveConfig;
use revtun_tokio::core::responder::ResponderConfig;
use revtun_tokio::{HostSource, ListenerOptions, Responder, ResponderOptions, ReverseListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Reads until EOF or a read error, within `limit`; returns what arrived before it.
async fn read_until_closed(sock: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    tokio::time::timeout(limit, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the peer did not close the socket within {limit:?} (got {got:?})"));
    got
}

const PING_INTERVAL: Duration = Duration::from_millis(100);
const FAILURE_THRESHOLD: u32 = 2;
/// Pings echoed before the raw initiator goes quiet: the tunnel must survive all of them.
const ECHOED_PINGS: u32 = 6;

fn node_gauge() -> String {
    format!("reverse_connections.nodes.{NODE}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_pings_on_the_wire_and_evicts_a_silent_peer() {
    within(async {
        let config = ResponderConfig {
            keepalive: KeepaliveConfig {
                interval: PING_INTERVAL,
                failure_threshold: FAILURE_THRESHOLD,
            },
            ..responder_config()
        };
        let options = ResponderOptions {
            seed: Some([7; 32]),
            ..ResponderOptions::default()
        };
        let responder = Responder::bind_with("127.0.0.1:0".parse().unwrap(), config, options)
            .await
            .expect("responder binds");

        // A raw initiator registers one tunnel.
        let mut sock = TcpStream::connect(responder.local_addr()).await.unwrap();
        sock.write_all(&request(false, responder.local_addr()))
            .await
            .unwrap();
        assert_eq!(
            read_head(&mut sock).await,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        );
        wait_idle(&responder, 1).await;

        // While every ping is echoed, the tunnel stays registered and idle: `read_n` fails on an early
        // close, and each ping must arrive within a second.
        let mut first_ping = None;
        for _ in 0..ECHOED_PINGS {
            assert_eq!(read_n(&mut sock, 5).await, b"RPING");
            first_ping.get_or_insert_with(Instant::now);
            sock.write_all(b"RPING").await.unwrap();
            let nodes = responder.nodes().await.unwrap();
            let ours: Vec<_> = nodes.iter().filter(|n| n.node == NODE).collect();
            assert_eq!(ours.len(), 1, "{nodes:?}");
            assert_eq!((ours[0].idle, ours[0].claiming, ours[0].in_use), (1, 0, 0));
        }
        // Pings come no faster than the interval (jitter only adds), so this spanned several intervals.
        let echoing = first_ping.unwrap().elapsed();
        assert!(
            echoing >= PING_INTERVAL * (ECHOED_PINGS - 1) * 9 / 10,
            "{ECHOED_PINGS} pings in {echoing:?}"
        );
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get(&node_gauge()), Some(1));
        assert_eq!(stats.get("reverse_connections.total_nodes"), Some(1));

        // Stop echoing: one more ping (at most one in flight, a miss sends no other), then the close.
        // Next ping ≤ 1.15 × interval, then `threshold` echo deadlines of interval / 2: ~0.2 s; allow 2 s.
        let quiet = Instant::now();
        let rest = read_until_closed(&mut sock, Duration::from_secs(2)).await;
        let closed_after = quiet.elapsed();
        assert_eq!(rest, b"RPING", "after the last echo");

        wait_until(Duration::from_secs(1), "the node to leave the pool", || async {
            responder
                .nodes()
                .await
                .unwrap()
                .iter()
                .all(|n| n.node != NODE)
        })
        .await;
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get(&node_gauge()).unwrap_or(0), 0, "{stats:?}");
        assert_eq!(stats.get("reverse_connections.total_nodes"), Some(0));
        assert_eq!(idle_of(&responder, NODE).await, 0);
        eprintln!("echoed {ECHOED_PINGS} pings over {echoing:?}; closed {closed_after:?} after the last echo");

        drop(sock);
        shut_down("responder", responder.shutdown()).await;
    })
    .await;
}

const IDLE_TIMEOUT: Duration = Duration::from_millis(300);

/// Accepts the next dial of the initiator, checks its handshake request, and answers 200 (Envoy mode).
async fn accept_tunnel(raw: &TcpListener, deadline: Instant) -> TcpStream {
    let (mut sock, _) = tokio::time::timeout_at(deadline, raw.accept())
        .await
        .expect("the initiator dials in time")
        .unwrap();
    let head = read_head(&mut sock).await;
    assert!(
        head.starts_with("GET /reverse_connections/request HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("x-envoy-reverse-tunnel-node-id: {NODE}\r\n")),
        "{head}"
    );
    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_redials_when_the_responder_goes_silent() {
    within(async {
        let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = initiator_config(1, false);
        config.idle_timeout = IDLE_TIMEOUT;
        config.max_reconnect_backoff = Duration::from_millis(100);
        let options = ListenerOptions {
            seed: Some([3; 32]),
            ..ListenerOptions::default()
        };
        let listener = ReverseListener::bind_with(
            config,
            vec![(
                TARGET.into(),
                HostSource::Static(vec![raw.local_addr().unwrap()]),
            )],
            options,
        )
        .await
        .expect("initiator starts");

        let mut first = accept_tunnel(&raw, Instant::now() + Duration::from_secs(2)).await;

        // Pings every third of the idle timeout, for three idle timeouts: each is echoed, and the tunnel
        // is neither closed (`read_n` fails on EOF) nor replaced.
        let mut last_ping = Instant::now();
        for _ in 0..9 {
            last_ping = Instant::now();
            first.write_all(b"RPING").await.unwrap();
            assert_eq!(read_n(&mut first, 5).await, b"RPING");
            tokio::time::sleep_until(last_ping + IDLE_TIMEOUT / 3).await;
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(1), raw.accept())
                .await
                .is_err(),
            "the initiator dialled again while its tunnel was alive"
        );

        // Silence (the socket stays open): the initiator closes the tunnel, sending nothing, no sooner
        // than `idle_timeout` after the last ping, and dials again.
        let quiet = Instant::now();
        let deadline = quiet + Duration::from_secs(3);
        let rest = read_until_closed(&mut first, Duration::from_secs(3)).await;
        assert_eq!(rest, b"", "the initiator sent bytes on a silent tunnel");
        let closed = last_ping.elapsed();
        assert!(
            closed >= IDLE_TIMEOUT,
            "closed {closed:?} after the last ping"
        );

        let mut second = accept_tunnel(&raw, deadline).await;
        let redialled = quiet.elapsed();
        // The new tunnel works: it echoes a ping.
        second.write_all(b"RPING").await.unwrap();
        assert_eq!(read_n(&mut second, 5).await, b"RPING");
        eprintln!(
            "closed {closed:?} after the last ping; dialled again {redialled:?} after it went quiet"
        );

        shut_down("initiator", listener.shutdown()).await;
        drop((first, second));
    })
    .await;
}
