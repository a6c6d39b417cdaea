//! The Envoy-style bootstrap configuration model (feature `config`): [`parse`] reads a YAML `&str` into
//! a typed [`Bootstrap`] plan, or returns **every** problem found, each with its field path.
//!
//! No I/O: the program reads the file (and any token or certificate files the plan names).
//!
//! ```
//! use revtun_core::config::parse;
//!
//! let yaml = r#"
//! bootstrap_extensions:
//! - name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
//!   typed_config:
//!     "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
//!     stat_prefix: downstream_rc
//! static_resources:
//!   listeners:
//!   - name: reverse_listener
//!     address:
//!       socket_address: { address: "rc://node-1:edge:tenant-a@upstream:0", port_value: 0 }
//!     filter_chains:
//!     - filters:
//!       - name: envoy.filters.network.tcp_proxy
//!         typed_config:
//!           "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
//!           stat_prefix: tcp
//!           cluster: local-service
//! "#;
//! let errors = parse(yaml).unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "static_resources.listeners[0].address.socket_address.address: \
//!      Connection count 0 is outside the supported range [1, 1024]\n\
//!      static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: \
//!      cluster 'local-service' is not defined in static_resources.clusters"
//! );
//! ```
//!
//! # The supported subset
//! Field names are Envoy's (the v3 protos of the reverse tunnel extensions, listeners, clusters and TLS
//! contexts); revtun's own fields sit in the same `typed_config` as the Envoy fields they belong with.
//! Anything else is an error naming its path, never silently ignored. Enum values (`STATIC`, `V4_ONLY`,
//! `CLUSTER_PROVIDED`, `POST`, …) are matched case-insensitively. `typed_config`s are recognised by their
//! `@type` (as Envoy does); `name`s are labels.
//!
//! | where | fields |
//! |---|---|
//! | top level | `admin.address.socket_address`, `bootstrap_extensions`, `static_resources.{listeners, clusters}`; revtun: `admin.source_allow` (CIDR strings) |
//! | downstream extension | `stat_prefix`, `enable_detailed_stats` (accepted), `http_handshake.{request_path, additional_headers[].header.{key, value}, use_http_upgrade}`, `max_reconnect_backoff` (≥ 1 s); revtun: `http_handshake.{request_method, bearer_token_file}`, `idle_timeout`, `max_tunnels_per_host`, `handshake_timeout`, `offer_claim_marker` |
//! | upstream extension | `stat_prefix`, `ping_failure_threshold` (≥ 1), `enable_detailed_stats` (accepted), `enable_tenant_isolation`, `max_connections_per_node`; revtun: `retry_after`, `claim_timeout`, `max_pending_handshakes`, `max_pending_handshakes_per_ip` |
//! | listener | `name`, `address.socket_address.{address, port_value, protocol: TCP, resolver_name}` (`rc://` or an IP literal), `additional_addresses[].address.socket_address`, one `filter_chains[]` entry with `filters` and `transport_socket` (`DownstreamTlsContext`) |
//! | `tcp_proxy` filter | `stat_prefix`, `cluster`, `idle_timeout` (default 1 h, `0s` = none) |
//! | `reverse_tunnel` filter | `ping_interval` ([1 ms, 300 s]), `auto_close_connections` (false only), `request_path`, `request_method`, `validation.{node,cluster,tenant}_id_format` (constants), `required_cluster_name`, `use_http_upgrade`, `skip_rebalancing` and `enable_connection_limit` (accepted); revtun: `handshake_timeout`, `require_tenant`, `accept_claim_marker`, `bearer_token_file`, `allowed_{node,cluster,tenant}_ids` (exact, `prefix*`, `*suffix`, `*`), `certificate_identity.{uri_san, dns_san}` (templates with `{node}`, `{cluster}`, `{tenant}`), `bind_node_id_to_certificate` (= both templates `{node}`) |
//! | `connection_limit` filter | `stat_prefix`, `max_connections`, `delay` |
//! | `rbac` filter (front doors only) | `stat_prefix`, `rules.action` (`ALLOW`), `rules.policies.<name>.permissions` (`[{any: true}]`), `rules.policies.<name>.principals[]` (`direct_remote_ip`, `remote_ip`, `source_ip`: `{address_prefix, prefix_len}`; or `any: true`), `enforcement_type` (accepted) |
//! | cluster | `name`, `type` (STATIC, STRICT_DNS, LOGICAL_DNS), `connect_timeout`, `lb_policy`, `dns_lookup_family` (AUTO, V4_ONLY, V6_ONLY, ALL), `dns_refresh_rate`, `load_assignment.{cluster_name, endpoints[].lb_endpoints[].endpoint.address.socket_address}`, `transport_socket` (`UpstreamTlsContext`), `cluster_type` (`envoy.clusters.reverse_connection` with `host_id_format`, `tenant_id_format`, `cleanup_interval`) |
//! | TLS contexts | `common_tls_context.{tls_certificates[].{certificate_chain, private_key}, validation_context.trusted_ca}` (each a `filename` or `inline_string`), `require_client_certificate` (downstream), `sni` (upstream) |
//!
//! Durations are `"2s"`, `"0.5s"` (proto-JSON), `"100ms"` (revtun) or `{seconds, nanos}`; integers may
//! be numbers or decimal strings; `null` means "not set"; YAML anchors, aliases and `<<` merge keys work.
//!
//! # What a listener is
//! - an **`rc://` listener** (main address `rc://…`, port 0; additional addresses `rc://` too) with a
//!   `tcp_proxy` to a local service cluster: an initiator ([`RcListenerPlan`]);
//! - a **handshake listener**: a socket address and the `reverse_tunnel` filter ([`HandshakeListenerPlan`]);
//! - a **front door**: a socket address and a `tcp_proxy` to a reverse-connection cluster
//!   ([`FrontDoorPlan`]). revtun is not a general TCP proxy: a socket listener's `tcp_proxy` to an
//!   ordinary cluster is an error.
//!
//! # Decisions where DESIGN.md is silent
//! - One filter chain per listener (there is no `filter_chain_match`); `connection_limit` may precede the
//!   terminal filter (`tcp_proxy` or `reverse_tunnel`), which must be last.
//! - All `reverse_tunnel` filters of a file must have the same settings: the process has one tunnel pool,
//!   i.e. one [`Responder`](crate::responder::Responder).
//! - An `rc://` listener's `connect_timeout` is the largest of its target clusters'.
//! - Bind ports may be 0 (any free port); endpoint ports must be in `[1, 65535]`; two listeners (or a
//!   listener and admin) may not bind the same address.
//! - A front door needs a handshake listener in the same file; a reverse-connection cluster needs the
//!   upstream extension (Envoy's error), and a `tenant_id_format` under tenant isolation.
//! - Errors come in the order found (top-level fields, extensions, listeners, clusters, then the checks
//!   across sections); each distinct `path: message` once. YAML syntax errors have the path
//!   [`DOCUMENT_PATH`] and stop there.
//! - An empty document is a valid, empty [`Bootstrap`].

