//! The two byte streams of one connection, in segments with gaps, overlaps and ends, through
//! the application stage (HTTP/1.x framing, or TLS records when the first bytes are a TLS
//! handshake; HTTP/2 frames once they exist).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcprace::fuzzing::streams(data));
