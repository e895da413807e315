//! How an exchange ends when it does not end well: upstream failures and timeouts become a
//! retry (the route's policy, or one transparent retry after a stale pooled connection) or the
//! reply Envoy would give; once a response has started, the client is reset instead.

use std::time::{Duration, Instant};

use super::exchange::{plain_reply, queue_reply, Cx, Exchange, Step, Then, Upstream};
use super::{Env, Reply, Resource};
use crate::access_log::Flags;
use crate::http::local;

/// Why an upstream attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    ConnectFailed,
    ConnectTimeout,
    /// Reset or closed while we were sending or waiting.
    Reset,
    /// An HTTP/2 upstream reset the request's stream (RST_STREAM): Envoy's remote reset.
    RemoteReset,
    Protocol,
    /// A response whose status the retry policy retries (and a retry is allowed).
    RetriableStatus,
}

/// The cluster's retry counters (Envoy's names: `upstream_rq_retry`,
/// `upstream_rq_retry_success`, `upstream_rq_retry_limit_exceeded`,
/// `upstream_rq_retry_overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStat {
    Retry,
    Success,
    LimitExceeded,
    Overflow,
}

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

impl Failure {
    fn outcome(self) -> Outcome {
        match self {
            Failure::ConnectFailed | Failure::ConnectTimeout => Outcome::ConnectFailure,
            Failure::Reset
            | Failure::RemoteReset
            | Failure::Protocol
            | Failure::RetriableStatus => Outcome::Reset,
        }
    }
}

impl Exchange {
    /// Turns an upstream failure into Envoy's answer. The connection is already gone
    /// (`had_up`: there was one, as opposed to a connect that failed at once).
    pub(super) fn failed(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        f: Failure,
        stale: bool,
        had_up: bool,
        now: Instant,
    ) -> Step {
        if let (true, Some((c, addr))) = (had_up, self.target) {
            if matches!(f, Failure::ConnectFailed | Failure::ConnectTimeout) {
                env.upstream_connect_fail(c, addr, f == Failure::ConnectTimeout);
            } else if matches!(f, Failure::Reset | Failure::RemoteReset | Failure::Protocol)
                && !stale
                && self.resp.is_none()
            {
                env.upstream_reset(c, addr);
            }
        }
        // The attempt is over: it neither waits for a connection nor runs on one.
        self.unhold(env, Resource::Pending);
        self.unhold(env, Resource::Request);
        self.connect_at = None;
        self.per_try_at = None;
        if self.tcp.is_some() {
            return self.tcp_failed(env, f, now);
        }
        if self.resp.is_some() {
            log::debug!("upstream failed mid-response");
            let (flag, details) = match f {
                Failure::Protocol => (
                    Flags::UPE,
                    "upstream_reset_after_response_started{protocol_error}",
                ),
                Failure::RemoteReset => (
                    Flags::UR,
                    "upstream_reset_after_response_started{remote_reset}",
                ),
                _ => (
                    Flags::UC,
                    "upstream_reset_after_response_started{connection_termination}",
                ),
            };
            self.flag(flag);
            self.rq.details = std::borrow::Cow::Borrowed(details);
            return Step::End(Then::Reset);
        }
        let replayable = !self.req_body_started || self.replay.is_some();
        // A pooled connection the upstream closed just as we reused it: try once more on a
        // fresh one, as nginx and HAProxy do, but only for methods that may be repeated
        // (RFC 9110 §9.2.2); anything else is up to the route's retry policy.
        if stale && replayable && !self.retried && self.idempotent {
            self.retried = true;
            return Step::Connect(self.launch());
        }
        if f == Failure::RetriableStatus || self.should_retry(env, f.outcome()) {
            if self.prepare_retry(env, now) {
                log::debug!("retry {} after {f:?}", self.attempts);
                return Step::Running(true);
            }
            self.flag(Flags::UH);
            self.rq.detail("no_healthy_upstream");
            return self.local_failure(env, cx, 503, local::NO_HEALTHY_UPSTREAM);
        }
        if self.attempts > 1 {
            self.flag(Flags::URX);
        }
        self.flag(match f {
            Failure::ConnectFailed | Failure::ConnectTimeout => Flags::UF,
            Failure::Reset | Failure::RetriableStatus => Flags::UC,
            Failure::RemoteReset => Flags::UR,
            Failure::Protocol => Flags::UPE,
        });
        let reason = match f {
            Failure::ConnectFailed => "remote connection failure",
            Failure::ConnectTimeout => "connection timeout",
            Failure::Reset | Failure::RetriableStatus => "connection termination",
            Failure::RemoteReset => "remote reset",
            Failure::Protocol => "protocol error",
        };
        let why = match f {
            Failure::ConnectFailed => self.rq.transport_failure(),
            _ => None,
        };
        let body = local::upstream_failure(self.attempts > 1, reason, why.as_deref());
        // Envoy's details: the reason and transport failure, spaces as `_`.
        let mut d = String::from("upstream_reset_before_response_started{");
        d.push_str(reason);
        if let Some(w) = &why {
            d.push(',');
            d.push_str(w);
        }
        d.push('}');
        self.rq.details = d.replace(' ', "_").into();
        let status = if f == Failure::Protocol { 502 } else { 503 };
        self.local_failure(env, cx, status, &body)
    }

