//! The results of analysing the input or a shard of it, and their merge into the report.

use crate::app::h2::H2Stats;
use crate::app::tls::TlsStats;
use crate::capture::Warning;
use crate::detect::{DetectStats, EndpointTally, FindingTally, merge_endpoints};
use crate::flow::FlowStats;
use crate::report::schema::{Finding, Kind, Outcome, Report, SCHEMA_VERSION, Summary, Tool};
use crate::time::Timestamp;
use std::collections::BTreeMap;

/// Warnings kept in the report (all are counted).
pub(crate) const MAX_KEPT_WARNINGS: usize = 100;
/// Informational records kept in the report: the first ones in the order of the capture (all
/// are counted, by kind).
pub(crate) const MAX_KEPT_INFORMATIONAL: usize = 1000;

/// Where a warning belongs in the input: (ordinal of the last analysed packet, n), n = 0 for
/// the warning about that packet itself and 1, 2, ... for those that followed it. Orders the
/// warnings of shards of the input as the whole input would.
pub type WarningKey = (u64, u64);

/// The results of the analysis of a shard of the input (the whole input when there is one):
/// counters, warnings and final verdicts as they accumulate, endpoint statistics and stage
/// counters at the end. Shards merge ([`merge`]) to what one analyzer over the whole input
/// gives.
#[derive(Debug, Default)]
pub struct ShardResult {
    pub(super) inputs: Vec<String>,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) tcp_segments: u64,
    pub(super) first_ts: Option<Timestamp>,
    pub(super) last_ts: Option<Timestamp>,
    pub(super) skipped: BTreeMap<&'static str, u64>,
    pub(super) warnings: Vec<(WarningKey, Warning)>,
    pub(super) warnings_total: u64,
    pub(super) findings: Vec<Finding>,
    pub(super) informational: Vec<Finding>,
    /// Final verdicts counted: findings, informational records, by kind and by outcome.
    pub(super) verdicts: VerdictCounts,
    pub(super) endpoints: Vec<EndpointTally>,
    pub(super) flow: FlowStats,
    pub(super) detect: DetectStats,
    /// What the final findings add to their servers' statistics (the verdict stage's).
    pub(super) found: FindingTally,
    pub(super) tls: TlsStats,
    pub(super) h2: H2Stats,
}

impl ShardResult {
    pub(super) fn new(inputs: Vec<String>) -> ShardResult {
        ShardResult {
            inputs,
            ..ShardResult::default()
        }
    }

    /// A packet of `len` bytes on the wire, captured at `ts`.
    pub(super) fn count_packet(&mut self, len: u32, ts: Timestamp) {
        self.packets += 1;
        self.bytes += u64::from(len);
        if self.first_ts.is_none_or(|f| ts < f) {
            self.first_ts = Some(ts);
        }
        if self.last_ts.is_none_or(|l| ts > l) {
            self.last_ts = Some(ts);
        }
    }

    pub(super) fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub(super) fn warn_at(&mut self, key: WarningKey, w: Warning) {
        self.warnings_total += 1;
        if self.warnings.len() < MAX_KEPT_WARNINGS {
            self.warnings.push((key, w));
        }
    }

    /// A final verdict, counted; kept unless it is a finding and `keep_findings` is false
    /// (streamed output that has written it), or an informational record beyond the first
    /// `MAX_KEPT_INFORMATIONAL` in the order of the capture.
    pub(super) fn add_verdict(&mut self, f: Finding, keep_findings: bool) {
        self.verdicts.count(&f);
        if f.kind.is_finding() {
            if keep_findings {
                self.findings.push(f);
            }
        } else {
            self.informational.push(f);
            if self.informational.len() >= 2 * MAX_KEPT_INFORMATIONAL {
                self.trim_informational();
            }
        }
    }

    /// Keep the first `MAX_KEPT_INFORMATIONAL` informational records, in report order.
    fn trim_informational(&mut self) {
        let inputs = &self.inputs;
        self.informational.sort_by_key(|f| report_order(inputs, f));
        self.informational.truncate(MAX_KEPT_INFORMATIONAL);
    }

