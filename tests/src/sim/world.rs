//! The world of one run: the machines, the network, the apps, the fault schedule, and the step loop that
//! drives them all in simulated time.
//!
//! # The step loop
//! Each step jumps to the earliest of: any machine's `poll_timeout`, the next delivery on a pipe, the next
//! dial answer, the next fault (start or heal), a responder coming back up, the next claim or cancel, the
//! next front-door write, the next spurious wake, and the phase deadline. At that instant it does, in this
//! order: faults, restarts, dial answers, deliveries, front-door writes, claims, machine timers (every
//! machine whose `poll_timeout` is due gets `handle_timeout(now)`), spurious wakes; then it checks every
//! invariant ([`super::invariants`]) and moves the phase on.
//!
//! After **every** input to a machine the world drains it completely (transmits → pipes, commands → dials
//! and closes, events → the view and the apps), as STYLE.md §3 prescribes. A machine whose `poll_timeout`
//! is not later than `now` right after `handle_timeout(now)` fails the run (a spin); so does a step count
//! above [`MAX_STEPS`] or more than [`MAX_STEPS_AT_ONE_INSTANT`] steps without time moving.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use revtun_core::command::{Command, ConnId};
use revtun_core::initiator::{ConnectFailure, Initiator, InitiatorEvent, LostReason as ILost};
use revtun_core::keepalive::RPING;
use revtun_core::responder::{
    ClaimId, LostReason as RLost, RejectReason, Responder, ResponderEvent,
};
use revtun_core::stats::StatsSnapshot;

use super::apps::{Leg, Outcome};
use super::clock::{Clock, ms};
use super::faults::{Fault, FaultKind};
use super::invariants;
use super::net::{Delivery, End, Net, PipeId};
use super::rng::SimRng;
use super::scenario::{Scenario, TENANTS, responder_addr};
use super::trace::Trace;
use super::view::{
    ClaimView, IConn, IPhase, InitiatorView, PoolTarget, RConn, Registration, ResponderView,
};

/// Most steps one run may take.
pub const MAX_STEPS: u64 = 400_000;
/// Most consecutive steps at one instant (a machine asking to be woken at `now` again and again).
pub const MAX_STEPS_AT_ONE_INSTANT: u64 = 1_000;
/// Added to the steady window (one idle timeout plus one jittered ping interval).
pub const STEADY_MARGIN: Duration = Duration::from_millis(100);
/// How late a claim may be answered after its `claim_timeout`.
pub const CLAIM_SLACK: Duration = Duration::from_millis(5);
/// How long the settling and the final phase may each take.
pub const FINAL_PHASE_LIMIT: Duration = Duration::from_secs(4);

/// One initiator and the simulation's view of it.
pub struct InitiatorSlot {
    /// The machine.
    pub machine: Initiator,
    /// The simulation's view.
    pub view: InitiatorView,
    /// Counter values at the last check (they must never decrease).
    pub last_counters: Vec<(String, u64)>,
    /// Something that can move a statistic happened since the last check.
    pub dirty: bool,
}

/// One responder (the current generation) and the simulation's view of it.
pub struct ResponderSlot {
    /// The machine; `None` while the responder is down.
    pub machine: Option<Responder>,
    /// Incremented at every restart; pipes of older generations are gone.
    pub generation: u64,
    /// When it comes back up, while down.
    pub up_at: Option<Duration>,
    /// The simulation's view of the current generation.
    pub view: ResponderView,
    /// Counter values at the last check (reset with the generation).
    pub last_counters: Vec<(String, u64)>,
    /// Something that can move a statistic happened since the last check.
    pub dirty: bool,
}

/// What the world knows about one pipe.
#[derive(Clone, Debug)]
pub struct PipeInfo {
    /// The initiator's connection.
    pub initiator: usize,
    /// Its id at the initiator.
    pub i_conn: ConnId,
    /// The responder.
    pub responder: usize,
    /// The responder's generation.
    pub generation: u64,
    /// Its id at the responder.
    pub r_conn: ConnId,
    /// Stream offsets (toward the initiator) at which a responder `RPING` transmit ends.
    pub ping_ends: VecDeque<u64>,
    /// Bytes delivered to the initiator's end so far.
    pub to_initiator: u64,
}

/// A dial not answered yet.
#[derive(Clone, Debug)]
struct Dial {
    responder: usize,
    at: Duration,
    latency: Duration,
}

/// The run's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults happen and the front doors make random claims.
    Faulty,
    /// Every fault healed at `since`; every pool must be full by `deadline`.
    Restoring {
        /// When the quiet tail began.
        since: Duration,
        /// The bound.
        deadline: Duration,
    },
    /// Pools are full; stale connections finish and pending claims end, until every tunnel is whole on
    /// both sides ([`invariants::quiescent`]).
    Settling {
        /// When the phase began.
        since: Duration,
    },
    /// A healthy network with full pools and no claims: nothing may happen but keepalives until `until`
    /// (no event, no command: a tunnel that dies or is replaced here is a false positive of a liveness
    /// check).
    Steady {
        /// When the phase ends.
        until: Duration,
    },
    /// Final claims, each of which must carry its data; then the pools refill and the run is done.
    Final {
        /// When the phase began.
        since: Duration,
    },
    /// The run is over.
    Done,
}

