//! Simulated time: an offset from one real base instant.
//!
//! The machines take `now: Instant`, so the simulation needs real [`Instant`] values; it reads the real
//! clock exactly once per process ([`base`]) and from then on only adds simulated offsets to it. Every
//! decision in the simulation is taken on the offsets ([`Duration`] since the start of the run), so a run
//! does not depend on the base: the same seed gives the same trace in any process.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The unix time (ms) the simulated wall clock shows at offset 0 (2025-06-15T15:06:40Z).
pub const UNIX_MS_AT_START: u64 = 1_750_000_000_000;

/// The one real instant of the process; every simulated instant is `base() + offset`.
pub fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The simulated clock of one run.
#[derive(Clone, Debug)]
pub struct Clock {
    base: Instant,
    now: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock at offset 0.
    pub fn new() -> Self {
        Self {
            base: base(),
            now: Duration::ZERO,
        }
    }

    /// The current offset since the start of the run.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The current time as the machines see it.
    pub fn instant(&self) -> Instant {
        self.at(self.now)
    }

    /// The instant at offset `t`.
    pub fn at(&self, t: Duration) -> Instant {
        self.base + t
    }

    /// The offset of a machine's instant (instants before the start count as 0).
    pub fn offset(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.base)
    }

    /// The simulated wall clock in unix milliseconds, for the initiation-time header.
    pub fn unix_ms(&self) -> u64 {
        UNIX_MS_AT_START + u64::try_from(self.now.as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves the clock to `t`; time never goes backwards (an earlier `t` is a simulation bug).
    ///
    /// # Errors
    /// `t` is before the current time.
    pub fn advance_to(&mut self, t: Duration) -> Result<(), String> {
        if t < self.now {
            return Err(format!(
                "simulated time would go backwards: {:?} -> {t:?}",
                self.now
            ));
        }
        self.now = t;
        Ok(())
    }
}

/// `d` as milliseconds with three decimals, for traces and messages (`1.234s` style is harder to grep).
pub fn ms(d: Duration) -> String {
    format!(
        "{}.{:03}ms",
        d.as_millis(),
        d.subsec_nanos() % 1_000_000 / 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_never_go_back() {
        let mut clock = Clock::new();
        clock.advance_to(Duration::from_millis(1500)).unwrap();
        assert_eq!(clock.offset(clock.instant()), Duration::from_millis(1500));
        assert_eq!(clock.unix_ms(), UNIX_MS_AT_START + 1500);
        assert!(clock.advance_to(Duration::from_millis(1499)).is_err());
        assert_eq!(ms(Duration::from_micros(1_234_567)), "1234.567ms");
    }
}
