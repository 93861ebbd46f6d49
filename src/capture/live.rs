//! Live capture from a network interface with libpcap (the `pcap` crate).
//!
//! `LiveSource::open` creates the handle (snaplen, buffered or immediate mode, timeouts, kernel
//! buffer size, promiscuous mode), activates it and sets the BPF filter on it (so the kernel
//! filters). `read` fills a `Packet` like the file reader does, or reports that the read timeout
//! expired (a quiet period: the caller lets capture time advance).
//!
//! By default the capture is buffered, as tcpdump's: on Linux libpcap then uses TPACKET_V3,
//! whose ring holds blocks of packets packed one after the other; the kernel hands a block over
//! when it is full or when the buffer timeout (`buffer_timeout_ms`) expires, so a burst costs
//! one wakeup per block instead of one per packet. A packet can therefore wait in the kernel
//! up to about the buffer timeout: a quiet period lets capture time advance only to the wall
//! clock minus that delay (`delivery_lag`), so no verdict is made final before a packet it
//! depends on has been read. `immediate: true` (`--immediate`) hands over every packet at once
//! (TPACKET_V2, one slot per packet), which drops packets at a much lower rate.
//!
//! Every captured packet can also be written to a pcap file (`-w`, a ring of files with `-C`
//! and `-W`: `ring`), which analysed later as a file gives the same frame numbers, timestamps
//! and therefore the same verdicts. `-Z` drops privileges once the handle is open and before
//! the first file is created (`privileges`).

use super::privileges::{drop_to, lookup_user};
use super::ring::{Ring, RingWriter};
use super::{InputError, Next, Packet, PacketSource, linktype};
use crate::time::Timestamp;
use pcap::{Active, Capture, Device};
use std::fmt;
use std::io;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// Default snapshot length: tcpdump's, so that HTTP heads are never cut.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Default kernel buffer: 32 MiB. Buffered (TPACKET_V3), it is 128 blocks of 256 KiB with
/// packets packed in them: about 50,000 packets of 600 bytes, a third of a second at 150k
/// packets/s. In immediate mode libpcap on Linux uses TPACKET_V2, whose ring has fixed-size
/// slots of the snaplen capped at MTU + 18; on loopback (MTU 65536) and on NICs with receive
/// offload that is ~64 KiB per packet, so 32 MiB holds only ~500 packets. The pages are only
/// resident once used.
pub const DEFAULT_BUFFER_SIZE: u32 = 32 * 1024 * 1024;

/// Default buffer timeout of the buffered mode, in milliseconds: how long the kernel keeps a
/// block that is not full before handing it over (tcpdump uses 1000; short, so that verdicts
/// are not delayed, long enough that a quiet link costs a few wakeups per second).
pub const DEFAULT_BUFFER_TIMEOUT_MS: u32 = 50;

/// How to open the live capture.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name (`any` captures on all interfaces).
    pub interface: String,
    /// BPF filter expression, compiled by libpcap and set on the handle.
    pub filter: Option<String>,
    pub snaplen: u32,
    /// Kernel capture buffer in bytes (libpcap's default, 2 MB, when `None`).
    pub buffer_size: Option<u32>,
    /// Read timeout in milliseconds: how long a read waits in a quiet period.
    pub timeout_ms: u32,
    /// Hand every packet over at once (libpcap's immediate mode) instead of in blocks.
    pub immediate: bool,
    /// Buffered mode: the kernel hands over a block that is not full after this long (ms).
    pub buffer_timeout_ms: u32,
    pub promisc: bool,
    /// Also write every captured packet to this pcap file.
    pub write: Option<String>,
    /// Split the `-w` file by size, in a ring (`-C`, `-W`).
    pub ring: Option<Ring>,
    /// Once the capture is open, run as this user, without capabilities (`-Z`).
    pub user: Option<String>,
}

impl LiveConfig {
    pub fn new(interface: &str) -> LiveConfig {
        LiveConfig {
            interface: interface.to_string(),
            filter: None,
            snaplen: DEFAULT_SNAPLEN,
            buffer_size: Some(DEFAULT_BUFFER_SIZE),
            timeout_ms: 200,
            immediate: false,
            buffer_timeout_ms: DEFAULT_BUFFER_TIMEOUT_MS,
            promisc: true,
            write: None,
            ring: None,
            user: None,
        }
    }
}

/// Kernel counters of the capture (`pcap_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStats {
    /// Packets that passed the filter and reached the capture buffer.
    pub received: u64,
    /// Dropped because the buffer was full (we did not read fast enough).
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

impl CaptureStats {
    pub fn lost(&self) -> u64 {
        self.dropped + self.if_dropped
    }
}

