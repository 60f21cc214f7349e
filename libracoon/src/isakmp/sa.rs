//! Security Association payload with its Proposal and Transform substructures
//! ([RFC 2408 §3.4-3.6](https://www.rfc-editor.org/rfc/rfc2408#section-3.4)) and the IPsec DOI
//! situation ([RFC 2407 §4.2](https://www.rfc-editor.org/rfc/rfc2407#section-4.2)).
//!
//! ```text
//! SA:        DOI (32) | Situation (32) | Proposal payloads
//! Proposal:  Next(0|2) RESERVED Length(16) | Proposal# ProtocolId SPISize #Transforms | SPI
//!            | Transform payloads
//! Transform: Next(0|3) RESERVED Length(16) | Transform# TransformId RESERVED2(16)
//!            | SA attributes
//! ```
//!
//! Proposals keep their wire order and numbers: RFC 2408 §4.2 makes proposals with the same
//! number one conjunction (e.g. AH and ESP together), which is the caller's business.

use crate::open_enum;
use std::borrow::Cow;

use nom::number::complete::{be_u8, be_u16, be_u32};

use super::attr::{emit_list, parse_list};
use super::{Attribute, DecodeError, end, fields, len_u8, patch_len, split};

/// The IPsec Domain of Interpretation (RFC 2407 §6.1).
pub const IPSEC_DOI: u32 = 1;
/// SIT_IDENTITY_ONLY, the only situation implemented (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;

open_enum! {
    /// Protocol ID (RFC 2407 §4.4.1).
    pub enum ProtocolId(u8) {
        /// Reserved (notifications about no particular SA use it).
        Reserved = 0 => "RESERVED",
        /// PROTO_ISAKMP.
        Isakmp = 1 => "ISAKMP",
        /// PROTO_IPSEC_AH.
        Ah = 2 => "AH",
        /// PROTO_IPSEC_ESP.
        Esp = 3 => "ESP",
        /// PROTO_IPCOMP.
        Ipcomp = 4 => "IPCOMP",
    }
}

open_enum! {
    /// IPsec ESP Transform Identifiers (RFC 2407 §4.4.4 and the IANA registry).
    pub enum EspTransformId(u8) {
        /// ESP_DES.
        Des = 2 => "DES",
        /// ESP_3DES.
        TripleDes = 3 => "3DES",
        /// ESP_NULL.
        Null = 11 => "NULL",
        /// ESP_AES (CBC, RFC 3602).
        AesCbc = 12 => "AES-CBC",
        /// ESP_AES-CTR (RFC 3686).
        AesCtr = 13 => "AES-CTR",
        /// ESP_AES-CCM_8 (RFC 4309).
        AesCcm8 = 14 => "AES-CCM-8",
        /// ESP_AES-CCM_12.
        AesCcm12 = 15 => "AES-CCM-12",
        /// ESP_AES-CCM_16.
        AesCcm16 = 16 => "AES-CCM-16",
        /// ESP_AES-GCM_8 (RFC 4106).
        AesGcm8 = 18 => "AES-GCM-8",
        /// ESP_AES-GCM_12.
        AesGcm12 = 19 => "AES-GCM-12",
        /// ESP_AES-GCM_16.
        AesGcm16 = 20 => "AES-GCM-16",
        /// ESP_NULL_AUTH_AES-GMAC (RFC 4543).
        NullAuthAesGmac = 23 => "NULL-AES-GMAC",
    }
}

open_enum! {
    /// IPsec AH Transform Identifiers (RFC 2407 §4.4.3, RFC 4868).
    pub enum AhTransformId(u8) {
        /// AH_MD5.
        Md5 = 2 => "MD5",
        /// AH_SHA.
        Sha = 3 => "SHA",
        /// AH_SHA2-256.
        Sha2_256 = 5 => "SHA2-256",
        /// AH_SHA2-384.
        Sha2_384 = 6 => "SHA2-384",
        /// AH_SHA2-512.
        Sha2_512 = 7 => "SHA2-512",
        /// AH_AES-XCBC-MAC.
        AesXcbcMac = 9 => "AES-XCBC-MAC",
    }
}

/// A Security Association payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload<'a> {
    /// Domain of Interpretation: [`IPSEC_DOI`] after a successful parse.
    pub doi: u32,
    /// Situation: [`SIT_IDENTITY_ONLY`] after a successful parse.
    pub situation: u32,
    /// Proposals in wire order (at least one).
    pub proposals: Vec<Proposal<'a>>,
}

/// A Proposal substructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Proposal #, as sent (a reply echoes the chosen number).
    pub num: u8,
    /// Which protocol the SA is for.
    pub protocol: ProtocolId,
    /// The sender's SPI: 4 octets for AH/ESP (its inbound SPI), 2 for IPComp's CPI.
    pub spi: Cow<'a, [u8]>,
    /// Transforms in wire order (at least one).
    pub transforms: Vec<Transform<'a>>,
}

