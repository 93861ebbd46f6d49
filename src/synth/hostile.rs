//! Hostile captures, generated at any size: SYN floods, pipelined requests never answered,
//! retransmissions over a long pending queue, pcapng files with countless interfaces or
//! extreme time offsets, endless request heads, bad Content-Length values. The regression tests
//! write small ones, `examples/mkhostile.rs` and `bench/hostile.sh` large ones.
//!
//! The packets are written straight to the file (Ethernet, IPv4, TCP without checksums), a
//! few at a time, so any size costs the generator no memory.

use super::pcap::{Link, PcapOptions, PcapWriter};
use crate::time::Timestamp;
use std::io::{self, Write};
use std::net::SocketAddrV4;

/// 2026-01-01T00:00:00Z.
const BASE_SECS: i64 = 1_767_225_600;
const MSS: usize = 1460;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// The request the pipelined cases repeat (27 bytes).
pub const PIPELINED_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// An Ethernet/IPv4/TCP frame; `id`: its IP identification (a host numbers its packets: a
/// retransmission is not a copy of the segment captured twice).
fn frame(
    id: u16,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Capture time `n` microseconds after the base time.
fn at_us(n: u64) -> Timestamp {
    Timestamp::from_secs_nanos(BASE_SECS, 0).add_secs(n as f64 / 1e6)
}

fn pcap<W: Write>(out: W) -> io::Result<PcapWriter<W>> {
    PcapWriter::with_options(out, PcapOptions::for_link(Link::Ethernet))
}

/// `n` SYNs, each from another client port or address to one server: `n` connections that
/// never go further. Returns the packets written.
pub fn syn_flood<W: Write>(out: W, n: u64) -> io::Result<u64> {
    let mut w = pcap(out)?;
    let server: SocketAddrV4 = "198.51.100.1:80".parse().expect("address");
    for i in 0..n {
        let host = (i / 60_000) as u32;
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 | host);
        let client = SocketAddrV4::new(ip, 1024 + (i % 60_000) as u16);
        let f = frame(
            i as u16,
            client,
            server,
            (i as u32).wrapping_mul(2_654_435_761),
            0,
            SYN,
            &[],
        );
        w.write_frame(at_us(i), &f)?;
    }
    let frames = w.frames();
    w.finish()?;
    Ok(frames)
}

/// One TCP connection written as it goes: the client's bytes in MSS-sized segments, the
/// server's acknowledgements.
pub struct Stream<W: Write> {
    w: PcapWriter<W>,
    client: SocketAddrV4,
    server: SocketAddrV4,
    cseq: u32,
    sseq: u32,
    us: u64,
    /// Client segments written so far: (seq, payload), kept only when `keep` is set.
    sent: Vec<(u32, Vec<u8>)>,
    keep: bool,
}

impl<W: Write> Stream<W> {
    /// A connection with its handshake written.
    pub fn open(out: W, keep_segments: bool) -> io::Result<Stream<W>> {
        let mut s = Stream {
            w: pcap(out)?,
            client: "192.0.2.1:40000".parse().expect("address"),
            server: "198.51.100.1:80".parse().expect("address"),
            cseq: 1000,
            sseq: 5000,
            us: 0,
            sent: Vec::new(),
            keep: keep_segments,
        };
        s.write(true, s.cseq, 0, SYN, &[])?;
        s.write(false, s.sseq, s.cseq + 1, SYN | ACK, &[])?;
        s.cseq += 1;
        s.sseq += 1;
        s.write(true, s.cseq, s.sseq, ACK, &[])?;
        Ok(s)
    }

    fn write(
        &mut self,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        data: &[u8],
    ) -> io::Result<()> {
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        self.us += 10;
        let id = self.w.frames() as u16;
        self.w
            .write_frame(at_us(self.us), &frame(id, src, dst, seq, ack, flags, data))?;
        Ok(())
    }

