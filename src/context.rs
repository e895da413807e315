//! What every connection handler may touch besides its own connection: the registry, buffer
//! pool, clusters, idle upstream pool, timers, and the process-wide state (draining, date).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::access_log::AccessLogs;
use crate::cluster::ClusterRt;
use crate::config::HttpConnectionManager;
use crate::http::buf::BufPool;
use crate::http::upstream::{UpConn, UpOwner};
use crate::reactor::Timers;
use crate::route::Router;
use crate::stats::Stats;
use crate::util::{http_date, FastMap, Rng, Slab};

/// A listener's configuration as the data path needs it.
#[derive(Debug)]
pub struct ListenerRt {
    pub name: String,
    pub address: SocketAddr,
    pub hcm: HttpConnectionManager,
    pub router: Router,
}

/// Most connects in flight to one upstream address (see `Ctx::connecting`).
pub const MAX_CONNECTING: usize = 64;

pub struct Ctx {
    pub registry: mio::Registry,
    pub pool: BufPool,
    pub clusters: Vec<ClusterRt>,
    pub listeners: Vec<ListenerRt>,
    /// Idle keep-alive upstream connections.
    pub idle: Slab<UpConn>,
    /// Owner of each upstream connection's token (`Tok::Up(slot)`).
    pub up_owner: Slab<UpOwner>,
    /// Connects in flight per upstream address, bounded by `MAX_CONNECTING`: a burst of new
    /// clients must not turn into a SYN flood that overflows the upstream's accept backlog
    /// (each overflowed SYN costs a 1 s retransmit, longer than typical connect timeouts).
    pub connecting: FastMap<SocketAddr, usize>,
    /// Sessions (index, generation) waiting for a connection to an address, oldest first.
    pub waiters: FastMap<SocketAddr, std::collections::VecDeque<(usize, u64)>>,
    /// Addresses where a connect slot or a pooled connection just became free; the reactor
    /// wakes one waiter per entry.
    pub freed: Vec<SocketAddr>,
    /// Idle connections per upstream address, most recently used last.
    pub idle_by_addr: FastMap<SocketAddr, Vec<usize>>,
    pub timers: Timers,
    pub rng: Rng,
    /// Set once SIGTERM (or a handover) starts the drain: responses carry Connection: close.
    pub draining: bool,
    /// Draining with a live successor: idle connections move to it instead of closing, so
    /// responses keep their keep-alive.
    pub handoff: bool,
    pub now: Instant,
    /// Hot-restart epoch of this process (0 for a fresh start).
    pub epoch: u32,
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
            up_owner: Slab::default(),
            connecting: FastMap::default(),
            waiters: FastMap::default(),
            freed: Vec::new(),
            idle_by_addr: FastMap::default(),
            timers: Timers::default(),
            rng: Rng::from_entropy(),
            draining: false,
            handoff: false,
            now: Instant::now(),
            epoch: 0,
            date: String::new(),
            date_secs: u64::MAX,
        }
    }

    /// Whether another connect to `addr` may start now.
    pub fn may_connect(&self, addr: SocketAddr) -> bool {
        self.connecting.get(&addr).copied().unwrap_or(0) < MAX_CONNECTING
    }

    /// A connect to `addr` finished (either way): free its slot for a waiter.
    pub fn connect_done(&mut self, addr: SocketAddr) {
        if let Some(n) = self.connecting.get_mut(&addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.connecting.remove(&addr);
            }
        }
        self.note_freed(addr);
    }

    /// Something a waiter for `addr` can use became free.
    pub fn note_freed(&mut self, addr: SocketAddr) {
        if self.waiters.get(&addr).is_some_and(|w| !w.is_empty()) {
            self.freed.push(addr);
        }
    }

    /// Whether client connections should end after their current exchange: draining with no
    /// successor to hand them to.
    pub fn closing(&self) -> bool {
        self.draining && !self.handoff
    }

    /// All stats as (name, value) lists, for a child process to continue from.
    pub fn stats_snapshot(&self) -> baton_statemachine::StatsSnapshot {
        self.stats.store.snapshot()
    }

    /// Adds a parent's stats to ours (counters continue; gauges are the parent's live values).
    pub fn stats_merge(&mut self, s: baton_statemachine::StatsSnapshot) {
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
