//! Envoy's Datadog tracer (`envoy.tracers.datadog`, dd-trace-cpp since Envoy 1.27), pure:
//! the context a client sent (Datadog `x-datadog-*` headers, else W3C
//! `traceparent`/`tracestate`: dd-trace-cpp's default extraction styles), the sampling
//! priority (the client's, else Envoy's decision: not traced is a user drop, traced is
//! left to the agent's `rate_by_service`), the headers injected upstream (both styles),
//! and the span as the agent's `/v0.4/traces` msgpack reads it. Every span is reported,
//! a dropped one too (its priority tells the agent), as dd-trace-cpp does.

use std::fmt::Write as _;

use super::{msgpack, End, Ids, Span};

/// Every span's name: dd-trace-cpp's "operation", which Envoy fixes; Envoy's operation
/// (host or decorator) is the span's resource.
pub const OPERATION: &str = "envoy.proxy";
/// dd-trace-cpp's default span type.
const SPAN_TYPE: &str = "web";

/// Sampling priorities (dd-trace-cpp's `SamplingPriority`).
pub const USER_DROP: i32 = -1;
pub const AUTO_DROP: i32 = 0;
pub const AUTO_KEEP: i32 = 1;

/// Sampling mechanisms, as `_dd.p.dm` names them: no agent rate known yet, an agent rate.
const DEFAULT: u8 = 0;
const AGENT_RATE: u8 = 1;

/// The longest `x-datadog-tags` read or written (dd-trace-cpp's default).
const MAX_TAGS_HEADER: usize = 512;
/// The longest `tracestate` `dd` entry written (the W3C limit dd-trace-cpp applies).
const MAX_DD_STATE: usize = 256;

/// A context a client sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extracted {
    /// The high 64 bits of the trace id (W3C's, or Datadog's `_dd.p.tid`); 0: none.
    pub trace_hi: u64,
    pub trace: u64,
    /// 0: the client asks this proxy to be the root (an origin without a parent).
    pub parent: u64,
    pub priority: Option<i32>,
    pub origin: Option<String>,
    /// The trace's `_dd.p.*` propagation tags, in order.
    pub tags: Vec<(String, String)>,
    /// Other vendors' `tracestate` entries, passed on after ours.
    pub other_state: Option<String>,
}

/// What the proxy adds to a span beyond Envoy's `Ids`: the trace's sampling and
/// propagation state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub priority: i32,
    /// The agent rate the proxy applied (`_dd.agent_psr`), when it decided.
    pub agent_rate: Option<f64>,
    pub origin: Option<String>,
    pub tags: Vec<(String, String)>,
    pub other_state: Option<String>,
}

fn first<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn dec<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// The context in the request's headers (Datadog's first, as dd-trace-cpp's default
/// extraction order); `None` when there is none or it is malformed: Envoy then starts a
/// new trace.
pub fn extract(headers: &[httparse::Header<'_>]) -> Option<Extracted> {
    let dd = extract_datadog(headers).ok()?;
    let w3c = extract_w3c(headers);
    let mut c = match (dd, w3c) {
        (Some(mut d), Some(w)) => {
            if d.trace == w.trace && (d.trace_hi == 0 || d.trace_hi == w.trace_hi) {
                d.other_state = w.other_state;
            }
            d
        }
        (Some(d), None) => d,
        (None, Some(w)) => w,
        (None, None) => return None,
    };
    // A trace id without a parent is a root only when an origin started it.
    if c.trace == 0 || (c.parent == 0 && c.origin.is_none()) {
        return None;
    }
    if c.trace_hi != 0 {
        set_tag(&mut c.tags, "_dd.p.tid", format!("{:016x}", c.trace_hi));
    }
    Some(c)
}

/// The `x-datadog-*` headers: `Ok(None)` without a trace id, `Err` when one is malformed
/// (a parent without a trace is one).
fn extract_datadog(headers: &[httparse::Header<'_>]) -> Result<Option<Extracted>, ()> {
    let id = |n: &str| match first(headers, n) {
        None => Ok(None),
        Some(v) => dec::<u64>(v).map(Some).ok_or(()),
    };
    let trace = id("x-datadog-trace-id")?;
    let parent = id("x-datadog-parent-id")?;
    let Some(trace) = trace else {
        return if parent.is_some() { Err(()) } else { Ok(None) };
    };
    let priority = match first(headers, "x-datadog-sampling-priority") {
        Some(v) => Some(dec::<i32>(v).ok_or(())?),
        None => None,
    };
    let origin = first(headers, "x-datadog-origin").map(|o| String::from_utf8_lossy(o).into());
    let mut c = Extracted {
        trace,
        parent: parent.unwrap_or(0),
        priority,
        origin,
        ..Extracted::default()
    };
    if let Some(t) = first(headers, "x-datadog-tags").filter(|t| t.len() <= MAX_TAGS_HEADER) {
        c.tags = decode_tags(t);
        if let Some(hi) = c
            .tags
            .iter()
            .find(|(k, _)| k == "_dd.p.tid")
            .and_then(|(_, v)| (v.len() == 16).then(|| super::parse_hex(v.as_bytes()))?)
        {
            c.trace_hi = hi;
        }
    }
    Ok(Some(c))
}

/// `x-datadog-tags`: `key=value` pairs separated by commas; only `_dd.p.*` keys propagate.
/// A malformed header gives none.
fn decode_tags(v: &[u8]) -> Vec<(String, String)> {
    let Ok(s) = std::str::from_utf8(v) else {
        return Vec::new();
    };
    let mut tags = Vec::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Vec::new();
        };
        let k = k.trim();
        if k.starts_with("_dd.p.") {
            tags.push((k.to_string(), v.trim().to_string()));
        }
    }
    tags
}

