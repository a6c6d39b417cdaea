//! The run's phases: faulty, restoring (the bound), settling, steady, final, done.

use std::time::Duration;

use super::{FINAL_PHASE_LIMIT, Phase, STEADY_MARGIN, Violation, World};
use crate::sim::clock::ms;
use crate::sim::invariants;

impl World {
    /// Every pool of every initiator has `count` idle tunnels, and every responder is up.
    pub fn pools_full(&self) -> bool {
        self.responders.iter().all(|r| r.machine.is_some())
            && self.initiators.iter().all(|slot| {
                slot.view.pools.iter().all(|((cluster, host), pool)| {
                    !pool.retired && slot.view.idle(cluster, *host) == u64::from(pool.count)
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

    /// Moves the run to its next phase when the current one is over; fails when a phase overruns its bound.
    pub(super) fn advance_phase(&mut self, now: Duration) -> Result<(), Violation> {
        match self.phase {
            Phase::Faulty => {
                let quiet = now >= self.quiet_at
                    && self.active_faults == 0
                    && self.fault_events.is_empty()
                    && self.responders.iter().all(|r| r.machine.is_some())
                    && !self.net.any_fault_active(now);
                if quiet {
                    let bound = crate::sim::restore_bound(&self.scenario);
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
                let quiescent = if self.pools_full() {
                    invariants::quiescent(self)
                } else {
                    Err("pools not full".to_owned())
                };
                if quiescent.is_ok() {
                    let t = &self.scenario.timing;
                    let until = now + t.idle_timeout + STEADY_MARGIN;
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
                let quiescent = if claims_done && self.pools_full() {
                    invariants::quiescent(self)
                } else {
                    Err("final claims or pools not done".to_owned())
                };
                if quiescent.is_ok() {
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
}
