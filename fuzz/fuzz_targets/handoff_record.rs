//! Fuzz the ESP-in-UDP hand-off records spmd reads from iked
//! (`pfkey::handoff::decode`). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pfkey::handoff::decode(data);
});
