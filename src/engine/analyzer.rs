//! One packet at a time through decode -> flow -> app -> detect, on one thread: the analysis
//! of the whole input, or the driver's own shard of it with the verdict stage that takes every
//! shard's records. The analyzer knows nothing of where packets come from, so files, stdin and
//! live interfaces feed it alike; verdicts become final as capture time passes
//! (`findings_since`).

use super::Config;
use super::front::Front;
use super::result::{ShardResult, WarningKey, merge};
use super::shard::Shard;
use crate::capture::{Packet, PacketRef, Warning};
use crate::decode::Decoded;
use crate::detect::{Records, Verdicts};
use crate::flow::Sighting;
use crate::report::WarningPrinter;
use crate::report::schema::{Finding, Report};
use crate::time::Timestamp;
use std::sync::{Arc, Mutex};

/// Seconds of capture time between ticks (verdicts waiting for time become final).
pub(crate) const TICK_S: f64 = 0.1;
/// Packets, and captured bytes, at most between two epochs of the analysis: an epoch ends at
/// every tick, and after this many packets or bytes without one (a capture whose clock stands
/// still, or requests pipelined by the thousand), so that what the shards hand the verdict
/// stage per epoch stays bounded (a request takes at least 16 bytes).
pub(crate) const EPOCH_PACKETS: u64 = 4096;
pub(crate) const EPOCH_BYTES: u64 = 256 * 1024;

/// Seconds of capture time after a request by which a verdict on it is usually final: its
/// connection finished (the close's linger), the retry window passed, and the competitors
/// settled.
pub(crate) fn final_after(cfg: &Config) -> f64 {
    cfg.detect.retry_window + 2.0 * (cfg.table.close_linger + 2.0 * TICK_S)
}

/// When the epochs of the analysis end, from the capture time of the whole input.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clock {
    pub now: Timestamp,
    last_tick: Timestamp,
    packets: u64,
    bytes: u64,
}

impl Clock {
    /// A packet of `len` captured bytes captured at `ts` was analysed: whether an epoch ends
    /// after it.
    pub fn after_packet(&mut self, ts: Timestamp, len: usize) -> bool {
        self.now = self.now.max(ts);
        self.packets += 1;
        self.bytes += len as u64;
        if self.now.secs_since(self.last_tick) >= TICK_S {
            self.tick(self.now);
            return true;
        }
        if self.packets >= EPOCH_PACKETS || self.bytes >= EPOCH_BYTES {
            (self.packets, self.bytes) = (0, 0);
            return true;
        }
        false
    }

    /// Capture time advanced to `now` with no packet (a live source was idle): a tick.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        self.last_tick = self.now;
        (self.packets, self.bytes) = (0, 0);
    }
}

/// The analysis engine of the input, or of the driver's shard of it.
pub struct Analyzer {
    config: Config,
    /// The front (decoder and copy filter) of an analyzer fed packet by packet
    /// ([`Analyzer::on_packet_ref`]); a sharded run's packets come through the dispatcher's.
    front: Option<Box<Front>>,
    shard: Shard,
    verdicts: Verdicts,
    clock: Clock,
    /// The final verdicts (the findings, counted and kept), as results to merge.
    found: ShardResult,
    /// Findings streamed (handed out as they became final) and whether they are also kept.
    streaming: Option<bool>,
    /// Final verdicts not yet handed out (streaming).
    fresh: Vec<Finding>,
    /// The shards' results, once the input ended.
    finished: Vec<ShardResult>,
    /// The other shards' running totals, as of the last epoch.
    others: Totals,
    /// Records of an epoch the verdict stage emptied, for the driver's shard to fill again.
    spare: Records,
}

/// Running totals of a shard.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Totals {
    pub packets: u64,
    pub open_connections: usize,
    pub requests: u64,
    pub evicted: u64,
}

impl Totals {
    pub fn add(&mut self, t: &Totals) {
        self.packets += t.packets;
        self.open_connections += t.open_connections;
        self.requests += t.requests;
        self.evicted += t.evicted;
    }
}

impl Analyzer {
    pub fn new(cfg: Config, inputs: Vec<String>) -> Analyzer {
        Analyzer {
            shard: Shard::new(&cfg, inputs.clone(), None),
            // a closed connection reaches the verdict stage after its linger time, at a tick
            verdicts: Verdicts::new(
                &cfg.detect,
                inputs,
                cfg.table.close_linger + 2.0 * TICK_S,
                final_after(&cfg),
            ),
            clock: Clock::default(),
            found: ShardResult::default(),
            streaming: None,
            fresh: Vec::new(),
            finished: Vec::new(),
            others: Totals::default(),
            spare: Records::default(),
            front: None,
            config: cfg,
        }
    }

