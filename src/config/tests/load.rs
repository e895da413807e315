//! The seed configs, Envoy's defaults, durations, JSON input and `--config-yaml` merging.

use super::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn seed_model(cluster: &str, port: u16) -> Bootstrap {
    Bootstrap {
        listeners: vec![Listener {
            name: "listener_0".into(),
            address: "0.0.0.0:10000".parse().unwrap(),
            terminals: vec![Terminal::Http(Box::new(HttpConnectionManager {
                stat_prefix: "ingress_http".into(),
                route_config: RouteConfig {
                    name: "local_route".into(),
                    virtual_hosts: vec![VirtualHost {
                        name: "local_service".into(),
                        domains: vec!["*".into()],
                        routes: vec![Route {
                            name: String::new(),
                            matcher: RouteMatch {
                                path: PathMatch::Prefix("/".into()),
                                case_sensitive: true,
                                headers: vec![],
                                query_parameters: vec![],
                            },
                            action: RouteAction::Forward(ForwardAction {
                                cluster: ClusterSpec::Single(0),
                                prefix_rewrite: None,
                                timeout: Some(Duration::from_secs(15)),
                                regex_rewrite: None,
                                host_rewrite: None,
                                idle_timeout: None,
                                retry_policy: None,
                                upgrades: vec![],
                                cors: None,
                                hash_policy: Vec::new(),
                                mirrors: vec![],
                                body_limit: None,
                                attempt_count: Default::default(),
                            }),
                            headers: HeaderMutations::default(),
                            filter_configs: vec![],
                            decorator: None,
                        }],
                        headers: HeaderMutations::default(),
                        retry_policy: None,
                        require_tls: crate::config::RequireTls::None,
                        filter_configs: vec![],
                        cors: None,
                    }],
                    headers: HeaderMutations::default(),
                    most_specific_header_mutations_wins: false,
                },
                idle_timeout: Some(Duration::from_secs(3600)),
                request_headers_timeout: None,
                stream_idle_timeout: Some(Duration::from_secs(300)),
                max_request_headers_kb: 60,
                server_name: "baton".into(),
                server_header_transformation: ServerHeader::Overwrite,
                codec_type: CodecType::Auto,
                http2: Http2Options::default(),
                use_remote_address: false,
                xff_num_trusted_hops: 0,
                generate_request_id: true,
                normalize_path: false,
                merge_slashes: false,
                access_log: vec![],
                upgrades: vec![],
                internal_addresses: None,
                accept_http_10: false,
                default_host_for_http_10: None,
                http_filters: Vec::new(),
                max_connection_duration: None,
                request_timeout: None,
                max_headers_count: 100,
                max_requests_per_connection: None,
                headers_with_underscores: Underscores::Allow,
                strip_host_port: StripPort::Keep,
                strip_trailing_host_dot: false,
                escaped_slashes: EscapedSlashes::KeepUnchanged,
                skip_xff_append: false,
                forward_client_cert_details: ForwardClientCert::Sanitize,
                delayed_close_timeout: Some(Duration::from_secs(1)),
                add_user_agent: false,
                proxy_100_continue: false,
                preserve_external_request_id: false,
                via: None,
                scheme_to_overwrite: None,
                local_reply: None,
                tracing: None,
            }))],
            per_connection_buffer_limit_bytes: 1 << 20,
            connection_limit: None,
            runtime_connection_limit: None,
            filter_chains: vec![crate::config::FilterChainTls {
                name: None,
                destination_port: None,
                prefix_ranges: vec![],
                source_prefix_ranges: vec![],
                direct_source_prefix_ranges: vec![],
                source_ports: vec![],
                server_names: vec![],
                transport_protocol: None,
                application_protocols: vec![],
                fallback: false,
                terminal: 0,
                tls: None,
                handshake_timeout: crate::config::tls::DEFAULT_HANDSHAKE_TIMEOUT,
            }],
            inspect_timeout: crate::config::tls::DEFAULT_INSPECT_TIMEOUT,
            socket: Default::default(),
            traffic_direction: TrafficDirection::Unspecified,
            proxy_protocol: None,
        }],
        clusters: vec![Cluster {
            name: cluster.into(),
            connect_timeout: Duration::from_millis(250),
            discovery: DiscoveryType::LogicalDns,
            lb_policy: LbPolicy::RoundRobin,
            dns_lookup_family: DnsLookupFamily::V4Only,
            dns_refresh_rate: Duration::from_secs(5),
            endpoints: vec![EndpointAddr {
                host: "127.0.0.1".into(),
                port,
                weight: 1,
                locality: 0,
                hostname: String::new(),
                health_check_port: None,
                health_check_hostname: String::new(),
            }],
            per_connection_buffer_limit_bytes: 1 << 20,
            load_assignment_cluster_name: cluster.into(),
            tls: None,
            proxy_protocol: None,
            circuit_breakers: Default::default(),
            health_check: None,
            healthy_panic_threshold: 50,
            tcp_keepalive: None,
            http: Default::default(),
            outlier_detection: None,
            balancing: crate::config::Balancing {
                localities: vec![Default::default()],
                ..Default::default()
            },
        }],
        admin: None,
        node: None,
        max_downstream_connections: None,
        stats_sinks: vec![],
        stats_flush_interval: Duration::from_secs(5),
        stats_matcher: StatsMatcher::All,
        watched: vec![],
        overload: Overload::default(),
    }
}

