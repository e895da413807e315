//! The overload manager on the reactor: every `refresh_interval` the heap's pressure sets each
//! action's state (0 to 1) from its triggers, as Envoy's `OverloadManager` does; the request
//! path, the accept loop and the heap trim read the states. Its fields are written here only.

use std::time::{Duration, Instant};

use crate::config::{Overload, OverloadKind, OverloadTrigger};
use crate::stats::{Counter, Gauge, Import, Store};
use crate::util::Rng;

/// How often a saturated `shrink_heap` gives free memory back (Envoy's period).
const SHRINK_EVERY: Duration = Duration::from_secs(10);

const KINDS: [OverloadKind; 5] = [
    OverloadKind::StopAcceptingRequests,
    OverloadKind::DisableHttpKeepalive,
    OverloadKind::StopAcceptingConnections,
    OverloadKind::RejectIncomingConnections,
    OverloadKind::ShrinkHeap,
];

fn slot(k: OverloadKind) -> usize {
    KINDS.iter().position(|x| *x == k).unwrap_or(0)
}

/// A trigger's state at `pressure`.
pub fn trigger_state(t: &OverloadTrigger, pressure: f64) -> f64 {
    match *t {
        OverloadTrigger::Threshold(v) => {
            if pressure >= v {
                1.0
            } else {
                0.0
            }
        }
        OverloadTrigger::Scaled {
            scaling,
            saturation,
        } => {
            if pressure >= saturation {
                1.0
            } else if pressure < scaling {
                0.0
            } else {
                (pressure - scaling) / (saturation - scaling)
            }
        }
    }
}

/// What an update changed that the reactor acts on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Give free memory back now.
    pub shrink: bool,
    /// `stop_accepting_connections` ended: accept what waited in the backlogs.
    pub resume_accepting: bool,
}

struct ActionRt {
    kind: OverloadKind,
    triggers: Vec<OverloadTrigger>,
    active: Gauge,
    scale_percent: Gauge,
}

/// The overload manager's state. Without a polled monitor every state is 0 and nothing is
/// armed.
#[derive(Default)]
pub struct OverloadRt {
    refresh: Option<Duration>,
    max_heap: u64,
    actions: Vec<ActionRt>,
    /// The largest state of each kind's actions (`KINDS` order).
    state: [f64; 5],
    last_shrink: Option<Instant>,
    pressure: Option<Gauge>,
    failed_updates: Option<Counter>,
}

impl std::fmt::Debug for OverloadRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverloadRt")
            .field("refresh", &self.refresh)
            .field("state", &self.state)
            .finish()
    }
}

impl OverloadRt {
    /// Registers Envoy's overload stats for `cfg` (`overload.<monitor>.pressure`,
    /// `overload.<action>.active` and `.scale_percent`).
    pub fn build(cfg: &Overload, store: &mut Store) -> OverloadRt {
        let Some(max_heap) = cfg.max_heap else {
            return OverloadRt::default();
        };
        let m = &cfg.monitor_name;
        let actions = cfg
            .actions
            .iter()
            .map(|a| ActionRt {
                kind: a.kind,
                triggers: a.triggers.clone(),
                active: store.gauge(&format!("overload.{}.active", a.name), Import::Never),
                scale_percent: store
                    .gauge(&format!("overload.{}.scale_percent", a.name), Import::Never),
            })
            .collect();
        OverloadRt {
            refresh: Some(cfg.refresh),
            max_heap,
            actions,
            state: [0.0; 5],
            last_shrink: None,
            pressure: Some(store.gauge(&format!("overload.{m}.pressure"), Import::Never)),
            failed_updates: Some(store.counter(&format!("overload.{m}.failed_updates"))),
        }
    }

    /// When to sample next (`None`: no polled monitor).
    pub fn refresh(&self) -> Option<Duration> {
        self.refresh
    }

    /// Samples the heap (`in_use`: bytes, `None` when it could not be read) and sets every
    /// action's state.
    pub fn update(&mut self, in_use: Option<u64>, store: &mut Store, now: Instant) -> Changed {
        let Some(in_use) = in_use else {
            if let Some(c) = self.failed_updates {
                store.inc(c);
            }
            return Changed::default();
        };
        let pressure = in_use as f64 / self.max_heap.max(1) as f64;
        if let Some(g) = self.pressure {
            store.set(g, (pressure * 100.0).min(i64::MAX as f64) as i64);
        }
        let was_stopped = self.saturated(OverloadKind::StopAcceptingConnections);
        let mut state = [0.0f64; 5];
        for a in &self.actions {
            let s = a
                .triggers
                .iter()
                .map(|t| trigger_state(t, pressure))
                .fold(0.0, f64::max);
            store.set(a.active, i64::from(s >= 1.0));
            store.set(a.scale_percent, (s * 100.0) as i64);
            let k = &mut state[slot(a.kind)];
            *k = k.max(s);
        }
        self.state = state;
        let shrink = self.saturated(OverloadKind::ShrinkHeap)
            && self
                .last_shrink
                .is_none_or(|t| now.duration_since(t) >= SHRINK_EVERY);
        if shrink {
            self.last_shrink = Some(now);
        }
        Changed {
            shrink,
            resume_accepting: was_stopped
                && !self.saturated(OverloadKind::StopAcceptingConnections),
        }
    }

