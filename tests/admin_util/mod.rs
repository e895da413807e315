//! Shared by the admin_* tests: a config with one route per outcome (2xx..5xx from the
//! upstream, no route, connect failure, no healthy upstream, route timeout, LOGICAL_DNS on
//! localhost) plus the admin listener, and small admin-interface clients.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{free_port, local, refused_port, Baton, Upstream, IO_TIMEOUT};

/// Ports and paths of one test set-up.
pub struct Setup {
    pub listen: u16,
    pub admin: u16,
    pub upstream: u16,
    /// Nothing listens here: connects are refused.
    pub dead: u16,
    /// Holds `dead` (bound, never listening); `None` for a set-up only validated, never run.
    pub dead_hold: Option<std::os::fd::OwnedFd>,
    /// (path, format) of each access log.
    pub logs: Vec<(String, Option<String>)>,
}

fn cluster(y: &mut String, name: &str, kind: &str, hosts: &[(&str, u16)], extra: &str) {
    let _ = write!(
        y,
        "  - name: {name}\n    connect_timeout: 1s\n    type: {kind}\n    lb_policy: ROUND_ROBIN\n    dns_lookup_family: V4_ONLY\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:{}\n",
        if hosts.is_empty() { " []" } else { "" }
    );
    for (h, p) in hosts {
        let _ = write!(
            y,
            "        - endpoint:\n            address:\n              socket_address: {{address: {h}, port_value: {p}}}\n"
        );
    }
}

impl Setup {
    pub fn yaml(&self) -> String {
        let mut y = crate::common::yaml::listener_head("127.0.0.1", self.listen);
        y.push_str(&access_logs(&self.logs));
        y.push_str(
            r#"          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - {match: {prefix: "/status/"}, route: {cluster: svc}}
              - {match: {prefix: "/bytes/"}, route: {cluster: svc}}
              - {match: {prefix: "/hang"}, route: {cluster: svc, timeout: 0.5s}}
              - {match: {prefix: "/dead"}, route: {cluster: dead}}
              - {match: {prefix: "/empty"}, route: {cluster: empty}}
              - {match: {prefix: "/dns/"}, route: {cluster: dnsc, prefix_rewrite: "/status/"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#,
        );
        cluster(&mut y, "svc", "STATIC", &[("127.0.0.1", self.upstream)], "");
        cluster(&mut y, "dead", "STATIC", &[("127.0.0.1", self.dead)], "");
        cluster(&mut y, "empty", "STATIC", &[], "");
        cluster(
            &mut y,
            "dnsc",
            "LOGICAL_DNS",
            &[("localhost", self.upstream)],
            "    dns_refresh_rate: 0.3s\n",
        );
        let _ = write!(
            y,
            "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {}}}\n",
            self.admin
        );
        y
    }
}

/// The connection manager's `access_log:` list: one file logger per (path, format).
pub fn access_logs(logs: &[(String, Option<String>)]) -> String {
    let mut y = String::new();
    if !logs.is_empty() {
        y.push_str("          access_log:\n");
    }
    for (path, format) in logs {
        let _ = write!(
            y,
            "          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {path}\n"
        );
        if let Some(f) = format {
            let _ = write!(y, "              log_format:\n                text_format_source:\n                  inline_string: {f:?}\n");
        }
    }
    y
}

/// An upstream, baton with `Setup::yaml` (these access logs) on fresh ports, LIVE.
pub fn start(logs: Vec<(String, Option<String>)>) -> (Baton, Upstream, Setup) {
    start_edited(logs, |y| y)
}

/// As `start`, with the config text passed through `edit` first.
pub fn start_edited(
    logs: Vec<(String, Option<String>)>,
    edit: impl Fn(String) -> String,
) -> (Baton, Upstream, Setup) {
    start_edited_args(logs, edit, &[])
}

/// As `start_edited`, with extra command-line arguments.
pub fn start_edited_args(
    logs: Vec<(String, Option<String>)>,
    edit: impl Fn(String) -> String,
    args: &[&str],
) -> (Baton, Upstream, Setup) {
    let up = Upstream::start("up1");
    let (dead, hold) = refused_port();
    let s = Setup {
        listen: free_port(),
        admin: free_port(),
        upstream: up.port(),
        dead,
        dead_hold: Some(hold),
        logs,
    };
    let b = Baton::start_args(&edit(s.yaml()), args);
    wait_live(s.admin);
    (b, up, s)
}

/// Waits (bounded) until the proxy reports LIVE: the listener socket accepts at TCP level as
/// soon as it is bound, but baton is PRE_INITIALIZING until its first DNS answers.
pub fn wait_live(admin_port: u16) {
    // The admin socket may be bound a moment after the listener: a refused connect is "not yet".
    let live = eventually(Duration::from_secs(20), || {
        TcpStream::connect_timeout(&local(admin_port), IO_TIMEOUT).is_ok()
            && admin(admin_port, "GET", "/ready").0 == 200
    });
    assert!(live, "baton never became LIVE");
}

/// One admin request on its own connection; (status, body).
pub fn admin(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect admin");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write admin request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read admin response");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

pub fn admin_get(port: u16, path: &str) -> String {
    let (st, body) = admin(port, "GET", path);
    assert_eq!(st, 200, "GET {path}: {body}");
    body
}

/// Every stat from `/stats`, as (name, value).
pub fn stats(port: u16) -> Vec<(String, i64)> {
    admin_get(port, "/stats")
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(": ")?;
            Some((n.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One stat's value (panics when absent: the name is part of the contract).
pub fn stat(port: u16, name: &str) -> i64 {
    stats(port)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("stat {name} missing"))
}

/// Polls `cond` (bounded by `timeout`); true once it holds.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and returns the status.
pub fn request(port: u16, method: &str, path: &str, body: &str, extra: &str) -> u16 {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\nUser-Agent: admin-test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let out = crate::common::raw_exchange(port, req.as_bytes(), IO_TIMEOUT);
    let text = String::from_utf8_lossy(&out);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no response to {method} {path}: {text:?}"))
}

/// A fresh temporary file path for test `tag` (removed if it exists).
pub fn tmp_file(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("baton-test-{}-{tag}.log", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// The lines of a file (none if it does not exist yet).
pub fn file_lines(p: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The lines of a file once it has at least `n` (bounded wait; fails the test otherwise).
pub fn wait_file_lines(p: &std::path::Path, n: usize) -> Vec<String> {
    assert!(
        eventually(Duration::from_secs(20), || file_lines(p).len() >= n),
        "{} lines in {p:?}, want {n}",
        file_lines(p).len()
    );
    file_lines(p)
}
