//! Tests of the `rc://` address grammar (`revtun_core::address`): every rule with its exact Envoy error
//! text, `RcAddress::new`, round trips, property tests, and the committed fuzz corpus.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use revtun_core::address::{
    AddressError, IdField, MAX_COUNT, MAX_ID_LEN, RcAddress, SCHEME, is_rc_address,
};

const MISSING_SCHEME: &str = "Address must start with 'rc://' for reverse connection resolver. Expected format: rc://src_node_id:src_cluster_id:src_tenant_id@cluster_name:count";
const INVALID_FORMAT: &str = "Invalid reverse connection address format. Expected: rc://src_node_id:src_cluster_id:src_tenant_id@cluster_name:count";
const INVALID_SOURCE_INFO: &str =
    "Invalid source info format. Expected: src_node_id:src_cluster_id:src_tenant_id";

const FIELDS: [IdField; 4] = [
    IdField::SourceNode,
    IdField::SourceCluster,
    IdField::SourceTenant,
    IdField::RemoteCluster,
];

/// `rc://node:cluster:tenant@target:7` with field `i` (node, cluster, tenant, target) replaced.
fn with_field(i: usize, value: &str) -> String {
    let mut parts = ["node", "cluster", "tenant", "target"];
    parts[i] = value;
    format!("rc://{}:{}:{}@{}:7", parts[0], parts[1], parts[2], parts[3])
}

/// The parts of an address: node, cluster, tenant, target cluster, count.
type Parts<'a> = (&'a str, &'a str, &'a str, &'a str, u32);

fn parts(addr: &RcAddress) -> Parts<'_> {
    (
        addr.node(),
        addr.cluster(),
        addr.tenant(),
        addr.target_cluster(),
        addr.count(),
    )
}

/// `input` (port 0) parses, with both entry points, to `want`; it round-trips and equals `new(want)`.
fn accepts(input: &str, want: Parts<'_>) {
    let addr = input
        .parse::<RcAddress>()
        .unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(parts(&addr), want, "{input:?}");
    assert_eq!(RcAddress::from_socket_address(input, 0).as_ref(), Ok(&addr));
    assert_eq!(addr.to_string().parse::<RcAddress>().as_ref(), Ok(&addr));
    let (node, cluster, tenant, target, count) = want;
    assert_eq!(
        RcAddress::new(node, cluster, tenant, target, count),
        Ok(addr)
    );
}

/// `input` with `port` fails with `error`, whose text is exactly `text`. With port 0 `FromStr` agrees.
fn rejects_with_port(input: &str, port: u32, error: &AddressError, text: &str) {
    let got = RcAddress::from_socket_address(input, port);
    assert_eq!(got.as_ref(), Err(error), "{input:?} port {port}");
    if port == 0 {
        assert_eq!(input.parse::<RcAddress>().as_ref(), Err(error), "{input:?}");
    }
    assert_eq!(error.to_string(), text, "{input:?} port {port}");
}

fn rejects(input: &str, error: &AddressError, text: &str) {
    rejects_with_port(input, 0, error, text);
}

