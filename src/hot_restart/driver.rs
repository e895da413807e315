//! Feeds restart-socket, signal and timer events to the pure state machine and carries out the
//! actions it returns against the real listeners, sessions and peers. Every decision lives in
//! `baton-statemachine`; this file only does I/O.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use baton_statemachine::{
    Action, Event, ListenerId, Message, MovedConn, Peer, State, StatsSnapshot, MAX_FDS_PER_BATCH,
};
use mio::net::{TcpListener, UnixListener, UnixStream};
use mio::Interest;

use super::channel::{check_peer_uid, Conn, Read};
use super::{restart_address, tcp_address, HotRestart, PARENT_KEY};
use crate::reactor::{TimerKey, Tok};
use crate::server::{bind_listener, Proxy};

fn peer_key(p: Peer) -> u64 {
    match p {
        Peer::Parent => PARENT_KEY,
        Peer::Child(id) => id,
    }
}

fn key_peer(k: u64) -> Peer {
    if k == PARENT_KEY {
        Peer::Parent
    } else {
        Peer::Child(k)
    }
}

impl Proxy {
    fn hr(&mut self) -> &mut HotRestart {
        &mut self.restart
    }

    /// Milliseconds since the machine's time origin.
    fn hr_now(&self) -> u64 {
        self.ctx
            .now
            .saturating_duration_since(self.restart.origin)
            .as_millis() as u64
    }

    /// Delivers one event and executes the resulting actions. Errors mean a driver bug and
    /// change nothing (the machine guarantees it); they are logged, never fatal.
    pub(crate) fn hr_event(&mut self, ev: Event) -> Result<(), String> {
        let now = self.hr_now();
        let actions = match self.restart.machine.handle(now, ev) {
            Ok(a) => a,
            Err(e) => {
                log::error!("hot restart: {e}");
                return Ok(());
            }
        };
        for a in actions {
            self.hr_exec(a)?;
        }
        self.hr_check_progress()
    }

    /// Events the driver derives from the process's own state: readiness and drain end.
    pub(crate) fn hr_check_progress(&mut self) -> Result<(), String> {
        let st = self.restart.machine.state();
        if st == State::FdsReceived && self.dns_ready && !self.restart.ready_sent {
            self.restart.ready_sent = true;
            return self.hr_event(Event::ListenersReady);
        }
        if st == State::Draining && self.sessions.is_empty() && !self.restart.done_sent {
            self.restart.done_sent = true;
            return self.hr_event(Event::ConnectionsDone);
        }
        Ok(())
    }

    fn hr_log(&self, msg: &str) {
        log::info!(
            "hot restart: pid={} epoch={} {msg}",
            std::process::id(),
            self.restart.machine.epoch()
        );
    }

