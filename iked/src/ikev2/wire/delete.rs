//! Delete payload ([RFC 7296 §3.11](https://www.rfc-editor.org/rfc/rfc7296#section-3.11)).

use nom::number::complete::{be_u8, be_u16};

use super::{DecodeError, ProtocolId, fields, len_u16};

/// Delete body: which SAs the sender has deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// Octets per SPI: 0 for IKE (the SA is the one protecting the message), 4 for ESP/AH.
    pub spi_size: u8,
    /// The SPIs, each `spi_size` octets (the writer trusts this).
    pub spis: Vec<Vec<u8>>,
}

/// Decodes a Delete body; "Num of SPIs" times "SPI Size" must equal the rest of the body.
///
/// With SPI size 0, the count is kept as that many empty SPIs so the value round-trips.
pub(super) fn parse(body: &[u8]) -> Result<DeletePayload, DecodeError> {
    let (rest, (protocol, spi_size, count)) =
        fields("Delete payload", body, (be_u8, be_u8, be_u16))?;
    let size = usize::from(spi_size);
    if size * usize::from(count) != rest.len() {
        return Err(DecodeError::BadLength("Delete SPIs", rest.len()));
    }
    let spis = if size == 0 {
        vec![Vec::new(); usize::from(count)]
    } else {
        rest.chunks_exact(size).map(<[u8]>::to_vec).collect()
    };
    Ok(DeletePayload {
        protocol: protocol.into(),
        spi_size,
        spis,
    })
}

/// Encodes a Delete body; the count comes from `spis.len()`.
///
/// # Panics
/// If there are more than 65535 SPIs.
pub(super) fn emit(delete: &DeletePayload, out: &mut Vec<u8>) {
    out.push(delete.protocol.into());
    out.push(delete.spi_size);
    out.extend_from_slice(&len_u16("Delete SPI count", delete.spis.len()).to_be_bytes());
    for spi in &delete.spis {
        out.extend_from_slice(spi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::captures;

    #[test]
    fn parses_captured_esp_delete() {
        // D of the decrypted INFORMATIONAL request (06_*.inner.bin, octets 4..12).
        let inner = captures::PSK_INFO_REQ_INNER;
        let d = parse(&inner[4..12]).unwrap();
        assert_eq!(d.protocol, ProtocolId::Esp);
        assert_eq!(d.spi_size, 4);
        assert_eq!(d.spis, [vec![0x7b, 0x43, 0x0b, 0xfd]]);
        let mut out = Vec::new();
        emit(&d, &mut out);
        assert_eq!(out, inner[4..12]);
    }

    #[test]
    fn parses_ike_delete_without_spis() {
        let d = parse(&[1, 0, 0, 0]).unwrap();
        assert_eq!(d.protocol, ProtocolId::Ike);
        assert!(d.spis.is_empty());
    }

    #[test]
    fn spi_count_times_size_must_equal_body() {
        assert_eq!(
            parse(&[3, 4, 0, 2, 1, 2, 3, 4]),
            Err(DecodeError::BadLength("Delete SPIs", 4))
        );
        assert_eq!(
            parse(&[3, 4, 0, 1, 1, 2, 3, 4, 5]),
            Err(DecodeError::BadLength("Delete SPIs", 5))
        );
        assert_eq!(
            parse(&[1, 0, 0, 0, 9]),
            Err(DecodeError::BadLength("Delete SPIs", 1))
        );
        assert_eq!(
            parse(&[3, 4, 0]),
            Err(DecodeError::Truncated("Delete payload"))
        );
    }
}
