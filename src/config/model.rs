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
    /// `stats_sinks`: where the stats are sent every `stats_flush_interval`.
    pub stats_sinks: Vec<StatsdSink>,
    /// `stats_flush_interval` (default 5 s).
    pub stats_flush_interval: Duration,
    /// `stats_config.stats_matcher`: which stats are shown and sent.
    pub stats_matcher: StatsMatcher,
    /// `dynamic_resources` files (LDS, CDS) whose resources are in `listeners` and
    /// `clusters`: a new version moved into place is applied by a reload (hot restart).
    pub watched: Vec<super::xds::WatchedFile>,
    /// The overload manager's polled monitor and the actions it drives.
    pub overload: Overload,
}

/// The overload manager's fixed-heap monitor and its actions (Envoy's `OverloadManager`):
/// every `refresh` the heap's pressure (bytes in use over `max_heap`) sets each action's
/// state from its triggers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Overload {
    /// `refresh_interval` (Envoy's default 1 s).
    pub refresh: Duration,
    /// `envoy.resource_monitors.fixed_heap`'s `max_heap_size_bytes`; `None`: no polled
    /// monitor (then no action can be configured either).
    pub max_heap: Option<u64>,
    /// The monitor's name as configured (`overload.<name>.pressure`).
    pub monitor_name: String,
    pub actions: Vec<OverloadAction>,
}

/// One overload action: its state is the largest of its triggers' (0 to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct OverloadAction {
    /// As configured (`overload.<name>.active`, `.scale_percent`).
    pub name: String,
    pub kind: OverloadKind,
    pub triggers: Vec<OverloadTrigger>,
}

/// The actions baton takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadKind {
    /// New requests are answered 503 `envoy overloaded` (with the state as probability).
    StopAcceptingRequests,
    /// Responses close their connection (with the state as probability).
    DisableHttpKeepalive,
    /// Listeners stop accepting connections while saturated.
    StopAcceptingConnections,
    /// Accepted connections are closed at once (with the state as probability).
    RejectIncomingConnections,
    /// Free memory is given back to the system (every 10 s while saturated).
    ShrinkHeap,
}

/// A trigger on the fixed-heap monitor's pressure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverloadTrigger {
    /// Saturated (1) at or above `value`, else 0.
    Threshold(f64),
    /// 0 below `scaling`, 1 at or above `saturation`, linear between.
    Scaled { scaling: f64, saturation: f64 },
}

/// `StatsMatcher`: the stats (by full name) that exist for the admin's read-outs and the
/// sinks; the others are left out of both.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StatsMatcher {
    /// No matcher, or `reject_all: false`.
    #[default]
    All,
    /// `reject_all: true`.
    Nothing,
    /// `exclusion_list`: every stat except those any pattern matches.
    Except(Vec<StringMatch>),
    /// `inclusion_list`: only the stats some pattern matches.
    Only(Vec<StringMatch>),
}

/// One `envoy.stat_sinks.statsd` sink (statsd lines over UDP) or `envoy.stat_sinks.dog_statsd`
/// sink (DogStatsD lines, tagged, over UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdSink {
    pub address: SocketAddr,
    /// Put before every stat name with a dot (`envoy` when not configured, as in Envoy).
    pub prefix: String,
    /// DogStatsD: each line has the tag-extracted name and `|#tag:value` (Envoy's default
    /// tags); plain statsd sends the full name, untagged.
    pub tagged: bool,
    /// DogStatsD's `max_bytes_per_datagram`: lines are packed, newline-separated, into
    /// datagrams of up to this many bytes; 0 (unset): one line per datagram, as in Envoy.
    pub max_bytes_per_datagram: u64,
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
    /// `admin.access_log[]`: loggers of admin requests, as a connection manager's.
    pub access_log: Vec<AccessLog>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// The chains' last network filters (the HTTP connection manager or the TCP proxy), each
    /// different one once, in the order of the first chain that has it: never empty. A chain
    /// names its own by `FilterChainTls::terminal`.
    pub terminals: Vec<Terminal>,
    /// Listener-level read/write buffer bound per connection; default 1 MiB.
    pub per_connection_buffer_limit_bytes: u32,
    /// The `envoy.filters.network.connection_limit` filter in front of the terminal filter.
    pub connection_limit: Option<ConnectionLimit>,
    /// The runtime's `envoy.resource_limits.listener.<name>.connection_limit`: past that many
    /// open connections a new one is closed at once (`listener.<address>.downstream_cx_overflow`).
    pub runtime_connection_limit: Option<u64>,
    /// Every filter chain's match, transport (plain or TLS) and terminal filter, in config
    /// order; `default_filter_chain`, if any, last (`FilterChainTls::fallback`).
    pub filter_chains: Vec<FilterChainTls>,
    /// How long a connection may take to send its ClientHello (`listener_filters_timeout`).
    pub inspect_timeout: Duration,
    /// Options of the listening socket itself.
    pub socket: ListenerSocket,
    /// `traffic_direction`: `OUTBOUND` makes the connection manager's spans egress (client)
    /// spans; anything else ingress (server) spans.
    pub traffic_direction: TrafficDirection,
    /// The `envoy.filters.listener.proxy_protocol` listener filter: each connection starts
    /// with a PROXY protocol header naming the client.
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// Envoy's PROXY protocol listener filter (`…listener.proxy_protocol.v3.ProxyProtocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Not named by `disallowed_versions`.
    pub accept_v1: bool,
    pub accept_v2: bool,
    /// `allow_requests_without_proxy_protocol`: a connection that does not start like a
    /// header is served as it is.
    pub allow_without: bool,
    /// `stat_prefix`: the stats are `proxy_proto.[<stat_prefix>.]…`.
    pub stat_prefix: String,
}

/// How a listener's socket is made: Envoy's `enable_reuse_port`, `tcp_fast_open_queue_length`
/// and `socket_options`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerSocket {
    /// SO_REUSEPORT (baton's default: off; see docs/config.md).
    pub reuse_port: bool,
    /// TCP_FASTOPEN's queue length; `None`: the system's default (off).
    pub fast_open_queue: Option<u32>,
    pub options: Vec<SocketOpt>,
}

/// One `socket_options` entry: an integer `setsockopt` at a stage of the socket's setup.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketOpt {
    pub description: String,
    pub level: i32,
    pub name: i32,
    pub value: i32,
    pub state: SocketState,
}

/// When a socket option is set (`SocketOption.SocketState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// Before bind (the default).
    Prebind,
    /// After bind, before listen.
    Bound,
    /// Once listening; also set again on a socket taken over from a hot-restart parent.
    Listening,
}

/// A listener's `traffic_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficDirection {
    Unspecified,
    Inbound,
    Outbound,
}

/// What a listener does with its connections: HTTP requests routed by a connection manager,
/// or a byte stream forwarded to a cluster (`envoy.filters.network.tcp_proxy`).
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    Http(Box<HttpConnectionManager>),
    Tcp(TcpProxy),
}

