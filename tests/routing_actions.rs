//! Route actions against the real binary: prefix/regex rewrites, host_rewrite_literal and
//! auto_host_rewrite, direct_response, redirects, the stream idle timeout, and a weighted
//! (canary) split checked statistically.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

#[test]
fn path_and_host_rewrites() {
    let up = Upstream::start("up");
    let routes = "  - match: {prefix: /old/}
    route: {cluster: svc, prefix_rewrite: /new/}
  - match: {prefix: /re/}
    route:
      cluster: svc
      host_rewrite_literal: backend.internal
      regex_rewrite: {pattern: {regex: '/v([0-9]+)/'}, substitution: '/version-\\1/'}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("svc", &[up.port()])],
    ));
    assert_eq!(fetch(b.port, "front", "/old/a?q=1", "").status(), 200);
    assert_eq!(
        fetch(b.port, "front", "/re/v1/x/v22/?v3/", "").status(),
        200
    );
    let seen = up.seen();
    assert_eq!(seen[0].target, "/new/a?q=1");
    assert_eq!(seen[0].header("host"), Some("front"));
    assert_eq!(seen[1].target, "/re/version-1/x/version-22/?v3/");
    assert_eq!(seen[1].header("host"), Some("backend.internal"));
}

#[test]
fn auto_host_rewrite_uses_the_dns_name() {
    let up = Upstream::start("up");
    let routes = "  - match: {prefix: /}
    route: {cluster: svc, auto_host_rewrite: true}
";
    let svc = cluster_at("svc", "localhost", "STRICT_DNS", &[up.port()], "");
    let b = Baton::start(&config(free_port(), &single_vhost(routes), &[svc]));
    // The first resolution happens off the reactor; wait (bounded) until it has landed.
    let mut ok = false;
    for _ in 0..100 {
        if fetch(b.port, "front", "/", "").status() == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ok, "localhost never resolved");
    let seen = up.seen();
    assert_eq!(
        seen.last().and_then(|s| s.header("host")),
        Some("localhost")
    );
}

#[test]
fn direct_response_and_redirects() {
    let routes = "  - match: {path: /health}
    direct_response: {status: 200, body: {inline_string: ok}}
  - match: {path: /gone}
    direct_response: {status: 410}
  - match: {prefix: /secure}
    redirect: {https_redirect: true}
  - match: {prefix: /old}
    redirect: {prefix_rewrite: /new, response_code: TEMPORARY_REDIRECT}
  - match: {prefix: /moved}
    redirect: {host_redirect: other.example, port_redirect: 8443, path_redirect: /landing, strip_query: true, response_code: FOUND}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("svc", &[free_port()])],
    ));
    let r = fetch(b.port, "a.example", "/health", "");
    assert_eq!((r.status(), r.body_str().as_str()), (200, "ok"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = fetch(b.port, "a.example", "/gone", "");
    assert_eq!((r.status(), r.body_str().as_str()), (410, ""));
    let r = fetch(b.port, "a.example:80", "/secure/x?y=1", "");
    assert_eq!(r.status(), 301);
    assert_eq!(r.header("location"), Some("https://a.example/secure/x?y=1"));
    let r = fetch(b.port, "a.example", "/old/page?k=v", "");
    assert_eq!(r.status(), 307);
    assert_eq!(r.header("location"), Some("http://a.example/new/page?k=v"));
    let r = fetch(b.port, "a.example", "/moved/x?k=v", "");
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.header("location"),
        Some("http://other.example:8443/landing")
    );
    assert_eq!(r.header("content-length"), Some("0"));
}

#[test]
fn route_idle_timeout_is_504_stream_timeout_before_the_response() {
    let hole = BlackHole::start();
    let routes = "  - match: {prefix: /}
    route: {cluster: hole, idle_timeout: 0.3s}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("hole", &[hole.port])],
    ));
    // The request was complete, so Envoy's HCM answers 504 (408 while a body is arriving).
    let r = fetch(b.port, "x", "/", "");
    assert_eq!(r.status(), 504);
    assert_eq!(r.body_str(), "stream timeout");
}

#[test]
fn weighted_clusters_split_80_20() {
    let a = Upstream::start("a");
    let c = Upstream::start("c");
    let routes = "  - match: {prefix: /}
    route:
      weighted_clusters:
        total_weight: 100
        clusters:
        - {name: stable, weight: 80}
        - {name: canary, weight: 20}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[
            cluster("stable", &[a.port()]),
            cluster("canary", &[c.port()]),
        ],
    ));
    let n = 1000;
    let mut conn = RawConn::connect(b.port);
    for _ in 0..n {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(conn.expect_response(false).status(), 200);
    }
    let stable = a.requests();
    assert_eq!(stable + c.requests(), n);
    // Binomial(1000, 0.8): sd ≈ 12.6; ±6 sd never fails by chance in practice.
    assert!((724..=876).contains(&stable), "stable got {stable} of {n}");
}
