//! The fault schedule of a run: what goes wrong, when, and when it heals.
//!
//! A schedule is drawn from the seed before the run starts: a few faults at random times within the fault
//! phase, each with its own duration. After the last one heals comes the quiet tail, in which the
//! simulation checks that every pool is restored (see the module documentation of [`super`]).
//!
//! Faults name their targets by index (initiator, responder); a fault that needs a connection (reset,
//! stall) picks one at random among those open when it fires, and does nothing if there is none.

use std::time::Duration;

use super::rng::SimRng;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Reset one open connection (both ends see it closed at once).
    Reset,
    /// The responder goes down: every connection to it is reset, dials to it are refused, and after
    /// `duration` (< 1 s) a fresh machine takes its place.
    Restart {
        /// The responder.
        responder: usize,
    },
    /// Nothing passes between the initiator and the responder for `duration` (dials included); held bytes
    /// are delivered when it heals.
    Partition {
        /// The initiator.
        initiator: usize,
        /// The responder.
        responder: usize,
    },
    /// One direction of one open connection is not read for `duration`.
    Stall,
    /// Writes between the initiator and the responder go byte by byte for `duration`.
    Slow {
        /// The initiator.
        initiator: usize,
        /// The responder.
        responder: usize,
    },
    /// The initiator's (only) target cluster resolves to other hosts for `duration` (`set_hosts`): the
    /// responders whose bit is set in `hosts` (none at all is allowed: "no hosts"). Removed hosts' dials,
    /// handshakes and idle tunnels are closed at once, their in-use tunnels finish; added hosts are dialled
    /// at once. When it heals the original hosts come back. Only for initiators with one target cluster
    /// (the simulation's view then knows the pool of every dial).
    Rehome {
        /// The initiator.
        initiator: usize,
        /// Bit `r` set: responder `r` is a host.
        hosts: u8,
    },
}

/// A fault with its start time and how long it lasts (0 for a reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// When it starts (offset from the start of the run).
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// What it is.
    pub kind: FaultKind,
}

impl Fault {
    /// When it heals.
    pub fn end(&self) -> Duration {
        self.at + self.duration
    }
}

/// Longest responder downtime (the brief: back within a second).
pub const MAX_DOWNTIME: Duration = Duration::from_millis(900);

/// The faults of one run, sorted by start time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSchedule {
    /// The faults, by start time.
    pub faults: Vec<Fault>,
}

impl FaultSchedule {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// A schedule from explicit faults (sorted here).
    pub fn from_faults(mut faults: Vec<Fault>) -> Self {
        faults.sort_by_key(|f| f.at);
        Self { faults }
    }

    /// Draws 0–`max_faults` faults within `[start, phase_end]`. `pairs` are the (initiator, responder)
    /// pairs that have tunnels (partitions and slow windows only make sense there); `responders` is how
    /// many responders there are; `rehomable` the initiators whose host set may change (those with one
    /// target cluster, so every dial names its pool).
    pub fn random(
        rng: &mut SimRng,
        max_faults: u64,
        start: Duration,
        phase_end: Duration,
        pairs: &[(usize, usize)],
        responders: usize,
        rehomable: &[usize],
    ) -> Self {
        let n = rng.range(0, max_faults);
        let mut faults = Vec::new();
        for _ in 0..n {
            let at = rng.duration(start, phase_end);
            if !rehomable.is_empty() && rng.chance(1, 8) {
                let initiator = rehomable[rng.index(rehomable.len())];
                let hosts = rng.below(1 << responders.min(8)) as u8;
                faults.push(Fault {
                    at,
                    duration: rng.millis(100, 2_000),
                    kind: FaultKind::Rehome { initiator, hosts },
                });
                continue;
            }
            let (duration, kind) = match rng.below(10) {
                0..=2 => (Duration::ZERO, FaultKind::Reset),
                3..=4 if responders > 0 => (
                    rng.duration(Duration::from_millis(50), MAX_DOWNTIME),
                    FaultKind::Restart {
                        responder: rng.index(responders),
                    },
                ),
                5..=6 if !pairs.is_empty() => {
                    let (initiator, responder) = pairs[rng.index(pairs.len())];
                    (
                        rng.millis(100, 2_500),
                        FaultKind::Partition {
                            initiator,
                            responder,
                        },
                    )
                }
                7..=8 => (rng.millis(100, 2_000), FaultKind::Stall),
                _ if !pairs.is_empty() => {
                    let (initiator, responder) = pairs[rng.index(pairs.len())];
                    (
                        rng.millis(100, 1_000),
                        FaultKind::Slow {
                            initiator,
                            responder,
                        },
                    )
                }
                _ => (Duration::ZERO, FaultKind::Reset),
            };
            faults.push(Fault { at, duration, kind });
        }
        Self::from_faults(faults)
    }

    /// When the last fault heals (`None` without faults).
    pub fn last_heal(&self) -> Option<Duration> {
        self.faults.iter().map(Fault::end).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_schedules_stay_in_the_phase_and_sorted() {
        let mut rng = SimRng::new(9);
        for _ in 0..200 {
            let s = FaultSchedule::random(
                &mut rng,
                8,
                Duration::from_millis(100),
                Duration::from_secs(3),
                &[(0, 0), (1, 2)],
                3,
                &[1],
            );
            assert!(s.faults.windows(2).all(|w| w[0].at <= w[1].at));
            for f in &s.faults {
                assert!(f.at >= Duration::from_millis(100) && f.at <= Duration::from_secs(3));
                match f.kind {
                    FaultKind::Restart { responder } => {
                        assert!(responder < 3 && f.duration <= MAX_DOWNTIME);
                    }
                    FaultKind::Rehome { initiator, hosts } => assert!(initiator == 1 && hosts < 8),
                    _ => {}
                }
            }
        }
        assert_eq!(FaultSchedule::none().last_heal(), None);
    }
}