    /// Whether an action of this kind is saturated (state 1).
    pub fn saturated(&self, k: OverloadKind) -> bool {
        self.state[slot(k)] >= 1.0
    }

    /// Whether an action of this kind applies to this request or connection: with its state
    /// as probability, as Envoy's connection manager draws.
    pub fn roll(&self, k: OverloadKind, rng: &mut Rng) -> bool {
        let p = self.state[slot(k)];
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // 53 random bits: a uniform draw in [0, 1).
        ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Bytes of heap in use: what the C allocator has handed out and not had back, mapped chunks
/// included (the counterpart of tcmalloc's heap size less its free and unmapped pages, which
/// Envoy's fixed-heap monitor reads).
pub fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's own counters.
        let m = unsafe { nix::libc::mallinfo2() };
        u64::try_from(m.uordblks.saturating_add(m.hblkhd)).ok()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OverloadAction;

    fn rt(actions: &[(OverloadKind, OverloadTrigger)]) -> (OverloadRt, Store) {
        let mut store = Store::default();
        let cfg = Overload {
            refresh: Duration::from_millis(250),
            max_heap: Some(1000),
            monitor_name: "envoy.resource_monitors.fixed_heap".into(),
            actions: actions
                .iter()
                .enumerate()
                .map(|(i, (kind, t))| OverloadAction {
                    name: format!("a{i}"),
                    kind: *kind,
                    triggers: vec![*t],
                })
                .collect(),
        };
        (OverloadRt::build(&cfg, &mut store), store)
    }

    #[test]
    fn triggers_follow_envoys_rules() {
        let th = OverloadTrigger::Threshold(0.9);
        assert_eq!(trigger_state(&th, 0.89), 0.0);
        assert_eq!(trigger_state(&th, 0.9), 1.0);
        let sc = OverloadTrigger::Scaled {
            scaling: 0.5,
            saturation: 0.9,
        };
        assert_eq!(trigger_state(&sc, 0.4), 0.0);
        assert!((trigger_state(&sc, 0.7) - 0.5).abs() < 1e-9);
        assert_eq!(trigger_state(&sc, 0.95), 1.0);
    }

    #[test]
    fn pressure_sets_states_stats_and_the_reactor_changes() {
        let (mut o, mut store) = rt(&[
            (
                OverloadKind::StopAcceptingRequests,
                OverloadTrigger::Threshold(0.9),
            ),
            (
                OverloadKind::StopAcceptingConnections,
                OverloadTrigger::Threshold(0.95),
            ),
            (OverloadKind::ShrinkHeap, OverloadTrigger::Threshold(0.5)),
        ]);
        let t0 = Instant::now();
        let mut rng = Rng::with_seed(7);
        assert_eq!(o.update(Some(100), &mut store, t0), Changed::default());
        assert!(!o.roll(OverloadKind::StopAcceptingRequests, &mut rng));
        let c = o.update(Some(960), &mut store, t0);
        assert!(c.shrink && !c.resume_accepting);
        assert!(o.roll(OverloadKind::StopAcceptingRequests, &mut rng));
        assert!(o.saturated(OverloadKind::StopAcceptingConnections));
        // Shrinking repeats only after its period.
        let c = o.update(Some(960), &mut store, t0 + Duration::from_secs(1));
        assert!(!c.shrink);
        let c = o.update(Some(100), &mut store, t0 + Duration::from_secs(11));
        assert!(c.resume_accepting && !c.shrink);
        let pressure = "overload.envoy.resource_monitors.fixed_heap.pressure";
        assert_eq!(store.get(pressure), Some(10));
        assert_eq!(store.get("overload.a0.active"), Some(0));
        assert_eq!(store.get("overload.a2.scale_percent"), Some(0));
    }

    #[test]
    fn a_scaled_state_is_a_probability() {
        let (mut o, mut store) = rt(&[(
            OverloadKind::DisableHttpKeepalive,
            OverloadTrigger::Scaled {
                scaling: 0.0,
                saturation: 1.0,
            },
        )]);
        o.update(Some(250), &mut store, Instant::now());
        let mut rng = Rng::with_seed(1);
        let hits = (0..10_000)
            .filter(|_| o.roll(OverloadKind::DisableHttpKeepalive, &mut rng))
            .count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }

    #[test]
    fn without_a_monitor_nothing_applies() {
        let mut store = Store::default();
        let mut o = OverloadRt::build(&Overload::default(), &mut store);
        assert_eq!(o.refresh(), None);
        o.update(Some(u64::MAX), &mut store, Instant::now());
        assert!(!o.roll(OverloadKind::StopAcceptingRequests, &mut Rng::with_seed(3)));
    }

    #[test]
    fn the_heap_is_measured() {
        // Other tests' threads allocate and free meanwhile: a large margin.
        let before = heap_in_use().unwrap_or(0);
        let big = vec![1u8; 256 << 20];
        let during = heap_in_use().unwrap_or(0);
        assert!(during >= before + (192 << 20), "{before} {during}");
        drop(big);
    }
}
