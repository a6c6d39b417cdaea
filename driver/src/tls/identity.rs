//! The verified peer certificate's identity, as the core's [`PeerTlsIdentity`]: its URI and DNS
//! subject alternative names, read with x509-parser.

use revtun_core::responder::PeerTlsIdentity;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The identity of a verified certificate chain (leaf first): the leaf's URI and DNS SANs, in
/// certificate order. `None` without a certificate (an anonymous client) or when the leaf cannot be
/// parsed (rustls verified it, so that does not happen in practice).
pub fn peer_identity(chain: &[CertificateDer<'_>]) -> Option<PeerTlsIdentity> {
    let leaf = chain.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let mut identity = PeerTlsIdentity::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => identity.uri_sans.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => identity.dns_sans.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    Some(identity)
}
