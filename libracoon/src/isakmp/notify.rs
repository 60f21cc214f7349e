//! Notification payload ([RFC 2408 §3.14](https://www.rfc-editor.org/rfc/rfc2408#section-3.14))
//! and the notify message types of RFC 2408 §3.14.1 and RFC 2407 §4.6.3.
//!
//! ```text
//! DOI (32) | Protocol-ID (8) | SPI Size (8) | Notify Message Type (16) | SPI | Notification Data
//! ```

use crate::open_enum;
use std::borrow::Cow;

use nom::number::complete::{be_u8, be_u16, be_u32};

use super::{DecodeError, ProtocolId, fields, len_u8, split};

open_enum! {
    /// Notify Message Type (RFC 2408 §3.14.1; 24576-24578 from RFC 2407 §4.6.3).
    pub enum NotifyType(u16) {
        /// INVALID-PAYLOAD-TYPE.
        InvalidPayloadType = 1 => "INVALID-PAYLOAD-TYPE",
        /// DOI-NOT-SUPPORTED.
        DoiNotSupported = 2 => "DOI-NOT-SUPPORTED",
        /// SITUATION-NOT-SUPPORTED.
        SituationNotSupported = 3 => "SITUATION-NOT-SUPPORTED",
        /// INVALID-COOKIE.
        InvalidCookie = 4 => "INVALID-COOKIE",
        /// INVALID-MAJOR-VERSION.
        InvalidMajorVersion = 5 => "INVALID-MAJOR-VERSION",
        /// INVALID-MINOR-VERSION.
        InvalidMinorVersion = 6 => "INVALID-MINOR-VERSION",
        /// INVALID-EXCHANGE-TYPE.
        InvalidExchangeType = 7 => "INVALID-EXCHANGE-TYPE",
        /// INVALID-FLAGS.
        InvalidFlags = 8 => "INVALID-FLAGS",
        /// INVALID-MESSAGE-ID.
        InvalidMessageId = 9 => "INVALID-MESSAGE-ID",
        /// INVALID-PROTOCOL-ID.
        InvalidProtocolId = 10 => "INVALID-PROTOCOL-ID",
        /// INVALID-SPI.
        InvalidSpi = 11 => "INVALID-SPI",
        /// INVALID-TRANSFORM-ID.
        InvalidTransformId = 12 => "INVALID-TRANSFORM-ID",
        /// ATTRIBUTES-NOT-SUPPORTED.
        AttributesNotSupported = 13 => "ATTRIBUTES-NOT-SUPPORTED",
        /// NO-PROPOSAL-CHOSEN.
        NoProposalChosen = 14 => "NO-PROPOSAL-CHOSEN",
        /// BAD-PROPOSAL-SYNTAX.
        BadProposalSyntax = 15 => "BAD-PROPOSAL-SYNTAX",
        /// PAYLOAD-MALFORMED.
        PayloadMalformed = 16 => "PAYLOAD-MALFORMED",
        /// INVALID-KEY-INFORMATION.
        InvalidKeyInformation = 17 => "INVALID-KEY-INFORMATION",
        /// INVALID-ID-INFORMATION.
        InvalidIdInformation = 18 => "INVALID-ID-INFORMATION",
        /// INVALID-CERT-ENCODING.
        InvalidCertEncoding = 19 => "INVALID-CERT-ENCODING",
        /// INVALID-CERTIFICATE.
        InvalidCertificate = 20 => "INVALID-CERTIFICATE",
        /// CERT-TYPE-UNSUPPORTED.
        CertTypeUnsupported = 21 => "CERT-TYPE-UNSUPPORTED",
        /// INVALID-CERT-AUTHORITY.
        InvalidCertAuthority = 22 => "INVALID-CERT-AUTHORITY",
        /// INVALID-HASH-INFORMATION.
        InvalidHashInformation = 23 => "INVALID-HASH-INFORMATION",
        /// AUTHENTICATION-FAILED.
        AuthenticationFailed = 24 => "AUTHENTICATION-FAILED",
        /// INVALID-SIGNATURE.
        InvalidSignature = 25 => "INVALID-SIGNATURE",
        /// ADDRESS-NOTIFICATION.
        AddressNotification = 26 => "ADDRESS-NOTIFICATION",
        /// NOTIFY-SA-LIFETIME.
        NotifySaLifetime = 27 => "NOTIFY-SA-LIFETIME",
        /// CERTIFICATE-UNAVAILABLE.
        CertificateUnavailable = 28 => "CERTIFICATE-UNAVAILABLE",
        /// UNSUPPORTED-EXCHANGE-TYPE.
        UnsupportedExchangeType = 29 => "UNSUPPORTED-EXCHANGE-TYPE",
        /// UNEQUAL-PAYLOAD-LENGTHS.
        UnequalPayloadLengths = 30 => "UNEQUAL-PAYLOAD-LENGTHS",
        /// CONNECTED (status).
        Connected = 16384 => "CONNECTED",
        /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
        ResponderLifetime = 24576 => "RESPONDER-LIFETIME",
        /// REPLAY-STATUS (RFC 2407 §4.6.3.2).
        ReplayStatus = 24577 => "REPLAY-STATUS",
        /// INITIAL-CONTACT (RFC 2407 §4.6.3.3).
        InitialContact = 24578 => "INITIAL-CONTACT",
    }
}

