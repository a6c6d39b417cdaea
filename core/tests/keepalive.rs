//! Idle phase: `classify`, the initiator's echo/claim detection in both data modes, the responder's
//! keepalive timeline on a fake clock, and the responder's answer filter in claim-marker mode. Proptests split the
//! streams at arbitrary points and check that every data byte arrives exactly once, in order.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use revtun_core::keepalive::{
    ClaimAnswer, Classified, DataMode, InitiatorClaim, InitiatorIdle, KeepaliveAction,
    KeepaliveConfig, KeepaliveError, MARKER_LEN, MIN_PING_INTERVAL, Marker, RDATA, RPING,
    ResponderKeepalive, classify,
};

/// An arbitrary origin for the fake clock; only offsets from it matter.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

fn rng(seed: u8) -> ChaCha8Rng {
    ChaCha8Rng::from_seed([seed; 32])
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn claim(answer_marker: bool, data: &[u8]) -> Option<InitiatorClaim> {
    Some(InitiatorClaim {
        answer_marker,
        data: Bytes::copy_from_slice(data),
    })
}

/// Feeds `reads` in order; returns the echo count of each read and the claim, and checks that no read after
/// the claim is fed.
fn feed(idle: &mut InitiatorIdle, reads: &[&[u8]]) -> (Vec<usize>, Option<InitiatorClaim>) {
    let mut pings = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        let out = idle.handle_input(read).expect("valid input");
        pings.push(out.pings);
        if out.claim.is_some() {
            assert_eq!(i, reads.len() - 1, "claimed before the last read");
            return (pings, out.claim);
        }
    }
    (pings, None)
}

// ---------------------------------------------------------------------------------------------------------
// classify

#[test]
fn classify_table() {
    use Classified::{Complete, Other, Partial};
    let table: &[(&[u8], Classified)] = &[
        (b"", Partial),
        (b"R", Partial),
        (b"RP", Partial),
        (b"RPI", Partial),
        (b"RPIN", Partial),
        (b"RPING", Complete(Marker::Ping)),
        (b"RPINGhello", Complete(Marker::Ping)),
        (b"RPINGRDATA", Complete(Marker::Ping)),
        (b"RD", Partial),
        (b"RDA", Partial),
        (b"RDAT", Partial),
        (b"RDATA", Complete(Marker::Data)),
        (b"RDATA\0\xff", Complete(Marker::Data)),
        (b"X", Other),
        (b"r", Other),
        (b"RX", Other),
        (b"RPX", Other),
        (b"RDX", Other),
        (b"RPINX", Other),
        (b"RDATX", Other),
        (b"rping", Other),
        (b"RPIN\0", Other),
        (b"PING", Other),
        (b"\x16\x03\x01", Other),
        (b"PRI * HTTP/2.0\r\n", Other),
        (b"GET / HTTP/1.1", Other),
        (b"RPINGRPING", Complete(Marker::Ping)),
    ];
    for (input, expected) in table {
        assert_eq!(
            classify(input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(Marker::Ping.bytes(), RPING);
    assert_eq!(Marker::Data.bytes(), RDATA);
    assert_eq!(&Marker::Ping.frame()[..], b"RPING");
    assert_eq!(&Marker::Data.frame()[..], b"RDATA");
    assert_eq!(MARKER_LEN, 5);
    assert_eq!(RPING, [0x52, 0x50, 0x49, 0x4e, 0x47]);
    assert_eq!(RDATA, [0x52, 0x44, 0x41, 0x54, 0x41]);
}

// ---------------------------------------------------------------------------------------------------------
// InitiatorIdle, Envoy mode

#[test]
fn envoy_ping_then_data_in_one_read() {
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPINGhello"]),
        (vec![1], claim(false, b"hello"))
    );
    assert!(idle.is_claimed());
    assert_eq!(
        idle.handle_input(b"more"),
        Err(KeepaliveError::AlreadyClaimed)
    );
    assert_eq!(idle.handle_input(b""), Err(KeepaliveError::AlreadyClaimed));
}

#[test]
fn envoy_split_ping_then_pings_and_data() {
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPIN", b"GRPINGdata"]),
        (vec![0, 2], claim(false, b"data"))
    );
}

#[test]
fn envoy_broken_prefix_is_data() {
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPIN", b"X"]),
        (vec![0, 0], claim(false, b"RPINX"))
    );

    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPINGR", b"P", b"", b"Xyz"]),
        (vec![1, 0, 0, 0], claim(false, b"RPXyz"))
    );
}

