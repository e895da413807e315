//! Access-log filters (`access_log[].filter`) through the real binary and curl: each logger
//! of one connection manager has its own filter, the same requests go through all of them,
//! and each file must hold exactly the requests its filter lets through (Envoy's
//! semantics): a status code comparison, a request header, a response flag, and/or
//! combinations, a duration threshold against the upstream's `/delay/MS`, the health check
//! filter's requests left out, runtime sampling by request id, gRPC statuses, and the
//! traceable filter (no tracing here, so nothing is logged; tests/tracing.rs checks a forced trace).

mod admin_util;
mod common;

use admin_util::*;

/// What every logger prints: the status, the path and the response flags.
const FORMAT: &str = "%RESPONSE_CODE% %REQ(:PATH)% %RESPONSE_FLAGS%\\n";

/// One file logger with `filter` (flow-style YAML).
fn logger(path: &std::path::Path, filter: &str) -> String {
    format!(
        "          - name: envoy.access_loggers.file\n            filter: {filter}\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{text_format_source: {{inline_string: \"{FORMAT}\"}}}}\n",
        path.display()
    )
}

fn ge(n: u32) -> String {
    format!("{{comparison: {{op: GE, value: {{default_value: {n}, runtime_key: k.{n}}}}}}}")
}

fn le(n: u32) -> String {
    format!("{{comparison: {{op: LE, value: {{default_value: {n}, runtime_key: k.{n}}}}}}}")
}

/// curl one request; returns the status.
fn get(port: u16, path: &str, headers: &[&str]) -> u16 {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.push(&url);
    curl_ok_status(&args)
}

fn curl_ok_status(args: &[&str]) -> u16 {
    let out = common::curl_ok(args);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {args:?}: {out:?}"))
}

/// The (status, path) of each line of a log.
fn entries(p: &std::path::Path) -> Vec<(u16, String)> {
    file_lines(p)
        .iter()
        .map(|l| {
            let mut it = l.split(' ');
            let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            (code, it.next().unwrap_or("").to_string())
        })
        .collect()
}

fn paths(p: &std::path::Path) -> Vec<String> {
    entries(p).into_iter().map(|(_, path)| path).collect()
}

