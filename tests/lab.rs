//! The reproduction lab's committed captures (fixtures/lab/captures: real nginx, HAProxy,
//! gunicorn, uvicorn and node racing through a delay line) against the ground truth taken from
//! the proxies' own logs. fixtures/lab/check.py does the comparison: for every capture, the
//! findings on the proxy->upstream leg name exactly the affected requests (no more, no fewer)
//! with the right outcome, the proxy-side and upstream-side captures agree on the kinds, and
//! the safe configuration has no finding. In the busy scenarios (20 clients sending identical
//! requests) every failed attempt is checked by frame: with X-Request-ID every outcome and
//! retry frame is right; without it at most 1% of the definite outcomes are wrong.
//! The TLS scenarios (nginx to node over TLS 1.2 and 1.3) are checked with their key log
//! (requests decrypted and named) and without (the same requests found as encrypted flights,
//! retries matched by size). The HTTP/2 scenario (Caddy to node's h2c server, which closes idle
//! sessions with GOAWAY) is checked like the cleartext ones: every stream the proxy lost or
//! retried is a crossed_goaway with its outcome, from both capture points; its TLS twin (ALPN h2)
//! the same with node's key log. In `vxlan-overlay` the proxy reaches the upstream across a VXLAN
//! overlay: its underlay capture (VXLAN only), the proxy host's `-i any` (every segment twice,
//! plain and encapsulated) and the inner interface give the same verdicts.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn lab_captures_match_the_proxies_logs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => "python3",
        _ => {
            eprintln!("skipping: python3 is needed to run fixtures/lab/check.py");
            return;
        }
    };
    let out = Command::new(python)
        .current_dir(&root)
        .args([
            "fixtures/lab/check.py",
            "--tcprace",
            env!("CARGO_BIN_EXE_tcprace"),
            "fixtures/lab/captures",
        ])
        .output()
        .expect("run check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // every committed scenario was checked
    for s in [
        "nginx-crossing",
        "haproxy-crossing",
        "stale-reuse",
        "safe",
        "middlebox-rst",
        "nginx-busy-id",
        "nginx-busy-noid",
        "tls12-crossing",
        "tls13-crossing",
        "caddy-h2c",
        "caddy-h2-tls",
        "vxlan-overlay",
    ] {
        assert!(text.contains(s), "scenario {s} not checked:\n{text}");
    }
}
