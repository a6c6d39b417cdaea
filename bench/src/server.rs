//! A loopback TCP server on the harness's tokio runtime: one task per connection, all stopped when the
//! [`LoopbackServer`] is dropped. The services and the delay relay are built on it.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running server on `127.0.0.1`; stopped, with every connection task, on drop.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0` and runs `serve` on each accepted connection (`TCP_NODELAY` set).
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub async fn start<F, Fut>(serve: F) -> io::Result<Self>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(accept_loop(listener, serve));
        Ok(Self { addr, accept })
    }

    /// Where the server listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        // Dropping the loop's JoinSet aborts every connection task.
        self.accept.abort();
    }
}

async fn accept_loop<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream));
                }
                // Out of file descriptors or similar: pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
