//! Tests of `revtun_core::handshake` against DESIGN.md's bytes, through the public API.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::prelude::*;
use revtun_core::handshake::*;

// ---------------------------------------------------------------------------------------------------
// helpers

fn v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(203, 0, 113, 7), 9000))
}

fn request<'a>(extra: &'a [(String, String)]) -> HandshakeRequest<'a> {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: v4(),
        node: "node-1",
        cluster: "edge",
        tenant: "acme",
        target_cluster: "upstream",
        initiation_time_ms: 1_700_000_000_123,
        upgrade: false,
        offer_claim_marker: true,
        extra_headers: extra,
    }
}

/// A complete request from header lines (each without line ending) and a tail after the head.
fn raw(request_line: &str, headers: &[&str], tail: &str) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(tail);
    s.into_bytes()
}

const IDENTITY: [&str; 3] = [
    "x-envoy-reverse-tunnel-node-id: node-1",
    "x-envoy-reverse-tunnel-cluster-id: edge",
    "x-envoy-reverse-tunnel-tenant-id: acme",
];

fn std_request(extra: &[&str], tail: &str) -> Vec<u8> {
    let mut headers = vec!["host: 10.0.0.1:9000"];
    headers.extend_from_slice(&IDENTITY);
    headers.push("x-envoy-reverse-tunnel-upstream-cluster-name: upstream");
    headers.extend_from_slice(extra);
    raw("GET /reverse_connections/request HTTP/1.1", &headers, tail)
}

fn parse(bytes: &[u8]) -> Result<Option<ParsedRequest>, MalformedRequest> {
    RequestParser::new(HeadLimits::default()).push(bytes)
}

fn parse_ok(bytes: &[u8]) -> ParsedRequest {
    match parse(bytes) {
        Ok(Some(req)) => req,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn malformed(bytes: &[u8]) -> MalformedRequest {
    match parse(bytes) {
        Err(e) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn check(bytes: &[u8], policy: &RequestPolicy) -> Result<Identity, Rejection> {
    check_request(&parse_ok(bytes), policy)
}

fn identity(node: &str, cluster: &str, tenant: &str, upstream: Option<&str>) -> Identity {
    Identity {
        node: node.into(),
        cluster: cluster.into(),
        tenant: tenant.into(),
        upstream_cluster_name: upstream.map(Into::into),
    }
}

fn respond(upgrade: bool, offered: bool, bytes: &[u8]) -> Result<Option<Accepted>, ResponseError> {
    ResponseParser::new(HeadLimits::default(), upgrade, offered).push(bytes)
}

fn accepted(
    claim_marker: bool,
    leftover: &'static [u8],
) -> Result<Option<Accepted>, ResponseError> {
    Ok(Some(Accepted {
        claim_marker,
        leftover: Bytes::from_static(leftover),
    }))
}

// ---------------------------------------------------------------------------------------------------
// request encoding

#[test]
fn encodes_the_default_request_byte_exact() {
    let bytes = request(&[]).to_bytes();
    assert_eq!(
        &bytes[..],
        b"GET /reverse_connections/request HTTP/1.1\r\n\
host: 203.0.113.7:9000\r\n\
x-envoy-reverse-tunnel-node-id: node-1\r\n\
x-envoy-reverse-tunnel-cluster-id: edge\r\n\
x-envoy-reverse-tunnel-tenant-id: acme\r\n\
x-envoy-reverse-tunnel-upstream-cluster-name: upstream\r\n\
x-envoy-reverse-tunnel-initiation-time: 1700000000123\r\n\
x-revtun-features: claim-marker\r\n\
content-length: 0\r\n\
\r\n"
    );
}

#[test]
fn encodes_ipv6_upgrade_post_extra_headers_without_features() {
    let extra = vec![
        ("Authorization".to_owned(), "Bearer abc.def".to_owned()),
        ("x-trace".to_owned(), "1".to_owned()),
    ];
    let req = HandshakeRequest {
        method: "POST",
        path: "/rc?v=1",
        host: SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 443)),
        tenant: "",
        upgrade: true,
        offer_claim_marker: false,
        initiation_time_ms: 0,
        ..request(&extra)
    };
    let mut out = b"prefix:".to_vec();
    req.encode(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "prefix:POST /rc?v=1 HTTP/1.1\r\n\
host: [2001:db8::1]:443\r\n\
connection: Upgrade\r\n\
upgrade: reverse-tunnel\r\n\
x-envoy-reverse-tunnel-node-id: node-1\r\n\
x-envoy-reverse-tunnel-cluster-id: edge\r\n\
x-envoy-reverse-tunnel-tenant-id: \r\n\
x-envoy-reverse-tunnel-upstream-cluster-name: upstream\r\n\
x-envoy-reverse-tunnel-initiation-time: 0\r\n\
authorization: Bearer abc.def\r\n\
x-trace: 1\r\n\
content-length: 0\r\n\
\r\n"
    );
}

#[test]
fn encodes_features_then_extra_headers() {
    let extra = vec![("authorization".to_owned(), "Bearer t".to_owned())];
    let bytes = request(&extra).to_bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.ends_with(
        "x-revtun-features: claim-marker\r\nauthorization: Bearer t\r\ncontent-length: 0\r\n\r\n"
    ));
    let mut out = Vec::new();
    request(&extra).encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn ipv6_scope_id_is_not_written() {
    let host = SocketAddr::V6(std::net::SocketAddrV6::new(Ipv6Addr::LOCALHOST, 80, 0, 3));
    let bytes = HandshakeRequest {
        host,
        ..request(&[])
    }
    .to_bytes();
    assert!(
        std::str::from_utf8(&bytes)
            .unwrap()
            .contains("\r\nhost: [::1]:80\r\n")
    );
}

#[test]
fn debug_output_hides_credentials() {
    let extra = vec![("authorization".to_owned(), "Bearer secret".to_owned())];
    assert!(!format!("{:?}", request(&extra)).contains("secret"));
    let req = parse_ok(&std_request(&["authorization: Bearer secret"], ""));
    let dbg = format!("{req:?}");
    assert!(
        dbg.contains("authorization") && !dbg.contains("secret"),
        "{dbg}"
    );
    // The parsers show how much they buffered, not the bytes ("sec" = 115, 101, 99).
    let mut p = RequestParser::new(HeadLimits::default());
    assert_eq!(
        p.push(b"GET / HTTP/1.1\r\nauthorization: Bearer secret\r\n"),
        Ok(None)
    );
    let dbg = format!("{p:?}");
    assert!(
        dbg.contains("buffered: 46") && !dbg.contains("115, 101, 99"),
        "{dbg}"
    );
    let mut p = ResponseParser::new(HeadLimits::default(), false, false);
    assert_eq!(p.push(b"HTTP/1.1 200 OK\r\nset-cookie: secret"), Ok(None));
    assert!(format!("{p:?}").contains("buffered: 35"));
}

#[test]
fn validates_config_values() {
    assert_eq!(validate_method("GET"), Ok(()));
    assert_eq!(validate_method("POST"), Ok(()));
    assert!(matches!(
        validate_method(""),
        Err(HeaderError::InvalidMethod(_))
    ));
    assert!(matches!(
        validate_method("G T"),
        Err(HeaderError::InvalidMethod(_))
    ));
    assert!(matches!(
        validate_method("GET\r\n"),
        Err(HeaderError::InvalidMethod(_))
    ));

    assert_eq!(validate_path("/"), Ok(()));
    assert_eq!(validate_path("/reverse_connections/request?x=1"), Ok(()));
    for bad in ["", "reverse", "/a b", "/a\tb", "/é", "/a\r\n"] {
        assert!(
            matches!(validate_path(bad), Err(HeaderError::InvalidPath(_))),
            "{bad:?}"
        );
    }

    assert_eq!(validate_extra_header("authorization", "Bearer x"), Ok(()));
    assert_eq!(validate_extra_header("x-empty", ""), Ok(()));
    assert_eq!(validate_extra_header("x-utf8", "café"), Ok(()));
    assert!(matches!(
        validate_extra_header("bad name", "v"),
        Err(HeaderError::InvalidName(_))
    ));
    assert!(matches!(
        validate_extra_header("x-a", "a\r\nx-injected: 1"),
        Err(HeaderError::InvalidValue { .. })
    ));
    assert!(matches!(
        validate_extra_header("x-a", " padded"),
        Err(HeaderError::SurroundingWhitespace { .. })
    ));
    assert!(matches!(
        validate_extra_header("x-a", "padded\t"),
        Err(HeaderError::SurroundingWhitespace { .. })
    ));
    for reserved in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "UPGRADE",
        "x-revtun-features",
        "X-Envoy-Reverse-Tunnel-Node-Id",
        "x-envoy-reverse-tunnel-anything",
    ] {
        assert_eq!(
            validate_extra_header(reserved, "v"),
            Err(HeaderError::Reserved {
                name: reserved.to_owned()
            })
        );
    }
    assert_eq!(validate_extra_header("x-envoy-other", "v"), Ok(()));
}

// ---------------------------------------------------------------------------------------------------
// round trip

#[test]
fn responder_reads_what_the_initiator_writes() {
    let extra = vec![("authorization".to_owned(), "Bearer t".to_owned())];
    let bytes = request(&extra).to_bytes();
    let req = parse_ok(&bytes);
    assert_eq!(req.method(), "GET");
    assert_eq!(req.path(), DEFAULT_REQUEST_PATH);
    assert!(!req.has_body());
    assert!(req.offers_claim_marker());
    assert!(!req.has_upgrade());
    assert_eq!(req.header("authorization"), Some(&b"Bearer t"[..]));
    assert_eq!(req.header("HOST"), Some(&b"203.0.113.7:9000"[..]));
    assert_eq!(
        req.header(INITIATION_TIME_HEADER),
        Some(&b"1700000000123"[..])
    );
    let names: Vec<&str> = req.headers().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "host",
            NODE_ID_HEADER,
            CLUSTER_ID_HEADER,
            TENANT_ID_HEADER,
            UPSTREAM_CLUSTER_NAME_HEADER,
            INITIATION_TIME_HEADER,
            FEATURES_HEADER,
            "authorization",
            "content-length"
        ]
    );
    assert_eq!(
        check_request(&req, &RequestPolicy::default()),
        Ok(identity("node-1", "edge", "acme", Some("upstream")))
    );
}

