//! [`ClaimAnswer`]: the responder's read-side filter for the initiator's answer to `RDATA` (claim-marker
//! mode).
//!
//! The responder hands a claimed tunnel to its user in the same turn as it writes `RDATA`, so the user's
//! first bytes can follow the marker at once. What the initiator sends back starts with its answer: zero or
//! more whole `RPING` echoes (of a ping that crossed the claim), then `RDATA`, then data. The filter strips
//! that answer exactly once, across any split of the reads, and lets everything after it through.

use std::ops::Range;

use super::{Classified, KeepaliveError, MARKER_LEN, Marker, Pending, classify, unexpected};

/// Where the answer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Still reading `RPING` echoes, waiting for `RDATA`.
    Waiting,
    /// `RDATA` seen: everything is data.
    Complete,
    /// Bytes that are neither marker came first.
    Failed(KeepaliveError),
}

/// Strips the initiator's answer (`RPING`* `RDATA`) from the bytes the responder reads on a tunnel it
/// claimed in claim-marker mode.
///
/// Feed it every byte read from the tunnel after the claim, in order; [`filter`](Self::filter) returns the
/// part of each read that is data. Whole `RPING`s are dropped (any number), fewer than five bytes that are
/// a prefix of either marker wait for more, `RDATA` ends the answer and every byte after it is data,
/// whatever it is (`RPING` and `RDATA` included). Anything else before `RDATA` is a sticky
/// [`KeepaliveError::UnexpectedBytes`].
///
/// Because everything before the answer's end is marker bytes, the data in one read is always a suffix of
/// it: a caller can read into its own buffer and move that suffix to the front, with no copy of its own.
/// Once [`is_complete`](Self::is_complete), the filter passes every read through whole and the caller may
/// drop it.
///
/// Start it with [`ResponderKeepalive::into_answer`](super::ResponderKeepalive::into_answer), so bytes the
/// keepalive already buffered are not lost. Never panics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimAnswer {
    pending: Pending,
    state: State,
    echoes: usize,
}

impl Default for ClaimAnswer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaimAnswer {
    /// A filter with nothing buffered.
    #[must_use]
    pub fn new() -> Self {
        Self {
            pending: Pending::default(),
            state: State::Waiting,
            echoes: 0,
        }
    }

    /// A filter that starts with `pending`, bytes read earlier that were not yet taken as a unit.
    pub(super) fn with_pending(pending: Pending) -> Self {
        Self {
            pending,
            ..Self::new()
        }
    }

    /// Consumes all of `input` and returns the range of it that is data: empty while the answer is not
    /// complete, the bytes after `RDATA` in the read that completes it, all of `input` afterwards. The range
    /// always ends at `input.len()`.
    ///
    /// # Errors
    /// [`KeepaliveError::UnexpectedBytes`] for anything but whole `RPING`s before `RDATA` (a protocol error:
    /// fail the stream); returned again on every later call.
    pub fn filter(&mut self, input: &[u8]) -> Result<Range<usize>, KeepaliveError> {
        let end = input.len();
        match &self.state {
            State::Waiting => {}
            State::Complete => return Ok(0..end),
            State::Failed(error) => return Err(error.clone()),
        }
        let mut at = 0;
        if !self.pending.is_empty() {
            // Complete the buffered prefix with the head of this read first.
            at = self.pending.fill_from(input);
            match classify(self.pending.as_slice()) {
                Classified::Complete(Marker::Ping) => self.echo(),
                Classified::Complete(Marker::Data) => return Ok(self.complete(at..end)),
                // Still shorter than a marker, so the whole read went into the buffer.
                Classified::Partial => return Ok(end..end),
                Classified::Other => return Err(self.fail(unexpected(self.pending.as_slice()))),
            }
        }
        loop {
            let rest = &input[at..];
            match classify(rest) {
                Classified::Complete(Marker::Ping) => {
                    self.echo();
                    at += MARKER_LEN;
                }
                Classified::Complete(Marker::Data) => {
                    return Ok(self.complete(at + MARKER_LEN..end));
                }
                Classified::Partial => {
                    self.pending.set(rest);
                    return Ok(end..end);
                }
                Classified::Other => return Err(self.fail(unexpected(rest))),
            }
        }
    }

    /// Whether the initiator's `RDATA` has been seen: from now on every byte is data.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// How many `RPING` echoes were dropped so far.
    #[must_use]
    pub fn echoes_dropped(&self) -> usize {
        self.echoes
    }

    fn echo(&mut self) {
        self.echoes += 1;
        self.pending.clear();
        tracing::trace!("dropped an RPING echo before the RDATA answer");
    }

    fn complete(&mut self, data: Range<usize>) -> Range<usize> {
        self.pending.clear();
        self.state = State::Complete;
        data
    }

    fn fail(&mut self, error: KeepaliveError) -> KeepaliveError {
        self.state = State::Failed(error.clone());
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` in order; returns the data, or the first error.
    fn run(filter: &mut ClaimAnswer, reads: &[&[u8]]) -> Result<Vec<u8>, KeepaliveError> {
        let mut data = Vec::new();
        for read in reads {
            let range = filter.filter(read)?;
            assert_eq!(range.end, read.len(), "data is a suffix of the read");
            data.extend_from_slice(&read[range]);
        }
        Ok(data)
    }

    #[test]
    fn echoes_and_rdata_split_anywhere_are_stripped_once() {
        let mut f = ClaimAnswer::new();
        assert_eq!(
            run(&mut f, &[b"RPI", b"NGRDA", b"TAhello"]),
            Ok(b"hello".to_vec())
        );
        assert!(f.is_complete());
        assert_eq!(f.echoes_dropped(), 1);
        // After the answer, marker bytes are data.
        assert_eq!(
            run(&mut f, &[b"RDATA", b"RPING"]),
            Ok(b"RDATARPING".to_vec())
        );
    }

    #[test]
    fn a_bare_answer_gives_no_data_and_completes() {
        let mut f = ClaimAnswer::new();
        assert_eq!(f.filter(b"RDATA"), Ok(5..5));
        assert!(f.is_complete());
        assert_eq!(f.filter(b""), Ok(0..0));
        assert_eq!(f.filter(b"x"), Ok(0..1));
    }

    #[test]
    fn garbage_before_the_answer_is_a_sticky_error() {
        let mut f = ClaimAnswer::new();
        let err = f.filter(b"RPINGHELLO").unwrap_err();
        assert_eq!(
            err,
            KeepaliveError::UnexpectedBytes {
                got: bytes::Bytes::from_static(b"HELLO")
            }
        );
        assert_eq!(f.filter(b"RDATA"), Err(err));
        assert!(!f.is_complete());

        let mut split = ClaimAnswer::new();
        assert_eq!(split.filter(b"RP"), Ok(2..2));
        assert!(
            split.filter(b"X").is_err(),
            "a prefix that turns into garbage"
        );
    }

    #[test]
    fn empty_reads_change_nothing() {
        let mut f = ClaimAnswer::new();
        assert_eq!(f.filter(b""), Ok(0..0));
        assert_eq!(f.filter(b"RD"), Ok(2..2));
        assert_eq!(f.filter(b""), Ok(0..0));
        assert_eq!(run(&mut f, &[b"ATAok"]), Ok(b"ok".to_vec()));
    }
}
