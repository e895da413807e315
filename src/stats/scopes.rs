//! The stats baton records, named as Envoy names them, resolved once to indices per listener,
//! HTTP connection manager and cluster. The data path reaches them through `Ctx::stats` and
//! records with one array write.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use super::{Counter, Gauge, Import, Store};

/// Envoy's server state, as /server_info and /ready report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Started, waiting for the first DNS answers (or, in a hot restart, for the handover).
    PreInitializing,
    Live,
    Draining,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::PreInitializing => "PRE_INITIALIZING",
            ServerState::Live => "LIVE",
            ServerState::Draining => "DRAINING",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ServerStats {
    pub live: Gauge,
    pub uptime: Gauge,
    pub hot_restart_epoch: Gauge,
    pub total_connections: Gauge,
    pub parent_connections: Gauge,
    /// Connections closed because handling them panicked (each costs only that connection).
    pub panics: Counter,
    /// Times accepting stopped because file descriptors ran out (once per episode).
    pub fd_exhausted: Counter,
    /// Access-log lines dropped because their file would not take them (stalled pipe, full
    /// disk).
    pub access_log_dropped: Counter,
}

/// `listener.<address>.*`
#[derive(Debug, Clone, Copy)]
pub struct ListenerStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_destroy: Counter,
    /// Connections closed at accept because the global connection limit was reached.
    pub downstream_global_cx_overflow: Counter,
    /// Connections closed at accept because the listener's runtime limit was reached.
    pub downstream_cx_overflow: Counter,
    /// Connections closed at accept by the overload manager's `reject_incoming_connections`.
    pub downstream_cx_overload_reject: Counter,
}

/// What the overload manager did to a request (`Stats::overloaded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overloaded {
    Request,
    KeepAlive,
}

/// Which connection limit closed a connection at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The overload manager's (or runtime's) global downstream connection limit.
    Global,
    /// The runtime's `envoy.resource_limits.listener.<name>.connection_limit`.
    Listener,
    /// The listener's connection limit network filter.
    Filter,
    /// The overload manager's `reject_incoming_connections`.
    Overload,
}

/// `<scope>.ssl.*`: a listener's TLS filter chains, or a cluster's TLS connections.
#[derive(Debug, Clone, Copy)]
pub struct SslStats {
    pub handshake: Counter,
    pub connection_error: Counter,
    pub no_certificate: Counter,
    pub fail_verify_no_cert: Counter,
    /// By `tls::names::VERSION_NAMES`.
    pub versions: [Counter; 2],
    /// By `tls::names::CIPHER_NAMES`.
    pub ciphers: [Counter; 9],
}

impl SslStats {
    fn new(store: &mut Store, scope: &str) -> SslStats {
        use crate::tls::names::{CIPHER_NAMES, VERSION_NAMES};
        let mut c = |n: &str| store.counter(&format!("{scope}.ssl.{n}"));
        SslStats {
            handshake: c("handshake"),
            connection_error: c("connection_error"),
            no_certificate: c("no_certificate"),
            fail_verify_no_cert: c("fail_verify_no_cert"),
            versions: VERSION_NAMES.map(|v| c(&format!("versions.{v}"))),
            ciphers: CIPHER_NAMES.map(|v| c(&format!("ciphers.{v}"))),
        }
    }

    /// Counts a handshake's outcome; `NoChain` is the listener's (`TlsStats`).
    fn record(&self, store: &mut Store, news: crate::tls::News) {
        #[cfg(feature = "tls")]
        match news {
            crate::tls::News::Handshake {
                version,
                cipher,
                peer_cert,
            } => {
                store.inc(self.handshake);
                if let Some(v) = self.versions.get(version) {
                    store.inc(*v);
                }
                if let Some(c) = cipher.and_then(|i| self.ciphers.get(i)) {
                    store.inc(*c);
                }
                if !peer_cert {
                    store.inc(self.no_certificate);
                }
            }
            crate::tls::News::Failed { no_cert } => {
                store.inc(self.connection_error);
                if no_cert {
                    store.inc(self.fail_verify_no_cert);
                }
            }
            crate::tls::News::NoChain => {}
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = store;
            match news {}
        }
    }
}

/// A listener with TLS filter chains: `listener.<address>.ssl.*` and its TLS-related
/// listener counters.
#[derive(Debug, Clone, Copy)]
pub struct TlsStats {
    pub ssl: SslStats,
    /// `listener.<address>.no_filter_chain_match`.
    pub no_filter_chain_match: Counter,
    /// `listener.<address>.downstream_cx_transport_socket_connect_timeout`.
    pub connect_timeout: Counter,
}

/// The PROXY protocol listener filter's counters: `downstream_cx_proxy_proto_error` and
/// `proxy_proto.[<stat_prefix>.]…` (in the root scope, as Envoy's listener filters count),
/// and the listener's `downstream_pre_cx_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct ProxyProtoStats {
    pub error: Counter,
    pub not_found_allowed: Counter,
    pub not_found_disallowed: Counter,
    /// `versions.v1.` and `versions.v2.`: found, disallowed, error.
    pub versions: [[Counter; 3]; 2],
    pub pre_cx_timeout: Counter,
}

/// `connection_limit.<stat_prefix>.*` of a listener's connection limit filter.
#[derive(Debug, Clone, Copy)]
pub struct LimitStats {
    pub limited_connections: Counter,
    pub active_connections: Gauge,
}

/// `http.<stat_prefix>.*`
#[derive(Debug, Clone, Copy)]
pub struct HttpStats {
    pub downstream_rq_total: Counter,
    /// 1xx..5xx.
    pub downstream_rq_class: [Counter; 5],
    pub downstream_rq_active: Gauge,
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_http1_total: Counter,
    pub rq_direct_response: Counter,
    /// Requests not received in full within `request_timeout` (408).
    pub downstream_rq_timeout: Counter,
    /// Paths refused (400) by the connection manager (fragment, escaped slash).
    pub downstream_rq_failed_path_normalization: Counter,
    /// Requests redirected (307) to their unescaped path.
    pub downstream_rq_redirected_with_normalized_path: Counter,
    pub no_route: Counter,
    pub downstream_cx_upgrades_total: Counter,
    pub downstream_cx_upgrades_active: Gauge,
    pub downstream_rq_ws_on_non_ws_route: Counter,
    /// Client connections that speak HTTP/2 (Envoy's `downstream_cx_http2_total`).
    pub downstream_cx_http2_total: Counter,
    /// Response-body bytes moved to clients with `splice(2)`, past our buffers (baton's own).
    pub downstream_cx_splice_bytes: Counter,
    /// Requests answered 503 by the overload manager's `stop_accepting_requests`.
    pub downstream_rq_overload_close: Counter,
    /// Responses that closed their connection by `disable_http_keepalive`.
    pub downstream_cx_overload_disable_keepalive: Counter,
}

