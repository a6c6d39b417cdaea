//! Claims that cannot be served: a typed timeout after `claim_timeout`, withdrawal when the caller
//! stops waiting, and a typed error after shutdown.

use std::time::{Duration, Instant};

use revtun_driver::ClaimError;

use super::*;

/// Scenario: unknown node times out within claim timeout.
pub async fn unknown_node_times_out_within_claim_timeout(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let claim_timeout = responder_config().claim_timeout;
        let start = Instant::now();
        let error = responder.connect("nobody").await.expect_err("no such node");
        let waited = start.elapsed();
        assert_eq!(error, ClaimError::Timeout);
        assert!(waited >= claim_timeout, "gave up early: {waited:?}");
        let late = claim_timeout + Duration::from_millis(500);
        assert!(waited < late, "late: {waited:?}");
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.expired"), Some(1));
        assert_eq!(stats.get("reverse_connections.claims.waiting"), Some(0));
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: a dropped claim is withdrawn.
pub async fn a_dropped_claim_is_withdrawn(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let claim = responder.connect("nobody");
        let abandoned = timeout(rt, Duration::from_millis(50), claim).await;
        assert!(abandoned.is_err(), "the claim was still waiting");
        wait_until(rt, Duration::from_secs(1), "claim withdrawn", || async {
            let stats = responder.stats().await.unwrap();
            stats.get("reverse_connections.claims.waiting") == Some(0)
        })
        .await;
        // Withdrawn, not expired.
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.expired"), Some(0));
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// Scenario: claims fail with shutdown once the responder stops.
pub async fn claims_fail_with_shutdown_once_the_responder_stops(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let waiting = {
            let responder = responder.clone();
            spawn(&*sides.responder, async move {
                responder.connect("nobody").await.map(drop)
            })
        };
        sleep(rt, Duration::from_millis(50)).await;
        let other = responder.clone();
        shut_down(rt, "responder", responder.shutdown()).await;
        assert_eq!(waiting.join().await, Err(ClaimError::Shutdown));
        assert_eq!(
            other.connect("x").await.map(drop),
            Err(ClaimError::Shutdown)
        );
        assert!(other.stats().await.is_err());
    })
    .await;
}
