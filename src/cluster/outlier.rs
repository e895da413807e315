//! Outlier detection, the pure part: one host's consecutive-error counters and ejection
//! state, the cluster's ejection limit, and the success-rate statistics of an interval.
//! Envoy's semantics (`outlier_detection_impl`); the reactor's interval timer and the stats
//! are applied by `observe`.

use std::time::{Duration, Instant};

use crate::config::OutlierDetection;

/// What a request's attempt told about its host (Envoy's `Outlier::Result`, with the
/// upstream status carried as itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head with this status (an external-origin result).
    Status(u16),
    /// Connecting failed, or the connection was reset or spoke garbage before a response.
    ConnectFailed,
    /// The attempt timed out (route or per-try timeout).
    Timeout,
}

/// Why a host was found to be an outlier (a stat name each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
    LocalOriginSuccessRate,
}

impl Kind {
    /// Envoy's stat name part (`ejections_detected_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Consecutive5xx => "consecutive_5xx",
            Kind::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Kind::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Kind::SuccessRate => "success_rate",
            Kind::LocalOriginSuccessRate => "local_origin_success_rate",
        }
    }

    /// Index into per-kind stat arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `enforcing_*` percentage of this kind.
    pub fn enforcing(self, cfg: &OutlierDetection) -> u32 {
        match self {
            Kind::Consecutive5xx => cfg.enforcing_consecutive_5xx,
            Kind::ConsecutiveGatewayFailure => cfg.enforcing_consecutive_gateway_failure,
            Kind::ConsecutiveLocalOriginFailure => cfg.enforcing_consecutive_local_origin_failure,
            Kind::SuccessRate => cfg.enforcing_success_rate,
            Kind::LocalOriginSuccessRate => cfg.enforcing_local_origin_success_rate,
        }
    }
}

/// Every kind, in stat order.
pub const KINDS: [Kind; 5] = [
    Kind::Consecutive5xx,
    Kind::ConsecutiveGatewayFailure,
    Kind::ConsecutiveLocalOriginFailure,
    Kind::SuccessRate,
    Kind::LocalOriginSuccessRate,
];

/// One host's outlier state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOutlier {
    /// Envoy's `FAILED_OUTLIER_CHECK`: the load balancer skips the host (outside panic mode).
    pub ejected: bool,
    ejected_at: Option<Instant>,
    /// When it last came back (the multiplier decays only from an interval after that).
    unejected_at: Option<Instant>,
    /// The ejection time's multiplier: one more per ejection (up to just past
    /// `max_ejection_time`), one less per interval spent not ejected.
    num_ejections: u32,
    c5xx: u32,
    gateway: u32,
    local: u32,
    /// This interval's external-origin successes and requests (success rate).
    ext_ok: u64,
    ext_total: u64,
    /// The same for local-origin results (split mode).
    local_ok: u64,
    local_total: u64,
}

impl HostOutlier {
    /// Records an attempt's outcome; returns the consecutive-error detections it completes
    /// (a gateway failure may complete both its own count and the 5xx one, in that order).
    /// Without `split_external_local_origin_errors` a connect failure counts as a 503 and a
    /// timeout as a 504, as in Envoy; with it they count as local-origin failures, and any
    /// response head as a local-origin success.
    pub fn record(&mut self, cfg: &OutlierDetection, o: Outcome) -> [Option<Kind>; 2] {
        let status = match (o, cfg.split_external_local_origin_errors) {
            (Outcome::Status(s), split) => {
                if split {
                    self.local = 0;
                    self.local_ok += 1;
                    self.local_total += 1;
                }
                s
            }
            (Outcome::ConnectFailed, false) => 503,
            (Outcome::Timeout, false) => 504,
            (Outcome::ConnectFailed | Outcome::Timeout, true) => {
                self.local_total += 1;
                self.local = self.local.saturating_add(1);
                let found = self.local == cfg.consecutive_local_origin_failure;
                return [found.then_some(Kind::ConsecutiveLocalOriginFailure), None];
            }
        };
        self.ext_total += 1;
        if !(500..600).contains(&status) {
            self.ext_ok += 1;
            self.c5xx = 0;
            self.gateway = 0;
            return [None, None];
        }
        let mut found = [None, None];
        if matches!(status, 502..=504) {
            self.gateway = self.gateway.saturating_add(1);
            if self.gateway == cfg.consecutive_gateway_failure {
                found[0] = Some(Kind::ConsecutiveGatewayFailure);
            }
        } else {
            // Another 5xx breaks a run of gateway failures (Envoy's rule).
            self.gateway = 0;
        }
        self.c5xx = self.c5xx.saturating_add(1);
        if self.c5xx == cfg.consecutive_5xx {
            found[1] = Some(Kind::Consecutive5xx);
        }
        found
    }

