//! Moving an exchange forward: request body up, response head and body down, with the buffer
//! limit as backpressure in both directions. Failures and timeouts are `attempt`'s.

use std::io;

pub use super::attempt::on_timeout;
use super::attempt::{abort_client, upstream_failure, Failure};
use super::buf::{Buf, ReadOutcome, CHUNK};
use super::codec::{
    is_hop_by_hop, named_in_connection, parse_response, put_header, Framing, ResponseHead,
    LAST_CHUNK,
};
use super::downstream::{Phase, Session};
use super::exchange::{local_reply, put_chunk, BodyIn, Exchange, OutMode, Response};
use super::retry::{self, Outcome};
use super::upstream::put_idle;
use crate::access_log::Flags;
use crate::config::ServerHeader;
use crate::context::Ctx;
use crate::observe;
use crate::route::edits::{apply, HeaderList};

/// Largest upstream response head we accept.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

pub(super) enum Flow {
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
            ex.flag(Flags::DC);
            ex.finish_abort(ctx);
            Err(e)
        }
    }
}

fn pump_inner(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> io::Result<Flow> {
    if ex.queued {
        // Waiting for a connection: leave the client's bytes (body included) where they are.
        if let Some(flow) = super::attempt::relaunch_queued(s, ctx, ex) {
            return Ok(flow);
        }
        return Ok(Flow::Running(false));
    }
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
            ex.flag(Flags::DC);
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
                let addr = up.addr;
                ctx.connect_done(addr);
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
                Ok(ReadOutcome::Drained(_)) => {
                    up.got_bytes = true;
                    up.readable = up.hup;
                    moved = true;
                }
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
            ex.rq.bytes_rx += n as u64;
            s.rbuf.consume(n);
            *rem -= n as u64;
            *rem == 0
        }
        BodyIn::Chunked(dec) => {
            let rx = &mut ex.rq.bytes_rx;
            let used = dec
                .decode(s.rbuf.data(), room, |d| {
                    *rx += d.len() as u64;
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
        let mut hdrs = crate::http::codec::header_slots();
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
        observe::response_head(ctx, &mut ex.rq, r.status, r.headers);
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
    crate::util::push_dec(&mut h, u64::from(r.status));
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
            h.extend_from_slice(b"content-length: ");
            crate::util::push_dec(&mut h, n);
            h.extend_from_slice(b"\r\n");
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
                ex.rq.bytes_tx += n as u64;
                moved = true;
            }
            if *rem == 0 {
                resp.body = BodyIn::Done;
            }
        }
        BodyIn::Chunked(dec) => {
            if room > 0 && !up.rbuf.is_empty() {
                let wbuf = &mut s.wbuf;
                let tx = &mut ex.rq.bytes_tx;
                match dec.decode(up.rbuf.data(), room, |d| {
                    *tx += d.len() as u64;
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
                ex.rq.bytes_tx += n as u64;
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
