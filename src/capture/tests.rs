use super::*;

#[test]
fn filter_compiles_and_matches() {
    let err = Filter::new("tcp prot 80").err().unwrap();
    assert!(err.starts_with("invalid filter \"tcp prot 80\": "), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    let mut f = Filter::new("tcp port 80").unwrap();
    assert_eq!(f.expr(), "tcp port 80");
    let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 100);
    let mut data = Vec::new();
    b.write(&mut data, b"x").unwrap();
    let mut pkt = Packet {
        linktype: linktype::ETHERNET,
        data: data.clone(),
        ..Packet::default()
    };
    assert_eq!(f.matches(&pkt), Ok(true));
    // Same packet as raw IP: a second program for link type 101.
    pkt.linktype = linktype::RAW;
    pkt.data = data[14..].to_vec();
    assert_eq!(f.matches(&pkt), Ok(true));
    let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1, 80);
    pkt.data.clear();
    b.write(&mut pkt.data, b"x").unwrap();
    assert_eq!(f.matches(&pkt), Ok(false));
    // An expression that does not fit a link type is an error there.
    let mut f = Filter::new("ether host 01:02:03:04:05:06").unwrap();
    let err = f.matches(&pkt).unwrap_err();
    assert!(err.contains("link type 101"), "{err}");
}

#[test]
fn sources_and_filters_are_send() {
    fn send<T: Send>() {}
    send::<FileSource>();
    send::<Filter>();
}
