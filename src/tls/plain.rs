//! The byte stream of a build without TLS: plain TCP only, with the TLS stream's interface so
//! the drivers are the same in both builds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{event::Source, Interest, Registry, Token};

use crate::access_log::TlsInfo;
use crate::config::FilterChainTls;
use crate::h2::layer::{Layer, Wire};
use crate::h2::Transcode;
use crate::proxy_protocol::Origin;

/// Never built: the config loader refuses TLS in this build.
#[derive(Debug)]
pub enum ListenerTls {}

impl ListenerTls {
    pub fn new(
        _chains: &[FilterChainTls],
        _tcp: &[bool],
        _inspect_timeout: Duration,
    ) -> Result<Option<Rc<ListenerTls>>, String> {
        Ok(None)
    }
}

/// Never produced in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {}

#[derive(Debug)]
pub struct Stream {
    sock: TcpStream,
    /// See the TLS build's `Stream::set_origin`.
    origin: Option<Box<Origin>>,
    /// See the TLS build's `Stream::set_h2`.
    h2: Option<Box<Layer>>,
}

impl Stream {
    pub fn plain(sock: TcpStream) -> Stream {
        Stream {
            sock,
            origin: None,
            h2: None,
        }
    }

    pub fn accepted(sock: TcpStream, _tls: Option<Rc<ListenerTls>>, _now: Instant) -> Stream {
        Stream {
            sock,
            origin: None,
            h2: None,
        }
    }

    /// See the TLS build's `Stream::quiet`: nothing waits on the socket (no bytes, no FIN).
    pub fn quiet(&mut self) -> bool {
        if self.h2.is_some() {
            return self.usable_after_idle_event();
        }
        super::socket_quiet(&self.sock)
    }

    pub fn is_tls(&self) -> bool {
        false
    }

    /// See the TLS build's `Stream::set_h2`.
    pub fn set_h2(&mut self, codec: Box<dyn Transcode>, preread: &[u8]) {
        self.h2 = Some(Box::new(Layer::new(codec, preread)));
    }

    pub fn is_h2(&self) -> bool {
        self.h2.is_some()
    }

    /// See the TLS build's `Stream::bridged`.
    pub fn bridged(&self) -> bool {
        self.h2.is_some()
    }

    /// HTTP/2: consumes the peer's frames while the driver reads no HTTP/1 bytes (see
    /// `Layer::pump`): (anything consumed, the socket would block). Plain streams: nothing.
    pub fn pump_h2(&mut self) -> io::Result<(bool, bool)> {
        self.with_h2(|l, s| l.pump(s)).unwrap_or(Ok((false, true)))
    }

    /// See the TLS build's `Stream::take_unblocked`.
    pub fn take_h2_reset(&mut self) -> bool {
        self.h2.as_mut().is_some_and(|l| l.take_reset())
    }

    pub fn take_unblocked(&mut self) -> bool {
        self.h2.as_mut().is_some_and(|l| l.take_unblocked())
    }

    fn with_h2<R>(&mut self, f: impl FnOnce(&mut Layer, &mut Stream) -> R) -> Option<R> {
        let mut l = self.h2.take()?;
        let r = f(&mut l, self);
        self.h2 = Some(l);
        Some(r)
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    pub fn set_origin(&mut self, o: Origin) {
        self.origin = Some(Box::new(o));
    }

    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_deref()
    }

    /// Chains are chosen at accept in this build (the config refuses matching on the
    /// ClientHello).
    pub fn choosing(&self) -> bool {
        false
    }

    pub fn choose(&mut self) -> io::Result<Option<usize>> {
        Ok(Some(0))
    }

    pub fn replay_done(&self) -> bool {
        true
    }

    /// See the TLS build's `Stream::write_before_fin`.
    pub fn write_before_fin(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.h2.is_some() {
            return self.write(buf);
        }
        super::send_before_fin(&self.sock, buf)
    }

    pub fn short_read_drains(&self) -> bool {
        self.h2.is_none()
    }

    pub fn handshaking(&self) -> bool {
        false
    }

    pub fn deadline(&self) -> Option<Instant> {
        None
    }

    pub fn info(&self) -> Option<&Rc<TlsInfo>> {
        None
    }

    pub fn take_news(&mut self) -> Option<News> {
        None
    }

    pub fn pending_out(&self) -> bool {
        self.h2.as_ref().is_some_and(|l| l.pending_out(self))
    }

    pub fn flush_pending(&mut self) -> io::Result<bool> {
        self.with_h2(|l, s| l.flush(s)).unwrap_or(Ok(true))
    }

    pub fn handshake(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    pub fn shutdown_write(&mut self) {
        self.with_h2(|l, s| l.close(s));
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.take_error()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock.set_nodelay(on)
    }

    pub fn into_tcp(self) -> TcpStream {
        self.sock
    }

    /// See the TLS build's `Stream::usable_after_idle_event`: usable while nothing waits.
    pub fn usable_after_idle_event(&mut self) -> bool {
        if let Some(usable) = self.with_h2(|l, s| l.usable_when_idle(s)) {
            return usable;
        }
        super::socket_quiet(&self.sock)
    }
}

impl Wire for Stream {
    fn raw_pending(&self) -> bool {
        false
    }

    fn raw_flush(&mut self) -> io::Result<bool> {
        Ok(true)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(r) = self.with_h2(|l, s| l.read(s, buf)) {
            return r;
        }
        self.sock.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(r) = self.with_h2(|l, s| l.write(s, buf)) {
            return r;
        }
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(r) = self.with_h2(|l, s| l.flush(s)) {
            return r.map(|_| ());
        }
        self.sock.flush()
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.sock.deregister(r)
    }
}
