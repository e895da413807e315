//! A cluster's `typed_extension_protocol_options`
//! (`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`) against the real binary: the
//! pool's idle timeout, request and age limits seen from an origin that counts its
//! connections and the EOFs it reads, the response header limit, proper-cased header names,
//! and the refusal of unsupported options (HTTP/2 ones included) by path.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::{eventually, stat, wait_live};
use common::counting::Origin;
use common::*;

/// Baton in front of `o`, its cluster with these `HttpProtocolOptions` fields (flow YAML),
/// and the admin port.
fn start(o: &Origin, options: &str) -> (Baton, u16) {
    let admin = free_port();
    let yaml = format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n",
        with_options(o.port, options)
    );
    let b = Baton::start(&yaml);
    wait_live(admin);
    (b, admin)
}

/// `cluster.backend.<name>`.
fn counter(admin: u16, name: &str) -> i64 {
    stat(admin, &format!("cluster.backend.{name}"))
}

fn with_options(port: u16, options: &str) -> String {
    let y = proxy_yaml(
        free_port(),
        &[("backend", &[port], "STATIC")],
        &Extra::default(),
    );
    y.replacen(
        "    lb_policy: ROUND_ROBIN\n",
        &format!(
            "    lb_policy: ROUND_ROBIN\n    typed_extension_protocol_options:\n      \
             envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
             {{\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, {options}}}\n"
        ),
        1,
    )
}

fn get(c: &mut RawConn, path: &str, extra: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    c.expect_response(false)
}

#[test]
fn idle_timeout_closes_a_pooled_connection_and_the_next_request_opens_another() {
    let o = Origin::start(200);
    let (b, admin) = start(&o, "common_http_protocol_options: {idle_timeout: 0.5s}");
    let mut c = RawConn::connect(b.addr().port());
    assert_eq!(get(&mut c, "/", "").status(), 200);
    assert_eq!(o.accepted(), 1);
    // The pooled connection is closed by baton: the origin reads EOF.
    assert!(
        eventually(Duration::from_secs(10), || o.eofs() == 1),
        "no EOF at the origin"
    );
    assert_eq!(get(&mut c, "/", "").status(), 200);
    assert_eq!(o.accepted(), 2);
    assert_eq!(counter(admin, "upstream_cx_idle_timeout"), 1);
}

#[test]
fn without_options_a_pooled_connection_is_reused() {
    let o = Origin::start(200);
    let (b, admin) = start(&o, "common_http_protocol_options: {}");
    let mut c = RawConn::connect(b.addr().port());
    for _ in 0..3 {
        assert_eq!(get(&mut c, "/", "").status(), 200);
    }
    assert_eq!(o.accepted(), 1);
    assert_eq!(o.eofs(), 0);
    assert_eq!(counter(admin, "upstream_cx_max_requests"), 0);
}

#[test]
fn max_requests_per_connection_two_makes_three_requests_use_two_connections() {
    let o = Origin::start(200);
    let (b, admin) = start(
        &o,
        "common_http_protocol_options: {max_requests_per_connection: 2}",
    );
    let mut c = RawConn::connect(b.addr().port());
    for _ in 0..3 {
        assert_eq!(get(&mut c, "/", "").status(), 200);
    }
    assert_eq!(o.accepted(), 2);
    assert!(
        eventually(Duration::from_secs(10), || o.eofs() == 1),
        "the first connection was not closed"
    );
    assert_eq!(counter(admin, "upstream_cx_max_requests"), 1);
}

#[test]
fn max_connection_duration_closes_an_idle_connection_and_one_in_use_after_its_exchange() {
    let o = Origin::start(200);
    let (b, admin) = start(
        &o,
        "common_http_protocol_options: {max_connection_duration: 1s}",
    );
    let mut c = RawConn::connect(b.addr().port());
    // Idle in the pool past its duration (the idle timeout is the default hour): closed.
    assert_eq!(get(&mut c, "/", "").status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || o.eofs() == 1),
        "the aged idle connection stayed open"
    );
    // In use when its duration ends: the exchange completes, then it is closed, not pooled.
    assert_eq!(get(&mut c, "/slow/1500", "").status(), 200);
    assert_eq!(o.accepted(), 2);
    assert!(
        eventually(Duration::from_secs(10), || o.eofs() == 2),
        "the aged busy connection was pooled"
    );
    assert_eq!(get(&mut c, "/", "").status(), 200);
    assert_eq!(o.accepted(), 3);
    assert_eq!(counter(admin, "upstream_cx_max_duration_reached"), 2);
    assert_eq!(counter(admin, "upstream_cx_idle_timeout"), 0);
}

#[test]
fn max_headers_count_refuses_a_response_with_more_headers() {
    let o = Origin::start(200);
    let (b, _admin) = start(&o, "common_http_protocol_options: {max_headers_count: 4}");
    let mut c = RawConn::connect(b.addr().port());
    // content-length and 3 more: within the limit.
    assert_eq!(get(&mut c, "/headers/3", "").status(), 200);
    let r = get(&mut c, "/headers/4", "");
    // baton's answer to any malformed upstream response head (UPE).
    assert_eq!(r.status(), 502);
    assert!(r.body_str().contains("protocol error"), "{}", r.body_str());
}

#[test]
fn proper_case_words_writes_upstream_header_names_in_proper_case() {
    let o = Origin::start(200);
    let (b, _admin) = start(&o,
        "explicit_http_config: {http_protocol_options: {header_key_format: {proper_case_words: {}}}}",
    );
    let mut c = RawConn::connect(b.addr().port());
    assert_eq!(
        get(&mut c, "/", "x-custom-thing: v\r\nACCEPT: */*\r\n").status(),
        200
    );
    let heads = o.heads();
    let head = heads.first().expect("a request");
    assert!(head.contains("\r\nHost: x\r\n"), "{head}");
    assert!(head.contains("\r\nX-Custom-Thing: v\r\n"), "{head}");
    assert!(head.contains("\r\nAccept: */*\r\n"), "{head}");
    assert!(head.contains("\r\nX-Forwarded-Proto: "), "{head}");
}

#[test]
fn http2_and_unsupported_options_are_refused_naming_their_path() {
    let key = "static_resources.clusters[0].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let cases = [
        (
            "explicit_http_config: {http2_protocol_options: {allow_connect: true}}",
            "explicit_http_config.http2_protocol_options.allow_connect: not supported by baton",
        ),
        (
            "use_downstream_protocol_config: {http2_protocol_options: {}}",
            "use_downstream_protocol_config.http2_protocol_options: not supported by baton",
        ),
        (
            "use_downstream_protocol_config: {http3_protocol_options: {}}",
            "use_downstream_protocol_config.http3_protocol_options: not supported by baton (HTTP/3",
        ),
        ("auto_config: {}", "auto_config: not supported by baton"),
        (
            "upstream_http_protocol_options: {override_auto_sni_header: x-sni}",
            "upstream_http_protocol_options.override_auto_sni_header: not supported by baton",
        ),
        (
            "common_http_protocol_options: {max_stream_duration: 1s}",
            "common_http_protocol_options.max_stream_duration: unknown or unsupported field",
        ),
    ];
    for (options, want) in cases {
        let yaml = with_options(1, options);
        let (st, _, err) = run_baton(
            &["--mode", "validate", "--config-yaml", &yaml],
            Duration::from_secs(20),
        );
        assert!(!st.success(), "{options} loaded");
        assert!(err.contains(&format!("{key}.{want}")), "{options}: {err}");
    }
}
