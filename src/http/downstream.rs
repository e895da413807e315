//! One client connection and the exchange (request → response) it is running. Between two
//! requests the whole state is the socket, the unread bytes and a few counters, so that a later
//! handover can move it to another process.
//!
//! Lifecycle: `Head` (reading a request head) → `Exchange` (request body up, response down;
//! `exchange.rs`) → back to `Head` on keep-alive, or `Closing` (flush, then a short lingering
//! read so a final error response is not destroyed by an RST) → closed.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::buf::{Buf, ReadOutcome, CHUNK};
use super::exchange::Exchange;
use super::upstream::UpConn;
use crate::context::Ctx;
use crate::reactor::{TimerKey, Tok};

/// How long a closing connection keeps reading (and discarding) before the final close.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_MAX: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Head,
    Exchange,
    /// Flushing the last response; then shut down writes and linger.
    Closing,
    Lingering,
    Closed,
    /// Idle, and a successor process exists: move the connection there (fd + unread bytes).
    Handoff,
}

pub struct Session {
    pub id: usize,
    pub gen: u64,
    pub client: TcpStream,
    pub peer: SocketAddr,
    pub listener: usize,
    pub rbuf: Buf,
    pub wbuf: Buf,
    pub readable: bool,
    pub writable: bool,
    /// The last readiness event said the peer closed (or errored): read to EOF.
    pub hup: bool,
    pub eof: bool,
    pub phase: Phase,
    pub up: Option<UpConn>,
    pub ex: Option<Box<Exchange>>,
    /// When the session's next timeout is due (idle, header, connect, route, linger).
    pub deadline: Option<Instant>,
    /// The earliest timer entry we have in the heap. Deadlines that move later (activity) do
    /// not push new entries; the armed one fires, sees the later deadline and re-arms once.
    armed: Option<Instant>,
    /// When the connection last became idle (for idle_timeout).
    pub idle_since: Instant,
    /// When the first byte of the current head arrived (for request_headers_timeout).
    pub head_started: Option<Instant>,
    pub linger_until: Option<Instant>,
    pub lingered: usize,
    pub requests: u64,
}

impl Session {
    pub fn new(
        id: usize,
        gen: u64,
        client: TcpStream,
        peer: SocketAddr,
        listener: usize,
        now: Instant,
    ) -> Session {
        Session {
            id,
            gen,
            client,
            peer,
            listener,
            rbuf: Buf::default(),
            wbuf: Buf::default(),
            readable: true,
            writable: true,
            hup: false,
            eof: false,
            phase: Phase::Head,
            up: None,
            ex: None,
            deadline: None,
            armed: None,
            idle_since: now,
            head_started: None,
            linger_until: None,
            lingered: 0,
            requests: 0,
        }
    }

    /// Reads from the client while allowed; at most `max` buffered bytes.
    pub(super) fn read_client(&mut self, ctx: &mut Ctx, max: usize) -> io::Result<bool> {
        let mut progress = false;
        while self.readable && !self.eof && self.rbuf.len() < max {
            let want = (max - self.rbuf.len()).min(CHUNK);
            match self.rbuf.read_from(&mut ctx.pool, &mut self.client, want)? {
                ReadOutcome::Data(_) => progress = true,
                ReadOutcome::Drained(_) => {
                    progress = true;
                    // A pending FIN raises no new edge: keep reading to see it.
                    self.readable = self.hup;
                }
                ReadOutcome::Eof => {
                    self.eof = true;
                    progress = true;
                }
                ReadOutcome::WouldBlock => self.readable = false,
            }
        }
        Ok(progress)
    }

    fn flush_client(&mut self) -> io::Result<bool> {
        if self.wbuf.is_empty() || !self.writable {
            return Ok(false);
        }
        let before = self.wbuf.len();
        if !self.wbuf.write_to(&mut self.client)? {
            self.writable = false;
        }
        Ok(self.wbuf.len() != before)
    }

    /// Runs the connection until nothing more can happen without a new event.
    /// Returns false when the session is finished and must be removed.
    pub fn drive(&mut self, ctx: &mut Ctx) -> bool {
        match self.drive_inner(ctx) {
            Ok(()) => {}
            Err(e) => {
                log::debug!("session {} ({}): {e}", self.id, self.peer);
                self.phase = Phase::Closed;
            }
        }
        if matches!(self.phase, Phase::Closed | Phase::Handoff) {
            return false;
        }
        self.arm_deadline(ctx);
        true
    }

