//! Identity binding over real tunnel TLS (issue #6): the responder requires the handshake's node id to
//! match the verified client certificate's URI SAN (`spiffe://revtun.test/{node}`). The certified node
//! registers; a node id the certificate does not name gets 403 (row 10); a client without a certificate,
//! where the listener verifies but does not require one, gets 401 (row 8). Certificates are made at run
//! time.

use std::sync::Arc;
use std::time::Duration;

use revtun_core::policy::{CertificateIdentity, Policy, SanTemplate};
use revtun_driver::ResponderOptions;
use revtun_driver::tls::TlsServerSource;

use super::tls::{
    client_tls, handshake_failed, node_cert, responder_cert, responder_counter, server_tls,
    tls_initiator, tls_initiator_with,
};
use super::*;
use crate::certs::TestCa;

/// A responder with tunnel TLS `tls` whose policy binds the node id to the certificate's URI SAN.
async fn binding_responder(sides: &Sides, tls: TlsServerSource) -> ResponderHandle {
    let policy = Policy {
        certificate: Some(CertificateIdentity {
            uri_san: Some(SanTemplate::parse("spiffe://revtun.test/{node}").expect("template")),
            dns_san: None,
        }),
        ..Policy::default()
    };
    let options = ResponderOptions {
        seed: Some([9; 32]),
        authorizer: Some(Arc::new(policy)),
        tunnel_tls: Some(tls),
    };
    let addr = "127.0.0.1:0".parse().unwrap();
    ResponderHandle::bind(sides.responder.clone(), addr, responder_config(), options)
        .await
        .expect("responder binds")
}

/// Scenario: the certified node registers and carries data; another node id with the same certificate
/// is refused with 403; an anonymous client (certificate verified if sent, not required) with 401.
pub async fn identity_binding_admits_only_the_certified_node(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("revtun test CA");
        // Client certificates verified when presented, not required: a missing one is the binding's
        // 401, not a TLS failure.
        let server = server_tls(&responder_cert(&ca), Some(&ca), false);
        let responder = binding_responder(&sides, server).await;
        let host = responder.local_addr();

        // The certified node: its certificate's URI SAN is spiffe://revtun.test/node-a.
        let certified =
            Arc::new(tls_initiator(&sides, host, 2, client_tls(&ca, Some(&node_cert(&ca)))).await);
        let echo = spawn_echo(sides.initiator.clone(), certified.clone());
        wait_idle(rt, &responder, 2).await;
        let mut tunnel = responder.connect(NODE).await.expect("claim");
        assert_eq!(exchange(rt, &mut tunnel, b"bound").await, b"bound");
        drop(tunnel);

        // The same certificate claiming to be node-b.
        let mut impostor_config = initiator_config(1, true);
        impostor_config.node = "node-b".into();
        let impostor = tls_initiator_with(
            &sides,
            impostor_config,
            host,
            client_tls(&ca, Some(&node_cert(&ca))),
        )
        .await;
        wait_until(rt, Duration::from_secs(5), "403 for node-b", || async {
            handshake_failed(&impostor, host, "http_403").await >= 1
        })
        .await;
        assert!(responder_counter(&responder, "validation_failed").await >= 1);
        assert_eq!(idle_of(&responder, "node-b").await, 0);
        shut_down(rt, "impostor", impostor.shutdown()).await;

        // No client certificate at all.
        let anonymous = tls_initiator(&sides, host, 1, client_tls(&ca, None)).await;
        wait_until(
            rt,
            Duration::from_secs(5),
            "401 without a certificate",
            || async { handshake_failed(&anonymous, host, "http_401").await >= 1 },
        )
        .await;
        assert!(responder_counter(&responder, "auth_failed").await >= 1);
        shut_down(rt, "anonymous", anonymous.shutdown()).await;

        // The certified node's tunnels were never disturbed.
        assert_eq!(idle_of(&responder, NODE).await, 2);
        echo.abort().await;
        let certified = Arc::into_inner(certified).expect("the echo task held the other reference");
        shut_down(rt, "initiator", certified.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
