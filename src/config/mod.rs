//! Envoy v3 bootstrap subset: a serde mirror of the YAML (`raw`), checked into `model`.
//! Every error carries the field path so an operator can find the line to fix.

mod de;
pub mod format;
pub mod model;
mod raw;
mod runtime;
pub mod template;
#[cfg(test)]
mod tests;
pub mod tls;
mod validate;
mod validate_action;
mod validate_compress;
mod validate_ext_authz;
mod validate_fault;
mod validate_filters;
mod validate_health;
mod validate_http2;
mod validate_local_reply;
mod validate_overload;
mod validate_proxy_protocol;
mod validate_rbac;
mod validate_route;
mod validate_stats;
mod validate_tracing;
mod validate_upstream;
pub mod xds;

pub use model::*;
pub use validate_action::add_retry_on;

use serde_yaml::Value;
use std::fmt;
use std::path::Path;

/// A configuration error: where (`static_resources.clusters[0].lb_policy`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration, in the order found (never empty). A load goes on past
/// the first error so an operator fixes a file in one pass, not one error per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The first error (the only one, for most mistakes).
    pub fn first(&self) -> Option<&ConfigError> {
        self.0.first()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// One error prints as itself; several as a count and one per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} errors:", all.len())?;
                for e in all {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a bootstrap file.
pub fn load_file(path: &Path) -> Result<Bootstrap, ConfigErrors> {
    load(Some(path), None)
}

/// Loads from a file, inline YAML, or both (inline YAML deep-merged over the file, as Envoy's
/// `--config-yaml` does: maps merge key by key, lists and scalars are replaced).
pub fn load(path: Option<&Path>, yaml: Option<&str>) -> Result<Bootstrap, ConfigErrors> {
    let mut doc = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", p.display()),
            })?;
            parse(&text)?
        }
        None => Value::Null,
    };
    if let Some(y) = yaml {
        let over = parse(y).map_err(|e| ConfigError {
            path: e.path,
            message: format!("--config-yaml: {}", e.message),
        })?;
        merge(&mut doc, over);
    }
    if path.is_none() && yaml.is_none() {
        return Err(ConfigError {
            path: String::new(),
            message: "no configuration given".into(),
        }
        .into());
    }
    from_document(&doc)
}

/// Parses and validates a bootstrap given as YAML (or JSON, which is YAML) text.
pub fn load_str(yaml: &str) -> Result<Bootstrap, ConfigErrors> {
    from_document(&parse(yaml)?)
}

/// Flow collections (`[`, `{`) a document may nest before it is refused unparsed: libyaml's
/// scanner takes time quadratic in that depth (100,000 levels, 200 KB, took about 45 s to be
/// refused), and serde_yaml refuses any document nested past 128 levels in any case.
const MAX_FLOW_DEPTH: usize = 128;

/// Whether `text` nests flow collections deeper than `MAX_FLOW_DEPTH`. An approximation that
/// errs towards "no": a bracket counts only where a flow collection can start (at a line's
/// start or after whitespace, after a bracket that counted, or after `,` inside one), quoted
/// scalars and comments are skipped, and a closing bracket anywhere closes one level.
pub(crate) fn flow_too_deep(text: &str) -> bool {
    let (mut depth, mut prev, mut opened) = (0usize, b'\n', false);
    let mut quote = None::<u8>;
    let mut bytes = text.bytes();
    while let Some(c) = bytes.next() {
        if let Some(q) = quote {
            if c == b'\\' && q == b'"' {
                bytes.next();
            } else if c == q {
                quote = None;
            }
            (prev, opened) = (c, false);
            continue;
        }
        let at_start = prev.is_ascii_whitespace() || opened || (prev == b',' && depth > 0);
        opened = false;
        match c {
            b'[' | b'{' if at_start => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return true;
                }
                opened = true;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' | b'\'' if at_start => quote = Some(c),
            b'#' if prev.is_ascii_whitespace() => {
                for c in bytes.by_ref() {
                    if c == b'\n' {
                        break;
                    }
                }
                prev = b'\n';
                continue;
            }
            _ => {}
        }
        prev = c;
    }
    false
}

/// The refusal of a document `flow_too_deep` finds.
pub(crate) const FLOW_TOO_DEEP: &str =
    "invalid YAML: flow collections ([ or {) nested more than 128 deep";

/// YAML text → document, with `<<` merge keys applied (Envoy's YAML loader supports them).
fn parse(text: &str) -> Result<Value, ConfigError> {
    if flow_too_deep(text) {
        return Err(ConfigError {
            path: String::new(),
            message: FLOW_TOO_DEEP.into(),
        });
    }
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| {
        too_wide(&e).unwrap_or_else(|| ConfigError {
            path: String::new(),
            message: format!("invalid YAML: {e}"),
        })
    })?;
    v.apply_merge().map_err(|e| ConfigError {
        path: String::new(),
        message: format!("invalid YAML merge key: {e}"),
    })?;
    Ok(v)
}

/// An integer wider than 64 bits: no config field takes one, but serde_yaml's `Value` cannot
/// hold it and reports a type error (`path: invalid type: integer `N` as u128, ...`); this is
/// that error as the out-of-range value it is, at its path. `None` for any other error.
fn too_wide(e: &serde_yaml::Error) -> Option<ConfigError> {
    let text = e.to_string();
    let (path, rest) = match text.split_once(": invalid type: integer `") {
        Some(found) => found,
        None => ("", text.strip_prefix("invalid type: integer `")?),
    };
    let (n, rest) = rest.split_once("` as ")?;
    if !(rest.starts_with("u128,") || rest.starts_with("i128,")) {
        return None;
    }
    Some(ConfigError {
        path: path.trim_start_matches('.').to_string(),
        message: format!("{n} out of range"),
    })
}

/// Deep merge: maps merge recursively; anything else in `over` replaces what is in `base`.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn from_document(doc: &Value) -> Result<Bootstrap, ConfigErrors> {
    if !doc.is_mapping() {
        return Err(ConfigError {
            path: String::new(),
            message: "the bootstrap must be a YAML map (is the file empty?)".into(),
        }
        .into());
    }
    // Resources from `dynamic_resources` files join the static ones (only such a config pays
    // for the copy).
    let mut expanded_doc;
    let (doc, files, mut errors) = if doc.get("dynamic_resources").is_some() {
        expanded_doc = doc.clone();
        let (files, errors) = xds::expand(&mut expanded_doc);
        (&expanded_doc, files, errors)
    } else {
        (doc, xds::Expanded::default(), Vec::new())
    };
    let loaded = de::collect_errors(|| {
        let raw: raw::Bootstrap = de::from_value(doc, "")?;
        validate::bootstrap(raw)
    });
    match loaded {
        Ok(mut b) if errors.is_empty() => {
            b.watched.extend(files.watched);
            Ok(b)
        }
        Ok(_) => Err(ConfigErrors(errors)),
        Err(es) => {
            errors.extend(es.into_iter().map(|e| files.relocate(e)));
            Err(ConfigErrors(errors))
        }
    }
}
