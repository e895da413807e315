//! Pure HTTP/1.1 framing: request/response heads (httparse, in place) and body decoders/encoders.
//! No sockets here. The rules are RFC 9112's strict reading: anything ambiguous about where a
//! message ends is an error, because a proxy that guesses differently from its upstream is how
//! request smuggling happens.

use std::fmt::Write as _;

/// Most headers a request or response may carry; more is 431 (request) or 502-class (response).
pub const MAX_HEADERS: usize = 100;

/// Room for a head's headers, left uninitialised: httparse fills what it parses, so a parse
/// does not pay for zeroing `MAX_HEADERS` slots (it showed in profiles).
pub type HeaderSlots<'b> = [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh, uninitialised header slots for one parse.
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [std::mem::MaybeUninit::uninit(); MAX_HEADERS]
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the upstream closes.
    UntilClose,
}

/// Why a request head was refused; maps to the status we answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed or ambiguous.
    Bad(&'static str),
    /// 431: too many or too large headers.
    TooLarge,
    /// 501: a transfer coding we do not implement.
    NotImplemented(&'static str),
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::TooLarge => 431,
            HeadError::NotImplemented(_) => 501,
        }
    }
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::Bad(r) | HeadError::NotImplemented(r) => r,
            HeadError::TooLarge => "headers too large",
        }
    }
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug, Clone)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    /// Origin-form path and query (absolute-form targets are reduced to this).
    pub path: &'b str,
    /// 0 or 1 (HTTP/1.0 or HTTP/1.1).
    pub minor: u8,
    /// Authority: from an absolute-form target, else the Host header.
    pub host: Option<&'b str>,
    pub headers: &'b [httparse::Header<'b>],
    pub framing: Framing,
    /// Whether the client wants the connection kept after this exchange.
    pub keep_alive: bool,
    /// A Connection header lists a token other than `keep-alive` (so some headers may be
    /// named hop-by-hop there), found while parsing.
    pub connection_names_others: bool,
    pub expect_continue: bool,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
    /// It came over TLS (scheme `https`). The parser cannot know: false until the proxy's
    /// environment, which knows the connection, says otherwise.
    pub secure: bool,
    /// It came over TLS from a client that presented a certificate (mutual TLS); set by the
    /// environment like `secure`.
    pub peer_cert: bool,
}

/// Comma-separated tokens of a header value, trimmed and non-empty.
pub fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',').map(trim).filter(|t| !t.is_empty())
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes a step once both are 8 bytes or longer. Header
/// names are compared against constants several dozen times per request, and the byte loop
/// lowers both sides of every byte. Per word, both sides get bit 0x20 set where `b` holds an
/// ASCII letter (a letter then matches either case of itself) and are compared exactly
/// elsewhere, which is what the byte loop decides.
#[inline]
fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.eq_ignore_ascii_case(b);
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let same = |at: usize| match (word(a, at), word(b, at)) {
        (Some(x), Some(y)) => {
            let fold = u64::from_le_bytes(y.to_le_bytes().map(|c| {
                if c.is_ascii_alphabetic() {
                    0x20
                } else {
                    0
                }
            }));
            x | fold == y | fold
        }
        _ => false,
    };
    // Whole words from the start, then the last eight bytes (overlapping the one before).
    let mut at = 0;
    while at + 8 < n {
        if !same(at) {
            return false;
        }
        at += 8;
    }
    same(n - 8)
}

/// Whether header name `name` is `h` (any case).
#[inline]
pub fn name_is(name: &str, h: &str) -> bool {
    eq_ignore_case(name.as_bytes(), h.as_bytes())
}

