//! What the raw-peer scenarios share: a hand-written peer's handshake request, and reading an HTTP head
//! or a fixed number of bytes off a socket, on the futures-io traits.

use std::net::SocketAddr;
use std::time::Duration;

use futures_io::AsyncRead;
use futures_lite::AsyncReadExt;
use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use revtun_driver::Runtime;

use super::support::{CLUSTER, NODE, TARGET, timeout};

/// A valid handshake request of [`NODE`] for [`TARGET`], as an initiator at `host` sends it.
pub fn request(claim_marker: bool, host: SocketAddr) -> bytes::Bytes {
    request_parts(claim_marker, host).to_bytes()
}

/// The parts of [`request`], to change some before encoding.
pub fn request_parts(claim_marker: bool, host: SocketAddr) -> HandshakeRequest<'static> {
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
}

/// Reads until the end of an HTTP head; returns the head.
pub async fn read_head(sock: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte).await.expect("head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads exactly `n` bytes, within a second.
pub async fn read_n(rt: &dyn Runtime, sock: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(rt, Duration::from_secs(1), sock.read_exact(&mut buf))
        .await
        .expect("bytes within a second")
        .expect("read");
    buf
}

/// Reads until EOF or a read error, within `limit`; returns what arrived before it.
pub async fn read_until_closed(
    rt: &dyn Runtime,
    sock: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let closed = timeout(rt, limit, async {
        while let Ok(n @ 1..) = sock.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    closed.unwrap_or_else(|()| {
        panic!("the peer did not close the socket within {limit:?} (got {got:?})")
    });
    got
}
