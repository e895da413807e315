//! Envoy's `envoy.filters.listener.proxy_protocol`: a connection from a load balancer starts
//! with a PROXY protocol header naming the client; it is read (peeked, then drained to its
//! exact length, so the request behind it stays in the socket) before anything else on the
//! connection, the TLS inspector included, and its addresses become the connection's.

pub mod parse;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

pub use parse::{Accept, Header, Step, Version};

/// Which headers a listener's filter takes.
pub fn accept(c: &crate::config::ProxyProtocol) -> Accept {
    Accept {
        v1: c.accept_v1,
        v2: c.accept_v2,
        optional: c.allow_without,
    }
}

/// The first peek: a whole v1 line, or v2's fixed part with IPv4 or IPv6 addresses.
const FIRST_PEEK: usize = 128;

/// A connection still waiting for its header.
#[derive(Debug)]
pub struct Wait {
    /// The bytes peeked last (grown only as far as a v2 header's announced length).
    buf: Vec<u8>,
    /// The listener's `listener_filters_timeout`: the header must be in by then.
    pub deadline: Instant,
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The header was read and drained; the connection's bytes follow.
    Found(Header),
    /// No header, which the listener allows: nothing was read.
    Absent,
    /// A header of a disallowed version: the connection is closed.
    Denied(Version),
    /// Not a valid header: the connection is closed.
    Bad(Option<Version>),
}

impl Wait {
    pub fn new(deadline: Instant) -> Wait {
        Wait {
            buf: Vec::new(),
            deadline,
        }
    }

    /// Peeks at what the client sent: `Ok(None)` while the header is incomplete (the next
    /// readable edge brings more), the outcome once decided. EOF before is an error.
    pub fn poll(&mut self, sock: &TcpStream, accept: Accept) -> io::Result<Option<Outcome>> {
        let mut want = self.buf.len().max(FIRST_PEEK);
        loop {
            self.buf.resize(want, 0);
            let got = match sock.peek(&mut self.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            let seen = self.buf.get(..got).unwrap_or_default();
            match parse::parse(seen, accept) {
                Step::More(n) if got == want && n > want && n <= parse::MAX_LEN => want = n,
                Step::More(_) => return Ok(None),
                Step::Absent => return Ok(Some(Outcome::Absent)),
                Step::Denied(v) => return Ok(Some(Outcome::Denied(v))),
                Step::Bad(v) => return Ok(Some(Outcome::Bad(v))),
                Step::Found(h) => {
                    self.buf = Vec::new();
                    drain(sock, h.len)?;
                    return Ok(Some(Outcome::Found(h)));
                }
            }
        }
    }
}

/// Reads and drops exactly `n` bytes the peek saw (they are in the socket already).
fn drain(mut sock: &TcpStream, mut n: usize) -> io::Result<()> {
    let mut scratch = [0u8; 1024];
    while n > 0 {
        let k = n.min(scratch.len());
        match sock.read(scratch.get_mut(..k).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(m) => n = n.saturating_sub(m),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connection's addresses as the PROXY header gave them, with the socket's own peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client (Envoy's downstream remote address).
    pub peer: SocketAddr,
    /// The address the client connected to (Envoy's restored local address); `None` when
    /// unknown (a connection handed over by a parent keeps only the client's address).
    pub local: Option<SocketAddr>,
    /// The socket's peer: the load balancer (Envoy's downstream direct remote address).
    pub direct: SocketAddr,
}
