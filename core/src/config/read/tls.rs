//! `transport_socket` with `envoy.transport_sockets.tls`: a `DownstreamTlsContext` on a listener, an
//! `UpstreamTlsContext` on a cluster.

use super::super::names::{DOWNSTREAM_TLS_TYPE, UPSTREAM_TLS_TYPE, message_name};
use super::super::plan::{DataSource, DownstreamTlsPlan, TlsCertificatePlan, UpstreamTlsPlan};
use super::super::yaml::{Cx, Map, Node};
use super::{extension_name, non_empty_string, set, typed_config};

/// A listener's `transport_socket`: must be a `DownstreamTlsContext`.
pub(super) fn read_downstream_transport_socket(
    node: &Node<'_>,
    cx: &mut Cx,
) -> Option<DownstreamTlsPlan> {
    let mut typed = transport_socket(node, cx, DOWNSTREAM_TLS_TYPE, "a listener")?;
    let plan = read_downstream(&mut typed, cx);
    let ok = typed.finish(cx);
    plan.filter(|_| ok)
}

/// A cluster's `transport_socket`: must be an `UpstreamTlsContext`.
pub(super) fn read_upstream_transport_socket(
    node: &Node<'_>,
    cx: &mut Cx,
) -> Option<UpstreamTlsPlan> {
    let mut typed = transport_socket(node, cx, UPSTREAM_TLS_TYPE, "a cluster")?;
    let plan = read_upstream(&mut typed, cx);
    let ok = typed.finish(cx);
    plan.filter(|_| ok)
}

/// `{name, typed_config}` whose `@type` must be `expected`; returns the `typed_config` mapping.
fn transport_socket<'a>(
    node: &Node<'a>,
    cx: &mut Cx,
    expected: &str,
    owner: &str,
) -> Option<Map<'a>> {
    let mut map = node.map(cx)?;
    let name = extension_name(&mut map, cx);
    let typed = map.require(cx, "typed_config");
    map.finish(cx);
    let _ = name;
    let typed = typed_config(&typed?, cx)?;
    if typed.message != message_name(expected) {
        cx.error(
            &typed.type_path,
            format!(
                "unsupported transport socket type {:?}: {owner}'s transport_socket must be envoy.transport_sockets.tls with {expected}",
                typed.message
            ),
        );
        return None;
    }
    Some(typed.map)
}

/// `DownstreamTlsContext`: `common_tls_context` with exactly one certificate, `require_client_certificate`
/// (which needs a `trusted_ca`).
fn read_downstream(map: &mut Map<'_>, cx: &mut Cx) -> Option<DownstreamTlsPlan> {
    let common = map.require(cx, "common_tls_context");
    let mut require_client_certificate = false;
    let mut ok = set(
        map,
        cx,
        "require_client_certificate",
        Node::bool,
        &mut require_client_certificate,
    );
    let common_path = map.field("common_tls_context");
    let (mut certificates, trusted_ca) = read_common(&common?, cx)?;
    let certificate = if certificates.len() == 1 {
        certificates.pop()
    } else {
        cx.error(
            &common_path.key("tls_certificates"),
            format!(
                "a listener's TLS context needs exactly one certificate, got {}",
                certificates.len()
            ),
        );
        None
    };
    if require_client_certificate && trusted_ca.is_none() {
        cx.error(
            &map.field("require_client_certificate"),
            "requires common_tls_context.validation_context.trusted_ca to verify client certificates",
        );
        ok = false;
    }
    Some(DownstreamTlsPlan {
        certificate: certificate?,
        trusted_ca,
        require_client_certificate,
    })
    .filter(|_| ok)
}

/// `UpstreamTlsContext`: `common_tls_context` with at most one (client) certificate, `sni`.
fn read_upstream(map: &mut Map<'_>, cx: &mut Cx) -> Option<UpstreamTlsPlan> {
    let common = map.take("common_tls_context");
    let sni = non_empty_string(map, cx, "sni");
    let common_path = map.field("common_tls_context");
    let (mut certificates, trusted_ca) = match common {
        Some(common) => read_common(&common, cx)?,
        None => (Vec::new(), None),
    };
    if certificates.len() > 1 {
        cx.error(
            &common_path.key("tls_certificates"),
            format!(
                "a cluster's TLS context takes at most one (client) certificate, got {}",
                certificates.len()
            ),
        );
        return None;
    }
    Some(UpstreamTlsPlan {
        certificate: certificates.pop(),
        trusted_ca,
        sni,
    })
}

/// `CommonTlsContext`: `tls_certificates` and `validation_context.trusted_ca`.
fn read_common(
    node: &Node<'_>,
    cx: &mut Cx,
) -> Option<(Vec<TlsCertificatePlan>, Option<DataSource>)> {
    let mut map = node.map(cx)?;
    let certificates = map.take("tls_certificates");
    let validation = map.take("validation_context");
    let mut ok = map.finish(cx);
    let mut out = Vec::new();
    for item in certificates.and_then(|c| c.seq(cx)).unwrap_or_default() {
        match read_certificate(&item, cx) {
            Some(certificate) => out.push(certificate),
            None => ok = false,
        }
    }
    let mut trusted_ca = None;
    if let Some(validation) = validation {
        match validation.map(cx) {
            Some(mut v) => {
                let ca = v.take("trusted_ca");
                ok &= v.finish(cx);
                if let Some(ca) = ca {
                    trusted_ca = data_source(&ca, cx);
                    ok &= trusted_ca.is_some();
                }
            }
            None => ok = false,
        }
    }
    ok.then_some((out, trusted_ca))
}

/// `TlsCertificate`: `certificate_chain` and `private_key`.
fn read_certificate(node: &Node<'_>, cx: &mut Cx) -> Option<TlsCertificatePlan> {
    let mut map = node.map(cx)?;
    let chain = map.require(cx, "certificate_chain");
    let key = map.require(cx, "private_key");
    let ok = map.finish(cx);
    let chain = chain.and_then(|c| data_source(&c, cx));
    let key = key.and_then(|k| data_source(&k, cx));
    Some(TlsCertificatePlan {
        certificate_chain: chain?,
        private_key: key?,
    })
    .filter(|_| ok)
}

/// `DataSource`: exactly one of `filename` and `inline_string`.
fn data_source(node: &Node<'_>, cx: &mut Cx) -> Option<DataSource> {
    let mut map = node.map(cx)?;
    let filename = map.take("filename");
    let inline = map.take("inline_string");
    let ok = map.finish(cx);
    let source = match (filename, inline) {
        (Some(f), None) => match f.string(cx) {
            Some(name) if name.is_empty() => {
                cx.error(&f.path, "must not be empty");
                None
            }
            name => name.map(DataSource::Filename),
        },
        (None, Some(i)) => i.string(cx).map(DataSource::InlineString),
        (Some(_), Some(_)) => {
            cx.error(&node.path, "set exactly one of filename and inline_string");
            None
        }
        (None, None) => {
            cx.error(&node.path, "set one of filename and inline_string");
            None
        }
    };
    source.filter(|_| ok)
}