/// Figures of a finished run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Hash of the event log.
    pub trace_hash: u64,
    /// Lines in the event log.
    pub trace_lines: u64,
    /// Steps taken.
    pub steps: u64,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Faults scheduled.
    pub faults: usize,
    /// When the quiet tail began.
    pub quiet_at: Duration,
    /// How long after the quiet tail began every pool was full.
    pub restored_after: Duration,
    /// The bound it had to meet.
    pub restore_bound: Duration,
    /// Claims made.
    pub claims: u64,
    /// Claims handed out.
    pub handed_out: u64,
    /// Claims expired.
    pub expired: u64,
    /// Data legs whose whole echo came back.
    pub legs_complete: u64,
    /// Data legs cut short by a fault or a lost tunnel.
    pub legs_aborted: u64,
    /// Payload bytes echoed back in full.
    pub bytes_echoed: u64,
    /// Tunnels registered (over all responders).
    pub registered: u64,
    /// Responder restarts.
    pub restarts: u64,
    /// Spurious wakes given.
    pub spurious_wakes: u64,
    /// Legs in claim-marker mode that completed.
    pub claim_marker_legs: u64,
    /// Legs in Envoy mode that completed.
    pub envoy_legs: u64,
    /// How often each kind of event happened (`i.<Event>.<reason>` / `r.<Event>.<reason>`): what the run
    /// covered.
    pub coverage: BTreeMap<String, u64>,
}

/// The world of one run; see the [module documentation](self).
pub struct World {
    /// What is simulated.
    pub scenario: Scenario,
    /// Simulated time.
    pub clock: Clock,
    /// The event log.
    pub trace: Trace,
    /// The network.
    pub net: Net,
    /// The initiators.
    pub initiators: Vec<InitiatorSlot>,
    /// The responders.
    pub responders: Vec<ResponderSlot>,
    /// Pipes by id.
    pub pipes: BTreeMap<PipeId, PipeInfo>,
    /// Data legs by pipe (finished ones are dropped once both apps closed).
    pub legs: BTreeMap<PipeId, Leg>,
    /// The phase.
    pub phase: Phase,
    /// The report being filled.
    pub report: RunReport,
    dials: BTreeMap<(usize, ConnId), Dial>,
    /// Fault starts and heals, by time.
    fault_events: VecDeque<(Duration, bool, Fault)>,
    /// Active stall/reset-free faults count, for "quiet".
    active_faults: usize,
    next_claim: Vec<Duration>,
    cancels: BTreeMap<(Duration, usize, ClaimId), u64>,
    final_claims: VecDeque<(Duration, usize, usize, String, Option<String>)>,
    spurious: VecDeque<Duration>,
    rng_latency: SimRng,
    rng_faults: SimRng,
    rng_claims: SimRng,
    rng_payload: SimRng,
    rng_responder_seeds: SimRng,
    quiet_at: Duration,
    same_instant_steps: u64,
    /// Compare every machine's statistics every this many steps, dirty or not (0: only dirty machines after
    /// each step, and every machine at phase changes; see [`invariants::check_all`]).
    pub check_every: u64,
}

/// A violation: the message of the failure.
pub type Violation = String;

