//! Traffic Selector payloads TSi / TSr
//! ([RFC 7296 §3.13](https://www.rfc-editor.org/rfc/rfc7296#section-3.13)).

use libracoon::open_enum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nom::number::complete::{be_u8, be_u16, be_u24, be_u32, be_u128};

use super::{DecodeError, end, fields, len_u8, len_u16, split};

open_enum! {
    /// TS Type (RFC 7296 §3.13.1).
    pub enum TsType(u8) {
        /// An IPv4 address range with a port range and IP protocol.
        Ipv4AddrRange = 7 => "TS_IPV4_ADDR_RANGE",
        /// An IPv6 address range with a port range and IP protocol.
        Ipv6AddrRange = 8 => "TS_IPV6_ADDR_RANGE",
    }
}

/// One traffic selector: an address range, a port range and an IP protocol.
///
/// `start` and `end` must both be of the family `ts_type` names; the writer trusts this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    /// TS Type.
    pub ts_type: TsType,
    /// IP Protocol ID; 0 means any.
    pub ip_proto: u8,
    /// First port of the range (0 with `end_port` 65535 means any; ICMP packs type/code here).
    pub start_port: u16,
    /// Last port of the range.
    pub end_port: u16,
    /// First address of the range.
    pub start: IpAddr,
    /// Last address of the range.
    pub end: IpAddr,
}

/// Decodes a TS body: count, 3 RESERVED octets, that many selectors, nothing after.
///
/// Unknown TS types are an error (`BadValue("TS type")`), not skipped: a selector we cannot
/// read leaves the TS set unknown, and narrowing must not act on a partial set. (RFC 9478
/// security labels would be added here as a type when supported.)
pub(super) fn parse(body: &[u8]) -> Result<Vec<TrafficSelector>, DecodeError> {
    let (mut rest, (count, _reserved)) = fields("TS payload", body, (be_u8, be_u24))?;
    let mut selectors = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (ts, after) = parse_selector(rest)?;
        selectors.push(ts);
        rest = after;
    }
    end("TS payload", rest)?;
    Ok(selectors)
}

/// Encodes a TS body.
///
/// # Panics
/// If there are more than 255 selectors.
pub(super) fn emit(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
    out.extend_from_slice(&[len_u8("TS count", selectors.len()), 0, 0, 0]);
    for ts in selectors {
        emit_selector(ts, out);
    }
}

/// Selector header: type, protocol, length, start port, end port.
const SELECTOR_HEADER_LEN: usize = 8;

/// Decodes one selector; its length must be 16 (IPv4) or 40 (IPv6) as its type requires.
fn parse_selector(input: &[u8]) -> Result<(TrafficSelector, &[u8]), DecodeError> {
    let (_, (ts_type, ip_proto, len)) = fields("traffic selector", input, (be_u8, be_u8, be_u16))?;
    let ts_type = TsType::from(ts_type);
    let addr_len = match ts_type {
        TsType::Ipv4AddrRange => 4,
        TsType::Ipv6AddrRange => 16,
        TsType::Unknown(_) => return Err(DecodeError::BadValue("TS type")),
    };
    let len = usize::from(len);
    if len != SELECTOR_HEADER_LEN + 2 * addr_len {
        return Err(DecodeError::BadLength("traffic selector", len));
    }
    let (this, after) = split("traffic selector", input, len)?;
    let (addrs, (_, _, _, start_port, end_port)) = fields(
        "traffic selector",
        this,
        (be_u8, be_u8, be_u16, be_u16, be_u16),
    )?;
    let (start, end) = if addr_len == 4 {
        let (_, (s, e)) = fields("TS address", addrs, (be_u32, be_u32))?;
        (Ipv4Addr::from(s).into(), Ipv4Addr::from(e).into())
    } else {
        let (_, (s, e)) = fields("TS address", addrs, (be_u128, be_u128))?;
        (Ipv6Addr::from(s).into(), Ipv6Addr::from(e).into())
    };
    let ts = TrafficSelector {
        ts_type,
        ip_proto,
        start_port,
        end_port,
        start,
        end,
    };
    Ok((ts, after))
}

