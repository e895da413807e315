//! The data path's one door to stats and access logs: small hook calls at accept/close,
//! request start/end, upstream connect/fail/close and DNS updates. Each hook is a few array
//! writes through indices resolved at start-up; only a listener with an access log captures
//! header values.

use std::net::SocketAddr;

use crate::access_log::{Captured, Flags, Rq, Slots, TlsInfo, FLUSH_EVERY};
use crate::cluster::breakers::Resource;
use crate::cluster::outlier::Outcome;
use crate::cluster::Ejection;
use crate::context::Ctx;
use crate::http::codec::RequestHead;
use crate::reactor::TimerKey;
use crate::stats::Stats;

/// A client connection was accepted on unit `l` (`http`: it counts for the unit's
/// connection manager too; else that waits for `chain_chosen`).
#[inline]
pub fn cx_open(ctx: &mut Ctx, l: usize, http: bool) {
    ctx.stats.cx_open(l, http);
}

/// The ClientHello chose a connection's filter chain, served by unit `l`.
#[inline]
pub fn chain_chosen(ctx: &mut Ctx, l: usize) {
    ctx.stats.cx_open_http(l);
}

/// A client connection on unit `l` closed (`http`: it counted for its connection manager).
#[inline]
pub fn cx_close(ctx: &mut Ctx, l: usize, http: bool) {
    ctx.stats.cx_close(l, http);
}

/// A client connection on listener `l` was handed to the new process: no longer active
/// here, and not destroyed either.
#[inline]
pub fn cx_moved(ctx: &mut Ctx, l: usize) {
    ctx.stats.cx_moved(l);
}

/// `n` response-body bytes were spliced to a client of listener `l`.
#[inline]
pub fn spliced(ctx: &mut Ctx, l: usize, n: usize) {
    ctx.stats.spliced(l, n as u64);
}

/// A TLS event on a client connection of listener `l` (handshake done or failed).
#[inline]
pub fn tls_news(ctx: &mut Ctx, l: usize, news: crate::tls::News) {
    ctx.stats.tls_news(l, news);
}

/// A TLS event on an upstream connection of cluster `c` (handshake done or failed).
#[inline]
pub fn upstream_tls_news(ctx: &mut Ctx, c: usize, news: crate::tls::News) {
    ctx.stats.cluster_tls_news(c, news);
}

/// A client's TLS handshake on listener `l` did not finish in time.
#[inline]
pub fn tls_timeout(ctx: &mut Ctx, l: usize) {
    ctx.stats.tls_timeout(l);
}

/// A request head was parsed (or rejected: `req` None): counts it and starts its record.
/// `peer` is the client (a PROXY header's) and the socket's peer (the direct one).
/// `conn` is what the record takes from its connection: its number, local address and TLS
/// session. The record is built in one expression, straight into the caller's place (built
/// first and then changed, it was copied out whole).
pub fn begin(
    ctx: &mut Ctx,
    l: usize,
    (peer, direct): (SocketAddr, SocketAddr),
    minor: u8,
    req: Option<&RequestHead<'_>>,
    conn: (u64, Option<SocketAddr>, Option<std::rc::Rc<TlsInfo>>),
) -> Rq {
    if let Some(Some(h)) = ctx.stats.http.get(l).copied() {
        ctx.stats.store.inc(h.downstream_rq_total);
        ctx.stats.store.gauge_add(h.downstream_rq_active, 1);
    }
    // The access log's downstream address is the trusted client address (Envoy's rules).
    let http = ctx.listeners.get(l).and_then(|lr| lr.http());
    let from = match (req, http) {
        (Some(req), Some(h)) => Some(crate::http::request::origin(req.headers, peer, &h.hcm)),
        _ => None,
    };
    let mut cap = None;
    if let Some(mut c) = ctx.access_logs.captured(l) {
        if let (Some(req), Some(from), Some(h), Some(slots)) = (
            req,
            from,
            ctx.listeners.get(l).and_then(|lr| lr.http()),
            ctx.access_logs.slots(l),
        ) {
            // The scheme as the connection manager leaves it (`secure_scheme`).
            let conn_secure = req.secure || conn.2.is_some();
            let scheme = if crate::http::request::secure_scheme(req.headers, &h.hcm, conn_secure) {
                "https"
            } else {
                "http"
            };
            let parts = (req.method, req.path, req.host, req.headers);
            fill_request(&mut c, slots, parts, scheme);
            as_mutated(slots, &mut c, req.headers, (direct, scheme), from, &h.hcm);
        }
        cap = Some(c);
    }
    let (conn_id, local, tls) = conn;
    Rq {
        direct_peer: direct,
        conn_id,
        local,
        tls,
        cap,
        ..Rq::new(ctx.now(), l, from.map_or(peer, |o| o.client), minor)
    }
}

