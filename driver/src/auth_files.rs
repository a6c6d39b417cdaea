//! Token files, read once at start, then re-read in the background when they change, so a rotated
//! token takes effect without a restart:
//!
//! - the responder's token set for its [`Policy`](revtun_core::policy::Policy) ([`watch_token_file`]);
//! - the initiator's bearer token, sent as `authorization: Bearer <token>` by its
//!   [`ReverseListener`]s ([`BearerTokenFile`]).
//!
//! Neither file is read inside a state machine: the core's authorizer must not block. A background task
//! on the [`Runtime`] checks the file's fingerprint (modification time, length, inode) at most once per
//! interval and re-reads it when it changed. A reload that fails (the file is gone or unreadable) or
//! finds no token keeps the value in force and logs one warning per change of the file. The task ends
//! by itself, within one interval, once the value is no longer used (every clone of the
//! [`SharedTokens`] dropped; every listener of the bearer token gone).
//!
//! Token-set file format ([`TokenSet::parse`]): one token per line, surrounding whitespace trimmed, blank
//! lines and `#` comments ignored. Bearer token file format ([`read_bearer_token_file`]): the whole file,
//! surrounding whitespace trimmed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use revtun_core::policy::{SharedTokens, TokenSet};

use crate::file_watch::FileWatch;
use crate::initiator::ReverseListener;
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
    /// The bearer token file holds only whitespace.
    #[error("bearer token file {} is empty", path.display())]
    NoBearerToken {
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
    let watch = FileWatch::new(path.into(), interval);
    let shared = SharedTokens::new(read_token_file(watch.path())?);
    let tokens = shared.downgrade();
    let alive = tokens.clone();
    let path = watch.path().to_owned();
    let task = watch.run(
        rt.clone(),
        read_token_file,
        move || alive.upgrade().is_some(),
        move |set: TokenSet| {
            if let Some(shared) = tokens.upgrade() {
                tracing::info!(path = %path.display(), tokens = set.len(), "token file reloaded");
                shared.replace(set);
            }
            std::future::ready(())
        },
    );
    rt.spawn(Box::pin(task));
    Ok(shared)
}

/// Reads the initiator's bearer token file: its contents with surrounding whitespace trimmed.
///
/// # Errors
/// The file cannot be read, is not UTF-8, or holds only whitespace.
pub fn read_bearer_token_file(path: &Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::NoBearerToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// `headers` followed by `authorization: Bearer <token>`: the extra headers of a listener sending
/// `token`.
pub fn with_bearer(headers: &[(String, String)], token: &str) -> Vec<(String, String)> {
    let mut all = headers.to_vec();
    all.push(("authorization".to_owned(), format!("Bearer {token}")));
    all
}

/// A listener that sends the watched bearer token: on each change it gets
/// [`with_bearer`]`(other_headers, new token)` through [`ReverseListener::set_extra_headers`].
#[derive(Clone)]
pub struct BearerTokenListener {
    /// The listener (a [`ReverseListener`] or a runtime crate's wrapper of one); the watcher holds it
    /// only while giving it a new token.
    listener: Weak<dyn AsRef<ReverseListener> + Send + Sync>,
    /// Its extra headers other than `authorization`, in order.
    other_headers: Vec<(String, String)>,
}

impl BearerTokenListener {
    /// `listener`, whose extra headers other than `authorization` are `other_headers` (in order).
    pub fn new<L>(listener: &Arc<L>, other_headers: Vec<(String, String)>) -> Self
    where
        L: AsRef<ReverseListener> + Send + Sync + 'static,
    {
        let listener: Arc<dyn AsRef<ReverseListener> + Send + Sync> = listener.clone();
        Self {
            listener: Arc::downgrade(&listener),
            other_headers,
        }
    }
}

impl std::fmt::Debug for BearerTokenListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.other_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("BearerTokenListener")
            .field("running", &(self.listener.strong_count() > 0))
            .field("other_header_names", &names)
            .finish()
    }
}

/// The initiator's bearer token file: read now ([`read`](Self::read)), then watched for the listeners
/// that send it ([`watch`](Self::watch)); see the module documentation.
pub struct BearerTokenFile {
    watch: FileWatch,
    token: String,
}

/// Names the file only: the token is a credential.
impl std::fmt::Debug for BearerTokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokenFile")
            .field("path", &self.watch.path())
            .finish_non_exhaustive()
    }
}

