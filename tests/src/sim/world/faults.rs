//! Applying the fault schedule: resets, responder restarts, partitions, stalls, slow windows and host-set
//! changes.

use std::net::SocketAddr;
use std::time::Duration;

use revtun_core::responder::Responder;

use super::{Violation, World};
use crate::sim::apps::Outcome;
use crate::sim::clock::ms;
use crate::sim::faults::FaultKind;
use crate::sim::net::{End, PipeId};
use crate::sim::scenario::responder_addr;
use crate::sim::view::{Hosts, ResponderView};

impl World {
    /// Starts and heals the faults due at `now`.
    pub(super) fn run_faults(&mut self, now: Duration) -> Result<(), Violation> {
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
                (FaultKind::Rehome { initiator, hosts }, start) => {
                    if start {
                        self.active_faults += 1;
                    } else {
                        self.active_faults -= 1;
                    }
                    self.rehome(initiator, start.then_some(hosts))?;
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

    /// Gives initiator `i`'s only target cluster the responders of the bit mask `hosts`, or its original
    /// hosts for `None`, in the view first and then in the machine (`set_hosts`); removed pools fold once
    /// empty.
    pub(super) fn rehome(&mut self, i: usize, hosts: Option<u8>) -> Result<(), Violation> {
        let spec = &self.scenario.initiators[i];
        let Some(target) = spec.targets.first() else {
            return Ok(());
        };
        let name = target.name.clone();
        let responders: Vec<usize> = match hosts {
            Some(mask) => (0..self.responders.len())
                .filter(|r| mask & (1 << r) != 0)
                .collect(),
            None => target.hosts.clone(),
        };
        let hosts: Hosts = responders.iter().map(|&r| (responder_addr(r), r)).collect();
        let addrs: Vec<SocketAddr> = hosts.iter().map(|(a, _)| *a).collect();
        self.log(format!("i{i} set_hosts {name} {addrs:?}"));
        self.initiators[i].view.set_hosts(&name, &hosts);
        self.initiators[i].dirty = true;
        let now = self.clock.instant();
        self.initiators[i]
            .machine
            .set_hosts(&name, &addrs, now)
            .map_err(|e| format!("initiator {i}: set_hosts: {e}"))?;
        self.drain_initiator(i)?;
        self.initiators[i].view.fold_finished();
        Ok(())
    }

    /// Resets `pipe`: both ends see it closed now.
    pub(super) fn reset_pipe(&mut self, pipe: PipeId, why: &'static str) -> Result<(), Violation> {
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
    pub(super) fn restart(&mut self, r: usize, up_at: Duration) -> Result<(), Violation> {
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

    /// Brings responders whose downtime is over back up, as fresh machines with fresh seeds.
    pub(super) fn run_restarts(&mut self, now: Duration) -> Result<(), Violation> {
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
}
