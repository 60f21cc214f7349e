//! IKEv2 message codec ([RFC 7296 §3](https://www.rfc-editor.org/rfc/rfc7296#section-3)).
//!
//! Parsing uses nom `complete` combinators on a whole datagram; nom types never leave a parse
//! function, every failure is a [`DecodeError`] with static context. Emitting writes into a
//! caller-owned `Vec<u8>`; only the payload chain ([`parse_chain`], [`emit_chain`]) reads and
//! writes the generic payload header's next-payload, critical and length fields, backpatching
//! lengths.
//!
//! Payload bodies are owned (`Vec<u8>`), a deliberate simplification of the house style's
//! borrowed `Message<'a>`: IKE messages are small and not the hot path. The state machines keep
//! the raw datagram next to the parsed form where they need exact octets (AUTH, RFC 7296 §2.15).
//!
//! Registries are open enums (`libracoon::open_enum!`): every one has an `Unknown(n)` variant, so every
//! `match` decides what "unknown" means, and `Display` prints the RFC spelling.
//!
//! Files: [`Header`] (header.rs), payload bodies (sa, ke, id, auth, nonce, notify, delete, ts),
//! the chain (chain.rs: [`parse_chain`], [`emit_chain`]) and [`Message`] (message.rs).

// No panic on input: wire code never unwraps or indexes (tests may, hence `not(test)`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use nom::Parser;

mod auth;
mod chain;
mod delete;
mod header;
mod id;
mod ke;
mod message;
mod nonce;
mod notify;
mod sa;
mod ts;

#[cfg(test)]
mod captures;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
#[cfg(test)]
mod strategies;

pub use auth::{AuthMethod, AuthPayload};
pub use chain::{Payload, PayloadType, emit_chain, parse_chain};
pub use delete::DeletePayload;
pub use header::{ExchangeType, Flags, HEADER_LEN, Header};
pub use id::{IdPayload, IdType};
pub use ke::KePayload;
pub use message::{Message, SkPayload, emit_sk_frame, summary};
pub use notify::{NotifyPayload, NotifyType};
pub use sa::{Proposal, ProtocolId, Transform, TransformType};
pub use ts::{TrafficSelector, TsType};

/// Why a datagram or payload could not be decoded.
///
/// `Copy` with static context so it can travel into session errors and logs without allocation;
/// [`NotifyType::from`] picks the notify a responder may send back (RFC 7296 §2.21).
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
    /// The IKE header's major version is not 2 (RFC 7296 §3.1).
    #[error("unsupported IKE major version {0}")]
    BadVersion(u8),
    /// A payload of an unknown type has the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload type {0}")]
    UnknownCritical(u8),
    /// A field holds a value this codec cannot accept (named).
    #[error("invalid {0}")]
    BadValue(&'static str),
}

impl From<DecodeError> for NotifyType {
    /// The error notify for a message that failed to decode: UNSUPPORTED_CRITICAL_PAYLOAD,
    /// INVALID_MAJOR_VERSION, or INVALID_SYNTAX for everything else.
    fn from(err: DecodeError) -> Self {
        match err {
            DecodeError::UnknownCritical(_) => Self::UnsupportedCriticalPayload,
            DecodeError::BadVersion(_) => Self::InvalidMajorVersion,
            _ => Self::InvalidSyntax,
        }
    }
}

/// Runs a nom parser over `input`, mapping any failure to `Truncated(ctx)`.
///
/// The parsers use `()` as their error type: a `complete` parser on a byte slice can only fail
/// by running out of input, so the caller's context is the whole diagnosis.
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

/// Converts a length we are about to write into a 16-bit field.
///
/// # Panics
/// If `len` exceeds 65535: the caller built a structure IKEv2 cannot carry. Parsed values never
/// do, since their lengths came from 16-bit fields.
fn len_u16(what: &'static str, len: usize) -> u16 {
    u16::try_from(len).unwrap_or_else(|_| panic!("{what} longer than 65535 octets ({len})"))
}

/// Converts a count or size we are about to write into an 8-bit field.
///
/// # Panics
/// If `n` exceeds 255 (see [`len_u16`]).
fn len_u8(what: &'static str, n: usize) -> u8 {
    u8::try_from(n).unwrap_or_else(|_| panic!("{what} exceeds 255 ({n})"))
}

/// Overwrites the 16-bit big-endian field at `at` (a length reserved earlier by the writer).
fn patch_u16(out: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes a substructure's 16-bit length field (at `start + 2`) once its body is written.
fn patch_len(what: &'static str, out: &mut [u8], start: usize) {
    let len = len_u16(what, out.len() - start);
    patch_u16(out, start + 2, len);
}
