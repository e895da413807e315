//! What every connection handler may touch besides its own connection: the registry, buffer
//! pool, clusters, the upstream pool, timers, and the process-wide state (draining, date).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::access_log::AccessLogs;
use crate::cluster::ClusterRt;
use crate::config::{AccessLog, ConnectionLimit, HttpConnectionManager, TcpProxy};
use crate::fds::Reserve;
use crate::http::buf::BufPool;
use crate::http::upstream::UpPool;
use crate::reactor::Timers;
use crate::route::Router;
use crate::stats::Stats;
use crate::util::{http_date, RequestIds, Rng};

/// A listener's configuration as the data path needs it, one per different terminal filter
/// of its filter chains (a "unit"): `Ctx::listeners` holds the units of every listener, those
/// of one listener next to each other. Everything but `serve` and `limits` is the listener's.
#[derive(Debug)]
pub struct ListenerRt {
    pub name: String,
    pub address: SocketAddr,
    /// What this unit serves: HTTP (connection manager and router) or a TCP proxy.
    pub serve: Serve,
    /// The listener's index among the configured listeners (its socket's, in the proxy and the
    /// hot-restart machine).
    pub home: usize,
    /// The index of the listener's first unit in `Ctx::listeners`: a chain's unit is this plus
    /// its `terminal`.
    pub first_unit: usize,
    /// The listener's filter chains (for choosing one without a ClientHello, and to name the
    /// chain of a connection handed over in a hot restart).
    pub chains: std::rc::Rc<[crate::config::FilterChainTls]>,
    /// Most connections open at once (the connection limit network filter).
    pub connection_limit: Option<ConnectionLimit>,
    /// `--service-cluster` (or the bootstrap's `node.cluster`): the health check filter's
    /// `x-envoy-upstream-healthchecked-cluster`.
    pub service_cluster: String,
    /// Most connections open at once (the runtime's per-listener connection limit).
    pub runtime_connection_limit: Option<u64>,
    /// Filter chains chosen by the ClientHello (or with TLS); `None`: chosen at accept.
    pub tls: Option<std::rc::Rc<crate::tls::ListenerTls>>,
    /// `per_connection_buffer_limit_bytes`: the bound of a connection's client-side buffers.
    pub per_connection_buffer_limit_bytes: u32,
    /// How the listening socket is made (its options).
    pub socket: crate::config::ListenerSocket,
    /// What each connection's core needs of the above, built once and shared.
    pub limits: std::rc::Rc<crate::http::core::Limits>,
    /// The PROXY protocol listener filter: each connection's header is read first.
    pub proxy_protocol: Option<crate::config::ProxyProtocol>,
    /// `listener_filters_timeout`: how long the listener filters may wait for their bytes.
    pub inspect_timeout: std::time::Duration,
}

/// A listener's terminal filter at run time.
#[derive(Debug)]
pub enum Serve {
    Http(Box<HttpRt>),
    Tcp(TcpProxy),
}

/// An HTTP listener's connection manager and its compiled routes.
#[derive(Debug)]
pub struct HttpRt {
    pub hcm: HttpConnectionManager,
    pub router: Router,
    /// With `add_user_agent`: this proxy's service cluster and node (`--service-cluster`,
    /// `--service-node`, else the bootstrap's `node`), named to upstreams.
    pub user_agent: Option<(String, String)>,
}

impl ListenerRt {
    /// The unit that serves filter chain `chain` of this unit's listener.
    pub fn unit_of(&self, chain: usize) -> usize {
        self.first_unit + self.chains.get(chain).map_or(0, |c| c.terminal)
    }

    /// The first chain this unit serves (hot restart names it to a successor).
    pub fn chain_index(&self, unit: usize) -> Option<usize> {
        let t = unit.checked_sub(self.first_unit)?;
        self.chains.iter().position(|c| c.terminal == t)
    }

    /// The connection manager and router of an HTTP listener.
    pub fn http(&self) -> Option<&HttpRt> {
        match &self.serve {
            Serve::Http(h) => Some(h),
            Serve::Tcp(_) => None,
        }
    }

    /// The TCP proxy of a tcp_proxy listener.
    pub fn tcp(&self) -> Option<&TcpProxy> {
        match &self.serve {
            Serve::Tcp(t) => Some(t),
            Serve::Http(_) => None,
        }
    }

    /// The terminal filter's access loggers.
    pub fn access_log(&self) -> &[AccessLog] {
        match &self.serve {
            Serve::Http(h) => &h.hcm.access_log,
            Serve::Tcp(t) => &t.access_log,
        }
    }
}

