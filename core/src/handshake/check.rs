//! The responder's check table (DESIGN.md, "Handshake response and the responder's checks"): rows 1–7
//! as [`check_request`], every rejection's exact bytes, and the success bytes.

use bytes::Bytes;

use super::request::{IdentityHeader, ParsedRequest};
use super::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH};

/// What the responder's handshake listener accepts (the parts of its config that [`check_request`] and
/// [`encode_accept`] need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Expected method, compared case-insensitively (`request_method`; default `GET`).
    pub method: String,
    /// Expected path, compared exactly, query string included (`request_path`).
    pub path: String,
    /// Upgrade mode (`use_http_upgrade`): require `upgrade: reverse-tunnel`, answer `101`.
    pub upgrade: bool,
    /// Reject an empty tenant id (`require_tenant`; default false).
    pub require_tenant: bool,
    /// Tenant isolation (`enable_tenant_isolation`): ids must not contain `:`.
    pub tenant_isolation: bool,
    /// When set, the upstream-cluster-name header must be present and equal to it (exactly).
    pub required_cluster_name: Option<String>,
    /// The responder supports the `RDATA` claim marker (echoes it when offered; default true).
    pub claim_marker: bool,
}

impl Default for RequestPolicy {
    /// `GET`, [`DEFAULT_REQUEST_PATH`], no upgrade, tenant optional, no isolation, no required cluster
    /// name, claim marker supported.
    fn default() -> Self {
        Self {
            method: DEFAULT_REQUEST_METHOD.to_owned(),
            path: DEFAULT_REQUEST_PATH.to_owned(),
            upgrade: false,
            require_tenant: false,
            tenant_isolation: false,
            required_cluster_name: None,
            claim_marker: true,
        }
    }
}

/// The identity an initiator claims in its handshake (first occurrence of each header).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// `x-envoy-reverse-tunnel-node-id`.
    pub node: String,
    /// `x-envoy-reverse-tunnel-cluster-id`.
    pub cluster: String,
    /// `x-envoy-reverse-tunnel-tenant-id` (may be empty unless `require_tenant`).
    pub tenant: String,
    /// `x-envoy-reverse-tunnel-upstream-cluster-name`, if sent.
    pub upstream_cluster_name: Option<String>,
}

/// Runs rows 1–7 of the check table on a parsed request, in order: body → method/path → upgrade →
/// node/cluster/tenant missing → empty tenant (when required) → `:` in node, cluster or tenant (under
/// isolation) → required cluster name missing / different.
///
/// `Ok` carries the identity to pass to authentication; rows 8–11 are decided by the responder state
/// machine, which answers them with [`Rejection`] too. A header that is present but empty counts as
/// present (as in Envoy): only row 5 looks at emptiness, and only for the tenant.
pub fn check_request(req: &ParsedRequest, policy: &RequestPolicy) -> Result<Identity, Rejection> {
    if req.has_body() {
        return Err(Rejection::BodyNotAllowed);
    }
    if !req.method().eq_ignore_ascii_case(&policy.method) || req.path() != policy.path {
        return Err(Rejection::NotReverseTunnelRequest);
    }
    if policy.upgrade && !req.has_upgrade() {
        return Err(Rejection::UpgradeRequired);
    }
    let (Some(node), Some(cluster), Some(tenant)) = (
        req.identity(IdentityHeader::Node),
        req.identity(IdentityHeader::Cluster),
        req.identity(IdentityHeader::Tenant),
    ) else {
        return Err(Rejection::MissingIdentity);
    };
    if policy.require_tenant && tenant.is_empty() {
        return Err(Rejection::EmptyTenant);
    }
    if policy.tenant_isolation && [node, cluster, tenant].iter().any(|id| id.contains(':')) {
        return Err(Rejection::ColonUnderIsolation);
    }
    let upstream_cluster_name = req.identity(IdentityHeader::UpstreamClusterName);
    if let Some(required) = &policy.required_cluster_name {
        match upstream_cluster_name {
            None => return Err(Rejection::MissingClusterName),
            Some(name) if name != required => return Err(Rejection::ClusterNameMismatch),
            Some(_) => {}
        }
    }
    Ok(Identity {
        node: node.to_owned(),
        cluster: cluster.to_owned(),
        tenant: tenant.to_owned(),
        upstream_cluster_name: upstream_cluster_name.map(str::to_owned),
    })
}

