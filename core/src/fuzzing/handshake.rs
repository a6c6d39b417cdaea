//! Fuzz bodies of the handshake codec: [`handshake_request`] and [`handshake_response`].
//!
//! Input layout, for both: byte 0 = configuration flags, byte 1 = split seed, the rest = the bytes the
//! peer sends. The seed picks chunk sizes (0 = one byte at a time, otherwise 1–16 bytes from a small
//! xorshift generator). Shorter inputs are padded with zero control bytes.

use std::net::{Ipv4Addr, SocketAddr};

use crate::handshake::{
    Accepted, HandshakeRequest, HeadLimits, ParsedRequest, RequestParser, RequestPolicy,
    ResponseError, ResponseParser, check_request, encode_accept,
};

/// How the handshake fuzz bodies read their configuration byte: head limits from bits 0–1, the responder's
/// policy from bits 2–7 (upgrade, require_tenant, tenant isolation, required cluster name `target`, POST,
/// claim marker). Seeds in `fuzz/corpus/handshake_*` are written against it.
pub fn handshake_controls(flags: u8) -> (HeadLimits, RequestPolicy) {
    let policy = RequestPolicy {
        method: if flags & 0x40 != 0 { "POST" } else { "GET" }.to_owned(),
        upgrade: flags & 0x04 != 0,
        require_tenant: flags & 0x08 != 0,
        tenant_isolation: flags & 0x10 != 0,
        required_cluster_name: (flags & 0x20 != 0).then(|| "target".to_owned()),
        claim_marker: flags & 0x80 != 0,
        ..RequestPolicy::default()
    };
    (limits(flags), policy)
}

/// Limits chosen by bits 0–1 of the configuration byte.
fn limits(flags: u8) -> HeadLimits {
    match flags & 0b11 {
        0 => HeadLimits::default(),
        1 => HeadLimits {
            max_head_bytes: 512,
            max_headers: 12,
        },
        2 => HeadLimits {
            max_head_bytes: 96,
            max_headers: 3,
        },
        _ => HeadLimits {
            max_head_bytes: 4096,
            max_headers: 0,
        },
    }
}

/// Splits `data` into chunks chosen by `seed`.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            1 + (state % 16) as usize
        };
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

fn split_controls(data: &[u8]) -> (u8, u8, &[u8]) {
    match data {
        [flags, seed, stream @ ..] => (*flags, *seed, stream),
        [flags] => (*flags, 0, &[]),
        [] => (0, 0, &[]),
    }
}

type RequestOutcome = Result<Option<ParsedRequest>, crate::handshake::MalformedRequest>;

/// Feeds `parts` until a final result, asserting the buffering bound after every push.
fn feed_request(limits: HeadLimits, parts: &[&[u8]]) -> RequestOutcome {
    let mut parser = RequestParser::new(limits);
    for part in parts {
        let r = parser.push(part);
        assert!(parser.buffered() <= limits.max_head_bytes);
        if !matches!(r, Ok(None)) {
            // Final results are sticky (or Finished).
            assert!(parser.push(b"x").is_err());
            return r;
        }
    }
    Ok(None)
}

