//! Envoy's fault injection filter (`envoy.filters.http.fault`): whether a request is delayed
//! (the exchange core holds it paused, `core::State::Paused`), then whether it is answered
//! with an injected status instead of being routed, and the filters' stats.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use super::codec::RequestHead;
use super::filters::{header, sample};
use crate::config::{Fault, HttpFilterKind};
use crate::route::matcher::header_matches;
use crate::stats::{Counter, Gauge, Stats};
use crate::util::Rng;

/// At most this many `x-envoy-downstream-service-cluster` names get their own counter (the
/// header is the client's: without a bound it could grow the stats without end).
const MAX_DOWNSTREAM_CLUSTERS: usize = 256;

/// One fault filter's `http.<stat_prefix>.fault.*` counters.
#[derive(Debug, Clone)]
struct Counters {
    /// `http.<stat_prefix>.fault.`, for the per-downstream-cluster counters.
    prefix: String,
    aborts_injected: Counter,
    delays_injected: Counter,
    faults_overflow: Counter,
    /// Requests this filter holds in a delay now (Envoy's `active_faults`).
    active_faults: Gauge,
}

/// The fault filters' counters by (listener, filter index); a route's config counts under its
/// filter's.
#[derive(Debug, Default)]
pub(crate) struct FaultStats {
    by_filter: HashMap<(usize, usize), Counters>,
    /// Downstream cluster counters made so far.
    downstream: Cell<usize>,
}

impl FaultStats {
    /// Registers every fault filter's stats as Envoy does: `aborts_injected`,
    /// `delays_injected`, `faults_overflow`, `response_rl_injected` (rate limits are refused
    /// at load: it stays 0) and the gauge `active_faults`.
    pub(crate) fn new(listeners: &[crate::context::ListenerRt], stats: &mut Stats) -> FaultStats {
        let mut by_filter = HashMap::new();
        for (l, listener) in listeners.iter().enumerate() {
            let Some(http) = listener.http() else {
                continue;
            };
            for (fi, f) in http.hcm.http_filters.iter().enumerate() {
                if let HttpFilterKind::Fault(_) = &f.kind {
                    let prefix = format!("http.{}.fault.", http.hcm.stat_prefix);
                    let mut c = |n: &str| stats.store.counter(&format!("{prefix}{n}"));
                    let (aborts_injected, delays_injected) =
                        (c("aborts_injected"), c("delays_injected"));
                    let faults_overflow = c("faults_overflow");
                    c("response_rl_injected");
                    let active_faults = stats.store.gauge(
                        &format!("{prefix}active_faults"),
                        crate::stats::Import::Never,
                    );
                    let counters = Counters {
                        aborts_injected,
                        delays_injected,
                        faults_overflow,
                        active_faults,
                        prefix: prefix.clone(),
                    };
                    by_filter.insert((l, fi), counters);
                }
            }
        }
        FaultStats {
            by_filter,
            downstream: Cell::new(0),
        }
    }
}

/// What a fault filter does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Injected {
    /// Hold the request this long, then go on at this filter (`after_delay`). The request
    /// holds one of `active_faults` (given back by `release`) until then.
    Delay(Duration, Gauge),
    /// Answer with this status (`fault filter abort`, flag FI).
    Abort(u16),
}

/// What fault filter `fi` of listener `l` does to `req` with `config` (its own, or the
/// route's); `None` lets the request on. Envoy's order (`decodeHeaders`): the request must
/// match `downstream_nodes` and `headers`; then a delay is drawn, and only if none starts an
/// abort. Each fault that would start is first checked against `max_active_faults` (a
/// refusal counts `faults_overflow`; both may count for one request, as in Envoy).
pub(super) fn on_request(
    config: &Fault,
    (l, fi): (usize, usize),
    req: &RequestHead<'_>,
    counters: &FaultStats,
    stats: &mut Stats,
    rng: &mut Rng,
) -> Option<Injected> {
    if !applies(config, req) {
        return None;
    }
    let c = counters.by_filter.get(&(l, fi))?;
    if let Some(d) = delay(config, req, rng) {
        if !overflow(config, c, stats) {
            stats.store.inc(c.delays_injected);
            counters.per_cluster(config, c, req, "delays_injected", stats);
            stats.store.gauge_add(c.active_faults, 1);
            return Some(Injected::Delay(d, c.active_faults));
        }
    }
    let status = abort_status(config, req, rng)?;
    if overflow(config, c, stats) {
        return None;
    }
    counters.count_abort(config, c, req, stats);
    Some(Injected::Abort(status))
}

/// Filter `fi`'s delay is over (Envoy's `postDelayInjection`): the abort is drawn now, and
/// answers with its status; `None` lets the request on. The delay already counted against
/// `max_active_faults`, so the abort is not checked again.
pub(super) fn after_delay(
    config: &Fault,
    (l, fi): (usize, usize),
    req: &RequestHead<'_>,
    counters: &FaultStats,
    stats: &mut Stats,
    rng: &mut Rng,
) -> Option<u16> {
    let c = counters.by_filter.get(&(l, fi))?;
    let status = abort_status(config, req, rng)?;
    counters.count_abort(config, c, req, stats);
    Some(status)
}

