//! Identification payload for the IPsec DOI
//! ([RFC 2407 §4.6.2](https://www.rfc-editor.org/rfc/rfc2407#section-4.6.2)).
//!
//! ```text
//! ID Type (8) | Protocol ID (8) | Port (16) | Identification Data
//! ```
//!
//! In Quick Mode the ID payloads (IDci/IDcr) are the traffic selectors: an address, subnet or
//! range plus an IP protocol and port (0 = any).

use crate::open_enum;
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use nom::number::complete::{be_u8, be_u16};

use super::{DecodeError, fields};

open_enum! {
    /// IPsec DOI Identification Type Values (RFC 2407 §4.6.2.1).
    pub enum IdType(u8) {
        /// ID_IPV4_ADDR.
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        /// ID_FQDN.
        Fqdn = 2 => "ID_FQDN",
        /// ID_USER_FQDN.
        UserFqdn = 3 => "ID_USER_FQDN",
        /// ID_IPV4_ADDR_SUBNET.
        Ipv4AddrSubnet = 4 => "ID_IPV4_ADDR_SUBNET",
        /// ID_IPV6_ADDR.
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        /// ID_IPV6_ADDR_SUBNET.
        Ipv6AddrSubnet = 6 => "ID_IPV6_ADDR_SUBNET",
        /// ID_IPV4_ADDR_RANGE.
        Ipv4AddrRange = 7 => "ID_IPV4_ADDR_RANGE",
        /// ID_IPV6_ADDR_RANGE.
        Ipv6AddrRange = 8 => "ID_IPV6_ADDR_RANGE",
        /// ID_DER_ASN1_DN.
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        /// ID_DER_ASN1_GN.
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        /// ID_KEY_ID.
        KeyId = 11 => "ID_KEY_ID",
    }
}

/// The identification data, typed by ID Type. Address forms are checked for their exact
/// length when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identification<'a> {
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV4_ADDR_SUBNET: address and mask.
    Ipv4Subnet(Ipv4Addr, Ipv4Addr),
    /// ID_IPV4_ADDR_RANGE: first and last address.
    Ipv4Range(Ipv4Addr, Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_IPV6_ADDR_SUBNET: address and mask.
    Ipv6Subnet(Ipv6Addr, Ipv6Addr),
    /// ID_IPV6_ADDR_RANGE: first and last address.
    Ipv6Range(Ipv6Addr, Ipv6Addr),
    /// Any other type (FQDN, USER_FQDN, DER DN/GN, KEY_ID, unknown): the raw data.
    Other(IdType, Cow<'a, [u8]>),
}

/// An ID payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload<'a> {
    /// IP protocol number (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// The identity.
    pub id: Identification<'a>,
}

impl Identification<'_> {
    /// The ID Type this identity is sent as.
    #[must_use]
    pub fn id_type(&self) -> IdType {
        match self {
            Self::Ipv4(_) => IdType::Ipv4Addr,
            Self::Ipv4Subnet(..) => IdType::Ipv4AddrSubnet,
            Self::Ipv4Range(..) => IdType::Ipv4AddrRange,
            Self::Ipv6(_) => IdType::Ipv6Addr,
            Self::Ipv6Subnet(..) => IdType::Ipv6AddrSubnet,
            Self::Ipv6Range(..) => IdType::Ipv6AddrRange,
            Self::Other(t, _) => *t,
        }
    }
}

impl IdPayload<'_> {
    /// Encodes the body (after the generic header).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.id.id_type().into());
        out.push(self.protocol);
        out.extend_from_slice(&self.port.to_be_bytes());
        match &self.id {
            Identification::Ipv4(a) => out.extend_from_slice(&a.octets()),
            Identification::Ipv4Subnet(a, b) | Identification::Ipv4Range(a, b) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            Identification::Ipv6(a) => out.extend_from_slice(&a.octets()),
            Identification::Ipv6Subnet(a, b) | Identification::Ipv6Range(a, b) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            Identification::Other(_, data) => out.extend_from_slice(data),
        }
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> IdPayload<'static> {
        let id = match self.id {
            Identification::Ipv4(a) => Identification::Ipv4(a),
            Identification::Ipv4Subnet(a, b) => Identification::Ipv4Subnet(a, b),
            Identification::Ipv4Range(a, b) => Identification::Ipv4Range(a, b),
            Identification::Ipv6(a) => Identification::Ipv6(a),
            Identification::Ipv6Subnet(a, b) => Identification::Ipv6Subnet(a, b),
            Identification::Ipv6Range(a, b) => Identification::Ipv6Range(a, b),
            Identification::Other(t, d) => Identification::Other(t, Cow::Owned(d.into_owned())),
        };
        IdPayload {
            protocol: self.protocol,
            port: self.port,
            id,
        }
    }
}

