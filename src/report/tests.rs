use super::*;

fn capture(dropped: u64, if_dropped: u64) -> CaptureInfo {
    CaptureInfo {
        interface: "eth0".into(),
        datalink: "EN10MB".into(),
        snaplen: 262_144,
        filter: Some("tcp port 80".into()),
        captured: 10,
        received: 12,
        dropped,
        if_dropped,
        stopped_by: "signal",
        written_to: None,
    }
}

#[test]
fn drops_make_a_note() {
    assert_eq!(capture(0, 0).drop_note(), None);
    let n = capture(3, 1).drop_note().unwrap();
    assert!(n.starts_with("4 packet(s) were dropped"), "{n}");
    assert!(n.contains("verdicts may be incomplete"), "{n}");
}

#[test]
fn floats_are_written_rounded_to_microseconds() {
    assert_eq!(json::round_micros(2.0020005000000003), 2.002001);
    assert_eq!(json::round_micros(-0.008), -0.008);
    assert_eq!(json::round_micros(-0.0000001).to_string(), "0");
    assert_eq!(json::round_micros(1e300), 1e300);
    let mut r = crate::engine::merge(Vec::new());
    r.summary.duration_s = 2.0020005000000003;
    for format in [Format::Json, Format::Jsonl] {
        let mut out = Vec::new();
        renderer(format, &mut out, false, &TableOptions::default())
            .finish(&r)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\"duration_s\":") && text.contains("2.002001"),
            "{text}"
        );
        assert!(!text.contains("2.0020005"), "{text}");
    }
}

#[test]
fn json_keeps_the_field_order_of_the_types() {
    let r = crate::engine::merge(Vec::new());
    let mut out = Vec::new();
    renderer(Format::Json, &mut out, false, &TableOptions::default())
        .finish(&r)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at("schema_version") < at("tool") && at("tool") < at("inputs"),
        "{text}"
    );
    assert!(
        at("summary") < at("findings") && at("findings") < at("endpoints"),
        "{text}"
    );
}
