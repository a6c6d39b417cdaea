//! `role plain-relay --upstream ADDR`: the smallest possible TCP relay (accept, connect upstream,
//! `tokio::io::copy_bidirectional`), as its own process. Two of them in a chain are the floor of any
//! tunnel whose bytes cross two relaying processes, as revtun's front door and initiator do: the
//! `latency` group measures that chain beside revtun, in the same run.
//!
//! `READY addr=<ip:port>`; runs until its stdin closes or it is killed.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::{RuntimeKind, commands, parse, run_on};
use crate::child::announce;
use crate::server::LoopbackServer;

/// Arguments of `role plain-relay`.
#[derive(Debug, clap::Parser)]
struct Args {
    /// Where each accepted connection is relayed to (loopback).
    #[arg(long)]
    upstream: SocketAddr,
}

/// The role's entry point.
///
/// # Errors
/// Bad arguments, or the listener cannot be bound.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args: Args = parse("plain-relay", args)?;
    anyhow::ensure!(
        args.upstream.ip().is_loopback(),
        "plain-relay: upstream {} is not a loopback address",
        args.upstream
    );
    run_on(RuntimeKind::Tokio, |_| async move {
        let upstream = args.upstream;
        let server = LoopbackServer::start(move |mut client| async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        })
        .await?;
        announce(&format!("addr={}", server.addr()));
        // Until the harness goes away (stdin closes).
        let commands = commands();
        while commands.recv().await.is_ok() {}
        drop(server);
        Ok(())
    })
}