impl BearerTokenFile {
    /// Reads `path` now; [`watch`](Self::watch) checks it every `interval` (at least 10 ms) from then
    /// on, so a change between this read and the start of the watch is not missed.
    ///
    /// # Errors
    /// The first read failed ([`read_bearer_token_file`]): an initiator should not start without it.
    pub fn read(path: impl Into<PathBuf>, interval: Duration) -> Result<Self, TokenFileError> {
        let watch = FileWatch::new(path.into(), interval);
        let token = read_bearer_token_file(watch.path())?;
        Ok(Self { watch, token })
    }

    /// The token read by [`read`](Self::read).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Watches the file on `rt`: when it changes, every listener still there gets its headers with the
    /// new token (tunnels already up stay; new handshakes carry it). A token the listener refuses (say,
    /// with a control character) is logged and the token in force stays. The task ends within one
    /// interval once every listener is gone.
    pub fn watch(self, rt: &Arc<dyn Runtime>, listeners: Vec<BearerTokenListener>) {
        let Self { watch, token: _ } = self;
        let path = watch.path().to_owned();
        let alive = listeners.clone();
        let task = watch.run(
            rt.clone(),
            read_bearer_token_file,
            move || alive.iter().any(|l| l.listener.strong_count() > 0),
            move |token: String| {
                let path = path.clone();
                let listeners = listeners.clone();
                async move {
                    tracing::info!(path = %path.display(), "bearer token file reloaded");
                    for target in listeners {
                        let Some(listener) = target.listener.upgrade() else {
                            continue;
                        };
                        let headers = with_bearer(&target.other_headers, &token);
                        let listener = (*listener).as_ref();
                        if let Err(e) = listener.set_extra_headers(headers).await {
                            tracing::warn!(path = %path.display(), error = %e, "new bearer token not used");
                        }
                    }
                }
            },
        );
        rt.spawn(Box::pin(task));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("revtun-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn checks_reload_on_change_and_keep_the_set_on_failure() {
        let dir = temp_dir("auth-files");
        let path = dir.join("tokens");
        std::fs::write(&path, "alpha\n").unwrap();
        let mut w = FileWatch::new(path.clone(), DEFAULT_RELOAD_INTERVAL);
        let mut set = read_token_file(&path).unwrap();
        let check = |w: &mut FileWatch, set: &mut TokenSet| {
            if let Some(new) = w.check(read_token_file) {
                *set = new;
            }
        };
        check(&mut w, &mut set);
        assert!(set.contains(b"alpha"));
        // A new file (new inode) with a new token.
        let tmp = dir.join("tokens.new");
        std::fs::write(&tmp, "# rotated\nbeta\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        check(&mut w, &mut set);
        assert!(set.contains(b"beta") && !set.contains(b"alpha"));
        // Emptied: the set in force stays.
        std::fs::write(&path, "# nothing\n\n").unwrap();
        check(&mut w, &mut set);
        assert!(w.is_failing() && set.contains(b"beta"));
        // Removed: still the same set.
        std::fs::remove_file(&path).unwrap();
        check(&mut w, &mut set);
        assert!(set.contains(b"beta"));
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::Read { .. })
        ));
        std::fs::write(&path, "gamma").unwrap();
        check(&mut w, &mut set);
        assert!(!w.is_failing() && set.contains(b"gamma"));
        std::fs::write(&path, "   \n# c\n").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bearer_token_file_is_trimmed_and_reloaded_on_change_only() {
        let dir = temp_dir("bearer-file");
        let path = dir.join("token");
        std::fs::write(&path, "  first\n").unwrap();
        let file = BearerTokenFile::read(&path, DEFAULT_RELOAD_INTERVAL).unwrap();
        assert_eq!(file.token(), "first");
        let mut w = file.watch;
        assert_eq!(w.check(read_bearer_token_file), None, "unchanged");
        std::fs::write(&path, "second-token\n").unwrap();
        assert_eq!(
            w.check(read_bearer_token_file).as_deref(),
            Some("second-token")
        );
        std::fs::write(&path, " \n\n").unwrap();
        assert_eq!(w.check(read_bearer_token_file), None, "empty: kept");
        assert!(w.is_failing());
        assert!(matches!(
            read_bearer_token_file(&path),
            Err(TokenFileError::NoBearerToken { .. })
        ));
        assert_eq!(
            with_bearer(&[("x-a".into(), "1".into())], "t"),
            vec![
                ("x-a".to_owned(), "1".to_owned()),
                ("authorization".to_owned(), "Bearer t".to_owned())
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
