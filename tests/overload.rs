//! The overload manager's fixed-heap monitor and its actions, through the real binary: while
//! clients hold request bodies in baton's buffers (their upstream never reads), the heap's
//! pressure crosses the triggers; new requests get Envoy's 503 `envoy overloaded`, responses
//! close their connections, the stats say so; when those clients go, `shrink_heap` gives the
//! memory back and requests are served again. `stop_accepting_connections` holds new
//! connections in the backlog until the pressure falls.

mod admin_util;
mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use admin_util::{stat, wait_live};
use common::*;

const MAX_HEAP: u64 = 24 << 20;

fn yaml(listen: u16, admin: u16, upstream: u16, sink: u16, actions: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    format!(
        r#"{head}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/stall"}}
                route: {{cluster: sink, timeout: 0s}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
  - name: sink
    type: STATIC
    load_assignment:
      cluster_name: sink
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {sink}}}}}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
overload_manager:
  refresh_interval: 0.05s
  resource_monitors:
  - name: heap
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
      max_heap_size_bytes: {MAX_HEAP}
  actions:
{actions}"#
    )
}

fn action(name: &str, value: f64) -> String {
    format!(
        "  - name: envoy.overload_actions.{name}\n    triggers: [{{name: heap, threshold: {{value: {value}}}}}]\n"
    )
}

/// One GET on a new connection: (status, connection header, body).
fn get(port: u16) -> (u16, String, String) {
    let mut c = RawConn::connect(port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.expect_response(false);
    let conn = r.header("connection").unwrap_or_default().to_string();
    (r.status(), conn, r.body_str())
}

/// Clients whose request bodies baton buffers: a `/stall` POST each, its upstream (the sink)
/// accepting and never reading. Each writes until baton stops reading (its buffer limit) and
/// then waits; `release` closes the sink's connections (unread bytes: a reset) and the
/// clients', and baton frees what it held for them.
struct Stallers {
    conns: Vec<TcpStream>,
    threads: Vec<std::thread::JoinHandle<()>>,
    held: Held,
}

/// A listener that accepts and keeps every connection, never reading.
fn sink() -> (u16, Held) {
    let l = TcpListener::bind("127.0.0.1:0").expect("sink");
    let port = l.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(200).flatten() {
            h.lock().unwrap().push(s);
        }
    });
    (port, held)
}

impl Stallers {
    fn start(port: u16, n: usize, held: &Held) -> Stallers {
        let mut conns = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..n {
            let mut s = TcpStream::connect(local(port)).expect("connect");
            conns.push(s.try_clone().expect("clone"));
            threads.push(std::thread::spawn(move || {
                let len = 64 << 20;
                let head =
                    format!("POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b'z'; 64 << 10];
                let mut sent = 0;
                while sent < len {
                    match s.write(&chunk) {
                        Ok(n) if n > 0 => sent += n,
                        _ => return,
                    }
                }
            }));
        }
        Stallers {
            conns,
            threads,
            held: held.clone(),
        }
    }

    fn release(self) {
        self.held.lock().unwrap().clear();
        for c in &self.conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn eventually_true(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

type Held = std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>;

/// baton with the overload `actions`, live, its `/` upstream and its `/stall` sink:
/// (baton, upstream, the sink's connections, listener port, admin port).
fn start(actions: &[String]) -> (Baton, Upstream, Held, u16, u16) {
    let up = Upstream::start("backend");
    let (sink_port, held) = sink();
    let (port, admin) = (free_port(), free_port());
    let config = yaml(port, admin, up.port(), sink_port, &actions.concat());
    let mut b = Baton::spawn_with(port, &["--config-yaml", &config], &[]);
    b.wait_listening();
    wait_live(admin);
    (b, up, held, port, admin)
}

#[test]
fn heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it() {
    let (b, _up, held, port, admin) = start(&[
        action("stop_accepting_requests", 0.5),
        action("disable_http_keepalive", 0.5),
        action("shrink_heap", 0.3),
    ]);
    let pressure = "overload.heap.pressure";
    let idle = stat(admin, pressure);
    assert!(
        idle < 30,
        "an idle baton is already at {idle} % of {MAX_HEAP}"
    );
    let (status, conn, _) = get(port);
    assert_eq!((status, conn.as_str()), (200, ""), "{}", b.log());

    // Each stalled POST holds up to the listener's buffer limit (1 MiB) in baton.
    let stallers = Stallers::start(port, 20, &held);
    let overloaded = eventually_true(Duration::from_secs(20), || {
        stat(
            admin,
            "overload.envoy.overload_actions.stop_accepting_requests.active",
        ) == 1
    });
    assert!(
        overloaded,
        "pressure {} %\n{}",
        stat(admin, pressure),
        b.log()
    );
    let (status, conn, body) = get(port);
    assert_eq!(
        (status, body.as_str(), conn.as_str()),
        (503, "envoy overloaded", "close"),
        "{}",
        b.log()
    );
    assert!(stat(admin, "http.ingress_http.downstream_rq_overload_close") >= 1);
    assert!(
        stat(
            admin,
            "http.ingress_http.downstream_cx_overload_disable_keepalive"
        ) >= 1
    );
    assert_eq!(
        stat(
            admin,
            "overload.envoy.overload_actions.stop_accepting_requests.scale_percent"
        ),
        100
    );
    assert!(stat(admin, pressure) >= 50);

    stallers.release();
    let recovered = eventually_true(Duration::from_secs(30), || get(port).0 == 200);
    assert!(
        recovered,
        "pressure {} %\n{}",
        stat(admin, pressure),
        b.log()
    );
    let (status, conn, _) = get(port);
    assert_eq!((status, conn.as_str()), (200, ""));
    assert_eq!(
        stat(
            admin,
            "overload.envoy.overload_actions.stop_accepting_requests.active"
        ),
        0
    );
    assert!(b.log().contains("shrink_heap freed"), "{}", b.log());
}

#[test]
fn stop_accepting_connections_holds_new_clients_in_the_backlog_until_the_pressure_falls() {
    let (b, _up, held, port, admin) = start(&[
        action("stop_accepting_connections", 0.5),
        action("shrink_heap", 0.3),
    ]);
    let stallers = Stallers::start(port, 20, &held);
    let stopped = eventually_true(Duration::from_secs(20), || {
        stat(
            admin,
            "overload.envoy.overload_actions.stop_accepting_connections.active",
        ) == 1
    });
    assert!(stopped, "{}", b.log());
    // The kernel completes the handshake; baton does not accept, so nothing answers.
    let mut waiting = RawConn::connect(port);
    waiting.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(waiting.stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a connection was served while accepting was stopped"
    );
    stallers.release();
    // Once the pressure falls the waiting client is accepted and answered.
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let r = waiting.expect_response(false);
    assert_eq!(r.status(), 200, "{}", b.log());
}
