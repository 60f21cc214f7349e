//! XFRM netlink attributes (`XFRMA_*`): the ones racoon3 sends or reads
//! typed, everything else kept raw as [`Attr::Unknown`].

use std::fmt;

use zeroize::Zeroizing;

use super::netlink::{Attrs, DecodeError, NLA_TYPE_MASK, RawAttr, Reader, put_attr};
use super::structs::{EncapTmpl, UserMigrate, UserTmpl};

/// `XFRMA_*` attribute numbers (`enum xfrm_attr_type_t`).
pub mod xfrma {
    /// `struct xfrm_algo`, untruncated authentication (legacy).
    pub const ALG_AUTH: u16 = 1;
    /// `struct xfrm_algo`: encryption.
    pub const ALG_CRYPT: u16 = 2;
    /// `struct xfrm_encap_tmpl`.
    pub const ENCAP: u16 = 4;
    /// One or more `struct xfrm_user_tmpl`.
    pub const TMPL: u16 = 5;
    /// `struct xfrm_userpolicy_type`.
    pub const POLICY_TYPE: u16 = 16;
    /// One or more `struct xfrm_user_migrate`.
    pub const MIGRATE: u16 = 17;
    /// `struct xfrm_algo_aead`.
    pub const ALG_AEAD: u16 = 18;
    /// `struct xfrm_algo_auth`: authentication with truncation length.
    pub const ALG_AUTH_TRUNC: u16 = 20;
    /// `struct xfrm_replay_state_esn`.
    pub const REPLAY_ESN_VAL: u16 = 23;
    /// `__u32`, `XFRM_SA_XFLAG_*`.
    pub const SA_EXTRA_FLAGS: u16 = 24;
    /// `__u8`, the SA's direction (Linux 6.10 and later report it).
    pub const SA_DIR: u16 = 33;
}

/// Key bytes, zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Key(pub Zeroizing<Vec<u8>>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

/// An algorithm name as the kernel's crypto API spells it, e.g.
/// `rfc4106(gcm(aes))`: NUL-padded to 64 bytes on the wire (names are
/// short; one of 64 bytes would lack the terminator the kernel needs).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AlgName(pub Vec<u8>);

impl AlgName {
    const LEN: usize = 64;

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw = r.take(Self::LEN)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(Self::LEN);
        Ok(Self(raw[..end].to_vec()))
    }

    fn emit(&self, out: &mut Vec<u8>) {
        let n = self.0.len().min(Self::LEN);
        out.extend_from_slice(&self.0[..n]);
        out.resize(out.len() + Self::LEN - n, 0);
    }
}

impl fmt::Debug for AlgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for AlgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl From<&str> for AlgName {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

/// `struct xfrm_algo`, `xfrm_algo_auth` or `xfrm_algo_aead`: a name, a
/// key, and for the latter two the ICV (truncation) length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Algo {
    /// Crypto API name.
    pub name: AlgName,
    /// Key length in bits.
    pub key_bits: u32,
    /// ICV length in bits (`alg_trunc_len`, `alg_icv_len`); `None` for
    /// `struct xfrm_algo`.
    pub icv_bits: Option<u32>,
    /// The key, `key_bits` rounded up to bytes.
    pub key: Key,
}

impl Algo {
    /// An algorithm whose key length is the length of `key`.
    pub fn new(name: &str, icv_bits: Option<u32>, key: &[u8]) -> Self {
        Self {
            name: name.into(),
            key_bits: (key.len() * 8) as u32,
            icv_bits,
            key: Key(Zeroizing::new(key.to_vec())),
        }
    }

