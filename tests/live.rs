//! End-to-end tests of live capture (`tcprace -i`). They create a private network namespace
//! (`ip netns`), run a keep-alive HTTP server with a short idle timeout and a client inside it,
//! and capture on that namespace's loopback. They need root; without root or `ip netns` they
//! print why and pass. Every namespace, process and file they create is removed by a guard,
//! also when an assertion fails.
//!
//! One test builds the reproduction lab's topology instead (proxy host, delay-line namespace
//! running fixtures/lab/wire.py with 15 ms each way, upstream host) and captures on the proxy
//! host's eth0 while requests cross the upstream's idle-close FIN in flight (`crossed_fin`).
//! It also needs python3 and ethtool.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tcprace");

/// HTTP/1.1 keep-alive server that closes a connection idle for 0.5 s (FIN); a later request
/// on it is answered by the kernel with RST. Prints "ready" once listening.
const SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 0.5
    def do_GET(self):
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=0.5")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 8080), H)
print("ready", flush=True)
srv.serve_forever()
"#;

/// Client: one request, then waits past the server's idle close (its kernel ACKs the FIN) and
/// sends the next request on the same connection: an after_fin race.
const CLIENT: &str = r#"
import socket, time
s = socket.create_connection(("127.0.0.1", 8080), timeout=3)
s.sendall(b"GET /first HTTP/1.1\r\nHost: upstream\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
time.sleep(1.5)
try:
    s.sendall(b"GET /second HTTP/1.1\r\nHost: upstream\r\n\r\n")
    s.recv(4096)
    time.sleep(0.2)
except OSError as e:
    print("error", e, flush=True)
s.close()
"#;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns` unavailable: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("`ip` not found: {e}")),
    }
}