/// Decodes an ID payload body.
pub(super) fn parse(body: &[u8]) -> Result<IdPayload<'_>, DecodeError> {
    let (data, (id_type, protocol, port)) = fields("ID payload", body, (be_u8, be_u8, be_u16))?;
    let id_type = IdType::from(id_type);
    let id = match id_type {
        IdType::Ipv4Addr => Identification::Ipv4(v4(data)?),
        IdType::Ipv4AddrSubnet => v4_pair(data).map(|(a, b)| Identification::Ipv4Subnet(a, b))?,
        IdType::Ipv4AddrRange => v4_pair(data).map(|(a, b)| Identification::Ipv4Range(a, b))?,
        IdType::Ipv6Addr => Identification::Ipv6(v6(data)?),
        IdType::Ipv6AddrSubnet => v6_pair(data).map(|(a, b)| Identification::Ipv6Subnet(a, b))?,
        IdType::Ipv6AddrRange => v6_pair(data).map(|(a, b)| Identification::Ipv6Range(a, b))?,
        other => Identification::Other(other, Cow::Borrowed(data)),
    };
    Ok(IdPayload { protocol, port, id })
}

/// Exactly one IPv4 address.
fn v4(data: &[u8]) -> Result<Ipv4Addr, DecodeError> {
    <[u8; 4]>::try_from(data)
        .map(Ipv4Addr::from)
        .map_err(|_| DecodeError::InvalidId("IPv4 address is not 4 octets"))
}

/// Exactly two IPv4 addresses.
fn v4_pair(data: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr), DecodeError> {
    let pair = <[u8; 8]>::try_from(data)
        .map_err(|_| DecodeError::InvalidId("IPv4 subnet or range is not 8 octets"))?;
    let [a0, a1, a2, a3, b0, b1, b2, b3] = pair;
    Ok((Ipv4Addr::new(a0, a1, a2, a3), Ipv4Addr::new(b0, b1, b2, b3)))
}

/// Exactly one IPv6 address.
fn v6(data: &[u8]) -> Result<Ipv6Addr, DecodeError> {
    <[u8; 16]>::try_from(data)
        .map(Ipv6Addr::from)
        .map_err(|_| DecodeError::InvalidId("IPv6 address is not 16 octets"))
}

/// Exactly two IPv6 addresses.
fn v6_pair(data: &[u8]) -> Result<(Ipv6Addr, Ipv6Addr), DecodeError> {
    match data.split_at_checked(16) {
        Some((a, b)) if b.len() == 16 => Ok((v6(a)?, v6(b)?)),
        _ => Err(DecodeError::InvalidId(
            "IPv6 subnet or range is not 32 octets",
        )),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::{NotifyType, strategies};

    #[test]
    fn ipv4_subnet_bytes() {
        // IDci for 192.0.2.0/24, any protocol and port (RFC 2407 §4.6.2 layout).
        let bytes = [4, 0, 0, 0, 192, 0, 2, 0, 255, 255, 255, 0];
        let id = parse(&bytes).unwrap();
        assert_eq!(
            id.id,
            Identification::Ipv4Subnet(
                Ipv4Addr::new(192, 0, 2, 0),
                Ipv4Addr::new(255, 255, 255, 0)
            )
        );
        let mut out = Vec::new();
        id.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn ipv6_range_with_protocol_and_port() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::ff".parse().unwrap();
        let id = IdPayload {
            protocol: 17,
            port: 910,
            id: Identification::Ipv6Range(a, b),
        };
        let mut out = Vec::new();
        id.emit(&mut out);
        assert_eq!(&out[..4], &[8, 17, 0x03, 0x8e]);
        assert_eq!(out.len(), 36);
        assert_eq!(parse(&out).unwrap(), id);
    }

    #[test]
    fn address_lengths_are_checked() {
        assert_eq!(
            parse(&[1, 0, 0, 0, 1, 2, 3]),
            Err(DecodeError::InvalidId("IPv4 address is not 4 octets"))
        );
        assert_eq!(
            parse(&[6, 0, 0, 0, 1, 2, 3]),
            Err(DecodeError::InvalidId(
                "IPv6 subnet or range is not 32 octets"
            ))
        );
        assert_eq!(
            DecodeError::InvalidId("x").notify(),
            NotifyType::InvalidIdInformation
        );
        assert_eq!(parse(&[1, 0, 0]), Err(DecodeError::Truncated("ID payload")));
    }

    #[test]
    fn fqdn_is_raw() {
        let id = parse(&[2, 0, 0, 0, b'a', b'.', b'b']).unwrap();
        assert_eq!(
            id.id,
            Identification::Other(IdType::Fqdn, Cow::Borrowed(b"a.b"))
        );
    }

    proptest! {
        #[test]
        fn ids_round_trip(id in strategies::id_payload()) {
            let mut out = Vec::new();
            id.emit(&mut out);
            prop_assert_eq!(parse(&out).unwrap(), id);
        }
    }
}
