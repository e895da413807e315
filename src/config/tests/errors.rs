//! One test per error class: each asserts the exact path and message an operator sees.

use super::*;

fn hcm(field: &str) -> String {
    format!("{HCM}.{field}")
}

fn vh(field: &str) -> String {
    format!("{VH}.{field}")
}

#[test]
fn unknown_enum_value_names_the_field() {
    assert_eq!(
        err_with(&[("static_resources.clusters[0].lb_policy", "MAGLEV_X")]),
        "static_resources.clusters[0].lb_policy: unknown value \"MAGLEV_X\" \
         (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)"
    );
    // Envoy v3 removed ORIGINAL_DST_LB (4 is reserved): unknown, with the values to pick from.
    assert_eq!(
        err_with(&[("static_resources.clusters[0].lb_policy", "ORIGINAL_DST_LB")]),
        "static_resources.clusters[0].lb_policy: unknown value \"ORIGINAL_DST_LB\" \
         (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)"
    );
    assert_eq!(
        err_with(&[("static_resources.clusters[0].lb_policy", "CLUSTER_PROVIDED")]),
        "static_resources.clusters[0].lb_policy: value \"CLUSTER_PROVIDED\" is not supported by baton \
         (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)"
    );
    assert_eq!(
        err_with(&[("static_resources.clusters[1].type", "EDS")]),
        "static_resources.clusters[1].type: value \"EDS\" is not supported by baton \
         (supported: STATIC, STRICT_DNS, LOGICAL_DNS)"
    );
    assert_eq!(
        err_with(&[("static_resources.clusters[0].dns_lookup_family", "9")]),
        "static_resources.clusters[0].dns_lookup_family: unknown value 9 \
         (supported: AUTO, V4_ONLY, V6_ONLY, V4_PREFERRED, ALL)"
    );
}

#[test]
fn port_out_of_range() {
    let mut d = doc();
    let l0 = slot(&mut d, "static_resources.listeners[0]").clone();
    *slot(&mut d, "static_resources.listeners[1]") = l0;
    set(&mut d, "static_resources.listeners[1].name", "listener_1");
    set(
        &mut d,
        "static_resources.listeners[1].address.socket_address.port_value",
        "70000",
    );
    assert_eq!(
        check(&d).unwrap_err().to_string(),
        "static_resources.listeners[1].address.socket_address.port_value: 70000 out of range"
    );
    let ep = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value";
    assert_eq!(err_with(&[(ep, "0")]), format!("{ep}: 0 out of range"));
    assert_eq!(
        err_with(&[(ep, "abc")]),
        format!("{ep}: expected an integer, got string \"abc\"")
    );
    // Wider than 64 bits: no YAML value holds it, still an out-of-range port at its path.
    let lp = "static_resources.listeners[0].address.socket_address.port_value";
    for n in ["99999999999999999999", "-99999999999999999999"] {
        let text = BASE.replacen("port_value: 10000", &format!("port_value: {n}"), 1);
        assert_eq!(
            load_str(&text).unwrap_err().to_string(),
            format!("{lp}: {n} out of range")
        );
    }
}

#[test]
fn route_to_unknown_cluster() {
    assert_eq!(
        err_with(&[(&vh("routes[0].route.cluster"), "nope")]),
        format!("{VH}.routes[0].route.cluster: unknown cluster \"nope\"")
    );
    assert_eq!(
        err_with(&[(
            &vh("routes[0].route"),
            "{weighted_clusters: {clusters: [{name: a, weight: 1}, {name: nope, weight: 1}]}}"
        )]),
        format!(
            "{VH}.routes[0].route.weighted_clusters.clusters[1].name: unknown cluster \"nope\""
        )
    );
}

#[test]
fn duplicate_names_and_addresses() {
    let mut d = doc();
    let l0 = slot(&mut d, "static_resources.listeners[0]").clone();
    *slot(&mut d, "static_resources.listeners[1]") = l0;
    let mut same_name = d.clone();
    set(
        &mut same_name,
        "static_resources.listeners[1].address.socket_address.port_value",
        "10001",
    );
    assert_eq!(
        check(&same_name).unwrap_err().to_string(),
        "static_resources.listeners[1].name: duplicate listener name \"listener_0\""
    );
    set(&mut d, "static_resources.listeners[1].name", "listener_1");
    assert_eq!(
        check(&d).unwrap_err().to_string(),
        "static_resources.listeners[1].address: duplicate address 0.0.0.0:10000 \
         (also used by listener \"listener_0\")"
    );
    assert_eq!(
        err_with(&[("static_resources.clusters[1].name", "a")]),
        "static_resources.clusters[1].name: duplicate cluster name \"a\""
    );
    assert_eq!(
        err_with(&[(
            "admin.address.socket_address",
            "{address: 0.0.0.0, port_value: 10000}"
        )]),
        "admin.address: duplicate address 0.0.0.0:10000 (also used by listener \"listener_0\")"
    );
}

#[test]
fn type_urls_and_filter_names() {
    assert_eq!(
        err_with(&[(&hcm("@type"), "type.googleapis.com/envoy.Bogus")]),
        format!(
            "{HCM}.@type: extension type \"type.googleapis.com/envoy.Bogus\" is not supported by baton"
        )
    );
    let mut d = doc();
    remove(&mut d, &hcm("@type"));
    assert_eq!(
        check(&d).unwrap_err().to_string(),
        format!("{HCM}.@type: required field is missing")
    );
    // The name is a label: the @type says which filter it is.
    let b = ok_with(&[
        (
            "static_resources.listeners[0].filter_chains[0].filters[0].name",
            "my-own-label",
        ),
        (&hcm("http_filters[0].name"), "router"),
    ]);
    assert_eq!(b.listeners[0].hcm().unwrap().stat_prefix, "ingress_http");
    assert_eq!(
        err_with(&[(
            &hcm("http_filters[0]"),
            "{name: envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager}}"
        )]),
        format!(
            "{HCM}.http_filters[0].typed_config.@type: \"envoy.filters.http.router\" \
             (envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager) \
             is not a supported HTTP filter (supported: envoy.extensions.filters.http.health_check.v3.HealthCheck, \
             envoy.extensions.filters.http.cors.v3.Cors, envoy.extensions.filters.http.csrf.v3.CsrfPolicy, \
             envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, \
             envoy.extensions.filters.http.rbac.v3.RBAC, \
             envoy.extensions.filters.http.fault.v3.HTTPFault, \
             envoy.extensions.filters.http.compressor.v3.Compressor, \
             envoy.extensions.filters.http.decompressor.v3.Decompressor, \
             envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, \
             envoy.extensions.filters.http.router.v3.Router)"
        )
    );
    assert_eq!(
        err_with(&[(&hcm("http_filters[0]"), "{name: envoy.filters.http.lua}")]),
        format!(
            "{HCM}.http_filters[0].name: unknown or unsupported extension \
             \"envoy.filters.http.lua\" (no typed_config \"@type\" says what it is)"
        )
    );
    assert_eq!(
        err_with(&[(
            &hcm("http_filters[0].typed_config.@type"),
            "type.googleapis.com/x.Router"
        )]),
        format!(
            "{HCM}.http_filters[0].typed_config.@type: extension type \
             \"type.googleapis.com/x.Router\" is not supported by baton"
        )
    );
    // `typed_config: {}` is the router with no settings.
    ok_with(&[(&hcm("http_filters[0].typed_config"), "{}")]);
    assert_eq!(
        err_with(&[(&hcm("http_filters"), "[]")]),
        format!("{HCM}.http_filters: the router filter (envoy.filters.http.router) is required")
    );
}

