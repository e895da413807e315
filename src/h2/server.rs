//! The server-role HTTP/2 transcoder: one client connection's frames in, the HTTP/1.1 request
//! bytes the exchange core reads out; the core's HTTP/1.1 response bytes in, frames out. No
//! I/O, no clock: the byte-stream layer under `tls::Stream` moves the bytes.
//!
//! One stream at a time (we advertise SETTINGS_MAX_CONCURRENT_STREAMS 1), so the core serves
//! an HTTP/2 connection as it serves a keep-alive HTTP/1.1 connection: request, response,
//! next request. A stream without a body opened while another runs waits its turn (at most 32
//! streams and 128 KiB of heads: clients such as nghttp open several before our SETTINGS
//! reach them); one with a body, or past those bounds, is refused (RST_STREAM
//! REFUSED_STREAM: RFC 9113 §5.1.2 lets the client retry it). Every buffer is bounded: peer bytes are taken
//! only while the request bytes waiting for the core are few, the core's bytes only while the
//! frames waiting for the socket are few, so TCP backpressure still works both ways.

use std::io;

use super::frame::{self, ConnError, ErrorCode, Frame, Setting};
use super::hpack::{Decoder, Encoder, HpackError};
use super::Transcode;
use crate::http::codec::{self, ChunkedDecoder, Framing};

/// Request bytes for the core past which no more peer bytes are taken.
const H1_HIGH: usize = 64 * 1024;
/// Frames waiting for the socket past which no more peer frames are taken: a client that
/// floods PINGs (or SETTINGS) without reading the answers meets TCP backpressure.
const OUT_HIGH: usize = 256 * 1024;
/// Largest response head the core writes (its own limit for upstream heads).
const MAX_RESPONSE_HEAD: usize = crate::http::core::MAX_RESPONSE_HEAD + 1024;
/// CONTINUATION frames one header block may have (a flood of tiny ones costs a parse each).
const MAX_CONTINUATIONS: usize = 64;
/// Streams without a body opened while another runs that wait for their turn (a client opens
/// several before our SETTINGS reach it), and the request-head bytes they may hold; past
/// either, a stream is refused (REFUSED_STREAM: the client retries it).
const MAX_QUEUED: usize = 32;
const MAX_QUEUED_BYTES: usize = 128 * 1024;

/// What the connection manager configures for its HTTP/2 clients (`http2_protocol_options`
/// and the header limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (`max_request_headers_kb`).
    pub max_header_list: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise (`initial_stream_window_size`).
    pub stream_window: u32,
    /// The connection window we open to (`initial_connection_window_size`).
    pub conn_window: u32,
    /// SETTINGS_HEADER_TABLE_SIZE we advertise: the decoder's table limit (`hpack_table_size`).
    pub header_table: u32,
    /// `stream_error_on_invalid_http_messaging`: a malformed request resets only its stream;
    /// off (Envoy's default), the whole connection ends with GOAWAY(PROTOCOL_ERROR).
    pub stream_error_on_invalid: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_header_list: 60 * 1024,
            stream_window: frame::DEFAULT_WINDOW,
            conn_window: frame::DEFAULT_WINDOW,
            header_table: 4096,
            stream_error_on_invalid: false,
        }
    }
}

/// The request side of the running stream.
#[derive(Debug)]
struct Active {
    id: u32,
    /// The client sent END_STREAM (or the request is otherwise over for the core).
    req_done: bool,
    /// The request body goes to the core chunked (no content-length).
    chunked: bool,
    /// The request's content-length, and the DATA bytes seen so far.
    length: Option<u64>,
    received: u64,
    /// The client's window for our DATA on this stream (may go negative: §6.9.2).
    send_window: i64,
    /// The core's response, being translated.
    resp: Resp,
    head_request: bool,
    /// We sent END_STREAM (or reset the stream).
    resp_done: bool,
}

/// Where the core's response for the running stream is.
#[derive(Debug)]
enum Resp {
    /// Collecting a head (interim 1xx heads go out as they come).
    Head(Vec<u8>),
    Length(u64),
    Chunked(ChunkedDecoder),
    /// No framing: the body ends when the core shuts its side down.
    UntilClose,
    Done,
}

/// A stream waiting for the running one to end: its whole request (a head, no body).
#[derive(Debug)]
struct Queued {
    id: u32,
    head: Vec<u8>,
    head_request: bool,
    /// WINDOW_UPDATE increments the client sent for it meanwhile.
    window_credit: i64,
}

/// A header block being collected (HEADERS + CONTINUATION).
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
    continuations: usize,
}

