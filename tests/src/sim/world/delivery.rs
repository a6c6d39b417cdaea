//! Bytes and connection ends: answering dials, delivering what the pipes carry to the machines or the
//! apps that own each end, closing ends on EOF and resets, and the data legs' bookkeeping.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use revtun_core::command::ConnId;
use revtun_core::initiator::ConnectFailure;

use super::{Phase, PipeInfo, Violation, World};
use crate::sim::apps::Outcome;
use crate::sim::net::{Delivery, End, PipeId};
use crate::sim::view::{IPhase, RConn};

impl World {
    /// Answers the dials due at `now` (not partitioned): refused if the responder is down, else a new pipe,
    /// `handle_accepted` on the responder and `handle_connected` on the initiator.
    pub(super) fn run_dials(&mut self, now: Duration) -> Result<(), Violation> {
        let due: Vec<(usize, ConnId)> = self
            .dials
            .iter()
            .filter(|(k, d)| d.at <= now && !self.net.is_partitioned(k.0, d.responder))
            .map(|(&k, _)| k)
            .collect();
        for (i, conn) in due {
            let Some(dial) = self.dials.remove(&(i, conn)) else {
                continue;
            };
            let r = dial.responder;
            let instant = self.clock.instant();
            if self.phase == Phase::Faulty
                && self
                    .rng_latency
                    .chance(self.scenario.local_dial_errors_per_mille, 1_000)
            {
                self.log(format!("i{i} {conn} failed locally"));
                self.initiators[i].machine.handle_connect_failed(
                    conn,
                    ConnectFailure::LocalError,
                    instant,
                );
                self.drain_initiator(i)?;
                if self.initiators[i].view.conns.contains_key(&conn) {
                    return Err(format!(
                        "initiator {i}: connect failure of {conn} left no event"
                    ));
                }
                continue;
            }
            let Some(machine) = self.responders[r].machine.as_mut() else {
                self.log(format!("i{i} {conn} refused by r{r} (down)"));
                self.initiators[i].machine.handle_connect_failed(
                    conn,
                    ConnectFailure::Refused,
                    instant,
                );
                self.drain_initiator(i)?;
                if self.initiators[i].view.conns.contains_key(&conn) {
                    return Err(format!(
                        "initiator {i}: connect failure of {conn} left no event"
                    ));
                }
                continue;
            };
            let pipe = self.net.open(i, r, dial.latency);
            let peer = SocketAddr::new(
                self.scenario.initiators[i].ip,
                40_000 + (pipe.0 % 20_000) as u16,
            );
            let r_conn = machine.handle_accepted(peer, None, instant);
            self.log(format!(
                "i{i} {conn} connected to r{r} as {r_conn} ({pipe:?})"
            ));
            let generation = self.responders[r].generation;
            let view = &mut self.responders[r].view;
            if view.conns.contains_key(&r_conn) {
                return Err(format!("responder {r}: handle_accepted reused {r_conn}"));
            }
            view.conns.insert(
                r_conn,
                RConn {
                    pipe,
                    initiator: i,
                    registered: None,
                    rdata_sent: false,
                    in_use: false,
                },
            );
            view.opened += 1;
            self.pipes.insert(
                pipe,
                PipeInfo {
                    initiator: i,
                    i_conn: conn,
                    responder: r,
                    generation,
                    r_conn,
                    ping_ends: VecDeque::new(),
                    to_initiator: 0,
                },
            );
            let c = self.initiators[i]
                .view
                .conns
                .get_mut(&conn)
                .ok_or("dial of an unknown conn")?;
            c.phase = IPhase::Handshaking;
            c.pipe = Some(pipe);
            let unix_ms = self.clock.unix_ms();
            self.drain_responder(r)?;
            self.initiators[i]
                .machine
                .handle_connected(conn, instant, unix_ms);
            self.drain_initiator(i)?;
        }
        Ok(())
    }

    /// Hands one delivery to the end it is for.
    pub(super) fn deliver(&mut self, d: Delivery, now: Duration) -> Result<(), Violation> {
        let Some(info) = self.pipes.get(&d.pipe).cloned() else {
            return Err(format!("delivery on unknown {:?}", d.pipe));
        };
        match d.to {
            End::Initiator => self.deliver_to_initiator(&info, d, now),
            End::Responder => self.deliver_to_responder(&info, d, now),
        }
    }

