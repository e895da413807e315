//! Every access-log command operator baton accepts, each checked against the value Envoy
//! logs for the same request: response code details, route name, upstream local address,
//! attempt count, the durations, direct/local addresses, host name, connection id, local
//! reply body, environment, trailers (always `-` for HTTP/1), and what a route rewrite
//! shows (`:path`, `:authority`, `x-envoy-original-path`). The two header-size operators are
//! refused at load.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::*;

const FORMAT: &str = "%RESPONSE_CODE_DETAILS%|%ROUTE_NAME%|%UPSTREAM_LOCAL_ADDRESS%|\
%UPSTREAM_REQUEST_ATTEMPT_COUNT%|%REQ(:PATH)%|%REQ_WITHOUT_QUERY(:PATH)%|%REQUEST_DURATION%|\
%RESPONSE_DURATION%|%RESPONSE_TX_DURATION%|%UPSTREAM_TRANSPORT_FAILURE_REASON%|\
%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%|%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%|\
%DOWNSTREAM_LOCAL_ADDRESS%|%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%|%DOWNSTREAM_LOCAL_PORT%|\
%HOSTNAME%|%CONNECTION_ID%|%LOCAL_REPLY_BODY%|%ENVIRONMENT(HOME)%|%TRAILER(grpc-status)%|\
%REQ(X-ENVOY-ORIGINAL-PATH)%|%REQ(:AUTHORITY)%|%UPSTREAM_REMOTE_ADDRESS%\n";

fn num(v: &str) -> u64 {
    v.parse()
        .unwrap_or_else(|_| panic!("{v:?} is not a number"))
}

#[test]
fn every_operator_has_envoys_value() {
    let log = tmp_file("all");
    let (b, _up, s) = start_edited(
        vec![(log.display().to_string(), Some(FORMAT.to_string()))],
        |y| {
            y.replacen(
                r#"- {match: {prefix: "/status/"}, route: {cluster: svc}}"#,
                r#"- {name: status_route, match: {prefix: "/status/"}, route: {cluster: svc}}
              - {name: rewrite_route, match: {prefix: "/rw/"}, route: {cluster: svc, prefix_rewrite: "/status/", host_rewrite_literal: rewritten.example}}"#,
                1,
            )
        },
    );
    let p = b.port;
    assert_eq!(request(p, "GET", "/status/200?q=1", "", ""), 200);
    assert_eq!(request(p, "GET", "/nothing", "", ""), 404);
    assert_eq!(request(p, "GET", "/dead", "", ""), 503);
    assert_eq!(request(p, "GET", "/rw/201?x=y", "", ""), 201);
    assert_eq!(request(p, "GET", "/hang", "", ""), 504);
    let got = wait_file_lines(&log, 5);
    let rows: Vec<Vec<&str>> = got.iter().map(|l| l.split('|').collect()).collect();
    let home = std::env::var("HOME").unwrap_or_default();
    let home = if home.is_empty() { "-".into() } else { home };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let listen = format!("127.0.0.1:{}", s.listen);
    let mut ids = Vec::new();
    for r in &rows {
        assert_eq!(r.len(), 23, "{r:?}");
        // Per connection, from the client's side and ours.
        assert!(r[10].starts_with("127.0.0.1:") && r[10].len() > 10, "{r:?}");
        assert_eq!(r[11], "127.0.0.1");
        assert_eq!((r[12], r[13]), (listen.as_str(), "127.0.0.1"));
        assert_eq!(num(r[14]), u64::from(s.listen));
        assert_eq!(r[15], host.trim());
        ids.push(num(r[16]));
        assert_eq!(r[18], home);
        assert_eq!(
            r[19], "-",
            "HTTP/1 trailers are never kept (Envoy's default)"
        );
        num(r[6]);
    }
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "one connection per request: {ids:?}");

    // Proxied: via_upstream, named route, one attempt from a real local port.
    let ok = &rows[0];
    assert_eq!((ok[0], ok[1], ok[3]), ("via_upstream", "status_route", "1"));
    assert!(
        ok[2].starts_with("127.0.0.1:") && ok[2] != "127.0.0.1:0",
        "{ok:?}"
    );
    assert_eq!((ok[4], ok[5]), ("/status/200?q=1", "/status/200"));
    num(ok[7]);
    num(ok[8]);
    assert_eq!((ok[9], ok[17], ok[20]), ("-", "-", "-"));
    assert_eq!(ok[22], format!("127.0.0.1:{}", s.upstream));

    // No route: Envoy's details, no route name, never attempted, no upstream timings.
    let nr = &rows[1];
    assert_eq!(
        (nr[0], nr[1], nr[2], nr[3]),
        ("route_not_found", "-", "-", "0")
    );
    assert_eq!((nr[7], nr[8], nr[9]), ("-", "-", "-"));

    // Connect refused: the reset reason with the errno, and the local reply's body.
    let dead = &rows[2];
    assert!(
        dead[0] == "upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111}"
            || dead[0] == "upstream_reset_before_response_started{remote_connection_failure,immediate_connect_error:_111}",
        "{dead:?}"
    );
    assert!(dead[9].ends_with("connect_error:_111"), "{dead:?}");
    assert!(dead[17].starts_with("upstream connect error"), "{dead:?}");
    assert_eq!(dead[3], "1");

    // A rewrite: the log sees the rewritten path and host, and the original path.
    let rw = &rows[3];
    assert_eq!(rw[1], "rewrite_route");
    assert_eq!((rw[4], rw[5]), ("/status/201?x=y", "/status/201"));
    assert_eq!((rw[20], rw[21]), ("/rw/201?x=y", "rewritten.example"));
    assert_eq!(ok[21], "test.local");

    // Route timeout.
    let to = &rows[4];
    assert_eq!(
        (to[0], to[17]),
        ("upstream_response_timeout", "upstream request timeout")
    );
}

