//! Two `revtun` processes on loopback: a responder (handshake listener, two front doors, admin) and an
//! initiator (two rc:// listeners: an echo service and a server-speaks-first service started here).
//! Traffic through the front doors, the admin endpoints, a responder crash and restart, SIGTERM.

mod program;

use std::net::SocketAddr;
use std::time::Duration;

use program::{
    Fnv, Proc, echo_service, eventually, free_port, http, http_raw, stat, stats, temp_dir,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ECHO_COUNT: u64 = 8;
const GREET_COUNT: u64 = 2;

struct Ports {
    responder_admin: u16,
    handshake: u16,
    echo_door: u16,
    greet_door: u16,
    initiator_admin: u16,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn responder_yaml(p: &Ports) -> String {
    let door = |name: &str, port: u16, cluster: &str| {
        format!(
            r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {name}
          cluster: {cluster}
          idle_timeout: 5s"#
        )
    };
    let cluster = |name: &str, node: &str| {
        format!(
            r#"
  - name: {name}
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.reverse_connection
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig
        host_id_format: {node}"#
        )
    };
    format!(
        r#"
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.upstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface
    stat_prefix: upstream_rc
static_resources:
  listeners:
  - name: handshake
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {hs} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: 0.2s{echo_door}{greet_door}
  clusters:{echo}{greet}
"#,
        admin = p.responder_admin,
        hs = p.handshake,
        echo_door = door("echo_door", p.echo_door, "echo"),
        greet_door = door("greet_door", p.greet_door, "greet"),
        echo = cluster("echo", "echo-node"),
        greet = cluster("greet", "greet-node"),
    )
}

fn initiator_yaml(p: &Ports, echo: u16, greet: u16) -> String {
    let rc = |name: &str, node: &str, count: u64, service: &str| {
        format!(
            r#"
  - name: {name}
    address: {{ socket_address: {{ address: "rc://{node}:edge:@responder:{count}", port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {name}
          cluster: {service}"#
        )
    };
    let cluster = |name: &str, port: u16| {
        format!(
            r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
        )
    };
    format!(
        r#"
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    stat_prefix: downstream_rc
    max_reconnect_backoff: 1s
    idle_timeout: 2s
static_resources:
  listeners:{echo_rc}{greet_rc}
  clusters:{responder}{echo}{greet}
"#,
        admin = p.initiator_admin,
        echo_rc = rc("echo_rc", "echo-node", ECHO_COUNT, "echo-service"),
        greet_rc = rc("greet_rc", "greet-node", GREET_COUNT, "greet-service"),
        responder = cluster("responder", p.handshake),
        echo = cluster("echo-service", echo),
        greet = cluster("greet-service", greet),
    )
}

/// A server-speaks-first service: a greeting before reading anything, then `221 bye` to any line.
async fn greet_service(listener: TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = stream.write_all(b"220 greet-node ready\r\n").await;
            let mut buf = [0u8; 64];
            if let Ok(1..) = stream.read(&mut buf).await {
                let _ = stream.write_all(b"221 bye\r\n").await;
            }
        });
    }
}

/// Sends `len` seeded random bytes through the echo door and checks what comes back.
async fn echo_through(door: SocketAddr, seed: u64, len: usize) {
    let stream = TcpStream::connect(door).await.expect("connect front door");
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sent = Fnv::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill_bytes(&mut chunk[..n]);
            sent.update(&chunk[..n]);
            w.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        w.shutdown().await.expect("half-close");
        sent.0
    });
    let mut received = Fnv::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        received.update(&buf[..n]);
        total += n;
    }
    let sent = writer.await.expect("writer");
    assert_eq!(total, len, "stream {seed}: bytes back");
    assert_eq!(received.0, sent, "stream {seed}: checksum");
}

/// Starts `revtun -c file` and waits until its admin's `/ready` answers 200.
async fn start_ready(file: &std::path::Path, admin: SocketAddr) -> Proc {
    let proc = Proc::start(file);
    eventually("/ready", Duration::from_secs(10), || async {
        matches!(http(admin, "GET", "/ready").await, Some((200, _)))
    })
    .await;
    proc
}