/// The HTTP filters' counters of one connection manager (Envoy registers them only for a
/// chain with that filter).
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterStats {
    /// `cors.origin_valid`, `cors.origin_invalid`.
    pub cors: Option<[Counter; 2]>,
    /// `csrf.missing_source_origin`, `csrf.request_invalid`, `csrf.request_valid`.
    pub csrf: Option<[Counter; 3]>,
}

/// What one request added to `FilterStats`, in the same order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounts {
    pub cors: [u8; 2],
    pub csrf: [u8; 3],
}

/// `tcp.<stat_prefix>.*` of a TCP proxy listener.
#[derive(Debug, Clone, Copy)]
pub struct TcpStats {
    pub downstream_cx_total: Counter,
    /// Envoy's count of connections whose cluster was not found; baton refuses an unknown
    /// cluster at load, so it stays 0.
    pub downstream_cx_no_route: Counter,
    pub downstream_flow_control_paused_reading_total: Counter,
    pub downstream_flow_control_resumed_reading_total: Counter,
    pub idle_timeout: Counter,
    pub max_downstream_connection_duration: Counter,
}

/// `cluster.<name>.*`
#[derive(Debug, Clone, Copy)]
pub struct ClusterStats {
    pub upstream_cx_total: Counter,
    pub upstream_cx_active: Gauge,
    pub upstream_cx_connect_fail: Counter,
    pub upstream_cx_connect_timeout: Counter,
    pub upstream_cx_destroy: Counter,
    /// No host to connect to (an HTTP request's 503 UH, a TCP proxy connection closed).
    pub upstream_cx_none_healthy: Counter,
    /// A TCP proxy gave up after `max_connect_attempts` failed connects.
    pub upstream_cx_connect_attempts_exceeded: Counter,
    pub upstream_rq_total: Counter,
    /// 2xx..5xx (index 0 = 2xx).
    pub upstream_rq_class: [Counter; 4],
    pub upstream_rq_timeout: Counter,
    pub upstream_rq_pending_total: Counter,
    pub upstream_rq_retry: Counter,
    pub upstream_rq_retry_success: Counter,
    pub upstream_rq_retry_limit_exceeded: Counter,
    pub upstream_rq_retry_overflow: Counter,
    /// A connection the cluster needed was not opened: `max_connections` reached.
    pub upstream_cx_overflow: Counter,
    /// Pooled connections closed by the cluster's `idle_timeout`, `max_requests_per_connection`
    /// and `max_connection_duration` (Envoy's names).
    pub upstream_cx_idle_timeout: Counter,
    pub upstream_cx_max_requests: Counter,
    pub upstream_cx_max_duration_reached: Counter,
    /// Requests answered 503 `UO` by `max_pending_requests` or `max_requests`.
    pub upstream_rq_pending_overflow: Counter,
    pub upstream_rq_active: Gauge,
    pub upstream_rq_pending_active: Gauge,
    /// `circuit_breakers.default.*` and `circuit_breakers.high.*`.
    pub breakers: [BreakerGauges; 2],
    pub membership_healthy: Gauge,
    pub membership_total: Gauge,
    pub update_attempt: Counter,
    pub update_success: Counter,
    pub update_failure: Counter,
    pub lb_healthy_panic: Counter,
    /// A request body outgrew the buffer limit: its retries and shadows were given up.
    pub retry_or_shadow_abandoned: Counter,
}

/// Why the upstream pool closed a connection (a cluster's protocol options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolLimit {
    IdleTimeout,
    MaxRequests,
    MaxDuration,
}

/// `cluster.<name>.circuit_breakers.<priority>.*`: the breakers' state in this process
/// (limits are per process, so these are never added to a hot-restart parent's).
#[derive(Debug, Clone, Copy)]
pub struct BreakerGauges {
    /// `cx_open`, `rq_pending_open`, `rq_open`, `rq_retry_open`, by `Resource`.
    pub open: [Gauge; 4],
    /// Always 0: baton has no connection-pool limit (`max_connection_pools` is refused).
    pub cx_pool_open: Gauge,
    /// `remaining_cx`, `remaining_pending`, `remaining_rq`, `remaining_retries`, with
    /// `track_remaining`.
    pub remaining: Option<[Gauge; 4]>,
}

/// Priority names in stat names, by index of `ClusterRt::breakers`.
const PRIORITIES: [&str; 2] = ["default", "high"];

impl BreakerGauges {
    fn new(s: &mut Store, cluster: &str, prio: &str) -> BreakerGauges {
        let mut g = |n: &str| {
            s.gauge(
                &format!("{cluster}.circuit_breakers.{prio}.{n}"),
                Import::Never,
            )
        };
        BreakerGauges {
            open: [
                g("cx_open"),
                g("rq_pending_open"),
                g("rq_open"),
                g("rq_retry_open"),
            ],
            cx_pool_open: g("cx_pool_open"),
            remaining: None,
        }
    }
}

/// `cluster.<name>.outlier_detection.*` (Envoy's outlier detector stats), for a cluster with
/// `outlier_detection`. Per-kind arrays follow `cluster::outlier::KINDS`.
#[derive(Debug, Clone, Copy)]
pub struct OutlierStats {
    pub ejections_active: Gauge,
    pub ejections_overflow: Counter,
    pub ejections_enforced_total: Counter,
    pub ejections_detected: [Counter; 5],
    pub ejections_enforced: [Counter; 5],
}

/// `cluster.<name>.health_check.*` (Envoy's health checker stats).
#[derive(Debug, Clone, Copy)]
pub struct HealthStats {
    pub attempt: Counter,
    pub success: Counter,
    pub failure: Counter,
    pub network_failure: Counter,
    pub passive_failure: Counter,
    /// Never counted: baton has no `service_name_matcher` (Envoy counts it only with one).
    pub verify_cluster: Counter,
    pub healthy: Gauge,
    /// Always 0: baton does not read `x-envoy-degraded`.
    pub degraded: Gauge,
}

