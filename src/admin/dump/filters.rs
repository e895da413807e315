//! The HTTP filters before the router and the per-route configs of virtual hosts and routes,
//! as Envoy writes them.

use serde_yaml::Value;

use super::{dur, header_matchers, header_options, list, map, n, s, string_match, T};
use crate::config::{
    Compressor, CorsPolicy, CsrfPolicy, Decompressor, ExtAuthz, Fault, FilterPolicy, Fraction,
    HealthCheckFilter, HttpFilter, HttpFilterKind, LocalRateLimit, PerFilterConfig, StringMatch,
};

/// One filter of the chain: its name, `disabled` when set, and its typed config.
pub(super) fn http_filter(f: &HttpFilter) -> Value {
    let config = match &f.kind {
        HttpFilterKind::HealthCheck(hc) => health_check(hc),
        HttpFilterKind::Cors => map(vec![(
            "@type",
            s(&format!("{T}envoy.extensions.filters.http.cors.v3.Cors")),
        )]),
        HttpFilterKind::Csrf(p) => csrf(p),
        HttpFilterKind::LocalRateLimit(l) => local_rate_limit(l),
        HttpFilterKind::Rbac(c) => super::rbac::rbac(c),
        HttpFilterKind::Fault(c) => fault(c),
        HttpFilterKind::Compressor(c) => compressor(c),
        HttpFilterKind::Decompressor(d) => decompressor(d),
        HttpFilterKind::ExtAuthz(c) => ext_authz(c),
    };
    map(vec![
        ("name", s(&f.name)),
        ("typed_config", Some(config)),
        ("disabled", f.disabled.then(|| Value::from(true))),
    ])
}

/// Every setting in the response direction's form (the deprecated top-level fields mean the
/// same).
fn compressor(c: &Compressor) -> Value {
    let g = &c.gzip;
    let level = if g.level < 0 {
        "DEFAULT_COMPRESSION".to_string()
    } else {
        format!("COMPRESSION_LEVEL_{}", g.level)
    };
    let strategy = [
        "DEFAULT_STRATEGY",
        "FILTERED",
        "HUFFMAN_ONLY",
        "RLE",
        "FIXED",
    ]
    .get(usize::from(g.strategy))
    .copied()
    .unwrap_or("DEFAULT_STRATEGY");
    let types = c.content_types.iter().filter_map(|t| s(t)).collect();
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.compressor.v3.Compressor"
            )),
        ),
        (
            "compressor_library",
            Some(map(vec![
                ("name", s(&c.library)),
                (
                    "typed_config",
                    Some(map(vec![
                        (
                            "@type",
                            s(&format!(
                                "{T}envoy.extensions.compression.gzip.compressor.v3.Gzip"
                            )),
                        ),
                        ("compression_level", s(&level)),
                        ("compression_strategy", s(strategy)),
                        ("window_bits", n(g.window_bits)),
                        ("memory_level", n(g.memory_level)),
                        ("chunk_size", n(g.chunk_size)),
                    ])),
                ),
            ])),
        ),
        (
            "response_direction_config",
            Some(map(vec![
                (
                    "common_config",
                    Some(map(vec![
                        (
                            "enabled",
                            Some(map(vec![
                                ("default_value", n(c.enabled)),
                                ("runtime_key", s("compressor_enabled")),
                            ])),
                        ),
                        ("min_content_length", n(c.min_content_length)),
                        ("content_type", list(types)),
                    ])),
                ),
                ("disable_on_etag_header", n(c.disable_on_etag_header)),
                (
                    "remove_accept_encoding_header",
                    n(c.remove_accept_encoding_header),
                ),
            ])),
        ),
        ("choose_first", n(c.choose_first)),
    ])
}

fn decompressor(d: &Decompressor) -> Value {
    let flag = |on: bool| {
        Some(map(vec![
            ("default_value", n(on)),
            ("runtime_key", s("decompressor_enabled")),
        ]))
    };
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.decompressor.v3.Decompressor"
            )),
        ),
        (
            "decompressor_library",
            Some(map(vec![
                ("name", s(&d.library)),
                (
                    "typed_config",
                    Some(map(vec![
                        (
                            "@type",
                            s(&format!(
                                "{T}envoy.extensions.compression.gzip.decompressor.v3.Gzip"
                            )),
                        ),
                        ("window_bits", n(d.window_bits)),
                        ("chunk_size", n(d.chunk_size)),
                        ("max_inflate_ratio", n(d.max_inflate_ratio)),
                    ])),
                ),
            ])),
        ),
        (
            "request_direction_config",
            Some(map(vec![(
                "common_config",
                Some(map(vec![
                    ("enabled", flag(d.request_enabled)),
                    ("ignore_no_transform_header", n(d.ignore_no_transform)),
                ])),
            )])),
        ),
        (
            "response_direction_config",
            Some(map(vec![(
                "common_config",
                Some(map(vec![("enabled", flag(false))])),
            )])),
        ),
    ])
}

