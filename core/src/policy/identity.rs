//! Identity binding: the handshake's ids must match a subject alternative name of the verified client
//! certificate (tunnel TLS with client certificates).

use std::fmt;

use crate::handshake::Identity;
use crate::responder::PeerTlsIdentity;

/// One piece of a [`SanTemplate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Piece {
    Literal(String),
    Node,
    Cluster,
    Tenant,
}

/// A SAN with placeholders for the handshake's ids: `{node}` (required), `{cluster}`, `{tenant}`, e.g.
/// `spiffe://example.org/node/{node}` or `{node}.nodes.example.org`. Everything else is literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SanTemplate {
    text: String,
    pieces: Vec<Piece>,
}

/// A [`SanTemplate`] that cannot be used.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{…}` that is not `{node}`, `{cluster}` or `{tenant}`, or an unmatched brace.
    #[error(
        "unknown placeholder or stray brace at byte {at} of {template:?}: the placeholders are {{node}}, {{cluster}} and {{tenant}}"
    )]
    Placeholder {
        /// The template.
        template: String,
        /// Byte offset of the problem.
        at: usize,
    },
    /// No `{node}`: the template would not bind the node id.
    #[error("{template:?} must contain {{node}}")]
    NoNode {
        /// The template.
        template: String,
    },
}

impl SanTemplate {
    /// Reads a template.
    ///
    /// # Errors
    /// An unknown placeholder, a stray `{` or `}`, or no `{node}`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while !rest.is_empty() {
            let at = template.len() - rest.len();
            let bad = || TemplateError::Placeholder {
                template: template.to_owned(),
                at,
            };
            if rest.starts_with('{') {
                let (piece, len) = [
                    ("{node}", Piece::Node),
                    ("{cluster}", Piece::Cluster),
                    ("{tenant}", Piece::Tenant),
                ]
                .into_iter()
                .find(|(name, _)| rest.starts_with(name))
                .map(|(name, piece)| (piece, name.len()))
                .ok_or_else(bad)?;
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
                rest = &rest[len..];
            } else if rest.starts_with('}') {
                return Err(bad());
            } else {
                let c = rest.chars().next().unwrap_or_default();
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if !pieces.contains(&Piece::Node) {
            return Err(TemplateError::NoNode {
                template: template.to_owned(),
            });
        }
        Ok(Self {
            text: template.to_owned(),
            pieces,
        })
    }

    /// The SAN this template expects for `identity`.
    #[must_use]
    pub fn render(&self, identity: &Identity) -> String {
        let mut out = String::with_capacity(self.text.len() + identity.node.len());
        for piece in &self.pieces {
            out.push_str(match piece {
                Piece::Literal(s) => s,
                Piece::Node => &identity.node,
                Piece::Cluster => &identity.cluster,
                Piece::Tenant => &identity.tenant,
            });
        }
        out
    }

    /// Whether the template binds the cluster id too.
    #[must_use]
    pub fn binds_cluster(&self) -> bool {
        self.pieces.contains(&Piece::Cluster)
    }
}

impl fmt::Display for SanTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which certificate SANs a handshake's ids must match (revtun `certificate_identity`). The handshake is
/// bound when the URI template renders to one of the certificate's URI SANs (exact) **or** the DNS
/// template renders to one of its DNS SANs (ASCII case-insensitive). At least one template is set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertificateIdentity {
    /// `uri_san`: the expected URI SAN.
    pub uri_san: Option<SanTemplate>,
    /// `dns_san`: the expected DNS SAN.
    pub dns_san: Option<SanTemplate>,
}

impl CertificateIdentity {
    /// What `bind_node_id_to_certificate: true` means: a URI SAN or a DNS SAN equal to the node id.
    #[must_use]
    pub fn node_id_equals_san() -> Self {
        let node = SanTemplate {
            text: "{node}".to_owned(),
            pieces: vec![Piece::Node],
        };
        Self {
            uri_san: Some(node.clone()),
            dns_san: Some(node),
        }
    }

    /// Whether the certificate's SANs bind `identity`.
    #[must_use]
    pub fn matches(&self, identity: &Identity, tls: &PeerTlsIdentity) -> bool {
        let uri = self.uri_san.as_ref().is_some_and(|t| {
            let want = t.render(identity);
            tls.uri_sans.contains(&want)
        });
        let dns = self.dns_san.as_ref().is_some_and(|t| {
            let want = t.render(identity);
            tls.dns_sans
                .iter()
                .any(|san| san.eq_ignore_ascii_case(&want))
        });
        uri || dns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(node: &str, cluster: &str, tenant: &str) -> Identity {
        Identity {
            node: node.into(),
            cluster: cluster.into(),
            tenant: tenant.into(),
            upstream_cluster_name: None,
        }
    }

    fn cert(uris: &[&str], dns: &[&str]) -> PeerTlsIdentity {
        PeerTlsIdentity {
            uri_sans: uris.iter().map(|s| (*s).to_owned()).collect(),
            dns_sans: dns.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn templates_parse_and_render() {
        let t = SanTemplate::parse("spiffe://example.org/{tenant}/{cluster}/node/{node}").unwrap();
        assert!(t.binds_cluster());
        assert_eq!(
            t.render(&identity("n1", "edge", "t")),
            "spiffe://example.org/t/edge/node/n1"
        );
        assert_eq!(
            t.to_string(),
            "spiffe://example.org/{tenant}/{cluster}/node/{node}"
        );
        assert!(!SanTemplate::parse("{node}.é.org").unwrap().binds_cluster());
    }

    #[test]
    fn bad_templates() {
        assert_eq!(
            SanTemplate::parse("spiffe://x/{nod}"),
            Err(TemplateError::Placeholder {
                template: "spiffe://x/{nod}".into(),
                at: 11
            })
        );
        assert!(matches!(
            SanTemplate::parse("a}{node}"),
            Err(TemplateError::Placeholder { at: 1, .. })
        ));
        assert!(matches!(
            SanTemplate::parse("{node"),
            Err(TemplateError::Placeholder { at: 0, .. })
        ));
        assert_eq!(
            SanTemplate::parse("spiffe://x/{cluster}"),
            Err(TemplateError::NoNode {
                template: "spiffe://x/{cluster}".into()
            })
        );
    }

    #[test]
    fn uri_or_dns_san_binds() {
        let binding = CertificateIdentity {
            uri_san: Some(SanTemplate::parse("spiffe://example.org/node/{node}").unwrap()),
            dns_san: Some(SanTemplate::parse("{node}.{cluster}.example.org").unwrap()),
        };
        let id = identity("n1", "edge", "");
        assert!(binding.matches(&id, &cert(&["spiffe://example.org/node/n1"], &[])));
        assert!(binding.matches(&id, &cert(&[], &["N1.Edge.example.org"])));
        assert!(!binding.matches(&id, &cert(&["spiffe://example.org/node/n2"], &[])));
        assert!(!binding.matches(&id, &cert(&[], &["n1.other.example.org"])));
        assert!(!binding.matches(&id, &cert(&[], &[])));
        // URI SANs compare exactly.
        assert!(!binding.matches(&id, &cert(&["SPIFFE://example.org/node/n1"], &[])));
    }

    #[test]
    fn legacy_flag_means_node_id_equals_a_san() {
        let binding = CertificateIdentity::node_id_equals_san();
        let id = identity("n1", "edge", "");
        assert!(binding.matches(&id, &cert(&["n1"], &[])));
        assert!(binding.matches(&id, &cert(&[], &["n1"])));
        assert!(!binding.matches(&id, &cert(&["spiffe://x/n1"], &["n2"])));
    }
}
