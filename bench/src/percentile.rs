//! Percentiles of latency samples (nearest-rank: the smallest sample with at least p % of the samples
//! at or below it).

use std::time::Duration;

/// p50, p90 and p99 of a set of samples, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted in place); `None` when there are none.
    #[must_use]
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            p50: micros(nearest_rank(samples, 50)?),
            p90: micros(nearest_rank(samples, 90)?),
            p99: micros(nearest_rank(samples, 99)?),
        })
    }
}

/// The nearest-rank `percent` percentile of sorted `samples`.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));

        let mut one = vec![Duration::from_micros(7)];
        let p = Percentiles::of(&mut one).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (7.0, 7.0, 7.0));

        let mut ten: Vec<Duration> = (1..=10).map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut ten).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (5.0, 9.0, 10.0));

        assert_eq!(Percentiles::of(&mut []), None);
    }
}
