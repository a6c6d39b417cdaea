//! Front doors: TCP listeners whose `tcp_proxy` cluster is a reverse-connection cluster. Each accepted
//! client claims a tunnel (`connect_in_tenant(claim_id, tenant)`) and is relayed through it with the
//! filter's `idle_timeout`. A client that goes away while its claim waits withdraws the claim; a claim
//! that gets no tunnel closes the client.
//!
//! TLS: the listener's `DownstreamTlsContext` terminates TLS from clients before the claim; the
//! reverse-connection cluster's `UpstreamTlsContext` makes the responder the TLS client inside the
//! claimed tunnel (data-leg TLS), with the cluster's `sni` or else the claimed id as the server name.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use revtun_core::config::FrontDoorPlan;
use revtun_core::policy::SourceAllowList;
use revtun_tokio::tls::{ServerName, TlsClientSource, TlsServerSource};
use revtun_tokio::{ClaimError, Responder, TunnelStream, configure_socket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::counted::Counted;
use crate::stats::{App, Direction, Rbac, Relayed};
use crate::tls;

/// What every client of one front door needs.
#[derive(Debug)]
pub struct FrontDoor {
    /// The id to claim.
    pub claim_id: String,
    /// The claim's tenant.
    pub tenant: Option<String>,
    /// The relay's idle timeout.
    pub idle_timeout: Option<Duration>,
    /// `connection_limit`: permits and the delay before closing a client over the limit.
    pub limit: Option<(Arc<Semaphore>, Option<Duration>)>,
    /// The responder whose tunnels are claimed.
    pub responder: Responder,
    /// The relayed-bytes counters.
    pub relayed: Arc<Relayed>,
    /// TLS from clients (the listener's `transport_socket`).
    pub listener_tls: Option<TlsServerSource>,
    /// Data-leg TLS inside the claimed tunnel (the cluster's `transport_socket`) and the server name.
    pub data_tls: Option<(TlsClientSource, ServerName<'static>)>,
    /// The `rbac` filter: the source ranges allowed and their counters.
    pub rbac: Option<(SourceAllowList, Arc<Rbac>)>,
}

impl FrontDoor {
    /// The front door of `plan` on `responder`; its counters are registered with `app`.
    ///
    /// # Errors
    /// A TLS context cannot be loaded, or data-leg TLS has no `sni` and the claimed id is not a DNS name.
    pub fn new(plan: &FrontDoorPlan, responder: Responder, app: &App) -> anyhow::Result<Self> {
        let rbac = plan
            .rbac
            .as_ref()
            .map(|r| (r.sources.clone(), app.add_rbac(&r.stat_prefix)));
        let listener_tls = plan
            .listener_tls
            .as_ref()
            .map(|t| {
                tls::server(
                    t,
                    &format!(
                        "listener '{}': filter_chains[0].transport_socket",
                        plan.name
                    ),
                )
            })
            .transpose()?;
        let data_tls = match &plan.data_tls {
            None => None,
            Some(t) => {
                let field = format!("cluster '{}': transport_socket", plan.cluster);
                let source = tls::client(t, &field)?;
                let name = match t.sni {
                    Some(_) => None,
                    None => Some(tls::server_name(&plan.claim_id).with_context(|| {
                        format!("{field}.typed_config.sni: required, host_id_format {:?} is not a DNS name", plan.claim_id)
                    })?),
                };
                // With `sni` set the fallback is never used.
                let fallback = name
                    .unwrap_or_else(|| ServerName::try_from("revtun.invalid").expect("a DNS name"));
                Some((source, fallback))
            }
        };
        let limit = plan.connection_limit.as_ref().map(|l| {
            let permits = usize::try_from(l.max_connections)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS);
            (Arc::new(Semaphore::new(permits)), l.delay)
        });
        Ok(Self {
            claim_id: plan.claim_id.clone(),
            tenant: plan.tenant.clone(),
            idle_timeout: plan.tcp_proxy.idle_timeout,
            limit,
            responder,
            relayed: app.relayed.clone(),
            rbac,
            listener_tls,
            data_tls,
        })
    }
}

/// A client connection whose TCP socket can be watched while its claim waits.
trait ClientSocket: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl ClientSocket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl ClientSocket for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Accepts clients on `listener` until the task is aborted; each client runs on `tracker`.
pub async fn accept_loop(listener: TcpListener, door: Arc<FrontDoor>, tracker: TaskTracker) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "front door accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracing::trace!(%peer, "front door client");
        if let Some((allow, counters)) = &door.rbac {
            if !allow.allows(peer.ip()) {
                // Closed at once: the client never reaches a claim.
                counters.denied();
                tracing::debug!(%peer, "front door: source not allowed (rbac); closed");
                drop(client);
                continue;
            }
            counters.allowed();
        }
        let door = door.clone();
        tracker.spawn(async move { serve_client(client, &door).await });
    }
}

