//! baton-upstream: the origin server for the demo and the benchmarks.
//! `baton-upstream --listen 127.0.0.1:8080 --name v1`; see `baton_bench::origin` for the paths.

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "USAGE: baton-upstream [--listen ADDR:PORT] [--name NAME]\n\
  Answers / with `hello from NAME (ADDR)`, plus /bytes/N /chunked/N /delay/MS /status/N /echo /sink ...\n";

fn main() -> ExitCode {
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut name = String::from("upstream");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            eprintln!("baton-upstream: {flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--listen" => match value.parse() {
                Ok(a) => listen = a,
                Err(e) => {
                    eprintln!("baton-upstream: --listen {value:?}: {e}");
                    return ExitCode::from(2);
                }
            },
            "--name" => name = value,
            _ => {
                eprintln!("baton-upstream: unknown flag {flag:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match baton_bench::origin::Origin::start(listen, &name, false) {
        Ok(o) => {
            eprintln!("baton-upstream {name} listening on {}", o.addr());
            o.join();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("baton-upstream: {listen}: {e}");
            ExitCode::from(1)
        }
    }
}
