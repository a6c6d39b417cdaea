//! Fuzz body for the idle phase: [`InitiatorIdle`], [`ClaimAnswer`] and [`ResponderKeepalive`].

use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::keepalive::{
    ClaimAnswer, DataMode, InitiatorIdle, KeepaliveAction, KeepaliveConfig, KeepaliveError,
    MARKER_LEN, RDATA, RPING, ResponderKeepalive,
};

/// Control bytes before the payload; shorter inputs read as if padded with zeros.
const HEADER_LEN: usize = 12;
/// Flags byte: bit 0 picks the data mode, bit 1 feeds the payload raw instead of a well-formed stream.
const FLAG_CLAIM_MARKER: u8 = 0b01;
const FLAG_RAW: u8 = 0b10;
/// Bytes 2..10: the split schedule.
const SCHEDULE: std::ops::Range<usize> = 2..10;

/// Fuzz body for the idle phase. Never panics on any input except when an invariant breaks.
///
/// Input layout (missing bytes read as 0):
///
/// | byte | meaning |
/// |---|---|
/// | 0 | flags: bit 0 = claim-marker mode (else Envoy mode); bit 1 = raw stream |
/// | 1 | low 4 bits: how many `RPING`s precede the claim in the well-formed stream |
/// | 2..10 | split schedule, cycled: the low 4 bits of each byte are one read's length (0 = an empty read; two empty reads in a row become one byte) |
/// | 10 | keepalive interval in units of 20 ms (0 = zero, raised to the minimum) |
/// | 11 | keepalive failure threshold (mod 6; 0 is treated as 1) |
/// | 12.. | payload |
///
/// The stream is the payload itself when raw, otherwise `RPING × n ‖ [RDATA in claim-marker mode] ‖ payload`.
/// It is split by the schedule and fed to [`InitiatorIdle`] in the flagged mode, and (as
/// `RPING × n ‖ RDATA ‖ payload` when not raw) to [`ClaimAnswer`]. Both are compared with a whole-buffer
/// reference: the same echo count, the same claim, and every data byte delivered exactly once, in order
/// (the claim's data followed by all later reads, which the data phase reads directly; the answer filter
/// passes those through itself, each as a suffix of its read); a stream the reference rejects must fail
/// with [`KeepaliveError::UnexpectedBytes`], and stay failed.
///
/// Then each payload byte drives a [`ResponderKeepalive`] (low 3 bits: operation, high 5 bits: argument):
/// fire the timer when due, advance time and fire it, feed an echo, a partial echo, a garbage byte, `RDATA`,
/// or a late echo. Asserted after every step: `SendPing` only from `handle_timeout` and only with no ping in
/// flight, so never two in flight; misses below the threshold while alive; `Dead` once, and then no timer;
/// after `handle_timeout(now)` the next timeout lies after `now`.
pub fn keepalive(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let mode = if flags & FLAG_CLAIM_MARKER != 0 {
        DataMode::ClaimMarker
    } else {
        DataMode::Envoy
    };
    let raw = flags & FLAG_RAW != 0;
    let pings = usize::from(byte(1) & 0x0f);
    let schedule: Vec<usize> = SCHEDULE.map(|i| usize::from(byte(i) & 0x0f)).collect();
    let payload = data.get(HEADER_LEN..).unwrap_or_default();

    // InitiatorIdle.
    let stream = if raw {
        payload.to_vec()
    } else {
        let marker: &[u8] = match mode {
            DataMode::Envoy => &[],
            DataMode::ClaimMarker => &RDATA,
        };
        [&RPING.repeat(pings), marker, payload].concat()
    };
    let reads = split(&stream, &schedule);
    let expected = reference(mode, &stream);
    let mut idle = InitiatorIdle::new(mode);
    check(
        &expected,
        run(&reads, |read| {
            idle.handle_input(read)
                .map(|out| (out.pings, out.claim.map(|c| (c.answer_marker, c.data))))
        }),
    );

    // ClaimAnswer: always claim-marker mode.
    let stream = if raw {
        payload.to_vec()
    } else {
        [&RPING.repeat(pings), &RDATA[..], payload].concat()
    };
    let reads = split(&stream, &schedule);
    let expected = reference(DataMode::ClaimMarker, &stream);
    check(&expected, run_answer(&reads));

    drive_keepalive(byte(10), byte(11), payload);
}

