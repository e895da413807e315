//! The HTTP filters before the router, run on a request head in config order (Envoy's
//! decoder chain): the health check, CORS, CSRF, local rate limit, RBAC and fault filters. A filter that
//! answers stops the chain; the response headers the filters add (their encoder side) go on
//! whatever answers — the router's upstream response, a later filter's reply, or the
//! filter's own. The local rate limit's token buckets (`RateLimits`) live on the context and
//! are written here only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use super::codec::RequestHead;
use super::compress;
use super::fault::{self, FaultStats};
use super::rbac::{self, RbacStats};
use crate::access_log::Flags;
use crate::cluster::ClusterRt;
use crate::config::{
    AppendAction, CorsPolicy, CsrfPolicy, FilterPolicy, Fraction, HealthCheckFilter, HttpFilter,
    HttpFilterKind, LocalRateLimit, PerFilterConfig, StringMatch, TokenBucket,
};
use crate::route::edits::{add_ops, Op};
use crate::route::matcher::{header_matches, string_matches};
use crate::stats::{Counter, FilterCounts, Stats};
use crate::util::Rng;

/// The route the request matched, as the filters see it.
pub(super) struct RouteView<'a> {
    /// (virtual host, route) indices.
    pub at: (usize, usize),
    /// The route's, then its virtual host's `typed_per_filter_config`.
    pub levels: [&'a [PerFilterConfig]; 2],
    /// The route forwards (Envoy's route entry; a redirect or direct response has none).
    pub forwards: bool,
    /// The route's, then its virtual host's legacy `cors` policy.
    pub legacy_cors: [Option<&'a CorsPolicy>; 2],
}

/// A filter's own answer.
pub(super) struct Answer {
    pub status: u16,
    pub body: Cow<'static, str>,
    /// Headers of this answer alone (the chain's `edits` go on it too).
    pub edits: Vec<Op>,
    /// The %RESPONSE_FLAGS% bit, or 0.
    pub flag: u32,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: Cow<'static, str>,
}

impl Answer {
    fn new(status: u16, body: &'static str, details: &'static str) -> Answer {
        Answer {
            status,
            body: Cow::Borrowed(body),
            edits: Vec::new(),
            flag: 0,
            details: Cow::Borrowed(details),
        }
    }
}

/// What the chain made of a request.
#[derive(Default)]
pub(super) struct Outcome {
    /// A filter's own answer (the router does not run).
    pub answer: Option<Answer>,
    /// Response headers the filters set, applied after the route's.
    pub edits: Vec<Op>,
    /// Request headers the filters add, before the route's request edits.
    pub request_edits: Vec<Op>,
    pub counts: FilterCounts,
    /// A health check filter took the request as a health check (Envoy's
    /// `StreamInfo::healthCheck`), answered here or passed through: what an access log's
    /// `not_health_check_filter` reads.
    pub health_check: bool,
    /// The compressor filter saw the request: its response may be compressed.
    pub compress: Option<super::compress::Plan>,
    /// The decompressor filter inflates the request body on its way upstream.
    pub inflate: Option<super::compress::InflatePlan>,
    /// A filter (its index) holds the request before the chain goes on — an ext_authz
    /// filter's check, a fault filter's delay: the request pauses, and the chain resumes at
    /// that filter (`run`'s `resume`) with what the filters before it made.
    pub pause: Option<(usize, super::request::Wait)>,
    /// A fault filter's delay holds one of its `active_faults` (the request gives it back when
    /// the delay ends or the request does).
    pub active_fault: Option<crate::stats::Gauge>,
}

/// How a paused chain goes on at the filter that paused it.
#[derive(Debug)]
pub(super) enum Resumed {
    /// The ext_authz check's verdict.
    Verdict(super::ext_authz::Verdict),
    /// The fault filter's delay is over.
    Delayed,
}

/// What the filters read from the process besides the request.
pub(super) struct Env<'a> {
    pub listener: usize,
    pub service_cluster: &'a str,
    /// `/healthcheck/fail` is in force.
    pub healthcheck_failed: bool,
    pub clusters: &'a [ClusterRt],
    pub now: Instant,
    /// The connection, as RBAC rules read it.
    pub conn: rbac::Conn<'a>,
    /// The RBAC filters' counters.
    pub rbac: &'a RbacStats,
    /// The fault filters' counters.
    pub faults: &'a FaultStats,
    /// The compression filters' configs and counters.
    pub compress: &'a super::compress::CompressStats,
    /// The ext_authz filters' counters.
    pub ext_authz: &'a super::ext_authz::ExtAuthzStats,
}