#[test]
fn valid_addresses() {
    let cases: [(&str, Parts<'_>); 6] = [
        (
            "rc://node-1:downstream-cluster:tenant-a@upstream-cluster:3",
            (
                "node-1",
                "downstream-cluster",
                "tenant-a",
                "upstream-cluster",
                3,
            ),
        ),
        ("rc://n:c:@t:1", ("n", "c", "", "t", 1)),
        (
            "rc://nœud:集群:テナント@cible-ü:2",
            ("nœud", "集群", "テナント", "cible-ü", 2),
        ),
        ("rc://a b:c\td:e f@g h:4", ("a b", "c\td", "e f", "g h", 4)),
        (
            "rc://n/1.x:c_2-y:t=3@up+st/*:5",
            ("n/1.x", "c_2-y", "t=3", "up+st/*", 5),
        ),
        (
            "rc://n\u{80}:c\u{ff}:\u{fffd}@\u{10ffff}:6",
            ("n\u{80}", "c\u{ff}", "\u{fffd}", "\u{10ffff}", 6),
        ),
    ];
    for (input, want) in cases {
        accepts(input, want);
    }
}

#[test]
fn rule_1_scheme() {
    let text = MISSING_SCHEME;
    rejects(
        "node:cluster:tenant@target:1",
        &AddressError::MissingScheme,
        text,
    );
    for input in [
        "",
        "rc:/",
        "rc:",
        "RC://n:c:t@x:1",
        " rc://n:c:t@x:1",
        "tcp://n:c:t@x:1",
    ] {
        rejects(input, &AddressError::MissingScheme, text);
    }
    // Rule 1 comes before rule 2.
    rejects_with_port("n:c:t@x:1", 80, &AddressError::MissingScheme, text);
}

#[test]
fn rule_2_port() {
    let port = |port| AddressError::NonZeroPort { port };
    let text = "Only port 0 is supported for reverse connections. Got port: 1";
    rejects_with_port("rc://n:c:t@x:1", 1, &port(1), text);
    let text = "Only port 0 is supported for reverse connections. Got port: 4294967295";
    rejects_with_port("rc://n:c:t@x:1", u32::MAX, &port(u32::MAX), text);
    // Rule 2 comes before every rule about the rest of the address.
    let text = "Only port 0 is supported for reverse connections. Got port: 8080";
    rejects_with_port("rc://garbage", 8080, &port(8080), text);
    rejects_with_port("rc://", 8080, &port(8080), text);
    accepts("rc://n:c:t@x:1", ("n", "c", "t", "x", 1));
}

#[test]
fn rule_3_exactly_one_at() {
    for input in [
        "rc://",
        "rc://n:c:t:x:1",
        "rc://n:c:t@x@y:1",
        "rc://n@c:t@x@y:1",
        "rc://n@1:c:t@x:1",
        "rc://n:c:t@x:1@",
        "rc://@@",
    ] {
        rejects(input, &AddressError::InvalidFormat, INVALID_FORMAT);
    }
}

#[test]
fn rule_4_three_source_fields() {
    for input in [
        "rc://n:c@x:1",
        "rc://n@x:1",
        "rc://n:c:t:u@x:1",
        "rc://:::@x:1",
        "rc://@x:1",
        // Rule 4 comes before rules 5 and 6.
        "rc://n:c@x",
        "rc://::::@",
    ] {
        rejects(input, &AddressError::InvalidSourceInfo, INVALID_SOURCE_INFO);
    }
}

#[test]
fn rule_5_node_and_cluster_present() {
    let node = "Source node ID cannot be empty";
    let cluster = "Source cluster ID cannot be empty";
    rejects("rc://:c:t@x:1", &AddressError::EmptyNode, node);
    rejects("rc://n::t@x:1", &AddressError::EmptyCluster, cluster);
    rejects("rc://::@:", &AddressError::EmptyNode, node);
    // Rule 5 comes before rule 6; the tenant may be empty.
    rejects("rc://n::t@x", &AddressError::EmptyCluster, cluster);
    accepts("rc://n:c:@x:1", ("n", "c", "", "x", 1));
}

#[test]
fn rule_6_two_cluster_config_fields() {
    let error = |part: &str| AddressError::InvalidClusterConfig { part: part.into() };
    rejects(
        "rc://n:c:t@upstream",
        &error("upstream"),
        "Invalid cluster config format: upstream. Expected: cluster_name:count",
    );
    rejects(
        "rc://n:c:t@",
        &error(""),
        "Invalid cluster config format: . Expected: cluster_name:count",
    );
    rejects(
        "rc://n:c:t@up:stream:3",
        &error("up:stream:3"),
        "Invalid cluster config format: up:stream:3. Expected: cluster_name:count",
    );
    // Rule 6 comes before rule 7.
    rejects(
        "rc://n:c:t@x:y:z",
        &error("x:y:z"),
        "Invalid cluster config format: x:y:z. Expected: cluster_name:count",
    );
}

#[test]
fn rule_7_count_syntax() {
    let valid = [
        ("+5", 5),
        (" 5 ", 5),
        ("\t5\n", 5),
        ("\x0b5\x0c", 5),
        ("\r +5 \r", 5),
        ("007", 7),
        ("+0001024", 1024),
    ];
    for (count, want) in valid {
        accepts(&format!("rc://n:c:t@x:{count}"), ("n", "c", "t", "x", want));
    }

    rejects(
        "rc://n:c:t@x:-1",
        &AddressError::InvalidCount { count: "-1".into() },
        "Invalid connection count: -1",
    );
    let invalid = [
        "-1",
        "-0",
        "0x10",
        "0X10",
        "5a",
        "",
        " \t",
        "+",
        "++5",
        "+-5",
        "+ 5",
        "1 2",
        "1_000",
        "1e3",
        "5.0",
        "\u{a0}5",
        "٣",
        "５",
        "4294967296",
        "99999999999999999999",
    ];
    for count in invalid {
        let error = AddressError::InvalidCount {
            count: count.into(),
        };
        let text = format!("Invalid connection count: {count}");
        rejects(&format!("rc://n:c:t@x:{count}"), &error, &text);
    }
    // Rule 7 comes before rule 9.
    let error = AddressError::InvalidCount { count: "x".into() };
    rejects("rc://n:c:t@:x", &error, "Invalid connection count: x");
}

#[test]
fn rule_8_count_range() {
    let error = |count| AddressError::CountOutOfRange { count };
    rejects(
        "rc://n:c:t@x:4294967295",
        &error(u32::MAX),
        "Connection count 4294967295 is outside the supported range [1, 1024]",
    );
    let zero = "Connection count 0 is outside the supported range [1, 1024]";
    rejects("rc://n:c:t@x:0", &error(0), zero);
    rejects("rc://n:c:t@x:+000", &error(0), zero);
    // Rule 8 comes before rule 9.
    rejects("rc://n:c:t@:0", &error(0), zero);
    let text = "Connection count 1025 is outside the supported range [1, 1024]";
    rejects("rc://n:c:t@x:1025", &error(1025), text);
    accepts("rc://n:c:t@x:1", ("n", "c", "t", "x", 1));
    accepts("rc://n:c:t@x:1024", ("n", "c", "t", "x", MAX_COUNT));
}

#[test]
fn rule_9_target_cluster_present() {
    let text = "Remote cluster name cannot be empty";
    rejects("rc://n:c:t@:1", &AddressError::EmptyTargetCluster, text);
    // Rule 9 comes before rule 10.
    let input = format!("rc://{}:c:\n@:1", "n".repeat(300));
    rejects(&input, &AddressError::EmptyTargetCluster, text);
}

#[test]
fn rule_10_identifiers() {
    for (i, field) in FIELDS.into_iter().enumerate() {
        let too_long = AddressError::IdTooLong { field };
        let too_long_text =
            format!("{field} exceeds the 255-byte limit for reverse connection identifiers");
        let bad_chars = AddressError::InvalidIdChars { field };
        let bad_chars_text =
            format!("{field} contains characters that are invalid in an HTTP header value");

        // 255 bytes is allowed, also in 2-byte characters; 256 bytes is not.
        for value in ["a".repeat(MAX_ID_LEN), format!("{}a", "é".repeat(127))] {
            let addr = with_field(i, &value)
                .parse::<RcAddress>()
                .expect("255 bytes");
            let got = [
                addr.node(),
                addr.cluster(),
                addr.tenant(),
                addr.target_cluster(),
            ];
            assert_eq!(got[i], value, "{field}");
        }
        for value in [
            "a".repeat(MAX_ID_LEN + 1),
            "é".repeat(128),
            "a".repeat(1000),
        ] {
            rejects(&with_field(i, &value), &too_long, &too_long_text);
        }
        // Length is checked before characters.
        rejects(
            &with_field(i, &format!("{}\n", "a".repeat(MAX_ID_LEN))),
            &too_long,
            &too_long_text,
        );

        let control = [
            "\0", "a\0b", "a\x7f", "a\rb", "a\nb", "a\r\nb", "\x01", "\x1b[0m", "\x0b",
        ];
        let surrounding = [" a", "a ", "\ta", "a\t", " ", "\t", "  a  ", "\t a b \t"];
        for value in control.into_iter().chain(surrounding) {
            rejects(&with_field(i, value), &bad_chars, &bad_chars_text);
        }
    }

    // The literal texts, once each.
    let cases = [
        (
            "rc://\x7f:c:t@x:1",
            "Source node ID contains characters that are invalid in an HTTP header value",
        ),
        (
            "rc://n:\0:t@x:1",
            "Source cluster ID contains characters that are invalid in an HTTP header value",
        ),
        (
            "rc://n:c: t@x:1",
            "Source tenant ID contains characters that are invalid in an HTTP header value",
        ),
        (
            "rc://n:c:t@x\t:1",
            "Remote cluster name contains characters that are invalid in an HTTP header value",
        ),
    ];
    for ((input, text), field) in cases.into_iter().zip(FIELDS) {
        rejects(input, &AddressError::InvalidIdChars { field }, text);
    }
    let long = "x".repeat(256);
    let texts = [
        "Source node ID exceeds the 255-byte limit for reverse connection identifiers",
        "Source cluster ID exceeds the 255-byte limit for reverse connection identifiers",
        "Source tenant ID exceeds the 255-byte limit for reverse connection identifiers",
        "Remote cluster name exceeds the 255-byte limit for reverse connection identifiers",
    ];
    for (i, (text, field)) in texts.into_iter().zip(FIELDS).enumerate() {
        rejects(
            &with_field(i, &long),
            &AddressError::IdTooLong { field },
            text,
        );
    }

    // Fields are checked in order: node, cluster, tenant, remote cluster.
    let node_chars = AddressError::InvalidIdChars {
        field: IdField::SourceNode,
    };
    let node_text = "Source node ID contains characters that are invalid in an HTTP header value";
    rejects("rc://\x7f:\0:t@x:1", &node_chars, node_text);
    let tenant_chars = AddressError::InvalidIdChars {
        field: IdField::SourceTenant,
    };
    let tenant_text =
        "Source tenant ID contains characters that are invalid in an HTTP header value";
    rejects(&format!("rc://n:c:\r@{long}:1"), &tenant_chars, tenant_text);
}

#[test]
fn new_checks_rules_in_parse_order() {
    use AddressError as E;
    let long = "x".repeat(256);
    let cases: Vec<(Parts<'_>, AddressError)> = vec![
        (("", "c", "t", "x", 1), E::EmptyNode),
        (("n", "", "t", "x", 1), E::EmptyCluster),
        (("", "", "t", "", 0), E::EmptyNode),
        (("n", "c", "t", "x", 0), E::CountOutOfRange { count: 0 }),
        (
            ("n", "c", "t", "x", 1025),
            E::CountOutOfRange { count: 1025 },
        ),
        (("n", "c", "t", "", 0), E::CountOutOfRange { count: 0 }),
        (("n", "c", "t", "", 1), E::EmptyTargetCluster),
        ((&long, "c", "t", "", 1), E::EmptyTargetCluster),
        (
            (&long, "\n", "t", "x", 1),
            E::IdTooLong {
                field: IdField::SourceNode,
            },
        ),
        (
            ("n", &long, "t", "x", 1),
            E::IdTooLong {
                field: IdField::SourceCluster,
            },
        ),
        (
            ("n", "c", &long, "x", 1),
            E::IdTooLong {
                field: IdField::SourceTenant,
            },
        ),
        (
            ("n", "c", "t", &long, 1),
            E::IdTooLong {
                field: IdField::RemoteCluster,
            },
        ),
        (
            ("n\r", "c", "t", &long, 1),
            E::InvalidIdChars {
                field: IdField::SourceNode,
            },
        ),
        (
            ("n", " c", "t", "x", 1),
            E::InvalidIdChars {
                field: IdField::SourceCluster,
            },
        ),
        (
            ("n", "c", "t\t", "x", 1),
            E::InvalidIdChars {
                field: IdField::SourceTenant,
            },
        ),
        (
            ("n", "c", "t", "\x7f", 1),
            E::InvalidIdChars {
                field: IdField::RemoteCluster,
            },
        ),
        // Delimiters inside a part: the error parsing the rendered address would give.
        (("n@", "c", "t", "x", 1), E::InvalidFormat),
        (("n", "c", "t", "x@y", 1), E::InvalidFormat),
        (("", "", "", "@", 0), E::InvalidFormat),
        (("n:1", "c", "t", "x", 1), E::InvalidSourceInfo),
        (("n", "c", ":", "x", 1), E::InvalidSourceInfo),
        (("", "c", ":", "x", 1), E::InvalidSourceInfo),
        (("", "c", "t", "x:y", 1), E::EmptyNode),
        (
            ("n", "c", "t", "x:y", 0),
            E::InvalidClusterConfig {
                part: "x:y:0".into(),
            },
        ),
    ];
    for ((node, cluster, tenant, target, count), want) in cases {
        let got = RcAddress::new(node, cluster, tenant, target, count);
        assert_eq!(
            got,
            Err(want),
            "new({node:?}, {cluster:?}, {tenant:?}, {target:?}, {count})"
        );
        let rendered = format!("rc://{node}:{cluster}:{tenant}@{target}:{count}");
        assert_eq!(rendered.parse::<RcAddress>(), got, "{rendered:?}");
    }

    let addr = RcAddress::new("n", "c", "", "x", MAX_COUNT).expect("valid");
    assert_eq!(
        (
            addr.node(),
            addr.cluster(),
            addr.tenant(),
            addr.target_cluster(),
            addr.count()
        ),
        ("n", "c", "", "x", 1024)
    );
    assert_eq!(addr.to_string(), "rc://n:c:@x:1024");
}

#[test]
fn display_is_canonical() {
    let addr: RcAddress = "rc://n:c:t@x:\t+0042 ".parse().expect("valid");
    assert_eq!(addr.to_string(), "rc://n:c:t@x:42");
    assert_eq!(addr, RcAddress::new("n", "c", "t", "x", 42).expect("valid"));
    assert_eq!(addr.to_string().parse::<RcAddress>(), Ok(addr));
}

#[test]
fn id_field_names() {
    let names: Vec<String> = FIELDS.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "Source node ID",
            "Source cluster ID",
            "Source tenant ID",
            "Remote cluster name"
        ]
    );
}

