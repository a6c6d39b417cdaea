//! Tunnel TLS: mutual TLS carries the handshake, the keepalive and the data, and the responder's
//! authorizer sees the client certificate's identity; a missing client certificate, an untrusted server
//! and a peer that never finishes the TLS handshake fail as they must. Certificates are made at run time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use revtun_core::initiator::InitiatorConfig;
use revtun_core::responder::{AuthDecision, HandshakeContext, PeerTlsIdentity};
use revtun_driver::tls::{
    CertificateFiles, ClientTlsFiles, PemSource, ServerTlsFiles, TlsClientSource, TlsServerSource,
};
use revtun_driver::{ListenerOptions, ResponderOptions};

use super::*;
use crate::certs::{TestCa, TestCert};

/// The URI SAN of the initiator's client certificate.
pub const NODE_URI: &str = "spiffe://revtun.test/node-a";
/// The DNS SAN of the initiator's client certificate.
pub const NODE_DNS: &str = "node-a.revtun.test";

/// PEM text as a source.
fn inline(text: &str) -> PemSource {
    PemSource::Inline(text.to_owned())
}

fn certificate(cert: &TestCert) -> CertificateFiles {
    CertificateFiles {
        certificate_chain: inline(&cert.cert_pem),
        private_key: inline(&cert.key_pem),
    }
}

/// A server source with `cert`, verifying client certificates against `client_ca` if given.
pub fn server_tls(cert: &TestCert, client_ca: Option<&TestCa>, required: bool) -> TlsServerSource {
    TlsServerSource::new(ServerTlsFiles {
        certificate: certificate(cert),
        trusted_ca: client_ca.map(|ca| inline(&ca.pem())),
        require_client_certificate: required,
    })
    .expect("server TLS settings")
}

/// A client source trusting `ca`, presenting `cert` if given.
pub fn client_tls(ca: &TestCa, cert: Option<&TestCert>) -> TlsClientSource {
    TlsClientSource::new(ClientTlsFiles {
        trusted_ca: inline(&ca.pem()),
        certificate: cert.map(certificate),
        sni: None,
    })
    .expect("client TLS settings")
}

/// The server certificate of a responder on loopback.
pub fn responder_cert(ca: &TestCa) -> TestCert {
    ca.issue("responder", &["127.0.0.1", "localhost"])
}

/// The initiator's client certificate.
pub fn node_cert(ca: &TestCa) -> TestCert {
    ca.issue(NODE, &[NODE_URI, NODE_DNS])
}

/// What the responder's authorizer saw of each handshake's TLS identity.
pub type SeenIdentities = Arc<Mutex<Vec<Option<PeerTlsIdentity>>>>;

/// A responder with tunnel TLS on a free loopback port, recording what its authorizer sees.
pub async fn tls_responder(
    sides: &Sides,
    tls: TlsServerSource,
) -> (ResponderHandle, SeenIdentities) {
    let seen = SeenIdentities::default();
    let record = seen.clone();
    let authorizer = move |ctx: &HandshakeContext<'_>| {
        record.lock().unwrap().push(ctx.tls.cloned());
        AuthDecision::Accept
    };
    let options = ResponderOptions {
        seed: Some([7; 32]),
        authorizer: Some(Arc::new(authorizer)),
        tunnel_tls: Some(tls),
    };
    let addr = "127.0.0.1:0".parse().unwrap();
    let responder =
        ResponderHandle::bind(sides.responder.clone(), addr, responder_config(), options)
            .await
            .expect("responder binds");
    (responder, seen)
}

/// An initiator with `config` and tunnel TLS `tls` to its target cluster at `responder`.
pub async fn tls_initiator_with(
    sides: &Sides,
    config: InitiatorConfig,
    responder: SocketAddr,
    tls: TlsClientSource,
) -> ReverseListener {
    let options = ListenerOptions {
        seed: Some([3; 32]),
        tunnel_tls: BTreeMap::from([(TARGET.to_owned(), tls)]),
        ..ListenerOptions::default()
    };
    let source = HostSource::Static(vec![responder]);
    ReverseListener::bind(
        sides.initiator.clone(),
        config,
        vec![(TARGET.into(), source)],
        options,
    )
    .await
    .expect("initiator starts")
}

/// An initiator of [`NODE`] with `count` tunnels (claim marker on) and tunnel TLS `tls`.
pub async fn tls_initiator(
    sides: &Sides,
    responder: SocketAddr,
    count: u32,
    tls: TlsClientSource,
) -> ReverseListener {
    tls_initiator_with(sides, initiator_config(count, true), responder, tls).await
}

/// A statistic of a handle (0 if absent).
pub fn stat(stats: &revtun_core::stats::StatsSnapshot, name: &str) -> u64 {
    stats.get(name).unwrap_or(0)
}

/// The initiator's `handshake_failed.<reason>` counter for host `host`.
pub async fn handshake_failed(listener: &ReverseListener, host: SocketAddr, reason: &str) -> u64 {
    let stats = listener.stats().await.expect("initiator stats");
    stat(
        &stats,
        &format!("downstream_reverse_connection.host.{host}.handshake_failed.{reason}"),
    )
}

