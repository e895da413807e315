//! Load balancing, the pure part: Envoy's choice of a priority level, of a locality in it
//! (locality-weighted balancing) and of a host in the chosen set by the cluster's policy
//! (load_balancer_impl, round_robin_lb, least_request_lb, random_lb). Built again whenever a
//! host's health changes (`ClusterRt::refresh_lb`), as Envoy rebuilds its schedulers then.

use std::net::SocketAddr;

use crate::config::{Balancing, LbPolicy};
use crate::util::Rng;

use super::hash::{Entry, Maglev, Ring};
use super::health::{self, LevelHealth};

/// What the balancer needs to know of one host when it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub weight: u32,
    /// Neither failing its health check nor ejected.
    pub healthy: bool,
    /// Excluded by an immediate-fail answer: not counted in the panic rule.
    pub excluded: bool,
    pub priority: u32,
    /// Index in `Balancing::localities` (0 when the cluster lists none).
    pub locality: usize,
    /// What RING_HASH and MAGLEV hash the host by (its address).
    pub addr: SocketAddr,
    /// Its name, hashed instead under `use_hostname_for_hashing`.
    pub name: Option<String>,
    /// Active requests now (least request's schedule starts from them, as Envoy's does).
    pub active: u32,
}

/// An earliest-deadline-first schedule (Envoy's `EdfScheduler`): each entry is due again
/// 1/weight after it is picked, so picks spread smoothly and deterministically in proportion
/// to the weights; ties go to the entry scheduled first.
#[derive(Debug, Clone, Default)]
pub struct Edf {
    /// Per entry: (deadline, order it was scheduled in).
    due: Vec<(f64, u64)>,
    now: f64,
    order: u64,
}

impl Edf {
    /// A schedule over entries of these weights (each > 0).
    pub fn new(weights: &[f64]) -> Edf {
        let mut e = Edf::default();
        for &w in weights {
            e.order += 1;
            e.due.push((1.0 / w, e.order));
        }
        e
    }

    /// The entry due first; it is scheduled again with `weight(entry)` (a weight that may
    /// have changed since, as least request's does).
    pub fn pick(&mut self, weight: impl Fn(usize) -> f64) -> Option<usize> {
        let (i, &(at, _)) = self
            .due
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.1 .1.cmp(&b.1 .1)))?;
        self.now = at;
        self.order += 1;
        let w = weight(i);
        let next = if w > 0.0 { at + 1.0 / w } else { f64::MAX };
        if let Some(d) = self.due.get_mut(i) {
            *d = (next, self.order);
        }
        Some(i)
    }
}

/// One set of hosts the balancer may choose from (Envoy's `HostsSource`), with its own
/// round-robin position and weighted schedule.
#[derive(Debug, Clone, Default)]
struct Source {
    hosts: Vec<usize>,
    rr: usize,
    /// Present when the hosts' weights differ (Envoy only then builds a schedule).
    edf: Option<Edf>,
}

impl Source {
    /// `weights` are the configured ones (a schedule only when they differ); the schedule
    /// starts from `initial` (least request's weights scaled by the active requests).
    fn new(hosts: Vec<usize>, weights: &[u32], initial: &[f64]) -> Source {
        let w = |i: &usize| weights.get(*i).copied().unwrap_or(1);
        let differ = hosts.windows(2).any(|p| w(&p[0]) != w(&p[1]));
        let start = |i: &usize| initial.get(*i).copied().unwrap_or(1.0);
        let edf = differ.then(|| Edf::new(&hosts.iter().map(start).collect::<Vec<_>>()));
        Source { hosts, rr: 0, edf }
    }
}

/// One priority level.
#[derive(Debug, Clone, Default)]
struct Level {
    panic: bool,
    all: Source,
    healthy: Source,
    /// The level's localities that may be picked (their healthy hosts).
    localities: Vec<Source>,
    /// Their effective weights (`effective_weight`).
    locality_weights: Vec<f64>,
    /// Locality-weighted balancing: the schedule over `localities` by effective weight; None
    /// when no locality has one (the healthy hosts are used then, as in Envoy).
    locality_edf: Option<Edf>,
    /// RING_HASH and MAGLEV: the level's table over its healthy hosts (every host in panic).
    table: Table,
}

