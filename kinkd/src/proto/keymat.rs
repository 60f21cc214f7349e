//! Quick Mode keying material for KINK SAs and the kernel SAs built from it.
//!
//! KINK keys ESP like IKEv1 Quick Mode without PFS
//! ([RFC 2409 §5.5](https://www.rfc-editor.org/rfc/rfc2409#section-5.5)), with the
//! Kerberos ticket session key in the place of SKEYID_d and the enctype's
//! RFC 3961 PRF in the place of the negotiated one
//! ([RFC 4430 §5](https://www.rfc-editor.org/rfc/rfc4430#section-5)):
//!
//! ```text
//! KEYMAT = K1 | K2 | K3 | ...
//!   K1   = prf(key, protocol | SPI | Ni_b [| Nr_b])
//!   Kn+1 = prf(key, Kn | protocol | SPI | Ni_b [| Nr_b])
//! ```
//!
//! Each SA is keyed with the SPI its *receiver* chose: our inbound SA with our
//! SPI, our outbound SA with the peer's. Nr_b enters only when the responder
//! sent a nonce. The cipher key comes first in KEYMAT, the integrity key
//! right after it (RFC 2409 §5.5: "the encryption key ... is taken from the
//! first n bits of KEYMAT and the authentication key ... from the next m
//! bits").

use std::net::IpAddr;

use libracoon::ipsec::{IpsecMode, Lifetime, SaDirection, SaId, SaSpec, Selector};
use zeroize::Zeroizing;

use crate::krb5::{self, Kerberos, SessionKey};
use crate::proto::config::EspProposal;

/// PROTO_IPSEC_ESP (RFC 2407 §4.4.1), the protocol octet of the KEYMAT seed.
const PROTO_ESP: u8 = 3;

/// Salt octets appended to an AEAD cipher key: RFC 4106 §8.1 (AES-GCM) and
/// RFC 7634 §4 (ChaCha20-Poly1305) draw "the last four octets" of the
/// keying material as salt.
const AEAD_SALT_LEN: usize = 4;

/// IKEv2 ENCR_AES_GCM_16, the id [`libracoon::ipsec::EspEncr`] uses.
const ENCR_AES_GCM_16: u16 = 20;
/// IKEv2 ENCR_CHACHA20_POLY1305.
const ENCR_CHACHA20_POLY1305: u16 = 28;

/// Derives `len` octets of KEYMAT for the SA whose receiver chose `spi`.
///
/// `ni` is the initiator's nonce data, `nr` the responder's if it sent one
/// (without Nr the responder contributes nothing, RFC 4430 §5.1).
///
/// # Errors
/// The backend cannot compute the PRF for the key's enctype, or returns an
/// empty block (which would never fill KEYMAT).
pub fn keymat(
    krb: &dyn Kerberos,
    key: &SessionKey,
    spi: u32,
    ni: &[u8],
    nr: Option<&[u8]>,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, krb5::Error> {
    let seed = seed(spi, ni, nr);
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut input = Zeroizing::new(Vec::with_capacity(seed.len() + 64));
    input.extend_from_slice(&seed);
    while out.len() < len {
        let block = krb.prf(key, &input)?;
        if block.is_empty() {
            return Err(krb5::Error::local("KEYMAT", "the PRF returned no output"));
        }
        out.extend_from_slice(&block);
        // K(n+1) = prf(K(n) | seed)
        input.clear();
        input.extend_from_slice(&block);
        input.extend_from_slice(&seed);
    }
    out.truncate(len);
    Ok(out)
}

/// `protocol | SPI | Ni_b [| Nr_b]`, the part of every PRF input after K(n).
fn seed(spi: u32, ni: &[u8], nr: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    let nr = nr.unwrap_or_default();
    let mut seed = Zeroizing::new(Vec::with_capacity(5 + ni.len() + nr.len()));
    seed.push(PROTO_ESP);
    seed.extend_from_slice(&spi.to_be_bytes());
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    seed
}

/// Octets of KEYMAT each key of `p` takes: (cipher key, integrity key).
///
/// The cipher key includes the 4-octet salt of the AEAD ciphers (RFC 4106
/// §8.1, RFC 7634 §4), which is how [`SaSpec::encr_key`] carries it. The
/// integrity key is the hash length (RFC 2404 §3, RFC 4868 §2.1.1): 20 for
/// HMAC-SHA1, 32/48/64 for HMAC-SHA2-256/384/512. An integrity algorithm
/// kinkd does not know takes 0 octets; such a proposal is never chosen, as
/// [`crate::proto::qm`] cannot represent it.
pub fn key_lengths(p: &EspProposal) -> (usize, usize) {
    let key = usize::from(p.encr.key_bits) / 8;
    let encr = match p.encr.id {
        ENCR_AES_GCM_16 => key + AEAD_SALT_LEN,
        // Fixed 256-bit key, whatever key_bits says (RFC 7634 §2).
        ENCR_CHACHA20_POLY1305 => 32 + AEAD_SALT_LEN,
        // AES-CBC (12) and anything else: the key alone.
        _ => key,
    };
    let auth = match p.auth.map(|a| a.id) {
        Some(2) => 20,
        Some(12) => 32,
        Some(13) => 48,
        Some(14) => 64,
        _ => 0,
    };
    (encr, auth)
}

/// What both SAs of a negotiated pair share.
#[derive(Debug, Clone, Copy)]
pub struct PairParams<'a> {
    /// Our address: outer source of the outbound SA, destination of the inbound one.
    pub local: IpAddr,
    /// The peer's address.
    pub remote: IpAddr,
    /// Our inbound SPI (the one we put in our SA payload).
    pub spi_in: u32,
    /// The peer's SPI: our outbound SA's.
    pub spi_out: u32,
    /// The negotiated transform.
    pub esp: &'a EspProposal,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// The traffic, from our side (`src` is ours): the outbound SA's
    /// selector; the inbound SA gets it mirrored.
    pub selector: &'a Selector,
    /// Request ID tying the SAs to spmd's policies.
    pub reqid: u32,
    /// Negotiated limits.
    pub lifetime: &'a Lifetime,
}

