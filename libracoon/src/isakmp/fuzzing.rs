//! Fuzz target body: `fuzz/fuzz_targets/isakmp_payloads.rs` calls [`payloads`]; the tests
//! below replay hand-built chains and their mutations through the same function.

use super::{IpsecAttributes, Payload, PayloadType, emit_chain, parse_chain};

/// Parses `data` as a payload chain: the first octet is the first payload's type, the rest
/// the chain. Whatever parses must re-emit to the same length (RESERVED octets are ignored on
/// receipt and sent as zero, so the bytes may differ there), re-parse to the same value and
/// re-emit identically; the typed attribute reader must not panic on any transform.
///
/// # Panics
/// On any discrepancy: that is the finding the fuzzer reports.
pub fn payloads(data: &[u8]) {
    let Some((&first, chain)) = data.split_first() else {
        return;
    };
    let Ok(payloads) = parse_chain(PayloadType::from(first), chain) else {
        return;
    };
    let mut out = Vec::new();
    let emitted_first = emit_chain(&payloads, &mut out);
    assert_eq!(out.len(), chain.len(), "emit changes the length");
    assert_eq!(u8::from(emitted_first), first);
    let again = parse_chain(emitted_first, &out).expect("emitted chain does not parse");
    assert_eq!(again, payloads);
    let mut twice = Vec::new();
    emit_chain(&again, &mut twice);
    assert_eq!(twice, out, "emit is not stable");
    for payload in &payloads {
        if let Payload::Sa(sa) = payload {
            for t in sa.proposals.iter().flat_map(|p| &p.transforms) {
                if let Ok(typed) = IpsecAttributes::from_attributes(&t.attributes) {
                    let back = IpsecAttributes::from_attributes(&typed.to_attributes());
                    assert_eq!(
                        back.as_ref(),
                        Ok(&typed),
                        "typed attributes do not round-trip"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::isakmp::{
        AuthAlgorithm, EncapsulationMode, EspTransformId, IdPayload, Identification, LifeType,
        Proposal, ProtocolId, SaPayload, Transform,
    };

    /// A Quick Mode first message's chain (SA, Nonce, IDci, IDcr) built with the codec.
    fn quick_mode_chain() -> Vec<u8> {
        let attrs = IpsecAttributes {
            lifetimes: vec![(LifeType::Seconds, 3600)],
            mode: Some(EncapsulationMode::Tunnel),
            auth: Some(AuthAlgorithm::HmacSha2_256),
            key_length: Some(256),
            ..IpsecAttributes::default()
        };
        let sa = SaPayload::ipsec(vec![Proposal {
            num: 1,
            protocol: ProtocolId::Esp,
            spi: Cow::Borrowed(&[0xca, 0xfe, 0, 1]),
            transforms: vec![Transform {
                num: 1,
                id: EspTransformId::AesCbc.into(),
                attributes: attrs.to_attributes(),
            }],
        }]);
        let id = |a| {
            Payload::Id(IdPayload {
                protocol: 0,
                port: 0,
                id: Identification::Ipv4Subnet(a, [255, 255, 255, 0].into()),
            })
        };
        let payloads = [
            Payload::Sa(sa),
            Payload::Nonce(Cow::Borrowed(&[0x5a; 16])),
            id([192, 0, 2, 0].into()),
            id([198, 51, 100, 0].into()),
        ];
        let mut out = Vec::new();
        let first = emit_chain(&payloads, &mut out);
        out.insert(0, first.into());
        out
    }

    #[test]
    fn quick_mode_chain_round_trips_byte_for_byte() {
        let bytes = quick_mode_chain();
        payloads(&bytes);
        let parsed = parse_chain(PayloadType::from(bytes[0]), &bytes[1..]).unwrap();
        let mut out = Vec::new();
        emit_chain(&parsed, &mut out);
        assert_eq!(out, bytes[1..]);
    }

    /// Every prefix and every single-octet corruption: no panic, and whatever parses
    /// round-trips.
    #[test]
    fn mutated_chains_never_panic() {
        let bytes = quick_mode_chain();
        for n in 0..bytes.len() {
            payloads(&bytes[..n]);
        }
        let mut bytes = bytes;
        for i in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xff] {
                bytes[i] ^= mask;
                payloads(&bytes);
                bytes[i] ^= mask;
            }
        }
    }

    /// Replays `fuzz/corpus/isakmp_payloads/` (the committed seeds, and whatever local
    /// fuzzing left there); every committed seed is a valid chain.
    #[test]
    fn fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/isakmp_payloads");
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            payloads(&bytes);
            if entry.file_name().to_string_lossy().starts_with("seed-") {
                let (first, chain) = bytes.split_first().unwrap();
                assert!(parse_chain(PayloadType::from(*first), chain).is_ok());
                seeds += 1;
            }
        }
        assert!(seeds >= 2, "seeds missing");
    }
}
