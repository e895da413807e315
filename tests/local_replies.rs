//! Responses baton generates itself, as Envoy words them: 404 without a route, 503 without a
//! healthy or reachable upstream (connect refused, connect timeout), 504 on a route timeout,
//! and a closed connection when the upstream dies after sending the response head.

mod common;

use common::*;
use std::io;

const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";

#[test]
fn no_route_is_404() {
    let extra = Extra {
        domains: vec!["only.example.com".into()],
        ..Extra::default()
    };
    let (b, up) = proxy_with_upstream_and(&extra, "STATIC");
    let mut c = RawConn::connect(b.port);
    c.send(b"GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 404);
    assert_eq!(up.requests(), 0, "an unrouted request reached the upstream");
    // The matching domain is routed (with and without a port in Host).
    c.send(b"GET / HTTP/1.1\r\nHost: only.example.com\r\n\r\n");
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
}

#[test]
fn no_endpoint_is_503_no_healthy_upstream() {
    let b = Baton::start(&proxy_yaml(
        free_port(),
        &[("empty", &[], "STATIC")],
        &Extra::default(),
    ));
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert_eq!(
        (r.status(), r.body_str().as_str()),
        (503, "no healthy upstream")
    );
}

#[test]
fn refused_connect_is_503_connection_failure() {
    let (dead, _hold) = refused_port();
    let b = Baton::start(&simple_yaml(free_port(), dead));
    let mut c = RawConn::connect(b.port);
    for _ in 0..2 {
        c.send(&get("/"));
        let r = c.expect_response(false);
        assert_eq!(r.status(), 503);
        assert!(
            r.body_str().starts_with(CONNECT_FAILURE),
            "body: {:?}",
            r.body_str()
        );
        // Envoy adds the transport failure reason: the connect's errno (ECONNREFUSED).
        assert!(
            r.body_str()
                .ends_with(", transport failure reason: delayed connect error: 111")
                || r.body_str()
                    .ends_with(", transport failure reason: immediate connect error: 111"),
            "body: {:?}",
            r.body_str()
        );
    }
}

#[test]
fn connect_timeout_is_honoured() {
    let (port, _listener, _fillers) = full_backlog_listener();
    // A route timeout far beyond the client's read timeout: only connect_timeout (0.25 s) can
    // produce the 503 before the client gives up.
    let extra = Extra::route(&["timeout: 120s"]);
    let b = Baton::start(&proxy_yaml(
        free_port(),
        &[("backend", &[port], "STATIC")],
        &extra,
    ));
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert_eq!(r.status(), 503, "{:?}", r.body_str());
    assert!(
        r.body_str().starts_with(
            "upstream connect error or disconnect/reset before headers. reset reason: connection"
        ),
        "body: {:?}",
        r.body_str()
    );
}

#[test]
fn route_timeout_is_504() {
    let (b, _up) = proxy_with_upstream_and(&Extra::route(&["timeout: 1s"]), "STATIC");
    let mut c = RawConn::connect(b.port);
    c.send(&get("/hang"));
    let r = c.expect_response(false);
    assert_eq!(
        (r.status(), r.body_str().as_str()),
        (504, "upstream request timeout")
    );
}

#[test]
fn upstream_reset_after_head_closes_the_client_connection() {
    let (b, _up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(&get("/reset-after-head"));
    let head = c
        .reader
        .read_response_head()
        .expect("read head")
        .expect("the upstream's head is forwarded");
    assert_eq!(head.status, 200);
    let framing = baton_bench::wire::response_framing(&head, false).expect("framing");
    let mut got = 0usize;
    let r = c.reader.read_body(framing, &mut |b| got += b.len());
    match r {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => panic!("expected the connection to be closed mid-body, got {e}"),
        Ok(n) => {
            panic!("a truncated body ({n} of 1000 bytes) looked complete: framing {framing:?}")
        }
    }
    assert!(got <= 10, "more bytes than the upstream sent: {got}");
}
