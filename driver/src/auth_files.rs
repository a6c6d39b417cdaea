//! Token files for the responder's [`Policy`](revtun_core::policy::Policy): read once at start, then
//! re-read in the background when they change, so a rotated token takes effect without a restart.
//!
//! The core's authorizer runs inside the state machine and must not block, so the file is never read
//! there: [`watch_token_file`] reads it once, returns a [`SharedTokens`] for the policy, and spawns a
//! task on the [`Runtime`] that checks the file's fingerprint (modification time, length, inode) at most
//! once per interval and swaps in a new [`TokenSet`] when it changed. A reload that fails (the file is
//! gone or unreadable) or finds no token keeps the set in force and logs one warning per change of
//! the file. The task ends by itself, within one interval, once every clone of the returned
//! [`SharedTokens`] (the policy holding it) is dropped.
//!
//! File format ([`TokenSet::parse`]): one token per line, surrounding whitespace trimmed, blank lines and
//! `#` comments ignored.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use revtun_core::policy::{SharedTokens, TokenSet, WeakTokens};

use crate::runtime::Runtime;

/// How often a watched token file's fingerprint is checked by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A token file that cannot be used.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds no token (only blank lines and comments).
    #[error("token file {} has no token (one token per line; # starts a comment)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a token file into a [`TokenSet`].
///
/// # Errors
/// The file cannot be read, is not UTF-8, or holds no token.
pub fn read_token_file(path: &Path) -> Result<TokenSet, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let set = TokenSet::parse(&text);
    if set.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(set)
}

/// Reads `path` now and keeps re-reading it on change (checked every `interval`, at least 10 ms) on
/// `rt`; see the module documentation.
///
/// # Errors
/// The first read failed ([`read_token_file`]): a responder should not start without its tokens.
pub fn watch_token_file(
    rt: &Arc<dyn Runtime>,
    path: impl Into<PathBuf>,
    interval: Duration,
) -> Result<SharedTokens, TokenFileError> {
    let path = path.into();
    let fingerprint = Fingerprint::of(&path).ok();
    let shared = SharedTokens::new(read_token_file(&path)?);
    let watcher = Watcher {
        path,
        interval: interval.max(Duration::from_millis(10)),
        tokens: shared.downgrade(),
        last: fingerprint,
        failing: false,
    };
    let task_rt = rt.clone();
    rt.spawn(Box::pin(watcher.run(task_rt)));
    Ok(shared)
}

/// What identifies one version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Fingerprint {
    fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The background re-reader of one file.
struct Watcher {
    path: PathBuf,
    interval: Duration,
    tokens: WeakTokens,
    /// The fingerprint of the version last read (or last tried).
    last: Option<Fingerprint>,
    /// The last check failed; the next failure is not logged again until a success.
    failing: bool,
}

impl Watcher {
    async fn run(mut self, rt: Arc<dyn Runtime>) {
        loop {
            rt.sleep_until(rt.now() + self.interval).await;
            let Some(tokens) = self.tokens.upgrade() else {
                tracing::debug!(path = %self.path.display(), "token file no longer used; watcher ends");
                return;
            };
            self.check(&tokens);
        }
    }

    /// One check: re-read the file if its fingerprint changed.
    fn check(&mut self, tokens: &SharedTokens) {
        let fingerprint = match Fingerprint::of(&self.path) {
            Ok(f) => f,
            Err(e) => {
                self.warn_once(&format!("cannot stat: {e}"));
                self.last = None;
                return;
            }
        };
        if self.last == Some(fingerprint) {
            return;
        }
        self.last = Some(fingerprint);
        match read_token_file(&self.path) {
            Ok(set) => {
                tracing::info!(path = %self.path.display(), tokens = set.len(), "token file reloaded");
                tokens.replace(set);
                self.failing = false;
            }
            Err(e) => self.warn_once(&e.to_string()),
        }
    }

    fn warn_once(&mut self, error: &str) {
        if !self.failing {
            tracing::warn!(path = %self.path.display(), error, "token file reload failed; the tokens in force stay");
        }
        self.failing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_reload_on_change_and_keep_the_set_on_failure() {
        let dir = std::env::temp_dir().join(format!("revtun-auth-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "alpha\n").unwrap();
        let shared = SharedTokens::new(read_token_file(&path).unwrap());
        let mut w = Watcher {
            path: path.clone(),
            interval: DEFAULT_RELOAD_INTERVAL,
            tokens: shared.downgrade(),
            last: Fingerprint::of(&path).ok(),
            failing: false,
        };
        w.check(&shared);
        assert!(shared.current().contains(b"alpha"));
        // A new file (new inode) with a new token.
        let tmp = dir.join("tokens.new");
        std::fs::write(&tmp, "# rotated\nbeta\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        w.check(&shared);
        assert!(shared.current().contains(b"beta") && !shared.current().contains(b"alpha"));
        // Emptied: the set in force stays.
        std::fs::write(&path, "# nothing\n\n").unwrap();
        w.check(&shared);
        assert!(w.failing && shared.current().contains(b"beta"));
        // Removed: still the same set.
        std::fs::remove_file(&path).unwrap();
        w.check(&shared);
        assert!(shared.current().contains(b"beta"));
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::Read { .. })
        ));
        std::fs::write(&path, "gamma").unwrap();
        w.check(&shared);
        assert!(!w.failing && shared.current().contains(b"gamma"));
        std::fs::write(&path, "   \n# c\n").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
