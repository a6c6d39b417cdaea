//! The `revtun` program's security settings end to end: a responder process whose handshake listener
//! wants a bearer token from a token file (re-read on change) and allows `edge-*` nodes only, whose
//! front door has an `envoy.filters.network.rbac` source allow-list (127.0.0.1 only), and whose admin
//! endpoint has `source_allow`. Clients from 127.0.0.2 are refused; loopback 127/8 works on Linux.

mod program;

use std::net::SocketAddr;
use std::time::Duration;

use program::{Proc, eventually, free_port, http, http_raw, stat, temp_dir};
use revtun_tokio::core::initiator::{InitiatorConfig, TargetCluster};
use revtun_tokio::{HostSource, ReverseListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn responder_yaml(handshake: u16, door: u16, admin: u16, tokens: &std::path::Path) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
  source_allow: ["127.0.0.1/32"]
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.upstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface
    stat_prefix: upstream_rc
    claim_timeout: 1s
static_resources:
  listeners:
  - name: handshake
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {handshake} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: 0.2s
          bearer_token_file: {tokens}
          allowed_node_ids: ["edge-*"]
  - name: door
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {door} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: door
          rules:
            action: ALLOW
            policies:
              loopback-one:
                permissions: [{{ any: true }}]
                principals: [{{ direct_remote_ip: {{ address_prefix: 127.0.0.1, prefix_len: 32 }} }}]
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: door
          cluster: tunnels
  clusters:
  - name: tunnels
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.reverse_connection
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig
        host_id_format: edge-1
"#,
        tokens = tokens.display()
    )
}

/// An in-process initiator for `node` with `token`, echoing every claimed tunnel.
async fn initiator(handshake: SocketAddr, node: &str, token: &str) -> tokio::task::JoinHandle<()> {
    let target = TargetCluster {
        name: "responder".into(),
        count: 2,
    };
    let mut config = InitiatorConfig::new(node, "edge", "", vec![target]);
    config.extra_headers = vec![("authorization".into(), format!("Bearer {token}"))];
    config.max_reconnect_backoff = Duration::from_secs(1);
    let listener = ReverseListener::bind(
        config,
        vec![("responder".into(), HostSource::Static(vec![handshake]))],
    )
    .await
    .expect("initiator starts");
    tokio::spawn(async move {
        while let Ok((mut tunnel, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = tunnel.read(&mut buf).await {
                    if tunnel.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

/// A TCP connection to `to` from source address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(addr(from, 0)).expect("bind source");
    socket.connect(to).await.expect("connect")
}

/// Whether the peer closes `stream` within a second without sending anything.
async fn closed_at_once(mut stream: TcpStream) -> bool {
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The node's idle tunnels as `/reverse_connections` lists them.
async fn idle(admin: SocketAddr, node: &str) -> u64 {
    let Some((200, body)) = http(admin, "GET", "/reverse_connections").await else {
        return 0;
    };
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    doc["nodes"][node]["idle"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_allow_lists_front_door_rbac_and_admin_source_allow() {
    let dir = temp_dir("security");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "# initiators\nold-token\n").unwrap();
    let (handshake, door, admin) = (free_port(), free_port(), free_port());
    let file = dir.join("responder.yaml");
    std::fs::write(&file, responder_yaml(handshake, door, admin, &tokens)).unwrap();
    let admin = addr([127, 0, 0, 1], admin);
    let handshake = addr([127, 0, 0, 1], handshake);
    let door = addr([127, 0, 0, 1], door);
    let _proc = Proc::start(&file);
    eventually("/ready", Duration::from_secs(10), || async {
        matches!(http(admin, "GET", "/ready").await, Some((200, _)))
    })
    .await;

    // The right token registers; a node outside the allow-list gets 403, a wrong token 401.
    let edge = initiator(handshake, "edge-1", "old-token").await;
    eventually("edge-1's tunnels", Duration::from_secs(5), || async {
        idle(admin, "edge-1").await == 2
    })
    .await;
    let request = |node: &str, token: &str| {
        format!(
            "GET /reverse_connections/request HTTP/1.1\r\nhost: x\r\nx-envoy-reverse-tunnel-node-id: {node}\r\nx-envoy-reverse-tunnel-cluster-id: edge\r\nx-envoy-reverse-tunnel-tenant-id: \r\nx-envoy-reverse-tunnel-upstream-cluster-name: responder\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\n\r\n"
        )
    };
    let answer = http_raw(handshake, request("core-1", "old-token").as_bytes()).await;
    assert_eq!(answer.map(|a| a.0), Some(403));
    let answer = http_raw(handshake, request("edge-2", "wrong").as_bytes()).await;
    assert_eq!(answer.map(|a| a.0), Some(401));

    // Front door: 127.0.0.1 reaches the echo behind edge-1; 127.0.0.2 is closed at once and counted.
    let mut client = connect_from([127, 0, 0, 1], door).await;
    client.write_all(b"ping through").await.unwrap();
    let mut back = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&back, b"ping through");
    drop(client);
    assert!(closed_at_once(connect_from([127, 0, 0, 2], door).await).await);
    assert_eq!(stat(admin, "door.rbac.denied").await, Some(1));
    assert_eq!(stat(admin, "door.rbac.allowed").await, Some(1));
    let (_, exposition) = http(admin, "GET", "/stats/prometheus").await.unwrap();
    assert!(
        exposition
            .contains("revtun_front_door_rbac_total{stat_prefix=\"door\",result=\"denied\"} 1"),
        "{exposition}"
    );
    // The refused client never claimed a tunnel.
    assert_eq!(stat(admin, "upstream_rc.claims.handed_out").await, Some(1));

    // Admin from 127.0.0.2: closed without an answer.
    let mut probe = connect_from([127, 0, 0, 2], admin).await;
    let _ = probe
        .write_all(b"GET /stats HTTP/1.1\r\nhost: a\r\n\r\n")
        .await;
    assert!(closed_at_once(probe).await);

    // Token rotation: rewrite the file; the new token registers, the old one is refused, and the
    // tunnels registered with the old token stay.
    let rotated = dir.join("tokens.new");
    std::fs::write(&rotated, "new-token\n").unwrap();
    std::fs::rename(&rotated, &tokens).unwrap();
    eventually("the rotated token", Duration::from_secs(5), || async {
        let answer = http_raw(handshake, request("edge-9", "old-token").as_bytes()).await;
        answer.is_some_and(|a| a.0 == 401)
    })
    .await;
    let fresh = initiator(handshake, "edge-3", "new-token").await;
    eventually("edge-3's tunnels", Duration::from_secs(5), || async {
        idle(admin, "edge-3").await == 2
    })
    .await;
    assert_eq!(idle(admin, "edge-1").await, 2, "existing tunnels stay");
    assert!(stat(admin, "reverse_tunnel.handshake.auth_failed").await >= Some(2));
    assert_eq!(
        stat(admin, "reverse_tunnel.handshake.validation_failed").await,
        Some(1)
    );
    edge.abort();
    fresh.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An initiator process (`edge-1`, two tunnels to an echo service) sending the token in `token_file`.
fn initiator_yaml(handshake: u16, echo: u16, admin: u16, token_file: &std::path::Path) -> String {
    format!(
        r#"
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    stat_prefix: downstream_rc
    max_reconnect_backoff: 1s
    http_handshake:
      bearer_token_file: {token_file}
static_resources:
  listeners:
  - name: edge
    address: {{ socket_address: {{ address: "rc://edge-1:edge:@responder:2", port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: edge
          cluster: echo
  clusters:
  - name: responder
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: responder
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {handshake} }} }} }}
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {echo} }} }} }}
"#,
        token_file = token_file.display()
    )
}

