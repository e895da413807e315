//! Request mirroring (`request_mirror_policies`) against the real binary: a shadow of each
//! request, body included, reaches the mirror cluster with `-shadow` on its Host while the
//! client gets the main cluster's answer; `cluster_header`, `runtime_fraction` and
//! `disable_shadow_host_suffix_append`; a mirror that is down, hangs or answers 500 changes
//! nothing for the client; a body past the buffer limit gives the shadow up (counted); the
//! mirror cluster's stats count the shadows; and the refusals.

mod admin_util;
mod common;
mod routing_support;

use std::time::Duration;

use admin_util::{eventually, stat, wait_live};
use common::*;
use routing_support::*;

/// A proxy with an admin port, the routes under one virtual host and the clusters.
fn start(routes: &str, clusters: &[String], listener_extra: &str) -> (Baton, u16) {
    let admin = free_port();
    let yaml = config(free_port(), &single_vhost(routes), clusters);
    let yaml = yaml.replacen(
        "    filter_chains:\n",
        &format!("{listener_extra}    filter_chains:\n"),
        1,
    );
    let yaml = format!(
        "{yaml}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    );
    let b = Baton::start(&yaml);
    wait_live(admin);
    (b, admin)
}

/// Every request to cluster `svc` (upstream "main") shadowed to cluster `shadow` (upstream
/// "mirror"); `listener_extra` as for `start`.
fn start_mirrored(listener_extra: &str) -> (Baton, u16, Upstream, Upstream) {
    let main = Upstream::start("main");
    let mirror = Upstream::start("mirror");
    let routes = "  - match: {prefix: /}\n    route:\n      cluster: svc\n      \
                  request_mirror_policies:\n      - cluster: shadow\n";
    let (b, admin) = start(
        routes,
        &[
            cluster("svc", &[main.port()]),
            cluster("shadow", &[mirror.port()]),
        ],
        listener_extra,
    );
    (b, admin, main, mirror)
}

fn post(port: u16, path: &str, host: &str, body: &str) -> Response {
    send(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn wait_seen(up: &Upstream, n: usize) {
    assert!(
        up.wait_seen(n, Duration::from_secs(10)),
        "{} saw {} requests, not {n}",
        up.name(),
        up.seen().len()
    );
}

#[test]
fn a_shadow_with_its_body_reaches_the_mirror_and_the_client_gets_the_main_answer() {
    let (b, admin, main, mirror) = start_mirrored("");
    let r = fetch(b.port, "example.com:8080", "/", "x-test: one\r\n");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_str(), main.greeting());
    let r = post(b.port, "/sink", "example.com", "0123456789");
    assert_eq!(r.status(), 200, "{}", r.body_str());
    wait_seen(&mirror, 2);
    let seen = mirror.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].header("host"), Some("example.com-shadow:8080"));
    assert_eq!(seen[0].header("x-test"), Some("one"));
    assert_eq!(
        seen[0].header("x-request-id"),
        main.seen()[0].header("x-request-id"),
        "the shadow is the upstream request"
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, "/sink");
    assert_eq!(seen[1].header("host"), Some("example.com-shadow"));
    assert_eq!(seen[1].body_len, 10);
    assert_eq!(main.seen()[1].header("host"), Some("example.com"));
    assert!(eventually(Duration::from_secs(10), || {
        stat(admin, "cluster.shadow.upstream_rq_2xx") == 2
    }));
    assert_eq!(stat(admin, "cluster.shadow.upstream_rq_total"), 2);
    assert_eq!(stat(admin, "cluster.svc.upstream_rq_total"), 2);
}

