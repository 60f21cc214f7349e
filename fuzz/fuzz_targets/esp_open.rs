//! Fuzz ESP opening: `EspSa::open` and the SAD's decapsulation pipeline
//! (trailer, inner header, selector check) on arbitrary packets and on
//! arbitrary plaintext inside authentic packets (the body lives in
//! `pfkey::userspace::fuzzing` so tests can replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pfkey::userspace::fuzzing::esp_open(data);
});
