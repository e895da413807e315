//! `layered_runtime`: Envoy's runtime keys, as far as baton implements them. Static layers are
//! read (later layers override earlier ones, as in Envoy); a key baton does not implement is
//! refused, naming the key's path, because accepting it would promise a behaviour change that
//! does not happen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::de::{join_key, report};
use super::raw;
use super::validate::{err, positive};
use super::xds::WatchedFile;
use super::ConfigError;

/// What the runtime sets, for the keys baton implements. Paths are kept for later errors.
#[derive(Debug, Default)]
pub struct Runtime {
    /// The fault filter's keys (Envoy's default names): `fault.http.abort.abort_percent`,
    /// `fault.http.abort.http_status`, `fault.http.delay.fixed_delay_percent`,
    /// `fault.http.delay.fixed_duration_ms`, `fault.http.max_active_faults`.
    pub fault: FaultKeys,
    /// Disk layers, watched for a new tree (a reload applies it).
    pub watched: Vec<WatchedFile>,
    /// `overload.global_downstream_max_connections`, with where it was set.
    pub global_downstream_max_connections: Option<(u64, String)>,
    /// `re2.max_program_size.error_level`: the program-size limit of every regex that does not
    /// set its own `google_re2.max_program_size`.
    pub re2_error_level: Option<u32>,
    /// `envoy.resource_limits.listener.<name>.connection_limit`: listener name, limit, path.
    pub listener_connection_limits: Vec<(String, u64, String)>,
}

/// The fault filter's runtime keys, as the layers set them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultKeys {
    pub abort_percent: Option<u32>,
    pub abort_http_status: Option<u32>,
    pub delay_percent: Option<u32>,
    pub delay_duration_ms: Option<u32>,
    pub max_active_faults: Option<u32>,
}

/// The keys baton implements, for the refusal message.
pub const KEYS: &[&str] = &[
    "envoy.resource_limits.listener.<name>.connection_limit",
    "fault.http.abort.abort_percent",
    "fault.http.abort.http_status",
    "fault.http.delay.fixed_delay_percent",
    "fault.http.delay.fixed_duration_ms",
    "fault.http.max_active_faults",
    "overload.global_downstream_max_connections",
    "re2.max_program_size.error_level",
];

/// Most files a disk layer may hold, and most bytes one file may hold: a runtime tree is a
/// few keys, and a symlink pointed at the wrong directory must not make a load read it all.
const DISK_MAX_FILES: usize = 1_000;
const DISK_MAX_FILE: u64 = 4 * 1024;
/// Most directory levels below the layer's directory (a runtime key has a few).
const DISK_MAX_DEPTH: usize = 16;

/// `disk_layer`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskLayer {
    symlink_root: String,
    #[serde(default)]
    subdirectory: String,
    append_service_cluster: Option<bool>,
}

/// The per-listener connection limit key is this prefix, a listener's name (which may hold
/// dots), then this suffix.
const LISTENER_LIMIT: (&str, &str) = ("envoy.resource_limits.listener.", ".connection_limit");