impl World {
    /// Builds the world of `scenario` at time 0: responders up, initiators given their hosts.
    pub fn new(scenario: Scenario, keep_trace: bool) -> Result<Self, Violation> {
        let mut root = SimRng::new(scenario.seed);
        let rng_net = root.fork();
        let rng_latency = root.fork();
        let rng_faults = root.fork();
        let mut rng_claims = root.fork();
        let rng_payload = root.fork();
        let mut rng_responder_seeds = root.fork();
        let mut rng_initiator_seeds = root.fork();
        let mut rng_spurious = root.fork();
        let clock = Clock::new();
        let now = clock.instant();

        let mut responders = Vec::new();
        for r in 0..scenario.responders.len() {
            let config = scenario.responder_config(r);
            let prefix = config.stat_prefix.clone();
            let machine = Responder::new(config, rng_responder_seeds.seed32(), now)
                .map_err(|e| format!("responder {r} config: {e}"))?;
            responders.push(ResponderSlot {
                machine: Some(machine),
                generation: 0,
                up_at: None,
                view: ResponderView::new(&prefix, scenario.tenant_isolation),
                last_counters: Vec::new(),
                dirty: true,
            });
        }
        let mut initiators = Vec::new();
        for (i, spec) in scenario.initiators.iter().enumerate() {
            let config = scenario.initiator_config(i);
            let prefix = config.stat_prefix.clone();
            let machine = Initiator::new(config, rng_initiator_seeds.seed32(), now)
                .map_err(|e| format!("initiator {i} config: {e}"))?;
            let targets: Vec<PoolTarget> = spec
                .targets
                .iter()
                .map(|t| PoolTarget {
                    name: t.name.clone(),
                    count: t.count,
                    hosts: t.hosts.iter().map(|&r| (responder_addr(r), r)).collect(),
                })
                .collect();
            initiators.push(InitiatorSlot {
                machine,
                view: InitiatorView::new(&prefix, &targets),
                last_counters: Vec::new(),
                dirty: true,
            });
        }

        let mut fault_events: Vec<(Duration, bool, Fault)> = Vec::new();
        for f in &scenario.faults.faults {
            fault_events.push((f.at, true, *f));
            if !matches!(f.kind, FaultKind::Reset | FaultKind::Stall) {
                fault_events.push((f.end(), false, *f));
            }
        }
        fault_events.sort_by_key(|&(at, start, _)| (at, !start));
        let quiet_at = scenario
            .faults
            .last_heal()
            .unwrap_or_default()
            .max(scenario.claims_until);
        let next_claim = (0..scenario.responders.len())
            .map(|_| rng_claims.duration(Duration::from_millis(20), scenario.load.mean_gap))
            .collect();
        let mut spurious: Vec<Duration> = (0..12)
            .map(|_| rng_spurious.duration(Duration::ZERO, quiet_at + Duration::from_secs(2)))
            .collect();
        spurious.sort_unstable();

        let mut world = Self {
            report: RunReport {
                seed: scenario.seed,
                faults: scenario.faults.faults.len(),
                quiet_at,
                ..RunReport::default()
            },
            scenario,
            clock,
            trace: Trace::new(keep_trace),
            net: Net::new(rng_net),
            initiators,
            responders,
            pipes: BTreeMap::new(),
            legs: BTreeMap::new(),
            phase: Phase::Faulty,
            dials: BTreeMap::new(),
            fault_events: fault_events.into(),
            active_faults: 0,
            next_claim,
            cancels: BTreeMap::new(),
            final_claims: VecDeque::new(),
            spurious: spurious.into(),
            rng_latency,
            rng_faults,
            rng_claims,
            rng_payload,
            rng_responder_seeds,
            quiet_at,
            same_instant_steps: 0,
            check_every: 0,
        };
        world.log(format!("scenario {:?}", world.scenario.timing));
        for i in 0..world.initiators.len() {
            let targets = world.scenario.initiators[i].targets.clone();
            for t in targets {
                let hosts: Vec<SocketAddr> = t.hosts.iter().map(|&r| responder_addr(r)).collect();
                let now = world.clock.instant();
                world.initiators[i]
                    .machine
                    .set_hosts(&t.name, &hosts, now)
                    .map_err(|e| format!("initiator {i}: set_hosts: {e}"))?;
                world.drain_initiator(i)?;
            }
        }
        Ok(world)
    }

    /// Appends a line to the event log.
    pub fn log(&mut self, line: impl AsRef<str>) {
        self.trace.log(self.clock.now(), line);
    }

    /// Counts one occurrence of `kind` in the report's coverage.
    fn cover(&mut self, kind: String) {
        *self.report.coverage.entry(kind).or_default() += 1;
    }

    /// Runs to the end: `Ok(report)` or the first violation.
    pub fn run(&mut self) -> Result<RunReport, Violation> {
        invariants::check_all(self, true)?;
        while self.phase != Phase::Done {
            self.step()?;
        }
        self.report.trace_hash = self.trace.hash();
        self.report.trace_lines = self.trace.len();
        self.report.sim_time = self.clock.now();
        Ok(self.report.clone())
    }

    /// One step; see the module documentation.
    pub fn step(&mut self) -> Result<(), Violation> {
        self.report.steps += 1;
        if self.report.steps > MAX_STEPS {
            return Err(format!("more than {MAX_STEPS} steps: the run does not end"));
        }
        let now = self.clock.now();
        let next = self.next_time().max(now);
        if next == now {
            self.same_instant_steps += 1;
            if self.same_instant_steps > MAX_STEPS_AT_ONE_INSTANT {
                return Err(format!(
                    "{MAX_STEPS_AT_ONE_INSTANT} steps at {} without time moving: something spins",
                    ms(now)
                ));
            }
        } else {
            self.same_instant_steps = 0;
        }
        self.clock.advance_to(next)?;
        let now = next;
        self.run_faults(now)?;
        self.run_restarts(now)?;
        self.run_dials(now)?;
        while let Some(delivery) = self.net.take_due(now) {
            self.deliver(delivery, now)?;
        }
        self.run_front_door_writes(now)?;
        self.run_claims(now)?;
        self.run_timers(now)?;
        self.run_spurious(now)?;
        if self.report.steps % 64 == 0 {
            let net = &self.net;
            self.pipes.retain(|id, _| net.pipe(*id).is_some());
        }
        let full = self.check_every != 0 && self.report.steps % self.check_every == 0;
        invariants::check_all(self, full)?;
        self.advance_phase(now)
    }