/// A TCP proxy connection on listener `l` begins: counted (`tcp.<stat_prefix>.
/// downstream_cx_total`), and its record started (with the access log's start time when the
/// listener logs).
pub fn tcp_begin(ctx: &mut Ctx, l: usize, peer: SocketAddr) -> Rq {
    ctx.stats.tcp_begin(l);
    let mut rq = Rq::new(ctx.now(), l, peer, 1);
    rq.cap = ctx.access_logs.captured(l);
    rq
}

/// Envoy's access log sees the request headers after its connection manager changed them:
/// `x-forwarded-for` with the peer appended (`use_remote_address`), `x-forwarded-proto`,
/// `x-envoy-internal`, `x-envoy-external-address`, and an external request's control headers
/// gone. The captured values are made to match.
fn as_mutated(
    slots: &Slots,
    c: &mut Captured,
    headers: &[httparse::Header<'_>],
    (peer, scheme): (SocketAddr, &str),
    from: crate::http::request::Origin,
    hcm: &crate::config::HttpConnectionManager,
) {
    for (i, name) in slots.req.iter().enumerate() {
        let mut text = [0u8; 48];
        match name.as_str() {
            "x-forwarded-for" if hcm.use_remote_address => {
                let addr = ip_text(peer, &mut text);
                c.put_joined(
                    false,
                    i,
                    ", ",
                    values(headers, name).chain(std::iter::once(addr)),
                );
            }
            "x-forwarded-proto"
                if crate::http::request::replace_proto(hcm) || c.req(i).is_none() =>
            {
                c.put(false, i, one(scheme))
            }
            "x-envoy-internal" if from.internal => c.put(false, i, one("true")),
            "x-envoy-internal" => c.clear_req(i),
            "x-envoy-external-address" if from.edge => {
                c.put(false, i, std::iter::once(ip_text(from.client, &mut text)))
            }
            n if !from.internal && crate::http::request::stripped(n, from.edge) => c.clear_req(i),
            _ => {}
        }
    }
}

/// `a`'s address as text in `buf` (no allocation: this runs for every logged request).
fn ip_text(a: SocketAddr, buf: &mut [u8; 48]) -> &[u8] {
    use std::io::Write;
    let mut w = &mut buf[..];
    let room = w.len();
    let n = match write!(w, "{}", a.ip()) {
        Ok(()) => room - w.len(),
        Err(_) => 0,
    };
    buf.get(..n).unwrap_or_default()
}

/// The request values a log format prints (its capture slots), from a request's parts.
/// `(method, path, host, headers)`, and its scheme.
pub fn capture_request(slots: &Slots, req: Parts<'_>, scheme: &str) -> Captured {
    let mut c = Captured::new(slots);
    fill_request(&mut c, slots, req, scheme);
    c
}

/// A request's method, path, host and headers.
pub type Parts<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a [httparse::Header<'a>],
);

/// `capture_request` into an empty record.
fn fill_request(c: &mut Captured, slots: &Slots, req: Parts<'_>, scheme: &str) {
    let (method, path, host, headers) = req;
    for (i, name) in slots.req.iter().enumerate() {
        match name.as_str() {
            ":method" => c.put(false, i, one(method)),
            ":path" => c.put(false, i, one(path)),
            ":authority" | "host" => c.put(false, i, host.into_iter().flat_map(one)),
            ":scheme" => c.put(false, i, one(scheme)),
            n => c.put(false, i, values(headers, n)),
        }
    }
}

/// Records an x-request-id baton generated where the access log captures that header.
pub fn generated_request_id(ctx: &Ctx, l: usize, rq: &mut Rq, id: &[u8]) {
    let (Some(slots), Some(cap)) = (ctx.access_logs.slots(l), rq.cap.as_mut()) else {
        return;
    };
    // The generated id is what the upstream saw (at the edge it replaced the client's).
    if let Some(i) = slots.req.iter().position(|n| n == "x-request-id") {
        cap.put(false, i, std::iter::once(id));
    }
}

/// Tracing set the request's id and B3 headers: the access log sees them as the upstream
/// did (Envoy's tracer writes them into the request's header map).
pub fn traced(ctx: &Ctx, l: usize, rq: &mut Rq, t: &crate::tracing::Inject) {
    replace_req(ctx, l, rq, |name| t.value(name));
}

/// The connection manager normalised the path (`normalize_path`, `merge_slashes`): the log's
/// `:path` is the new one, as Envoy's access log reads the header map the manager changed.
pub fn request_changed(ctx: &Ctx, l: usize, rq: &mut Rq, path: Option<&str>, host: Option<&str>) {
    replace_req(ctx, l, rq, |name| match name {
        ":path" => path,
        ":authority" | "host" => host,
        _ => None,
    });
}

/// A route rewrote the path or host: the log sees the rewritten `:path` and `:authority`
/// and the new `x-envoy-original-path`, as Envoy's access log sees the router's changes.
pub fn rewritten(ctx: &Ctx, l: usize, rq: &mut Rq, r: &crate::http::request::Rewritten) {
    replace_req(ctx, l, rq, |name| match name {
        ":path" => r.path.as_deref(),
        ":authority" | "host" => r.host.as_deref(),
        "x-envoy-original-path" => r.original_path.as_deref(),
        _ => None,
    });
}

/// Replaces the captured request values the access log shows where `value` names a new one
/// for a captured name (the connection manager or the router changed that header).
fn replace_req<'v>(ctx: &Ctx, l: usize, rq: &mut Rq, value: impl Fn(&str) -> Option<&'v str>) {
    let (Some(slots), Some(cap)) = (ctx.access_logs.slots(l), rq.cap.as_mut()) else {
        return;
    };
    for (i, name) in slots.req.iter().enumerate() {
        if let Some(v) = value(name) {
            cap.put(false, i, one(v));
        }
    }
}

