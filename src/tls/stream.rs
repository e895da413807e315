//! The byte stream a connection driver reads and writes: plain TCP, or rustls over TCP. The
//! exchange core sees plaintext either way; the handshake, records and alerts happen here.
//!
//! Non-blocking and edge-triggered: `read` moves TLS records from the socket into rustls only
//! when rustls has no plaintext left, and writes whatever the handshake produced on the way;
//! `write` hands plaintext to rustls and pushes records out as the socket takes them. Bytes
//! rustls holds for a socket that would block are `pending_out`, flushed by `flush_pending`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{event::Source, Interest, Registry, Token};
use rustls::server::Acceptor;
use rustls::Connection;

use super::names::openssl_cipher_name;
use super::x509;
use crate::access_log::TlsInfo;
use crate::config::{FilterChainTls, SanType};
use crate::h2::layer::{Layer, Wire};
use crate::h2::Transcode;
use crate::proxy_protocol::Origin;

/// A listener's filter chains with their rustls configurations, built once at start-up.
#[derive(Debug)]
pub struct ListenerTls {
    chains: Vec<Chain>,
    inspect_timeout: Duration,
    /// The addresses choosing a chain needs.
    needs: crate::chains::Needs,
}

#[derive(Debug)]
struct Chain {
    m: FilterChainTls,
    config: Option<Arc<rustls::ServerConfig>>,
    /// A plain chain whose terminal filter is a TCP proxy: a TLS client's bytes, the
    /// ClientHello read to choose the chain first, go to the upstream as they are.
    passthrough: bool,
}

/// Most bytes read while waiting for a whole ClientHello (rustls refuses a larger one first).
const MAX_HELLO: usize = 64 * 1024;

impl ListenerTls {
    /// `None` when no chain needs the ClientHello (no TLS, no match on what it carries): the
    /// listener's chain is chosen at accept. `tcp` says, per chain, whether its terminal
    /// filter is a TCP proxy.
    pub fn new(
        chains: &[FilterChainTls],
        tcp: &[bool],
        inspect_timeout: Duration,
    ) -> Result<Option<Rc<ListenerTls>>, String> {
        if !crate::chains::needs_hello(chains) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(chains.len());
        for (i, c) in chains.iter().enumerate() {
            let config = match &c.tls {
                Some(t) => Some(super::server_config(t)?),
                None => None,
            };
            out.push(Chain {
                m: c.clone(),
                passthrough: config.is_none() && tcp.get(i) == Some(&true),
                config,
            });
        }
        Ok(Some(Rc::new(ListenerTls {
            chains: out,
            inspect_timeout,
            needs: crate::chains::Needs::of(chains),
        })))
    }

    /// The chain (its index) for a connection on `sock` (whose addresses a PROXY header may
    /// have replaced: `origin`): see `crate::chains`.
    fn select(
        &self,
        sock: &TcpStream,
        origin: Option<&Origin>,
        sni: Option<&str>,
        transport: &str,
        alpn: &[&[u8]],
    ) -> Option<(usize, &Chain)> {
        let mut facts = self.needs.facts(sock, transport).with_origin(origin);
        facts.sni = sni;
        facts.alpn = alpn;
        let i = crate::chains::select(&self.chains, |c| &c.m, &facts)?;
        Some((i, self.chains.get(i)?))
    }
}

/// Something for the stats, reported once (`Stream::take_news`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// A handshake finished: indices into `VERSION_NAMES` and `CIPHER_NAMES`.
    Handshake {
        version: usize,
        cipher: Option<usize>,
        peer_cert: bool,
    },
    /// A handshake failed (`no_cert`: a required client certificate was missing).
    Failed { no_cert: bool },
    /// No filter chain matches the connection.
    NoChain,
}

