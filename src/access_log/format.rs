//! Envoy access-log format strings, compiled once into pieces; rendering a line walks the
//! pieces over a finished request's record. Header operators refer to per-listener capture
//! slots, so a request captures exactly the headers some configured format prints.

use crate::config::format::Token;

use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{Captured, Rq};
use crate::util::{civil_from_days, push_dec, push_dec_padded, push_ip, push_num};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Strftime-like format; None = Envoy's default `%Y-%m-%dT%H:%M:%E3SZ`.
    StartTime(Option<String>),
    /// Request header slots to try in order (`X?Y`).
    Req(Vec<usize>),
    Resp(Vec<usize>),
    Protocol,
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamRemote,
    DownstreamRemoteNoPort,
    DownstreamTlsVersion,
    RequestedServerName,
    DownstreamPeerSubject,
    DownstreamDirect,
    DownstreamDirectNoPort,
    DownstreamLocal,
    DownstreamLocalNoPort,
    DownstreamLocalPort,
    /// `%REQ_WITHOUT_QUERY(x)%`: the header value up to its `?`.
    ReqWithoutQuery(Vec<usize>),
    ResponseCodeDetails,
    RequestDuration,
    ResponseDuration,
    ResponseTxDuration,
    UpstreamLocal,
    AttemptCount,
    TransportFailure,
    RouteName,
    ConnectionId,
    LocalReplyBody,
    /// A value fixed when the format is compiled (`%HOSTNAME%`, `%ENVIRONMENT(X)%`).
    Text(String),
    /// An operator config load refused (never compiled): prints nothing (`-`).
    Dash,
}

/// Names an access-log line refers to by index, looked up when the line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    pub cluster: Option<&'a str>,
    pub route: Option<&'a str>,
    /// The line is a TCP proxy connection's: no HTTP protocol.
    pub tcp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Op(Op, Option<usize>),
}

/// A compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
    /// An operator with no value is left out instead of written `-` (`omit_empty_values`).
    omit_empty: bool,
    /// A local reply's body format: `%LOCAL_REPLY_BODY%` is the body however short (Envoy's
    /// formatter always has that value, so an empty body is never `-`).
    local_reply: bool,
}

/// How Envoy's JSON formatter types a value that is one command operator alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// A number (status, byte counts, durations, ids); `null` without a value.
    Number,
    /// A string; `null` without a value.
    String,
    /// Always a string (`%LOCAL_REPLY_BODY%`, empty or not).
    AlwaysString,
    /// A string, `-` without a value (`%RESPONSE_FLAGS%`: Envoy writes `"-"` for no flags).
    DashString,
}

/// The header names formats of one listener capture: request names (lower-case, with the
/// pseudo-headers `:method`, `:path`, `:authority`, `:scheme`) and response names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    pub req: Vec<String>,
    pub resp: Vec<String>,
    /// Some format prints the connection's local address.
    pub local: bool,
}

impl Slots {
    /// The capture slot of request header `name` (lower-cased; pseudo-headers included),
    /// registering it if it is new.
    pub fn req_slot(&mut self, name: &str) -> usize {
        slot(&mut self.req, name)
    }

    /// The capture slot of response header `name` (lower-cased), registering it if new.
    pub fn resp_slot(&mut self, name: &str) -> usize {
        slot(&mut self.resp, name)
    }

    /// The capture slot of response trailer `name`: a response slot under a name no header
    /// can have (`TRAILER_SLOT` + the name), filled when trailers come (`observe`).
    pub fn trailer_slot(&mut self, name: &str) -> usize {
        slot(&mut self.resp, &format!("{TRAILER_SLOT}{name}"))
    }

    /// The slot of request header `name` if one is registered.
    pub fn find_req(&self, name: &str) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        self.req.iter().position(|x| *x == n)
    }
}

/// What starts a response slot's name when it captures a trailer (a space: no header name
/// has one).
pub const TRAILER_SLOT: &str = " trailer ";

fn slot(list: &mut Vec<String>, name: &str) -> usize {
    let n = name.to_ascii_lowercase();
    match list.iter().position(|x| *x == n) {
        Some(i) => i,
        None => {
            list.push(n);
            list.len() - 1
        }
    }
}

