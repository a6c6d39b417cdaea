//! Per-host backoff: the pure delay functions' bounds, and the `Backoff` state's folding of concurrent
//! failures, reset and determinism.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use revtun_core::backoff::{
    BASE_DELAY, Backoff, DEFAULT_MAX_BACKOFF, JITTER_FRACTION, MAX_RETRY_AFTER, delay, jitter_unit,
    jittered, retry_after_delay,
};

/// An arbitrary origin for the fake clock; only offsets from it matter.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

/// `min(2^(n−1) s, cap)`, computed independently of the implementation.
fn reference_base(attempt: u32, cap: Duration) -> Duration {
    let exponent = attempt.max(1) - 1;
    if exponent >= 64 {
        // 2^64 s is more than `Duration::MAX`.
        return cap;
    }
    Duration::from_secs(1u64 << exponent).min(cap)
}

/// `base ≤ d < 1.15·base` in exact integer nanoseconds (`d == base` when `base` is 0).
fn assert_jitter_bounds(d: Duration, base: Duration) -> Result<(), TestCaseError> {
    prop_assert!(d >= base, "{d:?} < base {base:?}");
    if base.is_zero() {
        prop_assert_eq!(d, base);
    } else {
        prop_assert!(
            d.as_nanos() * 100 < base.as_nanos() * 115,
            "{d:?} ≥ 1.15 × {base:?}"
        );
    }
    Ok(())
}

fn cap_strategy() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(DEFAULT_MAX_BACKOFF),
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..=7_200_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

