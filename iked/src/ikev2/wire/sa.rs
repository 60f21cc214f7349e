//! Security Association payload: proposals, transforms, attributes
//! ([RFC 7296 §3.3](https://www.rfc-editor.org/rfc/rfc7296#section-3.3)).

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u16};

use super::{DecodeError, end, fields, len_u8, patch_len, split};

open_enum! {
    /// Protocol ID (RFC 7296 §3.3.1): which SA a proposal, notify or delete is about.
    pub enum ProtocolId(u8) {
        /// No protocol: a Notify about no particular SA (RFC 7296 §3.10, "zero").
        None = 0 => "NONE",
        /// The IKE SA itself.
        Ike = 1 => "IKE",
        /// Authentication Header.
        Ah = 2 => "AH",
        /// Encapsulating Security Payload.
        Esp = 3 => "ESP",
    }
}

open_enum! {
    /// Transform Type (RFC 7296 §3.3.2).
    pub enum TransformType(u8) {
        /// Encryption Algorithm.
        Encr = 1 => "ENCR",
        /// Pseudorandom Function.
        Prf = 2 => "PRF",
        /// Integrity Algorithm.
        Integ = 3 => "INTEG",
        /// Diffie-Hellman group.
        Dh = 4 => "D-H",
        /// Extended Sequence Numbers.
        Esn = 5 => "ESN",
    }
}

/// One Proposal substructure.
///
/// The Last Substruc marker and the lengths are the codec's business: a parsed list is in wire
/// order, and emitting marks the last proposal and transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal Num, as given (a response echoes the chosen number).
    pub num: u8,
    /// Which protocol this proposal is for.
    pub protocol: ProtocolId,
    /// The sender's SPI for the SA: empty in IKE_SA_INIT, 8 octets for an IKE rekey, 4 for
    /// ESP/AH.
    pub spi: Vec<u8>,
    /// Transforms in wire order.
    pub transforms: Vec<Transform>,
}

/// One Transform substructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform Type.
    pub ttype: TransformType,
    /// Transform ID (IANA registry per type).
    pub id: u16,
    /// Key Length attribute (type 14, TV format, RFC 7296 §3.3.5), in bits.
    pub key_len: Option<u16>,
    /// The transform carried an attribute other than Key Length. Proposal selection must skip
    /// it: a transform with an attribute the recipient does not understand is rejected (RFC
    /// 7296 §3.3.6). Such attributes are not kept, so emitting a parsed transform drops them;
    /// we never send one.
    pub unknown_attrs: bool,
}

/// Decodes an SA payload body: at least one proposal, marker-terminated.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Proposal>, DecodeError> {
    let mut proposals = Vec::new();
    let mut rest = body;
    loop {
        let (more, proposal, after) = parse_proposal(rest)?;
        proposals.push(proposal);
        rest = after;
        if !more {
            end("SA payload", rest)?;
            return Ok(proposals);
        }
        if rest.is_empty() {
            return Err(DecodeError::Truncated("SA payload"));
        }
    }
}

/// Encodes an SA payload body (proposals in the given order and numbering).
///
/// # Panics
/// If a proposal has more than 255 transforms or a SPI longer than 255 octets.
pub(super) fn emit(proposals: &[Proposal], out: &mut Vec<u8>) {
    for (i, proposal) in proposals.iter().enumerate() {
        emit_proposal(proposal, i + 1 == proposals.len(), out);
    }
}

/// Proposal substructure header length (before the SPI).
const PROPOSAL_HEADER_LEN: usize = 8;
/// Transform substructure header length (before the attributes).
const TRANSFORM_HEADER_LEN: usize = 8;
/// "0 (last) or 2 (more)" in the Last Substruc field of a proposal (RFC 7296 §3.3.1).
const MORE_PROPOSALS: u8 = 2;
/// "0 (last) or 3 (more)" in the Last Substruc field of a transform (RFC 7296 §3.3.2).
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: TV (value in the type/length word) when set.
const ATTR_TV: u16 = 0x8000;
/// Attribute Type 14: Key Length (in bits).
const ATTR_KEY_LENGTH: u16 = 14;

