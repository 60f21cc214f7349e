//! Whole KINK messages: header, payload chain, Cksum; the KINK_CKSUM placement and the
//! KINK_ENCRYPT content ([RFC 4430 §4](https://www.rfc-editor.org/rfc/rfc4430#section-4),
//! §4.2.7).
//!
//! ## KINK_CKSUM
//! The Cksum is the last `CksumLen` octets of the message. It is computed over everything
//! before it (header, payloads, zero padding to a 4-octet boundary) **as sent with CksumLen = 0
//! and Length = the length without the Cksum**; then the Cksum is appended and both fields are
//! rewritten (racoon2 `kink_fmt.c`, see docs/design/kink.md). The Kerberos layer keys it with
//! the ticket's session key, key usage 40.
//!
//! * Sender: [`Message::emit_for_cksum`] gives the exact checksum input; the Kerberos layer
//!   computes `checksum(key, &bytes)`; [`append_cksum`] appends it and fixes the header.
//! * Receiver: [`cksum_input`] rebuilds the input from a datagram and returns the received
//!   Cksum next to it, for `verify(key, &input.covered, input.cksum)`. [`cksum_layout`] gives
//!   the plain byte ranges.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use super::chain::{Scope, emit_chain, pad_to_4, parse_chain};
use super::header::{CKSUM_LEN_AT, LENGTH_AT, NEXT_PAYLOAD_AT};
use super::{
    ACKREQ, DecodeError, HEADER_LEN, Header, IPSEC_DOI, KINK_MAJOR_VERSION, MessageType, Payload,
    PayloadType, fields, len_u16, patch_u16,
};

/// A KINK message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Message type.
    pub msg_type: MessageType,
    /// Transaction ID.
    pub xid: u32,
    /// The flags octet ([`ACKREQ`]; other bits are sent as given and ignored on receipt).
    pub flags: u8,
    /// Payloads in order; KINK_ENCRYPT, if any, last.
    pub payloads: Vec<Payload<'a>>,
    /// The Cksum (empty for an unauthenticated message).
    pub cksum: Cow<'a, [u8]>,
}

/// Byte ranges of an encoded message's checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CksumLayout {
    /// What the checksum covers: from the first header octet to the end of the padding after
    /// the last payload (`0..Length-CksumLen`).
    pub covered: Range<usize>,
    /// Where the Cksum is (`Length-CksumLen..Length`); empty when CksumLen is 0.
    pub cksum: Range<usize>,
}

/// A received message's checksum input, rebuilt as the sender computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CksumInput<'a> {
    /// The covered octets with Length rewritten to their count and CksumLen to 0.
    pub covered: Vec<u8>,
    /// The received Cksum (empty when the message carries none).
    pub cksum: &'a [u8],
}

impl<'a> Message<'a> {
    /// A message without payloads, flags or Cksum.
    #[must_use]
    pub fn new(msg_type: MessageType, xid: u32) -> Self {
        Self {
            msg_type,
            xid,
            flags: 0,
            payloads: Vec::new(),
            cksum: Cow::Borrowed(&[]),
        }
    }

