//! Envoy's health check HTTP filter (`envoy.filters.http.health_check`) before the router: a
//! request whose headers match is a health check, answered by baton (or, in pass-through mode,
//! by the upstream) with `x-envoy-upstream-healthchecked-cluster`; `/healthcheck/fail` turns
//! every health check into 503 (flag LH) and marks every other answer with
//! `x-envoy-immediate-health-check-fail`.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::{admin, eventually, Setup};
use common::baton::log_path;
use common::*;

/// The admin set-up's config with the health check filter (`typed_config` fields `fields`,
/// indented for the YAML) before the router.
fn with_filter(yaml: String, fields: &str) -> String {
    let filter = format!(
        "          http_filters:\n          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n{fields}"
    );
    yaml.replacen("          http_filters:\n", &filter, 1)
}

/// Baton with `with_filter(fields)`, an access log at `log`, `--service-cluster front`.
fn start(fields: &str, log: &std::path::Path) -> (Baton, Upstream, Setup) {
    let logs = vec![(
        log.display().to_string(),
        Some("%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n".to_string()),
    )];
    admin_util::start_edited_args(
        logs,
        |y| with_filter(y, fields),
        &["--service-cluster", "front"],
    )
}

fn get_path(port: u16, path: &str) -> common::Response {
    let mut c = RawConn::connect(port);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    c.expect_response(false)
}

/// Waits (bounded) for the access log to hold `n` lines; returns them.
fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    eventually(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.len() >= n
    });
    lines
}

const HEALTHZ: &str = "              pass_through_mode: false\n              headers:\n              - name: \":path\"\n                string_match: {exact: /healthz}\n";

#[test]
fn health_checks_are_answered_here_and_fail_with_healthcheck_fail() {
    let log = log_path("hc-answered");
    let (_b, up, s) = start(HEALTHZ, &log);
    let r = get_path(s.listen, "/healthz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_str(), "");
    assert_eq!(
        r.header("x-envoy-upstream-healthchecked-cluster"),
        Some("front")
    );
    // Other requests are routed as before, unmarked.
    let r = get_path(s.listen, "/status/201");
    assert_eq!(r.status(), 201);
    assert_eq!(r.header("x-envoy-immediate-health-check-fail"), None);
    assert_eq!(r.header("x-envoy-upstream-healthchecked-cluster"), None);
    assert_eq!(
        up.requests(),
        1,
        "the health check never reached the upstream"
    );

    assert_eq!(admin(s.admin, "POST", "/healthcheck/fail").0, 200);
    let r = get_path(s.listen, "/healthz");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.header("x-envoy-upstream-healthchecked-cluster"),
        Some("front")
    );
    // Still served while failed, but marked, so a downstream Envoy drops this host.
    let r = get_path(s.listen, "/status/202");
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.header("x-envoy-immediate-health-check-fail"),
        Some("true")
    );
    // A local reply (no route) is marked too.
    let r = get_path(s.listen, "/nowhere");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.header("x-envoy-immediate-health-check-fail"),
        Some("true")
    );

    assert_eq!(admin(s.admin, "POST", "/healthcheck/ok").0, 200);
    assert_eq!(get_path(s.listen, "/healthz").status(), 200);
    assert_eq!(up.requests(), 2);
    assert_eq!(
        log_lines(&log, 6),
        [
            "/healthz 200 - health_check_ok",
            "/status/201 201 - via_upstream",
            "/healthz 503 LH health_check_failed",
            "/status/202 202 - via_upstream",
            "/nowhere 404 NR route_not_found",
            "/healthz 200 - health_check_ok",
        ]
    );
}

