//! A faithful two-process driver model: delivers each machine's `Send`s to the other, models
//! which process holds and accepts on each listener address, and checks invariants.

use std::collections::{BTreeSet, VecDeque};

use baton_statemachine::*;

use super::{child_cfg, parent_cfg};

pub const RESTART: &str = "unix:/tmp/x.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    P,
    C,
}

impl Who {
    fn other(self) -> Who {
        match self {
            Who::P => Who::C,
            Who::C => Who::P,
        }
    }
}

#[derive(Debug)]
pub struct Proc {
    pub m: Machine,
    pub holding: BTreeSet<String>,
    pub accepting: BTreeSet<String>,
    pub alive: bool,
    pub exit_code: Option<i32>,
    /// Events the "kernel" has queued for this process from the restart link.
    pub inbox: VecDeque<Event>,
}

impl Proc {
    fn new(cfg: Config) -> Self {
        Proc {
            m: Machine::new(cfg),
            holding: BTreeSet::new(),
            accepting: BTreeSet::new(),
            alive: true,
            exit_code: None,
            inbox: VecDeque::new(),
        }
    }

    fn addr(&self, id: ListenerId) -> String {
        self.m
            .config()
            .listeners
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.address.clone())
            .unwrap_or_else(|| panic!("unknown listener {id:?}"))
    }
}

pub struct Sim {
    pub now: u64,
    pub p: Proc,
    pub c: Proc,
    /// The P (as parent, child id 1) <-> C (as child) restart link.
    pub link_up: bool,
    /// Which process a third, hostile peer (child id 2) is connected to.
    pub intruder_at: Option<Who>,
}

impl Sim {
    /// P started fresh (epoch 0, serving); C not started yet.
    pub fn new() -> Self {
        let mut s = Sim {
            now: 0,
            p: Proc::new(parent_cfg()),
            c: Proc::new(child_cfg()),
            link_up: false,
            intruder_at: None,
        };
        s.event(Who::P, Event::NoParent).expect("fresh start");
        s.event(Who::P, Event::ListenersReady).expect("ready");
        s
    }

    pub fn proc(&mut self, who: Who) -> &mut Proc {
        match who {
            Who::P => &mut self.p,
            Who::C => &mut self.c,
        }
    }

    /// Deliver one event; on success execute the actions like a real driver would.
    /// On error, check the machine did not change.
    pub fn event(&mut self, who: Who, ev: Event) -> Result<(), Error> {
        let now = self.now;
        let pr = self.proc(who);
        let before = format!("{:?}", pr.m);
        let was_exited = pr.m.state() == State::Exited;
        match pr.m.handle(now, ev) {
            Err(e) => {
                assert_eq!(
                    before,
                    format!("{:?}", self.proc(who).m),
                    "illegal event changed state"
                );
                Err(e)
            }
            Ok(actions) => {
                assert!(!was_exited, "Exited must be final");
                let state = self.proc(who).m.state();
                for a in actions {
                    if let Action::Transition { to, .. } = a {
                        assert_eq!(to, state);
                    }
                    self.apply(who, a);
                }
                self.check();
                Ok(())
            }
        }
    }

    fn apply(&mut self, who: Who, a: Action) {
        let other = who.other();
        match a {
            Action::Send(peer, msg) => self.send(who, peer, msg),
            Action::SendStats(peer) => {
                self.send(who, peer, Message::Stats(StatsSnapshot::default()))
            }
            Action::PassFds { peer, batch, ids } => {
                let pr = self.proc(who);
                let addrs: Vec<String> = ids.iter().map(|id| pr.addr(*id)).collect();
                assert_eq!(addrs, batch.addresses);
                for a in &addrs {
                    assert!(pr.holding.contains(a), "passing an fd we do not hold");
                }
                assert!(batch.addresses.len() <= MAX_FDS_PER_BATCH);
                if peer == Peer::Child(1) && who == Who::P && self.link_up {
                    let fd_count = ids.len();
                    self.c
                        .inbox
                        .push_back(Event::FdsReceived { batch, fd_count });
                }
            }
            Action::AdoptFds { ids, .. } => {
                let pr = self.proc(who);
                for id in ids.into_iter().flatten() {
                    let a = pr.addr(id);
                    pr.holding.insert(a);
                }
            }
            Action::BindFresh(ids) => {
                for id in ids {
                    let a = self.proc(who).addr(id);
                    let o = self.proc(other);
                    assert!(
                        !(o.alive && o.holding.contains(&a)),
                        "EADDRINUSE binding {a}"
                    );
                    self.proc(who).holding.insert(a);
                }
            }
            Action::StartAccepting(ids) | Action::ResumeAccepting(ids) => {
                let pr = self.proc(who);
                for id in ids {
                    let a = pr.addr(id);
                    assert!(pr.holding.contains(&a), "accepting on {a} without the fd");
                    pr.accepting.insert(a);
                }
            }
            Action::StopAccepting(ids) => {
                let pr = self.proc(who);
                for id in ids {
                    let a = pr.addr(id);
                    pr.accepting.remove(&a);
                }
            }
            Action::CloseListeners(ids) | Action::DropListenerCopies(ids) => {
                let pr = self.proc(who);
                for id in ids {
                    let a = pr.addr(id);
                    assert!(
                        !pr.accepting.contains(&a),
                        "closing {a} while accepting on it"
                    );
                    pr.holding.remove(&a);
                }
            }
            Action::DropPeer(peer) => self.close(who, peer),
            Action::Refuse { peer, reason } => {
                self.send(who, peer, Message::Refuse { reason });
                self.close(who, peer);
            }
            Action::Exit { code, .. } => {
                self.kill(who);
                self.proc(who).exit_code = Some(code);
            }
            Action::Transition { .. }
            | Action::Log(_)
            | Action::MergeStats(_)
            | Action::StartDrain { .. }
            | Action::ArmTimer(_) => {}
        }
    }

