//! [`TunnelStream`]: a claimed tunnel as the user gets it.

mod answer;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_channel::Sender;
use bytes::{Buf, Bytes};
use futures_io::{AsyncRead, AsyncWrite};
use revtun_core::command::ConnId;

use crate::msg::Internal;
use crate::runtime::BoxStream;

pub(crate) use answer::AnswerRead;

/// A claimed tunnel: a plain byte stream to the peer's service (initiator side: to the responder's client;
/// responder side: to the service behind the initiator).
///
/// Reads first return the bytes the core had already read past the protocol (the leftover), then the
/// socket's. On the responder side in claim-marker mode the stream is handed out right after `RDATA` was
/// written: its reads strip the initiator's answer first, and fail (EOF, a protocol error, or a timeout at
/// the core's answer deadline) if the tunnel turns out dead; after the answer they read straight
/// through. `poll_close` shuts down the write direction only (a half-close: reading goes on). Dropping
/// the stream closes the connection and tells the machine that the in-use tunnel ended (its gauges and
/// per-host or per-node caps count it until then).
pub struct TunnelStream {
    inner: BoxStream,
    leftover: Bytes,
    /// Claim-marker mode, responder side: the initiator's answer still to strip.
    answer: Option<AnswerRead>,
    conn: ConnId,
    report: Option<Sender<Internal>>,
}

impl TunnelStream {
    pub(crate) fn new(
        inner: BoxStream,
        leftover: Bytes,
        conn: ConnId,
        report: Sender<Internal>,
    ) -> Self {
        Self {
            inner,
            leftover,
            answer: None,
            conn,
            report: Some(report),
        }
    }

    /// The same stream, its reads stripping the initiator's answer first.
    pub(crate) fn with_answer(mut self, answer: AnswerRead) -> Self {
        self.answer = Some(answer);
        self
    }

    /// The core's id of this tunnel (the `id` of its [`TunnelInfo`](crate::TunnelInfo) on the initiator
    /// side).
    pub fn id(&self) -> ConnId {
        self.conn
    }
}

impl fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelStream")
            .field("conn", &self.conn)
            .field("leftover", &self.leftover.len())
            .field("awaiting_answer", &self.answer.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            // The machine may be gone (shut down): then nobody needs to know.
            let _ = report.try_send(Internal::Closed(self.conn));
        }
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(answer) = &mut this.answer {
            let read = answer.poll_read(&mut this.inner, &mut this.leftover, cx, buf);
            if answer.is_complete() {
                this.answer = None;
            }
            return read;
        }
        if !this.leftover.is_empty() && !buf.is_empty() {
            let n = this.leftover.len().min(buf.len());
            buf[..n].copy_from_slice(&this.leftover[..n]);
            this.leftover.advance(n);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
