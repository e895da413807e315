//! Protocol versions other than HTTP/1.1, as Envoy's HTTP/1 connection manager treats them:
//! HTTP/1.0 is answered 426 unless `http_protocol_options.accept_http_10` (then
//! `default_host_for_http_10` fills a missing Host), and a client that opens with the HTTP/2
//! connection preface is served HTTP/2 (tests/h2_downstream.rs) — unless `codec_type: HTTP1`,
//! whose HTTP/1 parser refuses it as any malformed request (400, close), as Envoy's does.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::*;
use common::*;

fn with_hcm(lines: &'static [&'static str]) -> impl Fn(String) -> String {
    move |y: String| {
        let mut add = String::from("stat_prefix: ingress_http\n");
        for l in lines {
            add.push_str(&format!("          {l}\n"));
        }
        y.replacen("stat_prefix: ingress_http\n", &add, 1)
    }
}

#[test]
fn http10_gets_426_unless_accepted() {
    let (b, up, s) = start_edited(vec![], |y| y);
    let (bytes, closed) = raw_exchange_ex(
        b.port,
        b"GET /status/200 HTTP/1.0\r\nHost: test\r\n\r\n",
        IO_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nUpgrade Required"), "{text}");
    assert!(closed, "the connection stays open after 426");
    assert!(up.seen().is_empty(), "the request reached the upstream");
    assert_eq!(stat(s.admin, "http.ingress_http.downstream_rq_4xx"), 1);
    // HTTP/1.1 is unaffected.
    assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
}

#[test]
fn accepted_http10_without_host_uses_the_default_host() {
    let (b, up, _s) = start_edited(
        vec![],
        with_hcm(&[
            "http_protocol_options: {accept_http_10: true, default_host_for_http_10: fallback.example}",
        ]),
    );
    let (bytes, closed) = raw_exchange_ex(b.port, b"GET /status/200 HTTP/1.0\r\n\r\n", IO_TIMEOUT);
    let rs = parse_responses(&bytes, &[]);
    assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(rs[0].status(), 200);
    assert!(closed);
    // Envoy answers an HTTP/1.0 request it serves in HTTP/1.0: the upstream's answer and a
    // local reply (no route for this path: 404).
    assert!(
        bytes.starts_with(b"HTTP/1.0 200 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let (bytes, _) = raw_exchange_ex(
        b.port,
        b"GET /no-route-here HTTP/1.0\r\nHost: given.example\r\n\r\n",
        IO_TIMEOUT,
    );
    assert!(
        bytes.starts_with(b"HTTP/1.0 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    // A Host the client sent wins over the default.
    let (bytes, _) = raw_exchange_ex(
        b.port,
        b"GET /status/200 HTTP/1.0\r\nHost: given.example\r\n\r\n",
        IO_TIMEOUT,
    );
    assert_eq!(parse_responses(&bytes, &[])[0].status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("host"), Some("fallback.example"));
    assert_eq!(seen[1].header("host"), Some("given.example"));
}

#[test]
fn a_bad_default_host_is_refused_at_load() {
    let (st, _, err) = run_baton(
        &[
            "--mode",
            "validate",
            "--config-yaml",
            &format!(
                "{}          http_protocol_options: {{default_host_for_http_10: 'a b'}}\n          route_config: {{virtual_hosts: []}}\n          http_filters: [{{name: envoy.filters.http.router}}]\n",
                yaml::listener_head("127.0.0.1", free_port())
            ),
        ],
        Duration::from_secs(20),
    );
    assert!(!st.success());
    assert!(
        err.contains("http_protocol_options.default_host_for_http_10: \"a b\" is not a valid host"),
        "{err}"
    );
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn with_codec_type_http1_the_preface_is_a_malformed_http1_request() {
    // Envoy's HTTP1 codec has no HTTP/2 path: `PRI * HTTP/2.0` fails its HTTP/1 parser and is
    // answered as any codec error (400, connection: close; DPE, http1.codec_error).
    let log = tmp_file("codec-http1");
    let (b, up, s) = start_edited(
        vec![(
            log.display().to_string(),
            Some("%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n".into()),
        )],
        with_hcm(&["codec_type: HTTP1"]),
    );
    let (bytes, closed) = raw_exchange_ex(b.port, PREFACE, IO_TIMEOUT);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(closed, "the connection stays open after the 400");
    assert_eq!(
        wait_file_lines(&log, 1),
        ["400 DPE http1.codec_error"],
        "{text}"
    );
    assert_eq!(
        stat(s.admin, "http.ingress_http.downstream_cx_http2_total"),
        0
    );
    assert!(up.seen().is_empty(), "the preface reached the upstream");
    // HTTP/1.1 on the same listener still works.
    assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
}
