//! A TCP proxy connection (`envoy.filters.network.tcp_proxy`): no HTTP at all. At its start
//! the connection asks for a fresh (never pooled) connection to a host of the listener's
//! cluster, and reads nothing from the client until that connection is up (Envoy disables
//! reading meanwhile, so what the client sends first waits in its socket, bounded by the
//! kernel's buffer). A connect that fails or times out is tried again at once on the host the
//! load balancer gives next, up to `max_connect_attempts`; after the last one the client is
//! closed without a byte written. Once connected, the connection is a tunnel (`tunnel.rs`):
//! its byte pump, half-close, backpressure, idle timeout and hot-restart handover are the
//! upgrade's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::exchange::{BodyIn, Exchange, OutMode, Response, Step, Then};
use super::{Action, Close, Conn, Env, Failure, State};
use crate::access_log::Flags;

/// Where a TCP proxy connection goes: a host of a cluster, with the cluster's connect timeout
/// and buffer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTarget {
    pub cluster: usize,
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    /// The cluster's `per_connection_buffer_limit_bytes`.
    pub buffer_limit: usize,
}

/// Where a tunnelling TCP proxy's CONNECT stands (`Exchange::tcp_tunnel_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TunnelAnswer {
    /// Not answered yet; `true`: the CONNECT was just written (progress).
    Wait(bool),
    /// Answered 2xx (or no tunnelling): the tunnel opens.
    Open,
}

/// TCP proxy events the stats count (`tcp.<stat_prefix>.*`, and the cluster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpStat {
    /// `idle_timeout`: no bytes either way for the idle timeout.
    IdleTimeout,
    /// `max_downstream_connection_duration`: the connection was open for that long.
    MaxDuration,
    /// `cluster.<name>.upstream_cx_connect_attempts_exceeded`: every attempt failed.
    AttemptsExceeded(usize),
    /// `cluster.<name>.upstream_cx_none_healthy`: a retry found no host to try.
    NoneHealthy(usize),
    /// `downstream_flow_control_paused_reading_total`: the client is no longer read because
    /// the upstream does not take its bytes.
    FlowPaused,
    /// `downstream_flow_control_resumed_reading_total`.
    FlowResumed,
}

/// What a TCP proxy's exchange keeps besides an ordinary one (`Exchange::tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TcpMode {
    pub max_attempts: u32,
    /// The idle timeout; in force from the tunnel's start (not while connecting, as Envoy
    /// starts its idle timer on connect).
    pub idle: Option<Duration>,
    /// When `max_downstream_connection_duration` closes the connection.
    pub until: Option<Instant>,
    /// `tunneling_config`: a CONNECT goes first, and the tunnel waits for its 2xx.
    pub tunnel: bool,
    /// This attempt's CONNECT was written.
    pub connect_sent: bool,
}

impl TcpMode {
    pub fn new(t: super::TcpLimits, start: Instant, idle: Option<Duration>) -> TcpMode {
        TcpMode {
            max_attempts: t.max_connect_attempts.max(1),
            idle,
            until: t.max_duration.and_then(|d| start.checked_add(d)),
            tunnel: t.tunnel,
            connect_sent: false,
        }
    }
}

impl Conn {
    /// A TCP proxy connection's start: its record, its upstream host, and the connect. With
    /// no host to connect to, the record ends and the client is closed.
    pub(super) fn tcp_start(&mut self, env: &mut dyn Env, now: Instant) -> bool {
        let Some(t) = self.lim.tcp else {
            return false;
        };
        if self.tcp_started {
            return false;
        }
        self.tcp_started = true;
        let (mut rq, target) = env.tcp_begin(now);
        let Some(target) = target else {
            log::debug!("tcp proxy: no upstream host; closing the client");
            env.end(&mut rq, now);
            self.state = State::Closed(Close::Graceful);
            return true;
        };
        let mode = TcpMode::new(t, rq.start, t.idle_timeout);
        let ex = Exchange::tcp(target, mode, rq, self.lim.buffer_limit, now);
        env.track(target.cluster, target.addr, 1);
        let mut ex = env.spares().boxed(ex);
        let a = ex.launch_tcp(now);
        self.state = State::Exchange(ex);
        self.connect = Some(a);
        true
    }

    /// Counts the tunnel's client reading stopping (the upstream takes no more) and going on.
    pub(super) fn tcp_flow(&mut self, env: &mut dyn Env) {
        let State::Tunnel(t) = &self.state else {
            return;
        };
        let paused = !self.client_eof
            && self.up.is_some()
            && t.client_read_room(self.cin.len(), self.up.as_ref()) == 0;
        if paused != self.tcp_paused {
            self.tcp_paused = paused;
            env.tcp_stat(if paused {
                TcpStat::FlowPaused
            } else {
                TcpStat::FlowResumed
            });
        }
    }
}

impl Exchange {
    /// Asks for a fresh connection to the current target. The connect timeout runs from
    /// here, so a wait for a connect slot (`MAX_CONNECTING`) counts against it.
    pub(super) fn launch_tcp(&mut self, now: Instant) -> Action {
        let a = self.launch();
        self.connect_at = Some(now + self.connect_timeout);
        a
    }

