//! Bytes from a connection: the handshake request and response, then the idle phase (echoes and the claim).

use std::time::Instant;

use bytes::Bytes;

use super::Initiator;
use super::attempt::Ending;
use super::event::{HandshakeFailure, InitiatorEvent, LostReason};
use super::timer::TunnelTimer;
use super::tunnel::{IdleTunnel, TunnelState};
use crate::backoff::saturating_add;
use crate::command::{ConnId, Transmit};
use crate::handshake::{Accepted, HandshakeRequest, ResponseParser};
use crate::keepalive::{DataMode, IdleInput, InitiatorIdle, Marker, RPING};

impl Initiator {
    /// The dial succeeded: write the handshake request and wait for the response.
    pub(super) fn connected(&mut self, conn: ConnId, now: Instant, unix_ms: u64) {
        let Some(tunnel) = self.tunnels.get(&conn) else {
            tracing::trace!(%conn, "connected: unknown connection ignored");
            return;
        };
        if !matches!(tunnel.state, TunnelState::Connecting) {
            tracing::trace!(%conn, "connected: not dialling, ignored");
            return;
        }
        let key = tunnel.pool;
        let Some(pool) = self.pools.get_mut(&key) else {
            return;
        };
        let initiation_time_ms = *pool.initiation_ms.get_or_insert(unix_ms);
        let config = &self.config;
        let target_cluster = self
            .clusters
            .get(key.cluster)
            .map_or("", |c| c.name.as_str());
        let request = HandshakeRequest {
            method: &config.request_method,
            path: &config.request_path,
            host: key.host,
            node: &config.node,
            cluster: &config.cluster,
            tenant: &config.tenant,
            target_cluster,
            initiation_time_ms,
            upgrade: config.upgrade,
            offer_claim_marker: config.offer_claim_marker,
            extra_headers: &config.extra_headers,
        }
        .to_bytes();
        let parser = ResponseParser::new(
            config.head_limits,
            config.upgrade,
            config.offer_claim_marker,
        );
        self.set_state(conn, TunnelState::Handshaking(Box::new(parser)), now);
        self.transmits.push_back(Transmit {
            conn,
            data: request,
        });
    }

    /// Bytes read from `conn`, in its handshake or idle phase.
    pub(super) fn input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let Some(tunnel) = self.tunnels.get_mut(&conn) else {
            tracing::trace!(%conn, "input on an unknown connection ignored");
            return;
        };
        match &mut tunnel.state {
            TunnelState::Handshaking(parser) => match parser.push(data) {
                Ok(None) => {}
                Ok(Some(accepted)) => self.accepted(conn, accepted, now),
                Err(error) => self.end(
                    conn,
                    Ending::Handshake(HandshakeFailure::Response(error)),
                    true,
                    now,
                ),
            },
            TunnelState::Idle(_) => self.idle_input(conn, data, now),
            _ => tracing::trace!(%conn, "input while dialling or in use ignored"),
        }
    }

    /// The responder accepted: the tunnel is idle in the data mode negotiated; bytes after the head are fed
    /// to it at once.
    fn accepted(&mut self, conn: ConnId, accepted: Accepted, now: Instant) {
        let Some(key) = self.tunnels.get(&conn).map(|t| t.pool) else {
            return;
        };
        let mode = if accepted.claim_marker {
            DataMode::ClaimMarker
        } else {
            DataMode::Envoy
        };
        let idle = IdleTunnel {
            reader: InitiatorIdle::new(mode),
            pinged: false,
        };
        self.set_state(conn, TunnelState::Idle(Box::new(idle)), now);
        self.events.push_back(InitiatorEvent::TunnelReady {
            conn,
            cluster: self.cluster_name(key),
            host: key.host,
        });
        if !accepted.leftover.is_empty() {
            self.idle_input(conn, &accepted.leftover, now);
        }
    }

    /// Idle phase: echo each `RPING` (and re-arm the idle timer), take the first one as the attempt's
    /// success, and hand the tunnel over on the claim.
    fn idle_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let idle_timeout = self.config.idle_timeout;
        let Some(tunnel) = self.tunnels.get_mut(&conn) else {
            return;
        };
        let key = tunnel.pool;
        let TunnelState::Idle(idle) = &mut tunnel.state else {
            return;
        };
        let IdleInput { pings, claim } = match idle.reader.handle_input(data) {
            Ok(input) => input,
            Err(error) => {
                self.end(
                    conn,
                    Ending::Lost(LostReason::ProtocolError(error)),
                    true,
                    now,
                );
                return;
            }
        };
        let first = !idle.pinged && (pings > 0 || claim.is_some());
        if pings > 0 {
            idle.pinged = true;
            let at = saturating_add(now, idle_timeout);
            self.timers
                .set_tunnel(conn, &mut tunnel.timers, TunnelTimer::Idle, Some(at));
            self.transmits.push_back(Transmit {
                conn,
                data: echoes(pings),
            });
        }
        if first {
            self.succeed(key, now);
        }
        let Some(claim) = claim else {
            return;
        };
        if claim.answer_marker {
            self.transmits.push_back(Transmit {
                conn,
                data: Marker::Data.frame(),
            });
        }
        self.set_state(conn, TunnelState::InUse, now);
        tracing::debug!(%conn, host = %key.host, bytes = claim.data.len(), "tunnel claimed");
        self.events.push_back(InitiatorEvent::Claimed {
            conn,
            cluster: self.cluster_name(key),
            host: key.host,
            data: claim.data,
        });
        self.fill(key, now);
    }
}

/// `pings` echoes in one buffer (no allocation for the common single echo).
fn echoes(pings: usize) -> Bytes {
    if pings == 1 {
        Marker::Ping.frame()
    } else {
        Bytes::from(RPING.repeat(pings))
    }
}
