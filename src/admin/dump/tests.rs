//! The dump is a bootstrap baton loads back into the same model: every field of the model
//! survives `load → dump → load`.

use super::{config_dump, re2_substitution};
use crate::config::{load_str, Bootstrap};
use serde_yaml::Value;

/// Uses every variant the model has: every network filter (TCP proxies too), every route action and match kind, header
/// edits at each level, retries, rewrites, weights, every cluster type, access logs, admin,
/// the overload manager.
pub const RICH: &str = r#"
node: { id: n1, cluster: c1 }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
  access_log_path: /dev/null
  access_log:
  - name: envoy.access_loggers.stdout
    filter: { status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: admin.min } } } }
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
      log_format: { text_format: "admin %RESPONSE_CODE% %REQ(:PATH)%\n" }
stats_flush_interval: 2.5s
stats_config:
  use_all_default_tags: true
  stats_matcher:
    exclusion_list:
      patterns:
      - prefix: "cluster.dead."
      - safe_regex: { regex: ".*_bucket$" }
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8125, protocol: UDP } }
    prefix: edge
- name: envoy.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: { socket_address: { address: "::1", port_value: 8126 } }
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8127 } }
    prefix: dd
    max_bytes_per_datagram: 1400
- name: envoy.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8128 } }
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 1000
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    per_connection_buffer_limit_bytes: 65536
    filter_chains:
    - filters:
      - name: envoy.filters.network.connection_limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: cl
          max_connections: 50
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: HTTP1
          common_http_protocol_options: { idle_timeout: 0s, max_connection_duration: 90s, max_headers_count: 50, max_requests_per_connection: 1000, headers_with_underscores_action: DROP_HEADER }
          request_headers_timeout: 2.5s
          request_timeout: 20s
          stream_idle_timeout: 0s
          max_request_headers_kb: 32
          server_name: edge
          server_header_transformation: APPEND_IF_ABSENT
          use_remote_address: true
          xff_num_trusted_hops: 2
          generate_request_id: false
          normalize_path: true
          merge_slashes: true
          skip_xff_append: true
          strip_any_host_port: true
          strip_trailing_host_dot: true
          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
          preserve_external_request_id: true
          via: 1.1 edge
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format: "%RESPONSE_CODE%\n" }
          - name: envoy.access_loggers.file
            filter:
              or_filter:
                filters:
                - not_health_check_filter: {}
                - traceable_filter: {}
                - runtime_filter: { runtime_key: logs.sampled, percent_sampled: { numerator: 25, denominator: TEN_THOUSAND }, use_independent_randomness: true }
                - runtime_filter: { runtime_key: logs.default }
                - grpc_status_filter: { statuses: [OK, UNAVAILABLE], exclude: true }
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
          - name: envoy.access_loggers.stderr
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
              log_format: { json_format: { code: "%RESPONSE_CODE%", ua: "%REQ(user-agent)%", k: [1, true] } }
          local_reply_config:
            mappers:
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: GE, value: { default_value: 500, runtime_key: k } } }
                  - or_filter:
                      filters:
                      - duration_filter: { comparison: { op: LE, value: { default_value: 10, runtime_key: k } } }
                      - response_flag_filter: { flags: [UF, URX] }
                      - response_flag_filter: {}
                      - header_filter: { header: { name: ":method", string_match: { exact: GET } } }
              status_code: 502
              body: { inline_string: "down %not an operator" }
              headers_to_add:
              - header: { key: x-lr, value: "%REQ(x-a)%" }
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              body_format_override:
                json_format: { s: "%RESPONSE_CODE%", n: 1.5, i: 7, b: false, z: null, l: [a, { x: "%LOCAL_REPLY_BODY%" }] }
            body_format:
              text_format: "%LOCAL_REPLY_BODY% (%RESPONSE_CODE%)"
              omit_empty_values: true
              content_type: "text/x-y"
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: false
              headers:
              - { name: ":path", string_match: { exact: /healthz } }
              - { name: user-agent, present_match: true }
              cluster_min_healthy_percentages: { gone: { value: 12.5 } }
          - name: my-cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
          - name: csrf
            disabled: true
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy
              filter_enabled: { default_value: { numerator: 5, denominator: TEN_THOUSAND }, runtime_key: k }
              shadow_enabled: { default_value: { numerator: 1, denominator: MILLION } }
              additional_origins: [{ suffix: .partner.test, ignore_case: true }]
          - name: rl
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
              status: { code: 503 }
              token_bucket: { max_tokens: 5, tokens_per_fill: 2, fill_interval: 1.5s }
              filter_enabled: { default_value: { numerator: 100 } }
              filter_enforced: { default_value: { numerator: 50 } }
              request_headers_to_add_when_not_enforced:
              - header: { key: x-rl, value: "%REQ(x-a)%" }
              response_headers_to_add:
              - header: { key: x-limited, value: "yes" }
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
          - name: authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules_stat_prefix: main
              shadow_rules_stat_prefix: dry.
              rules:
                action: DENY
                policies:
                  p1:
                    permissions:
                    - url_path: { path: { prefix: /x } }
                    - and_rules: { rules: [{ destination_port: 80 }, { destination_port_range: { start: 1, end: 9 } }] }
                    - or_rules: { rules: [{ destination_ip: { address_prefix: 10.0.0.0, prefix_len: 8 } }, { any: true }] }
                    - not_rule: { requested_server_name: { suffix: .test } }
                    principals:
                    - remote_ip: { address_prefix: "::1", prefix_len: 128 }
                    - and_ids: { ids: [{ direct_remote_ip: { address_prefix: 1.2.3.4, prefix_len: 32 } }, { header: { name: x-a, present_match: true } }] }
                    - or_ids: { ids: [{ authenticated: { principal_name: { exact: "spiffe://a" } } }, { authenticated: {} }] }
                    - not_id: { url_path: { path: { exact: /y } } }
              shadow_matcher:
                matcher_list:
                  matchers:
                  - predicate:
                      or_matcher:
                        predicate:
                        - single_predicate:
                            input: { name: h, typed_config: { "@type": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: x-u } }
                            value_match: { exact: u }
                        - not_matcher:
                            single_predicate:
                              input: { name: s, typed_config: { "@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.ServerNameInput } }
                              value_match: { prefix: a }
                    on_match:
                      matcher:
                        on_no_match:
                          action: { name: a, typed_config: { "@type": type.googleapis.com/envoy.config.rbac.v3.Action, name: inner, action: LOG } }
                on_no_match:
                  action: { name: a, typed_config: { "@type": type.googleapis.com/envoy.config.rbac.v3.Action, name: rest, action: DENY } }
          - name: faults
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { http_status: 503, percentage: { numerator: 5, denominator: TEN_THOUSAND } }
              delay: { fixed_delay: 0.25s, percentage: { numerator: 7 } }
              headers: [{ name: x-f, present_match: true }]
              downstream_nodes: [a, b]
              max_active_faults: 3
              disable_downstream_cluster_stats: true
          - name: checks
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              stat_prefix: sp
              failure_mode_allow: true
              failure_mode_allow_header_add: true
              status_on_error: { code: 503 }
              filter_enabled: { runtime_key: k, default_value: { numerator: 50, denominator: TEN_THOUSAND } }
              deny_at_disable: { runtime_key: d, default_value: true }
              http_service:
                server_uri: { uri: "http://authz/", cluster: a, timeout: 0.3s }
                path_prefix: /check
                authorization_request:
                  allowed_headers: { patterns: [{ exact: x-a }, { safe_regex: { regex: "x-b.*" } }] }
                  headers_to_add: [{ key: x-from, value: baton }]
                authorization_response:
                  allowed_upstream_headers: { patterns: [{ prefix: x-u }] }
                  allowed_upstream_headers_to_append: { patterns: [{ suffix: -add }] }
                  allowed_client_headers: { patterns: [{ contains: why }] }
                  allowed_client_headers_on_success: { patterns: [{ exact: x-note }] }
          - name: gchecks
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              grpc_service:
                envoy_grpc: { cluster_name: a, authority: authz.local }
                timeout: 0.4s
                initial_metadata: [{ key: x-tenant, value: t }]
          - name: envoy.filters.http.router
          route_config:
            name: rc
            most_specific_header_mutations_wins: true
            request_headers_to_add:
            - header: { key: x-rc, value: "%HOSTNAME%" }
              append_action: OVERWRITE_IF_EXISTS
            response_headers_to_remove: [x-secret]
            virtual_hosts:
            - name: vh
              domains: ["example.com", "*.example.org", "api.*"]
              typed_per_filter_config:
                my-cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{ exact: "https://a.test" }, { safe_regex: { regex: "https://.*" } }]
                  allow_methods: GET
                  allow_headers: x-h
                  expose_headers: x-e
                  max_age: "60"
                  allow_credentials: false
                  allow_private_network_access: true
                  forward_not_matching_preflights: false
                  filter_enabled: { default_value: { numerator: 50 } }
                  shadow_enabled: { default_value: { numerator: 10, denominator: HUNDRED } }
                csrf: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig }
              cors: { allow_origin_string_match: [{ prefix: "http://" }], allow_methods: PUT, filter_enabled: { default_value: { numerator: 1, denominator: MILLION } } }
              response_headers_to_add:
              - header: { key: x-vh, value: "" }
                keep_empty_value: true
              routes:
              - name: r1
                match:
                  prefix: /api
                  case_sensitive: false
                  headers:
                  - { name: x-a, string_match: { exact: v, ignore_case: true } }
                  - { name: x-b, present_match: false }
                  - { name: x-c, range_match: { start: 1, end: 10 }, invert_match: true }
                  - { name: x-d, safe_regex_match: { regex: "[a-z]+" } }
                  - { name: x-e, string_match: { prefix: p } }
                  - { name: x-f, string_match: { suffix: s } }
                  - { name: x-g, string_match: { contains: c } }
                  query_parameters:
                  - { name: q, string_match: { exact: "1" } }
                  - { name: present }
                  grpc: {}
                route:
                  weighted_clusters:
                    clusters: [{ name: a, weight: 3 }, { name: b, weight: 1 }]
                  prefix_rewrite: /v2
                  host_rewrite_literal: upstream.example
                  timeout: 1.25s
                  cors: { expose_headers: x-x, allow_credentials: true }
                  idle_timeout: 0s
                  retry_policy:
                    retry_on: 5xx,gateway-error,reset,connect-failure,retriable-4xx,retriable-status-codes
                    num_retries: 3
                    per_try_timeout: 0.5s
                    retriable_status_codes: [418]
                    retry_back_off: { base_interval: 0.01s, max_interval: 0.2s }
                request_headers_to_remove: [x-drop]
                typed_per_filter_config:
                  my-cors: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }
                  rl:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: rl_route
                    token_bucket: { max_tokens: 1, fill_interval: 60s }
                  authz: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
                  faults: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: { header_abort: {} }, delay: { header_delay: {} } }
                  checks: { "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true }
                  csrf:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
                    config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy
                      filter_enabled: { default_value: { numerator: 100 } }
              - match: { path: /exact }
                typed_per_filter_config:
                  authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                    rbac:
                      rules:
                        action: ALLOW
                        policies: { any: { permissions: [{ any: true }], principals: [{ any: true }] } }
                route:
                  cluster: b
                  auto_host_rewrite: true
                  regex_rewrite:
                    pattern: { regex: "^/(\\w+)/x$" }
                    substitution: "/\\1/y$\\\\"
                  timeout: 0s
                  idle_timeout: 3s
              - match: { safe_regex: { regex: "/re/[0-9]+" } }
                direct_response: { status: 418, body: { inline_string: teapot } }
              - match: { prefix: /empty }
                direct_response: { status: 204 }
              - match: { prefix: /r1 }
                redirect:
                  https_redirect: true
                  host_redirect: other.example
                  port_redirect: 8443
                  path_redirect: /new?x=1
                  response_code: PERMANENT_REDIRECT
                  strip_query: true
              - match: { prefix: /r2 }
                redirect: { prefix_rewrite: /p, response_code: FOUND }
              - match: { prefix: /r3 }
                redirect:
                  regex_rewrite: { pattern: { regex: "a(b)" }, substitution: "\\1" }
                  response_code: SEE_OTHER
              - match: { prefix: /r4 }
                redirect: { scheme_redirect: http, response_code: TEMPORARY_REDIRECT }
              - match: { prefix: / }
                route: { cluster: a, hash_policy: [{ header: { header_name: X-User } }, { cookie: { name: sid }, terminal: true }, { connection_properties: { source_ip: true } }, { query_parameter: { name: q } }] }
                decorator: { operation: toA, propagate: false }
          tracing:
            random_sampling: { value: 12.5 }
            max_path_tag_length: 64
            custom_tags:
            - { tag: t1, literal: { value: v1 } }
            - { tag: t2, request_header: { name: X-A, default_value: d } }
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: b
                collector_endpoint: /api/v2/spans
                collector_hostname: zipkin.local
                trace_id_128bit: true
                shared_span_context: false
  - address: { socket_address: { address: "::1", port_value: 0 } }
    traffic_direction: OUTBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: second
          tracing:
            provider:
              name: envoy.tracers.datadog
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.DatadogConfig
                collector_cluster: c
                service_name: second-svc
                collector_hostname: agent.local
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: / }, route: { cluster: c } }]
          http_filters: [{ name: envoy.filters.http.router }]
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp_weighted
          weighted_clusters: { clusters: [{ name: a, weight: 2 }, { name: b, weight: 1 }] }
          idle_timeout: 0s
          max_connect_attempts: 3
          max_downstream_connection_duration: 90.5s
          access_log:
          - name: envoy.access_loggers.stderr
  - name: tcp_defaults
    address: { socket_address: { address: 127.0.0.1, port_value: 10002 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp_plain
          cluster: c
  clusters:
  - name: a
    connect_timeout: 0.25s
    lb_policy: LEAST_REQUEST
    least_request_lb_config: { choice_count: 3, active_request_bias: { default_value: 0.5, runtime_key: a.bias } }
    common_lb_config: { locality_weighted_lb_config: {} }
    per_connection_buffer_limit_bytes: 32768
    load_assignment:
      cluster_name: a
      policy: { overprovisioning_factor: 120 }
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }, hostname: a1.local, health_check_config: { port_value: 9090, hostname: a1.check } }
          load_balancing_weight: 5
        - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 8080 } } }
      - locality: { region: r, zone: z, sub_zone: s }
        load_balancing_weight: 2
        priority: 1
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.3, port_value: 8080 } } }
  - name: b
    type: STRICT_DNS
    lb_policy: RANDOM
    dns_lookup_family: V4_PREFERRED
    dns_refresh_rate: 30s
    common_lb_config: { healthy_panic_threshold: { value: 30.4 } }
    outlier_detection: { consecutive_5xx: 3, interval: 2s, split_external_local_origin_errors: true, max_ejection_percent: 40 }
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { idle_timeout: 30s, max_requests_per_connection: 9, max_connection_duration: 60s, max_headers_count: 50 }
        explicit_http_config: { http_protocol_options: { header_key_format: { proper_case_words: {} } } }
    health_checks:
    - timeout: 1.5s
      interval: 10s
      initial_jitter: 0.1s
      interval_jitter: 1s
      interval_jitter_percent: 5
      unhealthy_threshold: 3
      healthy_threshold: 2
      reuse_connection: false
      no_traffic_interval: 30s
      unhealthy_edge_interval: 4s
      http_health_check: { host: svc.local, path: /healthz, method: HEAD, expected_statuses: [{ start: 200, end: 300 }], retriable_statuses: [{ start: 503, end: 504 }], request_headers_to_remove: [x-a], request_headers_to_add: [{ header: { key: x-b, value: "%UPSTREAM_HOST%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }] }
    load_assignment:
      cluster_name: b-endpoints
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: localhost, port_value: 8081 } } }
  - name: c
    type: LOGICAL_DNS
    health_checks:
    - { timeout: 1s, interval: 5s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: { send: { text: "50494e47" }, receive: [{ text: 504F4E47 }] } }
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: localhost, port_value: 8082 } } }
  - name: empty
  - name: ring
    type: STRICT_DNS
    common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }
    lb_policy: RING_HASH
    ring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 4096, hash_function: XX_HASH }
  - name: maglev
    lb_policy: MAGLEV
    maglev_lb_config: { table_size: 251 }
