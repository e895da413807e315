//! The connection manager's `local_reply_config` against the real binary: mappers chosen by
//! status code, request header, response flag and and/or filters; a mapper's status, body
//! (inline_string, inline_bytes), headers and body format; `body_format` as text with
//! operators and as JSON; which replies go through it (no route, no upstream, route timeout,
//! direct_response, a malformed request) and which do not (upstream responses); what the
//! access log records (the mapped status, the original details and flags); and the refusal,
//! by field path, of what baton does not implement.

mod common;

use common::baton::log_path;
use common::yaml::{file_access_log, listener_head};
use common::*;
use std::time::Duration;

/// A config: `/status/` and `/hang` to the upstream (route timeout 0.5 s), `/dead` to a
/// refused port, `/dr` a direct response; anything else has no route. `lrc` is the
/// `local_reply_config` block (its lines at eight spaces below the connection manager).
fn yaml(listen: u16, up: u16, dead: u16, log: &str, lrc: &str) -> String {
    let mut y = listener_head("127.0.0.1", listen);
    y.push_str(&file_access_log(
        log,
        "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% %BYTES_SENT%\\n",
    ));
    y.push_str("          local_reply_config:\n");
    for l in lrc.lines() {
        y.push_str("            ");
        y.push_str(l);
        y.push('\n');
    }
    y.push_str(&format!(
        r#"          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{prefix: "/status/"}}
                route: {{cluster: svc}}
              - match: {{prefix: "/hang"}}
                route: {{cluster: svc, timeout: 0.5s}}
              - match: {{prefix: "/dead"}}
                route: {{cluster: dead}}
              - match: {{prefix: "/dr"}}
                direct_response: {{status: 403, body: {{inline_string: denied}}}}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: svc
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: svc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up}}}}}}}
  - name: dead
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: dead
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {dead}}}}}}}
"#
    ));
    y
}

const MAPPERS: &str = r#"mappers:
- filter:
    header_filter:
      header: {name: x-lr, string_match: {exact: json}}
  headers_to_add:
  - header: {key: x-mapped, value: "json %REQ(x-lr)%"}
  body_format_override:
    json_format:
      status: "%RESPONSE_CODE%"
      body: "%LOCAL_REPLY_BODY%"
      path: "%REQ(:PATH)%"
      said: "%RESPONSE_FLAGS% at %REQ(:METHOD)%"
      missing: "%REQ(x-none)%"
      fixed: 1
      nested: {ok: true}
- filter:
    status_code_filter:
      comparison: {op: EQ, value: {default_value: 404, runtime_key: lr.not_found}}
  status_code: 410
  body: {inline_string: "nothing here (100% sure)"}
  headers_to_add:
  - header: {key: x-mapped, value: "404"}
- filter:
    response_flag_filter: {flags: [UF]}
  body_format_override:
    text_format: "flags=%RESPONSE_FLAGS% code=%RESPONSE_CODE% via %UPSTREAM_CLUSTER%"
    content_type: "text/x-down"
- filter:
    and_filter:
      filters:
      - status_code_filter:
          comparison: {op: GE, value: {default_value: 500, runtime_key: lr.five}}
      - or_filter:
          filters:
          - response_flag_filter: {flags: [UT]}
          - duration_filter:
              comparison: {op: GE, value: {default_value: 60000, runtime_key: lr.slow}}
  body: {inline_bytes: "dGltZW91dA=="}
body_format:
  text_format: "[%RESPONSE_CODE%] %LOCAL_REPLY_BODY%\n"
"#;

struct Setup {
    b: Baton,
    up: Upstream,
    log: std::path::PathBuf,
    _dead: std::os::fd::OwnedFd,
}

fn setup(lrc: &str) -> Setup {
    let up = Upstream::start("svc");
    let (dead, hold) = refused_port();
    let log = log_path("lrc-access");
    let b = Baton::start(&yaml(
        free_port(),
        up.port(),
        dead,
        &log.display().to_string(),
        lrc,
    ));
    Setup {
        b,
        up,
        log,
        _dead: hold,
    }
}

