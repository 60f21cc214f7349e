//! The Encrypted payload ([RFC 7296 §3.14](https://www.rfc-editor.org/rfc/rfc7296#section-3.14),
//! AEAD per [RFC 5282](https://www.rfc-editor.org/rfc/rfc5282)).
//!
//! Opening is one step: check the ICV in constant time, decrypt, strip
//! padding, parse the whole inner chain. Only then does a state machine see
//! the payloads ("full recognition before processing").

use libracoon::crypto::{EncrAlg, IntegAlg, Random};

use crate::ikev2::error::Error;
use crate::ikev2::wire::{self, Header, Message, Payload};

/// The keys protecting one direction of an IKE SA.
#[derive(Clone, Copy)]
pub struct SkKeys<'a> {
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity, absent for AEAD.
    pub integ: Option<IntegAlg>,
    /// SK_ei or SK_er.
    pub sk_e: &'a [u8],
    /// SK_ai or SK_ar (empty for AEAD).
    pub sk_a: &'a [u8],
}

/// Builds an encrypted message: `header` (its length is set here) with
/// `inner` inside an SK payload.
///
/// # Errors
/// Only on a failing random source or crypto backend.
pub fn seal(
    header: &Header,
    inner: &[Payload],
    keys: SkKeys<'_>,
    rng: &mut dyn Random,
) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::new();
    let first = wire::emit_chain(inner, &mut plain);
    let block = keys.encr.block_len().max(1);
    let pad_len = (block - (plain.len() + 1) % block) % block;
    plain.resize(plain.len() + pad_len, 0);
    plain.push(u8::try_from(pad_len).map_err(|_| Error::Internal("padding"))?);

    let iv_len = keys.encr.iv_len();
    let icv_len = icv_len(keys);
    let mut iv = vec![0u8; iv_len];
    rng.fill(&mut iv)?;
    let body_len = iv_len + plain.len() + icv_len;
    let (mut buf, sk_off) = wire::emit_sk_frame(header, first, body_len);
    let body_start = sk_off + 4;
    let ct_start = body_start + iv_len;
    buf.get_mut(body_start..ct_start)
        .ok_or(Error::Internal("frame"))?
        .copy_from_slice(&iv);
    if keys.encr.is_aead() {
        let aad = buf
            .get(..body_start)
            .ok_or(Error::Internal("frame"))?
            .to_vec();
        keys.encr.aead_seal(keys.sk_e, &iv, &aad, &mut plain)?;
        buf.get_mut(ct_start..)
            .ok_or(Error::Internal("frame"))?
            .copy_from_slice(&plain);
    } else {
        keys.encr.cbc_encrypt(keys.sk_e, &iv, &mut plain)?;
        let icv_start = ct_start + plain.len();
        buf.get_mut(ct_start..icv_start)
            .ok_or(Error::Internal("frame"))?
            .copy_from_slice(&plain);
        let integ = keys.integ.ok_or(Error::Internal("CBC without integrity"))?;
        let icv = integ.compute(
            keys.sk_a,
            buf.get(..icv_start).ok_or(Error::Internal("frame"))?,
        );
        buf.get_mut(icv_start..)
            .ok_or(Error::Internal("frame"))?
            .copy_from_slice(&icv);
    }
    Ok(buf)
}

