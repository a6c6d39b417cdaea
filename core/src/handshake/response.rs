//! The initiator's incremental parser of the handshake response.

use std::borrow::Cow;
use std::mem::{self, MaybeUninit};

use bytes::Bytes;

use super::HeadLimits;
use super::scan::{
    BlankLineScanner, Framing, STACK_HEADER_SLOTS, StartCheck, StartError, StartLine,
    append_bounded, delta_seconds, digits_nonzero, header_slots, is_digits, list_contains,
};
use super::{CLAIM_MARKER_FEATURE, FEATURES_HEADER};

/// The responder accepted the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The claim marker was offered and the responder echoed it: claim-marker mode is in force.
    pub claim_marker: bool,
    /// The bytes that followed the response head in the pushed input (they belong to the tunnel; never
    /// dropped).
    pub leftover: Bytes,
}

/// Why the handshake attempt failed on the response.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// A well-formed HTTP/1.1 response with any status but the accepted one (200, or 101 in upgrade
    /// mode; so also a 200 in upgrade mode, a 101 outside it, and any other 1xx).
    #[error("handshake rejected with status {status}")]
    Rejected {
        /// The status code.
        status: u16,
        /// The first `retry-after` as delta-seconds > 0 (digits only; an HTTP-date, 0 or garbage is
        /// `None`; too many digits saturate).
        retry_after: Option<u64>,
    },
    /// `httparse` rejected the head.
    #[error("malformed HTTP response: {0}")]
    Http(httparse::Error),
    /// The head did not end within the byte limit.
    #[error("response head exceeds {limit} bytes")]
    HeadTooLarge {
        /// The configured `max_head_bytes`.
        limit: usize,
    },
    /// The head has more header lines than allowed.
    #[error("response has more than {limit} headers")]
    TooManyHeaders {
        /// The configured `max_headers`.
        limit: usize,
    },
    /// The response is not HTTP/1.1.
    #[error("response is not HTTP/1.1")]
    BadVersion,
    /// The accepted status announces a body (`content-length` other than 0, or any
    /// `transfer-encoding`).
    #[error("accepting response announces a body")]
    BodyAnnounced,
    /// A framing header appears more than once in the accepted response (even with identical values).
    #[error("repeated {header} header")]
    RepeatedFraming {
        /// `content-length` or `transfer-encoding`.
        header: &'static str,
    },
    /// Both `content-length` and `transfer-encoding` in the accepted response.
    #[error("both content-length and transfer-encoding present")]
    ConflictingFraming,
    /// `content-length` of the accepted response is not digits only.
    #[error("content-length is not a decimal number")]
    InvalidContentLength,
    /// [`ResponseParser::push`] was called again after it returned `Accepted` (a bug in the caller).
    #[error("response parser used after it completed")]
    Finished,
}

impl ResponseError {
    /// The counter suffix of `handshake_failed.<reason>`: `http_<code>` for [`Rejected`](Self::Rejected),
    /// `malformed` for everything else.
    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            Self::Rejected { status, .. } => Cow::Owned(format!("http_{status}")),
            _ => Cow::Borrowed("malformed"),
        }
    }
}

impl From<StartError> for ResponseError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Http(e) => Self::Http(e),
            StartError::BadVersion => Self::BadVersion,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Head {
        start: StartCheck,
        scan: BlankLineScanner,
    },
    Done,
    Failed(ResponseError),
}

/// Incremental parser of the handshake response (initiator side).
///
/// Feed it what the connection yields with [`push`](Self::push). It buffers at most
/// [`HeadLimits::max_head_bytes`] bytes and looks at every byte a bounded number of times. The status
/// decides first: any status but the accepted one is [`ResponseError::Rejected`] whatever its headers;
/// framing rules apply to the accepted status only (its bytes after the head belong to the tunnel). The
/// `101` is not required to carry `upgrade`/`connection` headers. A claim marker echoed although it was
/// not offered is ignored (`claim_marker: false`).
///
/// `Debug` shows the settings and the number of bytes buffered, not the bytes.
#[derive(Clone)]
pub struct ResponseParser {
    limits: HeadLimits,
    upgrade: bool,
    offered_claim_marker: bool,
    buf: Vec<u8>,
    state: State,
}

impl std::fmt::Debug for ResponseParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseParser")
            .field("limits", &self.limits)
            .field("upgrade", &self.upgrade)
            .field("offered_claim_marker", &self.offered_claim_marker)
            .field("buffered", &self.buf.len())
            .field("failed", &matches!(self.state, State::Failed(_)))
            .finish_non_exhaustive()
    }
}

