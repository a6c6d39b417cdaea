//! The checks across sections, and building the [`Bootstrap`] plan from what was read.
//!
//! - names: listener names and cluster names are unique; no two listeners (or a listener and the admin
//!   endpoint) bind the same address (port 0 excepted);
//! - `rc://` listeners: need the downstream extension; all their addresses are `rc://`; each target
//!   cluster and the `tcp_proxy` cluster are defined and are not reverse-connection clusters; their
//!   [`InitiatorConfig`] validates;
//! - handshake listeners (`reverse_tunnel` filter): need the upstream extension; all their filters have
//!   the same settings (one pool per process); the [`ResponderConfig`] validates; certificate binding
//!   needs client certificates;
//! - other listeners are front doors: their `tcp_proxy` cluster is defined and is a reverse-connection
//!   cluster, and some listener accepts handshakes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::address::RcAddress;
use crate::initiator::InitiatorConfig;

use super::error_paths::initiator_error_path;
use super::names::{DOWNSTREAM_EXTENSION, RBAC_FILTER, REVERSE_TUNNEL_FILTER, UPSTREAM_EXTENSION};
use super::plan::{
    Bootstrap, ClusterKind, ClusterPlan, FrontDoorPlan, HandshakeListenerPlan, InitiatorPlan,
    RcListenerPlan, ResponderPlan, TcpProxyPlan,
};
use super::raw::{
    DownstreamExt, KindTag, ListenAddress, RawBootstrap, RawCluster, RawListener, RawReverseTunnel,
    Terminal, UpstreamExt,
};
use super::read::{report_initiator_error, report_responder_error};
use super::yaml::{Cx, Path};

/// What the checks know about one cluster.
struct ClusterInfo<'a> {
    raw: &'a RawCluster,
}

impl ClusterInfo<'_> {
    fn is_reverse(&self) -> bool {
        self.raw.kind == Some(KindTag::ReverseConnection)
    }

    fn plan(&self) -> Option<&ClusterPlan> {
        self.raw.plan.as_ref()
    }
}