/// Per-host counters shown by /clusters (Envoy keeps these outside /stats too). Kept on the
/// host, so they follow it through DNS rebuilds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    pub cx_total: u64,
    pub cx_active: i64,
    pub cx_connect_fail: u64,
    pub rq_total: u64,
    pub rq_success: u64,
    pub rq_error: u64,
    pub rq_timeout: u64,
}

/// The registry plus the typed scopes and the process facts behind the `server.*` gauges.
#[derive(Debug)]
pub struct Stats {
    pub store: Store,
    pub server: ServerStats,
    /// Indexed like `Ctx::listeners`.
    pub listeners: Vec<ListenerStats>,
    /// Indexed like `Ctx::listeners`: an HTTP listener's connection manager's stats.
    pub http: Vec<Option<HttpStats>>,
    /// Indexed like `Ctx::listeners`: a TCP proxy listener's stats.
    pub tcp: Vec<Option<TcpStats>>,
    /// Indexed like `Ctx::clusters`.
    pub clusters: Vec<ClusterStats>,
    /// Indexed like `Ctx::listeners`: the connection limit filter's stats, when it has one.
    pub limits: Vec<Option<LimitStats>>,
    /// Indexed like `Ctx::listeners`: TLS stats of listeners with TLS filter chains.
    pub tls: Vec<Option<TlsStats>>,
    /// Indexed like `Ctx::listeners`: `listener.<address>.no_filter_chain_match` of plain
    /// listeners whose chains may match no connection.
    pub no_chain: Vec<Option<Counter>>,
    /// Indexed like `Ctx::listeners`: the PROXY protocol filter's counters.
    pub proxy_proto: Vec<Option<ProxyProtoStats>>,
    /// Indexed like `Ctx::clusters`: `cluster.<name>.ssl.*` of clusters with TLS.
    pub cluster_ssl: Vec<Option<SslStats>>,
    /// Indexed like `Ctx::clusters`: `cluster.<name>.health_check.*` of health-checked ones.
    pub health: Vec<Option<HealthStats>>,
    /// Indexed like `Ctx::listeners`: the HTTP filters' stats of its connection manager.
    pub filters: Vec<FilterStats>,
    pub outlier: Vec<Option<OutlierStats>>,
    state: ServerState,
    started: Instant,
    /// When epoch 0 started, for uptime_all_epochs.
    first_started: SystemTime,
    /// Set by `POST /healthcheck/fail`: /ready answers 503 until `/healthcheck/ok`.
    healthcheck_failed: bool,
}

/// Envoy writes a listener's address into its stat names with `:` as `_`:
/// `listener.0.0.0.0_10000.`, `listener.[__1]_10000.`.
pub fn listener_scope(addr: SocketAddr) -> String {
    format!("listener.{}", addr.to_string().replace(':', "_"))
}

fn classes<const N: usize>(s: &mut Store, scope: &str, stem: &str, first: usize) -> [Counter; N] {
    std::array::from_fn(|i| s.counter(&format!("{scope}.{stem}_{}xx", i + first)))
}

