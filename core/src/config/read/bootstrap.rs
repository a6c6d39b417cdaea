//! The top level: `admin`, `bootstrap_extensions`, `static_resources`.

use std::net::SocketAddr;

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
        raw.admin = read_admin(&admin, cx);
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

/// `admin`: only `address.socket_address` (an IP literal and a port).
fn read_admin(node: &Node<'_>, cx: &mut Cx) -> Option<(Path, SocketAddr)> {
    let mut map = node.map(cx)?;
    let address = map.require(cx, "address");
    map.finish(cx);
    let address = address?;
    let path = address.path.key("socket_address");
    let addr = socket::bind_address(&address, cx)?;
    Some((path, addr))
}
