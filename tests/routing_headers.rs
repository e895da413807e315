//! Header edits at route_config, virtual host and route level against the real binary: Envoy's
//! precedence, removals, append actions, substitution variables, and a route_config response
//! header (`x-proxy-generation`) on every kind of response a matched route can produce.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

/// Three levels each setting `x-level` (overwrite), appending `x-all` and adding `x-first` if
/// absent; the vhost also removes `x-drop` from requests and `x-up-drop` from responses.
fn levels(msmw: bool) -> String {
    format!(
        "name: rc
most_specific_header_mutations_wins: {msmw}
request_headers_to_add:
- {{header: {{key: x-level, value: rc}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
- {{header: {{key: x-all, value: rc}}}}
- {{header: {{key: x-first, value: rc}}, append_action: ADD_IF_ABSENT}}
response_headers_to_add:
- {{header: {{key: x-level, value: rc}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
virtual_hosts:
- name: vh
  domains: ['*']
  request_headers_to_remove: [x-drop]
  request_headers_to_add:
  - {{header: {{key: x-level, value: vh}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
  - {{header: {{key: x-all, value: vh}}}}
  - {{header: {{key: x-first, value: vh}}, append_action: ADD_IF_ABSENT}}
  response_headers_to_add:
  - {{header: {{key: x-level, value: vh}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
  routes:
  - match: {{prefix: /}}
    route: {{cluster: svc}}
    request_headers_to_add:
    - {{header: {{key: x-level, value: route}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
    - {{header: {{key: x-all, value: route}}}}
    - {{header: {{key: x-first, value: route}}, append_action: ADD_IF_ABSENT}}
    - {{header: {{key: x-only-if, value: set}}, append_action: OVERWRITE_IF_EXISTS}}
    response_headers_to_add:
    - {{header: {{key: x-level, value: route}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
"
    )
}

fn all<'a>(r: &'a SeenRequest, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One request through the three-level config: the client's response and what the upstream saw.
fn through_levels(msmw: bool, headers: &str) -> (Response, SeenRequest) {
    let up = Upstream::start("up");
    let y = config(free_port(), &levels(msmw), &[cluster("svc", &[up.port()])]);
    let b = Baton::start(&y);
    let r = fetch(b.port, "x", "/", headers);
    assert_eq!(r.status(), 200);
    let seen = up
        .seen()
        .into_iter()
        .next()
        .expect("the upstream saw the request");
    (r, seen)
}

#[test]
fn route_config_wins_over_virtual_host_over_route_by_default() {
    let (r, s) = through_levels(false, "X-Drop: 1\r\nX-Level: client\r\n");
    assert_eq!(r.head.header_all("x-level"), ["rc"]);
    // Applied route → vhost → route_config: the most general overwrite lands last.
    assert_eq!(all(&s, "x-level"), ["rc"]);
    assert_eq!(all(&s, "x-all"), ["route", "vh", "rc"]);
    assert_eq!(all(&s, "x-first"), ["route"]);
    assert!(all(&s, "x-drop").is_empty());
    assert!(
        all(&s, "x-only-if").is_empty(),
        "OVERWRITE_IF_EXISTS never adds"
    );
}

#[test]
fn most_specific_header_mutations_wins_reverses_the_order() {
    let (r, s) = through_levels(true, "X-Only-If: client\r\n");
    assert_eq!(r.head.header_all("x-level"), ["route"]);
    assert_eq!(all(&s, "x-level"), ["route"]);
    assert_eq!(all(&s, "x-all"), ["rc", "vh", "route"]);
    assert_eq!(all(&s, "x-first"), ["rc"]);
    assert_eq!(all(&s, "x-only-if"), ["set"]);
}

#[test]
fn substitution_variables_are_expanded() {
    let up = Upstream::start("up");
    let rc = &single_vhost(
        "  - match: {prefix: /}
    route: {cluster: svc}
    request_headers_to_add:
    - header: {key: x-client, value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'}
    - header: {key: x-client-full, value: '%DOWNSTREAM_REMOTE_ADDRESS%'}
    - header: {key: x-proto, value: '%PROTOCOL%'}
    - header: {key: x-ua, value: 'ua=%REQ(user-agent)% 100%%'}
    - header: {key: x-up, value: '%UPSTREAM_HOST%'}
    - header: {key: x-epoch, value: '%START_TIME(%s)%'}
    - header: {key: x-host, value: '%HOSTNAME%'}
    - header: {key: x-missing, value: '%REQ(x-nope)%'}
    response_headers_to_add:
    - header: {key: x-served-by, value: '%UPSTREAM_HOST%'}
    - header: {key: x-start, value: '%START_TIME%'}
    - header: {key: x-req-ua, value: '%REQ(user-agent)%'}
",
    );
    let b = Baton::start(&config(free_port(), rc, &[cluster("svc", &[up.port()])]));
    let r = fetch(b.port, "x", "/", "User-Agent: probe/1\r\n");
    assert_eq!(r.status(), 200);
    let upstream = format!("127.0.0.1:{}", up.port());
    assert_eq!(r.header("x-served-by"), Some(upstream.as_str()));
    assert_eq!(r.header("x-req-ua"), Some("probe/1"));
    let start = r.header("x-start").expect("x-start");
    assert!(
        start.len() == 24 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );
    let seen = up.seen();
    let s = &seen[0];
    assert_eq!(s.header("x-client"), Some("127.0.0.1"));
    assert!(s
        .header("x-client-full")
        .is_some_and(|v| v.starts_with("127.0.0.1:")));
    assert_eq!(s.header("x-proto"), Some("HTTP/1.1"));
    assert_eq!(s.header("x-ua"), Some("ua=probe/1 100%"));
    assert_eq!(s.header("x-up"), Some(upstream.as_str()));
    assert!(s
        .header("x-epoch")
        .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 1_600_000_000)));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(s.header("x-host").unwrap_or(""), host.trim());
    assert_eq!(s.header("x-missing"), None, "empty values are not added");
}

#[test]
fn unknown_variables_are_rejected_at_load() {
    let rc = &single_vhost(
        "  - match: {prefix: /}
    route: {cluster: svc}
    response_headers_to_add:
    - header: {key: x-code, value: '%RESPONSE_CODE%'}
",
    );
    let y = config(free_port(), rc, &[cluster("svc", &[free_port()])]);
    let (st, out, err) = run_baton(&["--mode", "validate", "--config-yaml", &y], IO_TIMEOUT);
    assert!(!st.success(), "{out}{err}");
    assert!(
        err.contains("response_headers_to_add[0].header.value"),
        "{err}"
    );
    assert!(err.contains("RESPONSE_CODE"), "{err}");
}

/// Every response of a matched route carries the route_config's generation header.
#[test]
fn generation_header_is_on_every_response_of_a_matched_route() {
    let up = Upstream::start("up");
    let hole = BlackHole::start();
    let (dead, _hold) = refused_port();
    let rc = "name: rc
response_headers_to_add:
- header: {key: x-proxy-generation, value: gen-7}
virtual_hosts:
- name: vh
  domains: ['*']
  routes:
  - match: {prefix: /direct}
    direct_response: {status: 200, body: {inline_string: direct}}
  - match: {prefix: /redirect}
    redirect: {path_redirect: /elsewhere}
  - match: {prefix: /retried}
    route:
      cluster: flaky
      retry_policy: {retry_on: connect-failure, num_retries: 1}
  - match: {prefix: /dead}
    route: {cluster: dead}
  - match: {prefix: /slow}
    route: {cluster: hole, timeout: 0.3s}
  - match: {prefix: /}
    route: {cluster: svc}
";
    let b = Baton::start(&config(
        free_port(),
        rc,
        &[
            cluster("svc", &[up.port()]),
            cluster("flaky", &[dead, up.port()]),
            cluster("dead", &[dead]),
            cluster("hole", &[hole.port]),
        ],
    ));
    let cases = [
        ("/", 200),
        ("/direct", 200),
        ("/redirect", 301),
        ("/retried", 200),
        ("/retried", 200),
        ("/dead", 503),
        ("/slow", 504),
    ];
    for (path, status) in cases {
        let r = fetch(b.port, "x", path, "");
        assert_eq!(r.status(), status, "{path}: {}", r.body_str());
        assert_eq!(r.head.header_all("x-proxy-generation"), ["gen-7"], "{path}");
    }
    // No route matched: no route, no route edits (Envoy's behaviour).
    let rc404 = "name: rc
response_headers_to_add:
- header: {key: x-proxy-generation, value: gen-7}
virtual_hosts:
- name: vh
  domains: [only.example]
  routes:
  - match: {prefix: /}
    route: {cluster: svc}
";
    let b2 = Baton::start(&config(free_port(), rc404, &[cluster("svc", &[up.port()])]));
    let r = fetch(b2.port, "other", "/", "");
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("x-proxy-generation"), None);
}

#[test]
fn response_headers_to_remove_drops_upstream_headers() {
    let up = Upstream::start("up");
    let rc = "name: rc
virtual_hosts:
- name: vh
  domains: ['*']
  response_headers_to_remove: [etag]
  routes:
  - match: {prefix: /}
    route: {cluster: svc}
";
    let b = Baton::start(&config(free_port(), rc, &[cluster("svc", &[up.port()])]));
    let r = fetch(b.port, "x", "/304", "");
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("etag"), None);
}
