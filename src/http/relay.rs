//! Moving an exchange forward: request body up, response head and body down, with the buffer
//! limit as backpressure in both directions, and every upstream failure turned into the
//! response Envoy would give (or, once a response has started, into a visibly broken one).

use std::io;
use std::os::fd::AsFd;

use super::buf::{Buf, ReadOutcome, CHUNK};
use super::codec::{
    is_hop_by_hop, named_in_connection, parse_response, put_header, Framing, ResponseHead,
    LAST_CHUNK, MAX_HEADERS,
};
use super::downstream::{Phase, Session};
use super::exchange::{local_reply, put_chunk, routed_reply, BodyIn, Exchange, OutMode, Response};
use super::local;
use super::retry::{self, Outcome};
use super::upstream::{put_idle, take_idle, UpConn};
use crate::config::ServerHeader;
use crate::context::Ctx;
use crate::route::edits::{apply, HeaderList};

/// Largest upstream response head we accept.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    ConnectFailed,
    ConnectTimeout,
    /// Reset or closed while we were sending or waiting.
    Reset,
    Protocol,
    /// A response whose status the retry policy retries (and a retry is allowed).
    RetriableStatus,
}

impl Failure {
    fn outcome(self) -> Outcome {
        match self {
            Failure::ConnectFailed | Failure::ConnectTimeout => Outcome::ConnectFailure,
            Failure::Reset | Failure::Protocol | Failure::RetriableStatus => Outcome::Reset,
        }
    }
}

/// Starts the first attempt of a forwarded exchange. Returns whether it is still running (a
/// connect that fails at once may already have been answered, or be waiting to retry).
pub(super) fn begin(s: &mut Session, ctx: &mut Ctx, mut ex: Box<Exchange>) -> bool {
    s.phase = Phase::Exchange;
    let flow = match launch(s, ctx, &mut ex) {
        Ok(()) => Flow::Running(true),
        Err(e) => {
            log::debug!("session {}: connect failed at once: {e}", s.id);
            upstream_failure(s, ctx, &mut ex, Failure::ConnectFailed)
        }
    };
    match flow {
        Flow::Running(_) => {
            s.ex = Some(ex);
            true
        }
        Flow::Ended => {
            ex.finish_abort(ctx);
            false
        }
    }
}