/// One HTTP/2 client connection, server side.
pub struct Server {
    opts: Options,
    /// Bytes of the client preface matched so far (the connection starts with it).
    preface: usize,
    /// The client's first SETTINGS arrived (it must be the first frame).
    settings_seen: bool,
    h1: Vec<u8>,
    /// Bytes of `h1` the core has read.
    h1_at: usize,
    /// Frames for the socket, moved to the layer's output at the end of each call.
    wire: Vec<u8>,
    decoder: Decoder,
    encoder: Encoder,
    block: Option<Block>,
    /// Highest stream id the client opened.
    last_stream: u32,
    /// The last stream handed to the core (what a GOAWAY says was or may be processed).
    last_served: u32,
    active: Option<Active>,
    queue: std::collections::VecDeque<Queued>,
    /// The client's settings that bind what we send.
    peer_max_frame: u32,
    peer_initial_window: i64,
    peer_conn_window: i64,
    /// Flow-control bytes of DATA received and not yet given back with WINDOW_UPDATE.
    unacked_conn: u32,
    unacked_stream: u32,
    /// GOAWAY went out: no new stream is served; the connection ends once the active one does.
    goaway_sent: bool,
    /// The client sent GOAWAY: it opens no more streams.
    goaway_got: bool,
    /// The core's response said `Connection: close`: GOAWAY after this stream.
    close_after: bool,
    /// No more request bytes for the core: `read` reports EOF once `h1` is read.
    h1_eof: bool,
    /// The client reset the running stream: the core must abandon it (`read` fails).
    aborted: bool,
    /// A connection error: the GOAWAY is queued; nothing more is read or translated.
    dead: bool,
    /// The last response write was refused for want of window.
    blocked: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("last_stream", &self.last_stream)
            .field("active", &self.active.as_ref().map(|a| a.id))
            .field("dead", &self.dead)
            .finish()
    }
}

/// Request headers an HTTP/2 request may not carry (RFC 9113 §8.2.2).
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

/// A token character (RFC 9110 §5.6.2), lowercase only where a field name needs it.
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// A field value we can put in an HTTP/1 head: no CR, LF or NUL (they would split the head),
/// no leading or trailing whitespace (RFC 9113 §8.2.1).
fn valid_value(v: &[u8]) -> bool {
    // Control characters other than HTAB: RFC 9110 §5.5 field values, as the core's HTTP/1
    // parser (httparse) checks them (found by the h2_server fuzz target).
    !v.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
        && !v.first().is_some_and(|c| *c == b' ' || *c == b'\t')
        && !v.last().is_some_and(|c| *c == b' ' || *c == b'\t')
}

/// A request target we can put in a request line: visible ASCII only.
fn valid_target(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&c| c > 0x20 && c < 0x7f)
}

/// Why a request's header block is malformed (RFC 9113 §8.1.1): a stream error.
type Malformed = &'static str;

