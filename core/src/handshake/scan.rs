//! Incremental helpers shared by the request and response parsers: the end-of-head scanner, the
//! first-bytes check, bounded buffering and small lexical helpers. All positions are absolute offsets
//! into the parser's buffer, which always holds the stream from its first byte.

/// Where the scanner stands relative to line boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineState {
    /// Before the first line: empty lines here are skipped (as `httparse` does), not an end.
    Leading,
    /// Before the first line, just after a CR.
    LeadingCr,
    /// At the start of a line: LF or CRLF here is the empty line that ends the section.
    LineStart,
    /// At the start of a line, just after a CR.
    LineStartCr,
    /// Inside a non-empty line: only its LF matters.
    InLine,
}

/// Finds the end of a header section (the first empty line) by looking at every byte once, however
/// the bytes arrive.
///
/// It agrees with `httparse` on every head that `httparse` accepts: such a head has no LF except as line
/// terminators, so its end is the first line that is empty (`\n` or `\r\n`). On input that `httparse`
/// rejects the scanner may find an end elsewhere or none; the full parse then reports the error (or the
/// size limit is hit first), so the outcome is still a function of the bytes alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BlankLineScanner {
    pos: usize,
    state: LineState,
}

impl BlankLineScanner {
    /// A scanner for a message head starting at offset 0 (leading empty lines are skipped).
    pub(super) fn head() -> Self {
        Self {
            pos: 0,
            state: LineState::Leading,
        }
    }

    /// A scanner for a header section (trailers) starting at `start`, which may be empty at once.
    pub(super) fn section(start: usize) -> Self {
        Self {
            pos: start,
            state: LineState::LineStart,
        }
    }

    /// Scans the bytes of `buf` not seen yet; returns the offset just past the terminating empty line.
    pub(super) fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        use LineState::*;
        while let Some(rest) = buf.get(self.pos..).filter(|r| !r.is_empty()) {
            if self.state == InLine {
                match find_lf(rest) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = LineStart;
                    }
                    None => {
                        self.pos = buf.len();
                        return None;
                    }
                }
                continue;
            }
            let b = rest.first().copied().unwrap_or_default();
            self.pos += 1;
            self.state = match (self.state, b) {
                (Leading | LeadingCr, b'\n') => Leading,
                (Leading, b'\r') => LeadingCr,
                (LineStart | LineStartCr, b'\n') => return Some(self.pos),
                (LineStart, b'\r') => LineStartCr,
                _ => InLine,
            };
        }
        None
    }
}

/// Offset of the first LF in `hay`, eight bytes at a time.
pub(super) fn find_lf(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_ne_bytes(word) ^ LFS;
        // Non-zero iff some byte of `x` is zero, i.e. some byte of the chunk is LF.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return chunk.iter().position(|&b| b == b'\n').map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// What the first bytes of the stream must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StartLine {
    /// A request line: an HTTP token (the method) followed by a space.
    Request,
    /// A status line: `HTTP/1.1`.
    Response,
}

/// Why the first bytes cannot start a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StartError {
    /// What `httparse` reports for the same bytes.
    Http(httparse::Error),
    /// A status line that does not start with `HTTP/1.1`.
    BadVersion,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckState {
    Leading,
    LeadingCr,
    Line(usize),
    Done,
}

/// Checks the first bytes of the start line as they arrive (each byte once), so garbage fails at once.
/// It rejects only what `httparse` (or the HTTP/1.1-only rule) would reject anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StartCheck {
    kind: StartLine,
    pos: usize,
    state: CheckState,
}

impl StartCheck {
    /// A check for `kind` from offset 0.
    pub(super) fn new(kind: StartLine) -> Self {
        Self {
            kind,
            pos: 0,
            state: CheckState::Leading,
        }
    }

