//! The deterministic network simulation of issue 3 (see `revtun_tests::sim` for the model and the
//! invariants).
//!
//! - `REVTUN_SIM_SEEDS=<n>`: how many random seeds to run (default 1000), split over the two
//!   `random_seeds_*` tests so the harness runs them on two threads.
//! - `REVTUN_SIM_SEED=<n>`: run only that seed (both `random_seeds_*` tests then replay it once) and print
//!   its report; a failing seed prints this line.
//! - `REVTUN_SIM_FIRST_SEED=<n>`: start the seed range there (default 0).

use std::time::Duration;

use revtun_tests::sim::faults::{Fault, FaultKind, FaultSchedule};
use revtun_tests::sim::{RunReport, Scenario, SimFailure, run_scenario, run_seed};

const DEFAULT_SEEDS: u64 = 1000;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?}: {e}")),
    )
}

fn ok(result: Result<RunReport, SimFailure>) -> RunReport {
    result.unwrap_or_else(|failure| panic!("{failure}"))
}

/// Runs every seed `first + k` with `k % parts == part`; panics with the first failure (its seed and the
/// replay command).
fn run_seeds(part: u64, parts: u64) {
    if let Some(seed) = env_u64("REVTUN_SIM_SEED") {
        let report = ok(run_seed(seed));
        eprintln!("{report:#?}");
        return;
    }
    let seeds = env_u64("REVTUN_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first = env_u64("REVTUN_SIM_FIRST_SEED").unwrap_or(0);
    let mut total = RunReport::default();
    let mut runs = 0u64;
    let mut max_restore = Duration::ZERO;
    for seed in (first..first + seeds).filter(|s| s % parts == part) {
        let report = ok(run_seed(seed));
        runs += 1;
        total.steps += report.steps;
        total.claims += report.claims;
        total.handed_out += report.handed_out;
        total.expired += report.expired;
        total.legs_complete += report.legs_complete;
        total.legs_aborted += report.legs_aborted;
        total.claim_marker_legs += report.claim_marker_legs;
        total.envoy_legs += report.envoy_legs;
        total.faults += report.faults;
        total.restarts += report.restarts;
        total.registered += report.registered;
        total.sim_time += report.sim_time;
        max_restore = max_restore.max(report.restored_after);
        for (kind, n) in report.coverage {
            *total.coverage.entry(kind).or_default() += n;
        }
    }
    eprintln!(
        "sim part {part}/{parts}: {runs} seeds, {} steps, {:?} simulated, {} faults ({} restarts), {} tunnels \
         registered, {} claims ({} handed out, {} expired), {} legs complete ({} claim-marker, {} Envoy), {} \
         aborted by faults, slowest restore {max_restore:?}",
        total.steps,
        total.sim_time,
        total.faults,
        total.restarts,
        total.registered,
        total.claims,
        total.handed_out,
        total.expired,
        total.legs_complete,
        total.claim_marker_legs,
        total.envoy_legs,
        total.legs_aborted,
    );
    eprintln!("sim part {part}/{parts}: events {:?}", total.coverage);
    if runs > 20 {
        assert!(total.legs_complete > runs, "data must flow in most runs");
        assert!(
            total.claim_marker_legs > 0 && total.envoy_legs > 0,
            "both data modes"
        );
        assert!(
            total.restarts > 0 && total.legs_aborted > 0,
            "faults must bite"
        );
    }
}

#[test]
fn random_seeds_even() {
    run_seeds(0, 2);
}

#[test]
fn random_seeds_odd() {
    run_seeds(1, 2);
}

#[test]
fn same_seed_same_trace() {
    for seed in [3, 17, 123_456, u64::MAX - 1] {
        let a = ok(run_seed(seed));
        let b = ok(run_seed(seed));
        assert_eq!(a, b, "seed {seed} ran differently twice");
        assert!(a.trace_lines > 50, "a run logs its events");
    }
    let hashes: std::collections::BTreeSet<u64> =
        (0..8).map(|s| ok(run_seed(s)).trace_hash).collect();
    assert_eq!(hashes.len(), 8, "different seeds give different traces");
}

fn scenario_with(mut scenario: Scenario, faults: Vec<Fault>) -> Scenario {
    scenario.claims_until = faults
        .iter()
        .map(Fault::end)
        .max()
        .unwrap_or_default()
        .max(scenario.claims_until);
    scenario.faults = FaultSchedule::from_faults(faults);
    scenario
}

#[test]
fn envoy_mode_carries_data() {
    // The responder does not support the claim marker: Envoy mode, payloads never start with `R`.
    let report = ok(run_scenario(Scenario::basic(11, 2, false, true)));
    assert!(report.envoy_legs >= 5, "{report:#?}");
    assert_eq!(report.claim_marker_legs, 0);
    assert_eq!(report.legs_aborted, 0);
}

#[test]
fn claim_marker_mode_carries_marker_like_payloads() {
    let mut scenario = Scenario::basic(12, 2, true, true);
    scenario.marker_payloads_per_mille = 1000;
    let report = ok(run_scenario(scenario));
    assert!(report.claim_marker_legs >= 5, "{report:#?}");
    assert_eq!(report.envoy_legs, 0);
    assert_eq!(report.legs_aborted, 0);
}

#[test]
fn responder_restart_restores_the_pool() {
    let scenario = scenario_with(
        Scenario::basic(13, 3, true, true),
        vec![Fault {
            at: Duration::from_millis(700),
            duration: Duration::from_millis(600),
            kind: FaultKind::Restart { responder: 0 },
        }],
    );
    let report = ok(run_scenario(scenario));
    assert_eq!(report.restarts, 1);
    // Three before the restart, three after (at least).
    assert!(report.registered >= 6, "{report:#?}");
}

#[test]
fn partition_heals_and_the_pool_is_restored() {
    // Longer than the idle timeout and the keepalive death: both sides give up on their tunnels.
    let mut scenario = Scenario::basic(14, 2, true, false);
    scenario.responders.push(scenario.responders[0].clone());
    scenario.responders[1].addr = revtun_tests::sim::scenario::responder_addr(1);
    scenario.initiators[0].targets[0].hosts = vec![0, 1];
    let scenario = scenario_with(
        scenario,
        vec![Fault {
            at: Duration::from_millis(500),
            duration: Duration::from_millis(2_500),
            kind: FaultKind::Partition {
                initiator: 0,
                responder: 0,
            },
        }],
    );
    let report = ok(run_scenario(scenario));
    assert!(report.registered >= 6, "{report:#?}");
}

#[test]
fn stalls_and_slow_delivery_are_survived() {
    let scenario = scenario_with(
        Scenario::basic(15, 2, true, true),
        vec![
            Fault {
                at: Duration::from_millis(300),
                duration: Duration::from_millis(900),
                kind: FaultKind::Slow {
                    initiator: 0,
                    responder: 0,
                },
            },
            Fault {
                at: Duration::from_millis(800),
                duration: Duration::from_millis(1_500),
                kind: FaultKind::Stall,
            },
            Fault {
                at: Duration::from_millis(900),
                duration: Duration::ZERO,
                kind: FaultKind::Reset,
            },
        ],
    );
    ok(run_scenario(scenario));
}

#[test]
fn tenants_never_cross() {
    // Two initiators in two tenants share a cluster id; claims name the cluster in either tenant.
    let seeds: Vec<u64> = (0..400)
        .filter(|&s| Scenario::random(s).tenant_isolation)
        .take(25)
        .collect();
    assert_eq!(seeds.len(), 25);
    for seed in seeds {
        ok(run_seed(seed));
    }
}

#[test]
fn host_set_changes_retire_and_restore_pools() {
    // One target cluster on responders 0 and 1; it moves to 1 and 2, later to no host at all, and back.
    let mut scenario = Scenario::basic(16, 2, true, true);
    for r in 1..3 {
        let mut spec = scenario.responders[0].clone();
        spec.addr = revtun_tests::sim::scenario::responder_addr(r);
        scenario.responders.push(spec);
    }
    scenario.initiators[0].targets[0].hosts = vec![0, 1];
    let scenario = scenario_with(
        scenario,
        vec![
            Fault {
                at: Duration::from_millis(500),
                duration: Duration::from_millis(800),
                kind: FaultKind::Rehome {
                    initiator: 0,
                    hosts: 0b110,
                },
            },
            Fault {
                at: Duration::from_millis(1_600),
                duration: Duration::from_millis(300),
                kind: FaultKind::Rehome {
                    initiator: 0,
                    hosts: 0,
                },
            },
        ],
    );
    let report = ok(run_scenario(scenario));
    let seen = |kind: &str| report.coverage.get(kind).copied().unwrap_or(0);
    assert!(seen("i.TunnelLost.HostRemoved") >= 4, "{report:#?}");
    assert_eq!(seen("i.CannotConnect"), 1, "no hosts is one cannot_connect");
}
