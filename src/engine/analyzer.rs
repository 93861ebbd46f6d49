//! One packet at a time through decode -> flow -> app -> detect. The analyzer knows nothing of
//! where packets come from, so files, stdin and live interfaces feed it alike; verdicts become
//! final as capture time passes (`findings_since`).

use super::Config;
use super::result::{ShardResult, WarningKey, merge};
use crate::app::{AppConn, Scratch};
use crate::capture::{Packet, PacketRef, Warning};
use crate::decode::{self, Decoded, SkipReason};
use crate::detect::{Detector, Exchanges};
use crate::flow::{ConnEnd, ConnMeta, FlowEvent, FlowHandler, FlowTable, FrameRef};
use crate::report::schema::{Finding, Report};
use crate::time::Timestamp;

/// Seconds of capture time between ticks (verdicts waiting for time become final).
pub(crate) const TICK_S: f64 = 0.1;

/// The later stages' state of one connection.
#[derive(Default)]
struct ConnAnalysis {
    app: AppConn,
    exchanges: Exchanges,
}

/// The analysis engine of the input, or of a shard of it.
pub struct Analyzer {
    table: FlowTable<ConnAnalysis>,
    detector: Detector,
    scratch: Scratch,
    now: Timestamp,
    last_tick: Timestamp,
    inputs: Vec<String>,
    /// Counters, warnings and final verdicts so far (the rest of it is filled at the end).
    result: ShardResult,
}

impl Analyzer {
    pub fn new(cfg: Config, inputs: Vec<String>) -> Analyzer {
        Analyzer {
            table: FlowTable::new(cfg.table),
            // a closed connection reaches the detector after its linger time, at a tick
            detector: Detector::new(
                cfg.detect,
                inputs.clone(),
                cfg.table.close_linger + 2.0 * TICK_S,
            ),
            scratch: Scratch::default(),
            now: Timestamp::default(),
            last_tick: Timestamp::default(),
            inputs: inputs.clone(),
            result: ShardResult::new(inputs),
        }
    }

    /// Count a packet that was not analysed (filtered out, or not decodable).
    pub fn skip(&mut self, reason: &'static str) {
        self.result.skip(reason);
    }

    /// Record a problem with the input (after the packets analysed so far).
    pub fn warn(&mut self, w: Warning) {
        self.warn_at((self.result.packets, 1), w);
    }

    /// Record a problem with the input at its place `key` in the input (the warnings of a
    /// shard, to be merged).
    pub fn warn_at(&mut self, key: WarningKey, w: Warning) {
        self.result.warn_at(key, w);
    }

    /// Connections currently tracked.
    pub fn open_connections(&self) -> usize {
        self.table.open_connections()
    }

    /// Packets analysed so far.
    pub fn packets(&self) -> u64 {
        self.result.packets
    }

    /// Requests seen so far (for running totals).
    pub fn requests(&self) -> u64 {
        self.detector.stats().requests
    }

    /// Analyse one packet. Returns a warning when the packet was malformed.
    pub fn on_packet(&mut self, pkt: &Packet) -> Option<Warning> {
        self.on_packet_ref(pkt.as_ref())
    }

    /// `on_packet` for a packet borrowed from its source; lets capture time advance.
    pub fn on_packet_ref(&mut self, pkt: PacketRef<'_>) -> Option<Warning> {
        let now = self.now.max(pkt.ts);
        let warning = self.on_packet_at(pkt, self.result.packets + 1, now);
        if self.now.secs_since(self.last_tick) >= TICK_S {
            self.tick(self.now);
        }
        warning
    }