#[test]
fn seed_configs_load_with_envoy_defaults() {
    let b = load_file(&repo("configs/envoy.yaml")).unwrap();
    assert_eq!(b, seed_model("some_service", 8080));
    let b = load(Some(&repo("configs/envoy_v2.yaml")), None).unwrap();
    assert_eq!(b, seed_model("some_service_v2", 8081));
}

#[test]
fn durations_in_both_forms() {
    use crate::config::raw::parse_duration;
    assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    assert!(parse_duration("0.0000000001s").is_err());
    assert!(parse_duration("1m").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("1.s").is_ok());
    let c = |v: &str| {
        ok_with(&[("static_resources.clusters[0].connect_timeout", v)]).clusters[0].connect_timeout
    };
    assert_eq!(
        c("{seconds: 2, nanos: 500000000}"),
        Duration::from_millis(2500)
    );
    assert_eq!(c("{seconds: \"3\"}"), Duration::from_secs(3));
    assert_eq!(c("\"1.5s\""), Duration::from_millis(1500));
}

#[test]
fn timeouts_zero_means_disabled() {
    let b = ok_with(&[
        (
            &format!("{HCM}.common_http_protocol_options"),
            "{idle_timeout: 0s}",
        ),
        (&format!("{HCM}.stream_idle_timeout"), "0s"),
        (&format!("{HCM}.request_headers_timeout"), "10s"),
        (&format!("{VH}.routes[0].route.timeout"), "0s"),
        (&format!("{VH}.routes[0].route.idle_timeout"), "7s"),
    ]);
    let hcm = b.listeners[0].hcm().unwrap();
    assert_eq!(hcm.idle_timeout, None);
    assert_eq!(hcm.stream_idle_timeout, None);
    assert_eq!(hcm.request_headers_timeout, Some(Duration::from_secs(10)));
    let RouteAction::Forward(f) = &hcm.route_config.virtual_hosts[0].routes[0].action else {
        panic!("forward expected")
    };
    assert_eq!(f.timeout, None);
    assert_eq!(f.idle_timeout, Some(Some(Duration::from_secs(7))));
}

#[test]
fn cluster_defaults_and_enum_numbers() {
    let b = ok_with(&[
        ("static_resources.clusters[1].lb_policy", "3"),
        (
            "static_resources.clusters[1].dns_lookup_family",
            "V4_PREFERRED",
        ),
    ]);
    let a = &b.clusters[0];
    assert_eq!(a.discovery, DiscoveryType::Static);
    assert_eq!(a.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(a.dns_lookup_family, DnsLookupFamily::Auto);
    let c = &b.clusters[1];
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.lb_policy, LbPolicy::Random);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Preferred);
    assert_eq!(
        c.endpoints,
        vec![EndpointAddr {
            host: "localhost".into(),
            port: 8081,
            weight: 1,
            locality: 0,
            hostname: String::new(),
            health_check_port: None,
            health_check_hostname: String::new(),
        }]
    );
}

