//! CI smoke test of the harness: `revtun-bench run --quick --only latency,throughput --json FILE` runs
//! real role processes over loopback and writes rows with positive figures. No assertion on timing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the quick run may take (debug build) before the test kills it.
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn quick_run_writes_positive_rows() {
    let json = std::env::temp_dir().join(format!("revtun-bench-smoke-{}.json", std::process::id()));
    let mut run = Command::new(env!("CARGO_BIN_EXE_revtun-bench"))
        .args(["run", "--quick", "--only", "latency,throughput", "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .spawn()
        .expect("start revtun-bench");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = run.kill();
            let _ = run.wait();
            panic!("revtun-bench run --quick did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&json).expect("JSON written");
    let _ = std::fs::remove_file(&json);
    let report: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rows = report["rows"].as_array().expect("rows");
    for (group, metric) in [
        ("latency", "tokio p50 connect+echo (100 runs)"),
        ("latency", "tokio p99 connect+echo"),
        ("throughput", "tokio 1 stream"),
        ("throughput", "tokio 8 streams"),
        ("cpu", "tokio 1 stream: responder+initiator"),
    ] {
        let row = rows
            .iter()
            .find(|r| r["group"] == group && r["metric"] == metric)
            .unwrap_or_else(|| panic!("no row {group} / {metric} in {text}"));
        assert!(row["revtun"].as_f64().unwrap() > 0.0, "{row}");
        if group != "cpu" {
            assert!(row["direct"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["ratio"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
}
