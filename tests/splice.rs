//! Zero-copy response bodies through the real binary: large Content-Length bodies move from the
//! upstream socket to the client socket with splice(2). Checked byte for byte (raw TCP and
//! curl), in keep-alive and pipelined sequences with HEAD and small responses in between, with
//! a slow reader (memory stays flat), an upstream that closes mid-body (the client never sees
//! a complete-looking body), a client that resets mid-body, a hot restart mid-download, the
//! access log's byte count, and the closing of the idle pipes a burst leaves behind.

mod admin_util;
mod common;

use common::hot::*;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const SPLICED: &str = "http.ingress_http.downstream_cx_splice_bytes";

/// A proxy config with an admin listener and, optionally, an access log of `%BYTES_SENT%`.
fn yaml(port: u16, up: u16, admin: u16, log: Option<&str>) -> String {
    let mut extra = Extra::default();
    if let Some(path) = log {
        extra.hcm = vec![
            "access_log:".into(),
            "- name: envoy.access_loggers.file".into(),
            "  typed_config:".into(),
            "    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog".into(),
            format!("    path: {path}"),
            "    log_format:".into(),
            "      text_format_source:".into(),
            "        inline_string: \"%REQ(:PATH)% %BYTES_SENT%\\n\"".into(),
        ];
    }
    let mut y = proxy_yaml(port, &[("backend", &[up], "STATIC")], &extra);
    y.push_str(&format!(
        "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    ));
    y
}

struct Setup {
    b: Baton,
    up: Upstream,
    admin: u16,
}

fn start() -> Setup {
    let up = Upstream::start("up1");
    let admin = free_port();
    let b = Baton::start(&yaml(free_port(), up.port(), admin, None));
    Setup { b, up, admin }
}

#[test]
fn large_bodies_arrive_byte_for_byte_in_a_row_and_are_spliced() {
    let s = start();
    let mut c = RawConn::connect(s.b.port);
    let sizes = [MIB, 10 * MIB, 16 * 1024 + 1, 3 * MIB + 17, MIB];
    for n in sizes {
        c.send(&get(&format!("/bytes/{n}")));
        c.expect_pattern(n);
    }
    // Everything on one connection: the keep-alive survived every body.
    assert_eq!(s.up.seen().len(), sizes.len());
    let spliced = admin_util::stat(s.admin, SPLICED) as u64;
    let total: u64 = sizes.iter().sum();
    // Only the first bytes of each body (read with its head) are copied.
    assert!(
        spliced > total - sizes.len() as u64 * 32 * 1024,
        "spliced {spliced} of {total}"
    );
}

/// curl downloads `/KIND/N` to a file: status 200, N bytes, the pattern intact.
fn curl_pattern(port: u16, kind: &str, n: u64) {
    let dir = HotDir::new(&format!("splice-curl-{kind}"));
    let file = dir.path.join("body");
    let url = format!("http://127.0.0.1:{port}/{kind}/{n}");
    let out = curl_ok(&[
        "-sS",
        "-o",
        &file.display().to_string(),
        "-w",
        "%{http_code} %{size_download}",
        &url,
    ]);
    assert_eq!(out, format!("200 {n}"));
    let body = std::fs::read(&file).expect("read the download");
    let mut h = pattern::Fnv::default();
    h.update(&body);
    assert_eq!(h.finish(), pattern::pattern_checksum(n));
}

#[test]
fn curl_downloads_a_spliced_body_intact() {
    let s = start();
    curl_pattern(s.b.port, "bytes", 10 * MIB);
    assert!(admin_util::stat(s.admin, SPLICED) as u64 > 9 * MIB);
}

/// Chunks of 1,040,000 bytes: each one's payload is announced whole and spliced; short chunks
/// around them are copied. Raw TCP (checks the framing and the pattern across chunks), then
/// curl (strict about chunked framing), on one keep-alive connection.
#[test]
fn long_chunks_are_spliced_and_framed_intact() {
    let s = start();
    let mut c = RawConn::connect(s.b.port);
    let sizes = [5 * MIB + 26 * 7, 100_000, 3 * MIB];
    for n in sizes {
        c.send(&get(&format!("/bigchunked/{n}")));
        c.expect_pattern(n);
        c.send(&get("/chunked/50000"));
        c.expect_pattern(50_000);
    }
    assert_eq!(
        s.up.seen().len(),
        2 * sizes.len(),
        "one connection throughout"
    );
    let spliced = admin_util::stat(s.admin, SPLICED) as u64;
    assert!(spliced > 7 * MIB, "spliced {spliced} of {}", 8 * MIB);
    curl_pattern(s.b.port, "bigchunked", 4 * MIB);
}

/// An HTTP/1.0 client gets a chunked upstream body decoded and delimited by the close; long
/// chunks' payloads are spliced raw.
#[test]
fn an_http10_client_gets_long_chunks_spliced_raw() {
    let up = Upstream::start("up10");
    let admin = free_port();
    let mut y = yaml(free_port(), up.port(), admin, None);
    y = y.replace(
        "stat_prefix: ingress_http",
        "stat_prefix: ingress_http\n          http_protocol_options: {accept_http_10: true}",
    );
    let b = Baton::start(&y);
    let n = 3 * MIB;
    let (bytes, closed) = raw_exchange_ex(
        b.port,
        format!("GET /bigchunked/{n} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes(),
        IO_TIMEOUT,
    );
    assert!(closed, "the body of an HTTP/1.0 answer ends with the close");
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    let body = &bytes[end..];
    assert_eq!(body.len() as u64, n);
    let mut h = pattern::Fnv::default();
    h.update(body);
    assert_eq!(h.finish(), pattern::pattern_checksum(n));
    assert!(admin_util::stat(admin, SPLICED) as u64 > 2 * MIB);
}

/// Pipelined requests behind a large spliced body: every answer in order, the HEAD answer
/// without a body, the small ones intact.
#[test]
fn pipelined_requests_after_a_large_response_are_answered_in_order() {
    let s = start();
    let mut c = RawConn::connect(s.b.port);
    let mut burst = get(&format!("/bytes/{}", 2 * MIB));
    burst.extend_from_slice(&get("/"));
    burst.extend_from_slice(b"HEAD /bytes/5000000 HTTP/1.1\r\nHost: test\r\n\r\n");
    burst.extend_from_slice(&get("/bytes/100000"));
    burst.extend_from_slice(&get("/bytes/10"));
    burst.extend_from_slice(&get(&format!("/bytes/{}", 4 * MIB)));
    c.send(&burst);
    c.expect_pattern(2 * MIB);
    let r = c.expect_response(false);
    assert_eq!(r.body_str(), s.up.greeting());
    let r = c.expect_response(true);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some("5000000"));
    assert!(r.body.is_empty());
    c.expect_pattern(100_000);
    c.expect_pattern(10);
    c.expect_pattern(4 * MIB);
    // Nothing more: no stray bytes of a spliced body after the last answer.
    assert!(!c.closed_within(Duration::from_millis(200)));
}

/// A client that reads 100 MiB slowly, in bounded steps: the body waits in the kernel, not
/// in baton (its memory stays flat).
#[test]
fn a_slow_reader_gets_100_mib_with_flat_memory() {
    let s = start();
    let before = s.b.rss_kib();
    let mut c = RawConn::connect(s.b.port);
    c.send(&get(&format!("/bytes/{}", 100 * MIB)));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(head.status, 200);
    let mut h = pattern::Fnv::default();
    let mut got = 0u64;
    while got < 100 * MIB {
        let step = (100 * MIB - got).min(256 * 1024);
        c.reader
            .read_exact_to(step, &mut |b| h.update(b))
            .unwrap_or_else(|e| panic!("closed after {got} bytes: {e}"));
        got += step;
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.finish(), pattern::pattern_checksum(100 * MIB));
    let grew = s.b.hwm_kib().saturating_sub(before);
    assert!(
        grew < 16 * 1024,
        "baton's peak RSS grew by {grew} KiB for a slowly read 100 MiB body"
    );
}

/// An upstream that declares `len` bytes, sends `cut` of them and closes (first connection
/// only; later ones get the whole body).
fn cutting_upstream(len: u64, cut: u64) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        for (i, conn) in l.incoming().take(2).enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let send = if i == 0 { cut } else { len };
            let _ = conn
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
            let mut off = 0u64;
            let mut block = vec![0u8; 64 * 1024];
            while off < send {
                let n = (send - off).min(block.len() as u64) as usize;
                pattern::fill(off, &mut block[..n]);
                if conn.write_all(&block[..n]).is_err() {
                    return;
                }
                off += n as u64;
            }
            if i > 0 {
                let _ = conn.read(&mut req); // until the proxy closes or pools it
            }
        }
    });
    (port, h)
}