    /// Reads at the initiator's end: to the machine while it holds the tunnel, to the echo service once claimed;
    /// counts the `RPING`s the machine received (its first one is the pool's success); EOF closes the end.
    pub(super) fn deliver_to_initiator(
        &mut self,
        info: &PipeInfo,
        d: Delivery,
        now: Duration,
    ) -> Result<(), Violation> {
        let (i, conn, pipe) = (info.initiator, info.i_conn, d.pipe);
        let instant = self.clock.instant();
        for read in &d.reads {
            if !self.net.is_open(pipe, End::Initiator) {
                return Ok(());
            }
            let phase = self.initiators[i].view.conns.get(&conn).map(|c| c.phase);
            match phase {
                Some(IPhase::InUse) => {
                    let leg = self.legs.get_mut(&pipe).ok_or("in use without a leg")?;
                    let echo = leg.echo_reads(read)?;
                    self.net
                        .write(pipe, End::Initiator, echo, now)
                        .map_err(|_| "echo on a closed socket".to_owned())?;
                }
                Some(IPhase::Handshaking | IPhase::Idle) => {
                    self.initiators[i].machine.handle_input(conn, read, instant);
                    let info = self.pipes.get_mut(&pipe).ok_or("pipe gone")?;
                    info.to_initiator += read.len() as u64;
                    let mut pinged = false;
                    while info
                        .ping_ends
                        .front()
                        .is_some_and(|&end| end <= info.to_initiator)
                    {
                        info.ping_ends.pop_front();
                        pinged = true;
                    }
                    if pinged {
                        self.initiators[i].view.success(conn);
                        self.initiators[i].dirty = true;
                    }
                    self.drain_initiator(i)?;
                }
                other => {
                    return Err(format!(
                        "initiator {i}: bytes for {conn} on {pipe:?}, which it holds as {other:?}"
                    ));
                }
            }
        }
        if d.fin && self.net.is_open(pipe, End::Initiator) {
            self.close_initiator_end(i, conn, pipe, "peer closed")?;
        }
        Ok(())
    }

