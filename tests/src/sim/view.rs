//! The simulation's own view of each machine: which connections it holds in which phase (from the commands,
//! the events and what the simulation itself reported), and its counters recomputed from the event log.
//! [`super::invariants`] compares the machines' `counts()` and `stats()` with the values derived here.
//!
//! Nothing here reads a machine's internals: the initiator view learns a tunnel's first `RPING` from the
//! bytes the network delivered (the responder's `RPING` transmits are marked in the stream), which is how
//! the `backoff` and `recovered` gauges can be recomputed without an event for "success".

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use revtun_core::command::ConnId;
use revtun_core::initiator::stats as istats;
use revtun_core::responder::stats::{HANDSHAKE_COUNTERS, HANDSHAKE_PREFIX};
use revtun_core::responder::{ClaimId, NodeSummary};
use revtun_core::stats::{StatKind, TunnelCounts};

use super::net::PipeId;

/// A statistic the view expects: its kind and value, or (for a cluster-level `connecting` gauge whose
/// dials cannot be attributed yet) a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Counter or gauge.
    pub kind: StatKind,
    /// Lowest acceptable value.
    pub lo: u64,
    /// Highest acceptable value.
    pub hi: u64,
}

impl Expected {
    fn exact(kind: StatKind, value: u64) -> Self {
        Self {
            kind,
            lo: value,
            hi: value,
        }
    }
}

