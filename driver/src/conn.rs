//! The connection task: one per socket the machine manages. It moves bytes and makes no decision.
//!
//! - It reads from the socket and sends each read to the machine as [`Internal::Input`], then reads no
//!   more until the machine answers ([`Order::Resume`] or [`Order::HandOver`]): no byte is ever read past a
//!   claim.
//! - It writes every [`Order::Write`] in order; a slow socket delays the next order (backpressure), and
//!   nothing is dropped.
//! - On [`Order::HandOver`] it builds the [`TunnelStream`] (the core's leftover in front, then the bytes
//!   of an unanswered read) and gives it away; it also listens for one while it waits in read, for the
//!   responder's Envoy-mode hand-out that comes without input.
//! - On [`Order::Close`], or when the machine drops its sender, it closes the socket and ends.
//! - EOF or an I/O error: it reports [`Internal::Closed`] and ends; a TLS error (an alert, a bad
//!   certificate): [`Internal::TlsFailed`].
//! - Tunnel TLS: right after the TCP connect (initiator) or with the accepted socket (responder) it runs
//!   the TLS handshake, watching the orders as during the dial (the core's `handshake_timeout` closes
//!   it); the responder side reports [`Internal::TlsEstablished`] with the verified client identity,
//!   a failure is [`Internal::TlsFailed`] (a TLS refusal) or [`Internal::Closed`] (EOF, I/O error).
//!   Everything after goes through the TLS session.
//!
//! Memory per connection: the task's future (a few hundred bytes), its [`Inbox`] and the orders of at
//! most one read (the core answers a read with a bounded number of transmits; the responder keeps one
//! ping in flight). No buffer is held while the socket is idle: each read goes into a stack buffer of
//! [`READ_BUFFER`] bytes inside one `poll_read`, and only the bytes that came are copied out.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, ready};

use async_channel::Sender;
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncWriteExt, FutureExt};
use revtun_core::command::ConnId;

use crate::mailbox::Inbox;
use crate::msg::{Internal, Order};
use crate::runtime::{BoxStream, Runtime};
use crate::stream::TunnelStream;
use crate::tls::{ServerName, TlsClientSource, TlsServerSource, is_tls_error, peer_identity};

/// Bytes read from a managed socket at a time, into a stack buffer (handshake heads may arrive in several
/// reads; idle tunnels only ever receive a few bytes).
pub(crate) const READ_BUFFER: usize = 4096;

/// How a connection task gets its socket.
pub(crate) enum Start {
    /// Dial `addr` and report the outcome (initiator); then, with `tls`, run the TLS client handshake
    /// for that server name.
    Dial {
        addr: SocketAddr,
        tls: Option<(TlsClientSource, ServerName<'static>)>,
    },
    /// Use this accepted socket (responder); with `tls`, after the TLS server handshake.
    Accepted {
        stream: BoxStream,
        tls: Option<TlsServerSource>,
    },
}

/// One connection task: see the [module documentation](self).
pub(crate) struct ConnTask {
    pub conn: ConnId,
    pub orders: Inbox,
    pub report: Sender<Internal>,
}

enum Watched<T> {
    Done(T),
    Order(Option<Order>),
}

enum Step {
    Read(io::Result<Bytes>),
    Order(Option<Order>),
}

impl ConnTask {
    /// Runs the connection until it is closed or handed over.
    pub async fn run(self, rt: Arc<dyn Runtime>, start: Start) {
        let mut backlog = VecDeque::new();
        let stream = match start {
            Start::Accepted { stream, tls: None } => Some(stream),
            Start::Accepted {
                stream,
                tls: Some(tls),
            } => self.tls_accept(&tls, stream, &mut backlog).await,
            Start::Dial { addr, tls } => match self.dial(&*rt, addr, &mut backlog).await {
                Some(stream) => match tls {
                    None => Some(stream),
                    Some((tls, name)) => self.tls_connect(&tls, name, stream, &mut backlog).await,
                },
                None => None,
            },
        };
        if let Some(stream) = stream {
            self.serve(stream, backlog).await;
        }
    }

    /// Runs `work` while watching the orders: a `Close` (the core's connect or handshake timeout) or the
    /// machine's end abandons it (`None`). Other orders are kept for afterwards.
    async fn watching<T>(
        &self,
        work: impl Future<Output = T>,
        backlog: &mut VecDeque<Order>,
    ) -> Option<T> {
        let mut work = pin!(work);
        loop {
            let step = async { Watched::Done(work.as_mut().await) }
                .or(async { Watched::Order(self.orders.recv().await) })
                .await;
            match step {
                Watched::Done(out) => return Some(out),
                Watched::Order(None | Some(Order::Close)) => return None,
                Watched::Order(Some(order)) => backlog.push_back(order),
            }
        }
    }

    /// Dials `addr` while watching the orders.
    async fn dial(
        &self,
        rt: &dyn Runtime,
        addr: SocketAddr,
        backlog: &mut VecDeque<Order>,
    ) -> Option<BoxStream> {
        match self.watching(rt.connect(addr), backlog).await? {
            Ok(stream) => {
                let _ = self.report.try_send(Internal::Connected(self.conn));
                Some(stream)
            }
            Err(e) => {
                tracing::debug!(conn = %self.conn, %addr, error = %e, "dial failed");
                let _ = self
                    .report
                    .try_send(Internal::ConnectFailed(self.conn, e.kind()));
                None
            }
        }
    }

