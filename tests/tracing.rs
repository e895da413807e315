//! Zipkin tracing end to end (both listeners have a pass-through health check filter for
//! requests with `x-health`): a Python collector on 127.0.0.1 receives `POST /api/v2/spans`
//! (it checks the body is a JSON array and writes one sorted JSON span per line), a recording
//! upstream shows the headers baton injected, and the two are compared.

mod admin_util;
mod common;
mod routing_support;

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use admin_util::{eventually, stat};
use common::*;
use routing_support::fetch;

const COLLECTOR: &str = r#"
import http.server, json, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', '0')))
        ok = self.path == '/api/v2/spans' and self.headers.get('content-type') == 'application/json'
        ok = ok and self.headers.get('host') == 'zipkin'
        try:
            spans = json.loads(body)
            ok = ok and isinstance(spans, list)
        except Exception:
            ok = False
        with open(out, 'a') as f:
            if ok:
                for s in spans:
                    f.write(json.dumps(s, sort_keys=True) + '\n')
            else:
                f.write('BAD ' + self.path + ' ' + repr(body) + '\n')
        self.send_response(202 if ok else 400)
        self.send_header('content-length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_port, flush=True)
s.serve_forever()
"#;

/// The Python collector; killed (by its PID) when dropped.
struct Collector {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Collector {
    fn start() -> Collector {
        let (child, port, out) = common::python_recorder(COLLECTOR, "zipkin-spans", &[]);
        Collector { child, port, out }
    }

    fn spans(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The span of trace `trace` with id `id`, waiting (bounded) for it to be reported.
    fn span(&self, trace: &str, id: &str) -> String {
        let want = (
            format!("\"traceId\": \"{trace}\""),
            format!("\"id\": \"{id}\""),
        );
        let mut found = None;
        eventually(Duration::from_secs(20), || {
            found = self
                .spans()
                .into_iter()
                .find(|s| s.contains(&want.0) && s.contains(&want.1));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no span {trace}/{id} in {:?}", self.spans()))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two listeners tracing to the collector: `inbound` (ingress, decorator `inOp`) and
/// `outbound` (egress, decorator `outOp`; `/nodeco` has none).
fn yaml(ports: [u16; 5], zipkin: &str, access_log: &str) -> String {
    let [inbound, outbound, admin, up, collector] = ports;
    let listener = |name: &str, port: u16, dir: &str, op: &str| {
        format!(
            r#"  - name: {name}
    address:
      socket_address:
        address: 127.0.0.1
        port_value: {port}
    traffic_direction: {dir}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{access_log}"
              log_format: {{text_format_source: {{inline_string: "{name} %REQ(X-B3-TRACEID)% %REQ(X-B3-SPANID)% %REQ(X-REQUEST-ID)%\n"}}}}
          - name: envoy.access_loggers.file
            filter: {{traceable_filter: {{}}}}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{access_log}.forced"
              log_format: {{text_format_source: {{inline_string: "{name} %REQ(X-REQUEST-ID)%\n"}}}}
          tracing:
            custom_tags:
            - tag: team
              literal: {{value: edge}}
            - tag: tenant
              request_header: {{name: x-tenant, default_value: none}}
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: "/api/v2/spans"
                collector_endpoint_version: HTTP_JSON
{zipkin}
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
              - match: {{prefix: /noprop}}
                route: {{cluster: svc}}
                decorator: {{operation: quiet, propagate: false}}
              - match: {{prefix: /}}
                route: {{cluster: svc}}
                decorator: {{operation: {op}}}
"#
        )
    };
    format!(
        r#"node: {{id: node-7, cluster: front-proxy}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
{l1}{l2}  clusters:
  - name: svc
    load_assignment:
      cluster_name: svc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up}}}}}}}
  - name: zipkin
    load_assignment:
      cluster_name: zipkin
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {collector}}}}}}}
"#,
        l1 = listener("inbound", inbound, "INBOUND", "inOp"),
        l2 = listener("outbound", outbound, "OUTBOUND", "outOp"),
    )
}

struct Setup {
    up: Upstream,
    col: Collector,
    b: Baton,
    access_log: PathBuf,
    inbound: u16,
    outbound: u16,
    admin: u16,
}

