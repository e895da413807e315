//! Requests through the proxy: methods, keep-alive, pipelining, HTTP/1.0, Connection: close,
//! bodiless responses, Expect: 100-continue, and the headers a proxy must rewrite.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn fnv(data: &[u8]) -> u64 {
    let mut h = pattern::Fnv::default();
    h.update(data);
    h.finish()
}

#[test]
fn get_and_post_with_curl() {
    let (b, up) = proxy_with_upstream();
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = curl_ok(&["-i", &url]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with(&up.greeting()), "{out}");

    let body = "the quick brown fox jumps over the lazy dog";
    let sink = format!("http://127.0.0.1:{}/sink", b.port);
    let out = curl_ok(&["--data-binary", body, &sink]);
    assert_eq!(
        out,
        format!("len={} fnv={:016x}\n", body.len(), fnv(body.as_bytes()))
    );
    let echo = format!("http://127.0.0.1:{}/echo", b.port);
    assert_eq!(curl_ok(&["--data-binary", body, &echo]), body);
    // The origin records an echoed request once it has read it whole, which may be just after
    // the echo reached curl.
    assert!(up.wait_seen(3, IO_TIMEOUT), "{:?}", up.seen());
    let seen = up.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body_len, body.len() as u64);
}

#[test]
fn get_and_post_on_one_raw_connection() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_str(), up.greeting());
    c.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.body_str().as_str()), (200, "hello"));
    c.send(&get("/status/503"));
    let r = c.expect_response(false);
    assert_eq!(r.status(), 503, "an upstream 503 passes through");
    assert_eq!(r.body_str(), "status 503\n");
}

#[test]
fn upstream_connections_are_reused() {
    let (b, up) = proxy_with_upstream();
    // Ten client connections one after another, then ten requests on one connection.
    for _ in 0..10 {
        let mut c = RawConn::connect(b.port);
        c.send(&get("/"));
        assert_eq!(c.expect_response(false).status(), 200);
    }
    let mut c = RawConn::connect(b.port);
    for _ in 0..10 {
        c.send(&get("/"));
        assert_eq!(c.expect_response(false).status(), 200);
    }
    assert_eq!(up.requests(), 20);
    assert!(
        up.connections() < 10,
        "upstream saw {} connections for 20 sequential requests: no pooling",
        up.connections()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    // The slow one first: answering out of order would put it last.
    let mut reqs = get("/delay/300");
    reqs.extend(get("/"));
    reqs.extend(get("/bytes/10"));
    reqs.extend(b"HEAD /head-ok HTTP/1.1\r\nHost: test\r\n\r\n");
    reqs.extend(get("/status/201"));
    c.send(&reqs);
    assert_eq!(c.expect_response(false).body_str(), "delay 300\n");
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
    assert_eq!(c.expect_response(false).body, pattern::block(10));
    let h = c.expect_response(true);
    assert_eq!(
        (h.status(), h.header("content-length")),
        (200, Some("1234"))
    );
    assert_eq!(c.expect_response(false).status(), 201);
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let extra = Extra {
        hcm: vec!["http_protocol_options: {accept_http_10: true}".into()],
        ..Extra::default()
    };
    let (b, up) = proxy_with_upstream_and(&extra, "STATIC");
    let (bytes, closed) =
        raw_exchange_ex(b.port, b"GET / HTTP/1.0\r\nHost: test\r\n\r\n", IO_TIMEOUT);
    assert!(
        closed,
        "HTTP/1.0 without keep-alive must be closed after the response"
    );
    let rs = parse_responses(&bytes, &[]);
    assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(rs[0].body_str(), up.greeting());

    let mut c = RawConn::connect(b.port);
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n");
        let r = c.expect_response(false);
        assert_eq!(r.body_str(), up.greeting());
        assert!(r.head.has_token("connection", "keep-alive"), "{:?}", r.head);
    }
}

#[test]
fn connection_close_is_honoured() {
    let (b, _up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200);
    assert!(r.head.has_token("connection", "close"), "{:?}", r.head);
    assert!(
        c.closed_within(IO_TIMEOUT),
        "connection left open after Connection: close"
    );
}

#[test]
fn upstream_connection_close_does_not_break_the_client() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(&get("/close"));
    assert_eq!(c.expect_response(false).body_str(), "closing\n");
    // The client connection may stay open or be closed; if open, it must still work.
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
}

#[test]
fn head_204_304_carry_no_body() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(b"HEAD /head-ok HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.expect_response(true);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    c.send(&get("/204"));
    assert_eq!(c.expect_response(false).status(), 204);
    c.send(&get("/304"));
    assert_eq!(c.expect_response(false).status(), 304);
    // Any stray body byte above would corrupt this response.
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.body_str()), (200, up.greeting()));
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(
        b"POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c
        .reader
        .read_response_head()
        .expect("read")
        .expect("a response head");
    assert_eq!(
        interim.status, 100,
        "expected 100 Continue before sending the body"
    );
    c.send(b"hello");
    let r = c.expect_response(false);
    assert_eq!(r.body_str(), format!("len=5 fnv={:016x}\n", fnv(b"hello")));
    let seen = up.seen();
    assert!(
        !has_header(&seen[0], "expect"),
        "Expect forwarded upstream: {seen:?}"
    );
}

#[test]
fn hop_by_hop_headers_are_removed() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(
        b"GET /headers HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\nTE: deflate\r\nUpgrade: foo/1\r\nProxy-Connection: keep-alive\r\n\
          X-End-To-End: kept\r\n\r\n",
    );
    assert_eq!(c.expect_response(false).status(), 200);
    let seen = &up.seen()[0];
    for h in ["x-hop", "keep-alive", "te", "upgrade", "proxy-connection"] {
        assert!(
            !has_header(seen, h),
            "{h} forwarded upstream: {:?}",
            seen.headers
        );
    }
    if let Some(v) = seen.header("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-hop"),
            "client Connection forwarded: {v}"
        );
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

