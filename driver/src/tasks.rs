//! Task bookkeeping without runtime support: a [`TaskGroup`] knows when every task it spawned has ended,
//! and a [`StopSignal`] tells helper tasks (accept loop, resolvers) that their machine has gone.
//!
//! Both are built on channel closure, which every executor understands: a task holds a sender clone for
//! as long as it runs, and the waiting side sees the channel close when the last clone is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_lite::FutureExt;

use crate::runtime::{BoxFuture, Runtime};

/// Spawns tasks on a runtime and counts them; [`TasksDone::wait`] completes when all have ended.
#[derive(Clone, Debug)]
pub(crate) struct TaskGroup {
    rt: Arc<dyn Runtime>,
    alive: Sender<()>,
}

pin_project_lite::pin_project! {
    /// A task of a [`TaskGroup`]: the future, and the token that marks it alive until the task is
    /// dropped (done or not). A plain struct rather than an `async` block, which would keep room for the
    /// future twice (as a captured variable and as the awaited one): the wrapper adds 8 bytes to every
    /// connection task, not the size of its future.
    struct Member<F> {
        #[pin]
        future: F,
        _alive: Sender<()>,
    }
}

impl<F: Future<Output = ()>> Future for Member<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().future.poll(cx)
    }
}

/// The waiting side of a [`TaskGroup`]: completes once every task of the group has ended and every
/// [`TaskGroup`] clone is gone.
#[derive(Clone, Debug)]
pub(crate) struct TasksDone(Receiver<()>);

impl TaskGroup {
    /// A new group on `rt`, and its waiting side.
    pub fn new(rt: Arc<dyn Runtime>) -> (Self, TasksDone) {
        let (alive, done) = async_channel::bounded(1);
        (Self { rt, alive }, TasksDone(done))
    }

    /// The runtime the group spawns on.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.rt
    }

    /// Spawns `future` as a member of the group.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let task: BoxFuture<'static, ()> = Box::pin(Member {
            future,
            _alive: self.alive.clone(),
        });
        self.rt.spawn(task);
    }
}

impl TasksDone {
    /// Waits until every task of the group has ended.
    pub async fn wait(&self) {
        // Nobody sends: `recv` fails once every sender (task token or group clone) is dropped.
        let _ = self.0.recv().await;
    }
}

/// Held by a machine for as long as it runs; its [`StopSignal`]s fire when it is dropped.
#[derive(Debug)]
pub(crate) struct StopGuard(#[allow(dead_code)] Sender<()>);

/// Fires when the [`StopGuard`] is dropped.
#[derive(Clone, Debug)]
pub(crate) struct StopSignal(Receiver<()>);

/// A new guard and its signal.
pub(crate) fn stop_pair() -> (StopGuard, StopSignal) {
    let (tx, rx) = async_channel::bounded(1);
    (StopGuard(tx), StopSignal(rx))
}

impl StopSignal {
    /// Completes once the guard is dropped.
    pub async fn stopped(&self) {
        let _ = self.0.recv().await;
    }

    /// Runs `future` unless the guard is dropped first (`None` then).
    pub async fn or_stop<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        async { Some(future.await) }
            .or(async {
                self.stopped().await;
                None
            })
            .await
    }
}
