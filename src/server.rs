//! The running proxy: binds listeners, resolves clusters, and dispatches every mio event to its
//! owner. Start-up order follows Envoy: bind first (a busy port fails fast), accept only once
//! the clusters have their first DNS answer, so the first request never sees an empty cluster.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::admin::{self, Admin};
use crate::cli::Options;
use crate::cluster::dns::{Query, Resolver};
use crate::cluster::ClusterRt;
use crate::config::Bootstrap;
use crate::context::{Ctx, ListenerRt};
use crate::http::downstream::Session;
use crate::http::upstream::{close_all_idle, idle_event};
use crate::observe;
use crate::reactor::{TimerKey, Tok};
use crate::route::Router;
use crate::stats::ServerState;
use crate::util::Slab;

/// Longest we hold listeners back waiting for the first DNS answers.
const INIT_DNS_WAIT: Duration = Duration::from_secs(5);

pub struct Proxy {
    poll: Poll,
    ctx: Ctx,
    sessions: Slab<Session>,
    listeners: Vec<Option<TcpListener>>,
    accepting: bool,
    signals: Signals,
    resolver: Resolver,
    opts: Options,
    next_gen: u64,
    /// Set while start-up waits for first DNS answers.
    init_until: Option<Instant>,
    exit_code: Option<i32>,
    /// The admin interface, when the bootstrap has `admin.address`.
    admin: Option<Admin>,
}

/// "Address already in use (os error 98)" → "Address already in use".
pub fn io_cause(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Binds one listener socket, naming the listener and address on failure.
pub fn bind_listener(name: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("{name}: {addr}: {}", io_cause(&e)))
}

/// Runs the proxy until it exits.
pub fn run(opts: Options, b: Bootstrap) -> Result<(), String> {
    let mut p = Proxy::new(opts, b)?;
    p.run_loop().map_err(|e| format!("reactor: {e}"))?;
    match p.exit_code {
        Some(0) | None => Ok(()),
        Some(c) => Err(format!("exiting with code {c}")),
    }
}

