//! Active health checking of cluster hosts (`clusters[].health_checks`), with the real binary:
//! a host whose check fails leaves the load balancer and comes back when it passes again, a
//! host that refuses connections is unhealthy, panic mode sends to every host when too few are
//! healthy, TCP checks send and match bytes, start-up waits for the first round, and the stats
//! and `/clusters` health flags follow.

mod admin_util;
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use admin_util::{admin_get, eventually, stat, wait_live};
use common::*;

/// What the test upstream answers on `/healthz` (and to a TCP check's `PING`).
const HANG: u16 = 0;

/// A small upstream on a raw socket: `GET /healthz` answers the status in `health` (200, 503,
/// or never with `HANG`), other requests `200` with its name as the body (or, for `/fail`,
/// with `x-envoy-immediate-health-check-fail`); `PING` answers `PONG` while `health` is 200,
/// `NOPE` otherwise. Counts connections whose first request is a health check.
#[derive(Clone)]
struct Host {
    name: &'static str,
    port: u16,
    health: Arc<AtomicU16>,
    hc_connections: Arc<AtomicUsize>,
    hc_requests: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    /// The head of the last `/healthz` request.
    last_check: Arc<std::sync::Mutex<String>>,
}

impl Host {
    fn start(name: &'static str) -> Host {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let h = Host {
            name,
            port: l.local_addr().expect("addr").port(),
            health: Arc::new(AtomicU16::new(200)),
            hc_connections: Arc::new(AtomicUsize::new(0)),
            hc_requests: Arc::new(AtomicUsize::new(0)),
            released: Arc::new(AtomicBool::new(false)),
            last_check: Default::default(),
        };
        let me = h.clone();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                let me = me.clone();
                thread::spawn(move || me.serve(s));
            }
        });
        h
    }

    fn set(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    fn serve(&self, mut s: TcpStream) {
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        let mut first = true;
        loop {
            let n = match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&b[..n]);
            if buf.starts_with(b"PING") {
                buf.drain(..4);
                let ok = self.health.load(Ordering::SeqCst) == 200;
                let _ = s.write_all(if ok { b"PONG" } else { b"NOPE" });
                continue;
            }
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                buf.drain(..end + 4);
                let hc = head.contains("user-agent: Envoy/HC");
                if first && hc {
                    self.hc_connections.fetch_add(1, Ordering::SeqCst);
                }
                first = false;
                let path = head.split(' ').nth(1).unwrap_or("");
                let reply = if path == "/healthz" {
                    if let Ok(mut l) = self.last_check.lock() {
                        *l = head.clone();
                    }
                    self.hc_requests.fetch_add(1, Ordering::SeqCst);
                    let mut st = self.health.load(Ordering::SeqCst);
                    while st == HANG && !self.released.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(20));
                        st = self.health.load(Ordering::SeqCst);
                    }
                    if st == HANG {
                        st = 200;
                    }
                    format!("HTTP/1.1 {st} X\r\ncontent-length: 2\r\n\r\nhc")
                } else if path == "/fail" {
                    "HTTP/1.1 200 OK\r\nx-envoy-immediate-health-check-fail: true\r\ncontent-length: 4\r\n\r\nfail".to_string()
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n{}", self.name)
                };
                if s.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// A bootstrap: one listener routing everything to cluster `svc` (hosts on `ports`, with the
