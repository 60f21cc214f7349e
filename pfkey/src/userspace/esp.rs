//! ESP packet protection for one SA ([RFC 4303]), sans-IO, on caller buffers.
//!
//! [`EspSa::seal`] turns an inner packet into an ESP packet (header, IV,
//! encrypted payload + padding + trailer, ICV); [`EspSa::open`] checks and
//! decrypts one in place. Neither allocates, locks or reaches the OS: every
//! key schedule is built once in [`EspSa::new`].
//!
//! | `encr.id` | `auth.id` | transform | IV on the wire |
//! |---|---|---|---|
//! | 20 (128/256) | none | AES-GCM-16 ([RFC 4106]) | 8 bytes: the 64-bit sequence number |
//! | 28 | none | ChaCha20-Poly1305 ([RFC 7634]) | 8 bytes: the 64-bit sequence number |
//! | 12 (128/256) | 2, 12, 13, 14 | AES-CBC ([RFC 3602]) + HMAC-SHA1-96 / HMAC-SHA2 ([RFC 4868]) | 16 bytes, see below |
//!
//! **CBC IVs.** RFC 3602 §3 requires an IV that is unpredictable to an
//! attacker. Each SA draws a 128-bit IV key from the [`Random`] passed to
//! [`EspSa::new`] (randomness is an input, as everywhere in racoon3) and
//! uses `IV = AES-128(iv_key, seq64 || 0^64)`: distinct per packet since the
//! sequence number never repeats under one SA, unpredictable without the
//! key (the "encrypted counter" of NIST SP 800-38A Appendix C), and no
//! system call per packet.
//!
//! **AEAD nonces.** `salt || seq64` (RFC 4106 §3.1, RFC 7634 §2): the
//! sequence number is unique per SA, so a nonce never repeats under a key.
//!
//! [RFC 4303]: https://www.rfc-editor.org/rfc/rfc4303
//! [RFC 4106]: https://www.rfc-editor.org/rfc/rfc4106
//! [RFC 7634]: https://www.rfc-editor.org/rfc/rfc7634
//! [RFC 3602]: https://www.rfc-editor.org/rfc/rfc3602
//! [RFC 4868]: https://www.rfc-editor.org/rfc/rfc4868

#![deny(clippy::unwrap_used)]

use std::fmt;
use std::ops::Range;

use aes::{Aes128, Aes256};
use cbc::cipher::array::Array;
use cbc::cipher::consts::U16;
use cbc::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use libracoon::crypto::{EncrAlg, IntegAlg, Random};
use ring::aead::{self, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::replay::{ReplayError, Window};
use crate::SaSpec;

/// Length of the ESP header: SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// Next Header value of a dummy packet (RFC 4303 §2.6): the receiver MUST
/// discard it.
pub const NEXT_HEADER_NONE: u8 = 59;
/// Next Header value of an IPv4 packet in tunnel mode.
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next Header value of an IPv6 packet in tunnel mode.
pub const NEXT_HEADER_IPV6: u8 = 41;

const SALT_LEN: usize = 4;
const AEAD_IV_LEN: usize = 8;
const AEAD_TAG_LEN: usize = 16;
const AES_BLOCK: usize = 16;
/// Pad Length and Next Header.
const TRAILER_LEN: usize = 2;

/// Why [`EspSa`] refused to build, seal or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EspError {
    /// The (encryption, integrity) pair is not one this datapath implements.
    #[error("unsupported ESP transform: encr {encr}/{key_bits} bits, integ {auth:?}")]
    UnsupportedTransform {
        /// `encr.id`.
        encr: u16,
        /// `encr.key_bits`.
        key_bits: u16,
        /// `auth.id`, if any.
        auth: Option<u16>,
    },
    /// A key of the wrong length for its algorithm.
    #[error("{what} key is {got} bytes, expected {expected}")]
    KeyLength {
        /// Which key.
        what: &'static str,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The random source failed while drawing the CBC IV key.
    #[error("random source failed")]
    Random,
    /// The output buffer cannot hold the sealed packet.
    #[error("output buffer too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Bytes [`EspSa::seal`] needs.
        needed: usize,
    },
    /// The outbound sequence number space is used up (RFC 4303 §3.3.3: it
    /// MUST NOT cycle); the SA must be replaced.
    #[error("sequence number space exhausted")]
    SequenceExhausted,
    /// The packet is shorter than header, IV, trailer and ICV, or its
    /// ciphertext is not whole cipher blocks.
    #[error("truncated or misaligned ESP packet")]
    Truncated,
    /// The packet's SPI is not this SA's.
    #[error("SPI {0:#010x} does not belong to this SA")]
    WrongSpi(u32),
    /// The anti-replay check failed.
    #[error("replay check: {0}")]
    Replay(#[from] ReplayError),
    /// The ICV did not verify: forged, corrupted or the wrong key.
    #[error("integrity check failed")]
    Integrity,
    /// Authentic, but the padding or pad length is inconsistent.
    #[error("bad ESP padding")]
    BadPadding,
}

/// Options that do not come from [`SaSpec`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EspOptions {
    /// Extended Sequence Numbers (RFC 4303 §2.2.1), as negotiated by the ESN
    /// transform.
    pub esn: bool,
}