    fn send(&mut self, who: Who, peer: Peer, msg: Message) {
        match (who, peer) {
            (Who::P, Peer::Child(1)) if self.link_up => self
                .c
                .inbox
                .push_back(Event::MessageReceived(Peer::Parent, msg)),
            (Who::C, Peer::Parent) if self.link_up => self
                .p
                .inbox
                .push_back(Event::MessageReceived(Peer::Child(1), msg)),
            _ => {} // the intruder reads nothing; a closed link drops it
        }
    }

    /// `who` closes its end of the link to `peer`: the other end sees EOF after what is queued.
    fn close(&mut self, who: Who, peer: Peer) {
        match (who, peer) {
            (_, Peer::Child(2)) => self.intruder_at = None,
            (Who::P, Peer::Child(1)) | (Who::C, Peer::Parent) => self.close_link(who),
            _ => panic!("{who:?} closed unknown peer {peer:?}"),
        }
    }

    fn close_link(&mut self, who: Who) {
        // Whoever closes its end never reads from it again, even if the peer closed first.
        self.proc(who).inbox.clear();
        if !self.link_up {
            return;
        }
        self.link_up = false;
        let (o, ev) = match who {
            Who::P => (&mut self.c, Event::PeerClosed(Peer::Parent)),
            Who::C => (&mut self.p, Event::PeerClosed(Peer::Child(1))),
        };
        if o.alive {
            o.inbox.push_back(ev);
        }
    }

    /// The process is gone (exit or SIGKILL): the kernel closes its fds and its links.
    pub fn kill(&mut self, who: Who) {
        let pr = self.proc(who);
        if !pr.alive {
            return;
        }
        pr.alive = false;
        pr.holding.clear();
        pr.accepting.clear();
        pr.inbox.clear();
        self.close_link(who);
        if self.intruder_at == Some(who) {
            self.intruder_at = None;
        }
    }

    /// C starts: connect to whoever accepts on the restart socket, or start fresh.
    pub fn start_child(&mut self) {
        if self.c.m.state() != State::Init || !self.c.alive {
            return;
        }
        if self.p.alive && self.p.accepting.contains(RESTART) {
            self.link_up = true;
            self.p.inbox.push_back(Event::PeerConnected(Peer::Child(1)));
            self.event(Who::C, Event::PeerConnected(Peer::Parent))
                .expect("connect");
        } else if !(self.p.alive && self.p.holding.contains(RESTART)) {
            self.event(Who::C, Event::NoParent).expect("no parent");
        } // else: it would wait in the backlog; try later
    }

    /// Pop and deliver one queued link event; a faithful driver never delivers an illegal one.
    pub fn deliver(&mut self, who: Who) {
        if !self.proc(who).alive {
            return;
        }
        if let Some(ev) = self.proc(who).inbox.pop_front() {
            let state = self.proc(who).m.state();
            if let Err(e) = self.event(who, ev.clone()) {
                panic!("faithful delivery {ev:?} to {who:?} in {state} failed: {e}");
            }
        }
    }

    pub fn quiescent(&self) -> bool {
        self.p.inbox.is_empty() && self.c.inbox.is_empty()
    }

    pub fn run_until_quiet(&mut self) {
        for _ in 0..1000 {
            if self.quiescent() {
                return;
            }
            self.deliver(Who::P);
            self.deliver(Who::C);
        }
        panic!("no quiescence");
    }

    /// Start C and run the whole handover to the end: P `HandedOver`, C `Serving`.
    pub fn hand_over(&mut self) {
        self.start_child();
        self.run_until_quiet();
        self.event(Who::C, Event::ListenersReady).expect("ready");
        self.run_until_quiet();
    }

    /// Move the clock, tick both machines, deliver what that sent.
    pub fn advance_to(&mut self, now: u64) {
        self.now = now;
        self.tick();
        self.run_until_quiet();
    }

    /// Tick both live machines at the current time.
    pub fn tick(&mut self) {
        for who in [Who::P, Who::C] {
            if self.proc(who).alive && self.proc(who).m.state() != State::Init {
                self.event(who, Event::Tick).expect("tick is always legal");
            }
        }
    }

    /// Invariants that hold after every step.
    pub fn check(&self) {
        for a in self.p.accepting.iter().chain(self.c.accepting.iter()) {
            let n = [&self.p, &self.c]
                .iter()
                .filter(|pr| pr.alive && pr.accepting.contains(a))
                .count();
            assert!(n <= 1, "{a} accepted on by {n} processes");
        }
        for pr in [&self.p, &self.c] {
            assert!(pr.accepting.is_subset(&pr.holding));
            if !pr.alive {
                assert!(pr.accepting.is_empty());
            }
        }
    }

    /// Invariants that hold once no message is in flight.
    pub fn check_quiescent(&self) {
        use State::*;
        for pr in [&self.p, &self.c] {
            if !pr.alive {
                continue;
            }
            match pr.m.state() {
                // The live owner accepts on everything it holds.
                Serving | ChildConnected | PassingFds | FdsTransferred => {
                    assert_eq!(pr.accepting, pr.holding, "live owner in {}", pr.m.state())
                }
                // A process that handed over accepts nothing, and its child is alive and
                // took over (or the rollback would have resumed us).
                HandedOver => {
                    assert!(pr.accepting.is_empty());
                    let c = self.c.m.state();
                    assert!(self.c.alive && !c.is_child_role() && c != Exited);
                }
                _ => assert!(pr.accepting.is_empty(), "{} accepts", pr.m.state()),
            }
        }
    }
}
