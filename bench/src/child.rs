//! Helper processes: the harness re-runs its own binary with `role <NAME> [ARGS…]` so that load
//! generators, responders and initiators each get their own process (own open-file limit, own RSS and
//! CPU figures). A child announces itself with one `READY <text>` line on stdout; it is killed when its
//! [`Child`] is dropped, so no path leaves one behind. The parent talks to a running child with one-line
//! commands on its stdin ([`Child::ask`]); a child whose stdin closes (the parent died) ends itself.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A running helper process; killed and reaped on drop.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Child {
    /// Starts `revtun-bench role <role> <args…>` and waits (up to `ready_within`) for its `READY` line;
    /// returns the child and the text after `READY `.
    ///
    /// # Errors
    /// The process could not start, exited, or did not announce itself in time.
    pub fn spawn(
        role: &str,
        args: &[String],
        ready_within: Duration,
    ) -> anyhow::Result<(Self, String)> {
        let exe = std::env::current_exe().context("cannot find the harness binary")?;
        let mut inner = Command::new(exe)
            .arg("role")
            .arg(role)
            .args(args)
            .env(
                "SMOL_THREADS",
                std::env::var("SMOL_THREADS").unwrap_or_else(|_| "2".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start role {role}"))?;
        let stdout = inner.stdout.take().context("child has no stdout")?;
        let stdin = inner.stdin.take();
        let lines = forward_lines(stdout);
        let mut child = Self {
            inner,
            stdin,
            lines,
        };
        let ready = child
            .expect_line("READY", ready_within)
            .with_context(|| format!("role {role} did not start"))?;
        Ok((child, ready))
    }

    /// Waits up to `within` for the next line starting with `prefix` (other lines are skipped); returns
    /// the rest of the line after `prefix` and one space.
    ///
    /// # Errors
    /// Timeout, or the child closed its stdout.
    pub fn expect_line(&mut self, prefix: &str, within: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim_start().to_owned());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("no {prefix} line within {within:?}"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the child ended before a {prefix} line")
                }
            }
        }
    }

    /// Sends one command line to the child's stdin.
    ///
    /// # Errors
    /// The child's stdin is closed (it ended).
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("the child's stdin is closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .context("cannot write to the child")
    }

    /// Sends `command` and waits up to `within` for the child's line that starts with the same word.
    ///
    /// # Errors
    /// As [`send`](Self::send) and [`expect_line`](Self::expect_line).
    pub fn ask(&mut self, command: &str, within: Duration) -> anyhow::Result<String> {
        self.send(command)?;
        let word = command.split_whitespace().next().unwrap_or(command);
        self.expect_line(word, within)
    }

    /// The child's process id (for `/proc/<pid>` figures).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill(&mut self) {
        self.stdin = None;
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the child's stdout lines on a thread into a channel (bounded by the child's output).
fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Announces a role's readiness to its parent: one `READY <text>` line on stdout, flushed.
pub fn announce(text: &str) {
    say("READY", text);
}

/// Writes one `<prefix> <text>` line on stdout, flushed (a role's answer to its parent).
pub fn say(prefix: &str, text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{prefix} {text}");
    let _ = out.flush();
}
