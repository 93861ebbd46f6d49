use super::super::huffman::tests::encode as huffman_encode;
use super::*;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut out = Vec::new();
    d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))?;
    Ok(out)
}

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// RFC 7541 C.3 (raw strings) and C.4 (Huffman-coded): three requests on one connection.
#[test]
fn decodes_the_rfc_request_examples() {
    let first = fields(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ]);
    let mut second = first.clone();
    second.extend(fields(&[("cache-control", "no-cache")]));
    for blocks in [
        [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
        ],
        [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
        ],
    ] {
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, &hex(blocks[0])).unwrap(), first);
        assert_eq!(d.table.size, 57);
        assert_eq!(decode(&mut d, &hex(blocks[1])).unwrap(), second);
        assert_eq!(d.table.size, 110);
        // C.3.3: a literal name, the table then holds three entries
        let third = hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65");
        let got = decode(&mut d, &third).unwrap();
        assert_eq!(got[4], (b"custom-key".to_vec(), b"custom-value".to_vec()));
        assert_eq!(
            got[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
        assert_eq!(d.table.size, 164);
    }
}

/// A table too small for everything evicts the oldest; an entry larger than the table
/// empties it; a size update shrinks it.
#[test]
fn the_dynamic_table_evicts_the_oldest() {
    let mut d = Decoder::new(4096);
    // size update to 100 (001 11111 + 69), then two literals with indexing (new names)
    let mut block = vec![0x3f, 69];
    for (n, v) in [("aaaa", "1111"), ("bbbb", "2222"), ("cccc", "3333")] {
        block.extend([0x40, 4]);
        block.extend(n.as_bytes());
        block.push(4);
        block.extend(v.as_bytes());
    }
    decode(&mut d, &block).unwrap();
    // 40 bytes each: two fit in 100, the first was evicted
    assert_eq!(d.table.size, 80);
    assert_eq!(
        decode(&mut d, &[0x80 | 62]).unwrap(),
        fields(&[("cccc", "3333")])
    );
    assert_eq!(
        decode(&mut d, &[0x80 | 63]).unwrap(),
        fields(&[("bbbb", "2222")])
    );
    assert_eq!(decode(&mut d, &[0x80 | 64]), Err(HpackError::BadIndex));
    // an entry larger than the table empties it
    let mut big = vec![0x40, 4];
    big.extend(b"dddd");
    big.extend([0x7f, 0]); // a 127-byte value
    big.extend([b'x'; 127]);
    decode(&mut d, &big).unwrap();
    assert_eq!((d.table.size, d.table.dynamic.len()), (0, 0));
    // beyond the allowed size: an error
    assert_eq!(
        decode(&mut Decoder::new(4096), &[0x3f, 0xe2, 0x1f]),
        Err(HpackError::TableSizeTooLarge)
    );
}

/// Every prefix of a block, and bytes of every value, decode or fail without a panic.
#[test]
fn truncated_and_arbitrary_blocks_never_panic() {
    let block = hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65");
    for end in 0..block.len() {
        let mut d = Decoder::new(4096);
        let _ = decode(&mut d, &block[..end]);
    }
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        let mut d = Decoder::new(4096);
        let block: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = decode(&mut d, &block);
        assert!(d.table.size <= d.table.max_size);
    }
    // integers: too long, too large, cut short
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(HpackError::IntegerOverflow)
    );
    assert_eq!(
        decode(&mut d, &[0xff, 0xff, 0xff, 0xff, 0x7f]),
        Err(HpackError::IntegerOverflow)
    );
    assert_eq!(decode(&mut d, &[0xff, 0x80]), Err(HpackError::Truncated));
    assert_eq!(
        decode(&mut d, &[0x40, 0x05, b'a']),
        Err(HpackError::Truncated)
    );
}

/// The same fields as the `loona-hpack` decoder (the crate this replaces) on blocks its
/// encoder makes (indexed fields, literals with and without indexing, a dynamic table over
/// many blocks), and on the same blocks with every literal string Huffman-coded.
#[test]
fn agrees_with_loona_hpack() {
    let names = [
        "x-request-id",
        "content-type",
        "accept",
        "cookie",
        "x-long-header-name",
        ":path",
    ];
    let mut x: u32 = 777;
    let mut next = move |n: u32| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x % n
    };
    let mut enc = loona_hpack::Encoder::new();
    let mut theirs = loona_hpack::Decoder::new();
    let mut ours = Decoder::new(4096);
    for _ in 0..300 {
        let list: Vec<(String, String)> = (0..1 + next(6))
            .map(|_| {
                let n = names[next(names.len() as u32) as usize].to_string();
                let v: String = (0..next(40))
                    .map(|_| char::from(b'!' + next(90) as u8))
                    .collect();
                (n, v)
            })
            .collect();
        let block = enc.encode(list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let expected: Fields = theirs.decode(&block).unwrap();
        assert_eq!(decode(&mut ours, &block).unwrap(), expected);
        assert_eq!(expected.len(), list.len());
    }
    // Huffman: literals without indexing, each string coded
    let mut d = Decoder::new(4096);
    let mut theirs = loona_hpack::Decoder::new();
    for _ in 0..300 {
        let name: Vec<u8> = (0..1 + next(20)).map(|_| next(256) as u8).collect();
        let value: Vec<u8> = (0..next(30)).map(|_| next(256) as u8).collect();
        let mut block = vec![0x00];
        for s in [&name, &value] {
            let coded = huffman_encode(s);
            assert!(coded.len() < 127);
            block.push(0x80 | coded.len() as u8);
            block.extend(coded);
        }
        let got = decode(&mut d, &block).unwrap();
        assert_eq!(got, vec![(name.clone(), value.clone())]);
        assert_eq!(got, theirs.decode(&block).unwrap());
    }
}
