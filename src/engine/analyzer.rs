//! One packet at a time through decode -> flow -> app -> detect. The analyzer knows nothing of
//! where packets come from, so files, stdin and live interfaces feed it alike; verdicts become
//! final as capture time passes (`findings_since`).

use super::Config;
use super::front::Front;
use super::result::{ShardResult, WarningKey, merge};
use crate::app::tls::Keys;
use crate::app::{AppConn, Scratch};
use crate::capture::{Packet, PacketRef, Warning};
use crate::decode::{Decoded, Decoder};
use crate::detect::client_leg::{ClientLegs, SharedLegs};
use crate::detect::{Detector, Exchanges};
use crate::flow::{ConnEnd, ConnMeta, FlowEvent, FlowHandler, FlowTable, FrameRef, Sighting};
use crate::report::schema::{Finding, Report};
use crate::time::Timestamp;

/// Seconds of capture time between ticks (verdicts waiting for time become final).
pub(crate) const TICK_S: f64 = 0.1;

/// Seconds of capture time after a request by which a verdict on it is usually final: its
/// connection finished (the close's linger), the retry window passed, and the competitors
/// settled.
pub(crate) fn final_after(cfg: &Config) -> f64 {
    cfg.detect.retry_window + 2.0 * (cfg.table.close_linger + 2.0 * TICK_S)
}

/// The later stages' state of one connection.
#[derive(Default)]
struct ConnAnalysis {
    app: AppConn,
    exchanges: Exchanges,
}

/// The analysis engine of the input, or of a shard of it.
pub struct Analyzer {
    config: Config,
    decoder: Decoder,
    /// The front (decoder and copy filter) of an analyzer that sees the whole input; the
    /// shards' packets come through the dispatcher's.
    front: Option<Box<Front>>,
    table: FlowTable<ConnAnalysis>,
    detector: Detector,
    scratch: Scratch,
    now: Timestamp,
    last_tick: Timestamp,
    inputs: Vec<String>,
    /// Counters, warnings and final verdicts so far (the rest of it is filled at the end).
    result: ShardResult,
    /// The client-leg links, shared with the other shards, and this shard's number there.
    legs: SharedLegs,
    shard: usize,
    /// Which connection each packet belonged to, and the connections finished (for the
    /// flight recorder).
    conns: ConnLog,
}

/// The connection of the last packet and the connections finished since the last call, when
/// kept ([`Analyzer::log_connections`]).
#[derive(Debug, Default)]
struct ConnLog {
    enabled: bool,
    last: Option<u64>,
    ended: Vec<u64>,
}

impl Analyzer {
    pub fn new(cfg: Config, inputs: Vec<String>) -> Analyzer {
        let legs = ClientLegs::shared(1, inputs.clone(), final_after(&cfg));
        Analyzer::shard(cfg, inputs, legs, 0)
    }

    /// The analyzer of shard `shard` of an analysis whose shards share `legs`.
    pub(crate) fn shard(
        cfg: Config,
        inputs: Vec<String>,
        legs: SharedLegs,
        shard: usize,
    ) -> Analyzer {
        Analyzer {
            decoder: cfg.decoder(),
            front: None,
            table: FlowTable::new(cfg.table),
            // a closed connection reaches the detector after its linger time, at a tick
            detector: Detector::new(
                cfg.detect.clone(),
                inputs.clone(),
                cfg.table.close_linger + 2.0 * TICK_S,
            ),
            scratch: Scratch::new(Keys::new(cfg.tls_keys.clone())),
            now: Timestamp::default(),
            last_tick: Timestamp::default(),
            inputs: inputs.clone(),
            result: ShardResult::new(inputs),
            legs,
            shard,
            conns: ConnLog::default(),
            config: cfg,
        }
    }

    /// Keep the connection of each packet and the connections finished (the table must trace
    /// segments: [`crate::flow::TableConfig::trace_segments`]).
    pub(crate) fn log_connections(&mut self) {
        self.conns.enabled = true;
    }

    /// The connection the last packet belonged to (when logged), cleared by the call.
    pub(crate) fn take_last_connection(&mut self) -> Option<u64> {
        self.conns.last.take()
    }

    /// The connections finished since the last call (when logged).
    pub(crate) fn take_ended(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.conns.ended)
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

    /// Connections finished early because the table was full, so far.
    pub fn connections_evicted(&self) -> u64 {
        self.table.stats().connections_evicted
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
        let mut front = self
            .front
            .take()
            .unwrap_or_else(|| Box::new(Front::new(&self.config)));
        let mut decoded = front.decode(&pkt);
        let sighting = front.check(&mut decoded, pkt.ts);
        let warning = self.on_decoded(pkt, &decoded, &sighting, self.result.packets + 1, now);
        self.front = Some(front);
        if self.now.secs_since(self.last_tick) >= TICK_S {
            self.tick(self.now);
        }
        warning
    }

