//! The messages between a machine task and the tasks around it.
//!
//! - [`Internal`]: to the machine, from its connection tasks, its helper tasks (accept loop, resolvers)
//!   and the [`TunnelStream`]s it handed out. Unbounded: every sender has at most a bounded number of
//!   messages outstanding (a connection task sends one `Input` and waits for its answer).
//! - [`Order`]: from the machine to one connection task through its [`mailbox`](crate::mailbox), in the
//!   order the core produced them. One FIFO carries writes, answers and lifecycle orders, so a hand-over
//!   or a close can never overtake a write.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use revtun_core::command::ConnId;

use revtun_core::responder::PeerTlsIdentity;

use crate::runtime::{BoxFuture, BoxStream};
use crate::stream::TunnelStream;
use crate::tls::TlsServerSource;

/// Something that happened outside the machine task.
pub(crate) enum Internal {
    /// A dial succeeded (initiator).
    Connected(ConnId),
    /// A dial failed (initiator).
    ConnectFailed(ConnId, io::ErrorKind),
    /// Bytes read from a connection the machine manages; the connection task reads no more until the
    /// machine answers with [`Order::Resume`] or a hand-over.
    Input(ConnId, Bytes),
    /// A connection ended: EOF or an I/O error in its task, or the user dropped a handed-out stream.
    Closed(ConnId),
    /// The accept loop accepted a socket (responder), on a listener with this tunnel TLS, if any.
    Accepted(BoxStream, SocketAddr, Option<TlsServerSource>),
    /// Tunnel TLS (responder): the TLS handshake completed, with the verified client identity, if any.
    TlsEstablished(ConnId, Option<PeerTlsIdentity>),
    /// Tunnel TLS: the TLS handshake failed or the session broke with a TLS error; the connection task
    /// has ended.
    TlsFailed(ConnId),
    /// A resolver task looked up the hosts of a target cluster (initiator).
    Resolved {
        /// The target cluster.
        cluster: String,
        /// The hosts to use, or the lookup's error.
        result: io::Result<Vec<SocketAddr>>,
    },
}

/// Where a handed-out stream goes: the listener's accept queue or a claim's answer.
pub(crate) type HandOff = Box<dyn FnOnce(TunnelStream) -> BoxFuture<'static, ()> + Send>;

/// An order to one connection task.
pub(crate) enum Order {
    /// Write these bytes (all of them) before anything else.
    Write(Bytes),
    /// The last `Input` was consumed by the core: read again.
    Resume,
    /// The core gave the connection to the user: stop talking to the machine, and hand the stream to
    /// `to` with `data` in front. When `answers_input` is false the order came without input (the
    /// responder's Envoy-mode hand-out): bytes of an `Input` still unanswered were not given to the core
    /// and go after `data`.
    HandOver {
        /// Bytes the core read past its part of the protocol.
        data: Bytes,
        /// Whether this order answers the outstanding `Input`.
        answers_input: bool,
        /// Where the stream goes.
        to: HandOff,
    },
    /// Flush, close and end; the core has forgotten the connection.
    Close,
}

/// Sends a request built around a fresh answer channel and waits for the answer; `Err` when the machine
/// has gone (the request or its answer channel was dropped).
pub(crate) async fn ask<A, T>(
    api: &async_channel::Sender<A>,
    request: impl FnOnce(async_channel::Sender<T>) -> A,
) -> Result<T, crate::error::ShutDown> {
    let (tx, rx) = async_channel::bounded(1);
    api.send(request(tx))
        .await
        .map_err(|_| crate::error::ShutDown)?;
    rx.recv().await.map_err(|_| crate::error::ShutDown)
}
