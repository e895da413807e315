//! Envoy's external authorization filter (`envoy.filters.http.ext_authz`) with an HTTP
//! authorization service, through the real binary, real sockets and a small authorization
//! service of the test's own (`common::authz`): the check request (method, `path_prefix` +
//! path, Host, `Authorization`, the allowed headers, `headers_to_add`, no body), a 200 letting
//! the request on with the allowed upstream headers set or appended and the allowed client
//! headers on its response, any other status answering the client with the service's status,
//! body and headers, a failed or timed-out check answered with `status_on_error` (or let on
//! under `failure_mode_allow`), `UAEX` and Envoy's response code details in the access log,
//! the `ext_authz.*` counters, a route's `ExtAuthzPerRoute` turning the filter off, the body
//! held back while the check is out, and a drain that lets a paused request finish.

mod admin_util;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use admin_util::{stat, wait_live};
use common::authz::{body, cluster, get, header, listener, status, Authz};
use common::*;

struct Setup {
    up: Upstream,
    authz: Authz,
    baton: Baton,
    /// main, failure-mode-allow, error, off-and-deny, off listeners.
    ports: [u16; 5],
    admin: u16,
    logs: [String; 5],
}

fn setup(tag: &str) -> Setup {
    let up = Upstream::start("up1");
    let authz = Authz::start();
    let dead = free_port(); // nothing listens there
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    let admin = free_port();
    let logs = ["main", "fma", "err", "off", "skip"].map(|n| {
        baton::log_path(&format!("{tag}-{n}"))
            .to_string_lossy()
            .into_owned()
    });
    let main = r#"              stat_prefix: front
              transport_api_version: V3
              http_service:
                server_uri: {uri: "http://authz", cluster: authz, timeout: 1s}
                path_prefix: /check
                authorization_request:
                  allowed_headers: {patterns: [{exact: X-A}]}
                  headers_to_add: [{key: x-from, value: baton}]
                authorization_response:
                  allowed_upstream_headers: {patterns: [{exact: x-current-user}]}
                  allowed_upstream_headers_to_append: {patterns: [{prefix: x-extra}]}
                  allowed_client_headers_on_success: {patterns: [{exact: x-client-note}]}"#;
    let fma = r#"              failure_mode_allow: true
              failure_mode_allow_header_add: true
              http_service:
                server_uri: {uri: "http://dead", cluster: dead, timeout: 1s}"#;
    let err = r#"              status_on_error: {code: ServiceUnavailable}
              http_service:
                server_uri: {uri: "http://dead", cluster: dead, timeout: 1s}"#;
    let off = r#"              filter_enabled: {runtime_key: k, default_value: {numerator: 0}}
              deny_at_disable: {runtime_key: d, default_value: true}
              http_service:
                server_uri: {uri: "http://authz", cluster: authz, timeout: 1s}"#;
    let skip = r#"              filter_enabled: {runtime_key: k, default_value: {numerator: 0}}
              http_service:
                server_uri: {uri: "http://authz", cluster: authz, timeout: 1s}"#;
    let yaml = format!(
        "static_resources:\n  listeners:\n{}{}{}{}{}  clusters:\n{}{}{}admin:\n  address: \
         {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}\n",
        listener("main", ports[0], main, &logs[0]),
        listener("fma", ports[1], fma, &logs[1]),
        listener("err", ports[2], err, &logs[2]),
        listener("off", ports[3], off, &logs[3]),
        listener("skip", ports[4], skip, &logs[4]),
        cluster("backend", up.port(), false),
        cluster("authz", authz.port, false),
        cluster("dead", dead, false),
    );
    let baton = Baton::start(&yaml);
    wait_live(admin);
    Setup {
        up,
        authz,
        baton,
        ports,
        admin,
        logs,
    }
}

