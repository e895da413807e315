//! The client role of the HTTP/2 transcoder (an upstream connection): the exchange core's
//! HTTP/1.1 request bytes become HEADERS and DATA on a new stream (1, 3, 5, … one at a time,
//! so the keep-alive pool works unchanged), and the server's frames become HTTP/1.1 response
//! bytes. Sans-IO (`super::layer` moves the bytes); the request head is parsed with the
//! HTTP/1 codec's parser and its chunked decoder, not a second parser.
//!
//! What the core sees: a response head with `content-length` when the server sent one, else
//! a chunked body (trailers after the last chunk); no body for HEAD, 204 and 304; 1xx heads as
//! they come. A stream the server resets is a read error (the core's upstream reset); a GOAWAY
//! that leaves our stream unprocessed is EOF before the response (a stale pooled connection,
//! retried as one); a connection error queues our GOAWAY and is a read error.

use std::io;

use super::frame::{self, ErrorCode, Frame, Setting};
use super::hpack::{Decoder, Encoder};
use super::{Fault, Transcode};
use crate::http::codec::{self, Framing};

/// Most wire bytes of our own (acks) waiting for the socket before no more frames are taken.
const OUT_HIGH: usize = 256 * 1024;

/// What a cluster's `Http2ProtocolOptions` set for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise: how much response body per stream the
    /// server may send before our WINDOW_UPDATE.
    pub stream_window: u32,
    /// Our connection-level receive window (raised from 65,535 by a WINDOW_UPDATE at once).
    pub conn_window: u32,
    /// SETTINGS_HEADER_TABLE_SIZE we advertise: our HPACK decoder's dynamic table.
    pub table_size: u32,
}

impl Default for Options {
    /// Envoy's defaults (api/envoy/config/core/v3/protocol.proto): 256 MiB windows, a 4 KiB
    /// table.
    fn default() -> Options {
        Options {
            stream_window: 268_435_456,
            conn_window: 268_435_456,
            table_size: 4096,
        }
    }
}

/// Most bytes of an HTTP/1 request head we hold while it is incomplete (the core's heads are
/// far smaller: its own limits apply before).
const MAX_REQUEST_HEAD: usize = 256 * 1024;
/// Most bytes of one response header block (HEADERS + CONTINUATION) and of its decoded list.
const MAX_HEADER_BLOCK: usize = 128 * 1024;
const MAX_HEADER_LIST: usize = 96 * 1024;
/// Most CONTINUATION frames after one HEADERS (a flood of tiny ones is ENHANCE_YOUR_CALM).
const MAX_CONTINUATIONS: u32 = 64;
/// The highest client stream id (2^31-1); past it the connection carries no new stream.
const LAST_STREAM_ID: u32 = 0x7fff_ffff;

#[derive(Debug)]
enum Req {
    /// No exchange yet, or the last one is over.
    Idle,
    /// Bytes of the head so far.
    Head(Vec<u8>),
    Length(u64),
    Chunked(codec::ChunkedDecoder),
    /// END_STREAM sent.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    Idle,
    /// Waiting for the final head (1xx heads pass).
    Head,
    /// Body bytes to the core: chunked (no content-length), else up to `left` bytes.
    Body {
        chunked: bool,
        left: u64,
    },
    /// The core has the whole response; frames still arriving on the stream are dropped.
    Done,
}

