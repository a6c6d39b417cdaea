//! # revtun-tokio
//!
//! revtun on tokio: the runtime-agnostic driver of [`revtun_driver`] on tokio's sockets and timers
//! ([`TokioRuntime`]), with tokio-flavoured handles whose streams implement [`tokio::io::AsyncRead`] +
//! [`tokio::io::AsyncWrite`].
//!
//! - Initiator: [`ReverseListener::bind`] then [`accept`](ReverseListener::accept) claimed tunnels.
//! - Responder: [`Responder::bind`] then [`connect`](Responder::connect) to a node or cluster.
//! - [`relay`]: copy both ways with half-close and an idle timeout (what `tcp_proxy` does).
//!
//! This crate is glue only: every decision is the core's, every loop the driver's.

mod initiator;
mod responder;
mod runtime;

use std::io;
use std::time::Duration;

use tokio_util::compat::TokioAsyncReadCompatExt;

pub use initiator::ReverseListener;
pub use responder::Responder;
pub use revtun_core as core;
pub use revtun_driver as driver;
pub use revtun_driver::tls;
pub use revtun_driver::{
    ClaimError, DnsHosts, HostSource, ListenerOptions, LookupFamily, ResponderOptions, ShutDown,
    StartError, TunnelInfo,
};
pub use runtime::{TokioRuntime, configure as configure_socket};

/// A claimed tunnel with tokio's [`AsyncRead`](tokio::io::AsyncRead) +
/// [`AsyncWrite`](tokio::io::AsyncWrite): the driver's [`revtun_driver::TunnelStream`] (leftover bytes
/// first; dropping it ends the in-use tunnel) seen through [`Compat`](tokio_util::compat::Compat).
/// `get_ref()` reaches the driver's stream (e.g. its `id()`), `into_inner()` takes it back for the
/// futures-io traits.
pub type TunnelStream = tokio_util::compat::Compat<revtun_driver::TunnelStream>;

/// Copies `a` → `b` and `b` → `a` until both directions end, propagating each half-close on its own;
/// returns the bytes moved `(a → b, b → a)`. Both streams are closed when it returns. `idle_timeout`
/// ends a relay that moved no byte for that long ([`io::ErrorKind::TimedOut`]). See
/// [`revtun_driver::relay`].
///
/// # Errors
/// The first I/O error of either stream, or the idle timeout.
pub async fn relay<A, B>(a: A, b: B, idle_timeout: Option<Duration>) -> io::Result<(u64, u64)>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let rt = TokioRuntime::current();
    revtun_driver::relay(&rt, a.compat(), b.compat(), idle_timeout).await
}
