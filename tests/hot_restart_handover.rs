//! Live connection handover at the byte level: a draining parent moves its idle keep-alive
//! client connections (fd + unread bytes) to its successor. Each test holds raw connections
//! across a v1 → v2 restart and checks what the next request on the same socket sees.

mod common;

use common::hot::*;
use common::*;
use std::thread;
use std::time::Duration;

#[test]
fn half_sent_request_moves_with_its_connection_and_is_answered_by_the_new_process() {
    let mut s = Upgrade::start("partial");
    let mut c = warmed_conn(s.port, "v1");
    // Half a request head, which v1 reads into its buffer and cannot answer yet.
    c.send(b"GET /headers HTTP/1.1\r\nHo");
    thread::sleep(Duration::from_millis(200));
    let v2 = s.restart_to_v2_and_retire_v1();
    assert_eq!(handed_connections(&s.v1), 1, "{}", s.v1.log());
    c.send(b"st: test\r\nX-Moved: yes\r\n\r\n");
    let r = c.expect_response(false);
    let body = r.body_str();
    assert_eq!(r.status(), 200, "{r:?}\n--- v2 ---\n{}", v2.log());
    // /headers echoes the request head the upstream got: the joined request reached v2's.
    assert!(
        body.contains("GET /headers HTTP/1.1")
            && body.to_ascii_lowercase().contains("x-moved: yes"),
        "{body}"
    );
    // v1's upstream saw only the warm-up request; v2's the moved one (and `serves` checks).
    assert_eq!(s.up1.requests(), 1, "v1's upstream got the moved request");
    assert!(
        s.up2.seen().iter().any(|r| r.target == "/headers"),
        "v2's upstream did not get the moved request"
    );
}

#[test]
fn request_in_flight_at_sigterm_finishes_then_its_connection_moves() {
    let mut s = Upgrade::start("inflight");
    let mut c = warmed_conn(s.port, "v1");
    let (v2, _) = s.takeover(&[]);
    c.send(&get("/delay/800"));
    assert!(
        s.up1.wait_seen(2, IO_TIMEOUT),
        "the slow request never reached v1's upstream"
    );
    s.v1.sigterm();
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.body_str().as_str()), (200, "delay 800\n"));
    assert!(
        !r.head.has_token("connection", "close"),
        "with a successor the drain keeps the connection: {:?}",
        r.head
    );
    expect_exit_code(&mut s.v1, 0, EXIT_WAIT);
    next_served_by(&mut c, "v2", Some(&v2));
}

#[test]
fn more_idle_connections_than_one_fd_batch_all_move() {
    const N: usize = 260; // more than one SCM_RIGHTS batch (253 fds), well inside 1024 fds
    let mut s = Upgrade::start("many");
    let mut conns: Vec<RawConn> = (0..N).map(|_| warmed_conn(s.port, "v1")).collect();
    let v2 = s.restart_to_v2_and_retire_v1();
    let handed = handed_connections(&s.v1);
    println!("v1 handed {handed} connections to v2");
    assert_eq!(handed, N as u64, "{}", s.v1.log());
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&get("/"));
        match c.response(false) {
            Ok(Some(r)) if r.body_str().contains("hello from v2 ") => {}
            other => panic!("connection {i}: {other:?}\n--- v2 ---\n{}", v2.log()),
        }
    }
}

#[test]
fn a_listener_the_new_config_drops_is_closed_and_a_new_one_is_bound_fresh() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let (port_a, port_b) = (free_port(), free_port());
    let dir = HotDir::new("listeners");
    let mut v1 = hot_start(&simple_yaml(port_a, up1.port()), &dir, &[]);
    let (v2, _) = hot_takeover(&simple_yaml(port_b, up2.port()), &dir, &[], &v1);
    assert!(
        v1.wait_log("listener listener_0 closed", IO_TIMEOUT),
        "{}",
        v1.log()
    );
    assert!(
        std::net::TcpStream::connect_timeout(&local(port_a), Duration::from_millis(500)).is_err(),
        "the dropped listener :{port_a} still accepts\n{}",
        v1.log()
    );
    assert!(get_body(port_b).contains("hello from v2 "), "{}", v2.log());
    v1.sigterm();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    assert!(get_body(port_b).contains("hello from v2 "));
}

