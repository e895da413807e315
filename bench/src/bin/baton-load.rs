//! baton-load: a load client that counts honestly. Every request written is either a success
//! (complete response, 2xx, expected body) or a failure of one kind; nothing is retried
//! silently. A connection the server closes after a complete response (`Connection: close`)
//! is not a failure: the client reconnects and counts the new connection.
//!
//! Per-second lines show which upstream served (the `NAME` of a `hello from NAME` body), so a
//! hot restart from v1 to v2 is visible. Exit status: 0 when no request failed, 1 otherwise.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use baton_bench::wire::{read_response, Reader};

const USAGE: &str = "\
USAGE: baton-load [options]
  --target ADDR:PORT            where to send requests (default 127.0.0.1:10000)
  --connections N               keep-alive connections (default 32)
  --duration-s N                run time in seconds (default 10)
  --new-conn-rate R             extra one-request connections opened per second (default 0)
  --path PATH                   request target (default /)
  --expect-body-contains TEXT   a 2xx body without TEXT is a failure (wrong body)
  --timeout-ms N                per-read/write timeout (default 5000)
  --quiet                       no per-second lines
";

const KINDS: [&str; 7] = [
    "reset",
    "closed",
    "timeout",
    "non2xx",
    "wrong_body",
    "bad_response",
    "connect",
];

#[derive(Clone)]
struct Opts {
    target: SocketAddr,
    host: String,
    connections: usize,
    duration: Duration,
    new_conn_rate: f64,
    path: String,
    expect: Option<String>,
    timeout: Duration,
    quiet: bool,
}

/// One worker's counts; only its worker and the reporter lock it.
#[derive(Default, Clone)]
struct Counts {
    sent: u64,
    ok: u64,
    failed: [u64; KINDS.len()],
    new_conns: u64,
    /// (second, upstream name) → successful responses.
    served: BTreeMap<(u64, String), u64>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.ok += o.ok;
        for (a, b) in self.failed.iter_mut().zip(o.failed.iter()) {
            *a += b;
        }
        self.new_conns += o.new_conns;
        for (k, v) in &o.served {
            *self.served.entry(k.clone()).or_default() += v;
        }
    }

    fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    fn fail(&mut self, kind: &str) {
        let i = KINDS.iter().position(|k| *k == kind).expect("known kind");
        self.failed[i] += 1;
    }
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        target: "127.0.0.1:10000".parse().unwrap(),
        host: "127.0.0.1:10000".into(),
        connections: 32,
        duration: Duration::from_secs(10),
        new_conn_rate: 0.0,
        path: "/".into(),
        expect: None,
        timeout: Duration::from_millis(5000),
        quiet: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--quiet" => {
                o.quiet = true;
                continue;
            }
            _ => {}
        }
        let v = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v:?}: {e}");
        match flag.as_str() {
            "--target" => {
                o.target = v
                    .to_socket_addrs()
                    .map_err(|e| bad(&e))?
                    .next()
                    .ok_or_else(|| bad(&"no address"))?;
                o.host = v.clone();
            }
            "--connections" => o.connections = v.parse().map_err(|e| bad(&e))?,
            "--duration-s" => o.duration = Duration::from_secs_f64(v.parse().map_err(|e| bad(&e))?),
            "--new-conn-rate" => o.new_conn_rate = v.parse().map_err(|e| bad(&e))?,
            "--path" => o.path = v,
            "--expect-body-contains" => o.expect = Some(v),
            "--timeout-ms" => o.timeout = Duration::from_millis(v.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(o)
}

/// The upstream that served a `hello from NAME (...)` body, else "-".
fn upstream_name(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.strip_prefix("hello from ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("-")
        .to_string()
}

fn failure_kind(e: &io::Error) -> &'static str {
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

fn connect(o: &Opts) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&o.target, o.timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(o.timeout))?;
    stream.set_write_timeout(Some(o.timeout))?;
    Ok(Conn {
        reader: Reader::new(stream.try_clone()?),
        stream,
    })
}

