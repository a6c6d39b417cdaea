//! Small HTTP/1.1 lexical helpers shared by the address grammar and the handshake codec.

/// True if `value` is a valid HTTP/1.1 field value as written on the wire: visible ASCII, space,
/// horizontal tab and obs-text (bytes ≥ 0x80), with no control characters (CR, LF, NUL, DEL, …).
pub(crate) fn is_valid_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

/// True if `value` begins or ends with a space or a horizontal tab, which HTTP would strip.
pub(crate) fn has_surrounding_whitespace(value: &[u8]) -> bool {
    matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t'))
}

/// True if `name` is a non-empty HTTP token (RFC 9110 `tchar`s), i.e. a valid header name or method.
pub(crate) fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert!(is_valid_header_value(b"node-1"));
        assert!(is_valid_header_value(b"a b\tc\xc3\xa9"));
        assert!(is_valid_header_value(b""));
        assert!(!is_valid_header_value(b"a\r\nb"));
        assert!(!is_valid_header_value(b"a\0"));
        assert!(!is_valid_header_value(b"\x7f"));
        assert!(has_surrounding_whitespace(b" a"));
        assert!(has_surrounding_whitespace(b"a\t"));
        assert!(!has_surrounding_whitespace(b"a b"));
        assert!(!has_surrounding_whitespace(b""));
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"GET"));
        assert!(is_token(b"x-envoy-reverse-tunnel-node-id"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
    }
}
