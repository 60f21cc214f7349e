//! Delete payload ([RFC 2408 §3.15](https://www.rfc-editor.org/rfc/rfc2408#section-3.15)).
//!
//! ```text
//! DOI (32) | Protocol-Id (8) | SPI Size (8) | # of SPIs (16) | SPIs (# * SPI Size)
//! ```

use std::borrow::Cow;

use nom::number::complete::{be_u8, be_u16, be_u32};

use super::{DecodeError, ProtocolId, end, fields, len_u16, split};

/// A Delete payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload<'a> {
    /// Domain of Interpretation (1 = IPsec).
    pub doi: u32,
    /// Protocol of the SAs.
    pub protocol: ProtocolId,
    /// Octets per SPI (4 for AH/ESP, 16 for an ISAKMP SA's cookie pair).
    pub spi_size: u8,
    /// The SPIs, each `spi_size` octets.
    pub spis: Vec<Cow<'a, [u8]>>,
}

impl DeletePayload<'_> {
    /// Encodes the body.
    ///
    /// # Panics
    /// If an SPI is not `spi_size` octets long or there are more than 65535 SPIs: a caller's
    /// construction error.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol.into());
        out.push(self.spi_size);
        out.extend_from_slice(&len_u16("Delete SPIs", self.spis.len()).to_be_bytes());
        for spi in &self.spis {
            assert_eq!(spi.len(), usize::from(self.spi_size), "Delete SPI size");
            out.extend_from_slice(spi);
        }
    }

    /// Copies every borrowed byte field.
    #[must_use]
    pub fn into_owned(self) -> DeletePayload<'static> {
        DeletePayload {
            doi: self.doi,
            protocol: self.protocol,
            spi_size: self.spi_size,
            spis: self
                .spis
                .into_iter()
                .map(|s| Cow::Owned(s.into_owned()))
                .collect(),
        }
    }
}

/// Decodes a Delete payload body.
pub(super) fn parse(body: &[u8]) -> Result<DeletePayload<'_>, DecodeError> {
    let parser = (be_u32, be_u8, be_u8, be_u16);
    let (mut rest, (doi, protocol, spi_size, count)) = fields("Delete payload", body, parser)?;
    if spi_size == 0 && count != 0 {
        return Err(DecodeError::BadValue("Delete payload: SPI size 0"));
    }
    let mut spis = Vec::with_capacity(usize::from(count).min(rest.len()));
    for _ in 0..count {
        let (spi, after) = split("Delete SPIs", rest, usize::from(spi_size))?;
        spis.push(Cow::Borrowed(spi));
        rest = after;
    }
    end("Delete payload", rest)?;
    Ok(DeletePayload {
        doi,
        protocol: protocol.into(),
        spi_size,
        spis,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::isakmp::strategies;

    #[test]
    fn two_esp_spis() {
        let bytes = [0, 0, 0, 1, 3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        let d = parse(&bytes).unwrap();
        assert_eq!(d.protocol, ProtocolId::Esp);
        assert_eq!(d.spis, [&[1, 2, 3, 4][..], &[5, 6, 7, 8][..]]);
        let mut out = Vec::new();
        d.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn count_and_size_must_match_the_body() {
        assert_eq!(
            parse(&[0, 0, 0, 1, 3, 4, 0, 2, 1, 2, 3, 4]),
            Err(DecodeError::Truncated("Delete SPIs"))
        );
        assert_eq!(
            parse(&[0, 0, 0, 1, 3, 4, 0, 1, 1, 2, 3, 4, 5]),
            Err(DecodeError::Trailing("Delete payload"))
        );
        assert_eq!(
            parse(&[0, 0, 0, 1, 3, 0, 0xff, 0xff]),
            Err(DecodeError::BadValue("Delete payload: SPI size 0"))
        );
    }

    proptest! {
        #[test]
        fn deletes_round_trip(d in strategies::delete()) {
            let mut out = Vec::new();
            d.emit(&mut out);
            prop_assert_eq!(parse(&out).unwrap(), d);
        }
    }
}