/// Writes `text` to `path` through a rename, as a secrets agent would.
fn replace_file(path: &std::path::Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// The rotation procedure without restarting anything: the new token added to the responder's file,
/// written to the initiator's file, the old one removed from the responder's file. A tunnel claimed
/// afterwards is replaced by a handshake with the new token; the tunnels up are kept throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_token_file_rotation_needs_no_restart() {
    let dir = temp_dir("initiator-token");
    let tokens = dir.join("tokens");
    let token = dir.join("token");
    std::fs::write(&tokens, "old-token\n").unwrap();
    std::fs::write(&token, "old-token\n").unwrap();
    let (handshake, door, admin, initiator_admin) =
        (free_port(), free_port(), free_port(), free_port());
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("echo");
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(program::echo_service(echo));
    let responder_file = dir.join("responder.yaml");
    std::fs::write(
        &responder_file,
        responder_yaml(handshake, door, admin, &tokens),
    )
    .unwrap();
    let initiator_file = dir.join("initiator.yaml");
    std::fs::write(
        &initiator_file,
        initiator_yaml(handshake, echo_port, initiator_admin, &token),
    )
    .unwrap();
    let admin = addr([127, 0, 0, 1], admin);
    let door = addr([127, 0, 0, 1], door);
    let _responder = Proc::start(&responder_file);
    eventually("responder /ready", Duration::from_secs(10), || async {
        matches!(http(admin, "GET", "/ready").await, Some((200, _)))
    })
    .await;
    let _initiator = Proc::start(&initiator_file);
    let full = || async { idle(admin, "edge-1").await == 2 };
    eventually("edge-1's tunnels", Duration::from_secs(10), full).await;

    replace_file(&tokens, "old-token\nnew-token\n");
    replace_file(&token, "new-token\n");
    replace_file(&tokens, "new-token\n");
    let probe = "GET /reverse_connections/request HTTP/1.1\r\nhost: x\r\nx-envoy-reverse-tunnel-node-id: edge-9\r\nx-envoy-reverse-tunnel-cluster-id: edge\r\nx-envoy-reverse-tunnel-tenant-id: \r\nx-envoy-reverse-tunnel-upstream-cluster-name: responder\r\nauthorization: Bearer old-token\r\ncontent-length: 0\r\n\r\n";
    let handshake = addr([127, 0, 0, 1], handshake);
    eventually("the old token refused", Duration::from_secs(5), || async {
        let answer = http_raw(handshake, probe.as_bytes()).await;
        answer.is_some_and(|a| a.0 == 401)
    })
    .await;
    // Until the initiator has re-read its file, a replacement is refused (401) and retried.
    let mut client = connect_from([127, 0, 0, 1], door).await;
    client.write_all(b"rotated").await.unwrap();
    let mut back = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&back, b"rotated");
    drop(client);
    eventually(
        "a replacement with the new token",
        Duration::from_secs(10),
        full,
    )
    .await;
    assert!(
        stat(admin, "reverse_tunnel.handshake.accepted").await >= Some(3),
        "a new handshake registered"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
