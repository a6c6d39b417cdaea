//! [`SansIo`]: the calls the machine loop makes on a core state machine, implemented for both cores by
//! one macro (their methods have the same names and shapes); and [`Query`], the read-only questions a
//! handle asks either core.

use std::time::Instant;

use async_channel::Sender;
use revtun_core::command::{Command, ConnId, Transmit};
use revtun_core::stats::{StatsSnapshot, TunnelCounts};

/// The calls the loop makes on a core state machine; the initiator's and the responder's have the same
/// shape (STYLE.md §3).
pub(crate) trait SansIo {
    /// Bytes read from a managed connection.
    fn handle_input(&mut self, conn: ConnId, data: &[u8], now: Instant);
    /// A connection ended (EOF, I/O error, or the user dropped the handed-out stream).
    fn handle_closed(&mut self, conn: ConnId, now: Instant);
    /// Tunnel TLS failed on a connection (its task has ended).
    fn handle_tls_failed(&mut self, conn: ConnId, now: Instant);
    /// The timer fired (or a deadline is due).
    fn handle_timeout(&mut self, now: Instant);
    /// The final shutdown of the core.
    fn shutdown(&mut self, now: Instant);
    /// The core's next transmit.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The core's next command.
    fn poll_command(&mut self) -> Option<Command>;
    /// The core's next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The core's statistics.
    fn stats(&self) -> StatsSnapshot;
    /// The core's tunnel counts.
    fn counts(&self) -> TunnelCounts;
}

macro_rules! sans_io {
    ($core:ty) => {
        impl SansIo for $core {
            fn handle_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
                <$core>::handle_input(self, conn, data, now);
            }
            fn handle_closed(&mut self, conn: ConnId, now: Instant) {
                <$core>::handle_closed(self, conn, now);
            }
            fn handle_tls_failed(&mut self, conn: ConnId, now: Instant) {
                <$core>::handle_tls_failed(self, conn, now);
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$core>::handle_timeout(self, now);
            }
            fn shutdown(&mut self, now: Instant) {
                <$core>::shutdown(self, now);
            }
            fn poll_transmit(&mut self) -> Option<Transmit> {
                <$core>::poll_transmit(self)
            }
            fn poll_command(&mut self) -> Option<Command> {
                <$core>::poll_command(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$core>::poll_timeout(self)
            }
            fn stats(&self) -> StatsSnapshot {
                <$core>::stats(self)
            }
            fn counts(&self) -> TunnelCounts {
                <$core>::counts(self)
            }
        }
    };
}

sans_io!(revtun_core::initiator::Initiator);
sans_io!(revtun_core::responder::Responder);

/// A read-only question to the core, the same on both sides.
pub(crate) enum Query {
    /// [`SansIo::stats`].
    Stats(Sender<StatsSnapshot>),
    /// [`SansIo::counts`].
    Counts(Sender<TunnelCounts>),
}

impl Query {
    /// Answers from `core` (nobody may be waiting any more).
    pub fn answer(self, core: &impl SansIo) {
        let _ = match self {
            Query::Stats(reply) => reply.try_send(core.stats()).is_ok(),
            Query::Counts(reply) => reply.try_send(core.counts()).is_ok(),
        };
    }
}
