//! baton-ws: WebSocket echo server and client for the tunnel benchmarks.
//!
//!   baton-ws server --listen ADDR
//!       echoes every text/binary message, answers pings, echoes close; a thread per session.
//!   baton-ws client --target ADDR [--sessions N] [--duration-s D] [--interval-ms I] ...
//!       opens N sessions, prints `READY sessions=N` once all are open, then every interval
//!       sends one numbered message on each and checks the echo: same bytes, in order, once.
//!       A session that fails is counted and not reopened (a reconnect would hide what a
//!       restart did). Prints one summary line; `--csv FILE` gets per-second counts and echo
//!       latency percentiles.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use baton_bench::wire::Reader;
use baton_bench::ws::{self, Rng};

const USAGE: &str = "\
USAGE: baton-ws server --listen ADDR
       baton-ws client --target ADDR [options]
  --sessions N      WebSocket sessions to open (default 100)
  --duration-s D    how long to send after all are open (default 10)
  --interval-ms I   one message per session every I ms (default 100)
  --threads T       client threads, sessions spread over them (default 8)
  --path PATH       request target of the upgrade (default /ws)
  --timeout-ms MS   an echo later than this fails its session (default 5000)
  --csv FILE        per-second: second,sent,echoed,failed_sessions,p50_us,p99_us,max_us
";

struct Opts {
    addr: SocketAddr,
    sessions: usize,
    duration: Duration,
    interval: Duration,
    threads: usize,
    path: String,
    timeout: Duration,
    csv: Option<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        sessions: 100,
        duration: Duration::from_secs(10),
        interval: Duration::from_millis(100),
        threads: 8,
        path: "/ws".into(),
        timeout: Duration::from_millis(5000),
        csv: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v:?}: {e}");
        match flag.as_str() {
            "--listen" | "--target" => o.addr = v.parse().map_err(|e| bad(&e))?,
            "--sessions" => o.sessions = v.parse().map_err(|e| bad(&e))?,
            "--duration-s" => o.duration = Duration::from_secs(v.parse().map_err(|e| bad(&e))?),
            "--interval-ms" => o.interval = Duration::from_millis(v.parse().map_err(|e| bad(&e))?),
            "--threads" => o.threads = v.parse::<usize>().map_err(|e| bad(&e))?.max(1),
            "--path" => o.path = v.clone(),
            "--timeout-ms" => o.timeout = Duration::from_millis(v.parse().map_err(|e| bad(&e))?),
            "--csv" => o.csv = Some(v.clone()),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let opts = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("baton-ws: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match mode.as_str() {
        "server" => server(&opts),
        "client" => client(&opts),
        _ => Err(format!("unknown mode {mode:?}")),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("baton-ws: {e}");
            ExitCode::from(2)
        }
    }
}

// ---- server -------------------------------------------------------------------------------