/// The HTTP/1.1 request head for a decoded field list, appended to `out`. `end_stream`: the
/// HEADERS frame ended the stream (no body). Returns (content-length, chunked, is HEAD).
fn request_head(
    fields: &[(Vec<u8>, Vec<u8>)],
    end_stream: bool,
    out: &mut Vec<u8>,
) -> Result<(Option<u64>, bool, bool), Malformed> {
    let (mut method, mut scheme, mut authority, mut path) = (None, None, None, None);
    let mut regular = false;
    for (n, v) in fields {
        let Some(pseudo) = n.strip_prefix(b":") else {
            regular = true;
            continue;
        };
        if regular {
            return Err("pseudo-header after a regular header");
        }
        let slot = match pseudo {
            b"method" => &mut method,
            b"scheme" => &mut scheme,
            b"authority" => &mut authority,
            b"path" => &mut path,
            _ => return Err("unknown or response pseudo-header"),
        };
        if slot.replace(v.as_slice()).is_some() {
            return Err("duplicate pseudo-header");
        }
    }
    let method = method.ok_or("missing :method")?;
    if method.is_empty() || !method.iter().all(|&c| tchar(c)) {
        return Err("invalid :method");
    }
    let connect = method == b"CONNECT";
    let target = if connect {
        // RFC 9113 §8.5: :authority only.
        if scheme.is_some() || path.is_some() {
            return Err("CONNECT with :scheme or :path");
        }
        authority.ok_or("CONNECT without :authority")?
    } else {
        let s = scheme.ok_or("missing :scheme")?;
        if s.is_empty() || !s.iter().all(|&c| tchar(c)) {
            return Err("invalid :scheme");
        }
        let p = path.ok_or("missing :path")?;
        if !(p.starts_with(b"/") || (p == b"*" && method == b"OPTIONS")) {
            return Err("invalid :path");
        }
        p
    };
    if !valid_target(target) {
        return Err("invalid request target");
    }
    if let Some(a) = authority {
        // The core's own rule for a Host (found by the h2_server fuzz target).
        let host_ok = std::str::from_utf8(a).is_ok_and(codec::valid_authority);
        if !valid_target(a) || a.contains(&b'@') || !host_ok {
            return Err("invalid :authority");
        }
    }
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        codec::put_header(out, "host", a);
    }
    let mut length: Option<u64> = None;
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut host_seen = false;
    for (n, v) in fields.iter().filter(|(n, _)| !n.starts_with(b":")) {
        if n.is_empty() || !n.iter().all(|&c| tchar(c) && !c.is_ascii_uppercase()) {
            return Err("invalid or uppercase header name");
        }
        if !valid_value(v) {
            return Err("invalid header value");
        }
        if connection_specific(n) {
            return Err("connection-specific header");
        }
        match n.as_slice() {
            b"te" if v.as_slice() != b"trailers" => return Err("te other than trailers"),
            b"host" if authority.is_some() => continue, // :authority wins (RFC 9113 §8.3.1)
            b"host" => {
                // Two would be two Hosts to the core, which refuses them (as for HTTP/1).
                if host_seen {
                    return Err("multiple host headers");
                }
                host_seen = true;
                // Without :authority the Host goes to the core: its own rule, checked here so
                // the request is malformed (a stream error), not a head the core refuses.
                let ok = std::str::from_utf8(v)
                    .ok()
                    .is_some_and(|h| codec::valid_authority(h.trim_matches([' ', '\t'])));
                if !ok {
                    return Err("invalid host");
                }
            }
            b"cookie" => {
                // Split crumbs go back together for HTTP/1 (RFC 9113 §8.2.3).
                cookies.push(v);
                continue;
            }
            b"content-length" => {
                let l = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or("invalid content-length")?;
                if length.is_some_and(|old| old != l) {
                    return Err("conflicting content-length");
                }
                if length.is_some() {
                    continue;
                }
                length = Some(l);
            }
            _ => {}
        }
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if authority.is_none() && !host_seen {
        // The core needs a Host, as Envoy's connection manager does (`missing_host_header`).
        return Err("neither :authority nor host");
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        for (i, c) in cookies.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(c);
        }
        out.extend_from_slice(b"\r\n");
    }
    if end_stream && length.is_some_and(|l| l > 0) {
        return Err("content-length with an empty body");
    }
    let chunked = !end_stream && length.is_none() && !connect;
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((length, chunked, method == b"HEAD"))
}

impl Server {
    /// A connection whose client preface is still to come.
    pub fn new(opts: Options) -> Server {
        Server {
            opts,
            preface: 0,
            settings_seen: false,
            h1: Vec::new(),
            h1_at: 0,
            wire: Vec::new(),
            decoder: Decoder::new(opts.header_table as usize),
            encoder: Encoder::new(),
            block: None,
            last_stream: 0,
            last_served: 0,
            active: None,
            queue: std::collections::VecDeque::new(),
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            peer_conn_window: i64::from(frame::DEFAULT_WINDOW),
            unacked_conn: 0,
            unacked_stream: 0,
            goaway_sent: false,
            goaway_got: false,
            close_after: false,
            h1_eof: false,
            aborted: false,
            dead: false,
            blocked: false,
        }
    }

    /// Our SETTINGS (and the connection window beyond the default).
    fn settings(&mut self) {
        let o = self.opts;
        frame::write_settings(
            &mut self.wire,
            &[
                Setting::MaxConcurrentStreams(1),
                Setting::EnablePush(0),
                Setting::InitialWindowSize(o.stream_window),
                Setting::HeaderTableSize(o.header_table),
                Setting::MaxHeaderListSize(o.max_header_list),
            ],
        );
        if o.conn_window > frame::DEFAULT_WINDOW {
            frame::write_window_update(&mut self.wire, 0, o.conn_window - frame::DEFAULT_WINDOW);
        }
    }

    // ---- the client's side ----

    /// Consumes the preface and whole frames from the front of `wire` while the core has
    /// room; returns the bytes used.
    fn take_frames(&mut self, wire: &[u8], queued: usize) -> Result<usize, ConnError> {
        let mut at = 0;
        if self.preface < frame::PREFACE.len() {
            let want = frame::PREFACE.get(self.preface..).unwrap_or_default();
            let n = want.len().min(wire.len());
            if wire.get(..n) != want.get(..n) {
                return Err(ConnError {
                    code: ErrorCode::Protocol,
                    why: "bad connection preface",
                });
            }
            self.preface += n;
            at = n;
            if self.preface < frame::PREFACE.len() {
                return Ok(at);
            }
        }
        while !self.dead
            && self.h1.len() - self.h1_at < H1_HIGH
            && queued + self.wire.len() < OUT_HIGH
        {
            let rest = wire.get(at..).unwrap_or_default();
            let Some((f, used)) = frame::parse(rest, frame::DEFAULT_MAX_FRAME)? else {
                break;
            };
            at += used;
            self.on_frame(f)?;
        }
        Ok(at)
    }

