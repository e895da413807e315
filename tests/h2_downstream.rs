//! HTTP/2 clients end to end: curl (`--http2-prior-knowledge`, `--http2` over TLS), nghttp,
//! h2load and scripted python-h2 peers against the real binary. baton serves an HTTP/2
//! connection one stream at a time (SETTINGS_MAX_CONCURRENT_STREAMS 1) through its HTTP/1.1
//! core; `codec_type` AUTO serves h2c prior knowledge and HTTP/1.1 on one listener, HTTP2
//! only HTTP/2; a TLS context offering ALPN `h2` serves both kinds of client.

mod admin_util;
mod common;
#[cfg(feature = "tls")]
mod tls_support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use admin_util::*;
use common::*;

fn with_hcm(lines: &'static [&'static str]) -> impl Fn(String) -> String {
    move |y: String| {
        let mut add = String::from("stat_prefix: ingress_http\n");
        for l in lines {
            add.push_str(&format!("          {l}\n"));
        }
        y.replacen("stat_prefix: ingress_http\n", &add, 1)
    }
}

/// Routes for the body-handling paths of the test upstream, beside `Setup::yaml`'s.
fn with_routes(y: String) -> String {
    y.replacen(
        "              - {match: {prefix: \"/status/\"}",
        "              - {match: {prefix: \"/sink\"}, route: {cluster: svc}}\n              - {match: {prefix: \"/echo\"}, route: {cluster: svc}}\n              - {match: {prefix: \"/chunked/\"}, route: {cluster: svc}}\n              - {match: {prefix: \"/status/\"}",
        1,
    )
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

/// curl with prior-knowledge HTTP/2; stdout, asserting success.
fn h2c(args: &[&str]) -> String {
    let mut a = vec!["--http2-prior-knowledge"];
    a.extend_from_slice(args);
    curl_ok(&a)
}

/// `HTTP-version status` of a prior-knowledge HTTP/2 GET of `path`.
fn h2c_status(port: u16, path: &str) -> String {
    h2c(&[
        "-w",
        "%{http_version} %{response_code}",
        "-o",
        "/dev/null",
        &url(port, path),
    ])
}

fn log_fmt() -> Option<String> {
    Some("%PROTOCOL% %REQ(:METHOD)% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT%\n".into())
}

#[test]
fn h2c_prior_knowledge_with_auto_and_http2_codecs() {
    let log = tmp_file("h2c-auto");
    let (b, up, s) = start_edited(vec![(log.display().to_string(), log_fmt())], with_routes);
    // AUTO: HTTP/2 with prior knowledge...
    let out = h2c_status(b.port, "/bytes/100000");
    assert_eq!(out, "2 200");
    let body = h2c(&[&url(b.port, "/bytes/100000")]);
    assert_eq!(body.len(), 100_000);
    assert_eq!(body.as_bytes(), &pattern::block(100_000)[..]);
    // ...and HTTP/1.1 on the same listener.
    assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
    // A POST body with a content-length, and one without (sent chunked to the upstream).
    let data = "x".repeat(70_000);
    let file = tmp_file("h2c-post");
    std::fs::write(&file, &data).expect("write body");
    let at = format!("@{}", file.display());
    let sunk = h2c(&["--data-binary", &at, &url(b.port, "/sink")]);
    assert!(sunk.starts_with("len=70000 "), "{sunk}");
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            "--http2-prior-knowledge",
            "-T",
            "-",
        ])
        .arg(url(b.port, "/sink"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data.as_bytes())
        .expect("feed curl");
    let o = child.wait_with_output().expect("curl");
    let sunk2 = String::from_utf8_lossy(&o.stdout);
    assert_eq!(sunk2, sunk, "the same body without a content-length");
    let seen = up.seen();
    let chunked = seen
        .iter()
        .filter(|r| r.target == "/sink")
        .filter(|r| r.header("transfer-encoding") == Some("chunked"))
        .count();
    assert_eq!(chunked, 1, "{seen:?}");
    let lines = wait_file_lines(&log, 5);
    assert!(lines[0].starts_with("HTTP/2 GET 200 0 100000"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("HTTP/1.1 GET 200")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("HTTP/2 POST 200 70000")),
        "{lines:?}"
    );
    assert_eq!(
        stat(s.admin, "http.ingress_http.downstream_cx_http2_total"),
        4
    );

    // HTTP2: HTTP/2 only; an HTTP/1.1 request is a connection error (GOAWAY, close).
    let (b, _up, _s) = start_edited(vec![], with_hcm(&["codec_type: HTTP2"]));
    let out = h2c_status(b.port, "/status/200");
    assert_eq!(out, "2 200");
    let (bytes, closed) = raw_exchange_ex(b.port, &get("/"), IO_TIMEOUT);
    assert!(closed);
    assert!(!bytes.starts_with(b"HTTP/1.1"), "{bytes:?}");
    // Our SETTINGS, then GOAWAY(PROTOCOL_ERROR).
    let f = frames(&bytes);
    assert_eq!(f.first().map(|f| f.0), Some(4), "{f:?}");
    assert_eq!(goaway_code(&f), Some(1), "{f:?}");
}