"#;

/// The `bootstrap` of a dump, as YAML text baton can load.
fn bootstrap_of(dump: &str) -> String {
    let v: Value = serde_yaml::from_str(dump).expect("the dump is JSON");
    let configs = v
        .get("configs")
        .and_then(Value::as_sequence)
        .expect("configs");
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0].get("@type").and_then(Value::as_str),
        Some("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")
    );
    serde_yaml::to_string(configs[0].get("bootstrap").expect("bootstrap")).expect("yaml")
}

fn node(b: &Bootstrap) -> (String, String) {
    let n = b.node.clone().unwrap_or_default();
    (n.id, n.cluster)
}

#[test]
fn dump_loads_back_into_the_same_model() {
    let b = load_str(RICH).unwrap_or_else(|e| panic!("{e}"));
    let dump = config_dump(&b, &node(&b));
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(again, b);
    // And the dump of the reloaded model is the same text.
    assert_eq!(config_dump(&again, &node(&again)), dump);
}

/// Filter chains with their own terminal filters, names, address and port matches and a
/// default chain dump as such and load back the same.
#[test]
fn filter_chains_with_their_own_terminals_round_trip() {
    let hcm = |prefix: &str| {
        format!(
            r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          route_config:
            virtual_hosts: [{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: up }} }}] }}]
          http_filters: [{{ name: envoy.filters.http.router }}]
