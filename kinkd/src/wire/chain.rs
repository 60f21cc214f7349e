//! The KINK payload chain: generic headers, 4-octet alignment, placement rules
//! ([RFC 4430 §4.1](https://www.rfc-editor.org/rfc/rfc4430#section-4.1)).
//!
//! Each payload starts on a 4-octet boundary (counted from the start of the message, or of
//! KINK_ENCRYPT's plaintext); Payload Length excludes the zero padding that follows it.
//! racoon2 pads after the last payload only when a Cksum follows; receivers accept up to
//! `max_trailing` octets after the last payload. KINK_ENCRYPT must be the last payload and
//! cannot nest.
//!
//! The only code that reads or writes KINK Next Payload and Payload Length fields.

use nom::number::complete::{be_u8, be_u16};

use super::payload::{emit_body, parse_body};
use super::{DecodeError, Payload, PayloadType, fields, len_u16, pad4, patch_u16};

/// Generic payload header octets.
const GENERIC_LEN: usize = 4;

/// Where a chain is being read: the rules differ slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The message's own chain: KINK_ENCRYPT may appear, last; up to 3 padding octets end it.
    Outer,
    /// KINK_ENCRYPT's decrypted content: no KINK_ENCRYPT; up to 7 trailing octets (cipher
    /// padding of 8-octet-block enctypes).
    Encrypted,
}

impl Scope {
    /// Octets allowed after the last payload.
    fn max_trailing(self) -> usize {
        match self {
            Self::Outer => 3,
            Self::Encrypted => 7,
        }
    }
}

/// Decodes the chain in `region` whose first payload has type `first`.
pub(super) fn parse_chain(
    first: PayloadType,
    region: &[u8],
    scope: Scope,
) -> Result<Vec<Payload<'_>>, DecodeError> {
    let mut payloads = Vec::new();
    let mut next = first;
    let mut offset = 0;
    let mut end_of_last = 0;
    while next != PayloadType::Done {
        if payloads
            .last()
            .is_some_and(|p: &Payload<'_>| p.ptype() == PayloadType::Encrypt)
        {
            return Err(DecodeError::Misplaced("payload after KINK_ENCRYPT"));
        }
        if next == PayloadType::Encrypt && scope == Scope::Encrypted {
            return Err(DecodeError::Misplaced("KINK_ENCRYPT inside KINK_ENCRYPT"));
        }
        let rest = region
            .get(offset..)
            .ok_or(DecodeError::Truncated("KINK payload padding"))?;
        let (_, (next_type, _reserved, len)) =
            fields("KINK payload header", rest, (be_u8, be_u8, be_u16))?;
        let len = usize::from(len);
        if len < GENERIC_LEN || len > rest.len() {
            return Err(DecodeError::BadLength("KINK payload", len));
        }
        let body = rest
            .get(GENERIC_LEN..len)
            .ok_or(DecodeError::Truncated("KINK payload"))?;
        payloads.push(parse_body(next, body)?);
        next = next_type.into();
        end_of_last = offset + len;
        offset = end_of_last + pad4(end_of_last);
    }
    let trailing = region.len().saturating_sub(end_of_last);
    if trailing > scope.max_trailing() {
        return Err(DecodeError::Trailing("KINK payload chain"));
    }
    Ok(payloads)
}

/// Appends `payloads` as a chain to `out`, aligning each payload to 4 octets relative to
/// `base` (the offset where the message or plaintext starts), without padding after the last.
/// Returns the first payload's type ([`PayloadType::Done`] when empty).
///
/// # Panics
/// If a payload body exceeds 65531 octets (see [`len_u16`]).
pub(super) fn emit_chain(payloads: &[Payload<'_>], base: usize, out: &mut Vec<u8>) -> PayloadType {
    let mut first = PayloadType::Done;
    let mut link: Option<usize> = None;
    for payload in payloads {
        match link {
            Some(at) => {
                pad_to_4(base, out);
                if let Some(slot) = out.get_mut(at) {
                    *slot = payload.ptype().into();
                }
            }
            None => first = payload.ptype(),
        }
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]);
        emit_body(payload, out);
        let len = len_u16("KINK payload", out.len() - start);
        patch_u16(out, start + 2, len);
        link = Some(start);
    }
    first
}

