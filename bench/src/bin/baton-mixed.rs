//! baton-mixed: the restart-under-load client. Several kinds of clients run at once against a
//! proxy in front of `baton-upstream`, and every request written ends as a success or as a
//! failure of one kind; nothing is retried, silently or otherwise.
//!
//! - fast: keep-alive connections sending `GET /bytes/1024` (body checked byte for byte);
//! - slow: keep-alive connections sending `GET /delay/MS`, MS uniform in 200..=800;
//! - upload: keep-alive connections sending `POST /sink` with a pattern body written in
//!   pieces, the answer's length and checksum checked;
//! - download: long `GET /bytes/N` read at a bounded rate, checksum checked (a broken
//!   download is one that did not arrive complete and intact);
//! - new connections: R per second, one `Connection: close` request each.
//!
//! A keep-alive connection that ends (failure, or `Connection: close` after a complete response)
//! is replaced; each replacement is a "reconnect", the new TCP connections clients had to open.
//! `--series FILE` writes per-second counts (CSV) for the plots. Exit status 0 when nothing
//! failed.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton_bench::load::{failure_kind, KINDS};
use baton_bench::pattern::{self, Fnv};
use baton_bench::wire::{response_framing, Reader};

const USAGE: &str = "\
USAGE: baton-mixed [options]
  --target ADDR:PORT         proxy to load (default 127.0.0.1:10000)
  --duration-s N             run time; requests in flight at the end finish (default 20)
  --fast N                   keep-alive GET /bytes/1024 connections (default 32)
  --fast-interval-ms N       pause between a fast connection's requests (default 5)
  --slow N                   keep-alive GET /delay/200..800 connections (default 8)
  --upload N                 keep-alive POST /sink connections (default 4)
  --upload-bytes N           body size of an upload (default 262144)
  --download N               concurrent long downloads (default 2)
  --download-bytes N         size of one download (default 33554432)
  --download-rate B          bytes per second a download is read at (default 4194304)
  --new-conn-rate R          one-request connections opened per second (default 20)
  --timeout-ms N             per read/write timeout (default 5000)
  --series FILE              per-second CSV: second,ok,failed,<kinds>,reconnects
";

/// Failure counters come first, in `KINDS` order (also the CSV columns).
const CLOSED: usize = 1;
const NON2XX: usize = 3;
const WRONG_BODY: usize = 4;
const BAD_RESPONSE: usize = 5;
const CONNECT: usize = 6;
const OK: usize = KINDS.len();
const RECONNECTS: usize = OK + 1;
const SENT: usize = OK + 2;
const NEW_CONNS: usize = OK + 3;
const DL_OK: usize = OK + 4;
const DL_BROKEN: usize = OK + 5;
/// Failures "closed" with no response byte on a reused connection: a client may retry these.
const CLOSED_IDLE: usize = OK + 6;
const N: usize = OK + 7;

#[derive(Default)]
struct Stats([AtomicU64; N]);

impl Stats {
    fn add(&self, i: usize) {
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::Relaxed)
    }
    fn snapshot(&self) -> [u64; N] {
        std::array::from_fn(|i| self.get(i))
    }
}

#[derive(Clone)]
struct Opts {
    target: SocketAddr,
    duration: Duration,
    fast: usize,
    fast_interval: Duration,
    slow: usize,
    upload: usize,
    upload_bytes: u64,
    download: usize,
    download_bytes: u64,
    download_rate: u64,
    new_conn_rate: f64,
    timeout: Duration,
    series: Option<String>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        target: "127.0.0.1:10000".parse().unwrap(),
        duration: Duration::from_secs(20),
        fast: 32,
        fast_interval: Duration::from_millis(5),
        slow: 8,
        upload: 4,
        upload_bytes: 256 * 1024,
        download: 2,
        download_bytes: 32 << 20,
        download_rate: 4 << 20,
        new_conn_rate: 20.0,
        timeout: Duration::from_millis(5000),
        series: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v:?}: {e}");
        let num = |v: &str| v.parse::<u64>().map_err(|e| bad(&e));
        match flag.as_str() {
            "--target" => o.target = v.parse().map_err(|e| bad(&e))?,
            "--duration-s" => o.duration = Duration::from_secs(num(&v)?),
            "--fast" => o.fast = num(&v)? as usize,
            "--fast-interval-ms" => o.fast_interval = Duration::from_millis(num(&v)?),
            "--slow" => o.slow = num(&v)? as usize,
            "--upload" => o.upload = num(&v)? as usize,
            "--upload-bytes" => o.upload_bytes = num(&v)?,
            "--download" => o.download = num(&v)? as usize,
            "--download-bytes" => o.download_bytes = num(&v)?,
            "--download-rate" => o.download_rate = num(&v)?.max(1),
            "--new-conn-rate" => o.new_conn_rate = v.parse().map_err(|e| bad(&e))?,
            "--timeout-ms" => o.timeout = Duration::from_millis(num(&v)?),
            "--series" => o.series = Some(v),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(o)
}