/// Why HTTP/1 reads fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    /// Our stream was reset: by the server, or by us (`why`) for a malformed response.
    Stream(Fault, &'static str),
    /// A connection error: our GOAWAY is queued.
    Conn(&'static str),
}

pub struct Client {
    opts: Options,
    https: bool,
    enc: Encoder,
    dec: Decoder,
    /// The server's SETTINGS_MAX_FRAME_SIZE and SETTINGS_INITIAL_WINDOW_SIZE.
    peer_max_frame: u32,
    peer_initial_window: u32,
    /// Send windows: the connection's and the current stream's (the latter can go negative
    /// when the server lowers its initial window).
    conn_send: i64,
    stream_send: i64,
    /// Receive windows left, and what was received since the last WINDOW_UPDATE.
    conn_recv: i64,
    conn_unacked: u32,
    stream_recv: i64,
    stream_unacked: u32,
    /// The current stream (0: none yet) and the next one's id.
    stream: u32,
    next_id: u32,
    req: Req,
    resp: Resp,
    /// The current request is HEAD (its response has no body).
    head_request: bool,
    /// A write was refused for want of window.
    blocked: bool,
    /// HTTP/1 bytes for the core; `h1_at` of them read.
    h1: Vec<u8>,
    h1_at: usize,
    /// A header block being assembled: its stream, END_STREAM, and CONTINUATIONs so far.
    block: Vec<u8>,
    block_of: Option<(u32, bool, u32)>,
    /// The last stream id of the server's GOAWAY.
    goaway: Option<u32>,
    goaway_sent: bool,
    /// The server refused our stream unprocessed (REFUSED_STREAM).
    refused: bool,
    broken: Option<Broken>,
    eof: bool,
}

fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Request headers an HTTP/2 message must not carry (RFC 9113 §8.2.2): dropped; `te` is kept
/// only as `trailers`.
fn connection_specific(name: &str, value: &[u8]) -> bool {
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    if is("te") {
        return !codec::trim(value).eq_ignore_ascii_case(b"trailers");
    }
    is("connection")
        || is("keep-alive")
        || is("proxy-connection")
        || is("transfer-encoding")
        || is("upgrade")
        || is("host")
}

impl Client {
    /// A connection's transcoder; `https`: the transport is TLS (`:scheme`).
    pub fn new(opts: Options, https: bool) -> Client {
        Client {
            opts,
            https,
            enc: Encoder::new(),
            // A server may use the default table until it has our SETTINGS: accept that much.
            dec: Decoder::new(opts.table_size.max(4096) as usize),
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            peer_initial_window: frame::DEFAULT_WINDOW,
            conn_send: i64::from(frame::DEFAULT_WINDOW),
            stream_send: 0,
            conn_recv: i64::from(opts.conn_window.max(frame::DEFAULT_WINDOW)),
            conn_unacked: 0,
            stream_recv: 0,
            stream_unacked: 0,
            stream: 0,
            next_id: 1,
            req: Req::Idle,
            resp: Resp::Idle,
            head_request: false,
            blocked: false,
            h1: Vec::new(),
            h1_at: 0,
            block: Vec::new(),
            block_of: None,
            goaway: None,
            goaway_sent: false,
            refused: false,
            broken: None,
            eof: false,
        }
    }

    /// A connection error: GOAWAY with `code`, and every later read fails.
    fn conn_error(&mut self, out: &mut Vec<u8>, code: ErrorCode, why: &'static str) -> io::Error {
        if !self.goaway_sent {
            self.goaway_sent = true;
            frame::write_goaway(out, 0, code);
        }
        self.broken = Some(Broken::Conn(why));
        log::debug!("HTTP/2 upstream connection error: {why}");
        Fault::Protocol.error()
    }

    /// Our stream's response is malformed: RST_STREAM(PROTOCOL_ERROR), and the core's read
    /// fails as for a reset.
    fn stream_error(&mut self, out: &mut Vec<u8>, why: &'static str) {
        frame::write_rst(out, self.stream, ErrorCode::Protocol);
        self.broken = Some(Broken::Stream(Fault::Protocol, why));
    }

    /// The exchange on the current stream is over both ways.
    fn exchange_done(&self) -> bool {
        matches!(self.req, Req::Done | Req::Idle) && matches!(self.resp, Resp::Done | Resp::Idle)
    }

    /// Sends what the window allows of a body piece; returns the bytes sent.
    fn send_data(&mut self, out: &mut Vec<u8>, data: &[u8], end: bool) -> usize {
        let room = self.conn_send.min(self.stream_send).max(0) as usize;
        let n = data.len().min(room);
        let mut sent = 0;
        for piece in data[..n].chunks(self.peer_max_frame as usize) {
            sent += piece.len();
            frame::write_data(out, self.stream, piece, end && sent == data.len());
        }
        if end && data.is_empty() {
            frame::write_data(out, self.stream, &[], true);
        }
        self.conn_send -= n as i64;
        self.stream_send -= n as i64;
        n
    }

    /// Parses the request head once whole and sends its HEADERS; returns the bytes of `h1`
    /// it used (the rest is body).
    fn take_head(&mut self, h1: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let Req::Head(buf) = &mut self.req else {
            return Ok(0);
        };
        let before = buf.len();
        let take = h1.len().min(MAX_REQUEST_HEAD.saturating_sub(before).max(1));
        buf.extend_from_slice(&h1[..take]);
        let buf = std::mem::take(buf);
        let mut slots = codec::header_slots();
        let head = match codec::parse_request(&buf, &mut slots) {
            Ok(Some(h)) => h,
            Ok(None) if buf.len() < MAX_REQUEST_HEAD => {
                self.req = Req::Head(buf);
                return Ok(take);
            }
            Ok(None) => return Err(bad("HTTP/2 upstream: request head too large")),
            Err(_) => return Err(bad("HTTP/2 upstream: unparsable request head")),
        };
        if head.method == "CONNECT"
            || head
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
        {
            // Envoy sends an upgrade as an extended CONNECT (RFC 8441): not implemented, so
            // the core answers 503 locally (docs/config.md).
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "HTTP/2 upstream: upgrade or CONNECT",
            ));
        }
        let used = head.head_len.saturating_sub(before);
        let scheme: &[u8] = if self.https { b"https" } else { b"http" };
        let authority = head.host.unwrap_or_default();
        let nominated = codec::Nominated::of(head.headers);
        let lower: Vec<(Vec<u8>, &[u8])> = head
            .headers
            .iter()
            .filter(|h| !connection_specific(h.name, h.value) && !nominated.names(h.name))
            .map(|h| (h.name.to_ascii_lowercase().into_bytes(), h.value))
            .collect();
        let pseudo: [(&[u8], &[u8]); 4] = [
            (b":method", head.method.as_bytes()),
            (b":scheme", scheme),
            (b":authority", authority.as_bytes()),
            (b":path", head.path.as_bytes()),
        ];
        let mut fields = pseudo
            .into_iter()
            .chain(lower.iter().map(|(n, v)| (n.as_slice(), *v)));
        let mut block = Vec::new();
        self.enc.encode(&mut fields, &mut block);
        let end = head.framing == Framing::None;
        self.head_request = head.method == "HEAD";
        self.req = match head.framing {
            Framing::Length(n) => Req::Length(n),
            Framing::Chunked => Req::Chunked(codec::ChunkedDecoder::new()),
            Framing::None | Framing::UntilClose => Req::Done,
        };
        frame::write_headers(out, self.stream, &block, end, self.peer_max_frame);
        Ok(used)
    }

    /// Starts a new stream for a request.
    fn open_stream(&mut self) -> io::Result<()> {
        if !self.reusable() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "HTTP/2 upstream connection is closing",
            ));
        }
        self.stream = self.next_id;
        self.next_id += 2;
        self.stream_send = i64::from(self.peer_initial_window);
        self.stream_recv = i64::from(self.opts.stream_window);
        self.stream_unacked = 0;
        self.req = Req::Head(Vec::new());
        self.resp = Resp::Head;
        Ok(())
    }

    /// Appends an HTTP/1 head line per field, for the core.
    fn put_fields(h1: &mut Vec<u8>, fields: &[(Vec<u8>, Vec<u8>)]) {
        for (n, v) in fields.iter().filter(|(n, _)| !n.starts_with(b":")) {
            h1.extend_from_slice(n);
            h1.extend_from_slice(b": ");
            h1.extend_from_slice(v);
            h1.extend_from_slice(b"\r\n");
        }
    }

    /// A whole header block on `stream`.
    fn on_block(&mut self, stream: u32, end: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let block = std::mem::take(&mut self.block);
        let decoded = self.dec.decode(&block, MAX_HEADER_LIST, &mut |n, v| {
            fields.push((n.to_vec(), v.to_vec()));
        });
        if decoded.is_err() {
            return Err(self.conn_error(out, ErrorCode::Compression, "HPACK decoding failed"));
        }
        if stream != self.stream || self.broken.is_some() {
            return Ok(()); // a stream we are done with
        }
        if let Err(why) = check_response_fields(&fields) {
            self.stream_error(out, why);
            return Ok(());
        }
        match self.resp {
            Resp::Head => self.on_head(&fields, end, out),
            Resp::Body { chunked, .. } => {
                if !end {
                    self.stream_error(out, "header block inside a response body");
                    return Ok(());
                }
                if fields.iter().any(|(n, _)| n.starts_with(b":")) {
                    // RFC 9113 §8.1: trailers carry no pseudo-header.
                    self.stream_error(out, "pseudo-header in trailers");
                    return Ok(());
                }
                if chunked {
                    self.h1.extend_from_slice(b"0\r\n");
                    Self::put_fields(&mut self.h1, &fields);
                    self.h1.extend_from_slice(b"\r\n");
                }
                // Trailers after a content-length body have no HTTP/1 form: dropped, as
                // an HTTP/1.1 hop would.
                self.resp_done();
                Ok(())
            }
            Resp::Idle | Resp::Done => Ok(()),
        }
    }

    fn on_head(
        &mut self,
        fields: &[(Vec<u8>, Vec<u8>)],
        end: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let status = fields
            .iter()
            .find(|(n, _)| n == b":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..=599).contains(s));
        let Some(status) = status else {
            self.stream_error(out, "response without a valid :status");
            return Ok(());
        };
        if status == 101 || ((100..200).contains(&status) && end) {
            self.stream_error(out, "invalid informational response");
            return Ok(());
        }
        let informational = (100..200).contains(&status);
        // Digits only: Rust's parse takes a leading `+`, which the core's parser refuses.
        let length = fields
            .iter()
            .find(|(n, _)| n == b"content-length")
            .map(|(_, v)| {
                std::str::from_utf8(codec::trim(v))
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
            });
        let no_body = self.head_request || status == 204 || status == 304;
        let length = match length {
            _ if informational => None,
            Some(None) => {
                self.stream_error(out, "invalid content-length");
                return Ok(());
            }
            // END_STREAM on the head: no DATA follows, so a length other than 0 cannot be
            // met (RFC 9113 §8.1.1: malformed). Else the core would relay the head and wait
            // for a body that never comes.
            Some(Some(n)) if end && n > 0 && !no_body => {
                self.stream_error(out, "content-length with an empty body");
                return Ok(());
            }
            Some(Some(n)) => Some(n),
            None => None,
        };
        let h1 = &mut self.h1;
        h1.extend_from_slice(
            format!("HTTP/1.1 {status} {}\r\n", codec::reason_phrase(status)).as_bytes(),
        );
        Self::put_fields(h1, fields);
        if informational {
            h1.extend_from_slice(b"\r\n");
            return Ok(());
        }
        // The core closes the connection after a response whose server said GOAWAY.
        if self.goaway.is_some() {
            self.h1.extend_from_slice(b"connection: close\r\n");
        }
        let left = match (no_body, length) {
            (true, _) => 0,
            (false, Some(n)) => n,
            (false, None) if end => {
                self.h1.extend_from_slice(b"content-length: 0\r\n");
                0
            }
            (false, None) => {
                self.h1.extend_from_slice(b"transfer-encoding: chunked\r\n");
                self.h1.extend_from_slice(b"\r\n");
                self.resp = Resp::Body {
                    chunked: true,
                    left: 0,
                };
                return Ok(());
            }
        };
        self.h1.extend_from_slice(b"\r\n");
        if left == 0 {
            self.resp_done();
        } else {
            self.resp = Resp::Body {
                chunked: false,
                left,
            };
        }
        Ok(())
    }

    fn resp_done(&mut self) {
        self.resp = Resp::Done;
        if matches!(self.req, Req::Done) {
            self.req = Req::Idle;
        }
    }

    fn on_data(
        &mut self,
        stream: u32,
        end: bool,
        data: &[u8],
        flow: u32,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.conn_recv -= i64::from(flow);
        if self.conn_recv < 0 {
            return Err(self.conn_error(out, ErrorCode::FlowControl, "connection window exceeded"));
        }
        self.conn_unacked += flow;
        let half = self.opts.conn_window.max(frame::DEFAULT_WINDOW) / 2;
        if self.conn_unacked >= half.max(1) {
            frame::write_window_update(out, 0, self.conn_unacked);
            self.conn_recv += i64::from(self.conn_unacked);
            self.conn_unacked = 0;
        }
        if stream != self.stream || self.broken.is_some() {
            return Ok(());
        }
        self.stream_recv -= i64::from(flow);
        if self.stream_recv < 0 {
            frame::write_rst(out, stream, ErrorCode::FlowControl);
            self.broken = Some(Broken::Stream(Fault::Protocol, "stream window exceeded"));
            return Ok(());
        }
        match self.resp {
            Resp::Body { chunked: true, .. } => {
                codec::encode_chunk(&mut self.h1, data);
                if end {
                    self.h1.extend_from_slice(codec::LAST_CHUNK);
                    self.resp_done();
                }
            }
            Resp::Body {
                chunked: false,
                left,
            } => {
                let n = data.len() as u64;
                if n > left || (end && n < left) {
                    self.stream_error(out, "body length differs from content-length");
                    return Ok(());
                }
                self.h1.extend_from_slice(data);
                if n == left {
                    self.resp_done();
                } else {
                    self.resp = Resp::Body {
                        chunked: false,
                        left: left - n,
                    };
                }
            }
            Resp::Head => {
                self.stream_error(out, "DATA before the response head");
                return Ok(());
            }
            Resp::Idle | Resp::Done => {}
        }
        if !end && !matches!(self.resp, Resp::Done) {
            self.stream_unacked += flow;
            if self.stream_unacked >= (self.opts.stream_window / 2).max(1) {
                frame::write_window_update(out, stream, self.stream_unacked);
                self.stream_recv += i64::from(self.stream_unacked);
                self.stream_unacked = 0;
            }
        }
        Ok(())
    }

    /// One frame from the server.
    fn on_frame(&mut self, f: Frame<'_>, out: &mut Vec<u8>) -> io::Result<()> {
        if let Some((stream, end, n)) = self.block_of {
            let Frame::Continuation {
                stream: s,
                end_headers,
                block,
            } = f
            else {
                return Err(self.conn_error(out, ErrorCode::Protocol, "expected CONTINUATION"));
            };
            if s != stream {
                return Err(self.conn_error(
                    out,
                    ErrorCode::Protocol,
                    "CONTINUATION on another stream",
                ));
            }
            if n >= MAX_CONTINUATIONS || self.block.len() + block.len() > MAX_HEADER_BLOCK {
                return Err(self.conn_error(
                    out,
                    ErrorCode::EnhanceYourCalm,
                    "header block too large",
                ));
            }
            self.block.extend_from_slice(block);
            self.block_of = Some((stream, end, n + 1));
            if end_headers {
                self.block_of = None;
                self.on_block(stream, end, out)?;
            }
            return Ok(());
        }
        match f {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => {
                if stream >= self.next_id || stream % 2 == 0 {
                    return Err(self.conn_error(
                        out,
                        ErrorCode::Protocol,
                        "DATA on an idle stream",
                    ));
                }
                self.on_data(stream, end_stream, data, flow_len, out)
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                if stream >= self.next_id || stream % 2 == 0 {
                    return Err(self.conn_error(
                        out,
                        ErrorCode::Protocol,
                        "HEADERS on an idle stream",
                    ));
                }
                if block.len() > MAX_HEADER_BLOCK {
                    return Err(self.conn_error(
                        out,
                        ErrorCode::EnhanceYourCalm,
                        "header block too large",
                    ));
                }
                self.block.clear();
                self.block.extend_from_slice(block);
                if end_headers {
                    self.on_block(stream, end_stream, out)
                } else {
                    self.block_of = Some((stream, end_stream, 0));
                    Ok(())
                }
            }
            Frame::Continuation { .. } => {
                Err(self.conn_error(out, ErrorCode::Protocol, "CONTINUATION without HEADERS"))
            }
            Frame::RstStream { stream, code } => {
                if stream == self.stream && self.broken.is_none() && !self.exchange_done() {
                    if matches!(self.resp, Resp::Done) {
                        // The response is whole; the server wants no more of the request.
                        self.req = Req::Idle;
                    } else if code == ErrorCode::RefusedStream && matches!(self.resp, Resp::Head) {
                        // Not processed (RFC 9113 §8.7), e.g. past a server's stream limit
                        // while its last stream was closing: EOF, so the core retries it on a
                        // new connection as it does a stale pooled one.
                        self.refused = true;
                    } else {
                        self.broken = Some(Broken::Stream(Fault::RemoteReset, "remote reset"));
                    }
                }
                Ok(())
            }
            Frame::Settings { ack: true, .. } => Ok(()),
            Frame::Settings { ack: false, params } => {
                for s in frame::settings(params) {
                    match s {
                        Setting::InitialWindowSize(v) => {
                            let delta = i64::from(v) - i64::from(self.peer_initial_window);
                            self.peer_initial_window = v;
                            self.stream_send += delta;
                            if self.stream_send > i64::from(frame::MAX_WINDOW) {
                                return Err(self.conn_error(
                                    out,
                                    ErrorCode::FlowControl,
                                    "stream window above 2^31-1",
                                ));
                            }
                        }
                        Setting::MaxFrameSize(v) => self.peer_max_frame = v,
                        // Our encoder keeps no dynamic table; the others do not bind a
                        // client that opens one stream at a time.
                        _ => {}
                    }
                }
                frame::write_settings_ack(out);
                Ok(())
            }
            Frame::PushPromise { .. } => {
                Err(self.conn_error(out, ErrorCode::Protocol, "PUSH_PROMISE with push disabled"))
            }
            Frame::Ping { ack: false, data } => {
                frame::write_ping(out, data, true);
                Ok(())
            }
            Frame::GoAway { last_stream, .. } => {
                self.goaway = Some(self.goaway.map_or(last_stream, |l| l.min(last_stream)));
                Ok(())
            }
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.conn_send += i64::from(increment);
                if self.conn_send > i64::from(frame::MAX_WINDOW) {
                    return Err(self.conn_error(
                        out,
                        ErrorCode::FlowControl,
                        "connection window above 2^31-1",
                    ));
                }
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream == self.stream {
                    self.stream_send += i64::from(increment);
                    if self.stream_send > i64::from(frame::MAX_WINDOW) {
                        frame::write_rst(out, stream, ErrorCode::FlowControl);
                        self.broken = Some(Broken::Stream(
                            Fault::Protocol,
                            "stream window above 2^31-1",
                        ));
                    }
                }
                Ok(())
            }
            Frame::Ping { ack: true, .. } | Frame::Priority { .. } | Frame::Unknown { .. } => {
                Ok(())
            }
        }
    }
}

