//! Transport mode (RFC 4303 §3.1.1): ESP between the IP header and the
//! payload of a packet between the two SA endpoints themselves.
//!
//! Outbound, the packet read from the TUN device is split after its IP
//! header: only the payload is sealed, with the header's protocol as Next
//! Header, and the outer header is written by the kernel when the raw or
//! UDP socket sends the ESP packet from and to the SA's addresses.
//! Inbound, [`rebuild`] writes the IP header the receiver hands to the TUN
//! device in front of the decrypted payload: the SA's addresses, protocol
//! = Next Header, lengths and (IPv4) checksum fixed.
//!
//! IPv4 fragments are refused ([`is_ipv4_fragment`]): RFC 4303 §3.3
//! applies transport mode to whole datagrams.
//!
//! **Limits of this version.** IPv4 options and IPv6 extension headers are
//! not carried in front of ESP: everything after the fixed header (IPv4:
//! after IHL) is protected, and the rebuilt header has none. DSCP/ECN are
//! not copied (0) and the TTL/Hop Limit of the rebuilt header is
//! [`REBUILT_TTL`]. With UDP encapsulation through a NAT the payload's TCP
//! and UDP checksums still cover the peer's original addresses, which
//! needs the NAT-OA fix-up of RFC 3948 §3.1.2; `SaSpec` carries no NAT-OA,
//! so the shell refuses transport-mode SAs with UDP encapsulation.

#![deny(clippy::unwrap_used)]

use std::net::IpAddr;

/// Bytes of a rebuilt IPv4 header.
pub const IPV4_HEADER: usize = 20;
/// Bytes of an IPv6 fixed header, the longest header [`rebuild`] writes.
pub const IPV6_HEADER: usize = 40;
/// TTL (IPv4) or Hop Limit (IPv6) of a rebuilt header.
pub const REBUILT_TTL: u8 = 64;

/// Where the payload of the IP packet `packet` starts (after the IPv4
/// header with its options, or after the IPv6 fixed header); `None` if it
/// is not a packet whose header fits.
#[must_use]
pub fn payload_offset(packet: &[u8]) -> Option<usize> {
    let off = match packet.first()? >> 4 {
        4 => usize::from(packet[0] & 0x0f) * 4,
        6 => IPV6_HEADER,
        _ => return None,
    };
    (off >= IPV4_HEADER && off <= packet.len()).then_some(off)
}

/// Whether `packet` is an IPv4 fragment: More Fragments set or a non-zero
/// Fragment Offset (RFC 791). Transport mode must not carry one: RFC 4303
/// §3.3 applies transport mode to whole datagrams, and the header rebuilt
/// inbound has no fragment fields. IPv6 fragments carry their Fragment
/// header inside the protected payload, so they are not refused here.
#[must_use]
pub fn is_ipv4_fragment(packet: &[u8]) -> bool {
    const MF: u16 = 0x2000;
    const OFFSET: u16 = 0x1fff;
    match packet {
        [v, _, _, _, _, _, hi, lo, ..] if v >> 4 == 4 => {
            u16::from_be_bytes([*hi, *lo]) & (MF | OFFSET) != 0
        }
        _ => false,
    }
}

/// Writes into `out` the IP header of a packet from `src` to `dst`
/// carrying `payload_len` bytes of protocol `proto`; returns the header's
/// length, or `None` if the addresses' families differ or the packet would
/// exceed the family's length field.
#[must_use]
pub fn rebuild(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload_len: usize,
    out: &mut [u8; IPV6_HEADER],
) -> Option<usize> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(IPV4_HEADER + payload_len).ok()?;
            let h = &mut out[..IPV4_HEADER];
            h.fill(0);
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[8] = REBUILT_TTL;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let sum = ipv4_checksum(h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            Some(IPV4_HEADER)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(payload_len).ok()?;
            out.fill(0);
            out[0] = 0x60;
            out[4..6].copy_from_slice(&len.to_be_bytes());
            out[6] = proto;
            out[7] = REBUILT_TTL;
            out[8..24].copy_from_slice(&s.octets());
            out[24..40].copy_from_slice(&d.octets());
            Some(IPV6_HEADER)
        }
        _ => None,
    }
}