impl Proxy {
    pub fn new(opts: Options, b: Bootstrap) -> Result<Proxy, String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("epoll: {e}"))?;
        let admin = Admin::start(poll.registry(), &b, &opts)?;
        let mut listeners = Vec::new();
        let mut rts = Vec::new();
        for l in b.listeners {
            listeners.push(Some(bind_listener(&l.name, l.address)?));
            rts.push(ListenerRt {
                name: l.name,
                address: l.address,
                router: Router::new(l.hcm.route_config.clone()),
                hcm: l.hcm,
            });
        }
        let clusters: Vec<ClusterRt> = b.clusters.into_iter().map(ClusterRt::new).collect();
        let waker = Arc::new(
            Waker::new(poll.registry(), Tok::Waker.token()).map_err(|e| format!("waker: {e}"))?,
        );
        let resolver = Resolver::start(waker).map_err(|e| format!("dns thread: {e}"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])
            .map_err(|e| format!("signals: {e}"))?;
        poll.registry()
            .register(&mut signals, Tok::Signals.token(), Interest::READABLE)
            .map_err(|e| format!("signals: {e}"))?;
        let mut p = Proxy {
            poll,
            ctx: Ctx::new(registry, clusters, rts),
            sessions: Slab::default(),
            listeners,
            accepting: false,
            signals,
            resolver,
            opts,
            next_gen: 0,
            init_until: None,
            exit_code: None,
            admin,
        };
        let logs: Vec<_> = p
            .ctx
            .listeners
            .iter()
            .map(|l| l.hcm.access_log.as_slice())
            .collect();
        p.ctx.access_logs = crate::access_log::AccessLogs::open(&logs)?;
        let mut waiting = false;
        for c in 0..p.ctx.clusters.len() {
            observe::membership(&mut p.ctx, c);
            waiting |= p.refresh_dns(c);
        }
        if waiting {
            let at = Instant::now() + INIT_DNS_WAIT;
            p.init_until = Some(at);
            p.ctx.timers.arm(at, TimerKey::Tick);
        } else {
            p.start_accepting();
        }
        Ok(p)
    }

    /// Queues DNS queries for a cluster's named endpoints; true if any was sent.
    fn refresh_dns(&mut self, c: usize) -> bool {
        let mut sent = false;
        let Some(cl) = self.ctx.clusters.get_mut(c) else {
            return false;
        };
        for ep in cl.dns_endpoints() {
            if cl.pending[ep] {
                continue;
            }
            let e = &cl.cfg.endpoints[ep];
            let q = Query {
                cluster: c,
                endpoint: ep,
                host: e.host.clone(),
                port: e.port,
            };
            if self.resolver.submit(q) {
                cl.pending[ep] = true;
                sent = true;
            }
        }
        if sent {
            observe::dns_attempt(&mut self.ctx, c);
        }
        sent
    }

    fn on_dns_answers(&mut self) {
        for a in self.resolver.drain() {
            let Some(cl) = self.ctx.clusters.get_mut(a.cluster) else {
                continue;
            };
            match &a.result {
                Ok(addrs) => log::debug!(
                    "dns: cluster {} endpoint {}: {addrs:?}",
                    cl.cfg.name,
                    a.endpoint
                ),
                Err(e) => log::warn!(
                    "dns: cluster {}: {}: {e}",
                    cl.cfg.name,
                    cl.cfg.endpoints[a.endpoint].host
                ),
            }
            if cl.apply_dns(a.endpoint, &a.result) {
                let hosts: Vec<SocketAddr> = cl.hosts.iter().map(|h| h.addr).collect();
                log::info!("cluster {}: hosts now {hosts:?}", cl.cfg.name);
            }
            let settled = !cl.pending.iter().any(|&p| p);
            let refresh = cl.cfg.dns_refresh_rate;
            observe::dns_result(&mut self.ctx, a.cluster, a.result.is_ok());
            if settled {
                let at = self.ctx.now + refresh;
                self.ctx.timers.arm(at, TimerKey::Dns(a.cluster));
            }
        }
        if self.init_until.is_some()
            && self
                .ctx
                .clusters
                .iter()
                .all(|c| !c.pending.iter().any(|&p| p))
        {
            self.init_until = None;
            self.start_accepting();
        }
    }

    fn start_accepting(&mut self) {
        if self.accepting || self.ctx.draining {
            return;
        }
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if let Some(l) = l {
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(l, Tok::Listener(i).token(), Interest::READABLE)
                {
                    log::error!(
                        "listener {}: cannot register: {e}",
                        self.ctx.listeners[i].name
                    );
                }
            }
        }
        self.accepting = true;
        self.ctx.stats.set_state(ServerState::Live);
        for (i, l) in self.ctx.listeners.iter().enumerate() {
            let bound = self.listeners[i].as_ref().and_then(|l| l.local_addr().ok());
            log::info!(
                "listener {} accepting on {} (pid {}, cluster '{}', node '{}')",
                l.name,
                bound.unwrap_or(l.address),
                std::process::id(),
                self.opts.service_cluster,
                self.opts.service_node
            );
        }
        for i in 0..self.listeners.len() {
            self.accept(i);
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let Some(Some(l)) = self.listeners.get(i) else {
                return;
            };
            match l.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = self.sessions.next_key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Tok::Down(id).token(),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection from {peer}: {e}");
                        continue;
                    }
                    self.next_gen += 1;
                    let s = Session::new(id, self.next_gen, stream, peer, i, self.ctx.now);
                    let id2 = self.sessions.insert(s);
                    debug_assert_eq!(id, id2);
                    observe::cx_open(&mut self.ctx, i);
                    self.drive(id2);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: log and wait for the next readiness edge.
                    log::warn!("accept on {}: {e}", self.ctx.listeners[i].name);
                    return;
                }
            }
        }
    }

    fn drive(&mut self, id: usize) {
        let alive = match self.sessions.get_mut(id) {
            Some(s) => s.drive(&mut self.ctx),
            None => return,
        };
        if !alive {
            if let Some(s) = self.sessions.remove(id) {
                s.close(&mut self.ctx);
            }
        }
    }

    fn on_signal(&mut self) {
        let sigs: Vec<i32> = self.signals.pending().collect();
        for sig in sigs {
            match sig {
                SIGTERM | SIGINT => {
                    log::info!("signal {sig}: draining (pid {})", std::process::id());
                    self.start_drain();
                }
                SIGUSR1 => {
                    log::info!("SIGUSR1: reopening access logs");
                    self.ctx.access_logs.reopen();
                }
                _ => log::info!("signal {sig} ignored"),
            }
        }
    }

    /// Stops accepting, closes idle connections at a safe point, lets in-flight exchanges
    /// finish with `Connection: close`, and exits when nothing is left or the drain time ends.
    pub fn start_drain(&mut self) {
        if self.ctx.draining {
            return;
        }
        self.ctx.draining = true;
        self.close_listeners();
        close_all_idle(&mut self.ctx);
        let at = self.ctx.now + self.opts.drain_time;
        self.ctx.timers.arm(at, TimerKey::Drain);
        for id in self.sessions.keys() {
            self.drive(id);
        }
    }

    /// Stops accepting for good: listeners deregistered and closed (`/drain_listeners` stops
    /// here; a drain goes on to finish connections and exit).
    fn close_listeners(&mut self) {
        self.ctx.stats.set_state(ServerState::Draining);
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if let Some(mut l) = l.take() {
                if self.accepting {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                log::info!("listener {} closed", self.ctx.listeners[i].name);
            }
        }
        self.accepting = false;
    }

    /// An admin-interface event; runs what the request asked the proxy to do.
    fn on_admin(&mut self, i: usize) {
        let Some(mut a) = self.admin.take() else {
            return;
        };
        let bound = self
            .ctx
            .listeners
            .iter()
            .zip(&self.listeners)
            .map(|(rt, l)| {
                (
                    rt.name.clone(),
                    l.as_ref().and_then(|l| l.local_addr().ok()),
                )
            })
            .collect();
        let view = admin::View {
            opts: &self.opts,
            bound,
        };
        let action = a.on_event(i, &mut self.ctx, &view);
        self.admin = Some(a);
        match action {
            Some(admin::Action::DrainListeners) => {
                log::info!("admin: draining listeners");
                self.close_listeners();
            }
            Some(admin::Action::Quit) => {
                log::info!("admin: quitquitquit: exiting (pid {})", std::process::id());
                self.exit_code = Some(0);
            }
            None => {}
        }
    }

    fn on_timer(&mut self, at: Instant, key: TimerKey) {
        match key {
            TimerKey::Session(id, gen) => {
                let alive = match self.sessions.get_mut(id) {
                    Some(s) if s.gen == gen => s.on_timer(&mut self.ctx, at),
                    _ => return,
                };
                if !alive {
                    if let Some(s) = self.sessions.remove(id) {
                        s.close(&mut self.ctx);
                    }
                }
            }
            TimerKey::Dns(c) => {
                self.refresh_dns(c);
            }
            TimerKey::Drain => {
                log::info!(
                    "drain time over: closing {} connections",
                    self.sessions.len()
                );
                for id in self.sessions.keys() {
                    if let Some(s) = self.sessions.remove(id) {
                        s.close(&mut self.ctx);
                    }
                }
            }
            TimerKey::Tick => {
                observe::on_tick(&mut self.ctx);
                if self.init_until.is_some_and(|t| t <= at) {
                    log::warn!(
                        "first DNS answers not all in after {INIT_DNS_WAIT:?}; accepting anyway"
                    );
                    self.init_until = None;
                    self.start_accepting();
                }
            }
            TimerKey::Restart => {}
        }
    }

    pub fn run_loop(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .ctx
                .timers
                .next()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.ctx.now = Instant::now();
            for ev in events.iter() {
                let Some(tok) = Tok::from_token(ev.token()) else {
                    continue;
                };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                match tok {
                    Tok::Listener(i) => self.accept(i),
                    Tok::Waker => self.on_dns_answers(),
                    Tok::Signals => self.on_signal(),
                    Tok::Down(id) => {
                        if let Some(s) = self.sessions.get_mut(id) {
                            s.readable |= readable;
                            s.writable |= writable;
                        }
                        self.drive(id);
                    }
                    Tok::Up(id) => {
                        if let Some(up) = self.sessions.get_mut(id).and_then(|s| s.up.as_mut()) {
                            up.readable |= readable;
                            up.writable |= writable;
                        }
                        self.drive(id);
                    }
                    Tok::Idle(i) => idle_event(&mut self.ctx, i),
                    Tok::Admin(i) => self.on_admin(i),
                    Tok::Restart(_) => {}
                }
            }
            while let Some((at, key)) = self.ctx.timers.pop_due(self.ctx.now) {
                self.on_timer(at, key);
            }
            if self.ctx.draining && self.sessions.is_empty() {
                log::info!("drained: exiting (pid {})", std::process::id());
                self.exit_code = Some(0);
            }
            if self.exit_code.is_some() {
                return Ok(());
            }
        }
    }
}