fn one(port: u16, raw: &str) -> Response {
    let mut c = RawConn::connect(port);
    c.send(raw.as_bytes());
    c.expect_response(false)
}

fn get_with(port: u16, path: &str, extra: &str) -> Response {
    one(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// Waits for `n` lines in the access log.
fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mappers_rewrite_status_body_headers_and_format() {
    let s = setup(MAPPERS);
    let p = s.b.port;

    // No route (404 NR) → the status-code mapper: 410, its body, its header, then the
    // default body_format around the body (a '%' in the mapper's body is not an operator).
    let r = get_with(p, "/nope", "");
    assert_eq!(r.status(), 410);
    assert_eq!(r.body_str(), "[410] nothing here (100% sure)\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-mapped"), Some("404"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    // The same request with x-lr: json → the first mapper wins: JSON, typed and sorted.
    let r = get_with(p, "/nope?q=1", "x-lr: json\r\n");
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mapped"), Some("json json"));
    assert_eq!(
        r.body_str(),
        "{\"body\":\"\",\"fixed\":1,\"missing\":null,\"nested\":{\"ok\":true},\
         \"path\":\"/nope?q=1\",\"said\":\"NR at GET\",\"status\":404}\n"
    );

    // Connect refused (503 UF) → the flag mapper's text format and content type.
    let r = get_with(p, "/dead", "");
    assert_eq!(r.status(), 503);
    assert_eq!(r.body_str(), "flags=UF code=503 via dead");
    assert_eq!(r.header("content-type"), Some("text/x-down"));
    assert!(r.header("x-mapped").is_none());

    // Route timeout (504 UT) → and(status >= 500, or(UT, duration)): the inline_bytes body.
    let r = get_with(p, "/hang", "");
    assert_eq!(r.status(), 504);
    assert_eq!(r.body_str(), "[504] timeout\n");

    // A direct response goes through local_reply_config too (no mapper: body_format only).
    let r = get_with(p, "/dr", "");
    assert_eq!(r.status(), 403);
    assert_eq!(r.body_str(), "[403] denied\n");

    // An upstream's own response is never touched, whatever its status.
    let r = get_with(p, "/status/404", "");
    assert_eq!(r.status(), 404);
    assert!(r.header("x-mapped").is_none());
    assert!(!r.body_str().starts_with('['), "{}", r.body_str());

    // A malformed request's 400 (made before any route) goes through it as well.
    let r = one(p, "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(r.status(), 400);
    assert_eq!(r.body_str(), "[400] Bad Request\n");

    // The access log has the status sent, Envoy's details and flags, the bytes sent.
    let lines = log_lines(&s.log, 7);
    let want = [
        "410 route_not_found NR 31".to_string(),
        "404 route_not_found NR 109".into(),
        "503 ".into(),
        "504 upstream_response_timeout UT 14".into(),
        "403 direct_response - 13".into(),
        "404 via_upstream - ".into(),
        "400 http1.codec_error DPE 18".into(),
    ];
    assert_eq!(lines.len(), 7, "{lines:?}");
    for (l, w) in lines.iter().zip(want.iter()) {
        assert!(l.starts_with(w.as_str()), "{l:?} does not start with {w:?}");
    }
    assert!(lines[2].ends_with(" UF 26"), "{:?}", lines[2]);
    assert_eq!(s.up.requests(), 2, "/hang and /status/404 only");
}

#[test]
fn status_override_keeps_the_connection_and_counts_the_new_class() {
    // A 404 turned into 200: the client sees 200 on a kept connection, and the stats count a
    // 2xx, not a 4xx (Envoy counts the status it sent).
    let admin = free_port();
    let up = Upstream::start("svc");
    let (dead, _hold) = refused_port();
    let log = log_path("lrc-ok");
    let lrc = r#"mappers:
- filter:
    status_code_filter:
      comparison: {op: LE, value: {default_value: 404, runtime_key: k}}
  status_code: 200
  body: {inline_string: "ok anyway"}
"#;
    let mut y = yaml(
        free_port(),
        up.port(),
        dead,
        &log.display().to_string(),
        lrc,
    );
    y.push_str(&format!(
        "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    ));
    let b = Baton::start(&y);
    let mut c = RawConn::connect(b.port);
    for _ in 0..2 {
        c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.expect_response(false);
        assert_eq!((r.status(), r.body_str().as_str()), (200, "ok anyway"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    let stats = curl_ok(&[&format!("http://127.0.0.1:{admin}/stats")]);
    let stat = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("0")
            .to_string()
    };
    assert_eq!(stat("http.ingress_http.downstream_rq_2xx"), "2", "{stats}");
    assert_eq!(stat("http.ingress_http.downstream_rq_4xx"), "0", "{stats}");
    assert_eq!(stat("http.ingress_http.no_route"), "2", "{stats}");
}

#[test]
fn a_body_format_alone_reformats_every_local_reply_and_omits_empty_values() {
    let lrc = r#"body_format:
  text_format: "%RESPONSE_CODE%|%REQ(x-none)%|%LOCAL_REPLY_BODY%|%RESPONSE_CODE_DETAILS%"
  omit_empty_values: true
  content_type: "text/x-plain; charset=UTF-8"
"#;
    let s = setup(lrc);
    let r = get_with(s.b.port, "/nope", "");
    assert_eq!(r.status(), 404);
    assert_eq!(r.body_str(), "404|||route_not_found");
    assert_eq!(
        r.header("content-type"),
        Some("text/x-plain; charset=UTF-8")
    );
    let r = get_with(s.b.port, "/dead", "");
    assert_eq!(r.status(), 503);
    assert!(
        r.body_str().starts_with("503||upstream connect error"),
        "{}",
        r.body_str()
    );
}

#[test]
fn an_unchanged_empty_body_has_no_content_type() {
    // Envoy's rule: a mapper that matches but leaves the body empty sends no content type.
    let lrc = r#"mappers:
- filter:
    response_flag_filter: {}
  headers_to_add:
  - header: {key: x-flagged, value: "yes"}
"#;
    let s = setup(lrc);
    let r = get_with(s.b.port, "/nope", "");
    assert_eq!(r.status(), 404);
    assert_eq!(r.body_str(), "");
    assert_eq!(r.header("x-flagged"), Some("yes"));
    assert!(r.header("content-type").is_none());
    assert_eq!(r.header("content-length"), Some("0"));
}

fn refused(lrc: &str) -> Vec<String> {
    let cfg = log_path("lrc-refused");
    std::fs::write(&cfg, yaml(free_port(), 1, 2, "/dev/null", lrc)).expect("write config");
    let (st, _out, err) = run_baton(
        &["--mode", "validate", "-c", &cfg.display().to_string()],
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(st.code(), Some(1), "{lrc}\n{err}");
    err.lines().map(str::to_string).collect()
}

#[test]
fn what_baton_does_not_implement_is_refused_by_path() {
    const P: &str =
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.local_reply_config";
    let cases: &[(&str, &str, &str)] = &[
        (
            "mappers:\n- filter: {metadata_filter: {matcher: {}}}\n",
            "mappers[0].filter.metadata_filter",
            "not supported by baton (metadata)",
        ),
        (
            "mappers:\n- filter: {log_type_filter: {types: [DownstreamEnd]}}\n",
            "mappers[0].filter.log_type_filter",
            "not supported by baton (log types)",
        ),
        (
            "mappers:\n- filter:\n    or_filter:\n      filters:\n      - not_health_check_filter: {}\n      - extension_filter: {name: x}\n",
            "mappers[0].filter.or_filter.filters[1].extension_filter",
            "not supported by baton (filter extensions)",
        ),
        (
            "mappers:\n- status_code: 200\n",
            "mappers[0].filter",
            "required field is missing",
        ),
        (
            "mappers:\n- filter: {response_flag_filter: {flags: [XX]}}\n",
            "mappers[0].filter.response_flag_filter.flags[0]",
            "unknown response flag \"XX\"",
        ),
        (
            "mappers:\n- filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 404}}}}\n",
            "mappers[0].filter.status_code_filter.comparison.value.runtime_key",
            "required field is missing",
        ),
        (
            "mappers:\n- filter: {and_filter: {filters: [{response_flag_filter: {}}]}}\n",
            "mappers[0].filter.and_filter.filters",
            "at least 2 filters are required",
        ),
        (
            "mappers:\n- filter: {response_flag_filter: {}}\n  status_code: 700\n",
            "mappers[0].status_code",
            "700 out of range (200..=599)",
        ),
        (
            "body_format:\n  text_format: \"%NOPE%\"\n",
            "body_format.text_format",
            "unknown command operator \"%NOPE%\"",
        ),
        (
            "body_format:\n  text_format: \"%RESP(x-a)%\"\n",
            "body_format.text_format",
            "\"%RESP(...)%\" is not supported by baton in local reply formats",
        ),
        (
            "body_format:\n  json_format: {a: \"%REQUEST_HEADERS_BYTES%\"}\n",
            "body_format.json_format.a",
            "\"%REQUEST_HEADERS_BYTES%\" is not supported by baton",
        ),
        (
            "body_format:\n  json_format: {a: b}\n  omit_empty_values: true\n",
            "body_format.omit_empty_values",
            "not supported by baton with json_format",
        ),
        (
            "body_format:\n  text_format: x\n  formatters:\n  - name: envoy.formatter.req_without_query\n",
            "body_format.formatters",
            "not supported by baton (formatter extensions)",
        ),
        (
            "body_format:\n  text_format: x\n  json_format: {a: b}\n",
            "body_format",
            "only one of text_format, text_format_source, json_format may be set",
        ),
        (
            "mappers:\n- filter: {response_flag_filter: {}}\n  body: {inline_bytes: \"!!\"}\n",
            "mappers[0].body.inline_bytes",
            "not valid base64",
        ),
    ];
    for (lrc, path, msg) in cases {
        let err = refused(lrc).join("\n");
        let want = format!("{P}.{path}: {msg}");
        assert!(err.contains(&want), "{lrc}\nwant: {want}\ngot: {err}");
    }
}

#[test]
fn a_content_type_from_the_route_edits_wins_over_text_plain() {
    // Envoy: a direct response's body is sent with the content type the route's response
    // edits set (the local reply path only adds `text/plain` when none is set), and with
    // exactly one content-type header. No local_reply_config is involved.
    let mut y = listener_head("127.0.0.1", free_port());
    y.push_str(
        r#"          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: "/json"}
                direct_response: {status: 200, body: {inline_string: "{}"}}
                response_headers_to_add:
                - header: {key: content-type, value: application/json}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_bytes: "cGxhaW4="}}
          http_filters:
          - name: envoy.filters.http.router
"#,
    );
    let b = Baton::start(&y);
    let r = get_with(b.port, "/json", "");
    assert_eq!(r.body_str(), "{}");
    assert_eq!(r.head.header_all("content-type"), ["application/json"]);
    let r = get_with(b.port, "/", "");
    assert_eq!(r.body_str(), "plain");
    assert_eq!(r.head.header_all("content-type"), ["text/plain"]);
}

#[test]
fn a_head_request_gets_the_reply_head_without_its_body() {
    // Envoy answers a HEAD locally with the reply's head (its content-length and type) and no
    // body; the connection stays usable.
    let s = setup(MAPPERS);
    let mut c = RawConn::connect(s.b.port);
    c.send(b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.expect_response(true);
    assert_eq!(r.status(), 410);
    assert_eq!(r.header("content-length"), Some("31"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.body.is_empty());
    c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.body_str(), "[410] nothing here (100% sure)\n");
    let lines = log_lines(&s.log, 2);
    assert!(
        lines[0].starts_with("410 route_not_found NR 0"),
        "{lines:?}"
    );
}
