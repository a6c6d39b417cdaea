//! TLS with rustls (the `ring` provider, TLS 1.2 and 1.3, rustls' default cipher suites), shared by both
//! runtimes and by the `revtun` program: PEM loading ([`PemSource`]), the server and client sources
//! ([`TlsServerSource`], [`TlsClientSource`]) that re-read their files when they change, and the peer
//! identity of a verified certificate ([`peer_identity`]).
//!
//! Sessions run on futures-rustls over the driver's futures-io streams; a tokio program builds
//! tokio-rustls acceptors and connectors from the same [`TlsServerSource::config`] /
//! [`TlsClientSource::config`], so there is one loader.
//!
//! # Tunnel TLS
//! [`ListenerOptions::tunnel_tls`](crate::ListenerOptions::tunnel_tls) (per target cluster) and
//! [`ResponderOptions::tunnel_tls`](crate::ResponderOptions::tunnel_tls) (or per listener with
//! [`ResponderHandle::serve_listeners`](crate::ResponderHandle::serve_listeners)): the connection task runs
//! the TLS handshake right after the TCP connect or accept, and the session carries the HTTP handshake,
//! the keepalive and the data for the tunnel's whole life. The core's `handshake_timeout` covers the
//! TLS handshake on both sides.
//!
//! # Data-leg TLS
//! Inside a claimed tunnel the responder is the TLS client ([`TlsClientSource::connect`]) and the
//! initiator the TLS server ([`TlsServerSource::accept`]); both take any futures-io stream, such as a
//! [`TunnelStream`](crate::TunnelStream).
//!
//! # Decisions where DESIGN.md is silent
//! - No system or web root store: a client needs `trusted_ca`.
//! - Without `sni` a tunnel's server name is the dialled IP address (verified against IP SANs).
//! - Reload: see [`reload`](self::reload) — checked at a new handshake, at most once per
//!   [`DEFAULT_RELOAD_INTERVAL`]; a failed reload keeps the previous certificates.

mod client;
mod error;
mod identity;
mod pem;
pub(crate) mod reload;
mod server;

use std::io;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use client::{ClientTlsFiles, TlsClientSource};
pub use error::TlsError;
pub use identity::peer_identity;
pub use pem::PemSource;
pub use reload::DEFAULT_RELOAD_INTERVAL;
pub use rustls;
pub use rustls_pki_types::ServerName;
pub use server::{ServerTlsFiles, TlsServerSource};

/// A certificate chain (leaf first) and its private key (Envoy's `TlsCertificate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    /// `certificate_chain`: PEM certificates, leaf first.
    pub certificate_chain: PemSource,
    /// `private_key`: the PEM private key.
    pub private_key: PemSource,
}

impl CertificateFiles {
    fn sources(&self) -> Vec<&PemSource> {
        vec![&self.certificate_chain, &self.private_key]
    }

    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let chain = self.certificate_chain.certificates("certificate_chain")?;
        let key = self.private_key.private_key("private_key")?;
        Ok((chain, key))
    }
}

/// The one crypto provider: rustls' `ring`.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CAs of `trusted_ca`.
fn root_store(ca: &PemSource) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca.certificates("trusted_ca")? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            item: "trusted_ca",
            source,
        })?;
    }
    Ok(roots)
}

/// Whether an I/O error of a TLS session is a TLS failure (a bad certificate, an alert from the peer,
/// bytes that are not TLS) rather than a plain I/O error or EOF.
pub fn is_tls_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}
