//! KINK message codec ([RFC 4430 §4](https://www.rfc-editor.org/rfc/rfc4430#section-4)).
//!
//! Layers:
//! * [`Header`] (header.rs): the fixed 16-octet KINK header.
//! * [`Payload`] (payload.rs): the KINK payloads AP_REQ, AP_REP, KRB_ERROR, TGT_REQ, TGT_REP,
//!   ISAKMP (a chain of [`libracoon::isakmp`] payloads), ENCRYPT (opaque ciphertext) and ERROR.
//! * The chain (chain.rs): generic headers, 4-octet alignment, the rule that KINK_ENCRYPT is
//!   last; the only code that reads or writes next-payload and length fields.
//! * [`Message`] (message.rs): header + chain + Cksum; [`cksum_layout`] / [`cksum_input`] tell
//!   the Kerberos layer what the KINK_CKSUM covers and where it sits, and
//!   [`Message::emit_for_cksum`] / [`append_cksum`] build a signed message;
//!   [`encrypt_plaintext`] / [`parse_encrypted`] are the two sides of KINK_ENCRYPT's content.
//!
//! Decoding never panics. Every failure is a [`DecodeError`] with static context;
//! [`DecodeError::kink_error`] gives the KINK_ERROR code a responder reports (KINK_PROTOERR,
//! KINK_INVMAJ, KINK_INVDOI, KINK_BADQMVERS). Wire decisions and what was checked against the
//! RFC and racoon2 are in `docs/design/kink.md`.

// No panic on input: wire code never unwraps or indexes (tests may, hence `not(test)`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use nom::Parser;

mod chain;
mod header;
mod message;
mod payload;

#[cfg(any(test, fuzzing))]
pub mod fuzzing;
#[cfg(test)]
mod strategies;

pub use header::{ACKREQ, HEADER_LEN, Header, KINK_MAJOR_VERSION, MessageType};
pub use message::{
    CksumInput, CksumLayout, Message, append_cksum, cksum_input, cksum_layout, encrypt_plaintext,
    parse_encrypted,
};
pub use payload::{ErrorCode, IsakmpPayload, Payload, PayloadType, QM_VERSION};

/// The only DOI kinkd speaks: IPsec (RFC 2407), in the header and in SA/Delete payloads.
pub const IPSEC_DOI: u32 = libracoon::isakmp::IPSEC_DOI;

/// Why a KINK message could not be decoded.
///
/// `Copy` with static context. [`kink_error`](Self::kink_error) is the KINK_ERROR code to
/// answer with; an error inside the KINK_ISAKMP chain also carries the ISAKMP notify type
/// ([`isakmp_notify`](Self::isakmp_notify)) for a reply that reports it in ISAKMP terms.
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
    /// A Next Payload field names a type KINK does not define (9..=255).
    #[error("unknown KINK payload type {0}")]
    UnknownPayload(u8),
    /// The header's major version is not 1.
    #[error("unsupported KINK major version {0}")]
    BadMajorVersion(u8),
    /// The header's DOI is not the IPsec DOI.
    #[error("unsupported DOI {0}")]
    BadDoi(u32),
    /// A KINK_ISAKMP payload's Quick Mode version is not 1.0 (shown as the octet).
    #[error("unsupported Quick Mode version {0:#04x}")]
    BadQmVersion(u8),
    /// A payload where the RFC forbids it (after KINK_ENCRYPT, nested KINK_ENCRYPT).
    #[error("misplaced payload: {0}")]
    Misplaced(&'static str),
    /// A field holds a value this codec cannot accept (named).
    #[error("invalid {0}")]
    BadValue(&'static str),
    /// The ISAKMP chain inside KINK_ISAKMP is malformed.
    #[error("KINK_ISAKMP: {0}")]
    Isakmp(libracoon::isakmp::DecodeError),
}

impl DecodeError {
    /// The KINK_ERROR code for this error (RFC 4430 §4.2.8 error table).
    #[must_use]
    pub fn kink_error(self) -> ErrorCode {
        match self {
            Self::BadMajorVersion(_) => ErrorCode::InvMaj,
            Self::BadDoi(_) => ErrorCode::InvDoi,
            Self::BadQmVersion(_) => ErrorCode::BadQmVers,
            Self::Truncated(_)
            | Self::BadLength(..)
            | Self::Trailing(_)
            | Self::UnknownPayload(_)
            | Self::Misplaced(_)
            | Self::BadValue(_)
            | Self::Isakmp(_) => ErrorCode::ProtoErr,
        }
    }

    /// For an error inside the ISAKMP chain, the ISAKMP notify type that names it.
    #[must_use]
    pub fn isakmp_notify(self) -> Option<libracoon::isakmp::NotifyType> {
        match self {
            Self::Isakmp(e) => Some(e.notify()),
            _ => None,
        }
    }
}

impl From<libracoon::isakmp::DecodeError> for DecodeError {
    fn from(err: libracoon::isakmp::DecodeError) -> Self {
        Self::Isakmp(err)
    }
}

impl From<DecodeError> for ErrorCode {
    fn from(err: DecodeError) -> Self {
        err.kink_error()
    }
}

/// Runs a nom parser over `input`, mapping any failure to `Truncated(ctx)`.
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

/// Converts a length about to be written into a 16-bit field.
///
/// # Panics
/// If `len` exceeds 65535: a message KINK cannot carry (its Length field is 16 bits); a
/// caller's construction error, never a parsed value.
fn len_u16(what: &'static str, len: usize) -> u16 {
    u16::try_from(len).unwrap_or_else(|_| panic!("{what} longer than 65535 octets ({len})"))
}

/// Overwrites the 16-bit big-endian field at `at`.
fn patch_u16(out: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Octets of zero padding that bring `len` to a multiple of four.
const fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}