/// cluster lines `extra`), and the admin interface.
fn yaml(listen: u16, admin: u16, ports: &[u16], extra: &str) -> String {
    let mut y = common::yaml::listener_head("127.0.0.1", listen);
    y.push_str(
        r#"          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: "/"}, route: {cluster: svc}}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: svc
    connect_timeout: 1s
"#,
    );
    y.push_str(extra);
    y.push_str(
        "    load_assignment:\n      cluster_name: svc\n      endpoints:\n      - lb_endpoints:\n",
    );
    for p in ports {
        y.push_str(&format!(
            "        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}\n"
        ));
    }
    y.push_str(&format!(
        "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    ));
    y
}

/// An HTTP check of `/healthz` every 0.2 s (also without traffic), thresholds 2 and 2, and
/// `more` lines inside it.
fn http_check(more: &str) -> String {
    format!(
        "    health_checks:\n    - timeout: 1s\n      interval: 0.2s\n      no_traffic_interval: 0.2s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {{path: /healthz}}\n{more}"
    )
}

struct Proxy {
    _b: Baton,
    listen: u16,
    admin: u16,
}

fn start(ports: &[u16], extra: &str) -> Proxy {
    let (listen, admin) = (free_port(), free_port());
    live(
        Baton::start(&yaml(listen, admin, ports, extra)),
        listen,
        admin,
    )
}

/// Waits (bounded) until `b` is LIVE.
fn live(b: Baton, listen: u16, admin: u16) -> Proxy {
    wait_live(admin);
    Proxy {
        _b: b,
        listen,
        admin,
    }
}

impl Proxy {
    /// The bodies of `n` requests (each on a fresh connection).
    fn bodies(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let mut c = RawConn::connect(self.listen);
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
                let r = c.expect_response(false);
                format!("{} {}", r.status(), r.body_str())
            })
            .collect()
    }

    /// `/clusters`' health_flags of the host on `port`.
    fn flags(&self, port: u16) -> String {
        let needle = format!("svc::127.0.0.1:{port}::health_flags::");
        admin_get(self.admin, "/clusters")
            .lines()
            .find_map(|l| l.strip_prefix(needle.as_str()).map(str::to_string))
            .unwrap_or_default()
    }

    fn stat(&self, name: &str) -> i64 {
        stat(self.admin, name)
    }
}

fn wait(what: &str, cond: impl FnMut() -> bool) {
    assert!(eventually(Duration::from_secs(20), cond), "never: {what}");
}

#[test]
fn a_host_failing_its_check_leaves_the_balancer_and_comes_back() {
    let (a, b) = (Host::start("A"), Host::start("B"));
    let p = start(&[a.port, b.port], &http_check(""));
    assert_eq!(p.flags(a.port), "healthy");
    assert_eq!(p.stat("cluster.svc.membership_healthy"), 2);
    assert_eq!(p.stat("cluster.svc.health_check.healthy"), 2);
    let both = p.bodies(4);
    assert!(
        both.contains(&"200 A".to_string()) && both.contains(&"200 B".to_string()),
        "{both:?}"
    );

    // A's check answers 503: A is taken out (a status outside expected_statuses ejects at
    // once, as in Envoy) and every request goes to B.
    a.set(503);
    wait("A marked failed", || p.flags(a.port) == "/failed_active_hc");
    assert_eq!(p.stat("cluster.svc.membership_healthy"), 1);
    assert_eq!(p.stat("cluster.svc.health_check.healthy"), 1);
    assert!(p.stat("cluster.svc.health_check.failure") >= 1);
    assert_eq!(p.bodies(6), vec!["200 B".to_string(); 6]);
    assert_eq!(p.stat("cluster.svc.lb_healthy_panic"), 0);
    // Envoy's request: the cluster's name as the host by default.
    let head = b.last_check.lock().map(|h| h.clone()).unwrap_or_default();
    assert_eq!(
        head,
        "GET /healthz HTTP/1.1\r\nhost: svc\r\nuser-agent: Envoy/HC"
    );

    // Passing again (healthy_threshold checks), A is back.
    a.set(200);
    wait("A healthy again", || p.flags(a.port) == "healthy");
    assert_eq!(p.stat("cluster.svc.membership_healthy"), 2);
    let both = p.bodies(4);
    assert!(both.contains(&"200 A".to_string()), "{both:?}");
    assert!(p.stat("cluster.svc.health_check.attempt") >= 4);
    assert!(p.stat("cluster.svc.health_check.success") >= 3);
    assert_eq!(p.stat("cluster.svc.health_check.network_failure"), 0);
    // reuse_connection (default true): every check of B went over one connection.
    wait("B checked a few times", || {
        b.hc_requests.load(Ordering::SeqCst) >= 3
    });
    assert_eq!(b.hc_connections.load(Ordering::SeqCst), 1);
}