/// RFC 9113 §8.2 and §8.3 checks on a response's fields: lowercase names, no pseudo-header
/// after a regular one nor other than `:status`, no connection-specific header, values
/// without control characters (CR or LF would split the HTTP/1 head).
fn check_response_fields(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<(), &'static str> {
    let mut regular = false;
    let mut status_seen = false;
    for (n, v) in fields {
        if n.is_empty() {
            return Err("empty header name");
        }
        if n.starts_with(b":") {
            if regular || n != b":status" {
                return Err("misplaced or unknown pseudo-header");
            }
            if status_seen {
                return Err("duplicate :status");
            }
            status_seen = true;
        } else {
            regular = true;
            // RFC 9110's token characters, lower case: what an HTTP/1 head may carry.
            let ok = n.iter().all(|&c| {
                c.is_ascii_digit() || c.is_ascii_lowercase() || b"!#$%&'*+-.^_`|~".contains(&c)
            });
            if !ok {
                return Err("invalid header name");
            }
            let name = std::str::from_utf8(n).unwrap_or_default();
            if connection_specific(name, b"trailers") && name != "host" {
                return Err("connection-specific header");
            }
        }
        // RFC 9113 §8.2.1 forbids NUL, CR and LF; the other controls (but HTAB) are not
        // field-value characters either (RFC 9110 §5.5) and no HTTP/1 head may carry them,
        // so they are refused as nghttp2 refuses them for Envoy.
        if v.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            return Err("invalid header value");
        }
    }
    Ok(())
}

