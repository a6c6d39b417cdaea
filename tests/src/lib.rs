//! Shared helpers for revtun's end-to-end tests (the tests themselves live in `tests/tests/`).

use std::path::PathBuf;

/// The repository's root directory (the parent of this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub mod certs;
pub mod scenarios;
pub mod sim;