    fn on_frame(&mut self, f: Frame<'_>) -> Result<(), ConnError> {
        let proto = |why| ConnError {
            code: ErrorCode::Protocol,
            why,
        };
        if !self.settings_seen && !matches!(f, Frame::Settings { ack: false, .. }) {
            return Err(proto("first frame is not SETTINGS"));
        }
        if let Some(b) = &self.block {
            // A header block is atomic (RFC 9113 §6.10).
            match &f {
                Frame::Continuation { stream, .. } if *stream == b.stream => {}
                _ => return Err(proto("frame inside a header block")),
            }
        }
        match f {
            Frame::Settings { ack: true, .. } => Ok(()),
            Frame::Settings { ack: false, params } => {
                self.settings_seen = true;
                for s in frame::settings(params) {
                    match s {
                        Setting::InitialWindowSize(v) => {
                            let delta = i64::from(v) - self.peer_initial_window;
                            self.peer_initial_window = i64::from(v);
                            if let Some(a) = &mut self.active {
                                a.send_window += delta;
                                if a.send_window > i64::from(frame::MAX_WINDOW) {
                                    return Err(ConnError {
                                        code: ErrorCode::FlowControl,
                                        why: "stream window above 2^31-1",
                                    });
                                }
                            }
                        }
                        Setting::MaxFrameSize(v) => self.peer_max_frame = v,
                        _ => {}
                    }
                }
                frame::write_settings_ack(&mut self.wire);
                Ok(())
            }
            Frame::Ping { ack, data } => {
                if !ack {
                    frame::write_ping(&mut self.wire, data, true);
                }
                Ok(())
            }
            Frame::GoAway { .. } => {
                self.goaway_got = true;
                if self.active.is_none() {
                    self.h1_eof = true;
                }
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                let max = i64::from(frame::MAX_WINDOW);
                if stream == 0 {
                    self.peer_conn_window += i64::from(increment);
                    if self.peer_conn_window > max {
                        return Err(ConnError {
                            code: ErrorCode::FlowControl,
                            why: "connection window above 2^31-1",
                        });
                    }
                } else if let Some(a) = self.active.as_mut().filter(|a| a.id == stream) {
                    a.send_window += i64::from(increment);
                    if a.send_window > max {
                        // A stream error (§6.9.1); with one stream, the connection ends.
                        return Err(ConnError {
                            code: ErrorCode::FlowControl,
                            why: "stream window above 2^31-1",
                        });
                    }
                } else if let Some(q) = self.queue.iter_mut().find(|q| q.id == stream) {
                    q.window_credit += i64::from(increment);
                    if self.peer_initial_window + q.window_credit > max {
                        return Err(ConnError {
                            code: ErrorCode::FlowControl,
                            why: "stream window above 2^31-1",
                        });
                    }
                } else if stream > self.last_stream {
                    return Err(proto("WINDOW_UPDATE on an idle stream"));
                }
                Ok(())
            }
            Frame::RstStream { stream, .. } => {
                if stream > self.last_stream {
                    return Err(proto("RST_STREAM on an idle stream"));
                }
                self.queue.retain(|q| q.id != stream);
                if self
                    .active
                    .as_ref()
                    .is_some_and(|a| a.id == stream && !a.resp_done)
                {
                    // The core abandons the request (its upstream too), as when an HTTP/1
                    // client resets: the connection ends (GOAWAY NO_ERROR), the driver reads
                    // the error even while it reads no request bytes.
                    self.aborted = true;
                    return Err(ConnError {
                        code: ErrorCode::NoError,
                        why: "the client reset its stream",
                    });
                }
                Ok(())
            }
            // Priority signals are advisory (RFC 9113 §5.3.2); one stream has nothing to order.
            Frame::Priority { .. } => Ok(()),
            Frame::PushPromise { .. } => Err(proto("PUSH_PROMISE from a client")),
            Frame::Unknown { .. } => Ok(()),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                if stream % 2 == 0 {
                    return Err(proto("HEADERS on an even stream"));
                }
                self.block = Some(Block {
                    stream,
                    end_stream,
                    bytes: block.to_vec(),
                    continuations: 0,
                });
                if end_headers {
                    self.header_block()
                } else {
                    self.check_block()
                }
            }
            Frame::Continuation {
                stream: _,
                end_headers,
                block,
            } => {
                let Some(b) = &mut self.block else {
                    return Err(proto("CONTINUATION without HEADERS"));
                };
                b.bytes.extend_from_slice(block);
                b.continuations += 1;
                if end_headers {
                    self.header_block()
                } else {
                    self.check_block()
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len),
        }
    }

