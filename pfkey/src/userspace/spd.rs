//! Which SA protects an inner packet: the outbound half of the SPD, built
//! from the selectors of installed outbound SAs, and the inbound selector
//! check of RFC 4301 §5.2.
//!
//! First version: selectors are (source range, destination range, protocol)
//! as [`Selector`] carries them, ports are not matched, and when several
//! SAs cover a packet the newest installed wins (so a rekeyed SA takes over
//! as soon as it is installed, as with XFRM); when the packet's policy is
//! `Protect`, only SAs with the policy's reqid are candidates
//! ([`Spd::matching`], filtered by [`super::sad::Sad`]). Installed policies (DISCARD,
//! BYPASS, PROTECT without an SA) are the other half, in
//! [`super::policy`]; traffic reaches the datapath only through routes into
//! its TUN device.

#![deny(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{SaId, Selector};

/// The fields of an inner IP packet's header that selectors match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerHeader {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 Protocol or IPv6 Next Header (extension headers are not walked).
    pub proto: u8,
    /// Length of the packet per its header (IPv4 Total Length, IPv6 40 +
    /// Payload Length): bytes after it are padding (e.g. ESP TFC padding).
    pub len: usize,
    /// TCP, UDP or SCTP source port; 0 for other protocols and for
    /// fragments after the first (RFC 4301 §4.4.1.1: OPAQUE ports, which
    /// only a selector with "any" port matches).
    pub src_port: u16,
    /// Destination port, likewise.
    pub dst_port: u16,
}

/// IP protocols whose first four payload bytes are source and destination
/// ports.
const PORTED: [u8; 3] = [6, 17, 132];

