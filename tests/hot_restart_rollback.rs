//! Hot restart when the new process fails (issue 4, Must show 2): a bad config, a child killed
//! before and after its takeover, concurrent children, stalled peers, and the parent told to
//! drain by its child (`--parent-shutdown-time-s`). The running process must stay untouched,
//! keep serving and stay hot-restartable.

mod common;

use baton_statemachine::Message;
use common::hot::*;
use common::*;
use std::time::{Duration, Instant};

/// The handshake timeout is 10 s (statemachine default); waits for it are bounded above it.
const STALL_WAIT: Duration = Duration::from_secs(25);

/// Not a test of its own: the body of the fake child process that
/// `child_killed_before_takeover_leaves_the_parent_serving` starts (returns at once otherwise).
#[test]
fn fake_child_process_entry() {
    fake_child_main();
}

/// Runs a child to completion (it must fail); returns its stderr.
fn failing_child(yaml: &str, dir: &HotDir) -> String {
    let sock = dir.sock_arg();
    let (status, out, err) = run_baton(
        &["--config-yaml", yaml, "--hot-restart-file", &sock],
        EXIT_WAIT,
    );
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    err
}

fn hot_restart_lines(b: &Baton) -> Vec<String> {
    b.log()
        .lines()
        .filter(|l| l.contains("hot restart"))
        .map(String::from)
        .collect()
}

#[test]
fn bad_config_child_exits_1_with_the_error_and_the_parent_is_untouched() {
    let mut s = Upgrade::start("badcfg");
    let before = hot_restart_lines(&s.v1);
    let bad = s
        .yaml2()
        .replace("lb_policy: ROUND_ROBIN", "lb_policy: NO_SUCH_POLICY");
    assert_ne!(bad, s.yaml2(), "the config edit did not apply");
    let err = failing_child(&bad, &s.dir);
    assert!(
        err.contains("NO_SUCH_POLICY") && err.contains("lb_policy"),
        "the child's error does not name the bad field and value:\n{err}"
    );
    // The child validated its config before touching the restart socket: the parent saw
    // nothing at all.
    assert_eq!(
        hot_restart_lines(&s.v1),
        before,
        "the parent noticed the bad child\n{}",
        s.v1.log()
    );
    s.serves("v1");
    assert!(s.v1.try_exit().is_none());
    let _v2 = s.restart_to_v2_and_retire_v1();
}

#[test]
fn child_killed_before_takeover_leaves_the_parent_serving() {
    let mut s = Upgrade::start("killbefore");
    // A real process that took the listener fds and acknowledged them (parent in
    // FdsTransferred), then dies by SIGKILL before it says Listening.
    let mut fake = FakeChild::start(
        "fake_child_process_entry",
        &s.dir.sock(),
        &child_addresses(s.port, &s.dir),
    );
    assert!(
        fake.output().contains("HOLDING 2 fds"),
        "fake child: {}",
        fake.output()
    );
    assert!(
        s.v1.wait_log("state PassingFds -> FdsTransferred", IO_TIMEOUT),
        "{}",
        s.v1.log()
    );
    s.serves("v1");
    fake.sigkill();
    assert!(
        s.v1.wait_log("state FdsTransferred -> Serving", IO_TIMEOUT),
        "the parent did not roll back\n{}",
        s.v1.log()
    );
    assert!(
        !s.v1.log().contains("HandedOver"),
        "the parent stopped accepting for a child that never took over\n{}",
        s.v1.log()
    );
    s.serves("v1");
    s.serves("v1");
    let _v2 = s.restart_to_v2_and_retire_v1();
}

#[test]
fn child_killed_after_takeover_parent_resumes_accepting_and_restarts_again() {
    let mut s = Upgrade::start("killafter");
    // An idle keep-alive connection on v1 from before the restart.
    let mut kept = warmed_conn(s.port, "v1");

    let (mut v2, _) = s.takeover(&[]);
    s.serves("v2");
    let status = v2.sigkill();
    println!("killed the child: {status}");
    // A connection made at once waits in the shared backlog until v1 resumes; never lost.
    let mut early = RawConn::connect(s.port);
    early.send(&get("/"));
    assert!(
        s.v1.wait_log(RESUMED, IO_TIMEOUT),
        "the parent did not resume after its child died\n{}",
        s.v1.log()
    );
    assert!(
        s.v1.log().contains("listener listener_0 accepting on"),
        "{}",
        s.v1.log()
    );
    // New connections are accepted by v1 again, and the old connection still works.
    let r = early.expect_response(false);
    assert!(r.body_str().contains("hello from v1 "), "{r:?}");
    s.serves("v1");
    next_served_by(&mut kept, "v1", Some(&s.v1));
    assert!(s.v1.try_exit().is_none());
    // ...and v1 can hand over again.
    let _v2b = s.restart_to_v2_and_retire_v1();
}