    /// The earliest time anything happens.
    fn next_time(&self) -> Duration {
        let mut next = Duration::MAX;
        let mut consider = |t: Option<Duration>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        for slot in &self.initiators {
            consider(slot.machine.poll_timeout().map(|i| self.clock.offset(i)));
        }
        for slot in &self.responders {
            if let Some(m) = &slot.machine {
                consider(m.poll_timeout().map(|i| self.clock.offset(i)));
            }
            consider(slot.up_at);
        }
        consider(self.net.next_event());
        for (&(i, _), dial) in &self.dials {
            if !self.net.is_partitioned(i, dial.responder) {
                consider(Some(dial.at));
            }
        }
        consider(self.fault_events.front().map(|&(at, _, _)| at));
        if self.phase == Phase::Faulty {
            consider(self.next_claim.iter().copied().min());
        }
        consider(self.cancels.keys().next().map(|&(at, _, _)| at));
        consider(self.final_claims.front().map(|&(at, ..)| at));
        consider(self.legs.values().filter_map(Leg::next_write).min());
        consider(self.spurious.front().copied());
        match self.phase {
            Phase::Faulty => consider(Some(self.quiet_at)),
            Phase::Restoring { deadline, .. } => consider(Some(deadline)),
            Phase::Settling { since } | Phase::Final { since } => {
                consider(Some(since + FINAL_PHASE_LIMIT));
            }
            Phase::Steady { until } => consider(Some(until)),
            Phase::Done => {}
        }
        next
    }

    // -----------------------------------------------------------------------------------------------------
    // Draining the machines

    /// In the steady phase nothing but keepalives may happen: an event or command is a violation.
    fn steady(&self, what: impl FnOnce() -> String) -> Result<(), Violation> {
        match self.phase {
            Phase::Steady { .. } => Err(format!(
                "steady state broken (healthy network, full pools, no claims): {}",
                what()
            )),
            _ => Ok(()),
        }
    }

    /// Drains initiator `i` completely: transmits, commands, events (STYLE.md §3 order).
    pub fn drain_initiator(&mut self, i: usize) -> Result<(), Violation> {
        loop {
            let mut any = false;
            while let Some(t) = self.initiators[i].machine.poll_transmit() {
                any = true;
                self.initiator_transmit(i, t.conn, t.data)?;
            }
            while let Some(c) = self.initiators[i].machine.poll_command() {
                any = true;
                self.initiators[i].dirty = true;
                self.steady(|| format!("initiator {i}: {c:?}"))?;
                self.initiator_command(i, c)?;
            }
            while let Some(e) = self.initiators[i].machine.poll_event() {
                any = true;
                self.initiators[i].dirty = true;
                self.steady(|| format!("initiator {i}: {e:?}"))?;
                self.initiator_event(i, e)?;
            }
            if !any {
                return Ok(());
            }
        }
    }

