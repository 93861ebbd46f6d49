//! HTTP/2 end to end: the public corpus's HTTP/2 captures (h2c with prior knowledge, by
//! upgrade, through a CONNECT tunnel, and h2 inside TLS with a key log) give as many requests as
//! tshark finds (`tshark -d tcp.port==N,http2 -Y http2.headers.method`), count no problem, and
//! never fail; the table shows the HTTP/2 columns.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tcprace(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .current_dir(root())
        .arg("--no-progress")
        .args(args)
        .env_remove("SSLKEYLOGFILE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (capture under the corpus, key log, HTTP/2 requests, how the connections start)
const CORPUS: [(&str, Option<&str>, u64, &str); 12] = [
    (
        "hotplace/test/testcase/tls/http/http2.pcapng",
        Some("hotplace/test/testcase/tls/http/sslkeylog"),
        5,
        "tls",
    ),
    (
        "hotplace/test/testcase/tls/http/http2_trial.pcapng",
        Some("hotplace/test/testcase/tls/http/sslkeylog"),
        4,
        "tls",
    ),
    // the CONNECT tunnel's h2 and the proxy's own h2c leg
    (
        "suricata-verify/tests/http2-errorcode/input.pcap",
        None,
        2,
        "prior_knowledge",
    ),
    // the requests are the HTTP/1.1 upgrade requests (answered on stream 1)
    (
        "suricata-verify/tests/http2-range/http2-range.pcap",
        None,
        0,
        "upgrade",
    ),
    (
        "suricata-verify/tests/http2-keywords/input.pcap",
        None,
        6,
        "prior_knowledge",
    ),
    (
        "suricata-verify/tests/dns-over-http2-post/dns_over_https_POST.pcap",
        None,
        34,
        "prior_knowledge",
    ),
    (
        "suricata-verify/tests/http2-continuation/input.pcap",
        None,
        1,
        "prior_knowledge",
    ),
    (
        "suricata-verify/tests/http2-deflate-case/input.pcap",
        None,
        0,
        "upgrade",
    ),
    (
        "suricata-verify/tests/http2-compression-bug/input.pcap",
        None,
        5,
        "prior_knowledge",
    ),
    (
        "suricata-verify/tests/dns-over-http2-limit/input.pcap",
        None,
        1,
        "prior_knowledge",
    ),
    ("scapy/test/pcaps/http2_h2c.pcap", None, 1, "upgrade"),
    // a 16 KB HEADERS frame tshark 4.0 does not decode (it shows no :method); tcprace does
    (
        "arkime/tests/pcap/http2-nghttp2.pcap",
        None,
        1,
        "prior_knowledge",
    ),
];

#[test]
fn corpus_h2_requests_are_found_where_tshark_finds_them() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    }
    for (pcap, keys, requests, start) in CORPUS {
        let pcap = corpus.join(pcap);
        let keys = keys.map(|k| corpus.join(k));
        let mut args = vec!["--format", "json"];
        if let Some(k) = &keys {
            args.extend(["--tls-keylog", k.to_str().unwrap()]);
        }
        args.push(pcap.to_str().unwrap());
        let (code, out, err) = tcprace(&args);
        let name = pcap.display();
        assert!(matches!(code, Some(0 | 1)), "{name}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let h2 = &v["http2"];
        assert_eq!(h2["requests"], requests, "{name}: {h2}");
        assert_eq!(h2["errors"], serde_json::json!({}), "{name}: {h2}");
        assert_eq!(h2["heads_not_decoded"], 0, "{name}: {h2}");
        assert!(
            h2["by_start"][start].as_u64().unwrap_or(0) > 0,
            "{name}: {h2}"
        );
    }
}

#[test]
fn the_table_shows_streams_and_goaways() {
    let (code, out, err) = tcprace(&["fixtures/scenarios/h2_request_limit.pcap"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.contains("GET /p/2/3 (stream 7)"), "{out}");
    assert!(out.contains("GOAWAY"), "{out}");
    assert!(out.contains("3 after 3 requests"), "{out}");
    assert!(
        out.contains("sends GOAWAY after 3 requests per connection"),
        "{out}"
    );
}
