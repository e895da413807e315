//! Envoy's lenient YAML forms, v2 refusals, every error in one load, the runtime, and regex
//! program sizes.

use super::*;

fn cl(field: &str) -> String {
    format!("static_resources.clusters[0].{field}")
}

#[test]
fn enum_names_are_case_insensitive() {
    let b = ok_with(&[
        (&cl("type"), "static"),
        (&cl("lb_policy"), "least_request"),
        (&cl("dns_lookup_family"), "v4_Only"),
        (&format!("{HCM}.codec_type"), "auto"),
    ]);
    assert_eq!(b.clusters[0].lb_policy, LbPolicy::LeastRequest);
    assert_eq!(b.clusters[0].dns_lookup_family, DnsLookupFamily::V4Only);
    assert_eq!(b.listeners[0].hcm().unwrap().codec_type, CodecType::Auto);
    assert_eq!(
        err_with(&[(&cl("lb_policy"), "cluster_provided")]),
        "static_resources.clusters[0].lb_policy: value \"CLUSTER_PROVIDED\" is not supported by baton \
         (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)"
    );
}

#[test]
fn a_single_value_stands_for_a_list_of_one() {
    let b = ok_with(&[
        (&format!("{VH}.domains"), "example.com"),
        (
            &format!("{HCM}.http_filters"),
            "{name: envoy.filters.http.router}",
        ),
    ]);
    assert_eq!(
        b.listeners[0].hcm().unwrap().route_config.virtual_hosts[0].domains,
        ["example.com"]
    );
    // Errors inside the lone value name it as the list's element 0.
    assert_eq!(
        err_with(&[(&format!("{VH}.routes"), "{match: {prefix: /}}")]),
        format!("{VH}.routes[0]: one of route, redirect, direct_response is required")
    );
}

