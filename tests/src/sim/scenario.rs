//! What a run simulates: the topology, the machines' settings, the fault schedule and the claim load,
//! all drawn from the seed ([`Scenario::random`]) or written out by a named test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, RequestPolicy};
use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::keepalive::KeepaliveConfig;
use revtun_core::responder::ResponderConfig;

use super::faults::FaultSchedule;
use super::rng::SimRng;

/// The two tenants of runs with tenant isolation.
pub const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];

/// Protocol timers shared by every machine of a run (short, so a run covers many cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Responder `ping_interval`.
    pub ping_interval: Duration,
    /// Responder `ping_failure_threshold`.
    pub failure_threshold: u32,
    /// Initiator `connect_timeout`.
    pub connect_timeout: Duration,
    /// Initiator and responder `handshake_timeout`.
    pub handshake_timeout: Duration,
    /// Initiator `idle_timeout`: 3 jittered ping intervals plus a margin for latency.
    pub idle_timeout: Duration,
    /// Responder `claim_timeout`.
    pub claim_timeout: Duration,
    /// Initiator `max_reconnect_backoff`.
    pub max_backoff: Duration,
    /// Upper bound of a pipe's one-way latency. Kept below `ping_interval / 5` so that a healthy echo
    /// (two latencies plus chunk spacing) always beats the responder's echo deadline (`ping_interval / 2`).
    pub max_latency: Duration,
}

impl Timing {
    /// Timers for a ping interval of `ping_ms` milliseconds and a backoff cap of `backoff_ms`.
    pub fn new(ping_ms: u64, failure_threshold: u32, backoff_ms: u64) -> Self {
        let ping_interval = Duration::from_millis(ping_ms);
        // Longest healthy gap between two RPINGs at the initiator: a jittered interval (< 1.15×) plus the
        // latency spread; three of them plus a margin.
        let idle_timeout = ping_interval.mul_f64(3.0 * 1.15) + Duration::from_millis(150);
        let max_latency = (ping_interval / 5)
            .saturating_sub(Duration::from_millis(2))
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        Self {
            ping_interval,
            failure_threshold,
            connect_timeout: Duration::from_millis(1_000),
            handshake_timeout: Duration::from_millis(1_000),
            idle_timeout,
            claim_timeout: Duration::from_millis(1_000),
            max_backoff: Duration::from_millis(backoff_ms),
            max_latency,
        }
    }
}

/// One responder of the run.
#[derive(Clone, Debug)]
pub struct ResponderSpec {
    /// Where initiators dial it: `10.0.0.<n>:9000`.
    pub addr: SocketAddr,
    /// Supports the `RDATA` claim marker.
    pub claim_marker: bool,
    /// `max_tunnels_per_node`, if any.
    pub max_tunnels_per_node: Option<u32>,
    /// `retry_after` of its 429s.
    pub retry_after: Option<Duration>,
}

/// One target cluster of an initiator.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// The target cluster's name.
    pub name: String,
    /// Idle tunnels per host.
    pub count: u32,
    /// The responders (indexes) it resolves to, sorted.
    pub hosts: Vec<usize>,
}

/// One initiator of the run.
#[derive(Clone, Debug)]
pub struct InitiatorSpec {
    /// Its node id (distinct).
    pub node: String,
    /// Its cluster id (shared by some initiators, so cluster claims round-robin).
    pub cluster: String,
    /// Its tenant id.
    pub tenant: String,
    /// Offers the claim marker.
    pub offer_claim_marker: bool,
    /// Its target clusters.
    pub targets: Vec<TargetSpec>,
    /// The address its connections come from (port = per connection).
    pub ip: IpAddr,
}

impl InitiatorSpec {
    /// Every responder any of its targets resolves to, sorted, without duplicates.
    pub fn responders(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self
            .targets
            .iter()
            .flat_map(|t| t.hosts.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// How many claims the front doors make while faults happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimLoad {
    /// Mean gap between two claims on one responder (uniform in `[gap/4, gap·7/4]`).
    pub mean_gap: Duration,
    /// Final claims per initiator after the pools are restored (each must succeed).
    pub final_claims: u32,
    /// Final claims name the node (never its cluster): with a per-node cap that leaves no room for a tunnel
    /// in use, two claims on one node could wait for a replacement that is refused with 429.
    pub final_by_node_only: bool,
}

/// Everything a run simulates.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed everything else derives from.
    pub seed: u64,
    /// Protocol timers.
    pub timing: Timing,
    /// Tenant isolation on every responder.
    pub tenant_isolation: bool,
    /// The responders.
    pub responders: Vec<ResponderSpec>,
    /// The initiators.
    pub initiators: Vec<InitiatorSpec>,
    /// The faults.
    pub faults: FaultSchedule,
    /// Claims issued from the start until the last fault heals (at least `claims_until`).
    pub claims_until: Duration,
    /// The claim load.
    pub load: ClaimLoad,
    /// Payloads in claim-marker mode start with `RPING`/`RDATA` (or a prefix of them) this often (per mille).
    pub marker_payloads_per_mille: u64,
    /// Upgrade mode on both sides (`101 Switching Protocols`), with a custom request path and method.
    pub upgrade: bool,
    /// During the faulty phase, this many dials per mille fail locally (`ConnectFailure::LocalError`:
    /// `cannot_connect`, backoff).
    pub local_dial_errors_per_mille: u64,
}

/// The address of responder `index`.
pub fn responder_addr(index: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, index as u8 + 1)), 9000)
}

