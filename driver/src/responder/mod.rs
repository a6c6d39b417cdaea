//! The responder side: [`ResponderHandle`], which accepts initiators' handshakes on a listening socket,
//! keeps their idle tunnels, and claims one for each [`connect`](ResponderHandle::connect).

mod accept;
mod reject_log;
mod side;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::Sender;
use revtun_core::responder::{Authorizer, NodeSummary, Responder, ResponderConfig};
use revtun_core::stats::{StatsSnapshot, TunnelCounts};

use self::side::{ResponderApi, ResponderSide};
use crate::error::{ClaimError, ShutDown, StartError};
use crate::machine;
use crate::msg::ask;
use crate::runtime::{Listener, Runtime};
use crate::sans_io::Query;
use crate::stream::TunnelStream;
use crate::tasks::{TaskGroup, TasksDone};
use crate::tls::TlsServerSource;

/// Options of a responder beyond the core's [`ResponderConfig`].
#[derive(Clone, Default)]
pub struct ResponderOptions {
    /// Seed of the core's `ChaCha8Rng` (keepalive jitter); `None` draws one.
    pub seed: Option<[u8; 32]>,
    /// The authentication / authorization hook (rows 8 and 10 of the check table); `None` accepts all.
    /// With tunnel TLS it sees the verified client certificate's identity (`HandshakeContext::tls`).
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Tunnel TLS on the handshake listener of [`bind`](ResponderHandle::bind) /
    /// [`serve`](ResponderHandle::serve): every accepted socket runs the TLS server handshake first, and
    /// the session carries the handshake, the keepalive and the data for the tunnel's whole life.
    /// [`serve_listeners`](ResponderHandle::serve_listeners) takes TLS per listener instead.
    pub tunnel_tls: Option<TlsServerSource>,
}

/// One handshake listener of [`ResponderHandle::serve_listeners`] and its tunnel TLS, if any.
pub struct HandshakeListener {
    /// The bound listener.
    pub listener: Box<dyn Listener>,
    /// Tunnel TLS for the sockets it accepts.
    pub tls: Option<TlsServerSource>,
}

impl std::fmt::Debug for HandshakeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeListener")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for ResponderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderOptions")
            .field("seed", &self.seed.map(|_| "…"))
            .field("authorizer", &self.authorizer.is_some())
            .field("tunnel_tls", &self.tunnel_tls)
            .finish()
    }
}

/// A running responder. Cheap to clone: every clone talks to the same machine. The responder shuts down
/// when the last clone is dropped, or at [`shutdown`](Self::shutdown).
///
/// ```no_run
/// # async fn demo(responder: revtun_driver::ResponderHandle) -> std::io::Result<()> {
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// let mut stream = responder.connect("edge-1").await?; // a node id or a cluster id
/// stream.write_all(b"GET / HTTP/1.1\r\nhost: svc\r\n\r\n").await?;
/// let mut reply = Vec::new();
/// stream.read_to_end(&mut reply).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ResponderHandle {
    inner: Arc<Inner>,
}

struct Inner {
    api: Sender<ResponderApi>,
    local_addr: SocketAddr,
    next_request: AtomicU64,
    done: TasksDone,
}

impl std::fmt::Debug for ResponderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("running", &!self.inner.api.is_closed())
            .finish_non_exhaustive()
    }
}

impl ResponderHandle {
    /// Binds `addr` on `rt` and serves handshakes there (see [`serve`](Self::serve)).
    ///
    /// # Errors
    /// The configuration is invalid, or the socket cannot be bound.
    pub async fn bind(
        rt: Arc<dyn Runtime>,
        addr: SocketAddr,
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let listener = rt.bind(addr).await?;
        Self::serve(rt, listener, config, options)
    }

