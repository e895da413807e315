//! Active health checks on the reactor: one checker per host of a health-checked cluster,
//! each with at most one connection of its own (never pooled for requests), registered as
//! `Tok::Health(index)`, and one timer entry (`TimerKey::Health`) for its next check or the
//! running check's timeout. Results go through `health::HostHealth`; the load balancer reads
//! the host's state (`ClusterRt::refresh_lb`). Nothing here exists for a cluster without
//! `health_checks`, so such a proxy arms no timer for it.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use super::health::{self, Failure};
use crate::config::template::Vars;
use crate::config::{HeaderMutations, HealthCheckKind};
use crate::context::Ctx;
use crate::http::codec::{self, ChunkedDecoder, Framing};
use crate::reactor::{TimerKey, Tok};
use crate::route::edits::{self, HeaderList};
use crate::util::Slab;

/// Most bytes of an answer kept: an HTTP response head, or what a TCP check searches. A
/// longer HTTP head fails the check; a TCP check keeps searching the latest bytes.
const MAX_KEPT: usize = 64 * 1024;

/// Every checker, by index (the index is its token and timer key).
#[derive(Debug, Default)]
pub struct Checkers {
    slots: Slab<Checker>,
    next_gen: u64,
}

#[derive(Debug)]
struct Checker {
    cluster: usize,
    addr: SocketAddr,
    gen: u64,
    conn: Option<Conn>,
    /// When the next check starts; `None` while one runs.
    next_at: Option<Instant>,
    /// The running check's deadline.
    timeout_at: Option<Instant>,
    /// The timer entry in the heap (an earlier deadline pushes another one; later ones wait
    /// for this to fire).
    armed: Option<Instant>,
}

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    connected: bool,
    /// The request (or TCP payload) still to write.
    tx: Vec<u8>,
    reply: Reply,
}

/// The running check's answer, as far as it came (also a Zipkin report's answer).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) rx: Vec<u8>,
    resp: Resp,
    /// The answer lets the connection serve the next check (HTTP keep-alive).
    reusable: bool,
    /// The request was a HEAD: the answer has no body.
    head: bool,
    /// `Some`: the body is kept here, up to `MAX_BODY_KEPT` bytes (the rest is dropped), for
    /// an owner that reads it (the Datadog agent's sampling rates).
    pub(crate) body: Option<Vec<u8>>,
}

/// Most bytes of a kept body.
const MAX_BODY_KEPT: usize = 64 * 1024;

impl Default for Reply {
    fn default() -> Reply {
        Reply {
            rx: Vec::new(),
            resp: Resp::Head,
            reusable: true,
            head: false,
            body: None,
        }
    }
}

/// Adds `data` to a kept body, up to its bound.
fn keep(body: &mut Option<Vec<u8>>, data: &[u8]) {
    if let Some(b) = body {
        let room = MAX_BODY_KEPT.saturating_sub(b.len());
        b.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
    }
}

impl Reply {
    /// The answer to a request, a HEAD (`head`) or not.
    pub(crate) fn for_request(head: bool) -> Reply {
        Reply {
            head,
            ..Reply::default()
        }
    }
}

/// Where the HTTP answer of the running check is.
#[derive(Debug)]
enum Resp {
    Head,
    Body {
        status: u16,
        keep_alive: bool,
        /// `x-envoy-immediate-health-check-fail` was in the head.
        immediate: bool,
        framing: Framing,
        left: u64,
        chunks: ChunkedDecoder,
    },
}

/// How a running check ended.
enum Outcome {
    Pass,
    Fail(Failure),
    /// An HTTP answer outside `expected_statuses`: whether it asked for an immediate
    /// exclusion, and whether its status is in `retriable_statuses`.
    Status(bool, bool),
}

