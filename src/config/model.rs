//! The checked internal model of a bootstrap. Everything the data path reads comes from here;
//! the serde mirror of Envoy's YAML (`raw.rs`) never leaves `config/`. Every default is Envoy's
//! and is applied during validation, so the data path never has to know what "absent" meant.

use std::net::SocketAddr;
use std::time::Duration;

/// A whole validated bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub admin: Option<Admin>,
    /// The overload manager's `global_downstream_max_connections`: client connections on all
    /// listeners together (the admin's not counted).
    pub max_downstream_connections: Option<u64>,
    /// `node {id, cluster}`; the CLI's `--service-node`/`--service-cluster` override it.
    pub node: Option<Node>,
}

/// Who this proxy is (Envoy's `node`), shown in logs and /server_info.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

/// `admin`: present when it has an address or an access log path.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// The admin listener; `None`: no admin interface (the access log is still opened at
    /// start, as Envoy does).
    pub address: Option<SocketAddr>,
    /// Deprecated-but-common `admin.access_log_path`; `None` when absent or empty (Envoy's
    /// "no log").
    pub access_log_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub hcm: HttpConnectionManager,
    /// Listener-level read/write buffer bound per connection; default 1 MiB.
    pub per_connection_buffer_limit_bytes: u32,
    /// The `envoy.filters.network.connection_limit` filter in front of the HCM, if any.
    pub connection_limit: Option<ConnectionLimit>,
    /// The runtime's `envoy.resource_limits.listener.<name>.connection_limit`: past that many
    /// open connections a new one is closed at once (`listener.<address>.downstream_cx_overflow`).
    pub runtime_connection_limit: Option<u64>,
    /// Every filter chain's match and transport (plain or TLS), in config order. They share
    /// the network filters above: baton serves one HTTP connection manager per listener.
    pub filter_chains: Vec<FilterChainTls>,
    /// How long a connection may take to send its ClientHello (`listener_filters_timeout`).
    pub inspect_timeout: Duration,
}

/// Envoy's connection limit network filter: past `max_connections` open connections on the
/// listener, new ones are closed at once (`connection_limit.<stat_prefix>.limited_connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    pub stat_prefix: String,
    pub max_connections: u64,
}

/// HCM `codec_type`; HTTP2/HTTP3 are rejected at load, so only these reach the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecType {
    /// Default. With no TLS/ALPN and no h2c support this means HTTP/1.x; an HTTP/2 preface is
    /// answered with an HTTP/2 GOAWAY.
    Auto,
    /// HTTP/1.x only: an HTTP/2 preface is a malformed HTTP/1 request (400), as in Envoy.
    Http1,
}

/// What to do with the `server` response header (Envoy's `server_header_transformation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeader {
    /// Default: replace whatever the upstream sent with `server_name`.
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub route_config: RouteConfig,
    /// `common_http_protocol_options.idle_timeout`; default 1 h; `None` when configured 0s.
    pub idle_timeout: Option<Duration>,
    /// Default disabled (`None`).
    pub request_headers_timeout: Option<Duration>,
    /// Default 5 min; `None` when configured 0s.
    pub stream_idle_timeout: Option<Duration>,
    /// Default 60 KiB (Envoy's default), max 8192.
    pub max_request_headers_kb: u32,
    /// Default "envoy" in Envoy; ours is "baton".
    pub server_name: String,
    pub server_header_transformation: ServerHeader,
    pub codec_type: CodecType,
    /// Trust the peer address (not XFF) as the client address; default false.
    pub use_remote_address: bool,
    /// Default 0.
    pub xff_num_trusted_hops: u32,
    /// Add `x-request-id` when absent; default true.
    pub generate_request_id: bool,
    /// RFC 3986 path normalisation before routing; default false.
    pub normalize_path: bool,
    /// Collapse `//` in the path before routing; default false.
    pub merge_slashes: bool,
    /// HCM `access_log[]` (file loggers only), in configured order.
    pub access_log: Vec<AccessLog>,
    /// `upgrade_configs[]`: upgrade type (lower case) and whether it is enabled.
    pub upgrades: Vec<(String, bool)>,
    /// `internal_address_config.cidr_ranges`; `None` (unset or empty) is Envoy's default:
    /// RFC 1918 addresses, 127.0.0.1, fd00::/8 and ::1.
    pub internal_addresses: Option<Vec<(std::net::IpAddr, u8)>>,
    /// `http_protocol_options.accept_http_10`; default false (HTTP/1.0 gets 426).
    pub accept_http_10: bool,
    /// `http_protocol_options.default_host_for_http_10`: the Host of an HTTP/1.0 request
    /// that has none.
    pub default_host_for_http_10: Option<String>,
    /// The `envoy.filters.http.health_check` filter before the router, if any.
    pub health_check: Option<HealthCheckFilter>,
}

