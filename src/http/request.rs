//! Routing a parsed request head: which route, which local reply or which upstream, and the
//! request head we send there (our own serialisation: origin-form target, path rewrites, Host,
//! forwarding headers and the route's header edits).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::codec::{is_hop_by_hop, named_in_connection, put_header, Framing, RequestHead};
use super::local;
use super::upgrade::Upgrade;
use crate::config::template::{Template, Vars};
use crate::config::{ClusterSpec, HostRewrite, HttpConnectionManager, RouteAction};
use crate::context::Ctx;
use crate::route::edits::{apply, bind, HeaderList, Op};
use crate::route::matcher::header_value;
use crate::route::{redirect_location, rewrite_prefix, rewrite_regex, Matched};
use crate::util::RequestIds;

/// A reply made here, with the matched route's response edits when there was a route.
pub struct LocalDecision {
    pub status: u16,
    pub body: Cow<'static, str>,
    pub location: Option<String>,
    pub edits: Vec<Op>,
    pub upstream: Option<SocketAddr>,
    /// The %RESPONSE_FLAGS% bit explaining the reply (NR, UH), or 0.
    pub flag: u16,
    /// A route's `direct_response` (counted as `rq_direct_response`).
    pub direct: bool,
}

/// Everything an exchange needs to forward a request.
pub struct Forward {
    pub cluster: usize,
    pub addr: SocketAddr,
    pub head: Vec<u8>,
    /// Byte range of the Host value in `head`, when `auto_host_rewrite` may change it per try.
    pub auto_host: Option<(usize, usize)>,
    pub timeout: Option<Duration>,
    pub idle: Option<Duration>,
    /// (virtual host, route) indices, to find the retry policy again.
    pub route: (usize, usize),
    pub resp_edits: Vec<Op>,
    /// The cluster's `connect_timeout` and `per_connection_buffer_limit_bytes`.
    pub connect_timeout: Duration,
    pub buffer_limit: usize,
    /// `(num_retries, per_try_timeout)` when the route has a retry policy.
    pub retry: Option<(u32, Option<Duration>)>,
    /// The x-request-id baton generated (none when the client sent one), so the access log's
    /// `%REQ(X-REQUEST-ID)%` shows what the upstream saw, as in Envoy.
    pub request_id: Option<String>,
    /// An allowed upgrade or CONNECT: how it is carried.
    pub upgrade: Option<Upgrade>,
}

pub enum Decision {
    Local(LocalDecision),
    Forward(Box<Forward>),
}

fn local(status: u16, body: &'static str, flag: u16) -> Decision {
    Decision::Local(LocalDecision {
        status,
        body: Cow::Borrowed(body),
        location: None,
        edits: Vec::new(),
        upstream: None,
        flag,
        direct: false,
    })
}

