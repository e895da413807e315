//! baton under a service manager, seen through a real `$NOTIFY_SOCKET`: the test binds the Unix
//! datagram socket systemd would, starts baton with the variable set, and reads what it says.
//! Start → `READY=1` with its pid; SIGHUP under keep-alive load → `RELOADING=1`, then the
//! successor names itself `MAINPID` with `READY=1`, the old process exits 0, no request fails
//! and no client reconnects; a successor whose config is broken → the running process stays
//! the main process (`READY=1` with its own pid) and keeps serving.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hot::{expect_exit_code, get_body, start_load, HotDir, EXIT_WAIT};
use common::{free_port, simple_yaml, Baton, Upstream, IO_TIMEOUT};
use nix::sys::signal::Signal;

/// The notify socket a service manager would own, and what it received so far.
struct Manager {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        Manager {
            sock,
            seen: Vec::new(),
        }
    }

    /// Reads notifications until one satisfies `want` (bounded); returns it.
    fn expect(&mut self, what: &str, b: &Baton, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(m.clone());
                if want(&m) {
                    return m;
                }
            }
        }
        panic!(
            "no notification {what}; seen {:?}\n--- log ---\n{}",
            self.seen,
            b.log()
        );
    }
}

/// The value of `KEY=` in a notification.
fn field(msg: &str, key: &str) -> Option<String> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

fn pid_alive(pid: u32) -> bool {
    // A zombie (reparented, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Stops a successor we started through a reload (it is not our child): SIGTERM by pid,
/// then wait (bounded) for it to go.
fn stop_successor(pid: u32) {
    let p = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(p, Signal::SIGTERM);
    let deadline = Instant::now() + EXIT_WAIT;
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_alive(pid) {
        let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
        panic!("successor pid {pid} did not exit after SIGTERM");
    }
}

#[test]
fn reload_under_load_hands_the_service_to_the_successor_and_a_broken_one_changes_nothing() {
    let up = Upstream::start("v1");
    let port = free_port();
    let dir = HotDir::new("notify");
    let config = dir.path.join("envoy.yaml");
    std::fs::write(&config, simple_yaml(port, up.port())).expect("write config");
    let notify = dir.path.join("notify.sock");
    let mut mgr = Manager::bind(&notify);
    let sock = dir.sock_arg();
    let cfg = config.display().to_string();
    let mut v1 = Baton::spawn_with(
        port,
        &["-c", &cfg, "--hot-restart-file", &sock],
        &[("NOTIFY_SOCKET", &notify.display().to_string())],
    );
    let ready = mgr.expect("READY=1 at start", &v1, |m| m.contains("READY=1"));
    assert_eq!(
        field(&ready, "MAINPID"),
        Some(v1.pid().to_string()),
        "{ready:?}"
    );
    v1.wait_listening();

    // Keep-alive clients that must never fail or reconnect across the reload.
    let conns = 4;
    let load = start_load(port, conns, 0.0);
    let deadline = Instant::now() + IO_TIMEOUT;
    while load.snapshot().ok < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    v1.signal(Signal::SIGHUP);
    let reloading = mgr.expect("RELOADING=1", &v1, |m| m.contains("RELOADING=1"));
    assert!(
        field(&reloading, "MONOTONIC_USEC").is_some_and(|v| v.parse::<u64>().is_ok()),
        "{reloading:?}"
    );
    let v1_pid = v1.pid().to_string();
    let handed = mgr.expect("MAINPID=<successor> with READY=1", &v1, |m| {
        m.contains("READY=1") && field(m, "MAINPID").is_some_and(|p| p != v1_pid)
    });
    let v2: u32 = field(&handed, "MAINPID")
        .and_then(|p| p.parse().ok())
        .expect("successor pid");
    // The successor told the old process to drain; it exits 0 once its connections moved.
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    let at_exit = load.snapshot().ok;
    let deadline = Instant::now() + IO_TIMEOUT;
    while load.snapshot().ok < at_exit + 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let counts = load.stop();
    println!("load across the reload: {}", common::hot::describe(&counts));
    let log = v1.log();
    assert!(
        counts.ok > at_exit,
        "no request served after the reload\n{log}"
    );
    assert_eq!(counts.failed_total(), 0, "failed requests\n{log}");
    assert_eq!(
        counts.keepalive_conns, conns as u64,
        "a client had to reconnect\n{log}"
    );
    assert!(
        !mgr.seen.iter().any(|m| m.contains("STOPPING=1")),
        "the drain after a reload is not a stop: {:?}",
        mgr.seen
    );
    assert!(
        log.contains("SIGHUP: reloading: started successor pid"),
        "{log}"
    );

    // Now a reload whose config is broken: the successor exits, the running one stays.
    std::fs::write(&config, "static_resources: [this is not a bootstrap").expect("break config");
    mgr.seen.clear();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(v2 as i32), Signal::SIGHUP).expect("kill");
    mgr.expect("RELOADING=1 (second reload)", &v1, |m| {
        m.contains("RELOADING=1")
    });
    let again = mgr.expect("READY=1 after the failed reload", &v1, |m| {
        m.contains("READY=1")
    });
    assert_eq!(
        field(&again, "MAINPID"),
        Some(v2.to_string()),
        "{:?}",
        mgr.seen
    );
    assert!(pid_alive(v2));
    assert!(get_body(port).contains("hello from v1 "));
    let log = v1.log(); // the successors share the log file
    assert!(
        log.contains("reload failed: successor pid") && log.contains("before taking over"),
        "{log}"
    );
    // The failed successor was reaped by the process that started it: no zombie left.
    let failed: u32 = log
        .split("reload failed: successor pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("failed successor's pid in the log");
    assert!(
        !Path::new(&format!("/proc/{failed}")).exists(),
        "successor {failed} not reaped\n{log}"
    );
    assert!(
        !mgr.seen
            .iter()
            .any(|m| field(m, "MAINPID").is_some_and(|p| p != v2.to_string())),
        "the main pid moved: {:?}",
        mgr.seen
    );
    stop_successor(v2);
    mgr.expect("STOPPING=1 on SIGTERM", &v1, |m| m.contains("STOPPING=1"));
}

#[test]
fn abstract_notify_socket_is_spoken_to() {
    let up = Upstream::start("v1");
    let port = free_port();
    let name = format!("baton-test-notify-{}-{port}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .expect("abstract address");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut mgr = Manager {
        sock,
        seen: Vec::new(),
    };
    let yaml = simple_yaml(port, up.port());
    let mut b = Baton::spawn_with(
        port,
        &["--config-yaml", &yaml],
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    );
    let ready = mgr.expect("READY=1", &b, |m| m.contains("READY=1"));
    assert_eq!(field(&ready, "MAINPID"), Some(b.pid().to_string()));
    b.sigterm();
    mgr.expect("STOPPING=1", &b, |m| m.contains("STOPPING=1"));
    expect_exit_code(&mut b, 0, EXIT_WAIT);
}