#[test]
fn header_size_operators_are_refused_at_load() {
    for op in ["%REQUEST_HEADERS_BYTES%", "%RESPONSE_HEADERS_BYTES%"] {
        let s = Setup {
            listen: common::free_port(),
            admin: common::free_port(),
            upstream: 1,
            dead: 2,
            dead_hold: None,
            logs: vec![(
                tmp_file("refused").display().to_string(),
                Some(op.to_string()),
            )],
        };
        let cfg = tmp_file("refused.yaml");
        std::fs::write(&cfg, s.yaml()).expect("write config");
        let (st, out, err) = common::run_baton(
            &["--mode", "validate", "-c", &cfg.display().to_string()],
            Duration::from_secs(20),
        );
        let _ = std::fs::remove_file(&cfg);
        assert!(!st.success(), "{op} accepted");
        let all = format!("{out}{err}");
        assert!(
            all.contains("access_log[0]") && all.contains("is not supported by baton"),
            "{all}"
        );
    }
}

#[test]
fn the_log_sees_the_headers_as_the_connection_manager_changed_them() {
    let log = tmp_file("mutated");
    let format = "%REQ(X-FORWARDED-FOR)%|%REQ(X-ENVOY-INTERNAL)%|%REQ(X-ENVOY-EXTERNAL-ADDRESS)%|\
%REQ(X-ENVOY-FORCE-TRACE)%|%REQ(X-ENVOY-RETRY-ON)%|%REQ(X-FORWARDED-PROTO)%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n";
    let (b, _up, _s) = start_edited(
        vec![(log.display().to_string(), Some(format.to_string()))],
        |y| {
            y.replacen(
                "stat_prefix: ingress_http\n",
                "stat_prefix: ingress_http\n          use_remote_address: true\n",
                1,
            )
        },
    );
    let url = format!("http://127.0.0.1:{}/status/200", b.port);
    let (xff, trace, retry, proto) = (
        "x-forwarded-for: 203.0.113.7",
        "x-envoy-force-trace: 1",
        "x-envoy-retry-on: 5xx",
        "x-forwarded-proto: https",
    );
    // Internal (loopback 127.0.0.1, no x-forwarded-for), then external (127.0.0.2, and a
    // client that sends its own x-forwarded-for).
    for (src, extra) in [("127.0.0.1", None), ("127.0.0.2", Some(xff))] {
        let mut args = vec!["--interface", src, "-o", "/dev/null"];
        for h in [Some(trace), Some(retry), Some(proto), extra]
            .into_iter()
            .flatten()
        {
            args.extend(["-H", h]);
        }
        args.push(&url);
        common::curl_ok(&args);
    }
    let got = wait_file_lines(&log, 2);
    // Internal: the peer appended, marked internal, the router's retry header consumed.
    assert_eq!(got[0], "127.0.0.1|true|-|1|-|http|127.0.0.1");
    // External at the edge: the peer appended to the client's list, control headers gone,
    // the external address named, the scheme replaced.
    assert_eq!(
        got[1],
        "203.0.113.7, 127.0.0.2|-|127.0.0.2|-|-|http|127.0.0.2"
    );
}

#[test]
fn a_json_format_writes_one_typed_object_per_request() {
    // `log_format.json_format`, Envoy's JSON access log: keys sorted, a status or a byte count
    // alone is a number, a missing value alone is null, a string with several operators is a
    // string with `-` for what is missing, constants as written, one object per line.
    let log = tmp_file("json");
    let json = r#"json_format: {code: "%RESPONSE_CODE%", sent: "%BYTES_SENT%", method: "%REQ(:METHOD)%", missing: "%REQ(x-none)%", line: "%REQ(:METHOD)% %REQ(x-none)% %RESPONSE_FLAGS%", resp: "%RESP(content-length)%", flags: "%RESPONSE_FLAGS%", kind: access, n: 2, nested: {details: "%RESPONSE_CODE_DETAILS%"}}"#;
    let (b, _up, _s) = start_edited(
        vec![(log.display().to_string(), Some("JSONMARK".to_string()))],
        |y| {
            y.replacen(
                "text_format_source:\n                  inline_string: \"JSONMARK\"",
                json,
                1,
            )
        },
    );
    let p = b.port;
    assert_eq!(request(p, "GET", "/status/200", "", ""), 200);
    assert_eq!(request(p, "POST", "/nothing", "", ""), 404);
    let got = wait_file_lines(&log, 2);
    assert_eq!(
        got,
        [
            "{\"code\":200,\"flags\":\"-\",\"kind\":\"access\",\"line\":\"GET - -\",\"method\":\"GET\",\"missing\":null,\"n\":2,\"nested\":{\"details\":\"via_upstream\"},\"resp\":\"11\",\"sent\":11}",
            "{\"code\":404,\"flags\":\"NR\",\"kind\":\"access\",\"line\":\"POST - NR\",\"method\":\"POST\",\"missing\":null,\"n\":2,\"nested\":{\"details\":\"route_not_found\"},\"resp\":null,\"sent\":0}",
        ]
    );
}
