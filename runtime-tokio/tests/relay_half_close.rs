//! `relay`: both directions copied, each half-close propagated on its own, idle timeout.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected loopback pair.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_travels_each_way_independently() {
    common::within(async {
        // client ⇄ (front) relay (back) ⇄ server
        let (mut client, front) = pair().await;
        let (back, mut server) = pair().await;
        let relay = tokio::spawn(revtun_tokio::relay(
            front,
            back,
            Some(Duration::from_secs(5)),
        ));

        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut request = Vec::new();
        server.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");

        // The other direction is still open after the client's half-close.
        server.write_all(b"response, sent after EOF").await.unwrap();
        server.shutdown().await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        assert_eq!(response, b"response, sent after EOF");

        let moved = relay.await.unwrap().unwrap();
        assert_eq!(moved, (7, 24));
    })
    .await;
}

/// Writes `data` and half-closes while reading everything the peer sends.
async fn send_and_receive(mut stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = stream.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let ((), n) = tokio::join!(send, r.read_to_end(&mut got));
    n.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_both_ways_at_once() {
    common::within(async {
        let (client, front) = pair().await;
        let (back, server) = pair().await;
        let relay = tokio::spawn(revtun_tokio::relay(front, back, None));
        let up: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let client_side = tokio::spawn(send_and_receive(client, up.clone()));
        let server_side = tokio::spawn(send_and_receive(server, down.clone()));
        assert_eq!(client_side.await.unwrap(), down);
        assert_eq!(server_side.await.unwrap(), up);
        assert_eq!(relay.await.unwrap().unwrap(), (1_000_000, 700_000));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_relay_times_out_and_closes_both_sides() {
    common::within(async {
        let (mut client, front) = pair().await;
        let (back, mut server) = pair().await;
        let start = Instant::now();
        let relay = tokio::spawn(revtun_tokio::relay(
            front,
            back,
            Some(Duration::from_millis(200)),
        ));
        // Some traffic first: the timeout counts from the last byte.
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.write_all(b"y").await.unwrap();
        client.read_exact(&mut one).await.unwrap();

        let error = relay.await.unwrap().expect_err("idle timeout");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            start.elapsed() >= Duration::from_millis(350),
            "{:?}",
            start.elapsed()
        );
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap_or(0), 0);
        assert_eq!(server.read_to_end(&mut rest).await.unwrap_or(0), 0);
    })
    .await;
}