#[test]
fn an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer() {
    let s = setup("ext-authz-main");
    let port = s.ports[0];
    // Allowed: the check carries method, prefix + path, Host, Authorization, the allowed
    // header, headers_to_add, Content-Length 0, and nothing else of the request.
    let r = get(
        port,
        "/app?q=1",
        "Authorization: Bearer alice\r\nX-A: yes\r\nX-B: no\r\nX-Extra: client\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "x-client-note"), Some("hi"), "{r}");
    let checks = s.authz.seen();
    assert_eq!(checks.len(), 1, "{checks:?}");
    let c = &checks[0];
    assert!(c.starts_with("GET /check/app?q=1 HTTP/1.1\r\n"), "{c}");
    let has = |h: &str| c.to_ascii_lowercase().contains(&h.to_ascii_lowercase());
    assert!(has("\r\nhost: app.local\r\n"), "{c}");
    assert!(has("\r\ncontent-length: 0\r\n"), "{c}");
    assert!(has("\r\nauthorization: Bearer alice\r\n"), "{c}");
    assert!(has("\r\nx-a: yes\r\n"), "{c}");
    assert!(has("\r\nx-from: baton\r\n"), "{c}");
    assert!(!has("x-b:"), "{c}");
    assert!(!has("x-extra"), "{c}");
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-current-user"), Some("alice"));
    // Appended: the client's value stays, the service's follows.
    let extras: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-extra"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(extras, ["client", "e"]);
    // Not an allowed upstream header.
    assert_eq!(seen[0].header("x-client-note"), None);

    // Denied: the service's status, body and headers (all but Host by default).
    let r = get(port, "/app", "");
    assert_eq!(status(&r), 401, "{r}");
    assert_eq!(body(&r), "denied by authz");
    assert_eq!(header(&r, "x-authz-reason"), Some("no token"));
    assert_eq!(header(&r, "www-authenticate"), Some("Bearer"));
    assert_ne!(header(&r, "host"), Some("authz.example"));
    // A 5xx from the service is an error: status_on_error (403 by default).
    let r = get(port, "/boom", "Authorization: Bearer bob\r\n");
    assert_eq!(status(&r), 403, "{r}");
    // Past the check's timeout: an error too, answered once the timeout ends.
    let r = get(port, "/slow", "Authorization: Bearer bob\r\n");
    assert_eq!(status(&r), 403, "{r}");
    // ExtAuthzPerRoute disabled: no check at all.
    let before = s.authz.seen().len();
    let r = get(port, "/open/x", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(s.authz.seen().len(), before);
    assert_eq!(s.up.requests(), 2);

    let lines = log_lines(&s.logs[0], 5);
    assert_eq!(
        lines,
        [
            "/app?q=1 200 - via_upstream",
            "/app 401 UAEX ext_authz_denied",
            "/boom 403 UAEX ext_authz_error",
            "/slow 403 UAEX ext_authz_error",
            "/open/x 200 - via_upstream",
        ]
    );
    let n = |c: &str| stat(s.admin, &format!("http.main.ext_authz.front.{c}"));
    assert_eq!(
        (n("ok"), n("denied"), n("error"), n("failure_mode_allowed")),
        (1, 1, 2, 0)
    );
    // The checks are requests of the authorization cluster: one timed out.
    let c = |n: &str| stat(s.admin, &format!("cluster.authz.{n}"));
    assert_eq!((c("upstream_rq_timeout"), c("upstream_rq_4xx")), (1, 1));
    drop(s.baton);
}

#[test]
fn a_failed_or_disabled_check_is_status_on_error_or_let_on() {
    let s = setup("ext-authz-fail");
    // failure_mode_allow: on, with the header that says so.
    let r = get(s.ports[1], "/x", "");
    assert_eq!(status(&r), 200, "{r}");
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("x-envoy-auth-failure-mode-allowed"),
        Some("true")
    );
    // Without it: status_on_error.
    let r = get(s.ports[2], "/x", "");
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(s.up.requests(), 1);
    assert_eq!(log_lines(&s.logs[2], 1), ["/x 503 UAEX ext_authz_error"]);
    assert_eq!(log_lines(&s.logs[1], 1), ["/x 200 - via_upstream"]);
    // filter_enabled leaves every request out: with deny_at_disable it is refused with
    // status_on_error (no check is sent), without it goes on unchecked.
    let r = get(s.ports[3], "/x", "Authorization: Bearer eve\r\n");
    assert_eq!(status(&r), 403, "{r}");
    assert_eq!(log_lines(&s.logs[3], 1), ["/x 403 UAEX ext_authz_error"]);
    let r = get(s.ports[4], "/x", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(s.up.requests(), 2);
    assert!(s.authz.seen().is_empty());
    let n = |l: &str, c: &str| stat(s.admin, &format!("http.{l}.ext_authz.{c}"));
    assert_eq!(
        (n("fma", "error"), n("fma", "failure_mode_allowed")),
        (1, 1)
    );
    assert_eq!((n("err", "error"), n("err", "ok")), (1, 0));
    assert_eq!((n("off", "disabled"), n("skip", "disabled")), (1, 1));
    drop(s.baton);
}

#[test]
fn the_body_waits_for_the_check_and_then_goes_up_whole() {
    let s = setup("ext-authz-body");
    let mut c = TcpStream::connect(("127.0.0.1", s.ports[0])).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let n = 3 * 1024 * 1024;
    let head = format!(
        "POST /sink HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer carol\r\nContent-Length: {n}\r\n\
         Connection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    // Written on a thread: while the check is out the proxy reads none of it, so a body
    // larger than the socket buffers blocks here until the check lets it on.
    let mut w = c.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..n / chunk.len() {
            if w.write_all(&chunk).is_err() {
                return false;
            }
        }
        true
    });
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let r = String::from_utf8_lossy(&out).into_owned();
    assert!(writer.join().unwrap_or(false));
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).starts_with(&format!("len={n} ")), "{r}");
    assert_eq!(s.up.seen()[0].header("x-current-user"), Some("carol"));
    drop(s.baton);
}

