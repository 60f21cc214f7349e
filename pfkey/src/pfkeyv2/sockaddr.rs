//! `sockaddr_in` / `sockaddr_in6` as PF_KEY carries them inside address,
//! ipsecrequest and KMADDRESS extensions (Linux layouts; `sa_family` in host
//! order, port and flow label in network order).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::wire::{DecodeError, Reader, put_u16, put_u32};

/// Linux `AF_INET`.
pub const AF_INET: u16 = 2;
/// Linux `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// `sizeof(struct sockaddr_in)`.
const SOCKADDR_IN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
const SOCKADDR_IN6: usize = 28;

/// The size of the `sockaddr` that carries `addr`, unpadded.
pub(crate) fn len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => SOCKADDR_IN,
        SocketAddr::V6(_) => SOCKADDR_IN6,
    }
}

/// Appends `addr` as a `sockaddr_in` or `sockaddr_in6`, unpadded.
pub(crate) fn emit(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => {
            put_u16(out, AF_INET);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&[0; 8]);
        }
        SocketAddr::V6(a) => {
            put_u16(out, AF_INET6);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.flowinfo().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
            put_u32(out, a.scope_id());
        }
    }
}

/// Reads one `sockaddr` of family `AF_INET` or `AF_INET6`.
pub(crate) fn parse(r: &mut Reader<'_>) -> Result<SocketAddr, DecodeError> {
    let family = r.u16()?;
    let port = r.be16()?;
    match family {
        AF_INET => {
            let ip: [u8; 4] = r.bytes(4)?.try_into().unwrap_or_default();
            r.skip(8)?;
            Ok(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
        }
        AF_INET6 => {
            let flow = r.be32()?;
            let ip: [u8; 16] = r.bytes(16)?.try_into().unwrap_or_default();
            let scope = r.u32()?;
            Ok(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).into())
        }
        other => Err(DecodeError::BadValue("sockaddr family", other.into())),
    }
}

/// Reads a (source, destination) pair of the same family, as ipsecrequest
/// tunnel endpoints, KMADDRESS and MIGRATE carry them.
pub(crate) fn parse_pair(r: &mut Reader<'_>) -> Result<(SocketAddr, SocketAddr), DecodeError> {
    let src = parse(r)?;
    let dst = parse(r)?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(DecodeError::BadValue("sockaddr pair families", 0));
    }
    Ok((src, dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip_with_ports_in_network_order() {
        for addr in [
            "192.0.2.1:4500".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:500".parse().unwrap(),
        ] {
            let mut out = Vec::new();
            emit(&addr, &mut out);
            assert_eq!(out.len(), len(&addr));
            assert_eq!(&out[2..4], &addr.port().to_be_bytes());
            assert_eq!(parse(&mut Reader::new(&out, "t")), Ok(addr));
        }
    }

    #[test]
    fn unknown_family_and_short_input_are_errors() {
        let mut out = Vec::new();
        emit(&"192.0.2.1:0".parse().unwrap(), &mut out);
        for cut in 0..out.len() {
            assert!(parse(&mut Reader::new(&out[..cut], "t")).is_err());
        }
        out[..2].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(
            parse(&mut Reader::new(&out, "t")),
            Err(DecodeError::BadValue("sockaddr family", 1))
        );
    }
}