impl Stats {
    /// Registers every stat for these listeners (address, and the HCM's stat_prefix for an
    /// HTTP listener; a TCP proxy's are `add_tcp`'s) and clusters.
    pub fn new(listeners: &[(SocketAddr, Option<&str>)], clusters: &[&str]) -> Stats {
        let mut s = Store::default();
        let server = ServerStats {
            live: s.gauge("server.live", Import::Never),
            uptime: s.gauge("server.uptime", Import::Never),
            hot_restart_epoch: s.gauge("server.hot_restart_epoch", Import::Never),
            total_connections: s.gauge("server.total_connections", Import::Never),
            parent_connections: s.gauge("server.parent_connections", Import::Never),
            panics: s.counter("server.panics"),
            fd_exhausted: s.counter("server.fd_exhausted"),
            access_log_dropped: s.counter("access_logs.dropped_lines"),
        };
        let mut ls = Vec::new();
        let mut hs = Vec::new();
        for (addr, prefix) in listeners {
            let l = listener_scope(*addr);
            ls.push(ListenerStats {
                downstream_cx_total: s.counter(&format!("{l}.downstream_cx_total")),
                downstream_cx_active: s
                    .gauge(&format!("{l}.downstream_cx_active"), Import::Accumulate),
                downstream_cx_destroy: s.counter(&format!("{l}.downstream_cx_destroy")),
                downstream_global_cx_overflow: s
                    .counter(&format!("{l}.downstream_global_cx_overflow")),
                downstream_cx_overflow: s.counter(&format!("{l}.downstream_cx_overflow")),
                downstream_cx_overload_reject: s
                    .counter(&format!("{l}.downstream_cx_overload_reject")),
            });
            let Some(prefix) = prefix else {
                hs.push(None);
                continue;
            };
            let h = format!("http.{prefix}");
            hs.push(Some(HttpStats {
                downstream_rq_total: s.counter(&format!("{h}.downstream_rq_total")),
                downstream_rq_class: classes(&mut s, &h, "downstream_rq", 1),
                downstream_rq_active: s
                    .gauge(&format!("{h}.downstream_rq_active"), Import::Accumulate),
                downstream_cx_total: s.counter(&format!("{h}.downstream_cx_total")),
                downstream_cx_active: s
                    .gauge(&format!("{h}.downstream_cx_active"), Import::Accumulate),
                downstream_cx_http1_total: s.counter(&format!("{h}.downstream_cx_http1_total")),
                rq_direct_response: s.counter(&format!("{h}.rq_direct_response")),
                downstream_rq_timeout: s.counter(&format!("{h}.downstream_rq_timeout")),
                downstream_rq_failed_path_normalization: s
                    .counter(&format!("{h}.downstream_rq_failed_path_normalization")),
                downstream_rq_redirected_with_normalized_path: s.counter(&format!(
                    "{h}.downstream_rq_redirected_with_normalized_path"
                )),
                no_route: s.counter(&format!("{h}.no_route")),
                downstream_cx_upgrades_total: s
                    .counter(&format!("{h}.downstream_cx_upgrades_total")),
                downstream_cx_upgrades_active: s.gauge(
                    &format!("{h}.downstream_cx_upgrades_active"),
                    Import::Accumulate,
                ),
                downstream_rq_ws_on_non_ws_route: s
                    .counter(&format!("{h}.downstream_rq_ws_on_non_ws_route")),
                downstream_cx_http2_total: s.counter(&format!("{h}.downstream_cx_http2_total")),
                downstream_rq_overload_close: s
                    .counter(&format!("{h}.downstream_rq_overload_close")),
                downstream_cx_overload_disable_keepalive: s
                    .counter(&format!("{h}.downstream_cx_overload_disable_keepalive")),
                downstream_cx_splice_bytes: s.counter(&format!("{h}.downstream_cx_splice_bytes")),
            }));
        }
        let cs = clusters
            .iter()
            .map(|name| {
                let c = format!("cluster.{name}");
                let mut ctr = |n: &str| s.counter(&format!("{c}.{n}"));
                let upstream_cx_total = ctr("upstream_cx_total");
                let upstream_cx_connect_fail = ctr("upstream_cx_connect_fail");
                let upstream_cx_connect_timeout = ctr("upstream_cx_connect_timeout");
                let upstream_cx_destroy = ctr("upstream_cx_destroy");
                let upstream_cx_none_healthy = ctr("upstream_cx_none_healthy");
                let upstream_cx_connect_attempts_exceeded =
                    ctr("upstream_cx_connect_attempts_exceeded");
                let upstream_rq_total = ctr("upstream_rq_total");
                let upstream_rq_timeout = ctr("upstream_rq_timeout");
                let upstream_rq_pending_total = ctr("upstream_rq_pending_total");
                let upstream_rq_retry = ctr("upstream_rq_retry");
                let upstream_rq_retry_success = ctr("upstream_rq_retry_success");
                let upstream_rq_retry_limit_exceeded = ctr("upstream_rq_retry_limit_exceeded");
                let upstream_rq_retry_overflow = ctr("upstream_rq_retry_overflow");
                let upstream_cx_overflow = ctr("upstream_cx_overflow");
                let upstream_cx_idle_timeout = ctr("upstream_cx_idle_timeout");
                let upstream_cx_max_requests = ctr("upstream_cx_max_requests");
                let upstream_cx_max_duration_reached = ctr("upstream_cx_max_duration_reached");
                let upstream_rq_pending_overflow = ctr("upstream_rq_pending_overflow");
                let update_attempt = ctr("update_attempt");
                let update_success = ctr("update_success");
                let update_failure = ctr("update_failure");
                let lb_healthy_panic = ctr("lb_healthy_panic");
                let retry_or_shadow_abandoned = ctr("retry_or_shadow_abandoned");
                ClusterStats {
                    upstream_cx_total,
                    upstream_cx_active: s
                        .gauge(&format!("{c}.upstream_cx_active"), Import::Accumulate),
                    upstream_cx_connect_fail,
                    upstream_cx_connect_timeout,
                    upstream_cx_destroy,
                    upstream_cx_none_healthy,
                    upstream_cx_connect_attempts_exceeded,
                    upstream_rq_total,
                    upstream_rq_class: classes(&mut s, &c, "upstream_rq", 2),
                    upstream_rq_timeout,
                    upstream_rq_pending_total,
                    upstream_rq_retry,
                    upstream_rq_retry_success,
                    upstream_rq_retry_limit_exceeded,
                    upstream_rq_retry_overflow,
                    upstream_cx_overflow,
                    upstream_cx_idle_timeout,
                    upstream_cx_max_requests,
                    upstream_cx_max_duration_reached,
                    upstream_rq_pending_overflow,
                    upstream_rq_active: s
                        .gauge(&format!("{c}.upstream_rq_active"), Import::Accumulate),
                    upstream_rq_pending_active: s.gauge(
                        &format!("{c}.upstream_rq_pending_active"),
                        Import::Accumulate,
                    ),
                    breakers: PRIORITIES.map(|p| BreakerGauges::new(&mut s, &c, p)),
                    // Membership is this process's view of DNS: never imported.
                    membership_healthy: s.gauge(&format!("{c}.membership_healthy"), Import::Never),
                    membership_total: s.gauge(&format!("{c}.membership_total"), Import::Never),
                    update_attempt,
                    update_success,
                    update_failure,
                    retry_or_shadow_abandoned,
                    lb_healthy_panic,
                }
            })
            .collect();
        Stats {
            store: s,
            server,
            listeners: ls,
            tcp: listeners.iter().map(|_| None).collect(),
            http: hs,
            clusters: cs,
            limits: listeners.iter().map(|_| None).collect(),
            tls: listeners.iter().map(|_| None).collect(),
            no_chain: listeners.iter().map(|_| None).collect(),
            proxy_proto: listeners.iter().map(|_| None).collect(),
            cluster_ssl: clusters.iter().map(|_| None).collect(),
            health: clusters.iter().map(|_| None).collect(),
            filters: listeners.iter().map(|_| FilterStats::default()).collect(),
            outlier: clusters.iter().map(|_| None).collect(),
            state: ServerState::PreInitializing,
            started: Instant::now(),
            first_started: SystemTime::now(),
            healthcheck_failed: false,
        }
    }

    /// The state as reported (/ready, /server_info, server.live): Envoy reports DRAINING
    /// while health checks are failed by `/healthcheck/fail`.
    pub fn state(&self) -> ServerState {
        match self.state {
            ServerState::Live if self.healthcheck_failed => ServerState::Draining,
            s => s,
        }
    }

    /// Whether `/healthcheck/fail` is in force (the health check filter answers 503).
    pub fn healthcheck_failed(&self) -> bool {
        self.healthcheck_failed
    }

    /// `POST /healthcheck/fail` (true) and `/healthcheck/ok` (false).
    pub fn set_healthcheck_failed(&mut self, failed: bool) {
        self.healthcheck_failed = failed;
    }

    /// The hot-restart driver and the drain call this; `server.live` follows.
    pub fn set_state(&mut self, st: ServerState) {
        self.state = st;
    }

    /// A hot-restarted process: when epoch 0 started (the parent's value), so
    /// `uptime_all_epochs` spans every generation.
    pub fn set_first_started(&mut self, first_started: SystemTime) {
        self.first_started = first_started;
    }

