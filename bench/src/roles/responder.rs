//! `role responder`: the library's responder on N handshake ports (one pool) and, optionally, a TCP
//! front door that claims a tunnel of one node per client and relays with the library's `relay` (the
//! `revtun` program's front door, minus limits and tenants).
//!
//! `READY handshake=<addr,…> front=<addr|->`; commands: `STATS` →
//! `STATS idle=<n> live=<n> accepted=<reverse_tunnel.handshake.accepted>`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use revtun_core::responder::ResponderConfig;
use revtun_driver::{Listener, ResponderHandle, ResponderOptions, Runtime};

use super::multi_listener::MultiListener;
use super::{Common, commands, join_addrs, parse, run_on};
use crate::child::{announce, say};

/// Arguments of `role responder`.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Handshake listeners on 127.0.0.1, ports chosen by the system.
    #[arg(long, default_value_t = 1)]
    ports: usize,
    /// Bind exactly these handshake addresses instead (a restart on the same ports).
    #[arg(long, value_delimiter = ',')]
    bind: Vec<SocketAddr>,
    /// Serve a TCP front door on 127.0.0.1 that claims a tunnel of this node id per client.
    #[arg(long)]
    front_door: Option<String>,
    /// Both pending-handshake caps, total and per source IP (every load comes from 127.0.0.1).
    #[arg(long)]
    pending_cap: Option<usize>,
}

/// The role's entry point.
///
/// # Errors
/// Bad arguments, TLS asked for, or a socket that cannot be bound.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args: Args = parse("responder", args)?;
    crate::sys::raise_nofile_limit()?;
    run_on(args.common.runtime, |rt| serve(rt, args))
}

async fn serve(rt: Arc<dyn Runtime>, args: Args) -> anyhow::Result<()> {
    let addrs = if args.bind.is_empty() {
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0)); args.ports.max(1)]
    } else {
        args.bind.clone()
    };
    let (listener, bound) = MultiListener::bind(&rt, &addrs).await?;
    let responder = ResponderHandle::serve(
        rt.clone(),
        Box::new(listener),
        config(&args),
        options(&args)?,
    )?;
    let front = match &args.front_door {
        Some(node) => {
            let listener = rt.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            let addr = listener.local_addr()?;
            let door = front_door(rt.clone(), listener, responder.clone(), node.clone());
            rt.spawn(Box::pin(door));
            addr.to_string()
        }
        None => "-".to_owned(),
    };
    announce(&format!("handshake={} front={front}", join_addrs(&bound)));
    let commands = commands();
    while let Ok(command) = commands.recv().await {
        match command.as_str() {
            "STATS" => {
                let counts = responder.counts().await?;
                let stats = responder.stats().await?;
                let accepted = stats.get("reverse_tunnel.handshake.accepted").unwrap_or(0);
                say(
                    "STATS",
                    &format!(
                        "idle={} live={} accepted={accepted}",
                        counts.idle,
                        counts.live()
                    ),
                );
            }
            other => say("ERROR", &format!("unknown command {other:?}")),
        }
    }
    Ok(())
}

/// Library defaults, except the pending-handshake caps when `--pending-cap` is given.
fn config(args: &Args) -> ResponderConfig {
    let mut config = ResponderConfig::default();
    if let Some(cap) = args.pending_cap {
        config.max_pending_handshakes = cap;
        config.max_pending_handshakes_per_ip = cap;
    }
    config
}

/// Library defaults, plus tunnel TLS with `--tls-dir`.
fn options(args: &Args) -> anyhow::Result<ResponderOptions> {
    Ok(ResponderOptions {
        tunnel_tls: args.common.server_tls()?,
        ..ResponderOptions::default()
    })
}

/// Longest a front-door relay may sit without moving a byte.
const RELAY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts clients until the process ends; each claims a tunnel of `node` and is relayed through it.
async fn front_door(
    rt: Arc<dyn Runtime>,
    mut listener: Box<dyn Listener>,
    responder: ResponderHandle,
    node: String,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                rt.sleep_until(rt.now() + Duration::from_millis(50)).await;
                continue;
            }
        };
        let (rt2, responder, node) = (rt.clone(), responder.clone(), node.clone());
        rt.spawn(Box::pin(async move {
            // A failed claim (claim_timeout) closes the client, as the `revtun` front door does.
            if let Ok(tunnel) = responder.connect(&node).await {
                let _ = revtun_driver::relay(&*rt2, client, tunnel, Some(RELAY_IDLE_TIMEOUT)).await;
            }
        }));
    }
}