/// Runs the checks across sections and builds the plan (meaningful only if `cx` has no errors after).
pub(crate) fn build(raw: &RawBootstrap, cx: &mut Cx) -> Bootstrap {
    let clusters = index_clusters(&raw.clusters, cx);
    check_listener_names(&raw.listeners, cx);
    check_binds(raw, cx);

    let mut out = Bootstrap {
        admin: raw.admin.as_ref().map(|(_, addr)| *addr),
        admin_source_allow: raw.admin_source_allow.clone(),
        ..Bootstrap::default()
    };
    let mut rc_listeners = Vec::new();
    let mut handshake_listeners: Vec<(&RawListener, &RawReverseTunnel, HandshakeListenerPlan)> =
        Vec::new();
    let mut front_door_clusters: Vec<&RawCluster> = Vec::new();
    for listener in &raw.listeners {
        let Some(main) = listener.addresses.first() else {
            continue;
        };
        check_address_kinds(listener, main.is_rc, cx);
        let Some(chain) = &listener.chain else {
            continue;
        };
        let Some(terminal) = &chain.terminal else {
            continue;
        };
        let front_door = !main.is_rc && matches!(terminal, Terminal::TcpProxy(..));
        if let (Some((path, _)), false) = (&chain.rbac, front_door) {
            cx.error(
                path,
                format!(
                    "{RBAC_FILTER} is supported on front-door listeners only (a socket listener whose tcp_proxy names a reverse-connection cluster)"
                ),
            );
        }
        if main.is_rc {
            if !raw.has_downstream {
                cx.error(
                    &main.path.key("address"),
                    format!(
                        "an rc:// listener requires the downstream reverse tunnel bootstrap extension '{DOWNSTREAM_EXTENSION}' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration."
                    ),
                );
            }
            let Terminal::TcpProxy(proxy_path, proxy) = terminal else {
                if let Terminal::ReverseTunnel(filter) = terminal {
                    cx.error(
                        &filter.path,
                        format!(
                            "{REVERSE_TUNNEL_FILTER} accepts handshakes on a socket listener; an rc:// listener's chain ends with envoy.filters.network.tcp_proxy to the local service"
                        ),
                    );
                }
                continue;
            };
            if let Some(plan) = rc_listener(
                listener,
                proxy_path,
                proxy,
                raw.downstream.as_ref(),
                &clusters,
                cx,
            ) {
                rc_listeners.push(plan);
            }
            continue;
        }
        let binds: Vec<SocketAddr> = listener
            .addresses
            .iter()
            .filter_map(|a| match &a.value {
                Some(ListenAddress::Socket(addr)) => Some(*addr),
                _ => None,
            })
            .collect();
        match terminal {
            Terminal::ReverseTunnel(filter) => {
                if !raw.has_upstream {
                    cx.error(
                        &filter.path,
                        format!(
                            "{REVERSE_TUNNEL_FILTER} requires the upstream reverse tunnel bootstrap extension '{UPSTREAM_EXTENSION}' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration."
                        ),
                    );
                }
                let tls = chain.tls.as_ref().map(|(_, plan)| plan.clone());
                // Binding needs verified client certificates: a CA to verify them against. With
                // `require_client_certificate: true` a client without one fails its TLS handshake;
                // without it, such a client reaches the policy and gets 401 (row 8).
                let verifies_clients = tls.as_ref().is_some_and(|t| t.trusted_ca.is_some());
                if let (Some(key), false) = (filter.settings.certificate_key, verifies_clients) {
                    cx.error(
                        &filter.typed_path.key(key),
                        "needs verified client certificates: add a transport_socket whose DownstreamTlsContext has common_tls_context.validation_context.trusted_ca to this listener's filter chain",
                    );
                }
                handshake_listeners.push((
                    listener,
                    filter,
                    HandshakeListenerPlan {
                        name: listener.name.clone().unwrap_or_default(),
                        binds,
                        tunnel_tls: tls,
                        connection_limit: chain.connection_limit.clone(),
                    },
                ));
            }
            Terminal::TcpProxy(proxy_path, proxy) => {
                let cluster_path = proxy_path.key("cluster");
                let Some(info) = lookup(&clusters, &proxy.cluster, &cluster_path, cx) else {
                    continue;
                };
                let Some(kind) = info.raw.kind else {
                    continue;
                };
                if kind != KindTag::ReverseConnection {
                    cx.error(
                        &cluster_path,
                        format!(
                            "cluster '{}' is a {} cluster, but a socket listener's tcp_proxy must name an {} cluster: revtun relays only through reverse tunnels",
                            proxy.cluster,
                            kind.name(),
                            super::names::REVERSE_CONNECTION_CLUSTER
                        ),
                    );
                    continue;
                }
                front_door_clusters.push(info.raw);
                let Some(plan) = info.plan() else {
                    continue;
                };
                let ClusterKind::ReverseConnection { host_id, tenant } = &plan.kind else {
                    continue;
                };
                out.front_doors.push(FrontDoorPlan {
                    name: listener.name.clone().unwrap_or_default(),
                    binds,
                    cluster: proxy.cluster.clone(),
                    claim_id: host_id.clone(),
                    tenant: tenant.clone(),
                    tcp_proxy: proxy.clone(),
                    connection_limit: chain.connection_limit.clone(),
                    listener_tls: chain.tls.as_ref().map(|(_, plan)| plan.clone()),
                    data_tls: plan.tls.clone(),
                    rbac: chain.rbac.as_ref().map(|(_, plan)| plan.clone()),
                });
            }
        }
    }
    let accepts_tunnels = raw
        .listeners
        .iter()
        .any(|l| l.chain.as_ref().is_some_and(|c| c.has_reverse_tunnel));
    if !accepts_tunnels {
        for cluster in front_door_clusters {
            cx.error(
                &cluster.path.key("cluster_type"),
                format!(
                    "a reverse-connection cluster needs a listener with the {REVERSE_TUNNEL_FILTER} filter to receive tunnels"
                ),
            );
        }
    }
    if !rc_listeners.is_empty() {
        out.initiator = Some(InitiatorPlan {
            listeners: rc_listeners,
            bearer_token_file: raw
                .downstream
                .as_ref()
                .and_then(|d| d.bearer_token_file.clone()),
        });
    }
    if let (Some(upstream), false) = (&raw.upstream, handshake_listeners.is_empty()) {
        out.responder = responder(upstream, handshake_listeners, cx);
    }
    out.clusters = raw
        .clusters
        .iter()
        .filter_map(|c| Some((c.name.clone()?, c.plan.clone()?)))
        .collect();
    check_complete(raw, &out, cx);
    out
}