impl Transcode for Client {
    fn start(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(frame::PREFACE);
        let mut s = vec![
            Setting::EnablePush(0),
            Setting::InitialWindowSize(self.opts.stream_window),
        ];
        if self.opts.table_size != 4096 {
            s.push(Setting::HeaderTableSize(self.opts.table_size));
        }
        frame::write_settings(out, &s);
        if self.opts.conn_window > frame::DEFAULT_WINDOW {
            frame::write_window_update(out, 0, self.opts.conn_window - frame::DEFAULT_WINDOW);
        }
    }

    fn feed(&mut self, wire: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut used = 0;
        // Frames are taken only while our answers to them (PING and SETTINGS acks) fit
        // under OUT_HIGH: a server that floods them and never reads meets TCP backpressure,
        // then the layer's bound on unconsumed bytes, instead of growing our memory.
        while self.h1_at >= self.h1.len() && self.broken.is_none() && out.len() < OUT_HIGH {
            let rest = wire.get(used..).unwrap_or_default();
            let parsed = frame::parse(rest, frame::DEFAULT_MAX_FRAME);
            let (f, n) = match parsed {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => return Err(self.conn_error(out, e.code, e.why)),
            };
            used += n;
            self.on_frame(f, out)?;
        }
        if let Some(Broken::Conn(why)) = self.broken {
            log::debug!("HTTP/2 upstream connection error: {why}");
            return Err(Fault::Protocol.error());
        }
        Ok(used)
    }

