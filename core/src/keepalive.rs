//! The idle phase of a tunnel: `RPING` keepalive and the `RDATA` claim marker (DESIGN.md, "Idle phase:
//! keepalive", "Data phase, Envoy mode", "Data phase, claim-marker mode").
//!
//! Four small sans-IO pieces, composed by the initiator and responder state machines:
//!
//! | piece | side | job |
//! |---|---|---|
//! | [`InitiatorIdle`] | initiator | echo each `RPING`, detect the claim, hand over the first data bytes intact |
//! | [`ResponderKeepalive`] | responder | ping schedule, one ping in flight, echo deadline, misses, threshold |
//! | [`ClaimAnswer`] | responder (claim-marker mode) | strip the initiator's answer (`RPING` echoes, `RDATA`) from the data read |
//! | [`classify`] | both | what the first bytes of some input are |
//!
//! Input is taken as borrowed slices of any length: a read may hold several markers, a marker split across
//! reads, or markers followed by data. Fewer than five bytes that could still become a marker are buffered
//! ("wait for more"); data bytes are returned intact as [`Bytes`], exactly once and in order.
//!
//! Nothing here panics on any input bytes; protocol violations are [`KeepaliveError`]s.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::RngCore;

use crate::backoff::{jitter_unit, jittered, saturating_add};

mod answer;

pub use answer::ClaimAnswer;

/// The keepalive ping, `52 50 49 4E 47`. The responder sends it; the initiator echoes it unchanged.
pub const RPING: [u8; 5] = *b"RPING";

/// The claim marker (claim-marker mode only), `52 44 41 54 41`. The responder sends it to claim a tunnel; the
/// initiator answers with the same five bytes.
pub const RDATA: [u8; 5] = *b"RDATA";

/// Length of both markers.
pub const MARKER_LEN: usize = 5;

/// One of the two five-byte markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Marker {
    /// [`RPING`]: a keepalive ping or its echo.
    Ping,
    /// [`RDATA`]: the claim marker or its answer.
    Data,
}

impl Marker {
    /// The marker's five bytes.
    #[must_use]
    pub const fn bytes(self) -> [u8; MARKER_LEN] {
        match self {
            Self::Ping => RPING,
            Self::Data => RDATA,
        }
    }

    /// The marker as a ready-to-send transmit (no allocation).
    #[must_use]
    pub fn frame(self) -> Bytes {
        match self {
            Self::Ping => Bytes::from_static(&RPING),
            Self::Data => Bytes::from_static(&RDATA),
        }
    }
}

/// What the start of some input is, by [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// The input starts with a whole marker (more bytes may follow it).
    Complete(Marker),
    /// The input is shorter than [`MARKER_LEN`] and a prefix of `RPING` or `RDATA`, including the empty input:
    /// wait for more bytes.
    Partial,
    /// Neither: the input cannot start with a marker.
    Other,
}

/// Classifies the start of `input`: a whole marker, a proper prefix of one (wait for more), or other bytes.
///
/// The empty input is [`Classified::Partial`] (it is a prefix of both markers). Never panics.
#[must_use]
pub fn classify(input: &[u8]) -> Classified {
    match input.get(..MARKER_LEN) {
        Some(head) if head == RPING => Classified::Complete(Marker::Ping),
        Some(head) if head == RDATA => Classified::Complete(Marker::Data),
        Some(_) => Classified::Other,
        None if RPING.starts_with(input) || RDATA.starts_with(input) => Classified::Partial,
        None => Classified::Other,
    }
}

/// How a claimed tunnel switches from idle to data, fixed by the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DataMode {
    /// No marker on the wire (Envoy's protocol): the first bytes from the responder that are not `RPING` are
    /// data. Data must not begin with a prefix of `RPING`.
    #[default]
    Envoy,
    /// `x-revtun-features: claim-marker` was negotiated: the responder claims with `RDATA`, the initiator
    /// answers `RDATA`, and everything after the markers is data, whatever its bytes.
    ClaimMarker,
}

/// Errors of the idle-phase machines. After an error the machine stays failed and returns it again.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepaliveError {
    /// Claim-marker mode: the peer sent bytes other than whole `RPING`s before its `RDATA` (a protocol error;
    /// close the tunnel). `got` holds the offending bytes, at most [`MARKER_LEN`] of them.
    #[error("claim-marker mode: expected RPING or RDATA, got {got:?}")]
    UnexpectedBytes {
        /// The (at most five) bytes that are neither marker nor a prefix of one.
        got: Bytes,
    },
    /// Input after the tunnel was claimed: the data phase owns the stream from then on, so this is a caller
    /// bug.
    #[error("input after the claim: the data phase owns the stream")]
    AlreadyClaimed,
}