fn kind_of(e: &io::Error) -> usize {
    let k = failure_kind(e);
    KINDS.iter().position(|x| *x == k).expect("known kind")
}

struct Conn {
    stream: TcpStream,
    reader: Reader<TcpStream>,
    /// Requests completed on it (a failure on a reused connection may be an idle close).
    used: u64,
}

fn connect(o: &Opts) -> io::Result<Conn> {
    let (stream, reader) = baton_bench::load::open_conn(&o.target, o.timeout)?;
    Ok(Conn {
        reader,
        stream,
        used: 0,
    })
}

/// What a request is and how its response is judged.
enum Job {
    Get { path: String, expect: Expect },
    Upload { bytes: u64 },
    Download { bytes: u64, rate: u64 },
}

enum Expect {
    Pattern(u64),
    Exact(Vec<u8>),
}

/// Outcome of one request on a connection.
enum Outcome {
    /// Success; whether the connection may carry another request.
    Ok(bool),
    /// Failure of a kind; the connection is finished.
    Failed(usize),
}

fn run_job(conn: &mut Conn, job: &Job, close: bool, st: &Stats) -> Outcome {
    st.add(SENT);
    let conn_hdr = if close { "Connection: close\r\n" } else { "" };
    let sent = match job {
        Job::Get { path, .. } => {
            let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{conn_hdr}\r\n");
            conn.stream.write_all(req.as_bytes())
        }
        Job::Download { bytes, .. } => {
            let req = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: bench\r\n{conn_hdr}\r\n");
            conn.stream.write_all(req.as_bytes())
        }
        Job::Upload { bytes } => write_upload(&mut conn.stream, *bytes, conn_hdr),
    };
    if let Err(e) = sent {
        return Outcome::Failed(kind_of(&e));
    }
    let head = match conn.reader.read_response_head() {
        Ok(Some(h)) => h,
        Ok(None) => {
            if conn.used > 0 {
                st.add(CLOSED_IDLE);
            }
            return Outcome::Failed(CLOSED);
        }
        Err(e) => return Outcome::Failed(kind_of(&e)),
    };
    let framing = match response_framing(&head, false) {
        Ok(f) => f,
        Err(_) => return Outcome::Failed(BAD_RESPONSE),
    };
    let mut fnv = Fnv::default();
    let mut body = Vec::new();
    let started = Instant::now();
    let mut got = 0u64;
    let is_download = matches!(job, Job::Download { .. });
    let rate = match job {
        Job::Download { rate, .. } => *rate,
        _ => 0,
    };
    let read = conn.reader.read_body(framing, &mut |b| {
        fnv.update(b);
        if !is_download && body.len() < 1 << 20 {
            body.extend_from_slice(b);
        }
        got += b.len() as u64;
        if rate > 0 {
            // Hold the reader back to `rate` bytes per second.
            let due = Duration::from_secs_f64(got as f64 / rate as f64);
            let spent = started.elapsed();
            if due > spent {
                thread::sleep(due - spent);
            }
        }
    });
    if let Err(e) = read {
        return Outcome::Failed(kind_of(&e));
    }
    if !(200..300).contains(&head.status) {
        return Outcome::Failed(NON2XX);
    }
    let right = match job {
        Job::Get {
            expect: Expect::Pattern(n),
            ..
        } => got == *n && fnv.finish() == pattern::pattern_checksum(*n),
        Job::Get {
            expect: Expect::Exact(want),
            ..
        } => body == *want,
        Job::Upload { bytes } => {
            body == format!(
                "len={bytes} fnv={:016x}\n",
                pattern::pattern_checksum(*bytes)
            )
            .as_bytes()
        }
        Job::Download { bytes, .. } => {
            got == *bytes && fnv.finish() == pattern::pattern_checksum(*bytes)
        }
    };
    if !right {
        return Outcome::Failed(WRONG_BODY);
    }
    conn.used += 1;
    let keep = head.version == 1 && !head.has_token("connection", "close") && !close;
    Outcome::Ok(keep)
}