impl Scenario {
    /// A scenario drawn from `seed`: 1–3 responders, 1–4 initiators with 1–2 targets each (count 1–4),
    /// both data modes, sometimes tenant isolation with two tenants, sometimes a per-node cap with
    /// `retry-after`, sometimes upgrade mode or local dial errors, and 0–6 faults in the first 0.3–3 s.
    pub fn random(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5eed_5eed_0000_0001);
        let timing = Timing::new(
            rng.range(100, 500),
            rng.range(1, 3) as u32,
            rng.range(2_000, 4_000),
        );
        let tenant_isolation = rng.chance(1, 3);
        let n_responders = rng.range(1, 3) as usize;
        let n_initiators = rng.range(1, 4) as usize;
        let capped = rng.chance(1, 4);
        let mut responders: Vec<ResponderSpec> = (0..n_responders)
            .map(|i| ResponderSpec {
                addr: responder_addr(i),
                claim_marker: rng.chance(2, 3),
                max_tunnels_per_node: None,
                retry_after: capped.then(|| rng.millis(500, 1_500)),
            })
            .collect();
        let clusters = ["edge-east", "edge-west"];
        let initiators: Vec<InitiatorSpec> = (0..n_initiators)
            .map(|i| {
                let n_targets = rng.range(1, 2) as usize;
                let targets = (0..n_targets)
                    .map(|t| {
                        let mut hosts: Vec<usize> =
                            (0..n_responders).filter(|_| rng.chance(2, 3)).collect();
                        if hosts.is_empty() {
                            hosts.push(rng.index(n_responders));
                        }
                        // Small counts are the common case; 4 sometimes.
                        let count = [1, 1, 2, 2, 3, 4][rng.index(6)];
                        TargetSpec {
                            name: format!("upstream-{}", ["a", "b"][t]),
                            count,
                            hosts,
                        }
                    })
                    .collect();
                InitiatorSpec {
                    node: format!("node-{i}"),
                    cluster: clusters[rng.index(clusters.len())].to_owned(),
                    tenant: if tenant_isolation {
                        TENANTS[rng.index(2)].to_owned()
                    } else if rng.chance(1, 2) {
                        String::new()
                    } else {
                        TENANTS[0].to_owned()
                    },
                    offer_claim_marker: rng.chance(2, 3),
                    targets,
                    ip: IpAddr::V4(Ipv4Addr::new(192, 168, i as u8, 1)),
                }
            })
            .collect();
        let mut tight = false;
        if capped {
            // The cap leaves room for every pool of a node on that responder plus 0–2 tunnels in use or being
            // replaced: a claimed tunnel's replacement (or a reconnecting node's, while its stale tunnels
            // linger) is then refused with 429 and `retry-after`.
            for (r, spec) in responders.iter_mut().enumerate() {
                let need = max_node_tunnels(&initiators, r);
                let extra = rng.range(0, 2) as u32;
                tight |= extra == 0;
                spec.max_tunnels_per_node = Some((need + extra).max(1));
            }
        }
        let mut scenario =
            Self::random_rest(seed, rng, timing, tenant_isolation, responders, initiators);
        if tight {
            scenario.load.final_claims = 1;
            scenario.load.final_by_node_only = true;
        }
        scenario
    }

    fn random_rest(
        seed: u64,
        mut rng: SimRng,
        timing: Timing,
        tenant_isolation: bool,
        responders: Vec<ResponderSpec>,
        initiators: Vec<InitiatorSpec>,
    ) -> Self {
        let pairs = pairs(&initiators);
        let phase_end = rng.millis(300, 3_000);
        let rehomable: Vec<usize> = (0..initiators.len())
            .filter(|&i| initiators[i].targets.len() == 1)
            .collect();
        let faults = FaultSchedule::random(
            &mut rng,
            6,
            Duration::from_millis(100),
            phase_end,
            &pairs,
            responders.len(),
            &rehomable,
        );
        Self {
            seed,
            timing,
            tenant_isolation,
            responders,
            initiators,
            claims_until: phase_end,
            faults,
            load: ClaimLoad {
                mean_gap: rng.millis(60, 300),
                final_claims: rng.range(1, 2) as u32,
                final_by_node_only: false,
            },
            marker_payloads_per_mille: 250,
            upgrade: rng.chance(1, 4),
            local_dial_errors_per_mille: if rng.chance(1, 4) { 50 } else { 0 },
        }
    }

    /// The smallest useful scenario: one responder, one initiator with one target of `count`, no faults.
    pub fn basic(seed: u64, count: u32, responder_claim_marker: bool, offer: bool) -> Self {
        Self {
            seed,
            timing: Timing::new(200, 3, 2_000),
            tenant_isolation: false,
            responders: vec![ResponderSpec {
                addr: responder_addr(0),
                claim_marker: responder_claim_marker,
                max_tunnels_per_node: None,
                retry_after: None,
            }],
            initiators: vec![InitiatorSpec {
                node: "node-0".to_owned(),
                cluster: "edge-east".to_owned(),
                tenant: String::new(),
                offer_claim_marker: offer,
                targets: vec![TargetSpec {
                    name: "upstream-a".to_owned(),
                    count,
                    hosts: vec![0],
                }],
                ip: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            }],
            faults: FaultSchedule::none(),
            claims_until: Duration::from_millis(1_500),
            load: ClaimLoad {
                mean_gap: Duration::from_millis(100),
                final_claims: 2,
                final_by_node_only: false,
            },
            marker_payloads_per_mille: 250,
            upgrade: false,
            local_dial_errors_per_mille: 0,
        }
    }

    /// The (initiator, responder) pairs that keep tunnels.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        pairs(&self.initiators)
    }

    /// The responder machine's config.
    pub fn responder_config(&self, index: usize) -> ResponderConfig {
        let spec = &self.responders[index];
        ResponderConfig {
            policy: RequestPolicy {
                tenant_isolation: self.tenant_isolation,
                claim_marker: spec.claim_marker,
                upgrade: self.upgrade,
                method: self.request_method().to_owned(),
                path: self.request_path().to_owned(),
                ..RequestPolicy::default()
            },
            keepalive: KeepaliveConfig {
                interval: self.timing.ping_interval,
                failure_threshold: self.timing.failure_threshold,
            },
            handshake_timeout: self.timing.handshake_timeout,
            claim_timeout: self.timing.claim_timeout,
            max_tunnels_per_node: spec.max_tunnels_per_node,
            retry_after: spec.retry_after,
            ..ResponderConfig::default()
        }
    }

    /// The initiator machine's config.
    pub fn initiator_config(&self, index: usize) -> InitiatorConfig {
        let spec = &self.initiators[index];
        let targets = spec
            .targets
            .iter()
            .map(|t| TargetCluster {
                name: t.name.clone(),
                count: t.count,
            })
            .collect();
        let mut config = InitiatorConfig::new(&spec.node, &spec.cluster, &spec.tenant, targets);
        config.offer_claim_marker = spec.offer_claim_marker;
        config.upgrade = self.upgrade;
        self.request_method().clone_into(&mut config.request_method);
        self.request_path().clone_into(&mut config.request_path);
        config.connect_timeout = self.timing.connect_timeout;
        config.handshake_timeout = self.timing.handshake_timeout;
        config.idle_timeout = self.timing.idle_timeout;
        config.max_reconnect_backoff = self.timing.max_backoff;
        config
    }

    /// The handshake method: the default `GET`, or `POST` (as the seed describes) in upgrade-mode runs.
    pub fn request_method(&self) -> &'static str {
        if self.upgrade {
            "POST"
        } else {
            DEFAULT_REQUEST_METHOD
        }
    }

    /// The handshake path: the default, or a custom one with a query string in upgrade-mode runs.
    pub fn request_path(&self) -> &'static str {
        if self.upgrade {
            "/tunnels/register?v=1"
        } else {
            DEFAULT_REQUEST_PATH
        }
    }

    /// Whether tunnels between initiator `i` and responder `r` use the claim marker.
    pub fn claim_marker_mode(&self, i: usize, r: usize) -> bool {
        self.initiators[i].offer_claim_marker && self.responders[r].claim_marker
    }
}

/// The most tunnels one node keeps on responder `r` (sum of its pools' counts there).
fn max_node_tunnels(initiators: &[InitiatorSpec], r: usize) -> u32 {
    initiators
        .iter()
        .map(|i| {
            i.targets
                .iter()
                .filter(|t| t.hosts.contains(&r))
                .map(|t| t.count)
                .sum::<u32>()
        })
        .max()
        .unwrap_or(0)
}

fn pairs(initiators: &[InitiatorSpec]) -> Vec<(usize, usize)> {
    initiators
        .iter()
        .enumerate()
        .flat_map(|(i, spec)| spec.responders().into_iter().map(move |r| (i, r)))
        .collect()
}
