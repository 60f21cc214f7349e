//! Authentication payload ([RFC 7296 §3.8](https://www.rfc-editor.org/rfc/rfc7296#section-3.8)).

use libracoon::open_enum;
use nom::number::complete::{be_u8, be_u24};

use super::{DecodeError, fields};

open_enum! {
    /// Auth Method (RFC 7296 §3.8, RFC 4754, RFC 7427).
    pub enum AuthMethod(u8) {
        /// RSASSA-PKCS1-v1_5 signature with SHA-1.
        RsaSig = 1 => "RSA Digital Signature",
        /// Pre-shared key MIC (RFC 7296 §2.15).
        SharedKeyMic = 2 => "Shared Key Message Integrity Code",
        /// DSS signature with SHA-1.
        DssSig = 3 => "DSS Digital Signature",
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        EcdsaP256 = 9 => "ECDSA with SHA-256 on the P-256 curve",
        /// ECDSA with SHA-384 on P-384 (RFC 4754).
        EcdsaP384 = 10 => "ECDSA with SHA-384 on the P-384 curve",
        /// ECDSA with SHA-512 on P-521 (RFC 4754).
        EcdsaP521 = 11 => "ECDSA with SHA-512 on the P-521 curve",
        /// Generic signature with an AlgorithmIdentifier prefix (RFC 7427).
        DigitalSignature = 14 => "Digital Signature",
    }
}

/// AUTH body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    /// Auth Method.
    pub method: AuthMethod,
    /// Authentication Data (for `DigitalSignature`, the RFC 7427 ASN.1 prefix included).
    pub data: Vec<u8>,
}

/// Decodes an AUTH body: method, 3 RESERVED octets, data.
pub(super) fn parse(body: &[u8]) -> Result<AuthPayload, DecodeError> {
    let (data, (method, _reserved)) = fields("AUTH payload", body, (be_u8, be_u24))?;
    Ok(AuthPayload {
        method: method.into(),
        data: data.to_vec(),
    })
}

/// Encodes an AUTH body.
pub(super) fn emit(auth: &AuthPayload, out: &mut Vec<u8>) {
    out.extend_from_slice(&[auth.method.into(), 0, 0, 0]);
    out.extend_from_slice(&auth.data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_and_data() {
        let auth = parse(&[2, 0, 0, 0, 0xaa, 0xbb]).unwrap();
        assert_eq!(auth.method, AuthMethod::SharedKeyMic);
        assert_eq!(auth.data, [0xaa, 0xbb]);
        let mut out = Vec::new();
        emit(&auth, &mut out);
        assert_eq!(out, [2, 0, 0, 0, 0xaa, 0xbb]);
    }

    #[test]
    fn short_body_is_truncated() {
        assert_eq!(parse(&[2]), Err(DecodeError::Truncated("AUTH payload")));
    }
}