/// The frames in `b`: (type, flags, stream, payload).
fn frames(mut b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        if b.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    out
}

/// The error code of the first GOAWAY among `f`.
fn goaway_code(f: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    f.iter()
        .find(|f| f.0 == 7)
        .and_then(|f| f.3.get(4..8))
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

// ---- raw HTTP/2 peers: frames written by hand, so that they can be wrong ----

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[ty, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), first octet's high bits `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literals without indexing (no Huffman): any name, any bytes.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(0);
        hpack_int(&mut b, 0, 7, n.len());
        b.extend_from_slice(n.as_bytes());
        hpack_int(&mut b, 0, 7, v.len());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface and an empty SETTINGS frame.
fn hello() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(frame(4, 0, 0, &[]));
    b
}

fn get_block(path: &str) -> Vec<u8> {
    block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "test"),
        (":path", path),
    ])
}

type Frames = Vec<(u8, u8, u32, Vec<u8>)>;

/// A raw client connection: writes `bytes`, then reads frames until `done` says so, the
/// server closes, or (a cap, not an assertion) ten seconds pass. The frames and whether the
/// server closed.
fn talk(
    s: &mut std::net::TcpStream,
    bytes: &[u8],
    done: impl Fn(&Frames) -> bool,
) -> (Frames, bool) {
    use std::io::Read;
    s.write_all(bytes).expect("write frames");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = std::time::Instant::now() + IO_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let f = frames(&got);
        if done(&f) {
            return (f, false);
        }
        if std::time::Instant::now() > end {
            return (f, false);
        }
        match s.read(&mut buf) {
            Ok(0) => return (frames(&got), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (frames(&got), true),
        }
    }
}

fn connect(port: u16) -> std::net::TcpStream {
    std::net::TcpStream::connect(local(port)).expect("connect")
}

/// What a client gets for `bytes` sent after its preface: the GOAWAY's code, once closed.
fn goaway_for(port: u16, bytes: &[u8]) -> Option<u32> {
    let mut s = connect(port);
    let mut all = hello();
    all.extend_from_slice(bytes);
    let (f, closed) = talk(&mut s, &all, |f| goaway_code(f).is_some());
    let code = goaway_code(&f);
    let (_, closed_after) = talk(&mut s, &[], |_| false);
    assert!(
        closed || closed_after,
        "the connection stays open after GOAWAY {code:?}"
    );
    code
}

fn has_rst(f: &Frames, stream: u32, code: u32) -> bool {
    f.iter()
        .any(|f| f.0 == 3 && f.2 == stream && f.3 == code.to_be_bytes())
}