fn health_check(hc: &HealthCheckFilter) -> Value {
    let mins = hc
        .cluster_min_healthy_percentages
        .iter()
        .map(|(c, pct)| (c.as_str(), Some(map(vec![("value", n(*pct))]))))
        .collect();
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.health_check.v3.HealthCheck"
            )),
        ),
        ("pass_through_mode", n(hc.pass_through_mode)),
        ("headers", list(header_matchers(&hc.headers))),
        ("cluster_min_healthy_percentages", Some(map(mins))),
    ])
}

fn denominator(d: u32) -> Option<Value> {
    s(match d {
        10_000 => "TEN_THOUSAND",
        1_000_000 => "MILLION",
        _ => "HUNDRED",
    })
}

pub(super) fn fraction(f: &Fraction) -> Value {
    map(vec![(
        "default_value",
        Some(map(vec![
            ("numerator", n(f.numerator)),
            ("denominator", denominator(f.denominator)),
        ])),
    )])
}

fn matchers(list_of: &[StringMatch]) -> Option<Value> {
    list(list_of.iter().map(string_match).collect())
}

fn text(v: &str) -> Option<Value> {
    (!v.is_empty()).then(|| Value::from(v))
}

fn cors(p: &CorsPolicy) -> Value {
    let mut pairs = vec![(
        "@type",
        s(&format!(
            "{T}envoy.extensions.filters.http.cors.v3.CorsPolicy"
        )),
    )];
    pairs.extend(cors_fields(p));
    map(pairs)
}

/// A virtual host's or route's legacy `cors` (the same fields, no type).
pub(super) fn legacy_cors(p: Option<&CorsPolicy>) -> Option<Value> {
    p.map(|p| map(cors_fields(p)))
}

fn cors_fields(p: &CorsPolicy) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("allow_origin_string_match", matchers(&p.allow_origin)),
        ("allow_methods", text(&p.allow_methods)),
        ("allow_headers", text(&p.allow_headers)),
        ("expose_headers", text(&p.expose_headers)),
        ("max_age", text(&p.max_age)),
        ("allow_credentials", p.allow_credentials.map(Value::from)),
        (
            "allow_private_network_access",
            p.allow_private_network_access.map(Value::from),
        ),
        (
            "forward_not_matching_preflights",
            p.forward_not_matching_preflights.map(Value::from),
        ),
        ("filter_enabled", p.filter_enabled.as_ref().map(fraction)),
        ("shadow_enabled", p.shadow_enabled.as_ref().map(fraction)),
    ]
}

fn csrf(p: &CsrfPolicy) -> Value {
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.csrf.v3.CsrfPolicy"
            )),
        ),
        ("filter_enabled", Some(fraction(&p.filter_enabled))),
        ("shadow_enabled", p.shadow_enabled.as_ref().map(fraction)),
        ("additional_origins", matchers(&p.additional_origins)),
    ])
}

fn ext_authz(c: &ExtAuthz) -> Value {
    let patterns =
        |l: &[StringMatch]| (!l.is_empty()).then(|| map(vec![("patterns", matchers(l))]));
    let add = c
        .headers_to_add
        .iter()
        .map(|(k, v)| map(vec![("key", s(k)), ("value", s(v))]))
        .collect();
    let request = map(vec![
        ("allowed_headers", patterns(&c.allowed_headers)),
        ("headers_to_add", list(add)),
    ]);
    let response = map(vec![
        ("allowed_upstream_headers", patterns(&c.upstream_headers)),
        (
            "allowed_upstream_headers_to_append",
            patterns(&c.upstream_headers_to_append),
        ),
        ("allowed_client_headers", patterns(&c.client_headers)),
        (
            "allowed_client_headers_on_success",
            patterns(&c.client_headers_on_success),
        ),
    ]);
    let service = map(vec![
        (
            "server_uri",
            Some(map(vec![
                ("uri", s(&c.uri)),
                ("cluster", s(&c.cluster)),
                ("timeout", super::dur(c.timeout)),
            ])),
        ),
        ("path_prefix", text(&c.path_prefix)),
        ("authorization_request", Some(request)),
        ("authorization_response", Some(response)),
    ]);
    let grpc = c.grpc.as_ref().map(|g| {
        let metadata = g
            .initial_metadata
            .iter()
            .map(|(k, v)| map(vec![("key", s(k)), ("value", s(v))]))
            .collect();
        map(vec![
            (
                "envoy_grpc",
                Some(map(vec![
                    ("cluster_name", s(&c.cluster)),
                    ("authority", text(&g.authority)),
                ])),
            ),
            ("timeout", super::dur(c.timeout)),
            ("initial_metadata", list(metadata)),
        ])
    });
    let (http_service, grpc_service) = match grpc {
        Some(g) => (None, Some(g)),
        None => (Some(service), None),
    };
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
            )),
        ),
        ("http_service", http_service),
        ("grpc_service", grpc_service),
        ("failure_mode_allow", n(c.failure_mode_allow)),
        (
            "failure_mode_allow_header_add",
            c.failure_mode_allow_header_add.then(|| Value::from(true)),
        ),
        (
            "status_on_error",
            Some(map(vec![("code", n(c.status_on_error))])),
        ),
        ("stat_prefix", text(&c.stat_prefix)),
        ("filter_enabled", c.filter_enabled.as_ref().map(fraction)),
        (
            "deny_at_disable",
            c.deny_at_disable
                .then(|| map(vec![("default_value", n(true))])),
        ),
    ])
}

