//! The applications at both ends of a claimed tunnel: an echo service behind the initiator and a front-door
//! client on the responder, and the checks on the bytes between them.
//!
//! One [`Leg`] is one data connection, keyed by its pipe:
//! - on `InitiatorEvent::Claimed` the echo service takes the initiator's end: it echoes the event's `data`
//!   and every byte it reads afterwards, at once, and closes its end when it reads EOF;
//! - on `ResponderEvent::HandedOut` the front door takes the responder's end: it writes a random payload
//!   (in 1–3 writes up to 20 ms apart, the first at once, right behind the responder's `RDATA` in
//!   claim-marker mode), reads the echo (starting with the event's `data`), and closes its end once the
//!   whole echo is back. In claim-marker mode it reads, as the driver's `TunnelStream` does, through the
//!   core's `ClaimAnswer` filter until the initiator's answer is complete, and gives up (closes) if the
//!   answer is not complete by the event's deadline.
//!
//! Integrity: the echo service must read a prefix of what the front door wrote, and the front door must read
//! a prefix of what the echo service wrote; at the end the echo equals the payload. So every byte written
//! into a claimed tunnel arrives once, in order, unmodified, in both directions; a stray keepalive byte or
//! a lost, duplicated or reordered byte fails the run at once.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use revtun_core::keepalive::{ClaimAnswer, RDATA, RPING};
use revtun_core::responder::ClaimId;

use super::net::PipeId;
use super::rng::SimRng;

/// How a leg ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole echo came back.
    Complete,
    /// The connection ended first (a fault, a lost tunnel, a withdrawn claim).
    Aborted(&'static str),
}

/// One data connection through a claimed tunnel.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The pipe it runs on.
    pub pipe: PipeId,
    /// The initiator (index).
    pub initiator: usize,
    /// The responder (index).
    pub responder: usize,
    /// Claim-marker mode (else Envoy mode).
    pub claim_marker: bool,
    /// The claim it answers, once the responder handed it out.
    pub claim: Option<ClaimId>,
    /// A final-phase leg: it must complete.
    pub must_succeed: bool,
    /// When the first side took it.
    pub started: Duration,
    /// The echo service owns the initiator's end.
    pub echo_open: bool,
    /// The echo service took the initiator's end (it may have closed it since).
    pub echo_started: bool,
    /// The front door owns the responder's end.
    pub front_door_open: bool,
    /// The whole payload the front door sends (empty until handed out).
    pub payload: Vec<u8>,
    /// How much of it was written.
    pub written: usize,
    /// Writes still to do: (when, end offset in `payload`).
    pub pending: VecDeque<(Duration, usize)>,
    /// What the echo service read (and echoed).
    pub at_echo: Vec<u8>,
    /// What the front door read back.
    pub at_front_door: Vec<u8>,
    /// Claim-marker mode: the initiator's answer still to strip from what the front door reads, and
    /// when the front door gives up waiting for it.
    pub answer: Option<(ClaimAnswer, Duration)>,
    /// How it ended.
    pub outcome: Option<Outcome>,
}

impl Leg {
    /// A leg on `pipe` taken first by one side at `now`.
    pub fn new(
        pipe: PipeId,
        initiator: usize,
        responder: usize,
        claim_marker: bool,
        now: Duration,
    ) -> Self {
        Self {
            pipe,
            initiator,
            responder,
            claim_marker,
            claim: None,
            must_succeed: false,
            started: now,
            echo_open: false,
            echo_started: false,
            front_door_open: false,
            payload: Vec::new(),
            written: 0,
            pending: VecDeque::new(),
            at_echo: Vec::new(),
            at_front_door: Vec::new(),
            answer: None,
            outcome: None,
        }
    }

    /// The front door got the tunnel: draws the payload and schedules its writes from `now`.
    pub fn start_front_door(&mut self, rng: &mut SimRng, marker_per_mille: u64, now: Duration) {
        self.front_door_open = true;
        self.payload = payload(rng, self.claim_marker, marker_per_mille);
        let writes = rng.range(1, 3).min(self.payload.len() as u64);
        let mut at = now;
        let mut cuts: Vec<usize> = (1..writes)
            .map(|_| rng.range(1, self.payload.len() as u64 - 1) as usize)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        cuts.push(self.payload.len());
        for end in cuts {
            self.pending.push_back((at, end));
            at += rng.millis(0, 20);
        }
    }

    /// The next write due at or before `now`, as the bytes to write.
    pub fn take_write(&mut self, now: Duration) -> Option<Bytes> {
        let &(at, end) = self.pending.front()?;
        if at > now {
            return None;
        }
        self.pending.pop_front();
        let data = Bytes::copy_from_slice(&self.payload[self.written..end]);
        self.written = end;
        Some(data)
    }

    /// When the next write is due.
    pub fn next_write(&self) -> Option<Duration> {
        self.pending.front().map(|&(at, _)| at)
    }

