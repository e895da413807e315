//! The HTTP/1 exchange core: one client connection's protocol logic as a value that does no I/O
//! and reads no clock. The driver (`http::session`) moves bytes between sockets and the
//! core's buffers, passes `now` in, and carries out the [`Action`]s the core asks for
//! (connect, release or drop the upstream connection). Everything that needs configuration
//! or process state (routing, load balancing, stats, rendering a local reply) goes through the
//! [`Env`] trait, which the driver implements over the proxy's context and tests implement
//! in memory. So every split of a message, a model of client + core + upstream, and the
//! fuzzer drive the same code the proxy runs, without a socket.
//!
//! Connection states (`State`): `Head` (reading a request head) → `Exchange` (request body up,
//! response down) → `Head` on keep-alive, or `Closing` (flush, then shut down writes) →
//! `Lingering` (discard what the client still sends) → `Closed`. `Handoff`: idle while a
//! successor process exists; the driver moves the socket and the unread bytes there.
//! `Tunnel`: an upgrade or CONNECT was answered; bytes flow both ways until both sides are shut.
//! `Paused`: a request head waits for a filter (an ext_authz check, a fault delay) before it
//! is routed.

mod exchange;
mod failure;
mod respond;
#[doc(hidden)]
pub mod sim;
mod tcp;
#[cfg(test)]
mod tests;
mod tunnel;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::buf::{Buf, BufPool, CHUNK};
use super::codec::{HeadError, RequestHead};
use super::ext_authz::{Check, Verdict};
use super::request::{Decision, Pending};
use crate::access_log::{Flags, Rq};
pub use crate::cluster::breakers::Resource;
use crate::config::{CodecType, RetryPolicy, Underscores};
use crate::route::edits::Op;
pub use exchange::Exchange;
pub use failure::{Failure, RetryStat};
pub use tcp::{TcpStat, TcpTarget};
pub use tunnel::TunnelState;

/// How long a connection closing after its last response has to write that response before
/// the final close.
const FLUSH_LIMIT: Duration = Duration::from_secs(4);
/// Most bytes discarded while lingering.
const LINGER_MAX: usize = 256 * 1024;
/// Responses queued for a client that does not read: past this, no further pipelined request
/// is parsed (and none read), so a client that never reads cannot grow our memory.
pub const OUT_HIGH: usize = 64 * 1024;
/// Most unread bytes a connection may hold and still be handed to a successor process (one
/// handover frame carries several connections; the frame limit is 1 MiB).
pub const HANDOFF_MAX: usize = 256 * 1024;
/// Shortest rest of a response body the driver may move kernel-to-kernel (`splice_budget`).
/// Below it, two splice calls through a pipe cost more than one read and one write of bytes
/// already in cache, and most small bodies arrive with their head in one read anyway.
pub const SPLICE_MIN: u64 = 16 * 1024;
/// Largest upstream response head we accept.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Whether a request header name has an underscore (`headers_with_underscores_action`).
fn underscored(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| h.name.contains('_'))
}

/// The request headers that count towards `max_headers_count`: under `DROP_HEADER` those
/// with an underscore are gone before anything counts them.
fn kept_headers(headers: &[httparse::Header<'_>], u: Underscores) -> usize {
    if u == Underscores::DropHeader {
        headers.iter().filter(|h| !h.name.contains('_')).count()
    } else {
        headers.len()
    }
}

/// The listener's settings a connection needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_request_headers_kb` in bytes.
    pub max_head: usize,
    pub idle_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    /// The connection manager's `request_timeout`: from the first byte of a request to its
    /// last, before any response.
    pub request_timeout: Option<Duration>,
    /// The connection manager's `stream_idle_timeout` (a route's `idle_timeout` overrides it).
    pub stream_idle_timeout: Option<Duration>,
    /// The listener's `per_connection_buffer_limit_bytes`: bounds the client-side buffers of an
    /// exchange and the request body kept for a retry.
    pub buffer_limit: usize,
    /// `http_protocol_options.accept_http_10`: serve HTTP/1.0 (else 426).
    pub accept_http_10: bool,
    /// The connection manager's `codec_type`. `Auto` hands a connection that starts with the
    /// HTTP/2 preface to the HTTP/2 server transcoder (`take_h2`); `Http2` hands every
    /// connection there; `Http1` has no HTTP/2 path, as Envoy's HTTP1 codec has none: the
    /// preface is a malformed HTTP/1 request (400, close).
    pub codec_type: CodecType,
    /// What the HTTP/2 server transcoder advertises (`http2_protocol_options`).
    pub http2: crate::h2::server::Options,
    /// `max_headers_count`: more request headers is 431.
    pub max_headers: usize,
    /// `max_connection_duration`: past it the connection closes once idle, and the response
    /// in progress says `Connection: close`.
    pub max_connection_duration: Option<Duration>,
    /// `max_requests_per_connection`: the last request's response says `Connection: close`.
    pub max_requests: Option<u32>,
    /// `headers_with_underscores_action`.
    pub underscores: Underscores,
    /// `delayed_close_timeout`: after the last response and the write shutdown, how long the
    /// connection keeps reading (and discarding) while it waits for the client's FIN, so that
    /// bytes the client sent meanwhile do not turn the close into a reset. `None`: close at
    /// once.
    pub linger: Option<Duration>,
    /// `proxy_100_continue`: `Expect: 100-continue` is the upstream's to answer; its first
    /// `100 Continue` is relayed (else baton answers it and the upstream's are dropped).
    pub proxy_100_continue: bool,
    /// A TCP proxy listener: no HTTP at all; the connection connects to the cluster at once
    /// and becomes a tunnel (`tcp.rs`). The HTTP settings above are then unused.
    pub tcp: Option<TcpLimits>,
}

/// A TCP proxy listener's settings a connection needs (`envoy.filters.network.tcp_proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connects tried before the client is closed (≥ 1).
    pub max_connect_attempts: u32,
    /// No bytes either way for this long closes both sides.
    pub idle_timeout: Option<Duration>,
    /// A connection open this long is closed (`max_downstream_connection_duration`).
    pub max_duration: Option<Duration>,
    /// `tunneling_config`: the upstream is an HTTP/1.1 proxy; the tunnel opens on its 2xx
    /// answer to our CONNECT (`Env::tcp_connect_head`).
    pub tunnel: bool,
}

/// Allocations a request needs, kept for the next one so the keep-alive path allocates
/// nothing per request: exchange records (boxed, they are large) and head buffers (the
/// serialised upstream request head, the response head being written). Shared by all
/// connections (one connection's spare would be dropped whenever it goes idle), bounded
/// like `BufPool`.
#[derive(Debug, Default)]
pub struct Spares {
    /// The boxes are what is kept: `State::Exchange` holds one.
    #[allow(clippy::vec_box)]
    exchanges: Vec<Box<Exchange>>,
    heads: Vec<Vec<u8>>,
}

/// Most spare exchanges and head buffers kept.
const SPARES_MAX: usize = 256;
/// A head buffer grown past this goes back to the allocator, not to the spares.
const SPARE_HEAD_MAX: usize = 16 * 1024;

impl Spares {
    /// An empty buffer for a head.
    pub fn head(&mut self) -> Vec<u8> {
        self.heads.pop().unwrap_or_else(|| Vec::with_capacity(512))
    }

