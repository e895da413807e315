//! The mio driver of one client connection: moves bytes between the sockets and the exchange
//! core's buffers, passes the time in, and carries out the core's actions (get, pool or close
//! an upstream connection). It decides no protocol question; `core` does.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::tls::Stream;

use super::buf::{BufPool, ReadOutcome, CHUNK};
use super::core::{Action, Close, Conn, Failure, Limits, TcpLimits, TunnelState};
use super::env::CtxEnv;
use super::splice::{In, Pipe};
use super::upstream::{may_open, put_idle, reset_on_close, take_idle, UpConn};
use crate::config::{HttpConnectionManager, TcpProxy};
use crate::context::Ctx;
use crate::reactor::{TimerKey, Tok};

/// The listener's settings a connection's core needs (built once per listener: `ListenerRt`).
pub fn limits(hcm: &HttpConnectionManager, per_connection_buffer_limit_bytes: u32) -> Limits {
    Limits {
        max_head: hcm.max_request_headers_kb as usize * 1024,
        idle_timeout: hcm.idle_timeout,
        request_headers_timeout: hcm.request_headers_timeout,
        request_timeout: hcm.request_timeout,
        stream_idle_timeout: hcm.stream_idle_timeout,
        buffer_limit: per_connection_buffer_limit_bytes as usize,
        accept_http_10: hcm.accept_http_10,
        codec_type: hcm.codec_type,
        http2: crate::h2::server::Options {
            max_header_list: hcm.max_request_headers_kb.saturating_mul(1024),
            stream_window: hcm.http2.initial_stream_window_size,
            conn_window: hcm.http2.initial_connection_window_size,
            header_table: hcm.http2.hpack_table_size,
            stream_error_on_invalid: hcm.http2.stream_error_on_invalid_http_messaging,
        },
        max_headers: hcm.max_headers_count as usize,
        max_connection_duration: hcm.max_connection_duration,
        max_requests: hcm.max_requests_per_connection,
        underscores: hcm.headers_with_underscores,
        linger: hcm.delayed_close_timeout,
        proxy_100_continue: hcm.proxy_100_continue,
        tcp: None,
    }
}

/// The same for a TCP proxy listener: only the buffer limit and the proxy's own settings
/// count (no HTTP is read).
pub fn tcp_limits(t: &TcpProxy, per_connection_buffer_limit_bytes: u32) -> Limits {
    Limits {
        max_head: 0,
        idle_timeout: None,
        request_headers_timeout: None,
        stream_idle_timeout: None,
        buffer_limit: per_connection_buffer_limit_bytes as usize,
        accept_http_10: false,
        codec_type: crate::config::CodecType::Auto,
        http2: crate::h2::server::Options::default(),
        max_headers: 0,
        max_connection_duration: None,
        max_requests: None,
        underscores: crate::config::Underscores::Allow,
        linger: None,
        proxy_100_continue: false,
        request_timeout: None,
        tcp: Some(TcpLimits {
            max_connect_attempts: t.max_connect_attempts,
            idle_timeout: t.idle_timeout,
            max_duration: t.max_downstream_connection_duration,
            tunnel: t.tunnel_hostname.is_some(),
        }),
    }
}

/// Readiness the reactor reported for a socket, kept until it is used up (edge-triggered).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer closed (or errored): read to EOF even without a new edge.
    pub hup: bool,
}

pub struct Session {
    id: usize,
    gen: u64,
    /// Plain TCP, or TLS over it: the core reads and writes plaintext either way.
    client: Stream,
    peer: SocketAddr,
    listener: usize,
    /// The socket's local address, looked up only when an access log prints it or an RBAC
    /// filter may match on it (`wants_local`).
    local: Option<SocketAddr>,
    ready: Ready,
    core: Conn,
    /// Boxed: an idle connection has none, and its record stays small.
    up: Option<Box<UpConn>>,
    /// The earliest timer entry we have in the heap. Deadlines that move later (activity) do
    /// not push new entries; the armed one fires, sees the later deadline and re-arms once.
    armed: Option<Instant>,
    /// Response-body bytes on their way from the upstream to the client past our buffers;
    /// held only while splicing, and given back empty.
    pipe: Option<Pipe>,
    /// Splicing is possible: plain TCP to the client, and the kernel has not refused it.
    can_splice: bool,
    /// The client socket came from our parent, which may still hold it (see `close`).
    handed_over: bool,
    /// The filter chain, and so the unit that serves the connection, is still to be chosen
    /// from the ClientHello: `listener` is the listener's first unit and `core` a stand-in.
    choosing: bool,
    /// The PROXY protocol header is still to be read (before the chain is chosen).
    proxy: Option<Box<crate::proxy_protocol::Wait>>,
    /// The ext_authz check of the request the core holds paused.
    check: Option<Box<crate::http::ext_authz::InFlight>>,
    /// A readiness event arrived for the check's connection.
    check_ready: bool,
}

/// How a session ended, for the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Alive,
    Closed,
    /// Idle with a successor process: move it (`into_moved`).
    Move,
}

/// Whether unit `unit`'s connections look up their local address (one `getsockname` each):
/// only when an access log prints it or an RBAC filter may match on it (a wildcard listener's
/// configured address is not the one the client reached), so other configs pay nothing.
fn wants_local(ctx: &Ctx, unit: usize) -> bool {
    let logs = ctx.access_logs.slots(unit).is_some_and(|s| s.local);
    let rbac = ctx
        .listeners
        .get(unit)
        .and_then(|l| l.http())
        .is_some_and(|h| {
            h.hcm
                .http_filters
                .iter()
                .any(|f| matches!(f.kind, crate::config::HttpFilterKind::Rbac(_)))
        });
    logs || rbac
}