#[test]
fn a_request_paused_on_its_check_finishes_through_a_drain() {
    let s = setup("ext-authz-drain");
    let port = s.ports[0];
    let mut b = s.baton;
    let pending =
        std::thread::spawn(move || get(port, "/slow-but-fine", "Authorization: Bearer dave\r\n"));
    // The check is out (the service holds it 3 s; the filter's timeout is 1 s).
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while s.authz.seen().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.authz.seen().len(), 1);
    b.sigterm();
    let r = pending.join().expect("client");
    // Answered (the check timed out: 403), not cut.
    assert_eq!(status(&r), 403, "{r}");
    assert!(b.wait_exit(Duration::from_secs(30)).is_some());
}

#[test]
fn what_baton_cannot_honour_is_refused_by_path() {
    let f = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let uri = "              http_service: {server_uri: {uri: x, cluster: backend, timeout: 1s}}\n";
    let cases: &[(String, String)] = &[
        (
            "              grpc_service: {google_grpc: {target_uri: x, stat_prefix: s}}".into(),
            format!("{f}.grpc_service.google_grpc"),
        ),
        (
            format!("{uri}              with_request_body: {{max_request_bytes: 10}}"),
            format!("{f}.with_request_body"),
        ),
        (
            format!("{uri}              clear_route_cache: true"),
            format!("{f}.clear_route_cache"),
        ),
        (
            "              http_service: {server_uri: {uri: x, cluster: backend}}".into(),
            format!("{f}.http_service.server_uri.timeout"),
        ),
        (
            "              http_service:\n                server_uri: {uri: x, cluster: backend, timeout: 1s}\n                authorization_request: {headers_to_add: [{key: content-length, value: '9'}]}".into(),
            format!("{f}.http_service.authorization_request.headers_to_add[0].key"),
        ),
        (
            format!("{uri}              filter_enabled_metadata: {{filter: f}}"),
            format!("{f}.filter_enabled_metadata"),
        ),
        (
            format!("{uri}              deny_at_disable: {{runtime_key: k}}"),
            format!("{f}.deny_at_disable.default_value"),
        ),
    ];
    for (filter, path) in cases {
        let yaml = format!(
            "static_resources:\n  listeners:\n{}  clusters:\n{}",
            listener("l", free_port(), filter.trim_end(), "/dev/null"),
            cluster("backend", 9, false)
        );
        let err = refusal(&yaml);
        assert!(err.contains(&format!("{path}:")), "{path}\n{err}");
    }
    // A route's check_settings carry gRPC context extensions only.
    let yaml = format!(
        "static_resources:\n  listeners:\n{}  clusters:\n{}",
        listener("l", free_port(), uri.trim_end(), "/dev/null").replace(
            "disabled: true}",
            "check_settings: {context_extensions: {a: b}}}"
        ),
        cluster("backend", 9, false)
    );
    let err = refusal(&yaml);
    assert!(
        err.contains("typed_per_filter_config.authz.check_settings:"),
        "{err}"
    );
    // Checks go out as plain HTTP: an authorization cluster that would send a PROXY protocol
    // header first is refused, naming it.
    let pp = "    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      \
              typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.\
              proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: {version: V2}\n        \
              transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: \
              {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}\n";
    let yaml = format!(
        "static_resources:\n  listeners:\n{}  clusters:\n{}{pp}",
        listener("l", free_port(), uri.trim_end(), "/dev/null"),
        cluster("backend", 9, false)
    );
    let err = refusal(&yaml);
    assert!(
        err.contains("static_resources.clusters[0].transport_socket:")
            && err.contains("PROXY protocol"),
        "{err}"
    );
}

#[test]
fn a_request_paused_on_its_check_is_answered_across_a_hot_restart() {
    use common::hot::{exit_status, hot_start, hot_takeover, HotDir};
    let up = Upstream::start("up1");
    let authz = Authz::start();
    let (port, admin) = (free_port(), free_port());
    let filter = r#"              http_service:
                server_uri: {uri: "http://authz", cluster: authz, timeout: 20s}
                authorization_response:
                  allowed_upstream_headers: {patterns: [{exact: x-current-user}]}"#;
    let yaml = format!(
        "static_resources:\n  listeners:\n{}  clusters:\n{}{}admin:\n  address: \
         {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}\n",
        listener("main", port, filter, "/dev/null"),
        cluster("backend", up.port(), false),
        cluster("authz", authz.port, false),
    );
    let dir = HotDir::new("ext-authz-hot");
    let mut v1 = hot_start(&yaml, &dir, &[]);
    let mut c = RawConn::connect(port);
    c.send(b"GET /gate HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer frank\r\n\r\n");
    // The check is held by the service while a new generation takes over.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while authz.seen().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(authz.seen().len(), 1);
    let (v2, _) = hot_takeover(&yaml, &dir, &[], &v1);
    authz.release();
    // The paused request is answered by the old generation, on its connection.
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200);
    assert_eq!(up.seen()[0].header("x-current-user"), Some("frank"));
    // The connection goes on (handed over once idle), its next request checked again.
    c.send(b"GET /next HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer gina\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    assert_eq!(up.seen()[1].header("x-current-user"), Some("gina"));
    drop(c);
    v1.sigterm();
    assert!(exit_status(&mut v1, Duration::from_secs(60)).success());
    drop(v2);
}
