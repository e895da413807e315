//! The admin interface after real traffic: every endpoint scraped, and the counts equal what
//! was sent, per status class and per failure kind.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::*;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn stats_count_every_request_by_class_and_failure() {
    let (b, _up, s) = start(Vec::new());
    let p = b.port;
    let mut sent = 0;
    let mut send = |path: &str, want: u16, n: usize| {
        for _ in 0..n {
            assert_eq!(request(p, "GET", path, "", ""), want, "GET {path}");
            sent += 1;
        }
    };
    send("/status/200", 200, 5);
    send("/status/204", 204, 2);
    send("/status/301", 301, 1);
    send("/status/404", 404, 3);
    send("/status/503", 503, 2);
    send("/nothing", 404, 2); // no route
    send("/dead", 503, 2); // connect refused
    send("/empty", 503, 1); // no healthy upstream
    send("/hang", 504, 1); // route timeout
    send("/dns/200", 200, 3); // LOGICAL_DNS localhost
    let a = s.admin;
    // Connections close asynchronously after the responses: wait until none is active.
    assert!(eventually(WAIT, || stat(
        a,
        "http.ingress_http.downstream_cx_active"
    ) == 0));
    let st = stats(a);
    let v = |n: &str| {
        st.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let h = |n: &str| v(&format!("http.ingress_http.{n}"));
    assert_eq!(h("downstream_rq_total"), sent);
    assert_eq!(h("downstream_rq_1xx"), 0);
    assert_eq!(h("downstream_rq_2xx"), 5 + 2 + 3);
    assert_eq!(h("downstream_rq_3xx"), 1);
    assert_eq!(h("downstream_rq_4xx"), 3 + 2);
    assert_eq!(h("downstream_rq_5xx"), 2 + 2 + 1 + 1);
    assert_eq!(h("downstream_rq_active"), 0);
    assert_eq!(h("no_route"), 2);
    assert_eq!(h("rq_direct_response"), 0);
    // Every request used its own connection, plus the harness's start-up probe.
    assert_eq!(h("downstream_cx_total"), sent + 1);
    assert_eq!(h("downstream_cx_http1_total"), sent + 1);
    let l = format!("listener.127.0.0.1_{}", b.port);
    assert_eq!(v(&format!("{l}.downstream_cx_total")), sent + 1);
    assert_eq!(v(&format!("{l}.downstream_cx_destroy")), sent + 1);
    assert_eq!(v(&format!("{l}.downstream_cx_active")), 0);

    let c = |cl: &str, n: &str| v(&format!("cluster.{cl}.{n}"));
    assert_eq!(c("svc", "upstream_rq_total"), 5 + 2 + 1 + 3 + 2 + 1);
    assert_eq!(c("svc", "upstream_rq_2xx"), 7);
    assert_eq!(c("svc", "upstream_rq_3xx"), 1);
    assert_eq!(c("svc", "upstream_rq_4xx"), 3);
    assert_eq!(
        c("svc", "upstream_rq_5xx"),
        2 + 1,
        "503s plus the timed-out 504"
    );
    assert_eq!(c("svc", "upstream_rq_timeout"), 1);
    assert_eq!(c("svc", "upstream_cx_connect_fail"), 0);
    assert_eq!(c("svc", "membership_total"), 1);
    assert_eq!(c("svc", "membership_healthy"), 1);
    assert_eq!(c("dead", "upstream_cx_connect_fail"), 2);
    assert_eq!(c("dead", "upstream_rq_total"), 2);
    assert_eq!(c("dead", "upstream_rq_5xx"), 2);
    assert_eq!(c("dead", "upstream_cx_active"), 0);
    assert_eq!(c("empty", "membership_total"), 0);
    assert_eq!(c("empty", "upstream_rq_total"), 0);
    assert_eq!(c("empty", "upstream_cx_none_healthy"), 1);
    assert_eq!(c("svc", "upstream_cx_none_healthy"), 0);
    assert_eq!(c("dnsc", "upstream_rq_2xx"), 3);
    assert_eq!(c("dnsc", "membership_total"), 1);
    assert_eq!(c("svc", "lb_healthy_panic"), 0);
    // Connections: opened = destroyed + active (some may sit idle in the pool).
    assert_eq!(
        c("svc", "upstream_cx_total"),
        c("svc", "upstream_cx_destroy") + c("svc", "upstream_cx_active")
    );
    assert!(c("svc", "upstream_cx_total") >= 1);
    assert_eq!(v("server.live"), 1);
    assert_eq!(v("server.hot_restart_epoch"), 0);
    assert_eq!(v("server.parent_connections"), 0);
    assert_eq!(v("server.total_connections"), 0);

    // DNS refreshes every 0.3 s: attempts and successes keep counting, failures stay 0.
    let first = c("dnsc", "update_success");
    assert!(first >= 1);
    assert!(eventually(WAIT, || stat(a, "cluster.dnsc.update_success") >= first + 2));
    assert!(stat(a, "cluster.dnsc.update_attempt") >= first + 2);
    assert_eq!(stat(a, "cluster.dnsc.update_failure"), 0);

    // /stats?filter and ?format=json agree with the text.
    let f = admin_get(a, "/stats?filter=%5Ecluster%5C.dead%5C.");
    assert!(
        f.lines().count() >= 10 && f.lines().all(|l| l.starts_with("cluster.dead.")),
        "{f}"
    );
    let j = admin_get(a, "/stats?format=json&filter=no_route");
    assert_eq!(
        j,
        "{\"stats\":[{\"name\":\"http.ingress_http.no_route\",\"value\":2}]}\n"
    );
    assert_eq!(admin(a, "GET", "/stats?filter=(").0, 400);

    // /clusters: per-host counters.
    let cl = admin_get(a, "/clusters");
    let dead = format!("dead::127.0.0.1:{}::", s.dead);
    assert!(cl.contains(&format!("{dead}cx_connect_fail::2\n")), "{cl}");
    assert!(cl.contains(&format!("{dead}rq_error::2\n")), "{cl}");
    let svc = format!("svc::127.0.0.1:{}::", s.upstream);
    assert!(cl.contains(&format!("{svc}rq_total::14\n")), "{cl}");
    assert!(cl.contains(&format!("{svc}rq_timeout::1\n")), "{cl}");
    assert!(cl.contains(&format!("{svc}rq_success::11\n")), "{cl}");
    assert!(
        cl.contains(&format!(
            "dnsc::127.0.0.1:{}::hostname::localhost\n",
            s.upstream
        )),
        "{cl}"
    );
    assert!(!cl.contains("empty::127"), "{cl}");
}

