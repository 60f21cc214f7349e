//! Fuzz the IKEv2 datagram codec: parse, and for anything that parses, emit/re-parse and
//! compare (the body lives in `iked::ikev2::wire::fuzzing` so tests can replay it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iked::ikev2::wire::fuzzing::message(data);
});