impl Listener {
    /// The first chain's HTTP connection manager (the only one of most listeners).
    pub fn hcm(&self) -> Option<&HttpConnectionManager> {
        self.terminals.first()?.hcm()
    }

    /// The first chain's TCP proxy (the only one of most listeners).
    pub fn tcp(&self) -> Option<&TcpProxy> {
        self.terminals.first()?.tcp()
    }

    /// The first chain's terminal filter's access loggers.
    pub fn access_log(&self) -> &[AccessLog] {
        self.terminals.first().map_or(&[], Terminal::access_log)
    }
}

impl Terminal {
    pub fn hcm(&self) -> Option<&HttpConnectionManager> {
        match self {
            Terminal::Http(h) => Some(h),
            Terminal::Tcp(_) => None,
        }
    }

    pub fn tcp(&self) -> Option<&TcpProxy> {
        match self {
            Terminal::Tcp(t) => Some(t),
            Terminal::Http(_) => None,
        }
    }

    pub fn access_log(&self) -> &[AccessLog] {
        match self {
            Terminal::Http(h) => &h.access_log,
            Terminal::Tcp(t) => &t.access_log,
        }
    }
}

/// Envoy's TCP proxy network filter (`envoy.filters.network.tcp_proxy`): each connection is
/// forwarded, bytes as they are, to a host of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    /// Prefix of `tcp.<stat_prefix>.*` stats.
    pub stat_prefix: String,
    /// `cluster`, or `weighted_clusters` (every weight ≥ 1).
    pub cluster: ClusterSpec,
    /// No bytes either way for this long closes both connections; default 1 h, `None`
    /// when configured 0s.
    pub idle_timeout: Option<Duration>,
    /// Connects tried (each to the host the load balancer gives) before giving up; ≥ 1.
    pub max_connect_attempts: u32,
    /// A connection open this long is closed; `None`: no limit.
    pub max_downstream_connection_duration: Option<Duration>,
    /// One line per connection, when it ends.
    pub access_log: Vec<AccessLog>,
    /// `tunneling_config.hostname`: the upstream is an HTTP/1.1 proxy; each connection first
    /// sends it `CONNECT <hostname>` and becomes a tunnel on its 2xx answer. `None`: plain TCP.
    pub tunnel_hostname: Option<String>,
}

/// Envoy's connection limit network filter: past `max_connections` open connections on the
/// listener, new ones are closed at once (`connection_limit.<stat_prefix>.limited_connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    pub stat_prefix: String,
    pub max_connections: u64,
}

/// HCM `codec_type`; HTTP3 is rejected at load, so only these reach the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecType {
    /// Default: HTTP/1.x, or HTTP/2 when the connection starts with the HTTP/2 preface (h2c
    /// with prior knowledge, or TLS that negotiated `h2` by ALPN), as Envoy's AUTO.
    Auto,
    /// HTTP/1.x only: an HTTP/2 preface is a malformed HTTP/1 request (400), as in Envoy.
    Http1,
    /// HTTP/2 only: a connection not starting with the preface is a connection error.
    Http2,
}

/// `http2_protocol_options` (the connection manager's, for its HTTP/2 clients): what baton
/// advertises and how it treats malformed requests. One stream at a time: the
/// SETTINGS_MAX_CONCURRENT_STREAMS we advertise is always 1 (within any configured
/// `max_concurrent_streams`, which is at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Options {
    /// `hpack_table_size`: SETTINGS_HEADER_TABLE_SIZE (the decoder's table); default 4096.
    pub hpack_table_size: u32,
    /// `initial_stream_window_size`: SETTINGS_INITIAL_WINDOW_SIZE; default 65535 here
    /// (Envoy's 256 MiB default would only matter for concurrent streams; with one, reading
    /// stops at a bounded buffer anyway).
    pub initial_stream_window_size: u32,
    /// `initial_connection_window_size`: the connection window opened at the start.
    pub initial_connection_window_size: u32,
    /// `stream_error_on_invalid_http_messaging` (or its override): a malformed request resets
    /// only its stream; default false: the connection ends with GOAWAY(PROTOCOL_ERROR).
    pub stream_error_on_invalid_http_messaging: bool,
}

impl Default for Http2Options {
    fn default() -> Http2Options {
        Http2Options {
            hpack_table_size: 4096,
            initial_stream_window_size: 65_535,
            initial_connection_window_size: 65_535,
            stream_error_on_invalid_http_messaging: false,
        }
    }
}

/// What the connection manager does with `%2F` / `%5C` in a path (Envoy's
/// `path_with_escaped_slashes_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Default (also `IMPLEMENTATION_SPECIFIC_DEFAULT`): forwarded as sent.
    KeepUnchanged,
    /// 400.
    RejectRequest,
    /// 307 to the unescaped (and normalised) path.
    UnescapeAndRedirect,
    /// Unescaped, then routed and forwarded.
    UnescapeAndForward,
}

/// Which port the connection manager removes from a request's Host before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripPort {
    /// Default: none.
    Keep,
    /// The port the connection arrived on (`strip_matching_host_port`).
    Matching,
    /// Any port (`strip_any_host_port`).
    Any,
}

/// What to do with a request header whose name has an underscore (Envoy's
/// `headers_with_underscores_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underscores {
    /// Default: forward it.
    Allow,
    /// 400 and close.
    RejectRequest,
    /// Remove it before routing.
    DropHeader,
}

