//! The exchange core without sockets: an in-memory environment and a driver that moves bytes
//! between a simulated client, the core and a simulated upstream. The split tests, the model
//! test and the fuzzer all run the core through this.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Action, Close, Conn, Env, Failure, Limits, Reply};
use crate::access_log::Rq;
use crate::config::{CodecType, RetryOn, RetryPolicy, ServerHeader};
use crate::http::buf::BufPool;
use crate::http::codec::RequestHead;
use crate::http::ext_authz::{Check, Verdict};
use crate::http::local::write_local_reply;
use crate::http::request::{Decision, Forward, LocalDecision, Pending, Wait};
use crate::http::upgrade::Upgrade;

/// The upstream address the simulated cluster resolves to.
pub const UPSTREAM: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

/// Routing for the simulation: `/local…` → a direct response, `/missing…` → 404, `/retry…`
/// → upstream with a retry policy, `/mirror…` → upstream and a shadow, `/authz…` → an
/// ext_authz check first (200 lets it route as usual; anything else is 403), `/delay…` → a
/// fault delay of 300 ms first (`/delay-idle…` under a 100 ms stream idle timeout), anything
/// else → upstream. Upgrade requests are allowed
/// (forwarded), except to `/noupgrade…` (403); CONNECT is terminated. A fixed Date keeps output
/// byte-for-byte comparable.
#[derive(Debug, Default)]
pub struct TestEnv {
    pub pool: BufPool,
    pub spares: super::Spares,
    pub closing: bool,
    pub handoff: bool,
    /// Requests begun and ended (every begun request must end exactly once).
    pub begun: u64,
    pub ended: u64,
    pub statuses: Vec<u16>,
    /// Response body bytes the ended requests' records say were sent.
    pub bytes_tx: u64,
    /// Net active-request count per host (must return to 0).
    pub active: i64,
    /// Tunnels opened, and open now (must return to 0).
    pub tunnels: u64,
    pub tunnels_open: i64,
    /// Connections answered as HTTP/2 clients (GOAWAY).
    pub http2_prefaces: u64,
    /// Circuit-breaker resources held now, by `Resource` (must return to 0).
    pub held: [i64; 4],
    /// Limits by `Resource` (`None`: unlimited), as one cluster's breakers.
    pub max: [Option<i64>; 4],
    /// Requests refused by `max_pending_requests` / `max_requests`.
    pub overflows: u64,
    /// A TCP proxy finds no host to connect to.
    pub tcp_no_host: bool,
    /// TCP proxy events counted, in order.
    pub tcp_stats: Vec<super::TcpStat>,
    /// The flags of the ended records, in order.
    pub flags: Vec<crate::access_log::Flags>,
    /// Shadows sent (`/mirror…` requests): their head and body.
    pub shadows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Requests whose body outgrew what is kept for retries and shadows.
    pub abandoned: u64,
    /// ext_authz verdicts the paused requests resumed with, in order.
    pub verdicts: Vec<Verdict>,
    retry: Option<RetryPolicy>,
    rng: Option<crate::util::Rng>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            retry: Some(RetryPolicy {
                retry_on: RetryOn {
                    five_xx: true,
                    ..RetryOn::default()
                },
                num_retries: 2,
                per_try_timeout: Some(Duration::from_secs(1)),
                retriable_status_codes: Vec::new(),
                back_off_base: Duration::from_millis(25),
                back_off_max: Duration::from_millis(250),
            }),
            ..TestEnv::default()
        }
    }
}

