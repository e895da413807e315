//! Clusters at run time: the resolved hosts of each configured cluster and load balancing over
//! them. Resolution itself happens off the reactor (`dns`); this module only applies answers.

pub mod breakers;
pub mod checker;
pub mod dns;
pub mod hash;
pub mod health;
pub mod lb;
pub mod oneshot;
pub mod outlier;

use std::net::{IpAddr, SocketAddr};

use crate::config::{Cluster, DiscoveryType, DnsLookupFamily};
use crate::stats::HostStats;
use crate::util::Rng;

/// One upstream host with its live load (for LEAST_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRt {
    pub addr: SocketAddr,
    pub active_rq: u32,
    pub stats: HostStats,
    /// `load_balancing_weight` of the endpoint this address came from.
    pub weight: u32,
    /// Index in `cfg.endpoints` of the (first) endpoint this address came from.
    pub ep: usize,
    /// The last connect to this host failed (logged once until one succeeds).
    connect_failing: bool,
    /// Active health state (always healthy without `health_checks`).
    pub health: health::HostHealth,
    /// Outlier detection state (never ejected without `outlier_detection`).
    pub outlier: outlier::HostOutlier,
}

impl HostRt {
    /// The load balancer skips the host (outside panic mode): it fails its active health
    /// check or is ejected by outlier detection (Envoy's healthy excludes both).
    pub fn unhealthy(&self) -> bool {
        self.health.failed || self.outlier.ejected
    }

    /// Envoy's `health_flags` in /clusters: `healthy`, or each flag as `/name` in Envoy's
    /// order.
    pub fn flags(&self) -> String {
        if !self.unhealthy() {
            return "healthy".to_string();
        }
        let mut s = String::new();
        if self.health.failed {
            s.push_str(&self.health.flags());
        }
        if let Some(f) = self.outlier.flag() {
            // After /failed_active_hc, before the flags that follow it.
            let at = if self.health.failed {
                "/failed_active_hc".len()
            } else {
                0
            };
            s.insert_str(at, f);
        }
        s
    }

    /// Records a connect outcome; true when it differs from the last one (worth a log line).
    pub fn connect_outcome(&mut self, ok: bool) -> bool {
        let changed = self.connect_failing == ok;
        self.connect_failing = !ok;
        changed
    }
}

#[derive(Debug)]
pub struct ClusterRt {
    pub cfg: Cluster,
    pub hosts: Vec<HostRt>,
    /// Latest good answer per configured endpoint (kept when a refresh fails).
    resolved: Vec<Vec<SocketAddr>>,
    /// Endpoints with a query in flight, so refreshes never pile up behind a slow resolver.
    pub pending: Vec<bool>,
    /// The last DNS error per endpoint (None: its last query resolved), so a name that stays
    /// unresolvable is logged once, not on every refresh.
    dns_error: Vec<Option<String>>,
    /// The client TLS configuration of `cfg.tls` (`set_up_tls`).
    pub tls: Option<crate::tls::ClientTls>,
    /// The circuit breakers of priority DEFAULT (every request's) and HIGH (configured,
    /// shown in the stats, never used: routes have no `priority`).
    pub breakers: [breakers::Breakers; 2],
    /// The load balancer over `hosts` (`refresh_lb`).
    lb: lb::Balancer,
    /// The last pick used every host of a level in panic mode.
    last_panic: bool,
}

/// What an outlier detection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    /// The host is out for this long.
    Ejected(std::time::Duration),
    /// The `enforcing_*` roll said no.
    NotEnforced,
    /// `max_ejection_percent` was reached.
    Overflow,
}

/// Keeps the addresses `family` allows, in the order it prefers.
pub fn filter_family(addrs: &[SocketAddr], family: DnsLookupFamily) -> Vec<SocketAddr> {
    let v4: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv4).collect();
    let v6: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv6).collect();
    match family {
        DnsLookupFamily::V4Only => v4,
        DnsLookupFamily::V6Only => v6,
        DnsLookupFamily::Auto => {
            if v6.is_empty() {
                v4
            } else {
                v6
            }
        }
        DnsLookupFamily::V4Preferred => {
            if v4.is_empty() {
                v6
            } else {
                v4
            }
        }
        DnsLookupFamily::All => addrs.to_vec(),
    }
}

