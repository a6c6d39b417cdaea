//! The responder's incremental parser of the handshake request (row 0 of the check table).

use std::fmt;
use std::mem::{self, MaybeUninit};

use super::scan::{
    BlankLineScanner, Framing, STACK_HEADER_SLOTS, Span, StartCheck, StartError, StartLine,
    append_bounded, digits_nonzero, find_lf, header_slots, is_digits, list_contains,
};
use super::{
    CLAIM_MARKER_FEATURE, CLUSTER_ID_HEADER, FEATURES_HEADER, HeadLimits, NODE_ID_HEADER,
    TENANT_ID_HEADER, UPGRADE_PROTOCOL, UPSTREAM_CLUSTER_NAME_HEADER,
};

/// A request that is not well-formed HTTP/1.1 (row 0 of the check table): the responder closes the
/// connection without a response and counts `reverse_tunnel.handshake.parse_error`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedRequest {
    /// `httparse` rejected the head (or the trailers).
    #[error("malformed HTTP request: {0}")]
    Http(httparse::Error),
    /// The head (with chunk-size line and trailers, if chunked) did not end within the byte limit.
    #[error("request head exceeds {limit} bytes")]
    HeadTooLarge {
        /// The configured `max_head_bytes`.
        limit: usize,
    },
    /// The head (with trailers) has more header lines than allowed.
    #[error("request has more than {limit} headers")]
    TooManyHeaders {
        /// The configured `max_headers`.
        limit: usize,
    },
    /// The request is not HTTP/1.1.
    #[error("request is not HTTP/1.1")]
    BadVersion,
    /// A framing header appears more than once (even with identical values).
    #[error("repeated {header} header")]
    RepeatedFraming {
        /// `content-length` or `transfer-encoding`.
        header: &'static str,
    },
    /// Both `content-length` and `transfer-encoding` are present.
    #[error("both content-length and transfer-encoding present")]
    ConflictingFraming,
    /// `content-length` is not digits only.
    #[error("content-length is not a decimal number")]
    InvalidContentLength,
    /// `transfer-encoding` is anything but `chunked`.
    #[error("unsupported transfer-encoding (only a lone `chunked` is accepted)")]
    UnsupportedTransferEncoding,
    /// The first chunk-size line of a chunked body is not `1*HEXDIG [BWS ";" ext] CRLF`.
    #[error("invalid chunk-size line")]
    InvalidChunkSize,
    /// The value of an identity header (its first occurrence) is not UTF-8.
    #[error("{header} is not valid UTF-8")]
    NonUtf8Identity {
        /// The header's name.
        header: &'static str,
    },
    /// [`RequestParser::push`] was called again after it returned a request (a bug in the caller).
    #[error("request parser used after it completed")]
    Finished,
}

impl MalformedRequest {
    /// The counter suffix of `reverse_tunnel.handshake.<counter>`: always `parse_error`.
    pub fn counter(&self) -> &'static str {
        "parse_error"
    }
}

impl From<StartError> for MalformedRequest {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Http(e) => Self::Http(e),
            StartError::BadVersion => Self::BadVersion,
        }
    }
}

/// Indices of the identity headers in [`ParsedRequest::identity`].
#[derive(Clone, Copy, Debug)]
pub(super) enum IdentityHeader {
    Node = 0,
    Cluster = 1,
    Tenant = 2,
    UpstreamClusterName = 3,
}

const IDENTITY_NAMES: [&str; 4] = [
    NODE_ID_HEADER,
    CLUSTER_ID_HEADER,
    TENANT_ID_HEADER,
    UPSTREAM_CLUSTER_NAME_HEADER,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderSpan {
    name: Span,
    value: Span,
}

/// Everything known about a request once its head is parsed; positions refer to the parser's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    method: Span,
    path: Span,
    headers: Vec<HeaderSpan>,
    /// Value spans of the first occurrence of each identity header ([`IdentityHeader`] order).
    identity: [Option<Span>; 4],
    chunked: bool,
    has_body: bool,
    offers_claim_marker: bool,
    has_upgrade: bool,
}

/// A complete handshake request: the head as one buffer plus offsets (no allocation per header).
///
/// `Debug` prints the method, path, flags and header names, not header values (which may be
/// credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    buf: Vec<u8>,
    head: Head,
}

impl ParsedRequest {
    /// The request method, as sent.
    pub fn method(&self) -> &str {
        std::str::from_utf8(self.head.method.get(&self.buf)).unwrap_or_default()
    }

