//! Live connection handover of a connection with about 1 MiB of read-ahead: bytes the old
//! process has read from the client (pipelined requests) and not yet answered when it reaches
//! the connection's safe point while draining. Every request on that connection must get
//! exactly one answer, in order, and the other connections handed over around it must survive.
//!
//! How the read-ahead builds up: with `max_request_headers_kb: 1024`, a connection reading a
//! request head reads up to 1 MiB + 1 bytes. Request 1 (`/delay/800`) is in flight while the
//! client writes a burst (request 2 `/delay/1500` and ~300 padded pipelined GETs, ~1.2 MiB)
//! that waits in the socket; after answering request 1, v1 reads the head of request 2 with
//! up to 1 MiB of the burst behind it, and is busy with request 2 when it is told to drain.
//! After answering it, the connection is at its safe point with ~1 MiB unread: it moves.

mod common;

use common::hot::*;
use common::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// `GET /bytes/i` padded to about 4 KiB, so ~300 of them make ~1.2 MiB.
fn padded_get(i: usize) -> Vec<u8> {
    format!(
        "GET /bytes/{i} HTTP/1.1\r\nHost: test\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(4000)
    )
    .into_bytes()
}

/// A client that sent `/delay/800`, then (from a writer thread) a burst of `/delay/1500` and
/// `n` padded `GET /bytes/1..=n`.
struct Burst {
    conn: RawConn,
    n: usize,
    /// Bytes of the burst after request 2's head (the pipelined GETs).
    pipelined: usize,
    writer: thread::JoinHandle<std::io::Result<()>>,
}

impl Burst {
    /// `conn` must belong to the old process (opened before the takeover).
    fn start(mut conn: RawConn, n: usize, up: &Upstream, seen_before: usize) -> Burst {
        conn.send(&get("/delay/800"));
        assert!(
            up.wait_seen(seen_before + 1, IO_TIMEOUT),
            "request 1 never reached v1's upstream"
        );
        let mut burst = get("/delay/1500");
        for i in 1..=n {
            burst.extend_from_slice(&padded_get(i));
        }
        let pipelined = burst.len() - get("/delay/1500").len();
        let mut w: TcpStream = conn.stream.try_clone().unwrap();
        let writer = thread::spawn(move || w.write_all(&burst));
        Burst {
            conn,
            n,
            pipelined,
            writer,
        }
    }

    /// Pipelined bytes the proxy has read and holds unanswered: the burst less what still
    /// sits in the kernel (our send queue, the proxy's receive queue). Valid once the writer
    /// is done and the proxy is busy with request 2 (it reads nothing more meanwhile).
    fn read_ahead(&self) -> Option<usize> {
        if !self.writer.is_finished() {
            return None;
        }
        let me = self.conn.stream.local_addr().ok()?;
        let proxy = self.conn.stream.peer_addr().ok()?;
        let ours = tcp_queues(me, proxy)?.0;
        let theirs = tcp_queues(proxy, me)?.1;
        Some(self.pipelined.saturating_sub(ours + theirs))
    }

    /// Reads every answer: 800, 1500, then /bytes/1..=n in order. Err names the first problem.
    fn check(mut self, what: &str) -> Result<usize, String> {
        let mut want: Vec<(String, usize)> =
            vec![("delay 800\n".into(), 0), ("delay 1500\n".into(), 0)];
        want.extend((1..=self.n).map(|i| (String::new(), i)));
        for (k, (body, len)) in want.iter().enumerate() {
            let r = match self.conn.response(false) {
                Ok(Some(r)) => r,
                other => {
                    return Err(format!(
                        "{what}: answer {k} of {} missing: {other:?}",
                        want.len()
                    ))
                }
            };
            let ok = r.status() == 200
                && if body.is_empty() {
                    r.body.len() == *len
                } else {
                    r.body_str() == *body
                };
            if !ok {
                return Err(format!(
                    "{what}: answer {k} out of order or wrong: status {} body {} bytes (want {})",
                    r.status(),
                    r.body.len(),
                    if body.is_empty() {
                        len.to_string()
                    } else {
                        body.clone()
                    }
                ));
            }
        }
        if !self.conn.reader.buffered().is_empty() {
            return Err(format!("{what}: bytes after the last answer"));
        }
        self.writer
            .join()
            .unwrap()
            .map_err(|e| format!("{what}: writing the burst: {e}"))?;
        Ok(want.len())
    }
}

