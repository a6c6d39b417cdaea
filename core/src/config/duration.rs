//! Durations as Envoy writes them in YAML, plus milliseconds as a revtun convenience.
//!
//! Accepted forms:
//! - proto-JSON `google.protobuf.Duration`: whole seconds with up to nine fractional digits and an `s`
//!   suffix: `"2s"`, `"0.5s"`, `"1.000340012s"`;
//! - the revtun convenience `"<n>ms"`: `"100ms"`;
//! - the message form `{seconds: 2, nanos: 500000000}` (see [`super`]'s reader).
//!
//! Negative durations, other units, signs, spaces, exponents and bare numbers are rejected. The largest
//! duration is the protobuf limit, 315,576,000,000 seconds (10,000 years).

use std::time::Duration;

/// The largest number of seconds a `google.protobuf.Duration` may hold.
pub const MAX_DURATION_SECS: u64 = 315_576_000_000;

/// Why a duration string is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is none of the accepted forms.
    #[error(
        "invalid duration {0:?}: expected seconds with an 's' suffix such as \"2s\" or \"0.5s\", or milliseconds such as \"100ms\""
    )]
    Syntax(String),
    /// The value is larger than [`MAX_DURATION_SECS`].
    #[error("duration {0:?} is larger than the maximum of 315576000000s")]
    TooLarge(String),
}

/// Parses `"2s"`, `"0.5s"`, `"1.000340012s"` or `"100ms"`.
///
/// ```
/// # use std::time::Duration;
/// use revtun_core::config::parse_duration;
/// assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
/// assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
/// assert!(parse_duration("2").is_err());
/// assert!(parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let too_large = || DurationError::TooLarge(text.to_owned());
    if let Some(millis) = text.strip_suffix("ms") {
        let millis = digits(millis).ok_or_else(syntax)?;
        let millis = parse_u64(millis).ok_or_else(too_large)?;
        let duration = Duration::from_millis(millis);
        return check_max(duration).ok_or_else(too_large);
    }
    let seconds = text.strip_suffix('s').ok_or_else(syntax)?;
    let (whole, fraction) = match seconds.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (seconds, None),
    };
    let whole = parse_u64(digits(whole).ok_or_else(syntax)?).ok_or_else(too_large)?;
    let nanos = match fraction {
        None => 0,
        Some(fraction) => {
            let fraction = digits(fraction).ok_or_else(syntax)?;
            if fraction.len() > 9 {
                return Err(syntax());
            }
            // Right-pad to nine digits: "5" is 500_000_000 ns.
            let scale = 10u32.pow(9 - u32::try_from(fraction.len()).unwrap_or(9));
            parse_u64(fraction)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(syntax)?
                * scale
        }
    };
    if whole > MAX_DURATION_SECS {
        return Err(too_large());
    }
    check_max(Duration::new(whole, nanos)).ok_or_else(too_large)
}

/// The message form `{seconds, nanos}`: both non-negative, `nanos` below one second, within the limit.
pub(crate) fn from_parts(seconds: u64, nanos: u64) -> Result<Duration, String> {
    if nanos >= 1_000_000_000 {
        return Err(format!("nanos must be below 1000000000, got {nanos}"));
    }
    if seconds > MAX_DURATION_SECS {
        return Err(format!(
            "seconds must be at most {MAX_DURATION_SECS}, got {seconds}"
        ));
    }
    let nanos = u32::try_from(nanos).unwrap_or(0);
    Ok(Duration::new(seconds, nanos))
}

/// `Some(s)` if `s` is one or more ASCII digits.
fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// Decimal digits to `u64`, `None` on overflow.
fn parse_u64(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn check_max(duration: Duration) -> Option<Duration> {
    (duration <= Duration::from_secs(MAX_DURATION_SECS)).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        for (text, want) in [
            ("0s", Duration::ZERO),
            ("2s", Duration::from_secs(2)),
            ("0.5s", Duration::from_millis(500)),
            ("1.000340012s", Duration::new(1, 340_012)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("100ms", Duration::from_millis(100)),
            ("0ms", Duration::ZERO),
            ("3600s", Duration::from_secs(3600)),
            ("315576000000s", Duration::from_secs(MAX_DURATION_SECS)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects() {
        for text in [
            "",
            "s",
            "ms",
            "2",
            "2 s",
            " 2s",
            "-1s",
            "+1s",
            "1.s",
            ".5s",
            "1.5ms",
            "1e3s",
            "1h",
            "1m",
            "1.0000000001s",
            "0x10s",
            "2S",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::Syntax(text.to_owned())),
                "{text:?}"
            );
        }
        for text in [
            "315576000001s",
            "99999999999999999999999s",
            "315576000000.5s",
            "315576000001000ms",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::TooLarge(text.to_owned())),
                "{text:?}"
            );
        }
    }
}
