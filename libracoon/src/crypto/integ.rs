//! Integrity algorithms (IKEv2 Transform Type 3): truncated HMACs for IKE SK
//! payloads and non-AEAD ESP.

use std::fmt;

use ring::hmac;

use super::ct_eq;

/// An IKEv2/ESP integrity transform (IANA "Transform Type 3").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96 (2), RFC 2404.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), RFC 4868.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13), RFC 4868.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14), RFC 4868.
    HmacSha512_256,
}

impl IntegAlg {
    /// Every supported integrity algorithm, in local preference order (most
    /// preferred first).
    pub const ALL: [Self; 4] = [
        Self::HmacSha256_128,
        Self::HmacSha384_192,
        Self::HmacSha512_256,
        Self::HmacSha1_96,
    ];

    /// The algorithm with IANA Transform ID `id`, if we implement it.
    #[must_use]
    pub fn from_iana(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1_96),
            12 => Some(Self::HmacSha256_128),
            13 => Some(Self::HmacSha384_192),
            14 => Some(Self::HmacSha512_256),
            _ => None,
        }
    }

    /// The IANA Transform ID.
    #[must_use]
    pub fn iana(self) -> u16 {
        match self {
            Self::HmacSha1_96 => 2,
            Self::HmacSha256_128 => 12,
            Self::HmacSha384_192 => 13,
            Self::HmacSha512_256 => 14,
        }
    }

    /// The name as strongSwan prints it (`HMAC_SHA2_256_128`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1_96 => "HMAC_SHA1_96",
            Self::HmacSha256_128 => "HMAC_SHA2_256_128",
            Self::HmacSha384_192 => "HMAC_SHA2_384_192",
            Self::HmacSha512_256 => "HMAC_SHA2_512_256",
        }
    }

    /// Key length in bytes: the hash output length (RFC 2404 §3, RFC 4868
    /// §2.1.1), which is how much keying material SK_a / KEYMAT supplies.
    #[must_use]
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// ICV (truncated MAC) length in bytes.
    #[must_use]
    pub fn icv_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    /// The ICV of `data`: the HMAC truncated to [`icv_len`](Self::icv_len)
    /// bytes, leftmost bytes kept (RFC 4868 §2.3).
    ///
    /// HMAC accepts any key length, so this cannot fail; the caller is
    /// responsible for drawing [`key_len`](Self::key_len) bytes of key.
    #[must_use]
    pub fn compute(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        let tag = hmac::sign(&key, data);
        tag.as_ref()[..self.icv_len()].to_vec()
    }

    /// Whether `icv` is the ICV of `data`, compared in constant time.
    ///
    /// An `icv` of the wrong length is simply rejected.
    #[must_use]
    pub fn verify(self, key: &[u8], data: &[u8], icv: &[u8]) -> bool {
        ct_eq(&self.compute(key, data), icv)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::HmacSha256_128 => hmac::HMAC_SHA256,
            Self::HmacSha384_192 => hmac::HMAC_SHA384,
            Self::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

impl fmt::Display for IntegAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icv_hex(alg: IntegAlg, key: &[u8], data: &[u8]) -> String {
        hex::encode(alg.compute(key, data))
    }

    // RFC 2404 §5 reuses the RFC 2202 HMAC-SHA-1 cases; the ICV is the first
    // 96 bits of the HMAC.
    #[test]
    fn hmac_sha1_96_matches_rfc2404() {
        let alg = IntegAlg::HmacSha1_96;
        assert_eq!(
            icv_hex(alg, &[0x0b; 20], b"Hi There"),
            "b617318655057264e28bc0b6"
        );
        assert_eq!(
            icv_hex(alg, b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5"
        );
        assert_eq!(
            icv_hex(alg, &[0xaa; 20], &[0xdd; 50]),
            "125d7342b9ac11cd91a39af4"
        );
    }

    // RFC 4868 §2.7.2.1 (AUTH256-1..4), §2.7.2.2 (AUTH384-1..3) and §2.7.2.3
    // (AUTH512-1..3): keys of the full hash length, truncated outputs.
    #[test]
    fn truncated_hmac_sha2_matches_rfc4868() {
        let mut seq_key = [0u8; 32];
        for (i, b) in seq_key.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let alg = IntegAlg::HmacSha256_128;
        assert_eq!(
            icv_hex(alg, &[0x0b; 32], b"Hi There"),
            "198a607eb44bfbc69903a0f1cf2bbdc5"
        );
        assert_eq!(
            icv_hex(alg, &b"Jefe".repeat(8), b"what do ya want for nothing?"),
            "167f928588c5cc2eef8e3093caa0e87c"
        );
        assert_eq!(
            icv_hex(alg, &[0xaa; 32], &[0xdd; 50]),
            "cdcb1220d1ecccea91e53aba3092f962"
        );
        assert_eq!(
            icv_hex(alg, &seq_key, &[0xcd; 50]),
            "372efcf9b40b35c2115b1346903d2ef4"
        );

        let alg = IntegAlg::HmacSha384_192;
        assert_eq!(
            icv_hex(alg, &[0x0b; 48], b"Hi There"),
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"
        );
        assert_eq!(
            icv_hex(alg, &b"Jefe".repeat(12), b"what do ya want for nothing?"),
            "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d"
        );
        assert_eq!(
            icv_hex(alg, &[0xaa; 48], &[0xdd; 50]),
            "809f439be00274321d4a538652164b53554a508184a0c316"
        );

        let alg = IntegAlg::HmacSha512_256;
        assert_eq!(
            icv_hex(alg, &[0x0b; 64], b"Hi There"),
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"
        );
        assert_eq!(
            icv_hex(alg, &b"Jefe".repeat(16), b"what do ya want for nothing?"),
            "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454"
        );
        assert_eq!(
            icv_hex(alg, &[0xaa; 64], &[0xdd; 50]),
            "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8"
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_icv() {
        for alg in IntegAlg::ALL {
            let key = vec![0x42; alg.key_len()];
            let icv = alg.compute(&key, b"message");
            assert_eq!(icv.len(), alg.icv_len());
            assert!(alg.verify(&key, b"message", &icv));
            assert!(!alg.verify(&key, b"messagf", &icv));
            assert!(!alg.verify(&key[1..], b"message", &icv));
            let mut flipped = icv.clone();
            flipped[alg.icv_len() - 1] ^= 1;
            assert!(!alg.verify(&key, b"message", &flipped));
            assert!(!alg.verify(&key, b"message", &icv[..alg.icv_len() - 1]));
            assert!(!alg.verify(&key, b"message", &[]));
            let mut longer = icv.clone();
            longer.push(0);
            assert!(!alg.verify(&key, b"message", &longer));
        }
    }

    #[test]
    fn iana_ids_round_trip_and_names_match_strongswan() {
        for alg in IntegAlg::ALL {
            assert_eq!(IntegAlg::from_iana(alg.iana()), Some(alg));
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(IntegAlg::from_iana(12), Some(IntegAlg::HmacSha256_128));
        assert_eq!(IntegAlg::HmacSha384_192.name(), "HMAC_SHA2_384_192");
        for unknown in [0, 1, 3, 5, 8, 11, 15, u16::MAX] {
            assert_eq!(IntegAlg::from_iana(unknown), None);
        }
    }
}
