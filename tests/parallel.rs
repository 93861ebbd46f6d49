//! The parallel (sharded) analysis gives the same report as one analyzer over the whole input,
//! for 1, 2, 3 and 4 threads: on every scenario fixture read as one stream, on the corpus, and
//! on a generated capture with many hosts, races and retries spread over the shards (a retry
//! goes on another connection, mostly in another shard). Streamed findings (JSON Lines) come
//! out byte for byte the same, in the same order, for any number of threads.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::engine::{Analyzer, Config, RunOptions};
use tcprace::report::{JsonLinesRenderer, JsonRenderer, Report};
use tcprace::synth::{
    ConvConfig, Conversation, Encap, Link, Nat, PcapOptions, PcapWriter, Side, Vantage, after_ms,
    merge,
};
use tcprace::time::Timestamp;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The single-threaded path (as `--format jsonl` runs it).
fn single(files: &[String]) -> Result<Report, String> {
    let mut src = FileSource::open(files).map_err(|e| e.to_string())?;
    let mut a = Analyzer::new(Config::default(), src.inputs().to_vec());
    loop {
        match src.next().map_err(|e| e.to_string())? {
            Next::End => break,
            Next::Warning(w) => a.warn(*w),
            Next::Skipped(..) | Next::Idle(_) => unreachable!("a file source"),
            Next::Packet(p) => {
                a.on_packet_ref(p);
            }
        }
    }
    Ok(a.finish())
}

/// The driver loop, as `--format json` runs it, on `shards` threads.
fn sharded(files: &[String], shards: usize) -> Result<Report, String> {
    let mut src = FileSource::open(files).map_err(|e| e.to_string())?;
    let opts = RunOptions {
        config: Config::default(),
        threads: shards,
        max_warnings: 0,
        record: None,
    };
    let mut renderer = JsonRenderer::new(std::io::sink());
    tcprace::engine::run(&mut src, &opts, &mut renderer, &mut ()).map_err(|e| e.to_string())
}

fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap()
}

/// The driver loop with JSON Lines (findings streamed as their verdicts become final) on
/// `threads` threads: the output.
fn streamed(files: &[String], threads: usize) -> Result<String, String> {
    let mut src = FileSource::open(files).map_err(|e| e.to_string())?;
    let opts = RunOptions {
        config: Config::default(),
        threads,
        max_warnings: 0,
        record: None,
    };
    let mut out = Vec::new();
    let mut renderer = JsonLinesRenderer::new(&mut out);
    let report =
        tcprace::engine::run(&mut src, &opts, &mut renderer, &mut ()).map_err(|e| e.to_string())?;
    tcprace::report::Renderer::finish(&mut renderer, &report).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

/// Both paths agree (on the report, or on failing) for 1 to 4 threads, and so do the streamed
/// findings; returns the report.
fn check_same(files: &[String]) -> Option<Report> {
    let one = single(files);
    let lines = streamed(files, 1);
    for shards in [2, 4] {
        let other = streamed(files, shards);
        assert_eq!(
            lines, other,
            "{files:?}: JSON Lines differ with {shards} threads"
        );
    }
    for shards in [1, 2, 3, 4] {
        let many = sharded(files, shards);
        match (&one, &many) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (json(a), json(b));
                if a != b {
                    let line = a
                        .lines()
                        .zip(b.lines())
                        .position(|(x, y)| x != y)
                        .unwrap_or(0);
                    panic!(
                        "{files:?}, {shards} shards: reports differ from line {line}:\n{}\n---\n{}",
                        a.lines().skip(line).take(15).collect::<Vec<_>>().join("\n"),
                        b.lines().skip(line).take(15).collect::<Vec<_>>().join("\n"),
                    );
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{files:?}"),
            _ => panic!("{files:?}, {shards} shards: {one:?} vs {many:?}"),
        }
    }
    one.ok()
}

fn files_in(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pred))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn all_scenarios_as_one_stream() {
    let files = files_in(&root().join("fixtures/scenarios"), |n| {
        n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".gz")
    });
    assert!(files.len() > 10);
    let r = check_same(&files).expect("the fixtures are readable");
    assert!(r.summary.findings > 10);
    // and twice over: the same connections again, later in the stream
    let twice: Vec<String> = files.iter().chain(&files).cloned().collect();
    check_same(&twice);
}

