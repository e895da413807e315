//! One upstream connection, and the per-address keep-alive pool it returns to between requests.
//!
//! A connection is registered with the reactor once, under a stable slot token; moving it
//! between a session and the pool only rewrites who owns the slot. Re-registering on every
//! hand-off cost two epoll_ctl calls per proxied request.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::Interest;

use crate::context::Ctx;
use crate::observe;
use crate::reactor::Tok;

/// Most idle connections kept per upstream address; more are closed when they come back.
const MAX_IDLE_PER_ADDR: usize = 256;

#[derive(Debug)]
pub struct UpConn {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// The cluster the connection was opened for (its stats are charged there).
    pub cluster: usize,
    pub readable: bool,
    pub writable: bool,
    /// The last readiness event said the peer closed (or errored): read to EOF.
    pub hup: bool,
    /// The TCP handshake finished.
    pub connected: bool,
    /// Index in `Ctx::up_owner`; the connection's token is `Tok::Up(slot)` for its lifetime.
    pub slot: usize,
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
    /// Starts a non-blocking connect to `addr` (a host of `cluster`) for session `owner`.
    pub fn connect(
        ctx: &mut Ctx,
        cluster: usize,
        addr: SocketAddr,
        owner: usize,
    ) -> io::Result<UpConn> {
        let started = TcpStream::connect(addr);
        let mut stream = match started {
            Ok(s) => s,
            Err(e) => {
                observe::upstream_connect_fail(ctx, cluster, addr, false);
                return Err(e);
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = ctx.up_owner.insert(UpOwner::Session(owner));
        if let Err(e) = ctx.registry.register(
            &mut stream,
            Tok::Up(slot).token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            ctx.up_owner.remove(slot);
            observe::upstream_connect_fail(ctx, cluster, addr, false);
            return Err(e);
        }
        observe::upstream_cx_open(ctx, cluster, addr);
        *ctx.connecting.entry(addr).or_insert(0) += 1;
        Ok(UpConn {
            stream,
            addr,
            cluster,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            slot,
        })
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
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deregisters and drops the connection (close, never shutdown: see design.md).
    pub fn close(mut self, ctx: &mut Ctx) {
        if !self.connected {
            ctx.connect_done(self.addr);
        }
        observe::upstream_cx_close(ctx, self.cluster, self.addr);
        ctx.up_owner.remove(self.slot);
        let _ = ctx.registry.deregister(&mut self.stream);
    }
}

/// Takes an idle connection to `addr` from the pool for session `owner`.
pub fn take_idle(ctx: &mut Ctx, addr: SocketAddr, owner: usize) -> Option<UpConn> {
    loop {
        let idx = ctx.idle_by_addr.get_mut(&addr)?.pop()?;
        let Some(mut c) = ctx.idle.remove(idx) else {
            continue;
        };
        if let Some(o) = ctx.up_owner.get_mut(c.slot) {
            *o = UpOwner::Session(owner);
        }
        c.readable = false;
        c.writable = true;
        return Some(c);
    }
}

/// Returns a connection whose exchange completed cleanly to the pool.
pub fn put_idle(ctx: &mut Ctx, c: UpConn) {
    let count = ctx.idle_by_addr.get(&c.addr).map_or(0, Vec::len);
    if ctx.draining || count >= MAX_IDLE_PER_ADDR {
        c.close(ctx);
        return;
    }
    let (addr, slot) = (c.addr, c.slot);
    let idx = ctx.idle.insert(c);
    if let Some(o) = ctx.up_owner.get_mut(slot) {
        *o = UpOwner::Idle(idx);
    }
    ctx.idle_by_addr.entry(addr).or_default().push(idx);
    ctx.note_freed(addr);
}

/// An idle connection became readable: the upstream closed it or sent junk. Either way it is
/// no longer safe to reuse.
pub fn idle_event(ctx: &mut Ctx, idx: usize) {
    if let Some(c) = ctx.idle.remove(idx) {
        if let Some(list) = ctx.idle_by_addr.get_mut(&c.addr) {
            list.retain(|&i| i != idx);
        }
        c.close(ctx);
    }
}

/// Closes every idle connection (drain, shutdown).
pub fn close_all_idle(ctx: &mut Ctx) {
    for idx in ctx.idle.keys() {
        idle_event(ctx, idx);
    }
    ctx.idle_by_addr.clear();
}
