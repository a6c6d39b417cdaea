//! Reading the YAML tree into [`RawBootstrap`]: one file per section. Each reader checks what it can
//! see locally (types, ranges, fields it does not know) and records every problem; the checks across
//! sections live in [`super::validate`].

mod bootstrap;
mod cluster;
mod extensions;
mod filters;
mod listener;
mod rbac;
mod socket;
mod tls;

pub(crate) use bootstrap::read_bootstrap;
pub(crate) use extensions::{report_initiator_error, report_responder_error};

use super::names::message_name;
use super::yaml::{Cx, Map, Node, Path};

/// A `typed_config`: its mapping (with `@type` taken), the message name of its `@type`, and the path of
/// the `@type` field.
pub(crate) struct Typed<'a> {
    pub(crate) map: Map<'a>,
    pub(crate) message: &'a str,
    pub(crate) type_path: Path,
}

/// Reads a `typed_config` node: a mapping with a string `@type`.
pub(crate) fn typed_config<'a>(node: &Node<'a>, cx: &mut Cx) -> Option<Typed<'a>> {
    let mut map = node.map(cx)?;
    let type_path = map.field("@type");
    let type_url = map.require(cx, "@type")?.str(cx)?;
    Some(Typed {
        map,
        message: message_name(type_url),
        type_path,
    })
}

/// Reads the `name` of an extension (`TypedExtensionConfig`), which must be a non-empty string. Envoy
/// picks the implementation by `@type`; the name is a label.
pub(crate) fn extension_name(map: &mut Map<'_>, cx: &mut Cx) -> Option<String> {
    let node = map.require(cx, "name")?;
    let name = node.string(cx)?;
    if name.is_empty() {
        cx.error(&node.path, "must not be empty");
        return None;
    }
    Some(name)
}

/// An optional string field where the empty string means "not set" (proto3 semantics).
pub(crate) fn non_empty_string(
    map: &mut Map<'_>,
    cx: &mut Cx,
    key: &'static str,
) -> Option<String> {
    map.take(key)
        .and_then(|n| n.string(cx))
        .filter(|s| !s.is_empty())
}

/// A required string field that must not be empty.
pub(crate) fn required_string(map: &mut Map<'_>, cx: &mut Cx, key: &'static str) -> Option<String> {
    let node = map.require(cx, key)?;
    let value = node.string(cx)?;
    if value.is_empty() {
        cx.error(&node.path, "must not be empty");
        return None;
    }
    Some(value)
}

/// A constant format string (Envoy's `*_format` fields): command operators (`%…%`) need request
/// context that revtun does not evaluate.
pub(crate) fn constant_format(node: &Node<'_>, cx: &mut Cx) -> Option<String> {
    let value = node.string(cx)?;
    if value.contains('%') {
        cx.error(
            &node.path,
            format!(
                "command operators such as %REQ(...)% are not supported: use a constant id (got {value:?})"
            ),
        );
        return None;
    }
    Some(value)
}

/// Reads an optional field with `read` and stores it in `slot`; false if it was present but invalid.
pub(crate) fn set<'a, T>(
    map: &mut Map<'a>,
    cx: &mut Cx,
    key: &'static str,
    read: fn(&Node<'a>, &mut Cx) -> Option<T>,
    slot: &mut T,
) -> bool {
    match map.take(key) {
        None => true,
        Some(node) => match read(&node, cx) {
            Some(value) => {
                *slot = value;
                true
            }
            None => false,
        },
    }
}
