//! Per-host reconnect backoff with seeded jitter (DESIGN.md, "Initiator behaviour").
//!
//! After the n-th consecutive failed attempt against a host the initiator waits
//! `b = min(1 s × 2^(n−1), max_reconnect_backoff)` plus a jitter drawn uniformly from `[0, 0.15·b)`.
//! A 429 carrying `retry-after: <s>` replaces `b` by `s` seconds clamped to `[1 s, min(3600 s, cap)]`.
//!
//! The module has two layers:
//! - pure functions ([`delay`], [`retry_after_delay`], [`jittered`]) that map an attempt number and a jitter
//!   unit in `[0, 1)` to a [`Duration`], so their bounds can be property-tested without an RNG;
//! - [`Backoff`], one host's state: the failure count `n`, when the current backoff began and until when it
//!   lasts. It folds the failures of concurrently started attempts into one (with `count = 8`, one outage is
//!   one failure, not eight).
//!
//! Randomness comes from the caller's RNG ([`jitter_unit`]); the same seed gives the same delays.
//!
//! Arithmetic is exact and saturating: jitter is computed in integer nanoseconds (so `d < 1.15·b` holds
//! exactly, not only up to floating-point rounding), huge attempt numbers or caps never overflow, and an
//! instant that cannot be represented is replaced by the latest representable one that can.

use std::time::{Duration, Instant};

use rand_chacha::rand_core::RngCore;

/// The first backoff step: `b = 1 s` after the first failure.
pub const BASE_DELAY: Duration = Duration::from_secs(1);

/// Envoy's default `max_reconnect_backoff`: backoff steps stop doubling at 30 s.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Upper bound for a 429's `retry-after`, whatever the server asks for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Jitter is drawn from `[0, JITTER_FRACTION·b)` and added to the step `b`.
pub const JITTER_FRACTION: f64 = 0.15;

/// `JITTER_FRACTION` as an exact ratio, used for the integer arithmetic.
const JITTER_NUM: u128 = 15;
const JITTER_DEN: u128 = 100;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The backoff delay after the `attempt`-th consecutive failure.
///
/// `b = min(BASE_DELAY × 2^(attempt−1), cap)`; returns `b + ⌊jitter × ⌊0.15·b⌋⌋` (in nanoseconds), so the result
/// lies in `[b, 1.15·b)` (exactly `b` when `b` is zero). `attempt` 0 is treated as 1; huge attempts saturate at
/// `cap` without overflow. `jitter` is a unit in `[0, 1)` (see [`jitter_unit`]); values outside are clamped
/// into it (NaN counts as 0).
///
/// `cap` is used as given: a zero cap gives a zero delay. Rejecting such a configuration is the config
/// layer's job.
#[must_use]
pub fn delay(attempt: u32, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempt.max(1) - 1;
    // 10^9 × 2^63 < 2^93 fits in u128; beyond that the step exceeds `Duration::MAX` anyway.
    let step = if exponent < 64 {
        duration_from_nanos(BASE_DELAY.as_nanos() << exponent)
    } else {
        Duration::MAX
    };
    jittered(step.min(cap), jitter)
}

/// The backoff delay after a 429 whose `retry-after` asked for `seconds`.
///
/// `b = seconds` clamped to `[1 s, min(MAX_RETRY_AFTER, cap)]`, plus the same jitter as [`delay`]. When
/// `cap < 1 s` the range is empty and the cap wins (the operator's maximum beats the server's hint), so
/// `b = cap`. `seconds = 0` (which a well-behaved server does not send) is treated as 1 s.
#[must_use]
pub fn retry_after_delay(seconds: u64, cap: Duration, jitter: f64) -> Duration {
    let upper = MAX_RETRY_AFTER.min(cap);
    let step = Duration::from_secs(seconds).max(BASE_DELAY).min(upper);
    jittered(step, jitter)
}

/// `base` plus `⌊jitter × ⌊JITTER_FRACTION·base⌋⌋`, computed in integer nanoseconds.
///
/// The result lies in `[base, base + ⌊0.15·base⌋)` whenever `⌊0.15·base⌋ ≥ 1 ns`, and is `base` otherwise;
/// it saturates at [`Duration::MAX`]. `jitter` is clamped into `[0, 1)`; NaN counts as 0. The keepalive
/// ping schedule uses the same jitter.
#[must_use]
pub fn jittered(base: Duration, jitter: f64) -> Duration {
    let span = base.as_nanos() * JITTER_NUM / JITTER_DEN;
    if span == 0 {
        return base;
    }
    let unit = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    // `as` saturates for floats; rounding may reach `span`, which the `min` pulls back below it.
    let extra = ((unit * span as f64) as u128).min(span - 1);
    base.saturating_add(duration_from_nanos(extra))
}

