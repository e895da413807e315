//! Parent role: the live process handing its listeners to a new one, and rolling back if
//! that one dies before (or right after) it takes over.

use std::collections::BTreeSet;

use crate::machine::{Illegal, ParentLink, MAX_PENDING};
use crate::{
    Action, Event, FdBatch, ListenerId, Machine, Message, Millis, Peer, State, MAX_FDS_PER_BATCH,
    PROTOCOL_VERSION,
};

impl Machine {
    pub(crate) fn parent_step(
        &mut self,
        now: Millis,
        event: &Event,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        match event {
            Event::PeerConnected(Peer::Child(id)) => self.on_child_connected(now, *id, out),
            Event::MessageReceived(Peer::Child(id), msg) => {
                self.on_child_message(now, *id, msg, out)
            }
            Event::PeerClosed(Peer::Child(id)) => self.on_child_closed(now, *id, out),
            Event::MessageReceived(Peer::Parent, msg) => self.on_old_parent_message(msg, out),
            Event::PeerClosed(Peer::Parent) if self.parent != ParentLink::None => {
                self.parent = ParentLink::None;
                out.push(Action::Log("the previous generation has exited".into()));
                Ok(())
            }
            Event::ConnectionsDone if self.state == State::Draining => {
                self.finish_drain("all connections done", out);
                Ok(())
            }
            _ => Err(Illegal),
        }
    }

    fn on_child_connected(
        &mut self,
        now: Millis,
        id: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        if self.pending.contains_key(&id) || self.child == Some(id) {
            return Err(Illegal); // the driver reused a live connection id
        }
        let busy = match self.state {
            State::Serving if self.pending.len() >= MAX_PENDING => {
                "too many restart connections waiting for their Hello".to_string()
            }
            State::Serving => {
                let deadline = now.saturating_add(self.cfg.handshake_timeout_ms);
                self.pending.insert(id, deadline);
                return Ok(());
            }
            State::HandedOver => format!(
                "this process (epoch {}) has handed over; connect again to reach the new one",
                self.epoch
            ),
            State::Draining => "this process is draining".to_string(),
            _ => "another hot restart is in progress".to_string(),
        };
        out.push(Action::Refuse {
            peer: Peer::Child(id),
            reason: busy,
        });
        Ok(())
    }

    fn on_child_message(
        &mut self,
        now: Millis,
        id: u64,
        msg: &Message,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        if self.pending.remove(&id).is_some() {
            self.on_hello(now, id, msg, out);
            return Ok(());
        }
        if self.child != Some(id) {
            return Err(Illegal);
        }
        let peer = Peer::Child(id);
        match (self.state, msg) {
            (State::ChildConnected, Message::RequestListeners { addresses }) => {
                self.refresh_peer_deadline(now);
                self.plan_batches(addresses);
                self.send_batch(peer, out);
                self.state = State::PassingFds;
            }
            (State::PassingFds, Message::FdsAck { batch }) if *batch == self.next_batch => {
                self.refresh_peer_deadline(now);
                self.next_batch = self.next_batch.saturating_add(1);
                if (self.next_batch as usize) < self.batches.len() {
                    self.send_batch(peer, out);
                } else {
                    self.state = State::FdsTransferred;
                }
            }
            (State::FdsTransferred, Message::Listening) => self.hand_over(now, peer, out),
            (State::HandedOver, Message::DrainParent) => {
                out.push(Action::Log("child asked us to drain".into()));
                self.enter_drain(now, out);
            }
            (State::Draining, Message::DrainParent) => {
                out.push(Action::Log(
                    "child asked us to drain: already draining".into(),
                ));
            }
            (state, msg) => {
                out.push(Action::Log(format!(
                    "child {id} sent {} in state {state}: protocol violation, dropped",
                    msg.name()
                )));
                out.push(Action::DropPeer(peer));
                self.child_lost(now, out);
            }
        }
        Ok(())
    }

    /// First message of a pending connection: only a `Hello` of our version claims the
    /// handover; everything else costs that peer its connection and us a log line.
    fn on_hello(&mut self, now: Millis, id: u64, msg: &Message, out: &mut Vec<Action>) {
        let peer = Peer::Child(id);
        let Message::Hello {
            protocol_version,
            binary_version,
            pid,
        } = msg
        else {
            out.push(Action::Log(format!(
                "restart peer {id} sent {} before Hello; dropped",
                msg.name()
            )));
            out.push(Action::DropPeer(peer));
            return;
        };
        if *protocol_version != PROTOCOL_VERSION {
            out.push(Action::Refuse {
                peer,
                reason: format!(
                    "protocol version mismatch: child speaks {protocol_version}, \
                     parent (epoch {}) speaks {PROTOCOL_VERSION}",
                    self.epoch
                ),
            });
            return;
        }
        out.push(Action::Log(format!(
            "child pid {pid} (binary {binary_version}) connected for hot restart"
        )));
        self.child = Some(id);
        self.refresh_peer_deadline(now);
        self.state = State::ChildConnected;
        out.push(Action::Send(
            peer,
            Message::HelloAck {
                protocol_version: PROTOCOL_VERSION,
                binary_version: self.cfg.binary_version.clone(),
                pid: self.cfg.pid,
                epoch: self.epoch,
            },
        ));
        out.push(Action::SendStats(peer));
        for (other, _) in std::mem::take(&mut self.pending) {
            out.push(Action::Refuse {
                peer: Peer::Child(other),
                reason: "another hot restart is in progress".into(),
            });
        }
    }

