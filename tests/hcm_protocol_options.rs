//! The connection manager's `common_http_protocol_options` against the real binary:
//! `max_requests_per_connection`, `max_connection_duration`, `max_headers_count` and
//! `headers_with_underscores_action`, as Envoy applies them to HTTP/1 clients; and
//! `request_timeout`.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::Setup;
use common::*;

/// Baton with the admin set-up and these `common_http_protocol_options` (flow YAML).
fn start(options: &str) -> (Baton, Upstream, Setup) {
    admin_util::start_edited(Vec::new(), |y| {
        y.replacen(
            "stat_prefix: ingress_http\n",
            &format!("stat_prefix: ingress_http\n          common_http_protocol_options: {options}\n"),
            1,
        )
        .replacen(
            "              - {match: {prefix: \"/status/\"}, route: {cluster: svc}}\n",
            "              - {match: {prefix: \"/status/\"}, route: {cluster: svc}}\n              - {match: {prefix: \"/delay/\"}, route: {cluster: svc}}\n",
            1,
        )
    })
}

fn send(c: &mut RawConn, extra: &str) -> common::Response {
    c.send(format!("GET /status/200 HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    c.expect_response(false)
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let (_b, _up, s) = start("{max_requests_per_connection: 3}");
    let mut c = RawConn::connect(s.listen);
    for _ in 0..2 {
        let r = send(&mut c, "");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("connection"), None);
    }
    let r = send(&mut c, "");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn max_connection_duration_closes_an_idle_connection_and_marks_a_busy_one() {
    let (_b, _up, s) = start("{max_connection_duration: 1s}");
    // Idle past the duration: closed by baton (well before the 1 h idle timeout).
    let mut idle = RawConn::connect(s.listen);
    assert_eq!(send(&mut idle, "").status(), 200);
    assert!(idle.closed_within(Duration::from_secs(10)));
    // Busy when the duration ends: the response in progress is the last.
    let mut busy = RawConn::connect(s.listen);
    busy.send(b"GET /delay/1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = busy.expect_response(false);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.closed_within(Duration::from_secs(5)));
}

#[test]
fn max_headers_count_answers_431_past_it() {
    let (_b, up, s) = start("{max_headers_count: 4}");
    let mut c = RawConn::connect(s.listen);
    assert_eq!(send(&mut c, "a: 1\r\nb: 2\r\n").status(), 200);
    let mut c = RawConn::connect(s.listen);
    let r = send(&mut c, "a: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n");
    assert_eq!(r.status(), 431);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(up.requests(), 1);
}

#[test]
fn headers_with_underscores_are_rejected_or_dropped() {
    let (_b, up, s) = start("{headers_with_underscores_action: REJECT_REQUEST}");
    let mut c = RawConn::connect(s.listen);
    let r = send(&mut c, "x_user: evil\r\n");
    assert_eq!(r.status(), 400);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(up.requests(), 0);
    drop(_b);
    // Rejected before the header count: 400, not 431.
    let (_b, _up, s) =
        start("{headers_with_underscores_action: REJECT_REQUEST, max_headers_count: 2}");
    let mut c = RawConn::connect(s.listen);
    assert_eq!(send(&mut c, "a: 1\r\nx_user: evil\r\n").status(), 400);
    drop(_b);
    let (_b, up, s) = start("{headers_with_underscores_action: DROP_HEADER, max_headers_count: 2}");
    // Dropped names do not count: Host and x-user are 2.
    let mut c = RawConn::connect(s.listen);
    assert_eq!(
        send(&mut c, "x_a: 1\r\nx_b: 2\r\nx-user: kept\r\n").status(),
        200
    );
    assert_eq!(up.seen()[0].header("x-user"), Some("kept"));
    let mut c = RawConn::connect(s.listen);
    let r = send(&mut c, "x_user: evil\r\nx-user: good\r\n");
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen[1].header("x_user"), None);
    assert_eq!(seen[1].header("x-user"), Some("good"));
}

#[test]
fn a_request_not_received_within_request_timeout_gets_408() {
    let (_b, up, s) = admin_util::start_edited(Vec::new(), |y| {
        y.replacen(
            "stat_prefix: ingress_http\n",
            "stat_prefix: ingress_http\n          request_timeout: 1s\n",
            1,
        )
    });
    let mut c = RawConn::connect(s.listen);
    c.send(b"POST /status/200 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 408);
    assert_eq!(r.body_str(), "request timeout");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(
        admin_util::stat(s.admin, "http.ingress_http.downstream_rq_timeout"),
        1
    );
    // A request that arrives whole is served.
    let mut c = RawConn::connect(s.listen);
    assert_eq!(send(&mut c, "").status(), 200);
    assert_eq!(up.seen().last().map(|r| r.method.as_str()), Some("GET"));
}

/// Reads from `s` until `want` has arrived (bounded by the socket's read timeout).
fn read_until(s: &mut std::net::TcpStream, got: &mut Vec<u8>, want: &str) {
    use std::io::Read;
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(got).contains(want) {
        let n = s.read(&mut b).expect("read");
        assert!(
            n > 0,
            "closed before {want:?}: {}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&b[..n]);
    }
}

#[test]
fn proxy_100_continue_sends_expect_upstream_and_relays_its_100() {
    use std::io::Write;
    for proxy in [true, false] {
        let (_b, up, s) = admin_util::start_edited(Vec::new(), |y| {
            y.replacen(
                "stat_prefix: ingress_http\n",
                &format!("stat_prefix: ingress_http\n          proxy_100_continue: {proxy}\n"),
                1,
            )
        });
        let mut c = std::net::TcpStream::connect(local(s.listen)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"POST /status/200 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .unwrap();
        // The body waits for the 100: relayed from the upstream (which answers Expect
        // itself), or baton's own.
        let mut got = Vec::new();
        read_until(&mut c, &mut got, "\r\n\r\n");
        assert!(
            got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
            "proxy {proxy}"
        );
        c.write_all(b"body").unwrap();
        read_until(&mut c, &mut got, "HTTP/1.1 200");
        let seen = up.seen();
        let expect = seen
            .last()
            .and_then(|r| r.header("expect").map(str::to_string));
        let want = proxy.then(|| "100-continue".to_string());
        assert_eq!(expect, want, "proxy_100_continue: {proxy}");
        c.write_all(b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_until(&mut c, &mut got, "HTTP/1.1 204");
        let text = String::from_utf8_lossy(&got);
        assert_eq!(text.matches("100 Continue").count(), 1, "{text}");
    }
}
