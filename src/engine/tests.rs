//! Hostile inputs, generated small (`synth::hostile`): each case's cost and memory stay
//! bounded, asserted on counts and on the sizes that hold memory (not on time); bench/hostile.sh
//! runs the same cases at full size.

use super::{Analyzer, Config, RunOptions, run};
use crate::capture::{FileSource, Next, PacketSource};
use crate::detect::MAX_PENDING;
use crate::report::schema::{Kind, Report};
use crate::report::{JsonLinesRenderer, JsonRenderer, Renderer};
use crate::synth::hostile;
use std::path::PathBuf;

/// What the tests bound, sampled along the way (the largest seen).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Footprint {
    pub table_slots: usize,
    pub open: usize,
    pub max_pending: usize,
    pub retransmit_work: u64,
    pub attempts: usize,
    pub failures: usize,
    pub retry_work: u64,
    pub informational_kept: usize,
}

impl Footprint {
    fn max(self, o: Footprint) -> Footprint {
        Footprint {
            table_slots: self.table_slots.max(o.table_slots),
            open: self.open.max(o.open),
            max_pending: self.max_pending.max(o.max_pending),
            retransmit_work: self.retransmit_work.max(o.retransmit_work),
            attempts: self.attempts.max(o.attempts),
            failures: self.failures.max(o.failures),
            retry_work: self.retry_work.max(o.retry_work),
            informational_kept: self.informational_kept.max(o.informational_kept),
        }
    }
}

/// A capture written by `write` into a file of its own (removed on drop).
struct Capture(PathBuf);

impl Capture {
    fn new(name: &str, write: impl FnOnce(std::io::BufWriter<std::fs::File>)) -> Capture {
        let path = std::env::temp_dir().join(format!(
            "tcprace-hostile-{}-{name}.pcap",
            std::process::id()
        ));
        write(std::io::BufWriter::new(
            std::fs::File::create(&path).unwrap(),
        ));
        Capture(path)
    }

