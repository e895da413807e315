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

#[test]
fn a_rewritten_path_keeps_the_original_in_x_envoy_original_path() {
    let up = Upstream::start("up");
    let routes = "  - match: {prefix: /old/}
    route: {cluster: svc, prefix_rewrite: /new/}
  - match: {safe_regex: {regex: '/re/.*'}}
    route:
      cluster: svc
      regex_rewrite: {pattern: {regex: '^/re/'}, substitution: '/x/'}
  - match: {prefix: /}
    route: {cluster: svc}
";
    let b = Baton::start(&config(
        free_port(),
        &single_vhost(routes),
        &[cluster("svc", &[up.port()])],
    ));
    let spoof = "x-envoy-original-path: /spoofed\r\n";
    assert_eq!(fetch(b.port, "h", "/old/a?q=1", spoof).status(), 200);
    assert_eq!(fetch(b.port, "h", "/re/b", "").status(), 200);
    assert_eq!(fetch(b.port, "h", "/plain", "").status(), 200);
    let seen = up.seen();
    assert_eq!(seen[0].target, "/new/a?q=1");
    let originals: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-envoy-original-path"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(originals, ["/old/a?q=1"], "the client's value replaced");
    assert_eq!(seen[1].target, "/x/b");
    assert_eq!(seen[1].header("x-envoy-original-path"), Some("/re/b"));
    assert_eq!(seen[2].header("x-envoy-original-path"), None);
}