#[test]
fn a_health_check_filter_may_come_before_the_router_only() {
    const HC: &str = "{name: envoy.filters.http.health_check, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, pass_through_mode: false, headers: [{name: \":path\", exact_match: /hc}]}}";
    const ROUTER: &str = "{name: envoy.filters.http.router}";
    let b = ok_with(&[(&hcm("http_filters"), &format!("[{HC}, {ROUTER}]"))]);
    let h = b.listeners[0]
        .hcm()
        .and_then(|h| match h.http_filters.first().map(|f| &f.kind) {
            Some(HttpFilterKind::HealthCheck(hc)) => Some(hc.clone()),
            _ => None,
        })
        .expect("health check filter");
    assert!(!h.pass_through_mode);
    assert_eq!(h.headers.len(), 1);
    assert_eq!(
        err_with(&[(&hcm("http_filters"), &format!("[{ROUTER}, {HC}]"))]),
        format!(
            "{HCM}.http_filters[0]: the router filter must be the last HTTP filter, and only once"
        )
    );
    assert_eq!(
        err_with(&[(&hcm("http_filters"), &format!("[{HC}]"))]),
        format!(
            "{HCM}.http_filters[0]: the last HTTP filter must be the router \
             (envoy.filters.http.router)"
        )
    );
    assert_eq!(
        err_with(&[(&hcm("http_filters"), &format!("[{HC}, {HC}, {ROUTER}]"))]),
        format!("{HCM}.http_filters[1]: only one health check filter per connection manager")
    );
}

#[test]
fn unknown_fields_are_named() {
    assert_eq!(
        err_with(&[("static_resources.clusters[0].lb_polcy", "RANDOM")]),
        "static_resources.clusters[0].lb_polcy: unknown or unsupported field \"lb_polcy\" \
         (accepted here: name, connect_timeout, type, lb_policy, dns_lookup_family, \
         dns_refresh_rate, load_assignment, per_connection_buffer_limit_bytes, \
         transport_socket, circuit_breakers, health_checks, common_lb_config, upstream_connection_options, \
         typed_extension_protocol_options, common_http_protocol_options, \
         http_protocol_options, http2_protocol_options, upstream_http_protocol_options, outlier_detection, least_request_lb_config, ring_hash_lb_config, maglev_lb_config)"
    );
    assert_eq!(
        err_with(&[(&hcm("http_filters[0].typed_config.dynamic_stats"), "false")]),
        format!(
            "{HCM}.http_filters[0].typed_config.dynamic_stats: unknown or unsupported field \
             \"dynamic_stats\" (no fields are accepted here)"
        )
    );
}

#[test]
fn raw_buffer_transport_sockets_refuse_unknown_fields() {
    const RAW: &str =
        "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
    let chain = "static_resources.listeners[0].filter_chains[0].transport_socket";
    let cluster = "static_resources.clusters[0].transport_socket";
    let e = err_with(&[
        (
            chain,
            &format!(
                "{{name: envoy.transport_sockets.raw_buffer, typed_config: {{\"@type\": {RAW}, also_bogus: {{x: 1}}}}}}"
            ),
        ),
        (
            cluster,
            &format!(
                "{{name: envoy.transport_sockets.raw_buffer, filter: {{anything: 1}}, typed_config: {{\"@type\": {RAW}, bogus_field: 1}}}}"
            ),
        ),
    ]);
    assert_eq!(
        e,
        format!(
            "3 errors:\n  \
             {cluster}.typed_config.bogus_field: unknown or unsupported field \"bogus_field\" \
             (no fields are accepted here)\n  \
             {cluster}.filter: not supported by baton (only access loggers take a filter)\n  \
             {chain}.typed_config.also_bogus: unknown or unsupported field \"also_bogus\" \
             (no fields are accepted here)"
        )
    );
    // Without stray fields the raw buffer is plain TCP, by name or by type.
    let b = ok_with(&[
        (chain, "{name: envoy.transport_sockets.raw_buffer}"),
        (
            cluster,
            &format!("{{name: plain, typed_config: {{\"@type\": {RAW}}}}}"),
        ),
    ]);
    assert_eq!(b.listeners[0].filter_chains[0].tls, None);
    assert_eq!(b.clusters[0].tls, None);
}

/// The TLS socket's name alone stands for the context accepted where it appears.
#[test]
fn tls_socket_by_name_alone_is_the_context_of_its_place() {
    let chain = "static_resources.listeners[0].filter_chains[0].transport_socket";
    let cluster = "static_resources.clusters[0].transport_socket";
    for ts in [
        "{name: envoy.transport_sockets.tls}",
        "{name: envoy.transport_sockets.tls, typed_config: {}}",
    ] {
        let e = err_with(&[(chain, ts)]);
        if cfg!(feature = "tls") {
            assert_eq!(
                e,
                format!(
                    "{chain}.typed_config.common_tls_context: required field is missing: \
                     a DownstreamTlsContext without a certificate cannot serve TLS"
                )
            );
            let up = ok_with(&[(cluster, ts)]).clusters[0].tls.clone();
            let up = up.unwrap_or_else(|| panic!("{ts}: no upstream TLS"));
            assert_eq!((up.sni, up.cert, up.validation), (None, None, None), "{ts}");
        } else {
            assert!(e.contains("cargo feature \"tls\""), "{e}");
        }
    }
}

#[test]
fn stats_sink_errors() {
    const T: &str = "type.googleapis.com/envoy.config.metrics.v3.StatsdSink";
    let sink = |fields: &str| {
        err_with(&[(
            "stats_sinks",
            &format!(
                "[{{name: envoy.stat_sinks.statsd, typed_config: {{\"@type\": {T}{fields}}}}}]"
            ),
        )])
    };
    assert_eq!(
        sink(""),
        "stats_sinks[0].typed_config.address: required field is missing"
    );
    assert_eq!(
        sink(", tcp_cluster_name: statsd"),
        "stats_sinks[0].typed_config.tcp_cluster_name: not supported by baton (statsd over TCP \
         through a cluster; use address, UDP)"
    );
    assert_eq!(
        sink(", address: {socket_address: {address: statsd.local, port_value: 8125}}"),
        "stats_sinks[0].typed_config.address.socket_address.address: not an IP address: \
         \"statsd.local\""
    );
    assert_eq!(
        sink(", address: {socket_address: {address: 127.0.0.1, port_value: 0}}"),
        "stats_sinks[0].typed_config.address.socket_address.port_value: 0 out of range"
    );
    assert!(
        sink(", address: {socket_address: {address: 127.0.0.1, port_value: 1}}, buffer: 1")
            .starts_with("stats_sinks[0].typed_config.buffer: unknown or unsupported field")
    );
    // DogStatsD: the same address checks; its own fields (no tcp_cluster_name in its proto).
    const D: &str = "type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink";
    let dog = |fields: &str| {
        format!("[{{name: envoy.stat_sinks.dog_statsd, typed_config: {{\"@type\": {D}{fields}}}}}]")
    };
    assert_eq!(
        err_with(&[("stats_sinks", &dog(""))]),
        "stats_sinks[0].typed_config.address: required field is missing"
    );
    let e = err_with(&[("stats_sinks", &dog(", tcp_cluster_name: statsd"))]);
    assert!(
        e.contains("stats_sinks[0].typed_config.tcp_cluster_name: unknown or unsupported field"),
        "{e}"
    );
    assert_eq!(
        err_with(&[(
            "stats_sinks",
            &dog(", address: {socket_address: {address: dd.local, port_value: 8125}}")
        )]),
        "stats_sinks[0].typed_config.address.socket_address.address: not an IP address: \
         \"dd.local\""
    );
    assert!(err_with(&[(
        "stats_sinks",
        &dog(", address: {socket_address: {address: 127.0.0.1, port_value: 1}}, max_bytes_per_datagram: -1")
    )])
    .starts_with("stats_sinks[0].typed_config.max_bytes_per_datagram"));
    // A Unix datagram socket (Envoy's `pipe` address) is not implemented.
    let e = err_with(&[(
        "stats_sinks",
        &dog(", address: {pipe: {path: /tmp/dd.sock}}"),
    )]);
    assert!(
        e.contains("stats_sinks[0].typed_config.address.pipe: not supported by baton"),
        "{e}"
    );
    let at = ", address: {socket_address: {address: 127.0.0.1, port_value: 8125}}";
    let b = ok_with(&[(
        "stats_sinks",
        &format!(
            "{}, {}",
            dog(at).trim_end_matches(']'),
            "{name: envoy.dog_statsd, typed_config: {\"@type\": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink, address: {socket_address: {address: \"::1\", port_value: 9}}, prefix: dd, max_bytes_per_datagram: 1432}}]"
        ),
    )]);
    assert_eq!(
        b.stats_sinks,
        vec![
            StatsdSink {
                address: "127.0.0.1:8125".parse().unwrap(),
                prefix: "envoy".into(),
                tagged: true,
                max_bytes_per_datagram: 0,
            },
            StatsdSink {
                address: "[::1]:9".parse().unwrap(),
                prefix: "dd".into(),
                tagged: true,
                max_bytes_per_datagram: 1432,
            }
        ]
    );
    assert_eq!(
        err_with(&[("stats_sinks", "[{name: envoy.stat_sinks.hystrix}]")]),
        "stats_sinks[0].name: unknown or unsupported extension \"envoy.stat_sinks.hystrix\" \
         (no typed_config \"@type\" says what it is)"
    );
    assert_eq!(
        err_with(&[("stats_flush_interval", "300s")]),
        "stats_flush_interval: 300s out of range (at least 1ms, less than 300s)"
    );
    assert_eq!(
        err_with(&[("stats_flush_on_admin", "true")]),
        "stats_flush_on_admin: not supported by baton (flushing only when the admin reads the \
         stats; use stats_flush_interval)"
    );
    // Loads: the default prefix and interval, a UDP or TCP protocol (always sent over UDP).
    let b = ok_with(&[(
        "stats_sinks",
        &format!("[{{name: envoy.statsd, typed_config: {{\"@type\": {T}, address: {{socket_address: {{address: 127.0.0.1, port_value: 8125, protocol: UDP}}}}}}}}]"),
    )]);
    assert_eq!(
        b.stats_sinks,
        vec![StatsdSink {
            address: "127.0.0.1:8125".parse().unwrap(),
            prefix: "envoy".into(),
            tagged: false,
            max_bytes_per_datagram: 0,
        }]
    );
    assert_eq!(b.stats_flush_interval, std::time::Duration::from_secs(5));
    let b = ok_with(&[
        ("stats_flush_interval", "0.25s"),
        ("stats_flush_on_admin", "false"),
    ]);
    assert_eq!(
        b.stats_flush_interval,
        std::time::Duration::from_millis(250)
    );
}

