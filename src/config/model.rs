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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub hcm: HttpConnectionManager,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// Lower-cased as given: exact names, `*`, `*.suffix`/`*suffix`, `prefix*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    Prefix(String),
    Path(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Default true.
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(ForwardAction),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAction {
    pub cluster: ClusterSpec,
    pub prefix_rewrite: Option<String>,
    /// Default 15 s; `None` when configured 0s (disabled).
    pub timeout: Option<Duration>,
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
}