#[test]
fn envoy_lone_prefix_waits() {
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(feed(&mut idle, &[b"R"]), (vec![0], None));
    assert!(!idle.is_claimed());
    assert_eq!(feed(&mut idle, &[b"P", b"I", b"N"]), (vec![0, 0, 0], None));
    assert_eq!(feed(&mut idle, &[b"G"]), (vec![1], None));
    assert_eq!(feed(&mut idle, &[b"", b"RPINGRPING"]), (vec![0, 2], None));
}

#[test]
fn envoy_rdata_and_its_prefixes_are_data() {
    // `RD` can never become a ping: it is data at once, no waiting.
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(feed(&mut idle, &[b"RD"]), (vec![0], claim(false, b"RD")));
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPINGRDATAx"]),
        (vec![1], claim(false, b"RDATAx"))
    );
    // The h2 preface and a TLS ClientHello after a ping.
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"RPING", b"PRI * HTTP/2.0"]),
        (vec![1, 0], claim(false, b"PRI * HTTP/2.0"))
    );
    let mut idle = InitiatorIdle::new(DataMode::Envoy);
    assert_eq!(
        feed(&mut idle, &[b"\x16\x03\x01"]),
        (vec![0], claim(false, b"\x16\x03\x01"))
    );
}

#[test]
fn envoy_mode_is_the_default() {
    assert_eq!(DataMode::default(), DataMode::Envoy);
    assert_eq!(
        InitiatorIdle::new(DataMode::default()).mode(),
        DataMode::Envoy
    );
}

// ---------------------------------------------------------------------------------------------------------
// InitiatorIdle, claim-marker mode

#[test]
fn claim_marker_data_may_hold_markers() {
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    let out = idle
        .handle_input(b"RPINGRDATARPINGRDATA\0\xffRPIN")
        .unwrap();
    assert_eq!(out.pings, 1);
    assert_eq!(out.claim, claim(true, b"RPINGRDATA\0\xffRPIN"));
    assert_eq!(idle.handle_input(b"x"), Err(KeepaliveError::AlreadyClaimed));
}

#[test]
fn claim_marker_split_marker_and_empty_data() {
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        feed(&mut idle, &[b"RPI", b"NGR", b"DA", b"TA"]),
        (vec![0, 1, 0, 0], claim(true, b""))
    );
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        feed(&mut idle, &[b"RDAT", b"ARPING"]),
        (vec![0, 0], claim(true, b"RPING"))
    );
}

#[test]
fn claim_marker_prefix_waits() {
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        feed(&mut idle, &[b"R", b"D", b"A", b"T"]),
        (vec![0; 4], None)
    );
    assert_eq!(feed(&mut idle, &[b"A"]), (vec![0], claim(true, b"")));
}

#[test]
fn claim_marker_garbage_before_rdata_is_an_error() {
    let unexpected = |got: &[u8]| KeepaliveError::UnexpectedBytes {
        got: Bytes::copy_from_slice(got),
    };

    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        idle.handle_input(b"RPINGhello world"),
        Err(unexpected(b"hello"))
    );
    // Sticky: the same error again, even for valid bytes.
    assert_eq!(idle.handle_input(b"RDATA"), Err(unexpected(b"hello")));
    assert!(!idle.is_claimed());

    // A split RPING that turns into RDATA.
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert!(idle.handle_input(b"RPI").unwrap().claim.is_none());
    assert_eq!(idle.handle_input(b"RDATA"), Err(unexpected(b"RPIRD")));

    // Detected before five bytes arrive when no marker can start that way.
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(idle.handle_input(b"RX"), Err(unexpected(b"RX")));
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        idle.handle_input(b"R"),
        Ok(revtun_core::keepalive::IdleInput {
            pings: 0,
            claim: None
        })
    );
    assert_eq!(idle.handle_input(b"X"), Err(unexpected(b"RX")));
    // Envoy-mode data is a protocol error here.
    let mut idle = InitiatorIdle::new(DataMode::ClaimMarker);
    assert_eq!(
        idle.handle_input(b"PRI * HTTP/2.0"),
        Err(unexpected(b"PRI *"))
    );
}

