//! Issue 6's routing features as they land in the model.

use super::*;
use std::time::Duration;

fn forward(r: &Route) -> &ForwardAction {
    match &r.action {
        RouteAction::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

#[test]
fn header_mutations_at_three_levels() {
    let b = ok_with(&[
        (
            &format!("{VH}.request_headers_to_add"),
            "[{header: {key: X-Vh, value: \"%DOWNSTREAM_REMOTE_ADDRESS%\"}, append: false}]",
        ),
        (
            &format!("{HCM}.route_config.response_headers_to_add"),
            "[{header: {key: X-Proxy-Generation, value: \"2\"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]",
        ),
        (&format!("{HCM}.route_config.response_headers_to_remove"), "[Server]"),
        (&format!("{HCM}.route_config.most_specific_header_mutations_wins"), "true"),
        (
            &format!("{VH}.routes[0].response_headers_to_add"),
            "[{header: {key: x-r, value: \"%REQ(x-id)% %START_TIME(%s)% %%\"}, keep_empty_value: true}, \
             {header: {key: x-s}, append_action: 1}]",
        ),
        (&format!("{VH}.routes[0].request_headers_to_remove"), "[x-drop]"),
    ]);
    let rc = &b.listeners[0].hcm().unwrap().route_config;
    assert!(rc.most_specific_header_mutations_wins);
    assert_eq!(
        rc.headers.response_headers_to_add,
        vec![HeaderValueOption {
            name: "x-proxy-generation".into(),
            value: "2".into(),
            append_action: AppendAction::OverwriteIfExistsOrAdd,
            keep_empty_value: false,
        }]
    );
    assert_eq!(
        rc.headers.response_headers_to_remove,
        vec!["server".to_string()]
    );
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.headers.request_headers_to_add[0].name, "x-vh");
    assert_eq!(
        vh.headers.request_headers_to_add[0].value,
        "%DOWNSTREAM_REMOTE_ADDRESS%"
    );
    assert_eq!(
        vh.headers.request_headers_to_add[0].append_action,
        AppendAction::OverwriteIfExistsOrAdd
    );
    let r = &vh.routes[0].headers;
    assert_eq!(
        r.response_headers_to_add[0].value,
        "%REQ(x-id)% %START_TIME(%s)% %%"
    );
    assert_eq!(
        r.response_headers_to_add[0].append_action,
        AppendAction::AppendIfExistsOrAdd
    );
    assert!(r.response_headers_to_add[0].keep_empty_value);
    assert_eq!(r.response_headers_to_add[1].value, "");
    assert_eq!(
        r.response_headers_to_add[1].append_action,
        AppendAction::AddIfAbsent
    );
    assert_eq!(r.request_headers_to_remove, vec!["x-drop".to_string()]);
    assert!(r.request_headers_to_add.is_empty() && !r.is_empty());
}

#[test]
fn matchers() {
    let r = route_with(&[(
        &format!("{VH}.routes[0].match"),
        r#"{safe_regex: {google_re2: {}, regex: "/api/v[0-9]+/.*"}, case_sensitive: false,
            headers: [{name: X-Canary, string_match: {exact: "yes", ignore_case: true}},
                      {name: ":method", exact_match: GET},
                      {name: x-debug, present_match: true, invert_match: true},
                      {name: x-n, range_match: {start: 1, end: 10}},
                      {name: x-any}],
            query_parameters: [{name: v, string_match: {prefix: "2"}}, {name: debug}]}"#,
    )]);
    let PathMatch::SafeRegex(re) = &r.matcher.path else {
        panic!("regex expected")
    };
    assert_eq!(re.pattern(), "/api/v[0-9]+/.*");
    assert!(re.is_full_match("/api/v2/users"));
    assert!(
        !re.is_full_match("/x/api/v2/users"),
        "safe_regex matches the whole path"
    );
    assert!(!r.matcher.case_sensitive);
    let h = &r.matcher.headers;
    assert_eq!(
        h[0],
        HeaderMatcher {
            name: "x-canary".into(),
            rule: HeaderMatchRule::Value(StringMatch {
                kind: StringMatchKind::Exact("yes".into()),
                ignore_case: true
            }),
            invert: false,
        }
    );
    assert_eq!(h[1].name, ":method");
    assert_eq!(
        h[1].rule,
        HeaderMatchRule::Value(StringMatch {
            kind: StringMatchKind::Exact("GET".into()),
            ignore_case: false
        })
    );
    assert_eq!(
        (h[2].rule.clone(), h[2].invert),
        (HeaderMatchRule::Present(true), true)
    );
    assert_eq!(h[3].rule, HeaderMatchRule::Range { start: 1, end: 10 });
    assert_eq!(h[4].rule, HeaderMatchRule::Present(true));
    let q = &r.matcher.query_parameters;
    assert_eq!(q[0].name, "v");
    assert_eq!(
        q[0].rule,
        QueryParameterRule::Value(StringMatch {
            kind: StringMatchKind::Prefix("2".into()),
            ignore_case: false
        })
    );
    assert_eq!(q[1].rule, QueryParameterRule::Present);
}

