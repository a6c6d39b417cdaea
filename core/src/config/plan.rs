//! The typed result of [`parse`](super::parse): plain data, `Clone`, no global state, so a runtime can
//! build a new plan from a changed file (or, later, from CDS) and swap it in while running.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::address::RcAddress;
use crate::initiator::InitiatorConfig;
use crate::policy::{AllowList, CertificateIdentity, Policy, SharedTokens, SourceAllowList};
use crate::responder::ResponderConfig;

/// A whole bootstrap file: what to listen on, what to dial, and the state machines' configurations.
///
/// One process may be initiator, responder, both or (an empty file) neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// `admin.address.socket_address`: where the admin endpoint (`/stats`, `/ready`, …) listens.
    pub admin: Option<SocketAddr>,
    /// revtun `admin.source_allow`: CIDR ranges allowed to reach the admin endpoint; `None` = all.
    pub admin_source_allow: Option<SourceAllowList>,
    /// The initiator side: present when the file has `rc://` listeners.
    pub initiator: Option<InitiatorPlan>,
    /// The responder side: present when the file has listeners with the
    /// `envoy.filters.network.reverse_tunnel` filter.
    pub responder: Option<ResponderPlan>,
    /// TCP listeners whose `tcp_proxy` cluster is a reverse-connection cluster: each accepted client
    /// claims a tunnel and is relayed through it. In file order.
    pub front_doors: Vec<FrontDoorPlan>,
    /// Every cluster of `static_resources.clusters`, by name.
    pub clusters: BTreeMap<String, ClusterPlan>,
}

/// The initiator side of a bootstrap: one entry per `rc://` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorPlan {
    /// The `rc://` listeners, in file order. Each one is an independent initiator (its own identity,
    /// targets and pools).
    pub listeners: Vec<RcListenerPlan>,
    /// revtun `http_handshake.bearer_token_file` of the downstream extension: a file whose contents
    /// (surrounding whitespace trimmed) the program sends as `authorization: Bearer <token>`. The core does
    /// no I/O, so the program reads it, appends the header to every listener's
    /// [`InitiatorConfig::extra_headers`] and validates the config again; it re-reads the file on change
    /// and gives each listener the new header (`Initiator::set_extra_headers`).
    pub bearer_token_file: Option<String>,
}

/// One `rc://` listener: the tunnels it keeps and where claimed tunnels go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcListenerPlan {
    /// The listener's `name`.
    pub name: String,
    /// The listener's `rc://` addresses: the main one, then `additional_addresses`, in file order.
    pub addresses: Vec<RcAddress>,
    /// A ready, validated [`InitiatorConfig`]: identity and targets from [`addresses`](Self::addresses),
    /// everything else from the downstream extension. Its `connect_timeout` is the largest
    /// `connect_timeout` of the target clusters ([`ClusterPlan::connect_timeout`] has each one).
    pub config: InitiatorConfig,
    /// The `tcp_proxy` filter: the local service cluster a claimed tunnel is relayed to.
    pub tcp_proxy: TcpProxyPlan,
    /// The optional `connection_limit` filter (caps concurrent claimed tunnels being relayed).
    pub connection_limit: Option<ConnectionLimitPlan>,
    /// Data-leg TLS: the filter chain's `DownstreamTlsContext`. Inside a claimed tunnel the initiator is
    /// the TLS server.
    pub data_tls: Option<DownstreamTlsPlan>,
}

/// The responder side of a bootstrap: one tunnel pool for the whole process, fed by every listener with
/// the `reverse_tunnel` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderPlan {
    /// A ready, validated [`ResponderConfig`]: pool settings from the upstream extension, handshake and
    /// keepalive settings from the `reverse_tunnel` filter (all handshake listeners' filters must agree).
    pub config: ResponderConfig,
    /// Who may register tunnels (rows 8 and 10 of the check table), for the program's
    /// [`Authorizer`](crate::responder::Authorizer).
    pub auth: AuthPlan,
    /// The handshake listeners, in file order.
    pub listeners: Vec<HandshakeListenerPlan>,
}

/// A listener that accepts initiators' handshakes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeListenerPlan {
    /// The listener's `name`.
    pub name: String,
    /// Where to listen: `address`, then `additional_addresses`.
    pub binds: Vec<SocketAddr>,
    /// Tunnel TLS: the filter chain's `DownstreamTlsContext`, kept for the tunnel's whole life.
    pub tunnel_tls: Option<DownstreamTlsPlan>,
    /// The optional `connection_limit` filter (caps concurrent connections on this listener).
    pub connection_limit: Option<ConnectionLimitPlan>,
}