/// What reaches the upstream of a client's `x-forwarded-client-cert` (Envoy's
/// `forward_client_cert_details`). Dropping it by default keeps a client from claiming a
/// certificate it never presented to an upstream that trusts the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardClientCert {
    /// Default: never forwarded.
    Sanitize,
    /// Forwarded when the client presented a certificate over TLS; dropped otherwise.
    ForwardOnly,
    /// Always forwarded as the client sent it.
    AlwaysForwardOnly,
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
    /// Time to receive the whole request, head and body; default disabled (`None`).
    pub request_timeout: Option<Duration>,
    /// Default 5 min; `None` when configured 0s.
    pub stream_idle_timeout: Option<Duration>,
    /// Default 60 KiB (Envoy's default), max 8192.
    pub max_request_headers_kb: u32,
    /// Default "envoy" in Envoy; ours is "baton".
    pub server_name: String,
    pub server_header_transformation: ServerHeader,
    pub codec_type: CodecType,
    /// `http2_protocol_options`, for clients that speak HTTP/2 (`codec_type` AUTO or HTTP2).
    pub http2: Http2Options,
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
    /// `common_http_protocol_options.max_connection_duration`: a connection this old closes
    /// once idle, and its next response says `Connection: close`; default none.
    pub max_connection_duration: Option<Duration>,
    /// `common_http_protocol_options.max_headers_count`: more request headers is 431;
    /// default 100 (also baton's most).
    pub max_headers_count: u32,
    /// `common_http_protocol_options.max_requests_per_connection`: the last request's response
    /// says `Connection: close`; default none.
    pub max_requests_per_connection: Option<u32>,
    /// `common_http_protocol_options.headers_with_underscores_action`.
    pub headers_with_underscores: Underscores,
    /// `strip_matching_host_port` / `strip_any_host_port`: the port removed from the Host
    /// before routing.
    pub strip_host_port: StripPort,
    /// `strip_trailing_host_dot`: `example.com.` is routed (and sent) as `example.com`.
    pub strip_trailing_host_dot: bool,
    /// `path_with_escaped_slashes_action`.
    pub escaped_slashes: EscapedSlashes,
    /// Do not append the peer to `x-forwarded-for` at the edge; default false.
    pub skip_xff_append: bool,
    pub forward_client_cert_details: ForwardClientCert,
    /// Default 1 s (Envoy's); `None` when configured 0s: the socket is closed as soon as the
    /// last response is written.
    pub delayed_close_timeout: Option<Duration>,
    /// `add_user_agent`: requests name this proxy's service cluster and node to the upstream
    /// (`x-envoy-downstream-service-cluster`/`-node`, and `user-agent` when the client sent
    /// none); default false.
    pub add_user_agent: bool,
    /// `proxy_100_continue`: a client's `Expect: 100-continue` goes upstream and the
    /// upstream's `100 Continue` comes back, instead of baton answering it; default false.
    pub proxy_100_continue: bool,
    /// Keep an external client's `x-request-id` at the edge; default false (replaced).
    pub preserve_external_request_id: bool,
    /// Appended to the `via` header of requests and responses; `None` (or empty): no `via`.
    pub via: Option<String>,
    /// `scheme_header_transformation.scheme_to_overwrite`: every request's scheme, whatever
    /// the connection and the client's `x-forwarded-proto` say (`Some(true)`: `https`). As in
    /// Envoy it replaces `x-forwarded-proto` and is the `:scheme` that routes, redirects and
    /// logs see; default `None` (the connection's scheme).
    pub scheme_to_overwrite: Option<bool>,
    /// The HTTP filters before the router, in config order (each runs on the request in that
    /// order; one that answers stops the chain).
    pub http_filters: Vec<HttpFilter>,
    /// `local_reply_config`: how replies baton makes itself are rewritten; `None` when absent
    /// (replies go out as made, `text/plain`).
    pub local_reply: Option<LocalReplyConfig>,
    /// `tracing` with its provider; `None`: no tracing (nothing is done per request).
    pub tracing: Option<Box<Tracing>>,
}

/// The connection manager's `tracing` with its provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// The listener's `traffic_direction` is `OUTBOUND`: client spans named by the egress
    /// rules (Envoy's operation name `egress`); otherwise server spans (`ingress`).
    pub egress: bool,
    /// `client_sampling`, `random_sampling`, `overall_sampling` in ten-thousandths
    /// (Envoy rounds the percentage so); default 10000 each.
    pub client_sampling: u32,
    pub random_sampling: u32,
    pub overall_sampling: u32,
    /// `max_path_tag_length`: the `http.url` tag's path is cut there; default 256.
    pub max_path_tag_length: usize,
    pub custom_tags: Vec<CustomTag>,
    pub provider: Provider,
}

/// A tracing provider: who gets the spans, in which format, with which propagation headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Provider {
    Zipkin(Zipkin),
    Datadog(Datadog),
}

impl Provider {
    /// Index of the collector cluster in the bootstrap's clusters.
    pub fn cluster(&self) -> usize {
        match self {
            Provider::Zipkin(z) => z.cluster,
            Provider::Datadog(d) => d.cluster,
        }
    }

    pub fn cluster_name(&self) -> &str {
        match self {
            Provider::Zipkin(z) => &z.cluster_name,
            Provider::Datadog(d) => &d.cluster_name,
        }
    }
}

/// `envoy.config.trace.v3.DatadogConfig` (no `remote_config`): spans go to the agent's
/// `/v0.4/traces` as msgpack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Datadog {
    /// Index of `collector_cluster` in the bootstrap's clusters, and its name.
    pub cluster: usize,
    pub cluster_name: String,
    /// `service_name`: every span's `service`.
    pub service: String,
    /// `collector_hostname`, else the cluster's name: the reports' Host.
    pub hostname: String,
}

/// `envoy.config.trace.v3.ZipkinConfig` (HTTP_JSON only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Zipkin {
    /// Index of `collector_cluster` in the bootstrap's clusters, and its name.
    pub cluster: usize,
    pub cluster_name: String,
    pub endpoint: String,
    /// `collector_hostname`, else the cluster's name: the reports' Host.
    pub hostname: String,
    pub trace_id_128bit: bool,
    /// Default true: an ingress span continuing a client's context shares its span id.
    pub shared_span_context: bool,
}

/// A `custom_tags` entry: the tag's name and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTag {
    pub tag: String,
    pub value: CustomTagValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomTagValue {
    /// `literal`, and `environment` (read once at load, as Envoy does).
    Literal(String),
    /// `request_header`: the header's first value, else the default (no tag when empty).
    Header { name: String, default: String },
}

/// A route's `decorator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decorator {
    pub operation: String,
    /// Default true: the operation goes on as `x-envoy-decorator-operation`.
    pub propagate: bool,
}

/// One HTTP filter before the router.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFilter {
    /// The filter's `name`: a virtual host's or route's `typed_per_filter_config` names it.
    pub name: String,
    /// `disabled`: the filter runs only where a per-route config enables it.
    pub disabled: bool,
    pub kind: HttpFilterKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilterKind {
    HealthCheck(HealthCheckFilter),
    /// `envoy.filters.http.cors`: its policies come from the route and virtual host.
    Cors,
    /// `envoy.filters.http.csrf` with its own policy (a per-route policy replaces it).
    Csrf(CsrfPolicy),
    /// `envoy.filters.http.local_ratelimit` with its own config (a per-route one replaces it).
    LocalRateLimit(LocalRateLimit),
    /// `envoy.filters.http.rbac` with its own config (a per-route `RBACPerRoute` replaces it).
    Rbac(Rbac),
    /// `envoy.filters.http.fault` with its own config (a per-route `HTTPFault` replaces it).
    Fault(Fault),
    /// `envoy.filters.http.compressor` with the gzip library (responses).
    Compressor(Compressor),
    /// `envoy.filters.http.decompressor` with the gzip library (requests).
    Decompressor(Decompressor),
    /// `envoy.filters.http.ext_authz` with an HTTP or gRPC authorization service (boxed:
    /// large).
    ExtAuthz(Box<ExtAuthz>),
}