#[test]
fn an_upstream_closing_mid_body_never_looks_complete() {
    let (up, _h) = cutting_upstream(10 * MIB, 3 * MIB + 5);
    let admin = free_port();
    let b = Baton::start(&yaml(free_port(), up, admin, None));
    let mut c = RawConn::connect(b.port);
    c.send(&get("/x"));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(head.status, 200);
    let framing = baton_bench::wire::response_framing(&head, false).expect("framing");
    let mut got = 0u64;
    let r = c.reader.read_body(framing, &mut |b| got += b.len() as u64);
    assert!(
        r.is_err(),
        "a truncated body read as complete ({got} bytes)"
    );
    assert!(got <= 3 * MIB + 5, "{got} bytes");
    assert!(admin_util::stat(admin, SPLICED) > 0, "nothing was spliced");
    // The process keeps serving: the upstream's second connection gets the whole body.
    let mut c = RawConn::connect(b.port);
    c.send(&get("/y"));
    c.expect_pattern(10 * MIB);
}

#[test]
fn a_client_resetting_mid_body_closes_the_upstream_connection() {
    let s = start();
    let c = TcpStream::connect(local(s.b.port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    (&c).write_all(&get(&format!("/bytes/{}", 100 * MIB)))
        .expect("send");
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 2 * MIB as usize {
        let n = (&c).read(&mut buf).expect("read");
        assert!(n > 0);
        got += n;
    }
    reset_close(c);
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < IO_TIMEOUT {
        if admin_util::stat(s.admin, "cluster.backend.upstream_cx_active") == 0 {
            closed = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        closed,
        "the upstream connection stayed open after the client reset"
    );
    assert_eq!(
        admin_util::stat(s.admin, "cluster.backend.upstream_cx_destroy"),
        1
    );
    // Still serving, on a new upstream connection.
    let mut c = RawConn::connect(s.b.port);
    c.send(&get(&format!("/bytes/{}", MIB)));
    c.expect_pattern(MIB);
    assert_eq!(
        admin_util::stat(s.admin, "cluster.backend.upstream_cx_total"),
        2
    );
}

#[test]
fn the_access_log_counts_every_spliced_byte() {
    let up = Upstream::start("up1");
    let dir = HotDir::new("splice-log");
    let log = dir.path.join("access.log");
    let admin = free_port();
    let b = Baton::start(&yaml(
        free_port(),
        up.port(),
        admin,
        Some(&log.display().to_string()),
    ));
    let mut c = RawConn::connect(b.port);
    let n = 10 * MIB + 3;
    c.send(&get(&format!("/bytes/{n}")));
    c.expect_pattern(n);
    let want = format!("/bytes/{n} {n}\n");
    let t = Instant::now();
    let mut text = String::new();
    while t.elapsed() < IO_TIMEOUT {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(text, want);
    assert!(admin_util::stat(admin, SPLICED) as u64 > 10 * MIB - 64 * 1024);
}

/// SIGTERM with a successor while a 100 MiB download is being spliced: the old process
/// finishes the download (its pipe is never handed over), byte for byte, and exits.
#[test]
fn a_hot_restart_mid_download_completes_it() {
    let up = Upstream::start("up1");
    let port = free_port();
    let dir = HotDir::new("splice-restart");
    let y = simple_yaml(port, up.port());
    let mut old = hot_start(&y, &dir, &[]);
    let mut c = RawConn::connect(port);
    let size = 100 * MIB;
    c.send(&get(&format!("/bytes/{size}")));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(head.status, 200);
    let mut h = pattern::Fnv::default();
    let mut got = 0u64;
    let mut restarted = None;
    while got < size {
        let step = (size - got).min(64 * 1024);
        c.reader
            .read_exact_to(step, &mut |b| h.update(b))
            .unwrap_or_else(|e| panic!("closed after {got} bytes: {e}"));
        got += step;
        if restarted.is_none() && got > 5 * MIB {
            let (new, _) = hot_takeover(&y, &dir, &[], &old);
            old.sigterm();
            restarted = Some(new);
        }
    }
    assert_eq!(h.finish(), pattern::pattern_checksum(size));
    let new = restarted.expect("restarted");
    // The connection then moves (or closes) and the old process exits.
    expect_exit_code(&mut old, 0, Duration::from_secs(30));
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert_eq!(r.body_str(), up.greeting());
    drop(new);
}

/// A client that stops reading mid-body: the pipe and the socket buffers fill, and baton
/// waits for the client without spinning (edge-triggered readiness, nothing moves); when the
/// client reads again, the rest arrives intact.
#[test]
fn a_stalled_reader_costs_no_cpu_and_then_gets_the_rest() {
    let s = start();
    let mut c = RawConn::connect(s.b.port);
    let size = 50 * MIB;
    c.send(&get(&format!("/bytes/{size}")));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(head.status, 200);
    let mut h = pattern::Fnv::default();
    c.reader
        .read_exact_to(MIB, &mut |b| h.update(b))
        .expect("first MiB");
    // Let every buffer on the way fill up, then watch the idle proxy.
    thread::sleep(Duration::from_millis(500));
    let spliced = admin_util::stat(s.admin, SPLICED);
    assert!(spliced > 0, "nothing was spliced");
    let before = s.b.cpu_ticks();
    thread::sleep(Duration::from_secs(2));
    let used = s.b.cpu_ticks() - before;
    // A tick is 10 ms; a busy loop would burn ~200 in 2 s.
    assert!(
        used <= 5,
        "baton used {used} CPU ticks waiting for a stalled reader"
    );
    c.reader
        .read_exact_to(size - MIB, &mut |b| h.update(b))
        .expect("the rest");
    assert_eq!(h.finish(), pattern::pattern_checksum(size));
}

/// A client that half-closes after its request (`nc -N`) and reads slowly through a small
/// receive buffer: the body's last bytes sit in the pipe when the exchange completes and the
/// client's FIN is seen; they reach the client before the close.
#[test]
fn a_half_closed_slow_client_gets_the_whole_spliced_body() {
    let s = start();
    for n in [512 * 1024, 64 * 1024 + 7] {
        let c = TcpStream::connect(local(s.b.port)).expect("connect");
        nix::sys::socket::setsockopt(&c, nix::sys::socket::sockopt::RcvBuf, &4096).expect("rcvbuf");
        c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        (&c).write_all(&get(&format!("/bytes/{n}"))).expect("send");
        c.shutdown(std::net::Shutdown::Write).expect("half-close");
        thread::sleep(Duration::from_millis(200));
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match (&c).read(&mut buf) {
                Ok(0) => break,
                Ok(k) => all.extend_from_slice(&buf[..k]),
                Err(e) => panic!("read after {} bytes: {e}", all.len()),
            }
            thread::sleep(Duration::from_micros(300));
        }
        let head_end = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let body = &all[head_end..];
        assert_eq!(body.len() as u64, n, "body truncated");
        let mut h = pattern::Fnv::default();
        h.update(body);
        assert_eq!(h.finish(), pattern::pattern_checksum(n), "body corrupted");
    }
    assert!(
        admin_util::stat(s.admin, SPLICED) > 0,
        "nothing was spliced"
    );
}

/// An upstream that writes more than its Content-Length (a wrong length, or bytes of some
/// other response) in the same write as the body's tail, then keeps the connection open.
fn overlong_upstream(len: usize) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        for conn in l.incoming().take(2) {
            let Ok(mut conn) = conn else { return };
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
            out.extend(std::iter::repeat_n(b'a', len));
            out.extend_from_slice(b"HTTP/1.1 203 LEFTOVER\r\nContent-Length: 0\r\n\r\n");
            if conn.write_all(&out).is_err() {
                return;
            }
            // Keep it open until the proxy closes it (or the test ends).
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            while matches!(conn.read(&mut req), Ok(n) if n > 0) {}
        }
    });
    (port, h)
}

