//! The responder's [`Authorizer`] from the plan's `AuthPlan`: a bearer token (read from its file at start,
//! compared in constant time) and allow-lists of node, cluster and tenant ids.

use std::path::Path;

use revtun_core::config::AuthPlan;
use revtun_core::responder::{AuthDecision, Authorizer, HandshakeContext};

/// Bearer token and allow-lists. Empty lists allow every value.
#[derive(Clone, Default)]
pub struct PlanAuthorizer {
    token: Option<Vec<u8>>,
    nodes: Vec<String>,
    clusters: Vec<String>,
    tenants: Vec<String>,
}

impl std::fmt::Debug for PlanAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanAuthorizer")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("nodes", &self.nodes)
            .field("clusters", &self.clusters)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl PlanAuthorizer {
    /// `None` when the plan checks nothing (every handshake is accepted).
    pub fn from_plan(plan: &AuthPlan) -> anyhow::Result<Option<Self>> {
        if plan.bind_node_id_to_certificate {
            anyhow::bail!(
                "bind_node_id_to_certificate needs tunnel TLS, which this build does not serve yet"
            );
        }
        let token = match &plan.bearer_token_file {
            Some(path) => Some(read_token(Path::new(path))?.into_bytes()),
            None => None,
        };
        let auth = Self {
            token,
            nodes: plan.allowed_node_ids.clone(),
            clusters: plan.allowed_cluster_ids.clone(),
            tenants: plan.allowed_tenant_ids.clone(),
        };
        let checks_something = auth.token.is_some()
            || !auth.nodes.is_empty()
            || !auth.clusters.is_empty()
            || !auth.tenants.is_empty();
        Ok(checks_something.then_some(auth))
    }
}

impl Authorizer for PlanAuthorizer {
    fn authorize(&self, ctx: &HandshakeContext<'_>) -> AuthDecision {
        if let Some(token) = &self.token {
            let sent = ctx
                .request
                .header("authorization")
                .and_then(|v| strip_bearer(v));
            if !sent.is_some_and(|sent| constant_time_eq(sent, token)) {
                return AuthDecision::Unauthenticated;
            }
        }
        let allowed = |list: &[String], id: &str| list.is_empty() || list.iter().any(|a| a == id);
        let id = ctx.identity;
        if allowed(&self.nodes, &id.node)
            && allowed(&self.clusters, &id.cluster)
            && allowed(&self.tenants, &id.tenant)
        {
            AuthDecision::Accept
        } else {
            AuthDecision::Forbidden
        }
    }
}

/// Reads a token file: its contents with surrounding whitespace trimmed; an empty token is an error.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

/// The credential of `Bearer <token>` (scheme case-insensitive).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Compares without an early exit on the first differing byte (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_compare() {
        assert_eq!(strip_bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(strip_bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(strip_bearer(b"Basic abc"), None);
        assert_eq!(strip_bearer(b"Bear"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
