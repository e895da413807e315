//! Real Envoy v3 configs from public sources, kept unchanged in `tests/envoy-configs/` (each
//! file's first line is a comment giving its source URL). Every one is run through
//! `baton --mode validate`: it either loads, or is refused with every error naming a field path
//! and a reason. The expected outcome of each file is recorded below (the paths of its errors;
//! none for a file that loads), so any change in what baton accepts is noticed. The configs that load are then served: the only rewrite is of socket addresses
//! (listeners and admin to 127.0.0.1 on free ports, cluster endpoints to a test upstream on
//! 127.0.0.1), because the originals name docker hosts and fixed ports; everything else is
//! served as written.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, run_baton, Baton, RawConn, Upstream};
use serde_yaml::Value;

/// Each corpus file and the paths of the errors baton reports for it, sorted (empty: it
/// loads).
const CORPUS: &[(&str, &[&str])] = &[
    (
        "envoy--configs-envoy-demo.yaml",
        &[
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.local_reply_config",
        ],
    ),
    (
        "envoy--configs-google_com_proxy.v2.yaml",
        &[
            "static_resources.clusters[0].transport_socket.typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "envoy--configs-using_deprecated_config.v2.yaml",
        &[
            "layered_runtime.layers[0].static_layer.envoy.deprecated_features:envoy.api.v2.route.CorsPolicy.allow_origin",
            "layered_runtime.layers[0].static_layer.envoy.deprecated_features:envoy.config.trace.v2.ZipkinConfig.HTTP_JSON_V1",
            "static_resources.clusters[0].transport_socket.typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
            "tracing",
        ],
    ),
    (
        "examples--brotli-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--cache-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--cors-backend-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].typed_per_filter_config",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[2].typed_per_filter_config",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].typed_per_filter_config",
        ],
    ),
    (
        "examples--cors-frontend-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    ("examples--csrf-crosssite-envoy.yaml", &[]),
    (
        "examples--csrf-samesite-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].typed_per_filter_config",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[2].typed_per_filter_config",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].typed_per_filter_config",
        ],
    ),
    (
        "examples--datadog-tracing-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--double-proxy-envoy-backend.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename",
        ],
    ),
    (
        "examples--double-proxy-envoy-frontend.yaml",
        &[
            "static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    ("examples--double-proxy-envoy.yaml", &[]),
    (
        "examples--dynamic-config-cp-envoy.yaml",
        &[
            "dynamic_resources",
            "static_resources.clusters[0].typed_extension_protocol_options",
        ],
    ),
    (
        "examples--dynamic-config-fs-envoy.yaml",
        &[
            "dynamic_resources",
        ],
    ),
    (
        "examples--ext_authz-config-grpc-service-v3.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--ext_authz-config-http-service.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--ext_authz-config-opa-service-v3.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--fault-injection-envoy.yaml",
        &[
            "layered_runtime.layers[0].disk_layer",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    ("examples--front-proxy-envoy.yaml", &[]),
    ("examples--front-proxy-service-envoy-2.yaml", &[]),
    ("examples--front-proxy-service-envoy.yaml", &[]),
    (
        "examples--golang-http-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--golang-network-envoy.yaml",
        &[
            "static_resources.clusters[0].type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--grpc-bridge-client-envoy-proxy.yaml",
        &[
            "static_resources.clusters[0].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.add_user_agent",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--grpc-bridge-server-envoy-proxy.yaml",
        &[
            "static_resources.clusters[0].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.grpc",
        ],
    ),
    (
        "examples--gzip-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--jaeger-tracing-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--jaeger-tracing-service1-envoy-jaeger.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[1].traffic_direction",
        ],
    ),
    (
        "examples--jaeger-tracing-service2-envoy-jaeger.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--kafka-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--kafka-mesh-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--load-reporting-service-envoy.yaml",
        &[
            "cluster_manager",
            "static_resources.clusters[1].typed_extension_protocol_options",
        ],
    ),
    (
        "examples--local_ratelimit-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--locality-load-balancing-envoy.yaml",
        &[
            "static_resources.clusters[0].common_lb_config.locality_weighted_lb_config",
            "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config",
            "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.hostname",
            "static_resources.clusters[0].load_assignment.endpoints[0].load_balancing_weight",
            "static_resources.clusters[0].load_assignment.endpoints[0].locality",
            "static_resources.clusters[0].load_assignment.endpoints[0].priority",
            "static_resources.clusters[0].load_assignment.endpoints[1].lb_endpoints[0].endpoint.health_check_config",
            "static_resources.clusters[0].load_assignment.endpoints[1].lb_endpoints[0].endpoint.hostname",
            "static_resources.clusters[0].load_assignment.endpoints[1].load_balancing_weight",
            "static_resources.clusters[0].load_assignment.endpoints[1].locality",
            "static_resources.clusters[0].load_assignment.endpoints[1].priority",
            "static_resources.clusters[0].load_assignment.endpoints[2].lb_endpoints[0].endpoint.health_check_config",
            "static_resources.clusters[0].load_assignment.endpoints[2].lb_endpoints[0].endpoint.hostname",
            "static_resources.clusters[0].load_assignment.endpoints[2].load_balancing_weight",
            "static_resources.clusters[0].load_assignment.endpoints[2].locality",
            "static_resources.clusters[0].load_assignment.endpoints[2].priority",
            "static_resources.clusters[0].load_assignment.endpoints[3].lb_endpoints[0].endpoint.health_check_config",
            "static_resources.clusters[0].load_assignment.endpoints[3].lb_endpoints[0].endpoint.hostname",
            "static_resources.clusters[0].load_assignment.endpoints[3].load_balancing_weight",
            "static_resources.clusters[0].load_assignment.endpoints[3].locality",
            "static_resources.clusters[0].load_assignment.endpoints[3].priority",
        ],
    ),
    (
        "examples--lua-cluster-specifier-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.inline_cluster_specifier_plugin",
        ],
    ),
    (
        "examples--lua-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config",
        ],
    ),
    (
        "examples--mysql-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--opentelemetry-envoy-1.yaml",
        &[
            "static_resources.clusters[2].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[1].traffic_direction",
        ],
    ),
    (
        "examples--opentelemetry-envoy-2.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--opentelemetry-envoy-front-proxy.yaml",
        &[
            "static_resources.clusters[2].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--postgres-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--rbac-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--redis-envoy.yaml",
        &[
            "static_resources.clusters[0].lb_policy",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--route-mirror-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.request_mirror_policies",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].route.request_mirror_policies",
        ],
    ),
    (
        "examples--single-page-app-envoy.yaml",
        &[
            "dynamic_resources",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].access_log",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--skywalking-envoy-1.yaml",
        &[
            "static_resources.clusters[2].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[1].traffic_direction",
        ],
    ),
    (
        "examples--skywalking-envoy-2.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--skywalking-envoy-front-proxy.yaml",
        &[
            "static_resources.clusters[2].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--tls-envoy-http-https.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-http.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-https.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-passthrough.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--tls-inspector-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filter_chain_match.application_protocols",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[1].filter_chain_match",
            "static_resources.listeners[0].filter_chains[1].filter_chain_match.application_protocols",
        ],
    ),
    (
        "examples--tls-sni-envoy-client.yaml",
        &[],
    ),
    (
        "examples--tls-sni-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename",
            "static_resources.listeners[0].filter_chains[1].filters",
            "static_resources.listeners[0].filter_chains[2].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--udp-envoy.yaml",
        &[
            "static_resources.listeners[0].address.socket_address.protocol",
        ],
    ),
    (
        "examples--wasm-cc-envoy.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--websocket-envoy-ws-route.yaml",
        &[],
    ),
    (
        "examples--websocket-envoy-ws.yaml",
        &[],
    ),
    (
        "examples--websocket-envoy-wss-passthrough.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--websocket-envoy-wss.yaml",
        &[],
    ),
    (
        "examples--zipkin-envoy-1.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[1].traffic_direction",
        ],
    ),
    (
        "examples--zipkin-envoy-2.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--zipkin-envoy-front-proxy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].decorator",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing",
            "static_resources.listeners[0].traffic_direction",
        ],
    ),
    (
        "examples--zstd-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envoy-configs")
}

/// Splits `--mode validate`'s stderr into `(path, message)` pairs: one error prints as
/// `PATH: MESSAGE`, several as `N errors:` and one indented error per line.
fn errors(stderr: &str, file: &str) -> Vec<(String, String)> {
    let prefix = format!("baton: configuration '{file}': ");
    let rest = stderr
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{file}: unexpected stderr: {stderr}"));
    let mut lines = rest.lines();
    let first = lines.next().unwrap_or_default();
    let items: Vec<&str> = match first.strip_suffix(" errors:") {
        Some(n) if n.parse::<usize>().is_ok() => lines.map(|l| l.trim_start()).collect(),
        _ => vec![rest],
    };
    items
        .iter()
        .map(|e| match e.split_once(": ") {
            Some((p, m)) => (p.to_string(), m.to_string()),
            None => panic!("{file}: an error without a field path: {e}"),
        })
        .collect()
}

#[test]
fn the_corpus_is_real_configs_with_their_sources() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/envoy-configs")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every corpus file has an expected outcome, and no other"
    );
    assert!(CORPUS.len() >= 30, "{} configs", CORPUS.len());
    for (f, _) in CORPUS {
        let text = std::fs::read_to_string(dir().join(f)).expect("read corpus file");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# source: https://github.com/envoyproxy/"),
            "{f}: first line must give the source URL, got {first:?}"
        );
    }
}