/// Why a live capture could not be started. `Display` gives a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveError {
    /// Not root and no CAP_NET_RAW.
    Permission { interface: String, detail: String },
    /// No such interface; `known` lists those that exist.
    NoSuchInterface {
        interface: String,
        known: Vec<String>,
    },
    /// libpcap could not compile the filter.
    Filter { expr: String, detail: String },
    /// Anything else (interface down, bad -w path, ...).
    Other { interface: String, detail: String },
}

/// The command that grants the capabilities to the binary.
pub fn setcap_hint() -> String {
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "$(which tcprace)".into());
    format!("setcap cap_net_raw,cap_net_admin=eip {exe}")
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::Permission { interface, detail } => write!(
                f,
                "{interface}: no permission to capture ({detail}); live capture needs root or the \
                 CAP_NET_RAW capability, e.g.: sudo {}",
                setcap_hint()
            ),
            LiveError::NoSuchInterface { interface, known } => {
                write!(f, "{interface}: no such interface; ")?;
                if known.is_empty() {
                    write!(f, "no capture interfaces found")
                } else {
                    write!(f, "interfaces: {} (see -D)", known.join(", "))
                }
            }
            LiveError::Filter { expr, detail } => write!(f, "invalid filter \"{expr}\": {detail}"),
            LiveError::Other { interface, detail } => write!(f, "{interface}: {detail}"),
        }
    }
}

impl std::error::Error for LiveError {}

impl From<LiveError> for InputError {
    fn from(e: LiveError) -> InputError {
        let file = match &e {
            LiveError::Permission { interface, .. }
            | LiveError::NoSuchInterface { interface, .. }
            | LiveError::Other { interface, .. } => interface.clone(),
            LiveError::Filter { .. } => String::new(),
        };
        InputError {
            file,
            message: e.to_string(),
        }
    }
}

fn pcap_msg(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    }
}

fn looks_like_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission") || m.contains("not permitted") || m.contains("eperm")
}

fn looks_like_no_device(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("no such device") || m.contains("doesn't exist") || m.contains("does not exist")
}

/// One capture interface as `-D` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    /// "Up", "Running", "Loopback", "Wireless", "Connected", "Disconnected".
    pub flags: Vec<&'static str>,
}

impl fmt::Display for InterfaceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(d) = &self.description {
            write!(f, " ({d})")?;
        }
        write!(f, " [{}]", self.flags.join(", "))
    }
}

/// The interfaces libpcap can capture on, in its order (like `tcpdump -D`).
pub fn list_interfaces() -> Result<Vec<InterfaceInfo>, String> {
    let devs = Device::list().map_err(|e| format!("cannot list interfaces: {}", pcap_msg(e)))?;
    Ok(devs
        .into_iter()
        .map(|d| {
            let fl = &d.flags;
            let mut flags = Vec::new();
            if fl.is_up() {
                flags.push("Up");
            }
            if fl.is_running() {
                flags.push("Running");
            }
            if fl.is_wireless() {
                flags.push("Wireless");
            }
            if fl.is_loopback() {
                flags.push("Loopback");
            }
            match fl.connection_status {
                pcap::ConnectionStatus::Connected => flags.push("Connected"),
                pcap::ConnectionStatus::Disconnected => flags.push("Disconnected"),
                _ => {}
            }
            InterfaceInfo {
                name: d.name,
                description: d.desc,
                flags,
            }
        })
        .collect())
}

/// libpcap returns DLT_ values; the engine speaks LINKTYPE_ (they differ for a few).
fn dlt_to_linktype(dlt: i32) -> u32 {
    const DLT_RAW: i32 = if cfg!(target_os = "openbsd") { 14 } else { 12 };
    match dlt {
        DLT_RAW => linktype::RAW,
        11 => 100, // ATM_RFC1483
        15 => 102, // SLIP_BSDOS
        16 => 103, // PPP_BSDOS
        d => d as u32,
    }
}

/// libpcap's name of a data link type (e.g. "EN10MB").
fn datalink_name(dlt: i32) -> String {
    pcap::Linktype(dlt)
        .get_name()
        .unwrap_or_else(|_| format!("DLT {dlt}"))
}

/// A live capture handle, optionally writing what it captures to a pcap file.
pub struct LiveSource {
    cap: Capture<Active>,
    names: Vec<String>,
    /// The packet last read (the bytes are copied out of libpcap's ring).
    pkt: Packet,
    dlt: i32,
    linktype: u32,
    frame: u64,
    savefile: Option<RingWriter>,
    last_flush: Instant,
    timeout_ms: i32,
    /// How long a packet can wait in the kernel before it can be read (buffered mode).
    delivery_lag: f64,
}

/// How often the `-w` file is flushed (also on every quiet period and at the end).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