/// `traceparent` (`00-<trace>-<parent>-<flags>`) and the `dd` entry of `tracestate`; a
/// malformed `traceparent` is no context (dd-trace-cpp only tags the error).
fn extract_w3c(headers: &[httparse::Header<'_>]) -> Option<Extracted> {
    let tp = std::str::from_utf8(first(headers, "traceparent")?)
        .ok()?
        .trim();
    let mut parts = tp.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && lower_hex(trace, 32)
        && lower_hex(parent, 16)
        && lower_hex(flags, 2);
    if !ok {
        return None;
    }
    let mut c = Extracted {
        trace_hi: super::parse_hex(trace.get(..16)?.as_bytes())?,
        trace: super::parse_hex(trace.get(16..)?.as_bytes())?,
        parent: super::parse_hex(parent.as_bytes())?,
        ..Extracted::default()
    };
    if c.parent == 0 || (c.trace == 0 && c.trace_hi == 0) {
        return None;
    }
    let sampled = super::parse_hex(flags.as_bytes())? & 1 == 1;
    let mut priority = None;
    let mut others: Vec<&str> = Vec::new();
    if let Some(ts) = first(headers, "tracestate").and_then(|t| std::str::from_utf8(t).ok()) {
        for entry in ts.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some(dd) = entry.strip_prefix("dd=") else {
                others.push(entry);
                continue;
            };
            for field in dd.split(';') {
                let Some((k, v)) = field.split_once(':') else {
                    continue;
                };
                match k {
                    "s" => priority = v.parse::<i32>().ok(),
                    "o" => c.origin = Some(v.replace('~', "=")),
                    _ => {
                        if let Some(name) = k.strip_prefix("t.") {
                            c.tags.push((format!("_dd.p.{name}"), v.replace('~', "=")));
                        }
                    }
                }
            }
        }
    }
    // The flag wins over a `dd` priority that disagrees with it.
    c.priority = Some(match priority {
        Some(p) if (p > 0) == sampled => p,
        _ => i32::from(sampled),
    });
    if !others.is_empty() {
        c.other_state = Some(others.join(","));
    }
    Some(c)
}

fn set_tag(tags: &mut Vec<(String, String)>, k: &str, v: String) {
    match tags.iter_mut().find(|(n, _)| n == k) {
        Some(t) => t.1 = v,
        None => tags.push((k.to_string(), v)),
    }
}

/// The agent's sampling rates (its answer's `rate_by_service`), keyed
/// `service:<service>,env:<env>`; the empty service and env is the default rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates(Vec<(String, f64)>);

impl Rates {
    /// The rate for `service` (baton sets no env) and how it was found; 1.0 before the
    /// agent said anything.
    fn of(&self, service: &str) -> (f64, u8) {
        let key = format!("service:{service},env:");
        let found = |k: &str| self.0.iter().find(|(n, _)| n == k).map(|r| r.1);
        match found(&key).or_else(|| found("service:,env:")) {
            Some(r) => (r, AGENT_RATE),
            None => (1.0, DEFAULT),
        }
    }

