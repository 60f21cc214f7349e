use proptest::prelude::*;

use super::*;
use crate::ctl::proto::{ClientMessage, EventRecord, Request, ServerMessage};
use crate::ctl::samples;

fn frame_of<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out).unwrap();
    out
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn every_client_message_round_trips() {
    for msg in samples::client_messages() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame_of(&msg));
        assert_eq!(decoder.next::<ClientMessage>(), Ok(Some(msg)));
        assert_eq!(decoder.next::<ClientMessage>(), Ok(None));
        assert_eq!(decoder.finish(), Ok(()));
    }
}

#[test]
fn every_server_message_round_trips() {
    for msg in samples::server_messages() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame_of(&msg));
        assert_eq!(decoder.next::<ServerMessage>(), Ok(Some(msg)));
        assert_eq!(decoder.buffered(), 0);
    }
}

#[test]
fn prefix_is_the_big_endian_length_of_compact_json() {
    let frame = samples::hello_frame();
    let body = br#"{"type":"hello","version":2,"client":"racoonctl"}"#;
    assert_eq!(frame[..4], [0, 0, 0, 49]);
    assert_eq!(&frame[4..], body);
}

#[test]
fn encode_appends_to_what_is_in_the_buffer() {
    let mut out = b"xy".to_vec();
    encode(&samples::event(), &mut out).unwrap();
    assert_eq!(&out[..2], b"xy");
    let mut decoder = FrameDecoder::new();
    decoder.push(&out[2..]);
    assert_eq!(decoder.next(), Ok(Some(samples::event())));
}

#[test]
fn encode_refuses_a_message_over_the_limit_and_leaves_the_buffer_alone() {
    let mut sa = samples::ike_sa();
    sa.name = "x".repeat(MAX_FRAME);
    let mut out = b"xy".to_vec();
    let err = encode(&sa, &mut out).unwrap_err();
    assert!(
        matches!(err, FrameError::Oversized(n) if n > MAX_FRAME),
        "{err}"
    );
    assert_eq!(out, b"xy");
}

#[test]
fn a_body_of_exactly_max_frame_bytes_is_accepted() {
    // A JSON string of MAX_FRAME bytes: quotes plus MAX_FRAME - 2 letters.
    let body = format!("\"{}\"", "a".repeat(MAX_FRAME - 2));
    let mut decoder = FrameDecoder::new();
    decoder.push(&raw_frame(body.as_bytes()));
    let got: Option<String> = decoder.next().unwrap();
    assert_eq!(got.map(|s| s.len()), Some(MAX_FRAME - 2));
}

#[test]
fn oversized_length_prefix_is_refused_before_the_body_arrives() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes());
    let err = decoder.next::<ClientMessage>().unwrap_err();
    assert_eq!(err, FrameError::Oversized(MAX_FRAME + 1));
    assert_eq!(
        err.to_string(),
        "frame of 1048577 bytes exceeds the limit of 1048576 bytes"
    );
    // The stream cannot be resynchronised: the error sticks.
    decoder.push(&samples::hello_frame());
    assert_eq!(
        decoder.next::<ClientMessage>(),
        Err(FrameError::Oversized(MAX_FRAME + 1))
    );
}

#[test]
fn largest_possible_prefix_is_oversized_not_an_overflow() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&[0xff; 4]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::Oversized(0xffff_ffff))
    );
}

#[test]
fn truncated_frame_waits_then_finish_reports_it() {
    let frame = samples::hello_frame();
    for cut in [1, 3, 4, 10, frame.len() - 1] {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..cut]);
        assert_eq!(decoder.next::<ClientMessage>(), Ok(None), "cut at {cut}");
        let need = if cut < 4 { 4 } else { frame.len() };
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated { have: cut, need }),
            "cut at {cut}"
        );
    }
    let err = FrameError::Truncated { have: 10, need: 54 };
    assert_eq!(
        err.to_string(),
        "connection closed in the middle of a frame (10 of 54 bytes)"
    );
}