/// A response HEADERS with `:status: 200` (static table index 8) on `stream`.
fn ok_on(f: &Frames, stream: u32) -> bool {
    f.iter()
        .any(|f| f.0 == 1 && f.2 == stream && f.3.contains(&0x88))
}

#[test]
fn protocol_errors_get_the_rfcs_error_and_baton_serves_on() {
    let (b, _up, _s) = start_edited(vec![], with_routes);
    let p = b.port;
    // A bad preface (its first line is what AUTO recognises).
    let mut s = connect(p);
    let (f, _) = talk(&mut s, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", |f| {
        goaway_code(f).is_some()
    });
    assert_eq!(goaway_code(&f), Some(1), "{f:?}");
    // DATA on stream 0.
    assert_eq!(goaway_for(p, &frame(0, 0, 0, b"x")), Some(1));
    // A request without :path.
    let no_path = block(&[(":method", "GET"), (":scheme", "http"), (":authority", "t")]);
    assert_eq!(goaway_for(p, &frame(1, 5, 1, &no_path)), Some(1));
    // A header list past max_request_headers_kb (60 KiB), over HEADERS and CONTINUATIONs.
    let big = "v".repeat(70 * 1024);
    let b2 = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "t"),
        (":path", "/"),
        ("x-big", &big),
    ]);
    let mut frames_big = Vec::new();
    let mut chunks = b2.chunks(16_384).peekable();
    let first = chunks.next().unwrap();
    frames_big.extend(frame(1, 1, 1, first));
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        frames_big.extend(frame(9, if last { 4 } else { 0 }, 1, c));
    }
    let code = goaway_for(p, &frames_big);
    assert!(matches!(code, Some(1) | Some(0xb)), "{code:?}");
    // A CONTINUATION flood.
    let mut flood = frame(1, 1, 1, &get_block("/")[..3]);
    for _ in 0..200 {
        flood.extend(frame(9, 0, 1, &[]));
    }
    assert_eq!(goaway_for(p, &flood), Some(0xb));
    // SETTINGS with bad values.
    let setting = |id: u16, v: u32| {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&v.to_be_bytes());
        frame(4, 0, 0, &b)
    };
    assert_eq!(goaway_for(p, &setting(4, 1 << 31)), Some(3));
    assert_eq!(goaway_for(p, &setting(5, 100)), Some(1));
    assert_eq!(goaway_for(p, &setting(2, 2)), Some(1));
    // PING is answered with the same data, and the connection serves on.
    let mut s = connect(p);
    let mut bytes = hello();
    bytes.extend(frame(6, 0, 0, b"pingpong"));
    let (f, _) = talk(&mut s, &bytes, |f| f.iter().any(|f| f.0 == 6));
    assert!(
        f.iter().any(|f| f.0 == 6 && f.1 == 1 && f.3 == b"pingpong"),
        "{f:?}"
    );
    let (f, _) = talk(&mut s, &frame(1, 5, 1, &get_block("/status/200")), |f| {
        ok_on(f, 1)
    });
    assert!(ok_on(&f, 1), "{f:?}");
    // Others are served throughout.
    let out = h2c_status(p, "/status/200");
    assert_eq!(out, "2 200");
    assert_eq!(request(p, "GET", "/status/200", "", ""), 200);
}

