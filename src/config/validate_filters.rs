//! The connection manager's HTTP filters (the chain before the router) and the per-route
//! configs of those filters (`typed_per_filter_config` of virtual hosts and routes).

use serde_yaml::Value;

use super::de::{from_value, join_key};
use super::model::*;
use super::raw;
use super::validate::{enum_or, err, extension_kind, typed_payload, EnumEntry};
use super::validate_compress::{compressor, decompressor, COMPRESSOR_TYPE, DECOMPRESSOR_TYPE};
use super::validate_ext_authz::{
    ext_authz, ext_authz_per_route, EXT_AUTHZ_PER_ROUTE_TYPE, EXT_AUTHZ_TYPE,
};
use super::validate_fault::{fault, FAULT_TYPE};
use super::validate_local_reply::{uint32, DENOMINATORS};
use super::validate_rbac::{rbac, rbac_per_route, RBAC_PER_ROUTE_TYPE, RBAC_TYPE};
use super::{validate_route, ConfigError};

pub const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";
pub const HEALTH_CHECK_TYPE: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";
pub const CORS_TYPE: &str = "envoy.extensions.filters.http.cors.v3.Cors";
pub const CORS_POLICY_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
pub const CSRF_TYPE: &str = "envoy.extensions.filters.http.csrf.v3.CsrfPolicy";
pub const LOCAL_RATE_LIMIT_TYPE: &str =
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";
/// The HTTP filters baton has.
pub const HTTP_FILTERS: &[&str] = &[
    HEALTH_CHECK_TYPE,
    CORS_TYPE,
    CSRF_TYPE,
    LOCAL_RATE_LIMIT_TYPE,
    RBAC_TYPE,
    FAULT_TYPE,
    COMPRESSOR_TYPE,
    DECOMPRESSOR_TYPE,
    EXT_AUTHZ_TYPE,
    ROUTER_TYPE,
];
/// The per-route config types baton reads (besides the `FilterConfig` wrapper).
const PER_ROUTE_TYPES: &[&str] = &[
    CORS_POLICY_TYPE,
    CSRF_TYPE,
    LOCAL_RATE_LIMIT_TYPE,
    RBAC_PER_ROUTE_TYPE,
    FAULT_TYPE,
    EXT_AUTHZ_PER_ROUTE_TYPE,
];

