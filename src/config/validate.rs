//! Raw (serde mirror) → checked model: Envoy's defaults applied, cross-references resolved,
//! every rule Envoy enforces at load enforced here, each error naming its field path.
//! Routes live in `validate_route.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_yaml::Value;

use super::de::{from_value, join_key, report};
use super::model::*;
use super::raw::{self, EnumValue};
use super::{
    format, runtime, validate_action, validate_fault, validate_filters, validate_local_reply,
    validate_route, validate_stats, ConfigError,
};

pub fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// One protobuf enum value: its name, its number, and what it maps to (`None`: a real Envoy
/// value that baton does not implement).
pub type EnumEntry<T> = (&'static str, i64, Option<T>);

/// Resolves a proto enum given by name or number against `table`.
pub fn proto_enum<T: Copy>(
    v: &EnumValue,
    path: &str,
    table: &[EnumEntry<T>],
) -> Result<T, ConfigError> {
    // Envoy parses enum names case-insensitively (`strict_dns`, `round_robin`).
    let found = match v {
        EnumValue::Name(n) => table.iter().find(|e| e.0.eq_ignore_ascii_case(n)),
        EnumValue::Number(n) => table.iter().find(|e| e.1 == *n),
    };
    let supported = || {
        let names: Vec<&str> = table
            .iter()
            .filter(|e| e.2.is_some())
            .map(|e| e.0)
            .collect();
        names.join(", ")
    };
    match found {
        Some((_, _, Some(t))) => Ok(*t),
        Some((name, _, None)) => Err(err(
            path,
            format!(
                "value \"{name}\" is not supported by baton (supported: {})",
                supported()
            ),
        )),
        // A value Envoy does not have either (a typo, or one v3 removed such as
        // `ORIGINAL_DST_LB`): the operator needs the list to pick from.
        None => Err(err(
            path,
            match v {
                EnumValue::Name(n) => format!("unknown value \"{n}\" (supported: {})", supported()),
                EnumValue::Number(n) => format!("unknown value {n} (supported: {})", supported()),
            },
        )),
    }
}

/// `proto_enum` for an optional field with a default.
pub fn enum_or<T: Copy>(
    v: &Option<EnumValue>,
    path: &str,
    table: &[EnumEntry<T>],
    default: T,
) -> Result<T, ConfigError> {
    v.as_ref()
        .map_or(Ok(default), |v| proto_enum(v, path, table))
}

/// Envoy's convention for optional timeouts: absent → `default`, `0s` → disabled.
pub fn timeout(d: Option<raw::Dur>, default: Option<Duration>) -> Option<Duration> {
    match d {
        None => default,
        Some(raw::Dur(d)) if d.is_zero() => None,
        Some(raw::Dur(d)) => Some(d),
    }
}

/// Checks `@type` on a `typed_config` and returns the payload without it (`None` when there is
/// no `typed_config`). Only the part after the last `/` of the type URL counts, as in Envoy.
pub fn typed_payload(
    typed_config: &Option<Value>,
    path: &str,
    type_name: &str,
) -> Result<Option<Value>, ConfigError> {
    let Some(v) = typed_config else {
        return Ok(None);
    };
    let mut map = match v {
        // `typed_config: {}`: no settings (Envoy allows it for the router).
        Value::Mapping(m) if m.is_empty() => return Ok(None),
        Value::Mapping(m) => m.clone(),
        Value::Null => return Ok(None),
        _ => return Err(err(path, "expected a map with an \"@type\"")),
    };
    let type_path = join_key(path, "@type");
    let url = match map.remove("@type") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(err(type_path, "expected a type URL string")),
        None => return Err(err(type_path, "required field is missing")),
    };
    let name = v3_name(url.rsplit('/').next().unwrap_or_default());
    if name != type_name {
        return Err(err(
            type_path,
            format!("unknown type \"{url}\" (expected type.googleapis.com/{type_name})"),
        ));
    }
    Ok(Some(Value::Mapping(map)))
}

/// Collects the elements of a list: each error is reported (the load goes on to find the
/// others) and the first is kept so the list still fails.
pub struct Each<T> {
    ok: Vec<T>,
    failed: Option<ConfigError>,
}

impl<T> Each<T> {
    pub fn new() -> Each<T> {
        Each {
            ok: Vec::new(),
            failed: None,
        }
    }

    pub fn add(&mut self, r: Result<T, ConfigError>) {
        match r {
            Ok(v) => self.ok.push(v),
            Err(e) => {
                report(e.clone());
                self.failed.get_or_insert(e);
            }
        }
    }

    /// The elements so far (the ones that passed), for checks against later elements.
    pub fn items(&self) -> &[T] {
        &self.ok
    }

    pub fn finish(self) -> Result<Vec<T>, ConfigError> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.ok),
        }
    }
}

/// `Ok` of a result whose error was reported (the load goes on); `None` on error, with the
/// first such error kept in `first` to fail the whole.
/// `(field, set, what)` rows: an error for each field that is set, naming what baton does not
/// implement.
pub(super) fn refused_fields<'a>(
    rows: &'a [(&'a str, bool, &'a str)],
    path: &'a str,
) -> impl Iterator<Item = ConfigError> + 'a {
    rows.iter().filter(|r| r.1).map(move |(field, _, what)| {
        err(
            join_key(path, field),
            format!("not supported by baton ({what})"),
        )
    })
}

pub fn keep<T>(r: Result<T, ConfigError>, first: &mut Option<ConfigError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            report(e.clone());
            first.get_or_insert(e);
            None
        }
    }
}

/// Reads a `DataSource` (inline_string, inline_bytes, filename or environment_variable) as
/// text, at load as Envoy does.
pub fn data_source(ds: &raw::DataSource, path: &str) -> Result<String, ConfigError> {
    let set = [
        ds.inline_string.is_some(),
        ds.inline_bytes.is_some(),
        ds.filename.is_some(),
        ds.environment_variable.is_some(),
    ];
    match set.iter().filter(|s| **s).count() {
        0 => {
            return Err(err(
                path,
                "one of inline_string, inline_bytes, filename, environment_variable is required",
            ))
        }
        1 => {}
        _ => return Err(err(
            path,
            "only one of inline_string, inline_bytes, filename, environment_variable may be set",
        )),
    }
    let text = |bytes: Vec<u8>, field: &str| {
        String::from_utf8(bytes).map_err(|_| {
            err(
                join_key(path, field),
                "must be UTF-8 text (baton keeps these bodies and formats as text)",
            )
        })
    };
    if let Some(s) = &ds.inline_string {
        return Ok(s.clone());
    }
    if let Some(b) = &ds.inline_bytes {
        let bytes = super::tls::base64(b).ok_or_else(|| {
            err(
                join_key(path, "inline_bytes"),
                "not valid base64 (protobuf's JSON form of bytes)",
            )
        })?;
        return text(bytes, "inline_bytes");
    }
    if let Some(v) = &ds.environment_variable {
        return std::env::var(v).map_err(|_| {
            err(
                join_key(path, "environment_variable"),
                format!("environment variable {v} is not set (or not UTF-8)"),
            )
        });
    }
    let f = ds.filename.as_deref().unwrap_or_default();
    let bytes = std::fs::read(f)
        .map_err(|e| err(join_key(path, "filename"), format!("cannot read {f}: {e}")))?;
    text(bytes, "filename")
}

const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
use super::validate_filters::{
    CORS_TYPE, CSRF_TYPE, HEALTH_CHECK_TYPE, LOCAL_RATE_LIMIT_TYPE, ROUTER_TYPE,
};
const FILE_LOG_TYPE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
const STDOUT_LOG_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR_LOG_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
const CONNECTION_LIMIT_TYPE: &str =
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
const TCP_PROXY_TYPE: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
pub(super) const STATSD_SINK_TYPE: &str = "envoy.config.metrics.v3.StatsdSink";
pub(super) const DOG_STATSD_SINK_TYPE: &str = "envoy.config.metrics.v3.DogStatsdSink";
use super::validate_overload::{FIXED_HEAP_TYPE, GLOBAL_CX_TYPE};

/// Envoy's names for the extensions baton has, and the type each stands for. Envoy picks an
/// extension by its `typed_config`'s `@type` (the `name` is only a label); a well-known name
/// says which extension is meant when there is no `typed_config` (the router, stream loggers).
/// A name listed twice stands for the type accepted where it appears (the TLS socket: a
/// downstream context on a filter chain, an upstream one on a cluster).
const KNOWN_NAMES: &[(&str, &str)] = &[
    ("envoy.filters.network.http_connection_manager", HCM_TYPE),
    ("envoy.http_connection_manager", HCM_TYPE),
    ("envoy.filters.network.tcp_proxy", TCP_PROXY_TYPE),
    ("envoy.tcp_proxy", TCP_PROXY_TYPE),
    ("envoy.filters.http.router", ROUTER_TYPE),
    ("envoy.router", ROUTER_TYPE),
    ("envoy.filters.http.health_check", HEALTH_CHECK_TYPE),
    ("envoy.health_check", HEALTH_CHECK_TYPE),
    ("envoy.filters.http.cors", CORS_TYPE),
    ("envoy.cors", CORS_TYPE),
    ("envoy.filters.http.csrf", CSRF_TYPE),
    ("envoy.csrf", CSRF_TYPE),
    ("envoy.filters.http.local_ratelimit", LOCAL_RATE_LIMIT_TYPE),
    ("envoy.filters.http.rbac", super::validate_rbac::RBAC_TYPE),
    (
        "envoy.filters.http.fault",
        super::validate_fault::FAULT_TYPE,
    ),
    ("envoy.fault", super::validate_fault::FAULT_TYPE),
    (
        "envoy.filters.http.compressor",
        super::validate_compress::COMPRESSOR_TYPE,
    ),
    (
        "envoy.filters.http.decompressor",
        super::validate_compress::DECOMPRESSOR_TYPE,
    ),
    (
        "envoy.filters.http.ext_authz",
        super::validate_ext_authz::EXT_AUTHZ_TYPE,
    ),
    ("envoy.ext_authz", super::validate_ext_authz::EXT_AUTHZ_TYPE),
    ("envoy.access_loggers.file", FILE_LOG_TYPE),
    ("envoy.file_access_log", FILE_LOG_TYPE),
    ("envoy.access_loggers.stdout", STDOUT_LOG_TYPE),
    ("envoy.access_loggers.stderr", STDERR_LOG_TYPE),
    (
        "envoy.filters.network.connection_limit",
        CONNECTION_LIMIT_TYPE,
    ),
    (
        "envoy.resource_monitors.global_downstream_max_connections",
        GLOBAL_CX_TYPE,
    ),
    ("envoy.resource_monitors.fixed_heap", FIXED_HEAP_TYPE),
    (
        "envoy.filters.listener.tls_inspector",
        super::tls::TLS_INSPECTOR_TYPE,
    ),
    (
        "envoy.filters.listener.proxy_protocol",
        super::validate_proxy_protocol::PROXY_PROTOCOL_TYPE,
    ),
    (
        "envoy.transport_sockets.upstream_proxy_protocol",
        super::validate_proxy_protocol::UPSTREAM_PROXY_PROTOCOL_TYPE,
    ),
    (
        "envoy.transport_sockets.raw_buffer",
        super::tls::RAW_BUFFER_TYPE,
    ),
    ("envoy.stat_sinks.statsd", STATSD_SINK_TYPE),
    ("envoy.statsd", STATSD_SINK_TYPE),
    ("envoy.stat_sinks.dog_statsd", DOG_STATSD_SINK_TYPE),
    ("envoy.dog_statsd", DOG_STATSD_SINK_TYPE),
    ("envoy.transport_sockets.tls", super::tls::DOWNSTREAM_TYPE),
    ("envoy.transport_sockets.tls", super::tls::UPSTREAM_TYPE),
    ("envoy.tracers.zipkin", super::validate_tracing::ZIPKIN_TYPE),
    (
        "envoy.tracers.datadog",
        super::validate_tracing::DATADOG_TYPE,
    ),
];

