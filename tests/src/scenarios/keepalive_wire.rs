//! The idle-phase keepalive on real loopback sockets, against a hand-written peer: the responder's
//! `RPING`s on the wire and its eviction of a peer that stops echoing, and the initiator's `idle_timeout`
//! closing and replacing a tunnel whose responder went silent.

use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use revtun_core::keepalive::KeepaliveConfig;
use revtun_core::responder::ResponderConfig;
use revtun_driver::{Listener, ListenerOptions, ResponderOptions};

use super::*;

const PING_INTERVAL: Duration = Duration::from_millis(100);
const FAILURE_THRESHOLD: u32 = 2;
/// Pings echoed before the raw initiator goes quiet: the tunnel must survive all of them.
const ECHOED_PINGS: u32 = 6;

fn node_gauge() -> String {
    format!("reverse_connections.nodes.{NODE}")
}

/// Scenario: the responder pings on the wire and evicts a silent peer.
pub async fn responder_pings_on_the_wire_and_evicts_a_silent_peer(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
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
        let addr = "127.0.0.1:0".parse().unwrap();
        let responder = ResponderHandle::bind(sides.responder.clone(), addr, config, options)
            .await
            .expect("responder binds");

        // A raw initiator registers one tunnel.
        let mut sock = sides
            .initiator
            .connect(responder.local_addr())
            .await
            .unwrap();
        sock.write_all(&request(false, responder.local_addr()))
            .await
            .unwrap();
        assert_eq!(
            read_head(&mut sock).await,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        );
        wait_idle(rt, &responder, 1).await;

        // While every ping is echoed, the tunnel stays registered and idle: `read_n` fails on an early
        // close, and each ping must arrive within a second.
        let mut first_ping = None;
        for _ in 0..ECHOED_PINGS {
            assert_eq!(read_n(rt, &mut sock, 5).await, b"RPING");
            first_ping.get_or_insert_with(Instant::now);
            sock.write_all(b"RPING").await.unwrap();
            let nodes = responder.nodes().await.unwrap();
            let ours: Vec<_> = nodes.iter().filter(|n| n.node == NODE).collect();
            assert_eq!(ours.len(), 1, "{nodes:?}");
            assert_eq!((ours[0].idle, ours[0].in_use), (1, 0));
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
        let rest = read_until_closed(rt, &mut sock, Duration::from_secs(2)).await;
        let closed_after = quiet.elapsed();
        assert_eq!(rest, b"RPING", "after the last echo");

        wait_until(rt, Duration::from_secs(1), "the node to leave the pool", || async {
            let nodes = responder.nodes().await.unwrap();
            nodes.iter().all(|n| n.node != NODE)
        })
        .await;
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get(&node_gauge()).unwrap_or(0), 0, "{stats:?}");
        assert_eq!(stats.get("reverse_connections.total_nodes"), Some(0));
        assert_eq!(idle_of(&responder, NODE).await, 0);
        eprintln!(
            "echoed {ECHOED_PINGS} pings over {echoing:?}; closed {closed_after:?} after the last echo"
        );

        drop(sock);
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

const IDLE_TIMEOUT: Duration = Duration::from_millis(300);

/// Accepts the next dial of the initiator by `deadline`, checks that its handshake request is valid,
/// and answers 200 (Envoy mode).
async fn accept_tunnel(
    rt: &dyn Runtime,
    raw: &mut Box<dyn Listener>,
    deadline: Instant,
) -> BoxStream {
    let (mut sock, _) = timeout(
        rt,
        deadline.saturating_duration_since(Instant::now()),
        raw.accept(),
    )
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

/// Scenario: the initiator redials when the responder goes silent.
pub async fn initiator_redials_when_the_responder_goes_silent(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let mut raw = sides
            .responder
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut config = initiator_config(1, false);
        config.idle_timeout = IDLE_TIMEOUT;
        config.max_reconnect_backoff = Duration::from_millis(100);
        let options = ListenerOptions {
            seed: Some([3; 32]),
            ..ListenerOptions::default()
        };
        let hosts = vec![(
            TARGET.into(),
            HostSource::Static(vec![raw.local_addr().unwrap()]),
        )];
        let listener = ReverseListener::bind(sides.initiator.clone(), config, hosts, options)
            .await
            .expect("initiator starts");

        let mut first = accept_tunnel(rt, &mut raw, Instant::now() + Duration::from_secs(2)).await;

        // Pings every third of the idle timeout, for three idle timeouts: each is echoed, and the tunnel
        // is neither closed (`read_n` fails on EOF) nor replaced.
        let mut last_ping = Instant::now();
        for _ in 0..9 {
            last_ping = Instant::now();
            first.write_all(b"RPING").await.unwrap();
            assert_eq!(read_n(rt, &mut first, 5).await, b"RPING");
            rt.sleep_until(last_ping + IDLE_TIMEOUT / 3).await;
        }
        assert!(
            timeout(rt, Duration::from_millis(1), raw.accept())
                .await
                .is_err(),
            "the initiator dialled again while its tunnel was alive"
        );

        // Silence (the socket stays open): the initiator closes the tunnel, sending nothing, no sooner
        // than `idle_timeout` after the last ping, and dials again.
        let quiet = Instant::now();
        let deadline = quiet + Duration::from_secs(3);
        let rest = read_until_closed(rt, &mut first, Duration::from_secs(3)).await;
        assert_eq!(rest, b"", "the initiator sent bytes on a silent tunnel");
        let closed = last_ping.elapsed();
        assert!(
            closed >= IDLE_TIMEOUT,
            "closed {closed:?} after the last ping"
        );

        let mut second = accept_tunnel(rt, &mut raw, deadline).await;
        let redialled = quiet.elapsed();
        // The new tunnel works: it echoes a ping.
        second.write_all(b"RPING").await.unwrap();
        assert_eq!(read_n(rt, &mut second, 5).await, b"RPING");
        eprintln!(
            "closed {closed:?} after the last ping; dialled again {redialled:?} after it went quiet"
        );

        shut_down(rt, "initiator", listener.shutdown()).await;
        drop((first, second));
    })
    .await;
}
