//! The process log a person reads, against the real binary: `--log-path` with Envoy's
//! `--log-format` flags (and SIGUSR1 reopening it after rotation), the start-up line, each
//! request's routing decision at debug, and upstream connect failures logged when they start
//! and when they stop, not once per request.

mod common;

use std::time::{Duration, Instant};

use common::hot::{expect_exit_code, EXIT_WAIT};
use common::{free_port, local, raw_exchange, simple_yaml, Baton, Upstream, IO_TIMEOUT};
use nix::sys::signal::Signal;

/// One request on its own connection (the answer ends with the connection).
const CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

fn wait_file(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(needle) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn log_path_and_envoy_format_with_reopen_on_sigusr1() {
    let up = Upstream::start("v1");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("baton-logs-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("baton.log");
    let yaml = simple_yaml(port, up.port());
    let p = path.display().to_string();
    let mut b = Baton::spawn_with(
        port,
        &[
            "--config-yaml",
            &yaml,
            "--log-path",
            &p,
            "--log-format",
            "[%Y-%m-%d %T.%e][%P][%l][%n] %v",
        ],
        &[],
    );
    b.wait_listening();
    let body = raw_exchange(port, CLOSE, IO_TIMEOUT);
    assert!(String::from_utf8_lossy(&body).contains("hello from v1 "));
    let log = wait_file(&path, "-> cluster backend");
    let pid = b.pid();
    let start = log
        .lines()
        .find(|l| l.contains("serving: config --config-yaml"))
        .unwrap_or_else(|| panic!("no start-up line in {log}"));
    // [2026-11-30 15:04:05.123][4242][info][baton::server] baton 0.1.0 (commit ...) serving: ...
    assert!(start.starts_with("[20"), "{start}");
    assert_eq!(start.as_bytes().get(24), Some(&b']'), "{start}");
    assert!(
        start.contains(&format!(
            "][{pid}][info][baton::server] baton {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{start}"
    );
    assert!(
        start.contains(&format!(
            "listeners [listener_0 127.0.0.1:{port}]; admin none; pid {pid}; epoch 0"
        )),
        "{start}"
    );
    assert!(
        log.lines().any(
            |l| l.contains("][debug][baton::observe] listener_0 127.0.0.1:")
                && l.contains(": GET / host \"test\" -> cluster backend host 127.0.0.1:")
        ),
        "no routing decision at debug:\n{log}"
    );
    // Rotation: rename, SIGUSR1, and new lines go to a new file at the same path.
    let rotated = dir.join("baton.log.1");
    std::fs::rename(&path, &rotated).expect("rename");
    b.signal(Signal::SIGUSR1);
    let after = wait_file(&path, "SIGUSR1: reopened the logs");
    assert!(after.contains("SIGUSR1: reopened the logs"), "{after:?}");
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_upstream_is_logged_when_it_fails_and_when_it_recovers() {
    let port = free_port();
    let dead = free_port(); // nothing listens there
    let mut b = Baton::start(&simple_yaml(port, dead));
    for _ in 0..3 {
        let r = raw_exchange(port, CLOSE, IO_TIMEOUT);
        assert!(
            String::from_utf8_lossy(&r).starts_with("HTTP/1.1 503"),
            "{}",
            b.log()
        );
    }
    let needle = format!("cluster backend: connecting to 127.0.0.1:{dead} failed");
    assert!(b.wait_log(&needle, IO_TIMEOUT), "{}", b.log());
    assert_eq!(b.log().matches(&needle).count(), 1, "{}", b.log());
    // The upstream comes up on that port: one line says so.
    let origin = baton_bench::origin::Origin::start(local(dead), "v1", true).expect("origin");
    let r = raw_exchange(port, CLOSE, IO_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&r).contains("hello from v1 "),
        "{}",
        b.log()
    );
    assert!(
        b.wait_log(
            &format!("connecting to 127.0.0.1:{dead} works again"),
            IO_TIMEOUT
        ),
        "{}",
        b.log()
    );
    drop(origin);
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
}
