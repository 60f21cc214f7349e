//! The codec kit of the PF_KEY messages: errors, a bounds-checked reader,
//! writer helpers and the open-enum macro.
//!
//! PF_KEY fields are in host byte order (RFC 2367 §2: "in the host's
//! native byte order"), except SPIs and ports, which are in network order;
//! the readers and writers say which they use.

use std::fmt;

/// Why a PF_KEY message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Truncated(&'static str),
    /// A length field that does not fit what it frames (value in bytes).
    BadLength(&'static str, usize),
    /// A field whose value cannot be used (e.g. an address family).
    BadValue(&'static str, u32),
    /// The same extension type twice in one message (RFC 2367 §2.3: each
    /// extension "MUST NOT" repeat; Linux refuses it too).
    Duplicate(u16),
    /// `sadb_msg_version` is not `PF_KEY_V2`.
    Version(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "{what}: truncated"),
            Self::BadLength(what, n) => write!(f, "{what}: bad length {n}"),
            Self::BadValue(what, v) => write!(f, "{what}: bad value {v}"),
            Self::Duplicate(t) => write!(f, "extension type {t} appears twice"),
            Self::Version(v) => write!(f, "PF_KEY version {v}, not 2"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded: PF_KEY lengths are 16-bit counts
/// of 8-byte units (bytes for an ipsecrequest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The named structure is longer than its length field can say.
    TooLong(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(what) => write!(f, "{what} is longer than PF_KEY can express"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// RFC 2367 §2: lengths count 64-bit words.
pub(crate) const UNIT: usize = 8;

/// `n` rounded up to a multiple of 8 (KAME `PFKEY_ALIGN8`).
pub(crate) const fn align8(n: usize) -> usize {
    n.div_ceil(UNIT) * UNIT
}

/// A cursor over a byte slice whose reads fail, never panic, past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`; errors name `what`.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A host-order 16-bit field.
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_ne_bytes)
    }

    /// A host-order 32-bit field.
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_ne_bytes)
    }

    /// A host-order 64-bit field.
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_ne_bytes)
    }

    /// A network-order 16-bit field (ports).
    pub(crate) fn be16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    /// A network-order 32-bit field (SPIs, flow labels).
    pub(crate) fn be32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Skips `n` reserved bytes (ignored on receipt).
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// Host-order writers.
pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_ne_bytes());
}

/// Zero bytes up to the next multiple of 8 from `start`.
pub(crate) fn pad8(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    out.resize(start + align8(len), 0);
}

/// Writes `len` (in bytes, a multiple of 8) as 8-byte units at `at`.
pub(crate) fn patch_units(
    out: &mut [u8],
    at: usize,
    len: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    let units = u16::try_from(len / UNIT).map_err(|_| EncodeError::TooLong(what))?;
    out[at..at + 2].copy_from_slice(&units.to_ne_bytes());
    Ok(())
}

/// A registry enum with a catch-all, in smoltcp's `enum_with_unknown!`
/// shape (STYLE.md §3): every `match` decides what unknown means.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this codec does not name.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $( $value => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> Self {
                match v {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub(crate) use open_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_fail_instead_of_panicking() {
        let mut r = Reader::new(&[1, 2, 3], "x");
        assert_eq!(r.u16().map(|_| ()), Ok(()));
        assert_eq!(r.u16(), Err(DecodeError::Truncated("x")));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.u64(), Err(DecodeError::Truncated("x")));
    }

    #[test]
    fn align8_rounds_up_to_whole_words() {
        assert_eq!(
            [0, 1, 8, 9, 28].map(align8),
            [0, 8, 8, 16, 32],
            "sockaddr_in6 (28 bytes) takes 32"
        );
    }

    #[test]
    fn a_length_beyond_sixteen_bits_of_words_is_refused() {
        let mut buf = vec![0; 4];
        assert!(patch_units(&mut buf, 0, 0xffff * 8, "m").is_ok());
        assert_eq!(
            patch_units(&mut buf, 0, 0x1_0000 * 8, "m"),
            Err(EncodeError::TooLong("m"))
        );
    }
}
