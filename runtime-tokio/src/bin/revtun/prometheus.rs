//! `/stats/prometheus`: the dotted statistics as labelled Prometheus families (text exposition format
//! 0.0.4), with DESIGN.md's names:
//!
//! | family | type | from |
//! |---|---|---|
//! | `revtun_initiator_tunnels{cluster,host,state}` | gauge | `<prefix>.host.<h>.<state>` (cluster `""`) and `<prefix>.cluster.<c>.<state>` (host `""`) |
//! | `revtun_initiator_attempts_total{cluster,host,result}` | counter | the initiator counters: `failed`, `cannot_connect`, `handshake_failed_<reason>` |
//! | `revtun_responder_tunnels{tenant,cluster,node,state}` | gauge | per node from `/reverse_connections` (states `idle`, `in_use`; cluster: its clusters joined by `,`), per cluster `live` (node `""`) |
//! | `revtun_handshakes_total{outcome}` | counter | `reverse_tunnel.handshake.<outcome>` |
//! | `revtun_claims_total{result}` | counter | `<prefix>.claims.{handed_out,expired}` |
//! | `revtun_claims_waiting` | gauge | `<prefix>.claims.waiting` |
//! | `revtun_responder_nodes`, `revtun_responder_clusters` | gauge | `<prefix>.total_nodes`, `.total_clusters` |
//! | `revtun_relayed_bytes_total{direction}` | counter | `revtun.relayed_bytes.<direction>` |
//! | `revtun_front_door_rbac_total{stat_prefix,result}` | counter | a front door's `<stat_prefix>.rbac.{allowed,denied}` |
//!
//! Host-level initiator series carry `cluster=""`: a host listed in two target clusters has one set of
//! figures summed over both (as in `/stats`). Label values are escaped (`\\`, `"`, newline).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use revtun_core::responder::NodeSummary;
use revtun_core::stats::{StatKind, StatsSnapshot};

use crate::stats::RELAYED_PREFIX;

/// The families: name → (type, help).
const FAMILIES: [(&str, &str, &str); 10] = [
    (
        "revtun_initiator_tunnels",
        "gauge",
        "Initiator tunnel gauges by target cluster, host and state.",
    ),
    (
        "revtun_initiator_attempts_total",
        "counter",
        "Initiator attempts that failed or could not start, by result.",
    ),
    (
        "revtun_responder_tunnels",
        "gauge",
        "Responder tunnels by tenant, cluster, node and state.",
    ),
    (
        "revtun_responder_nodes",
        "gauge",
        "Nodes with a live tunnel.",
    ),
    (
        "revtun_responder_clusters",
        "gauge",
        "Clusters with a live tunnel.",
    ),
    (
        "revtun_handshakes_total",
        "counter",
        "Handshakes answered by the responder, by outcome.",
    ),
    (
        "revtun_claims_total",
        "counter",
        "Claims answered by the responder, by result.",
    ),
    ("revtun_claims_waiting", "gauge", "Claims not answered yet."),
    (
        "revtun_relayed_bytes_total",
        "counter",
        "Bytes relayed by the program, by direction.",
    ),
    (
        "revtun_front_door_rbac_total",
        "counter",
        "Front-door clients checked by the rbac filter, by result.",
    ),
];

/// Renders the exposition text.
pub fn render(
    stats: &StatsSnapshot,
    nodes: &[NodeSummary],
    initiator_prefixes: &[String],
    responder_prefix: Option<&str>,
) -> String {
    let mut samples: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut push = |family: &'static str, labels: &[(&str, &str)], value: u64| {
        samples
            .entry(family)
            .or_default()
            .push(sample(family, labels, value));
    };
    for (name, kind, value) in stats.iter_with_kind() {
        if let Some(outcome) = name.strip_prefix("reverse_tunnel.handshake.") {
            push("revtun_handshakes_total", &[("outcome", outcome)], value);
        } else if let Some(direction) = name
            .strip_prefix(RELAYED_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
        {
            push(
                "revtun_relayed_bytes_total",
                &[("direction", direction)],
                value,
            );
        } else if let Some(rest) = initiator_prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p.as_str())?.strip_prefix('.'))
        {
            initiator(rest, kind, value, &mut push);
        } else if let Some(rest) =
            responder_prefix.and_then(|p| name.strip_prefix(p)?.strip_prefix('.'))
        {
            responder(rest, value, &mut push);
        } else if let Some((prefix, result)) = name.rsplit_once(".rbac.") {
            push(
                "revtun_front_door_rbac_total",
                &[("stat_prefix", prefix), ("result", result)],
                value,
            );
        }
    }
    for node in nodes {
        let clusters = node.clusters.join(",");
        for (state, value) in [("idle", node.idle), ("in_use", node.in_use)] {
            push(
                "revtun_responder_tunnels",
                &[
                    ("tenant", &node.tenant),
                    ("cluster", &clusters),
                    ("node", &node.node),
                    ("state", state),
                ],
                value,
            );
        }
    }
    let mut out = String::new();
    for (family, kind, help) in FAMILIES {
        let Some(lines) = samples.get(family) else {
            continue;
        };
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for line in lines {
            out.push_str(line);
        }
    }
    out
}

