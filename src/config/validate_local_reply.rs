//! The connection manager's `local_reply_config`: mappers (an access-log filter, then what
//! they change) and body formats (`SubstitutionFormatString`, text or JSON). Every part baton
//! does not implement is refused with its path.

use serde_yaml::Value;

use super::de::join_key;
use super::model::*;
use super::raw;
use super::validate::{data_source, err, proto_enum, EnumEntry};
use super::validate_route::{header_matcher, header_value_option};
use super::{format, ConfigError};

pub fn local_reply_config(
    c: raw::LocalReplyConfig,
    path: &str,
) -> Result<LocalReplyConfig, ConfigError> {
    let mut mappers = Vec::new();
    for (i, m) in c.mappers.into_iter().enumerate() {
        mappers.push(mapper(m, &format!("{}[{i}]", join_key(path, "mappers")))?);
    }
    let body_format = c
        .body_format
        .map(|f| body_format(f, &join_key(path, "body_format")))
        .transpose()?;
    Ok(LocalReplyConfig {
        mappers,
        body_format,
    })
}

fn mapper(m: raw::ResponseMapper, path: &str) -> Result<ResponseMapper, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let filter = match m.filter {
        Some(f) => log_filter(f, &p("filter"))?,
        None => return Err(err(p("filter"), "required field is missing")),
    };
    let status_code = match m.status_code {
        None => None,
        // Envoy's validation: `uint32 = {lt: 600 gte: 200}`.
        Some(n @ 200..=599) => Some(n as u16),
        Some(n) => {
            return Err(err(
                p("status_code"),
                format!("{n} out of range (200..=599)"),
            ))
        }
    };
    let body = m
        .body
        .as_ref()
        .map(|ds| data_source(ds, &p("body")))
        .transpose()?;
    let body_format_override = m
        .body_format_override
        .map(|f| body_format(f, &p("body_format_override")))
        .transpose()?;
    let mut headers_to_add = Vec::new();
    for (i, h) in m.headers_to_add.iter().enumerate() {
        let hp = format!("{}[{i}]", p("headers_to_add"));
        headers_to_add.push(header_value_option(h, &hp)?);
    }
    Ok(ResponseMapper {
        filter,
        status_code,
        body,
        body_format_override,
        headers_to_add,
    })
}

/// Envoy's response flag short names (`ResponseFlagFilter.flags` accepts these only). Flags
/// baton never sets (it has no fault injection, external authorization, ...) are accepted and
/// simply never match, as in an Envoy without those filters.
const FLAG_NAMES: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

const OPS: &[EnumEntry<CompareOp>] = &[
    ("EQ", 0, Some(CompareOp::Eq)),
    ("GE", 1, Some(CompareOp::Ge)),
    ("LE", 2, Some(CompareOp::Le)),
    ("NE", 3, Some(CompareOp::Ne)),
];

