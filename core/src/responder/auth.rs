//! The authentication / authorization hook of the handshake (rows 8 and 10 of the check table).
//!
//! The responder calls [`Authorizer::authorize`] once per handshake that passed rows 0–7, before the
//! per-node cap. The answer is used at two rows: [`AuthDecision::Unauthenticated`] is row 8 (401, before
//! the cap), [`AuthDecision::Forbidden`] is row 10 (403, after the cap). Bearer tokens, allow-lists and
//! certificate-identity binding are implementations of this trait outside the core.

use std::net::SocketAddr;

use crate::handshake::{Identity, ParsedRequest};

/// The hook's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthDecision {
    /// Go on with the remaining checks.
    Accept,
    /// Row 8: the credential is missing or invalid. 401 `Authentication failed`, counter `auth_failed`.
    Unauthenticated,
    /// Row 10: the identity is not allowed. 403 `validation_failed`, counter `validation_failed`.
    Forbidden,
}

/// The verified identity of the peer's client certificate (tunnel TLS), as the driver extracted it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerTlsIdentity {
    /// URI subject alternative names (e.g. SPIFFE ids).
    pub uri_sans: Vec<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
}

/// What the hook sees of one handshake.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeContext<'a> {
    /// The identity the initiator claims (node, cluster, tenant, upstream cluster name).
    pub identity: &'a Identity,
    /// The whole request, for credentials in headers (e.g. `authorization`).
    pub request: &'a ParsedRequest,
    /// The peer's address as the driver accepted it.
    pub peer: SocketAddr,
    /// The verified client certificate's identity, when tunnel TLS asked for one and got it.
    pub tls: Option<&'a PeerTlsIdentity>,
}

/// Decides whether a handshake may register a tunnel. Must be pure and quick: it runs inside the state
/// machine, with no I/O (preload token files and allow-lists).
pub trait Authorizer: Send + Sync {
    /// Answers for one handshake.
    fn authorize(&self, ctx: &HandshakeContext<'_>) -> AuthDecision;
}

/// The default hook: accepts every handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _ctx: &HandshakeContext<'_>) -> AuthDecision {
        AuthDecision::Accept
    }
}

impl<F> Authorizer for F
where
    F: Fn(&HandshakeContext<'_>) -> AuthDecision + Send + Sync,
{
    fn authorize(&self, ctx: &HandshakeContext<'_>) -> AuthDecision {
        self(ctx)
    }
}