    /// Tunnel TLS, initiator: the TLS client handshake over the connected socket.
    async fn tls_connect(
        &self,
        tls: &TlsClientSource,
        name: ServerName<'static>,
        stream: BoxStream,
        backlog: &mut VecDeque<Order>,
    ) -> Option<BoxStream> {
        let connect = futures_rustls::TlsConnector::from(tls.config()).connect(name, stream);
        match self.watching(connect, backlog).await? {
            Ok(session) => Some(Box::new(session)),
            Err(e) => {
                self.tls_failed(&e);
                None
            }
        }
    }

    /// Tunnel TLS, responder: the TLS server handshake over the accepted socket, then the verified
    /// client identity to the machine.
    async fn tls_accept(
        &self,
        tls: &TlsServerSource,
        stream: BoxStream,
        backlog: &mut VecDeque<Order>,
    ) -> Option<BoxStream> {
        let accept = futures_rustls::TlsAcceptor::from(tls.config()).accept(stream);
        match self.watching(accept, backlog).await? {
            Ok(session) => {
                let identity = session
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(peer_identity);
                let _ = self
                    .report
                    .try_send(Internal::TlsEstablished(self.conn, identity));
                Some(Box::new(session))
            }
            Err(e) => {
                self.tls_failed(&e);
                None
            }
        }
    }

    /// A TLS handshake failed: a TLS refusal is `TlsFailed`, EOF or an I/O error a close.
    fn tls_failed(&self, e: &io::Error) {
        tracing::debug!(conn = %self.conn, error = %e, "TLS handshake failed");
        if is_tls_error(e) {
            let _ = self.report.try_send(Internal::TlsFailed(self.conn));
        } else {
            self.closed();
        }
    }

    /// Moves bytes until the connection is closed or handed over.
    async fn serve(self, mut stream: BoxStream, mut backlog: VecDeque<Order>) {
        // The bytes of the `Input` the machine has not answered yet.
        let mut unanswered: Option<Bytes> = None;
        loop {
            let step = match backlog.pop_front() {
                Some(order) => Step::Order(Some(order)),
                None if unanswered.is_some() => Step::Order(self.orders.recv().await),
                None => {
                    async { Step::Order(self.orders.recv().await) }
                        .or(async { Step::Read(read_some(&mut stream).await) })
                        .await
                }
            };
            match step {
                Step::Read(Ok(data)) if data.is_empty() => return self.closed(),
                Step::Read(Err(e)) if is_tls_error(&e) => {
                    tracing::debug!(conn = %self.conn, error = %e, "TLS session failed");
                    let _ = self.report.try_send(Internal::TlsFailed(self.conn));
                    return;
                }
                Step::Read(Err(e)) => {
                    tracing::debug!(conn = %self.conn, error = %e, "read failed");
                    return self.closed();
                }
                Step::Read(Ok(data)) => {
                    if self
                        .report
                        .try_send(Internal::Input(self.conn, data.clone()))
                        .is_err()
                    {
                        return close(stream).await;
                    }
                    unanswered = Some(data);
                }
                Step::Order(Some(Order::Write(data))) => {
                    if let Err(e) = stream.write_all(&data).await {
                        tracing::debug!(conn = %self.conn, error = %e, "write failed");
                        return self.closed();
                    }
                }
                Step::Order(Some(Order::Resume)) => unanswered = None,
                Step::Order(Some(Order::HandOver {
                    data,
                    answers_input,
                    to,
                })) => {
                    let leftover = match unanswered.take().filter(|_| !answers_input) {
                        Some(unread) if !unread.is_empty() => {
                            let mut all = BytesMut::from(&data[..]);
                            all.extend_from_slice(&unread);
                            all.freeze()
                        }
                        _ => data,
                    };
                    if let Err(e) = stream.flush().await {
                        tracing::debug!(conn = %self.conn, error = %e, "flush before hand-over failed");
                    }
                    let tunnel = TunnelStream::new(stream, leftover, self.conn, self.report);
                    return to(tunnel).await;
                }
                Step::Order(Some(Order::Close) | None) => return close(stream).await,
            }
        }
    }

    /// EOF or an I/O error: the machine must know.
    fn closed(&self) {
        let _ = self.report.try_send(Internal::Closed(self.conn));
    }
}

/// Reads once: the bytes that came (empty at EOF). The read buffer lives on the stack for the duration of
/// one `poll_read`, so a connection waiting for input holds no buffer.
async fn read_some(stream: &mut BoxStream) -> io::Result<Bytes> {
    std::future::poll_fn(|cx| {
        let mut buf = [0u8; READ_BUFFER];
        let n = ready!(Pin::new(&mut **stream).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(Bytes::copy_from_slice(&buf[..n.min(READ_BUFFER)])))
    })
    .await
}

/// Flushes and closes a socket the core has forgotten.
async fn close(mut stream: BoxStream) {
    let _ = stream.flush().await;
    let _ = stream.close().await;
}