#[test]
fn without_reuse_connection_each_check_opens_a_connection() {
    let a = Host::start("A");
    let _p = start(&[a.port], &http_check("      reuse_connection: false\n"));
    wait("A checked a few times", || {
        a.hc_requests.load(Ordering::SeqCst) >= 3
    });
    assert!(a.hc_connections.load(Ordering::SeqCst) >= 3);
}

#[test]
fn a_host_refusing_connections_is_unhealthy_and_gets_no_traffic() {
    let a = Host::start("A");
    let (dead, _hold) = refused_port();
    let p = start(&[a.port, dead], &http_check(""));
    // The first check of the dead host failed before start-up ended.
    assert_eq!(p.flags(dead), "/failed_active_hc");
    assert_eq!(p.flags(a.port), "healthy");
    assert!(p.stat("cluster.svc.health_check.network_failure") >= 1);
    assert_eq!(p.bodies(6), vec!["200 A".to_string(); 6]);
    assert_eq!(p.stat("cluster.svc.membership_healthy"), 1);
    assert_eq!(p.stat("cluster.svc.membership_total"), 2);
}

#[test]
fn with_every_host_unhealthy_panic_mode_sends_to_all() {
    let (a, b) = (Host::start("A"), Host::start("B"));
    a.set(503);
    b.set(503);
    let p = start(&[a.port, b.port], &http_check(""));
    assert_eq!(p.flags(a.port), "/failed_active_hc");
    assert_eq!(p.flags(b.port), "/failed_active_hc");
    let all = p.bodies(4);
    assert!(
        all.contains(&"200 A".to_string()) && all.contains(&"200 B".to_string()),
        "{all:?}"
    );
    assert!(p.stat("cluster.svc.lb_healthy_panic") >= 4);
    assert_eq!(p.stat("cluster.svc.membership_healthy"), 0);
}

#[test]
fn a_panic_threshold_of_zero_sends_nothing_to_unhealthy_hosts() {
    let a = Host::start("A");
    a.set(503);
    let extra = format!(
        "    common_lb_config: {{healthy_panic_threshold: {{value: 0}}}}\n{}",
        http_check("")
    );
    let p = start(&[a.port], &extra);
    assert_eq!(p.bodies(2), vec!["503 no healthy upstream".to_string(); 2]);
    assert_eq!(p.stat("cluster.svc.lb_healthy_panic"), 0);
}

#[test]
fn tcp_checks_send_and_find_the_expected_bytes() {
    let a = Host::start("A");
    let (dead, _hold) = refused_port();
    let check = "    health_checks:\n    - timeout: 0.5s\n      interval: 0.2s\n      no_traffic_interval: 0.2s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n      tcp_health_check: {send: {text: \"50494E47\"}, receive: [{text: \"504f\"}, {text: \"4e47\"}]}\n";
    let p = start(&[a.port, dead], check);
    assert_eq!(p.flags(a.port), "healthy");
    assert_eq!(p.flags(dead), "/failed_active_hc");
    // Answering NOPE, the check never finds PONG: it times out.
    a.set(503);
    wait("A times out", || {
        p.flags(a.port) == "/failed_active_hc/active_hc_timeout"
    });
    a.set(200);
    wait("A passes again", || p.flags(a.port) == "healthy");
}

#[test]
fn a_check_without_an_answer_times_out() {
    let a = Host::start("A");
    let p = start(&[a.port], &http_check(""));
    a.set(HANG);
    wait("A times out twice", || {
        p.flags(a.port) == "/failed_active_hc/active_hc_timeout"
    });
    assert!(p.stat("cluster.svc.health_check.network_failure") >= 2);
    a.released.store(true, Ordering::SeqCst);
}