impl LiveSource {
    /// Open and activate the capture, set the filter, create the `-w` file.
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, LiveError> {
        let iface = cfg.interface.clone();
        let other = |detail: String| LiveError::Other {
            interface: iface.clone(),
            detail,
        };
        // Unknown names are reported with the list (libpcap's own message is vague).
        if iface != "any"
            && let Ok(list) = Device::list()
            && !list.is_empty()
            && !list.iter().any(|d| d.name == iface)
        {
            return Err(LiveError::NoSuchInterface {
                interface: iface.clone(),
                known: list.into_iter().map(|d| d.name).collect(),
            });
        }
        let classify = |msg: String| {
            if looks_like_permission(&msg) {
                LiveError::Permission {
                    interface: iface.clone(),
                    detail: msg,
                }
            } else if looks_like_no_device(&msg) {
                LiveError::NoSuchInterface {
                    interface: iface.clone(),
                    known: Device::list()
                        .map(|l| l.into_iter().map(|d| d.name).collect())
                        .unwrap_or_default(),
                }
            } else {
                other(msg)
            }
        };
        let user = cfg
            .user
            .as_deref()
            .map(lookup_user)
            .transpose()
            .map_err(other)?;
        let inactive = Capture::from_device(iface.as_str()).map_err(|e| classify(pcap_msg(e)))?;
        let snaplen = i32::try_from(cfg.snaplen.max(1)).unwrap_or(i32::MAX);
        // buffered: the timeout is the block's; immediate: it does not matter (we poll)
        let timeout = if cfg.immediate {
            cfg.timeout_ms
        } else {
            cfg.buffer_timeout_ms
        };
        let mut inactive = inactive
            .snaplen(snaplen)
            .promisc(cfg.promisc)
            .immediate_mode(cfg.immediate)
            .timeout(i32::try_from(timeout.max(1)).unwrap_or(1000));
        if let Some(b) = cfg.buffer_size {
            inactive = inactive.buffer_size(i32::try_from(b).unwrap_or(i32::MAX));
        }
        let cap = inactive.open().map_err(|e| {
            let msg = pcap_msg(e);
            if msg.is_empty() {
                other("cannot activate the capture (interface down or not supported?)".into())
            } else {
                classify(msg)
            }
        })?;
        // libpcap 1.10 keeps polling through read timeouts in immediate mode, so we read in
        // non-blocking mode and wait with our own poll(2) (in buffered mode the descriptor is
        // readable once a block is handed over).
        let mut cap = cap
            .setnonblock()
            .map_err(|e| other(format!("cannot set non-blocking mode: {}", pcap_msg(e))))?;
        if let Some(expr) = &cfg.filter {
            cap.filter(expr, true).map_err(|e| LiveError::Filter {
                expr: expr.clone(),
                detail: pcap_msg(e),
            })?;
        }
        // as tcpdump: the -w files are created as the user privileges are dropped to
        if let Some(user) = &user {
            drop_to(user).map_err(other)?;
        }
        let savefile = match &cfg.write {
            Some(path) => Some(RingWriter::create(&cap, path, cfg.ring).map_err(other)?),
            None => None,
        };
        let dlt = cap.get_datalink().0;
        Ok(LiveSource {
            cap,
            names: vec![iface],
            pkt: Packet::default(),
            dlt,
            linktype: dlt_to_linktype(dlt),
            frame: 0,
            savefile,
            last_flush: Instant::now(),
            timeout_ms: i32::try_from(cfg.timeout_ms.max(1)).unwrap_or(1000),
            delivery_lag: delivery_lag(cfg),
        })
    }

    /// LINKTYPE_ of the capture.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// libpcap's name of the data link type (e.g. "EN10MB", "LINUX_SLL").
    pub fn datalink_name(&self) -> String {
        datalink_name(self.dlt)
    }

    /// Packets read so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Read the next packet into `self.pkt`; false in a quiet period. Errors are fatal
    /// (interface gone, ...).
    fn read(&mut self) -> Result<bool, InputError> {
        // First try what is already buffered (no syscall per packet in a burst); when nothing
        // is, wait for the descriptor up to the read timeout and try once more.
        if let Some(w) = self.savefile.as_mut() {
            w.rotate_if_full(&self.cap).map_err(|message| InputError {
                file: self.names[0].clone(),
                message,
            })?;
        }
        for attempt in 0..2 {
            match self.cap.next_packet() {
                Ok(p) => {
                    self.frame += 1;
                    let h = p.header;
                    self.pkt.input = 0;
                    self.pkt.frame = self.frame;
                    // time_t/suseconds_t are i64 here but not on every target.
                    #[allow(clippy::useless_conversion)]
                    let (sec, usec) = (i64::from(h.ts.tv_sec), i64::from(h.ts.tv_usec));
                    self.pkt.ts = Timestamp::from_secs_nanos(sec, usec.saturating_mul(1000));
                    self.pkt.linktype = self.linktype;
                    self.pkt.orig_len = h.len.max(h.caplen);
                    self.pkt.data.clear();
                    self.pkt.data.extend_from_slice(p.data);
                    if let Some(w) = self.savefile.as_mut() {
                        w.write(&p);
                    }
                    if self.last_flush.elapsed() >= FLUSH_EVERY {
                        self.flush();
                    }
                    return Ok(true);
                }
                // Non-blocking mode: nothing to read right now.
                Err(pcap::Error::TimeoutExpired) => {
                    if attempt == 1 || !self.ready()? {
                        break;
                    }
                }
                Err(e) => {
                    return Err(InputError {
                        file: self.names[0].clone(),
                        message: format!("capture failed: {}", pcap_msg(e)),
                    });
                }
            }
        }
        self.flush();
        Ok(false)
    }

