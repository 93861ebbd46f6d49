//! Live metrics in Prometheus' exposition format (`--metrics ADDR`), for a tcprace that runs for
//! days on a proxy host: findings, requests and idle closes per server, and the capture's
//! health (packets, kernel and interface drops, open connections, evictions).
//!
//! [`Metrics`] holds the families (prometheus-client). It is fed from three places, none of
//! which knows about Prometheus:
//! - the detect stage tells it of each request and idle close as it sees them, on whichever
//!   shard ([`DetectObserver`]);
//! - findings reach it as they become final, through [`CountingRenderer`] in front of the
//!   output's renderer;
//! - the live driver copies its running totals and the kernel's counters into it now and then
//!   ([`Metrics::update_capture`]).
//!
//! [`serve`] answers `GET /metrics` over HTTP (tiny_http) on a thread of its own.
//!
//! Label cardinality is bounded: the first `max_servers` servers seen get their own `server`
//! label, the others are counted together as `server="other"`.

mod renderer;
mod server;

#[cfg(test)]
mod tests;

pub use renderer::CountingRenderer;
pub use server::{MetricsServer, serve};

use crate::capture::CaptureStats;
use crate::detect::DetectObserver;
use crate::report::schema::Finding;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// Servers with a label of their own, by default; the rest are `other`.
pub const DEFAULT_MAX_SERVERS: usize = 100;

/// The label of the servers beyond the limit.
pub const OTHER: &str = "other";