    /// Analyse one packet of a shard of the input: `ordinal` is its position among the
    /// analysed packets of the whole input, `now` the capture time of the whole input (the
    /// latest timestamp so far, this packet's included). Time does not advance by itself: the
    /// caller calls [`Analyzer::tick`] when the whole input's analyzer would.
    pub fn on_packet_at(
        &mut self,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
    ) -> Option<Warning> {
        self.result.count_packet(pkt.orig_len, pkt.ts);
        self.now = self.now.max(now);
        match decode::decode(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Skip(reason, detail) => {
                self.result.skip(reason.as_str());
                if reason != SkipReason::Malformed {
                    return None;
                }
                let w = Warning {
                    file: self.inputs.get(pkt.input).cloned().unwrap_or_default(),
                    frame: Some(pkt.frame),
                    message: format!(
                        "malformed packet: {}",
                        detail.unwrap_or_else(|| "bad headers".into())
                    ),
                };
                self.warn_at((ordinal, 0), w.clone());
                Some(w)
            }
            Decoded::Tcp(seg) => {
                self.result.tcp_segments += 1;
                let at = FrameRef {
                    input: pkt.input as u32,
                    frame: pkt.frame,
                    ordinal,
                    ts: pkt.ts,
                };
                let mut downstream = Downstream {
                    detector: &mut self.detector,
                    scratch: &mut self.scratch,
                    now: self.now,
                };
                self.table.advance(self.now);
                self.table.process(&seg, at, &mut downstream);
                None
            }
        }
    }

    /// Let capture time advance to `now` (also called by live sources in quiet periods):
    /// closed connections are finished and verdicts whose retry window closed become final.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        self.last_tick = self.now;
        let mut downstream = Downstream {
            detector: &mut self.detector,
            scratch: &mut self.scratch,
            now: self.now,
        };
        self.table.expire(self.now, &mut downstream);
        self.detector.tick(self.now);
        self.collect();
    }

    fn collect(&mut self) {
        for f in self.detector.take_ready() {
            self.result.add_verdict(f);
        }
    }

    /// Final findings from position `since` on (pass the `finding_count` of the last call to
    /// stream them as they become final). They stay in the final report as well.
    pub fn findings_since(&self, since: usize) -> &[Finding] {
        let all = &self.result.findings;
        &all[since.min(all.len())..]
    }

    /// Number of final findings so far.
    pub fn finding_count(&self) -> usize {
        self.result.findings.len()
    }

    /// End of input: finish every connection and build the report.
    pub fn finish(self) -> Report {
        let now = self.now;
        merge(vec![self.into_result(now)])
    }

    /// End of input of a shard, whose capture time is `now`: finish every connection and
    /// return the results, to be merged with the other shards' by [`merge`].
    pub fn into_result(mut self, now: Timestamp) -> ShardResult {
        self.now = self.now.max(now);
        let mut downstream = Downstream {
            detector: &mut self.detector,
            scratch: &mut self.scratch,
            now: self.now,
        };
        self.table.drain(&mut downstream);
        self.result.endpoints = self.detector.finish();
        self.collect();
        self.result.flow = self.table.stats().clone();
        self.result.detect = self.detector.stats().clone();
        self.result
    }
}

/// The stages after flow (app, detect), as the connection table's handler.
struct Downstream<'a> {
    detector: &'a mut Detector,
    scratch: &'a mut Scratch,
    now: Timestamp,
}

impl FlowHandler<ConnAnalysis> for Downstream<'_> {
    fn on_event(&mut self, conn: &ConnMeta, st: &mut ConnAnalysis, ev: FlowEvent<'_>) {
        if let FlowEvent::Retransmit { dir, off, len, .. } = ev {
            st.exchanges.on_retransmit(dir, off, len);
            return;
        }
        let ConnAnalysis { app, exchanges } = st;
        let detector = &mut *self.detector;
        let at = ev.meta();
        app.on_flow(conn, &ev, self.scratch, &mut |msg| {
            detector.on_message(conn, exchanges, msg, at)
        });
    }

    fn on_end(&mut self, end: ConnEnd, st: &mut ConnAnalysis) {
        self.detector.finish_conn(&end, &mut st.exchanges, self.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::linktype;
    use crate::report::schema::Kind;

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
    fn merge_sums_the_shards_and_orders_the_warnings_as_the_input() {
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
            a.into_result(Timestamp::from_secs_f64(9.0)),
            b.into_result(Timestamp::from_secs_f64(9.0)),
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
        assert_eq!(r.warnings.len(), super::super::result::MAX_KEPT_WARNINGS);
        let frames: Vec<u64> = r.warnings.iter().filter_map(|w| w.frame).collect();
        let want: Vec<u64> = (0..75).chain(100..125).collect();
        assert_eq!(frames, want);
        assert_eq!(r.summary.by_kind.len(), Kind::ALL.len());
        assert!(r.findings.is_empty() && r.endpoints.is_empty());
    }
}