    /// Checks the bytes of `buf` not seen yet.
    pub(super) fn check(&mut self, buf: &[u8]) -> Result<(), StartError> {
        const VERSION: &[u8] = b"HTTP/1.1";
        while let Some(&b) = buf.get(self.pos) {
            self.state = match (self.state, b) {
                (CheckState::Done, _) => return Ok(()),
                (CheckState::Leading | CheckState::LeadingCr, b'\n') => CheckState::Leading,
                (CheckState::Leading, b'\r') => CheckState::LeadingCr,
                (CheckState::LeadingCr, _) => {
                    return Err(StartError::Http(httparse::Error::NewLine));
                }
                (CheckState::Leading, _) => {
                    // The first byte of the line: look at it again in the `Line` state.
                    self.state = CheckState::Line(0);
                    continue;
                }
                (CheckState::Line(n), b) => match self.kind {
                    StartLine::Request if b == b' ' && n > 0 => CheckState::Done,
                    StartLine::Request if crate::headers::is_token(&[b]) => CheckState::Line(n + 1),
                    StartLine::Request => return Err(StartError::Http(httparse::Error::Token)),
                    StartLine::Response if VERSION.get(n) == Some(&b) => {
                        if n + 1 == VERSION.len() {
                            CheckState::Done
                        } else {
                            CheckState::Line(n + 1)
                        }
                    }
                    StartLine::Response => return Err(StartError::BadVersion),
                },
            };
            self.pos += 1;
        }
        Ok(())
    }
}

/// Appends to `buf` as much of `input` as keeps `buf` within `limit` bytes, growing the allocation at
/// most to `limit`. Returns how many bytes of `input` were taken.
pub(super) fn append_bounded(buf: &mut Vec<u8>, input: &[u8], limit: usize) -> usize {
    let take = limit.saturating_sub(buf.len()).min(input.len());
    let Some(taken) = input.get(..take).filter(|t| !t.is_empty()) else {
        return 0;
    };
    let want = buf.len() + take;
    if buf.capacity() < want {
        let target = buf.capacity().saturating_mul(2).min(limit).max(want);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(taken);
    take
}

/// Header slots kept on the stack when the header limit allows it.
pub(super) const STACK_HEADER_SLOTS: usize = 128;

/// How many header slots to hand `httparse` for a section of `len` bytes under `max_headers`: the limit
/// itself, unless the section cannot hold that many lines (each takes at least 3 bytes, `a:\n`), so a
/// huge configured limit never turns into a huge allocation.
pub(super) fn header_slots(max_headers: usize, len: usize) -> usize {
    max_headers.min(len / 3 + 1)
}

/// A byte range of a buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Span {
    /// The range that `part`, a subslice of `base`, occupies in `base`.
    pub(super) fn of(base: &[u8], part: &[u8]) -> Self {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        Self {
            start,
            end: start.wrapping_add(part.len()),
        }
    }

    /// The bytes of `buf` in this range (empty if out of range, which cannot happen for a span of `buf`).
    pub(super) fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start..self.end).unwrap_or_default()
    }
}

/// True if `value` is one or more ASCII digits.
pub(super) fn is_digits(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(u8::is_ascii_digit)
}

/// True if the digits in `value` denote a number other than zero (no overflow: any non-`0` digit).
pub(super) fn digits_nonzero(value: &[u8]) -> bool {
    value.iter().any(|&b| b != b'0')
}

/// True if the comma-separated list `value` has an element equal to `token` (case-insensitive,
/// optional whitespace around elements ignored).
pub(super) fn list_contains(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses `retry-after` as delta-seconds: digits only, saturating; `None` for 0, an HTTP-date or garbage.
pub(super) fn delta_seconds(value: &[u8]) -> Option<u64> {
    if !is_digits(value) {
        return None;
    }
    let secs = value.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    (secs > 0).then_some(secs)
}

/// The framing headers of a head: the first `content-length` and `transfer-encoding`, and whether
/// either was repeated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Framing<'a> {
    pub(super) content_length: Option<&'a [u8]>,
    pub(super) transfer_encoding: Option<&'a [u8]>,
    /// The name of the first framing header seen twice.
    pub(super) repeated: Option<&'static str>,
}