/// A consistent-hashing table.
#[derive(Debug, Clone, Default)]
enum Table {
    #[default]
    None,
    Ring(Ring),
    Maglev(Maglev),
}

/// The cluster's balancer.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: LbPolicy,
    choice_count: u32,
    bias: f64,
    weights: Vec<u32>,
    levels: Vec<Level>,
    /// Percent of requests per level.
    load: Vec<u32>,
}

/// Which set a pick came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// A level's healthy hosts (or one locality's).
    Healthy,
    /// Every host of a level in panic mode.
    Panic,
}

impl Source {
    /// Takes `old`'s place in its rotation and schedule when it rotates over the same hosts.
    fn resume(&mut self, old: &Source) {
        if self.hosts == old.hosts {
            self.rr = old.rr;
            if self.edf.is_some() && old.edf.is_some() {
                self.edf.clone_from(&old.edf);
            }
        }
    }
}

impl Balancer {
    /// Carries the round-robin positions and weighted schedules of `old` (the balancer this
    /// one replaces) over to the sets that are unchanged, so a rebuild (a DNS answer, a host's
    /// health) does not send the next requests back to the first host.
    pub fn resume(&mut self, old: &Balancer) {
        for (new, old) in self.levels.iter_mut().zip(&old.levels) {
            new.all.resume(&old.all);
            new.healthy.resume(&old.healthy);
            if new.localities.len() == old.localities.len() {
                for (n, o) in new.localities.iter_mut().zip(&old.localities) {
                    n.resume(o);
                }
                if new.locality_weights == old.locality_weights {
                    new.locality_edf.clone_from(&old.locality_edf);
                }
            }
        }
    }

    /// Builds the balancer for `hosts` (in the cluster's host order).
    pub fn new(
        policy: LbPolicy,
        b: &Balancing,
        panic_threshold: u32,
        hosts: &[Member],
    ) -> Balancer {
        let weights: Vec<u32> = hosts.iter().map(|h| h.weight.max(1)).collect();
        let initial: Vec<f64> = hosts
            .iter()
            .map(|h| match policy {
                LbPolicy::LeastRequest => lr_weight(h.weight, h.active, b.active_request_bias),
                _ => f64::from(h.weight.max(1)),
            })
            .collect();
        let n_levels = hosts
            .iter()
            .map(|h| h.priority as usize + 1)
            .max()
            .unwrap_or(1);
        let mut health = vec![LevelHealth::default(); n_levels];
        let mut levels = Vec::with_capacity(n_levels);
        for (p, lh) in health.iter_mut().enumerate() {
            let of = |f: &dyn Fn(&Member) -> bool| -> Vec<usize> {
                (0..hosts.len())
                    .filter(|&i| hosts[i].priority as usize == p && f(&hosts[i]))
                    .collect()
            };
            let all = of(&|_| true);
            let healthy = of(&|h| h.healthy);
            *lh = LevelHealth {
                healthy: healthy.len(),
                counted: all.iter().filter(|&&i| !hosts[i].excluded).count(),
                total: all.len(),
            };
            let mut level = Level {
                panic: false,
                all: Source::new(all, &weights, &initial),
                healthy: Source::new(healthy, &weights, &initial),
                localities: Vec::new(),
                locality_weights: Vec::new(),
                locality_edf: None,
                table: Table::None,
            };
            if b.locality_weighted {
                for (li, loc) in b.localities.iter().enumerate() {
                    if loc.priority as usize != p {
                        continue;
                    }
                    let in_loc = of(&|h| h.locality == li);
                    let up: Vec<usize> = in_loc
                        .iter()
                        .copied()
                        .filter(|&i| hosts[i].healthy)
                        .collect();
                    let w = effective_weight(
                        loc.weight,
                        up.len(),
                        in_loc.len(),
                        b.overprovisioning_factor,
                    );
                    if w > 0.0 {
                        level.locality_weights.push(w);
                        level.localities.push(Source::new(up, &weights, &initial));
                    }
                }
                let eff = &level.locality_weights;
                level.locality_edf = (!eff.is_empty()).then(|| Edf::new(eff));
            }
            levels.push(level);
        }
        let pl = health::priority_load(&health, b.overprovisioning_factor, panic_threshold);
        for (level, panic) in levels.iter_mut().zip(&pl.panic) {
            level.panic = *panic;
            if matches!(policy, LbPolicy::RingHash | LbPolicy::Maglev) {
                let set = if level.panic {
                    &level.all
                } else {
                    &level.healthy
                };
                let entries = table_entries(&set.hosts, hosts, b);
                level.table = match policy {
                    LbPolicy::Maglev => Table::Maglev(Maglev::new(&entries, b.maglev_size)),
                    _ => Table::Ring(Ring::new(&entries, b.ring_min, b.ring_max)),
                };
            }
        }
        Balancer {
            policy,
            choice_count: b.choice_count.max(1),
            bias: b.active_request_bias,
            weights,
            levels,
            load: pl.load,
        }
    }

