//! The byte-stream layer that puts an HTTP/2 transcoder (either role) between a connection's
//! driver and its TCP or TLS bytes: the driver keeps calling `read` and `write` with HTTP/1
//! bytes; the layer moves wire bytes between the stream below (`Wire`) and the transcoder.
//!
//! Non-blocking, like the stream below: `read` feeds the transcoder what the socket has until
//! it produces HTTP/1 bytes or the socket would block (frames that produce none, SETTINGS,
//! PING, WINDOW_UPDATE, are consumed on the way, and their answers written); `write` hands
//! HTTP/1 bytes to the transcoder and pushes the frames out. Wire bytes the socket did not
//! take wait in `out` (`pending_out`, `flush`), at most about `OUT_HIGH` of them: past that a
//! write takes nothing until they are out, so the socket's backpressure reaches the driver.

use std::io::{self, Read, Write};

use super::Transcode;

/// Wire bytes read from the socket at a time (a whole default-size frame and more).
const READ_CHUNK: usize = 32 * 1024;
/// Most wire bytes held for a socket that would block before a write takes no more.
const OUT_HIGH: usize = 64 * 1024;
/// Most wire bytes held unconsumed: a transcoder consumes every whole frame it is given while
/// it has no HTTP/1 bytes waiting, and a frame is at most 16 KiB + 9 (we never raise
/// SETTINGS_MAX_FRAME_SIZE), so more than this means it stopped taking them.
const MAX_IN: usize = READ_CHUNK + 16 * 1024 + 9;

/// The stream under the layer: plain TCP or TLS (its own pending records flushed first).
pub trait Wire: Read + Write {
    /// Bytes below the layer (TLS records) still to go out.
    fn raw_pending(&self) -> bool;
    /// Writes them: Ok(true) when none are left.
    fn raw_flush(&mut self) -> io::Result<bool>;
}