fn jitter_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(0.999_999_999_999), 0.0..1.0f64]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn delay_is_base_plus_at_most_15_percent(
        attempt in prop_oneof![0u32..40, any::<u32>()],
        cap in cap_strategy(),
        jitter in jitter_strategy(),
    ) {
        let d = delay(attempt, cap, jitter);
        assert_jitter_bounds(d, reference_base(attempt, cap))?;
    }

    #[test]
    fn delay_is_capped(attempt in any::<u32>(), cap in cap_strategy(), jitter in jitter_strategy()) {
        let d = delay(attempt, cap, jitter);
        // d < 1.15·base ≤ 1.15·cap, exactly.
        prop_assert!(d.as_nanos() * 100 <= cap.as_nanos() * 115);
        prop_assert!(reference_base(attempt, cap) <= cap);
    }

    #[test]
    fn delay_is_non_decreasing_in_attempt(
        attempt in prop_oneof![0u32..40, any::<u32>()],
        cap in cap_strategy(),
        jitter in jitter_strategy(),
    ) {
        let next = attempt.saturating_add(1);
        prop_assert!(delay(attempt, cap, jitter) <= delay(next, cap, jitter));
    }

    #[test]
    fn delay_is_non_decreasing_in_jitter(attempt in 0u32..40, cap in cap_strategy(), a in 0.0..1.0f64, b in 0.0..1.0f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(delay(attempt, cap, lo) <= delay(attempt, cap, hi));
    }

    #[test]
    fn retry_after_is_clamped(seconds in prop_oneof![0u64..5_000, any::<u64>()], cap in cap_strategy(), jitter in jitter_strategy()) {
        let upper = MAX_RETRY_AFTER.min(cap);
        // The lower bound 1 s gives way to a cap below it: the operator's maximum wins.
        let base = Duration::from_secs(seconds).max(Duration::from_secs(1)).min(upper);
        let d = retry_after_delay(seconds, cap, jitter);
        assert_jitter_bounds(d, base)?;
        prop_assert!(d.as_nanos() * 100 < MAX_RETRY_AFTER.as_nanos() * 115);
    }

    #[test]
    fn jittered_handles_any_jitter_value(base in any::<u64>().prop_map(Duration::from_nanos), jitter in any::<f64>()) {
        let d = jittered(base, jitter);
        assert_jitter_bounds(d, base)?;
    }

    #[test]
    fn jitter_unit_is_in_unit_interval(seed in any::<[u8; 32]>()) {
        let mut rng = ChaCha8Rng::from_seed(seed);
        for _ in 0..64 {
            let u = jitter_unit(&mut rng);
            prop_assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    /// A batch of attempts all started before the first failure is one failure, whatever order and timing
    /// their failures arrive in.
    #[test]
    fn concurrent_attempts_count_one_failure(
        seed in any::<[u8; 32]>(),
        starts in prop::collection::vec(0u64..1_000, 1..12),
        gaps in prop::collection::vec(0u64..40_000, 12),
        retry in prop::collection::vec(prop::option::weighted(0.2, 0u64..100), 12),
    ) {
        let t0 = origin();
        let mut rng = ChaCha8Rng::from_seed(seed);
        let mut backoff = Backoff::default();
        // Every attempt started within the first second; failures arrive from t0 + 1 s on.
        let mut now = t0 + Duration::from_secs(1);
        let mut first_until = None;
        let mut last_until = None;
        for (i, start) in starts.iter().enumerate() {
            now += Duration::from_millis(gaps[i]);
            let until = backoff.on_failure(t0 + Duration::from_millis(*start), now, DEFAULT_MAX_BACKOFF, retry[i], &mut rng);
            prop_assert_eq!(backoff.failures(), 1);
            first_until.get_or_insert(until);
            if let Some(last) = last_until {
                prop_assert!(until >= last, "a stale failure shortened the backoff");
            }
            last_until = Some(until);
            prop_assert_eq!(backoff.until(), Some(until));
        }
        // The first failure alone decided the backoff unless a stale one carried a retry-after.
        if retry.iter().take(starts.len()).skip(1).all(Option::is_none) {
            prop_assert_eq!(last_until, first_until);
        }
        // A fresh attempt, started after the backoff began, counts again.
        let fresh = now + Duration::from_millis(1);
        backoff.on_failure(fresh, fresh + Duration::from_millis(1), DEFAULT_MAX_BACKOFF, None, &mut rng);
        prop_assert_eq!(backoff.failures(), 2);
    }

    #[test]
    fn same_seed_same_delays(seed in any::<[u8; 32]>(), failures in 1usize..20, retry in prop::option::of(1u64..100)) {
        let t0 = origin();
        let run = |seed: [u8; 32]| {
            let mut rng = ChaCha8Rng::from_seed(seed);
            let mut backoff = Backoff::new();
            let mut now = t0;
            let mut out = Vec::new();
            for i in 0..failures {
                let started = now;
                now += Duration::from_millis(10);
                let until = backoff.on_failure(started, now, DEFAULT_MAX_BACKOFF, retry.filter(|_| i % 3 == 2), &mut rng);
                out.push(until - now);
                now = until;
            }
            out
        };
        prop_assert_eq!(run(seed), run(seed));
    }

    #[test]
    fn success_resets(seed in any::<[u8; 32]>(), failures in 1u32..40) {
        let t0 = origin();
        let mut rng = ChaCha8Rng::from_seed(seed);
        let mut backoff = Backoff::default();
        let mut now = t0;
        for _ in 0..failures {
            let started = now;
            now += Duration::from_millis(1);
            now = backoff.on_failure(started, now, DEFAULT_MAX_BACKOFF, None, &mut rng);
        }
        prop_assert_eq!(backoff.failures(), failures);
        backoff.on_success();
        prop_assert_eq!(backoff.failures(), 0);
        prop_assert_eq!(backoff.until(), None);
        prop_assert!(!backoff.is_backing_off(now));
        prop_assert_eq!(&backoff, &Backoff::default());
        // The next failure is the first one again: 1 s ≤ d < 1.15 s.
        let later = now + Duration::from_secs(1);
        let until = backoff.on_failure(now, later, DEFAULT_MAX_BACKOFF, None, &mut rng);
        prop_assert_eq!(backoff.failures(), 1);
        assert_jitter_bounds(until - later, BASE_DELAY)?;
    }
}

#[test]
fn delay_doubles_from_one_second_up_to_the_cap() {
    let steps: Vec<u64> = (0..=8)
        .map(|n| delay(n, DEFAULT_MAX_BACKOFF, 0.0).as_secs())
        .collect();
    assert_eq!(steps, [1, 1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(
        delay(u32::MAX, DEFAULT_MAX_BACKOFF, 0.0),
        DEFAULT_MAX_BACKOFF
    );
    assert_eq!(
        delay(1, Duration::from_millis(500), 0.0),
        Duration::from_millis(500)
    );
    assert_eq!(delay(3, Duration::ZERO, 0.5), Duration::ZERO);
    // Exact 2^n beyond u32: 2^40 s.
    assert_eq!(delay(41, Duration::MAX, 0.0), Duration::from_secs(1 << 40));
    assert_eq!(delay(64, Duration::MAX, 0.0), Duration::from_secs(1 << 63));
}

#[test]
fn jitter_spans_fifteen_percent() {
    assert!((JITTER_FRACTION - 0.15).abs() < f64::EPSILON);
    assert_eq!(
        delay(1, DEFAULT_MAX_BACKOFF, 0.5),
        Duration::from_millis(1075)
    );
    assert_eq!(
        delay(6, DEFAULT_MAX_BACKOFF, 0.5),
        Duration::from_millis(32_250)
    );
    let almost = delay(1, DEFAULT_MAX_BACKOFF, 0.999_999_999_999_999_9);
    assert!(almost < Duration::from_millis(1150), "{almost:?}");
    assert!(almost > Duration::from_millis(1149), "{almost:?}");
    // Out-of-range jitter is clamped into [0, 1).
    assert_eq!(delay(1, DEFAULT_MAX_BACKOFF, -3.0), BASE_DELAY);
    assert_eq!(delay(1, DEFAULT_MAX_BACKOFF, f64::NAN), BASE_DELAY);
    assert_eq!(
        delay(1, DEFAULT_MAX_BACKOFF, 7.0),
        Duration::from_nanos(1_149_999_999)
    );
    assert_eq!(
        delay(1, DEFAULT_MAX_BACKOFF, f64::INFINITY),
        Duration::from_nanos(1_149_999_999)
    );
    // No overflow at the top.
    assert_eq!(delay(u32::MAX, Duration::MAX, 0.9), Duration::MAX);
}

#[test]
fn retry_after_examples() {
    let cap = DEFAULT_MAX_BACKOFF;
    assert_eq!(retry_after_delay(0, cap, 0.0), Duration::from_secs(1));
    assert_eq!(retry_after_delay(7, cap, 0.0), Duration::from_secs(7));
    assert_eq!(retry_after_delay(600, cap, 0.0), cap);
    assert_eq!(
        retry_after_delay(600, Duration::from_secs(7200), 0.0),
        Duration::from_secs(600)
    );
    assert_eq!(
        retry_after_delay(u64::MAX, Duration::MAX, 0.0),
        MAX_RETRY_AFTER
    );
    assert_eq!(
        retry_after_delay(5, Duration::from_millis(300), 0.0),
        Duration::from_millis(300)
    );
    assert_eq!(
        retry_after_delay(10, cap, 0.5),
        Duration::from_millis(10_750)
    );
}

#[test]
fn jitter_unit_is_roughly_uniform() {
    let mut rng = ChaCha8Rng::from_seed([7; 32]);
    let draws: Vec<f64> = (0..10_000).map(|_| jitter_unit(&mut rng)).collect();
    let mean = draws.iter().sum::<f64>() / 10_000.0;
    assert!((0.48..0.52).contains(&mean), "mean {mean}");
    let low = draws.iter().filter(|u| **u < 0.1).count();
    assert!((800..1200).contains(&low), "{low} draws below 0.1");
}

#[test]
fn jitter_unit_uses_one_draw() {
    let mut a = ChaCha8Rng::from_seed([1; 32]);
    let mut b = ChaCha8Rng::from_seed([1; 32]);
    let _ = jitter_unit(&mut a);
    let _ = b.next_u64();
    assert_eq!(a.next_u64(), b.next_u64());
}

#[test]
fn backoff_timeline() {
    let t0 = origin();
    let mut rng = ChaCha8Rng::from_seed([3; 32]);
    let mut backoff = Backoff::default();
    assert!(!backoff.is_backing_off(t0));
    assert_eq!(backoff.until(), None);

    // First failure: 1 s ≤ wait < 1.15 s.
    let fail1 = t0 + Duration::from_millis(200);
    let until1 = backoff.on_failure(t0, fail1, DEFAULT_MAX_BACKOFF, None, &mut rng);
    assert_eq!(backoff.failures(), 1);
    assert!(
        until1 >= fail1 + Duration::from_secs(1) && until1 < fail1 + Duration::from_millis(1150)
    );
    assert!(backoff.is_backing_off(fail1));
    assert!(backoff.is_backing_off(until1 - Duration::from_nanos(1)));
    assert!(!backoff.is_backing_off(until1));

    // An attempt started exactly when the backoff began is stale too.
    assert_eq!(
        backoff.on_failure(fail1, fail1, DEFAULT_MAX_BACKOFF, None, &mut rng),
        until1
    );
    assert_eq!(backoff.failures(), 1);

    // The retry after the backoff fails: n = 2, 2 s ≤ wait < 2.3 s.
    let fail2 = until1 + Duration::from_millis(50);
    let until2 = backoff.on_failure(until1, fail2, DEFAULT_MAX_BACKOFF, None, &mut rng);
    assert_eq!(backoff.failures(), 2);
    assert!(
        until2 >= fail2 + Duration::from_secs(2) && until2 < fail2 + Duration::from_millis(2300)
    );
}

#[test]
fn stale_retry_after_only_extends() {
    let t0 = origin();
    let mut rng = ChaCha8Rng::from_seed([4; 32]);
    let mut backoff = Backoff::default();
    let fail = t0 + Duration::from_secs(1);
    let until = backoff.on_failure(t0, fail, DEFAULT_MAX_BACKOFF, Some(20), &mut rng);
    assert_eq!(backoff.failures(), 1);
    assert!(until >= fail + Duration::from_secs(20) && until < fail + Duration::from_secs(23));

    // A stale 429 asking for less does not shorten it.
    assert_eq!(
        backoff.on_failure(t0, fail, DEFAULT_MAX_BACKOFF, Some(1), &mut rng),
        until
    );
    // A stale failure without retry-after changes nothing.
    assert_eq!(
        backoff.on_failure(t0, fail, DEFAULT_MAX_BACKOFF, None, &mut rng),
        until
    );
    // A stale 429 asking for more extends it (clamped to the cap), without counting a failure.
    let later = fail + Duration::from_secs(2);
    let extended = backoff.on_failure(t0, later, DEFAULT_MAX_BACKOFF, Some(600), &mut rng);
    assert!(extended >= later + DEFAULT_MAX_BACKOFF && extended > until);
    assert_eq!(backoff.failures(), 1);
    assert_eq!(backoff.until(), Some(extended));
    // The backoff did not restart: an attempt started between the first failure and now is fresh.
    let fresh = backoff.on_failure(
        fail + Duration::from_millis(1),
        later,
        DEFAULT_MAX_BACKOFF,
        None,
        &mut rng,
    );
    assert_eq!(backoff.failures(), 2);
    assert!(fresh >= later + Duration::from_secs(2));
}

#[test]
fn fresh_retry_after_sets_the_backoff_and_counts() {
    let t0 = origin();
    let mut rng = ChaCha8Rng::from_seed([5; 32]);
    let mut backoff = Backoff::default();
    let until = backoff.on_failure(t0, t0, Duration::from_secs(10), Some(3600), &mut rng);
    assert_eq!(backoff.failures(), 1);
    assert!(until >= t0 + Duration::from_secs(10) && until < t0 + Duration::from_millis(11_500));
}

#[test]
fn huge_caps_do_not_panic() {
    let t0 = origin();
    let mut rng = ChaCha8Rng::from_seed([6; 32]);
    let mut backoff = Backoff::default();
    let mut now = t0;
    for _ in 0..200 {
        // Started after the previous backoff began, so every failure counts.
        let started = now + Duration::from_millis(1);
        now = started + Duration::from_millis(1);
        let until = backoff.on_failure(started, now, Duration::MAX, None, &mut rng);
        assert!(until >= now);
    }
    assert_eq!(backoff.failures(), 200);
    assert!(backoff.is_backing_off(now));
}

#[test]
fn different_seeds_give_different_jitter() {
    let t0 = origin();
    let until = |seed| {
        let mut rng = ChaCha8Rng::from_seed(seed);
        Backoff::new().on_failure(t0, t0, DEFAULT_MAX_BACKOFF, None, &mut rng)
    };
    assert_eq!(until([9; 32]), until([9; 32]));
    assert_ne!(until([9; 32]), until([10; 32]));
}
