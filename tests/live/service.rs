//! tcprace as a service on a proxy host: a capture replayed at a fixed rate through a veth pair
//! (buffered capture, no drops, the findings of the file), the metrics endpoint scraped over
//! HTTP, `-Z` (no capabilities left) with a `-w` ring (`-C`, `-W`).

use super::*;

/// Scrape `url` from inside the lab's namespace (python3's urllib); the body.
fn scrape(lab: &Lab, url: &str) -> String {
    let code = format!(
        "import urllib.request; print(urllib.request.urlopen({url:?}, timeout=5).read().decode(), end='')"
    );
    let out = lab.run_timeout(&["python3", "-c", &code], Duration::from_secs(10));
    assert!(
        out.status.success(),
        "scrape {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 exposition")
}

/// The value of the sample `series` (name and labels as written) in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Read stdout until the process ends (bounded); its exit status and the lines.
fn finish(lab: &mut Lab, t: usize, stdout: Lines) -> (ExitStatus, String) {
    let end = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match stdout.recv_timeout(left) {
            Ok((_, l)) => {
                text.push_str(&l);
                text.push('\n');
            }
            Err(_) => break,
        }
    }
    let status =
        wait_bounded(&mut lab.children[t], Duration::from_secs(10)).expect("tcprace did not exit");
    (status, text)
}