/// `<prefix>.` stripped: `host.<h>.<state>` or `cluster.<c>.<state>`.
fn initiator(
    rest: &str,
    kind: StatKind,
    value: u64,
    push: &mut impl FnMut(&'static str, &[(&str, &str)], u64),
) {
    let (host, cluster, tail) = if let Some(tail) = rest.strip_prefix("host.") {
        match split_state(tail) {
            Some((host, state)) => (host, "", state),
            None => return,
        }
    } else if let Some(tail) = rest.strip_prefix("cluster.") {
        match split_state(tail) {
            Some((cluster, state)) => ("", cluster, state),
            None => return,
        }
    } else {
        return;
    };
    match kind {
        StatKind::Gauge => push(
            "revtun_initiator_tunnels",
            &[("cluster", cluster), ("host", host), ("state", &tail)],
            value,
        ),
        StatKind::Counter => push(
            "revtun_initiator_attempts_total",
            &[("cluster", cluster), ("host", host), ("result", &tail)],
            value,
        ),
    }
}

/// `<id>.<state>` → (id, state); `<id>.handshake_failed.<reason>` → (id, `handshake_failed_<reason>`).
fn split_state(tail: &str) -> Option<(&str, String)> {
    if let Some(at) = tail.rfind(".handshake_failed.") {
        let reason = &tail[at + ".handshake_failed.".len()..];
        return Some((&tail[..at], format!("handshake_failed_{reason}")));
    }
    let (id, state) = tail.rsplit_once('.')?;
    Some((id, state.to_owned()))
}

/// `<prefix>.` stripped, responder names.
fn responder(rest: &str, value: u64, push: &mut impl FnMut(&'static str, &[(&str, &str)], u64)) {
    match rest {
        "total_nodes" => push("revtun_responder_nodes", &[], value),
        "total_clusters" => push("revtun_responder_clusters", &[], value),
        "claims.waiting" => push("revtun_claims_waiting", &[], value),
        "claims.handed_out" => push("revtun_claims_total", &[("result", "handed_out")], value),
        "claims.expired" => push("revtun_claims_total", &[("result", "expired")], value),
        _ => {
            let (tenant, scoped) = match rest.strip_prefix("tenants.") {
                Some(t) => match t.find(".clusters.") {
                    Some(at) => (&t[..at], &t[at + 1..]),
                    None => return,
                },
                None => ("", rest),
            };
            if let Some(cluster) = scoped.strip_prefix("clusters.") {
                push(
                    "revtun_responder_tunnels",
                    &[
                        ("tenant", tenant),
                        ("cluster", cluster),
                        ("node", ""),
                        ("state", "live"),
                    ],
                    value,
                );
            }
        }
    }
}

/// One sample line.
fn sample(family: &str, labels: &[(&str, &str)], value: u64) -> String {
    let mut line = String::from(family);
    if !labels.is_empty() {
        line.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{name}=\"{}\"", escape(value));
        }
        line.push('}');
    }
    let _ = writeln!(line, " {value}");
    line
}

/// A label value escaped as the exposition format requires.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_labels() {
        let mut s = StatsSnapshot::new();
        s.set("rc.host.127.0.0.1:80.connected", StatKind::Gauge, 3);
        s.set(
            "rc.host.127.0.0.1:80.handshake_failed.http_429",
            StatKind::Counter,
            2,
        );
        s.set("rc.cluster.up.stream.failed", StatKind::Counter, 1);
        s.set("reverse_tunnel.handshake.accepted", StatKind::Counter, 4);
        s.set("rcs.clusters.edge", StatKind::Gauge, 5);
        s.set("rcs.claims.expired", StatKind::Counter, 6);
        s.set(
            "revtun.relayed_bytes.client_to_tunnel",
            StatKind::Counter,
            7,
        );
        let nodes = [NodeSummary {
            node: "n\"1".into(),
            tenant: String::new(),
            clusters: vec!["edge".into()],
            idle: 2,
            in_use: 1,
        }];
        let text = render(&s, &nodes, &["rc".into()], Some("rcs"));
        for line in [
            "# TYPE revtun_initiator_tunnels gauge",
            "revtun_initiator_tunnels{cluster=\"\",host=\"127.0.0.1:80\",state=\"connected\"} 3",
            "revtun_initiator_attempts_total{cluster=\"\",host=\"127.0.0.1:80\",result=\"handshake_failed_http_429\"} 2",
            "revtun_initiator_attempts_total{cluster=\"up.stream\",host=\"\",result=\"failed\"} 1",
            "revtun_handshakes_total{outcome=\"accepted\"} 4",
            "revtun_responder_tunnels{tenant=\"\",cluster=\"edge\",node=\"\",state=\"live\"} 5",
            "revtun_responder_tunnels{tenant=\"\",cluster=\"edge\",node=\"n\\\"1\",state=\"in_use\"} 1",
            "revtun_claims_total{result=\"expired\"} 6",
            "revtun_relayed_bytes_total{direction=\"client_to_tunnel\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
