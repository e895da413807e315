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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultAbort, FaultDelay, Fraction};

    const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    fn setup() -> (FaultStats, Stats) {
        let mut stats = Stats::new(&[], &[]);
        let prefix = "http.t.fault.".to_string();
        let mut c = |n: &str| stats.store.counter(&format!("{prefix}{n}"));
        let (aborts_injected, delays_injected, faults_overflow) = (
            c("aborts_injected"),
            c("delays_injected"),
            c("faults_overflow"),
        );
        let active_faults = stats
            .store
            .gauge("http.t.fault.active_faults", crate::stats::Import::Never);
        let counters = Counters {
            prefix,
            aborts_injected,
            delays_injected,
            faults_overflow,
            active_faults,
        };
        let faults = FaultStats {
            by_filter: HashMap::from([((0, 0), counters)]),
            downstream: Cell::new(0),
        };
        (faults, stats)
    }

    fn fault(delay: Option<FaultDelay>, abort: Option<u16>) -> Fault {
        Fault {
            abort: abort.map(|s| FaultAbort {
                status: Some(s),
                percentage: ALL,
            }),
            delay,
            headers: Vec::new(),
            downstream_nodes: Vec::new(),
            max_active_faults: None,
            downstream_cluster_stats: true,
        }
    }

    fn fixed(ms: u64, percentage: Fraction) -> Option<FaultDelay> {
        Some(FaultDelay {
            from_header: false,
            duration: Some(Duration::from_millis(ms)),
            percentage,
        })
    }

    /// `f` on a GET with `headers` (raw header lines).
    fn with_req<R>(headers: &str, f: impl FnOnce(&RequestHead<'_>) -> R) -> R {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        let mut slots = crate::http::codec::header_slots();
        let Ok(Some(req)) = crate::http::codec::parse_request(raw.as_bytes(), &mut slots) else {
            panic!("parse");
        };
        f(&req)
    }

    fn stat(stats: &Stats, n: &str) -> i128 {
        stats.store.get(&format!("http.t.fault.{n}")).unwrap_or(-1)
    }

    #[test]
    fn a_delay_comes_first_and_its_abort_is_drawn_after_it() {
        let (faults, mut stats) = setup();
        let mut rng = Rng::with_seed(1);
        let c = fault(fixed(300, ALL), Some(503));
        let got = with_req("", |r| {
            on_request(&c, (0, 0), r, &faults, &mut stats, &mut rng)
        });
        let Some(Injected::Delay(d, g)) = got else {
            panic!("{got:?}");
        };
        assert_eq!(d, Duration::from_millis(300));
        assert_eq!(stat(&stats, "active_faults"), 1);
        let after = with_req("", |r| {
            after_delay(&c, (0, 0), r, &faults, &mut stats, &mut rng)
        });
        assert_eq!(after, Some(503));
        release(g, &mut stats);
        assert_eq!(stat(&stats, "active_faults"), 0);
        assert_eq!(stat(&stats, "delays_injected"), 1);
        assert_eq!(stat(&stats, "aborts_injected"), 1);
        // No abort configured: the request goes on after its delay.
        let c = fault(fixed(300, ALL), None);
        let after = with_req("", |r| {
            after_delay(&c, (0, 0), r, &faults, &mut stats, &mut rng)
        });
        assert_eq!(after, None);
    }

    #[test]
    fn a_zero_percentage_never_delays() {
        let (faults, mut stats) = setup();
        let mut rng = Rng::with_seed(2);
        let never = Fraction {
            numerator: 0,
            denominator: 100,
        };
        let c = fault(fixed(300, never), None);
        for _ in 0..1000 {
            let got = with_req("", |r| {
                on_request(&c, (0, 0), r, &faults, &mut stats, &mut rng)
            });
            assert_eq!(got, None);
        }
        assert_eq!(stat(&stats, "delays_injected"), 0);
    }

    #[test]
    fn a_header_delay_reads_the_requests_milliseconds_and_percentage() {
        let (faults, mut stats) = setup();
        let mut rng = Rng::with_seed(3);
        let header = |duration: Option<u64>| {
            fault(
                Some(FaultDelay {
                    from_header: true,
                    duration: duration.map(Duration::from_millis),
                    percentage: ALL,
                }),
                None,
            )
        };
        let mut delay_of = |c: &Fault, h: &str| {
            let got = with_req(h, |r| {
                on_request(c, (0, 0), r, &faults, &mut stats, &mut rng)
            });
            match got {
                Some(Injected::Delay(d, g)) => {
                    release(g, &mut stats);
                    Some(d.as_millis())
                }
                None => None,
                Some(other) => panic!("{other:?}"),
            }
        };
        let c = header(None);
        assert_eq!(
            delay_of(&c, "x-envoy-fault-delay-request: 250\r\n"),
            Some(250)
        );
        assert_eq!(delay_of(&c, ""), None);
        assert_eq!(delay_of(&c, "x-envoy-fault-delay-request: soon\r\n"), None);
        assert_eq!(delay_of(&c, "x-envoy-fault-delay-request: 0\r\n"), None);
        // Only the first value counts.
        let two = "x-envoy-fault-delay-request: 40\r\nx-envoy-fault-delay-request: 90\r\n";
        assert_eq!(delay_of(&c, two), Some(40));
        // The percentage header may lower the configured share, not raise it.
        let none =
            "x-envoy-fault-delay-request: 250\r\nx-envoy-fault-delay-request-percentage: 0\r\n";
        assert_eq!(delay_of(&c, none), None);
        // The runtime's duration replaces the header's, which must still be there.
        let c = header(Some(70));
        assert_eq!(
            delay_of(&c, "x-envoy-fault-delay-request: 250\r\n"),
            Some(70)
        );
        assert_eq!(delay_of(&c, ""), None);
        // A fixed delay ignores the headers.
        let c = fault(fixed(30, ALL), None);
        assert_eq!(delay_of(&c, none), Some(30));
        // An enormous header is a delay, not a failure (the core bounds it in time).
        let huge = format!("x-envoy-fault-delay-request: {}\r\n", u64::MAX);
        let c = header(None);
        assert_eq!(delay_of(&c, &huge), Some(u128::from(u64::MAX)));
    }

    #[test]
    fn max_active_faults_counts_requests_in_their_delay() {
        let (faults, mut stats) = setup();
        let mut rng = Rng::with_seed(4);
        let c = Fault {
            max_active_faults: Some(1),
            ..fault(fixed(300, ALL), Some(503))
        };
        let go = |stats: &mut Stats, rng: &mut Rng| {
            with_req("", |r| on_request(&c, (0, 0), r, &faults, stats, rng))
        };
        let Some(Injected::Delay(_, g)) = go(&mut stats, &mut rng) else {
            panic!("first delay");
        };
        // Full: neither the delay nor the abort starts, each counted as an overflow.
        assert_eq!(go(&mut stats, &mut rng), None);
        release(g, &mut stats);
        assert!(matches!(
            go(&mut stats, &mut rng),
            Some(Injected::Delay(..))
        ));
        assert_eq!(stat(&stats, "faults_overflow"), 2);
        assert_eq!(stat(&stats, "delays_injected"), 2);
        assert_eq!(stat(&stats, "aborts_injected"), 0);
    }

    #[test]
    fn a_delay_applies_only_to_matching_downstream_nodes() {
        let (faults, mut stats) = setup();
        let mut rng = Rng::with_seed(5);
        let c = Fault {
            downstream_nodes: vec!["node-a".into()],
            ..fault(fixed(300, ALL), None)
        };
        let mut go = |h: &str| {
            with_req(h, |r| {
                on_request(&c, (0, 0), r, &faults, &mut stats, &mut rng)
            })
        };
        assert_eq!(go(""), None);
        assert_eq!(go("x-envoy-downstream-service-node: node-b\r\n"), None);
        let a = "x-envoy-downstream-service-node: node-a\r\nx-envoy-downstream-service-cluster: web\r\n";
        assert!(matches!(go(a), Some(Injected::Delay(..))));
        assert_eq!(stats.store.get("http.t.fault.web.delays_injected"), Some(1));
    }
}
