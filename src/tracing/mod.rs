//! Zipkin tracing as Envoy's connection manager and Zipkin driver do it: the tracing
//! decision (the trace reason packed into a UUID `x-request-id`), the B3 context of the
//! request (`x-b3-*` or the single `b3` header), the span's ids and the headers injected
//! into the upstream request, and the span's Zipkin v2 JSON. Pure: no I/O, no clock; the
//! reporter that sends the spans is `collector`.

pub mod collector;
pub mod datadog;
pub mod http;
pub mod msgpack;

use std::fmt::Write as _;

use crate::config::{CustomTagValue, Tracing};

/// Why a request is traced (Envoy's `Tracing::Reason`, as packed in the request id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotTraceable,
    Sampling,
    ServiceForced,
    ClientForced,
}

impl Reason {
    pub fn traced(self) -> bool {
        self != Reason::NotTraceable
    }
}

/// The UUID character that carries the reason (Envoy's UUID request id extension), and its
/// values.
const REASON_AT: usize = 14;
const NO_TRACE: u8 = b'4';
const SAMPLED: u8 = b'9';
const FORCED: u8 = b'a';
const CLIENT: u8 = b'b';

/// The reason a request id carries: only a 36-character id carries one.
pub fn reason_of(rid: &[u8]) -> Reason {
    if rid.len() != 36 {
        return Reason::NotTraceable;
    }
    match rid.get(REASON_AT) {
        Some(&SAMPLED) => Reason::Sampling,
        Some(&FORCED) => Reason::ServiceForced,
        Some(&CLIENT) => Reason::ClientForced,
        _ => Reason::NotTraceable,
    }
}

fn set_reason(rid: &mut [u8], r: Reason) {
    if rid.len() != 36 {
        return;
    }
    if let Some(c) = rid.get_mut(REASON_AT) {
        *c = match r {
            Reason::NotTraceable => NO_TRACE,
            Reason::Sampling => SAMPLED,
            Reason::ServiceForced => FORCED,
            Reason::ClientForced => CLIENT,
        };
    }
}

/// `strtoull(s, 16)` as Envoy's `atoull` uses it: hex digits only (an empty string is 0),
/// refused when it does not fit 64 bits.
pub fn parse_hex(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Envoy's `mutateTracingRequestHeader` and `shouldTraceRequest`: the request id (changed
/// in place when its reason changes) decides. `client_roll` is a random number for
/// `client_sampling`.
pub fn decide(
    rid: Option<&mut [u8]>,
    client_trace_id: bool,
    forced: bool,
    t: &Tracing,
    client_roll: u64,
) -> Reason {
    let Some(rid) = rid else {
        return Reason::NotTraceable;
    };
    // An id whose first 8 characters are not hex is left alone (Envoy: "corrupted").
    let Some(n) = rid.get(..8).and_then(parse_hex) else {
        return reason_of(rid);
    };
    let result = n % 10_000;
    if reason_of(rid) == Reason::NotTraceable {
        if client_trace_id && client_roll % 10_000 < u64::from(t.client_sampling) {
            set_reason(rid, Reason::ClientForced);
        } else if forced {
            set_reason(rid, Reason::ServiceForced);
        } else if result < u64::from(t.random_sampling) {
            set_reason(rid, Reason::Sampling);
        }
    }
    if result >= u64::from(t.overall_sampling) {
        set_reason(rid, Reason::NotTraceable);
    }
    reason_of(rid)
}

/// A B3 context a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// The high 64 bits of a 128-bit trace id; 0 for a 64-bit one.
    pub trace_hi: u64,
    pub trace: u64,
    pub span: u64,
    /// 0: none.
    pub parent: u64,
}

/// What the request's B3 headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extracted {
    /// No context: a root span.
    None,
    Context(Context),
    /// A malformed context: Envoy then traces nothing (no span, no header injected).
    Invalid,
}

fn first<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn sampling_flag(c: u8) -> Option<bool> {
    match c {
        b'1' | b'd' => Some(true),
        b'0' => Some(false),
        _ => None,
    }
}

