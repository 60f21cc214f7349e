//! Data attributes (RFC 2408 §3.3) and their IPsec DOI meaning
//! ([RFC 2407 §4.5](https://www.rfc-editor.org/rfc/rfc2407#section-4.5), RFC 4304 for ESN).
//!
//! [`Attribute`] is the raw TV/TLV form, kept in wire order so a transform round-trips
//! exactly. [`IpsecAttributes`] is the typed reading of an IPsec transform's attributes and
//! builds them back; phase 1 (RFC 2409 Appendix A) attributes share the raw form only.

use crate::open_enum;
use std::borrow::Cow;

use nom::number::complete::be_u16;

use super::{DecodeError, fields, len_u16, split};

/// The Attribute Format bit: set for TV ("Basic", value in the header word).
const AF_TV: u16 = 0x8000;

/// One data attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute Type (15 bits; the AF bit is in `value`'s variant).
    pub attr_type: u16,
    /// The value, in the format it was or will be sent in.
    pub value: AttributeValue<'a>,
}

/// An attribute's value and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue<'a> {
    /// TV format (AF = 1): a 16-bit value.
    Basic(u16),
    /// TLV format (AF = 0): a variable-length value.
    Variable(Cow<'a, [u8]>),
}

impl Attribute<'_> {
    /// A TV attribute.
    #[must_use]
    pub fn basic(attr_type: impl Into<u16>, value: u16) -> Attribute<'static> {
        Attribute {
            attr_type: attr_type.into() & !AF_TV,
            value: AttributeValue::Basic(value),
        }
    }

    /// Copies a borrowed value.
    #[must_use]
    pub fn into_owned(self) -> Attribute<'static> {
        Attribute {
            attr_type: self.attr_type,
            value: match self.value {
                AttributeValue::Basic(v) => AttributeValue::Basic(v),
                AttributeValue::Variable(b) => AttributeValue::Variable(Cow::Owned(b.into_owned())),
            },
        }
    }

    /// The value as an unsigned integer: TV values, and TLV values of at most 8 octets
    /// (RFC 2407 §4.5 lets SA Life Duration be either).
    ///
    /// # Errors
    /// `BadAttribute` for a TLV value longer than 8 octets.
    pub fn as_u64(&self) -> Result<u64, DecodeError> {
        match &self.value {
            AttributeValue::Basic(v) => Ok(u64::from(*v)),
            AttributeValue::Variable(b) if b.len() <= 8 => Ok(b
                .iter()
                .fold(0, |acc, &octet| (acc << 8) | u64::from(octet))),
            AttributeValue::Variable(_) => Err(DecodeError::BadAttribute("value over 64 bits")),
        }
    }
}

/// Decodes a transform's attribute list (the rest of the transform after its header).
pub(super) fn parse_list(mut rest: &[u8]) -> Result<Vec<Attribute<'_>>, DecodeError> {
    let mut attrs = Vec::new();
    while !rest.is_empty() {
        let (after, (word, value)) = fields("data attribute", rest, (be_u16, be_u16))?;
        let attr_type = word & !AF_TV;
        if word & AF_TV != 0 {
            attrs.push(Attribute {
                attr_type,
                value: AttributeValue::Basic(value),
            });
            rest = after;
        } else {
            let (data, after) = split("data attribute value", after, usize::from(value))?;
            attrs.push(Attribute {
                attr_type,
                value: AttributeValue::Variable(Cow::Borrowed(data)),
            });
            rest = after;
        }
    }
    Ok(attrs)
}

