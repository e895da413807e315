//! The Zipkin reporter on the reactor (Envoy's `ReporterImpl`): finished spans are kept as
//! JSON and POSTed as one array to the collector cluster when `MIN_FLUSH_SPANS` are pending
//! or every `FLUSH_INTERVAL`. Each report has a connection of its own (`Tok::Trace`, never
//! pooled for requests) and a timeout (`TimerKey::TraceReport`). At most `MAX_IN_FLIGHT`
//! reports are in flight; a flush beyond that, or one that cannot connect, is dropped and
//! counted as failed, so a slow or absent collector never holds more than that many
//! batches. A proxy without tracing has no `Tracer`: no timer, no work.

use std::time::Duration;

use super::{End, Endpoint, Span};
use crate::cluster::checker;
use crate::cluster::oneshot::OneShot;
use crate::config::Zipkin;
use crate::context::Ctx;
use crate::reactor::{TimerKey, Tok};
use crate::stats::Counter;
use crate::util::Slab;

/// Envoy's runtime defaults `tracing.zipkin.min_flush_spans`, `flush_interval_ms` and
/// `request_timeout`.
pub const MIN_FLUSH_SPANS: usize = 5;
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Reports in flight at once, all reporters together.
pub const MAX_IN_FLIGHT: usize = 8;

/// Every reporter (one per distinct Zipkin config, as Envoy shares a driver between
/// connection managers with the same config) and the reports in flight.
#[derive(Debug)]
pub struct Tracer {
    reporters: Vec<Reporter>,
    reports: Slab<Report>,
    next_gen: u64,
    /// The proxy's `localEndpoint` and `node_id` tag.
    pub endpoint: Endpoint,
    pub node_id: String,
    stats: Stats,
    /// By listener: its connection manager's `http.<stat_prefix>.tracing.*` counters
    /// (`client_enabled`, `health_check`, `not_traceable`, `random_sampling`,
    /// `service_forced`), when it traces.
    hcm_stats: Vec<Option<[Counter; 5]>>,
}

#[derive(Debug)]
struct Reporter {
    cfg: Zipkin,
    /// The pending spans' JSON objects, comma-separated.
    pending: String,
    count: usize,
}

#[derive(Debug)]
struct Report {
    req: OneShot,
    gen: u64,
}

/// `tracing.zipkin.*`, Envoy's names.
#[derive(Debug, Clone, Copy)]
struct Stats {
    spans_sent: Counter,
    timer_flushed: Counter,
    reports_sent: Counter,
    reports_dropped: Counter,
    reports_failed: Counter,
}

impl Tracer {
    /// The tracer of the listeners' connection managers; `None` when none traces.
    pub fn build(ctx: &mut Ctx, service_cluster: &str, node_id: &str) -> Option<Box<Tracer>> {
        let mut reporters: Vec<Reporter> = Vec::new();
        let mut prefixes = Vec::new();
        for l in &ctx.listeners {
            let h = l.http().filter(|h| h.hcm.tracing.is_some());
            prefixes.push(h.map(|h| h.hcm.stat_prefix.clone()));
            let Some(t) = h.and_then(|h| h.hcm.tracing.as_ref()) else {
                continue;
            };
            if !reporters.iter().any(|r| r.cfg == t.zipkin) {
                reporters.push(Reporter {
                    cfg: t.zipkin.clone(),
                    pending: String::new(),
                    count: 0,
                });
            }
        }
        if reporters.is_empty() {
            return None;
        }
        let st = &mut ctx.stats.store;
        let mut c = |n: &str| st.counter(&format!("tracing.zipkin.{n}"));
        let stats = Stats {
            spans_sent: c("spans_sent"),
            timer_flushed: c("timer_flushed"),
            reports_sent: c("reports_sent"),
            reports_dropped: c("reports_dropped"),
            reports_failed: c("reports_failed"),
        };
        let hcm_stats = prefixes
            .iter()
            .map(|p| {
                let p = p.as_ref()?;
                let names = [
                    "client_enabled",
                    "health_check",
                    "not_traceable",
                    "random_sampling",
                    "service_forced",
                ];
                Some(names.map(|n| st.counter(&format!("http.{p}.tracing.{n}"))))
            })
            .collect();
        let now = ctx.now();
        for i in 0..reporters.len() {
            ctx.timers
                .arm(now + FLUSH_INTERVAL, TimerKey::TraceFlush(i));
        }
        Some(Box::new(Tracer {
            reporters,
            reports: Slab::default(),
            next_gen: 0,
            endpoint: Endpoint {
                service_name: service_cluster.to_string(),
                ip: local_ip(),
            },
            node_id: node_id.to_string(),
            stats,
            hcm_stats,
        }))
    }