/// Expected statistics: every name the machine must list (and nothing else), plus sums that must hold
/// over several names. Names borrow from the view's name cache where they can.
#[derive(Clone, Debug, Default)]
pub struct ExpectedStats<'a> {
    /// `(name, expectation)`, sorted by name ([`ExpectedStats::sort`]).
    pub values: Vec<(Cow<'a, str>, Expected)>,
    /// `(names, total)`: the machine's values of `names` must add up to `total`.
    pub sums: Vec<(Vec<&'a str>, u64)>,
}

impl<'a> ExpectedStats<'a> {
    fn push(&mut self, name: impl Into<Cow<'a, str>>, e: Expected) {
        self.values.push((name.into(), e));
    }

    /// Sorts the values by name (the order of a [`StatsSnapshot`](revtun_core::stats::StatsSnapshot)).
    pub fn sort(&mut self) {
        self.values.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Initiator

/// Phase of an initiator connection as the simulation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IPhase {
    /// `Dial` ordered, not answered yet.
    Dialling,
    /// Connected (`handle_connected` given), no `TunnelReady` yet.
    Handshaking,
    /// `TunnelReady` seen.
    Idle,
    /// `Claimed` seen: the echo service owns it.
    InUse,
}

/// One connection an initiator holds.
#[derive(Clone, Debug)]
pub struct IConn {
    /// Its target cluster, once known (a dial to a host listed in two target clusters is attributed by
    /// the first event about it).
    pub cluster: Option<String>,
    /// The host dialled.
    pub host: SocketAddr,
    /// The responder that host is.
    pub responder: usize,
    /// Its phase.
    pub phase: IPhase,
    /// Its pipe once connected.
    pub pipe: Option<PipeId>,
    /// Its first `RPING` (or its claim) arrived.
    pub pinged: bool,
    /// Its first `RPING` arrived before the view knew its cluster: the pool's success is applied when an
    /// event names the cluster.
    pub success_pending: bool,
}

/// The hosts of a target cluster: address and responder index.
pub type Hosts = Vec<(SocketAddr, usize)>;

/// One target cluster of an initiator, as the view needs it.
#[derive(Clone, Debug)]
pub struct PoolTarget {
    /// The target cluster.
    pub name: String,
    /// Idle tunnels per host.
    pub count: u32,
    /// Its hosts.
    pub hosts: Hosts,
}

/// One (target cluster, host) pool: its figures recomputed from the events.
#[derive(Clone, Debug, Default)]
pub struct PoolView {
    /// Idle tunnels to keep.
    pub count: u32,
    /// End of the current backoff (`BackingOff` seen, not yet ended by the timer or a success).
    pub backoff_until: Option<Duration>,
    /// The last backoff ended in success.
    pub recovered: bool,
    /// A failure that backs off happened since the last success.
    pub failed_since_success: bool,
    /// `failed` counter.
    pub failed: u64,
    /// `cannot_connect` counter.
    pub cannot_connect: u64,
    /// `handshake_failed.<reason>` counters.
    pub handshake_failed: BTreeMap<String, u64>,
    /// The host left its cluster; the pool lives on while in-use tunnels finish.
    pub retired: bool,
}

/// Counters a removed pool left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// `failed`.
    pub failed: u64,
    /// `cannot_connect`.
    pub cannot_connect: u64,
    /// `handshake_failed.<reason>`.
    pub handshake_failed: BTreeMap<String, u64>,
}

impl Leftover {
    fn absorb(&mut self, pool: &PoolView) {
        self.failed += pool.failed;
        self.cannot_connect += pool.cannot_connect;
        for (reason, n) in &pool.handshake_failed {
            *self.handshake_failed.entry(reason.clone()).or_default() += n;
        }
    }
}

/// The simulation's view of one initiator.
#[derive(Clone, Debug)]
pub struct InitiatorView {
    /// Its stat prefix.
    pub prefix: String,
    /// Target clusters in config order, with the hosts (addr → responder) each resolves to now.
    pub clusters: Vec<(String, Hosts)>,
    /// `count` of each target cluster, in config order.
    pub counts: Vec<u32>,
    /// Live connections.
    pub conns: BTreeMap<ConnId, IConn>,
    /// Pools by (cluster, host).
    pub pools: BTreeMap<(String, SocketAddr), PoolView>,
    /// Cluster-level `cannot_connect` (no hosts, resolution failures).
    pub cluster_cannot_connect: BTreeMap<String, u64>,
    /// Connections ever dialled.
    pub opened: u64,
    /// Connections ever ended.
    pub closed: u64,
    /// Connections ever dialled and ended, per host (forgotten with the host's last pool).
    pub host_lifetime: BTreeMap<SocketAddr, (u64, u64)>,
    /// Counters of removed pools, per cluster (the cluster-level figures keep them).
    pub cluster_leftovers: BTreeMap<String, Leftover>,
    /// Counters of removed pools whose host is still a pool of another cluster (its host-level figures
    /// keep them).
    pub host_leftovers: BTreeMap<SocketAddr, Leftover>,
    /// Statistic names, formatted once.
    names: StatNames,
}

impl InitiatorView {
    /// The view of a fresh initiator with these target clusters; `all_hosts` are every host any cluster may
    /// ever list (for the name cache).
    pub fn new(prefix: &str, targets: &[PoolTarget], all_hosts: &[SocketAddr]) -> Self {
        let mut pools = BTreeMap::new();
        for PoolTarget { name, count, hosts } in targets {
            for (addr, _) in hosts {
                pools.insert(
                    (name.clone(), *addr),
                    PoolView {
                        count: *count,
                        ..PoolView::default()
                    },
                );
            }
        }
        let clusters: Vec<(String, Hosts)> = targets
            .iter()
            .map(|t| (t.name.clone(), t.hosts.clone()))
            .collect();
        Self {
            prefix: prefix.to_owned(),
            names: StatNames::new(prefix, &clusters, all_hosts),
            counts: targets.iter().map(|t| t.count).collect(),
            clusters,
            conns: BTreeMap::new(),
            pools,
            cluster_cannot_connect: BTreeMap::new(),
            opened: 0,
            closed: 0,
            host_lifetime: BTreeMap::new(),
            cluster_leftovers: BTreeMap::new(),
            host_leftovers: BTreeMap::new(),
        }
    }

    /// The driver gives `cluster` a new host set (before the machine's `set_hosts`): pools of removed hosts
    /// retire (no backoff, not recovered), new hosts get a pool, hosts that come back before their pool
    /// was removed continue with it.
    pub fn set_hosts(&mut self, cluster: &str, hosts: &Hosts) {
        let Some(k) = self.clusters.iter().position(|(n, _)| n == cluster) else {
            return;
        };
        let count = self.counts[k];
        for ((c, h), pool) in self.pools.iter_mut() {
            if c == cluster && !hosts.iter().any(|(a, _)| a == h) {
                pool.retired = true;
                pool.recovered = false;
                pool.backoff_until = None;
            }
        }
        for (addr, _) in hosts {
            let pool = self
                .pools
                .entry((cluster.to_owned(), *addr))
                .or_insert_with(|| PoolView {
                    count,
                    ..PoolView::default()
                });
            pool.retired = false;
        }
        self.clusters[k].1 = hosts.clone();
    }

    /// Removes every retired pool with no connection left, folding its counters into its cluster (and,
    /// while its host is a pool of another cluster, into that host's leftovers), as the machine does when
    /// a removed host's last tunnel ends.
    pub fn fold_finished(&mut self) {
        let finished: Vec<(String, SocketAddr)> =
            self.pools
                .iter()
                .filter(|((c, h), p)| {
                    // Only initiators with one target cluster change hosts, so every connection is attributed.
                    p.retired
                        && !self.conns.values().any(|conn| {
                            conn.host == *h && conn.cluster.as_deref() == Some(c.as_str())
                        })
                })
                .map(|(k, _)| k.clone())
                .collect();
        for key in finished {
            let Some(pool) = self.pools.remove(&key) else {
                continue;
            };
            let (cluster, host) = key;
            self.cluster_leftovers
                .entry(cluster)
                .or_default()
                .absorb(&pool);
            if self.pools.keys().any(|(_, h)| *h == host) {
                self.host_leftovers.entry(host).or_default().absorb(&pool);
            } else {
                self.host_leftovers.remove(&host);
                self.host_lifetime.remove(&host);
            }
        }
    }

    /// Records a new connection (a dial).
    pub fn open(&mut self, conn: ConnId, c: IConn) {
        self.opened += 1;
        self.host_lifetime.entry(c.host).or_default().0 += 1;
        self.conns.insert(conn, c);
    }

    /// [`TunnelCounts`] of one host, as [`Initiator::host_counts`](revtun_core::initiator::Initiator)
    /// reports them (summed over its pools; `None` for a host no pool lists).
    pub fn host_counts(&self, host: SocketAddr) -> Option<TunnelCounts> {
        if !self.pools.keys().any(|(_, h)| *h == host) {
            return None;
        }
        let (opened, closed) = self.host_lifetime.get(&host).copied().unwrap_or_default();
        let mut t = TunnelCounts {
            opened,
            closed,
            ..TunnelCounts::default()
        };
        for c in self.conns.values().filter(|c| c.host == host) {
            match c.phase {
                IPhase::Dialling => t.connecting += 1,
                IPhase::Handshaking => t.handshaking += 1,
                IPhase::Idle => t.idle += 1,
                IPhase::InUse => t.in_use += 1,
            }
        }
        Some(t)
    }

    /// The clusters that list `host`.
    pub fn clusters_of(&self, host: SocketAddr) -> Vec<&str> {
        self.clusters
            .iter()
            .filter(|(_, hosts)| hosts.iter().any(|(a, _)| *a == host))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The pool of a connection, if its cluster is known.
    pub fn pool_of(&mut self, conn: ConnId) -> Option<&mut PoolView> {
        let c = self.conns.get(&conn)?;
        let key = (c.cluster.clone()?, c.host);
        self.pools.get_mut(&key)
    }

    /// Records that an event named `cluster` for `conn`; errors if it contradicts what is known.
    pub fn attribute(
        &mut self,
        conn: ConnId,
        cluster: &str,
        host: SocketAddr,
    ) -> Result<(), String> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(format!(
                "event about {conn}, which the initiator does not hold"
            ));
        };
        if c.host != host {
            return Err(format!(
                "{conn}: event says host {host}, it was dialled to {}",
                c.host
            ));
        }
        match &c.cluster {
            Some(known) if known != cluster => Err(format!(
                "{conn}: event says cluster {cluster}, it belongs to {known}"
            )),
            Some(_) => Ok(()),
            None => {
                if !self.pools.contains_key(&(cluster.to_owned(), host)) {
                    return Err(format!("{conn}: cluster {cluster} does not list {host}"));
                }
                c.cluster = Some(cluster.to_owned());
                if std::mem::take(&mut c.success_pending) {
                    self.pool_success(conn);
                }
                Ok(())
            }
        }
    }

    /// A success on `conn`'s pool (its first `RPING` or its claim): resets the backoff, sets `recovered`
    /// if the pool had failed since its last success.
    pub fn success(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.pinged {
            return;
        }
        c.pinged = true;
        if c.cluster.is_none() {
            // The response and the first RPING came in one read on a dial to a host listed in two target
            // clusters: `TunnelReady`, drained next, names the pool.
            c.success_pending = true;
            return;
        }
        self.pool_success(conn);
    }

    fn pool_success(&mut self, conn: ConnId) {
        if let Some(pool) = self.pool_of(conn) {
            if pool.failed_since_success {
                pool.recovered = true;
            }
            pool.failed_since_success = false;
            pool.backoff_until = None;
        }
    }

    /// A failed attempt on `cluster`/`host` that backs the pool off.
    pub fn failure(&mut self, cluster: &str, host: SocketAddr) {
        if let Some(pool) = self.pools.get_mut(&(cluster.to_owned(), host)) {
            pool.failed_since_success = true;
        }
    }

    /// The machine handled its timers at `now`: backoffs that ended by then are over. Returns whether one
    /// ended.
    pub fn timers_fired(&mut self, now: Duration) -> bool {
        let mut ended = false;
        for pool in self.pools.values_mut() {
            if pool.backoff_until.is_some_and(|until| until <= now) {
                pool.backoff_until = None;
                ended = true;
            }
        }
        ended
    }

    /// Removes an ended connection.
    pub fn remove(&mut self, conn: ConnId) -> Option<IConn> {
        let c = self.conns.remove(&conn)?;
        self.closed += 1;
        self.host_lifetime.entry(c.host).or_default().1 += 1;
        self.fold_finished();
        Some(c)
    }

    /// Tunnel counts as the machine must report them.
    pub fn counts(&self) -> TunnelCounts {
        let mut t = TunnelCounts {
            opened: self.opened,
            closed: self.closed,
            ..TunnelCounts::default()
        };
        for c in self.conns.values() {
            match c.phase {
                IPhase::Dialling => t.connecting += 1,
                IPhase::Handshaking => t.handshaking += 1,
                IPhase::Idle => t.idle += 1,
                IPhase::InUse => t.in_use += 1,
            }
        }
        t
    }

    /// Idle tunnels of a pool.
    pub fn idle(&self, cluster: &str, host: SocketAddr) -> u64 {
        self.conns
            .values()
            .filter(|c| {
                c.phase == IPhase::Idle && c.host == host && c.cluster.as_deref() == Some(cluster)
            })
            .count() as u64
    }

    /// The statistics the machine must show (DESIGN.md "Initiator statistics" and the initiator's
    /// documented decisions: host-level names sum a host's pools; `backoff`/`recovered` are 1 if any pool
    /// has them; the fixed `handshake_failed` reasons are listed at 0). Sorted by name.
    pub fn expected_stats(&self) -> ExpectedStats<'_> {
        use StatKind::{Counter, Gauge};
        let names = &self.names;
        let n_hosts = names.hosts.len();
        // Phases per host (all clusters), per cluster, and unattributed dials per host.
        let mut per_host = vec![[0u64; 4]; n_hosts];
        let mut unattributed = vec![0u64; n_hosts];
        let mut per_cluster = vec![[0u64; 4]; self.clusters.len()];
        for c in self.conns.values() {
            let Some(h) = names.host_index(c.host) else {
                continue;
            };
            per_host[h][c.phase as usize] += 1;
            match c
                .cluster
                .as_deref()
                .and_then(|name| self.clusters.iter().position(|(n, _)| n == name))
            {
                Some(k) => per_cluster[k][c.phase as usize] += 1,
                None => unattributed[h] += 1,
            }
        }
        let mut out = ExpectedStats::default();
        let mut extras = Vec::new();
        // Slots of the cached names (hosts first, then clusters); hosts without a pool have no names.
        let mut slots: Vec<Option<Expected>> = vec![None; names.order.len()];
        for (h, (host, _)) in names.hosts.iter().enumerate() {
            if !self.pools.keys().any(|(_, a)| a == host) {
                continue;
            }
            let mut failed = 0;
            let mut cannot_connect = 0;
            let mut backoff = false;
            let mut recovered = false;
            let mut reasons = [0u64; FIXED_REASONS.len()];
            let mut extra: BTreeMap<&str, u64> = BTreeMap::new();
            let leftover = self.host_leftovers.get(host);
            if let Some(l) = leftover {
                failed += l.failed;
                cannot_connect += l.cannot_connect;
                count_reasons(&l.handshake_failed, &mut reasons, &mut extra);
            }
            for ((_, _), p) in self.pools.iter().filter(|((_, a), _)| a == host) {
                failed += p.failed;
                cannot_connect += p.cannot_connect;
                backoff |= p.backoff_until.is_some();
                recovered |= p.recovered;
                count_reasons(&p.handshake_failed, &mut reasons, &mut extra);
            }
            let p = per_host[h];
            let values = [
                (Gauge, p[0] + p[1]),
                (Gauge, p[2] + p[3]),
                (Gauge, p[2]),
                (Gauge, p[3]),
                (Counter, failed),
                (Counter, cannot_connect),
                (Gauge, u64::from(backoff)),
                (Gauge, u64::from(recovered)),
                (Gauge, 0),
                (Counter, reasons[0]),
                (Counter, reasons[1]),
                (Counter, reasons[2]),
                (Counter, reasons[3]),
            ];
            for (j, (kind, value)) in values.into_iter().enumerate() {
                slots[names.host_slot(h, j)] = Some(Expected::exact(kind, value));
            }
            for (reason, n) in extra {
                extras.push((
                    Cow::Owned(format!(
                        "{}.host.{host}.{}.{reason}",
                        self.prefix,
                        istats::HANDSHAKE_FAILED
                    )),
                    Expected::exact(Counter, n),
                ));
            }
        }
        // Cluster level. Dials not yet attributed to a cluster make `connecting` a range; their total over
        // the clusters is still exact.
        let mut connecting_names = Vec::new();
        let mut connecting_total = unattributed.iter().sum::<u64>();
        for (k, (cluster, hosts)) in self.clusters.iter().enumerate() {
            let maybe: u64 = hosts
                .iter()
                .filter_map(|(a, _)| names.host_index(*a))
                .map(|h| unattributed[h])
                .sum();
            let leftover = self.cluster_leftovers.get(cluster);
            let mut failed = leftover.map_or(0, |l| l.failed);
            let mut cannot_connect = leftover.map_or(0, |l| l.cannot_connect)
                + self
                    .cluster_cannot_connect
                    .get(cluster)
                    .copied()
                    .unwrap_or(0);
            let mut backoff = 0;
            let mut recovered = 0;
            for ((_, _), p) in self.pools.iter().filter(|((c, _), _)| c == cluster) {
                failed += p.failed;
                cannot_connect += p.cannot_connect;
                backoff += u64::from(p.backoff_until.is_some());
                recovered += u64::from(p.recovered);
            }
            let p = per_cluster[k];
            let connecting = p[0] + p[1];
            connecting_total += connecting;
            connecting_names.push(names.name(names.cluster_slot(k, 0)));
            slots[names.cluster_slot(k, 0)] = Some(Expected {
                kind: Gauge,
                lo: connecting,
                hi: connecting + maybe,
            });
            let values = [
                (Gauge, p[2] + p[3]),
                (Counter, failed),
                (Counter, cannot_connect),
                (Gauge, backoff),
                (Gauge, recovered),
                (Gauge, 0),
            ];
            for (j, (kind, value)) in values.into_iter().enumerate() {
                slots[names.cluster_slot(k, j + 1)] = Some(Expected::exact(kind, value));
            }
        }
        out.sums.push((connecting_names, connecting_total));
        // The fixed names were pushed in the cache's order: put them in name order with the cached
        // permutation, and sort only when `http_<code>` reasons came along.
        out.values = names
            .order
            .iter()
            .filter_map(|&k| slots[k].map(|e| (Cow::Borrowed(names.name(k)), e)))
            .collect();
        if !extras.is_empty() {
            out.values.extend(extras);
            out.sort();
        }
        out
    }
}