/// The HTTP filters: the router last, and before it the others in order.
pub fn http_filters(
    filters: &[raw::HttpFilter],
    path: &str,
) -> Result<Vec<HttpFilter>, ConfigError> {
    let Some((router, before)) = filters.split_last() else {
        return Err(err(
            path,
            "the router filter (envoy.filters.http.router) is required",
        ));
    };
    let mut out: Vec<HttpFilter> = Vec::new();
    for (i, f) in before.iter().enumerate() {
        let fpath = format!("{path}[{i}]");
        let ext = as_extension(f);
        let ty = match extension_kind(&ext, &fpath, "HTTP filter", HTTP_FILTERS) {
            Ok(t) => t,
            // Envoy leaves out an optional filter it does not have; said loudly, as the filter
            // may be one the operator relies on (an authorization filter).
            Err(e) if f.is_optional == Some(true) && names_a_type(f) => {
                log::warn!(
                    "{fpath}: an optional HTTP filter baton does not have is left out ({e})"
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        if ty == ROUTER_TYPE {
            return Err(err(
                fpath,
                "the router filter must be the last HTTP filter, and only once",
            ));
        }
        let tpath = format!("{fpath}.typed_config");
        let kind = match ty {
            HEALTH_CHECK_TYPE => {
                if out
                    .iter()
                    .any(|o| matches!(o.kind, HttpFilterKind::HealthCheck(_)))
                {
                    return Err(err(
                        fpath,
                        "only one health check filter per connection manager",
                    ));
                }
                HttpFilterKind::HealthCheck(health_check_filter(f, &fpath)?)
            }
            CORS_TYPE => {
                if let Some(v) = typed_payload(&f.typed_config, &tpath, CORS_TYPE)? {
                    let _: raw::Cors = from_value(&v, &tpath)?;
                }
                HttpFilterKind::Cors
            }
            LOCAL_RATE_LIMIT_TYPE => {
                let Some(v) = typed_payload(&f.typed_config, &tpath, LOCAL_RATE_LIMIT_TYPE)? else {
                    return Err(err(
                        join_key(&tpath, "stat_prefix"),
                        "required field is missing",
                    ));
                };
                HttpFilterKind::LocalRateLimit(local_rate_limit(
                    from_value(&v, &tpath)?,
                    &tpath,
                    false,
                )?)
            }
            FAULT_TYPE => {
                let v = typed_payload(&f.typed_config, &tpath, FAULT_TYPE)?;
                let v = v.unwrap_or_else(empty_map);
                HttpFilterKind::Fault(fault(from_value(&v, &tpath)?, &tpath)?)
            }
            COMPRESSOR_TYPE | DECOMPRESSOR_TYPE => {
                // Envoy registers every compressor of a chain and lets the first that the
                // client's Accept-Encoding picks compress; baton has one library (gzip), so a
                // second filter of a kind could only compete with the first: one of each.
                let compress = ty == COMPRESSOR_TYPE;
                let same = |o: &HttpFilter| match o.kind {
                    HttpFilterKind::Compressor(_) => compress,
                    HttpFilterKind::Decompressor(_) => !compress,
                    _ => false,
                };
                if out.iter().any(same) {
                    return Err(err(
                        fpath,
                        "only one compressor and one decompressor filter per connection manager",
                    ));
                }
                let Some(v) = typed_payload(&f.typed_config, &tpath, ty)? else {
                    let field = if compress {
                        "compressor_library"
                    } else {
                        "decompressor_library"
                    };
                    return Err(err(join_key(&tpath, field), "required field is missing"));
                };
                if compress {
                    HttpFilterKind::Compressor(compressor(from_value(&v, &tpath)?, &tpath)?)
                } else {
                    HttpFilterKind::Decompressor(decompressor(from_value(&v, &tpath)?, &tpath)?)
                }
            }
            EXT_AUTHZ_TYPE => {
                let v = typed_payload(&f.typed_config, &tpath, EXT_AUTHZ_TYPE)?;
                let v = v.unwrap_or_else(empty_map);
                HttpFilterKind::ExtAuthz(Box::new(ext_authz(from_value(&v, &tpath)?, &tpath)?))
            }
            RBAC_TYPE => {
                let v = typed_payload(&f.typed_config, &tpath, RBAC_TYPE)?;
                let v = v.unwrap_or_else(empty_map);
                HttpFilterKind::Rbac(rbac(from_value(&v, &tpath)?, &tpath, false)?)
            }
            _ => {
                let Some(v) = typed_payload(&f.typed_config, &tpath, CSRF_TYPE)? else {
                    return Err(err(
                        join_key(&tpath, "filter_enabled"),
                        "required field is missing",
                    ));
                };
                HttpFilterKind::Csrf(csrf_policy(from_value(&v, &tpath)?, &tpath)?)
            }
        };
        if out.iter().any(|o| o.name == f.name) {
            return Err(err(
                join_key(&fpath, "name"),
                format!("duplicate HTTP filter name \"{}\"", f.name),
            ));
        }
        out.push(HttpFilter {
            name: f.name.clone(),
            disabled: f.disabled.unwrap_or(false),
            kind,
        });
    }
    let fpath = format!("{path}[{}]", before.len());
    if extension_kind(&as_extension(router), &fpath, "HTTP filter", HTTP_FILTERS)? != ROUTER_TYPE {
        return Err(err(
            fpath,
            "the last HTTP filter must be the router (envoy.filters.http.router)",
        ));
    }
    if router.disabled == Some(true) {
        return Err(err(
            join_key(&fpath, "disabled"),
            "the router (the terminal filter) cannot be disabled",
        ));
    }
    let tpath = format!("{fpath}.typed_config");
    if let Some(v) = typed_payload(&router.typed_config, &tpath, ROUTER_TYPE)? {
        let _: raw::Router = from_value(&v, &tpath)?;
    }
    Ok(out)
}

/// An HTTP filter as the shared extension reader sees it (HTTP filters have no `filter`).
fn as_extension(f: &raw::HttpFilter) -> raw::TypedExtension {
    raw::TypedExtension {
        name: f.name.clone(),
        typed_config: f.typed_config.clone(),
        filter: None,
    }
}

/// Whether the entry says which type it is (a type URL), so that an optional filter of a type
/// baton lacks can be left out; a malformed entry is still an error.
fn names_a_type(f: &raw::HttpFilter) -> bool {
    match &f.typed_config {
        Some(Value::Mapping(m)) => matches!(m.get("@type"), Some(Value::String(_))),
        _ => false,
    }
}

/// `envoy.filters.http.health_check`: `pass_through_mode` (required), `headers`,
/// `cluster_min_healthy_percentages`; `cache_time` is refused.
fn health_check_filter(f: &raw::HttpFilter, path: &str) -> Result<HealthCheckFilter, ConfigError> {
    let tpath = format!("{path}.typed_config");
    let Some(v) = typed_payload(&f.typed_config, &tpath, HEALTH_CHECK_TYPE)? else {
        return Err(err(
            join_key(&tpath, "pass_through_mode"),
            "required field is missing",
        ));
    };
    let h: raw::HealthCheck = from_value(&v, &tpath)?;
    let p = |k: &str| join_key(&tpath, k);
    let Some(pass_through_mode) = h.pass_through_mode else {
        return Err(err(p("pass_through_mode"), "required field is missing"));
    };
    if h.cache_time.is_some() {
        return Err(err(
            p("cache_time"),
            "not supported by baton (caching pass-through health check answers)",
        ));
    }
    if pass_through_mode && !h.cluster_min_healthy_percentages.is_empty() {
        // Envoy reads them only when it answers itself.
        return Err(err(
            p("cluster_min_healthy_percentages"),
            "applies only without pass_through_mode",
        ));
    }
    let mut headers = Vec::new();
    for (i, m) in h.headers.into_iter().enumerate() {
        headers.push(validate_route::header_matcher(
            m,
            &format!("{}[{i}]", p("headers")),
        )?);
    }
    let mut mins = Vec::new();
    for (name, pct) in h.cluster_min_healthy_percentages {
        if !(0.0..=100.0).contains(&pct.value) {
            return Err(err(
                join_key(
                    &join_key(&p("cluster_min_healthy_percentages"), &name),
                    "value",
                ),
                format!("{} out of range (0..=100)", pct.value),
            ));
        }
        mins.push((name, pct.value));
    }
    Ok(HealthCheckFilter {
        pass_through_mode,
        headers,
        cluster_min_healthy_percentages: mins,
    })
}

/// A `RuntimeFractionalPercent`: its `default_value` (required, as in Envoy). The
/// `runtime_key` is accepted: baton's runtime refuses every key it does not implement, so no
/// layer can set it and the default is the value, as it is in Envoy for a key nothing sets.
pub fn fraction(f: raw::RuntimeFractionalPercent, path: &str) -> Result<Fraction, ConfigError> {
    let dpath = join_key(path, "default_value");
    let Some(d) = f.default_value else {
        return Err(err(dpath, "required field is missing"));
    };
    fractional_percent(d, &dpath)
}

/// A `FractionalPercent`: `numerator` (default 0) out of `denominator` (default `HUNDRED`).
pub(super) fn fractional_percent(
    d: raw::FractionalPercent,
    path: &str,
) -> Result<Fraction, ConfigError> {
    Ok(Fraction {
        numerator: uint32(d.numerator, &join_key(path, "numerator"))?,
        denominator: enum_or(
            &d.denominator,
            &join_key(path, "denominator"),
            DENOMINATORS,
            100,
        )?,
    })
}

fn origins(list: Vec<raw::StringMatcher>, path: &str) -> Result<Vec<StringMatch>, ConfigError> {
    list.into_iter()
        .enumerate()
        .map(|(i, m)| validate_route::string_match(m, &format!("{path}[{i}]")))
        .collect()
}

/// `header` values must be sendable as they are.
fn header_text(v: String, path: &str) -> Result<String, ConfigError> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(err(path, "must not contain CR, LF or NUL"));
    }
    Ok(v)
}

pub fn cors_policy(c: raw::CorsPolicy, path: &str) -> Result<CorsPolicy, ConfigError> {
    let p = |k: &str| join_key(path, k);
    Ok(CorsPolicy {
        allow_origin: origins(c.allow_origin_string_match, &p("allow_origin_string_match"))?,
        allow_methods: header_text(c.allow_methods, &p("allow_methods"))?,
        allow_headers: header_text(c.allow_headers, &p("allow_headers"))?,
        expose_headers: header_text(c.expose_headers, &p("expose_headers"))?,
        max_age: header_text(c.max_age, &p("max_age"))?,
        allow_credentials: c.allow_credentials,
        allow_private_network_access: c.allow_private_network_access,
        forward_not_matching_preflights: c.forward_not_matching_preflights,
        filter_enabled: c
            .filter_enabled
            .map(|f| fraction(f, &p("filter_enabled")))
            .transpose()?,
        shadow_enabled: c
            .shadow_enabled
            .map(|f| fraction(f, &p("shadow_enabled")))
            .transpose()?,
    })
}

fn csrf_policy(c: raw::CsrfPolicy, path: &str) -> Result<CsrfPolicy, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let Some(enabled) = c.filter_enabled else {
        return Err(err(p("filter_enabled"), "required field is missing"));
    };
    Ok(CsrfPolicy {
        filter_enabled: fraction(enabled, &p("filter_enabled"))?,
        shadow_enabled: c
            .shadow_enabled
            .map(|f| fraction(f, &p("shadow_enabled")))
            .transpose()?,
        additional_origins: origins(c.additional_origins, &p("additional_origins"))?,
    })
}