/// Upper bounds of the idle-close histogram's buckets, in seconds: around the usual keep-alive
/// timeouts (gunicorn 2, Node and Apache 5, AWS ALB 60, nginx 75, ...).
const IDLE_BUCKETS: [f64; 16] = [
    0.5, 1.0, 2.0, 4.0, 5.0, 10.0, 15.0, 30.0, 60.0, 75.0, 90.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    server: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

fn idle_histogram() -> Histogram {
    Histogram::new(IDLE_BUCKETS)
}

/// The metrics of one server label (handles sharing the families' values).
#[derive(Clone)]
struct ServerMetrics {
    label: String,
    requests: Counter,
    idle_closes: Histogram,
}

/// The kernel's and the analysis's totals as last copied (counters grow by the difference).
#[derive(Default)]
struct Totals {
    packets: u64,
    kernel: CaptureStats,
    evicted: u64,
}

/// The metrics of a live run, shared by the analysis threads and the HTTP server.
pub struct Metrics {
    registry: Registry,
    max_servers: usize,
    servers: Mutex<HashMap<SocketAddr, ServerMetrics>>,
    other: ServerMetrics,
    requests: Family<ServerLabel, Counter>,
    idle_closes: Family<ServerLabel, Histogram, fn() -> Histogram>,
    findings: Family<FindingLabels, Counter>,
    packets: Counter,
    kernel_received: Counter,
    kernel_dropped: Counter,
    interface_dropped: Counter,
    open_connections: Gauge,
    evicted: Counter,
    totals: Mutex<Totals>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("max_servers", &self.max_servers)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The families, registered; at most `max_servers` server labels besides `other`.
    pub fn new(max_servers: usize) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<ServerLabel, Counter>::default();
        let idle_closes = Family::<ServerLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            idle_histogram,
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "tcprace_findings",
            "Requests sent on connections the server had already closed, by server, kind and \
             outcome, counted when their verdict is final",
            findings.clone(),
        );
        registry.register(
            "tcprace_requests",
            "HTTP requests seen, by server",
            requests.clone(),
        );
        registry.register(
            "tcprace_idle_close_seconds",
            "How long the connections a server closed had been idle (the count is the server's \
             idle closes)",
            idle_closes.clone(),
        );
        let other = ServerMetrics {
            label: OTHER.into(),
            requests: requests.get_or_create_owned(&ServerLabel {
                server: OTHER.into(),
            }),
            idle_closes: idle_closes.get_or_create_owned(&ServerLabel {
                server: OTHER.into(),
            }),
        };
        let m = Metrics {
            max_servers,
            servers: Mutex::new(HashMap::new()),
            other,
            requests,
            idle_closes,
            findings,
            packets: Counter::default(),
            kernel_received: Counter::default(),
            kernel_dropped: Counter::default(),
            interface_dropped: Counter::default(),
            open_connections: Gauge::default(),
            evicted: Counter::default(),
            totals: Mutex::new(Totals::default()),
            registry,
        };
        m.register_capture()
    }

    /// The capture's and the analysis's health, and the version.
    fn register_capture(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "tcprace_packets",
            "Packets captured and analysed",
            self.packets.clone(),
        );
        r.register(
            "tcprace_kernel_received",
            "Packets that reached the capture buffer (pcap_stats ps_recv)",
            self.kernel_received.clone(),
        );
        r.register(
            "tcprace_kernel_dropped",
            "Packets the kernel dropped because the capture buffer was full (ps_drop)",
            self.kernel_dropped.clone(),
        );
        r.register(
            "tcprace_interface_dropped",
            "Packets the interface or its driver dropped (ps_ifdrop)",
            self.interface_dropped.clone(),
        );
        r.register(
            "tcprace_open_connections",
            "TCP connections tracked now",
            self.open_connections.clone(),
        );
        r.register(
            "tcprace_connections_evicted",
            "Connections finished early because --max-connections was reached",
            self.evicted.clone(),
        );
        let info = Family::<VersionLabel, Gauge>::default();
        info.get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        r.register("tcprace_build_info", "tcprace's version", info);
        self
    }

    /// The metrics of `server`: its own, or `other` once `max_servers` have their own.
    fn server(&self, server: SocketAddr) -> ServerMetrics {
        let Ok(mut known) = self.servers.lock() else {
            return self.other.clone();
        };
        if let Some(m) = known.get(&server) {
            return m.clone();
        }
        if known.len() >= self.max_servers {
            return self.other.clone();
        }
        let label = ServerLabel {
            server: server.to_string(),
        };
        let m = ServerMetrics {
            requests: self.requests.get_or_create_owned(&label),
            idle_closes: self.idle_closes.get_or_create_owned(&label),
            label: label.server,
        };
        known.insert(server, m.clone());
        m
    }

    /// Count a finding whose verdict is final (informational verdicts are not counted).
    pub fn finding(&self, f: &Finding) {
        if !f.kind.is_finding() {
            return;
        }
        let server = f
            .connection
            .server_ip
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, f.connection.server_port));
        let label = match server {
            Ok(s) => self.server(s).label,
            Err(_) => OTHER.into(),
        };
        self.findings
            .get_or_create(&FindingLabels {
                server: label,
                kind: f.kind.as_str(),
                outcome: f.outcome.as_str(),
            })
            .inc();
    }

    /// Copy the running totals: packets analysed, connections open and evicted, the kernel's
    /// counters (when the source has them).
    pub fn update_capture(
        &self,
        packets: u64,
        open: usize,
        evicted: u64,
        kernel: Option<CaptureStats>,
    ) {
        let Ok(mut t) = self.totals.lock() else {
            return;
        };
        grow(&self.packets, &mut t.packets, packets);
        grow(&self.evicted, &mut t.evicted, evicted);
        if let Some(k) = kernel {
            grow(&self.kernel_received, &mut t.kernel.received, k.received);
            grow(&self.kernel_dropped, &mut t.kernel.dropped, k.dropped);
            grow(
                &self.interface_dropped,
                &mut t.kernel.if_dropped,
                k.if_dropped,
            );
        }
        self.open_connections
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// The exposition (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // writing to a String does not fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Add to `counter` what `total` grew by since `last`. A total that went down (libpcap's 32-bit
/// counters wrap) starts over from there.
fn grow(counter: &Counter, last: &mut u64, total: u64) {
    counter.inc_by(total.saturating_sub(*last));
    *last = total;
}

impl DetectObserver for Metrics {
    fn request(&self, server: SocketAddr) {
        self.server(server).requests.inc();
    }

    fn idle_close(&self, server: SocketAddr, idle_s: f64) {
        self.server(server).idle_closes.observe(idle_s);
    }
}
