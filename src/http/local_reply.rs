//! The connection manager's `local_reply_config` on the data path, as Envoy's
//! `LocalReplyImpl::rewrite` does it: every reply baton makes itself (no route, no upstream,
//! timeouts, bad requests, direct responses and redirects) goes through the mappers in order;
//! the first whose filter matches may replace the body, add headers and change the status;
//! then a body format (that mapper's, else `body_format`) renders the body from the request's
//! record. Formats and header filters read request headers through the listener's capture
//! slots (shared with its access logs), so the values are captured when the request begins.

use std::time::Instant;

use crate::access_log::format::{Format, Names, Slots};
use crate::access_log::json::JsonFormat;
use crate::access_log::{Flags, Rq};
use crate::config::template::{Template, Vars};
use crate::config::{BodyFormat, BodyFormatKind, Comparison, HeaderMatcher, LocalReplyConfig};
use crate::route::edits::{apply, AddOp, HeaderList, Op};

/// One listener's compiled `local_reply_config`.
#[derive(Debug)]
pub struct LocalReply {
    mappers: Vec<Mapper>,
    body: Option<Body>,
}

#[derive(Debug)]
struct Mapper {
    filter: Filter,
    status: Option<u16>,
    body: Option<String>,
    format: Option<Body>,
    headers: Vec<Op>,
}

#[derive(Debug)]
enum Filter {
    Status(Comparison),
    Duration(Comparison),
    /// The matcher and the capture slot of its header.
    Header(HeaderMatcher, usize),
    /// Any of these flags; 0 with `any`: any flag at all (an empty `flags` list).
    Flags {
        mask: u16,
        any: bool,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug)]
enum Render {
    Text(Format),
    Json(JsonFormat),
}

#[derive(Debug)]
struct Body {
    render: Render,
    content_type: String,
}

/// What a local reply became.
#[derive(Debug)]
pub struct Rewritten<'a> {
    pub status: u16,
    /// The body to send.
    pub body: String,
    /// The content type of a body made by a format (`text/plain` for the default one).
    pub content_type: &'a str,
    /// A mapper changed `content-type` among the headers (Envoy's "custom content type").
    pub custom_content_type: bool,
}

fn filter(f: &crate::config::LogFilter, slots: &mut Slots) -> Filter {
    use crate::config::LogFilter as L;
    match f {
        L::Status(c) => Filter::Status(*c),
        L::Duration(c) => Filter::Duration(*c),
        L::Header(h) => Filter::Header(h.clone(), slots.req_slot(&h.name)),
        L::ResponseFlags(names) => Filter::Flags {
            mask: names
                .iter()
                // Envoy's names baton never sets (`RL`, `FI`, ...) have no bit: they never match.
                .filter_map(|n| Flags::NAMES.iter().find(|(_, f)| f == n).map(|(b, _)| *b))
                .fold(0, |a, b| a | b),
            any: names.is_empty(),
        },
        L::And(list) => Filter::And(list.iter().map(|f| filter(f, slots)).collect()),
        L::Or(list) => Filter::Or(list.iter().map(|f| filter(f, slots)).collect()),
    }
}

fn body(b: &BodyFormat, slots: &mut Slots) -> Body {
    Body {
        render: match &b.kind {
            BodyFormatKind::Text(t) => {
                Render::Text(Format::compile_local_reply(t, slots, b.omit_empty_values))
            }
            BodyFormatKind::Json(j) => Render::Json(JsonFormat::compile(j, slots)),
        },
        content_type: b.content_type.clone(),
    }
}

impl Filter {
    fn matches(&self, rq: &Rq, now: Instant) -> bool {
        match self {
            Filter::Status(c) => c.holds(u64::from(rq.status)),
            Filter::Duration(c) => {
                let ms = now.saturating_duration_since(rq.start).as_millis();
                c.holds(u64::try_from(ms).unwrap_or(u64::MAX))
            }
            Filter::Header(m, slot) => {
                let v = rq.cap.as_deref().and_then(|c| c.req(*slot));
                crate::route::matcher::value_matches(m, v)
            }
            Filter::Flags { mask, any } => {
                if *any {
                    !rq.flags.is_empty()
                } else {
                    rq.flags.bits() & mask != 0
                }
            }
            Filter::And(l) => l.iter().all(|f| f.matches(rq, now)),
            Filter::Or(l) => l.iter().any(|f| f.matches(rq, now)),
        }
    }
}