/// Up to four bytes received but not yet classified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    buf: [u8; MARKER_LEN],
    len: usize,
}

impl Pending {
    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the head of `input` up to [`MARKER_LEN`] buffered bytes; returns how many bytes it took.
    fn fill_from(&mut self, input: &[u8]) -> usize {
        let took = input.len().min(MARKER_LEN - self.len);
        self.buf[self.len..self.len + took].copy_from_slice(&input[..took]);
        self.len += took;
        took
    }

    /// Buffers `rest`, which must be shorter than [`MARKER_LEN`] (longer input keeps its first four bytes).
    fn set(&mut self, rest: &[u8]) {
        let len = rest.len().min(MARKER_LEN - 1);
        self.buf[..len].copy_from_slice(&rest[..len]);
        self.len = len;
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// `head` followed by `tail`, as one owned buffer.
fn concat(head: &[u8], tail: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(head.len() + tail.len());
    out.extend_from_slice(head);
    out.extend_from_slice(tail);
    out.freeze()
}

/// The offending bytes for [`KeepaliveError::UnexpectedBytes`].
fn unexpected(bytes: &[u8]) -> KeepaliveError {
    KeepaliveError::UnexpectedBytes {
        got: Bytes::copy_from_slice(&bytes[..bytes.len().min(MARKER_LEN)]),
    }
}

/// Where a marker stream stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Claimed,
    Failed(KeepaliveError),
}

/// What the next bytes of an idle stream mean.
enum Step {
    /// A whole `RPING`.
    Ping,
    /// Fewer than five bytes that may still become a marker.
    Wait,
    /// Envoy mode: these bytes (and all after them) are data.
    Data,
    /// Claim-marker mode: a whole `RDATA`; the bytes after it are data.
    Marker,
    /// Claim-marker mode: neither marker nor a prefix of one.
    Invalid,
}

fn step(mode: DataMode, bytes: &[u8]) -> Step {
    match mode {
        DataMode::Envoy => match bytes.get(..MARKER_LEN) {
            Some(head) if head == RPING => Step::Ping,
            Some(_) => Step::Data,
            // Only an `RPING` prefix waits: `RD…` can never become a ping, so it is data at once.
            None if RPING.starts_with(bytes) => Step::Wait,
            None => Step::Data,
        },
        DataMode::ClaimMarker => match classify(bytes) {
            Classified::Complete(Marker::Ping) => Step::Ping,
            Classified::Complete(Marker::Data) => Step::Marker,
            Classified::Partial => Step::Wait,
            Classified::Other => Step::Invalid,
        },
    }
}

/// The shared reader of an idle stream: counts whole `RPING`s and stops at the claim.
#[derive(Clone, Debug)]
struct IdleReader {
    mode: DataMode,
    pending: Pending,
    phase: Phase,
}

/// What [`IdleReader::read`] found.
struct ReadOutcome {
    pings: usize,
    /// Set at the claim: whether a marker claimed, and the data after it (or, in Envoy mode, all of it).
    claim: Option<(bool, Bytes)>,
}

impl IdleReader {
    fn new(mode: DataMode) -> Self {
        Self {
            mode,
            pending: Pending::default(),
            phase: Phase::Idle,
        }
    }

    fn read(&mut self, input: &[u8]) -> Result<ReadOutcome, KeepaliveError> {
        match &self.phase {
            Phase::Idle => {}
            Phase::Claimed => return Err(KeepaliveError::AlreadyClaimed),
            Phase::Failed(error) => return Err(error.clone()),
        }
        let result = self.read_idle(input);
        match &result {
            Ok(ReadOutcome { claim: Some(_), .. }) => self.phase = Phase::Claimed,
            Ok(_) => {}
            Err(error) => self.phase = Phase::Failed(error.clone()),
        }
        result
    }