    fn peer_eof(&mut self) {
        self.eof = true;
    }

    fn read_h1(&mut self, buf: &mut [u8], _out: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if buf.is_empty() {
            return Ok(None); // `Some(0)` would say EOF
        }
        let rest = self.h1.get(self.h1_at..).unwrap_or_default();
        if !rest.is_empty() {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.h1_at += n;
            if self.h1_at >= self.h1.len() {
                self.h1.clear();
                self.h1_at = 0;
            }
            return Ok(Some(n));
        }
        match self.broken {
            Some(Broken::Stream(fault, why)) => {
                log::debug!("HTTP/2 upstream stream {}: {why}", self.stream);
                return Err(fault.error());
            }
            Some(Broken::Conn(why)) => {
                log::debug!("HTTP/2 upstream connection error: {why}");
                return Err(Fault::Protocol.error());
            }
            None => {}
        }
        // A GOAWAY that leaves our stream unprocessed: EOF, as from a pooled HTTP/1
        // connection the server closed (the core retries the request on a new one).
        let unprocessed = self
            .goaway
            .is_some_and(|last| self.stream > last && !self.exchange_done());
        let idle_gone = self.goaway.is_some() && self.exchange_done();
        if self.eof || unprocessed || idle_gone || self.refused {
            return Ok(Some(0));
        }
        Ok(None)
    }

