//! The responder stops and comes back on the same port: the initiator notices, backs off, reconnects,
//! and its pool and gauges return to the true values.

use std::time::Duration;

use super::*;

/// Scenario: initiator reconnects after responder restart.
pub async fn initiator_reconnects_after_responder_restart(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let first = responder(&sides).await;
        let addr = first.local_addr();
        let listener = initiator(&sides, addr, 2, true).await;
        wait_idle(rt, &first, 2).await;
        shut_down(rt, "first responder", first.shutdown()).await;

        // The initiator sees its tunnels go and its dials fail.
        let connected = format!("downstream_reverse_connection.cluster.{TARGET}.connected");
        let failed = format!("downstream_reverse_connection.cluster.{TARGET}.failed");
        wait_until(
            rt,
            Duration::from_secs(3),
            "tunnels lost, dials failing",
            || async {
                let s = listener.stats().await.unwrap();
                s.get(&connected) == Some(0) && s.get(&failed).unwrap_or(0) > 0
            },
        )
        .await;

        let second = responder_at(&sides, addr).await;
        wait_idle(rt, &second, 2).await;
        wait_until(rt, Duration::from_secs(2), "gauges back", || async {
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

        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "second responder", second.shutdown()).await;
    })
    .await;
}