#[test]
fn corpus_files() {
    let corpus = root().join("../shared/corpus");
    let Ok(manifest) = std::fs::read_to_string(corpus.join("MANIFEST.tsv")) else {
        eprintln!("skipping: {} not present", corpus.display());
        return;
    };
    let mut all = Vec::new();
    for line in manifest.lines().skip(1) {
        let path = corpus.join(line.split('\t').next().unwrap_or_default());
        if path.is_file() {
            let f = path.to_string_lossy().into_owned();
            if check_same(std::slice::from_ref(&f)).is_some() {
                all.push(f);
            }
        }
    }
    assert!(!all.is_empty());
    check_same(&all);
}

const BASE_SECS: i64 = 1_767_225_600;
const D_MS: f64 = 5.0;

fn get(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n").into_bytes()
}

fn response(ka: u32) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout={ka}\r\n\r\nhello"
    )
    .into_bytes()
}

/// Request at `t`, response one d later, acknowledged: returns when the response was sent.
fn exchange(c: &mut Conversation, t: Timestamp, req: &[u8], resp: &[u8]) -> Timestamp {
    c.send(Side::Client, t, req);
    let sent = after_ms(t, D_MS + 1.0);
    c.send(Side::Server, sent, resp);
    c.ack(Side::Client, after_ms(sent, D_MS));
    sent
}

/// A capture of `conns` keep-alive connections from 37 client hosts to 5 servers, overlapping
/// in time: idle closes, crossed races (half of them retried on a new connection from the same
/// host), requests left unanswered, and reused 4-tuples.
fn generated(path: &Path, conns: u32) {
    let mut convs = Vec::new();
    let mut id = 0;
    for k in 0..conns {
        let client_ip = format!("10.1.{}.{}", k % 2, 1 + k % 37);
        let server: SocketAddr = format!("198.51.100.{}:80", 1 + k % 5).parse().unwrap();
        let host = format!("svc{}.example", k % 5);
        let start = Timestamp::from_secs_nanos(BASE_SECS, 0).add_secs(f64::from(k) * 0.013);
        id += 1;
        let port = 20000 + (k / 370 % 2) as u16; // k and k + 740: the same 4-tuple
        let cfg = |id: u32, port: u16| {
            ConvConfig::new(format!("{client_ip}:{port}").parse().unwrap(), server)
                .id(id)
                .isn(id.wrapping_mul(2_654_435_761), id.wrapping_mul(40_503))
                .delay(Duration::from_secs_f64(D_MS / 1000.0))
                .vantage(Vantage::Client)
        };
        let mut c = Conversation::new(cfg(id, port));
        let mut t = c.handshake(start);
        let mut last = t;
        for i in 0..1 + k % 3 {
            last = exchange(&mut c, t, &get(&format!("/r{i}"), &host), &response(k % 11));
            t = after_ms(last, 20.0 + f64::from(k % 7));
        }
        let fin_t = after_ms(last, 300.0 + f64::from(k % 13) * 10.0);
        match k % 4 {
            0 => {
                // idle close by the server
                c.fin(Side::Server, fin_t);
                c.fin(Side::Client, after_ms(fin_t, D_MS));
                c.ack(Side::Server, after_ms(fin_t, 2.0 * D_MS));
            }
            1 | 2 => {
                // crossed race: the request meets the server's FIN in flight
                let target = format!("/race{k}");
                c.fin(Side::Server, fin_t);
                c.send(Side::Client, after_ms(fin_t, 2.0), &get(&target, &host));
                c.ack(Side::Client, after_ms(fin_t, D_MS));
                c.rst_reply(Side::Server, after_ms(fin_t, D_MS + 2.0));
                if k % 4 == 1 {
                    id += 1;
                    let mut r = Conversation::new(cfg(id, 50000 + (k % 1000) as u16));
                    let t2 = r.handshake(after_ms(fin_t, 3.0 * D_MS));
                    exchange(&mut r, t2, &get(&target, &host), &response(k % 11));
                    convs.push(r.packets());
                }
            }
            _ => {
                // a request never answered
                c.send(Side::Client, fin_t, &get("/slow", &host));
            }
        }
        convs.push(c.packets());
    }
    let packets = merge(convs);
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::with_options(
        std::io::BufWriter::new(file),
        PcapOptions::for_link(Link::Ethernet),
    )
    .unwrap();
    w.write_packets(Link::Ethernet, &packets).unwrap();
    w.finish().unwrap();
}

