//! The payload chain: generic payload headers, dispatch to body codecs, unknown-payload rules
//! ([RFC 7296 §3.2](https://www.rfc-editor.org/rfc/rfc7296#section-3.2), §2.5).
//!
//! The only module that reads or writes the next-payload, critical and length fields.

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u16};

use super::{
    AuthPayload, DecodeError, DeletePayload, IdPayload, KePayload, NotifyPayload, Proposal,
    SkPayload, TrafficSelector, auth, delete, end, fields, id, ke, len_u16, nonce, notify,
    patch_u16, sa, split, ts,
};

open_enum! {
    /// Payload Type (RFC 7296 §3.2). `Display` prints charon's abbreviation (`SA`, `No`,
    /// `TSi`, ..), the vocabulary of message summaries.
    pub enum PayloadType(u8) {
        /// No Next Payload: the chain ends.
        None = 0 => "NONE",
        /// Security Association.
        Sa = 33 => "SA",
        /// Key Exchange.
        Ke = 34 => "KE",
        /// Identification - Initiator.
        IdI = 35 => "IDi",
        /// Identification - Responder.
        IdR = 36 => "IDr",
        /// Certificate.
        Cert = 37 => "CERT",
        /// Certificate Request.
        CertReq = 38 => "CERTREQ",
        /// Authentication.
        Auth = 39 => "AUTH",
        /// Nonce.
        Nonce = 40 => "No",
        /// Notify.
        Notify = 41 => "N",
        /// Delete.
        Delete = 42 => "D",
        /// Vendor ID.
        VendorId = 43 => "V",
        /// Traffic Selector - Initiator.
        TsI = 44 => "TSi",
        /// Traffic Selector - Responder.
        TsR = 45 => "TSr",
        /// Encrypted and Authenticated.
        Sk = 46 => "E",
        /// Configuration.
        Cp = 47 => "CP",
        /// Extensible Authentication.
        Eap = 48 => "EAP",
        /// Encrypted and Authenticated Fragment (RFC 7383).
        Skf = 53 => "EF",
    }
}

/// One decoded payload (everything but SK, which [`Message`](super::Message) keeps opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// SA: proposals in wire order.
    Sa(Vec<Proposal>),
    /// KE.
    Ke(KePayload),
    /// IDi.
    IdI(IdPayload),
    /// IDr.
    IdR(IdPayload),
    /// AUTH.
    Auth(AuthPayload),
    /// Nonce data (16..=256 octets).
    Nonce(Vec<u8>),
    /// Notify.
    Notify(NotifyPayload),
    /// Delete.
    Delete(DeletePayload),
    /// TSi.
    TsI(Vec<TrafficSelector>),
    /// TSr.
    TsR(Vec<TrafficSelector>),
    /// Vendor ID: opaque.
    VendorId(Vec<u8>),
    /// CERTREQ body (encoding + CA hashes), opaque for now.
    CertReq(Vec<u8>),
    /// A payload this codec does not decode: an unknown type sent non-critical (skipped by the
    /// state machines, RFC 7296 §2.5), or a known type without a typed form here (CERT, CP,
    /// EAP). Kept whole so it can be logged and re-emitted.
    Unknown {
        /// Its type.
        ptype: PayloadType,
        /// Its critical bit.
        critical: bool,
        /// Its body after the generic header.
        body: Vec<u8>,
    },
}

impl Payload {
    /// The Payload Type this payload is sent as.
    #[must_use]
    pub fn ptype(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::Sa,
            Self::Ke(_) => PayloadType::Ke,
            Self::IdI(_) => PayloadType::IdI,
            Self::IdR(_) => PayloadType::IdR,
            Self::Auth(_) => PayloadType::Auth,
            Self::Nonce(_) => PayloadType::Nonce,
            Self::Notify(_) => PayloadType::Notify,
            Self::Delete(_) => PayloadType::Delete,
            Self::TsI(_) => PayloadType::TsI,
            Self::TsR(_) => PayloadType::TsR,
            Self::VendorId(_) => PayloadType::VendorId,
            Self::CertReq(_) => PayloadType::CertReq,
            Self::Unknown { ptype, .. } => *ptype,
        }
    }

    /// The critical bit to send: set only if an `Unknown` payload carried it; RFC 7296 §3.2
    /// "MUST be set to zero" for the payloads it defines.
    fn critical(&self) -> bool {
        matches!(self, Self::Unknown { critical: true, .. })
    }
}

