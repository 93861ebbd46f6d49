//! The analysis of one shard of the input, one packet at a time through decode -> flow -> app
//! -> detect (its per-connection part). At the end of each epoch (a tick of capture time) it
//! hands the verdict stage what it found ([`Records`]).

use super::Config;
use super::analyzer::Totals;
use super::parallel::print;
use super::result::{ShardResult, WarningKey};
use crate::app::tls::Keys;
use crate::app::{AppConn, Scratch};
use crate::capture::{PacketRef, Warning};
use crate::decode::{Decoded, Decoder};
use crate::detect::{Detector, Exchanges, Records};
use crate::flow::{ConnEnd, ConnMeta, FlowEvent, FlowHandler, FlowTable, FrameRef, Sighting};
use crate::report::WarningPrinter;
use crate::time::Timestamp;
use std::sync::{Arc, Mutex};

/// The later stages' state of one connection.
#[derive(Default)]
pub(super) struct ConnAnalysis {
    app: AppConn,
    exchanges: Exchanges,
}

/// The per-connection analysis of a shard of the input (of all of it, with one shard).
pub(super) struct Shard {
    decoder: Decoder,
    /// Which connection each packet belonged to, and the connections finished (when logged).
    pub conns: ConnLog,
    table: FlowTable<ConnAnalysis>,
    detector: Detector,
    scratch: Scratch,
    /// Capture time of the whole input.
    now: Timestamp,
    inputs: Vec<String>,
    /// Where the warnings are printed as they come (none: only recorded).
    printer: Option<Arc<Mutex<WarningPrinter>>>,
    /// Counters and warnings so far (the rest of it is filled at the end).
    pub result: ShardResult,
}

impl Shard {
    pub fn new(
        cfg: &Config,
        inputs: Vec<String>,
        printer: Option<Arc<Mutex<WarningPrinter>>>,
    ) -> Shard {
        Shard {
            decoder: cfg.decoder(),
            conns: ConnLog::default(),
            table: FlowTable::new(cfg.table),
            detector: Detector::new(),
            scratch: Scratch::new(Keys::new(cfg.tls_keys.clone())),
            now: Timestamp::default(),
            result: ShardResult::new(inputs.clone()),
            inputs,
            printer,
        }
    }

    /// Print the warnings as they come with `printer`.
    pub fn set_printer(&mut self, printer: Arc<Mutex<WarningPrinter>>) {
        self.printer = Some(printer);
    }

    /// Record a warning about the packet of `ordinal` (and print it).
    fn warn_about(&mut self, ordinal: u64, w: Warning) {
        if let Some(p) = &self.printer {
            print(p, &w);
        }
        self.result.warn_at((ordinal, 0), w);
    }

    pub fn open_connections(&self) -> usize {
        self.table.open_connections()
    }

    pub fn requests(&self) -> u64 {
        self.detector.stats().requests
    }