/// Headers a proxy must not forward (RFC 9110 §7.6.1) or that we regenerate ourselves.
pub fn is_hop_by_hop(name: &str) -> bool {
    // By length first: this runs for every header of every request and response.
    let is = |h: &str| name_is(name, h);
    match name.len() {
        2 => is("te"),
        7 => is("upgrade") || is("trailer"),
        10 => is("connection") || is("keep-alive"),
        14 => is("content-length"),
        16 => is("proxy-connection"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

/// Whether a Connection header lists a token other than `keep-alive` (only then can
/// `named_in_connection` add to `is_hop_by_hop`: keep-alive is hop-by-hop anyway, and most
/// messages carry no other token).
///
/// The parsers answer this once per head (`ConnectionTokens`); this walk is the reference
/// the tests check them against.
#[cfg(test)]
pub fn connection_names_others(headers: &[httparse::Header<'_>]) -> bool {
    connection_token_any(headers, |t| !eq_ignore_case(t, b"keep-alive"))
}

/// Most tokens the Connection headers of one message may list (RFC 9110 §7.6.1 sets no
/// bound; real messages list one to three). A message with more is refused (400 from a
/// client, 502 from an upstream): every header forwarded is looked up among them, and a head
/// of thousands of tokens made that lookup cost ~90 normal requests of CPU.
pub const MAX_CONNECTION_TOKENS: usize = 32;

/// The tokens other than `keep-alive` that a message's Connection headers list, gathered
/// once so each forwarded header is looked up among at most `MAX_CONNECTION_TOKENS` of
/// them rather than by a walk over every Connection header's bytes.
pub struct Nominated<'a> {
    names: [&'a [u8]; MAX_CONNECTION_TOKENS],
    len: usize,
}

impl<'a> Nominated<'a> {
    /// Past the parser's bound (which refuses more), further tokens are not kept.
    pub fn of(headers: &[httparse::Header<'a>]) -> Nominated<'a> {
        let mut n = Nominated {
            names: [&[]; MAX_CONNECTION_TOKENS],
            len: 0,
        };
        for h in headers {
            if !name_is(h.name, "connection") {
                continue;
            }
            for t in tokens(h.value) {
                if eq_ignore_case(t, b"keep-alive") {
                    continue;
                }
                let Some(slot) = n.names.get_mut(n.len) else {
                    return n;
                };
                *slot = t;
                n.len += 1;
            }
        }
        n
    }

    /// Whether header `name` is listed (so it is hop-by-hop too).
    pub fn names(&self, name: &str) -> bool {
        self.names
            .iter()
            .take(self.len)
            .any(|t| eq_ignore_case(t, name.as_bytes()))
    }
}

/// True when `name` is listed in any Connection header (those are hop-by-hop too).
pub fn named_in_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    connection_token_any(headers, |t| eq_ignore_case(t, name.as_bytes()))
}

/// Whether any token of any Connection header satisfies `pred`. A plain loop: the same
/// filter/flat_map chain cost several times more, and this runs a few times per message.
fn connection_token_any(
    headers: &[httparse::Header<'_>],
    mut pred: impl FnMut(&[u8]) -> bool,
) -> bool {
    for h in headers {
        if name_is(h.name, "connection") && tokens(h.value).any(&mut pred) {
            return true;
        }
    }
    false
}

/// What a message's Connection headers list, gathered in one pass (parsing a head asked
/// up to three questions of them, each a walk over every header).
#[derive(Debug, Clone, Copy, Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    /// A token other than `keep-alive` (`close` included): `connection_names_others`.
    others: bool,
    /// Tokens listed, repeats included (bounded by `MAX_CONNECTION_TOKENS`).
    count: usize,
}

impl ConnectionTokens {
    fn of(headers: &[httparse::Header<'_>]) -> ConnectionTokens {
        let mut c = ConnectionTokens::default();
        for h in headers {
            if !name_is(h.name, "connection") {
                continue;
            }
            for t in tokens(h.value) {
                c.count += 1;
                if eq_ignore_case(t, b"keep-alive") {
                    c.keep_alive = true;
                } else {
                    c.others = true;
                    c.close |= t.eq_ignore_ascii_case(b"close");
                }
            }
        }
        c
    }

    /// The message's Connection headers, refused past `MAX_CONNECTION_TOKENS` tokens.
    fn checked(headers: &[httparse::Header<'_>]) -> Result<ConnectionTokens, HeadError> {
        let c = ConnectionTokens::of(headers);
        if c.count > MAX_CONNECTION_TOKENS {
            return Err(HeadError::Bad("too many connection tokens"));
        }
        Ok(c)
    }

    /// Whether the sender keeps the connection open after this message (RFC 9112 §9.3).
    fn persistent(self, minor: u8) -> bool {
        if minor == 1 {
            !self.close
        } else {
            self.keep_alive && !self.close
        }
    }
}

/// Parses a Content-Length value strictly: digits only, no sign, no overflow.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 19 digits stay below u64::MAX (20 digits), so this cannot overflow.
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Body framing from Content-Length / Transfer-Encoding headers, shared by both directions.
/// `Ok(None)` means neither header was present.
fn body_framing(headers: &[httparse::Header<'_>]) -> Result<Option<Framing>, HeadError> {
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut last_coding: Option<&[u8]> = None;
    let mut codings = 0usize;
    for h in headers {
        if name_is(h.name, "content-length") {
            // A list of identical values is allowed (RFC 9110 §8.6); anything else is not.
            for t in h.value.split(|&c| c == b',') {
                let n = parse_length(trim(t)).ok_or(HeadError::Bad("invalid content-length"))?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(HeadError::Bad("conflicting content-length"))
                    }
                    _ => length = Some(n),
                }
            }
        } else if name_is(h.name, "transfer-encoding") {
            te_seen = true;
            for t in tokens(h.value) {
                codings += 1;
                last_coding = Some(t);
            }
        }
    }
    if te_seen {
        if length.is_some() {
            return Err(HeadError::Bad("content-length with transfer-encoding"));
        }
        match last_coding {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => {
                if codings > 1 {
                    return Err(HeadError::NotImplemented("unsupported transfer-encoding"));
                }
                Ok(Some(Framing::Chunked))
            }
            _ => Err(HeadError::Bad("transfer-encoding does not end in chunked")),
        }
    } else {
        Ok(length.map(|n| {
            if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            }
        }))
    }
}

fn map_httparse(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooLarge,
        httparse::Error::Version => HeadError::Bad("unsupported HTTP version"),
        httparse::Error::HeaderName => HeadError::Bad("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Bad("invalid header value"),
        httparse::Error::NewLine => HeadError::Bad("invalid line ending"),
        httparse::Error::Token => HeadError::Bad("invalid method"),
        httparse::Error::Status => HeadError::Bad("invalid status"),
    }
}

/// Parses a request head from `buf`. `Ok(None)`: incomplete (read more, unless `buf` is
/// already at the size limit — the caller checks that).
pub fn parse_request<'b>(
    buf: &'b [u8],
    hdrs: &'b mut HeaderSlots<'b>,
) -> Result<Option<RequestHead<'b>>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, hdrs) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse(e)),
    };
    let method = req.method.ok_or(HeadError::Bad("missing method"))?;
    let target = req.path.ok_or(HeadError::Bad("missing target"))?;
    let minor = req.version.ok_or(HeadError::Bad("missing version"))?;
    let headers: &'b [httparse::Header<'b>] = req.headers;
    // httparse lets bytes >= 0x80 through in the target; RFC 9112's request-target is ASCII,
    // and only ASCII may reach routing, rewrites and the upstream request line.
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeadError::Bad("invalid request target"));
    }

    let mut host_hdr: Option<&'b str> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("host") {
            if host_hdr.is_some() {
                return Err(HeadError::Bad("multiple host headers"));
            }
            let v =
                std::str::from_utf8(trim(h.value)).map_err(|_| HeadError::Bad("invalid host"))?;
            if !valid_authority(v) {
                return Err(HeadError::Bad("invalid host"));
            }
            host_hdr = Some(v);
        }
    }
    let (path, host) = if method == "CONNECT" {
        // authority-form (RFC 9112 §3.2.3): host and port; it is also the request's authority.
        let port_ok = target.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        });
        if !port_ok || !valid_authority(target) {
            return Err(HeadError::Bad("invalid CONNECT target"));
        }
        (target, Some(target))
    } else if target.starts_with('/') {
        (target, host_hdr)
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form: the authority in the target wins over Host (RFC 9112 §3.2.2).
        let (auth, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if auth.is_empty() || !valid_authority(auth) {
            return Err(HeadError::Bad("invalid absolute-form target"));
        }
        if path.starts_with('?') {
            return Err(HeadError::Bad("invalid absolute-form target"));
        }
        (path, Some(auth))
    } else if target == "*" && method == "OPTIONS" {
        (target, host_hdr)
    } else {
        return Err(HeadError::Bad("invalid request target"));
    };
    if minor == 1 && host_hdr.is_none() {
        return Err(HeadError::Bad("missing host header"));
    }
    // A fragment (`#`) is the connection manager's to refuse (`request::hcm_path`: 400,
    // `path_normalization_failed`), as in Envoy.
    let framing = match body_framing(headers)? {
        // A CONNECT request's content has no meaning (RFC 9110 §9.3.6): what follows the head
        // is tunnel data, so a body length would only invite smuggling.
        Some(Framing::Length(_) | Framing::Chunked) if method == "CONNECT" => {
            return Err(HeadError::Bad("body framing on CONNECT"));
        }
        Some(f) => {
            if minor == 0 && f == Framing::Chunked {
                return Err(HeadError::Bad("transfer-encoding in HTTP/1.0"));
            }
            f
        }
        None => Framing::None,
    };
    let connection = ConnectionTokens::checked(headers)?;
    let keep_alive = connection.persistent(minor);
    let expect_continue = minor == 1
        && headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect")
                && trim(h.value).eq_ignore_ascii_case(b"100-continue")
        });
    Ok(Some(RequestHead {
        method,
        path,
        minor,
        host,
        headers,
        framing,
        keep_alive,
        connection_names_others: connection.others,
        expect_continue,
        head_len,
        secure: false,
        peer_cert: false,
    }))
}

