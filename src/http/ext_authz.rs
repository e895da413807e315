//! Envoy's external authorization filter (`envoy.filters.http.ext_authz`) with an HTTP
//! authorization service: the check request made from a request head, the service's answer
//! read whole, and what the answer makes of the request (Envoy's
//! `ext_authz_http_impl.cc`: 200 lets it on with the allowed headers, a 5xx or no answer is
//! an error, any other status denies it with the service's status, body and allowed headers).
//!
//! The exchange core pauses the request while the check is out (`core::State::Paused`);
//! the session sends it on a connection of its own (`cluster::oneshot`) and hands the answer
//! back, or the core's timer ends it as an error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use super::codec::{self, is_hop_by_hop, ChunkedDecoder, Framing, RequestHead};
use crate::access_log::Flags;
use crate::config::{AppendAction, ExtAuthz, HttpFilterKind, StringMatch};
use crate::route::edits::Op;
use crate::route::matcher::string_matches;
use crate::stats::{Counter, Stats};

/// Most bytes of an answer's head, and of its body, kept.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// A check to send: the exchange holds its request paused until `answered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The authorization service's cluster, by name (looked up when sent).
    pub cluster: String,
    /// The whole check request (head; it has no body), or, for a gRPC service, the
    /// serialized `CheckRequest`.
    pub request: Vec<u8>,
    /// A gRPC service's call: `:authority` and `initial_metadata`.
    pub grpc: Option<(String, Vec<(String, String)>)>,
    /// The request is a HEAD: its answer has no body.
    pub is_head: bool,
    pub timeout: Duration,
}

/// The authorization service's answer; `None` where it gave none (connect failure, reset,
/// malformed answer, timeout, no such cluster or no host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased; values that are not UTF-8 are left out.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What an authorization service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Http(Reply),
    /// A gRPC service's `CheckResponse` (the call ended with status OK).
    Grpc(super::ext_authz_grpc::Decision),
}

pub type Verdict = Option<Answer>;

/// Envoy's default `allowed_headers` of a check request, besides the configured ones.
const ALWAYS_SENT: [&str; 1] = ["authorization"];

fn any_match(list: &[StringMatch], name: &str) -> bool {
    list.iter().any(|m| string_matches(m, name))
}