    fn on_child_closed(
        &mut self,
        now: Millis,
        id: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        if self.pending.remove(&id).is_some() {
            out.push(Action::Log(format!("restart peer {id} left before Hello")));
            return Ok(());
        }
        if self.child != Some(id) {
            return Err(Illegal);
        }
        out.push(Action::Log(format!(
            "child {id} closed the restart socket in state {}",
            self.state
        )));
        self.child_lost(now, out);
        Ok(())
    }

    /// The child link is gone (closed, dropped or timed out): roll back as the state allows.
    pub(crate) fn child_lost(&mut self, now: Millis, out: &mut Vec<Action>) {
        self.child = None;
        self.peer_deadline = None;
        self.stats_due = None;
        self.batches.clear();
        self.next_batch = 0;
        self.transferred.clear();
        match self.state {
            State::ChildConnected | State::PassingFds | State::FdsTransferred => {
                // We never stopped accepting, so there is nothing to resume.
                self.state = State::Serving;
                if self.drain_requested {
                    out.push(Action::Log(
                        "handover failed; draining as SIGTERM asked".into(),
                    ));
                    self.enter_drain(now, out);
                } else {
                    out.push(Action::Log(
                        "handover failed before takeover; still serving".into(),
                    ));
                }
            }
            State::HandedOver => {
                let ids: Vec<ListenerId> = self.held.iter().copied().collect();
                out.push(Action::Log(format!(
                    "child epoch {} died after takeover; resuming accepting on {} listeners",
                    self.epoch.saturating_add(1),
                    ids.len()
                )));
                out.push(Action::ResumeAccepting(ids));
                self.state = State::Serving;
            }
            _ => {}
        }
    }

    /// Split the listeners the child asked for (matched by address) into SCM_RIGHTS batches.
    fn plan_batches(&mut self, addresses: &[String]) {
        let wanted: BTreeSet<&str> = addresses.iter().map(String::as_str).collect();
        let matched: Vec<(ListenerId, String)> = self
            .cfg
            .listeners
            .iter()
            .filter(|l| self.held.contains(&l.id) && wanted.contains(l.address.as_str()))
            .map(|l| (l.id, l.address.clone()))
            .collect();
        self.transferred = matched.iter().map(|(id, _)| *id).collect();
        self.batches = matched
            .chunks(MAX_FDS_PER_BATCH)
            .map(|chunk| chunk.iter().cloned().unzip())
            .collect();
        if self.batches.is_empty() {
            self.batches.push((Vec::new(), Vec::new())); // one empty, final batch
        }
        self.next_batch = 0;
    }

    fn send_batch(&mut self, peer: Peer, out: &mut Vec<Action>) {
        let index = self.next_batch;
        let Some((ids, addresses)) = self.batches.get(index as usize) else {
            return;
        };
        out.push(Action::PassFds {
            peer,
            batch: FdBatch {
                index,
                last: index as usize + 1 == self.batches.len(),
                addresses: addresses.clone(),
            },
            ids: ids.clone(),
        });
    }

    /// The child is ready: stop accepting (keep the fds for a rollback), close the listeners
    /// its config dropped, and tell it to start.
    fn hand_over(&mut self, now: Millis, peer: Peer, out: &mut Vec<Action>) {
        let all: Vec<ListenerId> = self.held.iter().copied().collect();
        out.push(Action::StopAccepting(all));
        let dropped: Vec<ListenerId> = self.held.difference(&self.transferred).copied().collect();
        if !dropped.is_empty() {
            out.push(Action::Log(format!(
                "closing {} listeners the new config dropped",
                dropped.len()
            )));
            out.push(Action::CloseListeners(dropped));
        }
        self.held = std::mem::take(&mut self.transferred);
        out.push(Action::Send(peer, Message::AcceptingStopped));
        self.state = State::HandedOver;
        self.peer_deadline = None;
        self.stats_due = Some(now.saturating_add(self.cfg.stats_interval_ms));
        if self.drain_requested {
            self.enter_drain(now, out);
        }
    }

    /// After takeover the process we replaced only sends stats; anything else drops it.
    fn on_old_parent_message(
        &mut self,
        msg: &Message,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        if self.parent == ParentLink::None {
            return Err(Illegal);
        }
        match msg {
            // The driver must route fd-carrying frames through `Event::FdsReceived`.
            Message::ListenerFds(_) => return Err(Illegal),
            Message::Stats(stats) => out.push(Action::MergeStats(stats.clone())),
            other => {
                out.push(Action::Log(format!(
                    "previous generation sent {} after takeover; link dropped",
                    other.name()
                )));
                out.push(Action::DropPeer(Peer::Parent));
                self.parent = ParentLink::None;
            }
        }
        Ok(())
    }
}