/// A Transform substructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform<'a> {
    /// Transform #.
    pub num: u8,
    /// Transform ID, in the namespace of the proposal's protocol ([`EspTransformId`],
    /// [`AhTransformId`], KEY_IKE = 1 for ISAKMP).
    pub id: u8,
    /// SA attributes in wire order; [`IpsecAttributes`](super::IpsecAttributes) reads them.
    pub attributes: Vec<Attribute<'a>>,
}

impl SaPayload<'_> {
    /// An IPsec DOI, SIT_IDENTITY_ONLY SA payload with the given proposals.
    #[must_use]
    pub fn ipsec(proposals: Vec<Proposal<'_>>) -> SaPayload<'_> {
        SaPayload {
            doi: IPSEC_DOI,
            situation: SIT_IDENTITY_ONLY,
            proposals,
        }
    }

    /// Encodes the body (everything after the generic header).
    ///
    /// # Panics
    /// If a proposal has more than 255 transforms, an SPI over 255 octets, or a substructure
    /// over 65535 octets.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&self.situation.to_be_bytes());
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.emit(i + 1 == self.proposals.len(), out);
        }
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> SaPayload<'static> {
        SaPayload {
            doi: self.doi,
            situation: self.situation,
            proposals: self
                .proposals
                .into_iter()
                .map(Proposal::into_owned)
                .collect(),
        }
    }
}

impl Proposal<'_> {
    /// Encodes this proposal; `last` selects Next Payload 0 rather than 2.
    fn emit(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        let next = if last { 0 } else { NEXT_PROPOSAL };
        out.extend_from_slice(&[next, 0, 0, 0, self.num, self.protocol.into()]);
        out.push(len_u8("proposal SPI", self.spi.len()));
        out.push(len_u8("proposal transforms", self.transforms.len()));
        out.extend_from_slice(&self.spi);
        for (i, transform) in self.transforms.iter().enumerate() {
            transform.emit(i + 1 == self.transforms.len(), out);
        }
        patch_len("proposal", out, start);
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> Proposal<'static> {
        Proposal {
            num: self.num,
            protocol: self.protocol,
            spi: Cow::Owned(self.spi.into_owned()),
            transforms: self
                .transforms
                .into_iter()
                .map(Transform::into_owned)
                .collect(),
        }
    }
}

impl Transform<'_> {
    /// Encodes this transform; `last` selects Next Payload 0 rather than 3.
    fn emit(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        let next = if last { 0 } else { NEXT_TRANSFORM };
        out.extend_from_slice(&[next, 0, 0, 0, self.num, self.id, 0, 0]);
        emit_list(&self.attributes, out);
        patch_len("transform", out, start);
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> Transform<'static> {
        Transform {
            num: self.num,
            id: self.id,
            attributes: self
                .attributes
                .into_iter()
                .map(Attribute::into_owned)
                .collect(),
        }
    }
}

/// Next Payload value of a proposal followed by another (RFC 2408 §3.5).
const NEXT_PROPOSAL: u8 = 2;
/// Next Payload value of a transform followed by another (RFC 2408 §3.6).
const NEXT_TRANSFORM: u8 = 3;
/// Proposal header octets before the SPI.
const PROPOSAL_HEADER_LEN: usize = 8;
/// Transform header octets before the attributes.
const TRANSFORM_HEADER_LEN: usize = 8;

/// Decodes an SA payload body.
pub(super) fn parse(body: &[u8]) -> Result<SaPayload<'_>, DecodeError> {
    let (mut rest, (doi, situation)) = fields("SA payload", body, (be_u32, be_u32))?;
    if doi != IPSEC_DOI {
        return Err(DecodeError::DoiNotSupported(doi));
    }
    if situation != SIT_IDENTITY_ONLY {
        return Err(DecodeError::SituationNotSupported(situation));
    }
    let mut proposals = Vec::new();
    loop {
        if rest.is_empty() {
            return Err(DecodeError::BadProposalSyntax(
                "SA payload without proposal",
            ));
        }
        let (more, proposal, after) = parse_proposal(rest)?;
        proposals.push(proposal);
        rest = after;
        if !more {
            end("SA payload", rest)?;
            return Ok(SaPayload {
                doi,
                situation,
                proposals,
            });
        }
    }
}

