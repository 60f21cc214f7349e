//! proptest strategies for KINK wire values (tests only).
//!
//! Generated values are ones the codec represents exactly: KINK_ENCRYPT only last in an outer
//! chain and never inside the encrypted content; KINK_ISAKMP chains from libracoon's own
//! generator shape (Nonce/Hash/KE/Notification only here, to keep cases small).

use std::borrow::Cow;

use libracoon::isakmp::{self, NotifyPayload, ProtocolId};
use proptest::collection::vec;
use proptest::prelude::*;

use super::{ErrorCode, IsakmpPayload, Message, MessageType, Payload};

/// Owned bytes of a length in `range`.
fn bytes(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Cow<'static, [u8]>> {
    vec(any::<u8>(), range).prop_map(Cow::Owned)
}

/// A small ISAKMP payload.
fn isakmp_payload() -> impl Strategy<Value = isakmp::Payload<'static>> {
    prop_oneof![
        bytes(8..=40).prop_map(isakmp::Payload::Nonce),
        bytes(0..=40).prop_map(isakmp::Payload::Ke),
        bytes(0..=20).prop_map(isakmp::Payload::Hash),
        (any::<u16>(), bytes(0..=4), bytes(0..=8)).prop_map(|(ntype, spi, data)| {
            isakmp::Payload::Notification(NotifyPayload {
                doi: 1,
                protocol: ProtocolId::Esp,
                spi,
                ntype: ntype.into(),
                data,
            })
        }),
    ]
}

/// Any payload except KINK_ENCRYPT.
pub(super) fn inner_payload() -> impl Strategy<Value = Payload<'static>> {
    prop_oneof![
        (any::<u32>(), bytes(0..=40)).prop_map(|(epoch, ap_req)| Payload::ApReq { epoch, ap_req }),
        (any::<u32>(), bytes(0..=40)).prop_map(|(epoch, ap_rep)| Payload::ApRep { epoch, ap_rep }),
        bytes(0..=40).prop_map(Payload::KrbError),
        bytes(0..=40).prop_map(Payload::TgtReq),
        bytes(0..=40).prop_map(Payload::TgtRep),
        vec(isakmp_payload(), 0..4)
            .prop_map(|payloads| Payload::Isakmp(IsakmpPayload { payloads })),
        any::<u32>().prop_map(|c| Payload::Error(ErrorCode::from(c))),
    ]
}

/// An outer chain: up to 4 payloads, optionally ending in KINK_ENCRYPT.
pub(super) fn outer_chain() -> impl Strategy<Value = Vec<Payload<'static>>> {
    (
        vec(inner_payload(), 0..4),
        proptest::option::of(bytes(0..=60)),
    )
        .prop_map(|(mut payloads, encrypt)| {
            payloads.extend(encrypt.map(Payload::Encrypt));
            payloads
        })
}

/// A whole message, with or without a Cksum.
pub(super) fn message() -> impl Strategy<Value = Message<'static>> {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u8>(),
        outer_chain(),
        bytes(0..=24),
    )
        .prop_map(|(t, xid, flags, payloads, cksum)| Message {
            msg_type: MessageType::from(t),
            xid,
            flags,
            payloads,
            cksum,
        })
}
