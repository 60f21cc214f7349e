//! Fuzz the KINK message codec (`kinkd::wire`): header, payload chain, KINK_ISAKMP contents,
//! checksum layout, and KINK_ENCRYPT content under a NULL cipher (the body lives in
//! `kinkd::wire::fuzzing` so tests can replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinkd::wire::fuzzing::message(data);
});
