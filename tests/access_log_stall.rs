//! An access log whose reader stalls never stops the proxy: the log is a FIFO that the test
//! opens for reading and never reads, so the pipe fills after a few hundred lines. Requests
//! go on being answered (the reactor's writes are non-blocking; what does not fit waits in a
//! bounded buffer, then is dropped and counted).

mod admin_util;
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_stalled_access_log_pipe_costs_lines_not_requests() {
    let fifo = std::env::temp_dir().join(format!("baton-stall-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // The reader end, held open and never read (opened first so baton's open does not wait).
    let _reader = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open fifo");
    let path = fifo.to_string_lossy().to_string();
    let (mut b, _up, s) = admin_util::start(vec![(path, None)]);

    // Far more lines than a pipe holds (64 KiB ≈ 300 default-format lines).
    let mut c = RawConn::connect(s.listen);
    let started = Instant::now();
    for i in 0..3000 {
        c.send(&get("/status/200"));
        let r = c.expect_response(false);
        assert_eq!(r.status(), 200, "request {i}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stalled at request {i}"
        );
    }
    // Other clients and the admin interface are served too.
    let mut other = RawConn::connect(s.listen);
    other.send(&get("/status/204"));
    assert_eq!(other.expect_response(false).status(), 204);
    assert_eq!(admin_util::stat(s.admin, "access_logs.dropped_lines"), 0);
    assert!(b.try_exit().is_none());
    let _ = std::fs::remove_file(&fifo);
}
