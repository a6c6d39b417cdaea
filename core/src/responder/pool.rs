//! The one idle pool of the responder: tunnels FIFO per node, cluster membership per tunnel, cluster
//! round-robin, tenant scoping, and the live-tunnel tallies behind the gauges and the per-node cap.
//!
//! Keys carry a *scope* tenant: the tunnel's tenant under isolation, the empty string otherwise, so that
//! without isolation the tenant plays no part in pooling. The pool only keeps tallies and the idle
//! queues; the responder tells it of every move of a tunnel through [`Pool::transition`] (from its
//! `set_state` chokepoint). Entries whose tallies reach zero are dropped, so memory follows the live
//! tunnels.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::tunnel::Readiness;
use crate::command::ConnId;

/// A node within a tenant scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct NodeKey {
    /// Scope tenant (empty without isolation).
    pub tenant: String,
    /// The node id.
    pub node: String,
}

/// A cluster within a tenant scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct ClusterKey {
    /// Scope tenant (empty without isolation).
    pub tenant: String,
    /// The cluster id.
    pub cluster: String,
}

/// What a registered tunnel belongs to: fixed at registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Membership {
    /// Its node in its scope.
    pub key: NodeKey,
    /// The cluster it registered with.
    pub cluster: String,
    /// The tenant it sent (equal to the scope tenant under isolation).
    pub tenant: String,
    /// Registration order: the FIFO position among its node's idle tunnels.
    pub seq: u64,
}

/// Where a live tunnel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// In the pool, claimable.
    Idle,
    /// Handed out to the driver.
    InUse,
}

/// One node's tunnels, for the admin endpoint (`/reverse_connections`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    /// The node id.
    pub node: String,
    /// Under tenant isolation, the tenant whose pool this is. Without isolation, the tenant the node's
    /// live tunnels sent (a node normally sends one; if they differ, the alphabetically first).
    pub tenant: String,
    /// The clusters its live tunnels registered with, sorted.
    pub clusters: Vec<String>,
    /// Idle tunnels in the pool.
    pub idle: u64,
    /// Tunnels handed out and not yet closed.
    pub in_use: u64,
}

#[derive(Debug, Default)]
struct NodeEntry {
    /// Idle tunnels in FIFO order (registration order), with the cluster each registered with.
    idle: BTreeMap<(u64, ConnId), String>,
    in_use: u64,
    /// Live tunnels per cluster.
    clusters: BTreeMap<String, u64>,
    /// Live tunnels per tenant sent.
    tenants: BTreeMap<String, u64>,
}

impl NodeEntry {
    fn live(&self) -> u64 {
        self.idle.len() as u64 + self.in_use
    }

    /// The idle tunnel with the best readiness that `ready` gives (`None` = not claimable), the oldest of
    /// those, registered with `cluster` if given.
    fn best_idle(
        &self,
        cluster: Option<&str>,
        ready: &impl Fn(ConnId) -> Option<Readiness>,
    ) -> Option<ConnId> {
        let mut best: Option<(Readiness, ConnId)> = None;
        for (&(_, conn), registered) in &self.idle {
            if cluster.is_some_and(|want| registered.as_str() != want) {
                continue;
            }
            match ready(conn) {
                Some(Readiness::Fresh) => return Some(conn),
                Some(r) if best.is_none_or(|(b, _)| r < b) => best = Some((r, conn)),
                _ => {}
            }
        }
        best.map(|(_, conn)| conn)
    }
}

#[derive(Debug, Default)]
struct ClusterEntry {
    /// Live tunnels per node registered with this cluster.
    nodes: BTreeMap<String, u64>,
    /// The node that served this cluster's last claim; the next claim starts after it.
    cursor: Option<String>,
}

impl ClusterEntry {
    fn live(&self) -> u64 {
        self.nodes.values().sum()
    }
}

/// The pool: see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Pool {
    nodes: BTreeMap<NodeKey, NodeEntry>,
    clusters: BTreeMap<ClusterKey, ClusterEntry>,
}

