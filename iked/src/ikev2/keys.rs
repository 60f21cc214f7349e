//! Key derivation: SKEYSEED, the IKE SA keys and CHILD SA KEYMAT
//! ([RFC 7296 §2.13–2.17](https://www.rfc-editor.org/rfc/rfc7296#section-2.14)).

use libracoon::crypto::{EncrAlg, IntegAlg, PrfAlg};
use zeroize::Zeroizing;

/// The algorithms negotiated for an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    /// SK payload cipher.
    pub encr: EncrAlg,
    /// Pseudo-random function.
    pub prf: PrfAlg,
    /// SK payload integrity, absent for AEAD ciphers.
    pub integ: Option<IntegAlg>,
    /// Diffie-Hellman group.
    pub dh: libracoon::crypto::DhGroup,
}

impl IkeSuite {
    /// strongSwan-style summary, e.g. `AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256`.
    pub fn summary(&self) -> String {
        let mut s = String::from(self.encr.name());
        if let Some(i) = self.integ {
            s.push('/');
            s.push_str(i.name());
        }
        format!("{s}/{}/{}", self.prf.name(), self.dh.name())
    }
}

/// The seven IKE SA keys (RFC 7296 §2.14).
pub struct IkeKeys {
    /// Keys CHILD SAs derive from.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// Integrity key, initiator to responder.
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// Integrity key, responder to initiator.
    pub sk_ar: Zeroizing<Vec<u8>>,
    /// Encryption key, initiator to responder.
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// Encryption key, responder to initiator.
    pub sk_er: Zeroizing<Vec<u8>>,
    /// AUTH key of the initiator.
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// AUTH key of the responder.
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IkeKeys { .. }")
    }
}

/// Derives the IKE SA keys from the DH shared secret and both nonces.
///
/// `SKEYSEED = prf(Ni | Nr, g^ir)`, then
/// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`.
pub fn derive_ike_keys(
    suite: &IkeSuite,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let skeyseed = suite.prf.compute(&[ni, nr].concat(), &[shared]);
    expand_ike_keys(suite, &skeyseed, ni, nr, spi_i, spi_r)
}

/// Keys of an IKE SA that rekeys another (RFC 7296 §2.18):
/// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`, computed with the
/// old IKE SA's PRF (as strongSwan does), then expanded like a new SA.
pub fn derive_rekeyed_ike_keys(
    suite: &IkeSuite,
    (old_prf, old_sk_d): (PrfAlg, &[u8]),
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let skeyseed = old_prf.compute(old_sk_d, &[shared, ni, nr]);
    expand_ike_keys(suite, &skeyseed, ni, nr, spi_i, spi_r)
}

/// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`.
fn expand_ike_keys(
    suite: &IkeSuite,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let prf = suite.prf;
    let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
    let integ_len = suite.integ.map_or(0, IntegAlg::key_len);
    let encr_len = suite.encr.key_len();
    let prf_len = prf.output_len();
    let total = 3 * prf_len + 2 * integ_len + 2 * encr_len;
    let stream = prf.prf_plus(skeyseed, &seed, total);
    let mut split = Splitter { rest: &stream };
    IkeKeys {
        sk_d: split.take(prf_len),
        sk_ai: split.take(integ_len),
        sk_ar: split.take(integ_len),
        sk_ei: split.take(encr_len),
        sk_er: split.take(encr_len),
        sk_pi: split.take(prf_len),
        sk_pr: split.take(prf_len),
    }
}

/// The four ESP keys of one CHILD SA (RFC 7296 §2.17).
pub struct ChildKeys {
    /// Encryption key for initiator-to-responder traffic (salt appended for AEAD).
    pub encr_i: Zeroizing<Vec<u8>>,
    /// Integrity key for initiator-to-responder traffic.
    pub integ_i: Zeroizing<Vec<u8>>,
    /// Encryption key for responder-to-initiator traffic.
    pub encr_r: Zeroizing<Vec<u8>>,
    /// Integrity key for responder-to-initiator traffic.
    pub integ_r: Zeroizing<Vec<u8>>,
}

/// `KEYMAT = prf+(SK_d, Ni | Nr)`, split initiator-to-responder first.
pub fn derive_child_keys(
    prf: PrfAlg,
    sk_d: &[u8],
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    ni: &[u8],
    nr: &[u8],
) -> ChildKeys {
    derive_child_keys_from_seed(prf, sk_d, encr, integ, &[ni, nr].concat())
}

