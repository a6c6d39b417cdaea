//! [`TlsServerSource`]: the TLS server side (a `DownstreamTlsContext`): certificate chain and key,
//! optional client-certificate verification, reloaded when the files change.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use revtun_core::responder::PeerTlsIdentity;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;

use super::pem::PemSource;
use super::reload::{Build, Reloading};
use super::{CertificateFiles, TlsError, identity, provider, root_store};

/// The settings of a TLS server (Envoy's `DownstreamTlsContext`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// `tls_certificates[0]`: the server's certificate chain (leaf first) and private key.
    pub certificate: CertificateFiles,
    /// `validation_context.trusted_ca`: CAs client certificates must chain to. Without it no client
    /// certificate is asked for.
    pub trusted_ca: Option<PemSource>,
    /// `require_client_certificate`: refuse clients without a valid certificate. With a `trusted_ca`
    /// but `false`, a presented certificate is verified and an anonymous client is allowed.
    pub require_client_certificate: bool,
}

impl Build for ServerTlsFiles {
    type Config = ServerConfig;
    const SIDE: &'static str = "server";

    fn sources(&self) -> Vec<&PemSource> {
        let mut sources = self.certificate.sources();
        sources.extend(&self.trusted_ca);
        sources
    }

    fn build(&self) -> Result<ServerConfig, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                item: "protocol versions",
                source,
            })?;
        let builder = match (&self.trusted_ca, self.require_client_certificate) {
            (None, true) => return Err(TlsError::ClientCaMissing),
            (None, false) => builder.with_no_client_auth(),
            (Some(ca), required) => {
                let roots = Arc::new(root_store(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(verifier.build()?)
            }
        };
        let (chain, key) = self.certificate.load()?;
        builder
            .with_single_cert(chain, key)
            .map_err(|source| TlsError::Rustls {
                item: "tls_certificates",
                source,
            })
    }
}

/// A TLS server configuration that follows its files: cheap to clone (all clones share one config),
/// and re-read when a file changes (see [`with_reload_interval`](Self::with_reload_interval)).
/// Sessions already established are not touched by a reload.
#[derive(Clone)]
pub struct TlsServerSource {
    inner: Arc<Reloading<ServerTlsFiles>>,
}

impl std::fmt::Debug for TlsServerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerSource")
            .field("files", self.inner.settings())
            .finish()
    }
}

impl TlsServerSource {
    /// Loads `files` once.
    ///
    /// # Errors
    /// A file cannot be read or parsed, the key does not match the certificate, or the CAs are unusable.
    pub fn new(files: ServerTlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            inner: Arc::new(Reloading::new(files)?),
        })
    }

    /// Sets how often, at most, the files' metadata is checked for changes (default
    /// [`DEFAULT_RELOAD_INTERVAL`](super::DEFAULT_RELOAD_INTERVAL); `Duration::ZERO`: at every
    /// handshake). Applies to every clone.
    #[must_use]
    pub fn with_reload_interval(self, interval: Duration) -> Self {
        self.inner.set_interval(interval);
        self
    }

    /// The settings the source was built from.
    pub fn files(&self) -> &ServerTlsFiles {
        self.inner.settings()
    }

    /// The rustls config for a new session (reloaded first if a file changed). Also what a
    /// tokio-rustls `TlsAcceptor` is built from.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.inner.current()
    }

    /// Re-reads the files now.
    ///
    /// # Errors
    /// They cannot be loaded; the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.inner.reload()
    }

    /// Runs the TLS server handshake on `stream` (e.g. a claimed tunnel, for data-leg TLS): the session
    /// and the verified client identity (`None` for an anonymous client). Has no timeout of its own.
    ///
    /// # Errors
    /// The handshake failed ([`is_tls_error`](super::is_tls_error) tells a TLS refusal from I/O).
    pub async fn accept<S>(
        &self,
        stream: S,
    ) -> io::Result<(
        futures_rustls::server::TlsStream<S>,
        Option<PeerTlsIdentity>,
    )>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let session = futures_rustls::TlsAcceptor::from(self.config())
            .accept(stream)
            .await?;
        let identity = session
            .get_ref()
            .1
            .peer_certificates()
            .and_then(identity::peer_identity);
        Ok((session, identity))
    }
}
