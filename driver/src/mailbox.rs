//! [`mailbox`]: the order queue from the machine task to one connection task, built for thousands of idle
//! connections.
//!
//! A general-purpose channel costs an idle connection several KiB (async-channel: a cache-padded queue
//! head, a 31-slot block once used, three event lists). The mailbox is one small allocation: a mutex
//! around a `VecDeque` that owns memory only while orders wait (its buffer is released once drained), the
//! receiver's waker, and whether either end has gone. One sender (the machine), one receiver (the
//! connection task); sending never waits.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::msg::Order;

/// The machine's end: [`try_send`](Outbox::try_send). Dropping it ends the [`Inbox`] once drained.
pub(crate) struct Outbox(Arc<Mutex<State>>);

/// The connection task's end: [`recv`](Inbox::recv). Dropping it makes every later send fail and drops
/// the orders still queued.
pub(crate) struct Inbox(Arc<Mutex<State>>);

struct State {
    queue: VecDeque<Order>,
    waker: Option<Waker>,
    outbox_alive: bool,
    inbox_alive: bool,
}

/// A new, empty mailbox.
pub(crate) fn mailbox() -> (Outbox, Inbox) {
    let state = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        waker: None,
        outbox_alive: true,
        inbox_alive: true,
    }));
    (Outbox(state.clone()), Inbox(state))
}

/// The state, whether or not a holder of the lock panicked (the state stays consistent: every update is
/// one field assignment or one queue operation).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    /// Queues `order` behind the earlier ones; gives it back when the connection task has gone.
    pub fn try_send(&self, order: Order) -> Result<(), Order> {
        let waker = {
            let mut state = lock(&self.0);
            if !state.inbox_alive {
                return Err(order);
            }
            state.queue.push_back(order);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.0);
            state.outbox_alive = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Inbox {
    /// The next order; `None` once the [`Outbox`] has gone and every order was taken.
    pub async fn recv(&self) -> Option<Order> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Order>> {
        let mut state = lock(&self.0);
        if let Some(order) = state.queue.pop_front() {
            if state.queue.is_empty() {
                // Idle connections keep no queue memory.
                state.queue = VecDeque::new();
            }
            return Poll::Ready(Some(order));
        }
        if !state.outbox_alive {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let orders = {
            let mut state = lock(&self.0);
            state.inbox_alive = false;
            state.waker = None;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: a hand-over's destination may run code of its own when dropped.
        drop(orders);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_lite::future;

    use super::*;

    fn write(s: &'static [u8]) -> Order {
        Order::Write(Bytes::from_static(s))
    }

    fn written(order: Option<Order>) -> Option<Bytes> {
        match order {
            Some(Order::Write(data)) => Some(data),
            _ => None,
        }
    }

    #[test]
    fn orders_arrive_in_order_and_end_after_the_outbox_is_dropped() {
        let (outbox, inbox) = mailbox();
        assert!(outbox.try_send(write(b"a")).is_ok());
        assert!(outbox.try_send(write(b"b")).is_ok());
        drop(outbox);
        future::block_on(async {
            assert_eq!(written(inbox.recv().await).as_deref(), Some(&b"a"[..]));
            assert_eq!(written(inbox.recv().await).as_deref(), Some(&b"b"[..]));
            assert!(inbox.recv().await.is_none());
        });
    }

    #[test]
    fn sending_to_a_dropped_inbox_gives_the_order_back() {
        let (outbox, inbox) = mailbox();
        drop(inbox);
        assert!(matches!(outbox.try_send(Order::Resume), Err(Order::Resume)));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_and_by_the_end() {
        let (outbox, inbox) = mailbox();
        let mut recv = Box::pin(inbox.recv());
        assert!(future::block_on(future::poll_once(&mut recv)).is_none());
        assert!(outbox.try_send(Order::Resume).is_ok());
        assert!(matches!(future::block_on(recv), Some(Order::Resume)));
        let mut recv = Box::pin(inbox.recv());
        assert!(future::block_on(future::poll_once(&mut recv)).is_none());
        drop(outbox);
        assert!(future::block_on(recv).is_none());
    }

    #[test]
    fn a_drained_queue_holds_no_memory() {
        let (outbox, inbox) = mailbox();
        assert!(outbox.try_send(Order::Resume).is_ok());
        assert!(future::block_on(inbox.recv()).is_some());
        assert_eq!(lock(&inbox.0).queue.capacity(), 0);
    }
}
