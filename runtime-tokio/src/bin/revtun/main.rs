//! `revtun`: reverse tunnels configured with an Envoy-style bootstrap YAML (DESIGN.md, "Config").
//!
//! - `revtun -c FILE` runs what the file says: initiator (`rc://` listeners), responder (handshake
//!   listeners), front doors, and the admin endpoint.
//! - `revtun --mode validate -c FILE` checks a file: every error as `path: message`, exit 1; or a
//!   one-line summary, exit 0.
//! - `revtun demo` runs a responder and an initiator on loopback and sends requests through the tunnels.
//!
//! Every protocol decision is the core's; this program only wires sockets, files and signals to the
//! library (`revtun-tokio`).

// The program's output (validate results, the demo's narration) goes to stdout on purpose.
#![allow(clippy::print_stdout)]

mod admin;
mod auth;
mod cli;
mod counted;
mod demo;
mod front_door;
mod limits;
mod prometheus;
mod proxy;
mod run;
mod shutdown;
mod stats;
mod tls;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_level);
    if let Some(Command::Demo) = cli.command {
        return block_on(demo::run());
    }
    match cli.mode {
        Mode::Validate => validate::run(cli.config_path.as_deref()),
        Mode::Serve => {
            let Some(path) = cli.config_path else {
                eprintln!("revtun: --config-path (-c) FILE is required (or try `revtun demo`)");
                return ExitCode::from(2);
            };
            let drain = std::time::Duration::from_secs(cli.drain_time_s);
            block_on(run::serve(path, drain))
        }
    }
}

/// Runs the program's async part on a multi-threaded tokio runtime.
fn block_on(future: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("revtun: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(future);
    // Tasks still running (DNS lookups, connections being cut) get a moment, not forever.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revtun: {e:#}");
            ExitCode::FAILURE
        }
    }
}