/// Decodes one proposal; returns whether more follow, the proposal and the bytes after it.
fn parse_proposal(input: &[u8]) -> Result<(bool, Proposal, &[u8]), DecodeError> {
    let parser = (be_u8, be_u8, be_u16, be_u8, be_u8, be_u8, be_u8);
    let (_, (last, _reserved, len, num, protocol, spi_size, n_transforms)) =
        fields("proposal", input, parser)?;
    let more = last_substruc("proposal Last Substruc", last, MORE_PROPOSALS)?;
    let len = usize::from(len);
    if len < PROPOSAL_HEADER_LEN + usize::from(spi_size) || len > input.len() {
        return Err(DecodeError::BadLength("proposal", len));
    }
    let (this, after) = split("proposal", input, len)?;
    let (_, body) = split("proposal", this, PROPOSAL_HEADER_LEN)?;
    let (spi, transforms) = split("proposal SPI", body, usize::from(spi_size))?;
    let transforms = parse_transforms(transforms, n_transforms)?;
    let proposal = Proposal {
        num,
        protocol: protocol.into(),
        spi: spi.to_vec(),
        transforms,
    };
    Ok((more, proposal, after))
}

/// Decodes a proposal's transforms, checking markers and the announced count.
fn parse_transforms(mut rest: &[u8], count: u8) -> Result<Vec<Transform>, DecodeError> {
    let mut transforms = Vec::with_capacity(usize::from(count));
    let mut more = !rest.is_empty();
    while more {
        let (m, transform, after) = parse_transform(rest)?;
        transforms.push(transform);
        rest = after;
        more = m;
        if more && rest.is_empty() {
            return Err(DecodeError::Truncated("proposal transforms"));
        }
    }
    end("proposal", rest)?;
    if transforms.len() != usize::from(count) {
        return Err(DecodeError::BadValue("proposal: Num Transforms"));
    }
    Ok(transforms)
}

/// Decodes one transform; returns whether more follow, the transform and the bytes after it.
fn parse_transform(input: &[u8]) -> Result<(bool, Transform, &[u8]), DecodeError> {
    let parser = (be_u8, be_u8, be_u16, be_u8, be_u8, be_u16);
    let (_, (last, _reserved, len, ttype, _reserved2, id)) = fields("transform", input, parser)?;
    let more = last_substruc("transform Last Substruc", last, MORE_TRANSFORMS)?;
    let len = usize::from(len);
    if len < TRANSFORM_HEADER_LEN || len > input.len() {
        return Err(DecodeError::BadLength("transform", len));
    }
    let (this, after) = split("transform", input, len)?;
    let (_, attrs) = split("transform", this, TRANSFORM_HEADER_LEN)?;
    let (key_len, unknown_attrs) = parse_attributes(attrs)?;
    let transform = Transform {
        ttype: ttype.into(),
        id,
        key_len,
        unknown_attrs,
    };
    Ok((more, transform, after))
}

/// Decodes transform attributes (TV or TLV, RFC 7296 §3.3.5): the Key Length if present, and
/// whether any other attribute was seen.
fn parse_attributes(mut rest: &[u8]) -> Result<(Option<u16>, bool), DecodeError> {
    let mut key_len = None;
    let mut unknown = false;
    while !rest.is_empty() {
        let (after, (format_type, value)) = fields("transform attribute", rest, (be_u16, be_u16))?;
        let attr_type = format_type & !ATTR_TV;
        if format_type & ATTR_TV != 0 {
            rest = after;
            if attr_type != ATTR_KEY_LENGTH {
                unknown = true;
            } else if key_len.replace(value).is_some() {
                return Err(DecodeError::BadValue("duplicate Key Length attribute"));
            }
        } else {
            if attr_type == ATTR_KEY_LENGTH {
                return Err(DecodeError::BadValue("Key Length attribute in TLV format"));
            }
            let len = usize::from(value);
            let (_, after) = split("transform attribute value", after, len)?;
            rest = after;
            unknown = true;
        }
    }
    Ok((key_len, unknown))
}

/// Maps a Last Substruc octet to "more follow", accepting only 0 and `more_value`.
fn last_substruc(ctx: &'static str, value: u8, more_value: u8) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        v if v == more_value => Ok(true),
        _ => Err(DecodeError::BadValue(ctx)),
    }
}