    /// A circuit breaker (`max_pending_requests`, `max_requests`) refused the request a
    /// connection: Envoy's overflow reset, answered at once with 503 `UO` and
    /// `x-envoy-overloaded: true`, never retried.
    pub(super) fn overflow(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>) -> Step {
        log::debug!("circuit breaker overflow");
        if let Some((c, _)) = self.target {
            env.pending_overflow(c);
        }
        self.release_all(env);
        self.connect_at = None;
        self.per_try_at = None;
        self.flag(Flags::UO);
        if self.tcp.is_some() {
            // A TCP proxy connection has no HTTP to answer with: Envoy closes it unanswered.
            return Step::End(Then::Drop);
        }
        self.rq.details =
            std::borrow::Cow::Borrowed("upstream_reset_before_response_started{overflow}");
        let body = local::upstream_failure(self.attempts > 1, "overflow", None);
        self.reply_and_end(env, cx, 503, &body, true)
    }

    /// Queues a local reply that ends the exchange (with the route's response edits, as
    /// Envoy's router does for its own replies); keeps the connection when that is safe.
    fn local_failure(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        status: u16,
        body: &str,
    ) -> Step {
        self.reply_and_end(env, cx, status, body, false)
    }

    /// `local_failure`, saying `x-envoy-overloaded: true` when `overloaded`.
    fn reply_and_end(
        &mut self,
        env: &mut dyn Env,
        cx: &mut Cx<'_>,
        status: u16,
        body: &str,
        overloaded: bool,
    ) -> Step {
        let keep = self.client_keep_alive && self.req.is_done() && !env.closing();
        let r = Reply {
            edits: &self.resp_edits,
            upstream: self.target.map(|t| t.1),
            overloaded,
            head: self.is_head,
            ..plain_reply(status, body, !keep)
        };
        queue_reply(env, cx.cout, &r, &mut self.rq);
        Step::End(if keep { Then::Next } else { Then::Close })
    }

