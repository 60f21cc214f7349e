//! Key exchange groups (IKEv2 Transform Type 4): MODP ([RFC 3526]), NIST ECP
//! ([RFC 5903]) and Curve25519 ([RFC 8031]).
//!
//! One secret per exchange: [`DhGroup::generate`] draws a private key and
//! computes the KE payload data, [`DhSecret::agree`] consumes the secret with
//! the peer's KE data and returns g^ir in the form IKE feeds to the PRF.
//!
//! Backends: ring for P-256, P-384 and X25519 (ring draws those private keys
//! from the OS itself, because its `SecureRandom` is sealed); `crypto-bigint`
//! for MODP and `p521` for P-521, where the private key comes from the
//! caller's [`Random`].
//!
//! [RFC 3526]: https://www.rfc-editor.org/rfc/rfc3526
//! [RFC 5903]: https://www.rfc-editor.org/rfc/rfc5903
//! [RFC 8031]: https://www.rfc-editor.org/rfc/rfc8031

mod ecp521;
mod modp;

use std::fmt;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{CryptoError, Random};

/// SEC 1 tag of an uncompressed point, which IKE leaves off (RFC 5903 §7).
const SEC1_UNCOMPRESSED: u8 = 0x04;

/// An IKEv2 key exchange group (IANA "Transform Type 4").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 2048-bit MODP group (14), RFC 3526 §3.
    Modp2048,
    /// 3072-bit MODP group (15), RFC 3526 §4.
    Modp3072,
    /// 4096-bit MODP group (16), RFC 3526 §5.
    Modp4096,
    /// 256-bit random ECP group, NIST P-256 (19), RFC 5903 §3.1.
    Ecp256,
    /// 384-bit random ECP group, NIST P-384 (20), RFC 5903 §3.2.
    Ecp384,
    /// 521-bit random ECP group, NIST P-521 (21), RFC 5903 §3.3.
    Ecp521,
    /// Curve25519 (31), RFC 8031.
    Curve25519,
}

impl DhGroup {
    /// Every supported group, in local preference order (most preferred
    /// first): the elliptic curves, then MODP from 3072 bits.
    pub const ALL: [Self; 7] = [
        Self::Curve25519,
        Self::Ecp256,
        Self::Ecp384,
        Self::Ecp521,
        Self::Modp3072,
        Self::Modp4096,
        Self::Modp2048,
    ];

    /// The group with IANA Transform ID `id`, if we implement it.
    #[must_use]
    pub fn from_iana(id: u16) -> Option<Self> {
        match id {
            14 => Some(Self::Modp2048),
            15 => Some(Self::Modp3072),
            16 => Some(Self::Modp4096),
            19 => Some(Self::Ecp256),
            20 => Some(Self::Ecp384),
            21 => Some(Self::Ecp521),
            31 => Some(Self::Curve25519),
            _ => None,
        }
    }

    /// The IANA Transform ID (the "Diffie-Hellman Group Num" of a KE payload).
    #[must_use]
    pub fn iana(self) -> u16 {
        match self {
            Self::Modp2048 => 14,
            Self::Modp3072 => 15,
            Self::Modp4096 => 16,
            Self::Ecp256 => 19,
            Self::Ecp384 => 20,
            Self::Ecp521 => 21,
            Self::Curve25519 => 31,
        }
    }

