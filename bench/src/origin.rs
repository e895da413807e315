//! An HTTP/1.1 origin server on std threads (one per connection), used both as the demo and
//! bench upstream (`baton-upstream`) and, in process, by the end-to-end tests. The request path
//! picks the behaviour, so one server covers every case a proxy must get right:
//!
//! | path | answer |
//! |---|---|
//! | `/` (and anything unknown) | 200 `hello from NAME (ADDR)\n` |
//! | `/bytes/N` | N pattern bytes, Content-Length |
//! | `/chunked/N` | N pattern bytes, chunked (16,380-byte chunks) |
//! | `/bigchunked/N` | N pattern bytes in 1,040,000-byte chunks |
//! | `/eof/N` | N pattern bytes, no length, then close |
//! | `/status/N` | status N |
//! | `/delay/MS` | 200 after MS milliseconds |
//! | `/sink` | reads the body (any framing), answers `len=N fnv=HEX` |
//! | `/echo` | streams the request body back |
//! | `/close` | 200 with `Connection: close`, then closes |
//! | `/reset-after-head` | head with Content-Length 1000, 10 bytes, close |
//! | `/hang` | never answers (until the peer closes) |
//! | `/headers` | the request head as received, as the body |
//! | `/head-ok` | 200 with Content-Length 1234 (no body for HEAD) |
//! | `/204`, `/304` | those statuses, no body |
//! | `/100` | `100 Continue`, then reads the body, then 200 |
//!
//! A request with `Expect: 100-continue` gets `100 Continue` first, as real servers do.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::pattern::{self, Fnv};
use crate::wire::{request_framing, Framing, Head, Reader};

/// A request as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl SeenRequest {
    /// First value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::wire::find_header(&self.headers, name)
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
    record: bool,
    seen: Mutex<Vec<SeenRequest>>,
    /// Open connections, so stopping can unblock their threads.
    open: Mutex<HashMap<u64, TcpStream>>,
}

/// A running origin server; dropping it stops accepting and closes its connections.
pub struct Origin {
    addr: SocketAddr,
    name: String,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Origin {
    /// Binds `listen` (port 0 for an ephemeral one) and serves until dropped. With `record`,
    /// every request head is kept for inspection (tests); benches leave it off.
    pub fn start(listen: SocketAddr, name: &str, record: bool) -> io::Result<Origin> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            record,
            ..Shared::default()
        });
        let ctx = Arc::new(Ctx {
            greeting: format!("hello from {name} ({addr})\n"),
            shared: shared.clone(),
        });
        let accept = thread::Builder::new()
            .name(format!("origin-{name}"))
            .spawn(move || accept_loop(listener, ctx))?;
        Ok(Origin {
            addr,
            name: name.to_string(),
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Request heads parsed so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Recorded requests (empty unless started with `record`).
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests have been recorded; false on timeout.
    pub fn wait_seen(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.shared.seen.lock().unwrap().len() >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Blocks the calling thread while the server runs (for the `baton-upstream` binary).
    pub fn join(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so its thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for (_, s) in self.shared.open.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

struct Ctx {
    greeting: String,
    shared: Arc<Shared>,
}

fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if ctx.shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // EMFILE and friends: back off instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        ctx.shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        if let Ok(c) = stream.try_clone() {
            ctx.shared.open.lock().unwrap().insert(id, c);
        }
        let ctx = ctx.clone();
        let spawned = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = serve_connection(stream, &ctx);
                ctx.shared.open.lock().unwrap().remove(&id);
            });
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What to do with the connection after a response.
#[derive(PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
}

fn serve_connection(stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    let mut reader = Reader::new(stream.try_clone()?);
    let mut w = Out {
        stream,
        buf: Vec::with_capacity(16 * 1024),
    };
    loop {
        let head = match reader.read_request_head() {
            Ok(Some(h)) => h,
            Ok(None) => return w.flush(),
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    w.simple(400, &[], b"bad request\n", true, false);
                }
                return w.flush();
            }
        };
        ctx.shared.requests.fetch_add(1, Ordering::SeqCst);
        let after = handle(&head, &mut reader, &mut w, ctx)?;
        // Batch responses to pipelined requests; flush when no further request is buffered.
        if after == After::Close {
            w.flush()?;
            return Ok(());
        }
        if reader.buffered().is_empty() {
            w.flush()?;
        }
    }
}