impl Checkers {
    /// Makes the checkers match the clusters' hosts: a new host gets a checker whose first
    /// check starts after `initial_jitter`; a removed host's checker and connection go.
    pub fn sync(&mut self, ctx: &mut Ctx) {
        let mut known = std::collections::HashSet::new();
        for i in self.slots.keys() {
            let Some(k) = self.slots.get(i) else {
                continue;
            };
            let present = ctx
                .clusters
                .get(k.cluster)
                .is_some_and(|c| c.hosts.iter().any(|h| h.addr == k.addr));
            if present {
                known.insert((k.cluster, k.addr));
            } else if let Some(mut k) = self.slots.remove(i) {
                close(ctx, &mut k.conn);
            }
        }
        for c in 0..ctx.clusters.len() {
            let Some(hc) = ctx.clusters[c].cfg.health_check.clone() else {
                continue;
            };
            let addrs: Vec<SocketAddr> = ctx.clusters[c].hosts.iter().map(|h| h.addr).collect();
            for addr in addrs {
                if !known.insert((c, addr)) {
                    continue;
                }
                self.next_gen += 1;
                let at = ctx.now() + health::initial(&hc, &mut ctx.rng);
                let idx = self.slots.insert(Checker {
                    cluster: c,
                    addr,
                    gen: self.next_gen,
                    conn: None,
                    next_at: Some(at),
                    timeout_at: None,
                    armed: None,
                });
                self.arm(ctx, idx);
            }
        }
    }