/// The client's sampling decision: the `b3` header's flag, else `x-b3-sampled` (`1` or
/// `true` samples); `None` when it says nothing.
pub fn extract_sampled(headers: &[httparse::Header<'_>]) -> Option<bool> {
    if let Some(b3) = first(headers, "b3") {
        let at = match b3.len() {
            1 => 0,
            35 | 52 => 34,
            51 | 68 => 50,
            _ => return None,
        };
        return b3.get(at).copied().and_then(sampling_flag);
    }
    let s = first(headers, "x-b3-sampled")?;
    Some(s == b"1" || s == b"true")
}

/// The client's span context (the single `b3` header wins over `x-b3-*`).
pub fn extract(headers: &[httparse::Header<'_>]) -> Extracted {
    if let Some(b3) = first(headers, "b3") {
        return single(b3);
    }
    let (Some(tid), Some(sid)) = (
        first(headers, "x-b3-traceid"),
        first(headers, "x-b3-spanid"),
    ) else {
        return Extracted::None;
    };
    let ids = || {
        let (trace_hi, trace) = if tid.len() == 32 {
            (parse_hex(tid.get(..16)?)?, parse_hex(tid.get(16..)?)?)
        } else {
            (0, parse_hex(tid)?)
        };
        let span = parse_hex(sid)?;
        let parent = match first(headers, "x-b3-parentspanid") {
            Some(p) if !p.is_empty() => parse_hex(p)?,
            _ => 0,
        };
        Some(Context {
            trace_hi,
            trace,
            span,
            parent,
        })
    };
    ids().map_or(Extracted::Invalid, Extracted::Context)
}

/// `b3: {traceid}-{spanid}[-{sampled}[-{parentid}]]`, or a lone sampling flag.
fn single(b3: &[u8]) -> Extracted {
    if b3.len() == 1 {
        return match b3.first().copied().and_then(sampling_flag) {
            Some(_) => Extracted::None,
            None => Extracted::Invalid,
        };
    }
    if b3.len() < 33 || b3.len() > 68 {
        return Extracted::Invalid;
    }
    let parse = || {
        let mut pos = 0;
        let mut c = Context::default();
        if b3.get(32) == Some(&b'-') {
            c.trace_hi = parse_hex(b3.get(..16)?)?;
            pos = 16;
        }
        c.trace = parse_hex(b3.get(pos..pos + 16)?)?;
        pos += 16;
        if b3.get(pos) != Some(&b'-') {
            return None;
        }
        pos += 1;
        c.span = parse_hex(b3.get(pos..pos + 16)?)?;
        pos += 16;
        if b3.len() > pos {
            if b3.len() == pos + 1 || b3.get(pos) != Some(&b'-') {
                return None;
            }
            pos += 1;
            let flag_alone = b3.len() == pos + 1 || b3.get(pos + 1) == Some(&b'-');
            if !flag_alone || sampling_flag(*b3.get(pos)?).is_none() {
                return None;
            }
            pos += 1;
            if b3.len() > pos {
                if b3.len() != pos + 17 {
                    return None;
                }
                c.parent = parse_hex(b3.get(pos + 1..)?)?;
            }
        }
        Some(c)
    };
    parse().map_or(Extracted::Invalid, Extracted::Context)
}

/// The request's span as the Zipkin tracer starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub trace_hi: u64,
    pub trace: u64,
    pub id: u64,
    /// 0: a root span.
    pub parent: u64,
    pub sampled: bool,
}

/// Envoy's Zipkin `startSpan`: a root span (span id = trace id, a random high half with
/// `trace_id_128bit`) or a child of the client's context — except an ingress span with
/// `shared_span_context`, which takes the client's span id and parent. `rand` gives random
/// 64-bit numbers.
pub fn start(
    ctx: Option<Context>,
    sampled: bool,
    egress: bool,
    shared_span_context: bool,
    trace_id_128bit: bool,
    rand: &mut dyn FnMut() -> u64,
) -> Ids {
    match ctx {
        None => {
            let id = rand();
            let trace_hi = if trace_id_128bit { rand() } else { 0 };
            Ids {
                trace_hi,
                trace: id,
                id,
                parent: 0,
                sampled,
            }
        }
        Some(c) if egress || !shared_span_context => Ids {
            trace_hi: c.trace_hi,
            trace: c.trace,
            id: rand(),
            parent: c.span,
            sampled,
        },
        Some(c) => Ids {
            trace_hi: c.trace_hi,
            trace: c.trace,
            id: c.span,
            parent: c.parent,
            sampled,
        },
    }
}

/// 16 lower-case hex digits.
pub fn hex16(n: u64) -> String {
    format!("{n:016x}")
}

impl Ids {
    /// The trace id as Zipkin writes it: 32 digits for a 128-bit id, else 16.
    pub fn trace_hex(&self) -> String {
        if self.trace_hi != 0 {
            format!("{:016x}{:016x}", self.trace_hi, self.trace)
        } else {
            hex16(self.trace)
        }
    }

    /// The `x-b3-*` headers Envoy's Zipkin span injects into the upstream request.
    pub fn b3_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("x-b3-traceid", self.trace_hex()),
            ("x-b3-spanid", hex16(self.id)),
        ];
        if self.parent != 0 {
            h.push(("x-b3-parentspanid", hex16(self.parent)));
        }
        h.push(("x-b3-sampled", if self.sampled { "1" } else { "0" }.into()));
        h
    }
}

