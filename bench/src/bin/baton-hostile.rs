//! baton-hostile: misbehaving clients for the soak benchmark. One mode per process, every mode
//! bounded in run time (`--duration-s`) and in connections (open at once, and per second), and
//! loopback targets only. Nothing it sees is a failure: it counts what it did and how the proxy
//! answered, prints `RESULT mode=... connections=N ...` and exits 0.
//!
//! - `slowloris N`: N connections, each writing a request head one byte per `--byte-interval-ms`
//!   (1 s); a connection the proxy answers (e.g. `408` after `request_headers_timeout`) or
//!   closes is replaced by a new one.
//! - `flood`: new connections opened and closed at once, `--rate` per second.
//! - `noread`: `--connections` connections, each pipelining `--pipeline` requests for
//!   `--path` and never reading; each is closed after `--hold-s` and replaced.
//! - `reset`: `--rate` connections per second, each sending one request and closing with RST
//!   (`SO_LINGER` 0), every other one after waiting 20 ms (mid-response).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
USAGE: baton-hostile --target ADDR:PORT [options] MODE
MODE:
  slowloris N        N connections (at most 5000) dribbling a request head
  flood              connections opened and closed at once, --rate per second
  noread             --connections connections pipelining requests, never reading
  reset              --rate connections per second: one request, then close with RST
options:
  --target ADDR:PORT        a loopback address (127.0.0.0/8 or ::1) (required)
  --duration-s N            run time (default 10, at most 86400)
  --rate R                  flood/reset: connections per second (default 200; at most 2000)
  --connections N           noread: connections at once (default 16; at most 1000)
  --pipeline N              noread: requests written on each connection (default 64)
  --path PATH               noread/reset: request path (default /bytes/65536)
  --hold-s N                noread: seconds a connection is held (default 5)
  --byte-interval-ms N      slowloris: pause between bytes (default 1000)
";

const HEAD: &[u8] =
    b"GET /bytes/16 HTTP/1.1\r\nHost: soak\r\nUser-Agent: slowloris\r\nX-Slow: 1\r\n\r\n";

struct Opts {
    target: SocketAddr,
    mode: String,
    n: usize,
    duration: Duration,
    rate: f64,
    connections: usize,
    pipeline: usize,
    path: String,
    hold: Duration,
    byte_interval: Duration,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        target: "127.0.0.1:10000".parse().expect("literal"),
        mode: String::new(),
        n: 0,
        duration: Duration::from_secs(10),
        rate: 200.0,
        connections: 16,
        pipeline: 64,
        path: "/bytes/65536".into(),
        hold: Duration::from_secs(5),
        byte_interval: Duration::from_millis(1000),
    };
    let mut target = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        if !a.starts_with("--") {
            o.mode = a;
            if o.mode == "slowloris" {
                let v = args.next().ok_or("slowloris needs N")?;
                o.n = v.parse().map_err(|e| format!("slowloris {v:?}: {e}"))?;
            }
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a} {v:?}: {e}");
        let num = |v: &str| v.parse::<u64>().map_err(|e| bad(&e));
        match a.as_str() {
            "--target" => target = Some(v.parse::<SocketAddr>().map_err(|e| bad(&e))?),
            "--duration-s" => o.duration = Duration::from_secs(num(&v)?.min(86_400)),
            "--rate" => o.rate = v.parse::<f64>().map_err(|e| bad(&e))?.clamp(0.1, 2000.0),
            "--connections" => o.connections = (num(&v)? as usize).min(1000),
            "--pipeline" => o.pipeline = (num(&v)? as usize).clamp(1, 10_000),
            "--path" => o.path = v,
            "--hold-s" => o.hold = Duration::from_secs(num(&v)?),
            "--byte-interval-ms" => o.byte_interval = Duration::from_millis(num(&v)?.max(1)),
            _ => return Err(format!("unknown flag {a:?}")),
        }
    }
    o.target = target.ok_or("--target is required")?;
    if !o.target.ip().is_loopback() {
        return Err(format!("{}: only loopback targets", o.target));
    }
    if !matches!(o.mode.as_str(), "slowloris" | "flood" | "noread" | "reset") {
        return Err(format!("unknown mode {:?}", o.mode));
    }
    o.n = o.n.min(5000);
    Ok(o)
}