/// `KEYMAT = prf+(SK_d, seed)`: the seed is `Ni | Nr`, or in a
/// CREATE_CHILD_SA exchange with PFS `g^ir (new) | Ni | Nr` (RFC 7296 §2.17).
pub fn derive_child_keys_from_seed(
    prf: PrfAlg,
    sk_d: &[u8],
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    seed: &[u8],
) -> ChildKeys {
    let integ_len = integ.map_or(0, IntegAlg::key_len);
    let encr_len = encr.key_len();
    let stream = prf.prf_plus(sk_d, seed, 2 * (encr_len + integ_len));
    let mut split = Splitter { rest: &stream };
    ChildKeys {
        encr_i: split.take(encr_len),
        integ_i: split.take(integ_len),
        encr_r: split.take(encr_len),
        integ_r: split.take(integ_len),
    }
}

/// Cuts consecutive keys off a prf+ stream that was sized to fit them all.
struct Splitter<'a> {
    rest: &'a [u8],
}

impl Splitter<'_> {
    fn take(&mut self, n: usize) -> Zeroizing<Vec<u8>> {
        let n = n.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Zeroizing::new(head.to_vec())
    }
}

/// An IKE SA's negotiated algorithms and keys, once IKE_SA_INIT is done.
pub(crate) struct Keyed {
    pub(crate) suite: IkeSuite,
    pub(crate) keys: IkeKeys,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    pub(crate) nat: crate::ikev2::natd::NatState,
}

impl Keyed {
    /// Keys protecting messages the peer sends us.
    pub(crate) fn sk_in(&self, role: crate::ikev2::sa::Role) -> crate::ikev2::sk::SkKeys<'_> {
        let initiator = role == crate::ikev2::sa::Role::Initiator;
        let (e, a) = if initiator {
            (&self.keys.sk_er, &self.keys.sk_ar)
        } else {
            (&self.keys.sk_ei, &self.keys.sk_ai)
        };
        self.sk(e, a)
    }

    /// Keys protecting messages we send.
    pub(crate) fn sk_out(&self, role: crate::ikev2::sa::Role) -> crate::ikev2::sk::SkKeys<'_> {
        let initiator = role == crate::ikev2::sa::Role::Initiator;
        let (e, a) = if initiator {
            (&self.keys.sk_ei, &self.keys.sk_ai)
        } else {
            (&self.keys.sk_er, &self.keys.sk_ar)
        };
        self.sk(e, a)
    }

    fn sk<'a>(&'a self, e: &'a [u8], a: &'a [u8]) -> crate::ikev2::sk::SkKeys<'a> {
        crate::ikev2::sk::SkKeys {
            encr: self.suite.encr,
            integ: self.suite.integ,
            sk_e: e,
            sk_a: a,
        }
    }
}

#[cfg(test)]
mod tests {
    use libracoon::crypto::DhGroup;

    use super::*;

    #[test]
    fn ike_keys_have_the_lengths_the_suite_needs() {
        let suite = IkeSuite {
            encr: EncrAlg::AesCbc128,
            prf: PrfAlg::HmacSha256,
            integ: Some(IntegAlg::HmacSha256_128),
            dh: DhGroup::Ecp256,
        };
        let k = derive_ike_keys(&suite, &[1; 32], &[2; 32], &[3; 32], 1, 2);
        assert_eq!(k.sk_d.len(), 32);
        assert_eq!(k.sk_ai.len(), 32);
        assert_eq!(k.sk_ei.len(), 16);
        assert_eq!(k.sk_pr.len(), 32);
        assert_ne!(k.sk_ei, k.sk_er);
    }

    #[test]
    fn skeyseed_and_prf_plus_follow_rfc_7296_2_14() {
        // Recompute the definition independently with the PRF alone.
        let suite = IkeSuite {
            encr: EncrAlg::AesGcm16_128,
            prf: PrfAlg::HmacSha256,
            integ: None,
            dh: DhGroup::Curve25519,
        };
        let (ni, nr, g) = ([7u8; 32], [9u8; 32], [5u8; 32]);
        let k = derive_ike_keys(&suite, &g, &ni, &nr, 0x0102, 0x0304);
        let skeyseed = PrfAlg::HmacSha256.compute(&[ni, nr].concat(), &[&g]);
        let seed = [
            &ni[..],
            &nr,
            &0x0102u64.to_be_bytes(),
            &0x0304u64.to_be_bytes(),
        ]
        .concat();
        let t1 = PrfAlg::HmacSha256.compute(&skeyseed, &[&seed, &[1]]);
        assert_eq!(&k.sk_d[..], &t1[..]);
        assert!(k.sk_ai.is_empty(), "AEAD suites have no integrity keys");
        assert_eq!(k.sk_ei.len(), 20, "AES-GCM-128 key plus 4-byte salt");
    }
}