/// Sends one request on `conn` and classifies the outcome. Returns whether the connection can
/// carry another request.
fn exchange(conn: &mut Conn, o: &Opts, close: bool, second: u64, c: &Arc<Mutex<Counts>>) -> bool {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: baton-load\r\n{}\r\n",
        o.path,
        o.host,
        if close { "Connection: close\r\n" } else { "" }
    );
    c.lock().unwrap().sent += 1;
    if let Err(e) = conn.stream.write_all(req.as_bytes()) {
        c.lock().unwrap().fail(failure_kind(&e));
        return false;
    }
    let resp = match read_response(&mut conn.reader, false) {
        Ok(Some(r)) => r,
        Ok(None) => {
            c.lock().unwrap().fail("closed");
            return false;
        }
        Err(e) => {
            c.lock().unwrap().fail(failure_kind(&e));
            return false;
        }
    };
    let mut g = c.lock().unwrap();
    if !(200..300).contains(&resp.status()) {
        g.fail("non2xx");
    } else if o
        .expect
        .as_ref()
        .is_some_and(|t| !resp.body_str().contains(t.as_str()))
    {
        g.fail("wrong_body");
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
fn worker(o: Opts, start: Instant, stop: Arc<AtomicBool>, c: Arc<Mutex<Counts>>) {
    let deadline = start + o.duration;
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match connect(&o) {
                Ok(k) => {
                    c.lock().unwrap().new_conns += 1;
                    conn = Some(k);
                }
                Err(_) => {
                    c.lock().unwrap().fail("connect");
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
    }
}

/// Opens `rate` new connections per second, one `Connection: close` request each.
fn new_conn_stream(o: Opts, start: Instant, stop: Arc<AtomicBool>, c: Arc<Mutex<Counts>>) {
    let interval = Duration::from_secs_f64(1.0 / o.new_conn_rate);
    let deadline = start + o.duration;
    let mut next = Instant::now();
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            thread::sleep(next - now);
            continue;
        }
        next += interval;
        match connect(&o) {
            Ok(mut k) => {
                c.lock().unwrap().new_conns += 1;
                exchange(&mut k, &o, true, start.elapsed().as_secs(), &c);
            }
            Err(_) => c.lock().unwrap().fail("connect"),
        }
    }
}

fn total(all: &[Arc<Mutex<Counts>>]) -> Counts {
    let mut t = Counts::default();
    for c in all {
        t.add(&c.lock().unwrap());
    }
    t
}

fn served_in(t: &Counts, second: u64) -> String {
    let parts: Vec<String> = t
        .served
        .iter()
        .filter(|((s, _), _)| *s == second)
        .map(|((_, n), v)| format!("{n}={v}"))
        .collect();
    parts.join(" ")
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if e.is_empty() {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("baton-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "baton-load: {} keep-alive connections + {}/s new connections to {} for {:.1}s, GET {}",
        o.connections,
        o.new_conn_rate,
        o.target,
        o.duration.as_secs_f64(),
        o.path
    );
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut all = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..o.connections {
        let c = Arc::new(Mutex::new(Counts::default()));
        all.push(c.clone());
        let (o, stop) = (o.clone(), stop.clone());
        handles.push(thread::spawn(move || worker(o, start, stop, c)));
    }
    if o.new_conn_rate > 0.0 {
        let c = Arc::new(Mutex::new(Counts::default()));
        all.push(c.clone());
        let (o, stop) = (o.clone(), stop.clone());
        handles.push(thread::spawn(move || new_conn_stream(o, start, stop, c)));
    }
    let mut prev = Counts::default();
    let mut second = 0;
    while handles.iter().any(|h| !h.is_finished()) {
        thread::sleep(Duration::from_millis(50));
        if start.elapsed().as_secs() > second {
            let t = total(&all);
            if !o.quiet {
                println!(
                    "[{:>3}s] ok={} failed={} new_conns={} | {}",
                    second + 1,
                    t.ok - prev.ok,
                    t.failed_total() - prev.failed_total(),
                    t.new_conns - prev.new_conns,
                    served_in(&t, second)
                );
            }
            prev = t;
            second += 1;
        }
        // Workers stop at the deadline; a worker stuck in a read is bounded by the timeout.
        if start.elapsed() > o.duration + o.timeout * 2 + Duration::from_secs(1) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    for h in handles {
        let _ = h.join();
    }
    summarize(&o, &total(&all), start.elapsed())
}

fn summarize(o: &Opts, t: &Counts, elapsed: Duration) -> ExitCode {
    let kinds: Vec<String> = KINDS
        .iter()
        .zip(t.failed.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut by_name: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for ((s, n), v) in &t.served {
        let e = by_name.entry(n).or_insert((0, *s, *s));
        e.0 += v;
        e.1 = e.1.min(*s);
        e.2 = e.2.max(*s);
    }
    println!(
        "---- summary ({:.1}s, target {}) ----",
        elapsed.as_secs_f64(),
        o.target
    );
    println!(
        "requests: sent={} ok={} failed={} ({})",
        t.sent,
        t.ok,
        t.failed_total(),
        kinds.join(" ")
    );
    println!(
        "new connections opened: {}; rate: {:.0} ok/s",
        t.new_conns,
        t.ok as f64 / elapsed.as_secs_f64().max(0.001)
    );
    for (n, (count, first, last)) in &by_name {
        println!(
            "served by {n}: {count} responses (seconds {}..{})",
            first + 1,
            last + 1
        );
    }
    println!(
        "RESULT sent={} ok={} failed={} new_connections={}",
        t.sent,
        t.ok,
        t.failed_total(),
        t.new_conns
    );
    if t.failed_total() == 0 && t.ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
