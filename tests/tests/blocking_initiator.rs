//! `core/examples/blocking_initiator.rs` (no async runtime: std threads, `std::net`, `Instant`) against a
//! smol responder: its tunnels register, the responder claims them, and bytes travel both ways — echoed,
//! and proxied to a local service.

#[path = "../../core/examples/blocking_initiator.rs"]
mod blocking_initiator;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use revtun_smol::SmolRuntime;
use revtun_tests::scenarios::{Sides, responder, shut_down, wait_idle, wait_until, within};

const NODE: &str = "node-a";

#[test]
fn blocking_initiator_echoes_and_proxies_through_a_smol_responder() {
    let sides = Sides::same(Arc::new(SmolRuntime::new()));
    // A local service behind the initiator: answers one line with its upper-case form.
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let service_addr = service.local_addr().unwrap();
    let service_thread = std::thread::spawn(move || {
        let (mut sock, _) = service.accept().unwrap();
        let mut got = Vec::new();
        sock.read_to_end(&mut got).unwrap();
        sock.write_all(&got.to_ascii_uppercase()).unwrap();
    });

    smol::block_on(within(sides.rt(), async {
        let rt = sides.rt();
        let responder = responder(&sides).await;
        let start = |proxy_to| {
            blocking_initiator::start(blocking_initiator::Options {
                responder: responder.local_addr(),
                node: NODE.into(),
                count: 2,
                proxy_to,
            })
            .expect("blocking initiator starts")
        };

        // Echo: data both ways, starting with bytes that look like keepalive.
        let echo = start(None);
        wait_idle(rt, &responder, 2).await;
        let payload: Vec<u8> = b"RPING first, then "
            .iter()
            .copied()
            .chain((0..100_000u32).map(|i| (i % 253) as u8))
            .collect();
        for _ in 0..3 {
            let mut stream = responder.connect(NODE).await.expect("claim");
            stream.write_all(&payload).await.unwrap();
            stream.close().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            assert_eq!(back.len(), payload.len());
            assert!(back == payload, "echoed bytes differ");
        }
        // The pool refills after the claims; stopping closes the idle tunnels.
        wait_idle(rt, &responder, 2).await;
        echo.stop().unwrap();
        wait_until(rt, Duration::from_secs(2), "tunnels gone", || async {
            responder.nodes().await.unwrap().is_empty()
        })
        .await;

        // Proxy: the claimed tunnel reaches the local service.
        let proxy = start(Some(service_addr));
        wait_idle(rt, &responder, 2).await;
        let mut stream = responder.connect(NODE).await.expect("claim");
        stream.write_all(b"hello through the tunnel").await.unwrap();
        stream.close().await.unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"HELLO THROUGH THE TUNNEL");
        drop(stream);
        proxy.stop().unwrap();
        shut_down(rt, "responder", responder.shutdown()).await;
    }));
    service_thread.join().unwrap();
}