/// Encodes attributes in order.
pub(super) fn emit_list(attrs: &[Attribute<'_>], out: &mut Vec<u8>) {
    for attr in attrs {
        let attr_type = attr.attr_type & !AF_TV;
        match &attr.value {
            AttributeValue::Basic(v) => {
                out.extend_from_slice(&(attr_type | AF_TV).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttributeValue::Variable(b) => {
                out.extend_from_slice(&attr_type.to_be_bytes());
                out.extend_from_slice(&len_u16("data attribute", b.len()).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

open_enum! {
    /// IPsec DOI attribute types (RFC 2407 §4.5; 10-11 from RFC 3168 and RFC 4304).
    pub enum IpsecAttrType(u16) {
        /// SA Life Type (TV): seconds or kilobytes.
        SaLifeType = 1 => "SA_LIFE_TYPE",
        /// SA Life Duration (TV or TLV).
        SaLifeDuration = 2 => "SA_LIFE_DURATION",
        /// Group Description (TV): the PFS Diffie-Hellman group.
        GroupDescription = 3 => "GROUP_DESCRIPTION",
        /// Encapsulation Mode (TV).
        EncapsulationMode = 4 => "ENCAPSULATION_MODE",
        /// Authentication Algorithm (TV).
        AuthAlgorithm = 5 => "AUTH_ALGORITHM",
        /// Key Length in bits (TV).
        KeyLength = 6 => "KEY_LENGTH",
        /// Key Rounds (TV).
        KeyRounds = 7 => "KEY_ROUNDS",
        /// Compress Dictionary Size (TV).
        CompressDictionarySize = 8 => "COMPRESS_DICTIONARY_SIZE",
        /// Compress Private Algorithm (TLV).
        CompressPrivateAlgorithm = 9 => "COMPRESS_PRIVATE_ALGORITHM",
        /// ECN Tunnel (RFC 3168, TV).
        EcnTunnel = 10 => "ECN_TUNNEL",
        /// Extended (64-bit) Sequence Number (RFC 4304, TV, value 1).
        ExtendedSequenceNumber = 11 => "ESN",
    }
}

open_enum! {
    /// SA Life Type values (RFC 2407 §4.5).
    pub enum LifeType(u16) {
        /// The following duration is in seconds.
        Seconds = 1 => "seconds",
        /// The following duration is in kilobytes.
        Kilobytes = 2 => "kilobytes",
    }
}

open_enum! {
    /// Encapsulation Mode values (RFC 2407 §4.5, RFC 3947 §5; 61443/61444 are the values
    /// of the NAT-T drafts that racoon still sends).
    pub enum EncapsulationMode(u16) {
        /// Tunnel mode.
        Tunnel = 1 => "Tunnel",
        /// Transport mode.
        Transport = 2 => "Transport",
        /// UDP-Encapsulated-Tunnel (RFC 3947).
        UdpTunnel = 3 => "UDP-Encapsulated-Tunnel",
        /// UDP-Encapsulated-Transport (RFC 3947).
        UdpTransport = 4 => "UDP-Encapsulated-Transport",
        /// UDP-Encapsulated-Tunnel, draft-ietf-ipsec-nat-t-ike value.
        UdpTunnelDraft = 61443 => "UDP-Encapsulated-Tunnel (draft)",
        /// UDP-Encapsulated-Transport, draft-ietf-ipsec-nat-t-ike value.
        UdpTransportDraft = 61444 => "UDP-Encapsulated-Transport (draft)",
    }
}

open_enum! {
    /// Authentication Algorithm values (RFC 2407 §4.5, IANA "IPsec Authentication
    /// Algorithms"; 5-7 from RFC 4868).
    pub enum AuthAlgorithm(u16) {
        /// HMAC-MD5.
        HmacMd5 = 1 => "HMAC-MD5",
        /// HMAC-SHA1.
        HmacSha1 = 2 => "HMAC-SHA",
        /// DES-MAC.
        DesMac = 3 => "DES-MAC",
        /// KPDK.
        Kpdk = 4 => "KPDK",
        /// HMAC-SHA2-256 (128-bit truncation).
        HmacSha2_256 = 5 => "HMAC-SHA2-256",
        /// HMAC-SHA2-384 (192-bit truncation).
        HmacSha2_384 = 6 => "HMAC-SHA2-384",
        /// HMAC-SHA2-512 (256-bit truncation).
        HmacSha2_512 = 7 => "HMAC-SHA2-512",
        /// HMAC-RIPEMD.
        HmacRipemd = 8 => "HMAC-RIPEMD",
        /// AES-XCBC-MAC.
        AesXcbcMac = 9 => "AES-XCBC-MAC",
    }
}

/// The typed reading of an IPsec transform's attributes (RFC 2407 §4.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpsecAttributes {
    /// (SA Life Type, SA Life Duration) pairs in wire order; empty means the defaults
    /// (28800 seconds, RFC 2407 §4.5).
    pub lifetimes: Vec<(LifeType, u64)>,
    /// Group Description: the PFS group; `None` without PFS.
    pub group: Option<u16>,
    /// Encapsulation Mode.
    pub mode: Option<EncapsulationMode>,
    /// Authentication Algorithm (absent for ESP without authentication, and for AEAD).
    pub auth: Option<AuthAlgorithm>,
    /// Key Length in bits, for variable-key ciphers.
    pub key_length: Option<u16>,
    /// Extended Sequence Numbers requested (RFC 4304).
    pub esn: bool,
}

impl IpsecAttributes {
    /// Reads typed values from `attrs`.
    ///
    /// "SA Life Duration ... MUST be preceded by an SA Life Type" (RFC 2407 §4.5), so a
    /// duration without a type, and a type without a duration, are errors.
    ///
    /// # Errors
    /// `BadAttribute` naming the problem: an attribute type this reader does not know (the
    /// caller should then reject the transform, ATTRIBUTES-NOT-SUPPORTED), a TLV form for a
    /// TV-only attribute, a duplicate, a life pairing error or an ESN value other than 1.
    pub fn from_attributes(attrs: &[Attribute<'_>]) -> Result<Self, DecodeError> {
        let mut out = Self::default();
        let mut pending_life: Option<LifeType> = None;
        for attr in attrs {
            let ty = IpsecAttrType::from(attr.attr_type);
            if ty == IpsecAttrType::SaLifeDuration {
                let life = pending_life.take().ok_or(DecodeError::BadAttribute(
                    "SA Life Duration without Life Type",
                ))?;
                out.lifetimes.push((life, attr.as_u64()?));
                continue;
            }
            if pending_life.is_some() {
                return Err(DecodeError::BadAttribute("SA Life Type without Duration"));
            }
            let value = basic(attr)?;
            match ty {
                IpsecAttrType::SaLifeType => pending_life = Some(value.into()),
                IpsecAttrType::GroupDescription => set(&mut out.group, value)?,
                IpsecAttrType::EncapsulationMode => set(&mut out.mode, value.into())?,
                IpsecAttrType::AuthAlgorithm => set(&mut out.auth, value.into())?,
                IpsecAttrType::KeyLength => set(&mut out.key_length, value)?,
                IpsecAttrType::ExtendedSequenceNumber => out.esn = esn(out.esn, value)?,
                _ => return Err(DecodeError::BadAttribute("unsupported attribute type")),
            }
        }
        match pending_life {
            Some(_) => Err(DecodeError::BadAttribute("SA Life Type without Duration")),
            None => Ok(out),
        }
    }

    /// The attributes to send, in the order life pairs, group, mode, auth, key length,
    /// ESN. Durations that fit 16 bits go as TV, longer ones as a 4- or 8-octet TLV.
    #[must_use]
    pub fn to_attributes(&self) -> Vec<Attribute<'static>> {
        let mut attrs = Vec::new();
        for &(life, duration) in &self.lifetimes {
            attrs.push(Attribute::basic(IpsecAttrType::SaLifeType, life.into()));
            attrs.push(duration_attr(duration));
        }
        let mut push = |ty: IpsecAttrType, v: Option<u16>| {
            if let Some(v) = v {
                attrs.push(Attribute::basic(ty, v));
            }
        };
        push(IpsecAttrType::GroupDescription, self.group);
        push(IpsecAttrType::EncapsulationMode, self.mode.map(u16::from));
        push(IpsecAttrType::AuthAlgorithm, self.auth.map(u16::from));
        push(IpsecAttrType::KeyLength, self.key_length);
        push(IpsecAttrType::ExtendedSequenceNumber, self.esn.then_some(1));
        attrs
    }
}

/// The SA Life Duration attribute for `duration`, in the shortest form racoon and strongSwan
/// accept: TV up to 65535, else a 4-octet TLV, else 8 octets.
fn duration_attr(duration: u64) -> Attribute<'static> {
    let ty = u16::from(IpsecAttrType::SaLifeDuration);
    if let Ok(v) = u16::try_from(duration) {
        return Attribute::basic(ty, v);
    }
    let bytes = match u32::try_from(duration) {
        Ok(v) => v.to_be_bytes().to_vec(),
        Err(_) => duration.to_be_bytes().to_vec(),
    };
    Attribute {
        attr_type: ty,
        value: AttributeValue::Variable(Cow::Owned(bytes)),
    }
}

/// The TV value of an attribute that must be TV.
fn basic(attr: &Attribute<'_>) -> Result<u16, DecodeError> {
    match attr.value {
        AttributeValue::Basic(v) => Ok(v),
        AttributeValue::Variable(_) => Err(DecodeError::BadAttribute("TLV for a TV attribute")),
    }
}

/// Sets a field once.
fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(DecodeError::BadAttribute("duplicate attribute")),
    }
}

/// The ESN attribute: value 1 ("64-bit Sequence Number", RFC 4304 §2), once.
fn esn(already: bool, value: u16) -> Result<bool, DecodeError> {
    match (already, value) {
        (false, 1) => Ok(true),
        (true, _) => Err(DecodeError::BadAttribute("duplicate attribute")),
        _ => Err(DecodeError::BadAttribute("ESN value other than 1")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::strategies;

    #[test]
    fn tv_and_tlv_bytes() {
        let attrs = vec![
            Attribute::basic(IpsecAttrType::SaLifeType, 1),
            Attribute {
                attr_type: 2,
                value: AttributeValue::Variable(Cow::Borrowed(&[0, 1, 0x51, 0x80])),
            },
        ];
        let mut out = Vec::new();
        emit_list(&attrs, &mut out);
        assert_eq!(out, [0x80, 1, 0, 1, 0, 2, 0, 4, 0, 1, 0x51, 0x80]);
        assert_eq!(parse_list(&out).unwrap(), attrs);
        assert_eq!(attrs[1].as_u64(), Ok(86400));
    }

    #[test]
    fn truncated_tlv_value() {
        assert_eq!(
            parse_list(&[0, 2, 0, 4, 0, 1]),
            Err(DecodeError::Truncated("data attribute value"))
        );
        assert_eq!(
            parse_list(&[0x80, 1, 0]),
            Err(DecodeError::Truncated("data attribute"))
        );
    }

    #[test]
    fn typed_reading_of_a_quick_mode_transform() {
        let attrs = IpsecAttributes {
            lifetimes: vec![(LifeType::Seconds, 86400), (LifeType::Kilobytes, 1000)],
            group: Some(14),
            mode: Some(EncapsulationMode::Tunnel),
            auth: Some(AuthAlgorithm::HmacSha2_256),
            key_length: Some(256),
            esn: true,
        };
        let raw = attrs.to_attributes();
        assert_eq!(raw.len(), 9);
        assert_eq!(IpsecAttributes::from_attributes(&raw), Ok(attrs));
    }

    #[test]
    fn life_pairing_and_duplicates_are_errors() {
        let life = Attribute::basic(IpsecAttrType::SaLifeType, 1);
        let dur = Attribute::basic(IpsecAttrType::SaLifeDuration, 60);
        let mode = Attribute::basic(IpsecAttrType::EncapsulationMode, 1);
        let err = |a: &[Attribute<'_>]| IpsecAttributes::from_attributes(a).unwrap_err();
        assert_eq!(
            err(std::slice::from_ref(&dur)),
            DecodeError::BadAttribute("SA Life Duration without Life Type")
        );
        assert_eq!(
            err(std::slice::from_ref(&life)),
            DecodeError::BadAttribute("SA Life Type without Duration")
        );
        assert_eq!(
            err(&[life, mode.clone(), dur]),
            DecodeError::BadAttribute("SA Life Type without Duration")
        );
        assert_eq!(
            err(&[mode.clone(), mode]),
            DecodeError::BadAttribute("duplicate attribute")
        );
        assert_eq!(
            err(&[Attribute::basic(99u16, 1)]),
            DecodeError::BadAttribute("unsupported attribute type")
        );
        assert_eq!(
            err(&[Attribute::basic(IpsecAttrType::ExtendedSequenceNumber, 0)]),
            DecodeError::BadAttribute("ESN value other than 1")
        );
        assert_eq!(
            DecodeError::BadAttribute("x").notify(),
            crate::isakmp::NotifyType::AttributesNotSupported
        );
    }

    #[test]
    fn long_durations_use_tlv() {
        assert_eq!(
            duration_attr(70000).value,
            AttributeValue::Variable(Cow::Owned(vec![0, 1, 0x11, 0x70]))
        );
        assert_eq!(duration_attr(1 << 40).as_u64(), Ok(1 << 40));
        let long = Attribute {
            attr_type: 2,
            value: AttributeValue::Variable(Cow::Owned(vec![1; 9])),
        };
        assert!(long.as_u64().is_err());
    }

    proptest! {
        #[test]
        fn raw_lists_round_trip(attrs in prop::collection::vec(strategies::attribute(), 0..8)) {
            let mut out = Vec::new();
            emit_list(&attrs, &mut out);
            prop_assert_eq!(parse_list(&out).unwrap(), attrs);
        }

        #[test]
        fn typed_attributes_round_trip(a in strategies::ipsec_attributes()) {
            prop_assert_eq!(IpsecAttributes::from_attributes(&a.to_attributes()), Ok(a));
        }
    }
}
