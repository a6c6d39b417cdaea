//! The top level: `admin`, `bootstrap_extensions`, `static_resources`.

use std::net::SocketAddr;

use crate::policy::{CidrRange, SourceAllowList};

use super::super::raw::RawBootstrap;
use super::super::yaml::{Cx, Node, Path};
use super::{cluster, extensions, listener, socket};

/// Reads a whole document. The extensions are read before `static_resources`, whatever the key order
/// in the file, because clusters check them.
pub(crate) fn read_bootstrap(root: &Node<'_>, cx: &mut Cx) -> RawBootstrap {
    let mut raw = RawBootstrap::default();
    if root.value.is_null() {
        return raw; // an empty document: nothing to run
    }
    let Some(mut top) = root.map(cx) else {
        return raw;
    };
    let admin = top.take("admin");
    let extensions = top.take("bootstrap_extensions");
    let resources = top.take("static_resources");
    top.finish(cx);

    if let Some(admin) = admin {
        if let Some((address, allow)) = read_admin(&admin, cx) {
            raw.admin = address;
            raw.admin_source_allow = allow;
        }
    }
    if let Some(extensions) = extensions {
        let extensions = extensions::read_extensions(&extensions, cx);
        raw.has_downstream = extensions.downstream.is_some();
        raw.downstream = extensions.downstream.flatten();
        raw.has_upstream = extensions.upstream.is_some();
        raw.upstream = extensions.upstream.flatten();
    }
    let Some(mut resources) = resources.and_then(|r| r.map(cx)) else {
        return raw;
    };
    let listeners = resources.take("listeners");
    let clusters = resources.take("clusters");
    resources.finish(cx);
    if let Some(items) = listeners.and_then(|l| l.seq(cx)) {
        raw.listeners = items
            .iter()
            .filter_map(|item| listener::read_listener(item, cx))
            .collect();
    }
    if let Some(items) = clusters.and_then(|c| c.seq(cx)) {
        let upstream = cluster::Upstream {
            configured: raw.has_upstream,
            isolation: raw
                .upstream
                .as_ref()
                .filter(|u| u.base.policy.tenant_isolation)
                .map(|u| u.path.key("enable_tenant_isolation")),
        };
        raw.clusters = items
            .iter()
            .filter_map(|item| cluster::read_cluster(item, &upstream, cx))
            .collect();
    }
    raw
}

/// The admin endpoint as read: its address (with the path of its `socket_address`) and its source
/// allow-list.
type Admin = (Option<(Path, SocketAddr)>, Option<SourceAllowList>);

/// `admin`: `address.socket_address` (an IP literal and a port) and revtun's `source_allow` (CIDR
/// strings such as `127.0.0.0/8`; a client from elsewhere is closed at once).
fn read_admin(node: &Node<'_>, cx: &mut Cx) -> Option<Admin> {
    let mut map = node.map(cx)?;
    let address = map.require(cx, "address");
    let allow = map.take("source_allow");
    map.finish(cx);
    let allow = allow.and_then(|n| cidr_list(&n, cx));
    let address = address.and_then(|address| {
        let path = address.path.key("socket_address");
        let addr = socket::bind_address(&address, cx)?;
        Some((path, addr))
    });
    Some((address, allow))
}

/// A list of CIDR strings (`addr/len`; a bare address is the host alone). An empty list is an error (it
/// would refuse everyone).
pub(super) fn cidr_list(node: &Node<'_>, cx: &mut Cx) -> Option<SourceAllowList> {
    let items = node.seq(cx)?;
    if items.is_empty() {
        cx.error(
            &node.path,
            "must not be empty (it would refuse every client)",
        );
        return None;
    }
    let mut ranges = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in &items {
        let Some(text) = item.string(cx) else {
            ok = false;
            continue;
        };
        match CidrRange::parse(&text) {
            Ok(range) => ranges.push(range),
            Err(e) => {
                cx.error(&item.path, e);
                ok = false;
            }
        }
    }
    ok.then(|| SourceAllowList::new(ranges))
}