#[test]
fn start_up_waits_for_the_first_round_of_checks() {
    let a = Host::start("A");
    a.set(HANG);
    let (listen, admin_port) = (free_port(), free_port());
    let check = "    health_checks:\n    - timeout: 60s\n      interval: 0.2s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {path: /healthz}\n";
    let _b = Baton::start(&yaml(listen, admin_port, &[a.port], check));
    wait("the first check reached A", || {
        a.hc_requests.load(Ordering::SeqCst) >= 1
    });
    // The check is unanswered: still initializing, not serving (nor answering the admin).
    thread::sleep(Duration::from_millis(300));
    assert!(!_b.log().contains(" serving: "), "{}", _b.log());
    a.set(200);
    a.released.store(true, Ordering::SeqCst);
    let p = live(_b, listen, admin_port);
    assert_eq!(p.flags(a.port), "healthy");
    assert_eq!(p.bodies(1), vec!["200 A".to_string()]);
}

#[test]
fn an_immediate_health_check_fail_answer_takes_the_host_out_at_once() {
    let a = Host::start("A");
    // Checks far apart: only the first one runs during the test.
    let check = "    health_checks:\n    - timeout: 1s\n      interval: 60s\n      unhealthy_threshold: 3\n      healthy_threshold: 1\n      http_health_check: {path: /healthz}\n";
    let p = start(&[a.port], check);
    assert_eq!(p.flags(a.port), "healthy");
    let mut c = RawConn::connect(p.listen);
    c.send(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    assert_eq!(
        p.flags(a.port),
        "/failed_active_hc/excluded_via_immediate_hc_fail"
    );
    assert_eq!(p.stat("cluster.svc.health_check.passive_failure"), 1);
    // The only host, excluded: panic mode still serves through it.
    assert_eq!(p.bodies(1), vec!["200 A".to_string()]);
}

#[test]
fn strict_dns_hosts_are_checked() {
    let a = Host::start("A");
    a.set(503);
    let (listen, admin_port) = (free_port(), free_port());
    let y = yaml(listen, admin_port, &[a.port], &http_check(""))
        .replace(
            "    connect_timeout: 1s\n",
            "    connect_timeout: 1s\n    type: STRICT_DNS\n    dns_lookup_family: V4_ONLY\n",
        )
        .replace(
            &format!("address: 127.0.0.1, port_value: {}", a.port),
            &format!("address: localhost, port_value: {}", a.port),
        );
    let p = live(Baton::start(&y), listen, admin_port);
    assert_eq!(p.flags(a.port), "/failed_active_hc");
    a.set(200);
    wait("A healthy", || p.flags(a.port) == "healthy");
}

#[test]
fn health_checking_at_rest_uses_no_cpu() {
    let a = Host::start("A");
    let (listen, admin_port) = (free_port(), free_port());
    let check = "    health_checks:\n    - timeout: 1s\n      interval: 0.5s\n      no_traffic_interval: 0.5s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {path: /healthz}\n";
    let b = Baton::start(&yaml(listen, admin_port, &[a.port], check));
    wait_live(admin_port);
    thread::sleep(Duration::from_millis(500));
    let before = b.cpu_ticks();
    thread::sleep(Duration::from_secs(2));
    let used = b.cpu_ticks() - before;
    // A tick is 10 ms; a busy loop would burn ~200 in 2 s. Four checks cost far below one.
    assert!(
        used <= 2,
        "baton used {used} CPU ticks in 2 s of health checks"
    );
    assert!(a.hc_requests.load(Ordering::SeqCst) >= 3);
}

#[test]
fn a_first_check_that_never_ends_holds_start_up_for_5_s_at_most() {
    let a = Host::start("A");
    a.set(HANG);
    let check = "    health_checks:\n    - timeout: 600s\n      interval: 1s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {path: /healthz}\n";
    let p = start(&[a.port], check);
    assert!(
        p._b.log().contains("first health checks not all done"),
        "{}",
        p._b.log()
    );
    assert_eq!(p.flags(a.port), "/failed_active_hc");
    // The only host, unhealthy: panic mode serves through it (its check still hangs).
    assert_eq!(p.bodies(1), vec!["200 A".to_string()]);
    a.released.store(true, Ordering::SeqCst);
}

#[test]
fn http_checks_send_the_configured_host_and_header_edits() {
    let a = Host::start("A");
    let edits = "      http_health_check:\n        path: /healthz\n        method: OPTIONS\n        host: svc.test\n        request_headers_to_remove: [user-agent]\n        request_headers_to_add:\n        - header: {key: x-check, value: \"%UPSTREAM_HOST% %REQ(:PATH)% %REQ(:METHOD)%\"}\n";
    let check = format!("    health_checks:\n    - timeout: 1s\n      interval: 60s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n{edits}");
    let p = start(&[a.port], &check);
    assert_eq!(p.flags(a.port), "healthy");
    let head = a.last_check.lock().map(|h| h.clone()).unwrap_or_default();
    assert_eq!(
        head,
        format!(
            "OPTIONS /healthz HTTP/1.1\r\nhost: svc.test\r\nx-check: 127.0.0.1:{} /healthz OPTIONS",
            a.port
        )
    );
}

/// Health state is per process: a hot-restart successor runs its own first round before it
/// takes over, so it serves with the same view of the hosts.
#[test]
fn a_hot_restart_successor_checks_the_hosts_before_it_takes_over() {
    use common::hot::{hot_start, hot_takeover, HotDir};
    let (a, b) = (Host::start("A"), Host::start("B"));
    b.set(503);
    let dir = HotDir::new("hc");
    let (listen, admin1, admin2) = (free_port(), free_port(), free_port());
    let old = hot_start(
        &yaml(listen, admin1, &[a.port, b.port], &http_check("")),
        &dir,
        &[],
    );
    wait_live(admin1);
    let checks_before = b.hc_requests.load(Ordering::SeqCst);
    let (new, _) = hot_takeover(
        &yaml(listen, admin2, &[a.port, b.port], &http_check("")),
        &dir,
        &[],
        &old,
    );
    let p = live(new, listen, admin2);
    assert!(b.hc_requests.load(Ordering::SeqCst) > checks_before);
    assert_eq!(p.flags(b.port), "/failed_active_hc");
    assert_eq!(p.flags(a.port), "healthy");
    assert_eq!(p.bodies(4), vec!["200 A".to_string(); 4]);
    assert!(!p._b.log().contains("first health checks not all done"));
    old.sigterm();
}

#[test]
fn a_retriable_status_counts_towards_the_threshold_instead_of_ejecting() {
    let a = Host::start("A");
    let check = "    health_checks:\n    - timeout: 1s\n      interval: 0.2s\n      no_traffic_interval: 0.2s\n      unhealthy_threshold: 1000\n      healthy_threshold: 1\n      http_health_check: {path: /healthz, retriable_statuses: [{start: 503, end: 504}]}\n";
    let p = start(&[a.port], check);
    a.set(503);
    wait("three failed checks", || {
        p.stat("cluster.svc.health_check.failure") >= 3
    });
    // Far from 1000 failures in a row: still healthy (a 503 outside retriable_statuses
    // would have ejected it at once).
    assert_eq!(p.flags(a.port), "healthy");
    assert_eq!(p.stat("cluster.svc.health_check.network_failure"), 0);
}

/// The health check filter's `cluster_min_healthy_percentages` counts the hosts passing
/// their active health checks.
#[test]
fn the_health_check_filter_sees_hosts_failing_their_checks() {
    let (a, b) = (Host::start("A"), Host::start("B"));
    let (listen, admin_port) = (free_port(), free_port());
    let filter = "          http_filters:\n          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n              pass_through_mode: false\n              headers: [{name: \":path\", string_match: {exact: /hc}}]\n              cluster_min_healthy_percentages: {svc: {value: 60}}\n";
    let y = yaml(listen, admin_port, &[a.port, b.port], &http_check("")).replacen(
        "          http_filters:\n",
        filter,
        1,
    );
    let p = live(Baton::start(&y), listen, admin_port);
    let hc = || {
        let mut c = RawConn::connect(listen);
        c.send(b"GET /hc HTTP/1.1\r\nHost: x\r\n\r\n");
        c.expect_response(false).status()
    };
    assert_eq!(hc(), 200);
    b.set(503);
    wait("B marked failed", || p.flags(b.port) == "/failed_active_hc");
    // 1 of 2 healthy is under 60 %.
    assert_eq!(hc(), 503);
}
