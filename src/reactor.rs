//! Reactor primitives shared by everything on the one mio thread: how a `Token` names its
//! owner, and the deadline heap that replaces any scan over connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use mio::Token;

const KIND_SHIFT: u32 = 48;
const INDEX_MASK: usize = (1 << KIND_SHIFT) - 1;

/// What a token belongs to. The kind lives in the high bits, the slab index in the low ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    Listener(usize),
    Waker,
    Signals,
    /// A client connection (session index).
    Down(usize),
    /// An upstream connection (its slot in `Ctx::up_owner`, stable while pooled and reused).
    Up(usize),
    /// An admin-interface connection or listener (admin-slab index; usize::MAX = listener).
    Admin(usize),
    /// The hot-restart channel (listener or peer).
    Restart(usize),
    /// An active health check connection (index in `cluster::checker::Checkers`).
    Health(usize),
    /// A Zipkin report's connection (index in `tracing::collector::Tracer`).
    Trace(usize),
    /// A shadow request's connection (index in `http::mirror::Mirrors`).
    Mirror(usize),
    /// The inotify instance watching `dynamic_resources` files (`server::watch`).
    Files,
    /// An ext_authz check's connection (the index of the session whose request waits).
    Check(usize),
}

impl Tok {
    pub fn token(self) -> Token {
        let (kind, idx) = match self {
            Tok::Listener(i) => (1, i),
            Tok::Waker => (2, 0),
            Tok::Signals => (3, 0),
            Tok::Down(i) => (4, i),
            Tok::Up(i) => (5, i),
            Tok::Admin(i) => (7, i & INDEX_MASK),
            Tok::Restart(i) => (8, i & INDEX_MASK),
            Tok::Health(i) => (9, i),
            Tok::Trace(i) => (10, i),
            Tok::Mirror(i) => (11, i),
            Tok::Files => (12, 0),
            Tok::Check(i) => (13, i),
        };
        Token((kind << KIND_SHIFT) | (idx & INDEX_MASK))
    }

    pub fn from_token(t: Token) -> Option<Tok> {
        let idx = t.0 & INDEX_MASK;
        Some(match t.0 >> KIND_SHIFT {
            1 => Tok::Listener(idx),
            2 => Tok::Waker,
            3 => Tok::Signals,
            4 => Tok::Down(idx),
            5 => Tok::Up(idx),
            7 => Tok::Admin(if idx == INDEX_MASK { usize::MAX } else { idx }),
            8 => Tok::Restart(if idx == INDEX_MASK { usize::MAX } else { idx }),
            9 => Tok::Health(idx),
            10 => Tok::Trace(idx),
            11 => Tok::Mirror(idx),
            12 => Tok::Files,
            13 => Tok::Check(idx),
            _ => return None,
        })
    }
}

/// What a deadline is for. Stale entries are filtered by their owner (generation checks), so
/// re-arming never needs to find and delete an old entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKey {
    /// (session index, session generation)
    Session(usize, u64),
    /// DNS refresh of one cluster.
    Dns(usize),
    /// Periodic housekeeping (date header cache, access-log flush).
    Tick,
    /// Hot-restart protocol deadlines.
    Restart,
    /// Listeners paused for lack of file descriptors try again.
    AcceptRetry,
    /// Admin connections past their time are closed.
    AdminSweep,
    /// Buffers the pool kept through a quiet period are freed.
    PoolTrim,
    /// (checker index, checker generation): a health check is due or timed out.
    Health(usize, u64),
    /// A Zipkin reporter's flush interval ended (reporter index).
    TraceFlush(usize),
    /// (report index, generation): a Zipkin report timed out.
    TraceReport(usize, u64),
    /// (shadow index, generation): a shadow request timed out.
    Mirror(usize, u64),
    /// The stats sinks' flush (`stats_flush_interval`).
    StatsFlush,
    /// Outlier detection interval of one cluster.
    Outlier(usize),
    /// Idle pooled upstream connections to this address may be past their idle deadline.
    UpIdle(std::net::SocketAddr),
    /// The overload manager samples its monitor (`refresh_interval`).
    Overload,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl Timers {
    pub fn arm(&mut self, at: Instant, key: TimerKey) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline, for the poll timeout.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops one entry that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Keeps only the entries `live` accepts. Entries of closed sessions would otherwise
    /// stay until their (possibly hour-long) idle deadline.
    pub fn retain(&mut self, mut live: impl FnMut(Instant, TimerKey) -> bool) {
        self.heap.retain(|Reverse((at, key))| live(*at, *key));
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_round_trip() {
        for t in [
            Tok::Listener(3),
            Tok::Waker,
            Tok::Signals,
            Tok::Down(7),
            Tok::Up(7),
            Tok::Admin(usize::MAX),
            Tok::Admin(2),
            Tok::Restart(usize::MAX),
            Tok::Health(4),
            Tok::Trace(5),
            Tok::Files,
            Tok::Check(9),
            Tok::Mirror(6),
        ] {
            assert_eq!(Tok::from_token(t.token()), Some(t));
        }
        assert_eq!(Tok::from_token(Token(0)), None);
    }

    #[test]
    fn timers_pop_in_deadline_order() {
        let now = Instant::now();
        let mut t = Timers::default();
        t.arm(now + Duration::from_secs(2), TimerKey::Tick);
        t.arm(now + Duration::from_secs(1), TimerKey::Dns(0));
        assert_eq!(t.next(), Some(now + Duration::from_secs(1)));
        assert!(t.pop_due(now).is_none());
        let later = now + Duration::from_secs(3);
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(TimerKey::Dns(0)));
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(TimerKey::Tick));
        assert!(t.is_empty());
    }
}
