//! Netlink framing (RFC 3549, `linux/netlink.h`): message headers,
//! attributes, and the error/ack message, sans-IO.
//!
//! Every integer netlink carries is in host byte order except where a
//! struct says `__be` (ports, SPIs, addresses), so this module uses
//! `to_ne_bytes`; the golden-byte tests are for little-endian hosts.
//! Nothing here panics on any input: every read is bounds-checked and
//! reports a [`DecodeError`].

use std::fmt;

/// Why bytes from the kernel (or a fuzzer) did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the named structure needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length field that does not fit the named structure.
    #[error("bad length {1} in {0}")]
    BadLength(&'static str, usize),
}

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Length of `struct nlattr`'s header.
pub const NLA_HDRLEN: usize = 4;

/// `nlmsg_type` of an error or acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// `nlmsg_type` closing a multi-part dump.
pub const NLMSG_DONE: u16 = 3;

/// `nlmsg_flags` bits (`linux/netlink.h`).
pub mod flags {
    /// A request to the kernel.
    pub const REQUEST: u16 = 0x1;
    /// Part of a multi-part reply.
    pub const MULTI: u16 = 0x2;
    /// Ask for an acknowledgement.
    pub const ACK: u16 = 0x4;
    /// Dump the whole table (`NLM_F_ROOT | NLM_F_MATCH`).
    pub const DUMP: u16 = 0x300;
    /// In an error message: the echoed request is only its header.
    pub const CAPPED: u16 = 0x100;
    /// In an error message: extended-ack attributes follow.
    pub const ACK_TLVS: u16 = 0x200;
}

/// Extended-ack attribute carrying the kernel's error text.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

/// Rounds `len` up to netlink's 4-byte alignment.
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// `struct nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NlHeader {
    /// Length of the message, header included.
    pub len: u32,
    /// Message type (`XFRM_MSG_*`, `NLMSG_ERROR`, ...).
    pub ty: u16,
    /// `NLM_F_*` bits.
    pub flags: u16,
    /// Sequence number, echoed by the kernel in its replies.
    pub seq: u32,
    /// Port ID of the sender (0 for the kernel).
    pub pid: u32,
}

impl NlHeader {
    /// Reads the header at the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is shorter than a header.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "nlmsghdr");
        Ok(Self {
            len: r.u32()?,
            ty: r.u16()?,
            flags: r.u16()?,
            seq: r.u32()?,
            pid: r.u32()?,
        })
    }

    /// Appends the header's 16 bytes.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_ne_bytes());
        out.extend_from_slice(&self.ty.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// The messages of one netlink datagram, each as its header and payload.
///
/// Stops after the first malformed header (its length cannot be trusted
/// to find the next one).
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Iterates over the messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(NlHeader, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = split_message(self.buf);
        match item {
            Ok((header, payload, rest)) => {
                self.buf = rest;
                Some(Ok((header, payload)))
            }
            Err(e) => {
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

type Split<'a> = (NlHeader, &'a [u8], &'a [u8]);

fn split_message(buf: &[u8]) -> Result<Split<'_>, DecodeError> {
    let header = NlHeader::parse(buf)?;
    let len = header.len as usize;
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(DecodeError::BadLength("nlmsghdr", len));
    }
    let next = align4(len).min(buf.len());
    Ok((header, &buf[NLMSG_HDRLEN..len], &buf[next..]))
}

/// One attribute (`struct nlattr` + payload), type bits unmasked.
#[derive(Clone, PartialEq, Eq)]
pub struct RawAttr {
    /// `nla_type`, including the `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` bits.
    pub ty: u16,
    /// The payload, without padding.
    pub value: Vec<u8>,
}

impl fmt::Debug for RawAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawAttr({}, {} bytes)", self.ty, self.value.len())
    }
}

/// The attributes of a payload, as (type, value) pairs; the type keeps its
/// flag bits (mask with [`NLA_TYPE_MASK`] to compare).
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
}

/// Mask of the attribute type without `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER`.
pub const NLA_TYPE_MASK: u16 = 0x3fff;

impl<'a> Attrs<'a> {
    /// Iterates over the attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.buf, "nlattr");
        let parsed = r.u16().and_then(|len| Ok((len as usize, r.u16()?)));
        let (len, ty) = match parsed {
            Ok(v) => v,
            Err(e) => {
                self.buf = &[];
                return Some(Err(e));
            }
        };
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return Some(Err(DecodeError::BadLength("nlattr", len)));
        }
        let value = &self.buf[NLA_HDRLEN..len];
        self.buf = &self.buf[align4(len).min(self.buf.len())..];
        Some(Ok((ty, value)))
    }
}

/// Appends one attribute, padded to 4 bytes.
///
/// # Panics
/// If `value` is longer than an attribute can be (65531 bytes); callers
/// pass fixed-size structs and keys.
pub fn put_attr(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = u16::try_from(NLA_HDRLEN + value.len()).expect("attribute fits in 64 KiB");
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(value);
    pad4(out);
}

/// Pads `out` with zeros to a multiple of 4 bytes.
pub fn pad4(out: &mut Vec<u8>) {
    out.resize(align4(out.len()), 0);
}

/// The body of an `NLMSG_ERROR` message: an error, or (errno 0) an
/// acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Negative errno, or 0 for an acknowledgement.
    pub error: i32,
    /// The header of the request this answers.
    pub echo: NlHeader,
    /// The rest of the echoed request (empty when the kernel capped it).
    pub echo_payload: Vec<u8>,
    /// Extended-ack attributes (`NLMSGERR_ATTR_*`), if any.
    pub tlvs: Vec<RawAttr>,
}

