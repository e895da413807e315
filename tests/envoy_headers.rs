//! Headers Envoy's router adds that users rely on: `x-envoy-expected-rq-timeout-ms` on the
//! upstream request (the per-try timeout if set, else the route timeout; a client's own value
//! is replaced) and `x-envoy-upstream-service-time` on the response.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

#[test]
fn expected_timeout_and_service_time() {
    let up = Upstream::start("up");
    let routes = "  - match: {prefix: /retry}
    route: {cluster: svc, timeout: 5s, retry_policy: {retry_on: 5xx, per_try_timeout: 1.5s}}
  - match: {prefix: /none}
    route: {cluster: svc, timeout: 0s}
  - match: {prefix: /}
    route: {cluster: svc, timeout: 7s}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("svc", &[up.port()])],
    ));
    let r = fetch(b.port, "h", "/a", "x-envoy-expected-rq-timeout-ms: 1\r\n");
    assert_eq!(r.status(), 200);
    let ms = r
        .header("x-envoy-upstream-service-time")
        .and_then(|v| v.parse::<u64>().ok());
    assert!(ms.is_some(), "no x-envoy-upstream-service-time");
    assert_eq!(fetch(b.port, "h", "/retry", "").status(), 200);
    assert_eq!(fetch(b.port, "h", "/none", "").status(), 200);
    let seen = up.seen();
    let expected: Vec<Option<&str>> = seen
        .iter()
        .map(|s| s.header("x-envoy-expected-rq-timeout-ms"))
        .collect();
    assert_eq!(expected, [Some("7000"), Some("1500"), None]);
    let copies = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-envoy-expected-rq-timeout-ms"))
        .count();
    assert_eq!(copies, 1, "the client's own value was forwarded too");
}