/// Bytes past a spliced body's length must never be taken as the next request's response: the
/// connection is not pooled.
#[test]
fn bytes_past_a_spliced_body_never_answer_the_next_request() {
    let len = 4 * 1024 * 1024;
    let (up, _h) = overlong_upstream(len);
    let admin = free_port();
    let b = Baton::start(&yaml(free_port(), up, admin, None));
    let mut c = RawConn::connect(b.port);
    c.send(&get("/first"));
    // Not reading yet: the proxy stops reading the upstream once the pipe and our socket are
    // full, so the bytes past the body are in its upstream socket before the body's end is.
    thread::sleep(Duration::from_millis(300));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(head.status, 200);
    let framing = baton_bench::wire::response_framing(&head, false).expect("framing");
    let mut got = 0u64;
    c.reader
        .read_body(framing, &mut |b| got += b.len() as u64)
        .expect("body");
    assert_eq!(got, len as u64);
    assert!(admin_util::stat(admin, SPLICED) > 0, "nothing was spliced");
    thread::sleep(Duration::from_millis(100));
    c.send(&get("/second"));
    let head = c.reader.read_response_head().expect("head").expect("head");
    assert_eq!(
        head.status, 200,
        "the leftover bytes of the first upstream response answered the second request"
    );
}

/// A burst of concurrent spliced downloads leaves its pipes idle in the pool; once nobody
/// takes them, all but a few are closed (by the trim that frees idle buffers, with no new
/// request to prompt it), so a burst does not hold descriptors for good.
#[test]
fn idle_pipes_left_by_a_burst_are_closed() {
    let s = start();
    let pid = s.b.pid();
    let base = fd_counts(pid).1;
    let conns = spliced_burst(s.b.port, pid, 12, 16 * MIB);
    let kept = ::baton::http::splice::POOL_KEEP;
    let closed = admin_util::eventually(Duration::from_secs(5), || {
        fd_counts(pid).1 <= base + 2 * kept
    });
    assert!(
        closed,
        "baton still holds {} pipe ends after the burst ({base} before it)",
        fd_counts(pid).1
    );
    // The kept few serve the next download, still spliced.
    let before = admin_util::stat(s.admin, SPLICED);
    let mut c = conns.into_iter().next().expect("a connection");
    c.send(&get(&format!("/bytes/{}", 4 * MIB)));
    c.expect_pattern(4 * MIB);
    assert!(admin_util::stat(s.admin, SPLICED) > before);
}