/// Runs `filters` on `req`. `rng` draws the filters' runtime fractions; `limits` and
/// `stats` take the local rate limits' tokens and counts. `resume`: the chain goes on at the
/// filter that paused it (`Outcome::pause`), with `out` as the filters before it left it.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    filters: &[HttpFilter],
    req: &RequestHead<'_>,
    route: Option<&RouteView<'_>>,
    env: &Env<'_>,
    limits: &mut RateLimits,
    stats: &mut Stats,
    rng: &mut Rng,
    resume: Option<(usize, Resumed)>,
    mut out: Outcome,
) -> Outcome {
    let (start, mut resumed) = match resume {
        Some((at, r)) => (at, Some(r)),
        None => (0, None),
    };
    for (fi, f) in filters.iter().enumerate().skip(start) {
        // The most specific per-route entry of this filter decides whether it runs; the most
        // specific one with a policy gives the policy (a FilterConfig may carry none).
        let most_specific = |with_policy: bool| {
            route.and_then(|r| {
                r.levels.iter().enumerate().find_map(|(lvl, l)| {
                    let c = l
                        .iter()
                        .find(|c| c.name == f.name && (!with_policy || c.policy.is_some()))?;
                    Some((lvl, c))
                })
            })
        };
        let found = most_specific(true);
        let own = found.map(|(_, c)| c);
        if most_specific(false).map_or(f.disabled, |(_, c)| c.disabled)
            || matches!(
                own.and_then(|c| c.policy.as_ref()),
                Some(FilterPolicy::ExtAuthz { disabled: true })
            )
        {
            continue;
        }
        // This filter paused the request: it only finishes what it began now.
        let resuming = fi == start && resumed.is_some();
        let answer = match &f.kind {
            HttpFilterKind::HealthCheck(hc) => {
                health_check(hc, req, env, &mut out.edits, &mut out.health_check).map(
                    |(status, d)| Answer {
                        flag: if status == 200 { 0 } else { Flags::LH },
                        ..Answer::new(status, "", d)
                    },
                )
            }
            HttpFilterKind::Cors => match route {
                Some(r) if r.forwards => cors(&f.name, r, req, rng, &mut out),
                _ => None,
            },
            HttpFilterKind::Csrf(own_policy) => {
                let per_route = own.and_then(|c| match &c.policy {
                    Some(FilterPolicy::Csrf(p)) => Some(p),
                    _ => None,
                });
                csrf(per_route.unwrap_or(own_policy), req, rng, &mut out.counts)
            }
            HttpFilterKind::LocalRateLimit(own_config) => {
                let mut key = LimitKey::filter(env.listener, fi);
                let mut config = own_config;
                if let (Some(r), Some((lvl, c))) = (route, found) {
                    if let Some(FilterPolicy::LocalRateLimit(p)) = &c.policy {
                        key = key.at(r.at, lvl == 0);
                        config = p;
                    }
                }
                local_rate_limit(config, key, env.now, limits, stats, rng, &mut out)
            }
            HttpFilterKind::Rbac(own_config) => {
                let config = match own.and_then(|c| c.policy.as_ref()) {
                    Some(FilterPolicy::Rbac(p)) => p,
                    _ => own_config,
                };
                let at = (env.listener, fi);
                rbac::check(config, at, req, &env.conn, env.rbac, stats).map(|details| Answer {
                    details,
                    ..Answer::new(403, "RBAC: access denied", "")
                })
            }
            HttpFilterKind::Fault(own_config) => {
                let config = match own.and_then(|c| c.policy.as_ref()) {
                    Some(FilterPolicy::Fault(p)) => p,
                    _ => own_config,
                };
                let at = (env.listener, fi);
                let status = if resuming {
                    resumed = None;
                    fault::after_delay(config, at, req, env.faults, stats, rng)
                } else {
                    match fault::on_request(config, at, req, env.faults, stats, rng) {
                        None => None,
                        Some(fault::Injected::Abort(s)) => Some(s),
                        Some(fault::Injected::Delay(d, active)) => {
                            out.pause = Some((fi, super::request::Wait::Delay(d)));
                            out.active_fault = Some(active);
                            break;
                        }
                    }
                };
                status.map(|status| Answer {
                    flag: Flags::FI,
                    ..Answer::new(status, "fault filter abort", "fault_filter_abort")
                })
            }
            HttpFilterKind::Compressor(_) => {
                if let Some(rt) = env.compress.compressor((env.listener, fi)) {
                    let (plan, remove) = compress::on_request(rt, req, stats);
                    if remove {
                        out.request_edits.push(Op::Remove("accept-encoding".into()));
                    }
                    out.compress = Some(plan);
                }
                None
            }
            HttpFilterKind::Decompressor(_) => {
                let rt = env.compress.decompressor((env.listener, fi));
                if let Some((plan, rest)) =
                    rt.and_then(|rt| compress::on_request_inflate(rt, req, stats))
                {
                    // gzip comes off the front of the codings; the rest stays.
                    out.request_edits.push(match rest {
                        Some(v) => {
                            Op::fixed("content-encoding", &v, AppendAction::OverwriteIfExistsOrAdd)
                        }
                        None => Op::Remove("content-encoding".into()),
                    });
                    out.inflate = Some(plan);
                }
                None
            }
            HttpFilterKind::ExtAuthz(c)
                if !resuming && c.filter_enabled.is_some_and(|f| !sample(f, rng)) =>
            {
                // Envoy's `filter_enabled`: left out, or (`deny_at_disable`) refused.
                let at = (env.listener, fi);
                env.ext_authz
                    .count(at, &[super::ext_authz::Count::Disabled], stats);
                c.deny_at_disable.then(|| Answer {
                    flag: super::ext_authz::FLAG,
                    ..Answer::new(c.status_on_error, "", "ext_authz_error")
                })
            }
            HttpFilterKind::ExtAuthz(c) => {
                let Some(Resumed::Verdict(v)) = resumed.take().filter(|_| fi == start) else {
                    let check = super::ext_authz::check(c, req, &env.conn, rng.next_u64());
                    out.pause = Some((fi, super::request::Wait::Check(check)));
                    break;
                };
                let mut counts = Vec::new();
                let o = super::ext_authz::outcome(c, &v, &mut counts);
                env.ext_authz.count((env.listener, fi), &counts, stats);
                match o {
                    super::ext_authz::Outcome::Allowed { request, response } => {
                        out.request_edits.extend(request);
                        out.edits.extend(response);
                        None
                    }
                    super::ext_authz::Outcome::Denied {
                        status,
                        body,
                        edits,
                        details,
                    } => Some(Answer {
                        status,
                        body,
                        edits,
                        flag: super::ext_authz::FLAG,
                        details: Cow::Borrowed(details),
                    }),
                }
            }
        };
        if answer.is_some() {
            out.answer = answer;
            break;
        }
    }
    out
}