/// `envoy.filters.http.compressor`: response compression with gzip.
#[derive(Debug, Clone, PartialEq)]
pub struct Compressor {
    /// `compressor_library.name`: part of the counters' names.
    pub library: String,
    pub gzip: GzipParams,
    /// The response direction's `enabled` (a `RuntimeFeatureFlag`'s `default_value`; no
    /// runtime layer can set its key, see `config::runtime`).
    pub enabled: bool,
    /// `min_content_length` (default 30): a response with a shorter `Content-Length` is
    /// sent as it is.
    pub min_content_length: u64,
    /// `content_type`, lower-cased; Envoy's default list when none is given.
    pub content_types: Vec<String>,
    pub disable_on_etag_header: bool,
    pub remove_accept_encoding_header: bool,
    pub choose_first: bool,
    /// `response_direction_config` is set: Envoy then counts the direction's counters under
    /// `…gzip.response.` (the deprecated top-level fields count under `…gzip.`).
    pub response_scope: bool,
}

/// `envoy.extensions.compression.gzip.compressor.v3.Gzip`, as zlib takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipParams {
    /// zlib's level: -1 (its default, 6) or 1..=9.
    pub level: i32,
    /// zlib's strategy number: 0 default, 1 filtered, 2 Huffman only, 3 RLE, 4 fixed.
    pub strategy: u8,
    /// 9..=15 (default 12).
    pub window_bits: u8,
    /// zlib's `memLevel`, 1..=9 (default 5).
    pub memory_level: u8,
    /// Most bytes of compressed output produced at a time (default 4096).
    pub chunk_size: u32,
}

/// `envoy.filters.http.decompressor`: gzip request bodies inflated on their way upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Decompressor {
    /// `decompressor_library.name`: part of the counters' names.
    pub library: String,
    /// 9..=15 (default 15).
    pub window_bits: u8,
    /// Most inflated bytes produced at a time (default 4096).
    pub chunk_size: u32,
    /// Inflated bytes may be at most this many times the compressed ones (default 100).
    pub max_inflate_ratio: u32,
    /// The request direction's `enabled`.
    pub request_enabled: bool,
    /// `request_direction_config.common_config.ignore_no_transform_header`.
    pub ignore_no_transform: bool,
}

/// A `typed_per_filter_config` entry of a virtual host or route.
#[derive(Debug, Clone, PartialEq)]
pub struct PerFilterConfig {
    /// The key: the `name` of the filter it configures.
    pub name: String,
    /// `FilterConfig.disabled`: the filter does not run here.
    pub disabled: bool,
    /// `None`: a `FilterConfig` without a `config` (it only enables or disables the filter).
    pub policy: Option<FilterPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterPolicy {
    Cors(CorsPolicy),
    Csrf(CsrfPolicy),
    LocalRateLimit(LocalRateLimit),
    /// An `RBACPerRoute`: its `rbac` (an empty one lets every request through).
    Rbac(Rbac),
    Fault(Fault),
    /// An `ExtAuthzPerRoute`: `disabled` (its `check_settings` must be empty: they only mean
    /// something to a gRPC service).
    ExtAuthz {
        disabled: bool,
    },
}

/// Envoy's external authorization filter (`…ext_authz.v3.ExtAuthz`) with an `http_service`
/// or a `grpc_service`: each request is paused while a check goes to the authorization
/// service; an allowed one goes on, a denied one is answered, a failure is `status_on_error`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtAuthz {
    /// `http_service.server_uri.uri`: required, and not used (as in Envoy, the request goes to
    /// `cluster` with the original path).
    pub uri: String,
    /// `http_service.server_uri.cluster` or `grpc_service.envoy_grpc.cluster_name`: found by
    /// name per check (a cluster that is not there is a check error, as in Envoy).
    pub cluster: String,
    /// `http_service.server_uri.timeout` (required), or `grpc_service.timeout` (default
    /// 200 ms, Envoy's ext_authz `DefaultTimeout`).
    pub timeout: std::time::Duration,
    /// `http_service.path_prefix`: put before the request's path in the check request.
    pub path_prefix: String,
    /// `authorization_request.allowed_headers`: request headers the check request carries,
    /// besides Envoy's fixed ones (`Authorization`, method, path, `Host`).
    pub allowed_headers: Vec<StringMatch>,
    /// `authorization_request.headers_to_add`: set on the check request.
    pub headers_to_add: Vec<(String, String)>,
    /// `authorization_response.allowed_upstream_headers`: set on the upstream request from a
    /// 200 answer.
    pub upstream_headers: Vec<StringMatch>,
    /// `authorization_response.allowed_upstream_headers_to_append`: appended likewise.
    pub upstream_headers_to_append: Vec<StringMatch>,
    /// `authorization_response.allowed_client_headers`: headers of a denial that go to the
    /// client; empty: all but `Host`.
    pub client_headers: Vec<StringMatch>,
    /// `authorization_response.allowed_client_headers_on_success`: headers of a 200 answer
    /// set on the client's response.
    pub client_headers_on_success: Vec<StringMatch>,
    /// `failure_mode_allow`: a failed check lets the request on.
    pub failure_mode_allow: bool,
    /// `failure_mode_allow_header_add`: such a request carries
    /// `x-envoy-auth-failure-mode-allowed: true`.
    pub failure_mode_allow_header_add: bool,
    /// `status_on_error.code` (default 403): the answer to a failed check.
    pub status_on_error: u16,
    /// `stat_prefix`: counters are `http.<hcm prefix>.ext_authz.<stat_prefix>.*` when set.
    pub stat_prefix: String,
    /// `filter_enabled` (default: always): the share of requests checked.
    pub filter_enabled: Option<Fraction>,
    /// `deny_at_disable.default_value`: a request `filter_enabled` leaves out is answered
    /// `status_on_error` instead of going on.
    pub deny_at_disable: bool,
    /// `grpc_service`: checks are `Authorization/Check` calls over h2c to `cluster`
    /// (`grpc_service.envoy_grpc.cluster_name`, with `timeout` from `grpc_service.timeout`);
    /// the HTTP service's fields are then empty. `None`: an `http_service`.
    pub grpc: Option<GrpcService>,
}

/// An ext_authz `grpc_service.envoy_grpc`'s call settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcService {
    /// `envoy_grpc.authority`: the calls' `:authority`; empty: the cluster's name (Envoy's
    /// default).
    pub authority: String,
    /// `initial_metadata`: headers every call carries (names lower-cased).
    pub initial_metadata: Vec<(String, String)>,
}

/// Envoy's fault injection filter (`…fault.v3.HTTPFault`), aborts only.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `None`: nothing is aborted.
    pub abort: Option<FaultAbort>,
    /// `None`: nothing is delayed.
    pub delay: Option<FaultDelay>,
    /// `headers`: a fault applies only to requests matching them all.
    pub headers: Vec<HeaderMatcher>,
    /// `downstream_nodes`: when set, only requests whose `x-envoy-downstream-service-node`
    /// is one of them.
    pub downstream_nodes: Vec<String>,
    /// `max_active_faults`: `None` is no limit.
    pub max_active_faults: Option<u32>,
    /// Not `disable_downstream_cluster_stats`: an abort is also counted under the request's
    /// `x-envoy-downstream-service-cluster`.
    pub downstream_cluster_stats: bool,
}

