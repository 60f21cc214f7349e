//! Notify payload ([RFC 7296 §3.10](https://www.rfc-editor.org/rfc/rfc7296#section-3.10)).

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u16};

use super::{DecodeError, ProtocolId, fields, len_u8, split};

open_enum! {
    /// Notify Message Type (RFC 7296 §3.10.1 and the IANA registry). Values below 16384 are
    /// errors, the rest status types; `Display` prints the RFC name.
    pub enum NotifyType(u16) {
        /// A critical payload was not understood.
        UnsupportedCriticalPayload = 1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        /// A message arrived for an IKE SA we do not know.
        InvalidIkeSpi = 4 => "INVALID_IKE_SPI",
        /// The major version is not supported.
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        /// The message was malformed.
        InvalidSyntax = 7 => "INVALID_SYNTAX",
        /// The Message ID was outside the window.
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        /// A message arrived for a Child SA we do not know.
        InvalidSpi = 11 => "INVALID_SPI",
        /// None of the proposals is acceptable.
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        /// The KE group is not the one selected; data names the accepted group.
        InvalidKePayload = 17 => "INVALID_KE_PAYLOAD",
        /// Authentication failed.
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        /// Only a single pair of traffic selectors is acceptable.
        SinglePairRequired = 34 => "SINGLE_PAIR_REQUIRED",
        /// No more Child SAs are accepted on this IKE SA.
        NoAdditionalSas = 35 => "NO_ADDITIONAL_SAS",
        /// No internal address could be assigned.
        InternalAddressFailure = 36 => "INTERNAL_ADDRESS_FAILURE",
        /// A CP payload was required but missing.
        FailedCpRequired = 37 => "FAILED_CP_REQUIRED",
        /// The traffic selectors are unacceptable.
        TsUnacceptable = 38 => "TS_UNACCEPTABLE",
        /// A packet's selectors did not match its SA.
        InvalidSelectors = 39 => "INVALID_SELECTORS",
        /// Try again later (simultaneous rekey, RFC 7296 §2.25).
        TemporaryFailure = 43 => "TEMPORARY_FAILURE",
        /// The Child SA to rekey does not exist.
        ChildSaNotFound = 44 => "CHILD_SA_NOT_FOUND",
        /// The sender has no other IKE SA with the peer.
        InitialContact = 16384 => "INITIAL_CONTACT",
        /// The sender's request window size.
        SetWindowSize = 16385 => "SET_WINDOW_SIZE",
        /// Further traffic selectors would have been acceptable.
        AdditionalTsPossible = 16386 => "ADDITIONAL_TS_POSSIBLE",
        /// IPComp is supported (CPI and transform in the data).
        IpcompSupported = 16387 => "IPCOMP_SUPPORTED",
        /// NAT detection hash of the sender's address and port.
        NatDetectionSourceIp = 16388 => "NAT_DETECTION_SOURCE_IP",
        /// NAT detection hash of the recipient's address and port.
        NatDetectionDestinationIp = 16389 => "NAT_DETECTION_DESTINATION_IP",
        /// Stateless cookie (RFC 7296 §2.6).
        Cookie = 16390 => "COOKIE",
        /// Transport mode is requested / accepted.
        UseTransportMode = 16391 => "USE_TRANSPORT_MODE",
        /// Certificates may be fetched by URL.
        HttpCertLookupSupported = 16392 => "HTTP_CERT_LOOKUP_SUPPORTED",
        /// This CREATE_CHILD_SA rekeys the Child SA named by the SPI.
        RekeySa = 16393 => "REKEY_SA",
        /// TFC padding is not supported.
        EspTfcPaddingNotSupported = 16394 => "ESP_TFC_PADDING_NOT_SUPPORTED",
        /// Non-first fragments are also sent on this SA.
        NonFirstFragmentsAlso = 16395 => "NON_FIRST_FRAGMENTS_ALSO",
        /// MOBIKE is supported (RFC 4555).
        MobikeSupported = 16396 => "MOBIKE_SUPPORTED",
        /// An additional IPv4 address of the sender (RFC 4555).
        AdditionalIp4Address = 16397 => "ADDITIONAL_IP4_ADDRESS",
        /// An additional IPv6 address of the sender (RFC 4555).
        AdditionalIp6Address = 16398 => "ADDITIONAL_IP6_ADDRESS",
        /// The sender has no additional addresses (RFC 4555).
        NoAdditionalAddresses = 16399 => "NO_ADDITIONAL_ADDRESSES",
        /// Move the SAs to this message's addresses (RFC 4555).
        UpdateSaAddresses = 16400 => "UPDATE_SA_ADDRESSES",
        /// Return routability check (RFC 4555).
        Cookie2 = 16401 => "COOKIE2",
        /// NAT traversal is not allowed (RFC 4555).
        NoNatsAllowed = 16402 => "NO_NATS_ALLOWED",
        /// Multiple authentication rounds are supported (RFC 4739).
        MultipleAuthSupported = 16404 => "MULTIPLE_AUTH_SUPPORTED",
        /// Redirection is supported (RFC 5685).
        RedirectSupported = 16406 => "REDIRECT_SUPPORTED",
        /// EAP-only authentication is supported (RFC 5998).
        EapOnlyAuthentication = 16417 => "EAP_ONLY_AUTHENTICATION",
        /// IKE SA without Child SA is supported (RFC 6023).
        ChildlessIkev2Supported = 16418 => "CHILDLESS_IKEV2_SUPPORTED",
        /// Message ID synchronisation is supported (RFC 6311).
        Ikev2MessageIdSyncSupported = 16420 => "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
        /// IKE fragmentation is supported (RFC 7383).
        IkeFragmentationSupported = 16430 => "IKEV2_FRAGMENTATION_SUPPORTED",
        /// Hash algorithms accepted for RFC 7427 signatures.
        SignatureHashAlgorithms = 16431 => "SIGNATURE_HASH_ALGORITHMS",
    }
}

