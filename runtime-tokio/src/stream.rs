//! [`TunnelStream`]: the driver's stream with tokio's I/O traits as well as futures-io's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use revtun_core::command::ConnId;
use tokio::io::ReadBuf;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// A claimed tunnel: [`tokio::io::AsyncRead`] + [`tokio::io::AsyncWrite`] (and the futures-io traits).
///
/// Reads first return the bytes the core had already read past the protocol. `poll_shutdown` half-closes
/// (reading goes on). Dropping the stream closes the tunnel and tells the machine it ended.
#[derive(Debug)]
pub struct TunnelStream {
    inner: Compat<revtun_driver::TunnelStream>,
}

impl TunnelStream {
    /// The core's id of this tunnel.
    pub fn id(&self) -> ConnId {
        self.inner.get_ref().id()
    }

    /// The runtime-agnostic stream inside.
    pub fn into_inner(self) -> revtun_driver::TunnelStream {
        self.inner.into_inner()
    }
}

impl From<revtun_driver::TunnelStream> for TunnelStream {
    fn from(stream: revtun_driver::TunnelStream) -> Self {
        Self {
            inner: stream.compat(),
        }
    }
}

impl tokio::io::AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl futures_io::AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_close(cx)
    }
}