/// The responder's `reverse_tunnel.handshake.<name>` counter.
pub async fn responder_counter(responder: &ResponderHandle, name: &str) -> u64 {
    let stats = responder.stats().await.expect("responder stats");
    stat(&stats, &format!("reverse_tunnel.handshake.{name}"))
}

/// Scenario: tunnel mTLS carries the handshake, keepalives and claimed data both ways, and the
/// authorizer sees the client certificate's identity.
pub async fn tunnel_mtls_carries_keepalive_claims_and_data(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("revtun test CA");
        let server = server_tls(&responder_cert(&ca), Some(&ca), true);
        let (responder, seen) = tls_responder(&sides, server).await;
        let client = client_tls(&ca, Some(&node_cert(&ca)));
        let listener = Arc::new(tls_initiator(&sides, responder.local_addr(), 2, client).await);
        let echo = spawn_echo(sides.initiator.clone(), listener.clone());
        wait_idle(rt, &responder, 2).await;

        // Longer than the initiator's idle_timeout (1 s): only RPINGs through TLS keep the tunnels.
        sleep(rt, Duration::from_millis(1300)).await;
        assert_eq!(idle_of(&responder, NODE).await, 2);
        assert_eq!(
            responder_counter(&responder, "accepted").await,
            2,
            "no tunnel was replaced"
        );

        let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut tunnel = responder.connect(NODE).await.expect("claim");
        assert_eq!(exchange(rt, &mut tunnel, &payload).await, payload);
        drop(tunnel);

        let expected = PeerTlsIdentity {
            uri_sans: vec![NODE_URI.into()],
            dns_sans: vec![NODE_DNS.into()],
        };
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.as_ref() == Some(&expected)),
            "{seen:?}"
        );

        echo.abort().await;
        let listener = Arc::into_inner(listener).expect("the echo task held the other reference");
        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Waits until the initiator counted `handshake_failed.tls` and, if `responder_sees_it`, the responder
/// `tls_failed`; no tunnel registered.
///
/// Only the side that detects the failure counts it for sure: the other side learns of it from an alert
/// that a close may overtake (a socket closed with unread bytes is reset).
async fn wait_tls_failures(
    rt: &dyn Runtime,
    responder: &ResponderHandle,
    listener: &ReverseListener,
    responder_sees_it: bool,
) {
    let host = responder.local_addr();
    wait_until(
        rt,
        Duration::from_secs(5),
        "TLS failures counted",
        || async {
            (!responder_sees_it || responder_counter(responder, "tls_failed").await >= 1)
                && handshake_failed(listener, host, "tls").await >= 1
        },
    )
    .await;
    assert_eq!(responder_counter(responder, "accepted").await, 0);
    assert_eq!(idle_of(responder, NODE).await, 0);
}

/// Scenario: a client without a certificate where one is required fails the TLS handshake; the
/// responder counts `tls_failed`, the initiator `handshake_failed.tls` (from the responder's alert).
pub async fn client_without_certificate_is_refused(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("revtun test CA");
        let server = server_tls(&responder_cert(&ca), Some(&ca), true);
        let (responder, seen) = tls_responder(&sides, server).await;
        let client = client_tls(&ca, None);
        let listener = tls_initiator(&sides, responder.local_addr(), 1, client).await;
        wait_tls_failures(rt, &responder, &listener, true).await;
        assert!(seen.lock().unwrap().is_empty(), "nothing was authorized");
        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: an initiator that does not trust the responder's CA refuses it (`handshake_failed.tls`).
pub async fn untrusted_server_certificate_is_refused(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("revtun test CA");
        let other = TestCa::new("another CA");
        let server = server_tls(&responder_cert(&ca), None, false);
        let (responder, _seen) = tls_responder(&sides, server).await;
        let client = client_tls(&other, None);
        let listener = tls_initiator(&sides, responder.local_addr(), 1, client).await;
        wait_tls_failures(rt, &responder, &listener, false).await;
        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: raw TCP peers on a TLS handshake listener — one silent, one sending half a ClientHello —
/// are closed at `handshake_timeout` and counted `timeout`, not `tls_failed`.
pub async fn stalled_tls_handshakes_close_at_the_handshake_timeout(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("revtun test CA");
        let server = server_tls(&responder_cert(&ca), None, false);
        let (responder, _seen) = tls_responder(&sides, server).await;
        let addr = responder.local_addr();
        let mut silent = sides.responder.connect(addr).await.expect("connect");
        let mut half = sides.responder.connect(addr).await.expect("connect");
        // A TLS record header announcing a 512-byte handshake record, then a few bytes of it.
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
            .await
            .expect("write");
        // handshake_timeout is 1 s: both are closed by then, with nothing written to them.
        let limit = Duration::from_secs(3);
        assert_eq!(read_until_closed(rt, &mut silent, limit).await, b"");
        assert_eq!(read_until_closed(rt, &mut half, limit).await, b"");
        assert_eq!(responder_counter(&responder, "timeout").await, 2);
        assert_eq!(responder_counter(&responder, "tls_failed").await, 0);
        let counts = responder.counts().await.expect("counts");
        assert_eq!(counts.handshaking, 0);
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
