//! Envoy's fault injection filter (`envoy.filters.http.fault`), aborts only, through the real
//! binary and raw requests: a fixed status for matching requests, a status and percentage
//! from the request's `x-envoy-fault-abort-request*` headers, `downstream_nodes`,
//! `max_active_faults: 0`, per-route `HTTPFault` replacing the filter's, `fault filter abort`
//! with flag FI and details `fault_filter_abort`, and the `http.<prefix>.fault.*` stats.

mod admin_util;
mod common;

use admin_util::{stat, wait_live};
use common::*;

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

fn yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = common::yaml::router_backend_admin(upstream, admin);
    let access_log = common::yaml::file_access_log(
        log,
        "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n",
    );
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
    let s = |n: &str| stat(admin, &format!("http.ingress_http.fault.{n}"));
    assert_eq!(s("aborts_injected"), 3);
    assert_eq!(s("faults_overflow"), 1);
    assert_eq!(s("delays_injected"), 0);
    assert_eq!(s("web.aborts_injected"), 1);
}

#[test]
fn fault_delays_and_other_runtime_keys_are_refused_by_path() {
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
            "              delay: {fixed_delay: 1s, percentage: {numerator: 100}}",
            format!("{base}.delay: not supported by baton (fault delays; aborts are supported)"),
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
