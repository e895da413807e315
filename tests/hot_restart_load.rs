//! Hot restart under load (issue 4, Must show 2): real baton processes, two real upstreams,
//! 32 keep-alive clients plus a stream of new connections, a v1 → v2 restart and the old
//! process SIGTERMed; then 20 restarts in a row. No request may fail, and with connection
//! handover the keep-alive clients never have to reconnect.

mod common;

use common::hot::*;
use common::*;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn restart_v1_to_v2_under_load_fails_no_request_and_moves_keepalive_connections() {
    let mut s = Upgrade::start("load");
    let port = s.port;
    assert_eq!(serving_epoch(&s.v1), Some(0), "{}", s.v1.log());

    let load = start_load(port, 32, 50.0);
    thread::sleep(Duration::from_secs(1));
    let before = load.snapshot();
    assert!(
        before.ok > 0 && before.by_upstream().keys().all(|n| n == "v1"),
        "before the restart only v1 serves: {}",
        describe(&before)
    );

    let (mut v2, takeover_ms) = s.takeover(&[]);
    assert_eq!(serving_epoch(&v2), Some(1), "{}", v2.log());
    let at_takeover = load.snapshot();
    thread::sleep(Duration::from_millis(1500));
    let handed_over = load.snapshot();
    // New connections now reach v2; the keep-alive ones are still served by v1 until it drains.
    let v2_while_both = served_between(&at_takeover, &handed_over, "v2");
    assert!(
        v2_while_both > 0,
        "no response from v2 after the takeover: {}",
        describe(&handed_over)
    );

    let t_term = Instant::now();
    s.retire_v1();
    let drain_ms = t_term.elapsed().as_millis();
    // A response v1 wrote before exiting may still be read a moment later.
    thread::sleep(Duration::from_millis(300));
    let after_exit = load.snapshot();
    thread::sleep(Duration::from_millis(1500));
    let total = load.stop();

    println!(
        "v1 -> v2 under load: takeover {takeover_ms} ms after spawn, v1 exited {drain_ms} ms after SIGTERM; \
         v2 served {v2_while_both} while v1 kept the keep-alive connections; total: {}",
        describe(&total)
    );
    let handed = handed_connections(&s.v1);
    println!(
        "handover (v2 connected to v1 -> v2 accepting, from v2's log): {:?} ms; v1 handed {handed} connection(s) to v2",
        handover_ms(&v2)
    );
    assert_eq!(
        total.failed_total(),
        0,
        "requests failed across the restart: {}\n--- v1 ---\n{}\n--- v2 ---\n{}",
        describe(&total),
        s.v1.log(),
        v2.log()
    );
    assert_eq!(
        served_between(&after_exit, &total, "v1"),
        0,
        "v1 answered after it exited: {}",
        describe(&total)
    );
    assert!(
        served_between(&after_exit, &total, "v2") > 0,
        "v2 does not serve after v1 exited: {}",
        describe(&total)
    );
    // Connection handover: each keep-alive worker opened exactly one connection.
    assert_eq!(
        total.keepalive_conns,
        32,
        "keep-alive clients had to reconnect: {}\n--- v1 ---\n{}",
        describe(&total),
        s.v1.log()
    );
    assert_eq!(
        handed,
        32,
        "v1 did not hand over every keep-alive connection\n{}",
        s.v1.log()
    );
    assert!(v2.try_exit().is_none(), "v2 exited\n{}", v2.log());
    assert!(get_body(port).contains("hello from v2"));
}

#[test]
fn twenty_restarts_in_a_row_under_load_every_old_one_exits_0() {
    const RESTARTS: u32 = 20;
    const KEEPALIVE: usize = 8;
    let ups = [Upstream::start("v1"), Upstream::start("v2")];
    let port = free_port();
    let dir = HotDir::new("twenty");
    let yaml = |i: u32| simple_yaml(port, ups[(i % 2) as usize].port());
    let mut old = hot_start(&yaml(0), &dir, &[]);
    let load = start_load(port, KEEPALIVE, 10.0);
    thread::sleep(Duration::from_millis(300));
    let mut takeovers = Vec::new();
    let mut handovers = Vec::new();
    let mut drains = Vec::new();
    for i in 1..=RESTARTS {
        let (new, ms) = hot_takeover(&yaml(i), &dir, &[], &old);
        takeovers.push(ms);
        handovers.push(handover_ms(&new).unwrap_or(u64::MAX));
        assert_eq!(
            serving_epoch(&new),
            Some(i),
            "generation {i} has the wrong epoch\n{}",
            new.log()
        );
        thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        old.sigterm();
        expect_exit_code(&mut old, 0, EXIT_WAIT);
        drains.push(t.elapsed().as_millis());
        let c = load.snapshot();
        assert_eq!(
            c.failed_total(),
            0,
            "failures after restart {i}: {}\n--- old ---\n{}\n--- new ---\n{}",
            describe(&c),
            old.log(),
            new.log()
        );
        old = new;
    }
    thread::sleep(Duration::from_millis(300));
    let total = load.stop();
    println!(
        "{RESTARTS} restarts: spawn-to-takeover ms {takeovers:?}, handover ms (from logs) {handovers:?}, SIGTERM-to-exit ms {drains:?}; {}",
        describe(&total)
    );
    assert_eq!(total.failed_total(), 0, "{}", describe(&total));
    assert!(total.ok > 0, "{}", describe(&total));
    assert_eq!(
        total.keepalive_conns,
        KEEPALIVE as u64,
        "keep-alive clients had to reconnect: {}",
        describe(&total)
    );
    // The last generation (even: v1's upstream) serves.
    assert!(get_body(port).contains("hello from v1"));
}
