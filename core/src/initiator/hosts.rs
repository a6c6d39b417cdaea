//! Host sets: hosts added and removed by the driver, a removed host's retirement, and shutdown.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use super::Initiator;
use super::attempt::Ending;
use super::event::{CannotConnectCause, InitiatorEvent, LostReason, UnknownCluster};
use super::host::{Pool, PoolKey};
use super::tunnel::Phase;
use crate::command::ConnId;

impl Initiator {
    /// Replaces the host set of cluster `index`: removed hosts are retired, new ones get a pool, and every
    /// current host is filled.
    pub(super) fn replace_hosts(
        &mut self,
        cluster: &str,
        hosts: &[SocketAddr],
        now: Instant,
    ) -> Result<(), UnknownCluster> {
        let index = self
            .clusters
            .iter()
            .position(|c| c.name == cluster)
            .ok_or_else(|| UnknownCluster(cluster.to_owned()))?;
        let new: BTreeSet<SocketAddr> = hosts.iter().copied().collect();
        if new.is_empty() {
            self.cannot_connect(index, CannotConnectCause::NoHosts);
        }
        let state = &mut self.clusters[index];
        let count = state.count;
        let old = std::mem::replace(&mut state.hosts, new.clone());
        for &host in old.difference(&new) {
            self.retire(
                PoolKey {
                    cluster: index,
                    host,
                },
                now,
            );
        }
        for &host in &new {
            let key = PoolKey {
                cluster: index,
                host,
            };
            let pool = self.pools.entry(key).or_insert_with(|| Pool::new(count));
            if pool.retired {
                tracing::debug!(%host, cluster, "removed host is back");
                pool.retired = false;
            }
        }
        for &host in &new {
            self.fill(
                PoolKey {
                    cluster: index,
                    host,
                },
                now,
            );
        }
        Ok(())
    }

    /// Counts an attempt that could not start for a whole cluster and reports it.
    pub(super) fn cannot_connect(&mut self, index: usize, cause: CannotConnectCause) {
        let Some(cluster) = self.clusters.get_mut(index) else {
            return;
        };
        cluster.counters.cannot_connect += 1;
        tracing::debug!(cluster = cluster.name, ?cause, "cannot connect");
        self.events.push_back(InitiatorEvent::CannotConnect {
            cluster: cluster.name.clone(),
            cause,
        });
    }

    /// A host left its cluster: close its dials, handshakes and idle tunnels at once; its in-use tunnels
    /// finish. Its statistics stay until then.
    fn retire(&mut self, key: PoolKey, now: Instant) {
        let Some(pool) = self.pools.get_mut(&key) else {
            return;
        };
        tracing::debug!(host = %key.host, "host removed");
        pool.retired = true;
        pool.recovered = false;
        self.set_backoff(key, None);
        for conn in self.cancellable(|k| k == key) {
            self.end(conn, Ending::Lost(LostReason::HostRemoved), true, now);
        }
        self.fold_if_finished(key);
    }

    /// Stop dialling; close every dial, handshake and idle tunnel; in-use tunnels finish.
    pub(super) fn shut_down(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        tracing::debug!("initiator shutting down");
        self.shut_down = true;
        let keys: Vec<PoolKey> = self.pools.keys().copied().collect();
        for key in keys {
            self.set_backoff(key, None);
        }
        for conn in self.cancellable(|_| true) {
            self.end(conn, Ending::Lost(LostReason::Shutdown), true, now);
        }
    }

    /// Connections of the matching hosts that the core may still close itself (all but in-use ones).
    fn cancellable(&self, matches: impl Fn(PoolKey) -> bool) -> Vec<ConnId> {
        self.tunnels
            .iter()
            .filter(|(_, t)| matches(t.pool) && t.state.phase() != Phase::InUse)
            .map(|(&conn, _)| conn)
            .collect()
    }

    /// A removed host with no tunnel left: fold its counters into its cluster (and, while the host is a pool
    /// of another cluster, into its host-level leftovers) and forget it.
    pub(super) fn fold_if_finished(&mut self, key: PoolKey) {
        let finished = self
            .pools
            .get(&key)
            .is_some_and(|p| p.retired && p.tunnels.live() == 0);
        if !finished {
            return;
        }
        self.set_backoff(key, None);
        let Some(pool) = self.pools.remove(&key) else {
            return;
        };
        if let Some(cluster) = self.clusters.get_mut(key.cluster) {
            cluster.counters.absorb(&pool.counters);
        }
        // Host-level counters must not drop while the host is still a pool of another cluster.
        if self.pools.keys().any(|k| k.host == key.host) {
            self.retired_hosts
                .entry(key.host)
                .or_default()
                .absorb(&pool.counters);
        } else {
            self.retired_hosts.remove(&key.host);
        }
        tracing::debug!(host = %key.host, "removed host forgotten");
    }
}