    /// The timer entry (`idx`, `gen`) for `at` fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx, idx: usize, gen: u64, at: Instant) {
        let Some(k) = self.slots.get_mut(idx) else {
            return;
        };
        if k.gen != gen || k.armed != Some(at) {
            return; // superseded by an earlier entry, or the checker is gone
        }
        k.armed = None;
        let now = ctx.now();
        if k.timeout_at.is_some_and(|t| t <= now) {
            close(ctx, &mut k.conn);
            self.finish(ctx, idx, Outcome::Fail(Failure::Timeout));
        } else if k.next_at.is_some_and(|t| t <= now) {
            self.start(ctx, idx);
        }
        self.arm(ctx, idx);
    }

    /// Readiness on checker `idx`'s connection.
    pub fn on_event(&mut self, ctx: &mut Ctx, idx: usize) {
        let Some(k) = self.slots.get_mut(idx) else {
            return;
        };
        if k.timeout_at.is_none() {
            // Between checks the host has nothing to say: bytes or a FIN end the connection
            // (the next check opens another).
            let quiet = k.conn.as_mut().is_none_or(|c| {
                let mut b = [0u8; 512];
                matches!(c.sock.read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            });
            if !quiet {
                close(ctx, &mut k.conn);
            }
            return;
        }
        let cluster = k.cluster;
        let Some(conn) = k.conn.as_mut() else {
            return;
        };
        if let Some(o) = drive(ctx, cluster, conn) {
            self.finish(ctx, idx, o);
            self.arm(ctx, idx);
        }
    }

    /// Starts a check: connect if there is no connection, send the request.
    fn start(&mut self, ctx: &mut Ctx, idx: usize) {
        let Some(k) = self.slots.get_mut(idx) else {
            return;
        };
        let (cluster, addr) = (k.cluster, k.addr);
        let Some(cl) = ctx.clusters.get(cluster) else {
            return;
        };
        let Some(hc) = cl.cfg.health_check.as_ref() else {
            return;
        };
        let mut request = match &hc.kind {
            HealthCheckKind::Http {
                method,
                host,
                path,
                headers,
                ..
            } => {
                // Envoy: the endpoint's health check hostname, else the check's, else the
                // cluster's name.
                let host = match cl.check_host(addr) {
                    Some(h) => h,
                    None if host.is_empty() => &cl.cfg.name,
                    None => host,
                };
                http_request(addr, method, host, path, headers)
            }
            HealthCheckKind::Tcp { send, .. } => send.clone(),
        };
        let head = matches!(&hc.kind, HealthCheckKind::Http { method, .. } if method == "HEAD");
        k.next_at = None;
        k.timeout_at = Some(ctx.now() + hc.timeout);
        if let Some(Some(h)) = ctx.stats.health.get(cluster).copied() {
            ctx.stats.store.inc(h.attempt);
        }
        if k.conn.is_none() {
            match open(ctx, cluster, addr, idx) {
                Ok(c) => {
                    // A new connection of a cluster with the upstream PROXY protocol socket
                    // starts with its header: no client to name, so v1 names the check's
                    // own connection and v2 is LOCAL (as Envoy's health checks send).
                    let version = ctx.clusters.get(cluster).and_then(|c| c.cfg.proxy_protocol);
                    if let Some(v) = version {
                        let to = ctx
                            .clusters
                            .get(cluster)
                            .map_or(addr, |cl| cl.check_addr(addr));
                        let local = c.sock.local_addr().ok();
                        let h = crate::http::upstream::proxy_header(v, None, local, to);
                        request.splice(0..0, h.iter().copied());
                    }
                    k.conn = Some(c);
                }
                Err(e) => {
                    log::debug!("health check of {addr}: {e}");
                    self.finish(ctx, idx, Outcome::Fail(Failure::Network));
                    return;
                }
            }
        }
        if let Some(conn) = k.conn.as_mut() {
            conn.tx = request;
            conn.reply = Reply {
                head,
                ..Reply::default()
            };
            if let Some(o) = drive(ctx, cluster, conn) {
                self.finish(ctx, idx, o);
            }
        }
    }

    /// The running check of `idx` ended: the host's state, stats, the next check.
    fn finish(&mut self, ctx: &mut Ctx, idx: usize, outcome: Outcome) {
        let Some(k) = self.slots.get_mut(idx) else {
            return;
        };
        k.timeout_at = None;
        let (cluster, addr) = (k.cluster, k.addr);
        let reuse = ctx
            .clusters
            .get(cluster)
            .and_then(|c| c.cfg.health_check.as_ref())
            .is_some_and(|hc| hc.reuse_connection);
        let connect_only = ctx
            .clusters
            .get(cluster)
            .and_then(|c| c.cfg.health_check.as_ref())
            .is_some_and(
                |hc| matches!(&hc.kind, HealthCheckKind::Tcp { receive, .. } if receive.is_empty()),
            );
        let reusable = k.conn.as_ref().is_some_and(|c| c.reply.reusable);
        if !matches!(outcome, Outcome::Pass) || !reuse || connect_only || !reusable {
            close(ctx, &mut k.conn);
        }
        let result = match outcome {
            Outcome::Pass => Ok(()),
            Outcome::Fail(f) => Err((f, false)),
            Outcome::Status(immediate, false) => Err((Failure::Active, immediate)),
            Outcome::Status(immediate, true) => Err((Failure::Retriable, immediate)),
        };
        let next = record(ctx, cluster, addr, result);
        if let (Some(k), Some(d)) = (self.slots.get_mut(idx), next) {
            k.next_at = Some(ctx.now() + d);
        }
    }

    /// Pushes a timer entry for `idx`'s next deadline unless one as early is in the heap.
    fn arm(&mut self, ctx: &mut Ctx, idx: usize) {
        let Some(k) = self.slots.get_mut(idx) else {
            return;
        };
        let Some(at) = k.timeout_at.or(k.next_at) else {
            return;
        };
        if k.armed.is_some_and(|a| a <= at) {
            return;
        }
        k.armed = Some(at);
        ctx.timers.arm(at, TimerKey::Health(idx, k.gen));
    }
}

