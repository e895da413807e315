//! One request/response exchange: the state of the request body going up, the upstream
//! attempt, and the response coming down. Pure: buffers in, buffers and steps out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Action, Env, Reply, Resource, UpSide, MAX_RESPONSE_HEAD};
use crate::access_log::{Flags, Rq};
use crate::http::buf::{Buf, BufPool, CHUNK};
use crate::http::codec::{ChunkedDecoder, Framing, RequestHead, LAST_CHUNK};
use crate::http::compress::{Deflater, Inflater, Plan};
use crate::http::request::{Decision, Forward, LocalDecision};
use crate::http::upgrade::Upgrade;
use crate::route::edits::Op;

#[cfg(test)]
thread_local! {
    /// Response heads parsed on this thread (tests count them: a trickled head must not be
    /// parsed once per read).
    pub(super) static HEAD_PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The connection's buffers, lent to the exchange for one step.
pub(super) struct Cx<'a> {
    pub cin: &'a mut Buf,
    pub cout: &'a mut Buf,
    pub up: &'a mut Option<UpSide>,
    /// Where a finished upstream side leaves its (emptied) buffers for the next attempt.
    pub spare: &'a mut UpSide,
    pub client_eof: bool,
    /// Set when the exchange gives its upstream connection back (`Some(reuse)`).
    pub release: &'a mut Option<bool>,
}

impl Cx<'_> {
    /// Closes the upstream connection (never reused mid-exchange).
    pub fn drop_up(&mut self) {
        if let Some(up) = self.up.take() {
            up.recycle(self.spare);
            *self.release = Some(false);
        }
    }
}

/// How much of a body is still expected.
#[derive(Debug, Clone)]
pub(super) enum BodyIn {
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl BodyIn {
    pub fn from_framing(f: Framing) -> BodyIn {
        match f {
            Framing::None | Framing::Length(0) => BodyIn::Done,
            Framing::Length(n) => BodyIn::Length(n),
            Framing::Chunked => BodyIn::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => BodyIn::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyIn::Done)
    }
}

/// How the response body is framed towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutMode {
    NoBody,
    Length,
    Chunked,
    /// HTTP/1.0 client and no length: the end of the body is our close.
    Close,
}

#[derive(Debug)]
pub(super) struct Response {
    pub body: BodyIn,
    pub out: OutMode,
    pub upstream_keep_alive: bool,
    /// Chunked to chunked: payload bytes of a chunk whose size line is already out (one
    /// announced for a whole upstream chunk, so its payload may be spliced). They go out raw;
    /// its CRLF follows the last of them.
    chunk_owed: u64,
    /// The announced chunk's payload went out by splice: its CRLF is due before anything else.
    crlf_due: bool,
    /// The upstream's chunked body could not be decoded: the response ends there as a protocol
    /// error (Envoy's `UPE`, `{protocol_error}`), not as a connection the upstream closed.
    bad_body: bool,
    /// The compressor filter compresses this body (never spliced; framed by us).
    pub gzip: Option<Box<Deflater>>,
}

impl Response {
    pub fn new(body: BodyIn, out: OutMode, upstream_keep_alive: bool) -> Response {
        Response {
            body,
            out,
            upstream_keep_alive,
            chunk_owed: 0,
            crlf_due: false,
            bad_body: false,
            gzip: None,
        }
    }
}

/// Where the exchange's upstream side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upstream {
    /// Answered locally; the request body is read and discarded.
    Local,
    /// `Connect` was asked for; the driver has not attached a connection yet.
    Waiting,
    /// A connection is attached (connecting or connected).
    Attached,
    /// Between two attempts.
    Backoff { until: Instant },
}

/// What the connection does after an exchange.
#[derive(Debug)]
pub(super) enum Then {
    /// Read the next request.
    Next,
    /// Flush, shut down, linger, close.
    Close,
    /// Close at once with a reset.
    Reset,
    /// Close at once (the client is gone).
    Drop,
}

/// The result of driving an exchange.
#[derive(Debug)]
pub(super) enum Step {
    /// Still running; whether anything moved.
    Running(bool),
    /// Still running, and needs a connection.
    Connect(Action),
    /// A new exchange begins (and may need a connection).
    Started(Box<Exchange>, Option<Action>),
    /// The exchange is over.
    End(Then),
    /// The response opened a tunnel: from now on bytes flow both ways untouched.
    Tunnel,
}

/// What an exchange keeps of its request head.
pub(super) struct Meta {
    framing: Framing,
    keep_alive: bool,
    minor: u8,
    is_head: bool,
    idempotent: bool,
    expect_continue: bool,
    /// `proxy_100_continue` and the request expects a 100: the upstream's answers it.
    relay_continue: bool,
    stream_idle: Option<Duration>,
    /// `request_timeout`'s end for this request.
    request_until: Option<Instant>,
    /// The listener's `per_connection_buffer_limit_bytes`.
    client_limit: usize,
}

impl Meta {
    /// An exchange with no request to read: a tunnel resumed here, or a TCP proxy connection.
    fn tunnel(minor: u8, stream_idle: Option<Duration>, client_limit: usize) -> Meta {
        Meta {
            framing: Framing::None,
            keep_alive: false,
            minor,
            is_head: false,
            idempotent: false,
            expect_continue: false,
            relay_continue: false,
            stream_idle,
            request_until: None,
            client_limit,
        }
    }
}

impl Meta {
    pub fn new(req: &RequestHead<'_>, lim: &super::Limits, began: Instant) -> Meta {
        Meta {
            framing: req.framing,
            keep_alive: req.keep_alive,
            minor: req.minor,
            is_head: req.method == "HEAD",
            // RFC 9110 §9.2.2: only these may be repeated without the client asking.
            idempotent: matches!(
                req.method,
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            ),
            expect_continue: req.expect_continue,
            relay_continue: req.expect_continue && lim.proxy_100_continue,
            stream_idle: lim.stream_idle_timeout,
            request_until: lim.request_timeout.map(|t| began + t),
            client_limit: lim.buffer_limit,
        }
    }
}

