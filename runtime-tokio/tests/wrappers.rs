//! The tokio-flavoured wrappers: `ReverseListener`, `Responder`, `TunnelStream` (tokio's `AsyncRead` +
//! `AsyncWrite` through `Compat`) and `relay` on tokio streams. The protocol scenarios themselves run
//! on every runtime from `tests/src/scenarios/`, whose configs and helpers these tests share.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use revtun_tests::scenarios::{NODE, TARGET, echo, initiator_config, responder_config, wait_idle};
use revtun_tokio::{
    HostSource, ListenerOptions, Responder, ResponderOptions, ReverseListener, TokioRuntime,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Runs a test body with an upper bound, so a broken driver fails the test instead of hanging it.
async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), body)
        .await
        .expect("the test did not finish within 15 s")
}

/// Shuts a handle down, and checks that every task it spawned ended within two seconds.
async fn shut_down(what: &str, shutdown: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(2), shutdown)
        .await
        .unwrap_or_else(|_| panic!("{what}: tasks still running after shutdown"));
}

/// A responder and an initiator with `count` tunnels (claim marker on) to it, the pool full.
async fn connected(count: u32) -> (Responder, ReverseListener) {
    let addr = "127.0.0.1:0".parse().unwrap();
    let responder = Responder::bind_with(addr, responder_config(), ResponderOptions::default())
        .await
        .expect("responder binds");
    let hosts = vec![(
        TARGET.into(),
        HostSource::Static(vec![responder.local_addr()]),
    )];
    let config = initiator_config(count, true);
    let listener = ReverseListener::bind_with(config, hosts, ListenerOptions::default())
        .await
        .expect("initiator starts");
    let rt = TokioRuntime::new(tokio::runtime::Handle::current());
    wait_idle(&rt, &responder, u64::from(count)).await;
    (responder, listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_streams_carry_data_both_ways_and_report_their_tunnel() {
    within(async {
        // An echo service behind the initiator; the client writes, half-closes and reads to EOF.
        let (responder, listener) = connected(2).await;
        let listener = Arc::new(listener);
        let service = tokio::spawn({
            let listener = listener.clone();
            async move {
                while let Ok((tunnel, _info)) = listener.accept().await {
                    tokio::spawn(echo(tunnel.into_inner()));
                }
            }
        });
        let mut stream = responder.connect(NODE).await.expect("claim");
        stream.write_all(b"RPING then data").await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut back))
            .await
            .expect("echo within 5 s")
            .expect("read");
        assert_eq!(back, b"RPING then data");
        drop(stream);
        service.abort();
        let _ = service.await;
        let listener = Arc::into_inner(listener).expect("the echo task held the other reference");
        shut_down("initiator", listener.shutdown()).await;
        shut_down("responder", responder.shutdown()).await;

        // Server speaks first, read with tokio's BufReader on both ends.
        let (responder, listener) = connected(1).await;
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
    within(async {
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
