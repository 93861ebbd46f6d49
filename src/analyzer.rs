//! The engine: drives one packet at a time through decode -> flow -> http -> detect, and
//! assembles the report. It knows nothing of where packets come from, so files, stdin and live
//! interfaces feed it alike; verdicts become final as capture time passes (`findings_since`).

use crate::capture::{Packet, PacketRef, Warning};
use crate::decode::{self, Decoded, SkipReason};
use crate::detect::{
    Closes, ConnDetect, DetectConfig, DetectStats, Detector, EndpointStats, Finding, Kind,
};
use crate::flow::{
    ConnInfo, EndReason, FlowEvent, FlowHandler, FlowStats, FlowTable, FrameRef, TableConfig,
    Tracked,
};
use crate::http::{HttpEvent, HttpStream, Side};
use crate::report::{Report, Summary};
use crate::time::Timestamp;
use std::collections::BTreeMap;

/// Settings of the engine.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub detect: DetectConfig,
    pub table: TableConfig,
}

/// Later stages' state of one connection.
#[derive(Default)]
struct ConnState {
    http: [Option<HttpStream>; 2],
    det: ConnDetect,
}

/// Warnings kept in the report (all are counted).
const MAX_KEPT_WARNINGS: usize = 100;

/// Where a warning belongs in the input: (ordinal of the last analysed packet, n), n = 0 for
/// the warning about that packet itself and 1, 2, ... for those that followed it. Orders the
/// warnings of parts of the input (shards) as the whole input would.
pub type WarningKey = (u64, u64);

/// The analysis engine.
pub struct Analyzer {
    table: FlowTable<ConnState>,
    det: Detector,
    events: Vec<HttpEvent>,
    now: Timestamp,
    last_tick: Timestamp,
    /// Counters, warnings and final verdicts so far (the rest of it is filled at the end).
    acc: Parts,
}

impl Analyzer {
    pub fn new(cfg: Config, inputs: Vec<String>) -> Analyzer {
        Analyzer {
            table: FlowTable::new(cfg.table),
            det: Detector::new(cfg.detect, inputs.clone()),
            events: Vec::new(),
            now: Timestamp::default(),
            last_tick: Timestamp::default(),
            acc: Parts {
                inputs,
                ..Parts::default()
            },
        }
    }

    /// Count a packet that was not analysed (filtered out, or not decodable).
    pub fn skip(&mut self, reason: &'static str) {
        *self.acc.skipped.entry(reason).or_default() += 1;
    }

    /// Record a problem with the input.
    pub fn warn(&mut self, w: Warning) {
        self.warn_at((self.acc.packets, 1), w);
    }

    /// Record a problem with the input at its place `key` in the input (warnings of a part
    /// of the input, to be merged).
    pub fn warn_at(&mut self, key: WarningKey, w: Warning) {
        self.acc.warnings_total += 1;
        if self.acc.warnings.len() < MAX_KEPT_WARNINGS {
            self.acc.warnings.push((key, w));
        }
    }

    /// Connections currently tracked.
    pub fn open_connections(&self) -> usize {
        self.table.open_connections()
    }

    pub fn packets(&self) -> u64 {
        self.acc.packets
    }

    /// HTTP requests seen so far (for running totals).
    pub fn requests(&self) -> u64 {
        self.det.stats.requests
    }

    /// Analyse one packet. Returns a warning when the packet was malformed.
    pub fn on_packet(&mut self, pkt: &Packet) -> Option<Warning> {
        self.on_packet_ref(pkt.as_ref())
    }

    /// `on_packet` for a packet borrowed from its source.
    pub fn on_packet_ref(&mut self, pkt: PacketRef<'_>) -> Option<Warning> {
        let now = self.now.max(pkt.ts);
        let warning = self.on_packet_at(pkt, self.acc.packets + 1, now);
        if self.now.secs_since(self.last_tick) >= 0.1 {
            self.tick(self.now);
        }
        warning
    }

