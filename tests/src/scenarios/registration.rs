//! A responder and a ReverseListener on loopback: `count` tunnels register, and both sides count them.

use std::time::Duration;

use super::*;

/// Scenario: count tunnels register and both sides count them.
pub async fn count_tunnels_register_and_both_sides_count_them(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let listener = initiator(&sides, responder.local_addr(), 3, true).await;
        wait_idle(rt, &responder, 3).await;

        let nodes = responder.nodes().await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].node, NODE);
        assert_eq!(nodes[0].clusters, vec![CLUSTER.to_string()]);
        assert_eq!((nodes[0].idle, nodes[0].in_use), (3, 0));

        let stats = responder.stats().await.unwrap();
        assert_eq!(stats.get("reverse_connections.nodes.node-a"), Some(3));
        assert_eq!(stats.get("reverse_connections.clusters.edge"), Some(3));
        assert_eq!(stats.get("reverse_connections.total_nodes"), Some(1));
        assert_eq!(stats.get("reverse_tunnel.handshake.accepted"), Some(3));

        let host = responder.local_addr();
        let idle = format!("downstream_reverse_connection.host.{host}.idle");
        wait_until(rt, Duration::from_secs(2), "initiator gauges", || async {
            listener.stats().await.unwrap().get(&idle) == Some(3)
        })
        .await;
        let stats = listener.stats().await.unwrap();
        let cluster = |state: &str| {
            stats.get(&format!(
                "downstream_reverse_connection.cluster.{TARGET}.{state}"
            ))
        };
        assert_eq!(cluster("connected"), Some(3));
        assert_eq!(cluster("connecting"), Some(0));
        assert_eq!(cluster("failed"), Some(0));
        let connected = format!("downstream_reverse_connection.host.{host}.connected");
        assert_eq!(stats.get(&connected), Some(3));
        let counts = listener.counts().await.unwrap();
        assert!(counts.is_balanced());
        assert_eq!((counts.opened, counts.idle), (3, 3));

        // Keepalive runs: after several ping intervals the tunnels are still the same three.
        sleep(rt, Duration::from_millis(350)).await;
        let counts = listener.counts().await.unwrap();
        assert_eq!((counts.opened, counts.idle), (3, 3), "{counts:?}");

        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}
