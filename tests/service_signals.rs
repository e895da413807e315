//! Signals as operators of Envoy, nginx and HAProxy send them, against the real binary:
//! SIGTERM drains and a second SIGTERM stops now (counting the connections cut); SIGQUIT
//! drains (a second SIGQUIT changes nothing) and SIGINT during the drain stops now; SIGHUP
//! and SIGUSR2 reload (start a successor), a reload while one is in progress is refused, and
//! without --hot-restart-file a reload is one log line and nothing else. Also: a successor that
//! cannot bind one of its listeners exits 1 before the running process stops accepting, and
//! `--pid-file` follows the serving process.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::hot::{expect_exit_code, get_body, hot_spawn, hot_start, HotDir, EXIT_WAIT};
use common::{free_port, local, simple_yaml, Baton, Upstream, IO_TIMEOUT};
use nix::sys::signal::Signal;

/// A proxy in front of one upstream, and a request to `/hang` in flight through it (the
/// upstream never answers), so a drain has a connection to wait for.
fn busy_proxy(extra: &[&str]) -> (Baton, Upstream, std::net::TcpStream) {
    let up = Upstream::start("v1");
    let port = free_port();
    let b = Baton::start_args(&simple_yaml(port, up.port()), extra);
    let c = hang(port, &up);
    (b, up, c)
}

