//! Message tests: exact bytes laid out by hand from RFC 4430 §4 and racoon2's encoder
//! (`kink_fmt.c`: 4-octet alignment between payloads, padding before the Cksum only), the
//! checksum placement, KINK_ENCRYPT content, and round-trip properties.

use std::borrow::Cow;

use libracoon::isakmp::{self, DeletePayload, NotifyPayload, NotifyType, ProtocolId};
use proptest::prelude::*;

use super::*;
use crate::wire::{ErrorCode, IsakmpPayload, strategies};

/// CREATE: KINK_AP_REQ (EPOCH + 5 octets standing in for the DER AP-REQ), KINK_ENCRYPT (9
/// octets of ciphertext), 12-octet Cksum.
const CREATE: [u8; 60] = [
    1, 0x10, 0, 60, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 12, // header
    7, 0, 0, 13, 0x5f, 0x5e, 0x10, 0x00, 0x6e, 0x03, 0x02, 0x01, 0x05, // KINK_AP_REQ
    0, 0, 0, // padding
    0, 0, 0, 13, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, // KINK_ENCRYPT
    0, 0, 0, // padding before the Cksum
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // Cksum
];

/// REPLY with an unauthenticated KINK_KRB_ERROR: no Cksum, no padding after the payload.
const REPLY_KRB_ERROR: [u8; 26] = [
    3, 0x10, 0, 26, 0, 0, 0, 1, 0, 0, 0, 1, 3, 0, 0, 0, // header
    0, 0, 0, 10, 0x7e, 0x04, 0x30, 0x02, 0x01, 0x05, // KINK_KRB_ERROR
];

/// REPLY with ACKREQ: KINK_AP_REP, KINK_ENCRYPT, Cksum.
const REPLY_ACKREQ: [u8; 52] = [
    3, 0x10, 0, 52, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78, 2, 0x80, 0, 12, // header
    7, 0, 0, 12, 0x5f, 0x5e, 0x10, 0x01, 0x6f, 0x02, 0x30, 0x00, // KINK_AP_REP
    0, 0, 0, 12, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, // KINK_ENCRYPT
    0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, // Cksum
];

/// ACK: KINK_AP_REQ and Cksum only.
const ACK: [u8; 40] = [
    5, 0x10, 0, 40, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78, 1, 0, 0, 12, // header
    0, 0, 0, 12, 0x5f, 0x5e, 0x10, 0x00, 0x6e, 0x02, 0x30, 0x00, // KINK_AP_REQ
    0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, // Cksum
];

/// GETTGT: KINK_TGT_REQ naming `kink/h@R`, unauthenticated.
const GETTGT: [u8; 28] = [
    4, 0x10, 0, 28, 0, 0, 0, 1, 0, 0, 0, 7, 4, 0, 0, 0, // header
    0, 0, 0, 12, b'k', b'i', b'n', b'k', b'/', b'h', b'@', b'R', // KINK_TGT_REQ
];

/// DELETE: KINK_AP_REQ, then an unencrypted KINK_ISAKMP carrying an ISAKMP Delete of ESP SPI
/// 0xdeadbeef, Cksum.
const DELETE: [u8; 64] = [
    2, 0x10, 0, 64, 0, 0, 0, 1, 0, 0, 0, 9, 1, 0, 0, 12, // header
    6, 0, 0, 12, 0x5f, 0x5e, 0x10, 0x00, 0x6e, 0x02, 0x30, 0x00, // KINK_AP_REQ
    0, 0, 0, 24, 12, 0x10, 0, 0, // KINK_ISAKMP: InnerNextPload Delete, QM 1.0
    0, 0, 0, 16, 0, 0, 0, 1, 3, 4, 0, 1, 0xde, 0xad, 0xbe, 0xef, // ISAKMP Delete
    0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, // Cksum
];

