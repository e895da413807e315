//! The [`Machine`]: shared data, the atomic `handle` entry point, timers and drain/exit.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Action, Config, Error, Event, ListenerId, Millis, Peer, State};

/// How many restart-socket connections may wait for their `Hello` at once; more are refused
/// so a flood of silent peers cannot grow our memory.
pub(crate) const MAX_PENDING: usize = 8;

/// Marker for "this event is illegal here"; `handle` turns it into [`Error::IllegalEvent`].
pub(crate) struct Illegal;

/// The link to the process we took over from, which may still be serving or draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentLink {
    None,
    Connected,
    /// `DrainParent` was sent (`--parent-shutdown-time-s`); not sent twice.
    DrainSent,
}

/// One process's hot-restart state. See the crate docs for how a driver uses it.
#[derive(Debug, Clone)]
pub struct Machine {
    pub(crate) cfg: Config,
    pub(crate) state: State,
    pub(crate) epoch: u32,
    /// Listeners whose fds this process holds as the live (or draining) owner.
    pub(crate) held: BTreeSet<ListenerId>,
    pub(crate) parent: ParentLink,
    /// Parent role: the child a handover is under way with (or that took over).
    pub(crate) child: Option<u64>,
    /// Parent role: connections that have not said `Hello` yet, with their deadline.
    pub(crate) pending: BTreeMap<u64, Millis>,
    /// Handshake timeout of the peer a handover waits on (child or parent).
    pub(crate) peer_deadline: Option<Millis>,
    pub(crate) drain_deadline: Option<Millis>,
    pub(crate) stats_due: Option<Millis>,
    pub(crate) parent_shutdown_at: Option<Millis>,
    /// SIGTERM arrived mid-handover: drain as soon as it completes or fails.
    pub(crate) drain_requested: bool,
    /// Parent role: the planned fd batches (ids and addresses in the same order).
    pub(crate) batches: Vec<(Vec<ListenerId>, Vec<String>)>,
    /// Next batch to acknowledge (parent) or receive (child).
    pub(crate) next_batch: u32,
    /// Parent role: listeners handed to the child. Child role: listeners received.
    pub(crate) transferred: BTreeSet<ListenerId>,
    armed: Option<Millis>,
}

