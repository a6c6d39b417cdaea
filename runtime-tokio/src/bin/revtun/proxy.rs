//! The initiator's `tcp_proxy`: each claimed tunnel is connected to the listener's local service
//! cluster and relayed, with the filter's `idle_timeout`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use revtun_core::config::{ClusterKind, ClusterPlan, DnsLookupFamily, Endpoint};
use revtun_tokio::{LookupFamily, TunnelInfo, TunnelStream, configure_socket, driver};
use tokio::net::TcpStream;

use crate::counted::Counted;
use crate::stats::{Direction, Relayed};

/// A local service cluster: its endpoints, taken round-robin (one endpoint: always that one).
#[derive(Debug)]
pub struct LocalService {
    /// The cluster's name (for logs).
    pub name: String,
    endpoints: Vec<Endpoint>,
    family: LookupFamily,
    connect_timeout: Duration,
    next: AtomicUsize,
}

impl LocalService {
    /// The service behind `plan`. A reverse-connection cluster is not a local service.
    pub fn from_plan(name: &str, plan: &ClusterPlan) -> anyhow::Result<Self> {
        if let ClusterKind::ReverseConnection { .. } = plan.kind {
            anyhow::bail!(
                "cluster '{name}': a reverse-connection cluster cannot be an rc:// listener's tcp_proxy cluster"
            );
        }
        if plan.endpoints.is_empty() {
            anyhow::bail!("cluster '{name}' has no endpoints");
        }
        Ok(Self {
            name: name.to_owned(),
            endpoints: plan.endpoints.clone(),
            family: lookup_family(plan.dns_lookup_family),
            connect_timeout: plan.connect_timeout,
            next: AtomicUsize::new(0),
        })
    }

    /// A service at one fixed address (the demo).
    pub fn fixed(name: &str, addr: SocketAddr) -> Self {
        Self {
            name: name.to_owned(),
            endpoints: vec![Endpoint {
                host: addr.ip().to_string(),
                port: addr.port(),
            }],
            family: LookupFamily::Auto,
            connect_timeout: Duration::from_secs(5),
            next: AtomicUsize::new(0),
        }
    }

    /// Connects to the next endpoint (resolving a name now, first address of its family), within
    /// `connect_timeout`, with `TCP_NODELAY` and keepalive set.
    pub async fn connect(&self) -> io::Result<TcpStream> {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        let endpoint = &self.endpoints[at];
        let addr = match endpoint.socket_addr() {
            Some(addr) => addr,
            None => {
                let all: Vec<SocketAddr> =
                    tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
                        .await?
                        .collect();
                let hosts = driver::select_hosts(&all, self.family, true);
                *hosts.first().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the name has no address")
                })?
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect_timeout"))??;
        configure_socket(&stream)?;
        Ok(stream)
    }
}

/// The driver's lookup family for the plan's.
pub fn lookup_family(family: DnsLookupFamily) -> LookupFamily {
    match family {
        DnsLookupFamily::Auto => LookupFamily::Auto,
        DnsLookupFamily::V4Only => LookupFamily::V4Only,
        DnsLookupFamily::V6Only => LookupFamily::V6Only,
        DnsLookupFamily::All => LookupFamily::All,
    }
}

/// Relays one claimed tunnel to the local service. A service that cannot be reached closes the tunnel.
pub async fn serve_tunnel(
    tunnel: TunnelStream,
    info: TunnelInfo,
    service: Arc<LocalService>,
    idle_timeout: Option<Duration>,
    relayed: Arc<Relayed>,
) {
    let local = match service.connect().await {
        Ok(local) => local,
        Err(e) => {
            tracing::warn!(service = service.name, tunnel = %info.id, error = %e, "local service unreachable; tunnel closed");
            return;
        }
    };
    let tunnel = Counted::new(
        tunnel,
        relayed,
        Direction::TunnelToService,
        Direction::ServiceToTunnel,
    );
    match revtun_tokio::relay(tunnel, local, idle_timeout).await {
        Ok((to_service, from_service)) => {
            tracing::debug!(tunnel = %info.id, to_service, from_service, "tunnel relay done");
        }
        Err(e) => tracing::debug!(tunnel = %info.id, error = %e, "tunnel relay ended"),
    }
}
