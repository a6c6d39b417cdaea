//! Per-host state: one [`Pool`] per (target cluster, host), with its backoff, gauges and counters; and the
//! per-cluster state that outlives removed hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::stats::TunnelCounts;

/// A pool's key: the target cluster (its index in the config) and the host. A host listed in two clusters
/// is two separate pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PoolKey {
    pub(crate) cluster: usize,
    pub(crate) host: SocketAddr,
}

/// The tunnels of one (cluster, host) and everything the host-level statistics show.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    /// Idle tunnels to keep.
    pub(crate) count: u32,
    /// The host left its cluster's host set; the pool stays until its in-use tunnels finish.
    pub(crate) retired: bool,
    pub(crate) backoff: Backoff,
    /// When the current backoff ends; `Some` exactly while the host is in backoff (the `backoff` gauge).
    pub(crate) backoff_until: Option<Instant>,
    /// The host's last backoff ended in success (the `recovered` gauge).
    pub(crate) recovered: bool,
    /// Unix ms of the first connect since the host last had no established tunnel.
    pub(crate) initiation_ms: Option<u64>,
    /// Tunnels by phase, and ever opened/closed: the gauges.
    pub(crate) tunnels: TunnelCounts,
    /// The host's counters.
    pub(crate) counters: Counters,
}

/// The counters of a host (or what removed hosts left behind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Failed attempts.
    pub(crate) failed: u64,
    /// Attempts that could not start.
    pub(crate) cannot_connect: u64,
    /// `handshake_failed.<reason>`.
    pub(crate) handshake_failed: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds `other` to `self`.
    pub(crate) fn absorb(&mut self, other: &Counters) {
        self.failed += other.failed;
        self.cannot_connect += other.cannot_connect;
        for (reason, n) in &other.handshake_failed {
            *self.handshake_failed.entry(reason.clone()).or_default() += n;
        }
    }
}

impl Pool {
    pub(crate) fn new(count: u32) -> Self {
        Self {
            count,
            retired: false,
            backoff: Backoff::new(),
            backoff_until: None,
            recovered: false,
            initiation_ms: None,
            tunnels: TunnelCounts::default(),
            counters: Counters::default(),
        }
    }

    /// Tunnels being dialled or handshaking.
    pub(crate) fn establishing(&self) -> u64 {
        self.tunnels.connecting + self.tunnels.handshaking
    }

    /// Tunnels that passed the handshake: idle or in use.
    pub(crate) fn established(&self) -> u64 {
        self.tunnels.idle + self.tunnels.in_use
    }

    /// How many dials would bring the pool to `count` idle plus establishing, within `max` live tunnels.
    pub(crate) fn dials_wanted(&self, max: u32) -> u64 {
        let want = u64::from(self.count).saturating_sub(self.tunnels.idle + self.establishing());
        let room = u64::from(max).saturating_sub(self.tunnels.live());
        want.min(room)
    }
}

/// One target cluster: its current host set, and the counters no current pool holds.
#[derive(Clone, Debug)]
pub(crate) struct ClusterState {
    pub(crate) name: String,
    pub(crate) count: u32,
    pub(crate) hosts: BTreeSet<SocketAddr>,
    /// Removed hosts' counters (folded in when their last tunnel finished) and the cluster's own
    /// `cannot_connect` (no hosts, resolution failure).
    pub(crate) counters: Counters,
}

impl ClusterState {
    pub(crate) fn new(name: String, count: u32) -> Self {
        Self {
            name,
            count,
            hosts: BTreeSet::new(),
            counters: Counters::default(),
        }
    }
}
