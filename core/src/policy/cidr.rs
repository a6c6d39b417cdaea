//! Source-address allow-lists: CIDR ranges (Envoy's `CidrRange`: `address_prefix` + `prefix_len`).

use std::fmt;
use std::net::IpAddr;

/// One address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidrRange {
    /// The network address (host bits cleared).
    network: IpAddr,
    /// Leading bits that must match.
    prefix_len: u8,
}

/// A [`CidrRange`] that cannot be used.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// Not an IP address (or, in [`CidrRange::parse`], not `address/prefix_len`).
    #[error("{0:?} is not an IP address or an address/prefix_len range")]
    Address(String),
    /// `prefix_len` larger than the address (32 for IPv4, 128 for IPv6).
    #[error("prefix_len {prefix_len} is larger than {max} for {address}")]
    PrefixLen {
        /// The address.
        address: IpAddr,
        /// The length given.
        prefix_len: u32,
        /// The address's bit count.
        max: u8,
    },
}

impl CidrRange {
    /// The range of `address_prefix`/`prefix_len`; host bits of the address are ignored (as Envoy does).
    ///
    /// # Errors
    /// `address_prefix` is not an IP literal, or `prefix_len` is larger than the address.
    pub fn new(address_prefix: &str, prefix_len: u32) -> Result<Self, CidrError> {
        let address: IpAddr = address_prefix
            .trim()
            .parse()
            .map_err(|_| CidrError::Address(address_prefix.to_owned()))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let len =
            u8::try_from(prefix_len)
                .ok()
                .filter(|l| *l <= max)
                .ok_or(CidrError::PrefixLen {
                    address,
                    prefix_len,
                    max,
                })?;
        Ok(Self {
            network: mask(address, len),
            prefix_len: len,
        })
    }

    /// Reads `address/prefix_len` (e.g. `10.0.0.0/8`, `::1/128`); a bare address is the host alone.
    ///
    /// # Errors
    /// Not an IP address, a prefix length that is not a number, or one larger than the address.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        match text.split_once('/') {
            None => {
                let full = if text.contains(':') { 128 } else { 32 };
                Self::new(text, full)
            }
            Some((address, len)) => {
                let len: u32 = len
                    .trim()
                    .parse()
                    .map_err(|_| CidrError::Address(text.to_owned()))?;
                Self::new(address, len)
            }
        }
    }

    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is taken as its IPv4
    /// address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix_len) == self.network
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for CidrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Source ranges allowed to connect. An empty list allows nobody; a listener with no allow-list at all
/// holds `Option::<SourceAllowList>::None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceAllowList {
    ranges: Vec<CidrRange>,
}

impl SourceAllowList {
    /// A list of `ranges`.
    #[must_use]
    pub fn new(ranges: Vec<CidrRange>) -> Self {
        Self { ranges }
    }

    /// Whether `ip` is in one of the ranges.
    #[must_use]
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The ranges, in order.
    #[must_use]
    pub fn ranges(&self) -> &[CidrRange] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match() {
        let lo = CidrRange::new("127.0.0.1", 32).unwrap();
        assert!(lo.contains(ip("127.0.0.1")) && !lo.contains(ip("127.0.0.2")));
        let net = CidrRange::new("10.1.2.3", 16).unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert!(net.contains(ip("10.1.255.1")) && !net.contains(ip("10.2.0.1")));
        assert!(
            CidrRange::new("0.0.0.0", 0)
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!(!CidrRange::new("0.0.0.0", 0).unwrap().contains(ip("::1")));
        assert!(CidrRange::new("::1", 128).unwrap().contains(ip("::1")));
        assert!(CidrRange::new("::", 0).unwrap().contains(ip("2001:db8::1")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(
            CidrRange::parse("127.0.0.0/8").unwrap().to_string(),
            "127.0.0.0/8"
        );
        assert_eq!(CidrRange::parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            CidrRange::parse("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!(CidrRange::parse("10.0.0.0/x").is_err());
        assert!(CidrRange::parse("10.0.0.0/33").is_err());
        let list = SourceAllowList::new(vec![lo, net]);
        assert!(list.allows(ip("10.1.0.9")) && !list.allows(ip("192.168.0.1")));
        assert!(!SourceAllowList::default().allows(ip("127.0.0.1")));
    }

    #[test]
    fn errors() {
        assert_eq!(
            CidrRange::new("localhost", 8),
            Err(CidrError::Address("localhost".into()))
        );
        assert!(matches!(
            CidrRange::new("127.0.0.1", 33),
            Err(CidrError::PrefixLen { max: 32, .. })
        ));
        assert!(matches!(
            CidrRange::new("::1", 129),
            Err(CidrError::PrefixLen { max: 128, .. })
        ));
    }
}
