//! A whole capture file (pcap, pcapng, gzip) analysed from its bytes, as the command line
//! reads one, on one thread and on two.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let threads = 1 + usize::from(data.first().is_some_and(|b| b & 1 == 1));
    tcprace::fuzzing::analyse_capture(data, threads);
});
