//! [`TokioRuntime`]: the driver's [`Runtime`] on tokio (tokio::net, tokio::time, `lookup_host`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use revtun_driver::{BoxFuture, BoxStream, Listener, Runtime, tune_tcp};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// The tokio runtime, as the driver sees it. Spawns on the runtime it was made on.
#[derive(Clone, Debug)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime of the calling task.
    ///
    /// # Panics
    /// Outside a tokio runtime (as [`Handle::current`] does).
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// The runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// `future`, polled inside tokio's context, so that sockets register with this runtime's reactor
    /// even when another executor polls them (e.g. next to smol).
    fn in_context<T: 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<'static, T> {
        Box::pin(InContext {
            handle: self.handle.clone(),
            future: Box::pin(future),
        })
    }
}

/// Sets `TCP_NODELAY` and TCP keepalive on a connected socket, as the driver's own sockets have them
/// (for sockets a program opens itself: front-door clients, local services).
///
/// # Errors
/// The socket option could not be set.
pub fn configure(stream: &TcpStream) -> io::Result<()> {
    tune_tcp(SockRef::from(stream))
}

/// `TCP_NODELAY` and TCP keepalive set, then erased for the driver.
fn boxed(stream: TcpStream) -> io::Result<BoxStream> {
    tune_tcp(SockRef::from(&stream))?;
    Ok(Box::new(stream.compat()))
}

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        // Detached: the driver's tasks end by themselves when their channels close.
        drop(self.handle.spawn(future));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let sleep = {
            let _entered = self.handle.enter();
            tokio::time::sleep_until(deadline.into())
        };
        self.in_context(sleep)
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.in_context(async move { boxed(TcpStream::connect(addr).await?) })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        self.in_context(async move {
            let listener = TcpListener::bind(addr).await?;
            let handle = Handle::current();
            Ok(Box::new(TokioListener(Arc::new(listener), handle)) as Box<dyn Listener>)
        })
    }

    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        self.in_context(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A future that enters its runtime's context at every poll.
struct InContext<F> {
    handle: Handle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.handle.enter();
        self.future.as_mut().poll(cx)
    }
}

/// Several bound [`TcpListener`]s as one driver [`Listener`] (a listener's `address` plus its
/// `additional_addresses`). Accepts from whichever is ready, polling them round-robin so none starves;
/// `local_addr` is the first one's.
#[derive(Debug)]
pub(crate) struct MultiListener {
    listeners: Vec<TcpListener>,
    next: usize,
}

impl MultiListener {
    /// Binds every address, in order.
    pub(crate) async fn bind(addrs: &[SocketAddr]) -> io::Result<Self> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to bind",
            ));
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        for addr in addrs {
            listeners.push(TcpListener::bind(addr).await?);
        }
        Ok(Self { listeners, next: 0 })
    }

    /// The addresses bound, in order.
    pub(crate) fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.listeners.iter().map(TcpListener::local_addr).collect()
    }
}

impl Listener for MultiListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(std::future::poll_fn(move |cx| {
            let n = self.listeners.len();
            for i in 0..n {
                let at = (self.next + i) % n;
                if let std::task::Poll::Ready(result) = self.listeners[at].poll_accept(cx) {
                    self.next = (at + 1) % n;
                    let accepted = result.and_then(|(stream, peer)| Ok((boxed(stream)?, peer)));
                    return std::task::Poll::Ready(accepted);
                }
            }
            std::task::Poll::Pending
        }))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners.first().map_or_else(
            || Err(io::ErrorKind::NotFound.into()),
            TcpListener::local_addr,
        )
    }
}

/// A bound [`TcpListener`] as the driver's [`Listener`] (accepted sockets register in `handle`'s
/// context).
#[derive(Debug)]
struct TokioListener(Arc<TcpListener>, Handle);

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        let listener = self.0.clone();
        let accept = async move {
            let (stream, peer) = listener.accept().await?;
            Ok((boxed(stream)?, peer))
        };
        Box::pin(InContext {
            handle: self.1.clone(),
            future: Box::pin(accept),
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
