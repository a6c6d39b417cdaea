//! The network filters: `tcp_proxy`, `reverse_tunnel` and `connection_limit`.

use std::time::Duration;

use crate::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH};
use crate::keepalive::KeepaliveConfig;
use crate::policy::{CertificateIdentity, IdPattern, SanTemplate};
use crate::responder::{DEFAULT_HANDSHAKE_TIMEOUT, ResponderConfig};

use super::super::plan::{
    AuthPlan, ConnectionLimitPlan, DEFAULT_TCP_PROXY_IDLE_TIMEOUT, TcpProxyPlan,
};
use super::super::raw::FilterSettings;
use super::super::yaml::{Cx, Map, Node};
use super::extensions::report_responder_error;
use super::{constant_format, non_empty_string, required_string, set};

/// `TcpProxy`: `stat_prefix`, `cluster`, `idle_timeout` (default 1 h; `0s` disables it).
pub(super) fn read_tcp_proxy(map: &mut Map<'_>, cx: &mut Cx) -> Option<TcpProxyPlan> {
    let stat_prefix = required_string(map, cx, "stat_prefix");
    let cluster = required_string(map, cx, "cluster");
    let mut idle_timeout = Some(DEFAULT_TCP_PROXY_IDLE_TIMEOUT);
    let mut ok = true;
    if let Some(n) = map.take("idle_timeout") {
        match n.duration(cx) {
            Some(d) => idle_timeout = (!d.is_zero()).then_some(d),
            None => ok = false,
        }
    }
    ok &= map.finish(cx);
    Some(TcpProxyPlan {
        stat_prefix: stat_prefix?,
        cluster: cluster?,
        idle_timeout,
    })
    .filter(|_| ok)
}

/// `ConnectionLimit`: `stat_prefix`, `max_connections` (at least 1), `delay`.
pub(super) fn read_connection_limit(map: &mut Map<'_>, cx: &mut Cx) -> Option<ConnectionLimitPlan> {
    let stat_prefix = required_string(map, cx, "stat_prefix");
    let max_connections = map.require(cx, "max_connections").and_then(|n| {
        let max = n.u64(cx)?;
        if max == 0 {
            cx.error(&n.path, "must be at least 1");
            return None;
        }
        Some(max)
    });
    let mut ok = true;
    let mut delay = None;
    if let Some(n) = map.take("delay") {
        match n.duration(cx) {
            Some(d) => delay = (!d.is_zero()).then_some(d),
            None => ok = false,
        }
    }
    ok &= map.finish(cx);
    Some(ConnectionLimitPlan {
        stat_prefix: stat_prefix?,
        max_connections: max_connections?,
        delay,
    })
    .filter(|_| ok)
}

/// Envoy's range for `ping_interval`.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);
const MAX_PING_INTERVAL: Duration = Duration::from_secs(300);

/// Envoy's `RequestMethod` names; `METHOD_UNSPECIFIED` means the default, `GET`.
const REQUEST_METHODS: &[(&str, &str)] = &[
    ("METHOD_UNSPECIFIED", DEFAULT_REQUEST_METHOD),
    ("GET", "GET"),
    ("HEAD", "HEAD"),
    ("POST", "POST"),
    ("PUT", "PUT"),
    ("DELETE", "DELETE"),
    ("CONNECT", "CONNECT"),
    ("OPTIONS", "OPTIONS"),
    ("TRACE", "TRACE"),
    ("PATCH", "PATCH"),
];

