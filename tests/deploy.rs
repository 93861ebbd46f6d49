//! The files of deploy/ are valid for the tools that read them: the systemd unit for
//! `systemd-analyze verify` (with ExecStart pointing at the built binary), the Prometheus
//! rules and scrape configuration for `promtool`. Each check says SKIPPED when its tool is
//! missing (CI installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tcprace");

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn check(cmd: &mut Command) {
    let out = cmd.output().expect("run the checker");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = tool("systemd-analyze") else {
        eprintln!("SKIPPED the_systemd_unit_verifies: systemd-analyze not found");
        return;
    };
    let unit = std::fs::read_to_string(deploy("systemd/tcprace.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/tcprace "));
    for line in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let dir = std::env::temp_dir().join(format!("tcprace-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tcprace.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tcprace", BIN)).unwrap();
    // the man page is installed with the binary (tcprace --generate man), not here
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let remarks = String::from_utf8_lossy(&out.stderr);
    // verify also reports on the host's own units; only ours matter
    let ours: Vec<&str> = remarks
        .lines()
        .filter(|l| l.contains("tcprace.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {remarks}");
}

#[test]
fn the_prometheus_rules_and_scrape_config_check() {
    let Some(promtool) = tool("promtool") else {
        eprintln!("SKIPPED the_prometheus_rules_and_scrape_config_check: promtool not found");
        return;
    };
    check(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(deploy("prometheus/tcprace-rules.yml")),
    );
    check(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(deploy("prometheus/prometheus.yml")),
    );
}

#[test]
fn the_daemonset_runs_the_options_tcprace_has() {
    let ds = std::fs::read_to_string(deploy("kubernetes/tcprace-daemonset.yaml")).unwrap();
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "--metrics",
        "--relinquish-privileges",
        "--stats-every",
        "--format",
    ] {
        assert!(help.contains(opt), "{opt} in --help");
    }
    for needle in [
        "hostNetwork: true",
        "prometheus.io/scrape: \"true\"",
        "\"-Z\", \"nobody\"",
        "drop: [\"ALL\"]",
    ] {
        assert!(ds.contains(needle), "{needle}");
    }
}