#[test]
fn pass_through_health_checks_reach_the_upstream_unless_failed() {
    let log = log_path("hc-pass");
    let fields = "              pass_through_mode: true\n              headers:\n              - name: x-health\n                present_match: true\n";
    let (_b, up, s) = start(fields, &log);
    let mut c = RawConn::connect(s.listen);
    c.send(b"GET /status/204 HTTP/1.1\r\nHost: x\r\nx-health: 1\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 204, "the upstream's answer");
    assert_eq!(
        r.header("x-envoy-upstream-healthchecked-cluster"),
        Some("front")
    );
    assert_eq!(up.requests(), 1);
    // Without the header: not a health check.
    let r = get_path(s.listen, "/status/200");
    assert_eq!(r.header("x-envoy-upstream-healthchecked-cluster"), None);
    assert_eq!(up.requests(), 2);

    assert_eq!(admin(s.admin, "POST", "/healthcheck/fail").0, 200);
    c.send(b"GET /status/204 HTTP/1.1\r\nHost: x\r\nx-health: 1\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 503, "answered here while failed");
    assert_eq!(
        r.header("x-envoy-upstream-healthchecked-cluster"),
        Some("front")
    );
    assert_eq!(up.requests(), 2, "not forwarded while failed");
    assert_eq!(
        log_lines(&log, 3).last().map(String::as_str),
        Some("/status/204 503 LH health_check_failed")
    );
}

#[test]
fn cluster_min_healthy_percentages_answer_503_for_a_cluster_without_hosts() {
    // `svc` has its host; `empty` has none; `nope` does not exist (Envoy: unhealthy).
    // A minimum is taken as a whole percent, as Envoy takes it: 0.9 is 0.
    for (mins, want, details) in [
        ("{svc: {value: 100}}", 200, "health_check_ok"),
        (
            "{svc: {value: 100}, empty: {value: 50}}",
            503,
            "health_check_failed_cluster_empty",
        ),
        ("{empty: {value: 0.9}}", 200, "health_check_ok"),
        ("{nope: {value: 0}}", 503, "health_check_no_cluster_found"),
    ] {
        let log = log_path("hc-min");
        let fields = format!("{HEALTHZ}              cluster_min_healthy_percentages: {mins}\n");
        let (_b, up, s) = start(&fields, &log);
        let r = get_path(s.listen, "/healthz");
        assert_eq!(r.status(), want, "{mins}");
        assert_eq!(up.requests(), 0);
        let flag = if want == 200 { "-" } else { "LH" };
        assert_eq!(
            log_lines(&log, 1),
            [format!("/healthz {want} {flag} {details}")],
            "{mins}"
        );
    }
}

#[test]
fn health_check_filter_fields_baton_does_not_implement_are_refused() {
    let hc = |fields: &str| {
        let s = Setup {
            listen: 1,
            admin: 2,
            upstream: 3,
            dead: 4,
            dead_hold: None,
            logs: Vec::new(),
        };
        let yaml = with_filter(s.yaml(), fields);
        let file = log_path("hc-refused.yaml");
        std::fs::write(&file, yaml).expect("write config");
        let (st, _, err) = run_baton(
            &["--mode", "validate", "-c", &file.display().to_string()],
            Duration::from_secs(10),
        );
        assert!(!st.success(), "{fields}: {err}");
        err
    };
    let p = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let e = hc("              pass_through_mode: true\n              cache_time: 5s\n");
    assert!(
        e.contains(&format!("{p}.cache_time: not supported by baton")),
        "{e}"
    );
    let e = hc("              headers: []\n");
    assert!(
        e.contains(&format!("{p}.pass_through_mode: required field is missing")),
        "{e}"
    );
    let e = hc("              pass_through_mode: false\n              endpoint: /hc\n");
    assert!(
        e.contains(&format!("{p}.endpoint: unknown or unsupported field")),
        "{e}"
    );
    let e = hc(
        "              pass_through_mode: true\n              cluster_min_healthy_percentages: {svc: {value: 10}}\n",
    );
    assert!(
        e.contains(&format!(
            "{p}.cluster_min_healthy_percentages: applies only without pass_through_mode"
        )),
        "{e}"
    );
}