/// Decodes one proposal: whether another follows, the proposal, the bytes after it.
fn parse_proposal(input: &[u8]) -> Result<(bool, Proposal<'_>, &[u8]), DecodeError> {
    let parser = (be_u8, be_u8, be_u16, be_u8, be_u8, be_u8, be_u8);
    let (_, (next, _reserved, len, num, protocol, spi_size, count)) =
        fields("proposal", input, parser)?;
    let more = substruct_next("proposal Next Payload", next, NEXT_PROPOSAL)?;
    let len = usize::from(len);
    if len < PROPOSAL_HEADER_LEN + usize::from(spi_size) || len > input.len() {
        return Err(DecodeError::BadLength("proposal", len));
    }
    let (this, after) = split("proposal", input, len)?;
    let (_, body) = split("proposal", this, PROPOSAL_HEADER_LEN)?;
    let (spi, transforms) = split("proposal SPI", body, usize::from(spi_size))?;
    let transforms = parse_transforms(transforms, count)?;
    let proposal = Proposal {
        num,
        protocol: protocol.into(),
        spi: Cow::Borrowed(spi),
        transforms,
    };
    Ok((more, proposal, after))
}

/// Decodes a proposal's transforms and checks them against # Of Transforms.
fn parse_transforms(mut rest: &[u8], count: u8) -> Result<Vec<Transform<'_>>, DecodeError> {
    let mut transforms = Vec::with_capacity(usize::from(count));
    loop {
        if rest.is_empty() {
            return Err(DecodeError::BadProposalSyntax("proposal without transform"));
        }
        let (more, transform, after) = parse_transform(rest)?;
        transforms.push(transform);
        rest = after;
        if !more {
            break;
        }
    }
    end("proposal", rest)?;
    if transforms.len() != usize::from(count) {
        return Err(DecodeError::BadProposalSyntax("# of Transforms mismatch"));
    }
    Ok(transforms)
}

/// Decodes one transform: whether another follows, the transform, the bytes after it.
fn parse_transform(input: &[u8]) -> Result<(bool, Transform<'_>, &[u8]), DecodeError> {
    let parser = (be_u8, be_u8, be_u16, be_u8, be_u8, be_u16);
    let (_, (next, _reserved, len, num, id, _reserved2)) = fields("transform", input, parser)?;
    let more = substruct_next("transform Next Payload", next, NEXT_TRANSFORM)?;
    let len = usize::from(len);
    if len < TRANSFORM_HEADER_LEN || len > input.len() {
        return Err(DecodeError::BadLength("transform", len));
    }
    let (this, after) = split("transform", input, len)?;
    let (_, attrs) = split("transform", this, TRANSFORM_HEADER_LEN)?;
    let transform = Transform {
        num,
        id,
        attributes: parse_list(attrs)?,
    };
    Ok((more, transform, after))
}

