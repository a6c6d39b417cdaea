//! Where the core's own config errors point in the file: [`InitiatorConfig::validate`] and
//! [`ResponderConfig::validate`] name Rust fields; these map them to YAML field paths and messages.
//!
//! [`InitiatorConfig::validate`]: crate::initiator::InitiatorConfig::validate

use crate::handshake::HeaderError;
use crate::initiator::InitiatorConfigError;
use crate::responder::{ResponderConfig, ResponderConfigError};

use super::raw::RawListener;
use super::yaml::Path;

/// Where an [`InitiatorConfigError`] points: identity and target errors at the listener's addresses,
/// handshake settings at the downstream extension's fields (`typed` is its `typed_config`). Returns the
/// path and the message.
pub(crate) fn initiator_error_path(
    e: &InitiatorConfigError,
    typed: &Path,
    listener: Option<&RawListener>,
) -> (Path, String) {
    let listener_path = |key: &str| listener.map_or_else(|| typed.clone(), |l| l.path.key(key));
    match e {
        InitiatorConfigError::MixedIdentity { .. }
        | InitiatorConfigError::DuplicateTarget { .. } => {
            (listener_path("additional_addresses"), e.to_string())
        }
        InitiatorConfigError::NoTargets | InitiatorConfigError::InvalidTarget { .. } => {
            (listener_path("address"), e.to_string())
        }
        InitiatorConfigError::Header { field, source } => {
            let key = match *field {
                "extra_headers" => "additional_headers",
                other => other,
            };
            (typed.key("http_handshake").key(key), source.to_string())
        }
        InitiatorConfigError::Zero { field } => {
            (typed.key(field), "must be greater than zero".to_owned())
        }
    }
}

/// Where a [`ResponderConfigError`] points: pool settings at the upstream extension (`upstream` is its
/// `typed_config`), handshake settings at the filter's `typed_config`. Returns the path and the message.
pub(crate) fn responder_error_path(
    e: &ResponderConfigError,
    config: &ResponderConfig,
    upstream: &Path,
    filter: Option<&Path>,
) -> (Path, String) {
    let at_filter = |key: &str| filter.map_or_else(|| upstream.clone(), |f| f.key(key));
    match e {
        ResponderConfigError::Header(source) => {
            let key = match source {
                HeaderError::InvalidMethod(_) => "request_method",
                _ => "request_path",
            };
            (at_filter(key), source.to_string())
        }
        ResponderConfigError::ZeroHandshakeTimeout => (
            at_filter("handshake_timeout"),
            "must be greater than zero".to_owned(),
        ),
        ResponderConfigError::ZeroTunnelCap => (
            upstream.key("max_connections_per_node"),
            "must be greater than 0 (leave it unset for no cap)".to_owned(),
        ),
        ResponderConfigError::ZeroPendingCap => {
            let key = if config.max_pending_handshakes == 0 {
                "max_pending_handshakes"
            } else {
                "max_pending_handshakes_per_ip"
            };
            (upstream.key(key), "must be greater than zero".to_owned())
        }
        ResponderConfigError::EmptyStatPrefix => (upstream.key("stat_prefix"), e.to_string()),
        _ => (filter.unwrap_or(upstream).clone(), e.to_string()),
    }
}
