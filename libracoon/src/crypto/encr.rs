//! Encryption algorithms (IKEv2 Transform Type 1): AES-CBC for IKE SK payloads
//! and ESP with a separate integrity algorithm, and the AEADs AES-GCM-16
//! ([RFC 4106], [RFC 5282]) and ChaCha20-Poly1305 ([RFC 7634]).
//!
//! Keys are raw keying material as drawn from prf+/KEYMAT; for the AEADs that
//! includes the 4-byte salt at the end. All operations are in place on the
//! caller's buffer. Padding is the caller's business: IKE and ESP each define
//! their own, and neither is PKCS#7.
//!
//! [RFC 4106]: https://www.rfc-editor.org/rfc/rfc4106
//! [RFC 5282]: https://www.rfc-editor.org/rfc/rfc5282
//! [RFC 7634]: https://www.rfc-editor.org/rfc/rfc7634

use std::fmt;

use aes::{Aes128, Aes256};
use cbc::cipher::array::Array;
use cbc::cipher::consts::U16;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::CryptoError;

/// AES block length, and so the CBC IV length.
const AES_BLOCK: usize = 16;
/// Salt length at the end of AEAD keying material (RFC 4106 §8.1, RFC 7634 §2).
const SALT_LEN: usize = 4;
/// Explicit IV carried in each AEAD-protected message (RFC 4106 §3.1).
const AEAD_IV_LEN: usize = 8;
/// Tag length of every AEAD here (the "16" in AES_GCM_16).
const AEAD_TAG_LEN: usize = 16;

/// An IKEv2/ESP encryption transform (IANA "Transform Type 1") together with
/// its key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// ENCR_AES_CBC (12) with a 128-bit key, RFC 3602.
    AesCbc128,
    /// ENCR_AES_CBC (12) with a 256-bit key, RFC 3602.
    AesCbc256,
    /// ENCR_AES_GCM_16 (20) with a 128-bit key, RFC 4106 / RFC 5282.
    AesGcm16_128,
    /// ENCR_AES_GCM_16 (20) with a 256-bit key, RFC 4106 / RFC 5282.
    AesGcm16_256,
    /// ENCR_CHACHA20_POLY1305 (28), RFC 7634.
    ChaCha20Poly1305,
}

impl EncrAlg {
    /// Every supported algorithm, in local preference order (most preferred
    /// first): AEADs before CBC.
    pub const ALL: [Self; 5] = [
        Self::AesGcm16_256,
        Self::AesGcm16_128,
        Self::ChaCha20Poly1305,
        Self::AesCbc256,
        Self::AesCbc128,
    ];

    /// The algorithm for IANA Transform ID `id` with Key Length attribute
    /// `key_bits`, if we implement that combination.
    ///
    /// AES needs the attribute and supports 128 and 256 (no AES-192).
    /// ChaCha20-Poly1305 has a fixed key size and RFC 7634 §3 says the Key
    /// Length attribute "MUST NOT be sent", so `Some(_)` is refused.
    #[must_use]
    pub fn from_iana(id: u16, key_bits: Option<u16>) -> Option<Self> {
        match (id, key_bits) {
            (12, Some(128)) => Some(Self::AesCbc128),
            (12, Some(256)) => Some(Self::AesCbc256),
            (20, Some(128)) => Some(Self::AesGcm16_128),
            (20, Some(256)) => Some(Self::AesGcm16_256),
            (28, None) => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The IANA Transform ID.
    #[must_use]
    pub fn iana(self) -> u16 {
        match self {
            Self::AesCbc128 | Self::AesCbc256 => 12,
            Self::AesGcm16_128 | Self::AesGcm16_256 => 20,
            Self::ChaCha20Poly1305 => 28,
        }
    }

    /// The Key Length attribute to emit with this transform, in bits; `None`
    /// for ChaCha20-Poly1305, which must not carry one.
    #[must_use]
    pub fn key_bits(self) -> Option<u16> {
        match self {
            Self::AesCbc128 | Self::AesGcm16_128 => Some(128),
            Self::AesCbc256 | Self::AesGcm16_256 => Some(256),
            Self::ChaCha20Poly1305 => None,
        }
    }

    /// The name as strongSwan prints it (`AES_GCM_16-256`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc128 => "AES_CBC-128",
            Self::AesCbc256 => "AES_CBC-256",
            Self::AesGcm16_128 => "AES_GCM_16-128",
            Self::AesGcm16_256 => "AES_GCM_16-256",
            Self::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        }
    }

