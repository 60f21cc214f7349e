//! Traffic selectors as Quick Mode ID payloads (IDci/IDcr, RFC 2409 §5.5,
//! RFC 2407 §4.6.2): a [`Selector`] range goes out as an address when it is
//! one host, as a subnet when it is a CIDR block, otherwise as a range; the
//! selector's protocol goes into both IDs, each port into its own side.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libracoon::ipsec::Selector;
use libracoon::isakmp::{IdPayload, Identification};

/// IDci (from `s.src`) and IDcr (from `s.dst`).
pub(super) fn to_ids(s: &Selector) -> (IdPayload<'static>, IdPayload<'static>) {
    let id = |range, port| IdPayload {
        protocol: s.proto,
        port,
        id: identification(range),
    };
    (id(s.src, s.src_port), id(s.dst, s.dst_port))
}

/// The selector the initiator's IDci/IDcr describe (its view: `src` is
/// IDci).
///
/// # Errors
/// The reason, for INVALID-ID-INFORMATION: an ID type that is not an
/// address, subnet or range, a non-contiguous mask, a reversed range, the
/// two IDs in different families or with different protocols.
pub(super) fn from_ids(ci: &IdPayload<'_>, cr: &IdPayload<'_>) -> Result<Selector, &'static str> {
    let src = range(&ci.id)?;
    let dst = range(&cr.id)?;
    if src.0.is_ipv4() != dst.0.is_ipv4() {
        return Err("IDci and IDcr are of different address families");
    }
    if ci.protocol != cr.protocol {
        return Err("IDci and IDcr name different protocols");
    }
    Ok(Selector {
        src,
        dst,
        proto: ci.protocol,
        src_port: ci.port,
        dst_port: cr.port,
    })
}

/// Whether `inner` selects only traffic `outer` selects: both ranges inside,
/// and protocol and ports equal where `outer` names one (0 = any).
pub(super) fn within(inner: &Selector, outer: &Selector) -> bool {
    let narrower = |i: u16, o: u16| o == 0 || i == o;
    range_within(inner.src, outer.src)
        && range_within(inner.dst, outer.dst)
        && narrower(inner.proto.into(), outer.proto.into())
        && narrower(inner.src_port, outer.src_port)
        && narrower(inner.dst_port, outer.dst_port)
}

/// `a-b[proto/port] === c-d[proto/port]`-style text for messages.
pub(super) fn describe(s: &Selector) -> String {
    let side = |(a, b): (IpAddr, IpAddr), port: u16| {
        let mut t = if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        };
        if s.proto != 0 || port != 0 {
            t.push_str(&format!("[{}/{port}]", s.proto));
        }
        t
    };
    format!(
        "{} === {}",
        side(s.src, s.src_port),
        side(s.dst, s.dst_port)
    )
}

fn range_within((a, b): (IpAddr, IpAddr), (c, d): (IpAddr, IpAddr)) -> bool {
    let same = |x: IpAddr, y: IpAddr| x.is_ipv4() == y.is_ipv4();
    same(a, c) && same(b, d) && same(a, b) && c <= a && b <= d
}

/// The inclusive range an address, subnet or range ID stands for.
fn range(id: &Identification<'_>) -> Result<(IpAddr, IpAddr), &'static str> {
    let ordered = |a: IpAddr, b: IpAddr| {
        if a <= b {
            Ok((a, b))
        } else {
            Err("ID range ends before it starts")
        }
    };
    match *id {
        Identification::Ipv4(a) => Ok((a.into(), a.into())),
        Identification::Ipv6(a) => Ok((a.into(), a.into())),
        Identification::Ipv4Range(a, b) => ordered(a.into(), b.into()),
        Identification::Ipv6Range(a, b) => ordered(a.into(), b.into()),
        Identification::Ipv4Subnet(a, m) => {
            let (start, end) = subnet(u32::from(a).into(), u32::from(m).into(), 32)?;
            Ok((v4(start).into(), v4(end).into()))
        }
        Identification::Ipv6Subnet(a, m) => {
            let (start, end) = subnet(u128::from(a), u128::from(m), 128)?;
            Ok((Ipv6Addr::from(start).into(), Ipv6Addr::from(end).into()))
        }
        Identification::Other(..) => Err("ID type is not an address, subnet or range"),
    }
}

/// First and last address of `addr`/`mask` in a `bits`-bit space.
fn subnet(addr: u128, mask: u128, bits: u32) -> Result<(u128, u128), &'static str> {
    let host = !mask & full(bits);
    if host & host.wrapping_add(1) != 0 {
        return Err("ID subnet mask is not contiguous");
    }
    Ok((addr & !host, addr | host))
}

/// The narrowest ID type for an inclusive range. A range whose ends differ
/// in family (which no valid selector has) goes out as its start address.
fn identification((start, end): (IpAddr, IpAddr)) -> Identification<'static> {
    match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a == b => Identification::Ipv4(a),
        (IpAddr::V6(a), IpAddr::V6(b)) if a == b => Identification::Ipv6(a),
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            match block_mask(u32::from(a).into(), u32::from(b).into(), 32) {
                Some(mask) => Identification::Ipv4Subnet(a, v4(mask)),
                None => Identification::Ipv4Range(a, b),
            }
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => match block_mask(a.into(), b.into(), 128) {
            Some(mask) => Identification::Ipv6Subnet(a, Ipv6Addr::from(mask)),
            None => Identification::Ipv6Range(a, b),
        },
        (IpAddr::V4(a), IpAddr::V6(_)) => Identification::Ipv4(a),
        (IpAddr::V6(a), IpAddr::V4(_)) => Identification::Ipv6(a),
    }
}

/// The netmask if `start..=end` is exactly one CIDR block of a `bits`-bit
/// space: the differing bits are a run of low ones, all clear in `start`.
fn block_mask(start: u128, end: u128, bits: u32) -> Option<u128> {
    let host = start ^ end;
    let contiguous = host & host.wrapping_add(1) == 0;
    (start <= end && contiguous && start & host == 0).then_some(!host & full(bits))
}

/// All ones in the low `bits` bits.
fn full(bits: u32) -> u128 {
    u128::MAX.checked_shr(128 - bits.min(128)).unwrap_or(0)
}

/// The IPv4 address of the low 32 bits (higher bits are never set here).
fn v4(x: u128) -> Ipv4Addr {
    Ipv4Addr::from(u32::try_from(x & u128::from(u32::MAX)).unwrap_or(u32::MAX))
}
