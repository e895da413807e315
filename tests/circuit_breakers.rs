//! A cluster's `circuit_breakers` against the real binary: `max_connections` makes requests
//! wait for a pooled connection, `max_pending_requests` and `max_requests` answer 503 `UO` at
//! once, `max_retries` and `retry_budget` refuse retries, the `circuit_breakers.*` gauges
//! and the overflow counters read from the admin endpoint (text and Prometheus), Envoy's
//! defaults without the field, and the refusals of what baton does not implement.
//!
//! The upstream here (`Gate`) holds every response until the test opens it, so which
//! request waits where is decided by the test, not by timing.

mod admin_util;
mod common;
mod routing_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use admin_util::{admin_get, eventually, stat, stats, tmp_file, wait_file_lines, wait_live};
use common::*;
use routing_support::*;

/// An upstream that reads requests (GET, no body) on keep-alive connections and answers each
/// with `200 ok` only once `open` is set; counts connections and requests seen.
struct Gate {
    port: u16,
    conns: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
}

impl Gate {
    fn start() -> Gate {
        let l = TcpListener::bind(local(0)).expect("bind gate");
        let port = l.local_addr().expect("addr").port();
        let (conns, seen, open) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (c, s, o) = (conns.clone(), seen.clone(), open.clone());
        thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(stream) = stream else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let (s, o) = (s.clone(), o.clone());
                thread::spawn(move || Gate::serve(stream, &s, &o));
            }
        });
        Gate {
            port,
            conns,
            seen,
            open,
        }
    }

    fn serve(mut stream: TcpStream, seen: &AtomicUsize, open: &AtomicBool) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                seen.fetch_add(1, Ordering::SeqCst);
                while !open.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                }
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                if stream.write_all(ok).is_err() {
                    return;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Impossible to pass unnoticed: every response of the log and the body of the overflow.
const LOG_FORMAT: &str = "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n";
const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// Baton with cluster `svc` (`ports`, extra cluster lines such as `circuit_breakers:`),
/// `routes`, an access log at `log` and an admin listener; LIVE. Returns it and the admin
/// port.
fn start(ports: &[u16], cluster_lines: &str, routes: &str, log: &std::path::Path) -> (Baton, u16) {
    let admin = free_port();
    let yaml = config(
        free_port(),
        &single_vhost(routes),
        &[cluster_at(
            "svc",
            "127.0.0.1",
            "STATIC",
            ports,
            cluster_lines,
        )],
    );
    let hcm = format!(
        "stat_prefix: ingress_http\n{}",
        yaml::file_access_log(&log.display().to_string(), LOG_FORMAT)
    );
    let yaml = format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n",
        yaml.replacen("stat_prefix: ingress_http\n", &hcm, 1)
    );
    let b = Baton::start(&yaml);
    wait_live(admin);
    (b, admin)
}

const ROUTE: &str = "  - match: {prefix: /}\n    route: {cluster: svc, timeout: 60s}\n";

/// GET `/` on its own connection from a thread: its status and body.
fn spawn_get(port: u16) -> JoinHandle<(u16, String)> {
    thread::spawn(move || {
        let r = fetch(port, "h", "/", "");
        (r.status(), String::from_utf8_lossy(&r.body).into_owned())
    })
}

/// `cluster.svc.<name>`.
fn c(admin: u16, name: &str) -> i64 {
    stat(admin, &format!("cluster.svc.{name}"))
}

/// `cluster.svc.circuit_breakers.default.<name>`.
fn cb(admin: u16, name: &str) -> i64 {
    c(admin, &format!("circuit_breakers.default.{name}"))
}

fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    assert!(eventually(Duration::from_secs(20), cond), "never: {what}");
}