    fn write_h1(&mut self, h1: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        if let Some(Broken::Conn(why) | Broken::Stream(_, why)) = self.broken {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, why));
        }
        if matches!(self.req, Req::Idle) {
            if !matches!(self.resp, Resp::Done | Resp::Idle) {
                return Err(bad("HTTP/2 upstream: a request before the last response"));
            }
            self.open_stream()?;
        }
        let mut used = 0;
        if matches!(self.req, Req::Head(_)) {
            used = self.take_head(h1, out)?;
        }
        let rest = h1.get(used..).unwrap_or_default();
        self.blocked = false;
        match &mut self.req {
            Req::Length(left) => {
                let left = *left;
                let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let piece = rest.get(..take).unwrap_or_default();
                // END_STREAM rides on the last piece only if the window lets all of it go.
                let n = self.send_data(out, piece, piece.len() as u64 == left);
                let left = left - n as u64;
                self.req = if left == 0 {
                    Req::Done
                } else {
                    Req::Length(left)
                };
                used += n;
                self.blocked = n < piece.len();
            }
            Req::Chunked(dec) => {
                let room = self.conn_send.min(self.stream_send).max(0) as usize;
                let mut data = Vec::new();
                let mut dec2 = dec.clone();
                let n = dec2
                    .decode(rest, room, |d| data.extend_from_slice(d))
                    .map_err(|e| bad(e.0))?;
                let done = dec2.is_done();
                *dec = dec2;
                self.send_data(out, &data, done);
                if done {
                    self.req = Req::Done;
                }
                used += n;
                self.blocked = n < rest.len();
            }
            Req::Idle | Req::Head(_) | Req::Done => {}
        }
        if matches!(self.req, Req::Done) && matches!(self.resp, Resp::Done) {
            self.req = Req::Idle;
        }
        Ok(used)
    }

    fn write_blocked(&self) -> bool {
        self.blocked && self.conn_send.min(self.stream_send) <= 0
    }

    fn reusable(&self) -> bool {
        !self.eof
            && !self.refused
            && self.broken.is_none()
            && self.goaway.is_none()
            && self.next_id < LAST_STREAM_ID
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            frame::write_goaway(out, 0, ErrorCode::NoError);
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