/// The restart protocol's stats message carries the first epoch's start (Unix ms) as this
/// gauge. An older child without this rule just shows it as a gauge while its parent lives;
/// an older parent does not send it, and the child then counts from its own start.
pub const FIRST_START_GAUGE: &str = "server.hot_restart.first_start_unix_ms";

/// What every connection handler may touch besides its own connection. The process-wide
/// lifecycle (`now`, draining, handoff, epoch) is private here and changed only through the
/// methods below; the upstream pool is `UpPool`'s (http::upstream), written only there.
pub struct Ctx {
    pub registry: mio::Registry,
    pub pool: BufPool,
    /// Exchange records and head buffers kept for the next request.
    pub spares: crate::http::core::Spares,
    pub clusters: Vec<ClusterRt>,
    /// Read-only after start-up: every listener's units (see `ListenerRt`).
    pub listeners: Vec<ListenerRt>,
    /// Each configured listener's first unit in `listeners`, by the listener's index.
    pub homes: Vec<usize>,
    /// The local rate limits' token buckets (written by `http::filters` only).
    pub(crate) limits: crate::http::filters::RateLimits,
    /// The RBAC filters' counters (read by `http::rbac` only).
    pub(crate) rbac: crate::http::rbac::RbacStats,
    /// The fault filters' counters (read by `http::fault` only).
    pub(crate) faults: crate::http::fault::FaultStats,
    /// The compressor and decompressor filters' configs and counters.
    pub(crate) compress: crate::http::compress::CompressStats,
    /// The ext_authz filters' counters.
    pub(crate) ext_authz: crate::http::ext_authz::ExtAuthzStats,
    /// Upstream connections: idle pool, slot owners, connect throttling and waiters.
    pub upstreams: UpPool,
    pub timers: Timers,
    pub rng: Rng,
    /// x-request-id values, from the kernel's CSPRNG.
    pub request_ids: RequestIds,
    /// Descriptors held back for the admin interface and the restart socket.
    pub fd_reserve: Reserve,
    /// Envoy-named counters and gauges, indexed per listener and cluster (see `observe`).
    pub stats: Stats,
    /// HCM file access logs; empty when none is configured.
    pub access_logs: AccessLogs,
    /// Idle pipes for splicing response bodies.
    pub pipes: crate::http::splice::PipePool,
    now: Instant,
    /// Set once SIGTERM (or a handover) starts the drain: responses carry Connection: close.
    draining: bool,
    /// Draining with a live successor: idle connections move to it instead of closing, so
    /// responses keep their keep-alive.
    handoff: bool,
    /// Hot-restart epoch of this process (0 for a fresh start).
    epoch: u32,
    date: String,
    date_secs: u64,
    /// The Zipkin reporters; `None` when no connection manager traces.
    pub tracer: Option<Box<crate::tracing::collector::Tracer>>,
    /// Shadow requests in flight (`request_mirror_policies`).
    pub mirrors: crate::http::mirror::Mirrors,
    /// The overload manager's action states (`overload`).
    pub overload: crate::overload::OverloadRt,
}

