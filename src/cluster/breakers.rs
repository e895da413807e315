//! A cluster's circuit breakers (Envoy's resource manager): how many connections, pending
//! requests, active requests and retries it has now, against the configured limits. Only
//! counting lives here; the driver and the exchange core decide when to take and give back.

use crate::config::Thresholds;

/// What a circuit breaker counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Upstream connections opened for the cluster, connecting, busy or idle in the pool.
    Connection = 0,
    /// Requests waiting for a connection to be ready.
    Pending = 1,
    /// Requests with a connection (HTTP/1.1: exchanges in flight, tunnels included).
    Request = 2,
    /// Retries scheduled and not yet decided.
    Retry = 3,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Connection,
        Resource::Pending,
        Resource::Request,
        Resource::Retry,
    ];
}

/// One priority's counts and limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakers {
    pub limits: Thresholds,
    count: [u32; 4],
}

impl Breakers {
    pub fn new(limits: Thresholds) -> Breakers {
        Breakers {
            limits,
            count: [0; 4],
        }
    }

    pub fn count(&self, r: Resource) -> u32 {
        self.count[r as usize]
    }

    /// The configured limit, ignoring a retry budget.
    fn fixed_max(&self, r: Resource) -> u64 {
        u64::from(match r {
            Resource::Connection => self.limits.max_connections,
            Resource::Pending => self.limits.max_pending_requests,
            Resource::Request => self.limits.max_requests,
            Resource::Retry => self.limits.max_retries,
        })
    }

    /// The limit in force now. With a retry budget, retries may be `budget_percent` of the
    /// active and pending requests (truncated), never fewer than `min_retry_concurrency`.
    pub fn max(&self, r: Resource) -> u64 {
        match (r, self.limits.retry_budget) {
            (Resource::Retry, Some(b)) => {
                let active = u64::from(self.count(Resource::Request))
                    + u64::from(self.count(Resource::Pending));
                let share = (b.budget_percent / 100.0 * active as f64) as u64;
                share.max(u64::from(b.min_retry_concurrency))
            }
            _ => self.fixed_max(r),
        }
    }

    /// Whether one more `r` is allowed now.
    pub fn can_take(&self, r: Resource) -> bool {
        u64::from(self.count(r)) < self.max(r)
    }

    /// Takes one `r` if the limit allows it.
    pub fn acquire(&mut self, r: Resource) -> bool {
        if !self.can_take(r) {
            return false;
        }
        self.take(r);
        true
    }

    /// Takes one `r` whatever the limit (a connection that must exist: a tunnel handed over,
    /// the first connection to a host).
    pub fn take(&mut self, r: Resource) {
        let c = &mut self.count[r as usize];
        *c = c.saturating_add(1);
    }

    pub fn release(&mut self, r: Resource) {
        let c = &mut self.count[r as usize];
        *c = c.saturating_sub(1);
    }

    /// The `*_open` gauge: the breaker refuses more. As in Envoy, the retry gauge follows
    /// `max_retries` even when a retry budget decides.
    pub fn open(&self, r: Resource) -> bool {
        u64::from(self.count(r)) >= self.fixed_max(r)
    }

    /// The `remaining_*` gauge: how many more the breaker allows. Envoy shows 0 for retries
    /// under a budget (the budget moves with other counts).
    pub fn remaining(&self, r: Resource) -> u64 {
        if r == Resource::Retry && self.limits.retry_budget.is_some() {
            return 0;
        }
        self.fixed_max(r).saturating_sub(u64::from(self.count(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryBudget;

    fn limits(cx: u32, pending: u32, rq: u32, retries: u32) -> Thresholds {
        Thresholds {
            max_connections: cx,
            max_pending_requests: pending,
            max_requests: rq,
            max_retries: retries,
            ..Thresholds::default()
        }
    }

    #[test]
    fn envoy_defaults() {
        let b = Breakers::default();
        assert_eq!(b.max(Resource::Connection), 1024);
        assert_eq!(b.max(Resource::Pending), 1024);
        assert_eq!(b.max(Resource::Request), 1024);
        assert_eq!(b.max(Resource::Retry), 3);
        assert!(!b.limits.track_remaining);
    }

    #[test]
    fn a_limit_refuses_once_reached_and_opens_its_gauge() {
        let mut b = Breakers::new(limits(2, 1, 5, 3));
        assert!(b.acquire(Resource::Connection));
        assert!(!b.open(Resource::Connection));
        assert_eq!(b.remaining(Resource::Connection), 1);
        assert!(b.acquire(Resource::Connection));
        assert!(b.open(Resource::Connection));
        assert_eq!(b.remaining(Resource::Connection), 0);
        assert!(!b.acquire(Resource::Connection));
        assert_eq!(b.count(Resource::Connection), 2);
        // Taken past the limit (it must exist): counted, remaining stays at 0.
        b.take(Resource::Connection);
        assert_eq!(b.count(Resource::Connection), 3);
        assert_eq!(b.remaining(Resource::Connection), 0);
        b.release(Resource::Connection);
        b.release(Resource::Connection);
        assert!(!b.open(Resource::Connection));
        assert!(b.acquire(Resource::Connection));
        // Resources are independent.
        assert!(b.acquire(Resource::Pending));
        assert!(!b.acquire(Resource::Pending));
        assert!(b.acquire(Resource::Request));
        // Releasing what is not held never goes below zero.
        for _ in 0..3 {
            b.release(Resource::Retry);
        }
        assert_eq!(b.count(Resource::Retry), 0);
    }

    #[test]
    fn zero_refuses_everything() {
        let mut b = Breakers::new(limits(0, 0, 0, 0));
        for r in Resource::ALL {
            assert!(!b.acquire(r), "{r:?}");
            assert!(b.open(r));
            assert_eq!(b.remaining(r), 0);
        }
    }

    #[test]
    fn a_retry_budget_follows_active_and_pending_requests() {
        let mut b = Breakers::new(Thresholds {
            retry_budget: Some(RetryBudget {
                budget_percent: 25.0,
                min_retry_concurrency: 2,
            }),
            ..limits(1024, 1024, 1024, 1)
        });
        // The floor: 2 retries with nothing active (max_retries 1 no longer applies).
        assert_eq!(b.max(Resource::Retry), 2);
        assert!(b.acquire(Resource::Retry));
        assert!(b.acquire(Resource::Retry));
        assert!(!b.acquire(Resource::Retry));
        // 25 % of 12 active + 4 pending = 4.
        for _ in 0..12 {
            b.take(Resource::Request);
        }
        for _ in 0..4 {
            b.take(Resource::Pending);
        }
        assert_eq!(b.max(Resource::Retry), 4);
        assert!(b.acquire(Resource::Retry));
        assert!(b.acquire(Resource::Retry));
        assert!(!b.acquire(Resource::Retry));
        // Truncated, as Envoy converts: 25 % of 15 is 3.
        b.release(Resource::Request);
        assert_eq!(b.max(Resource::Retry), 3);
        // Envoy's gauges under a budget: open follows max_retries, remaining is 0.
        assert!(b.open(Resource::Retry));
        assert_eq!(b.remaining(Resource::Retry), 0);
    }
}