/// What [`EspSa::open`] found inside a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The trailer's Next Header (4 IPv4, 41 IPv6 in tunnel mode, 59 dummy).
    pub next_header: u8,
    /// Where the decrypted payload lies in the opened buffer.
    pub payload: Range<usize>,
    /// The full (reconstructed) 64-bit sequence number.
    pub seq: u64,
}

/// A view of the ESP header (RFC 4303 §2) over a buffer.
#[derive(Debug, Clone)]
pub struct EspHeader<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::{Range, RangeFrom};

    pub(super) const SPI: Range<usize> = 0..4;
    pub(super) const SEQ: Range<usize> = 4..8;
    pub(super) const PAYLOAD: RangeFrom<usize> = 8..;
}

impl<T: AsRef<[u8]>> EspHeader<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    ///
    /// # Errors
    /// [`EspError::Truncated`] if it is shorter.
    pub fn new_checked(buffer: T) -> Result<Self, EspError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(EspError::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SPI])
    }

    /// Sequence number (the low 32 bits when ESN is in use).
    pub fn seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }

    /// Everything after the header: IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspHeader<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&spi.to_be_bytes());
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }
}

/// One unidirectional ESP SA's keys and sequence state.
///
/// Outbound use: [`seal`](Self::seal) (needs [`sealed_len`](Self::sealed_len)
/// bytes of output). Inbound use: [`open`](Self::open). Both directions share
/// the type; an SA is only ever used for one.
pub struct EspSa {
    spi: u32,
    esn: bool,
    cipher: Cipher,
    /// Outbound: the last sequence number sent (0 before the first).
    seq: u64,
    /// Inbound: the anti-replay window.
    replay: Window,
}

enum Cipher {
    Aead {
        alg: EncrAlg,
        key: Box<LessSafeKey>,
        salt: Zeroizing<[u8; SALT_LEN]>,
    },
    Cbc {
        alg: EncrAlg,
        aes: Box<AesKey>,
        iv_key: Box<Aes128>,
        integ: IntegAlg,
        hmac: hmac::Key,
    },
}

enum AesKey {
    A128(Aes128),
    A256(Aes256),
}

