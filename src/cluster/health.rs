//! Active health checking, the pure part: a host's health state machine, the interval to the
//! next check and the load balancer's panic rule. Envoy's semantics (health_checker_base_impl,
//! load_balancer_impl); the I/O is in `checker`.

use std::time::Duration;

use crate::config::HealthCheck;
use crate::util::Rng;

/// Why a check failed (Envoy's `HealthCheckFailureType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The host answered, wrongly (an HTTP status outside `expected_statuses`).
    Active,
    /// The same with a status in `retriable_statuses`: it counts like a network failure.
    Retriable,
    /// Connect refused or reset, or the connection closed before the answer.
    Network,
    /// No answer within `timeout`.
    Timeout,
    /// A proxied response carried `x-envoy-immediate-health-check-fail`.
    Passive,
}

/// What a check result did to the host (Envoy's `HealthTransition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Changed,
    /// A threshold is being counted towards.
    ChangePending,
}

/// The active health state of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHealth {
    /// Envoy's `FAILED_ACTIVE_HC`: the load balancer skips the host (outside panic mode).
    pub failed: bool,
    /// `ACTIVE_HC_TIMEOUT`: the last failure of a failed host was a timeout.
    pub timeout: bool,
    /// `EXCLUDED_VIA_IMMEDIATE_HC_FAIL`: the host asked to be taken out; it does not count in
    /// the panic computation until it passes again.
    pub excluded: bool,
    /// No check has ended yet: the first success makes the host healthy at once.
    first_check: bool,
    num_healthy: u32,
    num_unhealthy: u32,
}

impl HostHealth {
    /// A host of a cluster without health checking: always healthy.
    pub fn healthy() -> HostHealth {
        HostHealth {
            failed: false,
            timeout: false,
            excluded: false,
            first_check: false,
            num_healthy: 0,
            num_unhealthy: 0,
        }
    }

    /// A new host of a health-checked cluster: unhealthy until its first check passes, as
    /// Envoy starts hosts with `FAILED_ACTIVE_HC`.
    pub fn unchecked() -> HostHealth {
        HostHealth {
            failed: true,
            first_check: true,
            ..HostHealth::healthy()
        }
    }

    /// No check of this host has ended yet (start-up waits for these).
    pub fn pending(&self) -> bool {
        self.first_check
    }

    /// A check passed.
    pub fn success(&mut self, healthy_threshold: u32) -> Transition {
        self.num_unhealthy = 0;
        let mut t = Transition::Unchanged;
        if self.failed {
            self.num_healthy = self.num_healthy.wrapping_add(1);
            if self.first_check || self.num_healthy == healthy_threshold {
                self.failed = false;
                self.timeout = false;
                self.excluded = false;
                t = Transition::Changed;
            } else {
                t = Transition::ChangePending;
            }
        }
        self.first_check = false;
        t
    }

    /// A check failed. A wrong answer (or an immediate-fail request) makes a healthy host
    /// unhealthy at once; network failures, timeouts and retriable statuses count towards
    /// `unhealthy_threshold`.
    pub fn failure(&mut self, why: Failure, unhealthy_threshold: u32) -> Transition {
        self.num_healthy = 0;
        let mut t = Transition::Unchanged;
        if !self.failed {
            let counts = matches!(
                why,
                Failure::Network | Failure::Timeout | Failure::Retriable
            );
            self.num_unhealthy = self.num_unhealthy.wrapping_add(1);
            if !counts || self.num_unhealthy == unhealthy_threshold {
                self.failed = true;
                t = Transition::Changed;
            } else {
                t = Transition::ChangePending;
            }
        }
        self.timeout = why == Failure::Timeout && self.failed;
        if why == Failure::Passive {
            self.excluded = true;
        }
        self.first_check = false;
        t
    }