"#
        )
    };
    let yaml = format!(
        r#"static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }}
    listener_filters:
    - name: envoy.filters.listener.proxy_protocol
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
        allow_requests_without_proxy_protocol: true
        disallowed_versions: [V1]
        stat_prefix: lb
    filter_chains:
    - name: a
      filter_chain_match:
        destination_port: 8080
        prefix_ranges: [{{ address_prefix: 127.0.0.0, prefix_len: 8 }}]
        source_prefix_ranges: [{{ address_prefix: "::1", prefix_len: 128 }}]
        direct_source_prefix_ranges: [{{ address_prefix: 10.0.0.0, prefix_len: 8 }}]
        source_ports: [4000, 4001]
      filters:
{}    - filter_chain_match: {{ transport_protocol: raw_buffer }}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: up
    default_filter_chain:
      name: d
      filters:
{}  clusters:
  - name: up
    transport_socket:
      name: envoy.transport_sockets.upstream_proxy_protocol
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport
        config: {{ version: V2 }}
        transport_socket: {{ name: envoy.transport_sockets.raw_buffer }}
    load_assignment:
      cluster_name: up
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 80 }} }} }} }}] }}]
"#,
        hcm("a"),
        hcm("d")
    );
    let b = load_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.listeners[0].terminals.len(), 3);
    let dump = config_dump(&b, &node(&b));
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(again, b);
    assert!(dump.contains("default_filter_chain"), "{dump}");
    assert!(dump.contains("direct_source_prefix_ranges"), "{dump}");
    let pp = b.listeners[0]
        .proxy_protocol
        .as_ref()
        .expect("the PROXY protocol filter");
    assert!(pp.allow_without && !pp.accept_v1 && pp.accept_v2 && pp.stat_prefix == "lb");
    let up = b.clusters[0].proxy_protocol;
    assert_eq!(up, Some(crate::proxy_protocol::Version::V2));
}

