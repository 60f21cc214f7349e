//! Fuzz target body: `fuzz/fuzz_targets/kink_message.rs` calls [`message`]; the tests replay
//! hand-built messages and their mutations through the same function.

use super::{Message, Payload, cksum_input, parse_encrypted};

/// Parses `data` as a KINK datagram. Whatever parses must re-emit to a message that parses to
/// the same value and re-emits identically; the checksum helpers must agree with the parse;
/// a KINK_ENCRYPT payload's ciphertext is also run through [`parse_encrypted`] as if it were
/// plaintext (the NULL cipher), to reach the inner-chain rules.
///
/// # Panics
/// On any discrepancy: that is the finding the fuzzer reports.
pub fn message(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let input = cksum_input(data).expect("parsed message has a checksum layout");
    assert_eq!(input.cksum, &*msg.cksum);
    let bytes = msg.emit();
    let again = Message::parse(&bytes)
        .unwrap_or_else(|e| panic!("emitted message does not parse: {e}\n{msg:?}"));
    assert_eq!(again, msg);
    assert_eq!(again.emit(), bytes, "emit is not stable");
    if let Some(Payload::Encrypt(content)) = msg.payloads.last()
        && let Ok(inner) = parse_encrypted(content)
    {
        let plain = super::encrypt_plaintext(&inner);
        assert_eq!(parse_encrypted(&plain).as_ref(), Ok(&inner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::tests::vectors;

    #[test]
    fn vectors_round_trip() {
        for (name, bytes) in vectors() {
            assert!(Message::parse(&bytes).is_ok(), "{name}");
            message(&bytes);
        }
    }

    /// Every prefix and every single-octet corruption of every vector: no panic, and
    /// whatever parses round-trips.
    #[test]
    fn mutated_vectors_never_panic() {
        for (_, bytes) in vectors() {
            for n in 0..bytes.len() {
                message(&bytes[..n]);
            }
            let mut bytes = bytes;
            for i in 0..bytes.len() {
                for mask in [0x01, 0x80, 0xff] {
                    bytes[i] ^= mask;
                    message(&bytes);
                    bytes[i] ^= mask;
                }
            }
        }
    }

    /// Replays `fuzz/corpus/kink_message/` (the committed seeds, and whatever local fuzzing
    /// left there); every committed seed is a valid message.
    #[test]
    fn fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/kink_message");
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            message(&bytes);
            if entry.file_name().to_string_lossy().starts_with("seed-") {
                assert!(Message::parse(&bytes).is_ok(), "{:?}", entry.path());
                seeds += 1;
            }
        }
        assert!(seeds >= 4, "seeds missing");
    }
}
