//! A cluster's `outlier_detection` against the real binary: a host answering 503 is ejected
//! after `consecutive_5xx` of them, traffic moves to the other host, the stats and /clusters
//! say so, and the host comes back when its ejection time is up.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::{admin_get, eventually, stat, wait_live};
use common::counting::Origin;
use common::*;

/// Baton with one cluster `backend` over `ports` (round robin) and this `outlier_detection`
/// (flow YAML), and its admin port.
fn start(ports: &[u16], outlier: &str) -> (Baton, u16) {
    let admin = free_port();
    let y = proxy_yaml(
        free_port(),
        &[("backend", ports, "STATIC")],
        &Extra::default(),
    );
    let y = y.replacen(
        "    lb_policy: ROUND_ROBIN\n",
        &format!("    lb_policy: ROUND_ROBIN\n    outlier_detection: {outlier}\n"),
        1,
    );
    let yaml = format!(
        "{y}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    );
    let b = Baton::start(&yaml);
    wait_live(admin);
    (b, admin)
}

fn od(admin: u16, name: &str) -> i64 {
    stat(admin, &format!("cluster.backend.outlier_detection.{name}"))
}

fn get_status(c: &mut RawConn) -> u16 {
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.expect_response(false).status()
}

#[test]
fn a_host_answering_503_is_ejected_and_traffic_moves_to_the_other() {
    let bad = Origin::start(503);
    let good = Origin::start(200);
    let (b, admin) = start(
        &[bad.port, good.port],
        "{consecutive_5xx: 3, max_ejection_percent: 50, base_ejection_time: 300s}",
    );
    let mut c = RawConn::connect(b.addr().port());
    // Round robin: the bad host gets every other request until its third 503.
    let mut statuses = Vec::new();
    while bad.heads().len() < 3 && statuses.len() < 20 {
        statuses.push(get_status(&mut c));
    }
    assert_eq!(bad.heads().len(), 3, "{statuses:?}");
    assert_eq!(od(admin, "ejections_active"), 1);
    assert_eq!(od(admin, "ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(od(admin, "ejections_detected_consecutive_5xx"), 1);
    assert_eq!(od(admin, "ejections_enforced_total"), 1);
    assert_eq!(stat(admin, "cluster.backend.membership_healthy"), 1);
    let clusters = admin_get(admin, "/clusters");
    let flags = format!(
        "backend::127.0.0.1:{}::health_flags::/failed_outlier_check",
        bad.port
    );
    assert!(clusters.contains(&flags), "{clusters}");
    // Every request now goes to the good host.
    for _ in 0..10 {
        assert_eq!(get_status(&mut c), 200);
    }
    assert_eq!(bad.heads().len(), 3);
}

#[test]
fn an_ejected_host_comes_back_when_its_time_is_up() {
    let bad = Origin::start(503);
    let good = Origin::start(200);
    let (b, admin) = start(
        &[bad.port, good.port],
        "{consecutive_5xx: 2, max_ejection_percent: 50, base_ejection_time: 1s, interval: 0.2s}",
    );
    let mut c = RawConn::connect(b.addr().port());
    for _ in 0..4 {
        get_status(&mut c);
    }
    assert_eq!(od(admin, "ejections_enforced_total"), 1);
    assert!(
        eventually(Duration::from_secs(20), || od(admin, "ejections_active")
            == 0),
        "the host was never put back"
    );
    // Back in the rotation: it is asked again.
    let before = bad.heads().len();
    for _ in 0..4 {
        get_status(&mut c);
    }
    assert!(bad.heads().len() > before);
}

#[test]
fn the_default_ejection_limit_ejects_no_host_of_two() {
    // Envoy's max_ejection_percent of 10 % counts the host to eject: 1 of 2 is 50 %.
    let bad = Origin::start(503);
    let good = Origin::start(200);
    let (b, admin) = start(&[bad.port, good.port], "{consecutive_5xx: 2}");
    let mut c = RawConn::connect(b.addr().port());
    for _ in 0..8 {
        get_status(&mut c);
    }
    assert_eq!(od(admin, "ejections_active"), 0);
    // Each run of two 503s is detected anew (the count restarts at each detection).
    assert_eq!(od(admin, "ejections_overflow"), 2);
    assert_eq!(od(admin, "ejections_detected_consecutive_5xx"), 2);
    assert_eq!(bad.heads().len(), 4);
}

#[test]
fn failure_percentage_ejection_is_refused_naming_its_path() {
    let yaml = proxy_yaml(
        free_port(),
        &[("backend", &[1], "STATIC")],
        &Extra::default(),
    )
    .replacen(
        "    lb_policy: ROUND_ROBIN\n",
        "    lb_policy: ROUND_ROBIN\n    outlier_detection: {enforcing_failure_percentage: 100}\n",
        1,
    );
    let (st, _, err) = run_baton(
        &["--mode", "validate", "--config-yaml", &yaml],
        Duration::from_secs(20),
    );
    assert!(!st.success());
    assert!(
        err.contains("static_resources.clusters[0].outlier_detection.enforcing_failure_percentage: not supported by baton (failure-percentage ejection)"),
        "{err}"
    );
}