/// What the upstream request carries because of tracing: the request id (when tracing
/// generated or changed it), the B3 headers, and which client headers they replace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inject {
    pub rid: Option<[u8; 36]>,
    /// Empty when the client's context was malformed (nothing injected, as in Envoy).
    pub headers: Vec<(&'static str, String)>,
    /// An ingress span: the client's `x-envoy-decorator-operation` names it and is removed.
    pub ingress: bool,
}

impl Inject {
    /// Whether the client's header `n` is dropped from the upstream request.
    pub fn replaces(&self, n: &str) -> bool {
        (self.rid.is_some() && n.eq_ignore_ascii_case("x-request-id"))
            || (self.ingress && n.eq_ignore_ascii_case("x-envoy-decorator-operation"))
            || self.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n))
    }

    /// The value this request's header `n` has once tracing changed it, if it did.
    pub fn header(&self, n: &str) -> Option<String> {
        self.value(n).map(str::to_string)
    }

    /// `header`, borrowed.
    pub fn value(&self, n: &str) -> Option<&str> {
        if n.eq_ignore_ascii_case("x-request-id") {
            if let Some(r) = &self.rid {
                return std::str::from_utf8(r).ok();
            }
        }
        self.headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

/// A started span: what is known when the request is routed. The rest comes from the
/// request's record when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub ids: Ids,
    /// Server (ingress) or client (egress) span.
    pub server: bool,
    pub name: String,
    /// Wall-clock start in µs since the epoch.
    pub start_us: u64,
    /// Tags from the request, in Envoy's order.
    pub tags: Vec<(String, String)>,
    /// `custom_tags`, read from the request; set last, so they win.
    pub custom: Vec<(String, String)>,
    /// Which reporter sends it (`collector::Tracer`).
    pub reporter: usize,
    /// A Datadog span's sampling and propagation state; `None` for Zipkin.
    pub dd: Option<Box<datadog::Trace>>,
}

/// What the end of the request adds to the span.
pub struct End<'a> {
    pub duration_us: u64,
    pub status: u16,
    pub flags: &'a str,
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    pub cluster: Option<&'a str>,
}

/// The custom tags' values for a request; `req` reads a request header.
pub fn custom_tags(t: &Tracing, req: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    t.custom_tags
        .iter()
        .map(|c| {
            let v = match &c.value {
                CustomTagValue::Literal(v) => v.clone(),
                CustomTagValue::Header { name, default } => {
                    req(name).unwrap_or_else(|| default.clone())
                }
            };
            (c.tag.clone(), v)
        })
        .collect()
}