/// Envoy's health check filter: a request whose headers all match is a health check. It is
/// answered here (200, or 503 with LH while `/healthcheck/fail` is in force or a cluster is
/// short of healthy hosts) unless in pass-through mode — the status and Envoy's details are
/// returned — and its answer names the service cluster. While failed, every other answer
/// carries `x-envoy-immediate-health-check-fail` so that a downstream Envoy drops this host
/// at once.
fn health_check(
    hc: &HealthCheckFilter,
    req: &RequestHead<'_>,
    env: &Env<'_>,
    edits: &mut Vec<Op>,
    matched: &mut bool,
) -> Option<(u16, &'static str)> {
    let failed = env.healthcheck_failed;
    let service_cluster = env.service_cluster;
    let set = AppendAction::OverwriteIfExistsOrAdd;
    if !hc.headers.iter().all(|m| header_matches(m, req)) {
        if failed {
            edits.push(Op::fixed(
                "x-envoy-immediate-health-check-fail",
                "true",
                set,
            ));
        }
        return None;
    }
    *matched = true;
    edits.push(Op::fixed(
        "x-envoy-upstream-healthchecked-cluster",
        service_cluster,
        set,
    ));
    if failed {
        return Some((503, "health_check_failed"));
    }
    if hc.pass_through_mode {
        return None;
    }
    // Envoy's rule (the minimum taken as a whole percent): a cluster that does not exist is
    // short; one without hosts is short unless its minimum is 0; else its healthy hosts must
    // reach the minimum share.
    for (name, min) in &hc.cluster_min_healthy_percentages {
        let min = min.trunc();
        let Some(c) = env.clusters.iter().find(|c| c.cfg.name == *name) else {
            return Some((503, "health_check_no_cluster_found"));
        };
        if c.hosts.is_empty() {
            if min == 0.0 {
                continue;
            }
            return Some((503, "health_check_failed_cluster_empty"));
        }
        if (c.healthy_count() as f64) < c.hosts.len() as f64 * min / 100.0 {
            return Some((503, "health_check_failed_cluster_unhealthy"));
        }
    }
    Some((200, "health_check_ok"))
}

