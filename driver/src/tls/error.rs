//! [`TlsError`]: why TLS settings could not be loaded.

use std::path::PathBuf;

/// Why a TLS source could not be built (or reloaded). Each error names the item (`certificate_chain`,
/// `private_key`, `trusted_ca`, `sni`) and, for files, the path, so a program can prefix the config
/// field path.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{item}: cannot read {}: {source}", path.display())]
    Read {
        /// What the file holds.
        item: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM text is malformed.
    #[error("{item}: {origin}: malformed PEM: {detail}")]
    Pem {
        /// What the PEM holds.
        item: &'static str,
        /// The file path, or `inline_string`.
        origin: String,
        /// The parser's message.
        detail: String,
    },
    /// The PEM text holds no item of the expected kind.
    #[error("{item}: {origin}: no {expected} found")]
    Empty {
        /// What the PEM should hold.
        item: &'static str,
        /// The file path, or `inline_string`.
        origin: String,
        /// The PEM section kind looked for.
        expected: &'static str,
    },
    /// `sni` is not a valid DNS name or IP address.
    #[error("sni: {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    /// rustls refused the certificates, key or CAs (e.g. a key that does not match the certificate).
    #[error("{item}: {source}")]
    Rustls {
        /// What was being set up.
        item: &'static str,
        /// rustls' error.
        source: rustls::Error,
    },
    /// `require_client_certificate` without a `trusted_ca` to verify client certificates with.
    #[error("require_client_certificate: needs a trusted_ca to verify client certificates")]
    ClientCaMissing,
    /// The client-certificate verifier could not be built from `trusted_ca`.
    #[error("trusted_ca: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
