//! The initiator's timers: one per connection (the one of its phase) and one backoff timer per host, in one
//! ordered index so that `poll_timeout` is the minimum without a scan.

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
pub(crate) type TimerIndex = crate::timer::Deadlines<TimerKey>;

/// Disarms every timer of a connection.
pub(crate) fn clear_tunnel(index: &mut TimerIndex, conn: ConnId) {
    for timer in TunnelTimer::ALL {
        index.set(TimerKey::Tunnel(conn, timer), None);
    }
}