    /// The counter of a request's tracing decision on `listener` (Envoy's
    /// `chargeTracingStats`); a health check wins over the request id's reason.
    pub fn decision_counter(
        &self,
        listener: usize,
        reason: super::Reason,
        health_check: bool,
    ) -> Option<Counter> {
        let c = self.hcm_stats.get(listener)?.as_ref()?;
        let i = match (health_check, reason) {
            (true, _) => 1,
            (false, super::Reason::ClientForced) => 0,
            (false, super::Reason::NotTraceable) => 2,
            (false, super::Reason::Sampling) => 3,
            (false, super::Reason::ServiceForced) => 4,
        };
        c.get(i).copied()
    }

    /// Report `idx` of generation `gen` is still in flight (its timer is not stale).
    pub fn is_live(&self, idx: usize, gen: u64) -> bool {
        self.reports.get(idx).is_some_and(|r| r.gen == gen)
    }

    /// The reporter for connection manager config `z`.
    pub fn reporter_of(&self, z: &Zipkin) -> Option<usize> {
        self.reporters.iter().position(|r| r.cfg == *z)
    }
}

/// The host's first non-loopback address (Envoy's local address); `None` when it has none.
fn local_ip() -> Option<std::net::IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut v6 = None;
    for a in addrs {
        let Some(sa) = a.address else { continue };
        if let Some(v4) = sa.as_sockaddr_in() {
            let ip = v4.ip();
            if !ip.is_loopback() {
                return Some(ip.into());
            }
        } else if let Some(s6) = sa.as_sockaddr_in6() {
            let ip = s6.ip();
            if !ip.is_loopback() && v6.is_none() {
                v6 = Some(ip.into());
            }
        }
    }
    v6
}

/// Runs `f` with the tracer taken out of the context (it needs the context's registry,
/// timers, clusters and stats meanwhile).
fn with(ctx: &mut Ctx, f: impl FnOnce(&mut Tracer, &mut Ctx)) {
    if let Some(mut t) = ctx.tracer.take() {
        f(&mut t, ctx);
        ctx.tracer = Some(t);
    }
}

/// A finished, sampled span goes into its reporter's batch; a full batch is sent.
pub fn report(ctx: &mut Ctx, span: &Span, end: &End<'_>) {
    with(ctx, |t, ctx| {
        let Some(r) = t.reporters.get_mut(span.reporter) else {
            return;
        };
        if r.count > 0 {
            r.pending.push(',');
        }
        let shared = r.cfg.shared_span_context;
        super::json(&mut r.pending, span, end, &t.endpoint, shared);
        r.count += 1;
        if r.count >= MIN_FLUSH_SPANS {
            flush(t, ctx, span.reporter);
        }
    });
}

/// `TimerKey::TraceFlush(i)` fired: send what is pending, wait another interval.
pub fn on_flush_timer(ctx: &mut Ctx, i: usize) {
    with(ctx, |t, ctx| {
        if i >= t.reporters.len() {
            return;
        }
        ctx.stats.store.inc(t.stats.timer_flushed);
        flush(t, ctx, i);
        let at = ctx.now() + FLUSH_INTERVAL;
        ctx.timers.arm(at, TimerKey::TraceFlush(i));
    });
}