/// Envoy v2 type names with their v3 successors, for the refusal message.
const V2_TYPES: &[(&str, &str)] = &[
    (
        "envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager",
        HCM_TYPE,
    ),
    (
        "envoy.config.filter.network.tcp_proxy.v2.TcpProxy",
        TCP_PROXY_TYPE,
    ),
    ("envoy.config.filter.http.router.v2.Router", ROUTER_TYPE),
    ("envoy.config.accesslog.v2.FileAccessLog", FILE_LOG_TYPE),
    (
        "envoy.api.v2.auth.UpstreamTlsContext",
        super::tls::UPSTREAM_TYPE,
    ),
    (
        "envoy.api.v2.auth.DownstreamTlsContext",
        super::tls::DOWNSTREAM_TYPE,
    ),
];

/// Which of the types accepted `here` the extension `ext` is, as a type name
/// (`envoy.extensions....v3.X`); any other is refused as not a supported `what`, naming those
/// types. See `extension_type`.
pub(super) fn extension_kind(
    ext: &raw::TypedExtension,
    path: &str,
    what: &str,
    here: &[&'static str],
) -> Result<&'static str, ConfigError> {
    let ty = extension_type(ext, path, here)?;
    if here.contains(&ty) {
        Ok(ty)
    } else {
        Err(err(
            join_key(path, "typed_config.@type"),
            format!(
                "\"{}\" ({ty}) is not a supported {what} (supported: {})",
                ext.name,
                here.join(", ")
            ),
        ))
    }
}

/// Which extension `ext` is: its `typed_config`'s `@type` (only the part after the last `/`
/// counts), else the type its well-known `name` stands for (of a name's types, the one
/// accepted `here`). A v2 type is refused with its v3 name.
fn extension_type(
    ext: &raw::TypedExtension,
    path: &str,
    here: &[&str],
) -> Result<&'static str, ConfigError> {
    let tpath = join_key(path, "typed_config");
    let type_path = join_key(&tpath, "@type");
    let url = match &ext.typed_config {
        Some(Value::Mapping(m)) => match m.get("@type") {
            Some(Value::String(url)) => Some(url.as_str()),
            Some(_) => return Err(err(type_path, "expected a type URL string")),
            None if m.is_empty() => None,
            None => return Err(err(type_path, "required field is missing")),
        },
        Some(Value::Null) | None => None,
        Some(_) => return Err(err(tpath, "expected a map with an \"@type\"")),
    };
    let Some(url) = url else {
        let named = || KNOWN_NAMES.iter().filter(|(n, _)| *n == ext.name);
        return named()
            .find(|(_, t)| here.contains(t))
            .or_else(|| named().next())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                err(
                    join_key(path, "name"),
                    format!(
                        "unknown or unsupported extension \"{}\" (no typed_config \"@type\" \
                         says what it is)",
                        ext.name
                    ),
                )
            });
    };
    let name = v3_name(url.rsplit('/').next().unwrap_or_default());
    if name
        .split('.')
        .any(|part| part == "v2" || part == "v2alpha")
    {
        let v3 = V2_TYPES
            .iter()
            .find(|(v2, _)| *v2 == name)
            .map_or("its v3 type".to_string(), |(_, v3)| {
                format!("type.googleapis.com/{v3}")
            });
        return Err(err(
            type_path,
            format!("\"{url}\" is an Envoy v2 type (removed in v3): use {v3}"),
        ));
    }
    match KNOWN_NAMES.iter().find(|(_, t)| *t == name) {
        Some((_, t)) => Ok(t),
        None => Err(err(
            type_path,
            format!("extension type \"{url}\" is not supported by baton"),
        )),
    }
}

/// Types in a `v2alpha` package that Envoy v3 still loads (its own configs use them, e.g.
/// the Google VRP edge config's fixed-heap monitor), read as their v3 twins.
const V2ALPHA_KEPT: &[(&str, &str)] = &[(
    "envoy.config.resource_monitor.fixed_heap.v2alpha.FixedHeapConfig",
    "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
)];

/// A type name as baton knows it: a `V2ALPHA_KEPT` name is its v3 twin's.
fn v3_name(name: &str) -> &str {
    V2ALPHA_KEPT
        .iter()
        .find(|(old, _)| *old == name)
        .map_or(name, |(_, v3)| v3)
}

pub(super) const PROTOCOLS: &[EnumEntry<()>] = &[("TCP", 0, Some(())), ("UDP", 1, None)];

/// `socket_address` → (host, port). `listen` additionally requires an IP literal and allows
/// port 0 (an ephemeral port, handy in tests). `protocols` says which `protocol`s are taken.
pub(super) fn socket_address(
    a: Option<&raw::Address>,
    path: &str,
    listen: bool,
    protocols: &[EnumEntry<()>],
) -> Result<(String, u16), ConfigError> {
    let Some(a) = a else {
        return Err(err(path, "required field is missing"));
    };
    let path = join_key(path, "socket_address");
    let Some(sa) = &a.socket_address else {
        return Err(err(path, "required field is missing"));
    };
    enum_or(&sa.protocol, &join_key(&path, "protocol"), protocols, ())?;
    let host = sa.address.trim();
    if host.is_empty() {
        return Err(err(join_key(&path, "address"), "must not be empty"));
    }
    if listen && host.parse::<IpAddr>().is_err() {
        return Err(err(
            join_key(&path, "address"),
            format!("not an IP address: \"{host}\""),
        ));
    }
    let port_path = join_key(&path, "port_value");
    let port = sa
        .port_value
        .ok_or_else(|| err(&port_path, "required field is missing"))?;
    let low = if listen { 0 } else { 1 };
    if port < low || port > 65535 {
        return Err(err(port_path, format!("{port} out of range")));
    }
    Ok((host.to_string(), port as u16))
}

fn listen_address(a: Option<&raw::Address>, path: &str) -> Result<SocketAddr, ConfigError> {
    let (host, port) = socket_address(a, path, true, PROTOCOLS)?;
    let ip: IpAddr = host
        .parse()
        .map_err(|_| err(path, format!("not an IP address: \"{host}\"")))?;
    Ok(SocketAddr::new(ip, port))
}

