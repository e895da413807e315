//! The running proxy: binds listeners, resolves clusters, and dispatches every mio event to its
//! owner. Start-up order follows Envoy: bind first (a busy port fails fast), accept only once
//! the clusters have their first DNS answer, so the first request never sees an empty cluster.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Waker};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook_mio::v1_0::Signals;

use crate::admin::{self, Admin};
use crate::cli::Options;
use crate::cluster::dns::{Query, Resolver};
use crate::cluster::ClusterRt;
use crate::config::Terminal;
use crate::config::{Bootstrap, ListenerSocket, SocketState};
use crate::context::{Ctx, HttpRt, ListenerRt, Serve};
use crate::hot_restart::driver::{machine_listeners, Leaving};
use crate::hot_restart::HotRestart;
use crate::http::session::{Fate, Ready, Session};
use crate::http::upstream::{close_all_idle, idle_event, UpConn, UpOwner};
use crate::observe;
use crate::reactor::{TimerKey, Tok};
use crate::route::Router;
use crate::service::{self, Notifier, PidFile, Successors};
use crate::stats::{Refused, ServerState};
use crate::util::Slab;

/// Longest we hold listeners back waiting for the first DNS answers.
const INIT_DNS_WAIT: Duration = Duration::from_secs(5);

/// Most connections accepted from one listener before the reactor serves other events: a
/// listener under a connection storm must not starve established connections. What is left
/// in the accept queue is taken in the next round (the edge-triggered listener raises no new
/// event for it), after the events that came meanwhile.
pub const ACCEPT_BATCH: usize = 64;

/// How often the buffer pool and the pipe pool give back what stayed unused (only while one
/// holds more than it keeps; an idle proxy has no such timer). A burst's buffers and pipes
/// are freed 2 periods after it.
const POOL_TRIM_EVERY: Duration = Duration::from_millis(250);
/// Buffers freed (1 MiB) that make returning the heap's free pages worth a heap walk.
const HEAP_TRIM_BUFFERS: usize = 64;

mod host;
mod watch;

/// The running proxy. Its fields are private to this module; the hot-restart driver reaches
/// it only through `hot_restart::driver::Host` (implemented in `host`).
pub struct Proxy {
    poll: Poll,
    ctx: Ctx,
    sessions: Slab<Session>,
    /// Listening sockets by listener index; `None` until bound or received, and after close.
    listeners: Vec<Option<TcpListener>>,
    /// Whether each listener is registered for accept.
    accepting: Vec<bool>,
    /// Listeners whose accept failed for lack of descriptors, waiting for `AcceptRetry`.
    accept_paused: Vec<bool>,
    /// An out-of-descriptors episode is under way (logged and counted once).
    fd_episode: bool,
    /// Listeners that stopped at `ACCEPT_BATCH` with connections possibly still queued: the
    /// loop polls without waiting and accepts again after the next batch of events.
    accept_more: Vec<usize>,
    /// A `PoolTrim` timer is pending.
    trim_armed: bool,
    /// Buffers the pool freed since the heap last gave memory back to the OS.
    trimmed: usize,
    /// Client connections open per listener (for the connection limits).
    open: Vec<usize>,
    /// The overload manager's global connection limit.
    max_connections: Option<u64>,
    signals: Signals,
    resolver: Resolver,
    opts: Options,
    next_gen: u64,
    /// Set while start-up waits for first DNS answers.
    init_until: Option<Instant>,
    /// Every cluster has had its first DNS answer (or the wait gave up).
    dns_ready: bool,
    /// The hot-restart component; `None` only while one of its calls runs (it gets the
    /// proxy as its `Host` meanwhile). Boxed: it is taken out and put back on every turn of
    /// the loop, and moving the record itself cost two large copies each time.
    restart: Option<Box<HotRestart>>,
    exit_code: Option<i32>,
    exit_reason: Option<String>,
    /// Sessions detached for handover, sent to the successor after each event batch.
    moving: Vec<Session>,
    /// The admin interface, when the bootstrap has `admin.address`.
    admin: Option<Admin>,
    /// `stats_sinks`, flushed on the `StatsFlush` timer and once more at exit.
    stats_sinks: crate::stats::sink::Sinks,
    /// The systemd notify socket (a no-op without `$NOTIFY_SOCKET`).
    notifier: Notifier,
    /// `--pid-file`, written once we serve.
    pid_file: Option<PidFile>,
    /// The successor a reload (SIGHUP, SIGUSR2) started.
    successors: Successors,
    /// The `dynamic_resources` files, watched for new versions (a reload applies them).
    files: Option<watch::FileWatch>,
    /// Look for a file that changed while this process started, once it serves.
    check_files: bool,
    /// A SIGTERM, SIGINT or SIGQUIT came: the next SIGTERM or SIGINT stops at once.
    stop_requested: bool,
    /// We are the service's main process: no successor has taken over from us.
    main: bool,
    /// The start-up line was logged (once per process).
    announced: bool,
    /// Active health checks (none without `health_checks`).
    checkers: crate::cluster::checker::Checkers,
    /// Set while start-up waits for the first round of health checks: until then, at most.
    hc_init_until: Option<Instant>,
}

/// "Address already in use (os error 98)" → "Address already in use".
pub fn io_cause(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Binds one listener socket, naming the listener and address on failure. The socket is made
/// here rather than by mio so that the listener's own options (`enable_reuse_port`,
/// `socket_options` before bind and before listen) are set where Envoy sets them; a failed
/// option fails the bind, as it fails Envoy's listener.
pub fn bind_listener(
    name: &str,
    addr: SocketAddr,
    sock: &ListenerSocket,
) -> Result<TcpListener, String> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    let fail = |what: &str, e: nix::Error| {
        format!("{name}: {addr}: {what}{}", io_cause(&io::Error::from(e)))
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None).map_err(|e| fail("", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail("SO_REUSEADDR: ", e))?;
    if sock.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true).map_err(|e| fail("SO_REUSEPORT: ", e))?;
    }
    set_options(&fd, sock, SocketState::Prebind).map_err(|(d, e)| fail(&d, e))?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| fail("", e))?;
    set_options(&fd, sock, SocketState::Bound).map_err(|(d, e)| fail(&d, e))?;
    listen(&fd, Backlog::MAXALLOWABLE).map_err(|e| fail("", e))?;
    let l = TcpListener::from_std(std::net::TcpListener::from(fd));
    tune_listener(name, &l, sock)?;
    Ok(l)
}