/// Sends reporter `i`'s pending spans as one report.
fn flush(t: &mut Tracer, ctx: &mut Ctx, i: usize) {
    let Some(r) = t.reporters.get_mut(i) else {
        return;
    };
    if r.count == 0 {
        return;
    }
    ctx.stats.store.add(t.stats.spans_sent, r.count as u64);
    let mut body = String::with_capacity(r.pending.len() + 2);
    body.push('[');
    body.push_str(&r.pending);
    body.push(']');
    r.pending.clear();
    r.count = 0;
    let cfg = r.cfg.clone();
    if t.reports.len() >= MAX_IN_FLIGHT {
        log::debug!("zipkin: {MAX_IN_FLIGHT} reports in flight; this one is dropped");
        ctx.stats.store.inc(t.stats.reports_failed);
        return;
    }
    let addr = ctx.clusters.get_mut(cfg.cluster).and_then(|cl| {
        let i = cl.pick(&mut ctx.rng)?;
        cl.hosts.get(i).map(|h| h.addr)
    });
    let Some(addr) = addr else {
        log::debug!(
            "zipkin: cluster {} has no host; report dropped",
            cfg.cluster_name
        );
        ctx.stats.store.inc(t.stats.reports_failed);
        return;
    };
    let idx = t.reports.next_key();
    let sock = match checker::connect(ctx, cfg.cluster, addr, Tok::Trace(idx)) {
        Ok(s) => s,
        Err(e) => {
            log::debug!("zipkin: connect to {addr}: {e}; report dropped");
            ctx.stats.store.inc(t.stats.reports_failed);
            return;
        }
    };
    t.next_gen += 1;
    let gen = t.next_gen;
    let idx = t.reports.insert(Report {
        req: OneShot::new(sock, request(&cfg, &body), false),
        gen,
    });
    ctx.timers
        .arm(ctx.now() + REQUEST_TIMEOUT, TimerKey::TraceReport(idx, gen));
    drive_report(t, ctx, idx);
}

/// The report's request: `POST {collector_endpoint}` with the JSON array.
fn request(cfg: &Zipkin, body: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(body.len() + 160);
    h.extend_from_slice(b"POST ");
    h.extend_from_slice(cfg.endpoint.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    h.extend_from_slice(cfg.hostname.as_bytes());
    h.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    crate::util::push_dec(&mut h, body.len() as u64);
    h.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    h.extend_from_slice(body.as_bytes());
    h
}

/// Readiness on report `idx`'s connection.
pub fn on_event(ctx: &mut Ctx, idx: usize) {
    with(ctx, |t, ctx| drive_report(t, ctx, idx));
}

/// `TimerKey::TraceReport(idx, gen)` fired: a report still in flight failed.
pub fn on_report_timer(ctx: &mut Ctx, idx: usize, gen: u64) {
    with(ctx, |t, ctx| {
        if t.reports.get(idx).is_some_and(|r| r.gen == gen) {
            log::debug!("zipkin: report timed out");
            end_report(t, ctx, idx, Err(()));
        }
    });
}

/// Moves report `idx`'s bytes as far as its socket allows; ends it when it is answered or
/// fails.
fn drive_report(t: &mut Tracer, ctx: &mut Ctx, idx: usize) {
    let Some(r) = t.reports.get_mut(idx) else {
        return;
    };
    if let Some(outcome) = r.req.pump() {
        end_report(t, ctx, idx, outcome);
    }
}

/// Report `idx` is over: Envoy counts a 202 as sent, another status as dropped, no answer
/// as failed.
fn end_report(t: &mut Tracer, ctx: &mut Ctx, idx: usize, outcome: Result<u16, ()>) {
    let Some(mut r) = t.reports.remove(idx) else {
        return;
    };
    let _ = ctx.registry.deregister(&mut r.req.sock);
    let c = match outcome {
        Ok(202) => t.stats.reports_sent,
        Ok(s) => {
            log::debug!("zipkin: the collector answered {s}");
            t.stats.reports_dropped
        }
        Err(()) => t.stats.reports_failed,
    };
    ctx.stats.store.inc(c);
}
