//! Hostile input on the responder's handshake listener: slowloris, an oversized head, half-open
//! connections at the per-IP and total pending caps. Each asserts what the responder did (closed,
//! answered, counted by reason), never how long it took beyond a generous bound.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use revtun_core::handshake::HeadLimits;
use revtun_core::responder::ResponderConfig;
use revtun_driver::{ResponderHandle, ResponderOptions};

use super::raw::{read_until_closed, request};
use super::support::{
    NODE, Sides, exchange, initiator, responder_config, shut_down, sleep, spawn_echo, wait_idle,
    within,
};

/// A responder with `config` on a free loopback port.
pub async fn responder_with(
    sides: &Sides,
    config: ResponderConfig,
    options: ResponderOptions,
) -> ResponderHandle {
    ResponderHandle::bind(
        sides.responder.clone(),
        "127.0.0.1:0".parse().unwrap(),
        config,
        options,
    )
    .await
    .expect("responder binds")
}

/// One handshake counter of the responder.
pub async fn counter(responder: &ResponderHandle, name: &str) -> u64 {
    let stats = responder.stats().await.expect("stats");
    stats
        .get(&format!("reverse_tunnel.handshake.{name}"))
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// A blocking TCP connection to `to` from the loopback address `from` (127/8 works on Linux), left
/// half-open by the caller. Non-blocking afterwards, so a check never blocks an executor.
pub fn half_open_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(1))
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_nonblocking(true).expect("non-blocking");
    stream
}

/// Whether the responder closed `stream` (EOF or reset; `WouldBlock` means still open).
pub fn is_closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match stream.peek(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Slowloris: a valid request trickled one byte every 60 ms never completes within the 500 ms
/// `handshake_timeout`; the responder closes it silently and counts `timeout`.
pub async fn slowloris_is_closed_at_the_handshake_timeout(sides: Sides) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            handshake_timeout: Duration::from_millis(500),
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let mut sock = sides
            .responder
            .connect(responder.local_addr())
            .await
            .unwrap();
        let bytes = request(false, responder.local_addr());
        let mut sent = 0;
        for byte in bytes.iter() {
            if sock.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            if counter(&responder, "timeout").await == 1 {
                break;
            }
            sleep(sides.rt(), Duration::from_millis(60)).await;
        }
        assert!(sent < bytes.len(), "the whole request went through");
        let answer = read_until_closed(sides.rt(), &mut sock, Duration::from_secs(2)).await;
        assert!(answer.is_empty(), "closed silently, got {answer:?}");
        assert_eq!(counter(&responder, "timeout").await, 1);
        assert_eq!(counter(&responder, "accepted").await, 0);
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// A head over `max_head_bytes` is closed without an answer and counted `parse_error`.
pub async fn head_over_the_limit_is_closed(sides: Sides) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            head_limits: HeadLimits {
                max_head_bytes: 512,
                ..HeadLimits::default()
            },
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let mut sock = sides
            .responder
            .connect(responder.local_addr())
            .await
            .unwrap();
        let mut head = b"GET /reverse_connections/request HTTP/1.1\r\n".to_vec();
        while head.len() < 2048 {
            head.extend_from_slice(b"x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let _ = sock.write_all(&head).await;
        let answer = read_until_closed(sides.rt(), &mut sock, Duration::from_secs(2)).await;
        assert!(answer.is_empty(), "closed silently, got {answer:?}");
        assert_eq!(counter(&responder, "parse_error").await, 1);
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// Twenty half-open connections from 127.0.0.2 with a per-IP cap of 4: that address never holds
/// more than 4 pending handshakes (the oldest are closed and counted `pending_evicted`), and an
/// initiator on 127.0.0.1 still registers and serves a claim.
pub async fn per_ip_cap_keeps_a_flooding_address_from_locking_out_initiators(sides: Sides) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            max_pending_handshakes_per_ip: 4,
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let addr = responder.local_addr();
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(half_open_from([127, 0, 0, 2], addr));
        }
        super::support::wait_until(sides.rt(), Duration::from_secs(5), "evictions", || async {
            counter(&responder, "pending_evicted").await == 16
        })
        .await;
        assert_eq!(responder.counts().await.unwrap().handshaking, 4);
        // The oldest were closed by the responder, the newest are still pending.
        super::support::wait_until(sides.rt(), Duration::from_secs(5), "closes", || async {
            held[..16].iter().all(is_closed)
        })
        .await;
        assert!(!held[16..].iter().any(is_closed));

        let listener = std::sync::Arc::new(initiator(&sides, addr, 2, true).await);
        let echo = spawn_echo(sides.initiator.clone(), listener.clone());
        wait_idle(sides.rt(), &responder, 2).await;
        let mut tunnel = responder.connect(NODE).await.expect("claim");
        assert_eq!(
            exchange(sides.rt(), &mut tunnel, b"still here").await,
            b"still here"
        );
        drop(tunnel);
        echo.abort().await;
        drop(held);
        let listener = std::sync::Arc::into_inner(listener).expect("one reference");
        shut_down(sides.rt(), "initiator", listener.shutdown()).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// At the total cap (8) a ninth pending handshake closes the oldest of all, whatever its address.
pub async fn total_cap_evicts_the_oldest_pending_handshake(sides: Sides) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            max_pending_handshakes: 8,
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let addr = responder.local_addr();
        let mut held = Vec::new();
        for i in 0..8u8 {
            held.push(half_open_from([127, 0, 0, 10 + i], addr));
        }
        super::support::wait_until(sides.rt(), Duration::from_secs(5), "8 pending", || async {
            responder.counts().await.unwrap().handshaking == 8
        })
        .await;
        for i in 0..4u8 {
            held.push(half_open_from([127, 0, 1, 10 + i], addr));
        }
        super::support::wait_until(sides.rt(), Duration::from_secs(5), "evictions", || async {
            counter(&responder, "pending_evicted").await == 4
        })
        .await;
        assert_eq!(responder.counts().await.unwrap().handshaking, 8);
        super::support::wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "the four oldest closed",
            || async { held[..4].iter().all(is_closed) },
        )
        .await;
        assert!(!held[4..].iter().any(is_closed), "the rest still pending");
        drop(held);
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}
