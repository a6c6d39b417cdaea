//! The re-read-on-change machinery behind [`auth_files`](crate::auth_files): a file's fingerprint
//! (modification time, length, inode) checked at most once per interval, a re-read when it changed, and
//! one warning per change of the file when the re-read fails (the value in force stays).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::runtime::Runtime;

/// The shortest interval between two checks.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

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

/// One watched file: where it is, how often to look, and what was seen last.
#[derive(Debug)]
pub(crate) struct FileWatch {
    path: PathBuf,
    interval: Duration,
    /// The fingerprint of the version last read (or last tried).
    last: Option<Fingerprint>,
    /// The last check failed; the next failure is not logged again until a success.
    failing: bool,
}

impl FileWatch {
    /// Starts watching `path` as it is now (take this before the first read, so a change during that
    /// read is seen by the first check); `interval` is at least 10 ms.
    pub(crate) fn new(path: PathBuf, interval: Duration) -> Self {
        Self {
            last: Fingerprint::of(&path).ok(),
            path,
            interval: interval.max(MIN_INTERVAL),
            failing: false,
        }
    }

    /// The watched file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One check: when the fingerprint changed, `read` the file; its value on success, `None` when the
    /// file is unchanged or the read failed (warned once).
    pub(crate) fn check<T, E: std::fmt::Display>(
        &mut self,
        read: impl FnOnce(&Path) -> Result<T, E>,
    ) -> Option<T> {
        let fingerprint = match Fingerprint::of(&self.path) {
            Ok(f) => f,
            Err(e) => {
                self.warn_once(&format!("cannot stat: {e}"));
                self.last = None;
                return None;
            }
        };
        if self.last == Some(fingerprint) {
            return None;
        }
        self.last = Some(fingerprint);
        match read(&self.path) {
            Ok(value) => {
                self.failing = false;
                Some(value)
            }
            Err(e) => {
                self.warn_once(&e.to_string());
                None
            }
        }
    }

    /// Checks every interval on `rt`, giving each new value to `apply`, until `in_use` says the value
    /// is no longer used (asked before each check).
    pub(crate) async fn run<T, E, F>(
        mut self,
        rt: Arc<dyn Runtime>,
        read: impl Fn(&Path) -> Result<T, E>,
        in_use: impl Fn() -> bool,
        mut apply: impl FnMut(T) -> F,
    ) where
        E: std::fmt::Display,
        F: Future<Output = ()>,
    {
        loop {
            rt.sleep_until(rt.now() + self.interval).await;
            if !in_use() {
                tracing::debug!(path = %self.path.display(), "file no longer used; watcher ends");
                return;
            }
            if let Some(value) = self.check(&read) {
                apply(value).await;
            }
        }
    }

    fn warn_once(&mut self, error: &str) {
        if !self.failing {
            tracing::warn!(path = %self.path.display(), error, "file reload failed; the value in force stays");
        }
        self.failing = true;
    }

    /// Whether the last check failed (for tests).
    #[cfg(test)]
    pub(crate) fn is_failing(&self) -> bool {
        self.failing
    }
}