    /// What the tests bound: (table slots, connections open, most requests pending on a
    /// connection, pending requests looked at for retransmissions).
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize, usize, u64) {
        let (pending, work) = self.detector.work;
        (self.table.slots(), self.open_connections(), pending, work)
    }

    /// Running totals.
    pub fn totals(&self) -> Totals {
        Totals {
            packets: self.result.packets,
            open_connections: self.open_connections(),
            requests: self.requests(),
            evicted: self.connections_evicted(),
        }
    }

    /// Connections finished early because the table was full, so far.
    pub fn connections_evicted(&self) -> u64 {
        self.table.stats().connections_evicted
    }

    /// Record a problem with the input at its place `key` in the input.
    pub fn warn_at(&mut self, key: WarningKey, w: Warning) {
        self.result.warn_at(key, w);
    }

    /// Analyse one packet that the dispatcher's front found to be `sighting` (decoded again
    /// here; a copy under a NAT's other addresses moved to its connection's): `ordinal` is its
    /// position among the analysed packets of the whole input, `now` the capture time of the
    /// whole input (the latest timestamp so far, this packet's included). A malformed packet
    /// is warned about.
    pub fn on_routed(
        &mut self,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
        sighting: &Sighting<'_>,
    ) {
        let mut decoded = self.decoder.decode(pkt.linktype, pkt.data, pkt.orig_len);
        if let (Decoded::Tcp(seg), Some(m)) = (&mut decoded, sighting.moved) {
            m.to.apply(seg);
        }
        self.on_decoded(pkt, &decoded, sighting, ordinal, now);
    }

    /// `on_routed` for a packet that went through a front (decoded to `decoded`, with what
    /// the copy filter found).
    pub fn on_decoded(
        &mut self,
        pkt: PacketRef<'_>,
        decoded: &Decoded<'_>,
        sighting: &Sighting<'_>,
        ordinal: u64,
        now: Timestamp,
    ) {
        self.result.count_packet(pkt.orig_len, pkt.ts);
        self.now = self.now.max(now);
        self.detector.set_now(self.now);
        match decoded {
            &Decoded::Skip(reason, ref detail) => {
                self.result.skip(reason.as_str());
                if !reason.is_malformed() {
                    return;
                }
                let w = Warning {
                    file: self.inputs.get(pkt.input).cloned().unwrap_or_default(),
                    frame: Some(pkt.frame),
                    message: format!(
                        "malformed packet: {}",
                        detail.as_deref().unwrap_or("bad headers")
                    ),
                };
                self.warn_about(ordinal, w);
            }
            Decoded::Tcp(seg) => {
                self.result.tcp_segments += 1;
                let at = FrameRef {
                    input: pkt.input as u32,
                    frame: pkt.frame,
                    ordinal,
                    ts: pkt.ts,
                };
                let now = self.now;
                let (table, mut downstream) = self.table_and_downstream();
                table.advance(now);
                table.process(seg, at, sighting, &mut downstream);
                self.input_warnings(ordinal);
            }
        }
    }

    /// Capture time advances to `now` (never back); returns the shard's time.
    fn advance_to(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now);
        self.detector.set_now(self.now);
        self.now
    }

    /// The connection table and the stages after it (its handler), borrowed side by side.
    fn table_and_downstream(&mut self) -> (&mut FlowTable<ConnAnalysis>, Downstream<'_>) {
        let downstream = Downstream {
            detector: &mut self.detector,
            scratch: &mut self.scratch,
            conns: &mut self.conns,
        };
        (&mut self.table, downstream)
    }

    /// The detector's warnings about the input, as warnings about the packet of `ordinal`.
    #[inline]
    fn input_warnings(&mut self, ordinal: u64) {
        if self.detector.has_warnings() {
            self.warn_about_input(ordinal);
        }
    }

    #[cold]
    fn warn_about_input(&mut self, ordinal: u64) {
        let found: Vec<(FrameRef, String)> = self.detector.take_warnings().collect();
        for (at, message) in found {
            let w = Warning {
                file: self
                    .inputs
                    .get(at.input as usize)
                    .cloned()
                    .unwrap_or_default(),
                frame: Some(at.frame),
                message,
            };
            self.warn_about(ordinal, w);
        }
    }

    /// The end of an epoch at capture time `now`: closed and idle connections are finished;
    /// returns what the verdict stage needs of the epoch (to be emptied by it).
    pub fn end_epoch(&mut self, now: Timestamp) -> &mut Records {
        let now = self.advance_to(now);
        let (table, mut downstream) = self.table_and_downstream();
        table.expire(now, &mut downstream);
        self.input_warnings(self.result.packets);
        self.detector.records()
    }

    /// End of input at capture time `now`: every connection is finished; the results, and the
    /// records of the last epoch.
    pub fn finish(&mut self, now: Timestamp) -> (ShardResult, Records) {
        self.advance_to(now);
        let (table, mut downstream) = self.table_and_downstream();
        table.drain(&mut downstream);
        self.input_warnings(u64::MAX);
        self.result.endpoints = self.detector.finish();
        self.result.flow = self.table.stats().clone();
        self.result.detect = self.detector.stats().clone();
        self.result.tls = std::mem::take(&mut self.scratch.tls.stats);
        self.result.h2 = std::mem::take(&mut self.scratch.h2);
        self.result.h2.add(&self.scratch.tls.h2);
        let records = std::mem::take(self.detector.records());
        (std::mem::take(&mut self.result), records)
    }
}

/// The stages after flow (app, detect), as the connection table's handler.
struct Downstream<'a> {
    detector: &'a mut Detector,
    scratch: &'a mut Scratch,
    conns: &'a mut ConnLog,
}

/// The connection of the last packet and the connections finished since the last call, when
/// kept (for the flight recorder).
#[derive(Debug, Default)]
pub(super) struct ConnLog {
    pub enabled: bool,
    pub last: Option<u64>,
    pub ended: Vec<u64>,
}

impl FlowHandler<ConnAnalysis> for Downstream<'_> {
    fn on_event(&mut self, conn: &ConnMeta, st: &mut ConnAnalysis, ev: FlowEvent<'_>) {
        match ev {
            FlowEvent::Retransmit { dir, off, len, .. } => {
                self.detector
                    .on_retransmit(&mut st.exchanges, dir, off, len);
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
        self.detector.finish_conn(&end, &mut st.exchanges);
        if self.conns.enabled {
            self.conns.ended.push(end.conn.id);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The state of an idle connection (its box in the table: the TCP state and the later
    /// stages'), with the table's slot and index entry, stays within ~500 bytes (the goal was
    /// 600: 500,000 open connections in 300 MB, with the requests' histories). Rare state is
    /// out of line, allocated only when needed.
    #[test]
    fn an_idle_connection_fits_in_500_bytes() {
        let boxed = crate::flow::tracked_size::<super::ConnAnalysis>();
        // a malloc chunk: the size and its header, in 16-byte steps
        let chunk = (boxed + 8).div_ceil(16) * 16;
        let table = crate::flow::table_bytes_per_connection();
        assert!(
            chunk + table <= 512,
            "{boxed} bytes in a box, {table} in the table"
        );
        assert!(boxed <= 464, "{boxed}");
    }
}