#[test]
fn stats_config_errors() {
    let sc = |v: &str| err_with(&[("stats_config", v)]);
    assert_eq!(
        sc("{stats_tags: [{tag_name: a, regex: b}]}"),
        "stats_config.stats_tags: not supported by baton (custom tag extraction; the default \
         tags are applied)"
    );
    assert_eq!(
        sc("{use_all_default_tags: false}"),
        "stats_config.use_all_default_tags: not supported by baton with false (the default \
         tags are always applied)"
    );
    assert_eq!(
        sc("{histogram_bucket_settings: [{match: {prefix: a}, buckets: [1]}]}"),
        "stats_config.histogram_bucket_settings: not supported by baton (baton keeps no \
         histograms)"
    );
    assert_eq!(
        sc("{stats_matcher: {}}"),
        "stats_config.stats_matcher: one of reject_all, exclusion_list, inclusion_list is \
         required"
    );
    assert_eq!(
        sc("{stats_matcher: {reject_all: true, inclusion_list: {patterns: [{prefix: a}]}}}"),
        "stats_config.stats_matcher: only one of reject_all, exclusion_list, inclusion_list \
         may be set"
    );
    assert_eq!(
        sc("{stats_matcher: {inclusion_list: {patterns: []}}}"),
        "stats_config.stats_matcher.inclusion_list.patterns: at least 1 pattern is required"
    );
    assert_eq!(
        sc("{stats_matcher: {exclusion_list: {patterns: [{prefix: \"\"}]}}}"),
        "stats_config.stats_matcher.exclusion_list.patterns[0].prefix: must not be empty"
    );
    let m = |v: &str| ok_with(&[("stats_config", v)]).stats_matcher;
    assert_eq!(m("{}"), StatsMatcher::All);
    assert_eq!(
        m("{use_all_default_tags: true, stats_matcher: {reject_all: false}}"),
        StatsMatcher::All
    );
    assert_eq!(
        m("{stats_matcher: {reject_all: true}}"),
        StatsMatcher::Nothing
    );
    assert!(matches!(
        m("{stats_matcher: {inclusion_list: {patterns: [{prefix: http.}, {exact: server.live}]}}}"),
        StatsMatcher::Only(l) if l.len() == 2
    ));
}

#[test]
fn unsupported_envoy_features_say_so() {
    let cases: &[(&str, &str, &str)] = &[
        ("cluster_manager", "{}", "cluster manager settings"),
        (
            "static_resources.clusters[0].outlier_detection.monitors",
            "[]",
            "outlier detection monitors",
        ),
        (
            "static_resources.clusters[0].circuit_breakers.per_host_thresholds",
            "[]",
            "per-host circuit breakers",
        ),
        (
            "static_resources.clusters[0].respect_dns_ttl",
            "true",
            "respect_dns_ttl; dns_refresh_rate is used",
        ),
        (&vh("rate_limits"), "[]", "rate limits"),
        (
            &vh("routes[0].tracing"),
            "{}",
            "per-route tracing overrides",
        ),
    ];
    for (path, value, what) in cases {
        assert_eq!(
            err_with(&[(path, value)]),
            format!("{path}: not supported by baton ({what})")
        );
    }
}

