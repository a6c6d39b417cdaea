//! The event log of a run, kept as a hash (for the determinism check) plus the last lines (for failure
//! messages).
//!
//! Every line is `<time> <what>`: machine events, the commands they gave, claims, faults and data-leg
//! outcomes. Times are simulated offsets and ids are the machines' own, so the log, and its hash, depend
//! only on the seed. The hash is 64-bit FNV-1a, fixed forever (unlike `std`'s `DefaultHasher`).

use std::collections::VecDeque;
use std::time::Duration;

use super::clock::ms;

/// How many recent lines a failure message shows.
pub const RECENT_LINES: usize = 60;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The running hash and the last [`RECENT_LINES`] lines of a run's log.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    lines: u64,
    recent: VecDeque<String>,
    /// Keep every line (for debugging one seed); off by default to keep memory bounded.
    keep_all: bool,
    all: Vec<String>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Trace {
    /// An empty log; `keep_all` keeps every line in memory too (see [`Trace::all`]).
    pub fn new(keep_all: bool) -> Self {
        Self {
            hash: FNV_OFFSET,
            lines: 0,
            recent: VecDeque::with_capacity(RECENT_LINES),
            keep_all,
            all: Vec::new(),
        }
    }

    /// Appends one line at simulated time `t`.
    pub fn log(&mut self, t: Duration, line: impl AsRef<str>) {
        let line = format!("{} {}", ms(t), line.as_ref());
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        if self.keep_all {
            self.all.push(line.clone());
        }
        self.recent.push_back(line);
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many lines were logged.
    pub fn len(&self) -> u64 {
        self.lines
    }

    /// True when nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The last lines, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &str> {
        self.recent.iter().map(String::as_str)
    }

    /// Every line, if the trace was created with `keep_all`.
    pub fn all(&self) -> &[String] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_content_and_order() {
        let mut a = Trace::new(false);
        let mut b = Trace::new(false);
        a.log(Duration::ZERO, "x");
        a.log(Duration::ZERO, "y");
        b.log(Duration::ZERO, "y");
        b.log(Duration::ZERO, "x");
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::new(true);
        c.log(Duration::ZERO, "x");
        c.log(Duration::ZERO, "y");
        assert_eq!(a.hash(), c.hash());
        assert_eq!(c.all().len(), 2);
        for i in 0..100 {
            c.log(Duration::from_millis(i), "z");
        }
        assert_eq!(c.recent().count(), RECENT_LINES);
    }
}
