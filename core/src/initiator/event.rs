//! What the initiator tells its driver ([`InitiatorEvent`]) and the reasons it gives.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::command::ConnId;
use crate::handshake::ResponseError;
use crate::keepalive::KeepaliveError;

/// Something the driver may want to act on or log. See the module documentation for the order.
///
/// Every event that ends an attempt says whether it counted as a failed attempt, so a reader of the event
/// log can recompute the `failed`, `cannot_connect` and `handshake_failed.<reason>` counters:
/// `failed` = [`ConnectFailed`](Self::ConnectFailed) with [`ConnectFailure::is_failed_attempt`] +
/// [`HandshakeFailed`](Self::HandshakeFailed) + [`TunnelLost`](Self::TunnelLost) with `failed_attempt`;
/// `cannot_connect` = the other `ConnectFailed` + [`CannotConnect`](Self::CannotConnect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiatorEvent {
    /// The handshake succeeded: the tunnel is idle in the pool, waiting for `RPING`s and a claim.
    TunnelReady {
        /// The tunnel.
        conn: ConnId,
        /// Its target cluster.
        cluster: String,
        /// The host it was dialled to.
        host: SocketAddr,
    },
    /// The responder claimed the tunnel: the driver now owns the socket alone and hands it to the listener's
    /// filter chain or `accept()`. Write every transmit queued for `conn` first (in claim-marker mode the
    /// `RDATA` answer, queued before this event), then pass `data` to the local service before anything
    /// read later. Report [`handle_closed`](super::Initiator::handle_closed) when the data connection ends.
    Claimed {
        /// The tunnel.
        conn: ConnId,
        /// Its target cluster.
        cluster: String,
        /// The host it was dialled to.
        host: SocketAddr,
        /// Data bytes already read (possibly empty in claim-marker mode).
        data: Bytes,
    },
    /// The dial did not succeed (reported by the driver, or `connect_timeout` passed). The connection is
    /// gone; on a timeout the core also ordered a [`Command::Close`](crate::command::Command::Close).
    ConnectFailed {
        /// The connection.
        conn: ConnId,
        /// Its target cluster.
        cluster: String,
        /// The host that was dialled.
        host: SocketAddr,
        /// Why.
        error: ConnectFailure,
    },
    /// The handshake failed: a failed attempt, counted in `failed` and `handshake_failed.<reason>`.
    HandshakeFailed {
        /// The connection.
        conn: ConnId,
        /// Its target cluster.
        cluster: String,
        /// The host that was dialled.
        host: SocketAddr,
        /// Why.
        reason: HandshakeFailure,
    },
    /// A connection the core held ended before it was claimed: an idle tunnel, or (for
    /// [`LostReason::HostRemoved`] and [`LostReason::Shutdown`]) also one still dialling or handshaking.
    TunnelLost {
        /// The connection.
        conn: ConnId,
        /// Its target cluster.
        cluster: String,
        /// The host it was dialled to.
        host: SocketAddr,
        /// Why.
        reason: LostReason,
        /// The tunnel ended on its own (closed, idle timeout, protocol error) before its first `RPING`:
        /// counted in `failed` and fed to the host's backoff.
        failed_attempt: bool,
    },
    /// The host entered backoff, or its backoff was extended (a 429's `retry-after`): no dial until
    /// `until`, when the core dials again by itself.
    BackingOff {
        /// The target cluster.
        cluster: String,
        /// The host.
        host: SocketAddr,
        /// When the backoff ends.
        until: Instant,
    },
    /// An attempt could not start for a whole cluster (counted in the cluster's `cannot_connect`).
    CannotConnect {
        /// The target cluster.
        cluster: String,
        /// Why.
        cause: CannotConnectCause,
    },
}