/// The ports at the start of `l4`, for protocol `proto`.
#[must_use]
pub fn ports(proto: u8, l4: &[u8]) -> (u16, u16) {
    match l4 {
        [a, b, c, d, ..] if PORTED.contains(&proto) => {
            (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
        }
        _ => (0, 0),
    }
}

impl InnerHeader {
    /// Parses the IPv4 or IPv6 header at the start of `packet`.
    ///
    /// Returns `None` for anything else, or when the header's lengths do not
    /// fit `packet`.
    #[must_use]
    pub fn parse(packet: &[u8]) -> Option<Self> {
        match packet.first()? >> 4 {
            4 => Self::parse_v4(packet),
            6 => Self::parse_v6(packet),
            _ => None,
        }
    }

    /// The ESP Next Header value for this packet in tunnel mode.
    #[must_use]
    pub fn next_header(&self) -> u8 {
        match self.src {
            IpAddr::V4(_) => super::esp::NEXT_HEADER_IPV4,
            IpAddr::V6(_) => super::esp::NEXT_HEADER_IPV6,
        }
    }

    fn parse_v4(p: &[u8]) -> Option<Self> {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
        if ihl < 20 || total < ihl || total > p.len() {
            return None;
        }
        let addr = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        let first_fragment = u16::from_be_bytes([p[6], p[7]]) & 0x1fff == 0;
        let (src_port, dst_port) = if first_fragment {
            ports(p[9], &p[ihl..total])
        } else {
            (0, 0)
        };
        Some(Self {
            src: IpAddr::V4(addr(12)),
            dst: IpAddr::V4(addr(16)),
            proto: p[9],
            len: total,
            src_port,
            dst_port,
        })
    }

    fn parse_v6(p: &[u8]) -> Option<Self> {
        if p.len() < 40 {
            return None;
        }
        let total = 40 + usize::from(u16::from_be_bytes([p[4], p[5]]));
        if total > p.len() {
            return None;
        }
        let addr = |at: usize| {
            let mut a = [0; 16];
            a.copy_from_slice(&p[at..at + 16]);
            Ipv6Addr::from(a)
        };
        let (src_port, dst_port) = ports(p[6], &p[40..total]);
        Some(Self {
            src: IpAddr::V6(addr(8)),
            dst: IpAddr::V6(addr(24)),
            proto: p[6],
            len: total,
            src_port,
            dst_port,
        })
    }
}

/// Whether `sel` covers a packet with header `h`.
#[must_use]
pub fn covers(sel: &Selector, h: &InnerHeader) -> bool {
    in_range(h.src, sel.src)
        && in_range(h.dst, sel.dst)
        && (sel.proto == 0 || sel.proto == h.proto)
        && (sel.src_port == 0 || sel.src_port == h.src_port)
        && (sel.dst_port == 0 || sel.dst_port == h.dst_port)
}

/// Whether any of `sels` covers `h`: the RFC 4301 §5.2 inbound check ("if
/// the packet does not match ... the SA's selectors, the packet MUST be
/// discarded") and the outbound match alike.
#[must_use]
pub fn any_covers(sels: &[Selector], h: &InnerHeader) -> bool {
    sels.iter().any(|s| covers(s, h))
}

/// Whether `addr` lies in the inclusive range `(lo, hi)` of its family.
#[must_use]
pub fn in_range(addr: IpAddr, (lo, hi): (IpAddr, IpAddr)) -> bool {
    match (addr, lo, hi) {
        (IpAddr::V4(a), IpAddr::V4(l), IpAddr::V4(h)) => l <= a && a <= h,
        (IpAddr::V6(a), IpAddr::V6(l), IpAddr::V6(h)) => l <= a && a <= h,
        _ => false,
    }
}

/// The outbound SPD: installed outbound SAs and their selectors, newest
/// first.
#[derive(Debug, Default)]
pub struct Spd {
    entries: Vec<(SaId, Vec<Selector>)>,
}

impl Spd {
    /// An empty SPD.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the selectors of outbound SA `id`; it takes precedence over
    /// older SAs with overlapping selectors.
    pub fn insert(&mut self, id: SaId, selectors: Vec<Selector>) {
        self.remove(id);
        self.entries.insert(0, (id, selectors));
    }

    /// Forgets SA `id`.
    pub fn remove(&mut self, id: SaId) {
        self.entries.retain(|(e, _)| *e != id);
    }

    /// The SA that protects a packet with header `h`, if any (a linear scan:
    /// fine for the handful of SAs a host runs; an index comes with the
    /// fast version).
    #[must_use]
    pub fn lookup(&self, h: &InnerHeader) -> Option<SaId> {
        self.entries
            .iter()
            .find(|(_, sels)| any_covers(sels, h))
            .map(|(id, _)| *id)
    }

    /// Every SA whose selectors cover `h`, newest first.
    pub fn matching<'a>(&'a self, h: &'a InnerHeader) -> impl Iterator<Item = SaId> + 'a {
        self.entries
            .iter()
            .filter(|(_, sels)| any_covers(sels, h))
            .map(|(id, _)| *id)
    }

    /// Number of SAs with selectors installed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no SA is installed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn sel(src: (&str, &str), dst: (&str, &str), proto: u8) -> Selector {
        Selector {
            src: (v4(src.0), v4(src.1)),
            dst: (v4(dst.0), v4(dst.1)),
            proto,
            src_port: 0,
            dst_port: 0,
        }
    }

    /// The inner ICMP echo request of the strongSwan capture (frame 5).
    const ICMP_V4: &[u8] =
        include_bytes!("../../testdata/esp/strongswan-gcm128-7b371abe-seq1.inner.bin");

    fn ipv6_udp() -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p[6] = 17;
        p[8..24].copy_from_slice(&"2001:db8:a::1".parse::<Ipv6Addr>().expect("v6").octets());
        p[24..40].copy_from_slice(&"2001:db8:b::1".parse::<Ipv6Addr>().expect("v6").octets());
        p
    }

    /// An IPv4 TCP SYN-sized packet 198.51.100.1:40000 -> 203.0.113.1:`dport`.
    fn ipv4_tcp(dport: u16, fragment_offset: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[6..8].copy_from_slice(&fragment_offset.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 51, 100, 1]);
        p[16..20].copy_from_slice(&[203, 0, 113, 1]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn port_selectors_match_first_fragments_of_tcp_udp_and_sctp_only() {
        let mut https = sel(
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.1", "203.0.113.1"),
            6,
        );
        https.dst_port = 443;
        let h = InnerHeader::parse(&ipv4_tcp(443, 0)).expect("parses");
        assert_eq!((h.src_port, h.dst_port), (40000, 443));
        assert!(covers(&https, &h));
        assert!(!covers(
            &https,
            &InnerHeader::parse(&ipv4_tcp(80, 0)).expect("parses")
        ));
        // A later fragment carries no ports: OPAQUE, matched by "any" only.
        let later = InnerHeader::parse(&ipv4_tcp(443, 185)).expect("parses");
        assert_eq!((later.src_port, later.dst_port), (0, 0));
        assert!(!covers(&https, &later));
        let mut any_port = https;
        any_port.dst_port = 0;
        assert!(covers(&any_port, &later));
        // ICMP has no ports.
        assert_eq!(ports(1, &[1, 2, 3, 4]), (0, 0));
        assert_eq!(ports(17, &[0, 53, 0, 54]), (53, 54));
        assert_eq!(ports(17, &[0, 53]), (0, 0), "truncated");
    }

    #[test]
    fn parses_captured_ipv4_icmp_header() {
        let h = InnerHeader::parse(ICMP_V4).expect("parses");
        assert_eq!(h.src, v4("198.51.100.1"));
        assert_eq!(h.dst, v4("203.0.113.1"));
        assert_eq!((h.proto, h.len, h.next_header()), (1, 84, 4));
    }

    #[test]
    fn parses_ipv6_header_and_rejects_lengths_beyond_the_buffer() {
        let p = ipv6_udp();
        let h = InnerHeader::parse(&p).expect("parses");
        assert_eq!((h.proto, h.len, h.next_header()), (17, 48, 41));
        assert_eq!(h.dst, "2001:db8:b::1".parse::<IpAddr>().expect("v6"));
        assert_eq!(InnerHeader::parse(&p[..47]), None);
        assert_eq!(InnerHeader::parse(&ICMP_V4[..83]), None);
        assert_eq!(InnerHeader::parse(&[]), None);
        assert_eq!(InnerHeader::parse(&[0x45; 19]), None);
        assert_eq!(InnerHeader::parse(&[0x20; 60]), None);
    }

    #[test]
    fn trailing_bytes_after_total_length_are_not_part_of_the_packet() {
        let mut p = ICMP_V4.to_vec();
        p.extend_from_slice(&[0; 7]);
        assert_eq!(InnerHeader::parse(&p).map(|h| h.len), Some(84));
    }

    #[test]
    fn selector_ranges_are_inclusive_and_protocol_zero_is_any() {
        let h = InnerHeader::parse(ICMP_V4).expect("parses");
        let lan = sel(
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            0,
        );
        assert!(covers(&lan, &h));
        assert!(covers(
            &sel(
                ("198.51.100.1", "198.51.100.1"),
                ("203.0.113.1", "203.0.113.1"),
                1
            ),
            &h
        ));
        assert!(!covers(
            &sel(
                ("198.51.100.1", "198.51.100.1"),
                ("203.0.113.1", "203.0.113.1"),
                6
            ),
            &h
        ));
        assert!(!covers(
            &sel(
                ("198.51.100.2", "198.51.100.9"),
                ("203.0.113.0", "203.0.113.255"),
                0
            ),
            &h
        ));
        assert!(!covers(
            &sel(
                ("203.0.113.0", "203.0.113.255"),
                ("198.51.100.0", "198.51.100.255"),
                0
            ),
            &h
        ));
    }

    #[test]
    fn families_never_match_each_other() {
        let h = InnerHeader::parse(&ipv6_udp()).expect("parses");
        let all_v4 = sel(
            ("0.0.0.0", "255.255.255.255"),
            ("0.0.0.0", "255.255.255.255"),
            0,
        );
        assert!(!covers(&all_v4, &h));
        let all_v6 = Selector {
            src: ("::".parse().expect("v6"), Ipv6Addr::from(u128::MAX).into()),
            dst: ("::".parse().expect("v6"), Ipv6Addr::from(u128::MAX).into()),
            proto: 0,
            src_port: 0,
            dst_port: 0,
        };
        assert!(covers(&all_v6, &h));
    }

    #[test]
    fn newest_sa_wins_and_removal_falls_back() {
        let h = InnerHeader::parse(ICMP_V4).expect("parses");
        let lan = sel(
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            0,
        );
        let id = |spi| SaId {
            dst: v4("192.0.2.2"),
            spi,
        };
        let mut spd = Spd::new();
        assert_eq!(spd.lookup(&h), None);
        spd.insert(id(1), vec![lan.clone()]);
        spd.insert(id(2), vec![lan]);
        assert_eq!(spd.lookup(&h), Some(id(2)));
        assert_eq!(spd.matching(&h).collect::<Vec<_>>(), [id(2), id(1)]);
        spd.remove(id(2));
        assert_eq!(spd.lookup(&h), Some(id(1)));
        assert_eq!(spd.len(), 1);
    }
}