/// Adds `handshake_failed.<reason>` counts: the fixed reasons into `fixed`, the others into `extra`.
fn count_reasons<'a>(
    failed_by: &'a BTreeMap<String, u64>,
    fixed: &mut [u64; FIXED_REASONS.len()],
    extra: &mut BTreeMap<&'a str, u64>,
) {
    for (reason, n) in failed_by {
        match FIXED_REASONS.iter().position(|r| r == reason) {
            Some(k) => fixed[k] += n,
            None => *extra.entry(reason.as_str()).or_default() += n,
        }
    }
}

/// The `handshake_failed` reasons an initiator always lists.
const FIXED_REASONS: [&str; 4] = ["closed", "malformed", "timeout", "tls"];

/// How many host-level names [`host_states`] gives.
const HOST_STATES: usize = 13;

/// Host-level statistic suffixes, in the order [`StatNames`] keeps them.
fn host_states() -> [String; HOST_STATES] {
    let failed = |r: &str| format!("{}.{r}", istats::HANDSHAKE_FAILED);
    [
        istats::CONNECTING.to_owned(),
        istats::CONNECTED.to_owned(),
        istats::IDLE.to_owned(),
        istats::IN_USE.to_owned(),
        istats::FAILED.to_owned(),
        istats::CANNOT_CONNECT.to_owned(),
        istats::BACKOFF.to_owned(),
        istats::RECOVERED.to_owned(),
        istats::UNKNOWN.to_owned(),
        failed(FIXED_REASONS[0]),
        failed(FIXED_REASONS[1]),
        failed(FIXED_REASONS[2]),
        failed(FIXED_REASONS[3]),
    ]
}

