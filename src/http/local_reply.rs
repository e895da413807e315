//! The connection manager's `local_reply_config` on the data path, as Envoy's
//! `LocalReplyImpl::rewrite` does it: every reply baton makes itself (no route, no upstream,
//! timeouts, bad requests, direct responses and redirects) goes through the mappers in order;
//! the first whose filter matches may replace the body, add headers and change the status;
//! then a body format (that mapper's, else `body_format`) renders the body from the request's
//! record. Formats and header filters read request headers through the listener's capture
//! slots (shared with its access logs), so the values are captured when the request begins.

use std::time::Instant;

use crate::access_log::filter::Filter;
use crate::access_log::format::{Format, Names, Slots};
use crate::access_log::json::JsonFormat;
use crate::access_log::Rq;
use crate::config::template::{Template, Vars};
use crate::config::{BodyFormat, BodyFormatKind, LocalReplyConfig};
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
                    filter: Filter::compile(&m.filter, slots),
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
