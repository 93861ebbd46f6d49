//! End-to-end tests of the `tcprace` binary: scenario captures against golden JSON and their
//! expected verdicts, exit codes, input handling, and the public corpus.

mod common;

use common::{root, tcprace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = root().join("fixtures/scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/scenarios")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v
}

/// The report without what changes between releases.
fn normalized(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("tool");
    }
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every scenario capture's JSON report equals its golden file (UPDATE_GOLDEN=1 rewrites them).
#[test]
fn scenarios_match_golden_json() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for pcap in scenario_files() {
        let out = tcprace(&["--format", "json", &rel(&pcap)]);
        let got = normalized(json_of(&out));
        let golden = pcap.with_extension("golden.json");
        if update {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&golden, text).unwrap();
            continue;
        }
        let want: Value = match std::fs::read(&golden) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => {
                failures.push(format!("{}: no golden file", rel(&golden)));
                continue;
            }
        };
        if got != want {
            failures.push(format!(
                "{} differs from {} (rerun with UPDATE_GOLDEN=1 and review the diff)",
                rel(&pcap),
                rel(&golden)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The verdicts each scenario was built to produce (fixtures/scenarios/expected.json), checked
/// independently of the golden files: kinds, outcomes, request frames and the exit code.
#[test]
fn scenarios_give_the_expected_verdicts() {
    let expected: Value = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/scenarios/expected.json")).unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    for (file, exp) in expected.as_object().unwrap() {
        let path = format!("fixtures/scenarios/{file}");
        let out = tcprace(&["--format", "json", &path]);
        let got = json_of(&out);
        let pick = |v: &Value, from_report: bool| -> Vec<(String, String, String, String, u64)> {
            let mut r: Vec<_> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
                    if from_report {
                        let q = &f["request"];
                        (
                            s("kind"),
                            s("outcome"),
                            q["method"].as_str().unwrap_or("").into(),
                            q["target"].as_str().unwrap_or("").into(),
                            q["frame"].as_u64().unwrap_or(0),
                        )
                    } else {
                        (
                            s("kind"),
                            s("outcome"),
                            s("method"),
                            s("target"),
                            f["request_frame"].as_u64().unwrap_or(0),
                        )
                    }
                })
                .collect();
            r.sort();
            r
        };
        let want_f = pick(&exp["findings"], false);
        let got_f = pick(&got["findings"], true);
        if want_f != got_f {
            failures.push(format!("{file}: findings {got_f:?}, expected {want_f:?}"));
        }
        if let Some(info) = exp.get("informational").filter(|v| v.is_array()) {
            let want_kinds: Vec<&str> = info
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap_or(""))
                .collect();
            let got_kinds: Vec<&str> = got["informational"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap_or(""))
                .collect();
            if want_kinds != got_kinds {
                failures.push(format!(
                    "{file}: informational {got_kinds:?}, expected {want_kinds:?}"
                ));
            }
        }
        let code = out.status.code();
        if code != exp["exit_code"].as_i64().map(|c| c as i32) {
            failures.push(format!(
                "{file}: exit code {code:?}, expected {}",
                exp["exit_code"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_race_seen_from_either_host_gets_the_same_verdict() {
    let a = json_of(&tcprace(&[
        "--format",
        "json",
        "fixtures/scenarios/crossed_fin_client_side.pcap",
    ]));
    let b = json_of(&tcprace(&[
        "--format",
        "json",
        "fixtures/scenarios/crossed_fin_server_side.pcap",
    ]));
    let kinds = |v: &Value| -> Vec<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{} {}", f["kind"], f["request"]["target"]))
            .collect()
    };
    assert_eq!(kinds(&a), kinds(&b));
    assert_eq!(kinds(&a).len(), 1);
}

#[test]
fn exit_codes_and_messages_for_bad_input() {
    let out = tcprace(&["no/such/file.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/file.pcap"), "{err}");

    let out = tcprace(&["Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cargo.toml"), "{err}");

    let out = tcprace(&[]);
    assert_eq!(out.status.code(), Some(2));

    let out = tcprace(&["--format", "xml", "x.pcap"]);
    assert_eq!(out.status.code(), Some(2));

    let out = tcprace(&["-f", "tcp prot 80", "fixtures/scenarios/fin_piggyback.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcp prot 80"), "{err}");
}

#[test]
fn a_file_cut_short_keeps_the_findings_and_warns_with_the_frame() {
    let src =
        std::fs::read(root().join("fixtures/scenarios/crossed_fin_client_side.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("tcprace-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap");
    // everything plus half of a copy of the last record's header and data
    let mut bytes = src.clone();
    bytes.extend_from_slice(&src[24..24 + 30]);
    std::fs::write(&cut, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", "json"])
        .arg(&cut)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frame"), "{err}");
    let v = json_of(&out);
    assert_eq!(v["summary"]["findings"], 1);
    assert!(v["summary"]["warnings"].as_u64().unwrap() >= 1);
}

#[test]
fn stdin_and_several_files_are_one_stream() {
    let file = root().join("fixtures/scenarios/crossed_fin_client_side.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(&file).unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["summary"]["findings"], 1);

    let out = tcprace(&[
        "--format",
        "json",
        "fixtures/scenarios/fin_piggyback.pcap",
        "fixtures/scenarios/crossed_fin_client_side.pcap",
    ]);
    let v = json_of(&out);
    assert_eq!(v["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["findings"][0]["request"]["file"],
        "fixtures/scenarios/crossed_fin_client_side.pcap"
    );
}

#[test]
fn jsonl_has_one_line_per_finding_then_a_summary() {
    let out = tcprace(&[
        "--format",
        "jsonl",
        "fixtures/scenarios/pipelined_tail_lost.pcap",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["record"], "finding");
    assert_eq!(lines[1]["record"], "finding");
    assert_eq!(lines[2]["record"], "summary");
    assert_eq!(lines[2]["summary"]["findings"], 2);
    for l in &lines {
        assert_eq!(l["schema_version"], 1, "{l}");
    }
    // addresses as text and as separate fields
    let c = &lines[0]["connection"];
    assert_eq!(
        format!("{}:{}", c["client_ip"].as_str().unwrap(), c["client_port"]),
        c["client"].as_str().unwrap()
    );
    assert_eq!(
        format!("{}:{}", c["server_ip"].as_str().unwrap(), c["server_port"]),
        c["server"].as_str().unwrap()
    );
    let e = &lines[2]["endpoints"][0];
    assert_eq!(e["server_ip"], c["server_ip"]);
    assert_eq!(e["server_port"], c["server_port"]);
}

#[test]
fn table_output_names_the_race_and_the_recommendation() {
    let out = tcprace(&["fixtures/scenarios/crossed_fin_client_side.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("crossed_fin"), "{text}");
    assert!(text.contains("Recommendations"), "{text}");
    assert!(text.contains("crossed in flight"), "{text}");
}

#[test]
fn a_bpf_filter_applies_to_files() {
    let out = tcprace(&[
        "--format",
        "json",
        "-f",
        "tcp port 9",
        "fixtures/scenarios/crossed_fin_client_side.pcap",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(v["summary"]["tcp_segments"], 0);
    assert!(v["skipped"]["filtered_out"].as_u64().unwrap() > 0);
}

/// Files the corpus MANIFEST marks as malformed on purpose that must be refused (exit 2).
const REFUSED: [&str; 3] = [
    "libpcap/tests/pcap-invalid-version-1.pcap",
    "libpcap/tests/pcapng-invalid-vers-1.pcapng",
    "libpcap/tests/shb-option-too-long.pcapng",
];

/// Every public capture in ../shared/corpus: no panic, no hang, valid JSON, exit 2 (with a
/// message naming the file) only for the malformed files listed above.
#[test]
fn corpus_runs_clean() {
    let corpus = root().join("../shared/corpus");
    let manifest = match std::fs::read_to_string(corpus.join("MANIFEST.tsv")) {
        Ok(m) => m,
        Err(_) => {
            eprintln!("skipping: {} not present", corpus.display());
            return;
        }
    };
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let path = cols[0];
        // key logs and scripts that go with a capture are not captures
        if path.is_empty() || cols.get(7).is_some_and(|f| f.starts_with("text")) {
            continue;
        }
        let full = corpus.join(path);
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
            .args(["--format", "json"])
            .arg(&full)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("panicked") || code.is_none() {
            failures.push(format!("{path}: crashed: {stderr}"));
            continue;
        }
        if took > Duration::from_secs(20) {
            failures.push(format!("{path}: took {took:?}"));
        }
        if REFUSED.contains(&path) {
            if code != Some(2) || !stderr.contains(path.rsplit('/').next().unwrap()) {
                failures.push(format!(
                    "{path}: expected exit 2 naming the file, got {code:?}: {stderr}"
                ));
            }
            continue;
        }
        if !matches!(code, Some(0) | Some(1)) {
            failures.push(format!("{path}: exit {code:?}: {stderr}"));
            continue;
        }
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(v) => {
                let n = v["findings"].as_array().map_or(0, Vec::len);
                if (n > 0) != (code == Some(1)) {
                    failures.push(format!("{path}: {n} findings but exit {code:?}"));
                }
            }
            Err(e) => failures.push(format!("{path}: invalid JSON: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Known traps in the corpus (see its MANIFEST): forged RST/FIN before the handshake, a 4-tuple
/// reused an hour later without a visible SYN, data and FIN sent before the handshake completed.
/// None of them is a keep-alive race.
#[test]
fn corpus_traps_are_not_findings() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    }
    for path in [
        "suricata-verify/tests/bug-3286-02-linux-evasion/with_evasion_linux.pcap",
        "suricata-verify/tests/bug-3286-03-windows-evasion/with_evasion_windows.pcap",
        "nDPI/tests/cfgs/default/pcap/ndpi_match_string_subprotocol__error.pcapng",
        "arkime/tests/pcap/CVE-2018-6794.pcap",
        "zeek/testing/btest/Traces/http/bro.org.pcap",
        "nDPI/tests/cfgs/default/pcap/http_asymmetric.pcapng",
    ] {
        let full = corpus.join(path);
        let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
            .args(["--format", "json"])
            .arg(&full)
            .output()
            .unwrap();
        let v = json_of(&out);
        assert_eq!(
            v["summary"]["findings"],
            0,
            "{path}: {}",
            serde_json::to_string_pretty(&v["findings"]).unwrap()
        );
        assert_eq!(out.status.code(), Some(0), "{path}");
    }
    // the evasion captures still have their one answered request
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", "json"])
        .arg(corpus.join("suricata-verify/tests/bug-3286-02-linux-evasion/with_evasion_linux.pcap"))
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["summary"]["requests"], 1);
    assert_eq!(v["summary"]["responses"], 1);
}

/// Idle closes in real captures: bro.org's Apache closes idle keep-alive connections ~5 s after
/// the last response.
#[test]
fn corpus_idle_closes_are_measured() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", "json"])
        .arg(corpus.join("zeek/testing/btest/Traces/http/bro.org.pcap"))
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["summary"]["requests"], 31);
    assert_eq!(v["summary"]["responses"], 31);
    let eps = v["endpoints"].as_array().unwrap();
    let closes: Vec<f64> = eps
        .iter()
        .filter_map(|e| e["idle_closes"]["median_s"].as_f64())
        .collect();
    assert!(
        closes.iter().any(|m| (4.9..5.2).contains(m)),
        "idle close medians {closes:?}"
    );
}

/// `tcpdump -w - | tcprace --format jsonl -`: a finding is written as soon as its verdict is
/// final (capture time moved past the retry window), while standard input is still open.
#[test]
fn jsonl_on_stdin_streams_findings_before_the_input_ends() {
    use std::io::{BufRead, BufReader, Write};
    let mut bytes =
        std::fs::read(root().join("fixtures/scenarios/crossed_fin_client_side.pcap")).unwrap();
    // find the last record and append a copy of it 5 s later, to move capture time on
    let mut pos = 24;
    let mut last = pos;
    while pos + 16 <= bytes.len() {
        last = pos;
        let caplen = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        pos += 16 + caplen;
    }
    let mut rec = bytes[last..pos].to_vec();
    let secs = u32::from_le_bytes(rec[0..4].try_into().unwrap()) + 5;
    rec[0..4].copy_from_slice(&secs.to_le_bytes());
    bytes.extend_from_slice(&rec);

    let mut child = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // stdin is still open: the finding must come anyway
    let first = rx.recv_timeout(Duration::from_secs(10));
    drop(stdin);
    let status = child.wait().unwrap();
    let first: Value = serde_json::from_str(&first.expect("no line while stdin was open")).unwrap();
    assert_eq!(first["record"], "finding");
    assert_eq!(first["kind"], "crossed_fin");
    let summary: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(summary["record"], "summary");
    assert_eq!(status.code(), Some(1));
}