pub fn bootstrap(raw: raw::Bootstrap) -> Result<Bootstrap, ConfigError> {
    let node = raw.node.map(|n| Node {
        id: n.id,
        cluster: n.cluster,
    });
    let mut first = None;
    let mut rt = match raw.layered_runtime {
        Some(lr) => keep(runtime::layered(lr, "layered_runtime"), &mut first).unwrap_or_default(),
        None => runtime::Runtime::default(),
    };
    let _re2 = validate_route::Re2Limit::set(rt.re2_error_level);
    let _fault = validate_fault::RuntimeFault::set(rt.fault);
    let watched = std::mem::take(&mut rt.watched);
    let sr = raw.static_resources.unwrap_or(raw::StaticResources {
        listeners: Vec::new(),
        clusters: Vec::new(),
    });
    let mut clusters = Each::new();
    let mut cluster_index: HashMap<String, usize> = HashMap::new();
    for (i, c) in sr.clusters.iter().enumerate() {
        let path = format!("static_resources.clusters[{i}]");
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let c = from_value::<raw::Cluster>(c, &path).and_then(|c| cluster(c, &path));
        // A cluster with errors still has its name, so routes naming it report nothing more.
        if cluster_index.insert(name.clone(), i).is_some() {
            clusters.add(Err(err(
                format!("{path}.name"),
                format!("duplicate cluster name \"{name}\""),
            )));
        } else {
            clusters.add(c);
        }
    }
    // The bootstrap's tracing provider, for connection managers whose `tracing` names none.
    let _provider = keep(
        super::validate_tracing::BootstrapProvider::set(raw.tracing, &cluster_index),
        &mut first,
    );
    let mut listeners: Each<Listener> = Each::new();
    for (i, l) in sr.listeners.iter().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        let l = from_value::<raw::Listener>(l, &path)
            .and_then(|l| listener(l, &path, &cluster_index, &rt.listener_connection_limits))
            .and_then(|l| {
                if let Some(other) = listeners.items().iter().find(|o| o.name == l.name) {
                    return Err(err(
                        format!("{path}.name"),
                        format!("duplicate listener name \"{}\"", other.name),
                    ));
                }
                if let Some(other) = listeners.items().iter().find(|o| o.address == l.address) {
                    return Err(err(
                        format!("{path}.address"),
                        format!(
                            "duplicate address {} (also used by listener \"{}\")",
                            l.address, other.name
                        ),
                    ));
                }
                Ok(l)
            });
        listeners.add(l);
    }
    // A limit for a listener that does not exist limits nothing, as in Envoy; it is allowed
    // (Envoy's front-proxy example sets one) but said, since it is most likely a typo.
    for (name, _, path) in &rt.listener_connection_limits {
        if !sr
            .listeners
            .iter()
            .any(|l| l.get("name").and_then(Value::as_str) == Some(name))
        {
            log::warn!("{path}: no listener is named \"{name}\": this limit applies to none");
        }
    }
    let admin = match raw.admin {
        Some(a) => keep(admin(a, listeners.items()), &mut first).flatten(),
        None => None,
    };
    let (monitor, overload) = match raw.overload_manager {
        Some(om) => {
            keep(super::validate_overload::overload_manager(om), &mut first).unwrap_or_default()
        }
        None => (None, Overload::default()),
    };
    let max_downstream_connections = match (monitor, rt.global_downstream_max_connections) {
        (Some(_), Some((_, path))) => {
            keep::<()>(
                Err(err(
                    path,
                    "set both here and by the overload manager's \
                     global_downstream_max_connections monitor: keep one",
                )),
                &mut first,
            );
            None
        }
        (Some(n), None) | (None, Some((n, _))) => Some(n),
        (None, None) => None,
    };
    let stats_sinks = keep(validate_stats::sinks(&raw.stats_sinks), &mut first).unwrap_or_default();
    let stats_flush_interval = keep(
        validate_stats::flush_interval(raw.stats_flush_interval, raw.stats_flush_on_admin),
        &mut first,
    )
    .unwrap_or_default();
    let stats_matcher = match raw.stats_config {
        Some(c) => keep(validate_stats::stats_config(c), &mut first).unwrap_or_default(),
        None => StatsMatcher::All,
    };
    let clusters = clusters.finish();
    let listeners = listeners.finish();
    if let (Ok(cs), Ok(ls)) = (&clusters, &listeners) {
        keep(tls_collectors(cs, ls), &mut first);
        keep(tls_mirrors(cs, ls), &mut first);
        keep(tls_authz(cs, ls), &mut first);
        keep(tunnel_clusters(cs, ls), &mut first);
    }
    if let Some(e) = first {
        return Err(e);
    }
    Ok(Bootstrap {
        listeners: listeners?,
        clusters: clusters?,
        admin,
        node,
        max_downstream_connections,
        stats_sinks,
        stats_flush_interval,
        stats_matcher,
        watched,
        overload,
    })
}

/// `admin`; `None` when it has neither an address nor an access log.
fn admin(a: raw::Admin, listeners: &[Listener]) -> Result<Option<Admin>, ConfigError> {
    let access_log_path = a.access_log_path.filter(|p| !p.is_empty());
    let mut access_log = Vec::new();
    for (i, l) in a.access_log.iter().enumerate() {
        access_log.push(file_access_log(l, &format!("admin.access_log[{i}]"))?);
    }
    let address = match a.address {
        None => None,
        Some(addr) => {
            let address = listen_address(Some(&addr), "admin.address")?;
            if let Some(other) = listeners.iter().find(|o| o.address == address) {
                return Err(err(
                    "admin.address",
                    format!(
                        "duplicate address {address} (also used by listener \"{}\")",
                        other.name
                    ),
                ));
            }
            Some(address)
        }
    };
    let any = address.is_some() || access_log_path.is_some() || !access_log.is_empty();
    Ok(any.then_some(Admin {
        address,
        access_log_path,
        access_log,
    }))
}

fn listener(
    l: raw::Listener,
    path: &str,
    clusters: &HashMap<String, usize>,
    runtime_limits: &[(String, u64, String)],
) -> Result<Listener, ConfigError> {
    let address = listen_address(l.address.as_ref(), &format!("{path}.address"))?;
    // Only a configured name is named by a runtime key (Envoy's made-up name is a UUID).
    let runtime_connection_limit = l.name.as_deref().and_then(|n| {
        runtime_limits
            .iter()
            .find(|(name, _, _)| name == n)
            .map(|(_, max, _)| *max)
    });
    let name = match l.name {
        Some(n) if !n.is_empty() => n,
        // Envoy makes up a name; the address is unique and readable.
        _ => address.to_string(),
    };
    let chains_path = format!("{path}.filter_chains");
    let default_path = format!("{path}.default_filter_chain");
    if l.filter_chains.is_empty() && l.default_filter_chain.is_none() {
        return Err(err(
            &chains_path,
            "one filter chain with envoy.filters.network.http_connection_manager or \
             envoy.filters.network.tcp_proxy is required",
        ));
    }
    // The chains' matches and transports, the listener filters and the network filters are
    // read apart, so that an error in one (a certificate file that cannot be read) does not
    // hide the others'.
    let mut first = None;
    let filter_chains = keep(
        super::tls::filter_chains(
            &l.filter_chains,
            l.default_filter_chain.as_ref(),
            &chains_path,
            &default_path,
        ),
        &mut first,
    );
    let proxy_protocol = keep(
        super::validate_proxy_protocol::listener_filters(
            &l.listener_filters,
            &format!("{path}.listener_filters"),
        ),
        &mut first,
    );
    // Each chain has its own terminal filter; chains whose filters configure the same one
    // (their text may differ: a filter's name is a label, a lone value is a list of one)
    // share it. The connection limit is counted at accept, before a chain is chosen, so it
    // must be the same on every chain.
    let raw_chains: Vec<(&raw::FilterChain, String)> = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c, format!("{chains_path}[{i}].filters")))
        .chain(
            l.default_filter_chain
                .iter()
                .map(|c| (c, format!("{default_path}.filters"))),
        )
        .collect();
    let mut terminals: Vec<Terminal> = Vec::new();
    let mut chain_terminal: Vec<usize> = Vec::new();
    let mut connection_limit = None;
    let mut read: Vec<(&[raw::TypedExtension], usize)> = Vec::new();
    for (i, (c, fp)) in raw_chains.iter().enumerate() {
        if let Some(&(_, t)) = read.iter().find(|(f, _)| *f == c.filters.as_slice()) {
            chain_terminal.push(t);
            continue;
        }
        let Some((limit, terminal)) = keep(network_filters(&c.filters, fp, clusters), &mut first)
        else {
            continue;
        };
        if i == 0 {
            connection_limit = limit;
        } else if limit != connection_limit {
            keep::<()>(
                Err(err(
                    fp,
                    "its envoy.filters.network.connection_limit must equal the first chain's: \
                     baton counts connections at accept, before a chain is chosen",
                )),
                &mut first,
            );
        }
        let t = match terminals.iter().position(|t| *t == terminal) {
            Some(t) => t,
            None => {
                terminals.push(terminal);
                terminals.len() - 1
            }
        };
        read.push((&c.filters, t));
        chain_terminal.push(t);
    }
    let buffer = keep(
        buffer_limit(
            l.per_connection_buffer_limit_bytes,
            &format!("{path}.per_connection_buffer_limit_bytes"),
        ),
        &mut first,
    );
    let traffic_direction = keep(
        super::validate_tracing::traffic_direction(
            &l.traffic_direction,
            &format!("{path}.traffic_direction"),
        ),
        &mut first,
    );
    let (
        Some(mut filter_chains),
        Some(buffer),
        Some(traffic_direction),
        Some(proxy_protocol),
        None,
    ) = (
        filter_chains,
        buffer,
        traffic_direction,
        proxy_protocol,
        &first,
    )
    else {
        return Err(first.unwrap_or_else(|| err(path, "invalid")));
    };
    for (c, t) in filter_chains.iter_mut().zip(chain_terminal) {
        c.terminal = t;
    }
    for terminal in &mut terminals {
        if let Terminal::Http(h) = terminal {
            if let Some(t) = h.tracing.as_mut() {
                t.egress = traffic_direction == TrafficDirection::Outbound;
            }
        }
    }
    Ok(Listener {
        name,
        address,
        terminals,
        per_connection_buffer_limit_bytes: buffer,
        connection_limit,
        runtime_connection_limit,
        filter_chains,
        socket: ListenerSocket {
            reuse_port: l.enable_reuse_port.unwrap_or(false),
            fast_open_queue: l.tcp_fast_open_queue_length,
            options: socket_options(l.socket_options, &format!("{path}.socket_options"))?,
        },
        inspect_timeout: match l.listener_filters_timeout {
            Some(raw::Dur(d)) if !d.is_zero() => d,
            // Envoy's 0 means no limit; a stalled client must still not hold a connection.
            _ => super::tls::DEFAULT_INSPECT_TIMEOUT,
        },
        traffic_direction,
        proxy_protocol,
    })
}

const SOCKET_STATES: &[EnumEntry<SocketState>] = &[
    ("STATE_PREBIND", 0, Some(SocketState::Prebind)),
    ("STATE_BOUND", 1, Some(SocketState::Bound)),
    ("STATE_LISTENING", 2, Some(SocketState::Listening)),
];

/// `socket_options`: integer options only (`int_value`, within a C int), as `setsockopt`
/// takes them; `buf_value` is refused.
fn socket_options(list: Vec<raw::SocketOption>, path: &str) -> Result<Vec<SocketOpt>, ConfigError> {
    let int = |v: Option<i64>, p: String| -> Result<i32, ConfigError> {
        i32::try_from(v.unwrap_or(0)).map_err(|_| err(p, "must fit a C int"))
    };
    let mut out = Vec::new();
    for (i, o) in list.into_iter().enumerate() {
        let p = format!("{path}[{i}]");
        if o.buf_value.is_some() {
            return Err(err(
                join_key(&p, "buf_value"),
                "not supported by baton (byte-string socket options); use int_value",
            ));
        }
        let Some(value) = o.int_value else {
            return Err(err(join_key(&p, "int_value"), "required field is missing"));
        };
        out.push(SocketOpt {
            description: o.description.unwrap_or_default(),
            level: int(o.level, join_key(&p, "level"))?,
            name: int(o.name, join_key(&p, "name"))?,
            value: int(Some(value), join_key(&p, "int_value"))?,
            state: enum_or(
                &o.state,
                &join_key(&p, "state"),
                SOCKET_STATES,
                SocketState::Prebind,
            )?,
        });
    }
    Ok(out)
}

