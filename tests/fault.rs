//! Envoy's fault injection filter (`envoy.filters.http.fault`) through the real binary and raw
//! requests. Aborts: a fixed status for matching requests, a status and percentage from the
//! request's `x-envoy-fault-abort-request*` headers, `downstream_nodes`, `max_active_faults:
//! 0`, per-route `HTTPFault` replacing the filter's, `fault filter abort` with flag FI and
//! details `fault_filter_abort`. Delays: a fixed delay (measured with a generous margin, a
//! lower bound only), a percentage of 0, `header_delay` with `x-envoy-fault-delay-request`,
//! a delay then an abort, the route timeout counted only after the delay, flag DI, a client
//! leaving mid-delay (DC, nothing upstream), `max_active_faults` counting delayed requests.
//! And the `http.<prefix>.fault.*` stats.

mod admin_util;
mod common;

use admin_util::{eventually, stat, wait_live};
use common::*;
use std::time::{Duration, Instant};

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// The access log every test here writes: path, status, flags, details.
fn access_log(log: &str) -> String {
    common::yaml::file_access_log(
        log,
        "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n",
    )
}

/// The fault filters' stat `n` (`http.ingress_http.fault.<n>`).
fn fault_stat(admin: u16, n: &str) -> i64 {
    stat(admin, &format!("http.ingress_http.fault.{n}"))
}

/// The chain's fault filter, `faults`, with `fields` (YAML lines at its config's indent).
fn fault_filter(fields: &str) -> String {
    format!(
        "          - name: faults\n            typed_config:\n              \"@type\": {FAULT}\n{fields}"
    )
}

