//! Parent-role transitions: each legal event in each state, with its actions.

mod common;

use baton_statemachine::*;
use common::*;

fn ids(v: &[u32]) -> Vec<ListenerId> {
    v.iter().map(|&i| ListenerId(i)).collect()
}

fn has<F: Fn(&Action) -> bool>(a: &[Action], f: F) -> bool {
    a.iter().any(f)
}

fn request(addrs: &[&str]) -> Event {
    from_child(Message::RequestListeners {
        addresses: addrs.iter().map(|a| a.to_string()).collect(),
    })
}

#[test]
fn hello_claims_the_handover() {
    let mut m = build(State::Serving);
    let a = ok(&mut m, 0, Event::PeerConnected(Peer::Child(1)));
    assert_eq!(a, vec![Action::ArmTimer(T)]);
    assert_eq!(m.state(), State::Serving);
    ok(&mut m, 0, Event::PeerConnected(Peer::Child(2)));
    let a = ok(&mut m, 1, from_child(hello()));
    assert_eq!(m.state(), State::ChildConnected);
    assert_eq!(m.child(), Some(Peer::Child(1)));
    assert!(a.contains(&Action::Send(Peer::Child(1), hello_ack(0))));
    assert!(a.contains(&Action::SendStats(Peer::Child(1))));
    // The other waiting peer is refused: one handover at a time.
    assert!(has(&a, |a| matches!(
        a,
        Action::Refuse {
            peer: Peer::Child(2),
            ..
        }
    )));
}