/// The router forwarded the request: the control headers it consumes are gone from what the
/// access log sees, as in Envoy.
pub fn routed(ctx: &Ctx, l: usize, rq: &mut Rq) {
    let (Some(slots), Some(cap)) = (ctx.access_logs.slots(l), rq.cap.as_mut()) else {
        return;
    };
    for (i, name) in slots.req.iter().enumerate() {
        if crate::http::request::router_consumed(name) {
            cap.clear_req(i);
        }
    }
}

fn one(v: &str) -> std::iter::Once<&[u8]> {
    std::iter::once(v.as_bytes())
}

/// Every value of header `name`, in order.
fn values<'a>(hdrs: &'a [httparse::Header<'a>], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    hdrs.iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The upstream response head arrived: its status, and the headers a format prints.
pub fn response_head(ctx: &Ctx, rq: &mut Rq, status: u16, hdrs: &[httparse::Header<'_>]) {
    rq.status = status;
    if let (Some(slots), Some(c)) = (ctx.access_logs.slots(rq.listener), rq.cap.as_mut()) {
        for (i, name) in slots.resp.iter().enumerate() {
            c.put(true, i, values(hdrs, name));
        }
    }
}

/// The upstream response's trailers (a chunked trailer section's lines): the ones a format
/// prints (`%TRAILER(x)%`, the gRPC status filter).
pub fn response_trailers(ctx: &Ctx, rq: &mut Rq, trailers: &[u8]) {
    if let (Some(slots), Some(c)) = (ctx.access_logs.slots(rq.listener), rq.cap.as_mut()) {
        for (i, name) in slots.resp.iter().enumerate() {
            if let Some(n) = name.strip_prefix(crate::access_log::format::TRAILER_SLOT) {
                let fields = crate::http::codec::trailer_fields(trailers);
                c.put(
                    true,
                    i,
                    fields
                        .filter(|(k, _)| k.eq_ignore_ascii_case(n.as_bytes()))
                        .map(|(_, v)| v),
                );
            }
        }
    }
}

/// A request ends (response complete, failed, or the client left): stats by status class,
/// per-host outcome, and the access-log line. The record is left where it is (its caller's
/// exchange is reused) without what it owns on the heap.
pub fn end(ctx: &mut Ctx, rq: &mut Rq) {
    rq.end = Some(ctx.now());
    // A request that ends in its fault delay (the client left) gives its active fault back.
    if let Some(g) = rq.active_fault.take() {
        crate::http::fault::release(g, &mut ctx.stats);
    }
    if rq.span.is_some() {
        crate::tracing::http::end(ctx, rq);
    }
    let class = Stats::class(rq.status);
    // A TCP proxy connection is no request: it counts in neither the request classes nor a
    // host's request outcomes.
    let tcp = ctx
        .listeners
        .get(rq.listener)
        .is_some_and(|l| l.tcp().is_some());
    if let Some(Some(h)) = ctx.stats.http.get(rq.listener).copied() {
        let st = &mut ctx.stats.store;
        st.gauge_add(h.downstream_rq_active, -1);
        if let Some(k) = class {
            st.inc(h.downstream_rq_class[k]);
        }
        if rq.flags.has(Flags::NR) {
            st.inc(h.no_route);
        }
    }
    if let (Some(c), Some(addr), false) = (rq.cluster, rq.upstream, tcp) {
        upstream_status(ctx, c, addr, rq.status);
    }
    if ctx.access_logs.slots(rq.listener).is_some() {
        let names = log_names(&ctx.clusters, &ctx.listeners, rq, tcp);
        if ctx.access_logs.log(rq, &names, ctx.now()) && ctx.access_logs.want_flush_tick() {
            ctx.timers.arm(ctx.now() + FLUSH_EVERY, TimerKey::Tick);
        }
        if let Some(c) = rq.cap.take() {
            ctx.access_logs.put_captured(c);
        }
    }
    // What the record owns goes now, as if it had been dropped here.
    rq.tls = None;
    rq.local_body = None;
}

/// The names a request's access-log line (or local reply format) reads: its cluster's and
/// route's, and whether it is a TCP proxy connection's. It borrows only the context's clusters
/// and listeners, so the access logs can be written while it is held.
pub fn log_names<'a>(
    clusters: &'a [crate::cluster::ClusterRt],
    listeners: &'a [crate::context::ListenerRt],
    rq: &Rq,
    tcp: bool,
) -> crate::access_log::Names<'a> {
    let cluster = rq
        .cluster
        .and_then(|c| clusters.get(c))
        .map(|c| c.cfg.name.as_str());
    let route = rq
        .route
        .and_then(|(vh, r)| listeners.get(rq.listener)?.http()?.router.get(vh, r))
        .map(|m| m.route.name.as_str());
    crate::access_log::Names {
        cluster,
        route,
        tcp,
    }
}

