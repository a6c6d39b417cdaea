//! The front doors' claims: random ones during the faulty phase (some cancelled), final ones that must
//! succeed.

use std::time::Duration;

use revtun_core::responder::ClaimId;

use super::{Phase, Violation, World};
use crate::sim::scenario::TENANTS;
use crate::sim::view::ClaimView;

impl World {
    /// Makes the random claims due at `now` (faulty phase), the final claims due, and the cancels due.
    pub(super) fn run_claims(&mut self, now: Duration) -> Result<(), Violation> {
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
    pub(super) fn random_claim_target(&mut self, r: usize) -> (String, Option<String>) {
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
    pub(super) fn claim(
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

    /// Final claims: for each initiator, `final_claims` claims for its node (or its cluster) on one of
    /// its responders, in its tenant, 40 ms apart.
    pub(super) fn schedule_final_claims(&mut self, now: Duration) {
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
