//! The initiator's configuration: identity, target clusters, handshake settings, timeouts, caps.

use std::fmt;
use std::time::Duration;

use crate::address::{AddressError, RcAddress};
use crate::backoff::DEFAULT_MAX_BACKOFF;
use crate::handshake::{
    DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HeadLimits, HeaderError, validate_extra_header,
    validate_method, validate_path,
};

/// Envoy's cluster default `connect_timeout`: a dial not completed within it is a failed attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `handshake_timeout`: from the connected socket to the complete response head.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `idle_timeout`: an idle tunnel that received no `RPING` for this long is closed and replaced.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_tunnels_per_host`: live tunnels (dialling, handshaking, idle, in use) per host.
pub const DEFAULT_MAX_TUNNELS_PER_HOST: u32 = 256;
/// Default `stat_prefix` of the initiator's statistics.
pub const DEFAULT_STAT_PREFIX: &str = "downstream_reverse_connection";

/// One target cluster (one `rc://` address): the responder-side cluster to dial and how many idle tunnels
/// to keep per resolved host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCluster {
    /// The responder-side cluster name, sent as `x-envoy-reverse-tunnel-upstream-cluster-name`.
    pub name: String,
    /// Idle tunnels to keep per host of the cluster, in `[1, 1024]`.
    pub count: u32,
}

/// Everything the [`Initiator`](super::Initiator) needs to know, as values.
///
/// `Debug` prints the names of `extra_headers` only: their values may be credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct InitiatorConfig {
    /// The initiator's node id (`src_node`).
    pub node: String,
    /// The initiator's cluster id (`src_cluster`).
    pub cluster: String,
    /// The initiator's tenant id (`src_tenant`, may be empty).
    pub tenant: String,
    /// One entry per `rc://` address; names are distinct.
    pub targets: Vec<TargetCluster>,
    /// Handshake request path (default [`DEFAULT_REQUEST_PATH`]).
    pub request_path: String,
    /// Handshake request method (default [`DEFAULT_REQUEST_METHOD`]).
    pub request_method: String,
    /// Extra request headers (e.g. `authorization`), written in this order.
    pub extra_headers: Vec<(String, String)>,
    /// Upgrade mode: ask for `upgrade: reverse-tunnel` and expect `101`.
    pub upgrade: bool,
    /// Offer the `RDATA` claim marker (default true; Envoy ignores the offer).
    pub offer_claim_marker: bool,
    /// How long a dial may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// How long the handshake may take once connected (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// How long an idle tunnel may go without an `RPING` (default [`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Backoff cap (`max_reconnect_backoff`, default 30 s).
    pub max_reconnect_backoff: Duration,
    /// Live tunnels per host at most (default [`DEFAULT_MAX_TUNNELS_PER_HOST`]).
    pub max_tunnels_per_host: u32,
    /// Prefix of every statistic name (default [`DEFAULT_STAT_PREFIX`]).
    pub stat_prefix: String,
    /// Size limits for the handshake response head.
    pub head_limits: HeadLimits,
}

impl fmt::Debug for InitiatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("InitiatorConfig")
            .field("node", &self.node)
            .field("cluster", &self.cluster)
            .field("tenant", &self.tenant)
            .field("targets", &self.targets)
            .field("request_path", &self.request_path)
            .field("request_method", &self.request_method)
            .field("extra_header_names", &names)
            .field("upgrade", &self.upgrade)
            .field("offer_claim_marker", &self.offer_claim_marker)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_reconnect_backoff", &self.max_reconnect_backoff)
            .field("max_tunnels_per_host", &self.max_tunnels_per_host)
            .field("stat_prefix", &self.stat_prefix)
            .field("head_limits", &self.head_limits)
            .finish()
    }
}

/// An initiator configuration that cannot be used; the message names the field.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitiatorConfigError {
    /// `targets` is empty (or no `rc://` address was given).
    #[error("targets: at least one target cluster (rc:// address) is required")]
    NoTargets,
    /// The addresses of one listener disagree on the initiator's identity.
    #[error(
        "{field}: all rc:// addresses of a listener must share node, cluster and tenant ({first:?} vs {other:?})"
    )]
    MixedIdentity {
        /// `node`, `cluster` or `tenant`.
        field: &'static str,
        /// The value in the first address.
        first: String,
        /// The differing value.
        other: String,
    },
    /// Two targets name the same cluster.
    #[error("targets: target cluster {name:?} is listed twice")]
    DuplicateTarget {
        /// The repeated cluster name.
        name: String,
    },
    /// Identity or target fails the `rc://` grammar's rules (the error names the field).
    #[error("targets: target cluster {target:?}: {source}")]
    InvalidTarget {
        /// The target cluster's name as configured.
        target: String,
        /// What the grammar says.
        source: AddressError,
    },
    /// `request_method`, `request_path` or `extra_headers` cannot go into the handshake request.
    #[error("{field}: {source}")]
    Header {
        /// `request_method`, `request_path` or `extra_headers`.
        field: &'static str,
        /// What is wrong with it.
        source: HeaderError,
    },
    /// A duration, cap or limit that must be positive is zero (or `stat_prefix` is empty).
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