/// The periodic tick: write buffered access-log lines.
pub fn on_tick(ctx: &mut Ctx) {
    if ctx.access_logs.on_tick() {
        ctx.timers.arm(ctx.now() + FLUSH_EVERY, TimerKey::Tick);
    }
    let dropped = ctx.access_logs.take_dropped();
    if dropped > 0 {
        ctx.stats.access_log_dropped(dropped);
    }
}

/// A request is sent to host `addr` of cluster `c`; `fresh` when it waits for a new
/// connection (Envoy's pending request).
pub fn upstream_rq(ctx: &mut Ctx, c: usize, addr: SocketAddr, fresh: bool) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.upstream_rq_total);
        if fresh {
            ctx.stats.store.inc(cs.upstream_rq_pending_total);
        }
    }
    if let Some(h) = ctx.clusters.get_mut(c).and_then(|cl| cl.host_mut(addr)) {
        h.stats.rq_total += 1;
    }
}

/// A request to host `addr` of cluster `c` ended with `status` (0: no response): its class
/// counter and the host's success or error count.
pub fn upstream_status(ctx: &mut Ctx, c: usize, addr: SocketAddr, status: u16) {
    if let (Some(cs), Some(k)) = (ctx.stats.clusters.get(c).copied(), Stats::class(status)) {
        if let Some(ctr) = k.checked_sub(1).and_then(|i| cs.upstream_rq_class.get(i)) {
            ctx.stats.store.inc(*ctr);
        }
    }
    if let Some(h) = ctx.clusters.get_mut(c).and_then(|cl| cl.host_mut(addr)) {
        if status >= 500 || status == 0 {
            h.stats.rq_error += 1;
        } else {
            h.stats.rq_success += 1;
        }
    }
}

/// The route timeout fired for a request to cluster `c`.
pub fn upstream_rq_timeout(ctx: &mut Ctx, c: usize, addr: SocketAddr) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.upstream_rq_timeout);
    }
    if let Some(h) = ctx.clusters.get_mut(c).and_then(|cl| cl.host_mut(addr)) {
        h.stats.rq_timeout += 1;
    }
    outlier(ctx, c, addr, Outcome::Timeout);
}

/// A new upstream connection to `addr` for cluster `c` was started.
pub fn upstream_cx_open(ctx: &mut Ctx, c: usize, addr: SocketAddr) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.upstream_cx_total);
        ctx.stats.store.gauge_add(cs.upstream_cx_active, 1);
    }
    if let Some(h) = ctx.clusters.get_mut(c).and_then(|cl| cl.host_mut(addr)) {
        h.stats.cx_total += 1;
        h.stats.cx_active += 1;
    }
}

