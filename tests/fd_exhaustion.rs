//! Running out of file descriptors does not kill the listener: with a low `RLIMIT_NOFILE`
//! and more clients than descriptors, accept pauses and retries on a timer (the full backlog
//! raises no new edge), the admin interface stays reachable through the descriptor reserve,
//! the episode is counted in `server.fd_exhausted`, and once the clients go a fresh client is
//! served again. Idle pipes kept for splicing are closed first, so their descriptors serve
//! connections.

mod admin_util;
mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use admin_util::{eventually, stat};
use common::*;

#[test]
fn accept_recovers_after_descriptors_run_out() {
    let (mut b, _up, s) = admin_util::start(Vec::new());
    let pid = b.pid().to_string();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=96:96"])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(limited.success(), "prlimit failed");

    // Far more clients than descriptors: baton accepts until EMFILE, the rest wait in the
    // backlog.
    let mut clients: Vec<TcpStream> = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect_timeout(&local(s.listen), Duration::from_secs(2)) {
            Ok(c) => clients.push(c),
            Err(_) => break, // backlog full: enough
        }
    }
    assert!(
        clients.len() > 96,
        "only {} clients connected",
        clients.len()
    );
    assert!(
        b.wait_log("retrying every", Duration::from_secs(10)),
        "no out-of-descriptors episode logged: {}",
        b.log()
    );
    // The control plane still answers: the reserve gives the admin listener its descriptors.
    assert_eq!(stat(s.admin, "server.fd_exhausted"), 1);
    assert!(b.try_exit().is_none(), "baton exited");

    // The clients go; fresh ones are served again without any new readiness edge.
    drop(clients);
    let freed = Instant::now();
    let served = eventually(Duration::from_secs(15), || {
        let mut c = RawConn::connect(s.listen);
        c.send(&get("/status/200"));
        matches!(c.response(false), Ok(Some(r)) if r.status() == 200)
    });
    let took = freed.elapsed();
    eprintln!("fresh client served {took:?} after the clients closed");
    assert!(served, "listener never recovered: {}", b.log());
    assert!(b.wait_log("file descriptors available again", Duration::from_secs(5)));
    // Still one episode.
    assert_eq!(stat(s.admin, "server.fd_exhausted"), 1);
}

/// Running out of descriptors closes the idle pipes kept for splicing before accepting
/// pauses: their descriptors go to client connections, and splicing makes a new pipe later.
#[test]
fn idle_pipes_and_upstream_connections_are_closed_for_clients_when_descriptors_run_out() {
    let (mut b, _up, s) = admin_util::start(Vec::new());
    let pid = b.pid();
    let base = fd_counts(pid).1;
    // A few concurrent spliced downloads leave their pipes idle; no more than the pool keeps
    // however long they stay unused, so only a shortage can close them.
    let burst = spliced_burst(s.listen, pid, ::baton::http::splice::POOL_KEEP, 16 << 20);
    drop(burst);
    std::thread::sleep(Duration::from_millis(800));
    let spliced = || stat(s.admin, "http.ingress_http.downstream_cx_splice_bytes");
    let spliced_before = spliced();
    let (open, pipes) = fd_counts(pid);
    assert!(
        pipes > base,
        "no idle pipes kept ({pipes} pipe ends, {base} before)"
    );
    // The downloads' upstream connections wait in the keep-alive pool.
    let upstream_open = || stat(s.admin, "cluster.svc.upstream_cx_active");
    assert!(
        upstream_open() >= 1,
        "no idle upstream connection kept ({})",
        upstream_open()
    );

    let limit = open + 16;
    set_fd_limit(pid, limit);
    let mut clients: Vec<TcpStream> = Vec::new();
    for _ in 0..limit {
        match TcpStream::connect_timeout(&local(s.listen), Duration::from_secs(2)) {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    assert!(
        b.wait_log("retrying every", Duration::from_secs(10)),
        "no out-of-descriptors episode logged: {}",
        b.log()
    );
    let (at_limit, pipes) = fd_counts(pid);
    assert_eq!(pipes, base, "idle pipes still open at the descriptor limit");
    assert_eq!(
        upstream_open(),
        0,
        "idle upstream connections still open at the descriptor limit"
    );
    assert!(
        at_limit + 2 >= limit,
        "{at_limit} descriptors open, limit {limit}"
    );

    // The clients go; a large body is spliced through a new pipe.
    drop(clients);
    let served = eventually(Duration::from_secs(15), || {
        let mut c = RawConn::connect(s.listen);
        c.send(&get("/bytes/4194304"));
        matches!(c.response(false), Ok(Some(r)) if r.status() == 200)
    });
    assert!(served, "listener never recovered: {}", b.log());
    assert!(
        spliced() > spliced_before,
        "nothing spliced after the release"
    );
}

/// Sets process `pid`'s descriptor limit (soft and hard) to `limit`.
fn set_fd_limit(pid: u32, limit: usize) {
    let limited = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(limited.success(), "prlimit failed");
}

/// The descriptor numbers open in process `pid`, with whether each is a pipe end.
fn fds(pid: u32) -> Vec<(usize, bool)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let pipe = std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"));
            Some((n, pipe))
        })
        .collect()
}