    fn hr_exec(&mut self, a: Action) -> Result<(), String> {
        match a {
            Action::Transition { from, to } => {
                self.hr_log(&format!("state {from} -> {to}"));
                self.ctx.epoch = self.restart.machine.epoch();
            }
            Action::Log(m) => self.hr_log(&m),
            Action::Send(peer, msg) => self.hr_send(peer, &msg, &[]),
            Action::PassFds { peer, batch, ids } => {
                let fds: Vec<RawFd> = ids.iter().filter_map(|&id| self.listener_fd(id)).collect();
                self.hr_send(peer, &Message::ListenerFds(batch), &fds);
            }
            Action::AdoptFds { ids, .. } => self.hr_adopt(&ids)?,
            Action::BindFresh(ids) => {
                for id in ids {
                    self.bind_fresh(id)?;
                }
            }
            Action::StartAccepting(ids) | Action::ResumeAccepting(ids) => {
                for id in ids {
                    self.set_accepting(id, true);
                }
                if !self.ctx.draining {
                    self.ctx.stats.set_state(crate::stats::ServerState::Live);
                }
                self.log_listening();
            }
            Action::StopAccepting(ids) => {
                for id in ids {
                    self.set_accepting(id, false);
                }
            }
            Action::CloseListeners(ids) => {
                // While our parent's link is up it may still hold the restart socket (it is
                // HandedOver and resumes if we go): the path is then not ours to remove. At
                // worst a stale socket file stays, which the next start clears.
                let only_owner = !self.restart.peers.contains_key(&PARENT_KEY);
                for id in ids {
                    self.drop_listener(id, only_owner);
                }
            }
            Action::DropListenerCopies(ids) => {
                for id in ids {
                    self.drop_listener(id, false);
                }
            }
            Action::SendStats(peer) => {
                let snap = self.stats_snapshot();
                self.hr_send(peer, &Message::Stats(snap), &[]);
            }
            Action::MergeStats(s) => self.stats_merge(s),
            Action::StartDrain { .. } => self.begin_drain(),
            Action::ArmTimer(at) => {
                let when = self.restart.origin + Duration::from_millis(at);
                self.ctx.timers.arm(when, TimerKey::Restart);
            }
            Action::DropPeer(p) => self.hr_close_peer(peer_key(p)),
            Action::Refuse { peer, reason } => {
                self.hr_log(&format!("refusing restart peer {peer:?}: {reason}"));
                self.hr_send(peer, &Message::Refuse { reason }, &[]);
                self.hr_close_peer(peer_key(peer));
            }
            Action::Exit { code, reason } => {
                self.hr_log(&format!("exit {code}: {reason}"));
                if code != 0 {
                    self.exit_reason = Some(reason);
                }
                self.exit_code = Some(code);
            }
        }
        Ok(())
    }

    fn hr_send(&mut self, peer: Peer, msg: &Message, fds: &[RawFd]) {
        let key = peer_key(peer);
        let Some(conn) = self.hr().peers.get_mut(&key) else {
            log::debug!(
                "hot restart: no connection for {peer:?}; {} dropped",
                msg.name()
            );
            return;
        };
        let r = conn
            .queue(msg, fds)
            .and_then(|()| conn.flush().map_err(|e| e.to_string()));
        if let Err(e) = r {
            log::warn!("hot restart: sending {} to {peer:?}: {e}", msg.name());
        }
    }