#[test]
fn every_corpus_config_loads_or_is_refused_naming_the_field() {
    let mut changed = Vec::new();
    for (f, expected) in CORPUS {
        let rel = format!("tests/envoy-configs/{f}");
        let path = dir().join(f);
        let (status, out, err) = run_baton(
            &[
                "--mode",
                "validate",
                "-c",
                path.to_str().expect("utf-8 path"),
            ],
            Duration::from_secs(30),
        );
        let got: Vec<(String, String)> = if status.success() {
            assert_eq!(out, format!("configuration '{}' OK\n", path.display()));
            Vec::new()
        } else {
            assert_eq!(status.code(), Some(1), "{rel}: {err}");
            errors(&err, &path.display().to_string())
        };
        for (p, m) in &got {
            assert!(!p.is_empty() && !m.is_empty(), "{rel}: {p:?}: {m:?}");
        }
        let mut paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort();
        if paths != *expected {
            changed.push(format!(
                "{rel}:\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "outcomes changed:\n{}",
        changed.join("\n")
    );
}

/// A corpus config with its socket addresses rewritten for this machine: listeners and the
/// admin on 127.0.0.1 at free ports (returned in order), every cluster endpoint at
/// 127.0.0.1:`upstream`. Nothing else changes.
fn on_loopback(file: &str, upstream: u16) -> (String, Vec<u16>) {
    let text = std::fs::read_to_string(dir().join(file)).expect("read corpus file");
    let mut doc: Value = serde_yaml::from_str(&text).expect("corpus YAML");
    let mut ports = Vec::new();
    let sr = doc.get_mut("static_resources").expect("static_resources");
    for l in sr
        .get_mut("listeners")
        .and_then(Value::as_sequence_mut)
        .expect("listeners")
    {
        let port = free_port();
        set_address(l.get_mut("address").expect("listener address"), port);
        ports.push(port);
    }
    for c in sr
        .get_mut("clusters")
        .and_then(Value::as_sequence_mut)
        .expect("clusters")
    {
        let eps = c
            .get_mut("load_assignment")
            .and_then(|la| la.get_mut("endpoints"))
            .and_then(Value::as_sequence_mut)
            .expect("endpoints");
        for locality in eps {
            for ep in locality
                .get_mut("lb_endpoints")
                .and_then(Value::as_sequence_mut)
                .expect("lb_endpoints")
            {
                let addr = ep
                    .get_mut("endpoint")
                    .and_then(|e| e.get_mut("address"))
                    .expect("endpoint address");
                set_address(addr, upstream);
            }
        }
    }
    if let Some(admin) = doc.get_mut("admin").and_then(|a| a.get_mut("address")) {
        set_address(admin, free_port());
    }
    (serde_yaml::to_string(&doc).expect("YAML"), ports)
}

fn set_address(address: &mut Value, port: u16) {
    let sa = address.get_mut("socket_address").expect("socket_address");
    sa["address"] = Value::from("127.0.0.1");
    sa["port_value"] = Value::from(port);
}

/// One request on a fresh connection.
fn request(port: u16, raw: &str) -> common::Response {
    let mut c = RawConn::connect(port);
    c.send(raw.as_bytes());
    c.expect_response(false)
}

fn loads(file: &str) -> bool {
    CORPUS.iter().any(|(f, e)| *f == file && e.is_empty())
}

#[test]
fn front_proxy_service_envoy_routes_its_prefix_and_404s_the_rest() {
    // envoyproxy/examples front-proxy/service-envoy.yaml: a STRICT_DNS cluster behind one
    // prefix route. Envoy: the prefix is proxied as is, anything else is 404 with no body.
    let file = "examples--front-proxy-service-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service1");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let r = request(
        b.port,
        "GET /service/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/service/1");
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    assert!(seen[0].header("x-request-id").is_some());
    let r = request(
        b.port,
        "GET /service/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    assert_eq!(r.body_str(), "");
    assert_eq!(up.requests(), 1);
}

#[test]
fn front_proxy_envoy_serves_http_and_https_by_prefix() {
    // envoyproxy/examples front-proxy/envoy.yaml: the same routes on a plain listener and on
    // a TLS one (the example's inline certificate), two STRICT_DNS clusters, and a runtime
    // connection limit for a listener name no listener has (it limits nothing, as in Envoy).
    let file = "examples--front-proxy-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let r = request(
        ports[0],
        "GET /service/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let out = common::curl_ok(&["-k", &format!("https://127.0.0.1:{}/service/2", ports[1])]);
    assert_eq!(out, up.greeting());
    let r = request(
        ports[0],
        "GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    let seen = up.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/service/1", "/service/2"]);
    assert_eq!(seen[1].header("x-forwarded-proto"), Some("https"));
}

#[test]
fn double_proxy_envoy_forwards_everything_and_keeps_connections() {
    // envoyproxy/examples double-proxy/envoy.yaml: one catch-all route. Envoy: every path is
    // proxied, and a keep-alive client connection carries several requests.
    let file = "examples--double-proxy-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("app");
    let (yaml, _) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    let mut c = RawConn::connect(b.port);
    for path in ["/", "/a/b?c=d"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes());
        assert_eq!(c.expect_response(false).status(), 200);
    }
    let targets: Vec<String> = up.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/", "/a/b?c=d"]);
    assert_eq!(up.connections(), 1, "the upstream connection is reused");
}

#[test]
fn csrf_crosssite_envoy_logs_each_request_to_stdout_in_envoys_default_format() {
    // envoyproxy/examples csrf/crosssite/envoy.yaml: a stdout access log with no format.
    // Envoy writes its default format: [time] "METHOD PATH PROTOCOL" CODE FLAGS ...
    let file = "examples--csrf-crosssite-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service");
    let (yaml, _) = on_loopback(file, up.port());
    let mut b = Baton::start(&yaml);
    let r = request(
        b.port,
        "GET /csrf/x HTTP/1.1\r\nHost: site\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    assert!(
        b.wait_log("\"GET /csrf/x HTTP/1.1\" 200 - 0 ", Duration::from_secs(10)),
        "{}",
        b.log()
    );
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"GET /csrf/x HTTP/1.1\""))
        .expect("access log line");
    assert!(line.starts_with('['), "{line}");
    assert!(line.contains("\"t/1\""), "{line}");
    assert!(line.contains("\"site\""), "{line}");
    assert!(
        line.ends_with(&format!("\"127.0.0.1:{}\"", up.port())),
        "{line}"
    );
}

