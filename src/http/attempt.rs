//! One upstream attempt of an exchange and how it ends when it does not end well: starting
//! (and restarting) attempts, turning failures and timeouts into a retry or into the reply
//! Envoy would give, and resetting the client once a response has started.

use std::io;
use std::os::fd::AsFd;

use super::downstream::{Phase, Session};
use super::exchange::{local_reply, routed_reply, BodyIn, Exchange};
use super::local;
use super::relay::Flow;
use super::retry::{self, Outcome};
use super::upstream::{take_idle, UpConn};
use crate::access_log::Flags;
use crate::context::Ctx;
use crate::observe;

/// Why an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    ConnectFailed,
    ConnectTimeout,
    /// Reset or closed while we were sending or waiting.
    Reset,
    Protocol,
    /// A response whose status the retry policy retries (and a retry is allowed).
    RetriableStatus,
}

impl Failure {
    pub(super) fn outcome(self) -> Outcome {
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
    let Some((cluster, addr)) = ex.target else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    ex.rq.upstream = Some(addr);
    let mut up = match take_idle(ctx, addr, s.id) {
        Some(c) => c,
        None if !ctx.may_connect(addr) => {
            log::debug!("session {}: waiting for a connection to {addr}", s.id);
            ex.queued = true;
            ctx.waiters
                .entry(addr)
                .or_default()
                .push_back((s.id, s.gen));
            return Ok(());
        }
        None => UpConn::connect(ctx, cluster, addr, s.id)?,
    };
    ex.queued = false;
    observe::upstream_rq(ctx, cluster, addr, !up.reused);
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

/// A queued exchange was woken (or driven): launch it if a pooled connection or a connect slot
/// is free now. `None`: still waiting (it stays queued).
pub(super) fn relaunch_queued(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Option<Flow> {
    let addr = ex.target.map(|(_, a)| a)?;
    let free = ctx.idle_by_addr.get(&addr).is_some_and(|v| !v.is_empty()) || ctx.may_connect(addr);
    if !free {
        return None;
    }
    ex.queued = false;
    Some(match launch(s, ctx, ex) {
        Ok(()) if ex.queued => Flow::Running(false),
        Ok(()) => Flow::Running(true),
        Err(e) => {
            log::debug!("session {}: connect failed at once: {e}", s.id);
            upstream_failure(s, ctx, ex, Failure::ConnectFailed)
        }
    })
}

/// Turns an upstream failure into Envoy's answer: a retry when the route's policy allows one,
/// a transparent second try when a pooled connection turned out stale (closed by the upstream
/// as we reused it) before anything came back, or the local reply Envoy would give.
pub(super) fn upstream_failure(
    s: &mut Session,
    ctx: &mut Ctx,
    ex: &mut Exchange,
    f: Failure,
) -> Flow {
    let up = s.up.take();
    let stale = up
        .as_ref()
        .is_some_and(|u| f == Failure::Reset && u.reused && !u.got_bytes);
    if let Some(up) = up {
        if matches!(f, Failure::ConnectFailed | Failure::ConnectTimeout) {
            let timeout = f == Failure::ConnectTimeout;
            observe::upstream_connect_fail(ctx, up.cluster, up.addr, timeout);
        }
        up.close(ctx);
    }
    if ex.resp.is_some() {
        log::debug!("session {}: upstream failed mid-response", s.id);
        ex.flag(Flags::UC);
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
        ex.flag(Flags::UH);
        local_failure(s, ctx, ex, 503, local::NO_HEALTHY_UPSTREAM);
        return Flow::Ended;
    }
    if ex.attempts > 1 {
        ex.flag(Flags::URX);
    }
    ex.flag(match f {
        Failure::ConnectFailed | Failure::ConnectTimeout => Flags::UF,
        Failure::Reset | Failure::RetriableStatus => Flags::UC,
        Failure::Protocol => Flags::UPE,
    });
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
fn local_failure(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange, status: u16, body: &str) {
    ex.replied(status, body);
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
pub(super) fn abort_client(s: &mut Session) {
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
        timed_out(s, ctx, &mut ex)
    } else if due(ex.per_try_at) {
        log::debug!("session {}: per-try timeout", s.id);
        ex.per_try_at = None;
        if retry::allowed(ctx, s.listener, &ex, Outcome::Reset) {
            upstream_failure(s, ctx, &mut ex, Failure::Reset)
        } else {
            timed_out(s, ctx, &mut ex)
        }
    } else if due(ex.idle.map(|t| ex.last_activity + t)) {
        stream_idle(s, ctx, &mut ex)
    } else {
        Flow::Running(false)
    };
    match ended {
        Flow::Running(_) => s.ex = Some(ex),
        Flow::Ended => ex.finish_abort(ctx),
    }
}

/// The route (or per-try) timeout: 504 before a response head, a reset after.
fn timed_out(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Flow {
    if let Some(up) = s.up.take() {
        up.close(ctx);
    }
    ex.flag(Flags::UT);
    if let Some((c, addr)) = ex.target {
        observe::upstream_rq_timeout(ctx, c, addr);
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
fn stream_idle(s: &mut Session, ctx: &mut Ctx, ex: &mut Exchange) -> Flow {
    log::debug!("session {}: stream idle timeout", s.id);
    ex.flag(Flags::SI);
    if let Some(up) = s.up.take() {
        up.close(ctx);
    }
    if ex.resp.is_some() {
        abort_client(s);
    } else if matches!(ex.req, BodyIn::Done) {
        let keep = ex.client_keep_alive && !ctx.closing();
        local_reply(s, ctx, 504, local::STREAM_TIMEOUT, !keep);
        ex.replied(504, local::STREAM_TIMEOUT);
        end_local(s, ctx, keep);
    } else {
        local_reply(s, ctx, 408, local::STREAM_TIMEOUT, true);
        ex.replied(408, local::STREAM_TIMEOUT);
        s.close_after();
    }
    Flow::Ended
}