/// A filter chain's network filters: an optional connection limit, then the terminal filter
/// (the HTTP connection manager or the TCP proxy) last.
fn network_filters(
    filters: &[raw::TypedExtension],
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<(Option<ConnectionLimit>, Terminal), ConfigError> {
    let Some((filter, before)) = filters.split_last() else {
        return Err(err(
            path,
            "a terminal network filter is required (envoy.filters.network.http_connection_manager \
             or envoy.filters.network.tcp_proxy)",
        ));
    };
    let mut connection_limit = None;
    for (i, f) in before.iter().enumerate() {
        let fp = format!("{path}[{i}]");
        extension_kind(
            f,
            &fp,
            "network filter before the terminal filter",
            &[CONNECTION_LIMIT_TYPE],
        )?;
        if connection_limit.is_some() {
            return Err(err(fp, "only one connection_limit filter per listener"));
        }
        connection_limit = Some(connection_limit_filter(f, &fp)?);
    }
    let fpath = format!("{path}[{}]", before.len());
    let ty = extension_kind(
        filter,
        &fpath,
        "last network filter",
        &[HCM_TYPE, TCP_PROXY_TYPE],
    )?;
    no_filter(filter, &fpath)?;
    let tpath = format!("{fpath}.typed_config");
    let payload = typed_payload(&filter.typed_config, &tpath, ty)?
        .ok_or_else(|| err(&tpath, "required field is missing"))?;
    let terminal = if ty == TCP_PROXY_TYPE {
        let raw_tcp: raw::TcpProxy = from_value(&payload, &tpath)?;
        Terminal::Tcp(tcp_proxy(raw_tcp, &tpath, clusters)?)
    } else {
        let raw_hcm: raw::HttpConnectionManager = from_value(&payload, &tpath)?;
        Terminal::Http(Box::new(hcm(raw_hcm, &tpath, clusters)?))
    };
    Ok((connection_limit, terminal))
}

/// `envoy.filters.network.tcp_proxy`. Every error is reported (the load goes on to find the
/// others); the first fails the filter.
fn tcp_proxy(
    t: raw::TcpProxy,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<TcpProxy, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let mut first = None;
    let refused: [(&str, bool, &str); 11] = [
        (
            "on_demand",
            t.on_demand.is_some(),
            "on-demand cluster discovery (xDS)",
        ),
        (
            "metadata_match",
            t.metadata_match.is_some(),
            "subset load balancing",
        ),
        (
            "downstream_idle_timeout",
            t.downstream_idle_timeout.is_some(),
            "not implemented in Envoy either; use idle_timeout",
        ),
        (
            "upstream_idle_timeout",
            t.upstream_idle_timeout.is_some(),
            "not implemented in Envoy either; use idle_timeout",
        ),
        (
            "backoff_options",
            t.backoff_options.is_some(),
            "connect retries are made at once, as Envoy does without backoff_options",
        ),
        ("hash_policy", t.hash_policy.is_some(), "hash policies"),
        (
            "max_downstream_connection_duration_jitter_percentage",
            t.max_downstream_connection_duration_jitter_percentage
                .is_some(),
            "jitter on max_downstream_connection_duration",
        ),
        (
            "access_log_flush_interval",
            t.access_log_flush_interval.is_some(),
            "periodic access-log lines; one line is written when the connection ends",
        ),
        (
            "flush_access_log_on_connected",
            t.flush_access_log_on_connected == Some(true),
            "an access-log line on connect; one line is written when the connection ends",
        ),
        (
            "access_log_options",
            t.access_log_options.is_some(),
            "access-log flush options; one line is written when the connection ends",
        ),
        (
            "proxy_protocol_tlvs",
            t.proxy_protocol_tlvs.is_some(),
            "the PROXY protocol",
        ),
    ];
    for e in refused_fields(&refused, path) {
        keep::<()>(Err(e), &mut first);
    }
    let stat_prefix = match t.stat_prefix {
        Some(s) if !s.is_empty() => Some(s),
        Some(_) => keep(Err(err(p("stat_prefix"), "must not be empty")), &mut first),
        None => keep(
            Err(err(p("stat_prefix"), "required field is missing")),
            &mut first,
        ),
    };
    let lookup = |name: &str, at: String| {
        clusters
            .get(name)
            .copied()
            .ok_or_else(|| err(at, format!("unknown cluster \"{name}\"")))
    };
    let cluster = match (t.cluster, t.weighted_clusters) {
        (Some(c), None) => lookup(&c, p("cluster")).map(ClusterSpec::Single),
        (None, Some(w)) => tcp_weighted(w, &p("weighted_clusters"), &lookup),
        (None, None) => Err(err(path, "one of cluster, weighted_clusters is required")),
        (Some(_), Some(_)) => Err(err(
            path,
            "only one of cluster, weighted_clusters may be set",
        )),
    };
    let cluster = keep(cluster, &mut first);
    let max_connect_attempts = match t.max_connect_attempts {
        None => Some(1),
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
        Some(n) => keep(
            Err(err(
                p("max_connect_attempts"),
                format!("must be at least 1 (got {n})"),
            )),
            &mut first,
        ),
    };
    let max_duration = match t.max_downstream_connection_duration {
        None => Some(None),
        Some(raw::Dur(d)) if d >= Duration::from_millis(1) => Some(Some(d)),
        Some(_) => keep(
            Err(err(
                p("max_downstream_connection_duration"),
                "must be at least 1ms",
            )),
            &mut first,
        ),
    };
    let mut logs = Each::new();
    for (i, a) in t.access_log.iter().enumerate() {
        logs.add(file_access_log(a, &format!("{}[{i}]", p("access_log"))));
    }
    let access_log = keep(logs.finish(), &mut first);
    let tunnel_hostname = match &t.tunneling_config {
        Some(c) => keep(tunneling(c, &p("tunneling_config")), &mut first),
        None => None,
    };
    let (
        Some(stat_prefix),
        Some(cluster),
        Some(max_connect_attempts),
        Some(max_downstream_connection_duration),
        Some(access_log),
        None,
    ) = (
        stat_prefix,
        cluster,
        max_connect_attempts,
        max_duration,
        access_log,
        &first,
    )
    else {
        return Err(first.unwrap_or_else(|| err(path, "invalid")));
    };
    Ok(TcpProxy {
        stat_prefix,
        cluster,
        idle_timeout: timeout(t.idle_timeout, Some(Duration::from_secs(3600))),
        max_connect_attempts,
        max_downstream_connection_duration,
        access_log,
        tunnel_hostname,
    })
}

/// `tunneling_config`: HTTP/1.1 CONNECT to a fixed `hostname` (`host:port`, sent as the
/// request target and the Host). POST tunnels, extra headers, propagated response headers and
/// request ids, and command operators in the hostname are refused by path.
fn tunneling(t: &raw::TunnelingConfig, path: &str) -> Result<String, ConfigError> {
    let refused = [
        ("use_post", t.use_post == Some(true), "tunneling over POST"),
        (
            "headers_to_add",
            t.headers_to_add.as_ref().is_some_and(|h| !h.is_empty()),
            "headers on the CONNECT request",
        ),
        (
            "propagate_response_headers",
            t.propagate_response_headers == Some(true),
            "the CONNECT response's headers in filter state",
        ),
        ("post_path", t.post_path.is_some(), "tunneling over POST"),
        (
            "propagate_response_trailers",
            t.propagate_response_trailers == Some(true),
            "the CONNECT response's trailers in filter state",
        ),
        (
            "request_id_extension",
            t.request_id_extension.is_some(),
            "a request id on the CONNECT request",
        ),
        (
            "request_id_header",
            t.request_id_header.is_some(),
            "a request id on the CONNECT request",
        ),
        (
            "request_id_metadata_key",
            t.request_id_metadata_key.is_some(),
            "a request id on the CONNECT request",
        ),
    ];
    if let Some(e) = refused_fields(&refused, path).next() {
        return Err(e);
    }
    let at = join_key(path, "hostname");
    let host = t
        .hostname
        .as_deref()
        .ok_or_else(|| err(&at, "required field is missing"))?;
    if host.contains('%') {
        return Err(err(
            at,
            "not supported by baton (command operators in the hostname)",
        ));
    }
    if !crate::http::codec::valid_authority(host) {
        return Err(err(at, format!("\"{host}\" is not a valid host:port")));
    }
    Ok(host.to_string())
}

/// A tunnelling TCP proxy speaks HTTP/1.1 CONNECT to its cluster: an HTTP/2 cluster (Envoy
/// would send an HTTP/2 CONNECT) is refused.
fn tunnel_clusters(clusters: &[Cluster], listeners: &[Listener]) -> Result<(), ConfigError> {
    for (li, l) in listeners.iter().enumerate() {
        for t in l.terminals.iter().filter_map(Terminal::tcp) {
            if t.tunnel_hostname.is_none() {
                continue;
            }
            let ids: Vec<usize> = match &t.cluster {
                ClusterSpec::Single(c) => vec![*c],
                ClusterSpec::Weighted(w) => w.iter().map(|&(c, _)| c).collect(),
            };
            for (i, c) in ids.iter().filter_map(|&i| Some((i, clusters.get(i)?))) {
                if c.http.http2.is_some() {
                    // The cluster's HTTP/2 may be set in either of two places: the cluster
                    // is named, with what it sets.
                    return Err(err(
                        format!("static_resources.clusters[{i}]"),
                        format!(
                            "speaks HTTP/2 (http2_protocol_options): not supported by baton for \
                             the tunnelling TCP proxy of listener {li} (HTTP/2 CONNECT)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The TCP proxy's `weighted_clusters`: at least one cluster, each with a weight ≥ 1.
fn tcp_weighted(
    w: raw::TcpWeightedClusters,
    path: &str,
    lookup: &dyn Fn(&str, String) -> Result<usize, ConfigError>,
) -> Result<ClusterSpec, ConfigError> {
    let (out, _) = validate_action::weighted_list(&w.clusters, path, |c, cp| {
        if c.metadata_match.is_some() {
            return Err(err(
                format!("{cp}.metadata_match"),
                "not supported by baton (subset load balancing)",
            ));
        }
        let idx = lookup(&c.name, format!("{cp}.name"))?;
        let weight = match c.weight {
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => n as u32,
            Some(n) => {
                return Err(err(
                    format!("{cp}.weight"),
                    format!("must be at least 1 (got {n})"),
                ))
            }
            None => return Err(err(format!("{cp}.weight"), "must be at least 1 (got 0)")),
        };
        Ok((idx, weight))
    })?;
    Ok(ClusterSpec::Weighted(out))
}

/// A whole number ≥ 1 for a connection count.
pub fn positive(v: Option<i64>, path: &str) -> Result<u64, ConfigError> {
    match v {
        None => Err(err(path, "required field is missing")),
        Some(n) if n >= 1 => Ok(n as u64),
        Some(n) => Err(err(path, format!("must be at least 1 (got {n})"))),
    }
}

/// `envoy.filters.network.connection_limit`: `stat_prefix` and `max_connections`; a `delay`
/// before closing and `runtime_enabled` are refused.
fn connection_limit_filter(
    f: &raw::TypedExtension,
    path: &str,
) -> Result<ConnectionLimit, ConfigError> {
    no_filter(f, path)?;
    let tpath = format!("{path}.typed_config");
    let payload = typed_payload(&f.typed_config, &tpath, CONNECTION_LIMIT_TYPE)?
        .ok_or_else(|| err(&tpath, "required field is missing"))?;
    let c: raw::ConnectionLimit = from_value(&payload, &tpath)?;
    if c.delay.as_ref().is_some_and(|d| !d.0.is_zero()) {
        return Err(err(
            format!("{tpath}.delay"),
            "not supported by baton (connections past the limit are closed at once)",
        ));
    }
    if c.runtime_enabled.is_some() {
        return Err(err(
            format!("{tpath}.runtime_enabled"),
            "not supported by baton (runtime layers)",
        ));
    }
    let stat_prefix = match c.stat_prefix {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(err(
                format!("{tpath}.stat_prefix"),
                "required field is missing",
            ))
        }
    };
    Ok(ConnectionLimit {
        stat_prefix,
        max_connections: positive(c.max_connections, &format!("{tpath}.max_connections"))?,
    })
}

/// `filter` is only meaningful on access loggers (where `file_access_log` reads it); beside
/// any other extension's `name` and `typed_config` it is refused.
pub(super) fn no_filter(ext: &raw::TypedExtension, path: &str) -> Result<(), ConfigError> {
    match ext.filter {
        None => Ok(()),
        Some(_) => Err(err(
            format!("{path}.filter"),
            "not supported by baton (only access loggers take a filter)",
        )),
    }
}

fn buffer_limit(v: Option<u32>, path: &str) -> Result<u32, ConfigError> {
    match v {
        None => Ok(1024 * 1024),
        Some(0) => Err(err(path, "must be greater than 0")),
        Some(n) => Ok(n),
    }
}

const CODECS: &[EnumEntry<CodecType>] = &[
    ("AUTO", 0, Some(CodecType::Auto)),
    ("HTTP1", 1, Some(CodecType::Http1)),
    ("HTTP2", 2, Some(CodecType::Http2)),
    ("HTTP3", 3, None),
];

const ESCAPED_SLASHES: &[EnumEntry<EscapedSlashes>] = &[
    (
        "IMPLEMENTATION_SPECIFIC_DEFAULT",
        0,
        Some(EscapedSlashes::KeepUnchanged),
    ),
    ("KEEP_UNCHANGED", 1, Some(EscapedSlashes::KeepUnchanged)),
    ("REJECT_REQUEST", 2, Some(EscapedSlashes::RejectRequest)),
    (
        "UNESCAPE_AND_REDIRECT",
        3,
        Some(EscapedSlashes::UnescapeAndRedirect),
    ),
    (
        "UNESCAPE_AND_FORWARD",
        4,
        Some(EscapedSlashes::UnescapeAndForward),
    ),
];

pub(super) const UNDERSCORES: &[EnumEntry<Underscores>] = &[
    ("ALLOW", 0, Some(Underscores::Allow)),
    ("REJECT_REQUEST", 1, Some(Underscores::RejectRequest)),
    ("DROP_HEADER", 2, Some(Underscores::DropHeader)),
];

const SERVER_HEADER: &[EnumEntry<ServerHeader>] = &[
    ("OVERWRITE", 0, Some(ServerHeader::Overwrite)),
    ("APPEND_IF_ABSENT", 1, Some(ServerHeader::AppendIfAbsent)),
    ("PASS_THROUGH", 2, Some(ServerHeader::PassThrough)),
];

/// A cluster the proxy sends its own plain HTTP/1.1 requests to (spans, checks, shadows):
/// the field of `c` that forbids it (TLS, the upstream PROXY protocol, HTTP/2), if any.
fn not_plain(c: &Cluster) -> Option<&'static str> {
    if c.tls.is_some() || c.proxy_protocol.is_some() {
        Some("transport_socket")
    } else if c.http.http2.is_some() {
        Some("http2_protocol_options")
    } else {
        None
    }
}

/// A tracing collector cluster (Zipkin's or the Datadog agent's) must be plain: the reporter speaks plain HTTP/1.1, and a TLS
/// cluster's spans would otherwise leave in the clear.
fn tls_collectors(clusters: &[Cluster], listeners: &[Listener]) -> Result<(), ConfigError> {
    let tracing = listeners.iter().flat_map(|l| {
        let t = l.terminals.iter().filter_map(|t| t.hcm()?.tracing.as_ref());
        t.map(move |t| (l, t))
    });
    for (l, t) in tracing {
        if let Some(field) = clusters.get(t.provider.cluster()).and_then(not_plain) {
            return Err(err(
                format!(
                    "static_resources.clusters[{}].{field}",
                    t.provider.cluster()
                ),
                format!(
                    "cluster \"{}\" is a {} collector_cluster (of listener \"{}\"): baton \
                     reports spans over plain HTTP/1.1, so the collector cluster cannot use \
                     TLS, HTTP/2 or the upstream PROXY protocol",
                    t.provider.cluster_name(),
                    match t.provider {
                        Provider::Zipkin(_) => "Zipkin",
                        Provider::Datadog(_) => "Datadog",
                    },
                    l.name
                ),
            ));
        }
    }
    Ok(())
}

/// An ext_authz filter's cluster must be plain: checks are sent over plain HTTP/1.1
/// (`http/ext_authz.rs`), or for a gRPC service over h2c (`grpc::call`), whatever the
/// cluster's HTTP/2 options say.
fn tls_authz(clusters: &[Cluster], listeners: &[Listener]) -> Result<(), ConfigError> {
    let filters = listeners.iter().flat_map(|l| {
        l.terminals
            .iter()
            .filter_map(|t| t.hcm())
            .flat_map(|h| &h.http_filters)
            .map(move |f| (l, f))
    });
    for (l, f) in filters {
        let HttpFilterKind::ExtAuthz(a) = &f.kind else {
            continue;
        };
        let found = clusters
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == a.cluster);
        let refused = |c: &Cluster| match not_plain(c)? {
            "http2_protocol_options" if a.grpc.is_some() => None,
            field => Some(field),
        };
        if let Some((i, cl, field)) = found.and_then(|(i, c)| Some((i, c, refused(c)?))) {
            let how = if a.grpc.is_some() {
                "gRPC checks over h2c, so it cannot use TLS"
            } else {
                "checks over plain HTTP/1.1, so it cannot use TLS, HTTP/2"
            };
            return Err(err(
                format!("static_resources.clusters[{i}].{field}"),
                format!(
                    "cluster \"{}\" is an ext_authz service (filter \"{}\" of listener \"{}\"): \
                     baton sends {how} or the upstream PROXY protocol",
                    cl.name, f.name, l.name
                ),
            ));
        }
    }
    Ok(())
}

/// A mirror cluster named in a route must be plain: shadows are sent over plain HTTP/1.1
/// (`http/mirror.rs`).
fn tls_mirrors(clusters: &[Cluster], listeners: &[Listener]) -> Result<(), ConfigError> {
    let hcms = listeners.iter().flat_map(|l| {
        l.terminals
            .iter()
            .filter_map(|t| t.hcm())
            .map(move |h| (l, h))
    });
    for (l, h) in hcms {
        let routes = h.route_config.virtual_hosts.iter().flat_map(|v| &v.routes);
        for r in routes {
            let RouteAction::Forward(f) = &r.action else {
                continue;
            };
            for m in &f.mirrors {
                let MirrorTarget::Cluster(c) = m.target else {
                    continue;
                };
                let found = clusters.get(c).and_then(|cl| Some((cl, not_plain(cl)?)));
                if let Some((cl, field)) = found {
                    return Err(err(
                        format!("static_resources.clusters[{c}].{field}"),
                        format!(
                            "cluster \"{}\" is a request mirror cluster (of listener \"{}\"): \
                             baton sends shadow requests over plain HTTP/1.1, so a mirror \
                             cluster cannot use TLS, HTTP/2 or the upstream PROXY protocol",
                            cl.name, l.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `tcp_keepalive`, each value within what Linux accepts for its socket option (a value it
/// would refuse at connect time is refused here instead).
fn tcp_keepalive(k: raw::TcpKeepalive, path: &str) -> Result<TcpKeepalive, ConfigError> {
    let check = |v: Option<u32>, name: &str, max: u32| match v {
        Some(n) if n == 0 || n > max => Err(err(
            join_key(path, name),
            format!("must be between 1 and {max}"),
        )),
        _ => Ok(v),
    };
    Ok(TcpKeepalive {
        probes: check(k.keepalive_probes, "keepalive_probes", 127)?,
        time: check(k.keepalive_time, "keepalive_time", 32767)?,
        interval: check(k.keepalive_interval, "keepalive_interval", 32767)?,
    })
}

const FORWARD_CLIENT_CERT: &[EnumEntry<ForwardClientCert>] = &[
    ("SANITIZE", 0, Some(ForwardClientCert::Sanitize)),
    ("FORWARD_ONLY", 1, Some(ForwardClientCert::ForwardOnly)),
    // These two write the client certificate's details (its SHA-256 hash first) into the
    // header; not implemented.
    ("APPEND_FORWARD", 2, None),
    ("SANITIZE_SET", 3, None),
    (
        "ALWAYS_FORWARD_ONLY",
        4,
        Some(ForwardClientCert::AlwaysForwardOnly),
    ),
];

fn hcm(
    h: raw::HttpConnectionManager,
    path: &str,
    clusters: &HashMap<String, usize>,
) -> Result<HttpConnectionManager, ConfigError> {
    let p = |f: &str| join_key(path, f);
    if h.stat_prefix.is_empty() {
        return Err(err(p("stat_prefix"), "must not be empty"));
    }
    let mut first = None;
    let codec_type = keep(
        enum_or(&h.codec_type, &p("codec_type"), CODECS, CodecType::Auto),
        &mut first,
    );
    let route_config = h
        .route_config
        .ok_or_else(|| err(p("route_config"), "required field is missing"))
        .and_then(|rc| validate_route::route_config(rc, &p("route_config"), clusters));
    let route_config = keep(route_config, &mut first);
    let http_filters = keep(
        validate_filters::http_filters(&h.http_filters, &p("http_filters")),
        &mut first,
    );
    if let (Some(rc), Some(filters)) = (&route_config, &http_filters) {
        keep(
            validate_filters::check_per_filter(rc, filters, &p("route_config")),
            &mut first,
        );
    }
    let http_filters = http_filters.unwrap_or_default();
    let max_kb = h.max_request_headers_kb.unwrap_or(60);
    if !(1..=8192).contains(&max_kb) {
        keep::<()>(
            Err(err(
                p("max_request_headers_kb"),
                format!("{max_kb} out of range (1..=8192)"),
            )),
            &mut first,
        );
    }
    let mut logs = Each::new();
    for (i, a) in h.access_log.iter().enumerate() {
        logs.add(file_access_log(a, &format!("{}[{i}]", p("access_log"))));
    }
    let access_log = keep(logs.finish(), &mut first);
    let server_header_transformation = keep(
        enum_or(
            &h.server_header_transformation,
            &p("server_header_transformation"),
            SERVER_HEADER,
            ServerHeader::Overwrite,
        ),
        &mut first,
    );
    let (
        Some(codec_type),
        Some(route_config),
        Some(access_log),
        Some(server_header_transformation),
        None,
    ) = (
        codec_type,
        route_config,
        access_log,
        server_header_transformation,
        &first,
    )
    else {
        return Err(first.unwrap_or_else(|| err(path, "invalid")));
    };
    let cp = h
        .common_http_protocol_options
        .unwrap_or(raw::HttpProtocolOptions {
            idle_timeout: None,
            max_connection_duration: None,
            max_headers_count: None,
            max_requests_per_connection: None,
            headers_with_underscores_action: None,
        });
    let cpath = |f: &str| join_key(&p("common_http_protocol_options"), f);
    let idle = cp.idle_timeout;
    let max_headers_count = cp.max_headers_count.unwrap_or(100);
    if !(1..=crate::http::codec::MAX_HEADERS as u32).contains(&max_headers_count) {
        return Err(err(
            cpath("max_headers_count"),
            format!(
                "{max_headers_count} out of range (1..={}: baton parses at most {} headers)",
                crate::http::codec::MAX_HEADERS,
                crate::http::codec::MAX_HEADERS
            ),
        ));
    }
    let max_requests_per_connection = match cp.max_requests_per_connection {
        // Envoy: 0 means no limit.
        Some(0) | None => None,
        Some(n) => Some(n),
    };
    let headers_with_underscores = enum_or(
        &cp.headers_with_underscores_action,
        &cpath("headers_with_underscores_action"),
        UNDERSCORES,
        Underscores::Allow,
    )?;
    let mut upgrades = Vec::new();
    for (i, u) in h.upgrade_configs.iter().enumerate() {
        let upath = format!("{}[{i}]", p("upgrade_configs"));
        if !u.filters.is_empty() {
            return Err(err(
                join_key(&upath, "filters"),
                "custom upgrade filter chains are not implemented",
            ));
        }
        let t = validate_action::upgrade_type(&u.upgrade_type, &join_key(&upath, "upgrade_type"))?;
        upgrades.push((t, u.enabled.unwrap_or(true)));
    }
    let local_reply = h
        .local_reply_config
        .map(|c| validate_local_reply::local_reply_config(c, &p("local_reply_config")))
        .transpose()?;
    let internal_addresses = match h.internal_address_config {
        None => None,
        Some(c) => cidr_ranges(&c.cidr_ranges, &p("internal_address_config.cidr_ranges"))?,
    };
    let (accept_http_10, default_host_for_http_10) = match h.http_protocol_options {
        None => (false, None),
        Some(o) => {
            let accept = o.accept_http_10.unwrap_or(false);
            let host = o.default_host_for_http_10.filter(|h| !h.is_empty());
            if let Some(host) = &host {
                if !crate::http::codec::valid_authority(host) {
                    return Err(err(
                        p("http_protocol_options.default_host_for_http_10"),
                        format!("\"{host}\" is not a valid host"),
                    ));
                }
            }
            (accept, host)
        }
    };
    let http2 = match &h.http2_protocol_options {
        Some(o) => super::validate_http2::downstream(o, &p("http2_protocol_options"))?,
        None => Http2Options::default(),
    };
    let tracing = h
        .tracing
        .map(|t| super::validate_tracing::tracing(t, &p("tracing"), clusters))
        .transpose()?
        .map(Box::new);
    let via = h.via.filter(|v| !v.is_empty());
    let scheme_to_overwrite = match &h.scheme_header_transformation {
        Some(t) => scheme_transformation(t, &p("scheme_header_transformation"))?,
        None => None,
    };
    let strip_host_port = match (
        h.strip_matching_host_port.unwrap_or(false),
        h.strip_any_host_port.unwrap_or(false),
    ) {
        (true, true) => {
            return Err(err(
                p("strip_matching_host_port"),
                "must not be set with strip_any_host_port",
            ))
        }
        (true, false) => StripPort::Matching,
        (false, true) => StripPort::Any,
        (false, false) => StripPort::Keep,
    };
    if let Some(v) = &via {
        validate_route::plain_header_value(v, &p("via"))?;
    }
    Ok(HttpConnectionManager {
        upgrades,
        stat_prefix: h.stat_prefix,
        route_config,
        idle_timeout: timeout(idle, Some(Duration::from_secs(3600))),
        request_headers_timeout: timeout(h.request_headers_timeout, None),
        request_timeout: timeout(h.request_timeout, None),
        stream_idle_timeout: timeout(h.stream_idle_timeout, Some(Duration::from_secs(300))),
        max_request_headers_kb: max_kb,
        server_name: h.server_name.unwrap_or_else(|| "baton".to_string()),
        server_header_transformation,
        codec_type,
        http2,
        use_remote_address: h.use_remote_address.unwrap_or(false),
        xff_num_trusted_hops: h.xff_num_trusted_hops.unwrap_or(0),
        generate_request_id: h.generate_request_id.unwrap_or(true),
        normalize_path: h.normalize_path.unwrap_or(false),
        merge_slashes: h.merge_slashes.unwrap_or(false),
        access_log,
        internal_addresses,
        accept_http_10,
        default_host_for_http_10,
        http_filters,
        max_connection_duration: timeout(cp.max_connection_duration, None),
        max_headers_count,
        max_requests_per_connection,
        headers_with_underscores,
        strip_host_port,
        strip_trailing_host_dot: h.strip_trailing_host_dot.unwrap_or(false),
        escaped_slashes: enum_or(
            &h.path_with_escaped_slashes_action,
            &p("path_with_escaped_slashes_action"),
            ESCAPED_SLASHES,
            EscapedSlashes::KeepUnchanged,
        )?,
        skip_xff_append: h.skip_xff_append.unwrap_or(false),
        add_user_agent: h.add_user_agent.unwrap_or(false),
        proxy_100_continue: h.proxy_100_continue.unwrap_or(false),
        delayed_close_timeout: timeout(h.delayed_close_timeout, Some(Duration::from_secs(1))),
        forward_client_cert_details: enum_or(
            &h.forward_client_cert_details,
            &p("forward_client_cert_details"),
            FORWARD_CLIENT_CERT,
            ForwardClientCert::Sanitize,
        )?,
        preserve_external_request_id: h.preserve_external_request_id.unwrap_or(false),
        via,
        scheme_to_overwrite,
        local_reply,
        tracing,
    })
}

/// `cidr_ranges`: an address and a prefix length that fits it. An empty list is `None`
/// (Envoy then uses its default internal ranges).
#[allow(clippy::type_complexity)]
pub(super) fn cidr_ranges(
    ranges: &[raw::CidrRange],
    path: &str,
) -> Result<Option<Vec<(std::net::IpAddr, u8)>>, ConfigError> {
    if ranges.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        out.push(cidr(r, &format!("{path}[{i}]"))?);
    }
    Ok(Some(out))
}

/// A `CidrRange`: an address and a prefix length that fits it.
pub(super) fn cidr(r: &raw::CidrRange, rp: &str) -> Result<(std::net::IpAddr, u8), ConfigError> {
    let ip: std::net::IpAddr = r.address_prefix.parse().map_err(|_| {
        err(
            format!("{rp}.address_prefix"),
            format!("\"{}\" is not an IP address", r.address_prefix),
        )
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = r.prefix_len.unwrap_or(0);
    if len > max {
        return Err(err(
            format!("{rp}.prefix_len"),
            format!("{len} out of range (0..={max})"),
        ));
    }
    Ok((ip, len as u8))
}

fn file_access_log(a: &raw::TypedExtension, path: &str) -> Result<AccessLog, ConfigError> {
    let type_name = extension_kind(
        a,
        path,
        "access logger",
        &[FILE_LOG_TYPE, STDOUT_LOG_TYPE, STDERR_LOG_TYPE],
    )?;
    // Envoy's stream loggers are written as files at /dev/stdout and /dev/stderr.
    let stream = match type_name {
        STDOUT_LOG_TYPE => Some("/dev/stdout"),
        STDERR_LOG_TYPE => Some("/dev/stderr"),
        _ => None,
    };
    let filter = match &a.filter {
        None => None,
        Some(v) => {
            let fpath = format!("{path}.filter");
            let raw: raw::AccessLogFilter = from_value(v, &fpath)?;
            Some(validate_local_reply::log_filter(raw, &fpath)?)
        }
    };
    let tpath = format!("{path}.typed_config");
    let payload = typed_payload(&a.typed_config, &tpath, type_name)?;
    let f: raw::FileAccessLog = match (stream, payload) {
        (Some(dev), payload) => {
            let s: raw::StreamAccessLog = match payload {
                Some(p) => from_value(&p, &tpath)?,
                None => raw::StreamAccessLog { log_format: None },
            };
            raw::FileAccessLog {
                path: dev.to_string(),
                format: None,
                log_format: s.log_format,
            }
        }
        (None, Some(p)) => from_value(&p, &tpath)?,
        (None, None) => return Err(err(&tpath, "required field is missing")),
    };
    if f.path.is_empty() {
        return Err(err(format!("{tpath}.path"), "must not be empty"));
    }
    if let Some(lf) = &f.log_format {
        let lpath = format!("{tpath}.log_format");
        if lf.json_format_options.is_some() && lf.json_format.is_none() {
            return Err(err(
                format!("{lpath}.json_format_options"),
                "applies to json_format only",
            ));
        }
        if let Some(j) = &lf.json_format {
            if f.format.is_some() {
                return Err(err(tpath, "only one of format, log_format may be set"));
            }
            if lf.text_format.is_some() || lf.text_format_source.is_some() {
                return Err(err(
                    lpath,
                    "only one of text_format, text_format_source, json_format may be set",
                ));
            }
            let jpath = format!("{lpath}.json_format");
            if !matches!(j, Value::Mapping(_)) {
                return Err(err(jpath, "expected a map (a JSON object)"));
            }
            let json = validate_local_reply::json(j, &jpath, format::check_access_log)?;
            if f.path.is_empty() {
                return Err(err(format!("{tpath}.path"), "must not be empty"));
            }
            return Ok(AccessLog {
                path: f.path,
                format: String::new(),
                json: Some(json),
                filter,
            });
        }
    }
    let (format, fpath) = match (f.format, f.log_format) {
        (None, None) => (DEFAULT_ACCESS_LOG_FORMAT.to_string(), tpath.clone()),
        (Some(s), None) => (s, format!("{tpath}.format")),
        (None, Some(lf)) => {
            let lpath = format!("{tpath}.log_format");
            match (lf.text_format, lf.text_format_source) {
                (Some(s), None) => (s, format!("{lpath}.text_format")),
                (None, Some(ds)) => {
                    let dpath = format!("{lpath}.text_format_source");
                    (data_source(&ds, &dpath)?, dpath)
                }
                (None, None) => (DEFAULT_ACCESS_LOG_FORMAT.to_string(), lpath),
                (Some(_), Some(_)) => {
                    return Err(err(
                        lpath,
                        "only one of text_format, text_format_source may be set",
                    ))
                }
            }
        }
        (Some(_), Some(_)) => return Err(err(tpath, "only one of format, log_format may be set")),
    };
    format::check_access_log(&format).map_err(|m| err(fpath, m))?;
    Ok(AccessLog {
        path: f.path,
        format,
        json: None,
        filter,
    })
}

const DISCOVERY: &[EnumEntry<DiscoveryType>] = &[
    ("STATIC", 0, Some(DiscoveryType::Static)),
    ("STRICT_DNS", 1, Some(DiscoveryType::StrictDns)),
    ("LOGICAL_DNS", 2, Some(DiscoveryType::LogicalDns)),
    ("EDS", 3, None),
    ("ORIGINAL_DST", 4, None),
];

const LB_POLICIES: &[EnumEntry<LbPolicy>] = &[
    ("ROUND_ROBIN", 0, Some(LbPolicy::RoundRobin)),
    ("LEAST_REQUEST", 1, Some(LbPolicy::LeastRequest)),
    ("RING_HASH", 2, Some(LbPolicy::RingHash)),
    ("RANDOM", 3, Some(LbPolicy::Random)),
    ("MAGLEV", 5, Some(LbPolicy::Maglev)),
    ("CLUSTER_PROVIDED", 6, None),
    ("LOAD_BALANCING_POLICY_CONFIG", 7, None),
];

const DNS_FAMILIES: &[EnumEntry<DnsLookupFamily>] = &[
    ("AUTO", 0, Some(DnsLookupFamily::Auto)),
    ("V4_ONLY", 1, Some(DnsLookupFamily::V4Only)),
    ("V6_ONLY", 2, Some(DnsLookupFamily::V6Only)),
    ("V4_PREFERRED", 3, Some(DnsLookupFamily::V4Preferred)),
    ("ALL", 4, Some(DnsLookupFamily::All)),
];

fn cluster(c: raw::Cluster, path: &str) -> Result<Cluster, ConfigError> {
    let p = |f: &str| join_key(path, f);
    if c.name.is_empty() {
        return Err(err(p("name"), "must not be empty"));
    }
    let connect_timeout = c.connect_timeout.map_or(Duration::from_secs(5), |d| d.0);
    if connect_timeout.is_zero() {
        return Err(err(p("connect_timeout"), "must be greater than 0s"));
    }
    let discovery = enum_or(&c.discovery, &p("type"), DISCOVERY, DiscoveryType::Static)?;
    let dns_refresh_rate = c.dns_refresh_rate.map_or(Duration::from_secs(5), |d| d.0);
    if dns_refresh_rate <= Duration::from_millis(1) {
        return Err(err(p("dns_refresh_rate"), "must be greater than 1ms"));
    }
    let (load_assignment_cluster_name, endpoints, mut balancing) = match c.load_assignment {
        None => (String::new(), Vec::new(), Balancing::default()),
        Some(la) => {
            let lpath = p("load_assignment");
            if la.cluster_name.is_empty() {
                return Err(err(format!("{lpath}.cluster_name"), "must not be empty"));
            }
            let mut balancing = Balancing::default();
            if let Some(f) = la.policy.and_then(|p| p.overprovisioning_factor) {
                if f == 0 {
                    return Err(err(
                        format!("{lpath}.policy.overprovisioning_factor"),
                        "must be at least 1",
                    ));
                }
                balancing.overprovisioning_factor = f;
            }
            let mut eps = Vec::new();
            for (i, loc) in la.endpoints.iter().enumerate() {
                let locpath = format!("{lpath}.endpoints[{i}]");
                if loc.load_balancing_weight == Some(0) {
                    return Err(err(
                        format!("{locpath}.load_balancing_weight"),
                        "must be at least 1",
                    ));
                }
                if loc.priority.is_some_and(|p| p > 128) {
                    // Envoy's limit (endpoint_components.proto: lte 128).
                    return Err(err(format!("{locpath}.priority"), "must be at most 128"));
                }
                let l = loc.locality.as_ref();
                balancing.localities.push(Locality {
                    region: l.map(|l| l.region.clone()).unwrap_or_default(),
                    zone: l.map(|l| l.zone.clone()).unwrap_or_default(),
                    sub_zone: l.map(|l| l.sub_zone.clone()).unwrap_or_default(),
                    weight: loc.load_balancing_weight.unwrap_or(0),
                    priority: loc.priority.unwrap_or(0),
                });
                for (j, lb) in loc.lb_endpoints.iter().enumerate() {
                    let eppath = format!("{locpath}.lb_endpoints[{j}]");
                    let epath = format!("{eppath}.endpoint.address");
                    let (host, port) =
                        socket_address(Some(&lb.endpoint.address), &epath, false, PROTOCOLS)?;
                    if discovery == DiscoveryType::Static && host.parse::<IpAddr>().is_err() {
                        return Err(err(
                            format!("{epath}.socket_address.address"),
                            format!("a STATIC cluster needs IP addresses, got \"{host}\" (use STRICT_DNS or LOGICAL_DNS)"),
                        ));
                    }
                    let weight = lb.load_balancing_weight.unwrap_or(1);
                    if weight == 0 {
                        return Err(err(
                            format!("{eppath}.load_balancing_weight"),
                            "must be at least 1",
                        ));
                    }
                    let health_check_port = match &lb.endpoint.health_check_config {
                        Some(h) => match h.port_value {
                            None | Some(0) => None,
                            Some(v) => Some(u16::try_from(v).map_err(|_| {
                                err(
                                    format!("{eppath}.endpoint.health_check_config.port_value"),
                                    format!("{v} is not a port (0..=65535)"),
                                )
                            })?),
                        },
                        None => None,
                    };
                    eps.push(EndpointAddr {
                        host,
                        port,
                        weight,
                        locality: i,
                        hostname: lb.endpoint.hostname.clone(),
                        health_check_port,
                        health_check_hostname: lb
                            .endpoint
                            .health_check_config
                            .as_ref()
                            .map(|h| h.hostname.clone())
                            .unwrap_or_default(),
                    });
                }
            }
            (la.cluster_name, eps, balancing)
        }
    };
    if discovery == DiscoveryType::LogicalDns && endpoints.len() != 1 {
        return Err(err(
            p("load_assignment"),
            "a LOGICAL_DNS cluster needs exactly one endpoint",
        ));
    }
    // The upstream PROXY protocol socket wraps the one that carries the bytes.
    let (proxy_protocol, inner) = match &c.transport_socket {
        Some(ts) => super::validate_proxy_protocol::upstream_socket(ts, &p("transport_socket"))?,
        None => (None, None),
    };
    let mut tls = match (&inner, &c.transport_socket) {
        (Some(ts), _) => {
            super::tls::upstream_socket(ts, &p("transport_socket.typed_config.transport_socket"))?
        }
        (None, Some(ts)) => super::tls::upstream_socket(ts, &p("transport_socket"))?,
        (None, None) => None,
    };
    let health_check = super::validate_health::health_checks(c.health_checks, tls.is_some(), path)?;
    balancing.locality_weighted = c
        .common_lb_config
        .as_ref()
        .is_some_and(|c| c.locality_weighted_lb_config.is_some());
    if let Some(ch) = c
        .common_lb_config
        .as_ref()
        .and_then(|c| c.consistent_hashing_lb_config.as_ref())
    {
        let chp = p("common_lb_config.consistent_hashing_lb_config");
        if ch.hash_balance_factor.is_some() {
            return Err(err(
                join_key(&chp, "hash_balance_factor"),
                "not supported by baton (bounded-load consistent hashing)",
            ));
        }
        balancing.hash_by_hostname = ch.use_hostname_for_hashing.unwrap_or(false);
        // Envoy hashes a host's name: a STATIC host without `hostname` has none.
        if balancing.hash_by_hostname
            && discovery == DiscoveryType::Static
            && endpoints.iter().any(|e| e.hostname.is_empty())
        {
            return Err(err(
                join_key(&chp, "use_hostname_for_hashing"),
                "every endpoint of a STATIC cluster needs a hostname to hash by",
            ));
        }
    }
    if let Some(lr) = &c.least_request_lb_config {
        let lrpath = p("least_request_lb_config");
        if let Some(n) = lr.choice_count {
            if n < 2 {
                return Err(err(
                    format!("{lrpath}.choice_count"),
                    format!("must be at least 2 (got {n})"),
                ));
            }
            balancing.choice_count = n;
        }
        if let Some(b) = &lr.active_request_bias {
            if b.runtime_key.as_deref() == Some("") {
                return Err(err(
                    format!("{lrpath}.active_request_bias.runtime_key"),
                    "must not be empty",
                ));
            }
            let bias = b.default_value.unwrap_or(0.0);
            if !(0.0..=1e9).contains(&bias) {
                return Err(err(
                    format!("{lrpath}.active_request_bias.default_value"),
                    format!("must be at least 0 (got {bias})"),
                ));
            }
            balancing.active_request_bias = bias;
        }
    }
    hashing(
        c.ring_hash_lb_config.as_ref(),
        c.maglev_lb_config.as_ref(),
        &mut balancing,
        path,
    )?;
    let healthy_panic_threshold =
        super::validate_health::panic_threshold(c.common_lb_config, path)?;
    let tcp_keepalive = match c.upstream_connection_options {
        Some(o) => match o.tcp_keepalive {
            Some(k) => Some(tcp_keepalive(
                k,
                &p("upstream_connection_options.tcp_keepalive"),
            )?),
            None => None,
        },
        None => None,
    };
    let http = super::validate_upstream::options(
        super::validate_upstream::ClusterFields {
            typed: &c.typed_extension_protocol_options,
            common: c.common_http_protocol_options.as_ref(),
            http1: c.http_protocol_options.as_ref(),
            http2: c.http2_protocol_options.as_ref(),
            upstream: c.upstream_http_protocol_options.as_ref(),
        },
        path,
    )?;
    if (http.auto_sni || http.auto_san_validation) && tls.is_none() {
        let field = if http.auto_sni {
            "auto_sni"
        } else {
            "auto_san_validation"
        };
        return Err(err(
            p("transport_socket"),
            format!("{field} needs a TLS transport_socket (it names the TLS server)"),
        ));
    }
    if http.auto_san_validation && !http.auto_sni {
        return Err(err(
            p("typed_extension_protocol_options"),
            "auto_san_validation without auto_sni is not supported by baton (the name checked \
             is the one auto_sni sends)",
        ));
    }
    if let Some(t) = tls.as_mut() {
        if http.http2.is_some() && !t.alpn_http11 && !t.alpn_h2 {
            // Envoy's HTTP/2 connection pool offers `h2` when the TLS context lists no ALPN.
            t.alpn_h2 = true;
        }
        if http.http2.is_none() && t.alpn_h2 {
            return Err(err(
                p("transport_socket"),
                "alpn_protocols offers h2 but the cluster speaks HTTP/1.1 (set \
                 http2_protocol_options to speak HTTP/2 to it)",
            ));
        }
    }
    if let Some(t) = tls.as_mut().filter(|_| http.auto_san_validation) {
        if t.validation.is_none() {
            return Err(err(
                p("transport_socket"),
                "auto_san_validation needs a validation_context with a trusted_ca (names are \
                 only checked on a verified certificate)",
            ));
        }
        t.verify_name = true;
    }
    let outlier_detection = c
        .outlier_detection
        .as_ref()
        .map(|o| super::validate_health::outlier_detection(o, &p("outlier_detection")))
        .transpose()?;
    Ok(Cluster {
        http,
        balancing,
        outlier_detection,
        health_check,
        healthy_panic_threshold,
        tcp_keepalive,
        connect_timeout,
        discovery,
        lb_policy: enum_or(
            &c.lb_policy,
            &p("lb_policy"),
            LB_POLICIES,
            LbPolicy::RoundRobin,
        )?,
        dns_lookup_family: enum_or(
            &c.dns_lookup_family,
            &p("dns_lookup_family"),
            DNS_FAMILIES,
            DnsLookupFamily::Auto,
        )?,
        dns_refresh_rate,
        endpoints,
        per_connection_buffer_limit_bytes: buffer_limit(
            c.per_connection_buffer_limit_bytes,
            &p("per_connection_buffer_limit_bytes"),
        )?,
        load_assignment_cluster_name,
        tls,
        proxy_protocol,
        circuit_breakers: match &c.circuit_breakers {
            Some(cb) => circuit_breakers(cb, &p("circuit_breakers"))?,
            None => CircuitBreakers::default(),
        },
        name: c.name,
    })
}

/// `ring_hash_lb_config` and `maglev_lb_config`, with Envoy's limits.
fn hashing(
    ring: Option<&raw::RingHashLbConfig>,
    maglev: Option<&raw::MaglevLbConfig>,
    b: &mut Balancing,
    path: &str,
) -> Result<(), ConfigError> {
    const MAX_RING: u64 = 8 << 20;
    if let Some(r) = ring {
        let rp = join_key(path, "ring_hash_lb_config");
        for (v, f) in [
            (r.minimum_ring_size, "minimum_ring_size"),
            (r.maximum_ring_size, "maximum_ring_size"),
        ] {
            if v.is_some_and(|v| v == 0 || v > MAX_RING) {
                return Err(err(join_key(&rp, f), format!("must be 1..={MAX_RING}")));
            }
        }
        b.ring_min = r.minimum_ring_size.unwrap_or(b.ring_min);
        b.ring_max = r.maximum_ring_size.unwrap_or(b.ring_max);
        if b.ring_min > b.ring_max {
            return Err(err(
                rp,
                format!(
                    "minimum_ring_size ({}) > maximum_ring_size ({})",
                    b.ring_min, b.ring_max
                ),
            ));
        }
        if let Some(h) = &r.hash_function {
            if !matches!(h, EnumValue::Number(0))
                && !matches!(h, EnumValue::Name(n) if n.eq_ignore_ascii_case("XX_HASH"))
            {
                return Err(err(
                    join_key(&rp, "hash_function"),
                    "only XX_HASH is supported",
                ));
            }
        }
    }
    if let Some(size) = maglev.and_then(|m| m.table_size) {
        let at = join_key(path, "maglev_lb_config.table_size");
        let prime = size >= 2
            && (2..)
                .take_while(|d: &u64| d * d <= size)
                .all(|d| size % d != 0);
        if !prime || size > 5_000_011 {
            return Err(err(at, format!("{size} is not a prime up to 5000011")));
        }
        b.maglev_size = size;
    }
    Ok(())
}

/// Envoy's `RoutingPriority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Default,
    High,
}

const PRIORITIES: &[EnumEntry<Priority>] = &[
    ("DEFAULT", 0, Some(Priority::Default)),
    ("HIGH", 1, Some(Priority::High)),
];

/// `circuit_breakers.thresholds`: as in Envoy, the first entry of a priority counts, and a
/// priority without one keeps the defaults.
fn circuit_breakers(cb: &raw::CircuitBreakers, path: &str) -> Result<CircuitBreakers, ConfigError> {
    let mut out = CircuitBreakers::default();
    let mut seen = [false; 2];
    for (i, t) in cb.thresholds.iter().enumerate() {
        let tp = format!("{path}.thresholds[{i}]");
        let prio = enum_or(
            &t.priority,
            &join_key(&tp, "priority"),
            PRIORITIES,
            Priority::Default,
        )?;
        let th = thresholds(t, &tp)?;
        let (slot, done) = match prio {
            Priority::Default => (&mut out.default, &mut seen[0]),
            Priority::High => (&mut out.high, &mut seen[1]),
        };
        if !*done {
            *slot = th;
            *done = true;
        }
    }
    Ok(out)
}

fn thresholds(t: &raw::Thresholds, path: &str) -> Result<Thresholds, ConfigError> {
    let d = Thresholds::default();
    let retry_budget = match &t.retry_budget {
        None => None,
        Some(b) => {
            let budget_percent = b.budget_percent.as_ref().map_or(20.0, |p| p.value);
            if !(0.0..=100.0).contains(&budget_percent) {
                return Err(err(
                    format!("{path}.retry_budget.budget_percent.value"),
                    format!("{budget_percent} is not a percentage (0 to 100)"),
                ));
            }
            Some(RetryBudget {
                budget_percent,
                min_retry_concurrency: b.min_retry_concurrency.unwrap_or(3),
            })
        }
    };
    Ok(Thresholds {
        max_connections: t.max_connections.unwrap_or(d.max_connections),
        max_pending_requests: t.max_pending_requests.unwrap_or(d.max_pending_requests),
        max_requests: t.max_requests.unwrap_or(d.max_requests),
        max_retries: t.max_retries.unwrap_or(d.max_retries),
        retry_budget,
        track_remaining: t.track_remaining,
    })
}

/// `scheme_header_transformation`: `scheme_to_overwrite` (Envoy allows only `http` and
/// `https`) is honoured. `match_upstream: true` asks for the `:scheme` sent upstream to follow
/// the upstream's transport, which is what baton's HTTP/2 client always sends (an HTTP/1.1
/// upstream gets no `:scheme`): accepted either way.
fn scheme_transformation(
    t: &raw::SchemeHeaderTransformation,
    path: &str,
) -> Result<Option<bool>, ConfigError> {
    match t.scheme_to_overwrite.as_deref() {
        Some("https") => Ok(Some(true)),
        Some("http") => Ok(Some(false)),
        Some(other) => Err(err(
            join_key(path, "scheme_to_overwrite"),
            format!("\"{other}\" is not a valid value (must be http or https)"),
        )),
        None => Ok(None),
    }
}