/// A WebSocket echo server on loopback for the websocket examples: each connection is
/// handshaken and its text/binary messages echoed until the client closes.
fn ws_echo_server() -> (u16, std::thread::JoinHandle<()>) {
    use baton_bench::wire::Reader;
    use baton_bench::ws;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        // One session per test is all the examples' tests open.
        let Ok((s, _)) = l.accept() else { return };
        let mut r = Reader::new(s);
        let Ok(Some(head)) = r.read_request_head() else {
            return;
        };
        if ws::server_handshake(r.get_mut(), &head).is_err() {
            return;
        }
        while let Ok(Some(f)) = ws::read_frame(&mut r, true) {
            let reply = match f.opcode {
                ws::OP_CLOSE => ws::encode(ws::OP_CLOSE, &f.payload, None),
                op => ws::encode(op, &f.payload, None),
            };
            if std::io::Write::write_all(r.get_mut(), &reply).is_err() || f.opcode == ws::OP_CLOSE {
                return;
            }
        }
    });
    (port, h)
}

/// The websocket examples (`upgrade_configs` on the connection manager, and per route): a
/// real WebSocket handshake through baton gets the upstream's 101 and the session echoes.
#[test]
fn websocket_examples_carry_a_websocket_session() {
    use baton_bench::wire::Reader;
    use baton_bench::ws;
    for file in [
        "examples--websocket-envoy-ws.yaml",
        "examples--websocket-envoy-ws-route.yaml",
    ] {
        assert!(loads(file), "{file}");
        let (up, server) = ws_echo_server();
        let (yaml, _) = on_loopback(file, up);
        let b = Baton::start(&yaml);
        let s = std::net::TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut r = Reader::new(s);
        let mut rng = ws::Rng::new(7);
        ws::client_handshake(&mut r, "app", "/ws", &mut rng).expect("handshake through baton");
        for i in 0..20u32 {
            let msg = format!("message {i} through {file}");
            let frame = ws::encode(
                ws::OP_TEXT,
                msg.as_bytes(),
                Some(rng.next_u32().to_be_bytes()),
            );
            std::io::Write::write_all(r.get_mut(), &frame).expect("write");
            let f = ws::read_frame(&mut r, false)
                .expect("read echo")
                .expect("an echo, not EOF");
            assert_eq!((f.opcode, f.payload), (ws::OP_TEXT, msg.into_bytes()));
        }
        let close = ws::encode(ws::OP_CLOSE, &[3, 232], Some([1, 2, 3, 4]));
        std::io::Write::write_all(r.get_mut(), &close).expect("write close");
        let f = ws::read_frame(&mut r, false)
            .expect("close echo")
            .expect("close");
        assert_eq!(f.opcode, ws::OP_CLOSE);
        server.join().expect("echo server");
    }
}

#[test]
fn tls_https_http_example_terminates_tls_with_envoys_own_certificate() {
    // envoyproxy/examples tls/envoy-https-http.yaml: TLS on the listener with the example's
    // inline (X.509 v1, self-signed) certificate, plain HTTP to the service. curl -k as in the
    // example's own instructions.
    let file = "examples--tls-envoy-https-http.yaml";
    assert!(loads(file));
    let up = Upstream::start("service-http");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let out = common::curl_ok(&["-k", &format!("https://127.0.0.1:{}/", b.port)]);
    assert_eq!(out, up.greeting());
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}
