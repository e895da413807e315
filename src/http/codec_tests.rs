//! Unit tests of the pure HTTP/1 codec (kept apart so codec.rs stays readable).
use super::*;

type Summary = (Framing, bool, Option<String>, String);

fn req(raw: &str) -> Result<Option<Summary>, HeadError> {
    let mut h = crate::http::codec::header_slots();
    parse_request(raw.as_bytes(), &mut h).map(|o| {
        o.map(|r| {
            (
                r.framing,
                r.keep_alive,
                r.host.map(String::from),
                r.path.to_string(),
            )
        })
    })
}

#[test]
fn request_framing_and_keepalive() {
    let r = req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
    assert_eq!(r.0, Framing::None);
    assert!(r.1);
    let r = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.0, Framing::Length(5));
    assert!(!r.1);
    let r = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!r.1);
    let r = req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.1);
    let r = req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.0, Framing::Chunked);
    assert!(req("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
}

#[test]
fn absolute_form_uses_target_authority() {
    let r = req("GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.2.as_deref(), Some("Example.com:8080"));
    assert_eq!(r.3, "/x?y");
    let r = req("GET http://e.com HTTP/1.1\r\nHost: e.com\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.3, "/");
}

#[test]
fn ambiguous_requests_are_rejected() {
    let bad = [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET x HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    ];
    for b in bad {
        assert!(req(b).is_err(), "accepted: {b:?}");
    }
    let e =
        req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), 501);
    // identical repeated lengths are fine (RFC 9110 §8.6)
    let r = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.0, Framing::Length(5));
}

#[test]
fn too_many_headers_is_431() {
    let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_HEADERS + 1 {
        s.push_str(&format!("x-{i}: v\r\n"));
    }
    s.push_str("\r\n");
    assert_eq!(req(&s).unwrap_err().status(), 431);
}

#[test]
fn responses_with_a_coding_other_than_chunked_are_refused() {
    for te in ["gzip", "chunked, gzip", "gzip, chunked", "identity", ""] {
        let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
        let mut h = crate::http::codec::header_slots();
        assert!(
            parse_response(head.as_bytes(), &mut h, false).is_err(),
            "{te:?} accepted"
        );
        // Without a body the coding has nothing to apply to.
        let mut h = crate::http::codec::header_slots();
        assert!(
            parse_response(head.as_bytes(), &mut h, true).is_ok(),
            "{te:?}"
        );
    }
}

#[test]
fn response_framing() {
    let mut h = crate::http::codec::header_slots();
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
        &mut h,
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (r.status, r.framing, r.keep_alive),
        (200, Framing::Length(3), true)
    );
    let mut h = crate::http::codec::header_slots();
    let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", &mut h, false)
        .unwrap()
        .unwrap();
    assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
    let mut h = crate::http::codec::header_slots();
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
        &mut h,
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.framing, Framing::None);
    let mut h = crate::http::codec::header_slots();
    let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n", &mut h, false)
        .unwrap()
        .unwrap();
    assert_eq!((r.framing, r.keep_alive), (Framing::None, false));
    let mut h = crate::http::codec::header_slots();
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &mut h,
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.framing, Framing::Chunked);
}

fn dechunk(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let n = d.decode(input, usize::MAX, |b| out.extend_from_slice(b))?;
    Ok((out, n, d.is_done()))
}