    fn initiator_transmit(&mut self, i: usize, conn: ConnId, data: Bytes) -> Result<(), Violation> {
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

    fn initiator_command(&mut self, i: usize, command: Command) -> Result<(), Violation> {
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
                view.conns.insert(
                    conn,
                    IConn {
                        cluster,
                        host: addr,
                        responder: r,
                        phase: IPhase::Dialling,
                        pipe: None,
                        pinged: false,
                    },
                );
                view.opened += 1;
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
                    }
                    (phase, None) => {
                        return Err(format!("initiator {i}: {conn} {phase:?} without a pipe"));
                    }
                }
            }
        }
        Ok(())
    }

    fn initiator_event(&mut self, i: usize, event: InitiatorEvent) -> Result<(), Violation> {
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
                let pinged = self.initiators[i]
                    .view
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.pinged);
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
    fn end_initiator_conn(
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

    /// Drains responder `r` completely.
    pub fn drain_responder(&mut self, r: usize) -> Result<(), Violation> {
        loop {
            let mut any = false;
            while let Some(t) = self.responders[r]
                .machine
                .as_mut()
                .and_then(Responder::poll_transmit)
            {
                any = true;
                self.responder_transmit(r, t.conn, t.data)?;
            }
            while let Some(c) = self.responders[r]
                .machine
                .as_mut()
                .and_then(Responder::poll_command)
            {
                any = true;
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
                self.responders[r].dirty = true;
                self.steady(|| format!("responder {r}: {e:?}"))?;
                self.responder_event(r, e)?;
            }
            if !any {
                return Ok(());
            }
        }
    }

    fn responder_transmit(&mut self, r: usize, conn: ConnId, data: Bytes) -> Result<(), Violation> {
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
        let is_pings = registered
            && !data.is_empty()
            && data.len() % RPING.len() == 0
            && data.chunks(RPING.len()).all(|c| c == RPING);
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

    fn responder_command(&mut self, r: usize, command: Command) -> Result<(), Violation> {
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

    fn responder_event(&mut self, r: usize, event: ResponderEvent) -> Result<(), Violation> {
        let now = self.clock.now();
        let line = match &event {
            ResponderEvent::HandedOut {
                claim,
                conn,
                node,
                cluster,
                tenant,
                data,
            } => format!(
                "r{r} HandedOut {claim:?} {conn} {node} {cluster} {tenant:?} data {}",
                data.len()
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
                let (pipe, initiator) = (c.pipe, c.initiator);
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
                let marker = self.scenario.marker_payloads_per_mille;
                let leg = self
                    .legs
                    .entry(pipe)
                    .or_insert_with(|| Leg::new(pipe, initiator, r, claim_marker, now));
                leg.claim = Some(claim);
                leg.must_succeed = cv.must_succeed;
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

    // -----------------------------------------------------------------------------------------------------
    // Inputs

    fn run_dials(&mut self, now: Duration) -> Result<(), Violation> {
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

    fn deliver(&mut self, d: Delivery, now: Duration) -> Result<(), Violation> {
        let Some(info) = self.pipes.get(&d.pipe).cloned() else {
            return Err(format!("delivery on unknown {:?}", d.pipe));
        };
        match d.to {
            End::Initiator => self.deliver_to_initiator(&info, d, now),
            End::Responder => self.deliver_to_responder(&info, d, now),
        }
    }

    fn deliver_to_initiator(
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
    fn close_initiator_end(
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
            }
            None => {}
        }
        Ok(())
    }

    fn deliver_to_responder(
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
    fn front_door_done(
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
    fn close_responder_end(
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
    fn finish_leg(&mut self, pipe: PipeId) -> Result<(), Violation> {
        let Some(leg) = self.legs.get(&pipe) else {
            return Ok(());
        };
        if leg.echo_open || leg.front_door_open {
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

    fn run_front_door_writes(&mut self, now: Duration) -> Result<(), Violation> {
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

    // -----------------------------------------------------------------------------------------------------
    // Claims

    fn run_claims(&mut self, now: Duration) -> Result<(), Violation> {
        if self.phase == Phase::Faulty {
            for r in 0..self.responders.len() {
                while self.next_claim[r] <= now {
                    let gap = self.scenario.load.mean_gap;
                    self.next_claim[r] = now + self.rng_claims.duration(gap / 4, gap * 7 / 4);
                    if self.responders[r].machine.is_none() {
                        continue;
                    }
                    let (target, tenant) = self.random_claim_target(r);
                    let claim = self.claim(r, &target, tenant, false)?;
                    if let Some(claim) = claim {
                        if self.rng_claims.chance(1, 10) {
                            let at = now
                                + self
                                    .rng_claims
                                    .duration(Duration::ZERO, self.scenario.timing.claim_timeout);
                            self.cancels
                                .insert((at, r, claim), self.responders[r].generation);
                        }
                    }
                }
            }
        }
        while self.final_claims.front().is_some_and(|&(at, ..)| at <= now) {
            let Some((_, _, r, target, tenant)) = self.final_claims.pop_front() else {
                break;
            };
            self.claim(r, &target, tenant, true)?;
        }
        while let Some((&(at, r, claim), &generation)) = self.cancels.iter().next() {
            if at > now {
                break;
            }
            self.cancels.remove(&(at, r, claim));
            if self.responders[r].generation != generation
                || !self.responders[r].view.claims.contains_key(&claim)
            {
                continue;
            }
            self.log(format!("r{r} cancel {claim:?}"));
            self.responders[r].view.claims.remove(&claim);
            self.responders[r].dirty = true;
            let instant = self.clock.instant();
            if let Some(m) = self.responders[r].machine.as_mut() {
                m.cancel_claim(claim, instant);
            }
            self.drain_responder(r)?;
        }
        Ok(())
    }

    /// A claim target for responder `r`: mostly a node or cluster that keeps tunnels there, sometimes one
    /// that does not, sometimes an unknown id; the tenant is mostly right.
    fn random_claim_target(&mut self, r: usize) -> (String, Option<String>) {
        let rng = &mut self.rng_claims;
        let specs = &self.scenario.initiators;
        let local: Vec<usize> = (0..specs.len())
            .filter(|&i| specs[i].responders().contains(&r))
            .collect();
        let pick = if !local.is_empty() && rng.chance(8, 10) {
            local[rng.index(local.len())]
        } else {
            rng.index(specs.len())
        };
        let spec = &specs[pick];
        let target = match rng.below(10) {
            0..=5 => spec.node.clone(),
            6..=8 => spec.cluster.clone(),
            _ => "ghost".to_owned(),
        };
        let tenant = if self.scenario.tenant_isolation {
            match rng.below(20) {
                0 => None,
                1..=3 => Some(TENANTS[rng.index(2)].to_owned()),
                _ => Some(spec.tenant.clone()),
            }
        } else if rng.chance(1, 2) {
            Some(spec.tenant.clone())
        } else {
            None
        };
        (target, tenant)
    }

    /// Makes a claim on responder `r` (if it is up); returns its id.
    fn claim(
        &mut self,
        r: usize,
        target: &str,
        tenant: Option<String>,
        must_succeed: bool,
    ) -> Result<Option<ClaimId>, Violation> {
        let now = self.clock.now();
        let instant = self.clock.instant();
        let Some(m) = self.responders[r].machine.as_mut() else {
            if must_succeed {
                return Err(format!("final claim on responder {r}, which is down"));
            }
            return Ok(None);
        };
        let claim = m.claim(target, tenant.as_deref(), instant);
        self.responders[r].dirty = true;
        self.report.claims += 1;
        self.log(format!("r{r} claim {claim:?} {target} {tenant:?}"));
        if self.responders[r]
            .view
            .claims
            .insert(
                claim,
                ClaimView {
                    target: target.to_owned(),
                    tenant,
                    issued: now,
                    must_succeed,
                },
            )
            .is_some()
        {
            return Err(format!("responder {r}: claim id {claim:?} reused"));
        }
        self.drain_responder(r)?;
        Ok(Some(claim))
    }

    // -----------------------------------------------------------------------------------------------------
    // Timers

    fn run_timers(&mut self, now: Duration) -> Result<(), Violation> {
        let instant = self.clock.instant();
        for i in 0..self.initiators.len() {
            let due = self.initiators[i]
                .machine
                .poll_timeout()
                .is_some_and(|t| t <= instant);
            if due {
                self.initiators[i].machine.handle_timeout(instant);
                if self.initiators[i].view.timers_fired(now) {
                    self.initiators[i].dirty = true;
                }
                self.drain_initiator(i)?;
                if let Some(t) = self.initiators[i].machine.poll_timeout() {
                    if t <= instant {
                        return Err(format!(
                            "initiator {i}: poll_timeout {} not after handle_timeout({}): it would spin",
                            ms(self.clock.offset(t)),
                            ms(now)
                        ));
                    }
                }
            }
        }
        for r in 0..self.responders.len() {
            let due = self.responders[r]
                .machine
                .as_ref()
                .and_then(Responder::poll_timeout)
                .is_some_and(|t| t <= instant);
            if due {
                if let Some(m) = self.responders[r].machine.as_mut() {
                    m.handle_timeout(instant);
                }
                self.drain_responder(r)?;
                if let Some(t) = self.responders[r]
                    .machine
                    .as_ref()
                    .and_then(Responder::poll_timeout)
                {
                    if t <= instant {
                        return Err(format!(
                            "responder {r}: poll_timeout {} not after handle_timeout({}): it would spin",
                            ms(self.clock.offset(t)),
                            ms(now)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A spurious wake: `handle_timeout(now)` on a machine with nothing due must change nothing.
    fn run_spurious(&mut self, now: Duration) -> Result<(), Violation> {
        while self.spurious.front().is_some_and(|&at| at <= now) {
            self.spurious.pop_front();
            let instant = self.clock.instant();
            let n = self.initiators.len() + self.responders.len();
            let pick = self.rng_faults.index(n);
            self.report.spurious_wakes += 1;
            if pick < self.initiators.len() {
                let m = &mut self.initiators[pick].machine;
                let before = m.poll_timeout();
                if before.is_some_and(|t| t <= instant) {
                    continue;
                }
                let stats = m.stats();
                m.handle_timeout(instant);
                let out = (
                    m.poll_transmit().is_some(),
                    m.poll_command().is_some(),
                    m.poll_event().is_some(),
                );
                if out != (false, false, false) || m.poll_timeout() != before || m.stats() != stats
                {
                    return Err(format!(
                        "initiator {pick}: a spurious handle_timeout at {} changed something (output \
                         transmit/command/event = {out:?})",
                        ms(now)
                    ));
                }
            } else if let Some(m) = self.responders[pick - self.initiators.len()]
                .machine
                .as_mut()
            {
                let before = m.poll_timeout();
                if before.is_some_and(|t| t <= instant) {
                    continue;
                }
                let stats: StatsSnapshot = m.stats();
                m.handle_timeout(instant);
                let out = (
                    m.poll_transmit().is_some(),
                    m.poll_command().is_some(),
                    m.poll_event().is_some(),
                );
                if out != (false, false, false) || m.poll_timeout() != before || m.stats() != stats
                {
                    return Err(format!(
                        "responder {}: a spurious handle_timeout at {} changed something (output \
                         transmit/command/event = {out:?})",
                        pick - self.initiators.len(),
                        ms(now)
                    ));
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------------
    // Faults

    fn run_faults(&mut self, now: Duration) -> Result<(), Violation> {
        while self.fault_events.front().is_some_and(|&(at, ..)| at <= now) {
            let Some((_, start, fault)) = self.fault_events.pop_front() else {
                break;
            };
            self.log(format!(
                "fault {} {:?} for {}",
                if start { "start" } else { "heal" },
                fault.kind,
                ms(fault.duration)
            ));
            match (fault.kind, start) {
                (FaultKind::Reset, _) => {
                    let ids = self.net.pipe_ids();
                    if !ids.is_empty() {
                        let pipe = ids[self.rng_faults.index(ids.len())];
                        self.reset_pipe(pipe, "reset")?;
                    }
                }
                (FaultKind::Stall, _) => {
                    let ids = self.net.pipe_ids();
                    if !ids.is_empty() {
                        let pipe = ids[self.rng_faults.index(ids.len())];
                        let reader = if self.rng_faults.chance(1, 2) {
                            End::Initiator
                        } else {
                            End::Responder
                        };
                        self.log(format!("stall {pipe:?} toward {reader:?}"));
                        self.net.stall(pipe, reader, now + fault.duration);
                    }
                }
                (FaultKind::Restart { responder }, true) => {
                    self.active_faults += 1;
                    self.restart(responder, now + fault.duration)?;
                }
                (FaultKind::Restart { .. }, false) => self.active_faults -= 1,
                (
                    FaultKind::Partition {
                        initiator,
                        responder,
                    },
                    true,
                ) => {
                    self.active_faults += 1;
                    self.net.partition(initiator, responder);
                }
                (
                    FaultKind::Partition {
                        initiator,
                        responder,
                    },
                    false,
                ) => {
                    self.active_faults -= 1;
                    self.net.heal(initiator, responder);
                }
                (
                    FaultKind::Slow {
                        initiator,
                        responder,
                    },
                    on,
                ) => {
                    if on {
                        self.active_faults += 1;
                    } else {
                        self.active_faults -= 1;
                    }
                    self.net.set_slow(initiator, responder, on);
                }
            }
        }
        Ok(())
    }

    /// Resets `pipe`: both ends see it closed now.
    fn reset_pipe(&mut self, pipe: PipeId, why: &'static str) -> Result<(), Violation> {
        let Some(info) = self.pipes.get(&pipe).cloned() else {
            self.net.reset(pipe);
            return Ok(());
        };
        self.log(format!("reset {pipe:?} ({why})"));
        let [i_open, r_open] = self.net.reset(pipe);
        if i_open {
            self.close_initiator_end(info.initiator, info.i_conn, pipe, why)?;
        }
        let live = self.responders[info.responder].generation == info.generation
            && self.responders[info.responder].machine.is_some();
        if r_open && live {
            self.close_responder_end(info.responder, info.r_conn, pipe, why)?;
        }
        self.pipes.remove(&pipe);
        if let Some(leg) = self.legs.get_mut(&pipe) {
            leg.echo_open = false;
            leg.front_door_open = false;
            if leg.outcome.is_none() {
                leg.outcome = Some(Outcome::Aborted(why));
            }
        }
        self.finish_leg(pipe)
    }

    /// Responder `r` goes down until `up_at`: every connection to it is reset; its machine, claims and
    /// front doors are gone.
    fn restart(&mut self, r: usize, up_at: Duration) -> Result<(), Violation> {
        self.report.restarts += 1;
        let slot = &mut self.responders[r];
        slot.machine = None;
        slot.generation += 1;
        slot.up_at = Some(slot.up_at.map_or(up_at, |t| t.max(up_at)));
        let pipes: Vec<PipeId> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.responder == r)
            .map(|(&id, _)| id)
            .collect();
        for pipe in pipes {
            self.reset_pipe(pipe, "responder restart")?;
        }
        let slot = &mut self.responders[r];
        let prefix = slot.view.prefix.clone();
        slot.view = ResponderView::new(&prefix, self.scenario.tenant_isolation);
        slot.last_counters.clear();
        slot.dirty = true;
        Ok(())
    }

    fn run_restarts(&mut self, now: Duration) -> Result<(), Violation> {
        for r in 0..self.responders.len() {
            if self.responders[r].up_at.is_some_and(|t| t <= now) {
                self.responders[r].up_at = None;
                let config = self.scenario.responder_config(r);
                let machine = Responder::new(
                    config,
                    self.rng_responder_seeds.seed32(),
                    self.clock.instant(),
                )
                .map_err(|e| format!("responder {r} config: {e}"))?;
                self.responders[r].machine = Some(machine);
                self.responders[r].dirty = true;
                self.log(format!(
                    "r{r} up again (generation {})",
                    self.responders[r].generation
                ));
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------------
    // Phases

    /// Every pool of every initiator has `count` idle tunnels, and every responder is up.
    pub fn pools_full(&self) -> bool {
        self.responders.iter().all(|r| r.machine.is_some())
            && self.initiators.iter().all(|slot| {
                slot.view.pools.iter().all(|((cluster, host), pool)| {
                    slot.view.idle(cluster, *host) == u64::from(pool.count)
                })
            })
    }

    /// Pools that are not full, for failure messages.
    pub fn describe_pools(&self) -> String {
        let mut out = String::new();
        for (i, slot) in self.initiators.iter().enumerate() {
            for ((cluster, host), pool) in &slot.view.pools {
                let idle = slot.view.idle(cluster, *host);
                if idle != u64::from(pool.count) {
                    let conns: Vec<String> = slot
                        .view
                        .conns
                        .iter()
                        .filter(|(_, c)| c.host == *host)
                        .map(|(id, c)| format!("{id}:{:?}", c.phase))
                        .collect();
                    out.push_str(&format!(
                        "\n  i{i} {cluster} {host}: idle {idle}/{}, backoff until {:?}, conns [{}]",
                        pool.count,
                        pool.backoff_until.map(ms),
                        conns.join(", ")
                    ));
                }
            }
        }
        out
    }

    fn advance_phase(&mut self, now: Duration) -> Result<(), Violation> {
        match self.phase {
            Phase::Faulty => {
                let quiet = now >= self.quiet_at
                    && self.active_faults == 0
                    && self.fault_events.is_empty()
                    && self.responders.iter().all(|r| r.machine.is_some())
                    && !self.net.any_fault_active(now);
                if quiet {
                    let bound = super::restore_bound(&self.scenario);
                    self.report.restore_bound = bound;
                    self.report.quiet_at = now;
                    self.log(format!("quiet: pools must be full by {}", ms(now + bound)));
                    self.phase = Phase::Restoring {
                        since: now,
                        deadline: now + bound,
                    };
                    invariants::check_all(self, true)?;
                }
            }
            Phase::Restoring { since, deadline } => {
                if self.pools_full() {
                    self.report.restored_after = now - since;
                    self.log(format!("restored after {}", ms(now - since)));
                    invariants::check_all(self, true)?;
                    self.phase = Phase::Settling { since: now };
                } else if now >= deadline {
                    return Err(format!(
                        "pools not full {} after the last fault healed (bound {}):{}",
                        ms(now - since),
                        ms(deadline - since),
                        self.describe_pools()
                    ));
                }
            }
            Phase::Settling { since } => {
                let quiescent = invariants::quiescent(self);
                if self.pools_full() && quiescent.is_ok() {
                    let t = &self.scenario.timing;
                    let until =
                        now + t.idle_timeout + t.ping_interval.mul_f64(1.15) + STEADY_MARGIN;
                    self.log(format!("settled: steady until {}", ms(until)));
                    self.phase = Phase::Steady { until };
                } else if now >= since + FINAL_PHASE_LIMIT {
                    return Err(format!(
                        "not settled {} after the pools were full: {:?}; pools:{}",
                        ms(FINAL_PHASE_LIMIT),
                        quiescent.err(),
                        self.describe_pools()
                    ));
                }
            }
            Phase::Steady { until } => {
                if now >= until {
                    invariants::check_all(self, true)?;
                    invariants::quiescent(self)?;
                    self.schedule_final_claims(now);
                    self.phase = Phase::Final { since: now };
                }
            }
            Phase::Final { since } => {
                let claims_done = self.final_claims.is_empty()
                    && self
                        .responders
                        .iter()
                        .all(|r| r.view.claims.values().all(|c| !c.must_succeed))
                    && self.legs.values().all(|l| !l.must_succeed);
                let quiescent = invariants::quiescent(self);
                if claims_done && self.pools_full() && quiescent.is_ok() {
                    invariants::check_all(self, true)?;
                    self.log("done");
                    self.phase = Phase::Done;
                } else if now >= since + FINAL_PHASE_LIMIT {
                    return Err(format!(
                        "final phase not done after {}: {:?}; final claims left {}, final legs open {}, pools:{}",
                        ms(FINAL_PHASE_LIMIT),
                        quiescent.err(),
                        self.final_claims.len()
                            + self
                                .responders
                                .iter()
                                .map(|r| r.view.claims.values().filter(|c| c.must_succeed).count())
                                .sum::<usize>(),
                        self.legs.values().filter(|l| l.must_succeed).count(),
                        self.describe_pools()
                    ));
                }
            }
            Phase::Done => {}
        }
        Ok(())
    }

    /// Final claims: for each initiator, `final_claims` claims for its node (or its cluster) on one of
    /// its responders, in its tenant, 40 ms apart.
    fn schedule_final_claims(&mut self, now: Duration) {
        let mut at = now + Duration::from_millis(10);
        for _ in 0..self.scenario.load.final_claims {
            for i in 0..self.scenario.initiators.len() {
                let spec = &self.scenario.initiators[i];
                let responders = spec.responders();
                let r = responders[self.rng_claims.index(responders.len())];
                let target =
                    if self.rng_claims.chance(1, 3) && !self.scenario.load.final_by_node_only {
                        spec.cluster.clone()
                    } else {
                        spec.node.clone()
                    };
                let tenant = self.scenario.tenant_isolation.then(|| spec.tenant.clone());
                self.final_claims.push_back((at, i, r, target, tenant));
                at += Duration::from_millis(40);
            }
        }
    }
}

/// A short name for the kind of an initiator event (and its reason), for coverage.
fn initiator_event_kind(event: &InitiatorEvent) -> String {
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

/// A short name for the kind of a responder event (and its reason), for coverage.
fn responder_event_kind(event: &ResponderEvent) -> String {
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
