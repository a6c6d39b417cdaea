//! `bootstrap_extensions`: the downstream (initiator) and upstream (responder) socket interfaces.

use std::time::Duration;

use crate::initiator::{InitiatorConfig, InitiatorConfigError, TargetCluster};
use crate::responder::{ResponderConfig, ResponderConfigError};

use super::super::error_paths::{initiator_error_path, responder_error_path};
use super::super::names::{
    DOWNSTREAM_EXTENSION, DOWNSTREAM_EXTENSION_TYPE, UPSTREAM_EXTENSION, UPSTREAM_EXTENSION_TYPE,
    message_name,
};
use super::super::raw::{DownstreamExt, UpstreamExt};
use super::super::yaml::{Cx, Map, Node, Path};
use super::{extension_name, non_empty_string, set, typed_config};

/// The extensions as read: each is `None` if absent, `Some(None)` if configured with errors.
pub(super) struct Extensions {
    pub(super) downstream: Option<Option<DownstreamExt>>,
    pub(super) upstream: Option<Option<UpstreamExt>>,
}

/// Reads the list; each extension at most once.
pub(super) fn read_extensions(node: &Node<'_>, cx: &mut Cx) -> Extensions {
    let mut downstream: Option<(Path, Option<DownstreamExt>)> = None;
    let mut upstream: Option<(Path, Option<UpstreamExt>)> = None;
    for item in node.seq(cx).unwrap_or_default() {
        let Some(mut map) = item.map(cx) else {
            continue;
        };
        let _name = extension_name(&mut map, cx);
        let typed = map.require(cx, "typed_config");
        map.finish(cx);
        let Some(mut typed) = typed.as_ref().and_then(|t| typed_config(t, cx)) else {
            continue;
        };
        let path = typed.map.path().clone();
        if typed.message == message_name(DOWNSTREAM_EXTENSION_TYPE) {
            if let Some((first, _)) = &downstream {
                cx.error(&item.path, duplicate(DOWNSTREAM_EXTENSION, first));
                continue;
            }
            let ext = read_downstream(&mut typed.map, cx);
            typed.map.finish(cx);
            downstream = Some((
                item.path.clone(),
                ext.map(|(template, token)| DownstreamExt {
                    path,
                    template,
                    bearer_token_file: token,
                }),
            ));
        } else if typed.message == message_name(UPSTREAM_EXTENSION_TYPE) {
            if let Some((first, _)) = &upstream {
                cx.error(&item.path, duplicate(UPSTREAM_EXTENSION, first));
                continue;
            }
            let base = read_upstream(&mut typed.map, cx);
            typed.map.finish(cx);
            upstream = Some((
                item.path.clone(),
                base.map(|base| UpstreamExt { path, base }),
            ));
        } else {
            cx.error(
                &typed.type_path,
                format!(
                    "unsupported bootstrap extension type {:?}; supported: {DOWNSTREAM_EXTENSION_TYPE}, {UPSTREAM_EXTENSION_TYPE}",
                    typed.message
                ),
            );
        }
    }
    Extensions {
        downstream: downstream.map(|d| d.1),
        upstream: upstream.map(|u| u.1),
    }
}

fn duplicate(name: &str, first: &Path) -> String {
    format!("duplicate bootstrap extension {name} (already configured at {first})")
}

