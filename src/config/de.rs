//! A serde `Deserializer` over a parsed `serde_yaml::Value` that remembers where it is, so every
//! error (unknown field, wrong type, bad value) comes out as `a.b[2].c: message`. We parse to a
//! `Value` first (rather than deserializing the text directly) because `--config-yaml` is merged
//! at that level and because `typed_config` payloads are re-read once their `@type` is known.

use serde::de::{self, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use std::cell::RefCell;
use std::fmt;

use super::ConfigError;

/// Envoy fields that are real but that baton deliberately does not implement. Found anywhere,
/// they are rejected with the reason instead of the generic "unknown field" message.
pub const UNSUPPORTED_FIELDS: &[(&str, &str)] = &[
    ("overload_manager", "the overload manager"),
    ("dynamic_resources", "xDS; only static_resources"),
    ("cluster_manager", "cluster manager settings"),
    ("tracing", "per-route tracing overrides"),
    ("watchdog", "the watchdog"),
    ("watchdogs", "the watchdog"),
    ("secrets", "TLS secrets"),
    ("per_host_thresholds", "per-host circuit breakers"),
    (
        "max_connection_pools",
        "a limit on connection pools; baton keeps one pool per upstream address",
    ),
    ("http2_protocol_options", "HTTP/2"),
    ("http_protocol_options", "HTTP/1 protocol options"),
    ("rds", "RDS; use route_config"),
    (
        "typed_per_filter_config",
        "per-route filter config here; it is taken on virtual hosts and routes",
    ),
    (
        "respect_dns_ttl",
        "respect_dns_ttl; dns_refresh_rate is used",
    ),
    ("dns_resolvers", "custom DNS resolvers"),
    ("typed_dns_resolver_config", "custom DNS resolvers"),
    ("rate_limits", "rate limits"),
    ("cluster_header", "cluster_header"),
    ("typed_json_format", "JSON access-log formats"),
    ("metadata", "metadata"),
    ("pipe", "Unix socket addresses"),
];

/// Envoy v2 fields that v3 removed: (the `raw` struct they appear in, or "" for any; the field;
/// what v3 uses instead). A v2 config is refused with that hint rather than "unknown field".
pub const V2_FIELDS: &[(&str, &str, &str)] = &[
    ("", "config", "typed_config (with an \"@type\")"),
    ("Cluster", "hosts", "load_assignment"),
    (
        "",
        "tls_context",
        "transport_socket (envoy.transport_sockets.tls)",
    ),
    (
        "Listener",
        "use_original_dst",
        "listener_filters (envoy.filters.listener.original_dst)",
    ),
    ("", "per_filter_config", "typed_per_filter_config"),
    ("RouteAction", "host_rewrite", "host_rewrite_literal"),
    ("RouteAction", "use_websocket", "upgrade_configs"),
    ("RouteMatch", "regex", "safe_regex"),
    ("StringMatcher", "regex", "safe_regex"),
    ("HeaderMatcher", "regex_match", "safe_regex_match"),
    ("Bootstrap", "runtime", "layered_runtime"),
    (
        "HttpConnectionManager",
        "idle_timeout",
        "common_http_protocol_options.idle_timeout",
    ),
];

/// The message for a field `strukt` (a `raw` struct name, if known) does not accept.
fn unknown_field_message(strukt: &str, field: &str, expected: &[&str]) -> String {
    let v2 = V2_FIELDS
        .iter()
        .find(|(s, f, _)| *f == field && (s.is_empty() || *s == strukt));
    if let Some((_, _, v3)) = v2 {
        return format!("\"{field}\" is Envoy v2 (removed in v3): use {v3}");
    }
    match UNSUPPORTED_FIELDS.iter().find(|(f, _)| *f == field) {
        Some((_, what)) => format!("not supported by baton ({what})"),
        None if expected.is_empty() => {
            format!("unknown or unsupported field \"{field}\" (no fields are accepted here)")
        }
        None => format!(
            "unknown or unsupported field \"{field}\" (accepted here: {})",
            expected.join(", ")
        ),
    }
}

thread_local! {
    /// Errors of the load in progress on this thread (`None`: no load is collecting). A load
    /// goes on past an error so that one run reports every error in the file.
    static REPORTED: RefCell<Option<Vec<ConfigError>>> = const { RefCell::new(None) };
}

/// Records an error of the load in progress (a no-op when none is collecting: the error then
/// travels as a `Result` only).
pub fn report(e: ConfigError) {
    REPORTED.with(|r| {
        if let Some(list) = r.borrow_mut().as_mut() {
            list.push(e);
        }
    });
}

fn is_collecting() -> bool {
    REPORTED.with(|r| r.borrow().is_some())
}

/// Clears the collector when the load ends, however it ends.
struct Collecting;

impl Drop for Collecting {
    fn drop(&mut self) {
        REPORTED.with(|r| *r.borrow_mut() = None);
    }
}

/// Runs a load collecting every error it reports (`report`), plus the one it returns. Errors
/// come out in the order found, each once.
pub fn collect_errors<T>(
    load: impl FnOnce() -> Result<T, ConfigError>,
) -> Result<T, Vec<ConfigError>> {
    REPORTED.with(|r| *r.borrow_mut() = Some(Vec::new()));
    let guard = Collecting;
    let result = load();
    let mut found = REPORTED.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    let value = match result {
        Ok(v) => Some(v),
        Err(e) => {
            found.push(e);
            None
        }
    };
    let mut unique: Vec<ConfigError> = Vec::new();
    for e in found {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match value {
        Some(v) if unique.is_empty() => Ok(v),
        _ => Err(unique),
    }
}

/// A deserialization error that learns its path as it bubbles up: the innermost node that sees
/// it without a path stamps its own.
#[derive(Debug)]
pub struct DeError {
    path: Option<String>,
    /// For "missing field": the field name, appended to the struct's path when stamped.
    field: Option<&'static str>,
    message: String,
}

impl DeError {
    fn at(mut self, path: &str) -> DeError {
        if self.path.is_none() {
            self.path = Some(match self.field.take() {
                Some(f) => join_key(path, f),
                None => path.to_string(),
            });
        }
        self
    }

    pub fn into_config_error(self) -> ConfigError {
        ConfigError {
            path: self.path.unwrap_or_default(),
            message: self.message,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: None,
            field: None,
            message: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::custom(unknown_field_message("", field, expected))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            path: None,
            field: Some(field),
            message: "required field is missing".into(),
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::custom(format!("expected {exp}, got {unexp}"))
    }
}

/// `parent.key`, or just `key` at the root.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Deserializes `value` (found at `path`) into `T`, with path-named errors.
pub fn from_value<'de, T: de::Deserialize<'de>>(
    value: &'de Value,
    path: &str,
) -> Result<T, ConfigError> {
    T::deserialize(Node {
        value,
        path: path.to_string(),
    })
    .map_err(|e| e.at(path).into_config_error())
}

/// One position in the document.
struct Node<'de> {
    value: &'de Value,
    path: String,
}

impl<'de> Node<'de> {
    fn fail(&self, exp: &str) -> DeError {
        let got = match self.value {
            Value::Null => "nothing (null)".to_string(),
            Value::Bool(b) => format!("boolean {b}"),
            Value::Number(n) => format!("number {n}"),
            Value::String(s) => format!("string {s:?}"),
            Value::Sequence(_) => "a list".to_string(),
            Value::Mapping(_) => "a map".to_string(),
            Value::Tagged(t) => format!("YAML tag {}", t.tag),
        };
        DeError::custom(format!("expected {exp}, got {got}")).at(&self.path)
    }

    /// `known`: for a struct, its name and fields; keys it does not have are reported and
    /// skipped while a load is collecting, so one run finds every unknown field.
    fn visit_map<V: Visitor<'de>>(
        self,
        m: &'de Mapping,
        known: Option<(&'static str, &'static [&'static str])>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor
            .visit_map(Entries {
                iter: m.iter(),
                parent: &path,
                pending: None,
                known: known.filter(|_| is_collecting()),
            })
            .map_err(|e| e.at(&path))
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Protobuf JSON also allows integers as strings ("10000").
        let r = match self.value {
            Value::Number(n) if n.is_u64() => visitor.visit_u64(n.as_u64().unwrap_or(0)),
            Value::Number(n) if n.is_i64() => visitor.visit_i64(n.as_i64().unwrap_or(0)),
            Value::String(s) => {
                if let Ok(u) = s.trim().parse::<u64>() {
                    visitor.visit_u64(u)
                } else if let Ok(i) = s.trim().parse::<i64>() {
                    visitor.visit_i64(i)
                } else {
                    return Err(self.fail("an integer"));
                }
            }
            _ => return Err(self.fail("an integer")),
        };
        r.map_err(|e: DeError| e.at(&self.path))
    }
}

struct Entries<'a, 'de> {
    iter: serde_yaml::mapping::Iter<'de>,
    parent: &'a str,
    pending: Option<(&'de Value, String)>,
    known: Option<(&'static str, &'static [&'static str])>,
}

pub fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let (k, v) = loop {
            let Some((k, v)) = self.iter.next() else {
                return Ok(None);
            };
            let name = key_text(k);
            match self.known {
                Some((strukt, fields)) if !fields.contains(&name.as_str()) => {
                    report(ConfigError {
                        path: join_key(self.parent, &name),
                        message: unknown_field_message(strukt, &name, fields),
                    });
                }
                _ => break (k, v),
            }
        };
        let path = join_key(self.parent, &key_text(k));
        let key = seed.deserialize(Node {
            value: k,
            path: path.clone(),
        })?;
        self.pending = Some((v, path));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (value, path) = self
            .pending
            .take()
            .ok_or_else(|| DeError::custom("internal: map value without key"))?;
        seed.deserialize(Node { value, path }).inspect_err(|_| {
            // The struct ends here; its remaining unknown fields are still worth reporting.
            if let Some((strukt, fields)) = self.known {
                for (k, _) in self.iter.by_ref() {
                    let name = key_text(k);
                    if !fields.contains(&name.as_str()) {
                        report(ConfigError {
                            path: join_key(self.parent, &name),
                            message: unknown_field_message(strukt, &name, fields),
                        });
                    }
                }
            }
        })
    }
}

struct Items<'a, 'de> {
    iter: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    parent: &'a str,
    /// The first element that failed; the others are still read (for their errors) and the
    /// list fails at its end.
    failed: Option<DeError>,
}

impl Items<'_, '_> {
    fn item_path(&self, i: usize) -> String {
        format!("{}[{i}]", self.parent)
    }
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((i, value)) => seed
                .deserialize(Node {
                    value,
                    path: self.item_path(i),
                })
                .map(Some),
        }
    }

    /// What `Vec<T>` calls: an element that fails is reported and the rest are still read, so
    /// one load reports the errors of every element; the list then fails as a whole.
    fn next_element<T: de::Deserialize<'de>>(&mut self) -> Result<Option<T>, DeError> {
        loop {
            let Some((i, value)) = self.iter.next() else {
                return match self.failed.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            };
            let path = self.item_path(i);
            match T::deserialize(Node {
                value,
                path: path.clone(),
            }) {
                Ok(v) if self.failed.is_none() => return Ok(Some(v)),
                Ok(_) => {}
                Err(e) => {
                    let e = e.at(&path);
                    if !is_collecting() {
                        return Err(e);
                    }
                    let ce = ConfigError {
                        path: e.path.clone().unwrap_or_default(),
                        message: e.message.clone(),
                    };
                    report(ce);
                    self.failed.get_or_insert(e);
                }
            }
        }
    }
}

const EMPTY_SEQ: &[Value] = &[];

impl<'de> Node<'de> {
    fn map_or_struct<V: Visitor<'de>>(
        self,
        known: Option<(&'static str, &'static [&'static str])>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
        match self.value {
            Value::Mapping(m) => self.visit_map(m, known, visitor),
            // `field:` with nothing after it: a message with every field unset.
            Value::Null => {
                let empty = EMPTY.get_or_init(Mapping::new);
                self.visit_map(empty, known, visitor)
            }
            _ => Err(self.fail("a map")),
        }
    }
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Sequence(_) => return self.deserialize_seq(visitor),
            Value::Mapping(m) => return self.visit_map(m, None, visitor),
            Value::Tagged(_) => {
                return Err(self.fail("a plain YAML value (tags are not supported)"))
            }
        };
        r.map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bool(b) => visitor
                .visit_bool(*b)
                .map_err(|e: DeError| e.at(&self.path)),
            _ => Err(self.fail("true or false")),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Number(n) => visitor
                .visit_f64(n.as_f64().unwrap_or(f64::NAN))
                .map_err(|e: DeError| e.at(&self.path)),
            _ => Err(self.fail("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // YAML turns unquoted `8080` or `true` into non-strings; a string field takes them as
        // written, as Envoy's YAML loader does.
        let r = match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            _ => return Err(self.fail("a string")),
        };
        r.map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(&path))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit().map_err(|e: DeError| e.at(&self.path)),
            _ => Err(self.fail("nothing")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        visitor.visit_newtype_struct(self).map_err(|e| e.at(&path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Protobuf JSON reads null as "not set", i.e. an empty list; Envoy's loader also takes
        // a lone value where a list is expected, as a list of one.
        let items = match self.value {
            Value::Sequence(s) => s.as_slice(),
            Value::Null => EMPTY_SEQ,
            Value::Tagged(_) => return Err(self.fail("a list")),
            one => std::slice::from_ref(one),
        };
        let path = self.path;
        visitor
            .visit_seq(Items {
                iter: items.iter().enumerate(),
                parent: &path,
                failed: None,
            })
            .map_err(|e| e.at(&path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map_or_struct(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.map_or_struct(Some((name, fields)), v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // Only unit variants written as strings are used in `raw`.
        match self.value {
            Value::String(s) => {
                let d = de::value::BorrowedStrDeserializer::<DeError>::new(s);
                visitor.visit_enum(d).map_err(|e: DeError| e.at(&self.path))
            }
            _ => Err(self.fail("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}