#[test]
fn domains_lower_cased_path_match() {
    let b = ok_with(&[
        (
            &format!("{VH}.domains"),
            "[Example.COM, \"*.Foo.org\", \"api.*\", \"*\"]",
        ),
        (&format!("{VH}.routes[0].match"), "{path: /Exact}"),
    ]);
    let vh = &b.listeners[0].hcm().unwrap().route_config.virtual_hosts[0];
    assert_eq!(vh.domains, vec!["example.com", "*.foo.org", "api.*", "*"]);
    assert_eq!(vh.routes[0].matcher.path, PathMatch::Path("/Exact".into()));
}

#[test]
fn forward_options() {
    let r = route_with(&[(
        &format!("{VH}.routes[0].route"),
        r#"{weighted_clusters: {clusters: [{name: a, weight: 90}, {name: b, weight: 10}], total_weight: 100},
            regex_rewrite: {pattern: {regex: "^/old/(.*)$"}, substitution: "/new/\\1"},
            host_rewrite_literal: upstream.local, timeout: 2.5s,
            retry_policy: {retry_on: "5xx, connect-failure,retriable-status-codes", num_retries: 3,
                           per_try_timeout: 0.5s, retriable_status_codes: [503, 409],
                           retry_back_off: {base_interval: 0.1s}}}"#,
    )]);
    let f = forward(&r);
    assert_eq!(f.cluster, ClusterSpec::Weighted(vec![(0, 90), (1, 10)]));
    let rr = f.regex_rewrite.as_ref().unwrap();
    assert_eq!(rr.substitution, "/new/${1}");
    assert_eq!(
        rr.pattern
            .unanchored()
            .replace_all("/old/x/y", rr.substitution.as_str()),
        "/new/x/y"
    );
    assert_eq!(
        f.host_rewrite,
        Some(HostRewrite::Literal("upstream.local".into()))
    );
    assert_eq!(f.timeout, Some(Duration::from_millis(2500)));
    let p = f.retry_policy.as_ref().unwrap();
    assert_eq!(
        p.retry_on,
        RetryOn {
            five_xx: true,
            connect_failure: true,
            retriable_status_codes: true,
            ..Default::default()
        }
    );
    assert_eq!(p.num_retries, 3);
    assert_eq!(p.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(p.retriable_status_codes, vec![503, 409]);
    assert_eq!(
        (p.back_off_base, p.back_off_max),
        (Duration::from_millis(100), Duration::from_secs(1))
    );

    let r = route_with(&[
        (&format!("{VH}.routes[0].route.auto_host_rewrite"), "true"),
        (&format!("{VH}.routes[0].route.prefix_rewrite"), "/v2/"),
        (
            &format!("{VH}.routes[0].route.retry_policy"),
            "{retry_on: gateway-error}",
        ),
    ]);
    let f = forward(&r);
    assert_eq!(f.host_rewrite, Some(HostRewrite::Auto));
    assert_eq!(f.prefix_rewrite.as_deref(), Some("/v2/"));
    let p = f.retry_policy.as_ref().unwrap();
    assert_eq!(p.num_retries, 1, "Envoy's default");
    assert!(p.retry_on.gateway_error && !p.retry_on.five_xx);
    assert_eq!(
        (p.back_off_base, p.back_off_max),
        (Duration::from_millis(25), Duration::from_millis(250))
    );
}

