//! One reverse tunnel's whole life, driven through revtun-core's codecs with no sockets and no config:
//! the initiator's handshake request, the responder's checks and answer, two keepalive rounds, and a claim
//! in claim-marker mode followed by data in both directions. Prints what each side would write.
//!
//! Run with `cargo run -p revtun-core --example tunnel_lifecycle`.
#![allow(clippy::print_stdout, reason = "an example that prints the wire")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use revtun_core::RcAddress;
use revtun_core::handshake::{
    DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest, HeadLimits, RequestParser,
    RequestPolicy, ResponseParser, check_request, encode_accept,
};
use revtun_core::keepalive::{
    ClaimAnswer, DataMode, InitiatorIdle, KeepaliveAction, KeepaliveConfig, RDATA, RPING,
    ResponderKeepalive,
};

fn show(from: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    println!("{from} writes {} bytes:", bytes.len());
    for line in text.split_inclusive("\r\n") {
        println!("    {}", line.escape_debug());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The initiator's listener address, as it appears in an Envoy bootstrap.
    let address = RcAddress::from_socket_address("rc://edge-1:edge:tenant-a@upstream:4", 0)?;
    println!(
        "listener address {address}: keep {} idle tunnels per host of `{}`\n",
        address.count(),
        address.target_cluster()
    );

    // 1. Handshake. The initiator dialled 127.0.0.1:9000 (a host of `upstream`).
    let responder_addr = SocketAddr::from(([127, 0, 0, 1], 9000));
    let request = HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: responder_addr,
        node: address.node(),
        cluster: address.cluster(),
        tenant: address.tenant(),
        target_cluster: address.target_cluster(),
        initiation_time_ms: 1_764_201_600_000,
        upgrade: false,
        offer_claim_marker: true,
        extra_headers: &[],
    }
    .to_bytes();
    show("initiator", &request);

    // The responder reads the request (here in two pieces, as TCP may deliver it) and runs its checks.
    let mut request_parser = RequestParser::new(HeadLimits::default());
    let (first, rest) = request.split_at(request.len() / 2);
    assert!(
        request_parser.push(first)?.is_none(),
        "half a request is not a request"
    );
    let parsed = request_parser.push(rest)?.ok_or("request incomplete")?;
    let policy = RequestPolicy::default();
    let identity =
        check_request(&parsed, &policy).map_err(|rejection| format!("rejected: {rejection:?}"))?;
    println!(
        "responder accepts node `{}` of cluster `{}` (tenant `{}`)",
        identity.node, identity.cluster, identity.tenant
    );
    let claim_marker = policy.claim_marker && parsed.offers_claim_marker();
    let response = encode_accept(false, claim_marker);
    show("responder", &response);

    // The initiator reads the answer. Bytes after the head (say, a first RPING in the same read) would
    // come back as `leftover`.
    let accepted = ResponseParser::new(HeadLimits::default(), false, true)
        .push(&response)?
        .ok_or("response incomplete")?;
    println!(
        "initiator: tunnel established, claim marker agreed: {}\n",
        accepted.claim_marker
    );
    let mode = if accepted.claim_marker {
        DataMode::ClaimMarker
    } else {
        DataMode::Envoy
    };

    // 2. Idle: the responder pings on its own timer; the initiator echoes.
    #[allow(
        clippy::disallowed_methods,
        reason = "the example is the driver: it owns the clock"
    )]
    let start = Instant::now();
    let mut rng = ChaCha8Rng::from_seed([7; 32]);
    let config = KeepaliveConfig {
        interval: Duration::from_secs(2),
        failure_threshold: 3,
    };
    let mut keepalive = ResponderKeepalive::new(config, start, &mut rng);
    let mut idle = InitiatorIdle::new(mode);
    assert!(accepted.leftover.is_empty());
    for round in 1..=2 {
        let at = keepalive.poll_timeout().ok_or("no keepalive timer")?;
        match keepalive.handle_timeout(at, &mut rng) {
            Some(KeepaliveAction::SendPing) => {
                println!("t+{:?} (round {round})", at - start);
                show("responder", &RPING);
            }
            other => return Err(format!("unexpected keepalive action {other:?}").into()),
        }
        let input = idle.handle_input(&RPING)?;
        for _ in 0..input.pings {
            show("initiator", &RPING);
            if let Some(action) =
                keepalive.handle_input(&RPING, at + Duration::from_millis(1), &mut rng)
            {
                return Err(format!("unexpected keepalive action {action:?}").into());
            }
        }
        println!(
            "responder: echo received, ping in flight: {}",
            keepalive.ping_in_flight()
        );
    }

    // 3. Claim (claim-marker mode): RDATA with data right behind it, answered by RDATA; then everything is
    //    data, whatever its bytes.
    println!();
    show("responder", &RDATA);
    let mut to_initiator = RDATA.to_vec();
    to_initiator.extend_from_slice(b"RPING is fine as data here");
    let claim = idle.handle_input(&to_initiator)?.claim.ok_or("no claim")?;
    if claim.answer_marker {
        show("initiator", &RDATA);
    }
    println!(
        "initiator: claimed; data for the local service: {:?}",
        String::from_utf8_lossy(&claim.data)
    );
    // The responder handed the tunnel out as it wrote RDATA; its reads strip the initiator's answer.
    let mut answer = ClaimAnswer::new();
    let mut from_initiator = RDATA.to_vec();
    from_initiator.extend_from_slice(b"hello from behind the NAT");
    let data = answer.filter(&from_initiator)?;
    if !answer.is_complete() {
        return Err("no claim answer".into());
    }
    println!(
        "responder: answer stripped; first data: {:?}",
        String::from_utf8_lossy(&from_initiator[data])
    );
    Ok(())
}
