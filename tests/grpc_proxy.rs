//! gRPC through baton, end to end: a real gRPC client and server (python grpcio) over HTTP/2
//! both ways, a route that matches gRPC requests only (`grpc: {}`), trailers carried from
//! the server to the client and from the client to the server (python h2 peers), `te:
//! trailers` passed on, trailers dropped for an HTTP/1.1 client (Envoy's HTTP/1 codec
//! default), and a call the client cancels: only its stream ends (`DR`), the next call goes
//! on the same connection.

mod common;
mod grpc_support;

use std::time::Duration;

use common::{free_port, Baton};
use grpc_support::{GrpcServer, TrailerOrigin};

/// A listener (codec AUTO) with its access log at `log`: gRPC requests under `/svc/` to the
/// trailers origin, any other gRPC request to the gRPC server, the rest 404 (no route).
fn yaml(listen: u16, grpc: u16, origin: u16, log: &str, admin: u16) -> String {
    format!(
        r#"static_resources:
  listeners:
  - address:
      socket_address:
        address: 127.0.0.1
        port_value: {listen}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: AUTO
          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}
              log_format: {{text_format_source: {{inline_string: "%PROTOCOL% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %TRAILER(grpc-status)%\n"}}}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/svc/", grpc: {{}}}}
                route: {{cluster: origin}}
              - match: {{prefix: "/", grpc: {{}}}}
                route: {{cluster: grpc}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{}{}admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
"#,
        h2_cluster("grpc", grpc),
        h2_cluster("origin", origin),
    )
}

/// A STATIC cluster of one loopback host that speaks HTTP/2 (h2c).
fn h2_cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"#
    )
}

struct Setup {
    listen: u16,
    admin: u16,
    log: std::path::PathBuf,
    _b: Baton,
    origin: TrailerOrigin,
    _grpc: GrpcServer,
}

fn setup(tag: &str) -> Setup {
    let grpc = GrpcServer::start(tag);
    let origin = TrailerOrigin::start(tag);
    let (listen, admin) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("baton-grpc-{tag}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let b = Baton::start(&yaml(
        listen,
        grpc.1,
        origin.1,
        &log.display().to_string(),
        admin,
    ));
    Setup {
        listen,
        admin,
        log,
        _b: b,
        origin,
        _grpc: grpc,
    }
}

fn log_lines(s: &Setup, n: usize) -> Vec<String> {
    common::log_lines(&s.log.display().to_string(), n)
}

#[test]
fn grpc_calls_get_their_answers_statuses_and_messages() {
    let s = setup("calls");
    assert_eq!(grpc_support::calls(s.listen), grpc_support::ANSWERS);
    // A status in the trailers is not an HTTP status: every call is a 200; the access log
    // has the trailers' grpc-status (none for the Trailers-Only error: it is in the head).
    assert_eq!(
        log_lines(&s, 5),
        [
            "HTTP/2 /baton.test.Echo/Unary 200 - via_upstream 0",
            "HTTP/2 /baton.test.Echo/Fail 200 - via_upstream -",
            "HTTP/2 /baton.test.Echo/Stream 200 - via_upstream 0",
            "HTTP/2 /baton.test.Echo/Stream 200 - via_upstream 5",
            "HTTP/2 /baton.test.Echo/Unary 200 - via_upstream 0",
        ]
    );
    // Without an application/grpc content-type no route matches.
    let out = common::curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/grpc-web",
        &format!("http://127.0.0.1:{}/baton.test.Echo/Unary", s.listen),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

#[test]
fn trailers_pass_between_http2_peers_and_te_trailers_goes_upstream() {
    let s = setup("trailers");
    // HTTP/2 both ways: the request's trailer reaches the origin, its trailers the client.
    assert_eq!(
        grpc_support::trailers_call(s.listen),
        "status=200 body=resp trailers=grpc-status:0,x-resp-trailer:rt"
    );
    assert_eq!(
        s.origin.seen(),
        ["te=trailers body=3 trailers=x-req-trailer:t1"]
    );
    // An HTTP/1.1 client: `TE: trailers` (among other codings) goes on as `te: trailers`;
    // trailers are dropped both ways, as Envoy's HTTP/1 codec drops them by default.
    let mut c = std::net::TcpStream::connect(common::local(s.listen)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::io::Write::write_all(
        &mut c,
        b"POST /svc/M HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc\r\nTE: gzip, trailers\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-req-trailer: t1\r\n\r\n",
    )
    .expect("write request");
    let raw = read_until(&mut c, b"0\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n4\r\nresp\r\n0\r\n\r\n"), "{raw}");
    assert!(!raw.contains("grpc-status"), "{raw}");
    assert_eq!(
        s.origin.seen()[1..],
        ["te=trailers body=3 trailers=-".to_string()]
    );
    // The upstream's trailers are in the access log either way.
    assert_eq!(
        log_lines(&s, 2),
        [
            "HTTP/2 /svc/M 200 - via_upstream 0",
            "HTTP/1.1 /svc/M 200 - via_upstream 0"
        ]
    );
}

/// Reads from a connection until its bytes end with `end` (bounded: 20 s, and the socket's
/// read timeout).
fn read_until(c: &mut std::net::TcpStream, end: &[u8]) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !got.ends_with(end) && std::time::Instant::now() < until {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_cancelled_call_ends_only_its_stream() {
    let s = setup("cancel");
    let out = grpc_support::calls_with(s.listen, &["cancel"]);
    assert_eq!(out[..6], grpc_support::ANSWERS, "{out:?}");
    assert_eq!(
        out[6..],
        ["cancel-got slow-0 slow-1", "after-cancel OK - echo:hello"],
        "{out:?}"
    );
    // The cancelled call is a downstream remote reset; the call after it was served on the
    // same connection: the channel's only one.
    let lines = log_lines(&s, 7);
    assert_eq!(
        lines[5], "HTTP/2 /baton.test.Echo/Slow 200 DR http2.remote_reset -",
        "{lines:?}"
    );
    assert_eq!(
        lines[6],
        "HTTP/2 /baton.test.Echo/Unary 200 - via_upstream 0"
    );
    let stats = common::curl_ok(&[&format!("http://127.0.0.1:{}/stats", s.admin)]);
    assert!(
        stats.contains("http.ingress.downstream_cx_http2_total: 1\n"),
        "{stats}"
    );
}
