//! `layered_runtime`: Envoy's runtime keys, as far as baton implements them. Static layers are
//! read (later layers override earlier ones, as in Envoy); a key baton does not implement is
//! refused, naming the key's path, because accepting it would promise a behaviour change that
//! does not happen.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::de::{join_key, report};
use super::raw;
use super::validate::{err, positive};
use super::ConfigError;

/// What the runtime sets, for the keys baton implements. Paths are kept for later errors.
#[derive(Debug, Default)]
pub struct Runtime {
    /// `overload.global_downstream_max_connections`, with where it was set.
    pub global_downstream_max_connections: Option<(u64, String)>,
    /// `re2.max_program_size.error_level`: the program-size limit of every regex that does not
    /// set its own `google_re2.max_program_size`.
    pub re2_error_level: Option<u32>,
    /// `envoy.resource_limits.listener.<name>.connection_limit`: listener name, limit, path.
    pub listener_connection_limits: Vec<(String, u64, String)>,
}

/// The keys baton implements, for the refusal message.
pub const KEYS: &[&str] = &[
    "envoy.resource_limits.listener.<name>.connection_limit",
    "overload.global_downstream_max_connections",
    "re2.max_program_size.error_level",
];

/// The per-listener connection limit key is this prefix, a listener's name (which may hold
/// dots), then this suffix.
const LISTENER_LIMIT: (&str, &str) = ("envoy.resource_limits.listener.", ".connection_limit");

/// Reads the layers. An admin layer is accepted: it holds what the admin interface's
/// `/runtime_modify` sets, and baton has no such endpoint, so it stays empty.
pub fn layered(lr: raw::LayeredRuntime, path: &str) -> Result<Runtime, ConfigError> {
    // Flattened key → (value, path of the value), later layers overriding earlier ones.
    let mut keys: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let mut first: Option<ConfigError> = None;
    let mut fail = |e: ConfigError| {
        report(e.clone());
        first.get_or_insert(e);
    };
    for (i, layer) in lr.layers.iter().enumerate() {
        let lpath = format!("{path}.layers[{i}]");
        let kinds = [
            layer.static_layer.is_some(),
            layer.admin_layer.is_some(),
            layer.disk_layer.is_some(),
            layer.rtds_layer.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            fail(err(
                &lpath,
                "exactly one of static_layer, admin_layer, disk_layer, rtds_layer is required",
            ));
            continue;
        }
        if let Some(v) = &layer.static_layer {
            flatten(
                v,
                "",
                &join_key(&lpath, "static_layer"),
                &mut keys,
                &mut fail,
            );
        }
        match &layer.admin_layer {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(m)) if m.is_empty() => {}
            Some(_) => fail(err(
                join_key(&lpath, "admin_layer"),
                "an admin layer has no settings (expected {})",
            )),
        }
        if layer.disk_layer.is_some() {
            fail(err(
                join_key(&lpath, "disk_layer"),
                "not supported by baton (disk runtime layers; use a static_layer)",
            ));
        }
        if layer.rtds_layer.is_some() {
            fail(err(
                join_key(&lpath, "rtds_layer"),
                "not supported by baton (RTDS; use a static_layer)",
            ));
        }
    }
    let mut rt = Runtime::default();
    for (key, (value, vpath)) in keys {
        if let Some(name) = listener_limit_name(&key) {
            match integer(&value).and_then(|n| u64::try_from(n).ok()) {
                Some(n) => rt
                    .listener_connection_limits
                    .push((name.to_string(), n, vpath)),
                None => fail(err(vpath, "expected a whole number of at least 0")),
            }
            continue;
        }
        match key.as_str() {
            "overload.global_downstream_max_connections" => {
                match integer(&value).and_then(|n| positive(Some(n), &vpath).ok()) {
                    Some(n) => rt.global_downstream_max_connections = Some((n, vpath)),
                    None => fail(err(vpath, "expected a whole number of at least 1")),
                }
            }
            "re2.max_program_size.error_level" => {
                match integer(&value).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => rt.re2_error_level = Some(n),
                    None => fail(err(vpath, "expected a whole number from 0 to 4294967295")),
                }
            }
            _ => fail(err(
                vpath,
                format!(
                    "runtime key \"{key}\" is not implemented by baton (implemented: {})",
                    KEYS.join(", ")
                ),
            )),
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(rt),
    }
}

/// Envoy's runtime reads nested maps as dotted keys: `{a: {b: 1}}` is `a.b = 1`.
fn flatten(
    v: &Value,
    prefix: &str,
    path: &str,
    out: &mut BTreeMap<String, (Value, String)>,
    fail: &mut impl FnMut(ConfigError),
) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let k = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        fail(err(path, "runtime keys must be strings"));
                        continue;
                    }
                };
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(child, &key, &join_key(path, &k), out, fail);
            }
        }
        Value::Sequence(_) | Value::Tagged(_) => fail(err(
            path,
            "a runtime value must be a number, string or boolean",
        )),
        scalar => {
            out.insert(prefix.to_string(), (scalar.clone(), path.to_string()));
        }
    }
}

/// The listener named by an `envoy.resource_limits.listener.<name>.connection_limit` key.
fn listener_limit_name(key: &str) -> Option<&str> {
    let name = key
        .strip_prefix(LISTENER_LIMIT.0)?
        .strip_suffix(LISTENER_LIMIT.1)?;
    (!name.is_empty()).then_some(name)
}

/// A runtime number, written as a number or as a string of digits.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