    /// The rates in an agent's answer (`{"rate_by_service": {"service:a,env:": 0.5, …}}`);
    /// `None` when it has none or they are malformed (the previous rates stay).
    pub fn parse(body: &[u8]) -> Option<Rates> {
        let s = std::str::from_utf8(body).ok()?;
        let at = s.find("\"rate_by_service\"")? + "\"rate_by_service\"".len();
        let rest = s.get(at..)?.trim_start().strip_prefix(':')?;
        let mut rest = rest.trim_start().strip_prefix('{')?;
        let mut rates = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                let _ = r;
                return Some(Rates(rates));
            }
            if !rates.is_empty() {
                rest = rest.strip_prefix(',')?.trim_start();
            }
            let (key, r) = json_string(rest)?;
            let r = r.trim_start().strip_prefix(':')?.trim_start();
            let end = r
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(r.len());
            let rate: f64 = r.get(..end)?.parse().ok()?;
            if !(0.0..=1.0).contains(&rate) {
                return None;
            }
            rates.push((key, rate));
            rest = r.get(end..)?;
        }
    }
}

/// A JSON string at the start of `s` (simple escapes only) and what follows it.
fn json_string(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, s.get(i + 1..)?)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '"' | '\\' | '/' => e,
                    'n' => '\n',
                    't' => '\t',
                    _ => return None,
                });
            }
            _ => out.push(c),
        }
    }
    None
}

/// dd-trace-cpp's sampling hash: a trace is kept when its id, so hashed, is under the
/// rate's share of the 64-bit range.
fn keeps(trace: u64, rate: f64) -> bool {
    let max = if rate >= 1.0 {
        u64::MAX
    } else {
        (rate * u64::MAX as f64) as u64
    };
    trace.wrapping_mul(1_111_111_111_111_111_111) <= max
}

/// A rate as dd-trace-cpp writes it in `_dd.p.ksr`: six decimals at most, no trailing
/// zeros.
fn format_rate(r: f64) -> String {
    let s = format!("{r:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The request's span: a child of the client's context, else a root with a 128-bit trace
/// id whose high half starts with the time (dd-trace-cpp's default). `traced` is Envoy's
/// decision, which only counts when the client sent no priority. `now_s`: Unix seconds;
/// `rand`: random 64-bit numbers.
pub fn start(
    ctx: Option<Extracted>,
    traced: bool,
    rates: &Rates,
    service: &str,
    now_s: u64,
    rand: &mut dyn FnMut() -> u64,
) -> (Ids, Trace) {
    let (ids, mut trace, priority) = match ctx {
        None => {
            let lo = rand();
            let hi = (now_s & 0xffff_ffff) << 32;
            let ids = Ids {
                trace_hi: hi,
                trace: lo,
                id: lo,
                parent: 0,
                sampled: true,
            };
            let trace = Trace {
                tags: vec![("_dd.p.tid".into(), format!("{hi:016x}"))],
                ..Trace::default()
            };
            (ids, trace, None)
        }
        Some(c) => {
            let ids = Ids {
                trace_hi: c.trace_hi,
                trace: c.trace,
                id: rand() & (i64::MAX as u64),
                parent: c.parent,
                sampled: true,
            };
            let trace = Trace {
                origin: c.origin,
                tags: c.tags,
                other_state: c.other_state,
                ..Trace::default()
            };
            (ids, trace, c.priority)
        }
    };
    if let Some(p) = priority {
        trace.priority = p;
        return (ids, trace);
    }
    // Envoy's drop is a manual one (no decision maker); a keep is the agent rate's call.
    let decided = traced.then(|| {
        let (rate, mechanism) = rates.of(service);
        trace.priority = if keeps(ids.trace, rate) {
            AUTO_KEEP
        } else {
            AUTO_DROP
        };
        trace.agent_rate = Some(rate);
        (rate, mechanism)
    });
    if decided.is_none() {
        trace.priority = USER_DROP;
    }
    match decided {
        Some((_, m)) if trace.priority > 0 => set_tag(&mut trace.tags, "_dd.p.dm", format!("-{m}")),
        _ => trace.tags.retain(|(k, _)| k != "_dd.p.dm"),
    }
    // dd-trace-cpp records an agent's rate after the decision maker.
    if let Some((rate, _)) = decided.filter(|d| d.1 != DEFAULT) {
        set_tag(&mut trace.tags, "_dd.p.ksr", format_rate(rate));
    }
    (ids, trace)
}

/// The headers Envoy's Datadog span injects upstream: Datadog's and W3C's.
pub fn headers(ids: &Ids, t: &Trace) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("x-datadog-trace-id", ids.trace.to_string()),
        ("x-datadog-parent-id", ids.id.to_string()),
        ("x-datadog-sampling-priority", t.priority.to_string()),
    ];
    if let Some(o) = &t.origin {
        h.push(("x-datadog-origin", o.clone()));
    }
    let tags = t
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if !tags.is_empty() && tags.len() <= MAX_TAGS_HEADER {
        h.push(("x-datadog-tags", tags));
    }
    let flag = if t.priority > 0 { "01" } else { "00" };
    h.push((
        "traceparent",
        format!(
            "00-{:016x}{:016x}-{:016x}-{flag}",
            ids.trace_hi, ids.trace, ids.id
        ),
    ));
    h.push(("tracestate", tracestate(ids.id, t)));
    h
}