#[derive(Debug)]
pub struct Exchange {
    /// Upstream target; `None` for a local reply whose request body we discard.
    pub(super) target: Option<(usize, SocketAddr)>,
    pub(super) upstream: Upstream,
    /// Serialised upstream request head, kept until a response head arrives (retry).
    pub(super) head: Vec<u8>,
    pub(super) req: BodyIn,
    pub(super) req_body_started: bool,
    pub(super) client_minor: u8,
    pub(super) client_keep_alive: bool,
    pub(super) is_head: bool,
    pub(super) idempotent: bool,
    pub(super) resp: Option<Response>,
    pub(super) timeout: Option<Duration>,
    pub(super) timeout_at: Option<Instant>,
    /// What a route timeout answers before a response head: 504 (or 204, see `Forward`).
    pub(super) timeout_status: u16,
    pub(super) connect_at: Option<Instant>,
    pub(super) connect_timeout: Duration,
    /// Bound of the client-side buffers (unread request bytes, response bytes not yet written)
    /// and of the request body kept for a retry: the listener's
    /// `per_connection_buffer_limit_bytes`, as Envoy bounds a downstream connection's buffers.
    pub(super) client_limit: usize,
    /// Bound of the request bytes queued to the upstream: the cluster's
    /// `per_connection_buffer_limit_bytes`.
    pub(super) up_limit: usize,
    /// Most headers an upstream response head may have (the cluster's `max_headers_count`).
    pub(super) max_resp_headers: usize,
    /// The one transparent retry after a stale pooled connection was used.
    pub(super) retried: bool,
    /// Whether the client connection stays open after this exchange (decided at response head).
    pub(super) keep: bool,
    pub(super) route: Option<(usize, usize)>,
    /// The retry policy merged with an internal request's headers; `None`: the route's.
    pub(super) policy: Option<Box<crate::config::RetryPolicy>>,
    pub(super) resp_edits: Vec<Op>,
    pub(super) auto_host: Option<(usize, usize)>,
    pub(super) retries_left: u32,
    /// Request body bytes sent so far, kept while a retry may replay them or a shadow needs
    /// them; `None` once the body outgrew the buffer limit (retries and shadows are then off).
    pub(super) replay: Option<Vec<u8>>,
    /// The upstream's first `100 Continue` goes to the client (`proxy_100_continue`); false
    /// once it has.
    pub(super) relay_continue: bool,
    /// The body outgrew the buffer limit while kept (`retry_or_shadow_abandoned`).
    pub(super) abandoned: bool,
    /// Shadows of the request, sent when it is read in full (`request_mirror_policies`).
    pub(super) shadows: Vec<crate::http::mirror::Shadow>,
    /// Most body bytes `replay` keeps: the listener's limit, or the route's if lower.
    pub(super) replay_limit: usize,
    /// The `x-envoy-attempt-count` value's range in `head`, rewritten per attempt.
    pub(super) attempt_at: Option<(usize, usize)>,
    /// `x-envoy-attempt-count` goes on the response (as a response edit, so on the route's
    /// local replies too).
    pub(super) attempts_in_response: bool,
    /// The TLS server name of the upstream connection (`auto_sni`).
    pub(super) sni: Option<Box<str>>,
    pub(super) per_try: Option<Duration>,
    pub(super) per_try_at: Option<Instant>,
    pub(super) attempts: u32,
    /// `upstream_rq_retry_success` was counted for this exchange.
    pub(super) retry_counted: bool,
    /// The cluster's circuit-breaker resources this exchange holds, one bit per `Resource`:
    /// a retry (from a retry decision to the next), a pending request (no ready connection
    /// yet), an active request (on a connection).
    pub(super) held: u8,
    /// Stream idle timeout (route's `idle_timeout`, else the HCM's `stream_idle_timeout`).
    pub(super) idle: Option<Duration>,
    pub(super) last_activity: Instant,
    /// When the current attempt's connection was attached (for x-envoy-upstream-service-time).
    pub(super) attached_at: Instant,
    /// A full read buffer held no complete response head: read on, up to the head limit.
    pub(super) head_partial: bool,
    pub(super) rq: Rq,
    /// An allowed upgrade or CONNECT request: how it is carried.
    pub(super) upgrade: Option<Upgrade>,
    /// The response head just queued opens the tunnel.
    pub(super) tunnel_ready: bool,
    /// `request_timeout`'s end: armed until the request is in or an answer has started.
    pub(super) request_until: Option<Instant>,
    /// A TCP proxy connection's exchange (`tcp.rs`): no request, no response, a tunnel once
    /// connected.
    pub(super) tcp: Option<super::tcp::TcpMode>,
    /// The compressor filter saw the request: the response head decides.
    pub(super) compress: Option<Box<Plan>>,
    /// The decompressor filter inflates the request body on its way upstream.
    pub(super) inflate: Option<Box<Inflater>>,
}

impl Exchange {
    /// Begins the exchange for a routed request head. The decision and the record come by
    /// value straight from the head's parse (no intermediate struct: each move of them was
    /// a copy of several hundred bytes); only the client output is touched.
    pub(super) fn start(
        env: &mut dyn Env,
        s: Meta,
        mut decision: Decision,
        mut rq: Rq,
        cout: &mut Buf,
        closing: bool,
        now: Instant,
    ) -> Step {
        let has_body = s.framing != Framing::None;
        if let Decision::Pause(_) = decision {
            // The connection pauses a request on its check before it starts an exchange.
            log::error!("an exchange began with an unanswered ext_authz check");
            decision = crate::http::request::internal_error();
        }
        match &mut decision {
            Decision::Local(d) => {
                if d.direct {
                    env.direct_response();
                }
                rq.detail(match d.flag {
                    _ if !d.details.is_empty() => d.details.clone(),
                    Flags::NR => "route_not_found".into(),
                    Flags::UH => "no_healthy_upstream".into(),
                    _ => "direct_response".into(),
                });
                rq.route = d.route;
                if !has_body {
                    rq.req_done = Some(now);
                }
                rq.flags.set(d.flag);
                // Expect: 100-continue with a body we will not read: the client may never
                // send it, so the connection cannot be reused.
                let mut keep = s.keep_alive && !closing && !(has_body && s.expect_continue);
                if keep && env.overload_close() {
                    keep = false;
                }
                reply_local(env, cout, d, (!keep, s.is_head), &mut rq);
                if keep && has_body {
                    let ex = Exchange::boxed(env.spares(), &s, None, None, rq, now);
                    return Step::Started(ex, None);
                }
                env.end(&mut rq, now);
                Step::End(if keep { Then::Next } else { Then::Close })
            }
            Decision::Forward(f) => {
                rq.cluster = Some(f.cluster);
                rq.route = Some(f.route);
                let limits = Some((f.connect_timeout, f.buffer_limit));
                let mut ex = Exchange::boxed(env.spares(), &s, Some(&*f), limits, rq, now);
                // A terminated CONNECT sends nothing of the request upstream.
                if !ex.fresh_connection() {
                    ex.head = std::mem::take(&mut f.head);
                }
                ex.resp_edits = std::mem::take(&mut f.resp_edits);
                ex.shadows = std::mem::take(&mut f.shadows);
                ex.sni = f.sni.take();
                ex.compress = f.compress.take();
                ex.inflate = f.inflate.take().map(|p| Inflater::new(p.rt));
                if ex.attempts_in_response {
                    ex.stamp_attempts();
                }
                ex.policy = f.retry_policy.take();
                env.track(f.cluster, f.addr, 1);
                if ex.req.is_done() {
                    ex.request_done(env, now);
                }
                if s.expect_continue && has_body && !s.relay_continue {
                    cout.extend(env.pool(), CONTINUE);
                }
                ex.relay_continue = s.relay_continue;
                let a = ex.launch();
                Step::Started(ex, Some(a))
            }
            // Replaced above.
            Decision::Pause(_) => Step::End(Then::Reset),
        }
    }

    fn new(
        s: &Meta,
        f: Option<&Forward>,
        limits: Option<(Duration, usize)>,
        rq: Rq,
        now: Instant,
    ) -> Exchange {
        let mut ex = Exchange::blank(rq, now);
        ex.init(s, f, limits, now);
        ex
    }

