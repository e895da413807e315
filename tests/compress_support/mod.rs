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
        let Ok(framing) = request_framing(&head) else {
            return;
        };
        let mut body = Vec::new();
        let mut max_chunk = 0u64;
        if framing == baton_bench::wire::Framing::Chunked {
            match read_chunked(&mut r, &mut body) {
                Some(m) => max_chunk = m,
                None => return,
            }
        } else if r
            .read_body(framing, &mut |b| body.extend_from_slice(b))
            .is_err()
        {
            return;
        }
        let target = head.target.clone();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let q = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(|v| {
                    v.replace("%20", " ")
                        .replace("%2C", ",")
                        .replace("%22", "\"")
                })
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let payload;
        if path == "/stats/prometheus" {
            // What an admin's Prometheus page looks like, as the gzip example's second
            // listener fronts one.
            payload = b"# TYPE envoy_cluster_upstream_rq counter\nenvoy_cluster_upstream_rq{} 1\n"
                .repeat(40);
            headers.push(("Content-Type".into(), "text/plain; charset=UTF-8".into()));
        } else if let Some(n) = path.strip_prefix("/rep/") {
            // A pseudo-random block of `period` bytes, repeated: compressible only by a
            // window that reaches back `period` bytes.
            let period: usize = q("period").and_then(|p| p.parse().ok()).unwrap_or(2000);
            let mut x = 0x2545_f491_u32;
            let block: Vec<u8> = (0..period)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b"abcdefghijklmnopqrstuvwxyz ,.:"[(x % 30) as usize]
                })
                .collect();
            payload = block
                .iter()
                .copied()
                .cycle()
                .take(n.parse().unwrap_or(0))
                .collect();
            headers.push(("Content-Type".into(), "application/json".into()));
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
            headers.push(("x-seen-max-chunk".into(), max_chunk.to_string()));
            for (k, name) in [
                ("x-seen-ae", "accept-encoding"),
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

/// Reads a chunked body into `body`; the largest chunk's size, `None` on a broken body.
fn read_chunked(r: &mut Reader<TcpStream>, body: &mut Vec<u8>) -> Option<u64> {
    let mut sizes = Vec::new();
    loop {
        let size = u64::from_str_radix(read_line(r)?.split(';').next()?, 16).ok()?;
        if size == 0 {
            while !read_line(r)?.is_empty() {}
            return Some(sizes.into_iter().max().unwrap_or(0));
        }
        sizes.push(size);
        r.read_exact_to(size, &mut |b| body.extend_from_slice(b))
            .ok()?;
        // The CRLF after the data.
        r.read_exact_to(2, &mut |_| {}).ok()?;
    }
}

/// One line, trimmed.
fn read_line(r: &mut Reader<TcpStream>) -> Option<String> {
    let mut l = Vec::new();
    loop {
        let mut b = 0u8;
        r.read_exact_to(1, &mut |x| b = x[0]).ok()?;
        if b == b'\n' {
            return Some(String::from_utf8_lossy(&l).trim().to_string());
        }
        l.push(b);
    }
}

/// The sizes of the chunks of a raw chunked HTTP response (its head skipped), and its body.
pub fn raw_chunks(raw: &[u8]) -> (Vec<usize>, Vec<u8>) {
    let mut at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let (mut sizes, mut body) = (Vec::new(), Vec::new());
    loop {
        let eol = at
            + raw[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[at..eol]).expect("ascii"), 16)
            .expect("hex");
        if size == 0 {
            return (sizes, body);
        }
        sizes.push(size);
        body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        at = eol + 2 + size + 2;
    }
}

/// gzip-compresses `data` with python's gzip module (an independent implementation).
pub fn python_gzip(data: &[u8]) -> Vec<u8> {
    python_pipe(
        "import gzip,sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))",
        data,
    )
}

/// gunzips `data` with python's gzip module; panics when it is not a complete gzip stream.
pub fn python_gunzip(data: &[u8]) -> Vec<u8> {
    python_pipe(
        "import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        data,
    )
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
