//! Test certificates made at run time with rcgen (no private key is committed): a CA, the leaf
//! certificates it signs, and a scratch directory to write them to.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A test certificate authority.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A leaf certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// A new self-signed CA named `name` (ECDSA P-256).
    ///
    /// # Panics
    /// If rcgen fails (it does not for these inputs).
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    /// The CA certificate (PEM): what `trusted_ca` holds.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate signed by this CA with subject alternative names `sans`: an IP literal is an IP
    /// SAN, a value with `://` a URI SAN (e.g. a SPIFFE id), anything else a DNS SAN. It serves as a
    /// server and as a client certificate.
    ///
    /// # Panics
    /// If a SAN is not valid IA5 text.
    pub fn issue(&self, name: &str, sans: &[&str]) -> TestCert {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        for san in sans {
            let san = if let Ok(ip) = san.parse::<IpAddr>() {
                SanType::IpAddress(ip)
            } else if san.contains("://") {
                SanType::URI((*san).try_into().expect("URI SAN"))
            } else {
                SanType::DnsName((*san).try_into().expect("DNS SAN"))
            };
            params.subject_alt_names.push(san);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCert {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir` (each replaced by a rename, so a reader never
    /// sees half a file); returns their paths.
    ///
    /// # Panics
    /// If the files cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write_replacing(&cert, &self.cert_pem);
        write_replacing(&key, &self.key_pem);
        (cert, key)
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
///
/// # Panics
/// If the file cannot be written.
pub fn write_replacing(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write a temporary file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates a fresh, empty directory named after `label`, this process and a counter.
    ///
    /// # Panics
    /// If it cannot be created.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("revtun-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The files of `examples/tls-*.yaml` (what the README's "TLS" section makes with openssl), written into
/// `dir`: `ca.crt`; `upstream.{crt,key}` (the responder: SANs `127.0.0.1`, `localhost`);
/// `downstream.{crt,key}` (node-1: SANs `node-1`, `spiffe://revtun.example/node-1`). Returns the CA.
///
/// # Panics
/// If the files cannot be written.
pub fn write_example_certs(dir: &Path) -> TestCa {
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let ca = TestCa::new("revtun example CA");
    write_replacing(&dir.join("ca.crt"), &ca.pem());
    ca.issue("upstream", &["127.0.0.1", "localhost"])
        .write(dir, "upstream");
    ca.issue("node-1", &["node-1", "spiffe://revtun.example/node-1"])
        .write(dir, "downstream");
    ca
}
