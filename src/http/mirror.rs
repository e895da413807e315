//! Request mirroring: a route's `request_mirror_policies` (Envoy's shadowing). When a
//! request is routed, each policy that samples it gets a copy of its upstream head (the Host
//! with `-shadow` appended, Envoy's rule); once the request has been read in full — at once
//! for a request without a body — the copy and the body bytes kept for retries go to a host
//! of the mirror cluster on a connection of their own. The answer is read and discarded; the
//! client's exchange never waits for it and never sees it fail.
//!
//! Bounds: at most `MAX_IN_FLIGHT` shadows at once (more are dropped and counted in the
//! mirror cluster's `upstream_rq_pending_overflow`), each ends at the route's timeout (or
//! `MAX_TIME` when the route has none), and a body larger than the connection's buffer limit
//! gives the shadow up (`retry_or_shadow_abandoned` of the request's cluster), as in Envoy.
//! Shadows still in flight when the process exits are dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cluster::oneshot::OneShot;
use crate::cluster::{checker, ClusterRt};
use crate::config::{MirrorPolicy, MirrorTarget};
use crate::context::Ctx;
use crate::http::codec::RequestHead;
use crate::observe;
use crate::reactor::{TimerKey, Tok};
use crate::route::matcher::header_value;
use crate::util::{Rng, Slab};

/// Shadows in flight at once (Envoy's default circuit-breaker limit on requests).
pub const MAX_IN_FLIGHT: usize = 1024;
/// A shadow's time limit when its route has no timeout.
pub const MAX_TIME: Duration = Duration::from_secs(300);

/// A shadow of one request, waiting for the request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    pub cluster: usize,
    /// The upstream request head as the mirror cluster gets it.
    pub head: Vec<u8>,
    /// A HEAD: its answer has no body.
    pub is_head: bool,
}

/// The shadows in flight.
#[derive(Debug, Default)]
pub struct Mirrors {
    shadows: Slab<InFlight>,
    next_gen: u64,
}

#[derive(Debug)]
struct InFlight {
    req: OneShot,
    cluster: usize,
    addr: SocketAddr,
    gen: u64,
    /// The route's timeout: the shadow ends then at the latest.
    until: Instant,
}

/// The shadows `policies` make of a request routed with upstream head `head` (its Host value
/// at `host_at`, `host`). A policy samples the request with its runtime fraction; its
/// cluster is named in the config or by the request's `cluster_header` (a name no cluster has,
/// or a cluster with TLS, makes no shadow).
pub fn shadows(
    clusters: &[ClusterRt],
    rng: &mut Rng,
    policies: &[MirrorPolicy],
    req: &RequestHead<'_>,
    head: &[u8],
    host_at: (usize, usize),
    host: &str,
) -> Vec<Shadow> {
    let mut out = Vec::new();
    for p in policies {
        if let Some(f) = p.fraction {
            if !crate::http::filters::sample(f, rng) {
                continue;
            }
        }
        let cluster = match &p.target {
            MirrorTarget::Cluster(c) => Some(*c),
            MirrorTarget::Header(h) => header_value(req, h).and_then(|name| {
                let c = clusters.iter().position(|c| c.cfg.name == name);
                if c.is_none() {
                    log::debug!("mirror: cluster_header names no cluster: {name:?}");
                }
                c
            }),
        };
        let Some(cluster) = cluster else { continue };
        let Some(cl) = clusters.get(cluster) else {
            continue;
        };
        if cl.cfg.tls.is_some() {
            log::debug!("mirror: cluster {} uses TLS; no shadow", cl.cfg.name);
            continue;
        }
        let mut h = head.to_vec();
        if p.host_suffix {
            crate::http::request::replace_value(&mut h, host_at, &shadow_host(host));
        }
        if cl.cfg.http.proper_case_headers {
            crate::http::request::proper_case_names(&mut h);
        }
        out.push(Shadow {
            cluster,
            head: h,
            is_head: req.method == "HEAD",
        });
    }
    out
}

/// Envoy's shadow authority: `-shadow` before the port — the last `:` that is not inside
/// an IPv6 address's brackets — if there is one.
fn shadow_host(host: &str) -> String {
    let port_at = host
        .rfind(':')
        .filter(|&i| host.rfind(']').is_none_or(|end| end < i));
    match port_at.and_then(|i| host.split_at_checked(i)) {
        Some((name, port)) => format!("{name}-shadow{port}"),
        None => format!("{host}-shadow"),
    }
}

impl Mirrors {
    /// Shadows in flight.
    pub fn len(&self) -> usize {
        self.shadows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shadows.len() == 0
    }

    /// Shadow `idx` of generation `gen` is still in flight (its timer is not stale).
    pub fn is_live(&self, idx: usize, gen: u64) -> bool {
        self.shadows.get(idx).is_some_and(|s| s.gen == gen)
    }
}

/// Runs `f` with the mirrors taken out of the context (they need its registry and stats).
fn with(ctx: &mut Ctx, f: impl FnOnce(&mut Mirrors, &mut Ctx)) {
    let mut m = std::mem::take(&mut ctx.mirrors);
    f(&mut m, ctx);
    ctx.mirrors = m;
}

