//! The exchange core driven in memory with the proxy's own environment: a `Ctx` built from a
//! config as the proxy builds it, and `CtxEnv` over it, so routing, header edits, load
//! balancing, stats and the access log run exactly as in the proxy; only the two sockets are
//! replaced by byte slices. The allocation test of the keep-alive path uses it (a test binary
//! with a counting global allocator cannot look inside the proxy's process).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::core::{Action, Conn};
use super::env::CtxEnv;
use crate::context::Ctx;

/// One client connection of a proxy built from a config, with an upstream (and an ext_authz
/// service) that answers whatever the test gives it.
pub struct InMem {
    ctx: Ctx,
    conn: Conn,
    peer: SocketAddr,
    /// An upstream connection is attached to the exchange.
    up_open: bool,
    /// The last upstream connection went back to the pool: the next `Connect` reuses it.
    pooled: bool,
    now: Instant,
    /// Keeps the registry the context holds valid.
    _poll: mio::Poll,
}

impl InMem {
    /// A proxy context from `yaml` (its first listener serves the connection) and a client
    /// connection from `peer`.
    pub fn new(yaml: &str, peer: SocketAddr) -> Result<InMem, String> {
        let b = crate::config::load_str(yaml).map_err(|e| e.to_string())?;
        InMem::from_bootstrap(b, peer)
    }

    /// The same from a loaded config (a fuzzer loads its config once).
    pub fn from_bootstrap(b: crate::config::Bootstrap, peer: SocketAddr) -> Result<InMem, String> {
        let poll = mio::Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("epoll: {e}"))?;
        let listeners = crate::server::listener_rts(b.listeners, "", "")?;
        let clusters = crate::server::cluster_rts(b.clusters)?;
        if listeners.is_empty() {
            return Err("the config has no listener".into());
        }
        let logs: Vec<_> = listeners
            .iter()
            .map(|l| {
                let lr = l.http().and_then(|h| h.hcm.local_reply.as_ref());
                (l.access_log(), lr)
            })
            .collect();
        let access_logs = crate::access_log::AccessLogs::open(&logs)?;
        let now = Instant::now();
        let mut ctx = Ctx::new(registry, clusters, listeners, access_logs);
        ctx.set_now(now);
        ctx.tracer = crate::tracing::collector::Tracer::build(&mut ctx, "front", "node-1");
        let lim = ctx.listeners[0].limits.clone();
        Ok(InMem {
            ctx,
            conn: Conn::new(lim, now),
            peer,
            up_open: false,
            pooled: false,
            now,
            _poll: poll,
        })
    }

    /// The proxy's context (stats, access logs).
    pub fn ctx(&mut self) -> &mut Ctx {
        &mut self.ctx
    }

    /// One request and its response through the connection: `request` from the client,
    /// `response` from the upstream once the request head went out. Returns the bytes the
    /// upstream and the client received, as counts (so the loop itself allocates nothing).
    pub fn exchange(&mut self, request: &[u8], response: &[u8]) -> Result<(usize, usize), String> {
        self.now += Duration::from_micros(10);
        self.ctx.set_now(self.now);
        self.conn.client_in().extend(&mut self.ctx.pool, request);
        let (mut up_got, mut client_got) = (0, 0);
        let mut response = response;
        for _ in 0..256 {
            let mut env = CtxEnv::new(&mut self.ctx, 0, self.peer).conn(1, None);
            let mut moved = self.conn.process(&mut env, self.now);
            while let Some(a) = self.conn.poll_action() {
                moved = true;
                match a {
                    Action::Connect { .. } => {
                        let mut env = CtxEnv::new(&mut self.ctx, 0, self.peer).conn(1, None);
                        if !self.pooled {
                            self.conn.up_pending(&mut env, self.now);
                        }
                        self.conn.up_attached(&mut env, self.pooled, None, self.now);
                        if !self.pooled {
                            self.conn.up_connected(&mut env, self.now);
                        }
                        self.up_open = true;
                    }
                    Action::ReleaseUp { reuse } => {
                        self.up_open = false;
                        self.pooled = reuse;
                    }
                }
            }
            // An ext_authz check is answered with the same bytes as the upstream's response.
            if let Some(c) = self.conn.take_check() {
                let verdict = match c.grpc_call() {
                    // A gRPC check: the response bytes are the service's HTTP/2 frames.
                    Some(mut call) => call
                        .feed(response, true)
                        .map(super::ext_authz::grpc_answer)
                        .and_then(Result::ok),
                    None => super::ext_authz::Reader::new(c.is_head)
                        .feed(response, true)
                        .and_then(Result::ok)
                        .map(super::ext_authz::Answer::Http),
                };
                let mut env = CtxEnv::new(&mut self.ctx, 0, self.peer).conn(1, None);
                self.conn.check_answered(&mut env, verdict, self.now);
                moved = true;
            }
            // A fault delay is over as soon as nothing else moves: time jumps to its end.
            if !moved && self.conn.paused() && !self.conn.checking() {
                if let Some(at) = self.conn.deadline() {
                    self.now = self.now.max(at);
                    self.ctx.set_now(self.now);
                    let mut env = CtxEnv::new(&mut self.ctx, 0, self.peer).conn(1, None);
                    self.conn.on_timeout(&mut env, self.now);
                    moved = true;
                }
            }
            if let Some(up) = self.conn.up() {
                if !up.tx.is_empty() {
                    up_got += up.tx.len();
                    up.tx.consume(up.tx.len());
                    moved = true;
                }
            }
            // The response arrives as reads would bring it: as much as the core has room for.
            let room = self.conn.up_read_room();
            if self.up_open && up_got > 0 && room > 0 && !response.is_empty() {
                let n = room.min(response.len()).min(crate::http::buf::CHUNK);
                if let (Some((piece, rest)), Some(up)) =
                    (response.split_at_checked(n), self.conn.up())
                {
                    up.rx.extend(&mut self.ctx.pool, piece);
                    response = rest;
                    self.conn.up_data();
                    moved = true;
                }
            }
            let out = self.conn.client_out();
            if !out.is_empty() {
                client_got += out.len();
                out.consume(out.len());
                moved = true;
            }
            if self.conn.closed().is_some() {
                return Err("the connection closed".into());
            }
            if !moved {
                self.conn.release_buffers(&mut self.ctx.pool);
                return Ok((up_got, client_got));
            }
        }
        Err("the exchange did not settle".into())
    }
}
