//! What the responder tells its driver: [`ResponderEvent`] and the reasons it carries.

use bytes::Bytes;

use super::claim::ClaimId;
use crate::command::ConnId;
use crate::handshake::{MalformedRequest, Rejection};

/// Something the driver (or the front door behind it) must know. See the
/// [module documentation](super) for the order in which they come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum ResponderEvent {
    /// A handshake passed every check: its success response is queued and the tunnel is idle in the pool.
    Registered {
        /// The tunnel.
        conn: ConnId,
        /// The node id it sent.
        node: String,
        /// The cluster id it sent.
        cluster: String,
        /// The tenant id it sent (may be empty).
        tenant: String,
    },
    /// A handshake failed; the connection is forgotten. A [`Command::Close`](crate::command::Command) for
    /// it is queued unless the driver reported the close itself ([`RejectReason::PeerClosed`],
    /// [`RejectReason::TlsFailed`]); a
    /// rejection's response bytes are queued before that close.
    Rejected {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: RejectReason,
    },
    /// A claim got a tunnel. The driver now owns the socket: the core sends nothing more on it and never
    /// closes it, and keeps a small in-use record until [`handle_closed`](super::Responder::handle_closed).
    /// Write the connection's queued transmits first.
    HandedOut {
        /// The claim answered.
        claim: ClaimId,
        /// The tunnel.
        conn: ConnId,
        /// The node it belongs to.
        node: String,
        /// The cluster it registered with.
        cluster: String,
        /// The tenant it sent.
        tenant: String,
        /// Bytes already read from the initiator that belong to the data leg (claim-marker mode: after its
        /// `RDATA`; Envoy mode: a partial unit the keepalive held, normally empty). Deliver them first.
        data: Bytes,
    },
    /// A claim expired without a tunnel (after `claim_timeout`, at once if it could never be served, or at
    /// shutdown). Not sent for a cancelled claim.
    ClaimExpired {
        /// The claim.
        claim: ClaimId,
    },
    /// An idle tunnel (or one being claimed) died and left the pool. A
    /// [`Command::Close`](crate::command::Command) for it is queued unless the driver reported the close
    /// ([`LostReason::Closed`]).
    TunnelLost {
        /// The tunnel.
        conn: ConnId,
        /// The node it belonged to.
        node: String,
        /// Why.
        reason: LostReason,
    },
}

/// Why a handshake failed.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Rows 1–11 of the check table: answered with this rejection's response.
    #[error("rejected with {}: {}", .0.status(), .0.body())]
    Rejection(Rejection),
    /// Row 0: not well-formed HTTP/1.1; closed without a response (`parse_error`).
    #[error(transparent)]
    Malformed(MalformedRequest),
    /// Not complete within `handshake_timeout`; closed without a response (`timeout`).
    #[error("handshake timed out")]
    Timeout,
    /// Dropped as the oldest pending handshake (in total or of its source IP) to make room for a new one.
    #[error("dropped at the pending-handshake cap")]
    PendingCapEvicted,
    /// Tunnel TLS: the driver reported that the TLS handshake failed (`tls_failed`); it closed the socket.
    #[error("TLS handshake failed")]
    TlsFailed,
    /// The driver reported the connection closed before the handshake completed.
    #[error("peer closed during the handshake")]
    PeerClosed,
    /// The responder is shutting down.
    #[error("responder shut down")]
    Shutdown,
}

/// Why a tunnel left the pool.
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// `ping_failure_threshold` keepalive misses in a row.
    #[error("keepalive: too many missed echoes")]
    KeepaliveDead,
    /// The driver reported EOF or an I/O error.
    #[error("closed by the peer or an I/O error")]
    Closed,
    /// Claim-marker mode: the initiator sent something other than `RPING`s before its `RDATA`.
    #[error("protocol error while waiting for the RDATA answer")]
    ProtocolError,
    /// Claim-marker mode: no `RDATA` answer within the answer deadline; the claim waits again.
    #[error("no RDATA answer in time")]
    ClaimAnswerTimeout,
    /// Claim-marker mode: the claim being answered expired or was cancelled; the tunnel, already sent
    /// `RDATA`, cannot go back to the pool.
    #[error("claim withdrawn while the tunnel was being claimed")]
    ClaimWithdrawn,
    /// The responder is shutting down.
    #[error("responder shut down")]
    Shutdown,
}
