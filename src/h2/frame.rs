//! HTTP/2 framing (RFC 9113 §4 and §6): a parser that checks every rule a single frame can break
//! on its own, and writers that append frames to a buffer. Sans-IO and allocation-free on the
//! read side, so the transcoders can call it on whatever bytes they have.

/// The client connection preface (RFC 9113 §3.4); a server reads it before the first SETTINGS.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Every frame starts with a 9-octet header (RFC 9113 §4.1).
pub const HEAD_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may advertise (2^24-1, RFC 9113 §6.5.2).
pub const MAX_FRAME_LIMIT: u32 = 16_777_215;
/// The initial flow-control window of the connection and of every stream (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The largest flow-control window (2^31-1, RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// Frame flags (RFC 9113 §6). ACK and END_STREAM share a bit; the frame type says which.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Frame type codes (RFC 9113 §6, table in §11.2).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// HTTP/2 error codes (RFC 9113 §7). Unknown codes are kept: a peer may send any value and it
/// "MUST NOT trigger any special behavior".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NoError,
    Protocol,
    Internal,
    FlowControl,
    SettingsTimeout,
    StreamClosed,
    FrameSize,
    RefusedStream,
    Cancel,
    Compression,
    Connect,
    EnhanceYourCalm,
    InadequateSecurity,
    Http11Required,
    Unknown(u32),
}

impl ErrorCode {
    /// The code's wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            ErrorCode::NoError => 0x0,
            ErrorCode::Protocol => 0x1,
            ErrorCode::Internal => 0x2,
            ErrorCode::FlowControl => 0x3,
            ErrorCode::SettingsTimeout => 0x4,
            ErrorCode::StreamClosed => 0x5,
            ErrorCode::FrameSize => 0x6,
            ErrorCode::RefusedStream => 0x7,
            ErrorCode::Cancel => 0x8,
            ErrorCode::Compression => 0x9,
            ErrorCode::Connect => 0xa,
            ErrorCode::EnhanceYourCalm => 0xb,
            ErrorCode::InadequateSecurity => 0xc,
            ErrorCode::Http11Required => 0xd,
            ErrorCode::Unknown(v) => v,
        }
    }

    /// The code a wire value names; values RFC 9113 does not define are `Unknown`.
    pub fn from_u32(v: u32) -> ErrorCode {
        match v {
            0x0 => ErrorCode::NoError,
            0x1 => ErrorCode::Protocol,
            0x2 => ErrorCode::Internal,
            0x3 => ErrorCode::FlowControl,
            0x4 => ErrorCode::SettingsTimeout,
            0x5 => ErrorCode::StreamClosed,
            0x6 => ErrorCode::FrameSize,
            0x7 => ErrorCode::RefusedStream,
            0x8 => ErrorCode::Cancel,
            0x9 => ErrorCode::Compression,
            0xa => ErrorCode::Connect,
            0xb => ErrorCode::EnhanceYourCalm,
            0xc => ErrorCode::InadequateSecurity,
            0xd => ErrorCode::Http11Required,
            other => ErrorCode::Unknown(other),
        }
    }

    /// The RFC's name for the code, for logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::Protocol => "PROTOCOL_ERROR",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::FlowControl => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSize => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::Compression => "COMPRESSION_ERROR",
            ErrorCode::Connect => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
            ErrorCode::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorCode::Unknown(v) => write!(f, "UNKNOWN(0x{v:x})"),
            known => f.write_str(known.name()),
        }
    }
}

/// A connection error (RFC 9113 §5.4.1): the caller sends GOAWAY with `code` and closes.
/// The parser reports the stream-level size errors of §6.3 and §6.9 this way too: the strictest
/// answer is always allowed, and it keeps the transcoders' state machines small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    pub code: ErrorCode,
    pub why: &'static str,
}

impl ConnError {
    fn new(code: ErrorCode, why: &'static str) -> ConnError {
        ConnError { code, why }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.why)
    }
}

impl std::error::Error for ConnError {}