impl Format {
    /// Compiles `s` (already syntax-checked at config load), registering its header names.
    pub fn compile(s: &str, slots: &mut Slots) -> Format {
        let mut pieces = Vec::new();
        // Checked at config load; a string that no longer parses logs as itself.
        let tokens =
            crate::config::format::tokenize(s).unwrap_or_else(|_| vec![Token::Lit(s.to_string())]);
        for t in tokens {
            let (name, arg, max) = match t {
                Token::Lit(l) => {
                    pieces.push(Piece::Lit(l));
                    continue;
                }
                Token::Op { name, arg, max } => (name, arg, max),
            };
            let op = match (name, arg) {
                ("START_TIME", a) => Op::StartTime(a.filter(|a| !a.is_empty()).map(String::from)),
                ("REQ", Some(a)) => {
                    Op::Req(a.split('?').map(|n| slot(&mut slots.req, n)).collect())
                }
                ("RESP", Some(a)) => {
                    Op::Resp(a.split('?').map(|n| slot(&mut slots.resp, n)).collect())
                }
                // The upstream response's trailers (an HTTP/2 upstream's; Envoy's HTTP/1 codec
                // keeps none without `enable_trailers`, which baton refuses).
                ("TRAILER", Some(a)) => {
                    Op::Resp(a.split('?').map(|n| slots.trailer_slot(n)).collect())
                }
                ("PROTOCOL", _) => Op::Protocol,
                ("RESPONSE_CODE", _) => Op::ResponseCode,
                ("RESPONSE_FLAGS", _) => Op::ResponseFlags,
                ("REQ_WITHOUT_QUERY", Some(a)) => {
                    Op::ReqWithoutQuery(a.split('?').map(|n| slot(&mut slots.req, n)).collect())
                }
                ("RESPONSE_CODE_DETAILS", _) => Op::ResponseCodeDetails,
                ("REQUEST_DURATION", _) => Op::RequestDuration,
                ("RESPONSE_DURATION", _) => Op::ResponseDuration,
                ("RESPONSE_TX_DURATION", _) => Op::ResponseTxDuration,
                ("UPSTREAM_LOCAL_ADDRESS", _) => Op::UpstreamLocal,
                ("UPSTREAM_REQUEST_ATTEMPT_COUNT", _) => Op::AttemptCount,
                ("UPSTREAM_TRANSPORT_FAILURE_REASON", _) => Op::TransportFailure,
                ("ROUTE_NAME", _) => Op::RouteName,
                ("CONNECTION_ID", _) => Op::ConnectionId,
                ("LOCAL_REPLY_BODY", _) => Op::LocalReplyBody,
                ("HOSTNAME", _) => Op::Text(crate::config::template::hostname().to_string()),
                ("ENVIRONMENT", Some(a)) => Op::Text(std::env::var(a).unwrap_or_default()),
                ("DOWNSTREAM_LOCAL_ADDRESS", _) => {
                    slots.local = true;
                    Op::DownstreamLocal
                }
                ("DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", _) => {
                    slots.local = true;
                    Op::DownstreamLocalNoPort
                }
                ("DOWNSTREAM_LOCAL_PORT", _) => {
                    slots.local = true;
                    Op::DownstreamLocalPort
                }
                ("BYTES_RECEIVED", _) => Op::BytesReceived,
                ("BYTES_SENT", _) => Op::BytesSent,
                ("DURATION", _) => Op::Duration,
                ("UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS", _) => Op::UpstreamHost,
                ("UPSTREAM_CLUSTER", _) => Op::UpstreamCluster,
                ("DOWNSTREAM_TLS_VERSION", _) => Op::DownstreamTlsVersion,
                ("REQUESTED_SERVER_NAME", _) => Op::RequestedServerName,
                ("DOWNSTREAM_PEER_SUBJECT", _) => Op::DownstreamPeerSubject,
                ("DOWNSTREAM_REMOTE_ADDRESS", _) => Op::DownstreamRemote,
                ("DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", _) => Op::DownstreamRemoteNoPort,
                ("DOWNSTREAM_DIRECT_REMOTE_ADDRESS", _) => Op::DownstreamDirect,
                ("DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", _) => Op::DownstreamDirectNoPort,
                // Anything else was refused at config load (config::format).
                _ => Op::Dash,
            };
            pieces.push(Piece::Op(op, max));
        }
        Format {
            pieces,
            omit_empty: false,
            local_reply: false,
        }
    }

