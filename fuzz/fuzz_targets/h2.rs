//! A connection's two byte streams as HTTP/2 (the client's from its preface on): the first
//! byte picks the segment size and where the client's bytes end.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let split = rest.len() * usize::from(pick & 0x0f) / 15;
    client.extend_from_slice(&rest[..split]);
    tcprace::fuzzing::h2(&client, &rest[split..], 1 + usize::from(pick >> 4) * 97);
});