    /// Wait up to the read timeout for the capture descriptor to become readable.
    /// A signal (EINTR) ends the wait early, so the caller sees a stop flag promptly.
    fn ready(&mut self) -> Result<bool, InputError> {
        let mut pfd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(InputError {
                file: self.names[0].clone(),
                message: format!("capture failed: poll: {e}"),
            });
        }
        // Readable, or an error condition that next_packet reports.
        Ok(n > 0)
    }

    /// Flush the `-w` file (best effort; a full disk shows at exit).
    pub fn flush(&mut self) {
        if let Some(w) = self.savefile.as_mut() {
            let _ = w.flush();
        }
        self.last_flush = Instant::now();
    }

    /// Flush and close the `-w` file; reports a write error.
    pub fn close_savefile(&mut self) -> Result<(), String> {
        match self.savefile.take() {
            Some(mut w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl PacketSource for LiveSource {
    /// The next packet, or `Idle` when nothing arrived within the read timeout.
    fn next(&mut self) -> Result<Next<'_>, InputError> {
        if self.read()? {
            Ok(Next::Packet(self.pkt.as_ref()))
        } else {
            // nothing was waiting in the buffer: every packet captured before now (less what
            // the kernel may still hold in a block) has been read
            Ok(Next::Idle(wall_clock().add_secs(-self.delivery_lag)))
        }
    }

    /// One input: the interface; `PacketRef::input` is 0.
    fn inputs(&self) -> &[String] {
        &self.names
    }

    /// Kernel counters (received, dropped, dropped by the interface).
    fn kernel_stats(&mut self) -> Option<CaptureStats> {
        self.cap.stats().ok().map(|s| CaptureStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }
}

/// Seconds a captured packet can wait in the kernel before it is readable: none in immediate
/// mode; in buffered mode up to the block timeout, which the kernel's retire timer can overrun
/// by up to one more period, plus a margin for scheduling.
fn delivery_lag(cfg: &LiveConfig) -> f64 {
    if cfg.immediate {
        0.0
    } else {
        2.0 * f64::from(cfg.buffer_timeout_ms.max(1)) / 1000.0 + 0.01
    }
}

fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_mapping() {
        assert_eq!(dlt_to_linktype(1), linktype::ETHERNET);
        assert_eq!(dlt_to_linktype(113), linktype::LINUX_SLL);
        assert_eq!(dlt_to_linktype(276), linktype::LINUX_SLL2);
        if cfg!(target_os = "linux") {
            assert_eq!(dlt_to_linktype(12), linktype::RAW);
        }
    }

    #[test]
    fn quiet_periods_lag_the_wall_clock_by_the_block_timeout() {
        let mut cfg = LiveConfig::new("lo");
        assert!(!cfg.immediate, "buffered by default");
        assert!((delivery_lag(&cfg) - 0.11).abs() < 1e-9);
        cfg.buffer_timeout_ms = 1000;
        assert!((delivery_lag(&cfg) - 2.01).abs() < 1e-9);
        cfg.immediate = true;
        assert_eq!(delivery_lag(&cfg), 0.0);
    }

    #[test]
    fn error_messages() {
        let e = LiveError::NoSuchInterface {
            interface: "nope0".into(),
            known: vec!["eth0".into(), "lo".into()],
        };
        assert_eq!(
            e.to_string(),
            "nope0: no such interface; interfaces: eth0, lo (see -D)"
        );
        let e = LiveError::Permission {
            interface: "eth0".into(),
            detail: "socket: Operation not permitted".into(),
        };
        let s = e.to_string();
        assert!(s.contains("CAP_NET_RAW") && s.contains("setcap cap_net_raw,cap_net_admin=eip"));
        assert!(looks_like_permission("socket: Operation not permitted"));
        assert!(looks_like_permission(
            "You don't have permission to perform this capture on that device"
        ));
        assert!(looks_like_no_device("SIOCGIFHWADDR: No such device"));
        let e = LiveError::Filter {
            expr: "tcp prot 80".into(),
            detail: "syntax error".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid filter \"tcp prot 80\": syntax error"
        );
    }
}