/// Applies a check result (`Err((why, exclude))`) to the host at `addr` of `cluster`: its
/// state, the load balancer, stats, a log line when it changes. Returns the wait before the
/// next check (None when the host or its check is gone).
fn record(
    ctx: &mut Ctx,
    cluster: usize,
    addr: SocketAddr,
    result: Result<(), (Failure, bool)>,
) -> Option<std::time::Duration> {
    let traffic = ctx
        .stats
        .clusters
        .get(cluster)
        .is_some_and(|cs| ctx.stats.store.counter_value(cs.upstream_cx_total) > 0);
    let cl = ctx.clusters.get_mut(cluster)?;
    let hc = cl.cfg.health_check.as_ref()?;
    let (healthy_threshold, unhealthy_threshold) = (hc.healthy_threshold, hc.unhealthy_threshold);
    let name = cl.cfg.name.clone();
    let h = cl.host_mut(addr)?;
    let was_failed = h.health.failed;
    let was = (h.unhealthy(), h.health.excluded);
    let t = match result {
        Ok(()) => h.health.success(healthy_threshold),
        Err((why, exclude)) => {
            let t = h.health.failure(why, unhealthy_threshold);
            if exclude {
                h.health.excluded = true;
            }
            t
        }
    };
    let now_failed = h.health.failed;
    let flags = h.health.flags();
    // The balancer is rebuilt only when what it reads changed: a rebuild starts its
    // schedules (round robin, EDF) and hash tables over.
    if was != (h.unhealthy(), h.health.excluded) {
        cl.refresh_lb();
    }
    if was_failed != now_failed {
        log::info!("cluster {name}: host {addr} is now {flags} (active health check)");
    }
    if let Some(Some(st)) = ctx.stats.health.get(cluster).copied() {
        let s = &mut ctx.stats.store;
        match result {
            Ok(()) => s.inc(st.success),
            Err((why, _)) => {
                s.inc(st.failure);
                match why {
                    Failure::Network | Failure::Timeout => s.inc(st.network_failure),
                    Failure::Passive => s.inc(st.passive_failure),
                    Failure::Active | Failure::Retriable => {}
                }
            }
        }
    }
    if result.is_ok() {
        crate::observe::outlier_check_passed(ctx, cluster, addr);
    }
    crate::observe::membership(ctx, cluster);
    let hc = ctx.clusters.get(cluster)?.cfg.health_check.as_ref()?;
    Some(health::interval(
        hc,
        result.is_ok(),
        t,
        traffic,
        &mut ctx.rng,
    ))
}

/// A proxied response from `addr` carried `x-envoy-immediate-health-check-fail`: with health
/// checking, the host is unhealthy at once (Envoy's router does this through the host's health
/// checker; the next check can bring it back). Without health checking nothing happens.
pub fn immediate_fail(ctx: &mut Ctx, cluster: usize, addr: SocketAddr) {
    let checked = ctx
        .clusters
        .get(cluster)
        .is_some_and(|c| c.cfg.health_check.is_some());
    if checked {
        record(ctx, cluster, addr, Err((Failure::Passive, false)));
    }
}

/// Whether every host of every health-checked cluster has had its first check (start-up
/// waits for that, as Envoy's cluster initialization does).
pub fn first_round_done(ctx: &Ctx) -> bool {
    ctx.clusters
        .iter()
        .filter(|c| c.cfg.health_check.is_some())
        .all(|c| c.hosts.iter().all(|h| !h.health.pending()))
}