impl EspSa {
    /// Builds the SA's key schedules from `spec`.
    ///
    /// `rng` is drawn from only for CBC transforms (the IV key, see the
    /// module docs).
    ///
    /// # Errors
    /// [`EspError::UnsupportedTransform`], [`EspError::KeyLength`] or
    /// [`EspError::Random`].
    pub fn new(spec: &SaSpec, opts: EspOptions, rng: &mut dyn Random) -> Result<Self, EspError> {
        let auth = spec.auth.map(|a| a.id).filter(|&id| id != 0);
        let unsupported = EspError::UnsupportedTransform {
            encr: spec.encr.id,
            key_bits: spec.encr.key_bits,
            auth,
        };
        let key_bits = (spec.encr.id != 28).then_some(spec.encr.key_bits);
        let alg = EncrAlg::from_iana(spec.encr.id, key_bits).ok_or(unsupported)?;
        let cipher = match (alg.is_aead(), auth) {
            (true, None) => Cipher::aead(alg, &spec.encr_key)?,
            (false, Some(id)) => {
                let integ = IntegAlg::from_iana(id).ok_or(unsupported)?;
                Cipher::cbc(alg, &spec.encr_key, integ, &spec.auth_key, rng)?
            }
            _ => return Err(unsupported),
        };
        Ok(Self {
            spi: spec.id.spi,
            esn: opts.esn,
            cipher,
            seq: 0,
            replay: Window::new(),
        })
    }

    /// The SA's SPI.
    #[must_use]
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Whether Extended Sequence Numbers are in use.
    #[must_use]
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The transform as strongSwan prints it, e.g. `AES_GCM_16-128` or
    /// `AES_CBC-256/HMAC_SHA2_256_128`.
    #[must_use]
    pub fn transform(&self) -> Transform {
        match &self.cipher {
            Cipher::Aead { alg, .. } => Transform(*alg, None),
            Cipher::Cbc { alg, integ, .. } => Transform(*alg, Some(*integ)),
        }
    }

    /// Outbound: the last sequence number sent (0 before the first packet).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Inbound: the highest sequence number accepted so far.
    #[must_use]
    pub fn replay_top(&self) -> u64 {
        self.replay.top()
    }

    /// Bytes [`seal`](Self::seal) writes for an inner packet of `inner_len`
    /// bytes: header, IV, payload padded to the cipher's block (4 bytes for
    /// the AEADs, RFC 4303 §2.4), trailer and ICV.
    #[must_use]
    pub fn sealed_len(&self, inner_len: usize) -> usize {
        let body = (inner_len + TRAILER_LEN).next_multiple_of(self.cipher.block_len());
        HEADER_LEN + self.cipher.iv_len() + body + self.cipher.icv_len()
    }

    /// Protects `inner` (a whole IP packet in tunnel mode, labelled by
    /// `next_header`) into `out[..n]` and returns `n`.
    ///
    /// Takes the next sequence number; nothing else changes.
    ///
    /// # Errors
    /// [`EspError::BufferTooSmall`] (nothing consumed) or
    /// [`EspError::SequenceExhausted`]: without ESN after 2^32 - 1 packets,
    /// RFC 4303 §3.3.3 "the sender's counter ... MUST NOT be allowed to
    /// cycle".
    pub fn seal(
        &mut self,
        inner: &[u8],
        next_header: u8,
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let len = self.sealed_len(inner.len());
        let out = out
            .get_mut(..len)
            .ok_or(EspError::BufferTooSmall { needed: len })?;
        let seq = self.next_seq()?;
        let mut header = EspHeader::new_unchecked(&mut *out);
        header.set_spi(self.spi);
        header.set_seq(seq as u32);
        let iv_end = HEADER_LEN + self.cipher.iv_len();
        let body_end = len - self.cipher.icv_len();
        self.cipher.write_iv(seq, &mut out[HEADER_LEN..iv_end]);
        write_payload(inner, next_header, &mut out[iv_end..body_end]);
        let aad = AuthData::new(self.spi, seq, self.esn);
        self.cipher.encrypt(&aad, seq, out, iv_end, body_end);
        Ok(len)
    }

