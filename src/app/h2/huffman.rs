//! The Huffman code of HPACK (RFC 7541 section 5.2, Appendix B), decoded one bit at a time.
//!
//! The code is canonical: the codes of one length are consecutive, in symbol order, and the
//! first code of each length follows the last of the one before. So the table of code lengths
//! alone defines it; the decoder keeps, per length, its first code and where its symbols start
//! in the list of symbols ordered by (length, symbol).

use std::sync::OnceLock;

/// The end-of-string symbol: never valid inside a string.
const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// Code length of every symbol 0..=256 (RFC 7541 Appendix B).
#[rustfmt::skip]
const LENGTHS: [u8; 257] = [
    // 0-31: control bytes
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    // ' ' ! " # $ % & ' ( ) * + , - . /
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    // 0-9 : ; < = > ?
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    // @ A-O
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    // P-Z [ \ ] ^ _
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    // ` a-o
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    // p-z { | } ~ DEL
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    // 128-255
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    // EOS
    30,
];

/// The canonical code, arranged for decoding.
struct Code {
    /// `first[len]`: the first code of that length.
    first: [u32; MAX_LEN + 1],
    /// `count[len]`: how many codes have that length.
    count: [u32; MAX_LEN + 1],
    /// `start[len]`: where the symbols of that length start in `symbols`.
    start: [u16; MAX_LEN + 1],
    /// The symbols ordered by (length, symbol).
    symbols: [u16; 257],
}

fn code() -> &'static Code {
    static CODE: OnceLock<Code> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut c = Code {
            first: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            start: [0; MAX_LEN + 1],
            symbols: [0; 257],
        };
        for &l in &LENGTHS {
            c.count[l as usize] += 1;
        }
        let (mut next, mut at) = (0u32, 0u16);
        for len in 1..=MAX_LEN {
            c.first[len] = next;
            c.start[len] = at;
            next = (next + c.count[len]) << 1;
            at += c.count[len] as u16;
        }
        let mut fill = c.start;
        for (sym, &l) in LENGTHS.iter().enumerate() {
            c.symbols[fill[l as usize] as usize] = sym as u16;
            fill[l as usize] += 1;
        }
        c
    })
}

/// Why a Huffman string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The end-of-string symbol inside the string.
    Eos,
    /// More than 7 bits of padding, or padding that is not the EOS code's first bits (ones).
    Padding,
}

/// Decodes `src` (a whole Huffman-coded string) onto the end of `out`.
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let c = code();
    let (mut acc, mut len) = (0u32, 0usize);
    for &byte in src {
        for shift in (0..8).rev() {
            acc = acc << 1 | u32::from(byte >> shift & 1);
            len += 1;
            let offset = acc.wrapping_sub(c.first[len]);
            if offset < c.count[len] {
                let sym = c.symbols[c.start[len] as usize + offset as usize];
                if sym == EOS {
                    return Err(HuffmanError::Eos);
                }
                out.push(sym as u8);
                acc = 0;
                len = 0;
            }
            // (a complete code: every 30-bit pattern ends a code, so `len` stays <= 30)
        }
    }
    // what is left is padding: at most 7 bits, all ones
    if len > 7 || acc != (1 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The code of `sym`: (bits, length).
    pub fn code_of(sym: usize) -> (u32, usize) {
        let c = code();
        let len = LENGTHS[sym] as usize;
        let index = (0..257).find(|&i| c.symbols[i] as usize == sym).unwrap();
        (c.first[len] + (index as u32 - u32::from(c.start[len])), len)
    }

    /// Huffman-codes `s` (for the tests' encoders).
    pub fn encode(s: &[u8]) -> Vec<u8> {
        let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0usize);
        for &b in s {
            let (code, len) = code_of(b as usize);
            acc = acc << len | u64::from(code);
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    #[test]
    fn the_canonical_code_is_rfc_7541s() {
        // a complete prefix code: the Kraft sum is exactly 1
        let kraft: u64 = LENGTHS
            .iter()
            .map(|&l| 1u64 << (MAX_LEN - l as usize))
            .sum();
        assert_eq!(kraft, 1 << MAX_LEN);
        // codes from Appendix B, of every length class
        for (sym, code, len) in [
            (b'0' as usize, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (b't' as usize, 0x9, 5),
            (b' ' as usize, 0x14, 6),
            (b':' as usize, 0x5c, 7),
            (b'&' as usize, 0xf8, 8),
            (b'?' as usize, 0x3fc, 10),
            (b'#' as usize, 0xffa, 12),
            (0, 0x1ff8, 13),
            (b'^' as usize, 0x3ffc, 14),
            (b'{' as usize, 0x7ffe, 15),
            (195, 0x7fff1, 19),
            (128, 0xfffe6, 20),
            (153, 0x1fffdc, 21),
            (129, 0x3fffd2, 22),
            (1, 0x7fffd8, 23),
            (9, 0xffffea, 24),
            (199, 0x1ffffec, 25),
            (255, 0x3ffffee, 26),
            (254, 0x7fffff0, 27),
            (249, 0xffffffe, 28),
            (22, 0x3ffffffe, 30),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!(code_of(sym), (code, len), "symbol {sym}");
        }
    }

    #[test]
    fn decodes_the_rfc_examples_and_round_trips() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        // RFC 7541 C.4.1 and C.4.2
        for (coded, text) in [
            ("f1e3c2e5f23a6ba0ab90f4ff", &b"www.example.com"[..]),
            ("a8eb10649cbf", b"no-cache"),
        ] {
            let mut out = Vec::new();
            decode(&hex(coded), &mut out).unwrap();
            assert_eq!(out, text);
            assert_eq!(encode(text), hex(coded));
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn bad_strings_are_errors() {
        let mut out = Vec::new();
        // the EOS code (30 ones) inside a string
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HuffmanError::Eos)
        );
        // 8 bits of padding
        let mut s = encode(b"a");
        s.push(0xff);
        assert_eq!(decode(&s, &mut out), Err(HuffmanError::Padding));
        // padding with a zero in it: 'a' (00011) then 000
        assert_eq!(decode(&[0x18], &mut out), Err(HuffmanError::Padding));
        // nothing at all is the empty string
        out.clear();
        assert_eq!(decode(&[], &mut out), Ok(()));
        assert!(out.is_empty());
    }
}
