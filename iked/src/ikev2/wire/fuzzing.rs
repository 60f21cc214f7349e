//! Fuzz target bodies: `fuzz/fuzz_targets/ikev2_message.rs` calls [`message`]; the tests below
//! replay captured datagrams and their mutations through the same function.

use super::{Message, Payload};

/// Parses `data` as an IKE datagram. If it parses: emits it, re-parses the result and asserts
/// that the typed values are equal and that a second emit is byte-identical.
///
/// # Panics
/// On any discrepancy: that is the finding the fuzzer reports.
pub fn message(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let bytes = msg.emit();
    let again = Message::parse(&bytes)
        .unwrap_or_else(|e| panic!("emitted message does not parse: {e}\n{msg:?}"));
    assert_eq!(again.emit(), bytes, "emit is not stable");
    assert_eq!(normalised(again), normalised(msg));
}

/// What survives a round trip: unknown transform attributes are dropped on emit, which also
/// shortens the message and may move the SK payload.
fn normalised(mut msg: Message) -> Message {
    msg.header.length = 0;
    if let Some(sk) = &mut msg.sk {
        sk.header_offset = 0;
    }
    for payload in &mut msg.payloads {
        if let Payload::Sa(proposals) = payload {
            for transform in proposals.iter_mut().flat_map(|p| &mut p.transforms) {
                transform.unknown_attrs = false;
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::captures;

    #[test]
    fn captured_datagrams_round_trip() {
        for c in captures::all() {
            message(c.datagram);
        }
    }

    /// Every prefix and every single-octet corruption of every captured datagram: no panic,
    /// and whatever parses round-trips.
    #[test]
    fn mutated_captures_never_panic() {
        for c in captures::all() {
            for n in 0..c.datagram.len() {
                message(&c.datagram[..n]);
            }
            let mut bytes = c.datagram.to_vec();
            for i in 0..bytes.len() {
                for mask in [0x01, 0x80, 0xff] {
                    bytes[i] ^= mask;
                    message(&bytes);
                    bytes[i] ^= mask;
                }
            }
        }
    }
}
