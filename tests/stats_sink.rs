//! The statsd stats sink (`stats_sinks` with `envoy.stat_sinks.statsd`) through the real
//! binary: UDP sockets on 127.0.0.1 receive Envoy's statsd lines every
//! `stats_flush_interval` after requests proxied with curl. Counter lines carry the increase
//! since the previous flush (their deltas add up to the requests sent, and later flushes do
//! not repeat totals), gauges their value, each sink with its prefix. The DogStatsD sink
//! (`envoy.stat_sinks.dog_statsd`) sends tag-extracted names with `|#tag:value`, one line a
//! datagram or packed up to `max_bytes_per_datagram`.

mod admin_util;
mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use admin_util::*;

const STATSD: &str = "StatsdSink";
const DOG: &str = "DogStatsdSink";

/// One `stats_sinks` entry: `name`, `@type` `…metrics.v3.<ty>`, sending to 127.0.0.1 at
/// `port` (what follows `port_value:`), then `more` lines of its `typed_config`.
fn sink(name: &str, ty: &str, port: impl std::fmt::Display, more: &str) -> String {
    format!(
        "- name: {name}\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.config.metrics.v3.{ty}\n    \
         address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n{more}"
    )
}

fn port(sock: &UdpSocket) -> u16 {
    sock.local_addr().expect("addr").port()
}

/// Every datagram received before `until` (each one statsd line).
fn receive(sock: &UdpSocket, until: Instant) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    out
}

/// The values of the counter lines `name:V|c` among `lines`.
fn deltas(lines: &[String], name: &str) -> Vec<u64> {
    tagged_deltas(lines, name, "")
}

/// The values of the counter lines `name:V|c<tags>` among `lines`.
fn tagged_deltas(lines: &[String], name: &str, tags: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix(&format!("{name}:"))?
                .strip_suffix(&format!("|c{tags}"))
        })
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: {v}")))
        .collect()
}

/// Receives on `sock` until the deltas of counter `name` add up to `want` (bounded).
fn until_sum(sock: &UdpSocket, seen: &mut Vec<String>, name: &str, want: u64) {
    until_tagged_sum(sock, seen, name, "", want);
}

/// `until_sum` for the lines of counter `name` with `tags` after the kind.
fn until_tagged_sum(sock: &UdpSocket, seen: &mut Vec<String>, name: &str, tags: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tagged_deltas(seen, name, tags).iter().sum::<u64>() < want && Instant::now() < deadline {
        seen.extend(receive(sock, Instant::now() + Duration::from_millis(300)));
    }
    assert_eq!(
        tagged_deltas(seen, name, tags).iter().sum::<u64>(),
        want,
        "{name}{tags} in {seen:#?}"
    );
}

fn get(port: u16, path: &str) {
    let code = common::curl_ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}{path}"),
    ]);
    assert_eq!(code.trim(), "200", "{path}");
}

#[test]
fn statsd_lines_arrive_over_udp_with_counter_deltas() {
    let edge = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let plain = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sinks = format!(
        "stats_flush_interval: 0.2s\nstats_sinks:\n{}{}",
        sink(
            "envoy.stat_sinks.statsd",
            STATSD,
            port(&edge),
            "    prefix: edge\n"
        ),
        sink(
            "envoy.statsd",
            STATSD,
            format!("{}, protocol: UDP", port(&plain)),
            ""
        ),
    );
    let (_b, _up, s) = start_edited(vec![], |y| format!("{y}{sinks}"));
    for _ in 0..3 {
        get(s.listen, "/status/200");
    }
    let rq = "edge.http.ingress_http.downstream_rq_total";
    let mut seen = Vec::new();
    until_sum(&edge, &mut seen, rq, 3);
    let up_rq = deltas(&seen, "edge.cluster.svc.upstream_rq_total");
    assert_eq!(up_rq.iter().sum::<u64>(), 3, "{seen:#?}");
    assert!(
        seen.iter().any(|l| l == "edge.server.live:1|g"),
        "a gauge with its value: {seen:#?}"
    );
    assert!(
        seen.iter().all(|l| l.starts_with("edge.")
            && (l.ends_with("|c") || l.ends_with("|g"))
            && l.contains(':')),
        "{seen:#?}"
    );

    // Two more: later flushes add 2 in all, never the total again; an idle flush sends 0.
    for _ in 0..2 {
        get(s.listen, "/status/200");
    }
    until_sum(&edge, &mut seen, rq, 5);
    let before = deltas(&seen, rq).len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while deltas(&seen, rq).len() < before + 2 {
        assert!(Instant::now() < deadline, "no more flushes: {seen:#?}");
        seen.extend(receive(&edge, Instant::now() + Duration::from_millis(300)));
    }
    assert_eq!(deltas(&seen, rq).iter().sum::<u64>(), 5, "{seen:#?}");
    assert!(deltas(&seen, rq).contains(&0), "idle flushes send 0");

    // The second sink: the default prefix, the same counts.
    let mut other = Vec::new();
    until_sum(
        &plain,
        &mut other,
        "envoy.http.ingress_http.downstream_rq_total",
        5,
    );
    assert!(other.iter().all(|l| l.starts_with("envoy.")), "{other:#?}");
}