/// Counters printed on the RESULT line, in order.
#[derive(Default)]
struct Counts(Vec<(&'static str, u64)>);

impl Counts {
    fn add(&mut self, k: &'static str, v: u64) {
        match self.0.iter_mut().find(|(n, _)| *n == k) {
            Some((_, c)) => *c += v,
            None => self.0.push((k, v)),
        }
    }
    fn line(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn connect(o: &Opts) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&o.target, Duration::from_secs(2))
}

/// Close with RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a properly sized, initialised option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Sleeps until `t`, never past `end`.
fn sleep_until(t: Instant, end: Instant) {
    let now = Instant::now();
    let t = t.min(end);
    if t > now {
        thread::sleep(t - now);
    }
}

struct Slow {
    s: TcpStream,
    sent: usize,
    got: Vec<u8>,
}

/// What a slow connection's reader saw: `None` while nothing conclusive arrived.
fn slow_poll(c: &mut Slow) -> Option<&'static str> {
    let mut buf = [0u8; 4096];
    loop {
        match c.s.read(&mut buf) {
            Ok(0) => {
                return Some(if c.got.is_empty() {
                    "closed_unanswered"
                } else {
                    status_kind(&c.got)
                })
            }
            Ok(n) => {
                c.got.extend_from_slice(&buf[..n]);
                if c.got.len() > 64 * 1024 {
                    c.got.truncate(64 * 1024);
                }
                if c.got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return Some(status_kind(&c.got));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Some("reset_by_proxy"),
        }
    }
}

fn status_kind(resp: &[u8]) -> &'static str {
    match resp.get(9..12) {
        Some(b"408") => "answered_408",
        Some([b'2', _, _]) => "answered_2xx",
        Some([b'4', _, _]) => "answered_4xx",
        Some([b'5', _, _]) => "answered_5xx",
        _ => "answered_other",
    }
}

fn slowloris(o: &Opts, end: Instant, c: &mut Counts) {
    let mut conns: Vec<Option<Slow>> = (0..o.n).map(|_| None).collect();
    let mut tick = Instant::now();
    // At most 100 connections open per tick, as a real attack ramps up.
    while Instant::now() < end {
        let mut budget = 100usize;
        for slot in conns.iter_mut() {
            if slot.is_none() {
                if budget == 0 {
                    continue;
                }
                budget -= 1;
                match connect(o) {
                    Ok(s) => {
                        let _ = s.set_nonblocking(true);
                        let _ = s.set_nodelay(true);
                        c.add("connections", 1);
                        *slot = Some(Slow {
                            s,
                            sent: 0,
                            got: Vec::new(),
                        });
                    }
                    Err(_) => c.add("connect_errors", 1),
                }
                continue;
            }
            let conn = slot.as_mut().expect("checked");
            if let Some(kind) = slow_poll(conn) {
                c.add(kind, 1);
                *slot = None;
                continue;
            }
            if conn.sent < HEAD.len() {
                match conn.s.write(&HEAD[conn.sent..conn.sent + 1]) {
                    Ok(_) => {
                        conn.sent += 1;
                        if conn.sent == HEAD.len() {
                            c.add("heads_completed", 1);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        c.add("reset_by_proxy", 1);
                        *slot = None;
                    }
                }
            }
        }
        tick += o.byte_interval;
        sleep_until(tick, end);
    }
    let open = conns.iter().filter(|s| s.is_some()).count();
    c.add("open_at_end", open as u64);
}

fn flood(o: &Opts, end: Instant, c: &mut Counts) {
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let mut next = Instant::now();
    while Instant::now() < end {
        match connect(o) {
            Ok(s) => {
                c.add("connections", 1);
                drop(s);
            }
            Err(_) => c.add("connect_errors", 1),
        }
        next += interval;
        if next < Instant::now() {
            next = Instant::now(); // behind: no burst to catch up
        }
        sleep_until(next, end);
    }
}

fn noread(o: &Opts, end: Instant, c: &mut Counts) {
    let one = format!("GET {} HTTP/1.1\r\nHost: soak\r\n\r\n", o.path);
    let burst = one.repeat(o.pipeline);
    let mut conns: Vec<Option<(TcpStream, Instant)>> = (0..o.connections).map(|_| None).collect();
    while Instant::now() < end {
        for slot in conns.iter_mut() {
            if let Some((_, since)) = slot {
                if since.elapsed() >= o.hold {
                    // Closed with the proxy's answers unread: the kernel sends RST.
                    *slot = None;
                    c.add("closed_by_client", 1);
                }
                continue;
            }
            match connect(o) {
                Ok(mut s) => {
                    c.add("connections", 1);
                    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                    match s.write_all(burst.as_bytes()) {
                        Ok(()) => c.add("requests_written", o.pipeline as u64),
                        Err(_) => c.add("write_stalled_or_failed", 1),
                    }
                    *slot = Some((s, Instant::now()));
                }
                Err(_) => c.add("connect_errors", 1),
            }
        }
        sleep_until(Instant::now() + Duration::from_millis(100), end);
    }
}

fn reset(o: &Opts, end: Instant, c: &mut Counts) {
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let req = format!("GET {} HTTP/1.1\r\nHost: soak\r\n\r\n", o.path);
    let mut next = Instant::now();
    let mut i = 0u64;
    while Instant::now() < end {
        match connect(o) {
            Ok(mut s) => {
                c.add("connections", 1);
                set_linger_zero(&s);
                if s.write_all(req.as_bytes()).is_err() {
                    c.add("write_failed", 1);
                }
                if i % 2 == 1 {
                    thread::sleep(Duration::from_millis(20));
                    c.add("reset_mid_response", 1);
                } else {
                    c.add("reset_after_request", 1);
                }
                drop(s);
            }
            Err(_) => c.add("connect_errors", 1),
        }
        i += 1;
        next += interval;
        if next < Instant::now() {
            next = Instant::now();
        }
        sleep_until(next, end);
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("baton-hostile: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let end = start + o.duration;
    let mut c = Counts::default();
    c.add("connections", 0);
    match o.mode.as_str() {
        "slowloris" => slowloris(&o, end, &mut c),
        "flood" => flood(&o, end, &mut c),
        "noread" => noread(&o, end, &mut c),
        _ => reset(&o, end, &mut c),
    }
    let _ = io::stdout().flush();
    println!(
        "RESULT mode={} seconds={:.1} {}",
        o.mode,
        start.elapsed().as_secs_f64(),
        c.line()
    );
    ExitCode::SUCCESS
}
