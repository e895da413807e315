//! A load client that counts honestly, shared by the `baton-load` binary and the end-to-end
//! tests. Every request written is either a success (complete response, 2xx, expected body) or
//! a failure of one kind; nothing is retried silently. A connection the server closes after a
//! complete response (`Connection: close`) is not a failure: the worker reconnects and the new
//! connection is counted, so a test can also assert that no keep-alive client had to reconnect.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::wire::{read_response, Reader};

/// Failure kinds, in the order of `Counts::failed`.
pub const KINDS: [&str; 7] = [
    "reset",
    "closed",
    "timeout",
    "non2xx",
    "wrong_body",
    "bad_response",
    "connect",
];

#[derive(Debug, Clone)]
pub struct LoadOpts {
    pub target: SocketAddr,
    /// The Host header.
    pub host: String,
    /// Keep-alive connections, one worker thread each.
    pub connections: usize,
    /// Extra one-request (`Connection: close`) connections opened per second.
    pub new_conn_rate: f64,
    pub path: String,
    /// A 2xx body without this text is a failure (wrong body).
    pub expect: Option<String>,
    /// Per-read/write and connect timeout.
    pub timeout: Duration,
    /// Pause between two requests of a keep-alive worker (0: back to back).
    pub pause: Duration,
}

impl LoadOpts {
    pub fn new(target: SocketAddr) -> LoadOpts {
        LoadOpts {
            target,
            host: target.to_string(),
            connections: 32,
            new_conn_rate: 0.0,
            path: "/".into(),
            expect: None,
            timeout: Duration::from_millis(5000),
            pause: Duration::ZERO,
        }
    }
}

/// What the workers saw so far.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    /// By kind, see [`KINDS`].
    pub failed: [u64; KINDS.len()],
    /// Connections opened by keep-alive workers (each opens one at start, more only when the
    /// server closed or broke the previous one).
    pub keepalive_conns: u64,
    /// Connections opened by the new-connection stream (one request each).
    pub oneshot_conns: u64,
    /// (second since start, upstream name) → successful responses.
    pub served: BTreeMap<(u64, String), u64>,
    /// The first few failures, described, for a test's assertion message.
    pub failures: Vec<String>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.ok += o.ok;
        for (a, b) in self.failed.iter_mut().zip(o.failed.iter()) {
            *a += b;
        }
        self.keepalive_conns += o.keepalive_conns;
        self.oneshot_conns += o.oneshot_conns;
        for (k, v) in &o.served {
            *self.served.entry(k.clone()).or_default() += v;
        }
        for f in &o.failures {
            if self.failures.len() < 20 {
                self.failures.push(f.clone());
            }
        }
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    pub fn new_conns(&self) -> u64 {
        self.keepalive_conns + self.oneshot_conns
    }

    /// Successful responses per upstream name over the whole run.
    pub fn by_upstream(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for ((_, n), v) in &self.served {
            *m.entry(n.clone()).or_default() += v;
        }
        m
    }

    /// `kind=N ...` for every failure kind.
    pub fn failed_kinds(&self) -> String {
        let kinds: Vec<String> = KINDS
            .iter()
            .zip(self.failed.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        kinds.join(" ")
    }

    fn fail(&mut self, kind: &'static str, what: String) {
        let i = KINDS.iter().position(|k| *k == kind).expect("known kind");
        self.failed[i] += 1;
        if self.failures.len() < 20 {
            self.failures.push(format!("{kind}: {what}"));
        }
    }
}

/// The upstream that served a `hello from NAME (...)` body, else "-".
pub fn upstream_name(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.strip_prefix("hello from ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("-")
        .to_string()
}

/// The kind of an I/O error met while sending a request or reading its response.
pub fn failure_kind(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => "reset",
        io::ErrorKind::UnexpectedEof => "closed",
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout",
        _ => "bad_response",
    }
}

struct Conn {
    stream: TcpStream,
    reader: Reader<TcpStream>,
}