/// `ReverseTunnel` plus revtun's handshake and authorization fields.
pub(super) fn read_reverse_tunnel(map: &mut Map<'_>, cx: &mut Cx) -> Option<FilterSettings> {
    let mut s = FilterSettings {
        ping_interval: KeepaliveConfig::default().interval,
        request_path: DEFAULT_REQUEST_PATH.to_owned(),
        request_method: DEFAULT_REQUEST_METHOD.to_owned(),
        required_cluster_name: None,
        use_http_upgrade: false,
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        require_tenant: false,
        accept_claim_marker: true,
        auth: AuthPlan::default(),
        certificate_key: None,
    };
    let mut ok = true;
    if let Some(n) = map.take("ping_interval") {
        match n.duration(cx) {
            Some(d) if (MIN_PING_INTERVAL..=MAX_PING_INTERVAL).contains(&d) => s.ping_interval = d,
            Some(_) => {
                cx.error(&n.path, "must be between 1ms and 300s");
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = map.take("auto_close_connections") {
        match n.bool(cx) {
            Some(false) => {}
            Some(true) => {
                cx.error(
                    &n.path,
                    "true is not supported: revtun keeps every accepted handshake connection as a tunnel",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(path) = non_empty_string(map, cx, "request_path") {
        s.request_path = path;
    }
    if let Some(n) = map.take("request_method") {
        match n.choice(cx, REQUEST_METHODS) {
            Some(method) => s.request_method = method.to_owned(),
            None => ok = false,
        }
    }
    s.required_cluster_name = non_empty_string(map, cx, "required_cluster_name");
    ok &= set(
        map,
        cx,
        "use_http_upgrade",
        Node::bool,
        &mut s.use_http_upgrade,
    );
    // Accepted without effect: revtun has one pool per process (nothing to rebalance), and its per-node
    // cap is the upstream extension's max_connections_per_node.
    for key in ["skip_rebalancing", "enable_connection_limit"] {
        if let Some(n) = map.take(key) {
            ok &= n.bool(cx).is_some();
        }
    }
    ok &= set(
        map,
        cx,
        "handshake_timeout",
        Node::duration,
        &mut s.handshake_timeout,
    );
    ok &= set(map, cx, "require_tenant", Node::bool, &mut s.require_tenant);
    ok &= set(
        map,
        cx,
        "accept_claim_marker",
        Node::bool,
        &mut s.accept_claim_marker,
    );
    ok &= read_auth(map, cx, &mut s);
    ok &= map.finish(cx);
    // Check the handshake settings now, so that they are reported even without an upstream extension.
    let probe = s.apply(&ResponderConfig::default());
    if let Err(e) = probe.validate() {
        report_responder_error(cx, &e, &probe, map.path(), Some(map.path()));
        ok = false;
    }
    ok.then_some(s)
}

/// Envoy's `validation` (constant `*_id_format`s) and revtun's allow-lists, token file and certificate
/// binding.
fn read_auth(map: &mut Map<'_>, cx: &mut Cx, settings: &mut FilterSettings) -> bool {
    let auth = &mut settings.auth;
    let mut ok = true;
    let mut formats: [Option<String>; 3] = [None, None, None];
    if let Some(n) = map.take("validation") {
        match n.map(cx) {
            Some(mut v) => {
                for (i, key) in ["node_id_format", "cluster_id_format", "tenant_id_format"]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(f) = v.take(key) {
                        match constant_format(&f, cx) {
                            Some(value) => formats[i] = (!value.is_empty()).then_some(value),
                            None => ok = false,
                        }
                    }
                }
                ok &= v.finish(cx);
            }
            None => ok = false,
        }
    }
    let [node, cluster, tenant] = formats;
    for (key, format_key, format, slot) in [
        (
            "allowed_node_ids",
            "node_id_format",
            node,
            &mut auth.allowed_node_ids,
        ),
        (
            "allowed_cluster_ids",
            "cluster_id_format",
            cluster,
            &mut auth.allowed_cluster_ids,
        ),
        (
            "allowed_tenant_ids",
            "tenant_id_format",
            tenant,
            &mut auth.allowed_tenant_ids,
        ),
    ] {
        let list = map.take(key);
        match (list, format) {
            (Some(n), Some(_)) => {
                cx.error(
                    &n.path,
                    format!("set either validation.{format_key} or {key}, not both"),
                );
                ok = false;
            }
            (Some(n), None) => match pattern_list(&n, cx) {
                Some(ids) => *slot = ids,
                None => ok = false,
            },
            (None, Some(value)) => *slot = vec![value],
            (None, None) => {}
        }
    }
    if let Some(n) = map.take("bearer_token_file") {
        match n.string(cx) {
            Some(file) if !file.is_empty() => auth.bearer_token_file = Some(file),
            Some(_) => {
                cx.error(&n.path, "must not be empty");
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut bind_flag = false;
    let flag_node = map.take("bind_node_id_to_certificate");
    if let Some(n) = &flag_node {
        match n.bool(cx) {
            Some(b) => bind_flag = b,
            None => ok = false,
        }
    }
    if let Some(n) = map.take("certificate_identity") {
        if bind_flag {
            cx.error(
                &n.path,
                "set either bind_node_id_to_certificate or certificate_identity, not both",
            );
            ok = false;
        } else {
            match read_certificate_identity(&n, cx) {
                Some(binding) => auth.certificate_identity = Some(binding),
                None => ok = false,
            }
            settings.certificate_key = Some("certificate_identity");
        }
    } else if bind_flag {
        auth.certificate_identity = Some(CertificateIdentity::node_id_equals_san());
        settings.certificate_key = Some("bind_node_id_to_certificate");
    }
    ok
}

/// An allow-list: strings, each an exact id, `prefix*`, `*suffix` or `*`.
fn pattern_list(node: &Node<'_>, cx: &mut Cx) -> Option<Vec<String>> {
    let items = node.seq(cx)?;
    let mut ok = true;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let Some(s) = item.string(cx) else {
            ok = false;
            continue;
        };
        if let Err(e) = IdPattern::parse(&s) {
            cx.error(&item.path, e);
            ok = false;
        }
        out.push(s);
    }
    ok.then_some(out)
}

/// revtun `certificate_identity: { uri_san, dns_san }`: templates with `{node}` (required), `{cluster}`,
/// `{tenant}`; at least one of the two.
fn read_certificate_identity(node: &Node<'_>, cx: &mut Cx) -> Option<CertificateIdentity> {
    let mut map = node.map(cx)?;
    let mut ok = true;
    let mut template = |map: &mut Map<'_>, cx: &mut Cx, key: &'static str| {
        let n = map.take(key)?;
        let text = n.string(cx);
        match text.map(|t| SanTemplate::parse(&t)) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                cx.error(&n.path, e);
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        }
    };
    let uri_san = template(&mut map, cx, "uri_san");
    let dns_san = template(&mut map, cx, "dns_san");
    ok &= map.finish(cx);
    if ok && uri_san.is_none() && dns_san.is_none() {
        cx.error(&node.path, "set uri_san, dns_san or both");
        return None;
    }
    ok.then_some(CertificateIdentity { uri_san, dns_san })
}
