//! A cluster: STATIC, STRICT_DNS, LOGICAL_DNS, or `cluster_type: envoy.clusters.reverse_connection`.

use std::time::Duration;

use super::super::names::{
    REVERSE_CONNECTION_CLUSTER, REVERSE_CONNECTION_CLUSTER_TYPE, UPSTREAM_EXTENSION, message_name,
};
use super::super::plan::{
    ClusterKind, ClusterPlan, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DNS_REFRESH_RATE, DnsLookupFamily,
    Endpoint,
};
use super::super::raw::{KindTag, RawCluster};
use super::super::yaml::{Cx, Node, Path};
use super::{constant_format, required_string, socket, tls, typed_config};

/// Envoy's `LbPolicy` names.
const LB_POLICIES: &[(&str, &str)] = &[
    ("ROUND_ROBIN", "ROUND_ROBIN"),
    ("LEAST_REQUEST", "LEAST_REQUEST"),
    ("RING_HASH", "RING_HASH"),
    ("RANDOM", "RANDOM"),
    ("MAGLEV", "MAGLEV"),
    ("CLUSTER_PROVIDED", "CLUSTER_PROVIDED"),
    (
        "LOAD_BALANCING_POLICY_CONFIG",
        "LOAD_BALANCING_POLICY_CONFIG",
    ),
];

const KINDS: &[(&str, KindTag)] = &[
    ("STATIC", KindTag::Static),
    ("STRICT_DNS", KindTag::StrictDns),
    ("LOGICAL_DNS", KindTag::LogicalDns),
];

const FAMILIES: &[(&str, DnsLookupFamily)] = &[
    ("AUTO", DnsLookupFamily::Auto),
    ("V4_ONLY", DnsLookupFamily::V4Only),
    ("V6_ONLY", DnsLookupFamily::V6Only),
    ("ALL", DnsLookupFamily::All),
];

/// The smallest `dns_refresh_rate` Envoy accepts is just above 1 ms.
const MIN_DNS_REFRESH_RATE: Duration = Duration::from_millis(1);

/// What a reverse-connection cluster needs to know about the upstream extension.
pub(super) struct Upstream {
    /// It is configured (possibly with errors of its own).
    pub(super) configured: bool,
    /// The path of its `enable_tenant_isolation`, if that is on.
    pub(super) isolation: Option<Path>,
}