/// A client connection as every load tool opens it: no Nagle, bounded reads and writes, and a
/// strict response reader on a clone of the socket.
pub fn open_conn(
    target: &SocketAddr,
    timeout: Duration,
) -> io::Result<(TcpStream, Reader<TcpStream>)> {
    let stream = TcpStream::connect_timeout(target, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let reader = Reader::new(stream.try_clone()?);
    Ok((stream, reader))
}

fn connect(o: &LoadOpts) -> io::Result<Conn> {
    let (stream, reader) = open_conn(&o.target, o.timeout)?;
    Ok(Conn { reader, stream })
}

/// Sends one request on `conn` and classifies the outcome. Returns whether the connection can
/// carry another request.
fn exchange(conn: &mut Conn, o: &LoadOpts, close: bool, second: u64, c: &Mutex<Counts>) -> bool {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: baton-load\r\n{}\r\n",
        o.path,
        o.host,
        if close { "Connection: close\r\n" } else { "" }
    );
    let lock = || c.lock().expect("load counts lock");
    lock().sent += 1;
    let local = conn
        .stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Err(e) = conn.stream.write_all(req.as_bytes()) {
        lock().fail(failure_kind(&e), format!("{local}: write: {e}"));
        return false;
    }
    let resp = match read_response(&mut conn.reader, false) {
        Ok(Some(r)) => r,
        Ok(None) => {
            lock().fail("closed", format!("{local}: closed before a response"));
            return false;
        }
        Err(e) => {
            lock().fail(failure_kind(&e), format!("{local}: read: {e}"));
            return false;
        }
    };
    let mut g = lock();
    if !(200..300).contains(&resp.status()) {
        g.fail(
            "non2xx",
            format!("{local}: {} {}", resp.status(), resp.body_str()),
        );
    } else if o
        .expect
        .as_ref()
        .is_some_and(|t| !resp.body_str().contains(t.as_str()))
    {
        g.fail("wrong_body", format!("{local}: {:?}", resp.body_str()));
    } else {
        g.ok += 1;
        *g.served
            .entry((second, upstream_name(&resp.body)))
            .or_default() += 1;
    }
    let keep = resp.head.version == 1 && !resp.head.has_token("connection", "close");
    keep && !close
}

/// A keep-alive worker: one connection at a time, replaced when it closes or fails.
fn worker(o: LoadOpts, start: Instant, stop: Arc<AtomicBool>, c: Arc<Mutex<Counts>>) {
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match connect(&o) {
                Ok(k) => {
                    c.lock().expect("load counts lock").keepalive_conns += 1;
                    conn = Some(k);
                }
                Err(e) => {
                    c.lock()
                        .expect("load counts lock")
                        .fail("connect", format!("connect: {e}"));
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let second = start.elapsed().as_secs();
        let k = conn.as_mut().expect("connected");
        if !exchange(k, &o, false, second, &c) {
            conn = None;
        }
        if !o.pause.is_zero() {
            thread::sleep(o.pause);
        }
    }
}

/// Opens `rate` new connections per second, one `Connection: close` request each.
fn new_conn_stream(o: LoadOpts, start: Instant, stop: Arc<AtomicBool>, c: Arc<Mutex<Counts>>) {
    let interval = Duration::from_secs_f64(1.0 / o.new_conn_rate);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        match connect(&o) {
            Ok(mut k) => {
                c.lock().expect("load counts lock").oneshot_conns += 1;
                exchange(&mut k, &o, true, start.elapsed().as_secs(), &c);
            }
            Err(e) => c
                .lock()
                .expect("load counts lock")
                .fail("connect", format!("connect: {e}")),
        }
    }
}

/// Load running on its own threads until `stop`.
pub struct Load {
    pub start: Instant,
    stop: Arc<AtomicBool>,
    all: Vec<Arc<Mutex<Counts>>>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// Starts the keep-alive workers and, with a rate, the new-connection stream.
    pub fn start(o: &LoadOpts) -> io::Result<Load> {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load {
            start,
            stop,
            all: Vec::new(),
            handles: Vec::new(),
        };
        for i in 0..o.connections {
            load.spawn(format!("load-{i}"), o, worker)?;
        }
        if o.new_conn_rate > 0.0 {
            load.spawn("load-new".into(), o, new_conn_stream)?;
        }
        Ok(load)
    }

    fn spawn(
        &mut self,
        name: String,
        o: &LoadOpts,
        f: fn(LoadOpts, Instant, Arc<AtomicBool>, Arc<Mutex<Counts>>),
    ) -> io::Result<()> {
        let c = Arc::new(Mutex::new(Counts::default()));
        self.all.push(c.clone());
        let (o, stop, start) = (o.clone(), self.stop.clone(), self.start);
        let h = thread::Builder::new()
            .name(name)
            .spawn(move || f(o, start, stop, c))?;
        self.handles.push(h);
        Ok(())
    }

    /// The totals so far.
    pub fn snapshot(&self) -> Counts {
        let mut t = Counts::default();
        for c in &self.all {
            t.add(&c.lock().expect("load counts lock"));
        }
        t
    }

    /// True once every worker has returned.
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Tells the workers to stop after their current request.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the workers (each finishes its current request, bounded by the timeout) and
    /// returns the totals.
    pub fn stop(mut self) -> Counts {
        self.signal_stop();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