impl NotifyType {
    /// Whether this is an error type (below 16384, RFC 7296 §3.10.1): an unrecognised error in
    /// a response means the request failed, an unrecognised status is ignored.
    #[must_use]
    pub fn is_error(self) -> bool {
        u16::from(self) < 16384
    }

    /// charon's short name (`NATD_S_IP`, `NO_PROP`, ..) for message summaries, if it has one
    /// in this registry.
    #[must_use]
    pub fn short_name(self) -> Option<&'static str> {
        Some(match self {
            Self::UnsupportedCriticalPayload => "CRIT",
            Self::InvalidIkeSpi => "INVAL_IKE_SPI",
            Self::InvalidMajorVersion => "INVAL_MAJOR",
            Self::InvalidSyntax => "INVAL_SYN",
            Self::InvalidMessageId => "INVAL_MID",
            Self::InvalidSpi => "INVAL_SPI",
            Self::NoProposalChosen => "NO_PROP",
            Self::InvalidKePayload => "INVAL_KE",
            Self::AuthenticationFailed => "AUTH_FAILED",
            Self::SinglePairRequired => "SINGLE_PAIR",
            Self::NoAdditionalSas => "NO_ADD_SAS",
            Self::InternalAddressFailure => "INT_ADDR_FAIL",
            Self::FailedCpRequired => "FAIL_CP_REQ",
            Self::TsUnacceptable => "TS_UNACCEPT",
            Self::InvalidSelectors => "INVAL_SEL",
            Self::TemporaryFailure => "TEMP_FAIL",
            Self::ChildSaNotFound => "NO_CHILD_SA",
            Self::InitialContact => "INIT_CONTACT",
            Self::SetWindowSize => "SET_WINSIZE",
            Self::AdditionalTsPossible => "ADD_TS_POSS",
            Self::IpcompSupported => "IPCOMP_SUP",
            Self::NatDetectionSourceIp => "NATD_S_IP",
            Self::NatDetectionDestinationIp => "NATD_D_IP",
            Self::Cookie => "COOKIE",
            Self::UseTransportMode => "USE_TRANSP",
            Self::HttpCertLookupSupported => "HTTP_CERT_LOOK",
            Self::RekeySa => "REKEY_SA",
            Self::EspTfcPaddingNotSupported => "ESP_TFC_PAD_N",
            Self::NonFirstFragmentsAlso => "NON_FIRST_FRAG",
            Self::MobikeSupported => "MOBIKE_SUP",
            Self::AdditionalIp4Address => "ADD_4_ADDR",
            Self::AdditionalIp6Address => "ADD_6_ADDR",
            Self::NoAdditionalAddresses => "NO_ADD_ADDR",
            Self::UpdateSaAddresses => "UPD_SA_ADDR",
            Self::Cookie2 => "COOKIE2",
            Self::NoNatsAllowed => "NO_NATS",
            Self::MultipleAuthSupported => "MULT_AUTH",
            Self::RedirectSupported => "REDIR_SUP",
            Self::EapOnlyAuthentication => "EAP_ONLY",
            Self::ChildlessIkev2Supported => "CHDLESS_SUP",
            Self::Ikev2MessageIdSyncSupported => "MSG_ID_SYN_SUP",
            Self::IkeFragmentationSupported => "FRAG_SUP",
            Self::SignatureHashAlgorithms => "HASH_ALG",
            Self::Unknown(_) => return None,
        })
    }
}

