//! The helper processes (`revtun-bench role <NAME> …`): a responder with a TCP front door, an initiator
//! that relays claimed tunnels to a local service, and a handshake load generator. Responder and
//! initiator run on either runtime through the driver's [`Runtime`] trait, so one code path serves
//! tokio and smol.
//!
//! Every role announces `READY <text>` and then answers one-line commands on stdin (`GO`, `STATS`);
//! it ends when its stdin closes (the harness went away) or when it is killed.

pub mod handshake_load;
pub mod initiator;
mod multi_listener;
pub mod plain_relay;
pub mod responder;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use revtun_driver::Runtime;
use revtun_driver::tls::{
    ClientTlsFiles, PemSource, ServerTlsFiles, TlsClientSource, TlsServerSource,
};

use crate::certs;

/// The node id every initiator role registers with (what the front door claims).
pub const NODE: &str = "bench-node";
/// The initiator roles' cluster id.
pub const NODE_CLUSTER: &str = "bench-edge";
/// The responder-side target cluster the initiators dial.
pub const TARGET: &str = "bench";

/// Which async runtime a role runs the library on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// `revtun-tokio` on a 2-worker multi-thread runtime.
    Tokio,
    /// `revtun-smol` on smol's global executor (`SMOL_THREADS`, 2 by default in the harness).
    Smol,
}

impl RuntimeKind {
    /// The name used in arguments and table rows.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Tokio => "tokio",
            RuntimeKind::Smol => "smol",
        }
    }
}

/// Options every library role takes.
#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    /// The runtime the library runs on.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    pub runtime: RuntimeKind,
    /// Tunnel TLS (mutual) between initiator and responder, with the certificates the harness wrote into
    /// this directory ([`crate::certs::write`]).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
}

impl Common {
    /// The responder's tunnel TLS, if `--tls-dir` was given: its certificate, client certificates
    /// required and verified against the harness's CA.
    ///
    /// # Errors
    /// The files cannot be loaded.
    pub fn server_tls(&self) -> anyhow::Result<Option<TlsServerSource>> {
        let Some(dir) = &self.tls_dir else {
            return Ok(None);
        };
        let files = ServerTlsFiles {
            certificate: certs::files(dir, certs::RESPONDER),
            trusted_ca: Some(PemSource::File(dir.join(certs::CA))),
            require_client_certificate: true,
        };
        Ok(Some(TlsServerSource::new(files)?))
    }

    /// The initiator's tunnel TLS, if `--tls-dir` was given: trusting the harness's CA, presenting the
    /// node's certificate.
    ///
    /// # Errors
    /// The files cannot be loaded.
    pub fn client_tls(&self) -> anyhow::Result<Option<TlsClientSource>> {
        let Some(dir) = &self.tls_dir else {
            return Ok(None);
        };
        let files = ClientTlsFiles {
            trusted_ca: PemSource::File(dir.join(certs::CA)),
            certificate: Some(certs::files(dir, certs::NODE)),
            sni: None,
        };
        Ok(Some(TlsClientSource::new(files)?))
    }
}

/// Parses a role's arguments with clap (`name` is the program name in messages).
///
/// # Errors
/// The arguments do not fit `T`.
pub fn parse<T: clap::Parser>(name: &str, args: &[String]) -> anyhow::Result<T> {
    T::try_parse_from(std::iter::once(name.to_owned()).chain(args.iter().cloned()))
        .with_context(|| format!("role {name}: bad arguments"))
}

/// Runs `main` to completion on `kind`, handing it the driver's [`Runtime`] for that runtime.
///
/// # Errors
/// The runtime could not start, or `main` failed.
pub fn run_on<F, Fut>(kind: RuntimeKind, main: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<dyn Runtime>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match kind {
        RuntimeKind::Tokio => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start tokio")?;
            runtime.block_on(async {
                let rt: Arc<dyn Runtime> = Arc::new(revtun_tokio::TokioRuntime::current());
                main(rt).await
            })
        }
        RuntimeKind::Smol => {
            let rt: Arc<dyn Runtime> = Arc::new(revtun_smol::SmolRuntime::new());
            smol::block_on(main(rt))
        }
    }
}

/// The lines of this process's stdin, read on a thread; the channel closes at EOF (the harness went
/// away). Bounded: the harness sends one command and waits for its answer.
#[must_use]
pub fn commands() -> async_channel::Receiver<String> {
    let (tx, rx) = async_channel::bounded(16);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send_blocking(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Writes addresses as one comma-separated word (what `READY` lines carry).
#[must_use]
pub fn join_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