/// An admin with an access log and no address dumps as such and loads back the same.
#[test]
fn an_admin_without_an_address_round_trips() {
    let text = RICH.replacen(
        "  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }\n",
        "",
        1,
    );
    let b = load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.admin.as_ref().is_some_and(|a| a.address.is_none()));
    let dump = config_dump(&b, &node(&b));
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(again, b);
}

#[test]
fn the_seed_configs_round_trip() {
    for f in ["configs/envoy.yaml", "configs/envoy_v2.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let b = crate::config::load_file(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
        let dump = config_dump(&b, &node(&b));
        let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(again, b, "{f}");
    }
}

#[test]
fn command_line_node_is_what_is_dumped() {
    let b = load_str(RICH).unwrap_or_else(|e| panic!("{e}"));
    let dump = config_dump(&b, &("cli-node".into(), "cli-cluster".into()));
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{e}"));
    let n = again.node.unwrap_or_default();
    assert_eq!(
        (n.id.as_str(), n.cluster.as_str()),
        ("cli-node", "cli-cluster")
    );
}

#[test]
fn substitutions_go_back_to_re2_syntax() {
    assert_eq!(re2_substitution("/${1}/y$$\\"), "/\\1/y$\\\\");
    assert_eq!(re2_substitution("${12}x"), "\\12x");
    assert_eq!(re2_substitution("${x}"), "${x}");
    assert_eq!(re2_substitution("é$$"), "é$");
}

