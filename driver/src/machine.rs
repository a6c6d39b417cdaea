//! The machine task: the one driver loop (STYLE.md §3), shared by the initiator and the responder.
//!
//! One task owns the core state machine. Each turn of its loop:
//! 1. drains the core completely: [`SansIo::poll_transmit`] (each becomes an [`Order::Write`] to its
//!    connection task), [`SansIo::poll_command`] (`Dial` spawns a connection task, `Close` orders one to
//!    close), then the events ([`Side::drain_events`]);
//! 2. reads [`SansIo::poll_timeout`]; a deadline already due is handled at once (`now >= deadline` is
//!    checked before any timer is awaited, so a runtime's lazy timer cannot delay it);
//! 3. waits for the first of: the timer, an [`Internal`] message, an API request; handles that one
//!    input with the runtime's `now`, and goes round again.
//!
//! Work per wake-up is one input and its outputs; every [`YIELD_EVERY`] turns the task yields to the
//! executor, so a flood of input cannot starve other tasks. The machine makes no protocol decision:
//! every decision comes from the core.
//!
//! The loop ends when the API channel closes (every user handle dropped) or an API request says so:
//! the core is shut down and drained (idle tunnels and handshakes get their `Close` orders), then the
//! task drops its connection senders (each connection task closes its socket after its queued orders)
//! and its [`StopGuard`] (helper tasks end).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::FutureExt;
use revtun_core::command::{Command, ConnId};

use crate::conn::{ConnTask, Start};
use crate::mailbox::{Outbox, mailbox};
use crate::msg::{HandOff, Internal, Order};
use crate::runtime::{BoxFuture, Runtime};
use crate::sans_io::SansIo;
use crate::tasks::{StopGuard, StopSignal, TaskGroup};

/// Turns of the loop between two voluntary yields to the executor.
pub(crate) const YIELD_EVERY: u32 = 32;

/// What the loop does after an API request.
pub(crate) enum Flow {
    /// Go on.
    Continue,
    /// Shut the core down, drain it and end.
    Stop,
}

/// One side: its core, and what the driver does with the core's events and the user's requests.
pub(crate) trait Side: Send + 'static {
    /// The core state machine.
    type Core: SansIo;
    /// The requests the user's handle sends.
    type Api: Send + 'static;

    /// The core.
    fn core(&mut self) -> &mut Self::Core;
    /// Called before the core's final shutdown.
    fn stopping(&mut self) {}
    /// Drains the core's events, acting on each through `ctx` (hand-overs, answers to the user).
    fn drain_events(&mut self, ctx: &mut Ctx);
    /// How the connection task of a `Dial` command starts (the initiator adds its tunnel TLS).
    fn dial(&self, _conn: ConnId, addr: SocketAddr) -> Start {
        Start::Dial { addr, tls: None }
    }
    /// A side-specific [`Internal`] message (dial outcomes, accepted sockets, resolved hosts).
    fn on_internal(&mut self, msg: Internal, ctx: &mut Ctx, now: Instant);
    /// A request from the user's handle.
    fn on_api(&mut self, request: Self::Api, ctx: &mut Ctx, now: Instant) -> Flow;
}

/// What the machine task owns besides the core: the connection tasks' order senders, the way to spawn
/// more tasks, and the sender helper tasks report on.
pub(crate) struct Ctx {
    tasks: TaskGroup,
    report: Sender<Internal>,
    stop: StopSignal,
    conns: BTreeMap<ConnId, Outbox>,
    /// The connection whose `Input` the core is handling: a hand-over of it answers that input.
    answering: Option<ConnId>,
}

impl Ctx {
    /// The runtime.
    pub fn runtime(&self) -> &dyn Runtime {
        &**self.tasks.runtime()
    }

    /// The task group, for helper tasks.
    pub fn tasks(&self) -> &TaskGroup {
        &self.tasks
    }

    /// The sender helper tasks report on.
    pub fn report(&self) -> &Sender<Internal> {
        &self.report
    }

    /// Fires when the machine ends; helper tasks watch it.
    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// Starts a connection task for `conn`.
    pub fn open(&mut self, conn: ConnId, start: Start) {
        let (tx, orders) = mailbox();
        self.conns.insert(conn, tx);
        let task = ConnTask {
            conn,
            orders,
            report: self.report.clone(),
        };
        self.tasks
            .spawn(task.run(self.tasks.runtime().clone(), start));
    }

    /// The connection task of `conn` is gone (it reported a failed dial or a close).
    pub fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Gives `conn` to the user: its task writes what is queued, then hands the stream to `to`.
    pub fn hand_over(&mut self, conn: ConnId, data: Bytes, to: HandOff) {
        let answers_input = self.answering == Some(conn);
        match self.conns.remove(&conn) {
            Some(tx) => {
                let order = Order::HandOver {
                    data,
                    answers_input,
                    to,
                };
                if tx.try_send(order).is_err() {
                    // The task ended; its `Closed` report is on the way and tells the core.
                    tracing::debug!(%conn, "hand-over to a finished connection task dropped");
                }
            }
            None => tracing::debug!(%conn, "hand-over of a connection with no task dropped"),
        }
    }

