//! Known-answer tests on real IKEv1 datagrams (testdata/isakmp/README.md names the source):
//! the header and the whole payload chain parse, typed values match what the peers sent, and
//! the encoder reproduces every chain byte for byte.

use std::net::Ipv4Addr;

use super::{
    ExchangeType, Identification, IsakmpHeader, Payload, PayloadType, ProtocolId, emit_chain,
    parse_chain,
};

/// Every capture: (file name, datagram).
fn captures() -> Vec<(&'static str, Vec<u8>)> {
    macro_rules! capture {
        ($name:literal) => {
            (
                $name,
                hex::decode(include_str!(concat!("../../testdata/isakmp/", $name)).trim())
                    .expect("testdata is hex"),
            )
        };
    }
    vec![
        capture!("main-psk-m1.hex"),
        capture!("main-psk-m2.hex"),
        capture!("main-psk-m3.hex"),
        capture!("aggressive-psk-m1.hex"),
        capture!("aggressive-psk-m2.hex"),
    ]
}

fn chain(bytes: &[u8]) -> (IsakmpHeader, Vec<Payload<'_>>) {
    let header = IsakmpHeader::parse(bytes).unwrap();
    let payloads = parse_chain(header.next_payload, &bytes[28..]).unwrap();
    (header, payloads)
}

#[test]
fn every_capture_parses_and_re_emits_byte_for_byte() {
    for (name, bytes) in captures() {
        let (header, payloads) = chain(&bytes);
        assert_eq!(header.length as usize, bytes.len(), "{name}");
        let mut out = Vec::new();
        assert_eq!(
            emit_chain(&payloads, &mut out),
            header.next_payload,
            "{name}"
        );
        assert_eq!(out, bytes[28..], "{name}");
    }
}

#[test]
fn payload_sequence_of_each_capture() {
    let types = |bytes: &[u8]| -> Vec<String> {
        chain(bytes)
            .1
            .iter()
            .map(|p| p.ptype().to_string())
            .collect()
    };
    let all = captures();
    let seq: Vec<_> = all.iter().map(|(_, b)| types(b).join(" ")).collect();
    assert_eq!(
        seq,
        [
            "SA",
            "SA VID VID",
            "KE NONCE",
            "SA KE NONCE ID",
            "SA KE NONCE ID VID VID HASH",
        ]
    );
}

#[test]
fn main_mode_sa_is_one_key_ike_transform() {
    let (_, bytes) = &captures()[0];
    let (header, payloads) = chain(bytes);
    assert_eq!(header.exchange, ExchangeType::IdentityProtection);
    let Payload::Sa(sa) = &payloads[0] else {
        panic!("not SA");
    };
    assert_eq!((sa.doi, sa.situation), (1, 1));
    assert_eq!(sa.proposals.len(), 1);
    let p = &sa.proposals[0];
    assert_eq!(p.protocol, ProtocolId::Isakmp);
    assert!(p.spi.is_empty());
    assert_eq!(p.transforms.len(), 1);
    assert_eq!(p.transforms[0].id, 1, "KEY_IKE");
    // Phase 1 attributes (RFC 2409 App. A): encryption 7 (AES-CBC), key length 128, hash 2
    // (SHA), group 2 (1024-bit MODP), auth 1 (PSK), life type seconds, life 28800.
    let attrs: Vec<_> = p.transforms[0]
        .attributes
        .iter()
        .map(|a| (a.attr_type, a.as_u64().unwrap()))
        .collect();
    assert_eq!(
        attrs,
        [
            (1, 7),
            (14, 128),
            (2, 2),
            (4, 2),
            (3, 1),
            (11, 1),
            (12, 28800)
        ]
    );
}

#[test]
fn aggressive_mode_id_nonce_and_ke() {
    let (_, bytes) = &captures()[3];
    let (header, payloads) = chain(bytes);
    assert_eq!(header.exchange, ExchangeType::Aggressive);
    assert!(matches!(&payloads[1], Payload::Ke(ke) if ke.len() == 128));
    assert!(matches!(&payloads[2], Payload::Nonce(n) if n.len() == 8));
    let Payload::Id(id) = &payloads[3] else {
        panic!("not ID");
    };
    assert_eq!(id.id, Identification::Ipv4(Ipv4Addr::new(10, 0, 3, 1)));
    assert_eq!((id.protocol, id.port), (0, 0));
    let (_, bytes) = &captures()[4];
    let (_, payloads) = chain(bytes);
    assert_eq!(payloads.last().map(Payload::ptype), Some(PayloadType::Hash));
}
