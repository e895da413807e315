//! The admin interface (Envoy's `admin.address`), served on the proxy's own reactor. Requests
//! are tiny and rare, so each connection reads one request, gets one response with
//! `Connection: close`, and is closed: no keep-alive, no pipelining, no streaming.

mod access;
mod dump;
mod handlers;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};

use crate::cli::Options;
use crate::config::Bootstrap;
use crate::context::Ctx;
use crate::reactor::Tok;
use crate::util::Slab;

pub use dump::config_dump;

/// Envoy's `/hot_restart_version` answer: changes whenever two baton builds could not hand
/// over to each other (the restart protocol's version).
pub const HOT_RESTART_VERSION: &str = "baton.1";

/// Largest admin request (head and body) we read.
const MAX_REQUEST: usize = 64 * 1024;
/// Most admin connections at once; a new one past this closes the oldest.
const MAX_CONNS: usize = 64;
/// How long an admin connection may take to send its request and read the answer.
pub const CONN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the proxy must do after an admin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /drain_listeners`: stop accepting; in-flight and idle connections carry on.
    DrainListeners,
    /// `POST /quitquitquit`: exit cleanly.
    Quit,
}

/// What the admin shows that only the proxy knows.
pub struct View<'a> {
    pub opts: &'a Options,
    /// Listener name and the address it is bound to (None once closed).
    pub bound: Vec<(String, Option<SocketAddr>)>,
}

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    written: usize,
    /// Action to report once the response is out.
    then: Option<Action>,
    /// When it was accepted (for `CONN_TIMEOUT` and for evicting the oldest).
    since: std::time::Instant,
    /// The client half-closed: answer what it sent, then close.
    eof: bool,
    peer: SocketAddr,
    /// The answer's status and body size once there is one (for the access log).
    answered: Option<(u16, usize)>,
}

/// The admin listener, its connections, and what it serves that never changes.
///
/// The listening socket is one of the listeners the hot-restart machine hands over (named
/// `admin:tcp:ADDR` on the wire): a child receives its parent's socket, the parent stops
/// accepting on it at takeover and closes its copy, so exactly one process answers admin
/// requests at a time and none queued in the socket is lost in the switch (Envoy's parent
/// shuts its admin down at that point too). A fresh start binds it.
pub struct Admin {
    listener: Option<TcpListener>,
    accepting: bool,
    address: SocketAddr,
    /// Bind with SO_REUSEPORT (hot restart: a parent of an older baton that does not hand the
    /// admin socket over still holds the address until it exits).
    reuse_port: bool,
    conns: Slab<Conn>,
    /// A sweep for timed-out connections is armed.
    sweep_armed: bool,
    /// Envoy's `node` as shown by /server_info: CLI flags over the bootstrap's `node`.
    node: (String, String),
    config_dump: String,
    /// `admin.access_log_path` and `admin.access_log[]`.
    log: Option<access::AdminLog>,
}

impl Admin {
    /// The admin interface of this config, not yet listening (see `bind_fresh`, `install`).
    pub fn new(b: &Bootstrap, opts: &Options) -> Result<Option<Admin>, String> {
        let Some(cfg) = b.admin.as_ref() else {
            return Ok(None);
        };
        // Envoy opens the admin access log at start whether or not the admin listens, so a
        // path that cannot be opened fails the start either way.
        let log = access::AdminLog::open(cfg.access_log_path.as_deref(), &cfg.access_log)?;
        let Some(address) = cfg.address else {
            return Ok(None);
        };
        let bn = b.node.clone().unwrap_or_default();
        let pick = |cli: &str, cfg: String| if cli.is_empty() { cfg } else { cli.to_string() };
        let node = (
            pick(&opts.service_node, bn.id),
            pick(&opts.service_cluster, bn.cluster),
        );
        let config_dump = config_dump(b, &node);
        Ok(Some(Admin {
            listener: None,
            accepting: false,
            address,
            reuse_port: opts.hot_restart_file.is_some(),
            conns: Slab::default(),
            sweep_armed: false,
            node,
            config_dump,
            log,
        }))
    }

    /// How the admin listener is named between hot-restart generations.
    pub fn wire_address(addr: SocketAddr) -> String {
        format!("admin:{}", crate::hot_restart::tcp_address(addr))
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Binds the admin address (a fresh start, or a parent that did not hand it over); a busy
    /// port is an error naming it.
    pub fn bind_fresh(&mut self) -> Result<(), String> {
        let l = bind(self.address, self.reuse_port)
            .map_err(|e| format!("admin: {}: {}", self.address, crate::server::io_cause(&e)))?;
        self.listener = Some(l);
        Ok(())
    }

    /// The admin socket received from the parent.
    pub fn install(&mut self, l: TcpListener) {
        log::info!(
            "admin interface {}: took over from the parent",
            self.address
        );
        self.listener = Some(l);
    }

    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.listener.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// Starts or stops accepting. Connections already accepted are answered either way.
    /// Returns true when it just started (the caller accepts what is queued: no new edge).
    pub fn set_accepting(&mut self, registry: &Registry, on: bool) -> bool {
        let Some(l) = self.listener.as_mut() else {
            return false;
        };
        if self.accepting == on {
            return false;
        }
        let r = if on {
            registry.register(l, Tok::Admin(usize::MAX).token(), Interest::READABLE)
        } else {
            registry.deregister(l)
        };
        match r {
            Ok(()) => {
                self.accepting = on;
                if on {
                    log::info!("admin interface on {}", self.address);
                }
                on
            }
            Err(e) => {
                log::error!("admin: {e}");
                false
            }
        }
    }

    /// Closes our copy of the admin socket.
    pub fn close_listener(&mut self, registry: &Registry) {
        self.set_accepting(registry, false);
        self.listener = None;
    }

    /// An event for `Tok::Admin(i)`. Returns what the proxy must do, if anything.
    pub fn on_event(&mut self, i: usize, ctx: &mut Ctx, view: &View<'_>) -> Option<Action> {
        if i == usize::MAX {
            self.accept(ctx);
            return None;
        }
        let done = match self.conns.get_mut(i) {
            Some(c) => drive(c, ctx, self.node.clone(), &self.config_dump, view),
            None => return None,
        };
        match done {
            Ok(Some(action)) => {
                self.log_request(i);
                self.close(i, ctx);
                action
            }
            Ok(None) => None,
            Err(e) => {
                log::debug!("admin connection: {e}");
                // The client left; what it asked for (quit, drain) still happens.
                let then = self.conns.get(i).and_then(|c| c.then);
                self.close(i, ctx);
                then
            }
        }
    }

    /// Writes the access-log line of connection `i`'s answered request, if it had one.
    fn log_request(&mut self, i: usize) {
        let (Some(log), Some(c)) = (self.log.as_mut(), self.conns.get(i)) else {
            return;
        };
        let Some((status, body)) = c.answered else {
            return; // closed without a request
        };
        log.log(&c.rbuf, c.peer, c.since, status, body as u64);
    }

    fn accept(&mut self, ctx: &mut Ctx) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            // Out of descriptors: the reserve is given back for this accept.
            let got =
                crate::fds::accept_with_reserve(&mut ctx.fd_reserve, || match listener.accept() {
                    Ok(c) => Ok(Some(c)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                });
            match got {
                Ok(None) => return,
                Ok(Some((mut stream, peer))) => {
                    if self.conns.len() >= MAX_CONNS {
                        self.evict_oldest(ctx);
                    }
                    let id = self.conns.next_key();
                    if let Err(e) = ctx.registry.register(
                        &mut stream,
                        Tok::Admin(id).token(),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("admin: cannot register a connection: {e}");
                        continue;
                    }
                    self.conns.insert(Conn {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        written: 0,
                        then: None,
                        since: ctx.now(),
                        eof: false,
                        peer,
                        answered: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("admin: accept: {e}");
                    return;
                }
            }
        }
    }

    /// The connection cap is reached: the oldest connection makes room (a client holding
    /// connections open cannot lock operators out).
    fn evict_oldest(&mut self, ctx: &mut Ctx) {
        let oldest = self
            .conns
            .keys()
            .into_iter()
            .filter_map(|k| self.conns.get(k).map(|c| (c.since, k)))
            .min();
        if let Some((_, k)) = oldest {
            log::debug!("admin: {MAX_CONNS} connections open; closing the oldest");
            self.close(k, ctx);
        }
    }

    /// When a sweep for timed-out connections must run (arming it once), if any is needed.
    pub fn want_sweep(&mut self, now: std::time::Instant) -> Option<std::time::Instant> {
        if self.sweep_armed || self.conns.is_empty() {
            return None;
        }
        self.sweep_armed = true;
        Some(now + std::time::Duration::from_secs(1))
    }

    /// Closes connections older than `CONN_TIMEOUT`; returns when to sweep again.
    pub fn sweep(&mut self, ctx: &mut Ctx) -> Option<std::time::Instant> {
        self.sweep_armed = false;
        let now = ctx.now();
        for k in self.conns.keys() {
            if self
                .conns
                .get(k)
                .is_some_and(|c| now.saturating_duration_since(c.since) >= CONN_TIMEOUT)
            {
                log::debug!("admin: connection timed out");
                self.close(k, ctx);
            }
        }
        self.want_sweep(now)
    }

    fn close(&mut self, i: usize, ctx: &mut Ctx) {
        if let Some(mut c) = self.conns.remove(i) {
            let _ = ctx.registry.deregister(&mut c.stream);
        }
    }
}

/// Binds the admin address. With hot restart it is bound with SO_REUSEPORT, so that a child
/// can still bind when its parent (an older baton that does not hand the admin socket over)
/// holds the address; the kernel allows that only between sockets of the same user.
fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    if reuse_port {
        reuse_port_listener(addr)
    } else {
        TcpListener::bind(addr)
    }
}

fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType};
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, SockType::Stream, flags, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &socket::SockaddrStorage::from(addr),
    )?;
    socket::listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// Reads the request, answers it, writes the answer. Ok(Some(action)) when the connection is
/// finished (the inner action, if any, for the proxy).
fn drive(
    c: &mut Conn,
    ctx: &mut Ctx,
    node: (String, String),
    dump: &str,
    view: &View<'_>,
) -> io::Result<Option<Option<Action>>> {
    if c.wbuf.is_empty() {
        let mut buf = [0u8; 4096];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.eof = true;
                    break;
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&buf[..n]);
                    if c.rbuf.len() > MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let Some(resp) = handlers::request(&c.rbuf, ctx, &node, dump, view) else {
            // Incomplete: wait for more, unless the client already closed its side.
            return Ok(c.eof.then_some(None));
        };
        c.then = resp.action;
        c.answered = Some((resp.status, resp.body_len));
        c.wbuf = resp.bytes;
    }
    while c.written < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.written..]) {
            Ok(0) => return Ok(Some(c.then)),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(c.then))
}