    /// Gives a head buffer back.
    pub fn put_head(&mut self, mut h: Vec<u8>) {
        if h.capacity() > 0 && h.capacity() <= SPARE_HEAD_MAX && self.heads.len() < SPARES_MAX {
            h.clear();
            self.heads.push(h);
        }
    }

    /// `ex` in a box, reusing a spare one.
    fn boxed(&mut self, ex: Exchange) -> Box<Exchange> {
        match self.exchanges.pop() {
            Some(mut b) => {
                *b = ex;
                b
            }
            None => Box::new(ex),
        }
    }

    /// A finished exchange's box (and its head buffer) back for the next one.
    fn put_exchange(&mut self, mut ex: Box<Exchange>) {
        self.put_head(std::mem::take(&mut ex.head));
        // A spare keeps no compression state (a deflater's window and tables).
        ex.resp = None;
        ex.inflate = None;
        ex.compress = None;
        if self.exchanges.len() < SPARES_MAX {
            self.exchanges.push(ex);
        }
    }
}

/// What the core needs from the proxy around it. Every method is synchronous and does no I/O;
/// the proxy's implementation reads its configuration and updates its stats.
pub trait Env {
    /// The shared buffer pool.
    fn pool(&mut self) -> &mut BufPool;
    /// The shared spare exchange records and head buffers.
    fn spares(&mut self) -> &mut Spares;
    /// The Server header value and what to do with an upstream's own.
    fn server(&self) -> (&str, crate::config::ServerHeader);
    /// Draining with no successor: responses say `Connection: close`, idle connections close.
    fn closing(&self) -> bool;
    /// Draining with a successor: idle connections move to it.
    fn handoff(&self) -> bool;
    /// Idle connections close now (draining). A connection that cannot move (TLS) stays
    /// open for its next request, which `closing` answers with `Connection: close`.
    fn close_idle(&self) -> bool {
        self.closing()
    }
    /// A request head was parsed (`None`: rejected) — counts it and starts its record.
    fn begin(&mut self, req: Option<&RequestHead<'_>>, minor: u8, now: Instant) -> Rq;
    /// Routes a request: a local reply, or an upstream with the serialised head, or a pause
    /// for a filter (an ext_authz check, a fault delay).
    fn route(&mut self, req: &RequestHead<'_>, rq: &mut Rq) -> Decision;
    /// Goes on routing a paused request (`Decision::Pause`) once its wait is over: with its
    /// ext_authz check's answer (`None`: the check failed or timed out), or after its fault
    /// delay (`verdict` unused).
    fn resume(
        &mut self,
        req: &RequestHead<'_>,
        rq: &mut Rq,
        pending: Box<Pending>,
        verdict: Verdict,
    ) -> Decision;
    /// Appends a complete local reply (head and body) to `out`, as the connection manager's
    /// `local_reply_config` rewrites it; returns the body bytes written. `rq` is the
    /// request's record with the reply's status and body already in it; the rewrite may
    /// change them (a mapper's status and body).
    fn local_reply(&mut self, out: &mut Vec<u8>, reply: &Reply<'_>, rq: &mut Rq) -> usize;
    /// The upstream's response head arrived.
    fn response_head(&mut self, rq: &mut Rq, status: u16, headers: &[httparse::Header<'_>]);
    /// The upstream response's trailers arrived (the lines of its chunked trailer section):
    /// the access log may print them.
    fn response_trailers(&mut self, _rq: &mut Rq, _trailers: &[u8]) {}
    /// The request ended; its record is final. Taken by reference, not by value: the record
    /// stays where it is (an exchange's box) instead of being copied out per request; what
    /// it owns is given up here.
    fn end(&mut self, rq: &mut Rq, now: Instant);
    /// The retry policy of a route, by (virtual host, route) index.
    fn retry_policy(&self, route: (usize, usize)) -> Option<&RetryPolicy>;
    /// Another host of `cluster` for a retry (not `old` when there is a choice).
    fn next_host(&mut self, cluster: usize, old: SocketAddr) -> Option<SocketAddr>;
    /// The DNS name a host of `cluster` was resolved from (`auto_host_rewrite`).
    fn hostname_of(&self, cluster: usize, addr: SocketAddr) -> Option<String>;
    /// Active-request accounting of a host (least-request load balancing).
    fn track(&mut self, cluster: usize, addr: SocketAddr, delta: i32);
    /// A uniformly random number below `n` (retry back-off jitter).
    fn random_below(&mut self, n: u64) -> u64;
    /// A request was sent to host `addr` (`fresh`: on a new connection).
    fn upstream_rq(&mut self, cluster: usize, addr: SocketAddr, fresh: bool);
    /// The route timeout fired for a request to `addr`.
    fn upstream_rq_timeout(&mut self, cluster: usize, addr: SocketAddr);
    /// Connecting to `addr` failed or timed out.
    fn upstream_connect_fail(&mut self, cluster: usize, addr: SocketAddr, timeout: bool);
    /// An attempt on `addr` failed after connecting, before a response head (a reset, a
    /// close, a malformed head): outlier detection counts it.
    fn upstream_reset(&mut self, cluster: usize, addr: SocketAddr);
    /// A route answered with `direct_response`.
    fn direct_response(&mut self);
    /// A request was not received in full within `request_timeout`.
    fn request_timeout(&mut self);
    /// A tunnel opened (`true`) or ended.
    fn tunnel(&mut self, open: bool);
    /// A tunnel and its record left for another process (`out`) or arrived from one: the
    /// active gauges move; nothing is counted or logged.
    fn tunnel_moved(&mut self, rq: &Rq, out: bool);
    /// A retry counter of `cluster`.
    fn retry_stat(&mut self, cluster: usize, s: RetryStat);
    /// A request is read in full: its shadow (`request_mirror_policies`) goes out with
    /// `body`, the request body as sent upstream; its answer is not the exchange's concern.
    fn mirror(
        &mut self,
        shadow: crate::http::mirror::Shadow,
        body: &[u8],
        timeout: Option<Duration>,
    );
    /// A request to `cluster` outgrew the body kept for its retries and shadows.
    fn retry_or_shadow_abandoned(&mut self, cluster: usize);
    /// Takes one `r` of `cluster`'s circuit breakers (past the limit when `over`: a tunnel
    /// that arrived from another process); false when the breaker refuses.
    fn acquire(&mut self, cluster: usize, r: Resource, over: bool) -> bool;
    /// Gives back one `r` taken by `acquire`.
    fn release(&mut self, cluster: usize, r: Resource);
    /// A request of `cluster` was refused by `max_pending_requests` or `max_requests`
    /// (`upstream_rq_pending_overflow`).
    fn pending_overflow(&mut self, cluster: usize);
    /// A client connection turned out to speak HTTP/2 (`downstream_cx_http2_total`).
    fn http2_preface(&mut self);
    /// Whether this response, which would keep its connection open, closes it instead: the
    /// overload manager's `disable_http_keepalive` (drawn once per response, and counted).
    fn overload_close(&mut self) -> bool {
        false
    }
    /// `http_protocol_options.default_host_for_http_10`, when configured.
    fn default_host_for_http_10(&self) -> Option<String>;
    /// A TCP proxy connection begins: counts it, starts its record and picks the upstream
    /// host. `None`: there is none to connect to (the record's flags say why; the caller
    /// ends it).
    fn tcp_begin(&mut self, now: Instant) -> (Rq, Option<TcpTarget>);
    /// A TCP proxy event for the stats.
    fn tcp_stat(&mut self, s: TcpStat);
    /// A tunnelling TCP proxy's CONNECT request head, appended to `out`.
    fn tcp_connect_head(&mut self, out: &mut Vec<u8>);
    /// Adds `n` to counter `c` (the compression filters' counters).
    fn count(&mut self, c: crate::stats::Counter, n: u64) {
        let _ = (c, n);
    }
}

/// A reply made here.
#[derive(Debug)]
pub struct Reply<'a> {
    pub status: u16,
    pub body: &'a str,
    pub location: Option<&'a str>,
    /// The route's response edits (empty for connection-manager replies).
    pub edits: &'a [Op],
    pub upstream: Option<SocketAddr>,
    pub close: bool,
    /// A circuit breaker refused the request: `x-envoy-overloaded: true`.
    pub overloaded: bool,
    /// The request was HEAD: the head is sent (its content-length the body's) without the
    /// body, as Envoy answers a HEAD locally.
    pub head: bool,
}

/// What the driver must do for the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Get a connection to `addr` (a host of `cluster`): from the pool, a new connect, or wait
    /// for a connect slot. Then call `up_attached`, or `up_failed`. `fresh`: never a pooled
    /// connection (a terminated CONNECT carries raw bytes).
    Connect {
        cluster: usize,
        addr: SocketAddr,
        fresh: bool,
    },
    /// The upstream connection is finished with: back to the pool when `reuse`, else closed.
    ReleaseUp { reuse: bool },
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// After the last response: the driver has already flushed and lingered.
    Graceful,
    /// Reset (SO_LINGER 0), so a partial response can never look complete.
    Reset,
}

#[derive(Debug)]
enum State {
    Head,
    Exchange(Box<Exchange>),
    /// Flushing the last response; then shut down writes and linger.
    Closing {
        until: Instant,
        /// The client asked to close and all it sent is read: nothing more will come, so
        /// the driver may close at once instead of lingering (`closes_without_linger`).
        quiet: bool,
    },
    Lingering {
        until: Instant,
        discarded: usize,
    },
    Closed(Close),
    /// Idle, with a successor process: move the connection there (fd + unread bytes).
    Handoff,
    /// A byte pipe between the client and the upstream connection.
    Tunnel(tunnel::Tunnel),
    /// A request head waits for a filter — its ext_authz check, or a fault filter's delay:
    /// the head stays in the input (parsed again when the wait is over), nothing more is
    /// read, no upstream is chosen.
    Paused(Box<Paused>),
}

/// A request paused by a filter (`Pending::wait`).
#[derive(Debug)]
pub struct Paused {
    rq: Rq,
    pending: Box<Pending>,
    /// When its head began (`request_timeout`).
    began: Instant,
    /// When the wait ends by itself: a check's timeout (the check has failed), a delay's end.
    until: Instant,
    /// When the stream idle timeout ends the request instead, if sooner (`Pending::
    /// stream_idle`).
    idle_at: Option<Instant>,
    /// The request has a body (a stream idle answer is then 408, else 504).
    body: bool,
    /// The driver has taken the check to send (a delay has none).
    sent: bool,
    /// Set once the wait is over: a check's answer (`None`: it failed or timed out); `None`
    /// after a delay.
    verdict: Option<Verdict>,
}

/// The upstream side of the running attempt: its buffers and what the driver reported.
#[derive(Debug, Default)]
pub struct UpSide {
    pub rx: Buf,
    pub tx: Buf,
    connected: bool,
    /// Came from the pool: a failure before any response byte may be a stale keep-alive race.
    reused: bool,
    got_bytes: bool,
    eof: bool,
    /// Bytes of `rx` already searched for the end of a response head (0: not looked at yet),
    /// as `Conn::scanned` on the request side: a head arriving in pieces is parsed once its
    /// end is there, not once per read.
    head_scanned: usize,
}

impl UpSide {
    /// Empties the buffers and leaves them in `spare`, so their allocations go back to the
    /// pool (or serve the next attempt) instead of being freed: a fresh buffer would be
    /// zeroed again on every request.
    fn recycle(mut self, spare: &mut UpSide) {
        self.rx.consume(self.rx.len());
        self.tx.consume(self.tx.len());
        if !spare.rx.has_allocation() {
            spare.rx = self.rx;
        }
        if !spare.tx.has_allocation() {
            spare.tx = self.tx;
        }
    }
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct Conn {
    /// Shared by the listener's connections (one pointer in each connection's record).
    lim: Rc<Limits>,
    state: State,
    /// Bytes from the client not yet consumed.
    cin: Buf,
    /// Bytes for the client not yet written.
    cout: Buf,
    up: Option<UpSide>,
    /// Buffers of the last upstream side, empty, kept for the next (or for the pool).
    spare: UpSide,
    /// The client closed its side (or the driver saw an error).
    client_eof: bool,
    idle_since: Instant,
    head_started: Option<Instant>,
    /// Bytes of `cin` already searched for the end of a head: a head arriving in pieces is
    /// parsed once, when its end is there, not once per read.
    scanned: usize,
    /// Actions for the driver: an upstream connection to give back (`Some(reuse)`), then a
    /// connection to get.
    release: Option<bool>,
    connect: Option<Action>,
    /// Spliced response bytes still in the driver's pipe (`set_unsent_spliced`).
    unsent_spliced: usize,
    /// When the connection was accepted (`max_connection_duration`).
    born: Instant,
    /// Request heads served on it (`max_requests_per_connection`).
    requests: u32,
    /// A TCP proxy connection has asked for its upstream (it does so once, at its start).
    tcp_started: bool,
    /// A TCP proxy tunnel has stopped reading the client because the upstream is not taking
    /// its bytes (for the flow-control counters).
    tcp_paused: bool,
    /// The client speaks HTTP/2: the driver is to put the server transcoder under the
    /// connection with the bytes read so far (`take_h2`). Nothing is parsed until then.
    h2_switch: bool,
    /// The connection speaks HTTP/2 (switched once, for good).
    h2: bool,
}

impl Conn {
    pub fn new(lim: Rc<Limits>, now: Instant) -> Conn {
        Conn {
            lim,
            state: State::Head,
            cin: Buf::default(),
            cout: Buf::default(),
            up: None,
            spare: UpSide::default(),
            client_eof: false,
            idle_since: now,
            head_started: None,
            scanned: 0,
            release: None,
            connect: None,
            unsent_spliced: 0,
            born: now,
            requests: 0,
            tcp_started: false,
            tcp_paused: false,
            h2_switch: false,
            h2: false,
        }
    }

    /// The client speaks HTTP/2 (its preface came, or the codec is HTTP2): the bytes read so
    /// far, for the driver to hand to the HTTP/2 server transcoder it puts under the
    /// connection, with the transcoder's options. From then on the core reads the HTTP/1.1
    /// requests the transcoder makes of the client's streams, one at a time.
    pub fn take_h2(&mut self) -> Option<(Vec<u8>, crate::h2::server::Options)> {
        if !std::mem::take(&mut self.h2_switch) {
            return None;
        }
        self.scanned = 0;
        self.head_started = None;
        Some((self.cin.take_bytes(), self.lim.http2))
    }

    // ---- bytes in and out ----

    /// How many more client bytes the core will take now (0: stop reading: backpressure).
    pub fn client_read_room(&self) -> usize {
        if self.client_eof {
            return 0;
        }
        match &self.state {
            // A TCP proxy connection reads nothing before its upstream is connected (Envoy
            // disables reading until then): what the client sends first waits in the socket.
            State::Head if self.lim.tcp.is_some() => 0,
            State::Head => {
                if self.out_pending() >= OUT_HIGH {
                    0
                } else {
                    (self.lim.max_head + 1).saturating_sub(self.cin.len())
                }
            }
            State::Exchange(ex) => ex.client_read_room(self.cin.len(), self.up.as_ref()),
            State::Tunnel(t) => t.client_read_room(self.cin.len(), self.up.as_ref()),
            // Paused: the body waits in the client's socket (backpressure).
            State::Paused(_) => 0,
            State::Lingering { .. } => CHUNK,
            State::Closing { .. } | State::Closed(_) | State::Handoff => 0,
        }
    }

    /// The client input buffer, for the driver to read into (then call `process`).
    pub fn client_in(&mut self) -> &mut Buf {
        &mut self.cin
    }

    /// The client sent FIN (or its socket failed): no more bytes will come.
    pub fn client_eof(&mut self) {
        self.client_eof = true;
    }

    /// Bytes to write to the client.
    pub fn client_out(&mut self) -> &mut Buf {
        &mut self.cout
    }

    /// The upstream side, when an attempt has one: the driver reads into `rx`, writes `tx`.
    pub fn up(&mut self) -> Option<&mut UpSide> {
        self.up.as_mut()
    }

    /// How many upstream bytes the core will take now.
    pub fn up_read_room(&self) -> usize {
        let Some(up) = self.up.as_ref().filter(|u| !u.eof && u.connected) else {
            return 0;
        };
        match &self.state {
            State::Exchange(ex) => ex.up_read_room(up.rx.len(), self.cout.len()),
            State::Tunnel(t) => t.up_read_room(up.rx.len(), self.cout.len()),
            _ => 0,
        }
    }

    /// How many response-body bytes the driver may move from the upstream socket straight to
    /// the client socket now (a pipe and `splice(2)`), then report with `spliced`. Nonzero
    /// only for a Content-Length body relayed with its length or a chunk payload whose size
    /// is already out, with at least `SPLICE_MIN` bytes to go, nothing of it left in our read
    /// buffer and nothing queued for the client (so the spliced bytes follow what was
    /// written before them).
    pub fn splice_budget(&self) -> usize {
        if !self.cout.is_empty() {
            return 0;
        }
        self.splice_after_flush()
    }

    /// What `splice_budget` would be once the client output is written: a driver that can
    /// splice writes it out before reading more of the body into our buffers.
    pub fn splice_after_flush(&self) -> usize {
        let State::Exchange(ex) = &self.state else {
            return 0;
        };
        match &self.up {
            Some(up) if up.connected && !up.eof && up.rx.is_empty() => {
                usize::try_from(ex.splice_budget()).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }

    /// How many spliced bytes the driver's pipe still holds for the client: output not yet
    /// written, like bytes in the out buffer, for deciding when the connection may close,
    /// hand over or read the next request.
    pub fn set_unsent_spliced(&mut self, n: usize) {
        self.unsent_spliced = n;
    }

    /// Response bytes not yet written to the client: the out buffer and the driver's pipe.
    fn out_pending(&self) -> usize {
        self.cout.len() + self.unsent_spliced
    }

    /// The driver moved `n` body bytes from the upstream to the client past our buffers
    /// (after `splice_budget` allowed them): they count as sent and as stream activity, and
    /// the exchange completes on `process` when the body is done.
    pub fn spliced(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        if let (State::Exchange(ex), Some(up)) = (&mut self.state, &mut self.up) {
            up.got_bytes = true;
            ex.spliced(n as u64, now);
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(reuse) = self.release.take() {
            return Some(Action::ReleaseUp { reuse });
        }
        self.connect.take()
    }

    // ---- upstream events ----

    /// The driver has a connection for the `Connect` action: `reused` from the pool (already
    /// connected), else a connect in progress.
    /// `local`: the connection's local address (for the access log).
    pub fn up_attached(
        &mut self,
        env: &mut dyn Env,
        reused: bool,
        local: Option<SocketAddr>,
        now: Instant,
    ) {
        if let State::Exchange(ex) = &mut self.state {
            // A pooled connection is ready at once: the request is active from now on
            // (`max_requests`). Refused, the connection goes back to the pool unused.
            if reused && !ex.take_request(env) {
                self.release = Some(true);
                self.overflow(env, now);
                return;
            }
            let up = UpSide {
                rx: std::mem::take(&mut self.spare.rx),
                tx: std::mem::take(&mut self.spare.tx),
                connected: reused,
                reused,
                ..UpSide::default()
            };
            let up = self.up.insert(up);
            ex.attached(env, up, reused, local, now);
        } else {
            // Nothing wants it any more: give it straight back.
            self.release = Some(reused);
        }
    }

    /// The connection is ready (TCP handshake, and TLS's when there is one): the request
    /// stops pending and becomes active. When `max_requests` refuses it, the connection goes
    /// back to the pool unused (nothing was sent on it) and the request is answered 503 `UO`.
    pub fn up_connected(&mut self, env: &mut dyn Env, now: Instant) {
        let State::Exchange(ex) = &mut self.state else {
            return;
        };
        let Some(up) = &mut self.up else {
            return;
        };
        up.connected = true;
        ex.connected(now);
        if ex.take_request(env) {
            if ex.req.is_done() {
                ex.send_shadows(env);
            }
            return;
        }
        // A terminated CONNECT's connection is never pooled.
        let reuse = !ex.fresh_connection();
        if let Some(u) = self.up.take() {
            u.recycle(&mut self.spare);
        }
        self.release = Some(reuse);
        self.overflow(env, now);
    }

    /// No pooled connection is ready for the `Connect` just asked for: the request waits for
    /// one (Envoy's pending request). False when `max_pending_requests` refuses it: the
    /// request is answered 503 `UO` at once, and the driver must not connect.
    pub fn up_pending(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let State::Exchange(ex) = &mut self.state else {
            return false;
        };
        if ex.hold(env, Resource::Pending, false) {
            return true;
        }
        self.overflow(env, now);
        false
    }

    /// A circuit breaker refused the exchange's request: Envoy's overflow answer.
    fn overflow(&mut self, env: &mut dyn Env, now: Instant) {
        let (State::Exchange(ex), mut cx) = self.parts() else {
            return;
        };
        let next = ex.overflow(env, &mut cx);
        self.apply_step(env, next, now);
    }

    /// Bytes arrived from the upstream (into `up().rx`).
    pub fn up_data(&mut self) {
        if let Some(up) = &mut self.up {
            up.got_bytes = true;
        }
    }

    /// The upstream closed its side.
    pub fn up_eof(&mut self) {
        if let Some(up) = &mut self.up {
            up.eof = true;
        }
    }

    /// A connect to the upstream failed with `errno` (`at_once`: `connect()` itself failed);
    /// call before `up_failed`. Only recorded for the access log.
    pub fn connect_error(&mut self, at_once: bool, errno: i32) {
        if let State::Exchange(ex) = &mut self.state {
            ex.rq.connect_error = Some((at_once, errno));
        }
    }

    /// Connecting, writing or reading failed on the upstream connection (the driver has
    /// closed it).
    pub fn up_failed(&mut self, env: &mut dyn Env, f: Failure, now: Instant) {
        let up = self.up.take();
        let stale = up
            .as_ref()
            .is_some_and(|u| f == Failure::Reset && u.reused && !u.got_bytes);
        let had_up = up.is_some();
        if let Some(u) = up {
            u.recycle(&mut self.spare);
        }
        if let State::Tunnel(t) = &mut self.state {
            // Either side's reset ends the tunnel with a reset of the other.
            t.ex.flag(crate::access_log::Flags::UC);
            self.apply_step(env, exchange::Step::End(exchange::Then::Reset), now);
            return;
        }
        let (State::Exchange(ex), mut cx) = self.parts() else {
            return;
        };
        let next = ex.failed(env, &mut cx, f, stale, had_up, now);
        self.apply_step(env, next, now);
        self.process(env, now);
    }

    // ---- time ----

    /// The connection has served its `max_requests_per_connection` or outlived its
    /// `max_connection_duration`: the response in progress is its last.
    fn spent(&self, now: Instant) -> bool {
        self.lim.max_requests.is_some_and(|m| self.requests >= m)
            || self.expires().is_some_and(|at| now >= at)
    }

    /// When `max_connection_duration` ends the connection.
    fn expires(&self) -> Option<Instant> {
        self.lim.max_connection_duration.map(|d| self.born + d)
    }

    /// When `on_timeout` must next be called.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Head => {
                // A response still being written (an HTTP/2 client's flow-control window
                // holds it, or a slow reader) is a stream in progress: the stream idle
                // timeout governs it, as in Envoy, not the connection's idle timeout.
                let idle = if self.out_pending() > 0 {
                    self.lim.stream_idle_timeout.or(self.lim.idle_timeout)
                } else {
                    self.lim.idle_timeout
                };
                let idle = idle.map(|t| self.idle_since + t);
                if self.cin.is_empty() {
                    // Idle: the idle timeout or the connection's end of life, the sooner; the
                    // end waits for the last answer to be written.
                    let expires = self.expires().filter(|_| self.out_pending() == 0);
                    match (idle, expires) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                } else {
                    match (self.lim.request_headers_timeout, self.head_started) {
                        (Some(t), Some(s)) => Some(s + t),
                        _ => idle,
                    }
                }
            }
            State::Exchange(ex) => ex.deadline(),
            State::Tunnel(t) => t.deadline(),
            State::Paused(c) => c
                .verdict
                .is_none()
                .then(|| c.idle_at.map_or(c.until, |i| i.min(c.until))),
            State::Closing { until, .. } | State::Lingering { until, .. } => Some(*until),
            State::Closed(_) | State::Handoff => None,
        }
    }

    /// Time passed: fires whatever deadline is due at `now`.
    pub fn on_timeout(&mut self, env: &mut dyn Env, now: Instant) {
        if self.deadline().is_none_or(|d| d > now) {
            return;
        }
        match self.parts() {
            (State::Head, _) => {
                if self.cin.is_empty() && self.expires().is_some_and(|at| at <= now) {
                    // max_connection_duration: shut down, then read what may still come, so
                    // that a request crossing the close cannot turn it into a reset that
                    // discards the last answer.
                    log::debug!("max connection duration");
                    self.close_after(now);
                } else if self.cin.is_empty() {
                    log::debug!("idle timeout");
                    self.state = State::Closed(Close::Graceful);
                } else {
                    // Part of a head, too slowly: Envoy's request_headers_timeout answer.
                    log::debug!("request header timeout");
                    self.refuse(env, 408, "request header timeout", 0, now);
                }
            }
            (State::Exchange(ex), mut cx) => {
                let next = ex.on_timeout(env, &mut cx, now);
                self.apply_step(env, next, now);
            }
            (State::Tunnel(t), mut cx) => {
                let next = t.on_timeout(env, &mut cx, now);
                self.apply_step(env, next, now);
            }
            (State::Closing { .. } | State::Lingering { .. }, _) => {
                self.state = State::Closed(Close::Graceful);
            }
            (State::Paused(c), _) if c.until > now => {
                // The stream idle timeout came first.
                let _ = c;
                self.paused_idle(env, now);
            }
            (State::Paused(c), _) => {
                if c.pending.check().is_some() {
                    log::debug!("ext_authz check timed out");
                }
                c.verdict = Some(None);
            }
            (State::Closed(_) | State::Handoff, _) => {}
        }
        self.process(env, now);
    }

    // ---- the connection's lifecycle, as the driver sees it ----

    /// Set once the connection is finished; the driver then closes (or resets) the socket.
    pub fn closed(&self) -> Option<Close> {
        match self.state {
            State::Closed(c) => Some(c),
            _ => None,
        }
    }

    /// All output is flushed and the driver should shut down its write side now, then call
    /// `shut_down`.
    pub fn wants_shutdown(&self) -> bool {
        match &self.state {
            State::Closing { .. } => self.out_pending() == 0,
            State::Tunnel(t) => t.wants_down_shutdown(self.up.as_ref(), &self.cout),
            _ => false,
        }
    }

    /// In a tunnel, the client's FIN is to be passed on: the driver shuts down the write side
    /// of the upstream connection, then calls `up_shut_down`.
    pub fn up_wants_shutdown(&self) -> bool {
        match &self.state {
            State::Tunnel(t) => t.wants_up_shutdown(self.client_eof, &self.cin, self.up.as_ref()),
            _ => false,
        }
    }

    /// The driver shut down the write side towards the upstream.
    pub fn up_shut_down(&mut self) {
        if let State::Tunnel(t) = &mut self.state {
            t.up_shut = true;
        }
    }

    /// A tunnel is open (its sockets are reset, not closed, when the connection is torn down).
    pub fn in_tunnel(&self) -> bool {
        matches!(self.state, State::Tunnel(_))
    }

    /// The driver shut down the write side: from now on read and discard (in a tunnel: the
    /// upstream's FIN was passed on).
    pub fn shut_down(&mut self, now: Instant) {
        if let State::Tunnel(t) = &mut self.state {
            t.down_shut = true;
            return;
        }
        if matches!(self.state, State::Closing { .. }) {
            self.state = match self.lim.linger {
                Some(l) => State::Lingering {
                    until: now + l,
                    discarded: 0,
                },
                None => State::Closed(Close::Graceful),
            };
            self.discard();
        }
    }

    /// What the output holds now is the last the connection sends: once it is out the driver
    /// shuts down or closes (`wants_shutdown`, `closes_without_linger`), so a FIN follows it.
    pub fn output_is_last(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// The last response is out (`wants_shutdown`) and the client asked for the close with
    /// its request fully read: a plain TCP driver may close the socket now, skipping the
    /// shutdown and lingering (no client bytes are left to cause a reset).
    pub fn closes_without_linger(&self) -> bool {
        matches!(self.state, State::Closing { quiet: true, .. })
            && self.out_pending() == 0
            && self.cin.is_empty()
    }

    /// The TLS server name the upstream connection must have (`auto_sni`): a pooled one is
    /// reused only if it was opened with this name.
    pub fn upstream_sni(&self) -> Option<&str> {
        match &self.state {
            State::Exchange(ex) => ex.sni.as_deref(),
            _ => None,
        }
    }

    /// Idle with a successor: the driver moves the socket with `take_pending()`.
    pub fn ready_to_move(&self) -> bool {
        matches!(self.state, State::Handoff)
    }

    /// The unread client bytes, for a handover.
    pub fn take_pending(&mut self) -> Vec<u8> {
        self.cin.take_bytes()
    }

    /// The connection the core waits for, to ask again once a connect slot frees up.
    pub fn pending_connect(&self) -> Option<Action> {
        match &self.state {
            State::Exchange(ex) if ex.waiting_for_upstream() => {
                ex.target.map(|(cluster, addr)| Action::Connect {
                    cluster,
                    addr,
                    fresh: ex.fresh_connection(),
                })
            }
            _ => None,
        }
    }

    /// Returns buffer allocations that hold nothing to the pool (idle connections hold none).
    pub fn release_buffers(&mut self, pool: &mut BufPool) {
        self.cin.release(pool);
        self.cout.release(pool);
        self.spare.rx.release(pool);
        self.spare.tx.release(pool);
        if let Some(up) = &mut self.up {
            up.rx.release(pool);
            up.tx.release(pool);
        }
    }

    /// Whether any of the connection's buffers holds an allocation (an idle connection, after
    /// `release_buffers`, holds none).
    pub fn holds_buffers(&self) -> bool {
        let side = |s: &UpSide| s.rx.has_allocation() || s.tx.has_allocation();
        self.cin.has_allocation()
            || self.cout.has_allocation()
            || side(&self.spare)
            || self.up.as_ref().is_some_and(side)
    }

    /// The connection is going away (closed by the driver, or failed): ends a request still
    /// running, as a downstream disconnect, and hands back what it holds.
    pub fn abort(&mut self, env: &mut dyn Env, now: Instant) {
        let state = std::mem::replace(&mut self.state, State::Closed(Close::Graceful));
        match state {
            State::Exchange(mut ex) => {
                ex.flag(Flags::DC);
                ex.rq.detail("downstream_remote_disconnect");
                ex.finish(env, now);
            }
            State::Tunnel(mut t) => {
                t.ex.flag(Flags::DC);
                t.ex.rq.detail("downstream_remote_disconnect");
                t.finish(env, now);
            }
            State::Paused(mut c) => {
                c.rq.flags.set(Flags::DC);
                c.rq.detail("downstream_remote_disconnect");
                env.end(&mut c.rq, now);
            }
            _ => {}
        }
        if let Some(u) = self.up.take() {
            u.recycle(&mut self.spare);
        }
    }

    /// The HTTP/2 client reset the running stream (RST_STREAM; the transcoder holds the next
    /// stream's bytes until this is done). Only that exchange ends, as Envoy ends only the
    /// stream: recorded as a downstream remote reset (`DR`, `http2.remote_reset`, the status
    /// of a response already begun, else 0), its upstream connection closed (a response cut
    /// mid-way leaves it unusable), its unread request bytes and unsent response bytes
    /// dropped; the connection waits for the next request.
    pub fn stream_reset(&mut self, env: &mut dyn Env, now: Instant) {
        // Envoy's codec sets these details on the stream whatever explained the response
        // before (`via_upstream`): they replace it.
        const DETAIL: &str = "http2.remote_reset";
        match std::mem::replace(&mut self.state, State::Head) {
            State::Exchange(mut ex) => {
                ex.flag(Flags::DR);
                ex.rq.details = DETAIL.into();
                ex.finish(env, now);
                env.spares().put_exchange(ex);
            }
            State::Tunnel(mut t) => {
                t.ex.flag(Flags::DR);
                t.ex.rq.details = DETAIL.into();
                t.finish(env, now);
            }
            State::Paused(mut c) => {
                c.rq.flags.set(Flags::DR);
                c.rq.details = DETAIL.into();
                env.end(&mut c.rq, now);
            }
            State::Head => {}
            // Closing already (or gone): nothing more is served.
            other => {
                self.state = other;
                return;
            }
        }
        self.connect = None;
        if let Some(u) = self.up.take() {
            u.recycle(&mut self.spare);
            self.release = Some(false);
        }
        self.cin.consume(self.cin.len());
        self.cout.consume(self.cout.len());
        self.scanned = 0;
        self.head_started = None;
        self.idle_since = now;
    }

    /// Empties all buffers back to the pool.
    pub fn free(&mut self, pool: &mut BufPool) {
        self.cin.consume(self.cin.len());
        self.cout.consume(self.cout.len());
        if let Some(u) = self.up.take() {
            u.recycle(&mut self.spare);
        }
        self.release_buffers(pool);
    }

    // ---- the state machine ----

    /// Runs the protocol on what is buffered until nothing more can happen without new bytes,
    /// an upstream event or time. Returns whether anything changed.
    pub fn process(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let mut any = false;
        // Bounded: each round either changes state or consumes input.
        for _ in 0..10_000 {
            if self.connect.is_some() || self.release.is_some() || !self.step(env, now) {
                break;
            }
            any = true;
        }
        any || self.connect.is_some() || self.release.is_some()
    }

    /// One round; returns whether anything changed.
    fn step(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        match &mut self.state {
            State::Head if self.lim.tcp.is_some() => self.tcp_start(env, now),
            State::Head => self.head(env, now),
            State::Exchange(_) | State::Tunnel(_) => self.exchange(env, now),
            State::Paused(c) => c.verdict.is_some() && self.resume(env, now),
            State::Closing { .. } => false,
            State::Lingering { .. } => {
                self.discard();
                false
            }
            State::Closed(_) | State::Handoff => false,
        }
    }

    /// The state and the buffers an exchange works on, borrowed apart.
    fn parts(&mut self) -> (&mut State, exchange::Cx<'_>) {
        let cx = exchange::Cx {
            cin: &mut self.cin,
            cout: &mut self.cout,
            up: &mut self.up,
            spare: &mut self.spare,
            client_eof: self.client_eof,
            release: &mut self.release,
        };
        (&mut self.state, cx)
    }

    fn discard(&mut self) {
        if let State::Lingering { discarded, .. } = &mut self.state {
            *discarded += self.cin.len();
            self.cin.consume(self.cin.len());
            if self.client_eof || *discarded > LINGER_MAX {
                self.state = State::Closed(Close::Graceful);
            }
        }
    }

    fn close_after(&mut self, now: Instant) {
        self.state = State::Closing {
            until: now + FLUSH_LIMIT,
            quiet: false,
        };
    }

    /// Not inlined into `process`: its frame (header slots, the routing decision) and the
    /// `Env` calls it makes would otherwise be set up on every `process` call, most of which
    /// parse no head.
    #[inline(never)]
    fn head(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        if env.handoff() && !self.client_eof && self.cin.len() <= HANDOFF_MAX {
            if self.out_pending() > 0 {
                // Let the last answer go out first; the next request is the successor's.
                return false;
            }
            self.state = State::Handoff;
            return true;
        }
        if self.h2_switch {
            return false; // the driver switches the connection to HTTP/2 first
        }
        if self.cin.is_empty() {
            if self.client_eof || (env.close_idle() && self.out_pending() == 0) {
                self.finish_connection(now);
                return true;
            }
            return false;
        }
        if self.lim.codec_type == CodecType::Http2 && !self.h2 && self.requests == 0 {
            // Whatever the first bytes are, the HTTP/2 transcoder judges them (not the
            // preface: a connection error, as Envoy's HTTP/2 codec answers).
            return self.switch_to_h2(env);
        }
        if self.out_pending() >= OUT_HIGH {
            return false; // the client is not reading our answers: stop parsing more requests
        }
        if self.head_started.is_none() {
            self.head_started = Some(now);
        }
        // The first look parses whatever is there: a head usually arrives whole, and a scan
        // for its end first would only read it twice. Later looks (a head arriving in pieces)
        // parse again only once the new bytes hold an end of head.
        if self.scanned == 0 {
            self.scanned = self.cin.len();
        } else if !head_complete(self.cin.data(), &mut self.scanned) {
            return self.partial_head(env, now);
        }
        if self.lim.codec_type == CodecType::Auto
            && !self.h2
            && self.requests == 0
            && self.cin.data().starts_with(H2_PREFACE_LINE)
        {
            return self.switch_to_h2(env);
        }
        // `request_timeout` runs from the head's first byte.
        let began = self.head_started.unwrap_or(now);
        let mut slots = super::codec::header_slots();
        let (head_len, next) = match super::codec::parse_request(self.cin.data(), &mut slots) {
            Ok(None) => return self.partial_head(env, now),
            Err(e) => {
                self.reject(env, &e, now);
                return true;
            }
            Ok(Some(req)) if req.head_len > self.lim.max_head => {
                self.reject(env, &HeadError::TooLarge, now);
                return true;
            }
            Ok(Some(req))
                if self.lim.underscores == Underscores::RejectRequest
                    && underscored(req.headers) =>
            {
                // Envoy's HTTP/1 codec: 400 and close (before the header count).
                let mut rq = env.begin(Some(&req), req.minor, now);
                rq.detail("http1.unexpected_underscore");
                self.refuse_rq(env, rq, 400, "Bad Request", Flags::DPE, now);
                return true;
            }
            Ok(Some(req))
                if kept_headers(req.headers, self.lim.underscores) > self.lim.max_headers =>
            {
                // Counted as Envoy's header map holds them: dropped names are not there.
                self.reject(env, &HeadError::TooLarge, now);
                return true;
            }
            Ok(Some(req)) if req.minor == 0 && !self.lim.accept_http_10 => {
                // Envoy: HTTP/1.0 only when `accept_http_10` is on; else 426 and close.
                let rq = env.begin(Some(&req), 0, now);
                log::debug!("HTTP/1.0 request refused (accept_http_10 is off)");
                self.refuse_rq(env, rq, 426, "Upgrade Required", Flags::DPE, now);
                return true;
            }
            Ok(Some(req)) => {
                #[cfg(debug_assertions)]
                test_hooks::maybe_panic(req.path);
                let head_len = req.head_len;
                self.requests = self.requests.saturating_add(1);
                let spent = self.spent(now);
                let h2 = self.h2;
                let (lim, cout) = (&self.lim, &mut self.cout);
                let started = as_served(lim, env, req, |env, req| {
                    let mut rq = env.begin(Some(req), req.minor, now);
                    let decision = env.route(req, &mut rq);
                    start_or_pause(env, req, lim, decision, rq, cout, (began, spent, h2), now)
                });
                match started {
                    Ok(next) => (head_len, next),
                    Err(c) => {
                        // The head stays where it is until the wait is over.
                        self.state = State::Paused(c);
                        return true;
                    }
                }
            }
        };
        self.cin.consume(head_len);
        self.scanned = 0;
        self.head_started = None;
        self.apply_step(env, next, now);
        true
    }

    /// The paused request's wait is over: its head, parsed again from the input, goes on
    /// through the filters after the one that paused it, then starts its exchange (or pauses
    /// again, on a later filter).
    fn resume(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let State::Paused(c) = std::mem::replace(&mut self.state, State::Head) else {
            return false;
        };
        let Paused {
            rq,
            pending,
            began,
            verdict,
            ..
        } = *c;
        let spent = self.spent(now);
        let h2 = self.h2;
        let mut slots = super::codec::header_slots();
        let parsed = super::codec::parse_request(self.cin.data(), &mut slots);
        let Ok(Some(req)) = parsed else {
            // The same bytes parsed before the pause; never here.
            self.refuse_rq(env, rq, 400, "Bad Request", Flags::DPE, now);
            return true;
        };
        let head_len = req.head_len;
        let (lim, cout) = (&self.lim, &mut self.cout);
        let started = as_served(lim, env, req, |env, req| {
            let mut rq = rq;
            let decision = env.resume(req, &mut rq, pending, verdict.flatten());
            start_or_pause(env, req, lim, decision, rq, cout, (began, spent, h2), now)
        });
        match started {
            Ok(next) => {
                self.cin.consume(head_len);
                self.scanned = 0;
                self.head_started = None;
                self.apply_step(env, next, now);
            }
            Err(c) => self.state = State::Paused(c),
        }
        true
    }

    /// A paused request outlived the stream idle timeout: the connection manager's answer, as
    /// the exchange gives it (`Exchange::stream_idle`) — 504 `stream timeout` for a request
    /// without a body, 408 while one is still to come — with flag SI; then the connection
    /// closes (the head and any body are not read on).
    fn paused_idle(&mut self, env: &mut dyn Env, now: Instant) {
        let State::Paused(c) = std::mem::replace(&mut self.state, State::Head) else {
            return;
        };
        log::debug!("stream idle timeout while paused");
        let Paused { mut rq, body, .. } = *c;
        self.cin.consume(self.cin.len());
        rq.flags.set(Flags::SI);
        rq.detail("stream_idle_timeout");
        let status = if body { 408 } else { 504 };
        exchange::queue_reply(
            env,
            &mut self.cout,
            &exchange::plain_reply(status, super::local::STREAM_TIMEOUT, true),
            &mut rq,
        );
        env.end(&mut rq, now);
        self.close_after(now);
    }

    /// The paused request's check, for the driver to send (once).
    pub fn take_check(&mut self) -> Option<Check> {
        match &mut self.state {
            State::Paused(c) if !c.sent => {
                c.sent = true;
                c.pending.check().cloned()
            }
            _ => None,
        }
    }

    /// The paused request's check is answered (`None`: it failed); the request goes on.
    pub fn check_answered(&mut self, env: &mut dyn Env, verdict: Verdict, now: Instant) {
        if let State::Paused(c) = &mut self.state {
            if c.verdict.is_none() && c.pending.check().is_some() {
                c.verdict = Some(verdict);
                self.process(env, now);
            }
        }
    }

    /// A request is paused on its ext_authz check.
    pub fn checking(&self) -> bool {
        matches!(&self.state, State::Paused(c) if c.pending.check().is_some())
    }

    /// A request is paused (on a check or a delay).
    pub fn paused(&self) -> bool {
        matches!(self.state, State::Paused(_))
    }

    fn exchange(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let closing = env.closing() || self.spent(now);
        let next = match self.parts() {
            (State::Exchange(ex), mut cx) => ex.pump(env, &mut cx, closing, now),
            (State::Tunnel(t), mut cx) => t.pump(env, &mut cx, now),
            _ => return false,
        };
        let progress = !matches!(next, exchange::Step::Running(false));
        self.apply_step(env, next, now);
        if self.lim.tcp.is_some() {
            self.tcp_flow(env);
        }
        progress
    }

    /// Carries out what an exchange step decided for the connection.
    fn apply_step(&mut self, env: &mut dyn Env, next: exchange::Step, now: Instant) {
        use exchange::Step;
        match next {
            Step::Running(_) => {}
            Step::Connect(a) => self.connect = Some(a),
            Step::Started(ex, a) => {
                self.state = State::Exchange(ex);
                self.connect = a;
            }
            Step::End(then) => {
                if let Some(u) = self.up.take() {
                    u.recycle(&mut self.spare);
                    self.release = Some(false);
                }
                self.end_exchange(env, then, now);
            }
            Step::Tunnel => {
                if let State::Exchange(ex) = std::mem::replace(&mut self.state, State::Head) {
                    env.tunnel(true);
                    self.state = State::Tunnel(tunnel::Tunnel::new(ex, now));
                }
            }
        }
    }

    fn end_exchange(&mut self, env: &mut dyn Env, then: exchange::Then, now: Instant) {
        use exchange::Then;
        let prev = std::mem::replace(&mut self.state, State::Head);
        let asked_close = match &prev {
            State::Exchange(ex) => !ex.client_keep_alive && ex.req.is_done(),
            _ => false,
        };
        match prev {
            State::Exchange(mut ex) => {
                ex.finish(env, now);
                env.spares().put_exchange(ex);
            }
            State::Tunnel(t) => t.finish(env, now),
            _ => {}
        }
        match then {
            Then::Next => {
                self.idle_since = now;
                self.state = State::Head;
            }
            Then::Close => {
                self.close_after(now);
                if let State::Closing { quiet, .. } = &mut self.state {
                    *quiet = asked_close;
                }
            }
            Then::Reset => self.state = State::Closed(Close::Reset),
            Then::Drop => self.state = State::Closed(Close::Graceful),
        }
    }

    /// Not a whole head yet: too large already, or the client closed mid-head.
    fn partial_head(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        if self.cin.len() > self.lim.max_head {
            self.reject(env, &HeadError::TooLarge, now);
            return true;
        }
        if self.client_eof {
            self.finish_connection(now);
            return true;
        }
        false
    }

    /// No more requests on this connection: flush what is queued first.
    fn finish_connection(&mut self, now: Instant) {
        if self.out_pending() == 0 {
            self.state = State::Closed(Close::Graceful);
        } else {
            self.close_after(now);
        }
    }

    fn reject(&mut self, env: &mut dyn Env, e: &HeadError, now: Instant) {
        log::debug!("bad request: {}", e.reason());
        let body = match e.status() {
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            _ => "Bad Request",
        };
        self.refuse(env, e.status(), body, Flags::DPE, now);
    }

    /// Answers a request head that will not be served (malformed, too large, too slow) and
    /// closes the connection after the answer.
    fn refuse(&mut self, env: &mut dyn Env, status: u16, body: &str, flag: u32, now: Instant) {
        let rq = env.begin(None, 1, now);
        self.refuse_rq(env, rq, status, body, flag, now);
    }

    /// `refuse` with the request's record already begun.
    fn refuse_rq(
        &mut self,
        env: &mut dyn Env,
        mut rq: Rq,
        status: u16,
        body: &str,
        flag: u32,
        now: Instant,
    ) {
        self.cin.consume(self.cin.len());
        rq.flags.set(flag);
        rq.detail(match status {
            431 => "http1.headers_too_large",
            408 => "request_header_timeout",
            426 => "low_version",
            _ => "http1.codec_error",
        });
        exchange::queue_reply(
            env,
            &mut self.cout,
            &exchange::plain_reply(status, body, true),
            &mut rq,
        );
        env.end(&mut rq, now);
        self.close_after(now);
    }
}

/// Runs `f` on a parsed head as the connection serves it: under `DROP_HEADER` without the
/// headers with an underscore (routing, the access log and the upstream do not see them;
/// only such a request pays for the copy), and an HTTP/1.0 request without Host with
/// `default_host_for_http_10`.
fn as_served<R>(
    lim: &Limits,
    env: &mut dyn Env,
    req: RequestHead<'_>,
    f: impl FnOnce(&mut dyn Env, &RequestHead<'_>) -> R,
) -> R {
    let default_host = match (req.minor, req.host) {
        (0, None) => env.default_host_for_http_10(),
        _ => None,
    };
    let kept: Vec<httparse::Header<'_>>;
    let headers = if lim.underscores == Underscores::DropHeader && underscored(req.headers) {
        kept = req
            .headers
            .iter()
            .filter(|h| !h.name.contains('_'))
            .copied()
            .collect();
        &kept[..]
    } else {
        req.headers
    };
    let req = RequestHead {
        host: default_host.as_deref().or(req.host),
        headers,
        ..req
    };
    f(env, &req)
}

/// Starts the exchange a routing decision asks for, begun while the head is still borrowed
/// from the input buffer (the decision and the record go to it without being moved out
/// first; it writes only to the client output) — or, for a filter's wait, the pause.
/// `(began, spent)`: when the head began, and whether the connection has served its last.
#[allow(clippy::too_many_arguments)]
fn start_or_pause(
    env: &mut dyn Env,
    req: &RequestHead<'_>,
    lim: &Limits,
    decision: Decision,
    rq: Rq,
    cout: &mut Buf,
    (began, spent, h2): (Instant, bool, bool),
    now: Instant,
) -> Result<exchange::Step, Box<Paused>> {
    if let Decision::Pause(pending) = decision {
        // A client's header can ask for any delay: past what the clock holds, a century.
        let until = now
            .checked_add(pending.limit())
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(now);
        let idle_at = pending.stream_idle.and_then(|d| now.checked_add(d));
        use super::codec::Framing;
        let body = !matches!(req.framing, Framing::None | Framing::Length(0));
        return Err(Box::new(Paused {
            rq,
            pending,
            began,
            until,
            idle_at,
            body,
            sent: false,
            verdict: None,
        }));
    }
    let meta = exchange::Meta::new(req, lim, began, h2);
    let closing = env.closing() || spent;
    Ok(Exchange::start(env, meta, decision, rq, cout, closing, now))
}

/// The first line of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl Conn {
    /// The connection turns out to speak HTTP/2: counted; the driver puts the transcoder
    /// under it (`take_h2`). Only before the first request: a connection that spoke HTTP/1
    /// stays HTTP/1 (a preface later is a malformed request).
    fn switch_to_h2(&mut self, env: &mut dyn Env) -> bool {
        env.http2_preface();
        self.h2_switch = true;
        self.h2 = true;
        true
    }
}

/// Whether `buf` holds the end of a head (an empty line). `scanned` remembers how far an
/// earlier call searched, so bytes arriving one at a time cost O(n) in total, not O(n²).
fn head_complete(buf: &[u8], scanned: &mut usize) -> bool {
    // A head ends at "\n\r\n" or "\n\n" (httparse accepts bare LF line ends); restart the
    // search 2 bytes back so a terminator split across reads is still found.
    let from = scanned.saturating_sub(2).min(buf.len());
    let tail = buf.get(from..).unwrap_or_default();
    let found = tail
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && tail.get(i + 2) == Some(&b'\n')));
    *scanned = buf.len();
    found
}

/// Test-build-only fault injection: a request for the path named by `BATON_TEST_PANIC_PATH`
/// panics inside the core, so tests can check that one connection's panic costs only that
/// connection. Compiled out of release builds.
#[cfg(debug_assertions)]
mod test_hooks {
    use std::sync::OnceLock;

    pub fn maybe_panic(path: &str) {
        static PATH: OnceLock<Option<String>> = OnceLock::new();
        let p = PATH.get_or_init(|| std::env::var("BATON_TEST_PANIC_PATH").ok());
        if p.as_deref() == Some(path) {
            panic!("test panic hook: request for {path}");
        }
    }
}
