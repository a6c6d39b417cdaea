//! Statistics as the admin endpoint shows them: a sorted snapshot of `(dotted name, value)` pairs.
//!
//! The state machines keep their gauges and counters in plain integers updated at one chokepoint each
//! (`set_state`), and render them on demand with [`StatsSnapshot`]. Names are the dotted forms of
//! `DESIGN.md` (e.g. `downstream_reverse_connection.host.10.0.0.1:9000.connected`); ids are written as they
//! are.

use std::collections::BTreeMap;

/// Whether a statistic only grows (a counter) or goes up and down (a gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatKind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A sorted set of named statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    entries: BTreeMap<String, (StatKind, u64)>,
}

impl StatsSnapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, kind: StatKind, value: u64) {
        self.entries.insert(name.into(), (kind, value));
    }

    /// Adds `value` to `name` (creating it at 0 first); cluster-level statistics sum their hosts this way.
    pub fn add(&mut self, name: impl Into<String>, kind: StatKind, value: u64) {
        let entry = self.entries.entry(name.into()).or_insert((kind, 0));
        entry.1 = entry.1.saturating_add(value);
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|&(_, value)| value)
    }

    /// The kind of `name`, if present.
    pub fn kind(&self, name: &str) -> Option<StatKind> {
        self.entries.get(name).map(|&(kind, _)| kind)
    }

    /// All statistics, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries
            .iter()
            .map(|(name, &(_, value))| (name.as_str(), value))
    }

    /// All statistics with their kinds, sorted by name.
    pub fn iter_with_kind(&self) -> impl Iterator<Item = (&str, StatKind, u64)> {
        self.entries
            .iter()
            .map(|(name, &(kind, value))| (name.as_str(), kind, value))
    }

    /// Number of statistics.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Merges `other` into `self`, summing values of equal names.
    pub fn merge(&mut self, other: &StatsSnapshot) {
        for (name, kind, value) in other.iter_with_kind() {
            self.add(name, kind, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_summed() {
        let mut s = StatsSnapshot::new();
        s.add("b.connected", StatKind::Gauge, 2);
        s.add("a.failed", StatKind::Counter, 1);
        s.add("b.connected", StatKind::Gauge, 3);
        s.set("c.unknown", StatKind::Gauge, 0);
        let names: Vec<_> = s.iter().collect();
        assert_eq!(
            names,
            vec![("a.failed", 1), ("b.connected", 5), ("c.unknown", 0)]
        );
        assert_eq!(s.kind("a.failed"), Some(StatKind::Counter));
        assert_eq!(s.get("missing"), None);
        let mut t = StatsSnapshot::new();
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.get("b.connected"), Some(10));
    }
}

/// How many tunnels a state machine holds in each phase, and how many it ever opened and closed.
///
/// `opened == closed + connecting + handshaking + idle + in_use` holds at every step
/// ([`TunnelCounts::is_balanced`]); the simulation and the fuzz targets check it after every input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    /// Connections ever created (dialled by the initiator, accepted by the responder).
    pub opened: u64,
    /// Connections ever finished, whatever the reason.
    pub closed: u64,
    /// Being dialled (initiator only).
    pub connecting: u64,
    /// Dialled, handshake not finished.
    pub handshaking: u64,
    /// Handshake done, in the idle pool (responder: including a tunnel that is being claimed).
    pub idle: u64,
    /// Claimed: carrying data, owned by the driver until it reports the close.
    pub in_use: u64,
}

impl TunnelCounts {
    /// Connections currently alive in any phase.
    pub fn live(&self) -> u64 {
        self.connecting + self.handshaking + self.idle + self.in_use
    }

    /// `opened == closed + live`.
    pub fn is_balanced(&self) -> bool {
        self.opened == self.closed + self.live()
    }
}
