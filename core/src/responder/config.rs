//! The responder's settings ([`ResponderConfig`]) and the errors of checking them.

use std::time::Duration;

use crate::handshake::{HeadLimits, HeaderError, RequestPolicy, validate_method, validate_path};
use crate::keepalive::KeepaliveConfig;

/// Default handshake deadline: a handshake not complete within it is closed silently (`timeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a claim waits for an idle tunnel before it expires.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on handshakes in progress on the whole listener.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;
/// Default cap on handshakes in progress from one source IP address.
///
/// 64 lets a legitimate initiator behind one NAT address (a few nodes with `count` up to 16 each, all
/// reconnecting at once after an outage) handshake in parallel, while one flooding address can hold at
/// most 1/16 of the total cap.
pub const DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP: usize = 64;
/// Default statistics prefix of the responder's gauges (the seed's names).
pub const DEFAULT_STAT_PREFIX: &str = "reverse_connections";

/// What the responder accepts and how it keeps its tunnels (DESIGN.md, "Responder behaviour").
///
/// [`Default`] gives DESIGN.md's defaults. [`Responder::new`](super::Responder::new) checks it with
/// [`validate`](Self::validate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Method, path, upgrade mode, tenant rules, required cluster name, claim-marker support: rows 1–7
    /// of the check table and the success bytes.
    pub policy: RequestPolicy,
    /// Size limits of a handshake head (row 0).
    pub head_limits: HeadLimits,
    /// Ping interval and failure threshold of idle tunnels.
    pub keepalive: KeepaliveConfig,
    /// A handshake not complete within this is closed silently (default 10 s; must be > 0).
    pub handshake_timeout: Duration,
    /// How long a claim waits for a tunnel before [`ResponderEvent::ClaimExpired`](super::ResponderEvent)
    /// (default 5 s; 0 means "only what is idle right now").
    pub claim_timeout: Duration,
    /// Per-node cap on live tunnels (idle, being claimed, in use), tenant-scoped under isolation
    /// (`max_connections_per_node`); `None` = no cap; `Some(0)` is invalid.
    pub max_tunnels_per_node: Option<u32>,
    /// `retry-after` of the 429 (row 9), written as whole seconds rounded up, at least 1; `None` = no
    /// header.
    pub retry_after: Option<Duration>,
    /// Cap on handshakes in progress (default 1024; must be > 0). At the cap the oldest is closed.
    pub max_pending_handshakes: usize,
    /// Cap on handshakes in progress per source IP address (default
    /// [`DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP`]; must be > 0). At the cap that address's oldest is
    /// closed.
    pub max_pending_handshakes_per_ip: usize,
    /// Prefix of the tunnel gauges (default `reverse_connections`); the handshake counters are always
    /// `reverse_tunnel.handshake.*`.
    pub stat_prefix: String,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            policy: RequestPolicy::default(),
            head_limits: HeadLimits::default(),
            keepalive: KeepaliveConfig::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            max_tunnels_per_node: None,
            retry_after: None,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            max_pending_handshakes_per_ip: DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP,
            stat_prefix: DEFAULT_STAT_PREFIX.to_owned(),
        }
    }
}

impl ResponderConfig {
    /// Checks the settings that would make the machine useless or ill-defined.
    ///
    /// # Errors
    /// The first problem found, in field order.
    pub fn validate(&self) -> Result<(), ResponderConfigError> {
        validate_method(&self.policy.method)?;
        validate_path(&self.policy.path)?;
        if self.head_limits.max_head_bytes == 0 || self.head_limits.max_headers == 0 {
            return Err(ResponderConfigError::ZeroHeadLimit);
        }
        if self.handshake_timeout.is_zero() {
            return Err(ResponderConfigError::ZeroHandshakeTimeout);
        }
        if self.max_tunnels_per_node == Some(0) {
            return Err(ResponderConfigError::ZeroTunnelCap);
        }
        if self.max_pending_handshakes == 0 || self.max_pending_handshakes_per_ip == 0 {
            return Err(ResponderConfigError::ZeroPendingCap);
        }
        if self.stat_prefix.is_empty() {
            return Err(ResponderConfigError::EmptyStatPrefix);
        }
        Ok(())
    }

    /// The `retry-after` seconds of the 429: [`retry_after`](Self::retry_after) rounded up to whole
    /// seconds, at least 1 (a `retry-after: 0` would be ignored by an initiator).
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let whole = d.as_secs();
            let up = if d.subsec_nanos() > 0 {
                whole.saturating_add(1)
            } else {
                whole
            };
            up.max(1)
        })
    }
}

/// A [`ResponderConfig`] that [`Responder::new`](super::Responder::new) refuses.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponderConfigError {
    /// The request method or path cannot appear in a request line.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// `max_head_bytes` or `max_headers` is 0: no request could ever be read.
    #[error("handshake head limits must be greater than 0")]
    ZeroHeadLimit,
    /// `handshake_timeout` is 0: every handshake would time out at once.
    #[error("handshake_timeout must be greater than 0")]
    ZeroHandshakeTimeout,
    /// `max_tunnels_per_node` is `Some(0)`: every handshake would be refused (use `None` for no cap).
    #[error("max_tunnels_per_node must be greater than 0 (unset means no cap)")]
    ZeroTunnelCap,
    /// A pending-handshake cap is 0: no handshake could ever be pending.
    #[error("pending-handshake caps must be greater than 0")]
    ZeroPendingCap,
    /// `stat_prefix` is empty.
    #[error("stat_prefix must not be empty")]
    EmptyStatPrefix,
}