impl Ctx {
    pub fn new(
        registry: mio::Registry,
        clusters: Vec<ClusterRt>,
        listeners: Vec<ListenerRt>,
        access_logs: AccessLogs,
    ) -> Ctx {
        let ls: Vec<_> = listeners
            .iter()
            .map(|l| (l.address, l.http().map(|h| h.hcm.stat_prefix.as_str())))
            .collect();
        let cs: Vec<&str> = clusters.iter().map(|c| c.cfg.name.as_str()).collect();
        let mut stats = Stats::new(&ls, &cs);
        for (i, l) in listeners.iter().enumerate() {
            if let Some(t) = l.tcp() {
                stats.add_tcp(i, &t.stat_prefix);
            }
            if let Some(h) = l.http() {
                for f in &h.hcm.http_filters {
                    match f.kind {
                        crate::config::HttpFilterKind::Cors => {
                            stats.add_cors(i, &h.hcm.stat_prefix)
                        }
                        crate::config::HttpFilterKind::Csrf(_) => {
                            stats.add_csrf(i, &h.hcm.stat_prefix)
                        }
                        crate::config::HttpFilterKind::HealthCheck(_)
                        | crate::config::HttpFilterKind::LocalRateLimit(_)
                        | crate::config::HttpFilterKind::Rbac(_)
                        | crate::config::HttpFilterKind::Fault(_)
                        | crate::config::HttpFilterKind::Compressor(_)
                        | crate::config::HttpFilterKind::Decompressor(_) => {}
                        crate::config::HttpFilterKind::ExtAuthz(_) => {}
                    }
                }
            }
            if let Some(cl) = &l.connection_limit {
                stats.add_connection_limit(i, &cl.stat_prefix);
            }
            if let Some(p) = &l.proxy_protocol {
                stats.add_proxy_proto(i, l.address, &p.stat_prefix);
            }
            if l.tls.is_some() {
                stats.add_tls(i, l.address);
            } else if !crate::chains::trivial(&l.chains) {
                stats.add_no_chain(i, l.address);
            }
        }
        for (i, c) in clusters.iter().enumerate() {
            if c.cfg.tls.is_some() {
                stats.add_cluster_ssl(i, &c.cfg.name);
            }
            for (p, b) in c.breakers.iter().enumerate() {
                if b.limits.track_remaining {
                    stats.track_remaining(i, &c.cfg.name, p);
                }
                stats.breakers(i, p, b);
            }
            if c.cfg.health_check.is_some() {
                stats.add_health_check(i, &c.cfg.name);
            }
            if c.cfg.outlier_detection.is_some() {
                stats.add_outlier_detection(i, &c.cfg.name);
            }
        }
        let limits = crate::http::filters::RateLimits::new(&listeners, &mut stats, Instant::now());
        let homes = (0..listeners.len())
            .filter(|&u| listeners[u].first_unit == u)
            .collect();
        let rbac = crate::http::rbac::RbacStats::new(&listeners, &mut stats);
        let faults = crate::http::fault::FaultStats::new(&listeners, &mut stats);
        let compress = crate::http::compress::CompressStats::new(&listeners, &mut stats);
        let ext_authz = crate::http::ext_authz::ExtAuthzStats::new(&listeners, &mut stats);
        Ctx {
            homes,
            limits,
            rbac,
            faults,
            compress,
            ext_authz,
            stats,
            access_logs,
            registry,
            pool: BufPool::default(),
            spares: Default::default(),
            clusters,
            listeners,
            upstreams: UpPool::default(),
            timers: Timers::default(),
            rng: Rng::from_entropy(),
            request_ids: RequestIds::default(),
            fd_reserve: Reserve::new(),
            pipes: Default::default(),
            draining: false,
            handoff: false,
            now: Instant::now(),
            epoch: 0,
            date: String::new(),
            date_secs: u64::MAX,
            tracer: None,
            mirrors: Default::default(),
            overload: Default::default(),
        }
    }

    /// The time of the current event batch (read once per poll).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A new event batch starts.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The first unit of configured listener `k` (its name, address and limits are every
    /// unit's).
    pub fn home(&self, k: usize) -> Option<&ListenerRt> {
        self.listeners.get(*self.homes.get(k)?)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Draining with a successor to hand idle connections to.
    pub fn handoff(&self) -> bool {
        self.handoff
    }

    /// Starts the drain; `handoff` when a successor takes idle connections.
    pub fn start_drain(&mut self, handoff: bool) {
        self.draining = true;
        self.handoff = handoff;
    }

    /// The successor went away: connections can only be closed at safe points now.
    pub fn end_handoff(&mut self) {
        self.handoff = false;
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn set_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
    }

    /// Whether client connections should end after their current exchange: draining with no
    /// successor to hand them to.
    pub fn closing(&self) -> bool {
        self.draining && !self.handoff
    }

    /// All stats as (name, value) lists, for a child process to continue from, plus the
    /// first epoch's start as the gauge `FIRST_START_GAUGE` (see docs/hot-restart.md).
    pub fn stats_snapshot(&self) -> baton_statemachine::StatsSnapshot {
        let mut s = self.stats.store.snapshot();
        let ms = self
            .stats
            .first_started()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        s.gauges.push((FIRST_START_GAUGE.to_string(), ms));
        s
    }

    /// Adds a parent's stats to ours (counters continue; gauges are the parent's live values).
    /// The parent's first-epoch start, when it sent one, becomes ours (it is not a stat).
    pub fn stats_merge(&mut self, mut s: baton_statemachine::StatsSnapshot) {
        if let Some(i) = s.gauges.iter().position(|(n, _)| n == FIRST_START_GAUGE) {
            let (_, ms) = s.gauges.swap_remove(i);
            if let Ok(ms) = u64::try_from(ms) {
                let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
                // Only ever earlier: a generation never started before its ancestors.
                if t < self.stats.first_started() {
                    self.stats.set_first_started(t);
                }
            }
        }
        self.stats.store.merge_parent(&s);
    }

    /// The Date header value, formatted at most once a second.
    pub fn date(&mut self) -> &str {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.date_secs {
            self.date = http_date(secs);
            self.date_secs = secs;
        }
        &self.date
    }
}
