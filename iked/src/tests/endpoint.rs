//! Endpoint behaviour that needs hand-made datagrams: COOKIE as initiator
//! and stateless refusals.

use std::time::Instant;

use libracoon::crypto::SeededRandom;

use super::sim::{A_ADDR, B_ADDR, config_a, config_b, sock};
use crate::ikev2::endpoint::Endpoint;
use crate::ikev2::output::{Output, Path};
use crate::ikev2::wire::{
    ExchangeType, Flags, Header, Message, NotifyPayload, NotifyType, Payload, PayloadType,
    ProtocolId,
};

fn sent(e: &mut Endpoint) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some((_, o)) = e.poll_output() {
        if let Output::Send { bytes, .. } = o {
            v.push(bytes);
        }
    }
    v
}

fn notify(ntype: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload {
        protocol: ProtocolId::None,
        spi: Vec::new(),
        ntype,
        data,
    })
}

#[test]
fn initiator_repeats_ike_sa_init_with_the_responders_cookie_first() {
    let now = Instant::now();
    let mut a = Endpoint::new(vec![config_a()], Box::new(SeededRandom::new(1)));
    let path = Path {
        local: sock(A_ADDR, 500),
        remote: sock(B_ADDR, 500),
    };
    a.initiate(now, "to-b", path).expect("initiate");
    let first = Message::parse(&sent(&mut a)[0]).expect("request");
    let cookie = vec![0xc0; 24];
    let reply = Message {
        header: Header {
            flags: Flags(Flags::RESPONSE),
            next_payload: PayloadType::None,
            length: 0,
            ..first.header
        },
        payloads: vec![notify(NotifyType::Cookie, cookie.clone())],
        sk: None,
    };
    let back = Path {
        local: path.remote,
        remote: path.local,
    };
    a.handle_datagram(
        now,
        Path {
            local: back.remote,
            remote: back.local,
        },
        &reply.emit(),
    );
    let again = Message::parse(&sent(&mut a)[0]).expect("second request");
    assert_eq!(again.header.spi_i, first.header.spi_i);
    assert_eq!(again.header.message_id, 0);
    assert_eq!(again.payloads[0], notify(NotifyType::Cookie, cookie));
    assert_eq!(
        &again.payloads[1..],
        &first.payloads[..],
        "same SA, KE group, nonce and NAT-D"
    );
}

#[test]
fn unknown_critical_payload_in_ike_sa_init_gets_unsupported_critical_payload() {
    let now = Instant::now();
    let mut b = Endpoint::new(vec![config_b()], Box::new(SeededRandom::new(2)));
    let header = Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r: 0,
        next_payload: PayloadType::None,
        major: 2,
        minor: 0,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags(Flags::INITIATOR),
        message_id: 0,
        length: 0,
    };
    let msg = Message {
        header,
        payloads: vec![],
        sk: None,
    };
    let mut bytes = msg.emit();
    // Append a payload of unassigned type 200 with the critical bit set.
    bytes[16] = 200;
    bytes.extend_from_slice(&[0, 0x80, 0, 8, 1, 2, 3, 4]);
    let len = u32::try_from(bytes.len()).expect("len");
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    let path = Path {
        local: sock(B_ADDR, 500),
        remote: sock(A_ADDR, 500),
    };
    b.handle_datagram(now, path, &bytes);
    let out = sent(&mut b);
    assert_eq!(out.len(), 1);
    let reply = Message::parse(&out[0]).expect("reply");
    assert!(reply.header.flags.response());
    assert_eq!(reply.header.spi_i, header.spi_i);
    assert_eq!(
        reply.payloads,
        vec![notify(NotifyType::UnsupportedCriticalPayload, vec![200])]
    );
    assert!(b.sas().next().is_none(), "no state for a refused request");
}