#[test]
fn the_last_counts_are_flushed_at_exit_and_a_missing_collector_costs_nothing() {
    // The collector's port is closed: every send may fail (ICMP), the proxy serves on.
    let gone = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let gone_port = gone.local_addr().expect("addr").port();
    drop(gone);
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sinks = format!(
        "stats_flush_interval: 60s\nstats_sinks:\n{}{}",
        sink("envoy.stat_sinks.statsd", STATSD, gone_port, ""),
        sink("envoy.stat_sinks.statsd", STATSD, port(&collector), ""),
    );
    let (mut b, _up, s) = start_edited(vec![], |y| format!("{y}{sinks}"));
    for _ in 0..4 {
        get(s.listen, "/status/200");
    }
    // No flush is due for a minute: the exit sends what was counted.
    b.sigterm();
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "no exit");
    let mut seen = Vec::new();
    until_sum(
        &collector,
        &mut seen,
        "envoy.http.ingress_http.downstream_rq_total",
        4,
    );
}

#[test]
fn the_stats_matcher_leaves_stats_out_of_every_read_out_and_the_sink() {
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let extra = format!(
        "stats_flush_interval: 0.2s\nstats_config:\n  stats_matcher:\n    inclusion_list:\n      patterns:\n      - prefix: http.ingress_http.\n      - exact: server.live\n\
         stats_sinks:\n{}",
        sink("envoy.stat_sinks.statsd", STATSD, port(&collector), ""),
    );
    let (_b, _up, s) = start_edited(vec![], |y| format!("{y}{extra}"));
    get(s.listen, "/status/200");
    let mut seen = Vec::new();
    until_sum(
        &collector,
        &mut seen,
        "envoy.http.ingress_http.downstream_rq_total",
        1,
    );
    assert!(
        seen.iter()
            .all(|l| l.starts_with("envoy.http.ingress_http.")
                || l.starts_with("envoy.server.live:")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l == "envoy.server.live:1|g"),
        "{seen:#?}"
    );
    // The admin's read-outs leave the same stats out (they are still counted inside).
    let text = admin_get(s.admin, "/stats");
    assert!(
        text.contains("http.ingress_http.downstream_rq_total: 1"),
        "{text}"
    );
    assert!(text.contains("server.live: 1"), "{text}");
    assert!(!text.contains("cluster.svc."), "{text}");
    assert!(!text.contains("server.uptime"), "{text}");
    let prom = admin_get(s.admin, "/stats/prometheus");
    assert!(prom.contains("envoy_http_downstream_rq_total"), "{prom}");
    assert!(!prom.contains("envoy_cluster_"), "{prom}");
}

#[test]
fn dogstatsd_lines_arrive_tagged_and_packed_into_datagrams() {
    let single = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let packed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sinks = format!(
        "stats_flush_interval: 0.2s\nstats_sinks:\n{}{}",
        sink("envoy.stat_sinks.dog_statsd", DOG, port(&single), ""),
        sink(
            "envoy.dog_statsd",
            DOG,
            port(&packed),
            "    prefix: dd\n    max_bytes_per_datagram: 512\n"
        ),
    );
    let (_b, _up, s) = start_edited(vec![], |y| format!("{y}{sinks}"));
    for _ in 0..3 {
        get(s.listen, "/status/200");
    }
    // No max_bytes_per_datagram: one line a datagram, Envoy's default.
    let mut seen = Vec::new();
    let hcm = "|#envoy.http_conn_manager_prefix:ingress_http";
    until_tagged_sum(&single, &mut seen, "envoy.http.downstream_rq_total", hcm, 3);
    assert_eq!(
        tagged_deltas(
            &seen,
            "envoy.cluster.upstream_rq_total",
            "|#envoy.cluster_name:svc"
        )
        .iter()
        .sum::<u64>(),
        3,
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l == "envoy.server.live:1|g"),
        "an untagged gauge: {seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("envoy.listener.")
            && l.contains("|#envoy.listener_address:127.0.0.1_")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\n')
            && !l.contains("ingress_http.")
            && !l.contains(".svc.")
            && (l.contains("|c") || l.contains("|g"))),
        "one line a datagram, names without their tag values: {seen:#?}"
    );

    // max_bytes_per_datagram: 512: several lines a datagram, none over 512 bytes.
    let mut datagrams = Vec::new();
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tagged_deltas(&lines, "dd.http.downstream_rq_total", hcm)
        .iter()
        .sum::<u64>()
        < 3
        && Instant::now() < deadline
    {
        let got = receive(&packed, Instant::now() + Duration::from_millis(300));
        lines.extend(got.iter().flat_map(|d| d.split('\n').map(str::to_string)));
        datagrams.extend(got);
    }
    assert_eq!(
        tagged_deltas(&lines, "dd.http.downstream_rq_total", hcm)
            .iter()
            .sum::<u64>(),
        3,
        "{datagrams:#?}"
    );
    assert!(datagrams.iter().all(|d| d.len() <= 512), "{datagrams:#?}");
    assert!(
        datagrams.iter().any(|d| d.matches('\n').count() >= 2),
        "lines packed together: {datagrams:#?}"
    );
    assert!(lines.iter().all(|l| l.starts_with("dd.")), "{lines:#?}");
}
