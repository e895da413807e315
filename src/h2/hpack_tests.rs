//! Unit tests of HPACK: the RFC 7541 Appendix C examples (bytes and dynamic table states as
//! the RFC prints them), the error cases, and an encode → decode round trip.
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|d| u8::from_str_radix(std::str::from_utf8(d).unwrap(), 16).unwrap())
        .collect()
}

type Fields = Vec<(String, String)>;

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut got = Vec::new();
    d.decode(block, 1 << 20, &mut |n, v| {
        got.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ))
    })?;
    Ok(got)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn table(d: &Decoder) -> (usize, Fields) {
    let (size, entries) = d.table();
    let entries = entries
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    (size, entries)
}

/// One step of an Appendix C example: the block, the list it decodes to, the table after it.
struct Step<'a> {
    block: &'a str,
    list: &'a [(&'a str, &'a str)],
    size: usize,
    table: &'a [(&'a str, &'a str)],
}

/// `table_size` other than 4096 is set with a block holding only a size update, as a peer's
/// encoder would (the RFC's examples assume both sides agreed on it).
fn run(table_size: usize, steps: &[Step<'_>]) {
    let mut d = Decoder::new(4096);
    if table_size != DEFAULT_TABLE {
        let mut update = Vec::new();
        write_int(&mut update, 0x20, 5, table_size);
        decode(&mut d, &update).unwrap();
    }
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(
            decode(&mut d, &hex(s.block)).unwrap(),
            fields(s.list),
            "step {i}"
        );
        assert_eq!(table(&d), (s.size, fields(s.table)), "table after step {i}");
    }
}

#[test]
fn rfc7541_c2_field_representations() {
    let cases = [
        // C.2.1 literal with indexing
        Step {
            block: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            list: &[("custom-key", "custom-header")],
            size: 55,
            table: &[("custom-key", "custom-header")],
        },
        // C.2.2 literal without indexing
        Step {
            block: "040c 2f73 616d 706c 652f 7061 7468",
            list: &[(":path", "/sample/path")],
            size: 0,
            table: &[],
        },
        // C.2.3 literal never indexed
        Step {
            block: "1008 7061 7373 776f 7264 0673 6563 7265 74",
            list: &[("password", "secret")],
            size: 0,
            table: &[],
        },
        // C.2.4 indexed
        Step {
            block: "82",
            list: &[(":method", "GET")],
            size: 0,
            table: &[],
        },
    ];
    for case in cases {
        run(4096, &[case]);
    }
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_T2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

fn requests(blocks: [&str; 3]) {
    run(
        4096,
        &[
            Step {
                block: blocks[0],
                list: REQ1,
                size: 57,
                table: REQ_T1,
            },
            Step {
                block: blocks[1],
                list: REQ2,
                size: 110,
                table: REQ_T2,
            },
            Step {
                block: blocks[2],
                list: REQ3,
                size: 164,
                table: REQ_T3,
            },
        ],
    );
}

#[test]
fn rfc7541_c3_requests_without_huffman() {
    requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

/// C.5 and C.6 use a 256-octet table, so entries are evicted between responses.
fn responses(blocks: [&str; 3]) {
    run(
        256,
        &[
            Step {
                block: blocks[0],
                list: &[
                    (":status", "302"),
                    ("cache-control", "private"),
                    ("date", DATE1),
                    ("location", LOC),
                ],
                size: 222,
                table: &[
                    ("location", LOC),
                    ("date", DATE1),
                    ("cache-control", "private"),
                    (":status", "302"),
                ],
            },
            Step {
                block: blocks[1],
                list: &[
                    (":status", "307"),
                    ("cache-control", "private"),
                    ("date", DATE1),
                    ("location", LOC),
                ],
                size: 222,
                table: &[
                    (":status", "307"),
                    ("location", LOC),
                    ("date", DATE1),
                    ("cache-control", "private"),
                ],
            },
            Step {
                block: blocks[2],
                list: &[
                    (":status", "200"),
                    ("cache-control", "private"),
                    ("date", DATE2),
                    ("location", LOC),
                    ("content-encoding", "gzip"),
                    ("set-cookie", COOKIE),
                ],
                size: 215,
                table: &[
                    ("set-cookie", COOKIE),
                    ("content-encoding", "gzip"),
                    ("date", DATE2),
                ],
            },
        ],
    );
}

#[test]
fn rfc7541_c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn rfc7541_c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn integers_rfc7541_c1() {
    // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix; C.1.3: 42 at an octet start.
    for (value, prefix, bytes) in [
        (10, 5, vec![0x0a]),
        (1337, 5, vec![0x1f, 0x9a, 0x0a]),
        (42, 8, vec![0x2a]),
    ] {
        let mut out = Vec::new();
        write_int(&mut out, 0, prefix, value);
        assert_eq!(out, bytes);
        let mut pos = 0;
        assert_eq!(read_int(&bytes, &mut pos, prefix), Ok(value));
        assert_eq!(pos, bytes.len());
    }
    // Too many continuation octets, and a truncated one.
    let mut pos = 0;
    assert_eq!(
        read_int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut pos, 5),
        Err(HpackError::IntegerOverflow)
    );
    let mut pos = 0;
    assert_eq!(
        read_int(&[0x1f, 0xff], &mut pos, 5),
        Err(HpackError::Truncated)
    );
}

#[test]
fn malformed_blocks_are_refused() {
    let mut d = Decoder::new(4096);
    // Index 0, and an index past both tables.
    assert_eq!(decode(&mut d, &[0x80]), Err(HpackError::BadIndex(0)));
    assert_eq!(decode(&mut d, &[0xbe]), Err(HpackError::BadIndex(62)));
    // A literal whose value runs past the block.
    assert_eq!(
        decode(&mut d, &hex("0004 0161 0562 63")),
        Err(HpackError::Truncated)
    );
    // Huffman value with bad padding ('a' then 0 bits).
    assert!(matches!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x81, 0b0001_1110]),
        Err(HpackError::Huffman(_))
    ));
    // Table size updates: allowed at the start (twice), not after a field, not above max.
    assert_eq!(
        decode(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        decode(&mut d, &[0x82, 0x20]),
        Err(HpackError::SizeUpdateNotAtStart)
    );
    assert_eq!(
        decode(&mut d, &[0x3f, 0xe2, 0x1f]),
        Err(HpackError::SizeUpdateTooLarge(4097))
    );
}