fn setup(zipkin: &str) -> Setup {
    let up = Upstream::start("up");
    let col = Collector::start();
    let (inbound, outbound, admin) = (free_port(), free_port(), free_port());
    let access_log = common::baton::log_path("trace-access");
    let ports = [inbound, outbound, admin, up.port(), col.port];
    let b = Baton::start(&yaml(
        ports,
        zipkin,
        access_log.to_str().expect("utf-8 path"),
    ));
    Setup {
        up,
        col,
        b,
        access_log,
        inbound,
        outbound,
        admin,
    }
}

/// The upstream's view of the last request.
fn last_seen(up: &Upstream) -> baton_bench::origin::SeenRequest {
    up.seen().pop().expect("the upstream saw a request")
}

#[test]
fn a_root_ingress_span_is_reported_and_its_context_sent_upstream() {
    let s = setup("");
    let r = fetch(
        s.inbound,
        "svc.local",
        "/a?q=1",
        "user-agent: t/1\r\nx-tenant: acme\r\n",
    );
    assert_eq!(r.status(), 200);
    // Ingress with a decorator: the operation comes back on the response.
    assert_eq!(r.header("x-envoy-decorator-operation"), Some("inOp"));
    let seen = last_seen(&s.up);
    let trace = seen
        .header("x-b3-traceid")
        .expect("x-b3-traceid")
        .to_string();
    let span = seen.header("x-b3-spanid").expect("x-b3-spanid").to_string();
    assert_eq!(trace.len(), 16);
    assert_eq!(span, trace, "a root span's id is its trace id");
    assert_eq!(seen.header("x-b3-sampled"), Some("1"));
    assert_eq!(seen.header("x-b3-parentspanid"), None);
    assert_eq!(seen.header("x-envoy-decorator-operation"), None);
    let rid = seen
        .header("x-request-id")
        .expect("x-request-id")
        .to_string();
    assert_eq!(
        rid.as_bytes()[14],
        b'9',
        "sampled: the trace reason in {rid}"
    );
    // Fewer than 5 spans: the 5 s flush timer sends it.
    let j = s.col.span(&trace, &span);
    for want in [
        "\"kind\": \"SERVER\"",
        "\"name\": \"inOp\"",
        "\"shared\": true",
        "\"serviceName\": \"front-proxy\"",
        "\"http.method\": \"GET\"",
        "\"http.status_code\": \"200\"",
        "\"http.protocol\": \"HTTP/1.1\"",
        "\"upstream_cluster\": \"svc\"",
        "\"component\": \"proxy\"",
        "\"node_id\": \"node-7\"",
        "\"response_flags\": \"-\"",
        "\"user_agent\": \"t/1\"",
        "\"peer.address\": \"127.0.0.1\"",
        "\"team\": \"edge\"",
        "\"tenant\": \"acme\"",
        "\"http.url\": \"http://svc.local/a?q=1\"",
    ] {
        assert!(j.contains(want), "{want} not in {j}");
    }
    assert!(
        j.contains(&format!("\"guid:x-request-id\": \"{rid}\"")),
        "{j}"
    );
    assert!(!j.contains("parentId"), "{j}");
    // The access log sees the request as the upstream did.
    let line = format!("inbound {trace} {span} {rid}");
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&s.access_log).is_ok_and(|l| l.contains(&line))
        }),
        "{line} not in {:?}",
        std::fs::read_to_string(&s.access_log)
    );
    assert!(!j.contains("\"error\""), "{j}");
    assert!(eventually(Duration::from_secs(10), || {
        stat(s.admin, "tracing.zipkin.reports_sent") >= 1
    }));
    assert!(stat(s.admin, "tracing.zipkin.spans_sent") >= 1);
    assert!(stat(s.admin, "tracing.zipkin.timer_flushed") >= 1);
    assert_eq!(stat(s.admin, "tracing.zipkin.reports_failed"), 0);
    drop(s.b);
}

