//! Pseudorandom functions (IKEv2 Transform Type 2) and prf+ ([RFC 7296 §2.13]).
//!
//! [RFC 7296 §2.13]: https://www.rfc-editor.org/rfc/rfc7296#section-2.13

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

/// An IKEv2 PRF transform (IANA "Transform Type 2").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (2), RFC 2104.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5), RFC 4868.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6), RFC 4868.
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7), RFC 4868.
    HmacSha512,
}

impl PrfAlg {
    /// Every supported PRF, in local preference order (most preferred first).
    pub const ALL: [Self; 4] = [
        Self::HmacSha256,
        Self::HmacSha384,
        Self::HmacSha512,
        Self::HmacSha1,
    ];

    /// The algorithm with IANA Transform ID `id`, if we implement it.
    #[must_use]
    pub fn from_iana(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1),
            5 => Some(Self::HmacSha256),
            6 => Some(Self::HmacSha384),
            7 => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The IANA Transform ID.
    #[must_use]
    pub fn iana(self) -> u16 {
        match self {
            Self::HmacSha1 => 2,
            Self::HmacSha256 => 5,
            Self::HmacSha384 => 6,
            Self::HmacSha512 => 7,
        }
    }

    /// The name as strongSwan prints it (`PRF_HMAC_SHA2_256`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1 => "PRF_HMAC_SHA1",
            Self::HmacSha256 => "PRF_HMAC_SHA2_256",
            Self::HmacSha384 => "PRF_HMAC_SHA2_384",
            Self::HmacSha512 => "PRF_HMAC_SHA2_512",
        }
    }

    /// Output length in bytes; also the preferred key length, which is what
    /// RFC 7296 §2.13 uses for SK_d, SK_pi and SK_pr.
    #[must_use]
    pub fn output_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    /// `prf(key, data[0] | data[1] | ...)`.
    ///
    /// HMAC takes keys of any length (RFC 2104 §3), so this cannot fail.
    #[must_use]
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for part in data {
            ctx.update(part);
        }
        Zeroizing::new(ctx.sign().as_ref().to_vec())
    }

    /// `prf+(key, seed)` truncated to `len` bytes (RFC 7296 §2.13):
    ///
    /// ```text
    /// prf+ (K,S) = T1 | T2 | T3 | T4 | ...
    /// T1 = prf (K, S | 0x01)
    /// T2 = prf (K, T1 | S | 0x02)
    /// ```
    ///
    /// "The prf+ function is not defined beyond 255 times the size of the prf
    /// function output": longer requests are capped at `255 * output_len()`
    /// bytes rather than wrapping the counter, so the result may be shorter
    /// than `len`. No IKEv2 key derivation comes near the cap.
    #[must_use]
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let len = len.min(255 * self.output_len());
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let mut previous = Zeroizing::new(Vec::new());
        for counter in 1..=255u8 {
            if out.len() >= len {
                break;
            }
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(&previous);
            ctx.update(seed);
            ctx.update(&[counter]);
            previous.clear();
            previous.extend_from_slice(ctx.sign().as_ref());
            let take = previous.len().min(len - out.len());
            out.extend_from_slice(&previous[..take]);
        }
        out
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha384 => hmac::HMAC_SHA384,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