/// A self-signed certificate (valid for a century) and its key, for TLS contexts.
#[cfg(feature = "tls")]
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBlDCCATugAwIBAgIUWSqIdgFspg86L91Hzfm8EyVbJWMwCgYIKoZIzj0EAwIw\nFDESMBAGA1UEAwwJZHVtcC50ZXN0MCAXDTI2MTEzMDE2MDcwM1oYDzIxMjYxMTA2\nMTYwNzAzWjAUMRIwEAYDVQQDDAlkdW1wLnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\nPQMBBwNCAAQgc8ytUfHfLpo4EMcHHht89gdkGxmGelp0iK0PVXRUMpegeA9Nle1I\nyB0bYmbsTC0QrVtrse7u1e+zamOtD4NFo2kwZzAdBgNVHQ4EFgQUl/OK/FNXC/mH\nk7iW5XSp+wsW3K4wHwYDVR0jBBgwFoAUl/OK/FNXC/mHk7iW5XSp+wsW3K4wDwYD\nVR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglkdW1wLnRlc3QwCgYIKoZIzj0EAwID\nRwAwRAIgXv0W/88sPI8ha1Ef+UdnULwccdvJx++eVZIa0MXTQyACIHrWDFK2xy4a\n0b5egMF5muB5xg1JvV+/JYtejIRLMbsY\n-----END CERTIFICATE-----\n";
#[cfg(feature = "tls")]
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiNXkKJmHz/bYS156\nbTcvANXHkbvY1Lew6SGNVkBnqCihRANCAAQgc8ytUfHfLpo4EMcHHht89gdkGxmG\nelp0iK0PVXRUMpegeA9Nle1IyB0bYmbsTC0QrVtrse7u1e+zamOtD4NF\n-----END PRIVATE KEY-----\n";

