//! The exchange core's environment in the running proxy: routing and load balancing over the
//! listener's router and the clusters, local replies with the Date and Server headers, and
//! the stats and access-log hooks.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use super::buf::BufPool;
use super::codec::RequestHead;
use super::core::{Env, Reply, RetryStat, Spares};
use super::local::write_local_reply;
use super::request::{decide, Decision};
use crate::access_log::{Rq, TlsInfo};
use crate::config::{RetryPolicy, RouteAction, ServerHeader};
use crate::context::Ctx;
use crate::observe;
use crate::route::edits::{apply, HeaderList};
use crate::route::normalize::normalize;
use crate::tls::Stream;
use std::rc::Rc;

/// One connection's view of the proxy: its listener and client address.
pub struct CtxEnv<'a> {
    ctx: &'a mut Ctx,
    listener: usize,
    peer: SocketAddr,
    /// The connection is TLS: its session cannot move to a new process.
    secure: bool,
    tls: Option<&'a Rc<TlsInfo>>,
    /// The connection's number and local address, for the access log.
    conn_id: u64,
    local: Option<SocketAddr>,
}

impl<'a> CtxEnv<'a> {
    pub fn new(ctx: &'a mut Ctx, listener: usize, peer: SocketAddr) -> CtxEnv<'a> {
        CtxEnv {
            ctx,
            listener,
            peer,
            secure: false,
            tls: None,
            conn_id: 0,
            local: None,
        }
    }

    /// The client connection's transport (plain or TLS, and the TLS session's facts).
    pub fn tls(mut self, s: &'a Stream) -> CtxEnv<'a> {
        self.secure = s.is_tls();
        self.tls = s.info();
        self
    }

    /// The connection's number and local address (when known).
    pub fn conn(mut self, id: u64, local: Option<SocketAddr>) -> CtxEnv<'a> {
        self.conn_id = id;
        self.local = local;
        self
    }
}

impl Env for CtxEnv<'_> {
    fn pool(&mut self) -> &mut BufPool {
        &mut self.ctx.pool
    }

    fn spares(&mut self) -> &mut Spares {
        &mut self.ctx.spares
    }

    fn server(&self) -> (&str, ServerHeader) {
        let hcm = &self.ctx.listeners[self.listener].hcm;
        (&hcm.server_name, hcm.server_header_transformation)
    }

    /// A TLS connection is never handed over (its session keys live here): while draining,
    /// its responses say `Connection: close`, whether or not a successor exists.
    fn closing(&self) -> bool {
        self.ctx.closing() || (self.secure && self.ctx.draining())
    }

    fn close_idle(&self) -> bool {
        // With a successor, an idle TLS connection (which cannot move) is left to send its
        // next request, answered with `Connection: close`, rather than closed under it; the
        // drain's end closes what is left. Without one, idle connections close as plain ones.
        self.ctx.closing()
    }

    fn handoff(&self) -> bool {
        self.ctx.handoff() && !self.secure
    }

    fn begin(&mut self, req: Option<&RequestHead<'_>>, minor: u8, _now: Instant) -> Rq {
        let mut rq = observe::begin(self.ctx, self.listener, self.peer, minor, req);
        rq.tls = self.tls.cloned();
        rq.conn_id = self.conn_id;
        rq.local = self.local;
        rq
    }

    fn route(&mut self, req: &RequestHead<'_>, rq: &mut Rq) -> Decision {
        // normalize_path / merge_slashes change the path before routing: the route, the
        // upstream and the access log's `:path` all see the new one, as Envoy's connection
        // manager rewrites the header itself. An unchanged path allocates nothing.
        let hcm = &self.ctx.listeners[self.listener].hcm;
        let normalized = normalize(req.path, hcm.normalize_path, hcm.merge_slashes);
        if let Some(p) = &normalized {
            observe::path_normalized(self.ctx, self.listener, rq, p);
        }
        // The request's scheme is the connection's: `https` over TLS (x-forwarded-proto,
        // `:scheme` matching, the scheme a redirect keeps).
        let changed;
        let req = if self.secure || normalized.is_some() {
            changed = RequestHead {
                path: normalized.as_deref().unwrap_or(req.path),
                secure: req.secure || self.secure,
                ..req.clone()
            };
            &changed
        } else {
            req
        };
        let mut d = decide(req, self.peer, self.listener, self.ctx);
        observe::routing_decision(self.ctx, self.listener, self.peer, req, &d);
        if let Decision::Forward(f) = &mut d {
            if let Some(id) = f.request_id.take() {
                observe::generated_request_id(self.ctx, self.listener, rq, &id);
            }
            if let Some(r) = f.rewritten.take() {
                observe::rewritten(self.ctx, self.listener, rq, &r);
            }
            observe::routed(self.ctx, self.listener, rq);
        }
        d
    }

