//! End-to-end tests of the command line's habits (tcpdump's -r, trailing filter expression, -n,
//! -c, -i N; values checked once; hints for foreign options; a closed output pipe; --generate;
//! --help) and of the table's fit to the terminal (width, layouts, time and file columns,
//! colours, borders, grouped evidence, -v, recommendations).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const CROSSED: &str = "fixtures/scenarios/crossed_fin_client_side.pcap";
const PIPELINED: &str = "fixtures/scenarios/pipelined_tail_lost.pcap";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary in a known environment: a UTF-8 locale, no COLUMNS, no NO_COLOR; `env` adds or
/// replaces variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tcprace"));
    c.current_dir(root())
        .args(args)
        .stdin(Stdio::null())
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tcprace")
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

// ----- tcpdump's habits -----

#[test]
fn r_is_repeatable_and_plain_files_still_work() {
    let two = run(&["--format", "json", "-r", PIPELINED, "-r", CROSSED]);
    assert_eq!(two.status.code(), Some(1), "{}", stderr(&two));
    let v = json(&two);
    assert_eq!(v["inputs"], serde_json::json!([PIPELINED, CROSSED]));
    assert_eq!(v["summary"]["findings"], 3);
    // -r files first, then the FILE words
    let mixed = json(&run(&["--format", "json", "-r", PIPELINED, CROSSED]));
    assert_eq!(mixed["inputs"], v["inputs"]);
    let plain = json(&run(&["--format", "json", PIPELINED, CROSSED]));
    assert_eq!(plain["inputs"], v["inputs"]);
    assert_eq!(plain["findings"], v["findings"]);
}