/// Tracing: the Zipkin provider with HTTP_JSON and the Datadog one without remote_config;
/// everything else refused by its path.
#[test]
fn tracing_errors_name_their_field() {
    let t = hcm("tracing");
    let zipkin = |extra: &str| {
        format!(
            "{{provider: {{name: envoy.tracers.zipkin, typed_config: {{\"@type\": \
             type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, \
             collector_cluster: a, collector_endpoint: /api/v2/spans{extra}}}}}}}"
        )
    };
    let datadog = |fields: &str| {
        format!(
            "{{provider: {{name: envoy.tracers.datadog, typed_config: {{\"@type\": \
             type.googleapis.com/envoy.config.trace.v3.DatadogConfig{fields}}}}}}}"
        )
    };
    let tc = format!("{t}.provider.typed_config");
    for (value, want) in [
        (
            "{}".to_string(),
            format!("{t}.provider: required (here or as the bootstrap's tracing.http): envoy.tracers.zipkin or envoy.tracers.datadog"),
        ),
        (
            datadog(", service_name: s"),
            format!("{tc}.collector_cluster: required field is missing"),
        ),
        (
            datadog(", collector_cluster: nope, service_name: s"),
            format!("{tc}.collector_cluster: unknown cluster \"nope\""),
        ),
        (
            datadog(", collector_cluster: a"),
            format!("{tc}.service_name: required field is missing"),
        ),
        (
            datadog(", collector_cluster: a, service_name: s, collector_hostname: \"a b\""),
            format!("{tc}.collector_hostname: \"a b\" is not a valid host"),
        ),
        (
            datadog(", collector_cluster: a, service_name: s, remote_config: {}"),
            format!("{tc}.remote_config: not supported by baton (polling the agent's remote configuration)"),
        ),
        (
            datadog(", collector_cluster: a, service_name: s, nope: 1"),
            format!("{tc}.nope: unknown or unsupported field \"nope\" (accepted here: collector_cluster, service_name, collector_hostname, remote_config)"),
        ),
        (
            zipkin(", collector_endpoint_version: HTTP_PROTO"),
            format!("{tc}.collector_endpoint_version: value \"HTTP_PROTO\" is not supported by baton (supported: HTTP_JSON)"),
        ),
        (
            zipkin(", collector_endpoint_version: GRPC"),
            format!("{tc}.collector_endpoint_version: value \"GRPC\" is not supported by baton (supported: HTTP_JSON)"),
        ),
        (
            zipkin("").replace("cluster: a,", "cluster: nope,"),
            format!("{tc}.collector_cluster: unknown cluster \"nope\""),
        ),
        (
            zipkin(", split_spans_for_request: true"),
            format!("{tc}.split_spans_for_request: not supported by baton (separate client and server spans per request)"),
        ),
        (
            zipkin("").replacen('{', "{verbose: true, ", 1),
            format!("{t}.verbose: not supported by baton (timing annotations on spans)"),
        ),
        (
            zipkin("").replacen('{', "{spawn_upstream_span: true, ", 1),
            format!("{t}.spawn_upstream_span: not supported by baton (a separate upstream span)"),
        ),
        (
            zipkin("").replacen('{', "{custom_tags: [{tag: a, metadata: {}}], ", 1),
            format!("{t}.custom_tags[0].metadata: not supported by baton (metadata tags)"),
        ),
        (
            zipkin("").replacen('{', "{random_sampling: {value: 101}, ", 1),
            format!("{t}.random_sampling.value: 101 is out of range (0..=100)"),
        ),
        (
            "{provider: {name: envoy.tracers.opentelemetry, typed_config: {\"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig}}}".to_string(),
            format!("{t}.provider.typed_config.@type: extension type \"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\" is not supported by baton"),
        ),
    ] {
        assert_eq!(err_with(&[(&t, &value)]), want, "{value}");
    }
    // The bootstrap's provider serves a connection manager that names none; its own errors
    // name the bootstrap's path.
    let http = zipkin("").replacen("{provider: ", "{http: ", 1);
    let b = ok_with(&[("tracing", &http), (&t, "{random_sampling: {value: 50}}")]);
    let Terminal::Http(h) = &b.listeners[0].terminals[0] else {
        panic!("an HTTP listener")
    };
    let tr = h.tracing.as_deref().expect("tracing");
    assert_eq!(
        (tr.provider.cluster_name(), tr.random_sampling),
        ("a", 5000)
    );
    assert_eq!(
        err_with(&[("tracing", &http.replace("cluster: a,", "cluster: nope,"))]),
        "tracing.http.typed_config.collector_cluster: unknown cluster \"nope\""
    );
    assert_eq!(
        err_with(&[(
            "static_resources.listeners[0].traffic_direction",
            "SIDEWAYS"
        )]),
        "static_resources.listeners[0].traffic_direction: unknown value \"SIDEWAYS\" \
         (supported: UNSPECIFIED, INBOUND, OUTBOUND)"
    );
    assert_eq!(
        err_with(&[(&format!("{VH}.routes[0].decorator"), "{operation: \"\"}")]),
        format!("{VH}.routes[0].decorator.operation: must not be empty")
    );
    // Spans go out over plain HTTP: a TLS collector cluster is refused, not sent in the clear.
    #[cfg(feature = "tls")]
    {
        let tls = "{name: envoy.transport_sockets.tls, typed_config: {\"@type\": \
                   type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext}}";
        let e = err_with(&[
            (&t, &zipkin("")),
            ("static_resources.clusters[0].transport_socket", tls),
        ]);
        assert!(
            e.starts_with("static_resources.clusters[0].transport_socket: cluster \"a\" is a Zipkin collector_cluster"),
            "{e}"
        );
    }
}

/// Active health checks: Envoy's required fields and ranges, and every field baton does not
/// implement refused by its path.
#[test]
fn health_check_errors_name_their_field() {
    const HC: &str = "static_resources.clusters[0].health_checks";
    let with = |fields: &str| {
        err_with(&[(
            HC,
            &format!("[{{timeout: 1s, interval: 2s, unhealthy_threshold: 2, healthy_threshold: 2, {fields}}}]"),
        )])
    };
    let http = "http_health_check: {path: /hc}";
    let refused =
        |field: &str, what: &str| format!("{HC}[0].{field}: not supported by baton ({what})");
    for (fields, want) in [
        ("grpc_health_check: {}".to_string(), refused("grpc_health_check", "gRPC health checks")),
        ("custom_health_check: {name: x}".into(), refused("custom_health_check", "custom health checkers")),
        (format!("{http}, event_log_path: /tmp/x"), refused("event_log_path", "health check event logs")),
        (format!("{http}, event_logger: []"), refused("event_logger", "health check event logs")),
        (format!("{http}, tls_options: {{}}"), refused("tls_options", "TLS health checks")),
        (
            format!("{http}, transport_socket_match_criteria: {{}}"),
            refused("transport_socket_match_criteria", "transport socket matches"),
        ),
        (
            format!("{http}, always_log_health_check_failures: true"),
            refused("always_log_health_check_failures", "health check event logs"),
        ),
        (format!("{http}, alt_port: 1"), refused("alt_port", "health checks on another port")),
        (
            "http_health_check: {path: /hc, retriable_statuses: [{start: 99, end: 200}]}".into(),
            format!("{HC}[0].http_health_check.retriable_statuses[0]: expecting start >= 100, but found start=99"),
        ),
        (
            "http_health_check: {path: /hc, request_headers_to_remove: [\":path\"]}".into(),
            format!("{HC}[0].http_health_check.request_headers_to_remove[0]: pseudo-header \":path\" may not be modified"),
        ),
        (
            "http_health_check: {path: /hc, method: CONNECT}".into(),
            format!("{HC}[0].http_health_check.method: value \"CONNECT\" is not supported by baton (supported: METHOD_UNSPECIFIED, GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH)"),
        ),
        (
            "http_health_check: {path: /hc, service_name_matcher: {exact: x}}".into(),
            refused("http_health_check.service_name_matcher", "health check service name verification"),
        ),
        (
            "http_health_check: {path: /hc, codec_client_type: HTTP2}".into(),
            format!("{HC}[0].http_health_check.codec_client_type: value \"HTTP2\" is not supported by baton (supported: HTTP1)"),
        ),
        (
            "http_health_check: {path: /hc, expected_statuses: [{start: 200, end: 200}]}".into(),
            format!("{HC}[0].http_health_check.expected_statuses[0]: expecting start < end, but found start=200 and end=200"),
        ),
        (
            "http_health_check: {path: /hc, expected_statuses: [{start: 200, end: 601}]}".into(),
            format!("{HC}[0].http_health_check.expected_statuses[0]: expecting end <= 600, but found end=601"),
        ),
        ("http_health_check: {}".into(), format!("{HC}[0].http_health_check.path: required field is missing")),
        (
            "tcp_health_check: {send: {text: \"0G\"}}".into(),
            format!("{HC}[0].tcp_health_check.send.text: invalid hex string '0G'"),
        ),
        (
            "tcp_health_check: {receive: [{binary: AA==}]}".into(),
            refused("tcp_health_check.receive[0].binary", "binary payloads; use text (hex)"),
        ),
        (
            format!("{http}, tcp_health_check: {{}}"),
            format!("{HC}[0]: only one of http_health_check, tcp_health_check may be set"),
        ),
        ("reuse_connection: true".into(), format!("{HC}[0]: one of http_health_check, tcp_health_check is required")),
        (format!("{http}, no_traffic_interval: 0s"), format!("{HC}[0].no_traffic_interval: must be greater than 0s")),
    ] {
        assert_eq!(with(&fields), want, "{fields}");
    }
    assert_eq!(
        err_with(&[(
            HC,
            &format!("[{{interval: 2s, unhealthy_threshold: 2, healthy_threshold: 2, {http}}}]")
        )]),
        format!("{HC}[0].timeout: required field is missing")
    );
    assert_eq!(
        err_with(&[(
            HC,
            &format!("[{{timeout: 1s, interval: 2s, unhealthy_threshold: 2, {http}}}]")
        )]),
        format!("{HC}[0].healthy_threshold: required field is missing")
    );
    let one = format!(
        "{{timeout: 1s, interval: 2s, unhealthy_threshold: 2, healthy_threshold: 2, {http}}}"
    );
    assert_eq!(
        err_with(&[(HC, &format!("[{one}, {one}]"))]),
        format!("{HC}: multiple health checks are not supported (Envoy takes one)")
    );
    assert_eq!(
        err_with(&[(
            "static_resources.clusters[0].common_lb_config",
            "{healthy_panic_threshold: {value: 101}}"
        )]),
        "static_resources.clusters[0].common_lb_config.healthy_panic_threshold.value: 101 out of range (0..=100)"
    );
    if cfg!(feature = "tls") {
        let tls = (
            "static_resources.clusters[0].transport_socket",
            "{name: envoy.transport_sockets.tls}",
        );
        assert_eq!(
            err_with(&[tls, (HC, &format!("[{one}]"))]),
            format!("{HC}: not supported by baton on a cluster with a TLS transport_socket (health checks are plain TCP)")
        );
    }
    // Defaults: Envoy's.
    let c = &ok_with(&[(HC, &format!("[{one}]"))]).clusters[0];
    assert_eq!(c.healthy_panic_threshold, 50);
    let hc = c.health_check.clone().expect("health check");
    assert!(hc.reuse_connection);
    assert_eq!(hc.no_traffic_interval, std::time::Duration::from_secs(60));
    assert_eq!(
        hc.unhealthy_edge_interval,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        hc.kind,
        crate::config::HealthCheckKind::Http {
            method: "GET".into(),
            host: String::new(),
            path: "/hc".into(),
            expected_statuses: vec![(200, 201)],
            retriable_statuses: vec![],
            headers: Default::default(),
        }
    );
}

