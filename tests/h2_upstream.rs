//! HTTP/2 to upstreams, against the real binary: clusters with `http2_protocol_options`
//! reached over h2c (prior knowledge) and over TLS (ALPN h2), with a scripted python-h2 origin
//! (tests/h2_support/server.py: echoes, resets, GOAWAY, trailers, small windows, counts its
//! connections) and nghttpd; HTTP/1.1 clients see HTTP/1.1 answers.

mod admin_util;
mod common;
mod tls_support;

use std::io::Read;
use std::path::PathBuf;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use admin_util::eventually;
use common::hot::{hot_start, hot_takeover, HotDir};
use common::*;

const SERVER: &str = include_str!("h2_support/server.py");

/// The python origin (killed on drop) and the file it records connections and requests in.
struct Origin {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl Origin {
    fn start(name: &str, args: &[&str]) -> Origin {
        let (child, port, record) = python_recorder(SERVER, name, args);
        Origin {
            child,
            port,
            record,
        }
    }

    fn lines(&self, prefix: &str) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Baton in front of `port`, its cluster `backend` with `options` (YAML lines under the
/// cluster, indented by the caller) after `lb_policy`.
fn yaml(listen: u16, port: u16, options: &str) -> String {
    let y = proxy_yaml(listen, &[("backend", &[port], "STATIC")], &Extra::default());
    y.replacen(
        "    lb_policy: ROUND_ROBIN\n",
        &format!("    lb_policy: ROUND_ROBIN\n{options}"),
        1,
    )
}

fn start(port: u16, options: &str) -> Baton {
    Baton::start(&yaml(free_port(), port, options))
}

const H2C: &str = "    http2_protocol_options: {}\n";

fn req(c: &mut RawConn, head: &str, body: &[u8], head_request: bool) -> Response {
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    c.send(&bytes);
    c.expect_response(head_request)
}

fn get(c: &mut RawConn, path: &str) -> Response {
    req(
        c,
        &format!("GET {path} HTTP/1.1\r\nHost: h2.test\r\n\r\n"),
        b"",
        false,
    )
}

#[test]
fn requests_go_over_one_h2c_connection_and_come_back_as_http11() {
    let o = Origin::start("h2up-basic", &[]);
    let b = start(o.port, H2C);
    let mut c = RawConn::connect(b.addr().port());
    let r = get(&mut c, "/count");
    assert_eq!((r.status(), r.body_str().as_str()), (200, "conns=1"));
    // Envoy's default windows (256 MiB) and HPACK table (4 KiB) were advertised.
    assert_eq!(r.header("x-client-window"), Some("268435456"));
    assert_eq!(r.header("x-conn-window"), Some("268435456"));
    assert_eq!(r.header("x-client-table"), Some("4096"));
    // A Content-Length body, and a chunked one: the origin sees the bytes.
    let body = b"0123456789".repeat(100);
    let r = req(
        &mut c,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h2.test\r\nContent-Length: {}\r\nTE: trailers\r\n\r\n",
            body.len()
        ),
        &body,
        false,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, body);
    assert_eq!(
        r.header("x-hop"),
        Some("none"),
        "connection-specific headers dropped"
    );
    let r = req(
        &mut c,
        "POST /echo HTTP/1.1\r\nHost: h2.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        false,
    );
    assert_eq!((r.status(), r.body_str().as_str()), (200, "hello world"));
    assert_eq!(r.header("x-hop"), Some("none"));
    // HEAD, 204 and 304: no body.
    let r = req(
        &mut c,
        "HEAD /count HTTP/1.1\r\nHost: h2.test\r\n\r\n",
        b"",
        true,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some("7"));
    assert!(r.body.is_empty());
    assert_eq!(get(&mut c, "/204").status(), 204);
    let r = get(&mut c, "/304");
    assert_eq!((r.status(), r.header("etag")), (304, Some("\"v1\"")));
    // Still one upstream connection: the pool kept it.
    let r = get(&mut c, "/count");
    assert_eq!(r.body_str(), "conns=1");
    assert_eq!(o.lines("conn").len(), 1);
    let reqs = o.lines("req");
    assert_eq!(reqs.len(), 7, "{reqs:?}");
    assert!(
        reqs[0].starts_with("req GET /count http h2.test "),
        "{reqs:?}"
    );
    assert!(
        reqs[1].starts_with("req POST /echo http h2.test 1000 "),
        "{reqs:?}"
    );
    assert!(
        reqs[2].starts_with("req POST /echo http h2.test 11 "),
        "{reqs:?}"
    );
}

#[test]
fn a_body_without_length_is_chunked_for_http11_and_trailers_dropped_as_by_envoy() {
    let o = Origin::start("h2up-chunked", &[]);
    let b = start(o.port, H2C);
    let mut c = RawConn::connect(b.addr().port());
    let r = get(&mut c, "/chunked");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body_str(), "hello world");
    // gRPC-like trailers: the transcoder hands them to the core after the last chunk
    // (src/h2/client_tests.rs); an HTTP/1.1 client gets the body without them, as from
    // Envoy, whose HTTP/1 codec drops proxied trailers unless `enable_trailers` is set.
    let raw = raw_exchange(
        b.addr().port(),
        b"GET /trailers HTTP/1.1\r\nHost: h2.test\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n8\r\n\0\0\0\0\x03abc\r\n0\r\n\r\n"),
        "{text:?}"
    );
}

