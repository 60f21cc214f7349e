//! Key Exchange payload ([RFC 7296 §3.4](https://www.rfc-editor.org/rfc/rfc7296#section-3.4)).

use nom::number::complete::be_u16;

use super::{DecodeError, fields};

/// KE payload: the sender's public Diffie-Hellman value for `group`.
///
/// The data length is the group's business (checked where the group is known), not the
/// codec's: a wrong length there leads to INVALID_SYNTAX, a wrong group to INVALID_KE_PAYLOAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    /// Diffie-Hellman Group Num (IANA Transform Type 4 ID).
    pub group: u16,
    /// Key Exchange Data.
    pub data: Vec<u8>,
}

/// Decodes a KE body: group, 2 RESERVED octets, data.
pub(super) fn parse(body: &[u8]) -> Result<KePayload, DecodeError> {
    let (data, (group, _reserved)) = fields("KE payload", body, (be_u16, be_u16))?;
    Ok(KePayload {
        group,
        data: data.to_vec(),
    })
}

/// Encodes a KE body.
pub(super) fn emit(ke: &KePayload, out: &mut Vec<u8>) {
    out.extend_from_slice(&ke.group.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ke.data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_and_data_ignoring_reserved() {
        let ke = parse(&[0, 19, 0xff, 0xff, 1, 2, 3]).unwrap();
        assert_eq!(
            ke,
            KePayload {
                group: 19,
                data: vec![1, 2, 3]
            }
        );
        let mut out = Vec::new();
        emit(&ke, &mut out);
        assert_eq!(out, [0, 19, 0, 0, 1, 2, 3]);
    }

    #[test]
    fn short_body_is_truncated() {
        assert_eq!(
            parse(&[0, 19, 0]),
            Err(DecodeError::Truncated("KE payload"))
        );
    }
}
