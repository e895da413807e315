//! Route retry policies against the real binary: connect failures, retriable statuses and
//! per-try timeouts moved to a healthy endpoint; 5xx passed through once out of retries;
//! request bodies replayed while buffered and never retried once they outgrew the buffer.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

fn route(retry: &str) -> String {
    format!(
        "name: rc
virtual_hosts:
- name: vh
  domains: ['*']
  routes:
  - match: {{prefix: /}}
    route:
      cluster: svc
{retry}"
    )
}

const RETRY_CONNECT: &str = "      retry_policy: {retry_on: connect-failure, num_retries: 1}\n";

#[test]
fn connect_failure_on_one_endpoint_becomes_a_200_from_the_other() {
    let up = Upstream::start("live");
    let (dead, _hold) = refused_port();
    let b = Baton::start(&config(
        free_port(),
        &route(RETRY_CONNECT),
        &[cluster("svc", &[dead, up.port()])],
    ));
    // Round robin alternates, so half of these first go to the dead endpoint.
    for i in 0..10 {
        let r = fetch(b.port, "x", "/", "");
        assert_eq!(r.status(), 200, "request {i}: {}", r.body_str());
        assert_eq!(r.body_str(), up.greeting());
        assert_eq!(r.header("x-envoy-attempt-count"), None);
    }
    assert_eq!(up.requests(), 10);
}