/// Cluster-level statistic suffixes, `connecting` first.
const CLUSTER_STATES: [&str; 7] = [
    istats::CONNECTING,
    istats::CONNECTED,
    istats::FAILED,
    istats::CANNOT_CONNECT,
    istats::BACKOFF,
    istats::RECOVERED,
    istats::UNKNOWN,
];

/// An initiator's statistic names, formatted once (its hosts never change in the simulation).
#[derive(Clone, Debug, Default)]
pub struct StatNames {
    /// Per host (sorted by address): the names of [`host_states`].
    hosts: Vec<(SocketAddr, Vec<String>)>,
    /// Per target cluster (config order): the names of [`CLUSTER_STATES`].
    clusters: Vec<Vec<String>>,
    /// The positions of all names above (hosts first, then clusters, in that order), sorted by name.
    order: Vec<usize>,
}

impl StatNames {
    fn new(prefix: &str, clusters: &[(String, Hosts)], all_hosts: &[SocketAddr]) -> Self {
        let mut hosts: Vec<SocketAddr> = clusters
            .iter()
            .flat_map(|(_, hosts)| hosts.iter().map(|(a, _)| *a))
            .chain(all_hosts.iter().copied())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut names = Self {
            hosts: hosts
                .into_iter()
                .map(|h| {
                    let names = host_states()
                        .iter()
                        .map(|state| format!("{prefix}.host.{h}.{state}"))
                        .collect();
                    (h, names)
                })
                .collect(),
            clusters: clusters
                .iter()
                .map(|(c, _)| {
                    CLUSTER_STATES
                        .iter()
                        .map(|state| format!("{prefix}.cluster.{c}.{state}"))
                        .collect()
                })
                .collect(),
            order: Vec::new(),
        };
        let flat: Vec<&String> = names
            .hosts
            .iter()
            .flat_map(|(_, n)| n.iter())
            .chain(names.clusters.iter().flatten())
            .collect();
        let mut order: Vec<usize> = (0..flat.len()).collect();
        order.sort_by(|&a, &b| flat[a].cmp(flat[b]));
        names.order = order;
        names
    }