#[test]
fn hcm_node_and_admin_fields() {
    let b = ok_with(&[
        ("node", "{id: n1, cluster: c1}"),
        ("admin", "{access_log_path: /dev/null, address: {socket_address: {address: \"::1\", port_value: 9901}}}"),
        (&format!("{HCM}.codec_type"), "HTTP1"),
        (&format!("{HCM}.use_remote_address"), "true"),
        (&format!("{HCM}.xff_num_trusted_hops"), "2"),
        (&format!("{HCM}.generate_request_id"), "false"),
        (&format!("{HCM}.server_name"), "edge"),
        (&format!("{HCM}.server_header_transformation"), "PASS_THROUGH"),
        (&format!("{HCM}.normalize_path"), "true"),
        (&format!("{HCM}.merge_slashes"), "true"),
        (&format!("{HCM}.max_request_headers_kb"), "96"),
        ("static_resources.listeners[0].per_connection_buffer_limit_bytes", "32768"),
        ("static_resources.listeners[0].address.socket_address.port_value", "\"0\""),
    ]);
    assert_eq!(
        b.node,
        Some(Node {
            id: "n1".into(),
            cluster: "c1".into()
        })
    );
    let admin = b.admin.unwrap();
    assert_eq!(
        admin.address,
        Some("[::1]:9901".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(admin.access_log_path.as_deref(), Some("/dev/null"));
    // Without an address the access log path is still kept (it is opened at start, as in
    // Envoy); an empty path is Envoy's "no log", and an admin with neither is no admin.
    let admin = ok_with(&[("admin", "{access_log_path: /tmp/a.log}")]).admin;
    assert_eq!(
        admin,
        Some(Admin {
            address: None,
            access_log_path: Some("/tmp/a.log".into()),
            access_log: vec![],
        })
    );
    assert_eq!(ok_with(&[("admin", "{access_log_path: \"\"}")]).admin, None);
    // `admin.access_log[]`: loggers as a connection manager's, errors at their path.
    let admin = ok_with(&[(
        "admin",
        "{access_log: [{name: envoy.access_loggers.stderr}]}",
    )])
    .admin;
    assert_eq!(
        admin.map(|a| a
            .access_log
            .iter()
            .map(|l| l.path.clone())
            .collect::<Vec<_>>()),
        Some(vec!["/dev/stderr".to_string()])
    );
    assert_eq!(
        err_with(&[(
            "admin",
            "{access_log: [{name: envoy.access_loggers.stdout, filter: {metadata_filter: {}}}]}"
        )])
        .split(';')
        .next(),
        Some("admin.access_log[0].filter.metadata_filter: not supported by baton (metadata)")
    );
    assert_eq!(ok_with(&[("admin", "{}")]).admin, None);
    let l = &b.listeners[0];
    assert_eq!(l.address.port(), 0);
    assert_eq!(l.per_connection_buffer_limit_bytes, 32768);
    let h = l.hcm().unwrap();
    assert_eq!(h.codec_type, CodecType::Http1);
    assert!(h.use_remote_address && !h.generate_request_id && h.normalize_path && h.merge_slashes);
    assert_eq!(h.xff_num_trusted_hops, 2);
    assert_eq!(h.server_name, "edge");
    assert_eq!(h.server_header_transformation, ServerHeader::PassThrough);
    assert_eq!(h.max_request_headers_kb, 96);
}

#[test]
fn access_log_formats_kept_raw() {
    let file = |extra: &str| {
        format!(
            "[{{name: envoy.access_loggers.file, typed_config: {{\"@type\": \
             type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, \
             path: /tmp/access.log{extra}}}}}]"
        )
    };
    let logs = |extra: &str| {
        ok_with(&[(&format!("{HCM}.access_log"), &file(extra))]).listeners[0]
            .access_log()
            .to_vec()
    };
    assert_eq!(
        logs(""),
        vec![AccessLog {
            path: "/tmp/access.log".into(),
            format: DEFAULT_ACCESS_LOG_FORMAT.into(),
            json: None,
            filter: None,
        }]
    );
    let custom = "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE% %RESPONSE_FLAGS%\n";
    let got = logs(&format!(
        ", log_format: {{text_format_source: {{inline_string: {custom:?}}}}}"
    ));
    assert_eq!(got[0].format, custom);
    let got = logs(", log_format: {text_format: \"%PROTOCOL%\"}");
    assert_eq!(got[0].format, "%PROTOCOL%");
    assert!(DEFAULT_ACCESS_LOG_FORMAT.starts_with("[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE%"));
    assert!(DEFAULT_ACCESS_LOG_FORMAT.ends_with("\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"));
}

#[test]
fn json_input_works() {
    let json = serde_json_like();
    let b = load_str(&json).unwrap();
    assert_eq!(b.clusters[0].name, "j");
    assert_eq!(
        b.listeners[0].address,
        "127.0.0.1:1".parse::<SocketAddr>().unwrap()
    );
}

/// A bootstrap written as JSON (what `--config-yaml '{...}'` users pass).
fn serde_json_like() -> String {
    r#"{"static_resources": {"listeners": [{"name": "l", "address": {"socket_address":
      {"address": "127.0.0.1", "port_value": 1}}, "filter_chains": [{"filters": [{"name":
      "envoy.filters.network.http_connection_manager", "typed_config": {"@type":
      "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "s", "codec_type": 1, "route_config": {"virtual_hosts": [{"name": "v",
      "domains": ["*"], "routes": [{"match": {"path": "/x"}, "route": {"cluster": "j"}}]}]},
      "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type":
      "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
      "clusters": [{"name": "j", "connect_timeout": "1s", "load_assignment": {"cluster_name": "j",
      "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
      {"address": "127.0.0.1", "port_value": "2"}}}}]}]}}]}}"#
        .to_string()
}