    /// The name as strongSwan prints it (`ECP_256`, `CURVE_25519`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Modp2048 => "MODP_2048",
            Self::Modp3072 => "MODP_3072",
            Self::Modp4096 => "MODP_4096",
            Self::Ecp256 => "ECP_256",
            Self::Ecp384 => "ECP_384",
            Self::Ecp521 => "ECP_521",
            Self::Curve25519 => "CURVE_25519",
        }
    }

    /// Length of the KE payload's key exchange data: the prime length for
    /// MODP (RFC 7296 §3.4), x||y for ECP (RFC 5903 §7), 32 for Curve25519
    /// (RFC 8031 §2).
    #[must_use]
    pub fn public_len(self) -> usize {
        match self {
            Self::Modp2048 => 256,
            Self::Modp3072 => 384,
            Self::Modp4096 => 512,
            Self::Ecp256 => 64,
            Self::Ecp384 => 96,
            Self::Ecp521 => 132,
            Self::Curve25519 => 32,
        }
    }

    /// Draws a fresh private key and computes its public value.
    ///
    /// `rng` supplies the private key for MODP and P-521. For P-256, P-384
    /// and X25519 ring draws the key from the OS itself and `rng` is unused,
    /// so those public values are never reproducible from a seed.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if a random source failed;
    /// [`CryptoError::Internal`] if the backend failed.
    pub fn generate(self, rng: &mut dyn Random) -> Result<DhSecret, CryptoError> {
        let (private, public) = match self {
            Self::Modp2048 | Self::Modp3072 | Self::Modp4096 => {
                let (x, public) = modp::generate(self, rng)?;
                (Private::Modp(x), public)
            }
            Self::Ecp521 => {
                let (key, public) = ecp521::generate(rng)?;
                (Private::Ecp521(key), public)
            }
            Self::Ecp256 => ring_generate(&agreement::ECDH_P256, self)?,
            Self::Ecp384 => ring_generate(&agreement::ECDH_P384, self)?,
            Self::Curve25519 => ring_generate(&agreement::X25519, self)?,
        };
        Ok(DhSecret {
            group: self,
            public,
            private,
        })
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A private key for one exchange, with its public value.
///
/// Not `Clone`: a secret is used for exactly one [`agree`](Self::agree),
/// which consumes it. MODP and P-521 private keys are zeroized on drop; ring
/// keeps its own keys and does not expose them for wiping.
pub struct DhSecret {
    group: DhGroup,
    public: Vec<u8>,
    private: Private,
}

/// The private half, per backend.
enum Private {
    /// MODP exponent, see [`modp`] for its size.
    Modp(Zeroizing<modp::Exponent>),
    /// P-521 scalar; `p521::SecretKey` zeroizes itself on drop.
    Ecp521(p521::SecretKey),
    /// ring's P-256, P-384 or X25519 key.
    Ring(EphemeralPrivateKey),
}

impl DhSecret {
    /// The group this secret belongs to.
    #[must_use]
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The KE payload data: MODP big-endian left-padded to the prime length;
    /// ECP x||y without the 0x04 prefix (RFC 5903 §7); X25519 the 32-byte
    /// u-coordinate (RFC 8031 §2).
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// Computes the shared secret g^ir from the peer's KE data.
    ///
    /// - MODP: g^xy left-padded to the prime length (RFC 7296 §2.14); the peer
    ///   value y must satisfy 1 < y < p-1 (NIST SP 800-56A §5.6.2.3.1).
    /// - ECP: the x-coordinate only (RFC 5903 §9); the peer point must be on
    ///   the curve.
    /// - X25519: the 32-byte result, which must not be all zeros (RFC 8031 §2).
    ///
    /// # Errors
    /// [`CryptoError::PeerPublic`] if `peer_public` has the wrong length, is
    /// out of range or not on the curve, or yields an all-zero X25519 secret.
    pub fn agree(self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if peer_public.len() != self.group.public_len() {
            return Err(CryptoError::PeerPublic);
        }
        match self.private {
            Private::Modp(x) => modp::agree(self.group, &x, peer_public),
            Private::Ecp521(key) => ecp521::agree(&key, peer_public),
            Private::Ring(key) => ring_agree(self.group, key, peer_public),
        }
    }
}

impl fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhSecret")
            .field("group", &self.group)
            .field("public_len", &self.public.len())
            .finish_non_exhaustive()
    }
}

/// A ring ephemeral key and its public value in IKE encoding.
fn ring_generate(
    algorithm: &'static agreement::Algorithm,
    group: DhGroup,
) -> Result<(Private, Vec<u8>), CryptoError> {
    let key = EphemeralPrivateKey::generate(algorithm, &SystemRandom::new())
        .map_err(|_| CryptoError::Random)?;
    let public = key
        .compute_public_key()
        .map_err(|_| CryptoError::Internal)?;
    let public = if group == DhGroup::Curve25519 {
        public.as_ref()
    } else {
        match public.as_ref().split_first() {
            Some((&SEC1_UNCOMPRESSED, xy)) => xy,
            _ => return Err(CryptoError::Internal),
        }
    };
    if public.len() != group.public_len() {
        return Err(CryptoError::Internal);
    }
    Ok((Private::Ring(key), public.to_vec()))
}