#[test]
fn codec_protocol_and_limits() {
    assert_eq!(
        err_with(&[(&hcm("codec_type"), "HTTP3")]),
        format!(
            "{HCM}.codec_type: value \"HTTP3\" is not supported by baton (supported: AUTO, HTTP1, HTTP2)"
        )
    );
    let h2 = hcm("http2_protocol_options");
    for (field, value, why) in [
        (
            "allow_connect",
            "true",
            "not supported by baton (no extended CONNECT over HTTP/2)",
        ),
        (
            "connection_keepalive",
            "{interval: 1s}",
            "not supported by baton (no HTTP/2 PING keepalive)",
        ),
        (
            "initial_stream_window_size",
            "100",
            "100 out of range (65535..=2147483647)",
        ),
        (
            "max_concurrent_streams",
            "0",
            "0 out of range (1..=2147483647)",
        ),
    ] {
        assert_eq!(
            err_with(&[(&format!("{h2}.{field}"), value)]),
            format!("{HCM}.http2_protocol_options.{field}: {why}")
        );
    }
    let proto = "static_resources.listeners[0].address.socket_address.protocol";
    assert_eq!(
        err_with(&[(proto, "UDP")]),
        format!("{proto}: value \"UDP\" is not supported by baton (supported: TCP)")
    );
    for kb in ["0", "8193"] {
        assert_eq!(
            err_with(&[(&hcm("max_request_headers_kb"), kb)]),
            format!("{HCM}.max_request_headers_kb: {kb} out of range (1..=8192)")
        );
    }
    let addr = "static_resources.listeners[0].address.socket_address.address";
    assert_eq!(
        err_with(&[(addr, "localhost")]),
        format!("{addr}: not an IP address: \"localhost\"")
    );
}

#[test]
fn bad_durations() {
    let p = "static_resources.clusters[0].connect_timeout";
    assert_eq!(
        err_with(&[(p, "abc")]),
        format!("{p}: invalid duration \"abc\": expected seconds ending in 's', e.g. \"0.25s\"")
    );
    assert_eq!(
        err_with(&[(p, "5")]),
        format!("{p}: invalid duration 5: expected seconds ending in 's', e.g. \"5s\"")
    );
    assert_eq!(
        err_with(&[(p, "-1s")]),
        format!("{p}: invalid duration \"-1s\": must not be negative")
    );
    assert_eq!(
        err_with(&[(p, "{seconds: 1, nanos: -5}")]),
        format!("{p}: invalid duration {{seconds: 1, nanos: -5}}: must be non-negative with nanos < 1e9")
    );
    assert_eq!(
        err_with(&[(p, "{seconds: 1, millis: 5}")]),
        format!(
            "{p}.millis: unknown or unsupported field \"millis\" (accepted here: seconds, nanos)"
        )
    );
    assert_eq!(
        err_with(&[(p, "0s")]),
        format!("{p}: must be greater than 0s")
    );
}

#[test]
fn missing_and_mistyped_fields() {
    let mut d = doc();
    remove(&mut d, "static_resources.clusters[0].name");
    // The route naming that cluster is checked too, and it names a cluster that is not there.
    assert_eq!(
        check(&d).unwrap_err().to_string(),
        format!(
            "2 errors:\n  static_resources.clusters[0].name: required field is missing\n  \
             {VH}.routes[0].route.cluster: unknown cluster \"a\""
        )
    );
    // A lone map where a list is expected is a list of one (Envoy's loader allows it).
    let b = ok_with(&[("static_resources.clusters", "{name: a}")]);
    assert_eq!(b.clusters.len(), 1);
    assert!(
        err_with(&[("static_resources.clusters", "\"a\"")]).starts_with(
            "2 errors:\n  static_resources.clusters[0]: expected a map, got string \"a\""
        )
    );
    assert_eq!(
        err_with(&[(&hcm("use_remote_address"), "\"yes\"")]),
        format!("{HCM}.use_remote_address: expected true or false, got string \"yes\"")
    );
}

#[test]
fn cluster_endpoint_rules() {
    let ep = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address";
    assert_eq!(
        err_with(&[(&format!("{ep}.address"), "example.com")]),
        format!(
            "{ep}.address: a STATIC cluster needs IP addresses, got \"example.com\" (use STRICT_DNS or LOGICAL_DNS)"
        )
    );
    assert_eq!(
        err_with(&[
            ("static_resources.clusters[1].type", "LOGICAL_DNS"),
            (
                "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[1]",
                "{endpoint: {address: {socket_address: {address: b2, port_value: 1}}}}"
            ),
        ]),
        "static_resources.clusters[1].load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint"
    );
    assert_eq!(
        err_with(&[(
            "static_resources.clusters[0].load_assignment.cluster_name",
            "\"\""
        )]),
        "static_resources.clusters[0].load_assignment.cluster_name: must not be empty"
    );
}

#[test]
fn load_balancing_fields_are_checked_or_refused_by_path() {
    const C: &str = "static_resources.clusters[0]";
    let la = format!("{C}.load_assignment");
    let ep = format!("{la}.endpoints[0].lb_endpoints[0].endpoint");
    let cases: &[(String, &str, String)] = &[
        (
            format!("{la}.endpoints[0].load_balancing_weight"),
            "0",
            "must be at least 1".into(),
        ),
        (
            format!("{la}.endpoints[0].priority"),
            "129",
            "must be at most 128".into(),
        ),
        (
            format!("{la}.policy"),
            "{overprovisioning_factor: 0}",
            "must be at least 1".into(),
        ),
        (
            format!("{ep}.health_check_config"),
            "{port_value: 70000}",
            "70000 is not a port (0..=65535)".into(),
        ),
        (
            format!("{C}.least_request_lb_config"),
            "{choice_count: 1}",
            "must be at least 2 (got 1)".into(),
        ),
        (
            format!("{C}.least_request_lb_config"),
            "{active_request_bias: {default_value: -1, runtime_key: k}}",
            "must be at least 0 (got -1)".into(),
        ),
        (
            format!("{C}.ring_hash_lb_config"),
            "{minimum_ring_size: 9000000}",
            "must be 1..=8388608".into(),
        ),
        (
            format!("{C}.ring_hash_lb_config"),
            "{minimum_ring_size: 100, maximum_ring_size: 10}",
            "minimum_ring_size (100) > maximum_ring_size (10)".into(),
        ),
        (
            format!("{C}.ring_hash_lb_config"),
            "{hash_function: MURMUR_HASH_2}",
            "only XX_HASH is supported".into(),
        ),
        (
            format!("{C}.common_lb_config.consistent_hashing_lb_config"),
            "{hash_balance_factor: 150}",
            "not supported by baton (bounded-load consistent hashing)".into(),
        ),
        (
            format!("{C}.common_lb_config.consistent_hashing_lb_config"),
            "{use_hostname_for_hashing: true}",
            "every endpoint of a STATIC cluster needs a hostname to hash by".into(),
        ),
        (
            format!("{C}.maglev_lb_config"),
            "{table_size: 65536}",
            "65536 is not a prime up to 5000011".into(),
        ),
    ];
    for (at, v, why) in cases {
        let got = err_with(&[(at.as_str(), v)]);
        assert!(got.ends_with(why.as_str()), "{at}: {v}: {got}");
        assert!(got.starts_with(at.as_str()), "{at}: {v}: {got}");
    }
    // What baton does not implement is refused naming the field.
    for (at, v, field) in [
        (
            format!("{ep}.health_check_config"),
            "{address: {socket_address: {address: 127.0.0.2, port_value: 1}}}",
            "address",
        ),
        (
            format!("{ep}.health_check_config"),
            "{disable_active_health_check: true}",
            "disable_active_health_check",
        ),
        (
            format!("{la}.policy"),
            "{weighted_priority_health: true}",
            "weighted_priority_health",
        ),
        (
            format!("{C}.least_request_lb_config"),
            "{slow_start_config: {}}",
            "slow_start_config",
        ),
        (
            format!("{C}.common_lb_config.locality_weighted_lb_config"),
            "{x: 1}",
            "x",
        ),
        (format!("{la}.endpoints[0].proximity"), "1", "proximity"),
    ] {
        let got = err_with(&[(at.as_str(), v)]);
        let path = if at.ends_with(field) {
            at.clone()
        } else {
            format!("{at}.{field}")
        };
        assert!(got.starts_with(&format!("{path}: ")), "{got}");
    }
}