    /// A tunnelling TCP proxy's upstream connection is up: the first call writes the
    /// CONNECT (the connect timeout runs again, now for the answer); later ones read the
    /// answer. `Open` on a 2xx (its head consumed: what follows it is the tunnel's first
    /// bytes; 1xx heads before it are skipped); a refusal, a malformed or oversized head, or
    /// a close before it is a failed connect (`UF`, the next attempt on the next host), as
    /// Envoy counts a tunnel that does not come up.
    pub(super) fn tcp_tunnel_answer(
        &mut self,
        env: &mut dyn Env,
        up: &mut super::UpSide,
        now: Instant,
    ) -> Result<TunnelAnswer, Failure> {
        let Some(mode) = self.tcp.as_mut().filter(|m| m.tunnel) else {
            return Ok(TunnelAnswer::Open);
        };
        if !mode.connect_sent {
            mode.connect_sent = true;
            let mut head = Vec::with_capacity(96);
            env.tcp_connect_head(&mut head);
            up.tx.extend(env.pool(), &head);
            self.connect_at = Some(now + self.connect_timeout);
            return Ok(TunnelAnswer::Wait(true));
        }
        loop {
            if !up.eof && !super::head_complete(up.rx.data(), &mut up.head_scanned) {
                if up.rx.len() > super::MAX_RESPONSE_HEAD {
                    return Err(Failure::ConnectFailed);
                }
                return Ok(TunnelAnswer::Wait(false));
            }
            let mut hdrs = crate::http::codec::header_slots();
            let status = match crate::http::codec::parse_response(up.rx.data(), &mut hdrs, false) {
                Ok(Some(r)) if r.head_len <= super::MAX_RESPONSE_HEAD => {
                    Some((r.status, r.head_len))
                }
                Ok(None) if !up.eof => return Ok(TunnelAnswer::Wait(false)),
                _ => None,
            };
            match status {
                // Interim answers are skipped, as Envoy's tunnel ignores 1xx heads; the
                // connect timeout still bounds a proxy that sends nothing else.
                Some((s, n)) if (100..200).contains(&s) && s != 101 => {
                    up.rx.consume(n);
                    up.head_scanned = 0;
                }
                Some((s, n)) if (200..300).contains(&s) => {
                    up.rx.consume(n);
                    up.head_scanned = 0;
                    self.connect_at = None;
                    return Ok(TunnelAnswer::Open);
                }
                other => {
                    log::debug!(
                        "tcp proxy: the upstream proxy refused the CONNECT ({:?})",
                        other.map(|o| o.0)
                    );
                    return Err(Failure::ConnectFailed);
                }
            }
        }
    }

    /// The upstream connection is up: the tunnel opens (nothing is answered; no byte was
    /// read from the client yet, none is sent to it).
    pub(super) fn tcp_connected(&mut self) -> Step {
        self.resp = Some(Response::new(BodyIn::Done, OutMode::NoBody, false));
        self.tunnel_ready = true;
        self.idle = self.tcp.and_then(|m| m.idle);
        Step::Tunnel
    }

    /// A connect failed or timed out (Envoy's `UF`): the next attempt goes to the host the
    /// load balancer gives next, at once; after the last the client is closed (`URX`,
    /// `upstream_cx_connect_attempts_exceeded`). Anything else before the tunnel opened is the
    /// upstream breaking a connection it had accepted: both sides are reset (`UC`).
    pub(super) fn tcp_failed(&mut self, env: &mut dyn Env, f: Failure, now: Instant) -> Step {
        let Some(mode) = self.tcp else {
            return Step::End(Then::Drop);
        };
        if !matches!(f, Failure::ConnectFailed | Failure::ConnectTimeout) {
            self.flag(Flags::UC);
            return Step::End(Then::Reset);
        }
        self.flag(Flags::UF);
        let Some((cluster, old)) = self.target else {
            return Step::End(Then::Drop);
        };
        if self.attempts < mode.max_attempts {
            let Some(addr) = env.next_host(cluster, old) else {
                log::debug!("tcp proxy: no host left to try");
                self.flag(Flags::UH);
                env.tcp_stat(TcpStat::NoneHealthy(cluster));
                return Step::End(Then::Drop);
            };
            env.track(cluster, old, -1);
            env.track(cluster, addr, 1);
            self.target = Some((cluster, addr));
            self.attempts += 1;
            if let Some(m) = self.tcp.as_mut() {
                m.connect_sent = false;
            }
            log::debug!("tcp proxy: connect attempt {} to {addr}", self.attempts);
            return Step::Connect(self.launch_tcp(now));
        }
        log::debug!("tcp proxy: {} connect attempt(s) failed", self.attempts);
        self.flag(Flags::URX);
        env.tcp_stat(TcpStat::AttemptsExceeded(cluster));
        Step::End(Then::Drop)
    }

    /// `max_downstream_connection_duration` is due at `now` (Envoy's `DT`).
    pub(super) fn tcp_duration_due(&self, now: Instant) -> bool {
        self.tcp.and_then(|m| m.until).is_some_and(|u| u <= now)
    }
}

/// Ends a TCP proxy connection at its maximum duration: counted, flagged, both sides closed.
pub(super) fn duration_reached(ex: &mut Exchange, env: &mut dyn Env) -> Step {
    log::debug!("tcp proxy: max_downstream_connection_duration reached");
    ex.flag(Flags::DT);
    env.tcp_stat(TcpStat::MaxDuration);
    Step::End(Then::Drop)
}
