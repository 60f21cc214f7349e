//! Quick Mode builders and readers: a hand-laid CREATE, round trips through
//! the ISAKMP codec for every algorithm and mode, selection and every error.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libracoon::ipsec::{EspAuth, EspEncr, IpsecMode, Lifetime, Selector};
use libracoon::isakmp::{
    Attribute, AuthAlgorithm, EncapsulationMode, IdPayload, IdType, Identification,
    IpsecAttributes, LifeType, NotifyType, Payload, Proposal, ProtocolId, SaPayload, Transform,
    emit_chain, parse_chain,
};

use super::*;
use crate::proto::config::{EspProposal, PeerConfig};
use crate::wire::IsakmpPayload;

fn esp(id: u16, key_bits: u16, auth: Option<u16>) -> EspProposal {
    EspProposal {
        encr: EspEncr { id, key_bits },
        auth: auth.map(|id| EspAuth { id }),
    }
}

fn gcm128() -> EspProposal {
    esp(20, 128, None)
}
fn gcm256() -> EspProposal {
    esp(20, 256, None)
}
fn cbc128_sha1() -> EspProposal {
    esp(12, 128, Some(2))
}
fn cbc256_sha256() -> EspProposal {
    esp(12, 256, Some(12))
}
fn chacha() -> EspProposal {
    esp(28, 256, None)
}