/// A KEYMAT too short for the keys of the negotiated transform: the caller
/// derived it with a wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("KEYMAT of {got} octets, {need} needed for the negotiated transform")]
pub struct ShortKeymat {
    /// Octets needed ([`key_lengths`] summed).
    pub need: usize,
    /// Octets given.
    pub got: usize,
}

/// Builds one direction's kernel SA from its KEYMAT, as iked builds CHILD
/// SAs (`iked/src/ikev2/child.rs`): selectors per direction, no UDP
/// encapsulation (KINK has no NAT traversal), no ESN, the backend's default
/// replay window.
///
/// # Errors
/// `keymat` is shorter than the transform's keys.
pub fn sa_spec(
    p: &PairParams<'_>,
    direction: SaDirection,
    keymat: &[u8],
) -> Result<SaSpec, ShortKeymat> {
    let (elen, alen) = key_lengths(p.esp);
    let short = ShortKeymat {
        need: elen + alen,
        got: keymat.len(),
    };
    let (encr_key, rest) = keymat.split_at_checked(elen).ok_or(short)?;
    let auth_key = rest.get(..alen).ok_or(short)?;
    let (id, src, selector) = match direction {
        SaDirection::Inbound => (
            SaId {
                dst: p.local,
                spi: p.spi_in,
            },
            p.remote,
            mirror(p.selector),
        ),
        SaDirection::Outbound => (
            SaId {
                dst: p.remote,
                spi: p.spi_out,
            },
            p.local,
            p.selector.clone(),
        ),
    };
    Ok(SaSpec {
        id,
        src,
        direction,
        mode: p.mode,
        encr: p.esp.encr,
        encr_key: Zeroizing::new(encr_key.to_vec()),
        auth: p.esp.auth,
        auth_key: Zeroizing::new(auth_key.to_vec()),
        encap: None,
        selectors: vec![selector],
        reqid: p.reqid,
        esn: false,
        replay_window: 0,
        lifetime: *p.lifetime,
    })
}

/// Both SAs of a pair: (inbound, outbound), each from the KEYMAT derived
/// with its receiver's SPI (`keymat_in` with `spi_in`).
///
/// # Errors
/// A KEYMAT is shorter than the transform's keys.
pub fn sa_pair(
    p: &PairParams<'_>,
    keymat_in: &[u8],
    keymat_out: &[u8],
) -> Result<(SaSpec, SaSpec), ShortKeymat> {
    Ok((
        sa_spec(p, SaDirection::Inbound, keymat_in)?,
        sa_spec(p, SaDirection::Outbound, keymat_out)?,
    ))
}

