//! A minimal RFC 6455 WebSocket endpoint for the tunnel benchmarks and tests: the opening
//! handshake on both sides and whole-frame reading and writing (no fragmentation, no
//! extensions). Strict where it matters to a proxy test: a wrong `Sec-WebSocket-Accept`, an
//! unmasked client frame or a masked server frame is an error, never ignored.

use std::io::{self, Read, Write};

use crate::wire::{Head, Reader};

/// The GUID RFC 6455 § 1.3 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Frames larger than this are refused (the tools send small messages).
pub const MAX_PAYLOAD: u64 = 16 << 20;

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64(&h.digest().bytes())
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A cheap per-process pseudo-random source for keys and masks (not security: a test tool).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

/// Client side of the opening handshake: writes the upgrade request, reads the response head
/// and checks it is a 101 with the right accept value.
pub fn client_handshake<S: Read + Write>(
    r: &mut Reader<S>,
    host: &str,
    path: &str,
    rng: &mut Rng,
) -> io::Result<()> {
    let raw: Vec<u8> = (0..4).flat_map(|_| rng.next_u32().to_be_bytes()).collect();
    let key = base64(&raw);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    r.get_mut().write_all(req.as_bytes())?;
    let head = r
        .read_response_head()?
        .ok_or_else(|| invalid("connection closed before the handshake response"))?;
    if head.status != 101 {
        return Err(invalid(format!("handshake answered {}", head.status)));
    }
    let want = accept_key(&key);
    match head.header("sec-websocket-accept") {
        Some(v) if v.trim() == want => Ok(()),
        other => Err(invalid(format!("bad Sec-WebSocket-Accept {other:?}"))),
    }
}

/// Server side: checks a request head is a WebSocket upgrade and writes the 101.
pub fn server_handshake<W: Write>(w: &mut W, head: &Head) -> io::Result<()> {
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        w.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")?;
        return Err(invalid("not a WebSocket upgrade"));
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or_else(|| invalid("no Sec-WebSocket-Key"))?;
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    w.write_all(resp.as_bytes())
}

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Encodes one final frame; `mask` is required from clients and forbidden from servers.
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

fn take(r: &mut Reader<impl Read>, n: u64, out: &mut Vec<u8>) -> io::Result<()> {
    r.read_exact_to(n, &mut |b| out.extend_from_slice(b))
}

/// Reads one frame. `Ok(None)` on a clean EOF between frames. `from_client` says which side
/// sent it: client frames must be masked, server frames must not be.
pub fn read_frame(r: &mut Reader<impl Read>, from_client: bool) -> io::Result<Option<Frame>> {
    let mut hdr = Vec::with_capacity(14);
    if r.buffered().is_empty() {
        // Distinguish a clean close between frames from one inside a frame.
        let mut probe = Vec::new();
        match take(r, 1, &mut probe) {
            Ok(()) => hdr.extend_from_slice(&probe),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        take(r, 1, &mut hdr)?;
    } else {
        take(r, 2, &mut hdr)?;
    }
    let (b0, b1) = (hdr[0], hdr[1]);
    if b0 & 0x80 == 0 || b0 & 0x70 != 0 {
        return Err(invalid("fragmented or extension frame"));
    }
    let masked = b1 & 0x80 != 0;
    if masked != from_client {
        return Err(invalid(if from_client {
            "unmasked client frame"
        } else {
            "masked server frame"
        }));
    }
    let mut len = u64::from(b1 & 0x7f);
    if len >= 126 {
        let mut ext = Vec::new();
        take(r, if len == 126 { 2 } else { 8 }, &mut ext)?;
        len = ext.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
    }
    if len > MAX_PAYLOAD {
        return Err(invalid(format!("frame of {len} bytes")));
    }
    let mut key = Vec::new();
    if masked {
        take(r, 4, &mut key)?;
    }
    let mut payload = Vec::with_capacity(len as usize);
    take(r, len, &mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Some(Frame {
        opcode: b0 & 0x0f,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_sample_accept_key() {
        // RFC 6455 § 1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn frames_round_trip_at_every_length_class() {
        for n in [0usize, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            for (mask, from_client) in [(Some([1, 2, 3, 4]), true), (None, false)] {
                let bytes = encode(OP_BINARY, &payload, mask);
                let mut r = Reader::new(&bytes[..]);
                let f = read_frame(&mut r, from_client).unwrap().unwrap();
                assert_eq!(f.opcode, OP_BINARY);
                assert_eq!(f.payload, payload);
                assert_eq!(read_frame(&mut r, from_client).unwrap(), None);
                // The wrong side's framing is refused.
                let mut r = Reader::new(&bytes[..]);
                assert!(read_frame(&mut r, !from_client).is_err());
            }
        }
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_clean_end() {
        let bytes = encode(OP_TEXT, b"hello", Some([9, 9, 9, 9]));
        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        assert!(read_frame(&mut r, true).is_err());
    }
}
