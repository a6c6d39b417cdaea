//! [`TlsClientSource`]: the TLS client side (an `UpstreamTlsContext`): trusted CAs, optional client
//! certificate, `sni`, reloaded when the files change.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::pem::PemSource;
use super::reload::{Build, Reloading};
use super::{CertificateFiles, TlsError, provider, root_store};

/// The settings of a TLS client (Envoy's `UpstreamTlsContext`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// `validation_context.trusted_ca`: the CAs the server certificate must chain to (required: revtun
    /// does not fall back to a system or web root store).
    pub trusted_ca: PemSource,
    /// `tls_certificates[0]`: the client certificate (mutual TLS), if any.
    pub certificate: Option<CertificateFiles>,
    /// `sni`: the server name sent and verified. Without it the caller's fallback is used (the dialled
    /// IP address for tunnels, verified against the certificate's IP SANs).
    pub sni: Option<String>,
}

impl Build for ClientTlsFiles {
    type Config = ClientConfig;
    const SIDE: &'static str = "client";

    fn sources(&self) -> Vec<&PemSource> {
        let mut sources = vec![&self.trusted_ca];
        if let Some(certificate) = &self.certificate {
            sources.extend(certificate.sources());
        }
        sources
    }

    fn build(&self) -> Result<ClientConfig, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                item: "protocol versions",
                source,
            })?
            .with_root_certificates(root_store(&self.trusted_ca)?);
        match &self.certificate {
            None => Ok(builder.with_no_client_auth()),
            Some(certificate) => {
                let (chain, key) = certificate.load()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::Rustls {
                        item: "tls_certificates",
                        source,
                    })
            }
        }
    }
}

/// A TLS client configuration that follows its files: cheap to clone (all clones share one config),
/// and re-read when a file changes. Sessions already established are not touched by a reload.
#[derive(Clone)]
pub struct TlsClientSource {
    inner: Arc<Reloading<ClientTlsFiles>>,
    sni: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsClientSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClientSource")
            .field("files", self.inner.settings())
            .finish()
    }
}

impl TlsClientSource {
    /// Loads `files` once and checks `sni`.
    ///
    /// # Errors
    /// A file cannot be read or parsed, the key does not match the certificate, or `sni` is neither a
    /// DNS name nor an IP address.
    pub fn new(files: ClientTlsFiles) -> Result<Self, TlsError> {
        let sni = match &files.sni {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::ServerName(name.clone()))?,
            ),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Reloading::new(files)?),
            sni,
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
    pub fn files(&self) -> &ClientTlsFiles {
        self.inner.settings()
    }

    /// The rustls config for a new session (reloaded first if a file changed). Also what a
    /// tokio-rustls `TlsConnector` is built from.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.inner.current()
    }

    /// Re-reads the files now.
    ///
    /// # Errors
    /// They cannot be loaded; the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.inner.reload()
    }

    /// The name to send and verify: `sni` if set, else `fallback`.
    pub fn server_name(&self, fallback: ServerName<'static>) -> ServerName<'static> {
        self.sni.clone().unwrap_or(fallback)
    }

    /// The name for a tunnel dialled to `ip`: `sni` if set, else the IP address.
    pub fn server_name_for_ip(&self, ip: IpAddr) -> ServerName<'static> {
        self.server_name(ServerName::IpAddress(ip.into()))
    }

    /// Runs the TLS client handshake on `stream` (e.g. a claimed tunnel, for data-leg TLS) for
    /// [`server_name(fallback)`](Self::server_name). Has no timeout of its own.
    ///
    /// # Errors
    /// The handshake failed ([`is_tls_error`](super::is_tls_error) tells a TLS refusal from I/O).
    pub async fn connect<S>(
        &self,
        stream: S,
        fallback: ServerName<'static>,
    ) -> io::Result<futures_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        futures_rustls::TlsConnector::from(self.config())
            .connect(self.server_name(fallback), stream)
            .await
    }
}
