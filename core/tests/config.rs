//! The bootstrap configuration model (`revtun_core::config`): every example parses, every rule has an
//! exact `path: message` error test, several errors are reported together, defaults and durations.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use revtun_core::address::RcAddress;
use revtun_core::config::{
    AuthPlan, Bootstrap, ClusterKind, ConfigError, DataSource, DnsLookupFamily, Endpoint, RbacPlan,
    parse, parse_duration,
};
use revtun_core::handshake::HeadLimits;
use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::policy::CertificateIdentity;
use revtun_core::responder::ResponderConfig;

// ---------------------------------------------------------------------------------------------------
// Fixtures and helpers.

/// A minimal valid initiator: one rc:// listener, its target cluster and its local service.
const INITIATOR: &str = r#"
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    stat_prefix: downstream_rc
static_resources:
  listeners:
  - name: rc
    address:
      socket_address:
        address: "rc://node-1:edge:tenant-a@upstream:2"
        port_value: 0
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: local
  clusters:
  - name: upstream
    type: STATIC
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 9000 }
  - name: local
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8000 } } }
"#;

/// A minimal valid responder: a handshake listener, a front door and its reverse-connection cluster.
const RESPONDER: &str = r#"
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.upstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface
    stat_prefix: upstream_rc
static_resources:
  listeners:
  - name: handshake
    address:
      socket_address: { address: 127.0.0.1, port_value: 9000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: 2s
  - name: front_door
    address:
      socket_address: { address: 127.0.0.1, port_value: 9001 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: front
          cluster: tunnels
  clusters:
  - name: tunnels
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.reverse_connection
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig
        host_id_format: node-1
"#;

/// `base` with `from` (which must occur exactly once) replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(
        base.matches(from).count(),
        1,
        "fixture edit: {from:?} must occur exactly once"
    );
    base.replacen(from, to, 1)
}

/// Applies several edits in order.
fn edits(base: &str, pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .fold(base.to_owned(), |yaml, (from, to)| edit(&yaml, from, to))
}

/// The plan, or a panic listing the errors.
fn ok(yaml: &str) -> Bootstrap {
    match parse(yaml) {
        Ok(plan) => plan,
        Err(errors) => panic!("expected no errors, got:\n{errors}"),
    }
}

/// The `path: message` lines.
fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(plan) => panic!("expected errors, got a plan: {plan:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that the file has exactly this one error.
#[track_caller]
fn assert_error(yaml: &str, line: &str) {
    assert_eq!(errors(yaml), vec![line.to_owned()]);
}

const UPSTREAM_EXT: &str = r#"- name: envoy.bootstrap.reverse_tunnel.upstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface
    stat_prefix: upstream_rc
"#;

const DOWNSTREAM_TYPED: &str = "bootstrap_extensions[0].typed_config";
const RC_ADDRESS: &str = "static_resources.listeners[0].address.socket_address.address";

// ---------------------------------------------------------------------------------------------------
// Examples.

/// Test code may read files: the rule against I/O is for the library.
#[allow(clippy::disallowed_methods)]
fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml {
            continue;
        }
        let text = read(&path);
        if let Err(errors) = parse(&text) {
            panic!("{} does not parse:\n{errors}", path.display());
        }
        assert!(
            text.trim_start().starts_with('#'),
            "{} starts with a header comment",
            path.display()
        );
        names.push(path.file_name().map(|n| n.to_string_lossy().into_owned()));
    }
    names.sort();
    assert!(
        names.len() >= 3,
        "examples/ holds the seed's configurations: {names:?}"
    );
}

fn example(name: &str) -> Bootstrap {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    ok(&read(&path))
}

#[test]
fn simple_downstream_example() {
    let plan = example("simple-downstream.yaml");
    assert_eq!(plan.admin, Some("127.0.0.1:9901".parse().unwrap()));
    assert!(plan.responder.is_none());
    assert!(plan.front_doors.is_empty());
    let initiator = plan.initiator.expect("initiator");
    let [listener] = initiator.listeners.as_slice() else {
        panic!("one rc:// listener");
    };
    assert_eq!(listener.name, "reverse_listener");
    assert_eq!(
        listener.addresses,
        vec![
            "rc://node-1:downstream-cluster:tenant-a@upstream-cluster:3"
                .parse::<RcAddress>()
                .unwrap()
        ]
    );
    assert_eq!(listener.config.node, "node-1");
    assert_eq!(listener.config.stat_prefix, "downstream_rc");
    assert_eq!(
        listener.config.targets,
        vec![TargetCluster {
            name: "upstream-cluster".into(),
            count: 3
        }]
    );
    assert_eq!(listener.tcp_proxy.cluster, "local-service");
    let upstream = &plan.clusters["upstream-cluster"];
    assert_eq!(upstream.kind, ClusterKind::LogicalDns);
    assert_eq!(upstream.dns_lookup_family, DnsLookupFamily::V4Only);
    assert_eq!(
        upstream.endpoints,
        vec![Endpoint {
            host: "127.0.0.1".into(),
            port: 8080
        }]
    );
    assert_eq!(plan.clusters["local-service"].kind, ClusterKind::Static);
}

#[test]
fn simple_upstream_example() {
    let plan = example("simple-upstream.yaml");
    assert_eq!(plan.admin, Some("127.0.0.1:9902".parse().unwrap()));
    assert!(plan.initiator.is_none());
    let responder = plan.responder.expect("responder");
    assert_eq!(responder.config.stat_prefix, "upstream_rc");
    let [listener] = responder.listeners.as_slice() else {
        panic!("one handshake listener");
    };
    assert_eq!(listener.name, "upstream_listener");
    let binds: Vec<SocketAddr> = vec![
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:8082".parse().unwrap(),
    ];
    assert_eq!(listener.binds, binds);
    let [door] = plan.front_doors.as_slice() else {
        panic!("one front door");
    };
    assert_eq!(door.name, "front_door");
    assert_eq!(door.binds, vec!["127.0.0.1:8081".parse().unwrap()]);
    assert_eq!(
        (door.cluster.as_str(), door.claim_id.as_str()),
        ("backend", "node-1")
    );
    assert_eq!(door.tenant, None);
}

#[test]
fn multiple_clusters_example() {
    let plan = example("multiple-clusters-downstream.yaml");
    let initiator = plan.initiator.expect("initiator");
    let listener = &initiator.listeners[0];
    assert_eq!(
        listener.config.targets,
        vec![
            TargetCluster {
                name: "cluster-a".into(),
                count: 2
            },
            TargetCluster {
                name: "cluster-b".into(),
                count: 3
            },
        ]
    );
    assert_eq!(listener.tcp_proxy.cluster, "dynamic_cluster");
    assert_eq!(plan.clusters["cluster-b"].kind, ClusterKind::StrictDns);
    assert_eq!(
        plan.clusters["cluster-b"].endpoints[0].to_string(),
        "localhost:8082"
    );
}

// ---------------------------------------------------------------------------------------------------
// Defaults and every field.

