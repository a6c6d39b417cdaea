//! [`SmolRuntime`]: the driver's [`Runtime`] on async-io (async-net sockets, `async_io::Timer`,
//! `async_net::resolve`), spawning on smol's global executor or on a supplied [`Executor`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use revtun_driver::{BoxFuture, BoxStream, Listener, Runtime, tune_tcp};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};
use socket2::SockRef;

/// async-io, as the driver sees it. Sockets and timers run on async-io's reactor, which every
/// async-io program shares (smol, async-executor, async-std), so the driver works under any executor
/// that polls its futures; tasks go to smol's global executor (its own threads) or to the
/// [`Executor`] given to [`with_executor`](Self::with_executor), which the program must then run.
#[derive(Clone, Default)]
pub struct SmolRuntime {
    executor: Option<Arc<Executor<'static>>>,
}

impl SmolRuntime {
    /// Spawns on smol's global executor (`smol::spawn`), which runs on threads of its own: nothing else
    /// needs to drive it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns on `executor`. The program drives it (`executor.run(…)` or `Executor::tick`); tasks make
    /// no progress while nobody does.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            executor: Some(executor),
        }
    }
}

impl fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let executor = if self.executor.is_some() {
            "supplied"
        } else {
            "global"
        };
        f.debug_struct("SmolRuntime")
            .field("executor", &executor)
            .finish()
    }
}

/// `TCP_NODELAY` and TCP keepalive set, then erased for the driver.
fn boxed(stream: TcpStream) -> io::Result<BoxStream> {
    tune_tcp(SockRef::from(&stream))?;
    Ok(Box::new(stream))
}

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        // Detached: the driver's tasks end by themselves when their channels close.
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let timer = Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move { boxed(TcpStream::connect(addr).await?) })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(addr).await?;
            Ok(Box::new(SmolListener(listener)) as Box<dyn Listener>)
        })
    }

    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        // A blocking getaddrinfo on smol's `blocking` thread pool.
        Box::pin(async move { smol::net::resolve((host.as_str(), port)).await })
    }
}

/// A bound async-net [`TcpListener`] as the driver's [`Listener`].
#[derive(Debug)]
struct SmolListener(TcpListener);

impl Listener for SmolListener {
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
