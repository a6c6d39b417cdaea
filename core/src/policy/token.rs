//! Bearer tokens: the token-file format, constant-time comparison against every allowed token, and a
//! shared, swappable set so a driver can re-read the file while the state machine keeps running.

use std::fmt;
use std::sync::{Arc, RwLock};

/// A set of allowed bearer tokens. `Debug` never prints them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    tokens: Vec<Vec<u8>>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSet(<{} tokens>)", self.tokens.len())
    }
}

impl TokenSet {
    /// Reads a token file's contents: one token per line, surrounding whitespace trimmed, blank lines
    /// and lines starting with `#` (after trimming) ignored. Duplicates are kept once.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        for line in text.lines() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if !tokens.iter().any(|t| t == token.as_bytes()) {
                tokens.push(token.as_bytes().to_vec());
            }
        }
        Self { tokens }
    }

    /// A set of the given tokens (empty ones are dropped).
    #[must_use]
    pub fn from_tokens<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self {
            tokens: tokens
                .into_iter()
                .map(|t| t.as_ref().to_vec())
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// How many tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the set has no token (then nothing is accepted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `candidate` is one of the tokens. Compares against **every** token, each in constant time
    /// for its length, with no early exit on a match or a mismatch; only the number and lengths of the
    /// tokens can be learnt from the timing.
    #[must_use]
    pub fn contains(&self, candidate: &[u8]) -> bool {
        let mut found = 0u8;
        for token in &self.tokens {
            found |= ct_eq(candidate, token);
        }
        std::hint::black_box(found) == 1
    }

    /// Whether an `authorization` header value is `Bearer <token>` (scheme case-insensitive) with a
    /// token of the set.
    #[must_use]
    pub fn accepts_authorization(&self, header: Option<&[u8]>) -> bool {
        let candidate = header.and_then(bearer_credential).unwrap_or_default();
        // An absent or empty credential still runs the comparisons, and never matches (no token is empty).
        self.contains(candidate)
    }
}

/// The credential of `Bearer <token>` (scheme case-insensitive, surrounding whitespace trimmed).
#[must_use]
pub fn bearer_credential(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// 1 if `a == b`, else 0, without a data-dependent branch over the bytes of the token `b`.
fn ct_eq(a: &[u8], b: &[u8]) -> u8 {
    // Lengths differ → the diff is non-zero; all of `b` is still walked.
    let mut diff = u8::from(a.len() != b.len());
    for (i, y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(!*y);
        diff |= x ^ y;
    }
    u8::from(std::hint::black_box(diff) == 0)
}

/// A [`TokenSet`] shared between an authorizer (which reads it on every handshake) and whoever reloads
/// it (which swaps in a new one). Cloning shares the same set.
#[derive(Clone, Default)]
pub struct SharedTokens {
    inner: Arc<RwLock<Arc<TokenSet>>>,
}

impl fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedTokens")
            .field(&self.current())
            .finish()
    }
}

impl SharedTokens {
    /// Shares `set`.
    #[must_use]
    pub fn new(set: TokenSet) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(set))),
        }
    }

    /// The set in force (a cheap `Arc` clone; the lock is held only for that).
    #[must_use]
    pub fn current(&self) -> Arc<TokenSet> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `set` in force for every later handshake.
    pub fn replace(&self, set: TokenSet) {
        let set = Arc::new(set);
        match self.inner.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// A weak handle: a reloader holds one, so it can tell when every authorizer is gone.
    #[must_use]
    pub fn downgrade(&self) -> WeakTokens {
        WeakTokens {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

/// A [`SharedTokens`] that does not keep the set alive.
#[derive(Clone, Debug)]
pub struct WeakTokens {
    inner: std::sync::Weak<RwLock<Arc<TokenSet>>>,
}

impl WeakTokens {
    /// The shared set, if anyone still holds it.
    #[must_use]
    pub fn upgrade(&self) -> Option<SharedTokens> {
        self.inner.upgrade().map(|inner| SharedTokens { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format() {
        let set = TokenSet::parse("# tokens\n\n  alpha  \r\nbeta\n#gamma\nalpha\n\t\n");
        assert_eq!(set.len(), 2);
        assert!(set.contains(b"alpha") && set.contains(b"beta"));
        assert!(!set.contains(b"gamma") && !set.contains(b"#gamma") && !set.contains(b""));
        assert!(TokenSet::parse("\n# only a comment\n").is_empty());
    }

    #[test]
    fn comparison_and_bearer() {
        let set = TokenSet::from_tokens(["abc", "abcd", ""]);
        assert_eq!(set.len(), 2);
        assert!(set.contains(b"abc") && set.contains(b"abcd"));
        for wrong in [&b"ab"[..], b"abd", b"abcde", b"", b"\xffbc"] {
            assert!(!set.contains(wrong), "{wrong:?}");
        }
        assert_eq!(bearer_credential(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credential(b"bEaReR  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_credential(b"Basic abc"), None);
        assert_eq!(bearer_credential(b"Bear"), None);
        assert!(set.accepts_authorization(Some(b"Bearer abcd")));
        assert!(!set.accepts_authorization(Some(b"Bearer ")));
        assert!(!set.accepts_authorization(None));
        assert!(!TokenSet::default().accepts_authorization(Some(b"Bearer x")));
    }

    #[test]
    fn shared_sets_swap_and_weak_handles_expire() {
        let shared = SharedTokens::new(TokenSet::parse("old"));
        let weak = shared.downgrade();
        weak.upgrade()
            .expect("alive")
            .replace(TokenSet::parse("new"));
        assert!(shared.current().contains(b"new") && !shared.current().contains(b"old"));
        assert!(!format!("{shared:?}").contains("new"));
        drop(shared);
        assert!(weak.upgrade().is_none());
    }
}