pub struct Layer {
    codec: Box<dyn Transcode>,
    /// Wire bytes read and not consumed yet (the start of a frame).
    inbuf: Vec<u8>,
    /// Wire bytes to write; `out_at` of them are written.
    out: Vec<u8>,
    out_at: usize,
    /// The stream below reached EOF.
    eof: bool,
    /// A write was refused for want of flow-control window.
    was_blocked: bool,
    /// A read opened the window a refused write waits for (the driver retries the write: no
    /// socket edge would say so).
    unblocked: bool,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("inbuf", &self.inbuf.len())
            .field("out", &(self.out.len() - self.out_at))
            .field("eof", &self.eof)
            .finish()
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Layer {
    /// A layer over a connection whose first wire bytes (`preread`) were read already (a
    /// preface the HTTP/1 reader saw); a client transcoder's preface is in its first `out`.
    pub fn new(mut codec: Box<dyn Transcode>, preread: &[u8]) -> Layer {
        let mut out = Vec::new();
        codec.start(&mut out);
        Layer {
            codec,
            inbuf: preread.to_vec(),
            out,
            out_at: 0,
            eof: false,
            was_blocked: false,
            unblocked: false,
        }
    }

    /// HTTP/1 bytes for the driver: `Ok(0)` is the end of them; `WouldBlock` when the socket
    /// has nothing more now.
    pub fn read<W: Wire + ?Sized>(&mut self, io: &mut W, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let got = self.codec.read_h1(buf, &mut self.out);
            self.note_window();
            match got {
                Ok(Some(n)) => {
                    self.flush_quietly(io);
                    return Ok(n);
                }
                Ok(None) => {}
                Err(e) => {
                    self.flush_quietly(io);
                    return Err(e);
                }
            }
            match self.feed_once() {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => {
                    self.flush_quietly(io);
                    return Err(e);
                }
            }
            if self.eof {
                self.stranded()?;
                self.codec.peer_eof();
                return match self.codec.read_h1(buf, &mut self.out)? {
                    Some(n) => Ok(n),
                    None => Ok(0),
                };
            }
            // Answers to what was consumed (SETTINGS ack, PING, WINDOW_UPDATE) go out before
            // waiting for more.
            self.flush(io)?;
            if self.inbuf.len() >= MAX_IN {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "HTTP/2: wire bytes not consumed",
                ));
            }
            let start = self.inbuf.len();
            self.inbuf.resize(start + READ_CHUNK, 0);
            let r = io.read(self.inbuf.get_mut(start..).unwrap_or_default());
            let n = match &r {
                Ok(n) => *n,
                Err(_) => 0,
            };
            self.inbuf.truncate(start + n);
            match r {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the transcoder the wire bytes read so far; returns how many it consumed.
    fn feed_once(&mut self) -> io::Result<usize> {
        if self.inbuf.is_empty() {
            return Ok(0);
        }
        let fed = self.codec.feed(&self.inbuf, &mut self.out);
        self.note_window();
        let n = fed?;
        self.inbuf.drain(..n.min(self.inbuf.len()));
        Ok(n)
    }

    /// Reads and consumes what the peer sent while the driver takes no HTTP/1 bytes (a server
    /// sending its response reads no more of the request): WINDOW_UPDATE, PING, SETTINGS and
    /// RST_STREAM must still be seen, or a response larger than the window would wait for
    /// ever. HTTP/1 bytes stay in the transcoder for the next `read`; once it takes no more,
    /// neither does this (TCP backpressure). Returns (anything consumed, the socket would
    /// block); an error is the transcoder's connection error or the socket's.
    pub fn pump<W: Wire + ?Sized>(&mut self, io: &mut W) -> io::Result<(bool, bool)> {
        let mut any = false;
        loop {
            match self.feed_once() {
                Ok(0) => {}
                Ok(_) => {
                    any = true;
                    continue;
                }
                Err(e) => {
                    self.flush_quietly(io);
                    return Err(e);
                }
            }
            if self.eof || self.inbuf.len() >= MAX_IN {
                self.flush_quietly(io);
                return Ok((any, false));
            }
            let start = self.inbuf.len();
            self.inbuf.resize(start + READ_CHUNK, 0);
            let r = io.read(self.inbuf.get_mut(start..).unwrap_or_default());
            let n = *r.as_ref().unwrap_or(&0);
            self.inbuf.truncate(start + n);
            match r {
                Ok(0) => {
                    // The driver's next read reports the end.
                    self.eof = true;
                    self.stranded()?;
                    return Ok((true, false));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush_quietly(io);
                    // Drained only when nothing waits for the driver's next read either
                    // (a read into an empty buffer asks without taking anything).
                    let waiting = !matches!(self.codec.read_h1(&mut [], &mut self.out), Ok(None));
                    return Ok((any, !waiting));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes HTTP/1 bytes of the driver's message; `WouldBlock` when the socket or the peer's
    /// flow-control window takes no more now.
    pub fn write<W: Wire + ?Sized>(&mut self, io: &mut W, buf: &[u8]) -> io::Result<usize> {
        self.flush(io)?;
        if self.out.len() - self.out_at >= OUT_HIGH {
            return Err(would_block());
        }
        let n = self.codec.write_h1(buf, &mut self.out)?;
        self.flush(io)?;
        if n == 0 {
            self.was_blocked = self.codec.write_blocked();
            self.stranded()?;
            return Err(would_block());
        }
        Ok(n)
    }

    /// The peer closed its side while our write waits for flow-control window: no
    /// WINDOW_UPDATE can come any more, so the message can never finish. An error, as a reset
    /// would be: without it the connection would wait, its descriptor held, until a timeout
    /// (no socket edge follows the EOF; Envoy closes a connection on the peer's close).
    fn stranded(&self) -> io::Result<()> {
        if self.eof && self.was_blocked && self.codec.write_blocked() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "HTTP/2 peer closed with our flow-control window shut",
            ));
        }
        Ok(())
    }

    /// Wire bytes (or TLS records below) still to go out.
    pub fn pending_out<W: Wire + ?Sized>(&self, io: &W) -> bool {
        self.out_at < self.out.len() || io.raw_pending()
    }

    /// Writes what waits: Ok(true) when nothing is left.
    pub fn flush<W: Wire + ?Sized>(&mut self, io: &mut W) -> io::Result<bool> {
        if !io.raw_flush()? {
            return Ok(false);
        }
        while let Some(rest) = self.out.get(self.out_at..).filter(|r| !r.is_empty()) {
            match io.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_at = 0;
        io.raw_flush()
    }

    /// A flush whose failure the next read or write reports.
    fn flush_quietly<W: Wire + ?Sized>(&mut self, io: &mut W) {
        let _ = self.flush(io);
    }

    fn note_window(&mut self) {
        if self.was_blocked && !self.codec.write_blocked() {
            self.was_blocked = false;
            self.unblocked = true;
        }
    }

    /// Whether a read opened the flow-control window a refused write waits for (once).
    pub fn take_unblocked(&mut self) -> bool {
        std::mem::take(&mut self.unblocked)
    }

    /// An idle (pooled) connection: consumes what arrived (PING, SETTINGS, WINDOW_UPDATE
    /// are fine) and says whether it can still carry an exchange (no GOAWAY, EOF, error, nor
    /// HTTP/1 bytes nobody asked for).
    pub fn usable_when_idle<W: Wire + ?Sized>(&mut self, io: &mut W) -> bool {
        let mut b = [0u8; 1];
        match self.read(io, &mut b) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.codec.reusable(),
            _ => false,
        }
    }

    /// Whether the connection can carry another exchange (see `Transcode::reusable`).
    pub fn reusable(&self) -> bool {
        !self.eof && self.codec.reusable()
    }

    /// Our side closes: the transcoder's GOAWAY goes out if the socket takes it.
    pub fn close<W: Wire + ?Sized>(&mut self, io: &mut W) {
        self.codec.close(&mut self.out);
        self.flush_quietly(io);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transcoder that upper-cases: wire bytes become HTTP/1 bytes, one at a time, and a
    /// `W` window: `window` HTTP/1 bytes may be written until a `+` arrives on the wire.
    struct Upper {
        h1: Vec<u8>,
        eof: bool,
        window: usize,
    }

    impl Transcode for Upper {
        fn start(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"<hi>");
        }
        fn feed(&mut self, wire: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
            if !self.h1.is_empty() {
                return Ok(0);
            }
            let Some(&b) = wire.first() else {
                return Ok(0);
            };
            match b {
                b'+' => self.window += 4,
                b'?' => out.extend_from_slice(b"!"),
                b'x' => return Err(io::ErrorKind::InvalidData.into()),
                _ => self.h1.push(b.to_ascii_uppercase()),
            }
            Ok(1)
        }
        fn peer_eof(&mut self) {
            self.eof = true;
        }
        fn read_h1(&mut self, buf: &mut [u8], _out: &mut Vec<u8>) -> io::Result<Option<usize>> {
            let n = self.h1.len().min(buf.len());
            if n > 0 {
                buf[..n].copy_from_slice(&self.h1[..n]);
                self.h1.drain(..n);
                return Ok(Some(n));
            }
            Ok(self.eof.then_some(0))
        }
        fn write_h1(&mut self, h1: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
            let n = h1.len().min(self.window);
            self.window -= n;
            out.extend_from_slice(&h1[..n]);
            Ok(n)
        }
        fn write_blocked(&self) -> bool {
            self.window == 0
        }
        fn reusable(&self) -> bool {
            !self.eof
        }
        fn close(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"<bye>");
        }
    }

    /// A socket: `input` to read (then WouldBlock, or EOF once `closed`), `taken` bytes of
    /// writes accepted before it would block.
    #[derive(Default)]
    struct Sock {
        input: Vec<u8>,
        closed: bool,
        written: Vec<u8>,
        room: usize,
    }

    impl Read for Sock {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return if self.closed {
                    Ok(0)
                } else {
                    Err(would_block())
                };
            }
            let n = self.input.len().min(buf.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl Write for Sock {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Err(would_block());
            }
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Wire for Sock {
        fn raw_pending(&self) -> bool {
            false
        }
        fn raw_flush(&mut self) -> io::Result<bool> {
            Ok(true)
        }
    }

    fn layer(window: usize) -> Layer {
        let up = Upper {
            h1: Vec::new(),
            eof: false,
            window,
        };
        Layer::new(Box::new(up), b"")
    }

    #[test]
    fn control_bytes_are_consumed_and_answered_without_output() {
        let mut l = layer(0);
        let mut s = Sock {
            input: b"??ab".to_vec(),
            room: 100,
            ..Sock::default()
        };
        let mut buf = [0u8; 8];
        assert_eq!(l.read(&mut s, &mut buf).ok(), Some(1));
        assert_eq!(&buf[..1], b"A");
        assert_eq!(s.written, b"<hi>!!");
        assert_eq!(l.read(&mut s, &mut buf).ok(), Some(1));
        let e = l.read(&mut s, &mut buf).err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::WouldBlock));
        s.closed = true;
        assert_eq!(l.read(&mut s, &mut buf).ok(), Some(0));
        assert!(!l.reusable());
    }