    /// Picks a host (an index into the hosts it was built with); `active(i)` is host `i`'s
    /// active request count. None when the chosen set is empty.
    pub fn pick(
        &mut self,
        hash: Option<u64>,
        active: &dyn Fn(usize) -> u32,
        rng: &mut Rng,
    ) -> Option<(usize, From)> {
        if matches!(self.policy, LbPolicy::RingHash | LbPolicy::Maglev) {
            // Envoy: the request's hash (a random one without) picks the level and the host.
            let h = hash.unwrap_or_else(|| rng.next_u64());
            let lv = self.levels.get(self.level_for(h % 100))?;
            let from = if lv.panic { From::Panic } else { From::Healthy };
            let host = match &lv.table {
                Table::Ring(r) => r.pick(h),
                Table::Maglev(m) => m.pick(h),
                Table::None => None,
            }?;
            return Some((host, from));
        }
        let level = if self.levels.len() == 1 {
            0
        } else {
            self.level_for(rng.below(100))
        };
        let (policy, choice_count, bias) = (self.policy, self.choice_count, self.bias);
        let weights = &self.weights;
        let lv = self.levels.get_mut(level)?;
        let (src, from) = if lv.panic {
            (&mut lv.all, From::Panic)
        } else {
            let lw = &lv.locality_weights;
            let loc = lv
                .locality_edf
                .as_mut()
                .and_then(|e| e.pick(|i| lw.get(i).copied().unwrap_or(1.0)));
            match loc.and_then(|i| lv.localities.get_mut(i)) {
                Some(s) => (s, From::Healthy),
                None => (&mut lv.healthy, From::Healthy),
            }
        };
        let host = choose(src, policy, choice_count, bias, weights, active, rng)?;
        Some((host, from))
    }
}

impl Balancer {
    /// The level a draw `r` in 0..100 falls in, against the cumulative load (Envoy compares
    /// 1..=100).
    fn level_for(&self, r: u64) -> usize {
        let r = r as u32 + 1;
        let mut sum = 0;
        self.load
            .iter()
            .position(|&l| {
                sum += l;
                r <= sum
            })
            .unwrap_or(0)
    }
}

/// The hosts of a hash table with their normalized weights (Envoy's `normalizeHostWeights`,
/// and `normalizeLocalityWeights` under locality-weighted balancing: each locality's share is
/// its configured weight over the level's, split among its hosts by their weights).
fn table_entries(set: &[usize], hosts: &[Member], b: &Balancing) -> Vec<Entry> {
    let entry = |i: usize, share: f64, sum: f64| {
        hosts.get(i).map(|h| Entry {
            host: i,
            key: match (&h.name, b.hash_by_hostname) {
                (Some(n), true) => n.clone(),
                _ => h.addr.to_string(),
            },
            weight: f64::from(h.weight.max(1)) * share / sum,
        })
    };
    let weight_sum = |of: &mut dyn Iterator<Item = &usize>| -> f64 {
        of.filter_map(|&i| hosts.get(i))
            .map(|h| f64::from(h.weight.max(1)))
            .sum()
    };
    if !b.locality_weighted {
        let sum = weight_sum(&mut set.iter());
        return set.iter().filter_map(|&i| entry(i, 1.0, sum)).collect();
    }
    let loc_of = |i: &usize| hosts.get(*i).map_or(0, |h| h.locality);
    let mut locs: Vec<usize> = set.iter().map(loc_of).collect();
    locs.sort_unstable();
    locs.dedup();
    let lw = |l: usize| f64::from(b.localities.get(l).map_or(0, |x| x.weight));
    let total: f64 = locs.iter().map(|&l| lw(l)).sum();
    if total == 0.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for l in locs {
        let members: Vec<usize> = set.iter().copied().filter(|i| loc_of(i) == l).collect();
        let sum = weight_sum(&mut members.iter());
        if lw(l) > 0.0 {
            out.extend(members.iter().filter_map(|&i| entry(i, lw(l) / total, sum)));
        }
    }
    out
}