/// A listening socket taken over from a hot-restart parent, with this config's options: the
/// ones meant for before bind or listen (and `enable_reuse_port`) are set on it too, since
/// most take effect whenever they are set; what the kernel refuses is returned, named.
pub fn adopt_listener(name: &str, l: &TcpListener, sock: &ListenerSocket) -> Result<(), String> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(l, sockopt::ReusePort, &sock.reuse_port)
        .map_err(|e| format!("{name}: SO_REUSEPORT: {}", io_cause(&io::Error::from(e))))?;
    for state in [SocketState::Prebind, SocketState::Bound] {
        set_options(l, sock, state)
            .map_err(|(d, e)| format!("{name}: {d}{}", io_cause(&io::Error::from(e))))?;
    }
    tune_listener(name, l, sock)
}

/// Sets `sock`'s options of stage `state` on `fd`; an error names the option.
fn set_options(
    fd: &impl AsFd,
    sock: &ListenerSocket,
    state: SocketState,
) -> Result<(), (String, nix::Error)> {
    for o in sock.options.iter().filter(|o| o.state == state) {
        crate::fds::set_int_option(fd, o.level, o.name, o.value).map_err(|e| {
            let label = if o.description.is_empty() {
                format!("socket option {}/{}", o.level, o.name)
            } else {
                format!("socket option \"{}\"", o.description)
            };
            (format!("{label}: "), e)
        })?;
    }
    Ok(())
}

/// Socket options of a listener (bound here or taken over from a parent), set once instead
/// of per connection. The accept queue is Envoy's default, `net.core.somaxconn` (mio listens
/// with 128, which a burst of new clients overflows: each dropped SYN costs the client a 1 s
/// retransmit). TCP_NODELAY is inherited by every accepted socket (Linux copies it from the
/// listener), so accepting costs no setsockopt.
pub fn tune_listener(name: &str, l: &TcpListener, sock: &ListenerSocket) -> Result<(), String> {
    use nix::sys::socket::{listen, setsockopt, sockopt, Backlog};
    // On a listening socket, listen() only changes the queue's length; the kernel caps the
    // largest value (-1) at net.core.somaxconn.
    if let Err(e) = listen(l, Backlog::MAXALLOWABLE) {
        log::warn!("listener {name}: cannot set the accept queue's length: {e}");
    }
    if let Err(e) = setsockopt(l, sockopt::TcpNoDelay, &true) {
        log::warn!("listener {name}: cannot set TCP_NODELAY: {e}");
    }
    if let Some(q) = sock.fast_open_queue {
        let q = i32::try_from(q).unwrap_or(i32::MAX);
        crate::fds::set_int_option(l, nix::libc::IPPROTO_TCP, nix::libc::TCP_FASTOPEN, q)
            .map_err(|e| format!("{name}: TCP_FASTOPEN: {}", io_cause(&io::Error::from(e))))?;
    }
    set_options(l, sock, SocketState::Listening)
        .map_err(|(d, e)| format!("{name}: {d}{}", io_cause(&io::Error::from(e))))
}

/// Runs the proxy until it exits.
pub fn run(opts: Options, b: Bootstrap) -> Result<(), String> {
    let mut p = Proxy::new(opts, b)?;
    p.run_loop().map_err(|e| format!("reactor: {e}"))?;
    match p.exit_code {
        Some(0) | None => Ok(()),
        Some(c) => Err(p
            .exit_reason
            .take()
            .unwrap_or_else(|| format!("exiting with code {c}"))),
    }
}

/// The listeners' data-path runtime (routers, TLS contexts) from their config: one unit per
/// different terminal filter of each listener (`ListenerRt`).
pub fn listener_rts(
    ls: Vec<crate::config::Listener>,
    service_cluster: &str,
    service_node: &str,
) -> Result<Vec<ListenerRt>, String> {
    let mut rts = Vec::new();
    for (home, l) in ls.into_iter().enumerate() {
        let tcp: Vec<bool> = l
            .filter_chains
            .iter()
            .map(|c| {
                l.terminals
                    .get(c.terminal)
                    .is_some_and(|t| t.tcp().is_some())
            })
            .collect();
        let tls = crate::tls::ListenerTls::new(&l.filter_chains, &tcp, l.inspect_timeout)
            .map_err(|e| format!("listener \"{}\": transport_socket: {e}", l.name))?;
        let buffer = l.per_connection_buffer_limit_bytes;
        let chains: Rc<[crate::config::FilterChainTls]> = l.filter_chains.into();
        let first_unit = rts.len();
        for terminal in l.terminals {
            let (limits, serve) = match terminal {
                Terminal::Http(hcm) => (
                    crate::http::session::limits(&hcm, buffer),
                    Serve::Http(Box::new(HttpRt {
                        router: Router::new(hcm.route_config.clone()),
                        user_agent: hcm
                            .add_user_agent
                            .then(|| (service_cluster.to_string(), service_node.to_string())),
                        hcm: *hcm,
                    })),
                ),
                Terminal::Tcp(t) => (crate::http::session::tcp_limits(&t, buffer), Serve::Tcp(t)),
            };
            rts.push(ListenerRt {
                limits: Rc::new(limits),
                name: l.name.clone(),
                address: l.address,
                serve,
                home,
                first_unit,
                chains: chains.clone(),
                connection_limit: l.connection_limit.clone(),
                runtime_connection_limit: l.runtime_connection_limit,
                service_cluster: service_cluster.to_string(),
                tls: tls.clone(),
                per_connection_buffer_limit_bytes: l.per_connection_buffer_limit_bytes,
                socket: l.socket.clone(),
                proxy_protocol: l.proxy_protocol.clone(),
                inspect_timeout: l.inspect_timeout,
            });
        }
    }
    Ok(rts)
}

/// The unit serving a plain connection on `l`'s listener (no ClientHello is read): chosen
/// by its addresses and the `raw_buffer` transport. `None`: no chain matches.
fn choose_plain(l: &ListenerRt, stream: &TcpStream) -> Option<usize> {
    if crate::chains::trivial(&l.chains) {
        return Some(l.unit_of(0));
    }
    let facts = crate::chains::Needs::of(&l.chains).facts(stream, "raw_buffer");
    crate::chains::select(&l.chains, |c| c, &facts).map(|c| l.unit_of(c))
}

/// The clusters' runtime (hosts, load balancers, TLS contexts) from their config.
pub fn cluster_rts(cs: Vec<crate::config::Cluster>) -> Result<Vec<ClusterRt>, String> {
    let mut clusters = Vec::new();
    for c in cs {
        let mut rt = ClusterRt::new(c);
        rt.set_up_tls()?;
        clusters.push(rt);
    }
    Ok(clusters)
}

