//! Data-leg TLS inside tunnel TLS, through the library: inside a claimed tunnel the responder is the TLS
//! client and the initiator the TLS server (DESIGN.md, "TLS: two independent layers").

use std::sync::Arc;

use revtun_driver::tls::ServerName;

use super::tls::{client_tls, node_cert, responder_cert, server_tls, tls_initiator, tls_responder};
use super::*;
use crate::certs::TestCa;

/// Scenario: a TLS session inside a claimed tunnel that is itself TLS carries data both ways.
pub async fn data_leg_tls_inside_tunnel_tls(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let ca = TestCa::new("tunnel CA");
        let data_ca = TestCa::new("data-leg CA");
        let (responder, _seen) =
            tls_responder(&sides, server_tls(&responder_cert(&ca), Some(&ca), true)).await;
        let client = client_tls(&ca, Some(&node_cert(&ca)));
        let listener = Arc::new(tls_initiator(&sides, responder.local_addr(), 1, client).await);
        wait_idle(rt, &responder, 1).await;

        // The service behind the initiator terminates the data-leg TLS with a certificate for the node
        // id, and echoes.
        let data_server = server_tls(&data_ca.issue(NODE, &[NODE]), None, false);
        let accepting = listener.clone();
        let service = spawn(&*sides.initiator, async move {
            let (tunnel, _info) = accepting.accept().await.expect("accept");
            let (session, identity) = data_server.accept(tunnel).await.expect("data-leg TLS");
            assert_eq!(identity, None, "the responder sends no client certificate");
            echo(session).await;
        });

        let tunnel = responder.connect(NODE).await.expect("claim");
        let data_client = client_tls(&data_ca, None);
        let name = ServerName::try_from(NODE.to_owned()).expect("a DNS name");
        let mut session = data_client
            .connect(tunnel, name)
            .await
            .expect("data-leg TLS");
        let payload: Vec<u8> = (0..30_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(exchange(rt, &mut session, &payload).await, payload);
        drop(session);
        service.join().await;

        let listener = Arc::into_inner(listener).expect("the service task ended");
        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
