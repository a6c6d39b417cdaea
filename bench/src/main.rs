//! `revtun-bench`: revtun's end-to-end benchmark harness over loopback.
//!
//! `cargo run --release -p revtun-bench -- run` measures every group, each side by side with a direct
//! connection in the same run, prints one table and (with `--json FILE`) writes it as JSON. Helper
//! processes (load generators, responders and initiators with many tunnels) are this binary again,
//! started as `revtun-bench role <NAME> …` (see [`child`]).

mod certs;
mod child;
mod client;
mod delay_relay;
mod groups;
mod percentile;
mod report;
mod roles;
mod server;
mod services;
mod sys;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::report::Report;

/// revtun's end-to-end benchmark harness (loopback only, bounded in time).
#[derive(Debug, Parser)]
#[command(name = "revtun-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the measurements and print the table.
    Run(RunArgs),
    /// Internal: one helper process of a measurement.
    #[command(hide = true)]
    Role {
        /// The role's name.
        name: String,
        /// The role's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Options of `run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Only these groups (comma-separated); all when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Smaller sizes and counts (a smoke run: seconds, not minutes).
    #[arg(long)]
    quick: bool,
}

/// One measurement group: measures and pushes its rows.
type Group = fn(&RunArgs, &mut Report) -> anyhow::Result<()>;
/// One helper-process role: runs until killed or done.
type Role = fn(&[String]) -> anyhow::Result<()>;

/// The measurement groups, in the order they run: `(name, run)`.
const GROUPS: &[(&str, Group)] = &[
    ("throughput", groups::throughput::run),
    ("latency", groups::latency::run),
    ("memory", groups::memory::run),
    ("handshakes", groups::handshakes::run),
    ("restore", groups::restore::run),
    ("smol", groups::smol::run),
    ("tls", groups::tls::run),
    ("delay", groups::delay::run),
];

/// The helper-process roles: `(name, main)`.
const ROLES: &[(&str, Role)] = &[
    ("responder", roles::responder::main),
    ("initiator", roles::initiator::main),
    ("handshake-load", roles::handshake_load::main),
    ("plain-relay", roles::plain_relay::main),
];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::Role { name, args } => {
            let Some((_, main)) = ROLES.iter().find(|(n, _)| *n == name) else {
                anyhow::bail!("unknown role {name}");
            };
            main(&args)
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    for wanted in &args.only {
        if !GROUPS.iter().any(|(n, _)| n == wanted) {
            let names: Vec<&str> = GROUPS.iter().map(|(n, _)| *n).collect();
            anyhow::bail!("unknown group {wanted}; groups: {}", names.join(", "));
        }
    }
    let mut report = Report::default();
    for (name, group) in GROUPS {
        if !args.only.is_empty() && !args.only.iter().any(|w| w == name) {
            continue;
        }
        eprintln!("== {name}");
        if let Err(e) = group(args, &mut report) {
            eprintln!("   {name} failed: {e:#}");
        }
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{}", report.table());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