/// The lowest descriptor number free in process `pid`: the next one the kernel hands out,
/// refused (EMFILE) when it is not below the limit.
fn lowest_free_fd(pid: u32) -> usize {
    let used: std::collections::HashSet<usize> = fds(pid).into_iter().map(|(n, _)| n).collect();
    (0..).find(|n| !used.contains(n)).unwrap_or(0)
}

/// An upstream connect that runs out of descriptors closes the idle pipes and tries again,
/// instead of failing the request.
#[test]
fn an_upstream_connect_out_of_descriptors_closes_idle_pipes_first() {
    // A second upstream: the request at the limit needs a new connection (the first one's
    // are pooled after the burst).
    let fresh = Upstream::start("fresh");
    let port = fresh.port();
    let bytes_route = "              - {match: {prefix: \"/bytes/\"}, route: {cluster: svc}}\n";
    let fresh_route = "              - {match: {prefix: \"/fresh/\"}, \
                       route: {cluster: fresh, prefix_rewrite: \"/bytes/\"}}\n";
    let fresh_cluster = format!(
        "  - name: fresh
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: fresh
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
"
    );
    let (mut b, _up, s) = admin_util::start_edited(Vec::new(), |y| {
        y.replacen(bytes_route, &format!("{bytes_route}{fresh_route}"), 1)
            .replacen("admin:\n", &format!("{fresh_cluster}admin:\n"), 1)
    });
    let pid = b.pid();
    let inherited: Vec<usize> = fds(pid).into_iter().filter(|f| f.1).map(|f| f.0).collect();
    drop(spliced_burst(
        s.listen,
        pid,
        ::baton::http::splice::POOL_KEEP,
        16 << 20,
    ));
    std::thread::sleep(Duration::from_millis(800));
    let pool: Vec<usize> = fds(pid)
        .into_iter()
        .filter(|&(n, pipe)| pipe && !inherited.contains(&n))
        .map(|f| f.0)
        .collect();
    let highest = pool.iter().copied().max().expect("no idle pipes kept");

    // Idle clients fill the holes the burst's clients left, until the idle pipes are all
    // below the next descriptor baton opens; the limit then refuses exactly that one, and
    // closing the pipes frees descriptors under it.
    let mut idle: Vec<TcpStream> = Vec::new();
    while lowest_free_fd(pid) <= highest {
        assert!(
            idle.len() < 64,
            "the holes under the idle pipes never filled"
        );
        idle.push(TcpStream::connect(local(s.listen)).expect("connect"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = fd_counts(pid).0;
    let mut c = RawConn::connect(s.listen);
    assert!(
        eventually(Duration::from_secs(5), || fd_counts(pid).0 > before),
        "the client was not accepted"
    );
    let limit = lowest_free_fd(pid);
    set_fd_limit(pid, limit);

    c.send(&get("/fresh/4194304"));
    c.expect_pattern(4 << 20);
    assert_eq!(
        fresh.seen().len(),
        1,
        "the request did not reach the new upstream"
    );
    let pipes = fds(pid)
        .into_iter()
        .filter(|&(n, pipe)| pipe && !inherited.contains(&n))
        .count();
    // At most the new pipe the download went through.
    assert!(
        pipes <= 2,
        "the idle pipes were not closed: {pipes} pipe ends"
    );
    assert!(b.try_exit().is_none(), "baton exited");
    drop(idle);
}