#[test]
fn route_hash_policies_are_checked_by_path() {
    let hp = vh("routes[0].route.hash_policy");
    for (v, at, why) in [
        (
            "[{}]",
            "[0]",
            "one of header, cookie, connection_properties, query_parameter is required",
        ),
        (
            "[{header: {header_name: a}, query_parameter: {name: b}}]",
            "[0]",
            "only one of header, cookie, connection_properties, query_parameter may be set",
        ),
        (
            "[{cookie: {name: c, ttl: 1s}}]",
            "[0].cookie.ttl",
            "not supported by baton (a generated hash cookie)",
        ),
        (
            "[{header: {header_name: \"\"}}]",
            "[0].header.header_name",
            "must not be empty",
        ),
        (
            "[{connection_properties: {source_ip: false}}]",
            "[0].connection_properties.source_ip",
            "must be true (the only connection property)",
        ),
    ] {
        assert_eq!(err_with(&[(&hp, v)]), format!("{hp}{at}: {why}"), "{v}");
    }
    let e = err_with(&[(&hp, "[{filter_state: {key: k}}]")]);
    assert!(e.contains(&format!("{hp}[0].filter_state: unknown")), "{e}");
}

#[test]
fn route_structure_errors() {
    assert_eq!(
        err_with(&[(&vh("routes[0]"), "{match: {prefix: /}}")]),
        format!("{VH}.routes[0]: one of route, redirect, direct_response is required")
    );
    assert_eq!(
        err_with(&[(&vh("routes[0].direct_response"), "{status: 200}")]),
        format!("{VH}.routes[0]: only one of route, redirect, direct_response may be set")
    );
    assert_eq!(
        err_with(&[(&vh("routes[0].match"), "{case_sensitive: false}")]),
        format!(
            "{VH}.routes[0].match: one of prefix, path, safe_regex, connect_matcher is required"
        )
    );
    assert_eq!(
        err_with(&[(&vh("routes[0].match"), "{safe_regex: {regex: \"/(a\"}}")]),
        format!(
            "{VH}.routes[0].match.safe_regex.regex: invalid regex \"/(a\": error: unclosed group"
        )
    );
    assert_eq!(
        err_with(&[(&vh("domains"), "[\"*.a.com\", \"a.*.com\"]")]),
        format!(
            "{VH}.domains[1]: invalid wildcard in \"a.*.com\": only \"*\", \"*suffix\" or \"prefix*\" are allowed"
        )
    );
    assert_eq!(
        err_with(&[(&vh("domains"), "[]")]),
        format!("{VH}.domains: at least one domain is required (\"*\" matches any host)")
    );
    let vh1 = VH.replace("virtual_hosts[0]", "virtual_hosts[1]");
    assert_eq!(
        err_with(&[(&vh1, "{name: other, domains: [A.com, \"*\"], routes: []}")]),
        format!(
            "{vh1}.domains[1]: duplicate domain \"*\" (also in virtual host \"local_service\")"
        )
    );
}

#[test]
fn route_action_errors() {
    let r = vh("routes[0].route");
    assert_eq!(
        err_with(&[(&r, "{weighted_clusters: {clusters: [{name: a, weight: 30}, {name: b, weight: 60}], total_weight: 100}}")]),
        format!("{r}.weighted_clusters.total_weight: 100 does not equal the sum of the weights (90)")
    );
    assert_eq!(
        err_with(&[(
            &r,
            "{weighted_clusters: {clusters: [{name: a, weight: 0}]}}"
        )]),
        format!("{r}.weighted_clusters: the weights must add up to more than 0")
    );
    assert_eq!(
        err_with(&[(&format!("{r}.retry_policy"), "{retry_on: \"5xx,bogus\"}")]),
        format!("{r}.retry_policy.retry_on: unknown retry condition \"bogus\"")
    );
    assert_eq!(
        err_with(&[
            (&format!("{r}.prefix_rewrite"), "/x"),
            (
                &format!("{r}.regex_rewrite"),
                "{pattern: {regex: a}, substitution: b}"
            )
        ]),
        format!("{r}: only one of prefix_rewrite, regex_rewrite may be set")
    );
    assert_eq!(
        err_with(&[(
            &vh("routes[0]"),
            "{match: {prefix: /}, direct_response: {status: 700}}"
        )]),
        format!("{VH}.routes[0].direct_response.status: 700 out of range (200..=599)")
    );
    assert_eq!(
        err_with(&[(
            &vh("routes[0]"),
            "{match: {prefix: /}, redirect: {https_redirect: true, scheme_redirect: ftp}}"
        )]),
        format!("{VH}.routes[0].redirect: only one of https_redirect, scheme_redirect may be set")
    );
    assert_eq!(
        err_with(&[(
            &vh("routes[0]"),
            "{match: {prefix: /}, redirect: {response_code: GONE}}"
        )]),
        format!(
            "{VH}.routes[0].redirect.response_code: unknown value \"GONE\" (supported: \
             MOVED_PERMANENTLY, FOUND, SEE_OTHER, TEMPORARY_REDIRECT, PERMANENT_REDIRECT)"
        )
    );
}

#[test]
fn header_mutation_errors() {
    let add = vh("request_headers_to_add");
    assert_eq!(
        err_with(&[(
            &add,
            "[{header: {key: x-a, value: b}, append: true, append_action: ADD_IF_ABSENT}]"
        )]),
        format!("{add}[0]: only one of append, append_action may be set (append is deprecated)")
    );
    assert_eq!(
        err_with(&[(&add, "[{header: {key: \":path\", value: /}}]")]),
        format!("{add}[0].header.key: pseudo-header \":path\" may not be modified")
    );
    assert_eq!(
        err_with(&[(&add, "[{header: {key: Host, value: x}}]")]),
        format!("{add}[0].header.key: header \"host\" may not be modified here (use host_rewrite_literal)")
    );
    assert_eq!(
        err_with(&[(&add, "[{header: {key: x-a, value: \"%HOSTNAM%\"}}]")]),
        format!("{add}[0].header.value: unknown command operator \"%HOSTNAM%\"")
    );
    assert_eq!(
        err_with(&[(
            &add,
            "[{header: {key: x-a, value: b}, append_action: REPLACE}]"
        )]),
        format!(
            "{add}[0].append_action: unknown value \"REPLACE\" (supported: \
             APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, \
             OVERWRITE_IF_EXISTS)"
        )
    );
    let rm = vh("routes[0].response_headers_to_remove");
    assert_eq!(
        err_with(&[(&rm, "[\"bad header\"]")]),
        format!("{rm}[0]: invalid header name \"bad header\"")
    );
}

