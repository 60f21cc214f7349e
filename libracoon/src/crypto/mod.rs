//! Every cryptographic algorithm racoon3 uses, behind one module.
//!
//! The IKEv2 transform registry ([RFC 7296 §3.3.2]) maps onto four enums, one
//! per transform type, each with `from_iana`/`iana`/`name` and the operations
//! the protocol needs:
//!
//! | type | enum | algorithms |
//! |---|---|---|
//! | 1 ENCR | [`EncrAlg`] | AES-CBC-128/256, AES-GCM-16-128/256, ChaCha20-Poly1305 |
//! | 2 PRF | [`PrfAlg`] | HMAC-SHA1, HMAC-SHA2-256/384/512, and IKEv2 prf+ |
//! | 3 INTEG | [`IntegAlg`] | HMAC-SHA1-96, HMAC-SHA2-256-128/384-192/512-256 |
//! | 4 KE | [`DhGroup`] | MODP 2048/3072/4096, ECP 256/384/521, Curve25519 |
//!
//! Each enum's `ALL` lists its members in local preference order, most
//! preferred first.
//!
//! **Backends.** ring does the work wherever it has the algorithm (HMAC,
//! AES-GCM, ChaCha20-Poly1305, P-256, P-384, X25519, SHA-1, the OS random
//! source). RustCrypto fills the gaps ring leaves: `aes` + `cbc` for AES-CBC
//! without padding, `crypto-bigint` for constant-time MODP exponentiation and
//! `p521` for group 21. No algorithm is implemented here by hand.
//!
//! **Randomness is an input.** Protocol code draws SPIs, nonces, IVs and MODP /
//! P-521 private keys through [`Random`], so a simulator can pass a
//! [`SeededRandom`]. ring's `SecureRandom` is sealed, so ring's own ephemeral
//! keys (P-256, P-384, X25519) always come from the OS.
//!
//! **No panics on input.** Wrong key, IV or block lengths and bad peer public
//! values return a [`CryptoError`]. Secret material is returned in
//! [`zeroize::Zeroizing`] buffers; ring does not expose its internal key
//! schedules for wiping, which is a known limitation of that backend.
//!
//! [RFC 7296 §3.3.2]: https://www.rfc-editor.org/rfc/rfc7296#section-3.3.2

#![deny(clippy::unwrap_used)]

pub mod dh;
pub mod encr;
pub mod integ;
pub mod prf;
pub mod rand;

use ring::digest;
use subtle::ConstantTimeEq;

pub use dh::{DhGroup, DhSecret};
pub use encr::EncrAlg;
pub use integ::IntegAlg;
pub use prf::PrfAlg;
pub use rand::{OsRandom, Random, SeededRandom};

/// Why a cryptographic operation failed.
///
/// Every variant is a plain fact about the input or the backend: the caller
/// decides what it means for the protocol (for example, [`Integrity`] on an
/// IKE SK payload means "drop the message silently", RFC 7296 §2.21.2).
///
/// [`Integrity`]: CryptoError::Integrity
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key is not the length the algorithm needs (including any salt).
    #[error("bad key length")]
    KeyLength,
    /// The IV is not the length the algorithm needs.
    #[error("bad IV length")]
    IvLength,
    /// CBC data is not a multiple of the 16-byte block.
    #[error("data is not a whole number of cipher blocks")]
    BlockLength,
    /// An AEAD tag did not verify (or the input was too short to hold one).
    #[error("integrity check failed")]
    Integrity,
    /// The peer's KE data is malformed, off the curve or out of range.
    #[error("invalid peer public value")]
    PeerPublic,
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// The backend failed, or an operation was asked of an algorithm that
    /// does not have it (for example, CBC on an AEAD).
    #[error("algorithm failure")]
    Internal,
}

/// SHA-1 over the concatenation of `parts`.
///
/// Used for the NAT detection hashes (RFC 7296 §2.23), where SHA-1 is fixed by
/// the protocol; it is not a security primitive here.
#[must_use]
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// Returns `false` if the lengths differ (lengths are not secret here: ICV and
/// AUTH lengths are fixed by the negotiated algorithms).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // FIPS 180-4 / RFC 3174 §7.3 test vectors.
    #[test]
    fn sha1_matches_fips_180_vectors() {
        assert_eq!(
            hex::encode(sha1(&[b"abc"])),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(&[
                b"abcdbcdecdefdefgefghfghighijhi",
                b"jkijkljklmklmnlmnomnopnopq"
            ])),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex::encode(sha1(&[])),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn errors_print_their_messages() {
        assert_eq!(CryptoError::Integrity.to_string(), "integrity check failed");
        assert_eq!(
            CryptoError::BlockLength.to_string(),
            "data is not a whole number of cipher blocks"
        );
    }
}