#[test]
fn garbage_and_unknown_spis_are_counted_and_change_nothing() {
    let now = Instant::now();
    let mut b = Endpoint::new(vec![config_b()], Box::new(SeededRandom::new(3)));
    let path = Path {
        local: sock(B_ADDR, 500),
        remote: sock(A_ADDR, 500),
    };
    b.handle_datagram(now, path, &[1, 2, 3]);
    let mut informational = vec![0u8; 28];
    informational[0] = 9;
    informational[8] = 7;
    informational[16] = 0;
    informational[17] = 0x20;
    informational[18] = 37;
    informational[19] = 0x08;
    informational[27] = 28;
    b.handle_datagram(now, path, &informational);
    assert_eq!(b.drops().malformed, 1);
    assert_eq!(b.drops().unknown_spi, 1);
    assert!(sent(&mut b).is_empty() && b.sas().next().is_none());
}

#[test]
fn a_responder_that_keeps_asking_for_cookies_is_given_up_on() {
    let now = Instant::now();
    let mut a = Endpoint::new(vec![config_a()], Box::new(SeededRandom::new(4)));
    let path = Path {
        local: sock(A_ADDR, 500),
        remote: sock(B_ADDR, 500),
    };
    a.initiate(now, "to-b", path).expect("initiate");
    let mut requests = 0;
    let mut closed = None;
    while let Some(bytes) = sent(&mut a).pop() {
        requests += 1;
        let req = Message::parse(&bytes).expect("request");
        let reply = Message {
            header: Header {
                flags: Flags(Flags::RESPONSE),
                next_payload: PayloadType::None,
                length: 0,
                ..req.header
            },
            payloads: vec![notify(NotifyType::Cookie, vec![requests; 16])],
            sk: None,
        };
        a.handle_datagram(now, path, &reply.emit());
        closed = a.sas().next().is_none().then_some(requests);
        if closed.is_some() || requests > 10 {
            break;
        }
    }
    assert_eq!(
        closed,
        Some(4),
        "four IKE_SA_INIT requests, then the initiator gives up"
    );
}

#[test]
fn under_load_the_responder_answers_with_a_cookie_and_keeps_no_state() {
    let now = Instant::now();
    let mut b = Endpoint::new(vec![config_b()], Box::new(SeededRandom::new(5)));
    b.set_cookie_threshold(2);
    let to_b = Path {
        local: sock(A_ADDR, 500),
        remote: sock(B_ADDR, 500),
    };
    let at_b = Path {
        local: to_b.remote,
        remote: to_b.local,
    };
    let mut initiators: Vec<Endpoint> = (0..3)
        .map(|seed| Endpoint::new(vec![config_a()], Box::new(SeededRandom::new(100 + seed))))
        .collect();
    let mut replies = Vec::new();
    for a in &mut initiators {
        a.initiate(now, "to-b", to_b).expect("initiate");
        for req in sent(a) {
            b.handle_datagram(now, at_b, &req);
        }
        replies.push(sent(&mut b));
    }
    assert_eq!(b.sas().count(), 2, "the third request created no state");
    assert_eq!(b.drops().cookie_sent, 1);
    let cookie_reply = Message::parse(&replies[2][0]).expect("reply");
    assert!(
        matches!(&cookie_reply.payloads[..], [Payload::Notify(n)] if n.ntype == NotifyType::Cookie)
    );

    // The third initiator retries with the cookie and is let in.
    let third = &mut initiators[2];
    third.handle_datagram(now, to_b, &replies[2][0]);
    let retry = sent(third);
    assert_eq!(retry.len(), 1);
    b.handle_datagram(now, at_b, &retry[0]);
    assert_eq!(b.sas().count(), 3);
    assert_eq!(
        b.drops().cookie_sent,
        1,
        "a valid cookie is accepted, not answered again"
    );

    // A forged cookie is not.
    let mut forged = Message::parse(&retry[0]).expect("retry");
    if let Payload::Notify(n) = &mut forged.payloads[0] {
        n.data[1] ^= 1;
    }
    forged.header.spi_i ^= 0x10;
    b.handle_datagram(now, at_b, &forged.emit());
    assert_eq!(b.sas().count(), 3);
    assert_eq!(b.drops().cookie_sent, 2);
}