/// Serialises the upstream head the way the proxy does in spirit: method, path, Host, the
/// client's headers minus framing, and our own framing.
fn upstream_head(req: &RequestHead<'_>, upgrade: bool) -> Vec<u8> {
    use crate::http::codec::{is_hop_by_hop, put_header, Framing};
    let mut h = Vec::with_capacity(128);
    h.extend_from_slice(req.method.as_bytes());
    h.push(b' ');
    h.extend_from_slice(req.path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(&mut h, "host", req.host.unwrap_or("-").as_bytes());
    for hd in req.headers {
        if upgrade && hd.name.eq_ignore_ascii_case("upgrade") {
            put_header(&mut h, hd.name, hd.value);
            continue;
        }
        if is_hop_by_hop(hd.name)
            || hd.name.eq_ignore_ascii_case("host")
            || hd.name.eq_ignore_ascii_case("expect")
            || hd.name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        put_header(&mut h, hd.name, hd.value);
    }
    if upgrade {
        put_header(&mut h, "connection", b"upgrade");
    }
    match req.framing {
        Framing::Length(n) => put_header(&mut h, "content-length", n.to_string().as_bytes()),
        Framing::Chunked => put_header(&mut h, "transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {}
    }
    h.extend_from_slice(b"\r\n");
    h
}

impl TestEnv {
    /// The routing itself (after any check).
    fn routed(&mut self, req: &RequestHead<'_>, _rq: &mut Rq) -> Decision {
        let local = |status: u16, body: &str| {
            Decision::Local(LocalDecision {
                status,
                body: body.to_string().into(),
                location: None,
                edits: Vec::new(),
                upstream: None,
                flag: 0,
                direct: status == 200,
                route: None,
                details: std::borrow::Cow::Borrowed(""),
            })
        };
        if req.path.starts_with("/local") {
            return local(200, "local");
        }
        if req.path.starts_with("/missing") {
            return local(404, "");
        }
        let upgrade = match crate::http::upgrade::requested(req) {
            None => None,
            Some(_) if req.path.starts_with("/noupgrade") => return local(403, ""),
            Some(_) if req.method == "CONNECT" => Some(Upgrade::Terminate),
            Some(_) => Some(Upgrade::Upgrade),
        };
        let retry = req.path.starts_with("/retry");
        let head = upstream_head(req, upgrade == Some(Upgrade::Upgrade));
        let shadows = if req.path.starts_with("/mirror") && upgrade.is_none() {
            vec![crate::http::mirror::Shadow {
                cluster: 1,
                head: head.clone(),
                is_head: req.method == "HEAD",
            }]
        } else {
            Vec::new()
        };
        Decision::Forward(Forward {
            cluster: 0,
            addr: UPSTREAM,
            connect_timeout: Duration::from_millis(250),
            resp_headers: crate::http::codec::MAX_HEADERS,
            buffer_limit: 64 * 1024,
            head,
            auto_host: None,
            timeout: Some(Duration::from_secs(15)),
            // Tunnels get the stream idle timeout (plain exchanges here run without one).
            idle: upgrade.map(|_| Duration::from_secs(30)),
            route: (0, usize::from(retry)),
            resp_edits: Vec::new(),
            retries: retry.then_some(2),
            per_try: retry.then_some(Duration::from_secs(1)),
            retry_policy: None,
            request_id: None,
            upgrade,
            rewritten: None,
            timeout_status: 504,
            shadows,
            body_limit: None,
            attempt_at: None,
            attempts_in_response: false,
            sni: None,
            compress: None,
            inflate: None,
            // An HTTP/2 cluster (trailers pass when the client speaks HTTP/2 too).
            h2: req.path.contains("/h2"),
        })
    }
}

impl Env for TestEnv {
    fn pool(&mut self) -> &mut BufPool {
        &mut self.pool
    }

    fn spares(&mut self) -> &mut super::Spares {
        &mut self.spares
    }

    fn server(&self) -> (&str, ServerHeader) {
        ("baton", ServerHeader::Overwrite)
    }

    fn closing(&self) -> bool {
        self.closing
    }

    fn handoff(&self) -> bool {
        self.handoff
    }

    fn begin(&mut self, _req: Option<&RequestHead<'_>>, minor: u8, now: Instant) -> Rq {
        self.begun += 1;
        Rq::new(now, 0, UPSTREAM, minor)
    }

    fn route(&mut self, req: &RequestHead<'_>, rq: &mut Rq) -> Decision {
        if req.path.starts_with("/authz") {
            return Decision::Pause(Box::new(Pending::new(Wait::Check(Check {
                cluster: "authz".into(),
                request: b"GET /authz HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n".to_vec(),
                grpc: None,
                is_head: false,
                timeout: Duration::from_millis(200),
            }))));
        }
        if req.path.starts_with("/delay") {
            // A fault filter's delay: routed as the rest once it is over; `/delay-idle` under
            // a stream idle timeout shorter than the delay.
            let mut p = Pending::new(Wait::Delay(Duration::from_millis(300)));
            if req.path.starts_with("/delay-idle") {
                p.stream_idle = Some(Duration::from_millis(100));
            }
            return Decision::Pause(Box::new(p));
        }
        self.routed(req, rq)
    }

    fn resume(
        &mut self,
        req: &RequestHead<'_>,
        rq: &mut Rq,
        pending: Box<Pending>,
        verdict: Verdict,
    ) -> Decision {
        if let Wait::Delay(_) = pending.wait {
            return self.routed(req, rq);
        }
        let allowed =
            matches!(&verdict, Some(crate::http::ext_authz::Answer::Http(r)) if r.status == 200);
        self.verdicts.push(verdict);
        if allowed {
            return self.routed(req, rq);
        }
        Decision::Local(LocalDecision {
            status: 403,
            body: "".into(),
            location: None,
            edits: Vec::new(),
            upstream: None,
            flag: crate::access_log::Flags::UAEX,
            direct: false,
            route: None,
            details: std::borrow::Cow::Borrowed("ext_authz_denied"),
        })
    }

    fn local_reply(&mut self, out: &mut Vec<u8>, r: &Reply<'_>, _rq: &mut Rq) -> usize {
        let date = "Mon, 30 Nov 2026 00:00:00 GMT";
        let extra: &[(&str, &str)] = if r.overloaded {
            &[("x-envoy-overloaded", "true")]
        } else {
            &[]
        };
        let ct = Some("text/plain");
        write_local_reply(out, r.status, r.body, r.close, "baton", date, ct, extra)
    }

    fn response_head(&mut self, rq: &mut Rq, status: u16, _headers: &[httparse::Header<'_>]) {
        rq.status = status;
    }

    fn end(&mut self, rq: &mut Rq, _now: Instant) {
        self.ended += 1;
        self.statuses.push(rq.status);
        self.bytes_tx += rq.bytes_tx;
        self.flags.push(rq.flags);
    }

    fn retry_policy(&self, route: (usize, usize)) -> Option<&RetryPolicy> {
        (route.1 == 1).then_some(self.retry.as_ref()).flatten()
    }

    fn next_host(&mut self, _cluster: usize, _old: SocketAddr) -> Option<SocketAddr> {
        Some(UPSTREAM)
    }

    fn hostname_of(&self, _cluster: usize, _addr: SocketAddr) -> Option<String> {
        None
    }

    fn track(&mut self, _cluster: usize, _addr: SocketAddr, delta: i32) {
        self.active += i64::from(delta);
    }

    fn random_below(&mut self, n: u64) -> u64 {
        // Seeded: a run can be replayed exactly.
        self.rng
            .get_or_insert_with(|| crate::util::Rng::with_seed(7))
            .below(n.max(1))
    }

    fn upstream_rq(&mut self, _cluster: usize, _addr: SocketAddr, _fresh: bool) {}

    fn upstream_rq_timeout(&mut self, _cluster: usize, _addr: SocketAddr) {}

    fn upstream_connect_fail(&mut self, _cluster: usize, _addr: SocketAddr, _timeout: bool) {}
    fn upstream_reset(&mut self, _cluster: usize, _addr: SocketAddr) {}

    fn direct_response(&mut self) {}

    fn request_timeout(&mut self) {}

    fn tunnel(&mut self, open: bool) {
        if open {
            self.tunnels += 1;
        }
        self.tunnels_open += if open { 1 } else { -1 };
    }

    fn tunnel_moved(&mut self, _rq: &Rq, out: bool) {
        // The record leaves (as if ended here) or arrives (as if begun here).
        if out {
            self.ended += 1;
            self.tunnels_open -= 1;
        } else {
            self.begun += 1;
            self.tunnels_open += 1;
        }
    }

    fn retry_stat(&mut self, _cluster: usize, _s: super::RetryStat) {}

    fn mirror(&mut self, shadow: crate::http::mirror::Shadow, body: &[u8], _t: Option<Duration>) {
        self.shadows.push((shadow.head, body.to_vec()));
    }

    fn retry_or_shadow_abandoned(&mut self, _cluster: usize) {
        self.abandoned += 1;
    }

    fn acquire(&mut self, _cluster: usize, r: super::Resource, over: bool) -> bool {
        let i = r as usize;
        if !over && self.max[i].is_some_and(|m| self.held[i] >= m) {
            return false;
        }
        self.held[i] += 1;
        true
    }

    fn release(&mut self, _cluster: usize, r: super::Resource) {
        self.held[r as usize] -= 1;
    }

    fn pending_overflow(&mut self, _cluster: usize) {
        self.overflows += 1;
    }

    fn http2_preface(&mut self) {
        self.http2_prefaces += 1;
    }

    fn default_host_for_http_10(&self) -> Option<String> {
        None
    }

    fn tcp_begin(&mut self, now: Instant) -> (Rq, Option<super::TcpTarget>) {
        self.begun += 1;
        let mut rq = Rq::new(now, 0, UPSTREAM, 1);
        if self.tcp_no_host {
            rq.flags.set(crate::access_log::Flags::UH);
            return (rq, None);
        }
        let t = super::TcpTarget {
            cluster: 0,
            addr: UPSTREAM,
            connect_timeout: Duration::from_millis(250),
            buffer_limit: 64 * 1024,
        };
        (rq, Some(t))
    }

    fn tcp_stat(&mut self, s: super::TcpStat) {
        self.tcp_stats.push(s);
    }

    fn tcp_connect_head(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"CONNECT tunnel:443 HTTP/1.1\r\nHost: tunnel:443\r\n\r\n");
    }
}

/// The upstream connection as the simulation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpConn {
    None,
    /// Asked for and not attached yet (the test decides when).
    Wanted,
    Open,
}

/// A client, the core and an upstream wired together in memory.
#[derive(Debug)]
pub struct Sim {
    pub env: TestEnv,
    pub conn: Conn,
    pub now: Instant,
    /// Client bytes not yet taken by the core (backpressure keeps them here).
    pub client_pending: Vec<u8>,
    /// Everything the client received.
    pub client_got: Vec<u8>,
    /// Upstream bytes not yet taken by the core.
    pub up_pending: Vec<u8>,
    /// Everything sent on the current upstream connection.
    pub up_got: Vec<u8>,
    /// Everything sent upstream, all connections.
    pub up_all: Vec<u8>,
    pub up: UpConn,
    /// Attach connections as soon as they are asked for (else the test calls `attach`).
    pub auto_attach: bool,
    pub connects: u32,
    /// Connects that asked for a fresh (never pooled) connection.
    pub fresh_connects: u32,
    pub pooled: u32,
    /// Stop taking upstream output (an upstream that does not read).
    pub up_reads: bool,
    pub client_fin: bool,
    /// The upstream closed; delivered to the core once its pending bytes are taken.
    pub up_fin: bool,
    pub shut_down: bool,
    /// The core passed the client's FIN on to the upstream (tunnel).
    pub up_shut: bool,
    pub closed: Option<Close>,
    /// Stop taking client output (a client that does not read).
    pub client_reads: bool,
    /// Move response bodies the way a splicing driver does: what `splice_budget` grants goes
    /// from the upstream straight to the client, and nothing is read into the core while a
    /// flush would open a splice.
    pub splice: bool,
    /// Bytes moved that way.
    pub spliced: usize,
    /// ext_authz checks the core asked to send.
    pub checks: Vec<Check>,
}

impl Sim {
    pub fn new(max_head: usize) -> Sim {
        Sim::with_buffer_limit(max_head, 1 << 20)
    }

    /// As `new`, with the listener's `per_connection_buffer_limit_bytes` (`TestEnv`'s cluster
    /// limit is 64 KiB).
    pub fn with_buffer_limit(max_head: usize, buffer_limit: usize) -> Sim {
        Sim::with_limits(Sim::limits(max_head, buffer_limit))
    }

    /// As `new`, for a connection manager with `codec_type` (`new`'s is `AUTO`).
    pub fn with_codec(max_head: usize, codec_type: CodecType) -> Sim {
        Sim::with_limits(Limits {
            codec_type,
            ..Sim::limits(max_head, 1 << 20)
        })
    }

    /// A TCP proxy listener's connection (`tcp` its settings), buffers bounded by
    /// `buffer_limit`.
    pub fn tcp(tcp: super::TcpLimits, buffer_limit: usize) -> Sim {
        Sim::with_limits(Limits {
            tcp: Some(tcp),
            ..Sim::limits(8192, buffer_limit)
        })
    }

    pub fn with_limits(lim: Limits) -> Sim {
        let now = Instant::now();
        let lim = std::rc::Rc::new(lim);
        Sim {
            env: TestEnv::new(),
            conn: Conn::new(lim, now),
            now,
            client_pending: Vec::new(),
            client_got: Vec::new(),
            up_pending: Vec::new(),
            up_got: Vec::new(),
            up_all: Vec::new(),
            up: UpConn::None,
            auto_attach: true,
            connects: 0,
            fresh_connects: 0,
            pooled: 0,
            up_reads: true,
            client_fin: false,
            up_fin: false,
            shut_down: false,
            up_shut: false,
            closed: None,
            client_reads: true,
            splice: false,
            spliced: 0,
            checks: Vec::new(),
        }
    }

    pub fn limits(max_head: usize, buffer_limit: usize) -> Limits {
        Limits {
            max_head,
            idle_timeout: Some(Duration::from_secs(60)),
            request_headers_timeout: Some(Duration::from_secs(10)),
            request_timeout: None,
            stream_idle_timeout: Some(Duration::from_secs(30)),
            buffer_limit,
            accept_http_10: true,
            codec_type: CodecType::Auto,
            http2: crate::h2::server::Options::default(),
            max_headers: crate::http::codec::MAX_HEADERS,
            max_connection_duration: None,
            max_requests: None,
            underscores: crate::config::Underscores::Allow,
            linger: Some(Duration::from_secs(1)),
            proxy_100_continue: false,
            tcp: None,
        }
    }

    /// A handover of this simulation's open tunnel: the core's part is taken out and resumed
    /// in a new connection with `env` (another process's, or ours for a rollback); the peers'
    /// unread bytes (the sockets' kernel buffers, which travel with the fds) and what they
    /// received so far stay as they are. Returns false when there was no tunnel to take.
    pub fn hand_over(&mut self, env: Option<TestEnv>) -> bool {
        let lim = self.conn.lim.clone();
        let Some((state, rq)) = self.conn.take_tunnel(&mut self.env) else {
            return false;
        };
        if let Some(e) = env {
            self.env = e;
        }
        self.conn = Conn::resume_tunnel(
            lim,
            state,
            rq,
            (0, UPSTREAM),
            64 * 1024,
            &mut self.env,
            self.now,
        );
        self.run();
        true
    }

    /// The client sends bytes.
    pub fn client(&mut self, bytes: &[u8]) {
        if !self.client_fin {
            self.client_pending.extend_from_slice(bytes);
        }
        self.run();
    }

    /// The upstream sends bytes.
    pub fn upstream(&mut self, bytes: &[u8]) {
        if self.up == UpConn::Open {
            self.up_pending.extend_from_slice(bytes);
        }
        self.run();
    }

    /// The upstream closes its side.
    pub fn upstream_fin(&mut self) {
        if self.up == UpConn::Open {
            self.up_fin = true;
        }
        self.run();
    }

    /// The upstream connection fails (reset).
    pub fn upstream_reset(&mut self) {
        self.upstream_fails(Failure::Reset);
    }

    /// The upstream connection fails as `f` says (an HTTP/2 stream reset, a protocol error…).
    pub fn upstream_fails(&mut self, f: Failure) {
        if self.up == UpConn::Open {
            self.up = UpConn::None;
            self.up_pending.clear();
            self.up_fin = false;
            self.conn.up_failed(&mut self.env, f, self.now);
        }
        self.run();
    }

    /// Connecting fails.
    pub fn connect_refused(&mut self) {
        if self.up == UpConn::Wanted {
            self.up = UpConn::None;
            self.conn
                .up_failed(&mut self.env, Failure::ConnectFailed, self.now);
        }
        self.run();
    }

    /// The authorization service answers the paused request's check (`None`: the check
    /// failed).
    pub fn answer_check(&mut self, status: Option<u16>) {
        let verdict = status.map(|status| {
            crate::http::ext_authz::Answer::Http(crate::http::ext_authz::Reply {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            })
        });
        self.conn.check_answered(&mut self.env, verdict, self.now);
        self.run();
    }

    /// Gives the core the connection it asked for.
    pub fn attach(&mut self) {
        if self.up == UpConn::Wanted {
            self.open_upstream();
        }
        self.run();
    }

    /// A fresh upstream connection, attached and connected.
    fn open_upstream(&mut self) {
        self.up = UpConn::Open;
        self.up_got.clear();
        self.up_pending.clear();
        self.up_fin = false;
        self.up_shut = false;
        self.conn.up_attached(&mut self.env, false, None, self.now);
        self.conn.up_connected(&mut self.env, self.now);
    }

    pub fn client_close(&mut self) {
        self.client_fin = true;
        self.run();
    }

    /// Time passes.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.on_timeout(&mut self.env, self.now);
        self.run();
    }

    /// Moves bytes until nothing changes (bounded).
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            if self.closed.is_some() {
                return;
            }
            let mut moved = false;
            let room = self.conn.client_read_room();
            if room > 0 && !self.client_pending.is_empty() {
                let n = room.min(self.client_pending.len());
                let chunk: Vec<u8> = self.client_pending.drain(..n).collect();
                self.conn.client_in().extend(&mut self.env.pool, &chunk);
                moved = true;
            } else if room > 0 && self.client_fin && self.client_pending.is_empty() {
                self.conn.client_eof();
            }
            if self.up == UpConn::Open && self.up_reads {
                if let Some(side) = self.conn.up() {
                    if !side.tx.is_empty() && self.up_reads {
                        self.up_got.extend_from_slice(side.tx.data());
                        self.up_all.extend_from_slice(side.tx.data());
                        side.tx.consume(side.tx.len());
                        moved = true;
                    }
                }
                let budget = if self.splice && self.client_reads {
                    self.conn.splice_budget()
                } else {
                    0
                };
                if budget > 0 && !self.up_pending.is_empty() {
                    // At most a pipe's worth at a time, as the driver moves it.
                    let n = budget.min(self.up_pending.len()).min(64 * 1024);
                    self.client_got.extend(self.up_pending.drain(..n));
                    self.conn.spliced(n, self.now);
                    self.spliced += n;
                    moved = true;
                }
                let hold = self.splice && self.conn.splice_after_flush() > 0;
                let room = if hold { 0 } else { self.conn.up_read_room() };
                if room > 0 && !self.up_pending.is_empty() {
                    let n = room.min(self.up_pending.len());
                    let chunk: Vec<u8> = self.up_pending.drain(..n).collect();
                    if let Some(side) = self.conn.up() {
                        side.rx.extend(&mut self.env.pool, &chunk);
                    }
                    self.conn.up_data();
                    moved = true;
                }
                if self.up_fin && self.up_pending.is_empty() {
                    self.up_fin = false;
                    self.conn.up_eof();
                    moved = true;
                }
            }
            moved |= self.conn.process(&mut self.env, self.now);
            if let Some(c) = self.conn.take_check() {
                self.checks.push(c);
                moved = true;
            }
            while let Some(a) = self.conn.poll_action() {
                moved = true;
                match a {
                    Action::ReleaseUp { reuse } => {
                        if reuse {
                            self.pooled += 1;
                        }
                        self.up = UpConn::None;
                        self.up_pending.clear();
                        self.up_fin = false;
                    }
                    Action::Connect { fresh, .. } => {
                        self.connects += 1;
                        self.fresh_connects += u32::from(fresh);
                        // Never a pooled connection here: the request waits for one.
                        if !self.conn.up_pending(&mut self.env, self.now) {
                            continue;
                        }
                        self.up = UpConn::Wanted;
                        if self.auto_attach {
                            self.open_upstream();
                        }
                    }
                }
            }
            if self.client_reads {
                let out = self.conn.client_out();
                if !out.is_empty() {
                    self.client_got.extend_from_slice(out.data());
                    out.consume(out.len());
                    moved = true;
                }
            }
            if let Some(c) = self.conn.closed() {
                self.closed = Some(c);
                return;
            }
            if self.conn.wants_shutdown() {
                self.shut_down = true;
                self.conn.shut_down(self.now);
                moved = true;
            }
            if self.conn.up_wants_shutdown() {
                self.up_shut = true;
                self.conn.up_shut_down();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

/// Status codes of the final (non-1xx) responses in what a client received, in order. Stops
/// at the first thing that is not a response.
pub fn responses(mut b: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hdrs);
        let Ok(httparse::Status::Complete(n)) = r.parse(b) else {
            return out;
        };
        let code = r.code.unwrap_or(0);
        let mut len = None;
        let mut chunked = false;
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            }
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        b = b.get(n..).unwrap_or_default();
        if (100..200).contains(&code) {
            continue;
        }
        let body = if chunked {
            let mut dec = crate::http::codec::ChunkedDecoder::new();
            let mut body = Vec::new();
            let Ok(used) = dec.decode(b, usize::MAX, |d| body.extend_from_slice(d)) else {
                return out;
            };
            if !dec.is_done() {
                return out;
            }
            b = b.get(used..).unwrap_or_default();
            body
        } else {
            let l = len.unwrap_or(0);
            let Some(body) = b.get(..l) else { return out };
            b = b.get(l..).unwrap_or_default();
            body.to_vec()
        };
        out.push((code, body));
    }
}

