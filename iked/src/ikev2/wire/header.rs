//! The fixed IKE header ([RFC 7296 §3.1](https://www.rfc-editor.org/rfc/rfc7296#section-3.1)).

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u32, be_u64};

use super::{DecodeError, PayloadType, fields};

/// Octets in the IKE header; the payload chain starts here.
pub const HEADER_LEN: usize = 28;

open_enum! {
    /// Exchange Type (RFC 7296 §3.1): which exchange a message belongs to.
    pub enum ExchangeType(u8) {
        /// Negotiates the IKE SA's algorithms, exchanges nonces and KE values.
        IkeSaInit = 34 => "IKE_SA_INIT",
        /// Authenticates the peers and creates the first Child SA.
        IkeAuth = 35 => "IKE_AUTH",
        /// Creates or rekeys a Child SA, or rekeys the IKE SA.
        CreateChildSa = 36 => "CREATE_CHILD_SA",
        /// Deletes SAs, reports errors, checks liveness.
        Informational = 37 => "INFORMATIONAL",
    }
}

/// The header's Flags octet: Initiator, Version and Response bits (RFC 7296 §3.1).
///
/// Kept as the raw octet so reserved bits survive a parse/emit round trip; RESERVED bits are
/// ignored on receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I: set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// V: the sender can speak a higher major version; never set by IKEv2 implementations.
    pub const VERSION: u8 = 0x10;
    /// R: this message is a response to the message with the same Message ID.
    pub const RESPONSE: u8 = 0x20;

    /// Flags for a message from the original initiator (`initiator`) that is or is not a
    /// `response`.
    #[must_use]
    pub const fn new(initiator: bool, response: bool) -> Self {
        let i = if initiator { Self::INITIATOR } else { 0 };
        let r = if response { Self::RESPONSE } else { 0 };
        Self(i | r)
    }

    /// Whether the sender is the original initiator of the IKE SA.
    #[must_use]
    pub const fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }

    /// Whether this message is a response.
    #[must_use]
    pub const fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }

    /// Whether the Version bit is set (the peer speaks a higher major version).
    #[must_use]
    pub const fn version(self) -> bool {
        self.0 & Self::VERSION != 0
    }
}