/// Encodes one proposal with its Last Substruc marker and length.
fn emit_proposal(proposal: &Proposal, last: bool, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[
        if last { 0 } else { MORE_PROPOSALS },
        0,
        0,
        0,
        proposal.num,
        proposal.protocol.into(),
        len_u8("proposal SPI", proposal.spi.len()),
        len_u8("proposal transform count", proposal.transforms.len()),
    ]);
    out.extend_from_slice(&proposal.spi);
    for (i, transform) in proposal.transforms.iter().enumerate() {
        emit_transform(transform, i + 1 == proposal.transforms.len(), out);
    }
    patch_len("proposal", out, start);
}

/// Encodes one transform with its Last Substruc marker, length and Key Length attribute.
fn emit_transform(transform: &Transform, last: bool, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[if last { 0 } else { MORE_TRANSFORMS }, 0, 0, 0]);
    out.push(transform.ttype.into());
    out.push(0);
    out.extend_from_slice(&transform.id.to_be_bytes());
    if let Some(bits) = transform.key_len {
        out.extend_from_slice(&(ATTR_TV | ATTR_KEY_LENGTH).to_be_bytes());
        out.extend_from_slice(&bits.to_be_bytes());
    }
    patch_len("transform", out, start);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ikev2::wire::{captures, strategies};

    /// The SA payload body of strongSwan's IKE_SA_INIT request (00_ike_sa_init_req.bin, octets
    /// 32..112): AES-CBC-128/HMAC-SHA2-256-128/PRF-HMAC-SHA2-256/ECP-256, then
    /// AES-GCM-16-256/PRF-HMAC-SHA2-384/Curve25519.
    fn captured_sa_body() -> &'static [u8] {
        &captures::PSK_INIT_REQ[32..112]
    }

    fn t(ttype: TransformType, id: u16, key_len: Option<u16>) -> Transform {
        Transform {
            ttype,
            id,
            key_len,
            unknown_attrs: false,
        }
    }

    #[test]
    fn parses_captured_proposals() {
        let proposals = parse(captured_sa_body()).unwrap();
        assert_eq!(
            proposals,
            vec![
                Proposal {
                    num: 1,
                    protocol: ProtocolId::Ike,
                    spi: vec![],
                    transforms: vec![
                        t(TransformType::Encr, 12, Some(128)),
                        t(TransformType::Integ, 12, None),
                        t(TransformType::Prf, 5, None),
                        t(TransformType::Dh, 19, None),
                    ],
                },
                Proposal {
                    num: 2,
                    protocol: ProtocolId::Ike,
                    spi: vec![],
                    transforms: vec![
                        t(TransformType::Encr, 20, Some(256)),
                        t(TransformType::Prf, 6, None),
                        t(TransformType::Dh, 31, None),
                    ],
                },
            ]
        );
    }

    #[test]
    fn emit_reproduces_captured_proposals() {
        let mut out = Vec::new();
        emit(&parse(captured_sa_body()).unwrap(), &mut out);
        assert_eq!(out, captured_sa_body());
    }

    /// A one-proposal ESP SA body with SPI 0x01020304 and one ENCR transform; `attrs` appended
    /// to the transform.
    fn esp_body(attrs: &[u8]) -> Vec<u8> {
        let tlen = (8 + attrs.len()) as u16;
        let plen = 8 + 4 + tlen;
        let mut b = vec![0, 0];
        b.extend_from_slice(&plen.to_be_bytes());
        b.extend_from_slice(&[1, 3, 4, 1, 1, 2, 3, 4, 0, 0]);
        b.extend_from_slice(&tlen.to_be_bytes());
        b.extend_from_slice(&[1, 0, 0, 20]);
        b.extend_from_slice(attrs);
        b
    }

    #[test]
    fn parses_esp_proposal_with_spi() {
        let p = parse(&esp_body(&[0x80, 14, 0, 128])).unwrap();
        assert_eq!(p[0].protocol, ProtocolId::Esp);
        assert_eq!(p[0].spi, [1, 2, 3, 4]);
        assert_eq!(p[0].transforms, [t(TransformType::Encr, 20, Some(128))]);
    }

    #[test]
    fn unknown_attributes_mark_the_transform() {
        // An unknown TV attribute (type 15) and an unknown TLV attribute (type 16, 3 octets).
        let body = esp_body(&[0x80, 15, 0, 1, 0, 16, 0, 3, 9, 9, 9, 0x80, 14, 0, 192]);
        let tr = &parse(&body).unwrap()[0].transforms[0];
        assert!(tr.unknown_attrs);
        assert_eq!(tr.key_len, Some(192));
    }

    #[test]
    fn malformed_attributes_are_rejected() {
        let cases: [(&[u8], DecodeError); 4] = [
            (&[0x80, 14], DecodeError::Truncated("transform attribute")),
            (
                &[0, 16, 0, 5, 1],
                DecodeError::Truncated("transform attribute value"),
            ),
            (
                &[0, 14, 0, 2, 0, 128],
                DecodeError::BadValue("Key Length attribute in TLV format"),
            ),
            (
                &[0x80, 14, 0, 128, 0x80, 14, 0, 128],
                DecodeError::BadValue("duplicate Key Length attribute"),
            ),
        ];
        for (attrs, err) in cases {
            assert_eq!(parse(&esp_body(attrs)), Err(err), "{attrs:?}");
        }
    }

    #[test]
    fn proposal_length_must_fit_header_spi_and_payload() {
        let mut body = esp_body(&[]);
        body[2..4].copy_from_slice(&11u16.to_be_bytes()); // < 8 + SPI size 4
        assert_eq!(parse(&body), Err(DecodeError::BadLength("proposal", 11)));
        body[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse(&body), Err(DecodeError::BadLength("proposal", 200)));
        assert_eq!(parse(&body[..5]), Err(DecodeError::Truncated("proposal")));
    }

    #[test]
    fn spi_size_larger_than_proposal_is_rejected() {
        let mut body = esp_body(&[]);
        body[6] = 17; // 8 + 17 > proposal length 20
        assert_eq!(parse(&body), Err(DecodeError::BadLength("proposal", 20)));
    }

    #[test]
    fn transform_length_must_fit() {
        let mut body = esp_body(&[]);
        body[14..16].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(parse(&body), Err(DecodeError::BadLength("transform", 7)));
        body[14..16].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(parse(&body), Err(DecodeError::BadLength("transform", 9)));
    }

    #[test]
    fn transform_count_must_match() {
        let mut body = esp_body(&[]);
        body[7] = 2;
        assert_eq!(
            parse(&body),
            Err(DecodeError::BadValue("proposal: Num Transforms"))
        );
    }

    #[test]
    fn last_substruc_markers_are_checked() {
        let mut body = esp_body(&[]);
        body[0] = 2; // "more proposals", but the payload ends
        assert_eq!(parse(&body), Err(DecodeError::Truncated("SA payload")));
        body[0] = 1;
        assert_eq!(
            parse(&body),
            Err(DecodeError::BadValue("proposal Last Substruc"))
        );
        body[0] = 0;
        body[12] = 3; // "more transforms", but the proposal ends
        assert_eq!(
            parse(&body),
            Err(DecodeError::Truncated("proposal transforms"))
        );
        body[12] = 2;
        assert_eq!(
            parse(&body),
            Err(DecodeError::BadValue("transform Last Substruc"))
        );
    }

    #[test]
    fn bytes_after_last_proposal_are_trailing() {
        let mut body = esp_body(&[]);
        body.push(0);
        assert_eq!(parse(&body), Err(DecodeError::Trailing("SA payload")));
    }

    #[test]
    fn empty_sa_is_truncated() {
        assert_eq!(parse(&[]), Err(DecodeError::Truncated("proposal")));
    }

    #[test]
    fn registries_display_rfc_names() {
        assert_eq!(ProtocolId::Esp.to_string(), "ESP");
        assert_eq!(ProtocolId::from(0), ProtocolId::None);
        assert_eq!(TransformType::Dh.to_string(), "D-H");
        assert_eq!(TransformType::from(6), TransformType::Unknown(6));
    }

    proptest! {
        #[test]
        fn proposals_round_trip(proposals in prop::collection::vec(strategies::proposal(), 1..4)) {
            let mut out = Vec::new();
            emit(&proposals, &mut out);
            prop_assert_eq!(parse(&out), Ok(proposals));
        }
    }
}