    /// A detection of kind `k` was acted on (an ejection, or one the limit or the roll
    /// refused): its count starts again, so another run of errors is detected again
    /// without a success in between (Envoy's rule).
    pub fn detected(&mut self, k: Kind) {
        match k {
            Kind::Consecutive5xx => self.c5xx = 0,
            Kind::ConsecutiveGatewayFailure => self.gateway = 0,
            Kind::ConsecutiveLocalOriginFailure => self.local = 0,
            Kind::SuccessRate | Kind::LocalOriginSuccessRate => {}
        }
    }

    /// Takes the host out of the load balancer. The multiplier grows while base ×
    /// multiplier is below `max_ejection_time` + base, as Envoy's does.
    pub fn eject(&mut self, cfg: &OutlierDetection, now: Instant) {
        self.ejected = true;
        self.ejected_at = Some(now);
        let next = cfg.base_ejection_time.saturating_mul(self.num_ejections);
        if next < cfg.max_ejection_time.saturating_add(cfg.base_ejection_time) {
            self.num_ejections = self.num_ejections.saturating_add(1);
        }
    }

    /// Puts the host back (its time is up, or an active health check passed); its counters
    /// start again.
    pub fn uneject(&mut self, now: Instant) {
        self.ejected = false;
        self.ejected_at = None;
        self.unejected_at = Some(now);
        self.c5xx = 0;
        self.gateway = 0;
        self.local = 0;
    }

    /// How long this ejection lasts: `base_ejection_time` × the multiplier, at most
    /// `max_ejection_time` (which the config keeps at least the base).
    pub fn ejection_time(&self, cfg: &OutlierDetection) -> Duration {
        cfg.base_ejection_time
            .saturating_mul(self.num_ejections.max(1))
            .min(cfg.max_ejection_time)
    }

    /// The interval timer, first step: an ejected host whose time is up comes back (true).
    pub fn interval(&mut self, cfg: &OutlierDetection, now: Instant) -> bool {
        let due = self.ejected
            && self
                .ejected_at
                .is_some_and(|at| now.saturating_duration_since(at) >= self.ejection_time(cfg));
        if due {
            self.uneject(now);
        }
        due
    }

    /// The interval timer, last step: a host not ejected, back for at least an interval,
    /// lowers its multiplier by one.
    pub fn decay(&mut self, cfg: &OutlierDetection, now: Instant) {
        let back_long = self
            .unejected_at
            .is_some_and(|t| now.saturating_duration_since(t) >= cfg.interval);
        if !self.ejected && back_long {
            self.num_ejections = self.num_ejections.saturating_sub(1);
        }
    }

    /// This interval's (successes, requests), external or local origin; the counts restart.
    pub fn take_counts(&mut self, local: bool) -> (u64, u64) {
        if local {
            (
                std::mem::take(&mut self.local_ok),
                std::mem::take(&mut self.local_total),
            )
        } else {
            (
                std::mem::take(&mut self.ext_ok),
                std::mem::take(&mut self.ext_total),
            )
        }
    }

