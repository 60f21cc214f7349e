//! The KINK header ([RFC 4430 §4](https://www.rfc-editor.org/rfc/rfc4430#section-4)).
//!
//! ```text
//!  0               1               2               3
//! +---------------+-------+-------+---------------+---------------+
//! |     Type      | MjVer |RESRVED|            Length             |
//! +---------------+-------+-------+---------------+---------------+
//! |                 Domain of Interpretation (DOI)                |
//! +---------------------------------------------------------------+
//! |                      Transaction ID (XID)                     |
//! +---------------+-+-------------+-------------------------------+
//! |  NextPayload  |A|  RESERVED2  |           CksumLen            |
//! +---------------+-+-------------+-------------------------------+
//! ```

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u16, be_u32};

use super::{DecodeError, PayloadType, fields};

/// Octets in the KINK header.
pub const HEADER_LEN: usize = 16;
/// The only major version (RFC 4430 §4: MjVer "MUST be 1").
pub const KINK_MAJOR_VERSION: u8 = 1;
/// The ACKREQ bit in the flags octet: a REPLY asking for an ACK.
pub const ACKREQ: u8 = 0x80;

open_enum! {
    /// KINK Message Types (IANA "KINK Parameters", RFC 4430 §4).
    pub enum MessageType(u8) {
        /// RESERVED.
        Reserved = 0 => "RESERVED",
        /// CREATE: establish SAs.
        Create = 1 => "CREATE",
        /// DELETE: remove SAs.
        Delete = 2 => "DELETE",
        /// REPLY: the answer to any command.
        Reply = 3 => "REPLY",
        /// GETTGT: ask the responder for its TGT (user-to-user).
        GetTgt = 4 => "GETTGT",
        /// ACK: third message of a CREATE whose REPLY set ACKREQ.
        Ack = 5 => "ACK",
        /// STATUS: authenticated keepalive / notification.
        Status = 6 => "STATUS",
    }
}

/// The KINK header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MessageType,
    /// Major version; 1 after [`Header::parse`].
    pub major: u8,
    /// The low nibble of the version octet (RESERVED in RFC 4430; racoon2 calls it the minor
    /// version, sends 0 and rejects anything else). Ignored on receipt.
    pub minor: u8,
    /// Length of the whole message including the Cksum.
    pub length: u16,
    /// Domain of Interpretation.
    pub doi: u32,
    /// Transaction ID.
    pub xid: u32,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// The flags octet: [`ACKREQ`] and RESERVED2 bits (unknown bits are ignored on receipt).
    pub flags: u8,
    /// Length of the Cksum at the end of the message; 0 when unauthenticated.
    pub cksum_len: u16,
}

impl Header {
    /// Decodes the header at the start of `bytes`, checking only what the header alone can:
    /// version and the Length/CksumLen bounds against `bytes`.
    ///
    /// # Errors
    /// `Truncated` below 16 octets; `BadMajorVersion` unless MjVer is 1 (KINK_INVMAJ);
    /// `BadLength("KINK Length")` when Length is below 16 or beyond `bytes`;
    /// `BadLength("CksumLen")` when the Cksum does not fit after the header.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let parser = (be_u8, be_u8, be_u16, be_u32, be_u32, be_u8, be_u8, be_u16);
        let (_, (msg_type, version, length, doi, xid, next, flags, cksum_len)) =
            fields("KINK header", bytes, parser)?;
        let major = version >> 4;
        if major != KINK_MAJOR_VERSION {
            return Err(DecodeError::BadMajorVersion(major));
        }
        let len = usize::from(length);
        if len < HEADER_LEN || len > bytes.len() {
            return Err(DecodeError::BadLength("KINK Length", len));
        }
        if usize::from(cksum_len) > len - HEADER_LEN {
            return Err(DecodeError::BadLength("CksumLen", cksum_len.into()));
        }
        Ok(Self {
            msg_type: msg_type.into(),
            major,
            minor: version & 0x0f,
            length,
            doi,
            xid,
            next_payload: next.into(),
            flags,
            cksum_len,
        })
    }

    /// Appends the 16 octets exactly as the fields say (the message writer sets `length`,
    /// `next_payload` and `cksum_len`).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.msg_type.into());
        out.push((self.major << 4) | (self.minor & 0x0f));
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.push(self.next_payload.into());
        out.push(self.flags);
        out.extend_from_slice(&self.cksum_len.to_be_bytes());
    }

    /// Whether the responder asks for an ACK (only meaningful on a REPLY).
    #[must_use]
    pub fn ack_request(&self) -> bool {
        self.flags & ACKREQ != 0
    }
}

