//! Captures from the cloud and from Kubernetes nodes: the scenario captures and the lab's real
//! races wrapped in every encapsulation, and seen on both sides of a NAT, give exactly the
//! verdicts of the bare captures; the public tunnel captures decode.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tcprace::capture::FileSource;
use tcprace::engine::{Config, RunOptions};
use tcprace::report::{JsonRenderer, Report};
use tcprace::synth::{Encap, Nat};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tcprace-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The report of a capture, as `--format json` makes it (two shards).
fn report(path: &Path) -> Report {
    let mut src = FileSource::open(&[path.to_string_lossy().into_owned()]).unwrap();
    let opts = RunOptions {
        config: Config::default(),
        threads: 2,
        max_warnings: 0,
        record: None,
    };
    let mut out = JsonRenderer::new(std::io::sink());
    tcprace::engine::run(&mut src, &opts, &mut out, &mut ()).unwrap()
}

/// The scenario captures and the lab's, with their client address and server endpoint.
fn captures() -> Vec<(PathBuf, &'static str, &'static str)> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(root().join("fixtures/scenarios")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "pcap") {
            v.push((p, "192.0.2.10", "198.51.100.20:8080"));
        }
    }
    for entry in std::fs::read_dir(root().join("fixtures/lab/captures")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.ends_with("vxlan-overlay") {
            continue; // tunnelled already (tests/lab.rs checks it)
        }
        for f in ["proxy.pcap", "upstream.pcap"] {
            let p = dir.join(f);
            if p.exists() {
                v.push((p, "198.18.0.1", "198.18.1.2:8000"));
            }
        }
    }
    v.sort();
    assert!(v.len() > 25);
    v
}

fn json(r: &Report, file: &Path, as_file: &Path) -> Value {
    let text = serde_json::to_string(r).unwrap().replace(
        &file.to_string_lossy().into_owned(),
        &as_file.to_string_lossy(),
    );
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("tool");
    v
}

/// The report of an encapsulated capture without what the encapsulation adds (its bytes, the
/// tunnel named on connections and in the evidence, the count of tunnelled segments).
fn without_tunnel(mut v: Value) -> Value {
    v["summary"].as_object_mut().unwrap().remove("bytes");
    v["tcp"]
        .as_object_mut()
        .unwrap()
        .remove("tunnelled_segments");
    for list in ["findings", "informational"] {
        for f in v[list].as_array_mut().unwrap() {
            assert!(!f["connection"]["tunnel"].is_null(), "no tunnel named: {f}");
            f["connection"]["tunnel"] = Value::Null;
            let evidence = f["evidence"].as_str().unwrap();
            let at = evidence
                .find(" Captured inside ")
                .expect("the tunnel in the evidence");
            // the sentence ends at the first full stop that is not inside an address
            let rest = &evidence[at + 1..];
            let end = rest.find(". ").map_or(rest.len(), |i| i + 1);
            f["evidence"] = Value::String(format!("{}{}", &evidence[..at], &rest[end..]));
        }
    }
    v
}