#[test]
fn chunked_decoding() {
    let (out, n, done) =
        dechunk(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT").unwrap();
    assert_eq!(out, b"hello world");
    assert!(done);
    assert_eq!(n, 40);
    // byte at a time gives the same
    let input = b"a\r\n0123456789\r\n0\r\n\r\n";
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    for b in input.iter() {
        assert_eq!(
            d.decode(std::slice::from_ref(b), usize::MAX, |x| out
                .extend_from_slice(x))
                .unwrap(),
            1
        );
    }
    assert!(d.is_done());
    assert_eq!(out, b"0123456789");
    for bad in [
        &b"x\r\n"[..],
        b"5\rhello",
        b"5\r\nhelloXX",
        b"ffffffffffffffffff\r\n",
        b"\r\n",
    ] {
        assert!(dechunk(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn trailers_are_kept_only_when_asked_and_bounded() {
    let input = b"2\r\nhi\r\n0\r\ngrpc-status: 3\r\ngrpc-message:  bad \nbad line\r\n\r\nX";
    let mut d = ChunkedDecoder::new();
    assert_eq!(
        d.decode(input, usize::MAX, |_| {}).unwrap(),
        input.len() - 1
    );
    assert!(d.is_done() && d.trailers().is_empty());
    let mut end = Vec::new();
    d.last_chunk(&mut end);
    assert_eq!(end, b"0\r\n\r\n");
    // Byte at a time, kept: each line ends CRLF whatever ended it.
    let mut d = ChunkedDecoder::keeping_trailers(64);
    for b in &input[..input.len() - 1] {
        d.decode(std::slice::from_ref(b), usize::MAX, |_| {})
            .unwrap();
    }
    assert!(d.is_done());
    assert_eq!(
        d.trailers(),
        b"grpc-status: 3\r\ngrpc-message:  bad \r\nbad line\r\n"
    );
    let fields: Vec<_> = trailer_fields(d.trailers()).collect();
    assert_eq!(
        fields,
        [(&b"grpc-status"[..], &b"3"[..]), (b"grpc-message", b"bad")]
    );
    let mut end = Vec::new();
    d.last_chunk(&mut end);
    assert!(end.starts_with(b"0\r\ngrpc-status: 3\r\n") && end.ends_with(b"line\r\n\r\n"));
    // Past the bound: an error, not a growing buffer.
    let mut d = ChunkedDecoder::keeping_trailers(8);
    assert!(d.decode(input, usize::MAX, |_| {}).is_err());
}

#[test]
fn chunked_decoding_respects_max_data() {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let n = d
        .decode(b"a\r\n0123456789\r\n0\r\n\r\n", 4, |x| {
            out.extend_from_slice(x)
        })
        .unwrap();
    assert_eq!(out, b"0123");
    assert_eq!(n, 7);
}

#[test]
fn chunk_encoding() {
    let mut v = Vec::new();
    encode_chunk(&mut v, b"hello world, this is 26 by");
    assert_eq!(v, b"1a\r\nhello world, this is 26 by\r\n");
}

/// A target that is not ASCII used to panic in `strip_scheme` (a `str` cut inside a UTF-8
/// character); RFC 9112's request-target is ASCII, so such a request is a plain 400.
#[test]
fn non_ascii_target_is_400_not_a_panic() {
    let raw: &[&[u8]] = &[
        b"GET aaaaaa\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET \xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http:/\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET https://\xc3\xa9/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for r in raw {
        let mut h = header_slots();
        let got = parse_request(r, &mut h).map(|o| o.map(|h| h.path));
        match got {
            Err(e) => assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(r)),
            Ok(x) => panic!("{:?} accepted: {x:?}", String::from_utf8_lossy(r)),
        }
    }
    // The scheme check itself compares bytes and never cuts a character.
    assert_eq!(strip_scheme("aaaaaa\u{e9}"), None);
    assert_eq!(strip_scheme("http:/\u{e9}"), None);
    assert_eq!(strip_scheme("HTTP://\u{e9}x"), Some("\u{e9}x"));
    assert_eq!(strip_scheme("https://a/b"), Some("a/b"));
    assert_eq!(strip_scheme("http"), None);
}

/// Found by fuzzing: httparse accepts any three digits as a status; only 100..=599 are valid
/// (RFC 9110 §15), so anything else is a bad upstream response, not one to relay.
#[test]
fn status_outside_100_to_599_is_refused() {
    for (raw, ok) in [
        (&b"HTTP/1.1 002 Bad\r\nContent-Length: 0\r\n\r\n"[..], false),
        (b"HTTP/1.1 099 x\r\n\r\n", false),
        (b"HTTP/1.1 600 x\r\n\r\n", false),
        (b"HTTP/1.1 999 x\r\n\r\n", false),
        (b"HTTP/1.1 100 Continue\r\n\r\n", true),
        (b"HTTP/1.1 599 x\r\nContent-Length: 0\r\n\r\n", true),
    ] {
        for is_head in [false, true] {
            let mut h = header_slots();
            let got = parse_response(raw, &mut h, is_head).map(|r| r.map(|r| r.status));
            if ok {
                assert!(matches!(got, Ok(Some(_))), "{got:?}");
            } else {
                assert_eq!(got.unwrap_err(), HeadError::Bad("invalid status"));
            }
        }
    }
}

#[test]
fn hop_by_hop_names_in_any_case_and_connection_tokens() {
    for n in [
        "connection",
        "Keep-Alive",
        "PROXY-CONNECTION",
        "te",
        "Transfer-Encoding",
        "upgrade",
        "content-length",
        "Trailer",
    ] {
        assert!(is_hop_by_hop(n), "{n}");
    }
    for n in [
        "",
        "t",
        "tea",
        "upgrades",
        "trailers",
        "content-type",
        "x-connection",
        "host",
    ] {
        assert!(!is_hop_by_hop(n), "{n}");
    }
    let h = |name, value| httparse::Header { name, value };
    let none = [h("Host", &b"a"[..]), h("X-Foo", &b"1"[..])];
    assert!(!connection_names_others(&none));
    let keep = [h("Connection", &b"Keep-Alive"[..]), h("X-Foo", &b"1"[..])];
    assert!(!connection_names_others(&keep));
    let listed = [
        h("X-Foo", &b"1"[..]),
        h("Connection", &b"keep-alive, X-Foo"[..]),
    ];
    assert!(connection_names_others(&listed));
    assert!(named_in_connection(&listed, "x-foo"));
    assert!(!named_in_connection(&listed, "x-bar"));
}

#[test]
fn connection_tokens_across_several_headers() {
    let h = |name, value| httparse::Header { name, value };
    let two = [
        h("connection", &b" , keep-alive ,"[..]),
        h("Connection", &b"Upgrade"[..]),
    ];
    assert!(connection_names_others(&two));
    assert!(named_in_connection(&two, "upgrade"));
    assert!(named_in_connection(&two, "KEEP-ALIVE"));
    assert!(!named_in_connection(&two, ""));
    let empty = [h("Connection", &b" , "[..])];
    assert!(!connection_names_others(&empty));
    assert!(!named_in_connection(
        &[h("X-Connection", &b"close"[..])],
        "close"
    ));
}

#[test]
fn content_length_parses_like_std() {
    for v in [
        "0",
        "9",
        "10",
        "007",
        "1024",
        "9999999999999999999",
        "0000000000000000001",
    ] {
        assert_eq!(parse_length(v.as_bytes()), v.parse::<u64>().ok(), "{v}");
    }
    for v in [
        "",
        "-1",
        "+1",
        "1 ",
        "1a",
        "12345678901234567890",
        "99999999999999999999",
    ] {
        assert_eq!(parse_length(v.as_bytes()), None, "{v}");
    }
}

#[test]
fn authority_bytes_are_the_listed_ones() {
    let listed = b"-._~:[]%!$&'()*+,;=";
    for c in 0..=255u8 {
        let want = c.is_ascii_alphanumeric() || listed.contains(&c);
        let one = [c];
        let text = String::from_utf8_lossy(&one);
        assert_eq!(valid_authority(&text), want && c < 0x80, "byte {c:#04x}");
    }
    assert!(!valid_authority(""));
    assert!(valid_authority("[::1]:8080"));
    assert!(!valid_authority("user@host"));
    assert!(!valid_authority("héllo"));
}

#[test]
fn connection_tokens_in_one_pass_match_the_questions() {
    let h = |name, value| httparse::Header { name, value };
    let cases: [&[u8]; 7] = [
        b"keep-alive",
        b"close",
        b"Keep-Alive, Close",
        b"x-foo",
        b" , ",
        b"keep-alive, x-foo",
        b"closed",
    ];
    for v in cases {
        let hs = [h("Host", &b"a"[..]), h("CONNECTION", v)];
        let c = ConnectionTokens::of(&hs);
        assert_eq!(c.close, named_in_connection(&hs, "close"), "{v:?}");
        assert_eq!(
            c.keep_alive,
            named_in_connection(&hs, "keep-alive"),
            "{v:?}"
        );
        assert_eq!(c.others, connection_names_others(&hs), "{v:?}");
    }
    assert!(!ConnectionTokens::of(&[h("Host", &b"a"[..])]).others);
}

#[test]
fn eq_ignore_case_agrees_with_the_byte_loop() {
    // Bytes next to the letters and their case bit (`@`, `[`, `` ` ``, `{`, CR against `-`),
    // digits, and non-ASCII; pairs mostly made from each other so that many are equal.
    const ALPHABET: &[u8] = b"aAzZmM-\r@[`{_^09 \x80\xc1\xe1";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..20_000 {
        let len = next(25);
        let a: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
        let mut b = a.clone();
        for c in b.iter_mut() {
            match next(8) {
                0 => *c ^= 0x20,
                1 => *c = ALPHABET[next(ALPHABET.len())],
                2 => c.make_ascii_uppercase(),
                _ => {}
            }
        }
        if next(10) == 0 {
            b.push(b'a');
        }
        assert_eq!(
            eq_ignore_case(&a, &b),
            a.eq_ignore_ascii_case(&b),
            "{a:?} {b:?}"
        );
        assert_eq!(
            eq_ignore_case(&b, &a),
            b.eq_ignore_ascii_case(&a),
            "{b:?} {a:?}"
        );
    }
    for (a, b) in [
        ("Content-Length", "content-length"),
        ("CONTENT-LENGTH", "content-length"),
        ("content\rlength", "content-length"),
        ("Transfer-Encoding", "transfer-encoding"),
        ("Transfer-EncodinG", "transfer-encoding"),
        ("transfer-encodinx", "transfer-encoding"),
        ("transfer-xncoding", "transfer-encoding"),
        ("Connection", "connection"),
        ("Connectio", "connection"),
    ] {
        assert_eq!(
            eq_ignore_case(a.as_bytes(), b.as_bytes()),
            a.eq_ignore_ascii_case(b),
            "{a} {b}"
        );
    }
}

#[test]
fn connection_tokens_are_bounded_and_gathered_once() {
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("x-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let at = list(MAX_CONNECTION_TOKENS);
    let over = list(MAX_CONNECTION_TOKENS + 1);
    assert!(req(&format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: {at}\r\n\r\n"
    ))
    .is_ok());
    // Split over two headers, repeats and keep-alive counted too.
    let split = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive,{}\r\nConnection: {at}\r\n\r\n",
        "close,".repeat(3)
    );
    assert_eq!(
        req(&split),
        Err(HeadError::Bad("too many connection tokens"))
    );
    assert_eq!(
        req(&format!(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: {over}\r\n\r\n"
        )),
        Err(HeadError::Bad("too many connection tokens"))
    );
    // Empty list elements are no tokens.
    let commas = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: x,{}\r\n\r\n",
        ",".repeat(5000)
    );
    assert!(req(&commas).is_ok());
    let mut h = header_slots();
    let resp = format!("HTTP/1.1 200 OK\r\nConnection: {over}\r\nContent-Length: 0\r\n\r\n");
    assert!(parse_response(resp.as_bytes(), &mut h, false).is_err());

    // The gathered list answers as the walk does, for every header name asked.
    let h = |name, value| httparse::Header { name, value };
    let hs = [
        h("Connection", &b" Keep-Alive , X-Foo,,"[..]),
        h("X-Foo", &b"1"[..]),
        h("connection", &b"close, x-BAR"[..]),
        h("X-Baz", &b"1"[..]),
    ];
    let n = Nominated::of(&hs);
    for name in ["x-foo", "X-BAR", "close", "x-baz", "", "connection", "x-fo"] {
        assert_eq!(n.names(name), named_in_connection(&hs, name), "{name}");
    }
    assert!(!n.names("keep-alive"), "keep-alive is hop-by-hop anyway");
}