/// Chains that configure the same connection manager share it, however their YAML spells it;
/// chains that configure different ones each have their own.
#[test]
fn filter_chains_compare_what_their_filters_configure() {
    let chains = "static_resources.listeners[0].filter_chains";
    let two = |edits: &[(&str, &str)]| {
        let mut d = doc();
        let c0 = slot(&mut d, &format!("{chains}[0]")).clone();
        *slot(&mut d, &format!("{chains}[1]")) = c0;
        set(
            &mut d,
            &format!("{chains}[0].filter_chain_match"),
            "{destination_port: 80}",
        );
        set(
            &mut d,
            &format!("{chains}[1].filter_chain_match"),
            "{destination_port: 81}",
        );
        for (p, y) in edits {
            set(&mut d, &format!("{chains}[1].filters[0].{p}"), y);
        }
        check(&d)
    };
    let hcm1 = "typed_config.route_config.virtual_hosts[0]";
    // The filter's name is a label, a lone domain is a list of one, only the type URL's last
    // part counts, and an absent field is its default.
    let b = two(&[
        ("name", "envoy.http_connection_manager"),
        (&format!("{hcm1}.domains"), "\"*\""),
        (
            "typed_config.@type",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        ),
        ("typed_config.codec_type", "AUTO"),
        ("typed_config.http_filters[0].typed_config", "{}"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.listeners[0].filter_chains.len(), 2);
    assert_eq!(
        b.listeners[0].terminals.len(),
        1,
        "one connection manager, shared"
    );
    // What the connection manager does differs: each chain has its own.
    for (p, y) in [
        ("typed_config.stat_prefix", "other"),
        (&*format!("{hcm1}.domains"), "[a.example]"),
        (&*format!("{hcm1}.routes[0].route.cluster"), "b"),
        ("typed_config.codec_type", "HTTP1"),
    ] {
        let b = two(&[(p, y)]).unwrap_or_else(|e| panic!("{p}: {e}"));
        let l = &b.listeners[0];
        assert_eq!(l.terminals.len(), 2, "{p}: {y}");
        let t: Vec<usize> = l.filter_chains.iter().map(|c| c.terminal).collect();
        assert_eq!(t, [0, 1], "{p}: {y}");
    }
}

#[test]
fn v2_fields_are_refused_with_their_v3_names() {
    assert_eq!(
        err_with(&[(
            &cl("hosts"),
            "[{socket_address: {address: 127.0.0.1, port_value: 80}}]"
        )]),
        "static_resources.clusters[0].hosts: \"hosts\" is Envoy v2 (removed in v3): use \
         load_assignment"
    );
    assert_eq!(
        err_with(&[(&format!("{HCM}.http_filters[0].config"), "{}")]),
        format!(
            "{HCM}.http_filters[0].config: \"config\" is Envoy v2 (removed in v3): use \
             typed_config (with an \"@type\")"
        )
    );
    assert_eq!(
        err_with(&[(&format!("{VH}.routes[0].route.host_rewrite"), "x")]),
        format!(
            "{VH}.routes[0].route.host_rewrite: \"host_rewrite\" is Envoy v2 (removed in v3): \
             use host_rewrite_literal"
        )
    );
    assert_eq!(
        err_with(&[(&format!("{VH}.routes[0].match.regex"), "/a.*")]),
        format!(
            "{VH}.routes[0].match.regex: \"regex\" is Envoy v2 (removed in v3): use safe_regex"
        )
    );
    assert_eq!(
        err_with(&[(
            &format!("{HCM}.@type"),
            "type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager"
        )]),
        format!(
            "{HCM}.@type: \"type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager\" \
             is an Envoy v2 type (removed in v3): use type.googleapis.com/\
             envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        )
    );
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let mut d = doc();
    set(&mut d, &cl("lb_polcy"), "RANDOM");
    set(&mut d, &cl("connect_timeout"), "5");
    set(&mut d, "static_resources.clusters[1].type", "EDS");
    set(&mut d, &format!("{VH}.routes[0].route.cluster"), "nope");
    set(
        &mut d,
        &format!("{VH}.routes[1]"),
        "{match: {prefix: /x}, direct_response: {status: 99}}",
    );
    set(&mut d, &format!("{HCM}.codec_type"), "HTTP3");
    set(&mut d, "stats_sinks", "[{name: envoy.stat_sinks.hystrix}]");
    let e = check(&d).unwrap_err();
    let found: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
    let want = [
        "static_resources.clusters[0].lb_polcy: unknown or unsupported field",
        "static_resources.clusters[0].connect_timeout: invalid duration 5",
        "stats_sinks[0].name: unknown or unsupported extension",
        "static_resources.clusters[1].type: value \"EDS\" is not supported",
        &format!("{HCM}.codec_type: value \"HTTP3\" is not supported"),
        &format!("{VH}.routes[0].route.cluster: unknown cluster \"nope\""),
        &format!("{VH}.routes[1].direct_response.status: 99 out of range"),
    ];
    for w in want {
        assert!(
            found.iter().any(|f| f.starts_with(w)),
            "{w:?} not in {found:#?}"
        );
    }
    assert_eq!(found.len(), want.len(), "{found:#?}");
    assert!(e.to_string().starts_with("7 errors:\n  "), "{e}");
}

/// An error in a listener's TLS does not hide its connection manager's, nor the overload
/// manager's actions its monitors'.
#[test]
fn tls_and_overload_action_errors_hide_no_others() {
    let chain = "static_resources.listeners[0].filter_chains[0]";
    let mut d = doc();
    set(
        &mut d,
        &format!("{chain}.transport_socket"),
        "{name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {tls_certificates: [{certificate_chain: {filename: /nonexistent/cert.pem}, private_key: {filename: /nonexistent/key.pem}}]}}}",
    );
    set(&mut d, &format!("{HCM}.drain_timeout"), "300s");
    set(
        &mut d,
        "overload_manager",
        "{resource_monitors: [{name: envoy.resource_monitors.fixed_heap, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig}}], actions: [{name: envoy.overload_actions.shrink_heap}]}",
    );
    let e = check(&d).unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    let tls = if cfg!(feature = "tls") {
        "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.\
         common_tls_context.tls_certificates[0].certificate_chain.filename"
    } else {
        "static_resources.listeners[0].filter_chains[0].transport_socket"
    };
    assert_eq!(
        paths,
        [
            tls,
            &format!("{HCM}.drain_timeout"),
            "overload_manager.resource_monitors[0].typed_config.max_heap_size_bytes",
            "overload_manager.actions[0].triggers",
        ],
        "{e}"
    );
}

#[test]
fn a_cluster_with_errors_causes_no_errors_in_routes_naming_it() {
    let e = err_with(&[(&cl("type"), "EDS")]);
    assert_eq!(
        e,
        "static_resources.clusters[0].type: value \"EDS\" is not supported by baton \
         (supported: STATIC, STRICT_DNS, LOGICAL_DNS)"
    );
}

#[test]
fn runtime_keys_baton_implements_are_honoured() {
    let b = ok_with(&[(
        "layered_runtime",
        "{layers: [{name: a, static_layer: {overload: {global_downstream_max_connections: 7}}}, \
         {name: b, static_layer: {overload.global_downstream_max_connections: 9}}, \
         {name: c, admin_layer: {}}]}",
    )]);
    // The later layer wins, as in Envoy.
    assert_eq!(b.max_downstream_connections, Some(9));
    let b = ok_with(&[("layered_runtime", "{layers: []}")]);
    assert_eq!(b.max_downstream_connections, None);
}

#[test]
fn the_runtime_listener_connection_limit_applies_to_the_named_listener_only() {
    // A listener name may hold dots; the key is the name between the prefix and the suffix.
    let rt = |v: &str| {
        format!(
            "{{layers: [{{name: a, static_layer: \
             {{envoy.resource_limits.listener.listener_0.connection_limit: {v}, \
             envoy.resource_limits.listener.edge.v2.connection_limit: 9}}}}]}}"
        )
    };
    let b = ok_with(&[("layered_runtime", &rt("3"))]);
    assert_eq!(b.listeners[0].runtime_connection_limit, Some(3));
    let b = ok_with(&[("layered_runtime", &rt("\"0\""))]);
    assert_eq!(b.listeners[0].runtime_connection_limit, Some(0));
    let b = ok_with(&[("layered_runtime", "{layers: []}")]);
    assert_eq!(b.listeners[0].runtime_connection_limit, None);
    assert_eq!(
        err_with(&[("layered_runtime", &rt("-1"))]),
        "layered_runtime.layers[0].static_layer.envoy.resource_limits.listener.listener_0.\
         connection_limit: expected a whole number of at least 0"
    );
    // No listener name between the prefix and the suffix: not this key.
    let e = err_with(&[(
        "layered_runtime",
        "{layers: [{name: a, static_layer: {envoy.resource_limits.listener.connection_limit: 1}}]}",
    )]);
    assert!(e.contains("is not implemented by baton"), "{e}");
}

#[test]
fn runtime_keys_baton_does_not_implement_are_refused_by_path() {
    let e = err_with(&[(
        "layered_runtime",
        "{layers: [{name: s, static_layer: {envoy: {reloadable_features: {x: true}}, \
         re2.max_program_size.warn_level: 10}}, {name: d, disk_layer: {symlink_root: /srv, \
         append_service_cluster: true}}]}",
    )]);
    assert_eq!(
        e,
        "3 errors:\n  \
         layered_runtime.layers[1].disk_layer.append_service_cluster: not supported by baton (a per-service-cluster subdirectory)\n  \
         layered_runtime.layers[0].static_layer.envoy.reloadable_features.x: runtime key \
         \"envoy.reloadable_features.x\" is not implemented by baton (implemented: \
         envoy.resource_limits.listener.<name>.connection_limit, \
         fault.http.abort.abort_percent, fault.http.abort.http_status, \
         fault.http.delay.fixed_delay_percent, fault.http.delay.fixed_duration_ms, \
         fault.http.max_active_faults, \
         overload.global_downstream_max_connections, re2.max_program_size.error_level)\n  \
         layered_runtime.layers[0].static_layer.re2.max_program_size.warn_level: runtime key \
         \"re2.max_program_size.warn_level\" is not implemented by baton (implemented: \
         envoy.resource_limits.listener.<name>.connection_limit, \
         fault.http.abort.abort_percent, fault.http.abort.http_status, \
         fault.http.delay.fixed_delay_percent, fault.http.delay.fixed_duration_ms, \
         fault.http.max_active_faults, \
         overload.global_downstream_max_connections, re2.max_program_size.error_level)"
    );
    let both = err_with(&[
        (
            "layered_runtime",
            "{layers: [{name: s, static_layer: {overload.global_downstream_max_connections: 5}}]}",
        ),
        (
            "overload_manager",
            r#"{resource_monitors: [{name: m, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 5}}]}"#,
        ),
    ]);
    assert!(
        both.starts_with(
            "layered_runtime.layers[0].static_layer.overload.global_downstream_max_connections: \
             set both here and by the overload manager"
        ),
        "{both}"
    );
}

#[test]
fn regex_program_size_limits_are_enforced() {
    let re = |r: &str| format!("{{safe_regex: {r}}}");
    let m = format!("{VH}.routes[0].match");
    // Small enough: loads.
    ok_with(&[(
        &m,
        &re("{regex: \"/v[0-9]+/.*\", google_re2: {max_program_size: 100}}"),
    )]);
    let size = program_size("/(a|b|c|d|e|f|g|h)+/[0-9]{1,20}").unwrap();
    assert!(size > 20, "{size}");
    assert_eq!(
        err_with(&[(
            &m,
            &re("{regex: \"/(a|b|c|d|e|f|g|h)+/[0-9]{1,20}\", google_re2: {max_program_size: 20}}")
        )]),
        format!(
            "{m}.safe_regex.google_re2.max_program_size: regex \"/(a|b|c|d|e|f|g|h)+/[0-9]{{1,20}}\": \
             program size {size} is larger than the maximum 20"
        )
    );
    // The runtime's error level applies to every regex without its own limit.
    let rt = "{layers: [{name: s, static_layer: {re2.max_program_size.error_level: 20}}]}";
    let e = err_with(&[
        ("layered_runtime", rt),
        (&m, &re("{regex: \"/(a|b|c|d|e|f|g|h)+/[0-9]{1,20}\"}")),
    ]);
    assert!(
        e.starts_with(&format!("{m}.safe_regex.regex: regex ")),
        "{e}"
    );
    // A regex's own limit wins over the runtime's.
    ok_with(&[
        ("layered_runtime", rt),
        (
            &m,
            &re("{regex: \"/(a|b|c|d|e|f|g|h)+/[0-9]{1,20}\", google_re2: {max_program_size: 1000}}"),
        ),
    ]);
    // Without any limit nothing is refused, and a later load on the same thread is not
    // affected by an earlier one's runtime.
    ok_with(&[(&m, &re("{regex: \"/(a|b|c|d|e|f|g|h)+/[0-9]{1,20}\"}"))]);
}
