//! Route matching against the real binary: prefix, path, safe_regex, case_sensitive, header
//! matchers (every rule kind, invert) and query parameters. Each route answers with a direct
//! response naming itself, so the body says which route matched.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

fn named(name: &str, matcher: &str) -> String {
    format!(
        "  - match: {matcher}\n    direct_response: {{status: 200, body: {{inline_string: {name}}}}}\n"
    )
}

fn start(routes: &[String]) -> Baton {
    let rc = format!(
        "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n{}{}",
        routes.concat(),
        named("fallback", "{prefix: /}")
    );
    Baton::start(&config(free_port(), &rc, &[cluster("svc", &[free_port()])]))
}

fn which(b: &Baton, path: &str, headers: &str) -> String {
    let r = fetch(b.port, "x", path, headers);
    assert_eq!(r.status(), 200);
    r.body_str()
}

#[test]
fn path_prefix_regex_and_case() {
    let b = start(&[
        named("exact", "{path: /exact}"),
        named("regex", "{safe_regex: {regex: '/v[0-9]+/items'}}"),
        named("nocase", "{prefix: /Docs, case_sensitive: false}"),
        named("prefix", "{prefix: /api}"),
    ]);
    assert_eq!(which(&b, "/exact?x=1", ""), "exact");
    assert_eq!(which(&b, "/exact/more", ""), "fallback");
    assert_eq!(which(&b, "/v12/items?q", ""), "regex");
    assert_eq!(
        which(&b, "/v12/items/1", ""),
        "fallback",
        "the regex must match the whole path"
    );
    assert_eq!(which(&b, "/dOCS/x", ""), "nocase");
    assert_eq!(which(&b, "/api/x", ""), "prefix");
    assert_eq!(which(&b, "/API/x", ""), "fallback");
}

#[test]
fn header_matchers() {
    let b = start(&[
        named("exact", "{prefix: /, headers: [{name: x-env, string_match: {exact: canary}}]}"),
        named("ci-prefix", "{prefix: /, headers: [{name: x-env, string_match: {prefix: STAGE, ignore_case: true}}]}"),
        named("suffix", "{prefix: /, headers: [{name: x-env, string_match: {suffix: -blue}}]}"),
        named("contains", "{prefix: /, headers: [{name: x-env, string_match: {contains: mid}}]}"),
        named("regex", "{prefix: /, headers: [{name: x-env, string_match: {safe_regex: {regex: 'r[0-9]+'}}}]}"),
        named("range", "{prefix: /, headers: [{name: x-n, range_match: {start: 10, end: 20}}]}"),
        named("method", "{prefix: /, headers: [{name: ':method', string_match: {exact: DELETE}}]}"),
        named("absent", "{prefix: /abs, headers: [{name: x-token, present_match: false}]}"),
        named("not-beta", "{prefix: /inv, headers: [{name: x-env, string_match: {exact: beta}, invert_match: true}]}"),
        named("present", "{prefix: /, headers: [{name: x-token}]}"),
    ]);
    assert_eq!(which(&b, "/", "X-Env: canary\r\n"), "exact");
    assert_eq!(which(&b, "/", "X-Env: stage-2\r\n"), "ci-prefix");
    assert_eq!(which(&b, "/", "X-Env: east-blue\r\n"), "suffix");
    assert_eq!(which(&b, "/", "X-Env: a-mid-b\r\n"), "contains");
    assert_eq!(which(&b, "/", "X-Env: r42\r\n"), "regex");
    assert_eq!(which(&b, "/", "X-Env: r42x\r\n"), "fallback");
    assert_eq!(which(&b, "/", "X-N: 15\r\n"), "range");
    assert_eq!(which(&b, "/", "X-N: 20\r\n"), "fallback");
    assert_eq!(which(&b, "/abs", ""), "absent");
    assert_eq!(which(&b, "/abs", "X-Token: t\r\n"), "present");
    assert_eq!(which(&b, "/inv", "X-Env: alpha\r\n"), "not-beta");
    assert_eq!(which(&b, "/inv", "X-Env: beta\r\n"), "fallback");
    // Envoy: an inverted value matcher does not match an absent header.
    assert_eq!(which(&b, "/inv", ""), "fallback");
    let r = send(
        b.port,
        "DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.body_str(), "method");
}

#[test]
fn query_parameters() {
    let b = start(&[
        named("both", "{prefix: /, query_parameters: [{name: debug, present_match: true}, {name: v, string_match: {exact: '2'}}]}"),
        named("debug", "{prefix: /, query_parameters: [{name: debug}]}"),
    ]);
    assert_eq!(which(&b, "/?debug&v=2", ""), "both");
    assert_eq!(which(&b, "/?v=2&debug=1", ""), "both");
    assert_eq!(which(&b, "/?debug=1&v=3", ""), "debug");
    assert_eq!(which(&b, "/?v=2", ""), "fallback");
    assert_eq!(which(&b, "/x?debugger=1", ""), "fallback");
}

/// Routes match the headers as the connection manager edited them (Envoy routes after
/// `mutateRequestHeaders`): an external client's `x-envoy-internal: true` is dropped first,
/// so it cannot reach a route meant for internal requests; an internal one (its one
/// `x-forwarded-for` address private) is marked internal and reaches it.
#[test]
fn routes_match_the_headers_the_connection_manager_edited() {
    let internal =
        "{prefix: /, headers: [{name: x-envoy-internal, string_match: {exact: 'true'}}]}";
    let b = start(&[named("internal-only", internal)]);
    let spoof = "x-forwarded-for: 8.8.8.8\r\nx-envoy-internal: true\r\n";
    assert_eq!(which(&b, "/", spoof), "fallback");
    assert_eq!(
        which(&b, "/", "x-forwarded-for: 10.0.0.1\r\n"),
        "internal-only"
    );
}
