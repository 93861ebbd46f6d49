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