    /// The request target, as sent (query string included).
    pub fn path(&self) -> &str {
        std::str::from_utf8(self.head.path.get(&self.buf)).unwrap_or_default()
    }

    /// True if the request carries a body: `content-length` other than 0, or a chunked body whose first
    /// chunk has data. A bare last chunk (`0`, trailers allowed) is no body.
    pub fn has_body(&self) -> bool {
        self.head.has_body
    }

    /// The value of the first header named `lowercase_name` (matched case-insensitively), as sent
    /// (`httparse` strips the whitespace around it).
    pub fn header(&self, lowercase_name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(name, _)| name.eq_ignore_ascii_case(lowercase_name))
            .map(|(_, value)| value)
    }

    /// All headers of the head in order, names as sent (trailers are not included).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head.headers.iter().map(|h| {
            (
                std::str::from_utf8(h.name.get(&self.buf)).unwrap_or_default(),
                h.value.get(&self.buf),
            )
        })
    }

    /// True if `x-revtun-features` lists `claim-marker` (comma-separated tokens, case-insensitive; every
    /// occurrence of the header counts, as for any list-valued header).
    pub fn offers_claim_marker(&self) -> bool {
        self.head.offers_claim_marker
    }

    /// True if an `upgrade` header lists `reverse-tunnel` (comma-separated, case-insensitive; every
    /// occurrence counts). `connection` is not checked.
    pub fn has_upgrade(&self) -> bool {
        self.head.has_upgrade
    }

    /// The first value of an identity header; UTF-8 was checked by the parser.
    pub(super) fn identity(&self, which: IdentityHeader) -> Option<&str> {
        let span = self.head.identity.get(which as usize).copied().flatten()?;
        std::str::from_utf8(span.get(&self.buf)).ok()
    }
}

impl fmt::Debug for ParsedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers().map(|(n, _)| n).collect();
        f.debug_struct("ParsedRequest")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("has_body", &self.has_body())
            .field("offers_claim_marker", &self.offers_claim_marker())
            .field("has_upgrade", &self.has_upgrade())
            .field("header_names", &names)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading the head.
    Head {
        start: StartCheck,
        scan: BlankLineScanner,
    },
    /// Chunked: reading the first chunk-size line, which starts at `line_start`; LF searched from `scan`.
    ChunkSize {
        head: Head,
        line_start: usize,
        scan: usize,
    },
    /// Chunked with a bare last chunk: reading the trailer section, which starts at `start`.
    Trailers {
        head: Head,
        start: usize,
        scan: BlankLineScanner,
    },
    /// A request was returned.
    Done,
    /// An error was returned; it is returned again on every later push.
    Failed(MalformedRequest),
}

/// Incremental parser of one handshake request (responder side).
///
/// Feed it the bytes as they arrive with [`push`](Self::push). It buffers at most
/// [`HeadLimits::max_head_bytes`] bytes and looks at every byte a bounded number of times, so a peer
/// trickling bytes one at a time costs linear work. See the [module docs](super) for the rules.
///
/// `Debug` shows the limits and the number of bytes buffered, not the bytes.
#[derive(Clone)]
pub struct RequestParser {
    limits: HeadLimits,
    buf: Vec<u8>,
    state: State,
}