#[test]
fn table_size_update_evicts_and_oversized_entries_empty_the_table() {
    let mut d = Decoder::new(4096);
    // custom-key: custom-header (55 octets) twice.
    let lit = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    decode(&mut d, &lit).unwrap();
    decode(&mut d, &lit).unwrap();
    assert_eq!(table(&d).0, 110);
    // Down to 60: the older copy goes.
    let mut block = vec![0x3f, 0x1d]; // 31 + 29 = 60
    block.push(0xbe); // index 62: still there
    assert_eq!(decode(&mut d, &block).unwrap().len(), 1);
    assert_eq!(table(&d).0, 55);
    assert_eq!(decode(&mut d, &[0xbf]), Err(HpackError::BadIndex(63)));
    // An entry bigger than the whole table empties it and is not added (RFC 7541 §4.4).
    let mut big = vec![0x3f, 0x1d, 0x40, 0x01, b'n', 0x3f]; // value of 63 octets
    big.extend_from_slice(&[b'v'; 63]);
    assert_eq!(decode(&mut d, &big).unwrap().len(), 1);
    assert_eq!(table(&d), (0, vec![]));
    // A size update to 0 empties; the table grows back when allowed again.
    decode(&mut d, &[0x20]).unwrap();
    decode(&mut d, &[0x3f, 0xe1, 0x1f]).unwrap();
    decode(&mut d, &lit).unwrap();
    assert_eq!(table(&d).0, 55);
}

#[test]
fn header_list_limit_keeps_the_table_in_step() {
    let mut d = Decoder::new(4096);
    // REQ1 is 4 fields: 7+3 + 7+4 + 5+1 + 10+15 + 4*32 = 180 octets.
    let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    let mut n = 0;
    let r = d.decode(&block, 179, &mut |_, _| n += 1);
    assert_eq!(r, Err(HpackError::ListTooLarge));
    assert_eq!(n, 3, "fields past the limit are not emitted");
    // The literal with indexing was still added, so the next block's reference works.
    assert_eq!(table(&d).0, 57);
    let mut e = Decoder::new(4096);
    assert!(e.decode(&block, 180, &mut |_, _| ()).is_ok());
    assert_eq!(
        decode(&mut d, &[0xbe]).unwrap(),
        fields(&[(":authority", "www.example.com")])
    );
}