/// A runtime fraction drawn for one request (Envoy: a random number modulo the denominator
/// below the numerator).
pub(crate) fn sample(f: Fraction, rng: &mut Rng) -> bool {
    f.numerator >= f.denominator || rng.below(u64::from(f.denominator)) < u64::from(f.numerator)
}

/// The first value of request header `name` (lower case), when not empty.
pub(super) fn header<'a>(req: &RequestHead<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .filter(|v| !v.is_empty())
}

const SET: AppendAction = AppendAction::OverwriteIfExistsOrAdd;

/// Envoy's CORS filter. Its policies are the route's and the virtual host's (each field from
/// the most specific policy that sets it; `filter_enabled` and `shadow_enabled` from the most
/// specific policy only). A preflight (OPTIONS with `Origin` and
/// `Access-Control-Request-Method`) is answered here, 200, unless its origin is not allowed
/// and `forward_not_matching_preflights` (default true) sends it on; an allowed origin's
/// other requests get `access-control-allow-origin` (and credentials, exposed headers) on
/// their response.
fn cors(
    name: &str,
    route: &RouteView<'_>,
    req: &RequestHead<'_>,
    rng: &mut Rng,
    out: &mut Outcome,
) -> Option<Answer> {
    let mut pols: [Option<&CorsPolicy>; 2] = [None, None];
    for (slot, level) in pols.iter_mut().zip(route.levels) {
        *slot = level.iter().find_map(|c| match &c.policy {
            Some(FilterPolicy::Cors(p)) if c.name == name => Some(p),
            _ => None,
        });
    }
    // Envoy reads the legacy `cors` fields only when no per-filter policy applies.
    if pols.iter().all(Option::is_none) {
        pols = route.legacy_cors;
    }
    let first = pols.iter().flatten().next()?;
    let enabled = first.filter_enabled.is_none_or(|f| sample(f, rng));
    let shadow = first.shadow_enabled.is_some_and(|f| sample(f, rng));
    if !enabled && !shadow {
        return None;
    }
    let origin = header(req, "origin")?;
    // The most specific policy that sets a field gives it.
    let field = |get: fn(&CorsPolicy) -> &str| -> &str {
        pols.iter()
            .flatten()
            .map(|p| get(p))
            .find(|v| !v.is_empty())
            .unwrap_or("")
    };
    let flag = |get: fn(&CorsPolicy) -> Option<bool>| pols.iter().flatten().find_map(|p| get(p));
    let allow_origin: &[StringMatch] = pols
        .iter()
        .flatten()
        .map(|p| p.allow_origin.as_slice())
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let allowed = allow_origin
        .iter()
        .any(|m| string_matches(m, "*") || string_matches(m, origin));
    out.counts.cors[usize::from(!allowed)] += 1;
    if !enabled {
        return None;
    }
    let credentials = flag(|p| p.allow_credentials).unwrap_or(false);
    // What the encoder side sets on the response, the filter's own preflight answer included.
    if allowed {
        out.edits
            .push(Op::fixed("access-control-allow-origin", origin, SET));
        if credentials {
            out.edits
                .push(Op::fixed("access-control-allow-credentials", "true", SET));
        }
        let expose = field(|p| &p.expose_headers);
        if !expose.is_empty() {
            out.edits
                .push(Op::fixed("access-control-expose-headers", expose, SET));
        }
    }
    let request_method =
        header(req, "access-control-request-method").filter(|_| req.method == "OPTIONS")?;
    if !allowed && flag(|p| p.forward_not_matching_preflights).unwrap_or(true) {
        return None;
    }
    let mut edits = Vec::new();
    if !allowed && credentials {
        edits.push(Op::fixed("access-control-allow-credentials", "true", SET));
    }
    let methods = field(|p| &p.allow_methods);
    if !methods.is_empty() {
        let v = if methods == "*" {
            request_method
        } else {
            methods
        };
        edits.push(Op::fixed("access-control-allow-methods", v, SET));
    }
    let headers = field(|p| &p.allow_headers);
    if !headers.is_empty() {
        let v = if headers == "*" {
            header(req, "access-control-request-headers").unwrap_or("")
        } else {
            headers
        };
        edits.push(Op::fixed("access-control-allow-headers", v, SET));
    }
    let max_age = field(|p| &p.max_age);
    if !max_age.is_empty() {
        edits.push(Op::fixed("access-control-max-age", max_age, SET));
    }
    if flag(|p| p.allow_private_network_access).unwrap_or(false)
        && header(req, "access-control-request-private-network") == Some("true")
    {
        edits.push(Op::fixed(
            "access-control-allow-private-network",
            "true",
            SET,
        ));
    }
    Some(Answer {
        edits,
        ..Answer::new(200, "", "cors_response")
    })
}

