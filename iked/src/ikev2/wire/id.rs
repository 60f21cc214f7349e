//! Identification payloads IDi / IDr
//! ([RFC 7296 §3.5](https://www.rfc-editor.org/rfc/rfc7296#section-3.5)).

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u24};

use super::{DecodeError, fields};

open_enum! {
    /// ID Type (RFC 7296 §3.5).
    pub enum IdType(u8) {
        /// A single four-octet IPv4 address.
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        /// A fully-qualified domain name, no terminator.
        Fqdn = 2 => "ID_FQDN",
        /// An RFC 822 email address, no terminator.
        Rfc822Addr = 3 => "ID_RFC822_ADDR",
        /// A single sixteen-octet IPv6 address.
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        /// DER encoding of an ASN.1 X.500 Distinguished Name.
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        /// DER encoding of an ASN.1 X.509 GeneralName.
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        /// An opaque octet stream.
        KeyId = 11 => "ID_KEY_ID",
    }
}

/// IDi or IDr body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// ID Type.
    pub id_type: IdType,
    /// Identification Data; 4 octets for `Ipv4Addr`, 16 for `Ipv6Addr` (checked on parse).
    pub data: Vec<u8>,
}

impl IdPayload {
    /// The payload body after the generic header: ID Type, 3 RESERVED octets, data.
    ///
    /// This is what the AUTH payload signs ("IDi'"/"IDr'", RFC 7296 §2.15). The RESERVED octets
    /// of a received ID are ignored on parse and come back as zeros here; RFC 7296 §3.5 requires
    /// senders to zero them, so a peer that did not is signing something we cannot reproduce.
    #[must_use]
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.data.len());
        emit(self, &mut out);
        out
    }
}

/// Decodes an ID body, checking the address length for the IP address types.
pub(super) fn parse(body: &[u8]) -> Result<IdPayload, DecodeError> {
    let (data, (id_type, _reserved)) = fields("ID payload", body, (be_u8, be_u24))?;
    let id_type = IdType::from(id_type);
    let want = match id_type {
        IdType::Ipv4Addr => Some(4),
        IdType::Ipv6Addr => Some(16),
        _ => None,
    };
    if want.is_some_and(|n| n != data.len()) {
        return Err(DecodeError::BadLength("ID address", data.len()));
    }
    Ok(IdPayload {
        id_type,
        data: data.to_vec(),
    })
}

/// Encodes an ID body.
pub(super) fn emit(id: &IdPayload, out: &mut Vec<u8>) {
    out.extend_from_slice(&[id.id_type.into(), 0, 0, 0]);
    out.extend_from_slice(&id.data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::captures;

    #[test]
    fn parses_fqdn_from_strongswan_idi() {
        // IDi body of the decrypted IKE_AUTH request (02_ike_auth_req.inner.bin, octets 4..21).
        let inner = captures::PSK_AUTH_REQ_INNER;
        let id = parse(&inner[4..21]).unwrap();
        assert_eq!(id.id_type, IdType::Fqdn);
        assert_eq!(id.data, b"a.lab.example");
        assert_eq!(id.body_bytes(), inner[4..21]);
    }

    #[test]
    fn address_types_need_address_lengths() {
        assert!(parse(&[1, 0, 0, 0, 192, 0, 2, 1]).is_ok());
        assert_eq!(
            parse(&[1, 0, 0, 0, 192, 0, 2]),
            Err(DecodeError::BadLength("ID address", 3))
        );
        assert_eq!(
            parse(&[5, 0, 0, 0, 1, 2, 3, 4]),
            Err(DecodeError::BadLength("ID address", 4))
        );
    }

    #[test]
    fn short_body_is_truncated() {
        assert_eq!(parse(&[2, 0, 0]), Err(DecodeError::Truncated("ID payload")));
    }

    #[test]
    fn display_is_rfc_spelling() {
        assert_eq!(IdType::DerAsn1Dn.to_string(), "ID_DER_ASN1_DN");
        assert_eq!(IdType::from(4), IdType::Unknown(4));
    }
}