/// Notify body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// Which SA the notify is about; [`ProtocolId::None`] (0) when it is about none.
    pub protocol: ProtocolId,
    /// SPI of that SA; empty for IKE SA notifies ("the SPI Size field MUST be zero").
    pub spi: Vec<u8>,
    /// Notify Message Type.
    pub ntype: NotifyType,
    /// Notification Data, interpreted per type by the state machines.
    pub data: Vec<u8>,
}

/// Decodes a Notify body: protocol, SPI size, type, SPI, data.
pub(super) fn parse(body: &[u8]) -> Result<NotifyPayload, DecodeError> {
    let (rest, (protocol, spi_size, ntype)) =
        fields("Notify payload", body, (be_u8, be_u8, be_u16))?;
    let spi_size = usize::from(spi_size);
    if spi_size > rest.len() {
        return Err(DecodeError::BadLength("Notify SPI size", spi_size));
    }
    let (spi, data) = split("Notify SPI", rest, spi_size)?;
    Ok(NotifyPayload {
        protocol: protocol.into(),
        spi: spi.to_vec(),
        ntype: ntype.into(),
        data: data.to_vec(),
    })
}

/// Encodes a Notify body.
///
/// # Panics
/// If the SPI is longer than 255 octets.
pub(super) fn emit(notify: &NotifyPayload, out: &mut Vec<u8>) {
    out.push(notify.protocol.into());
    out.push(len_u8("Notify SPI", notify.spi.len()));
    out.extend_from_slice(&u16::from(notify.ntype).to_be_bytes());
    out.extend_from_slice(&notify.spi);
    out.extend_from_slice(&notify.data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::captures;

    #[test]
    fn parses_rekey_sa_with_esp_spi() {
        // N(REKEY_SA) of the decrypted CREATE_CHILD_SA request (04_*.inner.bin, octets 4..12).
        let inner = captures::PSK_CHILD_REQ_INNER;
        let n = parse(&inner[4..12]).unwrap();
        assert_eq!(n.protocol, ProtocolId::Esp);
        assert_eq!(n.ntype, NotifyType::RekeySa);
        assert_eq!(n.spi.len(), 4);
        assert!(n.data.is_empty());
        let mut out = Vec::new();
        emit(&n, &mut out);
        assert_eq!(out, inner[4..12]);
    }

    #[test]
    fn parses_invalid_ke_with_group_data() {
        let n = parse(&[0, 0, 0, 17, 0, 19]).unwrap();
        assert_eq!(n.protocol, ProtocolId::None);
        assert_eq!(n.ntype, NotifyType::InvalidKePayload);
        assert_eq!(n.data, [0, 19]);
    }

    #[test]
    fn spi_size_beyond_body_is_rejected() {
        assert_eq!(
            parse(&[3, 4, 0x40, 0x09, 1, 2, 3]),
            Err(DecodeError::BadLength("Notify SPI size", 4))
        );
        assert_eq!(
            parse(&[0, 0, 0]),
            Err(DecodeError::Truncated("Notify payload"))
        );
    }

    #[test]
    fn error_and_status_ranges() {
        assert!(NotifyType::InvalidSyntax.is_error());
        assert!(NotifyType::Unknown(16383).is_error());
        assert!(!NotifyType::Cookie.is_error());
        assert!(!NotifyType::from(40960).is_error());
    }

    #[test]
    fn names_and_short_names() {
        assert_eq!(
            NotifyType::InvalidKePayload.to_string(),
            "INVALID_KE_PAYLOAD"
        );
        assert_eq!(
            NotifyType::NatDetectionSourceIp.to_string(),
            "NAT_DETECTION_SOURCE_IP"
        );
        assert_eq!(NotifyType::from(16390), NotifyType::Cookie);
        assert_eq!(NotifyType::InvalidKePayload.short_name(), Some("INVAL_KE"));
        assert_eq!(NotifyType::from(40960).short_name(), None);
        assert_eq!(NotifyType::from(40960).to_string(), "40960");
    }

    #[test]
    fn decode_errors_map_to_notifies() {
        assert_eq!(
            NotifyType::from(DecodeError::UnknownCritical(200)),
            NotifyType::UnsupportedCriticalPayload
        );
        assert_eq!(
            NotifyType::from(DecodeError::BadVersion(3)),
            NotifyType::InvalidMajorVersion
        );
        assert_eq!(
            NotifyType::from(DecodeError::Truncated("x")),
            NotifyType::InvalidSyntax
        );
    }
}