#[test]
fn a_reset_stream_is_a_503_remote_reset_and_goaway_retires_a_pooled_connection() {
    let o = Origin::start("h2up-reset", &[]);
    let b = start(o.port, H2C);
    let mut c = RawConn::connect(b.addr().port());
    let r = get(&mut c, "/rst");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.body_str(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote reset"
    );
    // GOAWAY on an idle pooled connection: the next request goes on a new one, unharmed.
    let r = get(&mut c, "/goaway");
    assert_eq!((r.status(), r.body_str().as_str()), (200, "ok"));
    let before = o.lines("conn").len();
    assert!(
        eventually(Duration::from_secs(10), || o.lines("end").len() >= before),
        "baton never closed it"
    );
    let r = get(&mut c, "/count");
    assert_eq!(r.status(), 200);
    assert_eq!(o.lines("conn").len(), before + 1);
}

#[test]
fn small_windows_both_ways() {
    // The origin allows 1 KiB per stream before its WINDOW_UPDATE; we advertise the
    // smallest windows Envoy allows, so a 1 MiB answer needs ours.
    let o = Origin::start("h2up-window", &["--window", "1024"]);
    let b = start(
        o.port,
        "    http2_protocol_options:\n      initial_stream_window_size: 65535\n      \
         initial_connection_window_size: 65535\n      hpack_table_size: 0\n      \
         max_concurrent_streams: 7\n",
    );
    let mut c = RawConn::connect(b.addr().port());
    // The first exchange brings the origin's SETTINGS in; it saw ours.
    let r = get(&mut c, "/count");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-client-window"), Some("65535"));
    assert_eq!(r.header("x-conn-window"), Some("65535"));
    assert_eq!(r.header("x-client-table"), Some("0"));
    let r = get(&mut c, "/big");
    assert_eq!(r.status(), 200);
    let want: Vec<u8> = (0..1usize << 20).map(|i| (i % 251) as u8).collect();
    assert!(
        r.body == want,
        "1 MiB body differs ({} bytes)",
        r.body.len()
    );
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8 + b'a').collect();
    let r = req(
        &mut c,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h2.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
        false,
    );
    assert_eq!(r.status(), 200);
    assert!(r.body == body, "echo differs");
    let largest: usize = r
        .header("x-largest-data")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        largest > 0 && largest <= 1024,
        "DATA frames up to {largest} bytes"
    );
    assert_eq!(o.lines("conn").len(), 1);
}

#[test]
fn tls_with_alpn_h2() {
    let pki = tls_support::Pki::new("h2up");
    let (crt, key) = pki.leaf("origin", "/CN=h2.test", "DNS:h2.test,IP:127.0.0.1");
    let o = Origin::start("h2up-tls", &["--tls", &crt, &key]);
    let ca = pki.ca();
    let options = format!(
        "    typed_extension_protocol_options:\n      \
         envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        \
         explicit_http_config: {{http2_protocol_options: {{}}}}\n    \
         transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        \
         sni: h2.test\n        common_tls_context:\n          validation_context:\n            \
         trusted_ca: {{filename: \"{ca}\"}}\n"
    );
    let b = start(o.port, &options);
    let mut c = RawConn::connect(b.addr().port());
    let r = req(
        &mut c,
        "POST /echo HTTP/1.1\r\nHost: h2.test\r\nContent-Length: 3\r\n\r\n",
        b"abc",
        false,
    );
    assert_eq!((r.status(), r.body_str().as_str()), (200, "abc"));
    assert_eq!(get(&mut c, "/count").body_str(), "conns=1");
    assert_eq!(o.lines("conn"), vec!["conn h2".to_string()]);
    assert!(o.lines("req")[0].starts_with("req POST /echo https h2.test 3 "));
}