    fn parse(value: &[u8], with_icv: bool) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value, "xfrm_algo");
        let name = AlgName::read(&mut r)?;
        let key_bits = r.u32()?;
        let icv_bits = if with_icv { Some(r.u32()?) } else { None };
        let key_len = (key_bits as usize).div_ceil(8);
        let key = r.take(key_len)?;
        Ok(Self {
            name,
            key_bits,
            icv_bits,
            key: Key(Zeroizing::new(key.to_vec())),
        })
    }

    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(72 + self.key.0.len()));
        self.name.emit(&mut v);
        v.extend_from_slice(&self.key_bits.to_ne_bytes());
        if let Some(icv) = self.icv_bits {
            v.extend_from_slice(&icv.to_ne_bytes());
        }
        v.extend_from_slice(&self.key.0);
        v
    }
}

/// `struct xfrm_replay_state_esn`: replay state and window, for ESN or
/// windows beyond 32 packets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayEsn {
    /// Bitmap length in 32-bit words.
    pub bmp_len: u32,
    /// Last sequence number sent (low 32 bits).
    pub oseq: u32,
    /// Highest sequence number received (low 32 bits).
    pub seq: u32,
    /// High 32 bits of `oseq`.
    pub oseq_hi: u32,
    /// High 32 bits of `seq`.
    pub seq_hi: u32,
    /// Window in packets.
    pub replay_window: u32,
    /// Bitmap words present on the wire (may be fewer than `bmp_len`:
    /// the kernel accepts the bare struct as input, as `ip xfrm` sends it).
    pub bmp: Vec<u32>,
}

impl ReplayEsn {
    /// Length of the struct without the bitmap.
    pub const LEN: usize = 24;

    /// The input form for a new SA: a `window`-packet window, counters 0,
    /// no bitmap words (as `ip xfrm state add ... flag esn` sends).
    pub fn new(window: u32) -> Self {
        Self {
            bmp_len: window.div_ceil(32),
            replay_window: window,
            ..Self::default()
        }
    }

    fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value, "xfrm_replay_state_esn");
        let mut esn = Self {
            bmp_len: r.u32()?,
            oseq: r.u32()?,
            seq: r.u32()?,
            oseq_hi: r.u32()?,
            seq_hi: r.u32()?,
            replay_window: r.u32()?,
            bmp: Vec::new(),
        };
        while r.rest().len() >= 4 {
            esn.bmp.push(r.u32()?);
        }
        Ok(esn)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN + 4 * self.bmp.len());
        for w in [
            self.bmp_len,
            self.oseq,
            self.seq,
            self.oseq_hi,
            self.seq_hi,
            self.replay_window,
        ]
        .iter()
        .chain(&self.bmp)
        {
            v.extend_from_slice(&w.to_ne_bytes());
        }
        v
    }
}

/// One XFRM attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attr {
    /// `XFRMA_ALG_AUTH` (no truncation length).
    AlgAuth(Algo),
    /// `XFRMA_ALG_CRYPT`.
    AlgCrypt(Algo),
    /// `XFRMA_ALG_AUTH_TRUNC`.
    AlgAuthTrunc(Algo),
    /// `XFRMA_ALG_AEAD`.
    AlgAead(Algo),
    /// `XFRMA_ENCAP`.
    Encap(EncapTmpl),
    /// `XFRMA_TMPL`: the SAs a policy requires, outermost last.
    Tmpl(Vec<UserTmpl>),
    /// `XFRMA_REPLAY_ESN_VAL`.
    ReplayEsn(ReplayEsn),
    /// `XFRMA_SA_EXTRA_FLAGS`.
    SaExtraFlags(u32),
    /// `XFRMA_MIGRATE`: per-SA endpoint changes.
    Migrate(Vec<UserMigrate>),
    /// `XFRMA_POLICY_TYPE`: main (0) or sub (1) policy.
    PolicyType(u8),
    /// `XFRMA_SA_DIR`: 1 in, 2 out.
    SaDir(u8),
    /// Anything else, kept as received.
    Unknown(RawAttr),
}

