//! `relay`: both directions copied, each half-close propagated on its own, idle timeout. The client
//! pair is on the responder's runtime, the server pair on the initiator's.

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};

use super::*;

/// Scenario: half close travels each way independently.
pub async fn half_close_travels_each_way_independently(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        // client ⇄ (front) relay (back) ⇄ server
        let (mut client, front) = pair(&*sides.responder).await.unwrap();
        let (back, mut server) = pair(&*sides.initiator).await.unwrap();
        let relay_rt = sides.initiator.clone();
        let relay = spawn(rt, async move {
            revtun_driver::relay(&*relay_rt, front, back, Some(Duration::from_secs(5))).await
        });

        client.write_all(b"request").await.unwrap();
        client.close().await.unwrap();
        let mut request = Vec::new();
        server.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");

        // The other direction is still open after the client's half-close.
        server.write_all(b"response, sent after EOF").await.unwrap();
        server.close().await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        assert_eq!(response, b"response, sent after EOF");

        assert_eq!(relay.join().await.unwrap(), (7, 24));
    })
    .await;
}

/// Writes `data` and half-closes while reading everything the peer sends.
async fn send_and_receive(stream: BoxStream, data: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = futures_lite::io::split(stream);
    let send = async {
        w.write_all(&data).await.unwrap();
        w.close().await.unwrap();
    };
    let mut got = Vec::new();
    let ((), n) = future::zip(send, r.read_to_end(&mut got)).await;
    n.unwrap();
    got
}

/// Scenario: large transfer both ways at once.
pub async fn large_transfer_both_ways_at_once(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (client, front) = pair(&*sides.responder).await.unwrap();
        let (back, server) = pair(&*sides.initiator).await.unwrap();
        let relay_rt = sides.initiator.clone();
        let relay = spawn(rt, async move {
            revtun_driver::relay(&*relay_rt, front, back, None).await
        });
        let up: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let client_side = spawn(&*sides.responder, send_and_receive(client, up.clone()));
        let server_side = spawn(&*sides.initiator, send_and_receive(server, down.clone()));
        assert_eq!(client_side.join().await, down);
        assert_eq!(server_side.join().await, up);
        assert_eq!(relay.join().await.unwrap(), (1_000_000, 700_000));
    })
    .await;
}

/// Scenario: idle relay times out and closes both sides.
pub async fn idle_relay_times_out_and_closes_both_sides(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (mut client, front) = pair(&*sides.responder).await.unwrap();
        let (back, mut server) = pair(&*sides.initiator).await.unwrap();
        let start = Instant::now();
        let relay_rt = sides.initiator.clone();
        let relay = spawn(rt, async move {
            revtun_driver::relay(&*relay_rt, front, back, Some(Duration::from_millis(200))).await
        });
        // Some traffic first: the timeout counts from the last byte.
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await.unwrap();
        sleep(rt, Duration::from_millis(150)).await;
        server.write_all(b"y").await.unwrap();
        client.read_exact(&mut one).await.unwrap();

        let error = relay.join().await.expect_err("idle timeout");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap_or(0), 0);
        assert_eq!(server.read_to_end(&mut rest).await.unwrap_or(0), 0);
    })
    .await;
}