    /// Compiles a local reply's body format (checked at load by `check_local_reply`).
    pub fn compile_local_reply(s: &str, slots: &mut Slots, omit_empty: bool) -> Format {
        Format {
            omit_empty,
            local_reply: true,
            ..Format::compile(s, slots)
        }
    }

    /// For a format that is exactly one command operator: how Envoy's JSON formatter types
    /// its value. `None` for anything else (literals, several operators): a JSON string.
    pub fn json_kind(&self) -> Option<JsonKind> {
        let [Piece::Op(op, _)] = self.pieces.as_slice() else {
            return None;
        };
        Some(match op {
            Op::ResponseCode
            | Op::BytesReceived
            | Op::BytesSent
            | Op::Duration
            | Op::RequestDuration
            | Op::ResponseDuration
            | Op::ResponseTxDuration
            | Op::AttemptCount
            | Op::ConnectionId
            | Op::DownstreamLocalPort => JsonKind::Number,
            Op::LocalReplyBody => JsonKind::AlwaysString,
            Op::ResponseFlags => JsonKind::DashString,
            _ => JsonKind::String,
        })
    }

    /// Appends the value of a one-operator format, nothing when it has none (`json_kind`).
    pub fn render_value(&self, out: &mut Vec<u8>, rq: &Rq, names: &Names<'_>) {
        if let [Piece::Op(op, max)] = self.pieces.as_slice() {
            let start = out.len();
            let mut v = String::new();
            value(out, &mut v, op, rq, names);
            truncate(out, start, *max);
        }
    }

    /// Appends one rendered line (the format supplies its own newline, as Envoy's does).
    pub fn render(&self, out: &mut Vec<u8>, rq: &Rq, names: &Names<'_>) {
        // One scratch string per thread: no allocation per logged line.
        thread_local! {
            static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut v) => self.render_with(out, rq, names, &mut v),
            Err(_) => self.render_with(out, rq, names, &mut String::new()),
        });
    }

    fn render_with(&self, out: &mut Vec<u8>, rq: &Rq, names: &Names<'_>, v: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Op(op, max) => {
                    // Values go straight into the line; the scratch string serves only the
                    // rare operators that are built as text first.
                    let start = out.len();
                    value(out, v, op, rq, names);
                    let always = self.local_reply && *op == Op::LocalReplyBody;
                    if out.len() == start && !self.omit_empty && !always {
                        out.push(b'-');
                    }
                    truncate(out, start, *max);
                }
            }
        }
    }
}

/// Cuts what was appended after `start` to `max` bytes, on a UTF-8 character boundary.
fn truncate(out: &mut Vec<u8>, start: usize, max: Option<usize>) {
    if let Some(m) = max {
        let mut end = (start + m).min(out.len());
        while end > start && end < out.len() && out[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        out.truncate(end);
    }
}

fn header<'a>(cap: Option<&'a Captured>, resp: bool, slots: &[usize]) -> Option<&'a str> {
    let c = cap?;
    slots
        .iter()
        .find_map(|&i| if resp { c.resp(i) } else { c.req(i) })
}

fn push_addr(out: &mut Vec<u8>, a: std::net::SocketAddr) {
    match a {
        std::net::SocketAddr::V4(v4) => {
            push_ip(out, std::net::IpAddr::V4(*v4.ip()));
            out.push(b':');
            push_dec(out, u64::from(v4.port()));
        }
        std::net::SocketAddr::V6(_) => out.extend_from_slice(a.to_string().as_bytes()),
    }
}

