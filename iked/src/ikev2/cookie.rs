//! Stateless responder COOKIEs against IKE_SA_INIT floods
//! ([RFC 7296 §2.6](https://www.rfc-editor.org/rfc/rfc7296#section-2.6)).
//!
//! Above a number of half-open SAs, a new IKE_SA_INIT request costs the
//! responder one HMAC and one small datagram, no state and no DH: it must
//! come back with `Cookie = VersionIDofSecret | HMAC-SHA-256(secret, Ni |
//! IPi | SPIi)` as its first payload, which proves the initiator can
//! receive at its address.

use std::net::IpAddr;

use libracoon::crypto::{PrfAlg, Random, ct_eq};
use zeroize::Zeroizing;

use crate::ikev2::error::Error;

/// Half-open SAs above which new requests must carry a COOKIE.
pub const DEFAULT_COOKIE_THRESHOLD: usize = 64;

/// The responder's COOKIE secret.
pub struct CookieJar {
    secret: Zeroizing<[u8; 32]>,
    version: u8,
}

impl CookieJar {
    /// A jar with a fresh secret.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn new(rng: &mut dyn Random) -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill(secret.as_mut())?;
        Ok(Self { secret, version: 0 })
    }

    /// The COOKIE for this initiator's request.
    pub fn cookie(&self, nonce_i: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mac =
            PrfAlg::HmacSha256.compute(self.secret.as_ref(), &[nonce_i, &ip, &spi_i.to_be_bytes()]);
        let mut cookie = Vec::with_capacity(1 + mac.len());
        cookie.push(self.version);
        cookie.extend_from_slice(&mac);
        cookie
    }

    /// Whether `cookie` is the one we would have given this request.
    pub fn verify(&self, cookie: &[u8], nonce_i: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        ct_eq(cookie, &self.cookie(nonce_i, ip, spi_i))
    }
}

#[cfg(test)]
mod tests {
    use libracoon::crypto::SeededRandom;

    use super::*;

    #[test]
    fn a_cookie_verifies_only_for_the_same_nonce_address_and_spi() {
        let jar = CookieJar::new(&mut SeededRandom::new(1)).expect("jar");
        let ip: IpAddr = "192.0.2.1".parse().expect("addr");
        let c = jar.cookie(b"nonce-nonce-nonce", ip, 7);
        assert_eq!(
            c.len(),
            33,
            "version byte and HMAC-SHA-256: within the 1..=64 RFC bound"
        );
        assert!(jar.verify(&c, b"nonce-nonce-nonce", ip, 7));
        assert!(!jar.verify(&c, b"nonce-nonce-other", ip, 7));
        assert!(!jar.verify(
            &c,
            b"nonce-nonce-nonce",
            "192.0.2.2".parse().expect("addr"),
            7
        ));
        assert!(!jar.verify(&c, b"nonce-nonce-nonce", ip, 8));
        let other = CookieJar::new(&mut SeededRandom::new(2)).expect("jar");
        assert!(
            !other.verify(&c, b"nonce-nonce-nonce", ip, 7),
            "another secret"
        );
    }
}
