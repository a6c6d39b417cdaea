//! What the state machines ask of their driver: connection ids, bytes to write, and socket lifecycle orders.
//!
//! Both [`crate::initiator`] and [`crate::responder`] speak in these terms. The driver owns every socket;
//! the core allocates the [`ConnId`]s (the responder's when the driver reports an accepted socket, the
//! initiator's when it orders a dial) and never reuses one within a machine's lifetime.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// One connection as the core knows it: allocated by the core, unique for the machine's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Bytes the driver must write, in order, on connection `conn`.
///
/// The driver writes every transmit of a connection before acting on a later order for the same
/// connection (a [`Command::Close`], or a hand-out event that gives it the socket).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// The connection to write on.
    pub conn: ConnId,
    /// The bytes, complete: write all of them.
    pub data: Bytes,
}

/// An order to the driver about a connection's lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Command {
    /// Open a TCP (or TLS) connection to `addr` and report it with `handle_connected` or
    /// `handle_connect_failed` (initiator only).
    Dial {
        /// The id the core gave the new connection.
        conn: ConnId,
        /// The host to dial.
        addr: SocketAddr,
    },
    /// Flush the connection's queued transmits, then close it. The core has already forgotten it:
    /// the driver does not report `handle_closed` for it.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
}

/// The output queues of a state machine: what its `poll_transmit`, `poll_command` and `poll_event` drain.
#[derive(Debug)]
pub(crate) struct Outbox<E> {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) commands: VecDeque<Command>,
    pub(crate) events: VecDeque<E>,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self {
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<E> Outbox<E> {
    /// True when every queue is drained (`poll_timeout` may then report a real deadline).
    pub(crate) fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.commands.is_empty() && self.events.is_empty()
    }
}