#[test]
fn max_connections_queues_requests_and_max_pending_requests_overflows_at_once() {
    let gate = Gate::start();
    let log = tmp_file("cb-pending");
    let (b, admin) = start(
        &[gate.port],
        "  circuit_breakers:\n    thresholds:\n    - {max_connections: 2, \
         max_pending_requests: 1, track_remaining: true}\n",
        ROUTE,
        &log,
    );
    assert_eq!(cb(admin, "remaining_cx"), 2);
    assert_eq!(cb(admin, "remaining_pending"), 1);
    assert_eq!(cb(admin, "remaining_rq"), 1024);
    assert_eq!(cb(admin, "remaining_retries"), 3);

    // Two requests take the two connections the cluster may have. One after the other: a
    // request is pending until its connection is established, so two arriving together
    // would find the pending queue (of one) full.
    let first: Vec<_> = (1..=2)
        .map(|n| {
            let t = spawn_get(b.port);
            wait_for("the request upstream", || gate.seen() == n);
            t
        })
        .collect();
    wait_for("two active requests", || {
        c(admin, "upstream_rq_active") == 2
    });
    assert_eq!(c(admin, "upstream_cx_active"), 2);
    assert_eq!(cb(admin, "cx_open"), 1);
    assert_eq!(cb(admin, "remaining_cx"), 0);
    assert_eq!(cb(admin, "rq_open"), 0);
    assert_eq!(cb(admin, "remaining_rq"), 1022);

    // A third waits for one of them: no third connection is opened.
    let third = spawn_get(b.port);
    wait_for("a pending request", || {
        c(admin, "upstream_rq_pending_active") == 1
    });
    assert_eq!(c(admin, "upstream_cx_overflow"), 1);
    assert_eq!(cb(admin, "rq_pending_open"), 1);
    assert_eq!(cb(admin, "remaining_pending"), 0);

    // A fourth finds the pending queue full: 503 UO at once, while the others still wait.
    let r = fetch(b.port, "h", "/", "");
    assert_eq!(r.status(), 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(String::from_utf8_lossy(&r.body), OVERFLOW_BODY);
    assert_eq!(c(admin, "upstream_rq_pending_overflow"), 1);
    assert_eq!(gate.seen(), 2);
    assert_eq!(c(admin, "upstream_rq_active"), 2);
    assert_eq!(c(admin, "upstream_rq_pending_active"), 1);

    // Released, the first two are answered and the third is served on a pooled connection.
    gate.open();
    for t in first {
        assert_eq!(t.join().expect("client"), (200, "ok\n".to_string()));
    }
    assert_eq!(third.join().expect("client"), (200, "ok\n".to_string()));
    assert_eq!(gate.seen(), 3);
    assert_eq!(gate.conns(), 2, "never more than max_connections");
    wait_for("no active request", || c(admin, "upstream_rq_active") == 0);
    assert_eq!(c(admin, "upstream_rq_pending_active"), 0);
    assert_eq!(cb(admin, "rq_pending_open"), 0);
    assert_eq!(cb(admin, "remaining_pending"), 1);
    assert_eq!(cb(admin, "remaining_rq"), 1024);
    // The two connections stay pooled, and still count.
    assert_eq!(cb(admin, "cx_open"), 1);
    assert_eq!(c(admin, "upstream_rq_pending_overflow"), 1);

    let lines = wait_file_lines(&log, 4);
    let overflowed: Vec<&String> = lines.iter().filter(|l| l.starts_with("503")).collect();
    assert_eq!(
        overflowed,
        ["503 UO upstream_reset_before_response_started{overflow}"]
    );
    assert_eq!(
        lines.iter().filter(|l| *l == "200 - via_upstream").count(),
        3
    );

    // Prometheus shows the breakers with the cluster as a label, as Envoy does.
    let prom = admin_get(admin, "/stats/prometheus");
    for line in [
        "envoy_cluster_circuit_breakers_default_cx_open{envoy_cluster_name=\"svc\"} 1",
        "envoy_cluster_circuit_breakers_default_rq_pending_open{envoy_cluster_name=\"svc\"} 0",
        "envoy_cluster_circuit_breakers_default_remaining_cx{envoy_cluster_name=\"svc\"} 0",
        "envoy_cluster_upstream_rq_pending_overflow{envoy_cluster_name=\"svc\"} 1",
        "envoy_cluster_upstream_cx_overflow{envoy_cluster_name=\"svc\"} 1",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} missing:\n{prom}");
    }
}