    /// [`seal`](Self::seal) in place: the inner packet is `buf[inner]`; the
    /// ESP header and IV are written just before it, padding, trailer and
    /// ICV just after it. Returns where the ESP packet is in `buf`.
    ///
    /// # Errors
    /// As [`seal`](Self::seal); [`EspError::BufferTooSmall`] when `buf`
    /// has too little room before or after `inner`.
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        inner: Range<usize>,
        next_header: u8,
    ) -> Result<Range<usize>, EspError> {
        let len = self.sealed_len(inner.len());
        let iv_end = HEADER_LEN + self.cipher.iv_len();
        let too_small = EspError::BufferTooSmall { needed: len };
        let start = inner.start.checked_sub(iv_end).ok_or(too_small)?;
        let out = buf.get_mut(start..start + len).ok_or(too_small)?;
        let seq = self.next_seq()?;
        let mut header = EspHeader::new_unchecked(&mut *out);
        header.set_spi(self.spi);
        header.set_seq(seq as u32);
        let body_end = len - self.cipher.icv_len();
        self.cipher.write_iv(seq, &mut out[HEADER_LEN..iv_end]);
        write_trailer(inner.len(), next_header, &mut out[iv_end..body_end]);
        let aad = AuthData::new(self.spi, seq, self.esn);
        self.cipher.encrypt(&aad, seq, out, iv_end, body_end);
        Ok(start..start + len)
    }

    /// Checks and decrypts the ESP packet `packet` (starting at the SPI) in
    /// place.
    ///
    /// Order per RFC 4303 §3.4: length, SPI, anti-replay pre-check, ICV,
    /// decryption, trailer; the replay window is updated last, so a
    /// rejected packet changes nothing.
    ///
    /// # Errors
    /// [`EspError::Truncated`], [`EspError::WrongSpi`], [`EspError::Replay`],
    /// [`EspError::Integrity`] or [`EspError::BadPadding`]; the buffer's
    /// contents are then unspecified.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let (iv_len, icv_len) = (self.cipher.iv_len(), self.cipher.icv_len());
        let min = HEADER_LEN + iv_len + self.cipher.block_len().max(TRAILER_LEN) + icv_len;
        if packet.len() < min {
            return Err(EspError::Truncated);
        }
        let header = EspHeader::new_unchecked(&*packet);
        if header.spi() != self.spi {
            return Err(EspError::WrongSpi(header.spi()));
        }
        let seq = self.replay.check(header.seq(), self.esn)?;
        let body = HEADER_LEN + iv_len..packet.len() - icv_len;
        if body.len() % self.cipher.block_len() != 0 {
            return Err(EspError::Truncated);
        }
        let aad = AuthData::new(self.spi, seq, self.esn);
        self.cipher.decrypt(&aad, packet, body.clone())?;
        let (payload_len, next_header) = read_trailer(&packet[body.clone()])?;
        self.replay.update(seq);
        Ok(Opened {
            next_header,
            payload: body.start..body.start + payload_len,
            seq,
        })
    }

    /// Takes the next outbound sequence number (the first is 1).
    fn next_seq(&mut self) -> Result<u64, EspError> {
        let limit = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if self.seq >= limit {
            return Err(EspError::SequenceExhausted);
        }
        self.seq += 1;
        Ok(self.seq)
    }

    /// Encrypts `body` as is (no padding added) into an authentic packet
    /// with the next sequence number, so fuzzing reaches the trailer and
    /// inner-packet checks with arbitrary plaintext. Bodies that are not
    /// whole cipher blocks are zero-extended.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn seal_body_for_fuzzing(&mut self, body: &[u8]) -> Vec<u8> {
        let block = self.cipher.block_len();
        let body_len = body.len().max(TRAILER_LEN).next_multiple_of(block);
        let iv_end = HEADER_LEN + self.cipher.iv_len();
        let mut out = vec![0; iv_end + body_len + self.cipher.icv_len()];
        let Ok(seq) = self.next_seq() else {
            return out;
        };
        let mut header = EspHeader::new_unchecked(&mut out[..]);
        header.set_spi(self.spi);
        header.set_seq(seq as u32);
        self.cipher.write_iv(seq, &mut out[HEADER_LEN..iv_end]);
        out[iv_end..iv_end + body.len()].copy_from_slice(body);
        let aad = AuthData::new(self.spi, seq, self.esn);
        self.cipher
            .encrypt(&aad, seq, &mut out, iv_end, iv_end + body_len);
        out
    }

    /// Tests start near the end of the sequence space.
    #[cfg(test)]
    pub(crate) fn set_last_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

