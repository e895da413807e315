//! Strict HTTP/1.1 message reading shared by the origin server, the load client and the
//! end-to-end tests. Heads are parsed with httparse; bodies are framed by Content-Length,
//! chunked or close exactly as RFC 9112 says, so a short body is always an error and never
//! mistaken for a complete response.

use std::io::{self, Read};

/// Largest head we accept; a proxy bug that floods us with garbage fails fast.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const BUF: usize = 64 * 1024;

/// A request or response head, owned (the tools record and compare heads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Request method; empty for responses.
    pub method: String,
    /// Request target; empty for responses.
    pub target: String,
    /// Response status; 0 for requests.
    pub status: u16,
    pub reason: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Headers in arrival order, names as received.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// True when a comma-separated header such as Connection lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The target's path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the sender of this request expects the connection to stay open afterwards.
    pub fn request_keeps_alive(&self) -> bool {
        if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// First value of header `name` (case-insensitive) in a recorded header list.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Response body runs until the server closes (no length, not chunked).
    UntilClose,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn content_length(h: &Head) -> io::Result<Option<u64>> {
    let mut found: Option<u64> = None;
    for v in h.header_all("content-length") {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("bad Content-Length {v:?}")));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| invalid("Content-Length overflow"))?;
            if found.is_some_and(|f| f != n) {
                return Err(invalid("differing Content-Length values"));
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Transfer-Encoding: `Ok(true)` when chunked is the final coding, an error for any other
/// coding (length unknowable), `Ok(false)` when absent.
fn is_chunked(h: &Head) -> io::Result<bool> {
    let codings: Vec<String> = h
        .header_all("transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    match codings.last() {
        None => Ok(false),
        Some(last) if last == "chunked" => Ok(true),
        Some(_) => Err(invalid("final transfer coding is not chunked")),
    }
}

/// Body framing of a request (RFC 9112 §6.3): CL with TE is refused, no length means none.
pub fn request_framing(h: &Head) -> io::Result<Framing> {
    declared_framing(h, Framing::Length(0))
}

/// Framing from Transfer-Encoding / Content-Length; `absent` when neither is present.
fn declared_framing(h: &Head, absent: Framing) -> io::Result<Framing> {
    match (is_chunked(h)?, content_length(h)?) {
        (true, Some(_)) => Err(invalid("both Content-Length and Transfer-Encoding")),
        (true, None) => Ok(Framing::Chunked),
        (false, Some(n)) => Ok(Framing::Length(n)),
        (false, None) => Ok(absent),
    }
}

/// Body framing of a response to a request whose method was HEAD or not.
pub fn response_framing(h: &Head, head_request: bool) -> io::Result<Framing> {
    if head_request || (100..200).contains(&h.status) || h.status == 204 || h.status == 304 {
        return Ok(Framing::Length(0));
    }
    declared_framing(h, Framing::UntilClose)
}

/// A buffered reader that parses heads in place and streams bodies to a callback.
pub struct Reader<S> {
    inner: S,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
}

impl<S: Read> Reader<S> {
    pub fn new(inner: S) -> Self {
        Reader {
            inner,
            buf: vec![0u8; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes read from the socket but not yet consumed (e.g. a pipelined next request).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads more bytes after the buffered ones; 0 means EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            return Err(invalid("head too large"));
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a request head. `Ok(None)` on a clean EOF before the first byte.
    pub fn read_request_head(&mut self) -> io::Result<Option<Head>> {
        self.read_head(true)
    }

    /// Reads a response head (1xx included). `Ok(None)` on a clean EOF before the first byte.
    pub fn read_response_head(&mut self) -> io::Result<Option<Head>> {
        self.read_head(false)
    }

    fn read_head(&mut self, request: bool) -> io::Result<Option<Head>> {
        loop {
            if self.end > self.pos {
                if let Some((head, used)) = parse_head(&self.buf[self.pos..self.end], request)? {
                    self.pos += used;
                    return Ok(Some(head));
                }
            }
            if self.end - self.pos >= MAX_HEAD {
                return Err(invalid("head too large"));
            }
            if self.fill()? == 0 {
                if self.end == self.pos {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a head",
                ));
            }
        }
    }

    /// Streams exactly `n` bytes to `sink`; EOF first is `UnexpectedEof`.
    pub fn read_exact_to(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while n > 0 {
            if self.pos == self.end && self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {n} body bytes missing"),
                ));
            }
            let take = (self.end - self.pos).min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// One CRLF- (or LF-) terminated line without its terminator, at most 4 KiB.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.pos..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let mut line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.end - self.pos > 4096 {
                return Err(invalid("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    }

    /// Streams a body framed by `framing` to `sink`, returning its length. A body cut short is
    /// an `UnexpectedEof` error; a malformed chunk is `InvalidData`.
    pub fn read_body(&mut self, framing: Framing, sink: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        match framing {
            Framing::Length(n) => self.read_exact_to(n, sink).map(|_| n),
            Framing::UntilClose => {
                let mut total = 0u64;
                loop {
                    if self.pos < self.end {
                        sink(&self.buf[self.pos..self.end]);
                        total += (self.end - self.pos) as u64;
                        self.pos = self.end;
                    }
                    if self.fill()? == 0 {
                        return Ok(total);
                    }
                }
            }
            Framing::Chunked => {
                let mut total = 0u64;
                loop {
                    let line = self.read_line()?;
                    let size_part = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let size_str = std::str::from_utf8(size_part)
                        .map_err(|_| invalid("chunk size is not ASCII"))?
                        .trim_end_matches([' ', '\t']);
                    if size_str.is_empty() || !size_str.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(invalid(format!("bad chunk size {size_str:?}")));
                    }
                    let size = u64::from_str_radix(size_str, 16)
                        .map_err(|_| invalid("chunk size overflow"))?;
                    if size == 0 {
                        // Trailer section, then the empty line.
                        while !self.read_line()?.is_empty() {}
                        return Ok(total);
                    }
                    self.read_exact_to(size, sink)?;
                    total += size;
                    if !self.read_line()?.is_empty() {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                }
            }
        }
    }
}

/// Parses one head from `buf`: `Ok(None)` when more bytes are needed.
fn parse_head(buf: &[u8], request: bool) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = Head::default();
    let (status, raw_headers): (httparse::Status<usize>, &[httparse::Header]) = if request {
        let mut req = httparse::Request::new(&mut headers);
        let st = req
            .parse(buf)
            .map_err(|e| invalid(format!("request head: {e}")))?;
        if st.is_partial() {
            return Ok(None);
        }
        head.method = req.method.unwrap_or_default().to_string();
        head.target = req.path.unwrap_or_default().to_string();
        head.version = req.version.unwrap_or(1);
        let n = req.headers.len();
        (st, &headers[..n])
    } else {
        let mut resp = httparse::Response::new(&mut headers);
        let st = resp
            .parse(buf)
            .map_err(|e| invalid(format!("response head: {e}")))?;
        if st.is_partial() {
            return Ok(None);
        }
        head.status = resp.code.unwrap_or_default();
        head.reason = resp.reason.unwrap_or_default().to_string();
        head.version = resp.version.unwrap_or(1);
        let n = resp.headers.len();
        (st, &headers[..n])
    };
    head.headers = raw_headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    match status {
        httparse::Status::Complete(n) => Ok(Some((head, n))),
        httparse::Status::Partial => Ok(None),
    }
}

/// A complete response with its body in memory.
#[derive(Debug, Clone)]
pub struct Response {
    pub head: Head,
    /// Statuses of interim (1xx) responses that preceded it.
    pub interim: Vec<u16>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one final response (skipping and recording 1xx) with its body.
/// `Ok(None)` when the connection closed cleanly before any byte.
pub fn read_response<S: Read>(
    r: &mut Reader<S>,
    head_request: bool,
) -> io::Result<Option<Response>> {
    let mut interim = Vec::new();
    loop {
        let Some(head) = r.read_response_head()? else {
            if interim.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed after an interim response",
            ));
        };
        if (100..200).contains(&head.status) && head.status != 101 {
            interim.push(head.status);
            continue;
        }
        let framing = response_framing(&head, head_request)?;
        let mut body = Vec::new();
        r.read_body(framing, &mut |b| body.extend_from_slice(b))?;
        return Ok(Some(Response {
            head,
            interim,
            body,
        }));
    }
}

/// Parses every complete response in `bytes` (e.g. from a pipelined exchange). `head_requests`
/// says, per response, whether it answers a HEAD. Stops at the first incomplete one.
pub fn parse_responses(bytes: &[u8], head_requests: &[bool]) -> Vec<Response> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    loop {
        let is_head = head_requests.get(out.len()).copied().unwrap_or(false);
        match read_response(&mut r, is_head) {
            Ok(Some(resp)) => out.push(resp),
            _ => return out,
        }
    }
}
