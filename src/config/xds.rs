//! `dynamic_resources` from the filesystem: LDS and CDS `path_config_source` files, Envoy's
//! xDS without a control plane. Each file is a `DiscoveryResponse` (`resources:` of Listeners
//! or Clusters, YAML or JSON); its resources join `static_resources` before validation, so they
//! are checked and served exactly as static ones. Envoy applies a new file when it is moved into
//! place; baton applies it by a hot restart (the server watches the files and reloads, as on
//! SIGHUP), so a new file takes effect without dropping a connection and a bad one leaves the
//! running process serving as before. gRPC/REST xDS (`api_config_source`, `ads_config`) is
//! refused by path.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::de::{self, join_key};
use super::validate::err;
use super::ConfigError;

/// What kind of resources a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listeners,
    Clusters,
    /// A runtime disk layer: its `symlink_root`.
    Runtime,
}

impl Kind {
    /// `lds` or `cds`, for logs.
    pub fn api(self) -> &'static str {
        match self {
            Kind::Listeners => "lds",
            Kind::Clusters => "cds",
            Kind::Runtime => "runtime",
        }
    }

    fn type_url(self) -> &'static str {
        match self {
            Kind::Listeners => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Kind::Clusters => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Kind::Runtime => "",
        }
    }

    /// Where its resources go in the bootstrap.
    fn list(self) -> &'static str {
        match self {
            Kind::Listeners => "listeners",
            Kind::Clusters => "clusters",
            Kind::Runtime => "",
        }
    }
}

/// The identity of a file as read. A new version moved into place is another inode; a file
/// written in place keeps its inode and, as in Envoy, is not a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file at `path` now (symlinks followed), or `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// A `path_config_source` file the configuration was read from, to watch for a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFile {
    pub kind: Kind,
    pub path: PathBuf,
    /// The directory whose moves announce a new version: `watched_directory`, or the file's
    /// own directory (then only a move onto the file's name counts).
    pub dir: PathBuf,
    /// `true` with `watched_directory`: any entry moved into `dir` reloads the file.
    pub any_entry: bool,
    /// The file as it was read.
    pub read: Option<FileId>,
    /// A digest of the text that was read (a runtime layer: of its keys and values).
    pub digest: u64,
    /// A runtime layer's directory (`symlink_root/subdirectory`), read again to compare.
    pub tree: Option<PathBuf>,
}

impl WatchedFile {
    /// A move of `name` into `dir` announces a new version of this file.
    pub fn moved_in(&self, name: Option<&std::ffi::OsStr>) -> bool {
        self.any_entry || name.is_some_and(|n| Some(n) == self.path.file_name())
    }

    /// The file now holds other text than was read. A reload is a new process, so an
    /// announced version with the same text (a pid file moved into a watched directory, say)
    /// must not start one: only a changed file does.
    pub fn differs(&self) -> bool {
        match &self.tree {
            Some(dir) => super::runtime::tree(dir)
                .map_or(true, |t| super::runtime::digest_tree(&t) != self.digest),
            None => std::fs::read_to_string(&self.path).map_or(true, |t| digest(&t) != self.digest),
        }
    }

    /// A runtime disk layer: a new tree is a symlink moved onto `root` (in its directory).
    pub fn tree(root: PathBuf, dir: PathBuf, digest: u64) -> WatchedFile {
        WatchedFile {
            kind: Kind::Runtime,
            read: FileId::of(&root),
            dir: dir_of(&root),
            path: root,
            any_entry: false,
            digest,
            tree: Some(dir),
        }
    }

    /// Another file was moved into place (a new inode) since it was read, with other text.
    pub fn replaced(&self) -> bool {
        FileId::of(&self.path) != self.read && self.differs()
    }
}

/// The directory whose moves replace `path` (`.` for a bare name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn digest(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DynamicResources {
    lds_config: Option<ConfigSource>,
    cds_config: Option<ConfigSource>,
    ads_config: Option<Value>,
    default_config_source: Option<Value>,
    lds_resources_locator: Option<Value>,
    cds_resources_locator: Option<Value>,
}