    fn read_idle(&mut self, input: &[u8]) -> Result<ReadOutcome, KeepaliveError> {
        let mut pings = 0;
        let mut rest = input;
        if !self.pending.is_empty() {
            // Complete the buffered prefix with the head of this read first.
            let buffered = self.pending.len;
            let took = self.pending.fill_from(rest);
            match step(self.mode, self.pending.as_slice()) {
                Step::Ping => {
                    pings += 1;
                    self.pending.clear();
                    rest = &rest[took..];
                }
                // Still shorter than a marker, so the whole read went into the buffer.
                Step::Wait => return Ok(ReadOutcome { pings, claim: None }),
                Step::Data => {
                    let data = concat(&self.pending.as_slice()[..buffered], rest);
                    self.pending.clear();
                    return Ok(ReadOutcome {
                        pings,
                        claim: Some((false, data)),
                    });
                }
                Step::Marker => {
                    self.pending.clear();
                    return Ok(ReadOutcome {
                        pings,
                        claim: Some((true, Bytes::copy_from_slice(&rest[took..]))),
                    });
                }
                Step::Invalid => return Err(unexpected(self.pending.as_slice())),
            }
        }
        loop {
            match step(self.mode, rest) {
                Step::Ping => {
                    pings += 1;
                    rest = &rest[MARKER_LEN..];
                }
                Step::Wait => {
                    self.pending.set(rest);
                    return Ok(ReadOutcome { pings, claim: None });
                }
                Step::Data => {
                    return Ok(ReadOutcome {
                        pings,
                        claim: Some((false, Bytes::copy_from_slice(rest))),
                    });
                }
                Step::Marker => {
                    let data = Bytes::copy_from_slice(&rest[MARKER_LEN..]);
                    return Ok(ReadOutcome {
                        pings,
                        claim: Some((true, data)),
                    });
                }
                Step::Invalid => return Err(unexpected(rest)),
            }
        }
    }
}

/// Initiator side of an idle tunnel: echoes pings and detects the claim.
///
/// Feed it every byte read from the tunnel after the handshake response (starting with the bytes that
/// followed the response head), in order. For each call, first write `RPING` [`IdleInput::pings`] times, then
/// act on [`IdleInput::claim`].
///
/// - [`DataMode::Envoy`]: whole `RPING`s are echoed; the first bytes that cannot be (the start of) an `RPING`
///   are data, together with any buffered prefix (`RPIN` then `X` is the data `RPINX`; `RD` is data at once,
///   since it can never become a ping). `RPINGhello` in one read is one echo and the data `hello`.
/// - [`DataMode::ClaimMarker`]: whole `RPING`s are echoed; `RDATA` claims (answer `RDATA`), and every byte after
///   it is data, whatever it is (`RPING` and `RDATA` included). Anything else before `RDATA`, including a
///   split `RPING` that turns into something else, is [`KeepaliveError::UnexpectedBytes`].
///
/// After the claim the data phase owns the stream: further calls return [`KeepaliveError::AlreadyClaimed`].
/// After an error the machine stays failed and returns the same error.
#[derive(Clone, Debug)]
pub struct InitiatorIdle {
    reader: IdleReader,
}

/// The result of [`InitiatorIdle::handle_input`]. Write the echoes before anything the claim asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct IdleInput {
    /// How many `RPING`s this input completed; answer each with exactly `RPING`, in order, before anything
    /// else. Pings that arrive before the claim in the same read are counted too.
    pub pings: usize,
    /// Set once, when the responder claimed the tunnel.
    pub claim: Option<InitiatorClaim>,
}

/// The responder claimed the tunnel: from now on it carries one data connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorClaim {
    /// Claim-marker mode: write `RDATA` (after the echoes of this same input, before any data).
    /// Always `false` in Envoy mode.
    pub answer_marker: bool,
    /// The data already read, intact and in order: hand it to the local service first. Never empty in Envoy
    /// mode; may be empty in claim-marker mode.
    pub data: Bytes,
}

impl InitiatorIdle {
    /// A tunnel that has just passed the handshake in `mode`.
    #[must_use]
    pub fn new(mode: DataMode) -> Self {
        Self {
            reader: IdleReader::new(mode),
        }
    }

    /// The data mode this tunnel was created with.
    #[must_use]
    pub fn mode(&self) -> DataMode {
        self.reader.mode
    }

    /// Consumes all of `input`; see the type's documentation.
    ///
    /// # Errors
    /// [`KeepaliveError::UnexpectedBytes`] in claim-marker mode for anything but whole `RPING`s before `RDATA`
    /// (close the tunnel; echoes counted earlier in the same read are dropped with it);
    /// [`KeepaliveError::AlreadyClaimed`] when called after the claim.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<IdleInput, KeepaliveError> {
        let ReadOutcome { pings, claim } = self.reader.read(input)?;
        let claim = claim.map(|(answer_marker, data)| InitiatorClaim {
            answer_marker,
            data,
        });
        Ok(IdleInput { pings, claim })
    }

    /// Whether the claim has been seen.
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        self.reader.phase == Phase::Claimed
    }
}

