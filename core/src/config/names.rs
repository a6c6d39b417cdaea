//! Extension names and `@type` URLs of the supported subset, as Envoy spells them.

/// Name of the initiator's bootstrap extension.
pub const DOWNSTREAM_EXTENSION: &str = "envoy.bootstrap.reverse_tunnel.downstream_socket_interface";
/// Name of the responder's bootstrap extension.
pub const UPSTREAM_EXTENSION: &str = "envoy.bootstrap.reverse_tunnel.upstream_socket_interface";
/// `@type` of the downstream extension's `typed_config`.
pub const DOWNSTREAM_EXTENSION_TYPE: &str = "type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface";
/// `@type` of the upstream extension's `typed_config`.
pub const UPSTREAM_EXTENSION_TYPE: &str = "type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface";

/// Name of the TCP proxy filter.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// `@type` of the TCP proxy filter.
pub const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
/// Name of the responder's handshake filter.
pub const REVERSE_TUNNEL_FILTER: &str = "envoy.filters.network.reverse_tunnel";
/// `@type` of the responder's handshake filter.
pub const REVERSE_TUNNEL_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel";
/// Name of the connection limit filter.
pub const CONNECTION_LIMIT_FILTER: &str = "envoy.filters.network.connection_limit";
/// `@type` of the connection limit filter.
pub const CONNECTION_LIMIT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
/// Name of the network RBAC filter (front doors: source-address allow-list).
pub const RBAC_FILTER: &str = "envoy.filters.network.rbac";
/// `@type` of the network RBAC filter.
pub const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

/// Name of the TLS transport socket.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// `@type` of a listener's TLS context.
pub const DOWNSTREAM_TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
/// `@type` of a cluster's TLS context.
pub const UPSTREAM_TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// Name of the reverse-connection cluster type.
pub const REVERSE_CONNECTION_CLUSTER: &str = "envoy.clusters.reverse_connection";
/// `@type` of the reverse-connection cluster's `typed_config`.
pub const REVERSE_CONNECTION_CLUSTER_TYPE: &str = "type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig";

/// The only `resolver_name` accepted, and only on an `rc://` address.
pub const REVERSE_CONNECTION_RESOLVER: &str = "envoy.resolvers.reverse_connection";

/// The message name of a type URL: everything after its last `/` (Envoy ignores the host part).
pub(crate) fn message_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}