/// The client address as Envoy's connection manager determines it: with `use_remote_address`
/// the connection's peer, or — with `xff_num_trusted_hops` N > 0 — the address N from the right
/// of `x-forwarded-for`; without it, the address `xff_num_trusted_hops` positions from the right
/// of `x-forwarded-for` (the last one by default). The peer when the header has no usable
/// address there. An address from the header has port 0, as in Envoy.
pub fn trusted_client(
    headers: &[httparse::Header<'_>],
    peer: SocketAddr,
    use_remote_address: bool,
    trusted_hops: u32,
) -> SocketAddr {
    let skip = match (use_remote_address, trusted_hops) {
        (true, 0) => return peer,
        (true, n) => n - 1,
        (false, n) => n,
    };
    let mut addrs: Vec<&str> = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
    {
        let Ok(v) = std::str::from_utf8(h.value) else {
            return peer;
        };
        addrs.extend(v.split(',').map(str::trim));
    }
    let Some(i) = addrs.len().checked_sub(1 + skip as usize) else {
        return peer;
    };
    addrs
        .get(i)
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// Picks a cluster of a weighted split: uniform in 0..total, walking the cumulative weights.
pub fn pick_weighted(list: &[(usize, u32)], r: u64) -> usize {
    let mut r = r;
    for &(c, w) in list {
        if r < u64::from(w) {
            return c;
        }
        r -= u64::from(w);
    }
    list.last().map_or(0, |&(c, _)| c)
}

/// Routes the request and serialises the upstream head.
pub(super) fn decide(
    req: &RequestHead<'_>,
    peer: SocketAddr,
    listener: usize,
    ctx: &mut Ctx,
) -> Decision {
    // normalize_path / merge_slashes apply before routing, and to the path sent upstream.
    let hcm = &ctx.listeners[listener].hcm;
    let normalized =
        crate::route::normalize::normalize(req.path, hcm.normalize_path, hcm.merge_slashes);
    let with_path;
    let req = match &normalized {
        Some(path) => {
            with_path = RequestHead {
                method: req.method,
                path,
                minor: req.minor,
                host: req.host,
                headers: req.headers,
                framing: req.framing,
                keep_alive: req.keep_alive,
                expect_continue: req.expect_continue,
                head_len: req.head_len,
                secure: req.secure,
            };
            &with_path
        }
        None => req,
    };
    let l = &ctx.listeners[listener];
    let Some(m) = l.router.route(req) else {
        return local(404, "", crate::access_log::Flags::NR);
    };
    let upgrade = match super::upgrade::requested(req) {
        None => None,
        Some(t) => {
            let on_route = match &m.route.action {
                RouteAction::Forward(f) => f.upgrades.as_slice(),
                _ => &[],
            };
            let connect = req.method == "CONNECT";
            match super::upgrade::allowed(&l.hcm.upgrades, on_route, t, connect) {
                Some(u) => Some(u),
                None => {
                    // Envoy's answer to an upgrade the route does not allow: 403, no body.
                    ctx.stats.upgrade_refused(listener);
                    return local(403, "", 0);
                }
            }
        }
    };
    let stream_idle = l.hcm.stream_idle_timeout;
    let getter = |n: &str| header_value(req, n);
    let vars = |upstream| Vars {
        peer,
        start: SystemTime::now(),
        minor: req.minor,
        upstream,
        req: &getter,
    };
    let bound = |upstream| {
        if m.edits.response.is_empty() {
            Vec::new()
        } else {
            bind(&m.edits.response, &vars(upstream))
        }
    };
    let fwd = match &m.route.action {
        RouteAction::DirectResponse { status, body } => {
            return Decision::Local(LocalDecision {
                status: *status,
                body: Cow::Owned(body.clone().unwrap_or_default()),
                location: None,
                edits: bound(None),
                upstream: None,
                flag: 0,
                direct: true,
            })
        }
        RouteAction::Redirect(r) => {
            return Decision::Local(LocalDecision {
                status: r.response_code,
                body: Cow::Borrowed(""),
                location: Some(redirect_location(
                    r,
                    &m.route.matcher.path,
                    req.host,
                    req.path,
                    req.secure,
                )),
                edits: bound(None),
                upstream: None,
                flag: 0,
                direct: false,
            })
        }
        RouteAction::Forward(f) => f,
    };
    let cluster = match &fwd.cluster {
        ClusterSpec::Single(c) => *c,
        ClusterSpec::Weighted(list) => {
            let total: u64 = list.iter().map(|&(_, w)| u64::from(w)).sum();
            pick_weighted(list, ctx.rng.below(total.max(1)))
        }
    };
    let picked = ctx
        .clusters
        .get_mut(cluster)
        .and_then(|cl| cl.pick(&mut ctx.rng).map(|hi| cl.hosts[hi].addr));
    let Some(addr) = picked else {
        return Decision::Local(LocalDecision {
            status: 503,
            body: Cow::Borrowed(local::NO_HEALTHY_UPSTREAM),
            location: None,
            edits: bound(None),
            upstream: None,
            flag: crate::access_log::Flags::UH,
            direct: false,
        });
    };
    let path: Cow<'_, str> = match (&fwd.prefix_rewrite, &fwd.regex_rewrite) {
        (Some(rw), _) => rewrite_prefix(&m.route.matcher.path, rw, req.path).into(),
        (None, Some(rr)) => rewrite_regex(rr, req.path).into(),
        (None, None) => req.path.into(),
    };
    let host: Cow<'_, str> = match &fwd.host_rewrite {
        Some(HostRewrite::Literal(h)) => h.as_str().into(),
        Some(HostRewrite::Auto) => match ctx.clusters[cluster].hostname_of(addr) {
            Some(h) => h.to_string().into(),
            None => host_or_addr(req.host, addr),
        },
        None => host_or_addr(req.host, addr),
    };
    let v = vars(Some(addr));
    let expected = fwd
        .retry_policy
        .as_ref()
        .and_then(|p| p.per_try_timeout)
        .or(fwd.timeout);
    let (head, host_at, request_id) = serialise(
        req,
        &path,
        &host,
        peer,
        &m,
        &l.hcm,
        &mut ctx.request_ids,
        &v,
        expected,
        upgrade == Some(Upgrade::Upgrade),
    );
    let idle = match fwd.idle_timeout {
        Some(route_idle) => route_idle,
        None => stream_idle,
    };
    let (connect_timeout, buffer_limit) =
        ctx.clusters
            .get(cluster)
            .map_or((Duration::from_secs(5), 1 << 20), |c| {
                (
                    c.cfg.connect_timeout,
                    c.cfg.per_connection_buffer_limit_bytes as usize,
                )
            });
    Decision::Forward(Box::new(Forward {
        cluster,
        addr,
        connect_timeout,
        buffer_limit,
        auto_host: matches!(fwd.host_rewrite, Some(HostRewrite::Auto)).then_some(host_at),
        head,
        timeout: fwd.timeout,
        idle,
        route: (m.vh, m.index),
        resp_edits: bound(None),
        retry: fwd
            .retry_policy
            .as_ref()
            .map(|p| (p.num_retries, p.per_try_timeout)),
        request_id,
        upgrade,
    }))
}