/// The fuzz target for the whole core: the input is a script of client bytes, upstream bytes,
/// closes, resets and time steps, interleaved as the fuzzer chooses. Checks the invariants
/// that hold whatever the peers send.
pub fn fuzz_exchange(data: &[u8]) {
    // The first byte picks the set-up: its top bit the splicing driver's way of moving
    // bodies; the next three close circuit breakers (a limit of 0): active requests, pending
    // requests, retries; then a connection that ends after 2 requests or 3 s (with a 2 s
    // request timeout); the two after it what happens to header names with underscores; the
    // lowest a connection that closes without lingering (`delayed_close_timeout: 0s`).
    let first = data.first().copied().unwrap_or(0);
    let mut lim = Sim::limits(4096, 1 << 20);
    if first & 0x01 != 0 {
        lim.linger = None;
    }
    if first & 0x08 != 0 {
        lim.max_requests = Some(2);
        lim.max_connection_duration = Some(Duration::from_secs(3));
        lim.request_timeout = Some(Duration::from_secs(2));
    }
    lim.underscores = match (first >> 1) & 3 {
        1 => crate::config::Underscores::RejectRequest,
        2 => crate::config::Underscores::DropHeader,
        _ => crate::config::Underscores::Allow,
    };
    let mut sim = Sim::with_limits(lim);
    sim.auto_attach = false;
    sim.splice = first & 0x80 != 0;
    // An odd-length script's client counts as HTTP/2: with a `/h2` path, trailers pass.
    sim.conn.h2 = data.len() % 2 == 1;
    for (bit, r) in [
        (0x40, super::Resource::Request),
        (0x20, super::Resource::Pending),
        (0x10, super::Resource::Retry),
    ] {
        if first & bit != 0 {
            sim.env.max[r as usize] = Some(0);
        }
    }
    run_script(sim, data);
}

