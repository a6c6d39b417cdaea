//! The responder's counters and the rendering of its statistics (DESIGN.md, "Responder statistics").
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `reverse_tunnel.handshake.<c>` | counter | per check-table row: `accepted`, `parse_error`, `body_rejected`, `auth_failed`, `rejected`, `validation_failed`, `registration_failed`, plus `timeout`, `tls_failed` (tunnel TLS handshake failed) and revtun's `pending_evicted` (dropped as the oldest pending handshake at a pending cap) and `peer_closed` (the peer closed before its request was complete); always listed
//! | `<prefix>.nodes.<node>` | gauge | live tunnels (idle + in use) of the node; without isolation |
//! | `<prefix>.clusters.<cluster>` | gauge | live tunnels registered with the cluster; without isolation |
//! | `<prefix>.tenants.<t>.nodes.<node>` | gauge | the same per tenant, under isolation (instead of the two above) |
//! | `<prefix>.tenants.<t>.clusters.<cluster>` | gauge | the same per tenant, under isolation |
//! | `<prefix>.total_nodes` | gauge | nodes (per tenant under isolation) with a live tunnel; always listed |
//! | `<prefix>.total_clusters` | gauge | clusters (per tenant under isolation) with a live tunnel; always listed |
//! | `<prefix>.claims.waiting` | gauge | claims waiting for a tunnel |
//! | `<prefix>.claims.handed_out` | counter | claims answered with a tunnel |
//! | `<prefix>.claims.expired` | counter | claims that expired (including those failed at once, and at shutdown) |
//!
//! A node or cluster gauge that drops to 0 is removed from the listing, as Envoy removes it: a node
//! that is gone leaves no trace, so churn of node ids cannot grow the listing without bound. Counters and
//! the totals stay listed at 0. Ids are written as they are.

use super::pool::Pool;
use crate::stats::{StatKind, StatsSnapshot};

/// Prefix of the handshake counters (fixed, not the configured `stat_prefix`).
pub const HANDSHAKE_PREFIX: &str = "reverse_tunnel.handshake";

/// The handshake counter suffixes, sorted.
pub const HANDSHAKE_COUNTERS: [&str; 11] = [
    "accepted",
    "auth_failed",
    "body_rejected",
    "parse_error",
    "peer_closed",
    "pending_evicted",
    "registration_failed",
    "rejected",
    "timeout",
    "tls_failed",
    "validation_failed",
];

/// The counters of one responder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Counters {
    handshake: [u64; HANDSHAKE_COUNTERS.len()],
    pub handed_out: u64,
    pub expired: u64,
}

impl Counters {
    /// Adds one to `reverse_tunnel.handshake.<name>`; an unknown name is a bug and is ignored.
    pub fn handshake(&mut self, name: &str) {
        match HANDSHAKE_COUNTERS.iter().position(|&c| c == name) {
            Some(i) => self.handshake[i] += 1,
            None => debug_assert!(false, "unknown handshake counter {name}"),
        }
    }
}

/// Everything [`render`] reads.
pub(super) struct StatsInput<'a> {
    pub prefix: &'a str,
    pub isolation: bool,
    pub pool: &'a Pool,
    pub counters: &'a Counters,
    pub unanswered_claims: u64,
}

/// The snapshot of the table in the module documentation.
pub(super) fn render(input: &StatsInput<'_>) -> StatsSnapshot {
    let StatsInput {
        prefix,
        isolation,
        pool,
        counters,
        unanswered_claims,
    } = *input;
    let mut s = StatsSnapshot::new();
    for (name, value) in HANDSHAKE_COUNTERS.iter().zip(counters.handshake) {
        s.set(
            format!("{HANDSHAKE_PREFIX}.{name}"),
            StatKind::Counter,
            value,
        );
    }
    let scope = |tenant: &str| {
        if isolation {
            format!("{prefix}.tenants.{tenant}")
        } else {
            prefix.to_owned()
        }
    };
    let mut nodes = 0;
    for (key, live) in pool.node_gauges() {
        nodes += 1;
        s.add(
            format!("{}.nodes.{}", scope(&key.tenant), key.node),
            StatKind::Gauge,
            live,
        );
    }
    let mut clusters = 0;
    for (key, live) in pool.cluster_gauges() {
        clusters += 1;
        s.add(
            format!("{}.clusters.{}", scope(&key.tenant), key.cluster),
            StatKind::Gauge,
            live,
        );
    }
    s.set(format!("{prefix}.total_nodes"), StatKind::Gauge, nodes);
    s.set(
        format!("{prefix}.total_clusters"),
        StatKind::Gauge,
        clusters,
    );
    s.set(
        format!("{prefix}.claims.waiting"),
        StatKind::Gauge,
        unanswered_claims,
    );
    s.set(
        format!("{prefix}.claims.handed_out"),
        StatKind::Counter,
        counters.handed_out,
    );
    s.set(
        format!("{prefix}.claims.expired"),
        StatKind::Counter,
        counters.expired,
    );
    s
}
