//! TLS end to end: the openssl s_client/s_server recordings in fixtures/tls (one per cipher
//! suite and per kind of resumption, made by fixtures/tls/record.sh) decrypt with their key
//! log and give the same requests without it; key log problems are warnings or clear errors;
//! the public corpus's TLS captures with key logs decrypt.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], env_keylog: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tcprace"));
    c.current_dir(root())
        .args(["--format", "json", "--no-progress"])
        .args(args)
        .env_remove("SSLKEYLOGFILE");
    if let Some(k) = env_keylog {
        c.env("SSLKEYLOGFILE", k);
    }
    c.output().unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const KEYLOG: &str = "fixtures/tls/keylog.txt";

/// (capture, version, connections, resumed)
const CASES: [(&str, &str, u64, u64); 9] = [
    ("tls12-aes128gcm", "TLS 1.2", 1, 0),
    ("tls12-aes256gcm", "TLS 1.2", 1, 0),
    ("tls12-chacha20", "TLS 1.2", 1, 0),
    ("tls13-aes128gcm", "TLS 1.3", 1, 0),
    ("tls13-aes256gcm", "TLS 1.3", 1, 0),
    ("tls13-chacha20", "TLS 1.3", 1, 0),
    ("tls12-resume-session-id", "TLS 1.2", 2, 1),
    ("tls12-resume-ticket", "TLS 1.2", 2, 1),
    ("tls13-resume-psk", "TLS 1.3", 2, 1),
];

#[test]
fn every_supported_suite_and_resumption_decrypts() {
    for (case, version, conns, resumed) in CASES {
        let pcap = format!("fixtures/tls/{case}.pcap");
        let v = json(&run(&["--tls-keylog", KEYLOG, &pcap], None));
        let tls = &v["tls"];
        assert_eq!(tls["versions"][version], conns, "{case}: {tls}");
        assert_eq!(tls["resumed"], resumed, "{case}: {tls}");
        assert_eq!(tls["decrypted_connections"], conns, "{case}: {tls}");
        assert_eq!(tls["undecrypted_records"], serde_json::json!({}), "{case}");
        // one GET per connection, answered (HTTP/1.0 read until close)
        assert_eq!(v["summary"]["requests"], conns, "{case}");
        assert_eq!(v["summary"]["responses"], conns, "{case}");
        // without keys: the same requests and responses, as flights of records
        let k = json(&run(&[&pcap], None));
        assert_eq!(k["tls"]["decrypted_connections"], 0, "{case}");
        assert_eq!(k["summary"]["requests"], conns, "{case} without keys");
        assert_eq!(k["summary"]["responses"], conns, "{case} without keys");
    }
}