/// The span as one Zipkin v2 JSON object (Envoy's `JsonV2Serializer`): tags with empty
/// values are left out (Envoy's Zipkin span drops them); `shared` on a server span with
/// `shared_span_context`.
pub fn json(
    out: &mut String,
    s: &Span,
    end: &End<'_>,
    endpoint: &Endpoint,
    shared_span_context: bool,
) {
    let mut tags: Vec<(&str, String)> = s
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    end_tags(&mut tags, end);
    tags.extend(s.custom.iter().map(|(k, v)| (k.as_str(), v.clone())));
    // Envoy's Zipkin span drops empty values.
    let seen = last_per_key(&tags, false);
    let js = crate::stats::json_str;
    out.push_str("{\"traceId\":\"");
    out.push_str(&s.ids.trace_hex());
    out.push('"');
    if s.ids.parent != 0 {
        let _ = write!(out, ",\"parentId\":\"{:016x}\"", s.ids.parent);
    }
    let _ = write!(out, ",\"id\":\"{:016x}\"", s.ids.id);
    out.push_str(if s.server {
        ",\"kind\":\"SERVER\""
    } else {
        ",\"kind\":\"CLIENT\""
    });
    if !s.name.is_empty() {
        out.push_str(",\"name\":");
        js(out, &s.name);
    }
    let _ = write!(
        out,
        ",\"timestamp\":{},\"duration\":{}",
        s.start_us, end.duration_us
    );
    out.push_str(",\"localEndpoint\":{");
    let mut comma = false;
    if let Some(ip) = endpoint.ip {
        let key = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
        let _ = write!(out, "\"{key}\":\"{ip}\",\"port\":0");
        comma = true;
    }
    if !endpoint.service_name.is_empty() {
        if comma {
            out.push(',');
        }
        out.push_str("\"serviceName\":");
        js(out, &endpoint.service_name);
    }
    out.push('}');
    if !seen.is_empty() {
        out.push_str(",\"tags\":{");
        for (i, (k, v)) in seen.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            js(out, k);
            out.push(':');
            js(out, v);
        }
        out.push('}');
    }
    if s.server && shared_span_context {
        out.push_str(",\"shared\":true");
    }
    out.push('}');
}

/// The tags Envoy's connection manager sets on a span when its request ends.
fn end_tags(tags: &mut Vec<(&str, String)>, end: &End<'_>) {
    tags.push(("request_size", end.bytes_rx.to_string()));
    tags.push(("response_size", end.bytes_tx.to_string()));
    tags.push(("component", "proxy".into()));
    if let Some(c) = end.cluster {
        tags.push(("upstream_cluster", c.to_string()));
        tags.push(("upstream_cluster.name", c.to_string()));
    }
    tags.push(("http.status_code", end.status.to_string()));
    tags.push((
        "response_flags",
        if end.flags.is_empty() { "-" } else { end.flags }.to_string(),
    ));
    if end.status == 0 || end.status >= 500 {
        tags.push(("error", "true".into()));
    }
}

/// One value per key, the last set winning, in key order; empty keys (and empty values
/// unless `keep_empty`) left out.
fn last_per_key<'a>(tags: &'a [(&'a str, String)], keep_empty: bool) -> Vec<(&'a str, &'a str)> {
    let mut seen: Vec<(&str, &str)> = Vec::with_capacity(tags.len());
    for (k, v) in tags.iter().rev() {
        if !k.is_empty() && (keep_empty || !v.is_empty()) && !seen.iter().any(|(s, _)| s == k) {
            seen.push((k, v));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(b.0));
    seen
}

/// The proxy as Zipkin's `localEndpoint` names it: the service cluster and the host's
/// address (port 0, as Envoy's local address has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub service_name: String,
    pub ip: Option<std::net::IpAddr>,
}

/// Envoy's `http.url` tag: scheme, host and the path cut at `max` bytes (on a character
/// boundary).
pub fn url(scheme: &str, host: &str, path: &str, max: usize) -> String {
    let mut cut = path.len().min(max);
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{scheme}://{host}{}", path.get(..cut).unwrap_or(path))
}

#[cfg(test)]
mod tests;
