//! What reading a file yields before the checks across sections: each section typed, with the paths
//! that later errors point at. Fields a read error made unusable are `None`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::address::RcAddress;
use crate::initiator::InitiatorConfig;
use crate::policy::SourceAllowList;
use crate::responder::ResponderConfig;

use super::plan::{
    AuthPlan, ClusterPlan, ConnectionLimitPlan, DownstreamTlsPlan, RbacPlan, TcpProxyPlan,
};
use super::yaml::Path;

/// The whole file, read.
#[derive(Debug, Default)]
pub(crate) struct RawBootstrap {
    pub(crate) admin: Option<(Path, SocketAddr)>,
    /// revtun `admin.source_allow`.
    pub(crate) admin_source_allow: Option<SourceAllowList>,
    /// The downstream extension is configured (`downstream` is `None` if it has errors).
    pub(crate) has_downstream: bool,
    pub(crate) downstream: Option<DownstreamExt>,
    /// The upstream extension is configured (`upstream` is `None` if it has errors).
    pub(crate) has_upstream: bool,
    pub(crate) upstream: Option<UpstreamExt>,
    pub(crate) listeners: Vec<RawListener>,
    pub(crate) clusters: Vec<RawCluster>,
}

/// The downstream (initiator) extension.
#[derive(Debug)]
pub(crate) struct DownstreamExt {
    /// Path of its `typed_config`.
    pub(crate) path: Path,
    /// Every setting except identity, targets and `connect_timeout` (which come from listeners and
    /// clusters).
    pub(crate) template: InitiatorConfig,
    /// revtun `http_handshake.bearer_token_file`.
    pub(crate) bearer_token_file: Option<String>,
}

/// The upstream (responder) extension.
#[derive(Debug)]
pub(crate) struct UpstreamExt {
    /// Path of its `typed_config`.
    pub(crate) path: Path,
    /// Pool settings; the policy and keepalive interval come from the `reverse_tunnel` filter.
    pub(crate) base: ResponderConfig,
}

/// One listener.
#[derive(Debug)]
pub(crate) struct RawListener {
    pub(crate) path: Path,
    pub(crate) name: Option<String>,
    /// The main address first, then `additional_addresses`.
    pub(crate) addresses: Vec<RawAddress>,
    pub(crate) chain: Option<RawChain>,
}

/// One listener address.
#[derive(Debug)]
pub(crate) struct RawAddress {
    /// Path of the `socket_address`.
    pub(crate) path: Path,
    /// The address started with `rc://` (whether or not it parsed).
    pub(crate) is_rc: bool,
    /// The parsed address, if it was valid.
    pub(crate) value: Option<ListenAddress>,
}

/// A parsed listener address.
#[derive(Debug, Clone)]
pub(crate) enum ListenAddress {
    /// An IP address and port to bind.
    Socket(SocketAddr),
    /// A reverse-connection address.
    Rc(RcAddress),
}

/// A listener's filter chain.
#[derive(Debug)]
pub(crate) struct RawChain {
    pub(crate) tls: Option<(Path, DownstreamTlsPlan)>,
    pub(crate) connection_limit: Option<ConnectionLimitPlan>,
    /// The `rbac` filter and its path (the list element).
    pub(crate) rbac: Option<(Path, RbacPlan)>,
    pub(crate) terminal: Option<Terminal>,
    /// The chain has a `reverse_tunnel` filter, valid or not.
    pub(crate) has_reverse_tunnel: bool,
}

/// The filter that ends a chain.
#[derive(Debug)]
pub(crate) enum Terminal {
    /// `envoy.filters.network.tcp_proxy`; the path is its `typed_config`.
    TcpProxy(Path, TcpProxyPlan),
    /// `envoy.filters.network.reverse_tunnel`.
    ReverseTunnel(Box<RawReverseTunnel>),
}

/// A `reverse_tunnel` filter.
#[derive(Debug)]
pub(crate) struct RawReverseTunnel {
    /// Path of the filter (the list element).
    pub(crate) path: Path,
    /// Path of its `typed_config`.
    pub(crate) typed_path: Path,
    pub(crate) settings: FilterSettings,
}

/// The handshake listener's settings from the `reverse_tunnel` filter, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterSettings {
    pub(crate) ping_interval: Duration,
    pub(crate) request_path: String,
    pub(crate) request_method: String,
    pub(crate) required_cluster_name: Option<String>,
    pub(crate) use_http_upgrade: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) require_tenant: bool,
    pub(crate) accept_claim_marker: bool,
    pub(crate) auth: AuthPlan,
    /// The field that turned identity binding on (`certificate_identity` or
    /// `bind_node_id_to_certificate`), for the error when the listener has no client certificates.
    pub(crate) certificate_key: Option<&'static str>,
}

impl FilterSettings {
    /// `base` (the upstream extension's settings) with this filter's settings applied.
    pub(crate) fn apply(&self, base: &ResponderConfig) -> ResponderConfig {
        let mut config = base.clone();
        config.policy.method.clone_from(&self.request_method);
        config.policy.path.clone_from(&self.request_path);
        config.policy.upgrade = self.use_http_upgrade;
        config.policy.require_tenant = self.require_tenant;
        config
            .policy
            .required_cluster_name
            .clone_from(&self.required_cluster_name);
        config.policy.claim_marker = self.accept_claim_marker;
        config.keepalive.interval = self.ping_interval;
        config.handshake_timeout = self.handshake_timeout;
        config
    }
}

/// The kind of a cluster, known even when the rest of it has errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KindTag {
    Static,
    StrictDns,
    LogicalDns,
    ReverseConnection,
}

impl KindTag {
    /// The name the file uses for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KindTag::Static => "STATIC",
            KindTag::StrictDns => "STRICT_DNS",
            KindTag::LogicalDns => "LOGICAL_DNS",
            KindTag::ReverseConnection => "envoy.clusters.reverse_connection",
        }
    }
}

/// One cluster.
#[derive(Debug)]
pub(crate) struct RawCluster {
    pub(crate) path: Path,
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<KindTag>,
    /// The plan, if the cluster had no errors.
    pub(crate) plan: Option<ClusterPlan>,
}
