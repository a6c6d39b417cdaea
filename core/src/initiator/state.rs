//! The two chokepoints: [`Initiator::set_state`] for a connection's phase (and with it every tunnel gauge,
//! the tunnel counts and the connection's timers) and [`Initiator::set_backoff`] for a host's backoff (the
//! `backoff` gauge and the host's timer).

use std::time::Instant;

use super::Initiator;
use super::host::PoolKey;
use super::timer::{TimerKey, TunnelTimer};
use super::tunnel::{Phase, Tunnel, TunnelState};
use crate::backoff::saturating_add;
use crate::command::ConnId;
use crate::stats::TunnelCounts;

impl Initiator {
    /// Allocates a connection for `key` in phase `New` (not yet counted); `set_state` to `Connecting` counts
    /// it as opened.
    pub(super) fn allocate(&mut self, key: PoolKey, now: Instant) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.tunnels.insert(conn, Tunnel::new(key, now));
        conn
    }

    /// Moves `conn` to `new`: updates the machine's and the host's tunnel counts (hence every gauge), the
    /// host's "initiation time", disarms the old phase's timer and arms the new one's. `Closed` removes the
    /// record and, for a removed host whose last tunnel this was, retires the host's statistics.
    pub(super) fn set_state(&mut self, conn: ConnId, new: TunnelState, now: Instant) {
        let Some(tunnel) = self.tunnels.get_mut(&conn) else {
            tracing::trace!(%conn, "set_state on an unknown connection");
            return;
        };
        let old = tunnel.state.phase();
        let next = new.phase();
        let key = tunnel.pool;
        self.timers.clear_tunnel(conn, &mut tunnel.timers);
        if let Some(timer) = next.timer() {
            let after = match timer {
                TunnelTimer::Connect => self.config.connect_timeout,
                TunnelTimer::Handshake => self.config.handshake_timeout,
                TunnelTimer::Idle => self.config.idle_timeout,
            };
            let at = saturating_add(now, after);
            self.timers
                .set_tunnel(conn, &mut tunnel.timers, timer, Some(at));
        }
        tunnel.state = new;
        count(&mut self.counts, old, next);
        if let Some(pool) = self.pools.get_mut(&key) {
            count(&mut pool.tunnels, old, next);
            if matches!(old, Phase::Idle | Phase::InUse) && pool.established() == 0 {
                // The host has no tunnel any more: the next try starts a new initiation time.
                pool.initiation_ms = None;
            }
        }
        tracing::trace!(%conn, host = %key.host, ?old, ?next, "tunnel state");
        if next == Phase::Closed {
            self.tunnels.remove(&conn);
            self.fold_if_finished(key);
        }
    }

    /// Sets (`Some`) or ends (`None`) a host's backoff: the `backoff` gauge and the host's timer.
    pub(super) fn set_backoff(&mut self, key: PoolKey, until: Option<Instant>) {
        let Some(pool) = self.pools.get_mut(&key) else {
            return;
        };
        let old = std::mem::replace(&mut pool.backoff_until, until);
        self.timers.update(TimerKey::Backoff(key), old, until);
        if old.is_some() != until.is_some() {
            tracing::debug!(host = %key.host, ?until, "backoff");
        }
    }
}

/// Moves one connection from phase `old` to `new` in `counts`.
fn count(counts: &mut TunnelCounts, old: Phase, new: Phase) {
    let dec = |n: &mut u64| *n = n.saturating_sub(1);
    match old {
        Phase::New => counts.opened += 1,
        Phase::Connecting => dec(&mut counts.connecting),
        Phase::Handshaking => dec(&mut counts.handshaking),
        Phase::Idle => dec(&mut counts.idle),
        Phase::InUse => dec(&mut counts.in_use),
        // A closed record is removed at once, so it never changes phase again.
        Phase::Closed => {}
    }
    match new {
        Phase::New => {}
        Phase::Connecting => counts.connecting += 1,
        Phase::Handshaking => counts.handshaking += 1,
        Phase::Idle => counts.idle += 1,
        Phase::InUse => counts.in_use += 1,
        Phase::Closed => counts.closed += 1,
    }
}
