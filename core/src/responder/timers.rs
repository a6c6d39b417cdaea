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
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_slot_per_key_and_min_first() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timers = Timers::default();
        timers.set(TimerKey::Conn(ConnId(1)), Some(at(30)));
        timers.set(TimerKey::Claim(ClaimId(1)), Some(at(20)));
        timers.set(TimerKey::Conn(ConnId(1)), Some(at(10)));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.first(), Some(at(10)));
        assert_eq!(
            timers.due(at(20)),
            vec![TimerKey::Conn(ConnId(1)), TimerKey::Claim(ClaimId(1))]
        );
        timers.set(TimerKey::Conn(ConnId(1)), None);
        assert_eq!(timers.due(at(15)), vec![]);
        assert_eq!(timers.first(), Some(at(20)));
    }
}
