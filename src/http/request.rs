//! Routing a parsed request head: which route, which local reply or which upstream, and the
//! request head we send there (our own serialisation: origin-form target, path rewrites, Host,
//! forwarding headers and the route's header edits).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::codec::{is_hop_by_hop, put_header, Framing, RequestHead};
use super::filters;
use super::local;
use super::upgrade::Upgrade;
use crate::config::template::{Template, Vars};
use crate::config::{
    AppendAction, ClusterSpec, EscapedSlashes, ForwardClientCert, HostRewrite,
    HttpConnectionManager, HttpFilterKind, RequireTls, RetryPolicy, RouteAction,
};
use crate::context::{Ctx, HttpRt};
use crate::route::edits::{apply, bind, HeaderList, Op};
use crate::route::matcher::header_value;
use crate::route::normalize::normalize;
use crate::route::{redirect_location, rewrite_prefix, rewrite_regex, Matched};
use crate::tracing::Inject;
use crate::util::RequestIds;

/// A reply made here, with the matched route's response edits when there was a route.
pub struct LocalDecision {
    pub status: u16,
    pub body: Cow<'static, str>,
    pub location: Option<String>,
    pub edits: Vec<Op>,
    pub upstream: Option<SocketAddr>,
    /// The %RESPONSE_FLAGS% bit explaining the reply (NR, UH), or 0.
    pub flag: u32,
    /// A route's `direct_response` (counted as `rq_direct_response`).
    pub direct: bool,
    /// (virtual host, route) indices when a route matched.
    pub route: Option<(usize, usize)>,
    /// `%RESPONSE_CODE_DETAILS%` when not implied by `flag` or `direct` ("" then).
    pub details: Cow<'static, str>,
}

/// Everything an exchange needs to forward a request.
pub struct Forward {
    pub cluster: usize,
    pub addr: SocketAddr,
    pub head: Vec<u8>,
    /// Byte range of the Host value in `head`, when `auto_host_rewrite` may change it per try.
    pub auto_host: Option<(usize, usize)>,
    pub timeout: Option<Duration>,
    pub idle: Option<Duration>,
    /// (virtual host, route) indices, to find the retry policy again.
    pub route: (usize, usize),
    pub resp_edits: Vec<Op>,
    /// The cluster's `connect_timeout` and `per_connection_buffer_limit_bytes`.
    pub connect_timeout: Duration,
    pub buffer_limit: usize,
    /// The cluster's `max_headers_count`: an upstream response head with more headers is a
    /// protocol error.
    pub resp_headers: usize,
    /// How many retries the exchange may make, when a retry policy applies.
    pub retries: Option<u32>,
    /// The per-try timeout (route policy or `x-envoy-upstream-rq-per-try-timeout-ms`).
    pub per_try: Option<Duration>,
    /// The route's policy with an internal request's `x-envoy-retry-*` headers merged in;
    /// `None` when the headers changed nothing (the route's own policy applies).
    pub retry_policy: Option<Box<RetryPolicy>>,
    /// The x-request-id baton generated (none when the client sent one), so the access log's
    /// `%REQ(X-REQUEST-ID)%` shows what the upstream saw, as in Envoy.
    pub request_id: Option<[u8; 36]>,
    /// An allowed upgrade or CONNECT: how it is carried.
    pub upgrade: Option<Upgrade>,
    /// What the route rewrote, when the listener logs: Envoy's access log sees the request
    /// headers as the router changed them.
    pub rewritten: Option<Box<Rewritten>>,
    /// The status of a route timeout: 504, or 204 for an internal request that asked with
    /// `x-envoy-upstream-rq-timeout-alt-response`.
    pub timeout_status: u16,
    /// The route's shadows of this request (`request_mirror_policies`), sent once it is read.
    pub shadows: Vec<super::mirror::Shadow>,
    /// Most request body bytes kept for retries and shadows (`per_request_buffer_limit_bytes`).
    pub body_limit: Option<usize>,
    /// Byte range of the `x-envoy-attempt-count` value in `head` (`include_request_attempt_count`).
    pub attempt_at: Option<(usize, usize)>,
    /// `include_attempt_count_in_response`.
    pub attempts_in_response: bool,
    /// The TLS server name of a cluster with `auto_sni`: the upstream Host without its port.
    pub sni: Option<Box<str>>,
    /// The compressor filter saw the request (boxed: most requests have none).
    pub compress: Option<Box<super::compress::Plan>>,
    /// The decompressor filter inflates the request body.
    pub inflate: Option<Box<super::compress::InflatePlan>>,
    /// The cluster speaks HTTP/2: trailers may pass (with an HTTP/2 client).
    pub h2: bool,
}

/// Request values a route rewrote (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub path: Option<String>,
    pub host: Option<String>,
    /// `x-envoy-original-path`, set when the path was rewritten.
    pub original_path: Option<String>,
}

/// Not boxed: a forward is the common case, and moving it costs less than allocating.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    Local(LocalDecision),
    Forward(Forward),
    /// A filter holds the request (an ext_authz check, a fault delay): the exchange pauses it
    /// and, once the wait is over, asks again (`core::Env::resume`).
    Pause(Box<Pending>),
}

/// What a paused request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// An ext_authz filter's check, to send: its answer, or its timeout, ends the wait.
    Check(super::ext_authz::Check),
    /// A fault filter's delay: the time alone ends it.
    Delay(Duration),
}

/// A paused request: what it waits for, and where the filter chain resumes with what the
/// filters before it made.
pub struct Pending {
    pub wait: Wait,
    /// The pausing filter's index.
    filter: usize,
    /// The route the filters saw.
    found: Option<(usize, usize)>,
    outcome: filters::Outcome,
    /// The request's span, begun before the pause.
    pub(super) begun: Option<crate::tracing::http::Begun>,
    /// The stream idle timeout in force (the route's `idle_timeout`, else the connection
    /// manager's): Envoy's idle timer runs through a filter's pause, so a wait longer than it
    /// ends with the connection manager's `stream timeout` answer.
    pub stream_idle: Option<Duration>,
}

impl Pending {
    /// A wait with nothing before it (the core's simulation and tests).
    pub fn new(wait: Wait) -> Pending {
        Pending {
            wait,
            filter: 0,
            found: None,
            outcome: filters::Outcome::default(),
            begun: None,
            stream_idle: None,
        }
    }

    /// The check to send, when the wait is one.
    pub fn check(&self) -> Option<&super::ext_authz::Check> {
        match &self.wait {
            Wait::Check(c) => Some(c),
            Wait::Delay(_) => None,
        }
    }

