use super::*;

fn capture(dropped: u64, if_dropped: u64) -> CaptureInfo {
    CaptureInfo {
        interface: "eth0".into(),
        datalink: "EN10MB".into(),
        snaplen: 262_144,
        filter: Some("tcp port 80".into()),
        captured: 10,
        received: 12,
        dropped,
        if_dropped,
        stopped_by: "signal",
        written_to: None,
    }
}

#[test]
fn drops_make_a_note() {
    assert_eq!(capture(0, 0).drop_note(), None);
    let n = capture(3, 1).drop_note().unwrap();
    assert!(n.starts_with("4 packet(s) were dropped"), "{n}");
    assert!(n.contains("verdicts may be incomplete"), "{n}");
}

#[test]
fn floats_are_written_rounded_to_microseconds() {
    assert_eq!(json::round_micros(2.0020005000000003), 2.002001);
    assert_eq!(json::round_micros(-0.008), -0.008);
    assert_eq!(json::round_micros(-0.0000001).to_string(), "0");
    assert_eq!(json::round_micros(1e300), 1e300);
    let mut r = crate::engine::merge(Vec::new());
    r.summary.duration_s = 2.0020005000000003;
    for format in [Format::Json, Format::Jsonl] {
        let mut out = Vec::new();
        renderer(format, &mut out, false, &TableOptions::default())
            .finish(&r)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\"duration_s\":") && text.contains("2.002001"),
            "{text}"
        );
        assert!(!text.contains("2.0020005"), "{text}");
    }
}

#[test]
fn json_keeps_the_field_order_of_the_types() {
    let r = crate::engine::merge(Vec::new());
    let mut out = Vec::new();
    renderer(Format::Json, &mut out, false, &TableOptions::default())
        .finish(&r)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at("schema_version") < at("tool") && at("tool") < at("inputs"),
        "{text}"
    );
    assert!(
        at("summary") < at("findings") && at("findings") < at("endpoints"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots of the table renderer (src/report/snapshots/, insta): reports built here, a live
// capture's streamed lines, and the analysis of scenario captures.
// ---------------------------------------------------------------------------------------------

use crate::time::Timestamp;
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z plus `ms` milliseconds.
fn at(ms: f64) -> Timestamp {
    Timestamp::from_secs_nanos(1_767_225_600, 0).add_secs(ms / 1000.0)
}

fn close(close_type: &'static str, frame: u64, ms: f64, acks_request: bool) -> CloseInfo {
    CloseInfo {
        close_type,
        file: "a.pcap".into(),
        frame,
        time: at(ms),
        seq: 1_000_000 + frame as u32,
        ack: Some(2_000_000),
        acks_request,
        h2: None,
    }
}

fn rst(frame: u64, ms: f64) -> RstInfo {
    RstInfo {
        file: "a.pcap".into(),
        frame,
        time: at(ms),
        seq: 1_000_001,
        ack: None,
        has_ack: false,
        reply_form: true,
    }
}

/// A finding on `client_port` to 198.51.100.20:8080 without retry, close or times; the tests
/// fill in what they show.
fn finding(kind: Kind, request: &str, host: Option<&str>, frame: u64, client_port: u16) -> Finding {
    let (method, target) = request.split_once(' ').unwrap();
    Finding {
        kind,
        outcome: Outcome::Lost,
        request: RequestInfo {
            method: method.into(),
            target: target.into(),
            host: host.map(Into::into),
            file: "a.pcap".into(),
            frame,
            time: at(frame as f64 * 10.0),
            index: 1,
            seq: 2_000_000,
            ack: Some(1_000_000),
            retransmissions: 0,
            tls: None,
            stream: None,
        },
        connection: ConnectionInfo::new(
            u64::from(client_port),
            format!("192.0.2.10:{client_port}").parse().unwrap(),
            "198.51.100.20:8080".parse().unwrap(),
        ),
        peer_close: None,
        rst: None,
        fin_to_request_s: None,
        idle_before_s: None,
        retry: None,
        retry_candidates: None,
        evidence: format!(
            "Evidence of {} on {request} (frame {frame}).",
            kind.as_str()
        ),
        client_effect: None,
        ladder: None,
        flagged_frames: None,
        idle_race: false,
    }
}

/// A server endpoint; `closes`: its idle closes, (count, [min, median, max] s); `max_reuse`:
/// the longest idle time after which a client reused a connection.
fn endpoint(
    server: &str,
    (connections, requests): (u64, u64),
    closes: Option<(u64, [f64; 3])>,
    max_reuse: Option<f64>,
    keep_alive: &[&str],
) -> EndpointStats {
    let idle_closes = closes.map_or_else(IdleCloses::default, |(count, [min, median, max])| {
        IdleCloses {
            count,
            min_s: Some(min),
            median_s: Some(median),
            max_s: Some(max),
        }
    });
    EndpointStats {
        server: server.into(),
        connections,
        requests,
        responses: requests,
        idle_closes,
        max_reuse_idle_s: max_reuse,
        keep_alive: keep_alive.iter().map(|k| k.to_string()).collect(),
        ..EndpointStats::default()
    }
}

/// A report of `packets` packets over `inputs` with the findings and informational records
/// given; counts in the summary follow from them.
fn report(inputs: &[&str], packets: u64, findings: Vec<Finding>, info: Vec<Finding>) -> Report {
    let mut by_kind: BTreeMap<&'static str, u64> = Kind::ALL.map(|k| (k.as_str(), 0)).into();
    let mut by_outcome: BTreeMap<&'static str, u64> = [Outcome::Retried, Outcome::Lost]
        .map(|o| (o.as_str(), 0))
        .into();
    for f in &findings {
        *by_kind.get_mut(f.kind.as_str()).unwrap() += 1;
        *by_outcome.get_mut(f.outcome.as_str()).unwrap() += 1;
    }
    for f in &info {
        *by_kind.get_mut(f.kind.as_str()).unwrap() += 1;
    }
    let span = (packets > 0).then(|| (at(0.0), at(2_345.678)));
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "tcprace",
            version: "0.0.0-snapshot",
        },
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        summary: Summary {
            packets,
            bytes: packets * 120,
            tcp_segments: packets,
            first_packet_time: span.map(|s| s.0),
            last_packet_time: span.map(|s| s.1),
            duration_s: if packets > 0 { 2.345678 } else { 0.0 },
            connections: packets / 10,
            http_connections: packets / 12,
            requests: packets / 4,
            responses: packets / 4 - findings.len() as u64 - info.len() as u64,
            findings: findings.len() as u64,
            informational: info.len() as u64,
            by_kind,
            by_outcome,
            skipped_packets: 0,
            warnings: 0,
        },
        findings,
        informational: info,
        endpoints: Vec::new(),
        recommendations: Vec::new(),
        skipped: BTreeMap::new(),
        tcp: FlowStats::default(),
        http: DetectStats::default(),
        tls: Default::default(),
        http2: Default::default(),
        warnings: Vec::new(),
        capture: None,
        provenance: None,
        flagged: None,
    }
}