/// A `GET /hang` through the proxy on `port`, once `up` has it: a request in flight.
fn hang(port: u16, up: &Upstream) -> std::net::TcpStream {
    let mut c = std::net::TcpStream::connect(local(port)).expect("connect");
    c.write_all(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let deadline = Instant::now() + IO_TIMEOUT;
    while !up.seen().iter().any(|r| r.target == "/hang") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

#[test]
fn second_sigterm_stops_now_and_says_how_many_connections_were_cut() {
    let (mut b, _up, _c) = busy_proxy(&[]);
    b.sigterm();
    assert!(b.wait_log("SIGTERM: draining", IO_TIMEOUT), "{}", b.log());
    // The in-flight request keeps the drain going (600 s by default)...
    assert!(b.try_exit().is_none(), "{}", b.log());
    // ...until the operator insists.
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    let log = b.log();
    assert!(
        log.contains("SIGTERM while draining: stopping now") && log.contains("1 connection(s) cut"),
        "{log}"
    );
    assert!(
        !log.contains("signal 15"),
        "signal numbers in the log\n{log}"
    );
}

#[test]
fn sigquit_drains_a_second_one_changes_nothing_and_sigint_then_stops_now() {
    let (mut b, _up, _c) = busy_proxy(&[]);
    b.signal(Signal::SIGQUIT);
    assert!(b.wait_log("SIGQUIT: draining", IO_TIMEOUT), "{}", b.log());
    b.signal(Signal::SIGQUIT);
    assert!(
        b.wait_log("SIGQUIT: already draining", IO_TIMEOUT),
        "{}",
        b.log()
    );
    assert!(b.try_exit().is_none(), "SIGQUIT killed baton\n{}", b.log());
    b.signal(Signal::SIGINT);
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    assert!(
        b.log().contains("SIGINT while draining: stopping now"),
        "{}",
        b.log()
    );
}

#[test]
fn sigquit_on_an_idle_proxy_exits_cleanly() {
    let up = Upstream::start("v1");
    let port = free_port();
    let mut b = Baton::start(&simple_yaml(port, up.port()));
    b.signal(Signal::SIGQUIT);
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    assert!(b.log().contains("SIGQUIT: draining"), "{}", b.log());
}

#[test]
fn drain_deadline_logs_the_connections_it_cuts() {
    let (mut b, _up, _c) = busy_proxy(&["--drain-time-s", "1"]);
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    let log = b.log();
    assert!(log.contains("1 connection(s) still open are cut"), "{log}");
}

#[test]
fn reload_without_hot_restart_file_is_one_log_line_and_no_jargon() {
    let up = Upstream::start("v1");
    let port = free_port();
    let mut b = Baton::start(&simple_yaml(port, up.port()));
    b.signal(Signal::SIGHUP);
    assert!(
        b.wait_log("SIGHUP: reloading needs --hot-restart-file", IO_TIMEOUT),
        "{}",
        b.log()
    );
    b.signal(Signal::SIGUSR2);
    assert!(
        b.wait_log("SIGUSR2: reloading needs --hot-restart-file", IO_TIMEOUT),
        "{}",
        b.log()
    );
    assert!(get_body(port).contains("hello from v1 "));
    assert!(b.try_exit().is_none());
    let log = b.log();
    // The start-up line, and no hot-restart line above debug.
    assert!(
        log.contains("serving: config --config-yaml; listeners [listener_0 127.0.0.1:"),
        "{log}"
    );
    let jargon: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hot restart") && !l.contains("DEBUG"))
        .collect();
    assert!(
        jargon.is_empty(),
        "hot-restart lines without --hot-restart-file: {jargon:?}"
    );
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
}

#[test]
fn sigusr2_reloads_a_second_reload_meanwhile_is_refused_and_the_pid_file_follows() {
    let up = Upstream::start("v1");
    let port = free_port();
    let dir = HotDir::new("usr2");
    let pid_file = dir.path.join("baton.pid");
    let pid_arg = pid_file.display().to_string();
    let mut v1 = hot_start(
        &simple_yaml(port, up.port()),
        &dir,
        &["--pid-file", &pid_arg],
    );
    let read_pid = || std::fs::read_to_string(&pid_file).unwrap_or_default();
    let wait_pid = |pid: u32| {
        let deadline = Instant::now() + IO_TIMEOUT;
        while read_pid().trim() != pid.to_string() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        read_pid().trim() == pid.to_string()
    };
    assert!(
        wait_pid(v1.pid()),
        "pid file: {:?}\n{}",
        read_pid(),
        v1.log()
    );
    // A request in flight keeps v1 alive (draining) after the successor takes over, so the
    // second signal always reaches it.
    let in_flight = hang(port, &up);
    v1.signal(Signal::SIGUSR2);
    assert!(
        v1.wait_log("SIGUSR2: reloading: started successor pid", IO_TIMEOUT),
        "{}",
        v1.log()
    );
    // Whether the successor is still starting, taking over, or already in charge (v1 then
    // drains), a second reload on v1 is refused.
    v1.signal(Signal::SIGHUP);
    assert!(v1.wait_log("SIGHUP: ", IO_TIMEOUT), "{}", v1.log());
    let log = v1.log();
    let line = log.lines().find(|l| l.contains("SIGHUP: ")).unwrap_or("");
    assert!(
        line.contains("refused") && !line.contains("started successor"),
        "{log}"
    );
    let v2: u32 = log
        .split("started successor pid ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|p| p.parse().ok())
        .expect("successor pid in the log");
    // The successor rewrites the pid file once it has taken over.
    assert!(wait_pid(v2), "pid file: {:?}\n{}", read_pid(), v1.log());
    assert!(get_body(port).contains("hello from v1 "));
    // v1 leaves when its last request goes; the pid file is v2's, so it stays.
    drop(in_flight);
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    assert_eq!(read_pid().trim(), v2.to_string(), "{}", v1.log());
    let p = nix::unistd::Pid::from_raw(v2 as i32);
    nix::sys::signal::kill(p, Signal::SIGTERM).expect("kill successor");
    let deadline = Instant::now() + EXIT_WAIT;
    while pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_file.exists(), "pid file left behind\n{}", v1.log());
}

#[test]
fn a_child_that_cannot_bind_a_listener_never_takes_over() {
    let up = Upstream::start("v1");
    let port = free_port();
    let dir = HotDir::new("nobind");
    let mut v1 = hot_start(&simple_yaml(port, up.port()), &dir, &[]);
    // The new config adds a listener on a port someone else holds.
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = squatter.local_addr().expect("addr").port();
    let y = simple_yaml(port, up.port());
    let (start, end) = (
        y.find("  - name: listener_0").expect("listener"),
        y.find("  clusters:").expect("clusters"),
    );
    let second = y[start..end].replace("listener_0", "listener_1").replace(
        &format!("port_value: {port}"),
        &format!("port_value: {busy}"),
    );
    let y2 = format!("{}{second}{}", &y[..end], &y[end..]);
    let mut child = hot_spawn(&y2, &dir, &[]);
    expect_exit_code(&mut child, 1, EXIT_WAIT);
    let clog = child.log();
    assert!(
        clog.contains("cannot take over: listener_1: 127.0.0.1:")
            && clog.contains("Address already in use"),
        "{clog}"
    );
    assert!(!clog.contains("-> Listening"), "{clog}");
    // The parent never stopped accepting and did not see a takeover.
    assert!(get_body(port).contains("hello from v1 "));
    let plog = v1.log();
    assert!(!plog.contains("died after takeover"), "{plog}");
    assert!(!plog.contains("-> HandedOver"), "{plog}");
    assert!(v1.try_exit().is_none());
    v1.sigterm();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
}

#[test]
fn a_reload_that_comes_with_a_stop_signal_is_refused() {
    // SIGTERM then SIGHUP at once: both pending when the loop looks were handled in
    // signal-number order, so the reload (SIGHUP is 1) started a successor that went on
    // serving while this process stopped. The stop is handled first now.
    let up = Upstream::start("v1");
    let port = free_port();
    let dir = HotDir::new("termhup");
    let mut v1 = hot_start(&simple_yaml(port, up.port()), &dir, &[]);
    // A request in flight keeps v1 draining, so its log shows what became of the SIGHUP.
    let in_flight = hang(port, &up);
    // Stopped, the process takes both signals in and sees them in one look once it goes on.
    v1.signal(Signal::SIGSTOP);
    v1.signal(Signal::SIGTERM);
    v1.signal(Signal::SIGHUP);
    v1.signal(Signal::SIGCONT);
    assert!(v1.wait_log("SIGHUP: ", IO_TIMEOUT), "{}", v1.log());
    let log = v1.log();
    let successor: Option<i32> = log
        .split("started successor pid ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|p| p.parse().ok());
    if let Some(pid) = successor {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert_eq!(successor, None, "a successor outlived the stop:\n{log}");
    let line = log.lines().find(|l| l.contains("SIGHUP: ")).unwrap_or("");
    assert!(line.contains("draining; reload refused"), "{log}");
    drop(in_flight);
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
}