impl ResponseParser {
    /// A parser enforcing `limits`; `upgrade` = upgrade mode (expects 101); `offered_claim_marker` = the
    /// request offered the claim marker.
    pub fn new(limits: HeadLimits, upgrade: bool, offered_claim_marker: bool) -> Self {
        Self {
            limits,
            upgrade,
            offered_claim_marker,
            buf: Vec::new(),
            state: State::Head {
                start: StartCheck::new(StartLine::Response),
                scan: BlankLineScanner::head(),
            },
        }
    }

    /// Feeds the next bytes of the connection.
    ///
    /// `Ok(None)` = need more bytes. `Ok(Some)` and `Err` are final; `Accepted::leftover` holds every byte
    /// of `input` (and of earlier pushes) after the head. An error is returned again by later calls; a
    /// call after `Ok(Some)` returns [`ResponseError::Finished`].
    pub fn push(&mut self, input: &[u8]) -> Result<Option<Accepted>, ResponseError> {
        let (mut start, mut scan) = match mem::replace(&mut self.state, State::Done) {
            State::Head { start, scan } => (start, scan),
            State::Failed(e) => {
                self.state = State::Failed(e.clone());
                return Err(e);
            }
            State::Done => return Err(ResponseError::Finished),
        };
        let taken = append_bounded(&mut self.buf, input, self.limits.max_head_bytes);
        let rest = input.get(taken..).unwrap_or_default();
        let result = match start.check(&self.buf) {
            Err(e) => Err(e.into()),
            Ok(()) => match scan.scan(&self.buf) {
                Some(end) => self.finish(end, rest).map(Some),
                None if !rest.is_empty() => Err(ResponseError::HeadTooLarge {
                    limit: self.limits.max_head_bytes,
                }),
                None => {
                    self.state = State::Head { start, scan };
                    return Ok(None);
                }
            },
        };
        self.buf = Vec::new();
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    /// Bytes currently buffered (never more than `max_head_bytes`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Parses the complete head `buf[..end]`; `rest` is the part of the last input not buffered.
    fn finish(&self, end: usize, rest: &[u8]) -> Result<Accepted, ResponseError> {
        let head = self.buf.get(..end).unwrap_or_default();
        let n = header_slots(self.limits.max_headers, head.len());
        let mut stack = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_HEADER_SLOTS];
        let mut heap;
        let slots = match stack.get_mut(..n) {
            Some(slots) => slots,
            None => {
                heap = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); n];
                heap.as_mut_slice()
            }
        };
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, head, slots)
        {
            Ok(httparse::Status::Complete(len)) if len == head.len() => {}
            // Unreachable while the scanner agrees with httparse (property-tested); never a panic.
            Ok(_) => return Err(ResponseError::Http(httparse::Error::NewLine)),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ResponseError::TooManyHeaders {
                    limit: self.limits.max_headers,
                });
            }
            Err(e) => return Err(ResponseError::Http(e)),
        }
        if res.version != Some(1) {
            return Err(ResponseError::BadVersion);
        }
        let status = res.code.unwrap_or_default();
        let expected = if self.upgrade { 101 } else { 200 };
        if status != expected {
            let retry_after = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
                .and_then(|h| delta_seconds(h.value));
            return Err(ResponseError::Rejected {
                status,
                retry_after,
            });
        }

        let mut framing = Framing::default();
        let mut echoed = false;
        for h in res.headers.iter() {
            if !framing.record(h.name, h.value) && h.name.eq_ignore_ascii_case(FEATURES_HEADER) {
                echoed |= list_contains(h.value, CLAIM_MARKER_FEATURE);
            }
        }
        if let Some(header) = framing.repeated {
            return Err(ResponseError::RepeatedFraming { header });
        }
        match (framing.content_length, framing.transfer_encoding) {
            (Some(_), Some(_)) => return Err(ResponseError::ConflictingFraming),
            (None, Some(_)) => return Err(ResponseError::BodyAnnounced),
            (Some(cl), None) if !is_digits(cl) => return Err(ResponseError::InvalidContentLength),
            (Some(cl), None) if digits_nonzero(cl) => return Err(ResponseError::BodyAnnounced),
            _ => {}
        }

        let after = self.buf.get(end..).unwrap_or_default();
        let leftover = match (after.is_empty(), rest.is_empty()) {
            (true, true) => Bytes::new(),
            (false, true) => Bytes::copy_from_slice(after),
            (true, false) => Bytes::copy_from_slice(rest),
            (false, false) => Bytes::from([after, rest].concat()),
        };
        Ok(Accepted {
            claim_marker: self.offered_claim_marker && echoed,
            leftover,
        })
    }
}