#[test]
fn initiator_defaults() {
    let plan = ok(INITIATOR);
    let listener = &plan.initiator.as_ref().expect("initiator").listeners[0];
    let mut expected =
        InitiatorConfig::from_addresses(&["rc://node-1:edge:tenant-a@upstream:2".parse().unwrap()])
            .unwrap();
    expected.stat_prefix = "downstream_rc".into();
    assert_eq!(listener.config, expected);
    // Spelled out, so that a changed core default shows up here.
    assert_eq!(listener.config.request_path, "/reverse_connections/request");
    assert_eq!(listener.config.request_method, "GET");
    assert_eq!(listener.config.connect_timeout, Duration::from_secs(5));
    assert_eq!(listener.config.handshake_timeout, Duration::from_secs(10));
    assert_eq!(listener.config.idle_timeout, Duration::from_secs(10));
    assert_eq!(
        listener.config.max_reconnect_backoff,
        Duration::from_secs(30)
    );
    assert_eq!(listener.config.max_tunnels_per_host, 256);
    assert!(listener.config.offer_claim_marker);
    assert!(!listener.config.upgrade);
    assert_eq!(
        listener.tcp_proxy.idle_timeout,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(listener.connection_limit, None);
    assert_eq!(listener.data_tls, None);
    assert_eq!(plan.initiator.as_ref().unwrap().bearer_token_file, None);
    let upstream = &plan.clusters["upstream"];
    assert_eq!(upstream.kind, ClusterKind::Static);
    assert_eq!(upstream.dns_lookup_family, DnsLookupFamily::Auto);
    assert_eq!(upstream.dns_refresh_rate, Duration::from_secs(5));
    assert_eq!(upstream.connect_timeout, Duration::from_secs(5));
    assert_eq!(upstream.tls, None);
    assert_eq!(
        upstream.endpoints[0].socket_addr(),
        Some("127.0.0.1:9000".parse().unwrap())
    );
    // The local cluster has no `type`: STATIC, as in Envoy.
    assert_eq!(plan.clusters["local"].kind, ClusterKind::Static);
    assert_eq!(plan.admin, None);
    assert!(plan.responder.is_none());
}

#[test]
fn initiator_every_field() {
    let yaml = edits(
        INITIATOR,
        &[
            (
                "    stat_prefix: downstream_rc\n",
                r#"    stat_prefix: my_prefix
    enable_detailed_stats: true
    http_handshake:
      request_path: /tunnels?v=1
      request_method: POST
      use_http_upgrade: true
      bearer_token_file: /etc/revtun/token
      additional_headers:
      - header: { key: x-team, value: edge }
      - header: { key: x-empty }
    max_reconnect_backoff: 60s
    idle_timeout: 0.5s
    handshake_timeout: 250ms
    max_tunnels_per_host: 16
    offer_claim_marker: false
"#,
            ),
            (
                "          cluster: local\n",
                "          cluster: local\n          idle_timeout: 0s\n",
            ),
            (
                "  - name: upstream\n    type: STATIC\n",
                "  - name: upstream\n    type: STATIC\n    connect_timeout: 0.25s\n",
            ),
        ],
    );
    let plan = ok(&yaml);
    let initiator = plan.initiator.expect("initiator");
    assert_eq!(
        initiator.bearer_token_file.as_deref(),
        Some("/etc/revtun/token")
    );
    let listener = &initiator.listeners[0];
    let config = &listener.config;
    assert_eq!(config.stat_prefix, "my_prefix");
    assert_eq!(config.request_path, "/tunnels?v=1");
    assert_eq!(config.request_method, "POST");
    assert!(config.upgrade);
    assert_eq!(
        config.extra_headers,
        vec![
            ("x-team".to_owned(), "edge".to_owned()),
            ("x-empty".to_owned(), String::new())
        ]
    );
    assert_eq!(config.max_reconnect_backoff, Duration::from_secs(60));
    assert_eq!(config.idle_timeout, Duration::from_millis(500));
    assert_eq!(config.handshake_timeout, Duration::from_millis(250));
    assert_eq!(config.max_tunnels_per_host, 16);
    assert!(!config.offer_claim_marker);
    assert_eq!(config.connect_timeout, Duration::from_millis(250));
    assert_eq!(config.head_limits, HeadLimits::default());
    assert_eq!(listener.tcp_proxy.idle_timeout, None);
}

#[test]
fn responder_defaults() {
    let plan = ok(RESPONDER);
    let responder = plan.responder.expect("responder");
    let expected = ResponderConfig {
        stat_prefix: "upstream_rc".into(),
        ..ResponderConfig::default()
    };
    assert_eq!(responder.config, expected);
    assert_eq!(responder.config.keepalive.interval, Duration::from_secs(2));
    assert_eq!(responder.config.keepalive.failure_threshold, 3);
    assert_eq!(responder.config.claim_timeout, Duration::from_secs(5));
    assert_eq!(responder.config.max_tunnels_per_node, None);
    assert_eq!(responder.config.retry_after, None);
    assert!(responder.config.policy.claim_marker);
    assert_eq!(responder.auth, AuthPlan::default());
    assert_eq!(
        responder.listeners[0].binds,
        vec!["127.0.0.1:9000".parse().unwrap()]
    );
    assert_eq!(responder.listeners[0].tunnel_tls, None);
    let door = &plan.front_doors[0];
    assert_eq!(door.claim_id, "node-1");
    assert_eq!(door.tcp_proxy.stat_prefix, "front");
    assert_eq!(
        plan.clusters["tunnels"].kind,
        ClusterKind::ReverseConnection {
            host_id: "node-1".into(),
            tenant: None
        }
    );
    assert!(plan.clusters["tunnels"].endpoints.is_empty());
}

#[test]
fn responder_every_field() {
    let yaml = edits(
        RESPONDER,
        &[
            (
                "    stat_prefix: upstream_rc\n",
                r#"    stat_prefix: pool
    ping_failure_threshold: 5
    enable_detailed_stats: true
    enable_tenant_isolation: true
    max_connections_per_node: 8
    retry_after: 1.5s
    claim_timeout: 0s
    max_pending_handshakes: 10
    max_pending_handshakes_per_ip: "2"
"#,
            ),
            (
                "          ping_interval: 2s\n",
                r#"          ping_interval: 100ms
          auto_close_connections: false
          request_path: /rt
          request_method: post
          required_cluster_name: upstream
          use_http_upgrade: true
          skip_rebalancing: true
          enable_connection_limit: true
          validation:
            node_id_format: node-1
            tenant_id_format: ""
          allowed_cluster_ids: [edge, core]
          handshake_timeout: { seconds: 1, nanos: 500000000 }
          require_tenant: true
          accept_claim_marker: false
          bearer_token_file: /etc/revtun/tokens
"#,
            ),
            (
                "        host_id_format: node-1\n",
                "        host_id_format: edge\n        tenant_id_format: tenant-a\n        cleanup_interval: 60s\n",
            ),
        ],
    );
    let plan = ok(&yaml);
    let responder = plan.responder.expect("responder");
    let c = &responder.config;
    assert_eq!(c.stat_prefix, "pool");
    assert_eq!(c.keepalive.failure_threshold, 5);
    assert_eq!(c.keepalive.interval, Duration::from_millis(100));
    assert!(c.policy.tenant_isolation);
    assert_eq!(c.max_tunnels_per_node, Some(8));
    assert_eq!(c.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(c.retry_after_secs(), Some(2));
    assert_eq!(c.claim_timeout, Duration::ZERO);
    assert_eq!(c.max_pending_handshakes, 10);
    assert_eq!(c.max_pending_handshakes_per_ip, 2);
    assert_eq!(c.policy.path, "/rt");
    assert_eq!(c.policy.method, "POST");
    assert_eq!(c.policy.required_cluster_name.as_deref(), Some("upstream"));
    assert!(c.policy.upgrade);
    assert!(c.policy.require_tenant);
    assert!(!c.policy.claim_marker);
    assert_eq!(c.handshake_timeout, Duration::from_millis(1500));
    assert_eq!(
        responder.auth,
        AuthPlan {
            bearer_token_file: Some("/etc/revtun/tokens".into()),
            allowed_node_ids: vec!["node-1".into()],
            allowed_cluster_ids: vec!["edge".into(), "core".into()],
            allowed_tenant_ids: vec![],
            certificate_identity: None,
        }
    );
    let door = &plan.front_doors[0];
    assert_eq!(
        (door.claim_id.as_str(), door.tenant.as_deref()),
        ("edge", Some("tenant-a"))
    );
}

#[test]
fn empty_document_is_an_empty_plan() {
    assert_eq!(ok(""), Bootstrap::default());
    assert_eq!(ok("# nothing\n"), Bootstrap::default());
    assert_eq!(ok("static_resources: {}\n"), Bootstrap::default());
}

#[test]
fn admin_address() {
    let plan = ok(
        "admin:\n  address:\n    socket_address: { address: \"::1\", port_value: 9901, protocol: TCP }\n",
    );
    assert_eq!(plan.admin, Some("[::1]:9901".parse().unwrap()));
    assert_error(
        "admin:\n  address:\n    socket_address: { address: localhost, port_value: 9901 }\n",
        "admin.address.socket_address.address: malformed IP address: localhost",
    );
    assert_error(
        "admin:\n  access_log_path: /dev/stdout\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 9901 }\n",
        "admin.access_log_path: unknown or unsupported field; supported here: address, source_allow",
    );
}

// ---------------------------------------------------------------------------------------------------
// Durations.

#[test]
fn duration_forms() {
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
    assert_eq!(
        parse_duration("1.000340012s"),
        Ok(Duration::new(1, 340_012))
    );
    for (written, want) in [
        ("2s", Duration::from_secs(2)),
        ("0.5s", Duration::from_millis(500)),
        ("100ms", Duration::from_millis(100)),
        ("\"0.25s\"", Duration::from_millis(250)),
        (
            "{ seconds: 1, nanos: 5000000 }",
            Duration::from_millis(1005),
        ),
        ("{ nanos: 5000000 }", Duration::from_millis(5)),
    ] {
        let yaml = edit(
            RESPONDER,
            "ping_interval: 2s",
            &format!("ping_interval: {written}"),
        );
        let plan = ok(&yaml);
        assert_eq!(
            plan.responder.unwrap().config.keepalive.interval,
            want,
            "{written}"
        );
    }
}

#[test]
fn duration_errors() {
    let path =
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.ping_interval";
    for (written, message) in [
        (
            "2",
            "expected a duration such as \"2s\", \"0.5s\" or \"100ms\", got 2",
        ),
        (
            "\"2 s\"",
            "invalid duration \"2 s\": expected seconds with an 's' suffix such as \"2s\" or \"0.5s\", or milliseconds such as \"100ms\"",
        ),
        (
            "1m",
            "invalid duration \"1m\": expected seconds with an 's' suffix such as \"2s\" or \"0.5s\", or milliseconds such as \"100ms\"",
        ),
        (
            "-1s",
            "invalid duration \"-1s\": expected seconds with an 's' suffix such as \"2s\" or \"0.5s\", or milliseconds such as \"100ms\"",
        ),
        ("0s", "must be between 1ms and 300s"),
        ("301s", "must be between 1ms and 300s"),
        (
            "99999999999999s",
            "duration \"99999999999999s\" is larger than the maximum of 315576000000s",
        ),
        (
            "{ seconds: 1, nanos: 1000000000 }",
            "nanos must be below 1000000000, got 1000000000",
        ),
    ] {
        let yaml = edit(
            RESPONDER,
            "ping_interval: 2s",
            &format!("ping_interval: {written}"),
        );
        assert_eq!(
            errors(&yaml),
            vec![format!("{path}: {message}")],
            "{written}"
        );
    }
    let yaml = edit(
        RESPONDER,
        "ping_interval: 2s",
        "ping_interval: { seconds: 1, minutes: 2 }",
    );
    assert_eq!(
        errors(&yaml),
        vec![format!(
            "{path}.minutes: unknown or unsupported field; supported here: nanos, seconds"
        )]
    );
}

// ---------------------------------------------------------------------------------------------------
// rc:// listeners.

#[test]
fn rc_address_errors_are_the_grammar_errors() {
    assert_error(
        &edit(INITIATOR, "@upstream:2", "@upstream:0"),
        &format!("{RC_ADDRESS}: Connection count 0 is outside the supported range [1, 1024]"),
    );
    assert_error(
        &edit(INITIATOR, "rc://node-1:edge:tenant-a@", "rc://node-1:edge@"),
        &format!(
            "{RC_ADDRESS}: Invalid source info format. Expected: src_node_id:src_cluster_id:src_tenant_id"
        ),
    );
    assert_error(
        &edit(INITIATOR, "rc://node-1:", "rc://:"),
        &format!("{RC_ADDRESS}: Source node ID cannot be empty"),
    );
    assert_error(
        &edit(
            INITIATOR,
            "        port_value: 0\n",
            "        port_value: 8080\n",
        ),
        "static_resources.listeners[0].address.socket_address.port_value: Only port 0 is supported for reverse connections. Got port: 8080",
    );
}

#[test]
fn rc_resolver_name() {
    let with = |name: &str| {
        edit(
            INITIATOR,
            "        port_value: 0\n",
            &format!("        port_value: 0\n        resolver_name: {name}\n"),
        )
    };
    ok(&with("envoy.resolvers.reverse_connection"));
    assert_error(
        &with("envoy.resolvers.other"),
        "static_resources.listeners[0].address.socket_address.resolver_name: unsupported resolver \"envoy.resolvers.other\"; an rc:// address uses \"envoy.resolvers.reverse_connection\" (or no resolver_name)",
    );
}

#[test]
fn rc_target_cluster_must_be_defined() {
    assert_error(
        &edit(INITIATOR, "@upstream:2", "@elsewhere:2"),
        &format!("{RC_ADDRESS}: cluster 'elsewhere' is not defined in static_resources.clusters"),
    );
}

#[test]
fn rc_target_cluster_must_not_be_a_reverse_connection_cluster() {
    let yaml = edits(
        INITIATOR,
        &[
            ("@upstream:2", "@tunnels:2"),
            (
                "bootstrap_extensions:\n",
                &format!("bootstrap_extensions:\n{UPSTREAM_EXT}"),
            ),
            (
                "  clusters:\n",
                r#"  clusters:
  - name: tunnels
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.reverse_connection
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig
        host_id_format: node-1
"#,
            ),
        ],
    );
    let got = errors(&yaml);
    assert!(
        got.contains(&format!("{RC_ADDRESS}: target cluster 'tunnels' is a reverse-connection cluster; an rc:// address dials a STATIC, STRICT_DNS or LOGICAL_DNS cluster of responders")),
        "{got:#?}"
    );
}

#[test]
fn rc_listener_needs_the_downstream_extension() {
    let yaml = edit(
        INITIATOR,
        r#"bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    stat_prefix: downstream_rc
"#,
        "",
    );
    assert_error(
        &yaml,
        &format!(
            "{RC_ADDRESS}: an rc:// listener requires the downstream reverse tunnel bootstrap extension 'envoy.bootstrap.reverse_tunnel.downstream_socket_interface' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration."
        ),
    );
}

#[test]
fn tcp_proxy_cluster_must_be_defined() {
    assert_error(
        &edit(INITIATOR, "cluster: local", "cluster: nowhere"),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: cluster 'nowhere' is not defined in static_resources.clusters",
    );
    assert_error(
        &edit(RESPONDER, "cluster: tunnels", "cluster: nowhere"),
        "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.cluster: cluster 'nowhere' is not defined in static_resources.clusters",
    );
}

#[test]
fn additional_addresses() {
    let additional = |address: &str| {
        edit(
            INITIATOR,
            "        port_value: 0\n",
            &format!(
                "        port_value: 0\n    additional_addresses:\n    - address:\n        socket_address: {{ address: \"{address}\", port_value: 0 }}\n"
            ),
        )
    };
    let two = edit(
        &additional("rc://node-1:edge:tenant-a@second:5"),
        "  clusters:\n",
        "  clusters:\n  - name: second\n    type: STRICT_DNS\n    load_assignment:\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: responder.example, port_value: 9000 } } }\n",
    );
    let plan = ok(&two);
    assert_eq!(
        plan.initiator.unwrap().listeners[0].config.targets,
        vec![
            TargetCluster {
                name: "upstream".into(),
                count: 2
            },
            TargetCluster {
                name: "second".into(),
                count: 5
            },
        ]
    );
    assert_error(
        &additional("rc://node-2:edge:tenant-a@upstream:1"),
        "static_resources.listeners[0].additional_addresses: node: all rc:// addresses of a listener must share node, cluster and tenant (\"node-1\" vs \"node-2\")",
    );
    assert_error(
        &additional("rc://node-1:edge:tenant-a@upstream:1"),
        "static_resources.listeners[0].additional_addresses: targets: target cluster \"upstream\" is listed twice",
    );
    assert_error(
        &additional("127.0.0.1"),
        "static_resources.listeners[0].additional_addresses[0].address.socket_address.address: all addresses of an rc:// listener must be rc:// addresses",
    );
}

#[test]
fn rc_listener_cannot_end_with_the_reverse_tunnel_filter() {
    let yaml = edit(
        INITIATOR,
        r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: local
"#,
        r#"      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
"#,
    );
    assert_error(
        &yaml,
        "static_resources.listeners[0].filter_chains[0].filters[0]: envoy.filters.network.reverse_tunnel accepts handshakes on a socket listener; an rc:// listener's chain ends with envoy.filters.network.tcp_proxy to the local service",
    );
}

#[test]
fn downstream_extension_field_errors() {
    let with = |fields: &str| {
        edit(
            INITIATOR,
            "    stat_prefix: downstream_rc\n",
            &format!("    stat_prefix: downstream_rc\n{fields}"),
        )
    };
    assert_error(
        &with("    max_reconnect_backoff: 0.5s\n"),
        &format!("{DOWNSTREAM_TYPED}.max_reconnect_backoff: must be at least 1s"),
    );
    assert_error(
        &with("    idle_timeout: 0s\n"),
        &format!("{DOWNSTREAM_TYPED}.idle_timeout: must be greater than zero"),
    );
    assert_error(
        &with("    max_tunnels_per_host: 0\n"),
        &format!("{DOWNSTREAM_TYPED}.max_tunnels_per_host: must be greater than zero"),
    );
    assert_error(
        &with("    max_tunnels_per_host: -1\n"),
        &format!(
            "{DOWNSTREAM_TYPED}.max_tunnels_per_host: expected a non-negative integer, got -1"
        ),
    );
    assert_error(
        &with("    max_tunnels_per_host: 4294967296\n"),
        &format!(
            "{DOWNSTREAM_TYPED}.max_tunnels_per_host: 4294967296 is out of range [0, 4294967295]"
        ),
    );
    assert_error(
        &with("    offer_claim_marker: yes\n"),
        &format!("{DOWNSTREAM_TYPED}.offer_claim_marker: expected true or false, got \"yes\""),
    );
    assert_error(
        &with("    http_handshake:\n      request_method: \"GE T\"\n"),
        &format!(
            "{DOWNSTREAM_TYPED}.http_handshake.request_method: invalid request method \"GE T\": it must be an HTTP token"
        ),
    );
    assert_error(
        &with("    http_handshake:\n      request_path: no-slash\n"),
        &format!(
            "{DOWNSTREAM_TYPED}.http_handshake.request_path: invalid request path \"no-slash\": it must start with '/' and contain only visible ASCII"
        ),
    );
    assert_error(
        &with(
            "    http_handshake:\n      additional_headers:\n      - header: { key: Host, value: x }\n",
        ),
        &format!(
            "{DOWNSTREAM_TYPED}.http_handshake.additional_headers: header \"Host\" is written by the handshake itself and cannot be configured"
        ),
    );
    assert_error(
        &with(
            "    http_handshake:\n      additional_headers:\n      - header: { key: authorization, value: Bearer x }\n      bearer_token_file: /t\n",
        ),
        &format!(
            "{DOWNSTREAM_TYPED}.http_handshake.bearer_token_file: conflicts with the authorization header in additional_headers"
        ),
    );
    assert_error(
        &with(
            "    http_handshake:\n      additional_headers:\n      - header: { key: x-a, value: b }\n        append_action: OVERWRITE_IF_EXISTS\n",
        ),
        &format!(
            "{DOWNSTREAM_TYPED}.http_handshake.additional_headers[0].append_action: unknown or unsupported field; supported here: header"
        ),
    );
    // `null` means "not set", as in proto-JSON.
    let unset = ok(&with(
        "    http_handshake:\n      bearer_token_file: ~\n      request_path: null\n",
    ));
    let initiator = unset.initiator.expect("initiator");
    assert_eq!(initiator.bearer_token_file, None);
    assert_eq!(
        initiator.listeners[0].config.request_path,
        "/reverse_connections/request"
    );
    assert_error(
        &with("    http_handshake:\n      bearer_token_file: \"\"\n"),
        &format!("{DOWNSTREAM_TYPED}.http_handshake.bearer_token_file: must not be empty"),
    );
    assert_error(
        &with("    access_log: []\n"),
        &format!(
            "{DOWNSTREAM_TYPED}.access_log: unknown or unsupported field; supported here: enable_detailed_stats, handshake_timeout, http_handshake, idle_timeout, max_reconnect_backoff, max_tunnels_per_host, offer_claim_marker, stat_prefix"
        ),
    );
}

#[test]
fn downstream_errors_are_reported_without_any_listener() {
    let yaml = r#"
bootstrap_extensions:
- name: initiator
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    handshake_timeout: 0s
"#;
    assert_error(
        yaml,
        "bootstrap_extensions[0].typed_config.handshake_timeout: must be greater than zero",
    );
}

// ---------------------------------------------------------------------------------------------------
// Responder: extensions, filters, reverse-connection clusters.

#[test]
fn reverse_tunnel_listener_needs_the_upstream_extension() {
    let yaml = edit(RESPONDER, UPSTREAM_EXT, "");
    assert_eq!(
        errors(&yaml),
        vec![
            "static_resources.clusters[0].cluster_type: Reverse connection cluster requires the upstream reverse tunnel bootstrap extension 'envoy.bootstrap.reverse_tunnel.upstream_socket_interface' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration.".to_owned(),
            "static_resources.listeners[0].filter_chains[0].filters[0]: envoy.filters.network.reverse_tunnel requires the upstream reverse tunnel bootstrap extension 'envoy.bootstrap.reverse_tunnel.upstream_socket_interface' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration.".to_owned(),
        ]
    );
}

#[test]
fn reverse_connection_cluster_lb_policy() {
    let envoy = |policy: &str| {
        format!(
            "static_resources.clusters[0].lb_policy: cluster: LB policy {policy} is not valid for Cluster type envoy.clusters.reverse_connection. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'REVERSE_CONNECTION'"
        )
    };
    assert_error(
        &edit(RESPONDER, "    lb_policy: CLUSTER_PROVIDED\n", ""),
        &envoy("ROUND_ROBIN"),
    );
    assert_error(
        &edit(
            RESPONDER,
            "lb_policy: CLUSTER_PROVIDED",
            "lb_policy: random",
        ),
        &envoy("RANDOM"),
    );
    ok(&edit(
        RESPONDER,
        "lb_policy: CLUSTER_PROVIDED",
        "lb_policy: cluster_provided",
    ));
}

#[test]
fn reverse_connection_cluster_load_assignment() {
    assert_error(
        &edit(
            RESPONDER,
            "    lb_policy: CLUSTER_PROVIDED\n",
            "    lb_policy: CLUSTER_PROVIDED\n    load_assignment: { cluster_name: tunnels }\n",
        ),
        "static_resources.clusters[0].load_assignment: Reverse Conn clusters must have no load assignment configured",
    );
}

#[test]
fn reverse_connection_cluster_type_config() {
    assert_error(
        &edit(
            RESPONDER,
            "host_id_format: node-1",
            "host_id_format: \"%REQ(x-node-id)%\"",
        ),
        "static_resources.clusters[0].cluster_type.typed_config.host_id_format: command operators such as %REQ(...)% are not supported: use a constant id (got \"%REQ(x-node-id)%\")",
    );
    assert_error(
        &edit(RESPONDER, "        host_id_format: node-1\n", ""),
        "static_resources.clusters[0].cluster_type.typed_config.host_id_format: missing required field",
    );
    assert_error(
        &edit(
            RESPONDER,
            "      name: envoy.clusters.reverse_connection\n",
            "      name: envoy.clusters.other\n",
        ),
        "static_resources.clusters[0].cluster_type.name: unsupported cluster_type \"envoy.clusters.other\"; supported: envoy.clusters.reverse_connection",
    );
    assert_error(
        &edit(
            RESPONDER,
            "    lb_policy: CLUSTER_PROVIDED\n",
            "    lb_policy: CLUSTER_PROVIDED\n    type: STATIC\n",
        ),
        "static_resources.clusters[0].cluster_type: type and cluster_type are mutually exclusive (Envoy's cluster_discovery_type oneof)",
    );
}

#[test]
fn tenant_id_format_is_required_under_tenant_isolation() {
    let yaml = edit(
        RESPONDER,
        "    stat_prefix: upstream_rc\n",
        "    stat_prefix: upstream_rc\n    enable_tenant_isolation: true\n",
    );
    assert_error(
        &yaml,
        "static_resources.clusters[0].cluster_type.typed_config.tenant_id_format: missing required field: tenant isolation is on (bootstrap_extensions[0].typed_config.enable_tenant_isolation), so a reverse-connection cluster must name the tenant of its claims",
    );
    let plan = ok(&edit(
        &yaml,
        "        host_id_format: node-1\n",
        "        host_id_format: node-1\n        tenant_id_format: tenant-a\n",
    ));
    assert_eq!(plan.front_doors[0].tenant.as_deref(), Some("tenant-a"));
}

#[test]
fn upstream_extension_field_errors() {
    let with = |fields: &str| {
        edit(
            RESPONDER,
            "    stat_prefix: upstream_rc\n",
            &format!("    stat_prefix: upstream_rc\n{fields}"),
        )
    };
    let typed = "bootstrap_extensions[0].typed_config";
    assert_error(
        &with("    ping_failure_threshold: 0\n"),
        &format!("{typed}.ping_failure_threshold: must be at least 1"),
    );
    assert_error(
        &with("    max_connections_per_node: 0\n"),
        &format!(
            "{typed}.max_connections_per_node: must be greater than 0 (leave it unset for no cap)"
        ),
    );
    assert_error(
        &with("    max_pending_handshakes_per_ip: 0\n"),
        &format!("{typed}.max_pending_handshakes_per_ip: must be greater than zero"),
    );
    assert_error(
        &with("    reporter_config: {}\n"),
        &format!(
            "{typed}.reporter_config: unknown or unsupported field; supported here: claim_timeout, enable_detailed_stats, enable_tenant_isolation, max_connections_per_node, max_pending_handshakes, max_pending_handshakes_per_ip, ping_failure_threshold, retry_after, stat_prefix"
        ),
    );
}

#[test]
fn reverse_tunnel_filter_field_errors() {
    let with = |fields: &str| {
        edit(
            RESPONDER,
            "          ping_interval: 2s\n",
            &format!("          ping_interval: 2s\n{fields}"),
        )
    };
    let typed = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    assert_error(
        &with("          handshake_timeout: 0s\n"),
        &format!("{typed}.handshake_timeout: must be greater than zero"),
    );
    assert_error(
        &with("          auto_close_connections: true\n"),
        &format!(
            "{typed}.auto_close_connections: true is not supported: revtun keeps every accepted handshake connection as a tunnel"
        ),
    );
    assert_error(
        &with("          request_method: FETCH\n"),
        &format!(
            "{typed}.request_method: unsupported value \"FETCH\"; expected one of: METHOD_UNSPECIFIED, GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"
        ),
    );
    assert_error(
        &with("          request_path: \"/a b\"\n"),
        &format!(
            "{typed}.request_path: invalid request path \"/a b\": it must start with '/' and contain only visible ASCII"
        ),
    );
    assert_error(
        &with("          validation: { node_id_format: \"%FILTER_STATE(x)%\" }\n"),
        &format!(
            "{typed}.validation.node_id_format: command operators such as %REQ(...)% are not supported: use a constant id (got \"%FILTER_STATE(x)%\")"
        ),
    );
    assert_error(
        &with("          validation: { node_id_format: a }\n          allowed_node_ids: [b]\n"),
        &format!(
            "{typed}.allowed_node_ids: set either validation.node_id_format or allowed_node_ids, not both"
        ),
    );
    assert_error(
        &with("          jwt_validator: {}\n"),
        &format!(
            "{typed}.jwt_validator: unknown or unsupported field; supported here: accept_claim_marker, allowed_cluster_ids, allowed_node_ids, allowed_tenant_ids, auto_close_connections, bearer_token_file, bind_node_id_to_certificate, certificate_identity, enable_connection_limit, handshake_timeout, ping_interval, request_method, request_path, require_tenant, required_cluster_name, skip_rebalancing, use_http_upgrade, validation"
        ),
    );
    assert_error(
        &with("          bind_node_id_to_certificate: true\n"),
        &format!(
            "{typed}.bind_node_id_to_certificate: needs verified client certificates: add a transport_socket whose DownstreamTlsContext has common_tls_context.validation_context.trusted_ca to this listener's filter chain"
        ),
    );
}

#[test]
fn handshake_filters_must_agree() {
    let second = r#"  - name: handshake_2
    address:
      socket_address: { address: 127.0.0.1, port_value: 9002 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: PING
"#;
    let with = |ping: &str| {
        edit(
            RESPONDER,
            "  - name: front_door\n",
            &format!("{}  - name: front_door\n", second.replace("PING", ping)),
        )
    };
    let plan = ok(&with("2s"));
    let responder = plan.responder.unwrap();
    assert_eq!(responder.listeners.len(), 2);
    assert_eq!(responder.listeners[1].name, "handshake_2");
    assert_error(
        &with("3s"),
        "static_resources.listeners[1].filter_chains[0].filters[0].typed_config: all envoy.filters.network.reverse_tunnel filters must have the same settings (revtun keeps one tunnel pool per process); this one differs from static_resources.listeners[0].filter_chains[0].filters[0].typed_config",
    );
}

#[test]
fn front_doors_need_a_reverse_connection_cluster_and_a_handshake_listener() {
    let to_static = edit(
        RESPONDER,
        "  clusters:\n",
        "  clusters:\n  - name: plain\n    load_assignment:\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7000 } } }\n",
    );
    assert_error(
        &edit(&to_static, "cluster: tunnels", "cluster: plain"),
        "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.cluster: cluster 'plain' is a STATIC cluster, but a socket listener's tcp_proxy must name an envoy.clusters.reverse_connection cluster: revtun relays only through reverse tunnels",
    );
    let no_handshake = edit(
        RESPONDER,
        r#"  - name: handshake
    address:
      socket_address: { address: 127.0.0.1, port_value: 9000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: 2s
"#,
        "",
    );
    assert_error(
        &no_handshake,
        "static_resources.clusters[0].cluster_type: a reverse-connection cluster needs a listener with the envoy.filters.network.reverse_tunnel filter to receive tunnels",
    );
}

// ---------------------------------------------------------------------------------------------------
// Clusters.

#[test]
fn cluster_kinds_and_dns_settings() {
    let yaml = edit(
        INITIATOR,
        "  - name: upstream\n    type: STATIC\n",
        "  - name: upstream\n    type: strict_dns\n    dns_lookup_family: ALL\n    dns_refresh_rate: 250ms\n    connect_timeout: 1s\n    lb_policy: ROUND_ROBIN\n",
    );
    let plan = ok(&yaml);
    let upstream = &plan.clusters["upstream"];
    assert_eq!(upstream.kind, ClusterKind::StrictDns);
    assert_eq!(upstream.dns_lookup_family, DnsLookupFamily::All);
    assert_eq!(upstream.dns_refresh_rate, Duration::from_millis(250));
    assert_eq!(upstream.connect_timeout, Duration::from_secs(1));
    assert_eq!(
        plan.initiator.unwrap().listeners[0].config.connect_timeout,
        Duration::from_secs(1)
    );
}

#[test]
fn cluster_errors() {
    let cluster = "static_resources.clusters[0]";
    assert_error(
        &edit(INITIATOR, "type: STATIC", "type: EDS"),
        &format!(
            "{cluster}.type: unsupported value \"EDS\"; expected one of: STATIC, STRICT_DNS, LOGICAL_DNS"
        ),
    );
    assert_error(
        &edit(
            INITIATOR,
            "{ address: 127.0.0.1, port_value: 9000 }",
            "{ address: upstream.example.com, port_value: 9000 }",
        ),
        &format!(
            "{cluster}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: malformed IP address: upstream.example.com. Consider setting resolver_name or setting cluster type to 'STRICT_DNS' or 'LOGICAL_DNS'"
        ),
    );
    assert_error(
        &edit(
            INITIATOR,
            "type: STATIC",
            "type: LOGICAL_DNS\n    dns_lookup_family: V4_PREFERRED",
        ),
        &format!(
            "{cluster}.dns_lookup_family: unsupported value \"V4_PREFERRED\"; expected one of: AUTO, V4_ONLY, V6_ONLY, ALL"
        ),
    );
    assert_error(
        &edit(
            INITIATOR,
            "type: STATIC",
            "type: STATIC\n    connect_timeout: 0s",
        ),
        &format!("{cluster}.connect_timeout: must be greater than 0s"),
    );
    assert_error(
        &edit(
            INITIATOR,
            "type: STATIC",
            "type: STRICT_DNS\n    dns_refresh_rate: 1ms",
        ),
        &format!("{cluster}.dns_refresh_rate: must be greater than 1ms"),
    );
    assert_error(
        &edit(
            INITIATOR,
            "type: STATIC",
            "type: STATIC\n    lb_policy: CLUSTER_PROVIDED",
        ),
        &format!(
            "{cluster}.lb_policy: LB policy CLUSTER_PROVIDED is not supported for a STATIC cluster: revtun uses ROUND_ROBIN (CLUSTER_PROVIDED is for envoy.clusters.reverse_connection clusters)"
        ),
    );
    assert_error(
        &edit(
            INITIATOR,
            "type: STATIC",
            "type: STATIC\n    health_checks: []",
        ),
        &format!(
            "{cluster}.health_checks: unknown or unsupported field; supported here: cluster_type, connect_timeout, dns_lookup_family, dns_refresh_rate, lb_policy, load_assignment, name, transport_socket, type"
        ),
    );
    assert_error(
        &edit(
            INITIATOR,
            "{ address: 127.0.0.1, port_value: 9000 }",
            "{ address: 127.0.0.1, port_value: 0 }",
        ),
        &format!(
            "{cluster}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: port 0 is out of range [1, 65535]"
        ),
    );
    assert_error(
        &edit(INITIATOR, "type: STATIC", "type: STRICT_DNS").replace(
            "{ address: 127.0.0.1, port_value: 9000 }",
            "{ address: \"not a name\", port_value: 9000 }",
        ),
        &format!(
            "{cluster}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"not a name\" is neither an IP address nor a DNS name"
        ),
    );
}

#[test]
fn logical_dns_needs_exactly_one_host() {
    let two_hosts = edits(
        INITIATOR,
        &[
            ("type: STATIC", "type: LOGICAL_DNS"),
            (
                "              socket_address: { address: 127.0.0.1, port_value: 9000 }\n",
                "              socket_address: { address: 127.0.0.1, port_value: 9000 }\n        - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 9000 } } }\n",
            ),
        ],
    );
    assert_error(
        &two_hosts,
        "static_resources.clusters[0].load_assignment: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
    );
    let none = "static_resources:\n  clusters:\n  - name: dns\n    type: LOGICAL_DNS\n";
    assert_error(
        none,
        "static_resources.clusters[0].load_assignment: LOGICAL_DNS clusters must have a single host",
    );
}

#[test]
fn duplicate_names() {
    let clusters = edit(
        INITIATOR,
        "  - name: local\n",
        "  - name: upstream\n    load_assignment: { cluster_name: x }\n  - name: local\n",
    );
    assert_error(
        &clusters,
        "static_resources.clusters[1].name: cluster manager: duplicate cluster 'upstream'",
    );
    let listeners = edit(RESPONDER, "- name: front_door", "- name: handshake");
    assert_error(
        &listeners,
        "static_resources.listeners[1].name: duplicate listener name 'handshake' (already used by static_resources.listeners[0])",
    );
}

#[test]
fn ports_and_bind_addresses() {
    assert_error(
        &edit(RESPONDER, "port_value: 9001", "port_value: 70000"),
        "static_resources.listeners[1].address.socket_address.port_value: port 70000 is out of range [0, 65535]",
    );
    assert_error(
        &edit(RESPONDER, "port_value: 9001", "port_value: 9000"),
        "static_resources.listeners[1].address.socket_address: address 127.0.0.1:9000 is already used by static_resources.listeners[0].address.socket_address",
    );
    let with_admin = format!(
        "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 9001 }}\n{RESPONDER}"
    );
    assert_error(
        &with_admin,
        "static_resources.listeners[1].address.socket_address: address 127.0.0.1:9001 is already used by admin.address.socket_address",
    );
    // Port 0 (any free port) may repeat.
    let zero = edits(
        RESPONDER,
        &[
            ("port_value: 9000", "port_value: 0"),
            ("port_value: 9001", "port_value: 0"),
        ],
    );
    let plan = ok(&zero);
    assert_eq!(
        plan.front_doors[0].binds,
        vec!["127.0.0.1:0".parse().unwrap()]
    );
    assert_error(
        &edit(
            RESPONDER,
            "{ address: 127.0.0.1, port_value: 9001 }",
            "{ address: localhost, port_value: 9001 }",
        ),
        "static_resources.listeners[1].address.socket_address.address: malformed IP address: localhost (a listener binds an IP address; a reverse-connection listener's address starts with rc://)",
    );
    assert_error(
        &edit(
            RESPONDER,
            "{ address: 127.0.0.1, port_value: 9001 }",
            "{ address: 127.0.0.1, port_value: 9001, protocol: UDP }",
        ),
        "static_resources.listeners[1].address.socket_address.protocol: unsupported value \"UDP\"; expected one of: TCP",
    );
}

// ---------------------------------------------------------------------------------------------------
// Filter chains and filters.

#[test]
fn filter_chain_shape() {
    let limit = r#"      - name: envoy.filters.network.connection_limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: limit
          max_connections: 100
          delay: 0.1s
"#;
    let tcp_proxy_start = "      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: front\n";
    let before = edit(
        RESPONDER,
        tcp_proxy_start,
        &format!("{limit}{tcp_proxy_start}"),
    );
    let plan = ok(&before);
    let limit_plan = plan.front_doors[0]
        .connection_limit
        .as_ref()
        .expect("limit");
    assert_eq!(limit_plan.max_connections, 100);
    assert_eq!(limit_plan.delay, Some(Duration::from_millis(100)));
    assert_eq!(limit_plan.stat_prefix, "limit");

    let after = edit(
        RESPONDER,
        "          cluster: tunnels\n",
        &format!("          cluster: tunnels\n{limit}"),
    );
    assert_error(
        &after,
        "static_resources.listeners[1].filter_chains[0].filters[1]: envoy.filters.network.connection_limit must come before the terminal filter at static_resources.listeners[1].filter_chains[0].filters[0]",
    );
    assert_error(
        &edit(&before, "max_connections: 100", "max_connections: 0"),
        "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.max_connections: must be at least 1",
    );
    let two_chains = edit(
        RESPONDER,
        "          cluster: tunnels\n",
        "          cluster: tunnels\n    - filters: []\n",
    );
    assert_error(
        &two_chains,
        "static_resources.listeners[1].filter_chains[1]: only one filter chain per listener is supported (revtun has no filter_chain_match)",
    );
    assert_error(
        &edit(
            RESPONDER,
            "    - filters:\n      - name: envoy.filters.network.tcp_proxy",
            "    - filter_chain_match: {}\n      filters:\n      - name: envoy.filters.network.tcp_proxy",
        ),
        "static_resources.listeners[1].filter_chains[0].filter_chain_match: unknown or unsupported field; supported here: filters, name, transport_socket",
    );
}

#[test]
fn unsupported_types() {
    assert_error(
        &edit(
            INITIATOR,
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        ),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type: unsupported filter type \"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\"; supported: envoy.filters.network.tcp_proxy (type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy), envoy.filters.network.reverse_tunnel (type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel), envoy.filters.network.connection_limit (type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit), envoy.filters.network.rbac (type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC)",
    );
    // An extension of an unknown type is not configured: the rc:// listener misses its extension.
    assert_eq!(
        errors(&edit(INITIATOR, "v3.DownstreamReverseConnectionSocketInterface", "v3.Other")),
        vec![
            "bootstrap_extensions[0].typed_config.@type: unsupported bootstrap extension type \"envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.Other\"; supported: type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface, type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface".to_owned(),
            format!("{RC_ADDRESS}: an rc:// listener requires the downstream reverse tunnel bootstrap extension 'envoy.bootstrap.reverse_tunnel.downstream_socket_interface' to be configured. Please add it to bootstrap_extensions in your bootstrap configuration."),
        ]
    );
    // The @type's host part does not matter; the extension's name is a label.
    ok(&edits(
        INITIATOR,
        &[
            (
                "\"@type\": type.googleapis.com/envoy.extensions.bootstrap",
                "\"@type\": example.org/envoy.extensions.bootstrap",
            ),
            (
                "- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface",
                "- name: initiator",
            ),
        ],
    ));
    let twice = edit(
        RESPONDER,
        "static_resources:\n",
        &format!("{UPSTREAM_EXT}static_resources:\n"),
    );
    assert_error(
        &twice,
        "bootstrap_extensions[1]: duplicate bootstrap extension envoy.bootstrap.reverse_tunnel.upstream_socket_interface (already configured at bootstrap_extensions[0])",
    );
}

// ---------------------------------------------------------------------------------------------------
// TLS.

const SERVER_TLS: &str = r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: /certs/server.crt }
              private_key: { filename: /certs/server.key }
            validation_context:
              trusted_ca: { filename: /certs/ca.crt }
"#;

#[test]
fn tls_contexts() {
    // Tunnel TLS on the handshake listener, data-leg TLS on the reverse-connection cluster.
    let yaml = edits(
        RESPONDER,
        &[
            (
                "    - filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
                &format!(
                    "    - {}      filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
                    SERVER_TLS.trim_start()
                ),
            ),
            (
                "          ping_interval: 2s\n",
                "          ping_interval: 2s\n          bind_node_id_to_certificate: true\n",
            ),
            (
                "    lb_policy: CLUSTER_PROVIDED\n",
                r#"    lb_policy: CLUSTER_PROVIDED
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: node-1.internal
        common_tls_context:
          validation_context:
            trusted_ca: { inline_string: "-----BEGIN CERTIFICATE-----" }
"#,
            ),
        ],
    );
    let plan = ok(&yaml);
    let responder = plan.responder.as_ref().unwrap();
    assert_eq!(
        responder.auth.certificate_identity,
        Some(CertificateIdentity::node_id_equals_san())
    );
    let tunnel_tls = responder.listeners[0]
        .tunnel_tls
        .as_ref()
        .expect("tunnel TLS");
    assert!(tunnel_tls.require_client_certificate);
    assert_eq!(
        tunnel_tls.certificate.certificate_chain,
        DataSource::Filename("/certs/server.crt".into())
    );
    assert_eq!(
        tunnel_tls.trusted_ca,
        Some(DataSource::Filename("/certs/ca.crt".into()))
    );
    let data_tls = plan.front_doors[0].data_tls.as_ref().expect("data-leg TLS");
    assert_eq!(data_tls.sni.as_deref(), Some("node-1.internal"));
    assert_eq!(data_tls.certificate, None);
    assert_eq!(
        format!("{:?}", data_tls.trusted_ca.as_ref().unwrap()),
        "InlineString(<27 bytes>)"
    );
}

#[test]
fn data_leg_tls_on_the_rc_listener() {
    let yaml = edit(
        INITIATOR,
        "    - filters:\n",
        &format!("    - {}      filters:\n", SERVER_TLS.trim_start()),
    );
    let plan = ok(&yaml);
    let tls = plan.initiator.unwrap().listeners[0]
        .data_tls
        .clone()
        .expect("data-leg TLS");
    assert_eq!(
        tls.certificate.private_key,
        DataSource::Filename("/certs/server.key".into())
    );
}

#[test]
fn tls_errors() {
    let with_tls = |tls: &str| {
        edit(
            RESPONDER,
            "    - filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
            &format!(
                "    - {}      filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
                tls.trim_start()
            ),
        )
    };
    let socket = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config";
    assert_error(
        &with_tls(&SERVER_TLS.replace("            validation_context:\n              trusted_ca: { filename: /certs/ca.crt }\n", "")),
        &format!("{socket}.require_client_certificate: requires common_tls_context.validation_context.trusted_ca to verify client certificates"),
    );
    assert_error(
        &with_tls(&SERVER_TLS.replace("DownstreamTlsContext", "UpstreamTlsContext")),
        &format!(
            "{socket}.@type: unsupported transport socket type \"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\": a listener's transport_socket must be envoy.transport_sockets.tls with type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
        ),
    );
    assert_error(
        &with_tls(&SERVER_TLS.replace(
            "{ filename: /certs/server.key }",
            "{ filename: /k, inline_string: x }",
        )),
        &format!(
            "{socket}.common_tls_context.tls_certificates[0].private_key: set exactly one of filename and inline_string"
        ),
    );
    assert_error(
        &with_tls(&SERVER_TLS.replace("            tls_certificates:\n            - certificate_chain: { filename: /certs/server.crt }\n              private_key: { filename: /certs/server.key }\n", "")),
        &format!("{socket}.common_tls_context.tls_certificates: a listener's TLS context needs exactly one certificate, got 0"),
    );
    assert_error(
        &with_tls(&SERVER_TLS.replace(
            "          require_client_certificate: true\n",
            "          require_client_certificate: true\n          require_sni: true\n",
        )),
        &format!(
            "{socket}.require_sni: unknown or unsupported field; supported here: common_tls_context, require_client_certificate"
        ),
    );
}

// ---------------------------------------------------------------------------------------------------
// Several errors, unknown fields, YAML-level problems.

#[test]
fn every_error_is_reported() {
    let yaml = edits(
        INITIATOR,
        &[
            ("@upstream:2", "@upstream:2000"),
            (
                "    stat_prefix: downstream_rc\n",
                "    stat_prefix: downstream_rc\n    idle_timeout: soon\n",
            ),
            ("cluster: local", "cluster: nowhere"),
            ("port_value: 8000", "port_value: 80000"),
            (
                "  - name: rc\n",
                "  - name: rc\n    per_connection_buffer_limit_bytes: 1024\n",
            ),
        ],
    );
    let got = parse(&yaml).unwrap_err();
    let lines: Vec<String> = got.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "bootstrap_extensions[0].typed_config.idle_timeout: invalid duration \"soon\": expected seconds with an 's' suffix such as \"2s\" or \"0.5s\", or milliseconds such as \"100ms\"".to_owned(),
            "static_resources.listeners[0].per_connection_buffer_limit_bytes: unknown or unsupported field; supported here: additional_addresses, address, filter_chains, name".to_owned(),
            format!("{RC_ADDRESS}: Connection count 2000 is outside the supported range [1, 1024]"),
            "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: port 80000 is out of range [1, 65535]".to_owned(),
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: cluster 'nowhere' is not defined in static_resources.clusters".to_owned(),
        ]
    );
    // Display: one `path: message` per line.
    assert_eq!(got.to_string(), lines.join("\n"));
    assert_eq!(got.len(), 5);
    let first: &ConfigError = &got.errors()[0];
    assert_eq!(
        first.path,
        "bootstrap_extensions[0].typed_config.idle_timeout"
    );
}

#[test]
fn unknown_fields_name_their_path() {
    assert_error(
        &format!("node:\n  id: x\n{INITIATOR}"),
        "node: unknown or unsupported field; supported here: admin, bootstrap_extensions, static_resources",
    );
    assert_error(
        &edit(INITIATOR, "  clusters:\n", "  secrets: []\n  clusters:\n"),
        "static_resources.secrets: unknown or unsupported field; supported here: clusters, listeners",
    );
    assert_error(
        &edit(
            INITIATOR,
            "          cluster: local\n",
            "          cluster: local\n          max_connect_attempts: 3\n",
        ),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.max_connect_attempts: unknown or unsupported field; supported here: cluster, idle_timeout, stat_prefix",
    );
}

#[test]
fn yaml_level_problems() {
    assert_error(
        "admin: [1, 2\n",
        "<yaml>: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 8",
    );
    assert_error(
        "admin: {}\nadmin: {}\n",
        "<yaml>: duplicate entry with key \"admin\" at line 1 column 1",
    );
    assert_error(
        "---\nadmin: {}\n---\nadmin: {}\n",
        "<yaml>: deserializing from YAML containing more than one document is not supported",
    );
    assert_error("- a\n", "<yaml>: expected a mapping, got a list");
    assert_error(
        "static_resources: !custom {}\n",
        "static_resources: YAML tags are not supported (found !custom)",
    );
    assert_error(
        "static_resources:\n  listeners: {}\n",
        "static_resources.listeners: expected a list, got a mapping",
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let yaml = edits(
        INITIATOR,
        &[(
            "  - name: local\n    load_assignment:\n",
            "  - &local\n    name: local\n    load_assignment:\n",
        )],
    ) + "  - <<: *local\n    name: local-copy\n";
    let plan = ok(&yaml);
    assert_eq!(plan.clusters["local-copy"], plan.clusters["local"]);
}

#[test]
fn plans_are_plain_replaceable_data() {
    let first = ok(INITIATOR);
    let second = ok(&edit(INITIATOR, "@upstream:2", "@upstream:4"));
    let mut live = first.clone();
    assert_eq!(live, first);
    live = second.clone();
    assert_eq!(
        live.initiator.unwrap().listeners[0].config.targets[0].count,
        4
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text never panics.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = parse(&text);
    }

    /// Cutting a valid file anywhere, or replacing one byte, never panics; the result is a plan or a
    /// non-empty error list whose lines all have a path.
    #[test]
    fn mangled_files_never_panic(cut in 0usize..2000, at in 0usize..2000, byte in 32u8..127) {
        let base = if cut % 2 == 0 { INITIATOR } else { RESPONDER };
        let mut text = base.as_bytes().to_vec();
        let at = at % text.len();
        text[at] = byte;
        text.truncate(cut.max(1).min(text.len()));
        let text = String::from_utf8_lossy(&text);
        match parse(&text) {
            Ok(_) => {}
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for error in &errors {
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
    }
}

#[test]
fn more_listener_shapes() {
    let door = "static_resources.listeners[1]";
    assert_error(
        &edit(
            RESPONDER,
            "{ address: 127.0.0.1, port_value: 9001 }",
            "{ address: 127.0.0.1, port_value: 9001, resolver_name: envoy.resolvers.reverse_connection }",
        ),
        &format!(
            "{door}.address.socket_address.resolver_name: resolver_name is only supported on rc:// listener addresses (envoy.resolvers.reverse_connection)"
        ),
    );
    assert_error(
        &edit(
            RESPONDER,
            "      socket_address: { address: 127.0.0.1, port_value: 9001 }\n",
            "      socket_address: { address: 127.0.0.1, port_value: 9001 }\n    additional_addresses:\n    - address: { socket_address: { address: \"rc://n:c:t@tunnels:1\", port_value: 0 } }\n",
        ),
        &format!(
            "{door}.additional_addresses[0].address.socket_address.address: an rc:// address cannot be an additional address of a socket listener: make it the main address of an rc:// listener"
        ),
    );
    assert_error(
        &edit(
            RESPONDER,
            "    - filters:\n      - name: envoy.filters.network.tcp_proxy",
            "    - filters: []\n      name: empty\n    - filters:\n      - name: envoy.filters.network.tcp_proxy",
        ),
        &format!(
            "{door}.filter_chains[1]: only one filter chain per listener is supported (revtun has no filter_chain_match)"
        ),
    );
    let tcp_proxy = r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: front
          cluster: tunnels
"#;
    assert_error(
        &edit(RESPONDER, tcp_proxy, &format!("{tcp_proxy}{tcp_proxy}")),
        &format!(
            "{door}.filter_chains[0].filters[1]: a filter chain has one terminal filter; there is already one at {door}.filter_chains[0].filters[0]"
        ),
    );
    assert_error(
        &edit(
            RESPONDER,
            &format!("    - filters:\n{tcp_proxy}"),
            "    - filters: []\n",
        ),
        &format!(
            "{door}.filter_chains[0].filters: a filter chain needs a terminal filter (envoy.filters.network.tcp_proxy or envoy.filters.network.reverse_tunnel)"
        ),
    );
    assert_error(
        &edit(RESPONDER, "          stat_prefix: front\n", ""),
        &format!(
            "{door}.filter_chains[0].filters[0].typed_config.stat_prefix: missing required field"
        ),
    );
    let limit = r#"      - name: limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: limit
          max_connections: 1
"#;
    assert_error(
        &edit(RESPONDER, tcp_proxy, &format!("{limit}{limit}{tcp_proxy}")),
        &format!(
            "{door}.filter_chains[0].filters[1]: envoy.filters.network.connection_limit may appear only once"
        ),
    );
    // A front door may terminate TLS from its clients.
    let with_tls = edit(
        RESPONDER,
        "    - filters:\n      - name: envoy.filters.network.tcp_proxy\n",
        &format!(
            "    - {}      filters:\n      - name: envoy.filters.network.tcp_proxy\n",
            SERVER_TLS.trim_start()
        ),
    );
    let plan = ok(&with_tls);
    assert!(
        plan.front_doors[0]
            .listener_tls
            .as_ref()
            .unwrap()
            .require_client_certificate
    );
    assert_eq!(plan.front_doors[0].data_tls, None);
}

#[test]
fn upstream_tls_errors_and_endpoints() {
    let with_tls = |common: &str| {
        edit(
            INITIATOR,
            "  - name: upstream\n    type: STATIC\n",
            &format!(
                "  - name: upstream\n    type: STATIC\n    transport_socket:\n      name: tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n{common}"
            ),
        )
    };
    let plan = ok(&with_tls(
        "        common_tls_context:\n          tls_certificates:\n          - { certificate_chain: { filename: /c.pem }, private_key: { filename: /k.pem } }\n",
    ));
    let tls = plan.clusters["upstream"].tls.clone().expect("tunnel TLS");
    assert_eq!(
        tls.certificate.unwrap().certificate_chain,
        DataSource::Filename("/c.pem".into())
    );
    assert_eq!((tls.trusted_ca, tls.sni), (None, None));
    let cert = "          - { certificate_chain: { filename: /c.pem }, private_key: { filename: /k.pem } }\n";
    assert_error(
        &with_tls(&format!(
            "        common_tls_context:\n          tls_certificates:\n{cert}{cert}"
        )),
        "static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates: a cluster's TLS context takes at most one (client) certificate, got 2",
    );
    assert_error(
        &with_tls(
            "        common_tls_context:\n          validation_context: { trusted_ca: { filename: \"\" } }\n",
        ),
        "static_resources.clusters[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: must not be empty",
    );
    let v6 = Endpoint {
        host: "::1".into(),
        port: 9000,
    };
    assert_eq!(v6.to_string(), "[::1]:9000");
    assert_eq!(v6.socket_addr(), Some("[::1]:9000".parse().unwrap()));
    let name = Endpoint {
        host: "responder.example".into(),
        port: 9000,
    };
    assert_eq!(
        (name.to_string().as_str(), name.socket_addr()),
        ("responder.example:9000", None)
    );
}

#[test]
fn many_errors_stay_cheap() {
    // 20,000 unknown fields: every one is reported, once (repeats are dropped through a set, not a scan).
    let mut yaml = String::from("admin:\n");
    for i in 0..20_000 {
        yaml.push_str(&format!("  field_{i}: 1\n"));
    }
    yaml.push_str("  address: { socket_address: { address: 127.0.0.1, port_value: 1 } }\n");
    let errors = parse(&yaml).unwrap_err();
    assert_eq!(errors.len(), 20_000);
    assert_eq!(
        errors.errors()[0].to_string(),
        "admin.field_0: unknown or unsupported field; supported here: address, source_allow"
    );
}

// ---------------------------------------------------------------------------------------------------
// Security: allow-list patterns, identity binding, front-door RBAC, admin source allow-list.

#[test]
fn allow_list_patterns_are_checked_when_read() {
    let with = |fields: &str| {
        edit(
            RESPONDER,
            "          ping_interval: 2s\n",
            &format!("          ping_interval: 2s\n{fields}"),
        )
    };
    let typed = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    let plan = ok(&with(
        "          allowed_node_ids: [\"edge-*\", \"*.prod\", \"*\", exact]\n",
    ));
    let auth = &plan.responder.as_ref().unwrap().auth;
    assert_eq!(auth.allowed_node_ids, ["edge-*", "*.prod", "*", "exact"]);
    let policy = auth.policy(None).expect("valid patterns");
    assert!(policy.nodes.allows("edge-1") && policy.nodes.allows("anything"));
    assert_error(
        &with("          allowed_cluster_ids: [ok, \"a*b\"]\n"),
        &format!(
            "{typed}.allowed_cluster_ids[1]: invalid pattern \"a*b\": use an exact id, 'prefix*', '*suffix' or '*' alone ('*' may appear only once, at the start or the end)"
        ),
    );
    assert!(
        errors(&with("          allowed_tenant_ids: [\"**\"]\n"))[0]
            .starts_with(&format!("{typed}.allowed_tenant_ids[0]: invalid pattern"))
    );
}

#[test]
fn certificate_identity_is_read_and_needs_client_certificates() {
    let tls_chain = (
        "    - filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
        format!(
            "    - {}      filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
            SERVER_TLS.trim_start()
        ),
    );
    let binding = "          ping_interval: 2s\n          certificate_identity:\n            uri_san: \"spiffe://example.org/{cluster}/node/{node}\"\n            dns_san: \"{node}.nodes.example.org\"\n";
    let yaml = edits(
        RESPONDER,
        &[
            (tls_chain.0, tls_chain.1.as_str()),
            ("          ping_interval: 2s\n", binding),
        ],
    );
    let plan = ok(&yaml);
    let binding = plan.responder.unwrap().auth.certificate_identity.unwrap();
    assert_eq!(
        binding.uri_san.unwrap().to_string(),
        "spiffe://example.org/{cluster}/node/{node}"
    );
    assert_eq!(
        binding.dns_san.unwrap().to_string(),
        "{node}.nodes.example.org"
    );

    let typed = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    let with = |fields: &str| {
        edit(
            RESPONDER,
            "          ping_interval: 2s\n",
            &format!("          ping_interval: 2s\n{fields}"),
        )
    };
    assert_error(
        &with("          certificate_identity: { uri_san: \"spiffe://x/{node}\" }\n"),
        &format!(
            "{typed}.certificate_identity: needs verified client certificates: add a transport_socket whose DownstreamTlsContext has common_tls_context.validation_context.trusted_ca to this listener's filter chain"
        ),
    );
    assert_error(
        &with("          certificate_identity: { uri_san: \"spiffe://x/{name}\" }\n"),
        &format!(
            "{typed}.certificate_identity.uri_san: unknown placeholder or stray brace at byte 11 of \"spiffe://x/{{name}}\": the placeholders are {{node}}, {{cluster}} and {{tenant}}"
        ),
    );
    assert_error(
        &with("          certificate_identity: { dns_san: \"{cluster}.example.org\" }\n"),
        &format!(
            "{typed}.certificate_identity.dns_san: \"{{cluster}}.example.org\" must contain {{node}}"
        ),
    );
    assert_error(
        &with("          certificate_identity: {}\n"),
        &format!("{typed}.certificate_identity: set uri_san, dns_san or both"),
    );
    assert_error(
        &with("          certificate_identity: { uri_san: \"{node}\", bind_cluster: true }\n"),
        &format!(
            "{typed}.certificate_identity.bind_cluster: unknown or unsupported field; supported here: dns_san, uri_san"
        ),
    );
    assert_error(
        &with(
            "          bind_node_id_to_certificate: true\n          certificate_identity: { uri_san: \"{node}\" }\n",
        ),
        &format!(
            "{typed}.certificate_identity: set either bind_node_id_to_certificate or certificate_identity, not both"
        ),
    );
}

/// The RESPONDER fixture's front door with `filter` (an rbac filter, indented as a list element) before
/// its tcp_proxy.
fn front_door_with(filter: &str) -> String {
    edit(
        RESPONDER,
        "    - filters:\n      - name: envoy.filters.network.tcp_proxy\n",
        &format!("    - filters:\n{filter}      - name: envoy.filters.network.tcp_proxy\n"),
    )
}

const RBAC_HEAD: &str = "      - name: envoy.filters.network.rbac\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n";

#[test]
fn front_door_rbac_source_ranges() {
    let yaml = front_door_with(&format!(
        "{RBAC_HEAD}          stat_prefix: front_rbac\n          rules:\n            action: ALLOW\n            policies:\n              loopback:\n                permissions: [{{any: true}}]\n                principals:\n                - direct_remote_ip: {{address_prefix: 127.0.0.1, prefix_len: 32}}\n                - source_ip: {{address_prefix: \"::1\", prefix_len: 128}}\n              office:\n                permissions: [{{any: true}}]\n                principals: [{{remote_ip: {{address_prefix: 10.1.0.0, prefix_len: 16}}}}]\n"
    ));
    let plan = ok(&yaml);
    let rbac: &RbacPlan = plan.front_doors[0].rbac.as_ref().expect("rbac");
    assert_eq!(rbac.stat_prefix, "front_rbac");
    let ranges: Vec<String> = rbac
        .sources
        .ranges()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ranges, ["127.0.0.1/32", "::1/128", "10.1.0.0/16"]);
    assert!(rbac.sources.allows("10.1.2.3".parse().unwrap()));
    assert!(!rbac.sources.allows("127.0.0.2".parse().unwrap()));
}

#[test]
fn front_door_rbac_other_shapes_are_errors() {
    let filter = "static_resources.listeners[1].filter_chains[0].filters[0]";
    let typed = format!("{filter}.typed_config");
    let rules = |body: &str| {
        front_door_with(&format!(
            "{RBAC_HEAD}          stat_prefix: r\n          rules:\n{body}"
        ))
    };
    assert_error(
        &rules(
            "            action: DENY\n            policies:\n              p:\n                permissions: [{any: true}]\n                principals: [{any: true}]\n",
        ),
        &format!("{typed}.rules.action: only ALLOW is supported (a source-address allow-list)"),
    );
    assert_error(
        &rules(
            "            policies:\n              p:\n                permissions: [{destination_port: 80}]\n                principals: [{any: true}]\n",
        ),
        &format!(
            "{typed}.rules.policies.p.permissions[0].destination_port: permissions other than {{any: true}} are not supported (revtun's front doors see no request)"
        ),
    );
    assert_error(
        &rules(
            "            policies:\n              p:\n                permissions: [{any: true}]\n                principals: [{authenticated: {}}]\n",
        ),
        &format!(
            "{typed}.rules.policies.p.principals[0].authenticated: unsupported principal: revtun's front doors support direct_remote_ip, remote_ip, source_ip (address ranges) and any"
        ),
    );
    assert_error(
        &rules(
            "            policies:\n              p:\n                permissions: [{any: true}]\n                principals: [{direct_remote_ip: {address_prefix: 127.0.0.1, prefix_len: 33}}]\n",
        ),
        &format!(
            "{typed}.rules.policies.p.principals[0].direct_remote_ip.prefix_len: prefix_len 33 is larger than 32 for 127.0.0.1"
        ),
    );
    assert_error(
        &rules("            policies: {}\n"),
        &format!(
            "{typed}.rules.policies: at least one policy is needed (no policy would refuse every client)"
        ),
    );
    assert_error(
        &front_door_with(&format!(
            "{RBAC_HEAD}          stat_prefix: r\n          shadow_rules: {{}}\n          rules: {{policies: {{p: {{permissions: [{{any: true}}], principals: [{{any: true}}]}}}}}}\n"
        )),
        &format!(
            "{typed}.shadow_rules: not supported: revtun runs the RBAC filter only as a source-address allow-list (rules with action ALLOW)"
        ),
    );
    // On a handshake listener: refused.
    let on_handshake = edit(
        RESPONDER,
        "    - filters:\n      - name: envoy.filters.network.reverse_tunnel\n",
        &format!(
            "    - filters:\n{RBAC_HEAD}          stat_prefix: r\n          rules: {{policies: {{p: {{permissions: [{{any: true}}], principals: [{{any: true}}]}}}}}}\n      - name: envoy.filters.network.reverse_tunnel\n"
        ),
    );
    assert_error(
        &on_handshake,
        "static_resources.listeners[0].filter_chains[0].filters[0]: envoy.filters.network.rbac is supported on front-door listeners only (a socket listener whose tcp_proxy names a reverse-connection cluster)",
    );
}

#[test]
fn admin_source_allow() {
    let plan = ok(
        "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 9901 }\n  source_allow: [127.0.0.0/8, \"::1\"]\n",
    );
    let allow = plan.admin_source_allow.expect("allow-list");
    assert!(allow.allows("127.0.0.2".parse().unwrap()) && allow.allows("::1".parse().unwrap()));
    assert!(!allow.allows("10.0.0.1".parse().unwrap()));
    assert_error(
        "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 9901 }\n  source_allow: [127.0.0.0/40]\n",
        "admin.source_allow[0]: prefix_len 40 is larger than 32 for 127.0.0.0",
    );
    assert_error(
        "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 9901 }\n  source_allow: []\n",
        "admin.source_allow: must not be empty (it would refuse every client)",
    );
}