impl fmt::Debug for EspSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("EspSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("transform", &self.transform())
            .field("esn", &self.esn)
            .field("seq", &self.seq)
            .field("replay_top", &self.replay.top())
            .finish()
    }
}

/// The algorithms of an SA, for logs and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform(EncrAlg, Option<IntegAlg>);

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(integ) => write!(f, "{}/{}", self.0.name(), integ.name()),
            None => f.write_str(self.0.name()),
        }
    }
}

/// The data authenticated besides the ESP packet: the SPI and the full
/// sequence number for AEADs (RFC 4106 §5), the ESN high bits for HMAC
/// (RFC 4303 §3.3.2.1).
struct AuthData {
    bytes: [u8; 12],
    len: usize,
    seq_hi: Option<[u8; 4]>,
}

impl AuthData {
    fn new(spi: u32, seq: u64, esn: bool) -> Self {
        let mut bytes = [0; 12];
        bytes[..4].copy_from_slice(&spi.to_be_bytes());
        let hi = ((seq >> 32) as u32).to_be_bytes();
        let lo = (seq as u32).to_be_bytes();
        if esn {
            bytes[4..8].copy_from_slice(&hi);
            bytes[8..].copy_from_slice(&lo);
        } else {
            bytes[4..8].copy_from_slice(&lo);
        }
        Self {
            bytes,
            len: if esn { 12 } else { 8 },
            seq_hi: esn.then_some(hi),
        }
    }

    fn aead(&self) -> aead::Aad<&[u8]> {
        aead::Aad::from(&self.bytes[..self.len])
    }
}

impl Cipher {
    fn aead(alg: EncrAlg, keymat: &[u8]) -> Result<Self, EspError> {
        check_len("encryption", alg.key_len(), keymat.len())?;
        let algorithm = match alg {
            EncrAlg::AesGcm16_128 => &aead::AES_128_GCM,
            EncrAlg::AesGcm16_256 => &aead::AES_256_GCM,
            _ => &aead::CHACHA20_POLY1305,
        };
        let (key, salt) = keymat.split_at(keymat.len() - SALT_LEN);
        let key = UnboundKey::new(algorithm, key).map_err(|_| EspError::KeyLength {
            what: "encryption",
            expected: alg.key_len(),
            got: keymat.len(),
        })?;
        let mut salt_bytes = Zeroizing::new([0; SALT_LEN]);
        salt_bytes.copy_from_slice(salt);
        Ok(Self::Aead {
            alg,
            key: Box::new(LessSafeKey::new(key)),
            salt: salt_bytes,
        })
    }

    fn cbc(
        alg: EncrAlg,
        key: &[u8],
        integ: IntegAlg,
        auth_key: &[u8],
        rng: &mut dyn Random,
    ) -> Result<Self, EspError> {
        check_len("encryption", alg.key_len(), key.len())?;
        check_len("integrity", integ.key_len(), auth_key.len())?;
        let bad_key = EspError::KeyLength {
            what: "encryption",
            expected: alg.key_len(),
            got: key.len(),
        };
        let aes = match alg {
            EncrAlg::AesCbc128 => AesKey::A128(Aes128::new_from_slice(key).map_err(|_| bad_key)?),
            _ => AesKey::A256(Aes256::new_from_slice(key).map_err(|_| bad_key)?),
        };
        let mut iv_key = Zeroizing::new([0u8; 16]);
        rng.fill(&mut iv_key[..]).map_err(|_| EspError::Random)?;
        let hmac_alg = match integ {
            IntegAlg::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            IntegAlg::HmacSha256_128 => hmac::HMAC_SHA256,
            IntegAlg::HmacSha384_192 => hmac::HMAC_SHA384,
            IntegAlg::HmacSha512_256 => hmac::HMAC_SHA512,
        };
        Ok(Self::Cbc {
            alg,
            aes: Box::new(aes),
            iv_key: Box::new(Aes128::new(&Array::from(*iv_key))),
            integ,
            hmac: hmac::Key::new(hmac_alg, auth_key),
        })
    }

