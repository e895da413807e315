//! The span reporters on the reactor. Zipkin's (Envoy's `ReporterImpl`): finished spans are
//! kept as JSON and POSTed as one array to the collector cluster when `MIN_FLUSH_SPANS` are
//! pending or every `FLUSH_INTERVAL`. Datadog's (dd-trace-cpp's `DatadogAgent`): spans are
//! kept as msgpack trace chunks and POSTed to the agent's `/v0.4/traces` every
//! `DD_FLUSH_INTERVAL` (or at once when `DD_MAX_SPANS` or `DD_MAX_BYTES` are pending); the
//! agent's answer brings the sampling rates later traces use. Each report has a connection of its own (`Tok::Trace`, never
//! pooled for requests) and a timeout (`TimerKey::TraceReport`). At most `MAX_IN_FLIGHT`
//! reports are in flight; a flush beyond that, or one that cannot connect, is dropped and
//! counted as failed, so a slow or absent collector never holds more than that many
//! batches. A proxy without tracing has no `Tracer`: no timer, no work.

use std::time::Duration;

use super::datadog::{Process, Rates};
use super::{End, Endpoint, Span};
use crate::cluster::checker;
use crate::cluster::oneshot::OneShot;
use crate::config::Provider;
use crate::context::Ctx;
use crate::reactor::{TimerKey, Tok};
use crate::stats::Counter;
use crate::util::Slab;

