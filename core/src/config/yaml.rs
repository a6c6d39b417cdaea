//! A path-tracking reader over a parsed YAML tree: every read that fails records a [`ConfigError`] at
//! the field's path and returns `None`, so the caller goes on and the file's other errors are found
//! too. Maps report the keys nobody asked for as unknown or unsupported fields.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_norway::Value;

use super::duration;
use super::error::{ConfigError, ConfigErrors, DOCUMENT_PATH};

/// A field path such as `static_resources.listeners[0].name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Path(String);

impl Path {
    /// The document root (an empty path).
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// The path of field `key` inside this one.
    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            Self(key.to_owned())
        } else {
            Self(format!("{}.{key}", self.0))
        }
    }

    /// The path of list element `i` of this one.
    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where errors are collected.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    errors: ConfigErrors,
}

impl Cx {
    /// Records an error at `path` (the document root is written [`DOCUMENT_PATH`]).
    pub(crate) fn error(&mut self, path: &Path, message: impl fmt::Display) {
        let path = if path.0.is_empty() {
            DOCUMENT_PATH.to_owned()
        } else {
            path.to_string()
        };
        self.errors
            .push(ConfigError::new(path, message.to_string()));
    }

    /// Records an error with a path that is not a field path (the whole document).
    pub(crate) fn error_at(&mut self, path: &str, message: impl fmt::Display) {
        self.errors
            .push(ConfigError::new(path, message.to_string()));
    }

    /// True if no error has been recorded.
    pub(crate) fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors so far, or `Ok` if there are none.
    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// A value in the tree and its path.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: Path,
}

impl<'a> Node<'a> {
    /// The root node of a document.
    pub(crate) fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: Path::root(),
        }
    }

    /// A mapping, as a [`Map`] whose unread keys are reported by [`Map::finish`].
    pub(crate) fn map(&self, cx: &mut Cx) -> Option<Map<'a>> {
        let Some(mapping) = self.untagged(cx)?.as_mapping() else {
            cx.error(
                &self.path,
                format!("expected a mapping, got {}", kind(self.value)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            match key.as_str() {
                Some(key) => entries.push((key, value)),
                None => cx.error(
                    &self.path,
                    format!("mapping keys must be strings, got {}", kind(key)),
                ),
            }
        }
        Some(Map {
            entries,
            path: self.path.clone(),
            asked: Vec::new(),
            taken: BTreeSet::new(),
        })
    }

    /// A list, as its element nodes.
    pub(crate) fn seq(&self, cx: &mut Cx) -> Option<Vec<Node<'a>>> {
        let Some(seq) = self.untagged(cx)?.as_sequence() else {
            cx.error(
                &self.path,
                format!("expected a list, got {}", kind(self.value)),
            );
            return None;
        };
        Some(
            seq.iter()
                .enumerate()
                .map(|(i, value)| Node {
                    value,
                    path: self.path.index(i),
                })
                .collect(),
        )
    }

    /// A string.
    pub(crate) fn str(&self, cx: &mut Cx) -> Option<&'a str> {
        let value = self.untagged(cx)?;
        if let Some(s) = value.as_str() {
            return Some(s);
        }
        cx.error(
            &self.path,
            format!("expected a string, got {}", kind(self.value)),
        );
        None
    }

    /// A string, owned.
    pub(crate) fn string(&self, cx: &mut Cx) -> Option<String> {
        self.str(cx).map(str::to_owned)
    }

    /// A non-negative integer, written as a number or (as proto-JSON allows) a decimal string.
    pub(crate) fn u64(&self, cx: &mut Cx) -> Option<u64> {
        let value = self.untagged(cx)?;
        let parsed = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        };
        if parsed.is_none() {
            cx.error(
                &self.path,
                format!(
                    "expected a non-negative integer, got {}",
                    describe(self.value)
                ),
            );
        }
        parsed
    }

    /// A `u32` (`UInt32Value`).
    pub(crate) fn u32(&self, cx: &mut Cx) -> Option<u32> {
        let n = self.u64(cx)?;
        let out = u32::try_from(n).ok();
        if out.is_none() {
            cx.error(&self.path, format!("{n} is out of range [0, {}]", u32::MAX));
        }
        out
    }

    /// A `bool` (`BoolValue`).
    pub(crate) fn bool(&self, cx: &mut Cx) -> Option<bool> {
        let value = self.untagged(cx)?;
        if let Some(b) = value.as_bool() {
            return Some(b);
        }
        cx.error(
            &self.path,
            format!("expected true or false, got {}", describe(self.value)),
        );
        None
    }

    /// A duration: `"2s"`, `"0.5s"`, `"100ms"` or `{seconds: 2, nanos: 0}`.
    pub(crate) fn duration(&self, cx: &mut Cx) -> Option<Duration> {
        let value = self.untagged(cx)?;
        if let Some(text) = value.as_str() {
            return match duration::parse_duration(text) {
                Ok(d) => Some(d),
                Err(e) => {
                    cx.error(&self.path, e);
                    None
                }
            };
        }
        if value.is_mapping() {
            let mut map = self.map(cx)?;
            let seconds = map.take("seconds").and_then(|n| n.u64(cx));
            let nanos = map.take("nanos").and_then(|n| n.u64(cx));
            let ok = map.finish(cx);
            if !ok {
                return None;
            }
            return match duration::from_parts(seconds.unwrap_or(0), nanos.unwrap_or(0)) {
                Ok(d) => Some(d),
                Err(message) => {
                    cx.error(&self.path, message);
                    None
                }
            };
        }
        cx.error(
            &self.path,
            format!(
                "expected a duration such as \"2s\", \"0.5s\" or \"100ms\", got {}",
                describe(self.value)
            ),
        );
        None
    }

    /// One of the names in `choices` (compared ASCII-case-insensitively, as Envoy reads enums).
    pub(crate) fn choice<T: Copy>(&self, cx: &mut Cx, choices: &[(&str, T)]) -> Option<T> {
        let text = self.str(cx)?;
        if let Some((_, value)) = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
        {
            return Some(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        cx.error(
            &self.path,
            format!(
                "unsupported value {text:?}; expected one of: {}",
                names.join(", ")
            ),
        );
        None
    }

    /// The value itself, or an error if it carries a YAML tag (`!foo`), which nothing here uses.
    fn untagged(&self, cx: &mut Cx) -> Option<&'a Value> {
        if let Value::Tagged(tagged) = self.value {
            cx.error(
                &self.path,
                format!("YAML tags are not supported (found {})", tagged.tag),
            );
            return None;
        }
        Some(self.value)
    }
}

