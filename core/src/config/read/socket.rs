//! `Address` / `SocketAddress` for listeners, the admin endpoint and cluster endpoints.

use std::net::{IpAddr, SocketAddr};

use crate::address::{AddressError, RcAddress, is_rc_address};

use super::super::names::REVERSE_CONNECTION_RESOLVER;
use super::super::plan::Endpoint;
use super::super::raw::{ListenAddress, RawAddress};
use super::super::yaml::{Cx, Node, Path};

/// The fields of a `socket_address`, read and type-checked.
struct SocketFields<'a> {
    path: Path,
    address: Option<(Path, &'a str)>,
    port: Option<(Path, u32)>,
    resolver: Option<(Path, &'a str)>,
}

/// Reads `address: {socket_address: {...}}` (the `Address` message; only `socket_address` is supported).
fn socket_fields<'a>(node: &Node<'a>, cx: &mut Cx) -> Option<SocketFields<'a>> {
    let mut outer = node.map(cx)?;
    let inner = outer.require(cx, "socket_address");
    outer.finish(cx);
    let inner = inner?;
    let mut map = inner.map(cx)?;
    let address = map
        .require(cx, "address")
        .and_then(|n| n.str(cx).map(|s| (n.path.clone(), s)));
    let port = map.take("port_value").map(|n| (n.path.clone(), n.u32(cx)));
    if let Some(protocol) = map.take("protocol") {
        protocol.choice(cx, &[("TCP", ())]);
    }
    let resolver = map
        .take("resolver_name")
        .and_then(|n| n.str(cx).map(|s| (n.path.clone(), s)));
    map.finish(cx);
    let port = match port {
        Some((path, Some(p))) => Some((path, p)),
        Some((_, None)) => return None,
        None => Some((inner.path.key("port_value"), 0)),
    };
    Some(SocketFields {
        path: inner.path,
        address,
        port,
        resolver,
    })
}

/// Checks a port against `[min, 65535]`.
fn port_in_range(cx: &mut Cx, path: &Path, port: u32, min: u32) -> Option<u16> {
    match u16::try_from(port) {
        Ok(p) if port >= min => Some(p),
        _ => {
            cx.error(path, format!("port {port} is out of range [{min}, 65535]"));
            None
        }
    }
}

/// An IP literal (listeners and the admin endpoint bind IP addresses, as in Envoy).
fn ip(cx: &mut Cx, path: &Path, text: &str, hint: &str) -> Option<IpAddr> {
    let ip = text.parse::<IpAddr>().ok();
    if ip.is_none() {
        cx.error(path, format!("malformed IP address: {text}{hint}"));
    }
    ip
}

/// A bind address: an IP literal and a port in `[0, 65535]` (0: any free port).
pub(super) fn bind_address(node: &Node<'_>, cx: &mut Cx) -> Option<SocketAddr> {
    let fields = socket_fields(node, cx)?;
    if let Some((path, _)) = &fields.resolver {
        cx.error(path, resolver_only_for_rc());
    }
    let (address_path, address) = fields.address?;
    let (port_path, port) = fields.port?;
    let ip = ip(cx, &address_path, address, "");
    let port = port_in_range(cx, &port_path, port, 0);
    Some(SocketAddr::new(ip?, port?))
}

/// A listener address: an `rc://` address (with port 0) or a bind address.
pub(super) fn listener_address(node: &Node<'_>, cx: &mut Cx) -> Option<RawAddress> {
    let fields = socket_fields(node, cx)?;
    let (address_path, address) = fields.address?;
    let (port_path, port) = fields.port?;
    if !is_rc_address(address) {
        if let Some((path, _)) = &fields.resolver {
            cx.error(path, resolver_only_for_rc());
        }
        let ip = ip(
            cx,
            &address_path,
            address,
            " (a listener binds an IP address; a reverse-connection listener's address starts with rc://)",
        );
        let port = port_in_range(cx, &port_path, port, 0);
        let value = match (ip, port) {
            (Some(ip), Some(port)) => Some(ListenAddress::Socket(SocketAddr::new(ip, port))),
            _ => None,
        };
        return Some(RawAddress {
            path: fields.path,
            is_rc: false,
            value,
        });
    }
    if let Some((path, name)) = &fields.resolver {
        if *name != REVERSE_CONNECTION_RESOLVER {
            cx.error(
                path,
                format!(
                    "unsupported resolver {name:?}; an rc:// address uses {REVERSE_CONNECTION_RESOLVER:?} (or no resolver_name)"
                ),
            );
        }
    }
    let value = match RcAddress::from_socket_address(address, port) {
        Ok(rc) => Some(ListenAddress::Rc(rc)),
        Err(e) => {
            let path = match e {
                AddressError::NonZeroPort { .. } => &port_path,
                _ => &address_path,
            };
            cx.error(path, e);
            None
        }
    };
    Some(RawAddress {
        path: fields.path,
        is_rc: true,
        value,
    })
}

/// A cluster endpoint: a port in `[1, 65535]` and, for STATIC clusters, an IP literal; for the DNS
/// kinds an IP literal or a DNS name.
pub(super) fn endpoint(node: &Node<'_>, cx: &mut Cx, needs_ip: bool) -> Option<Endpoint> {
    let fields = socket_fields(node, cx)?;
    if let Some((path, _)) = &fields.resolver {
        cx.error(path, resolver_only_for_rc());
    }
    let (address_path, address) = fields.address?;
    let (port_path, port) = fields.port?;
    let port = port_in_range(cx, &port_path, port, 1);
    let host_ok = if needs_ip {
        ip(
            cx,
            &address_path,
            address,
            ". Consider setting resolver_name or setting cluster type to 'STRICT_DNS' or 'LOGICAL_DNS'",
        )
        .is_some()
    } else if address.parse::<IpAddr>().is_ok() || is_dns_name(address) {
        true
    } else {
        cx.error(
            &address_path,
            format!("{address:?} is neither an IP address nor a DNS name"),
        );
        false
    };
    let port = port?;
    host_ok.then(|| Endpoint {
        host: address.to_owned(),
        port,
    })
}

fn resolver_only_for_rc() -> String {
    format!(
        "resolver_name is only supported on rc:// listener addresses ({REVERSE_CONNECTION_RESOLVER})"
    )
}

/// A DNS name: at most 253 bytes, dot-separated labels of 1–63 letters, digits, `-` or `_`, an optional
/// trailing dot.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;

    #[test]
    fn dns_names() {
        for ok in [
            "localhost",
            "upstream.example.com",
            "a.b.",
            "x_y-z.svc",
            "a1",
        ] {
            assert!(is_dns_name(ok), "{ok}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            ".",
            "a..b",
            "a b",
            "a:b",
            "[::1]",
            long_label.as_str(),
            "é.com",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