/// Opens (or reuses) a connection to the exchange's target and queues the head and whatever
/// request body was already sent on an earlier attempt.
fn launch(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> io::Result<()> {
    let Some((_, addr)) = ex.target else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    let tok = s.token_up();
    let mut up = match take_idle(ctx, addr, tok) {
        Some(c) => c,
        None => UpConn::connect(ctx, addr, tok)?,
    };
    up.wbuf.extend(&mut ctx.pool, &ex.head);
    if let Some(body) = ex.replay.as_deref() {
        up.wbuf.extend(&mut ctx.pool, body);
    }
    if !up.reused {
        ex.connect_at = Some(ctx.now + ex.connect_timeout);
    }
    if matches!(ex.req, BodyIn::Done) {
        ex.per_try_at = ex.per_try.map(|t| ctx.now + t);
    }
    s.up = Some(up);
    Ok(())
}

enum Flow {
    /// Still running; whether anything moved.
    Running(bool),
    /// The exchange ended; the session's phase says what comes next.
    Ended,
}

/// Advances the current exchange. Client-side I/O errors propagate (the session dies).
pub fn pump(s: &mut Session, ctx: &mut Ctx) -> io::Result<bool> {
    let Some(mut ex) = s.ex.take() else {
        s.phase = Phase::Head;
        return Ok(true);
    };
    match pump_inner(s, ctx, &mut ex) {
        Ok(Flow::Running(p)) => {
            s.ex = Some(ex);
            Ok(p)
        }
        Ok(Flow::Ended) => {
            ex.finish_abort(ctx);
            Ok(true)
        }
        Err(e) => {
            ex.finish_abort(ctx);
            Err(e)
        }
    }
}

fn pump_inner(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> io::Result<Flow> {
    if ex.backoff_at.is_some() {
        // Between attempts: no upstream to feed, so leave the client's bytes where they are.
        return Ok(Flow::Running(false));
    }
    let flow = pump_attempt(s, ctx, ex)?;
    if let Flow::Running(true) = flow {
        ex.last_activity = ctx.now;
    }
    Ok(flow)
}

fn pump_attempt(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> io::Result<Flow> {
    let mut progress = false;
    if !matches!(ex.req, BodyIn::Done) {
        let room = s.up.as_ref().is_none_or(|up| up.wbuf.len() < ex.limit);
        if room {
            progress |= s.read_client(ctx, ex.limit)?;
        }
        match move_request_body(s, ctx, ex) {
            Ok(p) => progress |= p,
            Err(reason) => {
                log::debug!("session {}: bad request body: {reason}", s.id);
                return Ok(request_body_error(s, ctx, ex));
            }
        }
        if s.eof && !matches!(ex.req, BodyIn::Done) {
            log::debug!("session {}: client closed mid-request", s.id);
            if let Some(up) = s.up.take() {
                up.close(ctx);
            }
            s.phase = Phase::Closed;
            return Ok(Flow::Ended);
        }
    }
    if ex.target.is_none() {
        // Local reply already queued; we only discard the request body.
        if matches!(ex.req, BodyIn::Done) {
            s.phase = Phase::Head;
            s.idle_since = ctx.now;
            return Ok(Flow::Ended);
        }
        return Ok(Flow::Running(progress));
    }
    let Some(up) = s.up.as_mut() else {
        s.phase = Phase::Closed;
        return Ok(Flow::Ended);
    };
    if !up.connected && (up.writable || up.readable) {
        match up.check_connected() {
            Ok(true) => {
                ex.connect_at = None;
                progress = true;
            }
            Ok(false) => {}
            Err(e) => {
                log::debug!("connect to {} failed: {e}", up.addr);
                return Ok(upstream_failure(s, ctx, ex, Failure::ConnectFailed));
            }
        }
    }
    if !up.connected {
        return Ok(Flow::Running(progress));
    }
    if up.writable && !up.wbuf.is_empty() {
        match up.wbuf.write_to(&mut up.stream) {
            Ok(all) => {
                up.writable = all;
                progress = true;
            }
            Err(e) => {
                log::debug!("write to {} failed: {e}", up.addr);
                return Ok(upstream_failure(s, ctx, ex, Failure::Reset));
            }
        }
    }
    while let Some(up) = s.up.as_mut() {
        let mut moved = false;
        if up.readable && !up.eof && up.rbuf.len() < CHUNK && s.wbuf.len() < ex.limit {
            match up.rbuf.read_from(&mut ctx.pool, &mut up.stream, CHUNK) {
                Ok(ReadOutcome::Data(_)) => {
                    up.got_bytes = true;
                    moved = true;
                }
                Ok(ReadOutcome::Eof) => {
                    up.eof = true;
                    moved = true;
                }
                Ok(ReadOutcome::WouldBlock) => up.readable = false,
                Err(e) => {
                    log::debug!("read from {} failed: {e}", up.addr);
                    return Ok(upstream_failure(s, ctx, ex, Failure::Reset));
                }
            }
        }
        if ex.resp.is_none() {
            match response_head(s, ctx, ex) {
                Ok(p) => moved |= p,
                Err(f) => return Ok(upstream_failure(s, ctx, ex, f)),
            }
        }
        if ex.resp.is_some() {
            moved |= move_response_body(s, ctx, ex);
        }
        let Some(up) = s.up.as_ref() else { break };
        let done = ex
            .resp
            .as_ref()
            .is_some_and(|r| matches!(r.body, BodyIn::Done));
        if done {
            return Ok(finish(s, ctx, ex));
        }
        if up.eof && up.rbuf.is_empty() {
            // Closed before the response was complete.
            return Ok(upstream_failure(s, ctx, ex, Failure::Reset));
        }
        progress |= moved;
        if !moved {
            break;
        }
    }
    Ok(Flow::Running(progress))
}

/// Moves request body bytes from the client buffer to the upstream (or discards them).
fn move_request_body(
    s: &mut Session,
    ctx: &mut Ctx,
    ex: &mut Exchange,
) -> Result<bool, &'static str> {
    let mut sink: Option<&mut Buf> = s.up.as_mut().map(|u| &mut u.wbuf);
    let room = match &sink {
        Some(b) => ex.limit.saturating_sub(b.len()),
        None => usize::MAX,
    };
    let sink_before = sink.as_ref().map_or(0, |b| b.len());
    if s.rbuf.is_empty() || room == 0 {
        return Ok(false);
    }
    let pool = &mut ctx.pool;
    let finished = match &mut ex.req {
        BodyIn::Done | BodyIn::UntilClose => return Ok(false),
        BodyIn::Length(rem) => {
            let n = (*rem).min(s.rbuf.len() as u64).min(room as u64) as usize;
            if let Some(b) = sink.as_deref_mut() {
                b.extend(pool, &s.rbuf.data()[..n]);
            }
            s.rbuf.consume(n);
            *rem -= n as u64;
            *rem == 0
        }
        BodyIn::Chunked(dec) => {
            let used = dec
                .decode(s.rbuf.data(), room, |d| {
                    if let Some(b) = sink.as_deref_mut() {
                        put_chunk(b, pool, d);
                    }
                })
                .map_err(|e| e.0)?;
            s.rbuf.consume(used);
            let done = dec.is_done();
            if done {
                if let Some(b) = sink.as_deref_mut() {
                    b.extend(pool, LAST_CHUNK);
                }
            }
            done
        }
    };
    ex.req_body_started = true;
    if let Some(b) = sink.as_deref() {
        retry::record_body(ex, b, sink_before);
    }
    if finished {
        ex.request_done(ctx.now);
    }
    Ok(true)
}

fn request_body_error(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Flow {
    if let Some(up) = s.up.take() {
        up.close(ctx);
    }
    if ex.resp.is_none() {
        local_reply(s, ctx, 400, "Bad Request", true);
        s.close_after();
    } else {
        abort_client(s);
    }
    Flow::Ended
}

/// Parses the response head (skipping 1xx) and queues ours for the client.
fn response_head(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Result<bool, Failure> {
    let Some(up) = s.up.as_mut() else {
        return Ok(false);
    };
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = parse_response(up.rbuf.data(), &mut hdrs, ex.is_head);
        let r = match parsed {
            Ok(None) => {
                if up.rbuf.len() > MAX_RESPONSE_HEAD {
                    return Err(Failure::Protocol);
                }
                return Ok(false);
            }
            Err(_) => return Err(Failure::Protocol),
            Ok(Some(r)) => r,
        };
        if (100..200).contains(&r.status) {
            // We answered Expect ourselves and forward no Upgrade, so interim responses stop here.
            if r.status == 101 {
                return Err(Failure::Protocol);
            }
            let n = r.head_len;
            up.rbuf.consume(n);
            continue;
        }
        if retry::allowed(ctx, s.listener, ex, Outcome::Status(r.status)) {
            log::debug!("session {}: retrying after status {}", s.id, r.status);
            return Err(Failure::RetriableStatus);
        }
        let draining = ctx.closing();
        let l = &ctx.listeners[s.listener];
        let (head, resp) = client_head(
            &r,
            ex,
            draining,
            &l.hcm.server_name,
            l.hcm.server_header_transformation,
        );
        let n = r.head_len;
        up.rbuf.consume(n);
        s.wbuf.extend(&mut ctx.pool, &head);
        ex.resp = Some(resp);
        ex.head = Vec::new();
        return Ok(true);
    }
}

/// Serialises the head we send the client, and decides the framing towards it.
fn client_head(
    r: &ResponseHead<'_>,
    ex: &mut Exchange,
    draining: bool,
    server_name: &str,
    server_mode: ServerHeader,
) -> (Vec<u8>, Response) {
    let out = match r.framing {
        Framing::None => OutMode::NoBody,
        Framing::Length(_) => OutMode::Length,
        Framing::Chunked | Framing::UntilClose => {
            if ex.client_minor == 1 {
                OutMode::Chunked
            } else {
                OutMode::Close
            }
        }
    };
    let body = match r.framing {
        Framing::None | Framing::Length(0) => BodyIn::Done,
        Framing::Length(n) => BodyIn::Length(n),
        Framing::Chunked => BodyIn::Chunked(super::codec::ChunkedDecoder::new()),
        Framing::UntilClose => BodyIn::UntilClose,
    };
    let keep = ex.client_keep_alive && !draining && out != OutMode::Close;
    ex.keep = keep;
    let mut h = Vec::with_capacity(256 + r.headers.len() * 32);
    h.extend_from_slice(b"HTTP/1.1 ");
    h.extend_from_slice(r.status.to_string().as_bytes());
    h.push(b' ');
    h.extend_from_slice(r.reason.as_bytes());
    h.extend_from_slice(b"\r\n");
    let mut has_server = false;
    // Only a route with response edits pays for an intermediate header list.
    let mut list: Option<HeaderList<'_>> = (!ex.resp_edits.is_empty()).then(Vec::new);
    for hd in r.headers {
        let n = hd.name;
        if n.eq_ignore_ascii_case("content-length") && out == OutMode::NoBody && r.status != 204 {
            // HEAD and 304 keep the length the full response would have had.
            put_header(&mut h, n, hd.value);
            continue;
        }
        if is_hop_by_hop(n) || named_in_connection(r.headers, n) {
            continue;
        }
        if n.eq_ignore_ascii_case("server") {
            if server_mode == ServerHeader::Overwrite {
                continue;
            }
            has_server = true;
        }
        match &mut list {
            Some(l) => l.push((n.into(), hd.value.into())),
            None => put_header(&mut h, n, hd.value),
        }
    }
    if let Some(mut l) = list {
        let upstream = ex.target.map(|t| t.1);
        apply(&mut l, &ex.resp_edits, &|t| t.render_upstream(upstream));
        if server_mode == ServerHeader::Overwrite {
            l.retain(|(n, _)| !n.eq_ignore_ascii_case("server"));
        }
        has_server = l.iter().any(|(n, _)| n.eq_ignore_ascii_case("server"));
        for (n, v) in &l {
            put_header(&mut h, n, v);
        }
    }
    if server_mode == ServerHeader::Overwrite
        || (server_mode == ServerHeader::AppendIfAbsent && !has_server)
    {
        put_header(&mut h, "server", server_name.as_bytes());
    }
    match (out, r.framing) {
        (OutMode::Length, Framing::Length(n)) => {
            put_header(&mut h, "content-length", n.to_string().as_bytes())
        }
        (OutMode::Chunked, _) => put_header(&mut h, "transfer-encoding", b"chunked"),
        _ => {}
    }
    if !keep && ex.client_minor == 1 {
        put_header(&mut h, "connection", b"close");
    } else if keep && ex.client_minor == 0 {
        put_header(&mut h, "connection", b"keep-alive");
    }
    h.extend_from_slice(b"\r\n");
    let resp = Response {
        body,
        out,
        upstream_keep_alive: r.keep_alive,
    };
    (h, resp)
}

/// Moves response body bytes to the client buffer, up to the buffer limit.
fn move_response_body(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> bool {
    let (Some(up), Some(resp)) = (s.up.as_mut(), ex.resp.as_mut()) else {
        return false;
    };
    let room = ex.limit.saturating_sub(s.wbuf.len());
    let pool = &mut ctx.pool;
    let out = resp.out;
    let mut moved = false;
    match &mut resp.body {
        BodyIn::Done => {}
        BodyIn::Length(rem) => {
            let n = (*rem).min(up.rbuf.len() as u64).min(room as u64) as usize;
            if n > 0 {
                s.wbuf.extend(pool, &up.rbuf.data()[..n]);
                up.rbuf.consume(n);
                *rem -= n as u64;
                moved = true;
            }
            if *rem == 0 {
                resp.body = BodyIn::Done;
            }
        }
        BodyIn::Chunked(dec) => {
            if room > 0 && !up.rbuf.is_empty() {
                let wbuf = &mut s.wbuf;
                match dec.decode(up.rbuf.data(), room, |d| {
                    if out == OutMode::Chunked {
                        put_chunk(wbuf, pool, d);
                    } else {
                        wbuf.extend(pool, d);
                    }
                }) {
                    Ok(used) => {
                        up.rbuf.consume(used);
                        moved = used > 0;
                        if dec.is_done() {
                            resp.body = BodyIn::Done;
                            if out == OutMode::Chunked {
                                s.wbuf.extend(pool, LAST_CHUNK);
                            }
                        }
                    }
                    Err(e) => {
                        log::debug!("upstream {}: bad chunked body: {}", up.addr, e.0);
                        // Truncate visibly: never finish a body we could not read.
                        up.eof = true;
                        up.rbuf.consume(up.rbuf.len());
                    }
                }
            }
        }
        BodyIn::UntilClose => {
            let n = up.rbuf.len().min(room);
            if n > 0 {
                if out == OutMode::Chunked {
                    put_chunk(&mut s.wbuf, pool, &up.rbuf.data()[..n]);
                } else {
                    s.wbuf.extend(pool, &up.rbuf.data()[..n]);
                }
                up.rbuf.consume(n);
                moved = true;
            }
            if up.eof && up.rbuf.is_empty() {
                resp.body = BodyIn::Done;
                if out == OutMode::Chunked {
                    s.wbuf.extend(pool, LAST_CHUNK);
                }
            }
        }
    }
    moved
}

/// The response is complete: pool or close the upstream, and pick the session's next phase.
fn finish(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Flow {
    let req_done = matches!(ex.req, BodyIn::Done);
    let (upstream_ok, out) = ex
        .resp
        .as_ref()
        .map_or((false, OutMode::Close), |r| (r.upstream_keep_alive, r.out));
    if let Some(up) = s.up.take() {
        if req_done && upstream_ok && up.rbuf.is_empty() && up.wbuf.is_empty() && !up.eof {
            put_idle(ctx, up);
        } else {
            up.close(ctx);
        }
    }
    s.requests += 1;
    if out == OutMode::Close || !ex.keep || !req_done {
        s.close_after();
    } else {
        s.phase = Phase::Head;
        s.idle_since = ctx.now;
    }
    Flow::Ended
}

/// Turns an upstream failure into Envoy's answer: a retry when the route's policy allows one,
/// a transparent second try when a pooled connection turned out stale (closed by the upstream
/// as we reused it) before anything came back, or the local reply Envoy would give.
fn upstream_failure(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange, f: Failure) -> Flow {
    let up = s.up.take();
    let stale = up
        .as_ref()
        .is_some_and(|u| f == Failure::Reset && u.reused && !u.got_bytes);
    if let Some(up) = up {
        up.close(ctx);
    }
    if ex.resp.is_some() {
        log::debug!("session {}: upstream failed mid-response", s.id);
        abort_client(s);
        return Flow::Ended;
    }
    let replayable = !ex.req_body_started || ex.replay.is_some();
    if stale && replayable && !ex.retried {
        ex.retried = true;
        if launch(s, ctx, ex).is_ok() {
            return Flow::Running(true);
        }
    }
    if f == Failure::RetriableStatus || retry::allowed(ctx, s.listener, ex, f.outcome()) {
        if retry::prepare(ctx, s.listener, ex) {
            log::debug!("session {}: retry {} after {f:?}", s.id, ex.attempts);
            return Flow::Running(true);
        }
        local_failure(s, ctx, ex, 503, local::NO_HEALTHY_UPSTREAM);
        return Flow::Ended;
    }
    let body = match f {
        Failure::ConnectFailed => local::CONNECT_FAILURE,
        Failure::ConnectTimeout => local::CONNECT_TIMEOUT,
        Failure::Reset | Failure::RetriableStatus => local::CONNECTION_TERMINATION,
        Failure::Protocol => local::PROTOCOL_ERROR,
    };
    let status = if f == Failure::Protocol { 502 } else { 503 };
    local_failure(s, ctx, ex, status, body);
    Flow::Ended
}

/// Queues a local reply that ends the exchange (with the route's response edits, as Envoy's
/// router does for its own replies); keeps the connection when that is safe.
fn local_failure(s: &mut Session, ctx: &mut Ctx, ex: &Exchange, status: u16, body: &str) {
    let keep = ex.client_keep_alive && matches!(ex.req, BodyIn::Done) && !ctx.closing();
    let upstream = ex.target.map(|t| t.1);
    routed_reply(s, ctx, status, body, None, &ex.resp_edits, upstream, !keep);
    end_local(s, ctx, keep);
}

fn end_local(s: &mut Session, ctx: &mut Ctx, keep: bool) {
    s.requests += 1;
    if keep {
        s.phase = Phase::Head;
        s.idle_since = ctx.now;
    } else {
        s.close_after();
    }
}

/// Closes the client with a reset, so a partial response can never look complete.
fn abort_client(s: &mut Session) {
    let _ = nix::sys::socket::setsockopt(
        &s.client.as_fd(),
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    s.phase = Phase::Closed;
}

/// A session deadline fired during an exchange.
pub fn on_timeout(s: &mut Session, ctx: &mut Ctx) {
    let Some(mut ex) = s.ex.take() else { return };
    let now = ctx.now;
    let due = |t: Option<std::time::Instant>| t.is_some_and(|t| t <= now);
    let ended = if due(ex.backoff_at) {
        ex.backoff_at = None;
        match launch(s, ctx, &mut ex) {
            Ok(()) => Flow::Running(true),
            Err(e) => {
                log::debug!("session {}: retry connect failed at once: {e}", s.id);
                upstream_failure(s, ctx, &mut ex, Failure::ConnectFailed)
            }
        }
    } else if due(ex.connect_at) {
        log::debug!("session {}: connect timeout", s.id);
        upstream_failure(s, ctx, &mut ex, Failure::ConnectTimeout)
    } else if due(ex.timeout_at) {
        log::debug!("session {}: route timeout", s.id);
        timed_out(s, ctx, &ex)
    } else if due(ex.per_try_at) {
        log::debug!("session {}: per-try timeout", s.id);
        ex.per_try_at = None;
        if retry::allowed(ctx, s.listener, &ex, Outcome::Reset) {
            upstream_failure(s, ctx, &mut ex, Failure::Reset)
        } else {
            timed_out(s, ctx, &ex)
        }
    } else if due(ex.idle.map(|t| ex.last_activity + t)) {
        stream_idle(s, ctx, &ex)
    } else {
        Flow::Running(false)
    };
    match ended {
        Flow::Running(_) => s.ex = Some(ex),
        Flow::Ended => ex.finish_abort(ctx),
    }
}

/// The route (or per-try) timeout: 504 before a response head, a reset after.
fn timed_out(s: &mut Session, ctx: &mut Ctx, ex: &Exchange) -> Flow {
    if let Some(up) = s.up.take() {
        up.close(ctx);
    }
    if ex.resp.is_none() {
        local_failure(s, ctx, ex, 504, local::UPSTREAM_TIMEOUT);
    } else {
        abort_client(s);
    }
    Flow::Ended
}

/// The stream idle timeout, as Envoy's HCM answers it: a reset once the response has started,
/// else `504 stream timeout` when the whole request was received, `408` while it was still
/// arriving. An HCM reply, so the route's response edits do not apply.
fn stream_idle(s: &mut Session, ctx: &mut Ctx, ex: &Exchange) -> Flow {
    log::debug!("session {}: stream idle timeout", s.id);
    if let Some(up) = s.up.take() {
        up.close(ctx);
    }
    if ex.resp.is_some() {
        abort_client(s);
    } else if matches!(ex.req, BodyIn::Done) {
        let keep = ex.client_keep_alive && !ctx.closing();
        local_reply(s, ctx, 504, local::STREAM_TIMEOUT, !keep);
        end_local(s, ctx, keep);
    } else {
        local_reply(s, ctx, 408, local::STREAM_TIMEOUT, true);
        s.close_after();
    }
    Flow::Ended
}