impl fmt::Debug for RequestParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestParser")
            .field("limits", &self.limits)
            .field("buffered", &self.buf.len())
            .field("failed", &matches!(self.state, State::Failed(_)))
            .finish_non_exhaustive()
    }
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: HeadLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            state: State::Head {
                start: StartCheck::new(StartLine::Request),
                scan: BlankLineScanner::head(),
            },
        }
    }

    /// Feeds the next bytes of the connection.
    ///
    /// `Ok(None)` means more bytes are needed. `Ok(Some)` comes once the request is complete: the head,
    /// plus for chunked framing the first chunk-size line and, when that chunk is the bare last chunk,
    /// the trailers; or as soon as a body is known to exist (`content-length` > 0, or a first chunk with
    /// data). `Err` means the request is malformed: close silently. Both are final; bytes after the
    /// request are discarded (the responder discards what arrives before its response). An error is
    /// returned again by later calls; a call after `Ok(Some)` returns [`MalformedRequest::Finished`].
    pub fn push(&mut self, input: &[u8]) -> Result<Option<ParsedRequest>, MalformedRequest> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Err(MalformedRequest::Finished),
            _ => {}
        }
        let taken = append_bounded(&mut self.buf, input, self.limits.max_head_bytes);
        let overflow = taken < input.len();
        match self.advance(overflow) {
            Ok(Some((end, head))) => {
                let mut buf = mem::take(&mut self.buf);
                buf.truncate(end);
                Ok(Some(ParsedRequest { buf, head }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.buf = Vec::new();
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Bytes currently buffered (never more than `max_head_bytes`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Runs the state machine over the buffer; on completion returns the end offset and the head and
    /// leaves the state `Done`.
    fn advance(&mut self, overflow: bool) -> Result<Option<(usize, Head)>, MalformedRequest> {
        let limits = self.limits;
        let buf = self.buf.as_slice();
        let too_large_or_more = || {
            if overflow {
                Err(MalformedRequest::HeadTooLarge {
                    limit: limits.max_head_bytes,
                })
            } else {
                Ok(None)
            }
        };
        loop {
            match mem::replace(&mut self.state, State::Done) {
                State::Head {
                    mut start,
                    mut scan,
                } => {
                    start.check(buf)?;
                    let Some(end) = scan.scan(buf) else {
                        self.state = State::Head { start, scan };
                        return too_large_or_more();
                    };
                    let head = parse_head(buf.get(..end).unwrap_or_default(), limits)?;
                    if !head.chunked || head.has_body {
                        return Ok(Some((end, head)));
                    }
                    self.state = State::ChunkSize {
                        head,
                        line_start: end,
                        scan: end,
                    };
                }
                State::ChunkSize {
                    mut head,
                    line_start,
                    scan,
                } => {
                    let Some(lf) = buf.get(scan..).and_then(find_lf) else {
                        self.state = State::ChunkSize {
                            head,
                            line_start,
                            scan: buf.len(),
                        };
                        return too_large_or_more();
                    };
                    let line_end = scan + lf + 1;
                    if chunk_has_data(buf.get(line_start..line_end).unwrap_or_default())? {
                        head.has_body = true;
                        return Ok(Some((line_end, head)));
                    }
                    self.state = State::Trailers {
                        head,
                        start: line_end,
                        scan: BlankLineScanner::section(line_end),
                    };
                }
                State::Trailers {
                    head,
                    start,
                    mut scan,
                } => {
                    let Some(end) = scan.scan(buf) else {
                        self.state = State::Trailers { head, start, scan };
                        return too_large_or_more();
                    };
                    let left = limits.max_headers.saturating_sub(head.headers.len());
                    parse_trailers(buf.get(start..end).unwrap_or_default(), left, limits)?;
                    return Ok(Some((end, head)));
                }
                done @ (State::Done | State::Failed(_)) => {
                    self.state = done;
                    return Ok(None);
                }
            }
        }
    }
}

/// Parses a complete head (`head` ends with its empty line) and applies the framing rules.
fn parse_head(head: &[u8], limits: HeadLimits) -> Result<Head, MalformedRequest> {
    let n = header_slots(limits.max_headers, head.len());
    let mut stack = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_HEADER_SLOTS];
    let mut heap;
    let slots = match stack.get_mut(..n) {
        Some(slots) => slots,
        None => {
            heap = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); n];
            heap.as_mut_slice()
        }
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        // The scanner and httparse agree on where a head ends (property-tested in `scan`); should they
        // ever not, the request is malformed rather than a panic.
        Ok(_) => return Err(MalformedRequest::Http(httparse::Error::NewLine)),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(MalformedRequest::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        Err(e) => return Err(MalformedRequest::Http(e)),
    }
    if req.version != Some(1) {
        return Err(MalformedRequest::BadVersion);
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(MalformedRequest::Http(httparse::Error::Token));
    };

    let mut framing = Framing::default();
    let mut identity = [None; 4];
    let mut offers_claim_marker = false;
    let mut has_upgrade = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        headers.push(HeaderSpan {
            name: Span::of(head, h.name.as_bytes()),
            value: Span::of(head, h.value),
        });
        if framing.record(h.name, h.value) {
            continue;
        }
        if h.name.eq_ignore_ascii_case(FEATURES_HEADER) {
            offers_claim_marker |= list_contains(h.value, CLAIM_MARKER_FEATURE);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            has_upgrade |= list_contains(h.value, UPGRADE_PROTOCOL);
        } else if let Some(i) = IDENTITY_NAMES
            .iter()
            .position(|n| h.name.eq_ignore_ascii_case(n))
        {
            if let Some(slot @ None) = identity.get_mut(i) {
                if std::str::from_utf8(h.value).is_err() {
                    return Err(MalformedRequest::NonUtf8Identity {
                        header: IDENTITY_NAMES.get(i).copied().unwrap_or_default(),
                    });
                }
                *slot = Some(Span::of(head, h.value));
            }
        }
    }

    if let Some(header) = framing.repeated {
        return Err(MalformedRequest::RepeatedFraming { header });
    }
    let (chunked, has_body) = match (framing.content_length, framing.transfer_encoding) {
        (Some(_), Some(_)) => return Err(MalformedRequest::ConflictingFraming),
        (Some(cl), None) if !is_digits(cl) => return Err(MalformedRequest::InvalidContentLength),
        (Some(cl), None) => (false, digits_nonzero(cl)),
        (None, Some(te)) if te.eq_ignore_ascii_case(b"chunked") => (true, false),
        (None, Some(_)) => return Err(MalformedRequest::UnsupportedTransferEncoding),
        (None, None) => (false, false),
    };
    Ok(Head {
        method: Span::of(head, method.as_bytes()),
        path: Span::of(head, path.as_bytes()),
        headers,
        identity,
        chunked,
        has_body,
        offers_claim_marker,
        has_upgrade,
    })
}

/// Checks a chunk-size line (including its line ending) and says whether the chunk has data.
///
/// Grammar: `1*HEXDIG [ *(SP / HTAB) ";" chunk-ext ] CRLF`, where the extension may hold any bytes valid
/// in a header value (extensions are ignored). The size may have any number of digits: only whether it
/// is zero matters, so it never overflows.
fn chunk_has_data(line: &[u8]) -> Result<bool, MalformedRequest> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or(MalformedRequest::InvalidChunkSize)?;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (size, rest) = line.split_at(digits);
    let ext = rest.trim_ascii_start();
    let ext_ok = ext.is_empty()
        || (ext.first() == Some(&b';') && crate::headers::is_valid_header_value(ext));
    if size.is_empty() || !ext_ok || (ext.is_empty() && !rest.is_empty()) {
        return Err(MalformedRequest::InvalidChunkSize);
    }
    Ok(digits_nonzero(size))
}