/// A fault's `delay`: the request is held back this long before the filters after it (and
/// the router) see it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// `header_delay`: the duration is the request's `x-envoy-fault-delay-request` (ms); a
    /// request without one (or with one that is not a number) is not delayed.
    pub from_header: bool,
    /// `fixed_delay`, or the runtime's `fault.http.delay.fixed_duration_ms`, which Envoy lets
    /// replace a header's duration too. `None` only with `from_header`.
    pub duration: Option<std::time::Duration>,
    /// `percentage` (default 0): with `header_delay`, a request's
    /// `x-envoy-fault-delay-request-percentage` may lower its numerator.
    pub percentage: Fraction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// `http_status`; `None` (`header_abort`): the status comes from the request's
    /// `x-envoy-fault-abort-request`.
    pub status: Option<u16>,
    /// `percentage` (default 0): with `header_abort`, a request's
    /// `x-envoy-fault-abort-request-percentage` may lower its numerator.
    pub percentage: Fraction,
}

/// Envoy's RBAC filter config (`…rbac.v3.RBAC`): the enforced engine and the shadow engine,
/// each absent, a policy set or a matcher tree.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rbac {
    /// `rules` or `matcher`: `None` lets every request through, uncounted.
    pub rules: Option<RbacEngine>,
    /// `shadow_rules` or `shadow_matcher`: evaluated and counted, never enforced.
    pub shadow_rules: Option<RbacEngine>,
    /// Stats are `http.<stat_prefix>.rbac.<rules_stat_prefix>allowed` (and `denied`).
    pub rules_stat_prefix: String,
    /// ... and `….rbac.<shadow_rules_stat_prefix>shadow_allowed` (not after the rules prefix).
    pub shadow_rules_stat_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RbacEngine {
    /// `envoy.config.rbac.v3.RBAC`: its policies sorted by name (Envoy keeps them in an
    /// ordered map, so the first match by name is the one reported).
    Policies {
        action: RbacAction,
        policies: Vec<(String, RbacPolicy)>,
    },
    /// The unified matcher API, whose actions are `envoy.config.rbac.v3.Action`s.
    Matcher(RbacMatcher),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacAction {
    Allow,
    Deny,
    /// Every request is allowed (Envoy only marks matches for its access logs).
    Log,
}

/// A policy matches when one of its permissions and one of its principals match.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacPolicy {
    pub permissions: Vec<RbacRule>,
    pub principals: Vec<RbacRule>,
}

/// A permission or principal rule.
#[derive(Debug, Clone, PartialEq)]
pub enum RbacRule {
    Any,
    Header(HeaderMatcher),
    /// The path without its query string.
    UrlPath(StringMatch),
    /// The connection's local address.
    DestinationIp(std::net::IpAddr, u8),
    /// The connection's local port, in `start..end`.
    DestinationPort(u32, u32),
    /// The client's TLS SNI (empty without one).
    ServerName(StringMatch),
    /// The connection's socket peer (`direct_remote_ip`: no PROXY protocol header, no XFF).
    DirectRemoteIp(std::net::IpAddr, u8),
    /// The connection's remote address (`source_ip`: a PROXY protocol header's client, not
    /// XFF's).
    SourceIp(std::net::IpAddr, u8),
    /// The client address after the connection manager's XFF rules.
    RemoteIp(std::net::IpAddr, u8),
    /// A TLS connection whose peer certificate's URI SANs, DNS SANs, or subject match (any
    /// TLS connection with no matcher).
    Authenticated(Option<StringMatch>),
    And(Vec<RbacRule>),
    Or(Vec<RbacRule>),
    Not(Box<RbacRule>),
}

/// An `xds.type.matcher.v3.Matcher` with RBAC actions: the first entry of the list whose
/// predicate matches decides, else `on_no_match`.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacMatcher {
    pub list: Vec<(RbacPredicate, RbacOnMatch)>,
    pub on_no_match: Option<Box<RbacOnMatch>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RbacOnMatch {
    /// The action's `name` (reported as the matched policy) and what it does.
    Action(String, RbacAction),
    Matcher(Box<RbacMatcher>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RbacPredicate {
    /// An input's value against a string matcher; an input without a value does not match.
    Single(RbacInput, StringMatch),
    Or(Vec<RbacPredicate>),
    And(Vec<RbacPredicate>),
    Not(Box<RbacPredicate>),
}

/// The matching inputs baton reads (as text, as Envoy gives them to a string matcher).
#[derive(Debug, Clone, PartialEq)]
pub enum RbacInput {
    /// A request header (lower case), several values joined with `,`.
    Header(String),
    SourceIp,
    SourcePort,
    DirectSourceIp,
    DestinationIp,
    DestinationPort,
    ServerName,
}

/// Envoy's local rate limit (`…local_ratelimit.v3.LocalRateLimit`): a token bucket per config
/// (the filter's, and each virtual host's or route's), shared by the requests it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRateLimit {
    /// Stats are `<stat_prefix>.http_local_rate_limit.*`.
    pub stat_prefix: String,
    /// The status of a refused request: 429 unless `status.code` names one of at least 400.
    pub status: u16,
    /// `None`: nothing is limited (allowed for the filter's own config only).
    pub token_bucket: Option<TokenBucket>,
    /// `None`: the filter does not run (Envoy's default).
    pub filter_enabled: Option<Fraction>,
    /// `None`: a request over the limit is only counted.
    pub filter_enforced: Option<Fraction>,
    /// Added to a request over the limit that is let through (not enforced).
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    /// Added to the answer of a refused request.
    pub response_headers_to_add: Vec<HeaderValueOption>,
}

/// `envoy.type.v3.TokenBucket`: starts full; `tokens_per_fill` come back every
/// `fill_interval`, up to `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub max_tokens: u32,
    pub tokens_per_fill: u32,
    pub fill_interval: Duration,
}

/// Envoy's `RuntimeFractionalPercent`: `default_value` as numerator and denominator (100,
/// 10000 or 1000000). baton's runtime cannot set the key, so the default always applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

/// A CORS policy (`envoy.extensions.filters.http.cors.v3.CorsPolicy`); each field not set here
/// is taken from the less specific policy (a route's from its virtual host's).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorsPolicy {
    pub allow_origin: Vec<StringMatch>,
    /// Header values, empty when not set.
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    pub forward_not_matching_preflights: Option<bool>,
    /// `filter_enabled`; `None` is 100 %.
    pub filter_enabled: Option<Fraction>,
    /// `shadow_enabled`; `None` is 0 %.
    pub shadow_enabled: Option<Fraction>,
}