/// Findings of several kinds: retried with its retry frame, closes by FIN and by RST, a
/// request without Host, a close that acknowledged the request, no times.
fn findings() -> Vec<Finding> {
    let mut crossed = finding(
        Kind::CrossedFin,
        "GET /c",
        Some("api.example.com"),
        7,
        40015,
    );
    crossed.outcome = Outcome::Retried;
    crossed.peer_close = Some(close("fin", 8, 1041.0, false));
    crossed.rst = Some(rst(10, 1053.0));
    crossed.fin_to_request_s = Some(-0.008);
    crossed.idle_before_s = Some(0.992);
    crossed.retry = Some(RetryInfo {
        file: "a.pcap".into(),
        frame: 15,
        time: at(1076.0),
        connection: 11,
        matched_by: "timing",
        reaction_s: 0.000113,
    });
    let mut after_rst = finding(
        Kind::AfterRst,
        "POST /api/orders?id=7",
        Some("api.example.com"),
        21,
        40016,
    );
    after_rst.peer_close = Some(close("rst", 19, 1500.0, false));
    after_rst.fin_to_request_s = Some(0.5);
    after_rst.idle_before_s = Some(1.5);
    let mut after_fin = finding(Kind::AfterFin, "GET /b", None, 30, 40017);
    after_fin.peer_close = Some(close("fin", 27, 2000.0, false));
    after_fin.fin_to_request_s = Some(0.06);
    after_fin.idle_before_s = Some(1.06);
    let mut closed = finding(Kind::ClosedUnanswered, "DELETE /x/1", Some("h"), 40, 40018);
    closed.peer_close = Some(close("fin", 42, 2100.0, true));
    closed.fin_to_request_s = Some(0.0123456);
    let reset = finding(Kind::ResetUnanswered, "PUT /y", Some("h"), 50, 40019);
    vec![crossed, after_rst, after_fin, closed, reset]
}

