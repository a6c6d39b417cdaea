//! Driving the initiators: draining each machine after every input, and checking its transmits, commands
//! and events against the simulation's view.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use revtun_core::command::{Command, ConnId};
use revtun_core::initiator::{InitiatorEvent, LostReason as ILost};

use super::{Dial, Violation, World, check_output_budget};
use crate::sim::apps::Leg;
use crate::sim::clock::ms;
use crate::sim::net::End;
use crate::sim::view::{IConn, IPhase};

impl World {
    /// Drains initiator `i` completely: transmits, commands, events (STYLE.md §3 order).
    pub fn drain_initiator(&mut self, i: usize) -> Result<(), Violation> {
        let mut outputs = 0u64;
        loop {
            let mut any = false;
            while let Some(t) = self.initiators[i].machine.poll_transmit() {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("initiator {i}"))?;
                self.initiator_transmit(i, t.conn, t.data)?;
            }
            while let Some(c) = self.initiators[i].machine.poll_command() {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("initiator {i}"))?;
                self.initiators[i].dirty = true;
                self.steady(|| format!("initiator {i}: {c:?}"))?;
                self.initiator_command(i, c)?;
            }
            while let Some(e) = self.initiators[i].machine.poll_event() {
                any = true;
                outputs += 1;
                check_output_budget(outputs, || format!("initiator {i}"))?;
                self.initiators[i].dirty = true;
                self.steady(|| format!("initiator {i}: {e:?}"))?;
                self.initiator_event(i, e)?;
            }
            if !any {
                return Ok(());
            }
        }
    }

    /// An initiator transmit: only on a connection it holds, connected and not handed over.
    pub(super) fn initiator_transmit(
        &mut self,
        i: usize,
        conn: ConnId,
        data: Bytes,
    ) -> Result<(), Violation> {
        let Some(c) = self.initiators[i].view.conns.get(&conn) else {
            return Err(format!(
                "initiator {i}: transmit on {conn}, which it does not hold"
            ));
        };
        let pipe = match (c.phase, c.pipe) {
            (IPhase::Handshaking | IPhase::Idle, Some(pipe)) => pipe,
            (phase, _) => {
                return Err(format!(
                    "initiator {i}: transmit of {} bytes on {conn} while {phase:?}",
                    data.len()
                ));
            }
        };
        let now = self.clock.now();
        self.net
            .write(pipe, End::Initiator, data, now)
            .map_err(|_| format!("initiator {i}: transmit on {conn}, whose socket is closed"))
    }

    /// An initiator command: a dial (a new connection in the view, answered after a latency) or a close (of a
    /// connection it holds and has not handed over).
    pub(super) fn initiator_command(
        &mut self,
        i: usize,
        command: Command,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        match command {
            Command::Dial { conn, addr } => {
                self.log(format!("i{i} dial {conn} {addr}"));
                let Some(r) = self
                    .scenario
                    .responders
                    .iter()
                    .position(|spec| spec.addr == addr)
                else {
                    return Err(format!(
                        "initiator {i}: dial to {addr}, which is no host of it"
                    ));
                };
                let view = &mut self.initiators[i].view;
                if view.conns.contains_key(&conn) {
                    return Err(format!("initiator {i}: dial reuses {conn}"));
                }
                let clusters = view.clusters_of(addr);
                if clusters.is_empty() {
                    return Err(format!(
                        "initiator {i}: dial to {addr}, which no target lists"
                    ));
                }
                let cluster = (clusters.len() == 1).then(|| clusters[0].to_owned());
                view.open(
                    conn,
                    IConn {
                        cluster,
                        host: addr,
                        responder: r,
                        phase: IPhase::Dialling,
                        pipe: None,
                        pinged: false,
                        success_pending: false,
                    },
                );
                let max = self.scenario.timing.max_latency.as_micros() as u64;
                let latency = Duration::from_micros(self.rng_latency.range(1_000, max.max(1_000)));
                self.dials.insert(
                    (i, conn),
                    Dial {
                        responder: r,
                        at: now + latency,
                        latency,
                    },
                );
            }
            Command::Close { conn } => {
                self.log(format!("i{i} close {conn}"));
                let Some(c) = self.initiators[i].view.conns.get(&conn) else {
                    return Err(format!(
                        "initiator {i}: close of {conn}, which it does not hold"
                    ));
                };
                match (c.phase, c.pipe) {
                    (IPhase::InUse, _) => {
                        return Err(format!(
                            "initiator {i}: close of {conn}, which is in use (the driver owns it)"
                        ));
                    }
                    (IPhase::Dialling, _) => {
                        if self.dials.remove(&(i, conn)).is_none() {
                            return Err(format!("initiator {i}: close of {conn}: no dial pending"));
                        }
                    }
                    (_, Some(pipe)) => {
                        self.net.close(pipe, End::Initiator, now).map_err(|_| {
                            format!(
                                "initiator {i}: close of {conn}, whose socket is already closed"
                            )
                        })?;
                        // A leg the front door started (and maybe finished) on this tunnel ends unclaimed.
                        self.finish_leg(pipe)?;
                    }
                    (phase, None) => {
                        return Err(format!("initiator {i}: {conn} {phase:?} without a pipe"));
                    }
                }
            }
        }
        Ok(())
    }

    /// An initiator event: checked against the view (phases, identity, first `RPING`), then applied to it and
    /// to the counters recomputed from the event log; `Claimed` starts the echo service.
    pub(super) fn initiator_event(
        &mut self,
        i: usize,
        event: InitiatorEvent,
    ) -> Result<(), Violation> {
        let now = self.clock.now();
        let line = match &event {
            InitiatorEvent::BackingOff {
                cluster,
                host,
                until,
            } => format!(
                "i{i} BackingOff {cluster} {host} until {}",
                ms(self.clock.offset(*until))
            ),
            InitiatorEvent::Claimed {
                conn,
                cluster,
                host,
                data,
            } => format!("i{i} Claimed {conn} {cluster} {host} data {}", data.len()),
            other => format!("i{i} {other:?}"),
        };
        self.log(line);
        self.cover(initiator_event_kind(&event));
        match event {
            InitiatorEvent::TunnelReady {
                conn,
                cluster,
                host,
            } => {
                let view = &mut self.initiators[i].view;
                view.attribute(conn, &cluster, host)?;
                let c = view.conns.get_mut(&conn).ok_or("unreachable")?;
                if c.phase != IPhase::Handshaking {
                    return Err(format!(
                        "initiator {i}: TunnelReady for {conn} while {:?}",
                        c.phase
                    ));
                }
                c.phase = IPhase::Idle;
            }
            InitiatorEvent::Claimed {
                conn,
                cluster,
                host,
                data,
            } => {
                let view = &mut self.initiators[i].view;
                view.attribute(conn, &cluster, host)?;
                view.success(conn);
                let c = view.conns.get_mut(&conn).ok_or("unreachable")?;
                if c.phase != IPhase::Idle {
                    return Err(format!("initiator {i}: Claimed {conn} while {:?}", c.phase));
                }
                c.phase = IPhase::InUse;
                let (pipe, r) = (c.pipe.ok_or("claimed without pipe")?, c.responder);
                let claim_marker = self.scenario.claim_marker_mode(i, r);
                if !claim_marker && data.is_empty() {
                    return Err(format!(
                        "initiator {i}: Envoy-mode claim of {conn} without the first data bytes"
                    ));
                }
                let leg = self
                    .legs
                    .entry(pipe)
                    .or_insert_with(|| Leg::new(pipe, i, r, claim_marker, now));
                leg.echo_open = true;
                leg.echo_started = true;
                let echo = leg.echo_reads(&data)?;
                self.net
                    .write(pipe, End::Initiator, echo, now)
                    .map_err(|_| format!("echo on {pipe:?}: socket closed"))?;
            }
            InitiatorEvent::ConnectFailed {
                conn,
                cluster,
                host,
                error,
            } => {
                self.end_initiator_conn(i, conn, &cluster, host, IPhase::Dialling)?;
                let view = &mut self.initiators[i].view;
                let pool = view
                    .pools
                    .get_mut(&(cluster.clone(), host))
                    .ok_or("no pool")?;
                if error.is_failed_attempt() {
                    pool.failed += 1;
                } else {
                    pool.cannot_connect += 1;
                }
                view.failure(&cluster, host);
            }
            InitiatorEvent::HandshakeFailed {
                conn,
                cluster,
                host,
                reason,
            } => {
                self.end_initiator_conn(i, conn, &cluster, host, IPhase::Handshaking)?;
                let view = &mut self.initiators[i].view;
                let pool = view
                    .pools
                    .get_mut(&(cluster.clone(), host))
                    .ok_or("no pool")?;
                pool.failed += 1;
                *pool
                    .handshake_failed
                    .entry(reason.counter().into_owned())
                    .or_default() += 1;
                view.failure(&cluster, host);
            }
            InitiatorEvent::TunnelLost {
                conn,
                cluster,
                host,
                reason,
                failed_attempt,
            } => {
                let view = &self.initiators[i].view;
                let (pinged, phase) = view
                    .conns
                    .get(&conn)
                    .map(|c| (c.pinged, c.phase))
                    .ok_or_else(|| {
                        format!("initiator {i}: TunnelLost {conn}, which it does not hold")
                    })?;
                if reason == ILost::HostRemoved {
                    // `set_hosts` removed the host: its dials, handshakes and idle tunnels end, uncounted.
                    let retired = view
                        .pools
                        .get(&(cluster.clone(), host))
                        .is_some_and(|p| p.retired);
                    if !retired || failed_attempt || phase == IPhase::InUse {
                        return Err(format!(
                            "initiator {i}: TunnelLost {conn} HostRemoved (failed_attempt {failed_attempt}) \
                             while {phase:?}, but {host} is {} of {cluster}",
                            if retired {
                                "no longer a host"
                            } else {
                                "still a host"
                            }
                        ));
                    }
                    self.end_initiator_conn(i, conn, &cluster, host, phase)?;
                    return Ok(());
                }
                let own = matches!(
                    reason,
                    ILost::Closed | ILost::IdleTimeout | ILost::ProtocolError(_)
                );
                if !own {
                    return Err(format!(
                        "initiator {i}: TunnelLost {conn} for {reason:?}, which the simulation never causes"
                    ));
                }
                if failed_attempt == pinged {
                    return Err(format!(
                        "initiator {i}: TunnelLost {conn}: failed_attempt = {failed_attempt}, but its first \
                         RPING {} arrived",
                        if pinged { "had" } else { "had not" }
                    ));
                }
                self.end_initiator_conn(i, conn, &cluster, host, IPhase::Idle)?;
                if failed_attempt {
                    let view = &mut self.initiators[i].view;
                    view.pools
                        .get_mut(&(cluster.clone(), host))
                        .ok_or("no pool")?
                        .failed += 1;
                    view.failure(&cluster, host);
                }
            }
            InitiatorEvent::BackingOff {
                cluster,
                host,
                until,
            } => {
                let until = self.clock.offset(until);
                if until <= now {
                    return Err(format!(
                        "initiator {i}: BackingOff until {} at {}",
                        ms(until),
                        ms(now)
                    ));
                }
                let pool = self.initiators[i]
                    .view
                    .pools
                    .get_mut(&(cluster.clone(), host))
                    .ok_or_else(|| {
                        format!("initiator {i}: BackingOff for unknown pool {cluster} {host}")
                    })?;
                pool.backoff_until = Some(until);
                pool.recovered = false;
            }
            InitiatorEvent::CannotConnect { cluster, .. } => {
                *self.initiators[i]
                    .view
                    .cluster_cannot_connect
                    .entry(cluster)
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    /// An initiator event ended `conn`: it must have been in `phase`, and its socket (or dial) must be
    /// gone already (closed by a command, or reported closed by the simulation).
    pub(super) fn end_initiator_conn(
        &mut self,
        i: usize,
        conn: ConnId,
        cluster: &str,
        host: SocketAddr,
        phase: IPhase,
    ) -> Result<(), Violation> {
        self.initiators[i].view.attribute(conn, cluster, host)?;
        let c = self.initiators[i].view.remove(conn).ok_or("unreachable")?;
        if c.phase != phase {
            return Err(format!(
                "initiator {i}: {conn} ended as if {phase:?}, but it was {:?}",
                c.phase
            ));
        }
        if self.dials.contains_key(&(i, conn)) {
            return Err(format!(
                "initiator {i}: {conn} ended, but its dial was not cancelled"
            ));
        }
        if let Some(pipe) = c.pipe {
            if self.net.is_open(pipe, End::Initiator) {
                return Err(format!(
                    "initiator {i}: {conn} ended without a Close command: its socket leaks"
                ));
            }
        }
        Ok(())
    }
}

/// A short name for the kind of an initiator event (and its reason), for coverage.
pub(super) fn initiator_event_kind(event: &InitiatorEvent) -> String {
    match event {
        InitiatorEvent::TunnelReady { .. } => "i.TunnelReady".to_owned(),
        InitiatorEvent::Claimed { .. } => "i.Claimed".to_owned(),
        InitiatorEvent::ConnectFailed { error, .. } => format!("i.ConnectFailed.{error:?}"),
        InitiatorEvent::HandshakeFailed { reason, .. } => {
            format!("i.HandshakeFailed.{}", reason.counter())
        }
        InitiatorEvent::TunnelLost {
            reason,
            failed_attempt,
            ..
        } => {
            let reason = format!("{reason:?}");
            let reason = reason.split('(').next().unwrap_or_default();
            format!(
                "i.TunnelLost.{reason}{}",
                if *failed_attempt { ".failed" } else { "" }
            )
        }
        InitiatorEvent::BackingOff { .. } => "i.BackingOff".to_owned(),
        InitiatorEvent::CannotConnect { .. } => "i.CannotConnect".to_owned(),
    }
}