#[test]
fn config_yaml_merges_over_file() {
    let file = repo("configs/envoy.yaml");
    let over = "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}\n\
                static_resources:\n  clusters:\n  - name: some_service\n    type: STATIC\n    \
                load_assignment: {cluster_name: some_service, endpoints: [{lb_endpoints: \
                [{endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 9}}}}]}]}\n";
    let b = load(Some(&file), Some(over)).unwrap();
    // Maps merged: the listener from the file survives; admin added.
    assert_eq!(b.listeners[0].name, "listener_0");
    assert_eq!(
        b.admin.and_then(|a| a.address).map(|a| a.port()),
        Some(9901)
    );
    // Lists replaced: the inline cluster list wins whole (its defaults, not the file's fields).
    assert_eq!(b.clusters.len(), 1);
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
    assert_eq!(b.clusters[0].connect_timeout, Duration::from_secs(5));
    assert_eq!(b.clusters[0].endpoints[0].host, "127.0.0.2");
    // Errors in the merged document still name the path.
    let e = load(
        Some(&file),
        Some("static_resources: {clusters: [{name: some_service, lb_policy: X}]}"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "static_resources.clusters[0].lb_policy: unknown value \"X\" \
         (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)"
    );
    let e = load(Some(&file), Some("[")).unwrap_err();
    assert!(
        e.first()
            .unwrap()
            .message
            .starts_with("--config-yaml: invalid YAML"),
        "{e}"
    );
}

#[test]
fn yaml_merge_keys_and_null_lists() {
    let y = std::fs::read_to_string(repo("configs/envoy.yaml")).unwrap();
    let y = y.replace(
        "    connect_timeout: 0.25s\n",
        "    <<: {connect_timeout: 2s}\n",
    );
    assert_eq!(
        load_str(&y).unwrap().clusters[0].connect_timeout,
        Duration::from_secs(2)
    );
    let b = ok_with(&[(&format!("{VH}.routes"), "~")]);
    assert!(b.listeners[0].hcm().unwrap().route_config.virtual_hosts[0]
        .routes
        .is_empty());
}
