//! One upstream connection, and the per-address keep-alive pool it returns to between requests.
//!
//! A connection is registered with the reactor once, under a stable slot token; moving it
//! between a session and the pool only rewrites who owns the slot. Re-registering on every
//! hand-off cost two epoll_ctl calls per proxied request.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use std::collections::VecDeque;

use mio::net::TcpStream;
use mio::Interest;

use crate::cluster::breakers::Resource;
use crate::context::Ctx;
use crate::observe;
use crate::reactor::{TimerKey, Tok};
use crate::stats::PoolLimit;
use crate::tls::Stream;
use crate::util::{FastMap, Slab};

/// Most idle connections kept per upstream address; more are closed when they come back.
const MAX_IDLE_PER_ADDR: usize = 256;
/// Most connects in flight to one upstream address (see `UpPool::connecting`).
pub const MAX_CONNECTING: usize = 64;

/// Every upstream connection not owned by an exchange, and who owns each token. Its fields
/// are written only here.
#[derive(Debug, Default)]
pub struct UpPool {
    /// Idle keep-alive upstream connections (boxed: they move to and from sessions, whose
    /// idle record should not carry an upstream connection's room).
    idle: Slab<Box<UpConn>>,
    /// Owner of each upstream connection's token (`Tok::Up(slot)`).
    owner: Slab<UpOwner>,
    /// Connects in flight per upstream address, bounded by `MAX_CONNECTING`: a burst of new
    /// clients must not turn into a SYN flood that overflows the upstream's accept backlog
    /// (each overflowed SYN costs a 1 s retransmit, longer than typical connect timeouts).
    connecting: FastMap<SocketAddr, usize>,
    /// Sessions (index, generation) waiting for a connection to an address, oldest first.
    waiters: FastMap<SocketAddr, VecDeque<(usize, u64)>>,
    /// Addresses where a connect slot or a pooled connection just became free; the reactor
    /// wakes one waiter per entry.
    freed: Vec<SocketAddr>,
    /// Idle connections per upstream address, most recently used last.
    idle_by_addr: FastMap<SocketAddr, Vec<usize>>,
    /// Connections open per (cluster that opened them, address): a host's first connection
    /// is opened even past the cluster's `max_connections`.
    open: FastMap<(usize, SocketAddr), usize>,
    /// Per address, the instant of the one deadline-heap entry that closes its idle
    /// connections past their `idle_until`. Not re-armed while an earlier one stands, so a
    /// busy address costs one heap entry per expiry, not one per request.
    idle_armed: FastMap<SocketAddr, Instant>,
}

impl UpPool {
    /// Whether another connect to `addr` may start now.
    pub fn may_connect(&self, addr: SocketAddr) -> bool {
        self.connecting.get(&addr).copied().unwrap_or(0) < MAX_CONNECTING
    }

    /// Whether the pool holds an idle connection to `addr`.
    pub fn has_idle(&self, addr: SocketAddr) -> bool {
        self.idle_by_addr.get(&addr).is_some_and(|v| !v.is_empty())
    }

    /// Connections `cluster` has open to `addr`.
    pub fn open_to(&self, cluster: usize, addr: SocketAddr) -> usize {
        self.open.get(&(cluster, addr)).copied().unwrap_or(0)
    }

