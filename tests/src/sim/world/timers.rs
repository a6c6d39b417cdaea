//! Machine timers (`handle_timeout` when `poll_timeout` is due, with the spin check) and spurious wakes.

use std::time::Duration;

use revtun_core::responder::Responder;
use revtun_core::stats::StatsSnapshot;

use super::{Violation, World};
use crate::sim::clock::ms;

impl World {
    /// Every machine whose `poll_timeout` is due gets `handle_timeout(now)` and is drained; its next
    /// `poll_timeout` must be later than `now`.
    pub(super) fn run_timers(&mut self, now: Duration) -> Result<(), Violation> {
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
    pub(super) fn run_spurious(&mut self, now: Duration) -> Result<(), Violation> {
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
}