/// The rest of an absolute-form target after `http://` or `https://` (any case). Compares
/// bytes and cuts with `get`, so a multi-byte character near the start cannot make it panic.
fn strip_scheme(t: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|p| {
        let head = t.as_bytes().get(..p.len())?;
        if head.eq_ignore_ascii_case(p.as_bytes()) {
            t.get(p.len()..)
        } else {
            None
        }
    })
}

/// Host / authority: reg-name or IP-literal, optional port; no userinfo, no whitespace.
pub fn valid_authority(a: &str) -> bool {
    // A table lookup per byte: this checks every request's Host.
    !a.is_empty() && a.bytes().all(|c| AUTHORITY_BYTE[usize::from(c)])
}

/// The bytes `valid_authority` allows: ASCII letters and digits and `-._~:[]%!$&'()*+,;=`.
const AUTHORITY_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

/// A parsed response head, borrowing the upstream read buffer.
#[derive(Debug)]
pub struct ResponseHead<'b> {
    pub status: u16,
    pub reason: &'b str,
    pub minor: u8,
    pub headers: &'b [httparse::Header<'b>],
    pub framing: Framing,
    /// Whether the upstream lets us reuse the connection after this response.
    pub keep_alive: bool,
    /// `connection_names_others(headers)`, found while parsing.
    pub connection_names_others: bool,
    pub head_len: usize,
}

