//! The initiator's `tcp_proxy`: each claimed tunnel is connected to the listener's local service
//! cluster and relayed, with the filter's `idle_timeout`. With data-leg TLS (the rc:// listener's
//! `DownstreamTlsContext`) the initiator terminates TLS on the claimed tunnel first; a local service
//! cluster with an `UpstreamTlsContext` is reached over TLS (server name: `sni`, else the endpoint's
//! host).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use revtun_core::config::{ClusterKind, ClusterPlan, DnsLookupFamily, Endpoint};
use revtun_tokio::tls::{TlsClientSource, TlsServerSource};
use revtun_tokio::{LookupFamily, TunnelInfo, TunnelStream, configure_socket, driver};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::counted::Counted;
use crate::stats::{Direction, Relayed};
use crate::tls;

/// A connection to a local service: plain TCP, or TLS when its cluster has a `transport_socket`.
pub type ServiceStream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// A local service cluster: its endpoints, taken round-robin (one endpoint: always that one).
#[derive(Debug)]
pub struct LocalService {
    /// The cluster's name (for logs).
    pub name: String,
    endpoints: Vec<Endpoint>,
    family: LookupFamily,
    connect_timeout: Duration,
    next: AtomicUsize,
    tls: Option<TlsClientSource>,
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
            tls: plan
                .tls
                .as_ref()
                .map(|t| tls::client(t, &format!("cluster '{name}': transport_socket")))
                .transpose()?,
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
            tls: None,
        }
    }

    /// Connects to the next endpoint (resolving a name now, first address of its family), within
    /// `connect_timeout`, with `TCP_NODELAY` and keepalive set; then the TLS handshake if the cluster
    /// has TLS.
    pub async fn connect(&self) -> io::Result<ServiceStream> {
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
        match &self.tls {
            None => Ok(Either::Left(stream)),
            Some(source) => {
                let fallback = tls::server_name(&endpoint.host).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "the host is not a server name")
                })?;
                Ok(Either::Right(tls::connect(source, fallback, stream).await?))
            }
        }
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

/// Relays one claimed tunnel to the local service, terminating data-leg TLS first if `data_tls` is
/// set. A failed TLS handshake or a service that cannot be reached closes the tunnel.
pub async fn serve_tunnel(
    tunnel: TunnelStream,
    info: TunnelInfo,
    service: Arc<LocalService>,
    idle_timeout: Option<Duration>,
    relayed: Arc<Relayed>,
    data_tls: Option<TlsServerSource>,
) {
    match data_tls {
        None => relay_to_service(tunnel, &info, &service, idle_timeout, relayed).await,
        Some(tls) => match tls::accept(&tls, tunnel).await {
            Ok(session) => relay_to_service(session, &info, &service, idle_timeout, relayed).await,
            Err(e) => {
                tracing::info!(tunnel = %info.id, error = %e, "data-leg TLS handshake failed; tunnel closed");
            }
        },
    }
}

/// Connects the local service and relays `tunnel` to it.
async fn relay_to_service(
    tunnel: impl AsyncRead + AsyncWrite + Unpin,
    info: &TunnelInfo,
    service: &LocalService,
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