/// A CSRF policy (`envoy.extensions.filters.http.csrf.v3.CsrfPolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct CsrfPolicy {
    /// `filter_enabled` (required).
    pub filter_enabled: Fraction,
    /// `shadow_enabled`; `None` is 0 %.
    pub shadow_enabled: Option<Fraction>,
    /// Origins accepted besides the request's own host.
    pub additional_origins: Vec<StringMatch>,
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

/// The connection manager's `local_reply_config`: the first mapper whose filter matches a
/// local reply rewrites it, then a body format (the mapper's, else this one) renders its body.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReplyConfig {
    pub mappers: Vec<ResponseMapper>,
    /// `body_format`; `None` keeps the body as it is (Envoy's `%LOCAL_REPLY_BODY%`, text/plain).
    pub body_format: Option<BodyFormat>,
}

/// One `local_reply_config.mappers[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMapper {
    pub filter: LogFilter,
    /// The status the reply is given instead (200..=599).
    pub status_code: Option<u16>,
    /// The body the reply is given instead (before formatting: `%LOCAL_REPLY_BODY%`).
    pub body: Option<String>,
    pub body_format_override: Option<BodyFormat>,
    pub headers_to_add: Vec<HeaderValueOption>,
}

/// A `SubstitutionFormatString` for a local reply's body.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyFormat {
    pub kind: BodyFormatKind,
    /// `omit_empty_values`: an operator with no value is left out instead of written `-`.
    pub omit_empty_values: bool,
    /// The reply's content type: `content_type`, else `application/json` for JSON formats and
    /// `text/plain` for text ones.
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyFormatKind {
    /// `text_format` (or `text_format_source` read at load), operators unexpanded.
    Text(String),
    /// `json_format`, as configured.
    Json(JsonFormat),
}

/// A `json_format` struct as configured: string values may hold command operators.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonFormat {
    Null,
    Bool(bool),
    /// The number as JSON text.
    Number(String),
    String(String),
    List(Vec<JsonFormat>),
    /// Fields in configured order (the writer sorts them, as Envoy does).
    Object(Vec<(String, JsonFormat)>),
}

/// An access-log filter (`AccessLogFilter`), as far as baton implements them.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFilter {
    /// `status_code_filter`: the response code compared with a value.
    Status(Comparison),
    /// `duration_filter`: milliseconds since the request began compared with a value.
    Duration(Comparison),
    /// `header_filter`: a request header matcher (the route matcher's rules).
    Header(HeaderMatcher),
    /// `response_flag_filter`: any of these flags (Envoy short names); empty: any flag at all.
    ResponseFlags(Vec<String>),
    /// `not_health_check_filter`: requests the health check filter did not take as a check.
    NotHealthCheck,
    /// `traceable_filter`: a request traced because an internal caller forced it
    /// (`x-envoy-force-trace`; Envoy's trace reason `ServiceForced`).
    Traceable,
    /// `runtime_filter`: a sample of `percent_sampled` (the runtime cannot set the key).
    Runtime(RuntimeSample),
    /// `grpc_status_filter`: the gRPC status (`grpc-status`, else one implied by the HTTP
    /// status) is among `statuses` (0..=16), or with `exclude` is not.
    GrpcStatus {
        statuses: Vec<u8>,
        exclude: bool,
    },
    And(Vec<LogFilter>),
    Or(Vec<LogFilter>),
}

/// `RuntimeFilter`: `numerator` out of `denominator` requests pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSample {
    pub runtime_key: String,
    pub numerator: u32,
    /// 100, 10000 or 1000000 (`FractionalPercent.denominator`).
    pub denominator: u32,
    /// `use_independent_randomness`: a fresh random number instead of the request id's.
    pub independent: bool,
}

/// `ComparisonFilter`: `op` against a value fixed at load (`RuntimeUInt32.default_value`:
/// baton's runtime cannot set the key, see docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub op: CompareOp,
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ge,
    Le,
    Ne,
}

impl Comparison {
    pub fn holds(&self, v: u64) -> bool {
        match self.op {
            CompareOp::Eq => v == self.value,
            CompareOp::Ge => v >= self.value,
            CompareOp::Le => v <= self.value,
            CompareOp::Ne => v != self.value,
        }
    }
}

/// One `envoy.access_loggers.file` logger.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub path: String,
    /// The format string exactly as configured (command operators unexpanded); Envoy's default
    /// format (ending in a newline) when none is given. Custom formats get no implicit newline.
    /// Empty when `json` is set.
    pub format: String,
    /// `log_format.json_format`: each line is this JSON object (and a newline) instead.
    pub json: Option<JsonFormat>,
    /// `access_log[].filter`: only requests it matches are logged.
    pub filter: Option<LogFilter>,
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
    /// Envoy's virtual-host `retry_policy`: the policy of every route of this host that has
    /// none of its own (not merged field by field: a route's own policy replaces it whole).
    /// Validation copies it into those routes, so requests never look here.
    pub retry_policy: Option<RetryPolicy>,
    pub require_tls: RequireTls,
    /// `typed_per_filter_config`, by filter name.
    pub filter_configs: Vec<PerFilterConfig>,
    /// The legacy `cors` policy (see `ForwardAction::cors`).
    pub cors: Option<CorsPolicy>,
}

/// A virtual host's `require_tls`: which requests are redirected to `https://` (301) instead
/// of routed. Whether a request used TLS is read from its `x-forwarded-proto` as the connection
/// manager leaves it (so a TLS-terminating hop in front counts), as Envoy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequireTls {
    None,
    /// External requests only (not those marked `x-envoy-internal`).
    ExternalOnly,
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub headers: HeaderMutations,
    /// `typed_per_filter_config`, by filter name (over the virtual host's).
    pub filter_configs: Vec<PerFilterConfig>,
    /// `decorator`: the span's operation when tracing.
    pub decorator: Option<Decorator>,
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
    /// `grpc: {}`: only gRPC requests (content-type `application/grpc` or
    /// `application/grpc+…`, Envoy's `Grpc::Common::isGrpcRequestHeaders`).
    pub grpc: bool,
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

/// Not boxed: forwarding is the common action and is read on every request; the others
/// are rare, so the space they waste in a route table costs less than a pointer chase.
#[allow(clippy::large_enum_variant)]
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
    /// The legacy `cors` policy, used by the CORS filter when no `typed_per_filter_config`
    /// policy applies. Boxed: rare, and large beside the other route actions.
    pub cors: Option<Box<CorsPolicy>>,
    /// `hash_policy[]`: the request's hash for a RING_HASH or MAGLEV cluster.
    pub hash_policy: Vec<HashPolicy>,
    /// `request_mirror_policies[]`: shadow copies of each request (`http/mirror.rs`).
    pub mirrors: Vec<MirrorPolicy>,
    /// `per_request_buffer_limit_bytes` of the route, else of its virtual host: most request
    /// body bytes kept for retries and shadows (never more than the listener's buffer limit).
    pub body_limit: Option<u32>,
    /// The virtual host's `include_request_attempt_count` / `include_attempt_count_in_response`:
    /// `x-envoy-attempt-count` on the upstream request / the response.
    pub attempt_count: AttemptCount,
}