/// What the whole stream means, computed without the machines.
#[derive(Debug)]
enum Expected<'a> {
    /// No claim yet; this many whole `RPING`s.
    Waiting(usize),
    /// Claimed after this many `RPING`s: whether a marker claimed, and the data.
    Claimed(usize, bool, &'a [u8]),
    /// Claim-marker mode: bytes other than whole `RPING`s before `RDATA`.
    Invalid,
}

fn reference(mode: DataMode, stream: &[u8]) -> Expected<'_> {
    let mut rest = stream;
    let mut pings = 0;
    while let Some(tail) = rest.strip_prefix(&RPING[..]) {
        rest = tail;
        pings += 1;
    }
    let prefix_of = |marker: &[u8; MARKER_LEN]| rest.len() < MARKER_LEN && marker.starts_with(rest);
    match mode {
        DataMode::Envoy if prefix_of(&RPING) => Expected::Waiting(pings),
        DataMode::Envoy => Expected::Claimed(pings, false, rest),
        DataMode::ClaimMarker => match rest.strip_prefix(&RDATA[..]) {
            Some(data) => Expected::Claimed(pings, true, data),
            None if prefix_of(&RPING) || prefix_of(&RDATA) => Expected::Waiting(pings),
            None => Expected::Invalid,
        },
    }
}

/// What the machine did with the reads.
type Outcome = Result<(usize, Option<(bool, Vec<u8>)>), KeepaliveError>;

/// Feeds `reads` to `handle` until the claim, then collects the later reads as data, as a driver would.
/// After the claim, and after an error, one more call checks that the machine refuses input.
fn run(
    reads: &[Vec<u8>],
    mut handle: impl FnMut(&[u8]) -> Result<(usize, Option<(bool, bytes::Bytes)>), KeepaliveError>,
) -> Outcome {
    let mut pings = 0;
    let mut claimed: Option<(bool, Vec<u8>)> = None;
    for read in reads {
        if let Some((_, delivered)) = &mut claimed {
            delivered.extend_from_slice(read);
            continue;
        }
        match handle(read) {
            Ok((n, claim)) => {
                pings += n;
                if let Some((answer, data)) = claim {
                    claimed = Some((answer, data.to_vec()));
                    assert_eq!(handle(b"RPING"), Err(KeepaliveError::AlreadyClaimed));
                }
            }
            Err(error) => {
                assert_eq!(handle(&RDATA), Err(error.clone()), "errors are sticky");
                return Err(error);
            }
        }
    }
    Ok((pings, claimed))
}

/// Feeds every read to a [`ClaimAnswer`], collecting the data ranges it returns.
fn run_answer(reads: &[Vec<u8>]) -> Outcome {
    let mut answer = ClaimAnswer::new();
    let mut delivered = Vec::new();
    for read in reads {
        match answer.filter(read) {
            Ok(range) => {
                assert_eq!(range.end, read.len(), "data is a suffix of the read");
                assert!(
                    range.is_empty() || answer.is_complete(),
                    "data before RDATA"
                );
                delivered.extend_from_slice(&read[range]);
            }
            Err(error) => {
                assert_eq!(
                    answer.filter(&RDATA),
                    Err(error.clone()),
                    "errors are sticky"
                );
                assert!(!answer.is_complete());
                return Err(error);
            }
        }
    }
    let pings = answer.echoes_dropped();
    Ok((pings, answer.is_complete().then_some((true, delivered))))
}