/// One client: limit, TLS from the client, claim (withdrawn if the client leaves), data-leg TLS, relay.
pub async fn serve_client(client: TcpStream, door: &FrontDoor) {
    if let Err(e) = configure_socket(&client) {
        tracing::debug!(error = %e, "front door socket options");
    }
    let _permit = match &door.limit {
        None => None,
        Some((permits, delay)) => match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::debug!("connection_limit reached; client closed");
                if let Some(delay) = delay {
                    tokio::time::sleep(*delay).await;
                }
                return;
            }
        },
    };
    match &door.listener_tls {
        None => claim_and_relay(client, door).await,
        Some(tls) => match tls::accept(tls, client).await {
            Ok(session) => claim_and_relay(session, door).await,
            Err(e) => tracing::debug!(error = %e, "front door TLS handshake failed; client closed"),
        },
    }
}

/// Claims a tunnel for `client` and relays, through data-leg TLS if the cluster has it.
async fn claim_and_relay(client: impl ClientSocket, door: &FrontDoor) {
    let Some(tunnel) = claim_while_connected(client.tcp(), door).await else {
        return;
    };
    let client = Counted::new(
        client,
        door.relayed.clone(),
        Direction::ClientToTunnel,
        Direction::TunnelToClient,
    );
    let relayed = match &door.data_tls {
        None => revtun_tokio::relay(client, tunnel, door.idle_timeout).await,
        Some((source, name)) => match tls::connect(source, name.clone(), tunnel).await {
            Ok(session) => revtun_tokio::relay(client, session, door.idle_timeout).await,
            Err(e) => Err(e),
        },
    };
    match relayed {
        Ok((to_tunnel, from_tunnel)) => {
            tracing::debug!(to_tunnel, from_tunnel, "front door relay done");
        }
        Err(e) => tracing::debug!(error = %e, "front door relay ended"),
    }
}

/// Claims a tunnel; `None` when the claim failed or the client closed first (the claim is withdrawn
/// by dropping its future).
async fn claim_while_connected(client: &TcpStream, door: &FrontDoor) -> Option<TunnelStream> {
    let claim = async {
        match &door.tenant {
            Some(tenant) => {
                door.responder
                    .connect_in_tenant(&door.claim_id, tenant)
                    .await
            }
            None => door.responder.connect(&door.claim_id).await,
        }
    };
    tokio::pin!(claim);
    let mut watching = true;
    loop {
        tokio::select! {
            result = &mut claim => {
                return match result {
                    Ok(tunnel) => Some(tunnel),
                    Err(e @ (ClaimError::Timeout | ClaimError::HandOverFailed)) => {
                        tracing::info!(id = door.claim_id, error = %e, "no tunnel; client closed");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "claim failed; client closed");
                        None
                    }
                };
            }
            gone = client_gone(client), if watching => {
                if gone {
                    tracing::debug!(id = door.claim_id, "client left while its claim waited");
                    return None;
                }
                // The client sent data: it stays until the claim is answered.
                watching = false;
            }
        }
    }
}

/// `true` when the client closed (EOF or error), `false` once it has sent data (not consumed).
async fn client_gone(client: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    !matches!(client.peek(&mut probe).await, Ok(1..))
}

/// Binds every address of a front door.
pub async fn bind(plan: &FrontDoorPlan) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(plan.binds.len());
    for addr in &plan.binds {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listener '{}': cannot bind {addr}: {e}", plan.name))?;
        listeners.push(listener);
    }
    Ok(listeners)
}
