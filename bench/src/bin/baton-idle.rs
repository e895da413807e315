//! baton-idle: holds many idle keep-alive connections to a proxy, for the memory and handover
//! benchmarks. It opens N connections, sends one `GET PATH` on each (so every connection has
//! carried a request and the proxy has seen it end), prints `READY ok=.. failed=..`, then waits.
//! Each `check` line on stdin sends one more request on every connection and prints
//! `CHECK ok=.. failed=..` (after a hot restart: did every moved connection survive?).
//! `quit` or end of input exits; so does `--hold-s`, whatever happens.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use baton_bench::wire::{read_response, Reader};

const USAGE: &str = "\
USAGE: baton-idle --target ADDR:PORT [--connections N] [--path PATH] [--hold-s N]
  --connections N   idle keep-alive connections to hold (default 1000)
  --path PATH       request sent on each (default /)
  --hold-s N        exit after N seconds whatever happens (default 120)
";

/// One descriptor per connection (no `try_clone`): 10,000 of them fit a 20,000 limit.
struct Conn {
    reader: Reader<TcpStream>,
}

fn parse() -> Result<(SocketAddr, usize, String, u64), String> {
    let (mut target, mut n, mut path, mut hold) = (None, 1000usize, "/".to_string(), 120u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v:?}: {e}");
        match flag.as_str() {
            "--target" => target = Some(v.parse().map_err(|e| bad(&e))?),
            "--connections" => n = v.parse().map_err(|e| bad(&e))?,
            "--path" => path = v,
            "--hold-s" => hold = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok((target.ok_or("--target is required")?, n, path, hold))
}

/// Requests in flight at once: a proxy's upstream limits (Envoy's default circuit breakers
/// allow 1,024 pending requests) are not what this measures.
const BATCH: usize = 256;

/// One request on every live connection, `BATCH` connections at a time: their requests
/// written first, then their answers read. Failed connections are dropped.
fn round(conns: &mut Vec<Conn>, path: &str) -> (usize, usize) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut alive = vec![true; conns.len()];
    for (cs, al) in conns.chunks_mut(BATCH).zip(alive.chunks_mut(BATCH)) {
        for (c, a) in cs.iter_mut().zip(al.iter_mut()) {
            *a = c.reader.get_mut().write_all(req.as_bytes()).is_ok();
        }
        for (c, a) in cs.iter_mut().zip(al.iter_mut()) {
            if *a {
                *a =
                    matches!(read_response(&mut c.reader, false), Ok(Some(r)) if r.status() == 200);
            }
        }
    }
    let ok = alive.iter().filter(|a| **a).count();
    let mut it = alive.iter();
    conns.retain(|_| *it.next().unwrap());
    (ok, alive.len() - ok)
}

fn main() -> ExitCode {
    let (target, n, path, hold) = match parse() {
        Ok(v) => v,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("baton-idle: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(hold));
        eprintln!("baton-idle: --hold-s {hold} reached, exiting");
        std::process::exit(3);
    });
    let mut conns = Vec::with_capacity(n);
    let mut connect_failed = 0;
    for _ in 0..n {
        let c = TcpStream::connect_timeout(&target, Duration::from_secs(5)).and_then(|s| {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            Ok(Conn {
                reader: Reader::new(s),
            })
        });
        match c {
            Ok(c) => conns.push(c),
            Err(_) => connect_failed += 1,
        }
    }
    let (ok, failed) = round(&mut conns, &path);
    println!("READY ok={ok} failed={}", failed + connect_failed);
    let _ = io::stdout().flush();
    for line in io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("check") => {
                let (ok, failed) = round(&mut conns, &path);
                println!("CHECK ok={ok} failed={failed}");
                let _ = io::stdout().flush();
            }
            Ok("quit") | Err(_) => break,
            Ok(_) => {}
        }
    }
    ExitCode::SUCCESS
}