/// The `@type` of a per-route config (the part after the last `/`).
fn type_of<'a>(v: &'a Value, path: &str) -> Result<&'a str, ConfigError> {
    let tpath = join_key(path, "@type");
    match v {
        Value::Mapping(m) => match m.get("@type") {
            Some(Value::String(url)) => Ok(url.rsplit('/').next().unwrap_or_default()),
            Some(_) => Err(err(tpath, "expected a type URL string")),
            None => Err(err(tpath, "required field is missing")),
        },
        _ => Err(err(path, "expected a map with an \"@type\"")),
    }
}

/// One policy of a type baton reads; `Ok(None)` for a type it does not know when `optional`
/// (Envoy's `is_optional`: such a config is left out).
fn policy(v: &Value, path: &str, optional: bool) -> Result<Option<FilterPolicy>, ConfigError> {
    let ty = type_of(v, path)?;
    match ty {
        CORS_POLICY_TYPE => {
            let c =
                typed_payload(&Some(v.clone()), path, CORS_POLICY_TYPE)?.unwrap_or_else(empty_map);
            Ok(Some(FilterPolicy::Cors(cors_policy(
                from_value(&c, path)?,
                path,
            )?)))
        }
        CSRF_TYPE => {
            let c = typed_payload(&Some(v.clone()), path, CSRF_TYPE)?.unwrap_or_else(empty_map);
            Ok(Some(FilterPolicy::Csrf(csrf_policy(
                from_value(&c, path)?,
                path,
            )?)))
        }
        LOCAL_RATE_LIMIT_TYPE => {
            let c = typed_payload(&Some(v.clone()), path, LOCAL_RATE_LIMIT_TYPE)?
                .unwrap_or_else(empty_map);
            Ok(Some(FilterPolicy::LocalRateLimit(local_rate_limit(
                from_value(&c, path)?,
                path,
                true,
            )?)))
        }
        RBAC_PER_ROUTE_TYPE => {
            let c = typed_payload(&Some(v.clone()), path, RBAC_PER_ROUTE_TYPE)?
                .unwrap_or_else(empty_map);
            Ok(Some(FilterPolicy::Rbac(rbac_per_route(&c, path)?)))
        }
        FAULT_TYPE => {
            let c = typed_payload(&Some(v.clone()), path, FAULT_TYPE)?.unwrap_or_else(empty_map);
            Ok(Some(FilterPolicy::Fault(fault(
                from_value(&c, path)?,
                path,
            )?)))
        }
        EXT_AUTHZ_PER_ROUTE_TYPE => {
            let c = typed_payload(&Some(v.clone()), path, EXT_AUTHZ_PER_ROUTE_TYPE)?
                .unwrap_or_else(empty_map);
            Ok(Some(ext_authz_per_route(from_value(&c, path)?, path)?))
        }
        _ if optional => Ok(None),
        _ => Err(err(
            join_key(path, "@type"),
            format!(
                "per-route config type \"{ty}\" is not supported by baton (supported: {}, \
                 {FILTER_CONFIG_TYPE})",
                PER_ROUTE_TYPES.join(", ")
            ),
        )),
    }
}