/// Parses a response head. `request_was_head` decides framing as RFC 9112 §6.3 says.
pub fn parse_response<'b>(
    buf: &'b [u8],
    hdrs: &'b mut HeaderSlots<'b>,
    request_was_head: bool,
) -> Result<Option<ResponseHead<'b>>, HeadError> {
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, hdrs)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse(e)),
    };
    let status = resp.code.ok_or(HeadError::Bad("missing status"))?;
    // httparse takes any three digits; RFC 9110 §15 makes only 100..=599 valid, and relaying
    // "HTTP/1.1 002" would hand the client a response it cannot classify.
    if !(100..=599).contains(&status) {
        return Err(HeadError::Bad("invalid status"));
    }
    let minor = resp.version.ok_or(HeadError::Bad("missing version"))?;
    let reason = resp.reason.unwrap_or("");
    let headers: &'b [httparse::Header<'b>] = resp.headers;
    let no_body =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    // A transfer coding other than chunked alone is refused, as Envoy does (a protocol error:
    // 502). RFC 9112 §6.3 would read such a body until close, but Transfer-Encoding is
    // hop-by-hop: relaying the still-encoded bytes without it hands the client content it
    // cannot decode.
    let framing = match body_framing(headers) {
        _ if no_body => Framing::None,
        Ok(Some(f)) => f,
        Ok(None) => Framing::UntilClose,
        Err(e) => return Err(e),
    };
    let connection = ConnectionTokens::checked(headers)?;
    let keep_alive = framing != Framing::UntilClose && connection.persistent(minor);
    Ok(Some(ResponseHead {
        status,
        reason,
        minor,
        headers,
        framing,
        keep_alive,
        connection_names_others: connection.others,
        head_len,
    }))
}