    /// A deadline is due at `now`.
    pub(super) fn on_timeout(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>, now: Instant) -> Step {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self.tcp_duration_due(now) {
            cx.drop_up();
            return super::tcp::duration_reached(self, env);
        }
        if let Upstream::Backoff { until } = self.upstream {
            if until <= now {
                return Step::Connect(self.launch());
            }
        }
        if due(self.request_deadline()) {
            return self.request_timed_out(env, cx);
        }
        if due(self.connect_at) {
            log::debug!("connect timeout");
            let had_up = cx.up.is_some();
            cx.drop_up();
            return self.failed(env, cx, Failure::ConnectTimeout, false, had_up, now);
        }
        if due(self.timeout_at) {
            log::debug!("route timeout");
            return self.timed_out(env, cx, "upstream_response_timeout");
        }
        if due(self.per_try_at) {
            log::debug!("per-try timeout");
            self.per_try_at = None;
            // The try is over before the retry decision, as in Envoy (where the reset ends
            // the upstream stream first): a retry budget counts the requests still active.
            self.unhold(env, Resource::Request);
            if self.should_retry(env, Outcome::Reset) {
                cx.drop_up();
                return self.failed(env, cx, Failure::Reset, false, true, now);
            }
            return self.timed_out(env, cx, "upstream_per_try_timeout");
        }
        if due(self.idle.map(|t| self.last_activity + t)) {
            return self.stream_idle(env, cx);
        }
        Step::Running(false)
    }

    /// The route (or per-try) timeout: 504 before a response head, a reset after.
    fn timed_out(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>, detail: &'static str) -> Step {
        cx.drop_up();
        self.flag(Flags::UT);
        self.rq.details = detail.into();
        if let Some((c, addr)) = self.target {
            env.upstream_rq_timeout(c, addr);
        }
        if self.resp.is_some() {
            return Step::End(Then::Reset);
        }
        match self.timeout_status {
            204 => self.local_failure(env, cx, 204, ""),
            _ => self.local_failure(env, cx, 504, local::UPSTREAM_TIMEOUT),
        }
    }

    /// `request_timeout`: the request did not arrive in full in time. Envoy's HCM answers
    /// `408 request timeout` (nothing was answered yet) and the connection, its request
    /// unfinished, closes.
    fn request_timed_out(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>) -> Step {
        log::debug!("request timeout");
        self.rq.details = "request_overall_timeout".into();
        env.request_timeout();
        cx.drop_up();
        queue_reply(
            env,
            cx.cout,
            &Reply {
                head: self.is_head,
                ..plain_reply(408, local::REQUEST_TIMEOUT, true)
            },
            &mut self.rq,
        );
        Step::End(Then::Close)
    }

    /// The stream idle timeout, as Envoy's HCM answers it: a reset once the response has
    /// started, else `504 stream timeout` when the whole request was received, `408` while it
    /// was still arriving. An HCM reply, so the route's response edits do not apply. A request
    /// already answered locally gets no second answer: the connection just closes.
    fn stream_idle(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>) -> Step {
        log::debug!("stream idle timeout");
        self.flag(Flags::SI);
        self.rq.details = "stream_idle_timeout".into();
        cx.drop_up();
        if self.resp.is_some() {
            return Step::End(Then::Reset);
        }
        if self.upstream == Upstream::Local {
            return Step::End(Then::Close);
        }
        let (status, keep) = if self.req.is_done() {
            (504, self.client_keep_alive && !env.closing())
        } else {
            (408, false)
        };
        queue_reply(
            env,
            cx.cout,
            &Reply {
                head: self.is_head,
                ..plain_reply(status, local::STREAM_TIMEOUT, !keep)
            },
            &mut self.rq,
        );
        Step::End(if keep { Then::Next } else { Then::Close })
    }

    /// The retry policy in force: the request's merged one, else the route's.
    fn policy<'a>(&'a self, env: &'a dyn Env) -> Option<&'a crate::config::RetryPolicy> {
        match &self.policy {
            Some(p) => Some(p),
            None => self.route.and_then(|r| env.retry_policy(r)),
        }
    }

