//! Per server endpoint statistics: idle closes, reuses, GOAWAYs and the advice.

use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Per server endpoint statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct EndpointStats {
    /// `"IP:port"` (`"[IPv6]:port"`).
    pub server: String,
    pub server_ip: String,
    pub server_port: u16,
    pub connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub idle_closes: IdleCloses,
    /// The longest idle time after which a client reused a connection (sent another request).
    pub max_reuse_idle_s: Option<f64>,
    /// Distinct `Keep-Alive` header values in responses (the first 8 in sort order).
    pub keep_alive: BTreeSet<String>,
    pub findings: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    /// HTTP/2: the server's GOAWAYs (present when it sent any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goaways: Option<GoAwayStats>,
    pub recommendation: Option<String>,
    /// Distinct `Server` header values in responses (the first 8 in sort order).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub server_software: BTreeSet<String>,
    /// How long connections idled before the server closed them, as a histogram.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub idle_close_histogram: Histogram,
    /// How long connections idled before a client reused them (sent another request).
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub reuse_idle_histogram: Histogram,
    /// What to change, in settings of the software involved, with a what-if.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

/// Counts of durations in logarithmic bins (`BINS_PER_DECADE` per power of ten): each entry
/// is (lower edge in seconds, count), in order, empty bins left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct Histogram {
    pub bins_per_decade: u32,
    pub bins: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.bins.iter().map(|b| b.1).sum()
    }

    /// The upper edge of the bin whose lower edge is `lower`.
    pub fn upper(&self, lower: f64) -> f64 {
        lower * 10f64.powf(1.0 / f64::from(self.bins_per_decade.max(1)))
    }

    /// Counts at or above `s` (bins whose lower edge is at least `s`).
    pub fn at_least(&self, s: f64) -> u64 {
        self.bins
            .iter()
            .filter(|b| b.0 >= s * (1.0 - 1e-9))
            .map(|b| b.1)
            .sum()
    }
}

/// What to change, for an endpoint with races: the software on both ends (when it can be
/// told), the settings with values derived from the measured idle closes, and what the
/// suggested client timeout would have avoided.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Advice {
    /// The software that closes idle connections (the upstream), and how it was told.
    pub server_software: Option<Software>,
    /// The client's (proxy's) software, and how it was told.
    pub client_software: Option<Software>,
    /// The shortest idle close measured.
    pub idle_close_min_s: f64,
    /// The client's idle timeout to set: below the server's idle closes by a margin.
    pub client_idle_timeout_s: f64,
    /// The server's idle timeout to set instead: above the longest client reuse seen.
    pub server_idle_timeout_s: f64,
    pub settings: Vec<Setting>,
    pub what_if: WhatIf,
}

/// A software named in the advice.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Software {
    pub name: &'static str,
    /// What told it (e.g. "Server: gunicorn").
    pub evidence: String,
}

/// One setting to change.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Setting {
    /// "client" (the proxy's idle timeout for upstream connections) or "server".
    pub side: &'static str,
    pub software: &'static str,
    /// The setting and its value as written in the software's configuration.
    pub setting: String,
}

/// With the client's idle timeout at `client_idle_timeout_s`, the reuses the client would not
/// have made (it would have closed the connection first), from the measured reuse idle times.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct WhatIf {
    pub client_idle_timeout_s: f64,
    pub reuses: u64,
    pub reuses_avoided: u64,
    /// Race findings on this endpoint and how many of them that timeout would have avoided.
    pub races: u64,
    pub races_avoided: u64,
}

/// An HTTP/2 server's GOAWAYs, one per connection (its first), by cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct GoAwayStats {
    pub count: u64,
    /// "idle" (no stream open: the connection had idled, see `idle`), "request_limit" (after
    /// the same number of requests on most connections, see `requests_per_connection`),
    /// "error" (an error code other than NO_ERROR, see `errors`), "other" (streams were open:
    /// a shutdown). Of at most 4096 connections (a deterministic sample beyond that).
    pub by_cause: BTreeMap<&'static str, u64>,
    /// The idle time before the idle GOAWAYs.
    pub idle: IdleCloses,
    /// Inferred: the server sends GOAWAY after this many requests on a connection.
    pub requests_per_connection: Option<u32>,
    /// GOAWAYs with an error code, by its name.
    pub errors: BTreeMap<&'static str, u64>,
}

/// Idle closes by the server: FINs with no request outstanding, after a keep-alive response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct IdleCloses {
    pub count: u64,
    pub min_s: Option<f64>,
    /// Of at most 4096 samples (a deterministic sample beyond that).
    pub median_s: Option<f64>,
    pub max_s: Option<f64>,
}
