//! One side is revtun, the other a hand-written peer on a raw socket: bytes that arrive in the same read
//! as the protocol's last bytes (after `RDATA`, after the 200) reach the user first, and no byte is lost
//! or read past a claim.

use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use revtun_core::handshake::HandshakeRequest;
use revtun_driver::TunnelStream;

use super::*;

/// Writes `data` on `from` and checks that `to` reads exactly it.
async fn pass(
    rt: &dyn Runtime,
    from: &mut (impl AsyncWrite + Unpin),
    to: &mut (impl AsyncRead + Unpin),
    data: &[u8],
) {
    from.write_all(data).await.unwrap();
    assert_eq!(read_n(rt, to, data.len()).await, data);
}

/// Echoes the responder's `RPING`s until another 5-byte unit arrives, and returns that unit.
async fn skip_pings(rt: &dyn Runtime, sock: &mut BoxStream) -> Vec<u8> {
    loop {
        let unit = read_n(rt, sock, 5).await;
        if unit != b"RPING" {
            return unit;
        }
        sock.write_all(b"RPING").await.unwrap();
    }
}

/// Scenario: initiator hands over bytes that came with rdata.
pub async fn initiator_hands_over_bytes_that_came_with_rdata(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let mut raw = sides.responder.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let raw_addr = raw.local_addr().unwrap();
        let listener = initiator(&sides, raw_addr, 1, true).await;
        let (mut sock, _) = raw.accept().await.unwrap();
        let head = read_head(&mut sock).await;
        assert!(head.starts_with("GET /reverse_connections/request HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("x-envoy-reverse-tunnel-node-id: node-a\r\n"), "{head}");
        assert!(head.contains("x-revtun-features: claim-marker\r\n"), "{head}");

        // The 200, a ping, the claim and the first data bytes, all in one write.
        sock.write_all(
            b"HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\nRPINGRDATAhello",
        )
        .await
        .unwrap();
        assert_eq!(read_n(rt, &mut sock, 10).await, b"RPINGRDATA");

        let (mut tunnel, info) = listener.accept().await.unwrap();
        assert_eq!(info.host, raw_addr);
        assert_eq!(read_n(rt, &mut tunnel, 5).await, b"hello");
        pass(rt, &mut tunnel, &mut sock, b"RPING is data now").await;
        pass(rt, &mut sock, &mut tunnel, b"RDATA too").await;

        drop(tunnel);
        shut_down(rt, "initiator", listener.shutdown()).await;
    })
    .await;
}

/// A responder with one tunnel registered by a raw socket (offering the claim marker or not).
async fn registered(sides: &Sides, claim_marker: bool) -> (ResponderHandle, BoxStream) {
    registered_with(sides, claim_marker, &[]).await
}

/// [`registered`], with `extra_headers` in the handshake request.
async fn registered_with(
    sides: &Sides,
    claim_marker: bool,
    extra_headers: &[(String, String)],
) -> (ResponderHandle, BoxStream) {
    let responder = responder(sides).await;
    let mut sock = sides
        .initiator
        .connect(responder.local_addr())
        .await
        .unwrap();
    let request = HandshakeRequest {
        extra_headers,
        ..request_parts(claim_marker, responder.local_addr())
    };
    sock.write_all(&request.to_bytes()).await.unwrap();
    let expected = if claim_marker {
        "HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\n"
    } else {
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    };
    assert_eq!(read_head(&mut sock).await, expected);
    wait_idle(sides.rt(), &responder, 1).await;
    (responder, sock)
}