fn server(o: &Opts) -> Result<bool, String> {
    let l = TcpListener::bind(o.addr).map_err(|e| format!("bind {}: {e}", o.addr))?;
    println!(
        "listening on {}",
        l.local_addr().map_err(|e| e.to_string())?
    );
    let _ = io::stdout().flush();
    for s in l.incoming() {
        match s {
            Ok(s) => {
                thread::spawn(move || {
                    let _ = serve(s);
                });
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(true)
}

fn serve(s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut r = Reader::new(s);
    let Some(head) = r.read_request_head()? else {
        return Ok(());
    };
    ws::server_handshake(r.get_mut(), &head)?;
    while let Some(f) = ws::read_frame(&mut r, true)? {
        let reply = match f.opcode {
            ws::OP_TEXT | ws::OP_BINARY => ws::encode(f.opcode, &f.payload, None),
            ws::OP_PING => ws::encode(ws::OP_PONG, &f.payload, None),
            ws::OP_CLOSE => {
                r.get_mut()
                    .write_all(&ws::encode(ws::OP_CLOSE, &f.payload, None))?;
                return Ok(());
            }
            _ => continue,
        };
        r.get_mut().write_all(&reply)?;
    }
    Ok(())
}

// ---- client -------------------------------------------------------------------------------

struct Session {
    id: usize,
    r: Reader<TcpStream>,
    seq: u64,
    alive: bool,
}

/// What one thread saw: per-second counters and latency samples, plus totals.
#[derive(Default)]
struct Tally {
    opened: usize,
    open_failed: usize,
    sent: u64,
    echoed: u64,
    wrong: u64,
    failed_sessions: usize,
    /// (second since start, latency in µs)
    samples: Vec<(u32, u32)>,
    /// second → (sent, echoed, failed sessions)
    per_sec: Vec<(u64, u64, u64)>,
    errors: Vec<String>,
}

impl Tally {
    fn sec(&mut self, s: u32) -> &mut (u64, u64, u64) {
        let s = s as usize;
        if self.per_sec.len() <= s {
            self.per_sec.resize(s + 1, (0, 0, 0));
        }
        &mut self.per_sec[s]
    }
}

fn open(o: &Opts, id: usize, rng: &mut Rng) -> io::Result<Session> {
    let s = TcpStream::connect_timeout(&o.addr, o.timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(o.timeout))?;
    let mut r = Reader::new(s);
    ws::client_handshake(&mut r, &o.addr.to_string(), &o.path, rng)?;
    Ok(Session {
        id,
        r,
        seq: 0,
        alive: true,
    })
}

fn run_thread(o: &Opts, ids: Vec<usize>, ready: &Barrier, start: &Barrier, t0: &Instant) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (ids.first().copied().unwrap_or(0) as u64 + 1));
    let mut sessions = Vec::with_capacity(ids.len());
    for id in ids {
        match open(o, id, &mut rng) {
            Ok(s) => sessions.push(s),
            Err(e) => {
                t.open_failed += 1;
                if t.errors.len() < 5 {
                    t.errors.push(format!("open session {id}: {e}"));
                }
            }
        }
    }
    t.opened = sessions.len();
    ready.wait();
    start.wait();
    let begin = Instant::now();
    let end = begin + o.duration;
    let mut next = begin;
    while Instant::now() < end {
        let round_start = Instant::now();
        let sec = round_start.duration_since(*t0).as_secs() as u32;
        // Write every live session's message, then read every echo.
        let mut sent_at = Vec::with_capacity(sessions.len());
        for s in sessions.iter_mut().filter(|s| s.alive) {
            s.seq += 1;
            let msg = format!("session {} message {}", s.id, s.seq);
            let frame = ws::encode(
                ws::OP_TEXT,
                msg.as_bytes(),
                Some(rng.next_u32().to_be_bytes()),
            );
            match s.r.get_mut().write_all(&frame) {
                Ok(()) => {
                    t.sent += 1;
                    t.sec(sec).0 += 1;
                    sent_at.push((s.id, msg, Instant::now()));
                }
                Err(e) => fail(&mut t, s, sec, format!("write: {e}")),
            }
        }
        let mut pending = sent_at.into_iter();
        for s in sessions.iter_mut().filter(|s| s.alive) {
            let Some((id, msg, at)) = pending.find(|(id, _, _)| *id == s.id) else {
                continue;
            };
            debug_assert_eq!(id, s.id);
            match ws::read_frame(&mut s.r, false) {
                Ok(Some(f)) if f.opcode == ws::OP_TEXT && f.payload == msg.as_bytes() => {
                    let now = Instant::now();
                    let s2 = now.duration_since(*t0).as_secs() as u32;
                    t.echoed += 1;
                    t.sec(s2).1 += 1;
                    let us = now.duration_since(at).as_micros().min(u32::MAX as u128) as u32;
                    t.samples.push((s2, us));
                }
                Ok(Some(f)) => {
                    t.wrong += 1;
                    let got = String::from_utf8_lossy(&f.payload).into_owned();
                    fail(&mut t, s, sec, format!("expected {msg:?}, got {got:?}"));
                }
                Ok(None) => fail(&mut t, s, sec, "closed by the peer".into()),
                Err(e) => fail(&mut t, s, sec, format!("read: {e}")),
            }
        }
        next += o.interval;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    for s in sessions.iter_mut().filter(|s| s.alive) {
        let _ =
            s.r.get_mut()
                .write_all(&ws::encode(ws::OP_CLOSE, &[3, 232], Some([7, 7, 7, 7])));
    }
    t
}

fn fail(t: &mut Tally, s: &mut Session, sec: u32, why: String) {
    s.alive = false;
    t.failed_sessions += 1;
    t.sec(sec).2 += 1;
    if t.errors.len() < 5 {
        t.errors.push(format!("session {}: {why}", s.id));
    }
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn client(o: &Opts) -> Result<bool, String> {
    let n_threads = o.threads.min(o.sessions.max(1));
    let ready = Arc::new(Barrier::new(n_threads + 1));
    let start = Arc::new(Barrier::new(n_threads + 1));
    let t0 = Instant::now();
    let opts = Arc::new(Opts {
        addr: o.addr,
        sessions: o.sessions,
        duration: o.duration,
        interval: o.interval,
        threads: n_threads,
        path: o.path.clone(),
        timeout: o.timeout,
        csv: None,
    });
    let mut handles = Vec::new();
    for k in 0..n_threads {
        let ids: Vec<usize> = (0..o.sessions).filter(|i| i % n_threads == k).collect();
        let (opts, ready, start) = (opts.clone(), ready.clone(), start.clone());
        handles.push(
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || run_thread(&opts, ids, &ready, &start, &t0))
                .map_err(|e| format!("spawn: {e}"))?,
        );
    }
    ready.wait();
    let open_ms = t0.elapsed().as_millis();
    println!("READY sessions={} open_ms={open_ms}", o.sessions);
    let _ = io::stdout().flush();
    start.wait();
    let mut all = Tally::default();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| "a client thread panicked".to_string())?;
        all.opened += t.opened;
        all.open_failed += t.open_failed;
        all.sent += t.sent;
        all.echoed += t.echoed;
        all.wrong += t.wrong;
        all.failed_sessions += t.failed_sessions;
        all.samples.extend(t.samples);
        for (i, c) in t.per_sec.iter().enumerate() {
            let e = all.sec(i as u32);
            e.0 += c.0;
            e.1 += c.1;
            e.2 += c.2;
        }
        all.errors.extend(t.errors);
    }
    let mut lat: Vec<u32> = all.samples.iter().map(|s| s.1).collect();
    lat.sort_unstable();
    println!(
        "sessions={} opened={} open_failed={} failed_sessions={} sent={} echoed={} wrong={} \
         p50_us={} p99_us={} max_us={}",
        o.sessions,
        all.opened,
        all.open_failed,
        all.failed_sessions,
        all.sent,
        all.echoed,
        all.wrong,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    for e in all.errors.iter().take(10) {
        eprintln!("baton-ws: {e}");
    }
    if let Some(path) = &o.csv {
        let mut out = String::from("second,sent,echoed,failed_sessions,p50_us,p99_us,max_us\n");
        for (sec, c) in all.per_sec.iter().enumerate() {
            let mut l: Vec<u32> = all
                .samples
                .iter()
                .filter(|s| s.0 as usize == sec)
                .map(|s| s.1)
                .collect();
            l.sort_unstable();
            out += &format!(
                "{sec},{},{},{},{},{},{}\n",
                c.0,
                c.1,
                c.2,
                pct(&l, 0.5),
                pct(&l, 0.99),
                l.last().copied().unwrap_or(0)
            );
        }
        std::fs::write(path, out).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(all.open_failed == 0 && all.failed_sessions == 0 && all.echoed == all.sent)
}
