//! Claims that cannot be served: a typed timeout after `claim_timeout`, withdrawal when the caller
//! stops waiting, and a typed error after shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use revtun_tokio::ClaimError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_times_out_within_claim_timeout() {
    common::within(async {
        let responder = responder().await;
        let claim_timeout = responder_config().claim_timeout;
        let start = Instant::now();
        let error = responder.connect("nobody").await.expect_err("no such node");
        let waited = start.elapsed();
        assert_eq!(error, ClaimError::Timeout);
        assert!(waited >= claim_timeout, "gave up early: {waited:?}");
        assert!(
            waited < claim_timeout + Duration::from_millis(500),
            "late: {waited:?}"
        );
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.expired"), Some(1));
        assert_eq!(stats.get("reverse_connections.claims.waiting"), Some(0));
        shut_down("responder", responder.shutdown()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_claim_is_withdrawn() {
    common::within(async {
        let responder = responder().await;
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), responder.connect("nobody")).await;
        assert!(abandoned.is_err(), "the claim was still waiting");
        wait_until(Duration::from_secs(1), "claim withdrawn", || async {
            let stats = responder.stats().await.unwrap();
            stats.get("reverse_connections.claims.waiting") == Some(0)
        })
        .await;
        // Withdrawn, not expired.
        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.claims.expired"), Some(0));
        shut_down("responder", responder.shutdown()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_fail_with_shutdown_once_the_responder_stops() {
    common::within(async {
        let responder = responder().await;
        let waiting = {
            let responder = responder.clone();
            tokio::spawn(async move { responder.connect("nobody").await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = responder.clone();
        shut_down("responder", responder.shutdown()).await;
        assert_eq!(waiting.await.unwrap(), Err(ClaimError::Shutdown));
        assert_eq!(
            other.connect("x").await.map(drop),
            Err(ClaimError::Shutdown)
        );
        assert!(other.stats().await.is_err());
    })
    .await;
}