/// STATUS: KINK_AP_REQ, then a KINK_ISAKMP carrying an ISAKMP Notification INITIAL-CONTACT
/// (IPsec DOI, no SPI), Cksum.
const STATUS: [u8; 60] = [
    6, 0x10, 0, 60, 0, 0, 0, 1, 0, 0, 0, 3, 1, 0, 0, 12, // header
    6, 0, 0, 12, 0x5f, 0x5e, 0x10, 0x00, 0x6e, 0x02, 0x30, 0x00, // KINK_AP_REQ
    0, 0, 0, 20, 11, 0x10, 0, 0, // KINK_ISAKMP: InnerNextPload Notification, QM 1.0
    0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0x60, 0x02, // ISAKMP Notification INITIAL-CONTACT
    0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, // Cksum
];

/// REPLY with an unauthenticated KINK_ERROR (KINK_PROTOERR).
const REPLY_ERROR: [u8; 24] = [
    3, 0x10, 0, 24, 0, 0, 0, 1, 0, 0, 0, 2, 8, 0, 0, 0, // header
    0, 0, 0, 8, 0, 0, 0, 1, // KINK_ERROR
];

/// KINK_ENCRYPT plaintext: InnerNextPload KINK_ISAKMP, then a KINK_ISAKMP with one 8-octet
/// Nonce.
const PLAINTEXT: [u8; 24] = [
    6, 0, 0, 0, // InnerNextPload, RESERVED2
    0, 0, 0, 20, 10, 0x10, 0, 0, // KINK_ISAKMP header, InnerNextPload NONCE, QM 1.0
    0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, // ISAKMP Nonce
];

/// Every vector with its name, for the fuzz replay tests.
pub(crate) fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("CREATE", CREATE.to_vec()),
        ("REPLY KRB_ERROR", REPLY_KRB_ERROR.to_vec()),
        ("REPLY ACKREQ", REPLY_ACKREQ.to_vec()),
        ("ACK", ACK.to_vec()),
        ("GETTGT", GETTGT.to_vec()),
        ("DELETE", DELETE.to_vec()),
        ("STATUS", STATUS.to_vec()),
        ("REPLY KINK_ERROR", REPLY_ERROR.to_vec()),
    ]
}

fn ap_req(body: &'static [u8]) -> Payload<'static> {
    Payload::ApReq {
        epoch: 0x5f5e_1000,
        ap_req: Cow::Borrowed(body),
    }
}

fn expected(name: &str) -> Message<'static> {
    let msg = |msg_type, xid, flags, payloads, cksum: &'static [u8]| Message {
        msg_type,
        xid,
        flags,
        payloads,
        cksum: Cow::Borrowed(cksum),
    };
    match name {
        "CREATE" => msg(
            MessageType::Create,
            1,
            0,
            vec![
                ap_req(&[0x6e, 0x03, 0x02, 0x01, 0x05]),
                Payload::Encrypt(Cow::Borrowed(&[
                    0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9,
                ])),
            ],
            &[0xaa; 12],
        ),
        "REPLY KRB_ERROR" => msg(
            MessageType::Reply,
            1,
            0,
            vec![Payload::KrbError(Cow::Borrowed(&[
                0x7e, 0x04, 0x30, 0x02, 0x01, 0x05,
            ]))],
            &[],
        ),
        "REPLY ACKREQ" => msg(
            MessageType::Reply,
            0x1234_5678,
            ACKREQ,
            vec![
                Payload::ApRep {
                    epoch: 0x5f5e_1001,
                    ap_rep: Cow::Borrowed(&[0x6f, 0x02, 0x30, 0x00]),
                },
                Payload::Encrypt(Cow::Borrowed(&[
                    0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
                ])),
            ],
            &[0xbb; 12],
        ),
        "ACK" => msg(
            MessageType::Ack,
            0x1234_5678,
            0,
            vec![ap_req(&[0x6e, 0x02, 0x30, 0x00])],
            &[0xcc; 12],
        ),
        "GETTGT" => msg(
            MessageType::GetTgt,
            7,
            0,
            vec![Payload::TgtReq(Cow::Borrowed(b"kink/h@R"))],
            &[],
        ),
        "DELETE" => msg(
            MessageType::Delete,
            9,
            0,
            vec![
                ap_req(&[0x6e, 0x02, 0x30, 0x00]),
                Payload::Isakmp(IsakmpPayload {
                    payloads: vec![isakmp::Payload::Delete(DeletePayload {
                        doi: 1,
                        protocol: ProtocolId::Esp,
                        spi_size: 4,
                        spis: vec![Cow::Borrowed(&[0xde, 0xad, 0xbe, 0xef])],
                    })],
                }),
            ],
            &[0xdd; 12],
        ),
        "STATUS" => msg(
            MessageType::Status,
            3,
            0,
            vec![
                ap_req(&[0x6e, 0x02, 0x30, 0x00]),
                Payload::Isakmp(IsakmpPayload {
                    payloads: vec![isakmp::Payload::Notification(NotifyPayload {
                        doi: 1,
                        protocol: ProtocolId::Reserved,
                        spi: Cow::Borrowed(&[]),
                        ntype: NotifyType::InitialContact,
                        data: Cow::Borrowed(&[]),
                    })],
                }),
            ],
            &[0xee; 12],
        ),
        "REPLY KINK_ERROR" => msg(
            MessageType::Reply,
            2,
            0,
            vec![Payload::Error(ErrorCode::ProtoErr)],
            &[],
        ),
        _ => unreachable!("no vector {name}"),
    }
}