    fn host_index(&self, host: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|(a, _)| *a == host)
    }

    /// The slot of host `h`'s `j`-th name.
    fn host_slot(&self, h: usize, j: usize) -> usize {
        h * HOST_STATES + j
    }

    /// The slot of cluster `k`'s `j`-th name.
    fn cluster_slot(&self, k: usize, j: usize) -> usize {
        self.hosts.len() * HOST_STATES + k * CLUSTER_STATES.len() + j
    }

    /// The name in `slot`.
    fn name(&self, slot: usize) -> &str {
        let host_names = self.hosts.len() * HOST_STATES;
        if slot < host_names {
            &self.hosts[slot / HOST_STATES].1[slot % HOST_STATES]
        } else {
            let k = slot - host_names;
            let n = CLUSTER_STATES.len();
            &self.clusters[k / n][k % n]
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Responder

/// The identity a tunnel registered with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    /// Node id.
    pub node: String,
    /// Cluster id.
    pub cluster: String,
    /// Tenant id.
    pub tenant: String,
}

/// One connection a responder holds.
#[derive(Clone, Debug)]
pub struct RConn {
    /// Its pipe.
    pub pipe: PipeId,
    /// The initiator at the other end.
    pub initiator: usize,
    /// `None` while handshaking; the identity once registered.
    pub registered: Option<Registration>,
    /// Sent `RDATA` (claim-marker mode): its hand-out must follow in the same drain.
    pub rdata_sent: bool,
    /// Handed out: the front door owns it.
    pub in_use: bool,
}

/// A claim the front door made and that is not answered yet.
#[derive(Clone, Debug)]
pub struct ClaimView {
    /// The id claimed (cluster or node).
    pub target: String,
    /// The tenant given.
    pub tenant: Option<String>,
    /// When it was made.
    pub issued: Duration,
    /// A claim of the final phase: it must be handed out and carry its data.
    pub must_succeed: bool,
}

/// The simulation's view of one responder (one generation: a restart starts a new view).
#[derive(Clone, Debug)]
pub struct ResponderView {
    /// Its stat prefix.
    pub prefix: String,
    /// Tenant isolation.
    pub isolation: bool,
    /// Live connections.
    pub conns: BTreeMap<ConnId, RConn>,
    /// Unanswered claims.
    pub claims: BTreeMap<ClaimId, ClaimView>,
    /// `reverse_tunnel.handshake.<name>` counters recomputed from the events.
    pub handshake: BTreeMap<&'static str, u64>,
    /// `claims.handed_out`.
    pub handed_out: u64,
    /// `claims.expired`.
    pub expired: u64,
    /// Connections ever accepted.
    pub opened: u64,
    /// Connections ever ended.
    pub closed: u64,
}

impl ResponderView {
    /// The view of a fresh responder.
    pub fn new(prefix: &str, isolation: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            isolation,
            conns: BTreeMap::new(),
            claims: BTreeMap::new(),
            handshake: HANDSHAKE_COUNTERS.iter().map(|&c| (c, 0)).collect(),
            handed_out: 0,
            expired: 0,
            opened: 0,
            closed: 0,
        }
    }

    /// Counts one handshake outcome.
    pub fn count_handshake(&mut self, counter: &str) -> Result<(), String> {
        match self
            .handshake
            .iter_mut()
            .find(|(name, _)| **name == counter)
        {
            Some((_, n)) => {
                *n += 1;
                Ok(())
            }
            None => Err(format!("unknown handshake counter {counter}")),
        }
    }

    /// Removes an ended connection.
    pub fn remove(&mut self, conn: ConnId) -> Option<RConn> {
        let c = self.conns.remove(&conn)?;
        self.closed += 1;
        Some(c)
    }

    /// Handshakes in progress.
    pub fn pending_handshakes(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.registered.is_none())
            .count()
    }

    /// The `/reverse_connections` summaries the machine must give: per node (per tenant under isolation),
    /// sorted by (scope tenant, node), with the tenant its tunnels sent (the first, alphabetically, without
    /// isolation), its clusters, and its idle and in-use tunnels.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        #[derive(Default)]
        struct Tally<'a> {
            tenants: BTreeSet<&'a str>,
            clusters: BTreeSet<&'a str>,
            idle: u64,
            in_use: u64,
        }
        let mut by_key: BTreeMap<(&str, &str), Tally<'_>> = BTreeMap::new();
        for c in self.conns.values() {
            let Some(reg) = &c.registered else {
                continue;
            };
            let scope = if self.isolation {
                reg.tenant.as_str()
            } else {
                ""
            };
            let t = by_key.entry((scope, reg.node.as_str())).or_default();
            t.tenants.insert(reg.tenant.as_str());
            t.clusters.insert(reg.cluster.as_str());
            if c.in_use {
                t.in_use += 1;
            } else {
                t.idle += 1;
            }
        }
        by_key
            .into_iter()
            .map(|((_, node), t)| NodeSummary {
                node: node.to_owned(),
                tenant: t
                    .tenants
                    .first()
                    .map(|s| (*s).to_owned())
                    .unwrap_or_default(),
                clusters: t.clusters.into_iter().map(str::to_owned).collect(),
                idle: t.idle,
                in_use: t.in_use,
            })
            .collect()
    }

    /// Tunnel counts as the machine must report them.
    pub fn counts(&self) -> TunnelCounts {
        let mut t = TunnelCounts {
            opened: self.opened,
            closed: self.closed,
            ..TunnelCounts::default()
        };
        for c in self.conns.values() {
            match (&c.registered, c.in_use) {
                (None, _) => t.handshaking += 1,
                (Some(_), false) => t.idle += 1,
                (Some(_), true) => t.in_use += 1,
            }
        }
        t
    }

    /// The statistics the machine must show (DESIGN.md "Responder statistics"; zero node and cluster
    /// gauges are not listed).
    pub fn expected_stats(&self) -> ExpectedStats<'_> {
        use StatKind::{Counter, Gauge};
        let mut out = ExpectedStats::default();
        for (name, n) in &self.handshake {
            out.push(
                format!("{HANDSHAKE_PREFIX}.{name}"),
                Expected::exact(Counter, *n),
            );
        }
        let scope = |tenant: &str| {
            if self.isolation {
                format!("{}.tenants.{tenant}", self.prefix)
            } else {
                self.prefix.clone()
            }
        };
        let mut nodes: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut clusters: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for reg in self.conns.values().filter_map(|c| c.registered.as_ref()) {
            let tenant = if self.isolation {
                reg.tenant.as_str()
            } else {
                ""
            };
            *nodes.entry((tenant, reg.node.as_str())).or_default() += 1;
            *clusters.entry((tenant, reg.cluster.as_str())).or_default() += 1;
        }
        let (n_nodes, n_clusters) = (nodes.len() as u64, clusters.len() as u64);
        for ((tenant, node), n) in nodes {
            out.push(
                format!("{}.nodes.{node}", scope(tenant)),
                Expected::exact(Gauge, n),
            );
        }
        for ((tenant, cluster), n) in clusters {
            out.push(
                format!("{}.clusters.{cluster}", scope(tenant)),
                Expected::exact(Gauge, n),
            );
        }
        let p = &self.prefix;
        out.push(format!("{p}.total_nodes"), Expected::exact(Gauge, n_nodes));
        out.push(
            format!("{p}.total_clusters"),
            Expected::exact(Gauge, n_clusters),
        );
        out.push(
            format!("{p}.claims.waiting"),
            Expected::exact(Gauge, self.claims.len() as u64),
        );
        out.push(
            format!("{p}.claims.handed_out"),
            Expected::exact(Counter, self.handed_out),
        );
        out.push(
            format!("{p}.claims.expired"),
            Expected::exact(Counter, self.expired),
        );
        out.sort();
        out
    }
}
