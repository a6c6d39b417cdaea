//! The `rc://` reverse-connection listener address grammar.
//!
//! An initiator's listener carries a `socket_address` of the form
//! `rc://<src_node>:<src_cluster>:<src_tenant>@<target_cluster>:<count>` with `port_value: 0`. It names
//! the initiator's identity (sent in every handshake), the responder-side cluster to dial, and how many
//! idle tunnels to keep per resolved host of that cluster.
//!
//! Parsing follows Envoy's `ReverseConnectionResolver` rule for rule, with the same error texts, and
//! applies the rules in this order (the first rule that fails decides the error):
//!
//! 1. the address starts with `rc://`;
//! 2. the port is 0;
//! 3. the rest, split on every `@`, has exactly 2 parts;
//! 4. the first part, split on every `:`, has exactly 3 fields (node, cluster, tenant);
//! 5. node and cluster are non-empty (the tenant may be empty);
//! 6. the second part, split on every `:`, has exactly 2 fields (target cluster, count);
//! 7. the count is a decimal `u32` as `absl::SimpleAtoi` reads it: surrounding ASCII whitespace and one
//!    leading `+` are allowed; no `-`, no hex, no overflow;
//! 8. the count is in `[1, 1024]`;
//! 9. the target cluster is non-empty;
//! 10. node, cluster, tenant and target cluster, in that order, are each at most 255 bytes and a valid
//!     HTTP header value that does not begin or end with a space or a tab.
//!
//! [`RcAddress`]'s `Display` renders the canonical form, which parses back to an equal value.

use std::fmt;
use std::str::FromStr;

use crate::headers::{has_surrounding_whitespace, is_valid_header_value};

/// The largest number of idle tunnels per host an address may ask for.
pub const MAX_COUNT: u32 = 1024;

/// The smallest number of idle tunnels per host an address may ask for.
const MIN_COUNT: u32 = 1;

/// The longest identifier (node, cluster, tenant, target cluster), in bytes.
pub const MAX_ID_LEN: usize = 255;

/// The scheme prefix that marks a reverse-connection address.
pub const SCHEME: &str = "rc://";

/// True if `s` starts with `rc://`: this is how a configuration decides that a listener address is a
/// reverse-connection address (and must then parse as one) rather than an ordinary socket address.
///
/// ```
/// use revtun_core::address::is_rc_address;
/// assert!(is_rc_address("rc://node:cluster:@target:1"));
/// assert!(is_rc_address("rc://not even valid"));
/// assert!(!is_rc_address("127.0.0.1"));
/// assert!(!is_rc_address("RC://node:cluster:@target:1"));
/// ```
pub fn is_rc_address(s: &str) -> bool {
    s.starts_with(SCHEME)
}

/// The identifier fields of an `rc://` address, named as Envoy's error messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdField {
    /// `src_node`: the initiator's node id. Displays as `Source node ID`.
    SourceNode,
    /// `src_cluster`: the initiator's cluster id. Displays as `Source cluster ID`.
    SourceCluster,
    /// `src_tenant`: the initiator's tenant id (may be empty). Displays as `Source tenant ID`.
    SourceTenant,
    /// `target_cluster`: the responder-side cluster to dial. Displays as `Remote cluster name`.
    RemoteCluster,
}

impl fmt::Display for IdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdField::SourceNode => "Source node ID",
            IdField::SourceCluster => "Source cluster ID",
            IdField::SourceTenant => "Source tenant ID",
            IdField::RemoteCluster => "Remote cluster name",
        })
    }
}

