//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B). The code is canonical (within one length
//! the codes count up with the symbol), so decoding needs only, per length, the first code, how
//! many codes have it, and the symbols in order — built from the table at compile time.

/// RFC 7541 Appendix B: (code, length in bits) for each symbol 0..=255 and EOS (256), the
/// code right-aligned in the u32.
#[rustfmt::skip]
pub const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),    (0x7fffd8, 23),  (0xfffffe2, 28), (0xfffffe3, 28), // 0
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), // 4
    (0xfffffe8, 28), (0xffffea, 24),  (0x3ffffffc, 30), (0xfffffe9, 28), // 8
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), // 12
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), // 16
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), // 20
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), // 24
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28), // 28
    (0x14, 6),       (0x3f8, 10),     (0x3f9, 10),     (0xffa, 12), // 32
    (0x1ff9, 13),    (0x15, 6),       (0xf8, 8),       (0x7fa, 11), // 36
    (0x3fa, 10),     (0x3fb, 10),     (0xf9, 8),       (0x7fb, 11), // 40
    (0xfa, 8),       (0x16, 6),       (0x17, 6),       (0x18, 6), // 44
    (0x0, 5),        (0x1, 5),        (0x2, 5),        (0x19, 6), // 48
    (0x1a, 6),       (0x1b, 6),       (0x1c, 6),       (0x1d, 6), // 52
    (0x1e, 6),       (0x1f, 6),       (0x5c, 7),       (0xfb, 8), // 56
    (0x7ffc, 15),    (0x20, 6),       (0xffb, 12),     (0x3fc, 10), // 60
    (0x1ffa, 13),    (0x21, 6),       (0x5d, 7),       (0x5e, 7), // 64
    (0x5f, 7),       (0x60, 7),       (0x61, 7),       (0x62, 7), // 68
    (0x63, 7),       (0x64, 7),       (0x65, 7),       (0x66, 7), // 72
    (0x67, 7),       (0x68, 7),       (0x69, 7),       (0x6a, 7), // 76
    (0x6b, 7),       (0x6c, 7),       (0x6d, 7),       (0x6e, 7), // 80
    (0x6f, 7),       (0x70, 7),       (0x71, 7),       (0x72, 7), // 84
    (0xfc, 8),       (0x73, 7),       (0xfd, 8),       (0x1ffb, 13), // 88
    (0x7fff0, 19),   (0x1ffc, 13),    (0x3ffc, 14),    (0x22, 6), // 92
    (0x7ffd, 15),    (0x3, 5),        (0x23, 6),       (0x4, 5), // 96
    (0x24, 6),       (0x5, 5),        (0x25, 6),       (0x26, 6), // 100
    (0x27, 6),       (0x6, 5),        (0x74, 7),       (0x75, 7), // 104
    (0x28, 6),       (0x29, 6),       (0x2a, 6),       (0x7, 5), // 108
    (0x2b, 6),       (0x76, 7),       (0x2c, 6),       (0x8, 5), // 112
    (0x9, 5),        (0x2d, 6),       (0x77, 7),       (0x78, 7), // 116
    (0x79, 7),       (0x7a, 7),       (0x7b, 7),       (0x7ffe, 15), // 120
    (0x7fc, 11),     (0x3ffd, 14),    (0x1ffd, 13),    (0xffffffc, 28), // 124
    (0xfffe6, 20),   (0x3fffd2, 22),  (0xfffe7, 20),   (0xfffe8, 20), // 128
    (0x3fffd3, 22),  (0x3fffd4, 22),  (0x3fffd5, 22),  (0x7fffd9, 23), // 132
    (0x3fffd6, 22),  (0x7fffda, 23),  (0x7fffdb, 23),  (0x7fffdc, 23), // 136
    (0x7fffdd, 23),  (0x7fffde, 23),  (0xffffeb, 24),  (0x7fffdf, 23), // 140
    (0xffffec, 24),  (0xffffed, 24),  (0x3fffd7, 22),  (0x7fffe0, 23), // 144
    (0xffffee, 24),  (0x7fffe1, 23),  (0x7fffe2, 23),  (0x7fffe3, 23), // 148
    (0x7fffe4, 23),  (0x1fffdc, 21),  (0x3fffd8, 22),  (0x7fffe5, 23), // 152
    (0x3fffd9, 22),  (0x7fffe6, 23),  (0x7fffe7, 23),  (0xffffef, 24), // 156
    (0x3fffda, 22),  (0x1fffdd, 21),  (0xfffe9, 20),   (0x3fffdb, 22), // 160
    (0x3fffdc, 22),  (0x7fffe8, 23),  (0x7fffe9, 23),  (0x1fffde, 21), // 164
    (0x7fffea, 23),  (0x3fffdd, 22),  (0x3fffde, 22),  (0xfffff0, 24), // 168
    (0x1fffdf, 21),  (0x3fffdf, 22),  (0x7fffeb, 23),  (0x7fffec, 23), // 172
    (0x1fffe0, 21),  (0x1fffe1, 21),  (0x3fffe0, 22),  (0x1fffe2, 21), // 176
    (0x7fffed, 23),  (0x3fffe1, 22),  (0x7fffee, 23),  (0x7fffef, 23), // 180
    (0xfffea, 20),   (0x3fffe2, 22),  (0x3fffe3, 22),  (0x3fffe4, 22), // 184
    (0x7ffff0, 23),  (0x3fffe5, 22),  (0x3fffe6, 22),  (0x7ffff1, 23), // 188
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20),   (0x7fff1, 19), // 192
    (0x3fffe7, 22),  (0x7ffff2, 23),  (0x3fffe8, 22),  (0x1ffffec, 25), // 196
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), // 200
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24),  (0x1ffffed, 25), // 204
    (0x7fff2, 19),   (0x1fffe3, 21),  (0x3ffffe6, 26), (0x7ffffe0, 27), // 208
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), // 212
    (0x1fffe4, 21),  (0x1fffe5, 21),  (0x3ffffe8, 26), (0x3ffffe9, 26), // 216
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27), // 220
    (0xfffec, 20),   (0xfffff3, 24),  (0xfffed, 20),   (0x1fffe6, 21), // 224
    (0x3fffe9, 22),  (0x1fffe7, 21),  (0x1fffe8, 21),  (0x7ffff3, 23), // 228
    (0x3fffea, 22),  (0x3fffeb, 22),  (0x1ffffee, 25), (0x1ffffef, 25), // 232
    (0xfffff4, 24),  (0xfffff5, 24),  (0x3ffffea, 26), (0x7ffff4, 23), // 236
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), // 240
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27), // 244
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), // 248
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), // 252
    (0x3fffffff, 30), // 256
];