impl Attr {
    /// Parses every attribute of `buf`.
    ///
    /// # Errors
    /// A malformed attribute header, or a known attribute whose value is
    /// too short (or, for arrays, not a whole number of structs).
    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        Attrs::new(buf)
            .map(|a| a.and_then(|(ty, value)| Self::parse(ty, value)))
            .collect()
    }

    /// Parses one attribute's value.
    ///
    /// # Errors
    /// As [`Attr::parse_all`].
    pub fn parse(ty: u16, value: &[u8]) -> Result<Self, DecodeError> {
        Ok(match ty & NLA_TYPE_MASK {
            xfrma::ALG_AUTH => Self::AlgAuth(Algo::parse(value, false)?),
            xfrma::ALG_CRYPT => Self::AlgCrypt(Algo::parse(value, false)?),
            xfrma::ALG_AUTH_TRUNC => Self::AlgAuthTrunc(Algo::parse(value, true)?),
            xfrma::ALG_AEAD => Self::AlgAead(Algo::parse(value, true)?),
            xfrma::ENCAP => Self::Encap(EncapTmpl::parse(value)?),
            xfrma::TMPL => Self::Tmpl(array(value, UserTmpl::LEN, UserTmpl::parse, "XFRMA_TMPL")?),
            xfrma::MIGRATE => Self::Migrate(array(
                value,
                UserMigrate::LEN,
                UserMigrate::parse,
                "XFRMA_MIGRATE",
            )?),
            xfrma::REPLAY_ESN_VAL => Self::ReplayEsn(ReplayEsn::parse(value)?),
            xfrma::SA_EXTRA_FLAGS => {
                Self::SaExtraFlags(Reader::new(value, "XFRMA_SA_EXTRA_FLAGS").u32()?)
            }
            xfrma::POLICY_TYPE => Self::PolicyType(Reader::new(value, "XFRMA_POLICY_TYPE").u8()?),
            xfrma::SA_DIR => Self::SaDir(Reader::new(value, "XFRMA_SA_DIR").u8()?),
            _ => Self::Unknown(RawAttr {
                ty,
                value: value.to_vec(),
            }),
        })
    }

    /// Appends the attribute, header and padding included.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Self::AlgAuth(a) => put_attr(out, xfrma::ALG_AUTH, &a.to_bytes()),
            Self::AlgCrypt(a) => put_attr(out, xfrma::ALG_CRYPT, &a.to_bytes()),
            Self::AlgAuthTrunc(a) => put_attr(out, xfrma::ALG_AUTH_TRUNC, &a.to_bytes()),
            Self::AlgAead(a) => put_attr(out, xfrma::ALG_AEAD, &a.to_bytes()),
            Self::Encap(e) => put_attr(out, xfrma::ENCAP, &bytes(|v| e.emit(v))),
            Self::Tmpl(ts) => put_attr(
                out,
                xfrma::TMPL,
                &bytes(|v| emit_each(ts, v, UserTmpl::emit)),
            ),
            Self::Migrate(ms) => put_attr(
                out,
                xfrma::MIGRATE,
                &bytes(|v| emit_each(ms, v, UserMigrate::emit)),
            ),
            Self::ReplayEsn(r) => put_attr(out, xfrma::REPLAY_ESN_VAL, &r.to_bytes()),
            Self::SaExtraFlags(f) => put_attr(out, xfrma::SA_EXTRA_FLAGS, &f.to_ne_bytes()),
            Self::PolicyType(t) => put_attr(out, xfrma::POLICY_TYPE, &[*t, 0, 0, 0, 0, 0]),
            Self::SaDir(d) => put_attr(out, xfrma::SA_DIR, &[*d]),
            Self::Unknown(raw) => put_attr(out, raw.ty, &raw.value),
        }
    }
}

/// Appends every attribute of `attrs`.
pub fn emit_all(attrs: &[Attr], out: &mut Vec<u8>) {
    for a in attrs {
        a.emit(out);
    }
}

fn bytes(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v);
    v
}

