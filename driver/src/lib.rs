//! # revtun-driver
//!
//! The one async driver of revtun, runtime-agnostic: it owns sockets, timers and tasks through a small
//! [`Runtime`] trait and feeds [`revtun_core`]'s sans-IO state machines. `revtun-tokio` and `revtun-smol`
//! only implement [`Runtime`] (and add runtime-flavoured conveniences); they repeat no driver logic.
//!
//! - Initiator side: [`ReverseListener`] keeps `count` idle tunnels per host of each target cluster
//!   ([`HostSource`]: STATIC, STRICT_DNS, LOGICAL_DNS) and yields each claimed tunnel from
//!   [`accept`](ReverseListener::accept) as a [`TunnelStream`] with its [`TunnelInfo`].
//! - Responder side: [`ResponderHandle`] accepts handshakes and claims a tunnel for each
//!   [`connect`](ResponderHandle::connect).
//! - [`relay()`]: copies both ways with independent half-close and an idle timeout.
//! - [`auth_files`]: token files re-read in the background when they change: the responder's token set
//!   for the core's [`Policy`](revtun_core::policy::Policy) authorizer ([`auth_files::watch_token_file`])
//!   and the initiator's bearer token ([`auth_files::BearerTokenFile`]).
//!
//! # Tasks and channels
//! ```text
//!            API requests (unbounded)              Internal (unbounded)
//!  handle ───────────────────────────▶ machine ◀──────────────────────── connection tasks,
//!  (ReverseListener /                  task      ◀── accept loop / resolvers, dropped TunnelStreams
//!   ResponderHandle)                   │ owns the core; one input per turn, then drains it
//!                                      │ Order mailbox per connection (Write, Resume, HandOver, Close)
//!                                      ▼
//!                               connection task ── HandOver ──▶ TunnelStream ──▶ accept queue / claim
//! ```
//! - The **machine task** owns the core (`Initiator` or `Responder`) alone. Each turn it handles one
//!   input (a message or the timer) with the runtime's `now`, drains `poll_transmit` → `poll_command` →
//!   `poll_event` completely, and re-reads `poll_timeout` (STYLE.md §3). Every protocol decision is the
//!   core's.
//! - A **connection task** per socket reads, sends each read to the machine and waits for the answer
//!   before reading again, so no byte is read past a claim. Writes, answers and hand-overs reach it in
//!   one FIFO, so a hand-over never overtakes a write.
//! - On a claim the connection task builds the [`TunnelStream`] (the core's leftover bytes in front) and
//!   passes it to the accept queue or to the waiting [`connect`](ResponderHandle::connect). From then on
//!   the user owns the socket; dropping the stream reports the end of the in-use tunnel to the core.
//! - Helper tasks (the responder's accept loop, one resolver per DNS cluster) end when the machine
//!   ends. The machine ends when every handle is dropped or at `shutdown()`, which waits until every
//!   task has ended.
//!
//! # Event order
//! Per connection the core's order holds on the wire: every transmit queued before a `Close` or a
//! hand-over is written before the socket is closed or handed over. A [`ReverseListener`] yields tunnels
//! in the order the core reported their claims; a [`ResponderHandle`] answers each `connect` once.
//!
//! # Decisions where DESIGN.md is silent
//! - **End of an in-use tunnel** is reported to the core when the [`TunnelStream`] is dropped, not at
//!   `poll_close`: closing is a half-close and the stream may still read.
//! - **Accept queue**: at most [`ListenerOptions::accept_backlog`] claimed tunnels wait for `accept()`;
//!   beyond that the connection task waits (backpressure), bounded by `max_tunnels_per_host`.
//! - **Claims**: a `connect` future dropped before its answer withdraws the claim (`cancel_claim`). A
//!   tunnel that dies between the core's hand-out and the hand-over fails the claim with
//!   [`ClaimError::HandOverFailed`]; the core already counted it in use, and learns of the close.
//! - **DNS**: an empty answer (after the [`LookupFamily`] filter) is a host set with no hosts (the core
//!   counts `cannot_connect`, hosts are removed); a lookup error keeps the hosts
//!   (`handle_resolve_failed`). `Auto` applies to the combined answer; duplicates are removed; LOGICAL_DNS
//!   takes the first address left. Lookups repeat `refresh` after the previous one completed.
//! - **Sockets**: `TCP_NODELAY` and TCP keepalive on every socket (runtime crates); a managed socket is read
//!   at most 4 KiB at a time, into a stack buffer; a failed `accept` pauses the accept loop for 50 ms.
//! - **Memory of an idle tunnel** (measured at 10,000 tunnels, either runtime: 2–3 KiB of RSS per
//!   tunnel on each side, sockets' kernel buffers aside): its connection task's future, its order
//!   mailbox (a few dozen bytes, no queue memory while empty), the runtime's task and socket
//!   registration, and the core's record. No read buffer and no queued message is held while a tunnel
//!   waits; a [`relay()`] allocates its two 64 KiB buffers when it starts.
//! - **What bounds the rest.** Each connection keeps one task (its future is about 600 bytes): the
//!   socket must be read as soon as bytes come (pings, a claim) and the core must answer each read before
//!   the next, which a task per connection does without `unsafe` or runtime-specific readiness APIs. A
//!   claim through a front door crosses two relays (front door → tunnel → the initiator's dial to its
//!   service), so connect + echo costs about two extra process hops over a direct connection; the
//!   claim itself (machine, connection task, `RDATA` round trip) is a small part of it. [`relay()`]
//!   copies through user space: `splice(2)` would need each runtime's readiness API on the raw sockets
//!   (tokio's `async_io`, async-io's `read_with`) below every wrapper (`TunnelStream`, byte counters,
//!   later TLS), which the futures-io streams the driver is written against do not expose.
//! - **Fairness**: the machine yields to the executor every 32 turns and alternates which channel it
//!   polls first; the timer is checked before both.
//! - **Handshake failures** are logged once per peer address per 10 s (the first one at once, with the
//!   count suppressed since the previous line), from a table of at most 4096 addresses that forgets
//!   the address logged longest ago; the core's `reverse_tunnel.handshake.*` counters count them all.
//! - **Seeds**: without [`ListenerOptions::seed`] / [`ResponderOptions::seed`] a seed comes from the
//!   standard library's per-process hash keys and the clock (jitter needs variety, not secrecy).

pub mod auth_files;
mod conn;
mod error;
mod file_watch;
mod hosts;
mod initiator;
mod machine;
mod mailbox;
mod msg;
mod relay;
mod responder;
mod runtime;
mod sans_io;
mod seed;
mod stream;
mod tasks;
pub mod tls;

pub use error::{ClaimError, HeadersError, ShutDown, StartError};
pub use hosts::{DEFAULT_DNS_REFRESH_RATE, DnsHosts, HostSource, LookupFamily, select_hosts};
pub use initiator::{DEFAULT_ACCEPT_BACKLOG, ListenerOptions, ReverseListener, TunnelInfo};
pub use relay::relay;
pub use responder::{HandshakeListener, ResponderHandle, ResponderOptions};
pub use revtun_core;
pub use runtime::{AsyncStream, BoxFuture, BoxStream, Listener, Runtime, tune_tcp};
pub use stream::TunnelStream;