    /// The echo service read `data`: checks it continues what the front door wrote, and returns what to
    /// echo.
    pub fn echo_reads(&mut self, data: &[u8]) -> Result<Bytes, String> {
        self.at_echo.extend_from_slice(data);
        let sent = &self.payload[..self.written];
        if !sent.starts_with(&self.at_echo) {
            return Err(format!(
                "leg {:?}: the echo service read {} bytes that are not what the front door wrote ({} bytes \
                 written): read {:?}, wrote {:?}",
                self.pipe,
                self.at_echo.len(),
                self.written,
                Snippet(&self.at_echo),
                Snippet(sent),
            ));
        }
        Ok(Bytes::copy_from_slice(data))
    }

    /// When the front door gives up on an answer not complete yet.
    pub fn answer_deadline(&self) -> Option<Duration> {
        match &self.answer {
            Some((filter, at)) if self.front_door_open && !filter.is_complete() => Some(*at),
            _ => None,
        }
    }

    /// The front door read `data`: strips the initiator's answer (claim-marker mode), checks the rest
    /// continues the echo; returns true once the whole payload came back.
    pub fn front_door_reads(&mut self, data: &[u8]) -> Result<bool, String> {
        let data = match &mut self.answer {
            Some((filter, _)) => {
                let range = filter.filter(data).map_err(|e| {
                    format!(
                        "leg {:?}: the initiator's answer to RDATA is malformed: {e}",
                        self.pipe
                    )
                })?;
                &data[range]
            }
            None => data,
        };
        self.at_front_door.extend_from_slice(data);
        if !self.at_echo.starts_with(&self.at_front_door) {
            return Err(format!(
                "leg {:?}: the front door read {} bytes that are not what the echo service wrote: read {:?}, \
                 echoed {:?}",
                self.pipe,
                self.at_front_door.len(),
                Snippet(&self.at_front_door),
                Snippet(&self.at_echo),
            ));
        }
        Ok(!self.payload.is_empty() && self.at_front_door.len() == self.payload.len())
    }

    /// Whether the front door has the whole echo.
    pub fn complete(&self) -> bool {
        !self.payload.is_empty() && self.at_front_door == self.payload
    }
}

/// A payload for one leg. Claim-marker mode: arbitrary bytes, often starting with `RPING`, `RDATA` or a
/// prefix of them. Envoy mode: never starting with a prefix of `RPING` (so never with `R`), but `RPING`
/// may appear later in the payload.
pub fn payload(rng: &mut SimRng, claim_marker: bool, marker_per_mille: u64) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.range(1, 8),
        1 | 2 => rng.range(8, 200),
        _ => rng.range(200, 1_500),
    } as usize;
    let mut out = rng.bytes(len);
    if claim_marker {
        if rng.below(1_000) < marker_per_mille {
            const STARTS: [&[u8]; 8] = [
                &RPING,
                &RDATA,
                b"RPINGRPING",
                b"RDATARPING",
                b"R",
                b"RP",
                b"RPIN",
                b"RDAT",
            ];
            let start = STARTS[rng.index(STARTS.len())];
            let n = start.len().min(out.len());
            out[..n].copy_from_slice(&start[..n]);
        }
    } else {
        if out[0] == b'R' {
            out[0] = b'r';
        }
        if out.len() > 6 && rng.chance(1, 4) {
            // Data that contains keepalive bytes after its first byte is data all the same.
            let at = rng.range(1, out.len() as u64 - 5) as usize;
            out[at..at + 5].copy_from_slice(&RPING);
        }
    }
    out
}

/// Shows at most 32 bytes of a buffer in failure messages.
struct Snippet<'a>(&'a [u8]);

impl std::fmt::Debug for Snippet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.0[..self.0.len().min(32)];
        write!(f, "{:?}", Bytes::copy_from_slice(shown))?;
        if self.0.len() > 32 {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_payloads_never_start_with_r() {
        let mut rng = SimRng::new(5);
        for _ in 0..2_000 {
            let p = payload(&mut rng, false, 1_000);
            assert!(!p.is_empty() && p[0] != b'R');
        }
        let marked = (0..2_000)
            .filter(|_| payload(&mut rng, true, 500)[0] == b'R')
            .count();
        assert!(
            marked > 500,
            "claim-marker payloads start with R often: {marked}"
        );
    }

    #[test]
    fn leg_checks_both_directions() {
        let mut rng = SimRng::new(6);
        let mut leg = Leg::new(PipeId(0), 0, 0, true, Duration::ZERO);
        leg.start_front_door(&mut rng, 0, Duration::ZERO);
        let mut writes = Vec::new();
        while let Some(w) = leg.take_write(Duration::from_secs(1)) {
            writes.push(w);
        }
        let all: Vec<u8> = writes.iter().flat_map(|w| w.iter().copied()).collect();
        assert_eq!(all, leg.payload);
        let echo = leg.echo_reads(&all).unwrap();
        assert!(leg.front_door_reads(&echo).unwrap());
        assert!(leg.complete());

        let mut bad = Leg::new(PipeId(1), 0, 0, true, Duration::ZERO);
        bad.start_front_door(&mut rng, 0, Duration::ZERO);
        assert!(bad.echo_reads(b"RPING").is_err(), "nothing was written yet");
    }
}