/// A uniform draw from `[0, 1)` with 53 random bits (the f64 mantissa), from the caller's RNG.
///
/// Uses exactly one `next_u64()`, so a seeded [`rand_chacha::ChaCha8Rng`] replays the same sequence.
pub fn jitter_unit(rng: &mut impl RngCore) -> f64 {
    // 53-bit integers are exact in f64.
    let mantissa = (rng.next_u64() >> 11) as f64;
    mantissa / (1u64 << 53) as f64
}

/// `n` nanoseconds as a [`Duration`], saturating at [`Duration::MAX`].
fn duration_from_nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // Below 10^9, so the cast is exact.
    let nanos = (n % NANOS_PER_SEC) as u32;
    Duration::new(secs, nanos)
}

/// `now + d`, or the latest instant after `now` that the platform can represent if that overflows.
pub(crate) fn saturating_add(now: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        // Halving converges: `now + 0` always exists.
        d /= 2;
    }
}

/// One host's backoff state.
///
/// - `failures` (`n`) counts consecutive failed attempts, except that an attempt that *started* at or before
///   the moment the current backoff began is **stale**: the failure it reports was already counted (all
///   tunnels to the host were dialled together and fail together), so it does not increase `n`.
/// - A stale failure without `retry-after` changes nothing. A stale failure **with** `retry-after` can only
///   extend [`until`](Self::until), never shorten it, and it does not restart the backoff (the moment the
///   current backoff began stays the same, so later stale failures stay stale).
/// - A fresh failure increases `n` (also for a 429: it is a failed attempt), starts a new backoff at `now` and
///   sets `until = now + delay`, where the delay is [`retry_after_delay`] for a 429 with `retry-after` and
///   [`delay`]`(n)` otherwise. The jitter is drawn from the RNG only for a failure that computes a delay.
/// - [`on_success`](Self::on_success) resets everything: `n = 0`, no backoff.
///
/// The state keeps no timers of its own: the caller schedules its next attempt at the returned instant and
/// asks [`is_backing_off`](Self::is_backing_off) with its `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    /// When the current backoff began (the `now` of the last fresh failure); `None` after success.
    started: Option<Instant>,
    /// The end of the current (or last) backoff; `None` after success.
    until: Option<Instant>,
}

impl Backoff {
    /// A new host: no failures, not backing off.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failed attempt that started at `attempt_started` and failed at `now`; returns the instant
    /// until which the host backs off (it may already be in the past for a stale failure: then the host is
    /// not backing off).
    ///
    /// `cap` is the host's `max_reconnect_backoff`; `retry_after` the seconds of a 429's `retry-after`
    /// header, if any. See the type's documentation for stale failures.
    pub fn on_failure(
        &mut self,
        attempt_started: Instant,
        now: Instant,
        cap: Duration,
        retry_after: Option<u64>,
        rng: &mut impl RngCore,
    ) -> Instant {
        let stale = self.started.is_some_and(|began| attempt_started <= began);
        if stale {
            if let Some(seconds) = retry_after {
                let candidate =
                    saturating_add(now, retry_after_delay(seconds, cap, jitter_unit(rng)));
                self.until = Some(self.until.map_or(candidate, |until| until.max(candidate)));
            }
            tracing::trace!(
                failures = self.failures,
                "stale failure: backoff count unchanged"
            );
            // `started` is `Some`, and every path that sets it also sets `until`.
            return self.until.unwrap_or(now);
        }
        self.failures = self.failures.saturating_add(1);
        let jitter = jitter_unit(rng);
        let wait = match retry_after {
            Some(seconds) => retry_after_delay(seconds, cap, jitter),
            None => delay(self.failures, cap, jitter),
        };
        let until = saturating_add(now, wait);
        self.started = Some(now);
        self.until = Some(until);
        tracing::trace!(failures = self.failures, ?wait, "backing off");
        until
    }

    /// Records a successful attempt: `n = 0` and no backoff.
    pub fn on_success(&mut self) {
        *self = Self::default();
    }

    /// The number of consecutive failures `n` counted so far (stale failures excluded).
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The end of the current or last backoff, or `None` if none happened since the last success.
    #[must_use]
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Whether the host is backing off at `now` (`now < until`).
    #[must_use]
    pub fn is_backing_off(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}