#[test]
fn pending_peer_bad_version_garbage_close_and_stall() {
    let mut m = build(State::Serving);
    ok(&mut m, 0, Event::PeerConnected(Peer::Child(1)));
    let bad = Message::Hello {
        protocol_version: 99,
        binary_version: "future".into(),
        pid: 1,
    };
    let a = ok(&mut m, 0, from_child(bad));
    assert!(has(
        &a,
        |a| matches!(a, Action::Refuse { reason, .. } if reason.contains("mismatch"))
    ));
    assert_eq!(m.state(), State::Serving);

    ok(&mut m, 0, Event::PeerConnected(Peer::Child(2)));
    let a = ok(
        &mut m,
        0,
        Event::MessageReceived(Peer::Child(2), Message::Listening),
    );
    assert!(a.contains(&Action::DropPeer(Peer::Child(2))));

    ok(&mut m, 0, Event::PeerConnected(Peer::Child(3)));
    ok(&mut m, 0, Event::PeerClosed(Peer::Child(3)));
    assert!(m.handle(0, Event::PeerClosed(Peer::Child(3))).is_err());

    ok(&mut m, 0, Event::PeerConnected(Peer::Child(4)));
    assert!(!ok(&mut m, T - 1, Event::Tick).contains(&Action::DropPeer(Peer::Child(4))));
    assert!(ok(&mut m, T, Event::Tick).contains(&Action::DropPeer(Peer::Child(4))));
    assert_eq!(m.state(), State::Serving);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn too_many_pending_peers_are_refused() {
    let mut m = build(State::Serving);
    for id in 0..8 {
        assert!(ok(&mut m, 0, Event::PeerConnected(Peer::Child(id)))
            .iter()
            .all(|a| !matches!(a, Action::Refuse { .. })));
    }
    let a = ok(&mut m, 0, Event::PeerConnected(Peer::Child(8)));
    assert!(has(&a, |a| matches!(
        a,
        Action::Refuse {
            peer: Peer::Child(8),
            ..
        }
    )));
}

#[test]
fn second_child_during_handover_is_refused_state_unchanged() {
    for state in [
        State::ChildConnected,
        State::PassingFds,
        State::FdsTransferred,
        State::HandedOver,
        State::Draining,
    ] {
        let mut m = build(state);
        let a = ok(&mut m, 0, Event::PeerConnected(Peer::Child(9)));
        assert_eq!(a.len(), 1, "{state}: {a:?}");
        assert!(matches!(
            &a[0],
            Action::Refuse {
                peer: Peer::Child(9),
                ..
            }
        ));
        assert_eq!(m.state(), state);
        // Reusing the live child's id is a driver bug.
        assert!(m.handle(0, Event::PeerConnected(Peer::Child(1))).is_err());
    }
}

#[test]
fn request_listeners_matches_by_address() {
    let mut m = build(State::ChildConnected);
    let a = ok(
        &mut m,
        0,
        request(&["unix:/tmp/x.sock", "0.0.0.0:10000", "9.9.9.9:1"]),
    );
    assert_eq!(m.state(), State::PassingFds);
    assert!(a.contains(&Action::PassFds {
        peer: Peer::Child(1),
        batch: FdBatch {
            index: 0,
            last: true,
            addresses: vec!["0.0.0.0:10000".into(), "unix:/tmp/x.sock".into()]
        },
        ids: ids(&[0, 2]),
    }));
    ok(&mut m, 0, from_child(Message::FdsAck { batch: 0 }));
    assert_eq!(m.state(), State::FdsTransferred);
}

#[test]
fn empty_request_sends_one_empty_final_batch() {
    let mut m = build(State::ChildConnected);
    let a = ok(&mut m, 0, request(&[]));
    assert!(a.contains(&Action::PassFds {
        peer: Peer::Child(1),
        batch: FdBatch {
            index: 0,
            last: true,
            addresses: vec![]
        },
        ids: vec![],
    }));
}

#[test]
fn many_listeners_go_in_acked_batches_of_253() {
    let listeners: Vec<Listener> = (0..600).map(|i| l(i, &format!("10.0.0.1:{i}"))).collect();
    let addrs: Vec<String> = listeners.iter().map(|l| l.address.clone()).collect();
    let mut m = Machine::new(Config::new(1, "b", listeners));
    ok(&mut m, 0, Event::NoParent);
    ok(&mut m, 0, Event::ListenersReady);
    ok(&mut m, 0, Event::PeerConnected(Peer::Child(1)));
    ok(&mut m, 0, from_child(hello()));
    let mut a = ok(
        &mut m,
        0,
        from_child(Message::RequestListeners { addresses: addrs }),
    );
    let mut sizes = vec![];
    for index in 0..3u32 {
        let batch = a
            .iter()
            .find_map(|a| match a {
                Action::PassFds { batch, .. } => Some(batch.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!((batch.index, batch.last), (index, index == 2));
        sizes.push(batch.addresses.len());
        assert_eq!(m.state(), State::PassingFds);
        a = ok(&mut m, 0, from_child(Message::FdsAck { batch: index }));
    }
    assert_eq!(sizes, vec![253, 253, 94]);
    assert_eq!(m.state(), State::FdsTransferred);
}

#[test]
fn wrong_ack_or_message_mid_handover_drops_child_and_rolls_back() {
    let cases = [
        (State::PassingFds, Message::FdsAck { batch: 5 }),
        (State::ChildConnected, Message::Listening),
        (State::FdsTransferred, Message::DrainParent),
        (State::PassingFds, hello()),
    ];
    for (state, msg) in cases {
        let mut m = build(state);
        let a = ok(&mut m, 0, from_child(msg));
        assert!(a.contains(&Action::DropPeer(Peer::Child(1))), "{state}");
        assert_eq!(m.state(), State::Serving);
        assert!(!has(&a, |a| matches!(a, Action::ResumeAccepting(_))));
        assert_eq!(m.child(), None);
    }
}

#[test]
fn listening_hands_over_closing_dropped_listeners() {
    let mut m = build(State::FdsTransferred);
    let a = ok(&mut m, 0, from_child(Message::Listening));
    assert_eq!(m.state(), State::HandedOver);
    let stop = a
        .iter()
        .position(|a| *a == Action::StopAccepting(ids(&[0, 1, 2])));
    let close = a
        .iter()
        .position(|a| *a == Action::CloseListeners(ids(&[1])));
    let told = a
        .iter()
        .position(|a| *a == Action::Send(Peer::Child(1), Message::AcceptingStopped));
    assert!(stop < close && close < told, "{a:?}");
}

#[test]
fn handed_over_child_death_resumes_accepting() {
    let mut m = build(State::HandedOver);
    let a = ok(&mut m, 0, Event::PeerClosed(Peer::Child(1)));
    assert_eq!(m.state(), State::Serving);
    assert!(a.contains(&Action::ResumeAccepting(ids(&[0, 2]))));
    // And it can be hot-restarted again.
    ok(&mut m, 0, Event::PeerConnected(Peer::Child(5)));
    ok(&mut m, 0, Event::MessageReceived(Peer::Child(5), hello()));
    assert_eq!(m.state(), State::ChildConnected);
}

#[test]
fn handed_over_sends_stats_periodically() {
    let mut m = build(State::HandedOver);
    assert_eq!(m.next_deadline(), Some(1_000));
    let a = ok(&mut m, 1_000, Event::Tick);
    assert_eq!(a[0], Action::SendStats(Peer::Child(1)));
    assert_eq!(a.last(), Some(&Action::ArmTimer(2_000)));
}

#[test]
fn sigterm_or_drain_parent_after_handover_drops_copies_only() {
    for ev in [Event::SigTerm, from_child(Message::DrainParent)] {
        let mut m = build(State::HandedOver);
        let a = ok(&mut m, 50, ev);
        assert_eq!(m.state(), State::Draining);
        assert!(a.contains(&Action::DropListenerCopies(ids(&[0, 2]))));
        assert!(!has(&a, |a| matches!(
            a,
            Action::CloseListeners(_) | Action::StopAccepting(_)
        )));
        assert!(a.contains(&Action::StartDrain {
            deadline: 50 + DRAIN
        }));
        // A child dying now does not resume anything: we were told to drain.
        let a = ok(&mut m, 60, Event::PeerClosed(Peer::Child(1)));
        assert!(!has(&a, |a| matches!(a, Action::ResumeAccepting(_))));
        assert_eq!(m.state(), State::Draining);
    }
}

#[test]
fn sigterm_without_child_stops_and_closes_everything() {
    let mut m = build(State::Serving);
    ok(&mut m, 0, Event::PeerConnected(Peer::Child(3)));
    let a = ok(&mut m, 0, Event::SigTerm);
    assert_eq!(m.state(), State::Draining);
    assert!(a.contains(&Action::StopAccepting(ids(&[0, 1, 2]))));
    assert!(a.contains(&Action::CloseListeners(ids(&[0, 1, 2]))));
    assert!(has(&a, |a| matches!(
        a,
        Action::Refuse {
            peer: Peer::Child(3),
            ..
        }
    )));
}

#[test]
fn sigterm_mid_handover_is_deferred_until_it_completes_or_fails() {
    let mut m = build(State::FdsTransferred);
    ok(&mut m, 0, Event::SigTerm);
    assert_eq!(m.state(), State::FdsTransferred);
    let a = ok(&mut m, 0, from_child(Message::Listening));
    assert_eq!(m.state(), State::Draining);
    assert!(a.contains(&Action::Send(Peer::Child(1), Message::AcceptingStopped)));
    assert!(a.contains(&Action::DropListenerCopies(ids(&[0, 2]))));

    let mut m = build(State::PassingFds);
    ok(&mut m, 0, Event::SigTerm);
    let a = ok(&mut m, 0, Event::PeerClosed(Peer::Child(1)));
    assert_eq!(m.state(), State::Draining);
    assert!(a.contains(&Action::CloseListeners(ids(&[0, 1, 2]))));
}

#[test]
fn child_leaving_before_takeover_leaves_parent_serving() {
    for state in [
        State::ChildConnected,
        State::PassingFds,
        State::FdsTransferred,
    ] {
        let mut m = build(state);
        let a = ok(&mut m, 0, Event::PeerClosed(Peer::Child(1)));
        assert_eq!(m.state(), State::Serving);
        assert!(!has(&a, |a| matches!(
            a,
            Action::ResumeAccepting(_) | Action::StopAccepting(_) | Action::CloseListeners(_)
        )));
    }
}

#[test]
fn stalled_child_is_dropped() {
    for state in [
        State::ChildConnected,
        State::PassingFds,
        State::FdsTransferred,
    ] {
        let mut m = build(state);
        assert!(ok(&mut m, T - 1, Event::Tick).is_empty());
        let a = ok(&mut m, T, Event::Tick);
        assert!(a.contains(&Action::DropPeer(Peer::Child(1))), "{state}");
        assert_eq!(m.state(), State::Serving);
    }
}

#[test]
fn draining_ends_on_connections_done_or_deadline() {
    let mut m = build(State::Draining);
    let a = ok(&mut m, 0, Event::ConnectionsDone);
    assert_eq!(m.state(), State::Exited);
    assert_eq!(a[1], Action::SendStats(Peer::Child(1)));
    assert!(has(&a, |a| matches!(a, Action::Exit { code: 0, .. })));

    let mut m = build(State::Draining);
    assert!(ok(&mut m, 0, Event::SigTerm)
        .iter()
        .all(|a| matches!(a, Action::Log(_))));
    ok(&mut m, 0, from_child(Message::DrainParent));
    assert_eq!(m.state(), State::Draining);
    let a = ok(&mut m, DRAIN, Event::Tick);
    assert!(has(
        &a,
        |a| matches!(a, Action::Exit { code: 0, reason } if reason.contains("deadline"))
    ));
    assert_eq!(m.next_deadline(), None);
}
