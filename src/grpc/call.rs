//! One unary gRPC call on an HTTP/2 connection of its own (h2c), sans-IO: `Call::new` queues
//! the connection preface, our SETTINGS, the request's HEADERS and its one length-prefixed
//! message; `feed` takes the server's bytes and answers SETTINGS, PINGs and flow control as
//! they come, until the stream's trailers (or a trailers-only response) end the call.
//!
//! Bounded against a hostile server: we advertise a receive window of `MAX_MESSAGE` on the
//! stream and the connection and never open it further, so DATA past it is a flow-control
//! error, not memory; a header block (HEADERS and its CONTINUATIONs) may be `MAX_BLOCK` bytes at
//! most; frames are at most the default 16 KiB (we never raise SETTINGS_MAX_FRAME_SIZE).

use std::time::Duration;

use crate::h2::frame::{self, Frame, Setting};
use crate::h2::hpack;

/// Most bytes of the response's DATA (the length-prefixed message and any padding).
pub const MAX_MESSAGE: u32 = 256 * 1024;
/// Most bytes of one header block as sent, and of its decoded header list.
const MAX_BLOCK: usize = 64 * 1024;
/// Most bytes a call may have waiting to be sent (its message and our acknowledgements):
/// a server that floods PINGs or SETTINGS and never reads would otherwise grow it.
pub const MAX_UNSENT: usize = 1 << 20;
/// The one stream of the call.
const STREAM: u32 = 1;

/// What a call sends.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:authority` (Envoy sends the cluster's name unless `envoy_grpc.authority` says).
    pub authority: &'a str,
    /// `:path`: `/package.Service/Method`.
    pub path: &'a str,
    /// Sent as `grpc-timeout` (none when zero: no deadline).
    pub timeout: Duration,
    /// `initial_metadata`: more request headers (lower-case names).
    pub metadata: &'a [(String, String)],
    /// The serialized request message.
    pub message: &'a [u8],
}

