//! The invariants checked after every step (and the end-of-run quiescence check).
//!
//! Per machine:
//! - `counts().is_balanced()` (`opened == closed + connecting + handshaking + idle + in_use`);
//! - `counts()` equals the counts of the simulation's own view (connections it dialled or accepted, in the
//!   phase the events and its own reports put them in);
//! - `stats()` lists exactly the names the view expects, each of the expected kind and value: gauges
//!   recomputed from the view's connections and backoff state, counters from the event log;
//! - no counter ever decreases (per responder generation: a restarted responder starts from zero);
//! - initiator pools: at most `count` tunnels being established, and idle + establishing ≤ `count`.
//!
//! Per run: every unanswered claim is younger than `claim_timeout` + [`CLAIM_SLACK`]. Data integrity,
//! tenant isolation and claim targets are checked where the bytes and events arrive ([`super::apps`],
//! [`super::world`]).

use std::collections::BTreeMap;

use revtun_core::stats::{StatKind, StatsSnapshot};

use super::clock::ms;
use super::net::End;
use super::view::{ExpectedStats, IPhase};
use super::world::{CLAIM_SLACK, Violation, World};

/// Checks every invariant. Statistics snapshots (the expensive part) are compared for every machine when
/// `full`, else for the machines that are dirty: those that emitted an event or a command, or whose view
/// changed (a first `RPING`, a backoff timer, a claim, a close the simulation reported) since the last
/// check. Every other input (keepalive bytes, transmits) cannot move a statistic; if a machine moved one
/// anyway, the next check sees it.
pub fn check_all(world: &mut World, full: bool) -> Result<(), Violation> {
    let now = world.clock.now();
    for (i, slot) in world.initiators.iter_mut().enumerate() {
        let counts = slot.machine.counts();
        if !counts.is_balanced() {
            return Err(format!("initiator {i}: counts not balanced: {counts:?}"));
        }
        let expected = slot.view.counts();
        if counts != expected {
            return Err(format!(
                "initiator {i}: counts() = {counts:?}, the simulation sees {expected:?}"
            ));
        }
        if full || slot.dirty {
            slot.dirty = false;
            check_pools(i, &slot.view)?;
            for host in slot.view.pools.keys().map(|(_, h)| *h) {
                let (got, want) = (slot.machine.host_counts(host), slot.view.host_counts(host));
                if got != want {
                    return Err(format!(
                        "initiator {i}: host_counts({host}) = {got:?}, the simulation sees {want:?}"
                    ));
                }
            }
            let stats = slot.machine.stats();
            compare(
                &format!("initiator {i}"),
                &stats,
                &slot.view.expected_stats(),
            )?;
            monotone(&format!("initiator {i}"), &stats, &mut slot.last_counters)?;
        }
    }
    for (r, slot) in world.responders.iter_mut().enumerate() {
        let Some(machine) = &slot.machine else {
            continue;
        };
        let counts = machine.counts();
        if !counts.is_balanced() {
            return Err(format!("responder {r}: counts not balanced: {counts:?}"));
        }
        let expected = slot.view.counts();
        if counts != expected {
            return Err(format!(
                "responder {r}: counts() = {counts:?}, the simulation sees {expected:?}"
            ));
        }
        if full || slot.dirty {
            slot.dirty = false;
            let (got, want) = (machine.nodes(), slot.view.nodes());
            if got != want {
                return Err(format!(
                    "responder {r}: nodes() = {got:?}, the simulation sees {want:?}"
                ));
            }
            let pending = machine.pending_handshakes();
            if pending != slot.view.pending_handshakes() {
                return Err(format!(
                    "responder {r}: pending_handshakes() = {pending}, the simulation sees {}",
                    slot.view.pending_handshakes()
                ));
            }
            let stats = machine.stats();
            compare(
                &format!("responder {r}"),
                &stats,
                &slot.view.expected_stats(),
            )?;
            monotone(&format!("responder {r}"), &stats, &mut slot.last_counters)?;
        }
        let limit = world.scenario.timing.claim_timeout + CLAIM_SLACK;
        if let Some((id, claim)) = slot
            .view
            .claims
            .iter()
            .find(|(_, c)| now.saturating_sub(c.issued) > limit)
        {
            return Err(format!(
                "responder {r}: {id:?} for {:?} unanswered {} after it was made (claim_timeout {})",
                claim.target,
                ms(now - claim.issued),
                ms(world.scenario.timing.claim_timeout)
            ));
        }
    }
    Ok(())
}