/// One parsed frame; slices borrow the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `data` has the padding removed; `flow_len` is the whole payload (padding and its length
    /// octet included), which is what flow control counts (RFC 9113 §6.1).
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        flow_len: u32,
    },
    /// The field block fragment with padding and priority fields removed.
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        block: &'a [u8],
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        block: &'a [u8],
    },
    /// Priority signals are deprecated (RFC 9113 §5.3.2); only the stream is kept.
    Priority {
        stream: u32,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    /// `params` is a whole number of 6-octet parameters, each already checked; read them with
    /// [`settings`].
    Settings {
        ack: bool,
        params: &'a [u8],
    },
    /// Never wanted (we advertise ENABLE_PUSH 0 or are the server); kept so the caller can
    /// refuse it with PROTOCOL_ERROR.
    PushPromise {
        stream: u32,
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    /// A frame of a type this side does not know: ignored (RFC 9113 §4.1, §5.5).
    Unknown {
        kind: u8,
        stream: u32,
    },
}

/// One SETTINGS parameter (RFC 9113 §6.5.2). Unknown identifiers are ignored by the receiver
/// (§6.5.2) but kept here so a caller could log them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    HeaderTableSize(u32),
    EnablePush(u32),
    MaxConcurrentStreams(u32),
    InitialWindowSize(u32),
    MaxFrameSize(u32),
    MaxHeaderListSize(u32),
    Unknown(u16, u32),
}

impl Setting {
    /// The parameter from its identifier and value.
    pub fn from_parts(id: u16, value: u32) -> Setting {
        match id {
            0x1 => Setting::HeaderTableSize(value),
            0x2 => Setting::EnablePush(value),
            0x3 => Setting::MaxConcurrentStreams(value),
            0x4 => Setting::InitialWindowSize(value),
            0x5 => Setting::MaxFrameSize(value),
            0x6 => Setting::MaxHeaderListSize(value),
            other => Setting::Unknown(other, value),
        }
    }

    /// The parameter's identifier and value, as they go on the wire.
    pub fn parts(self) -> (u16, u32) {
        match self {
            Setting::HeaderTableSize(v) => (0x1, v),
            Setting::EnablePush(v) => (0x2, v),
            Setting::MaxConcurrentStreams(v) => (0x3, v),
            Setting::InitialWindowSize(v) => (0x4, v),
            Setting::MaxFrameSize(v) => (0x5, v),
            Setting::MaxHeaderListSize(v) => (0x6, v),
            Setting::Unknown(id, v) => (id, v),
        }
    }