    /// Serves handshakes on an already bound `listener`, with the options' tunnel TLS.
    ///
    /// # Errors
    /// The configuration is invalid, or the listener has no local address.
    pub fn serve(
        rt: Arc<dyn Runtime>,
        listener: Box<dyn Listener>,
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<Self, StartError> {
        let tls = options.tunnel_tls.clone();
        Self::serve_listeners(
            rt,
            vec![HandshakeListener { listener, tls }],
            config,
            options,
        )
    }

    /// Serves handshakes on several bound listeners into one pool, each with its own tunnel TLS (the
    /// options' `tunnel_tls` is not used). [`local_addr`](Self::local_addr) is the first listener's.
    ///
    /// # Errors
    /// The configuration is invalid, there is no listener, or a listener has no local address.
    pub fn serve_listeners(
        rt: Arc<dyn Runtime>,
        listeners: Vec<HandshakeListener>,
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<Self, StartError> {
        let Some(first) = listeners.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no handshake listener",
            )
            .into());
        };
        let local_addr = first.listener.local_addr()?;
        let seed = options.seed.unwrap_or_else(crate::seed::random_seed);
        let mut core = Responder::new(config, seed, rt.now())?;
        if let Some(authorizer) = options.authorizer {
            core = core.with_authorizer(authorizer);
        }
        let (api, api_rx) = async_channel::unbounded();
        let (tasks, done) = TaskGroup::new(rt);
        machine::spawn(ResponderSide::new(core), tasks, api_rx, move |_, ctx| {
            for HandshakeListener { listener, tls } in listeners {
                let rt = ctx.tasks().runtime().clone();
                let report = ctx.report().clone();
                let stop = ctx.stop_signal().clone();
                ctx.tasks().spawn(async move {
                    accept::accept_loop(&*rt, listener, tls, report, stop).await;
                });
            }
        });
        tracing::debug!(%local_addr, "responder listening");
        Ok(Self {
            inner: Arc::new(Inner {
                api,
                local_addr,
                next_request: AtomicU64::new(0),
                done,
            }),
        })
    }

    /// The address initiators dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Claims an idle tunnel of `id` — a cluster id first (its nodes round-robin), then a node id —
    /// waiting up to `claim_timeout` for one. Dropping the future withdraws the claim.
    ///
    /// # Errors
    /// [`ClaimError::Timeout`] when no tunnel came within `claim_timeout` (at once under tenant
    /// isolation: use [`connect_in_tenant`](Self::connect_in_tenant)); [`ClaimError::Shutdown`] after
    /// shutdown.
    pub async fn connect(&self, id: &str) -> Result<TunnelStream, ClaimError> {
        self.claim(id, None).await
    }

    /// [`connect`](Self::connect) within `tenant`, under tenant isolation (the tenant is ignored without).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_in_tenant(
        &self,
        id: &str,
        tenant: &str,
    ) -> Result<TunnelStream, ClaimError> {
        self.claim(id, Some(tenant)).await
    }

    async fn claim(&self, id: &str, tenant: Option<&str>) -> Result<TunnelStream, ClaimError> {
        let request = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = async_channel::bounded(1);
        let claim = ResponderApi::Claim {
            request,
            id: id.to_owned(),
            tenant: tenant.map(str::to_owned),
            reply,
        };
        self.inner
            .api
            .send(claim)
            .await
            .map_err(|_| ClaimError::Shutdown)?;
        let mut withdraw = Withdraw {
            api: &self.inner.api,
            request: Some(request),
        };
        let answer = answer.recv().await;
        withdraw.request = None;
        match answer {
            Ok(result) => result,
            Err(_) if self.inner.api.is_closed() => Err(ClaimError::Shutdown),
            Err(_) => Err(ClaimError::HandOverFailed),
        }
    }

    /// One entry per node with live tunnels (per tenant under isolation), sorted: what
    /// `/reverse_connections` shows.
    pub async fn nodes(&self) -> Result<Vec<NodeSummary>, ShutDown> {
        ask(&self.inner.api, ResponderApi::Nodes).await
    }

    /// The responder's statistics, named as DESIGN.md says (`reverse_connections.…`,
    /// `reverse_tunnel.handshake.…`).
    pub async fn stats(&self) -> Result<StatsSnapshot, ShutDown> {
        ask(&self.inner.api, |r| ResponderApi::Query(Query::Stats(r))).await
    }

    /// Connections by phase (`opened == closed + live`).
    pub async fn counts(&self) -> Result<TunnelCounts, ShutDown> {
        ask(&self.inner.api, |r| ResponderApi::Query(Query::Counts(r))).await
    }

    /// Stops accepting, closes pending handshakes and idle tunnels, fails waiting claims with
    /// [`ClaimError::Shutdown`], and waits until every task of the responder has ended (for every
    /// clone). Tunnels already handed out stay open with their streams.
    pub async fn shutdown(self) {
        let _ = self.inner.api.send(ResponderApi::Shutdown).await;
        let done = self.inner.done.clone();
        drop(self);
        done.wait().await;
    }
}

/// Withdraws a claim whose `connect` future was dropped before its answer.
struct Withdraw<'a> {
    api: &'a Sender<ResponderApi>,
    request: Option<u64>,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if let Some(request) = self.request.take() {
            let _ = self.api.try_send(ResponderApi::Cancel(request));
        }
    }
}
