//! A self-check for the fuzz targets: recomputes every derived structure from the connections and
//! claims and compares it with what the `set_state` chokepoint maintained.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Responder;
use super::pool::Pool;
use super::timers::TimerKey;
use super::tunnel::ConnState;
use crate::command::ConnId;
use crate::stats::TunnelCounts;

impl Responder {
    /// Recomputes the tunnel counts, the pending-handshake index, the pool (idle queues, gauges, node
    /// summaries), the timer table and the claim expiries from the connections and claims, and compares
    /// them with the incrementally maintained ones. Also checks `opened == closed + live`.
    ///
    /// # Errors
    /// A description of the first mismatch (a bug in the responder).
    pub fn audit(&self) -> Result<(), String> {
        let mut counts = TunnelCounts {
            opened: self.counts.opened,
            closed: self.counts.closed,
            ..TunnelCounts::default()
        };
        let mut pending = BTreeSet::new();
        let mut by_ip: BTreeMap<IpAddr, BTreeSet<ConnId>> = BTreeMap::new();
        let mut pool = Pool::default();
        let mut armed = 0;
        for (&id, conn) in &self.conns {
            match conn.state() {
                ConnState::Handshaking => counts.handshaking += 1,
                ConnState::Idle => counts.idle += 1,
                ConnState::InUse => counts.in_use += 1,
            }
            if let Some(peer) = conn.handshake_peer() {
                pending.insert(id);
                by_ip.entry(peer.ip()).or_default().insert(id);
            }
            if let Some((m, slot)) = conn.slot() {
                if m.key.tenant != self.scope(&m.tenant) {
                    return Err(format!(
                        "{id}: scope {:?} for tenant {:?}",
                        m.key.tenant, m.tenant
                    ));
                }
                pool.transition(id, m, None, Some(slot));
            }
            let timer = conn.timer().map(|(_, at)| at);
            armed += usize::from(timer.is_some());
            if self.timers.get(TimerKey::Conn(id)) != timer {
                return Err(format!(
                    "{id}: timer {:?} armed, {timer:?} due",
                    self.timers.get(TimerKey::Conn(id))
                ));
            }
        }
        if counts != self.counts {
            return Err(format!("counts {:?}, recomputed {counts:?}", self.counts));
        }
        if !counts.is_balanced() {
            return Err(format!("unbalanced counts {counts:?}"));
        }
        if pending != self.pending || by_ip != self.pending_by_ip {
            return Err("pending-handshake index out of date".to_owned());
        }
        if self.pending.len() > self.config.max_pending_handshakes
            || self
                .pending_by_ip
                .values()
                .any(|s| s.len() > self.config.max_pending_handshakes_per_ip)
        {
            return Err("pending-handshake cap exceeded".to_owned());
        }
        let nodes: Vec<_> = self.pool.node_gauges().collect();
        if nodes != pool.node_gauges().collect::<Vec<_>>() {
            return Err(format!("node gauges {nodes:?} out of date"));
        }
        let clusters: Vec<_> = self.pool.cluster_gauges().collect();
        if clusters != pool.cluster_gauges().collect::<Vec<_>>() {
            return Err(format!("cluster gauges {clusters:?} out of date"));
        }
        for isolation in [false, true] {
            if self.pool.summaries(isolation) != pool.summaries(isolation) {
                return Err("node summaries out of date".to_owned());
            }
        }
        for (key, _) in pool.node_gauges() {
            if self.pool.idle_of(key) != pool.idle_of(key) {
                return Err(format!("idle queue of {key:?} out of date"));
            }
        }
        for (id, claim) in self.claims.iter() {
            armed += 1;
            if self.timers.get(TimerKey::Claim(id)) != Some(claim.deadline) {
                return Err(format!("{id}: expiry not armed"));
            }
        }
        if armed != self.timers.len() {
            return Err(format!(
                "{} timers armed, {armed} expected",
                self.timers.len()
            ));
        }
        Ok(())
    }
}