/// Every transform kinkd can express.
fn all_algorithms() -> Vec<EspProposal> {
    vec![
        cbc128_sha1(),
        esp(12, 192, Some(12)),
        cbc256_sha256(),
        esp(12, 256, Some(13)),
        esp(12, 256, Some(14)),
        gcm128(),
        esp(20, 192, None),
        gcm256(),
        chacha(),
    ]
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn life(secs: u64) -> Lifetime {
    Lifetime {
        hard_time: Some(Duration::from_secs(secs)),
        ..Lifetime::default()
    }
}

/// Ours: 198.51.100.0/24 behind us, 203.0.113.0/24 behind the peer.
fn our_selector() -> Selector {
    Selector::ranges(
        (ip("198.51.100.0"), ip("198.51.100.255")),
        (ip("203.0.113.0"), ip("203.0.113.255")),
    )
}

fn peer(mode: IpsecMode, proposals: Vec<EspProposal>) -> PeerConfig {
    PeerConfig {
        name: "peer".into(),
        address: SocketAddr::new(ip("192.0.2.2"), 910),
        local: ip("192.0.2.1"),
        principal: "kink/peer.example@EXAMPLE".into(),
        reqid: 1,
        mode,
        selector: our_selector(),
        proposals,
        lifetime: Lifetime {
            soft_time: Some(Duration::from_secs(3000)),
            hard_time: Some(Duration::from_secs(3600)),
            ..Lifetime::default()
        },
        user_to_user: false,
        retransmit_base: Duration::from_secs(1),
        retransmit_tries: 5,
    }
}

/// Emits the chain and parses it back, as the peer would see it.
fn through_wire(p: &IsakmpPayload<'_>) -> IsakmpPayload<'static> {
    let mut out = Vec::new();
    let first = emit_chain(&p.payloads, &mut out);
    let payloads = parse_chain(first, &out).expect("our own chain parses");
    IsakmpPayload {
        payloads: payloads.into_iter().map(Payload::into_owned).collect(),
    }
}

const NI: &[u8] = b"Ni: 16 octets..!";

fn create(
    proposals: &[EspProposal],
    mode: IpsecMode,
    ids: Option<&Selector>,
) -> IsakmpPayload<'static> {
    let lifetime = life(3600);
    let offer = Offer {
        proposals,
        spi: 0x0102_0304,
        nonce: NI,
        mode,
        lifetime: &lifetime,
        ids,
    };
    through_wire(&build_create(&offer))
}

/// A CREATE's SA payload laid out octet by octet from RFC 2408 §3.4-3.6,
/// RFC 2407 §4.5 and the transform IDs of RFC 3602 §5.3 / RFC 4106 §8.4
/// (not produced by our encoder): SPI 0xdeadbeef, proposal 1 =
/// ESP_AES-GCM_16 with a 256-bit key, proposal 2 = ESP_AES-128 with
/// HMAC-SHA2-256; tunnel mode, 3600 seconds and 100000 kilobytes.
const CREATE_SA: [u8; 112] = [
    // generic header: next NONCE (10), reserved, length 112
    10, 0, 0, 112, //
    0, 0, 0, 1, // DOI: IPsec
    0, 0, 0, 1, // situation: SIT_IDENTITY_ONLY
    // proposal: more (2), reserved, length 48, #1, PROTO_IPSEC_ESP, SPI size 4, 1 transform
    2, 0, 0, 48, 1, 3, 4, 1, //
    0xde, 0xad, 0xbe, 0xef, // SPI
    // transform: last, reserved, length 36, #1, ESP_AES-GCM_16 (20), reserved2
    0, 0, 0, 36, 1, 20, 0, 0, //
    0x80, 1, 0, 1, // SA Life Type = seconds
    0x80, 2, 0x0e, 0x10, // SA Life Duration = 3600 (TV)
    0x80, 1, 0, 2, // SA Life Type = kilobytes
    0, 2, 0, 4, 0, 1, 0x86, 0xa0, // SA Life Duration = 100000 (TLV, 4 octets)
    0x80, 4, 0, 1, // Encapsulation Mode = Tunnel
    0x80, 6, 1, 0, // Key Length = 256
    // proposal: last, reserved, length 52, #2, ESP, SPI size 4, 1 transform
    0, 0, 0, 52, 2, 3, 4, 1, //
    0xde, 0xad, 0xbe, 0xef, // SPI
    // transform: last, reserved, length 40, #1, ESP_AES (12), reserved2
    0, 0, 0, 40, 1, 12, 0, 0, //
    0x80, 1, 0, 1, // SA Life Type = seconds
    0x80, 2, 0x0e, 0x10, // SA Life Duration = 3600
    0x80, 1, 0, 2, // SA Life Type = kilobytes
    0, 2, 0, 4, 0, 1, 0x86, 0xa0, // SA Life Duration = 100000
    0x80, 4, 0, 1, // Encapsulation Mode = Tunnel
    0x80, 5, 0, 5, // Authentication Algorithm = HMAC-SHA2-256
    0x80, 6, 0, 128, // Key Length = 128
];

#[test]
fn create_sa_payload_matches_the_hand_built_bytes() {
    let lifetime = Lifetime {
        hard_time: Some(Duration::from_secs(3600)),
        hard_bytes: Some(100_000 * 1024),
        ..Lifetime::default()
    };
    let offer = Offer {
        proposals: &[gcm256(), esp(12, 128, Some(12))],
        spi: 0xdead_beef,
        nonce: b"12345678",
        mode: IpsecMode::Tunnel,
        lifetime: &lifetime,
        ids: None,
    };
    let mut out = Vec::new();
    let first = emit_chain(&build_create(&offer).payloads, &mut out);
    assert_eq!(first, libracoon::isakmp::PayloadType::Sa);
    assert_eq!(&out[..112], &CREATE_SA[..]);
    // Then the nonce: last payload, length 12.
    assert_eq!(&out[112..], b"\0\0\0\x0c12345678");

    // And the hand-built bytes read as the offer.
    let chain = parse_chain(first, &out).unwrap();
    let req = parse_create(&IsakmpPayload { payloads: chain }).unwrap();
    let esps: Vec<_> = req.proposals.iter().map(|o| o.esp).collect();
    assert_eq!(esps, [gcm256(), esp(12, 128, Some(12))]);
    assert!(
        req.proposals
            .iter()
            .all(|o| o.spi == 0xdead_beef && o.lifetime == lifetime && o.mode == IpsecMode::Tunnel)
    );
    assert_eq!(req.nonce, b"12345678");
}

#[test]
fn every_algorithm_and_mode_round_trips_through_create() {
    let algs = all_algorithms();
    for mode in [IpsecMode::Tunnel, IpsecMode::Transport] {
        let req = parse_create(&create(&algs, mode, None)).unwrap();
        assert!(req.skipped.is_empty(), "{:?}", req.skipped);
        assert!(req.first_usable);
        assert_eq!(req.nonce, NI);
        assert_eq!(req.ids, None);
        assert_eq!(req.proposals.len(), algs.len());
        for (i, (o, want)) in req.proposals.iter().zip(&algs).enumerate() {
            assert_eq!(o.esp, *want, "{mode:?} #{i}");
            assert_eq!(usize::from(o.proposal_num), i + 1);
            assert_eq!(o.transform_num, 1);
            assert_eq!(o.spi, 0x0102_0304);
            assert_eq!(o.mode, mode);
            assert_eq!(o.lifetime, life(3600));
        }
    }
}

#[test]
fn transform_ids_and_attributes_follow_the_ikev1_registries() {
    let p = create(&all_algorithms(), IpsecMode::Transport, None);
    let Payload::Sa(sa) = &p.payloads[0] else {
        panic!("SA first")
    };
    let read = |i: usize| {
        let t = &sa.proposals[i].transforms[0];
        (
            t.id,
            IpsecAttributes::from_attributes(&t.attributes).unwrap(),
        )
    };
    // AES-CBC-128 + HMAC-SHA1: ESP_AES (12), Key Length 128, auth 2.
    let (id, a) = read(0);
    assert_eq!(
        (id, a.key_length, a.auth),
        (12, Some(128), Some(AuthAlgorithm::HmacSha1))
    );
    assert_eq!(a.mode, Some(EncapsulationMode::Transport));
    assert_eq!(a.lifetimes, [(LifeType::Seconds, 3600)]);
    // HMAC-SHA2-384 and -512: 6 and 7 (RFC 4868 §4).
    assert_eq!(read(3).1.auth, Some(AuthAlgorithm::HmacSha2_384));
    assert_eq!(read(4).1.auth, Some(AuthAlgorithm::HmacSha2_512));
    // AES-GCM-16: 20 with a Key Length and no auth.
    let (id, a) = read(5);
    assert_eq!((id, a.key_length, a.auth), (20, Some(128), None));
    // ChaCha20-Poly1305: 28, neither.
    let (id, a) = read(8);
    assert_eq!(
        (id, a.key_length, a.auth),
        (ESP_CHACHA20_POLY1305, None, None)
    );
}

#[test]
fn lifetimes_go_out_as_seconds_and_kilobytes() {
    let lifetime = Lifetime {
        hard_time: Some(Duration::from_millis(100)),
        hard_bytes: Some(5 * 1024 * 1024),
        soft_time: Some(Duration::from_secs(1)),
        ..Lifetime::default()
    };
    let offer = Offer {
        proposals: &[gcm128()],
        spi: 1,
        nonce: NI,
        mode: IpsecMode::Tunnel,
        lifetime: &lifetime,
        ids: None,
    };
    let req = parse_create(&through_wire(&build_create(&offer))).unwrap();
    // Sub-second rounds up to 1 s; soft limits never go on the wire.
    assert_eq!(
        req.proposals[0].lifetime,
        Lifetime {
            hard_time: Some(Duration::from_secs(1)),
            hard_bytes: Some(5 * 1024 * 1024),
            ..Lifetime::default()
        }
    );
    // No limit at all: no attribute, and the reader applies 28800 s.
    let none = Lifetime::default();
    let offer = Offer {
        lifetime: &none,
        ..offer
    };
    let req = parse_create(&through_wire(&build_create(&offer))).unwrap();
    assert_eq!(req.proposals[0].lifetime, life(28800));
}

fn v6_selector() -> Selector {
    Selector {
        src: (ip("2001:db8:1::"), ip("2001:db8:1:0:ffff:ffff:ffff:ffff")),
        dst: (ip("2001:db8:2::10"), ip("2001:db8:2::20")),
        proto: 17,
        src_port: 0,
        dst_port: 53,
    }
}

fn id_types(p: &IsakmpPayload<'_>) -> Vec<(IdType, u8, u16)> {
    p.payloads
        .iter()
        .filter_map(|x| match x {
            Payload::Id(id) => Some((id.id.id_type(), id.protocol, id.port)),
            _ => None,
        })
        .collect()
}

#[test]
fn ids_round_trip_as_subnets_ranges_and_addresses() {
    let host_to_range = Selector {
        src: (ip("192.0.2.7"), ip("192.0.2.7")),
        dst: (ip("203.0.113.1"), ip("203.0.113.100")),
        proto: 6,
        src_port: 1234,
        dst_port: 0,
    };
    let v6_host = Selector::ranges(
        (ip("2001:db8::1"), ip("2001:db8::1")),
        (
            ip("2001:db8::"),
            ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ),
    );
    let cases = [
        (
            our_selector(),
            [
                (IdType::Ipv4AddrSubnet, 0, 0),
                (IdType::Ipv4AddrSubnet, 0, 0),
            ],
        ),
        (
            host_to_range,
            [(IdType::Ipv4Addr, 6, 1234), (IdType::Ipv4AddrRange, 6, 0)],
        ),
        (
            v6_selector(),
            [
                (IdType::Ipv6AddrSubnet, 17, 0),
                (IdType::Ipv6AddrRange, 17, 53),
            ],
        ),
        (
            v6_host,
            [(IdType::Ipv6Addr, 0, 0), (IdType::Ipv6AddrSubnet, 0, 0)],
        ),
    ];
    for (sel, types) in cases {
        let p = create(&[gcm128()], IpsecMode::Tunnel, Some(&sel));
        assert_eq!(id_types(&p), types, "{sel:?}");
        let req = parse_create(&p).unwrap();
        assert_eq!(req.ids.as_ref(), Some(&sel));
    }
}

#[test]
fn a_v4_subnet_id_carries_the_netmask() {
    let p = create(&[gcm128()], IpsecMode::Tunnel, Some(&our_selector()));
    let Payload::Id(ci) = &p.payloads[2] else {
        panic!("IDci third")
    };
    assert_eq!(
        ci.id,
        Identification::Ipv4Subnet(
            "198.51.100.0".parse().unwrap(),
            "255.255.255.0".parse().unwrap()
        )
    );
}

fn with_ids(ci: Identification<'static>, cr: Identification<'static>) -> IsakmpPayload<'static> {
    let mut p = create(&[gcm128()], IpsecMode::Tunnel, None);
    for id in [ci, cr] {
        p.payloads.push(Payload::Id(IdPayload {
            protocol: 0,
            port: 0,
            id,
        }));
    }
    p
}