#[test]
fn malformed_requests_end_the_connection_or_only_the_stream() {
    let no_path = block(&[(":method", "GET"), (":scheme", "http"), (":authority", "t")]);
    let upper = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "t"),
        (":path", "/"),
        ("X-Upper", "1"),
    ]);
    let conn = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "t"),
        (":path", "/"),
        ("connection", "close"),
    ]);
    // Envoy's default: the connection ends.
    let (b, _up, _s) = start_edited(vec![], with_routes);
    for bad in [&no_path, &upper, &conn] {
        assert_eq!(goaway_for(b.port, &frame(1, 5, 1, bad)), Some(1));
    }
    // stream_error_on_invalid_http_messaging: only the stream is reset; the next is served.
    let (b, _up, _s) = start_edited(vec![], |y| {
        with_hcm(&["http2_protocol_options: {stream_error_on_invalid_http_messaging: true}"])(
            with_routes(y),
        )
    });
    let mut s = connect(b.port);
    let (f, _) = talk(&mut s, &hello(), |f| f.iter().any(|f| f.0 == 4 && f.1 == 1));
    assert!(goaway_code(&f).is_none());
    for (i, bad) in [&no_path, &upper, &conn].into_iter().enumerate() {
        let id = 1 + 2 * i as u32;
        let (f, closed) = talk(&mut s, &frame(1, 5, id, bad), |f| has_rst(f, id, 1));
        assert!(has_rst(&f, id, 1) && !closed, "{f:?}");
    }
    let (f, _) = talk(&mut s, &frame(1, 5, 7, &get_block("/status/200")), |f| {
        ok_on(f, 7)
    });
    assert!(ok_on(&f, 7), "{f:?}");
}