#[test]
fn is_rc_address_checks_the_prefix_only() {
    assert_eq!(SCHEME, "rc://");
    assert!(is_rc_address("rc://"));
    assert!(is_rc_address("rc://n:c:t@x:1"));
    assert!(is_rc_address("rc://@@@"));
    assert!(!is_rc_address(""));
    assert!(!is_rc_address("rc:/"));
    assert!(!is_rc_address("Rc://n:c:t@x:1"));
    assert!(!is_rc_address("0.0.0.0"));
    assert!(!is_rc_address(" rc://n:c:t@x:1"));
}

#[test]
fn ordering_and_hashing_follow_the_fields() {
    use std::collections::BTreeSet;
    let a = RcAddress::new("a", "c", "t", "x", 2).expect("valid");
    let b = RcAddress::new("b", "c", "t", "x", 1).expect("valid");
    let a1 = RcAddress::new("a", "c", "t", "x", 1).expect("valid");
    assert!(a < b);
    assert!(a1 < a);
    let set: BTreeSet<_> = [b.clone(), a.clone(), a1.clone(), a.clone()]
        .into_iter()
        .collect();
    assert_eq!(set.into_iter().collect::<Vec<_>>(), [a1, a, b]);
}

// Property tests: fixed seed, so CI replays the same cases.

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x7265_7674_756e),
        ..ProptestConfig::default()
    }
}