    /// Envoy's `health_flags` in /clusters: `healthy`, or each flag as `/name`.
    pub fn flags(&self) -> String {
        if !self.failed {
            return "healthy".to_string();
        }
        let mut s = String::from("/failed_active_hc");
        if self.excluded {
            s.push_str("/excluded_via_immediate_hc_fail");
        }
        if self.timeout {
            s.push_str("/active_hc_timeout");
        }
        s
    }
}

/// The wait before the next check after a result (`passed`) with transition `t`; `traffic`:
/// the cluster has had an upstream connection (else the no-traffic intervals apply).
pub fn interval(
    hc: &HealthCheck,
    passed: bool,
    t: Transition,
    traffic: bool,
    rng: &mut Rng,
) -> Duration {
    let pending = t == Transition::ChangePending;
    let base = match (traffic, passed) {
        (true, false) if pending => hc.unhealthy_edge_interval,
        (true, false) => hc.unhealthy_interval,
        (true, true) if pending => hc.healthy_edge_interval,
        (true, true) => hc.interval,
        (false, true) if !pending => hc.no_traffic_healthy_interval,
        (false, _) => hc.no_traffic_interval,
    };
    with_jitter(base, hc.interval_jitter, hc.interval_jitter_percent, rng)
}

/// The wait before a host's first check: up to `initial_jitter`.
pub fn initial(hc: &HealthCheck, rng: &mut Rng) -> Duration {
    if hc.initial_jitter.is_zero() {
        return Duration::ZERO;
    }
    with_jitter(Duration::ZERO, hc.initial_jitter, 0, rng)
}

/// Envoy's `intervalWithJitter`: the base, plus up to `percent` of it, plus up to `jitter`,
/// in whole milliseconds and at least 1 ms.
fn with_jitter(base: Duration, jitter: Duration, percent: u32, rng: &mut Rng) -> Duration {
    let mut ms = base.as_millis().min(u128::from(u64::MAX)) as u64;
    let by_percent = u64::from(percent).saturating_mul(ms) / 100;
    if by_percent > 0 {
        ms = ms.saturating_add(rng.below(by_percent));
    }
    let j = jitter.as_millis().min(u128::from(u64::MAX)) as u64;
    if j > 0 {
        ms = ms.saturating_add(rng.below(j));
    }
    Duration::from_millis(ms.max(1))
}

/// The health of one priority level's hosts, as the panic rule reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelHealth {
    /// Hosts neither failing a health check nor ejected.
    pub healthy: usize,
    /// Hosts, not counting those excluded by an immediate-fail answer.
    pub counted: usize,
    /// Every host of the level.
    pub total: usize,
}

/// How traffic splits over the priority levels, and which levels are in panic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityLoad {
    /// Percent of requests per level (summing to 100 when there is a level).
    pub load: Vec<u32>,
    /// The level uses every host, healthy or not (counted in `lb_healthy_panic`).
    pub panic: Vec<bool>,
}