/// Envoy's runtime defaults `tracing.zipkin.min_flush_spans`, `flush_interval_ms` and
/// `request_timeout`.
pub const MIN_FLUSH_SPANS: usize = 5;
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// dd-trace-cpp's default flush interval and request timeout.
pub const DD_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
pub const DD_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A Datadog report is sent before its interval when this many spans, or bytes, wait (every
/// request is reported, so the batch must be bounded under load).
pub const DD_MAX_SPANS: usize = 1000;
pub const DD_MAX_BYTES: usize = 1 << 20;
/// Reports in flight at once, all reporters together.
pub const MAX_IN_FLIGHT: usize = 8;

/// Every reporter (one per distinct provider config, as Envoy shares a driver between
/// connection managers with the same config) and the reports in flight.
#[derive(Debug)]
pub struct Tracer {
    reporters: Vec<Reporter>,
    reports: Slab<Report>,
    next_gen: u64,
    /// The proxy's `localEndpoint` and `node_id` tag.
    pub endpoint: Endpoint,
    /// The process as Datadog spans name it.
    process: Process,
    /// Where a Zipkin span's JSON is written before it joins its batch.
    scratch: String,
    pub node_id: String,
    /// By listener: its connection manager's `http.<stat_prefix>.tracing.*` counters
    /// (`client_enabled`, `health_check`, `not_traceable`, `random_sampling`,
    /// `service_forced`), when it traces.
    hcm_stats: Vec<Option<[Counter; 5]>>,
}

#[derive(Debug)]
struct Reporter {
    cfg: Provider,
    /// The pending spans: Zipkin's JSON objects, comma-separated; Datadog's msgpack trace
    /// chunks.
    pending: Vec<u8>,
    count: usize,
    stats: Stats,
    /// The Datadog agent's latest sampling rates.
    rates: Rates,
}

#[derive(Debug)]
struct Report {
    req: OneShot,
    gen: u64,
    /// The reporter that sent it (its stats; a Datadog answer's rates).
    reporter: usize,
}

/// `tracing.zipkin.*` or `tracing.datadog.*`, Envoy's names (Datadog has no `spans_sent` or
/// `timer_flushed`).
#[derive(Debug, Clone, Copy)]
struct Stats {
    spans_sent: Option<Counter>,
    timer_flushed: Option<Counter>,
    reports_sent: Counter,
    reports_dropped: Counter,
    reports_failed: Counter,
}

impl Stats {
    fn of(st: &mut crate::stats::Store, cfg: &Provider) -> Stats {
        let zipkin = matches!(cfg, Provider::Zipkin(_));
        let p = if zipkin { "zipkin" } else { "datadog" };
        let mut c = |n: &str| st.counter(&format!("tracing.{p}.{n}"));
        if !zipkin {
            c("reports_skipped_no_cluster");
        }
        Stats {
            spans_sent: zipkin.then(|| c("spans_sent")),
            timer_flushed: zipkin.then(|| c("timer_flushed")),
            reports_sent: c("reports_sent"),
            reports_dropped: c("reports_dropped"),
            reports_failed: c("reports_failed"),
        }
    }
}

/// How a reporter sends: its interval, its answer's timeout, the status that means sent.
fn timing(cfg: &Provider) -> (Duration, Duration, u16) {
    match cfg {
        Provider::Zipkin(_) => (FLUSH_INTERVAL, REQUEST_TIMEOUT, 202),
        Provider::Datadog(_) => (DD_FLUSH_INTERVAL, DD_REQUEST_TIMEOUT, 200),
    }
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
            if !reporters.iter().any(|r| r.cfg == t.provider) {
                reporters.push(Reporter {
                    cfg: t.provider.clone(),
                    pending: Vec::new(),
                    count: 0,
                    stats: Stats::of(&mut ctx.stats.store, &t.provider),
                    rates: Rates::default(),
                });
            }
        }
        if reporters.is_empty() {
            return None;
        }
        let st = &mut ctx.stats.store;
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
        for (i, r) in reporters.iter().enumerate() {
            ctx.timers
                .arm(now + timing(&r.cfg).0, TimerKey::TraceFlush(i));
        }
        let runtime_id = String::from_utf8_lossy(&ctx.request_ids.uuid4_bytes()).into_owned();
        Some(Box::new(Tracer {
            reporters,
            reports: Slab::default(),
            next_gen: 0,
            endpoint: Endpoint {
                service_name: service_cluster.to_string(),
                ip: local_ip(),
            },
            node_id: node_id.to_string(),
            process: Process {
                runtime_id,
                pid: std::process::id(),
            },
            scratch: String::new(),
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

    /// The reporter for connection manager config `p`.
    pub fn reporter_of(&self, p: &Provider) -> Option<usize> {
        self.reporters.iter().position(|r| r.cfg == *p)
    }

    /// The Datadog agent's sampling rates as reporter `i` last heard them.
    pub fn rates(&self, i: usize) -> Option<&Rates> {
        self.reporters.get(i).map(|r| &r.rates)
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
        let full = match &r.cfg {
            Provider::Zipkin(z) => {
                t.scratch.clear();
                super::json(
                    &mut t.scratch,
                    span,
                    end,
                    &t.endpoint,
                    z.shared_span_context,
                );
                if r.count > 0 {
                    r.pending.push(b',');
                }
                r.pending.extend_from_slice(t.scratch.as_bytes());
                r.count += 1;
                r.count >= MIN_FLUSH_SPANS
            }
            Provider::Datadog(d) => {
                super::datadog::encode(&mut r.pending, span, end, &d.service, &t.process);
                r.count += 1;
                r.count >= DD_MAX_SPANS || r.pending.len() >= DD_MAX_BYTES
            }
        };
        if full {
            flush(t, ctx, span.reporter);
        }
    });
}

/// `TimerKey::TraceFlush(i)` fired: send what is pending, wait another interval.
pub fn on_flush_timer(ctx: &mut Ctx, i: usize) {
    with(ctx, |t, ctx| {
        let Some(r) = t.reporters.get(i) else {
            return;
        };
        let interval = timing(&r.cfg).0;
        if let Some(c) = r.stats.timer_flushed {
            ctx.stats.store.inc(c);
        }
        flush(t, ctx, i);
        let at = ctx.now() + interval;
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
    let stats = r.stats;
    if let Some(c) = stats.spans_sent {
        ctx.stats.store.add(c, r.count as u64);
    }
    let req = request(&r.cfg, &r.pending, r.count);
    r.pending.clear();
    r.count = 0;
    let (cluster, cluster_name) = (r.cfg.cluster(), r.cfg.cluster_name());
    let timeout = timing(&r.cfg).1;
    let keep_body = matches!(r.cfg, Provider::Datadog(_));
    if t.reports.len() >= MAX_IN_FLIGHT {
        log::debug!("tracing: {MAX_IN_FLIGHT} reports in flight; this one is dropped");
        ctx.stats.store.inc(stats.reports_failed);
        return;
    }
    let addr = ctx.clusters.get_mut(cluster).and_then(|cl| {
        let i = cl.pick(&mut ctx.rng)?;
        cl.hosts.get(i).map(|h| h.addr)
    });
    let Some(addr) = addr else {
        log::debug!("tracing: cluster {cluster_name} has no host; report dropped");
        ctx.stats.store.inc(stats.reports_failed);
        return;
    };
    let idx = t.reports.next_key();
    let sock = match checker::connect(ctx, cluster, addr, Tok::Trace(idx)) {
        Ok(s) => s,
        Err(e) => {
            log::debug!("tracing: connect to {addr}: {e}; report dropped");
            ctx.stats.store.inc(stats.reports_failed);
            return;
        }
    };
    t.next_gen += 1;
    let gen = t.next_gen;
    let mut req = OneShot::new(sock, req, false);
    if keep_body {
        req = req.keep_body();
    }
    let idx = t.reports.insert(Report {
        req,
        gen,
        reporter: i,
    });
    ctx.timers
        .arm(ctx.now() + timeout, TimerKey::TraceReport(idx, gen));
    drive_report(t, ctx, idx);
}

/// The report's request. Zipkin: `POST {collector_endpoint}` with the JSON array. Datadog:
/// `POST /v0.4/traces` with the msgpack array of trace chunks and dd-trace-cpp's headers
/// (the tracer named as baton).
fn request(cfg: &Provider, pending: &[u8], count: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(pending.len() + 300);
    let (path, host, ty): (&str, &str, &str) = match cfg {
        Provider::Zipkin(z) => (&z.endpoint, &z.hostname, "application/json"),
        Provider::Datadog(d) => ("/v0.4/traces", &d.hostname, "application/msgpack"),
    };
    let mut body = Vec::with_capacity(pending.len() + 5);
    match cfg {
        Provider::Zipkin(_) => {
            body.push(b'[');
            body.extend_from_slice(pending);
            body.push(b']');
        }
        Provider::Datadog(_) => {
            super::msgpack::array(&mut body, count);
            body.extend_from_slice(pending);
        }
    }
    h.extend_from_slice(b"POST ");
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    h.extend_from_slice(host.as_bytes());
    h.extend_from_slice(b"\r\ncontent-type: ");
    h.extend_from_slice(ty.as_bytes());
    if let Provider::Datadog(_) = cfg {
        h.extend_from_slice(b"\r\nx-datadog-trace-count: ");
        crate::util::push_dec(&mut h, count as u64);
        h.extend_from_slice(b"\r\ndatadog-meta-lang: rust\r\ndatadog-meta-tracer-version: ");
        h.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    }
    h.extend_from_slice(b"\r\ncontent-length: ");
    crate::util::push_dec(&mut h, body.len() as u64);
    h.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    h.extend_from_slice(&body);
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
            log::debug!("tracing: report timed out");
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

/// Report `idx` is over: Envoy counts the provider's success status (Zipkin 202, Datadog
/// 200) as sent, another status as dropped, no answer as failed. A Datadog agent's 200
/// brings its sampling rates (a body without them leaves the last ones).
fn end_report(t: &mut Tracer, ctx: &mut Ctx, idx: usize, outcome: Result<u16, ()>) {
    let Some(mut r) = t.reports.remove(idx) else {
        return;
    };
    let _ = ctx.registry.deregister(&mut r.req.sock);
    let Some(rep) = t.reporters.get_mut(r.reporter) else {
        return;
    };
    let ok = timing(&rep.cfg).2;
    let c = match outcome {
        Ok(s) if s == ok => {
            if let (Provider::Datadog(_), Some(rates)) = (&rep.cfg, Rates::parse(r.req.body())) {
                rep.rates = rates;
            }
            rep.stats.reports_sent
        }
        Ok(s) => {
            log::debug!("tracing: the collector answered {s}");
            rep.stats.reports_dropped
        }
        Err(()) => rep.stats.reports_failed,
    };
    ctx.stats.store.inc(c);
}