/// An upstream connection of cluster `c` closed.
pub fn upstream_cx_close(ctx: &mut Ctx, c: usize, addr: SocketAddr) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.upstream_cx_destroy);
        ctx.stats.store.gauge_add(cs.upstream_cx_active, -1);
    }
    if let Some(h) = ctx.clusters.get_mut(c).and_then(|cl| cl.host_mut(addr)) {
        h.stats.cx_active -= 1;
    }
}

/// Connecting to `addr` failed (refused, unreachable) or timed out.
pub fn upstream_connect_fail(ctx: &mut Ctx, c: usize, addr: SocketAddr, timeout: bool) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.upstream_cx_connect_fail);
        if timeout {
            ctx.stats.store.inc(cs.upstream_cx_connect_timeout);
        }
    }
    outlier(ctx, c, addr, Outcome::ConnectFailed);
    let Some(cl) = ctx.clusters.get_mut(c) else {
        return;
    };
    let name = cl.cfg.name.clone();
    if let Some(h) = cl.host_mut(addr) {
        h.stats.cx_connect_fail += 1;
        if h.connect_outcome(false) {
            let how = if timeout { "timed out" } else { "failed" };
            log::warn!(
                "cluster {name}: connecting to {addr} {how} (logged again when it recovers)"
            );
        }
    }
}

/// Outlier detection hears an attempt's outcome on host `addr` of cluster `c`: counters,
/// and an ejection with its stats and log line when one is due. Nothing without
/// `outlier_detection`.
pub fn outlier(ctx: &mut Ctx, c: usize, addr: SocketAddr, o: Outcome) {
    let now = ctx.now();
    let Some(cl) = ctx.clusters.get_mut(c) else {
        return;
    };
    if cl.cfg.outlier_detection.is_none() {
        return;
    }
    let found = cl.outlier_record(addr, o, now, &mut ctx.rng);
    for (kind, e) in found.into_iter().flatten() {
        outlier_detected(ctx, c, addr, kind, e);
    }
}

/// A detection's stats (`ejections_detected_*`, `_enforced_*`, `_overflow`), the active
/// gauge, membership, and a log line for an ejection.
fn outlier_detected(
    ctx: &mut Ctx,
    c: usize,
    addr: SocketAddr,
    kind: crate::cluster::outlier::Kind,
    e: Ejection,
) {
    if let Some(Some(st)) = ctx.stats.outlier.get(c).copied() {
        let s = &mut ctx.stats.store;
        s.inc(st.ejections_detected[kind.index()]);
        match e {
            Ejection::Ejected(_) => {
                s.inc(st.ejections_enforced[kind.index()]);
                s.inc(st.ejections_enforced_total);
            }
            Ejection::Overflow => s.inc(st.ejections_overflow),
            Ejection::NotEnforced => {}
        }
    }
    if let (Ejection::Ejected(t), Some(cl)) = (e, ctx.clusters.get(c)) {
        log::info!(
            "cluster {}: host {addr} ejected by outlier detection ({}) for {t:?}",
            cl.cfg.name,
            kind.name()
        );
    }
    outlier_gauge(ctx, c);
}

/// `outlier_detection.ejections_active` and the membership gauges after a change.
fn outlier_gauge(ctx: &mut Ctx, c: usize) {
    let n = ctx
        .clusters
        .get(c)
        .map_or(0, |cl| cl.ejected_count() as i64);
    if let Some(Some(st)) = ctx.stats.outlier.get(c).copied() {
        ctx.stats.store.set(st.ejections_active, n);
    }
    membership(ctx, c);
}

/// Cluster `c`'s outlier detection interval: ejections whose time is up end, success rates
/// are judged. Returns when the next interval is due (None without `outlier_detection`).
pub fn outlier_interval(ctx: &mut Ctx, c: usize) -> Option<std::time::Instant> {
    let now = ctx.now();
    let cl = ctx.clusters.get_mut(c)?;
    let every = cl.cfg.outlier_detection.as_ref()?.interval;
    let name = cl.cfg.name.clone();
    let (back, found) = cl.outlier_interval(now, &mut ctx.rng);
    for addr in &back {
        log::info!("cluster {name}: host {addr} back from outlier ejection");
    }
    for (addr, kind, e) in found {
        outlier_detected(ctx, c, addr, kind, e);
    }
    if !back.is_empty() {
        outlier_gauge(ctx, c);
    }
    Some(now + every)
}

