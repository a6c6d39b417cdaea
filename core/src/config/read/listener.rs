//! A listener: `name`, `address`, `additional_addresses`, one filter chain with its filters and
//! optional `transport_socket`.

use super::super::names::{
    CONNECTION_LIMIT_FILTER, CONNECTION_LIMIT_TYPE, RBAC_FILTER, RBAC_TYPE, REVERSE_TUNNEL_FILTER,
    REVERSE_TUNNEL_TYPE, TCP_PROXY_FILTER, TCP_PROXY_TYPE, message_name,
};
use super::super::raw::{RawChain, RawListener, RawReverseTunnel, Terminal};
use super::super::yaml::{Cx, Node, Path};
use super::{filters, rbac, required_string, socket, tls, typed_config};

/// Reads one listener. `None` only if it is not a mapping.
pub(super) fn read_listener(node: &Node<'_>, cx: &mut Cx) -> Option<RawListener> {
    let mut map = node.map(cx)?;
    let name = required_string(&mut map, cx, "name");
    let address = map.require(cx, "address");
    let additional = map.take("additional_addresses");
    let chains = map.require(cx, "filter_chains");
    map.finish(cx);

    let mut addresses = Vec::new();
    if let Some(raw) = address.and_then(|a| socket::listener_address(&a, cx)) {
        addresses.push(raw);
    }
    for item in additional.and_then(|a| a.seq(cx)).unwrap_or_default() {
        // `additional_addresses[i]` is an `AdditionalAddress`: `{address: {socket_address: …}}`.
        let Some(mut entry) = item.map(cx) else {
            continue;
        };
        let address = entry.require(cx, "address");
        entry.finish(cx);
        if let Some(raw) = address.and_then(|a| socket::listener_address(&a, cx)) {
            addresses.push(raw);
        }
    }
    let chain = chains.and_then(|c| read_chains(&c, cx));
    Some(RawListener {
        path: node.path.clone(),
        name,
        addresses,
        chain,
    })
}

/// `filter_chains`: exactly one chain (revtun has no `filter_chain_match`).
fn read_chains(node: &Node<'_>, cx: &mut Cx) -> Option<RawChain> {
    let chains = node.seq(cx)?;
    match chains.as_slice() {
        [chain] => read_chain(chain, cx),
        [] => {
            cx.error(&node.path, "a listener needs one filter chain");
            None
        }
        [_, extra @ ..] => {
            for chain in extra {
                cx.error(
                    &chain.path,
                    "only one filter chain per listener is supported (revtun has no filter_chain_match)",
                );
            }
            None
        }
    }
}

/// One filter chain: `filters` (`rbac` and `connection_limit`, each at most once, before exactly one
/// terminal filter, `tcp_proxy` or `reverse_tunnel`), an optional `transport_socket` and an optional
/// `name`.
fn read_chain(node: &Node<'_>, cx: &mut Cx) -> Option<RawChain> {
    let mut map = node.map(cx)?;
    if let Some(name) = map.take("name") {
        name.str(cx);
    }
    let filters = map.require(cx, "filters");
    let transport = map.take("transport_socket");
    map.finish(cx);

    let tls = transport.and_then(|t| {
        let plan = tls::read_downstream_transport_socket(&t, cx)?;
        Some((t.path.clone(), plan))
    });
    let mut chain = RawChain {
        tls,
        connection_limit: None,
        rbac: None,
        terminal: None,
        has_reverse_tunnel: false,
    };
    let filters = filters.and_then(|f| f.seq(cx)).unwrap_or_default();
    if filters.is_empty() {
        cx.error(&node.path.key("filters"), "a filter chain needs a terminal filter (envoy.filters.network.tcp_proxy or envoy.filters.network.reverse_tunnel)");
        return Some(chain);
    }
    let mut terminal_seen: Option<Path> = None;
    for filter in &filters {
        match read_filter(filter, cx) {
            Some(Filter::ConnectionLimit(plan)) => {
                if let Some(t) = &terminal_seen {
                    cx.error(
                        &filter.path,
                        format!(
                            "{CONNECTION_LIMIT_FILTER} must come before the terminal filter at {t}"
                        ),
                    );
                } else if chain.connection_limit.is_some() {
                    cx.error(
                        &filter.path,
                        format!("{CONNECTION_LIMIT_FILTER} may appear only once"),
                    );
                } else {
                    chain.connection_limit = Some(plan);
                }
            }
            Some(Filter::Rbac(plan)) => {
                if let Some(t) = &terminal_seen {
                    cx.error(
                        &filter.path,
                        format!("{RBAC_FILTER} must come before the terminal filter at {t}"),
                    );
                } else if chain.rbac.is_some() {
                    cx.error(&filter.path, format!("{RBAC_FILTER} may appear only once"));
                } else {
                    chain.rbac = Some((filter.path.clone(), plan));
                }
            }
            Some(Filter::Terminal(terminal)) => {
                let terminal = *terminal;
                chain.has_reverse_tunnel |= matches!(terminal, Terminal::ReverseTunnel(_));
                if let Some(t) = &terminal_seen {
                    cx.error(
                        &filter.path,
                        format!(
                            "a filter chain has one terminal filter; there is already one at {t}"
                        ),
                    );
                } else {
                    // A filter after it, if any, reports the misplacement.
                    chain.terminal = Some(terminal);
                }
                terminal_seen.get_or_insert_with(|| filter.path.clone());
            }
            Some(Filter::Invalid {
                terminal: true,
                reverse_tunnel,
            }) => {
                chain.has_reverse_tunnel |= reverse_tunnel;
                terminal_seen.get_or_insert_with(|| filter.path.clone());
            }
            Some(Filter::Invalid {
                terminal: false, ..
            })
            | None => {}
        }
    }
    if terminal_seen.is_none() {
        cx.error(&node.path.key("filters"), "a filter chain needs a terminal filter (envoy.filters.network.tcp_proxy or envoy.filters.network.reverse_tunnel)");
    }
    Some(chain)
}

