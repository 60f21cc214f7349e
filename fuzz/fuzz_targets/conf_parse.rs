//! Fuzz the racoon2.conf reader: lexer, parser and model building on
//! arbitrary bytes, with includes disabled (the body lives in
//! `libracoon::config::fuzzing` so tests can replay it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    libracoon::config::fuzzing::parse(data);
});
