//! Regression tests for defects in the HTTP data path, one test per defect, against the real
//! binary on real loopback sockets: a non-ASCII request target, pipelined local replies to a
//! client that never reads, large upstream response heads, a request head dribbled in small
//! pieces, non-idempotent requests on a stale pooled connection, a broken body after a local
//! reply, a client reset while the upstream is slow, timer entries left by closed sessions,
//! an upstream's malformed chunked body, and a response in a transfer coding baton cannot relay.
//! Every wait is bounded; sizes and times measured along the way are printed, never asserted
//! tightly.

mod common;

use common::*;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A bootstrap with one listener, the HCM fields `hcm` (one YAML line each, e.g.
/// `stream_idle_timeout: 1s`), one virtual host for every domain with `routes` (YAML list
/// items, one line each, e.g. `- {match: {prefix: /}, route: {cluster: backend}}`) and a STATIC
/// cluster `backend` on 127.0.0.1:`upstream` (which may be a dead port for local-only routes).
fn config(listen: u16, hcm: &[&str], routes: &[&str], upstream: u16) -> String {
    let mut y = common::yaml::listener_head("127.0.0.1", listen);
    for l in hcm {
        y.push_str(&format!("          {l}\n"));
    }
    y.push_str(
        "          route_config:\n            name: local_route\n            virtual_hosts:\n            - name: vh\n              domains: [\"*\"]\n              routes:\n",
    );
    for r in routes {
        y.push_str(&format!("              {r}\n"));
    }
    y.push_str(&format!(
        "          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: backend
    connect_timeout: 0.5s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {upstream}}}
"
    ));
    y
}

/// An HCM `access_log` entry (file, one-line text format), as HCM lines for `config`.
fn access_log_lines(path: &std::path::Path, format: &str) -> Vec<String> {
    vec![
        "access_log:".into(),
        "- name: envoy.access_loggers.file".into(),
        "  typed_config:".into(),
        "    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
            .into(),
        format!("    path: {}", path.display()),
        "    log_format:".into(),
        format!("      text_format_source: {{inline_string: {format:?}}}"),
    ]
}