/// A safety net: a file without errors must be planned whole. Every part that is left out of the plan
/// is left out because of an error recorded for it; if a bug ever dropped a part silently, this turns it
/// into an error instead of a plan that quietly does less than the file says.
fn check_complete(raw: &RawBootstrap, out: &Bootstrap, cx: &mut Cx) {
    if !cx.is_clean() {
        return;
    }
    let internal = "was left out of the plan without an error (a revtun bug: please report it)";
    let planned_listeners = out.initiator.as_ref().map_or(0, |i| i.listeners.len())
        + out.responder.as_ref().map_or(0, |r| r.listeners.len())
        + out.front_doors.len();
    if planned_listeners != raw.listeners.len() {
        cx.error(
            &Path::root().key("static_resources").key("listeners"),
            internal,
        );
    }
    if out.clusters.len() != raw.clusters.len() {
        cx.error(
            &Path::root().key("static_resources").key("clusters"),
            internal,
        );
    }
    if (raw.has_downstream && raw.downstream.is_none())
        || (raw.has_upstream && raw.upstream.is_none())
    {
        cx.error(&Path::root().key("bootstrap_extensions"), internal);
    }
}

/// Clusters by name; reports duplicates (Envoy's text). The first of a name wins.
fn index_clusters<'a>(raw: &'a [RawCluster], cx: &mut Cx) -> BTreeMap<&'a str, ClusterInfo<'a>> {
    let mut clusters = BTreeMap::new();
    for cluster in raw {
        let Some(name) = &cluster.name else {
            continue;
        };
        if clusters.contains_key(name.as_str()) {
            cx.error(
                &cluster.path.key("name"),
                format!("cluster manager: duplicate cluster '{name}'"),
            );
            continue;
        }
        clusters.insert(name.as_str(), ClusterInfo { raw: cluster });
    }
    clusters
}

/// Listener names are unique.
fn check_listener_names(listeners: &[RawListener], cx: &mut Cx) {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for listener in listeners {
        let Some(name) = &listener.name else {
            continue;
        };
        match seen.get(name.as_str()) {
            Some(first) => cx.error(
                &listener.path.key("name"),
                format!("duplicate listener name '{name}' (already used by {first})"),
            ),
            None => {
                seen.insert(name, &listener.path);
            }
        }
    }
}

/// No two bind addresses are equal (port 0, "any free port", excepted).
fn check_binds(raw: &RawBootstrap, cx: &mut Cx) {
    let mut seen: BTreeMap<SocketAddr, Path> = BTreeMap::new();
    let mut binds: Vec<(&Path, SocketAddr)> = Vec::new();
    if let Some((path, addr)) = &raw.admin {
        binds.push((path, *addr));
    }
    for listener in &raw.listeners {
        for address in &listener.addresses {
            if let Some(ListenAddress::Socket(addr)) = &address.value {
                binds.push((&address.path, *addr));
            }
        }
    }
    for (path, addr) in binds {
        if addr.port() == 0 {
            continue;
        }
        match seen.get(&addr) {
            Some(first) => cx.error(path, format!("address {addr} is already used by {first}")),
            None => {
                seen.insert(addr, path.clone());
            }
        }
    }
}

/// A listener's addresses are all `rc://` or all socket addresses.
fn check_address_kinds(listener: &RawListener, rc: bool, cx: &mut Cx) {
    for address in listener.addresses.iter().skip(1) {
        if address.is_rc != rc {
            let message = if rc {
                "all addresses of an rc:// listener must be rc:// addresses"
            } else {
                "an rc:// address cannot be an additional address of a socket listener: make it the main address of an rc:// listener"
            };
            cx.error(&address.path.key("address"), message);
        }
    }
}

/// Looks a cluster up by name; records an error at `path` if it is not defined.
fn lookup<'m, 'a>(
    clusters: &'m BTreeMap<&'a str, ClusterInfo<'a>>,
    name: &str,
    path: &Path,
    cx: &mut Cx,
) -> Option<&'m ClusterInfo<'a>> {
    let info = clusters.get(name);
    if info.is_none() {
        cx.error(
            path,
            format!("cluster '{name}' is not defined in static_resources.clusters"),
        );
    }
    info
}

