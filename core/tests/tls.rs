//! Tunnel TLS as the cores see it: the responder learns of a TLS connection at TCP accept time (caps and
//! `handshake_timeout` cover the TLS handshake), takes no input and authorizes nothing before the TLS
//! identity, counts `tls_failed`; the initiator counts a TLS failure as a failed attempt with reason `tls`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use revtun_core::command::{Command, ConnId};
use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use revtun_core::initiator::{
    HandshakeFailure, Initiator, InitiatorConfig, InitiatorEvent, TargetCluster,
};
use revtun_core::responder::{
    AuthDecision, HandshakeContext, PeerTlsIdentity, RejectReason, Responder, ResponderConfig,
    ResponderEvent,
};

#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

fn peer() -> SocketAddr {
    "10.0.0.7:40000".parse().unwrap()
}

fn request() -> Vec<u8> {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: "10.0.0.1:9000".parse().unwrap(),
        node: "edge-1",
        cluster: "edge",
        tenant: "",
        target_cluster: "upstream",
        initiation_time_ms: 0,
        upgrade: false,
        offer_claim_marker: false,
        extra_headers: &[],
    }
    .to_bytes()
    .to_vec()
}

fn responder_config() -> ResponderConfig {
    ResponderConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ResponderConfig::default()
    }
}

fn drain(r: &mut Responder) -> (Vec<Command>, Vec<ResponderEvent>) {
    while r.poll_transmit().is_some() {}
    let commands = std::iter::from_fn(|| r.poll_command()).collect();
    let events = std::iter::from_fn(|| r.poll_event()).collect();
    (commands, events)
}

fn handshake_stat(r: &Responder, name: &str) -> u64 {
    r.stats()
        .get(&format!("reverse_tunnel.handshake.{name}"))
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// The authorizer sees the identity given at `handle_tls_established`, and only after it.
#[test]
fn identity_reaches_the_authorizer_after_the_tls_handshake() {
    let now = origin();
    let seen: Arc<Mutex<Vec<Option<PeerTlsIdentity>>>> = Arc::default();
    let record = seen.clone();
    let authorizer = move |ctx: &HandshakeContext<'_>| {
        record.lock().unwrap().push(ctx.tls.cloned());
        AuthDecision::Accept
    };
    let mut r = Responder::new(responder_config(), [1; 32], now)
        .unwrap()
        .with_authorizer(Arc::new(authorizer));
    let conn = r.handle_accepted_tls(peer(), now);
    assert_eq!(
        r.pending_handshakes(),
        1,
        "counted as pending from TCP accept"
    );

    // Input before the TLS handshake completed is driver misuse: ignored, nothing authorized.
    r.handle_input(conn, &request(), now);
    assert_eq!(drain(&mut r), (vec![], vec![]));
    assert!(seen.lock().unwrap().is_empty());

    let identity = PeerTlsIdentity {
        uri_sans: vec!["spiffe://example.org/edge-1".into()],
        dns_sans: vec!["edge-1.example.org".into()],
    };
    r.handle_tls_established(conn, Some(identity.clone()), now);
    r.handle_input(conn, &request(), now);
    let (_, events) = drain(&mut r);
    assert!(matches!(events[..], [ResponderEvent::Registered { .. }]));
    assert_eq!(*seen.lock().unwrap(), vec![Some(identity)]);
    assert_eq!(handshake_stat(&r, "accepted"), 1);
    assert!(r.counts().is_balanced());
}

#[test]
fn tls_failure_is_counted_and_needs_no_close() {
    let now = origin();
    let mut r = Responder::new(responder_config(), [1; 32], now).unwrap();
    let conn = r.handle_accepted_tls(peer(), now);
    r.handle_tls_failed(conn, now);
    let (commands, events) = drain(&mut r);
    assert_eq!(commands, vec![], "the driver closed the socket itself");
    assert_eq!(
        events,
        vec![ResponderEvent::Rejected {
            conn,
            reason: RejectReason::TlsFailed
        }]
    );
    assert_eq!(handshake_stat(&r, "tls_failed"), 1);
    assert_eq!(r.pending_handshakes(), 0);
    // Late or repeated reports are ignored.
    r.handle_tls_failed(conn, now);
    r.handle_closed(conn, now);
    r.handle_tls_established(conn, None, now);
    assert_eq!(drain(&mut r), (vec![], vec![]));
    assert_eq!(handshake_stat(&r, "tls_failed"), 1);
    assert!(r.counts().is_balanced());
}