    /// Analyse one packet of a part of the input (a shard): `ordinal` is its position among
    /// the analysed packets of the whole input, `now` the capture time of the whole input
    /// (the latest timestamp so far, this packet's included). Time does not advance by itself:
    /// the caller calls [`Analyzer::tick`] when the whole input's analyzer would.
    pub fn on_packet_at(
        &mut self,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
    ) -> Option<Warning> {
        self.acc.packets += 1;
        self.acc.bytes += u64::from(pkt.orig_len);
        if self.acc.first_ts.is_none_or(|f| pkt.ts < f) {
            self.acc.first_ts = Some(pkt.ts);
        }
        if self.acc.last_ts.is_none_or(|l| pkt.ts > l) {
            self.acc.last_ts = Some(pkt.ts);
        }
        self.now = self.now.max(now);
        let mut warning = None;
        match decode::decode(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Skip(reason, detail) => {
                self.skip(reason.as_str());
                if reason == SkipReason::Malformed {
                    let w = Warning {
                        file: self.input_name(pkt.input),
                        frame: Some(pkt.frame),
                        message: format!(
                            "malformed packet: {}",
                            detail.unwrap_or_else(|| "bad headers".into())
                        ),
                    };
                    self.warn_at((ordinal, 0), w.clone());
                    warning = Some(w);
                }
            }
            Decoded::Tcp(seg) => {
                self.acc.tcp_segments += 1;
                let at = FrameRef {
                    input: pkt.input as u32,
                    frame: pkt.frame,
                    ordinal,
                    ts: pkt.ts,
                };
                let mut stages = Stages {
                    det: &mut self.det,
                    events: &mut self.events,
                    now: self.now,
                };
                self.table.process(&seg, at, &mut stages);
            }
        }
        warning
    }

    /// Let capture time advance to `now` (also called by live sources in quiet periods):
    /// closed connections are finished and verdicts whose retry window closed become final.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        self.last_tick = self.now;
        let now = self.now;
        let mut stages = Stages {
            det: &mut self.det,
            events: &mut self.events,
            now,
        };
        self.table.expire(now, &mut stages);
        self.det.tick(now);
        self.collect();
    }

    fn collect(&mut self) {
        for f in self.det.take_ready() {
            if f.kind.is_finding() {
                self.acc.findings.push(f);
            } else {
                self.acc.informational.push(f);
            }
        }
    }

    /// Final findings from position `since` on (pass the `finding_count` of the last call to
    /// stream them as they become final). They stay in the final report as well.
    pub fn findings_since(&self, since: usize) -> &[Finding] {
        &self.acc.findings[since.min(self.acc.findings.len())..]
    }

    /// Number of final findings so far.
    pub fn finding_count(&self) -> usize {
        self.acc.findings.len()
    }

    fn input_name(&self, input: usize) -> String {
        self.acc.inputs.get(input).cloned().unwrap_or_default()
    }

    /// End of input: finish every connection and build the report.
    pub fn finish(self) -> Report {
        let now = self.now;
        merge(vec![self.into_parts(now)])
    }

    /// End of input of a part of the input (a shard), whose capture time is `now`: finish
    /// every connection and return the results, to be merged with the other parts' by
    /// [`merge`].
    pub fn into_parts(mut self, now: Timestamp) -> Parts {
        let now = self.now.max(now);
        self.now = now;
        let mut stages = Stages {
            det: &mut self.det,
            events: &mut self.events,
            now,
        };
        self.table.drain(&mut stages);
        let endpoints = self.det.finish();
        self.collect();
        Parts {
            endpoints,
            flow: self.table.stats,
            detect: self.det.stats,
            ..self.acc
        }
    }
}

/// The results of the analysis of a part of the input (from [`Analyzer::into_parts`]).
#[derive(Debug, Default)]
pub struct Parts {
    inputs: Vec<String>,
    packets: u64,
    bytes: u64,
    tcp_segments: u64,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    skipped: BTreeMap<&'static str, u64>,
    warnings: Vec<(WarningKey, Warning)>,
    warnings_total: u64,
    findings: Vec<Finding>,
    informational: Vec<Finding>,
    endpoints: Vec<EndpointStats>,
    flow: FlowStats,
    detect: DetectStats,
}

impl Parts {
    /// Findings in the order of the report: input, frame, connection, request.
    fn sort_findings(&mut self) {
        let inputs = &self.inputs;
        let order = |f: &Finding| {
            (
                inputs.iter().position(|i| *i == f.request.file),
                f.request.frame,
                f.connection.id,
                f.request.index,
            )
        };
        self.findings.sort_by_key(order);
        self.informational.sort_by_key(order);
    }
}