impl fmt::Display for PrfAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn prf_hex(alg: PrfAlg, key: &[u8], data: &[u8]) -> String {
        hex::encode(&*alg.compute(key, &[data]))
    }

    // RFC 2202 §3, test cases 1-3 (HMAC-SHA-1).
    #[test]
    fn hmac_sha1_matches_rfc2202() {
        let alg = PrfAlg::HmacSha1;
        assert_eq!(
            prf_hex(alg, &[0x0b; 20], b"Hi There"),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            prf_hex(alg, b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            prf_hex(alg, &[0xaa; 20], &[0xdd; 50]),
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3"
        );
    }

    // RFC 4231 §4.2, §4.3 and §4.7 (test cases 1, 2 and 6: the 131-byte key
    // exercises the hash-the-key-first path). RFC 4868 §2.7.1 reuses these as
    // its PRF_HMAC_SHA2_* vectors.
    #[test]
    fn hmac_sha2_matches_rfc4231() {
        let cases: [(&[u8], &[u8]); 3] = [
            (&[0x0b; 20], b"Hi There"),
            (b"Jefe", b"what do ya want for nothing?"),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
            ),
        ];
        let sha256 = [
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ];
        let sha384 = [
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
             faea9ea9076ede7f4af152e8b2fa9cb6",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
             0c2ef6ab4030fe8296248df163f44952",
        ];
        let sha512 = [
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
             daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        ];
        for (i, (key, data)) in cases.iter().enumerate() {
            assert_eq!(prf_hex(PrfAlg::HmacSha256, key, data), sha256[i]);
            assert_eq!(prf_hex(PrfAlg::HmacSha384, key, data), sha384[i]);
            assert_eq!(prf_hex(PrfAlg::HmacSha512, key, data), sha512[i]);
        }
    }

    // RFC 4868 §2.7.2, test cases 1-3 of each family (keys of the PRF's own
    // output length, as IKEv2 uses them); the full PRF output is listed there.
    #[test]
    fn prf_hmac_sha2_matches_rfc4868_full_length_keys() {
        let vectors = [
            (
                PrfAlg::HmacSha256,
                "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
                "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6",
                "cdcb1220d1ecccea91e53aba3092f962e549fe6ce9ed7fdc43191fbde45c30b0",
            ),
            (
                PrfAlg::HmacSha384,
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc\
                 4c5df61d5b3297b4fb68dab9f1b582c2",
                "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184da86a368e9b8e16f5\
                 349524ca4e82400cbde0686d403371c9",
                "809f439be00274321d4a538652164b53554a508184a0c3160353e3428597003d\
                 35914a18770f9443987054944b7c4b4a",
            ),
            (
                PrfAlg::HmacSha512,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8\
                 ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
                "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454\
                 6aa334ae9fb9afc2184932d8695e397bfa0ffb93466cfcceaae38c833b7dba38",
                "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8\
                 623c7b55cebefccf02d5581acc1c9d5fb1ff68a1de45509fbe4da9a433922655",
            ),
        ];
        for (alg, hi_there, jefe, dd) in vectors {
            let n = alg.output_len();
            let jefe_key: Vec<u8> = b"Jefe".iter().copied().cycle().take(n).collect();
            assert_eq!(prf_hex(alg, &vec![0x0b; n], b"Hi There"), hi_there);
            assert_eq!(
                prf_hex(alg, &jefe_key, b"what do ya want for nothing?"),
                jefe
            );
            assert_eq!(prf_hex(alg, &vec![0xaa; n], &[0xdd; 50]), dd);
        }
    }

    #[test]
    fn compute_concatenates_data_parts() {
        let alg = PrfAlg::HmacSha256;
        let whole = alg.compute(b"key", &[b"Ni | Nr | SPIi | SPIr"]);
        let parts = alg.compute(b"key", &[b"Ni | ", b"", b"Nr | SPIi", b" | SPIr"]);
        assert_eq!(whole, parts);
        assert_eq!(whole.len(), alg.output_len());
    }

    /// prf+ written out from the RFC 7296 §2.13 definition with ring's HMAC,
    /// independently of `prf_plus`'s loop.
    fn prf_plus_by_definition(alg: hmac::Algorithm, key: &[u8], seed: &[u8], n: u8) -> Vec<u8> {
        let key = hmac::Key::new(alg, key);
        let mut t_prev: Vec<u8> = Vec::new();
        let mut stream = Vec::new();
        for i in 1..=n {
            let mut input = t_prev.clone();
            input.extend_from_slice(seed);
            input.push(i);
            t_prev = hmac::sign(&key, &input).as_ref().to_vec();
            stream.extend_from_slice(&t_prev);
        }
        stream
    }

    #[test]
    fn prf_plus_matches_its_definition() {
        let key = b"SKEYSEED-like key material......";
        let seed = b"Ni | Nr | SPIi | SPIr";
        for alg in PrfAlg::ALL {
            let stream = prf_plus_by_definition(alg.hmac_algorithm(), key, seed, 5);
            for len in [
                0,
                1,
                alg.output_len() - 1,
                alg.output_len(),
                3 * alg.output_len() + 7,
            ] {
                assert_eq!(
                    &alg.prf_plus(key, seed, len)[..],
                    &stream[..len],
                    "{alg} len {len}"
                );
            }
        }
    }

    #[test]
    fn prf_plus_first_block_is_prf_of_seed_and_one() {
        let alg = PrfAlg::HmacSha1;
        let t1 = alg.compute(b"k", &[b"seed", &[1]]);
        assert_eq!(alg.prf_plus(b"k", b"seed", 20), t1);
    }

    #[test]
    fn prf_plus_caps_at_255_blocks() {
        let alg = PrfAlg::HmacSha256;
        let cap = 255 * alg.output_len();
        let stream = alg.prf_plus(b"k", b"s", usize::MAX);
        assert_eq!(stream.len(), cap);
        assert_eq!(alg.prf_plus(b"k", b"s", cap + 1), stream);
        let last = prf_plus_by_definition(hmac::HMAC_SHA256, b"k", b"s", 255);
        assert_eq!(&stream[..], &last[..]);
    }

    #[test]
    fn iana_ids_round_trip_and_names_match_strongswan() {
        for alg in PrfAlg::ALL {
            assert_eq!(PrfAlg::from_iana(alg.iana()), Some(alg));
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(PrfAlg::from_iana(5), Some(PrfAlg::HmacSha256));
        assert_eq!(PrfAlg::HmacSha512.name(), "PRF_HMAC_SHA2_512");
        for unknown in [0, 1, 3, 4, 8, 9, 1024, u16::MAX] {
            assert_eq!(PrfAlg::from_iana(unknown), None);
        }
    }
}