/// One `AccessLogFilter` (a oneof): the kinds baton implements, every other refused by path.
pub fn log_filter(f: raw::AccessLogFilter, path: &str) -> Result<LogFilter, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let unsupported: [(&str, bool, &str); 7] = [
        (
            "not_health_check_filter",
            f.not_health_check_filter.is_some(),
            "health checking",
        ),
        ("traceable_filter", f.traceable_filter.is_some(), "tracing"),
        (
            "runtime_filter",
            f.runtime_filter.is_some(),
            "runtime sampling",
        ),
        ("grpc_status_filter", f.grpc_status_filter.is_some(), "gRPC"),
        (
            "extension_filter",
            f.extension_filter.is_some(),
            "filter extensions",
        ),
        ("metadata_filter", f.metadata_filter.is_some(), "metadata"),
        ("log_type_filter", f.log_type_filter.is_some(), "log types"),
    ];
    let set = [
        f.status_code_filter.is_some(),
        f.duration_filter.is_some(),
        f.header_filter.is_some(),
        f.response_flag_filter.is_some(),
        f.and_filter.is_some(),
        f.or_filter.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count()
        + unsupported.iter().filter(|u| u.1).count();
    if set == 0 {
        return Err(err(path, "one filter kind is required (status_code_filter, duration_filter, header_filter, response_flag_filter, and_filter, or_filter)"));
    }
    if set > 1 {
        return Err(err(path, "only one filter kind may be set"));
    }
    if let Some((k, _, what)) = unsupported.iter().find(|u| u.1) {
        return Err(err(
            p(k),
            format!(
                "not supported by baton ({what}); supported filters: status_code_filter, \
                 duration_filter, header_filter, response_flag_filter, and_filter, or_filter"
            ),
        ));
    }
    if let Some(c) = f.status_code_filter {
        return Ok(LogFilter::Status(comparison(c, &p("status_code_filter"))?));
    }
    if let Some(c) = f.duration_filter {
        return Ok(LogFilter::Duration(comparison(c, &p("duration_filter"))?));
    }
    if let Some(h) = f.header_filter {
        let hp = join_key(&p("header_filter"), "header");
        let h = h
            .header
            .ok_or_else(|| err(&hp, "required field is missing"))?;
        return Ok(LogFilter::Header(header_matcher(h, &hp)?));
    }
    if let Some(r) = f.response_flag_filter {
        let fp = join_key(&p("response_flag_filter"), "flags");
        for (i, name) in r.flags.iter().enumerate() {
            if !FLAG_NAMES.contains(&name.as_str()) {
                return Err(err(
                    format!("{fp}[{i}]"),
                    format!(
                        "unknown response flag \"{name}\" (Envoy's: {})",
                        FLAG_NAMES.join(", ")
                    ),
                ));
            }
        }
        return Ok(LogFilter::ResponseFlags(r.flags));
    }
    let (list, key, and) = match (f.and_filter, f.or_filter) {
        (Some(l), _) => (l, "and_filter", true),
        (None, Some(l)) => (l, "or_filter", false),
        (None, None) => return Err(err(path, "one filter kind is required")),
    };
    let lp = join_key(&p(key), "filters");
    if list.filters.len() < 2 {
        // Envoy's validation: `repeated = {min_items: 2}`.
        return Err(err(&lp, "at least 2 filters are required"));
    }
    let mut out = Vec::new();
    for (i, f) in list.filters.into_iter().enumerate() {
        out.push(log_filter(f, &format!("{lp}[{i}]"))?);
    }
    Ok(if and {
        LogFilter::And(out)
    } else {
        LogFilter::Or(out)
    })
}

/// `{comparison: {op, value: {default_value, runtime_key}}}`. Envoy compares with the runtime
/// value of `runtime_key` when the runtime has one, else `default_value`. baton's runtime
/// refuses every key it does not implement, so no layer can set this one: the value is
/// `default_value`, exactly what Envoy uses for a key no layer sets.
fn comparison(c: raw::ComparisonHolder, path: &str) -> Result<Comparison, ConfigError> {
    let cp = join_key(path, "comparison");
    let c = c
        .comparison
        .ok_or_else(|| err(&cp, "required field is missing"))?;
    let op = match &c.op {
        None => CompareOp::Eq,
        Some(v) => proto_enum(v, &join_key(&cp, "op"), OPS)?,
    };
    let vp = join_key(&cp, "value");
    let v = c
        .value
        .ok_or_else(|| err(&vp, "required field is missing"))?;
    // Envoy's validation: `runtime_key` is required (`min_len: 1`).
    match v.runtime_key.as_deref() {
        Some(k) if !k.is_empty() => {}
        _ => {
            return Err(err(
                join_key(&vp, "runtime_key"),
                "required field is missing (Envoy requires a runtime key; its value is \
                 default_value while no runtime layer sets the key)",
            ))
        }
    }
    let value = match v.default_value.unwrap_or(0) {
        n @ 0..=0xFFFF_FFFF => n as u64,
        n => {
            return Err(err(
                join_key(&vp, "default_value"),
                format!("{n} out of range (a uint32)"),
            ))
        }
    };
    Ok(Comparison { op, value })
}