#[test]
fn bad_ids_are_invalid_id_information() {
    let v4 = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    let cases = [
        // Non-contiguous mask.
        with_ids(
            Identification::Ipv4Subnet(v4("192.0.2.0"), v4("255.0.255.0")),
            Identification::Ipv4(v4("192.0.2.1")),
        ),
        // Reversed range.
        with_ids(
            Identification::Ipv4Range(v4("192.0.2.9"), v4("192.0.2.1")),
            Identification::Ipv4(v4("192.0.2.1")),
        ),
        // Families differ.
        with_ids(
            Identification::Ipv4(v4("192.0.2.1")),
            Identification::Ipv6("2001:db8::1".parse().unwrap()),
        ),
        // Not an address.
        with_ids(
            Identification::Other(IdType::Fqdn, Cow::Borrowed(b"host.example")),
            Identification::Ipv4(v4("192.0.2.1")),
        ),
    ];
    for p in cases {
        let err = parse_create(&p).unwrap_err();
        assert_eq!(err.notify(), NotifyType::InvalidIdInformation, "{err}");
    }
    // Only one ID payload.
    let mut p = create(&[gcm128()], IpsecMode::Tunnel, Some(&our_selector()));
    p.payloads.pop();
    assert_eq!(
        parse_create(&p).unwrap_err().notify(),
        NotifyType::InvalidIdInformation
    );
}

