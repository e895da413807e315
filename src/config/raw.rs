//! Serde mirror of the Envoy v3 bootstrap subset baton understands. Field names are Envoy's;
//! every struct denies unknown fields so a typo or an unsupported feature is an error with its
//! path (see `de.rs`), never a silent no-op. Defaults and cross-field rules live in `validate`.
//! `typed_config` payloads stay `Value`s here: which struct they become depends on `@type`.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_yaml::Value;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    pub node: Option<Node>,
    pub static_resources: Option<StaticResources>,
    pub admin: Option<Admin>,
    pub overload_manager: Option<OverloadManager>,
    pub layered_runtime: Option<LayeredRuntime>,
    pub tracing: Option<BootstrapTracing>,
    #[serde(default)]
    pub stats_sinks: Vec<TypedExtension>,
    pub stats_flush_interval: Option<Dur>,
    pub stats_flush_on_admin: Option<bool>,
    pub stats_config: Option<StatsConfig>,
}

/// The bootstrap's `tracing` (deprecated in v3, still read): the provider of connection
/// managers whose `tracing` names none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapTracing {
    pub http: Option<TypedExtension>,
}

/// `envoy.config.metrics.v3.StatsConfig`: only `stats_matcher` (and the default tags) are
/// implemented; `validate_stats` refuses the rest by path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    #[serde(default)]
    pub stats_tags: Vec<Value>,
    pub use_all_default_tags: Option<bool>,
    pub stats_matcher: Option<StatsMatcher>,
    #[serde(default)]
    pub histogram_bucket_settings: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsMatcher {
    pub reject_all: Option<bool>,
    pub exclusion_list: Option<ListStringMatcher>,
    pub inclusion_list: Option<ListStringMatcher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListStringMatcher {
    #[serde(default)]
    pub patterns: Vec<StringMatcher>,
}

/// `envoy.config.metrics.v3.StatsdSink`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsdSink {
    pub address: Option<Address>,
    pub tcp_cluster_name: Option<String>,
    pub prefix: Option<String>,
}

/// `envoy.config.metrics.v3.DogStatsdSink`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DogStatsdSink {
    pub address: Option<Address>,
    pub prefix: Option<String>,
    pub max_bytes_per_datagram: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayeredRuntime {
    #[serde(default)]
    pub layers: Vec<RuntimeLayer>,
}

/// One runtime layer; exactly one of the layer kinds is set (checked in `runtime`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeLayer {
    /// A label only.
    #[serde(rename = "name")]
    pub _name: Option<String>,
    pub static_layer: Option<Value>,
    pub admin_layer: Option<Value>,
    pub disk_layer: Option<Value>,
    pub rtds_layer: Option<Value>,
}

/// `overload_manager`: the fixed-heap and connection monitors, and the actions baton can take
/// (`validate_overload` says which).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadManager {
    pub refresh_interval: Option<Dur>,
    #[serde(default)]
    pub resource_monitors: Vec<TypedExtension>,
    #[serde(default)]
    pub actions: Vec<OverloadAction>,
    pub loadshed_points: Option<Value>,
    pub buffer_factory_config: Option<Value>,
}

/// `overload_manager.actions[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadAction {
    pub name: Option<String>,
    #[serde(default)]
    pub triggers: Vec<OverloadTrigger>,
    pub typed_config: Option<Value>,
}

/// `overload_manager.actions[].triggers[]`: one of `threshold`, `scaled`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadTrigger {
    pub name: Option<String>,
    pub threshold: Option<ThresholdTrigger>,
    pub scaled: Option<ScaledTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdTrigger {
    #[serde(default)]
    pub value: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaledTrigger {
    #[serde(default)]
    pub scaling_threshold: f64,
    #[serde(default)]
    pub saturation_threshold: f64,
}

/// `envoy.resource_monitors.fixed_heap`'s `typed_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedHeapConfig {
    pub max_heap_size_bytes: Option<i64>,
}

/// `envoy.resource_monitors.global_downstream_max_connections`'s `typed_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConnectionsConfig {
    pub max_active_downstream_connections: Option<i64>,
}

/// `envoy.filters.network.connection_limit`'s `typed_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimit {
    pub stat_prefix: Option<String>,
    pub max_connections: Option<i64>,
    pub delay: Option<Dur>,
    pub runtime_enabled: Option<Value>,
}

/// `envoy.filters.network.tcp_proxy`'s `typed_config`. The fields baton does not implement
/// are read (as `Value`s) so that `validate` can refuse each by path with its reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProxy {
    pub stat_prefix: Option<String>,
    pub cluster: Option<String>,
    pub weighted_clusters: Option<TcpWeightedClusters>,
    pub idle_timeout: Option<Dur>,
    /// Wider than u32 so an out-of-range value gets our message, not a type error.
    pub max_connect_attempts: Option<i64>,
    pub max_downstream_connection_duration: Option<Dur>,
    #[serde(default)]
    pub access_log: Vec<TypedExtension>,
    /// Deprecated; `false` (its default) changes nothing and is accepted.
    pub flush_access_log_on_connected: Option<bool>,
    pub on_demand: Option<Value>,
    pub metadata_match: Option<Value>,
    pub downstream_idle_timeout: Option<Value>,
    pub upstream_idle_timeout: Option<Value>,
    pub backoff_options: Option<Value>,
    pub hash_policy: Option<Value>,
    pub tunneling_config: Option<TunnelingConfig>,
    pub max_downstream_connection_duration_jitter_percentage: Option<Value>,
    pub access_log_flush_interval: Option<Value>,
    pub access_log_options: Option<Value>,
    pub proxy_protocol_tlvs: Option<Value>,
}