/// Envoy's priority load and panic rule (load_balancer_impl `recalculatePerPriorityState`,
/// `recalculatePerPriorityPanic`). A level's availability is `min(100, factor × healthy /
/// counted)` (`factor` the overprovisioning factor in percent, default 140). Levels take load in
/// order, each as much as its availability allows out of the total availability (capped at
/// 100), the rounding rest going to the first available level. When the total is 100 no level
/// panics; below it a level panics when its healthy share is under `threshold` percent. When
/// every level panics the load follows the host counts instead. A threshold of 0 turns panic
/// mode off: with no healthy host anywhere level 0 takes the load and finds no host.
pub fn priority_load(levels: &[LevelHealth], factor: u32, threshold: u32) -> PriorityLoad {
    let n = levels.len();
    let mut out = PriorityLoad {
        load: vec![0; n],
        panic: vec![false; n],
    };
    if n == 0 {
        return out;
    }
    let factor = factor as usize;
    let health: Vec<u32> = levels
        .iter()
        .map(|l| {
            (factor * l.healthy)
                .checked_div(l.counted)
                .unwrap_or(0)
                .min(100) as u32
        })
        .collect();
    let total: u32 = health.iter().sum::<u32>().min(100);
    if total > 0 {
        let mut left = 100u32;
        for (load, &h) in out.load.iter_mut().zip(&health) {
            *load = (h * 100).checked_div(total).unwrap_or(0).min(left);
            left -= *load;
        }
        if let Some(first) = health.iter().position(|&h| h > 0) {
            out.load[first] += left;
        }
    }
    if threshold == 0 && total == 0 {
        out.load[0] = 100;
        return out;
    }
    for (p, l) in out.panic.iter_mut().zip(levels) {
        let healthy_pct = if l.counted == 0 {
            0.0
        } else {
            100.0 * l.healthy as f64 / l.counted as f64
        };
        *p = total < 100 && healthy_pct < f64::from(threshold);
    }
    if out.panic.iter().all(|&p| p) {
        let hosts: usize = levels.iter().map(|l| l.total).sum();
        out.load.iter_mut().for_each(|l| *l = 0);
        let mut left = 100u32;
        for (load, l) in out.load.iter_mut().zip(levels) {
            *load = (100 * l.total).checked_div(hosts).unwrap_or(0) as u32;
            left -= *load;
        }
        let first = levels.iter().position(|l| l.total > 0).unwrap_or(0);
        out.load[first] += left;
    }
    out
}

/// Whether `status` is in one of the half-open `[start, end)` ranges.
pub fn status_expected(ranges: &[(u16, u16)], status: u16) -> bool {
    ranges.iter().any(|&(a, b)| (a..b).contains(&status))
}

