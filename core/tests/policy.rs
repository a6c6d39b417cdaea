//! The core's [`Policy`] as the responder's authorizer: which check-table row each combination of
//! token, client certificate and allow-list ends in (rows 8 and 10), on hand-built certificates.

use std::sync::Arc;
use std::time::Instant;

use revtun_core::command::ConnId;
use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use revtun_core::policy::{
    AllowList, CertificateIdentity, Policy, SanTemplate, SharedTokens, TokenSet,
};
use revtun_core::responder::{PeerTlsIdentity, Responder, ResponderConfig, ResponderEvent};

/// The tests' only clock reading: the core never reads one itself.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// Runs one handshake of `node`/`cluster` with `authorization` (if any) and `tls` through a responder
/// with `policy`; returns the first line of the response.
fn status(policy: &Policy, node: &str, auth: Option<&str>, tls: Option<PeerTlsIdentity>) -> String {
    let now = start();
    let mut r = Responder::new(ResponderConfig::default(), [1; 32], now)
        .unwrap()
        .with_authorizer(Arc::new(policy.clone()));
    let conn: ConnId = r.handle_accepted("10.0.0.9:4000".parse().unwrap(), tls, now);
    let headers: Vec<(String, String)> = auth
        .map(|v| vec![("authorization".to_owned(), v.to_owned())])
        .unwrap_or_default();
    let request = HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: "10.0.0.1:9000".parse().unwrap(),
        node,
        cluster: "edge",
        tenant: "t1",
        target_cluster: "upstream",
        initiation_time_ms: 0,
        upgrade: false,
        offer_claim_marker: false,
        extra_headers: &headers,
    };
    r.handle_input(conn, &request.to_bytes(), now);
    let response = r.poll_transmit().expect("a response");
    while let Some(ev) = r.poll_event() {
        if let ResponderEvent::Registered { node: n, .. } = ev {
            assert_eq!(n, node);
        }
    }
    let text = String::from_utf8_lossy(&response.data).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

fn cert(uris: &[&str], dns: &[&str]) -> Option<PeerTlsIdentity> {
    Some(PeerTlsIdentity {
        uri_sans: uris.iter().map(|s| (*s).to_owned()).collect(),
        dns_sans: dns.iter().map(|s| (*s).to_owned()).collect(),
    })
}

const OK: &str = "HTTP/1.1 200 OK";
const UNAUTHENTICATED: &str = "HTTP/1.1 401 Unauthorized";
const FORBIDDEN: &str = "HTTP/1.1 403 Forbidden";

#[test]
fn bearer_tokens_from_a_shared_set() {
    let tokens = SharedTokens::new(TokenSet::parse("# two tokens\nalpha\nbeta\n"));
    let policy = Policy {
        tokens: Some(tokens.clone()),
        ..Policy::default()
    };
    assert_eq!(status(&policy, "n1", Some("Bearer alpha"), None), OK);
    assert_eq!(status(&policy, "n1", Some("bearer beta"), None), OK);
    assert_eq!(
        status(&policy, "n1", Some("Bearer gamma"), None),
        UNAUTHENTICATED
    );
    assert_eq!(
        status(&policy, "n1", Some("Basic alpha"), None),
        UNAUTHENTICATED
    );
    assert_eq!(status(&policy, "n1", None, None), UNAUTHENTICATED);
    // A reload swaps the set for every later handshake.
    tokens.replace(TokenSet::parse("gamma"));
    assert_eq!(status(&policy, "n1", Some("Bearer gamma"), None), OK);
    assert_eq!(
        status(&policy, "n1", Some("Bearer alpha"), None),
        UNAUTHENTICATED
    );
}

#[test]
fn allow_list_patterns_answer_403() {
    let policy = Policy {
        nodes: AllowList::parse(&["edge-*", "*.prod"]).unwrap(),
        clusters: AllowList::parse(&["edge"]).unwrap(),
        tenants: AllowList::parse(&["*"]).unwrap(),
        ..Policy::default()
    };
    assert_eq!(status(&policy, "edge-7", None, None), OK);
    assert_eq!(status(&policy, "db.prod", None, None), OK);
    assert_eq!(status(&policy, "core-1", None, None), FORBIDDEN);
}

#[test]
fn identity_binding_rows_8_and_10() {
    let policy = Policy {
        certificate: Some(CertificateIdentity {
            uri_san: Some(
                SanTemplate::parse("spiffe://example.org/{cluster}/node/{node}").unwrap(),
            ),
            dns_san: Some(SanTemplate::parse("{node}.nodes.example.org").unwrap()),
        }),
        ..Policy::default()
    };
    // No client certificate while binding is on: 401 (row 8).
    assert_eq!(status(&policy, "n1", None, None), UNAUTHENTICATED);
    // A matching URI SAN or DNS SAN: accepted.
    let uri = cert(&["spiffe://example.org/edge/node/n1"], &[]);
    assert_eq!(status(&policy, "n1", None, uri.clone()), OK);
    assert_eq!(
        status(&policy, "n1", None, cert(&[], &["n1.nodes.example.org"])),
        OK
    );
    // Another node's certificate: 403 (row 10).
    assert_eq!(status(&policy, "n2", None, uri), FORBIDDEN);
    assert_eq!(
        status(
            &policy,
            "n1",
            None,
            cert(&["spiffe://example.org/core/node/n1"], &[])
        ),
        FORBIDDEN
    );
    assert_eq!(status(&policy, "n1", None, cert(&[], &[])), FORBIDDEN);
}

#[test]
fn token_failure_wins_over_a_forbidden_identity() {
    let policy = Policy {
        tokens: Some(SharedTokens::new(TokenSet::parse("alpha"))),
        certificate: Some(CertificateIdentity::node_id_equals_san()),
        nodes: AllowList::parse(&["n1"]).unwrap(),
        ..Policy::default()
    };
    assert_eq!(
        status(&policy, "n2", Some("Bearer wrong"), cert(&["n2"], &[])),
        UNAUTHENTICATED
    );
    assert_eq!(
        status(&policy, "n2", Some("Bearer alpha"), cert(&["n2"], &[])),
        FORBIDDEN
    );
    assert_eq!(
        status(&policy, "n1", Some("Bearer alpha"), cert(&["n2"], &[])),
        FORBIDDEN
    );
    assert_eq!(
        status(&policy, "n1", Some("Bearer alpha"), cert(&[], &["n1"])),
        OK
    );
    assert!(policy.checks_something() && !Policy::default().checks_something());
}