    /// Decodes a datagram. Octets beyond the header's Length are ignored (racoon2 warns
    /// about them and goes on).
    ///
    /// # Errors
    /// Header errors ([`Header::parse`]); `BadDoi` unless the DOI is the IPsec DOI
    /// (KINK_INVDOI); any chain or payload error.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        let header = Header::parse(datagram)?;
        if header.doi != IPSEC_DOI {
            return Err(DecodeError::BadDoi(header.doi));
        }
        let layout = layout(&header);
        let region = datagram
            .get(HEADER_LEN..layout.covered.end)
            .ok_or(DecodeError::Truncated("KINK message"))?;
        let cksum = datagram
            .get(layout.cksum)
            .ok_or(DecodeError::Truncated("Cksum"))?;
        Ok(Self {
            msg_type: header.msg_type,
            xid: header.xid,
            flags: header.flags,
            payloads: parse_chain(header.next_payload, region, Scope::Outer)?,
            cksum: Cow::Borrowed(cksum),
        })
    }

    /// Encodes the message. Without a Cksum it ends right after the last payload (as racoon2
    /// sends unauthenticated messages); with one, the chain is padded to 4 octets and the
    /// Cksum follows.
    ///
    /// # Panics
    /// If the message exceeds 65535 octets.
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        if self.cksum.is_empty() {
            let mut out = self.emit_header_and_chain();
            let len = len_u16("KINK message", out.len());
            patch_u16(&mut out, LENGTH_AT, len);
            return out;
        }
        let mut out = self.emit_for_cksum();
        if let Err(e) = append_cksum(&mut out, &self.cksum) {
            // emit_for_cksum's output is always prepared for a Cksum; only the size can fail.
            panic!("KINK message with its Cksum exceeds 65535 octets: {e}");
        }
        out
    }

    /// The exact octets the KINK_CKSUM covers: the message with the chain padded to 4
    /// octets, Length = their count, CksumLen = 0. `self.cksum` is not used.
    ///
    /// # Panics
    /// If the message exceeds 65535 octets.
    #[must_use]
    pub fn emit_for_cksum(&self) -> Vec<u8> {
        let mut out = self.emit_header_and_chain();
        pad_to_4(0, &mut out);
        let len = len_u16("KINK message", out.len());
        patch_u16(&mut out, LENGTH_AT, len);
        out
    }

    /// Whether the ACKREQ flag is set.
    #[must_use]
    pub fn ack_request(&self) -> bool {
        self.flags & ACKREQ != 0
    }

    /// The first payload of type `ptype`, if any (racoon2 keeps the first of duplicates).
    #[must_use]
    pub fn find(&self, ptype: PayloadType) -> Option<&Payload<'a>> {
        self.payloads.iter().find(|p| p.ptype() == ptype)
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> Message<'static> {
        Message {
            msg_type: self.msg_type,
            xid: self.xid,
            flags: self.flags,
            payloads: self.payloads.into_iter().map(Payload::into_owned).collect(),
            cksum: Cow::Owned(self.cksum.into_owned()),
        }
    }

    /// Header (Length and CksumLen zero) followed by the unpadded chain.
    fn emit_header_and_chain(&self) -> Vec<u8> {
        let header = Header {
            msg_type: self.msg_type,
            major: KINK_MAJOR_VERSION,
            minor: 0,
            length: 0,
            doi: IPSEC_DOI,
            xid: self.xid,
            next_payload: PayloadType::Done,
            flags: self.flags,
            cksum_len: 0,
        };
        let mut out = Vec::new();
        header.emit(&mut out);
        let first = emit_chain(&self.payloads, 0, &mut out);
        if let Some(slot) = out.get_mut(NEXT_PAYLOAD_AT) {
            *slot = first.into();
        }
        out
    }
}

impl fmt::Display for Message<'_> {
    /// One line for logs: `CREATE xid=0x01020304 [ KINK_AP_REQ KINK_ENCRYPT ] cksum=12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} xid={:#010x}", self.msg_type, self.xid)?;
        if self.ack_request() {
            f.write_str(" ACKREQ")?;
        }
        f.write_str(" [")?;
        for p in &self.payloads {
            write!(f, " {}", p.ptype())?;
        }
        write!(f, " ] cksum={}", self.cksum.len())
    }
}

