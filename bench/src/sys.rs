//! Process figures from Linux's `/proc`: resident memory and CPU time. Off Linux they are `None`, and
//! the rows that need them are left out.

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
#[must_use]
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of process `pid` (all its threads) in seconds (`/proc/<pid>/stat` fields
/// 14 and 15, in clock ticks of 1/100 s, the value on every Linux this runs on).
#[must_use]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_SECOND)
}

/// `sysconf(_SC_CLK_TCK)` on Linux (fixed at 100 by the kernel's user ABI).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds of this process.
#[must_use]
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) to its hard limit, so one role process can
/// hold every tunnel of the memory measurement (10,000 and more). Returns the limit now in force.
///
/// # Errors
/// The system refused the change.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_figures() {
        let rss = rss_kib(std::process::id()).expect("VmRSS");
        assert!(rss > 0);
        assert!(own_cpu_seconds().is_some());
    }
}