/// Reads one cluster.
pub(super) fn read_cluster(
    node: &Node<'_>,
    upstream: &Upstream,
    cx: &mut Cx,
) -> Option<RawCluster> {
    let mut map = node.map(cx)?;
    let name = required_string(&mut map, cx, "name");
    let type_node = map.take("type");
    let cluster_type = map.take("cluster_type");
    let connect_timeout = map.take("connect_timeout");
    let lb_policy = map.take("lb_policy");
    let family = map.take("dns_lookup_family");
    let refresh = map.take("dns_refresh_rate");
    let load_assignment = map.take("load_assignment");
    let has_load_assignment = map.has("load_assignment");
    let transport = map.take("transport_socket");
    let lb_path = map.field("lb_policy");
    let load_assignment_path = map.field("load_assignment");
    let mut ok = map.finish(cx);

    let kind = match (&type_node, &cluster_type) {
        (Some(t), Some(ct)) => {
            t.choice(cx, KINDS);
            cx.error(
                &ct.path,
                "type and cluster_type are mutually exclusive (Envoy's cluster_discovery_type oneof)",
            );
            ok = false;
            Some(KindTag::ReverseConnection)
        }
        (Some(t), None) => t.choice(cx, KINDS),
        (None, Some(_)) => Some(KindTag::ReverseConnection),
        (None, None) => Some(KindTag::Static),
    };
    ok &= kind.is_some();

    let mut connect = DEFAULT_CONNECT_TIMEOUT;
    if let Some(n) = connect_timeout {
        match n.duration(cx) {
            Some(d) if !d.is_zero() => connect = d,
            Some(_) => {
                cx.error(&n.path, "must be greater than 0s");
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut dns_refresh_rate = DEFAULT_DNS_REFRESH_RATE;
    if let Some(n) = refresh {
        match n.duration(cx) {
            Some(d) if d > MIN_DNS_REFRESH_RATE => dns_refresh_rate = d,
            Some(_) => {
                cx.error(&n.path, "must be greater than 1ms");
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut dns_lookup_family = DnsLookupFamily::default();
    if let Some(n) = family {
        match n.choice(cx, FAMILIES) {
            Some(f) => dns_lookup_family = f,
            None => ok = false,
        }
    }
    let policy = match &lb_policy {
        Some(n) => n.choice(cx, LB_POLICIES),
        None => Some("ROUND_ROBIN"),
    };
    ok &= policy.is_some();

    let cluster_kind = match kind {
        Some(KindTag::ReverseConnection) => {
            // Envoy's checks, in Envoy's order, with Envoy's texts.
            if let Some(policy) = policy {
                if policy != "CLUSTER_PROVIDED" {
                    cx.error(
                        &lb_path,
                        format!(
                            "cluster: LB policy {policy} is not valid for Cluster type {REVERSE_CONNECTION_CLUSTER}. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'REVERSE_CONNECTION'"
                        ),
                    );
                    ok = false;
                }
            }
            if has_load_assignment {
                cx.error(
                    &load_assignment_path,
                    "Reverse Conn clusters must have no load assignment configured",
                );
                ok = false;
            }
            let ct_path = node.path.key("cluster_type");
            if !upstream.configured {
                cx.error(
                    &ct_path,
                    format!(
                        "Reverse connection cluster requires the upstream reverse tunnel bootstrap extension '{UPSTREAM_EXTENSION}' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration."
                    ),
                );
                ok = false;
            }
            cluster_type
                .as_ref()
                .and_then(|ct| read_cluster_type(ct, upstream, cx))
        }
        Some(kind) => {
            if let Some(policy) = policy {
                if policy != "ROUND_ROBIN" {
                    cx.error(
                        &lb_path,
                        format!(
                            "LB policy {policy} is not supported for a {} cluster: revtun uses ROUND_ROBIN (CLUSTER_PROVIDED is for {REVERSE_CONNECTION_CLUSTER} clusters)",
                            kind.name()
                        ),
                    );
                    ok = false;
                }
            }
            Some(match kind {
                KindTag::Static => ClusterKind::Static,
                KindTag::StrictDns => ClusterKind::StrictDns,
                _ => ClusterKind::LogicalDns,
            })
        }
        None => None,
    };

    let mut endpoints = Vec::new();
    if let (Some(la), Some(kind)) = (&load_assignment, kind) {
        if kind != KindTag::ReverseConnection {
            match read_load_assignment(la, kind, cx) {
                Some(eps) => endpoints = eps,
                None => ok = false,
            }
        }
    } else if kind == Some(KindTag::LogicalDns) && load_assignment.is_none() {
        cx.error(
            &load_assignment_path,
            "LOGICAL_DNS clusters must have a single host",
        );
        ok = false;
    }

    let tls = match transport {
        Some(t) => {
            let plan = tls::read_upstream_transport_socket(&t, cx);
            ok &= plan.is_some();
            plan
        }
        None => None,
    };

    let plan = match cluster_kind {
        Some(kind) if ok => Some(ClusterPlan {
            kind,
            endpoints,
            dns_lookup_family,
            dns_refresh_rate,
            connect_timeout: connect,
            tls,
        }),
        _ => None,
    };
    Some(RawCluster {
        path: node.path.clone(),
        name,
        kind,
        plan,
    })
}

/// `cluster_type: {name: envoy.clusters.reverse_connection, typed_config: ReverseConnectionClusterConfig}`
/// with a constant `host_id_format`, an optional constant `tenant_id_format` (required under tenant
/// isolation) and `cleanup_interval` (accepted; revtun creates no per-host state to clean up).
fn read_cluster_type(node: &Node<'_>, upstream: &Upstream, cx: &mut Cx) -> Option<ClusterKind> {
    let mut map = node.map(cx)?;
    let name = map.require(cx, "name").and_then(|n| {
        let name = n.str(cx)?;
        if name != REVERSE_CONNECTION_CLUSTER {
            cx.error(
                &n.path,
                format!(
                    "unsupported cluster_type {name:?}; supported: {REVERSE_CONNECTION_CLUSTER}"
                ),
            );
            return None;
        }
        Some(name)
    });
    let typed = map.require(cx, "typed_config");
    let mut ok = map.finish(cx);
    let mut typed = typed_config(&typed?, cx)?;
    if typed.message != message_name(REVERSE_CONNECTION_CLUSTER_TYPE) {
        cx.error(
            &typed.type_path,
            format!(
                "unsupported cluster config type {:?}; expected {REVERSE_CONNECTION_CLUSTER_TYPE}",
                typed.message
            ),
        );
        return None;
    }
    let map = &mut typed.map;
    let host_id = map.require(cx, "host_id_format").and_then(|n| {
        let id = constant_format(&n, cx)?;
        if id.is_empty() {
            cx.error(&n.path, "must not be empty");
            return None;
        }
        Some(id)
    });
    let tenant_path = map.field("tenant_id_format");
    let tenant_written = map.has("tenant_id_format");
    let tenant = match map.take("tenant_id_format") {
        Some(n) => {
            let tenant = constant_format(&n, cx);
            ok &= tenant.is_some();
            tenant
        }
        None => None,
    };
    if let Some(n) = map.take("cleanup_interval") {
        match n.duration(cx) {
            Some(d) if !d.is_zero() => {}
            Some(_) => {
                cx.error(&n.path, "must be greater than 0s");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok &= map.finish(cx);
    if let Some(isolation_path) = &upstream.isolation {
        if !tenant_written {
            cx.error(
                &tenant_path,
                format!(
                    "missing required field: tenant isolation is on ({isolation_path}), so a reverse-connection cluster must name the tenant of its claims"
                ),
            );
            ok = false;
        }
    }
    let _ = name?;
    Some(ClusterKind::ReverseConnection {
        host_id: host_id?,
        tenant,
    })
    .filter(|_| ok)
}

/// `load_assignment`: `cluster_name` (any) and `endpoints[].lb_endpoints[].endpoint.address`. LOGICAL_DNS
/// needs exactly one of each (Envoy's rule and text).
fn read_load_assignment(node: &Node<'_>, kind: KindTag, cx: &mut Cx) -> Option<Vec<Endpoint>> {
    let mut map = node.map(cx)?;
    if let Some(name) = map.take("cluster_name") {
        name.str(cx);
    }
    let localities = map.take("endpoints");
    let mut ok = map.finish(cx);
    let mut endpoints = Vec::new();
    let mut shape = Vec::new();
    for locality in localities.and_then(|l| l.seq(cx)).unwrap_or_default() {
        let Some(mut locality_map) = locality.map(cx) else {
            ok = false;
            continue;
        };
        let lb_endpoints = locality_map.take("lb_endpoints");
        ok &= locality_map.finish(cx);
        let items = lb_endpoints.and_then(|l| l.seq(cx)).unwrap_or_default();
        shape.push(items.len());
        for item in items {
            match read_lb_endpoint(&item, kind, cx) {
                Some(endpoint) => endpoints.push(endpoint),
                None => ok = false,
            }
        }
    }
    if kind == KindTag::LogicalDns && shape != [1] {
        cx.error(
            &node.path,
            "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
        );
        ok = false;
    }
    ok.then_some(endpoints)
}

/// `lb_endpoints[i]`: `{endpoint: {address: {socket_address: …}}}`.
fn read_lb_endpoint(node: &Node<'_>, kind: KindTag, cx: &mut Cx) -> Option<Endpoint> {
    let mut map = node.map(cx)?;
    let endpoint = map.require(cx, "endpoint");
    let ok = map.finish(cx);
    let mut endpoint = endpoint?.map(cx)?;
    let address = endpoint.require(cx, "address");
    let ok = endpoint.finish(cx) && ok;
    let out = socket::endpoint(&address?, cx, kind == KindTag::Static);
    out.filter(|_| ok)
}
