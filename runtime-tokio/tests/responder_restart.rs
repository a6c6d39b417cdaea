//! The responder stops and comes back on the same port: the initiator notices, backs off, reconnects,
//! and its pool and gauges return to the true values.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_reconnects_after_responder_restart() {
    common::within(async {
        let first = responder().await;
        let addr = first.local_addr();
        let listener = initiator(addr, 2, true).await;
        wait_idle(&first, 2).await;
        shut_down("first responder", first.shutdown()).await;

        // The initiator sees its tunnels go and its dials fail.
        let connected = format!("downstream_reverse_connection.cluster.{TARGET}.connected");
        let failed = format!("downstream_reverse_connection.cluster.{TARGET}.failed");
        wait_until(
            Duration::from_secs(3),
            "tunnels lost, dials failing",
            || async {
                let s = listener.stats().await.unwrap();
                s.get(&connected) == Some(0) && s.get(&failed).unwrap_or(0) > 0
            },
        )
        .await;

        let second = responder_at(addr).await;
        wait_idle(&second, 2).await;
        wait_until(Duration::from_secs(2), "gauges back", || async {
            let s = listener.stats().await.unwrap();
            let host = |state: &str| {
                s.get(&format!(
                    "downstream_reverse_connection.host.{addr}.{state}"
                ))
            };
            s.get(&connected) == Some(2) && host("idle") == Some(2) && host("backoff") == Some(0)
        })
        .await;
        let counts = listener.counts().await.unwrap();
        assert!(counts.is_balanced(), "{counts:?}");
        assert_eq!(counts.idle, 2);

        shut_down("initiator", listener.shutdown()).await;
        shut_down("second responder", second.shutdown()).await;
    })
    .await;
}
