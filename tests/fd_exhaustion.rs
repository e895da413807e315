//! Running out of file descriptors does not kill the listener: with a low `RLIMIT_NOFILE`
//! and more clients than descriptors, accept pauses and retries on a timer (the full backlog
//! raises no new edge), the admin interface stays reachable through the descriptor reserve,
//! the episode is counted in `server.fd_exhausted`, and once the clients go a fresh client is
//! served again.

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