#[test]
fn max_requests_answers_503_overflow_once_reached() {
    let gate = Gate::start();
    let log = tmp_file("cb-requests");
    let (b, admin) = start(
        &[gate.port],
        "  circuit_breakers: {thresholds: {max_requests: 1}}\n",
        ROUTE,
        &log,
    );
    let first = spawn_get(b.port);
    wait_for("one request upstream", || gate.seen() == 1);
    wait_for("rq_open", || cb(admin, "rq_open") == 1);
    // The second gets a connection, but no request slot: 503 UO, and its connection goes
    // back to the pool unused.
    let r = fetch(b.port, "h", "/", "");
    assert_eq!(r.status(), 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(String::from_utf8_lossy(&r.body), OVERFLOW_BODY);
    assert_eq!(c(admin, "upstream_rq_pending_overflow"), 1);
    assert_eq!(gate.seen(), 1);
    gate.open();
    assert_eq!(first.join().expect("client"), (200, "ok\n".to_string()));
    wait_for("rq_open closed", || cb(admin, "rq_open") == 0);
    // With the slot free again, requests are served (on the pooled connections).
    assert_eq!(fetch(b.port, "h", "/", "").status(), 200);
    assert_eq!(fetch(b.port, "h", "/", "").status(), 200);
    assert_eq!(gate.conns(), 2);
    let lines = wait_file_lines(&log, 4);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("503 UO ")).count(),
        1,
        "{lines:?}"
    );
}

#[test]
fn a_request_that_times_out_while_pending_gives_its_slot_back() {
    let gate = Gate::start();
    let routes = "  - match: {prefix: /slow}\n    route: {cluster: svc, timeout: 60s}\n  \
                  - match: {prefix: /}\n    route: {cluster: svc, timeout: 1s}\n";
    let (b, admin) = start(
        &[gate.port],
        "  circuit_breakers: {thresholds: {max_connections: 1, max_pending_requests: 1}}\n",
        routes,
        &tmp_file("cb-timeout"),
    );
    let port = b.port;
    let first = thread::spawn(move || fetch(port, "h", "/slow", "").status());
    wait_for("one request upstream", || gate.seen() == 1);
    // Pending behind the first until its route timeout: 504, and the pending slot is free
    // again for the next one (which also waits, then times out).
    for _ in 0..2 {
        assert_eq!(fetch(b.port, "h", "/", "").status(), 504);
        assert_eq!(c(admin, "upstream_rq_pending_active"), 0);
        assert_eq!(cb(admin, "rq_pending_open"), 0);
    }
    assert_eq!(c(admin, "upstream_rq_pending_overflow"), 0);
    gate.open();
    assert_eq!(first.join().expect("client"), 200);
    assert_eq!(gate.seen(), 1);
}

/// A retry policy that retries connect failures, to a port that refuses connections.
fn retrying_to_refused(cluster_lines: &str, tag: &str) -> (Baton, u16, std::os::fd::OwnedFd) {
    let (port, fd) = refused_port();
    let routes = "  - match: {prefix: /}\n    route:\n      cluster: svc\n      \
                  retry_policy: {retry_on: connect-failure, num_retries: 2}\n";
    let (b, admin) = start(&[port], cluster_lines, routes, &tmp_file(tag));
    (b, admin, fd)
}