/// A raw TCP upstream on 127.0.0.1:0 running `handler(stream, connection index)` on a thread
/// per accepted connection; stops accepting when dropped.
struct RawUpstream {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl RawUpstream {
    fn start<F>(handler: F) -> RawUpstream
    where
        F: Fn(TcpStream, u64) + Send + Sync + 'static,
    {
        let l = TcpListener::bind(local(0)).expect("bind raw upstream");
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let handler = Arc::new(handler);
        let (st, acc) = (stop.clone(), accepted);
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let i = acc.fetch_add(1, Ordering::SeqCst);
                        let h = handler.clone();
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                        thread::spawn(move || h(s, i));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawUpstream { port, stop }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one request head (through the blank line) from `s`, byte by byte so nothing of a
/// following request is consumed. None on EOF, reset or timeout.
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
        if head.len() > 1 << 20 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Number of final (non-1xx) HTTP/1.1 status lines in raw response bytes.
fn final_status_lines(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("HTTP/1.1 ") {
        let at_line_start = i == 0 || rest[..i].ends_with('\n');
        let code = rest[i + 9..].get(..3).and_then(|c| c.parse::<u16>().ok());
        if let (true, Some(c)) = (at_line_start, code) {
            if c >= 200 {
                out.push(c);
            }
        }
        rest = &rest[i + 9..];
    }
    out
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    final_status_lines(bytes).first().copied()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// --- 1 ---------------------------------------------------------------------------------------

#[test]
fn non_ascii_request_target_is_400_and_the_process_survives() {
    let (mut b, up) = proxy_with_upstream();
    // A keep-alive connection opened (and used) before the bad request.
    let mut before = RawConn::connect(b.port);
    before.send(&get("/"));
    assert_eq!(before.expect_response(false).status(), 200);

    let (bytes, closed) = raw_exchange_ex(
        b.port,
        b"GET aaaaaa\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    );
    thread::sleep(Duration::from_millis(200));
    assert!(
        b.try_exit().is_none(),
        "baton died on a non-ASCII request target: {:?}",
        b.try_exit()
    );
    assert_eq!(
        status_of(&bytes),
        Some(400),
        "answer to a non-ASCII target: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(closed, "the connection stayed open after the 400");

    let mut fresh = RawConn::connect(b.port);
    fresh.send(&get("/"));
    assert_eq!(fresh.expect_response(false).body_str(), up.greeting());
    before.send(&get("/"));
    assert_eq!(before.expect_response(false).body_str(), up.greeting());
}

// --- 2 ---------------------------------------------------------------------------------------

/// Writes copies of `request` on a fresh nonblocking connection to `port` until `max` requests
/// are written or `limit` passes, never reading. Returns the connection (kept open) and the
/// number of requests written.
fn flood_without_reading(
    port: u16,
    request: &[u8],
    max: usize,
    limit: Duration,
) -> (TcpStream, usize) {
    let s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect");
    s.set_nonblocking(true).unwrap();
    let per = 512;
    let batch: Vec<u8> = request.repeat(per);
    let deadline = Instant::now() + limit;
    let mut written = 0usize; // bytes
    let total = request.len() * max;
    let mut w = &s;
    while written < total && Instant::now() < deadline {
        let off = written % batch.len();
        let end = batch.len().min(off + (total - written));
        match w.write(&batch[off..end]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("flood write: {e}"),
        }
    }
    (s, written / request.len())
}

#[test]
fn pipelined_local_replies_to_a_client_that_never_reads_stay_bounded() {
    const GROWTH_LIMIT_KIB: u64 = 64 * 1024;
    let body = "x".repeat(1024);
    let direct = format!(
        "- {{match: {{prefix: /direct}}, direct_response: {{status: 200, body: {{inline_string: {body}}}}}}}"
    );
    let cases: [(&str, &[u8], usize); 2] = [
        (
            "direct_response (1 KiB body)",
            b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n",
            200_000,
        ),
        (
            "404 no route",
            b"GET /none HTTP/1.1\r\nHost: a\r\n\r\n",
            1_000_000,
        ),
    ];
    let mut failures = Vec::new();
    for (what, req, max) in cases {
        // A fresh process per case, so one case's backlog does not blur the next one's figures.
        let b = Baton::start(&config(free_port(), &[], &[&direct], free_port()));
        let rss0 = b.rss_kib();
        let t = Instant::now();
        let (conn, n) = flood_without_reading(b.port, req, max, Duration::from_secs(10));
        // Let baton work through what it has read.
        thread::sleep(Duration::from_millis(500));
        let rss1 = b.rss_kib();
        eprintln!(
            "{what}: wrote {n} pipelined requests in {:?} without reading; baton RSS {:.1} -> {:.1} MiB (HWM {:.1} MiB)",
            t.elapsed(),
            mib(rss0),
            mib(rss1),
            mib(b.hwm_kib())
        );
        // Another client is still served while the flooding connection is open.
        let mut other = RawConn::connect(b.port);
        other.send(b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n");
        let r = other.expect_response(false);
        assert_eq!(r.status(), 200, "{what}: another client: {r:?}");
        if rss1.saturating_sub(rss0) >= GROWTH_LIMIT_KIB {
            failures.push(format!(
                "{what}: baton's RSS grew by {:.1} MiB for {n} pipelined requests from a client that never reads",
                mib(rss1 - rss0)
            ));
        }
        drop(conn);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// --- 3 ---------------------------------------------------------------------------------------

/// An upstream answering every request with a 200 whose head carries `head_bytes` bytes of
/// headers (2 KiB each, so the count stays well under any header-count limit), body `ok`.
fn big_head_upstream(head_bytes: usize) -> RawUpstream {
    RawUpstream::start(move |mut s, _| {
        while read_head(&mut s).is_some() {
            let mut resp = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
            let mut i = 0;
            while resp.len() < head_bytes {
                resp.push_str(&format!("X-Big-{i}: {}\r\n", "v".repeat(2000)));
                i += 1;
            }
            resp.push_str("\r\nok");
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn large_upstream_response_heads_are_answered_promptly() {
    // 40 KiB: forwarded, long before the 15 s route timeout. Over 64 KiB: an Envoy-like 502
    // local reply, not a 504 at the route timeout.
    let mut failures = Vec::new();
    for (kib, want) in [(40usize, 200u16), (80, 502)] {
        let up = big_head_upstream(kib * 1024);
        let b = Baton::start(&config(
            free_port(),
            &[],
            &["- {match: {prefix: /}, route: {cluster: backend, timeout: 15s}}"],
            up.port,
        ));
        let mut c = RawConn::connect(b.port);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let t = Instant::now();
        c.send(&get("/"));
        let r = c.response(false);
        let took = t.elapsed();
        let got = match &r {
            Ok(Some(r)) => format!(
                "{} {:?} ({} headers)",
                r.status(),
                r.body_str(),
                r.head.headers.len()
            ),
            other => format!("{other:?}"),
        };
        eprintln!("{kib} KiB upstream response head: {got} after {took:?}");
        match r {
            Ok(Some(r)) if r.status() == want => {
                if want == 200 && (r.body_str() != "ok" || r.head.headers.len() < 20) {
                    failures.push(format!("{kib} KiB head: damaged response: {got}"));
                }
            }
            _ => failures.push(format!(
                "{kib} KiB upstream response head: want {want} within 10 s (route timeout 15 s), got {got} after {took:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// --- 4 ---------------------------------------------------------------------------------------

#[test]
fn a_large_head_dribbled_in_small_pieces_is_answered() {
    const CLIENTS: usize = 3;
    let b = Baton::start(&config(
        free_port(),
        &["max_request_headers_kb: 96"],
        &["- {match: {prefix: /}, direct_response: {status: 200, body: {inline_string: dribbled}}}"],
        free_port(),
    ));
    // About 59 KiB of head in 2 KiB headers.
    let mut head = String::from("GET /slow HTTP/1.1\r\nHost: a\r\n");
    let mut i = 0;
    while head.len() + 2020 < 59 * 1024 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(2000)));
        i += 1;
    }
    head.push_str("\r\n");
    let head = Arc::new(head.into_bytes());
    let cpu0 = b.cpu_ticks();
    let t = Instant::now();
    let port = b.port;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let head = head.clone();
            thread::spawn(move || -> Result<(u16, usize), String> {
                let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                s.set_nodelay(true).unwrap();
                s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                let deadline = Instant::now() + Duration::from_secs(25);
                let (mut off, mut n, mut writes) = (0usize, 1usize, 0usize);
                while off < head.len() {
                    if Instant::now() > deadline {
                        return Err(format!("client {k}: still writing after 25 s"));
                    }
                    let end = (off + n).min(head.len());
                    s.write_all(&head[off..end]).map_err(|e| e.to_string())?;
                    off = end;
                    writes += 1;
                    n = n % 32 + 1; // 1, 2, ... 32 bytes, again
                                    // A pause after each piece, so baton sees (and parses) a growing partial head.
                    thread::sleep(Duration::from_micros(300));
                }
                let mut reader = Reader::new(s);
                match read_response(&mut reader, false) {
                    Ok(Some(r)) => Ok((r.status(), writes)),
                    other => Err(format!("client {k}: {other:?}")),
                }
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let cpu = b.cpu_ticks() - cpu0;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    eprintln!(
        "{CLIENTS} clients dribbled a {} byte head each in {:?}: baton CPU {:.2} s; results {results:?}",
        head.len(),
        t.elapsed(),
        cpu as f64 / hz as f64
    );
    for r in &results {
        match r {
            Ok((200, _)) => {}
            other => panic!("dribbled head: {other:?}"),
        }
    }
    assert!(
        cpu < 20 * hz,
        "baton used {:.1} s of CPU for {CLIENTS} dribbled 59 KiB heads",
        cpu as f64 / hz as f64
    );
}

// --- 5 ---------------------------------------------------------------------------------------

/// An upstream that answers the first request on each connection (200, keep-alive) and, on the
/// second request on the same connection, records it and closes without answering: the
/// stale-keep-alive race, made deterministic. Every request head seen is recorded as
/// (method, target, connection index).
/// (method, target, upstream connection index) of every request head an upstream saw.
type Seen = Arc<Mutex<Vec<(String, String, u64)>>>;

fn stale_upstream() -> (RawUpstream, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let up = RawUpstream::start(move |mut s, conn| {
        let mut n = 0;
        while let Some(head) = read_head(&mut s) {
            let mut words = head.split_whitespace();
            let method = words.next().unwrap_or("").to_string();
            let target = words.next().unwrap_or("").to_string();
            rec.lock().unwrap().push((method, target, conn));
            if n > 0 {
                return; // closes without a response
            }
            n += 1;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
        }
    });
    (up, seen)
}

#[test]
fn non_idempotent_requests_are_not_replayed_on_a_stale_pooled_connection() {
    let (up, seen) = stale_upstream();
    let b = Baton::start(&config(
        free_port(),
        &[],
        &["- {match: {prefix: /}, route: {cluster: backend, timeout: 5s}}"],
        up.port,
    ));
    let count = |target: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| t == target)
            .count()
    };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        let mut c = RawConn::connect(b.port);
        // Pools an upstream connection that has answered once.
        let warm = format!("/warm-{method}");
        c.send(format!("GET {warm} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let w = c.expect_response(false);
        assert_eq!(w.status(), 200, "warm-up before {method}: {w:?}");
        // The request under test goes out on that pooled connection, which then dies.
        let target = format!("/m-{method}");
        c.send(
            format!("{method} {target} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        let r = c.response(false);
        let status = match &r {
            Ok(Some(r)) => r.status(),
            _ => 0,
        };
        let n = count(&target);
        report.push(format!(
            "{method}: client got {status}, upstream saw it {n}x"
        ));
        match method {
            // Idempotent (RFC 9110 §9.2.2): a transparent retry on a new connection is fine.
            "GET" | "DELETE" => {
                if status != 200 || n != 2 {
                    failures.push(format!(
                        "{method} on a stale pooled connection: want a transparent retry (200, upstream sees it twice); got {status}, seen {n}x"
                    ));
                }
            }
            // Not idempotent: never sent twice; the client gets Envoy's 503.
            _ => {
                if n != 1 || status != 503 {
                    failures.push(format!(
                        "{method} on a stale pooled connection: want 503 and exactly one copy upstream; got {status}, seen {n}x"
                    ));
                }
            }
        }
    }
    eprintln!("{report:#?}\nupstream saw: {:?}", seen.lock().unwrap());
    assert!(failures.is_empty(), "{failures:#?}");
}

// --- 6 ---------------------------------------------------------------------------------------

#[test]
fn a_local_reply_then_a_broken_request_body_gives_exactly_one_response() {
    let b = Baton::start(&config(
        free_port(),
        &["stream_idle_timeout: 1s"],
        &["- {match: {prefix: /direct}, direct_response: {status: 200, body: {inline_string: ok}}}"],
        free_port(),
    ));
    let chunked = |path: &str, body: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    };
    let cases = [
        (
            "direct_response, bad chunk size",
            chunked("/direct", "zz\r\nhello\r\n"),
        ),
        ("404, bad chunk size", chunked("/none", "zz\r\nhello\r\n")),
        (
            "direct_response, body stalls",
            chunked("/direct", "5\r\nhel"),
        ),
        ("404, body stalls", chunked("/none", "5\r\nhel")),
    ];
    let mut failures = Vec::new();
    for (what, req) in cases {
        let t = Instant::now();
        let (bytes, closed) = raw_exchange_ex(b.port, req.as_bytes(), Duration::from_secs(8));
        let statuses = final_status_lines(&bytes);
        eprintln!(
            "{what}: statuses {statuses:?}, closed {closed} after {:?}",
            t.elapsed()
        );
        if statuses.len() != 1 || !closed {
            failures.push(format!(
                "{what}: final responses {statuses:?}, closed within 8 s: {closed}; raw: {:?}",
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// --- 7 ---------------------------------------------------------------------------------------

#[test]
fn a_client_reset_cancels_the_upstream_request() {
    // Behaves like `/delay/5000`: answers 5 s after the head unless the connection closes first;
    // records when the request arrived and when baton closed the connection.
    let got: Arc<Mutex<Option<Instant>>> = Arc::default();
    let eof: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (g, e) = (got.clone(), eof.clone());
    let up = RawUpstream::start(move |mut s, _| {
        if read_head(&mut s).is_none() {
            return;
        }
        let start = Instant::now();
        *g.lock().unwrap() = Some(start);
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut answered = false;
        let mut b = [0u8; 1024];
        while start.elapsed() < Duration::from_secs(20) {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !answered && start.elapsed() >= Duration::from_secs(5) {
                        answered = true;
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\ndelay 5000\n",
                        );
                    }
                }
                Err(_) => break,
            }
        }
        *e.lock().unwrap() = Some(Instant::now());
    });
    let log = std::env::temp_dir().join(format!("baton-dpd-{}-reset.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut hcm = access_log_lines(&log, "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\n");
    hcm.push("stream_idle_timeout: 60s".into());
    let hcm: Vec<&str> = hcm.iter().map(String::as_str).collect();
    let b = Baton::start(&config(
        free_port(),
        &hcm,
        &["- {match: {prefix: /}, route: {cluster: backend, timeout: 10s}}"],
        up.port,
    ));
    let c = TcpStream::connect_timeout(&local(b.port), IO_TIMEOUT).expect("connect");
    (&c).write_all(&get("/delay/5000")).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    while got.lock().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(200));
    reset_close(c);
    let reset_at = Instant::now();
    let deadline = reset_at + Duration::from_secs(12);
    let closed_at = loop {
        if let Some(t) = *eof.lock().unwrap() {
            break Some(t);
        }
        if Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let after = closed_at.map(|t| t.saturating_duration_since(reset_at));
    // The access log line is written when the request ends (whatever ended it).
    let line_deadline = Instant::now() + Duration::from_secs(12);
    let mut line = String::new();
    while Instant::now() < line_deadline {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        if !line.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&log);
    eprintln!("client RST -> upstream connection closed after {after:?} (None: not within 12 s); access log: {line:?}");
    assert!(
        after.is_some_and(|d| d < Duration::from_millis(2500)),
        "baton kept the upstream request running after the client reset: upstream connection closed {after:?} after the RST (None: still open 12 s later; the upstream answers at 5 s, route timeout 10 s)"
    );
    assert!(
        line.split_whitespace()
            .nth(2)
            .is_some_and(|f| f.contains("DC")),
        "access log line without DC: {line:?}"
    );
}

// --- 8 ---------------------------------------------------------------------------------------

/// `n` connections, each `GET /direct` then close, from `threads` threads; bounded by `limit`.
/// Returns how many completed.
fn short_connections(port: u16, n: usize, threads: usize, limit: Duration) -> usize {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + limit;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let done = done.clone();
            thread::spawn(move || {
                let req = b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n";
                let mut buf = [0u8; 1024];
                while (done.load(Ordering::SeqCst) as usize) < n && Instant::now() < deadline {
                    let Ok(mut s) = TcpStream::connect_timeout(&local(port), IO_TIMEOUT) else {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    if s.write_all(req).is_err() {
                        continue;
                    }
                    // The reply is small: one read holds it whole (checked by its end).
                    let mut got = Vec::new();
                    while !got.ends_with(b"ok") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    if got.ends_with(b"ok") {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.load(Ordering::SeqCst) as usize
}

#[test]
fn closed_sessions_leave_no_timer_entries_behind() {
    // Each closed session today leaves its idle-timeout entry (1 h away) in the timer heap.
    const ROUND1: usize = 20_000;
    const ROUND2: usize = 150_000;
    // 150k connections: ~14 bytes each would already be 2 MiB; a fixed baton grows by ~0.
    const GROWTH_LIMIT_KIB: u64 = 2 * 1024;
    let b = Baton::start(&config(
        free_port(),
        &["common_http_protocol_options: {idle_timeout: 3600s}"],
        &["- {match: {prefix: /direct}, direct_response: {status: 200, body: {inline_string: ok}}}"],
        free_port(),
    ));
    let t = Instant::now();
    let n1 = short_connections(b.port, ROUND1, 2, Duration::from_secs(20));
    thread::sleep(Duration::from_millis(300));
    let rss1 = b.rss_kib();
    let t1 = t.elapsed();
    let n2 = short_connections(b.port, ROUND2, 2, Duration::from_secs(40));
    thread::sleep(Duration::from_millis(300));
    let rss2 = b.rss_kib();
    eprintln!(
        "round 1: {n1} connections ({t1:?}), RSS {:.2} MiB; round 2: {n2} connections ({:?}), RSS {:.2} MiB; growth {:.2} MiB",
        mib(rss1),
        t.elapsed() - t1,
        mib(rss2),
        mib(rss2.saturating_sub(rss1))
    );
    assert!(
        n1 >= ROUND1 / 2 && n2 >= ROUND2 / 4,
        "too few connections completed: {n1}, {n2}"
    );
    assert!(
        rss2.saturating_sub(rss1) < GROWTH_LIMIT_KIB,
        "baton's RSS grew {:.2} MiB over {n2} closed keep-alive connections (idle_timeout 1 h)",
        mib(rss2 - rss1)
    );
}

// --- 9 ---------------------------------------------------------------------------------------

/// A raw upstream that answers each connection's first request head with `answer`, then
/// holds the connection open for 2 s (so an answer that is cut short is not mistaken for
/// a close).
fn answering(answer: &'static [u8]) -> RawUpstream {
    RawUpstream::start(move |mut s, _| {
        if read_head(&mut s).is_some() {
            let _ = s.write_all(answer);
            thread::sleep(Duration::from_secs(2));
        }
    })
}

/// baton with the HCM lines `hcm`, every request routed to `up`.
fn proxy_to(up: &RawUpstream, hcm: &[&str]) -> Baton {
    Baton::start(&config(
        free_port(),
        hcm,
        &["- {match: {prefix: /}, route: {cluster: backend}}"],
        up.port,
    ))
}

#[test]
fn a_malformed_chunked_response_body_is_logged_as_a_protocol_error() {
    // The body goes wrong after the head went out: the client's response is cut off, and the
    // access log says why as Envoy does (`UPE`, `{protocol_error}`), not as if the upstream
    // had merely closed (`UC`, `{connection_termination}`).
    // The chunk's data is followed by `XX` where its CRLF belongs.
    let up =
        answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n");
    let log = std::env::temp_dir().join(format!("baton-dpd-{}-badchunk.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut hcm = access_log_lines(
        &log,
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n",
    );
    hcm.push("stream_idle_timeout: 10s".into());
    let hcm: Vec<&str> = hcm.iter().map(String::as_str).collect();
    let b = proxy_to(&up, &hcm);
    let (bytes, closed) = raw_exchange_ex(
        b.port,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(8),
    );
    assert_eq!(
        status_of(&bytes),
        Some(200),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(closed, "the cut-off response must end the connection");
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut line = String::new();
    while Instant::now() < deadline && line.is_empty() {
        thread::sleep(Duration::from_millis(50));
        line = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        line.trim(),
        "200 UPE upstream_reset_after_response_started{protocol_error}"
    );
}

// --- 10 --------------------------------------------------------------------------------------

#[test]
fn a_response_with_a_coding_other_than_chunked_is_a_502() {
    // `Transfer-Encoding: gzip` used to be read until close and relayed without the header
    // (it is hop-by-hop), so the client got gzip bytes as if they were the content. Envoy
    // refuses such a response as a protocol error; so does baton.
    let up = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n\x1f\x8b\x08\x00",
    );
    let b = proxy_to(&up, &[]);
    let (bytes, _) = raw_exchange_ex(
        b.port,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(8),
    );
    assert_eq!(
        status_of(&bytes),
        Some(502),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}