/// The TCP proxy's `weighted_clusters` (unlike a route's, it has no `total_weight`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpWeightedClusters {
    #[serde(default)]
    pub clusters: Vec<TcpClusterWeight>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpClusterWeight {
    pub name: String,
    pub weight: Option<i64>,
    pub metadata_match: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub cluster: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub address: Option<Address>,
    pub access_log_path: Option<String>,
    #[serde(default)]
    pub access_log: Vec<TypedExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResources {
    /// Read one by one in `validate` (as `Listener`s and `Cluster`s), so that a broken element
    /// stops only itself and the others are still checked.
    #[serde(default)]
    pub listeners: Vec<Value>,
    #[serde(default)]
    pub clusters: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub socket_address: Option<SocketAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketAddress {
    pub protocol: Option<EnumValue>,
    pub address: String,
    /// Wider than u16 so an out-of-range port gets our message, not a type error.
    pub port_value: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: Option<String>,
    pub address: Option<Address>,
    #[serde(default)]
    pub filter_chains: Vec<FilterChain>,
    pub default_filter_chain: Option<FilterChain>,
    pub per_connection_buffer_limit_bytes: Option<u32>,
    #[serde(default)]
    pub listener_filters: Vec<TypedExtension>,
    /// How long listener filters (the TLS inspector) may wait for the ClientHello.
    pub listener_filters_timeout: Option<Dur>,
    pub enable_reuse_port: Option<bool>,
    pub tcp_fast_open_queue_length: Option<u32>,
    #[serde(default)]
    pub socket_options: Vec<SocketOption>,
    pub traffic_direction: Option<EnumValue>,
}

/// `envoy.config.core.v3.SocketOption` (`buf_value` is refused at validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketOption {
    pub description: Option<String>,
    pub level: Option<i64>,
    pub name: Option<i64>,
    pub int_value: Option<i64>,
    pub buf_value: Option<Value>,
    pub state: Option<EnumValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterChain {
    /// Names the chain to a hot-restart successor (a handed-over connection keeps its chain).
    pub name: Option<String>,
    #[serde(default)]
    pub filters: Vec<TypedExtension>,
    pub filter_chain_match: Option<super::tls::RawFilterChainMatch>,
    pub transport_socket: Option<TypedExtension>,
    pub transport_socket_connect_timeout: Option<Dur>,
}

/// Any `{name, typed_config}` pair: network filters, HTTP filters, access loggers.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedExtension {
    pub name: String,
    pub typed_config: Option<Value>,
    /// `access_log[].filter` (an `AccessLogFilter`); on any other extension it is refused.
    pub filter: Option<Value>,
}

/// An entry of `http_filters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFilter {
    pub name: String,
    pub typed_config: Option<Value>,
    pub is_optional: Option<bool>,
    pub disabled: Option<bool>,
}

/// `envoy.config.route.v3.FilterConfig`, a per-route config's wrapper.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub config: Option<Value>,
    pub is_optional: Option<bool>,
    pub disabled: Option<bool>,
}

/// `envoy.config.core.v3.RuntimeFractionalPercent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFractionalPercent {
    pub default_value: Option<FractionalPercent>,
    /// Accepted; no runtime layer can set it (see `validate_filters::fraction`).
    #[serde(rename = "runtime_key")]
    pub _runtime_key: Option<String>,
}

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy` (also the route's legacy `cors`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    #[serde(default)]
    pub allow_origin_string_match: Vec<StringMatcher>,
    #[serde(default)]
    pub allow_methods: String,
    #[serde(default)]
    pub allow_headers: String,
    #[serde(default)]
    pub expose_headers: String,
    #[serde(default)]
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    pub forward_not_matching_preflights: Option<bool>,
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
}

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit` (also per route).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRateLimit {
    pub stat_prefix: Option<String>,
    pub status: Option<HttpStatus>,
    pub token_bucket: Option<TokenBucket>,
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    #[serde(default)]
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    #[serde(default)]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    #[serde(default)]
    pub descriptors: Vec<Value>,
    pub stage: Option<u32>,
    pub local_rate_limit_per_downstream_connection: Option<bool>,
    pub enable_x_ratelimit_headers: Option<EnumValue>,
    pub vh_rate_limits: Option<EnumValue>,
    pub always_consume_default_token_bucket: Option<bool>,
    pub rate_limited_as_resource_exhausted: Option<bool>,
    #[serde(default)]
    pub rate_limits: Vec<Value>,
    pub local_cluster_rate_limit: Option<Value>,
    pub max_dynamic_descriptors: Option<Value>,
}

/// `envoy.type.v3.TokenBucket`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucket {
    pub max_tokens: Option<u32>,
    pub tokens_per_fill: Option<u32>,
    pub fill_interval: Option<Dur>,
}

/// `envoy.type.v3.HttpStatus`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStatus {
    pub code: Option<EnumValue>,
}

/// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfPolicy {
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
    #[serde(default)]
    pub additional_origins: Vec<StringMatcher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec_type: Option<EnumValue>,
    pub route_config: Option<RouteConfiguration>,
    #[serde(default)]
    pub http_filters: Vec<HttpFilter>,
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    pub request_headers_timeout: Option<Dur>,
    pub request_timeout: Option<Dur>,
    pub stream_idle_timeout: Option<Dur>,
    pub max_request_headers_kb: Option<u32>,
    #[serde(default)]
    pub access_log: Vec<TypedExtension>,
    pub use_remote_address: Option<bool>,
    pub xff_num_trusted_hops: Option<u32>,
    pub generate_request_id: Option<bool>,
    pub server_name: Option<String>,
    pub server_header_transformation: Option<EnumValue>,
    pub normalize_path: Option<bool>,
    pub merge_slashes: Option<bool>,
    #[serde(default)]
    pub upgrade_configs: Vec<UpgradeConfig>,
    pub internal_address_config: Option<InternalAddressConfig>,
    pub http_protocol_options: Option<Http1ProtocolOptions>,
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    pub skip_xff_append: Option<bool>,
    pub forward_client_cert_details: Option<EnumValue>,
    pub delayed_close_timeout: Option<Dur>,
    pub add_user_agent: Option<bool>,
    pub proxy_100_continue: Option<bool>,
    pub strip_matching_host_port: Option<bool>,
    pub strip_any_host_port: Option<bool>,
    pub strip_trailing_host_dot: Option<bool>,
    pub path_with_escaped_slashes_action: Option<EnumValue>,
    pub preserve_external_request_id: Option<bool>,
    pub via: Option<String>,
    pub local_reply_config: Option<LocalReplyConfig>,
    pub tracing: Option<Tracing>,
    pub scheme_header_transformation: Option<SchemeHeaderTransformation>,
}

/// `config.core.v3.SchemeHeaderTransformation`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeHeaderTransformation {
    pub scheme_to_overwrite: Option<String>,
    /// Accepted either way: baton's HTTP/2 client always sends the upstream transport's
    /// `:scheme` (validate.rs `scheme_transformation`).
    #[allow(dead_code)]
    pub match_upstream: Option<bool>,
}

/// The connection manager's `tracing` (v3: the provider is configured here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    pub client_sampling: Option<Percent>,
    pub random_sampling: Option<Percent>,
    pub overall_sampling: Option<Percent>,
    pub verbose: Option<bool>,
    pub max_path_tag_length: Option<u32>,
    #[serde(default)]
    pub custom_tags: Vec<CustomTag>,
    pub provider: Option<TypedExtension>,
    pub spawn_upstream_span: Option<bool>,
}

/// `envoy.type.tracing.v3.CustomTag`: a oneof; `metadata` is kept as a `Value` to be
/// refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTag {
    #[serde(default)]
    pub tag: String,
    pub literal: Option<LiteralTag>,
    pub environment: Option<NamedTag>,
    pub request_header: Option<NamedTag>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiteralTag {
    #[serde(default)]
    pub value: String,
}