    /// A header block still open must stay within bounds.
    fn check_block(&self) -> Result<(), ConnError> {
        match &self.block {
            Some(b)
                if b.continuations > MAX_CONTINUATIONS
                    || b.bytes.len() > self.opts.max_header_list as usize + 1024 =>
            {
                Err(ConnError {
                    code: ErrorCode::EnhanceYourCalm,
                    why: "header block too large",
                })
            }
            _ => Ok(()),
        }
    }

    /// A whole header block: a new request, the request's trailers, or one to refuse.
    fn header_block(&mut self) -> Result<(), ConnError> {
        self.check_block()?;
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        // Decoded always: the HPACK table must follow every block, refused ones too.
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut too_many = false;
        let decoded =
            self.decoder
                .decode(&b.bytes, self.opts.max_header_list as usize, &mut |n, v| {
                    if fields.len() < codec::MAX_HEADERS + 8 {
                        fields.push((n.to_vec(), v.to_vec()));
                    } else {
                        too_many = true;
                    }
                });
        let too_large = match decoded {
            Ok(()) => false,
            // Decoded to its end all the same: the table is in step; only the stream fails.
            Err(HpackError::ListTooLarge) => true,
            Err(e) => {
                log::debug!("h2 client: header block: {e}");
                return Err(ConnError {
                    code: ErrorCode::Compression,
                    why: "header block does not decode",
                });
            }
        };
        if let Some(a) = self.active.as_mut().filter(|a| a.id == b.stream) {
            // Trailers: they end the request (RFC 9113 §8.1).
            if a.req_done || !b.end_stream {
                return Err(ConnError {
                    code: ErrorCode::Protocol,
                    why: "HEADERS on a stream whose request ended",
                });
            }
            if fields.iter().any(|(n, _)| n.starts_with(b":")) {
                // Trailers carry no pseudo-header (RFC 9113 §8.1): malformed, as a body
                // that breaks its content-length is.
                let id = a.id;
                return self.malformed_body(id);
            }
            return self.end_request();
        }
        if b.stream <= self.last_stream {
            return Err(ConnError {
                code: ErrorCode::Protocol,
                why: "HEADERS on a closed stream",
            });
        }
        self.last_stream = b.stream;
        if self.goaway_sent || self.goaway_got {
            return Ok(()); // past our GOAWAY's last stream: ignored (§6.8)
        }
        let busy = self.active.is_some() || !self.queue.is_empty();
        let queued_bytes: usize = self.queue.iter().map(|q| q.head.len()).sum();
        if busy && (!b.end_stream || self.queue.len() >= MAX_QUEUED) {
            // A body would have to wait in memory too: the client sends it again later.
            frame::write_rst(&mut self.wire, b.stream, ErrorCode::RefusedStream);
            return Ok(());
        }
        if too_large {
            return self.malformed(b.stream, "header list too large");
        }
        let mut head = Vec::new();
        match request_head(&fields, b.end_stream, &mut head) {
            Ok(_) if too_many => self.malformed(b.stream, "too many header fields"),
            Ok(_) if busy && queued_bytes + head.len() > MAX_QUEUED_BYTES => {
                frame::write_rst(&mut self.wire, b.stream, ErrorCode::RefusedStream);
                Ok(())
            }
            Ok((_, _, head_request)) if busy => {
                self.queue.push_back(Queued {
                    id: b.stream,
                    head,
                    head_request,
                    window_credit: 0,
                });
                Ok(())
            }
            Ok((length, chunked, head_request)) => {
                self.h1.extend_from_slice(&head);
                self.start(b.stream, b.end_stream, length, chunked, head_request, 0);
                Ok(())
            }
            Err(why) => self.malformed(b.stream, why),
        }
    }

    /// Hands stream `id` to the core (its request head is in `h1` already).
    fn start(
        &mut self,
        id: u32,
        req_done: bool,
        length: Option<u64>,
        chunked: bool,
        head_request: bool,
        window_credit: i64,
    ) {
        self.last_served = id;
        self.active = Some(Active {
            id,
            req_done,
            chunked,
            length,
            received: 0,
            send_window: self.peer_initial_window + window_credit,
            resp: Resp::Head(Vec::new()),
            head_request,
            resp_done: false,
        });
    }

    /// A malformed request (RFC 9113 §8.1.1): a stream error, or with Envoy's default
    /// (`stream_error_on_invalid_http_messaging` off) the end of the connection.
    fn malformed(&mut self, stream: u32, why: &'static str) -> Result<(), ConnError> {
        log::debug!("h2 client: malformed request on stream {stream}: {why}");
        if self.opts.stream_error_on_invalid {
            frame::write_rst(&mut self.wire, stream, ErrorCode::Protocol);
            return Ok(());
        }
        Err(ConnError {
            code: ErrorCode::Protocol,
            why,
        })
    }