/// An active health check of `addr` passed: an ejected host comes back (Envoy's
/// `successful_active_health_check_uneject_host`).
pub fn outlier_check_passed(ctx: &mut Ctx, c: usize, addr: SocketAddr) {
    let now = ctx.now();
    let Some(cl) = ctx.clusters.get_mut(c) else {
        return;
    };
    if cl.outlier_check_passed(addr, now) {
        log::info!(
            "cluster {}: host {addr} back from outlier ejection (active health check passed)",
            cl.cfg.name
        );
        outlier_gauge(ctx, c);
    }
}

/// A connect to `addr` of cluster `c` completed: a host that was failing is back.
pub fn upstream_connected(ctx: &mut Ctx, c: usize, addr: SocketAddr) {
    let Some(cl) = ctx.clusters.get_mut(c) else {
        return;
    };
    let name = cl.cfg.name.clone();
    if cl.host_mut(addr).is_some_and(|h| h.connect_outcome(true)) {
        log::info!("cluster {name}: connecting to {addr} works again");
    }
}

/// `-l debug`: each request's routing decision.
pub fn routing_decision(
    ctx: &Ctx,
    l: usize,
    peer: SocketAddr,
    req: &crate::http::codec::RequestHead<'_>,
    d: &crate::http::request::Decision,
) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    use crate::http::request::{Decision, Wait};
    let listener = ctx.listeners.get(l).map_or("?", |x| x.name.as_str());
    let what = match d {
        Decision::Forward(f) => {
            let cluster = ctx
                .clusters
                .get(f.cluster)
                .map_or("?", |c| c.cfg.name.as_str());
            format!(
                "cluster {cluster} host {} (virtual host {}, route {})",
                f.addr, f.route.0, f.route.1
            )
        }
        Decision::Local(r) => format!("local reply {}", r.status),
        Decision::Pause(p) => match &p.wait {
            Wait::Check(c) => format!("paused on an ext_authz check to {}", c.cluster),
            Wait::Delay(d) => format!("delayed {} ms by a fault filter", d.as_millis()),
        },
    };
    log::debug!(
        "{listener} {peer}: {} {} host {:?} -> {what}",
        req.method,
        req.path,
        req.host.unwrap_or("")
    );
}

/// A DNS query for cluster `c` was sent.
pub fn dns_attempt(ctx: &mut Ctx, c: usize) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(cs.update_attempt);
    }
}

/// A DNS answer for cluster `c` arrived (ok: it resolved); membership follows its hosts.
pub fn dns_result(ctx: &mut Ctx, c: usize, ok: bool) {
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.inc(if ok {
            cs.update_success
        } else {
            cs.update_failure
        });
    }
    membership(ctx, c);
}

/// Sets cluster `c`'s membership gauges (and `health_check.healthy`) from its hosts.
pub fn membership(ctx: &mut Ctx, c: usize) {
    let (n, healthy) = ctx.clusters.get(c).map_or((0, 0), |cl| {
        (cl.hosts.len() as i64, cl.healthy_count() as i64)
    });
    if let Some(cs) = ctx.stats.clusters.get(c).copied() {
        ctx.stats.store.set(cs.membership_total, n);
        ctx.stats.store.set(cs.membership_healthy, healthy);
    }
    if let Some(Some(h)) = ctx.stats.health.get(c).copied() {
        ctx.stats.store.set(h.healthy, healthy);
    }
}

/// Takes one `r` of cluster `c`'s DEFAULT-priority circuit breakers (whatever the limit
/// when `over`); false when the breaker refuses. Its gauges follow.
pub fn breaker_acquire(ctx: &mut Ctx, c: usize, r: Resource, over: bool) -> bool {
    let Some(cl) = ctx.clusters.get_mut(c) else {
        return false;
    };
    let b = &mut cl.breakers[0];
    let ok = if over {
        b.take(r);
        true
    } else {
        b.acquire(r)
    };
    if ok {
        ctx.stats.breaker(c, 0, b, r);
    }
    ok
}

/// Gives back one `r` of cluster `c`'s breakers.
pub fn breaker_release(ctx: &mut Ctx, c: usize, r: Resource) {
    if let Some(cl) = ctx.clusters.get_mut(c) {
        let b = &mut cl.breakers[0];
        b.release(r);
        ctx.stats.breaker(c, 0, b, r);
    }
}