impl InitiatorEvent {
    /// The connection the event is about, if it is about one.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Self::TunnelReady { conn, .. }
            | Self::Claimed { conn, .. }
            | Self::ConnectFailed { conn, .. }
            | Self::HandshakeFailed { conn, .. }
            | Self::TunnelLost { conn, .. } => Some(*conn),
            Self::BackingOff { .. } | Self::CannotConnect { .. } => None,
        }
    }

    /// The target cluster the event is about.
    pub fn cluster(&self) -> &str {
        match self {
            Self::TunnelReady { cluster, .. }
            | Self::Claimed { cluster, .. }
            | Self::ConnectFailed { cluster, .. }
            | Self::HandshakeFailed { cluster, .. }
            | Self::TunnelLost { cluster, .. }
            | Self::BackingOff { cluster, .. }
            | Self::CannotConnect { cluster, .. } => cluster,
        }
    }

    /// The host the event is about, if it is about one.
    pub fn host(&self) -> Option<SocketAddr> {
        match self {
            Self::TunnelReady { host, .. }
            | Self::Claimed { host, .. }
            | Self::ConnectFailed { host, .. }
            | Self::HandshakeFailed { host, .. }
            | Self::TunnelLost { host, .. }
            | Self::BackingOff { host, .. } => Some(*host),
            Self::CannotConnect { .. } => None,
        }
    }
}

/// Why a dial failed, as the driver reports it to
/// [`handle_connect_failed`](super::Initiator::handle_connect_failed).
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The host refused or reset the connection.
    #[error("connection refused")]
    Refused,
    /// No route to the host or its network.
    #[error("host unreachable")]
    Unreachable,
    /// The dial timed out (the driver's own timeout, or the core's `connect_timeout`).
    #[error("connect timed out")]
    TimedOut,
    /// The attempt could not start on this machine (no socket, no file descriptor, no local port, …).
    #[error("local error: the connection could not be started")]
    LocalError,
}

impl ConnectFailure {
    /// `true` for a failed attempt (counted in `failed`), `false` for [`LocalError`](Self::LocalError)
    /// (counted in `cannot_connect`). Both put the host into backoff.
    pub fn is_failed_attempt(self) -> bool {
        !matches!(self, Self::LocalError)
    }

    /// Maps a dial's I/O error: refused/reset/aborted → `Refused`; host/network unreachable or network
    /// down → `Unreachable`; timed out → `TimedOut`; anything else → `LocalError`.
    pub fn from_io_kind(kind: io::ErrorKind) -> Self {
        use io::ErrorKind as K;
        match kind {
            K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted => Self::Refused,
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Self::Unreachable,
            K::TimedOut => Self::TimedOut,
            _ => Self::LocalError,
        }
    }
}

/// Why a handshake failed.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The response was a rejection, malformed, or announced a body.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// No complete response within `handshake_timeout` of the connect.
    #[error("no handshake response within handshake_timeout")]
    Timeout,
    /// The connection closed (or failed) before the response was complete.
    #[error("connection closed during the handshake")]
    Closed,
    /// Tunnel TLS: the TLS handshake failed, or the responder refused the session (e.g. an alert for a
    /// missing client certificate) before the response was complete.
    #[error("TLS handshake failed")]
    Tls,
}

impl HandshakeFailure {
    /// The suffix of the `handshake_failed.<reason>` counter: `http_<code>`, `malformed`, `timeout`,
    /// `closed` or `tls`.
    pub fn counter(&self) -> Cow<'static, str> {
        match self {
            Self::Response(e) => e.reason(),
            Self::Timeout => Cow::Borrowed("timeout"),
            Self::Closed => Cow::Borrowed("closed"),
            Self::Tls => Cow::Borrowed("tls"),
        }
    }
}

/// Why a connection the core held ended before a claim.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// No `RPING` for `idle_timeout`: the core closed the tunnel (probably half-open).
    #[error("no RPING within idle_timeout")]
    IdleTimeout,
    /// The peer closed the tunnel, or reading it failed (reported by the driver).
    #[error("tunnel closed")]
    Closed,
    /// Claim-marker mode: bytes other than `RPING` or `RDATA` arrived; the core closed the tunnel.
    #[error("keepalive protocol error: {0}")]
    ProtocolError(KeepaliveError),
    /// The host left its cluster's host set; the core closed the connection.
    #[error("host removed from its cluster")]
    HostRemoved,
    /// [`shutdown`](super::Initiator::shutdown) closed the connection.
    #[error("initiator shut down")]
    Shutdown,
}

/// Why an attempt could not start for a whole cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CannotConnectCause {
    /// [`set_hosts`](super::Initiator::set_hosts) gave the cluster no hosts.
    NoHosts,
    /// The driver reported [`handle_resolve_failed`](super::Initiator::handle_resolve_failed).
    ResolveFailed,
}

/// [`set_hosts`](super::Initiator::set_hosts) named a cluster that is not a configured target.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error("unknown target cluster {0:?}")]
pub struct UnknownCluster(pub String);
