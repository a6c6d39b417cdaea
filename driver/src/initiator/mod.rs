//! The initiator side: [`ReverseListener`], which keeps tunnels to the responder's hosts and yields each
//! tunnel the responder claims, like a `TcpListener` yields connections.

mod side;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use revtun_core::command::ConnId;
use revtun_core::initiator::{Initiator, InitiatorConfig};
use revtun_core::stats::{StatsSnapshot, TunnelCounts};

use self::side::{InitiatorApi, InitiatorSide};
use crate::error::{HeadersError, ShutDown, StartError};
use crate::hosts::{HostSource, resolve_loop};
use crate::machine;
use crate::msg::ask;
use crate::runtime::Runtime;
use crate::sans_io::Query;
use crate::stream::TunnelStream;
use crate::tasks::{TaskGroup, TasksDone};
use crate::tls::TlsClientSource;

/// Default length of the accept queue: claimed tunnels not yet taken by [`ReverseListener::accept`].
pub const DEFAULT_ACCEPT_BACKLOG: usize = 128;

/// Where a claimed tunnel comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The target cluster (the responder-side cluster the tunnel was dialled for).
    pub cluster: String,
    /// The host the tunnel was dialled to.
    pub host: SocketAddr,
    /// The core's id of the tunnel.
    pub id: ConnId,
}

/// Options of a [`ReverseListener`] beyond the core's [`InitiatorConfig`].
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// Seed of the core's `ChaCha8Rng` (backoff jitter); `None` draws one.
    pub seed: Option<[u8; 32]>,
    /// Claimed tunnels that may wait for [`accept`](ReverseListener::accept) (at least 1); when the queue
    /// is full the next claimed tunnel waits to be queued.
    pub accept_backlog: usize,
    /// Tunnel TLS per target cluster (by name; the cluster's `UpstreamTlsContext`): after the TCP connect
    /// the TLS client handshake runs (within the core's `handshake_timeout`), and the session carries the
    /// handshake, the keepalive and the data for the tunnel's whole life. Without `sni` the server name
    /// is the dialled IP address.
    pub tunnel_tls: BTreeMap<String, TlsClientSource>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            seed: None,
            accept_backlog: DEFAULT_ACCEPT_BACKLOG,
            tunnel_tls: BTreeMap::new(),
        }
    }
}

/// The initiator side of revtun: keeps `count` idle tunnels per host of every target cluster and yields
/// the tunnels the responder claims.
///
/// Dropping the listener (or [`shutdown`](Self::shutdown)) closes every tunnel that is dialling,
/// handshaking or idle; tunnels already accepted stay with their [`TunnelStream`]s.
pub struct ReverseListener {
    api: Sender<InitiatorApi>,
    accepted: Receiver<(TunnelStream, TunnelInfo)>,
    done: TasksDone,
}

impl std::fmt::Debug for ReverseListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseListener")
            .field("running", &!self.api.is_closed())
            .finish_non_exhaustive()
    }
}

