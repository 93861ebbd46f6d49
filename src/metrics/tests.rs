use super::*;
use std::sync::Arc;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The value of the sample `name{labels}` in the exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn requests_and_idle_closes_per_server_and_the_rest_as_other() {
    let m = Metrics::new(2);
    for s in [
        "10.0.0.1:80",
        "10.0.0.1:80",
        "10.0.0.2:8080",
        "10.0.0.3:80",
        "10.0.0.4:80",
    ] {
        m.request(addr(s));
    }
    m.idle_close(addr("10.0.0.1:80"), 4.9);
    m.idle_close(addr("10.0.0.4:80"), 70.0);
    let text = m.encode();
    let req = |s: &str| sample(&text, &format!("tcprace_requests_total{{server=\"{s}\"}}"));
    assert_eq!(req("10.0.0.1:80"), Some(2.0));
    assert_eq!(req("10.0.0.2:8080"), Some(1.0));
    assert_eq!(req("other"), Some(2.0), "{text}");
    assert_eq!(
        req("10.0.0.3:80"),
        None,
        "beyond the limit: no label of its own"
    );
    let idle = |s: &str, le: &str| {
        sample(
            &text,
            &format!("tcprace_idle_close_seconds_bucket{{le=\"{le}\",server=\"{s}\"}}"),
        )
    };
    assert_eq!(idle("10.0.0.1:80", "4.0"), Some(0.0), "{text}");
    assert_eq!(idle("10.0.0.1:80", "5.0"), Some(1.0));
    assert_eq!(idle("other", "60.0"), Some(0.0));
    assert_eq!(idle("other", "75.0"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "tcprace_idle_close_seconds_count{server=\"10.0.0.1:80\"}"
        ),
        Some(1.0)
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn capture_totals_grow_by_the_difference() {
    let m = Metrics::new(DEFAULT_MAX_SERVERS);
    let k = |received, dropped| CaptureStats {
        received,
        dropped,
        if_dropped: 1,
    };
    m.update_capture(100, 7, 0, Some(k(120, 3)));
    m.update_capture(250, 5, 2, Some(k(300, 3)));
    m.update_capture(260, 4, 2, None);
    let text = m.encode();
    assert_eq!(sample(&text, "tcprace_packets_total"), Some(260.0));
    assert_eq!(sample(&text, "tcprace_kernel_received_total"), Some(300.0));
    assert_eq!(sample(&text, "tcprace_kernel_dropped_total"), Some(3.0));
    assert_eq!(sample(&text, "tcprace_interface_dropped_total"), Some(1.0));
    assert_eq!(sample(&text, "tcprace_open_connections"), Some(4.0));
    assert_eq!(
        sample(&text, "tcprace_connections_evicted_total"),
        Some(2.0)
    );
    // libpcap's 32-bit counters wrap: the counter never goes down
    m.update_capture(270, 4, 2, Some(k(10, 0)));
    m.update_capture(280, 4, 2, Some(k(15, 0)));
    let text = m.encode();
    assert_eq!(sample(&text, "tcprace_kernel_received_total"), Some(305.0));
    assert!(text.contains("tcprace_build_info{version=\""));
}

/// `fixtures/scenarios/NAME.pcap` through the driver loop with the metrics attached as the
/// live driver attaches them (observer of the detect stage, renderer in front of the output).
fn analyse(name: &str, m: &Arc<Metrics>) {
    let path = format!(
        "{}/fixtures/scenarios/{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut source = crate::capture::FileSource::open(&[path]).unwrap();
    let mut opts = crate::engine::RunOptions {
        config: crate::engine::Config::default(),
        threads: 1,
        max_warnings: 0,
        record: None,
    };
    opts.config.detect.observer = Some(m.clone());
    let inner = crate::report::renderer(
        crate::report::Format::Json,
        std::io::sink(),
        false,
        &crate::report::TableOptions::default(),
    );
    let mut out = CountingRenderer::new(inner, m.clone());
    let report = crate::engine::run(&mut source, &opts, &mut out, &mut ()).unwrap();
    crate::report::Renderer::finish(&mut out, &report).unwrap();
}

#[test]
fn a_run_counts_findings_by_server_kind_and_outcome_requests_and_idle_closes() {
    let m = Arc::new(Metrics::new(DEFAULT_MAX_SERVERS));
    analyse("retried", &m);
    analyse("after_fin", &m);
    let text = m.encode();
    let server = "server=\"198.51.100.20:8080\"";
    let finding = |kind: &str, outcome: &str| {
        sample(
            &text,
            &format!("tcprace_findings_total{{{server},kind=\"{kind}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(finding("crossed_fin", "retried"), Some(1.0), "{text}");
    assert_eq!(finding("after_fin", "lost"), Some(1.0));
    // retried: 3 requests, after_fin: 2; one idle close of 1 s each
    assert_eq!(
        sample(&text, &format!("tcprace_requests_total{{{server}}}")),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("tcprace_idle_close_seconds_count{{{server}}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("tcprace_idle_close_seconds_bucket{{le=\"1.0\",{server}}}")
        ),
        Some(2.0)
    );
}

#[test]
fn a_thousand_servers_make_at_most_the_limit_of_labels_and_a_bounded_exposition() {
    let m = Metrics::new(DEFAULT_MAX_SERVERS);
    for i in 0..1000u32 {
        let server = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080));
        m.request(server);
        m.idle_close(server, 5.0);
    }
    let text = m.encode();
    let servers: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split("server=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(servers.len(), DEFAULT_MAX_SERVERS + 1, "and other");
    assert_eq!(
        sample(&text, "tcprace_requests_total{server=\"other\"}"),
        Some(900.0)
    );
    // the size the README gives for a full table of servers
    eprintln!(
        "exposition with {} server labels: {} bytes",
        servers.len(),
        text.len()
    );
    assert!(text.len() < 250_000, "{} bytes", text.len());
}

#[test]
fn counting_keeps_findings_only_for_an_output_that_needs_them_again() {
    use crate::report::{Format, Renderer, TableOptions, renderer};
    let counting = |format| {
        let inner = renderer(format, std::io::sink(), true, &TableOptions::default());
        CountingRenderer::new(inner, Arc::new(Metrics::new(2)))
    };
    // JSON Lines writes each finding once: a week-long run keeps none of them
    assert!(counting(Format::Jsonl).streams());
    assert!(!counting(Format::Jsonl).keeps_findings());
    // one JSON document at the end needs them all
    assert!(counting(Format::Json).keeps_findings());
}
