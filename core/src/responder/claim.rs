//! Claims: requests for a tunnel, waiting oldest first until one is handed out or the claim expires.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

/// One claim, allocated by [`Responder::claim`](super::Responder::claim); unique for the machine's
/// lifetime, increasing in the order claims were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimId(pub u64);

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claim#{}", self.0)
    }
}

/// A claim not answered yet: it waits for a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// The id asked for: a cluster first, then a node.
    pub target: String,
    /// The tenant scope the claim may draw from (empty without isolation).
    pub scope: String,
    /// When the claim expires.
    pub deadline: Instant,
}

/// All unanswered claims, served oldest (smallest id) first. A claim is answered in the same turn as it
/// gets a tunnel (in both data modes), so every unanswered claim waits.
#[derive(Debug, Default)]
pub(super) struct Claims {
    claims: BTreeMap<ClaimId, Claim>,
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
        self.claims.insert(id, claim);
    }

    /// The claim, if still unanswered.
    pub fn get(&self, id: ClaimId) -> Option<&Claim> {
        self.claims.get(&id)
    }

    /// Forgets an answered, expired or cancelled claim.
    pub fn remove(&mut self, id: ClaimId) -> Option<Claim> {
        self.claims.remove(&id)
    }

    /// Whether any claim waits for a tunnel.
    pub fn any_waiting(&self) -> bool {
        !self.claims.is_empty()
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

    /// Number of unanswered claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }
}