impl NotifyType {
    /// Whether this is an error type (1..=16383, RFC 2408 §3.14.1) rather than a status.
    #[must_use]
    pub fn is_error(self) -> bool {
        (1..16384).contains(&u16::from(self))
    }
}

/// A Notification payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload<'a> {
    /// Domain of Interpretation (1 = IPsec; phase 1 notifications may carry 0).
    pub doi: u32,
    /// Protocol the SPI belongs to.
    pub protocol: ProtocolId,
    /// SPI (may be empty).
    pub spi: Cow<'a, [u8]>,
    /// Notify Message Type.
    pub ntype: NotifyType,
    /// Notification Data.
    pub data: Cow<'a, [u8]>,
}

impl NotifyPayload<'_> {
    /// Encodes the body.
    ///
    /// # Panics
    /// If the SPI is longer than 255 octets.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol.into());
        out.push(len_u8("notify SPI", self.spi.len()));
        out.extend_from_slice(&u16::from(self.ntype).to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> NotifyPayload<'static> {
        NotifyPayload {
            doi: self.doi,
            protocol: self.protocol,
            spi: Cow::Owned(self.spi.into_owned()),
            ntype: self.ntype,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

/// Decodes a Notification payload body.
pub(super) fn parse(body: &[u8]) -> Result<NotifyPayload<'_>, DecodeError> {
    let parser = (be_u32, be_u8, be_u8, be_u16);
    let (rest, (doi, protocol, spi_size, ntype)) = fields("Notification payload", body, parser)?;
    let (spi, data) = split("Notification SPI", rest, usize::from(spi_size))?;
    Ok(NotifyPayload {
        doi,
        protocol: protocol.into(),
        spi: Cow::Borrowed(spi),
        ntype: ntype.into(),
        data: Cow::Borrowed(data),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::strategies;

    #[test]
    fn responder_lifetime_bytes() {
        // RESPONDER-LIFETIME for ESP SPI 0x01020304 with a 3600-second lifetime attribute.
        let bytes = [
            0, 0, 0, 1, 3, 4, 0x60, 0x00, 1, 2, 3, 4, 0x80, 1, 0, 1, 0x80, 2, 0x0e, 0x10,
        ];
        let n = parse(&bytes).unwrap();
        assert_eq!(n.ntype, NotifyType::ResponderLifetime);
        assert!(!n.ntype.is_error());
        assert_eq!(&*n.spi, &[1, 2, 3, 4]);
        assert_eq!(n.data.len(), 8);
        let mut out = Vec::new();
        n.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn spi_beyond_body_is_truncated() {
        assert_eq!(
            parse(&[0, 0, 0, 1, 3, 4, 0, 14, 1, 2]),
            Err(DecodeError::Truncated("Notification SPI"))
        );
        assert_eq!(
            parse(&[0, 0, 0, 1, 3, 4, 0]),
            Err(DecodeError::Truncated("Notification payload"))
        );
    }

    #[test]
    fn error_range() {
        assert!(NotifyType::NoProposalChosen.is_error());
        assert!(!NotifyType::InitialContact.is_error());
        assert_eq!(NotifyType::from(14).to_string(), "NO-PROPOSAL-CHOSEN");
    }

    proptest! {
        #[test]
        fn notifications_round_trip(n in strategies::notify()) {
            let mut out = Vec::new();
            n.emit(&mut out);
            prop_assert_eq!(parse(&out).unwrap(), n);
        }
    }
}
