use crate::address::{AddressError, MAX_COUNT, MAX_ID_LEN, RcAddress, SCHEME, is_rc_address};
use crate::headers::{has_surrounding_whitespace, is_valid_header_value};

/// Fuzz body for the `rc://` address grammar: the input, read as UTF-8 (invalid sequences replaced), is
/// parsed with `FromStr` and with `from_socket_address` (port 0, and a non-zero port taken from the first
/// byte). Parsing never panics, the two entry points agree, and every accepted address satisfies the
/// grammar's rules and round-trips through `Display`.
pub fn address(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let input: &str = &input;

    let parsed = input.parse::<RcAddress>();
    assert_eq!(
        RcAddress::from_socket_address(input, 0),
        parsed,
        "FromStr is from_socket_address with port 0"
    );

    // Rule 1 comes before rule 2, and rule 2 before everything else.
    let port = u32::from(data.first().copied().unwrap_or(0)) + 1;
    let expected = if is_rc_address(input) {
        AddressError::NonZeroPort { port }
    } else {
        AddressError::MissingScheme
    };
    assert_eq!(RcAddress::from_socket_address(input, port), Err(expected));

    match parsed {
        Ok(addr) => check_valid(&addr),
        Err(err) => {
            assert_eq!(is_rc_address(input), err != AddressError::MissingScheme);
            assert!(!err.to_string().is_empty());
        }
    }
}

/// The invariants of an accepted address.
fn check_valid(addr: &RcAddress) {
    assert!((1..=MAX_COUNT).contains(&addr.count()));
    assert!(!addr.node().is_empty());
    assert!(!addr.cluster().is_empty());
    assert!(!addr.target_cluster().is_empty());
    for id in [
        addr.node(),
        addr.cluster(),
        addr.tenant(),
        addr.target_cluster(),
    ] {
        assert!(id.len() <= MAX_ID_LEN);
        assert!(is_valid_header_value(id.as_bytes()));
        assert!(!has_surrounding_whitespace(id.as_bytes()));
        assert!(!id.contains(['@', ':']));
    }

    let rendered = addr.to_string();
    assert!(rendered.starts_with(SCHEME));
    assert_eq!(rendered.parse::<RcAddress>().as_ref(), Ok(addr));
    assert_eq!(
        RcAddress::new(
            addr.node(),
            addr.cluster(),
            addr.tenant(),
            addr.target_cluster(),
            addr.count()
        )
        .as_ref(),
        Ok(addr)
    );
}