fn check(expected: &Expected<'_>, outcome: Outcome) {
    match (expected, outcome) {
        (Expected::Waiting(pings), Ok((got, None))) => assert_eq!(got, *pings, "echo count"),
        (Expected::Claimed(pings, answer, data), Ok((got, Some((got_answer, delivered))))) => {
            assert_eq!(got, *pings, "echo count");
            assert_eq!(got_answer, *answer, "answer marker");
            assert_eq!(&delivered[..], *data, "data delivered once, in order");
        }
        (Expected::Invalid, Err(KeepaliveError::UnexpectedBytes { got })) => {
            assert!(!got.is_empty() && got.len() <= MARKER_LEN, "{got:?}");
        }
        (expected, outcome) => panic!("expected {expected:?}, got {outcome:?}"),
    }
}

/// Cuts `stream` into reads whose lengths cycle through `schedule`.
fn split(stream: &[u8], schedule: &[usize]) -> Vec<Vec<u8>> {
    let mut reads = Vec::new();
    let mut rest = stream;
    let mut last_empty = false;
    for &len in schedule.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        // Two empty reads in a row become one byte, so the loop always ends.
        let len = if len == 0 && last_empty { 1 } else { len };
        last_empty = len == 0;
        let (read, tail) = rest.split_at(len.min(rest.len()));
        reads.push(read.to_vec());
        rest = tail;
    }
    reads
}

/// Drives a responder keepalive with one operation per payload byte.
fn drive_keepalive(interval: u8, threshold: u8, ops: &[u8]) {
    let config = KeepaliveConfig {
        interval: Duration::from_millis(u64::from(interval) * 20),
        failure_threshold: u32::from(threshold % 6),
    };
    let threshold = config.normalized().failure_threshold;
    let step = config.normalized().interval / 8;
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(interval) << 8 | u64::from(threshold));
    // The fuzz body needs some origin for its fake clock; only offsets from it matter, so runs replay.
    #[allow(clippy::disallowed_methods)]
    let origin = Instant::now();
    let mut now = origin;
    let mut keepalive = ResponderKeepalive::new(config, now, &mut rng);
    for &op in ops {
        let arg = u32::from(op >> 3);
        let in_flight = keepalive.ping_in_flight();
        let timer = matches!(op & 7, 0 | 1);
        let action = match op & 7 {
            0 => {
                now = keepalive.poll_timeout().unwrap_or(now).max(now);
                keepalive.handle_timeout(now, &mut rng)
            }
            1 => {
                now += step * arg;
                keepalive.handle_timeout(now, &mut rng)
            }
            2 => keepalive.handle_input(&RPING, now, &mut rng),
            3 => keepalive.handle_input(&RPING[..(op >> 3) as usize % MARKER_LEN], now, &mut rng),
            4 => keepalive.handle_input(&[op], now, &mut rng),
            5 => keepalive.handle_input(&RDATA, now, &mut rng),
            _ => {
                now += Duration::from_millis(u64::from(arg));
                keepalive.handle_input(&RPING, now, &mut rng)
            }
        };
        match action {
            Some(KeepaliveAction::SendPing) => {
                assert!(timer, "SendPing from handle_input");
                assert!(!in_flight, "a second ping while one is in flight");
                assert!(keepalive.ping_in_flight());
            }
            Some(KeepaliveAction::Dead) => {
                assert!(keepalive.is_dead());
                assert!(keepalive.misses() >= threshold);
            }
            None => {}
        }
        if keepalive.is_dead() {
            assert_eq!(keepalive.poll_timeout(), None);
            assert_eq!(
                keepalive.handle_timeout(now + Duration::from_secs(3600), &mut rng),
                None
            );
            assert_eq!(keepalive.handle_input(b"xxxxxRPING", now, &mut rng), None);
            return;
        }
        assert!(keepalive.misses() < threshold);
        assert!(keepalive.buffered().len() < MARKER_LEN);
        let next = keepalive
            .poll_timeout()
            .expect("a live keepalive has a timer");
        if timer {
            assert!(next > now, "the timer did not move forward");
        }
        assert_eq!(
            keepalive.ping_in_flight(),
            keepalive.echo_deadline() == Some(next)
        );
        assert_eq!(
            keepalive.next_ping_at().is_some(),
            !keepalive.ping_in_flight()
        );
    }
}
