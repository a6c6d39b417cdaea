//! The read side of a tunnel the responder handed out in claim-marker mode, until the initiator's answer.
//!
//! The core hands the tunnel out as it writes `RDATA` ([`PendingAnswer`]); the initiator's answer
//! (`RPING` echoes, then `RDATA`) arrives in front of the data. [`AnswerRead`] runs every byte read through
//! the core's [`ClaimAnswer`] filter, in the caller's buffer (the data is always a suffix of a read, moved
//! to the front), until the answer is complete; the stream then drops it and reads straight through. It
//! makes no protocol decision of its own: the filter decides, and the deadline is the core's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_io::AsyncRead;
use revtun_core::keepalive::{ClaimAnswer, KeepaliveError};
use revtun_core::responder::PendingAnswer;

use crate::runtime::{BoxFuture, BoxStream, Runtime};

/// Socket reads per `poll_read` that may hold only answer bytes before the task yields (so a peer
/// streaming `RPING`s cannot hold the executor; the deadline ends that anyway).
const READS_PER_POLL: usize = 16;

/// The answer still to strip, and its deadline.
pub(crate) struct AnswerRead {
    filter: ClaimAnswer,
    /// Fires at the core's answer deadline; `None` once it has fired (the stream stays failed).
    deadline: Option<BoxFuture<'static, ()>>,
    /// From the hand-out to the deadline, for the error message.
    timeout: Duration,
}

impl AnswerRead {
    /// Arms the deadline of `answer` on `rt`'s clock.
    pub(crate) fn new(answer: PendingAnswer, rt: &dyn Runtime) -> Self {
        Self {
            filter: answer.filter,
            deadline: Some(rt.sleep_until(answer.deadline)),
            timeout: answer.deadline.saturating_duration_since(rt.now()),
        }
    }

    /// Whether the answer is complete: every later byte is data.
    pub(crate) fn is_complete(&self) -> bool {
        self.filter.is_complete()
    }

    /// Reads data into `buf`: first what is left of `leftover`, then from `inner`, stripping the answer.
    /// EOF before the answer, bytes that are not the answer, or the deadline fail the read.
    pub(crate) fn poll_read(
        &mut self,
        inner: &mut BoxStream,
        leftover: &mut Bytes,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.deadline.is_none() {
            return Poll::Ready(Err(self.timed_out()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !leftover.is_empty() {
            let data = self.filter.filter(leftover).map_err(protocol_error)?;
            leftover.advance(data.start);
            if !leftover.is_empty() {
                let n = leftover.len().min(buf.len());
                buf[..n].copy_from_slice(&leftover[..n]);
                leftover.advance(n);
                return Poll::Ready(Ok(n));
            }
        }
        for _ in 0..READS_PER_POLL {
            if self.filter.is_complete() {
                return Pin::new(&mut *inner).poll_read(cx, buf);
            }
            match Pin::new(&mut *inner).poll_read(cx, buf) {
                Poll::Pending => return self.poll_deadline(cx),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed_before_answer())),
                Poll::Ready(Ok(n)) => {
                    let data = self
                        .filter
                        .filter(&buf[..n.min(buf.len())])
                        .map_err(protocol_error)?;
                    if !data.is_empty() {
                        let len = data.len();
                        buf.copy_within(data, 0);
                        return Poll::Ready(Ok(len));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Nothing to read: fails the read once the deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            _ => {
                self.deadline = None;
                Poll::Ready(Err(self.timed_out()))
            }
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "claimed tunnel: no RDATA answer from the initiator within {:?}",
                self.timeout
            ),
        )
    }
}

fn closed_before_answer() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "claimed tunnel: closed before the initiator's RDATA answer",
    )
}

fn protocol_error(error: KeepaliveError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("claimed tunnel: {error}"),
    )
}
