//! proptest strategies for typed ISAKMP values (tests only).
//!
//! They generate only values the codec represents exactly: canonical registry values (built
//! with `From`), IPsec DOI SA payloads with at least one proposal and transform, nonces of
//! 8..=256 octets, Delete SPIs of the announced size, and typed attributes that
//! [`IpsecAttributes::to_attributes`] can express.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::{
    Attribute, AttributeValue, AuthAlgorithm, DeletePayload, EncapsulationMode, IdPayload, IdType,
    Identification, IpsecAttributes, LifeType, NotifyPayload, Payload, PayloadType, Proposal,
    SaPayload, Transform,
};

/// Owned bytes of a length in `range`.
fn bytes(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Cow<'static, [u8]>> {
    vec(any::<u8>(), range).prop_map(Cow::Owned)
}

/// Any raw attribute (15-bit type, TV or a TLV of up to 12 octets).
pub(super) fn attribute() -> impl Strategy<Value = Attribute<'static>> {
    let value = prop_oneof![
        any::<u16>().prop_map(AttributeValue::Basic),
        bytes(0..=12).prop_map(AttributeValue::Variable),
    ];
    (0u16..0x8000, value).prop_map(|(attr_type, value)| Attribute { attr_type, value })
}

/// Typed IPsec attributes.
pub(super) fn ipsec_attributes() -> impl Strategy<Value = IpsecAttributes> {
    let life = (prop_oneof![Just(1u16), Just(2u16)], any::<u64>())
        .prop_map(|(t, d)| (LifeType::from(t), d));
    (
        vec(life, 0..3),
        option::of(any::<u16>()),
        option::of(any::<u16>().prop_map(EncapsulationMode::from)),
        option::of(any::<u16>().prop_map(AuthAlgorithm::from)),
        option::of(any::<u16>()),
        any::<bool>(),
    )
        .prop_map(
            |(lifetimes, group, mode, auth, key_length, esn)| IpsecAttributes {
                lifetimes,
                group,
                mode,
                auth,
                key_length,
                esn,
            },
        )
}

/// A transform with raw attributes.
fn transform() -> impl Strategy<Value = Transform<'static>> {
    (any::<u8>(), any::<u8>(), vec(attribute(), 0..5)).prop_map(|(num, id, attributes)| Transform {
        num,
        id,
        attributes,
    })
}

/// A proposal with 1..=4 transforms.
fn proposal() -> impl Strategy<Value = Proposal<'static>> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(0..=8),
        vec(transform(), 1..=4),
    )
        .prop_map(|(num, protocol, spi, transforms)| Proposal {
            num,
            protocol: protocol.into(),
            spi,
            transforms,
        })
}

/// An IPsec DOI SA payload with 1..=3 proposals.
pub(super) fn sa_payload() -> impl Strategy<Value = SaPayload<'static>> {
    vec(proposal(), 1..=3).prop_map(SaPayload::ipsec)
}

/// An ID payload of any form.
pub(super) fn id_payload() -> impl Strategy<Value = IdPayload<'static>> {
    let v4 = || any::<u32>().prop_map(Ipv4Addr::from);
    let v6 = || any::<u128>().prop_map(Ipv6Addr::from);
    let other_type = prop_oneof![Just(2u8), Just(3), Just(9), Just(10), Just(11), 12u8..=255];
    let id = prop_oneof![
        v4().prop_map(Identification::Ipv4),
        (v4(), v4()).prop_map(|(a, b)| Identification::Ipv4Subnet(a, b)),
        (v4(), v4()).prop_map(|(a, b)| Identification::Ipv4Range(a, b)),
        v6().prop_map(Identification::Ipv6),
        (v6(), v6()).prop_map(|(a, b)| Identification::Ipv6Subnet(a, b)),
        (v6(), v6()).prop_map(|(a, b)| Identification::Ipv6Range(a, b)),
        (other_type, bytes(0..=24)).prop_map(|(t, d)| Identification::Other(IdType::from(t), d)),
    ];
    (any::<u8>(), any::<u16>(), id).prop_map(|(protocol, port, id)| IdPayload {
        protocol,
        port,
        id,
    })
}

/// A Notification payload.
pub(super) fn notify() -> impl Strategy<Value = NotifyPayload<'static>> {
    (
        any::<u32>(),
        any::<u8>(),
        bytes(0..=16),
        any::<u16>(),
        bytes(0..=16),
    )
        .prop_map(|(doi, protocol, spi, ntype, data)| NotifyPayload {
            doi,
            protocol: protocol.into(),
            spi,
            ntype: ntype.into(),
            data,
        })
}

/// A Delete payload with consistent SPI sizes.
pub(super) fn delete() -> impl Strategy<Value = DeletePayload<'static>> {
    (any::<u32>(), any::<u8>(), 1u8..=16, 0usize..5).prop_flat_map(|(doi, protocol, size, n)| {
        vec(bytes(usize::from(size)..=usize::from(size)), n).prop_map(move |spis| DeletePayload {
            doi,
            protocol: protocol.into(),
            spi_size: size,
            spis,
        })
    })
}

/// Any payload the chain can carry.
pub(super) fn payload() -> impl Strategy<Value = Payload<'static>> {
    let other = prop_oneof![
        Just(PayloadType::Cert),
        Just(PayloadType::CertReq),
        Just(PayloadType::Sig),
        Just(PayloadType::VendorId),
        Just(PayloadType::NatD),
        Just(PayloadType::NatOa),
    ];
    prop_oneof![
        sa_payload().prop_map(Payload::Sa),
        bytes(0..=64).prop_map(Payload::Ke),
        id_payload().prop_map(Payload::Id),
        bytes(0..=32).prop_map(Payload::Hash),
        bytes(8..=256).prop_map(Payload::Nonce),
        notify().prop_map(Payload::Notification),
        delete().prop_map(Payload::Delete),
        (other, bytes(0..=32)).prop_map(|(ptype, body)| Payload::Other { ptype, body }),
    ]
}