fn emit_each<T>(items: &[T], out: &mut Vec<u8>, emit: fn(&T, &mut Vec<u8>)) {
    for item in items {
        emit(item, out);
    }
}

fn array<T>(
    value: &[u8],
    len: usize,
    parse: fn(&[u8]) -> Result<T, DecodeError>,
    what: &'static str,
) -> Result<Vec<T>, DecodeError> {
    if !value.len().is_multiple_of(len) {
        return Err(DecodeError::BadLength(what, value.len()));
    }
    value.chunks_exact(len).map(parse).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_aead_attribute_has_the_kernel_layout() {
        let key: Vec<u8> = (1..=20).collect();
        let mut out = Vec::new();
        Attr::AlgAead(Algo::new("rfc4106(gcm(aes))", Some(128), &key)).emit(&mut out);
        assert_eq!(out.len(), 96);
        assert_eq!(&out[..4], [96, 0, 18, 0]);
        assert_eq!(&out[4..21], b"rfc4106(gcm(aes))");
        assert!(out[21..68].iter().all(|&b| b == 0));
        assert_eq!(&out[68..72], 160u32.to_ne_bytes());
        assert_eq!(&out[72..76], 128u32.to_ne_bytes());
        assert_eq!(&out[76..], &key[..]);
        let back = Attr::parse_all(&out).unwrap();
        assert_eq!(back.len(), 1);
        let mut again = Vec::new();
        emit_all(&back, &mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn keys_do_not_print() {
        let a = Algo::new("cbc(aes)", None, &[0x42; 16]);
        let text = format!("{a:?}");
        assert!(text.contains("16 bytes") && !text.contains("66"), "{text}");
    }

    #[test]
    fn every_kind_round_trips() {
        let attrs = vec![
            Attr::AlgAuth(Algo::new("hmac(sha1)", None, &[1; 20])),
            Attr::AlgCrypt(Algo::new("cbc(aes)", None, &[2; 16])),
            Attr::AlgAuthTrunc(Algo::new("hmac(sha256)", Some(128), &[3; 32])),
            Attr::Encap(EncapTmpl {
                encap_type: 2,
                sport: 4500,
                dport: 4501,
                ..Default::default()
            }),
            Attr::Tmpl(vec![UserTmpl::default(); 2]),
            Attr::Migrate(vec![UserMigrate::default()]),
            Attr::ReplayEsn(ReplayEsn {
                bmp: vec![1, 2],
                ..ReplayEsn::new(64)
            }),
            Attr::SaExtraFlags(3),
            Attr::PolicyType(1),
            Attr::SaDir(2),
            Attr::Unknown(RawAttr {
                ty: 0x8000 | 30,
                value: vec![1, 2, 3],
            }),
        ];
        let mut out = Vec::new();
        emit_all(&attrs, &mut out);
        assert_eq!(Attr::parse_all(&out).unwrap(), attrs);
    }

    #[test]
    fn short_values_and_partial_arrays_are_errors() {
        assert!(Attr::parse(xfrma::ALG_CRYPT, &[0; 67]).is_err());
        // key_len says 128 bits, but no key follows.
        let mut v = vec![0; 64];
        v.extend_from_slice(&128u32.to_ne_bytes());
        assert!(Attr::parse(xfrma::ALG_CRYPT, &v).is_err());
        assert!(Attr::parse(xfrma::TMPL, &[0; 65]).is_err());
        assert!(Attr::parse(xfrma::SA_EXTRA_FLAGS, &[0; 3]).is_err());
        assert!(Attr::parse(xfrma::REPLAY_ESN_VAL, &[0; 23]).is_err());
        // A huge key length is a truncation, not an allocation.
        let mut v = vec![0; 64];
        v.extend_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(
            Attr::parse(xfrma::ALG_CRYPT, &v),
            Err(DecodeError::Truncated("xfrm_algo"))
        );
    }
}
