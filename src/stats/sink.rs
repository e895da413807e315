//! The bootstrap's `stats_sinks`: Envoy's statsd and DogStatsD sinks. Every
//! `stats_flush_interval` the reactor's timer calls `Sinks::flush`, which sends the stats over
//! UDP in Envoy's statsd line format: `<prefix>.<name>:<delta>|c` for each counter this
//! process has counted (the increase since the previous flush), `<prefix>.<name>:<value>|g`
//! for each gauge ever set. The statsd sink sends full names, untagged, one line a datagram;
//! the DogStatsD sink sends the tag-extracted name with its tag
//! (`envoy.cluster.upstream_rq_total:3|c|#envoy.cluster_name:svc`, the same extraction as the
//! Prometheus output) and packs lines into datagrams up to `max_bytes_per_datagram`. baton
//! keeps no histograms, so no `|ms` lines are sent.
//!
//! A send never blocks (the socket is non-blocking and nothing is read from it) and a failure
//! never stops the process: a line that could not be sent is lost, as a datagram the network
//! drops would be, and a failing sink is logged once, then again when it recovers.

use std::fmt::{Display, Write as _};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::render::tag_extracted;
use super::Store;
use crate::config::StatsdSink;

/// One statsd or DogStatsD sink.
#[derive(Debug)]
struct Sink {
    addr: SocketAddr,
    prefix: String,
    /// DogStatsD: tag-extracted names and `|#tag:value`.
    tagged: bool,
    /// Lines packed into one datagram up to this size; 0: one line a datagram.
    max_bytes: usize,
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

/// Appends one line: `<prefix>.<name>:<value>|<kind>`, DogStatsD's with the tag-extracted
/// name and `|#<tag>:<value>` after the kind (Envoy's default tag format).
fn line(
    text: &mut String,
    prefix: &str,
    name: &str,
    value: impl Display,
    kind: char,
    tagged: bool,
) {
    if !tagged {
        let _ = write!(text, "{prefix}.{name}:{value}|{kind}");
        return;
    }
    let (stat, tag) = tag_extracted(name);
    let _ = write!(text, "{prefix}.{stat}:{value}|{kind}");
    if let Some((t, v)) = tag {
        let _ = write!(text, "|#{}:{v}", t.name);
    }
}

/// Appends the lines of one flush to `out` as (start, end) ranges of `text`, and moves each
/// counter's baseline to its current count.
fn lines(
    store: &Store,
    prefix: &str,
    tagged: bool,
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
        line(text, prefix, name, delta, 'c', tagged);
        out.push((start, text.len()));
    }
    for (name, v) in store.used_gauges() {
        let start = text.len();
        line(text, prefix, name, v, 'g', tagged);
        out.push((start, text.len()));
    }
}

/// Packs `lines` into datagrams as Envoy's UDP statsd writer does, calling `send` with each
/// datagram and the number of lines in it. A line of `max` bytes or more goes alone at once
/// (so 0 sends one line a datagram); the others are joined with `\n` into `buf` while they fit
/// in `max`, the datagram sent when the next would not, and what is left at the end.
fn pack<'t>(
    lines: impl Iterator<Item = &'t str>,
    max: usize,
    buf: &mut Vec<u8>,
    mut send: impl FnMut(&[u8], usize),
) {
    buf.clear();
    let mut held = 0;
    for l in lines {
        if l.len() >= max {
            send(l.as_bytes(), 1);
            continue;
        }
        if buf.len() + l.len() + 1 > max {
            if held > 0 {
                send(buf, held);
            }
            buf.clear();
            held = 0;
        } else if held > 0 {
            buf.push(b'\n');
        }
        buf.extend_from_slice(l.as_bytes());
        held += 1;
    }
    if held > 0 {
        send(buf, held);
    }
}

impl Sink {
    fn flush(&mut self, store: &Store, scratch: &mut Scratch) -> Flushed {
        let Scratch { text, ranges, buf } = scratch;
        text.clear();
        ranges.clear();
        lines(
            store,
            &self.prefix,
            self.tagged,
            &mut self.last,
            text,
            ranges,
        );
        let mut f = Flushed::default();
        let mut first_err: Option<io::Error> = None;
        if self.sock.is_none() {
            match open(self.addr) {
                Ok(s) => self.sock = Some(s),
                Err(e) => first_err = Some(e),
            }
        }
        let each = ranges.iter().filter_map(|&(a, b)| text.get(a..b));
        pack(each, self.max_bytes, buf, |datagram, n| {
            let r = match &self.sock {
                Some(s) => s.send_to(datagram, self.addr).map(|_| ()),
                None => Err(io::Error::other("no socket")),
            };
            match r {
                Ok(()) => f.sent += n,
                Err(e) => {
                    f.failed += n;
                    first_err.get_or_insert(e);
                }
            }
        });
        let kind = if self.tagged { "dog_statsd" } else { "statsd" };
        match first_err {
            Some(e) if !self.failing => {
                self.failing = true;
                log::warn!(
                    "stats sink {kind} {}: {} of {} lines not sent: {e} (logged again when it recovers)",
                    self.addr,
                    f.failed.max(1),
                    ranges.len()
                );
            }
            None if self.failing => {
                self.failing = false;
                log::info!("stats sink {kind} {}: sending again", self.addr);
            }
            _ => {}
        }
        f
    }
}

