//! Raises the soft file-descriptor limit to the hard limit at start (every tunnel is a socket).

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit; logs the outcome, never fails.
pub fn raise_nofile() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "file-descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file-descriptor limit"),
    }
}
