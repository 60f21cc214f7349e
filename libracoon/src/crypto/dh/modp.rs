//! MODP groups 14, 15 and 16 ([RFC 3526]) on `crypto-bigint`.
//!
//! Exponentiation uses `FixedMontyForm::pow`, which is constant time in the
//! exponent's value (`pow_vartime` is the separately named variable-time
//! call). The modulus and peer values are public, so their parameter setup and
//! range checks may be variable time.
//!
//! **Exponent size.** Private exponents are 512 bits with the top bit set, so
//! 511 bits of entropy. RFC 3526 §8 estimates the strength of the 2048-, 3072-
//! and 4096-bit groups at up to 160, 210 and 240 bits and asks for an exponent
//! of at least twice that (320, 420 and 480 bits); 512 covers all three, as
//! NIST SP 800-56A allows for safe-prime groups and strongSwan does likewise.
//! Short exponents make a 4096-bit exchange about 8x cheaper than full-length
//! ones. The top bit is set so that no draw, however unlucky or seeded, yields
//! a degenerate exponent such as 0 or 1.
//!
//! [RFC 3526]: https://www.rfc-editor.org/rfc/rfc3526

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U512, U2048, U3072, U4096, Uint};
use zeroize::{Zeroize, Zeroizing};

use super::DhGroup;
use crate::crypto::{CryptoError, Random};

/// A private exponent.
pub(super) type Exponent = U512;

/// The generator of all three groups (RFC 3526 §3-§5: "The generator is: 2").
const GENERATOR: u8 = 2;

/// RFC 3526 §3, 2048-bit MODP group 14:
/// p = 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }.
const P2048: Odd<U2048> = Odd::<U2048>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §4, 3072-bit MODP group 15:
/// p = 2^3072 - 2^3008 - 1 + 2^64 * { [2^2942 pi] + 1690314 }.
const P3072: Odd<U3072> = Odd::<U3072>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// RFC 3526 §5, 4096-bit MODP group 16:
/// p = 2^4096 - 2^4032 - 1 + 2^64 * { [2^3966 pi] + 240904 }.
const P4096: Odd<U4096> = Odd::<U4096>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
));

/// Draws a private exponent and computes g^x.
pub(super) fn generate(
    group: DhGroup,
    rng: &mut dyn Random,
) -> Result<(Zeroizing<Exponent>, Vec<u8>), CryptoError> {
    let mut bytes = Zeroizing::new([0u8; Exponent::BYTES]);
    rng.fill(&mut bytes[..])?;
    bytes[0] |= 0x80;
    let x = Zeroizing::new(Exponent::from_be_slice(&bytes[..]));
    let public = public_value(group, &x)?;
    Ok((x, public))
}

/// g^x mod p, left-padded to the prime length.
pub(super) fn public_value(group: DhGroup, x: &Exponent) -> Result<Vec<u8>, CryptoError> {
    let public = match group {
        DhGroup::Modp2048 => pow_be(&P2048, &Uint::from_u8(GENERATOR), x),
        DhGroup::Modp3072 => pow_be(&P3072, &Uint::from_u8(GENERATOR), x),
        DhGroup::Modp4096 => pow_be(&P4096, &Uint::from_u8(GENERATOR), x),
        _ => return Err(CryptoError::Internal),
    };
    Ok(public.to_vec())
}

/// y^x mod p, left-padded to the prime length, after checking 1 < y < p-1.
pub(super) fn agree(
    group: DhGroup,
    x: &Exponent,
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    match group {
        DhGroup::Modp2048 => Ok(pow_be(&P2048, &peer_value(&P2048, peer)?, x)),
        DhGroup::Modp3072 => Ok(pow_be(&P3072, &peer_value(&P3072, peer)?, x)),
        DhGroup::Modp4096 => Ok(pow_be(&P4096, &peer_value(&P4096, peer)?, x)),
        _ => Err(CryptoError::Internal),
    }
}

