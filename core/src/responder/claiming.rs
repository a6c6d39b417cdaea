//! Claims: making, serving (Envoy-mode and claim-marker hand-off), expiring and cancelling them.

use std::time::Instant;

use bytes::Bytes;

use super::claim::{Claim, ClaimId};
use super::event::{LostReason, ResponderEvent};
use super::timers::TimerKey;
use super::tunnel::{Conn, Phase, Tunnel};
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
            self.events
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
                tunnel: None,
            },
        );
        self.timers.set(TimerKey::Claim(claim_id), Some(deadline));
        self.serve_waiting(now);
        claim_id
    }

    /// Withdraws a claim whose front-door client went away. No event follows. A tunnel already sent
    /// `RDATA` for it cannot return to the pool: it is closed ([`LostReason::ClaimWithdrawn`]). Unknown or
    /// answered claims are ignored.
    pub fn cancel_claim(&mut self, claim: ClaimId, now: Instant) {
        self.advance(now);
        let Some(removed) = self.claims.remove(claim) else {
            tracing::trace!(%claim, "cancel_claim: unknown or answered claim ignored");
            return;
        };
        self.timers.set(TimerKey::Claim(claim), None);
        if let Some(tunnel) = removed.tunnel {
            self.lose(tunnel, LostReason::ClaimWithdrawn, true);
        }
    }

    /// A claim's deadline passed (or shutdown): `ClaimExpired`, and its claiming tunnel (if any) closed.
    pub(super) fn expire_claim(&mut self, claim: ClaimId) {
        let Some(removed) = self.claims.remove(claim) else {
            return;
        };
        tracing::debug!(%claim, target = %removed.target, "claim expired");
        self.timers.set(TimerKey::Claim(claim), None);
        self.counters.expired += 1;
        self.events
            .push_back(ResponderEvent::ClaimExpired { claim });
        if let Some(tunnel) = removed.tunnel {
            self.lose(tunnel, LostReason::ClaimWithdrawn, true);
        }
    }

    /// Serves waiting claims, oldest first, from the claimable tunnels.
    pub(super) fn serve_waiting(&mut self, now: Instant) {
        if !self.claims.any_waiting() {
            return;
        }
        for claim_id in self.claims.waiting() {
            let Some(claim) = self.claims.get(claim_id) else {
                continue;
            };
            let (scope, target) = (claim.scope.clone(), claim.target.clone());
            let conns = &self.conns;
            let picked = self.pool.pick(&scope, &target, |conn| {
                conns.get(&conn).is_some_and(Conn::claimable)
            });
            if let Some(conn) = picked {
                self.hand_out(claim_id, conn, now);
            }
        }
    }

    /// Gives a claimable tunnel to a claim: at once in Envoy mode; with `RDATA` in claim-marker mode.
    fn hand_out(&mut self, claim: ClaimId, conn: ConnId, now: Instant) {
        let mode = match self.conns.get(&conn) {
            Some(Conn::Tunnel(tunnel)) => tunnel.mode,
            _ => return,
        };
        match mode {
            DataMode::Envoy => {
                let data = self.set_state(conn, |old| match old {
                    Some(Conn::Tunnel(mut tunnel)) => {
                        let data = match &tunnel.phase {
                            Phase::Idle { keepalive, .. } => {
                                Bytes::copy_from_slice(keepalive.buffered())
                            }
                            _ => Bytes::new(),
                        };
                        tunnel.phase = Phase::InUse;
                        (Some(Conn::Tunnel(tunnel)), data)
                    }
                    other => (other, Bytes::new()),
                });
                self.answer(claim, conn, data);
            }
            DataMode::ClaimMarker => {
                tracing::debug!(%claim, %conn, "claim-marker hand-off: RDATA sent");
                self.transmit(conn, Marker::Data.frame());
                let deadline = saturating_add(now, claim_answer_timeout(self.config.keepalive));
                self.set_state(conn, |old| match old {
                    Some(Conn::Tunnel(Tunnel {
                        membership,
                        mode,
                        phase: Phase::Idle { keepalive, .. },
                    })) => (
                        Some(Conn::Tunnel(Tunnel {
                            membership,
                            mode,
                            phase: Phase::Claiming {
                                claim,
                                reader: keepalive.into_claim(),
                                deadline,
                            },
                        })),
                        (),
                    ),
                    other => (other, ()),
                });
                self.claims.bind(claim, conn);
            }
        }
    }

    /// Claim-marker mode: the initiator answered `RDATA`; `after` are the bytes that followed it.
    pub(super) fn finish_claim(&mut self, conn: ConnId, after: Bytes) {
        let claim = self.set_state(conn, |old| match old {
            Some(Conn::Tunnel(mut tunnel)) => match tunnel.phase {
                Phase::Claiming { claim, .. } => {
                    tunnel.phase = Phase::InUse;
                    (Some(Conn::Tunnel(tunnel)), Some(claim))
                }
                _ => (Some(Conn::Tunnel(tunnel)), None),
            },
            other => (other, None),
        });
        if let Some(claim) = claim {
            self.answer(claim, conn, after);
        }
    }

    /// The claim is answered with the (now in-use) tunnel.
    fn answer(&mut self, claim: ClaimId, conn: ConnId, data: Bytes) {
        self.claims.remove(claim);
        self.timers.set(TimerKey::Claim(claim), None);
        let Some(Conn::Tunnel(tunnel)) = self.conns.get(&conn) else {
            return;
        };
        let m = &tunnel.membership;
        tracing::debug!(%claim, %conn, node = %m.key.node, "tunnel handed out");
        self.counters.handed_out += 1;
        self.events.push_back(ResponderEvent::HandedOut {
            claim,
            conn,
            node: m.key.node.clone(),
            cluster: m.cluster.clone(),
            tenant: m.tenant.clone(),
            data,
        });
    }
}