    /// Findings are handed out as they become final ([`Analyzer::take_fresh`]); `keep`: they
    /// are kept for the final report too.
    pub(super) fn stream_findings(&mut self, keep: bool) {
        self.streaming = Some(keep);
    }

    /// Keep the connection of each packet and the connections finished (the table must trace
    /// segments: [`crate::flow::TableConfig::trace_segments`]).
    pub(crate) fn log_connections(&mut self) {
        self.shard.conns.enabled = true;
    }

    /// The connection the last packet belonged to (when logged), cleared by the call.
    pub(crate) fn take_last_connection(&mut self) -> Option<u64> {
        self.shard.conns.last.take()
    }

    /// The connections finished since the last call (when logged).
    pub(crate) fn take_ended(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.shard.conns.ended)
    }

    /// Count a packet that was not analysed (filtered out, or not decodable).
    pub fn skip(&mut self, reason: &'static str) {
        self.shard.result.skip(reason);
    }

    /// Record a problem with the input (after the packets analysed so far).
    pub fn warn(&mut self, w: Warning) {
        self.warn_at((self.shard.result.packets, 1), w);
    }

    /// Record a problem with the input at its place `key` in the input (the warnings of a
    /// shard, to be merged).
    pub fn warn_at(&mut self, key: WarningKey, w: Warning) {
        self.shard.warn_at(key, w);
    }

    /// Connections currently tracked (by the other shards: as of the last epoch).
    pub fn open_connections(&self) -> usize {
        self.shard.open_connections() + self.others.open_connections
    }

    /// Connections finished early because the table was full, so far (by the other shards:
    /// as of the last epoch).
    pub fn connections_evicted(&self) -> u64 {
        self.shard.connections_evicted() + self.others.evicted
    }

    /// Packets analysed so far (by the other shards: as of the last epoch).
    pub fn packets(&self) -> u64 {
        self.shard.result.packets + self.others.packets
    }

    /// Requests seen so far (by the other shards: as of the last epoch; for running totals).
    pub fn requests(&self) -> u64 {
        self.shard.requests() + self.others.requests
    }

    /// The other shards' running totals, as of the last epoch.
    pub(super) fn set_other_totals(&mut self, t: Totals) {
        self.others = t;
    }

    /// Print the warnings about the input as they come, with `printer`.
    pub(super) fn print_warnings(&mut self, printer: Arc<Mutex<WarningPrinter>>) {
        self.shard.set_printer(printer);
    }

    /// Analyse one packet (problems with it are recorded as warnings).
    pub fn on_packet(&mut self, pkt: &Packet) {
        self.on_packet_ref(pkt.as_ref());
    }

    /// `on_packet` for a packet borrowed from its source; lets capture time advance.
    pub fn on_packet_ref(&mut self, pkt: PacketRef<'_>) {
        let now = self.clock.now.max(pkt.ts);
        let ordinal = self.shard.result.packets + 1;
        let front = self
            .front
            .get_or_insert_with(|| Box::new(Front::new(&self.config)));
        let mut decoded = front.decode(&pkt);
        let sighting = front.check(&mut decoded, pkt.ts);
        self.shard
            .on_decoded(pkt, &decoded, &sighting, ordinal, now);
        if self.clock.after_packet(pkt.ts, pkt.data.len()) {
            self.end_epoch(self.clock.now, &mut []);
        }
    }

    /// Analyse one packet of the driver's shard of the input, which went through the
    /// dispatcher's front (decoded to `decoded`, with what the copy filter found): `ordinal` is
    /// its position among the analysed packets of the whole input, `now` the capture time of
    /// the whole input (the latest timestamp so far, this packet's included). Time does not
    /// advance by itself: the caller ends the epochs ([`Analyzer::end_epoch`]) where the whole
    /// input's analyzer would.
    pub(super) fn on_decoded(
        &mut self,
        pkt: PacketRef<'_>,
        decoded: &Decoded<'_>,
        sighting: &Sighting<'_>,
        ordinal: u64,
        now: Timestamp,
    ) {
        self.shard.on_decoded(pkt, decoded, sighting, ordinal, now);
    }

    /// Let capture time advance to `now` (also called by live sources in quiet periods):
    /// closed connections are finished and verdicts whose retry window closed become final.
    pub fn tick(&mut self, now: Timestamp) {
        self.clock.tick(now);
        self.end_epoch(self.clock.now, &mut []);
    }

    /// The end of an epoch at capture time `now`, with the other shards' records of it.
    pub(super) fn end_epoch(&mut self, now: Timestamp, others: &mut [&mut Records]) {
        if let Some(front) = &mut self.front {
            front.tick(now);
        }
        let own = self.shard.end_epoch(now);
        match others {
            [] => self.verdicts.epoch(&mut [own], now),
            _ => {
                let mut parts: Vec<&mut Records> = Vec::with_capacity(others.len() + 1);
                parts.push(own);
                parts.extend(others.iter_mut().map(|r| &mut **r));
                self.verdicts.epoch(&mut parts, now);
            }
        }
        self.collect();
    }

    /// The end of an epoch of the driver's shard at capture time `now`: its records, for the
    /// verdict stage once the other shards' are in ([`Analyzer::verdict_epoch`]).
    pub(super) fn end_shard_epoch(&mut self, now: Timestamp) -> Records {
        let spare = std::mem::take(&mut self.spare);
        std::mem::replace(self.shard.end_epoch(now), spare)
    }

    /// Records of the driver's shard, emptied by the verdict stage: filled again next epoch
    /// (their vectors keep their room).
    pub(super) fn recycle(&mut self, records: Records) {
        self.spare = records;
    }

    /// Every shard's records of an epoch that ended at capture time `now`, for the verdict
    /// stage.
    pub(super) fn verdict_epoch(&mut self, now: Timestamp, parts: &mut [&mut Records]) {
        self.verdicts.epoch(parts, now);
        self.collect();
    }

    fn collect(&mut self) {
        for f in self.verdicts.take_ready() {
            match self.streaming {
                Some(_) => self.fresh.push(f),
                None => self.found.add_verdict(f, true),
            }
        }
    }

    /// The verdicts that became final since the last call (streaming): each finding is handed
    /// to `each`, then kept for the report or dropped.
    pub(super) fn take_fresh<E>(
        &mut self,
        mut each: impl FnMut(&Finding) -> Result<(), E>,
    ) -> Result<(), E> {
        let keep = self.streaming.unwrap_or(true);
        let mut fresh = std::mem::take(&mut self.fresh);
        let mut result = Ok(());
        for f in fresh.drain(..) {
            if result.is_ok() && f.kind.is_finding() {
                result = each(&f);
            }
            self.found.add_verdict(f, keep);
        }
        self.fresh = fresh;
        result
    }

    /// Final findings from position `since` on (pass the `finding_count` of the last call to
    /// follow them as they become final). They stay in the final report as well.
    pub fn findings_since(&self, since: usize) -> &[Finding] {
        let all = &self.found.findings;
        &all[since.min(all.len())..]
    }

    /// Number of final findings so far.
    pub fn finding_count(&self) -> usize {
        self.found.verdicts.findings() as usize
    }

    /// End of input: finish every connection and build the report.
    pub fn finish(mut self) -> Report {
        let now = self.clock.now;
        self.end_input(now, Vec::new());
        self.into_report()
    }

    /// End of input at capture time `now`, with the other shards' results and last records:
    /// every connection is finished, every verdict made final (streaming: to be taken).
    pub(super) fn end_input(&mut self, now: Timestamp, others: Vec<(ShardResult, Records)>) {
        let (result, mut own) = self.shard.finish(now);
        let (mut results, mut records): (Vec<ShardResult>, Vec<Records>) =
            others.into_iter().unzip();
        let mut parts: Vec<&mut Records> = vec![&mut own];
        parts.extend(records.iter_mut());
        self.verdicts.epoch(&mut parts, now);
        self.found.found = self.verdicts.finish();
        self.collect();
        results.insert(0, result);
        self.finished = results;
    }

    /// The report, after [`Analyzer::end_input`] (and the last findings taken).
    pub(super) fn into_report(mut self) -> Report {
        let _ = self.take_fresh(|_| Ok::<(), ()>(()));
        let mut results = std::mem::take(&mut self.finished);
        results.push(self.found);
        merge(results)
    }

    /// What the hostile-input tests bound, now.
    #[cfg(test)]
    pub(super) fn footprint(&self) -> super::tests::Footprint {
        let (table_slots, open, max_pending, retransmit_work) = self.shard.footprint();
        let (attempts, failures, retry_work) = self.verdicts.footprint();
        super::tests::Footprint {
            table_slots,
            open,
            max_pending,
            retransmit_work,
            attempts,
            failures,
            retry_work,
            informational_kept: self.found.informational.len(),
        }
    }

    /// End of input of the driver's shard with no other: its results.
    #[cfg(test)]
    pub(super) fn into_result(mut self, now: Timestamp) -> ShardResult {
        self.shard.finish(now).0
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
        a.shard
            .on_routed(pkt, ordinal, pkt.ts, &Sighting::default());
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