#[test]
fn words_after_the_files_are_the_filter_expression() {
    // tcpdump's form: the words after the options, joined
    let out = run(&["--format", "json", "-r", CROSSED, "tcp", "port", "9"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["summary"]["tcp_segments"], 0);
    assert_eq!(v["skipped"]["filtered_out"], 14);
    let err = stderr(&out);
    assert!(
        err.contains("filter \"tcp port 9\" (the words after the files: \"tcp\" is not a file)"),
        "{err}"
    );
    // a filter that keeps the race
    let out = run(&["--format", "json", CROSSED, "tcp", "port", "8080"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["summary"]["tcp_segments"], 14);
    // a mistyped second file is taken as a filter, and the error says how it was taken
    let out = run(&[CROSSED, "captur2.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid filter \"captur2.pcap\""), "{err}");
    assert!(err.contains("\"captur2.pcap\" is not a file"), "{err}");
    // -f and an expression: which one?
    let out = run(&["-f", "tcp", CROSSED, "port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("two filters"), "{}", stderr(&out));
    // no file at all: the first word is a file that does not exist
    let out = run(&["no-such.pcap", "tcp", "port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such.pcap"), "{}", stderr(&out));
}

#[test]
fn n_and_nn_are_accepted() {
    for n in ["-n", "-nn"] {
        let out = run(&[n, "--format", "json", CROSSED]);
        assert_eq!(out.status.code(), Some(1), "{n}: {}", stderr(&out));
        assert_eq!(json(&out)["summary"]["findings"], 1);
    }
}

#[test]
fn count_stops_a_file_after_n_packets() {
    let out = run(&["-c", "5", "--format", "json", "-r", CROSSED, "-r", CROSSED]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["summary"]["packets"], 5);
    // counted after the filter, as tcpdump does
    let out = run(&[
        "-c", "3", "--format", "json", CROSSED, "tcp", "port", "8080",
    ]);
    assert_eq!(json(&out)["summary"]["packets"], 3);
    // more than there are: everything
    let out = run(&["-c", "1000", "--format", "json", CROSSED]);
    assert_eq!(json(&out)["summary"]["packets"], 14);
}

#[test]
fn interfaces_by_the_number_d_prints() {
    let list = run(&["-D"]);
    if list.status.code() != Some(0) {
        eprintln!("SKIPPED: no interfaces to list: {}", stderr(&list));
        return;
    }
    let text = stdout(&list);
    let n = text.lines().count();
    let out = run(&["-i", &(n + 1).to_string(), "--duration", "0.2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("there is no interface {}", n + 1)) && err.contains("-D"),
        "{err}"
    );
    // the number of lo opens lo (or fails naming lo when not allowed to capture)
    let Some(lo) = text
        .lines()
        .find(|l| l.split_once('.').is_some_and(|(_, r)| r.starts_with("lo ")))
    else {
        eprintln!("SKIPPED: no lo in {text}");
        return;
    };
    let index = lo.split('.').next().unwrap();
    let out = run(&["-i", index, "--duration", "0.3", "--format", "json"]);
    let err = stderr(&out);
    if out.status.code() == Some(2) {
        // not allowed to capture: the message names lo, not an interface called "3"
        assert!(
            err.contains("lo") && !err.contains("no such interface"),
            "{err}"
        );
    } else {
        assert!(err.contains("listening on lo"), "{err}");
        assert_eq!(json(&out)["capture"]["interface"], "lo");
    }
}

// ----- values, hints, errors -----

#[test]
fn bad_values_exit_2_naming_the_option() {
    let cases: [(&[&str], &str); 15] = [
        (&["--idle-timeout", "nan"], "--idle-timeout"),
        (&["--idle-timeout", "-1"], "--idle-timeout"),
        (&["--idle-timeout", "0"], "--idle-timeout"),
        (&["--idle-timeout", "inf"], "--idle-timeout"),
        (&["--retry-window", "-1"], "--retry-window"),
        (&["--retry-window", "nan"], "--retry-window"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["-c", "0"], "--count"),
        (&["--width", "12"], "--width"),
        (&["--width", "-3"], "--width"),
        (&["-i", "lo", "--duration", "0"], "--duration"),
        (&["-i", "lo", "--duration", "1e300"], "--duration"),
        (&["-i", "lo", "--stats-every", "nan"], "--stats-every"),
        (&["-i", "lo", "--buffer-size", "0"], "--buffer-size"),
        (&["--color", "sometimes"], "--color"),
    ];
    for (args, name) in cases {
        let mut all = args.to_vec();
        if !all.contains(&"-i") {
            all.push(CROSSED);
        }
        let out = run(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!err.contains("as a value"), "{args:?}: {err}");
    }
    // the edges that are allowed
    let out = run(&["--retry-window", "0", "--format", "json", CROSSED]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = run(&["--max-connections", "1", "--width", "0", CROSSED]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn unknown_options_get_a_hint_that_names_the_right_one() {
    let cases: [(&str, &str); 7] = [
        ("-X", "--format json"),
        ("-A", "--format json"),
        ("-Y", "-f EXPR"),
        ("-U", "--format jsonl"),
        ("-F", "-f \"$(cat FILE)\""),
        ("-B", "--buffer-size"),
        ("-G", "tcpdump -C/-W"),
    ];
    for (flag, hint) in cases {
        let out = run(&[flag, "x", CROSSED]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(&format!("unexpected argument '{flag}'")),
            "{err}"
        );
        assert!(err.contains(hint), "{flag}: {err}");
        assert!(!err.contains("as a value, use '--"), "{flag}: {err}");
    }
    // a typo: clap's similar argument, without the misleading tip
    let err = stderr(&run(&["--formt", "json", CROSSED]));
    assert!(err.contains("'--format'"), "{err}");
    assert!(!err.contains("as a value"), "{err}");
    assert_eq!(err.matches("tip:").count(), 1, "{err}");
}

/// A pipe whose reader is gone: what `| head -1` leaves once head has exited.
fn closed_pipe() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new descriptors, owned here from now on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are open and owned by nobody else.
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    write
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    let cases: [(&[&str], i32); 7] = [
        (&["--format", "jsonl", CROSSED], 1),
        (&["--format", "json", CROSSED], 1),
        (&[CROSSED], 1),
        (&["fixtures/scenarios/fin_piggyback.pcap"], 0),
        (&["-D"], 0),
        (&["--generate", "man"], 0),
        (&["--help"], 0),
    ];
    for (args, code) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
            .current_dir(root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(closed_pipe()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        if args == ["-D"] && err.contains("no interfaces") {
            continue;
        }
        assert_eq!(err, "", "{args:?}");
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
    // and through a real `| head -1`
    let sh = format!(
        "'{}' --format jsonl {CROSSED} {CROSSED} {CROSSED} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_tcprace")
    );
    let out = Command::new("bash")
        .current_dir(root())
        .args(["-c", &sh])
        .output()
        .unwrap();
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).trim(), "1");
}

#[test]
fn a_filter_that_matched_no_packet_is_a_warning() {
    let out = run(&["--format", "json", "-f", "tcp port 9", CROSSED]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("warning: ")
            && err.contains("the filter \"tcp port 9\" matched none of the 14 packets"),
        "{err}"
    );
    let v = json(&out);
    assert_eq!(v["summary"]["warnings"], 1);
    assert!(
        v["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("matched none")
    );
    // a filter that matched something: no warning
    let out = run(&["--format", "json", "-f", "tcp port 8080", CROSSED]);
    assert_eq!(json(&out)["summary"]["warnings"], 0);
    assert!(!stderr(&out).contains("matched none"));
}

// ----- --generate, --help -----

#[test]
fn generate_man_page_and_completions() {
    let man = run(&["--generate", "man"]);
    assert_eq!(man.status.code(), Some(0));
    let text = stdout(&man);
    for part in [
        ".TH tcprace",
        ".SH SYNOPSIS",
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        "\\-\\-read",
    ] {
        assert!(text.contains(part), "{part} not in the man page");
    }
    for (kind, marker) in [
        ("complete-bash", "complete -F"),
        ("complete-zsh", "#compdef tcprace"),
        ("complete-fish", "complete -c tcprace"),
        ("complete-powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(&["--generate", kind]);
        assert_eq!(out.status.code(), Some(0), "{kind}");
        let text = stdout(&out);
        assert!(text.contains(marker), "{kind}: {marker}");
        assert!(text.contains("idle-timeout"), "{kind}");
    }
    if Command::new("bash").arg("--version").output().is_ok() {
        let out = Command::new("bash")
            .args(["-n", "-c", &stdout(&run(&["--generate", "complete-bash"]))])
            .output()
            .unwrap();
        assert!(out.status.success(), "bash -n: {}", stderr(&out));
    }
}

#[test]
fn help_has_examples_and_exit_codes() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("EXAMPLES:"), "{text}");
    assert!(
        text.contains("tcprace -r a.pcap -r b.pcap.gz tcp port 8080"),
        "{text}"
    );
    assert!(text.contains("EXIT STATUS:"), "{text}");
    for code in ["0  no findings", "1  at least one finding", "2  error"] {
        assert!(text.contains(code), "{code}: {text}");
    }
    let short = stdout(&run(&["-h"]));
    assert!(
        short.contains("Exit codes: 0 no findings, 1 findings, 2 error"),
        "{short}"
    );
}

// ----- the table -----

/// Every line fits `width` columns (counted in characters), but a line of one word longer
/// than that (a word is never cut).
fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        let one_word = line.split_whitespace().count() == 1;
        assert!(
            line.chars().count() <= width || one_word,
            "line wider than {width}: {line:?}\n{text}"
        );
    }
}

#[test]
fn the_table_has_a_time_column_and_a_file_column_for_several_inputs() {
    let one = stdout(&run(&[CROSSED]));
    assert!(
        one.contains("time (UTC)") && one.contains("00:00:01.134"),
        "{one}"
    );
    assert!(!one.contains("┆ file"), "{one}");
    let two = stdout(&run(&[CROSSED, PIPELINED]));
    assert!(two.contains("┆ file"), "{two}");
    assert!(two.contains(&format!("┆ {PIPELINED} ")), "{two}");
}

#[test]
fn the_table_fits_the_width() {
    // narrow: one block per finding, every line within the width, addresses whole
    for width in ["80", "60", "40"] {
        let w: usize = width.parse().unwrap();
        let out = run(&["--width", width, "-r", CROSSED, "-r", PIPELINED]);
        let text = stdout(&out);
        assert_fits(&text, w);
        assert!(!text.contains("┆ kind"), "no table at {w}: {text}");
        assert!(
            text.contains("#1  00:00:01.134 UTC  crossed_fin  lost"),
            "{text}"
        );
        for token in [
            "192.0.2.10:40001",
            "198.51.100.20:8080",
            "api.example.com",
            "-0.008",
        ] {
            assert!(text.contains(token), "{token} cut at {w}: {text}");
        }
        assert!(text.contains(PIPELINED), "{text}");
        assert!(
            !text.contains("(1.162\n"),
            "a number and its unit stay together: {text}"
        );
    }
    // COLUMNS when there is no --width; --width wins
    let text = stdout(&run_env(&[CROSSED], &[("COLUMNS", "70")]));
    assert_fits(&text, 70);
    let text = stdout(&run_env(&["--width", "0", CROSSED], &[("COLUMNS", "70")]));
    assert!(text.contains("┆ kind"), "{text}");
    // wide enough: the table
    let text = stdout(&run(&["--width", "220", CROSSED]));
    assert!(text.contains("┆ kind"), "{text}");
    assert_fits(&text, 220);
    // 130 columns is not enough for this table: blocks
    let text = stdout(&run(&["--width", "130", CROSSED]));
    assert!(!text.contains("┆ kind"), "{text}");
    assert_fits(&text, 130);
}

#[test]
fn findings_with_the_same_evidence_are_grouped() {
    let text = stdout(&run(&["--width", "100", PIPELINED]));
    let evidence = text.split("Evidence").nth(1).unwrap();
    assert_eq!(
        evidence.matches("does not cover the request").count(),
        1,
        "{text}"
    );
    assert!(
        evidence.contains("The same for #2 (1 more, each with its own frames and numbers)."),
        "{text}"
    );
}

#[test]
fn informational_records_are_listed_with_v() {
    let file = "fixtures/scenarios/unanswered_at_end.pcap";
    let text = stdout(&run(&[file]));
    assert!(text.contains("-v lists them"), "{text}");
    assert!(!text.contains("unanswered_at_end ┆"), "{text}");
    let text = stdout(&run(&["-v", file]));
    assert!(text.contains("Informational"), "{text}");
    assert!(
        text.contains("i1") && text.contains("unanswered_at_end"),
        "{text}"
    );
    assert!(
        text.contains("No response, FIN or RST from the server"),
        "{text}"
    );
}

#[test]
fn colours_on_request_and_never_with_no_color() {
    const ESC: char = '\u{1b}';
    // stdout is not a terminal: auto means no colour
    assert!(!stdout(&run(&[CROSSED])).contains(ESC));
    let text = stdout(&run(&["--color", "always", CROSSED]));
    assert!(text.contains(&format!("{ESC}[")), "{text}");
    assert!(!stdout(&run(&["--color", "never", CROSSED])).contains(ESC));
    let narrow = stdout(&run(&["--color", "always", "--width", "60", CROSSED]));
    assert!(narrow.contains(ESC), "{narrow}");
    // colour codes do not count towards the width
    let plain: String = {
        let mut s = String::new();
        let mut esc = false;
        for c in narrow.chars() {
            match (esc, c) {
                (false, ESC) => esc = true,
                (true, 'm') => esc = false,
                (false, c) => s.push(c),
                _ => {}
            }
        }
        s
    };
    assert_fits(&plain, 60);
    // NO_COLOR turns auto off; an explicit --color always still wins
    let text = stdout(&run_env(
        &["--color", "always", CROSSED],
        &[("NO_COLOR", "1")],
    ));
    assert!(text.contains(ESC));
}

#[test]
fn ascii_borders_without_a_utf8_locale_or_with_ascii() {
    let utf8 = stdout(&run(&[CROSSED]));
    assert!(utf8.contains('┌'), "{utf8}");
    for (args, env) in [
        (&[CROSSED][..], &[("LANG", "C")][..]),
        (&[CROSSED][..], &[("LC_ALL", "POSIX")][..]),
        (&["--ascii", CROSSED][..], &[][..]),
    ] {
        let text = stdout(&run_env(args, env));
        assert!(text.is_ascii(), "{args:?} {env:?}: {text}");
        assert!(text.contains("+---"), "{text}");
    }
}

#[test]
fn recommendations_in_ms_under_a_second_and_one_per_kind() {
    let text = stdout(&run(&[CROSSED]));
    assert!(text.contains("after up to 992 ms"), "{text}");
    assert!(!text.contains("0.0 s"), "{text}");
    let v = json(&run(&[
        "--format",
        "json",
        "fixtures/scenarios/after_rst.pcap",
    ]));
    let recs = v["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].as_str().unwrap().contains("already reset"),
        "{recs:?}"
    );
}

/// On a real terminal (a pty from util-linux's `script`): the width comes from the terminal and
/// colours are on, unless NO_COLOR is set.
#[test]
fn on_a_terminal_the_width_and_colours_come_from_it() {
    let on_tty = |env: &str| -> Option<String> {
        let cmd = format!(
            "stty cols 70 rows 50; env -u COLUMNS -u LC_ALL {env} LANG=C.UTF-8 '{}' {CROSSED}",
            env!("CARGO_BIN_EXE_tcprace")
        );
        let out = Command::new("script")
            .current_dir(root())
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .code()
            .is_some_and(|c| c == 1)
            .then(|| stdout(&out).replace('\r', ""))
    };
    let Some(text) = on_tty("-u NO_COLOR") else {
        eprintln!("SKIPPED: util-linux script(1) cannot run a terminal here");
        return;
    };
    assert!(
        text.contains("\u{1b}[31m"),
        "no colour on a terminal: {text}"
    );
    assert!(
        !text.contains("┆ kind"),
        "a 70-column terminal gets blocks: {text}"
    );
    assert!(text.contains("crossed_fin"), "{text}");
    let plain = on_tty("NO_COLOR=1").unwrap();
    assert!(!plain.contains('\u{1b}'), "NO_COLOR: {plain}");
    assert_fits(&plain, 70);
}