#[test]
fn every_encapsulation_gives_the_verdicts_of_the_bare_capture() {
    let dir = tmp_dir("encap");
    let mut checked = 0;
    for (bare, _, _) in captures() {
        let want = report(&bare);
        let mut want_json = json(&want, &bare, &bare);
        want_json["summary"]
            .as_object_mut()
            .unwrap()
            .remove("bytes");
        want_json["tcp"]
            .as_object_mut()
            .unwrap()
            .remove("tunnelled_segments");
        for (name, layers) in common::encapsulations() {
            let wrapped = dir.join(format!("{name}.pcap"));
            common::encapsulated(&bare, &wrapped, &layers);
            let got = report(&wrapped);
            assert_eq!(
                got.tcp.tunnelled_segments,
                got.summary.tcp_segments,
                "{name} {}",
                bare.display()
            );
            let got_json = without_tunnel(json(&got, &wrapped, &bare));
            if got_json != want_json {
                panic!(
                    "{} in {name}: the report differs\n{}\n---\n{}",
                    bare.display(),
                    serde_json::to_string_pretty(&want_json).unwrap(),
                    serde_json::to_string_pretty(&got_json).unwrap()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 300);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A verdict without what depends on frame numbers and connection ids (its client leg's too),
/// with the addresses on the other side of the NAT mapped back (`renames`).
fn verdict(f: &Value, renames: &[(String, String)]) -> String {
    let mut f = f.clone();
    f.as_object_mut().unwrap().remove("evidence");
    f["request"]["frame"] = Value::Null;
    for k in ["peer_close", "rst", "retry"] {
        if f[k].is_object() {
            f[k]["frame"] = Value::Null;
            f[k]["connection"] = Value::Null;
        }
    }
    if f["client_effect"].is_object() {
        for k in ["frame", "request_frame", "connection"] {
            f["client_effect"][k] = Value::Null;
        }
    }
    f["connection"]["id"] = Value::Null;
    // (the same as client and server, split)
    for k in ["client_ip", "client_port", "server_ip", "server_port"] {
        f["connection"].as_object_mut().unwrap().remove(k);
    }
    f["connection"]["nat"] = Value::Null;
    f["connection"]["tunnel"] = Value::Null;
    let mut text = f.to_string();
    for (from, to) in renames {
        text = text.replace(from.as_str(), to.as_str());
    }
    text
}

fn verdicts(v: &Value, renames: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = ["findings", "informational"]
        .iter()
        .flat_map(|l| v[l].as_array().unwrap().iter())
        .map(|f| verdict(f, renames))
        .collect();
    out.sort();
    out
}

#[test]
fn both_sides_of_a_nat_give_the_verdicts_of_the_bare_capture_once() {
    let dir = tmp_dir("nat");
    let vip = "10.96.0.10";
    let node = "10.0.0.99";
    let mut twins = 0;
    for (bare, client, server) in captures() {
        let server: std::net::SocketAddr = server.parse().unwrap();
        let want = report(&bare);
        let want_json = json(&want, &bare, &bare);
        let dnat = Nat {
            from: server.ip(),
            to: vip.parse().unwrap(),
            port: Some((server.port(), 80)),
        };
        let snat = Nat {
            from: client.parse().unwrap(),
            to: node.parse().unwrap(),
            port: None,
        };
        let vxlan = [Encap::Vxlan { vni: 1, port: 8472 }];
        let dnat_renames = vec![(format!("{vip}:80"), server.to_string())];
        let cases = [
            ("dnat", dnat, dnat_renames.clone(), &[][..]),
            (
                "snat",
                snat,
                vec![(format!("{node}:"), format!("{client}:"))],
                &[],
            ),
            // one side of the NAT in a VXLAN overlay, as on a Kubernetes node's uplink
            ("dnat-vxlan", dnat, dnat_renames, &vxlan),
        ];
        for (name, nat, renames, layers) in cases {
            let twin = dir.join(format!("{name}.pcap"));
            common::nat_twins(&bare, &twin, nat, 10_000, layers);
            let got = report(&twin);
            let got_json = json(&got, &twin, &bare);
            let what = format!("{} through a {name}", bare.display());
            let (g, w) = (verdicts(&got_json, &renames), verdicts(&want_json, &[]));
            if g != w {
                let only = |a: &[String], b: &[String]| -> Vec<String> {
                    a.iter().filter(|x| !b.contains(x)).cloned().collect()
                };
                panic!(
                    "{what}: {} verdicts for {}; only bare: {:#?}\nonly {name}: {:#?}",
                    g.len(),
                    w.len(),
                    only(&w, &g),
                    only(&g, &w)
                );
            }
            // reported once, naming both address pairs (the proxy's client leg on loopback
            // does not cross the NAT)
            for f in got.findings.iter().chain(&got.informational) {
                let c = &f.connection;
                let crosses = [&c.client, &c.server].iter().any(|a| {
                    renames
                        .iter()
                        .any(|(x, y)| a.starts_with(x) || a.starts_with(y))
                });
                assert_eq!(c.nat.is_some(), crosses, "{what}: {f:?}");
                assert_eq!(
                    f.evidence.contains("both sides of a NAT"),
                    crosses,
                    "{what}"
                );
                if let Some(nat) = &c.nat {
                    assert_ne!((&nat.client, &nat.server), (&c.client, &c.server));
                }
            }
            let (w, g) = (&want.summary, &got.summary);
            assert_eq!(
                (w.connections, w.http_connections, w.requests, w.responses),
                (g.connections, g.http_connections, g.requests, g.responses),
                "{what}"
            );
            assert_eq!(
                (&w.by_kind, &w.by_outcome),
                (&g.by_kind, &g.by_outcome),
                "{what}"
            );
            // (a kernel's RSTs answering two segments of a closed connection are the same
            // packet twice: the bare lab captures have such duplicates too)
            let (mut tcp, mut bare_tcp) = (got.tcp.clone(), want.tcp.clone());
            assert!(
                tcp.duplicate_segments > bare_tcp.duplicate_segments,
                "{what}"
            );
            twins += tcp.nat_twin_connections;
            (tcp.duplicate_segments, tcp.nat_twin_connections) = (0, 0);
            tcp.tunnelled_segments = 0;
            bare_tcp.duplicate_segments = 0;
            assert_eq!(tcp, bare_tcp, "{what}");
            // endpoint statistics are not doubled
            let sum = |r: &Report| -> (u64, u64, u64) {
                r.endpoints.iter().fold((0, 0, 0), |a, e| {
                    (a.0 + e.connections, a.1 + e.requests, a.2 + e.findings)
                })
            };
            assert_eq!(sum(&want), sum(&got), "{what}");
        }
    }
    assert!(twins > 100, "{twins}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tcprace(args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code(), v)
}

/// `--vxlan-port` for VXLAN on other ports; the BPF filter sees the packets as captured, so
/// tunnelled traffic needs a filter on the outer headers.
#[test]
fn vxlan_on_another_port_and_filters_on_the_outer_headers() {
    let dir = tmp_dir("vxlan-port");
    let bare = root().join("fixtures/scenarios/crossed_fin_client_side.pcap");
    let wrapped = dir.join("vxlan-9999.pcap");
    common::encapsulated(&bare, &wrapped, &[Encap::Vxlan { vni: 3, port: 9999 }]);
    let w = wrapped.to_str().unwrap();
    let (code, v) = tcprace(&["--format", "json", w]);
    assert_eq!(
        (code, &v["summary"]["tcp_segments"]),
        (Some(0), &Value::from(0))
    );
    assert!(v["skipped"]["non_tcp"].as_u64().unwrap() > 0);
    let (code, v) = tcprace(&["--format", "json", "--vxlan-port", "9999", w]);
    assert_eq!(code, Some(1));
    assert_eq!(v["summary"]["findings"], 1);
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "crossed_fin");
    assert_eq!(f["connection"]["tunnel"]["kind"], "vxlan");
    assert_eq!(f["connection"]["tunnel"]["id"], 3);
    assert_eq!(f["connection"]["tunnel"]["outer_src"], "172.31.1.10");
    assert_eq!(f["connection"]["tunnel"]["sent_by"], "client");
    assert!(
        f["evidence"]
            .as_str()
            .unwrap()
            .ends_with("Captured inside VXLAN (VNI 3) from 172.31.1.10 to 172.31.2.20.")
    );
    // a filter on the inner TCP port sees only the outer UDP: nothing passes
    let filtered = |f: &str| tcprace(&["--format", "json", "--vxlan-port", "9999", "-f", f, w]).1;
    assert_eq!(filtered("tcp port 8080")["summary"]["tcp_segments"], 0);
    let v = filtered("udp port 9999");
    assert_eq!(v["summary"]["findings"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The public tunnel captures (see the corpus MANIFEST, purpose `tunnel`): the TCP inside is
/// found and its HTTP recognised.
#[test]
fn corpus_tunnel_captures_decode() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    }
    // (file, tunnelled TCP segments, requests, responses, connections, duplicates)
    let expect: [(&str, u64, u64, u64, u64, u64); 15] = [
        // Ethernet in GRE; the responses are mostly in outer IP fragments (not reassembled)
        ("zeek/testing/btest/Traces/erspan.pcap", 90, 22, 9, 5, 0),
        // ERSPAN II carrying VXLAN (UDP 4789 -> 4790); its request line has a space in the
        // target, so only the response is framed
        ("arkime/tests/pcap/gre-erspan-vxlan.pcap", 7, 0, 1, 1, 0),
        (
            "zeek/testing/btest/Traces/tunnels/vxlan-encapsulated-http.pcap",
            12,
            1,
            1,
            1,
            0,
        ),
        (
            "suricata-verify/tests/vxlan-non-zero-reserved-fields/input.pcap",
            10,
            1,
            1,
            1,
            0,
        ),
        // the same connection in VNI 4711, in VNI 4242 and bare: one connection
        (
            "zeek/doc/advanced/devel/plugins/connkey-vxlan-fivetuple-plugin-src/Traces/vxlan-overlapping-http-get.pcap",
            28,
            1,
            1,
            1,
            28,
        ),
        // 802.1Q + VXLAN, TLS requests found as encrypted flights (one pair of identical RSTs)
        ("nDPI/tests/cfgs/default/pcap/vxlan.pcap", 119, 3, 3, 2, 1),
        ("tcpdump/tests/gso-ipv4-vxlan-ipv4.pcap", 1, 0, 0, 1, 0),
        (
            "zeek/testing/btest/Traces/tunnels/geneve-many-options.pcap",
            10,
            1,
            1,
            1,
            0,
        ),
        ("tcpdump/tests/geneve-gcp.pcap", 1, 0, 0, 1, 0),
        (
            "zeek/testing/btest/Traces/tunnels/gre-over-udp-4754.pcap",
            10,
            1,
            1,
            1,
            0,
        ),
        (
            "zeek/testing/btest/Traces/tunnels/gre-sample.pcap",
            22,
            0,
            0,
            1,
            0,
        ),
        (
            "suricata-verify/tests/bug-4810/pppoe-session-http.pcap",
            30,
            1,
            1,
            1,
            0,
        ),
        (
            "zeek/testing/btest/Traces/mixed-vlan-mpls.pcap",
            11,
            1,
            1,
            3,
            0,
        ),
        // IPv6 in IPv4: one HTTP request and three TLS ones (found as encrypted flights)
        (
            "nDPI/tests/cfgs/default/pcap/6in4tunnel.pcap",
            75,
            4,
            4,
            5,
            0,
        ),
        (
            "nDPI/tests/cfgs/default/pcap/4in6tunnel.pcap",
            4,
            0,
            0,
            1,
            0,
        ),
    ];
    for (path, tunnelled, requests, responses, connections, duplicates) in expect {
        let (code, v) = tcprace(&["--format", "json", corpus.join(path).to_str().unwrap()]);
        assert!(matches!(code, Some(0 | 1)), "{path}");
        let got = (
            v["tcp"]["tunnelled_segments"].as_u64().unwrap(),
            v["summary"]["requests"].as_u64().unwrap(),
            v["summary"]["responses"].as_u64().unwrap(),
            v["summary"]["connections"].as_u64().unwrap(),
            v["tcp"]["duplicate_segments"].as_u64().unwrap(),
        );
        assert_eq!(
            got,
            (tunnelled, requests, responses, connections, duplicates),
            "{path}"
        );
    }
    // every packet captured twice (1 us apart, same IP identification): one of each counts
    let (_, v) = tcprace(&[
        "--format",
        "json",
        corpus
            .join("zeek/testing/btest/Traces/http/m57-long-49583-80.pcap")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(v["tcp"]["duplicate_segments"], 113);
    assert_eq!(v["tcp"]["retransmitted_segments"], 0);
    assert_eq!(
        (
            v["summary"]["requests"].as_u64(),
            v["summary"]["responses"].as_u64()
        ),
        (Some(3), Some(3))
    );
}