/// Requests without response that are not findings.
fn informational() -> Vec<Finding> {
    vec![
        finding(Kind::UnansweredAtEnd, "GET /slow", Some("h"), 60, 40020),
        finding(Kind::ClientClosed, "GET /gone", Some("h"), 70, 40021),
    ]
}

/// The whole report as the table renderer writes it; `streamed` findings first, as a live run
/// streams them.
fn render(r: &Report, stream_lines: bool, streamed: &[Finding]) -> String {
    let mut out = Vec::new();
    let mut t = TableRenderer::new(&mut out, stream_lines, TableOptions::default());
    for f in streamed {
        t.finding(f).unwrap();
    }
    t.finish(r).unwrap();
    String::from_utf8(out).unwrap()
}

fn table(r: &Report) -> String {
    render(r, false, &[])
}

#[test]
fn table_of_an_empty_capture() {
    insta::assert_snapshot!(table(&report(&["empty.pcap"], 0, vec![], vec![])));
}

#[test]
fn table_without_findings() {
    let mut r = report(&["a.pcap", "b.pcapng.gz"], 480, vec![], vec![]);
    r.endpoints = vec![endpoint(
        "198.51.100.20:8080",
        (40, 120),
        Some((38, [4.9981, 5.0004, 5.0312])),
        Some(3.2),
        &["timeout=5"],
    )];
    insta::assert_snapshot!(table(&r));
}

#[test]
fn table_with_findings_of_several_kinds() {
    let mut r = report(&["a.pcap"], 1200, findings(), informational());
    let mut busy = endpoint(
        "198.51.100.20:8080",
        (90, 280),
        Some((12, [0.999, 1.0, 1.002])),
        Some(1.5),
        &["timeout=1", "timeout=1, max=100"],
    );
    busy.findings = 5;
    busy.by_kind = r.findings.iter().map(|f| (f.kind.as_str(), 1)).collect();
    let quiet = endpoint("[2001:db8::1]:443", (3, 10), None, None, &[]);
    r.endpoints = vec![busy, quiet];
    r.recommendations = vec![
        "198.51.100.20:8080 closes idle keep-alive connections after about 1.0 s while clients reuse them after up to 1.50 s: make the upstream's idle timeout longer.".into(),
        "A second recommendation.".into(),
    ];
    r.skipped = [("ip_fragment".to_string(), 2), ("not_tcp".to_string(), 31)].into();
    r.summary.skipped_packets = 33;
    r.summary.warnings = 4;
    insta::assert_snapshot!(table(&r));
}

/// A live run: the findings streamed as lines, then the tables and the capture's counters with
/// the drop warning.
#[test]
fn live_table_with_streamed_findings_and_drops() {
    let mut r = report(&["eth0"], 300, findings()[..2].to_vec(), vec![]);
    r.capture = Some(CaptureInfo {
        written_to: Some("/tmp/live.pcap".into()),
        stopped_by: "duration",
        ..capture(5, 2)
    });
    insta::assert_snapshot!(render(&r, true, &r.findings));
}

#[test]
fn live_table_without_drops() {
    let mut r = report(&["eth0"], 20, vec![], vec![]);
    r.capture = Some(capture(0, 0));
    insta::assert_snapshot!(render(&r, true, &[]));
}

/// Scenario captures analysed: what the command line prints for them.
#[test]
fn table_of_scenario_captures() {
    use crate::capture::{FileSource, Next, PacketSource};
    let files: Vec<String> = [
        "retried",
        "after_rst",
        "idle_close_no_reuse",
        "unanswered_at_end",
    ]
    .map(|n| format!("fixtures/scenarios/{n}.pcap"))
    .into();
    let mut src = FileSource::open(&files).unwrap();
    let mut a = crate::engine::Analyzer::new(crate::engine::Config::default(), files.clone());
    while let Next::Packet(p) = src.next().unwrap() {
        a.on_packet_ref(p);
    }
    insta::assert_snapshot!(table(&a.finish()));
}

fn render_with(r: &Report, opts: TableOptions, streamed: &[Finding]) -> String {
    let mut out = Vec::new();
    let mut t = TableRenderer::new(&mut out, !streamed.is_empty(), opts);
    t.begin(&r.inputs).unwrap();
    for f in streamed {
        t.finding(f).unwrap();
    }
    t.finish(r).unwrap();
    String::from_utf8(out).unwrap()
}

