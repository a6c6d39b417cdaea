//! `revtun demo`: everything on 127.0.0.1, no config. A private HTTP service that only the initiator's
//! side can reach, a responder, an initiator (node `demo-node`, 2 tunnels), then requests from the
//! responder's side through the tunnels: three with `connect("demo-node")`, one through a front door.
//! Prints what happens and the key statistics, then shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::responder::ResponderConfig;
use revtun_tokio::{HostSource, Responder, ReverseListener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::front_door::{self, FrontDoor};
use crate::proxy::{self, LocalService};
use crate::stats::{Direction, Relayed};

/// The node id of the demo's initiator.
const NODE: &str = "demo-node";
/// The target cluster (the responder) the initiator dials.
const TARGET: &str = "demo-responder";
/// Tunnels kept per host.
const COUNT: u32 = 2;
/// Bound on every wait of the demo.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    println!(
        "revtun demo: responder, initiator ({NODE}) and a private HTTP service, all on 127.0.0.1\n"
    );

    let service = TcpListener::bind("127.0.0.1:0").await?;
    let service_addr = service.local_addr()?;
    tokio::spawn(http_service(service));
    println!("service     private HTTP service on {service_addr} (behind the initiator)");

    let mut config = ResponderConfig::default();
    config.keepalive.interval = Duration::from_millis(500);
    config.claim_timeout = Duration::from_secs(2);
    let responder = Responder::bind("127.0.0.1:0".parse()?, config).await?;
    println!(
        "responder   accepting handshakes on {}",
        responder.local_addr()
    );

    let target = TargetCluster {
        name: TARGET.into(),
        count: COUNT,
    };
    let config = InitiatorConfig::new(NODE, "demo-cluster", "", vec![target]);
    let hosts = HostSource::Static(vec![responder.local_addr()]);
    let listener = Arc::new(ReverseListener::bind(config, vec![(TARGET.into(), hosts)]).await?);
    println!("initiator   {NODE} keeps {COUNT} idle tunnels to {TARGET}");
    let relayed = Arc::new(Relayed::default());
    let local = Arc::new(LocalService::fixed("demo-service", service_addr));
    let accept = {
        let (listener, relayed) = (listener.clone(), relayed.clone());
        tokio::spawn(async move {
            while let Ok((tunnel, info)) = listener.accept().await {
                let (local, relayed) = (local.clone(), relayed.clone());
                let idle = Some(Duration::from_secs(10));
                tokio::spawn(proxy::serve_tunnel(
                    tunnel, info, local, idle, relayed, None,
                ));
            }
        })
    };

    wait_for_idle(&responder, u64::from(COUNT)).await?;
    println!(
        "tunnels up  {NODE}: {COUNT} idle tunnels registered ({} ms)\n",
        started.elapsed().as_millis()
    );

    for i in 1..=3 {
        let tunnel = tokio::time::timeout(STEP_TIMEOUT, responder.connect(NODE))
            .await
            .context("claim")??;
        request(tunnel, &format!("/hello/{i}"), "connect(\"demo-node\")").await?;
    }

    let door = FrontDoor {
        claim_id: NODE.into(),
        tenant: None,
        idle_timeout: Some(Duration::from_secs(10)),
        limit: None,
        responder: responder.clone(),
        relayed: relayed.clone(),
        listener_tls: None,
        data_tls: None,
        rbac: None,
    };
    let door_listener = TcpListener::bind("127.0.0.1:0").await?;
    let door_addr = door_listener.local_addr()?;
    let door_task = tokio::spawn(front_door::accept_loop(
        door_listener,
        Arc::new(door),
        TaskTracker::new(),
    ));
    let client = TcpStream::connect(door_addr).await?;
    revtun_tokio::configure_socket(&client)?;
    request(
        client,
        "/via-front-door",
        &format!("front door {door_addr}"),
    )
    .await?;

    wait_for_idle(&responder, u64::from(COUNT)).await?;
    println!("\npool        refilled: {NODE} has {COUNT} idle tunnels again\n");

    let mut stats = responder.stats().await?;
    stats.merge(&listener.stats().await?);
    println!("key statistics");
    for name in [
        "reverse_tunnel.handshake.accepted".to_owned(),
        format!("reverse_connections.nodes.{NODE}"),
        "reverse_connections.claims.handed_out".to_owned(),
        format!("downstream_reverse_connection.cluster.{TARGET}.connected"),
        format!("downstream_reverse_connection.cluster.{TARGET}.failed"),
    ] {
        println!("  {name}: {}", stats.get(&name).unwrap_or(0));
    }
    for direction in [Direction::TunnelToService, Direction::ServiceToTunnel] {
        println!(
            "  revtun.relayed_bytes.{}: {}",
            direction.name(),
            relayed.get(direction)
        );
    }

    door_task.abort();
    accept.abort();
    let _ = accept.await;
    if let Ok(listener) = Arc::try_unwrap(listener) {
        listener.shutdown().await;
    }
    responder.shutdown().await;
    println!(
        "\ndone in {} ms: every request crossed a tunnel the initiator dialled out",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Waits until the node has at least `idle` idle tunnels.
async fn wait_for_idle(responder: &Responder, idle: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let nodes = responder.nodes().await?;
        if nodes.iter().any(|n| n.node == NODE && n.idle >= idle) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{NODE} did not register {idle} idle tunnels in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one HTTP/1.1 request over `stream` and prints the status line and body.
async fn request(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    path: &str,
    via: &str,
) -> anyhow::Result<()> {
    let head = format!("GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(STEP_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .context("response")??;
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or("");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim_end();
    println!("request     GET {path} via {via}");
    println!("  response  {status} | {body}");
    Ok(())
}

/// The private service: answers each HTTP request with one line, then closes.
async fn http_service(listener: TcpListener) {
    let mut served = 0u64;
    while let Ok((mut stream, _)) = listener.accept().await {
        served += 1;
        if let Err(e) = revtun_tokio::configure_socket(&stream) {
            tracing::debug!(error = %e, "service socket options");
        }
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = format!("hello from behind the NAT: {path} (connection #{served})\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
