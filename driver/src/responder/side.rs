//! The responder's [`Side`]: the core [`Responder`] plus the claims the users wait on.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use async_channel::Sender;
use revtun_core::command::ConnId;
use revtun_core::responder::{ClaimId, NodeSummary, RejectReason, Responder, ResponderEvent};

use super::reject_log::RejectLog;

use crate::conn::Start;
use crate::error::ClaimError;
use crate::machine::{Ctx, Flow, Side};
use crate::msg::Internal;
use crate::sans_io::Query;
use crate::stream::{AnswerRead, TunnelStream};

/// The answer to one claim.
pub(crate) type ClaimReply = Sender<Result<TunnelStream, ClaimError>>;

/// Requests of a [`ResponderHandle`](super::ResponderHandle).
pub(crate) enum ResponderApi {
    /// Claim a tunnel; `request` is the handle's number for it, to cancel it.
    Claim {
        request: u64,
        id: String,
        tenant: Option<String>,
        reply: ClaimReply,
    },
    /// The user stopped waiting for claim `request`.
    Cancel(u64),
    Nodes(Sender<Vec<NodeSummary>>),
    Query(Query),
    Shutdown,
}

pub(crate) struct ResponderSide {
    pub core: Responder,
    /// Claims the core has not answered, with the handle's request number and the answer channel.
    pub claims: BTreeMap<ClaimId, (u64, ClaimReply)>,
    /// Request number → claim, for cancellation.
    pub requests: BTreeMap<u64, ClaimId>,
    pub stopping: bool,
    /// Source address of each connection still handshaking (bounded by the core's pending caps), for
    /// the failure log.
    pub handshaking: BTreeMap<ConnId, IpAddr>,
    /// Handshake failures, logged once per address per interval.
    pub reject_log: RejectLog,
}

impl ResponderSide {
    pub fn new(core: Responder) -> Self {
        Self {
            core,
            claims: BTreeMap::new(),
            requests: BTreeMap::new(),
            stopping: false,
            handshaking: BTreeMap::new(),
            reject_log: RejectLog::default(),
        }
    }

    fn answer(&mut self, claim: ClaimId) -> Option<ClaimReply> {
        let (request, reply) = self.claims.remove(&claim)?;
        self.requests.remove(&request);
        Some(reply)
    }
}

impl Side for ResponderSide {
    type Core = Responder;
    type Api = ResponderApi;

    fn core(&mut self) -> &mut Responder {
        &mut self.core
    }

    fn stopping(&mut self) {
        self.stopping = true;
    }

    fn drain_events(&mut self, ctx: &mut Ctx) {
        while let Some(event) = self.core.poll_event() {
            match event {
                ResponderEvent::HandedOut {
                    claim,
                    conn,
                    node,
                    data,
                    answer,
                    ..
                } => {
                    tracing::debug!(%claim, %conn, node, "tunnel handed out");
                    let reply = self.answer(claim);
                    // Claim-marker mode: the user gets the stream at once; its reads strip the answer.
                    let answer = answer.map(|answer| AnswerRead::new(answer, ctx.runtime()));
                    ctx.hand_over(
                        conn,
                        data,
                        Box::new(move |stream| {
                            Box::pin(async move {
                                let stream = match answer {
                                    Some(answer) => stream.with_answer(answer),
                                    None => stream,
                                };
                                // A claimant that went away drops the stream, which reports the close.
                                if let Some(reply) = reply {
                                    let _ = reply.try_send(Ok(stream));
                                }
                            })
                        }),
                    );
                }
                ResponderEvent::ClaimExpired { claim } => {
                    let error = if self.stopping {
                        ClaimError::Shutdown
                    } else {
                        ClaimError::Timeout
                    };
                    if let Some(reply) = self.answer(claim) {
                        let _ = reply.try_send(Err(error));
                    }
                }
                ResponderEvent::Registered { conn, .. } => {
                    self.handshaking.remove(&conn);
                    tracing::debug!(%conn, "tunnel registered");
                }
                ResponderEvent::Rejected { conn, reason } => {
                    let peer = self.handshaking.remove(&conn);
                    tracing::debug!(%conn, ?peer, %reason, "handshake ended without a tunnel");
                    if let (Some(peer), false) = (peer, reason == RejectReason::Shutdown) {
                        self.reject_log.report(peer, &reason, ctx.runtime().now());
                    }
                }
                other => tracing::debug!(event = ?other, "responder event"),
            }
        }
    }

    fn on_internal(&mut self, msg: Internal, ctx: &mut Ctx, now: Instant) {
        match msg {
            Internal::Accepted(stream, peer, tls) => {
                let conn = match tls {
                    Some(_) => self.core.handle_accepted_tls(peer, now),
                    None => self.core.handle_accepted(peer, None, now),
                };
                self.handshaking.insert(conn, peer.ip());
                tracing::trace!(%conn, %peer, tls = tls.is_some(), "accepted");
                ctx.open(conn, Start::Accepted { stream, tls });
            }
            Internal::TlsEstablished(conn, identity) => {
                tracing::trace!(%conn, ?identity, "tunnel TLS established");
                self.core.handle_tls_established(conn, identity, now);
            }
            _ => tracing::trace!("message not for the responder ignored"),
        }
    }

    fn on_api(&mut self, request: ResponderApi, _ctx: &mut Ctx, now: Instant) -> Flow {
        match request {
            ResponderApi::Claim {
                request,
                id,
                tenant,
                reply,
            } => {
                let claim = self.core.claim(&id, tenant.as_deref(), now);
                // Answered when the events are drained, right after this call.
                self.claims.insert(claim, (request, reply));
                self.requests.insert(request, claim);
            }
            ResponderApi::Cancel(request) => {
                if let Some(claim) = self.requests.remove(&request) {
                    self.claims.remove(&claim);
                    self.core.cancel_claim(claim, now);
                }
            }
            ResponderApi::Nodes(reply) => {
                let _ = reply.try_send(self.core.nodes());
            }
            ResponderApi::Query(query) => query.answer(&self.core),
            ResponderApi::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }
}