/// Error in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { digits: u8 },
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf { end: bool },
    Done,
}

/// Incremental decoder for a chunked body; yields data pieces, drops extensions, and drops
/// trailers unless made with `keeping_trailers` (then they are kept, bounded, for
/// `last_chunk`).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    remaining: u64,
    /// Most trailer-section bytes kept (0: trailers are dropped); past it the body fails.
    keep: usize,
    /// The trailer lines so far, each ending CRLF.
    trailers: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size { digits: 0 },
            remaining: 0,
            keep: 0,
            trailers: Vec::new(),
        }
    }

    /// A decoder that keeps the trailer section, at most `limit` bytes of it (a longer one is
    /// an error, as an over-long head is).
    pub fn keeping_trailers(limit: usize) -> Self {
        ChunkedDecoder {
            keep: limit,
            ..Self::new()
        }
    }

    /// The trailer lines kept (each ending CRLF; empty when none came or none are kept).
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Appends the body's end: the last chunk, the kept trailer lines, the empty line.
    pub fn last_chunk(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"0\r\n");
        out.extend_from_slice(&self.trailers);
        out.extend_from_slice(b"\r\n");
    }

    /// One byte of a trailer line (`None`: its end), kept when trailers are.
    fn keep_trailer(&mut self, c: Option<u8>) -> Result<(), ChunkError> {
        if self.keep == 0 {
            return Ok(());
        }
        match c {
            Some(c) => self.trailers.push(c),
            None => self.trailers.extend_from_slice(b"\r\n"),
        }
        if self.trailers.len() > self.keep {
            return Err(ChunkError("trailer section too large"));
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Payload bytes of the current chunk still to come (0 outside a chunk's data).
    pub fn data_remaining(&self) -> u64 {
        if self.state == ChunkState::Data {
            self.remaining
        } else {
            0
        }
    }

    /// `n` payload bytes of the current chunk (at most `data_remaining`) were moved past the
    /// decoder (spliced): the decoder goes on as if it had produced them.
    pub fn skip_data(&mut self, n: u64) {
        if self.state != ChunkState::Data {
            return;
        }
        self.remaining -= n.min(self.remaining);
        if self.remaining == 0 {
            self.state = ChunkState::DataCr;
        }
    }

    /// Consumes from `input`, calling `data` with each piece of body. Returns bytes consumed;
    /// stops at the end of the body (`is_done`) or when `max_data` bytes were produced.
    pub fn decode(
        &mut self,
        input: &[u8],
        max_data: usize,
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        let mut produced = 0usize;
        while i < input.len() {
            let c = input[i];
            match self.state {
                ChunkState::Size { digits } => {
                    if let Some(d) = (c as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        self.remaining = self.remaining * 16 + u64::from(d);
                        self.state = ChunkState::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkError("invalid chunk size"));
                    } else if c == b';' || c == b' ' || c == b'\t' {
                        self.state = ChunkState::Ext;
                    } else if c == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if c == b'\n' {
                        self.after_size();
                    } else {
                        return Err(ChunkError("invalid chunk size"));
                    }
                    i += 1;
                }
                ChunkState::Ext => {
                    if c == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if c == b'\n' {
                        self.after_size();
                    } else if c != b'\t' && (c < 0x20 || c == 0x7f) {
                        return Err(ChunkError("invalid chunk extension"));
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if c != b'\n' {
                        return Err(ChunkError("bare CR in chunk size line"));
                    }
                    self.after_size();
                    i += 1;
                }
                ChunkState::Data => {
                    if produced >= max_data {
                        return Ok(i);
                    }
                    let avail = (input.len() - i).min(max_data - produced);
                    let n = (self.remaining.min(avail as u64)) as usize;
                    data(&input[i..i + n]);
                    produced += n;
                    i += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    match c {
                        b'\r' => self.state = ChunkState::DataLf,
                        b'\n' => self.state = ChunkState::Size { digits: 0 },
                        _ => return Err(ChunkError("missing CRLF after chunk data")),
                    }
                    i += 1;
                }
                ChunkState::DataLf => {
                    if c != b'\n' {
                        return Err(ChunkError("missing CRLF after chunk data"));
                    }
                    self.state = ChunkState::Size { digits: 0 };
                    i += 1;
                }
                ChunkState::TrailerStart => {
                    match c {
                        b'\r' => self.state = ChunkState::TrailerLf { end: true },
                        b'\n' => {
                            self.state = ChunkState::Done;
                            return Ok(i + 1);
                        }
                        0 => return Err(ChunkError("NUL in trailer")),
                        _ => {
                            self.keep_trailer(Some(c))?;
                            self.state = ChunkState::TrailerLine;
                        }
                    }
                    i += 1;
                }
                ChunkState::TrailerLine => {
                    match c {
                        b'\r' => self.state = ChunkState::TrailerLf { end: false },
                        b'\n' => {
                            self.keep_trailer(None)?;
                            self.state = ChunkState::TrailerStart;
                        }
                        0 => return Err(ChunkError("NUL in trailer")),
                        _ => self.keep_trailer(Some(c))?,
                    }
                    i += 1;
                }
                ChunkState::TrailerLf { end } => {
                    if c != b'\n' {
                        return Err(ChunkError("bare CR in trailer"));
                    }
                    i += 1;
                    if end {
                        self.state = ChunkState::Done;
                        return Ok(i);
                    }
                    self.keep_trailer(None)?;
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn after_size(&mut self) {
        self.state = if self.remaining == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
    }
}

/// The fields of a kept trailer section (`ChunkedDecoder::trailers`): `name: value` lines
/// with a token name, the value trimmed; a line that is not one is skipped (it cannot be
/// carried as a field).
pub fn trailer_fields(t: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    t.split(|&c| c == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&c| c == b':')?;
        let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
        let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        (!name.is_empty() && name.iter().all(|&c| token(c))).then(|| (name, trim(value)))
    })
}

/// Appends one chunk (size line, data, CRLF) to `out`.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut line = String::with_capacity(12);
    let _ = write!(line, "{:x}\r\n", data.len());
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body, without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `name: value\r\n`.
pub fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Canonical reason phrase for locally generated responses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