#[test]
fn bad_json_is_reported_and_the_stream_stays_in_sync() {
    let mut bytes = raw_frame(b"{\"type\": hello");
    bytes.extend_from_slice(&samples::hello_frame());
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    let err = decoder.next::<ClientMessage>().unwrap_err();
    assert!(matches!(err, FrameError::BadJson(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("frame is not valid JSON: expected value"),
        "{err}"
    );
    assert_eq!(
        decoder.next::<ClientMessage>(),
        Ok(Some(samples::client_messages()[0].clone()))
    );
}

#[test]
fn empty_and_non_object_bodies_are_errors() {
    for body in [
        &b""[..],
        b" ",
        b"{}",
        b"[1,2]",
        b"\"hello\"",
        b"{\"type\":\"hello\"} x",
    ] {
        let mut decoder = FrameDecoder::new();
        decoder.push(&raw_frame(body));
        assert!(
            decoder.next::<ClientMessage>().is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn valid_json_of_the_wrong_shape_is_a_bad_message() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&raw_frame(
        br#"{"type":"request","id":7,"request":{"cmd":"frobnicate"}}"#,
    ));
    let err = decoder.next::<ClientMessage>().unwrap_err();
    assert!(matches!(err, FrameError::BadMessage(_)), "{err:?}");
    assert!(
        err.to_string().contains("unknown variant `frobnicate`"),
        "{err}"
    );
}

#[test]
fn two_frames_in_one_push() {
    let msgs = samples::client_messages();
    let mut bytes = frame_of(&msgs[0]);
    bytes.extend_from_slice(&frame_of(&msgs[1]));
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    assert_eq!(decoder.next(), Ok(Some(msgs[0].clone())));
    assert_eq!(decoder.next(), Ok(Some(msgs[1].clone())));
    assert_eq!(decoder.next::<ClientMessage>(), Ok(None));
}

#[test]
fn a_frame_split_across_pushes_at_every_offset() {
    let msg = samples::server_messages()[1].clone();
    let frame = frame_of(&msg);
    for cut in 0..=frame.len() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..cut]);
        let early = decoder.next::<ServerMessage>().unwrap();
        decoder.push(&frame[cut..]);
        let late = decoder.next::<ServerMessage>().unwrap();
        let got = early.or(late);
        assert_eq!(got.as_ref(), Some(&msg), "cut at {cut}");
    }
}

#[test]
fn byte_by_byte_delivery() {
    let msgs = samples::client_messages();
    let mut bytes = Vec::new();
    for msg in &msgs {
        encode(msg, &mut bytes).unwrap();
    }
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for byte in bytes {
        decoder.push(&[byte]);
        while let Some(msg) = decoder.next::<ClientMessage>().unwrap() {
            got.push(msg);
        }
    }
    assert_eq!(got, msgs);
}

#[test]
fn fuzz_body_survives_the_nasty_cases() {
    use crate::ctl::fuzzing::decode;
    decode(b"");
    decode(&[0]);
    decode(&[2, 0xff, 0xff, 0xff, 0xff]);
    let mut hello = vec![7];
    hello.extend_from_slice(&samples::hello_frame());
    decode(&hello);
    decode(&[0, 0, 0, 0, 0]);
}

/// Replays `fuzz/corpus/ctl_frame/` (seeds and whatever local fuzzing left
/// there) through the fuzz body.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ctl_frame");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            crate::ctl::fuzzing::decode(&bytes);
        }
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{2603}]{0,24}"
}

prop_compose! {
    fn arb_request()(kind in 0..5u8, text in arb_text()) -> Request {
        match kind {
            0 => Request::ShowSa,
            1 => Request::ShowStatus,
            2 => Request::Initiate { remote: text },
            3 => Request::Terminate { target: text },
            _ => Request::Watch,
        }
    }
}

proptest! {
    #[test]
    fn requests_round_trip(id in any::<u64>(), request in arb_request()) {
        let msg = ClientMessage::Request { id, request };
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame_of(&msg));
        prop_assert_eq!(decoder.next::<ClientMessage>(), Ok(Some(msg)));
    }

    #[test]
    fn events_round_trip(kind in arb_text(), sa in proptest::option::of(arb_text()), message in arb_text()) {
        let msg = ServerMessage::Event { event: EventRecord { time: "2026-11-27T10:15:02Z".into(), kind, sa, message, kernel: None } };
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame_of(&msg));
        prop_assert_eq!(decoder.next::<ServerMessage>(), Ok(Some(msg)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        crate::ctl::fuzzing::decode(&bytes);
    }
}
