//! One request/response exchange on a session: parse the head, route it, send a re-serialised
//! request upstream (our own framing, origin-form target), and stream both bodies with bounded
//! buffers. Locally generated responses (404, 503, 504, 400) take the same path minus upstream.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::buf::{Buf, BufPool, CHUNK};
use super::codec::{parse_request, ChunkedDecoder, Framing, HeadError};
use super::downstream::{Phase, Session};
use super::local::write_local_reply;
use super::request::{decide, Decision, Forward, LocalDecision};
use crate::access_log::{Flags, Rq};
use crate::context::Ctx;
use crate::observe;
use crate::route::edits::{apply, HeaderList, Op};

/// How much of a body is still expected.
#[derive(Debug, Clone)]
pub(super) enum BodyIn {
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl BodyIn {
    fn from_framing(f: Framing) -> BodyIn {
        match f {
            Framing::None | Framing::Length(0) => BodyIn::Done,
            Framing::Length(n) => BodyIn::Length(n),
            Framing::Chunked => BodyIn::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => BodyIn::UntilClose,
        }
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
    pub(super) body: BodyIn,
    pub(super) out: OutMode,
    pub(super) upstream_keep_alive: bool,
}

pub struct Exchange {
    /// Upstream target; `None` for a local reply whose request body we discard.
    pub(super) target: Option<(usize, SocketAddr)>,
    /// Serialised upstream request head, kept until a response head arrives (retry).
    pub(super) head: Vec<u8>,
    pub(super) req: BodyIn,
    pub(super) req_body_started: bool,
    pub(super) client_minor: u8,
    pub(super) client_keep_alive: bool,
    pub(super) is_head: bool,
    pub(super) resp: Option<Response>,
    pub(super) timeout: Option<Duration>,
    pub(super) timeout_at: Option<Instant>,
    pub(super) connect_at: Option<Instant>,
    pub(super) connect_timeout: Duration,
    pub(super) limit: usize,
    pub(super) retried: bool,
    /// Waiting for a connection to its host: every connect slot was busy (see
    /// `Ctx::connecting`); woken when a connect finishes or a connection returns to the pool.
    pub(super) queued: bool,
    /// Whether the client connection stays open after this exchange (decided at response head).
    pub(super) keep: bool,
    /// The matched route's (virtual host, route) indices.
    pub(super) route: Option<(usize, usize)>,
    /// The route's response edits, request-time variables already bound; empty when none.
    pub(super) resp_edits: Vec<Op>,
    /// Host value range in `head` when `auto_host_rewrite` may change it on a retry.
    pub(super) auto_host: Option<(usize, usize)>,
    /// Retries still allowed by the route's retry policy (0 without one).
    pub(super) retries_left: u32,
    /// Request body bytes sent so far, as sent, kept while a retry may need to replay them;
    /// `None` once the body outgrew the buffer limit (retries are then off).
    pub(super) replay: Option<Vec<u8>>,
    pub(super) per_try: Option<Duration>,
    pub(super) per_try_at: Option<Instant>,
    /// A retry waiting out its back-off; no upstream connection meanwhile.
    pub(super) backoff_at: Option<Instant>,
    pub(super) attempts: u32,
    /// Stream idle timeout (route's `idle_timeout`, else the HCM's `stream_idle_timeout`).
    pub(super) idle: Option<Duration>,
    pub(super) last_activity: Instant,
    /// Stats and access-log record of this request.
    pub(super) rq: Rq,
}

impl Exchange {
    /// Waiting for a connect slot or a pooled connection to its host.
    pub fn is_queued(&self) -> bool {
        self.queued
    }

    pub fn deadline(&self) -> Option<Instant> {
        // The session arms timers lazily, so an idle deadline moving with activity is cheap.
        let idle_at = self.idle.map(|t| self.last_activity + t);
        [
            self.connect_at,
            self.timeout_at,
            self.per_try_at,
            self.backoff_at,
            idle_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Releases what the exchange holds on the cluster (active request count) and records
    /// the request's end.
    pub fn finish_abort(self, ctx: &mut Ctx) {
        if let Some((c, addr)) = self.target {
            if let Some(cl) = ctx.clusters.get_mut(c) {
                cl.track(addr, -1);
            }
        }
        observe::end(ctx, self.rq);
    }

    /// Marks how the exchange ended, for %RESPONSE_FLAGS%.
    pub fn flag(&mut self, f: u16) {
        self.rq.flags.set(f);
    }

    /// A local reply ends the exchange: its status and body size, for stats and the log.
    pub(super) fn replied(&mut self, status: u16, body: &str) {
        self.rq.status = status;
        self.rq.bytes_tx = body.len() as u64;
    }

    /// The request body has been sent in full: the route and per-try timers start.
    pub(super) fn request_done(&mut self, now: Instant) {
        self.req = BodyIn::Done;
        self.timeout_at = self.timeout.map(|t| now + t);
        if self.target.is_some() && self.backoff_at.is_none() {
            self.per_try_at = self.per_try.map(|t| now + t);
        }
    }
}

struct Meta {
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
    minor: u8,
    is_head: bool,
    expect_continue: bool,
}

/// Appends one chunk to a buffer.
pub(super) fn put_chunk(buf: &mut Buf, pool: &mut BufPool, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut line = Vec::with_capacity(18);
    crate::util::push_hex(&mut line, data.len() as u64);
    line.extend_from_slice(b"\r\n");
    buf.extend(pool, &line);
    buf.extend(pool, data);
    buf.extend(pool, b"\r\n");
}

pub(super) fn local_reply(s: &mut Session, ctx: &mut Ctx, status: u16, body: &str, close: bool) {
    routed_reply(s, ctx, status, body, None, &[], None, close);
}

/// A local reply for a routed request: a redirect's Location, then the route's response edits
/// (Envoy applies them to every reply of a matched route, local ones included).
#[allow(clippy::too_many_arguments)]
pub(super) fn routed_reply(
    s: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    body: &str,
    location: Option<&str>,
    edits: &[Op],
    upstream: Option<SocketAddr>,
    close: bool,
) {
    let mut extra: HeaderList<'_> = Vec::new();
    if let Some(l) = location {
        extra.push((Cow::Borrowed("location"), Cow::Borrowed(l.as_bytes())));
    }
    if !edits.is_empty() {
        apply(&mut extra, edits, &|t| t.render_upstream(upstream));
    }
    // Everything in `extra` was rendered from UTF-8 text (config values, our Location).
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .filter_map(|(n, v)| Some((n.as_ref(), std::str::from_utf8(v).ok()?)))
        .collect();
    let mut out = Vec::with_capacity(256 + body.len());
    let date = ctx.date().to_string();
    let server = &ctx.listeners[s.listener].hcm.server_name;
    write_local_reply(&mut out, status, body, close, server, &date, &extra);
    s.wbuf.extend(&mut ctx.pool, &out);
}

/// Tries to parse and start the next request from `s.rbuf`. Returns whether anything happened.
pub fn start(s: &mut Session, ctx: &mut Ctx, max_head: usize) -> bool {
    let mut hdrs = crate::http::codec::header_slots();
    let parsed = parse_request(s.rbuf.data(), &mut hdrs);
    let (meta, decision, mut rq) = match parsed {
        Ok(None) => {
            if s.rbuf.len() > max_head {
                reject(s, ctx, &HeadError::TooLarge);
                return true;
            }
            if s.eof {
                s.phase = if s.wbuf.is_empty() {
                    Phase::Closed
                } else {
                    Phase::Closing
                };
                return true;
            }
            return false;
        }
        Err(e) => {
            reject(s, ctx, &e);
            return true;
        }
        Ok(Some(req)) => {
            if req.head_len > max_head {
                reject(s, ctx, &HeadError::TooLarge);
                return true;
            }
            let meta = Meta {
                head_len: req.head_len,
                framing: req.framing,
                keep_alive: req.keep_alive,
                minor: req.minor,
                is_head: req.method == "HEAD",
                expect_continue: req.expect_continue,
            };
            let rq = observe::begin(ctx, s.listener, s.peer, req.minor, Some(&req));
            let d = decide(&req, s.peer, s.listener, ctx);
            (meta, d, rq)
        }
    };
    s.rbuf.consume(meta.head_len);
    s.head_started = None;
    let has_body = meta.framing != Framing::None;
    match decision {
        Decision::Local(d) => {
            if d.flag == 0 && d.location.is_none() && d.upstream.is_none() {
                ctx.stats.direct_response(s.listener);
            }
            rq.status = d.status;
            rq.flags.set(d.flag);
            rq.bytes_tx = d.body.len() as u64;
            // Expect: 100-continue with a body we will not read: the client may never send it,
            // so the connection cannot be reused.
            let keep = meta.keep_alive && !ctx.closing() && !(has_body && meta.expect_continue);
            reply_local(s, ctx, &d, !keep);
            s.requests += 1;
            if !keep {
                s.close_after();
            } else if has_body {
                s.ex = Some(Box::new(new_exchange(&meta, None, ctx, (s.listener, rq))));
                s.phase = Phase::Exchange;
                return true;
            } else {
                s.idle_since = ctx.now;
            }
            observe::end(ctx, rq);
        }
        Decision::Forward(f) => {
            let mut f = f;
            rq.cluster = Some(f.cluster);
            if let Some(id) = f.request_id.take() {
                observe::generated_request_id(ctx, s.listener, &mut rq, &id);
            }
            let mut ex = Box::new(new_exchange(&meta, Some(&f), ctx, (s.listener, rq)));
            ex.head = std::mem::take(&mut f.head);
            ex.resp_edits = std::mem::take(&mut f.resp_edits);
            ctx.clusters[f.cluster].track(f.addr, 1);
            if matches!(ex.req, BodyIn::Done) {
                ex.request_done(ctx.now);
            }
            let running = super::attempt::begin(s, ctx, ex);
            if running && meta.expect_continue && has_body {
                s.wbuf
                    .extend(&mut ctx.pool, b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
    }
    true
}

fn reply_local(s: &mut Session, ctx: &mut Ctx, d: &LocalDecision, close: bool) {
    routed_reply(
        s,
        ctx,
        d.status,
        &d.body,
        d.location.as_deref(),
        &d.edits,
        d.upstream,
        close,
    );
}

fn new_exchange(
    meta: &Meta,
    f: Option<&Forward>,
    ctx: &Ctx,
    (listener, rq): (usize, Rq),
) -> Exchange {
    let (connect_timeout, limit) = match f.and_then(|f| ctx.clusters.get(f.cluster)) {
        Some(c) => (
            c.cfg.connect_timeout,
            c.cfg.per_connection_buffer_limit_bytes as usize,
        ),
        None => (Duration::from_secs(5), 1 << 20),
    };
    let retry = f.and_then(|f| f.retry);
    let idle = match f {
        Some(f) => f.idle,
        None => ctx.listeners[listener].hcm.stream_idle_timeout,
    };
    Exchange {
        target: f.map(|f| (f.cluster, f.addr)),
        head: Vec::new(),
        req: BodyIn::from_framing(meta.framing),
        req_body_started: false,
        client_minor: meta.minor,
        client_keep_alive: meta.keep_alive,
        is_head: meta.is_head,
        resp: None,
        timeout: f.and_then(|f| f.timeout),
        timeout_at: None,
        connect_at: None,
        connect_timeout,
        limit: limit.max(CHUNK),
        retried: false,
        queued: false,
        keep: meta.keep_alive,
        route: f.map(|f| f.route),
        resp_edits: Vec::new(),
        auto_host: f.and_then(|f| f.auto_host),
        retries_left: retry.map_or(0, |r| r.0),
        replay: retry.map(|_| Vec::new()),
        per_try: retry.and_then(|r| r.1),
        per_try_at: None,
        backoff_at: None,
        attempts: 1,
        idle,
        last_activity: ctx.now,
        rq,
    }
}

fn reject(s: &mut Session, ctx: &mut Ctx, e: &HeadError) {
    log::debug!("session {} ({}): bad request: {}", s.id, s.peer, e.reason());
    s.rbuf.consume(s.rbuf.len());
    let body = match e.status() {
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Bad Request",
    };
    local_reply(s, ctx, e.status(), body, true);
    s.close_after();
    let mut rq = observe::begin(ctx, s.listener, s.peer, 1, None);
    rq.status = e.status();
    rq.flags.set(Flags::DPE);
    rq.bytes_tx = body.len() as u64;
    observe::end(ctx, rq);
}
