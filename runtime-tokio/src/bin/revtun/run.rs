//! `revtun -c FILE`: the plan becomes running listeners, then SIGINT/SIGTERM drains them.
//!
//! Start order: admin (so `/ready` answers 503 while the rest starts), responder, front doors,
//! initiators; then `/ready` turns 200. Shutdown order: `/ready` 503, accept loops stopped, the responder
//! stops accepting handshakes and closes its idle tunnels, the initiators close theirs, relays in
//! progress get up to `--drain-time-s` to finish, then the program exits 0.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use revtun_core::config::{Bootstrap, ClusterKind, ClusterPlan, RcListenerPlan};
use revtun_core::initiator::InitiatorConfig;
use revtun_tokio::driver::auth_files::{BearerTokenFile, BearerTokenListener, with_bearer};
use revtun_tokio::{
    DnsHosts, HostSource, ListenerOptions, Responder, ResponderOptions, ReverseListener,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::auth::{initiator_token, responder_policy, watch_initiator_token};
use crate::front_door::{self, FrontDoor};
use crate::proxy::{self, LocalService};
use crate::stats::App;
use crate::{admin, limits, shutdown, tls, validate};

/// How long the machines get to close their tunnels at shutdown.
const MACHINE_SHUTDOWN: Duration = Duration::from_secs(5);

/// Runs the file at `path` until SIGINT/SIGTERM.
pub async fn serve(path: PathBuf, drain: Duration) -> anyhow::Result<()> {
    let plan = validate::load(&path)
        .map_err(|text| anyhow::anyhow!("{} is not valid:\n{text}", path.display()))?;
    unsupported(&plan)?;
    limits::raise_nofile();
    let initiator_prefixes: BTreeSet<String> = plan
        .initiator
        .iter()
        .flat_map(|i| &i.listeners)
        .map(|l| l.config.stat_prefix.clone())
        .collect();
    let responder_prefix = plan
        .responder
        .as_ref()
        .map(|r| r.config.stat_prefix.clone());
    let app = Arc::new(App::new(
        initiator_prefixes.into_iter().collect(),
        responder_prefix,
    ));
    let relays = TaskTracker::new();
    let mut accept_loops: Vec<JoinHandle<()>> = Vec::new();

    let admin = match plan.admin {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin: cannot bind {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "admin listening");
            let allow = plan.admin_source_allow.clone();
            Some(tokio::spawn(admin::serve(listener, app.clone(), allow)))
        }
        None => None,
    };

    let responder = start_responder(&plan, &app).await?;
    for door in &plan.front_doors {
        let Some(responder) = &responder else {
            anyhow::bail!("front door '{}' needs a handshake listener", door.name);
        };
        let shared = Arc::new(FrontDoor::new(door, responder.clone(), &app)?);
        for listener in front_door::bind(door).await? {
            tracing::info!(name = door.name, addr = %listener.local_addr()?, claim = door.claim_id, "front door listening");
            accept_loops.push(tokio::spawn(front_door::accept_loop(
                listener,
                shared.clone(),
                relays.clone(),
            )));
        }
    }
    if let Some(initiator) = &plan.initiator {
        let token = match &initiator.bearer_token_file {
            Some(file) => Some(initiator_token(file.as_ref())?),
            None => None,
        };
        let mut senders = Vec::with_capacity(initiator.listeners.len());
        for listener in &initiator.listeners {
            let bearer = token.as_ref().map(BearerTokenFile::token);
            let (handle, reverse) = start_initiator(&plan, listener, bearer, &app, &relays).await?;
            accept_loops.push(handle);
            senders.push(BearerTokenListener::new(
                &reverse,
                listener.config.extra_headers.clone(),
            ));
        }
        if let Some(token) = token {
            watch_initiator_token(token, senders);
        }
    }
    app.ready.store(true, Ordering::Relaxed);
    tracing::info!("revtun ready");

    shutdown::signal().await;
    tracing::info!("shutting down: no new connections; idle tunnels close; relays drain");
    app.draining.store(true, Ordering::Relaxed);
    for task in &accept_loops {
        task.abort();
    }
    for task in accept_loops {
        let _ = task.await;
    }
    let (initiators, responder_again) = app.take_machines();
    drop(responder);
    if let Some(responder) = responder_again {
        let _ = tokio::time::timeout(MACHINE_SHUTDOWN, responder.shutdown()).await;
    }
    for listener in initiators {
        if let Ok(listener) = Arc::try_unwrap(listener) {
            let _ = tokio::time::timeout(MACHINE_SHUTDOWN, listener.shutdown()).await;
        }
    }
    relays.close();
    if tokio::time::timeout(drain, relays.wait()).await.is_err() {
        tracing::warn!(
            left = relays.len(),
            "drain time over; relays still open are cut"
        );
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    tracing::info!("revtun stopped");
    Ok(())
}

/// The responder on every handshake listener's addresses, if the plan has one.
async fn start_responder(plan: &Bootstrap, app: &App) -> anyhow::Result<Option<Responder>> {
    let Some(r) = &plan.responder else {
        return Ok(None);
    };
    let mut listeners = Vec::with_capacity(r.listeners.len());
    for listener in &r.listeners {
        let field = format!(
            "listener '{}': filter_chains[0].transport_socket",
            listener.name
        );
        let tunnel_tls = listener
            .tunnel_tls
            .as_ref()
            .map(|t| tls::server(t, &field))
            .transpose()?;
        listeners.push((listener.binds.clone(), tunnel_tls));
    }
    let options = ResponderOptions {
        authorizer: responder_policy(&r.auth)?,
        ..ResponderOptions::default()
    };
    let binds: Vec<_> = listeners.iter().flat_map(|(b, _)| b.clone()).collect();
    let (responder, bound) = Responder::bind_listeners(&listeners, r.config.clone(), options)
        .await
        .with_context(|| format!("handshake listeners {binds:?}"))?;
    for addr in bound {
        tracing::info!(%addr, "handshake listener");
    }
    app.set_responder(responder.clone());
    Ok(Some(responder))
}

/// One `rc://` listener: its initiator and the loop relaying each claimed tunnel to its local service.
async fn start_initiator(
    plan: &Bootstrap,
    listener: &RcListenerPlan,
    token: Option<&str>,
    app: &Arc<App>,
    relays: &TaskTracker,
) -> anyhow::Result<(JoinHandle<()>, Arc<ReverseListener>)> {
    let mut config = listener.config.clone();
    if let Some(token) = token {
        config.extra_headers = with_bearer(&config.extra_headers, token);
        config
            .validate()
            .with_context(|| format!("listener '{}': bearer token", listener.name))?;
    }
    let sources =
        host_sources(&config, plan).with_context(|| format!("listener '{}'", listener.name))?;
    let service_name = &listener.tcp_proxy.cluster;
    let service_plan = plan
        .clusters
        .get(service_name)
        .with_context(|| format!("cluster '{service_name}' is not defined"))?;
    let service = Arc::new(LocalService::from_plan(service_name, service_plan)?);
    let options = ListenerOptions {
        tunnel_tls: tunnel_tls(&config, plan)?,
        ..ListenerOptions::default()
    };
    let data_tls = listener
        .data_tls
        .as_ref()
        .map(|t| {
            let field = format!(
                "listener '{}': filter_chains[0].transport_socket",
                listener.name
            );
            tls::server(t, &field)
        })
        .transpose()?;
    let reverse = Arc::new(
        ReverseListener::bind_with(config, sources, options)
            .await
            .with_context(|| format!("listener '{}'", listener.name))?,
    );
    tracing::info!(name = listener.name, addresses = ?listener.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(), service = service_name, "initiator started");
    app.add_initiator(reverse.clone());
    let sender = reverse.clone();
    let idle_timeout = listener.tcp_proxy.idle_timeout;
    let limit = listener.connection_limit.as_ref().map(|l| {
        let permits = usize::try_from(l.max_connections)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        (Arc::new(Semaphore::new(permits)), l.delay)
    });
    let relayed = app.relayed.clone();
    let relays = relays.clone();
    let accept_loop = tokio::spawn(async move {
        while let Ok((tunnel, info)) = reverse.accept().await {
            tracing::debug!(tunnel = %info.id, cluster = info.cluster, host = %info.host, "tunnel claimed");
            let permit = match &limit {
                None => None,
                Some((permits, delay)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        let delay = *delay;
                        relays.spawn(async move {
                            if let Some(delay) = delay {
                                tokio::time::sleep(delay).await;
                            }
                            drop(tunnel);
                        });
                        continue;
                    }
                },
            };
            let service = service.clone();
            let relayed = relayed.clone();
            let data_tls = data_tls.clone();
            relays.spawn(async move {
                proxy::serve_tunnel(tunnel, info, service, idle_timeout, relayed, data_tls).await;
                drop(permit);
            });
        }
    });
    Ok((accept_loop, sender))
}