/// The IKE header, decoded.
///
/// The endpoint reads only this before an SA is known; everything else waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub spi_i: u64,
    /// IKE SA Responder's SPI; zero in the first IKE_SA_INIT request.
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major version: always 2 after a successful parse.
    pub major: u8,
    /// Minor version (4 bits): sent as 0, ignored on receipt.
    pub minor: u8,
    /// Which exchange this message belongs to.
    pub exchange: ExchangeType,
    /// Initiator / Version / Response flags.
    pub flags: Flags,
    /// Message ID: matches requests to responses, guards against replay (RFC 7296 §2.2).
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Decodes the 28-octet header at the start of `bytes`; reads nothing beyond it.
    ///
    /// # Errors
    /// `Truncated` if `bytes` is shorter than [`HEADER_LEN`]; `BadVersion` unless the major
    /// version is 2 ("implementations ... MUST reject or ignore messages containing a version
    /// number greater than 2", RFC 7296 §3.1); `BadLength` if the Length field is below
    /// [`HEADER_LEN`] or beyond `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let parser = (be_u64, be_u64, be_u8, be_u8, be_u8, be_u8, be_u32, be_u32);
        let (_, (spi_i, spi_r, next, version, exchange, flags, message_id, length)) =
            fields("IKE header", bytes, parser)?;
        let major = version >> 4;
        if major != 2 {
            return Err(DecodeError::BadVersion(major));
        }
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if len < HEADER_LEN || len > bytes.len() {
            return Err(DecodeError::BadLength("IKE header length", len));
        }
        Ok(Self {
            spi_i,
            spi_r,
            next_payload: next.into(),
            major,
            minor: version & 0x0f,
            exchange: exchange.into(),
            flags: Flags(flags),
            message_id,
            length,
        })
    }

    /// Appends the 28-octet header exactly as the fields say (the message writer sets
    /// `next_payload` and `length`).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload.into());
        out.push((self.major << 4) | (self.minor & 0x0f));
        out.push(self.exchange.into());
        out.push(self.flags.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ikev2::wire::{captures, strategies};

    /// strongSwan 5.9.8 IKE_SA_INIT request and IKE_AUTH response (testdata/README.md).
    const INIT_REQ: &[u8] = captures::PSK_INIT_REQ;
    const AUTH_RESP: &[u8] = captures::PSK_AUTH_RESP;

    #[test]
    fn parses_captured_initiator_request_header() {
        let h = Header::parse(INIT_REQ).unwrap();
        assert_eq!(h.spi_i, 0x60b8_2e9a_b87c_2915);
        assert_eq!(h.spi_r, 0);
        assert_eq!(h.next_payload, PayloadType::Sa);
        assert_eq!((h.major, h.minor), (2, 0));
        assert_eq!(h.exchange, ExchangeType::IkeSaInit);
        assert!(h.flags.initiator() && !h.flags.response() && !h.flags.version());
        assert_eq!(h.message_id, 0);
        assert_eq!(h.length as usize, INIT_REQ.len());
    }

    #[test]
    fn parses_captured_responder_response_header() {
        let h = Header::parse(AUTH_RESP).unwrap();
        assert_eq!(h.spi_r, 0xe823_1b50_cb2c_e35c);
        assert_eq!(h.next_payload, PayloadType::Sk);
        assert_eq!(h.exchange, ExchangeType::IkeAuth);
        assert_eq!(h.flags, Flags::new(false, true));
        assert_eq!(h.message_id, 1);
    }

    #[test]
    fn emit_reproduces_captured_header() {
        for bytes in [INIT_REQ, AUTH_RESP] {
            let mut out = Vec::new();
            Header::parse(bytes).unwrap().emit(&mut out);
            assert_eq!(out, bytes[..HEADER_LEN]);
        }
    }

    #[test]
    fn header_reads_only_its_own_octets() {
        // Length may be shorter than the buffer: the message layer checks equality.
        let mut bytes = INIT_REQ.to_vec();
        bytes.extend_from_slice(&[0xde, 0xad]);
        assert!(Header::parse(&bytes).is_ok());
    }

    #[test]
    fn short_input_is_truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Header::parse(&INIT_REQ[..n]),
                Err(DecodeError::Truncated("IKE header"))
            );
        }
    }

    #[test]
    fn major_version_other_than_two_is_rejected() {
        let mut bytes = INIT_REQ.to_vec();
        bytes[17] = 0x10;
        assert_eq!(Header::parse(&bytes), Err(DecodeError::BadVersion(1)));
        bytes[17] = 0x30;
        assert_eq!(Header::parse(&bytes), Err(DecodeError::BadVersion(3)));
    }

    #[test]
    fn length_field_outside_header_and_buffer_is_rejected() {
        let mut bytes = INIT_REQ.to_vec();
        bytes[24..28].copy_from_slice(&27u32.to_be_bytes());
        assert_eq!(
            Header::parse(&bytes),
            Err(DecodeError::BadLength("IKE header length", 27))
        );
        let too_long = INIT_REQ.len() + 1;
        bytes[24..28].copy_from_slice(&(too_long as u32).to_be_bytes());
        assert_eq!(
            Header::parse(&bytes),
            Err(DecodeError::BadLength("IKE header length", too_long))
        );
    }

    #[test]
    fn minimal_header_only_message_parses() {
        let h = Header {
            length: HEADER_LEN as u32,
            ..Header::parse(INIT_REQ).unwrap()
        };
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(Header::parse(&out), Ok(h));
    }

    #[test]
    fn flags_constructor_sets_bits() {
        assert_eq!(Flags::new(true, false).0, 0x08);
        assert_eq!(Flags::new(false, true).0, 0x20);
        assert_eq!(Flags::new(true, true).0, 0x28);
        assert_eq!(Flags::default().0, 0);
    }

    #[test]
    fn exchange_type_display_is_rfc_spelling() {
        assert_eq!(ExchangeType::IkeSaInit.to_string(), "IKE_SA_INIT");
        assert_eq!(ExchangeType::from(37).to_string(), "INFORMATIONAL");
        assert_eq!(ExchangeType::from(99), ExchangeType::Unknown(99));
        assert_eq!(ExchangeType::Unknown(99).to_string(), "99");
        assert_eq!(u8::from(ExchangeType::CreateChildSa), 36);
    }

    proptest! {
        #[test]
        fn header_round_trips(h in strategies::header()) {
            let mut out = Vec::new();
            h.emit(&mut out);
            out.resize(h.length as usize, 0);
            prop_assert_eq!(Header::parse(&out), Ok(h));
        }
    }
}