fn value(out: &mut Vec<u8>, v: &mut String, op: &Op, rq: &Rq, names: &Names<'_>) {
    let cap: Option<&Captured> = rq.cap.as_deref();
    match op {
        Op::StartTime(f) => {
            let t = cap.map_or(SystemTime::now(), |c| c.start_wall);
            match f {
                None => default_start_time(out, t),
                Some(f) => {
                    v.clear();
                    start_time(v, t, Some(f));
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        Op::Req(s) => out.extend_from_slice(header(cap, false, s).unwrap_or("").as_bytes()),
        Op::Resp(s) => out.extend_from_slice(header(cap, true, s).unwrap_or("").as_bytes()),
        Op::Protocol if names.tcp => {}
        Op::Protocol => out.extend_from_slice(match rq.minor {
            0 => b"HTTP/1.0",
            2 => b"HTTP/2",
            _ => b"HTTP/1.1",
        }),
        Op::ResponseCode => push_dec(out, u64::from(rq.status)),
        Op::ResponseFlags => {
            v.clear();
            rq.flags.write(v);
            out.extend_from_slice(v.as_bytes());
        }
        Op::BytesReceived => push_dec(out, rq.bytes_rx),
        Op::BytesSent => push_dec(out, rq.bytes_tx),
        Op::Duration => push_dec(out, u64::try_from(rq.duration_ms()).unwrap_or(u64::MAX)),
        Op::UpstreamHost => {
            if let Some(a) = rq.upstream {
                push_addr(out, a);
            }
        }
        Op::UpstreamCluster => out.extend_from_slice(names.cluster.unwrap_or("").as_bytes()),
        Op::DownstreamRemote => push_addr(out, rq.peer),
        Op::DownstreamRemoteNoPort => push_ip(out, rq.peer.ip()),
        Op::DownstreamTlsVersion => {
            if let Some(t) = &rq.tls {
                out.extend_from_slice(t.version.as_bytes());
            }
        }
        Op::RequestedServerName => {
            if let Some(n) = rq.tls.as_ref().and_then(|t| t.sni.as_deref()) {
                out.extend_from_slice(n.as_bytes());
            }
        }
        Op::DownstreamPeerSubject => {
            if let Some(n) = rq.tls.as_ref().and_then(|t| t.peer_subject.as_deref()) {
                out.extend_from_slice(n.as_bytes());
            }
        }
        Op::DownstreamDirect => push_addr(out, rq.direct_peer),
        Op::DownstreamDirectNoPort => push_ip(out, rq.direct_peer.ip()),
        Op::DownstreamLocal => {
            if let Some(a) = rq.local {
                push_addr(out, a);
            }
        }
        Op::DownstreamLocalNoPort => {
            if let Some(a) = rq.local {
                push_ip(out, a.ip());
            }
        }
        Op::DownstreamLocalPort => {
            if let Some(a) = rq.local {
                push_dec(out, u64::from(a.port()));
            }
        }
        Op::ReqWithoutQuery(s) => {
            let h = header(cap, false, s).unwrap_or("");
            out.extend_from_slice(h.split('?').next().unwrap_or("").as_bytes());
        }
        Op::ResponseCodeDetails => out.extend_from_slice(rq.details.as_bytes()),
        Op::RequestDuration => push_ms(out, Some(rq.start), rq.req_done),
        Op::ResponseDuration => push_ms(out, Some(rq.start), rq.resp_first),
        Op::ResponseTxDuration => push_ms(out, rq.resp_first, rq.end),
        Op::UpstreamLocal => {
            if let Some(a) = rq.upstream_local {
                push_addr(out, a);
            }
        }
        Op::AttemptCount => push_dec(out, u64::from(rq.attempts)),
        Op::TransportFailure => {
            if let Some(t) = rq.transport_failure() {
                out.extend_from_slice(t.replace(' ', "_").as_bytes());
            }
        }
        Op::RouteName => out.extend_from_slice(names.route.unwrap_or("").as_bytes()),
        Op::ConnectionId => push_dec(out, rq.conn_id),
        Op::LocalReplyBody => {
            if let Some(b) = &rq.local_body {
                out.extend_from_slice(b.as_bytes());
            }
        }
        Op::Text(t) => out.extend_from_slice(t.as_bytes()),
        Op::Dash => {}
    }
}

/// Milliseconds from `a` to `b`; nothing (so `-`) when either is unknown.
fn push_ms(out: &mut Vec<u8>, a: Option<std::time::Instant>, b: Option<std::time::Instant>) {
    if let (Some(a), Some(b)) = (a, b) {
        let ms = b.saturating_duration_since(a).as_millis();
        push_dec(out, u64::try_from(ms).unwrap_or(u64::MAX));
    }
}

/// Envoy's default `2024-05-01T12:00:00.123Z`, digit by digit: it is on every logged line.
fn default_start_time(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, da) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    push_dec_padded(out, y.max(0) as u64, 4);
    for (sep, n) in [
        (b'-', u64::from(mo)),
        (b'-', u64::from(da)),
        (b'T', rem / 3600),
        (b':', (rem / 60) % 60),
        (b':', rem % 60),
    ] {
        out.push(sep);
        push_dec_padded(out, n, 2);
    }
    out.push(b'.');
    push_dec_padded(out, u64::from(d.subsec_millis()), 3);
    out.push(b'Z');
}

/// A strftime subset for `%START_TIME(...)%` (None falls back to Envoy's default): %Y %m %d %H %M %S %s
/// %f/%3f/%6f/%9f (fraction), %E3S (seconds.millis), %z (+0000), %Z (UTC), %%.
fn start_time(v: &mut String, t: SystemTime, fmt: Option<&str>) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let (y, mo, da) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let Some(f) = fmt else {
        // Envoy's default, written digit by digit: this runs for every logged request.
        push_num(v, y.max(0) as u64, 4);
        for (sep, n) in [
            ('-', u64::from(mo)),
            ('-', u64::from(da)),
            ('T', h),
            (':', mi),
            (':', s),
        ] {
            v.push(sep);
            push_num(v, n, 2);
        }
        v.push('.');
        push_num(v, u64::from(nanos / 1_000_000), 3);
        v.push('Z');
        return;
    };
    let mut it = f.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '%' {
            v.push(c);
            continue;
        }
        let spec = &f[i + 1..];
        let (text, skip) = if spec.starts_with("E3S") {
            (format!("{s:02}.{:03}", nanos / 1_000_000), 3)
        } else if spec.starts_with("3f") {
            (format!("{:03}", nanos / 1_000_000), 2)
        } else if spec.starts_with("6f") {
            (format!("{:06}", nanos / 1_000), 2)
        } else if spec.starts_with("9f") || spec.starts_with('f') {
            (
                format!("{nanos:09}"),
                if spec.starts_with('f') { 1 } else { 2 },
            )
        } else {
            let t = match spec.chars().next() {
                Some('Y') => format!("{y:04}"),
                Some('m') => format!("{mo:02}"),
                Some('d') => format!("{da:02}"),
                Some('H') => format!("{h:02}"),
                Some('M') => format!("{mi:02}"),
                Some('S') => format!("{s:02}"),
                Some('s') => secs.to_string(),
                Some('z') => "+0000".into(),
                Some('Z') => "UTC".into(),
                Some('%') => "%".into(),
                Some(other) => format!("%{other}"),
                None => "%".into(),
            };
            (t, usize::from(!spec.is_empty()))
        };
        v.push_str(&text);
        for _ in 0..skip {
            it.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::record::Flags;
    use std::time::{Duration, Instant};

    fn rq(slots: &Slots) -> Rq {
        let mut r = Rq::new(Instant::now(), 0, "10.0.0.1:5555".parse().unwrap(), 1);
        let mut c = Captured::new(slots);
        c.start_wall = UNIX_EPOCH + Duration::from_millis(951_782_400_123);
        for (i, n) in slots.req.iter().enumerate() {
            let v: &[u8] = match n.as_str() {
                ":method" => b"GET",
                ":path" => b"/a?b",
                "user-agent" => b"curl/8",
                _ => continue,
            };
            c.put(false, i, std::iter::once(v));
        }
        r.cap = Some(Box::new(c));
        r.status = 404;
        r.flags.set(Flags::NR);
        r.bytes_tx = 12;
        r
    }

    #[test]
    fn default_format_renders_envoys_line() {
        let mut slots = Slots::default();
        let f = Format::compile(crate::config::DEFAULT_ACCESS_LOG_FORMAT, &mut slots);
        let r = rq(&slots);
        let mut out = Vec::new();
        f.render(&mut out, &r, &Names::default());
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "[2000-02-29T00:00:00.123Z] \"GET /a?b HTTP/1.1\" 404 NR 0 12 0 - \"-\" \"curl/8\" \"-\" \"-\" \"-\"\n"
        );
    }

    #[test]
    fn custom_operators_fallback_and_truncation() {
        let mut slots = Slots::default();
        let f = Format::compile(
            "%START_TIME(%s.%3f)% %REQ(X-NOPE?:METHOD)% %REQ(USER-AGENT):4% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %%%UPSTREAM_HOST% %BYTES_RECEIVED%",
            &mut slots,
        );
        let r = rq(&slots);
        let mut out = Vec::new();
        f.render(&mut out, &r, &Names::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "951782400.123 GET curl 10.0.0.1 %- 0"
        );
    }
}