#[test]
fn access_log_errors() {
    let al = hcm("access_log");
    assert_eq!(
        err_with(&[(&al, "[{name: envoy.access_loggers.open_telemetry}]")]),
        format!("{al}[0].name: unknown or unsupported extension \"envoy.access_loggers.open_telemetry\" (no typed_config \"@type\" says what it is)")
    );
    // The @type decides: a logger named "stdout" with a file logger's type is a file logger.
    let stdout = "{name: envoy.access_loggers.stdout, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog}}";
    assert_eq!(
        err_with(&[(&al, &format!("[{stdout}]"))]),
        format!("{al}[0].typed_config.path: required field is missing")
    );
    let file = "{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/a.log, log_format: {typed_json_format: {a: b}}}}";
    assert_eq!(
        err_with(&[(&al, &format!("[{file}]"))]),
        format!("{al}[0].typed_config.log_format.typed_json_format: not supported by baton (JSON access-log formats)")
    );
    let json = file.replace("typed_json_format: {a: b}", "json_format: {a: \"%NOPE%\"}");
    assert_eq!(
        err_with(&[(&al, &format!("[{json}]"))]),
        format!(
            "{al}[0].typed_config.log_format.json_format.a: unknown command operator \"%NOPE%\""
        )
    );
    let bad = file.replace(
        "typed_json_format: {a: b}",
        "text_format_source: {inline_string: \"%DURATION\"}",
    );
    assert_eq!(
        err_with(&[(&al, &format!("[{bad}]"))]),
        format!("{al}[0].typed_config.log_format.text_format_source: unterminated command operator \"%DURATION\" at offset 0")
    );
    const KINDS: &str = "status_code_filter, duration_filter, not_health_check_filter, \
         traceable_filter, runtime_filter, and_filter, or_filter, header_filter, \
         response_flag_filter, grpc_status_filter";
    let with_filter = |f: &str| {
        err_with(&[(
            &al,
            &format!("[{{name: envoy.access_loggers.stdout, filter: {f}}}]"),
        )])
    };
    assert_eq!(
        with_filter("{}"),
        format!("{al}[0].filter: one filter kind is required ({KINDS})")
    );
    for (kind, what) in [
        ("metadata_filter", "metadata"),
        ("log_type_filter", "log types"),
        ("extension_filter", "filter extensions"),
    ] {
        assert_eq!(
            with_filter(&format!("{{{kind}: {{}}}}")),
            format!(
                "{al}[0].filter.{kind}: not supported by baton ({what}); supported filters: {KINDS}"
            )
        );
    }
    assert_eq!(
        with_filter(
            "{and_filter: {filters: [{not_health_check_filter: {}}, {metadata_filter: {}}]}}"
        ),
        format!(
            "{al}[0].filter.and_filter.filters[1].metadata_filter: not supported by baton \
             (metadata); supported filters: {KINDS}"
        )
    );
    assert_eq!(
        with_filter("{runtime_filter: {percent_sampled: {numerator: 5}}}"),
        format!(
            "{al}[0].filter.runtime_filter.runtime_key: required field is missing (Envoy \
             requires a runtime key; percent_sampled applies while no runtime layer sets the key)"
        )
    );
    assert_eq!(
        with_filter("{runtime_filter: {runtime_key: k, percent_sampled: {numerator: 5, denominator: THOUSAND}}}"),
        format!(
            "{al}[0].filter.runtime_filter.percent_sampled.denominator: unknown value \
             \"THOUSAND\" (supported: HUNDRED, TEN_THOUSAND, MILLION)"
        )
    );
    assert_eq!(
        with_filter("{grpc_status_filter: {statuses: [OK, NOPE]}}"),
        format!(
            "{al}[0].filter.grpc_status_filter.statuses[1]: unknown value \"NOPE\" \
             (supported: OK, CANCELED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, \
             ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, \
             ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, \
             UNAUTHENTICATED)"
        )
    );
    assert!(
        with_filter("{not_health_check_filter: {x: 1}}").starts_with(&format!(
            "{al}[0].filter.not_health_check_filter.x: unknown"
        ))
    );
    // Every implemented kind loads, nested or not.
    let b = ok_with(&[(
        &al,
        "[{name: envoy.access_loggers.stdout, filter: {or_filter: {filters: [\
         {traceable_filter: {}}, {grpc_status_filter: {statuses: [UNAVAILABLE], exclude: true}}, \
         {and_filter: {filters: [{not_health_check_filter: {}}, {runtime_filter: \
         {runtime_key: k, percent_sampled: {numerator: 1, denominator: MILLION}, \
         use_independent_randomness: true}}]}}]}}}]",
    )]);
    let got = b.listeners[0].access_log()[0].filter.clone();
    assert_eq!(
        got,
        Some(LogFilter::Or(vec![
            LogFilter::Traceable,
            LogFilter::GrpcStatus {
                statuses: vec![14],
                exclude: true
            },
            LogFilter::And(vec![
                LogFilter::NotHealthCheck,
                LogFilter::Runtime(RuntimeSample {
                    runtime_key: "k".into(),
                    numerator: 1,
                    denominator: 1_000_000,
                    independent: true,
                }),
            ]),
        ]))
    );
}

#[test]
fn deeply_nested_flow_collections_are_refused_before_parsing() {
    // Found by the hostile-input hunt: 100,000 `[` took libyaml about 45 s to refuse.
    let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let t0 = std::time::Instant::now();
    let e = load_str(&deep).unwrap_err();
    assert_eq!(e.first().unwrap().message, crate::config::FLOW_TOO_DEEP);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    let maps = format!("a: {}{}", "{a: ".repeat(1000), "}".repeat(1000));
    assert!(crate::config::flow_too_deep(&maps));
    // Brackets that open nothing: in quotes, comments, plain scalars; and shallow nesting.
    for fine in [
        format!("a: \"{}\"", "[".repeat(500)),
        format!("a: '{}'", "{".repeat(500)),
        format!("# {}\na: 1", "[".repeat(500)),
        format!("a: x{}", "[".repeat(500)),
        format!("a: {}{}", "[".repeat(100), "]".repeat(100)),
        "regex: ^[a-z]+[0-9]{2}$\n".repeat(500),
    ] {
        assert!(!crate::config::flow_too_deep(&fine), "{fine:.60}");
    }
}

#[test]
fn document_level_errors() {
    let e = load_str("static_resources: [unclosed").unwrap_err();
    let e = e.first().unwrap();
    assert_eq!(e.path, "");
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
    assert_eq!(
        load_str("").unwrap_err().to_string(),
        "the bootstrap must be a YAML map (is the file empty?)"
    );
    let e = load_file(Path::new("/nonexistent/envoy.yaml")).unwrap_err();
    assert!(
        e.first()
            .unwrap()
            .message
            .starts_with("cannot read /nonexistent/envoy.yaml: "),
        "{e}"
    );
    assert_eq!(
        load(
            None,
            Some("admin: {address: {socket_address: {address: 127.0.0.1, port_value: 99999}}}")
        )
        .unwrap_err()
        .to_string(),
        "admin.address.socket_address.port_value: 99999 out of range"
    );
}

#[test]
fn stream_loggers_and_endpoint_weights_load() {
    let al = hcm("access_log");
    let b = ok_with(&[(&al, "[{name: envoy.access_loggers.stderr}]")]);
    assert_eq!(
        b.listeners[0].hcm().unwrap().access_log[0].path,
        "/dev/stderr"
    );
    let lb = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight";
    let b = ok_with(&[(lb, "7")]);
    assert_eq!(b.clusters[0].endpoints[0].weight, 7);
    assert_eq!(err_with(&[(lb, "0")]), format!("{lb}: must be at least 1"));
}