/// Envoy's CSRF filter: a POST, PUT, DELETE or PATCH whose source origin (`Origin`, else
/// `Referer`, as host and port) is neither the request's `Host` nor one of
/// `additional_origins` is refused: 403 `Invalid origin` (in shadow mode only counted).
fn csrf(
    p: &CsrfPolicy,
    req: &RequestHead<'_>,
    rng: &mut Rng,
    counts: &mut FilterCounts,
) -> Option<Answer> {
    let enabled = sample(p.filter_enabled, rng);
    let shadow = p.shadow_enabled.is_some_and(|f| sample(f, rng));
    if !enabled && !shadow {
        return None;
    }
    if !matches!(req.method, "POST" | "PUT" | "DELETE" | "PATCH") {
        return None;
    }
    let source = header(req, "origin")
        .map(host_and_port)
        .filter(|s| !s.is_empty())
        .or_else(|| header(req, "referer").map(host_and_port))
        .unwrap_or("");
    let mut valid = true;
    if source.is_empty() {
        valid = false;
        counts.csrf[0] += 1;
    }
    let target = req.host.map(host_and_port).unwrap_or("");
    let same = !source.is_empty() && source == target;
    if !same
        && !p
            .additional_origins
            .iter()
            .any(|m| string_matches(m, source))
    {
        valid = false;
        counts.csrf[1] += 1;
    }
    if valid {
        counts.csrf[2] += 1;
        return None;
    }
    if !enabled {
        return None;
    }
    Some(Answer::new(403, "Invalid origin", "csrf_origin_mismatch"))
}

/// Where a local rate limit config sits: a filter of a listener's chain, or a virtual host's
/// or route's per-route config for it (`NONE` where not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LimitKey {
    listener: usize,
    filter: usize,
    vh: usize,
    route: usize,
}