    /// A new exchange in a box, a spare one when there is one. A spare box is filled in
    /// place (`init`): building the record (~850 bytes) on the stack and copying it into
    /// the box cost more than the fields themselves. Inlined, so that the record is moved
    /// once, from the caller's argument into the box.
    #[inline(always)]
    fn boxed(
        spares: &mut super::Spares,
        s: &Meta,
        f: Option<&Forward>,
        limits: Option<(Duration, usize)>,
        rq: Rq,
        now: Instant,
    ) -> Box<Exchange> {
        match spares.exchanges.pop() {
            Some(mut b) => {
                b.rq = rq;
                b.init(s, f, limits, now);
                b
            }
            None => Box::new(Exchange::new(s, f, limits, rq, now)),
        }
    }

    /// A record whose every field `init` sets again (only `rq` is kept).
    fn blank(rq: Rq, now: Instant) -> Exchange {
        Exchange {
            target: None,
            upstream: Upstream::Local,
            head: Vec::new(),
            req: BodyIn::Done,
            req_body_started: false,
            client_minor: 1,
            client_keep_alive: false,
            is_head: false,
            idempotent: false,
            resp: None,
            timeout: None,
            timeout_at: None,
            timeout_status: 504,
            connect_at: None,
            connect_timeout: Duration::ZERO,
            client_limit: CHUNK,
            up_limit: CHUNK,
            max_resp_headers: 0,
            retried: false,
            keep: false,
            route: None,
            policy: None,
            resp_edits: Vec::new(),
            auto_host: None,
            retries_left: 0,
            replay: None,
            abandoned: false,
            relay_continue: false,
            shadows: Vec::new(),
            replay_limit: CHUNK,
            attempt_at: None,
            attempts_in_response: false,
            sni: None,
            per_try: None,
            per_try_at: None,
            attempts: 1,
            retry_counted: false,
            held: 0,
            idle: None,
            last_activity: now,
            attached_at: now,
            head_partial: false,
            rq,
            upgrade: None,
            tunnel_ready: false,
            request_until: None,
            tcp: None,
            compress: None,
            inflate: None,
        }
    }

    /// Sets every field but `rq` for a new request (the pattern names them all, so a field
    /// added later cannot keep a previous exchange's value).
    fn init(
        &mut self,
        s: &Meta,
        f: Option<&Forward>,
        limits: Option<(Duration, usize)>,
        now: Instant,
    ) {
        let (connect_timeout, up_limit) = limits.unwrap_or((Duration::from_secs(5), 1 << 20));
        let retries = f.and_then(|f| f.retries);
        let Exchange {
            target,
            upstream,
            head,
            req,
            req_body_started,
            client_minor,
            client_keep_alive,
            is_head,
            idempotent,
            resp,
            timeout,
            timeout_at,
            timeout_status,
            connect_at,
            connect_timeout: connect_timeout_field,
            client_limit,
            up_limit: up_limit_field,
            max_resp_headers,
            retried,
            keep,
            route,
            policy,
            resp_edits,
            auto_host,
            retries_left,
            replay,
            abandoned,
            relay_continue,
            shadows,
            replay_limit,
            attempt_at,
            attempts_in_response,
            sni,
            per_try,
            per_try_at,
            attempts,
            retry_counted,
            held,
            idle,
            last_activity,
            attached_at,
            head_partial,
            rq: _,
            upgrade,
            tunnel_ready,
            request_until,
            tcp,
            compress,
            inflate,
        } = self;
        *target = f.map(|f| (f.cluster, f.addr));
        *upstream = if f.is_some() {
            Upstream::Waiting
        } else {
            Upstream::Local
        };
        *head = Vec::new();
        *req = BodyIn::from_framing(s.framing);
        *req_body_started = false;
        *client_minor = s.minor;
        *client_keep_alive = s.keep_alive;
        *is_head = s.is_head;
        *idempotent = s.idempotent;
        *resp = None;
        *timeout = f.and_then(|f| f.timeout);
        *timeout_at = None;
        *timeout_status = f.map_or(504, |f| f.timeout_status);
        *connect_at = None;
        *connect_timeout_field = connect_timeout;
        *client_limit = s.client_limit.max(CHUNK);
        *up_limit_field = up_limit.max(CHUNK);
        *max_resp_headers = f.map_or(crate::http::codec::MAX_HEADERS, |f| f.resp_headers);
        *retried = false;
        *keep = s.keep_alive;
        *route = f.map(|f| f.route);
        *policy = None;
        *resp_edits = Vec::new();
        *auto_host = f.and_then(|f| f.auto_host);
        *retries_left = retries.unwrap_or(0);
        *replay = (retries.is_some() || f.is_some_and(|f| !f.shadows.is_empty())).then(Vec::new);
        *abandoned = false;
        *relay_continue = false;
        *shadows = Vec::new();
        // The configured limits as they are: the body is kept whole or not at all, so unlike
        // the socket buffers it needs no floor of one read chunk.
        *replay_limit = f
            .and_then(|f| f.body_limit)
            .map_or(s.client_limit, |b| b.min(s.client_limit));
        *attempt_at = f.and_then(|f| f.attempt_at);
        *attempts_in_response = f.is_some_and(|f| f.attempts_in_response);
        *sni = None;
        *per_try = f.and_then(|f| f.per_try);
        *per_try_at = None;
        *attempts = 1;
        *retry_counted = false;
        *held = 0;
        *idle = f.map_or(s.stream_idle, |f| f.idle);
        *last_activity = now;
        *attached_at = now;
        *head_partial = false;
        *upgrade = f.and_then(|f| f.upgrade);
        *tunnel_ready = false;
        *request_until = s.request_until;
        *tcp = None;
        *compress = None;
        *inflate = None;
    }

    /// The exchange behind a TCP proxy connection: nothing to send first, a fresh connection
    /// to `t`, and no timer but the connect timeout until the tunnel opens.
    pub(super) fn tcp(
        t: super::TcpTarget,
        mode: super::tcp::TcpMode,
        mut rq: Rq,
        client_limit: usize,
        now: Instant,
    ) -> Exchange {
        let meta = Meta::tunnel(rq.minor, None, client_limit);
        rq.cluster = Some(t.cluster);
        let limits = Some((t.connect_timeout, t.buffer_limit));
        let mut ex = Exchange::new(&meta, None, limits, rq, now);
        ex.target = Some((t.cluster, t.addr));
        ex.upstream = Upstream::Waiting;
        ex.tcp = Some(mode);
        ex
    }

    /// The exchange behind a tunnel that continues here (a handover, or its rollback): its
    /// response is sent and its upstream connection attached.
    pub(super) fn resumed(
        target: (usize, SocketAddr),
        rq: Rq,
        idle: Option<Duration>,
        (client_limit, buffer_limit): (usize, usize),
        now: Instant,
    ) -> Exchange {
        let meta = Meta::tunnel(rq.minor, idle, client_limit);
        let mut ex = Exchange::new(&meta, None, Some((Duration::ZERO, buffer_limit)), rq, now);
        ex.target = Some(target);
        ex.upstream = Upstream::Attached;
        ex.resp = Some(Response::new(BodyIn::Done, OutMode::NoBody, false));
        ex.tunnel_ready = true;
        ex
    }