#[test]
fn upgrade_config_errors() {
    assert_eq!(
        err_with(&[(
            &hcm("upgrade_configs"),
            "[{upgrade_type: websocket, filters: [{name: x}]}]"
        )]),
        format!(
            "{HCM}.upgrade_configs[0].filters: custom upgrade filter chains are not implemented"
        )
    );
    assert_eq!(
        err_with(&[(&hcm("upgrade_configs"), "[{upgrade_type: \"\"}]")]),
        format!("{HCM}.upgrade_configs[0].upgrade_type: invalid upgrade type \"\"")
    );
    let r = vh("routes[0].route.upgrade_configs");
    assert_eq!(
        err_with(&[(&r, "[{upgrade_type: websocket, connect_config: {}}]")]),
        format!("{r}[0].connect_config: only valid with upgrade_type CONNECT")
    );
    assert_eq!(
        err_with(&[(
            &r,
            "[{upgrade_type: CONNECT, connect_config: {allow_post: true}}]"
        )]),
        format!("{r}[0].connect_config.allow_post: POST tunnels are not implemented")
    );
    assert_eq!(
        err_with(&[(
            &vh("routes[0].match"),
            "{prefix: /, connect_matcher: {}}"
        )]),
        format!("{VH}.routes[0].match: only one of prefix, path, safe_regex, connect_matcher may be set")
    );
}

/// The filter chain and `typed_per_filter_config`: each refusal names its field.
#[test]
fn http_filters_and_per_route_configs_name_their_field() {
    const CORS: &str = "{name: cors, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}}";
    const ROUTER: &str = "{name: envoy.filters.http.router}";
    const POLICY: &str =
        "\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";
    let chain = format!("[{CORS}, {ROUTER}]");
    let with = |at: &str, v: &str| err_with(&[(&hcm("http_filters"), &chain), (at, v)]);
    let tpf = vh("routes[0].typed_per_filter_config");
    assert_eq!(
        with(&tpf, &format!("{{other: {{{POLICY}}}}}")),
        format!(
            "{tpf}.other: no HTTP filter of this connection manager is named \"other\" \
             (filters before the router: cors)"
        )
    );
    assert_eq!(
        with(&tpf, "{cors: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute}}"),
        format!(
            "{tpf}.cors.@type: per-route config type \"envoy.extensions.filters.http.lua.v3.LuaPerRoute\" \
             is not supported by baton (supported: envoy.extensions.filters.http.cors.v3.CorsPolicy, \
             envoy.extensions.filters.http.csrf.v3.CsrfPolicy, \
             envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, \
             envoy.extensions.filters.http.rbac.v3.RBACPerRoute, \
             envoy.extensions.filters.http.fault.v3.HTTPFault, \
             envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, \
             envoy.config.route.v3.FilterConfig)"
        )
    );
    assert_eq!(
        with(
            &tpf,
            &format!("{{cors: {{{POLICY}, filter_enabled: {{runtime_key: k}}}}}}")
        ),
        format!("{tpf}.cors.filter_enabled.default_value: required field is missing")
    );
    assert_eq!(
        with(&tpf, &format!("{{cors: {{{POLICY}, allow_origin: [x]}}}}")),
        format!(
            "{tpf}.cors.allow_origin: unknown or unsupported field \"allow_origin\" (accepted here: \
             allow_origin_string_match, allow_methods, allow_headers, expose_headers, max_age, \
             allow_credentials, allow_private_network_access, forward_not_matching_preflights, \
             filter_enabled, shadow_enabled)"
        )
    );
    assert_eq!(
        with(&tpf, "{cors: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: {default_value: {numerator: 1}}}}"),
        format!(
            "{tpf}.cors: this config's type does not belong to filter \"cors\" \
             (envoy.extensions.filters.http.cors.v3.Cors)"
        )
    );
    // An optional per-route config of a type baton lacks is left out, as in Envoy.
    let b = ok_with(&[
        (&hcm("http_filters"), &chain),
        (&tpf, "{cors: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {\"@type\": type.googleapis.com/x.Unknown}}}"),
    ]);
    let rc = &b.listeners[0].hcm().unwrap().route_config;
    assert!(rc.virtual_hosts[0].routes[0].filter_configs.is_empty());
    // So is an optional HTTP filter.
    let b = ok_with(&[(
        &hcm("http_filters"),
        &format!("[{{name: lua, is_optional: true, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}}}, {ROUTER}]"),
    )]);
    assert!(b.listeners[0].hcm().unwrap().http_filters.is_empty());
    assert_eq!(
        err_with(&[(&hcm("http_filters"), &format!("[{CORS}, {CORS}, {ROUTER}]"))]),
        format!("{HCM}.http_filters[1].name: duplicate HTTP filter name \"cors\"")
    );
    // The legacy `cors` field needs a CORS filter to read it.
    assert_eq!(
        err_with(&[(&vh("cors"), "{allow_methods: GET}")]),
        format!(
            "{VH}.cors: no CORS filter (envoy.filters.http.cors) in http_filters reads this policy"
        )
    );
    // Envoy v2's `allow_origin` is gone in v3.
    let e = err_with(&[(&vh("routes[0].route.cors"), "{allow_origin: [x]}")]);
    assert!(
        e.contains(&format!(
            "{VH}.routes[0].route.cors.allow_origin: unknown or unsupported field \"allow_origin\""
        )),
        "{e}"
    );
    // Local rate limits: what baton does not implement is refused by path.
    const RLT: &str = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
    let rl = |fields: &str| {
        err_with(&[(
            &hcm("http_filters"),
            &format!("[{{name: rl, typed_config: {{{RLT}, {fields}}}}}, {ROUTER}]"),
        )])
    };
    let at = format!("{HCM}.http_filters[0].typed_config");
    assert_eq!(
        rl("stat_prefix: x, descriptors: [{entries: [{key: k, value: v}], token_bucket: {max_tokens: 1, fill_interval: 1s}}]"),
        format!("{at}.descriptors: not supported by baton (rate limit descriptors)")
    );
    assert_eq!(
        rl("stat_prefix: x, local_rate_limit_per_downstream_connection: true"),
        format!("{at}.local_rate_limit_per_downstream_connection: not supported by baton (a token bucket per downstream connection)")
    );
    assert_eq!(
        rl("stat_prefix: x, enable_x_ratelimit_headers: DRAFT_VERSION_03")
            .split(" (supported")
            .next(),
        Some(
            format!(
                "{at}.enable_x_ratelimit_headers: value \"DRAFT_VERSION_03\" is not supported by baton"
            )
            .as_str()
        )
    );
    assert_eq!(
        rl("stat_prefix: x, token_bucket: {max_tokens: 1, fill_interval: 0.049s}"),
        format!("{at}.token_bucket.fill_interval: must be at least 50ms")
    );
    assert_eq!(
        rl("stat_prefix: x, token_bucket: {max_tokens: 0, fill_interval: 1s}"),
        format!("{at}.token_bucket.max_tokens: must be greater than 0")
    );
    assert_eq!(
        rl("token_bucket: {max_tokens: 1, fill_interval: 1s}"),
        format!("{at}.stat_prefix: required field is missing")
    );
    // A per-route config needs its own bucket.
    assert_eq!(
        err_with(&[
            (&hcm("http_filters"), &format!("[{{name: rl, typed_config: {{{RLT}, stat_prefix: x}}}}, {ROUTER}]")),
            (&tpf, &format!("{{rl: {{{RLT}, stat_prefix: y}}}}")),
        ]),
        format!("{tpf}.rl.token_bucket: required field is missing (a per-route local rate limit needs its bucket)")
    );
    // Weighted cluster entries take no per-route config.
    let at = vh("routes[0].route");
    assert_eq!(
        err_with(&[
            (&hcm("http_filters"), &chain),
            (&at, "{weighted_clusters: {clusters: [{name: a, weight: 1, typed_per_filter_config: {}}]}}"),
        ]),
        format!(
            "{at}.weighted_clusters.clusters[0].typed_per_filter_config: not supported by baton \
             (per-route filter config here; it is taken on virtual hosts and routes)"
        )
    );
}