    /// Whether this is an AEAD (no separate integrity transform is negotiated).
    #[must_use]
    pub fn is_aead(self) -> bool {
        !matches!(self, Self::AesCbc128 | Self::AesCbc256)
    }

    /// Bytes of keying material to draw for one direction: the cipher key,
    /// plus the 4-byte salt for the AEADs (RFC 4106 §8.1, RFC 5282 §7.1,
    /// RFC 7634 §2).
    #[must_use]
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCbc128 => 16,
            Self::AesCbc256 => 32,
            Self::AesGcm16_128 => 16 + SALT_LEN,
            Self::AesGcm16_256 | Self::ChaCha20Poly1305 => 32 + SALT_LEN,
        }
    }

    /// Length of the IV carried in each message: 16 for CBC, 8 for the AEADs.
    #[must_use]
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            AEAD_IV_LEN
        } else {
            AES_BLOCK
        }
    }

    /// Padding granularity for IKE SK payloads and ESP: the cipher block for
    /// CBC, 4 bytes for the AEADs (RFC 4303 §2.4 alignment).
    #[must_use]
    pub fn block_len(self) -> usize {
        if self.is_aead() { 4 } else { AES_BLOCK }
    }

    /// Length of the integrity tag the cipher itself appends: 0 for CBC, 16
    /// for the AEADs.
    #[must_use]
    pub fn icv_len(self) -> usize {
        if self.is_aead() { AEAD_TAG_LEN } else { 0 }
    }

    /// Encrypts `data` in place with AES-CBC, no padding.
    ///
    /// # Errors
    /// [`CryptoError::Internal`] if `self` is an AEAD; [`CryptoError::KeyLength`],
    /// [`CryptoError::IvLength`] or [`CryptoError::BlockLength`] (length not
    /// a multiple of 16) on malformed input, with `data` left untouched.
    pub fn cbc_encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        let blocks = self.cbc_check(key, iv, data)?;
        match self {
            Self::AesCbc128 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::Internal)?
                .encrypt_blocks(blocks),
            _ => cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::Internal)?
                .encrypt_blocks(blocks),
        }
        Ok(())
    }

    /// Decrypts `data` in place with AES-CBC; padding is left for the caller
    /// to check and strip.
    ///
    /// # Errors
    /// As [`cbc_encrypt`](Self::cbc_encrypt).
    pub fn cbc_decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        let blocks = self.cbc_check(key, iv, data)?;
        match self {
            Self::AesCbc128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::Internal)?
                .decrypt_blocks(blocks),
            _ => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::Internal)?
                .decrypt_blocks(blocks),
        }
        Ok(())
    }

    /// AEAD seal: key = key||salt(4); nonce = salt||iv (iv is 8 bytes).
    /// Appends the 16-byte tag.
    ///
    /// `in_out` holds the plaintext on entry and ciphertext||tag on return.
    /// The caller must never reuse an IV under one key (RFC 4106 §3.1); IKE
    /// and ESP use the message ID / sequence number or a counter.
    ///
    /// # Errors
    /// [`CryptoError::Internal`] if `self` is CBC; [`CryptoError::KeyLength`]
    /// or [`CryptoError::IvLength`] on malformed input, with `in_out`
    /// untouched.
    pub fn aead_seal(
        self,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let (key, nonce) = self.aead_key_nonce(key, iv)?;
        key.seal_in_place_append_tag(nonce, Aad::from(aad), in_out)
            .map_err(|_| CryptoError::Internal)
    }

    /// AEAD open: `in_out` = ciphertext||tag; on success returns the plaintext
    /// length (the plaintext is in `in_out[..n]`).
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] if the tag does not verify or `in_out` is
    /// shorter than a tag; the contents of `in_out` are then unspecified and
    /// must be discarded. Otherwise as [`aead_seal`](Self::aead_seal).
    pub fn aead_open(
        self,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let (key, nonce) = self.aead_key_nonce(key, iv)?;
        if in_out.len() < AEAD_TAG_LEN {
            return Err(CryptoError::Integrity);
        }
        key.open_in_place(nonce, Aad::from(aad), in_out)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::Integrity)
    }

    /// Checks a CBC call's inputs and views `data` as whole blocks.
    fn cbc_check<'a>(
        self,
        key: &[u8],
        iv: &[u8],
        data: &'a mut [u8],
    ) -> Result<&'a mut [Array<u8, U16>], CryptoError> {
        if self.is_aead() {
            return Err(CryptoError::Internal);
        }
        if key.len() != self.key_len() {
            return Err(CryptoError::KeyLength);
        }
        if iv.len() != AES_BLOCK {
            return Err(CryptoError::IvLength);
        }
        let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(data);
        if !rest.is_empty() {
            return Err(CryptoError::BlockLength);
        }
        Ok(blocks)
    }

    /// Splits AEAD keying material into key and salt, builds ring's key and
    /// the 12-byte nonce salt||iv (RFC 4106 §4, RFC 7634 §2).
    fn aead_key_nonce(self, key: &[u8], iv: &[u8]) -> Result<(LessSafeKey, Nonce), CryptoError> {
        let algorithm = match self {
            Self::AesGcm16_128 => &aead::AES_128_GCM,
            Self::AesGcm16_256 => &aead::AES_256_GCM,
            Self::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Self::AesCbc128 | Self::AesCbc256 => return Err(CryptoError::Internal),
        };
        if key.len() != self.key_len() {
            return Err(CryptoError::KeyLength);
        }
        if iv.len() != AEAD_IV_LEN {
            return Err(CryptoError::IvLength);
        }
        let (cipher_key, salt) = key.split_at(key.len() - SALT_LEN);
        let mut nonce = [0u8; SALT_LEN + AEAD_IV_LEN];
        nonce[..SALT_LEN].copy_from_slice(salt);
        nonce[SALT_LEN..].copy_from_slice(iv);
        let key = UnboundKey::new(algorithm, cipher_key).map_err(|_| CryptoError::KeyLength)?;
        Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
    }
}

