//! Datadog tracing end to end: a Python agent on 127.0.0.1 (`datadog_support`) receives the
//! reports, a recording upstream shows the headers baton injected, and the two are
//! compared.

mod admin_util;
mod common;
mod datadog_support;
mod routing_support;

use std::time::Duration;

use admin_util::{eventually, stat};
use common::*;
use datadog_support::Agent;
use routing_support::fetch;

/// One inbound listener tracing to the agent (decorator `inOp`; `/nodeco` has none), with
/// a pass-through health check for requests with `x-health`.
fn yaml(inbound: u16, admin: u16, up: u16, agent: u16) -> String {
    format!(
        r#"node: {{id: node-7, cluster: front-proxy}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: inbound
    address:
      socket_address:
        address: 127.0.0.1
        port_value: {inbound}
    traffic_direction: INBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          tracing:
            custom_tags:
            - tag: tenant
              request_header: {{name: x-tenant, default_value: none}}
            provider:
              name: envoy.tracers.datadog
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.DatadogConfig
                collector_cluster: datadog_agent
                service_name: front
                collector_hostname: dd-agent.local
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: true
              headers:
              - name: x-health
                present_match: true
          - name: envoy.filters.http.router
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{prefix: /nodeco}}
                route: {{cluster: svc}}
              - match: {{prefix: /}}
                route: {{cluster: svc}}
                decorator: {{operation: inOp}}
  clusters:
  - name: svc
    load_assignment:
      cluster_name: svc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up}}}}}}}
  - name: datadog_agent
    load_assignment:
      cluster_name: datadog_agent
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {agent}}}}}}}
"#
    )
}

struct Setup {
    up: Upstream,
    agent: Agent,
    b: Baton,
    inbound: u16,
    admin: u16,
}

fn setup(rates: &str) -> Setup {
    let up = Upstream::start("up");
    let agent = Agent::start(rates, "dd-agent.local");
    let (inbound, admin) = (free_port(), free_port());
    let b = Baton::start(&yaml(inbound, admin, up.port(), agent.port));
    Setup {
        up,
        agent,
        b,
        inbound,
        admin,
    }
}

/// The upstream's view of the last request.
fn last_seen(up: &Upstream) -> baton_bench::origin::SeenRequest {
    up.seen().pop().expect("the upstream saw a request")
}

fn header(seen: &baton_bench::origin::SeenRequest, n: &str) -> String {
    seen.header(n)
        .unwrap_or_else(|| panic!("no {n} upstream"))
        .to_string()
}

#[test]
fn a_root_span_is_reported_to_the_agent_and_its_context_sent_upstream() {
    // The agent tells the proxy to drop every later trace of service `front`.
    let s = setup(r#"{"service:front,env:": 0, "service:,env:": 1}"#);
    let r = fetch(s.inbound, "svc.local", "/a?q=1", "x-tenant: acme\r\n");
    assert_eq!(r.status(), 200);
    let seen = last_seen(&s.up);
    let trace = header(&seen, "x-datadog-trace-id");
    let span = header(&seen, "x-datadog-parent-id");
    assert_eq!(span, trace, "a root span's id is its trace id's low half");
    // Kept by the default rate (the agent has not answered yet).
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("1"));
    let tags = header(&seen, "x-datadog-tags");
    assert!(tags.contains("_dd.p.dm=-0"), "{tags}");
    assert!(tags.contains("_dd.p.tid="), "{tags}");
    let tid = tags
        .split(',')
        .find_map(|t| t.strip_prefix("_dd.p.tid="))
        .expect("tid")
        .to_string();
    let low: u64 = trace.parse().expect("decimal trace id");
    let tp = header(&seen, "traceparent");
    assert_eq!(tp, format!("00-{tid}{low:016x}-{low:016x}-01"));
    let ts = header(&seen, "tracestate");
    assert_eq!(ts, format!("dd=s:1;p:{low:016x};t.dm:-0"));
    // The 2 s flush sends it.
    let j = s.agent.span(&span);
    for want in [
        format!("\"trace_id\": {trace},"),
        "\"parent_id\": 0,".into(),
        "\"name\": \"envoy.proxy\"".into(),
        "\"resource\": \"inOp\"".into(),
        "\"service\": \"front\"".into(),
        "\"type\": \"web\"".into(),
        "\"error\": 0".into(),
        "\"http.method\": \"GET\"".into(),
        "\"http.status_code\": \"200\"".into(),
        "\"http.url\": \"http://svc.local/a?q=1\"".into(),
        "\"component\": \"proxy\"".into(),
        "\"upstream_cluster\": \"svc\"".into(),
        "\"node_id\": \"node-7\"".into(),
        "\"tenant\": \"acme\"".into(),
        "\"_dd.p.dm\": \"-0\"".into(),
        format!("\"_dd.p.tid\": \"{tid}\""),
        "\"_sampling_priority_v1\": 1.0".into(),
        "\"_dd.agent_psr\": 1.0".into(),
    ] {
        assert!(j.contains(&want), "{want} not in {j}");
    }
    assert!(eventually(Duration::from_secs(10), || {
        stat(s.admin, "tracing.datadog.reports_sent") >= 1
    }));
    assert_eq!(stat(s.admin, "tracing.datadog.reports_failed"), 0);
    // The agent's answer now decides: rate 0 for `front` drops the next trace, and says so
    // upstream (the trace still goes to the agent, with its priority).
    assert_eq!(fetch(s.inbound, "h", "/nodeco", "").status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("0"));
    let tags = header(&seen, "x-datadog-tags");
    assert!(
        tags.contains("_dd.p.ksr=0") && !tags.contains("_dd.p.dm"),
        "{tags}"
    );
    assert!(header(&seen, "traceparent").ends_with("-00"));
    let j = s.agent.span(&header(&seen, "x-datadog-parent-id"));
    assert!(j.contains("\"_sampling_priority_v1\": 0.0"), "{j}");
    assert!(j.contains("\"_dd.agent_psr\": 0.0"), "{j}");
    assert!(
        j.contains("\"resource\": \"ingress\"") && j.contains("\"zone\": \"\""),
        "Envoy's operation names an undecorated ingress span; the zone is empty: {j}"
    );
    drop(s.b);
}