/// (kind, outcome, method, target, frame) of each finding of a JSON report.
fn outcome_keys(report: &Value) -> Vec<(String, String, u64)> {
    let findings = report["findings"].as_array().expect("findings");
    let mut v: Vec<_> = finding_keys(findings.iter())
        .into_iter()
        .zip(findings)
        .map(|((kind, method, target, frame), f)| {
            let outcome = f["outcome"].as_str().unwrap_or_default();
            (
                format!("{kind} {outcome}"),
                format!("{method} {target}"),
                frame,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_capture_replayed_at_a_fixed_rate_gives_the_findings_of_the_file() {
    const NAME: &str = "replay";
    let Some(tcpreplay) = find_tool("tcpreplay") else {
        eprintln!("SKIPPED {NAME}: tcpreplay not found (apt-get install tcpreplay)");
        return;
    };
    let lab = lab_or_skip!(NAME);
    // the lab's capture of nginx crossing the upstream's idle closes, as Ethernet frames
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/lab/captures/nginx-crossing/proxy.pcap");
    let pcap = lab.dir.join("replay.pcap");
    common::encapsulated(&src, &pcap, &[]);
    let pcap_s = pcap.to_str().unwrap();
    let file = analyse(&pcap);
    let packets = file["summary"]["packets"].as_u64().unwrap();
    assert!(file["summary"]["findings"].as_u64().unwrap() >= 3);

    for argv in [
        &[
            "ip", "link", "add", "rp0", "type", "veth", "peer", "name", "cap0",
        ][..],
        &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        &["ip", "link", "set", "rp0", "up"],
        &["ip", "link", "set", "cap0", "up"],
    ] {
        ok(&lab.run(argv), &argv.join(" ")).unwrap();
    }
    let mut lab = lab;
    let written = lab.dir.join("live.pcap");
    let t = lab.spawn(&[
        BIN,
        "-i",
        "cap0",
        "--format",
        "json",
        "-c",
        &packets.to_string(),
        "-w",
        written.to_str().unwrap(),
    ]);
    let stdout = line_reader(lab.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on cap0", Duration::from_secs(10));
    // 2,000 packets/s: the lab's 15 s of traffic in 0.3 s
    let replay = lab.run_timeout(
        &[
            tcpreplay.to_str().unwrap(),
            "-q",
            "-i",
            "rp0",
            "--pps=2000",
            pcap_s,
        ],
        Duration::from_secs(30),
    );
    ok(&replay, "tcpreplay").unwrap();
    let (status, text) = finish(&mut lab, t, stdout);
    let errors: Vec<String> = stderr.try_iter().map(|(_, l)| l).collect();
    assert_eq!(status.code(), Some(1), "findings; stderr: {errors:?}");
    let live: Value = serde_json::from_str(&text).expect("JSON report of the live run");
    let capture = &live["capture"];
    assert_eq!(capture["stopped_by"], "count", "{capture}");
    assert_eq!(capture["dropped"], 0, "{capture}");
    assert_eq!(capture["if_dropped"], 0, "{capture}");
    assert_eq!(live["summary"]["packets"], packets);
    // every packet, in the order of the file: the same frames, the same kinds of race (decided
    // from sequence numbers)
    let findings = |r: &Value| finding_keys(r["findings"].as_array().unwrap().iter());
    assert_eq!(findings(&live), findings(&file));
    assert_eq!(live["summary"]["requests"], file["summary"]["requests"]);
    // retried or not depends on time, which the replay compressed: the outcomes are those of
    // the packets as captured (no verdict made final before a packet it waited for was read)
    assert_eq!(outcome_keys(&live), outcome_keys(&analyse(&written)));
}

/// tcprace's JSON report of a capture file.
fn analyse(path: &std::path::Path) -> Value {
    let out = Command::new(BIN)
        .args(["--format", "json", "--no-progress"])
        .arg(path)
        .output()
        .expect("run tcprace on a file");
    serde_json::from_slice(&out.stdout).expect("JSON report of the file")
}

type Lines = Receiver<(Instant, String)>;

/// Start the HTTP server and tcprace on the lab's `lo` for `secs` seconds, with metrics at
/// 127.0.0.1:9464: its index, its stdout and stderr lines.
fn capture_on_lo(lab: &mut Lab, secs: &str) -> (usize, Lines, Lines) {
    lab.start_server();
    let t = lab.spawn(&[
        BIN,
        "-i",
        "lo",
        "-f",
        "tcp port 8080",
        "--format",
        "jsonl",
        "--duration",
        secs,
        "--metrics",
        "127.0.0.1:9464",
    ]);
    let stdout = line_reader(lab.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    (t, stdout, stderr)
}

#[test]
fn metrics_are_served_over_http_while_capturing() {
    let mut lab = lab_or_skip!("metrics");
    let (t, stdout, stderr) = capture_on_lo(&mut lab, "20");
    let seen = wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    assert!(
        seen.iter()
            .any(|l| l == "tcprace: metrics at http://127.0.0.1:9464/metrics"),
        "{seen:?}"
    );
    let before = scrape(&lab, "http://127.0.0.1:9464/metrics");
    assert!(
        before.contains("# TYPE tcprace_packets counter"),
        "{before}"
    );
    assert_eq!(sample(&before, "tcprace_open_connections"), Some(0.0));

    let client = lab.run_timeout(&["python3", "-c", CLIENT], Duration::from_secs(15));
    assert!(client.status.success());
    // the finding is final ~3 s after the request (RST, linger, retry window)
    let end = Instant::now() + Duration::from_secs(10);
    let series =
        "tcprace_findings_total{server=\"127.0.0.1:8080\",kind=\"after_fin\",outcome=\"lost\"}";
    let text = loop {
        let text = scrape(&lab, "http://127.0.0.1:9464/metrics");
        if sample(&text, series).is_some() || Instant::now() >= end {
            break text;
        }
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    let server = "{server=\"127.0.0.1:8080\"}";
    assert_eq!(
        sample(&text, &format!("tcprace_requests_total{server}")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &format!("tcprace_idle_close_seconds_count{server}")),
        Some(1.0)
    );
    assert!(sample(&text, "tcprace_packets_total").unwrap() >= 10.0);
    assert_eq!(sample(&text, "tcprace_kernel_dropped_total"), Some(0.0));
    assert_eq!(sample(&text, "tcprace_interface_dropped_total"), Some(0.0));
    assert!(text.ends_with("# EOF\n"));
    let _ = Command::new("kill")
        .args(["-TERM", &lab.children[t].id().to_string()])
        .status();
    let (status, _) = finish(&mut lab, t, stdout);
    assert_eq!(status.code(), Some(1));
}

/// A listener on port 8080 that reads everything, and a client that sends it about 3 MB (in
/// 64 KiB writes).
const BULK: &str = r#"
import socket, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 8080))
l.listen(1)
def sink():
    c, _ = l.accept()
    while c.recv(1 << 20):
        pass
t = threading.Thread(target=sink)
t.start()
s = socket.create_connection(("127.0.0.1", 8080), timeout=3)
for _ in range(48):
    s.sendall(b"x" * 65536)
s.close()
t.join(5)
"#;

/// A field of /proc/PID/task/TID/status.
fn task_status(pid: u32, tid: &str, field: &str) -> String {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn z_drops_root_and_every_capability_and_w_keeps_a_ring_of_files() {
    let mut lab = lab_or_skip!("relinquish");
    let ring = lab.dir.join("ring");
    std::fs::create_dir(&ring).unwrap();
    // the files are created by the user privileges are dropped to
    let _ = Command::new("chmod").arg("0777").arg(&ring).status();
    let base = ring.join("cap.pcap");
    let base_s = base.to_str().unwrap();
    let t = lab.spawn(&[
        BIN,
        "-i",
        "lo",
        "-f",
        "tcp port 8080",
        "--format",
        "json",
        "--duration",
        "6",
        "-Z",
        "nobody",
        "-w",
        base_s,
        "-C",
        "1",
        "-W",
        "2",
        "--metrics",
        "127.0.0.1:9464",
    ]);
    let stdout = line_reader(lab.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    let pid = lab.children[t].id();
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    // every thread: the main one and the metrics endpoint's
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(tasks.len() >= 2, "threads: {tasks:?}");
    for tid in &tasks {
        let uids = task_status(pid, tid, "Uid");
        assert!(
            uids.split_whitespace().all(|u| u == nobody),
            "real, effective, saved and fs uid are nobody's ({nobody}): {uids}"
        );
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(task_status(pid, tid, set), "0000000000000000", "{set}");
        }
    }
    assert!(scrape(&lab, "http://127.0.0.1:9464/metrics").contains("tcprace_packets_total"));
    let bulk = lab.run_timeout(&["python3", "-c", BULK], Duration::from_secs(15));
    assert!(
        bulk.status.success(),
        "{}",
        String::from_utf8_lossy(&bulk.stderr)
    );
    let (status, text) = finish(&mut lab, t, stdout);
    let errors: Vec<String> = stderr.try_iter().map(|(_, l)| l).collect();
    assert!(status.success(), "exit 0; stderr: {errors:?}");
    let report: Value = serde_json::from_str(&text).expect("JSON report");
    assert!(report["capture"]["captured"].as_u64().unwrap() > 40);
    // ~3 MB in files of 1 MB (the last one smaller), the two latest kept: cap.pcap0 and
    // cap.pcap1, at most 1 MB and a packet each
    let mut names: Vec<String> = std::fs::read_dir(&ring)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cap.pcap0", "cap.pcap1"]);
    let mut largest = 0;
    for n in &names {
        let len = std::fs::metadata(ring.join(n)).unwrap().len();
        assert!(len <= 1_000_000 + 65_536 + 16, "{n}: {len} bytes");
        largest = largest.max(len);
        let out = Command::new(BIN)
            .args(["--no-progress", "--format", "json"])
            .arg(ring.join(n))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{n} is a capture file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(largest >= 900_000, "a full file: {largest} bytes");
}

/// Prometheus scraping tcprace every second, both in the lab's namespace.
const PROMETHEUS_CONFIG: &str = "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tcprace
    static_configs:
      - targets: ['127.0.0.1:9464']
";

#[test]
fn a_real_prometheus_scrapes_the_findings_counter() {
    const NAME: &str = "prometheus";
    let (Some(prometheus), Some(promtool)) = (find_tool("prometheus"), find_tool("promtool"))
    else {
        eprintln!("SKIPPED {NAME}: prometheus and promtool not found (apt-get install prometheus)");
        return;
    };
    let mut lab = lab_or_skip!(NAME);
    let (_, _stdout, stderr) = capture_on_lo(&mut lab, "40");
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    let config = lab.dir.join("prometheus.yml");
    std::fs::write(&config, PROMETHEUS_CONFIG).unwrap();
    let data = lab.dir.join("tsdb");
    lab.spawn(&[
        prometheus.to_str().unwrap(),
        &format!("--config.file={}", config.display()),
        &format!("--storage.tsdb.path={}", data.display()),
        "--web.listen-address=127.0.0.1:9090",
    ]);
    let client = lab.run_timeout(&["python3", "-c", CLIENT], Duration::from_secs(15));
    assert!(client.status.success());

    // the finding is final ~3 s after the request; Prometheus scrapes every second
    let query = "http://127.0.0.1:9090/api/v1/query?query=tcprace_findings_total";
    let end = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let body = lab.run_timeout(
            &["python3", "-c", &format!("import urllib.request; print(urllib.request.urlopen({query:?}, timeout=2).read().decode())")],
            Duration::from_secs(10),
        );
        let v: Option<Value> = serde_json::from_slice(&body.stdout).ok();
        let found = v
            .as_ref()
            .and_then(|v| v["data"]["result"].as_array().cloned());
        match found {
            Some(r) if !r.is_empty() => break r,
            _ if Instant::now() >= end => panic!("Prometheus has no tcprace_findings_total: {v:?}"),
            _ => thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(result.len(), 1, "{result:?}");
    let m = &result[0]["metric"];
    assert_eq!(m["server"], "127.0.0.1:8080");
    assert_eq!(m["kind"], "after_fin");
    assert_eq!(m["outcome"], "lost");
    assert_eq!(m["job"], "tcprace");
    assert_eq!(result[0]["value"][1], "1");

    // promtool reads the exposition: it parses; its only remarks are that the OpenMetrics
    // counters' help is written for the family name (without _total), as OpenMetrics says
    let text = scrape(&lab, "http://127.0.0.1:9464/metrics");
    let path = lab.dir.join("exposition.txt");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let remarks = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool check metrics: {remarks}"
    );
    for l in remarks.lines() {
        assert!(
            l.ends_with("_total no help text"),
            "promtool check metrics: {remarks}"
        );
    }
}
