//! `envoy.filters.http.ext_authz` with an `http_service` or a `grpc_service` (`envoy_grpc`),
//! and its `ExtAuthzPerRoute`. What a raw HTTP authorization service and a gRPC one need is
//! honoured; Google's gRPC client, the request body, runtime switches, metadata and the rest
//! are refused by path.

use super::de::join_key;
use super::model::*;
use super::raw;
use super::validate::{err, refused_fields};
use super::validate_filters::http_status;
use super::validate_route::{header_name, string_match};
use super::ConfigError;

pub const EXT_AUTHZ_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
pub const EXT_AUTHZ_PER_ROUTE_TYPE: &str =
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

/// The filter's `ExtAuthz`.
pub fn ext_authz(c: raw::ExtAuthz, path: &str) -> Result<ExtAuthz, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let nonempty_list = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|l| !l.is_empty());
    let refused: [(&str, bool, &str); 18] = [
        (
            "with_request_body",
            c.with_request_body.is_some(),
            "sending the request body to the authorization service",
        ),
        (
            "clear_route_cache",
            c.clear_route_cache == Some(true),
            "routing again after the authorization service added headers",
        ),
        (
            "filter_enabled_metadata",
            c.filter_enabled_metadata.is_some(),
            "dynamic metadata",
        ),
        (
            "metadata_context_namespaces",
            nonempty_list(&c.metadata_context_namespaces),
            "metadata (only a gRPC service receives it)",
        ),
        (
            "typed_metadata_context_namespaces",
            nonempty_list(&c.typed_metadata_context_namespaces),
            "metadata (only a gRPC service receives it)",
        ),
        (
            "route_metadata_context_namespaces",
            nonempty_list(&c.route_metadata_context_namespaces),
            "metadata (only a gRPC service receives it)",
        ),
        (
            "route_typed_metadata_context_namespaces",
            nonempty_list(&c.route_typed_metadata_context_namespaces),
            "metadata (only a gRPC service receives it)",
        ),
        (
            "include_peer_certificate",
            c.include_peer_certificate == Some(true),
            "only a gRPC service receives it",
        ),
        (
            "include_tls_session",
            c.include_tls_session == Some(true),
            "only a gRPC service receives it",
        ),
        (
            "validate_mutations",
            c.validate_mutations == Some(true),
            "header mutation checks",
        ),
        (
            "bootstrap_metadata_labels_key",
            c.bootstrap_metadata_labels_key
                .as_deref()
                .is_some_and(|k| !k.is_empty()),
            "bootstrap metadata",
        ),
        (
            "allowed_headers",
            c.allowed_headers.is_some(),
            "the gRPC service's header lists; use http_service.authorization_request",
        ),
        (
            "disallowed_headers",
            c.disallowed_headers.is_some(),
            "the gRPC service's header lists",
        ),
        (
            "charge_cluster_response_stats",
            c.charge_cluster_response_stats.is_some(),
            "cluster response stats of checks",
        ),
        (
            "decoder_header_mutation_rules",
            c.decoder_header_mutation_rules.is_some(),
            "header mutation rules",
        ),
        (
            "enable_dynamic_metadata_ingestion",
            c.enable_dynamic_metadata_ingestion.is_some(),
            "dynamic metadata",
        ),
        (
            "filter_metadata",
            c.filter_metadata.is_some(),
            "dynamic metadata",
        ),
        (
            "emit_filter_state_stats",
            c.emit_filter_state_stats == Some(true),
            "filter state",
        ),
    ];
    if let Some(e) = refused_fields(&refused, path).next() {
        return Err(e);
    }
    // `encode_raw_headers` only changes how a gRPC check request is encoded.
    if c.encode_raw_headers == Some(true) {
        return Err(err(
            p("encode_raw_headers"),
            "not supported by baton (only a gRPC service reads it)",
        ));
    }
    if let Some(v) = &c.transport_api_version {
        const V: &[super::validate::EnumEntry<()>] =
            &[("AUTO", 0, Some(())), ("V2", 1, None), ("V3", 2, Some(()))];
        super::validate::proto_enum(v, &p("transport_api_version"), V)?;
    }
    let filter_enabled = c
        .filter_enabled
        .map(|f| super::validate_filters::fraction(f, &p("filter_enabled")))
        .transpose()?;
    let deny_at_disable = match c.deny_at_disable {
        None => false,
        Some(f) => match f.default_value {
            Some(v) => v,
            None => {
                return Err(err(
                    join_key(&p("deny_at_disable"), "default_value"),
                    "required field is missing",
                ))
            }
        },
    };
    let status_on_error = match c.status_on_error.and_then(|s| s.code) {
        None => 403,
        Some(code) => http_status(&code, &join_key(&p("status_on_error"), "code"))?,
    };
    let common = ExtAuthz {
        uri: String::new(),
        cluster: String::new(),
        timeout: std::time::Duration::ZERO,
        path_prefix: String::new(),
        allowed_headers: Vec::new(),
        headers_to_add: Vec::new(),
        upstream_headers: Vec::new(),
        upstream_headers_to_append: Vec::new(),
        client_headers: Vec::new(),
        client_headers_on_success: Vec::new(),
        failure_mode_allow: c.failure_mode_allow.unwrap_or(false),
        failure_mode_allow_header_add: c.failure_mode_allow_header_add.unwrap_or(false),
        status_on_error,
        stat_prefix: c.stat_prefix.unwrap_or_default(),
        filter_enabled,
        deny_at_disable,
        grpc: None,
    };
    if let Some(g) = c.grpc_service {
        if c.http_service.is_some() {
            return Err(err(
                p("http_service"),
                "only one of grpc_service, http_service may be set",
            ));
        }
        return grpc_service(g, &p("grpc_service"), common);
    }
    let Some(h) = c.http_service else {
        return Err(err(
            p("http_service"),
            "required field is missing (one of grpc_service, http_service)",
        ));
    };
    let hp = p("http_service");
    let q = |k: &str| join_key(&hp, k);
    if h.retry_policy.is_some() {
        return Err(err(
            q("retry_policy"),
            "not supported by baton (retrying checks)",
        ));
    }
    let Some(uri) = h.server_uri else {
        return Err(err(q("server_uri"), "required field is missing"));
    };
    let up = q("server_uri");
    let u = |k: &str| join_key(&up, k);
    let uri_text = match uri.uri {
        Some(t) if !t.is_empty() => t,
        _ => return Err(err(u("uri"), "required field is missing")),
    };
    let cluster = match uri.cluster {
        Some(c) if !c.is_empty() => c,
        _ => return Err(err(u("cluster"), "required field is missing")),
    };
    let Some(timeout) = uri.timeout else {
        return Err(err(u("timeout"), "required field is missing"));
    };
    let list = |l: Option<raw::ListStringMatcher>, at: String| -> Result<_, ConfigError> {
        let mut out = Vec::new();
        for (i, m) in l
            .map(|l| l.patterns)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let mut m = string_match(m, &format!("{at}.patterns[{i}]"))?;
            // Envoy matches header names without regard to case (but a regex as written).
            m.ignore_case = !matches!(m.kind, StringMatchKind::SafeRegex(_));
            out.push(m);
        }
        Ok(out)
    };
    let (allowed_headers, headers_to_add) = match h.authorization_request {
        None => (Vec::new(), Vec::new()),
        Some(r) => {
            let rp = q("authorization_request");
            let allowed = list(r.allowed_headers, join_key(&rp, "allowed_headers"))?;
            let mut add = Vec::new();
            for (i, hv) in r.headers_to_add.into_iter().enumerate() {
                let at = format!("{}[{i}]", join_key(&rp, "headers_to_add"));
                let name = header_name(&hv.key, &join_key(&at, "key"), false)?;
                // The check request's own framing and Host.
                if crate::http::codec::is_hop_by_hop(&name) || name == "host" {
                    return Err(err(
                        join_key(&at, "key"),
                        format!("\"{name}\" belongs to the check request itself"),
                    ));
                }
                if hv.value.contains(['\r', '\n', '\0']) {
                    return Err(err(
                        join_key(&at, "value"),
                        "must not contain CR, LF or NUL",
                    ));
                }
                add.push((name, hv.value));
            }
            (allowed, add)
        }
    };
    let mut upstream_headers = Vec::new();
    let mut upstream_headers_to_append = Vec::new();
    let mut client_headers = Vec::new();
    let mut client_headers_on_success = Vec::new();
    if let Some(r) = h.authorization_response {
        let rp = q("authorization_response");
        let a = |k: &str| join_key(&rp, k);
        if r.dynamic_metadata_from_headers.is_some() {
            return Err(err(
                a("dynamic_metadata_from_headers"),
                "not supported by baton (dynamic metadata)",
            ));
        }
        upstream_headers = list(r.allowed_upstream_headers, a("allowed_upstream_headers"))?;
        upstream_headers_to_append = list(
            r.allowed_upstream_headers_to_append,
            a("allowed_upstream_headers_to_append"),
        )?;
        client_headers = list(r.allowed_client_headers, a("allowed_client_headers"))?;
        client_headers_on_success = list(
            r.allowed_client_headers_on_success,
            a("allowed_client_headers_on_success"),
        )?;
    }
    Ok(ExtAuthz {
        uri: uri_text,
        cluster,
        timeout: timeout.0,
        path_prefix: h.path_prefix.unwrap_or_default(),
        allowed_headers,
        headers_to_add,
        upstream_headers,
        upstream_headers_to_append,
        client_headers,
        client_headers_on_success,
        ..common
    })
}