/// A narrow terminal with an ASCII locale and -v: blocks of lines, wrapped between words.
#[test]
fn table_narrow_ascii_verbose() {
    let mut r = report(&["a.pcap", "b.pcap"], 1200, findings(), informational());
    r.endpoints = vec![endpoint(
        "198.51.100.20:8080",
        (90, 280),
        Some((12, [0.999, 1.0, 1.002])),
        Some(1.5),
        &["timeout=1"],
    )];
    r.recommendations = vec![
        "198.51.100.20:8080 closes idle keep-alive connections after about 1.00 s while clients reuse them after up to 992 ms, so 1 request(s) crossed its FIN.".into(),
    ];
    let opts = TableOptions {
        width: Some(72),
        ascii: true,
        verbose: true,
        ..TableOptions::default()
    };
    let text = render_with(&r, opts, &[]);
    for line in text.lines() {
        assert!(line.len() <= 72, "{line:?}");
    }
    assert!(text.is_ascii());
    insta::assert_snapshot!(text);
}

/// Findings whose evidence differs only in its numbers: one paragraph, and the others named.
#[test]
fn table_groups_findings_with_the_same_evidence() {
    let mut list = Vec::new();
    for (i, frame) in [7u64, 17, 27, 41, 55].into_iter().enumerate() {
        let mut f = finding(
            Kind::CrossedFin,
            "GET /c",
            Some("h"),
            frame,
            40000 + i as u16,
        );
        f.evidence = format!(
            "The server's FIN (frame {}, ack {}) does not cover the request.",
            frame + 1,
            100 + frame
        );
        list.push(f);
    }
    list[3].evidence = "The client closed first (frame 40).".into();
    let r = report(&["a.pcap"], 100, list, vec![]);
    let text = render_with(&r, TableOptions::default(), &[]);
    insta::assert_snapshot!(text.split("Evidence\n").nth(1).unwrap());
}

/// Streamed lines in a narrow terminal wrap at their separators; colours when asked.
#[test]
fn live_lines_narrow_and_in_colour() {
    let r = report(&["eth0"], 30, findings()[..1].to_vec(), vec![]);
    let narrow = TableOptions {
        width: Some(60),
        ..TableOptions::default()
    };
    let text = render_with(&r, narrow, &r.findings);
    insta::assert_snapshot!(text.split("\n\n").next().unwrap());
    let colour = TableOptions {
        color: true,
        ..TableOptions::default()
    };
    let text = render_with(&r, colour, &r.findings);
    let line = text.lines().next().unwrap();
    assert!(!line.contains("file:"), "{line:?}");
    let two = report(&["a.pcap", "b.pcap"], 30, findings()[..1].to_vec(), vec![]);
    let text = render_with(&two, TableOptions::default(), &two.findings);
    assert!(
        text.lines().next().unwrap().contains(" | file: a.pcap | "),
        "{text}"
    );
    assert!(
        line.contains("\u{1b}[1m\u{1b}[31mkind: crossed_fin\u{1b}[0m"),
        "{line:?}"
    );
    assert!(
        line.contains("\u{1b}[33moutcome: retried\u{1b}[0m"),
        "{line:?}"
    );
}

/// The Wireshark filter of a finding selects its connection, under both address pairs of a
/// NAT, and its client leg.
#[test]
fn finding_filter_covers_nat_twins_and_the_client_leg() {
    let mut f = finding(Kind::CrossedFin, "GET /a", None, 7, 40001);
    let own = "ip.addr == 192.0.2.10 && tcp.port == 40001 && ip.addr == 198.51.100.20 && tcp.port == 8080";
    assert_eq!(ticket::finding_filter(&f), own);
    f.connection.nat = Some(NatInfo {
        client: "10.0.0.99:40001".into(),
        server: "198.51.100.20:8080".into(),
        side: "server",
    });
    f.client_effect = Some(ClientEffect {
        connection: 3,
        client: "127.0.0.1:5000".into(),
        proxy: "127.0.0.1:8080".into(),
        request_frame: 5,
        file: "a.pcap".into(),
        frame: 9,
        time: at(90.0),
        status: Some(502),
        closed_without_response: false,
        settled_outcome: false,
    });
    assert_eq!(
        ticket::finding_filter(&f),
        format!(
            "({own}) || (ip.addr == 10.0.0.99 && tcp.port == 40001 && ip.addr == 198.51.100.20 \
             && tcp.port == 8080) || (ip.addr == 127.0.0.1 && tcp.port == 5000 && ip.addr == \
             127.0.0.1 && tcp.port == 8080)"
        )
    );
}