#[test]
fn vectors_parse_to_the_expected_messages() {
    for (name, bytes) in vectors() {
        assert_eq!(Message::parse(&bytes).unwrap(), expected(name), "{name}");
    }
}

#[test]
fn encoder_reproduces_every_vector() {
    for (name, bytes) in vectors() {
        assert_eq!(expected(name).emit(), bytes, "{name}");
    }
}

#[test]
fn cksum_layout_of_create() {
    let layout = cksum_layout(&CREATE).unwrap();
    assert_eq!(layout.covered, 0..48);
    assert_eq!(layout.cksum, 48..60);
    let unauth = cksum_layout(&REPLY_KRB_ERROR).unwrap();
    assert_eq!(unauth.covered, 0..26);
    assert!(unauth.cksum.is_empty());
}

#[test]
fn cksum_input_rewrites_length_and_cksumlen() {
    let input = cksum_input(&CREATE).unwrap();
    assert_eq!(input.cksum, [0xaa; 12]);
    let mut expected = CREATE[..48].to_vec();
    expected[3] = 48; // Length without the Cksum
    expected[15] = 0; // CksumLen
    assert_eq!(input.covered, expected);
}

#[test]
fn sender_and_receiver_agree_on_the_cksum_input() {
    for (name, bytes) in vectors() {
        let msg = expected(name);
        if msg.cksum.is_empty() {
            continue;
        }
        let mut unsigned = msg.emit_for_cksum();
        assert_eq!(unsigned, cksum_input(&bytes).unwrap().covered, "{name}");
        append_cksum(&mut unsigned, &msg.cksum).unwrap();
        assert_eq!(unsigned, bytes, "{name}");
    }
}

/// A stand-in for the Kerberos checksum: any change to a covered octet (but not to the
/// Length/CksumLen bookkeeping) changes the input the verifier hashes.
#[test]
fn tampering_with_a_covered_octet_changes_the_cksum_input() {
    let good = cksum_input(&CREATE).unwrap().covered;
    for i in 0..48 {
        if matches!(i, 2 | 3 | 14 | 15) {
            continue;
        }
        let mut bytes = CREATE;
        bytes[i] ^= 0x01;
        if let Ok(input) = cksum_input(&bytes) {
            assert_ne!(input.covered, good, "octet {i}");
        }
    }
}

#[test]
fn append_cksum_checks_its_input() {
    let mut short = vec![1, 0x10];
    assert_eq!(
        append_cksum(&mut short, &[1]),
        Err(DecodeError::Truncated("KINK header"))
    );
    let mut signed = CREATE.to_vec();
    assert_eq!(
        append_cksum(&mut signed, &[1]),
        Err(DecodeError::BadValue("message not prepared for a Cksum"))
    );
    let mut unaligned = REPLY_KRB_ERROR.to_vec();
    assert!(append_cksum(&mut unaligned, &[1]).is_err());
}

