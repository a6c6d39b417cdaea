//! Starting the role processes of a measurement and talking to them: a [`ResponderProc`] (handshake
//! ports, optional front door) and an [`InitiatorProc`] (started on `GO`), plus the harness's own tokio
//! runtime for services and clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::child::Child;
use crate::roles::{NODE, RuntimeKind, join_addrs};

/// How long a role may take to start.
pub const START_WITHIN: Duration = Duration::from_secs(10);
/// How long a role may take to answer a command.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The harness's runtime for services, relays and clients (2 workers, like the roles').
///
/// # Errors
/// tokio could not start.
pub fn harness_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the harness's tokio runtime")
}

/// What a responder role is started with.
#[derive(Clone, Debug)]
pub struct ResponderSpec {
    /// The library's runtime.
    pub runtime: RuntimeKind,
    /// Handshake ports chosen by the system (ignored when `bind` is set).
    pub ports: usize,
    /// Exact handshake addresses (a restart).
    pub bind: Vec<SocketAddr>,
    /// Serve a front door claiming the initiator role's node.
    pub front_door: bool,
    /// Both pending-handshake caps (`None`: library defaults).
    pub pending_cap: Option<usize>,
    /// Tunnel TLS with the certificates in this directory.
    pub tls_dir: Option<PathBuf>,
}

impl ResponderSpec {
    /// One handshake port with a front door, library defaults otherwise.
    #[must_use]
    pub fn with_front_door(runtime: RuntimeKind) -> Self {
        Self {
            runtime,
            ports: 1,
            bind: Vec::new(),
            front_door: true,
            pending_cap: None,
            tls_dir: None,
        }
    }

    /// `ports` handshake ports, no front door.
    #[must_use]
    pub fn ports(ports: usize) -> Self {
        Self {
            runtime: RuntimeKind::Tokio,
            ports,
            bind: Vec::new(),
            front_door: false,
            pending_cap: None,
            tls_dir: None,
        }
    }
}

/// A running responder role.
#[derive(Debug)]
pub struct ResponderProc {
    /// The process.
    pub child: Child,
    /// Its handshake addresses.
    pub handshake: Vec<SocketAddr>,
    /// Its front door, if it serves one.
    pub front: Option<SocketAddr>,
}

impl ResponderProc {
    /// Starts a responder role.
    ///
    /// # Errors
    /// The role did not start or announced something unreadable.
    pub fn spawn(spec: &ResponderSpec) -> anyhow::Result<Self> {
        let mut args = vec!["--runtime".to_owned(), spec.runtime.name().to_owned()];
        if spec.bind.is_empty() {
            args.extend(["--ports".to_owned(), spec.ports.to_string()]);
        } else {
            args.extend(["--bind".to_owned(), join_addrs(&spec.bind)]);
        }
        if spec.front_door {
            args.extend(["--front-door".to_owned(), NODE.to_owned()]);
        }
        if let Some(cap) = spec.pending_cap {
            args.extend(["--pending-cap".to_owned(), cap.to_string()]);
        }
        args.extend(tls_args(spec.tls_dir.as_deref()));
        let (child, ready) = Child::spawn("responder", &args, START_WITHIN)?;
        let fields = fields(&ready);
        let handshake = fields
            .get("handshake")
            .context("responder: no handshake addresses")?
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<SocketAddr>, _>>()
            .context("responder: bad handshake address")?;
        let front = match fields.get("front").map(String::as_str) {
            None | Some("-") => None,
            Some(addr) => Some(addr.parse().context("responder: bad front door address")?),
        };
        Ok(Self {
            child,
            handshake,
            front,
        })
    }

    /// The front door's address.
    ///
    /// # Errors
    /// The responder serves none.
    pub fn front(&self) -> anyhow::Result<SocketAddr> {
        self.front.context("responder has no front door")
    }