#[test]
fn without_a_retry_policy_the_dead_endpoint_shows() {
    let up = Upstream::start("live");
    let (dead, _hold) = refused_port();
    let b = Baton::start(&config(
        free_port(),
        &route(""),
        &[cluster("svc", &[dead, up.port()])],
    ));
    let statuses: Vec<u16> = (0..4)
        .map(|_| fetch(b.port, "x", "/", "").status())
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[test]
fn retriable_status_moves_to_the_next_endpoint() {
    let up = Upstream::start("live");
    let bad = Fixed::start(503);
    let b = Baton::start(&config(
        free_port(),
        &route("      retry_policy: {retry_on: gateway-error, num_retries: 1}\n"),
        &[cluster("svc", &[bad.port, up.port()])],
    ));
    for _ in 0..6 {
        let r = fetch(b.port, "x", "/", "");
        assert_eq!(r.status(), 200, "{}", r.body_str());
    }
    assert!(
        bad.hits() >= 2,
        "the bad endpoint was tried: {}",
        bad.hits()
    );
}

#[test]
fn retriable_status_codes_and_exhausted_retries_pass_the_response_through() {
    let bad = Fixed::start(418);
    let b = Baton::start(&config(
        free_port(),
        &route(
            "      retry_policy:\n        retry_on: retriable-status-codes\n        num_retries: 2\n        retriable_status_codes: [418]\n",
        ),
        &[cluster("svc", &[bad.port])],
    ));
    let r = fetch(b.port, "x", "/", "");
    assert_eq!(r.status(), 418);
    assert_eq!(r.body_str(), "bad 418");
    assert_eq!(bad.hits(), 3, "one try and two retries");
}

#[test]
fn five_xx_is_not_retried_for_codes_outside_the_policy() {
    let bad = Fixed::start(500);
    let b = Baton::start(&config(
        free_port(),
        &route("      retry_policy: {retry_on: gateway-error, num_retries: 3}\n"),
        &[cluster("svc", &[bad.port])],
    ));
    let r = fetch(b.port, "x", "/", "");
    assert_eq!(r.status(), 500);
    assert_eq!(bad.hits(), 1);
}

/// A virtual host's `retry_policy` serves its routes that have none; a route with its own policy
/// keeps it whole (Envoy merges nothing between the two).
#[test]
fn a_virtual_hosts_retry_policy_serves_routes_without_their_own() {
    let bad = Fixed::start(503);
    let rc = "name: rc
virtual_hosts:
- name: vh
  domains: ['*']
  retry_policy: {retry_on: 5xx, num_retries: 2}
  routes:
  - match: {prefix: /own}
    route:
      cluster: svc
      retry_policy: {retry_on: connect-failure, num_retries: 1}
  - match: {prefix: /}
    route: {cluster: svc}
";
    let b = Baton::start(&config(free_port(), rc, &[cluster("svc", &[bad.port])]));
    let r = fetch(b.port, "x", "/inherits", "");
    assert_eq!(r.status(), 503);
    assert_eq!(bad.hits(), 3, "one try and the virtual host's two retries");
    let r = fetch(b.port, "x", "/own", "");
    assert_eq!(r.status(), 503);
    assert_eq!(bad.hits(), 4, "the route's own policy does not retry a 503");
}

#[test]
fn per_try_timeout_retries_on_another_endpoint() {
    let up = Upstream::start("live");
    let hole = BlackHole::start();
    let b = Baton::start(&config(
        free_port(),
        &route("      retry_policy: {retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s}\n"),
        &[cluster("svc", &[hole.port, up.port()])],
    ));
    for _ in 0..4 {
        let r = fetch(b.port, "x", "/", "");
        assert_eq!(r.status(), 200, "{}", r.body_str());
    }
}

#[test]
fn per_try_timeout_out_of_retries_is_504() {
    let hole = BlackHole::start();
    let b = Baton::start(&config(
        free_port(),
        &route("      retry_policy: {retry_on: reset, num_retries: 1, per_try_timeout: 0.2s}\n"),
        &[cluster("svc", &[hole.port])],
    ));
    let r = fetch(b.port, "x", "/", "");
    assert_eq!(r.status(), 504);
    assert_eq!(r.body_str(), "upstream request timeout");
}

fn post(port: u16, body: &[u8]) -> Response {
    let mut c = RawConn::connect(port);
    c.send(
        format!(
            "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(body);
    c.expect_response(false)
}

#[test]
fn a_buffered_body_is_replayed_on_retry() {
    let up = Upstream::start("live");
    let bad = Fixed::start(503);
    let b = Baton::start(&config(
        free_port(),
        &route("      retry_policy: {retry_on: 5xx, num_retries: 1}\n"),
        &[cluster("svc", &[bad.port, up.port()])],
    ));
    let body = vec![b'z'; 10_000];
    let mut h = pattern::Fnv::default();
    h.update(&body);
    let want = format!("len=10000 fnv={:016x}\n", h.finish());
    for _ in 0..4 {
        let r = post(b.port, &body);
        assert_eq!(r.status(), 200, "{}", r.body_str());
        assert_eq!(r.body_str(), want);
    }
}

#[test]
fn a_body_beyond_the_buffer_limit_is_never_retried() {
    // The body kept for a retry is bounded by the listener's per_connection_buffer_limit_bytes
    // (Envoy's per-request buffer limit defaults to it); the cluster's is left at 1 MiB.
    let up = Upstream::start("live");
    let bad = Fixed::start(503);
    let yaml = config(
        free_port(),
        &route("      retry_policy: {retry_on: 5xx, num_retries: 3}\n"),
        &[cluster_at(
            "svc",
            "127.0.0.1",
            "STATIC",
            &[bad.port, up.port()],
            "",
        )],
    )
    .replacen(
        "  - name: listener_0\n",
        "  - name: listener_0\n    per_connection_buffer_limit_bytes: 16384\n",
        1,
    );
    let b = Baton::start(&yaml);
    let body = vec![b'q'; 100 * 1024];
    let statuses: Vec<u16> = (0..2).map(|_| post(b.port, &body).status()).collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 503], "{statuses:?}");
    assert_eq!(up.requests(), 1);
    // A body within the limit is replayed: both requests end at the live endpoint.
    let small = vec![b'q'; 8 * 1024];
    for _ in 0..2 {
        assert_eq!(post(b.port, &small).status(), 200);
    }
    assert_eq!(up.requests(), 3);
}

/// A virtual host with `include_request_attempt_count` and `include_attempt_count_in_response`
/// and the given routes.
fn counted_vhost(routes: &str) -> String {
    format!(
        "name: rc
virtual_hosts:
- name: vh
  domains: ['*']
  include_request_attempt_count: true
  include_attempt_count_in_response: true
  routes:
{routes}"
    )
}

#[test]
fn the_attempt_count_goes_upstream_and_back_when_the_virtual_host_asks() {
    let up = Upstream::start("live");
    let (dead, _hold) = refused_port();
    let routes = "  - match: {prefix: /all-dead}\n    route:\n      cluster: dead\n      \
                  retry_policy: {retry_on: connect-failure, num_retries: 1}\n  \
                  - match: {prefix: /}\n    route:\n      cluster: svc\n      \
                  retry_policy: {retry_on: connect-failure, num_retries: 1}\n";
    let b = Baton::start(&config(
        free_port(),
        &counted_vhost(routes),
        &[cluster("svc", &[dead, up.port()]), cluster("dead", &[dead])],
    ));
    let mut counts = Vec::new();
    for _ in 0..4 {
        let r = fetch(b.port, "x", "/", "x-envoy-attempt-count: 7\r\n");
        assert_eq!(r.status(), 200, "{}", r.body_str());
        let c = r.header("x-envoy-attempt-count").unwrap_or("none");
        counts.push(c.to_string());
    }
    let seen: Vec<String> = up
        .seen()
        .iter()
        .map(|r| {
            r.header("x-envoy-attempt-count")
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    // Each answer carries the count its upstream request carried (the client's 7 replaced);
    // retries move the round robin on, so which requests meet the dead endpoint first varies.
    assert_eq!(counts, seen);
    assert!(counts.iter().all(|c| c == "1" || c == "2"), "{counts:?}");
    assert!(counts.iter().any(|c| c == "2"), "{counts:?}");
    assert!(up.seen().iter().all(|r| r
        .headers
        .iter()
        .filter(|h| h.0 == "x-envoy-attempt-count")
        .count()
        == 1));
    // The router's own answer after the last attempt says how many there were.
    let r = fetch(b.port, "x", "/all-dead", "");
    assert_eq!(r.status(), 503);
    assert_eq!(r.header("x-envoy-attempt-count"), Some("2"));
}

#[test]
fn a_route_buffer_limit_below_the_listener_s_bounds_what_is_replayed() {
    // On the route, or on its virtual host (which routes without their own inherit).
    let on_route =
        "  - match: {prefix: /}\n    per_request_buffer_limit_bytes: 4096\n    route:\n      \
                    cluster: svc\n      retry_policy: {retry_on: 5xx, num_retries: 3}\n";
    let on_vhost = "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  \
                    per_request_buffer_limit_bytes: 4096\n  routes:\n  - match: {prefix: /}\n    \
                    route:\n      cluster: svc\n      retry_policy: {retry_on: 5xx, num_retries: 3}\n";
    for rc in [single_vhost(on_route), on_vhost.to_string()] {
        let up = Upstream::start("live");
        let bad = Fixed::start(503);
        let b = Baton::start(&config(
            free_port(),
            &rc,
            &[cluster("svc", &[bad.port, up.port()])],
        ));
        assert_a_4_kib_replay_limit(b.port, &up, &rc);
    }
}

/// With a 4 KiB bound on the body kept for retries, in front of a round-robin pair of a
/// 503 endpoint and a live one: of two 8 KiB bodies the one sent to the 503 endpoint is not
/// retried, and 2 KiB bodies are replayed to the live one.
fn assert_a_4_kib_replay_limit(port: u16, up: &Upstream, what: &str) {
    let big = vec![b'q'; 8 * 1024];
    let statuses: Vec<u16> = (0..2).map(|_| post(port, &big).status()).collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [200, 503],
        "8 KiB is past 4 KiB: {statuses:?}\n{what}"
    );
    let small = vec![b'q'; 2 * 1024];
    for _ in 0..2 {
        assert_eq!(
            post(port, &small).status(),
            200,
            "2 KiB is replayed\n{what}"
        );
    }
    assert_eq!(up.requests(), 3, "{what}");
}

#[test]
fn a_listener_buffer_limit_below_one_read_chunk_bounds_what_is_replayed() {
    // The listener's limit is honoured below the 16 KiB read chunk too: an 8 KiB body past a
    // 4 KiB limit used to be kept and retried (the limit was raised to one chunk).
    let up = Upstream::start("live");
    let bad = Fixed::start(503);
    let yaml = config(
        free_port(),
        &route("      retry_policy: {retry_on: 5xx, num_retries: 3}\n"),
        &[cluster("svc", &[bad.port, up.port()])],
    )
    .replacen(
        "  - name: listener_0\n",
        "  - name: listener_0\n    per_connection_buffer_limit_bytes: 4096\n",
        1,
    );
    let b = Baton::start(&yaml);
    assert_a_4_kib_replay_limit(b.port, &up, "listener per_connection_buffer_limit_bytes");
}