#[test]
fn round_trip_in_upgrade_mode_with_post() {
    let req = HandshakeRequest {
        method: "POST",
        upgrade: true,
        offer_claim_marker: false,
        tenant: "",
        ..request(&[])
    };
    let parsed = parse_ok(&req.to_bytes());
    assert!(parsed.has_upgrade());
    assert!(!parsed.offers_claim_marker());
    let policy = RequestPolicy {
        method: "post".into(),
        upgrade: true,
        required_cluster_name: Some("upstream".into()),
        ..RequestPolicy::default()
    };
    assert_eq!(
        check_request(&parsed, &policy),
        Ok(identity("node-1", "edge", "", Some("upstream")))
    );
}

// ---------------------------------------------------------------------------------------------------
// the check table, one row at a time, with the exact response bytes

fn rejected(bytes: &[u8], policy: &RequestPolicy) -> (Rejection, Bytes) {
    let r = check(bytes, policy).expect_err("must be rejected");
    let encoded = r.encode();
    (r, encoded)
}

#[test]
fn row1_content_length_body_is_400() {
    let (r, bytes) = rejected(
        &std_request(&["content-length: 5"], "hello"),
        &RequestPolicy::default(),
    );
    assert_eq!(r, Rejection::BodyNotAllowed);
    assert_eq!(r.counter(), Some("body_rejected"));
    assert_eq!(
        &bytes[..],
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 46\r\n\r\n\
Reverse tunnel handshake must not carry a body"
    );
}

