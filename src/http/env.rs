//! The exchange core's environment in the running proxy: routing and load balancing over the
//! listener's router and the clusters, local replies with the Date and Server headers, and
//! the stats and access-log hooks.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use super::buf::BufPool;
use super::codec::RequestHead;
use super::core::{Env, Reply, RetryStat, Spares, TcpStat, TcpTarget};
use super::ext_authz::Verdict;
use super::local::write_local_reply;
use super::request::{decide, hcm_path, Decision, Pending};
use crate::access_log::{Rq, TlsInfo};
use crate::cluster::breakers::Resource;
use crate::cluster::outlier::Outcome;
use crate::config::{
    ClusterSpec, HttpConnectionManager, RetryPolicy, RouteAction, ServerHeader, StripPort,
};
use crate::context::{Ctx, HttpRt};
use crate::observe;
use crate::route::edits::{apply, HeaderList};
use crate::route::rewrite::split_port;
use crate::tls::Stream;
use std::rc::Rc;

/// One connection's view of the proxy: its listener and client address.
pub struct CtxEnv<'a> {
    ctx: &'a mut Ctx,
    listener: usize,
    peer: SocketAddr,
    /// The connection is TLS: its session cannot move to a new process.
    secure: bool,
    /// The connection speaks HTTP/2: its HPACK tables and stream state cannot move either.
    h2: bool,
    tls: Option<&'a Rc<TlsInfo>>,
    /// The connection's number and local address, for the access log.
    conn_id: u64,
    local: Option<SocketAddr>,
    /// The socket's peer when a PROXY protocol header named another client (`peer`).
    direct: Option<SocketAddr>,
}

