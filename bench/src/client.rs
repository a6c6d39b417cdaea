//! The harness's client side (tokio): one connect + 1-byte echo + close, and a sender that streams to a
//! sink for a fixed time. Every wait has a deadline.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest one connect + echo + close may take before it counts as an error.
pub const ECHO_DEADLINE: Duration = Duration::from_secs(10);

/// Connects to `addr`, sends one byte, waits for it to come back, closes; returns the time it took.
///
/// # Errors
/// Connect, I/O or a wrong byte; [`io::ErrorKind::TimedOut`] after [`ECHO_DEADLINE`].
pub async fn echo_once(addr: SocketAddr) -> io::Result<Duration> {
    let start = Instant::now();
    timeout(ECHO_DEADLINE, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&[0x2a]).await?;
        let mut back = [0u8; 1];
        stream.read_exact(&mut back).await?;
        if back != [0x2a] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong echo"));
        }
        Ok(())
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(start.elapsed())
}

/// `runs` sequential [`echo_once`] to `a` and to `b`, interleaved (a, b, a, b, …) so that a noisy
/// machine slows both alike: the times of each.
///
/// # Errors
/// The first failed run.
pub async fn echo_pairs(
    a: SocketAddr,
    b: SocketAddr,
    runs: usize,
) -> io::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut samples = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        samples.0.push(echo_once(a).await?);
        samples.1.push(echo_once(b).await?);
    }
    Ok(samples)
}

/// Bytes and time of one sender run.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// Bytes the sink confirmed.
    pub bytes: u64,
    /// From connect until the sink's confirmation.
    pub elapsed: Duration,
}

/// Streams to a sink at `addr` for `duration`, half-closes, and waits for the sink's count (which must
/// equal what was sent).
///
/// # Errors
/// Connect or I/O errors, a count that differs, or no answer within `duration` + 10 s.
pub async fn send_for(addr: SocketAddr, duration: Duration) -> io::Result<Sent> {
    let start = Instant::now();
    let bytes = timeout(duration + Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while start.elapsed() < duration {
            stream.write_all(&chunk).await?;
            sent += chunk.len() as u64;
        }
        stream.shutdown().await?;
        let mut count = [0u8; 8];
        stream.read_exact(&mut count).await?;
        let confirmed = u64::from_be_bytes(count);
        if confirmed != sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sink confirmed {confirmed} bytes of {sent}"),
            ));
        }
        Ok(sent)
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(Sent {
        bytes,
        elapsed: start.elapsed(),
    })
}

/// `streams` parallel [`send_for`] to `addr`: total bytes and the longest elapsed time.
///
/// # Errors
/// The first failed stream.
pub async fn send_parallel(
    addr: SocketAddr,
    streams: usize,
    duration: Duration,
) -> io::Result<Sent> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..streams {
        set.spawn(send_for(addr, duration));
    }
    let mut total = Sent {
        bytes: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = set.join_next().await {
        let sent = joined.map_err(io::Error::other)??;
        total.bytes += sent.bytes;
        total.elapsed = total.elapsed.max(sent.elapsed);
    }
    Ok(total)
}
