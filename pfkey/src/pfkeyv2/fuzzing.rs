//! Fuzz target body (STYLE.md §5): `fuzz/fuzz_targets/pfkey_msg.rs` calls
//! it, and a stable test replays seed messages through it.

use super::convert;
use super::msg::Message;

/// Parses arbitrary bytes as a PF_KEY message; whatever parses must emit,
/// re-parse to the same value, and survive every conversion the backend
/// applies to received messages. Must never panic.
pub fn pfkey_msg(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let _ = convert::sa_id(&msg);
    let _ = convert::sa_info(&msg, crate::SaDirection::Inbound);
    let _ = convert::expire_event(&msg);
    let _ = convert::migrate_event(&msg);
    let _ = convert::policy_spec(&msg);
    if let Some((_, src, dst)) = convert::acquire_parts(&msg) {
        let _ = convert::acquire_event(src, dst, &msg);
    }
    // Re-emitting can only fail on lengths, which a parsed message fits.
    let bytes = msg.emit().expect("a parsed message fits its length fields");
    let again = Message::parse(&bytes).expect("an emitted message parses");
    assert_eq!(again, msg, "parse(emit(parse(x))) == parse(x)");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the fuzz corpus (the hand-built Linux ADD, X_SPDADD and
    /// ACQUIRE of `super::super::tests`), whole and cut short.
    #[test]
    fn the_fuzz_corpus_replays_through_the_fuzz_body() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pfkey_msg");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/pfkey_msg exists") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(Message::parse(&data).is_ok(), "seeds are valid messages");
            for cut in 0..=data.len() {
                pfkey_msg(&data[..cut]);
            }
            seen += 1;
        }
        assert!(seen >= 3, "{seen} seeds in {}", dir.display());
    }
}