    /// Asks the driver for a connection to the current target.
    pub(super) fn launch(&mut self) -> Action {
        self.upstream = Upstream::Waiting;
        let (cluster, addr) = self
            .target
            .unwrap_or((0, SocketAddr::from(([0, 0, 0, 0], 0))));
        self.rq.upstream = Some(addr);
        self.rq.attempts = self.attempts;
        Action::Connect {
            cluster,
            addr,
            fresh: self.fresh_connection(),
        }
    }

    /// A terminated CONNECT and a TCP proxy carry raw bytes: never on a pooled HTTP
    /// connection (and their connection never goes back to the pool).
    pub(super) fn fresh_connection(&self) -> bool {
        self.upgrade == Some(Upgrade::Terminate) || self.tcp.is_some()
    }

    /// The driver attached a connection: queue the head and whatever body a retry replays.
    pub(super) fn attached(
        &mut self,
        env: &mut dyn Env,
        up: &mut UpSide,
        reused: bool,
        local: Option<SocketAddr>,
        now: Instant,
    ) {
        let Some((cluster, addr)) = self.target else {
            return;
        };
        self.rq.upstream_local = local;
        self.upstream = Upstream::Attached;
        self.attached_at = now;
        if self.tcp.is_some() {
            // No request: the connect timer started when the connection was asked for.
            return;
        }
        env.upstream_rq(cluster, addr, !reused);
        up.tx.extend(env.pool(), &self.head);
        if let Some(body) = self.replay.as_deref() {
            up.tx.extend(env.pool(), body);
        }
        if !reused {
            self.connect_at = Some(now + self.connect_timeout);
        }
        if self.req.is_done() {
            self.per_try_at = self.per_try.map(|t| now + t);
            // A pooled connection: the breakers took the request already.
            if reused {
                self.send_shadows(env);
            }
        }
    }

    pub(super) fn connected(&mut self, _now: Instant) {
        self.connect_at = None;
    }

    pub(super) fn waiting_for_upstream(&self) -> bool {
        self.upstream == Upstream::Waiting
    }

    pub(super) fn client_read_room(&self, cin: usize, up: Option<&UpSide>) -> usize {
        if self.req.is_done() {
            return 0;
        }
        let open = match self.upstream {
            Upstream::Local => true,
            Upstream::Attached => up.is_none_or(|u| u.tx.len() < self.up_limit),
            Upstream::Waiting | Upstream::Backoff { .. } => false,
        };
        if open {
            self.client_limit.saturating_sub(cin)
        } else {
            0
        }
    }

    pub(super) fn up_read_room(&self, rx: usize, cout: usize) -> usize {
        if let Some(m) = self.tcp {
            // The tunnel reads, once it is open; before, only the proxy's answer to our
            // CONNECT is read (up to a head's bound).
            if m.tunnel && m.connect_sent {
                return (MAX_RESPONSE_HEAD + 1).saturating_sub(rx);
            }
            return 0;
        }
        if self.resp.is_none() {
            // One buffer's worth is read and parsed first; only a head that is still
            // incomplete then is read on, up to the limit (so a 64 KiB response does not
            // grow the read buffer past its pooled size on the way).
            if rx < CHUNK {
                return CHUNK - rx;
            }
            if self.head_partial {
                return (MAX_RESPONSE_HEAD + 1).saturating_sub(rx);
            }
            return 0;
        }
        if cout >= self.client_limit {
            return 0;
        }
        CHUNK.saturating_sub(rx)
    }

