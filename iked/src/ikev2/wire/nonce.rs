//! Nonce payload ([RFC 7296 §3.9](https://www.rfc-editor.org/rfc/rfc7296#section-3.9)).

use super::DecodeError;

/// Smallest Nonce Data a peer may send.
pub(super) const NONCE_MIN: usize = 16;
/// Largest Nonce Data a peer may send.
pub(super) const NONCE_MAX: usize = 256;

/// Decodes a Nonce body: "The size of the Nonce Data MUST be between 16 and 256 octets,
/// inclusive" (RFC 7296 §3.9).
pub(super) fn parse(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if (NONCE_MIN..=NONCE_MAX).contains(&body.len()) {
        Ok(body.to_vec())
    } else {
        Err(DecodeError::BadLength("Nonce", body.len()))
    }
}

/// Encodes a Nonce body (the data as is).
pub(super) fn emit(nonce: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(nonce);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_length_bounds_are_inclusive() {
        assert!(parse(&[7; 16]).is_ok());
        assert!(parse(&[7; 256]).is_ok());
        assert_eq!(parse(&[7; 15]), Err(DecodeError::BadLength("Nonce", 15)));
        assert_eq!(parse(&[7; 257]), Err(DecodeError::BadLength("Nonce", 257)));
    }
}
