//! The initiator's [`Side`]: the core [`Initiator`] plus what the driver does with its events.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use async_channel::Sender;
use revtun_core::command::ConnId;
use revtun_core::initiator::{ConnectFailure, Initiator, InitiatorConfigError, InitiatorEvent};

use super::TunnelInfo;
use crate::conn::Start;
use crate::machine::{Ctx, Flow, Side};
use crate::msg::Internal;
use crate::sans_io::Query;
use crate::stream::TunnelStream;
use crate::tls::TlsClientSource;

/// Requests of a [`ReverseListener`](super::ReverseListener).
pub(crate) enum InitiatorApi {
    Query(Query),
    /// Replace the extra headers of new handshake requests.
    SetExtraHeaders(
        Vec<(String, String)>,
        Sender<Result<(), InitiatorConfigError>>,
    ),
    Shutdown,
}

pub(crate) struct InitiatorSide {
    pub core: Initiator,
    /// The accept queue: claimed tunnels wait here for `accept()`.
    pub accepted: Sender<(TunnelStream, TunnelInfo)>,
    /// Tunnel TLS per target cluster.
    pub tunnel_tls: BTreeMap<String, TlsClientSource>,
}

impl Side for InitiatorSide {
    type Core = Initiator;
    type Api = InitiatorApi;

    fn core(&mut self) -> &mut Initiator {
        &mut self.core
    }

    fn dial(&self, conn: ConnId, addr: SocketAddr) -> Start {
        let tls = self
            .core
            .cluster_of(conn)
            .and_then(|cluster| self.tunnel_tls.get(cluster))
            .map(|tls| (tls.clone(), tls.server_name_for_ip(addr.ip())));
        Start::Dial { addr, tls }
    }

    fn drain_events(&mut self, ctx: &mut Ctx) {
        while let Some(event) = self.core.poll_event() {
            match event {
                InitiatorEvent::Claimed {
                    conn,
                    cluster,
                    host,
                    data,
                } => {
                    tracing::debug!(%conn, cluster, %host, "tunnel claimed");
                    let info = TunnelInfo {
                        cluster,
                        host,
                        id: conn,
                    };
                    let queue = self.accepted.clone();
                    ctx.hand_over(
                        conn,
                        data,
                        Box::new(move |stream| {
                            Box::pin(async move {
                                // A dropped listener drops the stream, which reports the close.
                                let _ = queue.send((stream, info)).await;
                            })
                        }),
                    );
                }
                InitiatorEvent::TunnelReady {
                    conn,
                    cluster,
                    host,
                } => tracing::debug!(%conn, cluster, %host, "tunnel ready"),
                other => tracing::debug!(event = ?other, "initiator event"),
            }
        }
    }

    fn on_internal(&mut self, msg: Internal, ctx: &mut Ctx, now: Instant) {
        match msg {
            Internal::Connected(conn) => {
                let unix_ms = ctx.runtime().unix_ms();
                self.core.handle_connected(conn, now, unix_ms);
            }
            Internal::ConnectFailed(conn, kind) => {
                ctx.forget(conn);
                let failure = ConnectFailure::from_io_kind(kind);
                self.core.handle_connect_failed(conn, failure, now);
            }
            Internal::Resolved { cluster, result } => match result {
                Ok(hosts) => {
                    if let Err(e) = self.core.set_hosts(&cluster, &hosts, now) {
                        tracing::warn!(error = %e, "resolved hosts of an unknown cluster");
                    }
                }
                Err(_) => self.core.handle_resolve_failed(&cluster, now),
            },
            Internal::Accepted(..)
            | Internal::TlsEstablished(..)
            | Internal::Input(..)
            | Internal::Closed(..)
            | Internal::TlsFailed(..) => {
                tracing::trace!("message not for the initiator ignored");
            }
        }
    }

    fn on_api(&mut self, request: InitiatorApi, _ctx: &mut Ctx, _now: Instant) -> Flow {
        match request {
            InitiatorApi::Query(query) => query.answer(&self.core),
            InitiatorApi::SetExtraHeaders(headers, reply) => {
                let _ = reply.try_send(self.core.set_extra_headers(headers));
            }
            InitiatorApi::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }
}
