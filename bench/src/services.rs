//! The local services the tunnels lead to, on the harness's tokio runtime: an echo service (latency)
//! and a sink that counts what it receives and answers the count (throughput). Loopback only; every
//! connection task ends with its connection, and dropping the [`Service`] stops them all.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::server::LoopbackServer;

/// What a [`Service`] does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// Writes back every byte it reads, until EOF.
    Echo,
    /// Reads until EOF, then writes the number of bytes read (8 bytes, big-endian) and closes.
    Sink,
}

/// A running service on `127.0.0.1`; stopped on drop.
#[derive(Debug)]
pub struct Service {
    server: LoopbackServer,
}

impl Service {
    /// Binds `127.0.0.1:0` and serves `kind` on the current tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub async fn start(kind: ServiceKind) -> io::Result<Self> {
        let server = LoopbackServer::start(move |stream| async move {
            let _ = match kind {
                ServiceKind::Echo => echo(stream).await,
                ServiceKind::Sink => sink(stream).await,
            };
        })
        .await?;
        Ok(Self { server })
    }

    /// Where the service listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn sink(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    stream.write_all(&total.to_be_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_and_sink_answer() {
        let echo = Service::start(ServiceKind::Echo).await.unwrap();
        let mut s = TcpStream::connect(echo.addr()).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello");

        let sink = Service::start(ServiceKind::Sink).await.unwrap();
        let mut s = TcpStream::connect(sink.addr()).await.unwrap();
        s.write_all(&[0u8; 100_000]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut count = [0u8; 8];
        s.read_exact(&mut count).await.unwrap();
        assert_eq!(u64::from_be_bytes(count), 100_000);
    }
}