    /// The value checks of RFC 9113 §6.5.2 (the others need connection state or none).
    fn check(self) -> Result<(), ConnError> {
        match self {
            Setting::EnablePush(v) if v > 1 => Err(ConnError::new(
                ErrorCode::Protocol,
                "SETTINGS_ENABLE_PUSH other than 0 or 1",
            )),
            Setting::InitialWindowSize(v) if v > MAX_WINDOW => Err(ConnError::new(
                ErrorCode::FlowControl,
                "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
            )),
            Setting::MaxFrameSize(v) if !(DEFAULT_MAX_FRAME..=MAX_FRAME_LIMIT).contains(&v) => {
                Err(ConnError::new(
                    ErrorCode::Protocol,
                    "SETTINGS_MAX_FRAME_SIZE outside 16384..16777215",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The parameters of a SETTINGS payload, in order. A trailing partial parameter (impossible in
/// a payload [`parse`] accepted) is ignored.
pub fn settings(params: &[u8]) -> impl Iterator<Item = Setting> + '_ {
    params.chunks_exact(6).map(|p| {
        let id = u16::from_be_bytes([p[0], p[1]]);
        let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
        Setting::from_parts(id, value)
    })
}

/// A big-endian u32 from the first four octets, if there are four.
fn be32(b: &[u8]) -> Option<u32> {
    let four: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(four))
}

fn frame_size(why: &'static str) -> ConnError {
    ConnError::new(ErrorCode::FrameSize, why)
}

fn protocol(why: &'static str) -> ConnError {
    ConnError::new(ErrorCode::Protocol, why)
}

/// Strips the Pad Length octet and the padding when `PADDED` is set (RFC 9113 §6.1, §6.2,
/// §6.6); `fixed` more octets (priority fields, promised stream id) must fit before the padding.
/// Returns (the fixed fields, the rest).
fn unpad(payload: &[u8], flags: u8, fixed: usize) -> Result<(&[u8], &[u8]), ConnError> {
    let (pad, body) = if flags & flag::PADDED != 0 {
        let (&pad, body) = payload
            .split_first()
            .ok_or(frame_size("PADDED frame without a Pad Length octet"))?;
        (usize::from(pad), body)
    } else {
        (0, payload)
    };
    let (fields, rest) = body
        .split_at_checked(fixed)
        .ok_or(frame_size("frame too short for its fixed fields"))?;
    let keep = rest
        .len()
        .checked_sub(pad)
        .ok_or(protocol("padding longer than the frame payload"))?;
    let content = rest
        .get(..keep)
        .ok_or(protocol("padding longer than the frame payload"))?;
    Ok((fields, content))
}

/// One whole frame from the front of `buf` (Ok(None): need more bytes), and how many bytes it
/// used. Checks every RFC 9113 §4 and §6 size, stream-identifier and padding rule that needs no
/// connection state, and the SETTINGS values of §6.5.2. A frame longer than `max_frame` (the
/// SETTINGS_MAX_FRAME_SIZE this side advertised) fails as soon as its header is in, so a peer
/// cannot make the caller wait for 16 MiB.
pub fn parse(buf: &[u8], max_frame: u32) -> Result<Option<(Frame<'_>, usize)>, ConnError> {
    let Some((head, rest)) = buf.split_first_chunk::<HEAD_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]);
    let ty = head[3];
    let flags = head[4];
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    if len > max_frame {
        return Err(frame_size("frame longer than SETTINGS_MAX_FRAME_SIZE"));
    }
    let len = len as usize;
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    let used = HEAD_LEN + len;
    let need_stream = |why| {
        if stream == 0 {
            Err(protocol(why))
        } else {
            Ok(())
        }
    };
    let need_conn = |why| {
        if stream != 0 {
            Err(protocol(why))
        } else {
            Ok(())
        }
    };
    let frame = match ty {
        kind::DATA => {
            need_stream("DATA on stream 0")?;
            let (_, data) = unpad(payload, flags, 0)?;
            Frame::Data {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                data,
                flow_len: len as u32,
            }
        }
        kind::HEADERS => {
            need_stream("HEADERS on stream 0")?;
            let fixed = if flags & flag::PRIORITY != 0 { 5 } else { 0 };
            let (_, block) = unpad(payload, flags, fixed)?;
            Frame::Headers {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                end_headers: flags & flag::END_HEADERS != 0,
                block,
            }
        }
        kind::PRIORITY => {
            need_stream("PRIORITY on stream 0")?;
            if len != 5 {
                return Err(frame_size("PRIORITY length other than 5"));
            }
            Frame::Priority { stream }
        }
        kind::RST_STREAM => {
            need_stream("RST_STREAM on stream 0")?;
            let code = match be32(payload) {
                Some(code) if len == 4 => code,
                _ => return Err(frame_size("RST_STREAM length other than 4")),
            };
            Frame::RstStream {
                stream,
                code: ErrorCode::from_u32(code),
            }
        }
        kind::SETTINGS => {
            need_conn("SETTINGS on a stream")?;
            let ack = flags & flag::ACK != 0;
            if ack && len != 0 {
                return Err(frame_size("SETTINGS ACK with a payload"));
            }
            if len % 6 != 0 {
                return Err(frame_size("SETTINGS length not a multiple of 6"));
            }
            for s in settings(payload) {
                s.check()?;
            }
            Frame::Settings {
                ack,
                params: payload,
            }
        }
        kind::PUSH_PROMISE => {
            need_stream("PUSH_PROMISE on stream 0")?;
            unpad(payload, flags, 4)?;
            Frame::PushPromise { stream }
        }
        kind::PING => {
            need_conn("PING on a stream")?;
            let data: [u8; 8] = payload
                .try_into()
                .map_err(|_| frame_size("PING length other than 8"))?;
            Frame::Ping {
                ack: flags & flag::ACK != 0,
                data,
            }
        }
        kind::GOAWAY => {
            need_conn("GOAWAY on a stream")?;
            let (Some(last), Some(code), Some(debug)) = (
                be32(payload),
                payload.get(4..).and_then(be32),
                payload.get(8..),
            ) else {
                return Err(frame_size("GOAWAY shorter than 8"));
            };
            Frame::GoAway {
                last_stream: last & 0x7fff_ffff,
                code: ErrorCode::from_u32(code),
                debug,
            }
        }
        kind::WINDOW_UPDATE => {
            let increment = match be32(payload) {
                Some(v) if len == 4 => v & 0x7fff_ffff,
                _ => return Err(frame_size("WINDOW_UPDATE length other than 4")),
            };
            if increment == 0 {
                return Err(protocol("WINDOW_UPDATE increment 0"));
            }
            Frame::WindowUpdate { stream, increment }
        }
        kind::CONTINUATION => {
            need_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream,
                end_headers: flags & flag::END_HEADERS != 0,
                block: payload,
            }
        }
        other => Frame::Unknown {
            kind: other,
            stream,
        },
    };
    Ok(Some((frame, used)))
}

/// Appends a frame header. `len` is at most 2^24-1 (every writer splits or bounds its payload).
fn write_head(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, stream: u32) {
    let len = (len as u32).min(MAX_FRAME_LIMIT).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], ty, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// Appends DATA carrying `data` (flow control counts `data.len()`). The caller keeps `data`
/// within the peer's SETTINGS_MAX_FRAME_SIZE; anything longer than 2^24-1 is split so the
/// framing stays valid. END_STREAM goes on the last frame; empty `data` writes one empty frame.
pub fn write_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    let mut chunks = data.chunks(MAX_FRAME_LIMIT as usize).peekable();
    if chunks.peek().is_none() {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        write_head(out, 0, kind::DATA, flags, stream);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if end_stream && last {
            flag::END_STREAM
        } else {
            0
        };
        write_head(out, chunk.len(), kind::DATA, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// Appends a header block: HEADERS with the first `max_frame` octets, then CONTINUATION frames
/// (RFC 9113 §6.10); END_HEADERS on the last, END_STREAM on the HEADERS frame (§8.1).
/// `max_frame` is the peer's SETTINGS_MAX_FRAME_SIZE, clamped to the range a peer may set.
pub fn write_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: u32,
) {
    let max = max_frame.clamp(DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT) as usize;
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or_default();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    write_head(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        write_head(out, chunk.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// Appends SETTINGS with `params` (a few parameters; far below any frame size limit).
pub fn write_settings(out: &mut Vec<u8>, params: &[Setting]) {
    write_head(out, params.len() * 6, kind::SETTINGS, 0, 0);
    for p in params {
        let (id, value) = p.parts();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends the SETTINGS acknowledgement (RFC 9113 §6.5.3).
pub fn write_settings_ack(out: &mut Vec<u8>) {
    write_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends PING; an answer echoes the peer's `data` with `ack` set (RFC 9113 §6.7).
pub fn write_ping(out: &mut Vec<u8>, data: [u8; 8], ack: bool) {
    write_head(out, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    out.extend_from_slice(&data);
}

/// Appends RST_STREAM (RFC 9113 §6.4).
pub fn write_rst(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    write_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_u32().to_be_bytes());
}

/// Appends GOAWAY without debug data (RFC 9113 §6.8).
pub fn write_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode) {
    write_head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.to_u32().to_be_bytes());
}

/// Appends WINDOW_UPDATE (RFC 9113 §6.9); the caller sends increments of 1..=2^31-1.
pub fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