/// Where `x-envoy-attempt-count` is set (a virtual host's choice, kept on its routes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCount {
    pub request: bool,
    pub response: bool,
}

/// A route's `request_mirror_policies[]` entry: a copy of every request it samples goes to
/// another cluster, its answer discarded.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPolicy {
    pub target: MirrorTarget,
    /// `runtime_fraction.default_value`; `None`: every request.
    pub fraction: Option<Fraction>,
    /// `-shadow` is appended to the shadow's Host (unless `disable_shadow_host_suffix_append`).
    pub host_suffix: bool,
}

/// Where a shadow goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorTarget {
    /// `cluster`: a cluster index.
    Cluster(usize),
    /// `cluster_header`: the cluster named by this request header (lower case).
    Header(String),
}

/// One `hash_policy[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    pub key: HashKey,
    /// A key found here ends the hash (the entries after it are not read).
    pub terminal: bool,
}

/// What a hash policy entry hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A request header's value (lower-case name; every value, sorted, when repeated).
    Header(String),
    /// A cookie's value (no hash when the request has no such cookie).
    Cookie(String),
    /// The client's IP address.
    SourceIp,
    /// A query parameter's value (the first one).
    QueryParameter(String),
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
    /// Consistent hashing on a ring (`ring_hash_lb_config`), keyed by the route's
    /// `hash_policy`.
    RingHash,
    /// Consistent hashing with a Maglev table (`maglev_lb_config`).
    Maglev,
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
    /// Index in `Balancing::localities` of the `load_assignment.endpoints[]` entry it is in.
    pub locality: usize,
    /// `endpoint.hostname` (empty when unset): the Host `auto_host_rewrite` sends and the
    /// `hostname` of `/clusters`, as Envoy uses it.
    pub hostname: String,
    /// `endpoint.health_check_config.port_value`: active health checks go to this port.
    pub health_check_port: Option<u16>,
    /// `endpoint.health_check_config.hostname` (empty when unset): the Host of this host's
    /// HTTP health checks, before the check's own `host`.
    pub health_check_hostname: String,
}

/// How a cluster spreads load beyond its `lb_policy`: Envoy's priorities, localities and the
/// policy's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Balancing {
    /// `load_assignment.endpoints[]`, in order (one per `LocalityLbEndpoints`).
    pub localities: Vec<Locality>,
    /// `common_lb_config.locality_weighted_lb_config` is set: a locality is picked by weight
    /// first, then a host in it.
    pub locality_weighted: bool,
    /// `load_assignment.policy.overprovisioning_factor`, in percent (Envoy's default 140).
    pub overprovisioning_factor: u32,
    /// `least_request_lb_config.choice_count` (default 2): hosts compared per pick when the
    /// weights are equal.
    pub choice_count: u32,
    /// `least_request_lb_config.active_request_bias.default_value` (default 1.0): with unequal
    /// weights a host's weight is divided by (active requests + 1) to this power.
    pub active_request_bias: f64,
    /// `ring_hash_lb_config.minimum_ring_size` (1024) and `maximum_ring_size` (8M).
    pub ring_min: u64,
    pub ring_max: u64,
    /// `maglev_lb_config.table_size` (65537, a prime).
    pub maglev_size: u64,
    /// `common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing`: rings and
    /// tables hash a host's name instead of its address.
    pub hash_by_hostname: bool,
}

impl Default for Balancing {
    fn default() -> Balancing {
        Balancing {
            localities: Vec::new(),
            locality_weighted: false,
            overprovisioning_factor: 140,
            choice_count: 2,
            active_request_bias: 1.0,
            ring_min: 1024,
            ring_max: 8 << 20,
            maglev_size: 65537,
            hash_by_hostname: false,
        }
    }
}

/// One `load_assignment.endpoints[]` entry (`LocalityLbEndpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Locality {
    /// `locality.region`, `.zone`, `.sub_zone`: shown in `/clusters`.
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
    /// `load_balancing_weight` (0 when unset: no traffic under locality-weighted balancing,
    /// as in Envoy).
    pub weight: u32,
    /// `priority` (0 is the highest): lower priorities get traffic as higher ones lose health.
    pub priority: u32,
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
    /// `transport_socket` `envoy.transport_sockets.upstream_proxy_protocol`: each new
    /// connection starts with a PROXY protocol header of this version (before TLS, if any).
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
    /// `circuit_breakers` (Envoy's defaults when absent).
    pub circuit_breakers: CircuitBreakers,
    /// `health_checks` (Envoy takes at most one): active health checking of every host.
    pub health_check: Option<HealthCheck>,
    /// `common_lb_config.healthy_panic_threshold`, rounded to a whole percent (Envoy's
    /// default 50): below it the load balancer uses every host, healthy or not.
    pub healthy_panic_threshold: u32,
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Upstream HTTP/1 connection options (`typed_extension_protocol_options`).
    pub http: UpstreamHttp,
    /// `outlier_detection`: hosts that fail are ejected from the load balancer for a while.
    pub outlier_detection: Option<OutlierDetection>,
    /// Priorities, localities and policy settings.
    pub balancing: Balancing,
}

/// `upstream_connection_options.tcp_keepalive`: TCP keep-alive on every connection to the
/// cluster's hosts; a field left out keeps the system's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// `keepalive_probes` (TCP_KEEPCNT).
    pub probes: Option<u32>,
    /// `keepalive_time`, seconds idle before the first probe (TCP_KEEPIDLE).
    pub time: Option<u32>,
    /// `keepalive_interval`, seconds between probes (TCP_KEEPINTVL).
    pub interval: Option<u32>,
}

/// A cluster's `outlier_detection` (`envoy.config.cluster.v3.OutlierDetection`), Envoy's
/// defaults where unset. Failure-percentage ejection is refused at load.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub consecutive_local_origin_failure: u32,
    /// Connect failures and timeouts count apart from the upstream's 5xx answers.
    pub split_external_local_origin_errors: bool,
    /// How often ejections end and success rates are computed.
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    /// Eject even past `max_ejection_percent` when no host is ejected.
    pub always_eject_one_host: bool,
    /// `enforcing_*`: the chance (percent) that a detection ejects.
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub enforcing_success_rate: u32,
    pub enforcing_local_origin_success_rate: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    /// A passing active health check puts an ejected host back.
    pub successful_active_health_check_uneject_host: bool,
}