/// Offset of the Length field in the header.
pub(super) const LENGTH_AT: usize = 2;
/// Offset of the NextPayload octet in the header.
pub(super) const NEXT_PAYLOAD_AT: usize = 12;
/// Offset of the CksumLen field in the header.
pub(super) const CKSUM_LEN_AT: usize = 14;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A CREATE header laid out from RFC 4430 §4: version 1.0, 100 octets, IPsec DOI, XID
    /// 0x01020304, first payload KINK_AP_REQ, no flags, 12-octet Cksum.
    const CREATE: [u8; 16] = [1, 0x10, 0, 100, 0, 0, 0, 1, 1, 2, 3, 4, 1, 0, 0, 12];

    fn padded(header: &[u8], len: usize) -> Vec<u8> {
        let mut v = header.to_vec();
        v.resize(len, 0);
        v
    }

    #[test]
    fn parses_and_reemits_create_header() {
        let bytes = padded(&CREATE, 100);
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(h.msg_type, MessageType::Create);
        assert_eq!((h.major, h.minor), (1, 0));
        assert_eq!(h.length, 100);
        assert_eq!(h.doi, 1);
        assert_eq!(h.xid, 0x0102_0304);
        assert_eq!(h.next_payload, PayloadType::ApReq);
        assert!(!h.ack_request());
        assert_eq!(h.cksum_len, 12);
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out, CREATE);
    }

    #[test]
    fn ackreq_is_the_top_bit() {
        let mut bytes = padded(&CREATE, 100);
        bytes[13] = 0x80;
        assert!(Header::parse(&bytes).unwrap().ack_request());
        bytes[13] = 0x7f;
        assert!(!Header::parse(&bytes).unwrap().ack_request());
    }

    #[test]
    fn errors_name_the_field() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Header::parse(&CREATE[..n]),
                Err(DecodeError::Truncated("KINK header"))
            );
        }
        let mut bytes = padded(&CREATE, 100);
        bytes[1] = 0x20;
        assert_eq!(Header::parse(&bytes), Err(DecodeError::BadMajorVersion(2)));
        let bytes = padded(&CREATE, 99);
        assert_eq!(
            Header::parse(&bytes),
            Err(DecodeError::BadLength("KINK Length", 100))
        );
        let mut bytes = padded(&CREATE, 100);
        bytes[3] = 15;
        assert_eq!(
            Header::parse(&bytes),
            Err(DecodeError::BadLength("KINK Length", 15))
        );
        let mut bytes = padded(&CREATE, 100);
        bytes[15] = 85;
        assert_eq!(
            Header::parse(&bytes),
            Err(DecodeError::BadLength("CksumLen", 85))
        );
        bytes[15] = 84;
        assert!(Header::parse(&bytes).is_ok());
    }

    #[test]
    fn minor_nibble_is_ignored() {
        let mut bytes = padded(&CREATE, 100);
        bytes[1] = 0x13;
        assert_eq!(Header::parse(&bytes).unwrap().minor, 3);
    }

    #[test]
    fn message_type_names() {
        let names: Vec<_> = (0..=6).map(|t| MessageType::from(t).to_string()).collect();
        assert_eq!(
            names.join(" "),
            "RESERVED CREATE DELETE REPLY GETTGT ACK STATUS"
        );
        assert_eq!(MessageType::from(200), MessageType::Unknown(200));
    }

    proptest! {
        #[test]
        fn header_round_trips(
            t in any::<u8>(), minor in 0u8..16, doi in any::<u32>(), xid in any::<u32>(),
            next in any::<u8>(), flags in any::<u8>(), extra in 0u16..100, cksum in 0u16..100,
        ) {
            let length = HEADER_LEN as u16 + extra.max(cksum);
            let h = Header {
                msg_type: t.into(), major: 1, minor, length, doi, xid,
                next_payload: next.into(), flags, cksum_len: cksum,
            };
            let mut out = Vec::new();
            h.emit(&mut out);
            out.resize(usize::from(length), 0);
            prop_assert_eq!(Header::parse(&out), Ok(h));
        }
    }
}