/// The check request for `req` on `conn`: a gRPC service's `CheckRequest`
/// (`ext_authz_grpc`, `id` for its request id), or for an HTTP service its method,
/// `path_prefix` + its path, its Host, the allowed request headers, `headers_to_add`, and
/// `Content-Length: 0` (no body is sent).
pub(super) fn check(
    c: &ExtAuthz,
    req: &RequestHead<'_>,
    conn: &super::rbac::Conn<'_>,
    id: u64,
) -> Check {
    if let Some(g) = &c.grpc {
        let now = std::time::SystemTime::now();
        return Check {
            cluster: c.cluster.clone(),
            request: super::ext_authz_grpc::check_request(req, conn, id, now),
            grpc: Some((g.authority.clone(), g.initial_metadata.clone())),
            is_head: false,
            timeout: c.timeout,
        };
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(c.path_prefix.as_bytes());
    out.extend_from_slice(req.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(req.host.unwrap_or(&c.cluster).as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: 0\r\n");
    for h in req.headers {
        let name = h.name;
        // Framing, connection and Host are the check request's own.
        if is_hop_by_hop(name) || name.eq_ignore_ascii_case("host") {
            continue;
        }
        if c.headers_to_add
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue; // set below
        }
        let allowed = ALWAYS_SENT.iter().any(|a| a.eq_ignore_ascii_case(name))
            || any_match(&c.allowed_headers, &name.to_ascii_lowercase());
        if allowed {
            codec::put_header(&mut out, name, h.value);
        }
    }
    for (n, v) in &c.headers_to_add {
        codec::put_header(&mut out, n, v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Check {
        cluster: c.cluster.clone(),
        request: out,
        grpc: None,
        is_head: req.method == "HEAD",
        timeout: c.timeout,
    }
}

impl Check {
    /// A gRPC service's call for this check (its first bytes queued); `None` for an HTTP one.
    pub fn grpc_call(&self) -> Option<crate::grpc::call::Call> {
        let (authority, metadata) = self.grpc.as_ref()?;
        Some(crate::grpc::call::Call::new(&crate::grpc::call::Request {
            // Envoy's default `:authority` is the cluster's name.
            authority: if authority.is_empty() {
                &self.cluster
            } else {
                authority
            },
            path: super::ext_authz_grpc::CHECK_PATH,
            timeout: self.timeout,
            metadata,
            message: &self.request,
        }))
    }
}

/// How a gRPC check's call ended, as the filter's answer: the `CheckResponse`, or an error.
pub(crate) fn grpc_answer(done: Result<Vec<u8>, crate::grpc::call::Failure>) -> Result<Answer, ()> {
    let message = done.map_err(|e| log::debug!("ext_authz: gRPC check failed: {e:?}"))?;
    super::ext_authz_grpc::decide(&message)
        .map(Answer::Grpc)
        .map_err(|_| log::debug!("ext_authz: malformed CheckResponse"))
}

/// What the filter makes of a verdict.
pub(super) enum Outcome {
    /// The request goes on with these request and response edits.
    Allowed { request: Vec<Op>, response: Vec<Op> },
    /// The client gets this answer (flag `UAEX`).
    Denied {
        status: u16,
        body: Cow<'static, str>,
        edits: Vec<Op>,
        details: &'static str,
    },
}

/// Which counter a verdict moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Ok,
    Denied,
    Error,
    FailureModeAllowed,
    /// `filter_enabled` left the request out.
    Disabled,
}

/// Headers of an answer a list lets through, as edits with `action`. Framing and connection
/// headers never pass: they belong to the message they would land in.
fn pass(headers: &[(String, String)], list: &[StringMatch], action: AppendAction) -> Vec<Op> {
    headers
        .iter()
        .filter(|(n, _)| !is_hop_by_hop(n) && any_match(list, n))
        .map(|(n, v)| Op::fixed(n, v, action))
        .collect()
}

/// Envoy's reading of a verdict, and the counters it moves.
pub(super) fn outcome(c: &ExtAuthz, v: &Verdict, counts: &mut Vec<Count>) -> Outcome {
    const SET: AppendAction = AppendAction::OverwriteIfExistsOrAdd;
    match v {
        Some(Answer::Grpc(d)) if d.allowed => {
            use super::ext_authz_grpc::{edits, removals};
            counts.push(Count::Ok);
            let mut request = edits(&d.headers);
            request.extend(removals(&d.headers_to_remove));
            Outcome::Allowed {
                request,
                response: edits(&d.response_headers),
            }
        }
        Some(Answer::Grpc(d)) => {
            counts.push(Count::Denied);
            Outcome::Denied {
                status: d.status,
                body: Cow::Owned(d.body.clone()),
                edits: super::ext_authz_grpc::edits(&d.denied_headers),
                details: "ext_authz_denied",
            }
        }
        Some(Answer::Http(r)) if r.status == 200 => {
            counts.push(Count::Ok);
            let mut request = pass(&r.headers, &c.upstream_headers, SET);
            request.extend(pass(
                &r.headers,
                &c.upstream_headers_to_append,
                AppendAction::AppendIfExistsOrAdd,
            ));
            Outcome::Allowed {
                request,
                response: pass(&r.headers, &c.client_headers_on_success, SET),
            }
        }
        Some(Answer::Http(r)) if !(500..600).contains(&r.status) => {
            counts.push(Count::Denied);
            // Without a list every header but Host; with one, also Envoy's fixed few.
            let edits = r
                .headers
                .iter()
                .filter(|(n, _)| !is_hop_by_hop(n))
                .filter(|(n, _)| {
                    if c.client_headers.is_empty() {
                        n != "host"
                    } else {
                        matches!(n.as_str(), "www-authenticate" | "location")
                            || any_match(&c.client_headers, n)
                    }
                })
                .map(|(n, v)| Op::fixed(n, v, SET))
                .collect();
            Outcome::Denied {
                status: r.status,
                body: Cow::Owned(String::from_utf8_lossy(&r.body).into_owned()),
                edits,
                details: "ext_authz_denied",
            }
        }
        _ => {
            counts.push(Count::Error);
            if c.failure_mode_allow {
                counts.push(Count::FailureModeAllowed);
                let request = if c.failure_mode_allow_header_add {
                    vec![Op::fixed("x-envoy-auth-failure-mode-allowed", "true", SET)]
                } else {
                    Vec::new()
                };
                return Outcome::Allowed {
                    request,
                    response: Vec::new(),
                };
            }
            Outcome::Denied {
                status: c.status_on_error,
                body: Cow::Borrowed(""),
                edits: Vec::new(),
                details: "ext_authz_error",
            }
        }
    }
}

/// The %RESPONSE_FLAGS% bit of an ext_authz answer.
pub(super) const FLAG: u32 = Flags::UAEX;

/// The filters' counters by (listener, filter index): ok, denied, error,
/// failure_mode_allowed, disabled under `http.<prefix>.ext_authz.[<stat_prefix>.]`.
#[derive(Debug, Default)]
pub(crate) struct ExtAuthzStats {
    by_filter: HashMap<(usize, usize), [Counter; 5]>,
}

impl ExtAuthzStats {
    pub(crate) fn new(
        listeners: &[crate::context::ListenerRt],
        stats: &mut Stats,
    ) -> ExtAuthzStats {
        let mut by_filter = HashMap::new();
        for (l, listener) in listeners.iter().enumerate() {
            let Some(http) = listener.http() else {
                continue;
            };
            for (fi, f) in http.hcm.http_filters.iter().enumerate() {
                let HttpFilterKind::ExtAuthz(c) = &f.kind else {
                    continue;
                };
                let mut prefix = format!("http.{}.ext_authz.", http.hcm.stat_prefix);
                if !c.stat_prefix.is_empty() {
                    prefix.push_str(&c.stat_prefix);
                    prefix.push('.');
                }
                let mut n = |s: &str| stats.store.counter(&format!("{prefix}{s}"));
                let counters = [
                    n("ok"),
                    n("denied"),
                    n("error"),
                    n("failure_mode_allowed"),
                    n("disabled"),
                ];
                by_filter.insert((l, fi), counters);
            }
        }
        ExtAuthzStats { by_filter }
    }

    pub(super) fn count(&self, at: (usize, usize), what: &[Count], stats: &mut Stats) {
        let Some(c) = self.by_filter.get(&at) else {
            return;
        };
        for w in what {
            let i = match w {
                Count::Ok => 0,
                Count::Denied => 1,
                Count::Error => 2,
                Count::FailureModeAllowed => 3,
                Count::Disabled => 4,
            };
            if let Some(&counter) = c.get(i) {
                stats.store.inc(counter);
            }
        }
    }
}

/// Reads an answer as it arrives: head, then a body of any framing, kept whole (bounded).
#[derive(Debug)]
pub(crate) struct Reader {
    rx: Vec<u8>,
    is_head: bool,
    body: Option<Body>,
}

#[derive(Debug)]
struct Body {
    reply: Reply,
    framing: Framing,
    left: u64,
    chunks: ChunkedDecoder,
}

impl Reader {
    pub(crate) fn new(is_head: bool) -> Reader {
        Reader {
            rx: Vec::new(),
            is_head,
            body: None,
        }
    }

    /// Takes `bytes` (`eof`: the service closed); `Some` once the answer is whole
    /// (`Err`: it is broken, too large or cut short).
    pub(crate) fn feed(&mut self, bytes: &[u8], eof: bool) -> Option<Result<Reply, ()>> {
        self.rx.extend_from_slice(bytes);
        loop {
            let Some(b) = &mut self.body else {
                let mut slots = codec::header_slots();
                let head = match codec::parse_response(&self.rx, &mut slots, self.is_head) {
                    Ok(Some(h)) => h,
                    Ok(None) if self.rx.len() > MAX_HEAD || eof => return Some(Err(())),
                    Ok(None) => return None,
                    Err(_) => return Some(Err(())),
                };
                let (status, framing, len) = (head.status, head.framing, head.head_len);
                let headers = head
                    .headers
                    .iter()
                    .filter_map(|h| {
                        let v = std::str::from_utf8(h.value).ok()?;
                        Some((h.name.to_ascii_lowercase(), v.to_string()))
                    })
                    .collect();
                self.rx.drain(..len.min(self.rx.len()));
                if (100..200).contains(&status) {
                    continue; // interim; the final answer follows
                }
                self.body = Some(Body {
                    reply: Reply {
                        status,
                        headers,
                        body: Vec::new(),
                    },
                    framing,
                    left: match framing {
                        Framing::Length(n) => n,
                        _ => 0,
                    },
                    chunks: ChunkedDecoder::new(),
                });
                continue;
            };
            let done = match b.framing {
                Framing::None => true,
                Framing::Length(_) => {
                    let take = usize::try_from(b.left)
                        .unwrap_or(usize::MAX)
                        .min(self.rx.len());
                    b.reply.body.extend(self.rx.drain(..take));
                    b.left -= take as u64;
                    if b.left > 0 && eof {
                        return Some(Err(()));
                    }
                    b.left == 0
                }
                Framing::Chunked => {
                    let body = &mut b.reply.body;
                    let used = match b
                        .chunks
                        .decode(&self.rx, usize::MAX, |d| body.extend_from_slice(d))
                    {
                        Ok(n) => n,
                        Err(_) => return Some(Err(())),
                    };
                    self.rx.drain(..used.min(self.rx.len()));
                    if !b.chunks.is_done() && eof {
                        return Some(Err(()));
                    }
                    b.chunks.is_done()
                }
                Framing::UntilClose => {
                    b.reply.body.append(&mut self.rx);
                    eof
                }
            };
            if b.reply.body.len() > MAX_BODY {
                return Some(Err(()));
            }
            if !done {
                return None;
            }
            return self.body.take().map(|b| Ok(b.reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StringMatchKind;

    fn exact(s: &str) -> StringMatch {
        StringMatch {
            kind: StringMatchKind::Exact(s.into()),
            ignore_case: true,
        }
    }

    fn config() -> ExtAuthz {
        ExtAuthz {
            uri: "x".into(),
            cluster: "authz".into(),
            timeout: Duration::from_millis(250),
            path_prefix: "/auth".into(),
            allowed_headers: vec![exact("x-a")],
            headers_to_add: vec![("x-added".into(), "1".into())],
            upstream_headers: vec![exact("x-current-user")],
            upstream_headers_to_append: Vec::new(),
            client_headers: Vec::new(),
            client_headers_on_success: Vec::new(),
            failure_mode_allow: false,
            failure_mode_allow_header_add: false,
            status_on_error: 403,
            stat_prefix: String::new(),
            filter_enabled: None,
            deny_at_disable: false,
            grpc: None,
        }
    }

    #[test]
    fn the_check_request_carries_method_path_host_and_allowed_headers() {
        let mut slots = codec::header_slots();
        let raw = b"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: t\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 3\r\n\r\nabc";
        let Ok(Some(req)) = codec::parse_request(raw, &mut slots) else {
            panic!("parse");
        };
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let conn = crate::http::rbac::Conn {
            local: a,
            direct: a,
            source: a,
            client: a,
            tls: None,
        };
        let c = check(&config(), &req, &conn, 1);
        let text = String::from_utf8(c.request).unwrap();
        assert!(text.starts_with("POST /auth/p?q=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n"));
        assert!(text.contains("Authorization: t\r\n"), "{text}");
        assert!(text.contains("X-A: 1\r\n"), "{text}");
        assert!(!text.contains("X-B"), "{text}");
        assert!(!text.contains("Content-Length: 3"), "{text}");
        assert!(text.ends_with("x-added: 1\r\n\r\n"), "{text}");
    }

    #[test]
    fn answers_are_read_whole_in_any_framing_and_pieces() {
        for (raw, body) in [
            (&b"HTTP/1.1 200 OK\r\nX-Current-User: u\r\ncontent-length: 2\r\n\r\nok"[..], "ok"),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 F\r\ntransfer-encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n", "no"),
        ] {
            let mut r = Reader::new(false);
            let mut got = None;
            for b in raw.chunks(3) {
                if let Some(x) = r.feed(b, false) {
                    got = Some(x);
                }
            }
            let reply = got.unwrap().unwrap();
            assert_eq!(reply.body, body.as_bytes());
        }
        let mut r = Reader::new(false);
        assert!(r
            .feed(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab", true)
            .unwrap()
            .is_err());
        let mut r = Reader::new(false);
        assert_eq!(r.feed(b"HTTP/1.1 403 X\r\n\r\nbye", false), None);
        assert_eq!(r.feed(b"", true).unwrap().unwrap().body, b"bye");
    }

    #[test]
    fn verdicts_follow_envoy() {
        let c = config();
        let mut n = Vec::new();
        let ok = Reply {
            status: 200,
            headers: vec![
                ("x-current-user".into(), "u".into()),
                ("content-length".into(), "0".into()),
            ],
            body: Vec::new(),
        };
        match outcome(&c, &Some(Answer::Http(ok)), &mut n) {
            Outcome::Allowed { request, .. } => assert_eq!(request.len(), 1),
            Outcome::Denied { .. } => panic!("denied"),
        }
        let no = Reply {
            status: 401,
            headers: vec![("host".into(), "h".into()), ("x-why".into(), "w".into())],
            body: b"go away".to_vec(),
        };
        match outcome(&c, &Some(Answer::Http(no)), &mut n) {
            Outcome::Denied {
                status,
                body,
                edits,
                ..
            } => {
                assert_eq!((status, body.as_ref(), edits.len()), (401, "go away", 1));
            }
            Outcome::Allowed { .. } => panic!("allowed"),
        }
        // With a list: it, and Envoy's fixed few.
        let listed = ExtAuthz {
            client_headers: vec![exact("x-why")],
            ..c.clone()
        };
        let no = Reply {
            status: 302,
            headers: vec![
                ("x-why".into(), "w".into()),
                ("x-other".into(), "o".into()),
                ("location".into(), "/login".into()),
            ],
            body: Vec::new(),
        };
        match outcome(&listed, &Some(Answer::Http(no)), &mut Vec::new()) {
            Outcome::Denied { edits, .. } => assert_eq!(edits.len(), 2),
            Outcome::Allowed { .. } => panic!("allowed"),
        }
        let err = Reply {
            status: 503,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(matches!(
            outcome(&c, &Some(Answer::Http(err)), &mut n),
            Outcome::Denied { status: 403, .. }
        ));
        let fma = ExtAuthz {
            failure_mode_allow: true,
            failure_mode_allow_header_add: true,
            ..c
        };
        assert!(
            matches!(outcome(&fma, &None, &mut n), Outcome::Allowed { ref request, .. } if request.len() == 1)
        );
        assert_eq!(
            n,
            [
                Count::Ok,
                Count::Denied,
                Count::Error,
                Count::Error,
                Count::FailureModeAllowed
            ]
        );
    }
}

/// A check on its way to the authorization service: a connection of its own, registered for
/// the waiting session (`Tok::Check`), and the answer read so far. The session owns it and
/// closes it when the answer is in, or when the request no longer waits (timeout, the
/// client left).
#[derive(Debug)]
pub struct InFlight {
    shot: crate::cluster::oneshot::OneShot,
    link: Link,
    cluster: usize,
    addr: std::net::SocketAddr,
}

/// What reads the service's bytes: an HTTP/1.1 answer, or a gRPC call over h2c.
#[derive(Debug)]
enum Link {
    Http(Reader),
    Grpc(Box<crate::grpc::call::Call>),
}

/// How a check's connection ended, for the authorization cluster's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Answered(u16),
    Failed,
    /// The check's timeout ended it.
    TimedOut,
    /// Its request stopped waiting (the client went away).
    Abandoned,
}

impl InFlight {
    /// Sends `c` for session `session`: to a host of its cluster on a new connection. `None`
    /// when it cannot go (no such cluster, no host, the connect failed): the check failed.
    pub fn send(ctx: &mut crate::context::Ctx, c: Check, session: usize) -> Option<InFlight> {
        let Some(cluster) = ctx.clusters.iter().position(|cl| cl.cfg.name == c.cluster) else {
            log::debug!("ext_authz: no cluster {:?}", c.cluster);
            return None;
        };
        let addr = ctx.clusters.get_mut(cluster).and_then(|cl| {
            let i = cl.pick(&mut ctx.rng)?;
            cl.hosts.get(i).map(|h| h.addr)
        });
        let Some(addr) = addr else {
            ctx.stats.none_healthy(cluster);
            return None;
        };
        let tok = crate::reactor::Tok::Check(session);
        let sock = match crate::cluster::checker::connect(ctx, cluster, addr, tok) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("ext_authz: connect to {addr}: {e}");
                crate::observe::upstream_connect_fail(ctx, cluster, addr, false);
                return None;
            }
        };
        crate::observe::upstream_cx_open(ctx, cluster, addr);
        crate::observe::upstream_rq(ctx, cluster, addr, true);
        let (link, tx) = match c.grpc_call() {
            Some(mut call) => {
                let tx = std::mem::take(call.out());
                (Link::Grpc(Box::new(call)), tx)
            }
            None => (Link::Http(Reader::new(c.is_head)), c.request),
        };
        Some(InFlight {
            shot: crate::cluster::oneshot::OneShot::new(sock, tx, c.is_head),
            link,
            cluster,
            addr,
        })
    }

    /// Moves the check's bytes; `Some` once it is over (then `close` it).
    pub fn drive(&mut self) -> Option<Result<Answer, ()>> {
        match &mut self.link {
            Link::Http(reader) => self
                .shot
                .pump_with(|got, eof| reader.feed(got, eof))
                .map(|r| r.map(Answer::Http)),
            Link::Grpc(call) => self.shot.pump_duplex(|got, eof, tx| {
                let done = call.feed(got, eof);
                tx.append(call.out());
                if done.is_none() && tx.len() > crate::grpc::call::MAX_UNSENT {
                    log::debug!("ext_authz: the gRPC service does not read what it asks for");
                    return Some(Err(()));
                }
                done.map(grpc_answer)
            }),
        }
    }

    /// Closes the connection and counts how the check ended on its cluster.
    pub fn close(mut self, ctx: &mut crate::context::Ctx, how: End) {
        let _ = ctx.registry.deregister(&mut self.shot.sock);
        let (c, addr) = (self.cluster, self.addr);
        match how {
            End::Answered(status) => crate::observe::upstream_status(ctx, c, addr, status),
            End::Failed if !self.shot.is_connected() => {
                crate::observe::upstream_connect_fail(ctx, c, addr, false);
            }
            End::Failed => log::debug!("ext_authz: check to {addr} failed before its answer"),
            End::TimedOut if !self.shot.is_connected() => {
                crate::observe::upstream_connect_fail(ctx, c, addr, true);
            }
            End::TimedOut => crate::observe::upstream_rq_timeout(ctx, c, addr),
            End::Abandoned => {}
        }
        crate::observe::upstream_cx_close(ctx, c, addr);
    }
}
