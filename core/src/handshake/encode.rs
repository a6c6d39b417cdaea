//! The initiator's handshake request: the encoder and the config-time checks of what goes into it.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;

use super::{
    CLAIM_MARKER_FEATURE, CLUSTER_ID_HEADER, FEATURES_HEADER, INITIATION_TIME_HEADER,
    NODE_ID_HEADER, TENANT_ID_HEADER, UPGRADE_PROTOCOL, UPSTREAM_CLUSTER_NAME_HEADER,
};
use crate::headers::{has_surrounding_whitespace, is_token, is_valid_header_value};

/// One handshake request, as the initiator sends it (DESIGN.md, "Handshake request").
///
/// [`encode`](Self::encode) writes, in this order and with lowercase names:
/// ```text
/// <method> <path> HTTP/1.1
/// host: <host>                       (IPv6 as [addr]:port; a scope id is not written)
/// connection: Upgrade                (upgrade mode only)
/// upgrade: reverse-tunnel            (upgrade mode only)
/// x-envoy-reverse-tunnel-node-id: <node>
/// x-envoy-reverse-tunnel-cluster-id: <cluster>
/// x-envoy-reverse-tunnel-tenant-id: <tenant>            (always, may be empty)
/// x-envoy-reverse-tunnel-upstream-cluster-name: <target_cluster>
/// x-envoy-reverse-tunnel-initiation-time: <initiation_time_ms>
/// x-revtun-features: claim-marker    (only if offer_claim_marker)
/// <extra headers, names lowercased, in the given order>
/// content-length: 0
/// ```
/// with CRLF line endings and an empty line at the end.
///
/// The encoder assumes valid input: the method, path and extra headers checked at config time with
/// [`validate_method`], [`validate_path`] and [`validate_extra_header`], the identities by the `rc://`
/// address grammar. Invalid input is written as given (it never panics).
///
/// `Debug` prints extra header names only: their values may be credentials.
#[derive(Clone, Copy)]
pub struct HandshakeRequest<'a> {
    /// Request method, `GET` by default ([`DEFAULT_REQUEST_METHOD`](super::DEFAULT_REQUEST_METHOD)).
    pub method: &'a str,
    /// Request path, `/reverse_connections/request` by default
    /// ([`DEFAULT_REQUEST_PATH`](super::DEFAULT_REQUEST_PATH)).
    pub path: &'a str,
    /// The address dialled, written as the `host` header.
    pub host: SocketAddr,
    /// The initiator's node id.
    pub node: &'a str,
    /// The initiator's cluster id.
    pub cluster: &'a str,
    /// The initiator's tenant id (may be empty).
    pub tenant: &'a str,
    /// The responder-side cluster the initiator dials.
    pub target_cluster: &'a str,
    /// Unix epoch milliseconds when the host last had no tunnel and this try began.
    pub initiation_time_ms: u64,
    /// Upgrade mode: add `connection: Upgrade` and `upgrade: reverse-tunnel` (and expect `101`).
    pub upgrade: bool,
    /// Offer the `RDATA` claim marker (`x-revtun-features: claim-marker`).
    pub offer_claim_marker: bool,
    /// Configured extra headers (e.g. `authorization`), written after the features header.
    pub extra_headers: &'a [(String, String)],
}

impl fmt::Debug for HandshakeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HandshakeRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("node", &self.node)
            .field("cluster", &self.cluster)
            .field("tenant", &self.tenant)
            .field("target_cluster", &self.target_cluster)
            .field("initiation_time_ms", &self.initiation_time_ms)
            .field("upgrade", &self.upgrade)
            .field("offer_claim_marker", &self.offer_claim_marker)
            .field("extra_header_names", &names)
            .finish()
    }
}

