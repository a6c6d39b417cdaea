//! The responder's deadlines in one ordered index: one slot per connection and one per claim.
//! [`Timers::first`] is the min that `poll_timeout` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::claim::ClaimId;
use crate::command::ConnId;

/// Whose deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// A connection's timer (its purpose follows from its state).
    Conn(ConnId),
    /// A claim's expiry.
    Claim(ClaimId),
}

/// Ordered deadlines, at most one per key.
#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BTreeSet<(Instant, TimerKey)>,
    at: BTreeMap<TimerKey, Instant>,
}

impl Timers {
    /// Arms (`Some`) or clears (`None`) the key's deadline.
    pub fn set(&mut self, key: TimerKey, when: Option<Instant>) {
        if let Some(old) = self.at.remove(&key) {
            self.queue.remove(&(old, key));
        }
        if let Some(when) = when {
            self.at.insert(key, when);
            self.queue.insert((when, key));
        }
    }

    /// The earliest deadline.
    pub fn first(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// The key's deadline.
    pub fn get(&self, key: TimerKey) -> Option<Instant> {
        self.at.get(&key).copied()
    }

    /// The keys due at `now`, earliest first (ties by key).
    pub fn due(&self, now: Instant) -> Vec<TimerKey> {
        self.queue
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, key)| key)
            .collect()
    }

    /// Number of armed deadlines.
    pub fn len(&self) -> usize {
        self.at.len()
    }
}