fn fault(c: &Fault) -> Value {
    let abort = c.abort.as_ref().map(|a| {
        let fraction = map(vec![
            ("numerator", n(a.percentage.numerator)),
            ("denominator", denominator(a.percentage.denominator)),
        ]);
        map(vec![
            ("http_status", a.status.and_then(n)),
            ("header_abort", a.status.is_none().then(|| map(Vec::new()))),
            ("percentage", Some(fraction)),
        ])
    });
    // A header delay's duration from the runtime is the runtime's to give again.
    let delay = c.delay.as_ref().map(|d| {
        let fraction = map(vec![
            ("numerator", n(d.percentage.numerator)),
            ("denominator", denominator(d.percentage.denominator)),
        ]);
        map(vec![
            (
                "fixed_delay",
                d.duration.filter(|_| !d.from_header).and_then(dur),
            ),
            ("header_delay", d.from_header.then(|| map(Vec::new()))),
            ("percentage", Some(fraction)),
        ])
    });
    let nodes = c.downstream_nodes.iter().map(|v| Value::from(v.as_str()));
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.fault.v3.HTTPFault"
            )),
        ),
        ("abort", abort),
        ("delay", delay),
        ("headers", list(header_matchers(&c.headers))),
        ("downstream_nodes", list(nodes.collect())),
        ("max_active_faults", c.max_active_faults.and_then(n)),
        (
            "disable_downstream_cluster_stats",
            (!c.downstream_cluster_stats).then(|| Value::from(true)),
        ),
    ])
}

fn local_rate_limit(l: &LocalRateLimit) -> Value {
    let bucket = l.token_bucket.map(|b| {
        map(vec![
            ("max_tokens", n(b.max_tokens)),
            ("tokens_per_fill", n(b.tokens_per_fill)),
            ("fill_interval", dur(b.fill_interval)),
        ])
    });
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
            )),
        ),
        ("stat_prefix", s(&l.stat_prefix)),
        ("status", Some(map(vec![("code", n(l.status))]))),
        ("token_bucket", bucket),
        ("filter_enabled", l.filter_enabled.as_ref().map(fraction)),
        ("filter_enforced", l.filter_enforced.as_ref().map(fraction)),
        (
            "request_headers_to_add_when_not_enforced",
            header_options(&l.request_headers_to_add_when_not_enforced),
        ),
        (
            "response_headers_to_add",
            header_options(&l.response_headers_to_add),
        ),
    ])
}

/// `typed_per_filter_config` (left out when empty): a bare policy, or a `FilterConfig` when
/// the entry disables its filter or carries no policy.
pub(super) fn per_filter(list_of: &[PerFilterConfig]) -> Option<Value> {
    if list_of.is_empty() {
        return None;
    }
    let entries = list_of
        .iter()
        .map(|c| {
            let policy = c.policy.as_ref().map(|p| match p {
                FilterPolicy::Cors(p) => cors(p),
                FilterPolicy::Csrf(p) => csrf(p),
                FilterPolicy::LocalRateLimit(l) => local_rate_limit(l),
                FilterPolicy::Rbac(c) => super::rbac::per_route(c),
                FilterPolicy::Fault(c) => fault(c),
                FilterPolicy::ExtAuthz { disabled } => map(vec![
                    (
                        "@type",
                        s(&format!(
                            "{T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
                        )),
                    ),
                    ("disabled", disabled.then(|| Value::from(true))),
                ]),
            });
            let v = match policy {
                Some(p) if !c.disabled => p,
                p => map(vec![
                    (
                        "@type",
                        s(&format!("{T}envoy.config.route.v3.FilterConfig")),
                    ),
                    ("config", p),
                    ("disabled", c.disabled.then(|| Value::from(true))),
                ]),
            };
            (c.name.as_str(), Some(v))
        })
        .collect();
    Some(map(entries))
}