    /// The role's `STATS` answer (`idle`, `live`, `accepted`).
    ///
    /// # Errors
    /// No answer, or an unreadable one.
    pub fn stats(&mut self) -> anyhow::Result<HashMap<String, u64>> {
        numbers(&self.child.ask("STATS", ANSWER_WITHIN)?)
    }

    /// Polls `STATS` every `every` until `idle` is `n`; returns the time it took.
    ///
    /// # Errors
    /// Not reached within `within`.
    pub fn wait_idle(
        &mut self,
        n: u64,
        within: Duration,
        every: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let idle = self.stats()?.get("idle").copied().unwrap_or(0);
            if idle == n {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!("responder: {idle} idle tunnels of {n} after {within:?}");
            }
            std::thread::sleep(every);
        }
    }
}

/// A running initiator role.
#[derive(Debug)]
pub struct InitiatorProc {
    /// The process.
    pub child: Child,
}

impl InitiatorProc {
    /// Starts an initiator role (not yet dialling: see [`go`](Self::go)).
    ///
    /// # Errors
    /// The role did not start.
    pub fn spawn(
        runtime: RuntimeKind,
        hosts: &[SocketAddr],
        count: u32,
        service: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        Self::spawn_with(runtime, hosts, count, service, &[])
    }

    /// [`spawn`](Self::spawn) with more role arguments (e.g. `--no-claim-marker`).
    ///
    /// # Errors
    /// The role did not start.
    pub fn spawn_with(
        runtime: RuntimeKind,
        hosts: &[SocketAddr],
        count: u32,
        service: Option<SocketAddr>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            "--runtime".to_owned(),
            runtime.name().to_owned(),
            "--hosts".to_owned(),
            join_addrs(hosts),
            "--count".to_owned(),
            count.to_string(),
        ];
        if let Some(service) = service {
            args.extend(["--service".to_owned(), service.to_string()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let (child, _) = Child::spawn("initiator", &args, START_WITHIN)?;
        Ok(Self { child })
    }

    /// Starts the listener (dialling begins).
    ///
    /// # Errors
    /// The listener did not start.
    pub fn go(&mut self) -> anyhow::Result<()> {
        self.child.ask("GO", ANSWER_WITHIN).map(drop)
    }
}

/// `--tls-dir DIR` when `dir` is given.
fn tls_args(dir: Option<&Path>) -> Vec<String> {
    dir.map(|d| vec!["--tls-dir".to_owned(), d.display().to_string()])
        .unwrap_or_default()
}

/// A responder with a front door and an initiator (`count` tunnels) relaying to `service`, started,
/// with every tunnel idle; tunnel TLS with the certificates in `tls_dir` if given.
///
/// # Errors
/// A role did not start or the pool did not fill within 10 s.
pub fn front_door_pair(
    runtime: RuntimeKind,
    tls_dir: Option<&Path>,
    count: u32,
    service: SocketAddr,
) -> anyhow::Result<(ResponderProc, InitiatorProc)> {
    let spec = ResponderSpec {
        tls_dir: tls_dir.map(Path::to_path_buf),
        ..ResponderSpec::with_front_door(runtime)
    };
    let mut responder = ResponderProc::spawn(&spec)?;
    let tls = tls_args(tls_dir);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut initiator =
        InitiatorProc::spawn_with(runtime, &responder.handshake, count, Some(service), &tls)?;
    initiator.go()?;
    responder.wait_idle(
        u64::from(count),
        Duration::from_secs(10),
        Duration::from_millis(20),
    )?;
    Ok((responder, initiator))
}

/// `key=value` words of a role's line.
fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `key=<number>` words of a role's line, as `T` (`u64` counts, `f64` seconds).
///
/// # Errors
/// A value is not a number.
pub fn numbers<T: std::str::FromStr>(line: &str) -> anyhow::Result<HashMap<String, T>> {
    fields(line)
        .into_iter()
        .map(|(k, v)| match v.parse() {
            Ok(n) => Ok((k, n)),
            Err(_) => bail!("{k}={v} is not a number"),
        })
        .collect()
}