/// Decodes the peer's public value and checks 1 < y < p-1.
///
/// y = 0, 1 and p-1 (and anything >= p) would force the shared secret into
/// {0, 1, p-1}; NIST SP 800-56A §5.6.2.3.1 requires this range check. A full
/// subgroup check (y^q = 1) is not needed for safe primes with 512-bit
/// exponents: at most one bit of the exponent leaks through the order-2
/// subgroup, and strongSwan does not check either.
fn peer_value<const L: usize>(p: &Odd<Uint<L>>, peer: &[u8]) -> Result<Uint<L>, CryptoError> {
    if peer.len() != Uint::<L>::BYTES {
        return Err(CryptoError::PeerPublic);
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_one = p.as_ref().wrapping_sub(&Uint::ONE);
    if y <= Uint::ONE || y >= p_minus_one {
        return Err(CryptoError::PeerPublic);
    }
    Ok(y)
}

/// base^x mod p as fixed-width big-endian bytes, constant time in x.
fn pow_be<const L: usize>(p: &Odd<Uint<L>>, base: &Uint<L>, x: &Exponent) -> Zeroizing<Vec<u8>> {
    let params = FixedMontyParams::new_vartime(*p);
    let mut power = FixedMontyForm::new(base, &params).pow(x);
    let mut value = power.retrieve();
    let mut encoded = value.to_be_bytes();
    let out = Zeroizing::new(encoded.as_ref().to_vec());
    encoded.zeroize();
    value.zeroize();
    power.zeroize();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crypto::SeededRandom;

    fn h(chunks: &[&str]) -> Vec<u8> {
        hex::decode(chunks.concat()).unwrap()
    }

    /// x = 2^64 + 1 and y = 2^64 + 3: small fixed exponents for the KATs.
    fn x_kat() -> Exponent {
        Exponent::from_u128((1u128 << 64) + 1)
    }
    fn y_kat() -> Exponent {
        Exponent::from_u128((1u128 << 64) + 3)
    }

    // Expected values computed independently with Python's integers, e.g. for
    // group 14 (P = the RFC 3526 §3 hex string):
    //   python3 -c "p=int(P,16); print(pow(2, 2**64+1, p).to_bytes(256,'big').hex())"
    // and likewise with the §4 / §5 primes and lengths 384 / 512.
    const GX_2048: [&str; 8] = [
        "48904e2724401faa50e3f1ac7d16da7682dd9f29475cac39e32e6c4a3cb9414c",
        "1d0e2701c26b1a21854ad1e89d391f0abe3eddfb42c99174a4ac42914c5e3939",
        "659bed79147dfa2fea72e960bdd5efc457ef9003ad9bd73c2995ac88731f268f",
        "0fe9b551bd50e8eb5383fff0063a13f76ddbbef05976600ad416fa52cd1e824c",
        "829708ea7a9cb1e018a59f3c8b2b2529a41c4559018608bb3b06f79d38559bbe",
        "716b0fa3291d5aa2e1460a73b315b80d179d8288720ebc9927129694e91462da",
        "30b83c1dbad923d1159f083d72073970c55779322639c8e3e3943f5621106eac",
        "949ba9151d1890f51bd6486e777dcbe35113451e2a87ef9c33820752886b9d7a",
    ];
    const GX_3072: [&str; 12] = [
        "49a8bfd926b4f9caad190896fa926cf08a878bf3951305d6b7cdd672f0b91c81",
        "911c63762204eb8a5ba7daf8b925366237bdbde641c170a2055ac2703ed2da72",
        "91819991ac11f1878aa9ed8df180a576fd792ab01a5c08633d6b68a3e43a6aba",
        "a6103f5bcac306843104308cd8e2c127b50b3026314b19addbbd7cfed6030b66",
        "f0ed9e6ae3d5ad47be34d02347f1ac94c44ae56057bb19973c853e23fe038105",
        "6215a17b17636b08b7b5be8d836bc8ab04a74abbb112c5595bab48fbf135f637",
        "dc984a230258e9fd95ecc34b14c2633daad05e42ffc2930ee1a0b6984d68de43",
        "f390c8af7a5fff2bb9ea5794acddb8825dd672e770312373831c7d70240ec55a",
        "0892dbca0da7ccc00bacf76d550120175bc52208e2c32967775c89f73d6a3dff",
        "7c813660b5e9e863f42a95c7d7f75bcfa6d7981accaf86844d8c607ed820629d",
        "1bd9351824afe382892442c1d6970fe1ee6fe5e864ec30f4487b8d390519bd99",
        "2c359d602cfa45ef70cc6bb2e72664e4b3802d5e3d8f9bd96260c19cb7ec7b94",
    ];
    const GX_4096: [&str; 16] = [
        "67c7cd3ef7615a0f870467edde8bda8082d543aa2a2717d69b5e23eb6a46fd55",
        "540730aeff03978b564f025a547fd14c0ac94488ff8ae3974dfd8af669019360",
        "24d641114180017e21ee09b589cd23ccd643f0ce067b6a5de5cb039899fdb66a",
        "1fad3b759c6a1243ab9e73cbf0df007a890c64882d42b4dd1ac689f3a6e0b6bc",
        "1161a50dc31853d1b6f70710037a660c924fda2c02d78587232cf1b2d7f6e154",
        "80cbe3d3f910de81313573892e9006b6991af4ffe12e394a4fb9253af4f1b6d3",
        "80a59923afaace9345992241089339bc3560b266acd03837579bc130f4a72ce1",
        "4391ae5af3ad1eed23c1ea266672fcd605258864079aefbeb88d78ee7386dde9",
        "d99cfd6a4c0be74561aa0aff171e3fd1d988d709cb8145c29c8ee386a6da1231",
        "1a494f686864441076dfac423754addb254c8764b290bb2ceae65f3483851e6b",
        "c41c7414cb1907bbeb3d04e1a020ba442161b86dd5e3fa9ab56a6bbc6df83c8a",
        "9a617a697a9f45e6566639b0bc388f00eb89e774f966ce416f0cf5855f9e419a",
        "f240f39d069ab7a4af87db1372af0dcd389cc2c87fe9c000ae799975cdd5a103",
        "2eb962ece8b918b805625f52f0e4a742932958faa3306fb2047d539973f76826",
        "35813057e848c9ae2377904695ac0e53d081f8c2bb664976fbe345edabeff988",
        "c75dc7d7f677f086a662b8069e3896f12a4c182cf34756e8ab0bb692eba5b80c",
    ];
    //   python3 -c "p=int(P,16); print(pow(2, 2**64+3, p).to_bytes(256,'big').hex())"
    const GY_2048: [&str; 8] = [
        "2241389c91007ea97a7fec0fd2f2a7a546b01a199c96941663b76320687d38bc",
        "722cdd60ce98cd63c3e13f28e6b0774d09665e393dec02b76285ffd73f19d0ae",
        "468e8076e4a62679c545f00c94f9404a6b71fd2510376f859a57556ad875e24e",
        "516e694b9aba04079f70dbae9c9d2ff76e46956f78f524ed8e5b6c9293164a2c",
        "7181db73ce1cf3e5f9803d492f87c5470d0bb84029747556cfb8eb1ec0d11c3e",
        "26d7158533ded41e1e0bf480819a482f6d019e18fe22d0e869b9fc0d761abd2c",
        "df42794ad3560940bb549d52dc1543335f9886d8299ad0c5b0253161eee9a39a",
        "18d95ad789ccd8ef5986fba144fd2a7d2eda861e1f731407ce081d4a21ae75e9",
    ];
    //   python3 -c "p=int(P,16); print(pow(2, (2**64+1)*(2**64+3), p).to_bytes(256,'big').hex())"
    const GXY_2048: [&str; 8] = [
        "3977c4aff5ef3b520a1fa84aeecc5406d8bce38e90a83a5f72eb49112d52a030",
        "2361139ce9b6205c0e86f8962af748119dc31f3dc79f5cef67d3e846cb32b762",
        "cc23ca1ddef8f673a41fd4c4bdb2da6ca2100c90e594f0dc586e8fcb4be0c673",
        "4653455128eaf8d51256da8dca1c1403019c20bfabdefe69c4043fa4e6851f9b",
        "aa3c6acfea7f9b576a4aaa6a8679dcabd3ef34662a7ac5b2cf7c9a6221e82519",
        "d2acaf8b5819224cd641553b0aa606c62afbabc672aaf3d16471cf704b2f4960",
        "7ffe9409d8c44b37c68d873c3d2d64cee13e8d59e920021db83d08f7dee9675f",
        "73f0fcef6e9e964bd9312ab99a3f6c589e126501107ecb352a03ce5f4ee65989",
    ];

    #[test]
    fn public_value_matches_python_pow() {
        let x = x_kat();
        assert_eq!(public_value(DhGroup::Modp2048, &x).unwrap(), h(&GX_2048));
        assert_eq!(public_value(DhGroup::Modp3072, &x).unwrap(), h(&GX_3072));
        assert_eq!(public_value(DhGroup::Modp4096, &x).unwrap(), h(&GX_4096));
        assert_eq!(
            public_value(DhGroup::Modp2048, &y_kat()).unwrap(),
            h(&GY_2048)
        );
    }

    #[test]
    fn agree_matches_python_pow() {
        let shared = agree(DhGroup::Modp2048, &x_kat(), &h(&GY_2048)).unwrap();
        assert_eq!(&shared[..], &h(&GXY_2048)[..]);
        let shared = agree(DhGroup::Modp2048, &y_kat(), &h(&GX_2048)).unwrap();
        assert_eq!(&shared[..], &h(&GXY_2048)[..]);
    }

    /// A typo in a prime constant would almost surely fail Fermat's test:
    /// 2^(p-1) = 1 (mod p). The generator 2 is a quadratic residue for these
    /// p = 7 (mod 8), so also 2^((p-1)/2) = 1.
    fn check_prime<const L: usize>(p: &Odd<Uint<L>>, bits: u32) {
        let params = FixedMontyParams::new_vartime(*p);
        let two = FixedMontyForm::new(&Uint::from_u8(2), &params);
        let p_minus_one = p.as_ref().wrapping_sub(&Uint::ONE);
        assert_eq!(two.pow_vartime(&p_minus_one).retrieve(), Uint::ONE);
        assert_eq!(
            two.pow_vartime(&p_minus_one.shr_vartime(1)).retrieve(),
            Uint::ONE
        );
        assert_eq!(p.as_ref().bit_width_vartime(), bits);
        // RFC 3526: the top and bottom 64 bits are all ones.
        let bytes = p.as_ref().to_be_bytes();
        assert!(bytes.as_ref()[..8].iter().all(|&b| b == 0xff));
        assert!(
            bytes.as_ref()[bytes.as_ref().len() - 8..]
                .iter()
                .all(|&b| b == 0xff)
        );
    }

    #[test]
    fn primes_pass_fermat_and_shape_checks() {
        check_prime(&P2048, 2048);
        check_prime(&P3072, 3072);
        check_prime(&P4096, 4096);
    }

    #[test]
    fn peer_values_outside_two_to_p_minus_two_are_rejected() {
        let x = x_kat();
        let group = DhGroup::Modp2048;
        let p = P2048.as_ref();
        let encode = |v: &U2048| v.to_be_bytes().as_ref().to_vec();
        let bad = [
            U2048::ZERO,
            U2048::ONE,
            p.wrapping_sub(&U2048::ONE),
            *p,
            p.wrapping_add(&U2048::ONE),
            U2048::MAX,
        ];
        for y in bad {
            assert_eq!(agree(group, &x, &encode(&y)), Err(CryptoError::PeerPublic));
        }
        for y in [U2048::from_u8(2), p.wrapping_sub(&U2048::from_u8(2))] {
            assert!(agree(group, &x, &encode(&y)).is_ok());
        }
        assert_eq!(agree(group, &x, &[2u8; 255]), Err(CryptoError::PeerPublic));
        assert_eq!(agree(group, &x, &[]), Err(CryptoError::PeerPublic));
    }

    #[test]
    fn results_are_left_padded_to_the_prime_length() {
        // g^x for x = 1 is 2: one significant byte, 255 bytes of padding.
        let two = public_value(DhGroup::Modp2048, &Exponent::ONE).unwrap();
        assert_eq!(two.len(), 256);
        assert_eq!(two[255], 2);
        assert!(two[..255].iter().all(|&b| b == 0));
    }

    #[test]
    fn generated_exponents_have_the_top_bit_set_and_follow_the_seed() {
        let (x1, public1) = generate(DhGroup::Modp2048, &mut SeededRandom::new(5)).unwrap();
        let (x2, public2) = generate(DhGroup::Modp2048, &mut SeededRandom::new(5)).unwrap();
        assert_eq!(x1.bit_width_vartime(), 512);
        assert_eq!(*x1, *x2);
        assert_eq!(public1, public2);
        assert_eq!(public1, public_value(DhGroup::Modp2048, &x1).unwrap());
    }

    #[test]
    fn non_modp_groups_are_refused() {
        assert_eq!(
            public_value(DhGroup::Ecp256, &x_kat()),
            Err(CryptoError::Internal)
        );
        assert_eq!(
            agree(DhGroup::Curve25519, &x_kat(), &[2; 32]),
            Err(CryptoError::Internal)
        );
    }
}
