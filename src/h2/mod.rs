//! HTTP/2 as a transcoding layer under the exchange core (docs/architecture.md): the core
//! keeps reading and writing HTTP/1.1 bytes; a connection that speaks HTTP/2 carries a
//! transcoder (`Transcode`) that turns them into frames and the peer's frames back into
//! HTTP/1.1, one stream at a time. `layer` puts a transcoder between a `tls::Stream` and its
//! TCP or TLS bytes; `client` is the upstream (client) role, `server` the downstream one.

pub mod client;
pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod layer;
pub mod server;

use std::io;

/// What an HTTP/2 transcoder's failed read means for the exchange, carried as the payload of
/// the `io::Error` (`fault_of`): Envoy tells a stream the server reset (`UR`) and a malformed
/// response (`UPE`, 502) from a connection that just ended (`UC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The server reset our stream (RST_STREAM).
    RemoteReset,
    /// The response broke HTTP/2's rules for a message: we reset the stream.
    Protocol,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::RemoteReset => "HTTP/2 stream reset by the peer",
            Fault::Protocol => "HTTP/2 protocol error on the stream",
        })
    }
}

impl std::error::Error for Fault {}

impl Fault {
    pub fn error(self) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, self)
    }
}

/// The HPACK block of a trailer section the core passed on (`ChunkedDecoder::trailers`):
/// its fields but those HTTP/2 forbids (connection-specific ones, RFC 9113 §8.2.2; names
/// go lower case). Both roles end a message with it (HEADERS with END_STREAM).
pub(crate) fn trailer_block(enc: &mut hpack::Encoder, trailers: &[u8]) -> Vec<u8> {
    let forbidden = |n: &[u8]| {
        [
            &b"connection"[..],
            b"keep-alive",
            b"proxy-connection",
            b"transfer-encoding",
            b"upgrade",
            b"te",
            b"host",
            b"content-length",
        ]
        .iter()
        .any(|f| n.eq_ignore_ascii_case(f))
    };
    let mut fields = crate::http::codec::trailer_fields(trailers).filter(|(n, _)| !forbidden(n));
    let mut block = Vec::new();
    enc.encode(&mut fields, &mut block);
    block
}

/// The `Fault` an I/O error carries, if it came from a transcoder.
pub fn fault_of(e: &io::Error) -> Option<Fault> {
    e.get_ref()?.downcast_ref::<Fault>().copied()
}

/// One HTTP/2 connection's transcoder, either role. Sans-IO: it sees byte slices only; the
/// layer moves them to and from the socket. Wire bytes it has to send (its preface, SETTINGS
/// acks, PING answers, WINDOW_UPDATEs, frames of the core's message) are appended to `out`.
pub trait Transcode {
    /// The connection's first wire bytes (a client's preface and SETTINGS, a server's
    /// SETTINGS), appended once, before anything else.
    fn start(&mut self, out: &mut Vec<u8>);

    /// Takes peer (wire) bytes from the front of `wire`; returns how many it consumed. It
    /// takes none while it holds HTTP/1 bytes the core has not read (so TCP backpressure
    /// reaches the peer), nor a frame not yet whole. An error is a connection error: the
    /// transcoder has queued its GOAWAY in `out` and the connection is done.
    fn feed(&mut self, wire: &[u8], out: &mut Vec<u8>) -> io::Result<usize>;

    /// The peer closed its side (TCP EOF or TLS close).
    fn peer_eof(&mut self);

    /// Moves HTTP/1 bytes for the core into `buf`: `Ok(Some(n))` with `n > 0` bytes,
    /// `Ok(Some(0))` at the end of the HTTP/1 byte stream (the core sees EOF), `Ok(None)` when
    /// nothing is ready (more wire bytes are needed). An error ends the core's side as a
    /// socket error would (a reset).
    fn read_h1(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> io::Result<Option<usize>>;

    /// Takes HTTP/1 bytes of the core's message from the front of `h1`; `Ok(0)`: it can take
    /// none now (the peer's flow-control window is closed; `write_blocked` says so until a
    /// WINDOW_UPDATE opens it).
    fn write_h1(&mut self, h1: &[u8], out: &mut Vec<u8>) -> io::Result<usize>;

    /// A write was refused for want of flow-control window and the window is still closed.
    fn write_blocked(&self) -> bool;

    /// Whether the connection can carry another exchange: no GOAWAY, no error, no EOF, stream
    /// ids left (a pooled upstream connection is closed otherwise).
    fn reusable(&self) -> bool;

    /// The connection is about to close on our side: queues a GOAWAY (once).
    fn close(&mut self, out: &mut Vec<u8>);

    /// The client reset its running stream (server role), once: the driver ends that
    /// exchange (`Conn::stream_reset`) before the core reads the next stream's bytes.
    fn take_reset(&mut self) -> bool {
        false
    }
}
