//! Driving the responders: draining each machine after every input, and checking its transmits, commands
//! and events against the simulation's view (claims, hand-outs, tenants, identities).

use bytes::Bytes;

use revtun_core::command::{Command, ConnId};
use revtun_core::keepalive::{RDATA, RPING};
use revtun_core::responder::{LostReason as RLost, RejectReason, Responder, ResponderEvent};

use super::{CLAIM_SLACK, Violation, World, check_output_budget};
use crate::sim::apps::Leg;
use crate::sim::clock::ms;
use crate::sim::net::End;
use crate::sim::view::Registration;

impl World {
    /// Drains responder `r` completely.
    pub fn drain_responder(&mut self, r: usize) -> Result<(), Violation> {
        let mut outputs = 0u64;
        loop {
            let mut any = false;
            while let Some(t) = self.responders[r]
                .machine
                .as_mut()
                .and_then(Responder::poll_transmit)
            {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("responder {r}"))?;
                self.responder_transmit(r, t.conn, t.data)?;
            }
            while let Some(c) = self.responders[r]
                .machine
                .as_mut()
                .and_then(Responder::poll_command)
            {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("responder {r}"))?;
                self.responders[r].dirty = true;
                self.steady(|| format!("responder {r}: {c:?}"))?;
                self.responder_command(r, c)?;
            }
            while let Some(e) = self.responders[r]
                .machine
                .as_mut()
                .and_then(Responder::poll_event)
            {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("responder {r}"))?;
                self.responders[r].dirty = true;
                self.steady(|| format!("responder {r}: {e:?}"))?;
                self.responder_event(r, e)?;
            }
            if !any {
                break;
            }
        }
        // Claim-marker mode: `RDATA` and the hand-out come from the same call.
        if let Some((conn, _)) = self.responders[r]
            .view
            .conns
            .iter()
            .find(|(_, c)| c.rdata_sent && !c.in_use)
        {
            return Err(format!(
                "responder {r}: sent RDATA on {conn} but did not hand it out in the same call"
            ));
        }
        Ok(())
    }

    /// A responder transmit: only on a connection it holds and has not handed out. `RPING`s are marked in the
    /// stream so the initiator's view knows when its first one arrives.
    pub(super) fn responder_transmit(
        &mut self,
        r: usize,
        conn: ConnId,
        data: Bytes,
    ) -> Result<(), Violation> {
        let Some(c) = self.responders[r].view.conns.get(&conn) else {
            return Err(format!(
                "responder {r}: transmit on {conn}, which it does not hold"
            ));
        };
        if c.in_use {
            return Err(format!(
                "responder {r}: transmit of {} bytes on {conn} after handing it out",
                data.len()
            ));
        }
        let pipe = c.pipe;
        let registered = c.registered.is_some();
        let now = self.clock.now();
        let before = self
            .net
            .pipe(pipe)
            .map_or(0, |p| p.written_toward(End::Initiator));
        // A transmit is the handshake response, pings, or (claim-marker mode) one RDATA after which nothing
        // follows but the hand-out. The response and RDATA of a claim that was waiting come in one drain,
        // before the `Registered` event: a transmit of exactly `RDATA` or `RPING`s is never a response.
        let is_pings = !data.is_empty()
            && data.len() % RPING.len() == 0
            && data.chunks(RPING.len()).all(|c| c == RPING);
        let claim_marker = self.scenario.claim_marker_mode(c.initiator, r);
        if c.rdata_sent {
            return Err(format!(
                "responder {r}: transmit of {data:?} on {conn} after its RDATA"
            ));
        }
        if data[..] == RDATA[..] && claim_marker {
            if let Some(c) = self.responders[r].view.conns.get_mut(&conn) {
                c.rdata_sent = true;
            }
            self.responders[r].dirty = true;
        } else if registered && !is_pings {
            return Err(format!(
                "responder {r}: {} tunnel {conn} sent {data:?} while idle",
                if claim_marker {
                    "claim-marker"
                } else {
                    "Envoy-mode"
                }
            ));
        }
        let len = data.len() as u64;
        self.net
            .write(pipe, End::Responder, data, now)
            .map_err(|_| format!("responder {r}: transmit on {conn}, whose socket is closed"))?;
        if is_pings {
            if let Some(info) = self.pipes.get_mut(&pipe) {
                for k in 1..=len / RPING.len() as u64 {
                    info.ping_ends.push_back(before + k * RPING.len() as u64);
                }
            }
        }
        Ok(())
    }

    /// A responder command: only closes, of connections it holds and has not handed out.
    pub(super) fn responder_command(
        &mut self,
        r: usize,
        command: Command,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        match command {
            Command::Dial { conn, addr } => Err(format!("responder {r}: Dial {conn} {addr}")),
            Command::Close { conn } => {
                self.log(format!("r{r} close {conn}"));
                let Some(c) = self.responders[r].view.conns.get(&conn) else {
                    return Err(format!(
                        "responder {r}: close of {conn}, which it does not hold"
                    ));
                };
                if c.in_use {
                    return Err(format!(
                        "responder {r}: close of {conn}, which it handed out (the driver owns it)"
                    ));
                }
                self.net
                    .close(c.pipe, End::Responder, now)
                    .map_err(|_| format!("responder {r}: close of {conn}, whose socket is closed"))
            }
        }
    }

    /// A responder event: checked against the view (identity, claim target, tenant, claim deadline), then
    /// applied to it and to the counters recomputed from the event log; `HandedOut` starts the front door.
    pub(super) fn responder_event(
        &mut self,
        r: usize,
        event: ResponderEvent,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        let line = match &event {
            ResponderEvent::HandedOut {
                claim,
                conn,
                node,
                cluster,
                tenant,
                data,
                answer,
            } => format!(
                "r{r} HandedOut {claim:?} {conn} {node} {cluster} {tenant:?} data {} answer {}",
                data.len(),
                answer.is_some()
            ),
            other => format!("r{r} {other:?}"),
        };
        self.log(line);
        self.cover(responder_event_kind(&event));
        match event {
            ResponderEvent::Registered {
                conn,
                node,
                cluster,
                tenant,
            } => {
                let view = &mut self.responders[r].view;
                let Some(c) = view.conns.get_mut(&conn) else {
                    return Err(format!(
                        "responder {r}: Registered {conn}, which it does not hold"
                    ));
                };
                if c.registered.is_some() {
                    return Err(format!("responder {r}: {conn} registered twice"));
                }
                let spec = &self.scenario.initiators[c.initiator];
                if (
                    spec.node.as_str(),
                    spec.cluster.as_str(),
                    spec.tenant.as_str(),
                ) != (node.as_str(), cluster.as_str(), tenant.as_str())
                {
                    return Err(format!(
                        "responder {r}: {conn} registered as {node}/{cluster}/{tenant}, but initiator {} is \
                         {}/{}/{}",
                        c.initiator, spec.node, spec.cluster, spec.tenant
                    ));
                }
                c.registered = Some(Registration {
                    node,
                    cluster,
                    tenant,
                });
                view.count_handshake("accepted")?;
                self.report.registered += 1;
            }
            ResponderEvent::Rejected { conn, reason } => {
                let view = &mut self.responders[r].view;
                let Some(c) = view.remove(conn) else {
                    return Err(format!(
                        "responder {r}: Rejected {conn}, which it does not hold"
                    ));
                };
                if c.registered.is_some() {
                    return Err(format!(
                        "responder {r}: Rejected {conn} after it registered"
                    ));
                }
                if self.net.is_open(c.pipe, End::Responder) {
                    return Err(format!(
                        "responder {r}: {conn} rejected without a Close command: its socket leaks"
                    ));
                }
                let counter = match &reason {
                    RejectReason::Rejection(rejection) => rejection.counter(),
                    RejectReason::Malformed(_) => Some("parse_error"),
                    RejectReason::Timeout => Some("timeout"),
                    RejectReason::PendingCapEvicted => Some("pending_evicted"),
                    RejectReason::PeerClosed => Some("peer_closed"),
                    _ => None,
                };
                if let Some(counter) = counter {
                    view.count_handshake(counter)?;
                }
            }
            ResponderEvent::HandedOut {
                claim,
                conn,
                node,
                cluster,
                tenant,
                data,
                answer,
            } => {
                let view = &mut self.responders[r].view;
                let Some(cv) = view.claims.remove(&claim) else {
                    return Err(format!(
                        "responder {r}: HandedOut for {claim:?}, which is not waiting"
                    ));
                };
                view.handed_out += 1;
                self.report.handed_out += 1;
                let waited = now.saturating_sub(cv.issued);
                if waited > self.scenario.timing.claim_timeout + CLAIM_SLACK {
                    return Err(format!(
                        "responder {r}: {claim:?} handed out after {} (claim_timeout {})",
                        ms(waited),
                        ms(self.scenario.timing.claim_timeout)
                    ));
                }
                let Some(c) = view.conns.get_mut(&conn) else {
                    return Err(format!(
                        "responder {r}: handed out {conn}, which it does not hold"
                    ));
                };
                let Some(reg) = c.registered.clone() else {
                    return Err(format!(
                        "responder {r}: handed out {conn} before it registered"
                    ));
                };
                if c.in_use {
                    return Err(format!("responder {r}: handed out {conn} twice"));
                }
                c.in_use = true;
                let (pipe, initiator, rdata_sent) = (c.pipe, c.initiator, c.rdata_sent);
                if (reg.node.as_str(), reg.cluster.as_str(), reg.tenant.as_str())
                    != (node.as_str(), cluster.as_str(), tenant.as_str())
                {
                    return Err(format!(
                        "responder {r}: HandedOut {conn} says {node}/{cluster}/{tenant}, it registered as {reg:?}"
                    ));
                }
                if cv.target != node && cv.target != cluster {
                    return Err(format!(
                        "responder {r}: claim for {:?} got {conn} of node {node}, cluster {cluster}",
                        cv.target
                    ));
                }
                if self.scenario.tenant_isolation && cv.tenant.as_deref() != Some(tenant.as_str()) {
                    return Err(format!(
                        "responder {r}: claim of tenant {:?} got {conn} of tenant {tenant:?}",
                        cv.tenant
                    ));
                }
                if !self.net.is_open(pipe, End::Responder) {
                    return Err(format!(
                        "responder {r}: handed out {conn}, whose socket is closed"
                    ));
                }
                let claim_marker = self.scenario.claim_marker_mode(initiator, r);
                if claim_marker != rdata_sent || claim_marker != answer.is_some() {
                    return Err(format!(
                        "responder {r}: {conn} handed out (claim-marker mode {claim_marker}) with RDATA sent \
                         {rdata_sent} and an answer filter {}",
                        answer.is_some()
                    ));
                }
                if !data.is_empty() && claim_marker {
                    return Err(format!(
                        "responder {r}: claim-marker hand-out of {conn} with data {data:?}: the answer \
                         comes first"
                    ));
                }
                let marker = self.scenario.marker_payloads_per_mille;
                let leg = self
                    .legs
                    .entry(pipe)
                    .or_insert_with(|| Leg::new(pipe, initiator, r, claim_marker, now));
                leg.claim = Some(claim);
                leg.must_succeed = cv.must_succeed;
                leg.answer = answer.map(|a| (a.filter, self.clock.offset(a.deadline)));
                leg.start_front_door(&mut self.rng_payload, marker, now);
                let done = leg.front_door_reads(&data)?;
                if done {
                    return Err(format!(
                        "leg {pipe:?}: complete before anything was written"
                    ));
                }
                self.run_front_door_writes(now)?;
            }
            ResponderEvent::ClaimExpired { claim } => {
                let view = &mut self.responders[r].view;
                let Some(cv) = view.claims.remove(&claim) else {
                    return Err(format!(
                        "responder {r}: ClaimExpired {claim:?}, which is not waiting"
                    ));
                };
                view.expired += 1;
                self.report.expired += 1;
                if cv.must_succeed {
                    return Err(format!(
                        "responder {r}: final claim {claim:?} for {:?} (tenant {:?}) expired although every \
                         pool was full",
                        cv.target, cv.tenant
                    ));
                }
                let waited = now.saturating_sub(cv.issued);
                if waited > self.scenario.timing.claim_timeout + CLAIM_SLACK {
                    return Err(format!(
                        "responder {r}: {claim:?} expired after {} (claim_timeout {})",
                        ms(waited),
                        ms(self.scenario.timing.claim_timeout)
                    ));
                }
            }
            ResponderEvent::TunnelLost { conn, node, reason } => {
                let view = &mut self.responders[r].view;
                let Some(c) = view.remove(conn) else {
                    return Err(format!(
                        "responder {r}: TunnelLost {conn}, which it does not hold"
                    ));
                };
                match &c.registered {
                    Some(reg) if reg.node == node && !c.in_use => {}
                    _ => {
                        return Err(format!(
                            "responder {r}: TunnelLost {conn} ({node}) but it was {c:?}"
                        ));
                    }
                }
                if self.net.is_open(c.pipe, End::Responder) {
                    return Err(format!(
                        "responder {r}: {conn} lost ({reason:?}) without a Close command: its socket leaks"
                    ));
                }
                if matches!(reason, RLost::Shutdown) {
                    return Err(format!(
                        "responder {r}: TunnelLost {conn} Shutdown without a shutdown"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A short name for the kind of a responder event (and its reason), for coverage.
pub(super) fn responder_event_kind(event: &ResponderEvent) -> String {
    match event {
        ResponderEvent::Registered { .. } => "r.Registered".to_owned(),
        ResponderEvent::Rejected { reason, .. } => match reason {
            RejectReason::Rejection(r) => format!("r.Rejected.{}", r.status()),
            other => {
                let reason = format!("{other:?}");
                format!(
                    "r.Rejected.{}",
                    reason.split('(').next().unwrap_or_default()
                )
            }
        },
        ResponderEvent::HandedOut { .. } => "r.HandedOut".to_owned(),
        ResponderEvent::ClaimExpired { .. } => "r.ClaimExpired".to_owned(),
        ResponderEvent::TunnelLost { reason, .. } => format!("r.TunnelLost.{reason:?}"),
    }
}