/// Why a string is not a valid `rc://` address.
///
/// `Display` gives exactly Envoy's message for the rule that failed; each variant carries what that
/// message prints.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Rule 1: the address does not start with `rc://`.
    #[error(
        "Address must start with 'rc://' for reverse connection resolver. Expected format: rc://src_node_id:src_cluster_id:src_tenant_id@cluster_name:count"
    )]
    MissingScheme,
    /// Rule 2: the listener's `port_value` is not 0.
    #[error("Only port 0 is supported for reverse connections. Got port: {port}")]
    NonZeroPort {
        /// The port that was given.
        port: u32,
    },
    /// Rule 3: the part after `rc://` does not split on `@` into exactly two parts.
    #[error(
        "Invalid reverse connection address format. Expected: rc://src_node_id:src_cluster_id:src_tenant_id@cluster_name:count"
    )]
    InvalidFormat,
    /// Rule 4: the source info (before `@`) does not split on `:` into exactly three fields.
    #[error("Invalid source info format. Expected: src_node_id:src_cluster_id:src_tenant_id")]
    InvalidSourceInfo,
    /// Rule 5: the source node id is empty.
    #[error("Source node ID cannot be empty")]
    EmptyNode,
    /// Rule 5: the source cluster id is empty.
    #[error("Source cluster ID cannot be empty")]
    EmptyCluster,
    /// Rule 6: the cluster config (after `@`) does not split on `:` into exactly two fields.
    #[error("Invalid cluster config format: {part}. Expected: cluster_name:count")]
    InvalidClusterConfig {
        /// The whole cluster config part, as written (everything after the `@`).
        part: String,
    },
    /// Rule 7: the count is not a decimal `u32`.
    #[error("Invalid connection count: {count}")]
    InvalidCount {
        /// The count as written, including any surrounding whitespace or sign.
        count: String,
    },
    /// Rule 8: the count is outside `[1, 1024]`.
    #[error("Connection count {count} is outside the supported range [1, 1024]")]
    CountOutOfRange {
        /// The parsed count.
        count: u32,
    },
    /// Rule 9: the target (remote) cluster name is empty.
    #[error("Remote cluster name cannot be empty")]
    EmptyTargetCluster,
    /// Rule 10: an identifier is longer than 255 bytes.
    #[error("{field} exceeds the 255-byte limit for reverse connection identifiers")]
    IdTooLong {
        /// The identifier that is too long.
        field: IdField,
    },
    /// Rule 10: an identifier is not a valid HTTP header value, or begins or ends with a space or tab.
    #[error("{field} contains characters that are invalid in an HTTP header value")]
    InvalidIdChars {
        /// The identifier with the invalid characters.
        field: IdField,
    },
}

/// A parsed `rc://<src_node>:<src_cluster>:<src_tenant>@<target_cluster>:<count>` address.
///
/// Every value satisfies all the grammar's rules, so its `Display` form (the canonical
/// `rc://node:cluster:tenant@target:count`) always parses back to an equal value.
///
/// ```
/// use revtun_core::address::{AddressError, RcAddress};
///
/// let addr: RcAddress = "rc://node-1:downstream-cluster:tenant-a@upstream-cluster:+3 ".parse()?;
/// assert_eq!(addr.node(), "node-1");
/// assert_eq!(addr.cluster(), "downstream-cluster");
/// assert_eq!(addr.tenant(), "tenant-a");
/// assert_eq!(addr.target_cluster(), "upstream-cluster");
/// assert_eq!(addr.count(), 3);
/// assert_eq!(addr.to_string(), "rc://node-1:downstream-cluster:tenant-a@upstream-cluster:3");
/// assert_eq!(addr.to_string().parse::<RcAddress>()?, addr);
///
/// // A listener's socket_address must use port 0.
/// let err = RcAddress::from_socket_address("rc://n:c:@t:1", 8080).unwrap_err();
/// assert_eq!(err.to_string(), "Only port 0 is supported for reverse connections. Got port: 8080");
///
/// // The tenant may be empty; the count must be in [1, 1024].
/// assert!(RcAddress::new("n", "c", "", "t", 1).is_ok());
/// assert_eq!(
///     RcAddress::new("n", "c", "", "t", 0),
///     Err(AddressError::CountOutOfRange { count: 0 })
/// );
/// # Ok::<(), AddressError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RcAddress {
    node: String,
    cluster: String,
    tenant: String,
    target_cluster: String,
    count: u32,
}