/// A local reply body's `SubstitutionFormatString`.
pub fn body_format(f: raw::BodyFormatString, path: &str) -> Result<BodyFormat, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if let Some(v) = &f.formatters {
        if !matches!(v, Value::Sequence(s) if s.is_empty()) {
            return Err(err(
                p("formatters"),
                "not supported by baton (formatter extensions)",
            ));
        }
    }
    let omit = f.omit_empty_values.unwrap_or(false);
    let set = [
        f.text_format.is_some(),
        f.text_format_source.is_some(),
        f.json_format.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        return Err(err(
            path,
            "only one of text_format, text_format_source, json_format may be set",
        ));
    }
    if f.json_format_options.is_some() && f.json_format.is_none() {
        return Err(err(p("json_format_options"), "applies to json_format only"));
    }
    let kind = if let Some(t) = f.text_format {
        check(&t, &p("text_format"))?;
        BodyFormatKind::Text(t)
    } else if let Some(ds) = &f.text_format_source {
        let sp = p("text_format_source");
        let t = data_source(ds, &sp)?;
        check(&t, &sp)?;
        BodyFormatKind::Text(t)
    } else if let Some(j) = &f.json_format {
        let jp = p("json_format");
        if omit {
            return Err(err(
                p("omit_empty_values"),
                "not supported by baton with json_format (Envoy then drops empty fields \
                 from the object); use it with text formats",
            ));
        }
        match j {
            Value::Mapping(_) => BodyFormatKind::Json(json(j, &jp, format::check_local_reply)?),
            _ => return Err(err(jp, "expected a map (a JSON object)")),
        }
    } else {
        return Err(err(
            path,
            "one of text_format, text_format_source, json_format is required",
        ));
    };
    let json = matches!(kind, BodyFormatKind::Json(_));
    let content_type = match f.content_type.filter(|c| !c.is_empty()) {
        Some(c) => {
            if c.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(err(p("content_type"), "must not contain CR, LF or NUL"));
            }
            c
        }
        None if json => "application/json".to_string(),
        None => "text/plain".to_string(),
    };
    Ok(BodyFormat {
        kind,
        omit_empty_values: omit,
        content_type,
    })
}

fn check(s: &str, path: &str) -> Result<(), ConfigError> {
    format::check_local_reply(s).map_err(|m| err(path, m))
}

/// A `json_format` value: objects (string keys), lists, strings (operators checked by
/// `check`), numbers, booleans and null, as Envoy's JSON formatter takes them.
pub fn json(
    v: &Value,
    path: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<JsonFormat, ConfigError> {
    Ok(match v {
        Value::Null => JsonFormat::Null,
        Value::Bool(b) => JsonFormat::Bool(*b),
        Value::Number(n) => JsonFormat::Number(json_number(n)),
        Value::String(s) => {
            if s.contains('%') {
                check(s).map_err(|m| err(path, m))?;
            }
            JsonFormat::String(s.clone())
        }
        Value::Sequence(items) => JsonFormat::List(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| json(x, &format!("{path}[{i}]"), check))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(m) => {
            let mut fields = Vec::new();
            for (k, x) in m {
                let Value::String(k) = k else {
                    return Err(err(path, "JSON object keys must be strings"));
                };
                fields.push((k.clone(), json(x, &join_key(path, k), check)?));
            }
            JsonFormat::Object(fields)
        }
        Value::Tagged(_) => return Err(err(path, "YAML tags are not JSON")),
    })
}

/// A number as Envoy writes a protobuf `Value` number (a double): whole numbers without a
/// fraction, others in their shortest form.
fn json_number(n: &serde_yaml::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if !f.is_finite() {
        // JSON has no infinity or NaN; Envoy's serializer writes null for them.
        return "null".into();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}