#[test]
fn direct_response_and_redirect() {
    let r = route_with(&[(
        &format!("{VH}.routes[0]"),
        "{match: {prefix: /health}, direct_response: {status: 200, body: {inline_string: ok}}}",
    )]);
    assert_eq!(
        r.action,
        RouteAction::DirectResponse {
            status: 200,
            body: Some("ok".into())
        }
    );
    let r = route_with(&[(
        &format!("{VH}.routes[0]"),
        "{match: {prefix: /}, direct_response: {status: 503}}",
    )]);
    assert_eq!(
        r.action,
        RouteAction::DirectResponse {
            status: 503,
            body: None
        }
    );

    let r = route_with(&[(
        &format!("{VH}.routes[0]"),
        "{match: {prefix: /}, redirect: {https_redirect: true}}",
    )]);
    assert_eq!(
        r.action,
        RouteAction::Redirect(RedirectAction {
            scheme: Some("https".into()),
            host: None,
            port: None,
            path: PathRedirect::Keep,
            response_code: 301,
            strip_query: false,
        })
    );
    let r = route_with(&[(
        &format!("{VH}.routes[0]"),
        "{match: {prefix: /old}, redirect: {scheme_redirect: HTTP, host_redirect: new.example, \
          port_redirect: 8443, prefix_rewrite: /new, response_code: TEMPORARY_REDIRECT, strip_query: true}}",
    )]);
    let RouteAction::Redirect(rd) = r.action else {
        panic!("redirect expected")
    };
    assert_eq!(rd.scheme.as_deref(), Some("http"));
    assert_eq!(rd.host.as_deref(), Some("new.example"));
    assert_eq!(rd.port, Some(8443));
    assert_eq!(rd.path, PathRedirect::Prefix("/new".into()));
    assert_eq!(rd.response_code, 307);
    assert!(rd.strip_query);
    let r = route_with(&[(
        &format!("{VH}.routes[0]"),
        "{match: {prefix: /}, redirect: {path_redirect: /moved, response_code: 4}}",
    )]);
    let RouteAction::Redirect(rd) = r.action else {
        panic!("redirect expected")
    };
    assert_eq!(
        (rd.path, rd.response_code),
        (PathRedirect::Path("/moved".into()), 308)
    );
}

/// The base document with `filter` (YAML) inserted before the HTTP connection manager.
fn with_network_filter(filter: &str) -> Result<Bootstrap, crate::config::ConfigErrors> {
    let mut d = doc();
    let filters = slot(
        &mut d,
        "static_resources.listeners[0].filter_chains[0].filters",
    );
    let seq = filters.as_sequence_mut().unwrap();
    seq.insert(0, serde_yaml::from_str(filter).unwrap());
    check(&d)
}

const CL: &str = r#"{name: envoy.filters.network.connection_limit, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit, stat_prefix: cl, max_connections: 100}}"#;

#[test]
fn connection_limits_global_and_per_listener() {
    let b = ok_with(&[(
        "overload_manager",
        r#"{refresh_interval: 0.25s, resource_monitors: [{name: envoy.resource_monitors.global_downstream_max_connections, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 5000}}]}"#,
    )]);
    assert_eq!(b.max_downstream_connections, Some(5000));
    assert_eq!(ok_with(&[]).max_downstream_connections, None);
    let b = with_network_filter(CL).unwrap();
    assert_eq!(
        b.listeners[0].connection_limit,
        Some(ConnectionLimit {
            stat_prefix: "cl".into(),
            max_connections: 100
        })
    );
    assert_eq!(ok_with(&[]).listeners[0].connection_limit, None);
}

