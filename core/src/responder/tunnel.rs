//! Per-connection state of the responder and its one timer.
//!
//! A connection is either a handshake in progress or a registered tunnel; a tunnel is idle (keepalive
//! running) or in use (handed out; a small record with no timer and no buffer). Each state has at most one deadline, so the per-connection
//! timer table is a single slot whose purpose follows from the state ([`ConnTimer`]).

use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use super::auth::PeerTlsIdentity;
use super::pool::{Membership, Slot};
use crate::handshake::RequestParser;
use crate::keepalive::{DataMode, ResponderKeepalive};

/// Where a handshake's tunnel TLS stands.
#[derive(Debug)]
pub(super) enum TlsPhase {
    /// Nothing pending: a plaintext connection, or a TLS session already up, with the verified client
    /// certificate's identity if one was presented.
    Ready(Option<PeerTlsIdentity>),
    /// The driver runs the TLS handshake ([`Responder::handle_accepted_tls`](super::Responder::handle_accepted_tls)):
    /// no input is taken and nothing is authorized until
    /// [`handle_tls_established`](super::Responder::handle_tls_established).
    Pending,
}

/// A handshake in progress.
#[derive(Debug)]
pub(super) struct Handshake {
    pub peer: SocketAddr,
    pub tls: TlsPhase,
    pub parser: RequestParser,
    pub deadline: Instant,
}

/// A registered tunnel.
#[derive(Debug)]
pub(super) struct Tunnel {
    pub membership: Membership,
    pub mode: DataMode,
    pub phase: Phase,
}

/// Where a registered tunnel stands.
#[derive(Debug)]
pub(super) enum Phase {
    /// In the pool; the keepalive runs on the tunnel's own RNG (seeded from the machine's).
    Idle {
        keepalive: ResponderKeepalive,
        rng: Box<ChaCha8Rng>,
    },
    /// Handed out: the driver owns the socket until it reports the close.
    InUse,
}

/// One connection the responder knows.
#[derive(Debug)]
pub(super) enum Conn {
    Handshake(Handshake),
    Tunnel(Tunnel),
}

/// The state of a connection, as the statistics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnState {
    Handshaking,
    Idle,
    InUse,
}

/// The purpose of a connection's timer, fixed by its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnTimer {
    /// Handshaking: the handshake deadline.
    Handshake,
    /// Idle: the keepalive's next ping or echo deadline.
    Keepalive,
}

impl Conn {
    pub fn state(&self) -> ConnState {
        match self {
            Self::Handshake(_) => ConnState::Handshaking,
            Self::Tunnel(t) => match t.phase {
                Phase::Idle { .. } => ConnState::Idle,
                Phase::InUse => ConnState::InUse,
            },
        }
    }

    /// The tunnel's pool slot; `None` while handshaking.
    pub fn slot(&self) -> Option<(&Membership, Slot)> {
        match self {
            Self::Handshake(_) => None,
            Self::Tunnel(t) => Some((
                &t.membership,
                match t.phase {
                    Phase::Idle { .. } => Slot::Idle,
                    Phase::InUse => Slot::InUse,
                },
            )),
        }
    }

    /// The connection's timer, if armed.
    pub fn timer(&self) -> Option<(ConnTimer, Instant)> {
        match self {
            Self::Handshake(h) => Some((ConnTimer::Handshake, h.deadline)),
            Self::Tunnel(t) => match &t.phase {
                Phase::Idle { keepalive, .. } => keepalive
                    .poll_timeout()
                    .map(|at| (ConnTimer::Keepalive, at)),
                Phase::InUse => None,
            },
        }
    }

    /// The peer address of a handshake.
    pub fn handshake_peer(&self) -> Option<SocketAddr> {
        match self {
            Self::Handshake(h) => Some(h.peer),
            Self::Tunnel(_) => None,
        }
    }

    /// How readily the tunnel may be handed out now, if at all ([`Readiness`]).
    pub fn readiness(&self) -> Option<Readiness> {
        match self {
            Self::Tunnel(Tunnel {
                mode,
                phase: Phase::Idle { keepalive, .. },
                ..
            }) => readiness(*mode, keepalive),
            _ => None,
        }
    }
}

/// How readily an idle tunnel can be handed out; claims take the best one a node has (then the oldest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Readiness {
    /// No ping in flight and no missed echo: its last echo (or its registration) is the freshest proof of
    /// life the keepalive has.
    Fresh,
    /// Claim-marker mode only: a ping is in flight and no echo was missed yet. The echo, if it comes, is
    /// stripped in front of the initiator's `RDATA` answer.
    PingInFlight,
}

/// The hand-out rule for an idle tunnel: never after a missed echo (the tunnel may be dead, and a claimed
/// tunnel cannot go back to the pool); in Envoy mode never with a ping in flight (no echo may arrive after
/// the hand-off, it would be taken for data).
pub(super) fn readiness(mode: DataMode, keepalive: &ResponderKeepalive) -> Option<Readiness> {
    if keepalive.misses() > 0 || keepalive.is_dead() {
        return None;
    }
    match (keepalive.ping_in_flight(), mode) {
        (false, _) => Some(Readiness::Fresh),
        (true, DataMode::ClaimMarker) => Some(Readiness::PingInFlight),
        (true, DataMode::Envoy) => None,
    }
}
