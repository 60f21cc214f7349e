//! The payload chain ([RFC 2408 §3.2](https://www.rfc-editor.org/rfc/rfc2408#section-3.2)):
//! generic headers, dispatch to the body codecs, the unknown-payload rule.
//!
//! The only module that reads or writes the next-payload and length fields of the generic
//! header. ISAKMP payloads are not padded: each starts where the previous one ends.

use crate::open_enum;
use std::borrow::Cow;

use super::header::generic;
use super::{
    DecodeError, DeletePayload, GenericHeader, IdPayload, NotifyPayload, SaPayload, delete, end,
    id, notify, patch_len, sa, split,
};

open_enum! {
    /// Next Payload Type (RFC 2408 §3.1; 20/21 from RFC 3947). `Display` prints the short
    /// names IKEv1 logs use (`SA`, `KE`, `NONCE`, ...).
    pub enum PayloadType(u8) {
        /// No next payload: the chain ends.
        None = 0 => "NONE",
        /// Security Association.
        Sa = 1 => "SA",
        /// Proposal (only inside SA).
        Proposal = 2 => "P",
        /// Transform (only inside a Proposal).
        Transform = 3 => "T",
        /// Key Exchange.
        Ke = 4 => "KE",
        /// Identification.
        Id = 5 => "ID",
        /// Certificate.
        Cert = 6 => "CERT",
        /// Certificate Request.
        CertReq = 7 => "CR",
        /// Hash.
        Hash = 8 => "HASH",
        /// Signature.
        Sig = 9 => "SIG",
        /// Nonce.
        Nonce = 10 => "NONCE",
        /// Notification.
        Notification = 11 => "N",
        /// Delete.
        Delete = 12 => "D",
        /// Vendor ID.
        VendorId = 13 => "VID",
        /// NAT Discovery (RFC 3947).
        NatD = 20 => "NAT-D",
        /// NAT Original Address (RFC 3947).
        NatOa = 21 => "NAT-OA",
    }
}