impl Proxy {
    pub fn new(mut opts: Options, mut b: Bootstrap) -> Result<Proxy, String> {
        // Envoy: --service-cluster/--service-node override the bootstrap's node.
        if let Some(node) = &b.node {
            if opts.service_cluster.is_empty() {
                opts.service_cluster = node.cluster.clone();
            }
            if opts.service_node.is_empty() {
                opts.service_node = node.id.clone();
            }
        }
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("epoll: {e}"))?;
        let admin = Admin::new(&b, &opts)?;
        if !b.watched.is_empty() && opts.hot_restart_file.is_none() {
            return Err(
                "a new version of a dynamic_resources file or a runtime disk_layer is \
                 applied by a hot restart; start baton with --hot-restart-file PATH"
                    .into(),
            );
        }
        // Watched before anything is served; a file moved into place since it was read is
        // found by `stale` once this process serves.
        let files = watch::FileWatch::new(std::mem::take(&mut b.watched), poll.registry())?;
        let rts = listener_rts(b.listeners, &opts.service_cluster, &opts.service_node)?;
        let clusters = cluster_rts(b.clusters)?;
        let waker = Arc::new(
            Waker::new(poll.registry(), Tok::Waker.token()).map_err(|e| format!("waker: {e}"))?,
        );
        let resolver = Resolver::start(waker).map_err(|e| format!("dns thread: {e}"))?;
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGCHLD])
                .map_err(|e| format!("signals: {e}"))?;
        poll.registry()
            .register(&mut signals, Tok::Signals.token(), Interest::READABLE)
            .map_err(|e| format!("signals: {e}"))?;
        let mut mcfg = baton_statemachine::Config::new(
            std::process::id(),
            crate::VERSION,
            machine_listeners(
                &rts,
                admin.as_ref().map(Admin::address),
                opts.hot_restart_file.as_deref(),
            ),
        );
        mcfg.drain_time_ms = opts.drain_time.as_millis() as u64;
        mcfg.parent_shutdown_ms = opts.parent_shutdown_time.map(|d| d.as_millis() as u64);
        // Sockets are the configured listeners', not the units'.
        let n = rts.last().map_or(0, |l| l.home + 1);
        let opts_argv = opts.argv.clone();
        let pid_file = opts.pid_file.as_deref().map(PidFile::new);
        let logs: Vec<_> = rts
            .iter()
            .map(|l| {
                let lr = l.http().and_then(|h| h.hcm.local_reply.as_ref());
                (l.access_log(), lr)
            })
            .collect();
        let access_logs = crate::access_log::AccessLogs::open(&logs)?;
        let mut p = Proxy {
            poll,
            ctx: Ctx::new(registry, clusters, rts, access_logs),
            sessions: Slab::default(),
            listeners: (0..n).map(|_| None).collect(),
            accepting: vec![false; n],
            accept_paused: vec![false; n],
            fd_episode: false,
            accept_more: Vec::new(),
            trim_armed: false,
            trimmed: 0,
            open: vec![0; n],
            max_connections: b.max_downstream_connections,
            signals,
            resolver,
            opts,
            next_gen: 0,
            init_until: None,
            dns_ready: false,
            restart: Some(Box::new(HotRestart::new(baton_statemachine::Machine::new(
                mcfg,
            )))),
            exit_code: None,
            exit_reason: None,
            moving: Vec::new(),
            admin,
            stats_sinks: crate::stats::sink::Sinks::new(&b.stats_sinks, b.stats_flush_interval),
            notifier: Notifier::from_env(),
            pid_file,
            successors: Successors::new(&opts_argv),
            files,
            check_files: false,
            stop_requested: false,
            main: false,
            announced: false,
            checkers: Default::default(),
            hc_init_until: None,
        };
        let mut waiting = false;
        for c in 0..p.ctx.clusters.len() {
            observe::membership(&mut p.ctx, c);
            waiting |= p.refresh_dns(c);
            let outlier = p
                .ctx
                .clusters
                .get(c)
                .and_then(|c| c.cfg.outlier_detection.as_ref());
            if let Some(o) = outlier {
                let at = Instant::now() + o.interval;
                p.ctx.timers.arm(at, TimerKey::Outlier(c));
            }
        }
        p.checkers.sync(&mut p.ctx);
        p.ctx.overload = crate::overload::OverloadRt::build(&b.overload, &mut p.ctx.stats.store);
        if let Some(every) = p.ctx.overload.refresh() {
            p.ctx.timers.arm(Instant::now() + every, TimerKey::Overload);
        }
        p.ctx.tracer = crate::tracing::collector::Tracer::build(
            &mut p.ctx,
            &p.opts.service_cluster,
            &p.opts.service_node,
        );
        p.ctx.stats.store.set_matcher(b.stats_matcher.clone());
        if let Some(every) = p.stats_sinks.interval() {
            p.ctx
                .timers
                .arm(Instant::now() + every, TimerKey::StatsFlush);
        }
        if p.ctx.clusters.iter().any(|c| c.cfg.health_check.is_some()) {
            // Bounded like the DNS wait, from the start: a hot-restart parent gives its child
            // 10 s of silence during the handover.
            let at = Instant::now() + INIT_DNS_WAIT;
            p.hc_init_until = Some(at);
            p.ctx.timers.arm(at, TimerKey::Tick);
        }
        if waiting {
            let at = Instant::now() + INIT_DNS_WAIT;
            p.init_until = Some(at);
            p.ctx.timers.arm(at, TimerKey::Tick);
        } else {
            p.dns_ready = true;
        }
        // Binds (fresh start) or connects to the parent; listeners are registered only when
        // the machine says StartAccepting, i.e. once DNS is ready and the parent stopped.
        // A start-up failure (a busy port) is the process's one error line, from main.
        if let Some(mut hr) = p.restart.take() {
            let r = hr.start(&mut p);
            p.restart = Some(hr);
            r?;
        }
        if let Some(code) = p.exit_code.filter(|&c| c != 0) {
            return Err(p
                .exit_reason
                .clone()
                .unwrap_or_else(|| format!("hot restart failed (exit {code})")));
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
        let mut changed = false;
        for a in self.resolver.drain() {
            let Some(cl) = self.ctx.clusters.get_mut(a.cluster) else {
                continue;
            };
            if let Ok(addrs) = &a.result {
                log::debug!(
                    "dns: cluster {} endpoint {}: {addrs:?}",
                    cl.cfg.name,
                    a.endpoint
                );
            }
            // A name that stays unresolvable is logged when it starts failing and when it
            // resolves again, not on every refresh.
            let news = cl.dns_outcome(a.endpoint, &a.result);
            let host = cl
                .cfg
                .endpoints
                .get(a.endpoint)
                .map_or("?", |e| e.host.as_str());
            match news {
                Some(Err(e)) => log::warn!(
                    "dns: cluster {}: {host}: {e} (keeping the last good answer; logged again when it changes)",
                    cl.cfg.name
                ),
                Some(Ok(())) => log::info!("dns: cluster {}: {host} resolves again", cl.cfg.name),
                None => {}
            }
            if cl.apply_dns(a.endpoint, &a.result) {
                changed = true;
                let hosts: Vec<SocketAddr> = cl.hosts.iter().map(|h| h.addr).collect();
                log::info!("cluster {}: hosts now {hosts:?}", cl.cfg.name);
            }
            let settled = !cl.pending.iter().any(|&p| p);
            let refresh = cl.cfg.dns_refresh_rate;
            let at = self.ctx.now() + refresh;
            observe::dns_result(&mut self.ctx, a.cluster, a.result.is_ok());
            if settled {
                self.ctx.timers.arm(at, TimerKey::Dns(a.cluster));
            }
        }
        if changed {
            // New hosts get a checker (and start unhealthy), removed ones lose theirs.
            self.checkers.sync(&mut self.ctx);
        }
        if self.init_until.is_some()
            && self
                .ctx
                .clusters
                .iter()
                .all(|c| !c.pending.iter().any(|&p| p))
        {
            self.init_until = None;
            self.set_dns_ready();
        }
    }

    fn set_dns_ready(&mut self) {
        self.dns_ready = true;
        self.restart(|hr, host| hr.check_progress(host));
    }

    /// Runs one call of the hot-restart component with this proxy as its host. A failure
    /// there (e.g. a listener that cannot be bound) is fatal for the process.
    fn restart(&mut self, f: impl FnOnce(&mut HotRestart, &mut Proxy) -> Result<(), String>) {
        let Some(mut hr) = self.restart.take() else {
            return;
        };
        let r = f(&mut hr, self);
        self.restart = Some(hr);
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// A fatal problem found inside the loop (e.g. a listener could not be bound).
    fn fail(&mut self, e: String) {
        log::error!("{e}");
        self.exit_reason = Some(e);
        self.exit_code = Some(1);
    }

    /// The overload manager's refresh: samples the heap, sets the actions' states, gives
    /// memory back when `shrink_heap` says so, and accepts what waited while
    /// `stop_accepting_connections` held the listeners.
    fn overload_tick(&mut self, at: Instant) {
        let now = self.ctx.now();
        let heap = crate::overload::heap_in_use();
        let changed = self
            .ctx
            .overload
            .update(heap, &mut self.ctx.stats.store, now);
        if changed.shrink {
            let freed = self.ctx.pool.trim_all();
            self.ctx.pipes.trim();
            crate::util::release_heap();
            log::info!("overload: shrink_heap freed {freed} pooled buffers");
        }
        if changed.resume_accepting {
            for i in 0..self.listeners.len() {
                if self.may_accept(i) {
                    self.accept(i);
                }
            }
        }
        if let Some(every) = self.ctx.overload.refresh() {
            // From the due time, so samples keep their rhythm; never in the past.
            let next = (at + every).max(now);
            self.ctx.timers.arm(next, TimerKey::Overload);
        }
    }

    /// Accepts up to `ACCEPT_BATCH` connections from listener `i`; if it stops there, the
    /// listener is noted in `accept_more` for the next round. While the overload manager's
    /// `stop_accepting_connections` is saturated nothing is accepted: the backlog holds the
    /// connections and the refresh that ends the action accepts them.
    fn accept(&mut self, i: usize) {
        if self
            .ctx
            .overload
            .saturated(crate::config::OverloadKind::StopAcceptingConnections)
        {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(Some(l)) = self.listeners.get(i) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    if self.fd_episode {
                        self.fd_episode = false;
                        log::info!("file descriptors available again: accepting");
                    }
                    if self.admit(i) {
                        let unit = self.ctx.homes.get(i).copied().unwrap_or(0);
                        self.adopt(stream, peer, unit, None);
                    } else {
                        drop(stream); // over a connection limit: closed at once
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // One connection failed (reset before we took it, refused by a firewall hook):
                // the ones queued behind it are still there, and raise no new edge.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(nix::libc::ECONNABORTED | nix::libc::EPROTO | nix::libc::EPERM)
                    ) =>
                {
                    log::debug!("accept on {}: {e}", self.name(i));
                }
                Err(e) if crate::fds::exhausted(&e) => {
                    // Idle pipes and idle upstream connections are descriptors a client can
                    // use: close them and try again.
                    let closed = crate::http::upstream::shed_idle(&mut self.ctx);
                    if closed > 0 {
                        log::debug!(
                            "accept: {e}: closed {closed} idle pipes and upstream connections"
                        );
                        continue;
                    }
                    // The backlog fills and raises no new edge: try again on a timer, as nginx
                    // does, instead of waiting for one that never comes.
                    self.pause_accept(i, &e);
                    return;
                }
                Err(e) => {
                    log::warn!("accept on {}: {e}", self.name(i));
                    return;
                }
            }
        }
        if !self.accept_more.contains(&i) {
            self.accept_more.push(i);
        }
    }

    /// The listeners that stopped at `ACCEPT_BATCH` accept their next batch (those still
    /// accepting and not paused for lack of descriptors).
    fn accept_queued(&mut self) {
        for i in std::mem::take(&mut self.accept_more) {
            if self.may_accept(i) {
                self.accept(i);
            }
        }
    }

    /// Listener `i` is accepting and not paused for lack of descriptors.
    fn may_accept(&self, i: usize) -> bool {
        self.accepting.get(i) == Some(&true) && self.accept_paused.get(i) != Some(&true)
    }

    /// Whether a newly accepted connection on listener `i` is within the connection limits
    /// (the overload manager's global one, then the listener's filter); counted when not.
    /// Connections handed over by a parent are always adopted.
    fn admit(&mut self, i: usize) -> bool {
        let unit = self.ctx.homes.get(i).copied().unwrap_or(0);
        if self
            .max_connections
            .is_some_and(|max| self.sessions.len() as u64 >= max)
        {
            self.ctx.stats.cx_refused(unit, Refused::Global);
            return false;
        }
        // Envoy's listener rejects by the overload action after the global limit.
        if self.ctx.overload.roll(
            crate::config::OverloadKind::RejectIncomingConnections,
            &mut self.ctx.rng,
        ) {
            self.ctx.stats.cx_refused(unit, Refused::Overload);
            return false;
        }
        let open = self.open.get(i).copied().unwrap_or(0) as u64;
        let Some(l) = self.ctx.home(i) else {
            return true;
        };
        // Envoy's order: the global limit, the listener's runtime limit, then the filter.
        let refused = if l.runtime_connection_limit.is_some_and(|max| open >= max) {
            Refused::Listener
        } else if l
            .connection_limit
            .as_ref()
            .is_some_and(|c| open >= c.max_connections)
        {
            Refused::Filter
        } else {
            return true;
        };
        self.ctx.stats.cx_refused(unit, refused);
        false
    }

    /// Configured listener `k`'s name (for the logs).
    fn name(&self, k: usize) -> &str {
        self.ctx.home(k).map_or("?", |l| l.name.as_str())
    }

    /// A session of unit `l` opened (`+1`) or left (`-1`): counted for its listener.
    fn count_open(&mut self, l: usize, delta: isize) {
        let k = self.ctx.listeners.get(l).map_or(usize::MAX, |u| u.home);
        if let Some(n) = self.open.get_mut(k) {
            *n = n.saturating_add_signed(delta);
            let n = *n;
            self.ctx.stats.limit_active(l, n);
        }
    }

    /// Accepting on listener `i` ran out of descriptors: retry in `ACCEPT_RETRY`, log and count
    /// once per episode.
    fn pause_accept(&mut self, i: usize, e: &io::Error) {
        if !self.fd_episode {
            self.fd_episode = true;
            self.ctx.stats.fd_exhausted();
            log::warn!(
                "accept on {}: {e}; retrying every {:?} until descriptors free up",
                self.name(i),
                crate::fds::ACCEPT_RETRY
            );
        }
        if !self.accept_paused.iter().any(|&p| p) {
            let at = self.ctx.now() + crate::fds::ACCEPT_RETRY;
            self.ctx.timers.arm(at, TimerKey::AcceptRetry);
        }
        if let Some(p) = self.accept_paused.get_mut(i) {
            *p = true;
        }
    }

    /// The retry timer: paused listeners accept again (and pause again if still short).
    fn retry_accept(&mut self) {
        self.ctx.fd_reserve.refill();
        let paused: Vec<usize> = (0..self.accept_paused.len())
            .filter(|&i| self.accept_paused[i])
            .collect();
        for i in paused {
            self.accept_paused[i] = false;
            if self.accepting.get(i) == Some(&true) {
                self.accept(i);
            }
        }
    }

    /// Starts serving a client connection: freshly accepted on unit `listener`, its
    /// listener's first (`pending` None: its filter chain is chosen here, or from the
    /// ClientHello by the session), or handed over by our parent on the unit of its chain with
    /// the bytes it had already read (always plain: TLS connections are never handed over).
    fn adopt(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        mut listener: usize,
        pending: Option<&[u8]>,
    ) {
        if pending.is_some() {
            if self
                .ctx
                .listeners
                .get(listener)
                .is_some_and(|l| l.tcp().is_some())
            {
                // An idle HTTP keep-alive connection whose chain is a TCP proxy in this
                // config: its client speaks HTTP, so it is closed rather than forwarded.
                log::info!(
                    "moved connection from {peer}: its filter chain is a tcp_proxy in this config; closing it"
                );
                return;
            }
            // Accepted by a parent (which may not have set it on its listener).
            let _ = stream.set_nodelay(true);
        }
        let mut tls = None;
        // The PROXY protocol header comes first: the chain is chosen after it.
        let mut proxy_due = None;
        if pending.is_none() {
            let Some(l) = self.ctx.listeners.get(listener) else {
                return;
            };
            tls = l.tls.clone();
            if l.proxy_protocol.is_some() {
                proxy_due = Some(self.ctx.now() + l.inspect_timeout);
            } else if tls.is_none() {
                match choose_plain(l, &stream) {
                    Some(u) => listener = u,
                    None => {
                        log::debug!("connection from {peer}: no filter chain matches; closed");
                        self.ctx.stats.no_chain(listener);
                        return;
                    }
                }
            }
        }
        let Some(id) = self.register_client(&mut stream, peer) else {
            return;
        };
        self.next_gen += 1;
        let choosing = tls.is_some() || proxy_due.is_some();
        let client = match pending {
            None => crate::tls::Stream::accepted(stream, tls, self.ctx.now()),
            Some(_) => crate::tls::Stream::plain(stream),
        };
        let mut s = Session::new(id, self.next_gen, client, peer, listener, &self.ctx);
        if let Some(due) = proxy_due {
            s.expect_proxy_header(due);
        }
        if let Some(bytes) = pending {
            s.preload(&mut self.ctx.pool, bytes);
            s.keep_origin();
        }
        self.sessions.insert(s);
        self.count_open(listener, 1);
        // A connection whose chain the ClientHello chooses counts for its connection manager
        // once chosen (`Session::choose_chain`).
        observe::cx_open(&mut self.ctx, listener, !choosing);
        self.drive(id);
    }

    /// Registers a client socket under the id its session will have.
    fn register_client(&mut self, stream: &mut TcpStream, peer: SocketAddr) -> Option<usize> {
        let id = self.sessions.next_key();
        match self.poll.registry().register(
            stream,
            Tok::Down(id).token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            Ok(()) => Some(id),
            Err(e) => {
                log::warn!("cannot register connection from {peer}: {e}");
                None
            }
        }
    }

    /// Serves a tunnel that came from our parent, or one of ours whose handover did not
    /// happen: its client socket as a session, its upstream socket attached.
    fn resume_tunnel(&mut self, t: crate::hot_restart::tunnels::TunnelMove) {
        let crate::hot_restart::tunnels::TunnelMove {
            listener,
            peer,
            mut client,
            upstream,
            cluster,
            upstream_addr,
            state,
            mut rq,
            origin: _,
        } = t;
        let Some(ci) = self.ctx.clusters.iter().position(|c| c.cfg.name == cluster) else {
            log::warn!(
                "moved tunnel from {peer}: cluster {cluster:?} is not configured; closing it"
            );
            return;
        };
        let Some(id) = self.register_client(&mut client, peer) else {
            return;
        };
        let up = match UpConn::adopt(&mut self.ctx, upstream, ci, upstream_addr, id) {
            Ok(u) => u,
            Err(e) => {
                log::warn!("cannot register tunnel upstream {upstream_addr}: {e}");
                let _ = self.poll.registry().deregister(&mut client);
                return;
            }
        };
        rq.cluster = Some(ci);
        self.next_gen += 1;
        let s = Session::resume_tunnel(
            id,
            self.next_gen,
            client,
            up,
            peer,
            listener,
            state,
            rq,
            &mut self.ctx,
        );
        self.sessions.insert(s);
        self.count_open(listener, 1);
        observe::cx_open(&mut self.ctx, listener, true);
        self.drive(id);
    }

    /// One waiting exchange per freed connect slot or pooled connection gets to go (oldest
    /// first); one that still finds nothing goes back to the head of the line.
    fn wake_waiters(&mut self) {
        while let Some((addr, first)) = self.ctx.upstreams.next_freed() {
            let mut next = first;
            while let Some((id, gen)) = next.take() {
                let queued = |p: &Proxy| {
                    p.sessions
                        .get(id)
                        .is_some_and(|s| s.gen() == gen && s.is_queued())
                };
                if !queued(self) {
                    next = self.ctx.upstreams.next_waiter(addr);
                    continue; // gone or timed out meanwhile
                }
                self.with_session(id, |s, ctx| {
                    s.retry_connect(ctx);
                    s.drive(ctx)
                });
                if queued(self) {
                    self.ctx.upstreams.requeue(addr, (id, gen));
                }
                break;
            }
        }
    }

    /// Runs `f` on session `id` and retires it when it is finished. The last line of
    /// defence: a panic while handling one connection closes that connection (and its
    /// upstream), is logged and counted, and every other connection goes on being served.
    /// Why shared state stays consistent is written in docs/architecture.md.
    fn with_session(&mut self, id: usize, f: impl FnOnce(&mut Session, &mut Ctx) -> Fate) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        let ctx = &mut self.ctx;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(s, ctx)));
        match run {
            Ok(Fate::Alive) => {}
            Ok(Fate::Move) => {
                if let Some(s) = self.sessions.remove(id) {
                    self.count_open(s.listener(), -1);
                    self.moving.push(s);
                }
            }
            Ok(Fate::Closed) => {
                if let Some(s) = self.sessions.remove(id) {
                    self.count_open(s.listener(), -1);
                    let ctx = &mut self.ctx;
                    let closed =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.close(ctx)));
                    if closed.is_err() {
                        self.panicked(id, None);
                    }
                }
            }
            Err(_) => {
                let s = self.sessions.remove(id);
                if let Some(s) = &s {
                    self.count_open(s.listener(), -1);
                }
                self.panicked(id, s);
            }
        }
    }

    fn panicked(&mut self, id: usize, s: Option<Session>) {
        let peer = s.as_ref().map(|s| s.peer().to_string()).unwrap_or_default();
        log::error!("connection {id} ({peer}): panic while handling it; connection closed");
        self.ctx.stats.panic();
        if let Some(s) = s {
            let ctx = &mut self.ctx;
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.close_after_panic(ctx)))
                .is_err()
            {
                log::error!("connection {id}: panic again while closing it");
            }
        }
    }

    fn drive(&mut self, id: usize) {
        self.with_session(id, |s, ctx| s.drive(ctx));
    }

    fn on_signal(&mut self) {
        let sigs = service::stop_signals_first(self.signals.pending().collect());
        for sig in sigs {
            let name = service::signal_name(sig);
            match sig {
                SIGTERM | SIGINT | SIGQUIT => self.on_stop_signal(sig, &name),
                SIGHUP | SIGUSR2 => self.reload(&name),
                SIGCHLD => self.reap_successor(),
                SIGUSR1 => {
                    self.ctx.access_logs.reopen();
                    crate::logging::reopen();
                    log::info!("{name}: reopened the logs");
                }
                _ => log::info!("{name} ignored"),
            }
        }
    }

    /// SIGTERM, SIGINT (Envoy) and SIGQUIT (nginx's graceful stop) drain; a second SIGTERM or
    /// SIGINT stops at once, cutting what is still open. A second SIGQUIT changes nothing.
    fn on_stop_signal(&mut self, sig: i32, name: &str) {
        let pid = std::process::id();
        if self.stop_requested {
            if sig == SIGQUIT {
                log::info!("{name}: already draining (pid {pid}); SIGTERM or SIGINT stops now");
                return;
            }
            let n = self.sessions.len();
            log::warn!("{name} while draining: stopping now (pid {pid}); {n} connection(s) cut");
            if self.main {
                self.notifier.send("STOPPING=1");
            }
            self.exit_code = Some(0);
            return;
        }
        self.stop_requested = true;
        log::info!(
            "{name}: draining (pid {pid}, up to {} s); SIGTERM or SIGINT again stops now",
            self.opts.drain_time.as_secs()
        );
        // A process a successor took over from is no longer the service: its drain is part
        // of the reload, not a stop.
        if self.main {
            self.notifier.send("STOPPING=1");
        }
        self.restart(|hr, host| hr.event(host, baton_statemachine::Event::SigTerm));
    }

    /// SIGHUP (and HAProxy's SIGUSR2): start a successor with our command line — the binary
    /// and config as they are on disk now — that takes over through the restart socket and
    /// then tells us to drain. A failed successor leaves us serving as before.
    fn reload(&mut self, name: &str) {
        if self.opts.hot_restart_file.is_none() {
            log::warn!("{name}: reloading needs --hot-restart-file; nothing done");
            return;
        }
        if let Some(pid) = self.successors.pending() {
            log::warn!("{name}: a reload is already in progress (successor pid {pid}); refused");
            return;
        }
        if self.stop_requested || self.ctx.draining() {
            log::warn!("{name}: draining; reload refused");
            return;
        }
        let state = self.restart.as_deref().map(HotRestart::state);
        if state != Some(baton_statemachine::State::Serving) {
            log::warn!(
                "{name}: a hot restart is already under way ({}); reload refused",
                state.map(|s| s.to_string()).unwrap_or_default()
            );
            return;
        }
        self.notifier.send(&service::reloading_message());
        match self.successors.spawn() {
            Ok((pid, cmd)) => log::info!("{name}: reloading: started successor pid {pid}: {cmd}"),
            Err(e) => {
                log::error!(
                    "{name}: reload failed: cannot start the successor: {e}; still serving"
                );
                self.notifier.send(&service::ready_message());
            }
        }
    }

    /// A `dynamic_resources` file was moved into place: reload (a hot restart reads every
    /// file again; a bad new version leaves this process serving).
    fn on_files(&mut self) {
        let found = self.files.as_mut().and_then(watch::FileWatch::moved);
        if let Some(w) = self.files.take_if(|w| w.broken) {
            w.deregister(self.poll.registry());
        }
        let Some(f) = found else {
            return;
        };
        // A process that handed over (draining) or has not taken over yet leaves new versions
        // to the one in charge (a successor checks the files once it serves).
        if self.main {
            self.reload(&format!("new {f}"));
        }
    }

    /// SIGCHLD: reaps a successor that exited (no zombie) and logs how it ended; one that
    /// never took over leaves us serving, and the service manager is told so.
    fn reap_successor(&mut self) {
        let Some(end) = self.successors.reap() else {
            return;
        };
        if end.took_over {
            log::info!("successor pid {} exited ({})", end.pid, end.status);
            return;
        }
        log::error!(
            "reload failed: successor pid {} exited ({}) before taking over; still serving (pid {})",
            end.pid,
            end.status,
            std::process::id()
        );
        if self.main && !self.stop_requested {
            self.notifier.send(&service::ready_message());
        }
    }

    /// The restart machine changed state: tells the service manager who serves, writes the
    /// pid file and logs the start-up line.
    fn state_changed(&mut self, from: baton_statemachine::State, to: baton_statemachine::State) {
        use baton_statemachine::State as S;
        match (from, to) {
            // A fresh start, or a takeover (we are the service's main process from now on),
            // or a rollback after our successor died.
            (_, S::Serving) => {
                self.main = true;
                // A file that changed while this process started is looked at once it serves;
                // after a rollback (our successor failed) it is the version that just failed,
                // and trying it again would start the next successor, and the next.
                self.check_files =
                    self.files.is_some() && matches!(from, S::FdsReceived | S::Listening);
                self.announce();
                if let Some(p) = self.pid_file.as_mut() {
                    if let Err(e) = p.write() {
                        log::error!("{e}");
                    }
                }
                self.notifier.send(&service::ready_message());
                if from != S::FdsReceived {
                    // systemd versions that ignore MAINPID= during a reload take this one,
                    // sent after the READY=1 that ended the reload (docs/operations.md).
                    self.notifier
                        .send(&format!("MAINPID={}", std::process::id()));
                }
            }
            (_, S::HandedOver) => {
                self.main = false;
                self.successors.took_over();
            }
            _ => {}
        }
    }

    /// The start-up line: what runs, from which config, where, as which process.
    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        let config = match (&self.opts.config_path, &self.opts.config_yaml) {
            (Some(p), Some(_)) => format!("{} + --config-yaml", p.display()),
            (Some(p), None) => p.display().to_string(),
            _ => "--config-yaml".to_string(),
        };
        let listeners: Vec<String> = (0..self.listeners.len())
            .filter_map(|k| self.ctx.home(k))
            .zip(&self.listeners)
            .map(|(rt, l)| {
                let a = l
                    .as_ref()
                    .and_then(|l| l.local_addr().ok())
                    .unwrap_or(rt.address);
                format!("{} {a}", rt.name)
            })
            .collect();
        let admin = self
            .admin
            .as_ref()
            .map(|a| a.address().to_string())
            .unwrap_or_else(|| "none".into());
        log::info!(
            "baton {} (commit {}) serving: config {config}; listeners [{}]; admin {admin}; pid {}; epoch {}",
            crate::VERSION,
            crate::GIT_COMMIT,
            listeners.join(", "),
            std::process::id(),
            self.ctx.epoch()
        );
    }

    /// Responses now carry `Connection: close`, idle connections close at a safe point, and
    /// the pool empties. Listeners are the state machine's business (closed, or left to the
    /// new process).
    fn begin_drain(&mut self, handoff: bool) {
        if self.ctx.draining() {
            return;
        }
        // With a successor alive, idle connections move to it instead of closing.
        self.ctx.start_drain(handoff);
        self.ctx.stats.set_state(ServerState::Draining);
        if handoff {
            log::info!("draining: idle connections will be handed to the new process");
        }
        close_all_idle(&mut self.ctx);
        for id in self.sessions.keys() {
            self.drive(id);
        }
    }

    /// An admin-interface event; runs what the request asked the proxy to do.
    pub(super) fn on_admin(&mut self, i: usize) {
        let Some(mut a) = self.admin.take() else {
            return;
        };
        if self.ctx.stats.state() == ServerState::PreInitializing && self.accepting.contains(&true)
        {
            self.ctx.stats.set_state(ServerState::Live);
        }
        let bound = (0..self.listeners.len())
            .filter_map(|k| self.ctx.home(k))
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
        if let Some(at) = a.want_sweep(self.ctx.now()) {
            self.ctx.timers.arm(at, TimerKey::AdminSweep);
        }
        self.admin = Some(a);
        match action {
            Some(admin::Action::DrainListeners) => {
                log::info!("admin: /drain_listeners: listeners closed");
                self.ctx.stats.set_state(ServerState::Draining);
                for l in 0..self.listeners.len() {
                    self.close_listener(l);
                }
            }
            Some(admin::Action::Quit) => {
                log::info!("admin: /quitquitquit: exiting (pid {})", std::process::id());
                self.exit_code = Some(0);
            }
            None => {}
        }
    }

    /// Stops accepting on listener `i` and closes our copy of its socket.
    fn close_listener(&mut self, i: usize) {
        if let Some(Some(mut l)) = self.listeners.get_mut(i).map(Option::take) {
            if self.accepting.get(i) == Some(&true) {
                let _ = self.poll.registry().deregister(&mut l);
            }
            if let Some(a) = self.accepting.get_mut(i) {
                *a = false;
            }
        }
    }

    fn on_timer(&mut self, at: Instant, key: TimerKey) {
        match key {
            TimerKey::Session(id, gen) => {
                if self.sessions.get(id).is_some_and(|s| s.gen() == gen) {
                    self.with_session(id, |s, ctx| s.on_timer(ctx, at));
                }
            }
            TimerKey::Dns(c) => {
                self.refresh_dns(c);
            }
            TimerKey::Tick => {
                observe::on_tick(&mut self.ctx);
                if self.init_until.is_some_and(|t| t <= at) {
                    log::warn!(
                        "first DNS answers not all in after {INIT_DNS_WAIT:?}; accepting anyway"
                    );
                    self.init_until = None;
                    self.set_dns_ready();
                }
                if self.hc_init_until.is_some_and(|t| t <= at) {
                    self.hc_init_until = None;
                    if !crate::cluster::checker::first_round_done(&self.ctx) {
                        log::warn!(
                            "first health checks not all done after {INIT_DNS_WAIT:?}; accepting anyway"
                        );
                    }
                }
            }
            TimerKey::AcceptRetry => self.retry_accept(),
            TimerKey::Outlier(c) => {
                if let Some(at) = observe::outlier_interval(&mut self.ctx, c) {
                    self.ctx.timers.arm(at, TimerKey::Outlier(c));
                }
            }
            TimerKey::UpIdle(addr) => crate::http::upstream::idle_timer(&mut self.ctx, addr, at),
            TimerKey::Overload => self.overload_tick(at),
            TimerKey::Health(i, gen) => self.checkers.on_timer(&mut self.ctx, i, gen, at),
            TimerKey::TraceFlush(i) => crate::tracing::collector::on_flush_timer(&mut self.ctx, i),
            TimerKey::TraceReport(i, gen) => {
                crate::tracing::collector::on_report_timer(&mut self.ctx, i, gen)
            }
            TimerKey::Mirror(i, gen) => crate::http::mirror::on_timer(&mut self.ctx, i, gen),
            TimerKey::PoolTrim => {
                self.trim_armed = false;
                self.trimmed += self.ctx.pool.trim();
                self.ctx.pipes.trim();
                if self.trimmed >= HEAP_TRIM_BUFFERS {
                    self.trimmed = 0;
                    crate::util::release_heap();
                }
            }
            TimerKey::AdminSweep => {
                if let Some(a) = self.admin.as_mut() {
                    if let Some(at) = a.sweep(&mut self.ctx) {
                        self.ctx.timers.arm(at, TimerKey::AdminSweep);
                    }
                }
            }
            TimerKey::Restart => {
                self.restart(|hr, host| hr.tick(host));
            }
            TimerKey::StatsFlush => {
                self.stats_sinks.flush(&self.ctx.stats.store);
                if let Some(every) = self.stats_sinks.interval() {
                    // From the due time, so flushes keep their rhythm; never in the past.
                    let next = (at + every).max(self.ctx.now());
                    self.ctx.timers.arm(next, TimerKey::StatsFlush);
                }
            }
        }
    }

    /// Hands the sessions detached for handover to the successor (or closes them when it is
    /// gone).
    fn send_moving(&mut self) {
        let moving = std::mem::take(&mut self.moving);
        if moving.is_empty() {
            return;
        }
        // Open tunnels go with their upstream sockets and buffers, acknowledged per batch.
        let mut tunnels = Vec::new();
        let mut moving_idle = Vec::with_capacity(moving.len());
        for s in moving {
            if s.in_tunnel() {
                tunnels.extend(s.into_moved_tunnel(&mut self.ctx));
            } else {
                moving_idle.push(s);
            }
        }
        if !tunnels.is_empty() {
            self.restart(|hr, host| {
                hr.send_tunnels(host, tunnels);
                Ok(())
            });
        }
        let moving = moving_idle;
        if moving.is_empty() {
            return;
        }
        if self
            .restart
            .as_deref()
            .and_then(HotRestart::child_key)
            .is_none()
        {
            for s in moving {
                s.close(&mut self.ctx);
            }
            return;
        }
        let leaving: Vec<Leaving> = moving
            .into_iter()
            .map(|s| {
                let unit = s.listener();
                let peer = s.peer();
                let origin = s.origin();
                let (stream, pending) = s.into_moved(&mut self.ctx);
                let listener = host::wire_name(&self.ctx, unit, Some(&stream), origin.as_ref());
                Leaving {
                    listener,
                    peer,
                    stream,
                    pending,
                }
            })
            .collect();
        if let Some(hr) = self.restart.as_mut() {
            hr.send_connections(leaving);
        }
    }

    /// Drops timer entries nobody will act on (closed sessions, superseded deadlines) once
    /// they outnumber the live ones; amortised O(1) per entry.
    fn compact_timers(&mut self) {
        let live = 2 * self.sessions.len() + self.ctx.mirrors.len() + 1024;
        if self.ctx.timers.len() <= live {
            return;
        }
        let sessions = &self.sessions;
        let mirrors = &self.ctx.mirrors;
        let tracer = self.ctx.tracer.as_deref();
        self.ctx.timers.retain(|at, key| match key {
            TimerKey::Session(id, gen) => sessions
                .get(id)
                .is_some_and(|s| s.gen() == gen && s.armed() == Some(at)),
            // A shadow's or a report's timer outlives it when it ends first.
            TimerKey::Mirror(i, gen) => mirrors.is_live(i, gen),
            TimerKey::TraceReport(i, gen) => tracer.is_some_and(|t| t.is_live(i, gen)),
            _ => true,
        });
    }

    pub fn run_loop(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.accept_more.is_empty() {
                self.ctx
                    .timers
                    .next()
                    .map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.ctx.set_now(Instant::now());
            for ev in events.iter() {
                let Some(tok) = Tok::from_token(ev.token()) else {
                    continue;
                };
                let hup = ev.is_read_closed() || ev.is_error();
                let ready = Ready {
                    readable: ev.is_readable() || hup,
                    writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                    hup,
                };
                match tok {
                    Tok::Listener(i) => self.accept(i),
                    Tok::Waker => self.on_dns_answers(),
                    Tok::Signals => self.on_signal(),
                    Tok::Down(id) => self.with_session(id, |s, ctx| {
                        s.client_event(ready);
                        s.drive(ctx)
                    }),
                    Tok::Up(slot) => match self.ctx.upstreams.owner(slot) {
                        Some(UpOwner::Session(id)) => self.with_session(id, |s, ctx| {
                            s.up_event(slot, ready);
                            s.drive(ctx)
                        }),
                        Some(UpOwner::Idle(i)) => idle_event(&mut self.ctx, i),
                        None => {}
                    },
                    Tok::Restart(usize::MAX) => self.restart(|hr, host| {
                        hr.accept(host);
                        Ok(())
                    }),
                    Tok::Restart(k) => self.restart(|hr, host| hr.ready(host, k as u64)),
                    Tok::Admin(i) => self.on_admin(i),
                    Tok::Health(i) => self.checkers.on_event(&mut self.ctx, i),
                    Tok::Trace(i) => crate::tracing::collector::on_event(&mut self.ctx, i),
                    Tok::Mirror(i) => crate::http::mirror::on_event(&mut self.ctx, i),
                    Tok::Files => self.on_files(),
                    Tok::Check(id) => self.with_session(id, |s, ctx| {
                        s.check_event();
                        s.drive(ctx)
                    }),
                }
            }
            while let Some((at, key)) = self.ctx.timers.pop_due(self.ctx.now()) {
                self.on_timer(at, key);
            }
            if !self.accept_more.is_empty() {
                self.accept_queued();
            }
            if !self.trim_armed && (self.ctx.pool.wants_trim() || self.ctx.pipes.wants_trim()) {
                self.trim_armed = true;
                let at = self.ctx.now() + POOL_TRIM_EVERY;
                self.ctx.timers.arm(at, TimerKey::PoolTrim);
            }
            self.wake_waiters();
            self.compact_timers();
            if !self.moving.is_empty() {
                self.send_moving();
            }
            self.restart(|hr, host| hr.check_progress(host));
            if self.check_files {
                self.check_files = false;
                if let Some(f) = self.files.as_ref().and_then(watch::FileWatch::stale) {
                    self.reload(&format!("{f} changed while starting"));
                }
            }
            if self.exit_code.is_some() {
                // What was counted since the last flush is sent before the process goes.
                self.stats_sinks.flush(&self.ctx.stats.store);
                self.send_moving();
                if let Some(hr) = self.restart.as_mut() {
                    hr.flush_before_exit();
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepting sets no socket option: the listener's TCP_NODELAY must reach every accepted
    /// socket (a kernel that did not copy it would leave responses to Nagle's algorithm).
    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let l = bind_listener("test", addr, &ListenerSocket::default()).expect("bind");
        let to = l.local_addr().expect("local address");
        let _client = std::net::TcpStream::connect(to).expect("connect");
        let mut accepted = None;
        for _ in 0..1000 {
            match l.accept() {
                Ok((s, _)) => {
                    accepted = Some(s);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        let s = accepted.expect("the connection was never accepted");
        assert!(s.nodelay().expect("TCP_NODELAY"));
    }
}