/// Decodes a payload chain starting with a payload of type `first`, up to "No Next Payload".
///
/// Used on a plaintext message's payloads (via [`Message::parse`](super::Message::parse)) and
/// on decrypted SK contents (the caller strips padding and the Pad Length octet first).
///
/// Unknown payloads (RFC 7296 §2.5): "If the critical flag is set and the payload type is
/// unrecognized, the message MUST be rejected"; an unknown non-critical payload becomes
/// [`Payload::Unknown`] and is skipped by the state machines.
///
/// # Errors
/// `Truncated`/`BadLength` for a generic header that does not fit (length below 4 or beyond
/// the input), `Trailing` for bytes after the last payload, `UnknownCritical(type)`, any body
/// error, `BadValue` for an SK payload (SK cannot be nested) or an SKF payload (see
/// [`Message::parse`](super::Message::parse)).
pub fn parse_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    match walk(first, bytes, 0)? {
        (payloads, None) => Ok(payloads),
        (_, Some(_)) => Err(DecodeError::BadValue("SK payload inside SK payload")),
    }
}

/// Encodes `payloads` as a chain (generic headers, lengths, next-payload links) onto `out`.
///
/// Returns the first payload's type, for the IKE header or the SK payload's Next Payload
/// field ([`PayloadType::None`] if `payloads` is empty).
///
/// # Panics
/// If a payload body exceeds 65531 octets, or a count/size field overflows (see the body
/// codecs): values a caller built wrongly, never parsed ones.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> PayloadType {
    let mut writer = ChainWriter::new(out);
    for payload in payloads {
        writer.push(payload);
    }
    writer.finish()
}

/// Walks a chain; an SK payload ends it and is returned separately.
///
/// `base` is the offset of `bytes` inside the datagram, for [`SkPayload::header_offset`].
pub(super) fn walk(
    first: PayloadType,
    bytes: &[u8],
    base: usize,
) -> Result<(Vec<Payload>, Option<SkPayload>), DecodeError> {
    let mut payloads = Vec::new();
    let mut next = PayloadType::from(u8::from(first));
    let mut rest = bytes;
    while next != PayloadType::None {
        let (after, (next_type, flags, len)) =
            fields("generic payload header", rest, (be_u8, be_u8, be_u16))?;
        let len = usize::from(len);
        if len < GENERIC_HEADER_LEN || len > rest.len() {
            return Err(DecodeError::BadLength("payload", len));
        }
        let critical = flags & CRITICAL != 0;
        let (body, after) = split("payload", after, len - GENERIC_HEADER_LEN)?;
        if next == PayloadType::Sk {
            // RFC 7296 §3.14: "the Encrypted payload ... MUST be the last payload".
            end("SK payload", after)?;
            let sk = SkPayload {
                first_inner: next_type.into(),
                critical,
                header_offset: base + (bytes.len() - rest.len()),
                body: body.to_vec(),
            };
            return Ok((payloads, Some(sk)));
        }
        payloads.push(parse_body(next, critical, body)?);
        next = next_type.into();
        rest = after;
    }
    end("payload chain", rest)?;
    Ok((payloads, None))
}

/// Generic payload header length.
pub(super) const GENERIC_HEADER_LEN: usize = 4;
/// The Critical bit in the generic header's second octet.
const CRITICAL: u8 = 0x80;

/// Writes generic payload headers and links each payload's Next Payload field to the next one.
pub(super) struct ChainWriter<'a> {
    /// Where the chain goes.
    out: &'a mut Vec<u8>,
    /// Type of the first payload written.
    first: PayloadType,
    /// Offset of the previous payload's Next Payload octet, to backpatch.
    link: Option<usize>,
}

