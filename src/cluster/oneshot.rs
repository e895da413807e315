//! One HTTP/1.1 request on a connection of the proxy's own, its answer read whole (any
//! framing) and discarded but for the status (and, when asked, a bounded body): a tracing report
//! (`tracing::collector`) or a shadow request (`http::mirror`); or kept whole, for an ext_authz
//! check (`pump_with`), or a gRPC call that answers as it reads (`pump_duplex`). The owner registers the socket, arms the timeout and
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
        io(link, |got, eof, _| {
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
        mut answer: impl FnMut(&[u8], bool) -> Option<Result<T, ()>>,
    ) -> Option<Result<T, ()>> {
        self.pump_duplex(|got, eof, _| answer(got, eof))
    }

    /// As `pump_with`, for a protocol that answers as it reads (HTTP/2's acknowledgements and
    /// flow control): `answer` may append bytes to send to its third argument, and they go
    /// out before the next read.
    pub(crate) fn pump_duplex<T>(
        &mut self,
        answer: impl FnMut(&[u8], bool, &mut Vec<u8>) -> Option<Result<T, ()>>,
    ) -> Option<Result<T, ()>> {
        io((&mut self.sock, &mut self.connected, &mut self.tx), answer)
    }
}

/// Writes `tx` until it is empty or the socket is full; `Err` when the socket failed.
fn flush(sock: &mut TcpStream, tx: &mut Vec<u8>) -> Result<(), ()> {
    while !tx.is_empty() {
        match sock.write(tx) {
            Ok(0) => return Err(()),
            Ok(n) => {
                tx.drain(..n.min(tx.len()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    Ok(())
}

/// Connects, writes `tx`, and reads into `answer` until it has what it needs; what `answer`
/// adds to `tx` is written as it comes. Reading does not wait for the whole request to be
/// written: a peer may answer early.
fn io<T>(
    (sock, connected, tx): (&mut TcpStream, &mut bool, &mut Vec<u8>),
    mut answer: impl FnMut(&[u8], bool, &mut Vec<u8>) -> Option<Result<T, ()>>,
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
    if flush(sock, tx).is_err() {
        return Some(Err(()));
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
        if let Some(done) = answer(got, eof, tx) {
            return Some(done);
        }
        if eof || flush(sock, tx).is_err() {
            return Some(Err(()));
        }
    }
}