macro_rules! lab_or_skip {
    ($name:expr) => {
        match skip_reason() {
            Some(why) => {
                eprintln!(
                    "SKIPPED {}: {why} (live tests need root and ip netns)",
                    $name
                );
                return;
            }
            None => match Lab::new($name) {
                Ok(lab) => lab,
                Err(why) => {
                    eprintln!(
                        "SKIPPED {}: cannot create a network namespace: {why}",
                        $name
                    );
                    return;
                }
            },
        }
    };
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with `lo` up, the processes started in it and a scratch directory; all
/// removed on drop.
struct Lab {
    ns: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str) -> Result<Lab, String> {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        Lab::named(format!("tcprace-t{}-{n}", std::process::id()), tag)
    }

    /// A namespace with the given (unique) name.
    fn named(ns: String, tag: &str) -> Result<Lab, String> {
        let out = Command::new("ip")
            .args(["netns", "add", &ns])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let dir = std::env::temp_dir().join(format!("{ns}-{tag}"));
        let lab = Lab {
            ns,
            dir,
            children: Vec::new(),
        };
        std::fs::create_dir_all(&lab.dir).map_err(|e| e.to_string())?;
        let out = lab.run(&["ip", "link", "set", "lo", "up"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(lab)
    }

    fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(argv);
        c
    }

    /// Run to completion inside the namespace (bounded by `timeout`).
    fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Output {
        let mut child = self
            .cmd(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let status = wait_bounded(&mut child, timeout);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut stdout);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_end(&mut stderr);
        }
        Output {
            status: status.unwrap_or_else(|| panic!("{argv:?} did not finish in {timeout:?}")),
            stdout,
            stderr,
        }
    }

    fn run(&self, argv: &[&str]) -> Output {
        self.run_timeout(argv, Duration::from_secs(20))
    }

    /// Start inside the namespace with stdout and stderr piped; `ip netns exec` execs the
    /// command, so the child's id is the command's. Returns its index.
    fn spawn(&mut self, argv: &[&str]) -> usize {
        let child = self
            .cmd(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Start the HTTP server and wait until it listens.
    fn start_server(&mut self) {
        let i = self.spawn(&["python3", "-c", SERVER]);
        let lines = line_reader(self.children[i].stdout.take().unwrap());
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("server did not start");
        assert_eq!(line.1, "ready");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = wait_bounded(c, Duration::from_secs(5));
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Lines of a pipe with the time each arrived.
fn line_reader<R: Read + Send + 'static>(r: R) -> Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait for a stderr line containing `what` (collecting the lines seen).
fn wait_for_line(rx: &Receiver<(Instant, String)>, what: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((_, l)) => {
                let hit = l.contains(what);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line containing {what:?} within {timeout:?}; got {seen:?}");
}

/// (kind, method, target, frame) of each finding.
fn finding_keys<'a>(
    findings: impl Iterator<Item = &'a Value>,
) -> Vec<(String, String, String, u64)> {
    let mut v: Vec<_> = findings
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or_default().to_string(),
                f["request"]["method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["request"]["target"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["request"]["frame"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn after_fin_is_streamed_before_the_end_and_the_w_file_gives_the_same_findings() {
    let mut lab = lab_or_skip!("after_fin");
    lab.start_server();
    let pcap = lab.dir.join("live.pcap");
    let pcap_s = pcap.to_str().unwrap().to_string();
    let t = lab.spawn(&[
        BIN,
        "-i",
        "lo",
        "-f",
        "tcp port 8080",
        "--format",
        "jsonl",
        "--duration",
        "8",
        "--stats-every",
        "1",
        "-w",
        &pcap_s,
    ]);
    let stdout = line_reader(lab.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));

    let client = lab.run_timeout(&["python3", "-c", CLIENT], Duration::from_secs(15));
    let client_done = Instant::now();
    assert!(
        client.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );

    // Read stdout until tcprace ends (EOF), bounded.
    let end = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match stdout.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let status =
        wait_bounded(&mut lab.children[t], Duration::from_secs(10)).expect("tcprace did not exit");
    let stderr_text: Vec<String> = stderr.try_iter().map(|(_, l)| l).collect();
    assert_eq!(
        status.code(),
        Some(1),
        "exit code (findings); stderr: {stderr_text:?}"
    );
    assert!(
        stderr_text.iter().any(|l| l.contains("tcprace: stats:")),
        "--stats-every lines on stderr: {stderr_text:?}"
    );

    let recs: Vec<(Instant, Value)> = lines
        .iter()
        .map(|(at, l)| (*at, serde_json::from_str(l).expect("JSON line")))
        .collect();
    let findings: Vec<&(Instant, Value)> = recs
        .iter()
        .filter(|(_, v)| v["record"] == "finding")
        .collect();
    let summary = recs
        .iter()
        .find(|(_, v)| v["record"] == "summary")
        .expect("summary line");
    assert_eq!(findings.len(), 1, "one finding: {lines:?}");
    let (found_at, f) = findings[0];
    assert_eq!(f["kind"], "after_fin");
    assert_eq!(f["request"]["method"], "GET");
    assert_eq!(f["request"]["target"], "/second");
    // Streamed as soon as final (RST + close linger + retry window: ~3 s after the request),
    // well before the capture ended (the summary line comes at --duration).
    assert!(
        *found_at < summary.0 - Duration::from_millis(1500),
        "finding at {:?}, summary at {:?} after the client",
        found_at.saturating_duration_since(client_done),
        summary.0.saturating_duration_since(client_done)
    );
    assert!(
        found_at.saturating_duration_since(client_done) < Duration::from_secs(5),
        "finding came {:?} after the client ended",
        found_at.saturating_duration_since(client_done)
    );
    assert!(
        recs.last().unwrap().1["record"] == "summary",
        "summary is the last line"
    );
    let s = &summary.1;
    assert_eq!(s["summary"]["findings"], 1);
    assert_eq!(s["capture"]["interface"], "lo");
    assert_eq!(s["capture"]["stopped_by"], "duration");
    assert!(s["capture"]["captured"].as_u64().unwrap() >= 10);
    assert!(s["capture"]["dropped"].is_u64() && s["capture"]["if_dropped"].is_u64());
    assert!(s["endpoints"].is_array() && s["recommendations"].is_array());

    // The -w file, analysed as a file, gives the same findings.
    let out = Command::new(BIN)
        .args(["--format", "json", "--no-progress", &pcap_s])
        .output()
        .expect("run tcprace on the -w file");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let live_keys = finding_keys(findings.iter().map(|(_, v)| v));
    let file_keys = finding_keys(file["findings"].as_array().unwrap().iter());
    assert_eq!(live_keys, file_keys);
    assert_eq!(
        file["summary"]["packets"], s["summary"]["packets"],
        "same packets in the file as analysed live"
    );
    assert_eq!(file["summary"]["requests"], s["summary"]["requests"]);
}

#[test]
fn sigterm_stops_cleanly_with_the_full_report() {
    let mut lab = lab_or_skip!("sigterm");
    lab.start_server();
    let t = lab.spawn(&[BIN, "-i", "lo", "--format", "json"]);
    let stdout = lab.children[t].stdout.take().unwrap();
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    // Some traffic (no race: one request, then the client closes).
    let out = lab.run(&[
        "python3",
        "-c",
        "import socket; s=socket.create_connection(('127.0.0.1',8080)); \
         s.sendall(b'GET /x HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n'); s.recv(4096); s.close()",
    ]);
    assert!(out.status.success());
    thread::sleep(Duration::from_millis(300));
    let pid = lab.children[t].id() as i32;
    // SAFETY: signalling our own child by its id.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_bounded(&mut lab.children[t], Duration::from_secs(10))
        .expect("tcprace did not stop on SIGTERM");
    assert_eq!(status.code(), Some(0), "no findings: exit 0");
    let mut text = String::new();
    BufReader::new(stdout).read_to_string(&mut text).unwrap();
    let v: Value = serde_json::from_str(&text).expect("JSON report");
    assert_eq!(v["capture"]["stopped_by"], "signal");
    assert_eq!(v["summary"]["requests"], 1);
    assert_eq!(v["summary"]["responses"], 1);
    assert_eq!(v["summary"]["findings"], 0);
    let rest = wait_for_line(&stderr, "stopped (signal)", Duration::from_secs(5));
    assert!(!rest.is_empty());
}

#[test]
fn table_format_streams_one_row_per_finding() {
    let mut lab = lab_or_skip!("table");
    lab.start_server();
    // tcpdump's form: the filter expression after the options; one line per finding. On four
    // threads the front runs on a thread of its own: findings are still streamed as they come
    let t = lab.spawn(&[
        BIN,
        "-i",
        "lo",
        "--threads",
        "4",
        "--duration",
        "7",
        "--width",
        "0",
        "tcp",
        "port",
        "8080",
    ]);
    let stdout = line_reader(lab.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    let client = lab.run_timeout(&["python3", "-c", CLIENT], Duration::from_secs(15));
    let client_done = Instant::now();
    assert!(client.status.success());
    let (at, first) = stdout
        .recv_timeout(Duration::from_secs(6))
        .expect("a streamed finding row before the end");
    // the request's time in UTC, then the columns of the table
    let time = first
        .strip_prefix("finding #1 | time: ")
        .and_then(|rest| rest.split(" UTC | ").next())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        time.len() == "2026-01-01 00:00:00.000".len() && time.as_bytes()[10] == b' ',
        "{first}"
    );
    assert!(
        first.contains(" UTC | kind: after_fin | outcome: lost | request: GET /second"),
        "{first}"
    );
    let status = wait_bounded(&mut lab.children[t], Duration::from_secs(20)).expect("exit");
    let exited = Instant::now();
    assert!(
        at + Duration::from_millis(1500) < exited,
        "row streamed before the end"
    );
    assert!(at.saturating_duration_since(client_done) < Duration::from_secs(5));
    let lines: Vec<String> = stdout.try_iter().map(|(_, l)| l).collect();
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("Capture: lo (EN10MB), "), "{text}");
    assert!(text.contains("stopped by duration"), "{text}");
    assert!(text.contains("Server endpoints"), "{text}");
    assert!(text.contains("after_fin 1"), "{text}");
}

#[test]
fn count_stops_after_n_packets() {
    let mut lab = lab_or_skip!("count");
    lab.start_server();
    let t = lab.spawn(&[
        BIN,
        "-i",
        "lo",
        "-c",
        "3",
        "--format",
        "json",
        "--duration",
        "20",
    ]);
    let stdout = lab.children[t].stdout.take().unwrap();
    let stderr = line_reader(lab.children[t].stderr.take().unwrap());
    wait_for_line(&stderr, "listening on lo", Duration::from_secs(10));
    let out = lab.run(&[
        "python3",
        "-c",
        "import socket; s=socket.create_connection(('127.0.0.1',8080)); \
         s.sendall(b'GET /x HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n'); s.recv(4096); s.close()",
    ]);
    assert!(out.status.success());
    let status = wait_bounded(&mut lab.children[t], Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0));
    let mut text = String::new();
    BufReader::new(stdout).read_to_string(&mut text).unwrap();
    let v: Value = serde_json::from_str(&text).expect("JSON report");
    // a live report (with its capture section) is valid against the committed schema
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(v["capture"]["stopped_by"], "count");
    assert_eq!(v["capture"]["captured"], 3);
    assert_eq!(v["summary"]["packets"], 3);
}

/// A live run's Markdown report (for a ticket) states its command line, the interface and the
/// kernel's counters.
#[test]
fn live_markdown_report_states_its_provenance() {
    let mut lab = lab_or_skip!("markdown");
    let t = lab.spawn(&[BIN, "-i", "lo", "--format", "markdown", "--duration", "1"]);
    let stdout = lab.children[t].stdout.take().unwrap();
    let status = wait_bounded(&mut lab.children[t], Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0));
    let mut md = String::new();
    BufReader::new(stdout).read_to_string(&mut md).unwrap();
    for row in [
        "| command line | ",
        " -i lo --format markdown --duration 1 |",
        "| input | lo |",
        "| live capture | lo (EN10MB), ",
        " kernel: ",
    ] {
        assert!(md.contains(row), "{row:?} not in\n{md}");
    }
}

#[test]
fn errors_exit_2_with_clear_messages() {
    // Unknown interface: the message lists those that exist (no root needed).
    let out = Command::new(BIN)
        .args(["-i", "nosuchif0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nosuchif0: no such interface") && err.contains("lo"),
        "{err}"
    );
    // Live-only options without -i.
    let out = Command::new(BIN)
        .args(["-w", "x.pcap", "y.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-w/--write applies to live capture only")
    );

    let lab = lab_or_skip!("errors");
    // Bad filter: libpcap's message with the expression.
    let out = lab.run(&[BIN, "-i", "lo", "-f", "tcp prot 80"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid filter \"tcp prot 80\": "), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    // No permission: an unprivileged user gets the root/CAP_NET_RAW hint.
    let nobody = lab.run(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "-i",
        "lo",
    ]);
    let err = String::from_utf8_lossy(&nobody.stderr);
    if err.starts_with("setpriv") {
        eprintln!("SKIPPED permission check: cannot run the binary as nobody: {err}");
        return;
    }
    assert_eq!(nobody.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no permission to capture")
            && err.contains("CAP_NET_RAW")
            && err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
}

#[test]
fn list_interfaces_like_tcpdump() {
    let out = Command::new(BIN).arg("-D").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "N.name [flags]", numbered from 1; lo is always there on Linux.
    assert!(
        text.lines().next().unwrap_or_default().starts_with("1."),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(".lo [") && l.contains("Loopback")),
        "{text}"
    );
}

/// The lab's topology (fixtures/lab/run.sh `setup_topology` + `start_wire`): a proxy host and an
/// upstream host joined through a third namespace running the user-space delay line
/// (fixtures/lab/wire.py, 15 ms each way), offloads off on every veth, addresses from
/// 198.18.0.0/15. Namespaces `tcprace-x<pid>-{p,w,u}`; each is a [`Lab`], so its processes are
/// killed by id and the namespace deleted on drop (also when an assertion fails).
struct WiredLab {
    proxy: Lab,
    up: Lab,
    wire: Lab,
}

const LAB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lab/live_crossing.py");
const WIRE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lab/wire.py");
const PROXY_IP: &str = "198.18.0.1";
const UP_IP: &str = "198.18.1.2";
const UP_PORT: &str = "8000";

/// `name` in PATH or in the sbin directories (not always in a test's PATH).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn ok(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl WiredLab {
    /// Why the wired lab cannot run here (the test then passes after saying so). Missing
    /// ethtool is a skip: the test installs nothing.
    fn skip_reason() -> Option<String> {
        if let Some(why) = skip_reason() {
            return Some(why);
        }
        match Command::new("python3").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => return Some("python3 not found".into()),
        }
        if find_tool("ethtool").is_none() {
            return Some("ethtool not found (apt-get install ethtool)".into());
        }
        None
    }

    fn new() -> Result<WiredLab, String> {
        let pid = std::process::id();
        let proxy = Lab::named(format!("tcprace-x{pid}-p"), "proxy")?;
        let wire = Lab::named(format!("tcprace-x{pid}-w"), "wire")?;
        let up = Lab::named(format!("tcprace-x{pid}-u"), "upstream")?;
        let lab = WiredLab { proxy, up, wire };
        for l in [&lab.proxy, &lab.wire, &lab.up] {
            // IPv6 off, as in the lab (no router solicitations on the wire); best effort.
            let _ = l.run(&[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        for (host, leg) in [(&lab.proxy.ns, "wa"), (&lab.up.ns, "wb")] {
            let out = Command::new("ip")
                .args(["link", "add", "name", "eth0", "netns", host])
                .args(["type", "veth", "peer", "name", leg, "netns", &lab.wire.ns])
                .output()
                .map_err(|e| e.to_string())?;
            ok(&out, "ip link add veth")?;
        }
        ok(
            &lab.proxy.run(&[
                "ip",
                "addr",
                "add",
                &format!("{PROXY_IP}/23"),
                "dev",
                "eth0",
            ]),
            "address the proxy host",
        )?;
        ok(
            &lab.up
                .run(&["ip", "addr", "add", &format!("{UP_IP}/23"), "dev", "eth0"]),
            "address the upstream host",
        )?;
        let ethtool = find_tool("ethtool").ok_or("ethtool not found")?;
        let ethtool = ethtool.to_str().unwrap();
        for (l, dev) in [
            (&lab.proxy, "eth0"),
            (&lab.up, "eth0"),
            (&lab.wire, "wa"),
            (&lab.wire, "wb"),
        ] {
            ok(&l.run(&["ip", "link", "set", dev, "up"]), "link up")?;
            ok(
                &l.run(&[
                    ethtool, "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ]),
                &format!("ethtool -K {dev}"),
            )?;
        }
        for dev in ["wa", "wb"] {
            ok(
                &lab.wire.run(&["ip", "link", "set", dev, "promisc", "on"]),
                "promisc",
            )?;
        }
        Ok(lab)
    }

    /// The delay line (15 ms each way, bounded run time), up once its ready file exists.
    fn start_wire(&mut self) {
        let ready = self.wire.dir.join("wire.ready");
        let ready_s = ready.to_str().unwrap().to_string();
        self.wire.spawn(&[
            "python3",
            WIRE_SCRIPT,
            "--if-a",
            "wa",
            "--if-b",
            "wb",
            "--delay-ms",
            "15",
            "--max-seconds",
            "150",
            "--ready-file",
            &ready_s,
        ]);
        let end = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < end, "delay line did not start");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The upstream: closes a connection idle for 1.0 s (fixtures/lab/live_crossing.py).
    fn start_upstream(&mut self) {
        let i = self.up.spawn(&[
            "python3",
            LAB_SCRIPT,
            "server",
            "--host",
            UP_IP,
            "--port",
            UP_PORT,
            "--idle",
            "1.0",
            "--max-seconds",
            "150",
        ]);
        let lines = line_reader(self.up.children[i].stdout.take().unwrap());
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("upstream did not start");
        assert_eq!(line.1, "ready");
    }
}

/// One capture + one client sweep through the wired lab.
struct Sweep {
    /// tcprace's stdout lines (arrival time, record).
    records: Vec<(Instant, Value)>,
    status: ExitStatus,
    stderr: Vec<String>,
    /// What the client saw, one record per gap.
    client: Vec<Value>,
    /// The `--write-flagged` file.
    flagged: PathBuf,
}

impl Sweep {
    fn findings<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a (Instant, Value)> + 'a {
        self.records
            .iter()
            .filter(move |(_, v)| v["record"] == "finding" && v["kind"] == kind)
    }
}

fn sweep(lab: &mut WiredLab, gaps: &[f64]) -> Sweep {
    let flagged =
        std::env::temp_dir().join(format!("tcprace-live-flagged-{}.pcap", std::process::id()));
    let t = lab.proxy.spawn(&[
        BIN,
        "-i",
        "eth0",
        "--format",
        "jsonl",
        "--duration",
        "12",
        "--write-flagged",
        flagged.to_str().unwrap(),
    ]);
    let stdout = line_reader(lab.proxy.children[t].stdout.take().unwrap());
    let stderr = line_reader(lab.proxy.children[t].stderr.take().unwrap());
    let mut stderr_text = wait_for_line(&stderr, "listening on eth0", Duration::from_secs(10));

    let gaps_arg = gaps
        .iter()
        .map(|g| format!("{g:.3}"))
        .collect::<Vec<_>>()
        .join(",");
    let client = lab.proxy.run_timeout(
        &[
            "python3",
            LAB_SCRIPT,
            "client",
            "--host",
            UP_IP,
            "--port",
            UP_PORT,
            "--gaps",
            &gaps_arg,
            "--stagger",
            "0.3",
        ],
        Duration::from_secs(30),
    );
    assert!(
        client.status.success(),
        "client failed: {}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    let client: Vec<Value> = String::from_utf8_lossy(&client.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("client JSON line"))
        .collect();
    assert_eq!(client.len(), gaps.len(), "one client record per gap");

    // tcprace's stdout until it ends (EOF), bounded.
    let end = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match stdout.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let status = wait_bounded(&mut lab.proxy.children[t], Duration::from_secs(10))
        .expect("tcprace did not exit");
    stderr_text.extend(stderr.try_iter().map(|(_, l)| l));
    let records = lines
        .iter()
        .map(|(at, l)| (*at, serde_json::from_str(l).expect("JSON line")))
        .collect();
    Sweep {
        records,
        status,
        stderr: stderr_text,
        client,
        flagged,
    }
}

#[test]
fn crossed_fin_through_the_delay_line_is_streamed_live() {
    let name = "crossed_fin_live";
    if let Some(why) = WiredLab::skip_reason() {
        eprintln!("SKIPPED {name}: {why} (needs root, ip netns, python3, ethtool)");
        return;
    }
    let mut lab = match WiredLab::new() {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("SKIPPED {name}: cannot build the lab topology: {why}");
            return;
        }
    };
    lab.start_wire();
    lab.start_upstream();

    // Upstream idle timeout T = 1.0 s, one-way delay D = 15 ms: a request sent g seconds after
    // the response arrived crosses the FIN when T - 2D < g < T; sweep around it.
    let gaps: Vec<f64> = (0..=10).map(|i| 0.960 + 0.005 * f64::from(i)).collect();
    let mut run = None;
    for attempt in 1..=2 {
        let s = sweep(&mut lab, &gaps);
        eprintln!("sweep {attempt}: client per gap:");
        for c in &s.client {
            eprintln!("  {c}");
        }
        let kinds: Vec<(String, String)> = s
            .records
            .iter()
            .filter(|(_, v)| v["record"] == "finding")
            .map(|(_, v)| {
                (
                    v["kind"].as_str().unwrap_or_default().to_string(),
                    v["request"]["target"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        eprintln!("sweep {attempt}: findings {kinds:?}");
        let crossed = s.findings("crossed_fin").count();
        run = Some(s);
        if crossed > 0 {
            break;
        }
        eprintln!("sweep {attempt}: no crossing (timing on a loaded machine?)");
    }
    let s = run.unwrap();

    let crossed: Vec<&(Instant, Value)> = s.findings("crossed_fin").collect();
    assert!(
        !crossed.is_empty(),
        "no crossed_fin in two sweeps; client: {:?}; records: {:?}",
        s.client,
        s.records.iter().map(|(_, v)| v).collect::<Vec<_>>()
    );
    let summary_at = s
        .records
        .iter()
        .find(|(_, v)| v["record"] == "summary")
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("summary line; stderr {:?}", s.stderr));
    assert_eq!(
        s.records.last().unwrap().1["record"],
        "summary",
        "the summary line comes last"
    );
    assert_eq!(
        s.status.code(),
        Some(1),
        "exit code (findings); stderr: {:?}",
        s.stderr
    );

    let client_of = |target: &str| s.client.iter().find(|c| c["target"] == target);
    for (at, f) in &crossed {
        let target = f["request"]["target"].as_str().unwrap_or_default();
        assert_eq!(f["request"]["method"], "GET");
        assert!(target.starts_with("/x"), "crossed_fin for {target}");
        assert_eq!(f["connection"]["server"], format!("{UP_IP}:{UP_PORT}"));
        // Streamed while the capture still ran (the summary comes at --duration).
        assert!(
            *at + Duration::from_millis(1500) < summary_at,
            "crossed_fin for {target} came {:?} before the summary",
            summary_at.saturating_duration_since(*at)
        );
        // Deterministic consistency with the client: a request that does not acknowledge
        // the FIN was built before the kernel processed the FIN.
        let c = client_of(target).unwrap_or_else(|| panic!("client sent {target}"));
        assert_eq!(c["state_before"], "ESTABLISHED", "{c}");
    }
    // No after_fin for requests the client sent before its kernel had the FIN (the socket was
    // still ESTABLISHED after the request was written).
    for (_, f) in s.findings("after_fin") {
        let target = f["request"]["target"].as_str().unwrap_or_default();
        if let Some(c) = client_of(target) {
            assert_eq!(
                c["fin_seen_before_send"], true,
                "after_fin for {target}, which was sent before the FIN arrived: {c}"
            );
        }
    }
    // The flight recorder, live: the flagged file gives the same findings again.
    let again = Command::new(BIN)
        .args(["--format", "json", s.flagged.to_str().unwrap()])
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).expect("JSON report");
    let _ = std::fs::remove_file(&s.flagged);
    let key = |f: &Value| (f["kind"].to_string(), f["request"]["target"].to_string());
    let mut live: Vec<_> = s
        .records
        .iter()
        .filter(|(_, v)| v["record"] == "finding")
        .map(|(_, v)| key(v))
        .collect();
    let mut from_file: Vec<_> = again["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    live.sort();
    from_file.sort();
    assert_eq!(
        live, from_file,
        "the live --write-flagged file analysed again"
    );
    // The warm-up requests were answered: never a finding.
    assert!(
        !s.records
            .iter()
            .any(|(_, v)| v["record"] == "finding" && v["request"]["target"] == "/warm"),
        "a /warm request reported"
    );
}

mod common;
#[path = "live/service.rs"]
mod service;
