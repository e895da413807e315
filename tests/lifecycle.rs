//! The process around the data path: graceful SIGTERM, the busy-port error, an idle proxy that
//! does not spin, and DNS-discovered clusters on `localhost`.

mod common;

use common::*;
use std::thread;
use std::time::Duration;

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let (mut b, up) = proxy_with_upstream();
    // An idle keep-alive connection, which the drain must close...
    let mut idle = RawConn::connect(b.port);
    idle.send(&get("/"));
    assert_eq!(idle.expect_response(false).status(), 200);
    // ...and a slow request in flight when the signal arrives.
    let mut slow = RawConn::connect(b.port);
    slow.send(&get("/delay/1500"));
    assert!(
        up.wait_seen(2, IO_TIMEOUT),
        "the slow request never reached the upstream"
    );
    b.sigterm();
    let r = slow.expect_response(false);
    assert_eq!((r.status(), r.body_str().as_str()), (200, "delay 1500\n"));
    assert!(
        r.head.has_token("connection", "close"),
        "drain response without Connection: close: {:?}",
        r.head
    );
    assert!(
        slow.closed_within(IO_TIMEOUT),
        "connection kept open after the drain response"
    );
    assert!(
        idle.closed_within(IO_TIMEOUT),
        "idle keep-alive connection not closed by the drain"
    );
    let status = b
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("baton still running 20 s after SIGTERM\n{}", b.log()));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM\n{}",
        b.log()
    );
}

#[test]
fn busy_port_is_one_clear_line_and_exit_1() {
    let (b, up) = proxy_with_upstream();
    let yaml = simple_yaml(b.port, up.port());
    let (status, out, err) = run_baton(&["--config-yaml", &yaml], Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = err
        .lines()
        .chain(out.lines())
        .filter(|l| l.contains("Address already in use"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    let want = format!("listener_0: 127.0.0.1:{}: Address already in use", b.port);
    assert!(
        lines[0].contains(&want),
        "{:?} does not name {want:?}",
        lines[0]
    );
    // The first process is untouched.
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
}

#[test]
fn idle_proxy_uses_no_cpu() {
    let (b, _up) = proxy_with_upstream();
    // Warm: one request, and keep a client connection (and so a pooled upstream one) idle.
    let mut c = RawConn::connect(b.port);
    c.send(&get("/"));
    assert_eq!(c.expect_response(false).status(), 200);
    thread::sleep(Duration::from_millis(500));
    let before = b.cpu_ticks();
    thread::sleep(Duration::from_secs(2));
    let used = b.cpu_ticks() - before;
    // A tick is 10 ms; a busy loop would burn ~200 in 2 s.
    assert!(used <= 2, "idle baton used {used} CPU ticks in 2 s");
}

/// A DNS-discovered cluster whose endpoint is `localhost` reaches the upstream on 127.0.0.1.
fn dns_cluster_on_localhost_serves(discovery: &str) {
    let extra = Extra {
        endpoint_host: "localhost".into(),
        ..Extra::default()
    };
    let (b, up) = proxy_with_upstream_and(&extra, discovery);
    let mut c = RawConn::connect(b.port);
    for _ in 0..3 {
        c.send(&get("/"));
        let r = c.expect_response(false);
        assert_eq!(
            (r.status(), r.body_str()),
            (200, up.greeting()),
            "{discovery}"
        );
    }
}

#[test]
fn logical_dns_resolves_localhost() {
    dns_cluster_on_localhost_serves("LOGICAL_DNS");
}

#[test]
fn strict_dns_resolves_localhost() {
    dns_cluster_on_localhost_serves("STRICT_DNS");
}

#[test]
fn round_robin_spreads_over_static_endpoints() {
    let a = Upstream::start("a");
    let z = Upstream::start("z");
    let b = Baton::start(&proxy_yaml(
        free_port(),
        &[("svc", &[a.port(), z.port()], "STATIC")],
        &Extra::default(),
    ));
    for _ in 0..6 {
        let mut c = RawConn::connect(b.port);
        c.send(&get("/"));
        assert_eq!(c.expect_response(false).status(), 200);
    }
    assert_eq!(
        (a.requests(), z.requests()),
        (3, 3),
        "ROUND_ROBIN over two endpoints"
    );
}
