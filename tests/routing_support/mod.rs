//! Helpers shared by the `routing_*` tests: a bootstrap with a caller-written route_config,
//! one-shot requests on a fresh connection, and two misbehaving upstreams (one that answers
//! every request with a fixed response, one that accepts and never answers).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::{local, RawConn, Response};

/// A STATIC cluster of 127.0.0.1 endpoints, ROUND_ROBIN.
pub fn cluster(name: &str, ports: &[u16]) -> String {
    cluster_at(name, "127.0.0.1", "STATIC", ports, "")
}

/// A cluster with the endpoints' host, discovery type and extra cluster-level lines.
pub fn cluster_at(name: &str, host: &str, kind: &str, ports: &[u16], extra: &str) -> String {
    let mut y = format!(
        "- name: {name}\n  connect_timeout: 0.5s\n  type: {kind}\n  lb_policy: ROUND_ROBIN\n  \
         dns_lookup_family: V4_ONLY\n{extra}  load_assignment:\n    cluster_name: {name}\n    \
         endpoints:\n    - lb_endpoints:\n"
    );
    for p in ports {
        y.push_str(&format!(
            "      - endpoint:\n          address:\n            socket_address: {{address: {host}, port_value: {p}}}\n"
        ));
    }
    y
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// A bootstrap with one listener on `listen`, `route_config` (YAML as written under
/// `route_config:`, starting at column 0) and `clusters` (from `cluster`/`cluster_at`).
pub fn config(listen: u16, route_config: &str, clusters: &[String]) -> String {
    format!(
        r#"{head}          route_config:
{rc}          http_filters:
          - name: envoy.filters.http.router
  clusters:
{cl}"#,
        head = crate::common::yaml::listener_head("127.0.0.1", listen),
        rc = indent(route_config, 12),
        cl = indent(&clusters.concat(), 2),
    )
}

/// A route_config with one virtual host for every domain and the given `routes` (YAML list
/// items indented by two spaces: `  - match: ...`).
pub fn single_vhost(routes: &str) -> String {
    format!("name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n{routes}")
}

/// Sends one request (raw bytes) on a new connection and reads the response.
pub fn send(port: u16, raw: &str) -> Response {
    let mut c = RawConn::connect(port);
    c.send(raw.as_bytes());
    c.expect_response(raw.starts_with("HEAD "))
}

/// GET `path` with `Host: host` and extra header lines (each ending in \r\n).
pub fn fetch(port: u16, host: &str, path: &str, extra: &str) -> Response {
    send(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// An upstream that answers every request with `status` (body `bad <status>`) and closes;
/// counts the requests it saw.
pub struct Fixed {
    pub port: u16,
    pub hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Fixed {
    pub fn start(status: u16) -> Fixed {
        let l = TcpListener::bind(local(0)).expect("bind fixed upstream");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let hits = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let h = h.clone();
                        thread::spawn(move || answer(s, status, &h));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Fixed { port, hits, stop }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Fixed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads a request head (bounded by a 5 s read timeout); `None` if the peer closes first.
pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut b = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    Some(head)
}

fn answer(mut s: TcpStream, status: u16, hits: &AtomicU64) {
    if read_head(&mut s).is_none() {
        return;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let body = format!("bad {status}");
    let _ = write!(
        s,
        "HTTP/1.1 {status} Whatever\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Let the proxy read the response before the close (and an RST from unread body bytes).
    thread::sleep(Duration::from_millis(200));
}

/// An upstream that accepts connections and never answers (for per-try timeouts).
pub struct BlackHole {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let l = TcpListener::bind(local(0)).expect("bind black hole");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::SeqCst) {
                if let Ok((s, _)) = l.accept() {
                    held.push(s);
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        BlackHole { port, stop }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