#[test]
fn cluster_header_fraction_and_suffix_are_honoured() {
    let main = Upstream::start("main");
    let m1 = Upstream::start("m1");
    let m2 = Upstream::start("m2");
    let routes = "  - match: {prefix: /header}\n    route:\n      cluster: svc\n      \
                  request_mirror_policies:\n      - cluster_header: x-mirror-cluster\n        \
                  disable_shadow_host_suffix_append: true\n  \
                  - match: {prefix: /never}\n    route:\n      cluster: svc\n      \
                  request_mirror_policies:\n      - cluster: m1\n        runtime_fraction:\n          \
                  default_value: {numerator: 0}\n  \
                  - match: {prefix: /both}\n    route:\n      cluster: svc\n      \
                  request_mirror_policies:\n      - cluster: m1\n      - cluster: m2\n        \
                  runtime_fraction:\n          default_value: {numerator: 100, denominator: HUNDRED}\n";
    let (b, _admin) = start(
        routes,
        &[
            cluster("svc", &[main.port()]),
            cluster("m1", &[m1.port()]),
            cluster("m2", &[m2.port()]),
        ],
        "",
    );
    for _ in 0..5 {
        assert_eq!(fetch(b.port, "h", "/never", "").status(), 200);
    }
    assert_eq!(
        fetch(b.port, "h", "/header", "x-mirror-cluster: m2\r\n").status(),
        200
    );
    assert_eq!(fetch(b.port, "h", "/header", "").status(), 200);
    assert_eq!(
        fetch(b.port, "h", "/header", "x-mirror-cluster: nosuch\r\n").status(),
        200
    );
    assert_eq!(fetch(b.port, "h", "/both", "").status(), 200);
    wait_seen(&m2, 2);
    wait_seen(&m1, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(main.requests(), 9);
    // Shadows go out on connections of their own: they may arrive in any order.
    let mut seen2 = m2.seen();
    seen2.sort_by(|a, b| b.target.cmp(&a.target));
    assert_eq!(seen2.len(), 2, "{seen2:?}");
    assert_eq!(seen2[0].target, "/header");
    assert_eq!(seen2[0].header("host"), Some("h"), "no suffix");
    assert_eq!(seen2[1].target, "/both");
    assert_eq!(seen2[1].header("host"), Some("h-shadow"));
    let seen1 = m1.seen();
    assert_eq!(seen1.len(), 1, "a 0 % policy sends nothing: {seen1:?}");
    assert_eq!(seen1[0].target, "/both");
}

#[test]
fn a_mirror_that_fails_or_hangs_changes_nothing_for_the_client() {
    let main = Upstream::start("main");
    let (dead, _hold) = refused_port();
    let bad = Fixed::start(500);
    let hole = BlackHole::start();
    let (slow, _listener, _held) = full_backlog_listener();
    let routes = "  - match: {prefix: /}\n    route:\n      cluster: svc\n      timeout: 1s\n      \
                  request_mirror_policies:\n      - cluster: dead\n      - cluster: bad\n      - cluster: hole\n      \
                  - cluster: slow\n";
    let (b, admin) = start(
        routes,
        &[
            cluster("svc", &[main.port()]),
            cluster("dead", &[dead]),
            cluster("bad", &[bad.port]),
            cluster("hole", &[hole.port]),
            cluster("slow", &[slow]),
        ],
        "",
    );
    for i in 0..3 {
        let r = post(b.port, "/sink", "h", "abc");
        assert_eq!(r.status(), 200, "request {i}: {}", r.body_str());
    }
    assert!(eventually(Duration::from_secs(10), || {
        stat(admin, "cluster.dead.upstream_cx_connect_fail") == 3
            && stat(admin, "cluster.bad.upstream_rq_5xx") == 3
            && stat(admin, "cluster.hole.upstream_rq_timeout") == 3
            && stat(admin, "cluster.slow.upstream_cx_connect_timeout") == 3
    }));
    assert_eq!(stat(admin, "cluster.slow.upstream_rq_timeout"), 0);
    assert_eq!(bad.hits(), 3);
    assert_eq!(main.requests(), 3);
    assert_eq!(stat(admin, "cluster.hole.upstream_cx_active"), 0);
}

#[test]
fn a_body_past_the_buffer_limit_gives_the_shadow_up() {
    let (b, admin, main, mirror) = start_mirrored("    per_connection_buffer_limit_bytes: 32768\n");
    let big = "z".repeat(100_000);
    let r = post(b.port, "/sink", "h", &big);
    assert_eq!(r.status(), 200, "{}", r.body_str());
    assert_eq!(main.seen()[0].body_len, 100_000);
    let r = post(b.port, "/sink", "h", "small");
    assert_eq!(r.status(), 200);
    wait_seen(&mirror, 1);
    std::thread::sleep(Duration::from_millis(300));
    let seen = mirror.seen();
    assert_eq!(seen.len(), 1, "only the small body is shadowed: {seen:?}");
    assert_eq!(seen[0].body_len, 5);
    assert_eq!(stat(admin, "cluster.svc.retry_or_shadow_abandoned"), 1);
}

#[test]
fn mirror_policies_are_checked_at_load() {
    let cases = [
        ("      - {}\n", "one of cluster, cluster_header is required"),
        (
            "      - {cluster: svc, cluster_header: x-c}\n",
            "only one of cluster, cluster_header may be set",
        ),
        ("      - {cluster: nosuch}\n", "unknown cluster \"nosuch\""),
        ("      - {cluster_header: 'a b'}\n", "invalid header name"),
        (
            "      - {cluster: svc, trace_sampled: false}\n",
            "trace_sampled",
        ),
        (
            "      - {cluster: svc, host_rewrite_literal: x}\n",
            "request_mirror_policies[0].host_rewrite_literal",
        ),
    ];
    for (policy, want) in cases {
        let routes = format!(
            "  - match: {{prefix: /}}\n    route:\n      cluster: svc\n      \
             request_mirror_policies:\n{policy}"
        );
        let err = refusal(&config(
            free_port(),
            &single_vhost(&routes),
            &[cluster("svc", &[1])],
        ));
        assert!(err.contains(want), "{policy}: {err}");
        assert!(err.contains("request_mirror_policies"), "{policy}: {err}");
    }
    // Shadows go over plain HTTP: a TLS mirror cluster is refused.
    let routes = "  - match: {prefix: /}\n    route:\n      cluster: svc\n      \
                  request_mirror_policies:\n      - cluster: tls\n";
    let tls = cluster_at(
        "tls",
        "127.0.0.1",
        "STATIC",
        &[1],
        "  transport_socket:\n    name: envoy.transport_sockets.tls\n    typed_config:\n      \
         \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n",
    );
    let err = refusal(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("svc", &[1]), tls],
    ));
    assert!(err.contains("clusters[1].transport_socket"), "{err}");
    assert!(err.contains("request mirror cluster"), "{err}");
}