/// Our `dd` entry (priority, parent, origin, `t.*` tags but the trace id's high half, cut
/// at whole fields to 256 bytes), then the other vendors' entries.
fn tracestate(span: u64, t: &Trace) -> String {
    let clean = |s: &str, bad: &str| -> String {
        s.chars()
            .map(|c| {
                if c == '=' {
                    '~'
                } else if !(' '..='~').contains(&c) || bad.contains(c) {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    let mut s = format!("dd=s:{};p:{span:016x}", t.priority);
    if let Some(o) = &t.origin {
        let _ = write!(s, ";o:{}", clean(o, ",;~"));
    }
    for (k, v) in &t.tags {
        let Some(name) = k.strip_prefix("_dd.p.").filter(|_| k != "_dd.p.tid") else {
            continue;
        };
        let _ = write!(s, ";t.{}:{}", clean(name, " ,;="), clean(v, ",;~"));
    }
    while s.len() > MAX_DD_STATE {
        match s.rfind(';') {
            Some(i) => s.truncate(i),
            None => break,
        }
    }
    if let Some(o) = &t.other_state {
        s.push(',');
        s.push_str(o);
    }
    s
}

/// The process as every span names it: `service` is the config's; `runtime_id` one per
/// process run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub runtime_id: String,
    pub pid: u32,
}

/// One trace chunk (an array of this one span) as msgpack, dd-trace-cpp's twelve fields.
/// Envoy's tags are the span's `meta` but `error`, which sets the span's error flag.
pub fn encode(out: &mut Vec<u8>, s: &Span, end: &End<'_>, service: &str, p: &Process) {
    let none = Trace::default();
    let t = s.dd.as_deref().unwrap_or(&none);
    let mut meta: Vec<(&str, String)> = s
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    super::end_tags(&mut meta, end);
    meta.extend(s.custom.iter().map(|(k, v)| (k.as_str(), v.clone())));
    for (k, v) in &t.tags {
        meta.push((k, v.clone()));
    }
    if let Some(o) = &t.origin {
        meta.push(("_dd.origin", o.clone()));
    }
    meta.push(("language", "rust".into()));
    meta.push(("runtime-id", p.runtime_id.clone()));
    meta.push((
        "version",
        concat!("baton ", env!("CARGO_PKG_VERSION")).into(),
    ));
    let mut seen = super::last_per_key(&meta, true);
    let error = seen.iter().any(|(k, v)| *k == "error" && *v == "true");
    seen.retain(|(k, _)| *k != "error");
    let mut metrics: Vec<(&str, f64)> = vec![
        ("_sampling_priority_v1", f64::from(t.priority)),
        ("process_id", f64::from(p.pid)),
    ];
    if let Some(r) = t.agent_rate {
        metrics.insert(0, ("_dd.agent_psr", r));
    }
    msgpack::array(out, 1);
    msgpack::map(out, 12);
    let kv = |out: &mut Vec<u8>, k: &str, v: &str| {
        msgpack::str(out, k);
        msgpack::str(out, v);
    };
    kv(out, "service", service);
    kv(out, "name", OPERATION);
    kv(out, "resource", &s.name);
    msgpack::str(out, "trace_id");
    msgpack::uint(out, s.ids.trace);
    msgpack::str(out, "span_id");
    msgpack::uint(out, s.ids.id);
    msgpack::str(out, "parent_id");
    msgpack::uint(out, s.ids.parent);
    msgpack::str(out, "start");
    msgpack::uint(out, s.start_us.saturating_mul(1000));
    msgpack::str(out, "duration");
    msgpack::uint(out, end.duration_us.saturating_mul(1000));
    msgpack::str(out, "error");
    msgpack::int(out, i64::from(error));
    msgpack::str(out, "meta");
    msgpack::map(out, seen.len());
    for (k, v) in &seen {
        kv(out, k, v);
    }
    msgpack::str(out, "metrics");
    msgpack::map(out, metrics.len());
    for (k, v) in metrics {
        msgpack::str(out, k);
        msgpack::f64(out, v);
    }
    kv(out, "type", SPAN_TYPE);
}

#[cfg(test)]
#[path = "datadog_tests.rs"]
mod tests;
