//! Attempts: dialling to keep `count` idle tunnels per host, ending a connection (and counting it), the
//! host's backoff on failure and its reset on success.

use std::time::Instant;

use super::Initiator;
use super::event::{ConnectFailure, HandshakeFailure, InitiatorEvent, LostReason};
use super::host::PoolKey;
use super::tunnel::TunnelState;
use crate::command::{Command, ConnId};
use crate::handshake::ResponseError;

/// How a connection the core holds ends.
#[derive(Debug)]
pub(super) enum Ending {
    /// The dial failed.
    Connect(ConnectFailure),
    /// The handshake failed.
    Handshake(HandshakeFailure),
    /// It was idle (or, for `HostRemoved`/`Shutdown`, anything before in use).
    Lost(LostReason),
}

/// The status whose `retry-after` sets the backoff.
const TOO_MANY_REQUESTS: u16 = 429;

impl Initiator {
    /// Dials until the host has `count` idle plus establishing tunnels, within `max_tunnels_per_host` live
    /// ones; nothing while shut down, in backoff, or for a removed host.
    pub(super) fn fill(&mut self, key: PoolKey, now: Instant) {
        if self.shut_down {
            return;
        }
        let Some(pool) = self.pools.get(&key) else {
            return;
        };
        if pool.retired || pool.backoff_until.is_some() {
            return;
        }
        for _ in 0..pool.dials_wanted(self.config.max_tunnels_per_host) {
            let conn = self.allocate(key, now);
            self.set_state(conn, TunnelState::Connecting, now);
            self.commands.push_back(Command::Dial {
                conn,
                addr: key.host,
            });
        }
    }

    /// Ends `conn`: orders the close if `close` (the driver did not report it), counts it, emits its event,
    /// backs the host off for a failed attempt, and dials a replacement if the host may.
    ///
    /// Counted as a failed attempt: a failed dial other than a local error (`failed`; a local error counts
    /// `cannot_connect`, and backs off too); every handshake failure (`failed` and
    /// `handshake_failed.<reason>`); an idle tunnel that closed, timed out or broke the protocol before its
    /// first `RPING` (`failed`). Removal and shutdown count nothing.
    pub(super) fn end(&mut self, conn: ConnId, ending: Ending, close: bool, now: Instant) {
        let Some(tunnel) = self.tunnels.get(&conn) else {
            tracing::trace!(%conn, "end of an unknown connection");
            return;
        };
        let key = tunnel.pool;
        let started = tunnel.attempt_started;
        let before_first_ping = tunnel.awaiting_first_ping();
        let (failed, retry_after) = match &ending {
            Ending::Connect(error) => (error.is_failed_attempt(), None),
            Ending::Handshake(reason) => (true, retry_after(reason)),
            Ending::Lost(LostReason::HostRemoved | LostReason::Shutdown) => (false, None),
            Ending::Lost(_) => (before_first_ping, None),
        };
        let backs_off = failed || matches!(ending, Ending::Connect(ConnectFailure::LocalError));
        if let Some(pool) = self.pools.get_mut(&key) {
            if failed {
                pool.counters.failed += 1;
            } else if backs_off {
                pool.counters.cannot_connect += 1;
            }
            if let Ending::Handshake(reason) = &ending {
                *pool
                    .counters
                    .handshake_failed
                    .entry(reason.counter().into_owned())
                    .or_default() += 1;
            }
        }
        if close {
            self.commands.push_back(Command::Close { conn });
        }
        self.set_state(conn, TunnelState::Closed, now);
        let cluster = self.cluster_name(key);
        let host = key.host;
        tracing::debug!(%conn, %host, ?ending, failed, "connection ended");
        self.events.push_back(match ending {
            Ending::Connect(error) => InitiatorEvent::ConnectFailed {
                conn,
                cluster,
                host,
                error,
            },
            Ending::Handshake(reason) => InitiatorEvent::HandshakeFailed {
                conn,
                cluster,
                host,
                reason,
            },
            Ending::Lost(reason) => InitiatorEvent::TunnelLost {
                conn,
                cluster,
                host,
                reason,
                failed_attempt: failed,
            },
        });
        if backs_off {
            self.back_off(key, started, retry_after, now);
        }
        self.fill(key, now);
    }

    /// Records a failed attempt that started at `started` with the host's [`Backoff`](crate::backoff::Backoff)
    /// and, if that puts the host into backoff (or extends it), arms the host's timer and emits `BackingOff`.
    fn back_off(&mut self, key: PoolKey, started: Instant, retry_after: Option<u64>, now: Instant) {
        let cap = self.config.max_reconnect_backoff;
        let Some(pool) = self.pools.get_mut(&key) else {
            return;
        };
        if pool.retired || self.shut_down {
            return;
        }
        let until = pool
            .backoff
            .on_failure(started, now, cap, retry_after, &mut self.rng);
        if until <= now || pool.backoff_until == Some(until) {
            // A stale failure of an attempt started before the current backoff: already counted.
            return;
        }
        pool.recovered = false;
        self.set_backoff(key, Some(until));
        self.events.push_back(InitiatorEvent::BackingOff {
            cluster: self.cluster_name(key),
            host: key.host,
            until,
        });
    }

    /// The first `RPING` (or the claim) on a tunnel of the host: the attempt succeeded. Resets the backoff;
    /// `recovered` becomes 1 if the host had failed since its last success; a backoff still running ends and
    /// the host is filled at once.
    pub(super) fn succeed(&mut self, key: PoolKey, now: Instant) {
        let Some(pool) = self.pools.get_mut(&key) else {
            return;
        };
        if pool.backoff.failures() > 0 {
            pool.recovered = true;
        }
        pool.backoff.on_success();
        if pool.backoff_until.is_some() {
            self.set_backoff(key, None);
            self.fill(key, now);
        }
    }

    /// The name of a pool's target cluster, for events.
    pub(super) fn cluster_name(&self, key: PoolKey) -> String {
        self.clusters
            .get(key.cluster)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }
}

/// The `retry-after` seconds of a 429, which set the backoff; other statuses' hints are ignored.
fn retry_after(reason: &HandshakeFailure) -> Option<u64> {
    match reason {
        HandshakeFailure::Response(ResponseError::Rejected {
            status: TOO_MANY_REQUESTS,
            retry_after,
        }) => *retry_after,
        _ => None,
    }
}
