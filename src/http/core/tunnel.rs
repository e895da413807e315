//! A tunnel: after a 101 to an upgrade request, a 2xx to a forwarded CONNECT, or the connect
//! of a terminated CONNECT, the client and the upstream connection are a byte pipe. Each
//! direction is bounded (the reader stops while the other side's output is full), a FIN is
//! passed on once everything before it was written, and the tunnel ends when both directions
//! are shut, or with a reset when either side resets or the stream idle timeout fires.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::exchange::{Cx, Exchange, Response, Step, Then};
use super::{Conn, Env, Limits, State, UpSide, OUT_HIGH};
use crate::access_log::Flags;
use crate::access_log::Rq;
use crate::http::buf::{Buf, CHUNK};

#[derive(Debug)]
pub(super) struct Tunnel {
    /// The exchange that opened it: its record (bytes both ways, status, flags), target and
    /// idle timeout; it ends when the tunnel ends.
    pub ex: Box<Exchange>,
    /// We shut down our write side towards the upstream (the client's FIN, passed on).
    pub up_shut: bool,
    /// We shut down our write side towards the client (the upstream's FIN, passed on).
    pub down_shut: bool,
}

impl Tunnel {
    pub fn new(mut ex: Box<Exchange>, now: Instant) -> Tunnel {
        // The request timers ended with the response head; only the idle timeout goes on.
        ex.timeout_at = None;
        ex.per_try_at = None;
        ex.connect_at = None;
        ex.replay = None;
        ex.head = Vec::new();
        ex.last_activity = now;
        Tunnel {
            ex,
            up_shut: false,
            down_shut: false,
        }
    }

    /// Bytes buffered per direction before its reader stops.
    fn bound(&self) -> usize {
        self.ex.up_limit.min(self.ex.client_limit).min(OUT_HIGH)
    }

    pub fn client_read_room(&self, cin: usize, up: Option<&UpSide>) -> usize {
        up.map_or(0, |u| self.bound().saturating_sub(cin + u.tx.len()))
    }

    pub fn up_read_room(&self, rx: usize, cout: usize) -> usize {
        self.bound().saturating_sub(rx + cout).min(CHUNK)
    }