#[test]
fn choose_takes_the_initiators_order_not_ours() {
    let req = parse_create(&create(
        &[cbc128_sha1(), gcm128(), cbc256_sha256()],
        IpsecMode::Tunnel,
        None,
    ))
    .unwrap();
    // We prefer AES-CBC-256 but the initiator listed AES-GCM first.
    let ours = peer(IpsecMode::Tunnel, vec![cbc256_sha256(), gcm128()]);
    let c = choose(&req, &ours).unwrap();
    assert_eq!(c.proposal.esp, gcm128());
    assert_eq!(c.proposal.proposal_num, 2);
    assert!(!c.optimistic);
    // Tunnel mode without IDs: our selector.
    assert_eq!(c.selector, our_selector());

    let ours = peer(IpsecMode::Tunnel, vec![cbc128_sha1()]);
    let c = choose(&req, &ours).unwrap();
    assert!(c.optimistic);
    assert_eq!(c.proposal.proposal_num, 1);
}

#[test]
fn choose_negotiates_the_smaller_lifetime() {
    let lifetime = Lifetime {
        hard_time: Some(Duration::from_secs(1800)),
        hard_bytes: Some(1 << 30),
        ..Lifetime::default()
    };
    let offer = Offer {
        proposals: &[gcm128()],
        spi: 1,
        nonce: NI,
        mode: IpsecMode::Tunnel,
        lifetime: &lifetime,
        ids: None,
    };
    let req = parse_create(&through_wire(&build_create(&offer))).unwrap();
    let c = choose(&req, &peer(IpsecMode::Tunnel, vec![gcm128()])).unwrap();
    assert_eq!(c.lifetime.hard_time, Some(Duration::from_secs(1800)));
    assert_eq!(c.lifetime.hard_bytes, Some(1 << 30));
    // Our soft 3000 s is above the hard 1800 s: lowered to 90 %.
    assert_eq!(c.lifetime.soft_time, Some(Duration::from_secs(1620)));

    // A longer offer keeps ours.
    let req = parse_create(&create(&[gcm128()], IpsecMode::Tunnel, None)).unwrap();
    let mut ours = peer(IpsecMode::Tunnel, vec![gcm128()]);
    ours.lifetime.hard_time = Some(Duration::from_secs(600));
    ours.lifetime.soft_time = Some(Duration::from_secs(500));
    let c = choose(&req, &ours).unwrap();
    assert_eq!(c.lifetime.hard_time, Some(Duration::from_secs(600)));
    assert_eq!(c.lifetime.soft_time, Some(Duration::from_secs(500)));
}

#[test]
fn no_common_transform_or_mode_is_no_proposal_chosen_and_says_why() {
    let req = parse_create(&create(&[cbc128_sha1()], IpsecMode::Tunnel, None)).unwrap();
    let err = choose(
        &req,
        &peer(IpsecMode::Tunnel, vec![gcm256(), cbc256_sha256()]),
    )
    .unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);
    assert_eq!(
        err.to_string(),
        "peer offered only AES_CBC-128/HMAC_SHA1_96 (tunnel); \
         we accept AES_GCM_16-256, AES_CBC-256/HMAC_SHA2_256_128 in tunnel mode"
    );
    // Same transform, other mode.
    let err = choose(&req, &peer(IpsecMode::Transport, vec![cbc128_sha1()])).unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);
    assert!(err.to_string().ends_with("in transport mode"), "{err}");
}

#[test]
fn ids_must_lie_inside_our_selector_mirrored() {
    // The initiator's view: its src is our dst.
    let narrower = Selector {
        src: (ip("203.0.113.0"), ip("203.0.113.127")),
        dst: (ip("198.51.100.10"), ip("198.51.100.10")),
        proto: 6,
        src_port: 0,
        dst_port: 22,
    };
    let req = parse_create(&create(&[gcm128()], IpsecMode::Tunnel, Some(&narrower))).unwrap();
    let c = choose(&req, &peer(IpsecMode::Tunnel, vec![gcm128()])).unwrap();
    assert_eq!(c.selector, mirror(&narrower));
    assert_eq!(c.selector.src, (ip("198.51.100.10"), ip("198.51.100.10")));
    assert_eq!(c.selector.src_port, 22);

    // Not mirrored (src = our src): refused.
    let wrong_way = our_selector();
    let req = parse_create(&create(&[gcm128()], IpsecMode::Tunnel, Some(&wrong_way))).unwrap();
    let err = choose(&req, &peer(IpsecMode::Tunnel, vec![gcm128()])).unwrap_err();
    assert_eq!(err.notify(), NotifyType::InvalidIdInformation);
    assert!(err.to_string().contains("not inside ours"), "{err}");

    // Wider than ours, or a protocol where ours names another.
    let mut wider = mirror(&our_selector());
    wider.src.1 = ip("203.0.114.0");
    let mut other_proto = mirror(&our_selector());
    other_proto.proto = 17;
    let any = peer(IpsecMode::Tunnel, vec![gcm128()]);
    let mut tcp = peer(IpsecMode::Tunnel, vec![gcm128()]);
    tcp.selector.proto = 6;
    for (sel, ours) in [(wider, &any), (other_proto, &tcp)] {
        let req = parse_create(&create(&[gcm128()], IpsecMode::Tunnel, Some(&sel))).unwrap();
        let err = choose(&req, ours).unwrap_err();
        assert_eq!(err.notify(), NotifyType::InvalidIdInformation, "{sel:?}");
    }
}