impl<'a> Framing<'a> {
    /// Records a header if it is a framing header; returns true if it was one.
    pub(super) fn record(&mut self, name: &str, value: &'a [u8]) -> bool {
        let (slot, canonical) = if name.eq_ignore_ascii_case("content-length") {
            (&mut self.content_length, "content-length")
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            (&mut self.transfer_encoding, "transfer-encoding")
        } else {
            return false;
        };
        if slot.is_some() {
            self.repeated.get_or_insert(canonical);
        } else {
            *slot = Some(value);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `httparse` says about a whole buffer as a request head: `Some(end)` or `None` (partial or error).
    fn httparse_request_end(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
        let mut headers = vec![httparse::EMPTY_HEADER; buf.len() + 1];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(buf).map(|s| match s {
            httparse::Status::Complete(n) => Some(n),
            httparse::Status::Partial => None,
        })
    }

    fn httparse_response_end(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
        let mut headers = vec![httparse::EMPTY_HEADER; buf.len() + 1];
        let mut res = httparse::Response::new(&mut headers);
        res.parse(buf).map(|s| match s {
            httparse::Status::Complete(n) => Some(n),
            httparse::Status::Partial => None,
        })
    }

    fn scan_whole(buf: &[u8]) -> Option<usize> {
        BlankLineScanner::head().scan(buf)
    }

    fn scan_bytewise(buf: &[u8]) -> Option<usize> {
        let mut s = BlankLineScanner::head();
        (1..=buf.len()).find_map(|n| s.scan(&buf[..n]))
    }

    #[test]
    fn scanner_finds_crlf_and_lf_ends() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", Some(18)),
            (b"GET / HTTP/1.1\n\n", Some(16)),
            (b"GET / HTTP/1.1\r\nA: b\n\r\nrest", Some(23)),
            (b"GET / HTTP/1.1\nA: b\r\n\nrest", Some(22)),
            (b"\r\n\nGET / HTTP/1.1\r\n\r\n", Some(21)),
            (b"GET / HTTP/1.1\r\nA: b\r\n", None),
            (b"GET / HTTP/1.1\r\nA: b\r\n\r", None),
            (b"\r\n\r\n", None),
        ];
        for (buf, end) in cases {
            assert_eq!(scan_whole(buf), *end, "{:?}", String::from_utf8_lossy(buf));
            assert_eq!(
                scan_bytewise(buf),
                *end,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
            if let Some(e) = end {
                assert_eq!(httparse_request_end(buf), Ok(Some(*e)));
            }
        }
    }

    #[test]
    fn section_scanner_accepts_an_empty_section() {
        assert_eq!(BlankLineScanner::section(3).scan(b"0\r\n\r\n"), Some(5));
        assert_eq!(BlankLineScanner::section(3).scan(b"0\r\n\n"), Some(4));
        assert_eq!(
            BlankLineScanner::section(3).scan(b"0\r\nT: x\r\n\r\n"),
            Some(11)
        );
        assert_eq!(BlankLineScanner::section(3).scan(b"0\r\nT: x\r\n"), None);
    }

    #[test]
    fn find_lf_matches_position() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                if at < len {
                    v[at] = b'\n';
                }
                assert_eq!(find_lf(&v), v.iter().position(|&b| b == b'\n'));
            }
        }
        // Bytes that trip naive zero-byte tricks (0x0b, 0x8a, 0x0a in high positions).
        let v = [0x0b, 0x8a, 0x01, 0xff, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0a];
        assert_eq!(find_lf(&v), Some(9));
    }

    #[test]
    fn start_check_mirrors_httparse() {
        let mut c = StartCheck::new(StartLine::Request);
        assert_eq!(c.check(b"\r\nGET "), Ok(()));
        let mut c = StartCheck::new(StartLine::Request);
        assert_eq!(
            c.check(b"\x16\x03\x01"),
            Err(StartError::Http(httparse::Error::Token))
        );
        let mut c = StartCheck::new(StartLine::Request);
        assert_eq!(
            c.check(b" GET"),
            Err(StartError::Http(httparse::Error::Token))
        );
        let mut c = StartCheck::new(StartLine::Request);
        assert_eq!(
            c.check(b"\rX"),
            Err(StartError::Http(httparse::Error::NewLine))
        );
        let mut c = StartCheck::new(StartLine::Response);
        assert_eq!(c.check(b"\nHTTP/1.1 200"), Ok(()));
        let mut c = StartCheck::new(StartLine::Response);
        assert_eq!(c.check(b"HTTP/1.0 200"), Err(StartError::BadVersion));
        let mut c = StartCheck::new(StartLine::Response);
        assert_eq!(c.check(b"SSH-2.0"), Err(StartError::BadVersion));
    }

    #[test]
    fn bounded_append_never_exceeds_the_limit() {
        let mut buf = Vec::new();
        assert_eq!(append_bounded(&mut buf, b"abc", 5), 3);
        assert_eq!(append_bounded(&mut buf, b"defg", 5), 2);
        assert_eq!(append_bounded(&mut buf, b"h", 5), 0);
        assert_eq!(buf, b"abcde");
        assert!(buf.capacity() <= 5);
    }

    #[test]
    fn lexical_helpers() {
        assert!(is_digits(b"0"));
        assert!(!is_digits(b""));
        assert!(!is_digits(b"+1"));
        assert!(digits_nonzero(b"0001"));
        assert!(!digits_nonzero(b"000"));
        assert!(list_contains(b"a, Claim-Marker ,b", "claim-marker"));
        assert!(!list_contains(b"claim-markers", "claim-marker"));
        assert_eq!(delta_seconds(b"7"), Some(7));
        assert_eq!(delta_seconds(b"0"), None);
        assert_eq!(delta_seconds(b"99999999999999999999999"), Some(u64::MAX));
        assert_eq!(delta_seconds(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// Bytes from a small alphabet that makes line structure likely.
    fn head_like() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = prop::sample::select(
            &[
                b'G', b'E', b'T', b' ', b'/', b'H', b'P', b'1', b'.', b':', b'a', b'\r', b'\n',
                b'\t', 0x80, 0x00,
            ][..],
        );
        const PREFIXES: [&[u8]; 6] = [
            b"",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\n",
            b"\r\nGET /x HTTP/1.1\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200\n",
        ];
        let prefixes = prop::sample::select(&PREFIXES[..]);
        (prefixes, prop::collection::vec(alphabet, 0..48)).prop_map(|(p, mut v)| {
            let mut out = p.to_vec();
            out.append(&mut v);
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Scanner and `httparse` agree on where a head ends: whenever `httparse` completes a head the
        /// scanner found the same end, and the scanner never finds an end where `httparse` would want
        /// more bytes. Bytewise scanning equals whole scanning.
        #[test]
        fn scanner_agrees_with_httparse(buf in head_like()) {
            let scanned = scan_whole(&buf);
            prop_assert_eq!(scan_bytewise(&buf), scanned);
            for parse in [httparse_request_end, httparse_response_end] {
                if let Ok(Some(n)) = parse(&buf) {
                    prop_assert_eq!(scanned, Some(n));
                }
                if let Some(e) = scanned {
                    // On the head alone httparse is complete at the same end, or rejects it.
                    match parse(&buf[..e]) {
                        Ok(Some(n)) => prop_assert_eq!(n, e),
                        Ok(None) => prop_assert!(false, "httparse wants more after the scanner's end {}", e),
                        Err(_) => {}
                    }
                }
            }
        }

        /// The start check never rejects bytes that `httparse` accepts as a request or response start.
        #[test]
        fn start_check_is_no_stricter_than_httparse(buf in head_like()) {
            if httparse_request_end(&buf).is_ok() {
                prop_assert_eq!(StartCheck::new(StartLine::Request).check(&buf), Ok(()));
            }
            let mut headers = vec![httparse::EMPTY_HEADER; buf.len() + 1];
            let mut res = httparse::Response::new(&mut headers);
            if res.parse(&buf).is_ok() && res.version.is_none_or(|v| v == 1) {
                prop_assert_eq!(StartCheck::new(StartLine::Response).check(&buf), Ok(()));
            }
        }
    }
}