/// A delayed request gives its active fault back: its delay ended, or the request did
/// (Envoy counts a delay as active until it is over).
pub(crate) fn release(active_faults: Gauge, stats: &mut Stats) {
    stats.store.gauge_add(active_faults, -1);
}

/// The request is one the fault applies to: its `downstream_nodes` and `headers` match.
fn applies(config: &Fault, req: &RequestHead<'_>) -> bool {
    if !config.downstream_nodes.is_empty() {
        let Some(node) = header(req, "x-envoy-downstream-service-node") else {
            return false;
        };
        if !config.downstream_nodes.iter().any(|n| n == node) {
            return false;
        }
    }
    config.headers.iter().all(|m| header_matches(m, req))
}

/// `max_active_faults` is reached (Envoy compares the filter's `active_faults` gauge, shared
/// by listeners with the same stat prefix): counted as `faults_overflow`.
fn overflow(config: &Fault, c: &Counters, stats: &mut Stats) -> bool {
    let Some(max) = config.max_active_faults else {
        return false;
    };
    if stats.store.gauge_value(c.active_faults) >= i64::from(max) {
        stats.store.inc(c.faults_overflow);
        return true;
    }
    false
}

/// The delay drawn for `req` (Envoy's `delayDuration`): its percentage (with `header_delay`,
/// `x-envoy-fault-delay-request-percentage` may lower the numerator), then the duration —
/// the configured one, or with `header_delay` `x-envoy-fault-delay-request` in milliseconds
/// (absent or not a number: none); a duration of 0 is no delay.
fn delay(config: &Fault, req: &RequestHead<'_>, rng: &mut Rng) -> Option<Duration> {
    let d = config.delay.as_ref()?;
    let mut pct = d.percentage;
    if d.from_header {
        if let Some(n) = first_number(req, "x-envoy-fault-delay-request-percentage") {
            pct.numerator = pct.numerator.min(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    if !sample(pct, rng) {
        return None;
    }
    let from_header = if d.from_header {
        Some(Duration::from_millis(first_number(
            req,
            "x-envoy-fault-delay-request",
        )?))
    } else {
        None
    };
    d.duration.or(from_header).filter(|d| !d.is_zero())
}

/// The abort's status for `req`, when its percentage is drawn: the configured one or, with
/// `header_abort`, `x-envoy-fault-abort-request` (200–599, else no abort), whose percentage
/// header may lower the numerator.
fn abort_status(config: &Fault, req: &RequestHead<'_>, rng: &mut Rng) -> Option<u16> {
    let a = config.abort.as_ref()?;
    let mut pct = a.percentage;
    if a.status.is_none() {
        // Only the first value counts; it may lower the configured numerator, never raise it.
        if let Some(n) = first_number(req, "x-envoy-fault-abort-request-percentage") {
            pct.numerator = pct.numerator.min(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    if !sample(pct, rng) {
        return None;
    }
    match a.status {
        Some(s) => Some(s),
        None => {
            let n = first_number(req, "x-envoy-fault-abort-request")?;
            u16::try_from(n).ok().filter(|s| (200..600).contains(s))
        }
    }
}

impl FaultStats {
    fn count_abort(&self, config: &Fault, c: &Counters, req: &RequestHead<'_>, stats: &mut Stats) {
        stats.store.inc(c.aborts_injected);
        self.per_cluster(config, c, req, "aborts_injected", stats);
    }

    /// Counts `name` under the request's `x-envoy-downstream-service-cluster` too, unless
    /// `disable_downstream_cluster_stats`.
    fn per_cluster(
        &self,
        config: &Fault,
        c: &Counters,
        req: &RequestHead<'_>,
        name: &str,
        stats: &mut Stats,
    ) {
        if !config.downstream_cluster_stats {
            return;
        }
        let Some(cluster) = header(req, "x-envoy-downstream-service-cluster") else {
            return;
        };
        let name = format!("{}{cluster}.{name}", c.prefix);
        let counter = match stats.store.find_counter(&name) {
            Some(k) => Some(k),
            None if self.downstream.get() < MAX_DOWNSTREAM_CLUSTERS => {
                self.downstream.set(self.downstream.get() + 1);
                Some(stats.store.counter(&name))
            }
            None => None,
        };
        if let Some(k) = counter {
            stats.store.inc(k);
        }
    }
}

/// The first value of header `name` as a number (Envoy reads only the first value of these
/// untrusted headers).
fn first_number(req: &RequestHead<'_>, name: &str) -> Option<u64> {
    let h = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))?;
    std::str::from_utf8(h.value).ok()?.trim().parse().ok()
}