impl Machine {
    /// A process at start-up, in [`State::Init`], about to probe the restart socket.
    pub fn new(cfg: Config) -> Self {
        Machine {
            cfg,
            state: State::Init,
            epoch: 0,
            held: BTreeSet::new(),
            parent: ParentLink::None,
            child: None,
            pending: BTreeMap::new(),
            peer_deadline: None,
            drain_deadline: None,
            stats_due: None,
            parent_shutdown_at: None,
            drain_requested: false,
            batches: Vec::new(),
            next_batch: 0,
            transferred: BTreeSet::new(),
            armed: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// 0 for a fresh start, parent's + 1 after a handover; meaningful from `Connected` on.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The child connection a handover is under way with, if any.
    pub fn child(&self) -> Option<Peer> {
        self.child.map(Peer::Child)
    }

    /// Whether the process we took over from is still connected.
    pub fn has_parent(&self) -> bool {
        self.parent != ParentLink::None
    }

    /// The earliest pending deadline; deliver [`Event::Tick`] then.
    pub fn next_deadline(&self) -> Option<Millis> {
        [
            self.peer_deadline,
            self.drain_deadline,
            self.stats_due,
            self.parent_shutdown_at,
            self.pending.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feed one event; get the actions to execute, in order.
    ///
    /// Atomic: the step runs on a copy that replaces `self` only if the event is legal, so
    /// an illegal event leaves the machine exactly as it was. Events are rare (a handful per
    /// restart), so the copy costs nothing that matters.
    pub fn handle(&mut self, now: Millis, event: Event) -> Result<Vec<Action>, Error> {
        let mut next = self.clone();
        let mut out = Vec::new();
        let legal = self.state != State::Exited && next.step(now, &event, &mut out).is_ok();
        if !legal {
            return Err(Error::IllegalEvent {
                state: self.state,
                event,
            });
        }
        if next.state != self.state {
            out.insert(
                0,
                Action::Transition {
                    from: self.state,
                    to: next.state,
                },
            );
        }
        let deadline = next.next_deadline();
        if deadline != next.armed {
            if let Some(at) = deadline {
                out.push(Action::ArmTimer(at));
            }
            next.armed = deadline;
        }
        *self = next;
        Ok(out)
    }

    fn step(&mut self, now: Millis, event: &Event, out: &mut Vec<Action>) -> Result<(), Illegal> {
        match event {
            Event::Tick => {
                self.on_tick(now, out);
                Ok(())
            }
            Event::SigTerm => {
                self.on_sigterm(now, out);
                Ok(())
            }
            _ if self.state.is_child_role() => self.child_step(now, event, out),
            _ => self.parent_step(now, event, out),
        }
    }

    fn on_sigterm(&mut self, now: Millis, out: &mut Vec<Action>) {
        match self.state {
            s if s.is_child_role() => self.exit(
                1,
                "SIGTERM before takeover; the old process keeps serving",
                out,
            ),
            State::Serving | State::HandedOver => self.enter_drain(now, out),
            State::ChildConnected | State::PassingFds | State::FdsTransferred => {
                self.drain_requested = true;
                out.push(Action::Log(
                    "SIGTERM during a handover: draining once it completes or fails".into(),
                ));
            }
            _ => out.push(Action::Log(
                "SIGTERM while draining: already draining".into(),
            )),
        }
    }

    fn on_tick(&mut self, now: Millis, out: &mut Vec<Action>) {
        let due = |d: Option<Millis>| d.is_some_and(|at| at <= now);
        let stalled: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in stalled {
            self.pending.remove(&id);
            out.push(Action::Log(format!(
                "restart peer {id} sent no Hello within {} ms; dropped",
                self.cfg.handshake_timeout_ms
            )));
            out.push(Action::DropPeer(Peer::Child(id)));
        }
        if due(self.peer_deadline) {
            if self.state.is_child_role() {
                let reason = format!(
                    "parent silent for {} ms during the handover",
                    self.cfg.handshake_timeout_ms
                );
                return self.exit(1, &reason, out);
            }
            if let Some(id) = self.child {
                out.push(Action::Log(format!(
                    "child {id} stalled for {} ms; dropped",
                    self.cfg.handshake_timeout_ms
                )));
                out.push(Action::DropPeer(Peer::Child(id)));
                self.child_lost(now, out);
            }
        }
        if due(self.drain_deadline) {
            return self.finish_drain("drain deadline reached", out);
        }
        if due(self.stats_due) {
            if let Some(id) = self.child {
                out.push(Action::SendStats(Peer::Child(id)));
            }
            self.stats_due = Some(now.saturating_add(self.cfg.stats_interval_ms));
        }
        if due(self.parent_shutdown_at) {
            self.parent_shutdown_at = None;
            if self.parent == ParentLink::Connected {
                self.parent = ParentLink::DrainSent;
                out.push(Action::Send(Peer::Parent, crate::Message::DrainParent));
            }
        }
    }

    /// Stop serving new work. Listeners we own are closed; copies of listeners a child owns
    /// are only dropped (closing our fd never touches the shared accept queue).
    pub(crate) fn enter_drain(&mut self, now: Millis, out: &mut Vec<Action>) {
        let ids: Vec<ListenerId> = self.held.iter().copied().collect();
        if !ids.is_empty() {
            if self.state == State::HandedOver {
                out.push(Action::DropListenerCopies(ids));
            } else {
                out.push(Action::StopAccepting(ids.clone()));
                out.push(Action::CloseListeners(ids));
            }
        }
        self.held.clear();
        for (id, _) in std::mem::take(&mut self.pending) {
            out.push(Action::Refuse {
                peer: Peer::Child(id),
                reason: "this process is draining".into(),
            });
        }
        let deadline = now.saturating_add(self.cfg.drain_time_ms);
        self.drain_deadline = Some(deadline);
        self.drain_requested = false;
        self.peer_deadline = None;
        self.state = State::Draining;
        out.push(Action::StartDrain { deadline });
    }

    /// Leave after draining; a child still connected gets our final stats first.
    pub(crate) fn finish_drain(&mut self, reason: &str, out: &mut Vec<Action>) {
        if let Some(id) = self.child {
            out.push(Action::SendStats(Peer::Child(id)));
        }
        self.exit(0, reason, out);
    }

    pub(crate) fn exit(&mut self, code: i32, reason: &str, out: &mut Vec<Action>) {
        self.state = State::Exited;
        self.peer_deadline = None;
        self.drain_deadline = None;
        self.stats_due = None;
        self.parent_shutdown_at = None;
        self.pending.clear();
        out.push(Action::Exit {
            code,
            reason: reason.to_string(),
        });
    }

    pub(crate) fn refresh_peer_deadline(&mut self, now: Millis) {
        self.peer_deadline = Some(now.saturating_add(self.cfg.handshake_timeout_ms));
    }

    pub(crate) fn all_ids(&self) -> Vec<ListenerId> {
        self.cfg.listeners.iter().map(|l| l.id).collect()
    }
}

impl State {
    /// States of a new process that has not taken over yet.
    pub fn is_child_role(self) -> bool {
        matches!(
            self,
            State::Init
                | State::Connecting
                | State::Connected
                | State::FdsReceived
                | State::Listening
        )
    }
}