/// Fuzz body of the responder's request parser and check table.
///
/// Byte 0: bits 0–1 = limits (default, 512/12, 96/3, 4096/0 headers); policy bits: 2 = upgrade,
/// 3 = require_tenant, 4 = tenant_isolation, 5 = required_cluster_name `target`, 6 = method `POST`,
/// 7 = claim marker supported. Asserts: no panic; at most `max_head_bytes` buffered; the same outcome
/// whole, in seeded chunks and one byte at a time (chunking invariance); a parsed request's accessors
/// agree with each other; an accepted identity survives encode → parse → check; every response the
/// responder would send parses on the initiator side as what it means.
pub fn handshake_request(data: &[u8]) {
    let (flags, seed, stream) = split_controls(data);
    let limits = limits(flags);
    let whole = feed_request(limits, &[stream]);
    assert_eq!(whole, feed_request(limits, &chunks(stream, seed)));
    if seed != 0 && stream.len() <= 4096 {
        assert_eq!(whole, feed_request(limits, &chunks(stream, 0)));
    }
    let Ok(Some(req)) = whole else {
        return;
    };
    let (_, policy) = handshake_controls(flags);

    // Accessors agree with each other.
    for (name, value) in req.headers() {
        assert!(req.header(&name.to_ascii_lowercase()).is_some());
        assert!(crate::headers::is_valid_header_value(value));
    }
    assert!(!req.method().is_empty() && !req.path().is_empty());

    match check_request(&req, &policy) {
        Err(rejection) => {
            // The initiator reads the rejection as exactly that status.
            let mut parser = ResponseParser::new(HeadLimits::default(), policy.upgrade, true);
            assert_eq!(
                parser.push(&rejection.encode()),
                Err(ResponseError::Rejected {
                    status: rejection.status(),
                    retry_after: None,
                })
            );
        }
        Ok(identity) => {
            let offered = req.offers_claim_marker();
            let negotiated = policy.claim_marker && offered;
            let mut parser = ResponseParser::new(HeadLimits::default(), policy.upgrade, offered);
            assert_eq!(
                parser.push(&encode_accept(policy.upgrade, negotiated)),
                Ok(Some(Accepted {
                    claim_marker: negotiated,
                    leftover: bytes::Bytes::new(),
                }))
            );

            // Round trip: what the encoder writes for this identity passes the same checks.
            let target = identity.upstream_cluster_name.clone().unwrap_or_default();
            let encoded = HandshakeRequest {
                method: &policy.method,
                path: &policy.path,
                host: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
                node: &identity.node,
                cluster: &identity.cluster,
                tenant: &identity.tenant,
                target_cluster: &target,
                initiation_time_ms: 1,
                upgrade: policy.upgrade,
                offer_claim_marker: offered,
                extra_headers: &[],
            }
            .to_bytes();
            let big = HeadLimits {
                max_head_bytes: encoded.len(),
                max_headers: 16,
            };
            let reparsed = RequestParser::new(big)
                .push(&encoded)
                .ok()
                .flatten()
                .expect("the encoder's request parses");
            let again = check_request(&reparsed, &policy).expect("the encoded identity passes");
            assert_eq!(
                (&again.node, &again.cluster, &again.tenant),
                (&identity.node, &identity.cluster, &identity.tenant)
            );
            assert_eq!(
                again.upstream_cluster_name.as_deref(),
                Some(target.as_str())
            );
            assert_eq!(reparsed.offers_claim_marker(), offered);
        }
    }
}

type ResponseOutcome = Result<Option<(bool, Vec<u8>)>, ResponseError>;

/// Feeds `parts` until a final result; an `Accepted` is returned with its leftover followed by every
/// part not pushed (the stream after the head, which must be intact).
fn feed_response(
    limits: HeadLimits,
    upgrade: bool,
    offered: bool,
    parts: &[&[u8]],
) -> ResponseOutcome {
    let mut parser = ResponseParser::new(limits, upgrade, offered);
    for (i, part) in parts.iter().enumerate() {
        let r = parser.push(part);
        assert!(parser.buffered() <= limits.max_head_bytes);
        match r {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                assert!(offered || !accepted.claim_marker);
                assert_eq!(parser.push(b"x"), Err(ResponseError::Finished));
                let mut after = accepted.leftover.to_vec();
                for rest in parts.get(i + 1..).unwrap_or_default() {
                    after.extend_from_slice(rest);
                }
                return Ok(Some((accepted.claim_marker, after)));
            }
            Err(e) => {
                assert!(!e.reason().is_empty());
                assert_eq!(parser.push(b"x"), Err(e.clone()));
                return Err(e);
            }
        }
    }
    Ok(None)
}

/// Fuzz body of the initiator's response parser.
///
/// Byte 0: bits 0–1 = limits (as for [`handshake_request`]), bit 2 = upgrade mode, bit 3 = claim marker
/// offered. Asserts: no panic; at most `max_head_bytes` buffered; the same outcome whole, in seeded
/// chunks and one byte at a time, with the bytes after the head returned intact (leftover plus
/// whatever was not pushed equals the whole stream's leftover, which is a suffix of the stream).
pub fn handshake_response(data: &[u8]) {
    let (flags, seed, stream) = split_controls(data);
    let limits = limits(flags);
    let upgrade = flags & 0x04 != 0;
    let offered = flags & 0x08 != 0;
    let whole = feed_response(limits, upgrade, offered, &[stream]);
    assert_eq!(
        whole,
        feed_response(limits, upgrade, offered, &chunks(stream, seed))
    );
    if seed != 0 && stream.len() <= 4096 {
        assert_eq!(
            whole,
            feed_response(limits, upgrade, offered, &chunks(stream, 0))
        );
    }
    if let Ok(Some((_, leftover))) = &whole {
        assert!(stream.ends_with(leftover));
    }
}