#[test]
fn encrypted_content_bytes() {
    let inner = parse_encrypted(&PLAINTEXT).unwrap();
    assert_eq!(inner.len(), 1);
    let Payload::Isakmp(i) = &inner[0] else {
        panic!("not KINK_ISAKMP");
    };
    assert_eq!(
        i.payloads,
        [isakmp::Payload::Nonce(Cow::Borrowed(&[
            1, 2, 3, 4, 5, 6, 7, 8
        ]))]
    );
    assert_eq!(encrypt_plaintext(&inner), PLAINTEXT);
    assert_eq!(
        parse_encrypted(&PLAINTEXT[..3]),
        Err(DecodeError::Truncated("KINK_ENCRYPT content"))
    );
    // Cipher padding after the last inner payload is tolerated.
    let mut padded = PLAINTEXT.to_vec();
    padded.extend_from_slice(&[0; 7]);
    assert!(parse_encrypted(&padded).is_ok());
}

#[test]
fn nested_encrypt_is_rejected() {
    let plaintext = [7, 0, 0, 0, 0, 0, 0, 5, 0xaa];
    assert_eq!(
        parse_encrypted(&plaintext),
        Err(DecodeError::Misplaced("KINK_ENCRYPT inside KINK_ENCRYPT"))
    );
}

#[test]
fn header_level_errors_map_to_kink_errors() {
    let mut bytes = CREATE;
    bytes[7] = 2;
    let err = Message::parse(&bytes).unwrap_err();
    assert_eq!(err, DecodeError::BadDoi(2));
    assert_eq!(err.kink_error(), ErrorCode::InvDoi);
    let mut bytes = CREATE;
    bytes[1] = 0x20;
    assert_eq!(
        Message::parse(&bytes).unwrap_err().kink_error(),
        ErrorCode::InvMaj
    );
    let mut bytes = CREATE;
    bytes[12] = 9;
    assert_eq!(Message::parse(&bytes), Err(DecodeError::UnknownPayload(9)));
    assert_eq!(
        DecodeError::UnknownPayload(9).kink_error(),
        ErrorCode::ProtoErr
    );
}

#[test]
fn cksum_len_larger_than_the_chain_region_cuts_the_chain() {
    let mut bytes = CREATE;
    bytes[15] = 20; // the Cksum would swallow the end of KINK_ENCRYPT
    assert_eq!(
        Message::parse(&bytes),
        Err(DecodeError::BadLength("KINK payload", 13))
    );
}

#[test]
fn octets_after_length_are_ignored() {
    let mut bytes = GETTGT.to_vec();
    bytes.extend_from_slice(&[0xff; 5]);
    assert_eq!(Message::parse(&bytes).unwrap(), expected("GETTGT"));
}

#[test]
fn display_is_one_summary_line() {
    assert_eq!(
        expected("REPLY ACKREQ").to_string(),
        "REPLY xid=0x12345678 ACKREQ [ KINK_AP_REP KINK_ENCRYPT ] cksum=12"
    );
    assert_eq!(
        Message::new(MessageType::GetTgt, 1).to_string(),
        "GETTGT xid=0x00000001 [ ] cksum=0"
    );
}

#[test]
fn find_returns_the_first_of_a_type() {
    let msg = expected("DELETE");
    assert!(matches!(
        msg.find(PayloadType::ApReq),
        Some(Payload::ApReq { .. })
    ));
    assert!(msg.find(PayloadType::Encrypt).is_none());
}

proptest! {
    #[test]
    fn messages_round_trip(msg in strategies::message()) {
        let bytes = msg.emit();
        prop_assert_eq!(Message::parse(&bytes).unwrap(), msg.clone());
        if !msg.cksum.is_empty() {
            let mut unsigned = msg.emit_for_cksum();
            prop_assert_eq!(&unsigned, &cksum_input(&bytes).unwrap().covered);
            append_cksum(&mut unsigned, &msg.cksum).unwrap();
            prop_assert_eq!(unsigned, bytes);
        }
    }

    #[test]
    fn encrypted_content_round_trips(
        inner in proptest::collection::vec(strategies::inner_payload(), 0..4),
    ) {
        let plain = encrypt_plaintext(&inner);
        prop_assert_eq!(parse_encrypted(&plain).unwrap(), inner);
    }
}
