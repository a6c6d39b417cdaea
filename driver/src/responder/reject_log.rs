//! Handshake failures logged once per peer address per interval, not once per connection or byte.
//!
//! A flood of bad handshakes from one address would otherwise write one log line per connection. The
//! first failure of an address is logged at once (`warn` for credential and identity failures, `info`
//! otherwise) with its reason; later ones within [`LOG_INTERVAL`] are only counted, and the next line
//! for that address says how many were suppressed. The table holds at most [`MAX_PEERS`] addresses; when
//! full, the address logged longest ago is forgotten first. The counters by reason
//! (`reverse_tunnel.handshake.*`) count every failure regardless.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use revtun_core::handshake::Rejection;
use revtun_core::responder::RejectReason;

/// At most one log line per peer address per interval.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Addresses remembered at most.
pub(crate) const MAX_PEERS: usize = 4096;

/// Per address: when its last line was written and how many failures were not logged since.
#[derive(Debug, Default)]
pub(crate) struct RejectLog {
    peers: BTreeMap<IpAddr, (Instant, u64)>,
    /// Index by time of last line, for evicting the oldest: (time, address).
    by_time: BTreeSet<(Instant, IpAddr)>,
}

/// What to do with one failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write a line; `suppressed` failures of this address were not logged since the last line.
    Log { suppressed: u64 },
    /// Count it only.
    Suppress,
}

impl RejectLog {
    /// Records one failure of `peer` at `now`.
    pub(crate) fn record(&mut self, peer: IpAddr, now: Instant) -> Verdict {
        if let Some((last, suppressed)) = self.peers.get_mut(&peer) {
            if now.saturating_duration_since(*last) < LOG_INTERVAL {
                *suppressed += 1;
                return Verdict::Suppress;
            }
            let verdict = Verdict::Log {
                suppressed: *suppressed,
            };
            self.by_time.remove(&(*last, peer));
            *last = now;
            *suppressed = 0;
            self.by_time.insert((now, peer));
            return verdict;
        }
        if self.peers.len() >= MAX_PEERS {
            if let Some((_, oldest)) = self.by_time.pop_first() {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(peer, (now, 0));
        self.by_time.insert((now, peer));
        Verdict::Log { suppressed: 0 }
    }

    /// Logs `reason` for `peer` if the rate limit allows it.
    pub(crate) fn report(&mut self, peer: IpAddr, reason: &RejectReason, now: Instant) {
        let Verdict::Log { suppressed } = self.record(peer, now) else {
            return;
        };
        let credential = matches!(
            reason,
            RejectReason::Rejection(Rejection::AuthenticationFailed | Rejection::NotAllowed)
        );
        if credential {
            tracing::warn!(%peer, %reason, suppressed, "handshake refused");
        } else {
            tracing::info!(%peer, %reason, suppressed, "handshake failed");
        }
    }

    /// Addresses remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_peer_per_interval_with_the_suppressed_count() {
        let mut log = RejectLog::default();
        let t0 = Instant::now();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(log.record(a, t0), Verdict::Log { suppressed: 0 });
        for i in 1..=5 {
            assert_eq!(
                log.record(a, t0 + Duration::from_secs(i)),
                Verdict::Suppress
            );
        }
        assert_eq!(log.record(b, t0), Verdict::Log { suppressed: 0 });
        assert_eq!(
            log.record(a, t0 + LOG_INTERVAL),
            Verdict::Log { suppressed: 5 }
        );
        assert_eq!(log.record(a, t0 + LOG_INTERVAL), Verdict::Suppress);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let mut log = RejectLog::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = log.record(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(log.len(), MAX_PEERS);
        // The first address was forgotten: it logs again at once.
        let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
        assert_eq!(
            log.record(first, t0 + Duration::from_secs(1)),
            Verdict::Log { suppressed: 0 }
        );
    }
}
