//! TLS in the program: the plan's TLS contexts become the driver's reloading TLS sources (one loader for
//! tunnel TLS, data legs, front doors and local services), and tokio-rustls runs the sessions the
//! program itself terminates, each handshake within [`TLS_HANDSHAKE_TIMEOUT`].
//!
//! File paths in `filename` are used as written: a relative path is resolved against the process's
//! current directory, as Envoy does.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use revtun_core::config::{DataSource, DownstreamTlsPlan, TlsCertificatePlan, UpstreamTlsPlan};
use revtun_tokio::tls::{
    CertificateFiles, ClientTlsFiles, PemSource, ServerName, ServerTlsFiles, TlsClientSource,
    TlsServerSource,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a TLS handshake the program terminates (front doors, data legs, local services) may take.
/// Tunnel TLS handshakes are bounded by the machines' `handshake_timeout` instead.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn pem(source: &DataSource) -> PemSource {
    match source {
        DataSource::Filename(path) => PemSource::File(PathBuf::from(path)),
        DataSource::InlineString(text) => PemSource::Inline(text.clone()),
    }
}

fn certificate(plan: &TlsCertificatePlan) -> CertificateFiles {
    CertificateFiles {
        certificate_chain: pem(&plan.certificate_chain),
        private_key: pem(&plan.private_key),
    }
}

/// The server source of a `DownstreamTlsContext`; `field` is its path, for errors.
pub fn server(plan: &DownstreamTlsPlan, field: &str) -> anyhow::Result<TlsServerSource> {
    TlsServerSource::new(ServerTlsFiles {
        certificate: certificate(&plan.certificate),
        trusted_ca: plan.trusted_ca.as_ref().map(pem),
        require_client_certificate: plan.require_client_certificate,
    })
    .with_context(|| format!("{field}.typed_config.common_tls_context"))
}

/// The client source of an `UpstreamTlsContext`; `field` is its path, for errors. A `trusted_ca` is
/// required (revtun uses no system root store).
pub fn client(plan: &UpstreamTlsPlan, field: &str) -> anyhow::Result<TlsClientSource> {
    let Some(ca) = &plan.trusted_ca else {
        anyhow::bail!(
            "{field}.typed_config.common_tls_context.validation_context.trusted_ca: required (revtun does not use a system root store)"
        );
    };
    TlsClientSource::new(ClientTlsFiles {
        trusted_ca: pem(ca),
        certificate: plan.certificate.as_ref().map(certificate),
        sni: plan.sni.clone(),
    })
    .with_context(|| format!("{field}.typed_config"))
}

/// The TLS server handshake on `stream`, within [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn accept<S>(
    source: &TlsServerSource,
    stream: S,
) -> io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let accept = TlsAcceptor::from(source.config()).accept(stream);
    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// The TLS client handshake on `stream` for `sni` or else `fallback`, within [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn connect<S>(
    source: &TlsClientSource,
    fallback: ServerName<'static>,
    stream: S,
) -> io::Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connect = TlsConnector::from(source.config()).connect(source.server_name(fallback), stream);
    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// A server name from a host string (an IP literal or a DNS name).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).ok()
}

/// Loads every TLS context of `plan` (what `--mode validate` checks beyond the file itself): one message
/// per context that cannot be loaded, naming its field path.
pub fn check(plan: &revtun_core::config::Bootstrap) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note = |result: anyhow::Result<()>| {
        if let Err(e) = result {
            problems.push(format!("{e:#}"));
        }
    };
    let listener_field =
        |name: &str| format!("listener '{name}': filter_chains[0].transport_socket");
    for (name, cluster) in &plan.clusters {
        if let Some(t) = &cluster.tls {
            note(client(t, &format!("cluster '{name}': transport_socket")).map(drop));
        }
    }
    for listener in plan.initiator.iter().flat_map(|i| &i.listeners) {
        if let Some(t) = &listener.data_tls {
            note(server(t, &listener_field(&listener.name)).map(drop));
        }
    }
    for listener in plan.responder.iter().flat_map(|r| &r.listeners) {
        if let Some(t) = &listener.tunnel_tls {
            note(server(t, &listener_field(&listener.name)).map(drop));
        }
    }
    for door in &plan.front_doors {
        if let Some(t) = &door.listener_tls {
            note(server(t, &listener_field(&door.name)).map(drop));
        }
    }
    problems
}
