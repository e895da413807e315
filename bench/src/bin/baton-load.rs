//! baton-load: a load client that counts honestly. Every request written is either a success
//! (complete response, 2xx, expected body) or a failure of one kind; nothing is retried
//! silently. A connection the server closes after a complete response (`Connection: close`)
//! is not a failure: the client reconnects and counts the new connection.
//!
//! Per-second lines show which upstream served (the `NAME` of a `hello from NAME` body), so a
//! hot restart from v1 to v2 is visible. Exit status: 0 when no request failed, 1 otherwise.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use baton_bench::load::{Counts, Load, LoadOpts};

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

#[derive(Clone)]
struct Opts {
    load: LoadOpts,
    duration: Duration,
    quiet: bool,
}

fn parse_args() -> Result<Opts, String> {
    let default_target: std::net::SocketAddr = "127.0.0.1:10000".parse().expect("literal");
    let mut o = Opts {
        load: LoadOpts::new(default_target),
        duration: Duration::from_secs(10),
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
        let l = &mut o.load;
        match flag.as_str() {
            "--target" => {
                l.target = v
                    .to_socket_addrs()
                    .map_err(|e| bad(&e))?
                    .next()
                    .ok_or_else(|| bad(&"no address"))?;
                l.host = v.clone();
            }
            "--connections" => l.connections = v.parse().map_err(|e| bad(&e))?,
            "--duration-s" => o.duration = Duration::from_secs_f64(v.parse().map_err(|e| bad(&e))?),
            "--new-conn-rate" => l.new_conn_rate = v.parse().map_err(|e| bad(&e))?,
            "--path" => l.path = v,
            "--expect-body-contains" => l.expect = Some(v),
            "--timeout-ms" => l.timeout = Duration::from_millis(v.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(o)
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
    let l = &o.load;
    println!(
        "baton-load: {} keep-alive connections + {}/s new connections to {} for {:.1}s, GET {}",
        l.connections,
        l.new_conn_rate,
        l.target,
        o.duration.as_secs_f64(),
        l.path
    );
    let load = match Load::start(l) {
        Ok(load) => load,
        Err(e) => {
            eprintln!("baton-load: cannot start workers: {e}");
            return ExitCode::from(2);
        }
    };
    let start: Instant = load.start;
    let mut prev = Counts::default();
    let mut second = 0;
    while !load.finished() {
        thread::sleep(Duration::from_millis(50));
        if start.elapsed().as_secs() > second {
            let t = load.snapshot();
            if !o.quiet {
                println!(
                    "[{:>3}s] ok={} failed={} new_conns={} | {}",
                    second + 1,
                    t.ok - prev.ok,
                    t.failed_total() - prev.failed_total(),
                    t.new_conns() - prev.new_conns(),
                    served_in(&t, second)
                );
            }
            prev = t;
            second += 1;
        }
        // Workers stop after their current request; a stuck read is bounded by the timeout.
        if start.elapsed() >= o.duration {
            load.signal_stop();
        }
    }
    let t = load.stop();
    summarize(&o, &t, start.elapsed())
}

fn summarize(o: &Opts, t: &Counts, elapsed: Duration) -> ExitCode {
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
        o.load.target
    );
    println!(
        "requests: sent={} ok={} failed={} ({})",
        t.sent,
        t.ok,
        t.failed_total(),
        t.failed_kinds()
    );
    println!(
        "new connections opened: {} (keep-alive workers {}, one-shot {}); rate: {:.0} ok/s",
        t.new_conns(),
        t.keepalive_conns,
        t.oneshot_conns,
        t.ok as f64 / elapsed.as_secs_f64().max(0.001)
    );
    for (n, (count, first, last)) in &by_name {
        println!(
            "served by {n}: {count} responses (seconds {}..{})",
            first + 1,
            last + 1
        );
    }
    for f in t.failures.iter().take(5) {
        println!("failure: {f}");
    }
    println!(
        "RESULT sent={} ok={} failed={} new_connections={}",
        t.sent,
        t.ok,
        t.failed_total(),
        t.new_conns()
    );
    if t.failed_total() == 0 && t.ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
