//! Fixed headers: the ISAKMP header ([RFC 2408 §3.1]) and the generic payload header
//! ([RFC 2408 §3.2]), as views over borrowed bytes.
//!
//! KINK carries no ISAKMP header (RFC 4430 §4.2.6: the KINK_ISAKMP payload holds the payload
//! chain only); IKEv1 needs it, so it lives here.
//!
//! [RFC 2408 §3.1]: https://www.rfc-editor.org/rfc/rfc2408#section-3.1
//! [RFC 2408 §3.2]: https://www.rfc-editor.org/rfc/rfc2408#section-3.2

use crate::open_enum;
use nom::number::complete::{be_u8, be_u16, be_u32, be_u64};

use super::{DecodeError, PayloadType, fields};

/// Octets in the ISAKMP header.
pub const ISAKMP_HEADER_LEN: usize = 28;

open_enum! {
    /// Exchange Type (RFC 2408 §3.1, RFC 2409 §9 for Quick Mode).
    pub enum ExchangeType(u8) {
        /// No exchange (RFC 2408).
        None = 0 => "NONE",
        /// Base exchange.
        Base = 1 => "BASE",
        /// Identity Protection: IKEv1 Main Mode.
        IdentityProtection = 2 => "IDENTITY_PROTECTION",
        /// Authentication Only.
        AuthenticationOnly = 3 => "AUTHENTICATION_ONLY",
        /// Aggressive Mode.
        Aggressive = 4 => "AGGRESSIVE",
        /// Informational.
        Informational = 5 => "INFORMATIONAL",
        /// IKEv1 Quick Mode (RFC 2409 §9).
        QuickMode = 32 => "QUICK_MODE",
        /// IKEv1 New Group Mode (RFC 2409 §9).
        NewGroupMode = 33 => "NEW_GROUP_MODE",
    }
}

/// The ISAKMP header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsakmpHeader {
    /// Initiator cookie.
    pub initiator_cookie: u64,
    /// Responder cookie; zero in the first message.
    pub responder_cookie: u64,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major version: 1 after a successful parse.
    pub major: u8,
    /// Minor version (4 bits).
    pub minor: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags octet: Encryption 0x01, Commit 0x02, Authentication Only 0x04.
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl IsakmpHeader {
    /// Encryption flag: the payloads after the header are encrypted.
    pub const FLAG_ENCRYPTION: u8 = 0x01;
    /// Commit flag.
    pub const FLAG_COMMIT: u8 = 0x02;
    /// Authentication Only flag.
    pub const FLAG_AUTH_ONLY: u8 = 0x04;

    /// Decodes the 28-octet header at the start of `bytes`.
    ///
    /// # Errors
    /// `Truncated` for fewer than 28 octets; `BadVersion` unless the major version is 1;
    /// `BadLength` when Length is below 28 or beyond `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let parser = (be_u64, be_u64, be_u8, be_u8, be_u8, be_u8, be_u32, be_u32);
        let (_, (ci, cr, next, version, exchange, flags, message_id, length)) =
            fields("ISAKMP header", bytes, parser)?;
        let major = version >> 4;
        if major != 1 {
            return Err(DecodeError::BadVersion(major));
        }
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if len < ISAKMP_HEADER_LEN || len > bytes.len() {
            return Err(DecodeError::BadLength("ISAKMP header length", len));
        }
        Ok(Self {
            initiator_cookie: ci,
            responder_cookie: cr,
            next_payload: next.into(),
            major,
            minor: version & 0x0f,
            exchange: exchange.into(),
            flags,
            message_id,
            length,
        })
    }

    /// Appends the header exactly as the fields say.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.initiator_cookie.to_be_bytes());
        out.extend_from_slice(&self.responder_cookie.to_be_bytes());
        out.push(self.next_payload.into());
        out.push((self.major << 4) | (self.minor & 0x0f));
        out.push(self.exchange.into());
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// A view of the 4-octet generic payload header (RFC 2408 §3.2) at the start of a buffer.
///
/// ```text
///  Next Payload (8) | RESERVED (8) | Payload Length (16, header included)
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GenericHeader<T: AsRef<[u8]>> {
    /// The buffer; at least [`GenericHeader::LEN`] octets.
    buffer: T,
}

impl<T: AsRef<[u8]>> GenericHeader<T> {
    /// Octets in the generic payload header.
    pub const LEN: usize = 4;