impl ClusterRt {
    /// Builds the cluster; IP-literal endpoints are resolved at once, names wait for `dns`.
    pub fn new(cfg: Cluster) -> ClusterRt {
        let n = cfg.endpoints.len();
        let mut c = ClusterRt {
            resolved: vec![Vec::new(); n],
            pending: vec![false; n],
            dns_error: vec![None; n],
            hosts: Vec::new(),
            tls: None,
            breakers: [
                breakers::Breakers::new(cfg.circuit_breakers.default.clone()),
                breakers::Breakers::new(cfg.circuit_breakers.high.clone()),
            ],
            lb: lb::Balancer::new(
                cfg.lb_policy,
                &cfg.balancing,
                cfg.healthy_panic_threshold,
                &[],
            ),
            last_panic: false,
            cfg,
        };
        for (i, ep) in c.cfg.endpoints.iter().enumerate() {
            if let Ok(ip) = ep.host.trim_matches(['[', ']']).parse::<IpAddr>() {
                c.resolved[i] = vec![SocketAddr::new(ip, ep.port)];
            }
        }
        c.rebuild();
        c
    }

    /// Builds the client TLS configuration `cfg.tls` asks for.
    pub fn set_up_tls(&mut self) -> Result<(), String> {
        if let Some(u) = &self.cfg.tls {
            self.tls =
                Some(crate::tls::client_tls(u).map_err(|e| {
                    format!("cluster \"{}\": transport_socket: {e}", self.cfg.name)
                })?);
        }
        Ok(())
    }

