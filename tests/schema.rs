//! The JSON Schemas in schema/ are the ones generated from the report's types (UPDATE_GOLDEN=1
//! rewrites them), and the real output of the binary on every fixture capture (the scenarios
//! and the lab's captures), as one document and as JSON Lines, is valid against the schemas the
//! types give.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema_path(stem: &str) -> PathBuf {
    root().join("schema").join(format!("{stem}.schema.json"))
}

/// The committed schema files equal the generated ones.
#[test]
fn committed_schemas_are_generated_from_the_types() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (stem, schema) in tcprace::report::json_schemas() {
        let path = schema_path(stem);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the types in src/report/schema.rs: {} (rerun with \
         UPDATE_GOLDEN=1 cargo test --test schema and review the diff)",
        stale.join(", ")
    );
}

/// Every capture the tests use: fixtures/scenarios and fixtures/lab/captures.
fn fixture_captures() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root().join("fixtures")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "gz")
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// A validator for the schema generated from the types (the committed file equals it, or the
/// test above fails).
fn validator(stem: &str) -> jsonschema::Validator {
    let (_, schema) = tcprace::report::json_schemas()
        .into_iter()
        .find(|(s, _)| *s == stem)
        .unwrap_or_else(|| panic!("no schema {stem}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{stem}: {e}"))
}

fn run(format: &str, capture: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .args(["--format", format, "--no-progress"])
        .arg(capture)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn problems(v: &jsonschema::Validator, doc: &Value, what: &str) -> Vec<String> {
    v.iter_errors(doc)
        .take(5)
        .map(|e| format!("{what}: {} at {}", e, e.instance_path()))
        .collect()
}

/// Numbers with more than six decimals (floats are rounded to microseconds).
fn unrounded(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let text = n.to_string();
            if text.split('.').nth(1).is_some_and(|d| d.len() > 6) || text.contains('e') {
                out.push(format!("{at} = {text}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| unrounded(x, &format!("{at}/{i}"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| unrounded(x, &format!("{at}/{k}"), out)),
        _ => {}
    }
}

#[test]
fn every_fixture_report_is_valid_against_the_schemas() {
    let report = validator("report");
    let finding = validator("jsonl-finding");
    let summary = validator("jsonl-summary");
    let captures = fixture_captures();
    assert!(captures.len() >= 20, "{captures:?}");
    let mut failures = Vec::new();
    for capture in &captures {
        let name = capture.strip_prefix(root()).unwrap().display().to_string();
        let doc: Value = serde_json::from_str(&run("json", capture)).unwrap();
        failures.extend(problems(&report, &doc, &name));
        unrounded(&doc, &name, &mut failures);
        let text = run("jsonl", capture);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (last, findings) = lines.split_last().expect("a summary line");
        for (i, f) in findings.iter().enumerate() {
            failures.extend(problems(
                &finding,
                f,
                &format!("{name} jsonl line {}", i + 1),
            ));
        }
        failures.extend(problems(&summary, last, &format!("{name} jsonl summary")));
        // a record of one kind is not valid as the other
        if !summary.is_valid(last) || finding.is_valid(last) {
            failures.push(format!("{name}: the summary record validates as a finding"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The schemas refuse what the output never has: a field no type defines, a missing field, a
/// wrong type.
#[test]
fn the_schemas_are_strict() {
    let report = validator("report");
    let capture = root().join("fixtures/scenarios/crossed_fin_client_side.pcap");
    let doc: Value = serde_json::from_str(&run("json", &capture)).unwrap();
    assert!(report.is_valid(&doc));
    let mut extra = doc.clone();
    extra["findings"][0]["connection"]["surprise"] = 1.into();
    assert!(!report.is_valid(&extra));
    let mut missing = doc.clone();
    missing["findings"][0]["request"]
        .as_object_mut()
        .unwrap()
        .remove("frame");
    assert!(!report.is_valid(&missing));
    let mut wrong = doc.clone();
    wrong["findings"][0]["connection"]["server_port"] = "8080".into();
    assert!(!report.is_valid(&wrong));
    let mut version = doc;
    version["schema_version"] = 99.into();
    assert!(!report.is_valid(&version));
}
