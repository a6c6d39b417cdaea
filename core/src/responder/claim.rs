//! Claims: requests for a tunnel, waiting oldest first until one is handed out or the claim expires.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use crate::command::ConnId;

/// One claim, allocated by [`Responder::claim`](super::Responder::claim); unique for the machine's
/// lifetime, increasing in the order claims were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimId(pub u64);

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claim#{}", self.0)
    }
}

/// A claim not answered yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// The id asked for: a cluster first, then a node.
    pub target: String,
    /// The tenant scope the claim may draw from (empty without isolation).
    pub scope: String,
    /// When the claim expires.
    pub deadline: Instant,
    /// Claim-marker mode: the tunnel that was sent `RDATA` for this claim and has not answered yet.
    pub tunnel: Option<ConnId>,
}

/// All unanswered claims, and which of them wait for a tunnel.
#[derive(Debug, Default)]
pub(super) struct Claims {
    claims: BTreeMap<ClaimId, Claim>,
    /// Claims with no tunnel, served oldest (smallest id) first. A claim whose tunnel died comes back
    /// here in its place by age, ahead of every newer claim.
    waiting: BTreeSet<ClaimId>,
    next: u64,
}

impl Claims {
    /// A fresh id.
    pub fn allocate(&mut self) -> ClaimId {
        let id = ClaimId(self.next);
        self.next += 1;
        id
    }

    /// Adds a claim that waits for a tunnel.
    pub fn insert(&mut self, id: ClaimId, claim: Claim) {
        if claim.tunnel.is_none() {
            self.waiting.insert(id);
        }
        self.claims.insert(id, claim);
    }

    /// The claim, if still unanswered.
    pub fn get(&self, id: ClaimId) -> Option<&Claim> {
        self.claims.get(&id)
    }

    /// Forgets an answered, expired or cancelled claim.
    pub fn remove(&mut self, id: ClaimId) -> Option<Claim> {
        self.waiting.remove(&id);
        self.claims.remove(&id)
    }

    /// The claim now waits for `tunnel`'s answer to `RDATA`.
    pub fn bind(&mut self, id: ClaimId, tunnel: ConnId) {
        if let Some(claim) = self.claims.get_mut(&id) {
            claim.tunnel = Some(tunnel);
            self.waiting.remove(&id);
        }
    }

    /// The claim's tunnel died before answering: it waits again, in its place by age.
    pub fn requeue(&mut self, id: ClaimId) {
        if let Some(claim) = self.claims.get_mut(&id) {
            claim.tunnel = None;
            self.waiting.insert(id);
        }
    }

    /// The waiting claims, oldest first.
    pub fn waiting(&self) -> Vec<ClaimId> {
        self.waiting.iter().copied().collect()
    }

    /// Whether any claim waits for a tunnel.
    pub fn any_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Every unanswered claim, oldest first.
    pub fn ids(&self) -> Vec<ClaimId> {
        self.claims.keys().copied().collect()
    }

    /// Every unanswered claim with its state, oldest first.
    #[cfg(feature = "fuzzing")]
    pub fn iter(&self) -> impl Iterator<Item = (ClaimId, &Claim)> {
        self.claims.iter().map(|(&id, claim)| (id, claim))
    }

    /// Whether the claim is in the waiting set.
    #[cfg(feature = "fuzzing")]
    pub fn is_waiting(&self, id: ClaimId) -> bool {
        self.waiting.contains(&id)
    }

    /// Number of unanswered claims (waiting or waiting for an `RDATA` answer).
    pub fn len(&self) -> usize {
        self.claims.len()
    }
}
