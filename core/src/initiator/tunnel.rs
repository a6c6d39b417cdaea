//! Per-connection state: the phase a connection is in, with the one codec it needs there, and its timers.

use std::time::Instant;

use super::host::PoolKey;
use super::timer::{TimerTable, TunnelTimer};
use crate::handshake::ResponseParser;
use crate::keepalive::InitiatorIdle;

/// A connection's phase, carrying what that phase needs. Only [`set_state`](super::Initiator) changes it.
#[derive(Clone, Debug)]
pub(crate) enum TunnelState {
    /// Allocated, not yet counted (exists only inside `open`).
    New,
    /// The driver is dialling.
    Connecting,
    /// Connected; the request was sent; waiting for the response head.
    Handshaking(Box<ResponseParser>),
    /// In the pool: echoing `RPING`s, waiting for the claim.
    Idle(Box<IdleTunnel>),
    /// Claimed: the driver owns the socket; a bare record until `handle_closed`.
    InUse,
    /// Gone (the record is removed by `set_state`).
    Closed,
}

/// An idle tunnel's keepalive reader and whether its first `RPING` came.
#[derive(Clone, Debug)]
pub(crate) struct IdleTunnel {
    pub(crate) reader: InitiatorIdle,
    pub(crate) pinged: bool,
}

/// The phase without its payload, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    New,
    Connecting,
    Handshaking,
    Idle,
    InUse,
    Closed,
}

impl TunnelState {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Self::New => Phase::New,
            Self::Connecting => Phase::Connecting,
            Self::Handshaking(_) => Phase::Handshaking,
            Self::Idle(_) => Phase::Idle,
            Self::InUse => Phase::InUse,
            Self::Closed => Phase::Closed,
        }
    }
}

impl Phase {
    /// The timer armed in this phase, if any.
    pub(crate) fn timer(self) -> Option<TunnelTimer> {
        match self {
            Self::Connecting => Some(TunnelTimer::Connect),
            Self::Handshaking => Some(TunnelTimer::Handshake),
            Self::Idle => Some(TunnelTimer::Idle),
            Self::New | Self::InUse | Self::Closed => None,
        }
    }
}

/// One connection the initiator holds.
#[derive(Clone, Debug)]
pub(crate) struct Tunnel {
    pub(crate) pool: PoolKey,
    pub(crate) state: TunnelState,
    /// When the dial was ordered: the attempt's start, for the backoff's folding of stale failures.
    pub(crate) attempt_started: Instant,
    pub(crate) timers: TimerTable,
}

impl Tunnel {
    pub(crate) fn new(pool: PoolKey, now: Instant) -> Self {
        Self {
            pool,
            state: TunnelState::New,
            attempt_started: now,
            timers: TimerTable::default(),
        }
    }

    /// Idle and its first `RPING` has not come yet.
    pub(crate) fn awaiting_first_ping(&self) -> bool {
        matches!(&self.state, TunnelState::Idle(idle) if !idle.pinged)
    }
}