    /// The client sends `data` (in MSS-sized segments), each acknowledged by the server.
    pub fn client_sends(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MSS) {
            let seq = self.cseq;
            self.write(true, seq, self.sseq, PSH | ACK, chunk)?;
            if self.keep {
                self.sent.push((seq, chunk.to_vec()));
            }
            self.cseq = self.cseq.wrapping_add(chunk.len() as u32);
            self.write(false, self.sseq, self.cseq, ACK, &[])?;
        }
        Ok(())
    }

    /// Retransmit the `k`-th client segment sent (kept with `keep_segments`).
    pub fn retransmit(&mut self, k: usize) -> io::Result<()> {
        let (seq, data) = std::mem::take(&mut self.sent[k]);
        self.write(true, seq, self.sseq, PSH | ACK, &data)?;
        self.sent[k] = (seq, data);
        Ok(())
    }

    /// Client segments sent so far.
    pub fn segments(&self) -> usize {
        self.sent.len()
    }

    /// The server closes (FIN), the client answers with its FIN; returns the packets written.
    pub fn close(mut self) -> io::Result<u64> {
        self.write(false, self.sseq, self.cseq, FIN | ACK, &[])?;
        self.sseq += 1;
        self.write(true, self.cseq, self.sseq, FIN | ACK, &[])?;
        let frames = self.w.frames();
        self.w.finish()?;
        Ok(frames)
    }

    /// End the capture with the connection still open; returns the packets written.
    pub fn end(self) -> io::Result<u64> {
        let frames = self.w.frames();
        self.w.finish()?;
        Ok(frames)
    }
}

/// `n` identical requests pipelined on one connection and never answered (the server only
/// acknowledges them, then closes).
pub fn pipelined_unanswered<W: Write>(out: W, n: u64) -> io::Result<u64> {
    let mut s = Stream::open(out, false)?;
    let per_chunk = 4096u64;
    let mut left = n;
    while left > 0 {
        let k = left.min(per_chunk);
        s.client_sends(&PIPELINED_REQUEST.repeat(k as usize))?;
        left -= k;
    }
    s.close()
}

/// `n` connections from as many client ports, each a handshake and one request never
/// answered, all still open when the capture ends (`n` requests unanswered at its end).
pub fn unanswered_connections<W: Write>(out: W, n: u64) -> io::Result<u64> {
    let mut w = pcap(out)?;
    let server: SocketAddrV4 = "198.51.100.1:80".parse().expect("address");
    for i in 0..n {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 | (i / 60_000) as u32);
        let client = SocketAddrV4::new(ip, 1024 + (i % 60_000) as u16);
        // initial sequence numbers as a host picks them: a connection is no copy of another
        let c = (i as u32).wrapping_mul(2_654_435_761);
        let s = c ^ 0x5a5a_5a5a;
        let id = (4 * i) as u16;
        let us = i * 40;
        w.write_frame(at_us(us), &frame(id, client, server, c, 0, SYN, &[]))?;
        w.write_frame(
            at_us(us + 10),
            &frame(id + 1, server, client, s, c.wrapping_add(1), SYN | ACK, &[]),
        )?;
        w.write_frame(
            at_us(us + 20),
            &frame(
                id + 2,
                client,
                server,
                c.wrapping_add(1),
                s.wrapping_add(1),
                ACK,
                &[],
            ),
        )?;
        w.write_frame(
            at_us(us + 30),
            &frame(
                id + 3,
                client,
                server,
                c.wrapping_add(1),
                s.wrapping_add(1),
                PSH | ACK,
                PIPELINED_REQUEST,
            ),
        )?;
    }
    let frames = w.frames();
    w.finish()?;
    Ok(frames)
}

/// `pending` pipelined requests never answered, then `retransmissions` retransmitted client
/// segments (spread over the whole stream).
pub fn retransmissions_over_pending<W: Write>(
    out: W,
    pending: u64,
    retransmissions: u64,
) -> io::Result<u64> {
    let mut s = Stream::open(out, true)?;
    s.client_sends(&PIPELINED_REQUEST.repeat(pending as usize))?;
    let segs = s.segments().max(1);
    for i in 0..retransmissions as usize {
        s.retransmit(i * 7919 % segs)?;
    }
    s.close()
}

/// A request whose head never ends: a request line, then `bytes` of header lines (or, with
/// `one_line`, of one header line that never ends).
pub fn endless_head<W: Write>(out: W, bytes: u64, one_line: bool) -> io::Result<u64> {
    let mut s = Stream::open(out, false)?;
    s.client_sends(b"GET / HTTP/1.1\r\nHost: a\r\n")?;
    let line: &[u8] = if one_line {
        b"X-Filler: aaaaaaaaaaaaaaaa"
    } else {
        b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    };
    let block = line.repeat(MSS * 16 / line.len());
    let mut left = bytes;
    while left > 0 {
        let k = left.min(block.len() as u64) as usize;
        s.client_sends(&block[..k])?;
        left -= k as u64;
    }
    s.close()
}