/// Initiator pools are kept topped up, at once and never beyond `count`: a pool never has more than
/// `count` idle plus establishing tunnels, and a pool that is not backing off has exactly `count` (a tunnel
/// that was claimed, lost or failed is replaced in the same call, with no maintenance tick). A host listed
/// in two target clusters has dials the view cannot attribute yet: it is checked as a whole (the sum of its
/// pools), and only for "exactly" when none of its pools is backing off.
fn check_pools(i: usize, view: &super::view::InitiatorView) -> Result<(), Violation> {
    use std::net::SocketAddr;
    // (establishing, idle, unattributed) per host and per attributed pool.
    let mut per_host: BTreeMap<SocketAddr, (u64, u64, u64)> = BTreeMap::new();
    let mut per_pool: BTreeMap<(&str, SocketAddr), (u64, u64)> = BTreeMap::new();
    for c in view.conns.values() {
        let establishing = u64::from(matches!(c.phase, IPhase::Dialling | IPhase::Handshaking));
        let idle = u64::from(c.phase == IPhase::Idle);
        let h = per_host.entry(c.host).or_default();
        h.0 += establishing;
        h.1 += idle;
        match &c.cluster {
            Some(cluster) => {
                let p = per_pool.entry((cluster.as_str(), c.host)).or_default();
                p.0 += establishing;
                p.1 += idle;
            }
            None => h.2 += 1,
        }
    }
    for ((cluster, host), pool) in &view.pools {
        let (establishing, idle) = per_pool
            .get(&(cluster.as_str(), *host))
            .copied()
            .unwrap_or_default();
        // A removed host's pool keeps only its in-use tunnels.
        let count = if pool.retired {
            0
        } else {
            u64::from(pool.count)
        };
        let unattributed = per_host.get(host).map_or(0, |h| h.2);
        let short =
            establishing + idle < count && unattributed == 0 && pool.backoff_until.is_none();
        if establishing + idle > count || short {
            return Err(format!(
                "initiator {i}: pool {cluster} {host} has {establishing} tunnels being established and {idle} \
                 idle, count is {count}{}",
                if short {
                    " and it is not backing off"
                } else {
                    ""
                }
            ));
        }
    }
    for (host, (establishing, idle, unattributed)) in per_host {
        let pools: Vec<&super::view::PoolView> = view
            .pools
            .iter()
            .filter(|((_, h), _)| *h == host)
            .map(|(_, p)| p)
            .collect();
        let count: u64 = pools
            .iter()
            .filter(|p| !p.retired)
            .map(|p| u64::from(p.count))
            .sum();
        let short = establishing + idle < count
            && unattributed > 0
            && pools.iter().all(|p| p.backoff_until.is_none());
        if establishing + idle > count || short {
            return Err(format!(
                "initiator {i}: host {host} has {establishing} tunnels being established and {idle} idle, its \
                 pools' counts add up to {count}"
            ));
        }
    }
    Ok(())
}