    /// Wraps `buffer` after checking it holds a whole header.
    ///
    /// # Errors
    /// `Truncated` if `buffer` is shorter than four octets.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        if buffer.as_ref().len() < Self::LEN {
            return Err(DecodeError::Truncated("generic payload header"));
        }
        Ok(Self { buffer })
    }

    /// The Next Payload field.
    #[must_use]
    pub fn next_payload(&self) -> u8 {
        self.octets()[0]
    }

    /// The RESERVED octet (ignored on receipt).
    #[must_use]
    pub fn reserved(&self) -> u8 {
        self.octets()[1]
    }

    /// The Payload Length field (header included).
    #[must_use]
    pub fn payload_length(&self) -> u16 {
        let [_, _, hi, lo] = self.octets();
        u16::from_be_bytes([hi, lo])
    }

    /// The first four octets; `new_checked` guarantees they exist.
    fn octets(&self) -> [u8; 4] {
        match self.buffer.as_ref() {
            [a, b, c, d, ..] => [*a, *b, *c, *d],
            _ => [0; 4],
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericHeader<T> {
    /// Sets the Next Payload field.
    pub fn set_next_payload(&mut self, value: u8) {
        if let Some(slot) = self.buffer.as_mut().first_mut() {
            *slot = value;
        }
    }

    /// Sets the Payload Length field.
    pub fn set_payload_length(&mut self, value: u16) {
        if let Some(slot) = self.buffer.as_mut().get_mut(2..4) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// Reads the generic header fields `(next, length)` off the front of `input` (chain walker's
/// helper; the view above is the public face).
pub(super) fn generic(input: &[u8]) -> Result<(u8, u16), DecodeError> {
    let (_, (next, _reserved, len)) =
        fields("generic payload header", input, (be_u8, be_u8, be_u16))?;
    Ok((next, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IKEv1 Quick Mode header laid out by hand from RFC 2408 §3.1.
    const QM_HEADER: [u8; 28] = [
        1, 2, 3, 4, 5, 6, 7, 8, // initiator cookie
        9, 10, 11, 12, 13, 14, 15, 16,   // responder cookie
        8,    // next payload: HASH
        0x10, // version 1.0
        32,   // Quick Mode
        0x01, // encrypted
        0xde, 0xad, 0xbe, 0xef, // message ID
        0, 0, 0, 28, // length
    ];

    #[test]
    fn parses_hand_built_quick_mode_header() {
        let h = IsakmpHeader::parse(&QM_HEADER).unwrap();
        assert_eq!(h.initiator_cookie, 0x0102_0304_0506_0708);
        assert_eq!(h.responder_cookie, 0x090a_0b0c_0d0e_0f10);
        assert_eq!(h.next_payload, PayloadType::Hash);
        assert_eq!((h.major, h.minor), (1, 0));
        assert_eq!(h.exchange, ExchangeType::QuickMode);
        assert_eq!(h.flags, IsakmpHeader::FLAG_ENCRYPTION);
        assert_eq!(h.message_id, 0xdead_beef);
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out, QM_HEADER);
    }

    #[test]
    fn header_errors_name_the_problem() {
        for n in 0..ISAKMP_HEADER_LEN {
            assert_eq!(
                IsakmpHeader::parse(&QM_HEADER[..n]),
                Err(DecodeError::Truncated("ISAKMP header"))
            );
        }
        let mut bytes = QM_HEADER;
        bytes[17] = 0x20;
        assert_eq!(IsakmpHeader::parse(&bytes), Err(DecodeError::BadVersion(2)));
        assert_eq!(
            DecodeError::BadVersion(2).notify(),
            super::super::NotifyType::InvalidMajorVersion
        );
        let mut bytes = QM_HEADER;
        bytes[27] = 29;
        assert_eq!(
            IsakmpHeader::parse(&bytes),
            Err(DecodeError::BadLength("ISAKMP header length", 29))
        );
    }

    #[test]
    fn generic_header_view_reads_and_writes_fields() {
        let mut buf = [0u8; 6];
        assert!(GenericHeader::new_checked(&buf[..3]).is_err());
        let mut h = GenericHeader::new_checked(&mut buf[..]).unwrap();
        h.set_next_payload(10);
        h.set_payload_length(0x0106);
        assert_eq!(h.next_payload(), 10);
        assert_eq!(h.payload_length(), 0x0106);
        assert_eq!(h.reserved(), 0);
        assert_eq!(buf, [10, 0, 1, 6, 0, 0]);
    }
}