#[test]
fn reply_round_trips_and_names_the_offered_index() {
    let offered = all_algorithms();
    for mode in [IpsecMode::Tunnel, IpsecMode::Transport] {
        let req = parse_create(&create(&offered, mode, Some(&v6_selector()))).unwrap();
        for (i, chosen) in req.proposals.iter().enumerate() {
            let nr = (i % 2 == 0).then_some(&b"responder nonce!"[..]);
            let reply = through_wire(&build_reply(
                chosen,
                0xaabb_ccdd,
                nr,
                &life(600),
                req.ids.as_ref(),
            ));
            // IDs echoed as received.
            assert_eq!(parse_create_ids(&reply), req.ids);
            let ans = parse_reply(&reply, &offered).unwrap();
            assert_eq!(
                ans,
                ReplyAnswer {
                    spi: 0xaabb_ccdd,
                    index: i,
                    esp: offered[i],
                    mode,
                    lifetime: life(600),
                    nonce: nr.map(<[u8]>::to_vec),
                }
            );
        }
    }
}

/// The IDs of any Quick Mode payload, read as parse_create would.
fn parse_create_ids(p: &IsakmpPayload<'_>) -> Option<Selector> {
    find_ids(p).unwrap()
}

#[test]
fn reply_keeps_proposal_and_transform_numbers() {
    // A CREATE with one proposal of two transforms (3DES first, skipped).
    let attrs = IpsecAttributes {
        mode: Some(EncapsulationMode::Tunnel),
        auth: Some(AuthAlgorithm::HmacSha1),
        ..IpsecAttributes::default()
    };
    let gcm = IpsecAttributes {
        mode: Some(EncapsulationMode::Tunnel),
        key_length: Some(128),
        ..IpsecAttributes::default()
    };
    let sa = SaPayload::ipsec(vec![Proposal {
        num: 7,
        protocol: ProtocolId::Esp,
        spi: Cow::Owned(vec![0, 0, 0, 9]),
        transforms: vec![
            Transform {
                num: 3,
                id: 3,
                attributes: attrs.to_attributes(),
            },
            Transform {
                num: 4,
                id: 20,
                attributes: gcm.to_attributes(),
            },
        ],
    }]);
    let p = IsakmpPayload {
        payloads: vec![Payload::Sa(sa), Payload::Nonce(Cow::Borrowed(NI))],
    };
    let req = parse_create(&through_wire(&p)).unwrap();
    assert_eq!(req.skipped, ["proposal 7 transform 3: ESP_3DES"]);
    assert!(!req.first_usable);
    let c = choose(&req, &peer(IpsecMode::Tunnel, vec![gcm128()])).unwrap();
    // Index 0 of what we could read, but not the initiator's optimistic one.
    assert!(!c.optimistic);
    assert_eq!(
        (
            c.proposal.proposal_num,
            c.proposal.transform_num,
            c.proposal.spi
        ),
        (7, 4, 9)
    );
    assert_eq!(c.proposal.lifetime, life(28800));
    let reply = build_reply(c.proposal, 5, None, &c.lifetime, None);
    let Payload::Sa(sa) = &reply.payloads[0] else {
        panic!("SA")
    };
    assert_eq!(
        (sa.proposals[0].num, sa.proposals[0].transforms[0].num),
        (7, 4)
    );
    assert_eq!(&sa.proposals[0].spi[..], &[0, 0, 0, 5]);
    assert_eq!(reply.payloads.len(), 1, "no Nr, no IDs");
}

#[test]
fn a_reply_choosing_what_we_did_not_offer_is_refused() {
    let req = parse_create(&create(
        &[cbc256_sha256(), chacha()],
        IpsecMode::Tunnel,
        None,
    ))
    .unwrap();
    let reply = build_reply(&req.proposals[1], 1, None, &life(60), None);
    // We offered only AES-GCM: a reply with ChaCha20 is spoofed or broken.
    let err = parse_reply(&reply, &[gcm128(), cbc256_sha256()]).unwrap_err();
    assert_eq!(err, QmError::NotOffered("CHACHA20_POLY1305".into()));
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);

    // A transform kinkd cannot read at all.
    let mut bad = reply.clone();
    edit_sa(&mut bad, |sa| sa.proposals[0].transforms[0].id = 3);
    let err = parse_reply(&bad, &[chacha()]).unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen, "{err}");

    // An AH proposal.
    edit_sa(&mut bad, |sa| sa.proposals[0].protocol = ProtocolId::Ah);
    let err = parse_reply(&bad, &[chacha()]).unwrap_err();
    assert_eq!(err, QmError::NotOffered("protocol AH".into()));
}

fn edit_sa(p: &mut IsakmpPayload<'static>, f: impl FnOnce(&mut SaPayload<'static>)) {
    match &mut p.payloads[0] {
        Payload::Sa(sa) => f(sa),
        other => panic!("SA first, not {other:?}"),
    }
}