enum Phase {
    /// Waiting for the first byte: a TLS handshake record or plain bytes.
    Inspect(Rc<ListenerTls>),
    /// Reading the ClientHello to choose a filter chain; the bytes read so far.
    Accept(Rc<ListenerTls>, Box<Acceptor>, Vec<u8>),
    Live(Box<Connection>),
    Failed,
}

struct Tls {
    phase: Phase,
    /// When the ClientHello or the rest of the handshake is due.
    deadline: Option<Instant>,
    news: Option<News>,
    info: Option<Rc<TlsInfo>>,
    sni: Option<String>,
}

/// A connection's byte stream: TCP, with TLS when `tls` is set.
pub struct Stream {
    sock: TcpStream,
    tls: Option<Box<Tls>>,
    /// The filter chain chosen (once chosen, on a listener that inspects).
    chosen: Option<usize>,
    /// A passed-through ClientHello (and what came with it), read before the socket's bytes.
    replay: Option<Box<(Vec<u8>, usize)>>,
    /// The addresses a PROXY protocol header gave the connection.
    origin: Option<Box<Origin>>,
    /// An HTTP/2 transcoder between the driver's HTTP/1 bytes and the TCP or TLS bytes
    /// (either role: `crate::h2::Transcode`). Taken out while it runs, so that its reads and
    /// writes of this stream go to the bytes below it.
    h2: Option<Box<Layer>>,
}

