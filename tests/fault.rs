//! Envoy's fault injection filter (`envoy.filters.http.fault`), aborts only, through the real
//! binary and raw requests: a fixed status for matching requests, a status and percentage
//! from the request's `x-envoy-fault-abort-request*` headers, `downstream_nodes`,
//! `max_active_faults: 0`, per-route `HTTPFault` replacing the filter's, `fault filter abort`
//! with flag FI and details `fault_filter_abort`, and the `http.<prefix>.fault.*` stats.

mod admin_util;
mod common;

use std::time::{Duration, Instant};

use admin_util::{stat, wait_live};
use common::*;

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

fn yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
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
          - name: envoy.filters.http.router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
"#
    )
}

/// One request on a fresh connection: (status, body).
fn send(port: u16, path: &str, headers: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: f.test\r\n{headers}Connection: close\r\n\r\n");
    let out = raw_exchange(port, req.as_bytes(), Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits (bounded) until the log has `n` lines; returns them.
fn log_lines(path: &str, n: usize) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n || Instant::now() > end {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fault_aborts_answer_their_status_where_configured() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let log = common::baton::log_path("fault-aborts")
        .to_string_lossy()
        .into_owned();
    let _b = Baton::start(&yaml(listen, admin, up.port(), &log));
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
        let (status, body) = send(listen, path, headers);
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
          - name: envoy.filters.http.router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]
"#,
            head = common::yaml::listener_head("127.0.0.1", 1)
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
    let dir = std::env::temp_dir().join(format!("baton-fault-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (fields, want) in cases {
        let file = dir.join("c.yaml");
        std::fs::write(&file, config(fields)).expect("write config");
        let (status, _, err) = run_baton(
            &["--mode", "validate", "-c", file.to_str().expect("utf-8")],
            Duration::from_secs(30),
        );
        assert!(!status.success());
        assert!(err.contains(&want), "{want}\n{err}");
    }
}