#[test]
fn connection_limit_errors_name_the_field() {
    let f = "static_resources.listeners[0].filter_chains[0].filters[0]";
    let e = |x: &str| with_network_filter(x).unwrap_err().to_string();
    assert_eq!(
        e(&CL.replace("max_connections: 100", "max_connections: 0")),
        format!("{f}.typed_config.max_connections: must be at least 1 (got 0)")
    );
    assert_eq!(
        e(&CL.replace("max_connections: 100", "max_connections: 1, delay: 1s")),
        format!("{f}.typed_config.delay: not supported by baton (connections past the limit are closed at once)")
    );
    assert_eq!(
        e(r#"{name: envoy.filters.network.mysql_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.mysql_proxy.v3.MySQLProxy}}"#),
        format!("{f}.typed_config.@type: extension type \"type.googleapis.com/envoy.extensions.filters.network.mysql_proxy.v3.MySQLProxy\" is not supported by baton")
    );
    assert_eq!(
        e(r#"{name: envoy.filters.network.mysql_proxy}"#),
        format!("{f}.name: unknown or unsupported extension \"envoy.filters.network.mysql_proxy\" (no typed_config \"@type\" says what it is)")
    );
    // The TCP proxy is a terminal filter: only last.
    assert_eq!(
        e(r#"{name: envoy.filters.network.tcp_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: a}}"#),
        format!("{f}.typed_config.@type: \"envoy.filters.network.tcp_proxy\" (envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy) is not a supported network filter before the terminal filter (supported: envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit)")
    );
    let om = |x: &str| err_with(&[("overload_manager", x)]);
    assert_eq!(
        om(r#"{resource_monitors: [{name: envoy.resource_monitors.global_downstream_max_connections, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig}}]}"#),
        "overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections: required field is missing"
    );
}

const HEAP: &str = r#"{name: heap, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 1000}}"#;

#[test]
fn the_overload_manager_takes_the_heap_monitor_and_its_actions() {
    let om = format!(
        "{{refresh_interval: 0.25s, resource_monitors: [{HEAP}], actions: [\
         {{name: envoy.overload_actions.stop_accepting_requests, triggers: [{{name: heap, threshold: {{value: 0.9}}}}]}}, \
         {{name: envoy.overload_actions.disable_http_keepalive, triggers: [{{name: heap, scaled: {{scaling_threshold: 0.5, saturation_threshold: 0.8}}}}]}}]}}"
    );
    let b = ok_with(&[("overload_manager", &om)]);
    assert_eq!(
        b.overload,
        Overload {
            refresh: std::time::Duration::from_millis(250),
            max_heap: Some(1000),
            monitor_name: "heap".into(),
            actions: vec![
                OverloadAction {
                    name: "envoy.overload_actions.stop_accepting_requests".into(),
                    kind: OverloadKind::StopAcceptingRequests,
                    triggers: vec![OverloadTrigger::Threshold(0.9)],
                },
                OverloadAction {
                    name: "envoy.overload_actions.disable_http_keepalive".into(),
                    kind: OverloadKind::DisableHttpKeepalive,
                    triggers: vec![OverloadTrigger::Scaled {
                        scaling: 0.5,
                        saturation: 0.8
                    }],
                },
            ],
        }
    );
    assert_eq!(ok_with(&[]).overload, Overload::default());
}

#[test]
fn overload_manager_errors_name_the_field() {
    let om = |x: &str| err_with(&[("overload_manager", x)]);
    let act = |name: &str, trigger: &str| {
        om(&format!(
            "{{resource_monitors: [{HEAP}], actions: [{{name: {name}, triggers: [{trigger}]}}]}}"
        ))
    };
    let a = "overload_manager.actions[0]";
    assert_eq!(
        om(r#"{resource_monitors: [{name: envoy.resource_monitors.fixed_heap}]}"#),
        "overload_manager.resource_monitors[0].typed_config: required field is missing"
    );
    assert_eq!(
        om(r#"{resource_monitors: [{name: h, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig}}]}"#),
        "overload_manager.resource_monitors[0].typed_config.max_heap_size_bytes: required field is missing"
    );
    assert_eq!(
        om(r#"{actions: [{name: envoy.overload_actions.stop_accepting_requests}]}"#),
        format!("{a}.triggers: at least one trigger is required")
    );
    assert_eq!(
        act("envoy.overload_actions.reduce_timeouts", "{name: heap, threshold: {value: 0.9}}"),
        format!("{a}.name: overload action \"envoy.overload_actions.reduce_timeouts\" is not supported by baton (supported: envoy.overload_actions.stop_accepting_requests, envoy.overload_actions.disable_http_keepalive, envoy.overload_actions.stop_accepting_connections, envoy.overload_actions.reject_incoming_connections, envoy.overload_actions.shrink_heap)")
    );
    let stop = "envoy.overload_actions.stop_accepting_requests";
    assert_eq!(
        act(stop, "{name: nope, threshold: {value: 0.9}}"),
        format!("{a}.triggers[0].name: unknown trigger resource \"nope\" (no resource monitor has this name)")
    );
    assert_eq!(
        act(stop, "{name: heap, threshold: {value: 1.5}}"),
        format!("{a}.triggers[0].threshold.value: must be between 0 and 1")
    );
    assert_eq!(
        act(
            stop,
            "{name: heap, scaled: {scaling_threshold: 0.9, saturation_threshold: 0.5}}"
        ),
        format!("{a}.triggers[0].scaled: scaling_threshold must be less than saturation_threshold")
    );
    assert_eq!(
        act(stop, "{name: heap}"),
        format!("{a}.triggers[0]: one of threshold, scaled is required")
    );
    assert_eq!(
        act(stop, "{name: heap, threshold: {value: 0.5}}, {name: heap, threshold: {value: 0.6}}"),
        format!("{a}.triggers[1].name: duplicate trigger resource (an action has one trigger per monitor)")
    );
    assert_eq!(
        om(&format!("{{resource_monitors: [{HEAP}], actions: [{{name: {stop}, triggers: [{{name: heap, threshold: {{value: 0.5}}}}]}}, {{name: {stop}, triggers: [{{name: heap, threshold: {{value: 0.6}}}}]}}]}}")),
        "overload_manager.actions[1].name: duplicate overload action"
    );
    assert_eq!(
        om(r#"{resource_monitors: [{name: cx, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 9}}], actions: [{name: envoy.overload_actions.shrink_heap, triggers: [{name: cx, threshold: {value: 0.5}}]}]}"#),
        format!("{a}.triggers[0].name: the downstream connections monitor is checked at each accept and cannot trigger an action (as in Envoy, a proactive monitor)")
    );
    assert_eq!(
        om(&format!(
            "{{refresh_interval: 0s, resource_monitors: [{HEAP}]}}"
        )),
        "overload_manager.refresh_interval: must be greater than 0"
    );
    assert_eq!(
        om("{loadshed_points: []}"),
        "overload_manager.loadshed_points: not supported by baton"
    );
}

#[test]
fn upgrade_configs_and_connect_matcher_load() {
    let b = ok_with(&[
        (
            &format!("{HCM}.upgrade_configs"),
            "[{upgrade_type: WebSocket}, {upgrade_type: CONNECT, enabled: false}]",
        ),
        (&format!("{VH}.routes[0].match"), "{connect_matcher: {}}"),
        (
            &format!("{VH}.routes[0].route.upgrade_configs"),
            "[{upgrade_type: CONNECT, connect_config: {}}, {upgrade_type: websocket, enabled: false}]",
        ),
    ]);
    let hcm = b.listeners[0].hcm().unwrap();
    assert_eq!(
        hcm.upgrades,
        vec![
            ("websocket".to_string(), true),
            ("connect".to_string(), false)
        ]
    );
    let r = &hcm.route_config.virtual_hosts[0].routes[0];
    assert_eq!(r.matcher.path, PathMatch::Connect);
    assert_eq!(
        forward(r).upgrades,
        vec![
            RouteUpgrade {
                upgrade_type: "connect".into(),
                enabled: true,
                terminate_connect: true,
            },
            RouteUpgrade {
                upgrade_type: "websocket".into(),
                enabled: false,
                terminate_connect: false,
            },
        ]
    );
}

#[test]
fn circuit_breakers_take_envoys_defaults_and_the_first_thresholds_of_each_priority() {
    use crate::config::{RetryBudget, Thresholds};
    let cb = |b: &Bootstrap| b.clusters[0].circuit_breakers.clone();
    let none = cb(&ok_with(&[]));
    assert_eq!(none.default, Thresholds::default());
    assert_eq!(none.default.max_connections, 1024);
    assert_eq!(none.default.max_retries, 3);
    assert_eq!(none.high, Thresholds::default());
    let set = cb(&ok_with(&[(
        "static_resources.clusters[0].circuit_breakers",
        "{thresholds: [\
          {max_connections: 2, max_pending_requests: 1, max_requests: \"7\", max_retries: 0, \
           track_remaining: true},\
          {priority: HIGH, max_connections: 9, retry_budget: {}},\
          {priority: DEFAULT, max_connections: 99}]}",
    )]));
    assert_eq!(
        set.default,
        Thresholds {
            max_connections: 2,
            max_pending_requests: 1,
            max_requests: 7,
            max_retries: 0,
            retry_budget: None,
            track_remaining: true,
        }
    );
    // An empty retry_budget takes Envoy's defaults (20 %, at least 3).
    assert_eq!(
        set.high.retry_budget,
        Some(RetryBudget {
            budget_percent: 20.0,
            min_retry_concurrency: 3
        })
    );
    assert_eq!(set.high.max_connections, 9);
    assert_eq!(set.high.max_pending_requests, 1024);
    let budget = cb(&ok_with(&[(
        "static_resources.clusters[0].circuit_breakers.thresholds",
        "{retry_budget: {budget_percent: {value: 12.5}, min_retry_concurrency: 1}}",
    )]));
    assert_eq!(
        budget.default.retry_budget,
        Some(RetryBudget {
            budget_percent: 12.5,
            min_retry_concurrency: 1
        })
    );
}

#[test]
fn circuit_breaker_errors_name_the_field() {
    let cb = "static_resources.clusters[0].circuit_breakers";
    let one = |field: &str, v: &str| {
        err_with(&[(&format!("{cb}.thresholds"), &format!("[{{{field}: {v}}}]"))])
    };
    assert_eq!(
        one("max_connection_pools", "10"),
        format!(
            "{cb}.thresholds[0].max_connection_pools: not supported by baton (a limit on \
             connection pools; baton keeps one pool per upstream address)"
        )
    );
    assert_eq!(
        one("priority", "URGENT"),
        format!("{cb}.thresholds[0].priority: unknown value \"URGENT\" (supported: DEFAULT, HIGH)")
    );
    assert_eq!(
        one("retry_budget", "{budget_percent: {value: 120}}"),
        format!(
            "{cb}.thresholds[0].retry_budget.budget_percent.value: 120 is not a percentage \
             (0 to 100)"
        )
    );
    assert_eq!(
        one("max_requests", "-1"),
        format!("{cb}.thresholds[0].max_requests: invalid value: integer `-1`, expected u32")
    );
}