/// (tx_queue, rx_queue) of the loopback TCP socket `local` → `remote`, from /proc/net/tcp.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(usize, usize)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v.ip().octets()),
            v.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (l, r) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[1] == l && f[2] == r {
            let (tx, rx) = f[4].split_once(':')?;
            Some((
                usize::from_str_radix(tx, 16).ok()?,
                usize::from_str_radix(rx, 16).ok()?,
            ))
        } else {
            None
        }
    })
}

#[test]
fn a_connection_with_a_megabyte_of_read_ahead_moves_with_it_and_so_do_its_neighbours() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let port = free_port();
    let dir = HotDir::new("readahead");
    let extra = Extra {
        hcm: vec!["max_request_headers_kb: 1024".into()],
        ..Extra::default()
    };
    let yaml = |up: &Upstream| proxy_yaml(port, &[("backend", &[up.port()], "STATIC")], &extra);
    let mut v1 = hot_start(&yaml(&up1), &dir, &[]);
    let mut idle = warmed_conn(port, "v1");
    // Connections of v1's: opened (and used once) before the takeover.
    let conns: Vec<RawConn> = (0..3).map(|_| warmed_conn(port, "v1")).collect();
    // A large upload first, so the kernel's receive-buffer autotuning gives v1's end of the
    // big connection room for the whole burst (otherwise it holds ~128 KiB and v1 reads no more).
    let mut conns = conns;
    let upload = vec![b'u'; 32 << 20];
    conns[0].send(
        format!(
            "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
    );
    conns[0].send(&upload);
    let r = conns[0].expect_response(false);
    assert!(r.body_str().starts_with("len=33554432 "), "{r:?}");
    let (v2, _) = hot_takeover(&yaml(&up2), &dir, &[], &v1);

    // The big one, and two small ones answered (and moved) around the same time.
    let mut conns = conns.into_iter();
    let mut next = || conns.next().unwrap();
    let big = Burst::start(next(), 300, &up1, up1.seen().len());
    let small1 = Burst::start(next(), 5, &up1, up1.seen().len());
    let small2 = Burst::start(next(), 5, &up1, up1.seen().len());
    // Request 2 of each reaching v1's upstream means v1 has read its burst (the big one's up
    // to 1 MiB) and is busy with it: drain now.
    let deadline = Instant::now() + IO_TIMEOUT;
    while up1
        .seen()
        .iter()
        .filter(|r| r.target == "/delay/1500")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "the bursts' first requests never reached v1's upstream: {:?}",
            up1.seen()
                .iter()
                .map(|r| r.target.clone())
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(100));
    let ahead = [big.read_ahead(), small1.read_ahead(), small2.read_ahead()];
    println!(
        "pipelined bytes v1 holds unanswered at SIGTERM: {ahead:?} (of {}, {}, {})",
        big.pipelined, small1.pipelined, small2.pipelined
    );
    v1.sigterm();

    let t = Instant::now();
    let results = [
        big.check("big (~1 MiB read-ahead)"),
        small1.check("small 1"),
        small2.check("small 2"),
    ];
    let exit = v1.wait_exit(EXIT_WAIT);
    let warn: Vec<String> = v1
        .log()
        .lines()
        .filter(|l| l.contains("hot restart") && (l.contains("WARN") || l.contains("ERROR")))
        .map(String::from)
        .collect();
    println!(
        "answers {results:?} in {:?}; v1 exit {exit:?}, handed {} connection(s); v1 upstream saw {} /bytes requests, v2 upstream {}; v1 warnings {warn:?}",
        t.elapsed(),
        handed_connections(&v1),
        up1.seen().iter().filter(|r| r.target.starts_with("/bytes/")).count(),
        up2.seen().iter().filter(|r| r.target.starts_with("/bytes/")).count(),
    );
    let mut failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    idle.send(&get("/"));
    match idle.response(false) {
        Ok(Some(r)) if r.body_str().contains("hello from v2 ") => {}
        other => failures.push(format!("idle connection after the restart: {other:?}")),
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\nv1 warnings: {warn:#?}\n--- v2 log tail ---\n{}",
        v2.log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "v1's exit");
}