    /// When epoch 0 started (to hand to the next generation).
    pub fn first_started(&self) -> SystemTime {
        self.first_started
    }

    /// Registers `http.<prefix>.cors.*` for listener `l`, whose chain has a CORS filter.
    pub fn add_cors(&mut self, l: usize, prefix: &str) {
        let mut c = |n: &str| self.store.counter(&format!("http.{prefix}.cors.{n}"));
        let st = [c("origin_valid"), c("origin_invalid")];
        if let Some(slot) = self.filters.get_mut(l) {
            slot.cors = Some(st);
        }
    }

    /// Registers `http.<prefix>.csrf.*` for listener `l`, whose chain has a CSRF filter.
    pub fn add_csrf(&mut self, l: usize, prefix: &str) {
        let mut c = |n: &str| self.store.counter(&format!("http.{prefix}.csrf.{n}"));
        let st = [
            c("missing_source_origin"),
            c("request_invalid"),
            c("request_valid"),
        ];
        if let Some(slot) = self.filters.get_mut(l) {
            slot.csrf = Some(st);
        }
    }

    /// Registers `<prefix>.http_local_rate_limit.{enabled,enforced,rate_limited,ok}` (one set
    /// per stat prefix, shared by the configs that name it).
    pub fn local_rate_limit(&mut self, prefix: &str) -> [Counter; 4] {
        let mut c = |n: &str| {
            self.store
                .counter(&format!("{prefix}.http_local_rate_limit.{n}"))
        };
        [c("enabled"), c("enforced"), c("rate_limited"), c("ok")]
    }

    /// Counts what the HTTP filters of listener `l` saw in one request.
    pub fn filter_counts(&mut self, l: usize, n: &FilterCounts) {
        let Some(f) = self.filters.get(l).copied() else {
            return;
        };
        let pairs = f
            .cors
            .iter()
            .flat_map(|c| c.iter().zip(n.cors))
            .chain(f.csrf.iter().flat_map(|c| c.iter().zip(n.csrf)));
        for (c, k) in pairs {
            if k > 0 {
                self.store.add(*c, u64::from(k));
            }
        }
    }

    /// Registers `connection_limit.<prefix>.*` for listener `l`.
    pub fn add_connection_limit(&mut self, l: usize, prefix: &str) {
        let c = format!("connection_limit.{prefix}");
        let st = LimitStats {
            limited_connections: self.store.counter(&format!("{c}.limited_connections")),
            active_connections: self
                .store
                .gauge(&format!("{c}.active_connections"), Import::Never),
        };
        if let Some(slot) = self.limits.get_mut(l) {
            *slot = Some(st);
        }
    }

    /// Registers `tcp.<prefix>.*` for listener `l`, a TCP proxy.
    pub fn add_tcp(&mut self, l: usize, prefix: &str) {
        let mut c = |n: &str| self.store.counter(&format!("tcp.{prefix}.{n}"));
        let st = TcpStats {
            downstream_cx_total: c("downstream_cx_total"),
            downstream_cx_no_route: c("downstream_cx_no_route"),
            downstream_flow_control_paused_reading_total: c(
                "downstream_flow_control_paused_reading_total",
            ),
            downstream_flow_control_resumed_reading_total: c(
                "downstream_flow_control_resumed_reading_total",
            ),
            idle_timeout: c("idle_timeout"),
            max_downstream_connection_duration: c("max_downstream_connection_duration"),
        };
        if let Some(slot) = self.tcp.get_mut(l) {
            *slot = Some(st);
        }
    }

    /// A TCP proxy connection on listener `l` began.
    pub fn tcp_begin(&mut self, l: usize) {
        if let Some(Some(t)) = self.tcp.get(l).copied() {
            self.store.inc(t.downstream_cx_total);
        }
    }