/// Appends `cksum` to a message produced by [`Message::emit_for_cksum`] and sets Length and
/// CksumLen.
///
/// # Errors
/// `Truncated` if `msg` has no header; `BadValue` if its CksumLen is already set, its
/// length is not a multiple of four or its Length field does not match it; `BadLength` if
/// the result would exceed 65535 octets.
pub fn append_cksum(msg: &mut Vec<u8>, cksum: &[u8]) -> Result<(), DecodeError> {
    let (_, (length, _, cksum_len)) = fields(
        "KINK header",
        msg.get(LENGTH_AT..).unwrap_or_default(),
        (
            nom::number::complete::be_u16,
            nom::bytes::complete::take(10usize),
            nom::number::complete::be_u16,
        ),
    )?;
    if cksum_len != 0 || usize::from(length) != msg.len() || !msg.len().is_multiple_of(4) {
        return Err(DecodeError::BadValue("message not prepared for a Cksum"));
    }
    let total = msg.len() + cksum.len();
    let total16 =
        u16::try_from(total).map_err(|_| DecodeError::BadLength("KINK message", total))?;
    let cksum16 =
        u16::try_from(cksum.len()).map_err(|_| DecodeError::BadLength("CksumLen", cksum.len()))?;
    msg.extend_from_slice(cksum);
    patch_u16(msg, LENGTH_AT, total16);
    patch_u16(msg, CKSUM_LEN_AT, cksum16);
    Ok(())
}

/// The byte ranges of a datagram's checksum.
///
/// # Errors
/// [`Header::parse`] errors: the ranges are only meaningful for a sane header.
pub fn cksum_layout(datagram: &[u8]) -> Result<CksumLayout, DecodeError> {
    Header::parse(datagram).map(|h| layout(&h))
}

/// The checksum input of a received datagram, rebuilt as the sender computed it
/// (Length = covered length, CksumLen = 0), and the received Cksum.
///
/// # Errors
/// [`Header::parse`] errors.
pub fn cksum_input(datagram: &[u8]) -> Result<CksumInput<'_>, DecodeError> {
    let layout = cksum_layout(datagram)?;
    let mut covered = datagram
        .get(layout.covered.clone())
        .ok_or(DecodeError::Truncated("KINK message"))?
        .to_vec();
    let cksum = datagram
        .get(layout.cksum)
        .ok_or(DecodeError::Truncated("Cksum"))?;
    let len = len_u16("KINK message", covered.len());
    patch_u16(&mut covered, LENGTH_AT, len);
    patch_u16(&mut covered, CKSUM_LEN_AT, 0);
    Ok(CksumInput { covered, cksum })
}

/// KINK_ENCRYPT's plaintext for `payloads`: `InnerNextPload (8) | RESERVED2 (24)` and the
/// inner chain, aligned from the plaintext's start. The Kerberos layer encrypts it (key usage
/// 39) into [`Payload::Encrypt`].
///
/// # Panics
/// If a payload body exceeds 65531 octets.
#[must_use]
pub fn encrypt_plaintext(payloads: &[Payload<'_>]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0];
    let first = emit_chain(payloads, 0, &mut out);
    if let Some(slot) = out.first_mut() {
        *slot = first.into();
    }
    out
}

/// Decodes decrypted KINK_ENCRYPT content.
///
/// # Errors
/// `Truncated` below four octets; `Misplaced` for a nested KINK_ENCRYPT; chain and payload
/// errors; `Trailing` for more than 7 octets after the last payload.
pub fn parse_encrypted(plaintext: &[u8]) -> Result<Vec<Payload<'_>>, DecodeError> {
    let (chain, (inner_next, _reserved)) = fields(
        "KINK_ENCRYPT content",
        plaintext,
        (
            nom::number::complete::be_u8,
            nom::bytes::complete::take(3usize),
        ),
    )?;
    parse_chain(inner_next.into(), chain, Scope::Encrypted)
}

/// Ranges from a parsed header (Length >= 16 + CksumLen is checked by [`Header::parse`]).
fn layout(header: &Header) -> CksumLayout {
    let length = usize::from(header.length);
    let split = length - usize::from(header.cksum_len);
    CksumLayout {
        covered: 0..split,
        cksum: split..length,
    }
}

#[cfg(test)]
pub(super) mod tests;