    /// Endpoints that need a DNS query (names, not IP literals).
    pub fn dns_endpoints(&self) -> Vec<usize> {
        if self.cfg.discovery == DiscoveryType::Static {
            return Vec::new();
        }
        self.cfg
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, ep)| ep.host.trim_matches(['[', ']']).parse::<IpAddr>().is_err())
            .map(|(i, _)| i)
            .collect()
    }

    /// Applies a DNS answer for endpoint `ep`. An error or an empty answer keeps the last good
    /// addresses (Envoy's behaviour), so a flaky resolver never empties a cluster.
    /// Records a DNS answer's outcome for endpoint `ep`: `Some(Err(e))` when it starts failing
    /// (or fails differently), `Some(Ok(()))` when it resolves again, None when nothing changed.
    pub fn dns_outcome(
        &mut self,
        ep: usize,
        answer: &Result<Vec<SocketAddr>, String>,
    ) -> Option<Result<(), String>> {
        let slot = self.dns_error.get_mut(ep)?;
        match answer {
            Err(e) if slot.as_deref() != Some(e.as_str()) => {
                *slot = Some(e.clone());
                Some(Err(e.clone()))
            }
            Ok(_) if slot.is_some() => {
                *slot = None;
                Some(Ok(()))
            }
            _ => None,
        }
    }

    pub fn apply_dns(&mut self, ep: usize, answer: &Result<Vec<SocketAddr>, String>) -> bool {
        if let Some(p) = self.pending.get_mut(ep) {
            *p = false;
        }
        let Ok(addrs) = answer else { return false };
        let addrs = filter_family(addrs, self.cfg.dns_lookup_family);
        if addrs.is_empty() {
            return false;
        }
        match self.resolved.get_mut(ep) {
            Some(slot) if *slot != addrs => {
                *slot = addrs;
                self.rebuild();
                true
            }
            _ => false,
        }
    }

    fn rebuild(&mut self) {
        let weight_of = |ep: usize| self.cfg.endpoints.get(ep).map_or(1, |e| e.weight);
        let mut addrs: Vec<(SocketAddr, usize)> = match self.cfg.discovery {
            // One logical host: the first address of the (single) endpoint's answer.
            DiscoveryType::LogicalDns => self
                .resolved
                .first()
                .and_then(|a| a.first())
                .map(|&a| (a, 0))
                .into_iter()
                .collect(),
            DiscoveryType::StrictDns | DiscoveryType::Static => self
                .resolved
                .iter()
                .enumerate()
                .flat_map(|(ep, list)| list.iter().map(move |&a| (a, ep)))
                .collect(),
        };
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|(a, _)| seen.insert(*a));
        let old = std::mem::take(&mut self.hosts);
        self.hosts = addrs
            .into_iter()
            .map(|(addr, ep)| {
                let prev = old.iter().find(|h| h.addr == addr);
                HostRt {
                    addr,
                    active_rq: prev.map_or(0, |h| h.active_rq),
                    stats: prev.map(|h| h.stats).unwrap_or_default(),
                    weight: weight_of(ep).max(1),
                    ep,
                    connect_failing: prev.is_some_and(|h| h.connect_failing),
                    // A host DNS brings in (or back) starts fresh.
                    health: match prev {
                        Some(h) => h.health.clone(),
                        None if self.cfg.health_check.is_some() => health::HostHealth::unchecked(),
                        None => health::HostHealth::healthy(),
                    },
                    outlier: prev.map(|h| h.outlier.clone()).unwrap_or_default(),
                }
            })
            .collect();
        self.refresh_lb();
    }

    /// Hosts not failing their health check.
    pub fn healthy_count(&self) -> usize {
        self.hosts.iter().filter(|h| !h.unhealthy()).count()
    }

    /// The `load_assignment.endpoints[]` entry (locality) a host is in.
    pub fn locality_of(&self, h: &HostRt) -> Option<&crate::config::Locality> {
        let ep = self.cfg.endpoints.get(h.ep)?;
        self.cfg.balancing.localities.get(ep.locality)
    }

    /// Rebuilds the load balancer; call after any health change.
    pub fn refresh_lb(&mut self) {
        let by_name = self.cfg.balancing.hash_by_hostname && self.hashes();
        let members: Vec<lb::Member> = self
            .hosts
            .iter()
            .map(|h| {
                let locality = self.cfg.endpoints.get(h.ep).map_or(0, |e| e.locality);
                lb::Member {
                    weight: h.weight,
                    healthy: !h.unhealthy(),
                    excluded: h.health.excluded,
                    priority: self.locality_of(h).map_or(0, |l| l.priority),
                    locality,
                    addr: h.addr,
                    name: by_name
                        .then(|| self.hostname_of(h.addr).map(str::to_string))
                        .flatten(),
                    active: h.active_rq,
                }
            })
            .collect();
        let fresh = lb::Balancer::new(
            self.cfg.lb_policy,
            &self.cfg.balancing,
            self.cfg.healthy_panic_threshold,
            &members,
        );
        let old = std::mem::replace(&mut self.lb, fresh);
        self.lb.resume(&old);
    }

    /// The last pick was made in panic mode (Envoy's `lb_healthy_panic`).
    pub fn in_panic(&self) -> bool {
        self.last_panic
    }

    /// Picks a host by Envoy's priority, locality and policy rules among the hosts health
    /// checking and outlier detection let it use; `None` when there is none.
    pub fn pick(&mut self, rng: &mut Rng) -> Option<usize> {
        self.pick_hashed(None, rng)
    }

    /// The policy picks by the request's hash (RING_HASH, MAGLEV).
    pub fn hashes(&self) -> bool {
        matches!(
            self.cfg.lb_policy,
            crate::config::LbPolicy::RingHash | crate::config::LbPolicy::Maglev
        )
    }

    /// `pick` with the request's hash (its route's `hash_policy`), which RING_HASH and MAGLEV
    /// pick by (a random one without); the other policies ignore it.
    pub fn pick_hashed(&mut self, hash: Option<u64>, rng: &mut Rng) -> Option<usize> {
        let hosts = &self.hosts;
        let active = |i: usize| hosts.get(i).map_or(0, |h| h.active_rq);
        let r = self.lb.pick(hash, &active, rng);
        self.last_panic = matches!(r, Some((_, lb::From::Panic)));
        r.map(|(i, _)| i).filter(|&i| i < self.hosts.len())
    }

    /// Where active health checks of the host at `addr` go: its address, or the endpoint's
    /// `health_check_config.port_value`.
    pub fn check_addr(&self, addr: SocketAddr) -> SocketAddr {
        let port = self
            .hosts
            .iter()
            .find(|h| h.addr == addr)
            .and_then(|h| self.cfg.endpoints.get(h.ep))
            .and_then(|e| e.health_check_port);
        port.map_or(addr, |p| SocketAddr::new(addr.ip(), p))
    }

    /// The Host of HTTP health checks of the host at `addr` set by its endpoint
    /// (`health_check_config.hostname`), if any.
    pub fn check_host(&self, addr: SocketAddr) -> Option<&str> {
        let h = self.hosts.iter().find(|h| h.addr == addr)?;
        let ep = self.cfg.endpoints.get(h.ep)?;
        (!ep.health_check_hostname.is_empty()).then_some(ep.health_check_hostname.as_str())
    }

    /// The name of the host at `addr`, as Envoy gives it: the endpoint's `hostname`, else for
    /// DNS-discovered hosts the name resolved; `None` for a STATIC host without `hostname`
    /// (Envoy then leaves Host alone under `auto_host_rewrite`).
    pub fn hostname_of(&self, addr: SocketAddr) -> Option<&str> {
        let h = self.hosts.iter().find(|h| h.addr == addr)?;
        let ep = self.cfg.endpoints.get(h.ep)?;
        if !ep.hostname.is_empty() {
            return Some(&ep.hostname);
        }
        (self.cfg.discovery != DiscoveryType::Static).then_some(ep.host.as_str())
    }

    /// The host at `addr`, if it is still in the cluster (linear: clusters are small, and this
    /// runs once per connection or request, never per byte).
    pub fn host_mut(&mut self, addr: SocketAddr) -> Option<&mut HostRt> {
        self.hosts.iter_mut().find(|h| h.addr == addr)
    }

    /// Outlier detection hears what an attempt on `addr` told about it; returns the
    /// detections it made and what each did. Nothing without `outlier_detection`.
    pub fn outlier_record(
        &mut self,
        addr: SocketAddr,
        o: outlier::Outcome,
        now: std::time::Instant,
        rng: &mut Rng,
    ) -> [Option<(outlier::Kind, Ejection)>; 2] {
        let mut out = [None, None];
        let Some(cfg) = self.cfg.outlier_detection.clone() else {
            return out;
        };
        let Some(i) = self.hosts.iter().position(|h| h.addr == addr) else {
            return out;
        };
        let found = self.hosts.get_mut(i).map(|h| h.outlier.record(&cfg, o));
        for (slot, kind) in out.iter_mut().zip(found.unwrap_or_default()) {
            if let Some(k) = kind {
                *slot = self.detected(i, k, &cfg, now, rng).map(|e| (k, e));
            }
        }
        out
    }

    /// Host `i` was found an outlier of kind `k`: ejects it when the `enforcing_*` roll and
    /// `max_ejection_percent` allow. `None` when it is ejected already (Envoy ignores it).
    fn detected(
        &mut self,
        i: usize,
        k: outlier::Kind,
        cfg: &crate::config::OutlierDetection,
        now: std::time::Instant,
        rng: &mut Rng,
    ) -> Option<Ejection> {
        if self.hosts.get(i)?.outlier.ejected {
            return None;
        }
        let active = self.hosts.iter().filter(|h| h.outlier.ejected).count();
        let allowed = outlier::may_eject(cfg, active, self.hosts.len());
        let h = self.hosts.get_mut(i)?;
        h.outlier.detected(k);
        if !allowed {
            return Some(Ejection::Overflow);
        }
        if rng.below(100) >= u64::from(k.enforcing(cfg)) {
            return Some(Ejection::NotEnforced);
        }
        h.outlier.eject(cfg, now);
        let time = h.outlier.ejection_time(cfg);
        self.refresh_lb();
        Some(Ejection::Ejected(time))
    }

    /// The outlier detection interval: ejected hosts whose time is up come back, and the
    /// interval's success rates eject their outliers. Returns the hosts put back and the
    /// success-rate detections.
    pub fn outlier_interval(
        &mut self,
        now: std::time::Instant,
        rng: &mut Rng,
    ) -> (Vec<SocketAddr>, Vec<(SocketAddr, outlier::Kind, Ejection)>) {
        let Some(cfg) = self.cfg.outlier_detection.clone() else {
            return (Vec::new(), Vec::new());
        };
        let mut back = Vec::new();
        for h in &mut self.hosts {
            if h.outlier.interval(&cfg, now) {
                back.push(h.addr);
            }
        }
        if !back.is_empty() {
            self.refresh_lb();
        }
        let mut found = Vec::new();
        let kinds: &[(bool, outlier::Kind)] = if cfg.split_external_local_origin_errors {
            &[
                (false, outlier::Kind::SuccessRate),
                (true, outlier::Kind::LocalOriginSuccessRate),
            ]
        } else {
            &[(false, outlier::Kind::SuccessRate)]
        };
        for &(local, kind) in kinds {
            // Every host's interval ends; an ejected host's is not judged.
            let counts: Vec<(usize, u64, u64)> = self
                .hosts
                .iter_mut()
                .enumerate()
                .map(|(i, h)| {
                    let (ok, total) = h.outlier.take_counts(local);
                    (i, ok, total, h.outlier.ejected)
                })
                .filter(|c| !c.3)
                .map(|(i, ok, total, _)| (i, ok, total))
                .collect();
            for i in outlier::success_rate_outliers(&cfg, &counts) {
                let addr = self.hosts.get(i).map(|h| h.addr);
                if let (Some(e), Some(addr)) = (self.detected(i, kind, &cfg, now, rng), addr) {
                    found.push((addr, kind, e));
                }
            }
        }
        for h in &mut self.hosts {
            h.outlier.decay(&cfg, now);
        }
        (back, found)
    }

    /// An active health check of `addr` passed: an ejected host comes back when
    /// `successful_active_health_check_uneject_host` (Envoy's default). True when it did.
    pub fn outlier_check_passed(&mut self, addr: SocketAddr, now: std::time::Instant) -> bool {
        let uneject = self
            .cfg
            .outlier_detection
            .as_ref()
            .is_some_and(|c| c.successful_active_health_check_uneject_host);
        let Some(h) = self.hosts.iter_mut().find(|h| h.addr == addr) else {
            return false;
        };
        // Envoy: only once the check made the host healthy (not failing active checks).
        if !uneject || !h.outlier.ejected || h.health.failed {
            return false;
        }
        h.outlier.uneject(now);
        self.refresh_lb();
        true
    }

    /// Hosts ejected now (`outlier_detection.ejections_active`).
    pub fn ejected_count(&self) -> usize {
        self.hosts.iter().filter(|h| h.outlier.ejected).count()
    }

    /// Adjusts the active-request count of the host at `addr` (it may have gone away).
    pub fn track(&mut self, addr: SocketAddr, delta: i32) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.addr == addr) {
            h.active_rq = h.active_rq.saturating_add_signed(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointAddr, LbPolicy};
    use std::time::Duration;

    fn cluster(d: DiscoveryType, lb: LbPolicy, eps: &[(&str, u16)]) -> ClusterRt {
        ClusterRt::new(Cluster {
            name: "c".into(),
            connect_timeout: Duration::from_secs(1),
            discovery: d,
            lb_policy: lb,
            dns_lookup_family: DnsLookupFamily::V4Only,
            dns_refresh_rate: Duration::from_secs(5),
            endpoints: eps
                .iter()
                .map(|(h, p)| EndpointAddr {
                    host: h.to_string(),
                    port: *p,
                    weight: 1,
                    locality: 0,
                    hostname: String::new(),
                    health_check_port: None,
                    health_check_hostname: String::new(),
                })
                .collect(),
            per_connection_buffer_limit_bytes: 1 << 20,
            load_assignment_cluster_name: "c".into(),
            tls: None,
            proxy_protocol: None,
            circuit_breakers: Default::default(),
            health_check: None,
            healthy_panic_threshold: 50,
            tcp_keepalive: None,
            http: Default::default(),
            outlier_detection: None,
            balancing: Default::default(),
        })
    }

    /// A STATIC round-robin cluster of `n` hosts with this outlier detection.
    fn outlier_cluster(n: u16, od: crate::config::OutlierDetection) -> ClusterRt {
        let eps: Vec<(&str, u16)> = (1..=n).map(|p| ("127.0.0.1", p)).collect();
        let mut c = cluster(DiscoveryType::Static, LbPolicy::RoundRobin, &eps);
        c.cfg.outlier_detection = Some(od);
        c
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn an_ejected_host_leaves_the_balancer_and_enforcing_decides() {
        use crate::cluster::outlier::{Kind, Outcome};
        let od = crate::config::OutlierDetection {
            consecutive_5xx: 1,
            max_ejection_percent: 100,
            ..Default::default()
        };
        let mut c = outlier_cluster(2, od.clone());
        let mut rng = Rng::with_seed(7);
        let now = std::time::Instant::now();
        let r = c.outlier_record(addr(1), Outcome::Status(500), now, &mut rng);
        assert_eq!(
            r,
            [
                None,
                Some((
                    Kind::Consecutive5xx,
                    Ejection::Ejected(Duration::from_secs(30))
                ))
            ]
        );
        assert_eq!(c.healthy_count(), 1);
        assert_eq!(c.hosts[0].flags(), "/failed_outlier_check");
        c.hosts[0].health.failed = true;
        c.hosts[0].health.excluded = true;
        assert_eq!(
            c.hosts[0].flags(),
            "/failed_active_hc/failed_outlier_check/excluded_via_immediate_hc_fail"
        );
        c.hosts[0].health = health::HostHealth::healthy();
        for _ in 0..10 {
            let i = c.pick(&mut rng).unwrap();
            assert_eq!(c.hosts[i].addr, addr(2));
        }
        // Already ejected: a further detection does nothing.
        assert_eq!(
            c.outlier_record(addr(1), Outcome::Status(500), now, &mut rng),
            [None, None]
        );
        // An active health check puts it back (Envoy's default), unless told not to.
        assert!(c.outlier_check_passed(addr(1), now));
        assert_eq!(c.healthy_count(), 2);
        let mut keep = outlier_cluster(
            2,
            crate::config::OutlierDetection {
                successful_active_health_check_uneject_host: false,
                ..od.clone()
            },
        );
        keep.outlier_record(addr(1), Outcome::Status(500), now, &mut rng);
        assert!(!keep.outlier_check_passed(addr(1), now));
        assert_eq!(keep.ejected_count(), 1);
        // enforcing 0: detected, not ejected.
        let mut off = outlier_cluster(
            2,
            crate::config::OutlierDetection {
                enforcing_consecutive_5xx: 0,
                ..od
            },
        );
        let r = off.outlier_record(addr(1), Outcome::Status(500), now, &mut rng);
        assert_eq!(
            r,
            [None, Some((Kind::Consecutive5xx, Ejection::NotEnforced))]
        );
        assert_eq!(off.ejected_count(), 0);
    }

    #[test]
    fn gateway_and_local_origin_detections_follow_their_settings() {
        use crate::cluster::outlier::{Kind, Outcome};
        let mut rng = Rng::with_seed(3);
        let now = std::time::Instant::now();
        let od = crate::config::OutlierDetection {
            consecutive_gateway_failure: 1,
            enforcing_consecutive_gateway_failure: 100,
            max_ejection_percent: 100,
            ..Default::default()
        };
        let mut c = outlier_cluster(2, od.clone());
        let r = c.outlier_record(addr(1), Outcome::ConnectFailed, now, &mut rng);
        assert_eq!(
            r[0],
            Some((
                Kind::ConsecutiveGatewayFailure,
                Ejection::Ejected(Duration::from_secs(30))
            ))
        );
        let mut split = outlier_cluster(
            2,
            crate::config::OutlierDetection {
                split_external_local_origin_errors: true,
                consecutive_local_origin_failure: 2,
                enforcing_consecutive_local_origin_failure: 100,
                ..od
            },
        );
        assert_eq!(
            split.outlier_record(addr(1), Outcome::Timeout, now, &mut rng),
            [None, None]
        );
        let r = split.outlier_record(addr(1), Outcome::ConnectFailed, now, &mut rng);
        assert_eq!(r[0].map(|x| x.0), Some(Kind::ConsecutiveLocalOriginFailure));
    }

    #[test]
    fn the_interval_ejects_success_rate_outliers_and_ends_ejections() {
        use crate::cluster::outlier::{Kind, Outcome};
        let od = crate::config::OutlierDetection {
            consecutive_5xx: 1000,
            max_ejection_percent: 100,
            success_rate_request_volume: 10,
            base_ejection_time: Duration::from_secs(5),
            ..Default::default()
        };
        let mut rng = Rng::with_seed(5);
        let t0 = std::time::Instant::now();
        let mut c = outlier_cluster(6, od.clone());
        for p in 1..=6u16 {
            for i in 0..10 {
                let status = if p == 6 && i % 2 == 0 { 500 } else { 200 };
                c.outlier_record(addr(p), Outcome::Status(status), t0, &mut rng);
            }
        }
        let (back, found) = c.outlier_interval(t0, &mut rng);
        assert!(back.is_empty());
        assert_eq!(
            found,
            vec![(
                addr(6),
                Kind::SuccessRate,
                Ejection::Ejected(Duration::from_secs(5))
            )]
        );
        // Counts restart each interval: nothing more to judge.
        assert!(c.outlier_interval(t0, &mut rng).1.is_empty());
        let (back, _) = c.outlier_interval(t0 + Duration::from_secs(5), &mut rng);
        assert_eq!(back, vec![addr(6)]);
        assert_eq!(c.ejected_count(), 0);
        // enforcing_success_rate 0: detected only.
        let mut off = outlier_cluster(
            6,
            crate::config::OutlierDetection {
                enforcing_success_rate: 0,
                ..od.clone()
            },
        );
        for p in 1..=6u16 {
            for i in 0..10 {
                let status = if p == 6 && i % 2 == 0 { 500 } else { 200 };
                off.outlier_record(addr(p), Outcome::Status(status), t0, &mut rng);
            }
        }
        let (_, found) = off.outlier_interval(t0, &mut rng);
        assert_eq!(
            found,
            vec![(addr(6), Kind::SuccessRate, Ejection::NotEnforced)]
        );
        // Split mode judges local-origin success rates too.
        let mut split = outlier_cluster(
            6,
            crate::config::OutlierDetection {
                split_external_local_origin_errors: true,
                consecutive_local_origin_failure: 1000,
                enforcing_local_origin_success_rate: 100,
                ..od
            },
        );
        for p in 1..=6u16 {
            for i in 0..10 {
                let o = if p == 3 && i % 2 == 0 {
                    Outcome::ConnectFailed
                } else {
                    Outcome::Status(200)
                };
                split.outlier_record(addr(p), o, t0, &mut rng);
            }
        }
        let (_, found) = split.outlier_interval(t0, &mut rng);
        assert_eq!(
            found,
            vec![(
                addr(3),
                Kind::LocalOriginSuccessRate,
                Ejection::Ejected(Duration::from_secs(5))
            )]
        );
    }

    #[test]
    fn dns_and_connect_failures_are_news_only_when_they_change() {
        let mut c = cluster(
            DiscoveryType::StrictDns,
            LbPolicy::RoundRobin,
            &[("svc", 80)],
        );
        let err: Result<Vec<SocketAddr>, String> = Err("no such host".into());
        let ok: Result<Vec<SocketAddr>, String> = Ok(vec!["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(c.dns_outcome(0, &ok), None);
        assert_eq!(c.dns_outcome(0, &err), Some(Err("no such host".into())));
        assert_eq!(c.dns_outcome(0, &err), None);
        let other: Result<Vec<SocketAddr>, String> = Err("timed out".into());
        assert_eq!(c.dns_outcome(0, &other), Some(Err("timed out".into())));
        assert_eq!(c.dns_outcome(0, &ok), Some(Ok(())));
        assert_eq!(c.dns_outcome(0, &ok), None);
        assert_eq!(c.dns_outcome(7, &err), None);
        c.apply_dns(0, &ok);
        let h = &mut c.hosts[0];
        assert!(!h.connect_outcome(true));
        assert!(h.connect_outcome(false));
        assert!(!h.connect_outcome(false));
        assert!(h.connect_outcome(true));
    }

    #[test]
    fn static_round_robin_visits_every_host() {
        let mut c = cluster(
            DiscoveryType::Static,
            LbPolicy::RoundRobin,
            &[("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)],
        );
        let mut rng = Rng::from_entropy();
        let mut seen: Vec<usize> = (0..6).filter_map(|_| c.pick(&mut rng)).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn logical_dns_uses_first_address_and_keeps_last_good() {
        let mut c = cluster(
            DiscoveryType::LogicalDns,
            LbPolicy::RoundRobin,
            &[("svc", 80)],
        );
        assert!(c.hosts.is_empty());
        assert_eq!(c.dns_endpoints(), vec![0]);
        let a: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(c.apply_dns(0, &Ok(vec![v6, a, b])));
        assert_eq!(c.hosts.len(), 1);
        assert_eq!(c.hosts[0].addr, a);
        assert!(!c.apply_dns(0, &Err("timeout".into())));
        assert_eq!(c.hosts[0].addr, a);
        assert!(!c.apply_dns(0, &Ok(vec![])));
        assert_eq!(c.hosts[0].addr, a);
    }

    #[test]
    fn strict_dns_makes_every_address_a_host() {
        let mut c = cluster(
            DiscoveryType::StrictDns,
            LbPolicy::LeastRequest,
            &[("svc", 80)],
        );
        let a: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:80".parse().unwrap();
        c.apply_dns(0, &Ok(vec![a, b, a]));
        assert_eq!(c.hosts.len(), 2);
        c.track(a, 5);
        let mut rng = Rng::from_entropy();
        // b is never worse than a under power-of-two choices once a is loaded.
        let picks: Vec<usize> = (0..50).filter_map(|_| c.pick(&mut rng)).collect();
        assert!(picks.iter().filter(|&&i| c.hosts[i].addr == b).count() > 25);
    }

    #[test]
    fn weights_share_traffic_in_proportion() {
        let mut c = cluster(
            DiscoveryType::Static,
            LbPolicy::RoundRobin,
            &[("127.0.0.1", 1), ("127.0.0.1", 2)],
        );
        c.cfg.endpoints[0].weight = 3;
        c.rebuild();
        let mut rng = Rng::from_entropy();
        let picks: Vec<usize> = (0..80).filter_map(|_| c.pick(&mut rng)).collect();
        // Envoy's EDF schedule over weights 3:1: 6 and 2 of every 8, in a fixed order.
        assert_eq!(&picks[..8], &[0, 0, 1, 0, 0, 0, 0, 1]);
        for w in picks.chunks(8) {
            assert_eq!(w.iter().filter(|&&i| i == 0).count(), 6, "{picks:?}");
        }
        // Weighted least request: with host 1 (weight 3) busy, its weight / (active + 1)
        // falls under host 2's.
        c.cfg.lb_policy = LbPolicy::LeastRequest;
        c.rebuild();
        c.track(addr(1), 5);
        let n0 = (0..40).filter(|_| c.pick(&mut rng) == Some(0)).count();
        assert!((8..=16).contains(&n0), "{n0} of 40 to the busy host");
        // Envoy's RANDOM ignores weights.
        c.cfg.lb_policy = LbPolicy::Random;
        c.rebuild();
        let n0 = (0..4000).filter(|_| c.pick(&mut rng) == Some(0)).count();
        assert!(
            (1700..2300).contains(&n0),
            "random gave {n0} of 4000 to host 1"
        );
    }

    /// A rebuild (health check result, DNS answer) keeps the round robin's place: with one
    /// request between rebuilds, requests still rotate.
    #[test]
    fn round_robin_keeps_its_place_across_a_rebuild() {
        let mut c = cluster(
            DiscoveryType::Static,
            LbPolicy::RoundRobin,
            &[("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)],
        );
        c.rebuild();
        let mut rng = Rng::with_seed(1);
        let picks: Vec<_> = (0..6)
            .map(|_| {
                let p = c.pick(&mut rng);
                c.refresh_lb();
                p
            })
            .collect();
        assert_eq!(
            picks,
            [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn load_balancing_skips_failed_hosts_unless_in_panic() {
        for lb in [
            LbPolicy::RoundRobin,
            LbPolicy::Random,
            LbPolicy::LeastRequest,
        ] {
            let mut c = cluster(
                DiscoveryType::Static,
                lb,
                &[
                    ("127.0.0.1", 1),
                    ("127.0.0.1", 2),
                    ("127.0.0.1", 3),
                    ("127.0.0.1", 4),
                ],
            );
            c.cfg.endpoints[1].weight = 2;
            c.rebuild();
            let mut rng = Rng::from_entropy();
            c.hosts[0].health = health::HostHealth::unchecked();
            c.refresh_lb();
            assert!((0..200).all(|_| c.pick(&mut rng) != Some(0)), "{lb:?}");
            assert!(!c.in_panic());
            // 1 of 4 healthy is under the 50 % threshold: every host again.
            for h in &mut c.hosts[1..3] {
                h.health = health::HostHealth::unchecked();
            }
            c.refresh_lb();
            assert!((0..400).any(|_| c.pick(&mut rng) == Some(0)), "{lb:?}");
            assert!(c.in_panic());
            // Without panic mode (threshold 0) only the healthy host.
            c.cfg.healthy_panic_threshold = 0;
            c.refresh_lb();
            assert!((0..100).all(|_| c.pick(&mut rng) == Some(3)), "{lb:?}");
            c.hosts[3].health = health::HostHealth::unchecked();
            c.refresh_lb();
            assert_eq!(c.pick(&mut rng), None);
        }
    }

    #[test]
    fn family_filters() {
        let a: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(filter_family(&[a, v6], DnsLookupFamily::Auto), vec![v6]);
        assert_eq!(
            filter_family(&[a, v6], DnsLookupFamily::V4Preferred),
            vec![a]
        );
        assert_eq!(
            filter_family(&[v6], DnsLookupFamily::V4Only),
            Vec::<SocketAddr>::new()
        );
        assert_eq!(filter_family(&[a, v6], DnsLookupFamily::All), vec![a, v6]);
    }
}