fn inc(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

fn dec(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Pool {
    /// A tunnel moves from `from` to `to` (`None` = not a live tunnel: handshaking, or gone).
    pub fn transition(
        &mut self,
        conn: ConnId,
        m: &Membership,
        from: Option<Slot>,
        to: Option<Slot>,
    ) {
        if from == to {
            return;
        }
        let node = self.nodes.entry(m.key.clone()).or_default();
        match from {
            Some(Slot::Idle) => {
                node.idle.remove(&(m.seq, conn));
            }
            Some(Slot::InUse) => node.in_use = node.in_use.saturating_sub(1),
            None => {}
        }
        match to {
            Some(Slot::Idle) => {
                node.idle.insert((m.seq, conn), m.cluster.clone());
            }
            Some(Slot::InUse) => node.in_use += 1,
            None => {}
        }
        let cluster_key = ClusterKey {
            tenant: m.key.tenant.clone(),
            cluster: m.cluster.clone(),
        };
        match (from.is_some(), to.is_some()) {
            (false, true) => {
                inc(&mut node.clusters, &m.cluster);
                inc(&mut node.tenants, &m.tenant);
                inc(
                    &mut self.clusters.entry(cluster_key).or_default().nodes,
                    &m.key.node,
                );
            }
            (true, false) => {
                dec(&mut node.clusters, &m.cluster);
                dec(&mut node.tenants, &m.tenant);
                if let Some(entry) = self.clusters.get_mut(&cluster_key) {
                    dec(&mut entry.nodes, &m.key.node);
                    if entry.nodes.is_empty() {
                        self.clusters.remove(&cluster_key);
                    }
                }
            }
            _ => {}
        }
        if self.nodes.get(&m.key).is_some_and(|n| n.live() == 0) {
            self.nodes.remove(&m.key);
        }
    }

    /// Live tunnels (idle, in use) of a node in a scope: what the per-node cap counts.
    pub fn live(&self, key: &NodeKey) -> u64 {
        self.nodes.get(key).map_or(0, NodeEntry::live)
    }

    /// The tunnel a claim for `target` in `scope` gets, if any: `target` as a cluster first (its nodes
    /// round-robin from the one after the last served, skipping nodes with no claimable idle tunnel of
    /// that cluster), then as a node. Within the node: the best [`Readiness`] that `ready` gives, the
    /// oldest of those. Moves the cluster's cursor when a cluster serves.
    pub fn pick(
        &mut self,
        scope: &str,
        target: &str,
        ready: impl Fn(ConnId) -> Option<Readiness>,
    ) -> Option<ConnId> {
        let cluster_key = ClusterKey {
            tenant: scope.to_owned(),
            cluster: target.to_owned(),
        };
        if let Some(entry) = self.clusters.get_mut(&cluster_key) {
            let order: Vec<&String> = match &entry.cursor {
                Some(last) => entry
                    .nodes
                    .range::<String, _>((Bound::Excluded(last), Bound::Unbounded))
                    .chain(entry.nodes.range::<String, _>(..=last))
                    .map(|(node, _)| node)
                    .collect(),
                None => entry.nodes.keys().collect(),
            };
            let mut found = None;
            for node in order {
                let key = NodeKey {
                    tenant: scope.to_owned(),
                    node: node.clone(),
                };
                if let Some(conn) = self
                    .nodes
                    .get(&key)
                    .and_then(|n| n.best_idle(Some(target), &ready))
                {
                    found = Some((node.clone(), conn));
                    break;
                }
            }
            if let Some((node, conn)) = found {
                entry.cursor = Some(node);
                return Some(conn);
            }
        }
        let key = NodeKey {
            tenant: scope.to_owned(),
            node: target.to_owned(),
        };
        self.nodes.get(&key)?.best_idle(None, &ready)
    }

    /// Live tunnels per node key with any (the node gauges).
    pub fn node_gauges(&self) -> impl Iterator<Item = (&NodeKey, u64)> {
        self.nodes.iter().map(|(k, n)| (k, n.live()))
    }

    /// Live tunnels per cluster key with any (the cluster gauges).
    pub fn cluster_gauges(&self) -> impl Iterator<Item = (&ClusterKey, u64)> {
        self.clusters.iter().map(|(k, c)| (k, c.live()))
    }

    /// Idle tunnels of a node key, oldest first.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn idle_of(&self, key: &NodeKey) -> Vec<ConnId> {
        self.nodes
            .get(key)
            .map(|n| n.idle.keys().map(|&(_, conn)| conn).collect())
            .unwrap_or_default()
    }

    /// One summary per node key, sorted by (scope tenant, node).
    pub fn summaries(&self, isolation: bool) -> Vec<NodeSummary> {
        self.nodes
            .iter()
            .map(|(key, n)| NodeSummary {
                node: key.node.clone(),
                tenant: if isolation {
                    key.tenant.clone()
                } else {
                    n.tenants.keys().next().cloned().unwrap_or_default()
                },
                clusters: n.clusters.keys().cloned().collect(),
                idle: n.idle.len() as u64,
                in_use: n.in_use,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: fn(ConnId) -> Option<Readiness> = |_| Some(Readiness::Fresh);

    fn member(tenant: &str, node: &str, cluster: &str, seq: u64) -> Membership {
        Membership {
            key: NodeKey {
                tenant: tenant.into(),
                node: node.into(),
            },
            cluster: cluster.into(),
            tenant: tenant.into(),
            seq,
        }
    }

    #[test]
    fn tallies_follow_transitions_and_vanish_at_zero() {
        let mut pool = Pool::default();
        let m = member("", "n", "c", 0);
        pool.transition(ConnId(1), &m, None, Some(Slot::Idle));
        pool.transition(ConnId(1), &m, Some(Slot::Idle), Some(Slot::InUse));
        assert_eq!(pool.live(&m.key), 1);
        assert_eq!(pool.idle_of(&m.key), vec![]);
        assert_eq!(pool.summaries(false)[0].in_use, 1);
        pool.transition(ConnId(1), &m, Some(Slot::InUse), None);
        assert_eq!(pool.live(&m.key), 0);
        assert_eq!(pool.node_gauges().count(), 0);
        assert_eq!(pool.cluster_gauges().count(), 0);
    }

    #[test]
    fn round_robin_wraps_and_keeps_its_cursor_while_the_cluster_lives() {
        let mut pool = Pool::default();
        for (i, node) in ["a", "b", "c"].iter().enumerate() {
            for j in 0..2 {
                let seq = (i * 2 + j) as u64;
                pool.transition(
                    ConnId(seq),
                    &member("", node, "cl", seq),
                    None,
                    Some(Slot::Idle),
                );
            }
        }
        let mut got = Vec::new();
        for _ in 0..6 {
            let conn = pool.pick("", "cl", FRESH).expect("idle left");
            let seq = conn.0;
            let node = ["a", "b", "c"][(seq / 2) as usize];
            pool.transition(
                conn,
                &member("", node, "cl", seq),
                Some(Slot::Idle),
                Some(Slot::InUse),
            );
            got.push(conn.0);
        }
        assert_eq!(got, vec![0, 2, 4, 1, 3, 5]);
        assert_eq!(pool.pick("", "cl", FRESH), None);
        // Eligibility filters: nothing eligible, nothing picked, cursor unchanged.
        pool.transition(ConnId(9), &member("", "a", "cl", 9), None, Some(Slot::Idle));
        assert_eq!(pool.pick("", "cl", |_| None), None);
        assert_eq!(pool.pick("", "a", FRESH), Some(ConnId(9)));
        // Another scope sees nothing.
        assert_eq!(pool.pick("t", "cl", FRESH), None);
    }

    #[test]
    fn a_node_gives_its_freshest_tunnel_then_its_oldest() {
        let mut pool = Pool::default();
        for seq in 0..3 {
            pool.transition(
                ConnId(seq),
                &member("", "n", "cl", seq),
                None,
                Some(Slot::Idle),
            );
        }
        // Tunnel 0 has a ping in flight: tunnel 1, the oldest fresh one, goes first.
        let ready = |c: ConnId| {
            Some(if c.0 == 0 {
                Readiness::PingInFlight
            } else {
                Readiness::Fresh
            })
        };
        assert_eq!(pool.pick("", "n", ready), Some(ConnId(1)));
        assert_eq!(pool.pick("", "cl", ready), Some(ConnId(1)));
        // With no fresh tunnel, the oldest with a ping in flight.
        let in_flight = |c: ConnId| (c.0 != 1).then_some(Readiness::PingInFlight);
        assert_eq!(pool.pick("", "n", in_flight), Some(ConnId(0)));
    }
}
