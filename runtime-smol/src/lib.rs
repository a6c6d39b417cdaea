//! # revtun-smol
//!
//! revtun on async-io: the runtime-agnostic driver of [`revtun_driver`] on async-net sockets and
//! async-io timers ([`SmolRuntime`]). Works from `smol::block_on`, under an `async_executor::Executor`,
//! and inside programs that already run on async-io (async-std does), without depending on async-std.
//! Streams implement [`futures_io::AsyncRead`](smol::io::AsyncRead) +
//! [`futures_io::AsyncWrite`](smol::io::AsyncWrite) as they are: [`TunnelStream`] is the driver's.
//!
//! - Initiator: [`ReverseListener::bind`] then [`accept`](revtun_driver::ReverseListener::accept)
//!   claimed tunnels.
//! - Responder: [`Responder::bind`] then [`connect`](revtun_driver::ResponderHandle::connect) to a node
//!   or cluster.
//! - [`relay`]: copy both ways with half-close and an idle timeout (what `tcp_proxy` does).
//!
//! This crate is glue only: every decision is the core's, every loop the driver's.
//!
//! ```no_run
//! use revtun_smol::core::initiator::{InitiatorConfig, TargetCluster};
//! use revtun_smol::{HostSource, ReverseListener};
//! use smol::io::{AsyncReadExt, AsyncWriteExt};
//!
//! smol::block_on(async {
//!     let target = TargetCluster { name: "responder".into(), count: 2 };
//!     let config = InitiatorConfig::new("edge-1", "edge", "", vec![target]);
//!     let hosts = HostSource::Static(vec!["127.0.0.1:9000".parse().unwrap()]);
//!     let listener = ReverseListener::bind(config, vec![("responder".into(), hosts)]).await?;
//!     loop {
//!         let (mut tunnel, _info) = listener.accept().await?;
//!         smol::spawn(async move {
//!             let mut buf = [0u8; 1024];
//!             while let Ok(n @ 1..) = tunnel.read(&mut buf).await {
//!                 if tunnel.write_all(&buf[..n]).await.is_err() { break; }
//!             }
//!         })
//!         .detach();
//!     }
//!     # #[allow(unreachable_code)]
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })
//! .unwrap();
//! ```

mod handles;
mod runtime;

use std::io;
use std::time::Duration;

pub use handles::{Responder, ReverseListener};
pub use revtun_core as core;
pub use revtun_driver as driver;
pub use revtun_driver::tls;
pub use revtun_driver::{
    ClaimError, DnsHosts, HostSource, ListenerOptions, LookupFamily, ResponderOptions, ShutDown,
    StartError, TunnelInfo, TunnelStream,
};
pub use runtime::SmolRuntime;

/// Copies `a` → `b` and `b` → `a` until both directions end, propagating each half-close on its own;
/// returns the bytes moved `(a → b, b → a)`. Both streams are closed when it returns. `idle_timeout`
/// ends a relay that moved no byte for that long ([`io::ErrorKind::TimedOut`]). See
/// [`revtun_driver::relay`].
///
/// # Errors
/// The first I/O error of either stream, or the idle timeout.
pub async fn relay<A, B>(a: A, b: B, idle_timeout: Option<Duration>) -> io::Result<(u64, u64)>
where
    A: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
    B: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    revtun_driver::relay(&SmolRuntime::new(), a, b, idle_timeout).await
}