#[test]
fn error_display() {
    let err = KeepaliveError::UnexpectedBytes {
        got: Bytes::from_static(b"hel"),
    };
    assert_eq!(
        err.to_string(),
        r#"claim-marker mode: expected RPING or RDATA, got b"hel""#
    );
    assert!(
        KeepaliveError::AlreadyClaimed
            .to_string()
            .contains("after the claim")
    );
}

// ---------------------------------------------------------------------------------------------------------
// ClaimAnswer

/// Feeds `reads` to `answer`; the data it lets through, or its first error.
fn filter_all(answer: &mut ClaimAnswer, reads: &[&[u8]]) -> Result<Vec<u8>, KeepaliveError> {
    let mut data = Vec::new();
    for read in reads {
        let range = answer.filter(read)?;
        assert_eq!(range.end, read.len(), "data is a suffix of its read");
        data.extend_from_slice(&read[range]);
    }
    Ok(data)
}

#[test]
fn claim_answer_drops_split_echoes_until_rdata() {
    let mut answer = ClaimAnswer::new();
    for read in [&b"RP"[..], b"IN", b"GR", b"PINGR", b"DAT"] {
        assert_eq!(answer.filter(read), Ok(read.len()..read.len()));
    }
    assert!(!answer.is_complete());
    assert_eq!(answer.filter(b"ARPINGdata"), Ok(1..10));
    assert_eq!(answer.echoes_dropped(), 2);
    assert!(answer.is_complete());
    // From now on every read is data, whole.
    assert_eq!(answer.filter(b"RDATA"), Ok(0..5));
}

#[test]
fn claim_answer_alone_completes_with_no_data() {
    let mut answer = ClaimAnswer::default();
    assert_eq!(answer.filter(b"RDATA"), Ok(5..5));
    assert!(answer.is_complete());
    assert_eq!(answer.echoes_dropped(), 0);
}

#[test]
fn claim_answer_rejects_data_before_rdata() {
    let mut answer = ClaimAnswer::new();
    assert_eq!(
        answer.filter(b"RPINGGET / HTTP/1.1"),
        Err(KeepaliveError::UnexpectedBytes {
            got: Bytes::from_static(b"GET /")
        })
    );
    assert!(answer.filter(b"RDATA").is_err(), "errors are sticky");
    assert!(!answer.is_complete());
}