/// The smallest `max_reconnect_backoff` Envoy accepts.
const MIN_RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// `DownstreamReverseConnectionSocketInterface` plus revtun's initiator fields: a template
/// [`InitiatorConfig`] (identity and targets are filled per listener) and the token file.
fn read_downstream(map: &mut Map<'_>, cx: &mut Cx) -> Option<(InitiatorConfig, Option<String>)> {
    let mut config = InitiatorConfig::new("", "", "", Vec::new());
    let mut ok = true;
    if let Some(prefix) = non_empty_string(map, cx, "stat_prefix") {
        config.stat_prefix = prefix;
    }
    if let Some(n) = map.take("enable_detailed_stats") {
        ok &= n.bool(cx).is_some(); // accepted: revtun always emits its statistics
    }
    let mut token_file = None;
    if let Some(handshake) = map.take("http_handshake") {
        match read_http_handshake(&handshake, cx, &mut config) {
            Some(token) => token_file = token,
            None => ok = false,
        }
    }
    if let Some(n) = map.take("max_reconnect_backoff") {
        match n.duration(cx) {
            Some(d) if d >= MIN_RECONNECT_BACKOFF => config.max_reconnect_backoff = d,
            Some(_) => {
                cx.error(&n.path, "must be at least 1s");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok &= set(
        map,
        cx,
        "idle_timeout",
        Node::duration,
        &mut config.idle_timeout,
    );
    ok &= set(
        map,
        cx,
        "handshake_timeout",
        Node::duration,
        &mut config.handshake_timeout,
    );
    ok &= set(
        map,
        cx,
        "max_tunnels_per_host",
        Node::u32,
        &mut config.max_tunnels_per_host,
    );
    ok &= set(
        map,
        cx,
        "offer_claim_marker",
        Node::bool,
        &mut config.offer_claim_marker,
    );

    // Check the template with a stand-in identity, so that bad settings are reported even when no
    // rc:// listener uses them (listeners report the same errors, which are then merged).
    let mut probe = config.clone();
    probe.node = "probe".to_owned();
    probe.cluster = "probe".to_owned();
    probe.targets = vec![TargetCluster {
        name: "probe".to_owned(),
        count: 1,
    }];
    if let Err(e) = probe.validate() {
        report_initiator_error(cx, &e, map.path());
        ok = false;
    }
    ok.then_some((config, token_file))
}

/// Records an initiator config error at the downstream extension's field.
pub(crate) fn report_initiator_error(cx: &mut Cx, e: &InitiatorConfigError, typed: &Path) {
    let (path, message) = initiator_error_path(e, typed, None);
    cx.error(&path, message);
}

/// `http_handshake`: Envoy's `request_path`, `additional_headers`, `use_http_upgrade`, plus revtun's
/// `request_method` and `bearer_token_file`. Returns the token file (`Some(None)` if none), `None` on
/// errors.
fn read_http_handshake(
    node: &Node<'_>,
    cx: &mut Cx,
    config: &mut InitiatorConfig,
) -> Option<Option<String>> {
    let mut map = node.map(cx)?;
    let mut ok = true;
    if let Some(path) = non_empty_string(&mut map, cx, "request_path") {
        config.request_path = path;
    }
    if let Some(method) = non_empty_string(&mut map, cx, "request_method") {
        config.request_method = method;
    }
    ok &= set(
        &mut map,
        cx,
        "use_http_upgrade",
        Node::bool,
        &mut config.upgrade,
    );
    if let Some(headers) = map.take("additional_headers") {
        match read_headers(&headers, cx) {
            Some(headers) => config.extra_headers = headers,
            None => ok = false,
        }
    }
    let mut token = None;
    if let Some(n) = map.take("bearer_token_file") {
        match n.string(cx) {
            None => ok = false,
            Some(file) if file.is_empty() => {
                cx.error(&n.path, "must not be empty");
                ok = false;
            }
            Some(_)
                if config
                    .extra_headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("authorization")) =>
            {
                cx.error(
                    &n.path,
                    "conflicts with the authorization header in additional_headers",
                );
                ok = false;
            }
            Some(file) => token = Some(file),
        }
    }
    ok &= map.finish(cx);
    ok.then_some(token)
}

/// `additional_headers`: a list of `HeaderValueOption`s, each `{header: {key, value}}`.
fn read_headers(node: &Node<'_>, cx: &mut Cx) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in node.seq(cx)? {
        let Some(mut option) = item.map(cx) else {
            ok = false;
            continue;
        };
        let header = option.require(cx, "header");
        ok &= option.finish(cx);
        let Some(mut header) = header.and_then(|h| h.map(cx)) else {
            ok = false;
            continue;
        };
        let key = header.require(cx, "key").and_then(|k| k.string(cx));
        let value = match header.take("value") {
            Some(v) => v.string(cx),
            None => Some(String::new()),
        };
        ok &= header.finish(cx);
        match (key, value) {
            (Some(key), Some(value)) => out.push((key, value)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `UpstreamReverseConnectionSocketInterface` plus revtun's pool fields, as a base [`ResponderConfig`]
/// (the `reverse_tunnel` filter fills in the handshake policy and ping interval).
fn read_upstream(map: &mut Map<'_>, cx: &mut Cx) -> Option<ResponderConfig> {
    let mut config = ResponderConfig::default();
    let mut ok = true;
    if let Some(prefix) = non_empty_string(map, cx, "stat_prefix") {
        config.stat_prefix = prefix;
    }
    if let Some(n) = map.take("ping_failure_threshold") {
        match n.u32(cx) {
            Some(0) => {
                cx.error(&n.path, "must be at least 1");
                ok = false;
            }
            Some(t) => config.keepalive.failure_threshold = t,
            None => ok = false,
        }
    }
    if let Some(n) = map.take("enable_detailed_stats") {
        ok &= n.bool(cx).is_some(); // accepted: revtun always emits its statistics
    }
    ok &= set(
        map,
        cx,
        "enable_tenant_isolation",
        Node::bool,
        &mut config.policy.tenant_isolation,
    );
    if let Some(n) = map.take("max_connections_per_node") {
        match n.u32(cx) {
            Some(cap) => config.max_tunnels_per_node = Some(cap),
            None => ok = false,
        }
    }
    if let Some(n) = map.take("retry_after") {
        match n.duration(cx) {
            Some(d) => config.retry_after = Some(d),
            None => ok = false,
        }
    }
    ok &= set(
        map,
        cx,
        "claim_timeout",
        Node::duration,
        &mut config.claim_timeout,
    );
    for (key, field) in [
        ("max_pending_handshakes", &mut config.max_pending_handshakes),
        (
            "max_pending_handshakes_per_ip",
            &mut config.max_pending_handshakes_per_ip,
        ),
    ] {
        if let Some(n) = map.take(key) {
            match n.u64(cx).map(usize::try_from) {
                Some(Ok(v)) => *field = v,
                Some(Err(_)) => {
                    cx.error(&n.path, "is too large for this platform");
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    if let Err(e) = config.validate() {
        report_responder_error(cx, &e, &config, map.path(), None);
        ok = false;
    }
    ok.then_some(config)
}

/// Records a responder config error at the field it is about.
pub(crate) fn report_responder_error(
    cx: &mut Cx,
    e: &ResponderConfigError,
    config: &ResponderConfig,
    upstream: &Path,
    filter: Option<&Path>,
) {
    let (path, message) = responder_error_path(e, config, upstream, filter);
    cx.error(&path, message);
}