#[test]
fn encoder_uses_the_static_table_and_no_dynamic_table() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    let list: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":path", b"/x"),
        (b"x-custom", b"value"),
        (b":status", b"200"),
    ];
    e.encode(&mut list.iter().copied(), &mut out);
    // Size update 0, index 2, literal with name index 4, new-name literal, index 8.
    assert_eq!(out[..3], [0x20, 0x82, 0x04]);
    assert_eq!(*out.last().unwrap(), 0x88);
    let mut d = Decoder::new(4096);
    let got = decode(&mut d, &out).unwrap();
    assert_eq!(
        got,
        fields(&[
            (":method", "GET"),
            (":path", "/x"),
            ("x-custom", "value"),
            (":status", "200")
        ])
    );
    assert_eq!(table(&d), (0, vec![]));
}

#[test]
fn encoder_lowercases_names() {
    let mut out = Vec::new();
    let list: [(&[u8], &[u8]); 3] = [
        (b"Content-Type", b"text/plain"),
        (b"X-Mixed-Case", b"Value Kept"),
        (b"Location", b"/"),
    ];
    Encoder::new().encode(&mut list.iter().copied(), &mut out);
    // Content-Type found the static name (index 31 = 0x0f 0x10 with a 4-bit prefix).
    assert_eq!(out[1..3], [0x0f, 0x10]);
    assert_eq!(
        decode(&mut Decoder::new(4096), &out).unwrap(),
        fields(&[
            ("content-type", "text/plain"),
            ("x-mixed-case", "Value Kept"),
            ("location", "/")
        ])
    );
}

/// Encode → decode gives the same fields (names lowercased), over many pseudo-random lists (names from the static
/// table and random bytes, values of every length class, long enough for multi-octet integers).
#[test]
fn round_trip_property() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut e = Encoder::new();
    let mut d = Decoder::new(4096);
    for _ in 0..500 {
        let count = (next() % 12) as usize;
        let mut list: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..count {
            let name = match next() % 3 {
                0 => STATIC[(next() % 61) as usize].0.to_vec(),
                1 => b"x-header".to_vec(),
                _ => (0..1 + next() % 40).map(|_| next() as u8).collect(),
            };
            let value = match next() % 4 {
                0 => STATIC[(next() % 61) as usize].1.to_vec(),
                1 => b"text/html; charset=utf-8".to_vec(),
                2 => (0..next() % 300)
                    .map(|_| b'a' + (next() % 26) as u8)
                    .collect(),
                _ => (0..next() % 300).map(|_| next() as u8).collect(),
            };
            list.push((name, value));
        }
        let mut out = Vec::new();
        e.encode(&mut list.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
        let mut got = Vec::new();
        d.decode(&out, usize::MAX, &mut |n, v| {
            got.push((n.to_vec(), v.to_vec()))
        })
        .unwrap();
        let lowered: Vec<_> = list
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        assert_eq!(got, lowered);
    }
}

/// Arbitrary blocks never panic the decoder (a stand-in for the fuzz target in `cargo test`).
#[test]
fn arbitrary_blocks_do_not_panic() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut d = Decoder::new(256);
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let block: Vec<u8> = seed
            .to_le_bytes()
            .iter()
            .chain(&(seed >> 3).to_be_bytes())
            .copied()
            .collect();
        let _ = d.decode(&block[..(seed % 17) as usize], 4096, &mut |_, _| ());
    }
}

/// The table starts at the protocol's 4096 octets whatever this side advertises: an entry the
/// peer's encoder (still at 4096) keeps must be kept here too, or indices would shift.
#[test]
fn table_starts_at_4096_and_updates_are_bounded_by_the_advertised_size() {
    let mut big = Decoder::new(65_536);
    // A 4,100-octet entry: larger than 4096, so not added, and the table is emptied.
    let mut block = vec![0x40, 0x01, b'n'];
    write_int(&mut block, 0, 7, 4067); // 1 + 4067 + 32 = 4100
    block.extend_from_slice(&vec![b'v'; 4067]);
    decode(&mut big, &block).unwrap();
    assert_eq!(table(&big).0, 0);
    // After a size update to 65536 the same entry fits.
    let mut up = Vec::new();
    write_int(&mut up, 0x20, 5, 65_536);
    up.extend_from_slice(&block);
    decode(&mut big, &up).unwrap();
    assert_eq!(table(&big).0, 4100);
    let mut over = Vec::new();
    write_int(&mut over, 0x20, 5, 65_537);
    assert_eq!(
        decode(&mut big, &over),
        Err(HpackError::SizeUpdateTooLarge(65_537))
    );
    // Advertising less than 4096 still accepts the initial size (a peer may not have seen
    // our SETTINGS yet).
    let mut small = Decoder::new(0);
    assert!(decode(&mut small, &[0x3f, 0xe1, 0x1f]).is_ok());
}