/// The report of the whole input from the parts it was split into (shards: every connection,
/// and every request that may be retried on another connection, analysed in one part, with
/// global ordinals and capture time). Equal to what one [`Analyzer`] over the whole input gives.
pub fn merge(parts: Vec<Parts>) -> Report {
    let mut all = Parts::default();
    let mut endpoints = Vec::with_capacity(parts.len());
    for p in parts {
        if all.inputs.is_empty() {
            all.inputs = p.inputs;
        }
        all.packets += p.packets;
        all.bytes += p.bytes;
        all.tcp_segments += p.tcp_segments;
        all.first_ts = match (all.first_ts, p.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.last_ts = match (all.last_ts, p.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (k, n) in p.skipped {
            *all.skipped.entry(k).or_default() += n;
        }
        all.warnings.extend(p.warnings);
        all.warnings_total += p.warnings_total;
        all.findings.extend(p.findings);
        all.informational.extend(p.informational);
        endpoints.push(p.endpoints);
        all.flow.add(&p.flow);
        all.detect.add(&p.detect);
    }
    all.sort_findings();
    all.endpoints = crate::detect::merge_endpoints(endpoints);
    // each part kept its first warnings: the first of all are among them
    all.warnings.sort_by_key(|(k, _)| *k);
    let warnings = all
        .warnings
        .drain(..)
        .take(MAX_KEPT_WARNINGS)
        .map(|(_, w)| w)
        .collect();
    build_report(all, warnings)
}

/// The report from the (merged) results; findings sorted, endpoints final.
fn build_report(p: Parts, warnings: Vec<Warning>) -> Report {
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for k in Kind::ALL {
        by_kind.insert(k.as_str(), 0);
    }
    let mut by_outcome: BTreeMap<&'static str, u64> = BTreeMap::new();
    by_outcome.insert("lost", 0);
    by_outcome.insert("retried", 0);
    for f in p.findings.iter().chain(&p.informational) {
        *by_kind.entry(f.kind.as_str()).or_default() += 1;
    }
    for f in &p.findings {
        *by_outcome.entry(f.outcome.as_str()).or_default() += 1;
    }
    let summary = Summary {
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
        findings: p.findings.len() as u64,
        informational: p.informational.len() as u64,
        by_kind,
        by_outcome,
        skipped_packets: p.skipped.values().sum(),
        warnings: p.warnings_total,
    };
    let recommendations = p
        .endpoints
        .iter()
        .filter_map(|e| e.recommendation.clone())
        .collect();
    Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: crate::report::Tool::current(),
        inputs: p.inputs,
        summary,
        findings: p.findings,
        informational: p.informational,
        endpoints: p.endpoints,
        recommendations,
        skipped: p.skipped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        tcp: p.flow,
        http: p.detect,
        warnings,
    }
}

/// The stages after flow (http, detect) as the connection table's handler.
struct Stages<'a> {
    det: &'a mut Detector,
    events: &'a mut Vec<HttpEvent>,
    now: Timestamp,
}

impl FlowHandler<ConnState> for Stages<'_> {
    fn on_event(&mut self, info: &ConnInfo, st: &mut ConnState, ev: FlowEvent<'_>) {
        on_flow_event(self.det, self.events, info, st, ev);
    }

    fn on_end(&mut self, mut t: Box<Tracked<ConnState>>, _why: EndReason, stats: &mut FlowStats) {
        let Tracked { tcp, user, .. } = &mut *t;
        let (det, events) = (&mut *self.det, &mut *self.events);
        tcp.flush(stats, &mut |info, ev| {
            on_flow_event(det, events, info, user, ev)
        });
        let closes = Closes {
            fin: [tcp.dirs[0].fin, tcp.dirs[1].fin],
            rst: [tcp.dirs[0].rst, tcp.dirs[1].rst],
        };
        self.det.finish_conn(
            &tcp.info(),
            std::mem::take(&mut user.det),
            &closes,
            self.now,
        );
    }
}