    #[test]
    fn a_closed_window_blocks_writes_until_a_read_opens_it() {
        let mut l = layer(2);
        let mut s = Sock {
            room: 100,
            ..Sock::default()
        };
        assert_eq!(l.write(&mut s, b"hello").ok(), Some(2));
        let e = l.write(&mut s, b"llo").err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::WouldBlock));
        assert!(!l.take_unblocked());
        s.input = b"+".to_vec();
        let mut buf = [0u8; 4];
        let e = l.read(&mut s, &mut buf).err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::WouldBlock));
        assert!(l.take_unblocked());
        assert!(!l.take_unblocked());
        assert_eq!(l.write(&mut s, b"llo").ok(), Some(3));
        assert_eq!(s.written, b"<hi>hello");
    }

    #[test]
    fn a_peer_that_closes_while_our_window_is_shut_is_an_error() {
        // The EOF comes while the driver reads nothing (pump).
        let mut l = layer(2);
        let mut s = Sock {
            room: 100,
            ..Sock::default()
        };
        assert_eq!(l.write(&mut s, b"hello").ok(), Some(2));
        assert!(l.write(&mut s, b"llo").is_err());
        s.closed = true;
        let e = l.pump(&mut s).err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::ConnectionReset));
        // The EOF came first; the window shuts later.
        let mut l = layer(2);
        let mut s = Sock {
            room: 100,
            closed: true,
            ..Sock::default()
        };
        assert_eq!(l.pump(&mut s).ok(), Some((true, false)));
        assert_eq!(l.write(&mut s, b"hello").ok(), Some(2));
        let e = l.write(&mut s, b"llo").err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::ConnectionReset));
        // An open window: the EOF is the driver's to read, the write goes on.
        let mut l = layer(8);
        assert_eq!(l.pump(&mut s).ok(), Some((true, false)));
        assert_eq!(l.write(&mut s, b"hello").ok(), Some(5));
    }

    #[test]
    fn a_full_socket_keeps_bytes_pending_and_bounds_them() {
        let mut l = layer(usize::MAX);
        let mut s = Sock::default();
        let big = vec![b'z'; OUT_HIGH];
        assert_eq!(l.write(&mut s, &big).ok(), Some(OUT_HIGH));
        assert!(l.pending_out(&s));
        let e = l.write(&mut s, b"more").err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::WouldBlock));
        s.room = usize::MAX;
        assert_eq!(l.flush(&mut s).ok(), Some(true));
        assert!(!l.pending_out(&s));
        assert_eq!(s.written.len(), OUT_HIGH + 4);
    }

    #[test]
    fn idle_checks_and_errors() {
        let mut l = layer(0);
        let mut s = Sock {
            input: b"?".to_vec(),
            room: 100,
            ..Sock::default()
        };
        assert!(l.usable_when_idle(&mut s));
        s.input = b"a".to_vec();
        assert!(!l.usable_when_idle(&mut s), "HTTP/1 bytes nobody asked for");
        let mut l = layer(0);
        s.input = b"x".to_vec();
        let mut buf = [0u8; 4];
        assert!(l.read(&mut s, &mut buf).is_err());
        l.close(&mut s);
        assert!(s.written.ends_with(b"<bye>"));
    }
}