    /// Analyse one packet of a shard of the input, which the dispatcher's front found to be a
    /// TCP segment with `sighting`: `ordinal` is its position among the analysed packets of
    /// the whole input, `now` the capture time of the whole input (the latest timestamp so
    /// far, this packet's included). Time does not advance by itself: the caller calls
    /// [`Analyzer::tick`] when the whole input's analyzer would.
    pub(super) fn on_routed(
        &mut self,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
        sighting: &Sighting<'_>,
    ) -> Option<Warning> {
        let mut decoded = self.decoder.decode(pkt.linktype, pkt.data, pkt.orig_len);
        if let (Decoded::Tcp(seg), Some(m)) = (&mut decoded, sighting.moved) {
            m.to.apply(seg);
        }
        self.on_decoded(pkt, &decoded, sighting, ordinal, now)
    }

    /// Analyse one packet that went through a front (this analyzer's or the dispatcher's),
    /// decoded to `decoded`, with what the copy filter found. Returns a warning when the
    /// packet was malformed.
    pub(super) fn on_decoded(
        &mut self,
        pkt: PacketRef<'_>,
        decoded: &Decoded<'_>,
        sighting: &Sighting<'_>,
        ordinal: u64,
        now: Timestamp,
    ) -> Option<Warning> {
        self.result.count_packet(pkt.orig_len, pkt.ts);
        self.now = self.now.max(now);
        self.detector.set_now(self.now);
        match decoded {
            &Decoded::Skip(reason, ref detail) => {
                self.result.skip(reason.as_str());
                if !reason.is_malformed() {
                    return None;
                }
                let w = Warning {
                    file: self.inputs.get(pkt.input).cloned().unwrap_or_default(),
                    frame: Some(pkt.frame),
                    message: format!(
                        "malformed packet: {}",
                        detail.as_deref().unwrap_or("bad headers")
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
                    conns: &mut self.conns,
                };
                self.table.process(seg, at, sighting, &mut downstream);
                None
            }
        }
    }

    /// Let capture time advance to `now` (also called by live sources in quiet periods):
    /// closed connections are finished and verdicts whose retry window closed become final.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        self.detector.set_now(self.now);
        self.last_tick = self.now;
        if let Some(front) = &mut self.front {
            front.tick(self.now);
        }
        let mut downstream = Downstream {
            detector: &mut self.detector,
            scratch: &mut self.scratch,
            now: self.now,
            conns: &mut self.conns,
        };
        self.table.expire(self.now, &mut downstream);
        self.detector.tick(self.now);
        self.collect(true);
    }

    /// Hand the final verdicts and the answered requests to the client-leg links; take the
    /// verdicts they decided. `progress`: every packet up to `now` has been analysed.
    fn collect(&mut self, progress: bool) {
        let ready = self.detector.take_ready();
        let fronts = self.detector.take_fronts();
        let Ok(mut legs) = self.legs.lock() else {
            return;
        };
        legs.add_fronts(fronts);
        // at the end of the input, after the last progress reported
        let at = if progress {
            self.now
        } else {
            Timestamp::from_nanos(self.now.0 + 1)
        };
        for f in ready {
            legs.add_final(self.shard, f, at);
        }
        if progress {
            legs.progress(self.shard, self.now);
        }
        for f in legs.take_decided(Some(self.shard)) {
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
            conns: &mut self.conns,
        };
        self.table.drain(&mut downstream);
        self.result.endpoints = self.detector.finish();
        self.collect(false);
        self.result.legs = Some(self.legs.clone());
        self.result.flow = self.table.stats().clone();
        self.result.detect = self.detector.stats().clone();
        self.result.tls = std::mem::take(&mut self.scratch.tls.stats);
        self.result.h2 = std::mem::take(&mut self.scratch.h2);
        self.result.h2.add(&self.scratch.tls.h2);
        self.result
    }
}

/// The stages after flow (app, detect), as the connection table's handler.
struct Downstream<'a> {
    detector: &'a mut Detector,
    scratch: &'a mut Scratch,
    now: Timestamp,
    conns: &'a mut ConnLog,
}

impl FlowHandler<ConnAnalysis> for Downstream<'_> {
    fn on_event(&mut self, conn: &ConnMeta, st: &mut ConnAnalysis, ev: FlowEvent<'_>) {
        match ev {
            FlowEvent::Retransmit { dir, off, len, .. } => {
                st.exchanges.on_retransmit(dir, off, len);
                return;
            }
            FlowEvent::Segment {
                dir,
                flags,
                len,
                meta,
            } => {
                self.conns.last = Some(conn.id);
                st.exchanges.on_segment(dir, flags, len, meta);
                return;
            }
            _ => {}
        }
        let ConnAnalysis { app, exchanges } = st;
        let detector = &mut *self.detector;
        let at = ev.meta();
        app.on_flow(conn, &ev, self.scratch, &mut |msg| {
            detector.on_message(conn, exchanges, msg, at)
        });
    }

    fn on_duplicate(&mut self, conn: u64) {
        self.conns.last = Some(conn);
    }

    fn on_end(&mut self, end: ConnEnd, st: &mut ConnAnalysis) {
        self.detector.finish_conn(&end, &mut st.exchanges, self.now);
        if self.conns.enabled {
            self.conns.ended.push(end.conn.id);
        }
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
        a.on_routed(pkt, ordinal, pkt.ts, &Sighting::default());
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
