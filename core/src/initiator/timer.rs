//! The initiator's timers: a fixed table per connection, one backoff timer per host, and one ordered index
//! over all of them so that `poll_timeout` is the minimum without a scan.

use std::collections::BTreeSet;
use std::time::Instant;

use super::host::PoolKey;
use crate::command::ConnId;

/// The timers of one connection; at most one is armed at a time (the one of its state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TunnelTimer {
    /// Dialling: `connect_timeout` after the dial.
    Connect,
    /// Handshaking: `handshake_timeout` after the connect.
    Handshake,
    /// Idle: `idle_timeout` after becoming idle or the last `RPING`.
    Idle,
}

impl TunnelTimer {
    pub(crate) const ALL: [Self; 3] = [Self::Connect, Self::Handshake, Self::Idle];

    fn index(self) -> usize {
        match self {
            Self::Connect => 0,
            Self::Handshake => 1,
            Self::Idle => 2,
        }
    }
}

/// A connection's timer table, indexed by [`TunnelTimer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable([Option<Instant>; 3]);

impl TimerTable {
    /// Forgets a deadline the index already popped.
    pub(crate) fn fired(&mut self, timer: TunnelTimer) {
        *self.slot(timer) = None;
    }

    fn slot(&mut self, timer: TunnelTimer) -> &mut Option<Instant> {
        &mut self.0[timer.index()]
    }
}

/// What a deadline in the index belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// One of a connection's timers.
    Tunnel(ConnId, TunnelTimer),
    /// A host's backoff end.
    Backoff(PoolKey),
}

/// Every armed deadline, ordered by time (ties by key, so firing order is deterministic).
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerIndex {
    set: BTreeSet<(Instant, TimerKey)>,
}

impl TimerIndex {
    /// Moves `key` from `old` to `new` in the index (either may be `None`).
    pub(crate) fn update(&mut self, key: TimerKey, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            self.set.remove(&(at, key));
        }
        if let Some(at) = new {
            self.set.insert((at, key));
        }
    }

    /// Sets a connection timer in its table and in the index.
    pub(crate) fn set_tunnel(
        &mut self,
        conn: ConnId,
        table: &mut TimerTable,
        timer: TunnelTimer,
        at: Option<Instant>,
    ) {
        let slot = table.slot(timer);
        self.update(TimerKey::Tunnel(conn, timer), *slot, at);
        *slot = at;
    }

    /// Disarms every timer of a connection.
    pub(crate) fn clear_tunnel(&mut self, conn: ConnId, table: &mut TimerTable) {
        for timer in TunnelTimer::ALL {
            self.set_tunnel(conn, table, timer, None);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest deadline if it is due at `now`. The owner must clear its own
    /// record of it.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let &(at, key) = self.set.first()?;
        if at > now {
            return None;
        }
        self.set.pop_first();
        Some(key)
    }
}
