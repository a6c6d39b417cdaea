//! Front doors: TCP listeners whose `tcp_proxy` cluster is a reverse-connection cluster. Each accepted
//! client claims a tunnel (`connect_in_tenant(claim_id, tenant)`) and is relayed through it with the
//! filter's `idle_timeout`. A client that goes away while its claim waits withdraws the claim; a claim
//! that gets no tunnel closes the client.

use std::sync::Arc;
use std::time::Duration;

use revtun_core::config::FrontDoorPlan;
use revtun_core::policy::SourceAllowList;
use revtun_tokio::{ClaimError, Responder, TunnelStream, configure_socket};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::counted::Counted;
use crate::stats::{App, Direction, Rbac, Relayed};

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
    /// The `rbac` filter: the source ranges allowed and their counters.
    pub rbac: Option<(SourceAllowList, Arc<Rbac>)>,
}

impl FrontDoor {
    /// The front door of `plan` on `responder`; its counters are registered with `app`.
    pub fn new(plan: &FrontDoorPlan, responder: Responder, app: &App) -> Self {
        let rbac = plan
            .rbac
            .as_ref()
            .map(|r| (r.sources.clone(), app.add_rbac(&r.stat_prefix)));
        let limit = plan.connection_limit.as_ref().map(|l| {
            let permits = usize::try_from(l.max_connections)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS);
            (Arc::new(Semaphore::new(permits)), l.delay)
        });
        Self {
            claim_id: plan.claim_id.clone(),
            tenant: plan.tenant.clone(),
            idle_timeout: plan.tcp_proxy.idle_timeout,
            limit,
            responder,
            relayed: app.relayed.clone(),
            rbac,
        }
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

/// One client: limit, claim (withdrawn if the client leaves), relay.
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
    let Some(tunnel) = claim_while_connected(&client, door).await else {
        return;
    };
    let client = Counted::new(
        client,
        door.relayed.clone(),
        Direction::ClientToTunnel,
        Direction::TunnelToClient,
    );
    match revtun_tokio::relay(client, tunnel, door.idle_timeout).await {
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
