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
//! above [`MAX_STEPS`], more than [`MAX_STEPS_AT_ONE_INSTANT`] steps without time moving, or a drain that
//! yields more than [`MAX_OUTPUTS_PER_DRAIN`] outputs.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use revtun_core::command::ConnId;
use revtun_core::initiator::Initiator;
use revtun_core::responder::{ClaimId, Responder};

use super::apps::Leg;
use super::clock::{Clock, ms};
use super::faults::{Fault, FaultKind};
use super::invariants;
use super::net::{Net, PipeId};
use super::rng::SimRng;
use super::scenario::{Scenario, responder_addr};
use super::trace::Trace;
use super::view::{InitiatorView, PoolTarget, ResponderView};

/// Most steps one run may take.
pub const MAX_STEPS: u64 = 400_000;
/// Most consecutive steps at one instant (a machine asking to be woken at `now` again and again).
pub const MAX_STEPS_AT_ONE_INSTANT: u64 = 1_000;
/// Added to the steady window. The window is one idle timeout plus this: every false positive shows within
/// it. The initiator's idle timer was last armed before the window began, and the responder's keepalive
/// declares a tunnel dead within a jittered interval plus `threshold` echo timeouts (at most
/// `1.15 · I + 1.5 · I`), which is less than the idle timeout (`3.45 · I + 150 ms`).
pub const STEADY_MARGIN: Duration = Duration::from_millis(100);
/// Most outputs (transmits, commands, events) one drain of one machine may yield: a machine that keeps
/// producing output without input would otherwise hang the run.
pub const MAX_OUTPUTS_PER_DRAIN: u64 = 100_000;
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
    /// check). See [`STEADY_MARGIN`].
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

mod claims;
mod delivery;
mod faults;
mod initiator;
mod phases;
mod responder;
mod timers;

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
        let all_hosts: Vec<SocketAddr> =
            (0..scenario.responders.len()).map(responder_addr).collect();
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
                view: InitiatorView::new(&prefix, &targets, &all_hosts),
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
        self.run_answer_deadlines(now)?;
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
        consider(self.legs.values().filter_map(Leg::answer_deadline).min());
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
}

/// Fails once a drain has yielded more than [`MAX_OUTPUTS_PER_DRAIN`] outputs.
fn check_output_budget(outputs: u64, who: impl FnOnce() -> String) -> Result<(), Violation> {
    if outputs > MAX_OUTPUTS_PER_DRAIN {
        return Err(format!(
            "{}: more than {MAX_OUTPUTS_PER_DRAIN} outputs in one drain: it never stops",
            who()
        ));
    }
    Ok(())
}