#[test]
fn row1_chunk_with_data_is_400_but_bare_last_chunk_is_no_body() {
    let body = std_request(&["transfer-encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(
        check(&body, &RequestPolicy::default()),
        Err(Rejection::BodyNotAllowed)
    );
    for tail in [
        "0\r\n\r\n",
        "0;ext\r\nTrailer: x\r\n\r\n",
        "000 ; a=b\r\n\r\n",
    ] {
        let req = parse_ok(&std_request(&["Transfer-Encoding: CHUNKED"], tail));
        assert!(!req.has_body(), "{tail:?}");
        assert!(check_request(&req, &RequestPolicy::default()).is_ok());
    }
    assert!(!parse_ok(&std_request(&["content-length: 0000"], "")).has_body());
}

#[test]
fn row2_method_or_path_mismatch_is_404_without_counter() {
    let policy = RequestPolicy::default();
    let post = raw("POST /reverse_connections/request HTTP/1.1", &IDENTITY, "");
    let (r, bytes) = rejected(&post, &policy);
    assert_eq!(r, Rejection::NotReverseTunnelRequest);
    assert_eq!(r.counter(), None);
    assert_eq!(
        &bytes[..],
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\n\
Not a reverse tunnel request"
    );
    for line in [
        "GET /reverse_connections/request?x=1 HTTP/1.1",
        "GET /reverse_connections/Request HTTP/1.1",
        "GET /reverse_connections/request/ HTTP/1.1",
    ] {
        assert_eq!(
            check(&raw(line, &IDENTITY, ""), &policy),
            Err(Rejection::NotReverseTunnelRequest),
            "{line}"
        );
    }
    // The method is compared case-insensitively, the path exactly (query included).
    let get = raw("get /reverse_connections/request HTTP/1.1", &IDENTITY, "");
    assert!(check(&get, &policy).is_ok());
    let query = RequestPolicy {
        path: "/rc?token=1".into(),
        ..RequestPolicy::default()
    };
    assert!(check(&raw("GET /rc?token=1 HTTP/1.1", &IDENTITY, ""), &query).is_ok());
}

#[test]
fn row3_missing_upgrade_is_426_with_upgrade_header() {
    let policy = RequestPolicy {
        upgrade: true,
        ..RequestPolicy::default()
    };
    let (r, bytes) = rejected(&std_request(&["connection: Upgrade"], ""), &policy);
    assert_eq!(r, Rejection::UpgradeRequired);
    assert_eq!(r.counter(), Some("parse_error"));
    assert_eq!(
        &bytes[..],
        b"HTTP/1.1 426 Upgrade Required\r\nupgrade: reverse-tunnel\r\ncontent-type: text/plain\r\n\
content-length: 32\r\n\r\nUpgrade: reverse-tunnel required"
    );
    assert_eq!(
        check(&std_request(&["upgrade: websocket"], ""), &policy),
        Err(Rejection::UpgradeRequired)
    );
    for ok in ["upgrade: Reverse-Tunnel", "upgrade: h2c, reverse-tunnel"] {
        assert!(check(&std_request(&[ok], ""), &policy).is_ok(), "{ok}");
    }
}

#[test]
fn row4_missing_identity_header_is_400() {
    for missing in 0..3 {
        let mut headers: Vec<&str> = IDENTITY.to_vec();
        headers.remove(missing);
        let bytes = raw("GET /reverse_connections/request HTTP/1.1", &headers, "");
        let (r, encoded) = rejected(&bytes, &RequestPolicy::default());
        assert_eq!(r, Rejection::MissingIdentity);
        assert_eq!(r.counter(), Some("parse_error"));
        assert_eq!(
            &encoded[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 39\r\n\r\n\
Missing required reverse tunnel headers"
        );
    }
    // Present but empty node counts as present (as in Envoy).
    let empty = raw(
        "GET /reverse_connections/request HTTP/1.1",
        &[
            "x-envoy-reverse-tunnel-node-id:",
            "x-envoy-reverse-tunnel-cluster-id: c",
            "x-envoy-reverse-tunnel-tenant-id: ",
        ],
        "",
    );
    assert_eq!(
        check(&empty, &RequestPolicy::default()),
        Ok(identity("", "c", "", None))
    );
}

#[test]
fn row5_empty_tenant_when_required_is_400() {
    let bytes = raw(
        "GET /reverse_connections/request HTTP/1.1",
        &[
            IDENTITY[0],
            IDENTITY[1],
            "x-envoy-reverse-tunnel-tenant-id: ",
        ],
        "",
    );
    assert!(check(&bytes, &RequestPolicy::default()).is_ok());
    let policy = RequestPolicy {
        require_tenant: true,
        ..RequestPolicy::default()
    };
    let (r, encoded) = rejected(&bytes, &policy);
    assert_eq!(r, Rejection::EmptyTenant);
    assert_eq!(r.counter(), Some("parse_error"));
    assert_eq!(
        &encoded[..],
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\n\
Empty tenant-id header value"
    );
}

#[test]
fn row6_colon_under_tenant_isolation_is_400() {
    let policy = RequestPolicy {
        tenant_isolation: true,
        ..RequestPolicy::default()
    };
    for (i, colon) in [
        "x-envoy-reverse-tunnel-node-id: a:b",
        "x-envoy-reverse-tunnel-cluster-id: a:b",
        "x-envoy-reverse-tunnel-tenant-id: a:b",
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers: Vec<&str> = IDENTITY.to_vec();
        headers[i] = colon;
        let bytes = raw("GET /reverse_connections/request HTTP/1.1", &headers, "");
        assert!(check(&bytes, &RequestPolicy::default()).is_ok());
        let (r, encoded) = rejected(&bytes, &policy);
        assert_eq!(r, Rejection::ColonUnderIsolation);
        assert_eq!(r.counter(), Some("parse_error"));
        assert_eq!(
            &encoded[..],
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 80\r\n\r\n\
Reverse tunnel identifiers must not contain ':' when tenant isolation is enabled"[..]
        );
    }
    // The upstream cluster name is not an id of the initiator.
    let ok = std_request(&[], "").to_vec();
    let ok = String::from_utf8(ok)
        .unwrap()
        .replace("cluster-name: upstream", "cluster-name: up:stream");
    assert!(check(ok.as_bytes(), &policy).is_ok());
}

#[test]
fn row7_required_cluster_name_missing_or_different_is_400() {
    let policy = RequestPolicy {
        required_cluster_name: Some("upstream".into()),
        ..RequestPolicy::default()
    };
    let missing = raw("GET /reverse_connections/request HTTP/1.1", &IDENTITY, "");
    let (r, encoded) = rejected(&missing, &policy);
    assert_eq!(r, Rejection::MissingClusterName);
    assert_eq!(r.counter(), Some("parse_error"));
    assert_eq!(
        &encoded[..],
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 36\r\n\r\n\
Missing upstream cluster name header"
    );
    let other = RequestPolicy {
        required_cluster_name: Some("Upstream".into()),
        ..RequestPolicy::default()
    };
    let (r, encoded) = rejected(&std_request(&[], ""), &other);
    assert_eq!(r, Rejection::ClusterNameMismatch);
    assert_eq!(r.counter(), Some("validation_failed"));
    assert_eq!(
        &encoded[..],
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n\r\n\
Cluster name mismatch"
    );
    assert_eq!(
        check(&std_request(&[], ""), &policy),
        Ok(identity("node-1", "edge", "acme", Some("upstream")))
    );
}

#[test]
fn rows_are_checked_in_table_order() {
    let policy = RequestPolicy {
        upgrade: true,
        require_tenant: true,
        tenant_isolation: true,
        required_cluster_name: Some("want".into()),
        ..RequestPolicy::default()
    };
    let line_bad = "POST /elsewhere HTTP/1.1";
    let line_ok = "GET /reverse_connections/request HTTP/1.1";
    let upgrade = "upgrade: reverse-tunnel";
    let node = "x-envoy-reverse-tunnel-node-id: n:1";
    let cluster = "x-envoy-reverse-tunnel-cluster-id: c";
    let empty_tenant = "x-envoy-reverse-tunnel-tenant-id:";
    let tenant = "x-envoy-reverse-tunnel-tenant-id: t";
    let node_ok = "x-envoy-reverse-tunnel-node-id: n";
    let ucn = "x-envoy-reverse-tunnel-upstream-cluster-name: other";
    let steps: [(&str, Vec<&str>, &str, Rejection); 7] = [
        (
            line_bad,
            vec!["content-length: 1"],
            "x",
            Rejection::BodyNotAllowed,
        ),
        (line_bad, vec![], "", Rejection::NotReverseTunnelRequest),
        (line_ok, vec![], "", Rejection::UpgradeRequired),
        (
            line_ok,
            vec![upgrade, node, cluster],
            "",
            Rejection::MissingIdentity,
        ),
        (
            line_ok,
            vec![upgrade, node, cluster, empty_tenant],
            "",
            Rejection::EmptyTenant,
        ),
        (
            line_ok,
            vec![upgrade, node, cluster, tenant],
            "",
            Rejection::ColonUnderIsolation,
        ),
        (
            line_ok,
            vec![upgrade, node_ok, cluster, tenant, ucn],
            "",
            Rejection::ClusterNameMismatch,
        ),
    ];
    for (line, headers, tail, want) in steps {
        assert_eq!(check(&raw(line, &headers, tail), &policy), Err(want));
    }
}

#[test]
fn identity_headers_first_occurrence_wins_case_insensitively() {
    let bytes = raw(
        "GET /reverse_connections/request HTTP/1.1",
        &[
            "X-Envoy-Reverse-Tunnel-Node-Id: first",
            "x-envoy-reverse-tunnel-node-id: second",
            "X-ENVOY-REVERSE-TUNNEL-CLUSTER-ID:   spaced\t ",
            "x-envoy-reverse-tunnel-tenant-id: t",
            "x-envoy-reverse-tunnel-tenant-id: u",
            "x-envoy-reverse-tunnel-upstream-cluster-name: one",
            "x-envoy-reverse-tunnel-upstream-cluster-name: two",
        ],
        "",
    );
    let req = parse_ok(&bytes);
    assert_eq!(req.header(NODE_ID_HEADER), Some(&b"first"[..]));
    assert_eq!(
        check_request(&req, &RequestPolicy::default()),
        Ok(identity("first", "spaced", "t", Some("one")))
    );
}

#[test]
fn utf8_identity_is_accepted_and_non_utf8_identity_is_malformed() {
    let ok = raw(
        "GET /reverse_connections/request HTTP/1.1",
        &[
            IDENTITY[0],
            IDENTITY[1],
            "x-envoy-reverse-tunnel-tenant-id: café",
        ],
        "",
    );
    assert_eq!(
        check(&ok, &RequestPolicy::default()),
        Ok(identity("node-1", "edge", "café", None))
    );
    let mut bad = raw("GET /reverse_connections/request HTTP/1.1", &IDENTITY, "");
    let at = bad.windows(6).position(|w| w == b"node-1").unwrap();
    bad[at] = 0xff;
    assert_eq!(
        malformed(&bad),
        MalformedRequest::NonUtf8Identity {
            header: NODE_ID_HEADER
        }
    );
    // A non-UTF-8 value elsewhere is no concern of the handshake.
    let other = std_request(&["x-other: \u{0}"], "");
    let mut other = other;
    let at = other.windows(3).position(|w| w == b": \0").unwrap();
    other[at + 2] = 0xfe;
    assert!(parse(&other).unwrap().is_some());
}

#[test]
fn every_rejection_encodes_byte_exact() {
    let cases: [(Rejection, u16, Option<&str>, &str); 13] = [
        (
            Rejection::BodyNotAllowed,
            400,
            Some("body_rejected"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 46\r\n\r\nReverse tunnel handshake must not carry a body",
        ),
        (
            Rejection::NotReverseTunnelRequest,
            404,
            None,
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\nNot a reverse tunnel request",
        ),
        (
            Rejection::UpgradeRequired,
            426,
            Some("parse_error"),
            "HTTP/1.1 426 Upgrade Required\r\nupgrade: reverse-tunnel\r\ncontent-type: text/plain\r\ncontent-length: 32\r\n\r\nUpgrade: reverse-tunnel required",
        ),
        (
            Rejection::MissingIdentity,
            400,
            Some("parse_error"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 39\r\n\r\nMissing required reverse tunnel headers",
        ),
        (
            Rejection::EmptyTenant,
            400,
            Some("parse_error"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\nEmpty tenant-id header value",
        ),
        (
            Rejection::ColonUnderIsolation,
            400,
            Some("parse_error"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 80\r\n\r\nReverse tunnel identifiers must not contain ':' when tenant isolation is enabled",
        ),
        (
            Rejection::MissingClusterName,
            400,
            Some("parse_error"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 36\r\n\r\nMissing upstream cluster name header",
        ),
        (
            Rejection::ClusterNameMismatch,
            400,
            Some("validation_failed"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n\r\nCluster name mismatch",
        ),
        (
            Rejection::AuthenticationFailed,
            401,
            Some("auth_failed"),
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n\r\nAuthentication failed",
        ),
        (
            Rejection::TooManyTunnels {
                retry_after_secs: None,
            },
            429,
            Some("rejected"),
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nrejected",
        ),
        (
            Rejection::TooManyTunnels {
                retry_after_secs: Some(30),
            },
            429,
            Some("rejected"),
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 30\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nrejected",
        ),
        (
            Rejection::NotAllowed,
            403,
            Some("validation_failed"),
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 17\r\n\r\nvalidation_failed",
        ),
        (
            Rejection::RegistrationUnavailable,
            503,
            Some("registration_failed"),
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 39\r\n\r\nReverse tunnel registration unavailable",
        ),
    ];
    for (rejection, status, counter, bytes) in cases {
        assert_eq!(rejection.status(), status, "{rejection:?}");
        assert_eq!(rejection.counter(), counter, "{rejection:?}");
        assert_eq!(
            std::str::from_utf8(&rejection.encode()).unwrap(),
            bytes,
            "{rejection:?}"
        );
        assert!(bytes.ends_with(rejection.body()));
        assert!(bytes.starts_with(&format!(
            "HTTP/1.1 {status} {}\r\n",
            rejection.reason_phrase()
        )));
        // The initiator reads each as a rejection with that status (and the 429's retry-after).
        let retry_after = match rejection {
            Rejection::TooManyTunnels { retry_after_secs } => retry_after_secs,
            _ => None,
        };
        for upgrade in [false, true] {
            assert_eq!(
                respond(upgrade, true, &rejection.encode()),
                Err(ResponseError::Rejected {
                    status,
                    retry_after
                })
            );
        }
    }
}

#[test]
fn success_bytes_are_exact_and_parse_as_accepted() {
    assert_eq!(
        &encode_accept(false, false)[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        &encode_accept(false, true)[..],
        b"HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        &encode_accept(true, false)[..],
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\r\n"
    );
    assert_eq!(
        &encode_accept(true, true)[..],
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\
x-revtun-features: claim-marker\r\n\r\n"
    );
    for upgrade in [false, true] {
        for marker in [false, true] {
            assert_eq!(
                respond(upgrade, true, &encode_accept(upgrade, marker)),
                accepted(marker, b"")
            );
            assert_eq!(
                respond(upgrade, false, &encode_accept(upgrade, marker)),
                accepted(false, b"")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// malformed requests (row 0)

#[test]
fn only_http11_is_accepted() {
    for line in [
        "GET /reverse_connections/request HTTP/1.0",
        "GET /reverse_connections/request HTTP/2.0",
        "GET /reverse_connections/request HTTP/1.2",
    ] {
        let e = malformed(&raw(line, &IDENTITY, ""));
        assert!(
            matches!(e, MalformedRequest::BadVersion | MalformedRequest::Http(_)),
            "{line}: {e:?}"
        );
        assert_eq!(e.counter(), "parse_error");
    }
    assert_eq!(
        malformed(&raw(
            "GET /reverse_connections/request HTTP/1.0",
            &IDENTITY,
            ""
        )),
        MalformedRequest::BadVersion
    );
}

#[test]
fn framing_conflicts_are_malformed() {
    let cases: [(&[&str], MalformedRequest); 11] = [
        (
            &["content-length: 0", "content-length: 0"],
            MalformedRequest::RepeatedFraming {
                header: "content-length",
            },
        ),
        (
            &["content-length: 0", "Content-Length: 5"],
            MalformedRequest::RepeatedFraming {
                header: "content-length",
            },
        ),
        (
            &["transfer-encoding: chunked", "transfer-encoding: chunked"],
            MalformedRequest::RepeatedFraming {
                header: "transfer-encoding",
            },
        ),
        (
            &["content-length: 0", "transfer-encoding: chunked"],
            MalformedRequest::ConflictingFraming,
        ),
        (
            &["transfer-encoding: gzip"],
            MalformedRequest::UnsupportedTransferEncoding,
        ),
        (
            &["transfer-encoding: gzip, chunked"],
            MalformedRequest::UnsupportedTransferEncoding,
        ),
        (
            &["transfer-encoding: chunked, chunked"],
            MalformedRequest::UnsupportedTransferEncoding,
        ),
        (
            &["content-length: +5"],
            MalformedRequest::InvalidContentLength,
        ),
        (
            &["content-length: 5 5"],
            MalformedRequest::InvalidContentLength,
        ),
        (
            &["content-length: 0x5"],
            MalformedRequest::InvalidContentLength,
        ),
        (&["content-length:"], MalformedRequest::InvalidContentLength),
    ];
    for (headers, want) in cases {
        assert_eq!(malformed(&std_request(headers, "")), want, "{headers:?}");
    }
}

#[test]
fn chunked_framing() {
    let te = ["transfer-encoding: chunked"];
    // Bare last chunk, with and without extension and trailers: no body, complete after the trailers.
    let mut p = RequestParser::new(HeadLimits::default());
    let head = std_request(&te, "");
    assert_eq!(p.push(&head), Ok(None));
    assert_eq!(p.push(b"0\r\n"), Ok(None));
    assert_eq!(p.push(b"\r"), Ok(None));
    assert!(matches!(p.push(b"\nJUNK"), Ok(Some(r)) if !r.has_body()));

    let req = parse_ok(&std_request(&te, "0;ext\r\nTrailer: x\r\n\r\n"));
    assert!(!req.has_body());
    assert_eq!(req.header("trailer"), None, "trailers are not headers");

    // A chunk with data: a body as soon as the chunk-size line is complete.
    let mut p = RequestParser::new(HeadLimits::default());
    assert_eq!(p.push(&std_request(&te, "5")), Ok(None));
    assert!(matches!(p.push(b"\r\nhel"), Ok(Some(r)) if r.has_body()));

    for bad in [
        "5\nhello",
        "\r\n",
        "x\r\n",
        "5 \r\n",
        "0\r\nbad trailer\r\n\r\n",
    ] {
        let e = malformed(&std_request(&te, bad));
        assert!(
            matches!(
                e,
                MalformedRequest::InvalidChunkSize | MalformedRequest::Http(_)
            ),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn head_size_limit_is_exact() {
    let bytes = std_request(&[], "");
    let at = |max_head_bytes| {
        RequestParser::new(HeadLimits {
            max_head_bytes,
            max_headers: 100,
        })
        .push(&bytes)
    };
    assert!(matches!(at(bytes.len()), Ok(Some(_))));
    assert_eq!(
        at(bytes.len() - 1),
        Err(MalformedRequest::HeadTooLarge {
            limit: bytes.len() - 1
        })
    );
    // Over the limit without an end: too large as soon as the byte past the limit arrives.
    let mut p = RequestParser::new(HeadLimits {
        max_head_bytes: 64,
        max_headers: 100,
    });
    let big = raw("GET / HTTP/1.1", &[&format!("x: {}", "a".repeat(100))], "");
    assert_eq!(p.push(&big[..64]), Ok(None));
    assert_eq!(p.buffered(), 64);
    assert_eq!(
        p.push(&big[64..65]),
        Err(MalformedRequest::HeadTooLarge { limit: 64 })
    );
    assert_eq!(p.buffered(), 0);
    // Default limit: 60 KiB of header is too much.
    let huge = raw(
        "GET / HTTP/1.1",
        &[&format!("x: {}", "a".repeat(61 * 1024))],
        "",
    );
    assert_eq!(
        malformed(&huge),
        MalformedRequest::HeadTooLarge {
            limit: DEFAULT_MAX_HEAD_BYTES
        }
    );
    // Chunk-size line and trailers count too.
    let chunked = std_request(&["transfer-encoding: chunked"], "0\r\nt: 1\r\n\r\n");
    let limited = |max_head_bytes| {
        RequestParser::new(HeadLimits {
            max_head_bytes,
            max_headers: 100,
        })
        .push(&chunked)
    };
    assert!(matches!(limited(chunked.len()), Ok(Some(_))));
    assert!(matches!(
        limited(chunked.len() - 1),
        Err(MalformedRequest::HeadTooLarge { .. })
    ));
}

#[test]
fn header_count_limit_is_exact() {
    let lines: Vec<String> = (0..101).map(|i| format!("x-h{i}: v")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert!(
        parse_ok(&raw("GET / HTTP/1.1", &refs[..100], ""))
            .headers()
            .count()
            == 100
    );
    assert_eq!(
        malformed(&raw("GET / HTTP/1.1", &refs, "")),
        MalformedRequest::TooManyHeaders { limit: 100 }
    );
    // Trailers count against what the head left.
    let limits = HeadLimits {
        max_head_bytes: 4096,
        max_headers: 2,
    };
    let chunked = raw(
        "GET / HTTP/1.1",
        &["transfer-encoding: chunked"],
        "0\r\na: 1\r\n\r\n",
    );
    assert!(matches!(
        RequestParser::new(limits).push(&chunked),
        Ok(Some(_))
    ));
    let chunked = raw(
        "GET / HTTP/1.1",
        &["transfer-encoding: chunked"],
        "0\r\na: 1\r\nb: 2\r\n\r\n",
    );
    assert_eq!(
        RequestParser::new(limits).push(&chunked),
        Err(MalformedRequest::TooManyHeaders { limit: 2 })
    );
}

#[test]
fn garbage_fails_at_once() {
    // A TLS ClientHello: no line ending, yet malformed at the first byte.
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    assert_eq!(
        malformed(&hello),
        MalformedRequest::Http(httparse::Error::Token)
    );
    assert!(matches!(
        malformed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        MalformedRequest::Http(_)
    ));
    assert!(matches!(
        malformed(b"\x00\x00\x00"),
        MalformedRequest::Http(_)
    ));
    assert!(matches!(
        malformed(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"),
        MalformedRequest::Http(httparse::Error::HeaderName)
    ));
    // Errors are sticky.
    let mut p = RequestParser::new(HeadLimits::default());
    let e = p.push(b" GET").unwrap_err();
    assert_eq!(p.push(&std_request(&[], "")), Err(e));
}

#[test]
fn line_endings_and_leading_empty_lines() {
    let lf = b"GET /reverse_connections/request HTTP/1.1\n\
x-envoy-reverse-tunnel-node-id: n\n\
x-envoy-reverse-tunnel-cluster-id: c\r\n\
x-envoy-reverse-tunnel-tenant-id: t\n\n";
    assert_eq!(
        check(lf, &RequestPolicy::default()),
        Ok(identity("n", "c", "t", None))
    );
    let mut leading = b"\r\n\n".to_vec();
    leading.extend_from_slice(&std_request(&[], ""));
    assert!(check(&leading, &RequestPolicy::default()).is_ok());
    assert!(matches!(malformed(b"\rGET"), MalformedRequest::Http(_)));
}

#[test]
fn bytes_after_the_request_are_discarded_and_finish_is_reported() {
    let mut p = RequestParser::new(HeadLimits::default());
    let mut bytes = std_request(&[], "");
    let len = bytes.len();
    bytes.extend_from_slice(b"RPING garbage that is not HTTP\x00");
    let req = p.push(&bytes).unwrap().unwrap();
    assert_eq!(req, parse_ok(&bytes[..len]));
    assert_eq!(p.push(b"more"), Err(MalformedRequest::Finished));
    assert_eq!(p.buffered(), 0);
}

// ---------------------------------------------------------------------------------------------------
// the initiator's response parser

#[test]
fn accepted_200_returns_leftover_intact() {
    assert_eq!(
        respond(
            false,
            false,
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nRPING"
        ),
        accepted(false, b"RPING")
    );
    assert_eq!(
        respond(false, true, b"HTTP/1.1 200 OK\r\n\r\n"),
        accepted(false, b"")
    );
    // Split: head across pushes, leftover in the last one.
    let mut p = ResponseParser::new(HeadLimits::default(), false, false);
    assert_eq!(p.push(b"HTTP/1.1 200 OK\r\ncontent-le"), Ok(None));
    assert_eq!(p.push(b"ngth: 0\r\n\r"), Ok(None));
    assert_eq!(p.push(b"\nRPINGRDA"), accepted(false, b"RPINGRDA"));
    assert_eq!(p.push(b"TA"), Err(ResponseError::Finished));
    // Leftover longer than the head limit is still returned whole.
    let limits = HeadLimits {
        max_head_bytes: 64,
        max_headers: 4,
    };
    let mut bytes = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[b'd'; 1000]);
    let mut p = ResponseParser::new(limits, false, false);
    let got = p.push(&bytes).unwrap().unwrap();
    assert_eq!(&got.leftover[..], &bytes[19..]);
    // A head exactly as long as the limit, with the tunnel's bytes in the same push (none of them
    // buffered) or in the next push after a head that filled the buffer.
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let exact = HeadLimits {
        max_head_bytes: head.len(),
        max_headers: 1,
    };
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(b"RPING");
    let mut p = ResponseParser::new(exact, false, false);
    assert_eq!(p.push(&bytes), accepted(false, b"RPING"));
    let mut p = ResponseParser::new(exact, false, false);
    assert_eq!(p.push(&head[..head.len() - 1]), Ok(None));
    assert_eq!(p.push(b"\nRPING"), accepted(false, b"RPING"));
}

#[test]
fn claim_marker_only_when_offered_and_echoed() {
    let echoed =
        b"HTTP/1.1 200 OK\r\nX-Revtun-Features: other, Claim-Marker\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(respond(false, true, echoed), accepted(true, b""));
    assert_eq!(respond(false, false, echoed), accepted(false, b""));
    assert_eq!(
        respond(false, true, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        accepted(false, b"")
    );
    assert_eq!(
        respond(
            false,
            true,
            b"HTTP/1.1 200 OK\r\nx-revtun-features: a\r\nx-revtun-features: claim-marker\r\n\r\n"
        ),
        accepted(true, b""),
        "every occurrence counts"
    );
}

#[test]
fn upgrade_mode_expects_101_only() {
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\r\nRPING";
    assert_eq!(respond(true, false, switching), accepted(false, b"RPING"));
    assert_eq!(
        respond(false, false, switching),
        Err(ResponseError::Rejected {
            status: 101,
            retry_after: None
        })
    );
    assert_eq!(
        respond(true, false, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        Err(ResponseError::Rejected {
            status: 200,
            retry_after: None
        })
    );
    assert_eq!(
        respond(false, false, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Err(ResponseError::Rejected {
            status: 100,
            retry_after: None
        })
    );
}

#[test]
fn rejections_parse_retry_after() {
    let with = |value: &str| {
        let bytes = format!(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: {value}\r\ncontent-length: 8\r\n\r\nrejected"
        );
        respond(false, false, bytes.as_bytes())
    };
    let rejected = |retry_after| {
        Err(ResponseError::Rejected {
            status: 429,
            retry_after,
        })
    };
    assert_eq!(with("7"), rejected(Some(7)));
    assert_eq!(with("0"), rejected(None));
    assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), rejected(None));
    assert_eq!(with("soon"), rejected(None));
    assert_eq!(with("-5"), rejected(None));
    assert_eq!(with("1.5"), rejected(None));
    assert_eq!(with("99999999999999999999999"), rejected(Some(u64::MAX)));
    let e = respond(
        false,
        false,
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 12\r\n\r\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        ResponseError::Rejected {
            status: 503,
            retry_after: Some(12)
        }
    );
    assert_eq!(e.reason(), "http_503");
    let e = respond(false, false, b"HTTP/1.1 401 Unauthorized\r\n\r\n").unwrap_err();
    assert_eq!(e.reason(), "http_401");
}

#[test]
fn accepted_status_must_not_announce_a_body() {
    let cases: [(&[u8], ResponseError); 7] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            ResponseError::BodyAnnounced,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            ResponseError::BodyAnnounced,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
            ResponseError::RepeatedFraming {
                header: "content-length",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: x\r\ntransfer-encoding: y\r\n\r\n",
            ResponseError::RepeatedFraming {
                header: "transfer-encoding",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n",
            ResponseError::ConflictingFraming,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: zero\r\n\r\n",
            ResponseError::InvalidContentLength,
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\ncontent-length: 3\r\n\r\n",
            ResponseError::Rejected {
                status: 101,
                retry_after: None,
            },
        ),
    ];
    for (bytes, want) in cases {
        let e = respond(false, false, bytes).unwrap_err();
        assert_eq!(e, want, "{:?}", String::from_utf8_lossy(bytes));
    }
    assert_eq!(
        respond(
            true,
            false,
            b"HTTP/1.1 101 Switching Protocols\r\ncontent-length: 3\r\n\r\n"
        ),
        Err(ResponseError::BodyAnnounced)
    );
    assert_eq!(
        respond(
            false,
            false,
            b"HTTP/1.1 200 OK\r\ncontent-length: 000\r\n\r\n"
        ),
        accepted(false, b"")
    );
    assert_eq!(ResponseError::BodyAnnounced.reason(), "malformed");
}

#[test]
fn malformed_responses() {
    assert_eq!(
        respond(false, false, b"HTTP/1.0 200 OK\r\n\r\n"),
        Err(ResponseError::BadVersion)
    );
    // Fails at once, before any line ending.
    assert_eq!(
        respond(false, false, b"\x15\x03\x03\x00\x02"),
        Err(ResponseError::BadVersion)
    );
    assert_eq!(
        respond(false, false, b"HTTP/2 200"),
        Err(ResponseError::BadVersion)
    );
    assert!(matches!(
        respond(false, false, b"HTTP/1.1 2x0 OK\r\n\r\n"),
        Err(ResponseError::Http(_))
    ));
    assert!(matches!(
        respond(false, false, b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"),
        Err(ResponseError::Http(_))
    ));
    let limits = HeadLimits {
        max_head_bytes: 32,
        max_headers: 1,
    };
    let mut p = ResponseParser::new(limits, false, false);
    assert_eq!(p.push(b"HTTP/1.1 200 OK\r\nx: 123456789012"), Ok(None));
    assert_eq!(p.buffered(), 32);
    assert_eq!(p.push(b"4"), Err(ResponseError::HeadTooLarge { limit: 32 }));
    assert_eq!(
        p.push(b""),
        Err(ResponseError::HeadTooLarge { limit: 32 }),
        "sticky"
    );
    assert_eq!(
        ResponseParser::new(limits, false, false).push(b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\n\r\n"),
        Err(ResponseError::TooManyHeaders { limit: 1 })
    );
    // The LF-only form and leading empty lines are accepted, as httparse does.
    assert_eq!(
        respond(false, false, b"\r\nHTTP/1.1 200 OK\ncontent-length: 0\n\nX"),
        accepted(false, b"X")
    );
}

// ---------------------------------------------------------------------------------------------------
// chunking invariance and robustness (proptest)

type ReqOutcome = Result<Option<ParsedRequest>, MalformedRequest>;

fn feed_request(limits: HeadLimits, stream: &[u8], cuts: &[usize]) -> ReqOutcome {
    let mut p = RequestParser::new(limits);
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(from, stream.len());
        let r = p.push(&stream[from..cut]);
        assert!(p.buffered() <= limits.max_head_bytes);
        from = cut;
        if !matches!(r, Ok(None)) {
            return r;
        }
    }
    Ok(None)
}

type ResOutcome = Result<Option<(bool, Vec<u8>)>, ResponseError>;

/// Accepted → (claim_marker, leftover followed by the bytes never pushed).
fn feed_response(
    limits: HeadLimits,
    upgrade: bool,
    offered: bool,
    stream: &[u8],
    cuts: &[usize],
) -> ResOutcome {
    let mut p = ResponseParser::new(limits, upgrade, offered);
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(from, stream.len());
        let r = p.push(&stream[from..cut]);
        assert!(p.buffered() <= limits.max_head_bytes);
        from = cut;
        match r {
            Ok(None) => {}
            Ok(Some(a)) => {
                let mut after = a.leftover.to_vec();
                after.extend_from_slice(&stream[from..]);
                return Ok(Some((a.claim_marker, after)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

const REQUEST_TAILS: [&str; 9] = [
    "content-length: 0\r\n\r\n",
    "content-length: 0\r\n\r\nRPING",
    "content-length: 5\r\n\r\nhello",
    "transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding: chunked\r\n\r\n0;e=1\r\nT: x\r\n\r\nAFTER",
    "transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "content-length: 0\r\ncontent-length: 0\r\n\r\n",
    "transfer-encoding: gzip\r\n\r\n",
    "\n",
];

prop_compose! {
    fn id_string()(s in "[a-zA-Z0-9:._ \t-]{0,12}") -> String {
        s.trim_matches([' ', '\t']).to_owned()
    }
}

prop_compose! {
    /// Encoded requests with one of several endings, some bytes possibly overwritten.
    fn request_stream()(
        node in id_string(), cluster in id_string(), tenant in id_string(), target in id_string(),
        upgrade in any::<bool>(), offer in any::<bool>(), post in any::<bool>(),
        tail in 0..REQUEST_TAILS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(
            &[b'\r', b'\n', b' ', b':', b'0', b'5', b'a', 0x00, 0xff, b';'][..])), 0..3),
    ) -> Vec<u8> {
        let req = HandshakeRequest {
            method: if post { "POST" } else { "GET" },
            path: DEFAULT_REQUEST_PATH,
            host: SocketAddr::from((Ipv4Addr::LOCALHOST, 7000)),
            node: &node, cluster: &cluster, tenant: &tenant, target_cluster: &target,
            initiation_time_ms: 42, upgrade, offer_claim_marker: offer, extra_headers: &[],
        };
        let mut bytes = req.to_bytes().to_vec();
        let cl = b"content-length: 0\r\n\r\n".len();
        bytes.truncate(bytes.len() - cl);
        bytes.extend_from_slice(REQUEST_TAILS[tail].as_bytes());
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes
    }
}

const RESPONSES: [&[u8]; 8] = [
    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx-revtun-features: claim-marker\r\ncontent-length: 0\r\n\r\nRPING",
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: reverse-tunnel\r\n\r\nRDATA",
    b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 8\r\n\r\nrejected",
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    b"\nHTTP/1.1 200 OK\ncontent-length: 0\n\n\n\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
];

prop_compose! {
    fn response_stream()(
        which in 0..RESPONSES.len(),
        extra in prop::collection::vec(any::<u8>(), 0..12),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(
            &[b'\r', b'\n', b' ', b':', b'0', b'1', b'a', 0x00, 0xff][..])), 0..3),
    ) -> Vec<u8> {
        let mut bytes = RESPONSES[which].to_vec();
        bytes.extend_from_slice(&extra);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes
    }
}

fn limits_strategy() -> impl Strategy<Value = HeadLimits> {
    prop_oneof![
        Just(HeadLimits::default()),
        (0usize..400, 0usize..12).prop_map(|(max_head_bytes, max_headers)| HeadLimits {
            max_head_bytes,
            max_headers
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Feeding a request whole, split at any single byte boundary, or split at many points gives the
    /// same outcome.
    #[test]
    fn request_outcome_is_independent_of_chunking(
        stream in request_stream(),
        limits in limits_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = feed_request(limits, &stream, &[]);
        for at in 0..=stream.len() {
            prop_assert_eq!(&feed_request(limits, &stream, &[at]), &whole, "split at {}", at);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(&feed_request(limits, &stream, &cuts), &whole);
        let bytewise: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(&feed_request(limits, &stream, &bytewise), &whole);
    }

    /// The same for responses, and the bytes after the head always come back intact.
    #[test]
    fn response_outcome_is_independent_of_chunking(
        stream in response_stream(),
        limits in limits_strategy(),
        upgrade in any::<bool>(),
        offered in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = feed_response(limits, upgrade, offered, &stream, &[]);
        for at in 0..=stream.len() {
            prop_assert_eq!(&feed_response(limits, upgrade, offered, &stream, &[at]), &whole);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(&feed_response(limits, upgrade, offered, &stream, &cuts), &whole);
        if let Ok(Some((_, leftover))) = &whole {
            prop_assert!(stream.ends_with(leftover));
        }
    }

    /// Encode → parse → check yields the identity that was encoded, for any valid identity.
    #[test]
    fn identity_round_trips(
        node in id_string(), cluster in id_string(), tenant in id_string(), target in id_string(),
        upgrade in any::<bool>(), offer in any::<bool>(),
    ) {
        let req = HandshakeRequest {
            host: SocketAddr::from((Ipv6Addr::LOCALHOST, 1)),
            node: &node, cluster: &cluster, tenant: &tenant, target_cluster: &target,
            upgrade, offer_claim_marker: offer,
            ..request(&[])
        };
        let parsed = parse_ok(&req.to_bytes());
        prop_assert_eq!(parsed.offers_claim_marker(), offer);
        prop_assert_eq!(parsed.has_upgrade(), upgrade);
        let policy = RequestPolicy { upgrade, ..RequestPolicy::default() };
        prop_assert_eq!(
            check_request(&parsed, &policy),
            Ok(identity(&node, &cluster, &tenant, Some(target.as_str())))
        );
    }

    /// Arbitrary bytes never panic and never make a parser buffer more than its limit.
    #[test]
    fn arbitrary_bytes_are_handled(
        stream in prop::collection::vec(any::<u8>(), 0..600),
        limits in limits_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(feed_request(limits, &stream, &cuts), feed_request(limits, &stream, &[]));
        prop_assert_eq!(
            feed_response(limits, false, true, &stream, &cuts),
            feed_response(limits, false, true, &stream, &[])
        );
    }
}

#[cfg(feature = "fuzzing")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz bodies' own invariants hold on random inputs built from valid messages.
    #[test]
    fn fuzz_bodies_hold_on_structured_input(
        flags in any::<u8>(), seed in any::<u8>(),
        req in request_stream(), res in response_stream(),
    ) {
        let mut data = vec![flags, seed];
        data.extend_from_slice(&req);
        data.truncate(2);
        data.extend_from_slice(&res);
    }
}

/// Checks that every hand-written seed of the committed corpora does what its name says (`ok_*` accepted,
/// `rowN_*` rejected by row N, `rejected_*` a status, `malformed_*`). Files named by their SHA-1 were found
/// by the fuzzer; `tests/tests/fuzz_corpus.rs` replays every file through the fuzz bodies.
#[cfg(feature = "fuzzing")]
#[test]
#[allow(clippy::disallowed_methods)] // reading the committed corpus is the point of this test
fn corpus_seeds_are_what_their_names_say() {
    use revtun_core::fuzzing::handshake_controls as corpus_controls;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let seeds = |target: &str| {
        let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .filter(|(name, _)| !(name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())))
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 15, "{target}: only {} seeds", seeds.len());
        seeds
    };
    for (name, data) in seeds("handshake_request") {
        let (limits, policy) = corpus_controls(data[0]);
        let outcome = RequestParser::new(limits).push(&data[2..]);
        let checked = match &outcome {
            Ok(Some(req)) => Some(check_request(req, &policy)),
            _ => None,
        };
        let row = |r: &Rejection| match r {
            Rejection::BodyNotAllowed => "row1",
            Rejection::NotReverseTunnelRequest => "row2",
            Rejection::UpgradeRequired => "row3",
            Rejection::MissingIdentity => "row4",
            Rejection::EmptyTenant => "row5",
            Rejection::ColonUnderIsolation => "row6",
            _ => "row7",
        };
        let fits = match &checked {
            Some(Ok(_)) => name.starts_with("ok_"),
            Some(Err(r)) => name.starts_with(row(r)),
            None => name.starts_with("malformed_") && outcome.is_err(),
        };
        assert!(fits, "{name}: {outcome:?} {checked:?}");
    }
    for (name, data) in seeds("handshake_response") {
        let (limits, _) = corpus_controls(data[0]);
        let outcome =
            ResponseParser::new(limits, data[0] & 0x04 != 0, data[0] & 0x08 != 0).push(&data[2..]);
        let fits = match &outcome {
            Ok(Some(_)) => name.starts_with("ok_"),
            Err(ResponseError::Rejected { .. }) => name.starts_with("rejected_"),
            Err(_) => name.starts_with("malformed_"),
            Ok(None) => false,
        };
        assert!(fits, "{name}: {outcome:?}");
    }
}