/// A valid identifier: header-value characters other than `:` and `@`, not beginning or ending with a
/// space or tab, at most 255 bytes.
fn id(min_len: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        // Mostly ASCII.
        "[a-zA-Z0-9._ -]{0,40}",
        // Any allowed character, including obs-text (non-ASCII) and inner tabs.
        "[^\\x00-\\x08\\x0a-\\x1f\\x7f:@]{0,300}",
    ]
    .prop_map(|s| {
        let mut s = s.trim_matches([' ', '\t']).to_owned();
        while s.len() > MAX_ID_LEN {
            s.pop();
        }
        s.trim_end_matches([' ', '\t']).to_owned()
    })
    .prop_filter("too short", move |s| s.len() >= min_len)
}

/// Ways of writing `count` that absl::SimpleAtoi accepts.
fn written_count() -> impl Strategy<Value = (u32, String)> {
    let space = "[ \t\n\x0b\x0c\r]{0,3}";
    (any::<u32>(), space, any::<bool>(), 0usize..3, space).prop_map(
        |(count, pre, plus, zeros, post)| {
            let sign = if plus { "+" } else { "" };
            (
                count,
                format!("{pre}{sign}{}{count}{post}", "0".repeat(zeros)),
            )
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_addresses_round_trip(
        node in id(1), cluster in id(1), tenant in id(0), target in id(1), count in 1..=MAX_COUNT,
    ) {
        let addr = RcAddress::new(&node, &cluster, &tenant, &target, count).expect("valid parts");
        let rendered = addr.to_string();
        prop_assert_eq!(&rendered, &format!("rc://{node}:{cluster}:{tenant}@{target}:{count}"));
        prop_assert_eq!(rendered.parse::<RcAddress>(), Ok(addr.clone()));
        prop_assert_eq!(RcAddress::from_socket_address(&rendered, 0), Ok(addr));
    }

    #[test]
    fn new_is_parse_of_the_rendered_parts(
        node in ".{0,8}", cluster in ".{0,8}", tenant in ".{0,8}", target in "[^@]{0,8}",
        count in prop_oneof![0..=MAX_COUNT + 1, any::<u32>()],
    ) {
        let built = RcAddress::new(&node, &cluster, &tenant, &target, count);
        let parsed = format!("rc://{node}:{cluster}:{tenant}@{target}:{count}").parse::<RcAddress>();
        prop_assert_eq!(&built, &parsed);
        if let Ok(addr) = built {
            prop_assert_eq!(addr.to_string().parse::<RcAddress>(), Ok(addr));
        }
    }

    #[test]
    fn counts_are_read_like_simple_atoi((count, written) in written_count()) {
        let got = format!("rc://n:c:t@x:{written}").parse::<RcAddress>();
        if (1..=MAX_COUNT).contains(&count) {
            prop_assert_eq!(got.map(|a| a.count()), Ok(count));
        } else {
            prop_assert_eq!(got, Err(AddressError::CountOutOfRange { count }));
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>(), port in any::<u32>()) {
        check_arbitrary(&s, port)?;
    }

    #[test]
    fn arbitrary_rc_strings_never_panic(rest in ".{0,64}", port in prop_oneof![Just(0u32), any::<u32>()]) {
        check_arbitrary(&format!("rc://{rest}"), port)?;
    }

    #[test]
    fn near_valid_strings_never_panic(
        rest in "[a-c:@ \t\n\x0b\x0c\r+0-9\x00\x7fé-]{0,24}", port in prop_oneof![Just(0u32), any::<u32>()],
    ) {
        check_arbitrary(&format!("rc://{rest}"), port)?;
    }
}

fn check_arbitrary(s: &str, port: u32) -> Result<(), TestCaseError> {
    let got = RcAddress::from_socket_address(s, port);
    if !is_rc_address(s) {
        prop_assert_eq!(got, Err(AddressError::MissingScheme));
        return Ok(());
    }
    if port != 0 {
        prop_assert_eq!(got, Err(AddressError::NonZeroPort { port }));
        return Ok(());
    }
    prop_assert_eq!(s.parse::<RcAddress>(), got.clone());
    match got {
        Ok(addr) => {
            prop_assert!((1..=MAX_COUNT).contains(&addr.count()));
            prop_assert_eq!(addr.to_string().parse::<RcAddress>(), Ok(addr));
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

// The committed fuzz seed corpus: `valid-*` seeds parse, every other hand-written seed is rejected.
// Files named by their SHA-1 (40 hex digits) were found by the fuzzer and say nothing by their name;
// `tests/tests/fuzz_corpus.rs` replays every file through the fuzz body.

fn corpus() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/address");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus/address exists")
        .map(|entry| {
            let path = entry.expect("readable corpus dir").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            #[allow(
                clippy::disallowed_methods,
                reason = "a test reading the committed corpus"
            )]
            let data = std::fs::read(&path).expect("readable seed");
            (name, String::from_utf8_lossy(&data).into_owned())
        })
        .filter(|(name, _)| !is_fuzzer_found(name))
        .collect();
    seeds.sort();
    seeds
}

fn is_fuzzer_found(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn corpus_seeds_are_what_their_names_say() {
    let seeds = corpus();
    assert!(seeds.len() >= 15, "{} hand-written seeds", seeds.len());
    for (name, input) in seeds {
        let got = input.parse::<RcAddress>();
        assert_eq!(name.starts_with("valid-"), got.is_ok(), "{name}: {got:?}");
    }
}