#[test]
fn second_child_during_a_handover_is_refused_and_a_stalled_child_is_timed_out() {
    let mut s = Upgrade::start("concurrent");
    // A child that says Hello and then stalls holds the one handover slot...
    let mut staller = FakePeer::connect(&s.dir.sock());
    staller.hello();
    staller.expect("HelloAck", |m| matches!(m, Message::HelloAck { .. }));
    let stalled_at = Instant::now();
    // ...so a real second child is refused with a clear reason and exits 1.
    let err = failing_child(&s.yaml2(), &s.dir);
    assert!(
        err.contains("another hot restart is in progress"),
        "unclear refusal:\n{err}"
    );
    s.serves("v1");
    // The staller is dropped after the handshake timeout and the parent rolls back.
    let (closed, got) = staller.closed_within(STALL_WAIT);
    let stall_ms = stalled_at.elapsed().as_millis();
    let names: Vec<&str> = got.iter().map(|m| m.name()).collect();
    assert!(
        closed,
        "stalled child still connected; got {names:?}\n{}",
        s.v1.log()
    );
    println!("stalled child dropped after {stall_ms} ms; frames before EOF: {names:?}");
    assert!(
        s.v1.wait_log("state ChildConnected -> Serving", IO_TIMEOUT),
        "{}",
        s.v1.log()
    );
    s.serves("v1");
    let _v2 = s.restart_to_v2_and_retire_v1();
}

#[test]
fn a_silent_peer_never_blocks_a_real_restart_and_is_timed_out() {
    let mut s = Upgrade::start("silent");
    // Connects and says nothing.
    let mut silent = FakePeer::connect(&s.dir.sock());
    let (v2, _) = s.takeover(&[]);
    // The real child's Hello claimed the handover; the silent peer was refused.
    let (closed, got) = silent.closed_within(IO_TIMEOUT);
    assert!(closed, "silent peer still connected\n{}", s.v1.log());
    assert!(
        got.iter().any(
            |m| matches!(m, Message::Refuse { reason } if reason.contains("another hot restart"))
        ),
        "silent peer got {got:?}"
    );
    s.v1.sigterm();
    expect_exit_code(&mut s.v1, 0, EXIT_WAIT);
    // A silent peer alone (now on the new generation's restart socket) is timed out.
    let t = Instant::now();
    let mut silent2 = FakePeer::connect(&s.dir.sock());
    let (closed, got) = silent2.closed_within(STALL_WAIT);
    assert!(closed, "silent peer never timed out\n{}", v2.log());
    assert!(got.is_empty(), "silent peer got {got:?}");
    println!("silent peer dropped after {} ms", t.elapsed().as_millis());
    s.serves("v2");
}

#[test]
fn parent_shutdown_time_drains_the_parent_without_a_signal() {
    let mut s = Upgrade::start("pshutdown");
    let mut kept = warmed_conn(s.port, "v1");
    let (v2, _) = s.takeover(&["--parent-shutdown-time-s", "1"]);
    let t = Instant::now();
    expect_exit_code(&mut s.v1, 0, EXIT_WAIT);
    println!(
        "parent exited {} ms after the takeover, without a signal",
        t.elapsed().as_millis()
    );
    let log = s.v1.log();
    assert!(
        log.contains("child asked us to drain") && log.contains("state HandedOver -> Draining"),
        "{log}"
    );
    assert!(
        !log.contains("SIGTERM: "),
        "the parent got a SIGTERM?\n{log}"
    );
    // The idle keep-alive connection moved to v2 and carries on there.
    next_served_by(&mut kept, "v2", Some(&v2));
}

#[test]
fn sigterm_during_a_handover_is_kept_and_the_parent_drains_when_the_child_fails() {
    let mut s = Upgrade::start("termmid");
    let mut child = FakePeer::connect(&s.dir.sock());
    child.hello();
    child.expect("HelloAck", |m| matches!(m, Message::HelloAck { .. }));
    s.v1.sigterm();
    // Remembered, not acted on: the handover may still complete.
    assert!(s.v1.wait_log("SIGTERM: ", IO_TIMEOUT), "{}", s.v1.log());
    s.serves("v1");
    assert!(s.v1.try_exit().is_none(), "{}", s.v1.log());
    // The child fails before takeover: the parent drains as if SIGTERMed while serving.
    drop(child);
    expect_exit_code(&mut s.v1, 0, EXIT_WAIT);
    assert!(
        s.v1.log().contains("state ChildConnected -> Draining")
            || s.v1.log().contains("state Serving -> Draining"),
        "{}",
        s.v1.log()
    );
}

#[test]
fn child_sigtermed_after_takeover_drains_and_the_parent_resumes() {
    let mut s = Upgrade::start("childterm");
    let (mut v2, _) = s.takeover(&[]);
    s.serves("v2");
    v2.sigterm();
    expect_exit_code(&mut v2, 0, EXIT_WAIT);
    // v1 still holds the restart socket: its path must survive v2's exit.
    assert!(
        s.dir.sock().exists(),
        "v2 removed the restart socket v1 serves"
    );
    assert!(s.v1.wait_log(RESUMED, IO_TIMEOUT), "{}", s.v1.log());
    s.serves("v1");
    let _v2b = s.restart_to_v2_and_retire_v1();
}

#[test]
fn parent_killed_after_takeover_leaves_the_child_serving_and_restartable() {
    let mut s = Upgrade::start("parentkill");
    let (mut v2, _) = s.takeover(&[]);
    let status = s.v1.sigkill();
    println!("killed the parent: {status}");
    assert!(
        v2.wait_log("the previous generation has exited", IO_TIMEOUT),
        "the child did not notice its parent's death\n{}",
        v2.log()
    );
    s.serves("v2");
    assert!(v2.try_exit().is_none(), "{}", v2.log());
    // v2 holds the restart socket now: a third generation takes over from it.
    let (v3, _) = hot_takeover(&simple_yaml(s.port, s.up1.port()), &s.dir, &[], &v2);
    assert_eq!(serving_epoch(&v3), Some(2), "{}", v3.log());
    v2.sigterm();
    expect_exit_code(&mut v2, 0, EXIT_WAIT);
    s.serves("v1");
}