impl NlError {
    /// Parses the payload of an `NLMSG_ERROR` message whose header carried
    /// `msg_flags` (which say whether the echo is capped and whether
    /// extended-ack attributes follow).
    ///
    /// # Errors
    /// A truncated payload or attribute.
    pub fn parse(msg_flags: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, "nlmsgerr");
        let error = r.u32()? as i32;
        let echo = NlHeader::parse(r.rest())?;
        let echo_len = if msg_flags & flags::CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            (echo.len as usize).max(NLMSG_HDRLEN)
        };
        let echo_bytes = r.take(echo_len.min(r.rest().len()))?;
        let echo_payload = echo_bytes[NLMSG_HDRLEN..].to_vec();
        let mut tlvs = Vec::new();
        if msg_flags & flags::ACK_TLVS != 0 {
            let after = &r.rest()[(align4(echo_len) - echo_len).min(r.rest().len())..];
            for attr in Attrs::new(after) {
                let (ty, value) = attr?;
                tlvs.push(RawAttr {
                    ty,
                    value: value.to_vec(),
                });
            }
        }
        Ok(Self {
            error,
            echo,
            echo_payload,
            tlvs,
        })
    }

    /// The errno (positive), 0 for an acknowledgement.
    pub fn errno(&self) -> i32 {
        self.error.checked_neg().unwrap_or(i32::MAX)
    }

    /// The kernel's explanation (`NLMSGERR_ATTR_MSG`), e.g. "Requested
    /// type not found".
    pub fn message(&self) -> Option<String> {
        let attr = self
            .tlvs
            .iter()
            .find(|a| a.ty & NLA_TYPE_MASK == NLMSGERR_ATTR_MSG)?;
        let text = attr.value.split(|&b| b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// Appends the payload; the caller's header must carry
    /// [`flags::CAPPED`] when `echo_payload` is empty and
    /// [`flags::ACK_TLVS`] when `tlvs` is not.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.error.to_ne_bytes());
        let mut echo = self.echo;
        if !self.echo_payload.is_empty() {
            echo.len = (NLMSG_HDRLEN + self.echo_payload.len()) as u32;
        }
        echo.emit(out);
        out.extend_from_slice(&self.echo_payload);
        pad4(out);
        for tlv in &self.tlvs {
            put_attr(out, tlv.ty, &tlv.value);
        }
    }
}

/// A bounds-checked cursor over a fixed structure; every read fails with
/// [`DecodeError::Truncated`] naming the structure instead of panicking.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.array()?))
    }

    pub(crate) fn be16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.array()?))
    }

    pub(crate) fn be32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.array()?))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn header_round_trips_and_short_input_is_truncated() {
        let h = NlHeader {
            len: 20,
            ty: 0x10,
            flags: flags::REQUEST | flags::ACK,
            seq: 7,
            pid: 0,
        };
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out, [20, 0, 0, 0, 0x10, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(NlHeader::parse(&out), Ok(h));
        assert_eq!(
            NlHeader::parse(&out[..15]),
            Err(DecodeError::Truncated("nlmsghdr"))
        );
    }

    #[test]
    fn messages_split_a_datagram_and_stop_at_a_bad_length() {
        let mut buf = Vec::new();
        for (ty, body) in [(3u16, &[1u8, 2][..]), (2, &[9, 9, 9, 9][..])] {
            NlHeader {
                len: (NLMSG_HDRLEN + body.len()) as u32,
                ty,
                ..Default::default()
            }
            .emit(&mut buf);
            buf.extend_from_slice(body);
            pad4(&mut buf);
        }
        let got: Vec<_> = Messages::new(&buf).map(|m| m.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.ty, got[0].1), (3, &[1, 2][..]));
        assert_eq!((got[1].0.ty, got[1].1), (2, &[9, 9, 9, 9][..]));
        buf[0] = 200;
        let got: Vec<_> = Messages::new(&buf).collect();
        assert_eq!(got, [Err(DecodeError::BadLength("nlmsghdr", 200))]);
        buf[0] = 3;
        assert!(Messages::new(&buf).next().unwrap().is_err());
    }

    #[test]
    fn attributes_iterate_with_padding_and_reject_overlong_lengths() {
        let mut buf = Vec::new();
        put_attr(&mut buf, 24, &[1, 0, 0, 0]);
        put_attr(&mut buf, 5, &[7]);
        assert_eq!(buf.len(), 16);
        let got: Vec<_> = Attrs::new(&buf).map(|a| a.unwrap()).collect();
        assert_eq!(got, [(24, &[1, 0, 0, 0][..]), (5, &[7][..])]);
        buf[8] = 40;
        assert!(Attrs::new(&buf).nth(1).unwrap().is_err());
        assert!(Attrs::new(&[1, 0]).next().unwrap().is_err());
    }

    /// Layout of an extended ack as the kernel sent it for `ip xfrm state
    /// add ... proto esp` on a kernel without ESP (strace capture): errno
    /// EPROTONOSUPPORT, request capped, text attribute.
    #[test]
    fn an_extended_ack_yields_errno_and_text() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-93i32).to_ne_bytes());
        NlHeader {
            len: 436,
            ty: 0x10,
            flags: 5,
            seq: 1,
            pid: 0,
        }
        .emit(&mut payload);
        put_attr(&mut payload, 1, b"Requested type not found\0");
        let e = NlError::parse(flags::CAPPED | flags::ACK_TLVS, &payload).unwrap();
        assert_eq!(e.errno(), libc::EPROTONOSUPPORT);
        assert_eq!(e.echo.ty, 0x10);
        assert_eq!(e.message().as_deref(), Some("Requested type not found"));
        let mut again = Vec::new();
        e.emit(&mut again);
        assert_eq!(again, payload);
        for cut in 0..payload.len() {
            let _ = NlError::parse(flags::CAPPED | flags::ACK_TLVS, &payload[..cut]);
        }
    }
}
