//! [`Counted`]: a stream that adds the bytes read from it and written to it to the relayed-bytes
//! counters, as they move (so a relay that ends in an error or a timeout is counted too).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stats::{Direction, Relayed};

/// `inner`, counting reads as `read_as` and writes as `written_as`.
pub struct Counted<S> {
    inner: S,
    relayed: Arc<Relayed>,
    read_as: Direction,
    written_as: Direction,
}

impl<S> Counted<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, relayed: Arc<Relayed>, read_as: Direction, written_as: Direction) -> Self {
        Self {
            inner,
            relayed,
            read_as,
            written_as,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        this.relayed.add(this.read_as, n as u64);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            this.relayed.add(this.written_as, *n as u64);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
