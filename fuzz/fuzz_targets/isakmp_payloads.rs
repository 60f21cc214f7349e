//! Fuzz the ISAKMP payload codec (`libracoon::isakmp`): first octet = first payload type, the
//! rest a payload chain. Whatever parses must re-emit and re-parse identically (the body
//! lives in `libracoon::isakmp::fuzzing` so tests can replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    libracoon::isakmp::fuzzing::payloads(data);
});
