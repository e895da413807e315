//! Child role: a new process finding its parent, taking its listeners, and becoming live.
//!
//! The child starts accepting only on the parent's explicit `AcceptingStopped`, so two
//! processes never accept on one listener at once. The price is a short window where
//! nobody accepts; connections wait in the shared backlog meanwhile, so none is lost.

use crate::machine::{Illegal, ParentLink};
use crate::{
    Action, Event, FdBatch, ListenerId, Machine, Message, Millis, Peer, State, PROTOCOL_VERSION,
};

impl Machine {
    pub(crate) fn child_step(
        &mut self,
        now: Millis,
        event: &Event,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        let linked = self.parent != ParentLink::None;
        match (self.state, event) {
            (State::Init, Event::NoParent) => {
                out.push(Action::Log("no parent at the restart path; epoch 0".into()));
                self.epoch = 0;
                out.push(Action::BindFresh(self.all_ids()));
                self.state = State::FdsReceived;
            }
            (State::Init, Event::PeerConnected(Peer::Parent)) => {
                self.parent = ParentLink::Connected;
                self.refresh_peer_deadline(now);
                out.push(Action::Send(
                    Peer::Parent,
                    Message::Hello {
                        protocol_version: PROTOCOL_VERSION,
                        binary_version: self.cfg.binary_version.clone(),
                        pid: self.cfg.pid,
                    },
                ));
                self.state = State::Connecting;
            }
            (State::FdsReceived, Event::ListenersReady) => self.on_ready(now, out),
            (State::Connected, Event::FdsReceived { batch, fd_count }) if linked => {
                self.on_batch(now, batch, *fd_count, out)
            }
            (_, Event::MessageReceived(Peer::Parent, msg)) if linked => {
                self.on_parent_message(now, msg, out)?
            }
            (_, Event::PeerClosed(Peer::Parent)) if linked => self.exit(
                1,
                "parent closed the restart socket before the handover completed; \
                 the old process keeps serving (if it died, start again)",
                out,
            ),
            _ => return Err(Illegal),
        }
        Ok(())
    }

    fn on_parent_message(
        &mut self,
        now: Millis,
        msg: &Message,
        out: &mut Vec<Action>,
    ) -> Result<(), Illegal> {
        match (self.state, msg) {
            // The driver must route fd-carrying frames through `Event::FdsReceived`.
            (_, Message::ListenerFds(_)) => return Err(Illegal),
            (State::Connecting, Message::HelloAck { .. }) => self.on_hello_ack(now, msg, out),
            (_, Message::Refuse { reason }) => {
                let reason = format!("parent refused the hot restart: {reason}");
                self.exit(1, &reason, out);
            }
            (State::Connected | State::FdsReceived | State::Listening, Message::Stats(stats)) => {
                out.push(Action::MergeStats(stats.clone()));
            }
            (State::Listening, Message::AcceptingStopped) => self.take_over(now, out),
            (state, msg) => {
                let reason = format!("parent sent {} in state {state}", msg.name());
                self.exit(1, &reason, out);
            }
        }
        Ok(())
    }

    fn on_hello_ack(&mut self, now: Millis, msg: &Message, out: &mut Vec<Action>) {
        let Message::HelloAck {
            protocol_version,
            binary_version,
            pid,
            epoch,
        } = msg
        else {
            return;
        };
        if *protocol_version != PROTOCOL_VERSION {
            let reason = format!(
                "protocol version mismatch: parent speaks {protocol_version}, we speak {PROTOCOL_VERSION}"
            );
            return self.exit(1, &reason, out);
        }
        let Some(ours) = epoch.checked_add(1) else {
            return self.exit(1, "parent epoch is at its maximum", out);
        };
        self.epoch = ours;
        out.push(Action::Log(format!(
            "parent pid {pid} epoch {epoch} (binary {binary_version}) accepted us as epoch {ours}"
        )));
        self.refresh_peer_deadline(now);
        self.next_batch = 0;
        self.transferred.clear();
        let addresses = self
            .cfg
            .listeners
            .iter()
            .map(|l| l.address.clone())
            .collect();
        out.push(Action::Send(
            Peer::Parent,
            Message::RequestListeners { addresses },
        ));
        self.state = State::Connected;
    }

    /// Keep one batch of fds, matched to our listeners by address, and acknowledge it.
    fn on_batch(&mut self, now: Millis, batch: &FdBatch, fd_count: usize, out: &mut Vec<Action>) {
        if batch.index != self.next_batch {
            let reason = format!(
                "parent sent fd batch {} when {} was due",
                batch.index, self.next_batch
            );
            return self.exit(1, &reason, out);
        }
        if fd_count != batch.addresses.len() {
            let reason = format!(
                "parent sent {fd_count} fds for {} addresses in batch {}",
                batch.addresses.len(),
                batch.index
            );
            return self.exit(1, &reason, out);
        }
        let ids: Vec<Option<ListenerId>> = batch
            .addresses
            .iter()
            .map(|addr| {
                let id = self
                    .cfg
                    .listeners
                    .iter()
                    .find(|l| &l.address == addr && !self.transferred.contains(&l.id))
                    .map(|l| l.id)?;
                self.transferred.insert(id);
                Some(id)
            })
            .collect();
        out.push(Action::AdoptFds {
            batch: batch.index,
            ids,
        });
        out.push(Action::Send(
            Peer::Parent,
            Message::FdsAck { batch: batch.index },
        ));
        self.next_batch = self.next_batch.saturating_add(1);
        self.refresh_peer_deadline(now);
        if batch.last {
            let fresh: Vec<ListenerId> = self
                .all_ids()
                .into_iter()
                .filter(|id| !self.transferred.contains(id))
                .collect();
            if !fresh.is_empty() {
                out.push(Action::BindFresh(fresh));
            }
            // Now we wait on our own driver; the parent times us out if we take too long.
            self.peer_deadline = None;
            self.state = State::FdsReceived;
        }
    }

    /// Fully ready: a fresh process starts at once; a child asks its parent to stop first.
    fn on_ready(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.parent == ParentLink::None {
            self.start_serving(out);
        } else {
            self.refresh_peer_deadline(now);
            out.push(Action::Send(Peer::Parent, Message::Listening));
            self.state = State::Listening;
        }
    }

    fn take_over(&mut self, now: Millis, out: &mut Vec<Action>) {
        out.push(Action::Log(format!(
            "took over from epoch {}",
            self.epoch.saturating_sub(1)
        )));
        self.peer_deadline = None;
        self.parent_shutdown_at = self.cfg.parent_shutdown_ms.map(|ms| now.saturating_add(ms));
        self.start_serving(out);
    }

    fn start_serving(&mut self, out: &mut Vec<Action>) {
        self.transferred.clear();
        self.next_batch = 0;
        let ids = self.all_ids();
        self.held = ids.iter().copied().collect();
        out.push(Action::StartAccepting(ids));
        self.state = State::Serving;
    }
}