/// Parses the trailer section (ending with its empty line) with the header slots the head left.
fn parse_trailers(
    section: &[u8],
    slots_left: usize,
    limits: HeadLimits,
) -> Result<(), MalformedRequest> {
    let n = header_slots(slots_left, section.len());
    let mut stack = [httparse::EMPTY_HEADER; 16];
    let mut heap;
    let slots = match stack.get_mut(..n) {
        Some(slots) => slots,
        None => {
            heap = vec![httparse::EMPTY_HEADER; n];
            heap.as_mut_slice()
        }
    };
    match httparse::parse_headers(section, slots) {
        Ok(httparse::Status::Complete((len, _))) if len == section.len() => Ok(()),
        Ok(_) => Err(MalformedRequest::Http(httparse::Error::NewLine)),
        Err(httparse::Error::TooManyHeaders) => Err(MalformedRequest::TooManyHeaders {
            limit: limits.max_headers,
        }),
        Err(e) => Err(MalformedRequest::Http(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_has_data(b"0\r\n"), Ok(false));
        assert_eq!(chunk_has_data(b"000\r\n"), Ok(false));
        assert_eq!(chunk_has_data(b"5\r\n"), Ok(true));
        assert_eq!(chunk_has_data(b"aF\r\n"), Ok(true));
        assert_eq!(chunk_has_data(b"0;ext\r\n"), Ok(false));
        assert_eq!(chunk_has_data(b"0 ;a=b\r\n"), Ok(false));
        assert_eq!(
            chunk_has_data(b"ffffffffffffffffffffffff\r\n"),
            Ok(true),
            "no overflow"
        );
        for bad in [
            &b"\r\n"[..],
            b";ext\r\n",
            b"0\n",
            b"0 \r\n",
            b"0x5\r\n",
            b" 0\r\n",
            b"0;a\rb\r\n",
            b"0;a\x00\r\n",
            b"g\r\n",
        ] {
            assert_eq!(
                chunk_has_data(bad),
                Err(MalformedRequest::InvalidChunkSize),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn header_slots_stay_small_for_huge_limits() {
        let limits = HeadLimits {
            max_head_bytes: 1 << 20,
            max_headers: usize::MAX,
        };
        let mut p = RequestParser::new(limits);
        let r = p.push(b"GET / HTTP/1.1\r\na: b\r\n\r\n");
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
    }
}
