//! A userspace TCP relay that makes two loopback endpoints look `one_way` apart (this kernel has no
//! netem). Loopback only, bounded memory, stopped on drop.
//!
//! Model (DESIGN decision of the harness, see README "Performance"):
//! - every chunk read in either direction is written `one_way` later, in order;
//! - a new connection pays TCP's handshake: the client's connect completes at once on loopback, so the
//!   relay releases client bytes no earlier than `2 × one_way` after the accept (SYN + SYN-ACK) plus
//!   `one_way`, and server bytes no earlier than `3 × one_way` after the accept (the server's accept
//!   returns on the final ACK) plus `one_way`. A new connection's request + reply thus costs
//!   `4 × one_way` (two round trips), a request on an open connection `2 × one_way` (one round trip).
//!
//! Each direction holds at most [`QUEUED_CHUNKS`] chunks of at most [`CHUNK`] bytes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::server::LoopbackServer;

/// Largest chunk read at once.
pub const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction (bounds memory at `CHUNK × QUEUED_CHUNKS` per direction).
pub const QUEUED_CHUNKS: usize = 64;
/// Longest a connection to the upstream may take (loopback).
const UPSTREAM_CONNECT_DEADLINE: Duration = Duration::from_secs(2);

/// A running delay relay on `127.0.0.1`; stopped (with every connection) on drop.
#[derive(Debug)]
pub struct DelayRelay {
    server: LoopbackServer,
}

impl DelayRelay {
    /// Listens on `127.0.0.1:0` and relays each connection to `upstream`, `one_way` apart.
    ///
    /// # Errors
    /// `upstream` is not a loopback address, or the socket cannot be bound.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("delay relay: upstream {upstream} is not a loopback address"),
            ));
        }
        let server =
            LoopbackServer::start(move |client| relay_one(client, upstream, one_way)).await?;
        Ok(Self { server })
    }

    /// Where clients connect.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

/// One connection: both directions delayed, each with its handshake gate.
async fn relay_one(client: TcpStream, upstream: SocketAddr, one_way: Duration) {
    let accepted = Instant::now();
    let Ok(Ok(server)) =
        tokio::time::timeout(UPSTREAM_CONNECT_DEADLINE, TcpStream::connect(upstream)).await
    else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = delayed_pipe(client_read, server_write, accepted + one_way * 2, one_way);
    let down = delayed_pipe(server_read, client_write, accepted + one_way * 3, one_way);
    // Either direction failing drops both sockets (a reset, as a broken path would look).
    let _ = tokio::try_join!(up, down);
}

/// Copies `from` → `to`, each chunk written at `max(read time, not_before) + one_way`; EOF is passed on
/// (half-close) the same way.
async fn delayed_pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    not_before: Instant,
    one_way: Duration,
) -> io::Result<()> {
    let (queue, mut queued) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(QUEUED_CHUNKS);
    let read = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = from.read(&mut buf).await?;
            let due = Instant::now().max(not_before) + one_way;
            let chunk = (n > 0).then(|| {
                buf.truncate(n);
                buf
            });
            let eof = chunk.is_none();
            if queue.send((due, chunk)).await.is_err() || eof {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(bytes) => to.write_all(&bytes).await?,
                None => return to.shutdown().await,
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{Service, ServiceKind};

    #[tokio::test]
    async fn delays_and_delivers_every_byte_in_order() {
        let echo = Service::start(ServiceKind::Echo).await.unwrap();
        let one_way = Duration::from_millis(5);
        let relay = DelayRelay::start(echo.addr(), one_way).await.unwrap();
        let start = Instant::now();
        let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut read, mut write) = stream.split();
        let send = async {
            write.write_all(&sent).await.unwrap();
            write.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let receive = async { read.read_to_end(&mut back).await.unwrap() };
        tokio::join!(send, receive);
        assert_eq!(back, sent);
        // A new connection's first reply cannot come before two round trips.
        assert!(start.elapsed() >= one_way * 4);
    }

    #[tokio::test]
    async fn refuses_non_loopback_upstreams() {
        let far: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let err = DelayRelay::start(far, Duration::from_millis(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
