//! The TLS variant's certificates, made at run time with rcgen into a scratch directory: a CA, the
//! responder's server certificate (IP SAN 127.0.0.1) and the node's client certificate. Nothing is
//! committed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use revtun_driver::tls::{CertificateFiles, PemSource};

/// The CA certificate's file name.
pub const CA: &str = "ca.crt";
/// The responder's certificate stem (`.crt`, `.key`).
pub const RESPONDER: &str = "responder";
/// The node's certificate stem.
pub const NODE: &str = "node";

/// The certificate and key files of `stem` in `dir`.
#[must_use]
pub fn files(dir: &Path, stem: &str) -> CertificateFiles {
    CertificateFiles {
        certificate_chain: PemSource::File(dir.join(format!("{stem}.crt"))),
        private_key: PemSource::File(dir.join(format!("{stem}.key"))),
    }
}

/// A scratch directory with the certificates; removed on drop.
#[derive(Debug)]
pub struct CertDir(PathBuf);

impl CertDir {
    /// Makes the CA and both leaves in a new directory under the system's temporary directory.
    ///
    /// # Errors
    /// rcgen failed or the files cannot be written.
    pub fn write() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("revtun-bench-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "revtun bench CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        std::fs::write(dir.join(CA), ca_cert.pem())?;
        for (stem, san) in [
            (RESPONDER, SanType::IpAddress([127, 0, 0, 1].into())),
            (NODE, SanType::DnsName("bench-node".try_into()?)),
        ] {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, stem);
            params.subject_alt_names.push(san);
            let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
            std::fs::write(dir.join(format!("{stem}.crt")), cert.pem())?;
            std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem())?;
        }
        Ok(Self(dir))
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
