//! One HTTP/1.1 request on a connection of the proxy's own, its answer read whole (any
//! framing) and discarded but for the status (and, when asked, a bounded body): a tracing report
//! (`tracing::collector`) or a shadow request (`http::mirror`); or kept whole, for an ext_authz
//! check (`pump_with`). The owner registers the socket, arms the timeout and
//! closes it; this only moves bytes.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::checker::{http_answer, Reply};

/// Most bytes of an answer kept unparsed (its head; a body is dropped as it is read).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct OneShot {
    pub(crate) sock: TcpStream,
    connected: bool,
    /// The request still to write.
    tx: Vec<u8>,
    reply: Reply,
}

impl OneShot {
    /// `request` goes out once `sock` (connecting) is connected; `head`: it is a HEAD, whose
    /// answer has no body.
    pub(crate) fn new(sock: TcpStream, request: Vec<u8>, head: bool) -> OneShot {
        OneShot {
            sock,
            connected: false,
            tx: request,
            reply: Reply::for_request(head),
        }
    }

    /// Keeps the answer's body (bounded) for `body`.
    pub(crate) fn keep_body(mut self) -> OneShot {
        self.reply.body = Some(Vec::new());
        self
    }

    /// The answer's body, when kept (`keep_body`): what arrived of it, at most 64 KiB.
    pub(crate) fn body(&self) -> &[u8] {
        self.reply.body.as_deref().unwrap_or_default()
    }

    /// The connect completed (a failure before then is a connect failure).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Moves the bytes as far as the socket allows: `Some(Ok(status))` once answered,
    /// `Some(Err(()))` on failure, `None` to wait for readiness.
    pub(crate) fn pump(&mut self) -> Option<Result<u16, ()>> {
        let reply = &mut self.reply;
        let link = (&mut self.sock, &mut self.connected, &mut self.tx);
        io(link, |got, eof| {
            reply.rx.extend_from_slice(got);
            match http_answer(reply, eof) {
                Some(Ok((status, _, _))) => Some(Ok(status)),
                Some(Err(())) => Some(Err(())),
                None if eof || reply.rx.len() > MAX_ANSWER => Some(Err(())),
                None => None,
            }
        })
    }

    /// As `pump`, with the answer read by `answer` (each read's bytes, and whether the peer
    /// closed; `Some` once it is whole or broken).
    pub(crate) fn pump_with<T>(
        &mut self,
        answer: impl FnMut(&[u8], bool) -> Option<Result<T, ()>>,
    ) -> Option<Result<T, ()>> {
        io((&mut self.sock, &mut self.connected, &mut self.tx), answer)
    }
}

/// Connects, writes `tx`, then reads into `answer` until it has what it needs.
fn io<T>(
    (sock, connected, tx): (&mut TcpStream, &mut bool, &mut Vec<u8>),
    mut answer: impl FnMut(&[u8], bool) -> Option<Result<T, ()>>,
) -> Option<Result<T, ()>> {
    if !*connected {
        match sock.take_error() {
            Ok(Some(_)) | Err(_) => return Some(Err(())),
            Ok(None) => {}
        }
        match sock.peer_addr() {
            Ok(_) => *connected = true,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
            Err(_) => return Some(Err(())),
        }
    }
    while !tx.is_empty() {
        match sock.write(tx) {
            Ok(0) => return Some(Err(())),
            Ok(n) => {
                tx.drain(..n.min(tx.len()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Err(())),
        }
    }
    let mut b = [0u8; 16 * 1024];
    loop {
        let (got, eof) = match sock.read(&mut b) {
            Ok(0) => (&[][..], true),
            Ok(n) => (b.get(..n).unwrap_or_default(), false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Some(Err(())),
        };
        if let Some(done) = answer(got, eof) {
            return Some(done);
        }
        if eof {
            return Some(Err(()));
        }
    }
}
