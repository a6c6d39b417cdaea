//! One ordered index of deadlines, shared by the state machines: at most one deadline per key, the earliest
//! first, ties broken by key so that firing order is deterministic. `poll_timeout` is [`Deadlines::first`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Armed deadlines keyed by `K` (a connection's timer, a host's backoff, a claim's expiry, …).
#[derive(Clone, Debug)]
pub(crate) struct Deadlines<K> {
    queue: BTreeSet<(Instant, K)>,
    at: BTreeMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            queue: BTreeSet::new(),
            at: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    /// Arms (`Some`) or clears (`None`) the key's deadline, replacing any earlier one.
    pub(crate) fn set(&mut self, key: K, when: Option<Instant>) {
        if let Some(old) = self.at.remove(&key) {
            self.queue.remove(&(old, key));
        }
        if let Some(when) = when {
            self.at.insert(key, when);
            self.queue.insert((when, key));
        }
    }

    /// The key's deadline.
    pub(crate) fn get(&self, key: K) -> Option<Instant> {
        self.at.get(&key).copied()
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest key if its deadline is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        self.at.remove(&key);
        Some(key)
    }

    /// The keys due at `now`, earliest first, left armed.
    pub(crate) fn due(&self, now: Instant) -> Vec<K> {
        self.queue
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, key)| key)
            .collect()
    }

    /// Number of armed deadlines.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_deadline_per_key_earliest_first() {
        #[allow(clippy::disallowed_methods, reason = "a test needs one real instant")]
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut deadlines = Deadlines::default();
        deadlines.set(1u8, Some(at(30)));
        deadlines.set(2u8, Some(at(20)));
        deadlines.set(1u8, Some(at(10)));
        assert_eq!(deadlines.len(), 2);
        assert_eq!(deadlines.first(), Some(at(10)));
        assert_eq!(deadlines.due(at(20)), vec![1, 2]);
        assert_eq!(deadlines.pop_due(at(5)), None);
        assert_eq!(deadlines.pop_due(at(15)), Some(1));
        assert_eq!(deadlines.get(1), None);
        assert_eq!(deadlines.pop_due(at(15)), None);
        deadlines.set(2, None);
        assert_eq!(deadlines.first(), None);
        assert_eq!(deadlines.len(), 0);
    }
}