#[test]
fn three_generations_alive_at_once_pass_a_connection_down_the_chain() {
    let ups = [
        Upstream::start("v1"),
        Upstream::start("v2"),
        Upstream::start("v3"),
    ];
    let port = free_port();
    let dir = HotDir::new("chain");
    let yaml = |i: usize| simple_yaml(port, ups[i].port());
    let mut v1 = hot_start(&yaml(0), &dir, &[]);
    let mut c = warmed_conn(port, "v1");
    let (mut v2, _) = hot_takeover(&yaml(1), &dir, &[], &v1);
    // v2 hands over too while v1 is still alive (HandedOver): three generations at once.
    let (v3, _) = hot_takeover(&yaml(2), &dir, &[], &v2);
    assert_eq!(serving_epoch(&v3), Some(2), "{}", v3.log());
    assert!(get_body(port).contains("hello from v3 "));
    v1.sigterm();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    // The connection moved to v2, which serves it with its config while handed over.
    next_served_by(&mut c, "v2", Some(&v2));
    v2.sigterm();
    expect_exit_code(&mut v2, 0, EXIT_WAIT);
    next_served_by(&mut c, "v3", Some(&v3));
}

#[test]
fn a_pipelined_request_read_by_the_old_process_is_answered_by_the_new_one() {
    let mut s = Upgrade::start("pipelined");
    let mut c = warmed_conn(s.port, "v1");
    let (v2, _) = s.takeover(&[]);
    // Two requests in one write: v1 answers the first (slow) one while the second waits in
    // its buffer, unread by anyone but v1.
    let mut both = get("/delay/600");
    both.extend_from_slice(&get("/headers"));
    c.send(&both);
    assert!(
        s.up1.wait_seen(2, IO_TIMEOUT),
        "the first request never reached v1's upstream"
    );
    s.v1.sigterm();
    let r1 = c.expect_response(false);
    assert_eq!((r1.status(), r1.body_str().as_str()), (200, "delay 600\n"));
    let r2 = c.expect_response(false);
    assert_eq!(r2.status(), 200, "{r2:?}\n--- v2 ---\n{}", v2.log());
    expect_exit_code(&mut s.v1, 0, EXIT_WAIT);
    assert_eq!(handed_connections(&s.v1), 1, "{}", s.v1.log());
    assert!(
        s.up2.seen().iter().any(|r| r.target == "/headers"),
        "the pipelined request did not reach v2's upstream (v1's saw {:?})",
        s.up1.seen().iter().map(|r| &r.target).collect::<Vec<_>>()
    );
}

#[test]
fn drain_time_bounds_a_hung_request_and_the_old_process_still_exits_0() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let port = free_port();
    let dir = HotDir::new("draintime");
    let mut v1 = hot_start(
        &simple_yaml(port, up1.port()),
        &dir,
        &["--drain-time-s", "1"],
    );
    let mut idle = warmed_conn(port, "v1");
    let mut hung = RawConn::connect(port);
    hung.send(&get("/hang"));
    assert!(
        up1.wait_seen(2, IO_TIMEOUT),
        "/hang never reached v1's upstream"
    );
    let (_v2, _) = hot_takeover(&simple_yaml(port, up2.port()), &dir, &[], &v1);
    v1.sigterm();
    v1.sigterm(); // a second SIGTERM while draining changes nothing
    let t = std::time::Instant::now();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    println!(
        "v1 exited {} ms after SIGTERM with a hung request (--drain-time-s 1)",
        t.elapsed().as_millis()
    );
    assert!(
        hung.closed_within(IO_TIMEOUT),
        "the hung request's connection outlived its process"
    );
    // The idle connection moved at once and lives on in v2.
    next_served_by(&mut idle, "v2", None);
}