    /// Add another shard's results.
    fn absorb(&mut self, p: ShardResult) {
        if self.inputs.is_empty() {
            self.inputs = p.inputs;
        }
        self.packets += p.packets;
        self.bytes += p.bytes;
        self.tcp_segments += p.tcp_segments;
        self.first_ts = match (self.first_ts, p.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ts = match (self.last_ts, p.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (k, n) in p.skipped {
            *self.skipped.entry(k).or_default() += n;
        }
        self.warnings.extend(p.warnings);
        self.warnings_total += p.warnings_total;
        self.findings.extend(p.findings);
        self.informational.extend(p.informational);
        self.verdicts.add(&p.verdicts);
        self.flow.add(&p.flow);
        self.detect.add(&p.detect);
        self.tls.add(&p.tls);
        self.found.absorb(p.found);
        self.h2.add(&p.h2);
    }

    /// Findings in the order of the report: input, frame, connection, request.
    fn sort_findings(&mut self) {
        let inputs = &self.inputs;
        self.findings.sort_by_key(|f| report_order(inputs, f));
        self.trim_informational();
    }
}

/// Where a finding is in the report: input, frame, connection, request.
fn report_order(inputs: &[String], f: &Finding) -> (Option<usize>, u64, u64, u32) {
    (
        inputs.iter().position(|i| *i == f.request.file),
        f.request.frame,
        f.connection.id,
        f.request.index,
    )
}

/// Final verdicts counted.
#[derive(Debug, Default)]
pub(super) struct VerdictCounts {
    findings: u64,
    informational: u64,
    by_kind: BTreeMap<&'static str, u64>,
    by_outcome: BTreeMap<&'static str, u64>,
}

impl VerdictCounts {
    fn count(&mut self, f: &Finding) {
        *self.by_kind.entry(f.kind.as_str()).or_default() += 1;
        if f.kind.is_finding() {
            self.findings += 1;
            *self.by_outcome.entry(f.outcome.as_str()).or_default() += 1;
        } else {
            self.informational += 1;
        }
    }

    fn add(&mut self, other: &VerdictCounts) {
        self.findings += other.findings;
        self.informational += other.informational;
        for (k, n) in &other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
        }
        for (k, n) in &other.by_outcome {
            *self.by_outcome.entry(k).or_default() += n;
        }
    }

    /// Findings so far.
    pub(super) fn findings(&self) -> u64 {
        self.findings
    }
}

/// The report of the whole input from the results of its shards (every connection, and every
/// request that may be retried on another connection, analysed in one shard, with global
/// ordinals and capture time). Equal to what one analyzer over the whole input gives.
pub fn merge(shards: Vec<ShardResult>) -> Report {
    let mut all = ShardResult::default();
    let mut endpoints = Vec::with_capacity(shards.len());
    for mut p in shards {
        endpoints.push(std::mem::take(&mut p.endpoints));
        all.absorb(p);
    }
    all.sort_findings();
    // each shard kept its first warnings: the first of all are among them
    all.warnings.sort_by_key(|(k, _)| *k);
    let warnings = all
        .warnings
        .drain(..)
        .take(MAX_KEPT_WARNINGS)
        .map(|(_, w)| w)
        .collect();
    let found = std::mem::take(&mut all.found);
    let (endpoints, recommendations) = merge_endpoints(endpoints, found);
    build_report(all, endpoints, recommendations, warnings)
}

/// The report from the merged results (findings sorted).
fn build_report(
    p: ShardResult,
    endpoints: Vec<crate::report::schema::EndpointStats>,
    recommendations: Vec<String>,
    warnings: Vec<Warning>,
) -> Report {
    let summary = summary(&p);
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        inputs: p.inputs,
        summary,
        findings: p.findings,
        informational: p.informational,
        endpoints,
        recommendations,
        skipped: p.skipped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        tcp: p.flow,
        http: p.detect,
        tls: p.tls,
        http2: p.h2,
        warnings,
        capture: None,
        provenance: None,
        flagged: None,
    }
}

fn summary(p: &ShardResult) -> Summary {
    let mut by_kind: BTreeMap<&'static str, u64> =
        Kind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    let mut by_outcome: BTreeMap<&'static str, u64> =
        Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
    for (k, n) in &p.verdicts.by_kind {
        *by_kind.entry(k).or_default() += n;
    }
    for (o, n) in &p.verdicts.by_outcome {
        *by_outcome.entry(o).or_default() += n;
    }
    Summary {
        packets: p.packets,
        bytes: p.bytes,
        tcp_segments: p.tcp_segments,
        first_packet_time: p.first_ts,
        last_packet_time: p.last_ts,
        duration_s: match (p.first_ts, p.last_ts) {
            (Some(a), Some(b)) => b.secs_since(a),
            _ => 0.0,
        },
        connections: p.flow.connections,
        http_connections: p.detect.http_connections,
        requests: p.detect.requests,
        responses: p.detect.responses,
        findings: p.verdicts.findings,
        informational: p.verdicts.informational,
        by_kind,
        by_outcome,
        skipped_packets: p.skipped.values().sum(),
        warnings: p.warnings_total,
    }
}