#[test]
fn generated_capture_with_races_and_retries_in_every_shard() {
    let dir = std::env::temp_dir().join(format!("tcprace-parallel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("many.pcap");
    generated(&path, 1200);
    let files = vec![path.to_string_lossy().into_owned()];
    let r = check_same(&files).expect("readable");
    // the races and their retries are spread over both shards
    let mut src = FileSource::open(&files).unwrap();
    let mut shard_of_frame = Vec::new();
    while let Next::Packet(p) = src.next().unwrap() {
        shard_of_frame.push(tcprace::engine::shard_of(p.linktype, p.data, 2));
    }
    let retried: Vec<usize> = r
        .findings
        .iter()
        .filter(|f| f.retry.is_some())
        .map(|f| shard_of_frame[f.request.frame as usize - 1])
        .collect();
    assert!(retried.len() > 100, "{} retried", retried.len());
    assert!(retried.contains(&0) && retried.contains(&1));
    // many a retry went on a connection of the other shard: matched after the shards
    let across = r
        .findings
        .iter()
        .filter_map(|f| f.retry.as_ref().map(|t| (f.request.frame, t.frame)))
        .filter(|&(a, b)| shard_of_frame[a as usize - 1] != shard_of_frame[b as usize - 1])
        .count();
    assert!(across > 30, "{across} retries in the other shard");
    assert!(r.findings.iter().any(|f| f.retry.is_none()));
    assert!(r.tcp.connections_split_by_new_syn > 0);
    assert!(r.endpoints.iter().all(|e| e.idle_closes.count > 0));
    assert!(r.endpoints.iter().any(|e| e.keep_alive.len() == 8));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Both sides of a NAT in one capture: the copy under the other address pair is moved to its
/// connection before the packets are split, so a connection whose two address pairs hash to
/// different shards is analysed once, in its shard, with its retries; and tunnelled packets are
/// sharded by their inner addresses.
#[test]
fn nat_twins_and_tunnels_shard_like_one_thread() {
    let dir = std::env::temp_dir().join(format!("tcprace-parallel-nat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("many.pcap");
    generated(&bare, 400);
    let twins = dir.join("twins.pcap");
    let nat = Nat {
        from: "198.51.100.1".parse().unwrap(),
        to: "10.96.0.10".parse().unwrap(),
        port: Some((80, 8080)),
    };
    let overlay = [Encap::Vxlan { vni: 1, port: 8472 }];
    common::nat_twins(&bare, &twins, nat, 5_000, &overlay);
    let wrapped = dir.join("vxlan.pcap");
    common::encapsulated(
        &bare,
        &wrapped,
        &[Encap::Geneve {
            vni: 9,
            options: 1,
            ethernet: true,
        }],
    );
    let files = |p: &Path| vec![p.to_string_lossy().into_owned()];
    let r = check_same(&files(&twins)).expect("readable");
    let b = check_same(&files(&bare)).expect("readable");
    let w = check_same(&files(&wrapped)).expect("readable");
    assert_eq!(
        (
            r.summary.findings,
            r.summary.connections,
            r.summary.requests
        ),
        (
            b.summary.findings,
            b.summary.connections,
            b.summary.requests
        )
    );
    assert_eq!(w.findings.len(), b.findings.len());
    assert!(
        r.tcp.nat_twin_connections > 50,
        "{}",
        r.tcp.nat_twin_connections
    );
    let retried =
        |r: &tcprace::report::Report| r.findings.iter().filter(|f| f.retry.is_some()).count();
    assert_eq!(retried(&r), retried(&b));
    // the two sides of the NAT hash to different shards for some connections
    let shard =
        |frame: &[u8]| tcprace::engine::shard_of(tcprace::synth::LINKTYPE_ETHERNET, frame, 2);
    let split = common::read(&bare).iter().any(|p| {
        let ip = &p.data[14..];
        nat.translate(ip, ip.len()).is_some_and(|(copy, _)| {
            shard(&p.data) != shard(&tcprace::synth::encapsulate(&[], &copy, copy.len()).0)
        })
    });
    assert!(
        split,
        "no connection whose two sides hash to different shards"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
