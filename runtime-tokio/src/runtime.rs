//! [`TokioRuntime`]: the driver's [`Runtime`] on tokio (tokio::net, tokio::time, `lookup_host`).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use revtun_driver::{BoxFuture, BoxStream, Listener, Runtime};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Idle time before the first TCP keepalive probe, and the time between probes.
const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

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
}

/// Sets `TCP_NODELAY` and TCP keepalive on a connected socket, as the driver's own sockets have them
/// (for sockets a program opens itself: front-door clients, local services).
///
/// # Errors
/// The socket option could not be set.
pub fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_TIME)
        .with_interval(TCP_KEEPALIVE_INTERVAL);
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

fn boxed(stream: TcpStream) -> io::Result<BoxStream> {
    configure(&stream)?;
    Ok(Box::new(stream.compat()))
}

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_ms(&self) -> u64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        // Detached: the driver's tasks end by themselves when their channels close.
        drop(self.handle.spawn(future));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let _entered = self.handle.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move { boxed(TcpStream::connect(addr).await?) })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(addr).await?;
            Ok(Box::new(TokioListener(listener)) as Box<dyn Listener>)
        })
    }

    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
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

/// A bound [`TcpListener`] as the driver's [`Listener`].
#[derive(Debug)]
struct TokioListener(TcpListener);

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((boxed(stream)?, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