#[test]
fn a_client_context_is_continued_and_envoys_drop_is_a_user_drop() {
    let s = setup("{}");
    // Datadog headers: a child span; the client's priority and origin carry on.
    let ctx = "x-datadog-trace-id: 1234\r\nx-datadog-parent-id: 5678\r\n\
               x-datadog-sampling-priority: 2\r\nx-datadog-origin: synthetics\r\n";
    assert_eq!(fetch(s.inbound, "h", "/b", ctx).status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-datadog-trace-id"), Some("1234"));
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("2"));
    assert_eq!(seen.header("x-datadog-origin"), Some("synthetics"));
    let span = header(&seen, "x-datadog-parent-id");
    assert_ne!(span, "5678");
    let j = s.agent.span(&span);
    assert!(j.contains("\"trace_id\": 1234,"), "{j}");
    assert!(j.contains("\"parent_id\": 5678,"), "{j}");
    assert!(j.contains("\"_dd.origin\": \"synthetics\""), "{j}");
    assert!(j.contains("\"_sampling_priority_v1\": 2.0"), "{j}");
    // W3C headers alone: the 128-bit trace goes on, other vendors' state after ours.
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let ctx = format!("traceparent: {tp}\r\ntracestate: rojo=00f067aa0ba902b7\r\n");
    assert_eq!(fetch(s.inbound, "h", "/c", &ctx).status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(
        seen.header("x-datadog-trace-id"),
        Some(0x8448_eb21_1c80_319c_u64.to_string().as_str())
    );
    let span: u64 = header(&seen, "x-datadog-parent-id").parse().expect("id");
    assert_eq!(
        header(&seen, "traceparent"),
        format!("00-0af7651916cd43dd8448eb211c80319c-{span:016x}-01")
    );
    assert_eq!(
        header(&seen, "tracestate"),
        format!("dd=s:1;p:{span:016x},rojo=00f067aa0ba902b7")
    );
    assert!(header(&seen, "x-datadog-tags").contains("_dd.p.tid=0af7651916cd43dd"));
    let j = s.agent.span(&span.to_string());
    assert!(
        j.contains(&format!("\"parent_id\": {},", 0xb7ad_6b71_6920_3331_u64)),
        "{j}"
    );
    // A health check is not traced by Envoy: a user drop, reported all the same.
    assert_eq!(fetch(s.inbound, "h", "/d", "x-health: 1\r\n").status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("-1"));
    assert!(header(&seen, "traceparent").ends_with("-00"));
    assert!(header(&seen, "tracestate").starts_with("dd=s:-1;"));
    let j = s.agent.span(&header(&seen, "x-datadog-parent-id"));
    assert!(j.contains("\"_sampling_priority_v1\": -1.0"), "{j}");
    assert!(!j.contains("_dd.agent_psr"), "{j}");
    // A malformed context starts a new trace.
    let bad = "x-datadog-trace-id: nope\r\nx-datadog-parent-id: 1\r\n";
    assert_eq!(fetch(s.inbound, "h", "/e", bad).status(), 200);
    let seen = last_seen(&s.up);
    assert_ne!(seen.header("x-datadog-trace-id"), Some("nope"));
    assert_eq!(
        seen.header("x-datadog-trace-id"),
        seen.header("x-datadog-parent-id")
    );
    drop(s.b);
}

#[test]
fn a_dead_agent_is_counted_and_the_proxy_goes_on() {
    let s = setup("{}");
    let Setup {
        mut agent,
        b,
        inbound,
        admin,
        up,
    } = s;
    agent.stop();
    for i in 0..5 {
        assert_eq!(fetch(inbound, "h", &format!("/h{i}"), "").status(), 200);
    }
    assert!(eventually(Duration::from_secs(10), || {
        stat(admin, "tracing.datadog.reports_failed") >= 1
    }));
    assert_eq!(stat(admin, "tracing.datadog.reports_sent"), 0);
    assert_eq!(fetch(inbound, "h", "/i", "").status(), 200);
    drop((b, up));
}

#[test]
fn a_silent_agent_times_out_and_the_proxy_goes_on() {
    // An agent that takes connections (the kernel completes them) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let agent_port = silent.local_addr().expect("addr").port();
    let up = Upstream::start("up");
    let (inbound, admin) = (free_port(), free_port());
    let b = Baton::start(&yaml(inbound, admin, up.port(), agent_port));
    // Reports go out every 2 s; each has 2 s to be answered.
    for round in 0..3 {
        for i in 0..5 {
            let path = format!("/s{round}-{i}");
            assert_eq!(fetch(inbound, "h", &path, "").status(), 200);
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(eventually(Duration::from_secs(15), || {
        stat(admin, "tracing.datadog.reports_failed") >= 1
    }));
    assert_eq!(stat(admin, "tracing.datadog.reports_sent"), 0);
    assert_eq!(fetch(inbound, "h", "/after", "").status(), 200);
    drop((b, up, silent));
}
