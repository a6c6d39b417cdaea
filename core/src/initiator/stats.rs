//! The initiator's statistics and their names (DESIGN.md, "Initiator statistics").
//!
//! Host level, `<stat_prefix>.host.<ip:port>.<state>` (IPv6 as `[addr]:port`):
//!
//! | name | kind | value |
//! |---|---|---|
//! | `connecting` | gauge | dialling + handshaking |
//! | `connected` | gauge | idle + in use |
//! | `failed` | counter | failed attempts |
//! | `recovered` | gauge | 1 while the host's last backoff ended in success |
//! | `backoff` | gauge | 1 while the host is in backoff |
//! | `cannot_connect` | counter | attempts that could not start (local errors) |
//! | `unknown` | gauge | always 0 |
//! | `idle`, `in_use` | gauge | revtun's split of `connected` |
//! | `handshake_failed.<reason>` | counter | `timeout`, `closed`, `malformed`, `tls` always; `http_<code>` once seen |
//!
//! Cluster level, `<stat_prefix>.cluster.<target_cluster>.<state>` for the first seven states: the sum over
//! the cluster's hosts (`recovered` and `backoff`: the number of such hosts), plus, for the counters, what
//! removed hosts had counted and the cluster's own `cannot_connect` (no hosts, resolution failure).
//!
//! A host listed in two clusters has one set of host-level names: counters and tunnel gauges are summed
//! over its pools, `backoff` and `recovered` are 1 if any pool has them. A removed host keeps its
//! host-level names while in-use tunnels remain (with `backoff` and `recovered` 0); once its last tunnel
//! finished its `failed` and `cannot_connect` are folded into the cluster's, and its host-level names
//! disappear, unless the host is still listed in another cluster: then its host-level counters keep what
//! the removed pool had counted. No counter that is shown ever decreases; a host that comes back after its
//! names disappeared starts again from 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::host::{ClusterState, Counters, Pool};
use crate::stats::{StatKind, StatsSnapshot};

/// Gauge: dialling + handshaking.
pub const CONNECTING: &str = "connecting";
/// Gauge: idle + in use.
pub const CONNECTED: &str = "connected";
/// Counter: failed attempts.
pub const FAILED: &str = "failed";
/// Gauge: the last backoff ended in success.
pub const RECOVERED: &str = "recovered";
/// Gauge: in backoff.
pub const BACKOFF: &str = "backoff";
/// Counter: attempts that could not start.
pub const CANNOT_CONNECT: &str = "cannot_connect";
/// Gauge: fallback, always 0.
pub const UNKNOWN: &str = "unknown";
/// Gauge (host level, revtun): idle tunnels.
pub const IDLE: &str = "idle";
/// Gauge (host level, revtun): in-use tunnels.
pub const IN_USE: &str = "in_use";
/// Counter family (host level, revtun): `handshake_failed.<reason>`.
pub const HANDSHAKE_FAILED: &str = "handshake_failed";
/// The `handshake_failed` reasons always present (at 0 until counted); `http_<code>` appear when seen.
pub const FIXED_HANDSHAKE_REASONS: [&str; 4] = ["closed", "malformed", "timeout", "tls"];

/// One host's figures, summed over its pools.
#[derive(Default)]
struct HostFigures {
    connecting: u64,
    connected: u64,
    idle: u64,
    in_use: u64,
    counters: Counters,
    backoff: bool,
    recovered: bool,
}

impl HostFigures {
    fn add(&mut self, pool: &Pool) {
        self.connecting += pool.establishing();
        self.connected += pool.established();
        self.idle += pool.tunnels.idle;
        self.in_use += pool.tunnels.in_use;
        self.counters.absorb(&pool.counters);
        self.backoff |= pool.backoff_until.is_some();
        self.recovered |= pool.recovered;
    }
}

/// Renders every statistic.
pub(crate) fn snapshot<'a>(
    prefix: &str,
    clusters: &[ClusterState],
    pools: impl Iterator<Item = (usize, SocketAddr, &'a Pool)>,
    retired_hosts: &BTreeMap<SocketAddr, Counters>,
) -> StatsSnapshot {
    use StatKind::{Counter, Gauge};
    let mut out = StatsSnapshot::new();
    let mut hosts: BTreeMap<SocketAddr, HostFigures> = BTreeMap::new();
    let mut by_cluster: Vec<HostFigures> =
        clusters.iter().map(|_| HostFigures::default()).collect();
    let mut backoff_hosts = vec![0u64; clusters.len()];
    let mut recovered_hosts = vec![0u64; clusters.len()];
    for (cluster, host, pool) in pools {
        hosts.entry(host).or_default().add(pool);
        if let Some(figures) = by_cluster.get_mut(cluster) {
            figures.add(pool);
            backoff_hosts[cluster] += u64::from(pool.backoff_until.is_some());
            recovered_hosts[cluster] += u64::from(pool.recovered);
        }
    }
    for (host, counters) in retired_hosts {
        if let Some(f) = hosts.get_mut(host) {
            f.counters.absorb(counters);
        }
    }
    for (host, f) in &hosts {
        let name = |state: &str| format!("{prefix}.host.{host}.{state}");
        out.set(name(CONNECTING), Gauge, f.connecting);
        out.set(name(CONNECTED), Gauge, f.connected);
        out.set(name(FAILED), Counter, f.counters.failed);
        out.set(name(RECOVERED), Gauge, u64::from(f.recovered));
        out.set(name(BACKOFF), Gauge, u64::from(f.backoff));
        out.set(name(CANNOT_CONNECT), Counter, f.counters.cannot_connect);
        out.set(name(UNKNOWN), Gauge, 0);
        out.set(name(IDLE), Gauge, f.idle);
        out.set(name(IN_USE), Gauge, f.in_use);
        for reason in FIXED_HANDSHAKE_REASONS {
            out.set(name(&format!("{HANDSHAKE_FAILED}.{reason}")), Counter, 0);
        }
        for (reason, &n) in &f.counters.handshake_failed {
            out.set(name(&format!("{HANDSHAKE_FAILED}.{reason}")), Counter, n);
        }
    }
    for (i, cluster) in clusters.iter().enumerate() {
        let f = &by_cluster[i];
        let name = |state: &str| format!("{prefix}.cluster.{}.{state}", cluster.name);
        out.set(name(CONNECTING), Gauge, f.connecting);
        out.set(name(CONNECTED), Gauge, f.connected);
        out.set(
            name(FAILED),
            Counter,
            f.counters.failed + cluster.counters.failed,
        );
        out.set(name(RECOVERED), Gauge, recovered_hosts[i]);
        out.set(name(BACKOFF), Gauge, backoff_hosts[i]);
        out.set(
            name(CANNOT_CONNECT),
            Counter,
            f.counters.cannot_connect + cluster.counters.cannot_connect,
        );
        out.set(name(UNKNOWN), Gauge, 0);
    }
    out
}