const NONE: usize = usize::MAX;

impl LimitKey {
    fn filter(listener: usize, filter: usize) -> LimitKey {
        LimitKey {
            listener,
            filter,
            vh: NONE,
            route: NONE,
        }
    }

    /// The virtual host's config, or (`route`) the route's.
    fn at(self, (vh, r): (usize, usize), route: bool) -> LimitKey {
        LimitKey {
            vh,
            route: if route { r } else { NONE },
            ..self
        }
    }
}

/// One config's bucket (none: nothing is limited) and its counters (enabled, enforced,
/// rate_limited, ok).
#[derive(Debug)]
struct Limiter {
    bucket: Option<(TokenBucket, Tokens)>,
    counters: [Counter; 4],
}

#[derive(Debug, Clone, Copy)]
struct Tokens {
    left: u32,
    /// The last fill (or the start): whole intervals after it add `tokens_per_fill` each.
    filled_at: Instant,
}

/// Takes a token, first adding what the elapsed whole fill intervals brought (computed from
/// the clock when a request comes, so an idle bucket needs no timer).
fn take(tb: &TokenBucket, t: &mut Tokens, now: Instant) -> bool {
    let elapsed = now.saturating_duration_since(t.filled_at);
    let fills = elapsed.as_nanos() / tb.fill_interval.as_nanos().max(1);
    if fills > 0 {
        let added = fills.saturating_mul(u128::from(tb.tokens_per_fill));
        let left = (u128::from(t.left) + added).min(u128::from(tb.max_tokens));
        t.left = u32::try_from(left).unwrap_or(tb.max_tokens);
        // Keep the fill phase; past any representable count, start again from now.
        t.filled_at = u32::try_from(fills)
            .ok()
            .and_then(|n| tb.fill_interval.checked_mul(n))
            .and_then(|d| t.filled_at.checked_add(d))
            .unwrap_or(now);
    }
    if t.left == 0 {
        return false;
    }
    t.left -= 1;
    true
}

/// Every local rate limit config's bucket, made full at start.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    limiters: HashMap<LimitKey, Limiter>,
}

impl RateLimits {
    /// One limiter per local rate limit config of every listener (the filter's own, each
    /// virtual host's and route's), its counters registered in `stats`.
    pub(crate) fn new(
        listeners: &[crate::context::ListenerRt],
        stats: &mut Stats,
        now: Instant,
    ) -> RateLimits {
        let mut limiters = HashMap::new();
        let mut add = |key: LimitKey, c: &LocalRateLimit| {
            let limiter = Limiter {
                bucket: c.token_bucket.map(|tb| {
                    (
                        tb,
                        Tokens {
                            left: tb.max_tokens,
                            filled_at: now,
                        },
                    )
                }),
                counters: stats.local_rate_limit(&c.stat_prefix),
            };
            limiters.insert(key, limiter);
        };
        for (l, listener) in listeners.iter().enumerate() {
            let Some(http) = listener.http() else {
                continue;
            };
            for (fi, f) in http.hcm.http_filters.iter().enumerate() {
                let HttpFilterKind::LocalRateLimit(own) = &f.kind else {
                    continue;
                };
                let key = LimitKey::filter(l, fi);
                add(key, own);
                for (vi, vh) in http.router.config.virtual_hosts.iter().enumerate() {
                    if let Some(p) = per_route_limit(&vh.filter_configs, &f.name) {
                        add(key.at((vi, 0), false), p);
                    }
                    for (ri, r) in vh.routes.iter().enumerate() {
                        if let Some(p) = per_route_limit(&r.filter_configs, &f.name) {
                            add(key.at((vi, ri), true), p);
                        }
                    }
                }
            }
        }
        RateLimits { limiters }
    }
}

/// The local rate limit config of filter `name` among a level's per-route configs.
fn per_route_limit<'a>(list: &'a [PerFilterConfig], name: &str) -> Option<&'a LocalRateLimit> {
    list.iter().find_map(|c| match &c.policy {
        Some(FilterPolicy::LocalRateLimit(p)) if c.name == name => Some(p),
        _ => None,
    })
}