    /// The initiator's end of `pipe` is closed by the world (EOF read, or a reset): tell whoever owns it.
    pub(super) fn close_initiator_end(
        &mut self,
        i: usize,
        conn: ConnId,
        pipe: PipeId,
        why: &'static str,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        if self.net.is_open(pipe, End::Initiator) {
            self.net
                .close(pipe, End::Initiator, now)
                .map_err(|_| "close".to_owned())?;
        }
        let instant = self.clock.instant();
        let phase = self.initiators[i].view.conns.get(&conn).map(|c| c.phase);
        match phase {
            Some(IPhase::InUse) => {
                self.log(format!("i{i} echo service closes {conn} ({why})"));
                self.initiators[i].view.remove(conn);
                self.initiators[i].dirty = true;
                if let Some(leg) = self.legs.get_mut(&pipe) {
                    leg.echo_open = false;
                    if leg.outcome.is_none() && !leg.complete() {
                        leg.outcome = Some(Outcome::Aborted(why));
                    }
                }
                self.initiators[i].machine.handle_closed(conn, instant);
                self.drain_initiator(i)?;
                self.finish_leg(pipe)?;
            }
            Some(_) => {
                self.log(format!("i{i} {conn} closed ({why})"));
                self.initiators[i].machine.handle_closed(conn, instant);
                self.drain_initiator(i)?;
                if self.initiators[i].view.conns.contains_key(&conn) {
                    return Err(format!(
                        "initiator {i}: handle_closed({conn}) gave no event: it still holds it"
                    ));
                }
                // A leg the front door started (and maybe finished) on this tunnel ends unclaimed.
                self.finish_leg(pipe)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Reads at the responder's end: to the machine while it holds the tunnel, to the front door once handed
    /// out; EOF closes the end.
    pub(super) fn deliver_to_responder(
        &mut self,
        info: &PipeInfo,
        d: Delivery,
        now: Duration,
    ) -> Result<(), Violation> {
        let (r, conn, pipe) = (info.responder, info.r_conn, d.pipe);
        if self.responders[r].generation != info.generation || self.responders[r].machine.is_none()
        {
            return Err(format!(
                "delivery to responder {r} on {pipe:?} of a dead generation"
            ));
        }
        let instant = self.clock.instant();
        for read in &d.reads {
            if !self.net.is_open(pipe, End::Responder) {
                return Ok(());
            }
            let in_use = self.responders[r].view.conns.get(&conn).map(|c| c.in_use);
            match in_use {
                Some(true) => {
                    let leg = self.legs.get_mut(&pipe).ok_or("handed out without a leg")?;
                    if leg.front_door_reads(read)? {
                        self.front_door_done(r, conn, pipe, now)?;
                    }
                }
                Some(false) => {
                    if let Some(m) = self.responders[r].machine.as_mut() {
                        m.handle_input(conn, read, instant);
                    }
                    self.drain_responder(r)?;
                }
                None => {
                    return Err(format!(
                        "responder {r}: bytes for {conn} on {pipe:?}, which it does not hold"
                    ));
                }
            }
        }
        if d.fin && self.net.is_open(pipe, End::Responder) {
            self.close_responder_end(r, conn, pipe, "peer closed")?;
        }
        Ok(())
    }

    /// The front door has the whole echo: it closes its end.
    pub(super) fn front_door_done(
        &mut self,
        r: usize,
        conn: ConnId,
        pipe: PipeId,
        _now: Duration,
    ) -> Result<(), Violation> {
        if let Some(leg) = self.legs.get_mut(&pipe) {
            leg.outcome = Some(Outcome::Complete);
            self.report.legs_complete += 1;
            self.report.bytes_echoed += leg.payload.len() as u64;
            if leg.claim_marker {
                self.report.claim_marker_legs += 1;
            } else {
                self.report.envoy_legs += 1;
            }
        }
        self.close_responder_end(r, conn, pipe, "echo complete")
    }

    /// The responder's end of `pipe` is closed by the world: tell whoever owns it.
    pub(super) fn close_responder_end(
        &mut self,
        r: usize,
        conn: ConnId,
        pipe: PipeId,
        why: &'static str,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        if self.net.is_open(pipe, End::Responder) {
            self.net
                .close(pipe, End::Responder, now)
                .map_err(|_| "close".to_owned())?;
        }
        let instant = self.clock.instant();
        let in_use = self.responders[r].view.conns.get(&conn).map(|c| c.in_use);
        match in_use {
            Some(true) => {
                self.log(format!("r{r} front door closes {conn} ({why})"));
                self.responders[r].view.remove(conn);
                self.responders[r].dirty = true;
                if let Some(leg) = self.legs.get_mut(&pipe) {
                    leg.front_door_open = false;
                    leg.pending.clear();
                    if leg.outcome.is_none() {
                        leg.outcome = Some(Outcome::Aborted(why));
                    }
                }
                if let Some(m) = self.responders[r].machine.as_mut() {
                    m.handle_closed(conn, instant);
                }
                self.drain_responder(r)?;
                self.finish_leg(pipe)?;
            }
            Some(false) => {
                self.log(format!("r{r} {conn} closed ({why})"));
                if let Some(m) = self.responders[r].machine.as_mut() {
                    m.handle_closed(conn, instant);
                }
                self.drain_responder(r)?;
                if self.responders[r].view.conns.contains_key(&conn) {
                    return Err(format!(
                        "responder {r}: handle_closed({conn}) gave no event: it still holds it"
                    ));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Drops a leg once neither app holds it; an aborted final-phase leg fails the run.
    pub(super) fn finish_leg(&mut self, pipe: PipeId) -> Result<(), Violation> {
        let Some(leg) = self.legs.get(&pipe) else {
            return Ok(());
        };
        if leg.echo_open || leg.front_door_open {
            return Ok(());
        }
        // Claim-marker mode: the front door may be done (or have given up) before the initiator even read
        // the `RDATA` in flight; the leg stays until the initiator claims the tunnel or its end closes.
        if !leg.echo_started && self.net.is_open(pipe, End::Initiator) {
            return Ok(());
        }
        let leg = self.legs.remove(&pipe).ok_or("unreachable")?;
        match &leg.outcome {
            Some(Outcome::Complete) => {}
            Some(Outcome::Aborted(why)) => {
                self.report.legs_aborted += 1;
                self.log(format!("leg {pipe:?} aborted: {why}"));
                if leg.must_succeed {
                    return Err(format!(
                        "final-phase leg {pipe:?} (i{} → r{}) aborted ({why}) with {} of {} bytes echoed",
                        leg.initiator,
                        leg.responder,
                        leg.at_front_door.len(),
                        leg.payload.len()
                    ));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Claim-marker legs whose initiator did not answer `RDATA` by the deadline: the front door's read
    /// fails (as the driver's `TunnelStream` does) and it closes its end.
    pub(super) fn run_answer_deadlines(&mut self, now: Duration) -> Result<(), Violation> {
        let overdue: Vec<(PipeId, usize)> = self
            .legs
            .iter()
            .filter(|(_, l)| l.answer_deadline().is_some_and(|at| at <= now))
            .map(|(&p, l)| (p, l.responder))
            .collect();
        for (pipe, r) in overdue {
            let Some(conn) = self.pipes.get(&pipe).map(|info| info.r_conn) else {
                continue;
            };
            self.close_responder_end(r, conn, pipe, "no RDATA answer")?;
        }
        Ok(())
    }

    /// Front-door writes due at `now`.
    pub(super) fn run_front_door_writes(&mut self, now: Duration) -> Result<(), Violation> {
        let pipes: Vec<PipeId> = self
            .legs
            .iter()
            .filter(|(_, l)| l.next_write().is_some_and(|at| at <= now))
            .map(|(&p, _)| p)
            .collect();
        for pipe in pipes {
            while let Some(data) = self.legs.get_mut(&pipe).and_then(|l| l.take_write(now)) {
                if self.net.is_open(pipe, End::Responder) {
                    self.net
                        .write(pipe, End::Responder, data, now)
                        .map_err(|_| "front door write".to_owned())?;
                }
            }
        }
        Ok(())
    }
}
