//! What every connection handler may touch besides its own connection: the registry, buffer
//! pool, clusters, idle upstream pool, timers, and the process-wide state (draining, date).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::access_log::AccessLogs;
use crate::cluster::ClusterRt;
use crate::config::HttpConnectionManager;
use crate::http::buf::BufPool;
use crate::http::upstream::UpConn;
use crate::reactor::Timers;
use crate::route::Router;
use crate::stats::Stats;
use crate::util::{http_date, Rng, Slab};

/// A listener's configuration as the data path needs it.
#[derive(Debug)]
pub struct ListenerRt {
    pub name: String,
    pub address: SocketAddr,
    pub hcm: HttpConnectionManager,
    pub router: Router,
}

pub struct Ctx {
    pub registry: mio::Registry,
    pub pool: BufPool,
    pub clusters: Vec<ClusterRt>,
    pub listeners: Vec<ListenerRt>,
    /// Idle keep-alive upstream connections, each registered as `Tok::Idle(index)`.
    pub idle: Slab<UpConn>,
    /// Idle connections per upstream address, most recently used last.
    pub idle_by_addr: HashMap<SocketAddr, Vec<usize>>,
    pub timers: Timers,
    pub rng: Rng,
    /// Set once SIGTERM (or a handover) starts the drain: responses carry Connection: close.
    pub draining: bool,
    pub now: Instant,
    /// Envoy-named counters and gauges, indexed per listener and cluster (see `observe`).
    pub stats: Stats,
    /// HCM file access logs; empty when none is configured.
    pub access_logs: AccessLogs,
    date: String,
    date_secs: u64,
}

impl Ctx {
    pub fn new(
        registry: mio::Registry,
        clusters: Vec<ClusterRt>,
        listeners: Vec<ListenerRt>,
    ) -> Ctx {
        let ls: Vec<_> = listeners
            .iter()
            .map(|l| (l.address, l.hcm.stat_prefix.as_str()))
            .collect();
        let cs: Vec<&str> = clusters.iter().map(|c| c.cfg.name.as_str()).collect();
        let stats = Stats::new(&ls, &cs);
        Ctx {
            stats,
            access_logs: AccessLogs::default(),
            registry,
            pool: BufPool::default(),
            clusters,
            listeners,
            idle: Slab::default(),
            idle_by_addr: HashMap::new(),
            timers: Timers::default(),
            rng: Rng::from_entropy(),
            draining: false,
            now: Instant::now(),
            date: String::new(),
            date_secs: u64::MAX,
        }
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
