//! What the admin endpoint reads: the running machines, their statistics merged, and the program's own
//! relayed-bytes counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use revtun_core::responder::NodeSummary;
use revtun_core::stats::{StatKind, StatsSnapshot};
use revtun_tokio::{Responder, ReverseListener};

/// Which way relayed bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Responder side: from a front-door client into the tunnel.
    ClientToTunnel,
    /// Responder side: from the tunnel back to the front-door client.
    TunnelToClient,
    /// Initiator side: from the tunnel to the local service.
    TunnelToService,
    /// Initiator side: from the local service into the tunnel.
    ServiceToTunnel,
}

impl Direction {
    /// Every direction, in the order of [`Relayed`]'s counters.
    pub const ALL: [Direction; 4] = [
        Direction::ClientToTunnel,
        Direction::TunnelToClient,
        Direction::TunnelToService,
        Direction::ServiceToTunnel,
    ];

    /// The label value (Prometheus `direction`) and the last part of the dotted name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::ClientToTunnel => "client_to_tunnel",
            Direction::TunnelToClient => "tunnel_to_client",
            Direction::TunnelToService => "tunnel_to_service",
            Direction::ServiceToTunnel => "service_to_tunnel",
        }
    }
}

/// Dotted prefix of the relayed-bytes counters in `/stats`: `revtun.relayed_bytes.<direction>`.
pub const RELAYED_PREFIX: &str = "revtun.relayed_bytes";

/// Bytes relayed by the program (front doors and the initiator's tcp_proxy), per [`Direction`].
#[derive(Debug, Default)]
pub struct Relayed {
    bytes: [AtomicU64; 4],
}

impl Relayed {
    /// Counts `n` bytes that went `direction`.
    pub fn add(&self, direction: Direction, n: u64) {
        if n > 0 {
            self.bytes[direction as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Bytes that went `direction` so far.
    pub fn get(&self, direction: Direction) -> u64 {
        self.bytes[direction as usize].load(Ordering::Relaxed)
    }
}

/// The counters of one front door's `rbac` filter: `<stat_prefix>.rbac.allowed` and `.denied` (Envoy's
/// names for the network RBAC filter).
#[derive(Debug)]
pub struct Rbac {
    /// The filter's `stat_prefix`, without a trailing `.`.
    pub stat_prefix: String,
    allowed: AtomicU64,
    denied: AtomicU64,
}

impl Rbac {
    /// Counts an allowed client.
    pub fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused client.
    pub fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running program as the admin endpoint sees it.
#[derive(Debug, Default)]
pub struct App {
    /// One per `rc://` listener.
    initiators: RwLock<Vec<Arc<ReverseListener>>>,
    /// The responder, if the file has handshake listeners.
    responder: RwLock<Option<Responder>>,
    /// The initiators' `stat_prefix`es (for Prometheus names).
    pub initiator_prefixes: Vec<String>,
    /// The responder's `stat_prefix`.
    pub responder_prefix: Option<String>,
    /// The relayed-bytes counters.
    pub relayed: Arc<Relayed>,
    /// The front doors' `rbac` counters.
    rbac: RwLock<Vec<Arc<Rbac>>>,
    /// Every listener is up (and the program is not draining).
    pub ready: AtomicBool,
    /// The program is shutting down.
    pub draining: AtomicBool,
}

impl App {
    /// An app with no machines yet, for these prefixes.
    pub fn new(initiator_prefixes: Vec<String>, responder_prefix: Option<String>) -> Self {
        Self {
            initiator_prefixes,
            responder_prefix,
            ..Self::default()
        }
    }

    /// Registers the counters of a front door's `rbac` filter (two filters with one `stat_prefix` share
    /// them, as Envoy's stats would).
    pub fn add_rbac(&self, stat_prefix: &str) -> Arc<Rbac> {
        let stat_prefix = stat_prefix.trim_end_matches('.').to_owned();
        let mut all = write(&self.rbac);
        if let Some(existing) = all.iter().find(|r| r.stat_prefix == stat_prefix) {
            return existing.clone();
        }
        let counters = Arc::new(Rbac {
            stat_prefix,
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        });
        all.push(counters.clone());
        counters
    }

    /// Adds a running initiator.
    pub fn add_initiator(&self, listener: Arc<ReverseListener>) {
        write(&self.initiators).push(listener);
    }

    /// Sets the running responder.
    pub fn set_responder(&self, responder: Responder) {
        *write(&self.responder) = Some(responder);
    }

    /// Takes the machines out (at shutdown), so that they can be shut down by value.
    pub fn take_machines(&self) -> (Vec<Arc<ReverseListener>>, Option<Responder>) {
        let initiators = std::mem::take(&mut *write(&self.initiators));
        let responder = write(&self.responder).take();
        (initiators, responder)
    }

    fn machines(&self) -> (Vec<Arc<ReverseListener>>, Option<Responder>) {
        let initiators = read(&self.initiators).clone();
        let responder = read(&self.responder).clone();
        (initiators, responder)
    }

    /// Every machine's statistics merged, plus the relayed bytes.
    pub async fn snapshot(&self) -> StatsSnapshot {
        let (initiators, responder) = self.machines();
        let mut out = StatsSnapshot::new();
        for listener in initiators {
            if let Ok(stats) = listener.stats().await {
                out.merge(&stats);
            }
        }
        if let Some(responder) = responder {
            if let Ok(stats) = responder.stats().await {
                out.merge(&stats);
            }
        }
        for rbac in read(&self.rbac).iter() {
            for (result, counter) in [("allowed", &rbac.allowed), ("denied", &rbac.denied)] {
                out.set(
                    format!("{}.rbac.{result}", rbac.stat_prefix),
                    StatKind::Counter,
                    counter.load(Ordering::Relaxed),
                );
            }
        }
        for direction in Direction::ALL {
            out.set(
                format!("{RELAYED_PREFIX}.{}", direction.name()),
                StatKind::Counter,
                self.relayed.get(direction),
            );
        }
        out
    }

    /// The responder's nodes (empty without a responder).
    pub async fn nodes(&self) -> Vec<NodeSummary> {
        let (_, responder) = self.machines();
        match responder {
            Some(responder) => responder.nodes().await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