#[cfg(feature = "tls")]
#[test]
fn tls_contexts_round_trip_and_keys_are_never_shown() {
    let dir = std::env::temp_dir().join(format!("baton-dump-tls-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let key = dir.join("k.pem");
    std::fs::write(&key, TEST_KEY).expect("key file");
    let cert = TEST_CERT.replace('\n', "\\n");
    let key = key.display();
    let yaml = format!(
        r#"static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8443 }} }}
    listener_filters_timeout: 3s
    filter_chains:
    - filter_chain_match: {{ server_names: [a.test, "*.b.test"] }}
      transport_socket_connect_timeout: 2s
      filters: &f
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config:
            virtual_hosts: [{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: up }} }}] }}]
          http_filters: [{{ name: envoy.filters.http.router }}]
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [http/1.1]
            tls_params: {{ tls_maximum_protocol_version: TLSv1_2, cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256] }}
            tls_certificates: [{{ certificate_chain: {{ inline_string: "{cert}" }}, private_key: {{ filename: "{key}" }} }}]
            validation_context:
              trusted_ca: {{ inline_string: "{cert}" }}
              match_typed_subject_alt_names: [{{ san_type: URI, matcher: {{ prefix: "spiffe://x/" }} }}]
    - filter_chain_match: {{ transport_protocol: raw_buffer }}
      filters: *f
  clusters:
  - name: up
    load_assignment:
      cluster_name: up
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 443 }} }} }} }}] }}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: up.test
        max_session_keys: 4
        common_tls_context:
          tls_certificates: [{{ certificate_chain: {{ inline_string: "{cert}" }}, private_key: {{ filename: "{key}" }} }}]
          validation_context:
            trusted_ca: {{ inline_string: "{cert}" }}
"#
    );
    let b = load_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let dump = config_dump(&b, &node(&b));
    assert!(!dump.contains("PRIVATE KEY"), "{dump}");
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(again, b);
    // An inline key is redacted.
    let inline = yaml.replacen(
        &format!("private_key: {{ filename: \"{key}\" }}"),
        &format!(
            "private_key: {{ inline_string: \"{}\" }}",
            TEST_KEY.replace('\n', "\\n")
        ),
        1,
    );
    let b = load_str(&inline).unwrap_or_else(|e| panic!("{e}"));
    let dump = config_dump(&b, &node(&b));
    assert!(
        !dump.contains("PRIVATE KEY") && dump.contains("[redacted]"),
        "{dump}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