/// The same script run on a TCP proxy connection, whose settings the first byte picks
/// (connect attempts, idle timeout, maximum duration). Any script of the exchange corpus is
/// one for it too.
pub fn fuzz_tcp(data: &[u8]) {
    let b = data.first().copied().unwrap_or(0);
    let mut sim = Sim::tcp(
        super::TcpLimits {
            max_connect_attempts: 1 + u32::from(b & 3),
            idle_timeout: (b & 4 != 0).then(|| Duration::from_secs(2)),
            max_duration: (b & 8 != 0).then(|| Duration::from_secs(30)),
            tunnel: b & 0x40 != 0 && b & 0xe0 != 0xe0,
        },
        if b & 16 != 0 { 4096 } else { 1 << 20 },
    );
    sim.auto_attach = false;
    sim.env.tcp_no_host = b & 0xe0 == 0xe0;
    run_script(sim, data);
}

fn run_script(mut sim: Sim, data: &[u8]) {
    let mut i = 0;
    while let Some(&op) = data.get(i) {
        let len = usize::from(data.get(i + 1).copied().unwrap_or(0));
        let payload = data
            .get(i + 2..(i + 2 + len).min(data.len()))
            .unwrap_or_default();
        i += 2 + len;
        match op % 12 {
            0 | 1 => sim.client(payload),
            2 | 3 => sim.upstream(payload),
            // While a request waits for its ext_authz check, these answer it: allowed,
            // denied, failed.
            4 if sim.conn.checking() => sim.answer_check(Some(200)),
            6 if sim.conn.checking() => sim.answer_check(Some(403)),
            8 if sim.conn.checking() => sim.answer_check(None),
            4 => sim.attach(),
            5 => sim.upstream_fin(),
            6 => sim.upstream_reset(),
            7 => sim.advance(Duration::from_millis(len as u64 * 20)),
            8 => sim.connect_refused(),
            9 => {
                sim.client_reads = !sim.client_reads;
                sim.run();
            }
            10 => sim.client_close(),
            _ => {
                // A tunnel taken out and resumed (a handover's rollback) changes nothing.
                sim.hand_over(None);
            }
        }
        check_invariants(&sim);
    }
    sim.client_close();
    sim.advance(Duration::from_secs(120));
    check_invariants(&sim);
}

