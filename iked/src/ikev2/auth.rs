//! Pre-shared-key AUTH payloads ([RFC 7296 §2.15](https://www.rfc-editor.org/rfc/rfc7296#section-2.15)).

use libracoon::crypto::{PrfAlg, ct_eq};

/// The pad RFC 7296 §2.15 mixes into the PSK: "Key Pad for IKEv2".
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The octets one side's AUTH covers, borrowed from the SA's saved state.
pub struct SignedOctets<'a> {
    /// This side's whole IKE_SA_INIT message, as sent or received.
    pub message: &'a [u8],
    /// The other side's nonce data.
    pub peer_nonce: &'a [u8],
    /// SK_pi for the initiator's AUTH, SK_pr for the responder's.
    pub sk_p: &'a [u8],
    /// The ID payload body (type, reserved, data) of the side that signs.
    pub id_body: &'a [u8],
}

/// `AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`.
pub fn psk_auth(prf: PrfAlg, psk: &[u8], octets: &SignedOctets<'_>) -> Vec<u8> {
    let maced_id = prf.compute(octets.sk_p, &[octets.id_body]);
    let key = prf.compute(psk, &[KEY_PAD]);
    prf.compute(&key, &[octets.message, octets.peer_nonce, &maced_id])
        .to_vec()
}

/// Checks a peer's PSK AUTH value in constant time.
pub fn verify_psk_auth(prf: PrfAlg, psk: &[u8], octets: &SignedOctets<'_>, auth: &[u8]) -> bool {
    ct_eq(&psk_auth(prf, psk, octets), auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_changes_with_every_input_and_verifies_its_own_value() {
        let base = SignedOctets {
            message: b"m",
            peer_nonce: b"n",
            sk_p: b"k",
            id_body: b"i",
        };
        let a = psk_auth(PrfAlg::HmacSha256, b"secret", &base);
        assert!(verify_psk_auth(PrfAlg::HmacSha256, b"secret", &base, &a));
        assert!(!verify_psk_auth(PrfAlg::HmacSha256, b"other", &base, &a));
        let other = SignedOctets {
            id_body: b"j",
            ..base
        };
        assert!(!verify_psk_auth(PrfAlg::HmacSha256, b"secret", &other, &a));
    }

    #[test]
    fn auth_is_the_rfc_construction() {
        let o = SignedOctets {
            message: b"msg",
            peer_nonce: b"nonce",
            sk_p: b"skp",
            id_body: b"id",
        };
        let prf = PrfAlg::HmacSha1;
        let inner = prf.compute(b"psk", &[b"Key Pad for IKEv2"]);
        let maced = prf.compute(b"skp", &[b"id"]);
        let want = prf.compute(&inner, &[b"msgnonce", &maced]);
        assert_eq!(psk_auth(prf, b"psk", &o), want.to_vec());
    }
}