/// Buffers one flush reuses across sinks: the lines' text, their ranges, a datagram.
#[derive(Default)]
struct Scratch {
    text: String,
    ranges: Vec<(usize, usize)>,
    buf: Vec<u8>,
}

impl Sinks {
    pub fn new(cfg: &[StatsdSink], interval: Duration) -> Sinks {
        Sinks {
            sinks: cfg
                .iter()
                .map(|c| Sink {
                    addr: c.address,
                    prefix: c.prefix.clone(),
                    tagged: c.tagged,
                    max_bytes: usize::try_from(c.max_bytes_per_datagram).unwrap_or(usize::MAX),
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
        let mut scratch = Scratch::default();
        let mut total = Flushed::default();
        for s in &mut self.sinks {
            let f = s.flush(store, &mut scratch);
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
        collect_as(store, prefix, false, last)
    }

    fn collect_as(store: &Store, prefix: &str, tagged: bool, last: &mut Vec<u64>) -> Vec<String> {
        let (mut text, mut r) = (String::new(), Vec::new());
        lines(store, prefix, tagged, last, &mut text, &mut r);
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
                tagged: false,
                max_bytes_per_datagram: 0,
            }],
            Duration::from_secs(5),
        );
        for _ in 0..3 {
            let f = sinks.flush(&s);
            assert_eq!(f.sent + f.failed, 1);
        }
    }

    #[test]
    fn dogstatsd_lines_have_the_tag_extracted_name_and_the_tag_after_the_kind() {
        let mut s = Store::default();
        let c = s.counter("cluster.a.b.upstream_rq_total");
        let h = s.counter("http.ingress_http.downstream_rq_total");
        let l = s.counter("listener.127.0.0.1_10000.downstream_cx_total");
        let cb = s.gauge("cluster.z.circuit_breakers.default.cx_open", Import::Never);
        let g = s.gauge("server.live", Import::Never);
        s.add(c, 3);
        s.add(h, 2);
        s.inc(l);
        s.set(cb, 1);
        s.set(g, 1);
        let mut last = Vec::new();
        let mut got = collect_as(&s, "envoy", true, &mut last);
        got.sort();
        assert_eq!(
            got,
            vec![
                "envoy.cluster.circuit_breakers.default.cx_open:1|g|#envoy.cluster_name:z",
                "envoy.cluster.upstream_rq_total:3|c|#envoy.cluster_name:a.b",
                "envoy.http.downstream_rq_total:2|c|#envoy.http_conn_manager_prefix:ingress_http",
                "envoy.listener.downstream_cx_total:1|c|#envoy.listener_address:127.0.0.1_10000",
                // No tag: the full name, nothing after the kind.
                "envoy.server.live:1|g",
            ]
        );
        s.add(c, 4);
        assert!(collect_as(&s, "p", true, &mut last)
            .contains(&"p.cluster.upstream_rq_total:4|c|#envoy.cluster_name:a.b".to_string()));
    }

    fn packed(lines: &[&str], max: usize) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        pack(lines.iter().copied(), max, &mut buf, |d, n| {
            out.push((String::from_utf8_lossy(d).into_owned(), n))
        });
        out
    }

    #[test]
    fn datagrams_pack_lines_up_to_the_maximum() {
        let l = ["aaaa", "bbbb", "cccc", "dd"];
        // Unset (0): one line a datagram.
        assert_eq!(
            packed(&l, 0),
            vec![
                ("aaaa".into(), 1),
                ("bbbb".into(), 1),
                ("cccc".into(), 1),
                ("dd".into(), 1)
            ]
        );
        // 9 bytes hold two 4-byte lines and their newline; the third starts the next.
        assert_eq!(
            packed(&l, 9),
            vec![("aaaa\nbbbb".into(), 2), ("cccc\ndd".into(), 2)]
        );
        // 8 does not: each 4-byte line alone, then "dd" joins the last.
        assert_eq!(
            packed(&l, 8),
            vec![
                ("aaaa".into(), 1),
                ("bbbb".into(), 1),
                ("cccc\ndd".into(), 2)
            ]
        );
        // A line as long as the maximum or longer goes alone at once, ahead of held ones.
        assert_eq!(
            packed(&["a", "bbbbb", "c"], 5),
            vec![("bbbbb".into(), 1), ("a\nc".into(), 2)]
        );
        // Everything in one when it fits; nothing to send sends nothing.
        assert_eq!(packed(&l, 1500), vec![("aaaa\nbbbb\ncccc\ndd".into(), 4)]);
        assert!(packed(&[], 1500).is_empty());
    }
}
