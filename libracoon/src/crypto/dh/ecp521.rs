//! Group 21, NIST P-521 ([RFC 5903]), on the `p521` crate: ring has no P-521.
//!
//! [RFC 5903]: https://www.rfc-editor.org/rfc/rfc5903

use p521::elliptic_curve::sec1::ToSec1Point;
use p521::{FieldBytes, PublicKey, SecretKey};
use zeroize::Zeroizing;

use super::SEC1_UNCOMPRESSED;
use crate::crypto::{CryptoError, Random};

/// Length of one coordinate and of a scalar: ceil(521 / 8).
const COORD_LEN: usize = 66;

/// Draws beyond this many out-of-range candidates mean the source is broken
/// (each draw is in range with probability > 1 - 2^-260).
const MAX_DRAWS: usize = 16;

/// Draws a private scalar by rejection sampling and computes its public value
/// x||y (RFC 5903 §7).
///
/// Each candidate is 521 random bits (the top 7 bits of the 66-byte string
/// cleared), accepted if it lies in [1, n-1]: uniform, with no modular bias.
pub(super) fn generate(rng: &mut dyn Random) -> Result<(SecretKey, Vec<u8>), CryptoError> {
    for _ in 0..MAX_DRAWS {
        let mut bytes = Zeroizing::new(FieldBytes::default());
        rng.fill(&mut bytes[..])?;
        bytes[0] &= 0x01;
        if let Ok(key) = SecretKey::from_bytes(&bytes) {
            let public = public_value(&key)?;
            return Ok((key, public));
        }
    }
    Err(CryptoError::Random)
}

/// The x-coordinate of our scalar times the peer's point (RFC 5903 §9).
///
/// `PublicKey::from_sec1_bytes` rejects coordinates >= p, points off the
/// curve and the identity.
pub(super) fn agree(key: &SecretKey, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if peer.len() != 2 * COORD_LEN {
        return Err(CryptoError::PeerPublic);
    }
    let mut encoded = Vec::with_capacity(1 + peer.len());
    encoded.push(SEC1_UNCOMPRESSED);
    encoded.extend_from_slice(peer);
    let peer = PublicKey::from_sec1_bytes(&encoded).map_err(|_| CryptoError::PeerPublic)?;
    let shared = key.diffie_hellman(&peer);
    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
}

/// Our public value in IKE encoding: x||y without the SEC 1 prefix.
fn public_value(key: &SecretKey) -> Result<Vec<u8>, CryptoError> {
    let point = key.public_key().to_sec1_point(false);
    match point.as_bytes().split_first() {
        Some((&SEC1_UNCOMPRESSED, xy)) if xy.len() == 2 * COORD_LEN => Ok(xy.to_vec()),
        _ => Err(CryptoError::Internal),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crypto::SeededRandom;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    // RFC 5903 §8.3, "521-Bit Random ECP Group".
    const I: &str = "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0\
                     95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D\
                     4A52";
    const GIX: &str = "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE\
                       E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C\
                       ED3E";
    const GIY: &str = "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A\
                       D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F\
                       9582";
    const R: &str = "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E\
                     9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168\
                     5EB9";
    const GRX: &str = "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21\
                       9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9\
                       460F";
    const GRY: &str = "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87\
                       220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F\
                       C56A";
    const GIRX: &str = "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04\
                        D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3\
                        DDEA";

    fn key(hex_scalar: &str) -> SecretKey {
        SecretKey::from_slice(&h(hex_scalar)).unwrap()
    }

    fn concat(x: &str, y: &str) -> Vec<u8> {
        [h(x), h(y)].concat()
    }

    #[test]
    fn public_values_match_rfc5903() {
        assert_eq!(public_value(&key(I)).unwrap(), concat(GIX, GIY));
        assert_eq!(public_value(&key(R)).unwrap(), concat(GRX, GRY));
    }

    #[test]
    fn shared_secret_matches_rfc5903() {
        let girx = h(GIRX);
        assert_eq!(&agree(&key(I), &concat(GRX, GRY)).unwrap()[..], &girx[..]);
        assert_eq!(&agree(&key(R), &concat(GIX, GIY)).unwrap()[..], &girx[..]);
    }

    #[test]
    fn off_curve_and_malformed_points_are_rejected() {
        let i = key(I);
        let mut off_curve = concat(GRX, GRY);
        *off_curve.last_mut().unwrap() ^= 1;
        assert_eq!(agree(&i, &off_curve), Err(CryptoError::PeerPublic));
        assert_eq!(agree(&i, &[0; 132]), Err(CryptoError::PeerPublic));
        assert_eq!(agree(&i, &[0xff; 132]), Err(CryptoError::PeerPublic));
        assert_eq!(agree(&i, &[0; 131]), Err(CryptoError::PeerPublic));
        assert_eq!(agree(&i, &[]), Err(CryptoError::PeerPublic));
    }

    #[test]
    fn generation_follows_the_seed() {
        let (k1, p1) = generate(&mut SeededRandom::new(21)).unwrap();
        let (k2, p2) = generate(&mut SeededRandom::new(21)).unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        assert_eq!(p1, p2);
        assert_eq!(p1.len(), 132);
    }

    /// A source stuck on one byte value.
    struct Stuck(u8);
    impl Random for Stuck {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
            buf.fill(self.0);
            Ok(())
        }
    }

    #[test]
    fn a_stuck_source_gives_an_error_not_a_weak_key() {
        // All zeros is the zero scalar; all ones (masked) is 2^521 - 1 >= n.
        assert_eq!(
            generate(&mut Stuck(0)).map(|_| ()),
            Err(CryptoError::Random)
        );
        assert_eq!(
            generate(&mut Stuck(0xff)).map(|_| ()),
            Err(CryptoError::Random)
        );
    }
}