/// Least request's dynamic weight (Envoy's `hostWeight`): weight / (active + 1)^bias.
fn lr_weight(weight: u32, active: u32, bias: f64) -> f64 {
    let w = f64::from(weight.max(1));
    let a = f64::from(active) + 1.0;
    if bias == 0.0 {
        w
    } else if bias == 1.0 {
        w / a
    } else {
        w / a.powf(bias)
    }
}

/// Envoy's effective locality weight: the configured weight scaled by the locality's
/// availability, `min(1, factor/100 × healthy/total)`. Weightless localities get no traffic.
pub fn effective_weight(weight: u32, healthy: usize, total: usize, factor: u32) -> f64 {
    if total == 0 || weight == 0 {
        return 0.0;
    }
    let ratio = healthy as f64 / total as f64;
    f64::from(weight) * (f64::from(factor) / 100.0 * ratio).min(1.0)
}

/// The policy's choice among `src`'s hosts.
fn choose(
    src: &mut Source,
    policy: LbPolicy,
    choice_count: u32,
    bias: f64,
    weights: &[u32],
    active: &dyn Fn(usize) -> u32,
    rng: &mut Rng,
) -> Option<usize> {
    let n = src.hosts.len();
    if n == 0 {
        return None;
    }
    let at = |i: usize| src.hosts.get(i).copied();
    let w = |h: usize| f64::from(weights.get(h).copied().unwrap_or(1));
    match (policy, src.edf.as_mut()) {
        // Weighted round robin: the schedule by weight.
        (LbPolicy::RoundRobin, Some(edf)) => {
            let hosts = &src.hosts;
            let i = edf.pick(|i| hosts.get(i).map_or(1.0, |&h| w(h)))?;
            at(i)
        }
        // Weighted least request: the schedule by weight / (active + 1)^bias, read when a
        // host is scheduled again.
        (LbPolicy::LeastRequest, Some(edf)) => {
            let hosts = &src.hosts;
            let i = edf.pick(|i| {
                hosts.get(i).map_or(1.0, |&h| {
                    lr_weight(weights.get(h).copied().unwrap_or(1), active(h), bias)
                })
            })?;
            at(i)
        }
        (LbPolicy::RoundRobin, None) => {
            let i = src.rr % n;
            src.rr = src.rr.wrapping_add(1);
            at(i)
        }
        // Equal weights: the fewest active requests of `choice_count` random hosts.
        (LbPolicy::LeastRequest, None) => {
            let mut best: Option<usize> = None;
            if choice_count as usize >= n {
                // At least as many draws as hosts: every host is compared once, from a random
                // start so that ties spread. (Drawing `choice_count` times, as Envoy does,
                // would let a `choice_count` of 4294967295 stall every pick for seconds.)
                let start = rng.below(n as u64) as usize;
                for k in 0..n {
                    let h = at((start + k) % n)?;
                    if best.is_none_or(|b| active(h) < active(b)) {
                        best = Some(h);
                    }
                }
                return best;
            }
            for _ in 0..choice_count {
                let h = at(rng.below(n as u64) as usize)?;
                if best.is_none_or(|b| active(h) < active(b)) {
                    best = Some(h);
                }
            }
            best
        }
        // Envoy's random balancer ignores weights; the hashing policies never get here
        // (`Balancer::pick`), random is their fallback.
        (LbPolicy::Random | LbPolicy::RingHash | LbPolicy::Maglev, _) => {
            at(rng.below(n as u64) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Locality;

    fn member(priority: u32, locality: usize) -> Member {
        Member {
            weight: 1,
            healthy: true,
            excluded: false,
            priority,
            locality,
            addr: SocketAddr::from(([127, 0, 0, 1], 1000 + locality as u16)),
            name: None,
            active: 0,
        }
    }

    fn picks(b: &mut Balancer, n: usize) -> Vec<usize> {
        let mut rng = Rng::with_seed(11);
        (0..n)
            .filter_map(|_| b.pick(None, &|_| 0, &mut rng))
            .map(|p| p.0)
            .collect()
    }

    fn count(v: &[usize], host: usize) -> usize {
        v.iter().filter(|&&h| h == host).count()
    }

    #[test]
    fn the_edf_schedule_spreads_picks_smoothly_by_weight() {
        let mut e = Edf::new(&[5.0, 2.0, 1.0]);
        let w = [5.0, 2.0, 1.0];
        let seq: Vec<usize> = (0..800).filter_map(|_| e.pick(|i| w[i])).collect();
        // The same order from the same weights (no randomness), in proportion at every scale.
        assert_eq!(&seq[..8], &[0, 0, 1, 0, 0, 2, 1, 0]);
        assert_eq!(seq, {
            let mut again = Edf::new(&w);
            (0..800)
                .filter_map(|_| again.pick(|i| w[i]))
                .collect::<Vec<_>>()
        });
        for n in [8, 80, 800] {
            let part = &seq[..n];
            assert_eq!(
                (count(part, 0), count(part, 1)),
                (n * 5 / 8, n * 2 / 8),
                "{n}"
            );
        }
        assert_eq!(Edf::new(&[]).pick(|_| 1.0), None);
    }

    #[test]
    fn round_robin_and_least_request_within_a_set() {
        let hosts: Vec<Member> = (0..3).map(|_| member(0, 0)).collect();
        let b = Balancing::default();
        let mut rr = Balancer::new(LbPolicy::RoundRobin, &b, 50, &hosts);
        assert_eq!(picks(&mut rr, 6), vec![0, 1, 2, 0, 1, 2]);
        // Equal weights: the fewer active requests of `choice_count` samples; with every host
        // sampled (a large choice count) the idle one always wins.
        let lr_cfg = Balancing {
            choice_count: 50,
            ..Balancing::default()
        };
        let mut lr = Balancer::new(LbPolicy::LeastRequest, &lr_cfg, 50, &hosts);
        let mut rng = Rng::with_seed(3);
        let busy = |i: usize| if i == 1 { 0 } else { 9 };
        assert!((0..20).all(|_| lr.pick(None, &busy, &mut rng).map(|p| p.0) == Some(1)));
        // The largest choice count Envoy takes compares each host once: the pick is at once.
        let huge = Balancing {
            choice_count: u32::MAX,
            ..Balancing::default()
        };
        let mut lr = Balancer::new(LbPolicy::LeastRequest, &huge, 50, &hosts);
        assert!((0..20).all(|_| lr.pick(None, &busy, &mut rng).map(|p| p.0) == Some(1)));
        // Two draws of three hosts: the busy ones sometimes win (only draws are compared).
        let two = Balancing {
            choice_count: 2,
            ..Balancing::default()
        };
        let mut lr = Balancer::new(LbPolicy::LeastRequest, &two, 50, &hosts);
        let v: Vec<usize> = (0..200)
            .filter_map(|_| lr.pick(None, &busy, &mut rng))
            .map(|p| p.0)
            .collect();
        assert!(count(&v, 1) < 200 && count(&v, 1) > 100, "{v:?}");
        // Unequal weights with bias 0: plain weighted round robin.
        let mut weighted = hosts.clone();
        weighted[2].weight = 2;
        let flat = Balancing {
            active_request_bias: 0.0,
            ..Balancing::default()
        };
        let mut lr = Balancer::new(LbPolicy::LeastRequest, &flat, 50, &weighted);
        let v: Vec<usize> = (0..8)
            .filter_map(|_| lr.pick(None, &busy, &mut rng))
            .map(|p| p.0)
            .collect();
        assert_eq!(count(&v, 2), 4, "{v:?}");
    }

    #[test]
    fn lower_priorities_take_the_load_the_higher_ones_lose() {
        let mut hosts = vec![member(0, 0), member(1, 1), member(1, 1), member(2, 2)];
        let b = Balancing {
            localities: (0..3)
                .map(|p| Locality {
                    priority: p,
                    ..Locality::default()
                })
                .collect(),
            ..Balancing::default()
        };
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 50, &hosts);
        assert!(picks(&mut lb, 20).iter().all(|&h| h == 0));
        hosts[0].healthy = false;
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 50, &hosts);
        let v = picks(&mut lb, 20);
        assert_eq!((count(&v, 1), count(&v, 2)), (10, 10), "{v:?}");
        hosts[1].healthy = false;
        hosts[2].healthy = false;
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 50, &hosts);
        assert!(picks(&mut lb, 20).iter().all(|&h| h == 3));
        // Nothing healthy: every level panics, load by host count, every host in use.
        hosts[3].healthy = false;
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 50, &hosts);
        let mut rng = Rng::with_seed(5);
        let v: Vec<(usize, From)> = (0..400)
            .filter_map(|_| lb.pick(None, &|_| 0, &mut rng))
            .collect();
        assert!(v.iter().all(|p| p.1 == From::Panic));
        for h in 0..4 {
            let n = v.iter().filter(|p| p.0 == h).count();
            assert!((50..150).contains(&n), "host {h}: {n} of 400");
        }
        // Panic threshold 0: no host at all.
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 0, &hosts);
        assert_eq!(picks(&mut lb, 5), Vec::<usize>::new());
    }

    #[test]
    fn locality_weights_scale_with_the_localitys_health() {
        // Envoy's documented example: X weight 1, Y weight 2 (here 10 hosts each).
        let mut hosts: Vec<Member> = (0..20).map(|i| member(0, i / 10)).collect();
        let loc = |weight| Locality {
            weight,
            ..Locality::default()
        };
        let b = Balancing {
            localities: vec![loc(1), loc(2)],
            locality_weighted: true,
            ..Balancing::default()
        };
        let share_x = |hosts: &[Member]| {
            let mut lb = Balancer::new(LbPolicy::RoundRobin, &b, 50, hosts);
            picks(&mut lb, 300).iter().filter(|&&h| h < 10).count()
        };
        assert_eq!(share_x(&hosts), 100, "X gets 1/3");
        // 70 % of X healthy is 98 % available: X keeps ~33 %.
        for h in &mut hosts[..3] {
            h.healthy = false;
        }
        assert!((97..=100).contains(&share_x(&hosts)));
        // 50 % healthy: 70 % available, weight 0.7 against 2 → 26 %.
        for h in &mut hosts[3..5] {
            h.healthy = false;
        }
        assert!((76..=78).contains(&share_x(&hosts)));
        // A weightless locality gets nothing; with no weighted locality left, every healthy host.
        let only_y = Balancing {
            localities: vec![loc(0), loc(2)],
            ..b.clone()
        };
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &only_y, 50, &hosts);
        assert!(picks(&mut lb, 50).iter().all(|&h| h >= 10));
        let none = Balancing {
            localities: vec![loc(0), loc(0)],
            ..b.clone()
        };
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &none, 50, &hosts);
        assert!(picks(&mut lb, 50).iter().any(|&h| h < 10));
        // Without locality_weighted_lb_config the weights do not matter.
        let plain = Balancing {
            locality_weighted: false,
            ..b
        };
        let mut lb = Balancer::new(LbPolicy::RoundRobin, &plain, 50, &hosts);
        let v = picks(&mut lb, 150);
        assert_eq!(v.iter().filter(|&&h| h < 10).count(), 50);
    }

    fn hashed(n: usize, priority: impl Fn(usize) -> u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                priority: priority(i),
                addr: SocketAddr::from(([127, 0, 0, 1], 2000 + i as u16)),
                ..member(0, 0)
            })
            .collect()
    }

    /// Which host each of 200 keys goes to.
    fn keyed(b: &mut Balancer) -> Vec<Option<usize>> {
        let mut rng = Rng::with_seed(1);
        (0..200u64)
            .map(|k| {
                let h = crate::cluster::hash::xxh64(&k.to_le_bytes(), 0);
                b.pick(Some(h), &|_| 0, &mut rng).map(|p| p.0)
            })
            .collect()
    }

    #[test]
    fn hashing_policies_keep_a_key_on_its_host_within_the_level() {
        for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
            let cfg = Balancing::default();
            let mut hosts = hashed(4, |_| 0);
            let mut b = Balancer::new(policy, &cfg, 50, &hosts);
            let first = keyed(&mut b);
            assert_eq!(
                first,
                keyed(&mut b),
                "{policy:?}: the same key, the same host"
            );
            assert_eq!(
                first,
                keyed(&mut Balancer::new(policy, &cfg, 50, &hosts)),
                "{policy:?}: a rebuilt balancer (a new process) agrees"
            );
            for h in 0..4 {
                assert!(first.contains(&Some(h)), "{policy:?}: host {h} unused");
            }
            // Host 2 fails its check: its keys move, most of the others' stay (the table is
            // rebuilt over three hosts, so a few move as in Envoy).
            hosts[2].healthy = false;
            let mut b = Balancer::new(policy, &cfg, 50, &hosts);
            let after = keyed(&mut b);
            assert!(!after.contains(&Some(2)));
            let others = first.iter().filter(|h| **h != Some(2)).count();
            let kept = first
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b != Some(2) && a == b)
                .count();
            assert!(
                kept * 10 >= others * 8,
                "{policy:?}: {kept} of {others} kept"
            );
            // No key: a random host.
            let mut rng = Rng::with_seed(9);
            let picks: Vec<_> = (0..100)
                .filter_map(|_| b.pick(None, &|_| 0, &mut rng))
                .collect();
            assert!(picks.iter().any(|p| p.0 != picks[0].0));
            // Priorities: the hash picks the level as well; P0 down sends every key to P1.
            let mut levels = hashed(4, |i| (i / 2) as u32);
            let lb_cfg = Balancing {
                localities: (0..4)
                    .map(|i| Locality {
                        priority: (i / 2) as u32,
                        ..Locality::default()
                    })
                    .collect(),
                ..Balancing::default()
            };
            let mut b = Balancer::new(policy, &lb_cfg, 50, &levels);
            assert!(keyed(&mut b).iter().all(|h| matches!(h, Some(0 | 1))));
            levels[0].healthy = false;
            levels[1].healthy = false;
            let mut b = Balancer::new(policy, &lb_cfg, 50, &levels);
            assert!(keyed(&mut b).iter().all(|h| matches!(h, Some(2 | 3))));
        }
        // The ring and table sizes are the configured ones: too small to hold every host.
        let hosts = hashed(3, |_| 0);
        let tiny_ring = Balancing {
            ring_min: 1,
            ring_max: 2,
            ..Balancing::default()
        };
        let used = |b: &mut Balancer| {
            let mut v: Vec<_> = keyed(b).into_iter().flatten().collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        assert_eq!(
            used(&mut Balancer::new(
                LbPolicy::RingHash,
                &tiny_ring,
                50,
                &hosts
            )),
            2
        );
        let tiny_table = Balancing {
            maglev_size: 2,
            ..Balancing::default()
        };
        assert_eq!(
            used(&mut Balancer::new(
                LbPolicy::Maglev,
                &tiny_table,
                50,
                &hosts
            )),
            2
        );
    }

    #[test]
    fn use_hostname_for_hashing_keys_hosts_by_name_not_address() {
        let named = |port_base: u16| -> Vec<Member> {
            (0..4)
                .map(|i| Member {
                    addr: SocketAddr::from(([127, 0, 0, 1], port_base + i as u16)),
                    name: Some(format!("backend-{i}")),
                    ..member(0, 0)
                })
                .collect()
        };
        for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
            let by_name = Balancing {
                hash_by_hostname: true,
                ..Balancing::default()
            };
            let a = keyed(&mut Balancer::new(policy, &by_name, 50, &named(3000)));
            // The same names at other addresses (DNS moved them): every key stays.
            let b = keyed(&mut Balancer::new(policy, &by_name, 50, &named(4000)));
            assert_eq!(a, b, "{policy:?}");
            // By address, they move.
            let plain = Balancing::default();
            let c = keyed(&mut Balancer::new(policy, &plain, 50, &named(3000)));
            let d = keyed(&mut Balancer::new(policy, &plain, 50, &named(4000)));
            assert_ne!(c, d, "{policy:?}");
        }
    }
}
