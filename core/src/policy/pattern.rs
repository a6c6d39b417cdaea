//! Id patterns of the allow-lists: `name` (exact), `prefix*`, `*suffix` and `*` alone.

use std::fmt;

/// One allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdPattern {
    /// The id must equal this string.
    Exact(String),
    /// `prefix*`: the id must start with this string (and may equal it).
    Prefix(String),
    /// `*suffix`: the id must end with this string (and may equal it).
    Suffix(String),
    /// `*`: every id.
    Any,
}

/// An allow-list entry that is not one of the four shapes.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error(
    "invalid pattern {pattern:?}: use an exact id, 'prefix*', '*suffix' or '*' alone ('*' may appear only once, at the start or the end)"
)]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
}

impl IdPattern {
    /// Reads one pattern.
    ///
    /// # Errors
    /// A `*` anywhere but alone, at the very start or at the very end (e.g. `a*b`, `**`, `*a*`).
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let stars = pattern.matches('*').count();
        let parsed = match (stars, pattern) {
            (0, _) => Some(Self::Exact(pattern.to_owned())),
            (1, "*") => Some(Self::Any),
            (1, _) => {
                if let Some(prefix) = pattern.strip_suffix('*') {
                    Some(Self::Prefix(prefix.to_owned()))
                } else {
                    pattern
                        .strip_prefix('*')
                        .map(|suffix| Self::Suffix(suffix.to_owned()))
                }
            }
            _ => None,
        };
        parsed.ok_or_else(|| PatternError {
            pattern: pattern.to_owned(),
        })
    }

    /// Whether `id` matches.
    #[must_use]
    pub fn matches(&self, id: &str) -> bool {
        match self {
            Self::Exact(exact) => id == exact,
            Self::Prefix(prefix) => id.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => id.ends_with(suffix.as_str()),
            Self::Any => true,
        }
    }
}

impl fmt::Display for IdPattern {
    /// The pattern as it is written in a config file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(s) => f.write_str(s),
            Self::Prefix(s) => write!(f, "{s}*"),
            Self::Suffix(s) => write!(f, "*{s}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// An allow-list of ids. An empty list allows every id (nothing configured); otherwise an id must match
/// at least one pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllowList {
    patterns: Vec<IdPattern>,
}

impl AllowList {
    /// Reads every pattern of `patterns`.
    ///
    /// # Errors
    /// The index and error of the first invalid pattern.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, PatternError)> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| IdPattern::parse(p.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// A list of the given patterns.
    #[must_use]
    pub fn new(patterns: Vec<IdPattern>) -> Self {
        Self { patterns }
    }

    /// Whether the list checks anything (is not empty).
    #[must_use]
    pub fn is_restrictive(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether `id` is allowed: the list is empty, or a pattern matches.
    #[must_use]
    pub fn allows(&self, id: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(id))
    }

    /// The patterns, in order.
    #[must_use]
    pub fn patterns(&self) -> &[IdPattern] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_shapes_parse_and_match() {
        let exact = IdPattern::parse("edge-1").unwrap();
        assert!(exact.matches("edge-1") && !exact.matches("edge-10"));
        let prefix = IdPattern::parse("edge-*").unwrap();
        assert_eq!(prefix, IdPattern::Prefix("edge-".into()));
        assert!(prefix.matches("edge-") && prefix.matches("edge-7") && !prefix.matches("edg"));
        let suffix = IdPattern::parse("*.prod").unwrap();
        assert!(suffix.matches("a.prod") && suffix.matches(".prod") && !suffix.matches("a.dev"));
        assert_eq!(IdPattern::parse("*").unwrap(), IdPattern::Any);
        assert!(IdPattern::Any.matches(""));
        for p in ["edge-*", "*.prod", "*", "x"] {
            assert_eq!(IdPattern::parse(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn stars_elsewhere_are_errors() {
        for bad in ["a*b", "**", "*a*", "a**", "**a", "*a*b"] {
            assert_eq!(
                IdPattern::parse(bad),
                Err(PatternError {
                    pattern: bad.into()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_list_allows_all_and_errors_carry_the_index() {
        assert!(AllowList::default().allows("anything"));
        let list = AllowList::parse(&["a", "b-*"]).unwrap();
        assert!(list.allows("a") && list.allows("b-1") && !list.allows("c"));
        assert_eq!(AllowList::parse(&["a", "x*y"]).unwrap_err().0, 1);
    }
}
