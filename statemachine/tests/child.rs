//! Child-role transitions: each legal event in each state, with its actions.

mod common;

use baton_statemachine::*;
use common::*;

fn ids(v: &[u32]) -> Vec<ListenerId> {
    v.iter().map(|&i| ListenerId(i)).collect()
}

fn exit_code(a: &[Action]) -> Option<i32> {
    a.iter().find_map(|a| match a {
        Action::Exit { code, .. } => Some(*code),
        _ => None,
    })
}

fn exit_reason(a: &[Action]) -> String {
    a.iter()
        .find_map(|a| match a {
            Action::Exit { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn no_parent_starts_fresh_as_epoch_0() {
    let mut m = build(State::Init);
    let a = ok(&mut m, 0, Event::NoParent);
    assert_eq!(m.state(), State::FdsReceived);
    assert_eq!(m.epoch(), 0);
    assert!(a.contains(&Action::BindFresh(ids(&[10, 11, 12]))));
    let a = ok(&mut m, 0, Event::ListenersReady);
    assert_eq!(m.state(), State::Serving);
    assert_eq!(
        a[0],
        Action::Transition {
            from: State::FdsReceived,
            to: State::Serving
        }
    );
    assert!(a.contains(&Action::StartAccepting(ids(&[10, 11, 12]))));
}

#[test]
fn connect_sends_hello_and_arms_the_handshake_timer() {
    let mut m = build(State::Init);
    let a = ok(&mut m, 5, Event::PeerConnected(Peer::Parent));
    assert_eq!(m.state(), State::Connecting);
    assert!(a.contains(&Action::Send(
        Peer::Parent,
        Message::Hello {
            protocol_version: PROTOCOL_VERSION,
            binary_version: "baton-2".into(),
            pid: 200
        }
    )));
    assert_eq!(a.last(), Some(&Action::ArmTimer(5 + T)));
}

#[test]
fn hello_ack_sets_epoch_and_requests_listeners_by_address() {
    let mut m = build(State::Connecting);
    let a = ok(&mut m, 0, from_parent(hello_ack(4)));
    assert_eq!(m.state(), State::Connected);
    assert_eq!(m.epoch(), 5);
    assert!(a.contains(&Action::Send(
        Peer::Parent,
        Message::RequestListeners {
            addresses: vec![
                "0.0.0.0:10000".into(),
                "0.0.0.0:10001".into(),
                "unix:/tmp/x.sock".into()
            ]
        }
    )));
}

#[test]
fn version_mismatch_refusal_and_max_epoch_exit_1() {
    let mut m = build(State::Connecting);
    let bad = Message::HelloAck {
        protocol_version: PROTOCOL_VERSION + 1,
        binary_version: "x".into(),
        pid: 1,
        epoch: 0,
    };
    let a = ok(&mut m, 0, from_parent(bad));
    assert_eq!((m.state(), exit_code(&a)), (State::Exited, Some(1)));
    assert!(exit_reason(&a).contains("protocol version mismatch"));
    // Only the exit: nothing else happens.
    assert_eq!(a.len(), 2);

    let mut m = build(State::Connecting);
    let a = ok(&mut m, 0, from_parent(hello_ack(u32::MAX)));
    assert_eq!(exit_code(&a), Some(1));

    for state in [State::Connecting, State::Connected, State::Listening] {
        let mut m = build(state);
        let a = ok(
            &mut m,
            0,
            from_parent(Message::Refuse {
                reason: "busy".into(),
            }),
        );
        assert_eq!(exit_code(&a), Some(1));
        assert!(exit_reason(&a).contains("busy"));
    }
}

#[test]
fn fd_batches_are_adopted_acked_and_missing_ones_bound_fresh() {
    let mut m = build(State::Connected);
    let a = ok(&mut m, 0, batch(0, false, &["0.0.0.0:10000", "10.9.9.9:1"]));
    assert_eq!(m.state(), State::Connected);
    assert!(a.contains(&Action::AdoptFds {
        batch: 0,
        ids: vec![Some(ListenerId(10)), None]
    }));
    assert!(a.contains(&Action::Send(Peer::Parent, Message::FdsAck { batch: 0 })));
    let a = ok(&mut m, 0, batch(1, true, &["unix:/tmp/x.sock"]));
    assert_eq!(m.state(), State::FdsReceived);
    assert!(a.contains(&Action::BindFresh(ids(&[11]))));
}

#[test]
fn bad_batches_exit_1() {
    let mut m = build(State::Connected);
    let a = ok(&mut m, 0, batch(1, true, &[]));
    assert!(exit_reason(&a).contains("batch 1 when 0 was due"));
    let mut m = build(State::Connected);
    let ev = Event::FdsReceived {
        batch: FdBatch {
            index: 0,
            last: true,
            addresses: vec!["0.0.0.0:10000".into()],
        },
        fd_count: 2,
    };
    let a = ok(&mut m, 0, ev);
    assert!(exit_reason(&a).contains("2 fds for 1 addresses"));
}

#[test]
fn stats_from_parent_are_merged_while_taking_over() {
    for state in [State::Connected, State::FdsReceived, State::Listening] {
        let mut m = build(state);
        let s = StatsSnapshot {
            counters: vec![("c".into(), 3)],
            gauges: vec![],
        };
        let a = ok(&mut m, 0, from_parent(Message::Stats(s.clone())));
        assert_eq!(a, vec![Action::MergeStats(s)]);
        assert_eq!(m.state(), state);
    }
}

#[test]
fn ready_child_tells_parent_then_starts_only_on_accepting_stopped() {
    let mut m = build(State::FdsReceived);
    let a = ok(&mut m, 0, Event::ListenersReady);
    assert_eq!(m.state(), State::Listening);
    assert!(a.contains(&Action::Send(Peer::Parent, Message::Listening)));
    assert!(!a.iter().any(|a| matches!(a, Action::StartAccepting(_))));
    let a = ok(&mut m, 100, from_parent(Message::AcceptingStopped));
    assert_eq!(m.state(), State::Serving);
    assert!(a.contains(&Action::StartAccepting(ids(&[10, 11, 12]))));
    assert_eq!(a.last(), Some(&Action::ArmTimer(3_100))); // parent shutdown
    assert!(m.has_parent());
}

#[test]
fn parent_shutdown_time_sends_drain_parent_once() {
    let mut m = child_serving_linked();
    assert!(ok(&mut m, 2_999, Event::Tick).is_empty());
    let a = ok(&mut m, 3_000, Event::Tick);
    assert_eq!(a, vec![Action::Send(Peer::Parent, Message::DrainParent)]);
    assert!(ok(&mut m, 9_000, Event::Tick).is_empty());
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn old_parent_misbehaving_after_takeover_is_dropped() {
    let mut m = child_serving_linked();
    let a = ok(&mut m, 0, from_parent(Message::Listening));
    assert!(a.contains(&Action::DropPeer(Peer::Parent)));
    assert!(!m.has_parent());
    assert_eq!(m.state(), State::Serving);
}

#[test]
fn parent_gone_or_sigterm_before_takeover_exit_1() {
    for state in [
        State::Connecting,
        State::Connected,
        State::FdsReceived,
        State::Listening,
    ] {
        let mut m = build(state);
        let a = ok(&mut m, 0, Event::PeerClosed(Peer::Parent));
        assert_eq!(
            (m.state(), exit_code(&a)),
            (State::Exited, Some(1)),
            "{state}"
        );
        let mut m = build(state);
        let a = ok(&mut m, 0, Event::SigTerm);
        assert_eq!(exit_code(&a), Some(1), "{state}");
    }
    let mut m = build(State::Init);
    assert_eq!(exit_code(&ok(&mut m, 0, Event::SigTerm)), Some(1));
}

#[test]
fn unexpected_parent_message_exits_1() {
    let mut m = build(State::Connecting);
    let a = ok(&mut m, 0, from_parent(Message::AcceptingStopped));
    assert!(exit_reason(&a).contains("AcceptingStopped in state Connecting"));
    let mut m = build(State::Listening);
    let a = ok(&mut m, 0, from_parent(hello_ack(0)));
    assert_eq!(exit_code(&a), Some(1));
}

#[test]
fn silent_parent_times_out() {
    for state in [State::Connecting, State::Connected, State::Listening] {
        let mut m = build(state);
        assert!(ok(&mut m, T - 1, Event::Tick).is_empty(), "{state}");
        let a = ok(&mut m, T, Event::Tick);
        assert_eq!(exit_code(&a), Some(1), "{state}");
        assert!(exit_reason(&a).contains("silent"));
    }
    // Waiting for our own driver is not the parent's fault: no timer here.
    assert_eq!(build(State::FdsReceived).next_deadline(), None);
}