impl fmt::Display for EncrAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn check_cbc(alg: EncrAlg, key: &str, iv: &str, plain: &[u8], cipher: &str) {
        let mut buf = plain.to_vec();
        alg.cbc_encrypt(&h(key), &h(iv), &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), cipher);
        alg.cbc_decrypt(&h(key), &h(iv), &mut buf).unwrap();
        assert_eq!(buf, plain);
    }

    // RFC 3602 §4, cases #1-#4 (AES-128-CBC).
    #[test]
    fn aes_cbc_128_matches_rfc3602() {
        let alg = EncrAlg::AesCbc128;
        check_cbc(
            alg,
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg",
            "e353779c1079aeb82708942dbe77181a",
        );
        let plain: Vec<u8> = (0x00..0x20).collect();
        check_cbc(
            alg,
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            &plain,
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        );
        check_cbc(
            alg,
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)",
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
             021c19216bad525c8579695d83ba2684",
        );
        let plain: Vec<u8> = (0xa0..0xe0).collect();
        check_cbc(
            alg,
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            &plain,
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
             35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        );
    }

    // NIST SP 800-38A Appendix F.2.5 (CBC-AES256.Encrypt) and F.2.6 (Decrypt).
    #[test]
    fn aes_cbc_256_matches_sp800_38a() {
        check_cbc(
            EncrAlg::AesCbc256,
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            "000102030405060708090a0b0c0d0e0f",
            &h(
                "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
            ),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
             39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        );
    }

    #[test]
    fn cbc_rejects_bad_lengths_without_touching_data() {
        for alg in [EncrAlg::AesCbc128, EncrAlg::AesCbc256] {
            let key = vec![7; alg.key_len()];
            let iv = [9; 16];
            let mut data = [0x55u8; 33];
            let err = alg.cbc_encrypt(&key, &iv, &mut data).unwrap_err();
            assert_eq!(err, CryptoError::BlockLength);
            assert_eq!(
                alg.cbc_decrypt(&key, &iv, &mut data[..17]),
                Err(CryptoError::BlockLength)
            );
            assert_eq!(data, [0x55; 33]);
            assert_eq!(
                alg.cbc_encrypt(&key[1..], &iv, &mut data[..16]),
                Err(CryptoError::KeyLength)
            );
            assert_eq!(
                alg.cbc_encrypt(&[], &iv, &mut data[..16]),
                Err(CryptoError::KeyLength)
            );
            assert_eq!(
                alg.cbc_decrypt(&key, &iv[..8], &mut data[..16]),
                Err(CryptoError::IvLength)
            );
            assert_eq!(data, [0x55; 33]);
            // An empty message is zero whole blocks.
            alg.cbc_encrypt(&key, &iv, &mut []).unwrap();
        }
        assert_eq!(
            EncrAlg::AesCbc128.cbc_encrypt(&[0; 32], &[0; 16], &mut [0; 16]),
            Err(CryptoError::KeyLength),
            "a 256-bit key for AES-CBC-128"
        );
    }

    #[test]
    fn aead_and_cbc_refuse_each_others_operations() {
        let mut buf = vec![0u8; 16];
        for alg in [EncrAlg::AesGcm16_128, EncrAlg::ChaCha20Poly1305] {
            let key = vec![0; alg.key_len()];
            assert_eq!(
                alg.cbc_encrypt(&key, &[0; 16], &mut buf),
                Err(CryptoError::Internal)
            );
            assert_eq!(
                alg.cbc_decrypt(&key, &[0; 16], &mut buf),
                Err(CryptoError::Internal)
            );
        }
        let alg = EncrAlg::AesCbc256;
        assert_eq!(
            alg.aead_seal(&[0; 32], &[0; 8], b"", &mut buf),
            Err(CryptoError::Internal)
        );
        assert_eq!(
            alg.aead_open(&[0; 32], &[0; 8], b"", &mut buf),
            Err(CryptoError::Internal)
        );
        assert_eq!(buf, [0; 16]);
    }

    /// Seals `plain` and checks ciphertext||tag, then opens it back.
    fn check_aead(alg: EncrAlg, key: &[u8], iv: &[u8], aad: &[u8], plain: &[u8], sealed: &str) {
        let mut buf = plain.to_vec();
        alg.aead_seal(key, iv, aad, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), sealed);
        let n = alg.aead_open(key, iv, aad, &mut buf).unwrap();
        assert_eq!(&buf[..n], plain);
    }

    // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test
    // cases 4 (AES-128) and 16 (AES-256). Their 96-bit IV cafebabefacedbaddecaf888
    // splits into the RFC 4106 salt cafebabe (last 4 bytes of the keying
    // material) and the 8-byte explicit IV facedbaddecaf888.
    #[test]
    fn aes_gcm_16_matches_gcm_spec_cases_4_and_16() {
        let plain = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                       1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let iv = h("facedbaddecaf888");

        let key128 = h("feffe9928665731c6d6a8f9467308308cafebabe");
        check_aead(
            EncrAlg::AesGcm16_128,
            &key128,
            &iv,
            &aad,
            &plain,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091\
             5bc94fbc3221a5db94fae95ae7121a47",
        );
        let key256 = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308cafebabe");
        check_aead(
            EncrAlg::AesGcm16_256,
            &key256,
            &iv,
            &aad,
            &plain,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
             76fc6ece0f4e1768cddf8853bb2d551b",
        );
    }

    // RFC 8439 §2.8.2: the 12-byte nonce 070000004041424344454647 is the
    // RFC 7634 salt 07000000 followed by the 8-byte IV 4041424344454647.
    #[test]
    fn chacha20_poly1305_matches_rfc8439() {
        let mut key: Vec<u8> = (0x80..0xa0).collect();
        key.extend_from_slice(&h("07000000"));
        check_aead(
            EncrAlg::ChaCha20Poly1305,
            &key,
            &h("4041424344454647"),
            &h("50515253c0c1c2c3c4c5c6c7"),
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
              for the future, sunscreen would be it.",
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
             3ff4def08e4b7a9de576d26586cec64b6116\
             1ae10b594f09e26a7e902ecbd0600691",
        );
    }

    #[test]
    fn aead_open_rejects_tampering() {
        for alg in [
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm16_256,
            EncrAlg::ChaCha20Poly1305,
        ] {
            let key = vec![0x11; alg.key_len()];
            let iv = [0x22; 8];
            let mut sealed = b"inner payloads".to_vec();
            alg.aead_seal(&key, &iv, b"IKE header", &mut sealed)
                .unwrap();
            assert_eq!(sealed.len(), 14 + alg.icv_len());

            let open = |key: &[u8], iv: &[u8], aad: &[u8], data: &[u8]| {
                let mut buf = data.to_vec();
                alg.aead_open(key, iv, aad, &mut buf)
            };
            assert_eq!(open(&key, &iv, b"IKE header", &sealed), Ok(14));
            assert_eq!(
                open(&key, &iv, b"IKE headeR", &sealed),
                Err(CryptoError::Integrity)
            );
            assert_eq!(
                open(&key, &[0x23; 8], b"IKE header", &sealed),
                Err(CryptoError::Integrity)
            );
            let mut other_salt = key.clone();
            *other_salt.last_mut().unwrap() ^= 1;
            assert_eq!(
                open(&other_salt, &iv, b"IKE header", &sealed),
                Err(CryptoError::Integrity)
            );
            for i in [0, 13, 14, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[i] ^= 0x80;
                assert_eq!(
                    open(&key, &iv, b"IKE header", &bad),
                    Err(CryptoError::Integrity)
                );
            }
            assert_eq!(
                open(&key, &iv, b"", &sealed[..15]),
                Err(CryptoError::Integrity)
            );
            assert_eq!(open(&key, &iv, b"", &[]), Err(CryptoError::Integrity));
        }
    }

    #[test]
    fn aead_rejects_bad_key_and_iv_lengths() {
        for alg in [
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm16_256,
            EncrAlg::ChaCha20Poly1305,
        ] {
            let key = vec![0; alg.key_len()];
            let mut buf = b"data".to_vec();
            assert_eq!(
                alg.aead_seal(&key[4..], &[0; 8], b"", &mut buf),
                Err(CryptoError::KeyLength)
            );
            assert_eq!(
                alg.aead_seal(&[], &[0; 8], b"", &mut buf),
                Err(CryptoError::KeyLength)
            );
            assert_eq!(
                alg.aead_seal(&key, &[0; 12], b"", &mut buf),
                Err(CryptoError::IvLength)
            );
            assert_eq!(
                alg.aead_seal(&key, &[], b"", &mut buf),
                Err(CryptoError::IvLength)
            );
            assert_eq!(buf, b"data");
            assert_eq!(
                alg.aead_open(&key, &[0; 7], b"", &mut buf),
                Err(CryptoError::IvLength)
            );
            assert_eq!(
                alg.aead_open(&key[1..], &[0; 8], b"", &mut buf),
                Err(CryptoError::KeyLength)
            );
        }
    }

    #[test]
    fn aead_seals_empty_plaintext_to_a_bare_tag() {
        let alg = EncrAlg::AesGcm16_128;
        let key = [3u8; 20];
        let mut buf = Vec::new();
        alg.aead_seal(&key, &[0; 8], b"aad only", &mut buf).unwrap();
        assert_eq!(buf.len(), 16);
        assert_eq!(alg.aead_open(&key, &[0; 8], b"aad only", &mut buf), Ok(0));
    }

    #[test]
    fn sizes_follow_the_rfcs() {
        use EncrAlg::*;
        let table = [
            // alg, key_len, iv_len, block_len, icv_len, aead
            (AesCbc128, 16, 16, 16, 0, false),
            (AesCbc256, 32, 16, 16, 0, false),
            (AesGcm16_128, 20, 8, 4, 16, true),
            (AesGcm16_256, 36, 8, 4, 16, true),
            (ChaCha20Poly1305, 36, 8, 4, 16, true),
        ];
        for (alg, key, iv, block, icv, aead) in table {
            assert_eq!(
                (
                    alg.key_len(),
                    alg.iv_len(),
                    alg.block_len(),
                    alg.icv_len(),
                    alg.is_aead()
                ),
                (key, iv, block, icv, aead),
                "{alg}"
            );
        }
    }

    #[test]
    fn iana_ids_and_key_bits_round_trip() {
        for alg in EncrAlg::ALL {
            assert_eq!(EncrAlg::from_iana(alg.iana(), alg.key_bits()), Some(alg));
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(EncrAlg::from_iana(12, Some(128)), Some(EncrAlg::AesCbc128));
        assert_eq!(
            EncrAlg::from_iana(20, Some(256)),
            Some(EncrAlg::AesGcm16_256)
        );
        assert_eq!(
            EncrAlg::from_iana(28, None),
            Some(EncrAlg::ChaCha20Poly1305)
        );
        assert_eq!(EncrAlg::AesGcm16_256.name(), "AES_GCM_16-256");
        for (id, bits) in [
            (12, None),
            (12, Some(192)),
            (20, None),
            (20, Some(192)),
            (28, Some(256)),
            (3, None),
            (18, Some(128)),
            (19, Some(128)),
            (0, None),
        ] {
            assert_eq!(EncrAlg::from_iana(id, bits), None, "{id} {bits:?}");
        }
    }
}
