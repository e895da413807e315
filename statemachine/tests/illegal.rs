//! Table-driven: every event kind in every state is either legal (listed) or an error that
//! leaves the machine unchanged.

mod common;

use baton_statemachine::*;
use common::*;

/// Every event kind the driver can deliver, with a label for the legality table.
fn events() -> Vec<(String, Event)> {
    let mut v: Vec<(String, Event)> = vec![
        ("NoParent".into(), Event::NoParent),
        (
            "Connected(Parent)".into(),
            Event::PeerConnected(Peer::Parent),
        ),
        (
            "Connected(Child1)".into(),
            Event::PeerConnected(Peer::Child(1)),
        ),
        (
            "Connected(Child9)".into(),
            Event::PeerConnected(Peer::Child(9)),
        ),
        ("Fds".into(), batch(0, true, &["0.0.0.0:10000"])),
        ("Closed(Parent)".into(), Event::PeerClosed(Peer::Parent)),
        ("Closed(Child1)".into(), Event::PeerClosed(Peer::Child(1))),
        ("Closed(Child9)".into(), Event::PeerClosed(Peer::Child(9))),
        ("ListenersReady".into(), Event::ListenersReady),
        ("SigTerm".into(), Event::SigTerm),
        ("ConnectionsDone".into(), Event::ConnectionsDone),
        ("Tick".into(), Event::Tick),
    ];
    for m in all_messages() {
        v.push((format!("Parent:{}", m.name()), from_parent(m.clone())));
        v.push((format!("Child1:{}", m.name()), from_child(m.clone())));
        v.push((
            format!("Child9:{}", m.name()),
            Event::MessageReceived(Peer::Child(9), m),
        ));
    }
    v
}

const PARENT_MSGS: [&str; 12] = [
    "Parent:Hello",
    "Parent:HelloAck",
    "Parent:Refuse",
    "Parent:RequestListeners",
    "Parent:FdsAck",
    "Parent:Listening",
    "Parent:AcceptingStopped",
    "Parent:DrainParent",
    "Parent:Stats",
    "Parent:Connections",
    "Parent:Tunnels",
    "Parent:TunnelsAck",
];

fn child1_msgs() -> Vec<String> {
    all_messages()
        .iter()
        .map(|m| format!("Child1:{}", m.name()))
        .collect()
}

/// The legal event labels per state (machines from `common::build`).
fn legal(state: State) -> Vec<String> {
    use State::*;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let always = s(&["SigTerm", "Tick"]);
    let parent_link = [s(&PARENT_MSGS), s(&["Closed(Parent)"])].concat();
    let child_link = [child1_msgs(), s(&["Closed(Child1)", "Connected(Child9)"])].concat();
    match state {
        Init => [always, s(&["NoParent", "Connected(Parent)"])].concat(),
        Connecting | Listening => [always, parent_link].concat(),
        Connected => [always, parent_link, s(&["Fds"])].concat(),
        FdsReceived => [always, parent_link, s(&["ListenersReady"])].concat(),
        Serving => [always, s(&["Connected(Child1)", "Connected(Child9)"])].concat(),
        ChildConnected | PassingFds | FdsTransferred | HandedOver => [always, child_link].concat(),
        Draining => [always, child_link, s(&["ConnectionsDone"])].concat(),
        Exited => vec![],
    }
}

#[test]
fn every_event_in_every_state_is_legal_or_changes_nothing() {
    let mut checked = 0;
    for state in ALL_STATES {
        let allowed = legal(state);
        for (label, ev) in events() {
            let mut m = build(state);
            assert_eq!(m.state(), state);
            let before = format!("{m:?}");
            let r = m.handle(1, ev.clone());
            if allowed.contains(&label) {
                assert!(r.is_ok(), "{label} should be legal in {state}: {r:?}");
            } else {
                assert_eq!(
                    r,
                    Err(Error::IllegalEvent {
                        state,
                        event: ev.clone()
                    }),
                    "{label} should be illegal in {state}"
                );
                assert_eq!(
                    before,
                    format!("{m:?}"),
                    "{label} in {state} changed the machine"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12 * 51);
}

#[test]
fn serving_with_a_linked_parent_accepts_parent_link_events() {
    let mut m = child_serving_linked();
    let stats = StatsSnapshot::default();
    let a = ok(&mut m, 1, from_parent(Message::Stats(stats.clone())));
    assert_eq!(a, vec![Action::MergeStats(stats)]);
    let before = format!("{m:?}");
    assert!(m.handle(1, Event::ListenersReady).is_err());
    assert!(m
        .handle(1, from_parent(all_messages()[4].clone())) // ListenerFds without fds
        .is_err());
    assert_eq!(before, format!("{m:?}"));
    ok(&mut m, 1, Event::PeerClosed(Peer::Parent));
    assert!(!m.has_parent());
    assert!(m.handle(1, Event::PeerClosed(Peer::Parent)).is_err());
}

#[test]
fn error_display_names_state_and_event() {
    let mut m = build(State::Exited);
    let e = m.handle(0, Event::Tick).unwrap_err();
    assert_eq!(e.to_string(), "illegal event Tick in state Exited");
}