    /// How long the wait may last: a check's timeout, a delay's length.
    pub fn limit(&self) -> Duration {
        match &self.wait {
            Wait::Check(c) => c.timeout,
            Wait::Delay(d) => *d,
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("wait", &self.wait)
            .field("filter", &self.filter)
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

/// A 500 with no body: what an exchange makes of a decision it cannot start (a pause
/// reaches it only through a bug).
pub fn internal_error() -> Decision {
    local(500, "", 0)
}

/// The connection manager's answer while the overload manager's `stop_accepting_requests`
/// applies: Envoy's 503 `envoy overloaded` (details `overload`), before any filter or route.
pub fn overloaded() -> Decision {
    Decision::Local(LocalDecision {
        body: Cow::Borrowed("envoy overloaded"),
        details: Cow::Borrowed("overload"),
        ..local_reply(503)
    })
}

fn local(status: u16, body: &'static str, flag: u32) -> Decision {
    Decision::Local(LocalDecision {
        body: Cow::Borrowed(body),
        flag,
        ..local_reply(status)
    })
}

/// A reply with no body, flag or route.
fn local_reply(status: u16) -> LocalDecision {
    LocalDecision {
        status,
        body: Cow::Borrowed(""),
        location: None,
        edits: Vec::new(),
        upstream: None,
        flag: 0,
        direct: false,
        route: None,
        details: Cow::Borrowed(""),
    }
}

/// The client address as Envoy's connection manager determines it: with `use_remote_address`
/// the connection's peer, or — with `xff_num_trusted_hops` N > 0 — the address N from the right
/// of `x-forwarded-for`; without it, the address `xff_num_trusted_hops` positions from the right
/// of `x-forwarded-for` (the last one by default). The peer when the header has no usable
/// address there. An address from the header has port 0, as in Envoy.
pub fn trusted_client(
    headers: &[httparse::Header<'_>],
    peer: SocketAddr,
    use_remote_address: bool,
    trusted_hops: u32,
) -> SocketAddr {
    let skip = match (use_remote_address, trusted_hops) {
        (true, 0) => return peer,
        (true, n) => n - 1,
        (false, n) => n,
    };
    let xff = || {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
    };
    if xff().any(|h| std::str::from_utf8(h.value).is_err()) {
        return peer;
    }
    // The entry `skip` places from the right of all values joined, found walking backwards
    // (no list of entries is built: this runs for every request).
    xff()
        .rev()
        .flat_map(|h| std::str::from_utf8(h.value).unwrap_or_default().rsplit(','))
        .nth(skip as usize)
        .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// Where a request comes from, as Envoy's connection manager decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The trusted client address (see `trusted_client`).
    pub client: SocketAddr,
    /// An internal request: its `x-envoy-*` control headers are honoured and it is marked
    /// `x-envoy-internal: true`. Otherwise those headers are stripped.
    pub internal: bool,
    /// External and `use_remote_address`: the first hop into the trusted network.
    pub edge: bool,
}

/// Envoy's rule: with `use_remote_address`, internal when the request has no
/// `x-forwarded-for` and the trusted client address is internal; without it, internal when
/// `x-forwarded-for` holds exactly one address, that address is internal, and
/// `xff_num_trusted_hops` is 0.
pub fn origin(
    headers: &[httparse::Header<'_>],
    peer: SocketAddr,
    hcm: &HttpConnectionManager,
) -> Origin {
    let mut xff_entries = 0usize;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
    {
        xff_entries += 1 + h.value.iter().filter(|&&b| b == b',').count();
    }
    // Without x-forwarded-for the trusted client is the peer whatever the settings; most
    // requests have none, and this runs twice per request (routing and the access log).
    let client = if xff_entries == 0 {
        peer
    } else {
        trusted_client(
            headers,
            peer,
            hcm.use_remote_address,
            hcm.xff_num_trusted_hops,
        )
    };
    let trusted = if hcm.use_remote_address {
        xff_entries == 0
    } else {
        // The address must come from the header itself (port 0), not the peer fallback.
        xff_entries == 1 && hcm.xff_num_trusted_hops == 0 && client.port() == 0
    };
    let internal = trusted && is_internal(client.ip(), hcm.internal_addresses.as_deref());
    Origin {
        client,
        internal,
        edge: !internal && hcm.use_remote_address,
    }
}

/// `internal_address_config`: the configured CIDR ranges, or Envoy's default (RFC 1918,
/// 127.0.0.1, fd00::/8, ::1). An IPv4-mapped IPv6 peer counts as its IPv4 address.
pub fn is_internal(ip: IpAddr, ranges: Option<&[(IpAddr, u8)]>) -> bool {
    let ip = ip.to_canonical();
    match ranges {
        Some(list) => list.iter().any(|&(net, len)| in_range(ip, net, len)),
        None => match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                a == 10
                    || (a == 172 && (16..=31).contains(&b))
                    || (a == 192 && b == 168)
                    || v4 == std::net::Ipv4Addr::LOCALHOST
            }
            IpAddr::V6(v6) => v6.octets()[0] == 0xfd || v6.is_loopback(),
        },
    }
}

/// Whether `ip` is in the CIDR range `net`/`len` (of the same family).
pub(crate) fn in_range(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Control headers Envoy strips from an external request (`x-envoy-internal` is always
/// replaced by our own verdict).
const EXTERNAL_STRIPPED: &[&str] = &[
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Stripped too when the request is an edge request.
const EDGE_STRIPPED: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-external-address",
];

/// Headers Envoy's router reads and consumes (never forwarded), plus the ones baton
/// rewrites itself.
const CONSUMED: &[&str] = &[
    "x-envoy-internal",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
];

fn named(list: &[&str], n: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(n))
}

/// Whether Envoy's router consumes request header `n` (its own timeout and retry controls).
pub fn router_consumed(n: &str) -> bool {
    named(CONSUMED, n)
        && !n.eq_ignore_ascii_case("x-envoy-internal")
        && !n.eq_ignore_ascii_case("x-envoy-expected-rq-timeout-ms")
}

/// Envoy replaces a client's `x-forwarded-proto` when it uses the remote address and trusts
/// no hop before it, and always with `scheme_to_overwrite` (then with that scheme: the
/// request's `secure` holds it, see `CtxEnv::route`).
pub fn replace_proto(hcm: &HttpConnectionManager) -> bool {
    (hcm.use_remote_address && hcm.xff_num_trusted_hops == 0) || hcm.scheme_to_overwrite.is_some()
}

/// The request's scheme as Envoy's connection manager sets `:scheme` (true: `https`):
/// `scheme_to_overwrite`; else a client's `x-forwarded-proto` of `http` or `https` where it is
/// trusted (not replaced, `replace_proto`); else the connection's (`conn_secure`: TLS).
pub fn secure_scheme(
    headers: &[httparse::Header<'_>],
    hcm: &HttpConnectionManager,
    conn_secure: bool,
) -> bool {
    if let Some(s) = hcm.scheme_to_overwrite {
        return s;
    }
    if !replace_proto(hcm) {
        let claimed = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("x-forwarded-proto"))
            .map(|h| crate::http::codec::trim(h.value));
        match claimed {
            Some(v) if v.eq_ignore_ascii_case(b"https") => return true,
            Some(v) if v.eq_ignore_ascii_case(b"http") => return false,
            _ => {}
        }
    }
    conn_secure
}

/// Whether an external request (an edge one when `edge`) loses header `n`.
pub fn stripped(n: &str, edge: bool) -> bool {
    named(EXTERNAL_STRIPPED, n) || (edge && named(EDGE_STRIPPED, n))
}

/// What the request's own control headers change in the route's timeouts and retries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `x-envoy-upstream-rq-timeout-ms` (0: no timeout).
    pub timeout: Option<Option<Duration>>,
    /// `x-envoy-upstream-rq-per-try-timeout-ms` (0: no per-try timeout, as Envoy arms the
    /// per-try timer only for a value above 0; it replaces the route's).
    pub per_try: Option<Option<Duration>>,
    /// `x-envoy-retry-on` conditions baton implements.
    pub retry_on: crate::config::RetryOn,
    pub any_retry_on: bool,
    /// `x-envoy-max-retries`.
    pub max_retries: Option<u32>,
    /// `x-envoy-retriable-status-codes`.
    pub codes: Vec<u16>,
    /// `x-envoy-upstream-rq-timeout-alt-response`: a route timeout answers 204, not 504.
    pub alt_response: bool,
}

impl Overrides {
    /// Reads the headers Envoy's router honours (only called for internal requests: an
    /// external request's copies are stripped). Unparseable values are ignored, as in Envoy.
    pub fn read(headers: &[httparse::Header<'_>]) -> Overrides {
        let mut o = Overrides::default();
        for h in headers {
            let Ok(v) = std::str::from_utf8(h.value) else {
                continue;
            };
            let v = v.trim();
            let n = h.name;
            // A duration in ms, 0 meaning none.
            let ms = || {
                v.parse::<u64>()
                    .ok()
                    .map(|m| (m > 0).then(|| Duration::from_millis(m)))
            };
            if n.eq_ignore_ascii_case("x-envoy-upstream-rq-timeout-ms") {
                o.timeout = ms().or(o.timeout);
            } else if n.eq_ignore_ascii_case("x-envoy-upstream-rq-per-try-timeout-ms") {
                o.per_try = ms().or(o.per_try);
            } else if n.eq_ignore_ascii_case("x-envoy-retry-on") {
                for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    o.any_retry_on |= crate::config::add_retry_on(&mut o.retry_on, c) == Some(true);
                }
            } else if n.eq_ignore_ascii_case("x-envoy-max-retries") {
                o.max_retries = v.parse().ok().or(o.max_retries);
            } else if n.eq_ignore_ascii_case("x-envoy-upstream-rq-timeout-alt-response") {
                o.alt_response = true;
            } else if n.eq_ignore_ascii_case("x-envoy-retriable-status-codes") {
                o.codes
                    .extend(v.split(',').filter_map(|c| c.trim().parse::<u16>().ok()));
            }
        }
        o
    }

    /// The route's retry policy with the headers merged in (Envoy: conditions are added,
    /// `x-envoy-max-retries` replaces the count, codes are added); `None` when neither the
    /// route nor the headers ask for retries.
    pub fn retry_policy(&self, route: Option<&RetryPolicy>) -> Option<RetryPolicy> {
        let mut p = match route {
            Some(p) => p.clone(),
            None if self.any_retry_on => RetryPolicy {
                retry_on: crate::config::RetryOn::default(),
                num_retries: 1,
                per_try_timeout: None,
                retriable_status_codes: Vec::new(),
                back_off_base: Duration::from_millis(25),
                back_off_max: Duration::from_millis(250),
            },
            None => return None,
        };
        let on = &mut p.retry_on;
        let h = self.retry_on;
        on.five_xx |= h.five_xx;
        on.gateway_error |= h.gateway_error;
        on.reset |= h.reset;
        on.connect_failure |= h.connect_failure;
        on.retriable_4xx |= h.retriable_4xx;
        on.retriable_status_codes |= h.retriable_status_codes;
        if let Some(n) = self.max_retries {
            p.num_retries = n;
        }
        p.retriable_status_codes.extend(&self.codes);
        Some(p)
    }

    fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

/// Envoy's router timeouts: the route timeout and the per-try timeout (a per-try timeout
/// not below the route timeout is dropped), and the value of x-envoy-expected-rq-timeout-ms.
fn final_timeouts(
    timeout: Option<Duration>,
    per_try: Option<Duration>,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    let per_try = match (per_try, timeout) {
        (Some(p), Some(t)) if p >= t => None,
        (p, _) => p,
    };
    (timeout, per_try, per_try.or(timeout))
}

/// Picks a cluster of a weighted split: uniform in 0..total, walking the cumulative weights.
pub fn pick_weighted(list: &[(usize, u32)], r: u64) -> usize {
    let mut r = r;
    for &(c, w) in list {
        if r < u64::from(w) {
            return c;
        }
        r -= u64::from(w);
    }
    list.last().map_or(0, |&(c, _)| c)
}

/// Appends the request's `x-forwarded-for` values to `v` as one list (`, `-joined), then
/// `append` (the peer, at the edge).
fn join_xff(headers: &[httparse::Header<'_>], append: Option<IpAddr>, v: &mut Vec<u8>) {
    let start = v.len();
    for x in headers
        .iter()
        .filter(|x| x.name.eq_ignore_ascii_case("x-forwarded-for"))
    {
        if v.len() > start {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(x.value);
    }
    if let Some(ip) = append {
        if v.len() > start {
            v.extend_from_slice(b", ");
        }
        crate::util::push_ip(v, ip);
    }
}

/// Whether the chain has a filter that reads request headers the connection manager edits
/// first (RBAC, fault): only then is `mutated` built, so other chains pay nothing.
fn filters_read_headers(hcm: &HttpConnectionManager) -> bool {
    hcm.http_filters.iter().any(|f| {
        matches!(
            f.kind,
            HttpFilterKind::Rbac(_) | HttpFilterKind::Fault(_) | HttpFilterKind::ExtAuthz(_)
        )
    })
}

/// Whether `n` is one of Envoy's `x-envoy-` headers.
fn is_envoy(n: &str) -> bool {
    n.len() > 8 && n.as_bytes()[..8].eq_ignore_ascii_case(b"x-envoy-")
}

/// Whether the connection manager drops the client's header `n` (value `v`) before both its
/// filters and the upstream: an external request's control headers, `x-envoy-internal`
/// (replaced by our verdict), a client certificate it does not forward, and what
/// `add_user_agent` sets (the cluster always, the node when there is one, an empty
/// user-agent as a missing one).
fn hcm_drops(n: &str, v: &[u8], from: Origin, l: &HttpRt, req: &RequestHead<'_>) -> bool {
    (is_envoy(n)
        && (n.eq_ignore_ascii_case("x-envoy-internal")
            || (!from.internal && stripped(n, from.edge))))
        || (n.eq_ignore_ascii_case("x-forwarded-client-cert") && !forward_client_cert(&l.hcm, req))
        || l.user_agent.as_ref().is_some_and(|(_, node)| {
            n.eq_ignore_ascii_case("x-envoy-downstream-service-cluster")
                || (!node.is_empty() && n.eq_ignore_ascii_case("x-envoy-downstream-service-node"))
                || (n.eq_ignore_ascii_case("user-agent") && v.is_empty())
        })
}

/// The request headers as Envoy's connection manager leaves them before its filter chain
/// (`mutateRequestHeaders`), so filters cannot be fooled by headers the upstream would never
/// see: `x-forwarded-for` with the peer appended at the edge; `x-forwarded-proto` replaced
/// (`replace_proto`) or added; an external request's control headers stripped (`stripped`,
/// `cleanInternalHeaders`), `x-envoy-internal` by our verdict, `x-envoy-external-address` at
/// the edge, `x-forwarded-client-cert` as `forward_client_cert_details` says, and
/// `add_user_agent`'s names — as `serialise` writes them upstream (the request id is not
/// regenerated here). `xff` and `ext` hold the values made here.
fn mutated<'v>(
    req: &RequestHead<'v>,
    peer: SocketAddr,
    l: &'v HttpRt,
    xff: &'v mut Vec<u8>,
    ext: &'v mut Vec<u8>,
) -> Vec<httparse::Header<'v>> {
    let hcm = &l.hcm;
    let from = origin(req.headers, peer, hcm);
    let append = hcm.use_remote_address && !hcm.skip_xff_append;
    let mut out = Vec::with_capacity(req.headers.len() + 4);
    let mut have = (false, false, false);
    for hd in req.headers {
        let n = hd.name;
        if hcm_drops(n, hd.value, from, l, req) {
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            have.0 = true;
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-proto") {
            if replace_proto(hcm) {
                continue;
            }
            have.1 = true;
        }
        have.2 |= n.eq_ignore_ascii_case("user-agent");
        out.push(*hd);
    }
    let (have_xff, have_proto, have_user_agent) = have;
    if append || have_xff {
        join_xff(req.headers, append.then_some(peer.ip()), xff);
        out.push(httparse::Header {
            name: "x-forwarded-for",
            value: xff,
        });
    }
    if !have_proto {
        let value: &[u8] = if req.secure { b"https" } else { b"http" };
        out.push(httparse::Header {
            name: "x-forwarded-proto",
            value,
        });
    }
    if from.internal {
        out.push(httparse::Header {
            name: "x-envoy-internal",
            value: b"true",
        });
    }
    if hcm.use_remote_address && from.edge {
        crate::util::push_ip(ext, from.client.ip());
        out.push(httparse::Header {
            name: "x-envoy-external-address",
            value: ext,
        });
    }
    if let Some((cluster, node)) = &l.user_agent {
        let mut name = |name: &'static str, v: &'v str| {
            out.push(httparse::Header {
                name,
                value: v.as_bytes(),
            })
        };
        name("x-envoy-downstream-service-cluster", cluster);
        if !have_user_agent {
            name("user-agent", cluster);
        }
        if !node.is_empty() {
            name("x-envoy-downstream-service-node", node);
        }
    }
    out
}

/// The HTTP filters, then the router: `req` is the request as the connection manager left
/// it, its path already normalised (`CtxEnv::route`). The filters (`filters::run`) see the
/// route the request matched; the connection manager's `via` is added to every answer.
/// `resume`: a paused request goes on, with its ext_authz check's verdict (after a fault
/// delay the verdict is unused).
#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    req: &RequestHead<'_>,
    peer: SocketAddr,
    listener: usize,
    ctx: &mut Ctx,
    early: Option<LocalDecision>,
    trace: Option<&Inject>,
    rq: &mut crate::access_log::Rq,
    resume: Option<(Box<Pending>, super::ext_authz::Verdict)>,
) -> Decision {
    // The connection manager's own answer (a path it refuses or redirects) comes before the
    // filters. Local replies get `via` where they are written (`CtxEnv::local_reply`).
    if let Some(l) = early {
        return Decision::Local(l);
    }
    let Some(http) = ctx.listeners[listener].http() else {
        return route(req, peer, listener, ctx, None, &[], trace);
    };
    let hcm = &http.hcm;
    if hcm.http_filters.is_empty() && hcm.via.is_none() {
        return route(req, peer, listener, ctx, None, &[], trace);
    }
    let via = hcm
        .via
        .as_ref()
        .map(|v| Op::fixed("via", v, AppendAction::AppendIfExistsOrAdd));
    let mut redirect = None;
    let (found, outcome) = if hcm.http_filters.is_empty() {
        (None, filters::Outcome::default())
    } else {
        // A request `require_tls` redirects has Envoy's SSL-redirect route: no route entry, so
        // no per-route filter config and nothing for CORS; the router then answers 301.
        redirect = if http.router.tls_required {
            tls_redirect(req, peer, http)
        } else {
            None
        };
        // RBAC and fault, and routes that match headers the connection manager edits, read
        // the headers as it edited them.
        let (mut xff, mut ext) = (Vec::new(), Vec::new());
        let edited = (filters_read_headers(hcm) || http.router.reads_edited_headers)
            .then(|| mutated(req, peer, http, &mut xff, &mut ext));
        let edited_head = edited.as_deref().map(|headers| RequestHead {
            headers,
            ..req.clone()
        });
        let filter_req = edited_head.as_ref().unwrap_or(req);
        // A resumed request keeps the route its filters saw.
        let (m, resume) = match resume {
            Some((p, verdict)) => {
                let m = p.found.and_then(|(vh, i)| http.router.get(vh, i));
                let resumed = match p.wait {
                    Wait::Check(_) => filters::Resumed::Verdict(verdict),
                    Wait::Delay(_) => {
                        // Its delay is over: the fault filter's active fault goes back.
                        if let Some(g) = rq.active_fault.take() {
                            super::fault::release(g, &mut ctx.stats);
                        }
                        filters::Resumed::Delayed
                    }
                };
                (m, Some(((p.filter, resumed), p.outcome)))
            }
            None if redirect.is_some() => (None, None),
            None => (http.router.route(filter_req), None),
        };
        let (resume, base) = match resume {
            Some((at, o)) => (Some(at), o),
            None => (None, filters::Outcome::default()),
        };
        let view = m.as_ref().and_then(|m| {
            let vh = http.router.config.virtual_hosts.get(m.vh)?;
            let own = match &m.route.action {
                RouteAction::Forward(f) => Some(f),
                _ => None,
            };
            Some(filters::RouteView {
                at: (m.vh, m.index),
                levels: [&m.route.filter_configs, &vh.filter_configs],
                forwards: own.is_some(),
                legacy_cors: [own.and_then(|f| f.cors.as_deref()), vh.cors.as_ref()],
            })
        });
        let found = Some(m.map(|m| (m.vh, m.index)));
        let mut rng = crate::util::Rng::with_seed(ctx.rng.next_u64());
        let env = filters::Env {
            listener,
            service_cluster: &ctx.listeners[listener].service_cluster,
            healthcheck_failed: ctx.stats.healthcheck_failed(),
            clusters: &ctx.clusters,
            now: ctx.now(),
            conn: super::rbac::Conn {
                // Looked up per connection when RBAC is configured (`session::wants_local`);
                // the configured address only if `getsockname` failed.
                local: rq.local.unwrap_or(ctx.listeners[listener].address),
                direct: rq.direct_peer,
                source: peer,
                client: rq.peer,
                tls: rq.tls.as_deref(),
            },
            rbac: &ctx.rbac,
            faults: &ctx.faults,
            compress: &ctx.compress,
            ext_authz: &ctx.ext_authz,
        };
        let out = filters::run(
            &hcm.http_filters,
            filter_req,
            view.as_ref(),
            &env,
            &mut ctx.limits,
            &mut ctx.stats,
            &mut rng,
            resume,
            base,
        );
        (found, out)
    };
    let mut outcome = outcome;
    if outcome.counts != crate::stats::FilterCounts::default() {
        ctx.stats.filter_counts(listener, &outcome.counts);
        outcome.counts = crate::stats::FilterCounts::default();
    }
    rq.health_check = outcome.health_check;
    if let Some(g) = outcome.active_fault.take() {
        rq.flags.set(crate::access_log::Flags::DI);
        rq.active_fault = Some(g);
    }
    if let Some((filter, wait)) = outcome.pause.take() {
        let found = found.flatten();
        let route_idle = found
            .and_then(|(vh, i)| http.router.get(vh, i))
            .and_then(|m| match &m.route.action {
                RouteAction::Forward(f) => f.idle_timeout,
                _ => None,
            });
        return Decision::Pause(Box::new(Pending {
            wait,
            filter,
            found,
            outcome,
            begun: None,
            stream_idle: route_idle.unwrap_or(hcm.stream_idle_timeout),
        }));
    }
    // An inflated body goes upstream chunked, its length unknown.
    let inflated = outcome.inflate.is_some().then(|| RequestHead {
        framing: crate::http::codec::Framing::Chunked,
        ..req.clone()
    });
    let mut d = match outcome.answer {
        Some(a) => Decision::Local(LocalDecision {
            body: a.body,
            // A filter's configured headers may use request variables.
            edits: if a.edits.is_empty() {
                a.edits
            } else {
                let getter = |n: &str| header_value(req, n);
                let vars = Vars {
                    peer,
                    start: SystemTime::now(),
                    minor: req.minor,
                    upstream: None,
                    req: &getter,
                };
                bind(&a.edits, &vars)
            },
            flag: a.flag,
            route: found.flatten(),
            details: a.details,
            ..local_reply(a.status)
        }),
        // The router's answer to a request `require_tls` redirects, decided above.
        None => match redirect {
            Some(r) => r,
            None => route(
                match &inflated {
                    Some(r) => r,
                    None => req,
                },
                peer,
                listener,
                ctx,
                found,
                &outcome.request_edits,
                trace,
            ),
        },
    };
    match &mut d {
        Decision::Local(l) => l.edits.extend(outcome.edits),
        Decision::Forward(f) => {
            f.resp_edits.extend(outcome.edits);
            f.resp_edits.extend(via);
            f.compress = outcome.compress.map(Box::new);
            f.inflate = outcome.inflate.map(Box::new);
        }
        Decision::Pause(_) => {}
    }
    d
}

/// What the connection manager makes of a request's path before routing (Envoy's order:
/// escaped slashes, then `normalize_path`, then `merge_slashes`): the new path (`None`:
/// unchanged), or its own answer — 400 for a fragment or an escaped slash it must refuse,
/// 307 to the unescaped path for `UNESCAPE_AND_REDIRECT`.
pub fn hcm_path(
    path: &str,
    hcm: &HttpConnectionManager,
) -> Result<Option<String>, Box<LocalDecision>> {
    let refused = || {
        Box::new(LocalDecision {
            details: Cow::Borrowed("path_normalization_failed"),
            ..local_reply(400)
        })
    };
    // RFC 3986 §3.5: a fragment is not part of a request target; Envoy refuses one.
    if path.contains('#') {
        return Err(refused());
    }
    let unescaped = match hcm.escaped_slashes {
        EscapedSlashes::KeepUnchanged => None,
        _ => crate::route::normalize::unescape_slashes(path),
    };
    if unescaped.is_some() && hcm.escaped_slashes == EscapedSlashes::RejectRequest {
        return Err(refused());
    }
    let redirect =
        unescaped.is_some() && hcm.escaped_slashes == EscapedSlashes::UnescapeAndRedirect;
    let base = unescaped.as_deref().unwrap_or(path);
    let normalized = normalize(base, hcm.normalize_path, hcm.merge_slashes);
    match normalized.or(unescaped) {
        Some(p) if redirect => Err(Box::new(LocalDecision {
            location: Some(p),
            ..local_reply(307)
        })),
        n => Ok(n),
    }
}

/// Envoy's `require_tls`: a request to a virtual host that requires TLS and did not come over
/// it (its `x-forwarded-proto`, as the connection manager leaves it, is not `https`) is
/// redirected with 301 to `https://` + Host + path, before any route is matched.
fn tls_redirect(req: &RequestHead<'_>, peer: SocketAddr, l: &HttpRt) -> Option<Decision> {
    let need = l.router.virtual_host(req.host)?.require_tls;
    if need == RequireTls::None {
        return None;
    }
    let claimed = (!replace_proto(&l.hcm))
        .then(|| header_value(req, "x-forwarded-proto"))
        .flatten();
    let https = match claimed {
        Some(v) => v == "https",
        None => req.secure,
    };
    if https || (need == RequireTls::ExternalOnly && origin(req.headers, peer, &l.hcm).internal) {
        return None;
    }
    Some(Decision::Local(LocalDecision {
        status: 301,
        body: Cow::Borrowed(""),
        location: Some(format!("https://{}{}", req.host.unwrap_or(""), req.path)),
        edits: Vec::new(),
        upstream: None,
        flag: 0,
        direct: true,
        route: None,
        details: Cow::Borrowed(""),
    }))
}

/// The route's decision for the request. `found` is the match the filters already looked
/// up (`Some(None)`: none), so a request is matched once; `filter_edits` are the filters'
/// request headers, applied before the route's.
fn route(
    req: &RequestHead<'_>,
    peer: SocketAddr,
    listener: usize,
    ctx: &mut Ctx,
    found: Option<Option<(usize, usize)>>,
    filter_edits: &[Op],
    trace: Option<&Inject>,
) -> Decision {
    let Some(l) = ctx.listeners[listener].http() else {
        return local(404, "", crate::access_log::Flags::NR);
    };
    if l.router.tls_required {
        if let Some(d) = tls_redirect(req, peer, l) {
            return d;
        }
    }
    // Routes that match (or hash) headers the connection manager edits read them edited.
    let (mut xff, mut ext) = (Vec::new(), Vec::new());
    let edited = l
        .router
        .reads_edited_headers
        .then(|| mutated(req, peer, l, &mut xff, &mut ext));
    let edited_head = edited.as_deref().map(|headers| RequestHead {
        headers,
        ..req.clone()
    });
    let route_req = edited_head.as_ref().unwrap_or(req);
    let m = match found {
        None => l.router.route(route_req),
        Some(at) => at.and_then(|(vh, i)| l.router.get(vh, i)),
    };
    let Some(m) = m else {
        return local(404, "", crate::access_log::Flags::NR);
    };
    let upgrade = match super::upgrade::requested(req) {
        None => None,
        Some(t) => {
            let on_route = match &m.route.action {
                RouteAction::Forward(f) => f.upgrades.as_slice(),
                _ => &[],
            };
            let connect = req.method == "CONNECT";
            match super::upgrade::allowed(&l.hcm.upgrades, on_route, t, connect) {
                Some(u) => Some(u),
                None => {
                    // Envoy's answer to an upgrade the route does not allow: 403, no body.
                    ctx.stats.upgrade_refused(listener);
                    return local(403, "", 0);
                }
            }
        }
    };
    let stream_idle = l.hcm.stream_idle_timeout;
    // Templates see the request headers as tracing changed them (Envoy's router injects the
    // span's headers into the request itself).
    let getter = |n: &str| match trace.and_then(|t| t.header(n)) {
        Some(v) => Some(v),
        None => header_value(req, n),
    };
    let vars = |upstream| Vars {
        peer,
        start: SystemTime::now(),
        minor: req.minor,
        upstream,
        req: &getter,
    };
    let bound = |upstream| {
        if m.edits.response.is_empty() {
            Vec::new()
        } else {
            bind(&m.edits.response, &vars(upstream))
        }
    };
    let fwd = match &m.route.action {
        RouteAction::DirectResponse { status, body } => {
            return Decision::Local(LocalDecision {
                status: *status,
                body: Cow::Owned(body.clone().unwrap_or_default()),
                location: None,
                edits: bound(None),
                upstream: None,
                flag: 0,
                direct: true,
                route: Some((m.vh, m.index)),
                details: Cow::Borrowed(""),
            })
        }
        RouteAction::Redirect(r) => {
            return Decision::Local(LocalDecision {
                status: r.response_code,
                body: Cow::Borrowed(""),
                location: Some(redirect_location(
                    r,
                    &m.route.matcher.path,
                    req.host,
                    req.path,
                    req.secure,
                )),
                edits: bound(None),
                upstream: None,
                flag: 0,
                direct: false,
                route: Some((m.vh, m.index)),
                details: Cow::Borrowed(""),
            })
        }
        RouteAction::Forward(f) => f,
    };
    let cluster = match &fwd.cluster {
        ClusterSpec::Single(c) => *c,
        ClusterSpec::Weighted(list) => {
            let total: u64 = list.iter().map(|&(_, w)| u64::from(w)).sum();
            pick_weighted(list, ctx.rng.below(total.max(1)))
        }
    };
    let from = origin(req.headers, peer, &l.hcm);
    let (picked, panic) = ctx.clusters.get_mut(cluster).map_or((None, false), |cl| {
        // `source_ip` is the downstream remote address (Envoy's), after the XFF rules.
        let hash = if fwd.hash_policy.is_empty() || !cl.hashes() {
            None
        } else {
            crate::route::matcher::request_hash(&fwd.hash_policy, route_req, from.client)
        };
        let addr = cl
            .pick_hashed(hash, &mut ctx.rng)
            .map(|hi| cl.hosts[hi].addr);
        (addr, cl.in_panic())
    });
    if panic {
        ctx.stats.lb_healthy_panic(cluster);
    }
    let Some(addr) = picked else {
        ctx.stats.none_healthy(cluster);
        return Decision::Local(LocalDecision {
            status: 503,
            body: Cow::Borrowed(local::NO_HEALTHY_UPSTREAM),
            location: None,
            edits: bound(None),
            upstream: None,
            flag: crate::access_log::Flags::UH,
            direct: false,
            route: Some((m.vh, m.index)),
            details: Cow::Borrowed(""),
        });
    };
    let path_rewrite = fwd.prefix_rewrite.is_some() || fwd.regex_rewrite.is_some();
    let path: Cow<'_, str> = match (&fwd.prefix_rewrite, &fwd.regex_rewrite) {
        (Some(rw), _) => rewrite_prefix(&m.route.matcher.path, rw, req.path).into(),
        (None, Some(rr)) => rewrite_regex(rr, req.path).into(),
        (None, None) => req.path.into(),
    };
    let host: Cow<'_, str> = match &fwd.host_rewrite {
        Some(HostRewrite::Literal(h)) => h.as_str().into(),
        Some(HostRewrite::Auto) => match ctx.clusters[cluster].hostname_of(addr) {
            Some(h) => h.to_string().into(),
            None => host_or_addr(req.host, addr),
        },
        None => host_or_addr(req.host, addr),
    };
    let v = vars(Some(addr));
    let over = if from.internal {
        Overrides::read(req.headers)
    } else {
        Overrides::default()
    };
    let merged = if over.is_empty() {
        None
    } else {
        over.retry_policy(fwd.retry_policy.as_ref()).map(Box::new)
    };
    let policy = merged.as_deref().or(fwd.retry_policy.as_ref());
    let (timeout, per_try, expected) = final_timeouts(
        over.timeout.unwrap_or(fwd.timeout),
        over.per_try
            .unwrap_or_else(|| policy.and_then(|p| p.per_try_timeout)),
    );
    let (mut head, host_at, request_id) = serialise(
        req,
        &path,
        &host,
        peer,
        from,
        &m,
        l,
        &mut ctx.request_ids,
        &v,
        expected,
        upgrade == Some(Upgrade::Upgrade),
        path_rewrite.then_some(req.path),
        filter_edits,
        trace,
        ctx.spares.head(),
    );
    let sni = ctx
        .clusters
        .get(cluster)
        .filter(|c| c.cfg.http.auto_sni)
        .and_then(|_| auto_sni(&host));
    let attempt_at = fwd
        .attempt_count
        .request
        .then(|| set_attempt_count(&mut head));
    // Envoy shadows neither CONNECT nor upgrades (their payload is not HTTP).
    let shadows = if fwd.mirrors.is_empty() || upgrade.is_some() {
        Vec::new()
    } else {
        super::mirror::shadows(
            &ctx.clusters,
            &mut ctx.rng,
            &fwd.mirrors,
            req,
            &head,
            host_at,
            &host,
        )
    };
    if ctx
        .clusters
        .get(cluster)
        .is_some_and(|c| c.cfg.http.proper_case_headers)
    {
        proper_case_names(&mut head);
    }
    let rewritten = (ctx.access_logs.slots(listener).is_some()
        && (path_rewrite || fwd.host_rewrite.is_some()))
    .then(|| {
        Box::new(Rewritten {
            path: path_rewrite.then(|| path.to_string()),
            host: fwd.host_rewrite.is_some().then(|| host.to_string()),
            original_path: path_rewrite.then(|| req.path.to_string()),
        })
    });
    let idle = match fwd.idle_timeout {
        Some(route_idle) => route_idle,
        None => stream_idle,
    };
    let (connect_timeout, buffer_limit, resp_headers) = ctx.clusters.get(cluster).map_or(
        (
            Duration::from_secs(5),
            1 << 20,
            crate::http::codec::MAX_HEADERS,
        ),
        |c| {
            (
                c.cfg.connect_timeout,
                c.cfg.per_connection_buffer_limit_bytes as usize,
                c.cfg.http.max_headers_count,
            )
        },
    );
    Decision::Forward(Forward {
        cluster,
        addr,
        connect_timeout,
        buffer_limit,
        resp_headers,
        auto_host: matches!(fwd.host_rewrite, Some(HostRewrite::Auto)).then_some(host_at),
        head,
        timeout,
        idle,
        route: (m.vh, m.index),
        resp_edits: bound(None),
        retries: policy.map(|p| p.num_retries),
        per_try,
        retry_policy: merged,
        request_id,
        upgrade,
        rewritten,
        timeout_status: if over.alt_response { 204 } else { 504 },
        shadows,
        body_limit: fwd.body_limit.map(|b| b as usize),
        attempt_at,
        attempts_in_response: fwd.attempt_count.response,
        sni,
        compress: None,
        inflate: None,
        h2: ctx
            .clusters
            .get(cluster)
            .is_some_and(|c| c.cfg.http.http2.is_some()),
    })
}

/// Whether a `TE` value lists `trailers` (a transfer coding with its parameters, RFC 9110
/// §10.1.4).
fn te_trailers(v: &[u8]) -> bool {
    v.split(|&c| c == b',').any(|t| {
        let t = t.split(|&c| c == b';').next().unwrap_or_default();
        super::codec::trim(t).eq_ignore_ascii_case(b"trailers")
    })
}

/// The cluster's `header_key_format.proper_case_words`, as Envoy's HTTP/1 codec writes
/// names: lower case, with the first character and every letter after a character that is
/// not a letter or digit in upper case (`content-type` → `Content-Type`, `te` → `Te`). Only
/// names change, in place (same length, so the Host value's range stays valid).
pub fn proper_case_names(head: &mut [u8]) {
    let Some(first) = head.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let mut i = first + 2;
    while i < head.len() && head[i] != b'\r' {
        let mut up = true;
        while i < head.len() && head[i] != b':' && head[i] != b'\r' {
            let b = head[i];
            head[i] = if up {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            up = !b.is_ascii_alphanumeric();
            i += 1;
        }
        // The value, to the end of its line.
        while i < head.len() && head[i] != b'\n' {
            i += 1;
        }
        i += 1;
    }
}

fn host_or_addr<'a>(host: Option<&'a str>, addr: SocketAddr) -> Cow<'a, str> {
    match host {
        Some(h) => h.into(),
        None => addr.to_string().into(),
    }
}

