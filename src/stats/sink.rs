//! The bootstrap's `stats_sinks`: Envoy's statsd sink. Every `stats_flush_interval` the
//! reactor's timer calls `Sinks::flush`, which sends one UDP datagram per stat, in Envoy's
//! statsd line format without tags: `<prefix>.<name>:<delta>|c` for each counter this
//! process has counted (the increase since the previous flush), `<prefix>.<name>:<value>|g`
//! for each gauge ever set. baton keeps no histograms, so no `|ms` lines are sent.
//!
//! A send never blocks (the socket is non-blocking and nothing is read from it) and a failure
//! never stops the process: a line that could not be sent is lost, as a datagram the network
//! drops would be, and a failing sink is logged once, then again when it recovers.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::Store;
use crate::config::StatsdSink;

/// One statsd sink.
#[derive(Debug)]
struct Sink {
    addr: SocketAddr,
    prefix: String,
    /// Opened at the first flush (and again after an open failure).
    sock: Option<UdpSocket>,
    /// Each counter's own count at the previous flush, by counter index.
    last: Vec<u64>,
    /// The previous flush failed to send (logged once until one succeeds whole).
    failing: bool,
}

/// Every configured sink and the flush interval.
#[derive(Debug)]
pub struct Sinks {
    sinks: Vec<Sink>,
    interval: Duration,
}

/// What one flush did, for the log and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    pub failed: usize,
}

fn open(addr: SocketAddr) -> io::Result<UdpSocket> {
    let any = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Appends the statsd lines of one flush to `out` as (start, end) ranges of `text`, and
/// moves each counter's baseline to its current count.
fn lines(
    store: &Store,
    prefix: &str,
    last: &mut Vec<u64>,
    text: &mut String,
    out: &mut Vec<(usize, usize)>,
) {
    for (i, name, own) in store.own_counters() {
        if last.len() <= i {
            last.resize(i + 1, 0);
        }
        let Some(prev) = last.get_mut(i) else {
            continue;
        };
        // Envoy sends a counter once it has counted, its delta 0 when idle since.
        if own == 0 {
            continue;
        }
        let delta = own.wrapping_sub(*prev);
        *prev = own;
        let start = text.len();
        let _ = write!(text, "{prefix}.{name}:{delta}|c");
        out.push((start, text.len()));
    }
    for (name, v) in store.used_gauges() {
        let start = text.len();
        let _ = write!(text, "{prefix}.{name}:{v}|g");
        out.push((start, text.len()));
    }
}

impl Sink {
    fn flush(
        &mut self,
        store: &Store,
        text: &mut String,
        ranges: &mut Vec<(usize, usize)>,
    ) -> Flushed {
        text.clear();
        ranges.clear();
        lines(store, &self.prefix, &mut self.last, text, ranges);
        let mut f = Flushed::default();
        let mut first_err: Option<io::Error> = None;
        if self.sock.is_none() {
            match open(self.addr) {
                Ok(s) => self.sock = Some(s),
                Err(e) => first_err = Some(e),
            }
        }
        for &(a, b) in ranges.iter() {
            let Some(line) = text.get(a..b) else {
                continue;
            };
            let r = match &self.sock {
                Some(s) => s.send_to(line.as_bytes(), self.addr).map(|_| ()),
                None => Err(io::Error::other("no socket")),
            };
            match r {
                Ok(()) => f.sent += 1,
                Err(e) => {
                    f.failed += 1;
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if !self.failing => {
                self.failing = true;
                log::warn!(
                    "stats sink statsd {}: {} of {} lines not sent: {e} (logged again when it recovers)",
                    self.addr,
                    f.failed.max(1),
                    ranges.len()
                );
            }
            None if self.failing => {
                self.failing = false;
                log::info!("stats sink statsd {}: sending again", self.addr);
            }
            _ => {}
        }
        f
    }
}

impl Sinks {
    pub fn new(cfg: &[StatsdSink], interval: Duration) -> Sinks {
        Sinks {
            sinks: cfg
                .iter()
                .map(|c| Sink {
                    addr: c.address,
                    prefix: c.prefix.clone(),
                    sock: None,
                    last: Vec::new(),
                    failing: false,
                })
                .collect(),
            interval,
        }
    }

    /// How often to flush; `None` when there is no sink (no timer is armed).
    pub fn interval(&self) -> Option<Duration> {
        (!self.sinks.is_empty()).then_some(self.interval)
    }

    /// Sends the stats to every sink.
    pub fn flush(&mut self, store: &Store) -> Flushed {
        let mut text = String::new();
        let mut ranges = Vec::new();
        let mut total = Flushed::default();
        for s in &mut self.sinks {
            let f = s.flush(store, &mut text, &mut ranges);
            total.sent += f.sent;
            total.failed += f.failed;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Import;

    fn collect(store: &Store, prefix: &str, last: &mut Vec<u64>) -> Vec<String> {
        let (mut text, mut r) = (String::new(), Vec::new());
        lines(store, prefix, last, &mut text, &mut r);
        r.iter().map(|&(a, b)| text[a..b].to_string()).collect()
    }

    #[test]
    fn counters_send_deltas_and_gauges_their_value() {
        let mut s = Store::default();
        let c = s.counter("http.in.downstream_rq_total");
        s.counter("cluster.x.never_counted");
        let g = s.gauge("server.live", Import::Never);
        s.gauge("cluster.x.untouched", Import::Accumulate);
        s.add(c, 3);
        s.set(g, 1);
        let mut last = Vec::new();
        assert_eq!(
            collect(&s, "envoy", &mut last),
            vec![
                "envoy.http.in.downstream_rq_total:3|c",
                "envoy.server.live:1|g"
            ]
        );
        s.add(c, 2);
        assert_eq!(
            collect(&s, "p", &mut last),
            vec!["p.http.in.downstream_rq_total:2|c", "p.server.live:1|g"]
        );
        // Idle since: a 0 delta, still sent (Envoy sends every used counter).
        assert_eq!(
            collect(&s, "p", &mut last)[0],
            "p.http.in.downstream_rq_total:0|c"
        );
    }

    #[test]
    fn a_parents_counts_are_not_sent_again() {
        let mut parent = Store::default();
        let pc = parent.counter("c.total");
        parent.add(pc, 10);
        let mut child = Store::default();
        let cc = child.counter("c.total");
        child.merge_parent(&parent.snapshot());
        let mut last = Vec::new();
        assert!(collect(&child, "e", &mut last).is_empty());
        child.inc(cc);
        assert_eq!(collect(&child, "e", &mut last), vec!["e.c.total:1|c"]);
    }

    #[test]
    fn a_refused_or_unreachable_sink_never_fails_the_flush() {
        let mut s = Store::default();
        let c = s.counter("a");
        s.inc(c);
        // Nothing listens on this port; UDP sends succeed or fail, neither stops anything.
        let hole = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = hole.local_addr().expect("addr");
        drop(hole);
        let mut sinks = Sinks::new(
            &[StatsdSink {
                address: addr,
                prefix: "envoy".into(),
            }],
            Duration::from_secs(5),
        );
        for _ in 0..3 {
            let f = sinks.flush(&s);
            assert_eq!(f.sent + f.failed, 1);
        }
    }
}