impl HandshakeRequest<'_> {
    /// Appends the request bytes to `out` (which is not cleared).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len_estimate());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        // Infallible: writing into a Vec cannot fail.
        let _ = match self.host {
            SocketAddr::V4(a) => write!(out, "{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => write!(out, "[{}]:{}", a.ip(), a.port()),
        };
        out.extend_from_slice(b"\r\n");
        if self.upgrade {
            out.extend_from_slice(b"connection: Upgrade\r\nupgrade: ");
            out.extend_from_slice(UPGRADE_PROTOCOL.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        header(out, NODE_ID_HEADER, self.node);
        header(out, CLUSTER_ID_HEADER, self.cluster);
        header(out, TENANT_ID_HEADER, self.tenant);
        header(out, UPSTREAM_CLUSTER_NAME_HEADER, self.target_cluster);
        out.extend_from_slice(INITIATION_TIME_HEADER.as_bytes());
        let _ = write!(out, ": {}\r\n", self.initiation_time_ms);
        if self.offer_claim_marker {
            header(out, FEATURES_HEADER, CLAIM_MARKER_FEATURE);
        }
        for (name, value) in self.extra_headers {
            out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"content-length: 0\r\n\r\n");
    }

    /// The request bytes as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        Bytes::from(out)
    }

    /// Upper bound of the encoded length, to reserve once.
    fn encoded_len_estimate(&self) -> usize {
        const FIXED: usize = 400;
        let extra: usize = self
            .extra_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        FIXED
            + self.method.len()
            + self.path.len()
            + self.node.len()
            + self.cluster.len()
            + self.tenant.len()
            + self.target_cluster.len()
            + extra
    }
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A configured method, path or extra header that cannot go into the handshake request.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The method is not an HTTP token.
    #[error("invalid request method {0:?}: it must be an HTTP token")]
    InvalidMethod(String),
    /// The path does not start with `/` or has bytes other than visible ASCII.
    #[error("invalid request path {0:?}: it must start with '/' and contain only visible ASCII")]
    InvalidPath(String),
    /// The header name is not an HTTP token.
    #[error("invalid header name {0:?}: it must be an HTTP token")]
    InvalidName(String),
    /// The header value has a control character (CR, LF, NUL, DEL, …).
    #[error(
        "the value of header {name:?} contains characters that are invalid in an HTTP header value"
    )]
    InvalidValue {
        /// The header's name, as configured.
        name: String,
    },
    /// The header value begins or ends with a space or tab, which HTTP would strip.
    #[error("the value of header {name:?} begins or ends with whitespace")]
    SurroundingWhitespace {
        /// The header's name, as configured.
        name: String,
    },
    /// The header is one the protocol writes itself.
    #[error("header {name:?} is written by the handshake itself and cannot be configured")]
    Reserved {
        /// The header's name, as configured.
        name: String,
    },
}

/// Checks a configured request method: an HTTP token (e.g. `GET`, `POST`).
pub fn validate_method(m: &str) -> Result<(), HeaderError> {
    if is_token(m.as_bytes()) {
        Ok(())
    } else {
        Err(HeaderError::InvalidMethod(m.to_owned()))
    }
}

/// Checks a configured request path: starts with `/`, only visible ASCII (`!`..=`~`), so no spaces.
/// A query string is allowed (the responder compares the path exactly, query included).
pub fn validate_path(p: &str) -> Result<(), HeaderError> {
    if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(HeaderError::InvalidPath(p.to_owned()))
    }
}

/// Checks a configured extra header: the name is an HTTP token and not one the protocol writes itself
/// (`host`, `content-length`, `transfer-encoding`, `connection`, `upgrade`, any
/// `x-envoy-reverse-tunnel-*`, `x-revtun-features`; case-insensitive); the value is a valid header value
/// (no control characters) that does not begin or end with a space or tab. An empty value is allowed.
pub fn validate_extra_header(name: &str, value: &str) -> Result<(), HeaderError> {
    const RESERVED: [&str; 6] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        FEATURES_HEADER,
    ];
    const RESERVED_PREFIX: &str = "x-envoy-reverse-tunnel-";
    if !is_token(name.as_bytes()) {
        return Err(HeaderError::InvalidName(name.to_owned()));
    }
    let reserved = RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r))
        || name
            .get(..RESERVED_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX));
    if reserved {
        return Err(HeaderError::Reserved {
            name: name.to_owned(),
        });
    }
    if !is_valid_header_value(value.as_bytes()) {
        return Err(HeaderError::InvalidValue {
            name: name.to_owned(),
        });
    }
    if has_surrounding_whitespace(value.as_bytes()) {
        return Err(HeaderError::SurroundingWhitespace {
            name: name.to_owned(),
        });
    }
    Ok(())
}
