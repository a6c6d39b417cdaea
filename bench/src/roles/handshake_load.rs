//! `role handshake-load`: opens connections to the responder's handshake ports, sends the exact
//! handshake request (built with `revtun_core::handshake`), waits for the `200`, closes; `--concurrency`
//! of them in flight for `--duration-ms`.
//!
//! `READY waiting`; `GO` runs the load and answers `GO ok=<n> errors=<n> secs=<elapsed> cpu=<own
//! CPU-seconds during the load>`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{RuntimeKind, TARGET, commands, parse, run_on};
use crate::child::{announce, say};

/// Arguments of `role handshake-load`.
#[derive(Debug, clap::Parser)]
struct Args {
    /// The responder's handshake addresses (used round-robin).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<SocketAddr>,
    /// Handshakes in flight.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// How long to keep the load up, in milliseconds.
    #[arg(long)]
    duration_ms: u64,
}

/// Longest one handshake may take before it counts as an error.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Largest response head read.
const MAX_RESPONSE_HEAD: usize = 1024;

/// The role's entry point.
///
/// # Errors
/// Bad arguments.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args: Args = parse("handshake-load", args)?;
    crate::sys::raise_nofile_limit()?;
    run_on(RuntimeKind::Tokio, |_| serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    announce("waiting");
    let commands = commands();
    while let Ok(command) = commands.recv().await {
        if command != "GO" {
            say("ERROR", &format!("unexpected command {command:?}"));
            continue;
        }
        let cpu_before = crate::sys::own_cpu_seconds().unwrap_or(0.0);
        let start = Instant::now();
        let (ok, errors) = load(&args).await;
        let secs = start.elapsed().as_secs_f64();
        let cpu = crate::sys::own_cpu_seconds().unwrap_or(0.0) - cpu_before;
        say(
            "GO",
            &format!("ok={ok} errors={errors} secs={secs:.3} cpu={cpu:.3}"),
        );
    }
    Ok(())
}

/// Runs the workers; returns (handshakes answered 200, failures).
async fn load(args: &Args) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency.max(1) {
        let target = args.targets[worker % args.targets.len()];
        let node = format!("load-{worker}");
        let request: Arc<[u8]> = HandshakeRequest {
            method: DEFAULT_REQUEST_METHOD,
            path: DEFAULT_REQUEST_PATH,
            host: target,
            node: &node,
            cluster: "bench-load",
            tenant: "",
            target_cluster: TARGET,
            initiation_time_ms: unix_ms,
            upgrade: false,
            offer_claim_marker: true,
            extra_headers: &[],
        }
        .to_bytes()
        .to_vec()
        .into();
        workers.spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                match tokio::time::timeout(HANDSHAKE_DEADLINE, handshake(target, &request)).await {
                    Ok(Ok(())) => ok += 1,
                    _ => errors += 1,
                }
            }
            (ok, errors)
        });
    }
    let (mut ok, mut errors) = (0, 0);
    while let Some(joined) = workers.join_next().await {
        if let Ok((o, e)) = joined {
            ok += o;
            errors += e;
        }
    }
    (ok, errors)
}

/// One handshake: connect, request, read the response head, check for `200`, close.
async fn handshake(target: SocketAddr, request: &[u8]) -> io::Result<()> {
    let mut stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    let mut head = [0u8; MAX_RESPONSE_HEAD];
    let mut len = 0;
    while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == head.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
    }
    if head.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, "not a 200"))
    }
}
