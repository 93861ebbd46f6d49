//! Classic (libpcap) capture file writer and link-layer encapsulation.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::time::Timestamp;

use super::{Packet, PacketDirection, PacketTag};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW (raw IPv4/IPv6, no link header).
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LINUX_SLL (Linux "cooked" capture v1, 16-byte header).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_LINUX_SLL2 (Linux "cooked" capture v2, 20-byte header; `tcpdump -i any`).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Default snapshot length (what tcpdump uses).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Classic pcap magic for microsecond timestamps (written little-endian).
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Classic pcap magic for nanosecond timestamps (written little-endian).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// The link layer frames are wrapped in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Link {
    /// Ethernet II; MAC addresses derived from the IP addresses.
    #[default]
    Ethernet,
    /// Linux cooked capture v1 (SLL).
    LinuxSll,
    /// Linux cooked capture v2 (SLL2) with the given interface index.
    LinuxSll2 { ifindex: u32 },
    /// Raw IP (no link header).
    RawIp,
}

impl Link {
    /// The pcap LINKTYPE for this link layer.
    pub fn linktype(self) -> u32 {
        match self {
            Link::Ethernet => LINKTYPE_ETHERNET,
            Link::LinuxSll => LINKTYPE_LINUX_SLL,
            Link::LinuxSll2 { .. } => LINKTYPE_LINUX_SLL2,
            Link::RawIp => LINKTYPE_RAW,
        }
    }

    /// Length of the link header in bytes.
    pub fn header_len(self) -> usize {
        match self {
            Link::Ethernet => 14,
            Link::LinuxSll => 16,
            Link::LinuxSll2 { .. } => 20,
            Link::RawIp => 0,
        }
    }

    /// Append the link header followed by the packet's IP bytes to `out`.
    pub fn encapsulate(self, p: &Packet, out: &mut Vec<u8>) {
        let ethertype: u16 = if p.ipv6 { 0x86dd } else { 0x0800 };
        // Linux packet types: 0 = PACKET_HOST (to us), 4 = PACKET_OUTGOING.
        let pkttype: u8 = match p.direction {
            PacketDirection::Outgoing => 4,
            PacketDirection::Incoming | PacketDirection::Unknown => 0,
        };
        match self {
            Link::Ethernet => {
                out.extend_from_slice(&p.dst_mac);
                out.extend_from_slice(&p.src_mac);
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::LinuxSll => {
                out.extend_from_slice(&u16::from(pkttype).to_be_bytes());
                out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                out.extend_from_slice(&6u16.to_be_bytes());
                out.extend_from_slice(&p.src_mac);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::LinuxSll2 { ifindex } => {
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(&[0, 0]); // reserved
                out.extend_from_slice(&ifindex.to_be_bytes());
                out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                out.push(pkttype);
                out.push(6);
                out.extend_from_slice(&p.src_mac);
                out.extend_from_slice(&[0, 0]);
            }
            Link::RawIp => {}
        }
        out.extend_from_slice(&p.ip);
    }
}

/// Options of a [`PcapWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapOptions {
    /// LINKTYPE written into the file header.
    pub linktype: u32,
    /// Snapshot length: records hold at most this many bytes of each frame.
    pub snaplen: u32,
    /// Nanosecond timestamps (magic `0xa1b23c4d`) instead of microseconds.
    pub nanos: bool,
}

impl Default for PcapOptions {
    fn default() -> Self {
        PcapOptions {
            linktype: LINKTYPE_ETHERNET,
            snaplen: DEFAULT_SNAPLEN,
            nanos: false,
        }
    }
}

impl PcapOptions {
    /// Options for the given link layer, default snaplen, microseconds.
    pub fn for_link(link: Link) -> Self {
        PcapOptions {
            linktype: link.linktype(),
            ..Default::default()
        }
    }

    pub fn snaplen(mut self, snaplen: u32) -> Self {
        self.snaplen = snaplen;
        self
    }

    pub fn nanos(mut self, nanos: bool) -> Self {
        self.nanos = nanos;
        self
    }
}

/// Frame numbers (1-based) of written packets, by tag.
pub type FrameMap = HashMap<PacketTag, u64>;

/// Writes a classic little-endian pcap file. The file header is written on construction.
pub struct PcapWriter<W: Write> {
    inner: W,
    opts: PcapOptions,
    frames: u64,
    buf: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Ethernet, default snaplen, microsecond timestamps.
    pub fn new(inner: W) -> io::Result<Self> {
        Self::with_options(inner, PcapOptions::default())
    }

    pub fn with_options(mut inner: W, opts: PcapOptions) -> io::Result<Self> {
        let magic = if opts.nanos {
            MAGIC_NANOS
        } else {
            MAGIC_MICROS
        };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        hdr[16..20].copy_from_slice(&opts.snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&opts.linktype.to_le_bytes());
        inner.write_all(&hdr)?;
        Ok(PcapWriter {
            inner,
            opts,
            frames: 0,
            buf: Vec::with_capacity(2048),
        })
    }

    pub fn options(&self) -> PcapOptions {
        self.opts
    }

    /// Number of records written so far (= frame number of the last one).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Write one record holding `frame` (a complete link-layer frame). The record's caplen is
    /// `min(frame.len(), snaplen)`, its orig_len `frame.len()`. Returns the 1-based frame number.
    pub fn write_frame(&mut self, ts: Timestamp, frame: &[u8]) -> io::Result<u64> {
        self.write_frame_len(ts, frame, frame.len())
    }

    /// Like [`write_frame`](Self::write_frame) but with an explicit original length
    /// (`orig_len >= data.len()`), for data that is already truncated.
    pub fn write_frame_len(
        &mut self,
        ts: Timestamp,
        data: &[u8],
        orig_len: usize,
    ) -> io::Result<u64> {
        let caplen = data.len().min(self.opts.snaplen as usize);
        let orig_len = orig_len.max(data.len());
        let secs = ts.nanos().div_euclid(1_000_000_000);
        let sub_ns = ts.nanos().rem_euclid(1_000_000_000);
        let frac = if self.opts.nanos {
            sub_ns
        } else {
            sub_ns / 1000
        };
        let secs = u32::try_from(secs)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timestamp out of range"))?;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(orig_len as u32).to_le_bytes());
        self.inner.write_all(&rec)?;
        self.inner.write_all(&data[..caplen])?;
        self.frames += 1;
        Ok(self.frames)
    }

    /// Encapsulate `p` in `link` and write it. Returns the 1-based frame number.
    pub fn write_packet(&mut self, link: Link, p: &Packet) -> io::Result<u64> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        link.encapsulate(p, &mut buf);
        let r = self.write_frame(p.ts, &buf);
        self.buf = buf;
        r
    }

    /// Wrap `p` in the encapsulation `layers` (innermost first; see [`Encap`]) and an outer
    /// Ethernet header, and write it. Returns the 1-based frame number.
    ///
    /// [`Encap`]: super::Encap
    pub fn write_encapsulated(&mut self, layers: &[super::Encap], p: &Packet) -> io::Result<u64> {
        let (frame, wire) = super::encapsulate(layers, &p.ip, p.ip.len());
        self.write_frame_len(p.ts, &frame, wire)
    }

    /// Write all packets in order; returns the frame number of each packet by tag.
    pub fn write_packets<'a>(
        &mut self,
        link: Link,
        packets: impl IntoIterator<Item = &'a Packet>,
    ) -> io::Result<FrameMap> {
        let mut map = FrameMap::new();
        for p in packets {
            let n = self.write_packet(link, p)?;
            map.insert(p.tag, n);
        }
        Ok(map)
    }

    /// Flush and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}
