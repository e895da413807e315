//! Ambiguous or malformed requests (RFC 9112) are answered 400 and the connection closed —
//! never forwarded. Every case runs and the failures are reported together, so one run tells
//! the whole story.

mod common;

use common::*;

/// Framing or header errors that are visible in the head: must never reach the upstream.
const HEAD_ERRORS: &[(&str, &[u8])] = &[
    (
        "Content-Length with Transfer-Encoding",
        b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two different Content-Lengths",
        b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        "non-numeric Content-Length",
        b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello",
    ),
    (
        "final transfer coding not chunked",
        b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    ),
    (
        "whitespace before the colon",
        b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    ),
    (
        "bare CR in a header line",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
    ),
    (
        "NUL in a header value",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
    ),
    ("garbage request line", b"HELLO\r\n\r\n"),
    // One more than MAX_CONNECTION_TOKENS: each forwarded header is looked up among them.
    (
        "33 Connection tokens",
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x\r\n\r\n",
    ),
    // The request-target is ASCII (RFC 9112); this one used to panic the parser.
    (
        "UTF-8 in the request target",
        b"GET aaaaaa\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
    ),
    (
        "obs-text in an origin-form target",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
    ),
];

/// Checks one case: a 400 response, then the connection closed. Returns a failure message.
fn check_400(port: u16, name: &str, req: &[u8]) -> Option<String> {
    let (bytes, closed) = raw_exchange_ex(port, req, IO_TIMEOUT);
    let rs = parse_responses(&bytes, &[]);
    let text = String::from_utf8_lossy(&bytes);
    match rs.first() {
        Some(r) if r.status() == 400 && closed => None,
        Some(r) if r.status() == 400 => Some(format!("{name}: 400 but connection left open")),
        _ => Some(format!(
            "{name}: expected 400 then close, got {text:?} (closed: {closed})"
        )),
    }
}

#[test]
fn malformed_heads_get_400_and_close_and_are_not_forwarded() {
    let (b, up) = proxy_with_upstream();
    let failures: Vec<String> = HEAD_ERRORS
        .iter()
        .filter_map(|(name, req)| check_400(b.port, name, req))
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        up.requests(),
        0,
        "a malformed request was forwarded: {:?}",
        up.seen()
    );
    // The proxy still serves well-formed requests afterwards.
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
}

#[test]
fn bad_chunk_size_gets_400_and_close() {
    let (b, _up) = proxy_with_upstream();
    let req = b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    if let Some(f) = check_400(b.port, "bad chunk size", req) {
        panic!("{f}");
    }
}

#[test]
fn lf_only_lines_get_a_well_formed_answer() {
    // RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator. Either way the
    // client must get a complete 200 or 400, not a hang or a silent close.
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(b"GET / HTTP/1.1\nHost: t\n\n");
    let r = c.expect_response(false);
    match r.status() {
        200 => assert_eq!(r.body_str(), up.greeting()),
        400 => assert!(c.closed_within(IO_TIMEOUT), "400 without closing"),
        s => panic!("unexpected status {s}"),
    }
}
