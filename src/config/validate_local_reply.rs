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

/// The filter kinds baton implements, for the messages that list them.
const SUPPORTED_FILTERS: &str = "status_code_filter, duration_filter, not_health_check_filter, \
     traceable_filter, runtime_filter, and_filter, or_filter, header_filter, \
     response_flag_filter, grpc_status_filter";

/// `FractionalPercent.denominator`.
pub(super) const DENOMINATORS: &[EnumEntry<u32>] = &[
    ("HUNDRED", 0, Some(100)),
    ("TEN_THOUSAND", 1, Some(10_000)),
    ("MILLION", 2, Some(1_000_000)),
];

/// `GrpcStatusFilter.Status`: the 17 well-known gRPC codes.
const GRPC_STATUSES: &[EnumEntry<u8>] = &[
    ("OK", 0, Some(0)),
    ("CANCELED", 1, Some(1)),
    ("UNKNOWN", 2, Some(2)),
    ("INVALID_ARGUMENT", 3, Some(3)),
    ("DEADLINE_EXCEEDED", 4, Some(4)),
    ("NOT_FOUND", 5, Some(5)),
    ("ALREADY_EXISTS", 6, Some(6)),
    ("PERMISSION_DENIED", 7, Some(7)),
    ("RESOURCE_EXHAUSTED", 8, Some(8)),
    ("FAILED_PRECONDITION", 9, Some(9)),
    ("ABORTED", 10, Some(10)),
    ("OUT_OF_RANGE", 11, Some(11)),
    ("UNIMPLEMENTED", 12, Some(12)),
    ("INTERNAL", 13, Some(13)),
    ("UNAVAILABLE", 14, Some(14)),
    ("DATA_LOSS", 15, Some(15)),
    ("UNAUTHENTICATED", 16, Some(16)),
];

/// One `AccessLogFilter` (a oneof): the kinds baton implements, every other refused by path.
/// Used by access logs and by `local_reply_config` mappers alike, as in Envoy.
pub fn log_filter(f: raw::AccessLogFilter, path: &str) -> Result<LogFilter, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let unsupported: [(&str, bool, &str); 3] = [
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
        f.not_health_check_filter.is_some(),
        f.traceable_filter.is_some(),
        f.runtime_filter.is_some(),
        f.grpc_status_filter.is_some(),
        f.and_filter.is_some(),
        f.or_filter.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count()
        + unsupported.iter().filter(|u| u.1).count();
    if set == 0 {
        return Err(err(
            path,
            format!("one filter kind is required ({SUPPORTED_FILTERS})"),
        ));
    }
    if set > 1 {
        return Err(err(path, "only one filter kind may be set"));
    }
    if let Some((k, _, what)) = unsupported.iter().find(|u| u.1) {
        return Err(err(
            p(k),
            format!("not supported by baton ({what}); supported filters: {SUPPORTED_FILTERS}"),
        ));
    }
    if let Some(c) = f.status_code_filter {
        return Ok(LogFilter::Status(comparison(c, &p("status_code_filter"))?));
    }
    if let Some(c) = f.duration_filter {
        return Ok(LogFilter::Duration(comparison(c, &p("duration_filter"))?));
    }
    if f.not_health_check_filter.is_some() {
        return Ok(LogFilter::NotHealthCheck);
    }
    if f.traceable_filter.is_some() {
        return Ok(LogFilter::Traceable);
    }
    if let Some(r) = f.runtime_filter {
        return Ok(LogFilter::Runtime(runtime_filter(r, &p("runtime_filter"))?));
    }
    if let Some(g) = f.grpc_status_filter {
        let sp = join_key(&p("grpc_status_filter"), "statuses");
        let mut statuses = Vec::new();
        for (i, v) in g.statuses.iter().enumerate() {
            statuses.push(proto_enum(v, &format!("{sp}[{i}]"), GRPC_STATUSES)?);
        }
        return Ok(LogFilter::GrpcStatus {
            statuses,
            exclude: g.exclude.unwrap_or(false),
        });
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

/// `RuntimeFilter`: `runtime_key` is required (Envoy's `min_len: 1`); as for comparisons,
/// no runtime layer can set it, so `percent_sampled` (default 0/100) is the share logged.
fn runtime_filter(r: raw::RuntimeFilter, path: &str) -> Result<RuntimeSample, ConfigError> {
    let runtime_key = match r.runtime_key {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Err(err(
                join_key(path, "runtime_key"),
                "required field is missing (Envoy requires a runtime key; percent_sampled \
                 applies while no runtime layer sets the key)",
            ))
        }
    };
    let pp = join_key(path, "percent_sampled");
    let (numerator, denominator) = match r.percent_sampled {
        None => (0, 100),
        Some(f) => {
            let denominator = match &f.denominator {
                None => 100,
                Some(v) => proto_enum(v, &join_key(&pp, "denominator"), DENOMINATORS)?,
            };
            let numerator = uint32(f.numerator, &join_key(&pp, "numerator"))?;
            (numerator, denominator)
        }
    };
    Ok(RuntimeSample {
        runtime_key,
        numerator,
        denominator,
        independent: r.use_independent_randomness.unwrap_or(false),
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
    let value = u64::from(uint32(v.default_value, &join_key(&vp, "default_value"))?);
    Ok(Comparison { op, value })
}

/// A proto `uint32` read wider (0 when unset), so that a value out of range gets a message.
pub(super) fn uint32(v: Option<i64>, path: &str) -> Result<u32, ConfigError> {
    let n = v.unwrap_or(0);
    u32::try_from(n).map_err(|_| err(path, format!("{n} out of range (a uint32)")))
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