/// Envoy's local rate limit filter: when enabled (`filter_enabled`, default off) a request
/// takes a token of its config's bucket; without one it is refused — `status` (429), body
/// `local_rate_limited`, flag RL, `response_headers_to_add` — when `filter_enforced` says so,
/// else let through with `request_headers_to_add_when_not_enforced`.
fn local_rate_limit(
    config: &LocalRateLimit,
    key: LimitKey,
    now: Instant,
    limits: &mut RateLimits,
    stats: &mut Stats,
    rng: &mut Rng,
    out: &mut Outcome,
) -> Option<Answer> {
    if !config.filter_enabled.is_some_and(|f| sample(f, rng)) {
        return None;
    }
    let limiter = limits.limiters.get_mut(&key)?;
    let [enabled, enforced, limited, ok] = limiter.counters;
    stats.store.inc(enabled);
    let allowed = match &mut limiter.bucket {
        None => true,
        Some((tb, tokens)) => take(tb, tokens, now),
    };
    if allowed {
        stats.store.inc(ok);
        return None;
    }
    stats.store.inc(limited);
    if !config.filter_enforced.is_some_and(|f| sample(f, rng)) {
        out.request_edits
            .extend(add_ops(&config.request_headers_to_add_when_not_enforced));
        return None;
    }
    stats.store.inc(enforced);
    Some(Answer {
        edits: add_ops(&config.response_headers_to_add),
        flag: Flags::RL,
        ..Answer::new(config.status, "local_rate_limited", "local_rate_limited")
    })
}

/// The authority (host and port) of an absolute URL such as `https://a.example:8443/x`;
/// a value that is not one is taken whole, as Envoy does.
fn host_and_port(v: &str) -> &str {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if !scheme_ok || host.is_empty() {
        return v;
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_takes_the_authority_of_an_absolute_url() {
        assert_eq!(
            host_and_port("https://a.example:8443/x?y"),
            "a.example:8443"
        );
        assert_eq!(host_and_port("http://u:p@a.example/"), "a.example");
        assert_eq!(host_and_port("http://a.example"), "a.example");
        assert_eq!(host_and_port("a.example"), "a.example");
        assert_eq!(host_and_port("null"), "null");
        assert_eq!(host_and_port("http:///x"), "http:///x");
    }

    #[test]
    fn a_bucket_refills_by_whole_intervals_up_to_its_maximum() {
        let tb = TokenBucket {
            max_tokens: 3,
            tokens_per_fill: 2,
            fill_interval: std::time::Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut t = Tokens {
            left: 3,
            filled_at: t0,
        };
        let at = |s: u64| t0 + std::time::Duration::from_secs(s);
        assert!((0..3).all(|_| take(&tb, &mut t, at(1))));
        assert!(!take(&tb, &mut t, at(9)));
        // One interval: two tokens; the fill keeps its phase (t0 + 10 s).
        assert!(take(&tb, &mut t, at(15)));
        assert!(take(&tb, &mut t, at(19)));
        assert!(!take(&tb, &mut t, at(19)));
        assert_eq!(t.filled_at, at(10));
        // Long idle: full, never past the maximum.
        assert!((0..3).all(|_| take(&tb, &mut t, at(1000))));
        assert!(!take(&tb, &mut t, at(1000)));
    }

    #[test]
    fn fractions_sample_their_share() {
        let mut rng = Rng::with_seed(7);
        let never = Fraction {
            numerator: 0,
            denominator: 100,
        };
        let always = Fraction {
            numerator: 100,
            denominator: 100,
        };
        let half = Fraction {
            numerator: 5000,
            denominator: 10_000,
        };
        assert!((0..100).all(|_| !sample(never, &mut rng)));
        assert!((0..100).all(|_| sample(always, &mut rng)));
        let n = (0..1000).filter(|_| sample(half, &mut rng)).count();
        assert!((350..650).contains(&n), "{n}");
    }
}
