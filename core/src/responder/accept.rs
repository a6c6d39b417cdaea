//! The handshake listener: pending-handshake caps, the check table in order, registration.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::Responder;
use super::auth::{AuthDecision, HandshakeContext, PeerTlsIdentity};
use super::event::{RejectReason, ResponderEvent};
use super::pool::{Membership, NodeKey};
use super::tunnel::{Conn, Handshake, Phase, TlsPhase, Tunnel};
use crate::backoff::saturating_add;
use crate::command::{Command, ConnId};
use crate::handshake::{
    Identity, ParsedRequest, Rejection, RequestParser, check_request, encode_accept,
};
use crate::keepalive::{DataMode, ResponderKeepalive};

impl Responder {
    /// A socket was accepted from `peer` (with its verified client-certificate identity, if tunnel TLS
    /// asked for one). Returns the connection's id and arms its handshake deadline.
    ///
    /// At the per-IP cap the oldest pending handshake of `peer`'s address is closed first, then at the total
    /// cap the oldest pending handshake of all ([`RejectReason::PendingCapEvicted`]). After
    /// [`shutdown`](Self::shutdown) the new connection is closed at once ([`RejectReason::Shutdown`]).
    pub fn handle_accepted(
        &mut self,
        peer: SocketAddr,
        tls: Option<PeerTlsIdentity>,
        now: Instant,
    ) -> ConnId {
        self.accept(peer, TlsPhase::Ready(tls), now)
    }

    /// Registers a new connection in phase `tls` (see [`handle_accepted`](Self::handle_accepted)).
    pub(super) fn accept(&mut self, peer: SocketAddr, tls: TlsPhase, now: Instant) -> ConnId {
        let now = self.advance(now);
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        if !self.shut_down {
            let oldest_of_ip = self
                .pending_by_ip
                .get(&peer.ip())
                .filter(|s| s.len() >= self.config.max_pending_handshakes_per_ip)
                .and_then(|s| s.first().copied());
            if let Some(oldest) = oldest_of_ip {
                self.evict(oldest);
            }
            let oldest = self
                .pending
                .first()
                .copied()
                .filter(|_| self.pending.len() >= self.config.max_pending_handshakes);
            if let Some(oldest) = oldest {
                self.evict(oldest);
            }
        }
        let handshake = Handshake {
            peer,
            tls,
            parser: RequestParser::new(self.config.head_limits),
            deadline: saturating_add(now, self.config.handshake_timeout),
        };
        self.set_state(id, |_| (Some(Conn::Handshake(handshake)), ()));
        if self.shut_down {
            self.drop_handshake(id, RejectReason::Shutdown, None, None, true);
        }
        id
    }

    fn evict(&mut self, conn: ConnId) {
        tracing::debug!(%conn, "pending-handshake cap: dropping the oldest handshake");
        self.drop_handshake(
            conn,
            RejectReason::PendingCapEvicted,
            None,
            Some("pending_evicted"),
            true,
        );
    }

    /// Ends a handshake: queues `response` (if any), counts `counter` (if any), orders the close (if
    /// `close`), and reports `reason`.
    pub(super) fn drop_handshake(
        &mut self,
        conn: ConnId,
        reason: RejectReason,
        response: Option<Bytes>,
        counter: Option<&'static str>,
        close: bool,
    ) {
        if let Some(response) = response {
            self.transmit(conn, response);
        }
        if let Some(counter) = counter {
            self.counters.handshake(counter);
        }
        self.set_state(conn, |_| (None, ()));
        if close {
            self.out.commands.push_back(Command::Close { conn });
        }
        self.out
            .events
            .push_back(ResponderEvent::Rejected { conn, reason });
    }

    /// Answers with a rejection of the check table, then closes.
    fn reject(&mut self, conn: ConnId, rejection: Rejection) {
        tracing::debug!(%conn, status = rejection.status(), "handshake rejected");
        let response = rejection.encode();
        let counter = rejection.counter();
        self.drop_handshake(
            conn,
            RejectReason::Rejection(rejection),
            Some(response),
            counter,
            true,
        );
    }