    fn local_reply(&mut self, out: &mut Vec<u8>, r: &Reply<'_>) {
        let mut extra: HeaderList<'_> = Vec::new();
        if let Some(l) = r.location {
            extra.push((Cow::Borrowed("location"), Cow::Borrowed(l.as_bytes())));
        }
        if !r.edits.is_empty() {
            apply(&mut extra, r.edits, &|t| t.render_upstream(r.upstream));
        }
        // Everything in `extra` was rendered from UTF-8 text (config values, our Location).
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .filter_map(|(n, v)| Some((n.as_ref(), std::str::from_utf8(v).ok()?)))
            .collect();
        let date = self.ctx.date().to_string();
        let server = &self.ctx.listeners[self.listener].hcm.server_name;
        write_local_reply(out, r.status, r.body, r.close, server, &date, &extra);
    }

    fn response_head(&mut self, rq: &mut Rq, status: u16, headers: &[httparse::Header<'_>]) {
        observe::response_head(self.ctx, rq, status, headers);
        let fail = |h: &httparse::Header<'_>| {
            h.name
                .eq_ignore_ascii_case("x-envoy-immediate-health-check-fail")
        };
        if let (Some(c), Some(addr), true) = (rq.cluster, rq.upstream, headers.iter().any(fail)) {
            crate::cluster::checker::immediate_fail(self.ctx, c, addr);
        }
    }

    fn end(&mut self, rq: Rq, _now: Instant) {
        observe::end(self.ctx, rq);
    }

    fn retry_policy(&self, (vh, r): (usize, usize)) -> Option<&RetryPolicy> {
        let m = self.ctx.listeners.get(self.listener)?.router.get(vh, r)?;
        match &m.route.action {
            RouteAction::Forward(f) => f.retry_policy.as_ref(),
            _ => None,
        }
    }

    fn next_host(&mut self, cluster: usize, old: SocketAddr) -> Option<SocketAddr> {
        let cl = self.ctx.clusters.get_mut(cluster)?;
        // Round robin moves on by itself; a few picks steer RANDOM/LEAST_REQUEST off the
        // host that just failed too.
        let mut next = None;
        for _ in 0..3 {
            let Some(i) = cl.pick(&mut self.ctx.rng) else {
                break;
            };
            if cl.in_panic() {
                self.ctx.stats.lb_healthy_panic(cluster);
            }
            next = cl.hosts.get(i).map(|h| h.addr);
            if next != Some(old) {
                break;
            }
        }
        next
    }

    fn hostname_of(&self, cluster: usize, addr: SocketAddr) -> Option<String> {
        self.ctx
            .clusters
            .get(cluster)?
            .hostname_of(addr)
            .map(str::to_string)
    }

    fn track(&mut self, cluster: usize, addr: SocketAddr, delta: i32) {
        if let Some(cl) = self.ctx.clusters.get_mut(cluster) {
            cl.track(addr, delta);
        }
    }

    fn random_below(&mut self, n: u64) -> u64 {
        self.ctx.rng.below(n)
    }

    fn upstream_rq(&mut self, cluster: usize, addr: SocketAddr, fresh: bool) {
        observe::upstream_rq(self.ctx, cluster, addr, fresh);
    }

    fn upstream_rq_timeout(&mut self, cluster: usize, addr: SocketAddr) {
        observe::upstream_rq_timeout(self.ctx, cluster, addr);
    }

    fn upstream_connect_fail(&mut self, cluster: usize, addr: SocketAddr, timeout: bool) {
        observe::upstream_connect_fail(self.ctx, cluster, addr, timeout);
    }

    fn direct_response(&mut self) {
        self.ctx.stats.direct_response(self.listener);
    }

    fn tunnel(&mut self, open: bool) {
        self.ctx.stats.tunnel(self.listener, open);
    }

    fn tunnel_moved(&mut self, rq: &Rq, out: bool) {
        self.ctx.stats.tunnel_moved(rq.listener, out);
    }

    fn retry_stat(&mut self, cluster: usize, s: RetryStat) {
        self.ctx.stats.retry(cluster, s);
    }

    fn retry_acquire(&mut self, cluster: usize) -> bool {
        self.ctx
            .clusters
            .get_mut(cluster)
            .is_some_and(|c| c.retry_acquire())
    }

    fn retry_release(&mut self, cluster: usize) {
        if let Some(c) = self.ctx.clusters.get_mut(cluster) {
            c.retry_release();
        }
    }

    fn http2_preface(&mut self) {
        let now = self.ctx.now();
        if self.ctx.stats.http2_refused(self.listener, now) {
            log::info!(
                "{}: HTTP/2 connection preface on an HTTP/1 listener: answered GOAWAY \
                 (HTTP_1_1_REQUIRED) and closed; baton speaks HTTP/1.1 only \
                 (further ones this minute are only counted in \
                 http.{}.downstream_cx_http2_refused)",
                self.peer,
                self.ctx.listeners[self.listener].hcm.stat_prefix
            );
        } else {
            log::debug!("{}: HTTP/2 client refused (counted)", self.peer);
        }
    }

    fn default_host_for_http_10(&self) -> Option<String> {
        self.ctx.listeners[self.listener]
            .hcm
            .default_host_for_http_10
            .clone()
    }
}