/// The responder's authentication and authorization settings, from the `reverse_tunnel` filter. Empty
/// lists allow every value. [`policy`](Self::policy) turns it into the core's
/// [`Policy`](crate::policy::Policy) once the token file has been read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthPlan {
    /// revtun `bearer_token_file`: a file of tokens (one per line, `#` comments) initiators must send one
    /// of as `authorization: Bearer <token>` (401 otherwise). The driver reads it and re-reads it when it
    /// changes.
    pub bearer_token_file: Option<String>,
    /// Node id patterns allowed to register (403 otherwise): Envoy's `validation.node_id_format` (a
    /// constant) or revtun `allowed_node_ids` (exact, `prefix*`, `*suffix`, `*`; checked when read).
    pub allowed_node_ids: Vec<String>,
    /// Cluster id patterns allowed: `validation.cluster_id_format` or revtun `allowed_cluster_ids`.
    pub allowed_cluster_ids: Vec<String>,
    /// Tenant id patterns allowed: `validation.tenant_id_format` or revtun `allowed_tenant_ids`.
    pub allowed_tenant_ids: Vec<String>,
    /// revtun `certificate_identity` (or `bind_node_id_to_certificate: true`, which means a URI or DNS
    /// SAN equal to the node id): the SANs the verified client certificate must have for the handshake's
    /// ids (no certificate → 401, no match → 403). The handshake listeners then require client
    /// certificates.
    pub certificate_identity: Option<CertificateIdentity>,
}

impl AuthPlan {
    /// The core's [`Policy`] for this plan, with `tokens` (the token file's set, read by the caller) when
    /// [`bearer_token_file`](Self::bearer_token_file) is set. Patterns were checked when the file was
    /// read; an invalid one (a hand-built plan) is an error naming the list.
    ///
    /// # Errors
    /// The list and the invalid pattern.
    pub fn policy(&self, tokens: Option<SharedTokens>) -> Result<Policy, String> {
        let list = |name: &str, ids: &[String]| {
            AllowList::parse(ids).map_err(|(i, e)| format!("{name}[{i}]: {e}"))
        };
        Ok(Policy {
            tokens,
            certificate: self.certificate_identity.clone(),
            nodes: list("allowed_node_ids", &self.allowed_node_ids)?,
            clusters: list("allowed_cluster_ids", &self.allowed_cluster_ids)?,
            tenants: list("allowed_tenant_ids", &self.allowed_tenant_ids)?,
        })
    }
}

/// A TCP listener in front of a reverse-connection cluster: each client connection claims a tunnel for
/// [`claim_id`](Self::claim_id) and is relayed through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontDoorPlan {
    /// The listener's `name`.
    pub name: String,
    /// Where to listen: `address`, then `additional_addresses`.
    pub binds: Vec<SocketAddr>,
    /// The reverse-connection cluster named by the `tcp_proxy`.
    pub cluster: String,
    /// The id to claim (the cluster's `host_id_format`): tried as an initiator cluster id, then as a
    /// node id.
    pub claim_id: String,
    /// The tenant of the claim (the cluster's `tenant_id_format`), required under tenant isolation.
    pub tenant: Option<String>,
    /// The `tcp_proxy` filter (its `idle_timeout` applies to the relay).
    pub tcp_proxy: TcpProxyPlan,
    /// The optional `connection_limit` filter.
    pub connection_limit: Option<ConnectionLimitPlan>,
    /// TLS between clients and this listener: the filter chain's `DownstreamTlsContext`.
    pub listener_tls: Option<DownstreamTlsPlan>,
    /// The `envoy.filters.network.rbac` filter: only clients from its source ranges may claim a tunnel;
    /// others are closed at once. `None` = every client.
    pub rbac: Option<RbacPlan>,
    /// Data-leg TLS: the reverse-connection cluster's `UpstreamTlsContext`. Inside a claimed tunnel the
    /// responder is the TLS client.
    pub data_tls: Option<UpstreamTlsPlan>,
}

/// Default `tcp_proxy` `idle_timeout` (Envoy's): one hour.
pub const DEFAULT_TCP_PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// An `envoy.filters.network.rbac` filter in the one shape revtun runs: `rules.action: ALLOW`, policies
/// whose `permissions` are `[{any: true}]` and whose `principals` are source ranges
/// (`direct_remote_ip`, `remote_ip`, `source_ip`: the same address here, as revtun reads no PROXY
/// protocol) or `{any: true}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacPlan {
    /// `stat_prefix` (required, as in Envoy): the program counts `<stat_prefix>.rbac.allowed` and
    /// `<stat_prefix>.rbac.denied`.
    pub stat_prefix: String,
    /// Every principal's range, across all policies: a client in any of them is allowed.
    pub sources: SourceAllowList,
}

/// An `envoy.filters.network.tcp_proxy` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProxyPlan {
    /// `stat_prefix` (required, as in Envoy).
    pub stat_prefix: String,
    /// `cluster`: where connections are relayed.
    pub cluster: String,
    /// `idle_timeout`: a relay with no bytes in either direction for this long is closed. Default
    /// [`DEFAULT_TCP_PROXY_IDLE_TIMEOUT`]; `None` when the file sets `0s` (disabled, as in Envoy).
    pub idle_timeout: Option<Duration>,
}