#[test]
fn nghttpd_over_h2c_and_tls() {
    let pki = tls_support::Pki::new("h2up-ng");
    let docroot = pki.dir.join("docroot");
    std::fs::create_dir_all(&docroot).expect("docroot");
    let page: Vec<u8> = (0..300_000u32).map(|i| (i % 61) as u8 + b'0').collect();
    std::fs::write(docroot.join("page"), &page).expect("page");
    let plain = Nghttpd::start(&docroot, None);
    let b = start(plain.1, H2C);
    let mut c = RawConn::connect(b.addr().port());
    for _ in 0..2 {
        let r = get(&mut c, "/page");
        assert_eq!(r.status(), 200);
        assert!(r.body == page);
    }
    assert_eq!(get(&mut c, "/missing").status(), 404);
    drop(b);
    let leaf = pki.leaf("ng", "/CN=h2.test", "DNS:h2.test,IP:127.0.0.1");
    let tls = Nghttpd::start(&docroot, Some(&leaf));
    let options = format!(
        "{H2C}    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        \
         sni: h2.test\n        common_tls_context:\n          alpn_protocols: [h2]\n          \
         validation_context:\n            trusted_ca: {{filename: \"{}\"}}\n",
        pki.ca()
    );
    let b = start(tls.1, &options);
    let mut c = RawConn::connect(b.addr().port());
    let r = get(&mut c, "/page");
    assert_eq!(r.status(), 200);
    assert!(r.body == page);
}

#[test]
fn an_upgrade_to_an_http2_cluster_is_refused_locally() {
    let o = Origin::start("h2up-upgrade", &[]);
    let y = yaml(free_port(), o.port, H2C).replacen(
        "          route_config:",
        "          upgrade_configs: [{upgrade_type: websocket}]\n          route_config:",
        1,
    );
    let b = Baton::start(&y);
    let mut c = RawConn::connect(b.addr().port());
    let r = req(
        &mut c,
        "GET /ws HTTP/1.1\r\nHost: h2.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"",
        false,
    );
    assert_eq!(r.status(), 503);
    assert!(o.lines("req").is_empty(), "nothing reached the origin");
}

#[test]
fn a_hot_restart_under_requests_to_an_h2_upstream_fails_none() {
    let o = Origin::start("h2up-hot", &[]);
    let dir = HotDir::new("h2up");
    let y = yaml(free_port(), o.port, H2C);
    let v1 = hot_start(&y, &dir, &[]);
    let port = v1.addr().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let load = thread::spawn(move || {
        let (mut ok, mut bad) = (0, Vec::new());
        // Bounded: at most 2,000 requests, on fresh connections and one kept-alive.
        let mut c = RawConn::connect(port);
        for i in 0..2000 {
            if s2.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            if i % 2 == 0 {
                let r = get(&mut c, "/count");
                if r.status() == 200 {
                    ok += 1;
                } else {
                    bad.push(r.status());
                }
                // A kept-alive client connection moves at its next idle moment; start again.
                c = RawConn::connect(port);
            } else {
                let mut s = std::net::TcpStream::connect(local(port)).expect("connect");
                let _ = std::io::Write::write_all(
                    &mut s,
                    b"GET /count HTTP/1.1\r\nHost: h2.test\r\nConnection: close\r\n\r\n",
                );
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                if buf.starts_with(b"HTTP/1.1 200") {
                    ok += 1;
                } else {
                    bad.push(0);
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        (ok, bad)
    });
    thread::sleep(Duration::from_millis(300));
    let (v2, _) = hot_takeover(&y, &dir, &[], &v1);
    thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, bad) = load.join().expect("load thread");
    assert!(ok > 10, "only {ok} requests");
    assert!(bad.is_empty(), "failed: {bad:?}");
    drop(v2);
    drop(v1);
}

/// A hostile HTTP/2 origin on a thread: it reads the client's preface and frames until our
/// request's stream ends, answers it with `answer`, then runs `then` on the socket.
fn hostile_origin(
    answer: fn(u32) -> Vec<u8>,
    then: fn(&mut std::net::TcpStream),
) -> (u16, thread::JoinHandle<()>) {
    use ::baton::h2::frame;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let t = thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut out = Vec::new();
        frame::write_settings(&mut out, &[]);
        let _ = std::io::Write::write_all(&mut s, &out);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let stream = 'read: loop {
            let Ok(n) = s.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(mut rest) = buf.get(frame::PREFACE.len()..) else {
                continue;
            };
            while let Ok(Some((f, used))) = frame::parse(rest, 1 << 24) {
                if let frame::Frame::Headers {
                    stream,
                    end_stream: true,
                    ..
                } = f
                {
                    break 'read stream;
                }
                rest = rest.get(used..).unwrap_or_default();
            }
        };
        let _ = std::io::Write::write_all(&mut s, &answer(stream));
        then(&mut s);
    });
    (port, t)
}