/// Responder keepalive settings (`ping_interval`, `ping_failure_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Time between pings, before jitter (default 2 s). Sub-second values are allowed; values below
    /// [`MIN_PING_INTERVAL`] are treated as it. The echo deadline is half of it.
    pub interval: Duration,
    /// Misses in a row that kill the tunnel (default 3); 0 is treated as 1.
    pub failure_threshold: u32,
}

/// The smallest ping interval used; shorter configured intervals (zero included) are raised to it so that
/// deadlines always move forward.
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);

impl Default for KeepaliveConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            failure_threshold: 3,
        }
    }
}

impl KeepaliveConfig {
    /// The settings actually used: interval at least [`MIN_PING_INTERVAL`], threshold at least 1.
    #[must_use]
    pub fn normalized(self) -> Self {
        Self {
            interval: self.interval.max(MIN_PING_INTERVAL),
            failure_threshold: self.failure_threshold.max(1),
        }
    }

    /// How long the responder waits for an echo: `interval / 2` (of the normalized interval).
    #[must_use]
    pub fn echo_timeout(self) -> Duration {
        self.normalized().interval / 2
    }
}

/// What the responder's driver must do after [`ResponderKeepalive::handle_timeout`] or
/// [`ResponderKeepalive::handle_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum KeepaliveAction {
    /// Write `RPING` ([`Marker::Ping`]`.frame()`) on the tunnel.
    SendPing,
    /// `failure_threshold` misses in a row: close the tunnel. Returned once; afterwards the machine is inert.
    Dead,
}

/// Responder side of an idle tunnel: the ping schedule, one ping in flight, the echo deadline, misses.
///
/// Timeline (all times from the `now` passed in):
/// - The first ping is due one jittered interval after [`new`](Self::new): `interval × (1 + U[0, 0.15))`.
/// - Sending a ping (in [`handle_timeout`](Self::handle_timeout)) arms the echo deadline at `now + interval/2`
///   and schedules the next send at `now + jittered interval`.
/// - At most one ping is in flight. While one is, the next send is never due: [`poll_timeout`](Self::poll_timeout)
///   reports the echo deadline only, and a send time that passes is simply skipped.
/// - A missed deadline, or five received bytes that are not `RPING`, is one miss: the deadline is re-armed at
///   `now + interval/2` and no other ping is sent. `failure_threshold` misses in a row return
///   [`KeepaliveAction::Dead`].
/// - An echo clears the ping in flight and the misses. The next ping keeps its schedule if that is still in
///   the future; after a late echo (the scheduled send already passed) it goes one jittered interval after the
///   echo, so pings never go out back to back.
/// - Received bytes are taken in five-byte units, in order; fewer than five wait for more. An `RPING` while no
///   ping is in flight (unsolicited) is ignored. Five non-`RPING` bytes while no ping is in flight still count
///   as a miss (they can reach the threshold), but there is no deadline to re-arm.
/// - Time never goes backwards: a `now` earlier than one seen before is taken as the latest one seen.
///   Spurious or early [`handle_timeout`](Self::handle_timeout) calls do nothing. After `handle_timeout(now)`
///   the next [`poll_timeout`](Self::poll_timeout) is always later than `now` (or `None`), so a driver never
///   spins.
///
/// EOF and read errors are the driver's to report: they kill the tunnel at once, outside this machine.
#[derive(Clone, Debug)]
pub struct ResponderKeepalive {
    config: KeepaliveConfig,
    /// When the next ping is due (meaningful while no ping is in flight).
    next_ping: Instant,
    /// The echo deadline while a ping is in flight.
    deadline: Option<Instant>,
    misses: u32,
    dead: bool,
    pending: Pending,
    last_now: Instant,
}

impl ResponderKeepalive {
    /// Starts the keepalive of a tunnel registered at `now`; the first ping is due one jittered interval later.
    pub fn new(config: KeepaliveConfig, now: Instant, rng: &mut impl RngCore) -> Self {
        let config = config.normalized();
        let next_ping = saturating_add(now, jittered(config.interval, jitter_unit(rng)));
        Self {
            config,
            next_ping,
            deadline: None,
            misses: 0,
            dead: false,
            pending: Pending::default(),
            last_now: now,
        }
    }

    /// The (normalized) settings in use.
    #[must_use]
    pub fn config(&self) -> KeepaliveConfig {
        self.config
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do: the echo deadline while a ping is
    /// in flight, otherwise the next ping's send time; `None` once dead.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        Some(self.deadline.unwrap_or(self.next_ping))
    }