/// `typed_per_filter_config`: filter name → a policy, or a `FilterConfig` wrapping one
/// (`disabled`, `is_optional`, `config`).
pub fn per_filter_configs(
    v: Option<Value>,
    path: &str,
) -> Result<Vec<PerFilterConfig>, ConfigError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(err(path, "expected a map of filter names to configs")),
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Value::String(name) = k else {
            return Err(err(path, "filter names must be strings"));
        };
        let epath = join_key(path, &name);
        if type_of(&v, &epath)? != FILTER_CONFIG_TYPE {
            if let Some(p) = policy(&v, &epath, false)? {
                out.push(PerFilterConfig {
                    name,
                    disabled: false,
                    policy: Some(p),
                });
            }
            continue;
        }
        let body = typed_payload(&Some(v), &epath, FILTER_CONFIG_TYPE)?.unwrap_or_else(empty_map);
        let fc: raw::FilterConfig = from_value(&body, &epath)?;
        let optional = fc.is_optional.unwrap_or(false);
        let disabled = fc.disabled.unwrap_or(false);
        let policy = match &fc.config {
            None | Some(Value::Null) => None,
            Some(c) => match policy(c, &join_key(&epath, "config"), optional)? {
                Some(p) => Some(p),
                // An optional config of a type baton does not have: left out, as in Envoy.
                None => {
                    log::warn!(
                        "{epath}: an optional per-route config baton does not have is left out"
                    );
                    continue;
                }
            },
        };
        out.push(PerFilterConfig {
            name,
            disabled,
            policy,
        });
    }
    Ok(out)
}

