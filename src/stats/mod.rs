//! Counters and gauges with Envoy's names, built so a hot restart can carry them over.
//!
//! Names are resolved to typed indices once, at start-up (`scopes.rs`), so recording on the data
//! path is an array increment: no allocation, no hash lookup. Every stat holds two values: this
//! process's own, and what its parent reported. A counter shows own + parent (the parent sends
//! its running totals, which already include its own parent's, so the sum never goes down); an
//! importable gauge shows own + parent until the parent is gone (`clear_parent`), a
//! non-importable one (server.live, uptime...) shows only its own.

mod render;
mod scopes;
pub mod sink;

/// What travels on the restart channel (the state machine's wire type).
pub use baton_statemachine::StatsSnapshot as Snapshot;
pub use render::{json_str, render_json, render_prometheus, render_text};
pub use scopes::{
    listener_scope, ClusterStats, FilterCounts, FilterStats, HostStats, HttpStats, ListenerStats,
    Overloaded, PoolLimit, Refused, ServerState, ServerStats, Stats,
};

use std::collections::HashMap;

use crate::config::StatsMatcher;

/// Index of a counter in a `Store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(u32);

/// Index of a gauge in a `Store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(u32);

/// Whether a parent's value of a gauge is added to ours during a hot restart (Envoy's
/// `ImportMode`): connection gauges accumulate, process facts (live, uptime, epoch) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    Accumulate,
    Never,
}

#[derive(Debug)]
struct GaugeSlot {
    name: String,
    own: i64,
    parent: i64,
    import: Import,
    /// Set or changed at least once (Envoy's "used" flag: what a stats sink sends).
    used: bool,
    hidden: bool,
}

#[derive(Debug)]
struct CounterSlot {
    name: String,
    own: u64,
    parent: u64,
    /// Left out of the read-outs and the sinks by `stats_config.stats_matcher`.
    hidden: bool,
}

/// Whether a stat is a counter or a gauge, for the renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// The registry: every stat by index, and a name index used only at registration and merge.
#[derive(Debug, Default)]
pub struct Store {
    counters: Vec<CounterSlot>,
    gauges: Vec<GaugeSlot>,
    by_name: HashMap<String, (Kind, u32)>,
    matcher: StatsMatcher,
}

/// Whether `name` is left out by `m` (Envoy's `StatsMatcher`, on the full name).
fn rejects(m: &StatsMatcher, name: &str) -> bool {
    let any = |l: &[crate::config::StringMatch]| {
        l.iter()
            .any(|p| crate::route::matcher::string_matches(p, name))
    };
    match m {
        StatsMatcher::All => false,
        StatsMatcher::Nothing => true,
        StatsMatcher::Except(l) => any(l),
        StatsMatcher::Only(l) => !any(l),
    }
}

impl Store {
    /// `stats_config.stats_matcher`: the stats it rejects (registered or still to come) are
    /// counted as before (the proxy may read them) but left out of every read-out and sink, as
    /// Envoy does not instantiate them.
    pub fn set_matcher(&mut self, m: StatsMatcher) {
        for c in &mut self.counters {
            c.hidden = rejects(&m, &c.name);
        }
        for g in &mut self.gauges {
            g.hidden = rejects(&m, &g.name);
        }
        self.matcher = m;
    }

    /// The counter `name`, if registered.
    pub fn find_counter(&self, name: &str) -> Option<Counter> {
        match self.by_name.get(name) {
            Some(&(Kind::Counter, i)) => Some(Counter(i)),
            _ => None,
        }
    }

    /// Registers (or finds) the counter `name`. Two scopes with the same name (two listeners
    /// sharing a stat_prefix) share one counter, as in Envoy.
    pub fn counter(&mut self, name: &str) -> Counter {
        if let Some(&(Kind::Counter, i)) = self.by_name.get(name) {
            return Counter(i);
        }
        let i = self.counters.len() as u32;
        self.counters.push(CounterSlot {
            name: name.to_string(),
            own: 0,
            parent: 0,
            hidden: rejects(&self.matcher, name),
        });
        self.by_name.insert(name.to_string(), (Kind::Counter, i));
        Counter(i)
    }