fn failed(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Stream {
    pub fn plain(sock: TcpStream) -> Stream {
        Stream {
            sock,
            tls: None,
            chosen: None,
            replay: None,
            origin: None,
            h2: None,
        }
    }

    /// An accepted connection on a listener with TLS filter chains (`None`: plain).
    pub fn accepted(sock: TcpStream, tls: Option<Rc<ListenerTls>>, now: Instant) -> Stream {
        let tls = tls.map(|l| {
            Box::new(Tls {
                deadline: Some(now + l.inspect_timeout),
                phase: Phase::Inspect(l),
                news: None,
                info: None,
                sni: None,
            })
        });
        Stream {
            sock,
            tls,
            chosen: None,
            replay: None,
            origin: None,
            h2: None,
        }
    }

    /// A client connection to an upstream; the handshake starts with the first flush.
    pub fn client(
        sock: TcpStream,
        cfg: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<Stream> {
        let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| failed(&e.to_string()))?;
        Ok(Stream {
            sock,
            chosen: None,
            replay: None,
            origin: None,
            h2: None,
            tls: Some(Box::new(Tls {
                phase: Phase::Live(Box::new(Connection::Client(conn))),
                deadline: None,
                news: None,
                info: None,
                sni: None,
            })),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Puts an HTTP/2 transcoder (either role) under the driver: from now on `read` and
    /// `write` carry HTTP/1 bytes and the transcoder the wire's. `preread`: wire bytes read
    /// already (a client preface the HTTP/1 reader saw first).
    pub fn set_h2(&mut self, codec: Box<dyn Transcode>, preread: &[u8]) {
        self.h2 = Some(Box::new(Layer::new(codec, preread)));
    }

    pub fn is_h2(&self) -> bool {
        self.h2.is_some()
    }

    /// The bytes on the socket are not the driver's bytes (TLS records or HTTP/2 frames):
    /// no splicing, no handover of the bare socket, no shortcuts that read the socket.
    pub fn bridged(&self) -> bool {
        self.tls.is_some() || self.h2.is_some()
    }

    /// HTTP/2: consumes the peer's frames while the driver reads no HTTP/1 bytes (see
    /// `Layer::pump`): (anything consumed, the socket would block). Plain streams: nothing.
    pub fn pump_h2(&mut self) -> io::Result<(bool, bool)> {
        self.with_h2(|l, s| l.pump(s)).unwrap_or(Ok((false, true)))
    }

    /// A read opened the HTTP/2 flow-control window a refused write waits for: the driver
    /// writes again (no socket edge says so). Once.
    pub fn take_h2_reset(&mut self) -> bool {
        self.h2.as_mut().is_some_and(|l| l.take_reset())
    }

    pub fn take_unblocked(&mut self) -> bool {
        self.h2.as_mut().is_some_and(|l| l.take_unblocked())
    }

    /// Runs `f` with the layer taken out, so its I/O on the stream reaches the bytes below.
    fn with_h2<R>(&mut self, f: impl FnOnce(&mut Layer, &mut Stream) -> R) -> Option<R> {
        let mut l = self.h2.take()?;
        let r = f(&mut l, self);
        self.h2 = Some(l);
        Some(r)
    }

    /// The TCP socket under the stream (a listener filter peeks at it).
    pub fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    /// The addresses a PROXY protocol header gave the connection (before the chain is chosen).
    pub fn set_origin(&mut self, o: Origin) {
        self.origin = Some(Box::new(o));
    }

    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_deref()
    }

    /// The filter chain is still to be chosen from the first bytes (the ClientHello).
    pub fn choosing(&self) -> bool {
        matches!(
            self.tls.as_deref().map(|t| &t.phase),
            Some(Phase::Inspect(_) | Phase::Accept(..))
        )
    }

    /// Reads the first bytes until the filter chain is chosen: `Ok(Some(index))` then,
    /// `Ok(None)` while more bytes are needed. EOF before is an error (nothing to serve).
    pub fn choose(&mut self) -> io::Result<Option<usize>> {
        while self.choosing() {
            match self.accept_step() {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(self.chosen.unwrap_or(0)))
    }

    /// No passed-through ClientHello waits to be read (the socket holds all the stream).
    pub fn replay_done(&self) -> bool {
        self.replay.is_none()
    }

    /// Whether a read shorter than asked means the socket is empty (plain TCP). With TLS,
    /// rustls may hold more plaintext, so the driver keeps reading until `WouldBlock`.
    pub fn short_read_drains(&self) -> bool {
        !self.bridged()
    }

    /// A handshake is still under way (or has not started).
    pub fn handshaking(&self) -> bool {
        match self.tls.as_deref().map(|t| &t.phase) {
            None => false,
            Some(Phase::Live(c)) => c.is_handshaking(),
            Some(_) => true,
        }
    }

    /// When the handshake must be done by.
    pub fn deadline(&self) -> Option<Instant> {
        self.tls.as_ref().and_then(|t| t.deadline)
    }

    /// What the connection's TLS session looks like, once the handshake is done.
    pub fn info(&self) -> Option<&Rc<TlsInfo>> {
        self.tls.as_ref().and_then(|t| t.info.as_ref())
    }

    pub fn take_news(&mut self) -> Option<News> {
        self.tls.as_mut().and_then(|t| t.news.take())
    }

    /// TLS records rustls holds (or HTTP/2 frames the layer holds) that the socket did not
    /// take yet.
    pub fn pending_out(&self) -> bool {
        match &self.h2 {
            Some(l) => l.pending_out(self),
            None => self.raw_pending_out(),
        }
    }

    fn raw_pending_out(&self) -> bool {
        match self.tls.as_deref().map(|t| &t.phase) {
            Some(Phase::Live(c)) => c.wants_write(),
            _ => false,
        }
    }

    /// Writes pending TLS records (and HTTP/2 frames). Ok(true) when none are left.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self.with_h2(|l, s| l.flush(s)) {
            Some(r) => r,
            None => self.raw_flush_pending(),
        }
    }

    fn raw_flush_pending(&mut self) -> io::Result<bool> {
        match self.flush_tls() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn flush_tls(&mut self) -> io::Result<()> {
        let Some(Phase::Live(c)) = self.tls.as_deref_mut().map(|t| &mut t.phase) else {
            return Ok(());
        };
        while c.wants_write() {
            match c.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drives a client handshake: Ok(true) once it is complete.
    pub fn handshake(&mut self) -> io::Result<bool> {
        loop {
            self.raw_flush_pending()?;
            if !self.handshaking() {
                return Ok(true);
            }
            match self.read_records()? {
                Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some(_) => {}
                None => return Ok(false),
            }
        }
    }

    /// Moves TLS records from the socket into rustls and processes them. `None`: the socket
    /// would block; `Some(0)`: it is at EOF.
    fn read_records(&mut self) -> io::Result<Option<usize>> {
        let Some(t) = self.tls.as_deref_mut() else {
            return Ok(None);
        };
        let Phase::Live(c) = &mut t.phase else {
            return Ok(None);
        };
        let n = match c.read_tls(&mut self.sock) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let was_handshaking = c.is_handshaking();
        if let Err(e) = c.process_new_packets() {
            // Send the alert rustls queued, then give up on the connection.
            let _ = c.write_tls(&mut self.sock);
            let no_cert = matches!(e, rustls::Error::NoCertificatesPresented);
            if t.news.is_none() && was_handshaking {
                t.news = Some(News::Failed { no_cert });
            }
            t.phase = Phase::Failed;
            return Err(failed(&format!("TLS: {e}")));
        }
        if was_handshaking && !c.is_handshaking() {
            t.deadline = None;
            handshake_done(t);
        }
        self.raw_flush_pending()?;
        Ok(Some(n))
    }

    /// The first byte says TLS or plain; a ClientHello says which chain. Ok(true) when the
    /// phase moved on, Ok(false) when more bytes are needed.
    fn accept_step(&mut self) -> io::Result<bool> {
        let Some(t) = self.tls.as_deref_mut() else {
            return Ok(false);
        };
        match &mut t.phase {
            Phase::Inspect(l) => {
                let mut b = [0u8; 1];
                match self.sock.peek(&mut b) {
                    Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) if b[0] == 0x16 => {
                        t.phase = Phase::Accept(l.clone(), Box::default(), Vec::new());
                        Ok(true)
                    }
                    Ok(_) => {
                        match l.select(&self.sock, self.origin.as_deref(), None, "raw_buffer", &[])
                        {
                            Some((i, c)) if c.config.is_none() => {
                                self.chosen = Some(i);
                                self.tls = None;
                                Ok(true)
                            }
                            chosen => {
                                t.news = Some(if chosen.is_none() {
                                    News::NoChain
                                } else {
                                    News::Failed { no_cert: false }
                                });
                                t.phase = Phase::Failed;
                                Err(failed("plain bytes where a TLS handshake was expected"))
                            }
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Phase::Accept(l, acc, hello) => {
                // The bytes are kept: a passed-through chain sends them on as they came.
                let mut chunk = [0u8; 4096];
                let n = match self.sock.read(&mut chunk) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                };
                let got = chunk.get(..n).unwrap_or_default();
                if hello.len() + n > MAX_HELLO {
                    t.news = Some(News::Failed { no_cert: false });
                    t.phase = Phase::Failed;
                    return Err(failed("ClientHello too large"));
                }
                hello.extend_from_slice(got);
                let mut rd = got;
                while !rd.is_empty() {
                    match acc.read_tls(&mut rd) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            t.news = Some(News::Failed { no_cert: false });
                            t.phase = Phase::Failed;
                            return Err(failed(&format!("TLS: {e}")));
                        }
                    }
                }
                let accepted = match acc.accept() {
                    Ok(None) => return Ok(true),
                    Ok(Some(a)) => a,
                    Err((e, mut alert)) => {
                        let _ = alert.write_all(&mut self.sock);
                        t.news = Some(News::Failed { no_cert: false });
                        t.phase = Phase::Failed;
                        return Err(failed(&format!("TLS: {e}")));
                    }
                };
                let hello_msg = accepted.client_hello();
                let sni = hello_msg.server_name().map(str::to_string);
                let alpn: Vec<&[u8]> = hello_msg.alpn().map(Iterator::collect).unwrap_or_default();
                let Some((i, chain)) = l.select(
                    &self.sock,
                    self.origin.as_deref(),
                    sni.as_deref(),
                    "tls",
                    &alpn,
                ) else {
                    t.news = Some(News::NoChain);
                    t.phase = Phase::Failed;
                    return Err(failed("no filter chain matches"));
                };
                self.chosen = Some(i);
                let Some(cfg) = chain.config.clone() else {
                    if chain.passthrough {
                        // Plain TCP from here; the ClientHello is read again, by the proxy.
                        self.replay = Some(Box::new((std::mem::take(hello), 0)));
                        self.tls = None;
                        return Ok(true);
                    }
                    // A plain HTTP chain won for a TLS client: it could not speak HTTP to it.
                    t.news = Some(News::Failed { no_cert: false });
                    t.phase = Phase::Failed;
                    return Err(failed("a plain filter chain matched a TLS client"));
                };
                t.deadline = Some(Instant::now() + chain.m.handshake_timeout);
                match accepted.into_connection(cfg) {
                    Ok(conn) => {
                        t.sni = sni;
                        t.phase = Phase::Live(Box::new(Connection::Server(conn)));
                        Ok(true)
                    }
                    Err((e, mut alert)) => {
                        let _ = alert.write_all(&mut self.sock);
                        t.news = Some(News::Failed { no_cert: false });
                        t.phase = Phase::Failed;
                        Err(failed(&format!("TLS: {e}")))
                    }
                }
            }
            Phase::Live(_) => Ok(false),
            Phase::Failed => Err(failed("TLS connection failed")),
        }
    }

    /// Sends GOAWAY (HTTP/2), close_notify (TLS) and shuts down the write side.
    pub fn shutdown_write(&mut self) {
        self.with_h2(|l, s| l.close(s));
        if let Some(Phase::Live(c)) = self.tls.as_deref_mut().map(|t| &mut t.phase) {
            c.send_close_notify();
            let _ = self.flush_tls();
        }
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

    /// The TCP socket of a plain stream (a hot-restart handover). TLS and HTTP/2 streams
    /// never move (their session state stays in this process).
    pub fn into_tcp(self) -> TcpStream {
        self.sock
    }

    /// A plain connection about to be pooled whose readiness was not used up (a body spliced
    /// to its exact length leaves the edge unread): whether nothing waits on it. Bytes past
    /// the response, or a FIN, mean it must not be reused; its edge is gone, so no idle event
    /// would report them. TLS: bytes were read into the session already; nothing to peek.
    /// HTTP/2: what arrived is consumed (frames that carry no HTTP/1 bytes are fine) and the
    /// connection must still carry exchanges.
    pub fn quiet(&mut self) -> bool {
        if self.h2.is_some() {
            return self.usable_after_idle_event();
        }
        self.tls.is_some() || super::socket_quiet(&self.sock)
    }

    /// Writes the connection's last bytes: a FIN follows as soon as they are out (the caller
    /// shuts down or closes next). Plain TCP holds a short tail for the FIN to join it; TLS
    /// writes as usual (its close_notify comes after).
    pub fn write_before_fin(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bridged() {
            return self.write(buf);
        }
        super::send_before_fin(&self.sock, buf)
    }

    /// An idle pooled connection saw an event: whether it is still usable. Edge-triggered
    /// events also come for readiness already consumed (a response's second segment landing
    /// after the poll that reported its first, both read at once), so an event alone proves
    /// nothing. Plain: usable while nothing waits (no
    /// bytes, no FIN); TLS: when it was only a post-handshake message (a TLS 1.3 session
    /// ticket) and no plaintext or EOF. HTTP/2: PING, SETTINGS and WINDOW_UPDATE are fine;
    /// GOAWAY, EOF, errors or response bytes nobody asked for are not.
    pub fn usable_after_idle_event(&mut self) -> bool {
        if let Some(usable) = self.with_h2(|l, s| l.usable_when_idle(s)) {
            return usable;
        }
        if self.tls.is_none() {
            return super::socket_quiet(&self.sock);
        }
        let mut b = [0u8; 1];
        matches!(self.read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Records the finished handshake's facts for the stats and the access log.
fn handshake_done(t: &mut Tls) {
    let Phase::Live(c) = &t.phase else { return };
    let version = match c.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => 1,
        _ => 0,
    };
    let cipher = c
        .negotiated_cipher_suite()
        .and_then(|s| openssl_cipher_name(s.suite()))
        .and_then(|n| super::names::CIPHER_NAMES.iter().position(|x| *x == n));
    let peer = c.peer_certificates().and_then(|p| p.first());
    t.news = Some(News::Handshake {
        version,
        cipher,
        peer_cert: peer.is_some(),
    });
    let sans = peer.map(|p| x509::sans(p.as_ref())).unwrap_or_default();
    let of = |ty: SanType| {
        sans.iter()
            .filter(|(t, _)| *t == ty)
            .map(|(_, v)| v.clone())
            .collect()
    };
    t.info = Some(Rc::new(TlsInfo {
        version: super::names::VERSION_NAMES[version],
        sni: t.sni.take(),
        peer_subject: peer.and_then(|p| x509::subject(p.as_ref())),
        peer_uri_sans: of(SanType::Uri),
        peer_dns_sans: of(SanType::Dns),
    }));
}

impl Wire for Stream {
    fn raw_pending(&self) -> bool {
        self.raw_pending_out()
    }

    fn raw_flush(&mut self) -> io::Result<bool> {
        self.raw_flush_pending()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(r) = self.with_h2(|l, s| l.read(s, buf)) {
            return r;
        }
        if let Some(r) = self.replay.as_deref_mut() {
            let (bytes, at) = r;
            let rest = bytes.get(*at..).unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            *at += n;
            if *at >= bytes.len() {
                self.replay = None;
            }
            // The socket's bytes follow in the same read, so that a short read still means
            // the socket is empty.
            let more = match buf.get_mut(n..) {
                Some(room) if !room.is_empty() && self.replay.is_none() => {
                    match self.sock.read(room) {
                        Ok(m) => m,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(e) if n == 0 => return Err(e),
                        Err(_) => 0,
                    }
                }
                _ => 0,
            };
            return Ok(n + more);
        }
        loop {
            let Some(t) = self.tls.as_deref_mut() else {
                return self.sock.read(buf);
            };
            if let Phase::Live(c) = &mut t.phase {
                match c.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    // A peer that closes without close_notify: EOF, as most HTTP servers take it.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                match self.read_records()? {
                    None => return Err(io::ErrorKind::WouldBlock.into()),
                    Some(_) => continue, // EOF shows up as the reader's UnexpectedEof
                }
            }
            match self.accept_step() {
                Ok(true) => {}
                Ok(false) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(r) = self.with_h2(|l, s| l.write(s, buf)) {
            return r;
        }
        let Some(t) = self.tls.as_deref_mut() else {
            return self.sock.write(buf);
        };
        if !matches!(t.phase, Phase::Live(_)) {
            return Err(failed("write before the TLS handshake"));
        }
        // Records from earlier writes go first: rustls' buffer stays bounded by the socket.
        self.flush_tls()?;
        let Some(Phase::Live(c)) = self.tls.as_deref_mut().map(|t| &mut t.phase) else {
            return Err(failed("TLS connection failed"));
        };
        let n = c.writer().write(buf)?;
        match self.flush_tls() {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(r) = self.with_h2(|l, s| l.flush(s)) {
            return r.map(|_| ());
        }
        self.flush_tls()
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

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("sock", &self.sock)
            .field("tls", &self.tls.is_some())
            .field("h2", &self.h2.is_some())
            .finish()
    }
}