impl RcAddress {
    /// Builds an address from its parts, checking rules 5, 8, 9 and 10 in that order, with the same
    /// errors as parsing.
    ///
    /// A part that contains a delimiter could not be written down and read back, so it is rejected with
    /// the error that parsing the rendered address would give: `@` in any part fails rule 3
    /// ([`AddressError::InvalidFormat`]), `:` in node, cluster or tenant fails rule 4
    /// ([`AddressError::InvalidSourceInfo`]), `:` in the target cluster fails rule 6
    /// ([`AddressError::InvalidClusterConfig`]). In short, `new(n, c, t, tc, k)` returns exactly what
    /// parsing `rc://n:c:t@tc:k` returns.
    pub fn new(
        node: &str,
        cluster: &str,
        tenant: &str,
        target_cluster: &str,
        count: u32,
    ) -> Result<Self, AddressError> {
        // Rule 3: every `@` adds a part to the `@` split of the rendered address.
        if [node, cluster, tenant, target_cluster]
            .iter()
            .any(|part| part.contains('@'))
        {
            return Err(AddressError::InvalidFormat);
        }
        // Rule 4: every `:` in the source info adds a field to its `:` split.
        if [node, cluster, tenant]
            .iter()
            .any(|part| part.contains(':'))
        {
            return Err(AddressError::InvalidSourceInfo);
        }
        check_source_ids_present(node, cluster)?;
        // Rule 6: a `:` in the target cluster adds a field to the cluster config's `:` split.
        if target_cluster.contains(':') {
            return Err(AddressError::InvalidClusterConfig {
                part: format!("{target_cluster}:{count}"),
            });
        }
        // Rule 7 cannot fail: a `u32` renders as decimal digits.
        Self::validated(node, cluster, tenant, target_cluster, count)
    }

    /// Parses a listener's `socket_address` (`address` and `port_value`), checking all ten rules in
    /// order, including rule 2: the port must be 0.
    pub fn from_socket_address(address: &str, port_value: u32) -> Result<Self, AddressError> {
        // Rule 1.
        let rest = address
            .strip_prefix(SCHEME)
            .ok_or(AddressError::MissingScheme)?;
        // Rule 2.
        if port_value != 0 {
            return Err(AddressError::NonZeroPort { port: port_value });
        }
        // Rule 3.
        let (source_info, cluster_config) = split2(rest, '@').ok_or(AddressError::InvalidFormat)?;
        // Rule 4.
        let (node, cluster, tenant) =
            split3(source_info, ':').ok_or(AddressError::InvalidSourceInfo)?;
        // Rule 5.
        check_source_ids_present(node, cluster)?;
        // Rule 6.
        let (target_cluster, count) =
            split2(cluster_config, ':').ok_or_else(|| AddressError::InvalidClusterConfig {
                part: cluster_config.to_owned(),
            })?;
        // Rule 7.
        let count = simple_atoi_u32(count).ok_or_else(|| AddressError::InvalidCount {
            count: count.to_owned(),
        })?;
        // Rules 8, 9, 10.
        Self::validated(node, cluster, tenant, target_cluster, count)
    }

    /// Rules 8, 9 and 10, then builds the value. The caller has checked rules 1 to 7.
    fn validated(
        node: &str,
        cluster: &str,
        tenant: &str,
        target_cluster: &str,
        count: u32,
    ) -> Result<Self, AddressError> {
        // Rule 8.
        if !(MIN_COUNT..=MAX_COUNT).contains(&count) {
            return Err(AddressError::CountOutOfRange { count });
        }
        // Rule 9.
        if target_cluster.is_empty() {
            return Err(AddressError::EmptyTargetCluster);
        }
        // Rule 10, field by field.
        check_id(IdField::SourceNode, node)?;
        check_id(IdField::SourceCluster, cluster)?;
        check_id(IdField::SourceTenant, tenant)?;
        check_id(IdField::RemoteCluster, target_cluster)?;
        Ok(Self {
            node: node.to_owned(),
            cluster: cluster.to_owned(),
            tenant: tenant.to_owned(),
            target_cluster: target_cluster.to_owned(),
            count,
        })
    }

    /// The initiator's node id (`src_node`, sent as `x-envoy-reverse-tunnel-node-id`). Never empty.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The initiator's cluster id (`src_cluster`, sent as `x-envoy-reverse-tunnel-cluster-id`). Never
    /// empty.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The initiator's tenant id (`src_tenant`, sent as `x-envoy-reverse-tunnel-tenant-id`). May be empty.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The responder-side cluster to dial (sent as `x-envoy-reverse-tunnel-upstream-cluster-name`).
    /// Never empty.
    pub fn target_cluster(&self) -> &str {
        &self.target_cluster
    }

