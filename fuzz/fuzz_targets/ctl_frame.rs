//! Fuzz the control-socket reader: arbitrary bytes, split into two reads,
//! through `FrameDecoder` into `ClientMessage`s until an error or a request
//! for more bytes (the body lives in `libracoon::ctl::fuzzing` so tests can
//! replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    libracoon::ctl::fuzzing::decode(data);
});
