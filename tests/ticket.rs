//! The report for an incident ticket, end to end: golden HTML and Markdown for two captures,
//! the Markdown parsed by a CommonMark parser, the HTML rendered by headless Chromium (the page
//! holds the findings and the screenshot is not blank), and the `--write-flagged` pcap analysed
//! again (the same findings, the frames the report names in it).

mod common;

use common::{root, tcprace};
use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcpraceticket{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A report file written by `--report`, with what changes between builds and machines (the
/// version, the binary's path) normalised.
fn report_of(capture: &str, ext: &str) -> String {
    // a name Markdown does not escape, so that the command line can be normalised
    let name: String = Path::new(capture)
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let out = tmp(&format!("{name}.{ext}"));
    let o = tcprace(&["--report", out.to_str().unwrap(), capture]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out)
        .unwrap()
        .replace(env!("CARGO_BIN_EXE_tcprace"), "tcprace")
        .replace(out.to_str().unwrap(), "REPORT")
        .replace(
            &format!("tcprace {}", env!("CARGO_PKG_VERSION")),
            "tcprace VERSION",
        )
}

const GOLDEN: [&str; 2] = [
    "fixtures/scenarios/crossed_fin_client_side.pcap",
    "fixtures/lab/captures/nginx-crossing/proxy.pcap",
];

fn golden_name(capture: &str, ext: &str) -> PathBuf {
    let stem = capture
        .trim_start_matches("fixtures/")
        .replace(['/', '.'], "_");
    root().join(format!("fixtures/reports/{stem}.golden.{ext}"))
}

/// The HTML and Markdown reports of two captures equal their golden files
/// (UPDATE_GOLDEN=1 rewrites them; review the diff).
#[test]
fn reports_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for capture in GOLDEN {
        for ext in ["html", "md"] {
            let got = report_of(capture, ext);
            let golden = golden_name(capture, ext);
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            match std::fs::read_to_string(&golden) {
                Ok(want) if want == got => {}
                Ok(_) => failures.push(format!(
                    "{capture}: the {ext} report differs from {} (rerun with UPDATE_GOLDEN=1 and review the diff)",
                    golden.display()
                )),
                Err(_) => failures.push(format!("{}: no golden file", golden.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The HTML reports are self-contained: nothing that loads from elsewhere (script, stylesheet,
/// image, frame, font, import, refresh), and every link and SVG reference within the page.
#[test]
fn html_reports_fetch_nothing() {
    for capture in GOLDEN {
        let html = report_of(capture, "html").to_ascii_lowercase();
        for loads in [
            "<script",
            "<link",
            "<img",
            "<iframe",
            "<object",
            "<embed",
            "<base",
            "<audio",
            "<video",
            "<source",
            "src=",
            "srcset",
            "@import",
            "@font-face",
            "http-equiv",
        ] {
            assert!(
                !html.contains(loads),
                "{capture}: {loads} in the HTML report"
            );
        }
        for (reference, quote) in [("href=", "\""), ("url(", "")] {
            let mut n = 0;
            for (at, _) in html.match_indices(reference) {
                let rest = &html[at + reference.len()..];
                let rest = rest.strip_prefix(quote).unwrap_or(rest);
                assert!(
                    rest.starts_with('#'),
                    "{capture}: {reference} not within the page: {}",
                    &rest[..rest.len().min(60)]
                );
                n += 1;
            }
            assert!(
                n > 0,
                "{capture}: no {reference} at all (the check checks nothing)"
            );
        }
    }
}

/// The text of a Markdown document's table cells, per table, per row.
fn tables(md: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut in_cell = false;
    for ev in Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::TableCell) => {
                in_cell = true;
                cell.clear();
            }
            Event::End(TagEnd::TableCell) => {
                in_cell = false;
                row.push(cell.clone());
            }
            Event::End(TagEnd::TableRow | TagEnd::TableHead) => rows.push(std::mem::take(&mut row)),
            Event::End(TagEnd::Table) => tables.push(std::mem::take(&mut rows)),
            Event::Text(t) | Event::Code(t) if in_cell => cell.push_str(&t),
            _ => {}
        }
    }
    tables
}

/// The Markdown parses as CommonMark (with pipe tables): one findings table with a row per
/// finding, whose cells hold what the JSON says.
#[test]
fn markdown_parses_with_a_row_per_finding() {
    let capture = "fixtures/lab/captures/nginx-crossing/proxy.pcap";
    let md = report_of(capture, "md");
    let json: Value =
        serde_json::from_slice(&tcprace(&["--format", "json", capture]).stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    let tables = tables(&md);
    let table = tables
        .iter()
        .find(|t| {
            t.first()
                .is_some_and(|h| h.iter().any(|c| c == "client got"))
        })
        .expect("a findings table");
    assert_eq!(table.len(), findings.len() + 1, "{table:?}");
    for (row, f) in table[1..].iter().zip(findings) {
        assert_eq!(row.len(), 10, "{row:?}");
        assert_eq!(row[3], f["request"]["frame"].to_string());
        assert_eq!(row[6], f["kind"].as_str().unwrap());
        assert_eq!(row[7], f["outcome"].as_str().unwrap());
        let status = f["client_effect"]["status"].as_u64().unwrap();
        assert!(row[9].starts_with(&status.to_string()), "{row:?}");
    }
    let headings = Parser::new(&md)
        .filter(|e| matches!(e, Event::Start(Tag::Heading { .. })))
        .count();
    // title, provenance, the upstream, the findings, one per finding shown in full
    assert_eq!(headings, 4 + findings.len().min(25));
}

/// `chromium` from Debian (installed by .ci/run), or None (the test says loudly that it skips).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Headless Chromium on a page, as root too (no sandbox), with no terminal; killed after two
/// minutes (by coreutils' `timeout`) so that a hung browser fails the test instead of CI.
fn chromium_run(html: &Path, extra: &[&str]) -> Output {
    let profile = tmp(&format!("chromium-profile-{}", extra.len()));
    Command::new("timeout")
        .args(["--kill-after=10", "120"])
        .arg(chromium().unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // containers often have a small /dev/shm
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium")
}

/// The HTML report rendered by headless Chromium: the page it builds holds the verdict and
/// every finding's request, and the screenshot is not blank (it has the report's dark text,
/// red lost verdicts and blue reuse bars). UPDATE_SCREENSHOT=1 saves it as docs/report.png.
#[test]
fn html_renders_in_headless_chromium() {
    if chromium().is_none() {
        // straight to stderr: the test harness does not capture it, so the skip shows in CI
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED html_renders_in_headless_chromium: chromium not found \
             (apt-get install chromium; .ci/run installs it)"
        );
        return;
    }
    let capture = "fixtures/lab/captures/nginx-crossing/proxy.pcap";
    let html = tmp("render.html");
    let o = tcprace(&["--report", html.to_str().unwrap(), capture]);
    assert_eq!(o.status.code(), Some(1));
    let run = chromium_run(&html, &["--dump-dom"]);
    assert!(
        run.status.success(),
        "chromium: {}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let dom = String::from_utf8_lossy(&run.stdout);
    assert!(
        dom.contains("21 request(s) sent on connections the server had closed"),
        "{dom}"
    );
    let json: Value =
        serde_json::from_slice(&tcprace(&["--format", "json", capture]).stdout).unwrap();
    for f in json["findings"].as_array().unwrap() {
        let target = f["request"]["target"].as_str().unwrap();
        assert!(dom.contains(target), "{target} not in the rendered page");
    }
    assert!(dom.contains("<svg class=\"ladder\""));
    let png = tmp("render.png");
    let shot = chromium_run(
        &html,
        &[
            "--window-size=1100,1500",
            &format!("--screenshot={}", png.display()),
        ],
    );
    assert!(png.exists(), "{}", String::from_utf8_lossy(&shot.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels = buf[..info.buffer_size()].chunks(px);
    let (mut dark, mut red, mut blue, mut total) = (0usize, 0usize, 0usize, 0usize);
    for p in pixels {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        total += 1;
        dark += usize::from(r + g + b < 200);
        red += usize::from(r > 150 && g < 90 && b < 90);
        blue += usize::from(b > 130 && r < 80 && g < 130);
    }
    assert_eq!((info.width, info.height), (1100, 1500));
    assert!(
        dark * 200 > total,
        "too little text: {dark} dark pixels of {total}"
    );
    assert!(red > 200 && blue > 200, "red {red}, blue {blue}");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(root().join("docs")).unwrap();
        std::fs::copy(&png, root().join("docs/report.png")).unwrap();
    }
}

fn findings_of(json: &Value) -> Vec<(String, String, String, String, Option<u64>)> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["outcome"].as_str().unwrap().to_string(),
                f["request"]["method"].as_str().unwrap().to_string(),
                f["request"]["target"].as_str().unwrap().to_string(),
                f["client_effect"]["status"].as_u64(),
            )
        })
        .collect()
}

/// `--write-flagged` keeps only the connections with findings (and their retries and client
/// legs, with the copies of their segments); analysing that file again gives the same
/// findings, at the frames the report names.
#[test]
fn the_flagged_pcap_gives_the_same_findings() {
    let mut captures: Vec<String> = std::fs::read_dir(root().join("fixtures/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| !p.contains("sll2") && !p.contains("tuple_reuse"))
        .collect();
    captures.sort();
    let sets: Vec<Vec<String>> = vec![
        vec!["fixtures/lab/captures/nginx-crossing/proxy.pcap".into()],
        vec!["fixtures/lab/captures/haproxy-crossing/proxy.pcap".into()],
        // every upstream segment twice: bare and in the VXLAN overlay (the copies are kept)
        vec!["fixtures/lab/captures/vxlan-overlay/proxy.pcap".into()],
        vec!["fixtures/lab/captures/nginx-busy-id/upstream.pcap.gz".into()],
        captures,
    ];
    for (i, set) in sets.iter().enumerate() {
        let flagged = tmp(&format!("flagged{i}.pcap"));
        let mut args = vec![
            "--format",
            "json",
            "--write-flagged",
            flagged.to_str().unwrap(),
        ];
        args.extend(set.iter().map(String::as_str));
        let first = tcprace(&args);
        assert_eq!(
            first.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let first: Value = serde_json::from_slice(&first.stdout).unwrap();
        let again = tcprace(&["--format", "json", flagged.to_str().unwrap()]);
        let again: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(findings_of(&first), findings_of(&again), "{set:?}");
        let summary = &first["flagged"];
        assert!(summary["packets"].as_u64().unwrap() > 0);
        assert!(
            summary["packets"].as_u64().unwrap() <= first["summary"]["packets"].as_u64().unwrap()
        );
        for (a, b) in first["findings"]
            .as_array()
            .unwrap()
            .iter()
            .zip(again["findings"].as_array().unwrap())
        {
            assert_eq!(
                a["flagged_frames"]["request"], b["request"]["frame"],
                "{set:?}"
            );
            if let Some(p) = a["peer_close"].as_object() {
                assert_eq!(
                    a["flagged_frames"]["peer_close"], b["peer_close"]["frame"],
                    "{p:?}"
                );
            }
        }
    }
}

/// Without findings the flagged file is an empty capture; on the busy capture only a part of
/// the packets is kept.
#[test]
fn the_flagged_pcap_holds_only_what_matters() {
    let flagged = tmp("safe.pcap");
    let o = tcprace(&[
        "--format",
        "json",
        "--write-flagged",
        flagged.to_str().unwrap(),
        "fixtures/lab/captures/safe/proxy.pcap",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["flagged"]["packets"], 0);
    assert_eq!(std::fs::metadata(&flagged).unwrap().len(), 24);
    let busy = tmp("busy.pcap");
    let o = tcprace(&[
        "--format",
        "json",
        "--write-flagged",
        busy.to_str().unwrap(),
        "fixtures/lab/captures/nginx-busy-id/upstream.pcap.gz",
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kept = j["flagged"]["packets"].as_u64().unwrap();
    let all = j["summary"]["packets"].as_u64().unwrap();
    assert!(kept > 0 && kept * 2 < all, "kept {kept} of {all}");
}

/// From standard input: the report states its size and SHA-256 (hashed as it was read, it
/// cannot be read twice), and the flight recorder works in the same one pass.
#[test]
fn stdin_gets_its_digest_and_its_flagged_packets() {
    use sha2::Digest;
    use std::io::Write;
    let capture = root().join("fixtures/scenarios/retried.pcap");
    let bytes = std::fs::read(&capture).unwrap();
    assert_eq!(bytes.len(), 1970);
    let flagged = tmp("stdin-flagged.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args([
            "--format",
            "markdown",
            "--write-flagged",
            flagged.to_str().unwrap(),
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    let sha = tcprace::capture::hex(&sha2::Sha256::digest(&bytes));
    assert!(
        md.contains(&format!("standard input (1,970 bytes, SHA-256 {sha})")),
        "{md}"
    );
    let once: Value =
        serde_json::from_slice(&tcprace(&["--format", "json", capture.to_str().unwrap()]).stdout)
            .unwrap();
    let again: Value =
        serde_json::from_slice(&tcprace(&["--format", "json", flagged.to_str().unwrap()]).stdout)
            .unwrap();
    assert_eq!(findings_of(&once), findings_of(&again));
}
