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

/// A listener's filter chains with their rustls configurations, built once at start-up.
#[derive(Debug)]
pub struct ListenerTls {
    chains: Vec<Chain>,
    inspect_timeout: Duration,
}

#[derive(Debug)]
struct Chain {
    m: FilterChainTls,
    config: Option<Arc<rustls::ServerConfig>>,
}

impl ListenerTls {
    /// `None` when no chain has TLS: the listener serves plain TCP without inspecting.
    pub fn new(
        chains: &[FilterChainTls],
        inspect_timeout: Duration,
    ) -> Result<Option<Rc<ListenerTls>>, String> {
        if chains.iter().all(|c| c.tls.is_none()) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(chains.len());
        for c in chains {
            let config = match &c.tls {
                Some(t) => Some(super::server_config(t)?),
                None => None,
            };
            out.push(Chain {
                m: c.clone(),
                config,
            });
        }
        Ok(Some(Rc::new(ListenerTls {
            chains: out,
            inspect_timeout,
        })))
    }

    /// Envoy's filter chain choice: the server name first (exact, then the longest `*.`
    /// wildcard, then chains without names), then, among those, the transport protocol
    /// (exact, then chains without one). No fallback to a less specific name group.
    fn select(&self, sni: Option<&str>, transport: &str) -> Option<&Chain> {
        let by_name = |name: &str| -> Vec<&Chain> {
            self.chains
                .iter()
                .filter(|c| c.m.server_names.iter().any(|n| n == name))
                .collect()
        };
        let mut group: Vec<&Chain> = Vec::new();
        if let Some(sni) = sni.map(str::to_ascii_lowercase) {
            group = by_name(&sni);
            let mut rest = sni.as_str();
            while group.is_empty() {
                let Some((_, tail)) = rest.split_once('.') else {
                    break;
                };
                group = by_name(&format!("*.{tail}"));
                rest = tail;
            }
        }
        if group.is_empty() {
            group = self
                .chains
                .iter()
                .filter(|c| c.m.server_names.is_empty())
                .collect();
        }
        let exact = group
            .iter()
            .find(|c| c.m.transport_protocol.as_deref() == Some(transport));
        exact
            .or_else(|| group.iter().find(|c| c.m.transport_protocol.is_none()))
            .copied()
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
    /// Reading the ClientHello to choose a filter chain.
    Accept(Rc<ListenerTls>, Box<Acceptor>),
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
}

fn failed(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Stream {
    pub fn plain(sock: TcpStream) -> Stream {
        Stream { sock, tls: None }
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
        Stream { sock, tls }
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

    /// Whether a read shorter than asked means the socket is empty (plain TCP). With TLS,
    /// rustls may hold more plaintext, so the driver keeps reading until `WouldBlock`.
    pub fn short_read_drains(&self) -> bool {
        self.tls.is_none()
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

    /// TLS records rustls holds that the socket did not take yet.
    pub fn pending_out(&self) -> bool {
        match self.tls.as_deref().map(|t| &t.phase) {
            Some(Phase::Live(c)) => c.wants_write(),
            _ => false,
        }
    }

    /// Writes pending TLS records. Ok(true) when none are left.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
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
            self.flush_pending()?;
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
        self.flush_pending()?;
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
                        t.phase = Phase::Accept(l.clone(), Box::default());
                        Ok(true)
                    }
                    Ok(_) => match l.select(None, "raw_buffer") {
                        Some(c) if c.config.is_none() => {
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
                    },
                    Err(e) => Err(e),
                }
            }
            Phase::Accept(l, acc) => {
                match acc.read_tls(&mut self.sock) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
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
                let sni = accepted.client_hello().server_name().map(str::to_string);
                let Some(chain) = l.select(sni.as_deref(), "tls") else {
                    t.news = Some(News::NoChain);
                    t.phase = Phase::Failed;
                    return Err(failed("no filter chain matches"));
                };
                let Some(cfg) = chain.config.clone() else {
                    // A plain chain won for a TLS client: it could not speak HTTP to it.
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

    /// Sends close_notify (TLS) and shuts down the write side.
    pub fn shutdown_write(&mut self) {
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

    /// The TCP socket of a plain stream (a hot-restart handover). TLS streams never move.
    pub fn into_tcp(self) -> TcpStream {
        self.sock
    }

    /// A plain connection about to be pooled whose readiness was not used up (a body spliced
    /// to its exact length leaves the edge unread): whether nothing waits on it. Bytes past
    /// the response, or a FIN, mean it must not be reused; its edge is gone, so no idle event
    /// would report them. TLS: bytes were read into the session already; nothing to peek.
    pub fn quiet(&self) -> bool {
        self.tls.is_some() || super::socket_quiet(&self.sock)
    }

    /// Writes the connection's last bytes: a FIN follows as soon as they are out (the caller
    /// shuts down or closes next). Plain TCP holds a short tail for the FIN to join it; TLS
    /// writes as usual (its close_notify comes after).
    pub fn write_before_fin(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_some() {
            return self.write(buf);
        }
        super::send_before_fin(&self.sock, buf)
    }

    /// An idle pooled connection saw an event: whether it is still usable. Edge-triggered
    /// events also come for readiness already consumed (a response's second segment landing
    /// after the poll that reported its first, both read at once), so an event alone proves
    /// nothing. Plain: usable while nothing waits (no
    /// bytes, no FIN); TLS: when it was only a post-handshake message (a TLS 1.3 session
    /// ticket) and no plaintext or EOF.
    pub fn usable_after_idle_event(&mut self) -> bool {
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

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(names: &[&str], proto: Option<&str>) -> Chain {
        Chain {
            m: FilterChainTls {
                server_names: names.iter().map(|n| n.to_string()).collect(),
                transport_protocol: proto.map(String::from),
                tls: None,
                handshake_timeout: Duration::from_secs(1),
            },
            config: None,
        }
    }

    /// Which chain (by index) `select` picks.
    fn pick(l: &ListenerTls, sni: Option<&str>, proto: &str) -> Option<usize> {
        let c = l.select(sni, proto)?;
        l.chains.iter().position(|x| std::ptr::eq(x, c))
    }

    #[test]
    fn chains_are_chosen_as_envoy_does() {
        let l = ListenerTls {
            chains: vec![
                chain(&["a.test"], None),
                chain(&["*.b.test"], None),
                chain(&["*.x.b.test"], Some("tls")),
                chain(&[], Some("raw_buffer")),
                chain(&[], Some("tls")),
            ],
            inspect_timeout: Duration::from_secs(1),
        };
        assert_eq!(pick(&l, Some("a.test"), "tls"), Some(0));
        assert_eq!(
            pick(&l, Some("A.Test"), "tls"),
            Some(0),
            "names are case-insensitive"
        );
        assert_eq!(pick(&l, Some("y.b.test"), "tls"), Some(1));
        assert_eq!(
            pick(&l, Some("z.y.b.test"), "tls"),
            Some(1),
            "a wildcard spans labels"
        );
        assert_eq!(
            pick(&l, Some("y.x.b.test"), "tls"),
            Some(2),
            "the longest wildcard wins"
        );
        // The longest wildcard's group has no chain for raw_buffer: no fallback to a shorter one.
        assert_eq!(pick(&l, Some("y.x.b.test"), "raw_buffer"), None);
        assert_eq!(
            pick(&l, Some("b.test"), "tls"),
            Some(4),
            "a wildcard never matches its apex"
        );
        assert_eq!(pick(&l, None, "tls"), Some(4));
        assert_eq!(pick(&l, None, "raw_buffer"), Some(3));
        assert_eq!(pick(&l, Some("other.test"), "raw_buffer"), Some(3));
    }
}