    pub fn deadline(&self) -> Option<Instant> {
        let idle = self.ex.idle.map(|t| self.ex.last_activity + t);
        let until = self.ex.tcp.and_then(|m| m.until);
        match (idle, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves what each side sent to the other; ends the tunnel once both directions are shut.
    pub fn pump(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>, now: Instant) -> Step {
        let Some(up) = cx.up.as_mut() else {
            return Step::End(Then::Reset);
        };
        let pool = env.pool();
        let up_bytes = pass(cx.cin, &mut up.tx, pool);
        let down_bytes = pass(&mut up.rx, cx.cout, pool);
        self.ex.rq.bytes_rx += up_bytes as u64;
        self.ex.rq.bytes_tx += down_bytes as u64;
        let moved = up_bytes + down_bytes > 0;
        if moved {
            self.ex.last_activity = now;
        }
        if self.up_shut && self.down_shut {
            return Step::End(Then::Drop);
        }
        Step::Running(moved)
    }

    pub fn on_timeout(&mut self, env: &mut dyn Env, cx: &mut Cx<'_>, now: Instant) -> Step {
        if self.ex.tcp_duration_due(now) {
            cx.drop_up();
            return super::tcp::duration_reached(&mut self.ex, env);
        }
        let idle_due = self
            .ex
            .idle
            .is_some_and(|t| self.ex.last_activity + t <= now);
        if !idle_due {
            return Step::Running(false);
        }
        cx.drop_up();
        if self.ex.tcp.is_some() {
            // Envoy's TCP proxy closes both connections (no flag; `idle_timeout` counts it).
            log::debug!("tcp proxy idle timeout");
            env.tcp_stat(super::TcpStat::IdleTimeout);
            return Step::End(Then::Drop);
        }
        log::debug!("tunnel idle timeout");
        self.ex.flag(Flags::SI);
        Step::End(Then::Reset)
    }

    /// The upstream's FIN can be passed on: all it sent has been written to the client.
    pub fn wants_down_shutdown(&self, up: Option<&UpSide>, cout: &Buf) -> bool {
        !self.down_shut && cout.is_empty() && up.is_some_and(|u| u.eof && u.rx.is_empty())
    }

    /// The client's FIN can be passed on: all it sent has been written upstream.
    pub fn wants_up_shutdown(&self, client_eof: bool, cin: &Buf, up: Option<&UpSide>) -> bool {
        !self.up_shut && client_eof && cin.is_empty() && up.is_some_and(|u| u.tx.is_empty())
    }

    /// Ends the record (one access-log line with the bytes of both directions).
    pub fn finish(mut self, env: &mut dyn Env, now: Instant) {
        env.tunnel(false);
        self.ex.finish(env, now);
    }
}

/// Appends all of `from` to `to`; returns how many bytes moved. The readers' room keeps
/// `to` bounded.
fn pass(from: &mut Buf, to: &mut Buf, pool: &mut crate::http::buf::BufPool) -> usize {
    let n = from.len();
    if n > 0 {
        from.move_front(n, to, pool);
    }
    n
}

impl Exchange {
    /// A terminated CONNECT reached its upstream: answer 200 (no framing headers, RFC 9110
    /// §9.3.6) and open the tunnel.
    pub(super) fn connect_established(&mut self, env: &mut dyn Env, cout: &mut Buf) -> Step {
        env.response_head(&mut self.rq, 200, &[]);
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        crate::http::codec::put_header(&mut h, "server", env.server().0.as_bytes());
        h.extend_from_slice(b"\r\n");
        cout.extend(env.pool(), &h);
        self.resp = Some(Response::new(
            super::exchange::BodyIn::Done,
            super::exchange::OutMode::NoBody,
            false,
        ));
        self.tunnel_ready = true;
        Step::Tunnel
    }
}

/// Everything of a tunnel that is not in its two sockets' kernel buffers: what a handover to
/// another process (or a rollback of one) carries besides the two fds and the record. Bytes
/// never sit half-processed in a tunnel (each step moves whole buffers), so any moment
/// between two steps is a safe point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelState {
    /// Read from the upstream, not yet written to the client, oldest first.
    pub to_client: Vec<u8>,
    /// Read from the client, not yet written to the upstream, oldest first.
    pub to_upstream: Vec<u8>,
    /// The client sent FIN (read already: it is not in the socket any more).
    pub client_eof: bool,
    /// The upstream sent FIN.
    pub up_eof: bool,
    /// Our write side towards the upstream is shut.
    pub up_shut: bool,
    /// Our write side towards the client is shut.
    pub down_shut: bool,
    /// The stream idle timeout in force.
    pub idle: Option<Duration>,
}

impl Conn {
    /// Takes an open tunnel out of the connection for a handover: its buffered bytes, FIN
    /// states and record. The host's active-request count and the tunnel gauges move out with
    /// it (`Env::tunnel_moved`); nothing is logged. The connection is left with nothing to do:
    /// the driver takes its sockets.
    pub fn take_tunnel(&mut self, env: &mut dyn Env) -> Option<(TunnelState, Rq)> {
        if !matches!(self.state, State::Tunnel(_)) {
            return None;
        }
        let State::Tunnel(t) = std::mem::replace(&mut self.state, State::Handoff) else {
            return None;
        };
        let up = self.up.take().unwrap_or_default();
        let mut to_client = self.cout.take_bytes();
        to_client.extend_from_slice(up.rx.data());
        let mut to_upstream = up.tx.data().to_vec();
        to_upstream.extend_from_slice(&self.cin.take_bytes());
        let state = TunnelState {
            to_client,
            to_upstream,
            client_eof: self.client_eof,
            up_eof: up.eof,
            up_shut: t.up_shut,
            down_shut: t.down_shut,
            idle: t.ex.idle,
        };
        up.recycle(&mut self.spare);
        let mut ex = *t.ex;
        // Its request slot moves too: the new process counts it.
        ex.release_all(env);
        if let Some((c, addr)) = ex.target {
            env.track(c, addr, -1);
        }
        env.tunnel_moved(&ex.rq, true);
        Some((state, ex.rq))
    }

    /// A connection that continues a tunnel taken by `take_tunnel` (in another process, or
    /// here after a handover was rolled back), towards host `addr` of `cluster`.
    #[allow(clippy::too_many_arguments)]
    pub fn resume_tunnel(
        lim: std::rc::Rc<Limits>,
        s: TunnelState,
        rq: Rq,
        (cluster, addr): (usize, SocketAddr),
        buffer_limit: usize,
        env: &mut dyn Env,
        now: Instant,
    ) -> Conn {
        let tcp = lim
            .tcp
            .map(|t| super::tcp::TcpMode::new(t, rq.start, s.idle));
        let mut c = Conn::new(lim, now);
        c.tcp_started = tcp.is_some();
        let pool = env.pool();
        c.cout.extend(pool, &s.to_client);
        let mut up = UpSide {
            connected: true,
            eof: s.up_eof,
            ..UpSide::default()
        };
        up.tx.extend(pool, &s.to_upstream);
        c.up = Some(up);
        c.client_eof = s.client_eof;
        env.track(cluster, addr, 1);
        env.tunnel_moved(&rq, false);
        let client_limit = c.lim.buffer_limit;
        let mut ex = Exchange::resumed(
            (cluster, addr),
            rq,
            s.idle,
            (client_limit, buffer_limit),
            now,
        );
        // An open tunnel is an active request here now, whatever `max_requests` says: it
        // already runs.
        ex.hold(env, super::Resource::Request, true);
        ex.tcp = tcp;
        c.state = State::Tunnel(Tunnel {
            ex: Box::new(ex),
            up_shut: s.up_shut,
            down_shut: s.down_shut,
        });
        c
    }
}
