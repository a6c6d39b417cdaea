//! Between two revtun peers the claim marker is negotiated: any bytes travel, including data that
//! begins with `RPING` and protocols where the server speaks first; claimed tunnels are replaced.

use std::time::Duration;

use futures_lite::io::BufReader;
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, future};

use super::*;

/// A payload that looks like keepalive and claim markers, then a few KiB of varied bytes.
fn tricky_payload() -> Vec<u8> {
    let mut payload = b"RPINGRPINGRDATA then data".to_vec();
    payload.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    payload
}

/// Scenario: data beginning with rping passes intact both ways.
pub async fn data_beginning_with_rping_passes_intact_both_ways(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let setup = EchoSetup::start(&sides, 2, true).await;
        let responder = &setup.responder;

        let payload = tricky_payload();
        let mut by_node = responder.connect(NODE).await.expect("claim by node");
        assert_eq!(exchange(rt, &mut by_node, &payload).await, payload);
        let mut by_cluster = responder.connect(CLUSTER).await.expect("claim by cluster");
        assert_eq!(exchange(rt, &mut by_cluster, b"RPING").await, b"RPING");

        drop((by_node, by_cluster));
        setup.finish().await;
    })
    .await;
}

/// Scenario: server speaks first through the tunnel.
pub async fn server_speaks_first_through_the_tunnel(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let listener = initiator(&sides, responder.local_addr(), 1, true).await;
        wait_idle(rt, &responder, 1).await;

        // The service behind the initiator greets before it reads anything (SMTP, MySQL, FTP…).
        let service = async {
            let (mut tunnel, info) = listener.accept().await.expect("accept");
            assert_eq!(info.cluster, TARGET);
            assert_eq!(info.host, responder.local_addr());
            assert_eq!(tunnel.id(), info.id);
            tunnel.write_all(b"220 revtun ready\r\n").await.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(&mut tunnel);
            reader.read_line(&mut line).await.unwrap();
            assert_eq!(line, "HELO client\r\n");
            tunnel.write_all(b"250 hello\r\n").await.unwrap();
        };
        let client = async {
            let stream = responder.connect(NODE).await.expect("claim");
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            timeout(rt, Duration::from_secs(2), reader.read_line(&mut greeting))
                .await
                .expect("the greeting arrives without the client writing first")
                .unwrap();
            assert_eq!(greeting, "220 revtun ready\r\n");
            reader
                .get_mut()
                .write_all(b"HELO client\r\n")
                .await
                .unwrap();
            let mut rest = String::new();
            reader.read_to_string(&mut rest).await.unwrap();
            assert_eq!(rest, "250 hello\r\n");
        };
        future::zip(service, client).await;

        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: the client writes right behind the claim while the server speaks first. The responder
/// hands the tunnel out as it writes `RDATA`, so the client's first bytes (here starting with marker
/// bytes) follow the marker at once; the service greets before it reads, and both see the other's bytes
/// intact.
pub async fn client_writes_right_behind_rdata_while_the_server_speaks_first(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let listener = initiator(&sides, responder.local_addr(), 1, true).await;
        wait_idle(rt, &responder, 1).await;

        let service = async {
            let (mut tunnel, _) = listener.accept().await.expect("accept");
            tunnel.write_all(b"220 ready\r\n").await.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(&mut tunnel);
            reader.read_line(&mut line).await.unwrap();
            assert_eq!(line, "RDATARPING HELO\r\n");
            tunnel.write_all(b"250 ok\r\n").await.unwrap();
        };
        let client = async {
            let mut stream = responder.connect(NODE).await.expect("claim");
            // Written before anything was read: no wait for the initiator's answer.
            stream.write_all(b"RDATARPING HELO\r\n").await.unwrap();
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            reader.read_line(&mut greeting).await.unwrap();
            assert_eq!(greeting, "220 ready\r\n");
            let mut rest = String::new();
            reader.read_to_string(&mut rest).await.unwrap();
            assert_eq!(rest, "250 ok\r\n");
        };
        future::zip(service, client).await;

        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: claimed tunnels are replaced and released.
pub async fn claimed_tunnels_are_replaced_and_released(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let setup = EchoSetup::start(&sides, 2, true).await;
        let (responder, listener) = (&setup.responder, &setup.listener);

        let mut held = Vec::new();
        for i in 0..3u8 {
            let mut stream = responder.connect(NODE).await.expect("claim");
            stream.write_all(&[i]).await.unwrap();
            let mut one = [0u8; 1];
            stream.read_exact(&mut one).await.unwrap();
            assert_eq!(one, [i]);
            held.push(stream);
        }
        // The pool is back to `count` idle tunnels while three are in use.
        wait_until(rt, Duration::from_secs(3), "pool refilled", || async {
            let nodes = responder.nodes().await.unwrap();
            nodes.len() == 1 && nodes[0].idle == 2 && nodes[0].in_use == 3
        })
        .await;
        // The initiator counts a tunnel idle once it has read the 200, a moment after the responder.
        wait_until(
            rt,
            Duration::from_secs(3),
            "initiator pool refilled",
            || async {
                let counts = listener.counts().await.unwrap();
                (counts.idle, counts.in_use) == (2, 3)
            },
        )
        .await;

        // Dropping the streams ends the in-use tunnels on both sides.
        drop(held);
        wait_until(
            rt,
            Duration::from_secs(3),
            "in-use tunnels released",
            || async {
                let initiator_done = listener.counts().await.unwrap().in_use == 0;
                let responder_done = responder.nodes().await.unwrap()[0].in_use == 0;
                initiator_done && responder_done
            },
        )
        .await;
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.handed_out"), Some(3));
        assert_eq!(stats.get("reverse_connections.nodes.node-a"), Some(2));

        setup.finish().await;
    })
    .await;
}