/// A response head on `stream` (HEADERS, END_STREAM if `end`) with `:status` 200 and a
/// content-length.
fn head_frame(stream: u32, length: &[u8], end: bool) -> Vec<u8> {
    let mut block = Vec::new();
    let fields = [(&b":status"[..], &b"200"[..]), (b"content-length", length)];
    ::baton::h2::hpack::Encoder::new().encode(&mut fields.into_iter(), &mut block);
    let mut out = Vec::new();
    ::baton::h2::frame::write_headers(&mut out, stream, &block, end, 16_384);
    out
}

fn ok_answer(stream: u32) -> Vec<u8> {
    let mut out = head_frame(stream, b"2", false);
    ::baton::h2::frame::write_data(&mut out, stream, b"ok", true);
    out
}

/// What a client's GET gets when the origin answers its stream with `answer` and then reads
/// until the connection closes.
fn status_for_answer(answer: fn(u32) -> Vec<u8>) -> u16 {
    let (port, t) = hostile_origin(answer, |s| {
        let mut b = [0u8; 1024];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    });
    let b = start(port, H2C);
    let mut c = RawConn::connect(b.addr().port());
    let status = get(&mut c, "/").status();
    if status != 502 {
        eprintln!("{}", b.log());
    }
    drop(b);
    let _ = t.join();
    status
}

#[test]
fn an_http2_protocol_error_from_the_upstream_is_a_502_upe() {
    // DATA on stream 0 is a connection error (RFC 9113 §6.1): Envoy answers 502 with UPE.
    let status = status_for_answer(|_| {
        let mut out = Vec::new();
        out.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 0]);
        out.extend_from_slice(b"zz");
        out
    });
    assert_eq!(status, 502);
}

#[test]
fn a_head_ending_the_stream_with_a_content_length_is_a_502_at_once() {
    // END_STREAM on HEADERS whose content-length is 5: no DATA can follow, the response is
    // malformed (RFC 9113 §8.1.1). It used to reach the client as a 200 whose body never
    // came, until the route's timeout reset it.
    assert_eq!(
        status_for_answer(|stream| head_frame(stream, b"5", true)),
        502
    );
}

#[test]
fn an_upstream_flooding_pings_it_never_reads_is_cut_off_with_bounded_memory() {
    let (port, t) = hostile_origin(ok_answer, |s| {
        // Once the connection is back in baton's pool, PINGs whose answers pile up on its side
        // of a connection that is never read: baton must stop taking frames and close it,
        // not buffer its acks. Bounded: 200 MB or 20 s.
        thread::sleep(Duration::from_millis(300));
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        let mut ping = Vec::new();
        for _ in 0..4000 {
            ::baton::h2::frame::write_ping(&mut ping, *b"12345678", false);
        }
        let started = Instant::now();
        let mut sent = 0usize;
        while sent < 200_000_000 && started.elapsed() < Duration::from_secs(20) {
            match std::io::Write::write(s, &ping) {
                Ok(n) if n > 0 => sent += n,
                _ => return,
            }
        }
        panic!("baton took {sent} bytes of PINGs without closing the connection");
    });
    let b = start(port, H2C);
    let mut c = RawConn::connect(b.addr().port());
    assert_eq!(get(&mut c, "/").status(), 200);
    let joined = t.join();
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", b.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(joined.is_ok(), "the flood was never cut off\n{}", b.log());
    assert!(rss_kb < 64 * 1024, "peak RSS {rss_kb} kB\n{}", b.log());
}