/// A handshake the responder answers with an error status (rows 1–11 of the check table), then flushes
/// and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Row 1: the request carries a body. 400.
    BodyNotAllowed,
    /// Row 2: method or path differs from the configured ones. 404, no counter.
    NotReverseTunnelRequest,
    /// Row 3: upgrade mode on and `upgrade: reverse-tunnel` missing. 426.
    UpgradeRequired,
    /// Row 4: node, cluster or tenant header missing. 400.
    MissingIdentity,
    /// Row 5: tenant empty while `require_tenant`. 400.
    EmptyTenant,
    /// Row 6: tenant isolation on and an id contains `:`. 400.
    ColonUnderIsolation,
    /// Row 7: `required_cluster_name` set and the header missing. 400.
    MissingClusterName,
    /// Row 7: `required_cluster_name` set and the header different. 400.
    ClusterNameMismatch,
    /// Row 8: credential missing or invalid. 401.
    AuthenticationFailed,
    /// Row 9: per-node tunnel cap reached. 429, with `retry-after` when configured.
    TooManyTunnels {
        /// Seconds for the `retry-after` header; `None` = no header.
        retry_after_secs: Option<u64>,
    },
    /// Row 10: identity not allowed. 403.
    NotAllowed,
    /// Row 11: the tunnel cannot be registered. 503.
    RegistrationUnavailable,
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BodyNotAllowed
            | Self::MissingIdentity
            | Self::EmptyTenant
            | Self::ColonUnderIsolation
            | Self::MissingClusterName
            | Self::ClusterNameMismatch => 400,
            Self::AuthenticationFailed => 401,
            Self::NotAllowed => 403,
            Self::NotReverseTunnelRequest => 404,
            Self::UpgradeRequired => 426,
            Self::TooManyTunnels { .. } => 429,
            Self::RegistrationUnavailable => 503,
        }
    }

    /// The standard reason phrase of [`status`](Self::status).
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            426 => "Upgrade Required",
            429 => "Too Many Requests",
            _ => "Service Unavailable",
        }
    }

    /// The `text/plain` body, exactly as in the check table.
    pub fn body(&self) -> &'static str {
        match self {
            Self::BodyNotAllowed => "Reverse tunnel handshake must not carry a body",
            Self::NotReverseTunnelRequest => "Not a reverse tunnel request",
            Self::UpgradeRequired => "Upgrade: reverse-tunnel required",
            Self::MissingIdentity => "Missing required reverse tunnel headers",
            Self::EmptyTenant => "Empty tenant-id header value",
            Self::ColonUnderIsolation => {
                "Reverse tunnel identifiers must not contain ':' when tenant isolation is enabled"
            }
            Self::MissingClusterName => "Missing upstream cluster name header",
            Self::ClusterNameMismatch => "Cluster name mismatch",
            Self::AuthenticationFailed => "Authentication failed",
            Self::TooManyTunnels { .. } => "rejected",
            Self::NotAllowed => "validation_failed",
            Self::RegistrationUnavailable => "Reverse tunnel registration unavailable",
        }
    }

    /// The counter suffix of `reverse_tunnel.handshake.<counter>` per the check table; `None` for the
    /// 404 (not a reverse-tunnel request, so not counted).
    pub fn counter(&self) -> Option<&'static str> {
        Some(match self {
            Self::BodyNotAllowed => "body_rejected",
            Self::NotReverseTunnelRequest => return None,
            Self::UpgradeRequired
            | Self::MissingIdentity
            | Self::EmptyTenant
            | Self::ColonUnderIsolation
            | Self::MissingClusterName => "parse_error",
            Self::ClusterNameMismatch | Self::NotAllowed => "validation_failed",
            Self::AuthenticationFailed => "auth_failed",
            Self::TooManyTunnels { .. } => "rejected",
            Self::RegistrationUnavailable => "registration_failed",
        })
    }

    /// The exact response bytes:
    /// `HTTP/1.1 <code> <reason>\r\n<extra>content-type: text/plain\r\ncontent-length: <n>\r\n\r\n<body>`.
    ///
    /// `<extra>` comes right after the status line: `upgrade: reverse-tunnel\r\n` for the 426, and
    /// `retry-after: <s>\r\n` for the 429 when `retry_after_secs` is set; nothing otherwise.
    pub fn encode(&self) -> Bytes {
        let extra = match self {
            Self::UpgradeRequired => format!("upgrade: {}\r\n", super::UPGRADE_PROTOCOL),
            Self::TooManyTunnels {
                retry_after_secs: Some(secs),
            } => format!("retry-after: {secs}\r\n"),
            _ => String::new(),
        };
        let body = self.body();
        Bytes::from(format!(
            "HTTP/1.1 {} {}\r\n{extra}content-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            self.status(),
            self.reason_phrase(),
            body.len(),
        ))
    }
}

/// The exact success bytes of DESIGN.md:
/// - `HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n`;
/// - with the claim marker: `HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\n`;
/// - upgrade mode: `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\r\n`;
/// - upgrade mode with the claim marker: the same with `x-revtun-features: claim-marker\r\n` after the
///   `upgrade` header.
///
/// Pass `claim_marker` = the request offered it ([`ParsedRequest::offers_claim_marker`]) and the
/// responder supports it ([`RequestPolicy::claim_marker`]).
pub fn encode_accept(upgrade: bool, claim_marker: bool) -> Bytes {
    Bytes::from_static(match (upgrade, claim_marker) {
        (false, false) => b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        (false, true) => {
            b"HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\n"
        }
        (true, false) => {
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\r\n"
        }
        (true, true) => {
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\nx-revtun-features: claim-marker\r\n\r\n"
        }
    })
}