#[test]
fn info_endpoints_and_errors() {
    let (b, _up, s) = start(Vec::new());
    let a = s.admin;
    let info = admin_get(a, "/server_info");
    for want in [
        "\"state\":\"LIVE\"",
        "\"restart_epoch\":0",
        "\"hot_restart_version\":\"baton.1\"",
        "\"uptime_current_epoch\":\"",
        "\"uptime_all_epochs\":\"",
        "\"version\":\"baton/",
        "\"command_line_options\":{",
        "\"argv\":[",
    ] {
        assert!(info.contains(want), "{want} not in {info}");
    }
    assert_eq!(admin_get(a, "/hot_restart_version"), "baton.1\n");
    assert_eq!(
        admin_get(a, "/listeners"),
        format!("listener_0::127.0.0.1:{}\n", b.port)
    );
    let lj = admin_get(a, "/listeners?format=json");
    assert!(lj.contains(&format!("\"port_value\":{}", b.port)), "{lj}");
    let dump = admin_get(a, "/config_dump");
    for want in [
        "envoy.admin.v3.BootstrapConfigDump",
        "\"stat_prefix\": \"ingress_http\"",
        "\"type\": \"LOGICAL_DNS\"",
        "\"timeout\": \"0.5s\"",
        "\"prefix_rewrite\": \"/status/\"",
        "\"name\": \"svc\"",
    ] {
        assert!(dump.contains(want), "{want} not in {dump}");
    }
    // A GET on a POST-only endpoint: 405, nothing happens.
    for p in [
        "/healthcheck/fail",
        "/healthcheck/ok",
        "/drain_listeners",
        "/quitquitquit",
    ] {
        assert_eq!(admin(a, "GET", p).0, 405, "{p}");
    }
    let (st, body) = admin(a, "GET", "/nope");
    assert_eq!(st, 404);
    assert!(
        body.contains("admin commands are") && body.contains("/stats/prometheus"),
        "{body}"
    );

    // /ready follows the health-check override.
    assert_eq!(admin(a, "GET", "/ready"), (200, "LIVE\n".to_string()));
    assert_eq!(admin(a, "POST", "/healthcheck/fail").0, 200);
    assert_eq!(admin(a, "GET", "/ready"), (503, "DRAINING\n".to_string()));
    assert_eq!(stat(a, "server.live"), 0);
    // Traffic is still served while health checks fail.
    assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
    assert_eq!(admin(a, "POST", "/healthcheck/ok").0, 200);
    assert_eq!(admin(a, "GET", "/ready"), (200, "LIVE\n".to_string()));
}

#[test]
fn drain_listeners_then_quitquitquit() {
    let (mut b, _up, s) = start(Vec::new());
    let a = s.admin;
    assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
    assert_eq!(
        admin(a, "POST", "/drain_listeners"),
        (200, "OK\n".to_string())
    );
    // The listener is closed: connects are refused; the admin still answers.
    assert!(eventually(WAIT, || std::net::TcpStream::connect(local(
        b.port
    ))
    .is_err()));
    assert_eq!(admin(a, "GET", "/ready"), (503, "DRAINING\n".to_string()));
    assert_eq!(admin_get(a, "/listeners"), "listener_0::closed\n");
    assert_eq!(admin(a, "POST", "/quitquitquit"), (200, "OK\n".to_string()));
    let st = b.wait_exit(WAIT).expect("baton exits after /quitquitquit");
    assert!(st.success(), "exit status {st}");
}