impl ReverseListener {
    /// Starts the initiator on `rt`: one [`HostSource`] per target cluster of `config` (by name). Static
    /// hosts are dialled at once, DNS names as soon as they resolve.
    ///
    /// # Errors
    /// The configuration is invalid, or the host sources do not match its target clusters one to one.
    pub async fn bind(
        rt: Arc<dyn Runtime>,
        config: InitiatorConfig,
        clusters: Vec<(String, HostSource)>,
        options: ListenerOptions,
    ) -> Result<Self, StartError> {
        check_sources(&config, &clusters)?;
        if let Some(name) = options
            .tunnel_tls
            .keys()
            .find(|name| !config.targets.iter().any(|t| &t.name == *name))
        {
            return Err(StartError::UnknownCluster(name.clone()));
        }
        let seed = options.seed.unwrap_or_else(crate::seed::random_seed);
        let core = Initiator::new(config, seed, rt.now())?;
        let (api, api_rx) = async_channel::unbounded();
        let (queue, accepted) = async_channel::bounded(options.accept_backlog.max(1));
        let (tasks, done) = TaskGroup::new(rt);
        let side = InitiatorSide {
            core,
            accepted: queue,
            tunnel_tls: options.tunnel_tls,
        };
        machine::spawn(side, tasks, api_rx, move |side, ctx| {
            for (cluster, source) in clusters {
                let (dns, logical) = match source {
                    HostSource::Static(hosts) => {
                        let now = ctx.runtime().now();
                        if let Err(e) = side.core.set_hosts(&cluster, &hosts, now) {
                            tracing::warn!(error = %e, "static hosts not set");
                        }
                        continue;
                    }
                    HostSource::StrictDns(dns) => (dns, false),
                    HostSource::LogicalDns(dns) => (dns, true),
                };
                let rt = ctx.tasks().runtime().clone();
                let report = ctx.report().clone();
                let stop = ctx.stop_signal().clone();
                ctx.tasks().spawn(async move {
                    resolve_loop(&*rt, cluster, dns, logical, report, stop).await;
                });
            }
        });
        Ok(Self {
            api,
            accepted,
            done,
        })
    }

    /// Waits for the responder to claim a tunnel: the stream (with any bytes the core read past the
    /// protocol in front) and where it comes from.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotConnected`] once the listener has shut down.
    pub async fn accept(&self) -> io::Result<(TunnelStream, TunnelInfo)> {
        self.accepted.recv().await.map_err(|_| ShutDown.into())
    }

    /// The initiator's statistics, named as DESIGN.md says (`downstream_reverse_connection.…`).
    pub async fn stats(&self) -> Result<StatsSnapshot, ShutDown> {
        ask(&self.api, |r| InitiatorApi::Query(Query::Stats(r))).await
    }

    /// Tunnels by phase over all hosts (`opened == closed + live`).
    pub async fn counts(&self) -> Result<TunnelCounts, ShutDown> {
        ask(&self.api, |r| InitiatorApi::Query(Query::Counts(r))).await
    }

    /// Replaces the extra request headers (e.g. a rotated `authorization: Bearer …`) of every handshake
    /// from now on; tunnels already handshaking or up are untouched. The headers are checked as
    /// [`InitiatorConfig::validate`] checks `extra_headers`.
    ///
    /// # Errors
    /// A header is invalid (the headers in force stay), or the listener has shut down.
    pub async fn set_extra_headers(
        &self,
        headers: Vec<(String, String)>,
    ) -> Result<(), HeadersError> {
        ask(&self.api, |r| InitiatorApi::SetExtraHeaders(headers, r)).await??;
        Ok(())
    }

    /// Closes every tunnel that is not in use, stops dialling and resolving, and waits until every task
    /// of the listener has ended. Tunnels already accepted stay open with their streams. Claimed tunnels
    /// still in the accept queue are closed.
    pub async fn shutdown(self) {
        let Self {
            api,
            accepted,
            done,
        } = self;
        let _ = api.send(InitiatorApi::Shutdown).await;
        drop(api);
        drop(accepted);
        done.wait().await;
    }
}

impl AsRef<ReverseListener> for ReverseListener {
    fn as_ref(&self) -> &ReverseListener {
        self
    }
}

/// Every source names a target, and every target has exactly one source.
fn check_sources(
    config: &InitiatorConfig,
    clusters: &[(String, HostSource)],
) -> Result<(), StartError> {
    for (name, _) in clusters {
        if !config.targets.iter().any(|t| &t.name == name) {
            return Err(StartError::UnknownCluster(name.clone()));
        }
    }
    for target in &config.targets {
        if clusters.iter().filter(|(n, _)| n == &target.name).count() != 1 {
            return Err(StartError::HostSource(target.name.clone()));
        }
    }
    Ok(())
}