/// ring agreement: ring validates the peer point (on-curve for ECP) and
/// rejects an all-zero X25519 result; we check the latter again.
fn ring_agree(
    group: DhGroup,
    key: EphemeralPrivateKey,
    peer_public: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let algorithm = key.algorithm();
    let mut encoded = Vec::with_capacity(peer_public.len() + 1);
    if group != DhGroup::Curve25519 {
        encoded.push(SEC1_UNCOMPRESSED);
    }
    encoded.extend_from_slice(peer_public);
    let peer = UnparsedPublicKey::new(algorithm, encoded);
    let shared = agreement::agree_ephemeral(key, &peer, |secret| Zeroizing::new(secret.to_vec()))
        .map_err(|_| CryptoError::PeerPublic)?;
    // RFC 8031 §2: "all-zero value ... MUST be rejected" (X25519 only; an
    // ECP x-coordinate of zero is a valid point).
    if group == DhGroup::Curve25519 && bool::from(shared.ct_eq(&[0u8; 32][..])) {
        return Err(CryptoError::PeerPublic);
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crypto::{OsRandom, SeededRandom};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    // RFC 5903 §8.1 and §8.2: the responder's public values (grx || gry) and,
    // for the off-curve check, the same point with one bit of y flipped. ring
    // cannot take a fixed private key, so the §8 shared secrets for P-256 and
    // P-384 cannot be reproduced here (P-521's are, in `ecp521`).
    const RFC5903_P256_GR: &str = "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63\
                                   56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB";
    const RFC5903_P384_GR: &str = "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D\
                                   0D1AC43A 0336DEF9 6FDA41D0 774A3571 DCFBEC7A ACF31964 72169E83 8430367F\
                                   66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF 5EAAD96D B9E6386C";

    #[test]
    fn every_group_agrees_with_itself() {
        let mut rng = SeededRandom::new(31);
        for group in DhGroup::ALL {
            let a = group.generate(&mut rng).unwrap();
            let b = group.generate(&mut rng).unwrap();
            assert_eq!(a.group(), group);
            assert_eq!(a.public_key().len(), group.public_len(), "{group}");
            assert_ne!(a.public_key(), b.public_key(), "{group}");
            let a_pub = a.public_key().to_vec();
            let ab = a.agree(b.public_key()).unwrap();
            let ba = b.agree(&a_pub).unwrap();
            assert_eq!(ab, ba, "{group}");
            let secret_len = match group {
                DhGroup::Ecp256 => 32,
                DhGroup::Ecp384 => 48,
                DhGroup::Ecp521 => 66,
                _ => group.public_len(),
            };
            assert_eq!(ab.len(), secret_len, "{group}");
        }
    }

    #[test]
    fn agree_rejects_wrong_lengths() {
        for group in DhGroup::ALL {
            let peer = group.generate(&mut OsRandom).unwrap();
            let good = peer.public_key();
            for bad in [
                &good[..good.len() - 1],
                &[][..],
                &[good, &[0][..]].concat()[..],
            ] {
                let ours = group.generate(&mut OsRandom).unwrap();
                assert_eq!(ours.agree(bad), Err(CryptoError::PeerPublic), "{group}");
            }
            let mut with_prefix = vec![SEC1_UNCOMPRESSED];
            with_prefix.extend_from_slice(good);
            let ours = group.generate(&mut OsRandom).unwrap();
            assert_eq!(
                ours.agree(&with_prefix),
                Err(CryptoError::PeerPublic),
                "{group}"
            );
        }
    }

    #[test]
    fn ecp_accepts_rfc5903_public_values_and_rejects_off_curve_points() {
        for (group, gr) in [
            (DhGroup::Ecp256, h(RFC5903_P256_GR)),
            (DhGroup::Ecp384, h(RFC5903_P384_GR)),
        ] {
            assert_eq!(gr.len(), group.public_len());
            let ours = group.generate(&mut OsRandom).unwrap();
            assert_eq!(ours.agree(&gr).unwrap().len(), group.public_len() / 2);

            let mut off_curve = gr.clone();
            *off_curve.last_mut().unwrap() ^= 1;
            let ours = group.generate(&mut OsRandom).unwrap();
            assert_eq!(
                ours.agree(&off_curve),
                Err(CryptoError::PeerPublic),
                "{group}"
            );

            for filler in [0x00, 0xff] {
                let ours = group.generate(&mut OsRandom).unwrap();
                let bogus = vec![filler; group.public_len()];
                assert_eq!(ours.agree(&bogus), Err(CryptoError::PeerPublic), "{group}");
            }
        }
    }

    // RFC 7748 §6.1 / RFC 8031 §2: low-order points give an all-zero shared
    // secret, which MUST be rejected. u = 0 and u = 1 are two such points.
    #[test]
    fn x25519_rejects_low_order_points() {
        let mut one = [0u8; 32];
        one[0] = 1;
        for point in [[0u8; 32], one] {
            let ours = DhGroup::Curve25519.generate(&mut OsRandom).unwrap();
            assert_eq!(ours.agree(&point), Err(CryptoError::PeerPublic));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let secret = DhGroup::Modp2048
            .generate(&mut SeededRandom::new(1))
            .unwrap();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "DhSecret { group: Modp2048, public_len: 256, .. }");
    }

    #[test]
    fn iana_ids_round_trip_and_names_match_strongswan() {
        for group in DhGroup::ALL {
            assert_eq!(DhGroup::from_iana(group.iana()), Some(group));
            assert_eq!(group.to_string(), group.name());
        }
        assert_eq!(DhGroup::from_iana(31), Some(DhGroup::Curve25519));
        assert_eq!(DhGroup::Ecp521.name(), "ECP_521");
        for unknown in [0, 1, 2, 5, 17, 18, 22, 32, u16::MAX] {
            assert_eq!(DhGroup::from_iana(unknown), None);
        }
    }
}
