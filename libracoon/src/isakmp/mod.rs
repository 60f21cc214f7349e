//! ISAKMP payload codec ([RFC 2408](https://www.rfc-editor.org/rfc/rfc2408)) with the IPsec
//! DOI ([RFC 2407](https://www.rfc-editor.org/rfc/rfc2407)): the payloads of IKEv1 Quick Mode
//! ([RFC 2409 §5.5](https://www.rfc-editor.org/rfc/rfc2409#section-5.5)).
//!
//! Shared by KINK (RFC 4430 carries a chain of these payloads, without the ISAKMP header, in
//! its KINK_ISAKMP payload) and by IKEv1, so nothing here knows about either: no KINK
//! numbers, no exchange logic, no crypto.
//!
//! Layers, bottom up:
//! * [`IsakmpHeader`] and [`GenericHeader`]: fixed-size views, read without allocating.
//! * [`PayloadIter`]: walks a payload chain and yields `(type, body)` slices borrowed from the
//!   input; the only reader of the generic header's next-payload and length fields.
//! * Typed bodies ([`SaPayload`], [`IdPayload`], [`NotifyPayload`], [`DeletePayload`], ...)
//!   in [`Payload`], parsed by [`parse_chain`]. They borrow from the datagram (`Cow::Borrowed`)
//!   and can be built from owned data for sending; [`emit_chain`] writes them back, and is the
//!   only writer of next-payload and length fields.
//!
//! Every failure is a [`DecodeError`] with static context; [`DecodeError::notify`] names the
//! ISAKMP notify message type an IKEv1 or KINK peer expects for it (INVALID-PAYLOAD-TYPE,
//! PAYLOAD-MALFORMED, BAD-PROPOSAL-SYNTAX, ...). No input panics: the fuzz target
//! `isakmp_payloads` runs `fuzzing::payloads`.

// No panic on input: wire code never unwraps or indexes (tests may, hence `not(test)`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use nom::Parser;

mod attr;
mod chain;
mod delete;
mod header;
mod id;
mod notify;
mod sa;

#[cfg(test)]
mod captures;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
#[cfg(test)]
mod strategies;

pub use attr::{
    Attribute, AttributeValue, AuthAlgorithm, EncapsulationMode, IpsecAttrType, IpsecAttributes,
    LifeType,
};
pub use chain::{Payload, PayloadIter, PayloadType, emit_chain, parse_chain};
pub use delete::DeletePayload;
pub use header::{ExchangeType, GenericHeader, ISAKMP_HEADER_LEN, IsakmpHeader};
pub use id::{IdPayload, IdType, Identification};
pub use notify::{NotifyPayload, NotifyType};
pub use sa::{
    AhTransformId, EspTransformId, IPSEC_DOI, Proposal, ProtocolId, SIT_IDENTITY_ONLY, SaPayload,
    Transform,
};

