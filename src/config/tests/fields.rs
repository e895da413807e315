//! Every field of the checked model (`model.rs`) is either consumed by the data path or a
//! label that the process shows (stats, logs, admin): this table names, for each, the test that
//! proves it. Fields of the Envoy YAML that are not in the model are refused at load (see
//! `docs/config.md`). A field added to the model without an entry here fails
//! `every_model_field_has_a_proof`; an entry whose test was renamed or removed fails too.

/// `Struct.field` → `file::test` (a test function in that file, under the repository root).
const PROOFS: &[(&str, &str)] = &[
    ("Bootstrap.overload", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("Overload.refresh", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("Overload.max_heap", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("Overload.monitor_name", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("Overload.actions", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("OverloadAction.name", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("OverloadAction.kind", "tests/overload.rs::stop_accepting_connections_holds_new_clients_in_the_backlog_until_the_pressure_falls"),
    ("OverloadAction.triggers", "tests/overload.rs::heap_pressure_stops_requests_closes_connections_and_shrinking_ends_it"),
    ("Listener.traffic_direction", "tests/tracing.rs::a_client_context_is_continued_and_the_decorator_names_the_span"),
    ("HttpConnectionManager.tracing", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Route.decorator", "tests/tracing.rs::a_client_context_is_continued_and_the_decorator_names_the_span"),
    ("Tracing.egress", "tests/tracing.rs::a_client_context_is_continued_and_the_decorator_names_the_span"),
    ("Tracing.client_sampling", "src/tracing/tests.rs::the_decision_packs_envoys_trace_reason_into_the_request_id"),
    ("Tracing.random_sampling", "src/tracing/tests.rs::the_decision_packs_envoys_trace_reason_into_the_request_id"),
    ("Tracing.overall_sampling", "src/tracing/tests.rs::the_decision_packs_envoys_trace_reason_into_the_request_id"),
    ("Tracing.max_path_tag_length", "src/tracing/tests.rs::custom_tags_and_the_url_tag"),
    ("Tracing.custom_tags", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Tracing.provider", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Datadog.cluster", "tests/tracing_datadog.rs::a_root_span_is_reported_to_the_agent_and_its_context_sent_upstream"),
    ("Datadog.cluster_name", "tests/tracing_datadog.rs::a_root_span_is_reported_to_the_agent_and_its_context_sent_upstream"),
    ("Datadog.service", "tests/tracing_datadog.rs::a_root_span_is_reported_to_the_agent_and_its_context_sent_upstream"),
    ("Datadog.hostname", "tests/tracing_datadog.rs::a_root_span_is_reported_to_the_agent_and_its_context_sent_upstream"),
    ("Zipkin.cluster", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Zipkin.cluster_name", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Zipkin.endpoint", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Zipkin.hostname", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Zipkin.trace_id_128bit", "tests/tracing.rs::unsampled_and_broken_contexts_are_not_reported"),
    ("Zipkin.shared_span_context", "tests/tracing.rs::unsampled_and_broken_contexts_are_not_reported"),
    ("CustomTag.tag", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("CustomTag.value", "tests/tracing.rs::a_root_ingress_span_is_reported_and_its_context_sent_upstream"),
    ("Decorator.operation", "tests/tracing.rs::a_client_context_is_continued_and_the_decorator_names_the_span"),
    ("Decorator.propagate", "tests/tracing.rs::a_client_context_is_continued_and_the_decorator_names_the_span"),
    ("Bootstrap.listeners", "tests/proxy_basic.rs::get_and_post_with_curl"),
    ("Bootstrap.clusters", "tests/lifecycle.rs::round_robin_spreads_over_static_endpoints"),
    ("Bootstrap.watched", "tests/xds_files.rs::a_cds_file_moved_into_place_is_applied_by_a_hot_restart_and_a_bad_one_changes_nothing"),
    ("Bootstrap.admin", "tests/admin_endpoints.rs::info_endpoints_and_errors"),
    (
        "Bootstrap.max_downstream_connections",
        "tests/connection_limits.rs::the_global_connection_limit_closes_new_connections_past_it",
    ),
    (
        "Bootstrap.node",
        "tests/config_fields.rs::node_is_shown_in_server_info_and_the_command_line_overrides_it",
    ),
    ("Node.id", "tests/config_fields.rs::node_is_shown_in_server_info_and_the_command_line_overrides_it"),
    ("Node.cluster", "tests/config_fields.rs::node_is_shown_in_server_info_and_the_command_line_overrides_it"),
    (
        "Bootstrap.stats_sinks",
        "tests/stats_sink.rs::statsd_lines_arrive_over_udp_with_counter_deltas",
    ),
    (
        "Bootstrap.stats_flush_interval",
        "tests/stats_sink.rs::statsd_lines_arrive_over_udp_with_counter_deltas",
    ),
    (
        "Bootstrap.stats_matcher",
        "tests/stats_sink.rs::the_stats_matcher_leaves_stats_out_of_every_read_out_and_the_sink",
    ),
    (
        "StatsdSink.address",
        "tests/stats_sink.rs::statsd_lines_arrive_over_udp_with_counter_deltas",
    ),
    (
        "StatsdSink.prefix",
        "tests/stats_sink.rs::statsd_lines_arrive_over_udp_with_counter_deltas",
    ),
    (
        "StatsdSink.tagged",
        "tests/stats_sink.rs::dogstatsd_lines_arrive_tagged_and_packed_into_datagrams",
    ),
    (
        "StatsdSink.max_bytes_per_datagram",
        "tests/stats_sink.rs::dogstatsd_lines_arrive_tagged_and_packed_into_datagrams",
    ),
    (
        "Admin.access_log",
        "tests/admin_hardening.rs::admin_access_log_loggers_have_their_format_and_filter",
    ),
    ("Admin.address", "tests/admin_endpoints.rs::info_endpoints_and_errors"),
    (
        "Admin.access_log_path",
        "tests/admin_hardening.rs::admin_access_log_path_gets_a_line_per_request",
    ),
    ("Listener.name", "tests/hot_restart_handover.rs::a_listener_the_new_config_drops_is_closed_and_a_new_one_is_bound_fresh"),
    ("Listener.address", "tests/proxy_basic.rs::get_and_post_with_curl"),
    ("Listener.terminals", "tests/filter_chains.rs::an_http_chain_and_a_tcp_chain_share_a_listener"),
    (
        "TcpProxy.stat_prefix",
        "tests/tcp_proxy.rs::mebibytes_cross_both_ways_at_once_byte_exact",
    ),
    (
        "TcpProxy.cluster",
        "tests/tcp_proxy.rs::weighted_clusters_spread_connections_by_weight",
    ),
    (
        "TcpProxy.tunnel_hostname",
        "tests/tcp_proxy.rs::tunneling_config_carries_the_connection_inside_an_http11_connect",
    ),
    (
        "TcpProxy.idle_timeout",
        "tests/tcp_proxy.rs::an_idle_connection_is_closed_after_the_idle_timeout",
    ),
    (
        "TcpProxy.max_connect_attempts",
        "tests/tcp_proxy.rs::max_connect_attempts_moves_a_failed_connect_to_the_next_endpoint",
    ),
    (
        "TcpProxy.max_downstream_connection_duration",
        "tests/tcp_proxy.rs::a_busy_connection_ends_at_its_maximum_duration",
    ),
    (
        "TcpProxy.access_log",
        "tests/tcp_proxy.rs::the_access_log_writes_one_line_per_connection_when_it_ends",
    ),
    (
        "Listener.per_connection_buffer_limit_bytes",
        "src/http/core/tests.rs::buffers_are_bounded_by_the_listener_and_cluster_limits",
    ),
    (
        "Listener.connection_limit",
        "tests/connection_limits.rs::the_listener_connection_limit_filter_closes_new_connections_past_it",
    ),
    (
        "HttpConnectionManager.request_timeout",
        "tests/hcm_protocol_options.rs::a_request_not_received_within_request_timeout_gets_408",
    ),
    (
        "HttpConnectionManager.max_connection_duration",
        "tests/hcm_protocol_options.rs::max_connection_duration_closes_an_idle_connection_and_marks_a_busy_one",
    ),
    (
        "HttpConnectionManager.max_headers_count",
        "tests/hcm_protocol_options.rs::max_headers_count_answers_431_past_it",
    ),
    (
        "HttpConnectionManager.max_requests_per_connection",
        "tests/hcm_protocol_options.rs::max_requests_per_connection_closes_after_the_last",
    ),
    (
        "HttpConnectionManager.headers_with_underscores",
        "tests/hcm_protocol_options.rs::headers_with_underscores_are_rejected_or_dropped",
    ),
    (
        "HttpConnectionManager.strip_trailing_host_dot",
        "tests/routing_normalize.rs::a_fragment_in_the_path_is_refused_and_a_trailing_host_dot_stripped",
    ),
    (
        "HttpConnectionManager.escaped_slashes",
        "tests/routing_normalize.rs::escaped_slashes_are_kept_refused_redirected_or_unescaped_as_configured",
    ),
    (
        "HttpConnectionManager.strip_host_port",
        "tests/envoy_internal.rs::strip_matching_host_port_and_strip_any_host_port",
    ),
    ("HttpConnectionManager.forward_client_cert_details", "tests/envoy_internal.rs::a_clients_forwarded_client_cert_is_dropped_unless_configured_otherwise"),
    ("Cluster.tcp_keepalive", "tests/config_fields.rs::tcp_keepalive_arms_the_kernels_keepalive_timer_on_upstream_connections"),
    ("TcpKeepalive.probes", "tests/config_fields.rs::tcp_keepalive_arms_the_kernels_keepalive_timer_on_upstream_connections"),
    ("TcpKeepalive.time", "tests/config_fields.rs::tcp_keepalive_arms_the_kernels_keepalive_timer_on_upstream_connections"),
    ("TcpKeepalive.interval", "tests/config_fields.rs::tcp_keepalive_arms_the_kernels_keepalive_timer_on_upstream_connections"),
    ("HttpConnectionManager.delayed_close_timeout", "tests/connection_close.rs::delayed_close_timeout_is_how_long_a_closing_connection_waits_for_the_clients_fin"),
    ("HttpConnectionManager.add_user_agent", "tests/envoy_internal.rs::add_user_agent_names_the_service_cluster_and_node_upstream"),
    ("HttpConnectionManager.proxy_100_continue", "tests/hcm_protocol_options.rs::proxy_100_continue_sends_expect_upstream_and_relays_its_100"),
    ("Listener.socket", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("ListenerSocket.reuse_port", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("ListenerSocket.fast_open_queue", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("ListenerSocket.options", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("SocketOpt.description", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("SocketOpt.level", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("SocketOpt.name", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("SocketOpt.value", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("SocketOpt.state", "tests/config_fields.rs::listener_socket_options_are_set_on_the_listening_socket"),
    ("HttpConnectionManager.skip_xff_append", "tests/envoy_internal.rs::skip_xff_append_preserve_external_request_id_and_via"),
    ("HttpConnectionManager.preserve_external_request_id", "tests/envoy_internal.rs::skip_xff_append_preserve_external_request_id_and_via"),
    ("HttpConnectionManager.via", "tests/envoy_internal.rs::skip_xff_append_preserve_external_request_id_and_via"),
    ("HttpConnectionManager.scheme_to_overwrite", "tests/envoy_internal.rs::scheme_to_overwrite_is_every_requests_scheme"),
    ("HttpConnectionManager.http_filters", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("HttpFilter.name", "tests/http_filters.rs::cors_preflights_are_answered_here_or_forwarded"),
    ("HttpFilter.disabled", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("HttpFilter.kind", "tests/health_check_filter.rs::health_checks_are_answered_here_and_fail_with_healthcheck_fail"),
    ("PerFilterConfig.name", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("PerFilterConfig.disabled", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("PerFilterConfig.policy", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("Fraction.numerator", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("Fraction.denominator", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("CorsPolicy.allow_origin", "tests/http_filters.rs::cors_preflights_are_answered_here_or_forwarded"),
    ("CorsPolicy.allow_methods", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("CorsPolicy.allow_headers", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("CorsPolicy.expose_headers", "tests/http_filters.rs::cors_actual_requests_get_allow_origin_credentials_and_exposed_headers"),
    ("CorsPolicy.max_age", "tests/http_filters.rs::cors_preflights_are_answered_here_or_forwarded"),
    ("CorsPolicy.allow_credentials", "tests/http_filters.rs::cors_actual_requests_get_allow_origin_credentials_and_exposed_headers"),
    ("CorsPolicy.allow_private_network_access", "tests/http_filters.rs::cors_preflights_are_answered_here_or_forwarded"),
    ("CorsPolicy.forward_not_matching_preflights", "tests/http_filters.rs::cors_preflights_are_answered_here_or_forwarded"),
    ("CorsPolicy.filter_enabled", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("CorsPolicy.shadow_enabled", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    ("CsrfPolicy.filter_enabled", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("CsrfPolicy.shadow_enabled", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("CsrfPolicy.additional_origins", "tests/http_filters.rs::csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled"),
    ("VirtualHost.filter_configs", "tests/http_filters.rs::a_cors_filter_without_a_policy_passes_requests_through"),
    ("LocalRateLimit.stat_prefix", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.status", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.token_bucket", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.filter_enabled", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.filter_enforced", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.request_headers_to_add_when_not_enforced", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("LocalRateLimit.response_headers_to_add", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("TokenBucket.max_tokens", "tests/http_filters.rs::local_rate_limits_refuse_past_the_bucket_with_429_and_count"),
    ("TokenBucket.tokens_per_fill", "tests/http_filters.rs::a_local_rate_limit_bucket_refills_by_tokens_per_fill_each_interval"),
    ("TokenBucket.fill_interval", "tests/http_filters.rs::a_local_rate_limit_bucket_refills_by_tokens_per_fill_each_interval"),
    ("Compressor.library", "tests/compression.rs::json_responses_are_gzipped_for_clients_that_accept_it"),
    ("Compressor.gzip", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("Compressor.enabled", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("Compressor.min_content_length", "tests/compression.rs::responses_envoy_would_not_compress_pass_unchanged"),
    ("Compressor.content_types", "tests/compression.rs::responses_envoy_would_not_compress_pass_unchanged"),
    ("Compressor.disable_on_etag_header", "tests/compression.rs::responses_envoy_would_not_compress_pass_unchanged"),
    ("Compressor.remove_accept_encoding_header", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("Compressor.choose_first", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("Compressor.response_scope", "tests/compression.rs::a_strong_etag_is_dropped_and_a_weak_one_kept_when_compressing"),
    ("GzipParams.level", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("GzipParams.strategy", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("GzipParams.window_bits", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("GzipParams.memory_level", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("GzipParams.chunk_size", "tests/compression.rs::gzip_settings_reach_zlib_and_the_filter_options_hold"),
    ("Decompressor.library", "tests/compression.rs::gzip_request_bodies_are_inflated_on_their_way_upstream"),
    ("Decompressor.window_bits", "tests/compression.rs::decompressor_settings_hold"),
    ("Decompressor.chunk_size", "tests/compression.rs::decompressor_settings_hold"),
    ("Decompressor.max_inflate_ratio", "tests/compression.rs::a_gzip_bomb_and_a_corrupt_body_are_cut_short"),
    ("Decompressor.request_enabled", "tests/compression.rs::decompressor_settings_hold"),
    ("Decompressor.ignore_no_transform", "tests/compression.rs::decompressor_settings_hold"),
    ("Fault.abort", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("Fault.headers", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("Fault.downstream_nodes", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("Fault.max_active_faults", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("Fault.downstream_cluster_stats", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("FaultAbort.status", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("FaultAbort.percentage", "tests/fault.rs::fault_aborts_answer_their_status_where_configured"),
    ("Fault.delay", "tests/fault.rs::fault_delays_hold_requests_before_the_router_sees_them"),
    ("FaultDelay.from_header", "tests/fault.rs::fault_delays_hold_requests_before_the_router_sees_them"),
    ("FaultDelay.duration", "tests/envoy_configs.rs::fault_injection_example_delays_and_aborts_as_its_runtime_scripts_say"),
    ("FaultDelay.percentage", "tests/fault.rs::fault_delays_hold_requests_before_the_router_sees_them"),
    ("ExtAuthz.uri", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.cluster", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.timeout", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.path_prefix", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.allowed_headers", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.headers_to_add", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.upstream_headers", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.upstream_headers_to_append", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.client_headers", "src/http/ext_authz.rs::verdicts_follow_envoy"),
    ("ExtAuthz.client_headers_on_success", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.failure_mode_allow", "tests/ext_authz.rs::a_failed_or_disabled_check_is_status_on_error_or_let_on"),
    ("ExtAuthz.failure_mode_allow_header_add", "tests/ext_authz.rs::a_failed_or_disabled_check_is_status_on_error_or_let_on"),
    ("ExtAuthz.status_on_error", "tests/ext_authz.rs::a_failed_or_disabled_check_is_status_on_error_or_let_on"),
    ("ExtAuthz.filter_enabled", "tests/ext_authz.rs::a_failed_or_disabled_check_is_status_on_error_or_let_on"),
    ("ExtAuthz.deny_at_disable", "tests/ext_authz.rs::a_failed_or_disabled_check_is_status_on_error_or_let_on"),
    ("ExtAuthz.stat_prefix", "tests/ext_authz.rs::an_allowed_request_goes_up_with_the_services_headers_and_a_denied_one_gets_its_answer"),
    ("ExtAuthz.grpc", "tests/ext_authz_grpc.rs::a_grpc_service_allows_with_its_header_edits_and_denies_with_its_answer"),
    ("GrpcService.authority", "tests/ext_authz_grpc.rs::the_call_carries_the_configured_authority_and_metadata"),
    ("GrpcService.initial_metadata", "tests/ext_authz_grpc.rs::the_call_carries_the_configured_authority_and_metadata"),
    ("Rbac.rules", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("Rbac.shadow_rules", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("Rbac.rules_stat_prefix", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("Rbac.shadow_rules_stat_prefix", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("RbacPolicy.permissions", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("RbacPolicy.principals", "tests/rbac.rs::rbac_denies_by_policy_with_envoys_answer_details_and_stats"),
    ("RbacMatcher.list", "tests/rbac.rs::an_rbac_matcher_tree_decides_by_its_first_matching_action"),
    ("RbacMatcher.on_no_match", "tests/envoy_configs.rs::rbac_example_denies_requests_without_an_envoy_docs_referer"),
    ("VirtualHost.cors", "tests/http_filters.rs::legacy_cors_fields_apply_when_no_per_filter_policy_does"),
    ("ForwardAction.cors", "tests/http_filters.rs::legacy_cors_fields_apply_when_no_per_filter_policy_does"),
    ("ForwardAction.mirrors", "tests/routing_mirror.rs::a_shadow_with_its_body_reaches_the_mirror_and_the_client_gets_the_main_answer"),
    ("MirrorPolicy.target", "tests/routing_mirror.rs::cluster_header_fraction_and_suffix_are_honoured"),
    ("MirrorPolicy.fraction", "tests/routing_mirror.rs::cluster_header_fraction_and_suffix_are_honoured"),
    ("MirrorPolicy.host_suffix", "tests/routing_mirror.rs::cluster_header_fraction_and_suffix_are_honoured"),
    ("ForwardAction.body_limit", "tests/routing_retry.rs::a_route_buffer_limit_below_the_listener_s_bounds_what_is_replayed"),
    ("ForwardAction.attempt_count", "tests/routing_retry.rs::the_attempt_count_goes_upstream_and_back_when_the_virtual_host_asks"),
    ("AttemptCount.request", "tests/routing_retry.rs::the_attempt_count_goes_upstream_and_back_when_the_virtual_host_asks"),
    ("AttemptCount.response", "tests/routing_retry.rs::the_attempt_count_goes_upstream_and_back_when_the_virtual_host_asks"),
    ("Route.filter_configs", "tests/http_filters.rs::cors_route_policies_override_the_virtual_host_and_regex_origins_match"),
    (
        "HealthCheckFilter.pass_through_mode",
        "tests/health_check_filter.rs::pass_through_health_checks_reach_the_upstream_unless_failed",
    ),
    (
        "HealthCheckFilter.headers",
        "tests/health_check_filter.rs::health_checks_are_answered_here_and_fail_with_healthcheck_fail",
    ),
    (
        "HealthCheckFilter.cluster_min_healthy_percentages",
        "tests/health_check_filter.rs::cluster_min_healthy_percentages_answer_503_for_a_cluster_without_hosts",
    ),
    (
        "Listener.runtime_connection_limit",
        "tests/connection_limits.rs::the_runtime_listener_connection_limit_closes_new_connections_past_it",
    ),
    (
        "ConnectionLimit.stat_prefix",
        "tests/connection_limits.rs::the_listener_connection_limit_filter_closes_new_connections_past_it",
    ),
    (
        "ConnectionLimit.max_connections",
        "tests/connection_limits.rs::the_listener_connection_limit_filter_closes_new_connections_past_it",
    ),
    (
        "HttpConnectionManager.stat_prefix",
        "tests/admin_endpoints.rs::stats_count_every_request_by_class_and_failure",
    ),
    ("HttpConnectionManager.route_config", "tests/routing_match.rs::path_prefix_regex_and_case"),
    (
        "HttpConnectionManager.idle_timeout",
        "src/http/core/tests.rs::a_head_too_slow_gets_408_and_an_idle_connection_just_closes",
    ),
    (
        "HttpConnectionManager.request_headers_timeout",
        "tests/slowloris.rs::slowloris_does_not_starve_normal_clients_and_header_timeouts_end_it",
    ),
    (
        "HttpConnectionManager.internal_addresses",
        "tests/envoy_internal.rs::internal_address_config_replaces_the_default_ranges",
    ),
    (
        "HttpConnectionManager.accept_http_10",
        "tests/protocol_versions.rs::http10_gets_426_unless_accepted",
    ),
    (
        "HttpConnectionManager.default_host_for_http_10",
        "tests/protocol_versions.rs::accepted_http10_without_host_uses_the_default_host",
    ),
    (
        "HttpConnectionManager.upgrades",
        "tests/tunnels.rs::a_websocket_echo_session_works_through_baton",
    ),
    (
        "HttpConnectionManager.stream_idle_timeout",
        "tests/routing_actions.rs::route_idle_timeout_is_504_stream_timeout_before_the_response",
    ),
    (
        "HttpConnectionManager.max_request_headers_kb",
        "tests/data_path_defects.rs::a_large_head_dribbled_in_small_pieces_is_answered",
    ),
    (
        "HttpConnectionManager.server_name",
        "tests/config_fields.rs::server_name_and_server_header_transformation",
    ),
    (
        "HttpConnectionManager.server_header_transformation",
        "tests/config_fields.rs::server_name_and_server_header_transformation",
    ),
    // AUTO serves HTTP/1.x and h2c prior knowledge, HTTP2 only HTTP/2.
    (
        "HttpConnectionManager.codec_type",
        "tests/h2_downstream.rs::h2c_prior_knowledge_with_auto_and_http2_codecs",
    ),
    (
        "HttpConnectionManager.http2",
        "tests/h2_downstream.rs::http2_protocol_options_are_what_clients_are_told",
    ),
    (
        "Http2Options.hpack_table_size",
        "tests/h2_downstream.rs::http2_protocol_options_are_what_clients_are_told",
    ),
    (
        "Http2Options.initial_stream_window_size",
        "tests/h2_downstream.rs::http2_protocol_options_are_what_clients_are_told",
    ),
    (
        "Http2Options.initial_connection_window_size",
        "tests/h2_downstream.rs::http2_protocol_options_are_what_clients_are_told",
    ),
    (
        "Http2Options.stream_error_on_invalid_http_messaging",
        "tests/h2_downstream.rs::malformed_requests_end_the_connection_or_only_the_stream",
    ),
    ("DownstreamTls.alpn_h2", "tests/h2_downstream.rs::tls_alpn_h2_and_http11_clients"),
    ("HttpConnectionManager.use_remote_address", "tests/proxy_basic.rs::forwarding_headers_are_set"),
    (
        "HttpConnectionManager.xff_num_trusted_hops",
        "src/http/request.rs::trusted_client_follows_envoys_rules",
    ),
    (
        "HttpConnectionManager.generate_request_id",
        "tests/config_fields.rs::generate_request_id_false_adds_none_and_keeps_the_clients",
    ),
    (
        "HttpConnectionManager.normalize_path",
        "tests/routing_normalize.rs::normalized_paths_cannot_walk_around_a_route",
    ),
    (
        "HttpConnectionManager.merge_slashes",
        "tests/routing_normalize.rs::normalized_paths_cannot_walk_around_a_route",
    ),
    (
        "HttpConnectionManager.access_log",
        "tests/envoy_configs.rs::csrf_crosssite_envoy_logs_each_request_to_stdout_in_envoys_default_format",
    ),
    (
        "AccessLog.path",
        "tests/access_log_stall.rs::a_stalled_access_log_pipe_costs_lines_not_requests",
    ),
    ("AccessLog.format", "src/access_log/format.rs::custom_operators_fallback_and_truncation"),
    (
        "HeaderValueOption.name",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    (
        "HeaderValueOption.value",
        "tests/routing_headers.rs::substitution_variables_are_expanded",
    ),
    (
        "HeaderValueOption.append_action",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    (
        "HeaderValueOption.keep_empty_value",
        "tests/config_fields.rs::keep_empty_value_adds_a_header_whose_value_renders_empty",
    ),
    (
        "HeaderMutations.request_headers_to_add",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    (
        "HeaderMutations.request_headers_to_remove",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    (
        "HeaderMutations.response_headers_to_add",
        "tests/routing_headers.rs::generation_header_is_on_every_response_of_a_matched_route",
    ),
    (
        "HeaderMutations.response_headers_to_remove",
        "tests/routing_headers.rs::response_headers_to_remove_drops_upstream_headers",
    ),
    // Labels: shown in /config_dump.
    ("RouteConfig.name", "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model"),
    ("RouteConfig.virtual_hosts", "tests/routing_match.rs::path_prefix_regex_and_case"),
    (
        "RouteConfig.headers",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    (
        "RouteConfig.most_specific_header_mutations_wins",
        "tests/routing_headers.rs::most_specific_header_mutations_wins_reverses_the_order",
    ),
    ("VirtualHost.name", "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model"),
    ("VirtualHost.domains", "src/route/mod.rs::domain_precedence_is_envoys"),
    ("VirtualHost.routes", "tests/routing_match.rs::path_prefix_regex_and_case"),
    (
        "VirtualHost.headers",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    // A label: shown in /config_dump.
    ("Route.name", "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model"),
    ("Route.matcher", "tests/routing_match.rs::path_prefix_regex_and_case"),
    ("Route.action", "tests/routing_actions.rs::direct_response_and_redirects"),
    (
        "Route.headers",
        "tests/routing_headers.rs::route_config_wins_over_virtual_host_over_route_by_default",
    ),
    ("Regex.pattern", "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model"),
    ("Regex.full", "tests/routing_match.rs::path_prefix_regex_and_case"),
    ("Regex.partial", "tests/routing_actions.rs::path_and_host_rewrites"),
    ("RouteMatch.path", "tests/routing_match.rs::path_prefix_regex_and_case"),
    ("RouteMatch.case_sensitive", "tests/routing_match.rs::path_prefix_regex_and_case"),
    ("RouteMatch.headers", "tests/routing_match.rs::header_matchers"),
    ("RouteMatch.query_parameters", "tests/routing_match.rs::query_parameters"),
    (
        "RouteMatch.grpc",
        "tests/grpc_proxy.rs::grpc_calls_get_their_answers_statuses_and_messages",
    ),
    ("StringMatch.kind", "tests/routing_match.rs::header_matchers"),
    ("StringMatch.ignore_case", "tests/routing_match.rs::header_matchers"),
    ("HeaderMatcher.name", "tests/routing_match.rs::header_matchers"),
    ("HeaderMatcher.rule", "tests/routing_match.rs::header_matchers"),
    ("HeaderMatcher.invert", "tests/routing_match.rs::header_matchers"),
    ("QueryParameterMatcher.name", "tests/routing_match.rs::query_parameters"),
    ("QueryParameterMatcher.rule", "tests/routing_match.rs::query_parameters"),
    ("ForwardAction.cluster", "tests/routing_actions.rs::weighted_clusters_split_80_20"),
    ("ForwardAction.prefix_rewrite", "tests/routing_actions.rs::path_and_host_rewrites"),
    ("ForwardAction.timeout", "tests/local_replies.rs::route_timeout_is_504"),
    ("ForwardAction.regex_rewrite", "tests/routing_actions.rs::path_and_host_rewrites"),
    ("ForwardAction.host_rewrite", "tests/routing_actions.rs::auto_host_rewrite_uses_the_dns_name"),
    (
        "ForwardAction.upgrades",
        "tests/envoy_configs.rs::websocket_examples_carry_a_websocket_session",
    ),
    (
        "RouteUpgrade.upgrade_type",
        "tests/envoy_configs.rs::websocket_examples_carry_a_websocket_session",
    ),
    (
        "RouteUpgrade.enabled",
        "tests/tunnels.rs::an_upgrade_without_upgrade_configs_gets_envoys_403",
    ),
    (
        "RouteUpgrade.terminate_connect",
        "tests/tunnels.rs::a_long_download_through_a_terminated_connect_is_byte_exact",
    ),
    (
        "ForwardAction.idle_timeout",
        "tests/routing_actions.rs::route_idle_timeout_is_504_stream_timeout_before_the_response",
    ),
    (
        "VirtualHost.require_tls",
        "tests/envoy_internal.rs::require_tls_redirects_plaintext_requests_to_https",
    ),
    (
        "VirtualHost.retry_policy",
        "tests/routing_retry.rs::a_virtual_hosts_retry_policy_serves_routes_without_their_own",
    ),
    (
        "ForwardAction.retry_policy",
        "tests/routing_retry.rs::connect_failure_on_one_endpoint_becomes_a_200_from_the_other",
    ),
    ("RegexRewrite.pattern", "tests/routing_actions.rs::path_and_host_rewrites"),
    ("RegexRewrite.substitution", "tests/routing_actions.rs::path_and_host_rewrites"),
    ("RetryOn.five_xx", "tests/routing_retry.rs::retriable_status_moves_to_the_next_endpoint"),
    (
        "RetryOn.gateway_error",
        "src/http/core/tests.rs::retries_follow_the_policy_and_the_budget",
    ),
    ("RetryOn.reset", "src/http/core/tests.rs::retries_follow_the_policy_and_the_budget"),
    (
        "RetryOn.connect_failure",
        "tests/routing_retry.rs::connect_failure_on_one_endpoint_becomes_a_200_from_the_other",
    ),
    (
        "RetryOn.retriable_4xx",
        "src/http/core/tests.rs::retries_follow_the_policy_and_the_budget",
    ),
    (
        "RetryOn.retriable_status_codes",
        "tests/routing_retry.rs::retriable_status_codes_and_exhausted_retries_pass_the_response_through",
    ),
    ("RetryPolicy.retry_on", "tests/routing_retry.rs::five_xx_is_not_retried_for_codes_outside_the_policy"),
    (
        "RetryPolicy.num_retries",
        "tests/routing_retry.rs::retriable_status_codes_and_exhausted_retries_pass_the_response_through",
    ),
    (
        "RetryPolicy.per_try_timeout",
        "tests/routing_retry.rs::per_try_timeout_retries_on_another_endpoint",
    ),
    (
        "RetryPolicy.retriable_status_codes",
        "tests/routing_retry.rs::retriable_status_codes_and_exhausted_retries_pass_the_response_through",
    ),
    (
        "RetryPolicy.back_off_base",
        "src/http/core/tests.rs::retries_follow_the_policy_and_the_budget",
    ),
    (
        "RetryPolicy.back_off_max",
        "src/http/core/tests.rs::retries_follow_the_policy_and_the_budget",
    ),
    ("RedirectAction.scheme", "src/route/rewrite.rs::redirect_locations"),
    ("RedirectAction.host", "tests/routing_actions.rs::direct_response_and_redirects"),
    ("RedirectAction.port", "tests/routing_actions.rs::direct_response_and_redirects"),
    ("RedirectAction.path", "tests/routing_actions.rs::direct_response_and_redirects"),
    ("RedirectAction.response_code", "tests/routing_actions.rs::direct_response_and_redirects"),
    ("RedirectAction.strip_query", "tests/routing_actions.rs::direct_response_and_redirects"),
    ("EndpointAddr.host", "tests/lifecycle.rs::strict_dns_resolves_localhost"),
    ("EndpointAddr.port", "tests/lifecycle.rs::round_robin_spreads_over_static_endpoints"),
    ("EndpointAddr.weight", "tests/load_balancing.rs::endpoint_weights_spread_requests_and_hostname_is_the_rewritten_host"),
    ("EndpointAddr.hostname", "tests/load_balancing.rs::endpoint_weights_spread_requests_and_hostname_is_the_rewritten_host"),
    ("EndpointAddr.locality", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("EndpointAddr.health_check_hostname", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("EndpointAddr.health_check_port", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Cluster.balancing", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Balancing.localities", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Balancing.locality_weighted", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Balancing.overprovisioning_factor", "src/cluster/health.rs::priorities_fail_over_as_envoy_spreads_the_load"),
    ("Balancing.choice_count", "src/cluster/lb.rs::round_robin_and_least_request_within_a_set"),
    ("Balancing.active_request_bias", "src/cluster/lb.rs::round_robin_and_least_request_within_a_set"),
    ("Locality.region", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Locality.zone", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Locality.sub_zone", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Locality.weight", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("ForwardAction.hash_policy", "tests/load_balancing.rs::ring_hash_and_maglev_send_a_key_to_one_host_in_every_process"),
    ("HashPolicy.key", "tests/load_balancing.rs::ring_hash_and_maglev_send_a_key_to_one_host_in_every_process"),
    ("HashPolicy.terminal", "tests/load_balancing.rs::ring_hash_and_maglev_send_a_key_to_one_host_in_every_process"),
    ("Balancing.ring_min", "src/cluster/lb.rs::hashing_policies_keep_a_key_on_its_host_within_the_level"),
    ("Balancing.ring_max", "src/cluster/lb.rs::hashing_policies_keep_a_key_on_its_host_within_the_level"),
    ("Balancing.hash_by_hostname", "src/cluster/lb.rs::use_hostname_for_hashing_keys_hosts_by_name_not_address"),
    ("Balancing.maglev_size", "src/cluster/lb.rs::hashing_policies_keep_a_key_on_its_host_within_the_level"),
    ("Locality.priority", "tests/load_balancing.rs::priorities_fail_over_and_localities_share_by_weight"),
    ("Cluster.name", "tests/admin_endpoints.rs::stats_count_every_request_by_class_and_failure"),
    ("Cluster.connect_timeout", "tests/local_replies.rs::connect_timeout_is_honoured"),
    ("Cluster.discovery", "tests/lifecycle.rs::logical_dns_resolves_localhost"),
    ("Cluster.lb_policy", "src/cluster/mod.rs::weights_share_traffic_in_proportion"),
    ("Cluster.dns_lookup_family", "src/cluster/mod.rs::family_filters"),
    (
        "Cluster.dns_refresh_rate",
        "tests/config_fields.rs::dns_refresh_rate_sets_how_often_a_dns_cluster_resolves",
    ),
    ("Cluster.endpoints", "tests/lifecycle.rs::round_robin_spreads_over_static_endpoints"),
    (
        "Cluster.per_connection_buffer_limit_bytes",
        "src/http/core/tests.rs::buffers_are_bounded_by_the_listener_and_cluster_limits",
    ),
    // Envoy requires it and uses it only for EDS; for static clusters it is a label, shown in
    // /config_dump.
    (
        "Cluster.load_assignment_cluster_name",
        "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model",
    ),
    ("Listener.filter_chains", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("Listener.inspect_timeout", "tests/tls.rs::bad_handshakes_cost_only_their_connection"),
    (
        "Cluster.http",
        "tests/upstream_protocol_options.rs::max_requests_per_connection_two_makes_three_requests_use_two_connections",
    ),
    (
        "UpstreamHttp.idle_timeout",
        "tests/upstream_protocol_options.rs::idle_timeout_closes_a_pooled_connection_and_the_next_request_opens_another",
    ),
    (
        "UpstreamHttp.max_requests_per_connection",
        "tests/upstream_protocol_options.rs::max_requests_per_connection_two_makes_three_requests_use_two_connections",
    ),
    (
        "UpstreamHttp.max_connection_duration",
        "tests/upstream_protocol_options.rs::max_connection_duration_closes_an_idle_connection_and_one_in_use_after_its_exchange",
    ),
    (
        "UpstreamHttp.max_headers_count",
        "tests/upstream_protocol_options.rs::max_headers_count_refuses_a_response_with_more_headers",
    ),
    (
        "UpstreamHttp.proper_case_headers",
        "tests/upstream_protocol_options.rs::proper_case_words_writes_upstream_header_names_in_proper_case",
    ),
    (
        "Cluster.outlier_detection",
        "tests/outlier_detection.rs::a_host_answering_503_is_ejected_and_traffic_moves_to_the_other",
    ),
    (
        "OutlierDetection.consecutive_5xx",
        "tests/outlier_detection.rs::a_host_answering_503_is_ejected_and_traffic_moves_to_the_other",
    ),
    (
        "OutlierDetection.consecutive_gateway_failure",
        "src/cluster/outlier.rs::gateway_failures_and_local_origin_errors_without_split",
    ),
    (
        "OutlierDetection.consecutive_local_origin_failure",
        "src/cluster/outlier.rs::split_mode_counts_local_origin_failures_apart",
    ),
    (
        "OutlierDetection.split_external_local_origin_errors",
        "src/cluster/mod.rs::gateway_and_local_origin_detections_follow_their_settings",
    ),
    (
        "OutlierDetection.interval",
        "tests/outlier_detection.rs::an_ejected_host_comes_back_when_its_time_is_up",
    ),
    (
        "OutlierDetection.base_ejection_time",
        "tests/outlier_detection.rs::an_ejected_host_comes_back_when_its_time_is_up",
    ),
    (
        "OutlierDetection.max_ejection_time",
        "src/cluster/outlier.rs::ejection_time_grows_with_ejections_up_to_the_maximum_and_decays",
    ),
    (
        "OutlierDetection.max_ejection_percent",
        "tests/outlier_detection.rs::the_default_ejection_limit_ejects_no_host_of_two",
    ),
    (
        "OutlierDetection.always_eject_one_host",
        "src/cluster/outlier.rs::max_ejection_percent_counts_the_new_host",
    ),
    (
        "OutlierDetection.enforcing_consecutive_5xx",
        "src/cluster/mod.rs::an_ejected_host_leaves_the_balancer_and_enforcing_decides",
    ),
    (
        "OutlierDetection.enforcing_consecutive_gateway_failure",
        "src/cluster/mod.rs::gateway_and_local_origin_detections_follow_their_settings",
    ),
    (
        "OutlierDetection.enforcing_consecutive_local_origin_failure",
        "src/cluster/mod.rs::gateway_and_local_origin_detections_follow_their_settings",
    ),
    (
        "OutlierDetection.enforcing_success_rate",
        "src/cluster/mod.rs::the_interval_ejects_success_rate_outliers_and_ends_ejections",
    ),
    (
        "OutlierDetection.enforcing_local_origin_success_rate",
        "src/cluster/mod.rs::the_interval_ejects_success_rate_outliers_and_ends_ejections",
    ),
    (
        "OutlierDetection.success_rate_minimum_hosts",
        "src/cluster/outlier.rs::success_rate_ejects_below_mean_minus_stdevs",
    ),
    (
        "OutlierDetection.success_rate_request_volume",
        "src/cluster/outlier.rs::success_rate_ejects_below_mean_minus_stdevs",
    ),
    (
        "OutlierDetection.success_rate_stdev_factor",
        "src/cluster/outlier.rs::success_rate_ejects_below_mean_minus_stdevs",
    ),
    (
        "OutlierDetection.successful_active_health_check_uneject_host",
        "src/cluster/mod.rs::an_ejected_host_leaves_the_balancer_and_enforcing_decides",
    ),
    ("Cluster.health_check", "tests/health_checks.rs::a_host_failing_its_check_leaves_the_balancer_and_comes_back"),
    (
        "Cluster.healthy_panic_threshold",
        "tests/health_checks.rs::a_panic_threshold_of_zero_sends_nothing_to_unhealthy_hosts",
    ),
    ("HealthCheck.timeout", "tests/health_checks.rs::a_check_without_an_answer_times_out"),
    ("HealthCheck.interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.initial_jitter", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.interval_jitter", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.interval_jitter_percent", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.unhealthy_threshold", "src/cluster/health.rs::the_first_success_makes_a_new_host_healthy_then_thresholds_count"),
    ("HealthCheck.healthy_threshold", "src/cluster/health.rs::the_first_success_makes_a_new_host_healthy_then_thresholds_count"),
    ("HealthCheck.reuse_connection", "tests/health_checks.rs::without_reuse_connection_each_check_opens_a_connection"),
    ("HealthCheck.no_traffic_interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.no_traffic_healthy_interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.unhealthy_interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.unhealthy_edge_interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.healthy_edge_interval", "src/cluster/health.rs::intervals_follow_the_result_and_the_edges"),
    ("HealthCheck.kind", "tests/health_checks.rs::tcp_checks_send_and_find_the_expected_bytes"),
    ("Cluster.tls", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    (
        "Cluster.circuit_breakers",
        "tests/circuit_breakers.rs::max_connections_queues_requests_and_max_pending_requests_overflows_at_once",
    ),
    (
        "CircuitBreakers.default",
        "tests/circuit_breakers.rs::max_connections_queues_requests_and_max_pending_requests_overflows_at_once",
    ),
    (
        "CircuitBreakers.high",
        "tests/circuit_breakers.rs::high_priority_thresholds_only_show_in_their_gauges",
    ),
    (
        "Thresholds.max_connections",
        "tests/circuit_breakers.rs::max_connections_queues_requests_and_max_pending_requests_overflows_at_once",
    ),
    (
        "Thresholds.max_pending_requests",
        "tests/circuit_breakers.rs::max_connections_queues_requests_and_max_pending_requests_overflows_at_once",
    ),
    (
        "Thresholds.max_requests",
        "tests/circuit_breakers.rs::max_requests_answers_503_overflow_once_reached",
    ),
    (
        "Thresholds.max_retries",
        "tests/circuit_breakers.rs::max_retries_zero_refuses_every_retry",
    ),
    (
        "Thresholds.retry_budget",
        "tests/circuit_breakers.rs::a_retry_budget_replaces_max_retries",
    ),
    (
        "Thresholds.track_remaining",
        "tests/circuit_breakers.rs::max_connections_queues_requests_and_max_pending_requests_overflows_at_once",
    ),
    (
        "RetryBudget.budget_percent",
        "tests/circuit_breakers.rs::a_retry_budget_is_a_share_of_the_active_requests",
    ),
    (
        "RetryBudget.min_retry_concurrency",
        "tests/circuit_breakers.rs::a_retry_budget_replaces_max_retries",
    ),
    ("TlsParams.min", "tests/tls.rs::tls_minimum_version_refuses_older_clients"),
    ("TlsParams.max", "tests/tls.rs::tls_params_limit_versions_and_ciphers"),
    ("TlsParams.cipher_suites", "tests/tls.rs::tls_params_limit_versions_and_ciphers"),
    ("SanMatcher.san_type", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("SanMatcher.matcher", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("Validation.trusted_ca_pem", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("Validation.san_matchers", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("CertKey.chain_pem", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("CertKey.key_pem", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("DownstreamTls.cert", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("DownstreamTls.params", "tests/tls.rs::tls_params_limit_versions_and_ciphers"),
    ("DownstreamTls.alpn_http11", "tests/tls.rs::tls_params_limit_versions_and_ciphers"),
    ("DownstreamTls.require_client_certificate", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("DownstreamTls.validation", "tests/tls.rs::mtls_refuses_clients_without_an_accepted_certificate"),
    ("UpstreamTls.sni", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    ("UpstreamTls.cert", "tests/tls.rs::upstream_client_certificates"),
    ("UpstreamTls.params", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    ("UpstreamTls.alpn_http11", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    ("UpstreamTls.alpn_h2", "tests/h2_upstream.rs::tls_with_alpn_h2"),
    ("UpstreamHttp.http2", "tests/h2_upstream.rs::requests_go_over_one_h2c_connection_and_come_back_as_http11"),
    ("UpstreamHttp2.hpack_table_size", "tests/h2_upstream.rs::small_windows_both_ways"),
    ("UpstreamHttp2.initial_stream_window_size", "tests/h2_upstream.rs::small_windows_both_ways"),
    ("UpstreamHttp2.initial_connection_window_size", "tests/h2_upstream.rs::small_windows_both_ways"),
    ("UpstreamTls.validation", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    ("UpstreamTls.max_session_keys", "tests/tls.rs::upstream_tls_verifies_and_reuses_connections"),
    ("UpstreamTls.verify_name", "tests/tls.rs::auto_sni_names_the_server_by_the_host_and_pools_by_name"),
    ("UpstreamHttp.auto_sni", "tests/tls.rs::auto_sni_names_the_server_by_the_host_and_pools_by_name"),
    ("UpstreamHttp.auto_san_validation", "tests/tls.rs::auto_sni_names_the_server_by_the_host_and_pools_by_name"),
    ("FilterChainTls.name", "tests/filter_chains.rs::hot_restart_keeps_each_connections_chain"),
    ("FilterChainTls.destination_port", "tests/filter_chains.rs::destination_port_and_the_default_chain"),
    ("FilterChainTls.application_protocols", "tests/envoy_configs.rs::tls_inspector_example_passes_tls_through_by_alpn"),
    ("FilterChainTls.prefix_ranges", "tests/filter_chains.rs::source_and_destination_addresses_choose_the_chain"),
    ("FilterChainTls.source_prefix_ranges", "tests/filter_chains.rs::source_and_destination_addresses_choose_the_chain"),
    ("FilterChainTls.source_ports", "tests/filter_chains.rs::source_and_destination_addresses_choose_the_chain"),
    ("FilterChainTls.fallback", "tests/filter_chains.rs::destination_port_and_the_default_chain"),
    ("FilterChainTls.terminal", "tests/filter_chains.rs::two_connection_managers_chosen_by_sni"),
    ("FilterChainTls.server_names", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("FilterChainTls.transport_protocol", "tests/tls.rs::plain_and_tls_chains_share_a_listener"),
    ("FilterChainTls.tls", "tests/tls.rs::https_tls12_tls13_and_sni_choose_the_certificate"),
    ("FilterChainTls.handshake_timeout", "tests/tls.rs::bad_handshakes_cost_only_their_connection"),
    ("CertKey.key_file", "src/admin/dump/tests.rs::tls_contexts_round_trip_and_keys_are_never_shown"),
    (
        "HttpConnectionManager.local_reply",
        "tests/envoy_configs.rs::envoy_demo_answers_get_with_its_html_page_and_post_with_an_empty_404",
    ),
    (
        "LocalReplyConfig.mappers",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "LocalReplyConfig.body_format",
        "tests/local_reply_config.rs::a_body_format_alone_reformats_every_local_reply_and_omits_empty_values",
    ),
    (
        "ResponseMapper.filter",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "ResponseMapper.status_code",
        "tests/local_reply_config.rs::status_override_keeps_the_connection_and_counts_the_new_class",
    ),
    (
        "ResponseMapper.body",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "ResponseMapper.body_format_override",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "ResponseMapper.headers_to_add",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "BodyFormat.kind",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "BodyFormat.omit_empty_values",
        "tests/local_reply_config.rs::a_body_format_alone_reformats_every_local_reply_and_omits_empty_values",
    ),
    (
        "BodyFormat.content_type",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "Comparison.op",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "Comparison.value",
        "tests/local_reply_config.rs::mappers_rewrite_status_body_headers_and_format",
    ),
    (
        "AccessLog.filter",
        "tests/access_log_filters.rs::each_logger_writes_only_what_its_filter_lets_through",
    ),
    (
        "RuntimeSample.numerator",
        "tests/access_log_filters.rs::each_logger_writes_only_what_its_filter_lets_through",
    ),
    (
        "RuntimeSample.denominator",
        "tests/access_log_filters.rs::independent_randomness_samples_requests_that_share_a_request_id",
    ),
    (
        "RuntimeSample.independent",
        "tests/access_log_filters.rs::independent_randomness_samples_requests_that_share_a_request_id",
    ),
    // A label: shown in config_dump (no runtime layer can set the key).
    (
        "RuntimeSample.runtime_key",
        "src/admin/dump/tests.rs::dump_loads_back_into_the_same_model",
    ),
    (
        "AccessLog.json",
        "tests/access_log_operators.rs::a_json_format_writes_one_typed_object_per_request",
    ),
    (
        "Listener.proxy_protocol",
        "tests/proxy_protocol.rs::the_header_names_the_client_for_xff_the_access_log_and_rbac",
    ),
    (
        "ProxyProtocol.accept_v1",
        "tests/proxy_protocol.rs::bad_missing_and_disallowed_headers_close_the_connection_and_are_counted",
    ),
    (
        "ProxyProtocol.accept_v2",
        "tests/proxy_protocol.rs::bad_missing_and_disallowed_headers_close_the_connection_and_are_counted",
    ),
    (
        "ProxyProtocol.allow_without",
        "tests/proxy_protocol.rs::without_a_header_a_client_is_served_when_the_filter_allows_it",
    ),
    (
        "ProxyProtocol.stat_prefix",
        "tests/proxy_protocol.rs::the_header_names_the_client_for_xff_the_access_log_and_rbac",
    ),
    (
        "Cluster.proxy_protocol",
        "tests/proxy_protocol.rs::an_upstream_proxy_protocol_cluster_sends_each_client_in_a_header_of_its_own",
    ),
    (
        "FilterChainTls.direct_source_prefix_ranges",
        "tests/proxy_protocol.rs::the_header_addresses_choose_the_filter_chain",
    ),
];

/// `Struct.field` for every field of every struct in `model.rs`.
fn model_fields() -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<&str> = None;
    for line in include_str!("../model.rs").lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            if line.trim_end().ends_with('{') {
                current = rest.split([' ', '{', '<']).next();
            }
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let Some(s) = current else { continue };
        let field = line
            .strip_prefix("    pub ")
            .or_else(|| line.strip_prefix("    "));
        if let Some((name, _)) = field.and_then(|f| f.split_once(':')) {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(format!("{s}.{name}"));
            }
        }
    }
    out
}

#[test]
fn every_model_field_has_a_proof() {
    let fields = model_fields();
    assert!(fields.len() > 90, "parsed only {} fields", fields.len());
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !PROOFS.iter().any(|(p, _)| p == f))
        .collect();
    assert!(
        missing.is_empty(),
        "model fields with no test proving the data path uses them: {missing:?}"
    );
    let stale: Vec<&str> = PROOFS
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !fields.iter().any(|m| m == f))
        .collect();
    assert!(
        stale.is_empty(),
        "entries for fields the model no longer has: {stale:?}"
    );
}

#[test]
fn every_proof_names_an_existing_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (field, proof) in PROOFS {
        let (file, test) = proof.split_once("::").expect("file::test");
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{field}: {file}: {e}"));
        let decl = format!("fn {test}()");
        let at = text
            .find(&decl)
            .unwrap_or_else(|| panic!("{field}: no test {test} in {file}"));
        let before = &text[..at];
        let attr = before
            .rfind("#[test]")
            .unwrap_or_else(|| panic!("{field}: {test} is not a test"));
        assert!(
            before[attr..].lines().count() <= 2,
            "{field}: {test} in {file} is not a #[test]"
        );
    }
}
