//! `role initiator`: the library's `ReverseListener` with one target cluster whose hosts are the
//! responder's handshake ports (`count` idle tunnels per host); each claimed tunnel is relayed to a local
//! service (`--service`), or closed when there is none.
//!
//! `READY waiting`, then `GO` starts the listener (so the harness can read the start-up RSS first) and
//! answers `GO started`; `STATS` → `STATS idle=<n> live=<n>`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_driver::{HostSource, ListenerOptions, ReverseListener, Runtime};

use super::{Common, NODE, NODE_CLUSTER, TARGET, commands, parse, run_on};
use crate::child::{announce, say};

/// Arguments of `role initiator`.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// The responder's handshake addresses (the target cluster's hosts).
    #[arg(long, value_delimiter = ',', required = true)]
    hosts: Vec<SocketAddr>,
    /// Idle tunnels per host (`count`, 1–1024).
    #[arg(long)]
    count: u32,
    /// Where claimed tunnels are relayed.
    #[arg(long)]
    service: Option<SocketAddr>,
    /// Do not offer the `RDATA` claim marker (Envoy mode: the responder hands a claimed tunnel out at
    /// once instead of waiting for the initiator's `RDATA`).
    #[arg(long)]
    no_claim_marker: bool,
}

/// The role's entry point.
///
/// # Errors
/// Bad arguments, TLS asked for, or an invalid configuration.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args: Args = parse("initiator", args)?;
    crate::sys::raise_nofile_limit()?;
    run_on(args.common.runtime, |rt| serve(rt, args))
}

async fn serve(rt: Arc<dyn Runtime>, args: Args) -> anyhow::Result<()> {
    announce("waiting");
    let commands = commands();
    let mut listener: Option<Arc<ReverseListener>> = None;
    while let Ok(command) = commands.recv().await {
        match (command.as_str(), &listener) {
            ("GO", None) => {
                let started = Arc::new(start(&rt, &args).await?);
                if let Some(service) = args.service {
                    rt.spawn(Box::pin(relay_claims(rt.clone(), started.clone(), service)));
                }
                listener = Some(started);
                say("GO", "started");
            }
            ("STATS", Some(listener)) => {
                let counts = listener.counts().await?;
                say(
                    "STATS",
                    &format!("idle={} live={}", counts.idle, counts.live()),
                );
            }
            (other, _) => say("ERROR", &format!("unexpected command {other:?}")),
        }
    }
    Ok(())
}

async fn start(rt: &Arc<dyn Runtime>, args: &Args) -> anyhow::Result<ReverseListener> {
    let target = TargetCluster {
        name: TARGET.to_owned(),
        count: args.count,
    };
    let mut config = InitiatorConfig::new(NODE, NODE_CLUSTER, "", vec![target]);
    config.offer_claim_marker = !args.no_claim_marker;
    // The default cap (256 live tunnels per host) would keep `count` above 256 from being reached.
    config.max_tunnels_per_host = config
        .max_tunnels_per_host
        .max(args.count.saturating_mul(2));
    let hosts = HostSource::Static(args.hosts.clone());
    let listener = ReverseListener::bind(
        rt.clone(),
        config,
        vec![(TARGET.to_owned(), hosts)],
        options(args)?,
    )
    .await?;
    Ok(listener)
}

/// Library defaults, plus tunnel TLS to the target cluster with `--tls-dir`.
fn options(args: &Args) -> anyhow::Result<ListenerOptions> {
    let mut options = ListenerOptions::default();
    if let Some(tls) = args.common.client_tls()? {
        options.tunnel_tls.insert(TARGET.to_owned(), tls);
    }
    Ok(options)
}

/// Longest a service relay may sit without moving a byte.
const RELAY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Relays every claimed tunnel to `service` until the listener shuts down.
async fn relay_claims(rt: Arc<dyn Runtime>, listener: Arc<ReverseListener>, service: SocketAddr) {
    while let Ok((tunnel, _info)) = listener.accept().await {
        let rt2 = rt.clone();
        rt.spawn(Box::pin(async move {
            if let Ok(local) = rt2.connect(service).await {
                let _ = revtun_driver::relay(&*rt2, tunnel, local, Some(RELAY_IDLE_TIMEOUT)).await;
            }
        }));
    }
}