    fn drive_inner(&mut self, ctx: &mut Ctx) -> io::Result<()> {
        loop {
            let mut progress = false;
            match self.phase {
                Phase::Head => {
                    let max =
                        ctx.listeners[self.listener].hcm.max_request_headers_kb as usize * 1024;
                    if ctx.handoff && self.wbuf.is_empty() && !self.eof {
                        self.phase = Phase::Handoff;
                        return Ok(());
                    }
                    if self.rbuf.is_empty() && ctx.draining && self.wbuf.is_empty() {
                        // Safe point: read what may already be there before closing.
                        self.read_client(ctx, max + 1)?;
                        if self.rbuf.is_empty() {
                            self.phase = Phase::Closed;
                            return Ok(());
                        }
                    }
                    progress |= self.read_client(ctx, max + 1)?;
                    if !self.rbuf.is_empty() && self.head_started.is_none() {
                        self.head_started = Some(ctx.now);
                    }
                    if !self.rbuf.is_empty() {
                        progress |= super::exchange::start(self, ctx, max);
                    } else if self.eof {
                        self.phase = if self.wbuf.is_empty() {
                            Phase::Closed
                        } else {
                            Phase::Closing
                        };
                        progress = true;
                    } else {
                        self.rbuf.release(&mut ctx.pool);
                    }
                }
                Phase::Exchange => {
                    progress |= super::relay::pump(self, ctx)?;
                }
                Phase::Closing => {
                    progress |= self.flush_client()?;
                    if self.wbuf.is_empty() {
                        let _ = self.client.shutdown(std::net::Shutdown::Write);
                        self.phase = Phase::Lingering;
                        self.linger_until = Some(ctx.now + LINGER);
                        progress = true;
                    }
                }
                Phase::Lingering => {
                    // Discard whatever the client still sends, so our last response is not
                    // destroyed by an RST from closing with unread data.
                    while self.readable && !self.eof {
                        match self
                            .rbuf
                            .read_from(&mut ctx.pool, &mut self.client, CHUNK)?
                        {
                            ReadOutcome::Data(n) | ReadOutcome::Drained(n) => {
                                self.lingered += n;
                                self.rbuf.consume(n);
                            }
                            ReadOutcome::Eof => self.eof = true,
                            ReadOutcome::WouldBlock => self.readable = false,
                        }
                    }
                    if self.eof || self.lingered > LINGER_MAX {
                        self.phase = Phase::Closed;
                    }
                    return Ok(());
                }
                Phase::Closed | Phase::Handoff => return Ok(()),
            }
            progress |= self.flush_client()?;
            if !progress {
                if self.phase == Phase::Head && self.wbuf.is_empty() {
                    self.wbuf.release(&mut ctx.pool);
                }
                return Ok(());
            }
        }
    }

    /// Queues a response and closes the connection after it (bad request, drain...).
    pub fn close_after(&mut self) {
        self.phase = Phase::Closing;
    }

    fn arm_deadline(&mut self, ctx: &mut Ctx) {
        let hcm = &ctx.listeners[self.listener].hcm;
        let d = match self.phase {
            Phase::Head => {
                if self.rbuf.is_empty() {
                    hcm.idle_timeout.map(|t| self.idle_since + t)
                } else {
                    match (hcm.request_headers_timeout, self.head_started) {
                        (Some(t), Some(s)) => Some(s + t),
                        _ => hcm.idle_timeout.map(|t| self.idle_since + t),
                    }
                }
            }
            Phase::Exchange => self.ex.as_ref().and_then(|e| e.deadline()),
            Phase::Closing => Some(*self.linger_until.get_or_insert(ctx.now + LINGER + LINGER)),
            Phase::Lingering => self.linger_until,
            Phase::Closed | Phase::Handoff => None,
        };
        self.deadline = d;
        if let Some(at) = d {
            if self.armed.is_none_or(|a| a > at) {
                ctx.timers.arm(at, TimerKey::Session(self.id, self.gen));
                self.armed = Some(at);
            }
        }
    }

    /// A deadline fired. Returns false when the session must be removed.
    pub fn on_timer(&mut self, ctx: &mut Ctx, at: Instant) -> bool {
        if self.armed != Some(at) {
            return true; // superseded by an earlier entry that already fired
        }
        self.armed = None;
        if self.deadline.is_none_or(|d| d > ctx.now) {
            self.arm_deadline(ctx);
            return true;
        }
        self.deadline = None;
        match self.phase {
            Phase::Head => {
                log::debug!("session {}: idle or header timeout", self.id);
                self.phase = Phase::Closed;
            }
            Phase::Exchange => super::relay::on_timeout(self, ctx),
            Phase::Closing | Phase::Lingering => self.phase = Phase::Closed,
            Phase::Closed | Phase::Handoff => {}
        }
        self.drive(ctx)
    }

    /// Tears the session down: upstream closed (never reused mid-exchange), buffers returned.
    pub fn close(mut self, ctx: &mut Ctx) {
        if let Some(mut ex) = self.ex.take() {
            // Still running when the connection goes: the client left (or its timer fired).
            ex.flag(crate::access_log::Flags::DC);
            ex.finish_abort(ctx);
        }
        crate::observe::cx_close(ctx, self.listener);
        if let Some(up) = self.up.take() {
            up.close(ctx);
        }
        let _ = ctx.registry.deregister(&mut self.client);
        self.rbuf.release(&mut ctx.pool);
        self.wbuf.consume(self.wbuf.len());
        self.wbuf.release(&mut ctx.pool);
    }

    /// Detaches the client socket for a handover: deregistered, with the bytes read from it
    /// and not yet answered. Only called in `Phase::Handoff` (no exchange, nothing to write).
    pub fn into_moved(mut self, ctx: &mut Ctx) -> (TcpStream, Vec<u8>) {
        crate::observe::cx_moved(ctx, self.listener);
        let _ = ctx.registry.deregister(&mut self.client);
        let pending = self.rbuf.take_bytes();
        self.rbuf.release(&mut ctx.pool);
        self.wbuf.release(&mut ctx.pool);
        (self.client, pending)
    }

    pub fn token(&self) -> Tok {
        Tok::Down(self.id)
    }

    /// True when the connection holds no request: safe to close during a drain.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Head && self.rbuf.is_empty() && self.wbuf.is_empty()
    }
}
