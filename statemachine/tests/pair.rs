//! A parent machine and a child machine talking to each other through the sim driver.

mod common;

use baton_statemachine::*;
use common::sim::{Sim, Who};

#[test]
fn seed_walkthrough_parent_exits_0_child_serves() {
    let mut s = Sim::new();
    assert_eq!(s.p.m.state(), State::Serving);
    assert_eq!(s.p.accepting.len(), 3);

    s.start_child();
    s.run_until_quiet();
    assert_eq!(s.p.m.state(), State::FdsTransferred);
    assert_eq!(s.c.m.state(), State::FdsReceived);
    assert_eq!(s.c.m.epoch(), 1);
    // The child holds dups of the shared listeners (and binds its new one), accepts nothing.
    assert!(s.c.accepting.is_empty());
    assert!(s.c.holding.contains("0.0.0.0:10000") && s.c.holding.contains("0.0.0.0:10001"));

    s.event(Who::C, Event::ListenersReady).unwrap();
    s.run_until_quiet();
    s.check_quiescent();
    assert_eq!(s.p.m.state(), State::HandedOver);
    assert_eq!(s.c.m.state(), State::Serving);
    assert!(s.p.accepting.is_empty());
    assert_eq!(s.c.accepting.len(), 3);
    // The admin listener the new config dropped is closed by the parent at handover.
    assert!(!s.p.holding.contains("127.0.0.1:9901"));

    s.event(Who::P, Event::SigTerm).unwrap();
    assert_eq!(s.p.m.state(), State::Draining);
    assert!(s.p.holding.is_empty());
    assert_eq!(
        s.c.accepting.len(),
        3,
        "dropping copies never touches the child"
    );
    s.event(Who::P, Event::ConnectionsDone).unwrap();
    s.run_until_quiet();
    s.check_quiescent();

    assert_eq!(s.p.exit_code, Some(0));
    assert_eq!(s.p.m.state(), State::Exited);
    assert_eq!(s.c.m.state(), State::Serving);
    assert!(!s.c.m.has_parent());
}

#[test]
fn parent_shutdown_time_drains_parent_without_a_signal() {
    let mut s = Sim::new();
    s.hand_over();
    s.advance_to(3_000); // child_cfg: parent_shutdown_ms = 3000
    assert_eq!(s.p.m.state(), State::Draining);
    s.advance_to(3_000 + common::DRAIN);
    assert_eq!(s.p.exit_code, Some(0));
    assert_eq!(s.c.m.state(), State::Serving);
}

#[test]
fn sigkill_child_after_takeover_rolls_back_and_restarts_again() {
    let mut s = Sim::new();
    s.hand_over();
    s.kill(Who::C);
    s.run_until_quiet();
    s.check_quiescent();
    assert_eq!(s.p.m.state(), State::Serving);
    // Resumes on what it still holds: the two shared listeners (admin was closed).
    assert_eq!(s.p.accepting.len(), 2);
    // A later child can hot-restart again.
    s.c = common::sim::Sim::new().c;
    s.hand_over();
    assert_eq!(s.p.m.state(), State::HandedOver);
    assert_eq!(s.c.m.state(), State::Serving);
    // The two shared listeners came over again; 10001 was bound fresh.
    assert_eq!(s.c.accepting.len(), 3);
}

#[test]
fn sigkill_child_before_takeover_leaves_parent_untouched() {
    let mut s = Sim::new();
    s.start_child();
    s.run_until_quiet();
    s.kill(Who::C);
    s.run_until_quiet();
    s.check_quiescent();
    assert_eq!(s.p.m.state(), State::Serving);
    assert_eq!(s.p.accepting.len(), 3);
}