impl<'a> ChainWriter<'a> {
    /// Starts an empty chain at the end of `out`.
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            first: PayloadType::None,
            link: None,
        }
    }

    /// Appends a decoded payload.
    pub(super) fn push(&mut self, payload: &Payload) {
        self.push_raw(
            payload.ptype(),
            payload.critical(),
            PayloadType::None,
            |out| {
                emit_body(payload, out);
            },
        );
    }

    /// Appends the SK payload, which ends the chain: its Next Payload field names the first
    /// inner payload. Returns the chain's first type.
    pub(super) fn finish_with_sk(
        mut self,
        first_inner: PayloadType,
        critical: bool,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> PayloadType {
        self.push_raw(PayloadType::Sk, critical, first_inner, body);
        self.first
    }

    /// Ends the chain; returns its first type.
    pub(super) fn finish(self) -> PayloadType {
        self.first
    }

    /// Writes one generic header, the body, then backpatches the length and links the
    /// previous payload to this one.
    fn push_raw(
        &mut self,
        ptype: PayloadType,
        critical: bool,
        next: PayloadType,
        body: impl FnOnce(&mut Vec<u8>),
    ) {
        match self.link {
            Some(at) => {
                if let Some(slot) = self.out.get_mut(at) {
                    *slot = ptype.into();
                }
            }
            None => self.first = ptype,
        }
        let start = self.out.len();
        let flags = if critical { CRITICAL } else { 0 };
        self.out.extend_from_slice(&[next.into(), flags, 0, 0]);
        body(self.out);
        let len = len_u16("payload", self.out.len() - start);
        patch_u16(self.out, start + 2, len);
        self.link = Some(start);
    }
}

/// Decodes one payload body by type.
fn parse_body(ptype: PayloadType, critical: bool, body: &[u8]) -> Result<Payload, DecodeError> {
    Ok(match ptype {
        PayloadType::Sa => Payload::Sa(sa::parse(body)?),
        PayloadType::Ke => Payload::Ke(ke::parse(body)?),
        PayloadType::IdI => Payload::IdI(id::parse(body)?),
        PayloadType::IdR => Payload::IdR(id::parse(body)?),
        PayloadType::Auth => Payload::Auth(auth::parse(body)?),
        PayloadType::Nonce => Payload::Nonce(nonce::parse(body)?),
        PayloadType::Notify => Payload::Notify(notify::parse(body)?),
        PayloadType::Delete => Payload::Delete(delete::parse(body)?),
        PayloadType::TsI => Payload::TsI(ts::parse(body)?),
        PayloadType::TsR => Payload::TsR(ts::parse(body)?),
        PayloadType::VendorId => Payload::VendorId(body.to_vec()),
        PayloadType::CertReq => Payload::CertReq(body.to_vec()),
        PayloadType::Skf => {
            return Err(DecodeError::BadValue(
                "SKF payload (IKE fragmentation, RFC 7383, not supported)",
            ));
        }
        PayloadType::Unknown(n) if critical => return Err(DecodeError::UnknownCritical(n)),
        other => Payload::Unknown {
            ptype: other,
            critical,
            body: body.to_vec(),
        },
    })
}