    fn name(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One analyzer over the capture, its footprint sampled every packet.
fn analyse(c: &Capture, cfg: Config) -> (Report, Footprint) {
    let mut src = FileSource::open(&[c.name()]).unwrap();
    let mut a = Analyzer::new(cfg, src.inputs().to_vec());
    let mut most = Footprint::default();
    loop {
        match src.next().unwrap() {
            Next::End => break,
            Next::Warning(w) => a.warn(*w),
            Next::Packet(p) => a.on_packet_ref(p),
            _ => unreachable!("a file source"),
        }
        most = most.max(a.footprint());
    }
    (a.finish(), most)
}

/// The driver loop on `threads` threads, rendered by `renderer`.
fn driven(c: &Capture, threads: usize, renderer: &mut dyn Renderer) -> Report {
    let mut src = FileSource::open(&[c.name()]).unwrap();
    let opts = RunOptions {
        config: Config::default(),
        threads,
        max_warnings: 0,
        record: None,
    };
    run(&mut src, &opts, renderer, &mut ()).unwrap()
}

#[test]
fn a_syn_flood_above_the_cap_evicts_and_holds_no_more_than_the_cap() {
    let c = Capture::new("syn", |w| {
        hostile::syn_flood(w, 6_000).unwrap();
    });
    let mut cfg = Config::default();
    cfg.table.max_connections = 2_000;
    let (r, most) = analyse(&c, cfg);
    assert_eq!(r.summary.connections, 6_000);
    assert_eq!(r.tcp.connections_evicted, 4_000);
    assert_eq!(most.open, 2_000);
    assert_eq!(most.table_slots, 2_000);
}

/// The running totals a live run copies into its metrics add up every shard's: with two
/// threads, the evictions seen just before the end are (nearly) all of them, not the driver's
/// own half.
#[test]
fn running_eviction_totals_add_up_every_shard() {
    struct Last(u64);
    impl super::RunHooks for Last {
        fn before_read(
            &mut self,
            _: &mut dyn crate::capture::PacketSource,
            a: &Analyzer,
            _: u64,
        ) -> std::ops::ControlFlow<()> {
            assert!(
                a.connections_evicted() >= self.0,
                "running totals never go down"
            );
            self.0 = a.connections_evicted();
            std::ops::ControlFlow::Continue(())
        }
    }
    let c = Capture::new("syn-shards", |w| {
        hostile::syn_flood(w, 60_000).unwrap();
    });
    let mut src = FileSource::open(&[c.name()]).unwrap();
    let mut opts = RunOptions {
        config: Config::default(),
        threads: 2,
        max_warnings: 0,
        record: None,
    };
    opts.config.table.max_connections = 2_000;
    let mut last = Last(0);
    let mut out = crate::report::renderer(
        crate::report::Format::Json,
        std::io::sink(),
        false,
        &crate::report::TableOptions::default(),
    );
    let r = run(&mut src, &opts, &mut *out, &mut last).unwrap();
    let all = r.tcp.connections_evicted;
    assert_eq!(all, 58_000);
    // the other shard's totals lag by at most an epoch (4,096 packets)
    assert!(
        last.0 <= all && last.0 + 2 * 4_096 >= all,
        "{} of {all}",
        last.0
    );
}

#[test]
fn identical_pipelined_requests_never_answered_are_tracked_up_to_the_cap() {
    let n = 12_000;
    let c = Capture::new("pipelined", |w| {
        hostile::pipelined_unanswered(w, n).unwrap();
    });
    let (r, most) = analyse(&c, Config::default());
    assert_eq!(r.summary.requests, n);
    assert_eq!(r.http.requests_beyond_pending_cap, n - MAX_PENDING as u64);
    assert_eq!(most.max_pending, MAX_PENDING);
    // the tracked ones get their verdict (the server's FIN acknowledged them), saying that
    // later ones were not tracked
    assert_eq!(r.summary.findings, MAX_PENDING as u64);
    assert!(r.findings.iter().all(|f| f.kind == Kind::ClosedUnanswered));
    assert!(
        r.findings[0]
            .evidence
            .contains("later request(s) on the connection were not tracked")
    );
    // every request is an attempt for the retry matcher; the work stays linear
    assert!(most.attempts <= n as usize);
    assert!(most.retry_work <= 64 * n, "{}", most.retry_work);
}

#[test]
fn retransmissions_over_a_long_pending_queue_cost_a_few_steps_each() {
    let (pending, retransmissions) = (20_000, 2_000);
    let c = Capture::new("retrans", |w| {
        hostile::retransmissions_over_pending(w, pending, retransmissions).unwrap();
    });
    let (r, most) = analyse(&c, Config::default());
    assert_eq!(r.summary.requests, pending);
    assert_eq!(r.tcp.retransmitted_segments, retransmissions);
    // a retransmitted segment holds at most 55 requests' first bytes: found by binary search
    assert!(
        most.retransmit_work <= 60 * retransmissions,
        "{}",
        most.retransmit_work
    );
    assert!(r.findings.iter().any(|f| f.request.retransmissions > 0));
}

#[test]
fn many_unanswered_requests_keep_a_bounded_list_and_jsonl_keeps_no_findings() {
    let n = 3_000;
    let c = Capture::new("unanswered", |w| {
        hostile::unanswered_connections(w, n).unwrap();
    });
    let (r, most) = analyse(&c, Config::default());
    assert_eq!(r.summary.informational, n);
    assert_eq!(r.summary.by_kind["unanswered_at_end"], n);
    assert_eq!(r.informational.len(), super::result::MAX_KEPT_INFORMATIONAL);
    assert!(most.informational_kept < 2 * super::result::MAX_KEPT_INFORMATIONAL);
    // the first ones in the capture are listed
    assert_eq!(r.informational[0].request.frame, 4);
    // findings streamed as JSON Lines are not kept, whatever their number
    let c = Capture::new("pipelined-jsonl", |w| {
        hostile::pipelined_unanswered(w, 3_000).unwrap();
    });
    for threads in [1, 2] {
        let mut out = Vec::new();
        let r = driven(&c, threads, &mut JsonLinesRenderer::new(&mut out));
        assert_eq!(r.summary.findings, MAX_PENDING as u64);
        assert!(r.findings.is_empty());
        let lines = String::from_utf8(out).unwrap();
        assert_eq!(lines.lines().count(), MAX_PENDING);
        // while JSON keeps them for the document
        let r = driven(&c, threads, &mut JsonRenderer::new(std::io::sink()));
        assert_eq!(r.findings.len(), MAX_PENDING);
    }
}

#[test]
fn bad_lengths_are_warned_about_and_the_next_requests_found() {
    let c = Capture::new("badlen", |w| {
        hostile::bad_lengths(w).unwrap();
    });
    let (r, _) = analyse(&c, Config::default());
    assert_eq!(r.http.invalid_content_length, 1);
    assert_eq!(r.http.conflicting_content_length, 2);
    assert_eq!(r.summary.warnings, 3);
    for w in &r.warnings {
        assert!(w.frame.is_some() && w.file.ends_with(".pcap"), "{w:?}");
        assert!(w.message.contains("Content-Length"), "{w:?}");
    }
    let targets: Vec<&str> = r
        .findings
        .iter()
        .map(|f| f.request.target.as_str())
        .collect();
    assert_eq!(
        targets,
        [
            "/invalid",
            "/after0",
            "/conflict",
            "/after1",
            "/list",
            "/after2"
        ]
    );
    assert!(r.findings.iter().all(|f| f.request.method != "AAAAGET"));
}

#[test]
fn an_endless_head_is_a_named_anomaly() {
    for (one_line, what) in [
        (true, "exceeds 65536 bytes"),
        (false, "more than 512 header fields"),
    ] {
        let c = Capture::new("head", |w| {
            hostile::endless_head(w, 1_000_000, one_line).unwrap();
        });
        let (r, _) = analyse(&c, Config::default());
        assert_eq!(r.http.heads_over_cap, 1);
        assert_eq!(r.summary.warnings, 1);
        assert!(r.warnings[0].message.contains(what), "{:?}", r.warnings);
    }
}

#[test]
fn extreme_interface_time_offsets_are_clamped_with_a_warning() {
    let c = Capture::new("offsets", |w| {
        hostile::pcapng_extreme_offsets(w).unwrap();
    });
    let (r, _) = analyse(&c, Config::default());
    assert_eq!(r.summary.packets, 4);
    assert!(r.summary.duration_s >= 0.0, "{}", r.summary.duration_s);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("beyond the range of timestamps")),
        "{:?}",
        r.warnings
    );
}
