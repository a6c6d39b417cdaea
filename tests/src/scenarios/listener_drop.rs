//! Dropping the ReverseListener closes its idle tunnels (the responder sees them go); a tunnel already
//! accepted stays with its stream.

use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};

use super::*;

/// Scenario: dropping the listener closes idle tunnels only.
pub async fn dropping_the_listener_closes_idle_tunnels_only(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let listener = initiator(&sides, responder.local_addr(), 3, true).await;
        wait_idle(rt, &responder, 3).await;

        let (claimed, accepted) = future::zip(responder.connect(NODE), listener.accept()).await;
        let mut claimed = claimed.expect("claim");
        let (mut accepted, _) = accepted.expect("accept");
        drop(listener);

        wait_until(rt, Duration::from_secs(2), "idle tunnels gone", || async {
            let nodes = responder.nodes().await.unwrap();
            nodes.len() == 1 && nodes[0].idle == 0 && nodes[0].in_use == 1
        })
        .await;

        // The accepted tunnel still carries data.
        claimed.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");

        drop(accepted);
        let mut rest = Vec::new();
        claimed.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(claimed);
        wait_until(rt, Duration::from_secs(2), "node gone", || async {
            responder.nodes().await.unwrap().is_empty()
        })
        .await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