#[test]
fn a_reply_with_more_than_one_choice_is_bad_proposal_syntax() {
    let create = create(&[gcm128(), gcm256()], IpsecMode::Tunnel, None);
    let err = parse_reply(&create, &[gcm128(), gcm256()]).unwrap_err();
    assert_eq!(err.notify(), NotifyType::BadProposalSyntax);

    let mut two = build_reply(
        &parse_create(&create).unwrap().proposals[0],
        1,
        None,
        &life(60),
        None,
    );
    let Payload::Sa(sa) = &mut two.payloads[0] else {
        panic!("SA")
    };
    let t = sa.proposals[0].transforms[0].clone();
    sa.proposals[0].transforms.push(t);
    let err = parse_reply(&two, &[gcm128()]).unwrap_err();
    assert_eq!(err.notify(), NotifyType::BadProposalSyntax);
}

#[test]
fn a_reply_with_an_error_notify_is_refused_with_it() {
    let reply = through_wire(&build_notify(NotifyType::NoProposalChosen));
    assert_eq!(find_notify(&reply), Some(NotifyType::NoProposalChosen));
    let err = parse_reply(&reply, &[gcm128()]).unwrap_err();
    assert_eq!(err, QmError::Refused(NotifyType::NoProposalChosen));
    assert_eq!(err.to_string(), "peer refused with NO-PROPOSAL-CHOSEN");
    // A status notify is not an error.
    let status = build_notify(NotifyType::InitialContact);
    assert_eq!(find_notify(&status), None);
    assert_eq!(
        parse_reply(&status, &[gcm128()]).unwrap_err(),
        QmError::Missing("SA payload")
    );
    assert_eq!(
        find_notify(&create(&[gcm128()], IpsecMode::Tunnel, None)),
        None
    );
}

#[test]
fn missing_payloads_are_payload_malformed() {
    let mut no_nonce = create(&[gcm128()], IpsecMode::Tunnel, None);
    no_nonce
        .payloads
        .retain(|p| !matches!(p, Payload::Nonce(_)));
    let err = parse_create(&no_nonce).unwrap_err();
    assert_eq!(err, QmError::Missing("Nonce payload"));
    assert_eq!(err.notify(), NotifyType::PayloadMalformed);

    let mut no_sa = create(&[gcm128()], IpsecMode::Tunnel, None);
    no_sa.payloads.remove(0);
    assert_eq!(
        parse_create(&no_sa).unwrap_err().notify(),
        NotifyType::PayloadMalformed
    );
    assert_eq!(
        parse_create(&IsakmpPayload { payloads: vec![] }).unwrap_err(),
        QmError::Missing("SA payload")
    );
}

/// A CREATE whose SA is `proposals` (built by hand: the codec would refuse
/// some of them on the wire).
fn raw_create(proposals: Vec<Proposal<'static>>) -> IsakmpPayload<'static> {
    IsakmpPayload {
        payloads: vec![
            Payload::Sa(SaPayload::ipsec(proposals)),
            Payload::Nonce(Cow::Borrowed(NI)),
        ],
    }
}

fn gcm_transform(num: u8) -> Transform<'static> {
    transform::to_transform(num, &gcm128(), IpsecMode::Tunnel, &life(60))
}

fn raw_proposal(
    num: u8,
    protocol: ProtocolId,
    spi: Vec<u8>,
    transforms: Vec<Transform<'static>>,
) -> Proposal<'static> {
    Proposal {
        num,
        protocol,
        spi: Cow::Owned(spi),
        transforms,
    }
}

#[test]
fn ah_only_is_no_proposal_chosen() {
    let p = raw_create(vec![raw_proposal(
        1,
        ProtocolId::Ah,
        vec![0; 4],
        vec![Transform {
            num: 1,
            id: 3, // AH_SHA
            attributes: vec![],
        }],
    )]);
    let err = parse_create(&through_wire(&p)).unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);
    assert_eq!(
        err.to_string(),
        "peer offered nothing kinkd can use: proposal 1: protocol AH"
    );
}

#[test]
fn an_ah_esp_bundle_is_skipped_and_the_next_proposal_used() {
    let p = raw_create(vec![
        raw_proposal(
            1,
            ProtocolId::Ah,
            vec![0; 4],
            vec![Transform {
                num: 1,
                id: 3,
                attributes: vec![],
            }],
        ),
        raw_proposal(1, ProtocolId::Esp, vec![0, 0, 0, 1], vec![gcm_transform(1)]),
        raw_proposal(2, ProtocolId::Esp, vec![0, 0, 0, 2], vec![gcm_transform(1)]),
    ]);
    let req = parse_create(&through_wire(&p)).unwrap();
    assert_eq!(req.skipped, ["proposal 1: bundle AH+ESP"]);
    assert_eq!(req.proposals.len(), 1);
    assert_eq!(
        (req.proposals[0].proposal_num, req.proposals[0].spi),
        (2, 2)
    );
    assert!(!req.first_usable);
}