/// Why a call gave no response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server ended the call with this gRPC status (not OK) and `grpc-message`.
    Status(u32, String),
    /// The connection or the stream broke: closed early, reset, refused by GOAWAY, or it broke
    /// HTTP/2's rules.
    Broken(&'static str),
    /// The answer is not a well-formed gRPC response (HTTP status, content type, message
    /// framing, size).
    Malformed(&'static str),
}

/// A call in flight.
pub struct Call {
    /// Wire bytes to send (the I/O side takes them from the front).
    out: Vec<u8>,
    /// Server bytes not yet a whole frame.
    rx: Vec<u8>,
    decoder: hpack::Decoder,
    /// The length-prefixed request message not yet sent (flow control may hold it).
    pending: Vec<u8>,
    /// The server's windows for what we send (RFC 9113 §6.9), signed: a SETTINGS change may
    /// take the stream's below zero.
    conn_window: i64,
    stream_window: i64,
    peer_initial: u32,
    peer_max_frame: u32,
    /// A header block being gathered: its bytes and whether its HEADERS ended the stream.
    block: Option<(Vec<u8>, bool)>,
    /// The response headers came (what follows is DATA, then trailers).
    headers_seen: bool,
    /// The response's DATA, as received (flow-control bytes counted in `received`).
    body: Vec<u8>,
    received: u64,
    /// `grpc-status` and `grpc-message` of the trailers (or of a trailers-only response).
    status: Option<(u32, String)>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("out", &self.out.len())
            .field("pending", &self.pending.len())
            .field("body", &self.body.len())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// `grpc-timeout` for `t`: at most eight digits and a unit (gRPC's PROTOCOL-HTTP2), the finest
/// unit that fits, rounded up so the server never sees a shorter deadline than ours.
pub fn grpc_timeout(t: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let ms = t.as_nanos().div_ceil(1_000_000);
    for (unit, per) in [("m", 1u128), ("S", 1_000), ("M", 60_000), ("H", 3_600_000)] {
        let n = ms.div_ceil(per);
        if n <= MAX {
            return format!("{n}{unit}");
        }
    }
    format!("{MAX}H")
}

impl Call {
    pub fn new(r: &Request<'_>) -> Call {
        let mut out = Vec::with_capacity(256 + r.message.len());
        out.extend_from_slice(frame::PREFACE);
        frame::write_settings(
            &mut out,
            &[
                Setting::EnablePush(0),
                Setting::InitialWindowSize(MAX_MESSAGE),
                Setting::MaxHeaderListSize(MAX_BLOCK as u32),
            ],
        );
        // The connection's receive window, to the same size as the stream's.
        frame::write_window_update(&mut out, 0, MAX_MESSAGE - frame::DEFAULT_WINDOW);
        let timeout = (!r.timeout.is_zero()).then(|| grpc_timeout(r.timeout));
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", r.path.as_bytes()),
            (b":authority", r.authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ];
        if let Some(t) = &timeout {
            fields.push((b"grpc-timeout", t.as_bytes()));
        }
        fields.extend(r.metadata.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let mut block = Vec::new();
        hpack::Encoder::new().encode(&mut fields.into_iter(), &mut block);
        frame::write_headers(&mut out, STREAM, &block, false, frame::DEFAULT_MAX_FRAME);
        // The message: uncompressed (flag 0), its length, its bytes.
        let mut pending = Vec::with_capacity(5 + r.message.len());
        pending.push(0);
        pending.extend_from_slice(&(r.message.len() as u32).to_be_bytes());
        pending.extend_from_slice(r.message);
        let mut call = Call {
            out,
            rx: Vec::new(),
            decoder: hpack::Decoder::new(hpack::DEFAULT_TABLE),
            pending,
            conn_window: i64::from(frame::DEFAULT_WINDOW),
            stream_window: i64::from(frame::DEFAULT_WINDOW),
            peer_initial: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            block: None,
            headers_seen: false,
            body: Vec::new(),
            received: 0,
            status: None,
        };
        call.send_data();
        call
    }

    /// The wire bytes waiting to be sent; the caller drains what it wrote.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Sends as much of the message as the server's windows and frame size allow.
    fn send_data(&mut self) {
        while !self.pending.is_empty() {
            let room = self.conn_window.min(self.stream_window);
            let n = usize::try_from(room)
                .unwrap_or(0)
                .min(self.peer_max_frame as usize)
                .min(self.pending.len());
            if n == 0 {
                return;
            }
            let last = n == self.pending.len();
            let chunk: Vec<u8> = self.pending.drain(..n).collect();
            frame::write_data(&mut self.out, STREAM, &chunk, last);
            self.conn_window -= n as i64;
            self.stream_window -= n as i64;
        }
    }

    /// Takes the server's `bytes` (`eof`: it closed); `Some` once the call is over: the
    /// response message, or why there is none. The caller stops feeding then.
    pub fn feed(&mut self, bytes: &[u8], eof: bool) -> Option<Result<Vec<u8>, Failure>> {
        self.rx.extend_from_slice(bytes);
        // Taken out while frames borrow it, so that the handler may change the rest of `self`.
        let rx = std::mem::take(&mut self.rx);
        let mut used = 0;
        let result = loop {
            let rest = rx.get(used..).unwrap_or_default();
            let (f, n) = match frame::parse(rest, frame::DEFAULT_MAX_FRAME) {
                Ok(Some(x)) => x,
                Ok(None) => break None,
                Err(e) => {
                    log::debug!("gRPC call: {e}");
                    break Some(Err(Failure::Broken("HTTP/2 protocol error")));
                }
            };
            used += n;
            if let Some(done) = self.on_frame(f) {
                break Some(done);
            }
        };
        self.rx = rx;
        self.rx.drain(..used.min(self.rx.len()));
        if result.is_some() {
            return result;
        }
        self.send_data();
        eof.then_some(Err(Failure::Broken(
            "the connection closed before the call ended",
        )))
    }

    fn on_frame(&mut self, f: Frame<'_>) -> Option<Result<Vec<u8>, Failure>> {
        const PROTOCOL: Failure = Failure::Broken("HTTP/2 protocol error");
        if self.block.is_some() && !matches!(f, Frame::Continuation { .. }) {
            return Some(Err(PROTOCOL)); // RFC 9113 §6.10: nothing between a block's frames
        }
        match f {
            Frame::Settings { ack: false, params } => {
                for s in frame::settings(params) {
                    match s {
                        Setting::InitialWindowSize(v) => {
                            self.stream_window += i64::from(v) - i64::from(self.peer_initial);
                            self.peer_initial = v;
                            if self.stream_window > i64::from(frame::MAX_WINDOW) {
                                return Some(Err(Failure::Broken("flow-control window overflow")));
                            }
                        }
                        Setting::MaxFrameSize(v) => self.peer_max_frame = v,
                        _ => {}
                    }
                }
                frame::write_settings_ack(&mut self.out);
            }
            Frame::Ping { ack: false, data } => frame::write_ping(&mut self.out, data, true),
            Frame::WindowUpdate { stream, increment } => {
                let w = match stream {
                    0 => &mut self.conn_window,
                    STREAM => &mut self.stream_window,
                    _ => return None,
                };
                *w += i64::from(increment);
                if *w > i64::from(frame::MAX_WINDOW) {
                    return Some(Err(Failure::Broken("flow-control window overflow")));
                }
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                if last_stream < STREAM {
                    log::debug!("gRPC call: GOAWAY {code} before our stream");
                    return Some(Err(Failure::Broken("GOAWAY before the call was taken")));
                }
            }
            Frame::RstStream {
                stream: STREAM,
                code,
            } => {
                log::debug!("gRPC call: stream reset ({code})");
                return Some(Err(Failure::Broken("the stream was reset")));
            }
            Frame::PushPromise { .. } => return Some(Err(PROTOCOL)),
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => {
                if stream != STREAM || !self.headers_seen || self.status.is_some() {
                    return Some(Err(PROTOCOL));
                }
                self.received += u64::from(flow_len);
                if self.received > u64::from(MAX_MESSAGE) {
                    return Some(Err(Failure::Broken("flow-control window exceeded")));
                }
                self.body.extend_from_slice(data);
                if end_stream {
                    return Some(Err(Failure::Malformed("the response had no trailers")));
                }
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                if stream != STREAM {
                    return Some(Err(PROTOCOL));
                }
                if !end_headers {
                    self.block = Some((block.to_vec(), end_stream));
                    return None;
                }
                return self.on_block(block, end_stream);
            }
            Frame::Continuation {
                stream,
                end_headers,
                block,
            } => {
                let Some((mut acc, end_stream)) = self.block.take() else {
                    return Some(Err(PROTOCOL));
                };
                if stream != STREAM {
                    return Some(Err(PROTOCOL));
                }
                if acc.len() + block.len() > MAX_BLOCK {
                    return Some(Err(Failure::Malformed("header block too large")));
                }
                acc.extend_from_slice(block);
                if !end_headers {
                    self.block = Some((acc, end_stream));
                    return None;
                }
                return self.on_block(&acc, end_stream);
            }
            // Acknowledgements, PRIORITY, unknown types, another stream's reset: nothing to do.
            Frame::RstStream { .. }
            | Frame::Settings { ack: true, .. }
            | Frame::Ping { ack: true, .. }
            | Frame::Priority { .. }
            | Frame::Unknown { .. } => {}
        }
        None
    }

    /// A whole header block: the response headers, trailers, or both at once (trailers-only).
    fn on_block(&mut self, block: &[u8], end_stream: bool) -> Option<Result<Vec<u8>, Failure>> {
        let mut status = None;
        let mut content_type_ok = false;
        let mut grpc_status = None;
        let mut grpc_message = String::new();
        let mut emit = |n: &[u8], v: &[u8]| match n {
            b":status" => status = Some(v.to_vec()),
            b"content-type" => {
                content_type_ok = v.starts_with(b"application/grpc")
                    && matches!(v.get(16), None | Some(b'+' | b';'));
            }
            b"grpc-status" => {
                grpc_status = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok());
            }
            b"grpc-message" => grpc_message = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        };
        if self.decoder.decode(block, MAX_BLOCK, &mut emit).is_err() {
            return Some(Err(Failure::Broken("HPACK error")));
        }
        if !self.headers_seen {
            match status.as_deref() {
                Some(s) if s.first() == Some(&b'1') && !end_stream => return None, // interim
                Some(b"200") => {}
                _ => return Some(Err(Failure::Malformed("HTTP status other than 200"))),
            }
            if !content_type_ok {
                return Some(Err(Failure::Malformed("not application/grpc")));
            }
            self.headers_seen = true;
            if !end_stream {
                return None;
            }
        } else if !end_stream || status.is_some() {
            return Some(Err(Failure::Broken("HTTP/2 protocol error")));
        }
        // The stream is over: trailers (or a trailers-only response) say how.
        let Some(code) = grpc_status else {
            return Some(Err(Failure::Malformed("no grpc-status")));
        };
        self.status = Some((code, grpc_message.clone()));
        if code != 0 {
            return Some(Err(Failure::Status(code, grpc_message)));
        }
        Some(self.message())
    }

    /// The one message of a unary response, unframed.
    fn message(&mut self) -> Result<Vec<u8>, Failure> {
        let Some((head, rest)) = self.body.split_first_chunk::<5>() else {
            return Err(Failure::Malformed("no response message"));
        };
        if head[0] != 0 {
            // We offer no grpc-accept-encoding: a compressed message is not ours to read.
            return Err(Failure::Malformed("compressed message"));
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if rest.len() != len {
            return Err(Failure::Malformed("message length"));
        }
        Ok(rest.to_vec())
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