/// Encodes one selector; its length follows from the addresses.
fn emit_selector(ts: &TrafficSelector, out: &mut Vec<u8>) {
    let start = octets(ts.start);
    let end = octets(ts.end);
    let len = len_u16(
        "traffic selector",
        SELECTOR_HEADER_LEN + start.len() + end.len(),
    );
    out.extend_from_slice(&[ts.ts_type.into(), ts.ip_proto]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&ts.start_port.to_be_bytes());
    out.extend_from_slice(&ts.end_port.to_be_bytes());
    out.extend_from_slice(&start);
    out.extend_from_slice(&end);
}

/// An address's wire octets.
fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ikev2::wire::{captures, strategies};

    /// TSi of the decrypted strongSwan IKE_AUTH request (02_*.inner.bin, octets 170..190):
    /// 198.51.100.0-198.51.100.255, any protocol and port.
    fn captured_tsi() -> &'static [u8] {
        let inner = captures::PSK_AUTH_REQ_INNER;
        &inner[170..190]
    }

    #[test]
    fn parses_captured_ipv4_range() {
        let ts = parse(captured_tsi()).unwrap();
        assert_eq!(
            ts,
            [TrafficSelector {
                ts_type: TsType::Ipv4AddrRange,
                ip_proto: 0,
                start_port: 0,
                end_port: 65535,
                start: "198.51.100.0".parse().unwrap(),
                end: "198.51.100.255".parse().unwrap(),
            }]
        );
        let mut out = Vec::new();
        emit(&ts, &mut out);
        assert_eq!(out, captured_tsi());
    }

    #[test]
    fn parses_ipv6_range() {
        let ts = TrafficSelector {
            ts_type: TsType::Ipv6AddrRange,
            ip_proto: 58,
            start_port: 0x8000,
            end_port: 0x80ff,
            start: "2001:db8::".parse().unwrap(),
            end: "2001:db8::ffff".parse().unwrap(),
        };
        let mut out = Vec::new();
        emit(std::slice::from_ref(&ts), &mut out);
        assert_eq!(out.len(), 4 + 40);
        assert_eq!(parse(&out), Ok(vec![ts]));
    }

    #[test]
    fn selector_length_must_match_type() {
        let mut body = captured_tsi().to_vec();
        body[6..8].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(
            parse(&body),
            Err(DecodeError::BadLength("traffic selector", 40))
        );
        body[4] = 8; // IPv6 type with a 40-octet length, but only 16 octets present
        assert_eq!(
            parse(&body),
            Err(DecodeError::Truncated("traffic selector"))
        );
        body[6..8].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            parse(&body),
            Err(DecodeError::BadLength("traffic selector", 16))
        );
    }

    #[test]
    fn unknown_ts_type_is_an_error() {
        let mut body = captured_tsi().to_vec();
        body[4] = 10; // TS_SECLABEL (RFC 9478)
        assert_eq!(parse(&body), Err(DecodeError::BadValue("TS type")));
    }

    #[test]
    fn count_must_match_selectors() {
        let mut body = captured_tsi().to_vec();
        body[0] = 2;
        assert_eq!(
            parse(&body),
            Err(DecodeError::Truncated("traffic selector"))
        );
        body[0] = 0;
        assert_eq!(parse(&body), Err(DecodeError::Trailing("TS payload")));
        assert_eq!(parse(&[1, 0]), Err(DecodeError::Truncated("TS payload")));
    }

    proptest! {
        #[test]
        fn selectors_round_trip(ts in prop::collection::vec(strategies::traffic_selector(), 0..5)) {
            let mut out = Vec::new();
            emit(&ts, &mut out);
            prop_assert_eq!(parse(&out), Ok(ts));
        }
    }
}