/// A substructure's Next Payload: 0 (last) or `more_value`, anything else is
/// BAD-PROPOSAL-SYNTAX.
fn substruct_next(ctx: &'static str, value: u8, more_value: u8) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        v if v == more_value => Ok(true),
        _ => Err(DecodeError::BadProposalSyntax(ctx)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::{
        AuthAlgorithm, EncapsulationMode, IpsecAttributes, LifeType, Payload, PayloadType,
        emit_chain, parse_chain, strategies,
    };

    /// A KINK CREATE's SA payload, body laid out octet by octet from RFC 2408 §3.4-3.6 and
    /// RFC 2407 §4.5 (not produced by our encoder): one ESP proposal, SPI 0x11223344, two
    /// transforms: AES-CBC-128 + HMAC-SHA1, then 3DES + HMAC-MD5, each tunnel mode with a
    /// lifetime of 28800 seconds.
    const SA_PAYLOAD: [u8; 76] = [
        // generic header: next NONCE (10), reserved, length 76
        10, 0, 0, 76, //
        0, 0, 0, 1, // DOI: IPsec
        0, 0, 0, 1, // situation: SIT_IDENTITY_ONLY
        // proposal: last, reserved, length 64, #1, PROTO_IPSEC_ESP, SPI size 4, 2 transforms
        0, 0, 0, 64, 1, 3, 4, 2, //
        0x11, 0x22, 0x33, 0x44, // SPI
        // transform 1: more (3), reserved, length 28, #1, ESP_AES (12), reserved2
        3, 0, 0, 28, 1, 12, 0, 0, //
        0x80, 1, 0, 1, // SA Life Type = seconds
        0x80, 2, 0x70, 0x80, // SA Life Duration = 28800
        0x80, 4, 0, 1, // Encapsulation Mode = Tunnel
        0x80, 5, 0, 2, // Authentication Algorithm = HMAC-SHA
        0x80, 6, 0, 128, // Key Length = 128
        // transform 2: last, reserved, length 24, #2, ESP_3DES (3), reserved2
        0, 0, 0, 24, 2, 3, 0, 0, //
        0x80, 1, 0, 1, // SA Life Type = seconds
        0x80, 2, 0x70, 0x80, // SA Life Duration = 28800
        0x80, 4, 0, 1, // Encapsulation Mode = Tunnel
        0x80, 5, 0, 1, // Authentication Algorithm = HMAC-MD5
    ];

    fn transform(num: u8, id: EspTransformId, attrs: &IpsecAttributes) -> Transform<'static> {
        Transform {
            num,
            id: id.into(),
            attributes: attrs.to_attributes(),
        }
    }

    fn expected_sa() -> SaPayload<'static> {
        let common = IpsecAttributes {
            lifetimes: vec![(LifeType::Seconds, 28800)],
            mode: Some(EncapsulationMode::Tunnel),
            ..IpsecAttributes::default()
        };
        let aes = IpsecAttributes {
            auth: Some(AuthAlgorithm::HmacSha1),
            key_length: Some(128),
            ..common.clone()
        };
        let des = IpsecAttributes {
            auth: Some(AuthAlgorithm::HmacMd5),
            ..common
        };
        SaPayload::ipsec(vec![Proposal {
            num: 1,
            protocol: ProtocolId::Esp,
            spi: Cow::Borrowed(&[0x11, 0x22, 0x33, 0x44]),
            transforms: vec![
                transform(1, EspTransformId::AesCbc, &aes),
                transform(2, EspTransformId::TripleDes, &des),
            ],
        }])
    }

    #[test]
    fn hand_built_quick_mode_sa_parses() {
        let payloads = parse_chain(PayloadType::Sa, &SA_PAYLOAD[..]);
        // The generic header announces a NONCE after the SA: the chain is cut short.
        assert_eq!(
            payloads,
            Err(DecodeError::Truncated("generic payload header"))
        );
        let sa = parse(&SA_PAYLOAD[4..]).unwrap();
        assert_eq!(sa, expected_sa());
        let attrs = IpsecAttributes::from_attributes(&sa.proposals[0].transforms[0].attributes);
        assert_eq!(attrs.unwrap().key_length, Some(128));
    }

    #[test]
    fn encoder_reproduces_hand_built_bytes() {
        let mut out = Vec::new();
        let first = emit_chain(&[Payload::Sa(expected_sa())], &mut out);
        assert_eq!(first, PayloadType::Sa);
        let mut expected = SA_PAYLOAD;
        expected[0] = 0; // alone in the chain: no next payload
        assert_eq!(out, expected);
    }

    #[test]
    fn doi_and_situation_are_checked() {
        let mut body = SA_PAYLOAD[4..].to_vec();
        body[3] = 2;
        assert_eq!(parse(&body), Err(DecodeError::DoiNotSupported(2)));
        let mut body = SA_PAYLOAD[4..].to_vec();
        body[7] = 3;
        assert_eq!(parse(&body), Err(DecodeError::SituationNotSupported(3)));
    }

    #[test]
    fn proposal_syntax_errors() {
        let body = &SA_PAYLOAD[4..];
        let with = |at: usize, v: u8| {
            let mut b = body.to_vec();
            b[at] = v;
            parse(&b).map(SaPayload::into_owned)
        };
        // Proposal Next Payload 5.
        assert_eq!(
            with(8, 5),
            Err(DecodeError::BadProposalSyntax("proposal Next Payload"))
        );
        // # of Transforms says 3.
        assert_eq!(
            with(15, 3),
            Err(DecodeError::BadProposalSyntax("# of Transforms mismatch"))
        );
        // Transform Next Payload 2.
        assert_eq!(
            with(20, 2),
            Err(DecodeError::BadProposalSyntax("transform Next Payload"))
        );
        // Proposal claims "more" but nothing follows.
        assert_eq!(
            with(8, 2),
            Err(DecodeError::BadProposalSyntax(
                "SA payload without proposal"
            ))
        );
        // Proposal length shorter than header + SPI.
        assert_eq!(with(11, 11), Err(DecodeError::BadLength("proposal", 11)));
        assert_eq!(
            parse(&body[..8]).map(SaPayload::into_owned),
            Err(DecodeError::BadProposalSyntax(
                "SA payload without proposal"
            ))
        );
        assert_eq!(
            DecodeError::BadProposalSyntax("x").notify(),
            crate::isakmp::NotifyType::BadProposalSyntax
        );
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let body = &SA_PAYLOAD[4..];
        for n in 0..body.len() {
            assert!(parse(&body[..n]).is_err(), "prefix {n}");
        }
    }

    proptest! {
        #[test]
        fn sa_payloads_round_trip(sa in strategies::sa_payload()) {
            let mut out = Vec::new();
            sa.emit(&mut out);
            prop_assert_eq!(parse(&out).unwrap(), sa);
        }
    }
}