/// As Envoy: without `use_remote_address` x-forwarded-for passes through untouched; at the
/// edge (`use_remote_address: true`) the client's address is appended.
#[test]
fn forwarding_headers_are_set() {
    let up = Upstream::start("up1");
    let yaml = proxy_yaml(
        free_port(),
        &[("backend", &[up.port()], "STATIC")],
        &Extra::default(),
    );
    let edge = yaml.replacen(
        "          stat_prefix: ingress_http\n",
        "          stat_prefix: ingress_http\n          use_remote_address: true\n",
        1,
    );
    assert_ne!(edge, yaml, "use_remote_address not inserted");
    let b = Baton::start(&yaml);
    let mut c = RawConn::connect(b.port);
    c.send(&get("/headers"));
    assert_eq!(c.expect_response(false).status(), 200);
    c.send(b"GET /headers HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 10.1.2.3\r\nX-Request-Id: my-id-42\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    drop(c);
    drop(b);
    let b = Baton::start(&edge);
    let mut c = RawConn::connect(b.port);
    c.send(&get("/headers"));
    assert_eq!(c.expect_response(false).status(), 200);
    c.send(b"GET /headers HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    let seen = up.seen();
    assert_eq!(
        seen[0].header("x-forwarded-for"),
        None,
        "{:?}",
        seen[0].headers
    );
    assert_eq!(seen[1].header("x-forwarded-for"), Some("10.1.2.3"));
    assert_eq!(seen[2].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen[3].header("x-forwarded-for"),
        Some("10.1.2.3, 127.0.0.1")
    );
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    let id = seen[0].header("x-request-id").unwrap_or("");
    assert!(
        id.len() >= 16,
        "x-request-id not added: {:?}",
        seen[0].headers
    );
    assert_eq!(seen[1].header("x-request-id"), Some("my-id-42"));
    assert_eq!(
        seen[1].header("host"),
        Some("test"),
        "Host must pass through"
    );
}

#[test]
fn chunked_bodies_both_ways() {
    let (b, _up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(b"POST /sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(
        r.body_str(),
        format!("len=11 fnv={:016x}\n", fnv(b"hello world"))
    );
    c.send(&get("/chunked/100000"));
    let r = c.expect_response(false);
    assert_eq!(r.body.len(), 100_000);
    assert!(
        r.body == {
            let mut v = vec![0; 100_000];
            pattern::fill(0, &mut v);
            v
        }
    );
    // A close-delimited upstream body must reach the client intact and well framed.
    c.send(&get("/eof/50000"));
    let r = c.expect_response(false);
    assert_eq!(r.body.len(), 50_000);
}

/// An upstream on 127.0.0.1 that reads each request head on a connection and calls
/// `answer(stream, n)` for it (`n` counts the requests of all connections); counts the
/// connections it accepts. `answer` returns false to drop the connection.
fn scripted_upstream(
    answer: impl Fn(&mut std::net::TcpStream, u32) -> bool + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let answer = Arc::new(answer);
    let requests = Arc::new(AtomicU32::new(0));
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let (answer, requests) = (answer.clone(), requests.clone());
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    buf.drain(..end + 4);
                    if !answer(&mut s, requests.fetch_add(1, Ordering::SeqCst)) {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// An upstream that answers every request with its head and its body in two writes, counting
/// the connections it accepts. The body's segment often lands after the proxy's poll already
/// reported the head, so the proxy reads both at once and is then told of data it has consumed:
/// a spurious edge on a connection that is back in the pool.
fn two_write_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    scripted_upstream(|s, n| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        if s.write_all(head).is_err() {
            return false;
        }
        // A varying gap, so the body's arrival falls anywhere in the proxy's loop.
        let until = Instant::now() + Duration::from_micros(u64::from(n.wrapping_mul(7) % 64));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        s.write_all(&[b'x'; 1000]).is_ok()
    })
}

#[test]
fn pooled_connections_survive_a_spurious_readiness_event() {
    let (up_port, accepted) = two_write_upstream();
    let port = free_port();
    let b = Baton::start(&simple_yaml(port, up_port));
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 300;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let port = b.port;
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                for _ in 0..REQUESTS {
                    c.send(&get("/"));
                    let r = c.expect_response(false);
                    assert_eq!((r.status(), r.body.len()), (200, 1000));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client thread");
    }
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    // At most one upstream connection per client in flight; any more means the pool dropped a
    // healthy connection (each costs a handshake and leaves a TIME_WAIT behind).
    assert!(
        n <= CLIENTS,
        "{n} upstream connections for {CLIENTS} keep-alive clients ({} requests)",
        CLIENTS * REQUESTS
    );
}

/// An upstream that answers every request with a 5-byte body and, in the same write, bytes
/// past it; counts the connections it accepts.
fn overlong_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    scripted_upstream(|s, _| {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloJUNK\r\n\r\n")
            .is_ok()
    })
}

/// The head goes in front of the body bytes read with it only when all of them are body:
/// bytes an upstream sends past its Content-Length never reach the client, and that upstream
/// connection is not reused.
#[test]
fn bytes_past_a_short_body_never_reach_the_client() {
    let (up_port, accepted) = overlong_upstream();
    let port = free_port();
    let b = Baton::start(&simple_yaml(port, up_port));
    let mut c = RawConn::connect(b.port);
    for _ in 0..3 {
        c.send(&get("/"));
        let r = c.expect_response(false);
        assert_eq!((r.status(), r.body.as_slice()), (200, &b"hello"[..]));
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "a connection with bytes past its response was reused"
    );
}