impl Session {
    pub fn new(
        id: usize,
        gen: u64,
        client: Stream,
        peer: SocketAddr,
        listener: usize,
        ctx: &Ctx,
    ) -> Session {
        let lim = ctx.listeners[listener].limits.clone();
        let local = wants_local(ctx, listener)
            .then(|| client.local_addr().ok())
            .flatten();
        let can_splice = !client.bridged();
        let choosing = client.choosing();
        Session {
            choosing,
            id,
            gen,
            client,
            peer,
            listener,
            local,
            ready: Ready {
                readable: true,
                writable: true,
                hup: false,
            },
            core: Conn::new(lim, ctx.now()),
            up: None,
            armed: None,
            handed_over: false,
            pipe: None,
            can_splice,
            proxy: None,
            check: None,
            check_ready: false,
        }
    }

    /// The listener reads a PROXY protocol header first (due by `deadline`); the filter
    /// chain is chosen after it, from the addresses it gives.
    pub fn expect_proxy_header(&mut self, deadline: Instant) {
        self.proxy = Some(Box::new(crate::proxy_protocol::Wait::new(deadline)));
        self.choosing = true;
    }

    /// A connection handed over by our parent whose client address came from a PROXY header
    /// there (`peer` is not the socket's): the socket's peer stays the direct one.
    pub fn keep_origin(&mut self) {
        if let Ok(direct) = self.client.peer_addr() {
            if direct != self.peer {
                self.client.set_origin(crate::proxy_protocol::Origin {
                    peer: self.peer,
                    local: None,
                    direct,
                });
            }
        }
    }

    /// Continues a tunnel (handed over by our parent, or a rolled-back handover of ours)
    /// with its client socket (registered by the caller) and its upstream connection.
    #[allow(clippy::too_many_arguments)]
    pub fn resume_tunnel(
        id: usize,
        gen: u64,
        client: TcpStream,
        up: Box<UpConn>,
        peer: SocketAddr,
        listener: usize,
        state: TunnelState,
        rq: crate::access_log::Rq,
        ctx: &mut Ctx,
    ) -> Session {
        let now = ctx.now();
        let lim = ctx.listeners[listener].limits.clone();
        let buffer_limit = ctx.clusters.get(up.cluster).map_or(1 << 20, |c| {
            c.cfg.per_connection_buffer_limit_bytes as usize
        });
        let target = (up.cluster, up.addr);
        let mut s = Session::new(id, gen, Stream::plain(client), peer, listener, ctx);
        s.handed_over = true;
        s.keep_origin();
        let mut rq = rq;
        if let Some(o) = s.client.origin() {
            rq.direct_peer = o.direct;
        }
        let mut env = CtxEnv::new(ctx, listener, peer);
        s.core = Conn::resume_tunnel(lim, state, rq, target, buffer_limit, &mut env, now);
        s.up = Some(up);
        s
    }

    /// An open tunnel that can move to a successor (`into_moved_tunnel`): plain TCP on both
    /// sides. A TLS session's keys live in this process, so a tunnel over TLS stays here
    /// until it ends or the drain does.
    pub fn in_tunnel(&self) -> bool {
        self.core.in_tunnel()
            && self.pipe_empty()
            && !self.client.bridged()
            && self.client.replay_done()
            && self.up.as_ref().is_some_and(|u| !u.stream.bridged())
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    pub fn listener(&self) -> usize {
        self.listener
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The client and target an upstream PROXY protocol header names for this connection:
    /// those of its own PROXY header; on a TCP proxy, the connection's own otherwise (Envoy's
    /// TCP proxy names its downstream connection; its connection manager does not).
    fn proxied(&self, ctx: &Ctx) -> Option<(SocketAddr, SocketAddr)> {
        let local = || self.local.or_else(|| self.client.local_addr().ok());
        if let Some(o) = self.client.origin() {
            return Some((o.peer, o.local.or_else(local)?));
        }
        let tcp = ctx
            .listeners
            .get(self.listener)
            .is_some_and(|l| l.tcp().is_some());
        tcp.then(|| Some((self.peer, local()?))).flatten()
    }

    /// The addresses a PROXY protocol header gave the connection, if one did.
    pub fn origin(&self) -> Option<crate::proxy_protocol::Origin> {
        self.client.origin().copied()
    }

    /// The timer entry this session has in the heap.
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// A connection handed to us (hot-restart handover), with the bytes read before.
    pub fn preload(&mut self, pool: &mut BufPool, bytes: &[u8]) {
        self.handed_over = true;
        if !bytes.is_empty() {
            self.core.client_in().extend(pool, bytes);
        }
    }

    /// A readiness event for the client socket.
    pub fn client_event(&mut self, r: Ready) {
        self.ready.readable |= r.readable;
        self.ready.writable |= r.writable;
        self.ready.hup |= r.hup;
    }

    /// A readiness event for the upstream socket in slot `slot`.
    pub fn up_event(&mut self, slot: usize, r: Ready) {
        if let Some(up) = self.up.as_mut().filter(|u| u.slot == slot) {
            up.readable |= r.readable;
            up.writable |= r.writable;
            up.hup |= r.hup;
        }
    }

    /// A readiness event for the ext_authz check's connection.
    pub fn check_event(&mut self) {
        self.check_ready = true;
    }

    /// Waiting for a connect slot or a pooled connection.
    pub fn is_queued(&self) -> bool {
        self.core.pending_connect().is_some() && self.up.is_none()
    }

    /// Runs the connection until nothing more can happen without a new event.
    pub fn drive(&mut self, ctx: &mut Ctx) -> Fate {
        let now = ctx.now();
        let fate = match self.run(ctx, now) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("session {} ({}): {e}", self.id, self.peer);
                Fate::Closed
            }
        };
        while let Some(news) = self.client.take_news() {
            crate::observe::tls_news(ctx, self.listener, news);
        }
        if fate == Fate::Alive {
            self.arm_deadline(ctx);
        }
        fate
    }