/// Requests with bad lengths on one connection, none answered: an invalid Content-Length
/// with a body, conflicting duplicate Content-Length headers, a list of differing values,
/// each followed by a body with no line end and then a good request (`AAAAGET ...` if the
/// body is taken for the next request's first bytes).
pub fn bad_lengths<W: Write>(out: W) -> io::Result<u64> {
    let mut s = Stream::open(out, false)?;
    let heads: [&[u8]; 3] = [
        b"POST /invalid HTTP/1.1\r\nHost: a\r\nContent-Length: 4x\r\n\r\nAAAA",
        b"POST /conflict HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nAAAA",
        b"POST /list HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 6\r\n\r\nAAAA",
    ];
    for (i, h) in heads.iter().enumerate() {
        s.client_sends(h)?;
        s.client_sends(format!("GET /after{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())?;
    }
    s.close()
}

/// A little-endian pcapng writer: section header, interfaces, enhanced packet blocks.
struct Ng<W: Write> {
    out: W,
}

impl<W: Write> Ng<W> {
    fn new(mut out: W) -> io::Result<Ng<W>> {
        let mut b = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&[0xff; 8]);
        Self::block_to(&mut out, 0x0A0D_0D0A, &b)?;
        Ok(Ng { out })
    }

    fn block_to(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        out.write_all(&kind.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&body)?;
        out.write_all(&len.to_le_bytes())
    }

    /// An Ethernet interface with microsecond timestamps, and an if_tsoffset if given.
    fn interface(&mut self, tsoffset: Option<i64>) -> io::Result<()> {
        let mut b = 1u16.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&0u32.to_le_bytes());
        if let Some(o) = tsoffset {
            b.extend_from_slice(&14u16.to_le_bytes());
            b.extend_from_slice(&8u16.to_le_bytes());
            b.extend_from_slice(&o.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        Self::block_to(&mut self.out, 1, &b)
    }

    fn packet(&mut self, iface: u32, ts_us: u64, data: &[u8]) -> io::Result<()> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts_us as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        Self::block_to(&mut self.out, 6, &b)
    }
}

/// A few TCP packets of one exchange, for the pcapng cases.
fn exchange_frames() -> Vec<Vec<u8>> {
    let c: SocketAddrV4 = "192.0.2.1:40000".parse().expect("address");
    let s: SocketAddrV4 = "198.51.100.1:80".parse().expect("address");
    vec![
        frame(1, c, s, 100, 0, SYN, &[]),
        frame(2, s, c, 900, 101, SYN | ACK, &[]),
        frame(3, c, s, 101, 901, ACK, &[]),
        frame(4, c, s, 101, 901, PSH | ACK, PIPELINED_REQUEST),
    ]
}

/// A pcapng section with `n` interface blocks, then a few packets on the first and the last.
pub fn pcapng_interfaces<W: Write>(out: W, n: u64) -> io::Result<u64> {
    let mut ng = Ng::new(out)?;
    for _ in 0..n.max(1) {
        ng.interface(None)?;
    }
    let last = (n.max(1) - 1) as u32;
    let base = BASE_SECS as u64 * 1_000_000;
    for (i, f) in exchange_frames().iter().enumerate() {
        ng.packet(if i % 2 == 0 { 0 } else { last }, base + i as u64, f)?;
    }
    ng.out.flush()?;
    Ok(4)
}

/// A pcapng section with two interfaces whose if_tsoffset values are the extremes of i64, one
/// packet block each way of an exchange on alternate interfaces.
pub fn pcapng_extreme_offsets<W: Write>(out: W) -> io::Result<u64> {
    let mut ng = Ng::new(out)?;
    ng.interface(Some(i64::MAX))?;
    ng.interface(Some(i64::MIN))?;
    for (i, f) in exchange_frames().iter().enumerate() {
        ng.packet((i % 2) as u32, u64::MAX - 10 + i as u64, f)?;
    }
    ng.out.flush()?;
    Ok(4)
}