    fn count_open(&mut self, cluster: usize, addr: SocketAddr, up: bool) {
        let n = self.open.entry((cluster, addr)).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&(cluster, addr));
            }
        }
    }

    /// A connect to `addr` finished (either way): free its slot for a waiter.
    pub fn connect_done(&mut self, addr: SocketAddr) {
        if let Some(n) = self.connecting.get_mut(&addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.connecting.remove(&addr);
            }
        }
        self.note_freed(addr);
    }

    /// Something a waiter for `addr` can use became free.
    fn note_freed(&mut self, addr: SocketAddr) {
        if self.waiters.get(&addr).is_some_and(|w| !w.is_empty()) {
            self.freed.push(addr);
        }
    }

    /// Session (`id`, `gen`) waits for a connection to `addr`.
    pub fn wait(&mut self, addr: SocketAddr, id: usize, gen: u64) {
        self.waiters.entry(addr).or_default().push_back((id, gen));
    }

    /// An address where something was freed, with the oldest session waiting for it.
    pub fn next_freed(&mut self) -> Option<(SocketAddr, Option<(usize, u64)>)> {
        let addr = self.freed.pop()?;
        Some((addr, self.next_waiter(addr)))
    }

    /// The oldest session still waiting for `addr`.
    pub fn next_waiter(&mut self, addr: SocketAddr) -> Option<(usize, u64)> {
        let next = self.waiters.get_mut(&addr).and_then(|q| q.pop_front());
        if self.waiters.get(&addr).is_some_and(|q| q.is_empty()) {
            self.waiters.remove(&addr);
        }
        next
    }

    /// A woken waiter found nothing after all: back to the head of the line.
    pub fn requeue(&mut self, addr: SocketAddr, w: (usize, u64)) {
        self.waiters.entry(addr).or_default().push_front(w);
    }

    /// Who the token of upstream slot `slot` belongs to.
    pub fn owner(&self, slot: usize) -> Option<UpOwner> {
        self.owner.get(slot).copied()
    }
}

#[derive(Debug)]
pub struct UpConn {
    /// Plain TCP, or TLS when the cluster has a `transport_socket`.
    pub stream: Stream,
    pub addr: SocketAddr,
    /// The cluster the connection was opened for (its stats are charged there).
    pub cluster: usize,
    pub readable: bool,
    pub writable: bool,
    /// The last readiness event said the peer closed (or errored): read to EOF.
    pub hup: bool,
    /// The TCP handshake finished.
    pub connected: bool,
    /// Index in `UpPool::owner`; the connection's token is `Tok::Up(slot)` for its lifetime.
    pub slot: usize,
    /// Our end of the connection (%UPSTREAM_LOCAL_ADDRESS%), bound by `connect()`.
    pub local: Option<SocketAddr>,
    /// When the connection was opened (or adopted): `max_connection_duration` counts from it.
    opened: Instant,
    /// The TLS server name it was opened with under `auto_sni` (reused only for that name).
    sni: Option<Box<str>>,
    /// Exchanges it completed (`max_requests_per_connection`).
    served: u32,
    /// The PROXY protocol header still to write once connected (a cluster with the upstream
    /// PROXY protocol socket), before anything else, TLS included.
    header: Option<Box<[u8]>>,
    /// The client and target its header named: it is reused only for the same ones (Envoy
    /// keys its pools by them), never for another client.
    proxied: Option<(SocketAddr, SocketAddr)>,
    /// While pooled: when it is closed (its cluster's idle timeout, or its maximum duration).
    idle_until: Option<Instant>,
}

/// Who an upstream connection's readiness events are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOwner {
    /// The session (index) running an exchange on it.
    Session(usize),
    /// Idle in the pool (index into `Ctx::idle`).
    Idle(usize),
}

impl UpConn {
    /// Starts a non-blocking connect to `addr` (a host of `cluster`) for session `owner`;
    /// `sni`: the TLS server name under `auto_sni` (else the cluster's); `proxied`: the
    /// client and target a PROXY protocol header names (`pool_key`).
    pub fn connect(
        ctx: &mut Ctx,
        cluster: usize,
        addr: SocketAddr,
        sni: Option<Box<str>>,
        proxied: Option<(SocketAddr, SocketAddr)>,
        owner: usize,
    ) -> io::Result<Box<UpConn>> {
        let started = open_socket(ctx, cluster, addr)
            .and_then(|s| wrap(ctx, cluster, addr, sni.as_deref(), s));
        let mut stream = match started {
            Ok(s) => s,
            Err(e) => {
                observe::upstream_connect_fail(ctx, cluster, addr, false);
                return Err(e);
            }
        };
        let slot = match register(ctx, &mut stream, owner) {
            Ok(slot) => slot,
            Err(e) => {
                observe::upstream_connect_fail(ctx, cluster, addr, false);
                return Err(e);
            }
        };
        opened(ctx, cluster, addr);
        *ctx.upstreams.connecting.entry(addr).or_insert(0) += 1;
        let local = stream.local_addr().ok();
        let header = ctx
            .clusters
            .get(cluster)
            .and_then(|c| c.cfg.proxy_protocol)
            .map(|v| proxy_header(v, proxied, local, addr));
        Ok(Box::new(UpConn {
            sni,
            header,
            proxied,
            opened: ctx.now(),
            served: 0,
            idle_until: None,
            local,
            stream,
            addr,
            cluster,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            slot,
        }))
    }

