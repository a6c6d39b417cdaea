//! Claims: making, serving (the hand-out, in both data modes at once), expiring and cancelling them.

use std::time::Instant;

use bytes::Bytes;

use super::claim::{Claim, ClaimId};
use super::event::{PendingAnswer, ResponderEvent};
use super::timers::TimerKey;
use super::tunnel::{Conn, Phase};
use super::{Responder, claim_answer_timeout};
use crate::backoff::saturating_add;
use crate::command::ConnId;
use crate::keepalive::{DataMode, Marker};

impl Responder {
    /// Asks for a tunnel to `id` — a cluster first (its nodes round-robin), then a node — within `tenant`
    /// under isolation (ignored without). Answered later (possibly within this call) by
    /// [`ResponderEvent::HandedOut`] or [`ResponderEvent::ClaimExpired`]; waits oldest first for up to
    /// `claim_timeout`. Under isolation a claim without a tenant, and after shutdown every claim, expires
    /// at once.
    pub fn claim(&mut self, id: &str, tenant: Option<&str>, now: Instant) -> ClaimId {
        let now = self.advance(now);
        let claim_id = self.claims.allocate();
        let isolation = self.config.policy.tenant_isolation;
        if self.shut_down || (isolation && tenant.is_none()) {
            tracing::debug!(%claim_id, target = id, "claim cannot be served: expired at once");
            self.counters.expired += 1;
            self.out
                .events
                .push_back(ResponderEvent::ClaimExpired { claim: claim_id });
            return claim_id;
        }
        let deadline = saturating_add(now, self.config.claim_timeout);
        self.claims.insert(
            claim_id,
            Claim {
                target: id.to_owned(),
                scope: self.scope(tenant.unwrap_or_default()),
                deadline,
            },
        );
        self.timers.set(TimerKey::Claim(claim_id), Some(deadline));
        self.serve_waiting(now);
        claim_id
    }

    /// Withdraws a claim whose front-door client went away. No event follows. Unknown or answered claims
    /// are ignored.
    pub fn cancel_claim(&mut self, claim: ClaimId, now: Instant) {
        self.advance(now);
        if self.claims.remove(claim).is_none() {
            tracing::trace!(%claim, "cancel_claim: unknown or answered claim ignored");
            return;
        }
        self.timers.set(TimerKey::Claim(claim), None);
    }

    /// A claim's deadline passed (or shutdown): `ClaimExpired`.
    pub(super) fn expire_claim(&mut self, claim: ClaimId) {
        let Some(removed) = self.claims.remove(claim) else {
            return;
        };
        tracing::debug!(%claim, target = %removed.target, "claim expired");
        self.timers.set(TimerKey::Claim(claim), None);
        self.counters.expired += 1;
        self.out
            .events
            .push_back(ResponderEvent::ClaimExpired { claim });
    }

    /// Serves waiting claims, oldest first, from the claimable tunnels.
    pub(super) fn serve_waiting(&mut self, now: Instant) {
        if !self.claims.any_waiting() {
            return;
        }
        for claim_id in self.claims.ids() {
            let Some(claim) = self.claims.get(claim_id) else {
                continue;
            };
            let (scope, target) = (claim.scope.clone(), claim.target.clone());
            let conns = &self.conns;
            let picked = self
                .pool
                .pick(&scope, &target, |conn| conns.get(&conn)?.readiness());
            if let Some(conn) = picked {
                self.hand_out(claim_id, conn, now);
            }
        }
    }

    /// Gives a claimable tunnel to a claim, at once in both modes; in claim-marker mode `RDATA` goes out
    /// first and the initiator's answer is left to the read side ([`PendingAnswer`]).
    fn hand_out(&mut self, claim: ClaimId, conn: ConnId, now: Instant) {
        let answer_deadline = saturating_add(now, claim_answer_timeout(self.config.keepalive));
        let handed = self.set_state(conn, |old| match old {
            Some(Conn::Tunnel(mut tunnel)) => {
                let phase = std::mem::replace(&mut tunnel.phase, Phase::InUse);
                let handed = match (tunnel.mode, phase) {
                    (DataMode::Envoy, Phase::Idle { keepalive, .. }) => {
                        Some((Bytes::copy_from_slice(keepalive.buffered()), None))
                    }
                    (DataMode::ClaimMarker, Phase::Idle { keepalive, .. }) => {
                        let answer = PendingAnswer {
                            filter: keepalive.into_answer(),
                            deadline: answer_deadline,
                        };
                        Some((Bytes::new(), Some(answer)))
                    }
                    (_, phase) => {
                        tunnel.phase = phase;
                        None
                    }
                };
                (Some(Conn::Tunnel(tunnel)), handed)
            }
            other => (other, None),
        });
        let Some((data, answer)) = handed else {
            return;
        };
        if answer.is_some() {
            tracing::debug!(%claim, %conn, "claim-marker hand-out: RDATA sent, answer read by the driver");
            self.transmit(conn, Marker::Data.frame());
        }
        self.answer(claim, conn, data, answer);
    }

    /// The claim is answered with the (now in-use) tunnel.
    fn answer(&mut self, claim: ClaimId, conn: ConnId, data: Bytes, answer: Option<PendingAnswer>) {
        self.claims.remove(claim);
        self.timers.set(TimerKey::Claim(claim), None);
        let Some(Conn::Tunnel(tunnel)) = self.conns.get(&conn) else {
            return;
        };
        let m = &tunnel.membership;
        tracing::debug!(%claim, %conn, node = %m.key.node, "tunnel handed out");
        self.counters.handed_out += 1;
        self.out.events.push_back(ResponderEvent::HandedOut {
            claim,
            conn,
            node: m.key.node.clone(),
            cluster: m.cluster.clone(),
            tenant: m.tenant.clone(),
            data,
            answer,
        });
    }
}