fn yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = common::yaml::router_backend_admin(upstream, admin);
    let access_log = access_log(log);
    format!(
        r#"{head}{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/header"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  faults:
                    "@type": {FAULT}
                    abort: {{header_abort: {{}}, percentage: {{numerator: 100}}}}
              - match: {{prefix: "/nodes"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  faults:
                    "@type": {FAULT}
                    downstream_nodes: [node-a]
                    abort: {{http_status: 418, percentage: {{numerator: 1000000, denominator: MILLION}}}}
              - match: {{prefix: "/zero"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  faults:
                    "@type": {FAULT}
                    max_active_faults: 0
                    abort: {{http_status: 500, percentage: {{numerator: 100}}}}
              - match: {{prefix: "/off"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  faults: {{"@type": {FILTER_CONFIG}, disabled: true}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: faults
            typed_config:
              "@type": {FAULT}
              abort_percent_runtime: fault.http.abort.abort_percent
              headers: [{{name: x-fault, present_match: true}}]
              abort: {{http_status: 503, percentage: {{numerator: 100, denominator: HUNDRED}}}}
{tail}"#
    )
}

#[test]
fn fault_aborts_answer_their_status_where_configured() {
    let Logged {
        up,
        baton: _b,
        listen,
        admin,
        log,
    } = logged_proxy("fault-aborts", yaml);
    wait_live(admin);
    // (path, headers, status; 0: forwarded)
    let cases: &[(&str, &str, u16)] = &[
        ("/", "", 0),
        // The filter's own config: only requests matching its headers.
        ("/", "X-Fault: 1\r\n", 503),
        ("/off", "X-Fault: 1\r\n", 0),
        // header_abort: the status from the request, 200–599; its percentage header lowers
        // the configured one.
        ("/header", "x-envoy-fault-abort-request: 429\r\n", 429),
        (
            "/header",
            "x-envoy-fault-abort-request: 429\r\nx-envoy-fault-abort-request-percentage: 0\r\n",
            0,
        ),
        ("/header", "x-envoy-fault-abort-request: 700\r\n", 0),
        ("/header", "", 0),
        // downstream_nodes, with the abort counted under the downstream cluster too.
        (
            "/nodes",
            "x-envoy-downstream-service-node: node-a\r\nx-envoy-downstream-service-cluster: web\r\n",
            418,
        ),
        ("/nodes", "x-envoy-downstream-service-node: node-b\r\n", 0),
        // max_active_faults: 0 never lets a fault start.
        ("/zero", "", 0),
    ];
    for (path, headers, want) in cases {
        let (status, body) = send_raw(listen, "GET", path, headers);
        if *want == 0 {
            assert_eq!(status, 200, "{path} {headers:?}");
        } else {
            assert_eq!(
                (status, body.as_str()),
                (*want, "fault filter abort"),
                "{path} {headers:?}"
            );
        }
    }
    assert_eq!(
        up.requests(),
        cases.iter().filter(|c| c.2 == 0).count() as u64
    );
    let lines = log_lines(&log, cases.len());
    assert_eq!(lines.len(), cases.len(), "{lines:?}");
    for ((path, _, want), line) in cases.iter().zip(&lines) {
        let expected = if *want == 0 {
            format!("{path} 200 - via_upstream")
        } else {
            format!("{path} {want} FI fault_filter_abort")
        };
        assert_eq!(line, &expected);
    }
    let s = |n: &str| fault_stat(admin, n);
    assert_eq!(s("aborts_injected"), 3);
    assert_eq!(s("faults_overflow"), 1);
    assert_eq!(s("delays_injected"), 0);
    assert_eq!(s("web.aborts_injected"), 1);
}

/// `downstream_nodes` at the edge: the client's `x-envoy-downstream-service-node` is stripped
/// from an edge request before the filters run (Envoy's `mutateRequestHeaders`), so a forged
/// one injects nothing; an internal request's is honoured.
#[test]
fn an_edge_clients_forged_downstream_node_injects_no_fault() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let filter = fault_filter(
        "              downstream_nodes: [node-a]\n              abort: {http_status: 418, percentage: {numerator: 100}}\n",
    );
    let hcm = "          use_remote_address: true\n";
    let _b = Baton::start(&common::yaml::filter_yaml(
        "127.0.0.1",
        listen,
        hcm,
        &filter,
        up.port(),
        admin,
    ));
    wait_live(admin);
    let node = "x-envoy-downstream-service-node: node-a\r\n";
    // No x-forwarded-for from 127.0.0.1: internal, its node honoured.
    assert_eq!(send_raw(listen, "GET", "/", node).0, 418);
    // With one the request is external, at the edge: the node is stripped.
    let edge = format!("{node}x-forwarded-for: 10.1.1.1\r\n");
    assert_eq!(send_raw(listen, "GET", "/", &edge).0, 200);
    assert_eq!(up.requests(), 1);
}

#[test]
fn rate_limits_bad_delays_and_other_runtime_keys_are_refused_by_path() {
    let config = |fields: &str| {
        format!(
            r#"{head}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": {FAULT}
{fields}
{tail}"#,
            head = common::yaml::listener_head("127.0.0.1", 1),
            tail = common::yaml::router_backend_admin(1, 1),
        )
    };
    let base = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let cases = [
        (
            "              response_rate_limit: {fixed_limit: {limit_kbps: 1}}",
            format!("{base}.response_rate_limit: not supported by baton (response rate limits)"),
        ),
        (
            "              delay: {fixed_delay: 0s, percentage: {numerator: 100}}",
            format!("{base}.delay.fixed_delay: must be greater than 0s"),
        ),
        (
            "              delay: {fixed_delay: 1s, header_delay: {}}",
            format!("{base}.delay.header_delay: only one field may be set (also fixed_delay)"),
        ),
        (
            "              delay: {percentage: {numerator: 100}}",
            format!("{base}.delay: exactly one of fixed_delay, header_delay must be set"),
        ),
        (
            "              delay_duration_runtime: my.delay\n              delay: {header_delay: {}}",
            format!(
                "{base}.delay_duration_runtime: runtime key \"my.delay\" is not supported by baton"
            ),
        ),
        (
            "              abort_percent_runtime: my.key\n              abort: {http_status: 503}",
            format!(
                "{base}.abort_percent_runtime: runtime key \"my.key\" is not supported by baton"
            ),
        ),
        (
            "              abort: {http_status: 100}",
            format!("{base}.abort.http_status: 100 out of range (200..=599)"),
        ),
    ];
    for (fields, want) in cases {
        let err = refusal(&config(fields));
        assert!(
            err.contains(&want),
            "{want}
{err}"
        );
    }
}

fn delay_yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = common::yaml::router_backend_admin(upstream, admin);
    let access_log = access_log(log);
    let route = |prefix: &str, extra: &str, fault: &str| {
        format!(
            r#"              - match: {{prefix: "{prefix}"}}
                route: {{cluster: backend{extra}}}
                typed_per_filter_config:
                  faults:
                    "@type": {FAULT}
{fault}
"#
        )
    };
    let always = "percentage: {numerator: 100}";
    let routes = [
        // The route timeout (0.1 s) runs from when the router starts, after the delay.
        route(
            "/delay",
            ", timeout: 0.1s",
            &format!("                    delay: {{fixed_delay: 0.3s, {always}}}"),
        ),
        route(
            "/never",
            "",
            "                    delay: {fixed_delay: 0.3s, percentage: {numerator: 0}}",
        ),
        route(
            "/header",
            "",
            &format!("                    delay: {{header_delay: {{}}, {always}}}"),
        ),
        route(
            "/both",
            "",
            &format!(
                "                    delay: {{fixed_delay: 0.3s, {always}}}\n                    abort: {{http_status: 503, {always}}}"
            ),
        ),
        // Long enough to be caught in: one at a time.
        route(
            "/slow",
            "",
            &format!(
                "                    max_active_faults: 1\n                    delay: {{fixed_delay: 20s, {always}}}"
            ),
        ),
    ]
    .concat();
    format!(
        r#"{head}{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: faults
            typed_config:
              "@type": {FAULT}
              delay: {{fixed_delay: 5s, percentage: {{numerator: 0}}}}
{tail}"#
    )
}

/// The request's status and body, and how long its answer took.
fn timed(port: u16, path: &str, headers: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let (status, body) = send_raw(port, "GET", path, headers);
    (status, body, t.elapsed())
}

#[test]
fn fault_delays_hold_requests_before_the_router_sees_them() {
    let Logged {
        up,
        baton: _b,
        listen,
        admin,
        log,
    } = logged_proxy("fault-delays", delay_yaml);
    wait_live(admin);
    // A fixed delay: at least its length (less a margin for clock granularity), and the
    // route's 0.1 s timeout does not cover it.
    let (status, _, took) = timed(listen, "/delay", "");
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    // A percentage of 0 never delays (no timing asserted: it is the log's flags that say).
    for _ in 0..5 {
        assert_eq!(send_raw(listen, "GET", "/never", "").0, 200);
    }
    // header_delay: the request's milliseconds; without the header, no delay.
    let (status, _, took) = timed(listen, "/header", "x-envoy-fault-delay-request: 300\r\n");
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert_eq!(send_raw(listen, "GET", "/header", "").0, 200);
    // A delay, then the abort.
    let (status, body, took) = timed(listen, "/both", "");
    assert_eq!((status, body.as_str()), (503, "fault filter abort"));
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert_eq!(up.requests(), 8);
    let want = [
        "/delay 200 DI via_upstream",
        "/never 200 - via_upstream",
        "/never 200 - via_upstream",
        "/never 200 - via_upstream",
        "/never 200 - via_upstream",
        "/never 200 - via_upstream",
        "/header 200 DI via_upstream",
        "/header 200 - via_upstream",
        "/both 503 DI,FI fault_filter_abort",
    ];
    assert_eq!(log_lines(&log, want.len()), want);
    let s = |n: &str| fault_stat(admin, n);
    assert_eq!(s("delays_injected"), 3);
    assert_eq!(s("aborts_injected"), 1);
    assert_eq!(s("active_faults"), 0);
    assert_eq!(s("faults_overflow"), 0);
}

#[test]
fn a_delayed_request_holds_its_fault_until_it_ends_and_a_client_leaving_sends_nothing_up() {
    let Logged {
        up,
        baton: _b,
        listen,
        admin,
        log,
    } = logged_proxy("fault-delay-leave", delay_yaml);
    wait_live(admin);
    let s = |n: &str| fault_stat(admin, n);
    let mut held = std::net::TcpStream::connect(local(listen)).expect("connect");
    std::io::Write::write_all(&mut held, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    assert!(eventually(IO_TIMEOUT, || s("active_faults") == 1));
    // max_active_faults: 1 is taken: the next request is not delayed.
    let (status, _, _) = timed(listen, "/slow", "");
    assert_eq!(status, 200);
    assert_eq!(s("faults_overflow"), 1);
    // The held client goes away (a reset: a FIN alone is a half-close, still answered):
    // its request ends as a downstream disconnect, and nothing of it goes upstream.
    reset_close(held);
    let want = [
        "/slow 200 - via_upstream",
        "/slow 0 DI,DC downstream_remote_disconnect",
    ];
    assert_eq!(log_lines(&log, want.len()), want);
    assert_eq!(up.requests(), 1);
    assert_eq!(s("active_faults"), 0);
    assert_eq!(s("delays_injected"), 1);
}

#[test]
fn a_delayed_request_is_answered_across_a_hot_restart() {
    use common::hot::{exit_status, hot_start, hot_takeover, HotDir};
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let filter =
        fault_filter("              delay: {fixed_delay: 3s, percentage: {numerator: 100}}\n");
    let yaml = common::yaml::filter_yaml("127.0.0.1", listen, "", &filter, up.port(), admin);
    let dir = HotDir::new("fault-delay-hot");
    let mut v1 = hot_start(&yaml, &dir, &[]);
    wait_live(admin);
    let t0 = Instant::now();
    let mut c = RawConn::connect(listen);
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    let s = |n: &str| fault_stat(admin, n);
    assert!(eventually(IO_TIMEOUT, || s("active_faults") == 1));
    // A new generation takes over while the request is in its delay.
    let (v2, _) = hot_takeover(&yaml, &dir, &[], &v1);
    let taken_over = t0.elapsed();
    // The delayed request is answered by the old generation, on its connection, once its
    // delay is over.
    assert_eq!(c.expect_response(false).status(), 200);
    let answered = t0.elapsed();
    assert!(answered >= Duration::from_millis(2900), "{answered:?}");
    assert!(taken_over < answered, "{taken_over:?} {answered:?}");
    assert_eq!(up.requests(), 1);
    // The connection goes on (handed over once idle), its next request delayed again.
    c.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    assert_eq!(up.requests(), 2);
    drop(c);
    v1.sigterm();
    assert!(exit_status(&mut v1, Duration::from_secs(60)).success());
    drop(v2);
}

/// Envoy's stream idle timer runs through a delay: a delay longer than `stream_idle_timeout`
/// ends with the connection manager's `504 stream timeout` (flag SI), nothing upstream.
#[test]
fn a_delay_longer_than_the_stream_idle_timeout_is_answered_stream_timeout() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let log = common::baton::log_path("fault-delay-idle")
        .to_string_lossy()
        .into_owned();
    let access_log = access_log(&log);
    let hcm = format!("          stream_idle_timeout: 0.3s\n{access_log}");
    let filter =
        fault_filter("              delay: {fixed_delay: 20s, percentage: {numerator: 100}}\n");
    let _b = Baton::start(&common::yaml::filter_yaml(
        "127.0.0.1",
        listen,
        &hcm,
        &filter,
        up.port(),
        admin,
    ));
    wait_live(admin);
    let (status, body, took) = timed(listen, "/idle", "");
    assert_eq!((status, body.as_str()), (504, "stream timeout"));
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert_eq!(log_lines(&log, 1), ["/idle 504 DI,SI stream_idle_timeout"]);
    assert_eq!(up.requests(), 0);
    let s = |n: &str| fault_stat(admin, n);
    assert_eq!(s("active_faults"), 0);
}