    /// After a writable event on a connecting socket: Ok(true) once connected, Err on failure.
    pub fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                if let Some(h) = self.header.take() {
                    // The first bytes on a fresh socket: its send buffer takes them whole.
                    let mut sock = self.stream.tcp();
                    if io::Write::write(&mut sock, &h)? != h.len() {
                        return Err(io::Error::other("PROXY protocol header not sent whole"));
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deregisters and drops the connection (close, never shutdown: see design.md).
    pub fn close(mut self, ctx: &mut Ctx) {
        if !self.connected {
            ctx.upstreams.connect_done(self.addr);
        }
        closed(ctx, self.cluster, self.addr);
        ctx.upstreams.owner.remove(self.slot);
        let _ = ctx.registry.deregister(&mut self.stream);
    }
}

impl UpConn {
    /// Takes a tunnel's connection out for a handover: deregistered and its slot freed, the
    /// socket itself left open (the new process serves it).
    pub fn detach(mut self, ctx: &mut Ctx) -> TcpStream {
        closed(ctx, self.cluster, self.addr);
        ctx.upstreams.owner.remove(self.slot);
        let _ = ctx.registry.deregister(&mut self.stream);
        self.stream.into_tcp()
    }

    /// Serves a connected socket that came with a tunnel (a handover, or its rollback), for
    /// session `owner`.
    pub fn adopt(
        ctx: &mut Ctx,
        stream: TcpStream,
        cluster: usize,
        addr: SocketAddr,
        owner: usize,
    ) -> io::Result<Box<UpConn>> {
        let mut stream = Stream::plain(stream);
        let slot = register(ctx, &mut stream, owner)?;
        opened(ctx, cluster, addr);
        // A tunnel's connection: never pooled again, so its server name does not matter.
        Ok(Box::new(UpConn {
            sni: None,
            header: None,
            proxied: None,
            opened: ctx.now(),
            served: 0,
            idle_until: None,
            local: stream.local_addr().ok(),
            stream,
            addr,
            cluster,
            readable: true,
            writable: true,
            hup: false,
            connected: true,
            slot,
        }))
    }

    /// Closes the connection with a reset (SO_LINGER 0): the peer sees the failure it
    /// stands for, not a clean end.
    pub fn reset(self, ctx: &mut Ctx) {
        reset_on_close(&self.stream);
        self.close(ctx);
    }
}

/// A connection of `cluster` to `addr` opened (or arrived with a tunnel): counted in the
/// stats and against `max_connections`, whose check the caller made (`may_open`).
fn opened(ctx: &mut Ctx, cluster: usize, addr: SocketAddr) {
    observe::upstream_cx_open(ctx, cluster, addr);
    observe::breaker_acquire(ctx, cluster, Resource::Connection, true);
    ctx.upstreams.count_open(cluster, addr, true);
}

/// A connection of `cluster` to `addr` closed (or left with a tunnel). A request waiting
/// for room under the cluster's `max_connections` may now connect: every waiting address
/// of the cluster is woken (one waiter each, which requeues if another took the room).
fn closed(ctx: &mut Ctx, cluster: usize, addr: SocketAddr) {
    observe::upstream_cx_close(ctx, cluster, addr);
    observe::breaker_release(ctx, cluster, Resource::Connection);
    ctx.upstreams.count_open(cluster, addr, false);
    if ctx.upstreams.waiters.is_empty() {
        return;
    }
    if let Some(c) = ctx.clusters.get(cluster) {
        for h in &c.hosts {
            ctx.upstreams.note_freed(h.addr);
        }
    }
}

/// Whether a new connection of `cluster` to `addr` may start now: a connect slot for the
/// address (`MAX_CONNECTING`), and room under the cluster's `max_connections`. Past that
/// limit `upstream_cx_overflow` counts (when `count`), and only a host without any
/// connection of the cluster gets one anyway, as in Envoy, so that its requests never wait
/// on connections to other hosts.
pub fn may_open(ctx: &mut Ctx, cluster: usize, addr: SocketAddr, count: bool) -> bool {
    if !ctx.upstreams.may_connect(addr) {
        return false;
    }
    let room = ctx
        .clusters
        .get(cluster)
        .is_some_and(|c| c.breakers[0].can_take(Resource::Connection));
    if room {
        return true;
    }
    if count {
        ctx.stats.overflow(cluster, true);
    }
    ctx.upstreams.open_to(cluster, addr) == 0
}

/// Gives an upstream socket its slot (owned by session `owner`) and its one registration.
fn register(ctx: &mut Ctx, stream: &mut Stream, owner: usize) -> io::Result<usize> {
    let slot = ctx.upstreams.owner.insert(UpOwner::Session(owner));
    if let Err(e) = ctx.registry.register(
        stream,
        Tok::Up(slot).token(),
        Interest::READABLE | Interest::WRITABLE,
    ) {
        ctx.upstreams.owner.remove(slot);
        return Err(e);
    }
    Ok(slot)
}

/// Makes the socket's close send a reset (SO_LINGER 0) instead of a FIN.
pub fn reset_on_close(s: &impl std::os::fd::AsFd) {
    let _ = nix::sys::socket::setsockopt(
        &s.as_fd(),
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
}

/// The stream for a new connection to `addr`: TLS when `cluster` has a TLS context.
/// Starts a non-blocking connect to `addr`, a host of `cluster`, with the cluster's socket
/// options (no Nagle delay; `tcp_keepalive`). Out of descriptors, idle pipes and idle upstream
/// connections are the ones we can give up: they are closed and the connect tried once more.
pub fn open_socket(ctx: &mut Ctx, cluster: usize, addr: SocketAddr) -> io::Result<TcpStream> {
    let mut socket = TcpStream::connect(addr);
    if let Err(e) = &socket {
        if crate::fds::exhausted(e) && shed_idle(ctx) > 0 {
            socket = TcpStream::connect(addr);
        }
    }
    let socket = socket?;
    let _ = socket.set_nodelay(true);
    if let Some(k) = ctx.clusters.get(cluster).and_then(|c| c.cfg.tcp_keepalive) {
        // The values were checked at load; a kernel that still refuses one leaves the
        // connection usable without it.
        if let Err(e) = crate::fds::tcp_keepalive(&socket, &k) {
            log::debug!("tcp_keepalive on the connection to {addr}: {e}");
        }
    }
    Ok(socket)
}

fn wrap(
    ctx: &Ctx,
    cluster: usize,
    addr: SocketAddr,
    sni: Option<&str>,
    s: TcpStream,
) -> io::Result<Stream> {
    let c = ctx.clusters.get(cluster);
    let mut stream = plain_or_tls(c, addr, sni, s)?;
    // An HTTP/2 cluster: the client transcoder under the core, on every new connection (h2c
    // with prior knowledge on plain TCP, as Envoy; over TLS whatever ALPN chose).
    if let Some(h) = c.and_then(|c| c.cfg.http.http2) {
        let opts = crate::h2::client::Options {
            stream_window: h.initial_stream_window_size,
            conn_window: h.initial_connection_window_size,
            table_size: h.hpack_table_size,
        };
        let https = stream.is_tls();
        stream.set_h2(Box::new(crate::h2::client::Client::new(opts, https)), &[]);
    }
    Ok(stream)
}

/// The stream for a new connection of cluster `c` to `addr`: TLS when it has a TLS context.
fn plain_or_tls(
    c: Option<&crate::cluster::ClusterRt>,
    addr: SocketAddr,
    sni: Option<&str>,
    s: TcpStream,
) -> io::Result<Stream> {
    #[cfg(feature = "tls")]
    if let (Some(cfg), Some(u)) = (
        c.and_then(|c| c.tls.clone()),
        c.and_then(|c| c.cfg.tls.as_ref()),
    ) {
        return Stream::client(s, cfg, crate::tls::server_name(u, sni, addr));
    }
    let _ = (c, addr, sni);
    Ok(Stream::plain(s))
}

/// The header a new connection to `to` of a cluster with the upstream PROXY protocol socket
/// starts with (Envoy's `UpstreamProxyProtocolSocket`): the client and target `proxied`
/// names; without them, v1 names the connection itself (`local` to `to`) and v2 is `LOCAL`.
pub fn proxy_header(
    v: crate::proxy_protocol::Version,
    proxied: Option<(SocketAddr, SocketAddr)>,
    local: Option<SocketAddr>,
    to: SocketAddr,
) -> Box<[u8]> {
    use crate::proxy_protocol::{parse, Version};
    let addrs = match v {
        Version::V1 => proxied.or_else(|| local.map(|l| (l, to))),
        Version::V2 => proxied,
    };
    parse::header(v, addrs).into_boxed_slice()
}

/// The client and target a connection of `cluster`'s pool is keyed by: `proxied` when the
/// cluster sends PROXY protocol headers, else none (every client shares the pool).
pub fn pool_key(
    ctx: &Ctx,
    cluster: usize,
    proxied: impl FnOnce() -> Option<(SocketAddr, SocketAddr)>,
) -> Option<(SocketAddr, SocketAddr)> {
    ctx.clusters.get(cluster)?.cfg.proxy_protocol?;
    proxied()
}

/// Takes an idle connection to `addr` from the pool for session `owner`, forwarding for
/// `cluster`. A connection is only reused for the cluster that opened it, as Envoy keeps a
/// pool per cluster: two clusters may reach one address with different TLS settings and
/// different protocol options (idle timeout, request and age limits). One past its idle
/// deadline (whose timer has not run yet this round) is closed, not used.
pub fn take_idle(
    ctx: &mut Ctx,
    cluster: usize,
    addr: SocketAddr,
    sni: Option<&str>,
    proxied: Option<(SocketAddr, SocketAddr)>,
    owner: usize,
) -> Option<Box<UpConn>> {
    let now = ctx.now();
    loop {
        let (idle, list) = (
            &ctx.upstreams.idle,
            ctx.upstreams.idle_by_addr.get_mut(&addr)?,
        );
        let pos = list.iter().rposition(|&i| {
            idle.get(i).is_none_or(|c| {
                c.cluster == cluster && c.sni.as_deref() == sni && c.proxied == proxied
            })
        })?;
        let idx = list.remove(pos);
        let Some(mut c) = ctx.upstreams.idle.remove(idx) else {
            continue;
        };
        if c.idle_until.is_some_and(|t| t <= now) {
            limit_reached(ctx, *c, now);
            continue;
        }
        c.idle_until = None;
        if let Some(o) = ctx.upstreams.owner.get_mut(c.slot) {
            *o = UpOwner::Session(owner);
        }
        c.readable = false;
        c.writable = true;
        return Some(c);
    }
}

/// Returns a connection whose exchange completed cleanly to the pool, unless its cluster's
/// `max_requests_per_connection` or `max_connection_duration` says it is done.
pub fn put_idle(ctx: &mut Ctx, mut c: Box<UpConn>) {
    let count = ctx.upstreams.idle_by_addr.get(&c.addr).map_or(0, Vec::len);
    // Readiness not used up (a spliced body ends exactly at its length): bytes or a FIN may
    // already be there, and an idle connection's next event would never come for them.
    let stale = (c.readable || c.hup) && !c.stream.quiet();
    if ctx.draining() || count >= MAX_IDLE_PER_ADDR || stale {
        c.close(ctx);
        return;
    }
    let now = ctx.now();
    c.served = c.served.saturating_add(1);
    let Some(o) = ctx.clusters.get(c.cluster).map(|cl| &cl.cfg.http) else {
        c.close(ctx);
        return;
    };
    if o.max_requests_per_connection.is_some_and(|n| c.served >= n) {
        ctx.stats.pool_limit(c.cluster, PoolLimit::MaxRequests);
        c.close(ctx);
        return;
    }
    let aged = o.max_connection_duration.map(|d| c.opened + d);
    if aged.is_some_and(|t| t <= now) {
        ctx.stats.pool_limit(c.cluster, PoolLimit::MaxDuration);
        c.close(ctx);
        return;
    }
    c.idle_until = match (o.idle_timeout.map(|d| now + d), aged) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(at) = c.idle_until {
        arm_idle(ctx, c.addr, at);
    }
    let (addr, slot) = (c.addr, c.slot);
    let idx = ctx.upstreams.idle.insert(c);
    if let Some(o) = ctx.upstreams.owner.get_mut(slot) {
        *o = UpOwner::Idle(idx);
    }
    ctx.upstreams
        .idle_by_addr
        .entry(addr)
        .or_default()
        .push(idx);
    ctx.upstreams.note_freed(addr);
}

/// Makes sure the idle connections to `addr` are looked at by `at`.
fn arm_idle(ctx: &mut Ctx, addr: SocketAddr, at: Instant) {
    if ctx
        .upstreams
        .idle_armed
        .get(&addr)
        .is_some_and(|&t| t <= at)
    {
        return;
    }
    ctx.upstreams.idle_armed.insert(addr, at);
    ctx.timers.arm(at, TimerKey::UpIdle(addr));
}

/// A pooled connection past its idle deadline is closed, counted under the limit that set
/// the deadline (its maximum duration, else its idle timeout).
fn limit_reached(ctx: &mut Ctx, c: UpConn, now: Instant) {
    let aged = ctx
        .clusters
        .get(c.cluster)
        .and_then(|cl| cl.cfg.http.max_connection_duration)
        .is_some_and(|d| c.opened + d <= now);
    let why = if aged {
        PoolLimit::MaxDuration
    } else {
        PoolLimit::IdleTimeout
    };
    ctx.stats.pool_limit(c.cluster, why);
    c.close(ctx);
}

/// The idle deadline armed for `addr` at `at` is due: closes the connections to it whose
/// idle time is over and arms the next deadline (an entry `arm_idle` superseded, or one
/// left after `close_all_idle`, does nothing). Bounded by `MAX_IDLE_PER_ADDR`.
pub fn idle_timer(ctx: &mut Ctx, addr: SocketAddr, at: Instant) {
    if ctx.upstreams.idle_armed.get(&addr) != Some(&at) {
        return;
    }
    ctx.upstreams.idle_armed.remove(&addr);
    let now = ctx.now();
    let mut next: Option<Instant> = None;
    let mut due = Vec::new();
    if let Some(list) = ctx.upstreams.idle_by_addr.get(&addr) {
        for &i in list {
            match ctx.upstreams.idle.get(i).and_then(|c| c.idle_until) {
                Some(t) if t <= now => due.push(i),
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
    }
    for idx in due {
        if let Some(list) = ctx.upstreams.idle_by_addr.get_mut(&addr) {
            list.retain(|&i| i != idx);
        }
        if let Some(c) = ctx.upstreams.idle.remove(idx) {
            limit_reached(ctx, *c, now);
        }
    }
    if let Some(t) = next {
        arm_idle(ctx, addr, t);
    }
}

/// An idle connection saw an event. If the upstream closed it or sent junk it is no longer safe
/// to reuse; a spurious edge (readiness already consumed) or a TLS message with no data (a
/// session ticket) leaves it pooled.
pub fn idle_event(ctx: &mut Ctx, idx: usize) {
    let usable = ctx
        .upstreams
        .idle
        .get_mut(idx)
        .is_some_and(|c| c.stream.usable_after_idle_event());
    if !usable {
        close_idle(ctx, idx);
    }
}

fn close_idle(ctx: &mut Ctx, idx: usize) {
    if let Some(c) = ctx.upstreams.idle.remove(idx) {
        if let Some(list) = ctx.upstreams.idle_by_addr.get_mut(&c.addr) {
            list.retain(|&i| i != idx);
        }
        c.close(ctx);
    }
}

/// Closes every idle connection (drain, shutdown, a shortage of descriptors); returns how
/// many.
pub fn close_all_idle(ctx: &mut Ctx) -> usize {
    let mut n = 0;
    for idx in ctx.upstreams.idle.keys() {
        close_idle(ctx, idx);
        n += 1;
    }
    ctx.upstreams.idle_by_addr.clear();
    ctx.upstreams.idle_armed.clear();
    n
}

/// Out of descriptors: closes what holds descriptors without serving anyone (idle pipes and
/// idle upstream keep-alive connections), so a client or a needed upstream connection can
/// have them; returns how many were closed. A pipe is made again when splicing needs one, an
/// upstream connection when a request does. nginx likewise closes idle keep-alive
/// connections when it runs short of connections.
pub fn shed_idle(ctx: &mut Ctx) -> usize {
    ctx.pipes.release() + close_all_idle(ctx)
}