    /// A connection to cluster `c` was not made: it has no host (an HTTP request answered
    /// `503 UH`, a TCP proxy connection closed).
    pub fn none_healthy(&mut self, c: usize) {
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(cs.upstream_cx_none_healthy);
        }
    }

    /// Cluster `c`'s request gave up its retries and shadows (its body outgrew the buffer).
    pub fn retry_or_shadow_abandoned(&mut self, c: usize) {
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(cs.retry_or_shadow_abandoned);
        }
    }

    /// A TCP proxy event on listener `l`.
    pub fn tcp_stat(&mut self, l: usize, s: crate::http::core::TcpStat) {
        use crate::http::core::TcpStat;
        let cluster = |c: usize| self.clusters.get(c).copied();
        let ctr = match s {
            TcpStat::AttemptsExceeded(c) => {
                cluster(c).map(|c| c.upstream_cx_connect_attempts_exceeded)
            }
            TcpStat::NoneHealthy(c) => {
                self.none_healthy(c);
                return;
            }
            _ => {
                let Some(Some(t)) = self.tcp.get(l).copied() else {
                    return;
                };
                Some(match s {
                    TcpStat::IdleTimeout => t.idle_timeout,
                    TcpStat::MaxDuration => t.max_downstream_connection_duration,
                    TcpStat::FlowPaused => t.downstream_flow_control_paused_reading_total,
                    _ => t.downstream_flow_control_resumed_reading_total,
                })
            }
        };
        if let Some(c) = ctr {
            self.store.inc(c);
        }
    }

    /// Registers `listener.<address>.no_filter_chain_match` for plain listener `l`.
    pub fn add_no_chain(&mut self, l: usize, addr: SocketAddr) {
        let c = self
            .store
            .counter(&format!("{}.no_filter_chain_match", listener_scope(addr)));
        if let Some(slot) = self.no_chain.get_mut(l) {
            *slot = Some(c);
        }
    }

    /// Registers the PROXY protocol filter's counters for listener `l`.
    pub fn add_proxy_proto(&mut self, l: usize, addr: SocketAddr, stat_prefix: &str) {
        let p = if stat_prefix.is_empty() {
            "proxy_proto".to_string()
        } else {
            format!("proxy_proto.{stat_prefix}")
        };
        let mut version = |v: &str| {
            ["found", "disallowed", "error"]
                .map(|n| self.store.counter(&format!("{p}.versions.{v}.{n}")))
        };
        let versions = [version("v1"), version("v2")];
        let st = ProxyProtoStats {
            error: self.store.counter("downstream_cx_proxy_proto_error"),
            not_found_allowed: self.store.counter(&format!("{p}.not_found_allowed")),
            not_found_disallowed: self.store.counter(&format!("{p}.not_found_disallowed")),
            versions,
            pre_cx_timeout: self.store.counter(&format!(
                "{}.downstream_pre_cx_timeout",
                listener_scope(addr)
            )),
        };
        if let Some(slot) = self.proxy_proto.get_mut(l) {
            *slot = Some(st);
        }
    }

    /// How the PROXY header of a connection on listener `l` turned out.
    pub fn proxy_proto(&mut self, l: usize, outcome: &crate::proxy_protocol::Outcome) {
        use crate::proxy_protocol::{Outcome, Version};
        let Some(Some(st)) = self.proxy_proto.get(l).copied() else {
            return;
        };
        let v = |v: &Version| match v {
            Version::V1 => st.versions[0],
            Version::V2 => st.versions[1],
        };
        let (first, second) = match outcome {
            Outcome::Found(h) => (v(&h.version)[0], None),
            Outcome::Absent => (st.not_found_allowed, None),
            Outcome::Denied(ver) => (v(ver)[0], Some(v(ver)[1])),
            Outcome::Bad(Some(ver)) => (v(ver)[2], Some(st.error)),
            Outcome::Bad(None) => (st.not_found_disallowed, Some(st.error)),
        };
        self.store.inc(first);
        if let Some(c) = second {
            self.store.inc(c);
        }
    }

    /// A connection of listener `l` sent no PROXY header within `listener_filters_timeout`.
    pub fn pre_cx_timeout(&mut self, l: usize) {
        if let Some(Some(st)) = self.proxy_proto.get(l).copied() {
            self.store.inc(st.pre_cx_timeout);
        }
    }

    /// No filter chain of plain listener `l` matched a connection.
    pub fn no_chain(&mut self, l: usize) {
        if let Some(Some(c)) = self.no_chain.get(l).copied() {
            self.store.inc(c);
        }
    }

    /// Registers `listener.<address>.ssl.*` for listener `l`.
    pub fn add_tls(&mut self, l: usize, addr: SocketAddr) {
        let p = listener_scope(addr);
        let t = TlsStats {
            ssl: SslStats::new(&mut self.store, &p),
            no_filter_chain_match: self.store.counter(&format!("{p}.no_filter_chain_match")),
            connect_timeout: self.store.counter(&format!(
                "{p}.downstream_cx_transport_socket_connect_timeout"
            )),
        };
        if let Some(slot) = self.tls.get_mut(l) {
            *slot = Some(t);
        }
    }

    /// A request of cluster `c` was load balanced in panic mode.
    pub fn lb_healthy_panic(&mut self, c: usize) {
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(cs.lb_healthy_panic);
        }
    }

    /// Registers `cluster.<name>.health_check.*` for cluster `c` (Envoy creates them only for
    /// a cluster with a health checker). The gauges are this process's view: never imported.
    pub fn add_health_check(&mut self, c: usize, name: &str) {
        let p = format!("cluster.{name}.health_check");
        let mut ctr = |n: &str| self.store.counter(&format!("{p}.{n}"));
        let (attempt, success, failure) = (ctr("attempt"), ctr("success"), ctr("failure"));
        let (network_failure, passive_failure) = (ctr("network_failure"), ctr("passive_failure"));
        let verify_cluster = ctr("verify_cluster");
        let st = HealthStats {
            attempt,
            success,
            failure,
            network_failure,
            passive_failure,
            verify_cluster,
            healthy: self.store.gauge(&format!("{p}.healthy"), Import::Never),
            degraded: self.store.gauge(&format!("{p}.degraded"), Import::Never),
        };
        if let Some(slot) = self.health.get_mut(c) {
            *slot = Some(st);
        }
    }

    /// Registers `cluster.<name>.outlier_detection.*` for cluster `c`. The active gauge is
    /// this process's view: never imported.
    pub fn add_outlier_detection(&mut self, c: usize, name: &str) {
        let p = format!("cluster.{name}.outlier_detection");
        let kinds = crate::cluster::outlier::KINDS;
        let mut ctr = |n: &str| self.store.counter(&format!("{p}.{n}"));
        let ejections_overflow = ctr("ejections_overflow");
        let ejections_enforced_total = ctr("ejections_enforced_total");
        let ejections_detected = kinds.map(|k| ctr(&format!("ejections_detected_{}", k.name())));
        let ejections_enforced = kinds.map(|k| ctr(&format!("ejections_enforced_{}", k.name())));
        let st = OutlierStats {
            ejections_active: self
                .store
                .gauge(&format!("{p}.ejections_active"), Import::Never),
            ejections_overflow,
            ejections_enforced_total,
            ejections_detected,
            ejections_enforced,
        };
        if let Some(slot) = self.outlier.get_mut(c) {
            *slot = Some(st);
        }
    }

    /// Registers `cluster.<name>.ssl.*` for cluster `c`.
    pub fn add_cluster_ssl(&mut self, c: usize, name: &str) {
        let st = SslStats::new(&mut self.store, &format!("cluster.{name}"));
        if let Some(slot) = self.cluster_ssl.get_mut(c) {
            *slot = Some(st);
        }
    }

    /// Registers the `remaining_*` gauges of cluster `c`'s breakers of priority `prio`
    /// (`track_remaining`).
    pub fn track_remaining(&mut self, c: usize, name: &str, prio: usize) {
        let (Some(cs), Some(p)) = (self.clusters.get_mut(c), PRIORITIES.get(prio)) else {
            return;
        };
        let st = &mut self.store;
        let mut g = |n: &str| {
            st.gauge(
                &format!("cluster.{name}.circuit_breakers.{p}.{n}"),
                Import::Never,
            )
        };
        if let Some(b) = cs.breakers.get_mut(prio) {
            b.remaining = Some([
                g("remaining_cx"),
                g("remaining_pending"),
                g("remaining_rq"),
                g("remaining_retries"),
            ]);
        }
    }

    /// Shows the state of cluster `c`'s breakers of priority `prio` (0: DEFAULT, whose
    /// counts also give `upstream_rq_active` and `upstream_rq_pending_active`).
    pub fn breakers(&mut self, c: usize, prio: usize, b: &crate::cluster::breakers::Breakers) {
        use crate::cluster::breakers::Resource;
        let Some(cs) = self.clusters.get(c).copied() else {
            return;
        };
        let Some(g) = cs.breakers.get(prio).copied() else {
            return;
        };
        let st = &mut self.store;
        for r in Resource::ALL {
            st.set(g.open[r as usize], i64::from(b.open(r)));
            if let Some(rem) = g.remaining {
                let n = i64::try_from(b.remaining(r)).unwrap_or(i64::MAX);
                st.set(rem[r as usize], n);
            }
        }
        if prio == 0 {
            st.set(cs.upstream_rq_active, i64::from(b.count(Resource::Request)));
            st.set(
                cs.upstream_rq_pending_active,
                i64::from(b.count(Resource::Pending)),
            );
        }
    }

    /// `breakers` after a change of resource `r` only: the gauges of `r` (the others keep
    /// what the last full update gave them). Once or twice per request, so the cluster's ids
    /// are read in place, not copied.
    pub fn breaker(
        &mut self,
        c: usize,
        prio: usize,
        b: &crate::cluster::breakers::Breakers,
        r: crate::cluster::breakers::Resource,
    ) {
        use crate::cluster::breakers::Resource;
        let Some(cs) = self.clusters.get(c) else {
            return;
        };
        let Some(g) = cs.breakers.get(prio) else {
            return;
        };
        let st = &mut self.store;
        st.set(g.open[r as usize], i64::from(b.open(r)));
        if let Some(rem) = g.remaining {
            let n = i64::try_from(b.remaining(r)).unwrap_or(i64::MAX);
            st.set(rem[r as usize], n);
        }
        if prio == 0 {
            match r {
                Resource::Request => st.set(cs.upstream_rq_active, i64::from(b.count(r))),
                Resource::Pending => st.set(cs.upstream_rq_pending_active, i64::from(b.count(r))),
                _ => {}
            }
        }
    }

    /// Cluster `c` counted an overflow: `upstream_cx_overflow` (`connection`) or
    /// `upstream_rq_pending_overflow`.
    pub fn overflow(&mut self, c: usize, connection: bool) {
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(if connection {
                cs.upstream_cx_overflow
            } else {
                cs.upstream_rq_pending_overflow
            });
        }
    }

    /// Cluster `c`'s pool closed a connection for one of its limits.
    pub fn pool_limit(&mut self, c: usize, why: PoolLimit) {
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(match why {
                PoolLimit::IdleTimeout => cs.upstream_cx_idle_timeout,
                PoolLimit::MaxRequests => cs.upstream_cx_max_requests,
                PoolLimit::MaxDuration => cs.upstream_cx_max_duration_reached,
            });
        }
    }

    /// A TLS event on a client connection of listener `l`.
    pub fn tls_news(&mut self, l: usize, news: crate::tls::News) {
        let Some(Some(t)) = self.tls.get(l).copied() else {
            return;
        };
        #[cfg(feature = "tls")]
        if news == crate::tls::News::NoChain {
            self.store.inc(t.no_filter_chain_match);
        }
        t.ssl.record(&mut self.store, news);
    }

    /// A TLS event on an upstream connection of cluster `c`.
    pub fn cluster_tls_news(&mut self, c: usize, news: crate::tls::News) {
        if let Some(Some(st)) = self.cluster_ssl.get(c).copied() {
            st.record(&mut self.store, news);
        }
    }

    /// A TLS handshake on listener `l` did not finish in time.
    pub fn tls_timeout(&mut self, l: usize) {
        if let Some(Some(t)) = self.tls.get(l).copied() {
            self.store.inc(t.connect_timeout);
        }
    }

    /// A connection to listener `l` was closed at accept, over the limit `why`.
    pub fn cx_refused(&mut self, l: usize, why: Refused) {
        let counter = match why {
            Refused::Global => self
                .listeners
                .get(l)
                .map(|ls| ls.downstream_global_cx_overflow),
            Refused::Listener => self.listeners.get(l).map(|ls| ls.downstream_cx_overflow),
            Refused::Overload => self
                .listeners
                .get(l)
                .map(|ls| ls.downstream_cx_overload_reject),
            Refused::Filter => self
                .limits
                .get(l)
                .copied()
                .flatten()
                .map(|ls| ls.limited_connections),
        };
        if let Some(c) = counter {
            self.store.inc(c);
        }
    }

    /// The connections open on listener `l` now (its connection limit filter's gauge).
    pub fn limit_active(&mut self, l: usize, n: usize) {
        if let Some(Some(ls)) = self.limits.get(l).copied() {
            self.store.set(ls.active_connections, n as i64);
        }
    }

    /// Accepting stopped for lack of file descriptors (a new episode).
    pub fn fd_exhausted(&mut self) {
        let c = self.server.fd_exhausted;
        self.store.inc(c);
    }

    /// `n` access-log lines were dropped.
    pub fn access_log_dropped(&mut self, n: u64) {
        let c = self.server.access_log_dropped;
        self.store.add(c, n);
    }

    /// Handling one connection panicked; it was closed and the process goes on.
    pub fn panic(&mut self) {
        let c = self.server.panics;
        self.store.inc(c);
    }

    /// The parent's live connection count (`server.parent_connections`); 0 once it is gone.
    pub fn set_parent_connections(&mut self, n: i64) {
        let g = self.server.parent_connections;
        self.store.set(g, n);
    }

    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    pub fn uptime_all_epochs(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.first_started)
            .unwrap_or_default()
    }

    /// Brings the derived `server.*` gauges up to date; called before any read-out.
    pub fn refresh(&mut self, now: Instant, epoch: u32) {
        let own: i64 = self
            .listeners
            .iter()
            .map(|l| self.store.gauge_value(l.downstream_cx_active))
            .sum();
        let sv = self.server;
        let parent = self.store.gauge_value(sv.parent_connections);
        let live = i64::from(self.state() == ServerState::Live);
        let up = self.uptime(now).as_secs() as i64;
        self.store.set(sv.total_connections, own + parent);
        self.store.set(sv.live, live);
        self.store.set(sv.uptime, up);
        self.store.set(sv.hot_restart_epoch, i64::from(epoch));
    }

    /// A client connection was accepted on listener `l`.
    #[inline]
    pub fn cx_open(&mut self, l: usize, http: bool) {
        let st = &mut self.store;
        if let Some(ls) = self.listeners.get(l).copied() {
            st.inc(ls.downstream_cx_total);
            st.gauge_add(ls.downstream_cx_active, 1);
        }
        if http {
            self.cx_open_http(l);
        }
    }

    /// A client connection on unit `l` counts for its connection manager (once its chain is
    /// chosen).
    pub fn cx_open_http(&mut self, l: usize) {
        let st = &mut self.store;
        if let Some(Some(hs)) = self.http.get(l).copied() {
            st.inc(hs.downstream_cx_total);
            st.inc(hs.downstream_cx_http1_total);
            st.gauge_add(hs.downstream_cx_active, 1);
        }
    }

    /// A client connection on listener `l` closed.
    #[inline]
    pub fn cx_close(&mut self, l: usize, http: bool) {
        let st = &mut self.store;
        if let Some(ls) = self.listeners.get(l).copied() {
            st.inc(ls.downstream_cx_destroy);
            st.gauge_add(ls.downstream_cx_active, -1);
        }
        if let (Some(Some(hs)), true) = (self.http.get(l).copied(), http) {
            st.gauge_add(hs.downstream_cx_active, -1);
        }
    }

    /// The overload manager acted on a request of listener `l`: answered it 503
    /// (`Overloaded::Request`) or closed its connection after the response.
    pub fn overloaded(&mut self, l: usize, what: Overloaded) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(match what {
                Overloaded::Request => h.downstream_rq_overload_close,
                Overloaded::KeepAlive => h.downstream_cx_overload_disable_keepalive,
            });
        }
    }

    /// A client connection on listener `l` speaks HTTP/2.
    pub fn http2_started(&mut self, l: usize) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(h.downstream_cx_http2_total);
        }
    }

    /// A retry counter of cluster `c`.
    pub fn retry(&mut self, c: usize, s: crate::http::core::RetryStat) {
        use crate::http::core::RetryStat;
        if let Some(cs) = self.clusters.get(c).copied() {
            self.store.inc(match s {
                RetryStat::Retry => cs.upstream_rq_retry,
                RetryStat::Success => cs.upstream_rq_retry_success,
                RetryStat::LimitExceeded => cs.upstream_rq_retry_limit_exceeded,
                RetryStat::Overflow => cs.upstream_rq_retry_overflow,
            });
        }
    }

    /// The connection manager refused (400) or redirected (307) a request for its path.
    pub fn path_answered(&mut self, l: usize, status: u16) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(if status == 307 {
                h.downstream_rq_redirected_with_normalized_path
            } else {
                h.downstream_rq_failed_path_normalization
            });
        }
    }

    /// A request on listener `l` was not received in full within `request_timeout`.
    pub fn request_timeout(&mut self, l: usize) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(h.downstream_rq_timeout);
        }
    }

    pub fn direct_response(&mut self, l: usize) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(h.rq_direct_response);
        }
    }

    /// A tunnel (upgrade or CONNECT) on listener `l` opened (`true`) or ended.
    pub fn tunnel(&mut self, l: usize, open: bool) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            if open {
                self.store.inc(h.downstream_cx_upgrades_total);
            }
            self.store
                .gauge_add(h.downstream_cx_upgrades_active, if open { 1 } else { -1 });
        }
    }

    /// A tunnel (and its request) on listener `l` left for another process (`out`) or arrived
    /// from one: only the active gauges move.
    pub fn tunnel_moved(&mut self, l: usize, out: bool) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            let d = if out { -1 } else { 1 };
            self.store.gauge_add(h.downstream_cx_upgrades_active, d);
            self.store.gauge_add(h.downstream_rq_active, d);
        }
    }

    /// An upgrade request on listener `l` was refused (403).
    pub fn upgrade_refused(&mut self, l: usize) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.inc(h.downstream_rq_ws_on_non_ws_route);
        }
    }

    /// `n` response-body bytes went to a client of listener `l` by splicing.
    pub fn spliced(&mut self, l: usize, n: u64) {
        if let Some(Some(h)) = self.http.get(l).copied() {
            self.store.add(h.downstream_cx_splice_bytes, n);
        }
    }

    /// A client connection on listener `l` moved to the new process.
    pub fn cx_moved(&mut self, l: usize) {
        if let Some(ls) = self.listeners.get(l).copied() {
            self.store.gauge_add(ls.downstream_cx_active, -1);
        }
        if let Some(Some(hs)) = self.http.get(l).copied() {
            self.store.gauge_add(hs.downstream_cx_active, -1);
        }
    }

    /// Status class index 0..=4 for 1xx..5xx; None for anything else (0 = no response).
    pub fn class(status: u16) -> Option<usize> {
        match status {
            100..=599 => Some(status as usize / 100 - 1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_names_are_registered() {
        let a: SocketAddr = "0.0.0.0:10000".parse().unwrap();
        let b: SocketAddr = "[::1]:80".parse().unwrap();
        let mut s = Stats::new(
            &[(a, Some("ingress_http")), (b, Some("ingress_http"))],
            &["some_service"],
        );
        s.cx_open(0, true);
        s.cx_open(1, true);
        s.cx_close(1, true);
        s.set_state(ServerState::Live);
        s.refresh(Instant::now(), 0);
        let g = |n: &str| s.store.get(n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(g("listener.0.0.0.0_10000.downstream_cx_total"), 1);
        assert_eq!(g("listener.[__1]_80.downstream_cx_destroy"), 1);
        assert_eq!(g("http.ingress_http.downstream_cx_total"), 2);
        assert_eq!(g("http.ingress_http.downstream_cx_active"), 1);
        assert_eq!(g("server.total_connections"), 1);
        assert_eq!(g("server.live"), 1);
        for n in [
            "downstream_rq_1xx",
            "downstream_rq_5xx",
            "no_route",
            "rq_direct_response",
            "downstream_cx_upgrades_total",
            "downstream_cx_upgrades_active",
            "downstream_rq_ws_on_non_ws_route",
        ] {
            g(&format!("http.ingress_http.{n}"));
        }
        for n in [
            "upstream_rq_2xx",
            "upstream_rq_5xx",
            "membership_total",
            "update_failure",
            "lb_healthy_panic",
        ] {
            g(&format!("cluster.some_service.{n}"));
        }
        assert_eq!(Stats::class(204), Some(1));
        assert_eq!(Stats::class(0), None);
    }
}
