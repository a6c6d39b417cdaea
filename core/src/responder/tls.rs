//! Tunnel TLS on the handshake listener: the driver reports the connection at TCP accept time (so the
//! pending-handshake caps and `handshake_timeout` cover the TLS handshake too), then the outcome of the
//! TLS handshake it runs.

use std::net::SocketAddr;
use std::time::Instant;

use super::Responder;
use super::auth::PeerTlsIdentity;
use super::event::RejectReason;
use super::tunnel::{Conn, TlsPhase};
use crate::command::ConnId;

impl Responder {
    /// A socket was accepted from `peer` on a listener with tunnel TLS, and the driver starts the TLS
    /// handshake. Like [`handle_accepted`](Self::handle_accepted) (caps, handshake deadline), but the
    /// connection takes no input until [`handle_tls_established`](Self::handle_tls_established); a TLS
    /// handshake still running at `handshake_timeout` ends as any slow handshake does (`timeout`, close).
    pub fn handle_accepted_tls(&mut self, peer: SocketAddr, now: Instant) -> ConnId {
        self.accept(peer, TlsPhase::Pending, now)
    }

    /// The TLS handshake of `conn` completed: `identity` is the verified client certificate's identity,
    /// `None` when the client presented none (allowed only where client certificates are optional). From
    /// now on the connection's input is the handshake request, and the [`Authorizer`](super::Authorizer)
    /// sees `identity`. Ignored (trace) for a connection that is not waiting for its TLS handshake.
    pub fn handle_tls_established(
        &mut self,
        conn: ConnId,
        identity: Option<PeerTlsIdentity>,
        now: Instant,
    ) {
        self.advance(now);
        match self.conns.get_mut(&conn) {
            Some(Conn::Handshake(handshake)) if matches!(handshake.tls, TlsPhase::Pending) => {
                handshake.tls = TlsPhase::Ready(identity);
            }
            _ => {
                tracing::trace!(%conn, "TLS established for a connection not waiting for it ignored")
            }
        }
    }

    /// Tunnel TLS failed on `conn` and the driver closed the socket: no close command follows. During
    /// the TLS handshake (bad or missing client certificate, not TLS at all, …) it counts
    /// `reverse_tunnel.handshake.tls_failed` and ends the handshake with [`RejectReason::TlsFailed`];
    /// later (a TLS error in an established session) it is a close, as
    /// [`handle_closed`](Self::handle_closed).
    pub fn handle_tls_failed(&mut self, conn: ConnId, now: Instant) {
        let now = self.advance(now);
        match self.conns.get(&conn) {
            Some(Conn::Handshake(handshake)) if matches!(handshake.tls, TlsPhase::Pending) => {
                tracing::debug!(%conn, "tunnel TLS handshake failed");
                self.drop_handshake(
                    conn,
                    RejectReason::TlsFailed,
                    None,
                    Some("tls_failed"),
                    false,
                );
            }
            _ => self.handle_closed(conn, now),
        }
    }
}
