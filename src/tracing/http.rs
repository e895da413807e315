//! Tracing in the connection manager's request path, as Envoy's `traceRequest` does it: the
//! decision and the span when the request is routed, the route's decorator, and the span's
//! end with the request's record. Called only for a connection manager with `tracing`.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{
    custom_tags, datadog, decide, extract, extract_sampled, start, url, End, Extracted, Inject,
    Reason, Span,
};
use crate::access_log::Rq;
use crate::config::{AppendAction, HttpFilterKind, Provider};
use crate::context::Ctx;
use crate::http::codec::RequestHead;
use crate::http::request::{origin, replace_proto, Decision};
use crate::route::matcher::{header_matches, header_value};

/// A span started for a routed request, with what the upstream request must carry.
pub struct Begun {
    pub inject: Inject,
    /// `None` when the client's B3 context was malformed (Envoy's null span).
    pub span: Option<Span>,
    /// The client's `x-envoy-decorator-operation` named the (ingress) span.
    overridden: bool,
    /// Traced because an internal caller forced it (`x-envoy-force-trace`): what an access
    /// log's `traceable_filter` matches, as Envoy's.
    forced: bool,
}

fn first<'a>(req: &'a RequestHead<'_>, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// The tracing decision and the span for `req` on `listener`; `None` when its connection
/// manager does not trace. `begun` is when the request's record started.
pub fn begin(
    ctx: &mut Ctx,
    listener: usize,
    peer: SocketAddr,
    req: &RequestHead<'_>,
    begun: Instant,
) -> Option<Begun> {
    let h = ctx.listeners.get(listener)?.http()?;
    let t = h.hcm.tracing.as_deref()?;
    let tracer = ctx.tracer.as_ref()?;
    let reporter = tracer.reporter_of(&t.provider)?;
    let node_id = tracer.node_id.clone();
    let hcm = &h.hcm;
    let from = origin(req.headers, peer, hcm);
    // The request id as the connection manager leaves it: an edge request's is replaced
    // unless kept, a missing one generated.
    let replace = from.edge && hcm.generate_request_id && !hcm.preserve_external_request_id;
    let (mut rid, generated): (Option<Vec<u8>>, bool) = match first(req, "x-request-id") {
        Some(v) if !replace => (Some(v.to_vec()), false),
        _ if hcm.generate_request_id => (Some(ctx.request_ids.uuid4_bytes().to_vec()), true),
        _ => (None, false),
    };
    let before = rid.clone();
    let client_trace_id = first(req, "x-client-trace-id").is_some();
    // An external request's x-envoy-force-trace is stripped before the decision.
    let forced = from.internal && first(req, "x-envoy-force-trace").is_some();
    let roll = ctx.rng.next_u64();
    let reason = decide(rid.as_deref_mut(), client_trace_id, forced, t, roll);
    // A request the health check filter recognises is never sampled by the decision.
    let health_check = hcm.http_filters.iter().any(|f| match &f.kind {
        HttpFilterKind::HealthCheck(hc) if !f.disabled => {
            hc.headers.iter().all(|m| header_matches(m, req))
        }
        _ => false,
    });
    let traced = reason.traced() && !health_check;
    let forced = traced && reason == Reason::ServiceForced;
    let rid_out = match &rid {
        Some(r) if generated || before.as_ref() != Some(r) => <[u8; 36]>::try_from(&r[..]).ok(),
        _ => None,
    };
    let ingress = !t.egress;
    if let Some(c) = tracer.decision_counter(listener, reason, health_check) {
        ctx.stats.store.inc(c);
    }
    let rng = &mut ctx.rng;
    let (ids, dd) = match &t.provider {
        Provider::Zipkin(z) => {
            let sampled = extract_sampled(req.headers).unwrap_or(traced);
            let context = match extract(req.headers) {
                Extracted::Invalid => {
                    return Some(Begun {
                        inject: Inject {
                            rid: rid_out,
                            headers: Vec::new(),
                            ingress,
                        },
                        span: None,
                        overridden: false,
                        forced,
                    })
                }
                Extracted::None => None,
                Extracted::Context(c) => Some(c),
            };
            let ids = start(
                context,
                sampled,
                t.egress,
                z.shared_span_context,
                z.trace_id_128bit,
                &mut || rng.next_u64(),
            );
            (ids, None)
        }
        Provider::Datadog(d) => {
            let rates = tracer.rates(reporter)?;
            let now_s = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (ids, trace) = datadog::start(
                datadog::extract(req.headers),
                traced,
                rates,
                &d.service,
                now_s,
                &mut || rng.next_u64(),
            );
            (ids, Some(Box::new(trace)))
        }
    };
    let host = req.host.unwrap_or_default();
    // Tags are only read when the span is reported: an unsampled span (still needed for the
    // decorator's header rules) skips them.
    let (tags, custom) = if ids.sampled {
        let mut tags: Vec<(String, String)> = Vec::with_capacity(12);
        let mut tag = |k: &str, v: String| tags.push((k.to_string(), v));
        if let Some(r) = &rid {
            tag("guid:x-request-id", text(r));
        }
        let scheme = match first(req, "x-forwarded-proto") {
            Some(p) if !replace_proto(hcm) => text(p),
            _ if req.secure => "https".into(),
            _ => "http".into(),
        };
        tag(
            "http.url",
            url(&scheme, host, req.path, t.max_path_tag_length),
        );
        tag("http.method", req.method.to_string());
        let downstream = first(req, "x-envoy-downstream-service-cluster").filter(|_| !from.edge);
        tag("downstream_cluster", downstream.map_or("-".into(), text));
        tag(
            "user_agent",
            first(req, "user-agent").map_or("-".into(), text),
        );
        tag("http.protocol", format!("HTTP/1.{}", req.minor));
        tag("peer.address", peer.ip().to_string());
        if let Some(c) = first(req, "x-client-trace-id") {
            tag("guid:x-client-trace-id", text(c));
        }
        tag("node_id", node_id);
        // Envoy's `zone`: baton has no locality, so it is empty (Zipkin leaves it out).
        tag("zone", String::new());
        let getter = |n: &str| header_value(req, n);
        let custom = custom_tags(t, &getter);
        (tags, custom)
    } else {
        (Vec::new(), Vec::new())
    };
    // Ingress: the client's operation names the span (and is not sent on).
    let op = first(req, "x-envoy-decorator-operation")
        .filter(|v| ingress && !v.is_empty())
        .map(text);
    let overridden = op.is_some();
    let age = Instant::now().saturating_duration_since(begun);
    let start_us = SystemTime::now()
        .checked_sub(age)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64);
    let headers = match &dd {
        Some(trace) => datadog::headers(&ids, trace),
        None => ids.b3_headers(),
    };
    let inject = Inject {
        rid: rid_out,
        headers,
        ingress,
    };
    Some(Begun {
        inject,
        span: Some(Span {
            ids,
            server: ingress,
            name: op.unwrap_or_else(|| default_name(&t.provider, t.egress, host)),
            start_us,
            tags,
            custom,
            reporter,
            dd,
        }),
        overridden,
        forced,
    })
}

