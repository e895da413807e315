//! HTTP/2 clients end to end: curl (`--http2-prior-knowledge`, `--http2` over TLS), nghttp,
//! h2load and scripted python-h2 peers against the real binary. baton serves an HTTP/2
//! connection one stream at a time (SETTINGS_MAX_CONCURRENT_STREAMS 1) through its HTTP/1.1
//! core; `codec_type` AUTO serves h2c prior knowledge and HTTP/1.1 on one listener, HTTP2
//! only HTTP/2; a TLS context offering ALPN `h2` serves both kinds of client.

mod admin_util;
mod common;

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

/// Runs a python script (stdin) with `args`; its stdout, asserting success.
fn python(script: &str, args: &[&str]) -> String {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let o = child.wait_with_output().expect("python3 output");
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn log_fmt() -> Option<String> {
    Some("%PROTOCOL% %REQ(:METHOD)% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT%\n".into())
}

#[test]
fn h2c_prior_knowledge_with_auto_and_http2_codecs() {
    let log = tmp_file("h2c-auto");
    let (b, up, s) = start_edited(vec![(log.display().to_string(), log_fmt())], with_routes);
    // AUTO: HTTP/2 with prior knowledge...
    let out = h2c(&["-w", "%{http_version} %{response_code}", "-o", "/dev/null", &url(b.port, "/bytes/100000")]);
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
        .args(["-sS", "--max-time", "60", "--http2-prior-knowledge", "-T", "-"])
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
    assert!(lines.iter().any(|l| l.starts_with("HTTP/1.1 GET 200")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("HTTP/2 POST 200 70000")), "{lines:?}");
    assert_eq!(stat(s.admin, "http.ingress_http.downstream_cx_http2_total"), 4);

    // HTTP2: HTTP/2 only; an HTTP/1.1 request is a connection error (GOAWAY, close).
    let (b, _up, _s) = start_edited(vec![], with_hcm(&["codec_type: HTTP2"]));
    let out = h2c(&["-w", "%{http_version} %{response_code}", "-o", "/dev/null", &url(b.port, "/status/200")]);
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
