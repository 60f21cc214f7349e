//! proptest strategies for typed wire values (tests only).
//!
//! They generate only values the codec can represent exactly: canonical registry values
//! (built with `From`), address-sized IP IDs, 16..=256-octet nonces, no unknown transform
//! attributes, and the critical bit only on payload types the parser recognises.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::{
    AuthPayload, DeletePayload, ExchangeType, Flags, HEADER_LEN, Header, IdPayload, IdType,
    KePayload, Message, NotifyPayload, Payload, PayloadType, Proposal, SkPayload, TrafficSelector,
    Transform, TsType,
};

/// Any header with major version 2 and a Length of at least [`HEADER_LEN`].
pub(super) fn header() -> impl Strategy<Value = Header> {
    let ids = (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        0u8..16,
        any::<u8>(),
    );
    let rest = (any::<u8>(), any::<u32>(), 0u32..256);
    (ids, rest).prop_map(
        |((spi_i, spi_r, next, minor, exchange), (flags, message_id, extra))| Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::from(next),
            major: 2,
            minor,
            exchange: ExchangeType::from(exchange),
            flags: Flags(flags),
            message_id,
            length: HEADER_LEN as u32 + extra,
        },
    )
}

/// A transform without unknown attributes.
pub(super) fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u16>(), option::of(any::<u16>())).prop_map(|(ttype, id, key_len)| {
        Transform {
            ttype: ttype.into(),
            id,
            key_len,
            unknown_attrs: false,
        }
    })
}

/// A proposal with up to 8 SPI octets and up to 6 transforms.
pub(super) fn proposal() -> impl Strategy<Value = Proposal> {
    let parts = (
        any::<u8>(),
        any::<u8>(),
        vec(any::<u8>(), 0..=8),
        vec(transform(), 0..6),
    );
    parts.prop_map(|(num, protocol, spi, transforms)| Proposal {
        num,
        protocol: protocol.into(),
        spi,
        transforms,
    })
}

/// An IPv4 or IPv6 range selector.
pub(super) fn traffic_selector() -> impl Strategy<Value = TrafficSelector> {
    let ports = (any::<u8>(), any::<u16>(), any::<u16>());
    let v4 = (any::<u32>(), any::<u32>()).prop_map(|(s, e)| {
        (
            TsType::Ipv4AddrRange,
            Ipv4Addr::from(s).into(),
            Ipv4Addr::from(e).into(),
        )
    });
    let v6 = (any::<u128>(), any::<u128>()).prop_map(|(s, e)| {
        (
            TsType::Ipv6AddrRange,
            Ipv6Addr::from(s).into(),
            Ipv6Addr::from(e).into(),
        )
    });
    (ports, prop_oneof![v4, v6]).prop_map(
        |((ip_proto, start_port, end_port), (ts_type, start, end)): (
            _,
            (TsType, IpAddr, IpAddr),
        )| {
            TrafficSelector {
                ts_type,
                ip_proto,
                start_port,
                end_port,
                start,
                end,
            }
        },
    )
}

/// Any payload the chain can carry (not SK).
pub(super) fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vec(proposal(), 1..4).prop_map(Payload::Sa),
        (any::<u16>(), bytes(0..80))
            .prop_map(|(group, data)| Payload::Ke(KePayload { group, data })),
        id().prop_map(Payload::IdI),
        id().prop_map(Payload::IdR),
        (any::<u8>(), bytes(0..64)).prop_map(|(m, data)| Payload::Auth(AuthPayload {
            method: m.into(),
            data
        })),
        bytes(16..=256).prop_map(Payload::Nonce),
        notify().prop_map(Payload::Notify),
        delete().prop_map(Payload::Delete),
        vec(traffic_selector(), 0..4).prop_map(Payload::TsI),
        vec(traffic_selector(), 0..4).prop_map(Payload::TsR),
        bytes(0..32).prop_map(Payload::VendorId),
        bytes(0..32).prop_map(Payload::CertReq),
        unknown(),
    ]
}

/// A message of up to 6 payloads, optionally followed by an SK payload.
pub(super) fn message() -> impl Strategy<Value = Message> {
    let sk =
        (any::<u8>(), any::<bool>(), bytes(0..64)).prop_map(|(first, critical, body)| SkPayload {
            first_inner: first.into(),
            critical,
            header_offset: 0,
            body,
        });
    (header(), vec(payload(), 0..6), option::of(sk)).prop_map(|(header, payloads, sk)| Message {
        header,
        payloads,
        sk,
    })
}

/// Random octets.
fn bytes(len: impl Into<prop::collection::SizeRange>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len)
}

/// An ID whose data length suits its type.
fn id() -> impl Strategy<Value = IdPayload> {
    (any::<u8>(), bytes(0..32)).prop_map(|(t, mut data)| {
        let id_type = IdType::from(t);
        match id_type {
            IdType::Ipv4Addr => data.resize(4, 0),
            IdType::Ipv6Addr => data.resize(16, 0),
            _ => {}
        }
        IdPayload { id_type, data }
    })
}

/// A notify with any protocol, SPI, type and data.
fn notify() -> impl Strategy<Value = NotifyPayload> {
    (any::<u8>(), bytes(0..=16), any::<u16>(), bytes(0..32)).prop_map(|(p, spi, t, data)| {
        NotifyPayload {
            protocol: p.into(),
            spi,
            ntype: t.into(),
            data,
        }
    })
}

/// A delete with 0-, 4- or 8-octet SPIs.
fn delete() -> impl Strategy<Value = DeletePayload> {
    (
        any::<u8>(),
        prop_oneof![Just(0u8), Just(4), Just(8)],
        0..4usize,
    )
        .prop_flat_map(|(protocol, spi_size, n)| {
            vec(bytes(usize::from(spi_size)), n).prop_map(move |spis| DeletePayload {
                protocol: protocol.into(),
                spi_size,
                spis,
            })
        })
}

/// An untyped payload: CERT/CP/EAP (critical bit allowed) or an unregistered type
/// (non-critical, else the parser rejects it).
fn unknown() -> impl Strategy<Value = Payload> {
    let ptype = prop_oneof![
        Just(PayloadType::Cert),
        Just(PayloadType::Cp),
        Just(PayloadType::Eap),
        (1u8..=32).prop_map(PayloadType::from),
        (49u8..=52).prop_map(PayloadType::from),
        (54u8..=255).prop_map(PayloadType::from),
    ];
    (ptype, any::<bool>(), bytes(0..32)).prop_map(|(ptype, critical, body)| Payload::Unknown {
        ptype,
        critical: critical && !matches!(ptype, PayloadType::Unknown(_)),
        body,
    })
}
