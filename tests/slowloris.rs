//! Slow clients: 5,000 connections dribbling a request head at one byte a second do not stop
//! a normal client from being served, and with the edge settings (`request_headers_timeout`)
//! each of them gets `408` and is closed once its head is too slow.

mod admin_util;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

const SLOW: usize = 5000;

#[test]
fn slowloris_does_not_starve_normal_clients_and_header_timeouts_end_it() {
    // Room for the slow clients in this process and in baton.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want: u64 = 16_384;
    let _ = setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard));
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let n = SLOW.min((soft as usize).saturating_sub(512));
    let (mut b, _up, s) = admin_util::start_edited(Vec::new(), |y| {
        y.replacen(
            "          stat_prefix: ingress_http\n",
            "          stat_prefix: ingress_http\n          request_headers_timeout: 6s\n",
            1,
        )
    });
    let limit = format!("--nofile={want}:{want}");
    let pid = b.pid().to_string();
    let ok = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "prlimit failed");

    let mut slow: Vec<TcpStream> = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect_timeout(&local(s.listen), IO_TIMEOUT).expect("connect");
        c.set_nonblocking(true).expect("nonblocking");
        slow.push(c);
    }
    for c in &mut slow {
        let _ = c.write(b"GET / HTTP/1.1\r\nHost: x\r\n");
    }
    eprintln!("{n} slow clients connected");
    // Three seconds of one byte a second on every slow connection, normal requests between.
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        for c in &mut slow {
            let _ = c.write(b"X");
        }
        for _ in 0..5 {
            let t = Instant::now();
            let mut c = RawConn::connect(s.listen);
            c.send(&get("/status/200"));
            assert_eq!(c.expect_response(false).status(), 200, "round {round}");
            worst = worst.max(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    eprintln!("slowest normal request among {n} slow clients: {worst:?}");
    // Past request_headers_timeout every slow client got 408 and was closed.
    std::thread::sleep(Duration::from_secs(5));
    let mut answered = 0;
    for c in slow.iter_mut().step_by(50) {
        c.set_nonblocking(false).expect("blocking");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "a slow client got {text:?} instead of 408"
        );
        answered += 1;
    }
    eprintln!("{answered} sampled slow clients got 408 and were closed");
    assert!(b.try_exit().is_none(), "baton exited");
    let mut c = RawConn::connect(s.listen);
    c.send(&get("/status/200"));
    assert_eq!(c.expect_response(false).status(), 200);
}
