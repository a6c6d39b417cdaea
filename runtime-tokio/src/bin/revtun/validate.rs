//! `revtun --mode validate -c FILE`: every config error as `path: message`, or a one-line summary.

use std::path::Path;
use std::process::ExitCode;

use revtun_core::config::{Bootstrap, parse};

/// Reads and parses `path`. The error names the file (read errors) or lists every config error.
pub fn load(path: &Path) -> Result<Bootstrap, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|errors| errors.to_string())
}

/// Checks the file and reports: exit 0 with a summary, 1 with the errors, 2 without a file.
pub fn run(path: Option<&Path>) -> ExitCode {
    let Some(path) = path else {
        eprintln!("revtun: --mode validate needs --config-path (-c) FILE");
        return ExitCode::from(2);
    };
    match load(path) {
        Ok(plan) => match crate::run::unsupported(&plan).and_then(|()| tls_files(&plan)) {
            Ok(()) => {
                println!("{}: OK, {}", path.display(), summary(&plan));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{e}");
                ExitCode::FAILURE
            }
        },
        Err(text) => {
            println!("{text}");
            ExitCode::FAILURE
        }
    }
}

/// Every TLS context's files load (certificates, keys and CAs are read, relative paths against the
/// current directory).
fn tls_files(plan: &Bootstrap) -> anyhow::Result<()> {
    let problems = crate::tls::check(plan);
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("TLS files cannot be loaded:\n{}", problems.join("\n"))
}

/// One line: what the file would run.
pub fn summary(plan: &Bootstrap) -> String {
    let rc = plan.initiator.as_ref().map_or(0, |i| i.listeners.len());
    let handshake = plan.responder.as_ref().map_or(0, |r| r.listeners.len());
    let admin = plan
        .admin
        .map_or_else(|| "no admin".to_owned(), |a| format!("admin on {a}"));
    format!(
        "{rc} rc:// listener(s), {handshake} handshake listener(s), {} front door(s), {} cluster(s), {admin}",
        plan.front_doors.len(),
        plan.clusters.len()
    )
}