/// A TLS client that never finishes its handshake is closed at `handshake_timeout` (`timeout`).
#[test]
fn handshake_timeout_covers_the_tls_handshake() {
    let now = origin();
    let mut r = Responder::new(responder_config(), [1; 32], now).unwrap();
    let conn = r.handle_accepted_tls(peer(), now);
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_millis(500)));
    r.handle_timeout(now + Duration::from_millis(500));
    let (commands, events) = drain(&mut r);
    assert_eq!(commands, vec![Command::Close { conn }]);
    assert_eq!(
        events,
        vec![ResponderEvent::Rejected {
            conn,
            reason: RejectReason::Timeout
        }]
    );
    assert_eq!(handshake_stat(&r, "timeout"), 1);
    assert_eq!(handshake_stat(&r, "tls_failed"), 0);
}

/// A TLS error in an established session (after the TLS handshake) is a close; `handle_tls_established`
/// on a connection not waiting for it is ignored.
#[test]
fn tls_errors_after_the_tls_handshake_are_closes() {
    let now = origin();
    let mut r = Responder::new(responder_config(), [1; 32], now).unwrap();
    let conn = r.handle_accepted(peer(), None, now);
    r.handle_tls_established(conn, Some(PeerTlsIdentity::default()), now);
    r.handle_input(conn, &request(), now);
    let (_, events) = drain(&mut r);
    assert!(matches!(events[..], [ResponderEvent::Registered { .. }]));
    r.handle_tls_failed(conn, now);
    let (commands, events) = drain(&mut r);
    assert_eq!(commands, vec![]);
    assert!(matches!(events[..], [ResponderEvent::TunnelLost { .. }]));
    assert_eq!(handshake_stat(&r, "tls_failed"), 0);
    assert!(r.counts().is_balanced());
}

fn initiator() -> (Initiator, ConnId, Instant) {
    let now = origin();
    let target = TargetCluster {
        name: "upstream".into(),
        count: 1,
    };
    let mut config = InitiatorConfig::new("edge-1", "edge", "", vec![target]);
    config.handshake_timeout = Duration::from_millis(400);
    let mut i = Initiator::new(config, [2; 32], now).unwrap();
    i.set_hosts("upstream", &["10.0.0.1:9000".parse().unwrap()], now)
        .unwrap();
    let Some(Command::Dial { conn, .. }) = i.poll_command() else {
        panic!("no dial");
    };
    assert_eq!(i.cluster_of(conn), Some("upstream"));
    while i.poll_event().is_some() {}
    (i, conn, now)
}

fn initiator_stat(i: &Initiator, name: &str) -> u64 {
    i.stats()
        .get(&format!(
            "downstream_reverse_connection.host.10.0.0.1:9000.{name}"
        ))
        .unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn initiator_counts_a_tls_failure_as_a_failed_attempt() {
    let (mut i, conn, now) = initiator();
    i.handle_connected(conn, now, 0);
    while i.poll_transmit().is_some() {}
    i.handle_tls_failed(conn, now);
    assert_eq!(
        i.poll_command(),
        None,
        "the driver closed the socket itself"
    );
    let events: Vec<_> = std::iter::from_fn(|| i.poll_event()).collect();
    assert!(matches!(
        events[0],
        InitiatorEvent::HandshakeFailed {
            reason: HandshakeFailure::Tls,
            ..
        }
    ));
    assert!(matches!(events[1], InitiatorEvent::BackingOff { .. }));
    assert_eq!(initiator_stat(&i, "handshake_failed.tls"), 1);
    assert_eq!(initiator_stat(&i, "failed"), 1);
    assert_eq!(i.cluster_of(conn), None, "forgotten");
    assert!(i.counts().is_balanced());
}

/// The handshake deadline runs from the TCP connect, so it covers the TLS handshake the driver runs.
#[test]
fn initiator_handshake_timeout_covers_the_tls_handshake() {
    let (mut i, conn, now) = initiator();
    i.handle_connected(conn, now, 0);
    while i.poll_transmit().is_some() {}
    i.handle_timeout(now + Duration::from_millis(400));
    assert_eq!(i.poll_command(), Some(Command::Close { conn }));
    assert_eq!(initiator_stat(&i, "handshake_failed.timeout"), 1);
}