/// A filter as read.
enum Filter {
    ConnectionLimit(super::super::plan::ConnectionLimitPlan),
    Rbac(super::super::plan::RbacPlan),
    Terminal(Box<Terminal>),
    /// A filter with errors (already recorded): whether it was a terminal filter, and whether it was
    /// the `reverse_tunnel` filter.
    Invalid {
        terminal: bool,
        reverse_tunnel: bool,
    },
}

/// One filter: `name` (a label) and `typed_config`, dispatched on its `@type`.
fn read_filter(node: &Node<'_>, cx: &mut Cx) -> Option<Filter> {
    let mut map = node.map(cx)?;
    let name = map.require(cx, "name").and_then(|n| n.string(cx));
    let typed = map.require(cx, "typed_config");
    map.finish(cx);
    let _ = name;
    let mut typed = typed_config(&typed?, cx)?;
    let typed_path = typed.map.path().clone();
    let filter = if typed.message == message_name(TCP_PROXY_TYPE) {
        match filters::read_tcp_proxy(&mut typed.map, cx) {
            Some(plan) => Filter::Terminal(Box::new(Terminal::TcpProxy(typed_path, plan))),
            None => Filter::Invalid {
                terminal: true,
                reverse_tunnel: false,
            },
        }
    } else if typed.message == message_name(REVERSE_TUNNEL_TYPE) {
        match filters::read_reverse_tunnel(&mut typed.map, cx) {
            Some(settings) => Filter::Terminal(Box::new(Terminal::ReverseTunnel(Box::new(
                RawReverseTunnel {
                    path: node.path.clone(),
                    typed_path,
                    settings,
                },
            )))),
            None => Filter::Invalid {
                terminal: true,
                reverse_tunnel: true,
            },
        }
    } else if typed.message == message_name(CONNECTION_LIMIT_TYPE) {
        match filters::read_connection_limit(&mut typed.map, cx) {
            Some(plan) => Filter::ConnectionLimit(plan),
            None => Filter::Invalid {
                terminal: false,
                reverse_tunnel: false,
            },
        }
    } else if typed.message == message_name(RBAC_TYPE) {
        match rbac::read_rbac(&mut typed.map, cx) {
            Some(plan) => Filter::Rbac(plan),
            None => Filter::Invalid {
                terminal: false,
                reverse_tunnel: false,
            },
        }
    } else {
        cx.error(
            &typed.type_path,
            format!(
                "unsupported filter type {:?}; supported: {TCP_PROXY_FILTER} ({TCP_PROXY_TYPE}), {REVERSE_TUNNEL_FILTER} ({REVERSE_TUNNEL_TYPE}), {CONNECTION_LIMIT_FILTER} ({CONNECTION_LIMIT_TYPE}), {RBAC_FILTER} ({RBAC_TYPE})",
                typed.message
            ),
        );
        // Unknown filters are usually terminal ones (http_connection_manager …): do not also report a
        // missing terminal filter.
        Filter::Invalid {
            terminal: true,
            reverse_tunnel: false,
        }
    };
    Some(filter)
}
