//! Fuzz the KINK protocol core (`kinkd::proto`): arbitrary datagrams into a
//! responder and an initiator engine with a permissive Kerberos double, so
//! the input reaches Quick Mode parsing, proposal choice, the reply cache
//! and the timers. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinkd::proto::fuzzing::engine(data);
});