/// Appends zero octets until `out.len() - base` is a multiple of four.
pub(super) fn pad_to_4(base: usize, out: &mut Vec<u8>) {
    let n = pad4(out.len().saturating_sub(base));
    out.resize(out.len() + n, 0);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;
    use crate::wire::{ErrorCode, strategies};

    #[test]
    fn payloads_are_padded_between_not_after() {
        let payloads = [
            Payload::KrbError(Cow::Borrowed(&[0x7e])),
            Payload::Error(ErrorCode::IntErr),
        ];
        let mut out = Vec::new();
        assert_eq!(emit_chain(&payloads, 0, &mut out), PayloadType::KrbError);
        assert_eq!(
            out,
            [8, 0, 0, 5, 0x7e, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 5],
            "KRB_ERROR (5 octets) + 3 padding, then KINK_ERROR"
        );
        assert_eq!(
            parse_chain(PayloadType::KrbError, &out, Scope::Outer).unwrap(),
            payloads
        );
    }

    #[test]
    fn alignment_is_relative_to_base() {
        let payloads = [
            Payload::TgtRep(Cow::Borrowed(&[1, 2])),
            Payload::TgtRep(Cow::Borrowed(&[3])),
        ];
        let mut out = vec![0xee; 2];
        emit_chain(&payloads, 2, &mut out);
        assert_eq!(&out[2..], [5, 0, 0, 6, 1, 2, 0, 0, 0, 0, 0, 5, 3]);
    }

    #[test]
    fn trailing_padding_is_bounded() {
        let one = [0, 0, 0, 5, 0x7e];
        let mut bytes = one.to_vec();
        for pad in 0..=3 {
            assert!(
                parse_chain(PayloadType::KrbError, &bytes, Scope::Outer).is_ok(),
                "{pad}"
            );
            bytes.push(0);
        }
        assert_eq!(
            parse_chain(PayloadType::KrbError, &bytes, Scope::Outer),
            Err(DecodeError::Trailing("KINK payload chain"))
        );
        bytes.extend_from_slice(&[0; 3]);
        assert!(parse_chain(PayloadType::KrbError, &bytes, Scope::Encrypted).is_ok());
        bytes.push(0);
        assert!(parse_chain(PayloadType::KrbError, &bytes, Scope::Encrypted).is_err());
    }

    #[test]
    fn missing_padding_before_a_next_payload_is_truncated() {
        // KRB_ERROR of 5 octets announcing a KINK_ERROR, but the region ends after 6 octets.
        let bytes = [8, 0, 0, 5, 0x7e, 0, 0, 0];
        assert_eq!(
            parse_chain(PayloadType::KrbError, &bytes, Scope::Outer),
            Err(DecodeError::Truncated("KINK payload header"))
        );
        let bytes = [8, 0, 0, 5, 0x7e];
        assert_eq!(
            parse_chain(PayloadType::KrbError, &bytes, Scope::Outer),
            Err(DecodeError::Truncated("KINK payload padding"))
        );
    }

    #[test]
    fn payload_length_must_cover_header_and_fit() {
        assert_eq!(
            parse_chain(PayloadType::KrbError, &[0, 0, 0, 3], Scope::Outer),
            Err(DecodeError::BadLength("KINK payload", 3))
        );
        assert_eq!(
            parse_chain(PayloadType::KrbError, &[0, 0, 0, 9, 0], Scope::Outer),
            Err(DecodeError::BadLength("KINK payload", 9))
        );
    }

    #[test]
    fn encrypt_must_be_last_and_not_nested() {
        let bytes = [3, 0, 0, 5, 0xaa, 0, 0, 0, 0, 0, 0, 4];
        assert_eq!(
            parse_chain(PayloadType::Encrypt, &bytes, Scope::Outer),
            Err(DecodeError::Misplaced("payload after KINK_ENCRYPT"))
        );
        assert_eq!(
            parse_chain(PayloadType::Encrypt, &bytes[..5], Scope::Encrypted),
            Err(DecodeError::Misplaced("KINK_ENCRYPT inside KINK_ENCRYPT"))
        );
        assert!(parse_chain(PayloadType::Encrypt, &[0, 0, 0, 5, 0xaa], Scope::Outer).is_ok());
    }

    #[test]
    fn unknown_payload_in_chain() {
        assert_eq!(
            parse_chain(
                PayloadType::KrbError,
                &[9, 0, 0, 4, 0, 0, 0, 4],
                Scope::Outer
            ),
            Err(DecodeError::UnknownPayload(9))
        );
    }

    proptest! {
        #[test]
        fn chains_round_trip(payloads in strategies::outer_chain()) {
            let mut out = Vec::new();
            let first = emit_chain(&payloads, 0, &mut out);
            prop_assert_eq!(parse_chain(first, &out, Scope::Outer).unwrap(), payloads);
        }
    }
}