impl<'a> CtxEnv<'a> {
    pub fn new(ctx: &'a mut Ctx, listener: usize, peer: SocketAddr) -> CtxEnv<'a> {
        CtxEnv {
            ctx,
            listener,
            peer,
            secure: false,
            h2: false,
            tls: None,
            conn_id: 0,
            local: None,
            direct: None,
        }
    }

    /// The client connection's transport (plain or TLS, and the TLS session's facts).
    pub fn tls(mut self, s: &'a Stream) -> CtxEnv<'a> {
        self.secure = s.is_tls();
        self.h2 = s.is_h2();
        self.tls = s.info();
        self.direct = s.origin().map(|o| o.direct);
        self
    }

    /// The connection's number and local address (when known).
    pub fn conn(mut self, id: u64, local: Option<SocketAddr>) -> CtxEnv<'a> {
        self.conn_id = id;
        self.local = local;
        self
    }
}

impl CtxEnv<'_> {
    /// Routes a request, or (`resume`) goes on with one paused on an ext_authz check: the
    /// connection manager's changes are made again (they depend on the head alone), the
    /// span begun before the pause is kept.
    fn route_or_resume(
        &mut self,
        req: &RequestHead<'_>,
        rq: &mut Rq,
        mut resume: Option<(Box<Pending>, Verdict)>,
    ) -> Decision {
        if resume.is_none()
            && self.ctx.overload.roll(
                crate::config::OverloadKind::StopAcceptingRequests,
                &mut self.ctx.rng,
            )
        {
            self.ctx
                .stats
                .overloaded(self.listener, crate::stats::Overloaded::Request);
            let d = crate::http::request::overloaded();
            observe::routing_decision(self.ctx, self.listener, self.peer, req, &d);
            return d;
        }
        // normalize_path / merge_slashes change the path before routing: the route, the
        // upstream and the access log's `:path` all see the new one, as Envoy's connection
        // manager rewrites the header itself. An unchanged path allocates nothing.
        // strip_*_host_port likewise change the Host. A path it refuses or redirects is the
        // connection manager's own answer.
        let l = &self.ctx.listeners[self.listener];
        let port = self.local.map_or(l.address.port(), |a| a.port());
        let (normalized, early, host) = match l.http() {
            Some(h) => {
                let (normalized, early) = match hcm_path(req.path, &h.hcm) {
                    Ok(n) => (n, None),
                    Err(answer) => (None, Some(*answer)),
                };
                let host = req.host.and_then(|host| hcm_host(host, &h.hcm, port));
                (normalized, early, host)
            }
            None => (None, None, None),
        };
        let host = host.as_deref();
        if let Some(a) = &early {
            self.ctx.stats.path_answered(self.listener, a.status);
        }
        if resume.is_none() && (normalized.is_some() || host.is_some()) {
            observe::request_changed(self.ctx, self.listener, rq, normalized.as_deref(), host);
        }
        // The request's scheme as the connection manager sets it (`secure_scheme`):
        // x-forwarded-proto, `:scheme` matching, the scheme a redirect keeps.
        let changed;
        let peer_cert = self.tls.is_some_and(|t| t.peer_subject.is_some());
        let conn_secure = req.secure || self.secure;
        let secure = l.http().map_or(conn_secure, |h| {
            crate::http::request::secure_scheme(req.headers, &h.hcm, conn_secure)
        });
        let req = if self.secure || secure != req.secure || normalized.is_some() || host.is_some() {
            changed = RequestHead {
                path: normalized.as_deref().unwrap_or(req.path),
                host: host.or(req.host),
                secure,
                peer_cert,
                ..req.clone()
            };
            &changed
        } else {
            req
        };
        let begun = match (&early, &mut resume) {
            (_, Some((p, _))) => p.begun.take(),
            (None, None) => {
                crate::tracing::http::begin(self.ctx, self.listener, self.peer, req, rq.start)
            }
            (Some(_), None) => None,
        };
        let inject = begun.as_ref().map(|b| &b.inject);
        let mut d = decide(
            req,
            self.peer,
            self.listener,
            self.ctx,
            early,
            inject,
            rq,
            resume,
        );
        if let Decision::Pause(p) = &mut d {
            // Routed once the check is answered.
            p.begun = begun;
            return d;
        }
        if let Some(b) = begun {
            crate::tracing::http::routed(self.ctx, self.listener, b, &mut d, rq);
        }
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

    /// The connection manager and router of the connection's listener (an HTTP one).
    fn http(&self) -> Option<&HttpRt> {
        self.ctx.listeners.get(self.listener)?.http()
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
        match self.http() {
            Some(h) => (&h.hcm.server_name, h.hcm.server_header_transformation),
            None => ("baton", ServerHeader::Overwrite),
        }
    }

    /// A TLS connection is never handed over (its session keys live here): while draining,
    /// its responses say `Connection: close`, whether or not a successor exists.
    fn closing(&self) -> bool {
        self.ctx.closing() || ((self.secure || self.h2) && self.ctx.draining())
    }

    fn close_idle(&self) -> bool {
        // With a successor, an idle TLS connection (which cannot move) is left to send its
        // next request, answered with `Connection: close`, rather than closed under it; the
        // drain's end closes what is left. Without one, idle connections close as plain ones.
        // An idle HTTP/2 connection gets GOAWAY and is closed at once, as Envoy's drain does:
        // an HTTP/2 client opens its next stream on a new connection, without a race.
        self.ctx.closing() || (self.h2 && self.ctx.draining())
    }

    fn handoff(&self) -> bool {
        self.ctx.handoff() && !self.secure && !self.h2
    }

    fn begin(&mut self, req: Option<&RequestHead<'_>>, minor: u8, _now: Instant) -> Rq {
        let conn = (self.conn_id, self.local, self.tls.cloned());
        let direct = self.direct.unwrap_or(self.peer);
        observe::begin(
            self.ctx,
            self.listener,
            (self.peer, direct),
            // The access log's %PROTOCOL% says HTTP/2 (as Envoy) for a transcoded request.
            if self.h2 { 2 } else { minor },
            req,
            conn,
        )
    }

    fn route(&mut self, req: &RequestHead<'_>, rq: &mut Rq) -> Decision {
        self.route_or_resume(req, rq, None)
    }

    fn resume(
        &mut self,
        req: &RequestHead<'_>,
        rq: &mut Rq,
        pending: Box<Pending>,
        verdict: Verdict,
    ) -> Decision {
        self.route_or_resume(req, rq, Some((pending, verdict)))
    }

    /// Envoy's `sendLocalReply`: the reply's headers start with a redirect's Location and the
    /// route's response edits; the connection manager's `local_reply_config` (if any) then
    /// rewrites status, body and headers; the content type follows Envoy's rule (a body the
    /// rewrite changed gets its format's type unless a mapper set `content-type`; otherwise
    /// a type already set by the edits stays; an empty body has none).
    fn local_reply(&mut self, out: &mut Vec<u8>, r: &Reply<'_>, rq: &mut Rq) -> usize {
        let mut extra: HeaderList<'_> = Vec::new();
        if let Some(l) = r.location {
            extra.push((Cow::Borrowed("location"), Cow::Borrowed(l.as_bytes())));
        }
        if !r.edits.is_empty() {
            apply(&mut extra, r.edits, &|t| t.render_upstream(r.upstream));
        }
        if r.overloaded {
            extra.push((Cow::Borrowed("x-envoy-overloaded"), Cow::Borrowed(b"true")));
        }
        // The connection manager's `via` goes on every response, its own replies included.
        if let Some(v) = self
            .http()
            .and_then(|h| h.hcm.via.as_deref())
            .map(|v| v.as_bytes().to_vec())
        {
            extra.push((Cow::Borrowed("via"), Cow::Owned(v)));
        }
        let date = self.ctx.date().to_string();
        let ctx = &*self.ctx;
        let http = ctx.listeners.get(self.listener).and_then(|l| l.http());
        let server = http.map_or("baton", |h| h.hcm.server_name.as_str());
        let (status, body, ct, custom) = match ctx.access_logs.local_reply(self.listener) {
            None => (r.status, Cow::Borrowed(r.body), "text/plain", false),
            Some((lr, slots)) => {
                let names = observe::log_names(&ctx.clusters, &ctx.listeners, rq, false);
                let w = lr.rewrite(r.status, r.body, rq, ctx.now(), slots, &names, &mut extra);
                (
                    w.status,
                    Cow::Owned(w.body),
                    w.content_type,
                    w.custom_content_type,
                )
            }
        };
        let has_ct = extra
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        let content_type = if body.is_empty() {
            None
        } else if !has_ct || (body != r.body && !custom) {
            Some(ct)
        } else {
            None
        };
        if body.is_empty() || content_type.is_some() {
            extra.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        // Everything in `extra` was rendered from UTF-8 text (config values, our Location,
        // captured request values).
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .filter_map(|(n, v)| Some((n.as_ref(), std::str::from_utf8(v).ok()?)))
            .collect();
        let start = out.len();
        let n = write_local_reply(
            out,
            status,
            &body,
            r.close,
            server,
            &date,
            content_type,
            &extra,
        );
        // Envoy answers an HTTP/1.0 request it serves (`accept_http_10`) in HTTP/1.0.
        if rq.minor == 0 && http.is_some_and(|h| h.hcm.accept_http_10) {
            crate::http::local::as_http_10(out, start);
        }
        n
    }

    fn response_head(&mut self, rq: &mut Rq, status: u16, headers: &[httparse::Header<'_>]) {
        observe::response_head(self.ctx, rq, status, headers);
        if let (Some(c), Some(addr), true) = (rq.cluster, rq.upstream, status >= 200) {
            observe::outlier(self.ctx, c, addr, Outcome::Status(status));
        }
        let fail = |h: &httparse::Header<'_>| {
            h.name
                .eq_ignore_ascii_case("x-envoy-immediate-health-check-fail")
        };
        if let (Some(c), Some(addr), true) = (rq.cluster, rq.upstream, headers.iter().any(fail)) {
            crate::cluster::checker::immediate_fail(self.ctx, c, addr);
        }
    }

    fn response_trailers(&mut self, rq: &mut Rq, trailers: &[u8]) {
        observe::response_trailers(self.ctx, rq, trailers);
    }

    fn end(&mut self, rq: &mut Rq, _now: Instant) {
        // A TCP proxy's record began before its TLS handshake (if any): the session's facts
        // are known by its end.
        if rq.tls.is_none() {
            rq.tls = self.tls.cloned();
        }
        observe::end(self.ctx, rq);
    }

    fn retry_policy(&self, (vh, r): (usize, usize)) -> Option<&RetryPolicy> {
        let m = self.http()?.router.get(vh, r)?;
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

    fn upstream_reset(&mut self, cluster: usize, addr: SocketAddr) {
        observe::outlier(self.ctx, cluster, addr, Outcome::ConnectFailed);
    }

    fn direct_response(&mut self) {
        self.ctx.stats.direct_response(self.listener);
    }

    fn request_timeout(&mut self) {
        self.ctx.stats.request_timeout(self.listener);
    }

    fn tunnel(&mut self, open: bool) {
        self.ctx.stats.tunnel(self.listener, open);
    }

    fn tunnel_moved(&mut self, rq: &Rq, out: bool) {
        self.ctx.stats.tunnel_moved(rq.listener, out);
    }

    fn mirror(
        &mut self,
        shadow: crate::http::mirror::Shadow,
        body: &[u8],
        t: Option<std::time::Duration>,
    ) {
        crate::http::mirror::send(self.ctx, shadow, body, t);
    }

    fn retry_or_shadow_abandoned(&mut self, cluster: usize) {
        self.ctx.stats.retry_or_shadow_abandoned(cluster);
    }

    fn retry_stat(&mut self, cluster: usize, s: RetryStat) {
        self.ctx.stats.retry(cluster, s);
    }

    fn acquire(&mut self, cluster: usize, r: Resource, over: bool) -> bool {
        observe::breaker_acquire(self.ctx, cluster, r, over)
    }

    fn release(&mut self, cluster: usize, r: Resource) {
        observe::breaker_release(self.ctx, cluster, r);
    }

    fn pending_overflow(&mut self, cluster: usize) {
        self.ctx.stats.overflow(cluster, false);
    }

    fn http2_preface(&mut self) {
        log::debug!("{}: the client speaks HTTP/2", self.peer);
        self.ctx.stats.http2_started(self.listener);
    }

    fn overload_close(&mut self) -> bool {
        let close = self.ctx.overload.roll(
            crate::config::OverloadKind::DisableHttpKeepalive,
            &mut self.ctx.rng,
        );
        if close {
            self.ctx
                .stats
                .overloaded(self.listener, crate::stats::Overloaded::KeepAlive);
        }
        close
    }

    fn default_host_for_http_10(&self) -> Option<String> {
        self.http()?.hcm.default_host_for_http_10.clone()
    }

    fn tcp_begin(&mut self, _now: Instant) -> (Rq, Option<TcpTarget>) {
        let mut rq = observe::tcp_begin(self.ctx, self.listener, self.peer);
        rq.direct_peer = self.direct.unwrap_or(self.peer);
        rq.tls = self.tls.cloned();
        rq.conn_id = self.conn_id;
        rq.local = self.local;
        let target = tcp_target(self.ctx, self.listener, &mut rq);
        (rq, target)
    }

    fn tcp_stat(&mut self, s: TcpStat) {
        self.ctx.stats.tcp_stat(self.listener, s);
    }

    /// `CONNECT host:port HTTP/1.1` with that Host, as Envoy's HTTP/1.1 tunnel sends it.
    fn tcp_connect_head(&mut self, out: &mut Vec<u8>) {
        let host = self
            .ctx
            .listeners
            .get(self.listener)
            .and_then(|l| l.tcp()?.tunnel_hostname.as_deref())
            .unwrap_or_default();
        out.extend_from_slice(b"CONNECT ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        crate::http::codec::put_header(out, "host", host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn count(&mut self, c: crate::stats::Counter, n: u64) {
        self.ctx.stats.store.add(c, n);
    }
}

/// A TCP proxy connection's upstream: a cluster (by weight, for `weighted_clusters`), then a
/// host from its load balancer. No host: the record says `UH` and the cluster counts
/// `upstream_cx_none_healthy`.
fn tcp_target(ctx: &mut Ctx, listener: usize, rq: &mut Rq) -> Option<TcpTarget> {
    let spec = &ctx.listeners.get(listener)?.tcp()?.cluster;
    let cluster = match spec {
        ClusterSpec::Single(c) => *c,
        ClusterSpec::Weighted(list) => {
            let total: u64 = list.iter().map(|&(_, w)| u64::from(w)).sum();
            crate::http::request::pick_weighted(list, ctx.rng.below(total.max(1)))
        }
    };
    rq.cluster = Some(cluster);
    let cl = ctx.clusters.get_mut(cluster)?;
    let picked = cl.pick(&mut ctx.rng).and_then(|i| cl.hosts.get(i));
    let Some(host) = picked else {
        log::debug!("tcp proxy: cluster {} has no host", cl.cfg.name);
        rq.flags.set(crate::access_log::Flags::UH);
        ctx.stats.tcp_stat(listener, TcpStat::NoneHealthy(cluster));
        return None;
    };
    let addr = host.addr;
    rq.upstream = Some(addr);
    Some(TcpTarget {
        cluster,
        addr,
        connect_timeout: cl.cfg.connect_timeout,
        buffer_limit: cl.cfg.per_connection_buffer_limit_bytes as usize,
    })
}

/// The Host as the connection manager leaves it (`strip_trailing_host_dot`, then the port);
/// `None`: unchanged. Only a dot before a port costs a copy.
fn hcm_host<'h>(host: &'h str, hcm: &HttpConnectionManager, port: u16) -> Option<Cow<'h, str>> {
    let mode = hcm.strip_host_port;
    let undotted = if hcm.strip_trailing_host_dot {
        strip_trailing_dot(host)
    } else {
        None
    };
    match undotted {
        None => strip_port(host, mode, port).map(Cow::Borrowed),
        Some(Cow::Borrowed(h)) => Some(Cow::Borrowed(strip_port(h, mode, port).unwrap_or(h))),
        Some(Cow::Owned(h)) => {
            let name = strip_port(&h, mode, port).map(str::to_string);
            Some(Cow::Owned(name.unwrap_or(h)))
        }
    }
}

/// `example.com.` → `example.com`, `example.com.:80` → `example.com:80`; `None`: no dot
/// there.
fn strip_trailing_dot(host: &str) -> Option<Cow<'_, str>> {
    if let Some(name) = host.strip_suffix('.') {
        return (!name.is_empty()).then_some(Cow::Borrowed(name));
    }
    let (name, Some(port)) = split_port(host) else {
        return None;
    };
    let name = name.strip_suffix('.').filter(|n| !n.is_empty())?;
    Some(Cow::Owned(format!("{name}:{port}")))
}

/// The Host without its port, when the connection manager strips it (`mode`); `port` is the
/// one the connection arrived on. `None`: unchanged. An IPv6 literal keeps its brackets.
fn strip_port(host: &str, mode: StripPort, port: u16) -> Option<&str> {
    if mode == StripPort::Keep {
        return None;
    }
    let (name, Some(p)) = split_port(host) else {
        return None;
    };
    if name.is_empty() {
        return None;
    }
    match mode {
        StripPort::Any => Some(name),
        _ => (p.parse::<u16>().ok() == Some(port)).then_some(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_as_the_mode_says() {
        let m = StripPort::Matching;
        assert_eq!(strip_port("a.b:8080", m, 8080), Some("a.b"));
        assert_eq!(strip_port("a.b:8081", m, 8080), None);
        assert_eq!(strip_port("a.b:8081", StripPort::Any, 8080), Some("a.b"));
        assert_eq!(strip_port("a.b:8080", StripPort::Keep, 8080), None);
        assert_eq!(strip_port("a.b", StripPort::Any, 80), None);
        assert_eq!(strip_port("[::1]:80", m, 80), Some("[::1]"));
        assert_eq!(strip_port("[::1]", StripPort::Any, 80), None);
        assert_eq!(strip_port("::1", StripPort::Any, 80), None);
        assert_eq!(strip_port("a.b:", StripPort::Any, 80), None);
        assert_eq!(strip_port("a.b:x1", StripPort::Any, 80), None);
        assert_eq!(strip_port("a.b:99999", m, 80), None);
    }

    #[test]
    fn a_trailing_host_dot_is_stripped_before_the_port() {
        assert_eq!(strip_trailing_dot("a.b."), Some(Cow::Borrowed("a.b")));
        assert_eq!(strip_trailing_dot("a.b.:80").as_deref(), Some("a.b:80"));
        assert_eq!(strip_trailing_dot("a.b"), None);
        assert_eq!(strip_trailing_dot("a.b:80"), None);
        assert_eq!(strip_trailing_dot("."), None);
        assert_eq!(strip_trailing_dot("[::1]:80"), None);
    }
}