fn check_invariants(sim: &Sim) {
    // Memory stays bounded whatever the peers do.
    let bound = 4096 + 64 * 1024 + 16 * 1024;
    assert!(
        sim.conn.cin.len() <= bound,
        "client input {}",
        sim.conn.cin.len()
    );
    assert!(
        sim.conn.cout.len() <= 4 * 64 * 1024 + 16 * 1024,
        "client output {}",
        sim.conn.cout.len()
    );
    // Every request that ended was begun; none ends twice.
    assert!(sim.env.ended <= sim.env.begun);
    if sim.closed.is_some() {
        assert_eq!(sim.env.ended, sim.env.begun, "a request never ended");
        assert_eq!(sim.env.active, 0, "active-request count leaked");
        assert_eq!(sim.env.tunnels_open, 0, "a tunnel never ended");
        assert_eq!(sim.env.held, [0; 4], "a circuit-breaker resource leaked");
    }
    // One exchange at a time holds at most one of each.
    assert!(
        sim.env.held.iter().all(|h| (0..=1).contains(h)),
        "circuit-breaker resources held: {:?}",
        sim.env.held
    );
    // A tunnel passes the client's FIN upstream only after everything the client sent.
    if sim.up_shut {
        assert!(sim.client_fin && sim.client_pending.is_empty());
    }
}
