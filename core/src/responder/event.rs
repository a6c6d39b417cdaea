//! What the responder tells its driver: [`ResponderEvent`] and the reasons it carries.

use std::time::Instant;

use bytes::Bytes;

use super::claim::ClaimId;
use crate::command::ConnId;
use crate::handshake::{MalformedRequest, Rejection};
use crate::keepalive::ClaimAnswer;

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
    /// Write the connection's queued transmits first (in claim-marker mode they end with `RDATA`); the
    /// user may write data right behind them.
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
        /// Bytes already read from the initiator that belong to the data leg (Envoy mode: a partial unit
        /// the keepalive held, normally empty; always empty in claim-marker mode). Deliver them first.
        data: Bytes,
        /// Claim-marker mode: the initiator's answer (its `RPING` echoes, then `RDATA`) is still to come
        /// on the read side. Pass every byte read from the tunnel through it before the user sees it;
        /// `None` in Envoy mode.
        answer: Option<PendingAnswer>,
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

/// Claim-marker mode: what the driver needs to read a handed-out tunnel until the initiator's answer.
///
/// The responder writes `RDATA` and hands the tunnel out in the same turn, without waiting for the
/// answer, so the first data bytes follow the marker at once (one round trip less than waiting). The
/// answer is then stripped on the read side: every byte read goes through [`filter`](Self::filter) until
/// it [is complete](ClaimAnswer::is_complete), then reads go straight through.
///
/// A tunnel that turns out dead after the hand-out fails the user's stream (no claim goes back to the
/// queue: the user may already have written data): EOF or a read error before the answer, bytes other
/// than `RPING`s before `RDATA` (a protocol error), or no answer by [`deadline`](Self::deadline) (a
/// timeout). The responder only hands out tunnels with no missed echo, so this is rare, and the user sees
/// what a failed dial looks like: a closed connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAnswer {
    /// The filter, holding any answer bytes the keepalive had already read.
    pub filter: ClaimAnswer,
    /// When the read side gives up waiting for the answer:
    /// [`claim_answer_timeout`](super::claim_answer_timeout) after the hand-out.
    pub deadline: Instant,
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
    /// The responder is shutting down.
    #[error("responder shut down")]
    Shutdown,
}
