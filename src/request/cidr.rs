//! Client address blocks (`10.0.0.0/8`, `2001:db8::/32`, a single address), for allow-lists.

use std::net::IpAddr;

/// An address block, IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let bits = |a: &IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u32::from(*v4) as u128,
                IpAddr::V6(v6) => u128::from(*v6),
            }
        };
        let width: u32 = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        (bits(&self.addr) & mask) == (bits(ip) & mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(&ip("10.200.3.4")));
        assert!(!c.contains(&ip("11.0.0.1")));
        assert!(!c.contains(&ip("::1")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(&ip("2001:db8::7")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(&ip("1.2.3.4")));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(&ip("1.2.3.4")));
        for bad in ["10.0.0.0/33", "nope", "1.2.3.4/x", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
