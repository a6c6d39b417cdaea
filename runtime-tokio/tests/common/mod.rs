//! Shared set-up of the loopback tests: sub-second timings, a responder, an initiator, and waiting.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use revtun_tokio::core::handshake::{
    DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest,
};
use revtun_tokio::core::initiator::{InitiatorConfig, TargetCluster};
use revtun_tokio::core::keepalive::KeepaliveConfig;
use revtun_tokio::core::responder::ResponderConfig;
use revtun_tokio::{HostSource, ListenerOptions, Responder, ResponderOptions, ReverseListener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const NODE: &str = "node-a";
pub const CLUSTER: &str = "edge";
pub const TARGET: &str = "responders";

/// A responder config with sub-second keepalive and claim timeout.
pub fn responder_config() -> ResponderConfig {
    ResponderConfig {
        keepalive: KeepaliveConfig {
            interval: Duration::from_millis(100),
            failure_threshold: 3,
        },
        claim_timeout: Duration::from_millis(400),
        handshake_timeout: Duration::from_secs(1),
        ..ResponderConfig::default()
    }
}

/// An initiator config for `count` tunnels, with sub-second timeouts and backoff.
pub fn initiator_config(count: u32, claim_marker: bool) -> InitiatorConfig {
    let mut config = InitiatorConfig::new(
        NODE,
        CLUSTER,
        "",
        vec![TargetCluster {
            name: TARGET.into(),
            count,
        }],
    );
    config.offer_claim_marker = claim_marker;
    config.connect_timeout = Duration::from_millis(500);
    config.handshake_timeout = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(1);
    config.max_reconnect_backoff = Duration::from_millis(150);
    config
}

pub async fn responder_at(addr: SocketAddr) -> Responder {
    let options = ResponderOptions {
        seed: Some([7; 32]),
        ..ResponderOptions::default()
    };
    Responder::bind_with(addr, responder_config(), options)
        .await
        .expect("responder binds")
}

pub async fn responder() -> Responder {
    responder_at("127.0.0.1:0".parse().unwrap()).await
}

pub async fn initiator(responder: SocketAddr, count: u32, claim_marker: bool) -> ReverseListener {
    let options = ListenerOptions {
        seed: Some([3; 32]),
        ..ListenerOptions::default()
    };
    ReverseListener::bind_with(
        initiator_config(count, claim_marker),
        vec![(TARGET.into(), HostSource::Static(vec![responder]))],
        options,
    )
    .await
    .expect("initiator starts")
}

/// Polls `check` every 10 ms until it returns true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Idle tunnels of `node` as the responder lists them (0 if the node is not listed).
pub async fn idle_of(responder: &Responder, node: &str) -> u64 {
    responder
        .nodes()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|n| n.node == node)
        .map(|n| n.idle)
        .sum()
}

/// Waits until the responder holds `count` idle tunnels of [`NODE`].
pub async fn wait_idle(responder: &Responder, count: u64) {
    wait_until(Duration::from_secs(5), "idle tunnels", || async {
        idle_of(responder, NODE).await == count
    })
    .await;
}

/// Serves every accepted tunnel with an echo: what it reads, it writes back, until EOF.
pub fn spawn_echo(listener: std::sync::Arc<ReverseListener>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut tunnel, _info)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match tunnel.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tunnel.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tunnel.shutdown().await;
            });
        }
    })
}

/// Writes `payload`, half-closes, and reads everything back until EOF.
pub async fn exchange(stream: &mut revtun_tokio::TunnelStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(payload).await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut back))
        .await
        .expect("echo within 5 s")
        .expect("read");
    back
}

/// Shuts a handle down, and checks that every task it spawned ended within a second.
pub async fn shut_down<F: Future<Output = ()>>(what: &str, shutdown: F) {
    tokio::time::timeout(Duration::from_secs(2), shutdown)
        .await
        .unwrap_or_else(|_| panic!("{what}: tasks still running after shutdown"));
}

/// Stops an echo task from [`spawn_echo`] and takes the listener back.
pub async fn stop_echo(
    echo: tokio::task::JoinHandle<()>,
    listener: std::sync::Arc<ReverseListener>,
) -> ReverseListener {
    echo.abort();
    let _ = echo.await;
    std::sync::Arc::into_inner(listener).expect("the echo task held the only other reference")
}

/// A responder, an initiator with `count` tunnels and an echo service behind it, the pool full.
pub struct EchoSetup {
    pub responder: Responder,
    pub listener: std::sync::Arc<ReverseListener>,
    echo: tokio::task::JoinHandle<()>,
}

impl EchoSetup {
    pub async fn start(count: u32, claim_marker: bool) -> Self {
        let responder = responder().await;
        let listener =
            std::sync::Arc::new(initiator(responder.local_addr(), count, claim_marker).await);
        let echo = spawn_echo(listener.clone());
        wait_idle(&responder, u64::from(count)).await;
        Self {
            responder,
            listener,
            echo,
        }
    }

    /// Stops the echo, shuts both sides down, and checks that every task ended.
    pub async fn finish(self) {
        let listener = stop_echo(self.echo, self.listener).await;
        shut_down("initiator", listener.shutdown()).await;
        shut_down("responder", self.responder.shutdown()).await;
    }
}

/// Runs a test body with an upper bound, so a broken driver fails the test instead of hanging it.
pub async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), body)
        .await
        .expect("the test did not finish within 15 s")
}

/// Reads until the end of an HTTP head; returns the head.
pub async fn read_head(sock: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte).await.expect("head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads exactly `n` bytes, within a second.
pub async fn read_n(sock: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(1), sock.read_exact(&mut buf))
        .await
        .expect("bytes within a second")
        .expect("read");
    buf
}

/// A valid handshake request of [`NODE`] for [`TARGET`], as an initiator at `host` sends it.
pub fn request(claim_marker: bool, host: std::net::SocketAddr) -> bytes::Bytes {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host,
        node: NODE,
        cluster: CLUSTER,
        tenant: "",
        target_cluster: TARGET,
        initiation_time_ms: 0,
        upgrade: false,
        offer_claim_marker: claim_marker,
        extra_headers: &[],
    }
    .to_bytes()
}