/// The responder lists both nodes with their full pools.
async fn pools_full(admin: SocketAddr) -> bool {
    let Some((200, body)) = http(admin, "GET", "/reverse_connections").await else {
        return false;
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    doc["nodes"]["echo-node"]["idle"] == ECHO_COUNT
        && doc["nodes"]["greet-node"]["idle"] == GREET_COUNT
}

/// The initiator's gauges say what is true: every tunnel connected, none connecting, no backoff.
async fn initiator_settled(admin: SocketAddr) -> bool {
    let all = stats(admin).await;
    let s = |name: &str| {
        let name = format!("downstream_rc.cluster.responder.{name}");
        all.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    };
    s("connected") == Some(ECHO_COUNT + GREET_COUNT)
        && s("connecting") == Some(0)
        && s("backoff") == Some(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_through_the_front_doors() {
    let dir = temp_dir("e2e");
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("echo");
    let greet = TcpListener::bind("127.0.0.1:0").await.expect("greet");
    let (echo_port, greet_port) = (
        echo.local_addr().expect("addr").port(),
        greet.local_addr().expect("addr").port(),
    );
    tokio::spawn(echo_service(echo));
    tokio::spawn(greet_service(greet));
    let p = Ports {
        responder_admin: free_port(),
        handshake: free_port(),
        echo_door: free_port(),
        greet_door: free_port(),
        initiator_admin: free_port(),
    };
    let responder_file = dir.join("responder.yaml");
    let initiator_file = dir.join("initiator.yaml");
    std::fs::write(&responder_file, responder_yaml(&p)).expect("write");
    std::fs::write(&initiator_file, initiator_yaml(&p, echo_port, greet_port)).expect("write");
    for file in [&responder_file, &initiator_file] {
        let out = program::run(
            &["--mode", "validate", "-c", file.to_str().expect("path")],
            Duration::from_secs(10),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let (r_admin, i_admin) = (addr(p.responder_admin), addr(p.initiator_admin));
    let mut responder = start_ready(&responder_file, r_admin).await;
    let mut initiator = start_ready(&initiator_file, i_admin).await;
    eventually("full pools", Duration::from_secs(10), || {
        pools_full(r_admin)
    })
    .await;

    // 50 concurrent clients with 512 KiB each, and one 64 MiB stream.
    let door = addr(p.echo_door);
    let mut clients = tokio::task::JoinSet::new();
    for seed in 0..50 {
        clients.spawn(echo_through(door, seed, 512 * 1024));
    }
    clients.spawn(echo_through(door, 1000, 64 * 1024 * 1024));
    let all = async {
        while let Some(done) = clients.join_next().await {
            done.expect("client");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("traffic within 60 s");

    // Server speaks first: the greeting arrives before the client sends anything.
    let mut client = TcpStream::connect(addr(p.greet_door))
        .await
        .expect("greet door");
    let mut line = [0u8; 22];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut line))
        .await
        .expect("greeting in time")
        .expect("greeting");
    assert_eq!(&line, b"220 greet-node ready\r\n");
    client.write_all(b"QUIT\r\n").await.expect("quit");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("bye");
    assert_eq!(rest, b"221 bye\r\n");

    check_admin(r_admin, i_admin).await;

    // Crash and restart the responder: the initiator reconnects and its gauges are true again.
    eventually("pools refilled", Duration::from_secs(10), || {
        pools_full(r_admin)
    })
    .await;
    responder.kill();
    eventually(
        "initiator sees the loss",
        Duration::from_secs(10),
        || async {
            stat(i_admin, "downstream_rc.cluster.responder.connected").await
                != Some(ECHO_COUNT + GREET_COUNT)
        },
    )
    .await;
    let mut responder = start_ready(&responder_file, r_admin).await;
    eventually("full pools after restart", Duration::from_secs(15), || {
        pools_full(r_admin)
    })
    .await;
    eventually("initiator gauges settle", Duration::from_secs(10), || {
        initiator_settled(i_admin)
    })
    .await;
    let failed = stat(i_admin, "downstream_rc.cluster.responder.failed").await;
    assert!(
        failed.is_some_and(|f| f >= 1),
        "the outage was counted: {failed:?}"
    );
    echo_through(door, 2000, 64 * 1024).await;

    // SIGTERM: both exit 0.
    assert!(initiator.terminate(Duration::from_secs(10)).success());
    assert!(responder.terminate(Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(dir);
}

/// Every admin endpoint of both processes.
async fn check_admin(r_admin: SocketAddr, i_admin: SocketAddr) {
    // /stats: sorted `name: value` lines.
    let (status, body) = http(r_admin, "GET", "/stats").await.expect("/stats");
    assert_eq!(status, 200);
    let names: Vec<&str> = body
        .lines()
        .map(|l| {
            let (name, value) = l.split_once(": ").expect("name: value");
            value.parse::<u64>().expect("integer value");
            name
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let all = stats(r_admin).await;
    let get = |n: &str| all.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
    assert!(get("reverse_tunnel.handshake.accepted") >= Some(ECHO_COUNT + GREET_COUNT));
    assert!(get("upstream_rc.claims.handed_out") >= Some(52));
    let relayed = 50 * 512 * 1024 + 64 * 1024 * 1024;
    assert!(get("revtun.relayed_bytes.client_to_tunnel") >= Some(relayed));
    assert!(get("revtun.relayed_bytes.tunnel_to_client") >= Some(relayed));
    let initiator_relayed = stat(i_admin, "revtun.relayed_bytes.tunnel_to_service").await;
    assert!(initiator_relayed >= Some(relayed));

    // JSON.
    let (status, body) = http(r_admin, "GET", "/stats?format=json")
        .await
        .expect("json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let list = doc["stats"].as_array().expect("stats array");
    assert_eq!(list.len(), names.len());
    assert!(
        list.iter()
            .all(|s| s["name"].is_string() && s["value"].is_u64())
    );

    // Prometheus: every sample line is `name{labels} value`, every family has a TYPE line.
    for admin in [r_admin, i_admin] {
        let (status, body) = http(admin, "GET", "/stats/prometheus").await.expect("prom");
        assert_eq!(status, 200);
        check_exposition(&body);
    }
    let (_, body) = http(r_admin, "GET", "/stats/prometheus")
        .await
        .expect("prom");
    assert!(body.contains("# TYPE revtun_handshakes_total counter"));
    assert!(body.contains(
        "revtun_responder_tunnels{tenant=\"\",cluster=\"edge\",node=\"echo-node\",state=\"idle\"}"
    ));
    let (_, body) = http(i_admin, "GET", "/stats/prometheus")
        .await
        .expect("prom");
    assert!(
        body.contains(
            "revtun_initiator_tunnels{cluster=\"responder\",host=\"\",state=\"connected\"}"
        )
    );

    // /reverse_connections lists the nodes and their cluster.
    let (status, body) = http(r_admin, "GET", "/reverse_connections")
        .await
        .expect("rc");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    assert_eq!(doc["nodes"]["echo-node"]["cluster"], "edge");
    assert_eq!(doc["clusters"]["edge"]["nodes"], 2);

    // /ready, 404, 405, 400 — and concurrent scrapes.
    assert_eq!(http(r_admin, "GET", "/ready").await.map(|r| r.0), Some(200));
    assert_eq!(http(r_admin, "GET", "/nope").await.map(|r| r.0), Some(404));
    assert_eq!(
        http(r_admin, "POST", "/stats").await.map(|r| r.0),
        Some(405)
    );
    let bad = http_raw(r_admin, b"GARBAGE\r\n\r\n").await.map(|r| r.0);
    assert_eq!(bad, Some(400));
    let scrapes: Vec<_> = (0..20)
        .map(|_| tokio::spawn(http(r_admin, "GET", "/stats/prometheus")))
        .collect();
    for scrape in scrapes {
        assert_eq!(scrape.await.expect("scrape").map(|r| r.0), Some(200));
    }
}

/// A small check of the text exposition format.
fn check_exposition(body: &str) {
    let mut typed = std::collections::BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("TYPE family kind");
            assert!(kind == "gauge" || kind == "counter", "{line}");
            typed.insert(family.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        value.parse::<u64>().expect("integer sample");
        let family = series.split('{').next().expect("family");
        assert!(
            family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains(family), "no TYPE before {line}");
        if let Some(labels) = series.strip_prefix(family) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
    }
}
