//! One request/response exchange on a session: parse the head, route it, send a re-serialised
//! request upstream (our own framing, origin-form target), and stream both bodies with bounded
//! buffers. Locally generated responses (404, 503, 504, 400) take the same path minus upstream.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::buf::{Buf, BufPool, CHUNK};
use super::codec::{
    is_hop_by_hop, named_in_connection, parse_request, put_header, ChunkedDecoder, Framing,
    HeadError, RequestHead, MAX_HEADERS,
};
use super::downstream::{Phase, Session};
use super::local::{self, write_local_reply};
use super::upstream::{take_idle, UpConn};
use crate::access_log::{Flags, Rq};
use crate::config::{ClusterSpec, RouteAction};
use crate::context::Ctx;
use crate::observe;
use crate::route::rewrite_prefix;

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
    /// Whether the client connection stays open after this exchange (decided at response head).
    pub(super) keep: bool,
    /// Stream idle timeout (HCM `stream_idle_timeout`, or the route's `idle_timeout`).
    pub(super) idle: Option<Duration>,
    pub(super) last_activity: Instant,
    /// Stats and access-log record of this request.
    pub(super) rq: Rq,
}

impl Exchange {
    pub fn deadline(&self) -> Option<Instant> {
        let idle_at = self.idle.map(|t| self.last_activity + t);
        [self.connect_at, self.timeout_at, idle_at]
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
}

/// What to do with a parsed request head, decided while the head is still borrowed.
enum Decision {
    Local {
        status: u16,
        body: Cow<'static, str>,
        location: Option<String>,
        /// The %RESPONSE_FLAGS% bit explaining the reply (NR, UH), or 0.
        flag: u16,
    },
    Forward {
        cluster: usize,
        addr: SocketAddr,
        head: Vec<u8>,
        timeout: Option<Duration>,
    },
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
    buf.extend(pool, format!("{:x}\r\n", data.len()).as_bytes());
    buf.extend(pool, data);
    buf.extend(pool, b"\r\n");
}

pub(super) fn local_reply(s: &mut Session, ctx: &mut Ctx, status: u16, body: &str, close: bool) {
    local_reply_with(s, ctx, status, body, close, &[]);
}

/// A local reply with extra headers (e.g. `location` for redirects).
pub(super) fn local_reply_with(
    s: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    body: &str,
    close: bool,
    extra: &[(&str, &str)],
) {
    let mut out = Vec::with_capacity(256 + body.len());
    let date = ctx.date().to_string();
    let server = &ctx.listeners[s.listener].hcm.server_name;
    write_local_reply(&mut out, status, body, close, server, &date, extra);
    s.wbuf.extend(&mut ctx.pool, &out);
}

/// Tries to parse and start the next request from `s.rbuf`. Returns whether anything happened.
pub fn start(s: &mut Session, ctx: &mut Ctx, max_head: usize) -> bool {
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
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
        Decision::Local {
            status,
            body,
            location,
            flag,
        } => {
            rq.status = status;
            rq.flags.set(flag);
            rq.bytes_tx = body.len() as u64;
            // Expect: 100-continue with a body we will not read: the client may never send it,
            // so the connection cannot be reused.
            let keep = meta.keep_alive && !ctx.closing() && !(has_body && meta.expect_continue);
            let extra: Vec<(&str, &str)> =
                location.iter().map(|l| ("location", l.as_str())).collect();
            local_reply_with(s, ctx, status, &body, !keep, &extra);
            s.requests += 1;
            if !keep {
                s.close_after();
            } else if has_body {
                s.ex = Some(Box::new(new_exchange(
                    &meta,
                    None,
                    Vec::new(),
                    None,
                    ctx,
                    (s.listener, rq),
                )));
                s.phase = Phase::Exchange;
                return true;
            } else {
                s.idle_since = ctx.now;
            }
            observe::end(ctx, rq);
        }
        Decision::Forward {
            cluster,
            addr,
            head,
            timeout,
        } => {
            let tok = s.token_up();
            let conn = match take_idle(ctx, addr, tok) {
                Some(c) => Ok(c),
                None => UpConn::connect(ctx, cluster, addr, tok),
            };
            match conn {
                Ok(mut up) => {
                    up.wbuf.extend(&mut ctx.pool, &head);
                    let fresh = !up.reused;
                    s.up = Some(up);
                    ctx.clusters[cluster].track(addr, 1);
                    observe::upstream_rq(ctx, cluster, addr, fresh);
                    rq.cluster = Some(cluster);
                    rq.upstream = Some(addr);
                    let target = Some((cluster, addr));
                    let mut ex = new_exchange(&meta, target, head, timeout, ctx, (s.listener, rq));
                    if fresh {
                        ex.connect_at = Some(ctx.now + ex.connect_timeout);
                    }
                    if meta.expect_continue && has_body {
                        s.wbuf
                            .extend(&mut ctx.pool, b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    if matches!(ex.req, BodyIn::Done) {
                        ex.timeout_at = ex.timeout.map(|t| ctx.now + t);
                    }
                    s.ex = Some(Box::new(ex));
                    s.phase = Phase::Exchange;
                }
                Err(e) => {
                    log::debug!("connect to {addr} failed at once: {e}");
                    let keep = meta.keep_alive && !has_body && !ctx.closing();
                    local_reply(s, ctx, 503, local::CONNECT_FAILURE, !keep);
                    if !keep {
                        s.close_after();
                    }
                    rq.cluster = Some(cluster);
                    rq.upstream = Some(addr);
                    rq.status = 503;
                    rq.flags.set(Flags::UF);
                    rq.bytes_tx = local::CONNECT_FAILURE.len() as u64;
                    observe::end(ctx, rq);
                }
            }
        }
    }
    true
}

fn new_exchange(
    meta: &Meta,
    target: Option<(usize, SocketAddr)>,
    head: Vec<u8>,
    timeout: Option<Duration>,
    ctx: &Ctx,
    (listener, rq): (usize, Rq),
) -> Exchange {
    let (connect_timeout, limit) = match target {
        Some((c, _)) => {
            let cfg = &ctx.clusters[c].cfg;
            (
                cfg.connect_timeout,
                cfg.per_connection_buffer_limit_bytes as usize,
            )
        }
        None => (Duration::from_secs(5), 1 << 20),
    };
    Exchange {
        idle: ctx.listeners[listener].hcm.stream_idle_timeout,
        last_activity: ctx.now,
        target,
        head,
        req: BodyIn::from_framing(meta.framing),
        req_body_started: false,
        client_minor: meta.minor,
        client_keep_alive: meta.keep_alive,
        is_head: meta.is_head,
        resp: None,
        timeout,
        timeout_at: None,
        connect_at: None,
        connect_timeout,
        limit: limit.max(CHUNK),
        retried: false,
        keep: meta.keep_alive,
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

/// Routes the request and serialises the upstream head.
fn decide(req: &RequestHead<'_>, peer: SocketAddr, listener: usize, ctx: &mut Ctx) -> Decision {
    let l = &ctx.listeners[listener];
    let Some((_vh, route)) = l.router.route(req.host, req.path) else {
        return Decision::Local {
            status: 404,
            body: Cow::Borrowed(""),
            location: None,
            flag: Flags::NR,
        };
    };
    let fwd = match &route.action {
        RouteAction::Forward(f) => f,
        RouteAction::DirectResponse { status, body } => {
            ctx.stats.direct_response(listener);
            return Decision::Local {
                status: *status,
                body: Cow::Owned(body.clone().unwrap_or_default()),
                location: None,
                flag: 0,
            };
        }
        RouteAction::Redirect(r) => {
            return Decision::Local {
                status: r.response_code,
                body: Cow::Borrowed(""),
                location: Some(crate::route::redirect_location(
                    r,
                    &route.matcher.path,
                    req.host,
                    req.path,
                )),
                flag: 0,
            };
        }
    };
    let cluster = match &fwd.cluster {
        ClusterSpec::Single(c) => *c,
        ClusterSpec::Weighted(list) => {
            let total: u64 = list.iter().map(|&(_, w)| u64::from(w)).sum();
            let mut r = ctx.rng.below(total.max(1));
            let mut pick = list.first().map_or(0, |&(c, _)| c);
            for &(c, w) in list {
                if r < u64::from(w) {
                    pick = c;
                    break;
                }
                r -= u64::from(w);
            }
            pick
        }
    };
    let path_rewritten;
    let path = match &fwd.prefix_rewrite {
        Some(rw) => {
            path_rewritten = rewrite_prefix(&route.matcher.path, rw, req.path);
            path_rewritten.as_str()
        }
        None => req.path,
    };
    let timeout = fwd.timeout;
    let Some(cl) = ctx.clusters.get_mut(cluster) else {
        return Decision::Local {
            status: 503,
            body: Cow::Borrowed(local::NO_HEALTHY_UPSTREAM),
            location: None,
            flag: Flags::UH,
        };
    };
    let Some(hi) = cl.pick(&mut ctx.rng) else {
        return Decision::Local {
            status: 503,
            body: Cow::Borrowed(local::NO_HEALTHY_UPSTREAM),
            location: None,
            flag: Flags::UH,
        };
    };
    let addr = cl.hosts[hi].addr;
    let _l = &ctx.listeners[listener];

    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(req.method.as_bytes());
    h.push(b' ');
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\n");
    match req.host {
        Some(host) => put_header(&mut h, "host", host.as_bytes()),
        None => put_header(&mut h, "host", addr.to_string().as_bytes()),
    }
    let mut xff: Option<Vec<u8>> = None;
    let mut have_request_id = false;
    let mut have_proto = false;
    for hd in req.headers {
        let n = hd.name;
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case("host")
            || n.eq_ignore_ascii_case("expect")
            || named_in_connection(req.headers, n)
        {
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            let v = xff.get_or_insert_with(Vec::new);
            if !v.is_empty() {
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(hd.value);
            continue;
        }
        if n.eq_ignore_ascii_case("x-request-id") {
            have_request_id = true;
        }
        if n.eq_ignore_ascii_case("x-forwarded-proto") {
            // At the edge (use_remote_address) the client's claim is replaced, as Envoy does.
            if l.hcm.use_remote_address {
                continue;
            }
            have_proto = true;
        }
        put_header(&mut h, n, hd.value);
    }
    let mut xff = xff.unwrap_or_default();
    if !xff.is_empty() {
        xff.extend_from_slice(b", ");
    }
    xff.extend_from_slice(peer.ip().to_string().as_bytes());
    put_header(&mut h, "x-forwarded-for", &xff);
    if !have_proto {
        put_header(&mut h, "x-forwarded-proto", b"http");
    }
    if !have_request_id && l.hcm.generate_request_id {
        let id = ctx.rng.uuid4();
        put_header(&mut h, "x-request-id", id.as_bytes());
    }
    match req.framing {
        Framing::Length(n) => put_header(&mut h, "content-length", n.to_string().as_bytes()),
        Framing::Chunked => put_header(&mut h, "transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {
            // A bodyless POST/PUT still says so, or some origins wait for a body.
            if matches!(req.method, "POST" | "PUT" | "PATCH") {
                put_header(&mut h, "content-length", b"0");
            }
        }
    }
    h.extend_from_slice(b"\r\n");
    Decision::Forward {
        cluster,
        addr,
        head: h,
        timeout,
    }
}
