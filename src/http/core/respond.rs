//! The response head we send the client: the upstream's head re-serialised with hop-by-hop
//! headers removed, the route's response edits, our Server header and our own framing.

use super::exchange::{BodyIn, Exchange, OutMode, Response};
use super::Env;
use crate::config::ServerHeader;
/// Most bytes of a response's trailer section passed on (the upstream's HTTP/2 header list
/// bound is larger; past this the body is a protocol error).
const RESPONSE_TRAILERS_MAX: usize = 16 * 1024;

use crate::http::codec::{is_hop_by_hop, name_is, put_header, Framing, ResponseHead};
use crate::http::compress::{self, ResponseFacts};
use crate::route::edits::{apply, HeaderList};

/// Serialises the head we send the client, and decides the framing towards it.
pub(super) fn client_head(
    r: &ResponseHead<'_>,
    ex: &mut Exchange,
    draining: bool,
    env: &mut dyn Env,
    service_time: std::time::Duration,
    mut h: Vec<u8>,
) -> (Vec<u8>, Response) {
    // A 101 (or a 2xx to CONNECT) that opens a tunnel: no body and no framing follow, the
    // bytes after the head belong to the tunnel.
    let tunnel = ex.tunnel_ready;
    let mut out = match r.framing {
        _ if tunnel => OutMode::NoBody,
        Framing::None => OutMode::NoBody,
        Framing::Length(_) => OutMode::Length,
        Framing::Chunked | Framing::UntilClose => {
            if ex.client_minor == 1 {
                OutMode::Chunked
            } else {
                OutMode::Close
            }
        }
    };
    let body = match BodyIn::from_framing(r.framing) {
        _ if tunnel => BodyIn::Done,
        // An HTTP/2 upstream's trailers: passed on in a chunked body of ours to an HTTP/2
        // client, kept for the access log in any case.
        BodyIn::Chunked(_) if ex.up_h2 => BodyIn::Chunked(
            crate::http::codec::ChunkedDecoder::keeping_trailers(RESPONSE_TRAILERS_MAX),
        ),
        b => b,
    };
    // A response that starts before the request was read in full ends the connection.
    let mut keep = ex.client_keep_alive && !draining && out != OutMode::Close && ex.req.is_done();
    if keep && env.overload_close() {
        keep = false;
    }
    let (server_name, server_mode) = env.server();
    // To an HTTP/1.0 client (served only with `accept_http_10`), HTTP/1.0, as Envoy.
    h.extend_from_slice(if ex.client_minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    crate::util::push_dec(&mut h, u64::from(r.status));
    h.push(b' ');
    h.extend_from_slice(r.reason.as_bytes());
    h.extend_from_slice(b"\r\n");
    let mut has_server = false;
    let mut gzip = None;
    let mut counted = [None; 8];
    // Only a route with response edits, or a compressor, pays for an intermediate header list.
    let plan = ex.compress.take();
    let mut list: Option<HeaderList<'_>> = (!ex.resp_edits.is_empty() || plan.is_some())
        .then(|| Vec::with_capacity(r.headers.len() + 4));
    // Asked once (by the parser), not per header.
    let nominated = r
        .connection_names_others
        .then(|| crate::http::codec::Nominated::of(r.headers));
    for hd in r.headers {
        let n = hd.name;
        if tunnel && r.status == 101 && n.eq_ignore_ascii_case("upgrade") {
            put_header(&mut h, n, hd.value);
            continue;
        }
        if name_is(n, "content-length") && out == OutMode::NoBody && r.status != 204 && !tunnel {
            // HEAD and 304 keep the length the full response would have had.
            put_header(&mut h, n, hd.value);
            continue;
        }
        if is_hop_by_hop(n)
            || nominated.as_ref().is_some_and(|c| c.names(n))
            || name_is(n, "x-envoy-upstream-service-time")
        {
            continue;
        }
        if n.eq_ignore_ascii_case("server") {
            if server_mode == ServerHeader::Overwrite {
                continue;
            }
            has_server = true;
        }
        match &mut list {
            Some(l) => l.push((n.into(), hd.value.into())),
            None => put_header(&mut h, n, hd.value),
        }
    }
    if let Some(mut l) = list {
        let upstream = ex.target.map(|t| t.1);
        apply(&mut l, &ex.resp_edits, &|t| t.render_upstream(upstream));
        if server_mode == ServerHeader::Overwrite {
            l.retain(|(n, _)| !n.eq_ignore_ascii_case("server"));
        }
        has_server = l.iter().any(|(n, _)| n.eq_ignore_ascii_case("server"));
        if let Some(plan) = &plan {
            // The compressor filter sees the head as the router left it (route edits
            // included), as in Envoy's encoder chain.
            let facts = ResponseFacts {
                content_length: match r.framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                },
                has_body: !body.is_done(),
                transfer_encoding: r
                    .headers
                    .iter()
                    .find(|h| name_is(h.name, "transfer-encoding"))
                    .map(|h| h.value),
                tunnel,
            };
            // Counted once the Server header (borrowed from `env`) is out.
            gzip = compress::respond(plan, &mut l, &facts, &mut |c| {
                if let Some(slot) = counted.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(c);
                }
            });
            if gzip.is_some() {
                // Its length unknown: chunked to HTTP/1.1, to the close for HTTP/1.0.
                out = if ex.client_minor == 1 {
                    OutMode::Chunked
                } else {
                    OutMode::Close
                };
                keep &= out != OutMode::Close;
            }
        }
        for (n, v) in &l {
            put_header(&mut h, n, v);
        }
    }
    if server_mode == ServerHeader::Overwrite
        || (server_mode == ServerHeader::AppendIfAbsent && !has_server)
    {
        put_header(&mut h, "server", server_name.as_bytes());
    }
    for c in counted.into_iter().flatten() {
        env.count(c, 1);
    }
    // Envoy's router: how long the upstream took, from sending the request to its head.
    h.extend_from_slice(b"x-envoy-upstream-service-time: ");
    crate::util::push_dec(&mut h, service_time.as_millis() as u64);
    h.extend_from_slice(b"\r\n");
    match (out, r.framing) {
        (OutMode::Length, Framing::Length(n)) => {
            h.extend_from_slice(b"content-length: ");
            crate::util::push_dec(&mut h, n);
            h.extend_from_slice(b"\r\n");
        }
        (OutMode::Chunked, _) => put_header(&mut h, "transfer-encoding", b"chunked"),
        _ => {}
    }
    if tunnel {
        if r.status == 101 {
            put_header(&mut h, "connection", b"upgrade");
        }
    } else if !keep && ex.client_minor == 1 {
        put_header(&mut h, "connection", b"close");
    } else if keep && ex.client_minor == 0 {
        put_header(&mut h, "connection", b"keep-alive");
    }
    h.extend_from_slice(b"\r\n");
    ex.keep = keep;
    let mut resp = Response::new(body, out, r.keep_alive);
    resp.gzip = gzip;
    (h, resp)
}