/// The first CLIENT_RANDOM line logged for `case`.
fn first_master_secret(case: &str) -> String {
    let log = std::fs::read_to_string(root().join(KEYLOG)).unwrap();
    let mut lines = log.lines().skip_while(|l| *l != format!("# {case}"));
    lines
        .find(|l| l.starts_with("CLIENT_RANDOM"))
        .unwrap()
        .to_string()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tcprace-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// TLS 1.2 resumption when the key log only has the first connection's master secret: the
/// resumed connection's keys come from the session it resumed (by session id, or by ticket).
#[test]
fn tls12_resumed_sessions_decrypt_from_the_first_connections_secret() {
    for case in ["tls12-resume-session-id", "tls12-resume-ticket"] {
        let keys = temp_file(case, &first_master_secret(case));
        let pcap = format!("fixtures/tls/{case}.pcap");
        let v = json(&run(&["--tls-keylog", keys.to_str().unwrap(), &pcap], None));
        std::fs::remove_file(&keys).ok();
        assert_eq!(v["tls"]["decrypted_connections"], 2, "{case}: {}", v["tls"]);
    }
}

/// A wrong secret: the records are counted (auth_failed) and the connection is analysed
/// without keys; bad lines are warnings naming the file and line; SSLKEYLOGFILE is read when
/// the flag is absent; a missing --tls-keylog file is an error.
#[test]
fn key_log_problems_never_stop_the_run() {
    let good = first_master_secret("tls12-aes128gcm");
    let mut wrong: Vec<&str> = good.split(' ').collect();
    let zeros = "00".repeat(48);
    wrong[2] = &zeros;
    let text = format!("CLIENT_RANDOM nothex\n{}\n", wrong.join(" "));
    let keys = temp_file("wrong", &text);
    let pcap = "fixtures/tls/tls12-aes128gcm.pcap";
    let out = run(&["--tls-keylog", keys.to_str().unwrap(), pcap], None);
    let v = json(&out);
    assert_eq!(
        v["tls"]["undecrypted_records"]["auth_failed"], 1,
        "{}",
        v["tls"]
    );
    assert_eq!(v["tls"]["decrypted_connections"], 0);
    assert_eq!(v["summary"]["requests"], 1, "analysed without keys");
    let w = &v["warnings"][0];
    assert_eq!(w["file"], keys.to_str().unwrap());
    assert!(w["message"].as_str().unwrap().contains("line 1"), "{w}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    // the environment's key log
    let env_keys = temp_file("env", &format!("{good}\n"));
    let v = json(&run(&[pcap], Some(&env_keys)));
    assert_eq!(v["tls"]["decrypted_connections"], 1);
    std::fs::remove_file(&env_keys).ok();
    std::fs::remove_file(&keys).ok();
    let out = run(&["--tls-keylog", "/nonexistent/keys.txt", pcap], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keys.txt"));
}

/// The corpus's captures with NSS key logs: every one decrypts, HTTP/1.x and HTTP/2 (ALPN h2)
/// inside are found (as many requests as tshark shows with the keys), nothing is left
/// undecrypted.
#[test]
fn corpus_tls_captures_decrypt() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    }
    let hotplace = "hotplace/test/testcase/tls/http";
    let snet = "snet/tests/pcap/data/decrypt_by_keylog";
    let cases: [(String, String, u64); 8] = [
        (
            format!("{hotplace}/curl_http1_tls12.pcapng"),
            format!("{hotplace}/sslkeylog"),
            1,
        ),
        (
            format!("{hotplace}/curl_http1_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256.pcapng"),
            format!("{hotplace}/sslkeylog"),
            1,
        ),
        (
            format!("{hotplace}/http1.pcapng"),
            format!("{hotplace}/sslkeylog"),
            11,
        ),
        (
            "scapy/doc/notebooks/tls/raw_data/tls_nss_example.pcap".into(),
            "scapy/doc/notebooks/tls/raw_data/tls_nss_example.keys.txt".into(),
            2,
        ),
        (
            format!("{snet}/TLS1_3_TLS_CHACHA20_POLY1305_SHA256.pcap"),
            format!("{snet}/TLS1_3_TLS_CHACHA20_POLY1305_SHA256.txt"),
            0,
        ),
        (
            format!("{snet}/TLS1_2_ECDHE-RSA-AES128-GCM-SHA256_auth.pcap"),
            format!("{snet}/TLS1_2_ECDHE-RSA-AES128-GCM-SHA256_auth.txt"),
            0,
        ),
        (
            "illustrated-tls13/captures/capture.pcap".into(),
            "illustrated-tls13/captures/keylog.txt".into(),
            0,
        ),
        // ALPN h2: the HTTP/2 analyzer reads the plaintext (5 requests, as tshark finds)
        (
            format!("{hotplace}/http2.pcapng"),
            format!("{hotplace}/sslkeylog"),
            5,
        ),
    ];
    for (pcap, keys, requests) in cases {
        let (pcap, keys) = (corpus.join(&pcap), corpus.join(&keys));
        let v = json(&run(
            &[
                "--tls-keylog",
                keys.to_str().unwrap(),
                pcap.to_str().unwrap(),
            ],
            None,
        ));
        let tls = &v["tls"];
        let name = pcap.display();
        assert!(
            tls["decrypted_records"].as_u64().unwrap() > 0,
            "{name}: {tls}"
        );
        assert_eq!(v["summary"]["warnings"], 0, "{name}");
        if name.to_string().ends_with("http2.pcapng") {
            assert_eq!(v["http2"]["by_start"]["tls"], 2, "{name}");
            assert_eq!(v["http2"]["heads_not_decoded"], 0, "{name}");
        }
        assert_eq!(tls["undecrypted_records"], serde_json::json!({}), "{name}");
        assert_eq!(v["summary"]["requests"], requests, "{name}");
    }
}