    fn run(&mut self, ctx: &mut Ctx, now: Instant) -> io::Result<Fate> {
        if self.proxy.is_some() && !self.read_proxy_header(ctx, now)? {
            if ctx.closing() {
                return Ok(Fate::Closed);
            }
            return Ok(Fate::Alive);
        }
        if self.choosing && !self.choose_chain(ctx, now)? {
            // Nothing is served yet: a drain without a successor ends it, as an idle
            // connection's.
            if ctx.closing() {
                return Ok(Fate::Closed);
            }
            return Ok(Fate::Alive);
        }
        // Every round moves bytes or changes state; with edge-triggered readiness the
        // connection must run until nothing moves, or bytes already queued would wait for an
        // edge that never comes.
        loop {
            let mut progress = self.read_client(ctx)?;
            if self.client.take_h2_reset() {
                // The HTTP/2 client reset its running stream: that exchange ends, the
                // connection goes on (the next stream's bytes are there to read).
                if let Some(c) = self.check.take() {
                    c.close(ctx, crate::http::ext_authz::End::Abandoned);
                }
                let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                    .conn(self.gen, self.local)
                    .tls(&self.client);
                self.core.stream_reset(&mut env, now);
                self.ready.readable = true;
                progress = true;
            }
            progress |= self.upstream_io(ctx, now);
            progress |= self.splice_body(ctx, now)?;
            let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                .conn(self.gen, self.local)
                .tls(&self.client);
            progress |= self.core.process(&mut env, now);
            if self.client.take_unblocked() {
                // A WINDOW_UPDATE from the HTTP/2 client opened the window a response write
                // waits for: write again (no socket edge says so).
                self.ready.writable = true;
                progress = true;
            }
            if let Some((preread, opts)) = self.core.take_h2() {
                // The client speaks HTTP/2: the server transcoder goes under the connection,
                // with the bytes already read (the preface); the core reads HTTP/1 from now on.
                let server = crate::h2::server::Server::new(opts);
                self.client.set_h2(Box::new(server), &preread);
                self.can_splice = false;
                self.ready.readable = true;
                progress = true;
            }
            progress |= self.actions(ctx, now);
            progress |= self.check_io(ctx, now);
            if let Some(c) = self.core.closed() {
                // What was answered goes out first (a response head the upstream then broke
                // still reaches the client before the reset, as Envoy streams it).
                self.flush_client()?;
                if c == Close::Reset {
                    self.reset_client();
                } else if self.client.is_h2() {
                    // An HTTP/2 client learns of the close from GOAWAY (idle timeout, drain).
                    self.client.shutdown_write();
                }
                return Ok(Fate::Closed);
            }
            // Client writes wait until nothing else moves, so a response read in several
            // pieces goes out in one write (the buffer limit stops reading before then).
            if !progress {
                let wrote = self.flush_client()?;
                if wrote && self.client.is_h2() {
                    // A response written to the HTTP/2 transcoder may start the next waiting
                    // stream's request, or end the request side: bytes (or EOF) to read that
                    // no socket edge announces.
                    self.ready.readable = true;
                }
                progress |= wrote;
            }
            // Spliced bytes still in the pipe stay with this process until they are out.
            let moveable = self.pipe_empty();
            if moveable && (self.core.ready_to_move() || (ctx.handoff() && self.in_tunnel())) {
                return Ok(Fate::Move);
            }
            // A plain client that asked for the close, with nothing more signalled since its
            // request was read, is closed at once (nginx's rule): no lingering read of its
            // FIN. Spliced bytes still in the pipe go out first. The shutdown sends the FIN
            // with the tail MSG_MORE held back, before close(): bytes the client sent since
            // the last read would make close() reset, and a reset discards unsent bytes; and
            // a socket whose descriptor a hot-restart parent still holds sends no FIN on close.
            if moveable
                && self.core.closes_without_linger()
                && !self.ready.readable
                && !self.client.bridged()
            {
                self.client.shutdown_write();
                return Ok(Fate::Closed);
            }
            // TLS records (or spliced bytes) still queued go out before the close_notify and
            // the shutdown.
            if self.core.wants_shutdown() && !self.client.pending_out() && moveable {
                self.client.shutdown_write();
                self.core.shut_down(now);
                progress = true;
            }
            let up_pending = self.up.as_ref().is_some_and(|u| u.stream.pending_out());
            if self.core.up_wants_shutdown() && !up_pending {
                // A tunnel passes the client's FIN on to the upstream.
                if let Some(up) = &mut self.up {
                    up.stream.shutdown_write();
                }
                self.core.up_shut_down();
                progress = true;
            }
            if !progress {
                self.core.release_buffers(&mut ctx.pool);
                if self.pipe_empty() {
                    if let Some(p) = self.pipe.take() {
                        ctx.pipes.put(p);
                    }
                }
                return Ok(Fate::Alive);
            }
        }
    }