/// `envoy.config.core.v3.ConfigSource`: only the filesystem kinds are served.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSource {
    path_config_source: Option<PathConfigSource>,
    /// The deprecated form of `path_config_source.path`.
    path: Option<String>,
    api_config_source: Option<Value>,
    ads: Option<Value>,
    #[serde(rename = "self")]
    self_: Option<Value>,
    authorities: Option<Value>,
    /// The files are read while loading, before anything is served, so there is no fetch to
    /// wait for; accepted as Envoy accepts it.
    #[serde(rename = "initial_fetch_timeout")]
    _initial_fetch_timeout: Option<Value>,
    resource_api_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathConfigSource {
    path: String,
    watched_directory: Option<WatchedDirectory>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchedDirectory {
    path: String,
}

/// A file's resources, where they went: `static_resources.<list>[first..first + count]`.
struct Placed {
    kind: Kind,
    file: String,
    first: usize,
    count: usize,
}

/// Takes `dynamic_resources` out of `doc`, reads its files and appends their resources to
/// `static_resources`. Returns the files to watch and where their resources went (for
/// `relocate`), and the errors found (the rest of the bootstrap is still worth checking, so
/// that every error comes out in one run).
pub fn expand(doc: &mut Value) -> (Expanded, Vec<ConfigError>) {
    let Some(map) = doc.as_mapping_mut() else {
        return (Expanded::default(), Vec::new());
    };
    let Some(dynamic) = map.remove("dynamic_resources") else {
        return (Expanded::default(), Vec::new());
    };
    let raw: DynamicResources = match de::from_value(&dynamic, "dynamic_resources") {
        Ok(r) => r,
        Err(e) => return (Expanded::default(), vec![e]),
    };
    let refused = [
        (
            "ads_config",
            raw.ads_config.is_some(),
            "ADS (a gRPC xDS server)",
        ),
        (
            "default_config_source",
            raw.default_config_source.is_some(),
            "a default xDS server",
        ),
        (
            "lds_resources_locator",
            raw.lds_resources_locator.is_some(),
            "xDS-TP resource locators",
        ),
        (
            "cds_resources_locator",
            raw.cds_resources_locator.is_some(),
            "xDS-TP resource locators",
        ),
    ];
    let mut errors: Vec<ConfigError> =
        super::validate::refused_fields(&refused, "dynamic_resources").collect();
    let mut out = Expanded::default();
    for (kind, source) in [
        (Kind::Listeners, raw.lds_config),
        (Kind::Clusters, raw.cds_config),
    ] {
        let Some(source) = source else { continue };
        let spath = format!("dynamic_resources.{}_config", kind.api());
        match read_source(source, kind, &spath) {
            Err(e) => errors.push(e),
            Ok((watched, resources)) => {
                match append(map, kind, resources, &watched.path, &spath) {
                    Ok(placed) => out.placed.push(placed),
                    Err(e) => errors.push(e),
                }
                out.watched.push(watched);
            }
        }
    }
    (out, errors)
}

/// The files read, and where their resources went.
#[derive(Default)]
pub struct Expanded {
    pub watched: Vec<WatchedFile>,
    placed: Vec<Placed>,
}

impl Expanded {
    /// An error about a resource from a file names the file and the resource's path in it
    /// (`/etc/baton/cds.yaml: resources[0].connect_timeout`), not the place it was given in
    /// `static_resources`.
    pub fn relocate(&self, mut e: ConfigError) -> ConfigError {
        for p in &self.placed {
            let prefix = format!("static_resources.{}[", p.kind.list());
            let Some(rest) = e.path.strip_prefix(&prefix) else {
                continue;
            };
            let Some((index, tail)) = rest.split_once(']') else {
                continue;
            };
            let Ok(i) = index.parse::<usize>() else {
                continue;
            };
            if i >= p.first && i < p.first + p.count {
                e.path = format!("{}: resources[{}]{tail}", p.file, i - p.first);
                return e;
            }
        }
        e
    }
}

fn read_source(
    s: ConfigSource,
    kind: Kind,
    spath: &str,
) -> Result<(WatchedFile, Vec<Value>), ConfigError> {
    let p = |k: &str| join_key(spath, k);
    let refused = [
        (
            "api_config_source",
            s.api_config_source.is_some(),
            "xDS servers (gRPC or REST); use path_config_source",
        ),
        ("ads", s.ads.is_some(), "ADS (a gRPC xDS server)"),
        (
            "self",
            s.self_.is_some(),
            "xDS from the management server itself",
        ),
        ("authorities", s.authorities.is_some(), "xDS-TP authorities"),
    ];
    if let Some(e) = super::validate::refused_fields(&refused, spath).next() {
        return Err(e);
    }
    if let Some(v) = s.resource_api_version.as_deref() {
        if v != "V3" && v != "AUTO" {
            return Err(err(
                p("resource_api_version"),
                format!("\"{v}\" is not supported (V3 only)"),
            ));
        }
    }
    let (path, dir, any_entry, fpath) = match (s.path_config_source, s.path) {
        (Some(_), Some(_)) => {
            return Err(err(
                p("path"),
                "only one field may be set (also path_config_source)",
            ))
        }
        (None, None) => {
            return Err(err(
                spath,
                "one of path_config_source, path is required (baton reads xDS from files only)",
            ))
        }
        (None, Some(path)) => (path, None, false, p("path")),
        (Some(pcs), None) => {
            let dir = pcs.watched_directory.map(|w| w.path);
            let any = dir.is_some();
            (pcs.path, dir, any, p("path_config_source.path"))
        }
    };
    if path.is_empty() {
        return Err(err(fpath, "must not be empty"));
    }
    let path = PathBuf::from(path);
    let read = FileId::of(&path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(&fpath, format!("cannot read {}: {e}", path.display())))?;
    let dir = match dir {
        Some(d) => PathBuf::from(d),
        None => dir_of(&path),
    };
    let file = path.display().to_string();
    let resources = resources(&text, kind, &file)?;
    Ok((
        WatchedFile {
            kind,
            path,
            dir,
            any_entry,
            read,
            digest: digest(&text),
            tree: None,
        },
        resources,
    ))
}

/// The resources of a `DiscoveryResponse` file, each without its `@type`.
fn resources(text: &str, kind: Kind, file: &str) -> Result<Vec<Value>, ConfigError> {
    if super::flow_too_deep(text) {
        return Err(err(file, String::from(super::FLOW_TOO_DEEP)));
    }
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| err(file, format!("invalid YAML: {e}")))?;
    let Value::Mapping(mut m) = doc else {
        return Err(err(
            file,
            "expected a DiscoveryResponse (a map with `resources`)",
        ));
    };
    for key in m.keys() {
        match key.as_str() {
            Some("resources" | "version_info" | "type_url" | "nonce") => {}
            _ => {
                return Err(err(
                    format!("{file}: {}", de::key_text(key)),
                    "unknown field (a DiscoveryResponse has resources, version_info, type_url)",
                ))
            }
        }
    }
    if let Some(t) = m.get("type_url").and_then(Value::as_str) {
        if t != kind.type_url() {
            return Err(err(
                format!("{file}: type_url"),
                format!("expected {}", kind.type_url()),
            ));
        }
    }
    let list = match m.remove("resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(s)) => s,
        Some(one) => vec![one],
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.into_iter().enumerate() {
        let at = format!("{file}: resources[{i}]");
        let Value::Mapping(mut r) = r else {
            return Err(err(at, "expected a resource (a map with an @type)"));
        };
        match r.remove("@type") {
            Some(Value::String(t)) if t == kind.type_url() => {}
            Some(Value::String(t)) => {
                return Err(err(
                    format!("{at}.@type"),
                    format!(
                        "\"{t}\" in a {} file (expected {})",
                        kind.api(),
                        kind.type_url()
                    ),
                ))
            }
            _ => {
                return Err(err(
                    format!("{at}.@type"),
                    format!("required ({})", kind.type_url()),
                ))
            }
        }
        out.push(Value::Mapping(r));
    }
    Ok(out)
}

/// Appends `resources` to `static_resources.<list>` of the bootstrap map.
fn append(
    map: &mut Mapping,
    kind: Kind,
    resources: Vec<Value>,
    path: &Path,
    spath: &str,
) -> Result<Placed, ConfigError> {
    let sr = map
        .entry(Value::from("static_resources"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if sr.is_null() {
        *sr = Value::Mapping(Mapping::new());
    }
    let Some(sr) = sr.as_mapping_mut() else {
        return Err(err("static_resources", "expected a map"));
    };
    let list = sr
        .entry(Value::from(kind.list()))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if list.is_null() {
        *list = Value::Sequence(Vec::new());
    }
    let Some(list) = list.as_sequence_mut() else {
        return Err(err(
            format!("static_resources.{}", kind.list()),
            format!("expected a list (the {} file adds to it)", spath),
        ));
    };
    let placed = Placed {
        kind,
        file: path.display().to_string(),
        first: list.len(),
        count: resources.len(),
    };
    list.extend(resources);
    Ok(placed)
}