/// One `rc://` listener: its targets and `tcp_proxy` cluster exist and are ordinary clusters; its
/// [`InitiatorConfig`] validates.
fn rc_listener(
    listener: &RawListener,
    proxy_path: &Path,
    proxy: &TcpProxyPlan,
    downstream: Option<&DownstreamExt>,
    clusters: &BTreeMap<&str, ClusterInfo<'_>>,
    cx: &mut Cx,
) -> Option<RcListenerPlan> {
    let mut ok = true;
    let mut addresses: Vec<RcAddress> = Vec::new();
    let mut connect_timeout = Duration::ZERO;
    for address in &listener.addresses {
        let Some(ListenAddress::Rc(rc)) = &address.value else {
            ok = false;
            continue;
        };
        let path = address.path.key("address");
        match lookup(clusters, rc.target_cluster(), &path, cx) {
            Some(info) if info.is_reverse() => {
                cx.error(
                    &path,
                    format!(
                        "target cluster '{}' is a reverse-connection cluster; an rc:// address dials a STATIC, STRICT_DNS or LOGICAL_DNS cluster of responders",
                        rc.target_cluster()
                    ),
                );
                ok = false;
            }
            Some(info) => {
                if let Some(plan) = info.plan() {
                    connect_timeout = connect_timeout.max(plan.connect_timeout);
                }
            }
            None => ok = false,
        }
        addresses.push(rc.clone());
    }
    let cluster_path = proxy_path.key("cluster");
    match lookup(clusters, &proxy.cluster, &cluster_path, cx) {
        Some(info) if info.is_reverse() => {
            cx.error(
                &cluster_path,
                format!(
                    "cluster '{}' is a reverse-connection cluster; an rc:// listener relays claimed tunnels to a local service (a STATIC, STRICT_DNS or LOGICAL_DNS cluster)",
                    proxy.cluster
                ),
            );
            ok = false;
        }
        Some(_) => {}
        None => ok = false,
    }
    let downstream = downstream?;
    if !ok || addresses.is_empty() {
        return None;
    }
    let mut config = match InitiatorConfig::from_addresses(&addresses) {
        Ok(config) => config,
        Err(e) => {
            let (path, message) = initiator_error_path(&e, &downstream.path, Some(listener));
            cx.error(&path, message);
            return None;
        }
    };
    let template = &downstream.template;
    config.request_path.clone_from(&template.request_path);
    config.request_method.clone_from(&template.request_method);
    config.extra_headers.clone_from(&template.extra_headers);
    config.upgrade = template.upgrade;
    config.offer_claim_marker = template.offer_claim_marker;
    config.handshake_timeout = template.handshake_timeout;
    config.idle_timeout = template.idle_timeout;
    config.max_reconnect_backoff = template.max_reconnect_backoff;
    config.max_tunnels_per_host = template.max_tunnels_per_host;
    config.stat_prefix.clone_from(&template.stat_prefix);
    config.head_limits = template.head_limits;
    if !connect_timeout.is_zero() {
        config.connect_timeout = connect_timeout;
    }
    if let Err(e) = config.validate() {
        report_initiator_error(cx, &e, &downstream.path);
        return None;
    }
    Some(RcListenerPlan {
        name: listener.name.clone().unwrap_or_default(),
        addresses,
        config,
        tcp_proxy: proxy.clone(),
        connection_limit: listener
            .chain
            .as_ref()
            .and_then(|c| c.connection_limit.clone()),
        data_tls: listener
            .chain
            .as_ref()
            .and_then(|c| c.tls.as_ref().map(|(_, plan)| plan.clone())),
    })
}

/// The responder: the upstream extension's settings plus the (identical) filters' settings.
fn responder(
    upstream: &UpstreamExt,
    listeners: Vec<(&RawListener, &RawReverseTunnel, HandshakeListenerPlan)>,
    cx: &mut Cx,
) -> Option<ResponderPlan> {
    let (_, first, _) = listeners.first()?;
    let settings = first.settings.clone();
    let mut ok = true;
    for (_, filter, _) in listeners.iter().skip(1) {
        if filter.settings != settings {
            cx.error(
                &filter.typed_path,
                format!(
                    "all {REVERSE_TUNNEL_FILTER} filters must have the same settings (revtun keeps one tunnel pool per process); this one differs from {}",
                    first.typed_path
                ),
            );
            ok = false;
        }
    }
    let config = settings.apply(&upstream.base);
    if let Err(e) = config.validate() {
        report_responder_error(cx, &e, &config, &upstream.path, Some(&first.typed_path));
        ok = false;
    }
    ok.then(|| ResponderPlan {
        config,
        auth: settings.auth,
        listeners: listeners.into_iter().map(|(_, _, plan)| plan).collect(),
    })
}