/// A `grpc_service`: Envoy's own gRPC client (`envoy_grpc`) to a cluster, its `timeout` and
/// `initial_metadata`; Google's client and retries are refused.
fn grpc_service(g: raw::GrpcService, at: &str, common: ExtAuthz) -> Result<ExtAuthz, ConfigError> {
    let p = |k: &str| join_key(at, k);
    if g.google_grpc.is_some() {
        return Err(err(
            p("google_grpc"),
            "not supported by baton (Google's gRPC client; use envoy_grpc)",
        ));
    }
    if g.retry_policy.is_some() {
        return Err(err(
            p("retry_policy"),
            "not supported by baton (retrying checks)",
        ));
    }
    let Some(e) = g.envoy_grpc else {
        return Err(err(
            p("envoy_grpc"),
            "required field is missing (one of envoy_grpc, google_grpc; baton supports envoy_grpc)",
        ));
    };
    let ep = p("envoy_grpc");
    let q = |k: &str| join_key(&ep, k);
    let refused = [
        ("retry_policy", e.retry_policy.is_some(), "retrying checks"),
        (
            "max_receive_message_length",
            e.max_receive_message_length.is_some(),
            "a configured message size limit; baton reads at most 256 KiB",
        ),
        (
            "skip_envoy_headers",
            e.skip_envoy_headers.is_some(),
            "Envoy's x-envoy-* headers on calls",
        ),
    ];
    if let Some(e) = refused_fields(&refused, &ep).next() {
        return Err(e);
    }
    let cluster = match e.cluster_name {
        Some(c) if !c.is_empty() => c,
        _ => return Err(err(q("cluster_name"), "required field is missing")),
    };
    let authority = e.authority.unwrap_or_default();
    if authority.contains(['\r', '\n', '\0']) {
        return Err(err(q("authority"), "must not contain CR, LF or NUL"));
    }
    let mut initial_metadata = Vec::new();
    for (i, hv) in g.initial_metadata.into_iter().enumerate() {
        let at = format!("{}[{i}]", p("initial_metadata"));
        let name = header_name(&hv.key, &join_key(&at, "key"), false)?;
        // The call's own: content type, deadline, trailers.
        if matches!(name.as_str(), "content-type" | "te" | "grpc-timeout") {
            return Err(err(
                join_key(&at, "key"),
                format!("\"{name}\" belongs to the gRPC call itself"),
            ));
        }
        if hv.value.contains(['\r', '\n', '\0']) {
            return Err(err(
                join_key(&at, "value"),
                "must not contain CR, LF or NUL",
            ));
        }
        initial_metadata.push((name, hv.value));
    }
    Ok(ExtAuthz {
        cluster,
        // Envoy's ext_authz `DefaultTimeout` when the service gives none.
        timeout: g
            .timeout
            .map_or(std::time::Duration::from_millis(200), |t| t.0),
        grpc: Some(GrpcService {
            authority,
            initial_metadata,
        }),
        ..common
    })
}