#[test]
fn each_logger_writes_only_what_its_filter_lets_through() {
    let all = tmp_file("f-all");
    let status = tmp_file("f-status");
    let header = tmp_file("f-header");
    let nr = tmp_file("f-nr");
    let combo = tmp_file("f-combo");
    let slow = tmp_file("f-slow");
    let not_hc = tmp_file("f-nothc");
    let traced = tmp_file("f-traced");
    let grpc = tmp_file("f-grpc");
    let half = tmp_file("f-half");
    let never = tmp_file("f-never");
    let mut block = String::from("          access_log:\n");
    block.push_str(&format!(
        "          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{text_format_source: {{inline_string: \"{FORMAT}\"}}}}\n",
        all.display()
    ));
    block.push_str(&logger(
        &status,
        &format!("{{status_code_filter: {}}}", ge(400)),
    ));
    block.push_str(&logger(
        &header,
        "{header_filter: {header: {name: x-log-me, string_match: {exact: \"yes\"}}}}",
    ));
    block.push_str(&logger(&nr, "{response_flag_filter: {flags: [NR]}}"));
    // (500 <= status <= 503) or a request carrying x-force.
    block.push_str(&logger(
        &combo,
        &format!(
            "{{or_filter: {{filters: [{{and_filter: {{filters: [{{status_code_filter: {}}}, \
             {{status_code_filter: {}}}]}}}}, {{header_filter: {{header: {{name: x-force, \
             present_match: true}}}}}}]}}}}",
            ge(500),
            le(503)
        ),
    ));
    block.push_str(&logger(
        &slow,
        &format!("{{duration_filter: {}}}", ge(1000)),
    ));
    block.push_str(&logger(&not_hc, "{not_health_check_filter: {}}"));
    block.push_str(&logger(&traced, "{traceable_filter: {}}"));
    block.push_str(&logger(
        &grpc,
        "{grpc_status_filter: {statuses: [UNAVAILABLE, UNIMPLEMENTED]}}",
    ));
    block.push_str(&logger(
        &half,
        "{runtime_filter: {runtime_key: sample.half, percent_sampled: {numerator: 50, denominator: HUNDRED}}}",
    ));
    block.push_str(&logger(
        &never,
        "{runtime_filter: {runtime_key: sample.none}}",
    ));
    let hc = "          http_filters:\n          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n              pass_through_mode: false\n              headers:\n              - name: \":path\"\n                string_match: {exact: /healthz}\n";
    let (_b, _up, s) = start_edited(vec![], |y| {
        y.replacen(
            "          route_config:\n",
            &format!("{block}          route_config:\n"),
            1,
        )
        .replacen("          http_filters:\n", hc, 1)
        .replacen(
            "              - {match: {prefix: \"/hang\"}",
            "              - {match: {prefix: \"/delay/\"}, route: {cluster: svc}}\n              - {match: {prefix: \"/hang\"}",
            1,
        )
    });
    let p = s.listen;
    // request id 0x31 = 49 < 50: in the 50 % sample; 0x32 = 50: out.
    let id_in = "x-request-id: 00000031-0000-4000-8000-000000000000";
    let id_out = "x-request-id: 00000032-0000-4000-8000-000000000000";
    assert_eq!(get(p, "/status/200", &[id_in]), 200);
    assert_eq!(get(p, "/nothing", &[id_out]), 404);
    assert_eq!(get(p, "/status/201", &["x-log-me: yes", id_out]), 201);
    assert_eq!(get(p, "/status/202", &["x-log-me: no", id_in]), 202);
    assert_eq!(get(p, "/status/502", &[id_out]), 502);
    assert_eq!(get(p, "/status/504", &["x-force: 1", id_out]), 504);
    assert_eq!(get(p, "/empty", &[id_out]), 503);
    assert_eq!(get(p, "/nope", &[id_out]), 404);
    assert_eq!(get(p, "/healthz", &[id_out]), 200);
    assert_eq!(get(p, "/delay/2000", &[id_out]), 200);
    assert_eq!(get(p, "/delay/0", &[id_out]), 200);
    // All loggers are written by the same flush: once the unfiltered one has every line,
    // the others have theirs.
    let every = wait_file_lines(&all, 11);
    assert_eq!(every.len(), 11, "{every:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));

    assert_eq!(
        entries(&status),
        vec![
            (404, "/nothing".to_string()),
            (502, "/status/502".to_string()),
            (504, "/status/504".to_string()),
            (503, "/empty".to_string()),
            (404, "/nope".to_string()),
        ]
    );
    assert_eq!(paths(&header), vec!["/status/201"]);
    assert_eq!(paths(&nr), vec!["/nothing", "/nope"]);
    assert!(file_lines(&nr).iter().all(|l| l.ends_with(" NR")));
    assert_eq!(paths(&combo), vec!["/status/502", "/status/504", "/empty"]);
    assert_eq!(paths(&slow), vec!["/delay/2000"]);
    let mut want_not_hc: Vec<String> = entries(&all).into_iter().map(|(_, p)| p).collect();
    want_not_hc.retain(|p| p != "/healthz");
    assert_eq!(paths(&not_hc), want_not_hc);
    assert_eq!(
        file_lines(&traced),
        Vec::<String>::new(),
        "nothing is traced"
    );
    // 404 is UNIMPLEMENTED, 502/503/504 UNAVAILABLE (gRPC's mapping of HTTP statuses).
    assert_eq!(
        paths(&grpc),
        vec!["/nothing", "/status/502", "/status/504", "/empty", "/nope"]
    );
    assert_eq!(paths(&half), vec!["/status/200", "/status/202"]);
    assert_eq!(file_lines(&never), Vec::<String>::new(), "0 % by default");
}

#[test]
fn independent_randomness_samples_requests_that_share_a_request_id() {
    // 40 requests with one request id: sampled by the id, all or none would be logged; with
    // use_independent_randomness about half are (all or none: a chance of 2 in 2^40).
    let by_id = tmp_file("f-by-id");
    let indep = tmp_file("f-indep");
    let mut block = String::from("          access_log:\n");
    block.push_str(&logger(
        &by_id,
        "{runtime_filter: {runtime_key: a, percent_sampled: {numerator: 5000, denominator: TEN_THOUSAND}}}",
    ));
    block.push_str(&logger(
        &indep,
        "{runtime_filter: {runtime_key: b, percent_sampled: {numerator: 500000, denominator: MILLION}, use_independent_randomness: true}}",
    ));
    let (_b, _up, s) = start_edited(vec![], |y| {
        y.replacen(
            "          route_config:\n",
            &format!("{block}          route_config:\n"),
            1,
        )
    });
    // 0x1387 = 4999 < 5000 of 10000: in.
    let id = "x-request-id: 00001387-0000-4000-8000-000000000000";
    for _ in 0..40 {
        assert_eq!(get(s.listen, "/status/200", &[id]), 200);
    }
    let logged = wait_file_lines(&by_id, 40);
    assert_eq!(logged.len(), 40);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let n = file_lines(&indep).len();
    assert!((1..40).contains(&n), "{n} of 40 sampled independently");
}
