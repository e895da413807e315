//! A serde `Deserializer` over a parsed `serde_yaml::Value` that remembers where it is, so every
//! error (unknown field, wrong type, bad value) comes out as `a.b[2].c: message`. We parse to a
//! `Value` first (rather than deserializing the text directly) because `--config-yaml` is merged
//! at that level and because `typed_config` payloads are re-read once their `@type` is known.

use serde::de::{self, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use std::fmt;

use super::ConfigError;

/// Envoy fields that are real but that baton deliberately does not implement. Found anywhere,
/// they are rejected with the reason instead of the generic "unknown field" message.
pub const UNSUPPORTED_FIELDS: &[(&str, &str)] = &[
    ("layered_runtime", "runtime layers"),
    ("overload_manager", "the overload manager"),
    ("stats_sinks", "stats sinks; scrape /stats instead"),
    ("stats_config", "stats tag configuration"),
    ("dynamic_resources", "xDS; only static_resources"),
    ("cluster_manager", "cluster manager settings"),
    ("tracing", "tracing"),
    ("watchdog", "the watchdog"),
    ("watchdogs", "the watchdog"),
    ("secrets", "TLS secrets"),
    ("health_checks", "active health checking"),
    ("circuit_breakers", "circuit breakers"),
    ("outlier_detection", "outlier detection"),
    ("transport_socket", "TLS (transport sockets)"),
    (
        "typed_extension_protocol_options",
        "upstream protocol options",
    ),
    ("http2_protocol_options", "HTTP/2"),
    ("http_protocol_options", "HTTP/1 protocol options"),
    ("listener_filters", "listener filters"),
    ("filter_chain_match", "filter chain matching"),
    ("rds", "RDS; use route_config"),
    ("require_tls", "require_tls (baton has no TLS)"),
    ("typed_per_filter_config", "per-route filter config"),
    (
        "respect_dns_ttl",
        "respect_dns_ttl; dns_refresh_rate is used",
    ),
    ("dns_resolvers", "custom DNS resolvers"),
    ("typed_dns_resolver_config", "custom DNS resolvers"),
    ("common_lb_config", "common_lb_config"),
    ("cors", "CORS"),
    ("rate_limits", "rate limits"),
    ("hash_policy", "hash policies"),
    ("request_mirror_policies", "request mirroring"),
    ("cluster_header", "cluster_header"),
    ("json_format", "JSON access-log formats"),
    ("typed_json_format", "JSON access-log formats"),
    ("metadata", "metadata"),
    ("pipe", "Unix socket addresses"),
];

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
        let message = match UNSUPPORTED_FIELDS.iter().find(|(f, _)| *f == field) {
            Some((_, what)) => format!("not supported by baton ({what})"),
            None if expected.is_empty() => {
                format!("unknown or unsupported field \"{field}\" (no fields are accepted here)")
            }
            None => format!(
                "unknown or unsupported field \"{field}\" (accepted here: {})",
                expected.join(", ")
            ),
        };
        DeError::custom(message)
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

    fn visit_map<V: Visitor<'de>>(self, m: &'de Mapping, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor
            .visit_map(Entries {
                iter: m.iter(),
                parent: &path,
                pending: None,
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
}

fn key_text(k: &Value) -> String {
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
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
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
        seed.deserialize(Node { value, path })
    }
}

struct Items<'a, 'de> {
    iter: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    parent: &'a str,
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
                    path: format!("{}[{i}]", self.parent),
                })
                .map(Some),
        }
    }
}

const EMPTY_SEQ: &[Value] = &[];

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
            Value::Mapping(m) => return self.visit_map(m, visitor),
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
        // Protobuf JSON reads null as "not set", i.e. an empty list.
        let items = match self.value {
            Value::Sequence(s) => s.as_slice(),
            Value::Null => EMPTY_SEQ,
            _ => return Err(self.fail("a list")),
        };
        let path = self.path;
        visitor
            .visit_seq(Items {
                iter: items.iter().enumerate(),
                parent: &path,
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
        static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
        match self.value {
            Value::Mapping(m) => self.visit_map(m, visitor),
            // `field:` with nothing after it: a message with every field unset.
            Value::Null => {
                let empty = EMPTY.get_or_init(Mapping::new);
                self.visit_map(empty, visitor)
            }
            _ => Err(self.fail("a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
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