    fn on_data(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: u32,
    ) -> Result<(), ConnError> {
        // Flow control counts every DATA frame, whichever stream (RFC 9113 §6.9).
        self.unacked_conn = self.unacked_conn.saturating_add(flow_len);
        if self.unacked_conn > self.opts.conn_window {
            return Err(ConnError {
                code: ErrorCode::FlowControl,
                why: "DATA past the connection window",
            });
        }
        let Some(a) = self.active.as_mut().filter(|a| a.id == stream) else {
            if stream > self.last_stream {
                return Err(ConnError {
                    code: ErrorCode::Protocol,
                    why: "DATA on an idle stream",
                });
            }
            // A refused or finished stream: its bytes are given back at once.
            frame::write_rst(&mut self.wire, stream, ErrorCode::StreamClosed);
            self.give_back();
            return Ok(());
        };
        if a.req_done {
            return Err(ConnError {
                code: ErrorCode::StreamClosed,
                why: "DATA after END_STREAM",
            });
        }
        self.unacked_stream = self.unacked_stream.saturating_add(flow_len);
        if self.unacked_stream > self.opts.stream_window {
            return Err(ConnError {
                code: ErrorCode::FlowControl,
                why: "DATA past the stream window",
            });
        }
        a.received = a.received.saturating_add(data.len() as u64);
        if a.length.is_some_and(|l| a.received > l) {
            let id = a.id;
            return self.malformed_body(id);
        }
        if a.chunked {
            codec::encode_chunk(&mut self.h1, data);
        } else {
            self.h1.extend_from_slice(data);
        }
        if end_stream {
            return self.end_request();
        }
        Ok(())
    }

    /// The running request's body does not match its content-length: the stream is reset
    /// and the core, which cannot be told mid-body, sees the connection end.
    fn malformed_body(&mut self, id: u32) -> Result<(), ConnError> {
        frame::write_rst(&mut self.wire, id, ErrorCode::Protocol);
        self.aborted = true;
        self.h1_eof = true;
        self.goaway(ErrorCode::NoError);
        Ok(())
    }