/// The machine's snapshot lists exactly the expected names, with the expected kinds and values (one merge
/// walk over the two sorted lists).
fn compare(
    who: &str,
    stats: &StatsSnapshot,
    expected: &ExpectedStats<'_>,
) -> Result<(), Violation> {
    let mut problems = Vec::new();
    let mut want = expected.values.iter().peekable();
    for (name, kind, value) in stats.iter_with_kind() {
        while let Some((missing, e)) = want.next_if(|(n, _)| n.as_ref() < name) {
            problems.push(format!("missing {missing} (expected {})", e.lo));
        }
        match want.next_if(|(n, _)| n.as_ref() == name) {
            None => problems.push(format!("unexpected {name} = {value}")),
            Some((_, e)) if e.kind != kind => {
                problems.push(format!("{name} is a {kind:?}, expected a {:?}", e.kind));
            }
            Some((_, e)) if value < e.lo || value > e.hi => {
                if e.lo == e.hi {
                    problems.push(format!("{name} = {value}, expected {}", e.lo));
                } else {
                    problems.push(format!("{name} = {value}, expected {}..={}", e.lo, e.hi));
                }
            }
            Some(_) => {}
        }
    }
    for (missing, e) in want {
        problems.push(format!("missing {missing} (expected {})", e.lo));
    }
    for (names, total) in &expected.sums {
        let sum: u64 = names.iter().filter_map(|n| stats.get(n)).sum();
        if sum != *total {
            problems.push(format!("{names:?} add up to {sum}, expected {total}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{who}: statistics differ from the simulation's view:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// No counter decreases between two checks. `last` holds the counters of the previous check, sorted by
/// name; it is updated in place while the names stay the same.
fn monotone(
    who: &str,
    stats: &StatsSnapshot,
    last: &mut Vec<(String, u64)>,
) -> Result<(), Violation> {
    let mut counters = stats
        .iter_with_kind()
        .filter(|&(_, kind, _)| kind == StatKind::Counter)
        .peekable();
    let mut same_names = true;
    for (name, before) in last.iter() {
        while counters.next_if(|&(n, _, _)| n < name.as_str()).is_some() {
            same_names = false;
        }
        match counters.next_if(|&(n, _, _)| n == name.as_str()) {
            Some((_, _, now)) if now < *before => {
                return Err(format!(
                    "{who}: counter {name} went down from {before} to {now}"
                ));
            }
            Some(_) => {}
            // A counter may disappear only where the view expects it to (compare() ran first): a removed
            // host's names go once its last tunnel ended, and come back from 0 if it is added again.
            None => same_names = false,
        }
    }
    if counters.next().is_some() {
        same_names = false;
    }
    let fresh = stats
        .iter_with_kind()
        .filter(|&(_, kind, _)| kind == StatKind::Counter);
    if same_names {
        for ((_, value), (_, _, now)) in last.iter_mut().zip(fresh) {
            *value = now;
        }
    } else {
        *last = fresh.map(|(n, _, v)| (n.to_owned(), v)).collect();
    }
    Ok(())
}

/// At the end of a run, with every pool full and no claim left: every tunnel is whole on both sides. Each
/// idle initiator tunnel's pipe is a registered, idle tunnel of the current generation of its responder,
/// and the reverse; nothing is half-open, handshaking or in use.
pub fn quiescent(world: &World) -> Result<(), Violation> {
    for (i, slot) in world.initiators.iter().enumerate() {
        for (conn, c) in &slot.view.conns {
            let pipe = c
                .pipe
                .filter(|_| c.phase == IPhase::Idle)
                .ok_or_else(|| format!("initiator {i}: {conn} is {:?} at the end", c.phase))?;
            let info = world
                .pipes
                .get(&pipe)
                .ok_or_else(|| format!("initiator {i}: {conn}: {pipe:?} is gone"))?;
            let r = &world.responders[info.responder];
            let whole = r.generation == info.generation
                && world.net.is_open(pipe, End::Responder)
                && r.view
                    .conns
                    .get(&info.r_conn)
                    .is_some_and(|rc| rc.registered.is_some() && !rc.in_use);
            if !whole {
                return Err(format!(
                    "initiator {i}: idle {conn} is half-open: responder {} does not hold it as an idle tunnel",
                    info.responder
                ));
            }
        }
    }
    for (r, slot) in world.responders.iter().enumerate() {
        for (conn, c) in &slot.view.conns {
            let held = c.registered.is_some()
                && !c.in_use
                && world.pipes.get(&c.pipe).is_some_and(|info| {
                    world.initiators[info.initiator]
                        .view
                        .conns
                        .get(&info.i_conn)
                        .is_some_and(|ic| ic.phase == IPhase::Idle)
                });
            if !held {
                return Err(format!(
                    "responder {r}: {conn} ({:?}) is not an idle tunnel of a live initiator at the end",
                    c.registered
                ));
            }
        }
        if !slot.view.claims.is_empty() {
            return Err(format!(
                "responder {r}: claims left at the end: {:?}",
                slot.view.claims
            ));
        }
    }
    if !world.legs.is_empty() {
        return Err(format!(
            "data legs left at the end: {:?}",
            world.legs.keys()
        ));
    }
    Ok(())
}
