//! Tunnel TLS certificate reload: the responder's certificate files are rewritten with a certificate of
//! a new CA; new tunnels get the new certificate, tunnels established before stay up and carry data.

use std::sync::Arc;
use std::time::Duration;

use revtun_driver::tls::{CertificateFiles, PemSource, ServerTlsFiles, TlsServerSource};

use super::tls::{
    client_tls, handshake_failed, responder_cert, tls_initiator, tls_initiator_with, tls_responder,
};
use super::*;
use crate::certs::{ScratchDir, TestCa};

/// The node id of the second initiator, which trusts only the new CA.
const NODE_B: &str = "node-b";

/// Scenario: rewritten certificate files are used by new tunnels; old tunnels keep working.
pub async fn rewritten_certificates_apply_to_new_tunnels_only(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let dir = ScratchDir::new("tls-reload");
        let old_ca = TestCa::new("old CA");
        let new_ca = TestCa::new("new CA");
        let (cert, key) = responder_cert(&old_ca).write(dir.path(), "responder");
        let server = TlsServerSource::new(ServerTlsFiles {
            certificate: CertificateFiles {
                certificate_chain: PemSource::File(cert),
                private_key: PemSource::File(key),
            },
            trusted_ca: None,
            require_client_certificate: false,
        })
        .expect("server TLS files")
        .with_reload_interval(Duration::ZERO);
        let (responder, _seen) = tls_responder(&sides, server).await;
        let host = responder.local_addr();

        // The first initiator trusts the old CA only; its tunnel is up before the rewrite.
        let old = Arc::new(tls_initiator(&sides, host, 1, client_tls(&old_ca, None)).await);
        let echo = spawn_echo(sides.initiator.clone(), old.clone());
        wait_idle(rt, &responder, 1).await;

        responder_cert(&new_ca).write(dir.path(), "responder");

        // The second initiator trusts the new CA only: it registers, so new handshakes use the new
        // certificate.
        let mut config = initiator_config(1, true);
        config.node = NODE_B.into();
        let new = tls_initiator_with(&sides, config, host, client_tls(&new_ca, None)).await;
        wait_until(rt, Duration::from_secs(5), "node-b registered", || async {
            idle_of(&responder, NODE_B).await == 1
        })
        .await;

        // The old tunnel survived the reload and carries data.
        let mut tunnel = responder.connect(NODE).await.expect("claim the old tunnel");
        assert_eq!(
            exchange(rt, &mut tunnel, b"still here").await,
            b"still here"
        );
        drop(tunnel);
        // Its replacement is dialled with the old trust and refused by the new certificate.
        wait_until(
            rt,
            Duration::from_secs(5),
            "the old initiator's redial fails",
            || async { handshake_failed(&old, host, "tls").await >= 1 },
        )
        .await;
        assert_eq!(handshake_failed(&new, host, "tls").await, 0);

        echo.abort().await;
        let old = Arc::into_inner(old).expect("the echo task held the other reference");
        shut_down(rt, "old initiator", old.shutdown()).await;
        shut_down(rt, "new initiator", new.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