/// A route's `ExtAuthzPerRoute`: `disabled`; `check_settings` only when empty.
pub fn ext_authz_per_route(
    c: raw::ExtAuthzPerRoute,
    path: &str,
) -> Result<FilterPolicy, ConfigError> {
    let empty = match &c.check_settings {
        None | Some(serde_yaml::Value::Null) => true,
        Some(serde_yaml::Value::Mapping(m)) => m.is_empty(),
        Some(_) => false,
    };
    if !empty {
        return Err(err(
            join_key(path, "check_settings"),
            "not supported by baton (context extensions and the request body settings of a \
             route; only an empty check_settings)",
        ));
    }
    if c.disabled.is_some() && c.check_settings.is_some() {
        return Err(err(path, "only one of disabled, check_settings may be set"));
    }
    Ok(FilterPolicy::ExtAuthz {
        disabled: c.disabled.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<ExtAuthz, ConfigError> {
        let v: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|e| err("x", e.to_string()))?;
        ext_authz(super::super::de::from_value(&v, "f")?, "f")
    }

    #[test]
    fn defaults_and_refusals() {
        let c = load(
            "http_service: {server_uri: {uri: x, cluster: authz, timeout: 0.25s}, \
             authorization_response: {allowed_upstream_headers: {patterns: [{exact: X-User}]}}}",
        )
        .unwrap();
        assert_eq!(c.status_on_error, 403);
        assert_eq!(c.timeout, std::time::Duration::from_millis(250));
        assert!(c.upstream_headers[0].ignore_case);
        let g = load(
            "grpc_service: {envoy_grpc: {cluster_name: authz}, \
             initial_metadata: [{key: X-Tenant, value: t}]}",
        )
        .unwrap();
        assert_eq!(g.timeout, std::time::Duration::from_millis(200));
        assert_eq!(g.cluster, "authz");
        let grpc = g.grpc.unwrap();
        assert_eq!(grpc.initial_metadata, [("x-tenant".into(), "t".into())]);
        for (yaml, at) in [
            (
                "grpc_service: {google_grpc: {}}",
                "f.grpc_service.google_grpc",
            ),
            ("grpc_service: {}", "f.grpc_service.envoy_grpc"),
            (
                "grpc_service: {envoy_grpc: {cluster_name: a}}\nhttp_service: {}",
                "f.http_service",
            ),
            (
                "grpc_service: {envoy_grpc: {cluster_name: a, retry_policy: {}}}",
                "f.grpc_service.envoy_grpc.retry_policy",
            ),
            (
                "http_service: {server_uri: {uri: x, cluster: a}}",
                "f.http_service.server_uri.timeout",
            ),
            (
                "http_service: {server_uri: {uri: x, cluster: a, timeout: 1s}}\nwith_request_body: {}",
                "f.with_request_body",
            ),
            ("{}", "f.http_service"),
        ] {
            let e = load(yaml).unwrap_err();
            assert!(e.to_string().contains(at), "{yaml}: {e}");
        }
    }
}
