//! Shared test helpers: configs, machines built into each state, and a two-process sim.
#![allow(dead_code)]

pub mod sim;

use baton_statemachine::*;

pub const T: u64 = 10_000; // handshake timeout
pub const DRAIN: u64 = 5_000;

pub fn l(id: u32, address: &str) -> Listener {
    Listener {
        id: ListenerId(id),
        address: address.to_string(),
    }
}

/// The old process: a proxy port, an admin port the new config drops, the restart socket.
pub fn parent_cfg() -> Config {
    let mut c = Config::new(
        100,
        "baton-1",
        vec![
            l(0, "0.0.0.0:10000"),
            l(1, "127.0.0.1:9901"),
            l(2, "unix:/tmp/x.sock"),
        ],
    );
    c.handshake_timeout_ms = T;
    c.drain_time_ms = DRAIN;
    c.stats_interval_ms = 1_000;
    c
}

/// The new process: the same proxy port, a new port, the restart socket.
pub fn child_cfg() -> Config {
    let mut c = Config::new(
        200,
        "baton-2",
        vec![
            l(10, "0.0.0.0:10000"),
            l(11, "0.0.0.0:10001"),
            l(12, "unix:/tmp/x.sock"),
        ],
    );
    c.handshake_timeout_ms = T;
    c.drain_time_ms = DRAIN;
    c.parent_shutdown_ms = Some(3_000);
    c
}

pub fn ok(m: &mut Machine, now: u64, ev: Event) -> Vec<Action> {
    match m.handle(now, ev.clone()) {
        Ok(a) => a,
        Err(e) => panic!("{ev:?} in {}: {e}", m.state()),
    }
}

pub fn from_child(msg: Message) -> Event {
    Event::MessageReceived(Peer::Child(1), msg)
}

pub fn from_parent(msg: Message) -> Event {
    Event::MessageReceived(Peer::Parent, msg)
}

pub fn hello() -> Message {
    Message::Hello {
        protocol_version: PROTOCOL_VERSION,
        binary_version: "baton-2".into(),
        pid: 200,
    }
}

pub fn hello_ack(epoch: u32) -> Message {
    Message::HelloAck {
        protocol_version: PROTOCOL_VERSION,
        binary_version: "baton-1".into(),
        pid: 100,
        epoch,
    }
}

pub fn batch(index: u32, last: bool, addrs: &[&str]) -> Event {
    Event::FdsReceived {
        batch: FdBatch {
            index,
            last,
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
        },
        fd_count: addrs.len(),
    }
}

/// A machine of the given config driven into `state` along the happy path, at time 0.
///
/// Parent-role states come from a fresh epoch-0 process with child peer 1; `Draining`
/// comes from `HandedOver` (child 1 still linked); child-role states from `child_cfg`.
pub fn build(state: State) -> Machine {
    use State::*;
    match state {
        Init => Machine::new(child_cfg()),
        Connecting => step(Init, Event::PeerConnected(Peer::Parent)),
        Connected => step(Connecting, from_parent(hello_ack(0))),
        FdsReceived => step(
            Connected,
            batch(0, true, &["0.0.0.0:10000", "unix:/tmp/x.sock"]),
        ),
        Listening => step(FdsReceived, Event::ListenersReady),
        Serving => {
            let mut m = Machine::new(parent_cfg());
            ok(&mut m, 0, Event::NoParent);
            ok(&mut m, 0, Event::ListenersReady);
            m
        }
        ChildConnected => {
            let mut m = build(Serving);
            ok(&mut m, 0, Event::PeerConnected(Peer::Child(1)));
            ok(&mut m, 0, from_child(hello()));
            m
        }
        PassingFds => step(
            ChildConnected,
            from_child(Message::RequestListeners {
                addresses: vec!["0.0.0.0:10000".into(), "unix:/tmp/x.sock".into()],
            }),
        ),
        FdsTransferred => step(PassingFds, from_child(Message::FdsAck { batch: 0 })),
        HandedOver => step(FdsTransferred, from_child(Message::Listening)),
        Draining => step(HandedOver, Event::SigTerm),
        Exited => step(Draining, Event::ConnectionsDone),
    }
}

fn step(from: State, ev: Event) -> Machine {
    let mut m = build(from);
    ok(&mut m, 0, ev);
    m
}

/// A new process that has taken over and still has its parent linked.
pub fn child_serving_linked() -> Machine {
    let mut m = build(State::Listening);
    ok(&mut m, 0, from_parent(Message::AcceptingStopped));
    assert_eq!(m.state(), State::Serving);
    m
}

pub const ALL_STATES: [State; 12] = [
    State::Init,
    State::Connecting,
    State::Connected,
    State::FdsReceived,
    State::Listening,
    State::Serving,
    State::ChildConnected,
    State::PassingFds,
    State::FdsTransferred,
    State::HandedOver,
    State::Draining,
    State::Exited,
];

/// One of each message kind.
pub fn all_messages() -> Vec<Message> {
    vec![
        hello(),
        hello_ack(0),
        Message::Refuse {
            reason: "busy".into(),
        },
        Message::RequestListeners {
            addresses: vec!["0.0.0.0:10000".into()],
        },
        Message::ListenerFds(FdBatch {
            index: 0,
            last: true,
            addresses: vec!["0.0.0.0:10000".into()],
        }),
        Message::FdsAck { batch: 0 },
        Message::Listening,
        Message::AcceptingStopped,
        Message::DrainParent,
        Message::Stats(StatsSnapshot {
            counters: vec![("downstream_rq_total".into(), 7)],
            gauges: vec![("server.parent_connections".into(), -1)],
        }),
        Message::Connections(vec![
            MovedConn {
                listener: "tcp:127.0.0.1:10000".into(),
                peer: "127.0.0.1:5555".into(),
                pending: b"GET / HT".to_vec(),
            },
            MovedConn {
                listener: "tcp:[::1]:10000".into(),
                peer: "[::1]:6".into(),
                pending: Vec::new(),
            },
        ]),
        Message::Tunnels {
            batch: 3,
            tunnels: vec![MovedTunnel {
                listener: "tcp:127.0.0.1:10000".into(),
                peer: "127.0.0.1:5555".into(),
                cluster: "ws".into(),
                upstream: "127.0.0.1:8080".into(),
                to_client: b"\x81\x05hello".to_vec(),
                to_upstream: Vec::new(),
                fins: 0b0101,
                idle_ms: 300_000,
                bytes_rx: 12,
                bytes_tx: u64::MAX,
                status: 101,
                flags: 0,
                minor: 1,
                age_ms: 7,
            }],
        },
        Message::TunnelsAck { batch: 3 },
    ]
}
