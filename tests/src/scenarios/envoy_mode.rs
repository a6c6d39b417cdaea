//! Envoy mode (the claim marker not offered, as with an Envoy peer): client-speaks-first data such as
//! HTTP/1 goes through, and the pool refills after the claim.

use std::time::Duration;

use super::*;

/// Scenario: http request goes through without the claim marker.
pub async fn http_request_goes_through_without_the_claim_marker(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let setup = EchoSetup::start(&sides, 2, false).await;
        let responder = &setup.responder;
        // Let a few pings and echoes pass, so the hand-out has to respect the ping in flight.
        sleep(rt, Duration::from_millis(250)).await;

        for _ in 0..3 {
            let request = b"GET /hello HTTP/1.1\r\nhost: service\r\ncontent-length: 5\r\n\r\nworld";
            let mut stream = responder.connect(NODE).await.expect("claim");
            assert_eq!(exchange(rt, &mut stream, request).await, request);
        }
        wait_idle(rt, responder, 2).await;
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.handed_out"), Some(3));

        setup.finish().await;
    })
    .await;
}