    /// Registers (or finds) the gauge `name`.
    pub fn gauge(&mut self, name: &str, import: Import) -> Gauge {
        if let Some(&(Kind::Gauge, i)) = self.by_name.get(name) {
            return Gauge(i);
        }
        let i = self.gauges.len() as u32;
        self.gauges.push(GaugeSlot {
            name: name.to_string(),
            own: 0,
            parent: 0,
            import,
            used: false,
            hidden: rejects(&self.matcher, name),
        });
        self.by_name.insert(name.to_string(), (Kind::Gauge, i));
        Gauge(i)
    }

    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        if let Some(s) = self.counters.get_mut(c.0 as usize) {
            s.own = s.own.wrapping_add(n);
        }
    }

    #[inline]
    pub fn gauge_add(&mut self, g: Gauge, d: i64) {
        if let Some(s) = self.gauges.get_mut(g.0 as usize) {
            s.own = s.own.wrapping_add(d);
            s.used = true;
        }
    }

    #[inline]
    pub fn set(&mut self, g: Gauge, v: i64) {
        if let Some(s) = self.gauges.get_mut(g.0 as usize) {
            s.own = v;
            s.used = true;
        }
    }

    /// Every counter by index: its name and this process's own count (without what a
    /// hot-restart parent counted, which the parent reports itself).
    pub fn own_counters(&self) -> impl Iterator<Item = (usize, &str, u64)> {
        self.counters
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, c)| (i, c.name.as_str(), c.own))
    }

    /// Every gauge that was ever set or changed (here or in a hot-restart parent), with the
    /// value shown.
    pub fn used_gauges(&self) -> impl Iterator<Item = (&str, i64)> {
        self.gauges
            .iter()
            .enumerate()
            .filter(|(_, g)| g.used && !g.hidden)
            .map(|(i, g)| (g.name.as_str(), self.gauge_value(Gauge(i as u32))))
    }

    /// The value shown: own plus the parent's contribution.
    pub fn counter_value(&self, c: Counter) -> u64 {
        self.counters
            .get(c.0 as usize)
            .map_or(0, |s| s.own.wrapping_add(s.parent))
    }

    pub fn gauge_value(&self, g: Gauge) -> i64 {
        self.gauges.get(g.0 as usize).map_or(0, |s| match s.import {
            Import::Accumulate => s.own.wrapping_add(s.parent),
            Import::Never => s.own,
        })
    }

    /// Looks a stat up by its full name (admin and tests; never the data path).
    pub fn get(&self, name: &str) -> Option<i128> {
        match self.by_name.get(name)? {
            (Kind::Counter, i) => Some(i128::from(self.counter_value(Counter(*i)))),
            (Kind::Gauge, i) => Some(i128::from(self.gauge_value(Gauge(*i)))),
        }
    }

    /// Every stat the matcher keeps as (name, kind, value), sorted by name.
    pub fn entries(&self) -> Vec<(&str, Kind, i128)> {
        let mut v: Vec<(&str, Kind, i128)> =
            Vec::with_capacity(self.counters.len() + self.gauges.len());
        for (i, c) in self.counters.iter().enumerate() {
            if c.hidden {
                continue;
            }
            v.push((
                &c.name,
                Kind::Counter,
                i128::from(self.counter_value(Counter(i as u32))),
            ));
        }
        for (i, g) in self.gauges.iter().enumerate() {
            if g.hidden {
                continue;
            }
            v.push((
                &g.name,
                Kind::Gauge,
                i128::from(self.gauge_value(Gauge(i as u32))),
            ));
        }
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Everything a new process needs to continue these stats: counters as shown (own +
    /// parent) and the importable gauges as shown.
    pub fn snapshot(&self) -> Snapshot {
        let counters = (0..self.counters.len())
            .map(|i| {
                (
                    self.counters[i].name.clone(),
                    self.counter_value(Counter(i as u32)),
                )
            })
            .collect();
        let gauges = self
            .gauges
            .iter()
            .enumerate()
            .filter(|(_, g)| g.import == Import::Accumulate)
            .map(|(i, g)| (g.name.clone(), self.gauge_value(Gauge(i as u32))))
            .collect();
        Snapshot { counters, gauges }
    }

    /// Takes in the parent's latest snapshot. Counters: the parent's total replaces the
    /// previous parent total but never lowers it (a late or reordered snapshot cannot make a
    /// counter go down). Gauges: the parent's value replaces the previous one. Stats this
    /// process does not have (a cluster the new config dropped) are created, so their totals
    /// are not lost.
    pub fn merge_parent(&mut self, snap: &Snapshot) {
        for (name, v) in &snap.counters {
            let c = self.counter(name);
            if let Some(s) = self.counters.get_mut(c.0 as usize) {
                s.parent = s.parent.max(*v);
            }
        }
        for (name, v) in &snap.gauges {
            let g = match self.by_name.get(name.as_str()) {
                Some(&(Kind::Gauge, i)) => Gauge(i),
                Some(&(Kind::Counter, _)) => continue,
                None => self.gauge(name, Import::Accumulate),
            };
            if let Some(s) = self.gauges.get_mut(g.0 as usize) {
                s.parent = *v;
                s.used |= *v != 0;
            }
        }
    }

    /// The parent exited: its live gauge values no longer exist. Counter totals stay.
    pub fn clear_parent(&mut self) {
        for g in &mut self.gauges {
            g.parent = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_index_and_values_add() {
        let mut s = Store::default();
        let a = s.counter("http.x.downstream_rq_total");
        let b = s.counter("http.x.downstream_rq_total");
        assert_eq!(a, b);
        s.inc(a);
        s.add(b, 2);
        assert_eq!(s.counter_value(a), 3);
        let g = s.gauge("x.active", Import::Accumulate);
        s.gauge_add(g, 2);
        s.gauge_add(g, -1);
        assert_eq!(s.gauge_value(g), 1);
        assert_eq!(s.get("x.active"), Some(1));
        assert_eq!(s.get("nope"), None);
    }

    #[test]
    fn merge_continues_counters_and_tracks_parent_gauges() {
        let mut parent = Store::default();
        let pc = parent.counter("c.total");
        let pg = parent.gauge("c.active", Import::Accumulate);
        let pl = parent.gauge("server.live", Import::Never);
        parent.add(pc, 10);
        parent.set(pg, 4);
        parent.set(pl, 1);
        parent.counter("c.only_in_parent");

        let mut child = Store::default();
        let cc = child.counter("c.total");
        let cg = child.gauge("c.active", Import::Accumulate);
        let cl = child.gauge("server.live", Import::Never);
        child.set(cl, 1);
        child.inc(cc);
        child.set(cg, 1);
        child.merge_parent(&parent.snapshot());
        assert_eq!(child.counter_value(cc), 11);
        assert_eq!(child.gauge_value(cg), 5);
        assert_eq!(child.gauge_value(cl), 1, "live is never imported");
        assert_eq!(child.get("c.only_in_parent"), Some(0));

        // The parent keeps counting; its later snapshot adds only its increments.
        parent.add(pc, 5);
        parent.set(pg, 2);
        child.merge_parent(&parent.snapshot());
        assert_eq!(child.counter_value(cc), 16);
        assert_eq!(child.gauge_value(cg), 3);

        // A stale snapshot never lowers a counter.
        let mut stale = Store::default();
        let sc = stale.counter("c.total");
        stale.add(sc, 3);
        child.merge_parent(&stale.snapshot());
        assert_eq!(child.counter_value(cc), 16);

        child.clear_parent();
        assert_eq!(child.gauge_value(cg), 1);
        assert_eq!(child.counter_value(cc), 16);

        // A grandchild continues from the child's totals.
        let mut grand = Store::default();
        grand.merge_parent(&child.snapshot());
        assert_eq!(grand.get("c.total"), Some(16));
    }
}
