//! Feeds restart-socket, signal and timer events to the pure state machine and carries out the
//! actions it returns against the restart socket, its peers and — through the narrow [`Host`]
//! interface — the proxy's listeners, connections, stats and lifecycle. Every decision lives
//! in `baton-statemachine`; this file only does I/O.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use baton_statemachine::{
    Action, Event, ListenerId, Message, MovedConn, Peer, State, StatsSnapshot, MAX_FDS_PER_BATCH,
};
use mio::net::{TcpListener, UnixListener, UnixStream};
use mio::Interest;

use super::channel::{check_peer_uid, Conn, Read};
use super::{restart_address, tcp_address, HotRestart, PARENT_KEY};
use crate::reactor::Tok;

/// What the restart driver needs from the proxy. Listeners are named by their index in the
/// configuration; the restart socket's own listener is the driver's.
pub trait Host {
    /// The time of the current event batch.
    fn now(&self) -> Instant;
    fn registry(&self) -> &mio::Registry;
    /// Calls `HotRestart::tick` at `at`.
    fn arm_timer(&mut self, at: Instant);
    /// Every cluster has its first DNS answer (or the wait gave up).
    fn dns_ready(&self) -> bool;
    /// Client connections still open here.
    fn connections(&self) -> usize;
    fn restart_file(&self) -> Option<&Path>;
    fn set_epoch(&mut self, epoch: u32);
    fn listener_count(&self) -> usize;
    fn listener_fd(&self, i: usize) -> Option<RawFd>;
    /// A listening socket received from the parent.
    fn install_listener(&mut self, i: usize, l: TcpListener);
    /// Binds listener `i` afresh.
    fn bind_listener(&mut self, i: usize) -> Result<(), String>;
    /// Registers listener `i` for accept (and accepts what is queued) or deregisters it.
    fn set_accepting(&mut self, i: usize, on: bool);
    /// Closes our copy of listener `i`.
    fn close_listener(&mut self, i: usize);
    /// Listeners are accepting: report LIVE (unless draining) and log them.
    fn listening(&mut self, epoch: u32);
    /// Starts the drain; `handoff`: a successor takes idle connections.
    fn begin_drain(&mut self, handoff: bool);
    /// The machine moved from one state to another (after the move is logged).
    fn state_changed(&mut self, from: State, to: State);
    /// The successor went away during a handoff drain.
    fn successor_gone(&mut self);
    fn exit(&mut self, code: i32, reason: String);
    fn stats_snapshot(&self) -> StatsSnapshot;
    /// Continues the parent's counters; `parent_connections` is what its listeners hold.
    fn stats_merge(&mut self, s: StatsSnapshot, parent_connections: i64);
    /// The parent is gone: its live gauges leave ours.
    fn parent_gone(&mut self);
    /// A client connection the parent handed over, on listener `listener`.
    fn adopt_connection(
        &mut self,
        listener: usize,
        stream: std::net::TcpStream,
        peer: SocketAddr,
        pending: &[u8],
    );
    /// The index of the listener with this wire address.
    fn listener_by_address(&self, address: &str) -> Option<usize>;
    /// The wire address of listener `i` (of `client`'s filter chain, when given; chosen by
    /// the addresses of its PROXY protocol header, `origin`, when it had one).
    fn listener_address(
        &self,
        i: usize,
        client: Option<&mio::net::TcpStream>,
        origin: Option<&crate::proxy_protocol::Origin>,
    ) -> String;
    /// Serves a tunnel: one our parent handed over, or one of ours whose handover was rolled
    /// back (or found no successor).
    fn resume_tunnel(&mut self, t: super::tunnels::TunnelMove);
    /// Descriptors held back so the restart socket can accept when the process ran out.
    fn fd_reserve(&mut self) -> &mut crate::fds::Reserve;
}

/// A client connection leaving for the successor: its listener's wire address, the client's
/// address, the socket and the bytes read but not answered.
pub struct Leaving {
    pub listener: String,
    pub peer: SocketAddr,
    pub stream: mio::net::TcpStream,
    pub pending: Vec<u8>,
}

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