/// Envoy's TCP check match: each block found in `buf`, in order, not necessarily adjacent.
pub fn blocks_found(blocks: &[Vec<u8>], buf: &[u8]) -> bool {
    let mut from = 0;
    for b in blocks {
        let Some(rest) = buf.get(from..) else {
            return false;
        };
        match rest.windows(b.len().max(1)).position(|w| w == b.as_slice()) {
            Some(i) => from += i + b.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheckKind;

    fn hc() -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(10),
            initial_jitter: Duration::ZERO,
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            reuse_connection: true,
            no_traffic_interval: Duration::from_secs(60),
            no_traffic_healthy_interval: Duration::from_secs(61),
            unhealthy_interval: Duration::from_secs(20),
            unhealthy_edge_interval: Duration::from_secs(21),
            healthy_edge_interval: Duration::from_secs(11),
            kind: HealthCheckKind::Tcp {
                send: Vec::new(),
                receive: Vec::new(),
            },
        }
    }

    #[test]
    fn the_first_success_makes_a_new_host_healthy_then_thresholds_count() {
        let mut h = HostHealth::unchecked();
        assert!(h.failed && h.pending());
        assert_eq!(h.flags(), "/failed_active_hc");
        assert_eq!(h.success(2), Transition::Changed);
        assert!(!h.failed && !h.pending());
        assert_eq!(h.flags(), "healthy");
        // Network failures count up to the unhealthy threshold.
        assert_eq!(h.failure(Failure::Network, 3), Transition::ChangePending);
        assert_eq!(h.failure(Failure::Timeout, 3), Transition::ChangePending);
        // A success in between starts the count again.
        assert_eq!(h.success(2), Transition::Unchanged);
        assert_eq!(h.failure(Failure::Network, 3), Transition::ChangePending);
        assert_eq!(h.failure(Failure::Network, 3), Transition::ChangePending);
        assert_eq!(h.failure(Failure::Timeout, 3), Transition::Changed);
        assert!(h.failed);
        assert_eq!(h.flags(), "/failed_active_hc/active_hc_timeout");
        assert_eq!(h.failure(Failure::Network, 3), Transition::Unchanged);
        assert_eq!(h.flags(), "/failed_active_hc");
        // Back to healthy after healthy_threshold successes in a row.
        assert_eq!(h.success(2), Transition::ChangePending);
        assert_eq!(h.failure(Failure::Network, 3), Transition::Unchanged);
        assert_eq!(h.success(2), Transition::ChangePending);
        assert_eq!(h.success(2), Transition::Changed);
        assert!(!h.failed);
    }

    #[test]
    fn retriable_statuses_count_towards_the_threshold() {
        let mut h = HostHealth::unchecked();
        h.success(1);
        assert_eq!(h.failure(Failure::Retriable, 2), Transition::ChangePending);
        assert_eq!(h.failure(Failure::Retriable, 2), Transition::Changed);
        assert_eq!(h.flags(), "/failed_active_hc");
    }

    #[test]
    fn a_wrong_answer_or_an_immediate_fail_ejects_at_once() {
        let mut h = HostHealth::unchecked();
        h.success(1);
        assert_eq!(h.failure(Failure::Active, 5), Transition::Changed);
        assert!(h.failed);
        let mut h = HostHealth::unchecked();
        h.success(1);
        assert_eq!(h.failure(Failure::Passive, 5), Transition::Changed);
        assert_eq!(
            h.flags(),
            "/failed_active_hc/excluded_via_immediate_hc_fail"
        );
        h.success(1);
        assert_eq!(h.flags(), "healthy");
        // A first check that fails leaves a new host unhealthy; it then needs the threshold.
        let mut h = HostHealth::unchecked();
        assert_eq!(h.failure(Failure::Network, 1), Transition::Unchanged);
        assert!(!h.pending());
        assert_eq!(h.success(2), Transition::ChangePending);
        assert_eq!(h.success(2), Transition::Changed);
    }

    #[test]
    fn intervals_follow_the_result_and_the_edges() {
        let (c, mut rng) = (hc(), Rng::from_entropy());
        let s = |d: Duration| d.as_secs();
        use Transition::*;
        assert_eq!(s(interval(&c, true, Unchanged, true, &mut rng)), 10);
        assert_eq!(s(interval(&c, true, Changed, true, &mut rng)), 10);
        assert_eq!(s(interval(&c, true, ChangePending, true, &mut rng)), 11);
        assert_eq!(s(interval(&c, false, Unchanged, true, &mut rng)), 20);
        assert_eq!(s(interval(&c, false, Changed, true, &mut rng)), 20);
        assert_eq!(s(interval(&c, false, ChangePending, true, &mut rng)), 21);
        assert_eq!(s(interval(&c, true, Unchanged, false, &mut rng)), 61);
        assert_eq!(s(interval(&c, true, ChangePending, false, &mut rng)), 60);
        assert_eq!(s(interval(&c, false, Unchanged, false, &mut rng)), 60);
        let mut j = hc();
        j.interval_jitter = Duration::from_millis(500);
        j.interval_jitter_percent = 10;
        for _ in 0..100 {
            let d = interval(&j, true, Unchanged, true, &mut rng);
            assert!(
                d >= Duration::from_secs(10) && d < Duration::from_millis(11_500),
                "{d:?}"
            );
        }
        assert_eq!(initial(&c, &mut rng), Duration::ZERO);
        j.initial_jitter = Duration::from_millis(3);
        assert!(initial(&j, &mut rng) <= Duration::from_millis(3));
    }

    /// One level: (load, panic) as the single-priority panic rule gives it.
    fn one(healthy: usize, total: usize, threshold: u32) -> (u32, bool) {
        let l = LevelHealth {
            healthy,
            counted: total,
            total,
        };
        let r = priority_load(&[l], 140, threshold);
        (r.load[0], r.panic[0])
    }

    #[test]
    fn panic_mode_follows_envoys_threshold_and_overprovisioning() {
        assert_eq!(one(2, 2, 50), (100, false));
        assert_eq!(one(1, 2, 50), (100, false));
        assert_eq!(one(0, 2, 50), (100, true));
        assert_eq!(one(0, 1, 50), (100, true));
        assert_eq!(one(1, 4, 50), (100, true));
        assert_eq!(one(2, 4, 50), (100, false));
        // 75 % healthy is 105 % available: no panic even under an 80 % threshold.
        assert_eq!(one(3, 4, 80), (100, false));
        assert_eq!(one(2, 4, 80), (100, true));
        // Threshold 0: never panic; no healthy host means level 0 and no host there.
        assert_eq!(one(0, 2, 0), (100, false));
        assert_eq!(one(1, 3, 0), (100, false));
        assert_eq!(one(0, 0, 50), (100, true));
    }

    fn lv(healthy: usize, total: usize) -> LevelHealth {
        LevelHealth {
            healthy,
            counted: total,
            total,
        }
    }

    #[test]
    fn priorities_fail_over_as_envoy_spreads_the_load() {
        // Envoy's documented examples (arch_overview priority levels, factor 1.4).
        let load = |ls: &[LevelHealth]| priority_load(ls, 140, 50).load;
        assert_eq!(load(&[lv(10, 10), lv(10, 10)]), vec![100, 0]);
        assert_eq!(load(&[lv(8, 10), lv(10, 10)]), vec![100, 0]);
        assert_eq!(load(&[lv(7, 10), lv(10, 10)]), vec![98, 2]);
        assert_eq!(load(&[lv(5, 10), lv(10, 10)]), vec![70, 30]);
        assert_eq!(load(&[lv(2, 10), lv(10, 10)]), vec![28, 72]);
        assert_eq!(load(&[lv(0, 10), lv(10, 10)]), vec![0, 100]);
        assert_eq!(
            load(&[lv(0, 1), lv(0, 2), lv(1, 1)]),
            vec![0, 0, 100],
            "the corpus example with P0 and P1 down"
        );
        // Three levels, each partly up: 20/20/20 % healthy → 28/28/28 available of 84.
        assert_eq!(load(&[lv(2, 10), lv(2, 10), lv(2, 10)]), vec![34, 33, 33]);
        // Total availability under 100: P0 at 10 % healthy panics, P1 at 50 % does not.
        let r = priority_load(&[lv(1, 10), lv(5, 10)], 140, 50);
        assert_eq!(r.load, vec![17, 83]);
        assert_eq!(r.panic, vec![true, false]);
        // Every level in panic: the load follows the host counts.
        let r = priority_load(&[lv(0, 1), lv(1, 3)], 140, 50);
        assert_eq!(r.panic, vec![true, true]);
        assert_eq!(r.load, vec![25, 75]);
        // A higher overprovisioning factor keeps load on a degraded level.
        assert_eq!(
            priority_load(&[lv(5, 10), lv(10, 10)], 200, 50).load,
            vec![100, 0]
        );
        // Hosts excluded by an immediate-fail answer do not count.
        let ex = LevelHealth {
            healthy: 1,
            counted: 1,
            total: 3,
        };
        assert_eq!(priority_load(&[ex, lv(1, 1)], 140, 50).load, vec![100, 0]);
    }

    #[test]
    fn statuses_and_tcp_blocks_match_as_envoy_does() {
        assert!(status_expected(&[(200, 201)], 200));
        assert!(!status_expected(&[(200, 201)], 201));
        assert!(status_expected(&[(200, 300), (404, 405)], 404));
        assert!(!status_expected(&[(200, 300)], 503));
        let blocks = vec![b"OK".to_vec(), b"42".to_vec()];
        assert!(blocks_found(&blocks, b"xxOKyy42"));
        assert!(!blocks_found(&blocks, b"42 OK"));
        assert!(!blocks_found(&blocks, b"OK"));
        assert!(blocks_found(&[], b""));
    }
}
