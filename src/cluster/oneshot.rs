//! One HTTP/1.1 request on a connection of the proxy's own, its answer read whole (any
//! framing) and discarded but for the status (and, when asked, a bounded body): a tracing report (`tracing::collector`) or a
//! shadow request (`http::mirror`). The owner registers the socket, arms the timeout and
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
        if !self.connected {
            match self.sock.take_error() {
                Ok(Some(_)) | Err(_) => return Some(Err(())),
                Ok(None) => {}
            }
            match self.sock.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(_) => return Some(Err(())),
            }
        }
        while !self.tx.is_empty() {
            match self.sock.write(&self.tx) {
                Ok(0) => return Some(Err(())),
                Ok(n) => {
                    self.tx.drain(..n.min(self.tx.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Err(())),
            }
        }
        let mut b = [0u8; 16 * 1024];
        loop {
            let eof = match self.sock.read(&mut b) {
                Ok(0) => true,
                Ok(n) => {
                    let got = b.get(..n).unwrap_or_default();
                    self.reply.rx.extend_from_slice(got);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Some(Err(())),
            };
            match http_answer(&mut self.reply, eof) {
                Some(Ok((status, _, _))) => return Some(Ok(status)),
                Some(Err(())) => return Some(Err(())),
                None if eof || self.reply.rx.len() > MAX_ANSWER => return Some(Err(())),
                None => {}
            }
        }
    }
}