    /// How many idle tunnels to keep per resolved host of the target cluster, in `[1, 1024]`.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl FromStr for RcAddress {
    type Err = AddressError;

    /// Parses an address with port 0 implied: the same as
    /// [`from_socket_address(s, 0)`](RcAddress::from_socket_address).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_socket_address(s, 0)
    }
}

impl fmt::Display for RcAddress {
    /// The canonical form `rc://node:cluster:tenant@target_cluster:count`, with the count in plain
    /// decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}:{}:{}@{}:{}",
            self.node, self.cluster, self.tenant, self.target_cluster, self.count
        )
    }
}

/// Rule 5: node and cluster must be non-empty (the tenant may be empty).
fn check_source_ids_present(node: &str, cluster: &str) -> Result<(), AddressError> {
    if node.is_empty() {
        return Err(AddressError::EmptyNode);
    }
    if cluster.is_empty() {
        return Err(AddressError::EmptyCluster);
    }
    Ok(())
}

/// Rule 10 for one identifier: length first, then the characters.
fn check_id(field: IdField, value: &str) -> Result<(), AddressError> {
    let bytes = value.as_bytes();
    if bytes.len() > MAX_ID_LEN {
        return Err(AddressError::IdTooLong { field });
    }
    if !is_valid_header_value(bytes) || has_surrounding_whitespace(bytes) {
        return Err(AddressError::InvalidIdChars { field });
    }
    Ok(())
}

/// Splits `s` on every `sep`; `Some` if that gives exactly two pieces.
fn split2(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut pieces = s.split(sep);
    let out = (pieces.next()?, pieces.next()?);
    pieces.next().is_none().then_some(out)
}

/// Splits `s` on every `sep`; `Some` if that gives exactly three pieces.
fn split3(s: &str, sep: char) -> Option<(&str, &str, &str)> {
    let mut pieces = s.split(sep);
    let out = (pieces.next()?, pieces.next()?, pieces.next()?);
    pieces.next().is_none().then_some(out)
}

/// Reads a `u32` the way `absl::SimpleAtoi` does: strip ASCII whitespace (space, `\t`, `\n`, `\v`,
/// `\f`, `\r`) from both ends, allow one leading `+`, then at least one decimal digit and nothing else.
/// A `-` sign (even `-0`), hex, inner whitespace and overflow are rejected.
fn simple_atoi_u32(s: &str) -> Option<u32> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut bytes = s.as_bytes();
    while let [first, rest @ ..] = bytes {
        if !is_space(first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_space(last) {
            break;
        }
        bytes = rest;
    }
    if let [b'+', rest @ ..] = bytes {
        bytes = rest;
    }
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_atoi() {
        for (s, want) in [
            ("0", Some(0)),
            ("007", Some(7)),
            ("+5", Some(5)),
            (" \t\n\x0b\x0c\r5 \t\n\x0b\x0c\r", Some(5)),
            (" +5 ", Some(5)),
            ("4294967295", Some(u32::MAX)),
            ("4294967296", None),
            ("99999999999999999999", None),
            ("", None),
            (" ", None),
            ("+", None),
            ("++5", None),
            ("+ 5", None),
            ("5 5", None),
            ("-0", None),
            ("-1", None),
            ("0x10", None),
            ("5a", None),
            ("٣", None),
            ("\u{a0}5", None),
        ] {
            assert_eq!(simple_atoi_u32(s), want, "{s:?}");
        }
    }

    #[test]
    fn splits_count_every_separator() {
        assert_eq!(split2("a@b", '@'), Some(("a", "b")));
        assert_eq!(split2("@", '@'), Some(("", "")));
        assert_eq!(split2("ab", '@'), None);
        assert_eq!(split2("a@b@c", '@'), None);
        assert_eq!(split3("a::", ':'), Some(("a", "", "")));
        assert_eq!(split3("a:b", ':'), None);
        assert_eq!(split3("a:b:c:d", ':'), None);
    }
}