/// Each per-route config names a filter of this connection manager and fits its kind.
pub fn check_per_filter(
    rc: &RouteConfig,
    filters: &[HttpFilter],
    rc_path: &str,
) -> Result<(), ConfigError> {
    let check = |list: &[PerFilterConfig], path: &str| -> Result<(), ConfigError> {
        for c in list {
            let at = join_key(&join_key(path, "typed_per_filter_config"), &c.name);
            let Some(f) = filters.iter().find(|f| f.name == c.name) else {
                let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
                return Err(err(
                    at,
                    format!(
                        "no HTTP filter of this connection manager is named \"{}\" (filters \
                         before the router: {})",
                        c.name,
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            };
            let fits = matches!(
                (&c.policy, &f.kind),
                (None, _)
                    | (Some(FilterPolicy::Cors(_)), HttpFilterKind::Cors)
                    | (Some(FilterPolicy::Csrf(_)), HttpFilterKind::Csrf(_))
                    | (
                        Some(FilterPolicy::LocalRateLimit(_)),
                        HttpFilterKind::LocalRateLimit(_)
                    )
                    | (Some(FilterPolicy::Rbac(_)), HttpFilterKind::Rbac(_))
                    | (Some(FilterPolicy::Fault(_)), HttpFilterKind::Fault(_))
                    | (
                        Some(FilterPolicy::ExtAuthz { .. }),
                        HttpFilterKind::ExtAuthz(_)
                    )
            );
            if !fits {
                return Err(err(
                    at,
                    format!(
                        "this config's type does not belong to filter \"{}\" ({})",
                        c.name,
                        kind_name(&f.kind)
                    ),
                ));
            }
        }
        Ok(())
    };
    // The legacy `cors` field only means something to a CORS filter.
    let has_cors = filters.iter().any(|f| f.kind == HttpFilterKind::Cors);
    let legacy = |set: bool, path: String| {
        if set && !has_cors {
            return Err(err(
                path,
                "no CORS filter (envoy.filters.http.cors) in http_filters reads this policy",
            ));
        }
        Ok(())
    };
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vpath = format!("{rc_path}.virtual_hosts[{i}]");
        check(&vh.filter_configs, &vpath)?;
        legacy(vh.cors.is_some(), join_key(&vpath, "cors"))?;
        for (j, r) in vh.routes.iter().enumerate() {
            let rpath = format!("{vpath}.routes[{j}]");
            check(&r.filter_configs, &rpath)?;
            if let RouteAction::Forward(f) = &r.action {
                legacy(f.cors.is_some(), format!("{rpath}.route.cors"))?;
            }
        }
    }
    Ok(())
}

fn kind_name(k: &HttpFilterKind) -> &'static str {
    match k {
        HttpFilterKind::HealthCheck(_) => HEALTH_CHECK_TYPE,
        HttpFilterKind::Cors => CORS_TYPE,
        HttpFilterKind::Csrf(_) => CSRF_TYPE,
        HttpFilterKind::LocalRateLimit(_) => LOCAL_RATE_LIMIT_TYPE,
        HttpFilterKind::Rbac(_) => RBAC_TYPE,
        HttpFilterKind::Fault(_) => FAULT_TYPE,
        HttpFilterKind::Compressor(_) => COMPRESSOR_TYPE,
        HttpFilterKind::Decompressor(_) => DECOMPRESSOR_TYPE,
        HttpFilterKind::ExtAuthz(_) => EXT_AUTHZ_TYPE,
    }
}

fn empty_map() -> Value {
    Value::Mapping(Default::default())
}

/// Envoy's status names for `HttpStatus.code` that a refusal is likely to use.
const STATUS_NAMES: &[EnumEntry<u16>] = &[
    ("BadRequest", 400, Some(400)),
    ("Unauthorized", 401, Some(401)),
    ("Forbidden", 403, Some(403)),
    ("NotFound", 404, Some(404)),
    ("TooManyRequests", 429, Some(429)),
    ("InternalServerError", 500, Some(500)),
    ("ServiceUnavailable", 503, Some(503)),
];

/// An `HttpStatus.code`: a number or one of Envoy's names, an HTTP status (100..=599).
pub(super) fn http_status(code: &raw::EnumValue, cpath: &str) -> Result<u16, ConfigError> {
    let n = match code {
        raw::EnumValue::Number(n) => *n,
        raw::EnumValue::Name(_) => {
            i64::from(super::validate::proto_enum(code, cpath, STATUS_NAMES)?)
        }
    };
    match u16::try_from(n) {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(err(cpath, format!("{n} is not an HTTP status"))),
    }
}

/// `LocalRateLimit` (`per_route`: a virtual host's or route's, which needs its token bucket).
/// What baton does not implement is refused by path: descriptors and the fields that only
/// matter with them, per-connection buckets, the `x-ratelimit-*` headers, gRPC statuses.
fn local_rate_limit(
    c: raw::LocalRateLimit,
    path: &str,
    per_route: bool,
) -> Result<LocalRateLimit, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let refused: [(&str, bool, &str); 9] = [
        (
            "descriptors",
            !c.descriptors.is_empty(),
            "rate limit descriptors",
        ),
        (
            "rate_limits",
            !c.rate_limits.is_empty(),
            "rate limit descriptors",
        ),
        (
            "stage",
            c.stage.is_some_and(|s| s != 0),
            "rate limit descriptors",
        ),
        (
            "vh_rate_limits",
            c.vh_rate_limits.is_some(),
            "rate limit descriptors",
        ),
        (
            "always_consume_default_token_bucket",
            c.always_consume_default_token_bucket.is_some(),
            "rate limit descriptors",
        ),
        (
            "max_dynamic_descriptors",
            c.max_dynamic_descriptors.is_some(),
            "rate limit descriptors",
        ),
        (
            "local_rate_limit_per_downstream_connection",
            c.local_rate_limit_per_downstream_connection == Some(true),
            "a token bucket per downstream connection",
        ),
        (
            "rate_limited_as_resource_exhausted",
            c.rate_limited_as_resource_exhausted == Some(true),
            "gRPC",
        ),
        (
            "local_cluster_rate_limit",
            c.local_cluster_rate_limit.is_some(),
            "sharing the limit across a local cluster",
        ),
    ];
    if let Some(e) = super::validate::refused_fields(&refused, path).next() {
        return Err(e);
    }
    if let Some(x) = &c.enable_x_ratelimit_headers {
        const X: &[EnumEntry<()>] = &[("OFF", 0, Some(())), ("DRAFT_VERSION_03", 1, None)];
        super::validate::proto_enum(x, &p("enable_x_ratelimit_headers"), X)?;
    }
    let stat_prefix = c.stat_prefix.unwrap_or_default();
    if stat_prefix.is_empty() {
        return Err(err(p("stat_prefix"), "required field is missing"));
    }
    let status = match c.status.and_then(|s| s.code) {
        None => 429,
        Some(code) => {
            let n = http_status(&code, &join_key(&p("status"), "code"))?;
            // Envoy answers 429 for a status below 400.
            if n < 400 {
                429
            } else {
                n
            }
        }
    };
    let token_bucket = match c.token_bucket {
        None if per_route => {
            return Err(err(
                p("token_bucket"),
                "required field is missing (a per-route local rate limit needs its bucket)",
            ))
        }
        None => None,
        Some(tb) => {
            let tp = |k: &str| join_key(&p("token_bucket"), k);
            let max_tokens = match tb.max_tokens {
                None => return Err(err(tp("max_tokens"), "required field is missing")),
                Some(0) => return Err(err(tp("max_tokens"), "must be greater than 0")),
                Some(n) => n,
            };
            let tokens_per_fill = match tb.tokens_per_fill {
                Some(0) => return Err(err(tp("tokens_per_fill"), "must be greater than 0")),
                n => n.unwrap_or(1),
            };
            let fill_interval = match tb.fill_interval.map(|d| d.0) {
                None => return Err(err(tp("fill_interval"), "required field is missing")),
                // Envoy: "local rate limit token bucket fill timer must be >= 50ms".
                Some(d) if d < std::time::Duration::from_millis(50) => {
                    return Err(err(tp("fill_interval"), "must be at least 50ms"))
                }
                Some(d) => d,
            };
            Some(TokenBucket {
                max_tokens,
                tokens_per_fill,
                fill_interval,
            })
        }
    };
    let headers = |list: &[raw::HeaderValueOption], field: &str| {
        list.iter()
            .enumerate()
            .map(|(i, h)| validate_route::header_value_option(h, &format!("{}[{i}]", p(field))))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(LocalRateLimit {
        stat_prefix,
        status,
        token_bucket,
        filter_enabled: c
            .filter_enabled
            .map(|f| fraction(f, &p("filter_enabled")))
            .transpose()?,
        filter_enforced: c
            .filter_enforced
            .map(|f| fraction(f, &p("filter_enforced")))
            .transpose()?,
        request_headers_to_add_when_not_enforced: headers(
            &c.request_headers_to_add_when_not_enforced,
            "request_headers_to_add_when_not_enforced",
        )?,
        response_headers_to_add: headers(&c.response_headers_to_add, "response_headers_to_add")?,
    })
}
