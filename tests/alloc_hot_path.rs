//! The keep-alive path allocates nothing per request. A counting global allocator wraps the
//! system one; the exchange core runs with the proxy's own environment (`CtxEnv` over a
//! context built from a real config: routing, request and response header edits, generated
//! x-request-id, x-forwarded-for, stats and a file access log), and after a few warm-up
//! requests a thousand keep-alive GETs must not allocate at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use baton::http::inmem::InMem;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Print a backtrace of each counted allocation (`BATON_ALLOC_TRACE=1`, to find them).
    static TRACE: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    ALLOCS.with(|c| c.set(c.get() + 1));
    if TRACE.with(|t| t.replace(false)) {
        eprintln!("{}", std::backtrace::Backtrace::force_capture());
        TRACE.with(|t| t.set(true));
    }
}

// SAFETY: every call is passed to the system allocator unchanged; the counter is a
// thread-local `Cell` with a const initialiser, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        System.realloc(p, l, n)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// A listener routing `/` to a two-host cluster. With `log`: an access log there and
/// `use_remote_address` (x-forwarded-for and x-envoy-external-address are written); with
/// `edits`: header edits on the virtual host and the route. Neither: the benchmark's route.
fn config(log: Option<&std::path::Path>, edits: bool) -> String {
    let extra = match log {
        Some(path) => format!(
            r#"          use_remote_address: true
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {}
"#,
            path.display()
        ),
        None => String::new(),
    };
    let (vh_edits, route_edits) = if edits {
        (
            r#"              request_headers_to_add:
              - header: { key: x-via, value: baton }
              response_headers_to_add:
              - header: { key: x-served-by, value: baton }
"#,
            r#"                request_headers_to_add:
                - header: { key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }
                response_headers_to_remove: [x-internal]
"#,
        )
    } else {
        ("", "")
    };
    format!(
        r#"
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
{extra}          route_config:
            name: r
            virtual_hosts:
            - name: other
              domains: ["other.example"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200 }}
            - name: app
              domains: ["*"]
{vh_edits}              routes:
              - match: {{ prefix: "/static/" }}
                route: {{ cluster: app }}
              - match: {{ prefix: "/" }}
                route: {{ cluster: app, timeout: 15s }}
{route_edits}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 2 }} }} }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.2, port_value: 2 }} }} }}
"#
    )
}

const REQUEST: &[u8] = b"GET /api/items?id=7 HTTP/1.1\r\nHost: shop.example\r\n\
User-Agent: wrk\r\nAccept: */*\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n";

fn response(body: usize) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Internal: 1\r\n\
Content-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    r.extend(std::iter::repeat_n(b'x', body));
    r
}

/// Runs warm-up requests, then `n` counted ones; returns the allocations counted. The
/// warm-up is long enough for the access log's write buffer to reach its flush size once
/// (it keeps that allocation from then on).
fn count_allocations(yaml: &str, n: usize) -> u64 {
    count_allocations_sized(yaml, n, 1024)
}

/// `count_allocations` with a response body of `body` bytes.
fn count_allocations_sized(yaml: &str, n: usize, body: usize) -> u64 {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut p = InMem::new(yaml, peer).expect("config loads");
    let resp = response(body);
    let exchange = |p: &mut InMem| {
        let (up, client) = p.exchange(REQUEST, &resp).expect("exchange");
        assert!(
            up > REQUEST.len(),
            "the request head went upstream ({up} bytes)"
        );
        assert!(
            client > body,
            "the client got the response ({client} bytes)"
        );
    };
    for _ in 0..400 {
        exchange(&mut p);
    }
    let trace = std::env::var_os("BATON_ALLOC_TRACE").is_some();
    TRACE.with(|t| t.set(trace));
    let before = allocs();
    for _ in 0..if trace { 1 } else { n } {
        exchange(&mut p);
    }
    let counted = allocs() - before;
    TRACE.with(|t| t.set(false));
    counted
}

/// The benchmark's configuration: one route to one cluster, no edits, no access log.
#[test]
fn plain_route_allocates_nothing_per_request() {
    assert_eq!(
        count_allocations(&config(None, false), 1000),
        0,
        "allocations in 1000 keep-alive requests after warm-up"
    );
}

/// Bodies of a whole read and more, relayed by copy here (no sockets, so no splice) to a
/// client that takes each write as it comes: our head goes in front of the first read's body
/// bytes and later reads change buffers without a copy, so nothing is allocated per response
/// either (each such response paid a `calloc` and a `free` before).
#[test]
fn large_responses_allocate_nothing_per_request() {
    for body in [16 * 1024, 64 * 1024, 200 * 1000] {
        assert_eq!(
            count_allocations_sized(&config(None, false), 200, body),
            0,
            "allocations in 200 keep-alive requests for {body}-byte responses after warm-up"
        );
    }
}

/// `count_allocations` over 1000 requests with an access log in a fresh directory.
fn logged(edits: bool) -> u64 {
    let dir = std::env::temp_dir().join(format!(
        "baton-alloc-{}-{}",
        std::process::id(),
        if edits { "edits" } else { "log" }
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let n = count_allocations(&config(Some(&dir.join("access.log")), edits), 1000);
    let _ = std::fs::remove_dir_all(&dir);
    n
}

/// The access log (default format) and `use_remote_address`: x-forwarded-for appended,
/// x-envoy-external-address, a generated x-request-id, the log record.
#[test]
fn logged_route_allocates_nothing_per_request() {
    let n = logged(false);
    assert_eq!(
        n, 0,
        "allocations in 1000 keep-alive requests after warm-up"
    );
}

/// Header edits build a header list per request (Envoy's ordering rules need the whole list)
/// and own the values made here (rendered templates, the response edits bound to the
/// request); what stays is 14 per request and does not grow with the headers the client
/// sends. Route with request and response edits at two levels, one of them a
/// template rendered per request, plus the access log.
#[test]
fn edited_route_allocates_a_bounded_few_per_request() {
    let n = logged(true);
    assert!(
        n <= 14 * 1000,
        "{n} allocations in 1000 requests (at most 14 each)"
    );
}
