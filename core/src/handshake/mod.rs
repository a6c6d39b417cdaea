//! The HTTP/1.1 handshake codec of the reverse-tunnel protocol (DESIGN.md, "Handshake request" and
//! "Handshake response and the responder's checks").
//!
//! Sans-IO: bytes in, values or bytes out; no sockets, clocks or async. Nothing here panics on peer
//! bytes, and the incremental parsers never buffer more than [`HeadLimits::max_head_bytes`].
//!
//! - Initiator: [`HandshakeRequest::encode`] writes the request; [`ResponseParser`] reads the answer
//!   into [`Accepted`] (with the bytes that followed the head) or a [`ResponseError`].
//! - Responder: [`RequestParser`] reads the request into a [`ParsedRequest`] or a
//!   [`MalformedRequest`] (row 0 of the check table: close silently); [`check_request`] runs rows 1–7 and
//!   yields the [`Identity`] or a [`Rejection`], whose [`Rejection::encode`] gives the exact response
//!   bytes; [`encode_accept`] gives the success bytes.
//!
//! # Parsing rules shared by both parsers
//! - **Only HTTP/1.1.** Any other version is malformed.
//! - **Line endings.** The head (request/status line and header lines) accepts CRLF and bare LF, exactly
//!   as `httparse` does, and empty lines before the first line are skipped, as `httparse` does. The end
//!   of the head is the first empty line (`\r\n` or `\n` at the start of a line) after that; the parsers
//!   find it by scanning only newly arrived bytes and run `httparse` once over the complete head, so
//!   trickled input costs linear work. The chunk-size line of a chunked request body must end in CRLF
//!   (a bare LF there is malformed); its trailer section is a header section like the head's.
//! - **Early rejection.** The first bytes are checked as they arrive, so garbage (a TLS hello, an SSH
//!   banner) fails at once rather than at the size limit: a request must start with an HTTP token and a
//!   space (the method), a response with `HTTP/1.1`.
//! - **Limits.** More than `max_head_bytes` bytes without the end of the head (for a chunked request:
//!   head, chunk-size line and trailers together) is `HeadTooLarge`; more than `max_headers` header
//!   lines is `TooManyHeaders` (trailer lines count against what the head left).
//! - **Framing.** A repeated `content-length` or `transfer-encoding` (even with identical values), or
//!   both present, is malformed; `content-length` must be digits only; a request's
//!   `transfer-encoding` must be exactly `chunked` (case-insensitive).
//! - **Outcomes** depend only on the byte stream, never on how it was split across `push` calls.
//!   Errors are sticky: a later `push` returns the same error; a `push` after success returns the
//!   `Finished` error variant (a caller bug, never a panic).
//!
//! # Decisions where DESIGN.md is silent
//! - An identity header (node, cluster, tenant, upstream cluster name) whose first value is not UTF-8
//!   makes the request malformed ([`MalformedRequest::NonUtf8Identity`]); other headers may carry any
//!   valid header bytes. A present but empty node or cluster is "present" (as in Envoy).
//! - `x-revtun-features` and `upgrade` are lists: every occurrence counts, elements are trimmed and
//!   compared case-insensitively. `connection: upgrade` is not required on the request, and the `101`
//!   is not required to carry `upgrade`/`connection`.
//! - A claim marker echoed although not offered is ignored. In the `101`, the features header goes
//!   after `upgrade`.
//! - On the initiator, any status but the accepted one is `Rejected` (including other 1xx), whatever
//!   its framing headers; framing is checked on the accepted status only (`content-length: 0`, digits
//!   only, once; no `transfer-encoding`). `retry-after` with more digits than a `u64` saturates.
//! - Chunked requests: the chunk-size line needs CRLF (httparse's own chunk-size parser is laxer: empty
//!   sizes, bare LF in extensions); trailers are parsed but not exposed, and count toward both limits.
//! - The encoder lowercases extra header names and writes an IPv6 host without its scope id.

mod check;
mod encode;
mod request;
mod response;
mod scan;

pub use check::{Identity, Rejection, RequestPolicy, check_request, encode_accept};
pub use encode::{
    HandshakeRequest, HeaderError, validate_extra_header, validate_method, validate_path,
};
pub use request::{MalformedRequest, ParsedRequest, RequestParser};
pub use response::{Accepted, ResponseError, ResponseParser};

/// Default request path of the handshake (`request_path`), as Envoy's.
pub const DEFAULT_REQUEST_PATH: &str = "/reverse_connections/request";
/// Default request method of the handshake (`request_method`): what released Envoy sends.
pub const DEFAULT_REQUEST_METHOD: &str = "GET";
/// Default cap on the size of a handshake head in bytes (Envoy's 60 KiB).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 60 * 1024;
/// Default cap on the number of header lines in a handshake head (Envoy's 100).
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Request header carrying the initiator's node id (`src_node`).
pub const NODE_ID_HEADER: &str = "x-envoy-reverse-tunnel-node-id";
/// Request header carrying the initiator's cluster id (`src_cluster`).
pub const CLUSTER_ID_HEADER: &str = "x-envoy-reverse-tunnel-cluster-id";
/// Request header carrying the initiator's tenant id (`src_tenant`; always sent, may be empty).
pub const TENANT_ID_HEADER: &str = "x-envoy-reverse-tunnel-tenant-id";
/// Request header naming the responder-side cluster the initiator dialled (the target cluster).
pub const UPSTREAM_CLUSTER_NAME_HEADER: &str = "x-envoy-reverse-tunnel-upstream-cluster-name";
/// Request header with the unix epoch milliseconds when the host last had no tunnel and this try began.
pub const INITIATION_TIME_HEADER: &str = "x-envoy-reverse-tunnel-initiation-time";
/// revtun extension header listing optional features (request: offered; response: accepted).
pub const FEATURES_HEADER: &str = "x-revtun-features";
/// The feature token of the `RDATA` claim marker in [`FEATURES_HEADER`].
pub const CLAIM_MARKER_FEATURE: &str = "claim-marker";
/// The protocol token of upgrade mode (`upgrade: reverse-tunnel`).
pub const UPGRADE_PROTOCOL: &str = "reverse-tunnel";

/// Size limits applied to a handshake head by [`RequestParser`] and [`ResponseParser`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most bytes buffered before the head must be complete (see the module docs for what counts).
    pub max_head_bytes: usize,
    /// Most header lines accepted in one head.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    /// Envoy's limits: [`DEFAULT_MAX_HEAD_BYTES`] and [`DEFAULT_MAX_HEADERS`].
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}