impl InitiatorConfig {
    /// A configuration with the given identity and targets and every other field at its default.
    /// Not validated: [`Initiator::new`](super::Initiator::new) does that.
    pub fn new(
        node: impl Into<String>,
        cluster: impl Into<String>,
        tenant: impl Into<String>,
        targets: Vec<TargetCluster>,
    ) -> Self {
        Self {
            node: node.into(),
            cluster: cluster.into(),
            tenant: tenant.into(),
            targets,
            request_path: DEFAULT_REQUEST_PATH.to_owned(),
            request_method: DEFAULT_REQUEST_METHOD.to_owned(),
            extra_headers: Vec::new(),
            upgrade: false,
            offer_claim_marker: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_reconnect_backoff: DEFAULT_MAX_BACKOFF,
            max_tunnels_per_host: DEFAULT_MAX_TUNNELS_PER_HOST,
            stat_prefix: DEFAULT_STAT_PREFIX.to_owned(),
            head_limits: HeadLimits::default(),
        }
    }

    /// From the listener's `rc://` address(es) (the main one first, then `additional_addresses`): all must
    /// share node, cluster and tenant, and their target clusters must be distinct. Other fields default.
    pub fn from_addresses(addresses: &[RcAddress]) -> Result<Self, InitiatorConfigError> {
        let first = addresses.first().ok_or(InitiatorConfigError::NoTargets)?;
        for other in addresses {
            for (field, a, b) in [
                ("node", first.node(), other.node()),
                ("cluster", first.cluster(), other.cluster()),
                ("tenant", first.tenant(), other.tenant()),
            ] {
                if a != b {
                    return Err(InitiatorConfigError::MixedIdentity {
                        field,
                        first: a.to_owned(),
                        other: b.to_owned(),
                    });
                }
            }
        }
        let targets = addresses
            .iter()
            .map(|a| TargetCluster {
                name: a.target_cluster().to_owned(),
                count: a.count(),
            })
            .collect();
        let config = Self::new(first.node(), first.cluster(), first.tenant(), targets);
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first bad one. Identity and targets follow the `rc://`
    /// grammar ([`RcAddress::new`]); method, path and extra headers the handshake encoder's checks;
    /// durations, `max_tunnels_per_host`, the head limits and `stat_prefix` must be non-zero / non-empty.
    /// `max_tunnels_per_host` below a target's `count` is allowed: the cap wins.
    pub fn validate(&self) -> Result<(), InitiatorConfigError> {
        if self.targets.is_empty() {
            return Err(InitiatorConfigError::NoTargets);
        }
        for (i, target) in self.targets.iter().enumerate() {
            RcAddress::new(
                &self.node,
                &self.cluster,
                &self.tenant,
                &target.name,
                target.count,
            )
            .map_err(|source| InitiatorConfigError::InvalidTarget {
                target: target.name.clone(),
                source,
            })?;
            if self.targets[..i].iter().any(|t| t.name == target.name) {
                return Err(InitiatorConfigError::DuplicateTarget {
                    name: target.name.clone(),
                });
            }
        }
        let header = |field| move |source| InitiatorConfigError::Header { field, source };
        validate_method(&self.request_method).map_err(header("request_method"))?;
        validate_path(&self.request_path).map_err(header("request_path"))?;
        validate_extra_headers(&self.extra_headers)?;
        let zero = |field| Err(InitiatorConfigError::Zero { field });
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("max_reconnect_backoff", self.max_reconnect_backoff),
        ] {
            if d.is_zero() {
                return zero(field);
            }
        }
        if self.max_tunnels_per_host == 0 {
            return zero("max_tunnels_per_host");
        }
        if self.head_limits.max_head_bytes == 0 {
            return zero("head_limits.max_head_bytes");
        }
        if self.head_limits.max_headers == 0 {
            return zero("head_limits.max_headers");
        }
        if self.stat_prefix.is_empty() {
            return zero("stat_prefix");
        }
        Ok(())
    }
}

/// Checks extra request headers as [`InitiatorConfig::validate`] does (each one through the handshake
/// encoder's [`validate_extra_header`]); the error names the field `extra_headers`.
pub(crate) fn validate_extra_headers(
    headers: &[(String, String)],
) -> Result<(), InitiatorConfigError> {
    for (name, value) in headers {
        validate_extra_header(name, value).map_err(|source| InitiatorConfigError::Header {
            field: "extra_headers",
            source,
        })?;
    }
    Ok(())
}
