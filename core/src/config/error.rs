//! Configuration errors: every problem found in a file, each with the field path it is about.

use std::collections::BTreeSet;
use std::fmt;

/// One problem in a configuration file.
///
/// `path` names the field the way the YAML nests it, with list indices:
/// `static_resources.listeners[0].address.socket_address.address`. Problems with the document as a whole
/// (YAML syntax, a document that is not a mapping) use the path [`DOCUMENT_PATH`]. `Display` is
/// `path: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigError {
    /// Where: the field path (see the type's docs).
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
}

/// The path of errors about the document as a whole (YAML syntax, more than one document, a root that
/// is not a mapping).
pub const DOCUMENT_PATH: &str = "<yaml>";

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file (never empty when returned by
/// [`parse`](super::parse)), in the order they were found: reading the file top to bottom first, then
/// the checks across sections (cluster references, extensions a listener needs, …). Each distinct
/// `path: message` appears once.
///
/// `Display` writes one error per line, without a trailing newline.
#[derive(Clone, Debug, Default)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
    /// The same errors, to drop repeats in O(log n).
    seen: BTreeSet<ConfigError>,
}

impl PartialEq for ConfigErrors {
    fn eq(&self, other: &Self) -> bool {
        self.errors == other.errors
    }
}

impl Eq for ConfigErrors {}

impl ConfigErrors {
    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Adds an error unless the same `path: message` is already there.
    pub(crate) fn push(&mut self, error: ConfigError) {
        if self.seen.insert(error.clone()) {
            self.errors.push(error);
        }
    }
}

impl From<ConfigErrors> for Vec<ConfigError> {
    fn from(errors: ConfigErrors) -> Self {
        errors.errors
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