/// Envoy's health check HTTP filter: requests whose headers all match are health checks,
/// answered here (or, in pass-through mode, forwarded) and marked with the service cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckFilter {
    /// Forward health checks to the route's upstream instead of answering them here (they are
    /// still answered 503 here while `/healthcheck/fail` is in force).
    pub pass_through_mode: bool,
    /// What makes a request a health check: every matcher must hold.
    pub headers: Vec<HeaderMatcher>,
    /// Not in pass-through mode: answer 503 unless each cluster (by name; one that does not
    /// exist counts as unhealthy, as in Envoy) has at least this percentage of its hosts
    /// healthy.
    pub cluster_min_healthy_percentages: Vec<(String, f64)>,
}

/// One `envoy.access_loggers.file` logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub path: String,
    /// The format string exactly as configured (command operators unexpanded); Envoy's default
    /// format (ending in a newline) when none is given. Custom formats get no implicit newline.
    pub format: String,
}

/// Envoy's default access-log format, used when a file logger names none.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% \
%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \
%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \
\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// How a configured header is combined with one already present (Envoy's `append_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// Default (and legacy `append: true`): add another value.
    AppendIfExistsOrAdd,
    AddIfAbsent,
    /// Legacy `append: false`.
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

/// One `*_headers_to_add` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValueOption {
    /// Lower-cased.
    pub name: String,
    /// Raw, with `%VAR%` substitutions unexpanded (checked for syntax at load).
    pub value: String,
    pub append_action: AppendAction,
    /// Add the header even when the value expands to ""; default false.
    pub keep_empty_value: bool,
}

/// Header edits at one level (route_config, virtual host, route). The data path applies the
/// levels in Envoy's order; see `RouteConfig::most_specific_header_mutations_wins`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderMutations {
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Lower-cased names.
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self == &HeaderMutations::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub headers: HeaderMutations,
    /// Default false: route_config edits are applied last (win); true: route-level edits win.
    pub most_specific_header_mutations_wins: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// Lower-cased as given: exact names, `*`, `*.suffix`/`*suffix`, `prefix*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub headers: HeaderMutations,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub headers: HeaderMutations,
}

/// A compiled regular expression that compares by its source pattern (so the model can keep
/// deriving `PartialEq`).
#[derive(Debug, Clone)]
pub struct Regex {
    pattern: String,
    /// The same pattern anchored at both ends: Envoy's `safe_regex` matches whole strings.
    full: regex::Regex,
    /// Unanchored, for `regex_rewrite` (replace every match).
    partial: regex::Regex,
}

/// Why a regex was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// Not valid syntax: the regex crate's message.
    Syntax(String),
    /// Its program is larger than the configured limit.
    TooBig { size: usize, limit: u32 },
}

impl RegexError {
    /// The message an operator sees for `pattern`.
    pub fn describe(&self, pattern: &str) -> String {
        match self {
            RegexError::Syntax(e) => format!(
                "invalid regex {pattern:?}: {}",
                e.lines().last().unwrap_or_default().trim()
            ),
            RegexError::TooBig { size, limit } => {
                format!("regex {pattern:?}: program size {size} is larger than the maximum {limit}")
            }
        }
    }
}

/// The size of a regex's program, the measure RE2's `max_program_size` bounds: the number of
/// states of its compiled Thompson NFA (RE2 counts the instructions of its compiled program,
/// which are the same kind of thing: one per byte range, split, match or capture-free step).
pub fn program_size(pattern: &str) -> Result<usize, RegexError> {
    use regex_automata::nfa::thompson::{Compiler, Config, WhichCaptures};
    let nfa = Compiler::new()
        .configure(
            Config::new()
                .which_captures(WhichCaptures::None)
                .shrink(true),
        )
        .build(pattern)
        .map_err(|e| RegexError::Syntax(e.to_string()))?;
    Ok(nfa.states().len())
}