    /// Envoy's `health_flags` part.
    pub fn flag(&self) -> Option<&'static str> {
        self.ejected.then_some("/failed_outlier_check")
    }
}

/// Whether one more host may be ejected: `max_ejection_percent` of the hosts, counting the
/// new one (so with the default 10 % a cluster of fewer than 10 hosts ejects none), unless
/// `always_eject_one_host` and none is ejected.
pub fn may_eject(cfg: &OutlierDetection, active: usize, hosts: usize) -> bool {
    if hosts == 0 {
        return false;
    }
    let percent = 100.0 * (active + 1) as f64 / hosts as f64;
    percent <= f64::from(cfg.max_ejection_percent) || (cfg.always_eject_one_host && active == 0)
}

/// The success-rate outliers among `(host, successes, requests)` of one interval: hosts with
/// at least `success_rate_request_volume` requests are considered when there are at least
/// `success_rate_minimum_hosts` of them; one whose rate is below mean − stdev ×
/// `success_rate_stdev_factor` / 1000 is an outlier.
pub fn success_rate_outliers(cfg: &OutlierDetection, counts: &[(usize, u64, u64)]) -> Vec<usize> {
    let valid: Vec<(usize, f64)> = counts
        .iter()
        .filter(|c| c.2 > 0 && c.2 >= u64::from(cfg.success_rate_request_volume))
        .map(|&(i, ok, total)| (i, 100.0 * ok as f64 / total as f64))
        .collect();
    if valid.is_empty() || valid.len() < cfg.success_rate_minimum_hosts as usize {
        return Vec::new();
    }
    let n = valid.len() as f64;
    let mean = valid.iter().map(|v| v.1).sum::<f64>() / n;
    let var = valid.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / n;
    let threshold = mean - var.sqrt() * (f64::from(cfg.success_rate_stdev_factor) / 1000.0);
    valid
        .into_iter()
        .filter(|v| v.1 < threshold)
        .map(|v| v.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutlierDetection {
        OutlierDetection::default()
    }

    #[test]
    fn consecutive_5xx_detects_at_the_threshold_and_a_success_resets() {
        let c = OutlierDetection {
            consecutive_5xx: 3,
            ..cfg()
        };
        let mut h = HostOutlier::default();
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(200)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(501)), [None, None]);
        assert_eq!(
            h.record(&c, Outcome::Status(500)),
            [None, Some(Kind::Consecutive5xx)]
        );
        // Past the threshold nothing more, until the detection is acted on: then a new run.
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        h.detected(Kind::Consecutive5xx);
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        assert_eq!(
            h.record(&c, Outcome::Status(500)),
            [None, Some(Kind::Consecutive5xx)]
        );
    }

    #[test]
    fn gateway_failures_and_local_origin_errors_without_split() {
        let c = OutlierDetection {
            consecutive_gateway_failure: 2,
            consecutive_5xx: 10,
            ..cfg()
        };
        let mut h = HostOutlier::default();
        assert_eq!(h.record(&c, Outcome::ConnectFailed), [None, None]);
        // A timeout is a 504: the second gateway failure in a row.
        assert_eq!(
            h.record(&c, Outcome::Timeout),
            [Some(Kind::ConsecutiveGatewayFailure), None]
        );
        assert_eq!(h.take_counts(false), (0, 2));
        // A 5xx that is no gateway error breaks the run.
        let mut h = HostOutlier::default();
        assert_eq!(h.record(&c, Outcome::Status(502)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(500)), [None, None]);
        assert_eq!(h.record(&c, Outcome::Status(504)), [None, None]);
        assert_eq!(
            h.record(&c, Outcome::Status(503)),
            [Some(Kind::ConsecutiveGatewayFailure), None]
        );
    }

    #[test]
    fn split_mode_counts_local_origin_failures_apart() {
        let c = OutlierDetection {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: 2,
            consecutive_5xx: 2,
            ..cfg()
        };
        let mut h = HostOutlier::default();
        assert_eq!(h.record(&c, Outcome::ConnectFailed), [None, None]);
        // A response (even a 5xx) proves the connection works: local count restarts.
        assert_eq!(h.record(&c, Outcome::Status(503)), [None, None]);
        assert_eq!(h.record(&c, Outcome::ConnectFailed), [None, None]);
        assert_eq!(
            h.record(&c, Outcome::Timeout),
            [Some(Kind::ConsecutiveLocalOriginFailure), None]
        );
        assert_eq!(
            h.record(&c, Outcome::Status(500)),
            [None, Some(Kind::Consecutive5xx)]
        );
        assert_eq!(h.take_counts(true), (2, 5));
        assert_eq!(h.take_counts(false), (0, 2));
    }

    #[test]
    fn ejection_time_grows_with_ejections_up_to_the_maximum_and_decays() {
        let c = OutlierDetection {
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(70),
            ..cfg()
        };
        let t0 = Instant::now();
        let mut h = HostOutlier::default();
        h.eject(&c, t0);
        assert_eq!(h.ejection_time(&c), Duration::from_secs(30));
        assert!(!h.interval(&c, t0 + Duration::from_secs(29)));
        assert!(h.interval(&c, t0 + Duration::from_secs(30)));
        assert!(!h.ejected);
        h.eject(&c, t0);
        assert_eq!(h.ejection_time(&c), Duration::from_secs(60));
        h.uneject(t0);
        h.eject(&c, t0);
        assert_eq!(h.ejection_time(&c), Duration::from_secs(70));
        // The multiplier stops once base × it reaches max + base (4 here).
        for _ in 0..5 {
            h.uneject(t0);
            h.eject(&c, t0);
        }
        assert_eq!(h.num_ejections, 4);
        h.uneject(t0);
        // Intervals spent back (each at least an interval after the return) lower it.
        h.decay(&c, t0);
        assert_eq!(h.num_ejections, 4);
        let later = t0 + c.interval;
        h.decay(&c, later);
        h.decay(&c, later);
        h.decay(&c, later);
        assert_eq!(h.num_ejections, 1);
        h.eject(&c, t0);
        assert_eq!(h.ejection_time(&c), Duration::from_secs(60));
        assert_eq!(h.flag(), Some("/failed_outlier_check"));
    }

    #[test]
    fn max_ejection_percent_counts_the_new_host() {
        let c = cfg();
        // Envoy's default 10 %: one host of ten, none of two.
        assert!(may_eject(&c, 0, 10));
        assert!(!may_eject(&c, 1, 10));
        assert!(!may_eject(&c, 0, 2));
        let half = OutlierDetection {
            max_ejection_percent: 50,
            ..cfg()
        };
        assert!(may_eject(&half, 0, 2));
        assert!(!may_eject(&half, 1, 2));
        let one = OutlierDetection {
            always_eject_one_host: true,
            ..cfg()
        };
        assert!(may_eject(&one, 0, 2));
        assert!(!may_eject(&one, 1, 2));
    }

    #[test]
    fn success_rate_ejects_below_mean_minus_stdevs() {
        let c = OutlierDetection {
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            ..cfg()
        };
        let mut counts: Vec<(usize, u64, u64)> = (0..5).map(|i| (i, 100, 100)).collect();
        counts.push((5, 10, 100));
        assert_eq!(success_rate_outliers(&c, &counts), vec![5]);
        // Too little volume: not considered, and then too few hosts.
        counts[0].2 = 99;
        counts[0].1 = 99;
        assert!(success_rate_outliers(&c, &counts[..5]).is_empty());
        // Everyone alike: nobody is an outlier.
        let same: Vec<(usize, u64, u64)> = (0..6).map(|i| (i, 50, 100)).collect();
        assert!(success_rate_outliers(&c, &same).is_empty());
    }
}