    /// Reads the ClientHello until the filter chain is chosen, then serves the connection with
    /// the chain's unit: its terminal filter's settings, access logs and stats. Ok(false)
    /// while more bytes are needed.
    fn choose_chain(&mut self, ctx: &mut Ctx, now: Instant) -> io::Result<bool> {
        let Some(chain) = self.client.choose()? else {
            return Ok(false);
        };
        self.serve_chain(ctx, chain, now)?;
        Ok(true)
    }

    /// Reads the PROXY protocol header (Envoy's listener filter): its addresses become the
    /// connection's. On a listener without TLS chains the chain is chosen here, from them.
    /// Ok(false) while more bytes are needed; a bad header (or a disallowed version, or none
    /// where one is required) is an error: the connection is closed.
    fn read_proxy_header(&mut self, ctx: &mut Ctx, now: Instant) -> io::Result<bool> {
        use crate::proxy_protocol::{Origin, Outcome};
        let Some(w) = self.proxy.as_deref_mut() else {
            return Ok(true);
        };
        let Some(accept) = ctx
            .listeners
            .get(self.listener)
            .and_then(|l| l.proxy_protocol.as_ref())
            .map(crate::proxy_protocol::accept)
        else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let Some(outcome) = w.poll(self.client.tcp(), accept)? else {
            // A peer that closed (or reset) with half a header will send no more.
            if self.ready.hup {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            return Ok(false);
        };
        self.proxy = None;
        ctx.stats.proxy_proto(self.listener, &outcome);
        match outcome {
            Outcome::Found(h) => {
                if let Some((from, to)) = h.addrs {
                    let direct = self.peer;
                    self.peer = from;
                    self.local = Some(to);
                    self.client.set_origin(Origin {
                        peer: from,
                        local: Some(to),
                        direct,
                    });
                }
            }
            Outcome::Absent => {}
            Outcome::Denied(v) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("PROXY protocol {v:?} header: version disallowed"),
                ))
            }
            Outcome::Bad(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad or missing PROXY protocol header",
                ))
            }
        }
        if self.client.choosing() {
            return Ok(true); // the ClientHello chooses, with these addresses
        }
        let Some(l) = ctx.listeners.get(self.listener) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let facts = crate::chains::Needs::of(&l.chains)
            .facts(self.client.tcp(), "raw_buffer")
            .with_origin(self.client.origin());
        let Some(chain) = crate::chains::select(&l.chains, |c| c, &facts) else {
            ctx.stats.no_chain(self.listener);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no filter chain matches",
            ));
        };
        self.serve_chain(ctx, chain, now)?;
        Ok(true)
    }

    /// Serves the connection with chain `chain`'s unit, once chosen.
    fn serve_chain(&mut self, ctx: &mut Ctx, chain: usize, now: Instant) -> io::Result<()> {
        self.choosing = false;
        let unit = ctx
            .listeners
            .get(self.listener)
            .map_or(self.listener, |l| l.unit_of(chain));
        let Some(l) = ctx.listeners.get(unit) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        self.listener = unit;
        self.core = Conn::new(l.limits.clone(), now);
        self.can_splice = !self.client.bridged();
        self.local = match self.client.origin().and_then(|o| o.local) {
            Some(to) => Some(to),
            None => wants_local(ctx, unit)
                .then(|| self.client.local_addr().ok())
                .flatten(),
        };
        crate::observe::chain_chosen(ctx, unit);
        Ok(())
    }

    /// Reads what the core has room for. A client that resets while its request waits for
    /// the upstream (nothing to read) is noticed through the socket error.
    fn read_client(&mut self, ctx: &mut Ctx) -> io::Result<bool> {
        let mut progress = false;
        loop {
            let room = self.core.client_read_room();
            if room == 0 || !self.ready.readable {
                break;
            }
            let want = room.min(CHUNK);
            match self
                .core
                .client_in()
                .read_from(&mut ctx.pool, &mut self.client, want)?
            {
                ReadOutcome::Data(_) => progress = true,
                ReadOutcome::Drained(_) => {
                    progress = true;
                    // A pending FIN raises no new edge: keep reading to see it. Over TLS a
                    // short read says nothing about the socket: read on until it blocks.
                    self.ready.readable = self.ready.hup || !self.client.short_read_drains();
                }
                ReadOutcome::Eof => {
                    self.core.client_eof();
                    self.ready.readable = false;
                    progress = true;
                }
                ReadOutcome::WouldBlock => self.ready.readable = false,
            }
        }
        if self.client.is_h2() && self.ready.readable && self.core.client_read_room() == 0 {
            // The core reads no request bytes now (its request is in, the response is going
            // out): the HTTP/2 peer's WINDOW_UPDATE, PING and RST_STREAM are read all the same.
            let (consumed, drained) = self.client.pump_h2()?;
            progress |= consumed;
            if drained {
                self.ready.readable = false;
            }
        }
        if self.ready.hup && self.ready.readable && self.core.client_read_room() == 0 {
            // Not reading now (backpressure, or waiting for the upstream): an error (RST) on
            // the socket still ends the connection; a plain FIN (half-close) does not.
            if let Some(e) = self.client.take_error()? {
                return Err(e);
            }
        }
        Ok(progress)
    }

    fn flush_client(&mut self) -> io::Result<bool> {
        if !self.ready.writable {
            return Ok(false);
        }
        // Spliced bytes were granted before anything now in the out buffer: they go first.
        let mut progress = self.drain_pipe()?;
        if !self.pipe_empty() {
            return Ok(progress);
        }
        let last = self.core.output_is_last();
        let out = self.core.client_out();
        if !out.is_empty() {
            let before = out.len();
            let client = &mut self.client;
            let all = if last {
                out.write_with(|b| client.write_before_fin(b))?
            } else {
                out.write_to(client)?
            };
            if !all {
                self.ready.writable = false;
            }
            progress |= self.core.client_out().len() != before;
        }
        if self.ready.writable && self.client.pending_out() {
            // TLS records rustls kept when the socket was full.
            self.ready.writable = self.client.flush_pending()?;
            progress |= self.ready.writable;
        }
        Ok(progress)
    }

    /// Connect completion, writes and reads on the upstream connection.
    fn upstream_io(&mut self, ctx: &mut Ctx, now: Instant) -> bool {
        let Some(up) = self.up.as_mut() else {
            return false;
        };
        let mut progress = false;
        if !up.connected && (up.writable || up.readable) {
            match up.check_connected() {
                Ok(true) => {
                    ctx.upstreams.connect_done(up.addr);
                    crate::observe::upstream_connected(ctx, up.cluster, up.addr);
                    if !up.stream.is_tls() {
                        let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                            .conn(self.gen, self.local)
                            .tls(&self.client);
                        self.core.up_connected(&mut env, now);
                    }
                    progress = true;
                }
                Ok(false) => return false,
                Err(e) => {
                    log::debug!("connect to {} failed: {e}", up.addr);
                    if let Some(errno) = e.raw_os_error() {
                        self.core.connect_error(false, errno);
                    }
                    self.fail_up(ctx, Failure::ConnectFailed, now);
                    return true;
                }
            }
        }
        if !up.connected {
            return progress;
        }
        if up.stream.handshaking() {
            // The TLS handshake is part of connecting (the connect timeout covers it).
            let done = up.stream.handshake();
            while let Some(news) = up.stream.take_news() {
                crate::observe::upstream_tls_news(ctx, up.cluster, news);
            }
            match done {
                Ok(true) => {
                    let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                        .conn(self.gen, self.local)
                        .tls(&self.client);
                    self.core.up_connected(&mut env, now);
                    progress = true;
                }
                Ok(false) => return progress,
                Err(e) => {
                    log::debug!("TLS handshake with {} failed: {e}", up.addr);
                    self.fail_up(ctx, Failure::ConnectFailed, now);
                    return true;
                }
            }
        }
        if up.writable && up.stream.pending_out() {
            match up.stream.flush_pending() {
                Ok(all) => up.writable = all,
                Err(e) => {
                    log::debug!("write to {} failed: {e}", up.addr);
                    self.fail_up(ctx, Failure::Reset, now);
                    return true;
                }
            }
        }
        let written = match self.core.up() {
            Some(side) if up.writable && !side.tx.is_empty() => {
                Some(side.tx.write_to(&mut up.stream))
            }
            _ => None,
        };
        match written {
            Some(Ok(all)) => {
                up.writable = all;
                progress = true;
            }
            Some(Err(e)) => {
                log::debug!("write to {} failed: {e}", up.addr);
                self.fail_up(ctx, Failure::Reset, now);
                return true;
            }
            None => {}
        }
        loop {
            if self.splice_next() {
                // The rest of the body moves past our buffers once the out buffer is written.
                break;
            }
            let room = self.core.up_read_room();
            let (Some(up), true) = (self.up.as_mut(), room > 0) else {
                break;
            };
            if !up.readable {
                break;
            }
            let Some(side) = self.core.up() else { break };
            let r = side
                .rx
                .read_from(&mut ctx.pool, &mut up.stream, room.min(CHUNK));
            match r {
                Ok(ReadOutcome::Data(_)) => self.core.up_data(),
                Ok(ReadOutcome::Drained(_)) => {
                    up.readable = up.hup || !up.stream.short_read_drains();
                    self.core.up_data();
                }
                Ok(ReadOutcome::Eof) => {
                    up.readable = false;
                    self.core.up_eof();
                }
                Ok(ReadOutcome::WouldBlock) => {
                    up.readable = false;
                    break;
                }
                Err(e) => {
                    log::debug!("read from upstream failed: {e}");
                    let f = match crate::h2::fault_of(&e) {
                        Some(crate::h2::Fault::RemoteReset) => Failure::RemoteReset,
                        Some(crate::h2::Fault::Protocol) => Failure::Protocol,
                        None => Failure::Reset,
                    };
                    self.fail_up(ctx, f, now);
                    return true;
                }
            }
            progress = true;
        }
        // An HTTP/2 WINDOW_UPDATE read just now opened the window a refused write waits for:
        // write again this round (the socket raises no edge for it).
        if let Some(up) = self.up.as_mut() {
            if up.stream.take_unblocked() {
                up.writable = true;
                progress = true;
            }
        }
        progress
    }

    /// Whether the response body is to be spliced (now, or once the out buffer is written):
    /// plain TCP on both sides and the core allows it.
    fn splice_next(&self) -> bool {
        self.can_splice
            && self.up.as_ref().is_some_and(|u| !u.stream.bridged())
            && self.core.splice_after_flush() > 0
    }

    fn pipe_empty(&self) -> bool {
        self.pipe.as_ref().is_none_or(|p| p.fill() == 0)
    }

    /// Moves what the pipe holds to the client, while the client takes it.
    fn drain_pipe(&mut self) -> io::Result<bool> {
        let Some(pipe) = self.pipe.as_mut().filter(|p| p.fill() > 0) else {
            return Ok(false);
        };
        if !self.ready.writable {
            return Ok(false);
        }
        let before = pipe.fill();
        let drained = pipe.drain_to(&self.client);
        self.core.set_unsent_spliced(pipe.fill());
        if !drained? {
            self.ready.writable = false;
        }
        Ok(pipe.fill() != before)
    }

    /// Splices the response body the core grants: upstream socket → pipe → client socket,
    /// until the upstream has nothing, the pipe is full and the client takes no more, or the
    /// grant is used up. Upstream EOF and errors reach the core as they do from reads; a
    /// refusal (or no pipe to be had) turns splicing off for this connection.
    fn splice_body(&mut self, ctx: &mut Ctx, now: Instant) -> io::Result<bool> {
        let mut progress = false;
        loop {
            let budget = self.core.splice_budget();
            if budget == 0 || !self.splice_next() {
                break;
            }
            let Some(up) = self.up.as_mut().filter(|u| u.readable) else {
                break;
            };
            let pipe = match self.pipe.as_mut() {
                Some(p) => p,
                None => match ctx.pipes.take() {
                    Some(p) => self.pipe.insert(p),
                    None => {
                        // Copy instead: run the round again, as the body bytes waiting on
                        // the upstream raise no new edge.
                        self.can_splice = false;
                        progress = true;
                        break;
                    }
                },
            };
            match pipe.fill_from(&up.stream, budget) {
                In::Moved(n) => {
                    self.core.spliced(n, now);
                    self.core.set_unsent_spliced(pipe.fill());
                    crate::observe::spliced(ctx, self.listener, n);
                    progress = true;
                }
                In::WouldBlock => {
                    // An empty pipe had room: the socket is drained until its next edge.
                    // Else the pipe may be full: drain it and try again.
                    if pipe.fill() == 0 {
                        up.readable = false;
                    }
                    let drained = self.drain_pipe()?;
                    progress |= drained;
                    if !drained {
                        break;
                    }
                    continue;
                }
                In::Eof => {
                    up.readable = false;
                    self.core.up_eof();
                    progress = true;
                    break;
                }
                In::Refused => {
                    log::debug!("session {}: splice refused, copying", self.id);
                    self.can_splice = false;
                    progress = true;
                    break;
                }
                In::Failed(e) => {
                    log::debug!("splice from upstream failed: {e}");
                    self.fail_up(ctx, Failure::Reset, now);
                    return Ok(true);
                }
            }
            progress |= self.drain_pipe()?;
        }
        Ok(progress)
    }

    /// The upstream connection failed: close it and let the core decide what follows.
    fn fail_up(&mut self, ctx: &mut Ctx, f: Failure, now: Instant) {
        if let Some(up) = self.up.take() {
            up.close(ctx);
        }
        let mut env = CtxEnv::new(ctx, self.listener, self.peer)
            .conn(self.gen, self.local)
            .tls(&self.client);
        self.core.up_failed(&mut env, f, now);
    }

    /// Carries out what the core asked for.
    /// Sends the paused request's ext_authz check, moves its bytes, and gives the core its
    /// answer; a check whose request stopped waiting is closed.
    fn check_io(&mut self, ctx: &mut Ctx, now: Instant) -> bool {
        use crate::http::ext_authz::{End, InFlight};
        if let Some(c) = self.core.take_check() {
            if let Some(old) = self.check.take() {
                old.close(ctx, End::Abandoned);
            }
            match InFlight::send(ctx, c, self.id) {
                Some(f) => {
                    self.check = Some(Box::new(f));
                    self.check_ready = true;
                }
                None => {
                    let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                        .conn(self.gen, self.local)
                        .tls(&self.client);
                    self.core.check_answered(&mut env, None, now);
                    return true;
                }
            }
        }
        if !self.core.checking() {
            // The request went on without its answer: the check's timeout ended it.
            if let Some(old) = self.check.take() {
                old.close(ctx, End::TimedOut);
            }
            return false;
        }
        if !std::mem::take(&mut self.check_ready) {
            return false;
        }
        let Some(f) = self.check.as_mut() else {
            return false;
        };
        let Some(answer) = f.drive() else {
            return false;
        };
        if let Some(f) = self.check.take() {
            let how = match &answer {
                Ok(crate::http::ext_authz::Answer::Http(r)) => End::Answered(r.status),
                // A gRPC call that ended with status OK had an HTTP 200 response.
                Ok(crate::http::ext_authz::Answer::Grpc(_)) => End::Answered(200),
                Err(()) => End::Failed,
            };
            f.close(ctx, how);
        }
        let mut env = CtxEnv::new(ctx, self.listener, self.peer)
            .conn(self.gen, self.local)
            .tls(&self.client);
        self.core.check_answered(&mut env, answer.ok(), now);
        true
    }

    fn actions(&mut self, ctx: &mut Ctx, now: Instant) -> bool {
        let mut any = false;
        while let Some(a) = self.core.poll_action() {
            any = true;
            match a {
                Action::ReleaseUp { reuse } => {
                    if let Some(up) = self.up.take() {
                        if reuse {
                            put_idle(ctx, up);
                        } else if self.core.closed() == Some(Close::Reset) {
                            // The client is reset (a tunnel's reset, a broken response): so
                            // is the upstream.
                            up.reset(ctx);
                        } else {
                            up.close(ctx);
                        }
                    }
                }
                Action::Connect {
                    cluster,
                    addr,
                    fresh,
                } => self.connect(ctx, cluster, addr, fresh, false, now),
            }
        }
        any
    }

    /// Gets a connection to `addr`: pooled, new, or (no connect slot, or the cluster at its
    /// `max_connections`) queued until one frees up (`UpPool::wait`). Without a pooled
    /// connection the request is pending (`max_pending_requests`). `queued`: a woken waiter,
    /// whose place in the queue the reactor keeps.
    fn connect(
        &mut self,
        ctx: &mut Ctx,
        cluster: usize,
        addr: SocketAddr,
        fresh: bool,
        queued: bool,
        now: Instant,
    ) {
        if let Some(old) = self.up.take() {
            old.close(ctx);
        }
        // Only an `auto_sni` cluster's requests name their server: one allocation per connect.
        let sni: Option<Box<str>> = self.core.upstream_sni().map(Box::from);
        let proxied = crate::http::upstream::pool_key(ctx, cluster, || self.proxied(ctx));
        let pooled = if fresh {
            None
        } else {
            take_idle(ctx, cluster, addr, sni.as_deref(), proxied, self.id)
        };
        let got = match pooled {
            Some(c) => Ok((c, true)),
            None => {
                let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                    .conn(self.gen, self.local)
                    .tls(&self.client);
                if !self.core.up_pending(&mut env, now) {
                    return; // refused at once by max_pending_requests
                }
                if !may_open(ctx, cluster, addr, !queued) {
                    if !queued {
                        log::debug!("session {}: waiting for a connection to {addr}", self.id);
                        ctx.upstreams.wait(addr, self.id, self.gen);
                    }
                    return;
                }
                UpConn::connect(ctx, cluster, addr, sni, proxied, self.id).map(|c| (c, false))
            }
        };
        match got {
            Ok((c, reused)) => {
                let local = c.local;
                self.up = Some(c);
                let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                    .conn(self.gen, self.local)
                    .tls(&self.client);
                self.core.up_attached(&mut env, reused, local, now);
            }
            Err(e) => {
                log::debug!("session {}: connect to {addr} failed at once: {e}", self.id);
                if let Some(errno) = e.raw_os_error() {
                    self.core.connect_error(true, errno);
                }
                let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                    .conn(self.gen, self.local)
                    .tls(&self.client);
                self.core.up_failed(&mut env, Failure::ConnectFailed, now);
            }
        }
    }

    /// A queued exchange was woken: retry getting its connection (it stays queued when
    /// nothing is free for it after all).
    pub fn retry_connect(&mut self, ctx: &mut Ctx) {
        if let Some(Action::Connect {
            cluster,
            addr,
            fresh,
        }) = self.core.pending_connect()
        {
            let now = ctx.now();
            self.connect(ctx, cluster, addr, fresh, true, now);
        }
    }

    /// Closes the client with a reset, so a partial response can never look complete.
    fn reset_client(&mut self) {
        reset_on_close(&self.client);
    }

    /// The core's next deadline, or the TLS handshake's if that is earlier.
    fn next_deadline(&self) -> Option<Instant> {
        if let Some(w) = &self.proxy {
            return Some(w.deadline);
        }
        if self.choosing {
            // The stand-in core's timers are not the chain's.
            return self.client.deadline();
        }
        match (self.core.deadline(), self.client.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn arm_deadline(&mut self, ctx: &mut Ctx) {
        if let Some(at) = self.next_deadline() {
            if self.armed.is_none_or(|a| a > at) {
                ctx.timers.arm(at, TimerKey::Session(self.id, self.gen));
                self.armed = Some(at);
            }
        }
    }

    /// A deadline fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx, at: Instant) -> Fate {
        if self.armed != Some(at) {
            return Fate::Alive; // superseded by an earlier entry that already fired
        }
        self.armed = None;
        let now = ctx.now();
        if self.proxy.as_ref().is_some_and(|w| w.deadline <= now) {
            log::debug!(
                "session {} ({}): no PROXY protocol header in time",
                self.id,
                self.peer
            );
            ctx.stats.pre_cx_timeout(self.listener);
            return Fate::Closed;
        }
        if self.client.deadline().is_some_and(|d| d <= now) {
            log::debug!(
                "session {} ({}): TLS handshake timed out",
                self.id,
                self.peer
            );
            crate::observe::tls_timeout(ctx, self.listener);
            return Fate::Closed;
        }
        if !self.choosing && self.core.deadline().is_some_and(|d| d <= now) {
            let mut env = CtxEnv::new(ctx, self.listener, self.peer)
                .conn(self.gen, self.local)
                .tls(&self.client);
            self.core.on_timeout(&mut env, now);
        }
        self.drive(ctx)
    }

    /// Tears the session down: a request still running ends as a downstream disconnect, the
    /// upstream is closed (never reused mid-exchange), buffers go back to the pool.
    pub fn close(mut self, ctx: &mut Ctx) {
        let now = ctx.now();
        // A tunnel torn down from here (the client reset or failed) resets its upstream too.
        let tunnel = self.core.in_tunnel();
        let mut env = CtxEnv::new(ctx, self.listener, self.peer)
            .conn(self.gen, self.local)
            .tls(&self.client);
        self.core.abort(&mut env, now);
        crate::observe::cx_close(ctx, self.listener, !self.choosing);
        if let Some(c) = self.check.take() {
            c.close(ctx, crate::http::ext_authz::End::Abandoned);
        }
        if let Some(up) = self.up.take() {
            if tunnel {
                up.reset(ctx);
            } else {
                up.close(ctx);
            }
        }
        // A socket accepted here is held by nothing else: closing it ends its epoll
        // registration (one syscall less per connection). One handed over by our parent may
        // still be open there (it keeps its copy until we acknowledge), and the registration
        // would outlive our close: deregister it first.
        if self.handed_over {
            let _ = ctx.registry.deregister(&mut self.client);
        }
        self.core.free(&mut ctx.pool);
        if let Some(p) = self.pipe.take() {
            ctx.pipes.put(p);
        }
    }

    /// Tears down a session whose handling panicked. The sockets are deregistered and closed
    /// (the client with a reset; the upstream is never pooled). Its request record is ended
    /// under a second guard, so its host's active-request count and `downstream_rq_active`
    /// come back down; if that panics too, they stay one too high and nothing else is lost.
    pub fn close_after_panic(mut self, ctx: &mut Ctx) {
        self.reset_client();
        crate::observe::cx_close(ctx, self.listener, !self.choosing);
        if let Some(up) = self.up.take() {
            up.close(ctx);
        }
        if let Some(c) = self.check.take() {
            c.close(ctx, crate::http::ext_authz::End::Abandoned);
        }
        let _ = ctx.registry.deregister(&mut self.client);
        let (listener, peer, now) = (self.listener, self.peer, ctx.now());
        let (gen, local) = (self.gen, self.local);
        let core = &mut self.core;
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut env = CtxEnv::new(ctx, listener, peer).conn(gen, local);
            core.abort(&mut env, now);
        }));
        if ended.is_err() {
            log::error!(
                "connection {} ({peer}): its request record could not be ended",
                self.id
            );
        }
    }

    /// Detaches the client socket for a handover: deregistered, with the bytes read from it
    /// and not yet answered. Only for a session whose `drive` said `Fate::Move`.
    pub fn into_moved(mut self, ctx: &mut Ctx) -> (TcpStream, Vec<u8>) {
        crate::observe::cx_moved(ctx, self.listener);
        let _ = ctx.registry.deregister(&mut self.client);
        let pending = self.core.take_pending();
        self.core.free(&mut ctx.pool);
        if let Some(p) = self.pipe.take() {
            ctx.pipes.put(p);
        }
        (self.client.into_tcp(), pending)
    }

    /// Detaches an open tunnel for a handover: both sockets deregistered (not closed), the
    /// bytes buffered each way and the record taken out of the core. Only for a session that
    /// is `in_tunnel`; any other is closed.
    pub fn into_moved_tunnel(
        mut self,
        ctx: &mut Ctx,
    ) -> Option<crate::hot_restart::tunnels::TunnelMove> {
        if !self.in_tunnel() {
            self.close(ctx);
            return None;
        }
        let mut env = CtxEnv::new(ctx, self.listener, self.peer);
        let (state, rq) = self.core.take_tunnel(&mut env)?;
        let up = self.up.take()?;
        crate::observe::cx_moved(ctx, self.listener);
        let _ = ctx.registry.deregister(&mut self.client);
        self.core.free(&mut ctx.pool);
        if let Some(p) = self.pipe.take() {
            ctx.pipes.put(p);
        }
        let cluster = ctx
            .clusters
            .get(up.cluster)
            .map(|c| c.cfg.name.clone())
            .unwrap_or_default();
        let upstream_addr = up.addr;
        let upstream = up.detach(ctx);
        let origin = self.client.origin().copied();
        Some(crate::hot_restart::tunnels::TunnelMove {
            listener: self.listener,
            peer: self.peer,
            client: self.client.into_tcp(),
            upstream,
            cluster,
            upstream_addr,
            state,
            rq,
            origin,
        })
    }

    pub fn token(&self) -> Tok {
        Tok::Down(self.id)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::core::sim::Sim;

    /// An idle keep-alive connection costs its slab slot, its one timer entry and its slot in
    /// the slab's free list, and holds no buffer: 10,000 of them stay under 10 MiB.
    #[test]
    fn an_idle_connection_is_a_small_record_without_buffers() {
        use std::mem::size_of;
        let record = size_of::<Option<Session>>()
            + size_of::<std::cmp::Reverse<(Instant, TimerKey)>>()
            + size_of::<usize>();
        assert!(record <= 768, "idle record {record} bytes");
        let mut sim = Sim::new(8192);
        for _ in 0..3 {
            sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
            sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
        assert_eq!(sim.env.statuses, [200, 200, 200]);
        assert!(sim.conn.holds_buffers());
        sim.conn.release_buffers(&mut sim.env.pool);
        assert!(!sim.conn.holds_buffers());
        assert!(sim.env.pool.free_count() > 0);
    }
}
