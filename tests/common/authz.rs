//! A tiny HTTP authorization service for the ext_authz tests, on 127.0.0.1: one thread per
//! check, each answered and closed. It records every check request's head and decides by
//! the request:
//!
//! | request | answer |
//! |---|---|
//! | `Authorization: Bearer NAME` | 200 with `x-current-user: NAME` (and `x-extra`, `x-client-note`) |
//! | path containing `/slow` | 200 after 3 s (past any check timeout in the tests) |
//! | path containing `/gate` | held until the test calls `release` (at most 15 s), then as the rest |
//! | path containing `/boom` | 503 |
//! | anything else | 401, body `denied by authz`, `x-authz-reason: no token`, `www-authenticate` |

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Authz {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    gate: Arc<AtomicBool>,
}

impl Authz {
    pub fn start() -> Authz {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind authz");
        let port = l.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(AtomicBool::new(false));
        let (s2, st2, g2) = (seen.clone(), stop.clone(), gate.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(c) = c else { continue };
                let (s3, g3) = (s2.clone(), g2.clone());
                std::thread::spawn(move || answer(c, &s3, &g3));
            }
        });
        Authz {
            port,
            seen,
            stop,
            gate,
        }
    }

    /// Lets the `/gate` checks held so far (and later ones) be answered.
    pub fn release(&self) {
        self.gate.store(true, Ordering::SeqCst);
    }

    /// The check request heads received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Authz {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(mut c: TcpStream, seen: &Mutex<Vec<String>>, gate: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut b = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    if let Ok(mut v) = seen.lock() {
        v.push(text.clone());
    }
    let path = text.split(' ').nth(1).unwrap_or("").to_string();
    let user = text
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    if path.contains("/gate") {
        for _ in 0..750 {
            if gate.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let reply = if path.contains("/slow") {
        std::thread::sleep(Duration::from_secs(3));
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
    } else if path.contains("/boom") {
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom"
            .to_string()
    } else if let Some(u) = user {
        format!(
            "HTTP/1.1 200 OK\r\nx-current-user: {u}\r\nx-extra: e\r\nx-client-note: hi\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        )
    } else {
        "HTTP/1.1 401 Unauthorized\r\nx-authz-reason: no token\r\nwww-authenticate: Bearer\r\n\
         host: authz.example\r\ncontent-type: text/plain\r\ncontent-length: 15\r\n\
         connection: close\r\n\r\ndenied by authz"
            .to_string()
    };
    let _ = c.write_all(reply.as_bytes());
}

// Client side of the ext_authz tests: one request, its answer as text.

/// One request on a fresh connection: the whole response (head and body) as text.
pub fn exchange(port: u16, req: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(super::IO_TIMEOUT))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` with Host `app.local`, `headers` and `Connection: close`.
pub fn get(port: u16, path: &str, headers: &str) -> String {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: app.local\r\n{headers}Connection: close\r\n\r\n"),
    )
}

/// The status of a response `get` returned (0 when it has none).
pub fn status(resp: &str) -> u16 {
    resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The value of a response's header `name`, if any.
pub fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response's body.
pub fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

// Configs of the ext_authz tests.

const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const PER_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

/// A listener on `port` whose ext_authz filter (`filter`: the typed config's fields, 14
/// spaces deep) checks with `cluster`; `/open` has the filter off.
pub fn listener(name: &str, port: u16, filter: &str, log: &str) -> String {
    let head = super::yaml::listener_head("127.0.0.1", port)
        .replacen("static_resources:\n  listeners:\n", "", 1)
        .replace("listener_0", name)
        .replace("stat_prefix: ingress_http", &format!("stat_prefix: {name}"));
    let access_log = super::yaml::file_access_log(
        log,
        "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n",
    );
    format!(
        r#"{head}{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/open"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  authz: {{"@type": {PER_ROUTE}, disabled: true}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: authz
            typed_config:
              "@type": {EXT_AUTHZ}
{filter}
          - name: envoy.filters.http.router
"#
    )
}

/// A STATIC cluster of one host, 127.0.0.1:`port`; `h2`: with `http2_protocol_options`, as a
/// gRPC service's cluster is written.
pub fn cluster(name: &str, port: u16, h2: bool) -> String {
    let opts = if h2 {
        "    typed_extension_protocol_options:\n      \
         envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        \
         explicit_http_config: {http2_protocol_options: {}}\n"
    } else {
        ""
    };
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{opts}    load_assignment:\n      \
         cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: \
         {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
    )
}
