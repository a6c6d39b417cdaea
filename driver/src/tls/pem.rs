//! [`PemSource`]: where PEM text comes from (a file or inline text), loading it with rustls-pki-types,
//! and the cheap fingerprint that tells whether a file changed.

use std::path::PathBuf;
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// PEM text: a file (re-read when it changes) or inline text (Envoy's `filename` / `inline_string`).
///
/// A relative path is resolved against the process's current directory, as Envoy does.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A PEM file.
    File(PathBuf),
    /// PEM text itself.
    Inline(String),
}

impl std::fmt::Debug for PemSource {
    /// Inline text may be a private key: only its length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Inline(text) => write!(f, "Inline(<{} bytes>)", text.len()),
        }
    }
}

/// What identifies one version of a file: modification time, length and inode. `None` for inline text
/// (it never changes) and for a file whose metadata cannot be read (the next load reports why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl PemSource {
    /// Where the text comes from, for messages: the path, or `inline_string`.
    pub(crate) fn origin(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Inline(_) => "inline_string".to_owned(),
        }
    }

    /// The file's current fingerprint (see [`Fingerprint`]).
    pub(crate) fn fingerprint(&self) -> Option<Fingerprint> {
        let Self::File(path) = self else {
            return None;
        };
        let meta = std::fs::metadata(path).ok()?;
        Some(Fingerprint {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: inode(&meta),
        })
    }

    fn bytes(&self, item: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Self::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                item,
                path: path.clone(),
                source,
            }),
            Self::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    /// Every certificate in the PEM text, in order (at least one).
    pub(crate) fn certificates(
        &self,
        item: &'static str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.bytes(item)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.malformed(item, &e))?;
        if certs.is_empty() {
            return Err(self.empty(item, "CERTIFICATE"));
        }
        Ok(certs)
    }

    /// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM text.
    pub(crate) fn private_key(
        &self,
        item: &'static str,
    ) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.bytes(item)?;
        match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(key) => Ok(key),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(self.empty(item, "PRIVATE KEY")),
            Err(e) => Err(self.malformed(item, &e)),
        }
    }

    fn malformed(&self, item: &'static str, e: &rustls_pki_types::pem::Error) -> TlsError {
        TlsError::Pem {
            item,
            origin: self.origin(),
            detail: e.to_string(),
        }
    }

    fn empty(&self, item: &'static str, expected: &'static str) -> TlsError {
        TlsError::Empty {
            item,
            origin: self.origin(),
            expected,
        }
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}