    fn iv_len(&self) -> usize {
        match self {
            Self::Aead { .. } => AEAD_IV_LEN,
            Self::Cbc { .. } => AES_BLOCK,
        }
    }

    fn block_len(&self) -> usize {
        match self {
            Self::Aead { .. } => 4,
            Self::Cbc { .. } => AES_BLOCK,
        }
    }

    fn icv_len(&self) -> usize {
        match self {
            Self::Aead { .. } => AEAD_TAG_LEN,
            Self::Cbc { integ, .. } => integ.icv_len(),
        }
    }

    fn write_iv(&self, seq: u64, iv: &mut [u8]) {
        match self {
            Self::Aead { .. } => iv.copy_from_slice(&seq.to_be_bytes()),
            Self::Cbc { iv_key, .. } => {
                let mut block = Array::<u8, U16>::default();
                block[..8].copy_from_slice(&seq.to_be_bytes());
                iv_key.encrypt_block(&mut block);
                iv.copy_from_slice(&block);
            }
        }
    }

    /// Encrypts `out[body]` in place and writes the ICV after it.
    fn encrypt(
        &self,
        aad: &AuthData,
        seq: u64,
        out: &mut [u8],
        body_start: usize,
        body_end: usize,
    ) {
        match self {
            Self::Aead { key, salt, .. } => {
                let nonce = nonce(salt, seq.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(nonce, aad.aead(), &mut out[body_start..body_end])
                    .expect("ESP payloads are far below the AEAD length limit");
                out[body_end..].copy_from_slice(tag.as_ref());
            }
            Self::Cbc { aes, hmac, .. } => {
                let (head, body) = out.split_at_mut(body_start);
                let iv = &head[HEADER_LEN..];
                aes.encrypt_cbc(iv, &mut body[..body_end - body_start]);
                let tag = sign(hmac, &out[..body_end], aad);
                let icv_len = out.len() - body_end;
                out[body_end..].copy_from_slice(&tag.as_ref()[..icv_len]);
            }
        }
    }

    /// Verifies the ICV of `packet` and decrypts `packet[body]` in place.
    fn decrypt(
        &self,
        aad: &AuthData,
        packet: &mut [u8],
        body: Range<usize>,
    ) -> Result<(), EspError> {
        match self {
            Self::Aead { key, salt, .. } => {
                // The explicit IV on the wire, whatever the sender's IV
                // scheme (strongSwan XORs the sequence number with a salt).
                let mut iv = [0; AEAD_IV_LEN];
                iv.copy_from_slice(&packet[HEADER_LEN..body.start]);
                key.open_in_place(nonce(salt, iv), aad.aead(), &mut packet[body.start..])
                    .map_err(|_| EspError::Integrity)?;
            }
            Self::Cbc { aes, hmac, .. } => {
                let tag = sign(hmac, &packet[..body.end], aad);
                let icv = &packet[body.end..];
                if !bool::from(tag.as_ref()[..icv.len()].ct_eq(icv)) {
                    return Err(EspError::Integrity);
                }
                let (head, rest) = packet.split_at_mut(body.start);
                aes.decrypt_cbc(&head[HEADER_LEN..], &mut rest[..body.len()]);
            }
        }
        Ok(())
    }
}

impl AesKey {
    fn encrypt_cbc(&self, iv: &[u8], data: &mut [u8]) {
        let iv = Array::<u8, U16>::try_from(iv).expect("CBC IV is one block");
        let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty(), "padded to whole blocks");
        match self {
            Self::A128(k) => {
                cbc::Encryptor::<&Aes128>::inner_iv_init(k, &iv).encrypt_blocks(blocks)
            }
            Self::A256(k) => {
                cbc::Encryptor::<&Aes256>::inner_iv_init(k, &iv).encrypt_blocks(blocks)
            }
        }
    }

