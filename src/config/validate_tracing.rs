//! Tracing: the connection manager's `tracing` with the Zipkin or Datadog provider, a route's
//! `decorator`, a listener's `traffic_direction`. What baton does not implement is refused
//! with its field path.

use std::collections::HashMap;

use super::de::{from_value, join_key};
use super::model::*;
use super::raw::{self, EnumValue};
use super::validate::{enum_or, err, extension_kind, no_filter, typed_payload, EnumEntry};
use super::ConfigError;

pub(super) const ZIPKIN_TYPE: &str = "envoy.config.trace.v3.ZipkinConfig";
pub(super) const DATADOG_TYPE: &str = "envoy.config.trace.v3.DatadogConfig";

const DIRECTIONS: &[EnumEntry<TrafficDirection>] = &[
    ("UNSPECIFIED", 0, Some(TrafficDirection::Unspecified)),
    ("INBOUND", 1, Some(TrafficDirection::Inbound)),
    ("OUTBOUND", 2, Some(TrafficDirection::Outbound)),
];

/// `collector_endpoint_version`: the JSON v2 API only.
const VERSIONS: &[EnumEntry<()>] = &[
    ("DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE", 0, None),
    ("HTTP_JSON", 1, Some(())),
    ("HTTP_PROTO", 2, None),
    ("GRPC", 3, None),
];

pub fn traffic_direction(
    v: &Option<EnumValue>,
    path: &str,
) -> Result<TrafficDirection, ConfigError> {
    enum_or(v, path, DIRECTIONS, TrafficDirection::Unspecified)
}

pub fn decorator(d: raw::Decorator, path: &str) -> Result<Decorator, ConfigError> {
    if d.operation.is_empty() {
        return Err(err(join_key(path, "operation"), "must not be empty"));
    }
    Ok(Decorator {
        operation: d.operation,
        propagate: d.propagate.unwrap_or(true),
    })
}

/// Envoy's percentage to ten-thousandths, rounded; absent: 100%.
fn percent(p: &Option<raw::Percent>, path: &str) -> Result<u32, ConfigError> {
    let Some(p) = p else { return Ok(10_000) };
    if !(0.0..=100.0).contains(&p.value) {
        return Err(err(
            join_key(path, "value"),
            format!("{} is out of range (0..=100)", p.value),
        ));
    }
    Ok((p.value * 100.0).round() as u32)
}