#[test]
fn zero_transforms_and_bad_spis_are_syntax_errors_not_panics() {
    let p = raw_create(vec![raw_proposal(1, ProtocolId::Esp, vec![0; 4], vec![])]);
    assert_eq!(
        parse_create(&p).unwrap_err().notify(),
        NotifyType::BadProposalSyntax
    );
    // The codec refuses the same on the wire, with the same notify.
    let mut out = Vec::new();
    let first = emit_chain(&p.payloads, &mut out);
    let wire_err = parse_chain(first, &out).unwrap_err();
    assert_eq!(wire_err.notify(), NotifyType::BadProposalSyntax);

    for spi in [vec![], vec![1, 2], vec![1, 2, 3, 4, 5]] {
        let p = raw_create(vec![raw_proposal(
            1,
            ProtocolId::Esp,
            spi,
            vec![gcm_transform(1)],
        )]);
        assert_eq!(
            parse_create(&p).unwrap_err().notify(),
            NotifyType::InvalidSpi
        );
    }
    // An SA of another DOI, built by hand.
    let mut p = raw_create(vec![raw_proposal(
        1,
        ProtocolId::Esp,
        vec![0; 4],
        vec![gcm_transform(1)],
    )]);
    if let Payload::Sa(sa) = &mut p.payloads[0] {
        sa.doi = 2;
    }
    assert_eq!(
        parse_create(&p).unwrap_err().notify(),
        NotifyType::DoiNotSupported
    );
    // An SA with no proposal at all (the codec refuses it on the wire).
    let p = raw_create(vec![]);
    assert_eq!(
        parse_create(&p).unwrap_err().notify(),
        NotifyType::BadProposalSyntax
    );
    assert_eq!(
        parse_reply(&p, &[gcm128()]).unwrap_err().notify(),
        NotifyType::BadProposalSyntax
    );
}

#[test]
fn unusable_transforms_are_skipped_with_a_reason() {
    use AuthAlgorithm::{HmacMd5, HmacSha1};
    let tunnel = |key_length, auth| IpsecAttributes {
        key_length,
        auth,
        mode: Some(EncapsulationMode::Tunnel),
        ..IpsecAttributes::default()
    };
    let gcm = || tunnel(Some(128), None);
    let udp = Some(EncapsulationMode::UdpTunnel);
    let cases = [
        (3, tunnel(None, Some(HmacSha1)), "ESP_3DES"),
        // RFC 3602 §5.3: the Key Length attribute MUST be there.
        (12, tunnel(None, Some(HmacSha1)), "ESP_AES-CBC"),
        (
            12,
            tunnel(Some(128), None),
            "ESP_AES-CBC: no authentication algorithm",
        ),
        (
            12,
            tunnel(Some(128), Some(HmacMd5)),
            "ESP_AES-CBC: authentication HMAC-MD5",
        ),
        (
            20,
            tunnel(Some(128), Some(HmacSha1)),
            "ESP_AES-GCM-16: HMAC-SHA with an AEAD cipher",
        ),
        (20, tunnel(Some(100), None), "ESP_AES-GCM-16-100"),
        (28, tunnel(Some(128), None), "ESP_CHACHA20_POLY1305-128"),
        (
            20,
            IpsecAttributes {
                group: Some(14),
                ..gcm()
            },
            "ESP_AES-GCM-16: PFS (KE) is not supported",
        ),
        (
            20,
            IpsecAttributes { esn: true, ..gcm() },
            "ESP_AES-GCM-16: extended sequence numbers",
        ),
        (
            20,
            IpsecAttributes { mode: udp, ..gcm() },
            "ESP_AES-GCM-16: mode UDP-Encapsulated-Tunnel",
        ),
        (
            20,
            IpsecAttributes {
                mode: None,
                ..gcm()
            },
            "ESP_AES-GCM-16: no encapsulation mode",
        ),
    ];
    let unknown_attr = Transform {
        num: 1,
        id: 20,
        attributes: vec![Attribute::basic(99u16, 1)],
    };
    let transforms = cases
        .into_iter()
        .map(|(id, attrs, why)| {
            (
                Transform {
                    num: 1,
                    id,
                    attributes: attrs.to_attributes(),
                },
                why,
            )
        })
        .chain([(
            unknown_attr,
            "ESP_AES-GCM-16: bad attribute: unsupported attribute type",
        )]);
    for (t, why) in transforms {
        let p = raw_create(vec![raw_proposal(1, ProtocolId::Esp, vec![0; 4], vec![t])]);
        let err = parse_create(&through_wire(&p)).unwrap_err();
        let skipped = vec![format!("proposal 1 transform 1: {why}")];
        assert_eq!(err, QmError::NothingUsable { skipped });
    }
}

#[test]
fn chacha_with_the_fixed_key_length_is_accepted() {
    let t = Transform {
        num: 1,
        id: ESP_CHACHA20_POLY1305,
        attributes: IpsecAttributes {
            mode: Some(EncapsulationMode::Transport),
            key_length: Some(256),
            ..IpsecAttributes::default()
        }
        .to_attributes(),
    };
    let req = parse_create(&raw_create(vec![raw_proposal(
        1,
        ProtocolId::Esp,
        vec![0; 4],
        vec![t],
    )]))
    .unwrap();
    assert_eq!(req.proposals[0].esp, chacha());
}

