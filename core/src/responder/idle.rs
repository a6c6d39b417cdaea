//! Registered tunnels before the hand-out: keepalive input and timers, and losing a tunnel.

use std::time::Instant;

use super::Responder;
use super::event::{LostReason, RejectReason, ResponderEvent};
use super::tunnel::{Conn, Phase, Tunnel, readiness};
use crate::command::{Command, ConnId};
use crate::keepalive::{KeepaliveAction, Marker};

/// What a tunnel's input or timer asks for, decided while the tunnel is borrowed.
enum Outcome {
    Nothing,
    /// The keepalive changed in place: re-arm the timer; serve waiting claims if the tunnel became
    /// claimable (an echo arrived).
    Rearm {
        became_claimable: bool,
    },
    SendPing,
    Lost(LostReason),
    HandshakeTimeout,
}

impl Responder {
    /// Input on an idle tunnel.
    pub(super) fn tunnel_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let outcome = match self.conns.get_mut(&conn) {
            Some(Conn::Tunnel(Tunnel { phase, mode, .. })) => match phase {
                Phase::Idle { keepalive, rng } => {
                    let was_ready = readiness(*mode, keepalive);
                    match keepalive.handle_input(data, now, rng.as_mut()) {
                        Some(KeepaliveAction::Dead) => Outcome::Lost(LostReason::KeepaliveDead),
                        // Never returned by `handle_input`; harmless if it were.
                        Some(KeepaliveAction::SendPing) => Outcome::SendPing,
                        None => Outcome::Rearm {
                            became_claimable: was_ready.is_none()
                                && readiness(*mode, keepalive).is_some(),
                        },
                    }
                }
                Phase::InUse => Outcome::Nothing,
            },
            _ => Outcome::Nothing,
        };
        self.apply(conn, outcome, now);
    }

    /// A connection's timer fired (it may be stale: each branch checks its own deadline).
    pub(super) fn conn_timeout(&mut self, conn: ConnId, now: Instant) {
        let outcome = match self.conns.get_mut(&conn) {
            None => Outcome::Nothing,
            Some(Conn::Handshake(handshake)) if now >= handshake.deadline => {
                Outcome::HandshakeTimeout
            }
            Some(Conn::Handshake(_)) => Outcome::Nothing,
            Some(Conn::Tunnel(Tunnel { phase, .. })) => match phase {
                Phase::Idle { keepalive, rng } => match keepalive.handle_timeout(now, rng.as_mut())
                {
                    Some(KeepaliveAction::SendPing) => Outcome::SendPing,
                    Some(KeepaliveAction::Dead) => Outcome::Lost(LostReason::KeepaliveDead),
                    None => Outcome::Rearm {
                        became_claimable: false,
                    },
                },
                Phase::InUse => Outcome::Nothing,
            },
        };
        self.apply(conn, outcome, now);
    }

    fn apply(&mut self, conn: ConnId, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Nothing => {}
            Outcome::Rearm { became_claimable } => {
                self.reschedule(conn);
                if became_claimable {
                    self.serve_waiting(now);
                }
            }
            Outcome::SendPing => {
                self.transmit(conn, Marker::Ping.frame());
                self.reschedule(conn);
            }
            Outcome::Lost(reason) => {
                self.lose(conn, reason, true);
                self.serve_waiting(now);
            }
            Outcome::HandshakeTimeout => {
                tracing::debug!(%conn, "handshake timed out: closing silently");
                self.drop_handshake(conn, RejectReason::Timeout, None, Some("timeout"), true);
            }
        }
    }

    /// An idle tunnel leaves: forgotten, a close ordered if `close`, `TunnelLost` reported.
    pub(super) fn lose(&mut self, conn: ConnId, reason: LostReason, close: bool) {
        let lost = self.set_state(conn, |old| match old {
            Some(Conn::Tunnel(tunnel)) if !matches!(tunnel.phase, Phase::InUse) => {
                (None, Some(tunnel.membership.key.node))
            }
            other => (other, None),
        });
        let Some(node) = lost else {
            return;
        };
        tracing::debug!(%conn, %node, %reason, "tunnel lost");
        if close {
            self.out.commands.push_back(Command::Close { conn });
        }
        self.out
            .events
            .push_back(ResponderEvent::TunnelLost { conn, node, reason });
    }
}