/// `CustomTag.Environment` and `CustomTag.Header`: a name and a default value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTag {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub default_value: String,
}

/// `envoy.config.trace.v3.DatadogConfig`; `remote_config` is kept as a `Value` to be refused
/// by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    #[serde(default)]
    pub collector_cluster: String,
    #[serde(default)]
    pub service_name: String,
    pub collector_hostname: Option<String>,
    pub remote_config: Option<Value>,
}

/// `envoy.config.trace.v3.ZipkinConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipkinConfig {
    #[serde(default)]
    pub collector_cluster: String,
    #[serde(default)]
    pub collector_endpoint: String,
    pub trace_id_128bit: Option<bool>,
    pub shared_span_context: Option<bool>,
    pub collector_endpoint_version: Option<EnumValue>,
    pub collector_hostname: Option<String>,
    pub split_spans_for_request: Option<bool>,
    pub trace_context_option: Option<EnumValue>,
    pub collector_service: Option<Value>,
}

/// A route's `decorator`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decorator {
    #[serde(default)]
    pub operation: String,
    pub propagate: Option<bool>,
}

/// The connection manager's `local_reply_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalReplyConfig {
    #[serde(default)]
    pub mappers: Vec<ResponseMapper>,
    pub body_format: Option<BodyFormatString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseMapper {
    pub filter: Option<AccessLogFilter>,
    /// A `UInt32Value`: a plain number in YAML; wider so an out-of-range value gets our message.
    pub status_code: Option<i64>,
    pub body: Option<DataSource>,
    pub body_format_override: Option<BodyFormatString>,
    #[serde(default)]
    pub headers_to_add: Vec<HeaderValueOption>,
}

/// A `SubstitutionFormatString` where JSON is supported (local reply bodies). The access
/// logs' own `SubstitutionFormatString` stays text only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyFormatString {
    pub text_format: Option<String>,
    pub text_format_source: Option<DataSource>,
    pub json_format: Option<Value>,
    pub omit_empty_values: Option<bool>,
    pub content_type: Option<String>,
    /// Formatter extensions: refused by `validate_local_reply`.
    pub formatters: Option<Value>,
    pub json_format_options: Option<JsonFormatOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFormatOptions {
    /// Envoy sorts JSON keys whatever this says (it is deprecated); accepted for that reason.
    #[serde(rename = "sort_properties")]
    pub _sort_properties: Option<bool>,
}

/// `AccessLogFilter`: a oneof; the kinds baton does not implement stay `Value`s so that they
/// can be refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFilter {
    pub status_code_filter: Option<ComparisonHolder>,
    pub duration_filter: Option<ComparisonHolder>,
    pub header_filter: Option<HeaderFilter>,
    pub response_flag_filter: Option<ResponseFlagFilter>,
    pub and_filter: Option<FilterList>,
    pub or_filter: Option<FilterList>,
    pub not_health_check_filter: Option<EmptyMessage>,
    pub traceable_filter: Option<EmptyMessage>,
    pub runtime_filter: Option<RuntimeFilter>,
    pub grpc_status_filter: Option<GrpcStatusFilter>,
    pub extension_filter: Option<Value>,
    pub metadata_filter: Option<Value>,
    pub log_type_filter: Option<Value>,
}

/// A message without fields (`NotHealthCheckFilter`, `TraceableFilter`): any field is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyMessage {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFilter {
    pub runtime_key: Option<String>,
    pub percent_sampled: Option<FractionalPercent>,
    pub use_independent_randomness: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FractionalPercent {
    /// Wider than Envoy's uint32 so an out-of-range value gets our message.
    pub numerator: Option<i64>,
    pub denominator: Option<EnumValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcStatusFilter {
    #[serde(default)]
    pub statuses: Vec<EnumValue>,
    pub exclude: Option<bool>,
}

/// `StatusCodeFilter` and `DurationFilter`: one required comparison.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonHolder {
    pub comparison: Option<ComparisonFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonFilter {
    pub op: Option<EnumValue>,
    pub value: Option<RuntimeUInt32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeUInt32 {
    pub default_value: Option<i64>,
    pub runtime_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderFilter {
    pub header: Option<HeaderMatcher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseFlagFilter {
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterList {
    #[serde(default)]
    pub filters: Vec<AccessLogFilter>,
}

/// Which client addresses make a request internal (Envoy's `internal_address_config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalAddressConfig {
    /// Listeners are TCP only, so a Unix-socket peer never occurs; accepted either way.
    #[serde(rename = "unix_sockets")]
    pub _unix_sockets: Option<bool>,
    #[serde(default)]
    pub cidr_ranges: Vec<CidrRange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrRange {
    pub address_prefix: String,
    pub prefix_len: Option<u32>,
}

/// The HCM's HTTP/1 options baton implements.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http1ProtocolOptions {
    pub accept_http_10: Option<bool>,
    pub default_host_for_http_10: Option<String>,
}

/// `envoy.config.core.v3.Http2ProtocolOptions`. Fields baton does not honour are kept as
/// `Value`s, to be refused by path (`validate_http2`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2ProtocolOptions {
    pub hpack_table_size: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    pub allow_connect: Option<bool>,
    pub allow_metadata: Option<bool>,
    pub stream_error_on_invalid_http_messaging: Option<bool>,
    pub override_stream_error_on_invalid_http_message: Option<bool>,
    pub max_outbound_frames: Option<Value>,
    pub max_outbound_control_frames: Option<Value>,
    pub max_consecutive_inbound_frames_with_empty_payload: Option<Value>,
    pub max_inbound_priority_frames_per_stream: Option<Value>,
    pub max_inbound_window_update_frames_per_data_frame_sent: Option<Value>,
    pub custom_settings_parameters: Option<Value>,
    pub connection_keepalive: Option<Value>,
    pub use_oghttp2_codec: Option<Value>,
    pub max_metadata_size: Option<Value>,
    pub enable_huffman_encoding: Option<Value>,
}

/// The connection manager's `upgrade_configs[]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeConfig {
    pub upgrade_type: String,
    #[serde(default)]
    pub filters: Vec<TypedExtension>,
    pub enabled: Option<bool>,
}

/// A route's `upgrade_configs[]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteUpgradeConfig {
    pub upgrade_type: String,
    pub enabled: Option<bool>,
    pub connect_config: Option<ConnectConfig>,
}

/// `connect_config`: present means "terminate CONNECT here".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    pub proxy_protocol_config: Option<de::IgnoredAny>,
    pub allow_post: Option<bool>,
}

/// `grpc: {}` (`GrpcRouteMatchOptions`) has no fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcRouteMatch {}

