//! The harness's one table: every measurement is a [`Row`], printed side by side with its direct baseline
//! and written as JSON on request.

use std::fmt::Write as _;

use serde::Serialize;

/// A goal a row is checked against (issue #7's targets).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// `revtun / direct` must be at least this (throughput).
    RatioAtLeast(f64),
    /// `revtun / direct` must be at most this (latency).
    RatioAtMost(f64),
    /// The revtun figure must be at most this (memory, time).
    AtMost(f64),
    /// The revtun figure must be at least this (rates).
    AtLeast(f64),
}

impl Target {
    /// Whether `row` meets the target (`None` when the row lacks the direct figure a ratio needs).
    #[must_use]
    pub fn met(self, revtun: f64, direct: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtLeast(t) => ratio(revtun, direct).map(|r| r >= t),
            Target::RatioAtMost(t) => ratio(revtun, direct).map(|r| r <= t),
            Target::AtMost(t) => Some(revtun <= t),
            Target::AtLeast(t) => Some(revtun >= t),
        }
    }

    fn describe(self) -> String {
        match self {
            Target::RatioAtLeast(t) => format!("ratio >= {t}"),
            Target::RatioAtMost(t) => format!("ratio <= {t}"),
            Target::AtMost(t) => format!("<= {t}"),
            Target::AtLeast(t) => format!(">= {t}"),
        }
    }
}

fn ratio(revtun: f64, direct: Option<f64>) -> Option<f64> {
    direct.filter(|d| *d > 0.0).map(|d| revtun / d)
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The measurement group, e.g. `throughput`, `latency`, `memory`.
    pub group: String,
    /// What was measured, e.g. `1 stream`, `p50 connect+echo`, `RSS/tunnel responder 10k`.
    pub metric: String,
    /// The unit of `revtun` and `direct`, e.g. `MiB/s`, `µs`, `KiB`.
    pub unit: String,
    /// The figure through revtun.
    pub revtun: f64,
    /// The same figure over a direct connection in the same run, where one applies.
    pub direct: Option<f64>,
    /// `revtun / direct`, when both exist.
    pub ratio: Option<f64>,
    /// The goal, if the issue sets one.
    pub target: Option<Target>,
    /// Whether the goal is met.
    pub met: Option<bool>,
}

impl Row {
    /// A row; `ratio` and `met` are derived.
    #[must_use]
    pub fn new(
        group: &str,
        metric: impl Into<String>,
        unit: &str,
        revtun: f64,
        direct: Option<f64>,
        target: Option<Target>,
    ) -> Self {
        Self {
            group: group.to_owned(),
            metric: metric.into(),
            unit: unit.to_owned(),
            revtun,
            direct,
            ratio: ratio(revtun, direct),
            target,
            met: target.and_then(|t| t.met(revtun, direct)),
        }
    }
}

/// All rows of one run, in the order measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
}

impl Report {
    /// Adds a row and prints it at once (a long run shows progress).
    pub fn push(&mut self, row: Row) {
        eprintln!("  {} / {}: {}", row.group, row.metric, figure(row.revtun));
        self.rows.push(row);
    }

    /// The table as aligned text.
    #[must_use]
    pub fn table(&self) -> String {
        let header = [
            "group", "metric", "revtun", "direct", "ratio", "unit", "target", "met",
        ];
        let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
        for r in &self.rows {
            lines.push([
                r.group.clone(),
                r.metric.clone(),
                figure(r.revtun),
                r.direct.map(figure).unwrap_or_default(),
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
                r.unit.clone(),
                r.target.map(Target::describe).unwrap_or_default(),
                match r.met {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => String::new(),
                },
            ]);
        }
        let mut widths = [0usize; 8];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, (w, cell)) in widths.iter().zip(line).enumerate() {
                let pad = w - cell.chars().count();
                if (2..=4).contains(&i) {
                    let _ = write!(text, "{}{} ", " ".repeat(pad), cell);
                } else {
                    let _ = write!(text, "{}{} ", cell, " ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A figure with about three significant digits.
fn figure(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets() {
        let row = Row::new(
            "t",
            "1 stream",
            "MiB/s",
            300.0,
            Some(1000.0),
            Some(Target::RatioAtLeast(0.3)),
        );
        assert_eq!(row.ratio, Some(0.3));
        assert_eq!(row.met, Some(true));
        let row = Row::new(
            "l",
            "p50",
            "µs",
            200.0,
            Some(100.0),
            Some(Target::RatioAtMost(1.6)),
        );
        assert_eq!(row.met, Some(false));
        let row = Row::new("m", "rss", "KiB", 9.0, None, Some(Target::AtMost(8.0)));
        assert_eq!(row.met, Some(false));
        let row = Row::new("m", "rss", "KiB", 9.0, None, Some(Target::RatioAtMost(8.0)));
        assert_eq!(row.met, None);
        let mut report = Report::default();
        report.push(row);
        assert!(report.table().lines().count() == 2);
    }
}