/// Whether a client's `x-forwarded-client-cert` goes on upstream (`forward_client_cert_details`).
fn forward_client_cert(hcm: &HttpConnectionManager, req: &RequestHead<'_>) -> bool {
    match hcm.forward_client_cert_details {
        ForwardClientCert::Sanitize => false,
        ForwardClientCert::ForwardOnly => req.peer_cert,
        ForwardClientCert::AlwaysForwardOnly => true,
    }
}

/// Writes the upstream request head; returns it with the byte range of the Host value.
#[allow(clippy::too_many_arguments)]
fn serialise<'r>(
    req: &RequestHead<'r>,
    path: &str,
    host: &str,
    peer: SocketAddr,
    from: Origin,
    m: &Matched<'_>,
    l: &HttpRt,
    ids: &mut RequestIds,
    vars: &Vars<'_>,
    expected_timeout: Option<Duration>,
    upgrade: bool,
    original_path: Option<&'r str>,
    filter_edits: &[Op],
    trace: Option<&Inject>,
    mut h: Vec<u8>,
) -> (Vec<u8>, (usize, usize), Option<[u8; 36]>) {
    let hcm = &l.hcm;
    let edge = hcm.use_remote_address;
    let generate_request_id = hcm.generate_request_id;
    let mut have_user_agent = false;
    h.clear();
    h.extend_from_slice(req.method.as_bytes());
    h.push(b' ');
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    let host_at = (h.len(), h.len() + host.len());
    h.extend_from_slice(host.as_bytes());
    h.extend_from_slice(b"\r\n");
    // Only a route with request edits pays for an intermediate header list.
    let direct = m.edits.request.is_empty() && filter_edits.is_empty();
    // The list borrows the request's names and values; only values made here are owned.
    let mut list: Option<HeaderList<'r>> =
        (!direct).then(|| Vec::with_capacity(req.headers.len() + 8));
    let mut out = |h: &mut Vec<u8>, n: Cow<'r, str>, v: Cow<'r, [u8]>| match &mut list {
        Some(l) => l.push((n, v)),
        None => put_header(h, &n, &v),
    };
    let mut xff = false;
    // Asked once (by the parser), not per header: most requests name no header in Connection.
    let nominated = req
        .connection_names_others
        .then(|| super::codec::Nominated::of(req.headers));
    let mut have_request_id = false;
    let mut have_proto = false;
    let mut te_sent = false;
    for hd in req.headers {
        let n = hd.name;
        if upgrade && n.eq_ignore_ascii_case("upgrade") {
            out(&mut h, n.into(), hd.value.into());
            continue;
        }
        if n.eq_ignore_ascii_case("te") {
            // Envoy's `ConnectionManagerUtility::sanitizeTEHeader`: the one hop-by-hop header
            // that goes on, as `trailers` when the client's list has it (gRPC needs it), else
            // not at all.
            if !te_sent && te_trailers(hd.value) {
                out(&mut h, "te".into(), b"trailers"[..].into());
                te_sent = true;
            }
            continue;
        }
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case("host")
            || (n.eq_ignore_ascii_case("expect")
                && !(hcm.proxy_100_continue && req.expect_continue))
            || nominated.as_ref().is_some_and(|c| c.names(n))
        {
            continue;
        }
        // The router's own controls are consumed; what the connection manager replaces is set
        // below (`add_user_agent`'s names, `x-envoy-internal`).
        if (is_envoy(n) && named(CONSUMED, n)) || hcm_drops(n, hd.value, from, l, req) {
            continue;
        }
        have_user_agent |= n.eq_ignore_ascii_case("user-agent");
        if original_path.is_some() && n.eq_ignore_ascii_case("x-envoy-original-path") {
            continue;
        }
        if trace.is_some_and(|t| t.replaces(n))
            || (n.eq_ignore_ascii_case("x-envoy-decorator-operation")
                && egress_operation(trace, m).is_some())
        {
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            // Joined into one header below.
            xff = true;
            continue;
        }
        if n.eq_ignore_ascii_case("x-request-id") {
            // At the edge Envoy replaces the client's id with its own, unless told to keep it.
            if from.edge && generate_request_id && !hcm.preserve_external_request_id {
                continue;
            }
            have_request_id = true;
        }
        if n.eq_ignore_ascii_case("x-forwarded-proto") {
            // With use_remote_address and no trusted hop before us, the client's claim is
            // replaced, as Envoy does.
            if replace_proto(hcm) {
                continue;
            }
            have_proto = true;
        }
        out(&mut h, n.into(), hd.value.into());
    }
    // Envoy appends the client's address only at the edge (use_remote_address, unless
    // skip_xff_append); otherwise x-forwarded-for passes through as the client sent it.
    let append = edge && !hcm.skip_xff_append;
    if append || xff {
        // Written in place when no edit list is built (the common case): no temporary.
        let mut tmp = Vec::with_capacity(if direct { 0 } else { 64 });
        let v = if direct {
            h.extend_from_slice(b"x-forwarded-for: ");
            &mut h
        } else {
            &mut tmp
        };
        join_xff(req.headers, append.then_some(peer.ip()), v);
        if direct {
            h.extend_from_slice(b"\r\n");
        } else {
            out(&mut h, "x-forwarded-for".into(), tmp.into());
        }
    }
    if edge && from.edge && direct {
        h.extend_from_slice(b"x-envoy-external-address: ");
        crate::util::push_ip(&mut h, from.client.ip());
        h.extend_from_slice(b"\r\n");
    } else if edge && from.edge {
        let mut a = Vec::with_capacity(40);
        crate::util::push_ip(&mut a, from.client.ip());
        out(&mut h, "x-envoy-external-address".into(), a.into());
    }
    // Envoy's `add_user_agent`.
    if let Some((cluster, node)) = &l.user_agent {
        let mut name_it = |name: &'static str, v: &str| {
            if direct {
                put_header(&mut h, name, v.as_bytes());
            } else {
                out(&mut h, name.into(), v.as_bytes().to_vec().into());
            }
        };
        name_it("x-envoy-downstream-service-cluster", cluster);
        if !have_user_agent {
            name_it("user-agent", cluster);
        }
        if !node.is_empty() {
            name_it("x-envoy-downstream-service-node", node);
        }
    }
    // After the client's own `via` lines: the list keeps its order.
    if let Some(via) = &hcm.via {
        if direct {
            put_header(&mut h, "via", via.as_bytes());
        } else {
            out(&mut h, "via".into(), via.as_bytes().to_vec().into());
        }
    }
    if upgrade {
        out(&mut h, "connection".into(), b"upgrade"[..].into());
    }
    if from.internal {
        out(&mut h, "x-envoy-internal".into(), b"true"[..].into());
    }
    // Envoy's router keeps the path from before a prefix or regex rewrite.
    if let Some(p) = original_path {
        out(&mut h, "x-envoy-original-path".into(), p.as_bytes().into());
    }
    if !have_proto {
        let proto: &[u8] = if req.secure { b"https" } else { b"http" };
        out(&mut h, "x-forwarded-proto".into(), proto.into());
    }
    // Envoy's router tells the upstream how long it will wait: the per-try timeout if the
    // route has one, else the route timeout.
    if let Some(t) = expected_timeout {
        let (digits, i) = crate::util::digits::<10>(t.as_millis() as u64);
        let v = digits.get(i..).unwrap_or_default();
        if direct {
            put_header(&mut h, "x-envoy-expected-rq-timeout-ms", v);
        } else {
            out(
                &mut h,
                "x-envoy-expected-rq-timeout-ms".into(),
                v.to_vec().into(),
            );
        }
    }
    let mut request_id = None;
    if let Some(t) = trace {
        for (n, v) in &t.headers {
            out(&mut h, Cow::Borrowed(n), Cow::Owned(v.clone().into_bytes()));
        }
        if let Some(op) = egress_operation(trace, m) {
            out(
                &mut h,
                "x-envoy-decorator-operation".into(),
                op.as_bytes().to_vec().into(),
            );
        }
        if let Some(id) = t.rid {
            out(&mut h, "x-request-id".into(), id.to_vec().into());
            request_id = Some(id);
            have_request_id = true;
        }
    }
    if !have_request_id && generate_request_id {
        let id = ids.uuid4_bytes();
        if direct {
            put_header(&mut h, "x-request-id", &id);
        } else {
            out(&mut h, "x-request-id".into(), id.to_vec().into());
        }
        request_id = Some(id);
    }
    if let Some(mut l) = list {
        apply(&mut l, filter_edits, &|t: &Template| t.render(vars));
        apply(&mut l, &m.edits.request, &|t: &Template| t.render(vars));
        for (n, v) in &l {
            put_header(&mut h, n, v);
        }
    }
    match req.framing {
        Framing::Length(n) => {
            h.extend_from_slice(b"content-length: ");
            crate::util::push_dec(&mut h, n);
            h.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => put_header(&mut h, "transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {
            // A bodyless POST/PUT still says so, or some origins wait for a body.
            if matches!(req.method, "POST" | "PUT" | "PATCH") {
                put_header(&mut h, "content-length", b"0");
            }
        }
    }
    h.extend_from_slice(b"\r\n");
    (h, host_at, request_id)
}