/// The RFC 791 header checksum of `header` (whose checksum field is 0).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userspace::spd::InnerHeader;

    /// The inner ICMP echo request of the strongSwan capture (frame 5).
    const ICMP_V4: &[u8] =
        include_bytes!("../../testdata/esp/strongswan-gcm128-7b371abe-seq1.inner.bin");

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn the_checksum_of_a_captured_header_verifies() {
        // A header including its own checksum sums to 0xffff (RFC 1071).
        assert_eq!(ipv4_checksum(&ICMP_V4[..20]), 0);
        // RFC 1071 §3 example bytes, as one 8-byte "header".
        assert_eq!(
            ipv4_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn rebuilt_ipv4_header_parses_back_and_has_a_valid_checksum() {
        let mut out = [0xaa; IPV6_HEADER];
        let n = rebuild(ip("192.0.2.2"), ip("192.0.2.1"), 1, 64, &mut out).expect("fits");
        assert_eq!(n, 20);
        assert_eq!(ipv4_checksum(&out[..20]), 0);
        let mut packet = out[..20].to_vec();
        packet.extend_from_slice(&[0; 64]);
        let h = InnerHeader::parse(&packet).expect("parses");
        assert_eq!((h.src, h.dst), (ip("192.0.2.2"), ip("192.0.2.1")));
        assert_eq!((h.proto, h.len), (1, 84));
        assert_eq!(payload_offset(&packet), Some(20));
    }

    #[test]
    fn rebuilding_the_captured_packet_keeps_addresses_protocol_and_length() {
        // Same addresses, protocol and length as the capture: only TTL,
        // identification and flags may differ, and the checksum with them.
        let mut out = [0; IPV6_HEADER];
        let n = rebuild(ip("198.51.100.1"), ip("203.0.113.1"), 1, 64, &mut out).expect("fits");
        let fields = |h: &[u8]| (h[0], h[2..4].to_vec(), h[9], h[12..20].to_vec());
        assert_eq!(fields(&out[..n]), fields(&ICMP_V4[..20]));
    }

    #[test]
    fn rebuilt_ipv6_header_parses_back() {
        let mut out = [0; IPV6_HEADER];
        let n = rebuild(ip("2001:db8::2"), ip("2001:db8::1"), 58, 16, &mut out).expect("fits");
        assert_eq!(n, 40);
        let mut packet = out.to_vec();
        packet.extend_from_slice(&[0; 16]);
        let h = InnerHeader::parse(&packet).expect("parses");
        assert_eq!((h.src, h.dst), (ip("2001:db8::2"), ip("2001:db8::1")));
        assert_eq!((h.proto, h.len), (58, 56));
        assert_eq!(out[7], REBUILT_TTL);
        assert_eq!(payload_offset(&packet), Some(40));
    }

    #[test]
    fn lengths_beyond_the_header_fields_and_mixed_families_are_refused() {
        let mut out = [0; IPV6_HEADER];
        assert_eq!(
            rebuild(ip("192.0.2.1"), ip("192.0.2.2"), 6, 65_515, &mut out),
            Some(20)
        );
        assert_eq!(
            rebuild(ip("192.0.2.1"), ip("192.0.2.2"), 6, 65_516, &mut out),
            None
        );
        assert_eq!(
            rebuild(ip("2001:db8::1"), ip("2001:db8::2"), 6, 65_535, &mut out),
            Some(40)
        );
        assert_eq!(
            rebuild(ip("2001:db8::1"), ip("2001:db8::2"), 6, 65_536, &mut out),
            None
        );
        assert_eq!(
            rebuild(ip("192.0.2.1"), ip("2001:db8::2"), 6, 8, &mut out),
            None
        );
    }

    #[test]
    fn ipv4_fragments_are_recognised_by_mf_or_offset() {
        let mut p = ICMP_V4.to_vec();
        assert!(!is_ipv4_fragment(&p), "a whole datagram");
        p[6] = 0x40; // DF only
        assert!(!is_ipv4_fragment(&p), "DF is not a fragment");
        p[6] = 0x20; // MF: the first fragment
        assert!(is_ipv4_fragment(&p));
        p[6..8].copy_from_slice(&[0x00, 0xb9]); // offset 185 * 8, no MF: the last
        assert!(is_ipv4_fragment(&p));
        p[6..8].copy_from_slice(&[0x40, 0x01]); // DF with an offset still is one
        assert!(is_ipv4_fragment(&p));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6..8].copy_from_slice(&[0x3f, 0xff]);
        assert!(!is_ipv4_fragment(&v6), "IPv6 has no such fields");
        assert!(!is_ipv4_fragment(&p[..7]), "too short to tell");
    }

    #[test]
    fn payload_offset_honours_ihl_and_rejects_short_or_foreign_packets() {
        let mut p = ICMP_V4.to_vec();
        assert_eq!(payload_offset(&p), Some(20));
        p[0] = 0x46;
        assert_eq!(payload_offset(&p), Some(24));
        p[0] = 0x44;
        assert_eq!(payload_offset(&p), None);
        assert_eq!(payload_offset(&ICMP_V4[..19]), None);
        assert_eq!(payload_offset(&[0x60; 39]), None);
        assert_eq!(payload_offset(&[0x20; 60]), None);
        assert_eq!(payload_offset(&[]), None);
    }
}
