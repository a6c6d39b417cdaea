//! A responder and a ReverseListener on loopback: `count` tunnels register, and both sides count them.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tunnels_register_and_both_sides_count_them() {
    common::within(async {
        let responder = responder().await;
        let listener = initiator(responder.local_addr(), 3, true).await;
        wait_idle(&responder, 3).await;

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
        wait_until(
            std::time::Duration::from_secs(2),
            "initiator gauges",
            || async {
                let s = listener.stats().await.unwrap();
                s.get(&format!("downstream_reverse_connection.host.{host}.idle")) == Some(3)
            },
        )
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
        assert_eq!(
            stats.get(&format!(
                "downstream_reverse_connection.host.{host}.connected"
            )),
            Some(3)
        );
        let counts = listener.counts().await.unwrap();
        assert!(counts.is_balanced());
        assert_eq!((counts.opened, counts.idle), (3, 3));

        // Keepalive runs: after several ping intervals the tunnels are still the same three.
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        let counts = listener.counts().await.unwrap();
        assert_eq!((counts.opened, counts.idle), (3, 3), "{counts:?}");

        shut_down("initiator", listener.shutdown()).await;
        shut_down("responder", responder.shutdown()).await;
    })
    .await;
}