/// The EOS symbol: its code pads the last octet and must never be decoded (§5.2).
const EOS: u16 = 256;
/// The longest code, in bits.
const MAX_LEN: usize = 30;

/// Why a Huffman string was refused (each is a COMPRESSION_ERROR, RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// Padding longer than 7 bits or not all ones.
    Padding,
}

impl std::fmt::Display for HuffmanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HuffmanError::Eos => "EOS symbol inside a Huffman string",
            HuffmanError::Padding => "Huffman padding longer than 7 bits or not all ones",
        })
    }
}

/// Per code length: the first code, how many symbols have that length, and where they start
/// in `syms` (which lists the symbols by length, then by symbol, i.e. by code).
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u16; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    syms: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        syms: [0; 257],
    };
    let mut n = 0;
    let mut len = 0;
    while len <= MAX_LEN {
        c.offset[len] = n as u16;
        let mut sym = 0;
        while sym < 257 {
            if CODES[sym].1 as usize == len {
                if c.count[len] == 0 {
                    c.first[len] = CODES[sym].0;
                }
                c.count[len] += 1;
                c.syms[n] = sym as u16;
                n += 1;
            }
            sym += 1;
        }
        len += 1;
    }
    c
}

static CANON: Canonical = canonical();

/// Appends the decoding of `src` to `out`, bit by bit: after each bit, the bits since the last
/// symbol are a code exactly when they fall in that length's run of codes.
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let first = CANON.first.get(len).copied().unwrap_or(0);
            let count = CANON.count.get(len).copied().unwrap_or(0);
            let at = code.wrapping_sub(first);
            if code >= first && at < u32::from(count) {
                let index = usize::from(CANON.offset.get(len).copied().unwrap_or(0)) + at as usize;
                match CANON.syms.get(index).copied() {
                    Some(EOS) | None => return Err(HuffmanError::Eos),
                    Some(sym) => out.push(sym as u8),
                }
                code = 0;
                len = 0;
            } else if len >= MAX_LEN {
                // Every 30-bit string is a code or has one as a prefix; kept as a guard.
                return Err(HuffmanError::Eos);
            }
        }
    }
    // What is left is padding: at most 7 bits, all ones (the start of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// How many octets [`encode`] makes of `src`.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman encoding of `src`, padded with the most significant bits of EOS (ones).
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | (0xff >> bits)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is a complete canonical prefix code: the decoding tables give every symbol
    /// back its own code, and the code lengths fill the code space exactly (Kraft sum 1).
    #[test]
    fn table_is_canonical_and_complete() {
        let mut kraft = 0u64;
        for (sym, &(code, len)) in CODES.iter().enumerate() {
            let len = usize::from(len);
            assert!((5..=MAX_LEN).contains(&len), "symbol {sym}");
            assert!(code < (1 << len), "symbol {sym}");
            kraft += 1 << (MAX_LEN - len);
        }
        assert_eq!(kraft, 1 << MAX_LEN);
        let mut next = 0u32;
        for len in 0..=MAX_LEN {
            next <<= 1;
            for i in 0..usize::from(CANON.count[len]) {
                let sym = CANON.syms[usize::from(CANON.offset[len]) + i];
                assert_eq!(CODES[usize::from(sym)], (next, len as u8), "symbol {sym}");
                next += 1;
            }
        }
    }

    #[test]
    fn rfc_examples_and_round_trip() {
        // RFC 7541 C.4.1: "www.example.com".
        let enc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        encode(b"www.example.com", &mut out);
        assert_eq!(out, enc);
        assert_eq!(encoded_len(b"www.example.com"), 12);
        out.clear();
        decode(&enc, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        // Every octet value, alone and all together.
        let all: Vec<u8> = (0..=255).collect();
        for s in all.chunks(1).chain([&all[..], b""]) {
            let mut enc = Vec::new();
            encode(s, &mut enc);
            assert_eq!(enc.len(), encoded_len(s));
            let mut dec = Vec::new();
            decode(&enc, &mut dec).unwrap();
            assert_eq!(dec, s);
        }
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): padding 111 is fine, 110 is not all ones.
        let mut out = Vec::new();
        assert_eq!(decode(&[0b0001_1111], &mut out), Ok(()));
        assert_eq!(out, b"a");
        assert_eq!(decode(&[0b0001_1110], &mut out), Err(HuffmanError::Padding));
        // A whole octet of ones after a symbol is padding longer than 7 bits.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut out),
            Err(HuffmanError::Padding)
        );
        assert_eq!(decode(&[0xff], &mut out), Err(HuffmanError::Padding));
        // EOS itself (30 ones), padded with ones to 32 bits.
        assert_eq!(decode(&[0xff; 4], &mut out), Err(HuffmanError::Eos));
        // The empty string is valid.
        assert_eq!(decode(&[], &mut out), Ok(()));
    }
}