    fn send(&mut self, conn: ConnId, order: Order) {
        let Some(tx) = self.conns.get(&conn) else {
            tracing::trace!(%conn, "order for a connection with no task dropped");
            return;
        };
        if tx.try_send(order).is_err() {
            self.conns.remove(&conn);
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.send(conn, Order::Close);
        self.conns.remove(&conn);
    }
}

/// Spawns the machine task for `side` as a member of `tasks`; `start` runs first, inside the task, to set
/// the core up and start helper tasks (resolvers, the accept loop) with the machine's [`Ctx`].
pub(crate) fn spawn<S: Side>(
    side: S,
    tasks: TaskGroup,
    api: Receiver<S::Api>,
    start: impl FnOnce(&mut S, &mut Ctx) + Send + 'static,
) {
    let (report, internal) = async_channel::unbounded();
    let (guard, stop) = crate::tasks::stop_pair();
    let ctx = Ctx {
        tasks: tasks.clone(),
        report,
        stop,
        conns: BTreeMap::new(),
        answering: None,
    };
    tasks.spawn(async move {
        let mut machine = Machine {
            side,
            ctx,
            internal,
            api,
            _guard: guard,
        };
        start(&mut machine.side, &mut machine.ctx);
        machine.run().await;
    });
}

struct Machine<S: Side> {
    side: S,
    ctx: Ctx,
    internal: Receiver<Internal>,
    api: Receiver<S::Api>,
    _guard: StopGuard,
}

enum Wake<A> {
    Timer,
    Internal(Option<Internal>),
    Api(Option<A>),
}

impl<S: Side> Machine<S> {
    async fn run(mut self) {
        let rt = self.ctx.tasks.runtime().clone();
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        let mut turns = 0u32;
        loop {
            self.drain();
            turns = turns.wrapping_add(1);
            if turns % YIELD_EVERY == 0 {
                futures_lite::future::yield_now().await;
            }
            let now = rt.now();
            let deadline = self.side.core().poll_timeout();
            if let Some(at) = deadline.filter(|&at| at <= now) {
                tracing::trace!(?at, "deadline due");
                self.side.core().handle_timeout(now);
                continue;
            }
            match deadline {
                Some(at) if timer.as_ref().is_none_or(|(t, _)| *t != at) => {
                    timer = Some((at, rt.sleep_until(at)));
                }
                None => timer = None,
                Some(_) => {}
            }
            let wake = wait(
                timer.as_mut().map(|(_, f)| f),
                &self.internal,
                &self.api,
                turns % 2 == 0,
            )
            .await;
            let now = rt.now();
            match wake {
                Wake::Timer => {
                    timer = None;
                    self.side.core().handle_timeout(now);
                }
                Wake::Internal(Some(msg)) => self.internal(msg, now),
                Wake::Api(Some(request)) => {
                    if let Flow::Stop = self.side.on_api(request, &mut self.ctx, now) {
                        break;
                    }
                }
                Wake::Internal(None) | Wake::Api(None) => break,
            }
        }
        tracing::debug!("machine stopping");
        self.side.stopping();
        self.side.core().shutdown(rt.now());
        self.drain();
    }

    /// One internal message: input and closes are handled here, the rest by the side.
    fn internal(&mut self, msg: Internal, now: Instant) {
        match msg {
            Internal::Input(conn, data) => {
                if !self.ctx.conns.contains_key(&conn) {
                    // Handed over or closed meanwhile: the bytes went to the user, or nowhere.
                    tracing::trace!(%conn, "input of an unmanaged connection ignored");
                    return;
                }
                self.ctx.answering = Some(conn);
                self.side.core().handle_input(conn, &data, now);
                self.drain();
                self.ctx.answering = None;
                self.ctx.send(conn, Order::Resume);
            }
            Internal::Closed(conn) => {
                self.ctx.forget(conn);
                self.side.core().handle_closed(conn, now);
            }
            Internal::TlsFailed(conn) => {
                self.ctx.forget(conn);
                self.side.core().handle_tls_failed(conn, now);
            }
            other => self.side.on_internal(other, &mut self.ctx, now),
        }
    }

    /// Drains every output of the core, in the order its documentation asks for.
    fn drain(&mut self) {
        while let Some(t) = self.side.core().poll_transmit() {
            self.ctx.send(t.conn, Order::Write(t.data));
        }
        while let Some(command) = self.side.core().poll_command() {
            match command {
                Command::Dial { conn, addr } => {
                    let start = self.side.dial(conn, addr);
                    self.ctx.open(conn, start);
                }
                Command::Close { conn } => self.ctx.close(conn),
            }
        }
        self.side.drain_events(&mut self.ctx);
    }
}

/// Waits for the first of the timer, an internal message and an API request; the two channels take
/// turns at being polled first.
async fn wait<A>(
    timer: Option<&mut BoxFuture<'static, ()>>,
    internal: &Receiver<Internal>,
    api: &Receiver<A>,
    internal_first: bool,
) -> Wake<A> {
    let timer = async move {
        match timer {
            Some(sleep) => {
                sleep.await;
                Wake::Timer
            }
            None => futures_lite::future::pending().await,
        }
    };
    let internal = async { Wake::Internal(internal.recv().await.ok()) };
    let api = async { Wake::Api(api.recv().await.ok()) };
    if internal_first {
        timer.or(internal.or(api)).await
    } else {
        timer.or(api.or(internal)).await
    }
}
