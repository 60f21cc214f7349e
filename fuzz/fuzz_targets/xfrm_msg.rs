//! Fuzz the XFRM netlink codec: arbitrary bytes as a datagram from the
//! kernel, through message parsing, the round-trip check and the
//! conversions the backend applies to replies and events (the body lives
//! in `pfkey::xfrm::fuzzing` so tests can replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pfkey::xfrm::fuzzing::xfrm_msg(data);
});
