//! The tokio-flavoured wrappers: `ReverseListener`, `Responder`, `TunnelStream` (tokio's `AsyncRead` +
//! `AsyncWrite` through `Compat`) and `relay` on tokio streams. The protocol scenarios themselves run
//! on every runtime from `tests/src/scenarios/`.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_streams_carry_data_both_ways_and_report_their_tunnel() {
    common::within(async {
        let setup = EchoSetup::start(2, true).await;
        let mut stream = setup.responder.connect(NODE).await.expect("claim");
        assert_eq!(
            exchange(&mut stream, b"RPING then data").await,
            b"RPING then data"
        );
        drop(stream);
        setup.finish().await;

        // Server speaks first, read with tokio's BufReader on both ends.
        let responder = responder().await;
        let listener = initiator(responder.local_addr(), 1, true).await;
        wait_idle(&responder, 1).await;
        let service = async {
            let (mut tunnel, info) = listener.accept().await.expect("accept");
            assert_eq!(tunnel.get_ref().id(), info.id);
            tunnel.write_all(b"220 ready\r\n").await.unwrap();
            tunnel.shutdown().await.unwrap();
        };
        let client = async {
            let mut reader = BufReader::new(responder.connect(NODE).await.expect("claim"));
            let mut greeting = String::new();
            reader.read_line(&mut greeting).await.unwrap();
            assert_eq!(greeting, "220 ready\r\n");
        };
        tokio::join!(service, client);
        shut_down("initiator", listener.shutdown()).await;
        shut_down("responder", responder.shutdown()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_takes_tokio_streams() {
    common::within(async {
        let pair = || async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
            (client.unwrap(), server.unwrap().0)
        };
        let (mut client, front) = pair().await;
        let (back, mut server) = pair().await;
        let relay = tokio::spawn(revtun_tokio::relay(
            front,
            back,
            Some(Duration::from_secs(5)),
        ));
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        server.write_all(b"pong!").await.unwrap();
        server.shutdown().await.unwrap();
        let mut back_bytes = Vec::new();
        client.read_to_end(&mut back_bytes).await.unwrap();
        assert_eq!(
            (got.as_slice(), back_bytes.as_slice()),
            (&b"ping"[..], &b"pong!"[..])
        );
        assert_eq!(relay.await.unwrap().unwrap(), (4, 5));
    })
    .await;
}