/// Envoy's check request: `GET path` with `host` and `user-agent: Envoy/HC`, then the
/// configured edits, evaluated as Envoy does for a check (downstream address 127.0.0.1,
/// upstream host `addr`, `%REQ(..)%` from the request before the edits).
fn http_request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &HeaderMutations,
) -> Vec<u8> {
    let ops = edits::request_ops(headers);
    let mut list: HeaderList<'_> = vec![
        ("host".into(), host.as_bytes().into()),
        ("user-agent".into(), b"Envoy/HC"[..].into()),
    ];
    if !ops.is_empty() {
        let before = list.clone();
        let req = |name: &str| match name {
            ":path" => Some(path.to_string()),
            ":method" => Some(method.to_string()),
            ":authority" => Some(host.to_string()),
            _ => before
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
        };
        let vars = Vars {
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            start: std::time::SystemTime::now(),
            minor: 1,
            upstream: Some(addr),
            req: &req,
        };
        edits::apply(&mut list, &ops, &|t| t.render(&vars));
    }
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for (name, value) in &list {
        codec::put_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A new connection to `addr` (or its endpoint's `health_check_config.port_value`) for
/// checker `idx`. Out of descriptors, idle pooled connections
/// and pipes are given up first; if that does not help the check fails (a network failure).
fn open(ctx: &mut Ctx, cluster: usize, addr: SocketAddr, idx: usize) -> io::Result<Conn> {
    let to = ctx
        .clusters
        .get(cluster)
        .map_or(addr, |c| c.check_addr(addr));
    let sock = connect(ctx, cluster, to, Tok::Health(idx))?;
    Ok(Conn {
        sock,
        connected: false,
        tx: Vec::new(),
        reply: Reply::default(),
    })
}

/// A connection of the proxy's own (not a request's) to `addr`, a host of `cluster`, with the
/// cluster's socket options, registered as `tok`.
pub(crate) fn connect(
    ctx: &mut Ctx,
    cluster: usize,
    addr: SocketAddr,
    tok: Tok,
) -> io::Result<TcpStream> {
    let mut sock = crate::http::upstream::open_socket(ctx, cluster, addr)?;
    ctx.registry.register(
        &mut sock,
        tok.token(),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(sock)
}

fn close(ctx: &mut Ctx, conn: &mut Option<Conn>) {
    if let Some(mut c) = conn.take() {
        let _ = ctx.registry.deregister(&mut c.sock);
    }
}

/// Moves the running check's bytes as far as the socket allows; `Some` when it ended.
fn drive(ctx: &Ctx, cluster: usize, c: &mut Conn) -> Option<Outcome> {
    let hc = ctx.clusters.get(cluster)?.cfg.health_check.as_ref()?;
    if !c.connected {
        match c.sock.take_error() {
            Ok(Some(_)) | Err(_) => return Some(Outcome::Fail(Failure::Network)),
            Ok(None) => {}
        }
        match c.sock.peer_addr() {
            Ok(_) => c.connected = true,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
            Err(_) => return Some(Outcome::Fail(Failure::Network)),
        }
        // A TCP check without `receive` only tests the connect (Envoy then closes it).
        if matches!(&hc.kind, HealthCheckKind::Tcp { receive, .. } if receive.is_empty()) {
            return Some(Outcome::Pass);
        }
    }
    while !c.tx.is_empty() {
        match c.sock.write(&c.tx) {
            Ok(0) => return Some(Outcome::Fail(Failure::Network)),
            Ok(n) => {
                c.tx.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Outcome::Fail(Failure::Network)),
        }
    }
    let mut eof = false;
    let mut b = [0u8; 4096];
    loop {
        match c.sock.read(&mut b) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                c.reply.rx.extend_from_slice(&b[..n]);
                if let Some(o) = answer(hc, &mut c.reply, false) {
                    return Some(o);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Outcome::Fail(Failure::Network)),
        }
    }
    if eof {
        return Some(answer(hc, &mut c.reply, true).unwrap_or(Outcome::Fail(Failure::Network)));
    }
    None
}

/// Reads the answer in `c.rx`; `Some` once it decides the check. `eof`: the host closed.
fn answer(hc: &crate::config::HealthCheck, c: &mut Reply, eof: bool) -> Option<Outcome> {
    match &hc.kind {
        HealthCheckKind::Tcp { receive, .. } => {
            if health::blocks_found(receive, &c.rx) {
                c.rx.clear();
                return Some(Outcome::Pass);
            }
            if c.rx.len() > MAX_KEPT {
                let cut = c.rx.len() - MAX_KEPT;
                c.rx.drain(..cut);
            }
            None
        }
        HealthCheckKind::Http {
            expected_statuses,
            retriable_statuses,
            ..
        } => {
            let done = http_answer(c, eof)?;
            Some(match done {
                Err(()) => Outcome::Fail(Failure::Network),
                Ok((status, immediate, reusable)) => {
                    c.reusable = reusable;
                    if health::status_expected(expected_statuses, status) {
                        Outcome::Pass
                    } else {
                        let retriable = health::status_expected(retriable_statuses, status);
                        Outcome::Status(immediate, retriable)
                    }
                }
            })
        }
    }
}

/// A whole HTTP answer: (status, immediate-fail header, connection reusable); `Err` for a
/// malformed one.
pub(crate) type HttpAnswer = Result<(u16, bool, bool), ()>;

/// Parses the HTTP response in `c.rx` as far as it goes: `Some(Ok((status, immediate,
/// reusable)))` once the whole response is read, `Some(Err(()))` for a malformed one (a
/// protocol error, which Envoy counts as a network failure).
pub(crate) fn http_answer(c: &mut Reply, eof: bool) -> Option<HttpAnswer> {
    loop {
        match &mut c.resp {
            Resp::Head => {
                let mut slots = codec::header_slots();
                let head = match codec::parse_response(&c.rx, &mut slots, c.head) {
                    Ok(Some(h)) => h,
                    Ok(None) if c.rx.len() > MAX_KEPT => return Some(Err(())),
                    Ok(None) if eof => return Some(Err(())),
                    Ok(None) => return None,
                    Err(_) => return Some(Err(())),
                };
                let (status, framing, keep_alive, len) =
                    (head.status, head.framing, head.keep_alive, head.head_len);
                let immediate = head.headers.iter().any(|h| {
                    h.name
                        .eq_ignore_ascii_case("x-envoy-immediate-health-check-fail")
                });
                c.rx.drain(..len);
                if (100..200).contains(&status) {
                    continue; // an interim response: the final one follows
                }
                let left = match framing {
                    Framing::Length(n) => n,
                    _ => 0,
                };
                c.resp = Resp::Body {
                    status,
                    keep_alive,
                    immediate,
                    framing,
                    left,
                    chunks: ChunkedDecoder::new(),
                };
            }
            Resp::Body {
                status,
                keep_alive,
                immediate,
                framing,
                left,
                chunks,
            } => {
                let done = match framing {
                    Framing::None => true,
                    Framing::Length(_) => {
                        let n = (*left).min(c.rx.len() as u64);
                        keep(&mut c.body, c.rx.get(..n as usize).unwrap_or_default());
                        c.rx.drain(..n as usize);
                        *left -= n;
                        *left == 0
                    }
                    Framing::Chunked => {
                        match chunks.decode(&c.rx, usize::MAX, |d| keep(&mut c.body, d)) {
                            Ok(n) => {
                                c.rx.drain(..n);
                                chunks.is_done()
                            }
                            Err(_) => return Some(Err(())),
                        }
                    }
                    Framing::UntilClose => {
                        keep(&mut c.body, &c.rx);
                        c.rx.clear();
                        eof
                    }
                };
                if done {
                    // Bytes after the response: the connection is not reused.
                    let reusable = *keep_alive && c.rx.is_empty() && !eof;
                    return Some(Ok((*status, *immediate, reusable)));
                }
                if eof {
                    return Some(Err(()));
                }
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` one by one; the result once decided, with what stayed unread.
    fn feed(parts: &[&[u8]], eof: bool) -> (Option<HttpAnswer>, usize) {
        let mut r = Reply::default();
        for p in parts {
            r.rx.extend_from_slice(p);
            if let Some(done) = http_answer(&mut r, false) {
                return (Some(done), r.rx.len());
            }
        }
        (
            if eof { http_answer(&mut r, true) } else { None },
            r.rx.len(),
        )
    }

    #[test]
    fn a_kept_body_is_gathered_in_any_framing_and_bounded() {
        let body = |parts: &[&[u8]], eof: bool| {
            let mut r = Reply {
                body: Some(Vec::new()),
                ..Reply::default()
            };
            let mut done = None;
            for p in parts {
                r.rx.extend_from_slice(p);
                done = done.or(http_answer(&mut r, false));
            }
            if eof {
                done = done.or(http_answer(&mut r, true));
            }
            (done.map(|d| d.map(|a| a.0)), r.body.unwrap_or_default())
        };
        let (d, b) = body(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab", b"cd"],
            false,
        );
        assert_eq!((d, &b[..]), (Some(Ok(200)), &b"abcd"[..]));
        let (d, b) = body(
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"],
            false,
        );
        assert_eq!((d, &b[..]), (Some(Ok(200)), &b"abc"[..]));
        let (d, b) = body(&[b"HTTP/1.1 200 OK\r\n\r\nxyz"], true);
        assert_eq!((d, &b[..]), (Some(Ok(200)), &b"xyz"[..]));
        // Past the bound the rest is read and dropped.
        let big = vec![b'a'; MAX_BODY_KEPT + 100];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", big.len());
        let (d, b) = body(&[head.as_bytes(), &big], false);
        assert_eq!((d, b.len()), (Some(Ok(200)), MAX_BODY_KEPT));
    }

    #[test]
    fn http_answers_are_read_whole_in_any_framing() {
        // Content-Length, split anywhere.
        let (d, _) = feed(
            &[
                b"HTTP/1.1 200 OK\r\ncontent-le",
                b"ngth: 4\r\n\r\nok",
                b"ok",
            ],
            false,
        );
        assert_eq!(d, Some(Ok((200, false, true))));
        assert_eq!(
            feed(&[b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok"], false).0,
            None
        );
        // Chunked, with an interim response first.
        let d = feed(
            &[
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n",
                b"x-envoy-immediate-health-check-fail: true\r\n\r\n2\r\nno\r\n0\r\n\r\n",
            ],
            false,
        );
        assert_eq!(d.0, Some(Ok((503, true, true))));
        // To the close: never reusable.
        assert_eq!(
            feed(&[b"HTTP/1.0 200 OK\r\n\r\nbody"], true).0,
            Some(Ok((200, false, false)))
        );
        // Connection: close, and bytes after the answer, end the connection.
        let close = feed(
            &[b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"],
            false,
        );
        assert_eq!(close.0, Some(Ok((200, false, false))));
        let extra = feed(&[b"HTTP/1.1 204 No\r\n\r\nHTTP/1.1"], false);
        assert_eq!(extra, (Some(Ok((204, false, false))), 8));
    }

    #[test]
    fn the_answer_to_a_head_check_has_no_body() {
        let mut r = Reply {
            head: true,
            ..Reply::default()
        };
        r.rx.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(http_answer(&mut r, false), Some(Ok((200, false, true))));
    }

    #[test]
    fn broken_http_answers_fail_the_check() {
        assert_eq!(feed(&[b"HTTP/1.1 2000 OK\r\n\r\n"], false).0, Some(Err(())));
        assert_eq!(feed(&[b"garbage\r\n\r\n"], false).0, Some(Err(())));
        // Cut short by the close: inside the head, inside the body.
        assert_eq!(feed(&[b"HTTP/1.1 200 OK\r\n"], true).0, Some(Err(())));
        assert_eq!(
            feed(&[b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab"], true).0,
            Some(Err(()))
        );
        let bad_chunk = feed(
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
            false,
        );
        assert_eq!(bad_chunk.0, Some(Err(())));
        // A head that never ends is bounded.
        let long = vec![b'a'; MAX_KEPT + 10];
        let d = feed(&[b"HTTP/1.1 200 OK\r\nx-long: ", &long], false);
        assert_eq!(d.0, Some(Err(())));
    }
}