impl HotRestart {
    /// Milliseconds since the machine's time origin.
    fn ms(&self, host: &dyn Host) -> u64 {
        host.now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    /// Delivers one event and executes the resulting actions. Errors mean a driver bug and
    /// change nothing (the machine guarantees it); they are logged, never fatal.
    pub fn event(&mut self, host: &mut dyn Host, ev: Event) -> Result<(), String> {
        let now = self.ms(host);
        let actions = match self.machine.handle(now, ev) {
            Ok(a) => a,
            Err(e) => {
                log::error!("hot restart: {e}");
                return Ok(());
            }
        };
        for a in actions {
            if let Err(e) = self.exec(host, a) {
                // e.g. a listener the child cannot bind: never tell the parent `Listening`.
                self.failed = true;
                return Err(e);
            }
        }
        self.check_progress(host)
    }

    /// Events the driver derives from the process's own state: readiness and drain end.
    pub fn check_progress(&mut self, host: &mut dyn Host) -> Result<(), String> {
        let st = self.machine.state();
        if st == State::FdsReceived && host.dns_ready() && !self.ready_sent && !self.failed {
            self.ready_sent = true;
            return self.event(host, Event::ListenersReady);
        }
        // A process that relays its draining parent's connections to its own successor stays
        // until that parent is gone: exiting first would leave the parent no one to hand its
        // remaining keep-alive connections to (it would have to close them).
        let relaying = self.parent_hands_over && self.peers.contains_key(&PARENT_KEY);
        if st == State::Draining
            && host.connections() == 0
            && !self.tunnels_in_flight()
            && !self.done_sent
            && !relaying
        {
            self.done_sent = true;
            return self.event(host, Event::ConnectionsDone);
        }
        Ok(())
    }

    /// Hot-restart lines are info with `--hot-restart-file`; without it the machine's moves
    /// (start, drain, exit) are no news to the operator and go to debug.
    fn log(&self, msg: &str) {
        let level = if self.quiet {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "hot restart: pid={} epoch={} {msg}",
            std::process::id(),
            self.machine.epoch()
        );
    }

    /// The listener index of a machine listener id; `None` for the restart socket.
    fn tcp_index(host: &dyn Host, id: ListenerId) -> Option<usize> {
        let i = id.0 as usize;
        (i < host.listener_count()).then_some(i)
    }

    fn exec(&mut self, host: &mut dyn Host, a: Action) -> Result<(), String> {
        match a {
            Action::Transition { from, to } => {
                self.log(&format!("state {from} -> {to}"));
                host.set_epoch(self.machine.epoch());
                host.state_changed(from, to);
            }
            Action::Log(m) => self.log(&m),
            Action::Send(peer, msg) => self.send(peer, &msg, &[]),
            Action::PassFds { peer, batch, ids } => {
                let fds: Vec<RawFd> = ids
                    .iter()
                    .filter_map(|&id| match Self::tcp_index(host, id) {
                        Some(i) => host.listener_fd(i),
                        None => self.listener.as_ref().map(|l| l.as_raw_fd()),
                    })
                    .collect();
                self.send(peer, &Message::ListenerFds(batch), &fds);
            }
            Action::AdoptFds { ids, .. } => self.adopt_fds(host, &ids)?,
            Action::BindFresh(ids) => {
                let taking_over = self.machine.has_parent();
                for id in ids {
                    match Self::tcp_index(host, id) {
                        Some(i) => host.bind_listener(i).map_err(|e| {
                            if taking_over {
                                format!("cannot take over: {e}; the running process keeps serving")
                            } else {
                                e
                            }
                        })?,
                        None => {
                            if let Some(path) = host.restart_file() {
                                self.listener = Some(super::channel::bind_restart_listener(path)?);
                            }
                        }
                    }
                }
            }
            Action::StartAccepting(ids) | Action::ResumeAccepting(ids) => {
                for id in ids {
                    self.set_accepting(host, id, true);
                }
                host.listening(self.machine.epoch());
            }
            Action::StopAccepting(ids) => {
                for id in ids {
                    self.set_accepting(host, id, false);
                }
            }
            Action::CloseListeners(ids) => {
                // While our parent's link is up it may still hold the restart socket (it is
                // HandedOver and resumes if we go): the path is then not ours to remove. At
                // worst a stale socket file stays, which the next start clears.
                let only_owner = !self.peers.contains_key(&PARENT_KEY);
                for id in ids {
                    self.drop_listener(host, id, only_owner);
                }
            }
            Action::DropListenerCopies(ids) => {
                for id in ids {
                    self.drop_listener(host, id, false);
                }
            }
            Action::SendStats(peer) => {
                let snap = host.stats_snapshot();
                self.send(peer, &Message::Stats(snap), &[]);
            }
            Action::MergeStats(s) => {
                let parent_conns: i64 = s
                    .gauges
                    .iter()
                    .filter(|(k, _)| {
                        k.starts_with("listener.") && k.ends_with(".downstream_cx_active")
                    })
                    .map(|(_, v)| *v)
                    .sum();
                host.stats_merge(s, parent_conns);
            }
            Action::StartDrain { .. } => {
                self.handing_off = self.child_key().is_some();
                host.begin_drain(self.handing_off);
            }
            Action::ArmTimer(at) => host.arm_timer(self.origin + Duration::from_millis(at)),
            Action::DropPeer(p) => self.close_peer(host, peer_key(p)),
            Action::Refuse { peer, reason } => {
                self.log(&format!("refusing restart peer {peer:?}: {reason}"));
                self.send(peer, &Message::Refuse { reason }, &[]);
                self.close_peer(host, peer_key(peer));
            }
            Action::Exit { code, reason } => {
                self.log(&format!("exit {code}: {reason}"));
                host.exit(code, reason);
            }
        }
        Ok(())
    }

    pub(super) fn send(&mut self, peer: Peer, msg: &Message, fds: &[RawFd]) {
        let key = peer_key(peer);
        let Some(conn) = self.peers.get_mut(&key) else {
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

    fn close_peer(&mut self, host: &mut dyn Host, key: u64) {
        if let Some(mut c) = self.peers.remove(&key) {
            let _ = c.flush();
            let _ = host.registry().deregister(&mut c.stream);
        }
        if key == PARENT_KEY {
            host.parent_gone();
        }
        if self.handing_off && self.child_key().is_none() {
            // The successor is gone: connections can only be closed at safe points now.
            log::warn!(
                "hot restart: successor gone; closing idle connections instead of moving them"
            );
            self.handing_off = false;
            host.successor_gone();
        }
        if key != PARENT_KEY && self.child_key().is_none() {
            self.roll_back_tunnels(host);
        }
    }

    /// The restart-socket key of the child that took over from us, while its link is up.
    pub fn child_key(&self) -> Option<u64> {
        match self.machine.child() {
            Some(Peer::Child(k)) if self.peers.contains_key(&k) => Some(k),
            _ => None,
        }
    }

    /// Sends connections leaving for the successor, in frames of at most 253 fds and
    /// ~512 KiB of pending bytes (each connection holds at most `core::HANDOFF_MAX`, so no
    /// frame overflows); our copies close once queued (the fds are dup'ed into the message,
    /// so the connections live on in the child). Without a successor they are just closed.
    pub fn send_connections(&mut self, leaving: Vec<Leaving>) {
        let Some(key) = self.child_key() else {
            return;
        };
        let mut batch: Vec<MovedConn> = Vec::new();
        let mut streams: Vec<mio::net::TcpStream> = Vec::new();
        let mut bytes = 0usize;
        let total = leaving.len();
        for l in leaving {
            if !batch.is_empty()
                && (batch.len() == MAX_FDS_PER_BATCH || bytes + l.pending.len() > 512 * 1024)
            {
                self.send_batch(key, &mut batch, &mut streams);
                bytes = 0;
            }
            bytes += l.pending.len();
            batch.push(MovedConn {
                listener: l.listener,
                peer: l.peer.to_string(),
                pending: l.pending,
            });
            streams.push(l.stream);
        }
        if !batch.is_empty() {
            self.send_batch(key, &mut batch, &mut streams);
        }
        log::debug!("hot restart: handed {total} connection(s) to the new process");
    }

    fn send_batch(
        &mut self,
        key: u64,
        batch: &mut Vec<MovedConn>,
        streams: &mut Vec<mio::net::TcpStream>,
    ) {
        let fds: Vec<RawFd> = streams.iter().map(|s| s.as_raw_fd()).collect();
        let msg = Message::Connections(std::mem::take(batch));
        self.send(Peer::Child(key), &msg, &fds);
        streams.clear();
    }

    /// Adopts connections our parent handed over: each fd becomes a session here.
    fn adopt_connections(&mut self, host: &mut dyn Host, conns: Vec<MovedConn>) {
        self.parent_hands_over = true;
        for c in conns {
            let Some(fd) = self
                .peers
                .get_mut(&PARENT_KEY)
                .and_then(|p| p.fds.pop_front())
            else {
                log::warn!("hot restart: parent moved a connection without its fd");
                return;
            };
            let Some(i) = host.listener_by_address(&c.listener) else {
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
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            host.adopt_connection(i, std_s, peer, &c.pending);
        }
    }

    /// Writes whatever is still queued for peers (moved connections, final stats) before the
    /// process exits; bounded, so a stuck peer cannot keep us alive.
    pub fn flush_before_exit(&mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let mut pending = false;
            for c in self.peers.values_mut() {
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

    fn adopt_fds(&mut self, host: &mut dyn Host, ids: &[Option<ListenerId>]) -> Result<(), String> {
        for id in ids {
            let fd = self
                .peers
                .get_mut(&PARENT_KEY)
                .and_then(|c| c.fds.pop_front())
                .ok_or("parent sent fewer fds than it announced")?;
            if let Some(id) = id {
                self.install_fd(host, *id, fd)?;
            }
        }
        Ok(())
    }

    fn install_fd(
        &mut self,
        host: &mut dyn Host,
        id: ListenerId,
        fd: OwnedFd,
    ) -> Result<(), String> {
        match Self::tcp_index(host, id) {
            Some(i) => {
                let std_l = std::net::TcpListener::from(fd);
                std_l
                    .set_nonblocking(true)
                    .map_err(|e| format!("listener fd: {e}"))?;
                host.install_listener(i, TcpListener::from_std(std_l));
            }
            None => {
                let std_l = std::os::unix::net::UnixListener::from(fd);
                std_l
                    .set_nonblocking(true)
                    .map_err(|e| format!("restart socket fd: {e}"))?;
                self.listener = Some(UnixListener::from_std(std_l));
            }
        }
        Ok(())
    }

    /// Registers (and accepts at once: queued connections make no new edge) or deregisters.
    fn set_accepting(&mut self, host: &mut dyn Host, id: ListenerId, on: bool) {
        if let Some(i) = Self::tcp_index(host, id) {
            host.set_accepting(i, on);
            return;
        }
        let Some(l) = self.listener.as_mut() else {
            return;
        };
        if self.accepting == on {
            return;
        }
        let registry = host.registry();
        let r = if on {
            registry.register(l, Tok::Restart(usize::MAX).token(), Interest::READABLE)
        } else {
            registry.deregister(l)
        };
        match r {
            Ok(()) => self.accepting = on,
            Err(e) => log::error!("restart socket: {e}"),
        }
        if on {
            self.accept(host);
        }
    }

    /// Closes our fd of a listener. `only_owner`: nobody else holds it, so the restart
    /// socket's path goes too.
    fn drop_listener(&mut self, host: &mut dyn Host, id: ListenerId, only_owner: bool) {
        self.set_accepting(host, id, false);
        if let Some(i) = Self::tcp_index(host, id) {
            host.close_listener(i);
        } else if self.listener.take().is_some() && only_owner {
            if let Some(p) = host.restart_file() {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Accepts new restart-socket connections (future children).
    pub fn accept(&mut self, host: &mut dyn Host) {
        loop {
            let Some(l) = self.listener.as_ref() else {
                return;
            };
            let got = crate::fds::accept_with_reserve(host.fd_reserve(), || match l.accept() {
                Ok(c) => Ok(Some(c)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            });
            match got {
                Ok(None) => return,
                Ok(Some((stream, _))) => {
                    if let Err(e) = check_peer_uid(&stream) {
                        log::warn!("hot restart: refusing a connection: {e}");
                        continue;
                    }
                    self.next_id += 1;
                    let key = self.next_id;
                    if self.register(host, key, stream).is_ok() {
                        if let Err(e) = self.event(host, Event::PeerConnected(Peer::Child(key))) {
                            log::error!("hot restart: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("hot restart: accept: {e}");
                    return;
                }
            }
        }
    }

    fn register(
        &mut self,
        host: &dyn Host,
        key: u64,
        mut stream: UnixStream,
    ) -> Result<(), String> {
        host.registry()
            .register(
                &mut stream,
                Tok::Restart(key as usize).token(),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("hot restart: register: {e}"))?;
        self.peers.insert(key, Conn::new(stream, key == PARENT_KEY));
        Ok(())
    }

    /// Readiness on a restart connection: flush, read, decode, deliver.
    pub fn ready(&mut self, host: &mut dyn Host, key: u64) -> Result<(), String> {
        let peer = key_peer(key);
        let Some(conn) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        // Read even when writing failed: a peer that answered and closed at once (a parent's
        // Refuse, racing our Hello into EPIPE) left its frames in our buffer. Deliver them,
        // then treat the error as the end of the connection.
        let flushed = conn.flush();
        let filled = conn.fill().map(drop);
        if let Err(e) = flushed.and(filled) {
            log::warn!("hot restart: {peer:?}: {e}");
            conn.eof = true;
        }
        loop {
            let Some(conn) = self.peers.get_mut(&key) else {
                return Ok(());
            };
            match conn.next_frame() {
                Ok(Read::Frame(Message::ListenerFds(batch))) if key == PARENT_KEY => {
                    let fd_count = conn.fds.len();
                    self.event(host, Event::FdsReceived { batch, fd_count })?;
                }
                Ok(Read::Frame(Message::Connections(conns))) if key == PARENT_KEY => {
                    self.adopt_connections(host, conns);
                }
                Ok(Read::Frame(Message::Tunnels { batch, tunnels })) if key == PARENT_KEY => {
                    self.parent_hands_over = true;
                    self.adopt_tunnels(host, batch, tunnels);
                }
                Ok(Read::Frame(Message::TunnelsAck { batch })) if key != PARENT_KEY => {
                    self.tunnels_acked(batch);
                    self.check_progress(host)?;
                }
                Ok(Read::Frame(msg)) => self.event(host, Event::MessageReceived(peer, msg))?,
                Ok(Read::Nothing) => {
                    if conn.paused && !conn.eof {
                        // The frames decoded so far released room: read on.
                        match conn.fill() {
                            Ok(n) if n > 0 => continue,
                            Ok(_) if conn.paused => {
                                log::warn!(
                                    "hot restart: {peer:?} sent more descriptors than its \
                                     frames claim; dropping it"
                                );
                                self.close_peer(host, key);
                                return self.event(host, Event::PeerClosed(peer));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                log::warn!("hot restart: {peer:?}: {e}");
                                conn.eof = true;
                            }
                        }
                    }
                    if conn.eof {
                        self.close_peer(host, key);
                        if self.machine.state() == State::Exited {
                            // Its last frame (e.g. Refuse) already ended this process.
                            return Ok(());
                        }
                        return self.event(host, Event::PeerClosed(peer));
                    }
                    return Ok(());
                }
                Err(e) => {
                    log::warn!("hot restart: malformed frame from {peer:?}: {e:?}; dropping it");
                    self.close_peer(host, key);
                    return self.event(host, Event::PeerClosed(peer));
                }
            }
        }
    }

    /// The `--hot-restart-file` start-up: probe, then tell the machine what we found.
    pub fn start(&mut self, host: &mut dyn Host) -> Result<(), String> {
        self.quiet = host.restart_file().is_none();
        let ev = match host.restart_file().map(Path::to_path_buf) {
            None => Event::NoParent,
            Some(path) => match super::channel::probe(&path)? {
                super::channel::Probe::Fresh => Event::NoParent,
                super::channel::Probe::Parent(s) => {
                    s.set_nonblocking(true)
                        .map_err(|e| format!("hot restart: {e}"))?;
                    self.register(host, PARENT_KEY, UnixStream::from_std(s))?;
                    log::info!("hot restart: found a running parent at {}", path.display());
                    Event::PeerConnected(Peer::Parent)
                }
            },
        };
        self.event(host, ev)
    }

    /// A restart timer fired.
    pub fn tick(&mut self, host: &mut dyn Host) -> Result<(), String> {
        self.event(host, Event::Tick)
    }

    /// This process's epoch.
    pub fn epoch(&self) -> u32 {
        self.machine.epoch()
    }

    /// The restart machine's state.
    pub fn state(&self) -> State {
        self.machine.state()
    }
}

/// The machine's listener table for this process's config.
/// Ids: the data listeners in config order, then the admin listener (if any), then the
/// restart socket (if any); `Host::listener_count` covers the first two.
pub fn machine_listeners(
    listeners: &[crate::context::ListenerRt],
    admin: Option<SocketAddr>,
    restart_file: Option<&std::path::Path>,
) -> Vec<baton_statemachine::Listener> {
    // One per configured listener (its first unit), not per unit.
    let mut v: Vec<baton_statemachine::Listener> = listeners
        .iter()
        .enumerate()
        .filter(|(u, l)| l.first_unit == *u)
        .map(|(_, l)| baton_statemachine::Listener {
            id: ListenerId(l.home as u32),
            address: tcp_address(l.address),
        })
        .collect();
    if let Some(a) = admin {
        v.push(baton_statemachine::Listener {
            id: ListenerId(v.len() as u32),
            address: crate::admin::Admin::wire_address(a),
        });
    }
    if let Some(p) = restart_file {
        v.push(baton_statemachine::Listener {
            id: ListenerId(v.len() as u32),
            address: restart_address(p),
        });
    }
    v
}
