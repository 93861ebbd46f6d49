//! One packet of every link type decoded (the first byte picks the link type).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcprace::fuzzing::decode(data));