    fn decrypt_cbc(&self, iv: &[u8], data: &mut [u8]) {
        let iv = Array::<u8, U16>::try_from(iv).expect("CBC IV is one block");
        let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty(), "checked to be whole blocks");
        match self {
            Self::A128(k) => {
                cbc::Decryptor::<&Aes128>::inner_iv_init(k, &iv).decrypt_blocks(blocks)
            }
            Self::A256(k) => {
                cbc::Decryptor::<&Aes256>::inner_iv_init(k, &iv).decrypt_blocks(blocks)
            }
        }
    }
}

/// HMAC over the ESP packet up to the ICV, then the ESN high bits if any
/// (RFC 4303 §3.3.2.1: "appended ... for the ICV computation only").
fn sign(key: &hmac::Key, covered: &[u8], aad: &AuthData) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(covered);
    if let Some(hi) = &aad.seq_hi {
        ctx.update(hi);
    }
    ctx.sign()
}

/// The AEAD nonce: salt || explicit IV (RFC 4106 §4, RFC 7634 §2).
fn nonce(salt: &[u8; SALT_LEN], iv: [u8; AEAD_IV_LEN]) -> Nonce {
    let mut nonce = [0; SALT_LEN + AEAD_IV_LEN];
    nonce[..SALT_LEN].copy_from_slice(salt);
    nonce[SALT_LEN..].copy_from_slice(&iv);
    Nonce::assume_unique_for_key(nonce)
}

/// Writes `inner`, the default padding 1, 2, 3, ... (RFC 4303 §2.4), Pad
/// Length and Next Header into `body`, which `sealed_len` sized.
fn write_payload(inner: &[u8], next_header: u8, body: &mut [u8]) {
    body[..inner.len()].copy_from_slice(inner);
    write_trailer(inner.len(), next_header, body);
}

/// Writes padding and trailer after the `inner_len` bytes of payload
/// already at the start of `body`.
fn write_trailer(inner_len: usize, next_header: u8, body: &mut [u8]) {
    let pad_len = body.len() - inner_len - TRAILER_LEN;
    let (padding, trailer) = body[inner_len..].split_at_mut(pad_len);
    for (i, b) in padding.iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    trailer[0] = pad_len as u8;
    trailer[1] = next_header;
}

/// Reads the trailer of the decrypted `body`; returns the payload length and
/// Next Header.
///
/// RFC 4303 §2.4: "the receiver SHOULD inspect the Padding field" when the
/// default padding is used, which it is for every transform here.
fn read_trailer(body: &[u8]) -> Result<(usize, u8), EspError> {
    let n = body.len();
    let (pad_len, next_header) = (usize::from(body[n - 2]), body[n - 1]);
    let payload_len = n
        .checked_sub(TRAILER_LEN + pad_len)
        .ok_or(EspError::BadPadding)?;
    let padding = &body[payload_len..n - TRAILER_LEN];
    if padding.iter().zip(1u8..).any(|(&b, want)| b != want) {
        return Err(EspError::BadPadding);
    }
    Ok((payload_len, next_header))
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), EspError> {
    if expected == got {
        Ok(())
    } else {
        Err(EspError::KeyLength {
            what,
            expected,
            got,
        })
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
pub(crate) mod tests;
