//! The TCP proxy network filter (`envoy.filters.network.tcp_proxy`): what loads, its
//! defaults, and every refusal naming its field.

use super::*;
use std::time::Duration;

const F: &str = "static_resources.listeners[0].filter_chains[0].filters[0]";
const T: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

/// The base document with its connection manager replaced by a TCP proxy whose
/// `typed_config` has `fields` (YAML flow-map entries) besides its `@type`.
fn tcp_doc(fields: &str) -> Value {
    let mut d = doc();
    set(
        &mut d,
        F,
        &format!(
            r#"{{name: envoy.filters.network.tcp_proxy, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, {fields}}}}}"#
        ),
    );
    d
}

fn tcp_ok(fields: &str) -> TcpProxy {
    let b = check(&tcp_doc(fields)).unwrap_or_else(|e| panic!("{fields}: {e}"));
    b.listeners[0].tcp().cloned().expect("a TCP proxy listener")
}

fn tcp_err(fields: &str) -> String {
    match check(&tcp_doc(fields)) {
        Ok(_) => panic!("expected an error for {fields}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_tcp_proxy_loads_with_envoys_defaults() {
    let t = tcp_ok("stat_prefix: passthrough, cluster: b");
    assert_eq!(
        t,
        TcpProxy {
            stat_prefix: "passthrough".into(),
            cluster: ClusterSpec::Single(1),
            idle_timeout: Some(Duration::from_secs(3600)),
            max_connect_attempts: 1,
            max_downstream_connection_duration: None,
            access_log: vec![],
            tunnel_hostname: None,
        }
    );
    let b = check(&tcp_doc("stat_prefix: p, cluster: a")).unwrap();
    assert!(b.listeners[0].hcm().is_none());
    assert!(b.listeners[0].access_log().is_empty());
    // Without a typed_config "@type", Envoy's names say which filter it is.
    let mut d = tcp_doc("stat_prefix: p, cluster: a");
    set(&mut d, &format!("{F}.name"), "envoy.tcp_proxy");
    set(
        &mut d,
        &format!("{T}.@type"),
        "x/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    );
    assert!(check(&d).unwrap().listeners[0].tcp().is_some());
}

#[test]
fn tcp_proxy_fields_are_read() {
    let t = tcp_ok(
        "stat_prefix: p, weighted_clusters: {clusters: [{name: a, weight: 3}, {name: b, weight: 1}]}, \
         idle_timeout: 0s, max_connect_attempts: 3, max_downstream_connection_duration: 2.5s, \
         flush_access_log_on_connected: false, \
         access_log: [{name: envoy.access_loggers.stdout}]",
    );
    assert_eq!(t.cluster, ClusterSpec::Weighted(vec![(0, 3), (1, 1)]));
    assert_eq!(t.idle_timeout, None);
    assert_eq!(t.max_connect_attempts, 3);
    assert_eq!(
        t.max_downstream_connection_duration,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(t.access_log.len(), 1);
    assert_eq!(t.access_log[0].path, "/dev/stdout");
    assert_eq!(
        tcp_ok("stat_prefix: p, cluster: a, idle_timeout: 10s").idle_timeout,
        Some(Duration::from_secs(10))
    );
}

#[test]
fn a_connection_limit_may_come_before_a_tcp_proxy() {
    let mut d = tcp_doc("stat_prefix: p, cluster: a");
    let filters = slot(
        &mut d,
        "static_resources.listeners[0].filter_chains[0].filters",
    );
    filters.as_sequence_mut().unwrap().insert(
        0,
        serde_yaml::from_str(r#"{name: cl, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit, stat_prefix: cl, max_connections: 10}}"#).unwrap(),
    );
    let b = check(&d).unwrap();
    assert_eq!(
        b.listeners[0]
            .connection_limit
            .as_ref()
            .unwrap()
            .max_connections,
        10
    );
    assert!(b.listeners[0].tcp().is_some());
}

/// `tunneling_config`: HTTP/1.1 CONNECT to a fixed hostname; the rest is refused by path.
#[test]
fn tunneling_config_takes_a_fixed_hostname_and_refuses_the_rest() {
    let t = tcp_ok("stat_prefix: p, cluster: b, tunneling_config: {hostname: \"host.com:443\"}");
    assert_eq!(t.tunnel_hostname.as_deref(), Some("host.com:443"));
    let base = "stat_prefix: p, cluster: a";
    for (value, at, why) in [
        (
            "{hostname: x, use_post: true}",
            "use_post",
            "not supported by baton (tunneling over POST)",
        ),
        (
            "{hostname: \"%DOWNSTREAM_LOCAL_PORT%\"}",
            "hostname",
            "not supported by baton (command operators in the hostname)",
        ),
        (
            "{hostname: x, headers_to_add: [{header: {key: a, value: b}}]}",
            "headers_to_add",
            "not supported by baton (headers on the CONNECT request)",
        ),
        (
            "{hostname: \"a b\"}",
            "hostname",
            "\"a b\" is not a valid host:port",
        ),
        ("{use_post: false}", "hostname", "required field is missing"),
    ] {
        assert_eq!(
            tcp_err(&format!("{base}, tunneling_config: {value}")),
            format!("{T}.tunneling_config.{at}: {why}"),
            "{value}"
        );
    }
    // An HTTP/2 cluster (Envoy would send an HTTP/2 CONNECT) is refused, naming the cluster.
    let mut d = tcp_doc("stat_prefix: p, cluster: b, tunneling_config: {hostname: \"h:1\"}");
    set(
        &mut d,
        "static_resources.clusters[1].http2_protocol_options",
        "{}",
    );
    let e = check(&d).map(|_| ()).expect_err("an HTTP/2 cluster");
    assert!(
        e.to_string().contains(
            "static_resources.clusters[1]: speaks HTTP/2 (http2_protocol_options): not supported"
        ),
        "{e}"
    );
}

#[test]
fn unsupported_tcp_proxy_fields_are_refused_by_path() {
    let base = "stat_prefix: p, cluster: a";
    for (field, value, why) in [
        ("hash_policy", "[{source_ip: {}}]", "hash policies"),
        (
            "metadata_match",
            "{filter_metadata: {}}",
            "subset load balancing",
        ),
        ("on_demand", "{}", "on-demand cluster discovery (xDS)"),
        (
            "backoff_options",
            "{base_interval: 1s}",
            "connect retries are made at once, as Envoy does without backoff_options",
        ),
        (
            "upstream_idle_timeout",
            "1s",
            "not implemented in Envoy either; use idle_timeout",
        ),
        (
            "downstream_idle_timeout",
            "1s",
            "not implemented in Envoy either; use idle_timeout",
        ),
        (
            "access_log_options",
            "{flush_access_log_on_connected: true}",
            "access-log flush options; one line is written when the connection ends",
        ),
        (
            "access_log_flush_interval",
            "1s",
            "periodic access-log lines; one line is written when the connection ends",
        ),
        (
            "flush_access_log_on_connected",
            "true",
            "an access-log line on connect; one line is written when the connection ends",
        ),
        (
            "max_downstream_connection_duration_jitter_percentage",
            "{value: 10}",
            "jitter on max_downstream_connection_duration",
        ),
        ("proxy_protocol_tlvs", "[]", "the PROXY protocol"),
    ] {
        assert_eq!(
            tcp_err(&format!("{base}, {field}: {value}")),
            format!("{T}.{field}: not supported by baton ({why})"),
            "{field}"
        );
    }
    let e = tcp_err(&format!("{base}, nonsense: 1"));
    assert!(
        e.starts_with(&format!(
            "{T}.nonsense: unknown or unsupported field \"nonsense\""
        )),
        "{e}"
    );
    // Every error is reported, not just the first.
    let e = tcp_err("cluster: nope, hash_policy: [], max_connect_attempts: 0");
    assert!(e.starts_with("4 errors:"), "{e}");
    for p in [
        "hash_policy",
        "stat_prefix",
        "cluster",
        "max_connect_attempts",
    ] {
        assert!(e.contains(&format!("{T}.{p}: ")), "{p}: {e}");
    }
}

#[test]
fn tcp_proxy_values_are_checked() {
    let cases = [
        ("cluster: a", format!("{T}.stat_prefix: required field is missing")),
        ("stat_prefix: \"\", cluster: a", format!("{T}.stat_prefix: must not be empty")),
        ("stat_prefix: p", format!("{T}: one of cluster, weighted_clusters is required")),
        (
            "stat_prefix: p, cluster: a, weighted_clusters: {clusters: [{name: a, weight: 1}]}",
            format!("{T}: only one of cluster, weighted_clusters may be set"),
        ),
        ("stat_prefix: p, cluster: nope", format!("{T}.cluster: unknown cluster \"nope\"")),
        (
            "stat_prefix: p, weighted_clusters: {clusters: []}",
            format!("{T}.weighted_clusters.clusters: at least one cluster is required"),
        ),
        (
            "stat_prefix: p, weighted_clusters: {clusters: [{name: a, weight: 0}]}",
            format!("{T}.weighted_clusters.clusters[0].weight: must be at least 1 (got 0)"),
        ),
        (
            "stat_prefix: p, weighted_clusters: {clusters: [{name: a}]}",
            format!("{T}.weighted_clusters.clusters[0].weight: must be at least 1 (got 0)"),
        ),
        (
            "stat_prefix: p, weighted_clusters: {clusters: [{name: x, weight: 1}]}",
            format!("{T}.weighted_clusters.clusters[0].name: unknown cluster \"x\""),
        ),
        (
            "stat_prefix: p, weighted_clusters: {clusters: [{name: a, weight: 1, metadata_match: {}}]}",
            format!("{T}.weighted_clusters.clusters[0].metadata_match: not supported by baton (subset load balancing)"),
        ),
        (
            "stat_prefix: p, weighted_clusters: {total_weight: 1, clusters: [{name: a, weight: 1}]}",
            format!("{T}.weighted_clusters.total_weight: unknown or unsupported field \"total_weight\" (accepted here: clusters)"),
        ),
        (
            "stat_prefix: p, cluster: a, max_connect_attempts: 0",
            format!("{T}.max_connect_attempts: must be at least 1 (got 0)"),
        ),
        (
            "stat_prefix: p, cluster: a, max_downstream_connection_duration: 0s",
            format!("{T}.max_downstream_connection_duration: must be at least 1ms"),
        ),
        (
            "stat_prefix: p, cluster: a, access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/x, format: \"%NOPE%\"}}]",
            format!("{T}.access_log[0].typed_config.format: unknown command operator \"%NOPE%\""),
        ),
    ];
    for (fields, want) in cases {
        let got = tcp_err(fields);
        assert!(
            got.starts_with(&want),
            "{fields}:\n got  {got}\n want {want}"
        );
    }
}

#[test]
fn http_and_tcp_chains_share_a_listener() {
    let mut d = doc();
    let chains = "static_resources.listeners[0].filter_chains";
    let first = slot(&mut d, &format!("{chains}[0]")).clone();
    set(&mut d, &format!("{chains}[1]"), "{}");
    *slot(&mut d, &format!("{chains}[1]")) = first;
    set(
        &mut d,
        &format!("{chains}[1].filter_chain_match"),
        "{transport_protocol: raw_buffer}",
    );
    set(
        &mut d,
        &format!("{chains}[1].filters[0]"),
        r#"{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: p, cluster: a}}"#,
    );
    let b = check(&d).unwrap_or_else(|e| panic!("{e}"));
    let l = &b.listeners[0];
    assert!(l.terminals[0].hcm().is_some() && l.terminals[1].tcp().is_some());
    assert_eq!(l.filter_chains[1].terminal, 1);
    // The connection limit is counted before a chain is chosen: it must be every chain's.
    set(
        &mut d,
        &format!("{chains}[1].filters"),
        r#"[{name: l, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit, stat_prefix: l, max_connections: 1}}, {name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: p, cluster: a}}]"#,
    );
    let e = check(&d).map(|_| ()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{chains}[1].filters: its envoy.filters.network.connection_limit must equal"
        )),
        "{e}"
    );
}

#[test]
fn passed_through_tls_is_matched_by_its_client_hello() {
    let chains = "static_resources.listeners[0].filter_chains";
    for m in [
        "{server_names: [a.example]}",
        "{transport_protocol: tls}",
        "{transport_protocol: tls, application_protocols: [h2]}",
        "{destination_port: 443, server_names: [a.example]}",
    ] {
        let mut d = tcp_doc("stat_prefix: p, cluster: a");
        set(&mut d, &format!("{chains}[0].filter_chain_match"), m);
        let r = check(&d).map(|_| ());
        if cfg!(feature = "tls") {
            assert!(r.is_ok(), "{m}: {r:?}");
        } else {
            assert!(r.is_err(), "{m}: the ClientHello is not read without TLS");
        }
    }
    for (m, field, why) in [
        (
            "{destination_port: 0}",
            "destination_port",
            "must be 1 to 65535",
        ),
        (
            "{application_protocols: [\"\"]}",
            "application_protocols[0]",
            "an ALPN",
        ),
        (
            "{prefix_ranges: [{address_prefix: 127.0.0.1, prefix_len: 33}]}",
            "prefix_ranges[0].prefix_len",
            "out of range",
        ),
        (
            "{source_prefix_ranges: [{address_prefix: nope}]}",
            "source_prefix_ranges[0].address_prefix",
            "not an IP address",
        ),
        (
            "{source_ports: [0]}",
            "source_ports[0]",
            "must be 1 to 65535",
        ),
        ("{source_type: LOCAL}", "source_type", ""),
    ] {
        let mut d = tcp_doc("stat_prefix: p, cluster: a");
        set(&mut d, &format!("{chains}[0].filter_chain_match"), m);
        let e = check(&d).map(|_| ()).unwrap_err().to_string();
        let want = format!("{chains}[0].filter_chain_match.{field}");
        assert!(e.starts_with(&want) && e.contains(why), "{m}: {e}");
    }
    // Plain bytes are recognised: a raw_buffer passthrough chain loads.
    let mut d = tcp_doc("stat_prefix: p, cluster: a");
    set(
        &mut d,
        &format!("{chains}[0].filter_chain_match"),
        "{transport_protocol: raw_buffer}",
    );
    assert!(check(&d).is_ok());
}