fn host_or_addr<'a>(host: Option<&'a str>, addr: SocketAddr) -> Cow<'a, str> {
    match host {
        Some(h) => h.into(),
        None => addr.to_string().into(),
    }
}

/// Writes the upstream request head; returns it with the byte range of the Host value.
#[allow(clippy::too_many_arguments)]
fn serialise(
    req: &RequestHead<'_>,
    path: &str,
    host: &str,
    peer: SocketAddr,
    m: &Matched<'_>,
    hcm: &HttpConnectionManager,
    ids: &mut RequestIds,
    vars: &Vars<'_>,
    expected_timeout: Option<Duration>,
    upgrade: bool,
) -> (Vec<u8>, (usize, usize), Option<String>) {
    let edge = hcm.use_remote_address;
    let generate_request_id = hcm.generate_request_id;
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(req.method.as_bytes());
    h.push(b' ');
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    let host_at = (h.len(), h.len() + host.len());
    h.extend_from_slice(host.as_bytes());
    h.extend_from_slice(b"\r\n");
    // Only a route with request edits pays for an intermediate header list.
    let mut list: Option<HeaderList<'_>> = (!m.edits.request.is_empty()).then(Vec::new);
    let mut out = |h: &mut Vec<u8>, n: Cow<'_, str>, v: Cow<'_, [u8]>| match &mut list {
        Some(l) => l.push((Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned()))),
        None => put_header(h, &n, &v),
    };
    let mut xff: Option<Vec<u8>> = None;
    let mut have_request_id = false;
    let mut have_proto = false;
    for hd in req.headers {
        let n = hd.name;
        if upgrade && n.eq_ignore_ascii_case("upgrade") {
            out(&mut h, n.into(), hd.value.into());
            continue;
        }
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case("host")
            || n.eq_ignore_ascii_case("expect")
            || n.eq_ignore_ascii_case("x-envoy-expected-rq-timeout-ms")
            || named_in_connection(req.headers, n)
        {
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            let v = xff.get_or_insert_with(Vec::new);
            if !v.is_empty() {
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(hd.value);
            continue;
        }
        have_request_id |= n.eq_ignore_ascii_case("x-request-id");
        if n.eq_ignore_ascii_case("x-forwarded-proto") {
            // At the edge (use_remote_address) the client's claim is replaced, as Envoy does.
            if edge {
                continue;
            }
            have_proto = true;
        }
        out(&mut h, n.into(), hd.value.into());
    }
    // Envoy appends the client's address only at the edge (use_remote_address); otherwise
    // x-forwarded-for passes through as the client sent it.
    if edge {
        let mut v = xff.unwrap_or_default();
        if !v.is_empty() {
            v.extend_from_slice(b", ");
        }
        crate::util::push_ip(&mut v, peer.ip());
        out(&mut h, "x-forwarded-for".into(), v.into());
    } else if let Some(v) = xff {
        out(&mut h, "x-forwarded-for".into(), v.into());
    }
    if upgrade {
        out(&mut h, "connection".into(), b"upgrade"[..].into());
    }
    if !have_proto {
        let proto: &[u8] = if req.secure { b"https" } else { b"http" };
        out(&mut h, "x-forwarded-proto".into(), proto.into());
    }
    // Envoy's router tells the upstream how long it will wait: the per-try timeout if the
    // route has one, else the route timeout.
    if let Some(t) = expected_timeout {
        let mut v = Vec::with_capacity(12);
        crate::util::push_dec(&mut v, t.as_millis() as u64);
        out(&mut h, "x-envoy-expected-rq-timeout-ms".into(), v.into());
    }
    let mut request_id = None;
    if !have_request_id && generate_request_id {
        let id = ids.uuid4();
        out(&mut h, "x-request-id".into(), id.as_bytes().into());
        request_id = Some(id);
    }
    if let Some(mut l) = list {
        apply(&mut l, &m.edits.request, &|t: &Template| t.render(vars));
        for (n, v) in &l {
            put_header(&mut h, n, v);
        }
    }
    match req.framing {
        Framing::Length(n) => {
            h.extend_from_slice(b"content-length: ");
            crate::util::push_dec(&mut h, n);
            h.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => put_header(&mut h, "transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {
            // A bodyless POST/PUT still says so, or some origins wait for a body.
            if matches!(req.method, "POST" | "PUT" | "PATCH") {
                put_header(&mut h, "content-length", b"0");
            }
        }
    }
    h.extend_from_slice(b"\r\n");
    (h, host_at, request_id)
}

/// Replaces the Host value of a serialised head (a retry under `auto_host_rewrite` that moved
/// to a host with another name); returns the new range.
pub fn replace_host(head: &mut Vec<u8>, at: (usize, usize), host: &str) -> (usize, usize) {
    if head.get(at.0..at.1).is_some() {
        head.splice(at.0..at.1, host.bytes());
    }
    (at.0, at.0 + host.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_client_follows_envoys_rules() {
        let peer: SocketAddr = "10.0.0.9:5555".parse().unwrap();
        let h = [httparse::Header {
            name: "X-Forwarded-For",
            value: b"1.1.1.1, 2.2.2.2,3.3.3.3",
        }];
        let ip = |a: &str| SocketAddr::new(a.parse().unwrap(), 0);
        assert_eq!(trusted_client(&h, peer, true, 0), peer);
        assert_eq!(trusted_client(&h, peer, true, 1), ip("3.3.3.3"));
        assert_eq!(trusted_client(&h, peer, true, 2), ip("2.2.2.2"));
        assert_eq!(trusted_client(&h, peer, false, 0), ip("3.3.3.3"));
        assert_eq!(trusted_client(&h, peer, false, 2), ip("1.1.1.1"));
        assert_eq!(trusted_client(&h, peer, false, 3), peer);
        assert_eq!(trusted_client(&[], peer, false, 0), peer);
        let bad = [httparse::Header {
            name: "x-forwarded-for",
            value: b"not-an-ip",
        }];
        assert_eq!(trusted_client(&bad, peer, false, 0), peer);
    }

    #[test]
    fn weighted_pick_walks_cumulative_weights() {
        let l = [(7, 80), (9, 20)];
        assert_eq!(pick_weighted(&l, 0), 7);
        assert_eq!(pick_weighted(&l, 79), 7);
        assert_eq!(pick_weighted(&l, 80), 9);
        assert_eq!(pick_weighted(&l, 99), 9);
        let mut h = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        let at = replace_host(&mut h, (22, 23), "bbb");
        assert_eq!(at, (22, 25));
        assert_eq!(h, b"GET / HTTP/1.1\r\nhost: bbb\r\n\r\n");
    }
}