#[test]
fn delete_round_trips_esp_spis() {
    let p = through_wire(&build_delete(&[1, 0xdead_beef]));
    assert_eq!(parse_delete(&p).unwrap(), [1, 0xdead_beef]);
    let Payload::Delete(d) = &p.payloads[0] else {
        panic!("Delete")
    };
    assert_eq!((d.doi, d.protocol, d.spi_size), (1, ProtocolId::Esp, 4));

    // Several Delete payloads; an AH one is ignored.
    let mut two = build_delete(&[5]);
    two.payloads.extend(build_delete(&[6]).payloads);
    if let Payload::Delete(d) = &mut two.payloads[1] {
        d.protocol = ProtocolId::Ah;
    }
    two.payloads.extend(build_delete(&[7]).payloads);
    assert_eq!(parse_delete(&through_wire(&two)).unwrap(), [5, 7]);
}

#[test]
fn bad_deletes_are_errors() {
    assert_eq!(
        parse_delete(&build_notify(NotifyType::InvalidSpi)).unwrap_err(),
        QmError::Missing("Delete payload")
    );
    let mut p = build_delete(&[1]);
    if let Payload::Delete(d) = &mut p.payloads[0] {
        d.spi_size = 2;
        d.spis = vec![Cow::Owned(vec![0, 1])];
    }
    assert_eq!(
        parse_delete(&through_wire(&p)).unwrap_err().notify(),
        NotifyType::InvalidSpi
    );
    let mut p = build_delete(&[1]);
    if let Payload::Delete(d) = &mut p.payloads[0] {
        d.doi = 0;
    }
    assert_eq!(
        parse_delete(&p).unwrap_err().notify(),
        NotifyType::DoiNotSupported
    );
}

#[test]
fn notify_payload_layout() {
    let mut out = Vec::new();
    emit_chain(
        &build_notify(NotifyType::InvalidIdInformation).payloads,
        &mut out,
    );
    // Generic header (last, length 12), DOI 1, PROTO_IPSEC_ESP, SPI size 0, type 18.
    assert_eq!(out, [0, 0, 0, 12, 0, 0, 0, 1, 3, 0, 0, 18]);
}

#[test]
fn esp_names_match_iked() {
    assert_eq!(esp_name(&gcm128()), "AES_GCM_16-128");
    assert_eq!(esp_name(&cbc256_sha256()), "AES_CBC-256/HMAC_SHA2_256_128");
    assert_eq!(esp_name(&cbc128_sha1()), "AES_CBC-128/HMAC_SHA1_96");
    assert_eq!(
        esp_name(&esp(12, 256, Some(13))),
        "AES_CBC-256/HMAC_SHA2_384_192"
    );
    assert_eq!(
        esp_name(&esp(12, 256, Some(14))),
        "AES_CBC-256/HMAC_SHA2_512_256"
    );
    assert_eq!(esp_name(&chacha()), "CHACHA20_POLY1305");
    assert_eq!(esp_name(&esp(99, 64, Some(77))), "ENCR_99-64/AUTH_77");
}

#[test]
fn at_most_255_proposals_are_sent() {
    let many = vec![gcm128(); 300];
    let p = create(&many, IpsecMode::Tunnel, None);
    let Payload::Sa(sa) = &p.payloads[0] else {
        panic!("SA")
    };
    assert_eq!(sa.proposals.len(), 255);
    assert_eq!(sa.proposals[254].num, 255);
}

#[test]
fn a_ke_payload_is_refused_in_create_and_reply() {
    let mut p = create(&[gcm128()], IpsecMode::Tunnel, None);
    p.payloads.push(Payload::Ke(Cow::Owned(vec![7; 256])));
    let err = parse_create(&through_wire(&p)).unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);
    assert!(err.to_string().contains("PFS"), "{err}");

    let req = parse_create(&create(&[gcm128()], IpsecMode::Tunnel, None)).unwrap();
    let mut reply = build_reply(&req.proposals[0], 1, None, &life(60), None);
    reply.payloads.push(Payload::Ke(Cow::Owned(vec![7; 256])));
    let err = parse_reply(&reply, &[gcm128()]).unwrap_err();
    assert_eq!(err.notify(), NotifyType::NoProposalChosen);
}

proptest::proptest! {
    /// Mangled CREATEs (any octets the ISAKMP codec still accepts) give
    /// errors, never panics; whatever parses answers consistently: a REPLY
    /// built for each readable transform reads back as that transform.
    #[test]
    fn mangled_creates_never_panic(
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            1..6,
        )
    ) {
        let sel = v6_selector();
        let p = create(&all_algorithms(), IpsecMode::Tunnel, Some(&sel));
        let mut bytes = Vec::new();
        let first = emit_chain(&p.payloads, &mut bytes);
        for (at, v) in flips {
            let n = at.index(bytes.len());
            bytes[n] = v;
        }
        let Ok(chain) = parse_chain(first, &bytes) else {
            return Ok(());
        };
        let p = IsakmpPayload { payloads: chain };
        let _ = parse_reply(&p, &all_algorithms());
        let _ = parse_delete(&p);
        let _ = find_notify(&p);
        if let Ok(req) = parse_create(&p) {
            let _ = choose(&req, &peer(IpsecMode::Tunnel, all_algorithms()));
            let offered: Vec<_> = req.proposals.iter().map(|o| o.esp).collect();
            for o in &req.proposals {
                let reply = through_wire(&build_reply(o, 1, None, &o.lifetime, req.ids.as_ref()));
                let ans = parse_reply(&reply, &offered).unwrap();
                proptest::prop_assert_eq!((ans.esp, ans.mode), (o.esp, o.mode));
            }
        }
    }
}
