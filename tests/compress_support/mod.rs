//! A small origin for the compression tests: answers with the content type, framing and
//! headers a request's path and query ask for, and echoes request bodies with what it saw
//! of their framing and encoding.
//!
//! | path | answer |
//! |---|---|
//! | `/json/N?…` | N bytes of JSON text, `Content-Type: application/json`, Content-Length; the query adds: `te=chunked` (chunked instead), `etag=V`, `cc=V` (Cache-Control), `ce=V` (Content-Encoding), `ct=V` (Content-Type), `vary=V` |
//! | `/stats/prometheus` | 2,880 bytes of Prometheus text, `Content-Type: text/plain; charset=UTF-8` |
//! | anything else (`/echo`) | the request body back; `x-seen-ce`, `x-seen-cl`, `x-seen-te` say what the request had |

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;

use baton_bench::wire::{request_framing, Reader};

/// A running origin (threads end with the process).
pub struct JsonOrigin {
    pub port: u16,
}

/// N bytes of JSON-looking text.
pub fn json_body(n: usize) -> Vec<u8> {
    let unit = br#"{"name":"baton","kind":"proxy","ok":true},"#;
    unit.iter().copied().cycle().take(n).collect()
}

impl JsonOrigin {
    pub fn start() -> JsonOrigin {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || serve(s));
            }
        });
        JsonOrigin { port }
    }
}

fn serve(s: TcpStream) {
    let Ok(w) = s.try_clone() else { return };
    let mut w = w;
    let mut r = Reader::new(s);
    while let Ok(Some(head)) = r.read_request_head() {
        let Ok(framing) = request_framing(&head) else { return };
        let mut body = Vec::new();
        if r.read_body(framing, &mut |b| body.extend_from_slice(b)).is_err() {
            return;
        }
        let target = head.target.clone();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let q = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(|v| v.replace("%20", " ").replace("%2C", ",").replace("%22", "\""))
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let payload;
        if path == "/stats/prometheus" {
            // What an admin's Prometheus page looks like, as the gzip example's second
            // listener fronts one.
            payload = b"# TYPE envoy_cluster_upstream_rq counter\nenvoy_cluster_upstream_rq{} 1\n"
                .repeat(40);
            headers.push(("Content-Type".into(), "text/plain; charset=UTF-8".into()));
        } else if let Some(n) = path.strip_prefix("/json/") {
            payload = json_body(n.parse().unwrap_or(0));
            headers.push((
                "Content-Type".into(),
                q("ct").unwrap_or_else(|| "application/json".into()),
            ));
            for (k, name) in [
                ("etag", "ETag"),
                ("cc", "Cache-Control"),
                ("ce", "Content-Encoding"),
                ("vary", "Vary"),
            ] {
                if let Some(v) = q(k) {
                    headers.push((name.into(), v));
                }
            }
        } else {
            payload = body;
            headers.push(("Content-Type".into(), "application/octet-stream".into()));
            for (k, name) in [
                ("x-seen-ce", "content-encoding"),
                ("x-seen-cl", "content-length"),
                ("x-seen-te", "transfer-encoding"),
            ] {
                let v = head.header(name).unwrap_or("none").to_string();
                headers.push((k.into(), v));
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for (n, v) in &headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if q("te").as_deref() == Some("chunked") {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for c in payload.chunks(1000) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", payload.len()).as_bytes());
            if head.method != "HEAD" {
                out.extend_from_slice(&payload);
            }
        }
        if w.write_all(&out).is_err() {
            return;
        }
    }
}

/// gzip-compresses `data` with python's gzip module (an independent implementation).
pub fn python_gzip(data: &[u8]) -> Vec<u8> {
    python_pipe("import gzip,sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))", data)
}

/// gunzips `data` with python's gzip module; panics when it is not a complete gzip stream.
pub fn python_gunzip(data: &[u8]) -> Vec<u8> {
    python_pipe("import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))", data)
}

fn python_pipe(script: &str, data: &[u8]) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut c = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = c.stdin.take().expect("stdin");
    let data = data.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = c.wait_with_output().expect("python3 output");
    let _ = feeder.join();
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