/// Envoy's defaults (outlier_detection.proto).
impl Default for OutlierDetection {
    fn default() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            consecutive_local_origin_failure: 5,
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            always_eject_one_host: false,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_success_rate: 100,
            enforcing_local_origin_success_rate: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            successful_active_health_check_uneject_host: true,
        }
    }
}

/// A cluster's `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` (or the deprecated
/// cluster fields it replaced): what baton's HTTP/1 connection pool honours.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamHttp {
    /// `common_http_protocol_options.idle_timeout`: a pooled connection idle this long is
    /// closed; Envoy's default 1 h; `None` when configured 0s.
    pub idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_requests_per_connection`: a connection that carried
    /// this many requests is closed instead of pooled; `None`: no limit (0 or unset).
    pub max_requests_per_connection: Option<u32>,
    /// `common_http_protocol_options.max_connection_duration`: a connection this old is not
    /// reused (closed when idle, or after its exchange); `None`: no limit.
    pub max_connection_duration: Option<Duration>,
    /// `common_http_protocol_options.max_headers_count`: an upstream response head with more
    /// headers is a protocol error; default 100.
    pub max_headers_count: usize,
    /// `http_protocol_options.header_key_format.proper_case_words`: request header names
    /// sent upstream are written in Proper-Case.
    pub proper_case_headers: bool,
    /// `upstream_http_protocol_options.auto_sni`: a TLS connection's server name is the
    /// request's Host (without its port; not an IP address), and pooled connections are
    /// reused only for the same name.
    pub auto_sni: bool,
    /// `upstream_http_protocol_options.auto_san_validation`: the server's certificate must be
    /// valid for that name (and for a configured `sni`, when the Host gives none).
    pub auto_san_validation: bool,
    /// `http2_protocol_options` (the deprecated cluster field or the extension's
    /// `explicit_http_config`): the cluster's connections speak HTTP/2 (`crate::h2::client`),
    /// h2c with prior knowledge on plain TCP, ALPN `h2` over TLS. `None`: HTTP/1.1.
    pub http2: Option<UpstreamHttp2>,
}

/// What a cluster's `http2_protocol_options` set that baton uses: the SETTINGS and window we
/// advertise. One stream at a time per connection, so `max_concurrent_streams` (at least 1)
/// never binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamHttp2 {
    /// `hpack_table_size`: SETTINGS_HEADER_TABLE_SIZE (our decoder's table); default 4096.
    pub hpack_table_size: u32,
    /// `initial_stream_window_size`: SETTINGS_INITIAL_WINDOW_SIZE; default 268435456.
    pub initial_stream_window_size: u32,
    /// `initial_connection_window_size`: our connection window; default 268435456.
    pub initial_connection_window_size: u32,
}

/// Envoy's defaults: a 1 h idle timeout, no other limit, lower-case names as received.
impl Default for UpstreamHttp {
    fn default() -> UpstreamHttp {
        UpstreamHttp {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_requests_per_connection: None,
            max_connection_duration: None,
            max_headers_count: crate::http::codec::MAX_HEADERS,
            proper_case_headers: false,
            auto_sni: false,
            auto_san_validation: false,
            http2: None,
        }
    }
}

/// A cluster's `circuit_breakers.thresholds`, one set per routing priority. Every request
/// baton forwards is of priority DEFAULT (a route's `priority` is refused), so `high` only
/// shows in the `circuit_breakers.high.*` gauges, as Envoy shows an unused class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CircuitBreakers {
    pub default: Thresholds,
    pub high: Thresholds,
}

/// One priority's limits (`envoy.config.cluster.v3.CircuitBreakers.Thresholds`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Upstream connections of the cluster, open or opening (idle pooled ones included).
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests on a connection (HTTP/1.1: exchanges in flight).
    pub max_requests: u32,
    /// Retries in flight (replaced by `retry_budget` when that is set).
    pub max_retries: u32,
    pub retry_budget: Option<RetryBudget>,
    /// Publish the `remaining_*` gauges.
    pub track_remaining: bool,
}

/// Envoy's defaults: 1024 connections, pending and active requests, 3 retries.
impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
            track_remaining: false,
        }
    }
}

/// `retry_budget`: concurrent retries limited to a share of the active and pending requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Percent (0..=100) of active + pending requests; default 20.
    pub budget_percent: f64,
    /// The floor of the limit; default 3.
    pub min_retry_concurrency: u32,
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
    /// `http/1.1` offered by ALPN.
    pub alpn_http11: bool,
    /// `h2` offered by ALPN (before `http/1.1`: the server's preference): the client's HTTP/2
    /// preface then comes as the first bytes, served as `codec_type` AUTO or HTTP2 says.
    pub alpn_h2: bool,
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
    /// `h2` offered by ALPN: listed in `alpn_protocols`, or (as Envoy's connection pool
    /// falls back to) an HTTP/2 cluster's TLS without `alpn_protocols`.
    pub alpn_h2: bool,
    /// `None`: the server's certificate is not verified (Envoy's behaviour without a CA).
    pub validation: Option<Validation>,
    /// TLS session tickets/ids remembered (Envoy's `max_session_keys`, default 1).
    pub max_session_keys: usize,
    /// The certificate must be valid for the server name too (the cluster's
    /// `auto_san_validation`); otherwise only the SAN matchers judge names, as in Envoy.
    pub verify_name: bool,
}

/// One of a listener's filter chains: how it is chosen, its transport, and which of the
/// listener's terminal filters serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChainTls {
    /// `name`: a hot-restart handover finds the chain by it (else by its index).
    pub name: Option<String>,
    /// `destination_port`: the port the client connected to; `None` matches any.
    pub destination_port: Option<u16>,
    /// `prefix_ranges`: the address the client connected to (network, prefix length);
    /// empty matches any.
    pub prefix_ranges: Vec<(std::net::IpAddr, u8)>,
    /// Exact names and `*.suffix` wildcards; empty matches any name.
    pub server_names: Vec<String>,
    /// `tls`, `raw_buffer`, or `None` (any).
    pub transport_protocol: Option<String>,
    /// ALPN protocols of which the ClientHello must offer one; empty matches any.
    pub application_protocols: Vec<String>,
    /// `source_prefix_ranges`: the client's address (a PROXY protocol header's, when the
    /// listener reads one); empty matches any.
    pub source_prefix_ranges: Vec<(std::net::IpAddr, u8)>,
    /// `direct_source_prefix_ranges`: the socket's peer (never a PROXY header's client);
    /// empty matches any.
    pub direct_source_prefix_ranges: Vec<(std::net::IpAddr, u8)>,
    /// `source_ports`: the client's port; empty matches any.
    pub source_ports: Vec<u16>,
    /// The listener's `default_filter_chain`: never matched, used when no chain matches.
    pub fallback: bool,
    /// Index into `Listener::terminals`.
    pub terminal: usize,
    /// `None`: plain TCP.
    pub tls: Option<DownstreamTls>,
    pub handshake_timeout: Duration,
}
