//! The seam between the one driver logic and an async runtime: [`Runtime`] (clock, timers, tasks, TCP,
//! DNS) and the type-erased [`BoxStream`] / [`Listener`] it hands out.
//!
//! Modelled on quinn's `Runtime` trait and libp2p-tcp's `Provider` (STYLE.md §4): the driver is written
//! once against `Arc<dyn Runtime>`, and each runtime crate (`revtun-tokio`, `revtun-smol`) implements this
//! trait in about a hundred lines. Streams are unified on [`futures_io::AsyncRead`] +
//! [`futures_io::AsyncWrite`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_io::{AsyncRead, AsyncWrite};
use socket2::{SockRef, TcpKeepalive};

/// A boxed, sendable future: what [`Runtime`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream the driver can own: a TCP connection (or, later, a TLS session over one).
///
/// Implemented for every `futures_io::AsyncRead + AsyncWrite + Unpin + Send + 'static` type.
/// `poll_close` must shut down the write direction only (a half-close), as `TcpStream`s do.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncStream for T {}

/// A type-erased [`AsyncStream`].
pub type BoxStream = Box<dyn AsyncStream>;

/// A bound listening socket.
pub trait Listener: Send + 'static {
    /// Waits for the next connection: the stream (with `TCP_NODELAY` and TCP keepalive set) and the
    /// peer's address. An error is for this accept only (e.g. out of file descriptors); the listener
    /// stays usable.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;

    /// The address the listener is bound to (with the port the system chose for port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// What the driver needs from an async runtime. Object-safe: the driver holds an `Arc<dyn Runtime>`.
///
/// Every future returned must be `Send` and must not need to be polled from inside the runtime's own
/// context except where the runtime requires it (tokio's timers and sockets do: the tokio
/// implementation spawns on a captured handle, so the futures run on its workers).
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// The monotonic clock every `now` given to the core comes from. Defaults to [`Instant::now`];
    /// override it to fake time in tests.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall clock in unix epoch milliseconds (the handshake's initiation-time header). Defaults to
    /// the system clock (0 before 1970, saturating far in the future).
    fn unix_ms(&self) -> u64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `future` to completion in the background. The driver never aborts a task from outside:
    /// every task it spawns ends by itself when the channels that feed it close.
    fn spawn(&self, future: BoxFuture<'static, ()>);

    /// Completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Opens a TCP connection to `addr` with `TCP_NODELAY` and TCP keepalive set.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>>;

    /// Binds a TCP listener on `addr` (port 0: the system chooses).
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;

    /// Resolves `host` (a DNS name or an IP literal) to the addresses it has, each with `port`, in the
    /// resolver's order.
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// Idle time before the first TCP keepalive probe.
const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Time between TCP keepalive probes.
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Sets `TCP_NODELAY` and TCP keepalive (first probe after 60 s idle, then every 10 s) on a connected
/// socket: what every [`Runtime`] does to the streams it hands out. Takes any socket through
/// `SockRef::from(&stream)`.
///
/// # Errors
/// The system refused an option.
pub fn tune_tcp(socket: SockRef<'_>) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_TIME)
        .with_interval(TCP_KEEPALIVE_INTERVAL);
    socket.set_tcp_keepalive(&keepalive)
}