mod duration;
mod error;
mod error_paths;
mod names;
mod plan;
mod raw;
mod read;
mod validate;
mod yaml;

pub use duration::{DurationError, MAX_DURATION_SECS, parse_duration};
pub use error::{ConfigError, ConfigErrors, DOCUMENT_PATH};
pub use names::*;
pub use plan::{
    AuthPlan, Bootstrap, ClusterKind, ClusterPlan, ConnectionLimitPlan, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DNS_REFRESH_RATE, DEFAULT_TCP_PROXY_IDLE_TIMEOUT, DataSource, DnsLookupFamily,
    DownstreamTlsPlan, Endpoint, FrontDoorPlan, HandshakeListenerPlan, InitiatorPlan, RbacPlan,
    RcListenerPlan, ResponderPlan, TcpProxyPlan, TlsCertificatePlan, UpstreamTlsPlan,
};

use yaml::{Cx, Node};

/// Parses an Envoy-style bootstrap YAML document into a [`Bootstrap`] plan.
///
/// # Errors
/// Every problem found, each with its field path (see [`ConfigErrors`]).
pub fn parse(yaml: &str) -> Result<Bootstrap, ConfigErrors> {
    let mut cx = Cx::default();
    let mut value: serde_norway::Value = match serde_norway::from_str(yaml) {
        Ok(value) => value,
        Err(e) => {
            cx.error_at(DOCUMENT_PATH, syntax_message(&e));
            return Err(cx.finish().err().unwrap_or_default());
        }
    };
    if let Err(e) = value.apply_merge() {
        cx.error_at(DOCUMENT_PATH, syntax_message(&e));
        return Err(cx.finish().err().unwrap_or_default());
    }
    let raw = read::read_bootstrap(&Node::root(&value), &mut cx);
    let plan = validate::build(&raw, &mut cx);
    cx.finish().map(|()| plan)
}

/// A YAML error's text, with its position when the text does not already say it.
fn syntax_message(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(at) if !text.contains(" at line ") => {
            format!("{text} at line {} column {}", at.line(), at.column())
        }
        _ => text,
    }
}