/// Reads the layers. An admin layer is accepted: it holds what the admin interface's
/// `/runtime_modify` sets, and baton has no such endpoint, so it stays empty.
pub fn layered(lr: raw::LayeredRuntime, path: &str) -> Result<Runtime, ConfigError> {
    // Flattened key → (value, path of the value), later layers overriding earlier ones.
    let mut keys: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let mut watched = Vec::new();
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
        if let Some(v) = &layer.disk_layer {
            let dpath = join_key(&lpath, "disk_layer");
            match super::de::from_value::<DiskLayer>(v, &dpath) {
                Err(e) => fail(e),
                Ok(d) if d.append_service_cluster == Some(true) => fail(err(
                    join_key(&dpath, "append_service_cluster"),
                    "not supported by baton (a per-service-cluster subdirectory)",
                )),
                Ok(d) if d.symlink_root.is_empty() => {
                    fail(err(join_key(&dpath, "symlink_root"), "must not be empty"))
                }
                Ok(d) => match disk(&d) {
                    Ok((found, w)) => {
                        keys.extend(found);
                        watched.push(w);
                    }
                    Err(e) => fail(err(dpath, e)),
                },
            }
        }
        if layer.rtds_layer.is_some() {
            fail(err(
                join_key(&lpath, "rtds_layer"),
                "not supported by baton (RTDS; use a static_layer)",
            ));
        }
    }
    let mut rt = Runtime {
        watched,
        ..Runtime::default()
    };
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
            "fault.http.abort.abort_percent"
            | "fault.http.abort.http_status"
            | "fault.http.delay.fixed_delay_percent"
            | "fault.http.delay.fixed_duration_ms"
            | "fault.http.max_active_faults" => {
                let range = if key == "fault.http.abort.http_status" {
                    200..=599
                } else {
                    0..=u32::MAX
                };
                match integer(&value)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| range.contains(n))
                {
                    Some(n) => {
                        let f = &mut rt.fault;
                        match key.as_str() {
                            "fault.http.abort.abort_percent" => f.abort_percent = Some(n),
                            "fault.http.abort.http_status" => f.abort_http_status = Some(n),
                            "fault.http.delay.fixed_delay_percent" => f.delay_percent = Some(n),
                            "fault.http.delay.fixed_duration_ms" => f.delay_duration_ms = Some(n),
                            _ => f.max_active_faults = Some(n),
                        }
                    }
                    None => fail(err(
                        vpath,
                        format!(
                            "expected a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )),
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

/// The directory a disk layer reads: `symlink_root/subdirectory`.
fn disk_dir(d: &DiskLayer) -> PathBuf {
    let mut p = PathBuf::from(&d.symlink_root);
    if !d.subdirectory.is_empty() {
        p.push(&d.subdirectory);
    }
    p
}

/// A disk layer's keys and what to watch. As in Envoy, each file under the directory is a key
/// (its path below it, `/` read as `.`) whose value is the file's text; a directory that does
/// not exist is an empty layer. Names starting with `.` are skipped (a Kubernetes volume's
/// `..data` links are not keys). A new tree is announced by moving a symlink onto
/// `symlink_root`, so its directory is watched for moves onto that name.
#[allow(clippy::type_complexity)]
fn disk(d: &DiskLayer) -> Result<(Vec<(String, (Value, String))>, WatchedFile), String> {
    let dir = disk_dir(d);
    let tree = tree(&dir)?;
    let root = PathBuf::from(&d.symlink_root);
    let watched = WatchedFile::tree(root, dir, digest_tree(&tree));
    let keys = tree
        .into_iter()
        .map(|(k, (v, file))| (k, (Value::String(v), file)))
        .collect();
    Ok((keys, watched))
}

/// Key → (value, file) under `dir`; empty when `dir` does not exist.
pub fn tree(dir: &Path) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    walk(dir, "", 0, &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut BTreeMap<String, (String, String)>,
) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!("{}: a file name that is not UTF-8", dir.display()));
        };
        if name.starts_with('.') {
            continue;
        }
        let key = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let path = entry.path();
        // A directory is walked only when it is one (a symlink to a directory could loop:
        // `a -> .`); a symlink to a file is read (a Kubernetes volume's keys are symlinks).
        let own =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if own.is_dir() {
            if depth >= DISK_MAX_DEPTH {
                return Err(format!(
                    "{}: nested deeper than {DISK_MAX_DEPTH}",
                    path.display()
                ));
            }
            walk(&path, &key, depth + 1, out)?;
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            continue;
        }
        if out.len() >= DISK_MAX_FILES {
            return Err(format!(
                "more than {DISK_MAX_FILES} files under the layer's directory"
            ));
        }
        if meta.len() > DISK_MAX_FILE {
            return Err(format!(
                "{}: larger than {DISK_MAX_FILE} bytes",
                path.display()
            ));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.insert(key, (text.trim().to_string(), path.display().to_string()));
    }
    Ok(())
}

/// A digest of a tree's keys and values: a reload starts only when it changed.
pub fn digest_tree(tree: &BTreeMap<String, (String, String)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, (v, _)) in tree {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}