#[test]
fn a_client_context_is_continued_and_the_decorator_names_the_span() {
    let s = setup("");
    let (t, c) = ("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312");
    // Egress: a child of the client's span; the decorator's operation goes upstream.
    let ctx = format!("x-b3-traceid: {t}\r\nx-b3-spanid: {c}\r\nx-b3-sampled: 1\r\n");
    let r = fetch(s.outbound, "h", "/b", &ctx);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-envoy-decorator-operation"), None, "egress");
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-b3-traceid"), Some(t));
    assert_eq!(seen.header("x-b3-parentspanid"), Some(c));
    let id = seen.header("x-b3-spanid").expect("span id").to_string();
    assert_ne!(id, c);
    let copies = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-b3-spanid"));
    assert_eq!(copies.count(), 1, "the client's replaced");
    assert_eq!(seen.header("x-envoy-decorator-operation"), Some("outOp"));
    let j = s.col.span(t, &id);
    for want in [
        "\"kind\": \"CLIENT\"",
        "\"name\": \"outOp\"",
        &format!("\"parentId\": \"{c}\""),
    ] {
        assert!(j.contains(want), "{want} not in {j}");
    }
    assert!(!j.contains("shared"), "{j}");
    // Ingress with shared_span_context (the default): the client's span id is shared.
    let (t2, c2, p2) = ("00000000000000aa", "00000000000000bb", "00000000000000cc");
    let ctx = format!("b3: {t2}-{c2}-1-{p2}\r\nx-envoy-decorator-operation: fromClient\r\n");
    assert_eq!(fetch(s.inbound, "h", "/c", &ctx).status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-b3-traceid"), Some(t2));
    assert_eq!(seen.header("x-b3-spanid"), Some(c2));
    assert_eq!(seen.header("x-b3-parentspanid"), Some(p2));
    assert_eq!(seen.header("x-envoy-decorator-operation"), None, "consumed");
    let j = s.col.span(t2, c2);
    assert!(j.contains("\"name\": \"fromClient\""), "{j}");
    assert!(j.contains(&format!("\"parentId\": \"{p2}\"")), "{j}");
    // No decorator: the span is named by the Host.
    assert_eq!(fetch(s.outbound, "named.host", "/nodeco", "").status(), 200);
    let seen = last_seen(&s.up);
    let (t3, id3) = (
        seen.header("x-b3-traceid").expect("trace").to_string(),
        seen.header("x-b3-spanid").expect("span").to_string(),
    );
    assert_eq!(seen.header("x-envoy-decorator-operation"), None);
    assert!(s.col.span(&t3, &id3).contains("\"name\": \"named.host\""));
    // propagate: false names the span but sends nothing on, either way.
    let r = fetch(s.inbound, "h", "/noprop", "");
    assert_eq!(r.header("x-envoy-decorator-operation"), None);
    assert_eq!(fetch(s.outbound, "h", "/noprop", "").status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-envoy-decorator-operation"), None);
    let (t4, id4) = (
        seen.header("x-b3-traceid").expect("trace").to_string(),
        seen.header("x-b3-spanid").expect("span").to_string(),
    );
    assert!(s.col.span(&t4, &id4).contains("\"name\": \"quiet\""));
    drop(s.b);
}

#[test]
fn unsampled_and_broken_contexts_are_not_reported() {
    let s =
        setup("                trace_id_128bit: true\n                shared_span_context: false");
    let ctx =
        "x-b3-traceid: 0000000000000011\r\nx-b3-spanid: 0000000000000022\r\nx-b3-sampled: 0\r\n";
    assert_eq!(fetch(s.inbound, "h", "/d", ctx).status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-b3-sampled"), Some("0"));
    // shared_span_context false: even ingress makes a child span.
    assert_eq!(seen.header("x-b3-parentspanid"), Some("0000000000000022"));
    // A malformed context: nothing injected, the client's header passes unchanged.
    let bad = "x-b3-traceid: nothex\r\nx-b3-spanid: 0000000000000022\r\n";
    assert_eq!(fetch(s.inbound, "h", "/e", bad).status(), 200);
    let seen = last_seen(&s.up);
    assert_eq!(seen.header("x-b3-traceid"), Some("nothex"));
    assert_eq!(seen.header("x-b3-sampled"), None);
    // A root span with trace_id_128bit: 32 hex digits; it is reported.
    assert_eq!(fetch(s.inbound, "h", "/f", "").status(), 200);
    let seen = last_seen(&s.up);
    let t = seen.header("x-b3-traceid").expect("trace").to_string();
    assert_eq!(t.len(), 32);
    let id = seen.header("x-b3-spanid").expect("span").to_string();
    let j = s.col.span(&t, &id);
    assert!(!j.contains("shared"), "shared_span_context false: {j}");
    // Only the sampled span was reported.
    assert!(
        !s.col.spans().iter().any(|l| l.contains("0000000000000011")),
        "{:?}",
        s.col.spans()
    );
    assert!(!s.col.spans().iter().any(|l| l.starts_with("BAD")));
    drop(s.b);
}

#[test]
fn five_spans_are_sent_at_once_and_a_dead_collector_is_counted() {
    let s = setup("");
    for i in 0..5 {
        assert_eq!(fetch(s.inbound, "h", &format!("/g{i}"), "").status(), 200);
    }
    // The fifth span flushes the batch without waiting for the timer.
    assert!(eventually(Duration::from_secs(10), || s.col.spans().len() >= 5));
    assert!(stat(s.admin, "tracing.zipkin.spans_sent") >= 5);
    let Setup {
        mut col,
        b,
        inbound,
        admin,
        up,
        ..
    } = s;
    let _ = col.child.kill();
    let _ = col.child.wait();
    for i in 0..5 {
        assert_eq!(fetch(inbound, "h", &format!("/h{i}"), "").status(), 200);
    }
    assert!(eventually(Duration::from_secs(10), || {
        stat(admin, "tracing.zipkin.reports_failed") >= 1
    }));
    // The proxy goes on serving.
    assert_eq!(fetch(inbound, "h", "/i", "").status(), 200);
    drop((b, up));
}

#[test]
fn the_trace_reason_follows_envoys_rules_and_is_counted() {
    let s = setup("");
    let rid_of = |extra: &str| {
        assert_eq!(fetch(s.inbound, "h", "/r", extra).status(), 200);
        let seen = last_seen(&s.up);
        (
            seen.header("x-request-id").unwrap_or_default().to_string(),
            seen.header("x-b3-sampled").unwrap_or_default().to_string(),
        )
    };
    // Not a UUID (kept: not an edge request): no reason can be packed, not sampled.
    assert_eq!(
        rid_of("x-request-id: not-a-uuid\r\n"),
        ("not-a-uuid".to_string(), "0".to_string())
    );
    // x-client-trace-id: the client's reason.
    let (rid, sampled) = rid_of("x-client-trace-id: c-1\r\n");
    assert_eq!((rid.as_bytes()[14], sampled.as_str()), (b'b', "1"), "{rid}");
    // x-envoy-force-trace counts from an internal request only.
    let internal = "x-forwarded-for: 10.0.0.1\r\nx-envoy-force-trace: 1\r\n";
    let (rid, _) = rid_of(internal);
    assert_eq!(rid.as_bytes()[14], b'a', "{rid}");
    let (rid, _) = rid_of("x-envoy-force-trace: 1\r\n");
    assert_eq!(rid.as_bytes()[14], b'9', "external: only sampled, {rid}");
    assert_eq!(last_seen(&s.up).header("x-envoy-force-trace"), None);
    // A health check (here passed through to the upstream) is never sampled by the decision.
    let (rid, sampled) = rid_of("x-health: 1\r\n");
    assert_eq!(sampled, "0", "{rid}");
    let st = |n: &str| stat(s.admin, &format!("http.inbound.tracing.{n}"));
    // traceable_filter logs the one request an internal caller forced, and nothing else.
    // Log lines are written in the background: wait for all five requests' lines.
    let forced_log = format!("{}.forced", s.access_log.display());
    let lines = |p: &str| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    assert!(eventually(Duration::from_secs(10), || {
        lines(&s.access_log.display().to_string()) >= 5 && lines(&forced_log) >= 1
    }));
    let forced = std::fs::read_to_string(&forced_log).unwrap_or_default();
    let forced: Vec<&str> = forced.lines().collect();
    assert_eq!(forced.len(), 1, "{forced:?}");
    assert!(
        forced[0].starts_with("inbound ") && forced[0].as_bytes().get(8 + 14) == Some(&b'a'),
        "{forced:?}"
    );
    assert_eq!(st("not_traceable"), 1);
    assert_eq!(st("client_enabled"), 1);
    assert_eq!(st("service_forced"), 1);
    assert_eq!(st("random_sampling"), 1);
    assert_eq!(st("health_check"), 1);
    drop(s.b);
}