#[test]
fn claim_answer_keeps_bytes_the_keepalive_buffered() {
    let t0 = origin();
    let mut rng = rng(1);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = ka.poll_timeout().unwrap();
    assert_eq!(
        ka.handle_timeout(send, &mut rng),
        Some(KeepaliveAction::SendPing)
    );
    // Part of the echo arrives, then the responder claims.
    assert_eq!(ka.handle_input(b"RPI", send, &mut rng), None);
    assert_eq!(ka.buffered(), b"RPI");
    let mut answer = ka.into_answer();
    assert_eq!(
        filter_all(&mut answer, &[b"NG", b"RDATAhi"]),
        Ok(b"hi".to_vec())
    );
    assert_eq!(answer.echoes_dropped(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// ResponderKeepalive timeline

const INTERVAL: Duration = Duration::from_secs(2);

fn config(interval: Duration, failure_threshold: u32) -> KeepaliveConfig {
    KeepaliveConfig {
        interval,
        failure_threshold,
    }
}

/// Runs the keepalive to its first ping; returns the send time.
fn first_ping(ka: &mut ResponderKeepalive, rng: &mut ChaCha8Rng) -> Instant {
    let send = ka.poll_timeout().unwrap();
    assert_eq!(
        ka.handle_timeout(send, rng),
        Some(KeepaliveAction::SendPing)
    );
    send
}

#[test]
fn defaults() {
    let cfg = KeepaliveConfig::default();
    assert_eq!(cfg, config(Duration::from_secs(2), 3));
    assert_eq!(cfg.echo_timeout(), Duration::from_secs(1));
    assert_eq!(
        config(Duration::ZERO, 0).normalized(),
        config(MIN_PING_INTERVAL, 1)
    );
    assert_eq!(config(ms(250), 5).normalized(), config(ms(250), 5));
    assert_eq!(config(ms(250), 5).echo_timeout(), ms(125));
}

#[test]
fn first_ping_one_jittered_interval_after_registration() {
    let t0 = origin();
    let mut rng = rng(2);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let due = ka.poll_timeout().unwrap();
    assert!(
        due >= t0 + INTERVAL && due <= t0 + INTERVAL.mul_f64(1.15),
        "{:?}",
        due - t0
    );
    assert_eq!(ka.next_ping_at(), Some(due));
    assert!(!ka.ping_in_flight());
    // Early and spurious calls do nothing.
    assert_eq!(ka.handle_timeout(t0, &mut rng), None);
    assert_eq!(
        ka.handle_timeout(due - Duration::from_nanos(1), &mut rng),
        None
    );
    assert_eq!(ka.poll_timeout(), Some(due));
    assert_eq!(
        ka.handle_timeout(due, &mut rng),
        Some(KeepaliveAction::SendPing)
    );
    assert!(ka.ping_in_flight());
    assert_eq!(ka.next_ping_at(), None);
    // The echo deadline is interval/2 after the send.
    assert_eq!(ka.echo_deadline(), Some(due + INTERVAL / 2));
    assert_eq!(ka.poll_timeout(), Some(due + INTERVAL / 2));
    // No second ping while one is in flight, however often the timer fires.
    assert_eq!(ka.handle_timeout(due, &mut rng), None);
    assert_eq!(ka.handle_timeout(due + ms(999), &mut rng), None);
    assert_eq!(ka.misses(), 0);
}

#[test]
fn missed_deadlines_rearm_without_pinging_then_kill() {
    let t0 = origin();
    let mut rng = rng(3);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    let half = INTERVAL / 2;

    // Miss 1 at send + 1 s: re-armed at +2 s, no ping.
    assert_eq!(ka.handle_timeout(send + half, &mut rng), None);
    assert_eq!(ka.misses(), 1);
    assert!(ka.ping_in_flight());
    assert_eq!(ka.poll_timeout(), Some(send + 2 * half));
    // Miss 2 at send + 2 s, although the next send time (≤ send + 2.3 s) is near: still no ping.
    assert_eq!(ka.handle_timeout(send + 2 * half, &mut rng), None);
    assert_eq!(ka.misses(), 2);
    assert_eq!(ka.handle_timeout(send + ms(2_400), &mut rng), None);
    assert_eq!(ka.poll_timeout(), Some(send + 3 * half));
    // Miss 3 = threshold: dead, once.
    assert_eq!(
        ka.handle_timeout(send + 3 * half, &mut rng),
        Some(KeepaliveAction::Dead)
    );
    assert!(ka.is_dead());
    assert_eq!(ka.misses(), 3);
    assert_eq!(ka.poll_timeout(), None);
    assert!(!ka.ping_in_flight());
    assert_eq!(ka.handle_timeout(send + 10 * half, &mut rng), None);
    assert_eq!(ka.handle_input(b"RPING", send + 10 * half, &mut rng), None);
    assert_eq!(ka.handle_input(b"xxxxx", send + 10 * half, &mut rng), None);
}

#[test]
fn a_late_timer_rearms_from_now() {
    let t0 = origin();
    let mut rng = rng(4);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    let late = send + ms(1_700);
    assert_eq!(ka.handle_timeout(late, &mut rng), None);
    assert_eq!(ka.misses(), 1);
    assert_eq!(ka.poll_timeout(), Some(late + INTERVAL / 2));
}

#[test]
fn echo_resets_misses_and_keeps_the_schedule() {
    let t0 = origin();
    let mut rng = rng(5);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    let next = send + INTERVAL;
    assert_eq!(ka.handle_timeout(send + ms(1_000), &mut rng), None);
    assert_eq!(ka.misses(), 1);

    // The echo, split, arrives before the next send time.
    assert_eq!(ka.handle_input(b"RPI", send + ms(1_100), &mut rng), None);
    assert!(ka.ping_in_flight());
    assert_eq!(ka.handle_input(b"NG", send + ms(1_200), &mut rng), None);
    assert!(!ka.ping_in_flight());
    assert_eq!(ka.misses(), 0);
    assert_eq!(ka.buffered(), b"");
    // Next ping one jittered interval after the previous send.
    let due = ka.poll_timeout().unwrap();
    assert!(due >= next && due <= send + INTERVAL.mul_f64(1.15));
    assert_eq!(
        ka.handle_timeout(due, &mut rng),
        Some(KeepaliveAction::SendPing)
    );
}

#[test]
fn late_echo_schedules_the_next_ping_one_interval_later() {
    let t0 = origin();
    let mut rng = rng(6);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    assert_eq!(ka.handle_timeout(send + ms(1_000), &mut rng), None);
    assert_eq!(ka.handle_timeout(send + ms(2_000), &mut rng), None);
    assert_eq!(ka.misses(), 2);
    // The scheduled send (≤ send + 2.3 s) passed while the ping was in flight; the echo comes at +2.4 s.
    let echo = send + ms(2_400);
    assert_eq!(ka.handle_input(b"RPING", echo, &mut rng), None);
    assert_eq!(ka.misses(), 0);
    let due = ka.poll_timeout().unwrap();
    assert!(
        due >= echo + INTERVAL && due <= echo + INTERVAL.mul_f64(1.15),
        "{:?}",
        due - echo
    );
    assert_eq!(ka.handle_timeout(echo, &mut rng), None);
}

#[test]
fn five_non_rping_bytes_are_one_miss() {
    let t0 = origin();
    let mut rng = rng(7);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    // Four bytes wait; the fifth makes a miss, re-arming the deadline from now.
    assert_eq!(ka.handle_input(b"HELL", send + ms(100), &mut rng), None);
    assert_eq!(ka.misses(), 0);
    assert_eq!(ka.handle_input(b"O", send + ms(200), &mut rng), None);
    assert_eq!(ka.misses(), 1);
    assert!(ka.ping_in_flight());
    assert_eq!(ka.poll_timeout(), Some(send + ms(200) + INTERVAL / 2));
    // RDATA from the initiator in the idle phase is not an echo either.
    assert_eq!(ka.handle_input(b"RDATA", send + ms(300), &mut rng), None);
    assert_eq!(ka.misses(), 2);
    // The echo still clears everything.
    assert_eq!(ka.handle_input(b"RPING", send + ms(400), &mut rng), None);
    assert_eq!(ka.misses(), 0);
    assert!(!ka.ping_in_flight());
}

#[test]
fn near_echoes_are_misses() {
    let t0 = origin();
    let mut rng = rng(15);
    let mut ka = ResponderKeepalive::new(config(INTERVAL, 9), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    for (i, near) in [&b"RPINX"[..], b"rping", b"XPING", b"RPIGN", b"RDATA"]
        .iter()
        .enumerate()
    {
        assert_eq!(ka.handle_input(near, send, &mut rng), None);
        assert_eq!(ka.misses(), u32::try_from(i).unwrap() + 1, "{near:?}");
        assert!(ka.ping_in_flight());
    }
}

#[test]
fn garbage_reaching_the_threshold_kills_and_ignores_the_rest() {
    let t0 = origin();
    let mut rng = rng(8);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    assert_eq!(
        ka.handle_input(b"0123456789abcdeRPING", send, &mut rng),
        Some(KeepaliveAction::Dead)
    );
    assert!(ka.is_dead());
    assert_eq!(ka.misses(), 3);
}

#[test]
fn unaligned_echo_is_misses() {
    // Units are taken five bytes at a time: a stray byte misaligns the echo that follows.
    let t0 = origin();
    let mut rng = rng(9);
    let mut ka = ResponderKeepalive::new(config(INTERVAL, 5), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    assert_eq!(ka.handle_input(b"xRPING", send, &mut rng), None);
    assert_eq!(ka.misses(), 1);
    assert_eq!(ka.buffered(), b"G");
}

#[test]
fn unsolicited_echo_is_ignored_and_garbage_still_counts() {
    let t0 = origin();
    let mut rng = rng(10);
    let mut ka = ResponderKeepalive::new(config(INTERVAL, 2), t0, &mut rng);
    let due = ka.poll_timeout().unwrap();
    assert_eq!(ka.handle_input(b"RPING", t0 + ms(10), &mut rng), None);
    assert_eq!(ka.misses(), 0);
    assert_eq!(ka.poll_timeout(), Some(due));
    // Garbage with no ping in flight: a miss, but no deadline to arm.
    assert_eq!(ka.handle_input(b"xxxxx", t0 + ms(20), &mut rng), None);
    assert_eq!(ka.misses(), 1);
    assert!(!ka.ping_in_flight());
    assert_eq!(ka.poll_timeout(), Some(due));
    assert_eq!(
        ka.handle_input(b"yyyyy", t0 + ms(30), &mut rng),
        Some(KeepaliveAction::Dead)
    );
}

#[test]
fn threshold_zero_is_one() {
    let t0 = origin();
    let mut rng = rng(11);
    let mut ka = ResponderKeepalive::new(config(INTERVAL, 0), t0, &mut rng);
    assert_eq!(ka.config().failure_threshold, 1);
    let send = first_ping(&mut ka, &mut rng);
    assert_eq!(
        ka.handle_timeout(send + INTERVAL / 2, &mut rng),
        Some(KeepaliveAction::Dead)
    );
}

#[test]
fn zero_interval_never_spins() {
    let t0 = origin();
    let mut rng = rng(12);
    let mut ka = ResponderKeepalive::new(config(Duration::ZERO, 1_000), t0, &mut rng);
    let mut now = t0;
    for _ in 0..100 {
        let t = ka.poll_timeout().unwrap();
        assert!(t > now, "deadline did not move forward");
        now = t;
        let _ = ka.handle_timeout(now, &mut rng);
        if ka.ping_in_flight() {
            assert_eq!(ka.handle_input(b"RPING", now, &mut rng), None);
        }
    }
}

#[test]
fn sub_second_interval() {
    let t0 = origin();
    let mut rng = rng(13);
    let interval = ms(300);
    let mut ka = ResponderKeepalive::new(config(interval, 3), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    assert!(send >= t0 + interval && send <= t0 + ms(345));
    assert_eq!(ka.poll_timeout(), Some(send + ms(150)));
}

#[test]
fn time_going_backwards_is_ignored() {
    let t0 = origin() + Duration::from_secs(100);
    let mut rng = rng(14);
    let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
    let send = first_ping(&mut ka, &mut rng);
    // Garbage "before" the send re-arms from the latest time seen, not from the stale `now`.
    assert_eq!(ka.handle_input(b"xxxxx", t0, &mut rng), None);
    assert_eq!(ka.poll_timeout(), Some(send + INTERVAL / 2));
    assert_eq!(ka.handle_timeout(t0, &mut rng), None);
    assert_eq!(ka.misses(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Proptests

/// Cuts `stream` at the given points (sorted; duplicates make empty reads).
fn split_at_points(stream: &[u8], points: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut reads = Vec::new();
    let mut start = 0;
    for cut in cuts {
        reads.push(stream[start..cut].to_vec());
        start = cut;
    }
    reads.push(stream[start..].to_vec());
    reads
}

/// Bytes that like to contain markers and their prefixes.
fn marker_heavy_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(RPING.to_vec()),
        Just(RDATA.to_vec()),
        (1usize..5).prop_map(|n| RPING[..n].to_vec()),
        (1usize..5).prop_map(|n| RDATA[..n].to_vec()),
    ];
    prop::collection::vec(piece, 0..max).prop_map(|pieces| pieces.concat())
}

/// Envoy-mode data: non-empty, and not starting with a prefix of `RPING`.
fn envoy_data() -> impl Strategy<Value = Vec<u8>> {
    (0usize..5, marker_heavy_bytes(16))
        .prop_map(|(prefix, tail)| [&RPING[..prefix], &tail[..]].concat())
        .prop_filter(
            "Envoy-mode data must not begin with an RPING prefix",
            |data| match data.get(..5) {
                Some(head) => head != RPING,
                None => !RPING.starts_with(data),
            },
        )
}

/// Feeds `reads` to the initiator; returns the echo total, the claim (if any), and every byte delivered to
/// the data phase: the claim's data plus all later reads, which the data phase reads directly.
fn run_initiator(
    mode: DataMode,
    reads: &[Vec<u8>],
) -> Result<(usize, Option<bool>, Vec<u8>), KeepaliveError> {
    let mut idle = InitiatorIdle::new(mode);
    let mut pings = 0;
    let mut answer = None;
    let mut delivered = Vec::new();
    for read in reads {
        if answer.is_some() {
            delivered.extend_from_slice(read);
            continue;
        }
        let out = idle.handle_input(read)?;
        pings += out.pings;
        if let Some(claim) = out.claim {
            answer = Some(claim.answer_marker);
            delivered.extend_from_slice(&claim.data);
            assert_eq!(
                idle.handle_input(b"RPING"),
                Err(KeepaliveError::AlreadyClaimed)
            );
        }
    }
    Ok((pings, answer, delivered))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn envoy_mode_delivers_data_once(
        pings in 0usize..6,
        data in envoy_data(),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = [RPING.repeat(pings), data.clone()].concat();
        let reads = split_at_points(&stream, &points);
        let (echoes, answer, delivered) = run_initiator(DataMode::Envoy, &reads).unwrap();
        prop_assert_eq!(echoes, pings);
        prop_assert_eq!(answer, Some(false));
        prop_assert_eq!(delivered, data);
    }

    #[test]
    fn envoy_mode_pings_and_a_trailing_prefix_wait(
        pings in 0usize..6,
        prefix in 0usize..5,
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = [RPING.repeat(pings), RPING[..prefix].to_vec()].concat();
        let (echoes, answer, _) = run_initiator(DataMode::Envoy, &split_at_points(&stream, &points)).unwrap();
        prop_assert_eq!(echoes, pings);
        prop_assert_eq!(answer, None);
    }

    #[test]
    fn claim_marker_mode_delivers_any_data_once(
        pings in 0usize..6,
        data in prop_oneof![marker_heavy_bytes(16), prop::collection::vec(any::<u8>(), 0..64)],
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = [RPING.repeat(pings), RDATA.to_vec(), data.clone()].concat();
        let reads = split_at_points(&stream, &points);
        let (echoes, answer, delivered) = run_initiator(DataMode::ClaimMarker, &reads).unwrap();
        prop_assert_eq!(echoes, pings);
        prop_assert_eq!(answer, Some(true));
        prop_assert_eq!(delivered, data);
    }

    /// Anything that is not whole RPINGs before RDATA fails, however it is split.
    #[test]
    fn claim_marker_mode_rejects_garbage_before_rdata(
        pings in 0usize..4,
        garbage in marker_heavy_bytes(6).prop_filter("not a marker stream", |g| {
            let mut rest = &g[..];
            while rest.starts_with(&RPING) { rest = &rest[5..]; }
            !(rest.starts_with(&RDATA) || RPING.starts_with(rest) || RDATA.starts_with(rest))
        }),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream = [RPING.repeat(pings), garbage, RDATA.to_vec()].concat();
        let result = run_initiator(DataMode::ClaimMarker, &split_at_points(&stream, &points));
        prop_assert!(matches!(result, Err(KeepaliveError::UnexpectedBytes { .. })), "{:?}", result);
    }

    /// The responder's answer filter drops the initiator's echoes, split anywhere (part of them possibly
    /// still buffered by the keepalive when the claim happens), strips `RDATA` exactly once, and lets
    /// every data byte after it through once, in order, whatever its bytes.
    #[test]
    fn claim_answer_delivers_data_once(
        echoes in 0usize..5,
        data in prop_oneof![marker_heavy_bytes(16), prop::collection::vec(any::<u8>(), 0..64)],
        before_claim in any::<prop::sample::Index>(),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        seed in any::<u8>(),
    ) {
        let t0 = origin();
        let mut rng = rng(seed);
        let mut ka = ResponderKeepalive::new(KeepaliveConfig::default(), t0, &mut rng);
        let send = first_ping(&mut ka, &mut rng);
        // Some echo bytes reach the keepalive before the responder writes RDATA.
        let echo_bytes = RPING.repeat(echoes);
        let cut = before_claim.index(echo_bytes.len() + 1);
        prop_assert_eq!(ka.handle_input(&echo_bytes[..cut], send, &mut rng), None);
        prop_assert_eq!(ka.misses(), 0);
        let consumed_by_keepalive = cut / MARKER_LEN;
        let mut answer = ka.into_answer();

        let stream = [echo_bytes[cut..].to_vec(), RDATA.to_vec(), data.clone()].concat();
        let mut delivered = Vec::new();
        for read in split_at_points(&stream, &points) {
            let range = answer.filter(&read).unwrap();
            prop_assert_eq!(range.end, read.len());
            prop_assert!(range.is_empty() || answer.is_complete());
            delivered.extend_from_slice(&read[range]);
        }
        prop_assert!(answer.is_complete());
        prop_assert_eq!(delivered, data);
        prop_assert_eq!(answer.echoes_dropped() + consumed_by_keepalive, echoes);
    }

    /// Bytes that are neither whole `RPING`s nor `RDATA` before the answer fail the filter, however the
    /// stream is split, and nothing before the failure is let through as data.
    #[test]
    fn claim_answer_rejects_garbage_before_rdata(
        pings in 0usize..4,
        garbage in prop::collection::vec(any::<u8>(), 1..8)
            .prop_filter("not a marker prefix", |g| {
                let head = &g[..g.len().min(MARKER_LEN)];
                !RPING.starts_with(head) && !RDATA.starts_with(head)
            }),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream = [RPING.repeat(pings), garbage, RDATA.to_vec(), b"data".to_vec()].concat();
        let mut answer = ClaimAnswer::new();
        let mut result = Ok(());
        for read in split_at_points(&stream, &points) {
            match answer.filter(&read) {
                Ok(range) => prop_assert!(range.is_empty(), "data let through before the answer"),
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        prop_assert!(matches!(result, Err(KeepaliveError::UnexpectedBytes { .. })), "{:?}", result);
        prop_assert!(!answer.is_complete());
    }

    /// Random inputs and timer firings: never two pings in flight, a ping only goes out with none in flight,
    /// misses stay below the threshold while alive, and the timer always moves forward.
    #[test]
    fn responder_keepalive_never_has_two_pings_in_flight(
        seed in any::<u8>(),
        interval_ms in 1u64..5_000,
        threshold in 0u32..5,
        ops in prop::collection::vec((0u8..6, 0u64..3_000), 1..80),
    ) {
        let t0 = origin();
        let mut rng = rng(seed);
        let cfg = config(ms(interval_ms), threshold);
        let mut ka = ResponderKeepalive::new(cfg, t0, &mut rng);
        let mut now = t0;
        let mut outstanding = 0u32;
        for (op, arg) in ops {
            let in_flight_before = ka.ping_in_flight();
            let action = match op {
                0 => {
                    now = ka.poll_timeout().unwrap_or(now).max(now);
                    ka.handle_timeout(now, &mut rng)
                }
                1 => {
                    now += ms(arg);
                    ka.handle_timeout(now, &mut rng)
                }
                2 => ka.handle_input(b"RPING", now, &mut rng),
                3 => ka.handle_input(&RPING[..(arg as usize % 5)], now, &mut rng),
                4 => ka.handle_input(b"RPINGx", now, &mut rng),
                _ => ka.handle_input(&[arg as u8; 3], now, &mut rng),
            };
            match action {
                Some(KeepaliveAction::SendPing) => {
                    prop_assert!(!in_flight_before, "ping sent while one was in flight");
                    prop_assert!(op <= 1, "SendPing from handle_input");
                    outstanding += 1;
                }
                Some(KeepaliveAction::Dead) => prop_assert!(ka.is_dead()),
                None => {}
            }
            if in_flight_before && !ka.ping_in_flight() && !ka.is_dead() {
                outstanding -= 1;
            }
            if ka.is_dead() {
                prop_assert_eq!(ka.poll_timeout(), None);
                break;
            }
            prop_assert!(outstanding <= 1);
            prop_assert_eq!(outstanding == 1, ka.ping_in_flight());
            prop_assert!(ka.misses() < cfg.normalized().failure_threshold);
            if op <= 1 {
                prop_assert!(ka.poll_timeout().unwrap() > now, "timer did not move forward");
            }
        }
    }

    /// Same seed, same schedule.
    #[test]
    fn responder_keepalive_is_deterministic(seed in any::<[u8; 32]>(), interval_ms in 1u64..5_000) {
        let t0 = origin();
        let schedule = |seed| {
            let mut rng = ChaCha8Rng::from_seed(seed);
            let mut ka = ResponderKeepalive::new(config(ms(interval_ms), 3), t0, &mut rng);
            let mut sends = Vec::new();
            for _ in 0..8 {
                let t = ka.poll_timeout().unwrap();
                if ka.handle_timeout(t, &mut rng) == Some(KeepaliveAction::SendPing) {
                    sends.push(t - t0);
                    let _ = ka.handle_input(b"RPING", t, &mut rng);
                }
            }
            sends
        };
        let sends = schedule(seed);
        prop_assert_eq!(sends.len(), 8);
        for pair in sends.windows(2) {
            let gap = pair[1] - pair[0];
            prop_assert!(gap >= ms(interval_ms) && gap <= ms(interval_ms).mul_f64(1.15) + Duration::from_nanos(1));
        }
        prop_assert_eq!(sends, schedule(seed));
    }
}
