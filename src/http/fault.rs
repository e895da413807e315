//! Envoy's fault injection filter (`envoy.filters.http.fault`), aborts only: whether a request
//! is answered with an injected status instead of being routed, and the filters' counters.

use std::cell::Cell;
use std::collections::HashMap;

use super::codec::RequestHead;
use super::filters::{header, sample};
use crate::config::{Fault, HttpFilterKind};
use crate::route::matcher::header_matches;
use crate::stats::{Counter, Stats};
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
    faults_overflow: Counter,
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
    /// `delays_injected`, `faults_overflow`, `response_rl_injected` and the gauge
    /// `active_faults` (delays and rate limits are refused at load, and an abort is answered
    /// at once, so those stay 0).
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
                    let counters = Counters {
                        aborts_injected: c("aborts_injected"),
                        faults_overflow: c("faults_overflow"),
                        prefix: prefix.clone(),
                    };
                    c("delays_injected");
                    c("response_rl_injected");
                    stats.store.gauge(
                        &format!("{prefix}active_faults"),
                        crate::stats::Import::Never,
                    );
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

/// The status filter `fi` of listener `l` injects with `config` (its own, or the route's), or
/// `None` to let the request on. Envoy's order: the request must match `downstream_nodes` and
/// `headers`; the abort's percentage is drawn; its status is the configured one or, with
/// `header_abort`, `x-envoy-fault-abort-request` (200–599, else no abort).
pub(super) fn abort(
    config: &Fault,
    (l, fi): (usize, usize),
    req: &RequestHead<'_>,
    counters: &FaultStats,
    stats: &mut Stats,
    rng: &mut Rng,
) -> Option<u16> {
    let a = config.abort.as_ref()?;
    if !config.downstream_nodes.is_empty() {
        let node = header(req, "x-envoy-downstream-service-node")?;
        if !config.downstream_nodes.iter().any(|n| n == node) {
            return None;
        }
    }
    if !config.headers.iter().all(|m| header_matches(m, req)) {
        return None;
    }
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
    let status = match a.status {
        Some(s) => s,
        None => {
            let n = first_number(req, "x-envoy-fault-abort-request")?;
            u16::try_from(n).ok().filter(|s| (200..600).contains(s))?
        }
    };
    let c = counters.by_filter.get(&(l, fi))?;
    // An abort is answered at once, so no fault of this process is still active when the next
    // request comes: only a limit of 0 is ever reached.
    if config.max_active_faults == Some(0) {
        stats.store.inc(c.faults_overflow);
        return None;
    }
    stats.store.inc(c.aborts_injected);
    if config.downstream_cluster_stats {
        if let Some(cluster) = header(req, "x-envoy-downstream-service-cluster") {
            let name = format!("{}{cluster}.aborts_injected", c.prefix);
            let known = stats.store.find_counter(&name);
            let made = counters.downstream.get();
            let counter = match known {
                Some(k) => Some(k),
                None if made < MAX_DOWNSTREAM_CLUSTERS => {
                    counters.downstream.set(made + 1);
                    Some(stats.store.counter(&name))
                }
                None => None,
            };
            if let Some(k) = counter {
                stats.store.inc(k);
            }
        }
    }
    Some(status)
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
