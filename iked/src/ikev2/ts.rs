//! Traffic selectors as address ranges, and narrowing
//! ([RFC 7296 §2.9](https://www.rfc-editor.org/rfc/rfc7296#section-2.9)).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ikev2::wire::{TrafficSelector, TsType};

/// One traffic selector: an address range, a port range and a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsRange {
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address.
    pub start: IpAddr,
    /// Last address; same family as `start`.
    pub end: IpAddr,
}

impl TsRange {
    /// All ports and protocols of a prefix, e.g. 198.51.100.0/24.
    ///
    /// Returns `None` if `len` exceeds the address width.
    pub fn from_prefix(addr: IpAddr, len: u8) -> Option<Self> {
        let (start, end) = match addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if len > 32 {
                    return None;
                }
                let base = u32::from(a) & !host;
                (
                    IpAddr::V4(Ipv4Addr::from(base)),
                    IpAddr::V4(Ipv4Addr::from(base | host)),
                )
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return None;
                }
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let base = u128::from(a) & !host;
                (
                    IpAddr::V6(Ipv6Addr::from(base)),
                    IpAddr::V6(Ipv6Addr::from(base | host)),
                )
            }
        };
        Some(Self {
            proto: 0,
            start_port: 0,
            end_port: 0xffff,
            start,
            end,
        })
    }

    /// A single host, all ports.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            proto: 0,
            start_port: 0,
            end_port: 0xffff,
            start: addr,
            end: addr,
        }
    }

    /// The overlap of two selectors, if any.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let proto = match (self.proto, other.proto) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start = max_addr(self.start, other.start)?;
        let end = min_addr(self.end, other.end)?;
        (start_port <= end_port && key(start) <= key(end)).then_some(Self {
            proto,
            start_port,
            end_port,
            start,
            end,
        })
    }

    /// Whether `self` lies entirely inside `outer`.
    pub fn is_within(&self, outer: &Self) -> bool {
        self.intersect(outer).as_ref() == Some(self)
    }

    /// The wire form.
    pub fn to_wire(&self) -> TrafficSelector {
        let ts_type = if self.start.is_ipv4() {
            TsType::Ipv4AddrRange
        } else {
            TsType::Ipv6AddrRange
        };
        TrafficSelector {
            ts_type,
            ip_proto: self.proto,
            start_port: self.start_port,
            end_port: self.end_port,
            start: self.start,
            end: self.end,
        }
    }

    /// From the wire form; `None` for mixed families or reversed ranges.
    pub fn from_wire(ts: &TrafficSelector) -> Option<Self> {
        let r = Self {
            proto: ts.ip_proto,
            start_port: ts.start_port,
            end_port: ts.end_port,
            start: ts.start,
            end: ts.end,
        };
        let same_family = r.start.is_ipv4() == r.end.is_ipv4();
        (same_family && key(r.start) <= key(r.end) && r.start_port <= r.end_port).then_some(r)
    }
}

impl std::fmt::Display for TsRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix_len() {
            Some(len) => write!(f, "{}/{len}", self.start)?,
            None => write!(f, "{}..{}", self.start, self.end)?,
        }
        if self.proto != 0 {
            write!(f, "[{}]", self.proto)?;
        }
        Ok(())
    }
}

impl TsRange {
    /// The prefix length if the address range is exactly one prefix.
    fn prefix_len(&self) -> Option<u32> {
        let (start, end, width) = match (self.start, self.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                (u128::from(u32::from(s)), u128::from(u32::from(e)), 32)
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128),
            _ => return None,
        };
        let host = start ^ end;
        let host_bits = 128 - host.leading_zeros();
        let aligned = host.count_ones() == host_bits && start & host == 0;
        aligned.then_some(width - host_bits)
    }
}

/// Narrows the peer's proposed selectors to what our configuration allows
/// (RFC 7296 §2.9): every non-empty pairwise intersection, in the peer's
/// order. An empty result means TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TsRange], allowed: &[TsRange]) -> Vec<TsRange> {
    let mut out = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(i) = p.intersect(a)
                && !out.contains(&i)
            {
                out.push(i);
            }
        }
    }
    out
}

/// Orders addresses of one family; `None` between families.
fn key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn max_addr(a: IpAddr, b: IpAddr) -> Option<IpAddr> {
    (a.is_ipv4() == b.is_ipv4()).then(|| if key(a) >= key(b) { a } else { b })
}

fn min_addr(a: IpAddr, b: IpAddr) -> Option<IpAddr> {
    (a.is_ipv4() == b.is_ipv4()).then(|| if key(a) <= key(b) { a } else { b })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, len: u8) -> TsRange {
        TsRange::from_prefix(s.parse().expect("addr"), len).expect("prefix")
    }

    #[test]
    fn prefix_becomes_its_address_range() {
        let r = net("198.51.100.77", 24);
        assert_eq!(r.start, "198.51.100.0".parse::<IpAddr>().expect("addr"));
        assert_eq!(r.end, "198.51.100.255".parse::<IpAddr>().expect("addr"));
        let all = net("0.0.0.0", 0);
        assert_eq!(all.end, "255.255.255.255".parse::<IpAddr>().expect("addr"));
        assert!(TsRange::from_prefix("2001:db8::".parse().expect("addr"), 129).is_none());
        assert_eq!(r.to_string(), "198.51.100.0/24");
        assert_eq!(all.to_string(), "0.0.0.0/0");
        assert_eq!(
            TsRange::host("2001:db8::1".parse().expect("addr")).to_string(),
            "2001:db8::1/128"
        );
        let odd = TsRange {
            end: "198.51.100.5".parse().expect("addr"),
            ..r
        };
        assert_eq!(odd.to_string(), "198.51.100.0..198.51.100.5");
    }

    #[test]
    fn narrowing_keeps_only_the_overlap() {
        let proposed = [net("0.0.0.0", 0)];
        let allowed = [net("203.0.113.0", 24)];
        assert_eq!(narrow(&proposed, &allowed), vec![net("203.0.113.0", 24)]);
        assert!(narrow(&[net("192.0.2.0", 24)], &allowed).is_empty());
        assert!(
            narrow(&[net("2001:db8::", 32)], &allowed).is_empty(),
            "families never mix"
        );
    }

    #[test]
    fn protocol_and_ports_narrow_too() {
        let mut tcp = net("203.0.113.0", 24);
        tcp.proto = 6;
        tcp.start_port = 80;
        tcp.end_port = 80;
        assert_eq!(
            net("203.0.113.0", 25).intersect(&tcp).map(|r| r.proto),
            Some(6)
        );
        let mut udp = tcp;
        udp.proto = 17;
        assert!(tcp.intersect(&udp).is_none());
        assert!(tcp.is_within(&net("203.0.113.0", 24)));
    }
}