/// `connect_matcher: {}` has no fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectMatcher {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProtocolOptions {
    pub idle_timeout: Option<Dur>,
    pub max_connection_duration: Option<Dur>,
    pub max_headers_count: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub headers_with_underscores_action: Option<EnumValue>,
}

/// The router's `typed_config`: no options are supported, but the message must be well-formed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {}

/// `envoy.filters.http.cors`'s `typed_config`: no fields (its policies are per route).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {}

/// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`: the fields baton reads, and
/// those it refuses by path when set (the rest are unknown fields, refused by serde).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthz {
    pub http_service: Option<ExtAuthzHttpService>,
    pub grpc_service: Option<GrpcService>,
    pub transport_api_version: Option<EnumValue>,
    pub failure_mode_allow: Option<bool>,
    pub failure_mode_allow_header_add: Option<bool>,
    pub status_on_error: Option<HttpStatus>,
    pub stat_prefix: Option<String>,
    pub with_request_body: Option<Value>,
    pub clear_route_cache: Option<bool>,
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    pub filter_enabled_metadata: Option<Value>,
    pub deny_at_disable: Option<RuntimeFeatureFlag>,
    pub metadata_context_namespaces: Option<Vec<String>>,
    pub typed_metadata_context_namespaces: Option<Vec<String>>,
    pub route_metadata_context_namespaces: Option<Vec<String>>,
    pub route_typed_metadata_context_namespaces: Option<Vec<String>>,
    pub include_peer_certificate: Option<bool>,
    pub include_tls_session: Option<bool>,
    pub validate_mutations: Option<bool>,
    pub bootstrap_metadata_labels_key: Option<String>,
    pub allowed_headers: Option<Value>,
    pub disallowed_headers: Option<Value>,
    pub charge_cluster_response_stats: Option<Value>,
    pub encode_raw_headers: Option<bool>,
    pub decoder_header_mutation_rules: Option<Value>,
    pub enable_dynamic_metadata_ingestion: Option<Value>,
    pub filter_metadata: Option<Value>,
    pub emit_filter_state_stats: Option<bool>,
}

/// `envoy.config.core.v3.GrpcService`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcService {
    pub envoy_grpc: Option<EnvoyGrpc>,
    pub google_grpc: Option<Value>,
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub initial_metadata: Vec<HeaderValue>,
    pub retry_policy: Option<Value>,
}

/// `envoy.config.core.v3.GrpcService.EnvoyGrpc`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyGrpc {
    pub cluster_name: Option<String>,
    pub authority: Option<String>,
    pub retry_policy: Option<Value>,
    pub max_receive_message_length: Option<Value>,
    pub skip_envoy_headers: Option<Value>,
}

/// `envoy.extensions.filters.http.ext_authz.v3.HttpService`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthzHttpService {
    pub server_uri: Option<HttpUri>,
    pub path_prefix: Option<String>,
    pub authorization_request: Option<AuthorizationRequest>,
    pub authorization_response: Option<AuthorizationResponse>,
    pub retry_policy: Option<Value>,
}

/// `envoy.config.core.v3.HttpUri`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUri {
    pub uri: Option<String>,
    pub cluster: Option<String>,
    pub timeout: Option<Dur>,
}

/// `envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRequest {
    pub allowed_headers: Option<ListStringMatcher>,
    #[serde(default)]
    pub headers_to_add: Vec<HeaderValue>,
}

/// `envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationResponse {
    pub allowed_upstream_headers: Option<ListStringMatcher>,
    pub allowed_upstream_headers_to_append: Option<ListStringMatcher>,
    pub allowed_client_headers: Option<ListStringMatcher>,
    pub allowed_client_headers_on_success: Option<ListStringMatcher>,
    pub dynamic_metadata_from_headers: Option<ListStringMatcher>,
}

/// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthzPerRoute {
    pub disabled: Option<bool>,
    pub check_settings: Option<Value>,
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault` (also per route).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFault {
    pub abort: Option<FaultAbort>,
    pub delay: Option<FaultDelay>,
    pub upstream_cluster: Option<String>,
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    #[serde(default)]
    pub downstream_nodes: Vec<String>,
    pub max_active_faults: Option<u32>,
    pub response_rate_limit: Option<Value>,
    pub delay_percent_runtime: Option<String>,
    pub abort_percent_runtime: Option<String>,
    pub delay_duration_runtime: Option<String>,
    pub abort_http_status_runtime: Option<String>,
    pub max_active_faults_runtime: Option<String>,
    pub response_rate_limit_percent_runtime: Option<String>,
    pub abort_grpc_status_runtime: Option<String>,
    pub disable_downstream_cluster_stats: Option<bool>,
    pub filter_metadata: Option<Value>,
}

/// `envoy.extensions.filters.common.fault.v3.FaultDelay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    pub fixed_delay: Option<Dur>,
    pub header_delay: Option<EmptyInput>,
    pub percentage: Option<FractionalPercent>,
}

/// `envoy.extensions.filters.http.fault.v3.FaultAbort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    pub http_status: Option<u32>,
    pub grpc_status: Option<u32>,
    pub header_abort: Option<EmptyInput>,
    pub percentage: Option<FractionalPercent>,
}

/// `envoy.extensions.filters.http.rbac.v3.RBAC` (also the `rbac` of a per-route
/// `RBACPerRoute`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rbac {
    pub rules: Option<RbacRules>,
    pub matcher: Option<XdsMatcher>,
    pub shadow_rules: Option<RbacRules>,
    pub shadow_matcher: Option<XdsMatcher>,
    pub rules_stat_prefix: Option<String>,
    pub shadow_rules_stat_prefix: Option<String>,
    pub track_per_rule_stats: Option<bool>,
}

/// `envoy.extensions.filters.http.rbac.v3.RBACPerRoute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacPerRoute {
    pub rbac: Option<Rbac>,
}

/// `envoy.config.rbac.v3.RBAC`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacRules {
    pub action: Option<EnumValue>,
    #[serde(default)]
    pub policies: std::collections::BTreeMap<String, RbacPolicy>,
    pub audit_logging_options: Option<Value>,
}

/// `envoy.config.rbac.v3.Policy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacPolicy {
    #[serde(default)]
    pub permissions: Vec<RbacPermission>,
    #[serde(default)]
    pub principals: Vec<RbacPrincipal>,
    pub condition: Option<Value>,
    pub checked_condition: Option<Value>,
}

/// `envoy.config.rbac.v3.Permission` (a oneof: exactly one field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacPermission {
    pub any: Option<bool>,
    pub header: Option<HeaderMatcher>,
    pub url_path: Option<PathMatcherMsg>,
    pub destination_ip: Option<CidrRange>,
    pub destination_port: Option<u32>,
    pub destination_port_range: Option<Int64Range>,
    pub and_rules: Option<PermissionSet>,
    pub or_rules: Option<PermissionSet>,
    pub not_rule: Option<Box<RbacPermission>>,
    pub requested_server_name: Option<StringMatcher>,
    pub metadata: Option<Value>,
    pub uri_template: Option<Value>,
    pub matcher: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSet {
    #[serde(default)]
    pub rules: Vec<RbacPermission>,
}

