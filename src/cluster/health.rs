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

/// Which hosts the load balancer chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbSet {
    /// Every host is healthy.
    All,
    /// Too few healthy hosts: every host, healthy or not (counted in `lb_healthy_panic`).
    Panic,
    /// Only the healthy hosts.
    Healthy,
    /// None (no healthy host and a panic threshold of 0).
    Empty,
}

/// Envoy's panic rule for one priority: with `healthy` of `total` hosts (hosts excluded by an
/// immediate-fail request not counted), availability is `min(100, 140 × healthy / total)` (the
/// default overprovisioning factor 1.4); below 100 the cluster is in panic when the healthy
/// share is below `threshold` percent. A threshold of 0 turns panic mode off.
pub fn lb_set(healthy: usize, total: usize, threshold: u32) -> LbSet {
    if total > 0 && healthy >= total {
        return LbSet::All;
    }
    let availability = (140 * healthy).checked_div(total).unwrap_or(0).min(100);
    let healthy_pct = if total == 0 {
        0.0
    } else {
        100.0 * healthy as f64 / total as f64
    };
    if availability < 100 && healthy_pct < f64::from(threshold) {
        LbSet::Panic
    } else if healthy == 0 {
        LbSet::Empty
    } else {
        LbSet::Healthy
    }
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

    #[test]
    fn panic_mode_follows_envoys_threshold_and_overprovisioning() {
        assert_eq!(lb_set(2, 2, 50), LbSet::All);
        assert_eq!(lb_set(1, 2, 50), LbSet::Healthy);
        assert_eq!(lb_set(0, 2, 50), LbSet::Panic);
        assert_eq!(lb_set(0, 1, 50), LbSet::Panic);
        assert_eq!(lb_set(1, 4, 50), LbSet::Panic);
        assert_eq!(lb_set(2, 4, 50), LbSet::Healthy);
        // 75 % healthy is 105 % available: no panic even under an 80 % threshold.
        assert_eq!(lb_set(3, 4, 80), LbSet::Healthy);
        assert_eq!(lb_set(2, 4, 80), LbSet::Panic);
        // Threshold 0: never panic; no healthy host means no host.
        assert_eq!(lb_set(0, 2, 0), LbSet::Empty);
        assert_eq!(lb_set(1, 3, 0), LbSet::Healthy);
        assert_eq!(lb_set(0, 0, 50), LbSet::Panic);
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
