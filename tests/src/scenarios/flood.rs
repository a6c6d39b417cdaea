//! The 10,000-connection flood: a separate process (`flood`, this crate's binary) opens 10,000 garbage
//! and half-open connections in bursts of at most 1,000 from ten loopback source addresses, while this
//! process runs the responder. Checked: the pending-handshake table never exceeds its cap, the
//! responder keeps answering (an initiator on 127.0.0.1 registers and a claim succeeds), and every
//! connection the flood opened ends up in exactly one counter. Not in [`all_scenarios!`]: it runs on
//! tokio and smol only (`tests/tests/flood.rs`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use revtun_core::responder::ResponderConfig;
use revtun_driver::ResponderOptions;

use super::hostile::{counter, responder_with};
use super::support::{
    NODE, Sides, exchange, initiator, responder_config, shut_down, sleep, spawn_echo, wait_idle,
    wait_until, within,
};

/// Connections the flood opens.
pub const FLOOD_CONNECTIONS: usize = 10_000;
/// At most this many per burst.
pub const FLOOD_BURST: usize = 1_000;
/// Pending-handshake cap of the flooded responder.
pub const PENDING_CAP: usize = 256;
/// Per-source-IP cap of the flooded responder.
pub const PENDING_CAP_PER_IP: usize = 32;

/// The flood process, killed when dropped (every path of the test).
struct Flood {
    child: Child,
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the flood against a responder on the scenario's runtime; `flood_bin` is the `flood` binary
/// (`env!("CARGO_BIN_EXE_flood")` in the test).
pub async fn flood_keeps_the_responder_responsive(sides: Sides, flood_bin: &str) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            max_pending_handshakes: PENDING_CAP,
            max_pending_handshakes_per_ip: PENDING_CAP_PER_IP,
            handshake_timeout: Duration::from_secs(30),
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let addr = responder.local_addr();
        let mut child = Command::new(flood_bin)
            .args([
                addr.to_string(),
                FLOOD_CONNECTIONS.to_string(),
                FLOOD_BURST.to_string(),
                "20".into(),
                "10".into(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the flood");
        let stdout = child.stdout.take().expect("stdout");
        let flood = Flood { child };
        // The flood's progress lines, read on a thread so that no executor blocks.
        let (lines_tx, lines) = async_channel::unbounded::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send_blocking(line).is_err() {
                    break;
                }
            }
        });

        // A legitimate initiator on 127.0.0.1 starts while the flood runs.
        let listener = Arc::new(initiator(&sides, addr, 2, true).await);
        let echo = spawn_echo(sides.initiator.clone(), listener.clone());
        let mut max_pending = 0;
        let (opened, failed) = loop {
            let counts = responder.counts().await.expect("the responder answers");
            max_pending = max_pending.max(counts.handshaking);
            assert!(
                counts.handshaking <= PENDING_CAP as u64,
                "pending handshakes {} over the cap",
                counts.handshaking
            );
            match lines.try_recv() {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("done ") {
                        let mut parts = rest.split(' ').map(|n| n.parse::<u64>().unwrap());
                        break (parts.next().unwrap(), parts.next().unwrap());
                    }
                }
                Err(async_channel::TryRecvError::Empty) => {
                    sleep(sides.rt(), Duration::from_millis(5)).await;
                }
                Err(async_channel::TryRecvError::Closed) => panic!("the flood ended early"),
            }
        };
        assert!(
            opened >= 9_000,
            "the flood opened only {opened} ({failed} failed)"
        );

        // Every flood connection reaches the responder and ends in exactly one place.
        let flood_ended = || async {
            let counts = responder.counts().await.unwrap();
            let ended = counter(&responder, "parse_error").await
                + counter(&responder, "pending_evicted").await
                + counter(&responder, "peer_closed").await
                + counter(&responder, "timeout").await;
            (counts, ended)
        };
        wait_until(
            sides.rt(),
            Duration::from_secs(10),
            "the flood accepted",
            || async {
                let (counts, ended) = flood_ended().await;
                let accepted = counter(&responder, "accepted").await;
                counts.opened >= opened && ended + counts.handshaking + accepted == counts.opened
            },
        )
        .await;
        let (counts, _) = flood_ended().await;
        assert!(counts.is_balanced());
        assert!(counts.handshaking <= PENDING_CAP as u64);
        // Garbage is closed as malformed when it is read before its connection is evicted; half-open
        // connections beyond the caps are evicted, oldest first.
        let parse_error = counter(&responder, "parse_error").await;
        let evicted = counter(&responder, "pending_evicted").await;
        assert!(parse_error > 0 && evicted > 0, "{parse_error} malformed, {evicted} evicted");
        eprintln!(
            "flood: {opened} opened ({failed} failed to connect): {parse_error} parse_error, {evicted} pending_evicted, {} still pending",
            counts.handshaking
        );

        // The responder still serves: the initiator's tunnels are up and a claim goes through.
        wait_idle(sides.rt(), &responder, 2).await;
        let mut tunnel = responder
            .connect(NODE)
            .await
            .expect("claim after the flood");
        assert_eq!(exchange(sides.rt(), &mut tunnel, b"alive").await, b"alive");
        drop(tunnel);
        drop(flood);
        echo.abort().await;
        let listener = Arc::into_inner(listener).expect("one reference");
        shut_down(sides.rt(), "initiator", listener.shutdown()).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
        eprintln!("flood: at most {max_pending} pending handshakes seen (cap {PENDING_CAP})");
    })
    .await;
}