    /// `request_timeout`, while it applies: the request is still arriving and nothing has
    /// been answered (Envoy disarms it when the response starts).
    pub(super) fn request_deadline(&self) -> Option<Instant> {
        // While the upstream is not attached the body is not read (it waits in the socket),
        // so what has not arrived may well be there: Envoy would have buffered it.
        self.request_until.filter(|_| {
            !self.req.is_done() && self.resp.is_none() && self.upstream == Upstream::Attached
        })
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let idle_at = self.idle.map(|t| self.last_activity + t);
        let backoff = match self.upstream {
            Upstream::Backoff { until } => Some(until),
            _ => None,
        };
        [
            self.request_deadline(),
            self.connect_at,
            self.timeout_at,
            self.per_try_at,
            backoff,
            idle_at,
            self.tcp.and_then(|m| m.until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends the exchange's record and what it holds on the cluster. The exchange is spent
    /// afterwards (its box is kept for the next one; see `Spares`).
    pub(super) fn finish(&mut self, env: &mut dyn Env, now: Instant) {
        self.release_all(env);
        if let Some((c, addr)) = self.target.take() {
            env.track(c, addr, -1);
        }
        env.end(&mut self.rq, now);
    }

    /// Takes one `r` of the target cluster's circuit breakers for this exchange (nothing
    /// when it already holds one); false when the breaker refuses. `over`: whatever the limit.
    pub(super) fn hold(&mut self, env: &mut dyn Env, r: Resource, over: bool) -> bool {
        let bit = 1u8 << r as u8;
        if self.held & bit != 0 {
            return true;
        }
        let Some((c, _)) = self.target else {
            return false;
        };
        if !env.acquire(c, r, over) {
            return false;
        }
        self.held |= bit;
        true
    }

    /// Gives back the `r` this exchange holds, if any.
    pub(super) fn unhold(&mut self, env: &mut dyn Env, r: Resource) {
        let bit = 1u8 << r as u8;
        if self.held & bit == 0 {
            return;
        }
        self.held &= !bit;
        if let Some((c, _)) = self.target {
            env.release(c, r);
        }
    }

    /// Gives back everything held on the cluster (the exchange ends, or leaves the process).
    pub(super) fn release_all(&mut self, env: &mut dyn Env) {
        for r in Resource::ALL {
            self.unhold(env, r);
        }
    }

    /// The exchange has a ready connection: no longer pending, it becomes an active request
    /// (`max_requests`). False when that breaker refuses.
    pub(super) fn take_request(&mut self, env: &mut dyn Env) -> bool {
        self.unhold(env, Resource::Pending);
        self.hold(env, Resource::Request, false)
    }

    /// The response edit that says how many attempts the request took (Envoy's router sets
    /// it on the response, overriding the upstream's).
    pub(super) fn stamp_attempts(&mut self) {
        const NAME: &str = "x-envoy-attempt-count";
        self.resp_edits
            .retain(|op| !matches!(op, Op::Add(a) if a.name == NAME));
        let n = self.attempts.to_string();
        self.resp_edits.push(Op::fixed(
            NAME,
            &n,
            crate::config::AppendAction::OverwriteIfExistsOrAdd,
        ));
    }

    pub(super) fn flag(&mut self, f: u32) {
        self.rq.flags.set(f);
    }

    /// The request body has been sent in full: the route and per-try timers start, and the
    /// request's shadows go out (or are given up with a body too large to keep).
    pub(super) fn request_done(&mut self, env: &mut dyn Env, now: Instant) {
        self.req = BodyIn::Done;
        self.rq.req_done = Some(now);
        self.timeout_at = self.timeout.map(|t| now + t);
        if self.upstream == Upstream::Attached {
            self.per_try_at = self.per_try.map(|t| now + t);
        }
        if let (true, Some((cluster, _))) = (self.abandoned, self.target) {
            env.retry_or_shadow_abandoned(cluster);
        }
        if self.upstream == Upstream::Attached && self.held & (1 << Resource::Request as u8) != 0 {
            self.send_shadows(env);
        }
    }

    /// The request is complete and its cluster took it (a connection is attached, past the
    /// circuit breakers): its shadows go out. A request answered here (its upstream failed,
    /// a breaker refused it) sends none; nor does one whose body was too large to keep.
    pub(super) fn send_shadows(&mut self, env: &mut dyn Env) {
        if self.shadows.is_empty() {
            return;
        }
        let shadows = std::mem::take(&mut self.shadows);
        if self.abandoned {
            return;
        }
        let body = self.replay.as_deref().unwrap_or_default();
        for shadow in shadows {
            env.mirror(shadow, body, self.timeout);
        }
    }

    /// Moves the exchange forward on what is buffered.
    pub(super) fn pump(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        closing: bool,
        now: Instant,
    ) -> Step {
        let step = self.pump_inner(env, cx, closing, now);
        if let Step::Running(true) = step {
            self.last_activity = now;
        }
        step
    }

    fn pump_inner(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        closing: bool,
        now: Instant,
    ) -> Step {
        let mut progress = false;
        if !self.req.is_done() && matches!(self.upstream, Upstream::Local | Upstream::Attached) {
            match self.move_request_body(env, cx, now) {
                Ok(p) => progress |= p,
                Err(reason) => {
                    log::debug!("bad request body: {reason}");
                    return self.request_body_error(env, cx);
                }
            }
            if cx.client_eof && !self.req.is_done() && cx.cin.is_empty() {
                log::debug!("client closed mid-request");
                self.flag(Flags::DC);
                self.rq.detail("downstream_remote_disconnect");
                cx.drop_up();
                return Step::End(Then::Drop);
            }
        }
        match self.upstream {
            Upstream::Local => {
                if self.req.is_done() {
                    return Step::End(if self.keep && !closing {
                        Then::Next
                    } else {
                        Then::Close
                    });
                }
                return Step::Running(progress);
            }
            Upstream::Waiting | Upstream::Backoff { .. } => return Step::Running(progress),
            Upstream::Attached => {}
        }
        let Some(up) = cx.up.as_mut() else {
            return Step::Running(progress);
        };
        if !up.connected {
            return Step::Running(progress);
        }
        if self.tcp.is_some() {
            return match self.tcp_tunnel_answer(env, up, now) {
                Ok(super::tcp::TunnelAnswer::Open) => self.tcp_connected(),
                Ok(super::tcp::TunnelAnswer::Wait(p)) => Step::Running(progress | p),
                Err(f) => {
                    cx.drop_up();
                    self.failed(env, cx, f, false, true, now)
                }
            };
        }
        if self.upgrade == Some(Upgrade::Terminate) && self.resp.is_none() {
            return self.connect_established(env, cx.cout);
        }
        if self.resp.is_none() {
            match self.response_head(env, up, cx.cout, closing, now) {
                Ok(_) if self.tunnel_ready => return Step::Tunnel,
                Ok(p) => progress |= p,
                Err(f) => {
                    let stale = false;
                    cx.drop_up();
                    return self.failed(env, cx, f, stale, true, now);
                }
            }
        }
        if self.resp.is_some() {
            progress |= self.move_response_body(env.pool(), up, cx.cout);
            self.count_compressed(env);
        }
        if self.resp.as_ref().is_some_and(|r| r.body.is_done()) {
            return self.complete(cx);
        }
        if up.eof && up.rx.is_empty() {
            // Closed before the response was complete, or its body could not be read.
            let stale = up.reused && !up.got_bytes;
            let f = if self.resp.as_ref().is_some_and(|r| r.bad_body) {
                super::Failure::Protocol
            } else {
                super::Failure::Reset
            };
            cx.drop_up();
            return self.failed(env, cx, f, stale, true, now);
        }
        Step::Running(progress)
    }

    /// Moves request body bytes from the client buffer to the upstream (or discards them).
    fn move_request_body(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        now: Instant,
    ) -> Result<bool, &'static str> {
        let mut sink: Option<&mut Buf> = cx.up.as_mut().map(|u| &mut u.tx);
        let room = match &sink {
            Some(b) => self.up_limit.saturating_sub(b.len()),
            None => usize::MAX,
        };
        let sink_before = sink.as_ref().map_or(0, |b| b.len());
        let carried = self.inflate.as_ref().is_some_and(|i| !i.carry.is_empty());
        if (cx.cin.is_empty() && !carried) || room == 0 {
            return Ok(false);
        }
        // A body going nowhere (answered here) is discarded as it came, not inflated.
        if let (Some(inf), true) = (self.inflate.as_deref_mut(), sink.is_some()) {
            let (finished, taken) =
                inflate_body(inf, &mut self.req, cx.cin, sink.as_deref_mut(), room, env)?;
            self.rq.bytes_rx += taken;
            self.req_body_started = true;
            if let Some(b) = sink.as_deref() {
                self.record_body(b, sink_before);
            }
            if finished {
                self.request_done(env, now);
            }
            return Ok(true);
        }
        let pool = env.pool();
        let finished = match &mut self.req {
            BodyIn::Done | BodyIn::UntilClose => return Ok(false),
            BodyIn::Length(rem) => {
                let n = (*rem).min(cx.cin.len() as u64).min(room as u64) as usize;
                match sink.as_deref_mut() {
                    Some(b) => cx.cin.move_front(n, b, pool),
                    None => cx.cin.consume(n),
                }
                self.rq.bytes_rx += n as u64;
                *rem -= n as u64;
                *rem == 0
            }
            BodyIn::Chunked(dec) => {
                let rx = &mut self.rq.bytes_rx;
                let used = dec
                    .decode(cx.cin.data(), room, |d| {
                        *rx += d.len() as u64;
                        if let Some(b) = sink.as_deref_mut() {
                            put_chunk(b, pool, d);
                        }
                    })
                    .map_err(|e| e.0)?;
                cx.cin.consume(used);
                let done = dec.is_done();
                if done {
                    if let Some(b) = sink.as_deref_mut() {
                        b.extend(pool, LAST_CHUNK);
                    }
                }
                done
            }
        };
        self.req_body_started = true;
        if let Some(b) = sink.as_deref() {
            self.record_body(b, sink_before);
        }
        if finished {
            self.request_done(env, now);
        }
        Ok(true)
    }

    /// Keeps a copy of request-body bytes just queued upstream (`sink[from..]`) while a
    /// retry may need them; past the buffer limit the copy is dropped and retries are off.
    fn record_body(&mut self, sink: &Buf, from: usize) {
        let Some(r) = self.replay.as_mut() else {
            return;
        };
        let new = sink.data().get(from..).unwrap_or_default();
        if r.len() + new.len() > self.replay_limit {
            self.replay = None;
            self.retries_left = 0;
            self.abandoned = true;
            return;
        }
        r.extend_from_slice(new);
    }

    fn request_body_error(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>) -> Step {
        cx.drop_up();
        self.flag(Flags::DPE);
        self.rq.detail("http1.codec_error");
        if self.resp.is_some() {
            return Step::End(Then::Reset);
        }
        if self.upstream == Upstream::Local {
            // A reply already went out: one final response per request, so just close.
            return Step::End(Then::Close);
        }
        queue_reply(
            env,
            cx.cout,
            &Reply {
                head: self.is_head,
                ..plain_reply(400, "Bad Request", true)
            },
            &mut self.rq,
        );
        Step::End(Then::Close)
    }

    /// Parses the response head (skipping 1xx) and queues ours for the client.
    fn response_head(
        &mut self,
        env: &mut dyn Env,
        up: &mut UpSide,
        cout: &mut Buf,
        closing: bool,
        now: Instant,
    ) -> Result<bool, super::Failure> {
        use super::Failure;
        loop {
            // Nothing read yet, or nothing after an interim response.
            if up.rx.is_empty() {
                return self.partial_response_head(up);
            }
            // As for request heads: the first look parses whatever is there (a head usually
            // arrives whole, and a scan for its end first would only read it twice); later
            // looks parse again only once the new bytes hold an end of head, or once the
            // upstream closed (no end will come: what is there is judged now).
            if up.head_scanned == 0 {
                up.head_scanned = up.rx.len();
            } else if !up.eof && !super::head_complete(up.rx.data(), &mut up.head_scanned) {
                return self.partial_response_head(up);
            }
            #[cfg(test)]
            HEAD_PARSES.with(|n| n.set(n.get() + 1));
            let mut hdrs = crate::http::codec::header_slots();
            let r = match crate::http::codec::parse_response(up.rx.data(), &mut hdrs, self.is_head)
            {
                // Closed inside a head: Envoy's `upstream_reset_before_response_started`
                // (503 UC), not a wait for a timer while both sockets stay open.
                Ok(None) if up.eof => return Err(Failure::Reset),
                Ok(None) => return self.partial_response_head(up),
                Err(_) => return Err(Failure::Protocol),
                Ok(Some(r)) => r,
            };
            if r.head_len > MAX_RESPONSE_HEAD || r.headers.len() > self.max_resp_headers {
                return Err(Failure::Protocol);
            }
            env.response_head(&mut self.rq, r.status, r.headers);
            self.tunnel_ready = match self.upgrade {
                Some(Upgrade::Upgrade) => r.status == 101,
                Some(Upgrade::Connect) => (200..300).contains(&r.status),
                Some(Upgrade::Terminate) | None => false,
            };
            if (100..200).contains(&r.status) && !self.tunnel_ready {
                // Interim responses stop here (we answered Expect ourselves, or relay only
                // the first 100 the client waits for); a 101 we did not ask for is a protocol
                // error.
                if r.status == 101 {
                    return Err(Failure::Protocol);
                }
                if r.status == 100 && self.relay_continue {
                    cout.extend(env.pool(), CONTINUE);
                    self.relay_continue = false;
                }
                let n = r.head_len;
                up.rx.consume(n);
                up.head_scanned = 0;
                continue;
            }
            if !self.tunnel_ready
                && self.should_retry(env, super::failure::Outcome::Status(r.status))
            {
                log::debug!("retrying after status {}", r.status);
                return Err(Failure::RetriableStatus);
            }
            self.rq.detail("via_upstream");
            self.rq.resp_first = Some(now);
            let service = now.saturating_duration_since(self.attached_at);
            let buf = env.spares().head();
            let (head, resp) = super::respond::client_head(&r, self, closing, env, service, buf);
            let n = r.head_len;
            up.rx.consume(n);
            up.head_scanned = 0;
            let mut resp = resp;
            if !self.head_before_body(&mut resp, &mut up.rx, cout, &head) {
                cout.extend(env.pool(), &head);
            }
            self.resp = Some(resp);
            env.spares().put_head(head);
            let sent = std::mem::take(&mut self.head);
            env.spares().put_head(sent);
            return Ok(true);
        }
    }

    /// No complete response head yet: read on (past one buffer's worth once a full buffer
    /// held none), up to the head limit.
    fn partial_response_head(&mut self, up: &UpSide) -> Result<bool, super::Failure> {
        if up.rx.len() > MAX_RESPONSE_HEAD {
            return Err(super::Failure::Protocol);
        }
        self.head_partial = up.rx.len() >= CHUNK;
        Ok(false)
    }

    /// The common case of a response whose buffered rest is all body relayed as it is: our
    /// head goes in front of those bytes in the upstream buffer and that buffer becomes the
    /// client's out buffer, so the body bytes are not copied. False (nothing changed) when the
    /// case does not hold; the caller then queues the head and the body moves by copy.
    fn head_before_body(
        &mut self,
        resp: &mut Response,
        rx: &mut Buf,
        cout: &mut Buf,
        head: &[u8],
    ) -> bool {
        let k = rx.len();
        let raw = match (&resp.body, resp.out) {
            _ if resp.gzip.is_some() => false,
            (BodyIn::Length(rem), OutMode::Length) => k as u64 <= *rem,
            (BodyIn::UntilClose, OutMode::Close) => true,
            _ => false,
        };
        if !raw || k == 0 || k + head.len() > self.client_limit || !cout.is_empty() {
            return false;
        }
        if !rx.prepend(head) {
            return false;
        }
        std::mem::swap(rx, cout);
        if let BodyIn::Length(rem) = &mut resp.body {
            *rem -= k as u64;
            if *rem == 0 {
                resp.body = BodyIn::Done;
            }
        }
        self.rq.bytes_tx += k as u64;
        true
    }

    /// Moves response body bytes to the client buffer, up to the buffer limit.
    fn move_response_body(&mut self, pool: &mut BufPool, up: &mut UpSide, cout: &mut Buf) -> bool {
        let Some(resp) = self.resp.as_mut() else {
            return false;
        };
        let room = self.client_limit.saturating_sub(cout.len());
        if resp.gzip.is_some() {
            return move_compressed(resp, up, cout, pool, room, &mut self.rq.bytes_tx);
        }
        let out = resp.out;
        let mut moved = false;
        match &mut resp.body {
            BodyIn::Done => {}
            BodyIn::Length(rem) => {
                let n = (*rem).min(up.rx.len() as u64).min(room as u64) as usize;
                if n > 0 {
                    up.rx.move_front(n, cout, pool);
                    *rem -= n as u64;
                    self.rq.bytes_tx += n as u64;
                    moved = true;
                }
                if *rem == 0 {
                    resp.body = BodyIn::Done;
                }
            }
            BodyIn::Chunked(_) => {
                if resp.crlf_due {
                    cout.extend(pool, b"\r\n");
                    resp.crlf_due = false;
                    moved = true;
                }
                let Response {
                    body: BodyIn::Chunked(dec),
                    chunk_owed,
                    bad_body,
                    ..
                } = resp
                else {
                    return moved;
                };
                if room > 0 && !up.rx.is_empty() {
                    let tx = &mut self.rq.bytes_tx;
                    match dec.decode(up.rx.data(), room, |d| {
                        *tx += d.len() as u64;
                        if out == OutMode::Chunked {
                            put_piece(chunk_owed, cout, pool, d);
                        } else {
                            cout.extend(pool, d);
                        }
                    }) {
                        Ok(used) => {
                            up.rx.consume(used);
                            moved |= used > 0;
                            let rest = dec.data_remaining();
                            if out == OutMode::Chunked
                                && *chunk_owed == 0
                                && up.rx.is_empty()
                                && rest >= super::SPLICE_MIN
                            {
                                // The buffered bytes are relayed and a long payload follows:
                                // announce its whole rest, so it may go by splice.
                                put_chunk_line(cout, pool, rest);
                                *chunk_owed = rest;
                            }
                            if dec.is_done() {
                                resp.body = BodyIn::Done;
                                if out == OutMode::Chunked {
                                    cout.extend(pool, LAST_CHUNK);
                                }
                            }
                        }
                        Err(e) => {
                            log::debug!("upstream: bad chunked body: {}", e.0);
                            // Truncate visibly: never finish a body we could not read.
                            *bad_body = true;
                            up.eof = true;
                            up.rx.consume(up.rx.len());
                        }
                    }
                }
            }
            BodyIn::UntilClose => {
                let n = up.rx.len().min(room);
                if let Some(data) = up.rx.data().get(..n).filter(|d| !d.is_empty()) {
                    self.rq.bytes_tx += n as u64;
                    if out == OutMode::Chunked {
                        put_chunk(cout, pool, data);
                        up.rx.consume(n);
                    } else {
                        up.rx.move_front(n, cout, pool);
                    }
                    moved = true;
                }
                if up.eof && up.rx.is_empty() {
                    resp.body = BodyIn::Done;
                    if out == OutMode::Chunked {
                        cout.extend(pool, LAST_CHUNK);
                    }
                }
            }
        }
        moved
    }

    /// Tells the compressor's counters what its deflater took and made, and drops the
    /// deflater (its window and tables) as soon as the body is done.
    fn count_compressed(&mut self, env: &mut dyn Env) {
        let Some(resp) = self.resp.as_mut() else {
            return;
        };
        let Some(g) = resp.gzip.as_mut() else {
            return;
        };
        let (i, o) = std::mem::take(&mut g.pending);
        if let Some(rt) = &g.rt {
            env.count(rt.uncompressed_bytes, i);
            env.count(rt.compressed_bytes, o);
        }
        if resp.body.is_done() {
            resp.gzip = None;
        }
    }

    /// How many response-body bytes may go from the upstream socket to the client socket
    /// without passing through our buffers: the rest of a Content-Length body relayed with
    /// its length, or of a chunk payload whose size is already said, once it is long enough
    /// (`SPLICE_MIN`) to be worth a pipe. The caller checks the buffers are empty (bytes
    /// already read go out first, in order).
    pub(super) fn splice_budget(&self) -> u64 {
        let Some(resp) = self.resp.as_ref() else {
            return 0;
        };
        let rest = match (&resp.body, resp.out) {
            // A compressed body passes through the deflater.
            _ if resp.gzip.is_some() => 0,
            (BodyIn::Length(rem), OutMode::Length) => *rem,
            // An announced chunk's payload (its size line is out, its CRLF follows; nothing
            // is owed while that CRLF is due).
            (BodyIn::Chunked(_), OutMode::Chunked) => resp.chunk_owed,
            // Decoded for an HTTP/1.0 client that reads to our close: payload goes out raw.
            (BodyIn::Chunked(dec), OutMode::Close) => dec.data_remaining(),
            _ => 0,
        };
        if rest >= super::SPLICE_MIN {
            rest
        } else {
            0
        }
    }

    /// `n` body bytes went to the client past our buffers (at most `splice_budget`).
    pub(super) fn spliced(&mut self, n: u64, now: Instant) {
        let Some(resp) = self.resp.as_mut() else {
            return;
        };
        let n = match &mut resp.body {
            BodyIn::Length(rem) => {
                let n = n.min(*rem);
                *rem -= n;
                if *rem == 0 {
                    resp.body = BodyIn::Done;
                }
                n
            }
            BodyIn::Chunked(dec) => {
                let mut n = n.min(dec.data_remaining());
                if resp.out == OutMode::Chunked {
                    n = n.min(resp.chunk_owed);
                    resp.chunk_owed -= n;
                    resp.crlf_due |= n > 0 && resp.chunk_owed == 0;
                }
                dec.skip_data(n);
                n
            }
            _ => 0,
        };
        self.rq.bytes_tx += n;
        if n > 0 {
            self.last_activity = now;
        }
    }

    /// The response is complete: pool or close the upstream, and pick what comes next.
    fn complete(&mut self, cx: &mut Cx<'_>) -> Step {
        let req_done = self.req.is_done();
        let (upstream_ok, out) = self
            .resp
            .as_ref()
            .map_or((false, OutMode::Close), |r| (r.upstream_keep_alive, r.out));
        if let Some(up) = cx.up.take() {
            let reuse = req_done && upstream_ok && up.rx.is_empty() && up.tx.is_empty() && !up.eof;
            *cx.release = Some(reuse);
            up.recycle(cx.spare);
        }
        if out == OutMode::Close || !self.keep || !req_done {
            Step::End(Then::Close)
        } else {
            Step::End(Then::Next)
        }
    }
}

/// Moves response body bytes through the deflater to the client buffer, framed as chunks
/// (HTTP/1.1) or raw up to the close (HTTP/1.0). What one call takes is flushed (zlib's sync
/// flush, as Envoy's compressor flushes each data frame), so a slow stream is not held
/// back; the end of the body finishes the gzip stream.
fn move_compressed(
    resp: &mut Response,
    up: &mut UpSide,
    cout: &mut Buf,
    pool: &mut BufPool,
    room: usize,
    bytes_tx: &mut u64,
) -> bool {
    let Response {
        body,
        out,
        gzip: Some(gz),
        bad_body,
        ..
    } = resp
    else {
        return false;
    };
    let chunked = *out == OutMode::Chunked;
    let mut sent = 0u64;
    let mut sink = |p: &[u8]| {
        sent += p.len() as u64;
        if chunked {
            put_chunk(cout, pool, p);
        } else {
            cout.extend(pool, p);
        }
    };
    let mut fed = false;
    let end = match body {
        BodyIn::Done => false,
        BodyIn::Length(rem) => {
            let n = (*rem).min(up.rx.len() as u64).min(room as u64) as usize;
            if n > 0 {
                gz.feed(up.rx.data().get(..n).unwrap_or_default(), &mut sink);
                up.rx.consume(n);
                *rem -= n as u64;
                fed = true;
            }
            *rem == 0
        }
        BodyIn::Chunked(dec) => {
            if room > 0 && !up.rx.is_empty() {
                match dec.decode(up.rx.data(), room, |d| {
                    fed = true;
                    gz.feed(d, &mut sink);
                }) {
                    Ok(used) => up.rx.consume(used),
                    Err(e) => {
                        log::debug!("upstream: bad chunked body: {}", e.0);
                        // Truncate visibly: never finish a body we could not read; a
                        // protocol error, as on the uncompressed path.
                        *bad_body = true;
                        up.eof = true;
                        up.rx.consume(up.rx.len());
                    }
                }
            }
            dec.is_done()
        }
        BodyIn::UntilClose => {
            let n = up.rx.len().min(room);
            if n > 0 {
                gz.feed(up.rx.data().get(..n).unwrap_or_default(), &mut sink);
                up.rx.consume(n);
                fed = true;
            }
            up.eof && up.rx.is_empty()
        }
    };
    if end {
        gz.finish(&mut sink);
    } else if fed {
        gz.flush(&mut sink);
    }
    *bytes_tx += sent;
    if end {
        *body = BodyIn::Done;
        if chunked {
            cout.extend(pool, LAST_CHUNK);
        }
    }
    fed || end
}

/// Moves a gzip request body from the client buffer through the inflater to the upstream
/// buffer (`None`: discarded), as chunks. At most `room / max_inflate_ratio` compressed bytes
/// (at least one) are taken per call, and the inflater fails a stream that would inflate
/// past that ratio, so what one call makes stays within `room` and one output chunk: a gzip
/// bomb costs bounded memory and CPU per turn of the reactor. Returns whether the body is
/// finished, and the compressed body bytes taken.
fn inflate_body(
    inf: &mut Inflater,
    req: &mut BodyIn,
    cin: &mut Buf,
    mut sink: Option<&mut Buf>,
    room: usize,
    env: &mut dyn Env,
) -> Result<(bool, u64), &'static str> {
    let ratio = inf.rt.cfg.max_inflate_ratio as usize;
    let budget = (room / ratio.max(1)).max(1);
    let pool = env.pool();
    // Inflates `d` until it is used up or this turn made `room` bytes (the upstream buffer's
    // room: however well the input compresses, a turn adds no more than that plus one
    // chunk); returns the bytes of `d` used.
    let mut made_total = 0usize;
    let mut piece = |inf: &mut Inflater, d: &[u8]| -> usize {
        let mut off = 0;
        while made_total < room {
            let (used, out) = inf.inflate(d.get(off..).unwrap_or_default());
            let made = out.len();
            let full = made == inf.chunk_size();
            if let Some(b) = sink.as_deref_mut() {
                put_chunk(b, pool, inf.output(made));
            }
            made_total += made;
            off += used;
            if (off >= d.len() && !full) || (used == 0 && made == 0) {
                break;
            }
        }
        off
    };
    // What an earlier turn decoded and could not inflate goes first.
    if !inf.carry.is_empty() {
        let carry = std::mem::take(&mut inf.carry);
        let used = piece(inf, &carry);
        inf.carry = carry.get(used..).unwrap_or_default().to_vec();
    }
    let (finished, taken) = match req {
        BodyIn::Done | BodyIn::UntilClose => return Ok((false, 0)),
        _ if !inf.carry.is_empty() => (false, 0),
        BodyIn::Length(rem) => {
            let n = (*rem).min(cin.len() as u64).min(budget as u64) as usize;
            let used = piece(inf, cin.data().get(..n).unwrap_or_default());
            cin.consume(used);
            *rem -= used as u64;
            (*rem == 0, used as u64)
        }
        BodyIn::Chunked(dec) => {
            let mut taken = 0u64;
            let mut rest = Vec::new();
            let used = dec
                .decode(cin.data(), budget, |d| {
                    taken += d.len() as u64;
                    let n = if rest.is_empty() { piece(inf, d) } else { 0 };
                    rest.extend_from_slice(d.get(n..).unwrap_or_default());
                })
                .map_err(|e| e.0)?;
            cin.consume(used);
            inf.carry = rest;
            (dec.is_done() && inf.carry.is_empty(), taken)
        }
    };
    if finished {
        if let Some(b) = sink {
            b.extend(env.pool(), LAST_CHUNK);
        }
    }
    let (i, o) = std::mem::take(&mut inf.pending);
    env.count(inf.rt.compressed_bytes, i);
    env.count(inf.rt.uncompressed_bytes, o);
    if inf.failed && !inf.reported {
        inf.reported = true;
        env.count(inf.rt.data_error, 1);
    }
    Ok((finished, taken))
}

/// Appends one chunk to a buffer.
pub(super) fn put_chunk(buf: &mut Buf, pool: &mut BufPool, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    put_chunk_line(buf, pool, data.len() as u64);
    buf.extend(pool, data);
    buf.extend(pool, b"\r\n");
}

/// Relays one piece of chunk payload copied through our buffers (chunked to chunked): raw
/// while an announced chunk is owed (its CRLF after the last of it), else as a chunk.
fn put_piece(owed: &mut u64, cout: &mut Buf, pool: &mut BufPool, d: &[u8]) {
    if *owed == 0 {
        put_chunk(cout, pool, d);
        return;
    }
    // Pieces come from one upstream chunk at a time and the announced size is that chunk's
    // rest, so a piece never runs past what is owed.
    debug_assert!(d.len() as u64 <= *owed, "a piece past the announced chunk");
    cout.extend(pool, d);
    *owed -= (d.len() as u64).min(*owed);
    if *owed == 0 {
        cout.extend(pool, b"\r\n");
    }
}

/// Appends a chunk's size line (hex digits and CRLF, written on the stack).
fn put_chunk_line(buf: &mut Buf, pool: &mut BufPool, len: u64) {
    let mut line = [0u8; 18];
    let mut n = line.len() - 2;
    let mut v = len;
    loop {
        n -= 1;
        line[n] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 || n == 0 {
            break;
        }
    }
    line[16] = b'\r';
    line[17] = b'\n';
    buf.extend(pool, line.get(n..).unwrap_or_default());
}

fn reply_local(
    env: &mut dyn Env,
    cout: &mut Buf,
    d: &LocalDecision,
    (close, head): (bool, bool),
    rq: &mut Rq,
) {
    let r = Reply {
        status: d.status,
        body: &d.body,
        location: d.location.as_deref(),
        edits: &d.edits,
        upstream: d.upstream,
        close,
        overloaded: false,
        head,
    };
    queue_reply(env, cout, &r, rq);
}

/// Renders a local reply into the client's output; it ends the request, so its record gets
/// the status and body size sent (for stats and the log). Set the record's flags and details
/// first: the connection manager's local reply mappers match on them.
pub(super) fn queue_reply(env: &mut dyn Env, cout: &mut Buf, r: &Reply<'_>, rq: &mut Rq) {
    rq.status = r.status;
    if rq.cap.is_some() {
        rq.local_body = Some(r.body.into());
    }
    let mut out = Vec::with_capacity(256 + r.body.len());
    let mut sent = env.local_reply(&mut out, r, rq);
    if r.head {
        out.truncate(out.len().saturating_sub(sent));
        sent = 0;
    }
    rq.bytes_tx = sent as u64;
    cout.extend(env.pool(), &out);
}

/// A reply of the connection manager itself: no location, no route edits.
pub(super) fn plain_reply(status: u16, body: &str, close: bool) -> Reply<'_> {
    Reply {
        status,
        body,
        location: None,
        edits: &[],
        upstream: None,
        close,
        overloaded: false,
        head: false,
    }
}