/// The selector as the peer sees it: source and destination (and their
/// ports) swapped.
pub fn mirror(s: &Selector) -> Selector {
    Selector {
        src: s.dst,
        dst: s.src,
        proto: s.proto,
        src_port: s.dst_port,
        dst_port: s.src_port,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use libracoon::ipsec::{EspAuth, EspEncr};

    use super::*;
    use crate::krb5::mit_tests::{aes256_sha1, aes256_sha384, offline};

    const NI: &[u8] = b"initiator nonce, 32 octets long!";
    const NR: &[u8] = b"responder nonce";

    #[test]
    fn keymat_chains_prf_blocks_over_protocol_spi_and_nonces() {
        let (k, _dir) = offline();
        let key = aes256_sha1();
        // The seed laid out by hand from RFC 2409 §5.5: protocol 3, SPI in
        // network order, Ni_b, Nr_b.
        let mut seed = vec![3, 0x12, 0x34, 0x56, 0x78];
        seed.extend_from_slice(NI);
        seed.extend_from_slice(NR);
        let k1 = k.prf(&key, &seed).unwrap();
        let k2 = k.prf(&key, &[&k1[..], &seed].concat()).unwrap();
        let k3 = k.prf(&key, &[&k2[..], &seed].concat()).unwrap();
        assert_eq!(k1.len(), 16);
        let expected = [&k1[..], &k2[..], &k3[..]].concat();

        let got = keymat(&k, &key, 0x1234_5678, NI, Some(NR), 40).unwrap();
        assert_eq!(&got[..], &expected[..40]);
        // Exactly one block and a prefix of it.
        let one = keymat(&k, &key, 0x1234_5678, NI, Some(NR), 16).unwrap();
        assert_eq!(&one[..], &k1[..]);
        let short = keymat(&k, &key, 0x1234_5678, NI, Some(NR), 5).unwrap();
        assert_eq!(&short[..], &k1[..5]);
        assert!(keymat(&k, &key, 1, NI, None, 0).unwrap().is_empty());
    }

    #[test]
    fn keymat_without_nr_leaves_it_out_of_the_seed() {
        let (k, _dir) = offline();
        let key = aes256_sha384();
        let mut seed = vec![3, 0, 0, 0x01, 0x00];
        seed.extend_from_slice(NI);
        let k1 = k.prf(&key, &seed).unwrap();
        assert_eq!(k1.len(), 48);
        let k2 = k.prf(&key, &[&k1[..], &seed].concat()).unwrap();
        let got = keymat(&k, &key, 256, NI, None, 64).unwrap();
        assert_eq!(&got[..], &[&k1[..], &k2[..16]].concat()[..]);
    }

    #[test]
    fn spi_nonces_and_key_each_change_keymat() {
        let (k, _dir) = offline();
        let key = aes256_sha1();
        let base = keymat(&k, &key, 7, NI, Some(NR), 52).unwrap();
        assert_eq!(base.len(), 52);
        let variants = [
            keymat(&k, &key, 8, NI, Some(NR), 52).unwrap(),
            keymat(&k, &key, 7, b"another initiator nonce", Some(NR), 52).unwrap(),
            keymat(&k, &key, 7, NI, Some(b"another responder nonce"), 52).unwrap(),
            keymat(&k, &key, 7, NI, None, 52).unwrap(),
            keymat(&k, &aes256_sha384(), 7, NI, Some(NR), 52).unwrap(),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(&v[..], &base[..], "variant {i}");
        }
        // Deterministic: both peers derive the same octets.
        assert_eq!(base, keymat(&k, &key, 7, NI, Some(NR), 52).unwrap());
    }

    #[test]
    fn keymat_fails_for_an_unsupported_enctype() {
        let (k, _dir) = offline();
        let bogus = SessionKey::new(9999, vec![0; 16]);
        assert!(keymat(&k, &bogus, 1, NI, None, 16).is_err());
    }

    fn esp(id: u16, key_bits: u16, auth: Option<u16>) -> EspProposal {
        EspProposal {
            encr: EspEncr { id, key_bits },
            auth: auth.map(|id| EspAuth { id }),
        }
    }

    #[test]
    fn key_lengths_of_every_algorithm() {
        let cases = [
            // AES-CBC: the key alone (RFC 3602).
            (esp(12, 128, Some(2)), (16, 20)),
            (esp(12, 192, Some(12)), (24, 32)),
            (esp(12, 256, Some(13)), (32, 48)),
            (esp(12, 256, Some(14)), (32, 64)),
            // AEADs: key + 4-octet salt, no integrity key.
            (esp(20, 128, None), (20, 0)),
            (esp(20, 256, None), (36, 0)),
            (esp(28, 256, None), (36, 0)),
            (esp(28, 0, None), (36, 0)),
            // Unknown integrity algorithm: nothing drawn for it.
            (esp(12, 128, Some(99)), (16, 0)),
        ];
        for (p, want) in cases {
            assert_eq!(key_lengths(&p), want, "{p:?}");
        }
    }

    fn params<'a>(esp: &'a EspProposal, sel: &'a Selector, life: &'a Lifetime) -> PairParams<'a> {
        PairParams {
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            spi_in: 0x1111_1111,
            spi_out: 0x2222_2222,
            esp,
            mode: IpsecMode::Tunnel,
            selector: sel,
            reqid: 9,
            lifetime: life,
        }
    }

    fn selector() -> Selector {
        Selector {
            src: (
                "198.51.100.0".parse().unwrap(),
                "198.51.100.255".parse().unwrap(),
            ),
            dst: (
                "203.0.113.0".parse().unwrap(),
                "203.0.113.255".parse().unwrap(),
            ),
            proto: 6,
            src_port: 0,
            dst_port: 443,
        }
    }

    #[test]
    fn sa_pair_splits_keymat_and_orients_each_direction() {
        let p = esp(12, 128, Some(12));
        let sel = selector();
        let life = Lifetime {
            hard_time: Some(Duration::from_secs(3600)),
            ..Lifetime::default()
        };
        let km_in: Vec<u8> = (0..48).collect();
        let km_out: Vec<u8> = (100..148).collect();
        let (inb, outb) = sa_pair(&params(&p, &sel, &life), &km_in, &km_out).unwrap();

        assert_eq!(inb.direction, SaDirection::Inbound);
        assert_eq!(inb.id.dst, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(inb.id.spi, 0x1111_1111);
        assert_eq!(inb.src, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(&inb.encr_key[..], &km_in[..16]);
        assert_eq!(&inb.auth_key[..], &km_in[16..48]);
        assert_eq!(inb.selectors, vec![mirror(&sel)]);
        assert_eq!(inb.selectors[0].dst_port, 0);
        assert_eq!(inb.selectors[0].src_port, 443);

        assert_eq!(outb.direction, SaDirection::Outbound);
        assert_eq!(outb.id.dst, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(outb.id.spi, 0x2222_2222);
        assert_eq!(outb.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(&outb.encr_key[..], &km_out[..16]);
        assert_eq!(&outb.auth_key[..], &km_out[16..48]);
        assert_eq!(outb.selectors, vec![sel]);

        for s in [&inb, &outb] {
            assert_eq!(
                (s.reqid, s.mode, s.esn, s.replay_window),
                (9, IpsecMode::Tunnel, false, 0)
            );
            assert_eq!(s.encap, None);
            assert_eq!(s.lifetime, life);
            assert_eq!((s.encr, s.auth), (p.encr, p.auth));
        }
    }

    #[test]
    fn aead_keys_carry_the_salt_and_no_integrity_key() {
        let p = esp(20, 256, None);
        let sel = selector();
        let life = Lifetime::default();
        let km: Vec<u8> = (0..36).collect();
        let s = sa_spec(&params(&p, &sel, &life), SaDirection::Outbound, &km).unwrap();
        assert_eq!(&s.encr_key[..], &km[..]);
        assert!(s.auth_key.is_empty());
        assert_eq!(s.auth, None);
    }

    #[test]
    fn short_keymat_is_an_error_not_a_panic() {
        let p = esp(12, 256, Some(14));
        let sel = selector();
        let life = Lifetime::default();
        let par = params(&p, &sel, &life);
        for n in [0, 10, 32, 95] {
            assert_eq!(
                sa_spec(&par, SaDirection::Inbound, &vec![0; n]),
                Err(ShortKeymat { need: 96, got: n })
            );
        }
        // Longer is fine: the surplus is ignored.
        assert!(sa_spec(&par, SaDirection::Inbound, &[0; 100]).is_ok());
    }
}
