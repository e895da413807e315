//! Envoy's external authorization filter with a gRPC authorization service
//! (`grpc_service.envoy_grpc`), through the real binary, real sockets and a real gRPC server
//! (python grpcio, `authz_grpc_support`): the `Authorization/Check` call's request attributes and
//! metadata, an OK response's header edits (set, removed, on the response), a denial's status,
//! headers and body, and as errors (`status_on_error`, or let on under `failure_mode_allow`):
//! an unreachable service, a call past its timeout, a call that ends UNAVAILABLE and a response
//! that is not a CheckResponse; `UAEX` and Envoy's details in the access log, the counters.

mod admin_util;
mod authz_grpc_support;
mod common;

use std::io::Read;

use admin_util::{stat, wait_live};
use authz_grpc_support::GrpcAuthz;
use common::authz::{body, cluster, get, header, listener, status};
use common::*;

struct Setup {
    up: Upstream,
    authz: GrpcAuthz,
    baton: Baton,
    /// main, failure-mode-allow, unreachable listeners.
    ports: [u16; 3],
    admin: u16,
    logs: [String; 3],
}

fn setup(tag: &str) -> Setup {
    let up = Upstream::start("up1");
    let authz = GrpcAuthz::start(&format!("{tag}-checks"));
    let dead = free_port(); // nothing listens there
    let ports = [free_port(), free_port(), free_port()];
    let admin = free_port();
    let logs = ["main", "fma", "err"].map(|n| {
        baton::log_path(&format!("{tag}-{n}"))
            .to_string_lossy()
            .into_owned()
    });
    let main = r#"              stat_prefix: front
              transport_api_version: V3
              grpc_service:
                envoy_grpc: {cluster_name: authz}
                timeout: 0.5s
                initial_metadata: [{key: X-Tenant, value: blue}]"#;
    let fma = r#"              failure_mode_allow: true
              failure_mode_allow_header_add: true
              grpc_service:
                envoy_grpc: {cluster_name: dead}"#;
    let err = r#"              grpc_service:
                envoy_grpc: {cluster_name: dead}
                timeout: 1s"#;
    let yaml = format!(
        "static_resources:\n  listeners:\n{}{}{}  clusters:\n{}{}{}admin:\n  address: \
         {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}\n",
        listener("main", ports[0], main, &logs[0]),
        listener("fma", ports[1], fma, &logs[1]),
        listener("err", ports[2], err, &logs[2]),
        cluster("backend", up.port(), false),
        cluster("authz", authz.port, true),
        cluster("dead", dead, true),
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
fn a_grpc_service_allows_with_its_header_edits_and_denies_with_its_answer() {
    let s = setup("ext-authz-grpc-main");
    let port = s.ports[0];
    let r = get(
        port,
        "/app?q=1",
        "Authorization: Bearer alice\r\nX-Drop-Me: secret\r\nX-A: 1\r\nx-a: 2\r\n\
         X-Current-User: mallory\r\nX-Tag: client\r\nX-List: c\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    // response_headers_to_add: on the client's response.
    assert_eq!(header(&r, "x-authz-note"), Some("ok"), "{r}");
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1);
    let all = |name: &str| -> Vec<&str> {
        let h = seen[0].headers.iter();
        h.filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // Set over the client's own (append false, or no append at all); appended with append.
    assert_eq!(all("x-current-user"), ["alice"]);
    assert_eq!(all("x-tag"), ["t"]);
    assert_eq!(all("x-list"), ["c", "s"]);
    assert_eq!(seen[0].header("x-drop-me"), None, "headers_to_remove");
    assert_eq!(seen[0].header("x-authz-note"), None);
    // The CheckRequest's attributes, and the call's initial metadata.
    let checks = s.authz.seen();
    assert_eq!(checks.len(), 1, "{checks:?}");
    let c = &checks[0];
    let text = |v: &serde_yaml::Value| v.as_str().unwrap_or_default().to_string();
    assert_eq!(text(&c["method"]), "GET");
    assert_eq!(text(&c["path"]), "/app?q=1");
    assert_eq!(text(&c["host"]), "app.local");
    assert_eq!(text(&c["source"]), "127.0.0.1");
    let h = &c["headers"];
    assert_eq!(text(&h[":authority"]), "app.local");
    assert_eq!(text(&h[":method"]), "GET");
    assert_eq!(text(&h["authorization"]), "Bearer alice");
    assert_eq!(text(&h["x-a"]), "1,2", "repeats joined");
    assert_eq!(text(&c["metadata"]["x-tenant"]), "blue");

    // Denied: the service's status, headers and body.
    let r = get(port, "/app", "");
    assert_eq!(status(&r), 401, "{r}");
    assert_eq!(body(&r), "denied by grpc authz");
    assert_eq!(header(&r, "x-authz-reason"), Some("no token"));
    // Errors: status_on_error (403).
    for path in ["/unavailable", "/garbage", "/slow"] {
        let r = get(port, path, "Authorization: Bearer bob\r\n");
        assert_eq!(status(&r), 403, "{path}: {r}");
    }
    assert_eq!(s.up.requests(), 1);
    let lines = log_lines(&s.logs[0], 5);
    assert_eq!(
        lines,
        [
            "/app?q=1 200 - via_upstream",
            "/app 401 UAEX ext_authz_denied",
            "/unavailable 403 UAEX ext_authz_error",
            "/garbage 403 UAEX ext_authz_error",
            "/slow 403 UAEX ext_authz_error",
        ]
    );
    let n = |c: &str| stat(s.admin, &format!("http.main.ext_authz.front.{c}"));
    assert_eq!((n("ok"), n("denied"), n("error")), (1, 1, 3));
    let c = |n: &str| stat(s.admin, &format!("cluster.authz.{n}"));
    assert_eq!(c("upstream_rq_timeout"), 1);
    drop(s.baton);
}

#[test]
fn an_unreachable_grpc_service_is_status_on_error_or_let_on() {
    let s = setup("ext-authz-grpc-fail");
    let r = get(s.ports[1], "/x", "");
    assert_eq!(status(&r), 200, "{r}");
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("x-envoy-auth-failure-mode-allowed"),
        Some("true")
    );
    let r = get(s.ports[2], "/x", "");
    assert_eq!(status(&r), 403, "{r}");
    assert_eq!(s.up.requests(), 1);
    assert_eq!(log_lines(&s.logs[2], 1), ["/x 403 UAEX ext_authz_error"]);
    assert_eq!(log_lines(&s.logs[1], 1), ["/x 200 - via_upstream"]);
    let n = |l: &str, c: &str| stat(s.admin, &format!("http.{l}.ext_authz.{c}"));
    assert_eq!(
        (n("fma", "error"), n("fma", "failure_mode_allowed")),
        (1, 1)
    );
    assert_eq!(n("err", "error"), 1);
    assert!(s.authz.seen().is_empty());
    drop(s.baton);
}

/// The call as a raw HTTP/2 server sees it: the preface, then HEADERS with Envoy's request
/// headers, `envoy_grpc.authority` as `:authority` and `initial_metadata`. The server closes
/// without answering: an error, so 403.
#[test]
fn the_call_carries_the_configured_authority_and_metadata() {
    use ::baton::h2::{frame, hpack};
    let raw = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let raw_port = raw.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = raw.accept().expect("accept");
        c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        // Until the HEADERS frame is whole (bounded by the read timeout and 64 KiB).
        while got.len() < 64 * 1024 {
            let Some(rest) = got.strip_prefix(frame::PREFACE) else {
                if got.len() >= frame::PREFACE.len() {
                    return Vec::new();
                }
                match c.read(&mut b) {
                    Ok(0) | Err(_) => return Vec::new(),
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
                continue;
            };
            let mut at = 0;
            while let Ok(Some((f, n))) = frame::parse(&rest[at..], 1 << 20) {
                at += n;
                if let frame::Frame::Headers { block, .. } = f {
                    let mut fields = Vec::new();
                    let mut d = hpack::Decoder::new(4096);
                    let _ = d.decode(block, 1 << 16, &mut |n, v| {
                        fields.push(format!(
                            "{}: {}",
                            String::from_utf8_lossy(n),
                            String::from_utf8_lossy(v)
                        ));
                    });
                    return fields;
                }
            }
            match c.read(&mut b) {
                Ok(0) | Err(_) => return Vec::new(),
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        Vec::new()
    });
    let port = free_port();
    let log = baton::log_path("ext-authz-grpc-raw")
        .to_string_lossy()
        .into_owned();
    let filter = r#"              grpc_service:
                envoy_grpc: {cluster_name: raw, authority: authz.example}
                timeout: 2s
                initial_metadata: [{key: x-tenant, value: blue}]"#;
    let up = Upstream::start("up1");
    let yaml = format!(
        "static_resources:\n  listeners:\n{}  clusters:\n{}{}",
        listener("main", port, filter, &log),
        cluster("backend", up.port(), false),
        cluster("raw", raw_port, false),
    );
    let b = Baton::start(&yaml);
    let r = get(port, "/x", "");
    assert_eq!(status(&r), 403, "{r}");
    let fields = server.join().expect("server");
    for want in [
        ":method: POST",
        ":scheme: http",
        ":path: /envoy.service.auth.v3.Authorization/Check",
        ":authority: authz.example",
        "content-type: application/grpc",
        "te: trailers",
        "grpc-timeout: 2000m",
        "x-tenant: blue",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:?}");
    }
    assert_eq!(up.requests(), 0);
    drop(b);
}

/// A hostile service that floods PINGs and never reads the acknowledgements: once a
/// megabyte of them waits to be sent the check fails (403) — memory does not grow until the
/// call's timeout, which never fires.
#[test]
fn a_service_that_floods_pings_and_never_reads_fails_the_check() {
    use ::baton::h2::frame;
    let raw = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let raw_port = raw.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = raw.accept().expect("accept");
        let mut pings = Vec::new();
        for _ in 0..4096 {
            frame::write_ping(&mut pings, [7; 8], false);
        }
        let mut w = Vec::new();
        frame::write_settings(&mut w, &[]);
        let mut sent = 0usize;
        // At most 64 MiB, until baton closes the connection.
        while sent < 64 << 20 {
            if std::io::Write::write_all(&mut c, &w).is_err() {
                return true;
            }
            sent += w.len();
            w.clone_from(&pings);
        }
        false
    });
    let port = free_port();
    let admin = free_port();
    let filter = r#"              grpc_service:
                envoy_grpc: {cluster_name: raw}
                timeout: 60s"#;
    let up = Upstream::start("up1");
    let yaml = format!(
        "static_resources:\n  listeners:\n{}  clusters:\n{}{}admin:\n  address: \
         {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}\n",
        listener("main", port, filter, "/dev/null"),
        cluster("backend", up.port(), false),
        cluster("raw", raw_port, false),
    );
    let b = Baton::start(&yaml);
    wait_live(admin);
    let r = get(port, "/x", "");
    assert_eq!(status(&r), 403, "{r}");
    assert!(server.join().expect("server"), "baton read 64 MiB of PINGs");
    assert_eq!(stat(admin, "cluster.raw.upstream_rq_timeout"), 0);
    assert_eq!(stat(admin, "http.main.ext_authz.error"), 1);
    drop(b);
}