impl Regex {
    /// Compiles `pattern` (RE2-compatible syntax), refusing it when its program size (see
    /// `program_size`) is over `max_program_size`.
    pub fn new(pattern: &str, max_program_size: Option<u32>) -> Result<Regex, RegexError> {
        let syntax = |e: regex::Error| RegexError::Syntax(e.to_string());
        let partial = regex::Regex::new(pattern).map_err(syntax)?;
        let full = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(syntax)?;
        if let Some(limit) = max_program_size {
            let size = program_size(pattern)?;
            if size > limit as usize {
                return Err(RegexError::TooBig { size, limit });
            }
        }
        Ok(Regex {
            pattern: pattern.to_string(),
            full,
            partial,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True when the whole of `s` matches (Envoy's semantics for every `safe_regex` matcher).
    pub fn is_full_match(&self, s: &str) -> bool {
        self.full.is_match(s)
    }

    /// The unanchored regex, for search-and-replace.
    pub fn unanchored(&self) -> &regex::Regex {
        &self.partial
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    /// `connect_matcher`: CONNECT requests only (no other path matcher matches them).
    Connect,
    Prefix(String),
    Path(String),
    /// Matched against the whole path without the query string; `case_sensitive` does not apply.
    SafeRegex(Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Default true.
    pub case_sensitive: bool,
    /// All must match (AND).
    pub headers: Vec<HeaderMatcher>,
    /// All must match (AND).
    pub query_parameters: Vec<QueryParameterMatcher>,
}

/// Envoy's `StringMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatchKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// Whole-string match; `ignore_case` does not apply.
    SafeRegex(Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringMatch {
    pub kind: StringMatchKind,
    /// Default false.
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatchRule {
    /// The header's value (several values joined with ",") matches.
    Value(StringMatch),
    /// `present_match: true` → header present; `false` → header absent.
    Present(bool),
    /// Legacy `range_match`: the value parses as an integer in `start..end`.
    Range { start: i64, end: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower-cased; may be a pseudo-header such as `:method` or `:authority`.
    pub name: String,
    pub rule: HeaderMatchRule,
    /// `invert_match`: default false.
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryParameterRule {
    Value(StringMatch),
    /// `present_match: true`.
    Present,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameterMatcher {
    /// Exact, case-sensitive parameter name.
    pub name: String,
    pub rule: QueryParameterRule,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(ForwardAction),
    /// `direct_response`: answered locally.
    DirectResponse {
        status: u16,
        body: Option<String>,
    },
    Redirect(RedirectAction),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAction {
    pub cluster: ClusterSpec,
    pub prefix_rewrite: Option<String>,
    /// Default 15 s; `None` when configured 0s (disabled).
    pub timeout: Option<Duration>,
    /// Exclusive with `prefix_rewrite`.
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: Option<HostRewrite>,
    /// Per-route stream idle timeout: `None` when absent (the HCM's `stream_idle_timeout`
    /// applies), `Some(None)` when configured 0s (disabled for this route).
    pub idle_timeout: Option<Option<Duration>>,
    pub retry_policy: Option<RetryPolicy>,
    /// `upgrade_configs[]`: overrides the connection manager's per upgrade type.
    pub upgrades: Vec<RouteUpgrade>,
}

/// A route's `upgrade_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUpgrade {
    /// Lower case, compared case-insensitively with the request's.
    pub upgrade_type: String,
    pub enabled: bool,
    /// `connect_config` given: CONNECT is terminated here and the payload sent raw.
    pub terminate_connect: bool,
}

/// `regex_rewrite`: every non-overlapping match in the path (query excluded) is replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexRewrite {
    pub pattern: Regex,
    /// In the `regex` crate's replacement syntax: Envoy's `\1` is converted to `${1}` and a
    /// literal `$` to `$$`, so it can be passed to `Regex::replace_all` as is.
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRewrite {
    /// `host_rewrite_literal`.
    Literal(String),
    /// `auto_host_rewrite: true`: the chosen upstream's host name (DNS clusters).
    Auto,
}

/// Which failures a retry policy retries (Envoy's comma-separated `retry_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    /// `5xx`: any 5xx, connect failure or reset.
    pub five_xx: bool,
    /// `gateway-error`: 502, 503, 504.
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    /// `retriable-4xx`: 409.
    pub retriable_4xx: bool,
    /// `retriable-status-codes`: the codes in `RetryPolicy::retriable_status_codes`.
    pub retriable_status_codes: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Default 1.
    pub num_retries: u32,
    /// `None`: each try may use the rest of the route timeout.
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    /// Jittered exponential back-off base; default 25 ms.
    pub back_off_base: Duration,
    /// Default 10 × base.
    pub back_off_max: Duration,
}

/// `redirect`: answered locally with a Location built from the request and these overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    /// `https_redirect: true` gives "https"; `scheme_redirect` as given (lower-cased).
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: PathRedirect,
    /// 301 (MOVED_PERMANENTLY, the default), 302, 303, 307 or 308.
    pub response_code: u16,
    /// Default false.
    pub strip_query: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathRedirect {
    /// Keep the request's path.
    Keep,
    /// `path_redirect`: replace the whole path (it may carry its own query).
    Path(String),
    /// `prefix_rewrite`: replace the matched route prefix.
    Prefix(String),
    Regex(RegexRewrite),
}

/// Which cluster a forwarded request goes to. Indices point into `Bootstrap::clusters` and are
/// validated to exist, so the data path never looks a cluster up by name.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterSpec {
    Single(usize),
    /// `weighted_clusters`: (cluster index, weight); weights > 0 in total.
    Weighted(Vec<(usize, u32)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryType {
    Static,
    StrictDns,
    LogicalDns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    Random,
    LeastRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// Envoy's default: prefer v6, fall back to v4.
    Auto,
    V4Only,
    V6Only,
    V4Preferred,
    All,
}

/// One configured endpoint: a host name or IP literal, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddr {
    pub host: String,
    pub port: u16,
    /// `load_balancing_weight`, default 1; every address the endpoint resolves to gets it.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Default 5 s.
    pub connect_timeout: Duration,
    pub discovery: DiscoveryType,
    pub lb_policy: LbPolicy,
    pub dns_lookup_family: DnsLookupFamily,
    /// Default 5 s.
    pub dns_refresh_rate: Duration,
    pub endpoints: Vec<EndpointAddr>,
    /// Default 1 MiB.
    pub per_connection_buffer_limit_bytes: u32,
    /// `load_assignment.cluster_name` (required by Envoy; usually equals `name`).
    pub load_assignment_cluster_name: String,
    /// `transport_socket`: TLS to the upstream hosts.
    pub tls: Option<UpstreamTls>,
    /// `health_checks` (Envoy takes at most one): active health checking of every host.
    pub health_check: Option<HealthCheck>,
    /// `common_lb_config.healthy_panic_threshold`, rounded to a whole percent (Envoy's
    /// default 50): below it the load balancer uses every host, healthy or not.
    pub healthy_panic_threshold: u32,
}

/// A cluster's active health check (`envoy.config.core.v3.HealthCheck`), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub initial_jitter: Duration,
    pub interval_jitter: Duration,
    pub interval_jitter_percent: u32,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// Default true: one connection per host kept between checks.
    pub reuse_connection: bool,
    /// Default 60 s: the interval while the cluster has had no upstream connection.
    pub no_traffic_interval: Duration,
    /// Default `no_traffic_interval`: the same, for a host that passes.
    pub no_traffic_healthy_interval: Duration,
    /// Default `interval`.
    pub unhealthy_interval: Duration,
    /// Default `unhealthy_interval`.
    pub unhealthy_edge_interval: Duration,
    /// Default `interval`.
    pub healthy_edge_interval: Duration,
    pub kind: HealthCheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// `http_health_check`: `METHOD path` with `Host: host` over HTTP/1.1.
    Http {
        /// Default `GET`.
        method: String,
        /// Empty: the cluster's name (Envoy's default).
        host: String,
        path: String,
        /// Half-open `[start, end)` ranges; `[200, 201)` when none is configured.
        expected_statuses: Vec<(u16, u16)>,
        /// Statuses that fail the check but count towards `unhealthy_threshold` instead of
        /// ejecting at once (`expected_statuses` wins an overlap).
        retriable_statuses: Vec<(u16, u16)>,
        /// `request_headers_to_add` / `_remove`, as a route's (the response lists stay empty).
        headers: HeaderMutations,
    },
    /// `tcp_health_check`: connect, send `send`, find each `receive` block in order.
    Tcp {
        send: Vec<u8>,
        receive: Vec<Vec<u8>>,
    },
}

// TLS (`config/tls.rs` reads these from Envoy's TLS contexts).

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// `tls_params`: versions and the TLS 1.2 cipher suites (OpenSSL names, as Envoy takes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    pub min: TlsVersion,
    pub max: TlsVersion,
    /// Empty: every suite rustls offers.
    pub cipher_suites: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    Dns,
    Email,
    Uri,
    IpAddress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatch,
}

/// A peer's certificate must chain to `trusted_ca` and (when any are given) carry a SAN
/// that one of `san_matchers` accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub trusted_ca_pem: Vec<u8>,
    pub san_matchers: Vec<SanMatcher>,
}

/// A certificate chain and its private key, as PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Where the key was read from, if a file: /config_dump shows this, never the key.
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTls {
    pub cert: CertKey,
    pub params: TlsParams,
    /// `http/1.1` or nothing (no ALPN).
    pub alpn_http11: bool,
    pub require_client_certificate: bool,
    pub validation: Option<Validation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    /// The server name sent; `None` sends none.
    pub sni: Option<String>,
    pub cert: Option<CertKey>,
    pub params: TlsParams,
    pub alpn_http11: bool,
    /// `None`: the server's certificate is not verified (Envoy's behaviour without a CA).
    pub validation: Option<Validation>,
    /// TLS session tickets/ids remembered (Envoy's `max_session_keys`, default 1).
    pub max_session_keys: usize,
}

/// One of a listener's filter chains as far as choosing it and its transport go.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChainTls {
    /// Exact names and `*.suffix` wildcards; empty matches any name.
    pub server_names: Vec<String>,
    /// `tls`, `raw_buffer`, or `None` (any).
    pub transport_protocol: Option<String>,
    /// `None`: plain TCP.
    pub tls: Option<DownstreamTls>,
    pub handshake_timeout: Duration,
}