/// A span's name before a decorator or the client renames it. Zipkin's driver names it by
/// the Host; others get Envoy's operation, `ingress` or `egress <host>`.
fn default_name(p: &Provider, egress: bool, host: &str) -> String {
    match p {
        Provider::Zipkin(_) => host.to_string(),
        Provider::Datadog(_) if egress => format!("egress {host}"),
        Provider::Datadog(_) => "ingress".into(),
    }
}

/// The route is known: its decorator names the span (unless the client's operation did) and,
/// on an ingress span with `propagate`, goes back in the response's
/// `x-envoy-decorator-operation`. The span goes into the request's record.
pub fn routed(ctx: &Ctx, listener: usize, b: Begun, d: &mut Decision, rq: &mut Rq) {
    rq.trace_forced = b.forced;
    if matches!(d, Decision::Forward(_)) {
        crate::observe::traced(ctx, listener, rq, &b.inject);
    }
    let Some(mut span) = b.span else {
        return;
    };
    let route = match d {
        Decision::Local(l) => l.route,
        Decision::Forward(f) => Some(f.route),
        Decision::Pause(_) => None,
    };
    let decorator = route.and_then(|(vh, i)| {
        let m = ctx.listeners.get(listener)?.http()?.router.get(vh, i)?;
        m.route.decorator.as_ref()
    });
    if let (Some(dec), false) = (decorator, b.overridden) {
        span.name = dec.operation.clone();
        if b.inject.ingress && dec.propagate {
            let op = crate::route::edits::Op::fixed(
                "x-envoy-decorator-operation",
                &dec.operation,
                AppendAction::OverwriteIfExistsOrAdd,
            );
            match d {
                Decision::Local(l) => l.edits.push(op),
                Decision::Forward(f) => f.resp_edits.push(op),
                Decision::Pause(_) => {}
            }
        }
    }
    rq.span = Some(Box::new(span));
}

/// The request ended: its span, if sampled, goes to the reporter.
pub fn end(ctx: &mut Ctx, rq: &mut Rq) {
    let Some(span) = rq.span.take() else {
        return;
    };
    if !span.ids.sampled {
        return;
    }
    let duration_us = rq.end.map_or(0, |e| {
        e.saturating_duration_since(rq.start).as_micros() as u64
    });
    let mut flags = String::new();
    rq.flags.write(&mut flags);
    let cluster = rq
        .cluster
        .and_then(|c| ctx.clusters.get(c))
        .map(|c| c.cfg.name.clone());
    let end = End {
        duration_us,
        status: rq.status,
        flags: &flags,
        bytes_rx: rq.bytes_rx,
        bytes_tx: rq.bytes_tx,
        cluster: cluster.as_deref(),
    };
    super::collector::report(ctx, &span, &end);
}
