//! Load balancing with the real binary and real upstreams: endpoint weights (Envoy's EDF
//! schedule), `endpoint.hostname` (the Host of `auto_host_rewrite`, shown in `/clusters`),
//! `health_check_config.port_value` (checks go to that port), priorities that fail over as
//! the higher ones lose health, locality-weighted balancing within a priority, and RING_HASH /
//! MAGLEV keyed by a route's `hash_policy`, stable across processes and hot restarts.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::{admin_get, eventually, wait_live};
use common::yaml::listener_head;
use common::*;

/// One GET on a fresh connection; the name of the upstream that answered.
fn who(port: u16) -> String {
    who_with(port, "")
}

/// `who` with extra header lines (each ending in CRLF).
fn who_with(port: u16, headers: &str) -> String {
    let mut c = RawConn::connect(port);
    c.send(
        format!("GET / HTTP/1.1\r\nHost: client.test\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200, "{}", r.body_str());
    let body = r.body_str();
    body.strip_prefix("hello from ")
        .and_then(|b| b.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected body {body:?}"))
        .to_string()
}

/// `n` requests; how many each upstream name answered, in the order of `names`.
fn spread(port: u16, n: usize, names: &[&str]) -> Vec<usize> {
    let got: Vec<String> = (0..n).map(|_| who(port)).collect();
    names
        .iter()
        .map(|name| got.iter().filter(|g| g == name).count())
        .collect()
}

/// A listener on `port` routing everything to cluster `svc` (`route` lines added to the
/// route), the admin on `admin`, and `cluster` (the cluster's YAML, indented as a list item of
/// `clusters`).
fn yaml(port: u16, admin: u16, route: &str, cluster: &str) -> String {
    format!(
        r#"{head}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: svc{route}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{cluster}admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: {admin}}}
"#,
        head = listener_head("127.0.0.1", port),
    )
}

/// One `lb_endpoints` entry at 127.0.0.1:`port` with extra endpoint lines.
fn endpoint(port: u16, extra: &str, weight: u32) -> String {
    format!(
        r#"        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
{extra}          load_balancing_weight: {weight}
"#
    )
}

#[test]
fn endpoint_weights_spread_requests_and_hostname_is_the_rewritten_host() {
    let (a, b) = (Upstream::start("A"), Upstream::start("B"));
    let (port, admin) = (free_port(), free_port());
    let cluster = format!(
        r#"  - name: svc
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: svc
      endpoints:
      - lb_endpoints:
{}{}"#,
        endpoint(a.port(), "            hostname: alpha.internal\n", 3),
        endpoint(b.port(), "", 1),
    );
    let _p = Baton::start(&yaml(port, admin, ", auto_host_rewrite: true", &cluster));
    wait_live(admin);
    // Envoy's weighted round robin: 3 of every 4 requests to A, spread by the schedule.
    assert_eq!(spread(port, 16, &["A", "B"]), vec![12, 4]);
    // auto_host_rewrite sends the endpoint's hostname; a STATIC host without one keeps the
    // client's Host, as Envoy does.
    let host = |u: &Upstream| {
        u.seen()
            .last()
            .and_then(|s| s.header("host").map(str::to_string))
    };
    assert_eq!(host(&a).as_deref(), Some("alpha.internal"));
    assert_eq!(host(&b).as_deref(), Some("client.test"));
    let cl = admin_get(admin, "/clusters");
    let line = |u: &Upstream, k: &str, v: &str| format!("svc::127.0.0.1:{}::{k}::{v}\n", u.port());
    for want in [
        line(&a, "hostname", "alpha.internal"),
        line(&a, "weight", "3"),
        line(&b, "hostname", ""),
        line(&b, "weight", "1"),
        line(&b, "priority", "0"),
    ] {
        assert!(cl.contains(&want), "{want} not in {cl}");
    }
}

/// A STATIC cluster checked every 0.2 s (one failure makes a host unhealthy), with
/// locality-weighted balancing over `localities` (its `endpoints` entries).
fn checked_cluster(localities: &str) -> String {
    format!(
        r#"  - name: svc
    type: STATIC
    lb_policy: ROUND_ROBIN
    common_lb_config:
      locality_weighted_lb_config: {{}}
    health_checks:
    - timeout: 1s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {{path: "/"}}
    load_assignment:
      cluster_name: svc
      endpoints:
{localities}"#
    )
}

/// One `endpoints` entry: a locality in `zone` of `weight` at `priority` over these hosts.
fn locality(zone: &str, weight: u32, priority: u32, hosts: &[String]) -> String {
    format!(
        "      - locality: {{region: r1, zone: {zone}}}\n        load_balancing_weight: {weight}\n        priority: {priority}\n        lb_endpoints:\n{}",
        hosts.concat()
    )
}

/// Waits (bounded) until `/clusters` shows the host at `port` with these health flags.
fn wait_flags(admin: u16, port: u16, flags: &str) {
    let want = format!("svc::127.0.0.1:{port}::health_flags::{flags}\n");
    assert!(
        eventually(Duration::from_secs(20), || admin_get(admin, "/clusters")
            .contains(&want)),
        "never {want}"
    );
}

#[test]
fn priorities_fail_over_and_localities_share_by_weight() {
    let names = ["A", "B", "C", "D"];
    let mut ups: Vec<Upstream> = names.iter().map(|n| Upstream::start(n)).collect();
    // A is checked on a port of its own (health_check_config.port_value).
    let a_check = Upstream::start("A-check");
    let ep = |i: usize, extra: &str| endpoint(ups[i].port(), extra, 1);
    let a_hc = format!(
        "            health_check_config: {{port_value: {}, hostname: a.check.internal}}\n",
        a_check.port()
    );
    let localities = [
        locality("z0", 1, 0, &[ep(0, &a_hc)]),
        locality("z1", 3, 1, &[ep(1, "")]),
        locality("z2", 1, 1, &[ep(2, "")]),
        locality("z3", 1, 2, &[ep(3, "")]),
    ]
    .concat();
    let (port, admin) = (free_port(), free_port());
    let _p = Baton::start(&yaml(port, admin, "", &checked_cluster(&localities)));
    wait_live(admin);
    // Priority 0 is healthy: it takes everything.
    assert_eq!(spread(port, 12, &names), vec![12, 0, 0, 0]);
    let cl = admin_get(admin, "/clusters");
    let p = |u: &Upstream| format!("svc::127.0.0.1:{}::", u.port());
    for want in [
        format!("{}zone::z1\n", p(&ups[1])),
        format!("{}region::r1\n", p(&ups[1])),
        format!("{}sub_zone::\n", p(&ups[1])),
        format!("{}priority::1\n", p(&ups[2])),
        format!("{}priority::2\n", p(&ups[3])),
    ] {
        assert!(cl.contains(&want), "{want} not in {cl}");
    }

    // A's checks went to its check port, with its health check hostname as the Host; the
    // others' with the cluster's name (the check sets no host).
    let host_of = |u: &Upstream| {
        u.seen()
            .first()
            .and_then(|s| s.header("host").map(str::to_string))
    };
    assert_eq!(host_of(&a_check).as_deref(), Some("a.check.internal"));
    assert!(ups[0]
        .seen()
        .iter()
        .all(|s| s.header("host") == Some("client.test")));
    assert_eq!(host_of(&ups[1]).as_deref(), Some("svc"));

    // A's check port goes away (A itself still serves): A fails its check and priority 1
    // takes the load, its localities sharing it 3:1 by weight.
    drop(a_check);
    wait_flags(admin, ups[0].port(), "/failed_active_hc");
    let got = spread(port, 40, &names);
    assert_eq!(got[0] + got[3], 0, "{got:?}");
    assert!((28..=32).contains(&got[1]), "{got:?}");

    // Priority 1 down too: priority 2 takes everything.
    let (b, c) = (ups.remove(1), ups.remove(1));
    let (b_port, c_port) = (b.port(), c.port());
    drop((b, c));
    wait_flags(admin, b_port, "/failed_active_hc");
    wait_flags(admin, c_port, "/failed_active_hc");
    assert_eq!(spread(port, 8, &["A", "D"]), vec![0, 8]);
}

/// A STATIC cluster `svc` of `policy` over these upstreams.
fn hashed_cluster(policy: &str, ups: &[Upstream]) -> String {
    let eps: String = ups.iter().map(|u| endpoint(u.port(), "", 1)).collect();
    format!(
        "  - name: svc\n    type: STATIC\n    lb_policy: {policy}\n    load_assignment:\n      cluster_name: svc\n      endpoints:\n      - lb_endpoints:\n{eps}"
    )
}

#[test]
fn ring_hash_and_maglev_send_a_key_to_one_host_in_every_process() {
    let ups: Vec<Upstream> = ["A", "B", "C"].iter().map(|n| Upstream::start(n)).collect();
    let route =
        ", hash_policy: [{header: {header_name: x-user}, terminal: true}, {cookie: {name: sid}}]";
    for policy in ["RING_HASH", "MAGLEV"] {
        // Each key's host, twice per key, in a new process each time.
        let run = || {
            let (port, admin) = (free_port(), free_port());
            let _p = Baton::start(&yaml(port, admin, route, &hashed_cluster(policy, &ups)));
            wait_live(admin);
            let mut seen = Vec::new();
            for k in 0..12 {
                let by_header = who_with(port, &format!("X-User: user-{k}\r\n"));
                assert_eq!(by_header, who_with(port, &format!("x-user: user-{k}\r\n")));
                // The header is terminal: a cookie beside it changes nothing.
                let with_cookie = format!("X-User: user-{k}\r\nCookie: sid=zz\r\n");
                assert_eq!(by_header, who_with(port, &with_cookie), "{policy}");
                let by_cookie = who_with(port, &format!("Cookie: a=b; sid=s-{k}\r\n"));
                assert_eq!(by_cookie, who_with(port, &format!("Cookie: sid=s-{k}\r\n")));
                seen.push((by_header, by_cookie));
            }
            seen
        };
        let first = run();
        let hosts: std::collections::BTreeSet<&String> = first.iter().map(|p| &p.0).collect();
        assert!(hosts.len() >= 2, "{policy}: 12 keys all on {hosts:?}");
        assert_eq!(
            first,
            run(),
            "{policy}: another process maps the keys the same way"
        );
    }
    // The client's address as the key: every request from 127.0.0.1 to one host; without
    // a key, a random host each time.
    let (port, admin) = (free_port(), free_port());
    let by_ip = ", hash_policy: [{connection_properties: {source_ip: true}}]";
    let _p = Baton::start(&yaml(
        port,
        admin,
        by_ip,
        &hashed_cluster("RING_HASH", &ups),
    ));
    wait_live(admin);
    let got = spread(port, 12, &["A", "B", "C"]);
    assert!(got.contains(&12), "{got:?}");
    let (port2, admin2) = (free_port(), free_port());
    let _q = Baton::start(&yaml(port2, admin2, "", &hashed_cluster("MAGLEV", &ups)));
    wait_live(admin2);
    let got = spread(port2, 30, &["A", "B", "C"]);
    assert!(!got.contains(&30), "{got:?}");
}

/// A hot restart with the same config: the successor maps every key to the host its
/// predecessor did (the ring depends on the hosts only, not on the process).
#[test]
fn a_hot_restart_successor_keeps_each_key_on_its_host() {
    use common::hot::{expect_exit_code, hot_start, hot_takeover, HotDir};
    let ups: Vec<Upstream> = ["A", "B", "C", "D"]
        .iter()
        .map(|n| Upstream::start(n))
        .collect();
    let (port, admin) = (free_port(), free_port());
    let route = ", hash_policy: [{query_parameter: {name: user}}]";
    let config = yaml(port, admin, route, &hashed_cluster("RING_HASH", &ups));
    let keys = || -> Vec<String> {
        (0..16)
            .map(|k| {
                let mut c = RawConn::connect(port);
                let req =
                    format!("GET /?user=u{k} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                c.send(req.as_bytes());
                c.expect_response(false).body_str()
            })
            .collect()
    };
    let dir = HotDir::new("lb_ring");
    let mut v1 = hot_start(&config, &dir, &[]);
    let before = keys();
    let names: std::collections::BTreeSet<&str> =
        before.iter().filter_map(|b| b.get(..12)).collect();
    assert!(names.len() >= 2, "{names:?}");
    let (_v2, _) = hot_takeover(&config, &dir, &[], &v1);
    // The parent gone, only the successor answers.
    v1.sigterm();
    expect_exit_code(&mut v1, 0, Duration::from_secs(30));
    assert_eq!(keys(), before);
}

/// `connection_properties.source_ip` hashes the downstream remote address (after the
/// x-forwarded-for rules), as Envoy does: clients behind one proxy spread over the hosts.
#[test]
fn source_ip_hashing_uses_the_client_address_not_the_peer() {
    let ups: Vec<Upstream> = ["A", "B", "C"].iter().map(|n| Upstream::start(n)).collect();
    let (port, admin) = (free_port(), free_port());
    let by_ip = ", hash_policy: [{connection_properties: {source_ip: true}}]";
    let _p = Baton::start(&yaml(
        port,
        admin,
        by_ip,
        &hashed_cluster("RING_HASH", &ups),
    ));
    wait_live(admin);
    let host_of = |k: u32| who_with(port, &format!("X-Forwarded-For: 10.0.{k}.{k}\r\n"));
    let got: std::collections::BTreeSet<String> = (0..24).map(host_of).collect();
    assert!(got.len() >= 2, "every client hashed to {got:?}");
    for k in 0..4 {
        assert_eq!(host_of(k), host_of(k), "one client, one host");
    }
}