#[test]
fn max_retries_zero_refuses_every_retry() {
    let (b, admin, _fd) = retrying_to_refused(
        "  circuit_breakers: {thresholds: [{max_retries: 0, track_remaining: true}]}\n",
        "cb-retries",
    );
    assert_eq!(cb(admin, "rq_retry_open"), 1);
    assert_eq!(cb(admin, "remaining_retries"), 0);
    let r = fetch(b.port, "h", "/", "");
    assert_eq!(r.status(), 503);
    // The connect failure's answer: the retry was refused, not the request.
    assert!(r.header("x-envoy-overloaded").is_none());
    assert_eq!(c(admin, "upstream_rq_retry_overflow"), 1);
    assert_eq!(c(admin, "upstream_rq_retry"), 0);
    assert_eq!(c(admin, "upstream_cx_connect_fail"), 1);
}

#[test]
fn the_default_retry_limit_lets_a_lone_request_retry() {
    let (b, admin, _fd) = retrying_to_refused("", "cb-retries-default");
    assert_eq!(fetch(b.port, "h", "/", "").status(), 503);
    assert_eq!(c(admin, "upstream_rq_retry"), 2);
    assert_eq!(c(admin, "upstream_rq_retry_overflow"), 0);
    assert_eq!(c(admin, "upstream_cx_connect_fail"), 3);
}

#[test]
fn a_retry_budget_replaces_max_retries() {
    // min_retry_concurrency 0: with nothing else active the budget allows no retry, though
    // max_retries alone would allow 5.
    let (b, admin, _fd) = retrying_to_refused(
        "  circuit_breakers:\n    thresholds:\n    - max_retries: 5\n      track_remaining: true\n      \
         retry_budget: {budget_percent: {value: 50}, min_retry_concurrency: 0}\n",
        "cb-budget",
    );
    // Envoy's gauges under a budget: remaining_retries is 0, rq_retry_open follows max_retries.
    assert_eq!(cb(admin, "remaining_retries"), 0);
    assert_eq!(cb(admin, "rq_retry_open"), 0);
    assert_eq!(fetch(b.port, "h", "/", "").status(), 503);
    assert_eq!(c(admin, "upstream_rq_retry_overflow"), 1);
    assert_eq!(c(admin, "upstream_rq_retry"), 0);
}

#[test]
fn a_retry_budget_is_a_share_of_the_active_requests() {
    // Four requests wait on a black hole. When the first per-try timeout fires, that try is
    // over (no longer active, as in Envoy) and 50 % of the three others allows one retry;
    // every later decision finds that retry out and at most one other active: refused.
    let hole = BlackHole::start();
    let routes =
        "  - match: {prefix: /}\n    route:\n      cluster: svc\n      timeout: 20s\n      \
                  retry_policy: {retry_on: reset, num_retries: 1, per_try_timeout: 1s}\n";
    let (b, admin) = start(
        &[hole.port],
        "  circuit_breakers: {thresholds: {retry_budget: {budget_percent: {value: 50}, \
         min_retry_concurrency: 0}}}\n",
        routes,
        &tmp_file("cb-budget-share"),
    );
    let clients: Vec<_> = (0..4).map(|_| spawn_get(b.port)).collect();
    for t in clients {
        assert_eq!(t.join().expect("client").0, 504);
    }
    assert_eq!(c(admin, "upstream_rq_retry"), 1);
    assert_eq!(c(admin, "upstream_rq_retry_overflow"), 3);
}