/// An egress span's route decorator with `propagate`: its operation goes upstream as
/// `x-envoy-decorator-operation` (replacing the client's).
fn egress_operation<'a>(trace: Option<&Inject>, m: &'a Matched<'_>) -> Option<&'a str> {
    let d = m.route.decorator.as_ref()?;
    (trace.is_some_and(|t| !t.ingress) && d.propagate).then_some(d.operation.as_str())
}

/// `auto_sni`'s server name for an upstream Host: the name without its port; none for an IP
/// address or an empty name (Envoy then keeps the cluster's own `sni`).
pub fn auto_sni(host: &str) -> Option<Box<str>> {
    let (name, _port) = crate::route::rewrite::split_port(host);
    let ip = name.parse::<std::net::IpAddr>().is_ok()
        || (name.starts_with('[') && name.ends_with(']'))
        || name.contains(':');
    (!name.is_empty() && !ip).then(|| name.into())
}

/// Makes `x-envoy-attempt-count: 1` the last header of a serialised head, in place of any the
/// client sent (Envoy overrides it); returns the value's range, which a retry rewrites.
pub fn set_attempt_count(head: &mut Vec<u8>) -> (usize, usize) {
    const NAME: &[u8] = b"x-envoy-attempt-count:";
    // Past the request line; the head ends with its blank line.
    let mut at = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |i| i + 1);
    while let Some(len) = head
        .get(at..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        let line = head.get(at..at + len + 1).unwrap_or_default();
        if line.len() > NAME.len()
            && line
                .get(..NAME.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(NAME))
        {
            head.drain(at..at + len + 1);
        } else {
            at += len + 1;
        }
    }
    let end = head.len().saturating_sub(2);
    let line = b"x-envoy-attempt-count: 1\r\n";
    head.splice(end..end, line.iter().copied());
    let value = end + line.len() - 3;
    (value, value + 1)
}