/// Response writer with a small batch buffer.
struct Out {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Out {
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.stream.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes a head; `length` None means no Content-Length (chunked or close-delimited).
    fn head(&mut self, status: u16, extra: &[(&str, &str)], length: Option<u64>, close: bool) {
        let _ = write!(self.buf, "HTTP/1.1 {status} {}\r\n", reason(status));
        for (n, v) in extra {
            let _ = write!(self.buf, "{n}: {v}\r\n");
        }
        if let Some(n) = length {
            let _ = write!(self.buf, "Content-Length: {n}\r\n");
        }
        if close {
            self.buf.extend_from_slice(b"Connection: close\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A complete response with an in-memory body (omitted for HEAD/204/304).
    fn simple(
        &mut self,
        status: u16,
        extra: &[(&str, &str)],
        body: &[u8],
        close: bool,
        head: bool,
    ) {
        let bodyless = status == 204 || status == 304 || (100..200).contains(&status);
        let length = if bodyless {
            None
        } else {
            Some(body.len() as u64)
        };
        self.head(status, extra, length, close);
        if !head && !bodyless {
            self.buf.extend_from_slice(body);
        }
    }

    /// Streams `n` pattern bytes, raw or in chunks of at most `chunk` bytes (a multiple of 26,
    /// so the pattern runs on across chunks).
    fn pattern(&mut self, n: u64, chunk: Option<u64>) -> io::Result<()> {
        self.flush()?;
        let block = pattern::block(26 * 630); // 16,380 bytes, a multiple of 26
        let mut left = n;
        while left > 0 {
            let take = left.min(chunk.unwrap_or(u64::MAX));
            if chunk.is_some() {
                self.stream.write_all(format!("{take:x}\r\n").as_bytes())?;
            }
            let mut sent = 0;
            while sent < take {
                let k = (take - sent).min(block.len() as u64) as usize;
                self.stream.write_all(&block[..k])?;
                sent += k as u64;
            }
            if chunk.is_some() {
                self.stream.write_all(b"\r\n")?;
            }
            left -= take;
        }
        if chunk.is_some() {
            self.stream.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn num(path: &str, prefix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?.parse().ok()
}

fn record(ctx: &Ctx, head: &Head, body_len: u64) {
    if ctx.shared.record {
        ctx.shared.seen.lock().unwrap().push(SeenRequest {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version,
            headers: head.headers.clone(),
            body_len,
        });
    }
}

/// Reads the request body, hashing it.
fn drain_body(reader: &mut Reader<TcpStream>, framing: Framing) -> io::Result<(u64, u64)> {
    let mut h = Fnv::default();
    let n = reader.read_body(framing, &mut |b| h.update(b))?;
    Ok((n, h.finish()))
}

fn handle(
    head: &Head,
    reader: &mut Reader<TcpStream>,
    w: &mut Out,
    ctx: &Ctx,
) -> io::Result<After> {
    let framing = match request_framing(head) {
        Ok(f) => f,
        Err(e) => {
            w.simple(400, &[], format!("{e}\n").as_bytes(), true, false);
            return Ok(After::Close);
        }
    };
    let path = head.path().to_string();
    let is_head = head.method == "HEAD";
    let keep = head.request_keeps_alive();
    let close = !keep;
    let ka: &[(&str, &str)] = if keep && head.version == 0 {
        &[("Connection", "keep-alive")]
    } else {
        &[]
    };
    let after = if keep { After::KeepAlive } else { After::Close };
    if path == "/100" || head.has_token("expect", "100-continue") {
        w.buf.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        w.flush()?;
    }
    if path == "/echo" {
        return echo(head, framing, reader, w, ctx, close, ka).map(|_| after);
    }
    let (body_len, sum) = drain_body(reader, framing)?;
    record(ctx, head, body_len);

    if let Some(n) = num(&path, "/bytes/") {
        w.head(200, ka, Some(n), close);
        if !is_head {
            w.pattern(n, None)?;
        }
    } else if let Some(n) = num(&path, "/chunked/") {
        w.head(200, &[("Transfer-Encoding", "chunked")], None, close);
        if !is_head {
            w.pattern(n, Some(16_380))?;
        }
    } else if let Some(n) = num(&path, "/bigchunked/") {
        w.head(200, &[("Transfer-Encoding", "chunked")], None, close);
        if !is_head {
            w.pattern(n, Some(26 * 40_000))?;
        }
    } else if let Some(n) = num(&path, "/eof/") {
        w.head(200, &[], None, false);
        if !is_head {
            w.pattern(n, None)?;
        }
        return Ok(After::Close);
    } else if let Some(s) = num(&path, "/status/") {
        let s = u16::try_from(s).unwrap_or(500).clamp(200, 599);
        w.simple(s, ka, format!("status {s}\n").as_bytes(), close, is_head);
    } else if let Some(ms) = num(&path, "/delay/") {
        w.flush()?;
        thread::sleep(Duration::from_millis(ms));
        w.simple(200, ka, format!("delay {ms}\n").as_bytes(), close, is_head);
    } else {
        match path.as_str() {
            "/sink" => {
                let body = format!("len={body_len} fnv={sum:016x}\n");
                w.simple(200, ka, body.as_bytes(), close, is_head);
            }
            "/close" => {
                w.simple(200, &[], b"closing\n", true, is_head);
                return Ok(After::Close);
            }
            "/reset-after-head" => {
                w.head(200, &[], Some(1000), false);
                w.buf.extend_from_slice(&pattern::block(10));
                return Ok(After::Close);
            }
            "/hang" => {
                w.flush()?;
                hang(reader, ctx);
                return Ok(After::Close);
            }
            "/headers" => {
                let mut body = format!(
                    "{} {} HTTP/1.{}\r\n",
                    head.method, head.target, head.version
                );
                for (n, v) in &head.headers {
                    body.push_str(&format!("{n}: {v}\r\n"));
                }
                w.simple(200, ka, body.as_bytes(), close, is_head);
            }
            "/head-ok" => {
                w.simple(200, ka, &pattern::block(1234), close, is_head);
            }
            "/204" => w.simple(204, ka, b"", close, is_head),
            "/304" => w.simple(304, &[("ETag", "\"v1\"")], b"", close, is_head),
            "/100" => {
                let body = format!("continued len={body_len}\n");
                w.simple(200, ka, body.as_bytes(), close, is_head);
            }
            _ => w.simple(200, ka, ctx.greeting.as_bytes(), close, is_head),
        }
    }
    Ok(after)
}

/// Streams the request body back as it arrives, with the request's own framing.
fn echo(
    head: &Head,
    framing: Framing,
    reader: &mut Reader<TcpStream>,
    w: &mut Out,
    ctx: &Ctx,
    close: bool,
    ka: &[(&str, &str)],
) -> io::Result<()> {
    let chunked = framing == Framing::Chunked;
    match framing {
        Framing::Length(n) => w.head(200, ka, Some(n), close),
        _ => w.head(200, &[("Transfer-Encoding", "chunked")], None, close),
    }
    w.flush()?;
    let mut out = w.stream.try_clone()?;
    let mut err: Option<io::Error> = None;
    let n = reader.read_body(framing, &mut |b| {
        if err.is_some() {
            return;
        }
        let r = if chunked {
            out.write_all(format!("{:x}\r\n", b.len()).as_bytes())
                .and_then(|_| out.write_all(b))
                .and_then(|_| out.write_all(b"\r\n"))
        } else {
            out.write_all(b)
        };
        err = r.err();
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    record(ctx, head, n);
    Ok(())
}

/// Never answers: waits until the peer closes or the server stops.
fn hang(reader: &mut Reader<TcpStream>, ctx: &Ctx) {
    let s = reader.get_mut();
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut scratch = [0u8; 4096];
    while !ctx.shared.stop.load(Ordering::SeqCst) {
        match io::Read::read(s, &mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