impl LocalReply {
    /// Compiles `cfg`, registering every request header it reads in `slots`.
    pub fn compile(cfg: &LocalReplyConfig, slots: &mut Slots) -> LocalReply {
        let mappers = cfg
            .mappers
            .iter()
            .map(|m| {
                let headers = m
                    .headers_to_add
                    .iter()
                    .map(|h| {
                        // Checked at load; an unparsable value cannot reach here.
                        let value = Template::parse(&h.value).unwrap_or_default();
                        for n in value.req_names() {
                            slots.req_slot(n);
                        }
                        Op::Add(AddOp {
                            name: h.name.clone(),
                            value,
                            action: h.append_action,
                            keep_empty: h.keep_empty_value,
                        })
                    })
                    .collect();
                Mapper {
                    filter: filter(&m.filter, slots),
                    status: m.status_code,
                    body: m.body.clone(),
                    format: m.body_format_override.as_ref().map(|b| body(b, slots)),
                    headers,
                }
            })
            .collect();
        LocalReply {
            mappers,
            body: cfg.body_format.as_ref().map(|b| body(b, slots)),
        }
    }

    /// Rewrites a local reply of `status` with `text` as its body. `rq` is the request's
    /// record: its status becomes the reply's (what status filters and `%RESPONSE_CODE%`
    /// see, and what the stats and access log count), its local body the mapper's body.
    /// A matching mapper's headers are applied to `headers` (the reply's other headers).
    #[allow(clippy::too_many_arguments)]
    pub fn rewrite<'h>(
        &'h self,
        status: u16,
        text: &str,
        rq: &mut Rq,
        now: Instant,
        slots: &Slots,
        names: &Names<'_>,
        headers: &mut HeaderList<'h>,
    ) -> Rewritten<'h> {
        rq.status = status;
        let mut status = status;
        let mut body: Option<&str> = None;
        let mut format = self.body.as_ref();
        let mut custom_content_type = false;
        if let Some(m) = self.mappers.iter().find(|m| m.filter.matches(rq, now)) {
            if let Some(b) = &m.body {
                body = Some(b);
            }
            if !m.headers.is_empty() {
                let before = content_type(headers);
                let cap = rq.cap.as_deref();
                let req = |name: &str| -> Option<String> {
                    let c = cap?;
                    c.req(slots.find_req(name)?).map(str::to_string)
                };
                let vars = Vars {
                    peer: rq.peer,
                    start: cap.map_or_else(std::time::SystemTime::now, |c| c.start_wall),
                    minor: rq.minor,
                    upstream: rq.upstream,
                    req: &req,
                };
                apply(headers, &m.headers, &|t| t.render(&vars));
                custom_content_type = content_type(headers) != before;
            }
            if let Some(s) = m.status {
                status = s;
                rq.status = s;
            }
            if m.format.is_some() {
                format = m.format.as_ref();
            }
        }
        let local = body.unwrap_or(text);
        rq.local_body = Some(local.into());
        let Some(f) = format else {
            return Rewritten {
                status,
                body: local.to_string(),
                content_type: "text/plain",
                custom_content_type,
            };
        };
        let mut out = Vec::with_capacity(local.len() + 64);
        match &f.render {
            Render::Text(t) => t.render(&mut out, rq, names),
            Render::Json(j) => j.render(&mut out, rq, names),
        }
        Rewritten {
            status,
            body: String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            content_type: &f.content_type,
            custom_content_type,
        }
    }
}

/// The `content-type` value among `headers`, if any.
fn content_type(headers: &HeaderList<'_>) -> Option<Vec<u8>> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_vec())
}