/// Checks, decrypts and parses the SK payload of `msg`, which was parsed
/// from `datagram`.
///
/// # Errors
/// [`Error::Integrity`] for a bad ICV or tag, [`Error::Decode`] for a bad
/// inner chain, [`Error::PeerMisbehaved`] when there is no SK payload.
pub fn open(datagram: &[u8], msg: &Message, keys: SkKeys<'_>) -> Result<Vec<Payload>, Error> {
    let sk = msg
        .sk
        .as_ref()
        .ok_or(Error::PeerMisbehaved("expected an encrypted payload"))?;
    let iv_len = keys.encr.iv_len();
    let icv_len = icv_len(keys);
    let body = &sk.body;
    if body.len() < iv_len + icv_len + 1 {
        return Err(wire::DecodeError::Truncated("SK payload").into());
    }
    let (iv, rest) = body.split_at(iv_len);
    let mut data = rest.to_vec();
    let plain_len = if keys.encr.is_aead() {
        let aad = datagram
            .get(..sk.header_offset + 4)
            .ok_or(Error::Integrity)?;
        keys.encr
            .aead_open(keys.sk_e, iv, aad, &mut data)
            .map_err(|_| Error::Integrity)?
    } else {
        let integ = keys.integ.ok_or(Error::Internal("CBC without integrity"))?;
        let signed_len = datagram
            .len()
            .checked_sub(icv_len)
            .ok_or(Error::Integrity)?;
        let (signed, icv) = datagram.split_at(signed_len);
        if !integ.verify(keys.sk_a, signed, icv) {
            return Err(Error::Integrity);
        }
        let ct_len = data.len() - icv_len;
        data.truncate(ct_len);
        keys.encr
            .cbc_decrypt(keys.sk_e, iv, &mut data)
            .map_err(|_| Error::Integrity)?;
        ct_len
    };
    let plain = data.get(..plain_len).ok_or(Error::Integrity)?;
    let (&pad_len, before_pad) = plain
        .split_last()
        .ok_or(wire::DecodeError::Truncated("SK padding"))?;
    let inner_len = before_pad
        .len()
        .checked_sub(usize::from(pad_len))
        .ok_or_else(|| wire::DecodeError::BadLength("SK padding", usize::from(pad_len)))?;
    Ok(wire::parse_chain(
        sk.first_inner,
        before_pad.get(..inner_len).unwrap_or_default(),
    )?)
}

fn icv_len(keys: SkKeys<'_>) -> usize {
    if keys.encr.is_aead() {
        keys.encr.icv_len()
    } else {
        keys.integ.map_or(0, IntegAlg::icv_len)
    }
}

#[cfg(test)]
mod tests {
    use libracoon::crypto::SeededRandom;

    use super::*;
    use crate::ikev2::wire::{
        ExchangeType, Flags, NotifyPayload, NotifyType, PayloadType, ProtocolId,
    };

    fn header() -> Header {
        Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: PayloadType::Sk,
            major: 2,
            minor: 0,
            exchange: ExchangeType::Informational,
            flags: Flags(Flags::INITIATOR),
            message_id: 5,
            length: 0,
        }
    }

    fn inner() -> Vec<Payload> {
        vec![Payload::Notify(NotifyPayload {
            protocol: ProtocolId::None,
            spi: Vec::new(),
            ntype: NotifyType::InitialContact,
            data: Vec::new(),
        })]
    }

    fn round_trip(encr: EncrAlg, integ: Option<IntegAlg>) {
        let sk_e = vec![3u8; encr.key_len()];
        let sk_a = vec![4u8; integ.map_or(0, IntegAlg::key_len)];
        let keys = SkKeys {
            encr,
            integ,
            sk_e: &sk_e,
            sk_a: &sk_a,
        };
        let bytes = seal(&header(), &inner(), keys, &mut SeededRandom::new(1)).expect("seal");
        let msg = Message::parse(&bytes).expect("parse");
        assert_eq!(open(&bytes, &msg, keys).expect("open"), inner());
        let mut tampered = bytes;
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let msg = Message::parse(&tampered).expect("parse");
        assert_eq!(open(&tampered, &msg, keys), Err(Error::Integrity));
    }

    #[test]
    fn every_ike_cipher_round_trips_and_detects_tampering() {
        round_trip(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128));
        round_trip(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96));
        round_trip(EncrAlg::AesGcm16_128, None);
        round_trip(EncrAlg::AesGcm16_256, None);
        round_trip(EncrAlg::ChaCha20Poly1305, None);
    }
}