/// Writes a `POST /sink` with `bytes` of pattern body in 16 KiB pieces, 2 ms apart, so an
/// upload is in flight for a while.
fn write_upload(s: &mut TcpStream, bytes: u64, conn_hdr: &str) -> io::Result<()> {
    let head =
        format!("POST /sink HTTP/1.1\r\nHost: bench\r\nContent-Length: {bytes}\r\n{conn_hdr}\r\n");
    s.write_all(head.as_bytes())?;
    let block = pattern::block(26 * 630);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        s.write_all(&block[..n])?;
        left -= n as u64;
        if left > 0 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

/// Tiny xorshift: the slow delays need spread, not quality.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy)]
enum Role {
    Fast,
    Slow,
    Upload,
    Download,
}

/// A keep-alive client of one role: one connection at a time, replaced when it ends.
fn worker(role: Role, seed: u64, o: Opts, end: Instant, st: Arc<Stats>) {
    let mut rng = Rng(seed | 1);
    let mut conn: Option<Conn> = None;
    let mut first = true;
    while Instant::now() < end {
        if conn.is_none() {
            match connect(&o) {
                Ok(c) => {
                    if !first {
                        st.add(RECONNECTS);
                    }
                    first = false;
                    conn = Some(c);
                }
                Err(_) => {
                    st.add(SENT);
                    st.add(CONNECT);
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let job = match role {
            Role::Fast => Job::Get {
                path: "/bytes/1024".into(),
                expect: Expect::Pattern(1024),
            },
            Role::Slow => {
                let ms = 200 + rng.next() % 601;
                Job::Get {
                    path: format!("/delay/{ms}"),
                    expect: Expect::Exact(format!("delay {ms}\n").into_bytes()),
                }
            }
            Role::Upload => Job::Upload {
                bytes: o.upload_bytes,
            },
            Role::Download => Job::Download {
                bytes: o.download_bytes,
                rate: o.download_rate,
            },
        };
        let c = conn.as_mut().expect("connected");
        match run_job(c, &job, false, &st) {
            Outcome::Ok(keep) => {
                st.add(OK);
                if matches!(role, Role::Download) {
                    st.add(DL_OK);
                }
                if !keep {
                    conn = None;
                }
            }
            Outcome::Failed(k) => {
                st.add(k);
                if matches!(role, Role::Download) {
                    st.add(DL_BROKEN);
                }
                conn = None;
            }
        }
        if matches!(role, Role::Fast) && !o.fast_interval.is_zero() {
            thread::sleep(o.fast_interval);
        }
    }
}

/// Opens `rate` connections per second, one `Connection: close` request each.
fn new_conns(o: Opts, end: Instant, st: Arc<Stats>) {
    let interval = Duration::from_secs_f64(1.0 / o.new_conn_rate);
    let mut next = Instant::now();
    let job = Job::Get {
        path: "/bytes/1024".into(),
        expect: Expect::Pattern(1024),
    };
    while Instant::now() < end {
        let now = Instant::now();
        if now < next {
            thread::sleep(next - now);
            continue;
        }
        next += interval;
        match connect(&o) {
            Ok(mut c) => {
                st.add(NEW_CONNS);
                match run_job(&mut c, &job, true, &st) {
                    Outcome::Ok(_) => st.add(OK),
                    Outcome::Failed(k) => st.add(k),
                }
            }
            Err(_) => {
                st.add(SENT);
                st.add(CONNECT);
            }
        }
    }
}

fn failed(s: &[u64; N]) -> u64 {
    s[..OK].iter().sum()
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("baton-mixed: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t0_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let start = Instant::now();
    let end = start + o.duration;
    let st = Arc::new(Stats::default());
    let mut handles = Vec::new();
    let roles = [
        (Role::Fast, o.fast),
        (Role::Slow, o.slow),
        (Role::Upload, o.upload),
        (Role::Download, o.download),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (role, n) in roles {
        for _ in 0..n {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let (o, st) = (o.clone(), st.clone());
            let h = thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || worker(role, seed, o, end, st));
            handles.extend(h.ok());
        }
    }
    if o.new_conn_rate > 0.0 {
        let (o, st) = (o.clone(), st.clone());
        handles.push(thread::spawn(move || new_conns(o, end, st)));
    }
    println!(
        "baton-mixed: {} fast + {} slow + {} upload + {} download keep-alive clients, {}/s new \
         connections, to {} for {} s",
        o.fast,
        o.slow,
        o.upload,
        o.download,
        o.new_conn_rate,
        o.target,
        o.duration.as_secs()
    );
    let mut csv = String::from("# t0_unix_ms=");
    csv.push_str(&format!("{t0_ms}\nsecond,ok,failed"));
    for k in KINDS {
        csv.push(',');
        csv.push_str(k);
    }
    csv.push_str(",reconnects\n");
    let mut prev = [0u64; N];
    let mut second = 0u64;
    // Requests in flight at the end finish; a download still running is bounded by its size
    // and rate, everything else by the timeout.
    let dl_time = Duration::from_secs_f64(o.download_bytes as f64 / o.download_rate as f64);
    let hard_end = end + o.timeout * 2 + dl_time + Duration::from_secs(2);
    while handles.iter().any(|h| !h.is_finished()) && Instant::now() < hard_end {
        thread::sleep(Duration::from_millis(20));
        if start.elapsed().as_secs() > second {
            let s = st.snapshot();
            let d: Vec<u64> = (0..N).map(|i| s[i] - prev[i]).collect();
            csv.push_str(&format!(
                "{},{},{}",
                second,
                d[OK],
                failed(&s) - failed(&prev)
            ));
            for v in &d[..OK] {
                csv.push_str(&format!(",{v}"));
            }
            csv.push_str(&format!(",{}\n", d[RECONNECTS]));
            println!(
                "[{:>3}s] ok={} failed={} reconnects={}",
                second + 1,
                d[OK],
                failed(&s) - failed(&prev),
                d[RECONNECTS]
            );
            prev = s;
            second += 1;
        }
    }
    let stuck = handles.iter().filter(|h| !h.is_finished()).count();
    let s = st.snapshot();
    if let Some(path) = &o.series {
        if let Err(e) = std::fs::write(path, &csv) {
            eprintln!("baton-mixed: {path}: {e}");
        }
    }
    let kinds: Vec<String> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k}={}", s[i]))
        .collect();
    println!(
        "---- summary ({:.1} s, target {}) ----",
        start.elapsed().as_secs_f64(),
        o.target
    );
    println!(
        "requests: sent={} ok={} failed={} ({}); closed before any response byte on a reused \
         connection: {}",
        s[SENT],
        s[OK],
        failed(&s),
        kinds.join(" "),
        s[CLOSED_IDLE]
    );
    println!(
        "reconnects (new TCP connections keep-alive clients had to open): {}; one-request \
         connections: {}; downloads complete={} broken={}; clients still running at exit: {stuck}",
        s[RECONNECTS], s[NEW_CONNS], s[DL_OK], s[DL_BROKEN]
    );
    println!(
        "RESULT sent={} ok={} failed={} {} closed_idle={} reconnects={} new_conns={} \
         downloads_ok={} downloads_broken={} stuck={stuck}",
        s[SENT],
        s[OK],
        failed(&s),
        kinds.join(" "),
        s[CLOSED_IDLE],
        s[RECONNECTS],
        s[NEW_CONNS],
        s[DL_OK],
        s[DL_BROKEN]
    );
    if failed(&s) == 0 && s[OK] > 0 && stuck == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