/// `envoy.config.rbac.v3.Principal` (a oneof: exactly one field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacPrincipal {
    pub any: Option<bool>,
    pub header: Option<HeaderMatcher>,
    pub url_path: Option<PathMatcherMsg>,
    pub direct_remote_ip: Option<CidrRange>,
    pub remote_ip: Option<CidrRange>,
    pub source_ip: Option<CidrRange>,
    pub authenticated: Option<Authenticated>,
    pub and_ids: Option<PrincipalSet>,
    pub or_ids: Option<PrincipalSet>,
    pub not_id: Option<Box<RbacPrincipal>>,
    pub metadata: Option<Value>,
    pub filter_state: Option<Value>,
    pub custom: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSet {
    #[serde(default)]
    pub ids: Vec<RbacPrincipal>,
}

/// `envoy.config.rbac.v3.Principal.Authenticated`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authenticated {
    pub principal_name: Option<StringMatcher>,
}

/// `envoy.type.matcher.v3.PathMatcher`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatcherMsg {
    pub path: Option<StringMatcher>,
}

/// `xds.type.matcher.v3.Matcher` (the unified matcher API).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsMatcher {
    pub matcher_list: Option<XdsMatcherList>,
    pub matcher_tree: Option<Value>,
    pub on_no_match: Option<XdsOnMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsMatcherList {
    #[serde(default)]
    pub matchers: Vec<XdsFieldMatcher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsFieldMatcher {
    pub predicate: Option<XdsPredicate>,
    pub on_match: Option<XdsOnMatch>,
}

/// `Matcher.MatcherList.Predicate` (a oneof).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsPredicate {
    pub single_predicate: Option<XdsSinglePredicate>,
    pub or_matcher: Option<XdsPredicateList>,
    pub and_matcher: Option<XdsPredicateList>,
    pub not_matcher: Option<Box<XdsPredicate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsPredicateList {
    #[serde(default)]
    pub predicate: Vec<XdsPredicate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsSinglePredicate {
    pub input: Option<NamedTyped>,
    pub value_match: Option<StringMatcher>,
    pub custom_match: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsOnMatch {
    pub matcher: Option<Box<XdsMatcher>>,
    pub action: Option<NamedTyped>,
    pub keep_matching: Option<bool>,
}

/// A `TypedExtensionConfig` (`name`, `typed_config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTyped {
    /// A label; the type decides.
    #[serde(default)]
    #[allow(dead_code)]
    pub name: String,
    pub typed_config: Option<Value>,
}

/// `envoy.config.rbac.v3.Action`, a matcher's action for the RBAC filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacMatchAction {
    #[serde(default)]
    pub name: String,
    pub action: Option<EnumValue>,
}

/// `…matcher.v3.HttpRequestHeaderMatchInput`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchInput {
    #[serde(default)]
    pub header_name: String,
}

/// A matching input without fields (`…common_inputs.network.v3.SourceIPInput`, ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {}

/// `envoy.filters.http.health_check`'s `typed_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub pass_through_mode: Option<bool>,
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    pub cache_time: Option<Value>,
    #[serde(default)]
    pub cluster_min_healthy_percentages: std::collections::BTreeMap<String, Percent>,
}

/// The plain transport socket's `typed_config`: it has no fields, and one given is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuffer {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    pub path: String,
    /// Deprecated v3 spelling of a text format.
    pub format: Option<String>,
    pub log_format: Option<SubstitutionFormatString>,
}

/// `StdoutAccessLog` / `StderrAccessLog`: a format, no path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamAccessLog {
    pub log_format: Option<SubstitutionFormatString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubstitutionFormatString {
    pub text_format: Option<String>,
    pub text_format_source: Option<DataSource>,
    pub json_format: Option<Value>,
    pub json_format_options: Option<JsonFormatOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    pub inline_string: Option<String>,
    /// Base64, as protobuf's JSON mapping writes `bytes`.
    pub inline_bytes: Option<String>,
    pub filename: Option<String>,
    pub environment_variable: Option<String>,
}

/// Adds Envoy's four header-edit lists (identical on route_config, virtual host and route) to a
/// struct, with `HeaderEdits` to read them generically.
macro_rules! with_header_edits {
    (pub struct $name:ident { $($body:tt)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($body)*
            #[serde(default)]
            pub request_headers_to_add: Vec<HeaderValueOption>,
            #[serde(default)]
            pub request_headers_to_remove: Vec<String>,
            #[serde(default)]
            pub response_headers_to_add: Vec<HeaderValueOption>,
            #[serde(default)]
            pub response_headers_to_remove: Vec<String>,
        }

        impl HeaderEdits for $name {
            fn edits(&self) -> HeaderEditLists<'_> {
                HeaderEditLists {
                    request_add: &self.request_headers_to_add,
                    request_remove: &self.request_headers_to_remove,
                    response_add: &self.response_headers_to_add,
                    response_remove: &self.response_headers_to_remove,
                }
            }
        }
    };
}

/// The header-edit lists of one level, borrowed.
pub struct HeaderEditLists<'a> {
    pub request_add: &'a [HeaderValueOption],
    pub request_remove: &'a [String],
    pub response_add: &'a [HeaderValueOption],
    pub response_remove: &'a [String],
}

pub trait HeaderEdits {
    fn edits(&self) -> HeaderEditLists<'_>;
}

with_header_edits! {
    pub struct RouteConfiguration {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub virtual_hosts: Vec<VirtualHost>,
        pub most_specific_header_mutations_wins: Option<bool>,
    }
}

with_header_edits! {
    pub struct VirtualHost {
        pub name: String,
        /// `None` when absent (defaulted to `*`, see `validate_route`), unlike an explicit `[]`.
        pub domains: Option<Vec<String>>,
        #[serde(default)]
        pub routes: Vec<Route>,
        pub retry_policy: Option<RetryPolicy>,
        pub require_tls: Option<EnumValue>,
        pub typed_per_filter_config: Option<Value>,
        pub cors: Option<CorsPolicy>,
        pub per_request_buffer_limit_bytes: Option<u32>,
        pub include_request_attempt_count: Option<bool>,
        pub include_attempt_count_in_response: Option<bool>,
    }
}