/// The request is complete: `shadow` goes out with `body` (the request body as it was sent
/// upstream), ending after `timeout` at the latest.
pub fn send(ctx: &mut Ctx, shadow: Shadow, body: &[u8], timeout: Option<Duration>) {
    with(ctx, |m, ctx| {
        let c = shadow.cluster;
        if m.shadows.len() >= MAX_IN_FLIGHT {
            log::debug!("mirror: {MAX_IN_FLIGHT} shadows in flight; this one is dropped");
            ctx.stats.overflow(c, false);
            return;
        }
        let addr = ctx.clusters.get_mut(c).and_then(|cl| {
            let i = cl.pick(&mut ctx.rng)?;
            cl.hosts.get(i).map(|h| h.addr)
        });
        let Some(addr) = addr else {
            ctx.stats.none_healthy(c);
            return;
        };
        let idx = m.shadows.next_key();
        let sock = match checker::connect(ctx, c, addr, Tok::Mirror(idx)) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("mirror: connect to {addr}: {e}; shadow dropped");
                observe::upstream_connect_fail(ctx, c, addr, false);
                return;
            }
        };
        observe::upstream_cx_open(ctx, c, addr);
        observe::upstream_rq(ctx, c, addr, true);
        if let Some(cl) = ctx.clusters.get_mut(c) {
            cl.track(addr, 1);
        }
        let mut tx = shadow.head;
        tx.extend_from_slice(body);
        m.next_gen += 1;
        let gen = m.next_gen;
        let now = ctx.now();
        let until = now + timeout.unwrap_or(MAX_TIME);
        let connect_by = ctx
            .clusters
            .get(c)
            .map_or(until, |cl| now + cl.cfg.connect_timeout);
        let idx = m.shadows.insert(InFlight {
            req: OneShot::new(sock, tx, shadow.is_head),
            cluster: c,
            addr,
            gen,
            until,
        });
        // First the cluster's connect timeout; once connected, the route's.
        ctx.timers
            .arm(connect_by.min(until), TimerKey::Mirror(idx, gen));
        drive(m, ctx, idx);
    });
}

/// Readiness on shadow `idx`'s connection.
pub fn on_event(ctx: &mut Ctx, idx: usize) {
    with(ctx, |m, ctx| drive(m, ctx, idx));
}

/// `TimerKey::Mirror(idx, gen)` fired: a shadow still connecting is past the cluster's
/// `connect_timeout`, or one connected past the route's timeout; a connected one before then
/// waits for the latter.
pub fn on_timer(ctx: &mut Ctx, idx: usize, gen: u64) {
    with(ctx, |m, ctx| {
        let Some(s) = m.shadows.get(idx).filter(|s| s.gen == gen) else {
            return;
        };
        let now = ctx.now();
        if s.req.is_connected() && now < s.until {
            ctx.timers.arm(s.until, TimerKey::Mirror(idx, gen));
            return;
        }
        end(m, ctx, idx, End::Timeout);
    });
}

/// How a shadow ended.
enum End {
    Answered(u16),
    Failed,
    Timeout,
}

fn drive(m: &mut Mirrors, ctx: &mut Ctx, idx: usize) {
    let Some(s) = m.shadows.get_mut(idx) else {
        return;
    };
    match s.req.pump() {
        None => {}
        Some(Ok(status)) => end(m, ctx, idx, End::Answered(status)),
        Some(Err(())) => end(m, ctx, idx, End::Failed),
    }
}

/// Shadow `idx` is over: its connection is closed and its outcome counted in the mirror
/// cluster's stats, as a request's would be.
fn end(m: &mut Mirrors, ctx: &mut Ctx, idx: usize, how: End) {
    let Some(mut s) = m.shadows.remove(idx) else {
        return;
    };
    let _ = ctx.registry.deregister(&mut s.req.sock);
    let (c, addr) = (s.cluster, s.addr);
    if let Some(cl) = ctx.clusters.get_mut(c) {
        cl.track(addr, -1);
    }
    match how {
        End::Answered(status) => observe::upstream_status(ctx, c, addr, status),
        End::Failed if !s.req.is_connected() => {
            observe::upstream_connect_fail(ctx, c, addr, false);
        }
        End::Failed => log::debug!("mirror: shadow to {addr} failed before its answer"),
        End::Timeout => {
            let connect = !s.req.is_connected();
            if connect {
                observe::upstream_connect_fail(ctx, c, addr, true);
            } else {
                observe::upstream_rq_timeout(ctx, c, addr);
            }
        }
    }
    observe::upstream_cx_close(ctx, c, addr);
}

#[cfg(test)]
mod tests {
    use super::shadow_host;

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        for (host, want) in [
            ("example.com", "example.com-shadow"),
            ("example.com:8080", "example.com-shadow:8080"),
            ("10.0.0.1:80", "10.0.0.1-shadow:80"),
            ("[::1]:80", "[::1]-shadow:80"),
            ("[::1]", "[::1]-shadow"),
            ("a:b", "a-shadow:b"),
        ] {
            assert_eq!(shadow_host(host), want, "{host}");
        }
    }
}