/// Encodes one payload body by variant.
fn emit_body(payload: &Payload, out: &mut Vec<u8>) {
    match payload {
        Payload::Sa(proposals) => sa::emit(proposals, out),
        Payload::Ke(ke) => ke::emit(ke, out),
        Payload::IdI(id) | Payload::IdR(id) => id::emit(id, out),
        Payload::Auth(auth) => auth::emit(auth, out),
        Payload::Nonce(nonce) => nonce::emit(nonce, out),
        Payload::Notify(notify) => notify::emit(notify, out),
        Payload::Delete(delete) => delete::emit(delete, out),
        Payload::TsI(ts) | Payload::TsR(ts) => ts::emit(ts, out),
        Payload::VendorId(body) | Payload::CertReq(body) | Payload::Unknown { body, .. } => {
            out.extend_from_slice(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ikev2::wire::{IdType, NotifyType, ProtocolId, captures, strategies};

    fn notify(ntype: NotifyType) -> Payload {
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::None,
            spi: vec![],
            ntype,
            data: vec![],
        })
    }

    #[test]
    fn emit_links_payloads_and_sets_lengths() {
        let payloads = [
            notify(NotifyType::InitialContact),
            Payload::IdI(IdPayload {
                id_type: IdType::Fqdn,
                data: b"a".to_vec(),
            }),
        ];
        let mut out = vec![0xee];
        let first = emit_chain(&payloads, &mut out);
        assert_eq!(first, PayloadType::Notify);
        assert_eq!(
            out,
            [
                0xee, 35, 0, 0, 8, 0, 0, 0x40, 0, 0, 0, 0, 9, 2, 0, 0, 0, b'a'
            ]
        );
        assert_eq!(parse_chain(first, &out[1..]), Ok(payloads.to_vec()));
    }

    #[test]
    fn empty_chain() {
        let mut out = Vec::new();
        assert_eq!(emit_chain(&[], &mut out), PayloadType::None);
        assert!(out.is_empty());
        assert_eq!(parse_chain(PayloadType::None, &[]), Ok(vec![]));
        assert_eq!(
            parse_chain(PayloadType::None, &[0]),
            Err(DecodeError::Trailing("payload chain"))
        );
    }

    #[test]
    fn unknown_non_critical_payload_is_kept() {
        let bytes = [0, 0, 0, 6, 0xaa, 0xbb];
        let payloads = parse_chain(PayloadType::from(200), &bytes).unwrap();
        assert_eq!(
            payloads,
            [Payload::Unknown {
                ptype: PayloadType::Unknown(200),
                critical: false,
                body: vec![0xaa, 0xbb],
            }]
        );
        let mut out = Vec::new();
        emit_chain(&payloads, &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn unknown_critical_payload_is_rejected() {
        let bytes = [0, 0x80, 0, 4];
        assert_eq!(
            parse_chain(PayloadType::from(200), &bytes),
            Err(DecodeError::UnknownCritical(200))
        );
    }

    #[test]
    fn known_untyped_payload_with_critical_bit_is_kept() {
        // CERT is a known type; its critical bit is ignored, not an error.
        let bytes = [0, 0x80, 0, 5, 4];
        assert_eq!(
            parse_chain(PayloadType::Cert, &bytes),
            Ok(vec![Payload::Unknown {
                ptype: PayloadType::Cert,
                critical: true,
                body: vec![4],
            }])
        );
    }

    #[test]
    fn generic_length_must_cover_header_and_fit() {
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[0, 0, 0, 3]),
            Err(DecodeError::BadLength("payload", 3))
        );
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[0, 0, 0, 9, 1]),
            Err(DecodeError::BadLength("payload", 9))
        );
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[0, 0, 0]),
            Err(DecodeError::Truncated("generic payload header"))
        );
    }

    #[test]
    fn next_payload_pointing_past_the_end_is_truncated() {
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[43, 0, 0, 4]),
            Err(DecodeError::Truncated("generic payload header"))
        );
    }

    #[test]
    fn body_errors_propagate() {
        assert_eq!(
            parse_chain(PayloadType::Nonce, &[0, 0, 0, 5, 1]),
            Err(DecodeError::BadLength("Nonce", 1))
        );
    }

    #[test]
    fn sk_cannot_be_nested() {
        assert_eq!(
            parse_chain(PayloadType::Sk, &[33, 0, 0, 4]),
            Err(DecodeError::BadValue("SK payload inside SK payload"))
        );
    }

    #[test]
    fn skf_is_not_supported() {
        assert!(matches!(
            parse_chain(PayloadType::Skf, &[33, 0, 0, 12, 0, 1, 0, 1, 1, 2, 3, 4]),
            Err(DecodeError::BadValue(_))
        ));
    }

    #[test]
    fn display_is_charon_abbreviation() {
        let names: Vec<String> = [
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53,
        ]
        .into_iter()
        .map(|n| PayloadType::from(n).to_string())
        .collect();
        assert_eq!(
            names.join(" "),
            "SA KE IDi IDr CERT CERTREQ AUTH No N D V TSi TSr E CP EAP EF"
        );
        assert_eq!(PayloadType::from(49).to_string(), "49");
    }

    /// Every decrypted inner chain of both strongSwan captures (decrypted by
    /// testdata/extract.py with strongSwan's logged keys) parses and re-emits byte for byte.
    #[test]
    fn captured_inner_chains_round_trip() {
        for (name, first, inner) in captures::inner_chains() {
            let payloads = parse_chain(first, inner).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut out = Vec::new();
            assert_eq!(emit_chain(&payloads, &mut out), first, "{name}");
            assert_eq!(out, inner, "{name}");
        }
    }

    proptest! {
        #[test]
        fn chains_round_trip(payloads in prop::collection::vec(strategies::payload(), 0..8)) {
            let mut out = Vec::new();
            let first = emit_chain(&payloads, &mut out);
            prop_assert_eq!(parse_chain(first, &out), Ok(payloads));
        }
    }
}