with_header_edits! {
    pub struct Route {
        #[serde(default)]
        pub name: String,
        #[serde(rename = "match")]
        pub matcher: Option<RouteMatch>,
        pub route: Option<RouteAction>,
        pub redirect: Option<RedirectAction>,
        pub direct_response: Option<DirectResponse>,
        pub typed_per_filter_config: Option<Value>,
        pub decorator: Option<Decorator>,
        pub per_request_buffer_limit_bytes: Option<u32>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    pub append: Option<bool>,
    pub append_action: Option<EnumValue>,
    pub keep_empty_value: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    pub prefix: Option<String>,
    pub path: Option<String>,
    pub safe_regex: Option<RegexMatcher>,
    pub connect_matcher: Option<ConnectMatcher>,
    pub case_sensitive: Option<bool>,
    pub grpc: Option<GrpcRouteMatch>,
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    #[serde(default)]
    pub query_parameters: Vec<QueryParameterMatcher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexMatcher {
    /// Deprecated engine selector; only its program-size limit has an effect.
    pub google_re2: Option<GoogleRe2>,
    pub regex: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleRe2 {
    pub max_program_size: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatcher {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub safe_regex: Option<RegexMatcher>,
    pub ignore_case: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatcher {
    pub name: String,
    pub string_match: Option<StringMatcher>,
    pub present_match: Option<bool>,
    pub invert_match: Option<bool>,
    pub exact_match: Option<String>,
    pub prefix_match: Option<String>,
    pub suffix_match: Option<String>,
    pub contains_match: Option<String>,
    pub safe_regex_match: Option<RegexMatcher>,
    pub range_match: Option<Int64Range>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Int64Range {
    #[serde(default)]
    pub start: i64,
    #[serde(default)]
    pub end: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParameterMatcher {
    pub name: String,
    pub string_match: Option<StringMatcher>,
    pub present_match: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAction {
    pub cluster: Option<String>,
    pub weighted_clusters: Option<WeightedClusters>,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite_literal: Option<String>,
    pub auto_host_rewrite: Option<bool>,
    pub timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub upgrade_configs: Vec<RouteUpgradeConfig>,
    pub cors: Option<CorsPolicy>,
    #[serde(default)]
    pub hash_policy: Vec<HashPolicy>,
    #[serde(default)]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
}

/// `envoy.config.route.v3.RouteAction.RequestMirrorPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMirrorPolicy {
    pub cluster: Option<String>,
    pub cluster_header: Option<String>,
    pub runtime_fraction: Option<RuntimeFractionalPercent>,
    pub trace_sampled: Option<bool>,
    pub disable_shadow_host_suffix_append: Option<bool>,
}

/// `RouteAction.HashPolicy`: one key of the request's hash (`filter_state` and a header's
/// `regex_rewrite` are refused as unknown).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashPolicy {
    pub header: Option<HashHeader>,
    pub cookie: Option<HashCookie>,
    pub connection_properties: Option<HashConnection>,
    pub query_parameter: Option<HashQuery>,
    #[serde(default)]
    pub terminal: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashHeader {
    pub header_name: String,
}

/// A cookie key (`ttl`, which makes Envoy set the cookie, and `attributes` are refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashCookie {
    pub name: String,
    pub ttl: Option<Value>,
    pub path: Option<Value>,
    pub attributes: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashConnection {
    #[serde(default)]
    pub source_ip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashQuery {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedClusters {
    #[serde(default)]
    pub clusters: Vec<ClusterWeight>,
    pub total_weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterWeight {
    pub name: String,
    pub weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: RegexMatcher,
    #[serde(default)]
    pub substitution: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub retry_on: Option<String>,
    pub num_retries: Option<u32>,
    pub per_try_timeout: Option<Dur>,
    #[serde(default)]
    pub retriable_status_codes: Vec<u32>,
    pub retry_back_off: Option<BackOff>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackOff {
    pub base_interval: Dur,
    pub max_interval: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u32,
    pub body: Option<DataSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    pub https_redirect: Option<bool>,
    pub scheme_redirect: Option<String>,
    pub host_redirect: Option<String>,
    pub port_redirect: Option<i64>,
    pub path_redirect: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub response_code: Option<EnumValue>,
    pub strip_query: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub connect_timeout: Option<Dur>,
    #[serde(rename = "type")]
    pub discovery: Option<EnumValue>,
    pub lb_policy: Option<EnumValue>,
    pub dns_lookup_family: Option<EnumValue>,
    pub dns_refresh_rate: Option<Dur>,
    pub load_assignment: Option<ClusterLoadAssignment>,
    pub per_connection_buffer_limit_bytes: Option<u32>,
    pub transport_socket: Option<TypedExtension>,
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(default)]
    pub health_checks: Vec<ActiveHealthCheck>,
    pub common_lb_config: Option<CommonLbConfig>,
    pub upstream_connection_options: Option<UpstreamConnectionOptions>,
    /// A map of extension name to `Any`; only the upstream HTTP protocol options are read
    /// (`validate_upstream`).
    pub typed_extension_protocol_options: Option<Value>,
    /// Deprecated in v3 (still accepted by Envoy): the same options as the typed extension's.
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    pub http_protocol_options: Option<UpstreamHttp1Options>,
    /// Deprecated in v3 (still common): the cluster speaks HTTP/2 (`validate_upstream`).
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    pub upstream_http_protocol_options: Option<UpstreamHttpOptions>,
    pub outlier_detection: Option<OutlierDetection>,
    pub least_request_lb_config: Option<LeastRequestLbConfig>,
    pub ring_hash_lb_config: Option<RingHashLbConfig>,
    pub maglev_lb_config: Option<MaglevLbConfig>,
}

/// `Cluster.RingHashLbConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingHashLbConfig {
    pub minimum_ring_size: Option<u64>,
    pub maximum_ring_size: Option<u64>,
    pub hash_function: Option<EnumValue>,
}

/// `Cluster.MaglevLbConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaglevLbConfig {
    pub table_size: Option<u64>,
}

/// `Cluster.LeastRequestLbConfig` (`slow_start_config` is refused as unknown).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeastRequestLbConfig {
    pub choice_count: Option<u32>,
    pub active_request_bias: Option<RuntimeDouble>,
}

/// `envoy.config.core.v3.RuntimeDouble`. The runtime key names a key no layer can set
/// (`layered_runtime` refuses keys baton does not implement), so the default always applies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDouble {
    pub default_value: Option<f64>,
    pub runtime_key: Option<String>,
}

/// A cluster's `upstream_connection_options` (only `tcp_keepalive`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConnectionOptions {
    pub tcp_keepalive: Option<TcpKeepalive>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    pub keepalive_probes: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub keepalive_interval: Option<u32>,
}

/// `outlier_detection`. The fields baton refuses are read as plain values so the refusal can
/// name them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_failure: Option<u32>,
    pub consecutive_local_origin_failure: Option<u32>,
    pub split_external_local_origin_errors: Option<bool>,
    pub interval: Option<Dur>,
    pub base_ejection_time: Option<Dur>,
    pub max_ejection_time: Option<Dur>,
    pub max_ejection_time_jitter: Option<Dur>,
    pub max_ejection_percent: Option<u32>,
    pub always_eject_one_host: Option<bool>,
    pub enforcing_consecutive_5xx: Option<u32>,
    pub enforcing_consecutive_gateway_failure: Option<u32>,
    pub enforcing_consecutive_local_origin_failure: Option<u32>,
    pub enforcing_success_rate: Option<u32>,
    pub enforcing_local_origin_success_rate: Option<u32>,
    pub success_rate_minimum_hosts: Option<u32>,
    pub success_rate_request_volume: Option<u32>,
    pub success_rate_stdev_factor: Option<u32>,
    pub successful_active_health_check_uneject_host: Option<bool>,
    pub enforcing_failure_percentage: Option<u32>,
    pub enforcing_failure_percentage_local_origin: Option<u32>,
    pub failure_percentage_threshold: Option<Value>,
    pub failure_percentage_minimum_hosts: Option<Value>,
    pub failure_percentage_request_volume: Option<Value>,
    pub monitors: Option<Value>,
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`. The fields baton refuses are
/// read as plain values so the refusal can name them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamProtocolOptions {
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    pub upstream_http_protocol_options: Option<UpstreamHttpOptions>,
    pub explicit_http_config: Option<ExplicitHttpConfig>,
    pub use_downstream_protocol_config: Option<ExplicitHttpConfig>,
    pub auto_config: Option<Value>,
    pub http_filters: Option<Value>,
    pub header_validation_config: Option<Value>,
}

/// `explicit_http_config` and `use_downstream_protocol_config` (same fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitHttpConfig {
    pub http_protocol_options: Option<UpstreamHttp1Options>,
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    pub http3_protocol_options: Option<Value>,
}

/// `Http1ProtocolOptions` on a cluster: the fields Envoy's HTTP/1 client codec uses, and the
/// server-side ones it does not (accepted, as Envoy accepts them there).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamHttp1Options {
    pub accept_http_10: Option<bool>,
    pub default_host_for_http_10: Option<String>,
    pub allow_absolute_url: Option<bool>,
    pub header_key_format: Option<HeaderKeyFormat>,
}

/// `Http1ProtocolOptions.header_key_format`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderKeyFormat {
    pub proper_case_words: Option<Empty>,
    pub stateful_formatter: Option<Value>,
}

/// A message with no fields (`proper_case_words: {}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `UpstreamHttpProtocolOptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamHttpOptions {
    pub auto_sni: Option<bool>,
    pub auto_san_validation: Option<bool>,
    pub override_auto_sni_header: Option<String>,
}

/// `circuit_breakers` (`per_host_thresholds` is refused: see `UNSUPPORTED_FIELDS`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    #[serde(default)]
    pub thresholds: Vec<Thresholds>,
}

/// One `thresholds` entry (`max_connection_pools` is refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub priority: Option<EnumValue>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
    pub retry_budget: Option<RetryBudget>,
    #[serde(default)]
    pub track_remaining: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    pub budget_percent: Option<Percent>,
    pub min_retry_concurrency: Option<u32>,
}

/// `envoy.type.v3.Percent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

/// `Cluster.CommonLbConfig`: only the panic threshold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonLbConfig {
    pub healthy_panic_threshold: Option<Percent>,
    pub zone_aware_lb_config: Option<Value>,
    pub locality_weighted_lb_config: Option<Empty>,
    pub update_merge_window: Option<Value>,
    pub ignore_new_hosts_until_first_hc: Option<Value>,
    pub close_connections_on_host_set_change: Option<Value>,
    pub consistent_hashing_lb_config: Option<ConsistentHashing>,
    pub override_host_status: Option<Value>,
}

/// `CommonLbConfig.ConsistentHashingLbConfig` (bounded loads are refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistentHashing {
    pub use_hostname_for_hashing: Option<bool>,
    pub hash_balance_factor: Option<Value>,
}

/// `envoy.config.core.v3.HealthCheck` (a cluster's active health check). The fields baton
/// refuses are read as plain values so the refusal can name them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthCheck {
    pub timeout: Option<Dur>,
    pub interval: Option<Dur>,
    pub initial_jitter: Option<Dur>,
    pub interval_jitter: Option<Dur>,
    pub interval_jitter_percent: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub reuse_connection: Option<bool>,
    pub no_traffic_interval: Option<Dur>,
    pub no_traffic_healthy_interval: Option<Dur>,
    pub unhealthy_interval: Option<Dur>,
    pub unhealthy_edge_interval: Option<Dur>,
    pub healthy_edge_interval: Option<Dur>,
    pub http_health_check: Option<HttpHealthCheck>,
    pub tcp_health_check: Option<TcpHealthCheck>,
    pub grpc_health_check: Option<Value>,
    pub custom_health_check: Option<Value>,
    pub alt_port: Option<Value>,
    pub event_log_path: Option<Value>,
    pub event_logger: Option<Value>,
    pub event_service: Option<Value>,
    pub always_log_health_check_failures: Option<Value>,
    pub always_log_health_check_success: Option<Value>,
    pub tls_options: Option<Value>,
    pub transport_socket_match_criteria: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHealthCheck {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub expected_statuses: Vec<Int64Range>,
    pub codec_client_type: Option<EnumValue>,
    pub send: Option<Value>,
    pub receive: Option<Value>,
    pub response_buffer_size: Option<Value>,
    #[serde(default)]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    #[serde(default)]
    pub request_headers_to_remove: Vec<String>,
    #[serde(default)]
    pub retriable_statuses: Vec<Int64Range>,
    pub service_name_matcher: Option<Value>,
    pub method: Option<EnumValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpHealthCheck {
    pub send: Option<Payload>,
    #[serde(default)]
    pub receive: Vec<Payload>,
    pub proxy_protocol_config: Option<Value>,
}

/// A health check's request edits are a route's request edits (Envoy's header parser).
impl HeaderEdits for HttpHealthCheck {
    fn edits(&self) -> HeaderEditLists<'_> {
        HeaderEditLists {
            request_add: &self.request_headers_to_add,
            request_remove: &self.request_headers_to_remove,
            response_add: &[],
            response_remove: &[],
        }
    }
}

/// `HealthCheck.Payload`: hex `text` (Envoy's `binary` is not implemented there either).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub text: Option<String>,
    pub binary: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    #[serde(default)]
    pub endpoints: Vec<LocalityLbEndpoints>,
    pub policy: Option<LoadAssignmentPolicy>,
}

/// `ClusterLoadAssignment.Policy`: only the overprovisioning factor (the rest is refused as
/// unknown).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadAssignmentPolicy {
    pub overprovisioning_factor: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityLbEndpoints {
    pub locality: Option<Locality>,
    #[serde(default)]
    pub lb_endpoints: Vec<LbEndpoint>,
    /// The locality's share within its priority (locality-weighted balancing only).
    pub load_balancing_weight: Option<u32>,
    pub priority: Option<u32>,
}

/// `envoy.config.core.v3.Locality`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub sub_zone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbEndpoint {
    pub endpoint: Endpoint,
    /// Relative share of the cluster's traffic (Envoy: 1..=2^32-1, default 1).
    pub load_balancing_weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub address: Address,
    /// The host's name: the Host of `auto_host_rewrite`, shown in `/clusters`.
    #[serde(default)]
    pub hostname: String,
    pub health_check_config: Option<EndpointHealthCheck>,
}

/// `Endpoint.HealthCheckConfig` (`address` and `disable_active_health_check` are refused as
/// unknown).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointHealthCheck {
    pub port_value: Option<u32>,
    #[serde(default)]
    pub hostname: String,
}

