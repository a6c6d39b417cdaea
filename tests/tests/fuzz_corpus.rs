//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) through the target bodies in
//! `revtun_core::fuzzing`, on stable Rust. A panic names the file that caused it, so it can be replayed
//! with `cargo fuzz run <target> fuzz/corpus/<target>/<file>`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Fewer seeds than this means the corpus went missing, which would make the replay vacuous.
const MIN_SEEDS: usize = 10;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = revtun_tests::repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_SEEDS,
        "corpus {} holds {} files, expected at least {MIN_SEEDS}",
        dir.display(),
        files.len()
    );
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            panic!("fuzz target `{target}` panicked on {}", rel(file));
        }
    }
}

fn rel(file: &Path) -> String {
    let root = revtun_tests::repo_root();
    file.strip_prefix(&root)
        .unwrap_or(file)
        .display()
        .to_string()
}

#[test]
fn address_corpus() {
    replay("address", revtun_core::fuzzing::address);
}

#[test]
fn handshake_request_corpus() {
    replay("handshake_request", revtun_core::fuzzing::handshake_request);
}

#[test]
fn handshake_response_corpus() {
    replay(
        "handshake_response",
        revtun_core::fuzzing::handshake_response,
    );
}

#[test]
fn keepalive_corpus() {
    replay("keepalive", revtun_core::fuzzing::keepalive);
}

#[test]
fn initiator_ops_corpus() {
    replay("initiator_ops", revtun_core::fuzzing::initiator_ops);
}

#[test]
fn responder_ops_corpus() {
    replay("responder_ops", revtun_core::fuzzing::responder_ops);
}

#[test]
fn config_corpus() {
    replay("config", revtun_core::fuzzing::config);
}