/// An `envoy.filters.network.connection_limit` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimitPlan {
    /// `stat_prefix` (required, as in Envoy).
    pub stat_prefix: String,
    /// `max_connections`: concurrent connections allowed on the listener (at least 1).
    pub max_connections: u64,
    /// `delay`: how long to wait before closing a connection over the limit (`None` = close at once).
    pub delay: Option<Duration>,
}

/// Default cluster `connect_timeout` (Envoy's): five seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cluster `dns_refresh_rate` (Envoy's): five seconds.
pub const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_secs(5);

/// One cluster of `static_resources.clusters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPlan {
    /// How its hosts are found.
    pub kind: ClusterKind,
    /// `load_assignment.endpoints[].lb_endpoints[].endpoint.address.socket_address`, in file order:
    /// IP literals for STATIC, names or IP literals for the DNS kinds, exactly one for LOGICAL_DNS, none
    /// for a reverse-connection cluster.
    pub endpoints: Vec<Endpoint>,
    /// `dns_lookup_family` (default AUTO); used by the DNS kinds.
    pub dns_lookup_family: DnsLookupFamily,
    /// `dns_refresh_rate` (default [`DEFAULT_DNS_REFRESH_RATE`]); used by the DNS kinds.
    pub dns_refresh_rate: Duration,
    /// `connect_timeout` (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// `transport_socket`: the `UpstreamTlsContext` used when dialling this cluster: tunnel TLS on an
    /// initiator's target cluster, data-leg TLS on a reverse-connection cluster, TLS to the local service
    /// otherwise.
    pub tls: Option<UpstreamTlsPlan>,
}

/// How a cluster's hosts are found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterKind {
    /// `type: STATIC`: the endpoints are IP literals.
    Static,
    /// `type: STRICT_DNS`: every address of every endpoint's name is a host.
    StrictDns,
    /// `type: LOGICAL_DNS`: the first address of the single endpoint's name is the host.
    LogicalDns,
    /// `cluster_type: envoy.clusters.reverse_connection`: the hosts are tunnels in the responder's pool.
    ReverseConnection {
        /// `host_id_format`: the constant node or cluster id to claim.
        host_id: String,
        /// `tenant_id_format`: the constant tenant of the claim (required under tenant isolation).
        tenant: Option<String>,
    },
}

/// `dns_lookup_family`: which addresses a DNS name resolves to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DnsLookupFamily {
    /// IPv6 addresses if there are any, else IPv4 (Envoy's default).
    #[default]
    Auto,
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
    /// Both families.
    All,
}

/// One endpoint of a cluster: a host (IP literal or DNS name) and a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// `socket_address.address`: an IP literal or, for the DNS kinds, a name.
    pub host: String,
    /// `socket_address.port_value`, in `[1, 65535]`.
    pub port: u16,
}

impl Endpoint {
    /// The socket address, if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, with an IPv6 literal in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket_addr() {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Where a certificate, key or CA bundle comes from (Envoy's `DataSource`). The core does no I/O: the
/// program reads files.
#[derive(Clone, PartialEq, Eq)]
pub enum DataSource {
    /// `filename`: a path to read.
    Filename(String),
    /// `inline_string`: the PEM text itself.
    InlineString(String),
}

impl fmt::Debug for DataSource {
    /// Inline text may be a private key: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Filename(path) => f.debug_tuple("Filename").field(path).finish(),
            DataSource::InlineString(text) => {
                write!(f, "InlineString(<{} bytes>)", text.len())
            }
        }
    }
}

/// A certificate chain and its private key (`tls_certificates[0]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsCertificatePlan {
    /// `certificate_chain`: PEM certificates, leaf first.
    pub certificate_chain: DataSource,
    /// `private_key`: the PEM private key.
    pub private_key: DataSource,
}

/// A `DownstreamTlsContext` (`envoy.transport_sockets.tls` on a listener): this side is the TLS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownstreamTlsPlan {
    /// `common_tls_context.tls_certificates[0]`: the server certificate (exactly one).
    pub certificate: TlsCertificatePlan,
    /// `common_tls_context.validation_context.trusted_ca`: CAs that client certificates must chain to.
    pub trusted_ca: Option<DataSource>,
    /// `require_client_certificate` (needs `trusted_ca`).
    pub require_client_certificate: bool,
}

/// An `UpstreamTlsContext` (`envoy.transport_sockets.tls` on a cluster): this side is the TLS client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTlsPlan {
    /// `common_tls_context.tls_certificates[0]`: the client certificate, if any (at most one).
    pub certificate: Option<TlsCertificatePlan>,
    /// `common_tls_context.validation_context.trusted_ca`: CAs the server certificate must chain to.
    pub trusted_ca: Option<DataSource>,
    /// `sni`: the server name to send and verify.
    pub sni: Option<String>,
}
