//! Fuzz the PF_KEY v2 message codec: `Message::parse` on arbitrary bytes,
//! then emit/re-parse and every conversion the backend applies to what the
//! kernel sends (the body lives in `pfkey::pfkeyv2::fuzzing` so tests can
//! replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pfkey::pfkeyv2::fuzzing::pfkey_msg(data);
});