    pub(super) fn handshake_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let Some(Conn::Handshake(handshake)) = self.conns.get_mut(&conn) else {
            return;
        };
        if matches!(handshake.tls, TlsPhase::Pending) {
            // Driver misuse: bytes can only come out of a TLS session after its handshake.
            tracing::debug!(%conn, "input before the TLS handshake completed ignored");
            return;
        }
        match handshake.parser.push(data) {
            Ok(None) => {}
            Ok(Some(request)) => self.decide(conn, &request, now),
            Err(malformed) => {
                tracing::debug!(%conn, %malformed, "malformed handshake: closing silently");
                let counter = malformed.counter();
                self.drop_handshake(
                    conn,
                    RejectReason::Malformed(malformed),
                    None,
                    Some(counter),
                    true,
                );
            }
        }
    }

    /// Rows 1–11 of the check table, in order, for a complete request.
    fn decide(&mut self, conn: ConnId, request: &ParsedRequest, now: Instant) {
        let identity = match check_request(request, &self.config.policy) {
            Ok(identity) => identity,
            Err(rejection) => return self.reject(conn, rejection),
        };
        let Some(Conn::Handshake(handshake)) = self.conns.get(&conn) else {
            return;
        };
        // Never authorize before the TLS identity is known (input is refused while it is pending).
        let TlsPhase::Ready(tls) = &handshake.tls else {
            debug_assert!(false, "request of {conn} decided before its TLS handshake");
            return;
        };
        let decision = self.authorizer.authorize(&HandshakeContext {
            identity: &identity,
            request,
            peer: handshake.peer,
            tls: tls.as_ref(),
        });
        if decision == AuthDecision::Unauthenticated {
            return self.reject(conn, Rejection::AuthenticationFailed);
        }
        let key = NodeKey {
            tenant: self.scope(&identity.tenant),
            node: identity.node.clone(),
        };
        if let Some(cap) = self.config.max_tunnels_per_node {
            if self.pool.live(&key) >= u64::from(cap) {
                let retry_after_secs = self.config.retry_after_secs();
                return self.reject(conn, Rejection::TooManyTunnels { retry_after_secs });
            }
        }
        if decision == AuthDecision::Forbidden {
            return self.reject(conn, Rejection::NotAllowed);
        }
        if !self.accepting {
            return self.reject(conn, Rejection::RegistrationUnavailable);
        }
        let claim_marker = self.config.policy.claim_marker && request.offers_claim_marker();
        self.register(conn, key, identity, claim_marker, now);
    }

    /// Row "ok": queues the success response, counts `accepted`, and puts the tunnel in the pool.
    fn register(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        identity: Identity,
        claim_marker: bool,
        now: Instant,
    ) {
        self.transmit(
            conn,
            encode_accept(self.config.policy.upgrade, claim_marker),
        );
        self.counters.handshake("accepted");
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut rng = ChaCha8Rng::from_seed(seed);
        let keepalive = ResponderKeepalive::new(self.config.keepalive, now, &mut rng);
        let mode = if claim_marker {
            DataMode::ClaimMarker
        } else {
            DataMode::Envoy
        };
        let membership = Membership {
            key,
            cluster: identity.cluster.clone(),
            tenant: identity.tenant.clone(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        tracing::debug!(%conn, node = %identity.node, cluster = %identity.cluster, ?mode, "tunnel registered");
        let tunnel = Tunnel {
            membership,
            mode,
            phase: Phase::Idle {
                keepalive,
                rng: Box::new(rng),
            },
        };
        self.set_state(conn, |_| (Some(Conn::Tunnel(tunnel)), ()));
        self.out.events.push_back(ResponderEvent::Registered {
            conn,
            node: identity.node,
            cluster: identity.cluster,
            tenant: identity.tenant,
        });
        self.serve_waiting(now);
    }
}