    fn hr_close_peer(&mut self, key: u64) {
        if let Some(mut c) = self.restart.peers.remove(&key) {
            let _ = c.flush();
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        if key == PARENT_KEY {
            // The parent is gone: its live gauges leave ours; its counters stay summed in.
            self.ctx.stats.store.clear_parent();
            self.ctx.stats.set_parent_connections(0);
        }
        if self.ctx.handoff && self.hr_child_key().is_none() {
            // The successor is gone: connections can only be closed at safe points now.
            log::warn!(
                "hot restart: successor gone; closing idle connections instead of moving them"
            );
            self.ctx.handoff = false;
            for id in self.sessions.keys() {
                self.drive(id);
            }
        }
    }

    /// The restart-socket key of the child that took over from us, while its link is up.
    pub(crate) fn hr_child_key(&self) -> Option<u64> {
        match self.restart.machine.child() {
            Some(Peer::Child(k)) if self.restart.peers.contains_key(&k) => Some(k),
            _ => None,
        }
    }

    /// Sends the sessions detached for handover to the successor, in frames of at most 253
    /// fds and ~512 KiB of pending bytes; our copies close once queued (the fds are dup'ed
    /// into the message, so the connections live on in the child).
    pub(crate) fn hr_send_connections(&mut self) {
        let moving = std::mem::take(&mut self.moving);
        let Some(key) = self.hr_child_key() else {
            for s in moving {
                s.close(&mut self.ctx);
            }
            return;
        };
        let mut batch: Vec<MovedConn> = Vec::new();
        let mut streams: Vec<mio::net::TcpStream> = Vec::new();
        let mut bytes = 0usize;
        let total = moving.len();
        for s in moving {
            let listener = tcp_address(self.ctx.listeners[s.listener()].address);
            let peer = s.peer().to_string();
            let (stream, pending) = s.into_moved(&mut self.ctx);
            // A frame holds at most MAX_FRAME_LEN: send what is batched before this
            // connection's bytes would overflow it (each is at most core::HANDOFF_MAX).
            if !batch.is_empty() && bytes + pending.len() > 512 * 1024 {
                self.hr_send_batch(key, &mut batch, &mut streams);
                bytes = 0;
            }
            bytes += pending.len();
            batch.push(MovedConn {
                listener,
                peer,
                pending,
            });
            streams.push(stream);
            if batch.len() == MAX_FDS_PER_BATCH || bytes > 512 * 1024 {
                self.hr_send_batch(key, &mut batch, &mut streams);
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.hr_send_batch(key, &mut batch, &mut streams);
        }
        log::debug!("hot restart: handed {total} connection(s) to the new process");
    }

    fn hr_send_batch(
        &mut self,
        key: u64,
        batch: &mut Vec<MovedConn>,
        streams: &mut Vec<mio::net::TcpStream>,
    ) {
        let fds: Vec<RawFd> = streams.iter().map(|s| s.as_raw_fd()).collect();
        let msg = Message::Connections(std::mem::take(batch));
        self.hr_send(Peer::Child(key), &msg, &fds);
        streams.clear();
    }

    /// Adopts connections our parent handed over: each fd becomes a session here.
    fn hr_adopt_connections(&mut self, conns: Vec<MovedConn>) {
        for c in conns {
            let Some(fd) = self
                .restart
                .peers
                .get_mut(&PARENT_KEY)
                .and_then(|p| p.fds.pop_front())
            else {
                log::warn!("hot restart: parent moved a connection without its fd");
                return;
            };
            let listener = self
                .ctx
                .listeners
                .iter()
                .position(|l| tcp_address(l.address) == c.listener);
            let Some(i) = listener else {
                log::info!("hot restart: moved connection from {} belongs to listener {} that this config lacks; closing it", c.peer, c.listener);
                continue;
            };
            let std_s = std::net::TcpStream::from(fd);
            if let Err(e) = std_s.set_nonblocking(true) {
                log::warn!("hot restart: moved connection: {e}");
                continue;
            }
            let peer = c
                .peer
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            self.adopt(mio::net::TcpStream::from_std(std_s), peer, i, &c.pending);
        }
    }

    /// Writes whatever is still queued for peers (moved connections, final stats) before the
    /// process exits; bounded, so a stuck peer cannot keep us alive.
    pub(crate) fn hr_flush_before_exit(&mut self) {
        if !self.moving.is_empty() {
            self.hr_send_connections();
        }
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let mut pending = false;
            for c in self.restart.peers.values_mut() {
                if c.flush().is_ok() && c.has_pending_output() {
                    pending = true;
                }
            }
            if !pending {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        log::warn!("hot restart: gave up flushing to a peer before exit");
    }

    fn hr_adopt(&mut self, ids: &[Option<ListenerId>]) -> Result<(), String> {
        for id in ids {
            let fd = self
                .hr()
                .peers
                .get_mut(&PARENT_KEY)
                .and_then(|c| c.fds.pop_front())
                .ok_or("parent sent fewer fds than it announced")?;
            if let Some(id) = id {
                self.install_fd(*id, fd)?;
            }
        }
        Ok(())
    }

    fn install_fd(&mut self, id: ListenerId, fd: OwnedFd) -> Result<(), String> {
        let i = id.0 as usize;
        if i < self.listeners.len() {
            let std_l = std::net::TcpListener::from(fd);
            std_l
                .set_nonblocking(true)
                .map_err(|e| format!("listener fd: {e}"))?;
            self.listeners[i] = Some(TcpListener::from_std(std_l));
            log::info!(
                "listener {}: took over {} from the parent",
                self.ctx.listeners[i].name,
                self.ctx.listeners[i].address
            );
        } else {
            let std_l = std::os::unix::net::UnixListener::from(fd);
            std_l
                .set_nonblocking(true)
                .map_err(|e| format!("restart socket fd: {e}"))?;
            self.restart.listener = Some(UnixListener::from_std(std_l));
        }
        Ok(())
    }

    fn bind_fresh(&mut self, id: ListenerId) -> Result<(), String> {
        let i = id.0 as usize;
        if i < self.listeners.len() {
            let l = &self.ctx.listeners[i];
            self.listeners[i] = Some(bind_listener(&l.name, l.address)?);
        } else if let Some(path) = self.opts.hot_restart_file.clone() {
            self.restart.listener = Some(super::channel::bind_restart_listener(&path)?);
        }
        Ok(())
    }

    fn listener_fd(&self, id: ListenerId) -> Option<RawFd> {
        let i = id.0 as usize;
        if i < self.listeners.len() {
            self.listeners[i].as_ref().map(|l| l.as_raw_fd())
        } else {
            self.restart.listener.as_ref().map(|l| l.as_raw_fd())
        }
    }

    /// Registers (and accepts at once: queued connections make no new edge) or deregisters.
    fn set_accepting(&mut self, id: ListenerId, on: bool) {
        let i = id.0 as usize;
        let registry = self.poll.registry();
        if i < self.listeners.len() {
            let Some(l) = self.listeners[i].as_mut() else {
                return;
            };
            if self.accepting[i] == on {
                return;
            }
            let r = if on {
                registry.register(l, Tok::Listener(i).token(), Interest::READABLE)
            } else {
                registry.deregister(l)
            };
            match r {
                Ok(()) => self.accepting[i] = on,
                Err(e) => log::error!("listener {}: {e}", self.ctx.listeners[i].name),
            }
            if on {
                self.accept(i);
            }
        } else {
            let Some(l) = self.restart.listener.as_mut() else {
                return;
            };
            if self.restart.accepting == on {
                return;
            }
            let r = if on {
                registry.register(l, Tok::Restart(usize::MAX).token(), Interest::READABLE)
            } else {
                registry.deregister(l)
            };
            match r {
                Ok(()) => self.restart.accepting = on,
                Err(e) => log::error!("restart socket: {e}"),
            }
            if on {
                self.hr_accept();
            }
        }
    }

    /// Closes our fd of a listener. `only_owner`: nobody else holds it, so the restart
    /// socket's path goes too.
    fn drop_listener(&mut self, id: ListenerId, only_owner: bool) {
        self.set_accepting(id, false);
        let i = id.0 as usize;
        if i < self.listeners.len() {
            if self.listeners[i].take().is_some() {
                log::info!("listener {} closed", self.ctx.listeners[i].name);
            }
        } else if self.restart.listener.take().is_some() && only_owner {
            if let Some(p) = &self.opts.hot_restart_file {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn log_listening(&self) {
        for (i, l) in self.ctx.listeners.iter().enumerate() {
            if self.accepting[i] {
                let bound = self.listeners[i].as_ref().and_then(|x| x.local_addr().ok());
                log::info!(
                    "listener {} accepting on {} (pid {}, epoch {}, cluster '{}', node '{}')",
                    l.name,
                    bound.unwrap_or(l.address),
                    std::process::id(),
                    self.restart.machine.epoch(),
                    self.opts.service_cluster,
                    self.opts.service_node
                );
            }
        }
    }

    /// Accepts new restart-socket connections (future children).
    pub(crate) fn hr_accept(&mut self) {
        loop {
            let Some(l) = self.restart.listener.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = check_peer_uid(&stream) {
                        log::warn!("hot restart: refusing a connection: {e}");
                        continue;
                    }
                    self.restart.next_id += 1;
                    let key = self.restart.next_id;
                    if self.hr_register(key, stream).is_ok() {
                        if let Err(e) = self.hr_event(Event::PeerConnected(Peer::Child(key))) {
                            log::error!("hot restart: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("hot restart: accept: {e}");
                    return;
                }
            }
        }
    }

    pub(crate) fn hr_register(&mut self, key: u64, mut stream: UnixStream) -> Result<(), String> {
        self.poll
            .registry()
            .register(
                &mut stream,
                Tok::Restart(key as usize).token(),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("hot restart: register: {e}"))?;
        self.restart.peers.insert(key, Conn::new(stream));
        Ok(())
    }

    /// Readiness on a restart connection: flush, read, decode, deliver.
    pub(crate) fn hr_ready(&mut self, key: u64) -> Result<(), String> {
        let peer = key_peer(key);
        let Some(conn) = self.restart.peers.get_mut(&key) else {
            return Ok(());
        };
        // Read even when writing failed: a peer that answered and closed at once (a parent's
        // Refuse, racing our Hello into EPIPE) left its frames in our buffer. Deliver them,
        // then treat the error as the end of the connection.
        let flushed = conn.flush();
        let filled = conn.fill();
        if let Err(e) = flushed.and(filled) {
            log::warn!("hot restart: {peer:?}: {e}");
            conn.eof = true;
        }
        loop {
            let Some(conn) = self.restart.peers.get_mut(&key) else {
                return Ok(());
            };
            match conn.next_frame() {
                Ok(Read::Frame(Message::ListenerFds(batch))) if key == PARENT_KEY => {
                    let fd_count = conn.fds.len();
                    self.hr_event(Event::FdsReceived { batch, fd_count })?;
                }
                Ok(Read::Frame(Message::Connections(conns))) if key == PARENT_KEY => {
                    self.hr_adopt_connections(conns);
                }
                Ok(Read::Frame(msg)) => self.hr_event(Event::MessageReceived(peer, msg))?,
                Ok(Read::Nothing) => {
                    if conn.eof {
                        self.hr_close_peer(key);
                        if self.restart.machine.state() == State::Exited {
                            // Its last frame (e.g. Refuse) already ended this process.
                            return Ok(());
                        }
                        return self.hr_event(Event::PeerClosed(peer));
                    }
                    return Ok(());
                }
                Err(e) => {
                    log::warn!("hot restart: malformed frame from {peer:?}: {e:?}; dropping it");
                    self.hr_close_peer(key);
                    return self.hr_event(Event::PeerClosed(peer));
                }
            }
        }
    }

    /// Stats travel as (name, value) lists; the stats registry fills them in.
    fn stats_snapshot(&self) -> StatsSnapshot {
        self.ctx.stats_snapshot()
    }

    /// Continues the parent's counters; `server.parent_connections` is what its listeners
    /// still hold (theirs and any older generation's).
    fn stats_merge(&mut self, s: StatsSnapshot) {
        let parent_conns: i64 = s
            .gauges
            .iter()
            .filter(|(k, _)| k.starts_with("listener.") && k.ends_with(".downstream_cx_active"))
            .map(|(_, v)| *v)
            .sum();
        self.ctx.stats_merge(s);
        self.ctx.stats.set_parent_connections(parent_conns);
    }

    /// The `--hot-restart-file` start-up: probe, then tell the machine what we found.
    pub(crate) fn hr_start(&mut self) -> Result<(), String> {
        let ev = match self.opts.hot_restart_file.clone() {
            None => Event::NoParent,
            Some(path) => match super::channel::probe(&path)? {
                super::channel::Probe::Fresh => Event::NoParent,
                super::channel::Probe::Parent(s) => {
                    s.set_nonblocking(true)
                        .map_err(|e| format!("hot restart: {e}"))?;
                    self.hr_register(PARENT_KEY, UnixStream::from_std(s))?;
                    log::info!("hot restart: found a running parent at {}", path.display());
                    Event::PeerConnected(Peer::Parent)
                }
            },
        };
        self.hr_event(ev)?;
        if let Some(code) = self.exit_code.filter(|&c| c != 0) {
            return Err(self
                .exit_reason
                .clone()
                .unwrap_or_else(|| format!("hot restart failed (exit {code})")));
        }
        Ok(())
    }

    pub(crate) fn hr_tick(&mut self, _at: Instant) -> Result<(), String> {
        self.hr_event(Event::Tick)
    }
}

/// The machine's listener table for this process's config.
pub fn machine_listeners(
    listeners: &[crate::context::ListenerRt],
    restart_file: Option<&std::path::Path>,
) -> Vec<baton_statemachine::Listener> {
    let mut v: Vec<baton_statemachine::Listener> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| baton_statemachine::Listener {
            id: ListenerId(i as u32),
            address: tcp_address(l.address),
        })
        .collect();
    if let Some(p) = restart_file {
        v.push(baton_statemachine::Listener {
            id: ListenerId(listeners.len() as u32),
            address: restart_address(p),
        });
    }
    v
}
