//! Where an initiator's target cluster finds its hosts (DESIGN.md, "Initiator behaviour"): STATIC,
//! STRICT_DNS and LOGICAL_DNS, and the resolver task that re-resolves a DNS cluster every
//! `dns_refresh_rate` and reports to the machine (which calls the core's `set_hosts`, or
//! `handle_resolve_failed` on an error: counted as `cannot_connect`, never a crash).

use std::net::SocketAddr;
use std::time::Duration;

use async_channel::Sender;

use crate::msg::Internal;
use crate::runtime::Runtime;
use crate::tasks::StopSignal;

/// Envoy's default `dns_refresh_rate`.
pub const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_secs(5);

/// Which addresses of a DNS name become hosts (Envoy's `dns_lookup_family`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LookupFamily {
    /// IPv6 addresses if the name has any, else IPv4 (Envoy's default).
    #[default]
    Auto,
    /// IPv4 addresses only.
    V4Only,
    /// IPv6 addresses only.
    V6Only,
    /// Every address.
    All,
}

/// A DNS name to resolve, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsHosts {
    /// The name (or an IP literal).
    pub host: String,
    /// The port every resolved address gets.
    pub port: u16,
    /// Which addresses to keep.
    pub family: LookupFamily,
    /// How often to resolve again (`dns_refresh_rate`; at least 1 ms is used).
    pub refresh: Duration,
}

impl DnsHosts {
    /// `host:port` with [`LookupFamily::Auto`] and [`DEFAULT_DNS_REFRESH_RATE`].
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            family: LookupFamily::Auto,
            refresh: DEFAULT_DNS_REFRESH_RATE,
        }
    }
}

/// The hosts of one target cluster.
///
/// ```
/// use revtun_driver::{DnsHosts, HostSource, LookupFamily};
/// let fixed = HostSource::Static(vec!["127.0.0.1:9000".parse().unwrap()]);
/// let every_address = HostSource::StrictDns(DnsHosts {
///     family: LookupFamily::All,
///     ..DnsHosts::new("responder.example", 9000)
/// });
/// let first_address = HostSource::LogicalDns(DnsHosts::new("responder.example", 9000));
/// # let _ = (fixed, every_address, first_address);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSource {
    /// STATIC: these addresses, never re-resolved.
    Static(Vec<SocketAddr>),
    /// STRICT_DNS: every address of the name (per its [`LookupFamily`]) is a host.
    StrictDns(DnsHosts),
    /// LOGICAL_DNS: the first address of the name (per its [`LookupFamily`]) is the one host.
    LogicalDns(DnsHosts),
}

/// The hosts a lookup's answer gives: filtered by `family` (in the resolver's order, duplicates
/// removed), and for LOGICAL_DNS (`logical`) only the first.
pub fn select_hosts(
    resolved: &[SocketAddr],
    family: LookupFamily,
    logical: bool,
) -> Vec<SocketAddr> {
    let any_v6 = resolved.iter().any(SocketAddr::is_ipv6);
    let keep = |a: &SocketAddr| match family {
        LookupFamily::Auto => a.is_ipv6() == any_v6,
        LookupFamily::V4Only => a.is_ipv4(),
        LookupFamily::V6Only => a.is_ipv6(),
        LookupFamily::All => true,
    };
    let mut hosts: Vec<SocketAddr> = Vec::new();
    for addr in resolved.iter().filter(|a| keep(a)) {
        if !hosts.contains(addr) {
            hosts.push(*addr);
        }
    }
    if logical {
        hosts.truncate(1);
    }
    hosts
}

/// Resolves `dns` now and every `refresh`, reporting each answer for `cluster`, until the machine stops.
pub(crate) async fn resolve_loop(
    rt: &dyn Runtime,
    cluster: String,
    dns: DnsHosts,
    logical: bool,
    report: Sender<Internal>,
    stop: StopSignal,
) {
    let refresh = dns.refresh.max(Duration::from_millis(1));
    loop {
        let Some(answer) = stop.or_stop(rt.resolve(&dns.host, dns.port)).await else {
            return;
        };
        let result = answer.map(|addrs| select_hosts(&addrs, dns.family, logical));
        if let Err(e) = &result {
            tracing::debug!(cluster, host = dns.host, error = %e, "resolution failed");
        }
        let msg = Internal::Resolved {
            cluster: cluster.clone(),
            result,
        };
        if report.send(msg).await.is_err() {
            return;
        }
        let next = rt.now() + refresh;
        if stop.or_stop(rt.sleep_until(next)).await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families() {
        let mixed = addrs(&[
            "10.0.0.1:80",
            "[::1]:80",
            "10.0.0.2:80",
            "[::2]:80",
            "10.0.0.1:80",
        ]);
        let v4 = addrs(&["10.0.0.1:80", "10.0.0.2:80"]);
        let v6 = addrs(&["[::1]:80", "[::2]:80"]);
        assert_eq!(select_hosts(&mixed, LookupFamily::Auto, false), v6);
        assert_eq!(select_hosts(&v4, LookupFamily::Auto, false), v4);
        assert_eq!(select_hosts(&mixed, LookupFamily::V4Only, false), v4);
        assert_eq!(select_hosts(&mixed, LookupFamily::V6Only, false), v6);
        assert_eq!(
            select_hosts(&mixed, LookupFamily::All, false),
            addrs(&["10.0.0.1:80", "[::1]:80", "10.0.0.2:80", "[::2]:80"])
        );
        assert!(select_hosts(&v4, LookupFamily::V6Only, false).is_empty());
    }

    #[test]
    fn logical_takes_the_first() {
        let mixed = addrs(&["10.0.0.1:80", "[::1]:80", "10.0.0.2:80"]);
        assert_eq!(
            select_hosts(&mixed, LookupFamily::V4Only, true),
            addrs(&["10.0.0.1:80"])
        );
        assert_eq!(
            select_hosts(&mixed, LookupFamily::Auto, true),
            addrs(&["[::1]:80"])
        );
        assert!(select_hosts(&[], LookupFamily::All, true).is_empty());
    }
}