    /// The retry decision at the end of an attempt, counted as Envoy counts it:
    /// `upstream_rq_retry_limit_exceeded` when the policy would retry but no retry is left,
    /// `upstream_rq_retry_success` when an earlier retry happened and this outcome is not
    /// retried. (`upstream_rq_retry` is counted when a retry is scheduled.)
    pub(super) fn should_retry(&mut self, env: &mut dyn Env, o: Outcome) -> bool {
        // Envoy gives the previous retry's circuit-breaker slot back at every decision.
        self.unhold(env, Resource::Retry);
        let retriable = self.retriable(env, o);
        let cluster = self.target.map(|t| t.0);
        if let (true, true, Some(c)) = (retriable, self.retries_left > 0, cluster) {
            if self.hold(env, Resource::Retry, false) {
                return true;
            }
            // The cluster's `max_retries` (default 3) or `retry_budget` circuit breaker.
            env.retry_stat(c, RetryStat::Overflow);
            self.flag(Flags::UO);
            return false;
        }
        if let Some(c) = cluster {
            if retriable {
                env.retry_stat(c, RetryStat::LimitExceeded);
            } else if self.attempts > 1 && !self.retry_counted {
                self.retry_counted = true;
                env.retry_stat(c, RetryStat::Success);
            }
        }
        false
    }

    /// Whether the policy in force retries `o` (retries left or not): the body is still
    /// replayable and nothing was sent to the client yet.
    fn retriable(&self, env: &dyn Env, o: Outcome) -> bool {
        if self.replay.is_none() || self.resp.is_some() {
            return false;
        }
        let Some(p) = self.policy(env) else {
            return false;
        };
        let on = p.retry_on;
        match o {
            // Envoy: 5xx and gateway-error cover "no response at all", reset covers connect
            // failure.
            Outcome::ConnectFailure => {
                on.five_xx || on.gateway_error || on.reset || on.connect_failure
            }
            Outcome::Reset => on.five_xx || on.gateway_error || on.reset,
            Outcome::Status(c) => {
                (on.five_xx && c >= 500)
                    || (on.gateway_error && matches!(c, 502..=504))
                    || (on.retriable_4xx && c == 409)
                    || (on.retriable_status_codes && p.retriable_status_codes.contains(&c))
            }
        }
    }

    /// Prepares the next attempt: another host of the same cluster when there is one, the
    /// Host header redone under `auto_host_rewrite`, and a jittered exponential back-off
    /// (Envoy's default 25 ms base). Returns false when the cluster has no host left.
    fn prepare_retry(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let Some((cluster, old)) = self.target else {
            return false;
        };
        let (base, max) = self.policy(env).map_or(
            (Duration::from_millis(25), Duration::from_millis(250)),
            |p| (p.back_off_base, p.back_off_max),
        );
        let Some(addr) = env.next_host(cluster, old) else {
            return false;
        };
        env.track(cluster, old, -1);
        env.track(cluster, addr, 1);
        if let Some(at) = self.auto_host {
            if let Some(name) = env.hostname_of(cluster, addr) {
                let new = crate::http::request::replace_value(&mut self.head, at, &name);
                // The attempt count comes after the Host: it moves with it.
                if let Some(a) = self.attempt_at.as_mut() {
                    let shift = |i: usize| (i + new.1).saturating_sub(at.1);
                    *a = (shift(a.0), shift(a.1));
                }
                self.auto_host = Some(new);
                // `auto_sni` names the server by the Host it now gets.
                if self.sni.is_some() {
                    self.sni = crate::http::request::auto_sni(&name);
                }
            }
        }
        self.target = Some((cluster, addr));
        env.retry_stat(cluster, RetryStat::Retry);
        self.retries_left = self.retries_left.saturating_sub(1);
        self.attempts += 1;
        if let Some(at) = self.attempt_at {
            let n = self.attempts.to_string();
            self.attempt_at = Some(crate::http::request::replace_value(&mut self.head, at, &n));
        }
        if self.attempts_in_response {
            self.stamp_attempts();
        }
        let ceiling = base
            .saturating_mul(1u32 << self.attempts.saturating_sub(2).min(16))
            .min(max);
        let jitter = env.random_below(ceiling.as_micros().max(1) as u64);
        self.upstream = Upstream::Backoff {
            until: now + Duration::from_micros(jitter),
        };
        true
    }
}