/// Tunnel TLS per target cluster of `config`: each cluster's `transport_socket`.
fn tunnel_tls(
    config: &InitiatorConfig,
    plan: &Bootstrap,
) -> anyhow::Result<std::collections::BTreeMap<String, revtun_tokio::tls::TlsClientSource>> {
    let mut out = std::collections::BTreeMap::new();
    for target in &config.targets {
        if let Some(t) = plan.clusters.get(&target.name).and_then(|c| c.tls.as_ref()) {
            let field = format!("cluster '{}': transport_socket", target.name);
            out.insert(target.name.clone(), tls::client(t, &field)?);
        }
    }
    Ok(out)
}

/// One [`HostSource`] per target cluster of `config`, from the plan's clusters.
fn host_sources(
    config: &InitiatorConfig,
    plan: &Bootstrap,
) -> anyhow::Result<Vec<(String, HostSource)>> {
    let mut sources = Vec::with_capacity(config.targets.len());
    for target in &config.targets {
        let cluster = plan
            .clusters
            .get(&target.name)
            .with_context(|| format!("target cluster '{}' is not defined", target.name))?;
        sources.push((target.name.clone(), host_source(&target.name, cluster)?));
    }
    Ok(sources)
}

/// STATIC → fixed hosts; STRICT_DNS / LOGICAL_DNS → the driver's resolver.
fn host_source(name: &str, cluster: &ClusterPlan) -> anyhow::Result<HostSource> {
    let literal: Option<Vec<_>> = cluster.endpoints.iter().map(|e| e.socket_addr()).collect();
    let dns = |logical: bool| -> anyhow::Result<HostSource> {
        let [endpoint] = cluster.endpoints.as_slice() else {
            match &literal {
                Some(addrs) if !logical => return Ok(HostSource::Static(addrs.clone())),
                _ => anyhow::bail!(
                    "cluster '{name}': a DNS cluster with more than one named endpoint is not supported yet"
                ),
            }
        };
        let hosts = DnsHosts {
            host: endpoint.host.clone(),
            port: endpoint.port,
            family: proxy::lookup_family(cluster.dns_lookup_family),
            refresh: cluster.dns_refresh_rate,
        };
        Ok(if logical {
            HostSource::LogicalDns(hosts)
        } else {
            HostSource::StrictDns(hosts)
        })
    };
    match &cluster.kind {
        ClusterKind::Static => literal
            .map(HostSource::Static)
            .with_context(|| format!("cluster '{name}': STATIC endpoints must be IP addresses")),
        ClusterKind::StrictDns => dns(false),
        ClusterKind::LogicalDns => dns(true),
        ClusterKind::ReverseConnection { .. } => {
            anyhow::bail!(
                "cluster '{name}' is a reverse-connection cluster, not a responder to dial"
            )
        }
    }
}

/// What the config model accepts but this program cannot run yet: refused at start (and by
/// `--mode validate`), never ignored.
pub(crate) fn unsupported(plan: &Bootstrap) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (name, cluster) in &plan.clusters {
        let named = cluster.endpoints.iter().any(|e| e.socket_addr().is_none());
        if cluster.kind == ClusterKind::StrictDns && named && cluster.endpoints.len() > 1 {
            problems.push(format!(
                "cluster '{name}': a STRICT_DNS cluster with more than one named endpoint"
            ));
        }
    }
    if let Some(responder) = &plan.responder {
        for listener in &responder.listeners {
            if listener.connection_limit.is_some() {
                problems.push(format!(
                    "listener '{}': connection_limit on a handshake listener",
                    listener.name
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "this build of revtun cannot run yet:\n{}",
        problems.join("\n")
    )
}