fn on_flow_event(
    det: &mut Detector,
    events: &mut Vec<HttpEvent>,
    info: &ConnInfo,
    st: &mut ConnState,
    ev: FlowEvent<'_>,
) {
    let (dir, meta) = match ev {
        FlowEvent::Data {
            dir,
            off,
            bytes,
            meta,
        } => {
            let h = st.http[dir].get_or_insert_with(|| HttpStream::new(info.from_syn[dir]));
            if h.side() == Side::NotHttp {
                return;
            }
            st.det.log_chunk(dir, off, bytes.len() as u64, meta);
            events.clear();
            h.on_data(off, bytes, events);
            (dir, meta)
        }
        FlowEvent::Gap {
            dir,
            off,
            len,
            meta,
        } => {
            let h = st.http[dir].get_or_insert_with(|| HttpStream::new(info.from_syn[dir]));
            if h.side() == Side::NotHttp {
                return;
            }
            st.det.log_chunk(dir, off, len, meta);
            events.clear();
            h.on_gap(off, len, events);
            (dir, meta)
        }
        FlowEvent::Retransmit { dir, off, len, .. } => {
            st.det.on_retransmit(dir, off, len);
            return;
        }
        FlowEvent::Eof { dir, off, meta } => {
            let Some(h) = st.http[dir].as_mut() else {
                return;
            };
            if h.side() == Side::NotHttp {
                return;
            }
            events.clear();
            h.on_eof(off, events);
            (dir, meta)
        }
    };
    for ev in events.drain(..) {
        if let HttpEvent::Request(head) = &ev {
            let other = 1 - dir;
            st.http[other]
                .get_or_insert_with(|| HttpStream::new(info.from_syn[other]))
                .push_request_method(&head.method);
        }
        det.on_http(info, &mut st.det, dir, ev, meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::linktype;

    fn warning(frame: u64) -> Warning {
        Warning {
            file: "in.pcap".into(),
            frame: Some(frame),
            message: format!("w{frame}"),
        }
    }

    /// A packet that is not IP (skipped): enough to count and to time.
    fn feed(a: &mut Analyzer, ordinal: u64, secs: f64) {
        let data = [0u8; 14];
        let pkt = PacketRef {
            input: 0,
            frame: ordinal,
            ts: Timestamp::from_secs_f64(secs),
            linktype: linktype::ETHERNET,
            orig_len: 14,
            data: &data,
        };
        a.on_packet_at(pkt, ordinal, pkt.ts);
    }

    #[test]
    fn merge_sums_the_parts_and_orders_the_warnings_as_the_input() {
        let inputs = vec!["in.pcap".to_string()];
        let mut a = Analyzer::new(Config::default(), inputs.clone());
        let mut b = Analyzer::new(Config::default(), inputs.clone());
        feed(&mut a, 1, 5.0);
        feed(&mut b, 2, 3.0);
        feed(&mut a, 3, 9.0);
        a.skip("filtered_out");
        // b's warnings come first in the input, then a's; 150 in all, 100 kept
        for n in 0..75 {
            a.warn_at((100 + n, 1), warning(100 + n));
            b.warn_at((n, 0), warning(n));
        }
        let r = merge(vec![
            a.into_parts(Timestamp::from_secs_f64(9.0)),
            b.into_parts(Timestamp::from_secs_f64(9.0)),
        ]);
        assert_eq!(r.inputs, inputs);
        assert_eq!(r.summary.packets, 3);
        assert_eq!(r.summary.bytes, 42);
        assert_eq!(
            r.summary.first_packet_time,
            Some(Timestamp::from_secs_f64(3.0))
        );
        assert_eq!(
            r.summary.last_packet_time,
            Some(Timestamp::from_secs_f64(9.0))
        );
        assert!((r.summary.duration_s - 6.0).abs() < 1e-9);
        assert_eq!(r.summary.skipped_packets, 4);
        assert_eq!(r.skipped.get("non_ip"), Some(&3));
        assert_eq!(r.skipped.get("filtered_out"), Some(&1));
        assert_eq!(r.summary.warnings, 150);
        assert_eq!(r.warnings.len(), MAX_KEPT_WARNINGS);
        let frames: Vec<u64> = r.warnings.iter().filter_map(|w| w.frame).collect();
        let want: Vec<u64> = (0..75).chain(100..125).collect();
        assert_eq!(frames, want);
        assert_eq!(r.summary.by_kind.len(), Kind::ALL.len());
        assert!(r.findings.is_empty() && r.endpoints.is_empty());
    }
}
