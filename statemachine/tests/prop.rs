//! Random event sequences through a parent and a child machine, with the sim checking the
//! invariants after every step: at most one process accepts on a listener; the live owner
//! accepts on all it holds once messages settle (the old one again after a rollback);
//! Exited is final; illegal events change nothing; nothing panics.

mod common;

use baton_statemachine::*;
use common::sim::{Sim, Who};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    StartChild,
    Deliver(Who),
    ListenersReady(Who),
    SigTerm(Who),
    ConnectionsDone(Who),
    Advance(u64),
    KillChild,
    IntruderConnect,
    IntruderHello {
        good_version: bool,
    },
    IntruderGarbage,
    IntruderClose,
    /// Events a driver never sends here (unknown peers, wrong role): must be errors.
    Bogus(Who, u8),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![Just(Who::P), Just(Who::C)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::StartChild),
        10 => who().prop_map(Op::Deliver),
        3 => who().prop_map(Op::ListenersReady),
        1 => who().prop_map(Op::SigTerm),
        1 => who().prop_map(Op::ConnectionsDone),
        2 => prop_oneof![0u64..50, Just(1_000u64), Just(3_000), Just(10_000)].prop_map(Op::Advance),
        1 => Just(Op::KillChild),
        1 => Just(Op::IntruderConnect),
        1 => any::<bool>().prop_map(|good_version| Op::IntruderHello { good_version }),
        1 => Just(Op::IntruderGarbage),
        1 => Just(Op::IntruderClose),
        2 => (who(), 0u8..6).prop_map(|(w, k)| Op::Bogus(w, k)),
    ]
}

fn intruder_event(s: &mut Sim, ev: Event) {
    if let Some(at) = s.intruder_at {
        if s.proc(at).alive {
            // Legal or not depends on the state; the sim checks illegal changes nothing.
            let _ = s.event(at, ev);
        }
    }
}

fn bogus(k: u8) -> Event {
    match k {
        0 => Event::MessageReceived(Peer::Child(77), Message::Listening),
        1 => Event::PeerClosed(Peer::Child(77)),
        2 => Event::MessageReceived(
            Peer::Parent,
            Message::ListenerFds(FdBatch {
                index: 0,
                last: true,
                addresses: vec![],
            }),
        ),
        3 => Event::NoParent,
        4 => Event::PeerConnected(Peer::Parent),
        _ => Event::MessageReceived(Peer::Child(77), Message::DrainParent),
    }
}

fn run(ops: Vec<Op>) {
    let mut s = Sim::new();
    for op in ops {
        match op {
            Op::StartChild => s.start_child(),
            Op::Deliver(w) => s.deliver(w),
            Op::ListenersReady(w) => {
                if s.proc(w).alive {
                    let _ = s.event(w, Event::ListenersReady);
                }
            }
            Op::SigTerm(w) => {
                if s.proc(w).alive && s.proc(w).m.state() != State::Init {
                    s.event(w, Event::SigTerm)
                        .expect("SIGTERM is legal while alive");
                }
            }
            Op::ConnectionsDone(w) => {
                if s.proc(w).alive {
                    let draining = s.proc(w).m.state() == State::Draining;
                    assert_eq!(s.event(w, Event::ConnectionsDone).is_ok(), draining);
                }
            }
            Op::Advance(ms) => {
                s.now += ms;
                s.tick();
            }
            Op::KillChild => s.kill(Who::C),
            Op::IntruderConnect => {
                if s.intruder_at.is_none() {
                    let at = [Who::P, Who::C].into_iter().find(|w| {
                        let pr = s.proc(*w);
                        pr.alive && pr.accepting.contains(common::sim::RESTART)
                    });
                    if let Some(at) = at {
                        s.intruder_at = Some(at);
                        s.event(at, Event::PeerConnected(Peer::Child(2)))
                            .expect("a new connection is always legal for the acceptor");
                    }
                }
            }
            Op::IntruderHello { good_version } => {
                let protocol_version = if good_version { PROTOCOL_VERSION } else { 999 };
                let msg = Message::Hello {
                    protocol_version,
                    binary_version: "evil".into(),
                    pid: 666,
                };
                intruder_event(&mut s, Event::MessageReceived(Peer::Child(2), msg));
            }
            Op::IntruderGarbage => intruder_event(
                &mut s,
                Event::MessageReceived(Peer::Child(2), Message::FdsAck { batch: 9 }),
            ),
            Op::IntruderClose => {
                if let Some(at) = s.intruder_at.take() {
                    if s.proc(at).alive {
                        let _ = s.event(at, Event::PeerClosed(Peer::Child(2)));
                    }
                }
            }
            Op::Bogus(w, k) => {
                let ev = bogus(k);
                let state = s.proc(w).m.state();
                // NoParent / PeerConnected(Parent) are legal only for a process in Init.
                if state != State::Init {
                    assert!(s.event(w, ev).is_err(), "bogus event accepted in {state}");
                }
            }
        }
        // Exited is final: every event is refused, nothing changes.
        for w in [Who::P, Who::C] {
            if s.proc(w).m.state() == State::Exited {
                assert!(s.event(w, Event::Tick).is_err());
                assert!(s.event(w, Event::SigTerm).is_err());
            }
        }
        if s.quiescent() {
            s.check_quiescent();
        }
    }
    // Let everything settle: deliver all, then let every deadline pass.
    for _ in 0..4 {
        s.run_until_quiet();
        s.check_quiescent();
        s.now += 20_000;
        s.tick();
    }
    s.run_until_quiet();
    s.check_quiescent();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_invariants(ops in proptest::collection::vec(op(), 0..60)) {
        run(ops);
    }
}
