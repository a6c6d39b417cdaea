//! The command line (Envoy's flag names where Envoy has one) and log set-up.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Reverse tunnels that speak Envoy's reverse-tunnel protocol.
#[derive(Debug, Parser)]
#[command(name = "revtun", version, about)]
pub struct Cli {
    /// The Envoy-style bootstrap YAML to run or validate.
    #[arg(short = 'c', long = "config-path", value_name = "FILE")]
    pub config_path: Option<PathBuf>,
    /// `serve` runs the file; `validate` only checks it (Envoy's `--mode`).
    #[arg(long, value_enum, default_value_t = Mode::Serve)]
    pub mode: Mode,
    /// Log level (Envoy's `-l`); `RUST_LOG`, when set, wins.
    #[arg(short = 'l', long = "log-level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// After SIGINT/SIGTERM, how long relays may go on before the program exits (Envoy's
    /// `--drain-time-s`).
    #[arg(long = "drain-time-s", value_name = "SECONDS", default_value_t = 10)]
    pub drain_time_s: u64,
    /// What to run instead of a config file.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Run the configuration.
    Serve,
    /// Check the configuration and exit.
    Validate,
}

/// Subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// A responder, an initiator and a private service on loopback; requests through the tunnels.
    Demo,
}

/// Envoy's log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    Info,
    /// Problems that do not stop the program.
    #[value(alias = "warning")]
    Warn,
    /// Errors.
    Error,
    /// Envoy's highest level; the same as `error` here.
    Critical,
    /// Nothing.
    Off,
}

impl LogLevel {
    /// The `tracing` filter directive.
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
            LogLevel::Off => "off",
        }
    }
}

/// Logs go to stderr through `tracing-subscriber`, filtered by `RUST_LOG` if set, else by `level`.
pub fn init_logging(level: LogLevel) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.directive()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
