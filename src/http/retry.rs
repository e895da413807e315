//! Route retry policies (Envoy's `retry_policy`): which failures may be retried, the next host,
//! the back-off, and keeping the request body replayable while a retry is still possible.

use std::time::Duration;

use super::buf::Buf;
use super::exchange::Exchange;
use super::request::replace_host;
use crate::config::{RetryPolicy, RouteAction};
use crate::context::Ctx;

/// What went wrong with an attempt, as retry policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Connect refused, failed or timed out.
    ConnectFailure,
    /// Reset, closed or unparseable before a response head, or the per-try timeout.
    Reset,
    /// A complete response head with this status.
    Status(u16),
}

fn policy<'a>(ctx: &'a Ctx, listener: usize, ex: &Exchange) -> Option<&'a RetryPolicy> {
    let (vh, r) = ex.route?;
    let m = ctx.listeners.get(listener)?.router.get(vh, r)?;
    match &m.route.action {
        RouteAction::Forward(f) => f.retry_policy.as_ref(),
        _ => None,
    }
}

/// True when the route's policy retries `o` and this exchange may still retry: retries left,
/// the body still replayable, and nothing sent to the client yet.
pub(super) fn allowed(ctx: &Ctx, listener: usize, ex: &Exchange, o: Outcome) -> bool {
    if ex.retries_left == 0 || ex.replay.is_none() || ex.resp.is_some() {
        return false;
    }
    let Some(p) = policy(ctx, listener, ex) else {
        return false;
    };
    let on = p.retry_on;
    match o {
        // Envoy: 5xx and gateway-error cover "no response at all", reset covers connect failure.
        Outcome::ConnectFailure => on.five_xx || on.gateway_error || on.reset || on.connect_failure,
        Outcome::Reset => on.five_xx || on.gateway_error || on.reset,
        Outcome::Status(c) => {
            (on.five_xx && c >= 500)
                || (on.gateway_error && matches!(c, 502..=504))
                || (on.retriable_4xx && c == 409)
                || (on.retriable_status_codes && p.retriable_status_codes.contains(&c))
        }
    }
}

/// Prepares the next attempt: another host of the same cluster when there is one, the Host
/// header redone under `auto_host_rewrite`, and a jittered exponential back-off (Envoy's
/// default 25 ms base). Returns false when the cluster has no host left.
pub(super) fn prepare(ctx: &mut Ctx, listener: usize, ex: &mut Exchange) -> bool {
    let Some((cluster, old)) = ex.target else {
        return false;
    };
    let (base, max) = policy(ctx, listener, ex).map_or(
        (Duration::from_millis(25), Duration::from_millis(250)),
        |p| (p.back_off_base, p.back_off_max),
    );
    let Some(cl) = ctx.clusters.get_mut(cluster) else {
        return false;
    };
    // Round robin moves on by itself; a few picks steer RANDOM/LEAST_REQUEST off the host
    // that just failed too.
    let mut next = None;
    for _ in 0..3 {
        let Some(i) = cl.pick(&mut ctx.rng) else {
            break;
        };
        next = Some(cl.hosts[i].addr);
        if next != Some(old) {
            break;
        }
    }
    let Some(addr) = next else { return false };
    cl.track(old, -1);
    cl.track(addr, 1);
    if let Some(at) = ex.auto_host {
        if let Some(name) = cl.hostname_of(addr).map(str::to_string) {
            ex.auto_host = Some(replace_host(&mut ex.head, at, &name));
        }
    }
    ex.target = Some((cluster, addr));
    ex.retries_left -= 1;
    ex.attempts += 1;
    ex.connect_at = None;
    ex.per_try_at = None;
    let ceiling = base
        .saturating_mul(1u32 << (ex.attempts - 2).min(16))
        .min(max);
    let jitter = ctx.rng.below(ceiling.as_micros().max(1) as u64);
    ex.backoff_at = Some(ctx.now + Duration::from_micros(jitter));
    true
}

/// Keeps a copy of request-body bytes just queued upstream (`sink[from..]`) while a retry may
/// need them; past the buffer limit the copy is dropped and retries are off for this request.
pub(super) fn record_body(ex: &mut Exchange, sink: &Buf, from: usize) {
    let Some(r) = ex.replay.as_mut() else { return };
    let new = sink.data().get(from..).unwrap_or_default();
    if r.len() + new.len() > ex.limit {
        ex.replay = None;
        ex.retries_left = 0;
        return;
    }
    r.extend_from_slice(new);
}
