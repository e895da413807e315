//! Epoch and stats continuity across hot restarts (issue 4, Must show 2): each generation's
//! epoch is its parent's + 1, and a counter scraped from the admin `/stats` never goes down
//! from one generation to the next.

mod common;

use common::hot::*;
use common::*;
use std::time::Duration;

const EXIT_WAIT: Duration = Duration::from_secs(30);
const COUNTER: &str = "http.ingress_http.downstream_rq_total";

/// `yaml` with an admin listener on 127.0.0.1:`admin_port` (each generation gets its own
/// port, so the test depends on stats handover only, not on how the admin socket moves).
fn with_admin(yaml: &str, admin_port: u16) -> String {
    format!(
        "{yaml}admin:\n  address:\n    socket_address:\n      address: 127.0.0.1\n      port_value: {admin_port}\n"
    )
}

/// `COUNTER` from `GET /stats` on the admin port (Envoy's `name: value` lines).
fn scrape(admin_port: u16) -> u64 {
    let mut c = RawConn::connect(admin_port);
    c.send(&get("/stats"));
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200, "/stats: {r:?}");
    r.body_str()
        .lines()
        .find_map(|l| l.strip_prefix(COUNTER).and_then(|v| v.strip_prefix(": ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{COUNTER} missing in /stats:\n{}", r.body_str()))
}

#[test]
fn each_generation_logs_epoch_parent_plus_one() {
    let up = Upstream::start("v1");
    let dir = HotDir::new("epoch");
    let yaml = simple_yaml(free_port(), up.port());
    let mut old = hot_start(&yaml, &dir, &[]);
    assert_eq!(serving_epoch(&old), Some(0), "{}", old.log());
    for epoch in 1..=3 {
        let (new, _) = hot_takeover(&yaml, &dir, &[], &old);
        assert_eq!(serving_epoch(&new), Some(epoch), "{}", new.log());
        let want = format!(
            "epoch {} (binary {}) accepted us as epoch {epoch}",
            epoch - 1,
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            new.log().contains(&want),
            "the child did not log {want:?}\n{}",
            new.log()
        );
        old.sigterm();
        expect_exit_code(&mut old, 0, EXIT_WAIT);
        old = new;
    }
}

#[test]
fn counters_never_go_down_across_restarts() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let ups = [&up1, &up2];
    let port = free_port();
    let dir = HotDir::new("stats");
    let gen_yaml = |i: usize, admin: u16| with_admin(&simple_yaml(port, ups[i % 2].port()), admin);
    let mut admin = free_port();
    let mut old = hot_start(&gen_yaml(0, admin), &dir, &[]);
    let mut seen = vec![scrape(admin)];
    let mut sent = 0u64;
    for i in 1..=3 {
        for _ in 0..5 {
            get_body(port);
        }
        sent += 5;
        seen.push(scrape(admin));
        let new_admin = free_port();
        let (new, _) = hot_takeover(&gen_yaml(i, new_admin), &dir, &[], &old);
        // Counters continue from the parent's totals...
        seen.push(scrape(new_admin));
        for _ in 0..5 {
            get_body(port);
        }
        sent += 5;
        seen.push(scrape(new_admin));
        // ...and keep the parent's increments after it exits.
        old.sigterm();
        expect_exit_code(&mut old, 0, EXIT_WAIT);
        seen.push(scrape(new_admin));
        old = new;
        admin = new_admin;
    }
    println!("{COUNTER} across 3 restarts: {seen:?} ({sent} requests sent)");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "{COUNTER} went down: {seen:?}"
    );
    let last = *seen.last().expect("scraped");
    assert!(last >= sent, "{COUNTER} = {last} < {sent} requests sent");
}

/// The seed's configs keep one admin address across versions; the new process must get it.
#[test]
fn the_admin_address_stays_served_across_a_restart() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let port = free_port();
    let admin = free_port();
    let dir = HotDir::new("adminport");
    let mut v1 = hot_start(
        &with_admin(&simple_yaml(port, up1.port()), admin),
        &dir,
        &[],
    );
    for _ in 0..3 {
        get_body(port);
    }
    let before = scrape(admin);
    let (v2, _) = hot_takeover(
        &with_admin(&simple_yaml(port, up2.port()), admin),
        &dir,
        &[],
        &v1,
    );
    v1.sigterm();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    let after = scrape(admin);
    assert!(
        after >= before && after >= 3,
        "{before} -> {after}\n{}",
        v2.log()
    );
}