/// A protobuf enum as YAML gives it: its name (usual) or its number (allowed by proto JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumValue {
    Name(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for EnumValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnumValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an enum name or number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<EnumValue, E> {
                Ok(EnumValue::Name(s.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<EnumValue, E> {
                i64::try_from(n)
                    .map(EnumValue::Number)
                    .map_err(|_| E::custom(format!("unknown value {n}")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<EnumValue, E> {
                Ok(EnumValue::Number(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// A protobuf `Duration`: `"0.25s"` as Envoy writes it, or `{seconds: N, nanos: M}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// Protobuf's upper bound for `Duration.seconds` (10,000 years).
const MAX_SECONDS: u64 = 315_576_000_000;

/// Parses Envoy's JSON form: decimal seconds with at most 9 fraction digits, then `s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected seconds ending in 's', e.g. \"0.25s\"");
    let body = s.strip_suffix('s').ok_or_else(bad)?;
    if body.starts_with('-') {
        return Err(format!("invalid duration {s:?}: must not be negative"));
    }
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 9 {
        return Err(bad());
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    if secs > MAX_SECONDS {
        return Err(format!("invalid duration {s:?}: too large"));
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(secs, nanos))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"0.25s\" or {seconds, nanos}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "invalid duration {n}: expected seconds ending in 's', e.g. \"{n}s\""
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                self.visit_u64(n.unsigned_abs())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "invalid duration {n}: expected seconds ending in 's', e.g. \"{n}s\""
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dur, A::Error> {
                let p = SecondsNanos::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if p.seconds < 0 || p.nanos < 0 || p.nanos > 999_999_999 {
                    return Err(de::Error::custom(format!(
                        "invalid duration {{seconds: {}, nanos: {}}}: must be non-negative with nanos < 1e9",
                        p.seconds, p.nanos
                    )));
                }
                if p.seconds as u64 > MAX_SECONDS {
                    return Err(de::Error::custom("invalid duration: too large"));
                }
                Ok(Dur(Duration::new(p.seconds as u64, p.nanos as u32)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondsNanos {
    #[serde(default)]
    seconds: i64,
    #[serde(default)]
    nanos: i64,
}

/// `envoy.config.core.v3.RuntimeFeatureFlag`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFeatureFlag {
    pub default_value: Option<bool>,
    pub runtime_key: Option<String>,
}

/// `envoy.extensions.filters.http.compressor.v3.Compressor`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compressor {
    /// Deprecated forms of `response_direction_config`'s fields, read when it is absent.
    pub content_length: Option<i64>,
    #[serde(default)]
    pub content_type: Vec<String>,
    pub disable_on_etag_header: Option<bool>,
    pub remove_accept_encoding_header: Option<bool>,
    pub runtime_enabled: Option<RuntimeFeatureFlag>,
    pub compressor_library: Option<TypedExtension>,
    pub request_direction_config: Option<Value>,
    pub response_direction_config: Option<CompressorResponseDirection>,
    pub choose_first: Option<bool>,
}

/// `Compressor.CommonDirectionConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressorCommon {
    pub enabled: Option<RuntimeFeatureFlag>,
    pub min_content_length: Option<i64>,
    #[serde(default)]
    pub content_type: Vec<String>,
}

/// `Compressor.ResponseDirectionConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressorResponseDirection {
    pub common_config: Option<CompressorCommon>,
    pub disable_on_etag_header: Option<bool>,
    pub remove_accept_encoding_header: Option<bool>,
    pub uncompressible_response_codes: Option<Value>,
}

/// `envoy.extensions.compression.gzip.compressor.v3.Gzip`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GzipCompressor {
    pub memory_level: Option<i64>,
    pub compression_level: Option<EnumValue>,
    pub compression_strategy: Option<EnumValue>,
    pub window_bits: Option<i64>,
    pub chunk_size: Option<i64>,
}

/// `envoy.extensions.filters.http.decompressor.v3.Decompressor`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decompressor {
    pub decompressor_library: Option<TypedExtension>,
    pub request_direction_config: Option<DecompressorRequestDirection>,
    pub response_direction_config: Option<DecompressorResponseDirection>,
}

/// `Decompressor.CommonDirectionConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecompressorCommon {
    pub enabled: Option<RuntimeFeatureFlag>,
    pub ignore_no_transform_header: Option<bool>,
    pub max_buffered_bytes: Option<i64>,
}

/// `Decompressor.RequestDirectionConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecompressorRequestDirection {
    pub common_config: Option<DecompressorCommon>,
    /// Accepted: it acts only with response decompression on, which baton refuses.
    #[serde(rename = "advertise_accept_encoding")]
    pub _advertise_accept_encoding: Option<bool>,
}

/// `Decompressor.ResponseDirectionConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecompressorResponseDirection {
    pub common_config: Option<DecompressorCommon>,
}

/// `envoy.extensions.compression.gzip.decompressor.v3.Gzip`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GzipDecompressor {
    pub window_bits: Option<i64>,
    pub chunk_size: Option<i64>,
    pub max_inflate_ratio: Option<i64>,
}

/// The TCP proxy's `tunneling_config` (`TcpProxy.TunnelingConfig`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelingConfig {
    pub hostname: Option<String>,
    pub use_post: Option<bool>,
    pub headers_to_add: Option<Vec<Value>>,
    pub propagate_response_headers: Option<bool>,
    pub post_path: Option<String>,
    pub propagate_response_trailers: Option<bool>,
    pub request_id_extension: Option<Value>,
    pub request_id_header: Option<String>,
    pub request_id_metadata_key: Option<String>,
}