#[test]
fn high_priority_thresholds_only_show_in_their_gauges() {
    let up = Upstream::start("up");
    let (b, admin) = start(
        &[up.port()],
        "  circuit_breakers:\n    thresholds:\n    - {priority: HIGH, max_connections: 0, \
         max_requests: 0, track_remaining: true}\n",
        ROUTE,
        &tmp_file("cb-high"),
    );
    // Requests are of priority DEFAULT: HIGH's closed breakers do not touch them.
    assert_eq!(fetch(b.port, "h", "/", "").status(), 200);
    // /clusters lists both priorities' limits, as Envoy does.
    let listed = admin_get(admin, "/clusters");
    for line in [
        "svc::default_priority::max_connections::1024",
        "svc::default_priority::max_retries::3",
        "svc::high_priority::max_connections::0",
        "svc::high_priority::max_pending_requests::1024",
        "svc::high_priority::max_requests::0",
    ] {
        assert!(
            listed.lines().any(|l| l == line),
            "{line} missing:\n{listed}"
        );
    }
    let high = |n: &str| c(admin, &format!("circuit_breakers.high.{n}"));
    assert_eq!(high("cx_open"), 1);
    assert_eq!(high("rq_open"), 1);
    assert_eq!(high("remaining_cx"), 0);
    assert_eq!(high("remaining_pending"), 1024);
    assert_eq!(cb(admin, "cx_open"), 0);
    // DEFAULT keeps Envoy's defaults and does not track remaining resources.
    let all = stats(admin);
    assert!(!all
        .iter()
        .any(|(n, _)| n.starts_with("cluster.svc.circuit_breakers.default.remaining")));
}

#[test]
fn without_circuit_breakers_envoys_defaults_apply() {
    let gate = Gate::start();
    let (b, admin) = start(&[gate.port], "", ROUTE, &tmp_file("cb-defaults"));
    let all = stats(admin);
    let mut names: Vec<&str> = all
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("cluster.svc.circuit_breakers."))
        .collect();
    names.sort();
    let mut want = Vec::new();
    for p in ["default", "high"] {
        for g in [
            "cx_open",
            "cx_pool_open",
            "rq_open",
            "rq_pending_open",
            "rq_retry_open",
        ] {
            want.push(format!("cluster.svc.circuit_breakers.{p}.{g}"));
        }
    }
    want.sort();
    assert_eq!(names, want);
    assert!(all
        .iter()
        .filter(|(n, _)| n.starts_with("cluster.svc.circuit_breakers."))
        .all(|(_, v)| *v == 0));
    // Far below the default 1024: twenty requests at once each get a connection of their
    // own, none waits and none overflows.
    let clients: Vec<_> = (0..20).map(|_| spawn_get(b.port)).collect();
    wait_for("twenty requests upstream", || gate.seen() == 20);
    assert_eq!(c(admin, "upstream_rq_active"), 20);
    assert_eq!(c(admin, "upstream_rq_pending_active"), 0);
    gate.open();
    for t in clients {
        assert_eq!(t.join().expect("client").0, 200);
    }
    assert_eq!(c(admin, "upstream_cx_overflow"), 0);
    assert_eq!(c(admin, "upstream_rq_pending_overflow"), 0);
}

#[test]
fn unsupported_circuit_breaker_fields_are_refused_by_path() {
    let cases = [
        (
            "  circuit_breakers: {per_host_thresholds: [{max_connections: 1}]}\n",
            "static_resources.clusters[0].circuit_breakers.per_host_thresholds: not supported \
             by baton (per-host circuit breakers)",
        ),
        (
            "  circuit_breakers: {thresholds: [{max_connection_pools: 4}]}\n",
            "static_resources.clusters[0].circuit_breakers.thresholds[0].max_connection_pools: \
             not supported by baton (a limit on connection pools; baton keeps one pool per \
             upstream address)",
        ),
        (
            "  circuit_breakers: {thresholds: [{priority: LOW}]}\n",
            "static_resources.clusters[0].circuit_breakers.thresholds[0].priority: unknown \
             value \"LOW\" (supported: DEFAULT, HIGH)",
        ),
    ];
    for (i, (lines, want)) in cases.iter().enumerate() {
        let yaml = config(
            free_port(),
            &single_vhost(ROUTE),
            &[cluster_at("svc", "127.0.0.1", "STATIC", &[9], lines)],
        );
        let path = tmp_file(&format!("cb-refused-{i}.yaml"));
        std::fs::write(&path, yaml).expect("write config");
        let (st, _, err) = run_baton(
            &["--mode", "validate", "-c", &path.display().to_string()],
            Duration::from_secs(20),
        );
        assert!(!st.success(), "{lines}");
        assert!(err.contains(want), "{err}");
    }
}