/// The connection manager's `tracing`. `egress` is set later from the listener.
pub fn tracing(
    t: raw::Tracing,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<Tracing, ConfigError> {
    let p = |f: &str| join_key(path, f);
    if t.verbose == Some(true) {
        return Err(err(
            p("verbose"),
            "not supported by baton (timing annotations on spans)",
        ));
    }
    if t.spawn_upstream_span == Some(true) {
        return Err(err(
            p("spawn_upstream_span"),
            "not supported by baton (a separate upstream span)",
        ));
    }
    let max_path_tag_length = match t.max_path_tag_length {
        None => 256,
        Some(n) => n as usize,
    };
    let mut custom_tags = Vec::new();
    for (i, c) in t.custom_tags.into_iter().enumerate() {
        custom_tags.push(custom_tag(c, &format!("{}[{i}]", p("custom_tags")))?);
    }
    let provider = match t.provider {
        Some(provider) => provider_of(&provider, &p("provider"), clusters)?,
        None => BOOTSTRAP_PROVIDER
            .with(|b| b.borrow().clone())
            .ok_or_else(|| {
                err(
                    p("provider"),
                    "required (here or as the bootstrap's tracing.http): envoy.tracers.zipkin \
                     or envoy.tracers.datadog",
                )
            })?,
    };
    Ok(Tracing {
        egress: false,
        client_sampling: percent(&t.client_sampling, &p("client_sampling"))?,
        random_sampling: percent(&t.random_sampling, &p("random_sampling"))?,
        overall_sampling: percent(&t.overall_sampling, &p("overall_sampling"))?,
        max_path_tag_length,
        custom_tags,
        provider,
    })
}

/// A tracing provider: `envoy.tracers.zipkin` with its `ZipkinConfig` or
/// `envoy.tracers.datadog` with its `DatadogConfig`.
fn provider_of(
    provider: &raw::TypedExtension,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<Provider, ConfigError> {
    let ty = extension_kind(
        provider,
        path,
        "tracing provider",
        &[ZIPKIN_TYPE, DATADOG_TYPE],
    )?;
    no_filter(provider, path)?;
    let tpath = join_key(path, "typed_config");
    let payload = typed_payload(&provider.typed_config, &tpath, ty)?
        .ok_or_else(|| err(&tpath, "required field is missing"))?;
    if ty == DATADOG_TYPE {
        let d: raw::DatadogConfig = from_value(&payload, &tpath)?;
        return datadog(d, &tpath, clusters).map(Provider::Datadog);
    }
    let z: raw::ZipkinConfig = from_value(&payload, &tpath)?;
    zipkin(z, &tpath, clusters).map(Provider::Zipkin)
}

thread_local! {
    /// The bootstrap's `tracing.http` provider while a bootstrap's listeners are read.
    static BOOTSTRAP_PROVIDER: std::cell::RefCell<Option<Provider>> =
        const { std::cell::RefCell::new(None) };
}

/// The bootstrap's `tracing` for the load in progress: its provider serves connection
/// managers whose `tracing` has none (as in Envoy, where it is deprecated). Cleared when the
/// guard is dropped.
pub struct BootstrapProvider;

impl BootstrapProvider {
    pub fn set(
        t: Option<raw::BootstrapTracing>,
        clusters: &HashMap<String, usize>,
    ) -> Result<BootstrapProvider, ConfigError> {
        let z = match t.and_then(|t| t.http) {
            Some(http) => Some(provider_of(&http, "tracing.http", clusters)?),
            None => None,
        };
        BOOTSTRAP_PROVIDER.with(|b| *b.borrow_mut() = z);
        Ok(BootstrapProvider)
    }
}

impl Drop for BootstrapProvider {
    fn drop(&mut self) {
        BOOTSTRAP_PROVIDER.with(|b| *b.borrow_mut() = None);
    }
}

fn zipkin(
    z: raw::ZipkinConfig,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<Zipkin, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let refused: [(&str, bool, &str); 3] = [
        (
            "collector_service",
            z.collector_service.is_some(),
            "an HttpService collector; use collector_cluster and collector_endpoint",
        ),
        (
            "split_spans_for_request",
            z.split_spans_for_request == Some(true),
            "separate client and server spans per request",
        ),
        (
            "trace_context_option",
            z.trace_context_option.as_ref().is_some_and(|v| match v {
                EnumValue::Number(n) => *n != 0,
                EnumValue::Name(n) => !n.eq_ignore_ascii_case("USE_B3"),
            }),
            "W3C trace context propagation; only B3 (USE_B3)",
        ),
    ];
    if let Some((f, _, what)) = refused.iter().find(|r| r.1) {
        return Err(err(p(f), format!("not supported by baton ({what})")));
    }
    let cluster = collector_cluster(&z.collector_cluster, path, clusters)?;
    if z.collector_endpoint.is_empty() {
        return Err(err(p("collector_endpoint"), "required field is missing"));
    }
    if !z.collector_endpoint.starts_with('/')
        || z.collector_endpoint.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(err(
            p("collector_endpoint"),
            format!("\"{}\" is not a path", z.collector_endpoint),
        ));
    }
    // Envoy's default is HTTP_JSON; the deprecated v1 value is refused by Envoy too.
    let vpath = p("collector_endpoint_version");
    match &z.collector_endpoint_version {
        None => {}
        Some(v) => super::validate::proto_enum(v, &vpath, VERSIONS)?,
    }
    let hostname = collector_hostname(z.collector_hostname, &z.collector_cluster, path)?;
    Ok(Zipkin {
        cluster,
        cluster_name: z.collector_cluster,
        endpoint: z.collector_endpoint,
        hostname,
        trace_id_128bit: z.trace_id_128bit.unwrap_or(false),
        shared_span_context: z.shared_span_context.unwrap_or(true),
    })
}

/// `collector_cluster`: required, a bootstrap cluster.
fn collector_cluster(
    name: &str,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<usize, ConfigError> {
    let p = join_key(path, "collector_cluster");
    if name.is_empty() {
        return Err(err(p, "required field is missing"));
    }
    clusters
        .get(name)
        .copied()
        .ok_or_else(|| err(p, format!("unknown cluster \"{name}\"")))
}

/// `collector_hostname`: the reports' Host; absent or empty: the cluster's name.
fn collector_hostname(h: Option<String>, cluster: &str, path: &str) -> Result<String, ConfigError> {
    match h {
        Some(h) if !h.is_empty() => {
            if !crate::http::codec::valid_authority(&h) {
                return Err(err(
                    join_key(path, "collector_hostname"),
                    format!("\"{h}\" is not a valid host"),
                ));
            }
            Ok(h)
        }
        _ => Ok(cluster.to_string()),
    }
}

/// Envoy's Datadog tracer (dd-trace-cpp). `remote_config` turns on polling the agent for
/// sampling rules, which baton does not do: refused.
fn datadog(
    d: raw::DatadogConfig,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<Datadog, ConfigError> {
    if d.remote_config.is_some() {
        return Err(err(
            join_key(path, "remote_config"),
            "not supported by baton (polling the agent's remote configuration)",
        ));
    }
    let cluster = collector_cluster(&d.collector_cluster, path, clusters)?;
    if d.service_name.is_empty() {
        return Err(err(
            join_key(path, "service_name"),
            "required field is missing",
        ));
    }
    let hostname = collector_hostname(d.collector_hostname, &d.collector_cluster, path)?;
    Ok(Datadog {
        cluster,
        cluster_name: d.collector_cluster,
        service: d.service_name,
        hostname,
    })
}

fn custom_tag(c: raw::CustomTag, path: &str) -> Result<CustomTag, ConfigError> {
    let p = |f: &str| join_key(path, f);
    if c.tag.is_empty() {
        return Err(err(p("tag"), "must not be empty"));
    }
    if c.metadata.is_some() {
        return Err(err(p("metadata"), "not supported by baton (metadata tags)"));
    }
    let value = match (c.literal, c.environment, c.request_header) {
        (Some(l), None, None) => CustomTagValue::Literal(l.value),
        (None, Some(e), None) => {
            if e.name.is_empty() {
                return Err(err(p("environment.name"), "must not be empty"));
            }
            // Envoy reads the variable once, when the config is loaded.
            let v = std::env::var(&e.name).unwrap_or(e.default_value);
            CustomTagValue::Literal(v)
        }
        (None, None, Some(h)) => {
            if h.name.is_empty() {
                return Err(err(p("request_header.name"), "must not be empty"));
            }
            CustomTagValue::Header {
                name: h.name.to_ascii_lowercase(),
                default: h.default_value,
            }
        }
        (None, None, None) => {
            return Err(err(
                path,
                "one of literal, environment, request_header is required",
            ))
        }
        _ => {
            return Err(err(
                path,
                "only one of literal, environment, request_header may be set",
            ))
        }
    };
    Ok(CustomTag { tag: c.tag, value })
}