/// Why ISAKMP bytes could not be decoded.
///
/// `Copy` with static context, so it travels into session errors and logs without
/// allocating. [`notify`](Self::notify) picks the notify message type a responder sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside the named structure.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length field of the named structure holds an impossible value (shown).
    #[error("bad length {1} in {0}")]
    BadLength(&'static str, usize),
    /// Bytes are left over after the named structure.
    #[error("trailing bytes after {0}")]
    Trailing(&'static str),
    /// A Next Payload field names a type that is reserved or unknown here (RFC 2408 §5.1:
    /// "If the Next Payload field value is not valid, then this message is discarded and the
    /// following Notify Message ... INVALID-PAYLOAD-TYPE").
    #[error("invalid payload type {0}")]
    InvalidPayloadType(u8),
    /// An SA payload's DOI is not the IPsec DOI (RFC 2408 §5.4: DOI-NOT-SUPPORTED).
    #[error("DOI {0} not supported")]
    DoiNotSupported(u32),
    /// An SA payload's Situation is not SIT_IDENTITY_ONLY (RFC 2408 §5.4,
    /// SITUATION-NOT-SUPPORTED; RFC 2407 §4.2: secrecy and integrity labels are not
    /// implemented).
    #[error("situation {0:#x} not supported")]
    SituationNotSupported(u32),
    /// A Proposal or Transform is malformed (RFC 2408 §5.4: BAD-PROPOSAL-SYNTAX).
    #[error("bad proposal syntax: {0}")]
    BadProposalSyntax(&'static str),
    /// An ID payload's data does not fit its ID type (RFC 2408 §5.6: INVALID-ID-INFORMATION).
    #[error("invalid ID information: {0}")]
    InvalidId(&'static str),
    /// A data attribute is malformed, duplicated or out of order (ATTRIBUTES-NOT-SUPPORTED).
    #[error("bad attribute: {0}")]
    BadAttribute(&'static str),
    /// The ISAKMP header's major version is not 1 (INVALID-MAJOR-VERSION).
    #[error("unsupported ISAKMP major version {0}")]
    BadVersion(u8),
    /// A field holds a value this codec cannot accept (named): PAYLOAD-MALFORMED.
    #[error("invalid {0}")]
    BadValue(&'static str),
}

impl DecodeError {
    /// The notify message type (RFC 2408 §3.14.1) to report this error to the peer.
    #[must_use]
    pub fn notify(self) -> NotifyType {
        match self {
            Self::InvalidPayloadType(_) => NotifyType::InvalidPayloadType,
            Self::DoiNotSupported(_) => NotifyType::DoiNotSupported,
            Self::SituationNotSupported(_) => NotifyType::SituationNotSupported,
            Self::BadProposalSyntax(_) => NotifyType::BadProposalSyntax,
            Self::InvalidId(_) => NotifyType::InvalidIdInformation,
            Self::BadAttribute(_) => NotifyType::AttributesNotSupported,
            Self::BadVersion(_) => NotifyType::InvalidMajorVersion,
            Self::Truncated(_) | Self::BadLength(..) | Self::Trailing(_) | Self::BadValue(_) => {
                NotifyType::PayloadMalformed
            }
        }
    }
}

impl From<DecodeError> for NotifyType {
    fn from(err: DecodeError) -> Self {
        err.notify()
    }
}

/// Runs a nom parser over `input`, mapping any failure to `Truncated(ctx)`.
///
/// A `complete` parser on a byte slice can only fail by running out of input, so the caller's
/// context is the whole diagnosis.
fn fields<'a, P>(
    ctx: &'static str,
    input: &'a [u8],
    mut parser: P,
) -> Result<(&'a [u8], P::Output), DecodeError>
where
    P: Parser<&'a [u8], Error = ()>,
{
    parser.parse(input).map_err(|_| DecodeError::Truncated(ctx))
}

/// Splits `n` octets off the front of `input`, or `Truncated(ctx)`.
fn split<'a>(
    ctx: &'static str,
    input: &'a [u8],
    n: usize,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    input.split_at_checked(n).ok_or(DecodeError::Truncated(ctx))
}

/// Requires that nothing is left of a structure's bytes.
fn end(ctx: &'static str, rest: &[u8]) -> Result<(), DecodeError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Trailing(ctx))
    }
}

/// Converts a length about to be written into a 16-bit field.
///
/// # Panics
/// If `len` exceeds 65535: the caller built a structure ISAKMP cannot carry. Parsed values
/// never do, their lengths came from 16-bit fields.
fn len_u16(what: &'static str, len: usize) -> u16 {
    u16::try_from(len).unwrap_or_else(|_| panic!("{what} longer than 65535 octets ({len})"))
}

/// Converts a count or size about to be written into an 8-bit field.
///
/// # Panics
/// If `n` exceeds 255 (see [`len_u16`]).
fn len_u8(what: &'static str, n: usize) -> u8 {
    u8::try_from(n).unwrap_or_else(|_| panic!("{what} exceeds 255 ({n})"))
}

/// Writes a substructure's 16-bit length field at `start + 2` once its body is written.
fn patch_len(what: &'static str, out: &mut [u8], start: usize) {
    let len = len_u16(what, out.len().saturating_sub(start));
    if let Some(slot) = out.get_mut(start + 2..start + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}