/// Scenario: responder hands over bytes that came with the rdata answer.
pub async fn responder_hands_over_bytes_that_came_with_the_rdata_answer(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (responder, mut sock) = registered(&sides, true).await;

        // The answer and the first data bytes in one write: the data must come out of the stream first.
        let mut stream = claim_marked(&sides, &responder, &mut sock, b"RDATAearly bytes").await;
        assert_eq!(read_n(rt, &mut stream, 11).await, b"early bytes");
        pass(rt, &mut stream, &mut sock, b"RPING back").await;

        drop(stream);
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Claims the raw socket's tunnel in claim-marker mode: echoes pings until `RDATA` comes, answers with
/// `answer` (`RDATA` and maybe data) in one write, and returns the claimed stream.
async fn claim_marked(
    sides: &Sides,
    responder: &ResponderHandle,
    sock: &mut BoxStream,
    answer: &[u8],
) -> TunnelStream {
    let claim = spawn(&*sides.responder, {
        let responder = responder.clone();
        async move { responder.connect(NODE).await }
    });
    assert_eq!(skip_pings(sides.rt(), sock).await, b"RDATA");
    sock.write_all(answer).await.unwrap();
    claim.join().await.expect("claimed")
}

/// Claims the raw tunnel of `responder`, writes `hello` on the stream at once, and checks that the raw
/// peer gets `RDATA` then `hello`, as one write would carry them.
async fn claim_and_write(
    rt: &dyn Runtime,
    responder: &ResponderHandle,
    sock: &mut BoxStream,
) -> TunnelStream {
    let mut stream = responder.connect(NODE).await.expect("handed out at once");
    stream.write_all(b"hello").await.unwrap();
    assert_eq!(skip_pings(rt, sock).await, b"RDATA");
    assert_eq!(read_n(rt, sock, 5).await, b"hello");
    stream
}

/// The error of the next read on `stream` (it must fail, within 3 s: the answer deadline is at least 1 s).
async fn read_error(rt: &dyn Runtime, stream: &mut TunnelStream) -> std::io::ErrorKind {
    let mut buf = [0u8; 16];
    let read = timeout(rt, Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("the read ends");
    match read {
        Err(e) => e.kind(),
        Ok(n) => panic!("read {n} bytes instead of failing: {:?}", &buf[..n]),
    }
}

/// Scenario: a claimed tunnel that turns out dead fails the user's stream. The claim-marker hand-out
/// does not wait for the initiator's answer, so a peer that closes instead of answering, or answers
/// with bytes that are not `RDATA`, fails the first read; the claim is not served again.
pub async fn claimed_tunnel_that_dies_before_its_answer_fails_the_stream(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        // The peer closes after reading the claim.
        let (responder, mut sock) = registered(&sides, true).await;
        let mut stream = claim_and_write(rt, &responder, &mut sock).await;
        drop(sock);
        assert_eq!(
            read_error(rt, &mut stream).await,
            std::io::ErrorKind::UnexpectedEof
        );
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.handed_out"), Some(1));
        assert_eq!(stats.get("reverse_connections.claims.waiting"), Some(0));
        drop(stream);
        shut_down(rt, "responder", responder.shutdown()).await;

        // The peer answers with something else (an echo split in two is fine, garbage is not).
        let (responder, mut sock) = registered(&sides, true).await;
        let mut stream = claim_and_write(rt, &responder, &mut sock).await;
        sock.write_all(b"RPI").await.unwrap();
        sock.write_all(b"NGHELLO").await.unwrap();
        assert_eq!(
            read_error(rt, &mut stream).await,
            std::io::ErrorKind::InvalidData
        );
        drop((stream, sock));
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: a claimed tunnel whose peer never answers `RDATA` fails the user's read at the answer
/// deadline (`ping_interval / 2 × ping_failure_threshold`, at least 1 s, after the hand-out) with a
/// timeout.
pub async fn claimed_tunnel_with_no_answer_times_out(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (responder, mut sock) = registered(&sides, true).await;
        let mut stream = claim_and_write(rt, &responder, &mut sock).await;
        assert_eq!(
            read_error(rt, &mut stream).await,
            std::io::ErrorKind::TimedOut
        );
        // The stream stays failed.
        assert_eq!(
            read_error(rt, &mut stream).await,
            std::io::ErrorKind::TimedOut
        );
        drop((stream, sock));
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: responder in envoy mode starts writing data on the tunnel.
pub async fn responder_in_envoy_mode_starts_writing_data_on_the_tunnel(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (responder, mut sock) = registered(&sides, false).await;

        let mut stream = responder.connect(NODE).await.expect("claimed");
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(skip_pings(rt, &mut sock).await, b"GET /");
        assert_eq!(read_n(rt, &mut sock, 11).await, b" HTTP/1.1\r\n");
        pass(
            rt,
            &mut sock,
            &mut stream,
            b"HTTP/1.1 204 No Content\r\n\r\n",
        )
        .await;

        drop(stream);
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Bytes of a pattern that shows any loss, duplication or reordering: byte `i` is `i mod 251`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Far more than the driver reads at a time, so a claim's data spans many reads.
const BIG: usize = 64 * 1024 + 7;

/// Scenario: initiator delivers every byte of a claim that comes right after the 200, in either mode:
/// the 200, (`RDATA`,) and 64 KiB of data in one write reach `accept()` whole and in order.
pub async fn initiator_delivers_a_large_claim_sent_with_the_200(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        for claim_marker in [true, false] {
            let mut raw = sides.responder.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let listener = initiator(&sides, raw.local_addr().unwrap(), 1, claim_marker).await;
            let (mut sock, _) = raw.accept().await.unwrap();
            read_head(&mut sock).await;

            let data = pattern(BIG);
            let mut all = if claim_marker {
                b"HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\nRDATA"
                    .to_vec()
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()
            };
            all.extend_from_slice(&data);
            sock.write_all(&all).await.unwrap();
            if claim_marker {
                assert_eq!(read_n(rt, &mut sock, 5).await, b"RDATA");
            }

            let (mut tunnel, _) = listener.accept().await.unwrap();
            assert!(read_n(rt, &mut tunnel, BIG).await == data, "every byte, in order");
            pass(rt, &mut tunnel, &mut sock, b"and back").await;

            drop(tunnel);
            shut_down(rt, "initiator", listener.shutdown()).await;
        }
    })
    .await;
}

/// Scenario: responder accepts a handshake head larger than one read (a 20 KiB header), sent in one
/// write, and the tunnel then carries data.
pub async fn responder_accepts_a_head_larger_than_one_read(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let padding = vec![("x-padding".to_owned(), "p".repeat(20 * 1024))];
        let (responder, mut sock) = registered_with(&sides, true, &padding).await;
        let mut stream = claim_marked(&sides, &responder, &mut sock, b"RDATA").await;
        pass(rt, &mut stream, &mut sock, &pattern(BIG)).await;
        pass(rt, &mut sock, &mut stream, b"reply").await;

        drop(stream);
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