/// Replaces a header value of a serialised head (the Host when a retry under
/// `auto_host_rewrite` moved to a host with another name, the attempt count, a shadow's
/// Host); returns the new range.
pub fn replace_value(head: &mut Vec<u8>, at: (usize, usize), host: &str) -> (usize, usize) {
    if head.get(at.0..at.1).is_some() {
        head.splice(at.0..at.1, host.bytes());
    }
    (at.0, at.0 + host.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_sni_is_the_host_without_port_and_never_an_address() {
        assert_eq!(auto_sni("a.test:8443").as_deref(), Some("a.test"));
        assert_eq!(auto_sni("a.test").as_deref(), Some("a.test"));
        for none in ["127.0.0.1", "127.0.0.1:80", "[::1]:443", "::1", ""] {
            assert_eq!(auto_sni(none), None, "{none}");
        }
    }

    #[test]
    fn the_attempt_count_replaces_the_clients_and_is_rewritten_per_attempt() {
        let mut head = b"GET / HTTP/1.1\r\nhost: a\r\nX-Envoy-Attempt-Count: 9\r\nx: y\r\n\
                         x-envoy-attempt-count: 8\r\n\r\n"
            .to_vec();
        let at = set_attempt_count(&mut head);
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET / HTTP/1.1\r\nhost: a\r\nx: y\r\nx-envoy-attempt-count: 1\r\n\r\n"
        );
        let at = replace_value(&mut head, at, "12");
        assert_eq!(head.get(at.0..at.1), Some(&b"12"[..]));
        assert!(head.ends_with(b"x-envoy-attempt-count: 12\r\n\r\n"));
    }

    #[test]
    fn te_passes_as_trailers_only() {
        assert!(te_trailers(b"trailers"));
        assert!(te_trailers(b"gzip;q=0.5, Trailers"));
        assert!(!te_trailers(b"gzip, deflate"));
        assert!(!te_trailers(b"trailersx"));
    }

    #[test]
    fn proper_case_changes_names_only_as_envoy_does() {
        let mut h = b"GET /a-b HTTP/1.1\r\nhost: x.test\r\ncontent-type: text/x-y\r\nTE: trailers\r\nfoo$b#$are: 1\r\nx-2b_c: v:w\r\n\r\n".to_vec();
        proper_case_names(&mut h);
        assert_eq!(
            String::from_utf8_lossy(&h),
            "GET /a-b HTTP/1.1\r\nHost: x.test\r\nContent-Type: text/x-y\r\nTe: trailers\r\nFoo$B#$Are: 1\r\nX-2b_C: v:w\r\n\r\n"
        );
    }

    #[test]
    fn trusted_client_follows_envoys_rules() {
        let peer: SocketAddr = "10.0.0.9:5555".parse().unwrap();
        let h = [httparse::Header {
            name: "X-Forwarded-For",
            value: b"1.1.1.1, 2.2.2.2,3.3.3.3",
        }];
        let ip = |a: &str| SocketAddr::new(a.parse().unwrap(), 0);
        assert_eq!(trusted_client(&h, peer, true, 0), peer);
        assert_eq!(trusted_client(&h, peer, true, 1), ip("3.3.3.3"));
        assert_eq!(trusted_client(&h, peer, true, 2), ip("2.2.2.2"));
        assert_eq!(trusted_client(&h, peer, false, 0), ip("3.3.3.3"));
        assert_eq!(trusted_client(&h, peer, false, 2), ip("1.1.1.1"));
        assert_eq!(trusted_client(&h, peer, false, 3), peer);
        assert_eq!(trusted_client(&[], peer, false, 0), peer);
        let bad = [httparse::Header {
            name: "x-forwarded-for",
            value: b"not-an-ip",
        }];
        assert_eq!(trusted_client(&bad, peer, false, 0), peer);
    }

    fn hcm(use_remote_address: bool, hops: u32) -> HttpConnectionManager {
        let mut b = crate::config::load_str(
            "static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config: {virtual_hosts: []}
          http_filters: [{name: envoy.filters.http.router}]
",
        )
        .expect("config");
        let crate::config::Terminal::Http(h) = b.listeners.remove(0).terminals.remove(0) else {
            panic!("an HTTP listener");
        };
        let mut h = *h;
        h.use_remote_address = use_remote_address;
        h.xff_num_trusted_hops = hops;
        h
    }

    #[test]
    fn internal_requests_follow_envoys_rules() {
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let xff = |v: &'static [u8]| {
            [httparse::Header {
                name: "X-Forwarded-For",
                value: v,
            }]
        };
        let edge = hcm(true, 0);
        assert!(origin(&[], lo, &edge).internal);
        let o = origin(&[], other, &edge);
        assert!(!o.internal && o.edge);
        // With use_remote_address, any x-forwarded-for makes it external.
        assert!(!origin(&xff(b"10.0.0.1"), lo, &edge).internal);
        let inner = hcm(false, 0);
        assert!(origin(&xff(b"10.0.0.1"), other, &inner).internal);
        assert!(origin(&xff(b" fd00::1 "), other, &inner).internal);
        assert!(!origin(&xff(b"10.0.0.1,10.0.0.2"), lo, &inner).internal);
        assert!(!origin(&xff(b"8.8.8.8"), lo, &inner).internal);
        assert!(!origin(&xff(b"junk"), lo, &inner).internal);
        assert!(!origin(&[], lo, &inner).internal, "no XFF: external");
        assert!(!origin(&xff(b"10.0.0.1"), lo, &hcm(false, 1)).internal);
        assert!(!origin(&[], lo, &inner).edge);

        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for yes in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
        ] {
            assert!(is_internal(ip(yes), None), "{yes}");
        }
        for no in [
            "172.32.0.1",
            "127.0.0.2",
            "8.8.8.8",
            "fe80::1",
            "2001:db8::1",
        ] {
            assert!(!is_internal(ip(no), None), "{no}");
        }
        assert!(is_internal(ip("::ffff:10.0.0.1"), None));
        assert!(is_internal(ip("::1"), None));
        let ranges = [(ip("203.0.113.0"), 24), (ip("2001:db8::"), 32)];
        assert!(is_internal(ip("203.0.113.77"), Some(&ranges)));
        assert!(is_internal(ip("2001:db8:1::5"), Some(&ranges)));
        assert!(!is_internal(ip("10.0.0.1"), Some(&ranges)));
        assert!(is_internal(ip("1.2.3.4"), Some(&[(ip("0.0.0.0"), 0)])));
    }

    #[test]
    fn control_headers_override_timeouts_and_retries() {
        let h = |n: &'static str, v: &'static [u8]| httparse::Header { name: n, value: v };
        let o = Overrides::read(&[
            h("x-envoy-upstream-rq-timeout-ms", b"0"),
            h("X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms", b" 250 "),
            h("x-envoy-retry-on", b"connect-failure, refused-stream,bogus"),
            h("x-envoy-max-retries", b"4"),
            h("x-envoy-retriable-status-codes", b"418, x,503"),
            h("x-envoy-upstream-rq-timeout-alt-response", b""),
        ]);
        assert!(o.alt_response);
        assert_eq!(o.timeout, Some(None));
        assert_eq!(o.per_try, Some(Some(Duration::from_millis(250))));
        // 0 is no per-try timeout (Envoy arms that timer only above 0), not an instant one.
        let zero = Overrides::read(&[h("x-envoy-upstream-rq-per-try-timeout-ms", b"0")]);
        assert_eq!(zero.per_try, Some(None));
        let p = o
            .retry_policy(None)
            .expect("a policy from the headers alone");
        assert!(p.retry_on.connect_failure && !p.retry_on.five_xx);
        assert_eq!(p.num_retries, 4);
        assert_eq!(p.retriable_status_codes, [418, 503]);
        assert!(Overrides::read(&[h("x-envoy-max-retries", b"3")])
            .retry_policy(None)
            .is_none());
        assert!(Overrides::read(&[h("x-envoy-upstream-rq-timeout-ms", b"abc")]).is_empty());

        let s = |ms| Some(Duration::from_millis(ms));
        assert_eq!(final_timeouts(s(1000), s(300)), (s(1000), s(300), s(300)));
        assert_eq!(final_timeouts(s(1000), s(1000)), (s(1000), None, s(1000)));
        assert_eq!(final_timeouts(None, s(300)), (None, s(300), s(300)));
        assert_eq!(final_timeouts(None, None), (None, None, None));
    }

    #[test]
    fn weighted_pick_walks_cumulative_weights() {
        let l = [(7, 80), (9, 20)];
        assert_eq!(pick_weighted(&l, 0), 7);
        assert_eq!(pick_weighted(&l, 79), 7);
        assert_eq!(pick_weighted(&l, 80), 9);
        assert_eq!(pick_weighted(&l, 99), 9);
        let mut h = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        let at = replace_value(&mut h, (22, 23), "bbb");
        assert_eq!(at, (22, 25));
        assert_eq!(h, b"GET / HTTP/1.1\r\nhost: bbb\r\n\r\n");
    }
}