/// Runs an nghttp2 tool (`nghttp`, `h2load`) with `args`, bounded; its stdout.
fn nghttp2_tool(tool: &str, args: &[&str]) -> String {
    let o = Command::new("timeout")
        .arg("120")
        .arg(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool} (is nghttp2-client installed?): {e}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{tool} {args:?}: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn nghttp_streams_small_windows_large_bodies_and_h2load() {
    let (b, _up, _s) = start_edited(vec![], with_routes);
    let u = |p: &str| url(b.port, p);
    // Several streams opened at once on one connection (before our SETTINGS reach nghttp):
    // those without a body wait their turn; all complete.
    let out = nghttp2_tool(
        "nghttp",
        &[
            "-ns",
            &u("/bytes/1000"),
            &u("/bytes/2000"),
            &u("/bytes/3000"),
            &u("/status/204"),
            &u("/bytes/5000"),
        ],
    );
    for want in [
        "200 1000 /bytes/1000",
        "200   1K /bytes/2000",
        "204    0 /status/204",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert_eq!(
        out.matches(" /bytes/").count() + out.matches(" /status/").count(),
        5,
        "{out}"
    );
    // 1 MiB to a client with a 1 KiB stream window and 64 KiB connection window: our
    // DATA frames wait for its WINDOW_UPDATEs.
    let out = nghttp2_tool(
        "nghttp",
        &["-ns", "-w", "10", "-W", "16", &u("/bytes/1048576")],
    );
    assert!(out.contains("200   1M /bytes/1048576"), "{out}");
    // A large upload, with a content-length, through our windows.
    let big = tmp_file("h2-big-up");
    std::fs::write(&big, pattern::block(3 << 20)).expect("write upload");
    let out = nghttp2_tool("nghttp", &["-d", &big.display().to_string(), &u("/sink")]);
    assert!(out.starts_with(&format!("len={} ", 3 << 20)), "{out}");
    // Load: 2000 requests over 10 connections, 0 failures.
    let out = nghttp2_tool(
        "h2load",
        &["-n", "2000", "-c", "10", "-m", "4", &u("/bytes/100")],
    );
    assert!(
        out.contains("2000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );
}

#[test]
fn a_client_reset_mid_response_abandons_the_upstream_request() {
    let log = tmp_file("h2-rst");
    let (b, _up, _s) = start_edited(
        vec![(
            log.display().to_string(),
            Some("%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT%\n".into()),
        )],
        with_routes,
    );
    let mut s = connect(b.port);
    // A 100-byte window: the 10 MB response stops after 100 bytes until we reset it.
    let mut open = PREFACE.to_vec();
    open.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 100]));
    open.extend(frame(1, 5, 1, &get_block("/bytes/10000000")));
    let (f, _) = talk(&mut s, &open, |f| f.iter().any(|f| f.0 == 0 && f.2 == 1));
    assert!(ok_on(&f, 1), "{f:?}");
    let (f, closed) = talk(&mut s, &frame(3, 0, 1, &8u32.to_be_bytes()), |f| {
        goaway_code(f).is_some()
    });
    assert_eq!(goaway_code(&f), Some(0), "{f:?}");
    let (_, closed_after) = talk(&mut s, &[], |_| false);
    assert!(closed || closed_after);
    // The request ended as a downstream disconnect, its upstream closed; baton serves on.
    let lines = wait_file_lines(&log, 1);
    assert!(lines[0].starts_with("HTTP/2 200 DC "), "{lines:?}");
    let sent: u64 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(sent < 10_000_000, "{lines:?}");
    let out = h2c_status(b.port, "/status/200");
    assert_eq!(out, "2 200");
}

/// A client that closes its side (FIN, no reset) while the response waits for its
/// flow-control window can never open the window again: the connection ends at once, not
/// when a timeout fires (its descriptor was held, CLOSE-WAIT, until then; a drain waited).
#[test]
fn a_client_that_closes_while_its_window_is_shut_ends_the_connection() {
    let log = tmp_file("h2-fin");
    let (b, _up, s) = start_edited(
        vec![(
            log.display().to_string(),
            Some("%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS%\n".into()),
        )],
        with_routes,
    );
    let mut c = connect(b.port);
    // A window of 0: the response head goes out, no body.
    let mut open = PREFACE.to_vec();
    open.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    open.extend(frame(1, 5, 1, &get_block("/bytes/1000000")));
    let (f, _) = talk(&mut c, &open, |f| ok_on(f, 1));
    assert!(ok_on(&f, 1), "{f:?}");
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let (_, closed) = talk(&mut c, &[], |_| false);
    assert!(closed, "the connection stays open after the client's FIN");
    let lines = wait_file_lines(&log, 1);
    assert!(lines[0].starts_with("HTTP/2 200 DC"), "{lines:?}");
    assert_eq!(stat(s.admin, "http.ingress_http.downstream_cx_active"), 0);
}

#[test]
fn a_hot_restart_finishes_the_running_stream_then_goaway() {
    let up = Upstream::start("up1");
    let port = free_port();
    let yaml = proxy_yaml(
        port,
        &[("backend", &[up.port()], "STATIC")],
        &Extra::default(),
    );
    let dir = common::hot::HotDir::new("h2-hot");
    let mut v1 = common::hot::hot_start(&yaml, &dir, &["--drain-time-s", "20"]);
    // An idle HTTP/2 connection (one request served), and one whose stream is running.
    let mut idle = connect(port);
    let mut open = hello();
    open.extend(frame(1, 5, 1, &get_block("/status/200")));
    let (f, _) = talk(&mut idle, &open, |f| ok_on(f, 1));
    assert!(ok_on(&f, 1), "{f:?}");
    let mut busy = connect(port);
    let mut open = hello();
    open.extend(frame(1, 5, 1, &get_block("/delay/1500")));
    let (f, _) = talk(&mut busy, &open, |f| f.iter().any(|f| f.0 == 4 && f.1 == 1));
    assert!(!ok_on(&f, 1));
    let (v2, _) = common::hot::hot_takeover(&yaml, &dir, &["--drain-time-s", "20"], &v1);
    // The old generation drains on SIGTERM (idle HTTP/1 connections would move to the new).
    v1.sigterm();
    // The idle one gets GOAWAY (nothing was processed past stream 1) and is closed.
    let (f, closed) = talk(&mut idle, &[], |f| goaway_code(f).is_some());
    assert_eq!(goaway_code(&f), Some(0), "{f:?}");
    let (_, closed_after) = talk(&mut idle, &[], |_| false);
    assert!(closed || closed_after, "the idle connection stays open");
    // The running stream completes, then GOAWAY(NO_ERROR, last stream 1) and the close.
    let (f, _) = talk(&mut busy, &[], |f| goaway_code(f).is_some());
    assert!(ok_on(&f, 1), "{f:?}");
    assert!(
        f.iter().any(|f| f.0 == 0 && f.2 == 1 && f.1 & 1 == 1),
        "{f:?}"
    );
    let g = f.iter().find(|f| f.0 == 7).expect("GOAWAY");
    assert_eq!(g.3[..8], [0, 0, 0, 1, 0, 0, 0, 0], "{f:?}");
    let (_, closed) = talk(&mut busy, &[], |_| false);
    assert!(closed, "the connection stays open after its last stream");
    // New HTTP/2 clients are served by the new generation.
    let out = h2c_status(port, "/status/200");
    assert_eq!(out, "2 200");
    assert!(
        v1.wait_exit(Duration::from_secs(30)).is_some(),
        "the old generation stays"
    );
    drop(v2);
}

#[test]
fn http2_protocol_options_are_what_clients_are_told() {
    let (b, _up, _s) = start_edited(
        vec![],
        with_hcm(&[
            "http2_protocol_options: {hpack_table_size: 8192, max_concurrent_streams: 100, initial_stream_window_size: 131072, initial_connection_window_size: 1048576}",
        ]),
    );
    let out = nghttp2_tool("nghttp", &["-nv", &url(b.port, "/status/200")]);
    for want in [
        "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1]",
        "[SETTINGS_HEADER_TABLE_SIZE(0x01):8192]",
        "[SETTINGS_INITIAL_WINDOW_SIZE(0x04):131072]",
        "(window_size_increment=983041)",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    // Without them: the protocol's defaults.
    let (b, _up, _s) = start_edited(vec![], |y| y);
    let out = nghttp2_tool("nghttp", &["-nv", &url(b.port, "/status/200")]);
    assert!(
        out.contains("[SETTINGS_INITIAL_WINDOW_SIZE(0x04):65535]"),
        "{out}"
    );
    assert!(
        out.contains("[SETTINGS_HEADER_TABLE_SIZE(0x01):4096]"),
        "{out}"
    );
    assert!(!out.contains("recv WINDOW_UPDATE frame <length=4, flags=0x00, stream_id=0>\n          (window_size_increment=983041)"));
}

#[cfg(feature = "tls")]
#[test]
fn tls_alpn_h2_and_http11_clients() {
    use tls_support::*;
    let pki = Pki::new("h2-alpn");
    let up = Upstream::start("up1");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let log = tmp_file("h2-alpn");
    let h = prefixed_hcm(
        "ingress_https",
        &common::yaml::file_access_log(
            &log.display().to_string(),
            "%PROTOCOL% %RESPONSE_CODE% %REQ(X-FORWARDED-PROTO)%\\n",
        ),
        "backend",
    );
    let chain = tls_chain(&h, &[], &cert, &["  alpn_protocols: [h2, http/1.1]"]);
    let b = Baton::start(&bootstrap(
        free_port(),
        free_port(),
        "",
        &chain,
        up.port(),
        "",
    ));
    let ca = pki.ca();
    let resolve = format!("s.test:{}:127.0.0.1", b.port);
    let url = format!("https://s.test:{}/bytes/70000", b.port);
    let base = [
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{size_download}",
    ];
    // curl's default over TLS offers h2: HTTP/2.
    let out = curl_ok(&[&base[..], &["--http2", &url]].concat());
    assert_eq!(out, "2 70000");
    // A client offering only http/1.1 is still served, in HTTP/1.1.
    let out = curl_ok(&[&base[..], &["--http1.1", &url]].concat());
    assert_eq!(out, "1.1 70000");
    // The request is the same for the upstream either way (x-forwarded-proto included).
    let lines = wait_file_lines(&log, 2);
    // Over TLS the connection manager's x-forwarded-proto (as logged) is https.
    assert_eq!(lines[0], "HTTP/2 200 https", "{lines:?}");
    assert_eq!(
        lines[0].replace("HTTP/2", "HTTP/1.1"),
        lines[1],
        "{lines:?}"
    );
}