/// A mapping being read: [`take`](Map::take) each supported key, then [`finish`](Map::finish) to report
/// the others.
#[derive(Debug)]
pub(crate) struct Map<'a> {
    entries: Vec<(&'a str, &'a Value)>,
    path: Path,
    asked: Vec<&'static str>,
    taken: BTreeSet<&'a str>,
}

impl<'a> Map<'a> {
    /// The mapping's own path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of field `key` of this mapping.
    pub(crate) fn field(&self, key: &str) -> Path {
        self.path.key(key)
    }

    /// The value of `key`; `None` if it is absent or null (proto-JSON reads `null` as "not set").
    pub(crate) fn take(&mut self, key: &'static str) -> Option<Node<'a>> {
        self.asked.push(key);
        let (k, value) = self.entries.iter().find(|(k, _)| *k == key)?;
        self.taken.insert(*k);
        (!value.is_null()).then(|| Node {
            value,
            path: self.path.key(key),
        })
    }

    /// The value of `key`, which must be present: records `missing required field` otherwise.
    pub(crate) fn require(&mut self, cx: &mut Cx, key: &'static str) -> Option<Node<'a>> {
        let node = self.take(key);
        if node.is_none() {
            cx.error(&self.path.key(key), "missing required field");
        }
        node
    }

    /// Every entry, in file order, all taken: for mappings keyed by names the file chooses (RBAC
    /// policies). Null values are skipped.
    pub(crate) fn take_all(&mut self) -> Vec<(&'a str, Node<'a>)> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (key, value) in &self.entries {
            self.taken.insert(*key);
            if !value.is_null() {
                out.push((
                    *key,
                    Node {
                        value,
                        path: self.path.key(key),
                    },
                ));
            }
        }
        out
    }

    /// Like [`finish`](Self::finish), but each key not taken is reported with `message`.
    pub(crate) fn finish_with(&mut self, cx: &mut Cx, message: &str) -> bool {
        let mut ok = true;
        for (key, _) in &self.entries {
            if !self.taken.contains(key) {
                ok = false;
                cx.error(&self.path.key(key), message);
            }
        }
        ok
    }

    /// True if `key` is present (even if null), without taking it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| *k == key)
    }

    /// Reports every key that was not taken as an unknown or unsupported field; true if there were none.
    /// Call it once, after the last [`take`](Self::take).
    pub(crate) fn finish(&mut self, cx: &mut Cx) -> bool {
        let mut ok = true;
        for (key, _) in &self.entries {
            if !self.taken.contains(key) {
                ok = false;
                let mut expected: Vec<&str> = self
                    .asked
                    .iter()
                    .copied()
                    .filter(|k| *k != "@type")
                    .collect();
                expected.sort_unstable();
                expected.dedup();
                let message = if expected.is_empty() {
                    "unknown or unsupported field".to_owned()
                } else {
                    format!(
                        "unknown or unsupported field; supported here: {}",
                        expected.join(", ")
                    )
                };
                cx.error(&self.path.key(key), message);
            }
        }
        ok
    }
}

/// A short name for a value's YAML kind, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A scalar with its value, other values by kind, for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        other => kind(other).to_owned(),
    }
}