    /// Sends a due ping or counts a missed echo deadline. Calls before the timeout are no-ops (`None`).
    #[must_use]
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
    ) -> Option<KeepaliveAction> {
        let now = self.advance(now);
        if self.dead {
            return None;
        }
        match self.deadline {
            Some(deadline) if now >= deadline => {
                tracing::trace!(misses = self.misses + 1, "keepalive echo deadline missed");
                self.miss(now)
            }
            Some(_) => None,
            None if now >= self.next_ping => {
                self.deadline = Some(saturating_add(now, self.config.echo_timeout()));
                self.next_ping =
                    saturating_add(now, jittered(self.config.interval, jitter_unit(rng)));
                Some(KeepaliveAction::SendPing)
            }
            None => None,
        }
    }

    /// Takes bytes read from the idle tunnel: echoes, or five-byte units that are not `RPING` (each one miss).
    /// Returns [`KeepaliveAction::Dead`] when a miss reaches the threshold (bytes after it are ignored); never
    /// [`KeepaliveAction::SendPing`].
    #[must_use]
    pub fn handle_input(
        &mut self,
        input: &[u8],
        now: Instant,
        rng: &mut impl RngCore,
    ) -> Option<KeepaliveAction> {
        let now = self.advance(now);
        if self.dead {
            return None;
        }
        let mut rest = input;
        if !self.pending.is_empty() {
            let took = self.pending.fill_from(rest);
            rest = &rest[took..];
            if self.pending.len < MARKER_LEN {
                return None;
            }
            let unit = self.pending.buf;
            self.pending.clear();
            if let Some(action) = self.unit(&unit, now, rng) {
                return Some(action);
            }
        }
        while let Some((unit, tail)) = rest.split_first_chunk::<MARKER_LEN>() {
            if let Some(action) = self.unit(unit, now, rng) {
                return Some(action);
            }
            rest = tail;
        }
        self.pending.set(rest);
        None
    }

    /// Whether a ping was sent and its echo has not arrived yet. The responder hands out a tunnel in Envoy
    /// mode only while this is `false`.
    #[must_use]
    pub fn ping_in_flight(&self) -> bool {
        self.deadline.is_some()
    }

    /// The echo deadline of the ping in flight, if any.
    #[must_use]
    pub fn echo_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// When the next ping is due, if none is in flight (and the tunnel is alive).
    #[must_use]
    pub fn next_ping_at(&self) -> Option<Instant> {
        (!self.dead && self.deadline.is_none()).then_some(self.next_ping)
    }

    /// Misses in a row so far.
    #[must_use]
    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// Whether the threshold was reached.
    #[must_use]
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Received bytes not yet taken as a unit (fewer than five). In Envoy mode they belong to the data leg if
    /// the tunnel is handed out now.
    #[must_use]
    pub fn buffered(&self) -> &[u8] {
        self.pending.as_slice()
    }

    /// Claim-marker mode: the responder wrote `RDATA` and handed the tunnel out; its reads go through a
    /// [`ClaimAnswer`] that starts with the bytes this keepalive buffered.
    #[must_use]
    pub fn into_answer(self) -> ClaimAnswer {
        ClaimAnswer::with_pending(self.pending)
    }

    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// One five-byte unit of input.
    fn unit(
        &mut self,
        unit: &[u8; MARKER_LEN],
        now: Instant,
        rng: &mut impl RngCore,
    ) -> Option<KeepaliveAction> {
        if *unit != RPING {
            tracing::trace!(
                misses = self.misses + 1,
                ?unit,
                "keepalive: five bytes that are not RPING"
            );
            return self.miss(now);
        }
        if self.deadline.take().is_none() {
            tracing::trace!("keepalive: unsolicited RPING ignored");
            return None;
        }
        self.misses = 0;
        if self.next_ping <= now {
            // Late echo: the scheduled send passed while the ping was in flight.
            self.next_ping = saturating_add(now, jittered(self.config.interval, jitter_unit(rng)));
        }
        None
    }

    fn miss(&mut self, now: Instant) -> Option<KeepaliveAction> {
        self.misses = self.misses.saturating_add(1);
        if self.misses >= self.config.failure_threshold {
            self.dead = true;
            self.deadline = None;
            tracing::debug!(misses = self.misses, "keepalive: tunnel dead");
            return Some(KeepaliveAction::Dead);
        }
        if self.deadline.is_some() {
            self.deadline = Some(saturating_add(now, self.config.echo_timeout()));
        }
        None
    }
}
