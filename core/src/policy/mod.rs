//! Who may register tunnels and who may connect: the pure parts of revtun's security policy.
//!
//! - [`Policy`]: an [`Authorizer`] for the responder (rows 8 and 10 of the check table) built from a
//!   bearer [`TokenSet`] (shared, so a driver can swap in a re-read token file: [`SharedTokens`]),
//!   allow-lists of node, cluster and tenant ids ([`AllowList`] of [`IdPattern`]s) and identity binding
//!   to the client certificate ([`CertificateIdentity`]).
//! - [`SourceAllowList`]: CIDR ranges a listener (a front door, the admin endpoint) accepts clients
//!   from.
//!
//! No I/O here: token files are read by the driver (`revtun_driver::auth_files`), which hands the bytes
//! to [`TokenSet::parse`].
//!
//! # Order of the checks in [`Policy::authorize`]
//! 1. Bearer token (when configured): missing or not in the set → `Unauthenticated` (401).
//! 2. Identity binding (when configured): no client certificate → `Unauthenticated` (401, DESIGN.md row
//!    8); a certificate whose SANs do not bind the ids → `Forbidden` (403, row 10).
//! 3. Allow-lists: node, cluster, tenant each must be allowed → else `Forbidden` (403).
//!
//! Every configured check runs (no early exit between the token comparisons), and the answer is the
//! first failing row.

mod cidr;
mod identity;
mod pattern;
mod token;

pub use cidr::{CidrError, CidrRange, SourceAllowList};
pub use identity::{CertificateIdentity, SanTemplate, TemplateError};
pub use pattern::{AllowList, IdPattern, PatternError};
pub use token::{SharedTokens, TokenSet, WeakTokens, bearer_credential};

use crate::responder::{AuthDecision, Authorizer, HandshakeContext};

/// The responder's authorizer: token, identity binding and allow-lists. [`Default`] checks nothing.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Bearer tokens initiators must send as `authorization: Bearer <token>`; `None` = no token needed.
    pub tokens: Option<SharedTokens>,
    /// Identity binding to the client certificate; `None` = no binding.
    pub certificate: Option<CertificateIdentity>,
    /// Node ids allowed.
    pub nodes: AllowList,
    /// Cluster ids allowed.
    pub clusters: AllowList,
    /// Tenant ids allowed.
    pub tenants: AllowList,
}

impl Policy {
    /// Whether any check is configured (a policy that checks nothing can be left out).
    #[must_use]
    pub fn checks_something(&self) -> bool {
        self.tokens.is_some()
            || self.certificate.is_some()
            || self.nodes.is_restrictive()
            || self.clusters.is_restrictive()
            || self.tenants.is_restrictive()
    }
}

impl Authorizer for Policy {
    fn authorize(&self, ctx: &HandshakeContext<'_>) -> AuthDecision {
        let token_ok = self.tokens.as_ref().is_none_or(|tokens| {
            tokens
                .current()
                .accepts_authorization(ctx.request.header("authorization"))
        });
        let certificate = self
            .certificate
            .as_ref()
            .map(|binding| ctx.tls.map(|tls| binding.matches(ctx.identity, tls)));
        if !token_ok || certificate == Some(None) {
            return AuthDecision::Unauthenticated;
        }
        let id = ctx.identity;
        let allowed = self.nodes.allows(&id.node)
            && self.clusters.allows(&id.cluster)
            && self.tenants.allows(&id.tenant);
        if certificate == Some(Some(false)) || !allowed {
            return AuthDecision::Forbidden;
        }
        AuthDecision::Accept
    }
}