/// One decoded payload. Byte fields borrow from the parsed input (`Cow::Borrowed`) or own
/// what a sender built (`Cow::Owned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Security Association.
    Sa(SaPayload<'a>),
    /// Key Exchange data (the DH public value, RFC 2408 §3.7).
    Ke(Cow<'a, [u8]>),
    /// Identification (IPsec DOI, RFC 2407 §4.6.2).
    Id(IdPayload<'a>),
    /// Hash data (RFC 2408 §3.11).
    Hash(Cow<'a, [u8]>),
    /// Nonce data, 8..=256 octets (RFC 2409 §5).
    Nonce(Cow<'a, [u8]>),
    /// Notification.
    Notification(NotifyPayload<'a>),
    /// Delete.
    Delete(DeletePayload<'a>),
    /// A payload of a known type without a typed form here (CERT, CR, SIG, VID, NAT-D,
    /// NAT-OA): kept whole so it can be logged and re-emitted.
    Other {
        /// Its type.
        ptype: PayloadType,
        /// Its body after the generic header.
        body: Cow<'a, [u8]>,
    },
}

impl Payload<'_> {
    /// The Next Payload value this payload is announced with.
    #[must_use]
    pub fn ptype(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::Sa,
            Self::Ke(_) => PayloadType::Ke,
            Self::Id(_) => PayloadType::Id,
            Self::Hash(_) => PayloadType::Hash,
            Self::Nonce(_) => PayloadType::Nonce,
            Self::Notification(_) => PayloadType::Notification,
            Self::Delete(_) => PayloadType::Delete,
            Self::Other { ptype, .. } => *ptype,
        }
    }

    /// Copies every borrowed byte field, detaching the payload from the parsed buffer (for
    /// state that outlives the datagram).
    #[must_use]
    pub fn into_owned(self) -> Payload<'static> {
        match self {
            Self::Sa(sa) => Payload::Sa(sa.into_owned()),
            Self::Ke(b) => Payload::Ke(Cow::Owned(b.into_owned())),
            Self::Id(id) => Payload::Id(id.into_owned()),
            Self::Hash(b) => Payload::Hash(Cow::Owned(b.into_owned())),
            Self::Nonce(b) => Payload::Nonce(Cow::Owned(b.into_owned())),
            Self::Notification(n) => Payload::Notification(n.into_owned()),
            Self::Delete(d) => Payload::Delete(d.into_owned()),
            Self::Other { ptype, body } => Payload::Other {
                ptype,
                body: Cow::Owned(body.into_owned()),
            },
        }
    }
}

/// Walks a payload chain without decoding bodies: yields `(type, body)` pairs borrowed from
/// the input, then checks that nothing follows the last payload.
///
/// After the first error the iterator is exhausted.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    /// Type of the payload at the front of `rest`; `None` once the chain ended.
    next: PayloadType,
    /// Bytes not walked yet.
    rest: &'a [u8],
    /// Set after an error or the end, so the iterator is fused.
    done: bool,
}

impl<'a> PayloadIter<'a> {
    /// Starts a walk of `bytes`, whose first payload has type `first` (from the ISAKMP header,
    /// or the KINK_ISAKMP payload's InnerNextPload).
    #[must_use]
    pub fn new(first: PayloadType, bytes: &'a [u8]) -> Self {
        Self {
            next: first,
            rest: bytes,
            done: false,
        }
    }

    /// One step: the payload at the front, or the end-of-chain check.
    fn step(&mut self) -> Result<Option<(PayloadType, &'a [u8])>, DecodeError> {
        if self.next == PayloadType::None {
            end("payload chain", self.rest)?;
            return Ok(None);
        }
        let (next, len) = generic(self.rest)?;
        let len = usize::from(len);
        if len < GenericHeader::<&[u8]>::LEN || len > self.rest.len() {
            return Err(DecodeError::BadLength("payload", len));
        }
        let (payload, after) = split("payload", self.rest, len)?;
        let (_, body) = split("payload", payload, GenericHeader::<&[u8]>::LEN)?;
        let ptype = self.next;
        self.next = next.into();
        self.rest = after;
        Ok(Some((ptype, body)))
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<(PayloadType, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes a whole payload chain starting with a payload of type `first`.
///
/// # Errors
/// Any generic-header or body error; `InvalidPayloadType(n)` for a reserved or unknown type,
/// and for Proposal/Transform outside an SA payload; `Trailing` for bytes after the payload
/// whose Next Payload is NONE.
pub fn parse_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload<'_>>, DecodeError> {
    PayloadIter::new(first, bytes)
        .map(|item| item.and_then(|(ptype, body)| parse_body(ptype, body)))
        .collect()
}

/// Encodes `payloads` as a chain onto `out` and returns the type of the first one (for the
/// ISAKMP header or the KINK_ISAKMP payload; [`PayloadType::None`] when empty).
///
/// # Panics
/// If a body exceeds 65531 octets or a count/size field overflows: a caller's construction
/// error, never a parsed value.
pub fn emit_chain(payloads: &[Payload<'_>], out: &mut Vec<u8>) -> PayloadType {
    let mut link: Option<usize> = None;
    let mut first = PayloadType::None;
    for payload in payloads {
        let ptype = payload.ptype();
        match link {
            Some(at) => {
                if let Some(slot) = out.get_mut(at) {
                    *slot = ptype.into();
                }
            }
            None => first = ptype,
        }
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]);
        emit_body(payload, out);
        patch_len("payload", out, start);
        link = Some(start);
    }
    first
}

/// Decodes one body by type.
fn parse_body(ptype: PayloadType, body: &[u8]) -> Result<Payload<'_>, DecodeError> {
    Ok(match ptype {
        PayloadType::Sa => Payload::Sa(sa::parse(body)?),
        PayloadType::Ke => Payload::Ke(Cow::Borrowed(body)),
        PayloadType::Id => Payload::Id(id::parse(body)?),
        PayloadType::Hash => Payload::Hash(Cow::Borrowed(body)),
        PayloadType::Nonce => Payload::Nonce(Cow::Borrowed(nonce(body)?)),
        PayloadType::Notification => Payload::Notification(notify::parse(body)?),
        PayloadType::Delete => Payload::Delete(delete::parse(body)?),
        PayloadType::Cert
        | PayloadType::CertReq
        | PayloadType::Sig
        | PayloadType::VendorId
        | PayloadType::NatD
        | PayloadType::NatOa => Payload::Other {
            ptype,
            body: Cow::Borrowed(body),
        },
        // Proposal and Transform are substructures of SA, never chain members.
        other => return Err(DecodeError::InvalidPayloadType(other.into())),
    })
}

/// Checks the nonce length: "The length of nonce payload MUST be between 8 and 256 bytes
/// inclusive" (RFC 2409 §5).
fn nonce(body: &[u8]) -> Result<&[u8], DecodeError> {
    if (8..=256).contains(&body.len()) {
        Ok(body)
    } else {
        Err(DecodeError::BadLength("Nonce", body.len()))
    }
}

/// Encodes one body by variant.
fn emit_body(payload: &Payload<'_>, out: &mut Vec<u8>) {
    match payload {
        Payload::Sa(sa) => sa.emit(out),
        Payload::Id(id) => id.emit(out),
        Payload::Notification(n) => n.emit(out),
        Payload::Delete(d) => d.emit(out),
        Payload::Ke(b) | Payload::Hash(b) | Payload::Nonce(b) | Payload::Other { body: b, .. } => {
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::{NotifyType, ProtocolId, strategies};

    #[test]
    fn emit_links_payloads_and_sets_lengths() {
        let payloads = [
            Payload::Nonce(Cow::Borrowed(&[7; 8])),
            Payload::Hash(Cow::Borrowed(&[1, 2])),
        ];
        let mut out = Vec::new();
        assert_eq!(emit_chain(&payloads, &mut out), PayloadType::Nonce);
        let mut expected = vec![8, 0, 0, 12];
        expected.extend_from_slice(&[7; 8]);
        expected.extend_from_slice(&[0, 0, 0, 6, 1, 2]);
        assert_eq!(out, expected);
        assert_eq!(parse_chain(PayloadType::Nonce, &out).unwrap(), payloads);
    }

    #[test]
    fn iterator_yields_borrowed_bodies() {
        let bytes = [13, 0, 0, 5, 0xaa, 0, 0, 0, 6, 1, 2];
        let items: Vec<_> = PayloadIter::new(PayloadType::VendorId, &bytes)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            items,
            [
                (PayloadType::VendorId, &[0xaa][..]),
                (PayloadType::VendorId, &[1, 2][..])
            ]
        );
    }

    #[test]
    fn empty_chain_and_trailing_bytes() {
        assert_eq!(parse_chain(PayloadType::None, &[]), Ok(vec![]));
        assert_eq!(
            parse_chain(PayloadType::None, &[0]),
            Err(DecodeError::Trailing("payload chain"))
        );
        assert_eq!(
            DecodeError::Trailing("payload chain").notify(),
            NotifyType::PayloadMalformed
        );
    }

    #[test]
    fn unknown_or_misplaced_types_are_invalid_payload_type() {
        for t in [2u8, 3, 14, 19, 22, 127, 128, 255] {
            assert_eq!(
                parse_chain(PayloadType::from(t), &[0, 0, 0, 4]),
                Err(DecodeError::InvalidPayloadType(t))
            );
        }
        assert_eq!(
            DecodeError::InvalidPayloadType(14).notify(),
            NotifyType::InvalidPayloadType
        );
    }

    #[test]
    fn next_payload_of_a_later_payload_is_checked_too() {
        // VID then a payload announced as type 99.
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[99, 0, 0, 4, 0, 0, 0, 4]),
            Err(DecodeError::InvalidPayloadType(99))
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
        assert_eq!(
            parse_chain(PayloadType::VendorId, &[13, 0, 0, 4]),
            Err(DecodeError::Truncated("generic payload header"))
        );
    }

    #[test]
    fn nonce_length_is_8_to_256() {
        let mut bytes = vec![0, 0, 0, 11, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(
            parse_chain(PayloadType::Nonce, &bytes),
            Err(DecodeError::BadLength("Nonce", 7))
        );
        bytes.push(8);
        bytes[3] = 12;
        assert!(parse_chain(PayloadType::Nonce, &bytes).is_ok());
    }

    #[test]
    fn notify_then_delete_chain() {
        let payloads = vec![
            Payload::Notification(NotifyPayload {
                doi: 1,
                protocol: ProtocolId::Esp,
                spi: Cow::Borrowed(&[1, 2, 3, 4]),
                ntype: NotifyType::InitialContact,
                data: Cow::Borrowed(&[]),
            }),
            Payload::Delete(DeletePayload {
                doi: 1,
                protocol: ProtocolId::Esp,
                spi_size: 4,
                spis: vec![Cow::Borrowed(&[9, 9, 9, 9])],
            }),
        ];
        let mut out = Vec::new();
        let first = emit_chain(&payloads, &mut out);
        assert_eq!(parse_chain(first, &out).unwrap(), payloads);
    }

    #[test]
    fn display_is_short_name() {
        assert_eq!(PayloadType::Sa.to_string(), "SA");
        assert_eq!(PayloadType::from(10).to_string(), "NONCE");
        assert_eq!(PayloadType::from(99).to_string(), "99");
    }

    proptest! {
        #[test]
        fn chains_round_trip(payloads in prop::collection::vec(strategies::payload(), 0..6)) {
            let mut out = Vec::new();
            let first = emit_chain(&payloads, &mut out);
            let parsed = parse_chain(first, &out).unwrap();
            prop_assert_eq!(&parsed, &payloads);
            let mut again = Vec::new();
            emit_chain(&parsed, &mut again);
            prop_assert_eq!(again, out);
        }
    }
}