    /// END_STREAM on the running request.
    fn end_request(&mut self) -> Result<(), ConnError> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        a.req_done = true;
        if a.length.is_some_and(|l| l != a.received) {
            let id = a.id;
            return self.malformed_body(id);
        }
        if a.chunked {
            self.h1.extend_from_slice(codec::LAST_CHUNK);
        } else if a.length.is_none() {
            // A CONNECT tunnel (the only request with a body and neither framing): END_STREAM
            // is the client's half-close, which the core passes on to the upstream as for an
            // HTTP/1 tunnel's FIN (RFC 9113 §8.5). Without it the upstream never learnt.
            self.h1_eof = true;
        }
        self.maybe_close_stream();
        Ok(())
    }

    /// Gives DATA bytes back with WINDOW_UPDATE once the core has read most of what is
    /// waiting, in batches of half a window (not one update per frame).
    fn give_back(&mut self) {
        let waiting = self.h1.len() - self.h1_at;
        if waiting > H1_HIGH / 2 {
            return;
        }
        if self.unacked_conn >= self.opts.conn_window / 2 || self.active.is_none() {
            if self.unacked_conn > 0 {
                frame::write_window_update(&mut self.wire, 0, self.unacked_conn);
            }
            self.unacked_conn = 0;
        }
        let Some(a) = self.active.as_ref().filter(|a| !a.req_done) else {
            self.unacked_stream = 0;
            return;
        };
        if self.unacked_stream >= self.opts.stream_window / 2 {
            frame::write_window_update(&mut self.wire, a.id, self.unacked_stream);
            self.unacked_stream = 0;
        }
    }

    // ---- the core's side ----

    /// Request bytes for the core (see `Transcode::read_h1`); an empty `buf` asks whether
    /// anything waits (`Some(0)`: bytes or EOF) without taking it.
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let waiting = self.h1.get(self.h1_at..).unwrap_or_default();
        if waiting.is_empty() {
            if self.aborted {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            return Ok((self.h1_eof || self.dead).then_some(0));
        }
        let n = waiting.len().min(buf.len());
        buf[..n].copy_from_slice(&waiting[..n]);
        self.h1_at += n;
        if self.h1_at == self.h1.len() {
            self.h1.clear();
            self.h1_at = 0;
        }
        self.give_back();
        Ok(Some(n))
    }

    /// Response bytes from the core; returns how many were taken (0: the client's window is
    /// closed).
    fn write_from(&mut self, buf: &[u8]) -> usize {
        if self.dead || self.aborted {
            return buf.len(); // nobody to send it to: the core must not stall
        }
        let mut taken = 0;
        while taken < buf.len() {
            let rest = buf.get(taken..).unwrap_or_default();
            match self.translate(rest) {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(why) => {
                    log::debug!("h2 client: response not translatable: {why}");
                    self.internal_error();
                    return buf.len();
                }
            }
        }
        self.blocked = taken == 0 && !buf.is_empty();
        taken
    }

    /// Translates the front of `buf`; returns the bytes used.
    fn translate(&mut self, buf: &[u8]) -> Result<usize, &'static str> {
        let max_frame = self.peer_max_frame;
        let Some(a) = self.active.as_mut() else {
            // No stream: a response to nothing (the core answering a request it could not
            // parse would have failed earlier). Dropped.
            return Ok(buf.len());
        };
        match &mut a.resp {
            Resp::Head(head) => {
                let old = head.len();
                let take = buf.len().min(MAX_RESPONSE_HEAD.saturating_sub(old) + 1);
                head.extend_from_slice(buf.get(..take).unwrap_or_default());
                let mut slots = codec::header_slots();
                let parsed = codec::parse_response(head, &mut slots, a.head_request);
                let r = match parsed {
                    Ok(None) if head.len() > MAX_RESPONSE_HEAD => return Err("head too large"),
                    Ok(None) => return Ok(take),
                    Err(_) => return Err("malformed head"),
                    Ok(Some(r)) => r,
                };
                let used = r.head_len - old;
                let interim = (100..200).contains(&r.status);
                if r.status == 101 {
                    return Err("101 cannot go over HTTP/2");
                }
                let nominated = codec::Nominated::of(r.headers);
                let close = !r.keep_alive;
                let status = r.status.to_string();
                let mut fields: Vec<(&[u8], &[u8])> = vec![(b":status", status.as_bytes())];
                // Connection-specific fields stay behind (RFC 9113 §8.2.2); names go lower case.
                let kept = |h: &&httparse::Header<'_>| {
                    let n = h.name.to_ascii_lowercase();
                    !connection_specific(n.as_bytes()) && n != "te" && !nominated.names(h.name)
                };
                let lower: Vec<Vec<u8>> = r
                    .headers
                    .iter()
                    .filter(kept)
                    .map(|h| h.name.to_ascii_lowercase().into_bytes())
                    .collect();
                for (n, h) in lower.iter().zip(r.headers.iter().filter(kept)) {
                    fields.push((n.as_slice(), h.value));
                }
                let end = !interim && r.framing == Framing::None;
                let mut block = Vec::new();
                self.encoder.encode(&mut fields.into_iter(), &mut block);
                frame::write_headers(&mut self.wire, a.id, &block, end, max_frame);
                if !interim {
                    self.close_after |= close;
                    a.resp = match r.framing {
                        Framing::None => Resp::Done,
                        Framing::Length(0) => {
                            frame::write_data(&mut self.wire, a.id, &[], true);
                            Resp::Done
                        }
                        Framing::Length(n) => Resp::Length(n),
                        Framing::Chunked => Resp::Chunked(ChunkedDecoder::new()),
                        Framing::UntilClose => Resp::UntilClose,
                    };
                    if matches!(a.resp, Resp::Done) {
                        self.response_done();
                    }
                } else {
                    a.resp = Resp::Head(Vec::new());
                }
                Ok(used)
            }
            Resp::Length(left) => {
                let room = Self::window(self.peer_conn_window, a.send_window, max_frame);
                let n = (*left).min(buf.len() as u64).min(room as u64) as usize;
                if n == 0 {
                    return Ok(0);
                }
                *left -= n as u64;
                let end = *left == 0;
                frame::write_data(&mut self.wire, a.id, &buf[..n], end);
                a.send_window -= n as i64;
                self.peer_conn_window -= n as i64;
                if end {
                    a.resp = Resp::Done;
                    self.response_done();
                }
                Ok(n)
            }
            Resp::Chunked(dec) => {
                let room = Self::window(self.peer_conn_window, a.send_window, max_frame);
                if room == 0 && dec.data_remaining() > 0 {
                    return Ok(0);
                }
                let mut data = Vec::new();
                let used = dec
                    .decode(buf, room, |d| data.extend_from_slice(d))
                    .map_err(|e| e.0)?;
                let end = dec.is_done();
                if !data.is_empty() || end {
                    frame::write_data(&mut self.wire, a.id, &data, end);
                    a.send_window -= data.len() as i64;
                    self.peer_conn_window -= data.len() as i64;
                }
                if end {
                    a.resp = Resp::Done;
                    self.response_done();
                }
                Ok(used)
            }
            Resp::UntilClose => {
                let room = Self::window(self.peer_conn_window, a.send_window, max_frame);
                let n = buf.len().min(room);
                if n == 0 {
                    return Ok(0);
                }
                frame::write_data(&mut self.wire, a.id, &buf[..n], false);
                a.send_window -= n as i64;
                self.peer_conn_window -= n as i64;
                Ok(n)
            }
            Resp::Done => Ok(buf.len()), // nothing follows a response on its stream
        }
    }

    /// DATA bytes we may send now: both windows and the client's frame size.
    fn window(conn: i64, stream: i64, max_frame: u32) -> usize {
        let w = conn.min(stream).min(i64::from(max_frame));
        usize::try_from(w).unwrap_or(0)
    }

    /// Our side closes (the core shut down, or a drain): a body running until close ends
    /// here; GOAWAY; the running stream, if its response is under way, still completes
    /// (a drain's GOAWAY comes first, the core's shutdown after its last response).
    fn shut(&mut self) {
        if let Some(a) = self.active.as_mut() {
            if matches!(a.resp, Resp::UntilClose) {
                frame::write_data(&mut self.wire, a.id, &[], true);
                a.resp = Resp::Done;
                self.response_done();
            }
        }
        self.goaway(ErrorCode::NoError);
        self.close_after = true;
        if self.active.is_none() {
            self.h1_eof = true;
        }
    }

    /// The response is complete on the wire.
    fn response_done(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.resp_done = true;
        }
        self.maybe_close_stream();
    }

    /// The stream closes when both sides ended it. A response complete before its request
    /// (an early answer) resets the request side with NO_ERROR (RFC 9113 §8.1); the core,
    /// still expecting the body, sees the connection end.
    fn maybe_close_stream(&mut self) {
        let Some(a) = self.active.as_ref() else {
            return;
        };
        if !a.resp_done {
            return;
        }
        if !a.req_done {
            frame::write_rst(&mut self.wire, a.id, ErrorCode::NoError);
            self.h1_eof = true;
            self.goaway(ErrorCode::NoError);
        }
        self.active = None;
        self.unacked_stream = 0;
        if self.close_after || self.h1_eof {
            // The core closes after this response: the waiting streams are refused (the
            // client retries them elsewhere), the connection ends.
            self.goaway(ErrorCode::NoError);
            self.h1_eof = true;
        } else if let Some(q) = self.queue.pop_front() {
            self.h1.extend_from_slice(&q.head);
            self.start(q.id, true, None, false, q.head_request, q.window_credit);
        } else if self.goaway_got {
            self.goaway(ErrorCode::NoError);
            self.h1_eof = true;
        }
        self.give_back();
    }

    /// Queues GOAWAY once, naming the last stream handed to the core: streams past it
    /// (waiting ones too, refused here) were not processed, and the client retries them.
    fn goaway(&mut self, code: ErrorCode) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            for q in std::mem::take(&mut self.queue) {
                frame::write_rst(&mut self.wire, q.id, ErrorCode::RefusedStream);
            }
            frame::write_goaway(&mut self.wire, self.last_served, code);
        }
    }

    /// A connection error: GOAWAY with its code; the core sees EOF (or a reset mid-request).
    fn fail(&mut self, e: ConnError) {
        log::debug!("h2 client: connection error: {e}");
        if self.active.as_ref().is_some_and(|a| !a.resp_done) {
            self.aborted = true;
        }
        self.goaway(e.code);
        self.dead = true;
        self.h1_eof = true;
    }

    /// A response we cannot translate: the stream is reset and the connection ends.
    fn internal_error(&mut self) {
        if let Some(a) = self.active.take() {
            frame::write_rst(&mut self.wire, a.id, ErrorCode::Internal);
        }
        self.aborted = true;
        self.fail(ConnError {
            code: ErrorCode::Internal,
            why: "response not translatable",
        });
    }

    /// A stream is running (a hot restart must not take the connection from under it).
    pub fn busy(&self) -> bool {
        self.active.is_some() || self.h1.len() > self.h1_at
    }

    /// Moves the queued frames to the layer's output.
    fn emit(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.wire);
        } else {
            out.append(&mut self.wire);
        }
    }
}

impl Transcode for Server {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.settings();
        self.emit(out);
    }

    fn feed(&mut self, wire: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        if self.dead {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let r = self.take_frames(wire, out.len());
        let r = match r {
            Ok(n) => Ok(n),
            Err(e) => {
                self.fail(e);
                Err(io::Error::new(io::ErrorKind::InvalidData, e.why))
            }
        };
        self.emit(out);
        r
    }

    fn peer_eof(&mut self) {
        self.h1_eof = true;
    }

    fn read_h1(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let r = self.read_into(buf);
        self.emit(out);
        r
    }

    fn write_h1(&mut self, h1: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let n = self.write_from(h1);
        self.emit(out);
        Ok(n)
    }

    fn write_blocked(&self) -> bool {
        self.blocked
            && self.active.as_ref().is_some_and(|a| {
                Self::window(self.peer_conn_window, a.send_window, self.peer_max_frame) == 0
            })
    }

    fn reusable(&self) -> bool {
        !self.goaway_sent && !self.dead
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        self.shut();
        self.emit(out);
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
