//! A cluster's `health_checks` and `common_lb_config` → the checked model, with Envoy's
//! defaults and the rules its proto validation enforces (health_check.proto).

use std::time::Duration;

use super::de::join_key;
use super::model::{HealthCheck, HealthCheckKind};
use super::raw;
use super::validate::{err, proto_enum, EnumEntry};
use super::ConfigError;

/// `config.core.v3.RequestMethod` (Envoy refuses CONNECT for health checks; unspecified is GET).
const METHODS: &[EnumEntry<&str>] = &[
    ("METHOD_UNSPECIFIED", 0, Some("GET")),
    ("GET", 1, Some("GET")),
    ("HEAD", 2, Some("HEAD")),
    ("POST", 3, Some("POST")),
    ("PUT", 4, Some("PUT")),
    ("DELETE", 5, Some("DELETE")),
    ("CONNECT", 6, None),
    ("OPTIONS", 7, Some("OPTIONS")),
    ("TRACE", 8, Some("TRACE")),
    ("PATCH", 9, Some("PATCH")),
];

/// `type.v3.CodecClientType`: baton speaks HTTP/1.1 to upstreams only.
const CODECS: &[EnumEntry<()>] = &[
    ("HTTP1", 0, Some(())),
    ("HTTP2", 1, None),
    ("HTTP3", 2, None),
];

/// `health_checks` of the cluster at `path` (`tls`: the cluster has a TLS transport socket).
pub fn health_checks(
    list: Vec<raw::ActiveHealthCheck>,
    tls: bool,
    path: &str,
) -> Result<Option<HealthCheck>, ConfigError> {
    let lpath = join_key(path, "health_checks");
    if list.len() > 1 {
        // Envoy: "Multiple health checks not supported".
        return Err(err(
            lpath,
            "multiple health checks are not supported (Envoy takes one)",
        ));
    }
    let Some(hc) = list.into_iter().next() else {
        return Ok(None);
    };
    if tls {
        return Err(err(
            lpath,
            "not supported by baton on a cluster with a TLS transport_socket (health checks are plain TCP)",
        ));
    }
    health_check(hc, &format!("{lpath}[0]")).map(Some)
}

fn refuse(
    v: &Option<serde_yaml::Value>,
    path: &str,
    field: &str,
    why: &str,
) -> Result<(), ConfigError> {
    match v {
        Some(_) => Err(err(
            join_key(path, field),
            format!("not supported by baton ({why})"),
        )),
        None => Ok(()),
    }
}

fn required(d: Option<raw::Dur>, path: &str, field: &str) -> Result<Duration, ConfigError> {
    match d {
        None => Err(err(join_key(path, field), "required field is missing")),
        Some(raw::Dur(d)) if d.is_zero() => {
            Err(err(join_key(path, field), "must be greater than 0s"))
        }
        Some(raw::Dur(d)) => Ok(d),
    }
}

fn positive_or(
    d: Option<raw::Dur>,
    path: &str,
    field: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match d {
        None => Ok(default),
        Some(_) => required(d, path, field),
    }
}

fn health_check(h: raw::ActiveHealthCheck, path: &str) -> Result<HealthCheck, ConfigError> {
    let p = |f: &str| join_key(path, f);
    refuse(
        &h.grpc_health_check,
        path,
        "grpc_health_check",
        "gRPC health checks",
    )?;
    refuse(
        &h.custom_health_check,
        path,
        "custom_health_check",
        "custom health checkers",
    )?;
    refuse(
        &h.alt_port,
        path,
        "alt_port",
        "health checks on another port",
    )?;
    refuse(
        &h.event_log_path,
        path,
        "event_log_path",
        "health check event logs",
    )?;
    refuse(
        &h.event_logger,
        path,
        "event_logger",
        "health check event logs",
    )?;
    refuse(
        &h.event_service,
        path,
        "event_service",
        "health check event logs",
    )?;
    refuse(
        &h.always_log_health_check_failures,
        path,
        "always_log_health_check_failures",
        "health check event logs",
    )?;
    refuse(
        &h.always_log_health_check_success,
        path,
        "always_log_health_check_success",
        "health check event logs",
    )?;
    refuse(&h.tls_options, path, "tls_options", "TLS health checks")?;
    refuse(
        &h.transport_socket_match_criteria,
        path,
        "transport_socket_match_criteria",
        "transport socket matches",
    )?;
    let timeout = required(h.timeout, path, "timeout")?;
    let interval = required(h.interval, path, "interval")?;
    let Some(unhealthy_threshold) = h.unhealthy_threshold else {
        return Err(err(p("unhealthy_threshold"), "required field is missing"));
    };
    let Some(healthy_threshold) = h.healthy_threshold else {
        return Err(err(p("healthy_threshold"), "required field is missing"));
    };
    let no_traffic_interval = positive_or(
        h.no_traffic_interval,
        path,
        "no_traffic_interval",
        Duration::from_secs(60),
    )?;
    let unhealthy_interval =
        positive_or(h.unhealthy_interval, path, "unhealthy_interval", interval)?;
    let kind = match (h.http_health_check, h.tcp_health_check) {
        (Some(_), Some(_)) => {
            return Err(err(
                path,
                "only one of http_health_check, tcp_health_check may be set",
            ))
        }
        (Some(x), None) => http(x, &p("http_health_check"))?,
        (None, Some(t)) => tcp(t, &p("tcp_health_check"))?,
        (None, None) => {
            return Err(err(
                path,
                "one of http_health_check, tcp_health_check is required",
            ))
        }
    };
    Ok(HealthCheck {
        timeout,
        interval,
        initial_jitter: h.initial_jitter.map_or(Duration::ZERO, |d| d.0),
        interval_jitter: h.interval_jitter.map_or(Duration::ZERO, |d| d.0),
        interval_jitter_percent: h.interval_jitter_percent.unwrap_or(0),
        unhealthy_threshold,
        healthy_threshold,
        reuse_connection: h.reuse_connection.unwrap_or(true),
        no_traffic_interval,
        no_traffic_healthy_interval: positive_or(
            h.no_traffic_healthy_interval,
            path,
            "no_traffic_healthy_interval",
            no_traffic_interval,
        )?,
        unhealthy_interval,
        unhealthy_edge_interval: positive_or(
            h.unhealthy_edge_interval,
            path,
            "unhealthy_edge_interval",
            unhealthy_interval,
        )?,
        healthy_edge_interval: positive_or(
            h.healthy_edge_interval,
            path,
            "healthy_edge_interval",
            interval,
        )?,
        kind,
    })
}

fn http(x: raw::HttpHealthCheck, path: &str) -> Result<HealthCheckKind, ConfigError> {
    let p = |f: &str| join_key(path, f);
    refuse(&x.send, path, "send", "HTTP health check payloads")?;
    refuse(&x.receive, path, "receive", "HTTP health check payloads")?;
    refuse(
        &x.response_buffer_size,
        path,
        "response_buffer_size",
        "HTTP health check payloads",
    )?;
    refuse(
        &x.service_name_matcher,
        path,
        "service_name_matcher",
        "health check service name verification",
    )?;
    let headers = super::validate_route::mutations(&x, path)?;
    if let Some(c) = &x.codec_client_type {
        proto_enum(c, &p("codec_client_type"), CODECS)?;
    }
    if x.path.is_empty() {
        return Err(err(p("path"), "required field is missing"));
    }
    let value_ok = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if !value_ok(&x.path) || x.path.contains(' ') {
        return Err(err(p("path"), "not a valid request path"));
    }
    if !value_ok(&x.host) {
        return Err(err(p("host"), "not a valid header value"));
    }
    let mut expected_statuses = status_ranges(&x.expected_statuses, &p("expected_statuses"))?;
    if expected_statuses.is_empty() {
        expected_statuses.push((200, 201));
    }
    let method = match &x.method {
        Some(m) => proto_enum(m, &p("method"), METHODS)?,
        None => "GET",
    };
    Ok(HealthCheckKind::Http {
        method: method.to_string(),
        host: x.host,
        path: x.path,
        expected_statuses,
        retriable_statuses: status_ranges(&x.retriable_statuses, &p("retriable_statuses"))?,
        headers,
    })
}

fn status_ranges(list: &[raw::Int64Range], path: &str) -> Result<Vec<(u16, u16)>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, r)| status_range(r, &format!("{path}[{i}]")))
        .collect()
}

/// An `Int64Range` of statuses: Envoy's rules (start < end, start ≥ 100, end ≤ 600).
fn status_range(r: &raw::Int64Range, path: &str) -> Result<(u16, u16), ConfigError> {
    if r.start >= r.end {
        return Err(err(
            path,
            format!(
                "expecting start < end, but found start={} and end={}",
                r.start, r.end
            ),
        ));
    }
    if r.start < 100 {
        return Err(err(
            path,
            format!("expecting start >= 100, but found start={}", r.start),
        ));
    }
    if r.end > 600 {
        return Err(err(
            path,
            format!("expecting end <= 600, but found end={}", r.end),
        ));
    }
    Ok((r.start as u16, r.end as u16))
}

fn tcp(t: raw::TcpHealthCheck, path: &str) -> Result<HealthCheckKind, ConfigError> {
    refuse(
        &t.proxy_protocol_config,
        path,
        "proxy_protocol_config",
        "PROXY protocol",
    )?;
    let send = match &t.send {
        Some(pl) => payload(pl, &join_key(path, "send"))?,
        None => Vec::new(),
    };
    let mut receive = Vec::new();
    for (i, pl) in t.receive.iter().enumerate() {
        receive.push(payload(pl, &format!("{}[{i}]", join_key(path, "receive")))?);
    }
    Ok(HealthCheckKind::Tcp { send, receive })
}

/// A hex `text` payload, decoded (Envoy refuses an empty or malformed one at load).
fn payload(pl: &raw::Payload, path: &str) -> Result<Vec<u8>, ConfigError> {
    refuse(
        &pl.binary,
        path,
        "binary",
        "binary payloads; use text (hex)",
    )?;
    let Some(text) = &pl.text else {
        return Err(err(join_key(path, "text"), "required field is missing"));
    };
    hex(text).ok_or_else(|| {
        err(
            join_key(path, "text"),
            format!("invalid hex string '{text}'"),
        )
    })
}

/// Decodes hex (either case); `None` for an empty, odd-length or non-hex string.
pub fn hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

/// `common_lb_config.healthy_panic_threshold` as Envoy reads it: a percent (0–100) rounded to
/// a whole number; 50 when absent.
pub fn panic_threshold(c: Option<raw::CommonLbConfig>, path: &str) -> Result<u32, ConfigError> {
    let cpath = join_key(path, "common_lb_config");
    if let Some(c) = &c {
        for (v, field, why) in [
            (
                &c.zone_aware_lb_config,
                "zone_aware_lb_config",
                "zone-aware load balancing",
            ),
            (
                &c.update_merge_window,
                "update_merge_window",
                "host update merging",
            ),
            (
                &c.ignore_new_hosts_until_first_hc,
                "ignore_new_hosts_until_first_hc",
                "ignore_new_hosts_until_first_hc",
            ),
            (
                &c.close_connections_on_host_set_change,
                "close_connections_on_host_set_change",
                "close_connections_on_host_set_change",
            ),
            (
                &c.override_host_status,
                "override_host_status",
                "host overrides",
            ),
        ] {
            refuse(v, &cpath, field, why)?;
        }
    }
    let Some(pct) = c.and_then(|c| c.healthy_panic_threshold) else {
        return Ok(50);
    };
    if !(0.0..=100.0).contains(&pct.value) {
        return Err(err(
            format!("{cpath}.healthy_panic_threshold.value"),
            format!("{} out of range (0..=100)", pct.value),
        ));
    }
    Ok(pct.value.round() as u32)
}

/// A cluster's `outlier_detection`, Envoy's defaults where unset. Failure-percentage
/// ejection, jitter and monitor extensions are refused naming the field.
pub fn outlier_detection(
    o: &raw::OutlierDetection,
    path: &str,
) -> Result<super::model::OutlierDetection, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let refused: [(bool, &str, &str); 7] = [
        (
            o.enforcing_failure_percentage.is_some_and(|v| v > 0),
            "enforcing_failure_percentage",
            "failure-percentage ejection",
        ),
        (
            o.enforcing_failure_percentage_local_origin
                .is_some_and(|v| v > 0),
            "enforcing_failure_percentage_local_origin",
            "failure-percentage ejection",
        ),
        (
            o.failure_percentage_threshold.is_some(),
            "failure_percentage_threshold",
            "failure-percentage ejection",
        ),
        (
            o.failure_percentage_minimum_hosts.is_some(),
            "failure_percentage_minimum_hosts",
            "failure-percentage ejection",
        ),
        (
            o.failure_percentage_request_volume.is_some(),
            "failure_percentage_request_volume",
            "failure-percentage ejection",
        ),
        (
            o.max_ejection_time_jitter
                .as_ref()
                .is_some_and(|d| !d.0.is_zero()),
            "max_ejection_time_jitter",
            "ejection time jitter",
        ),
        (
            o.monitors.is_some(),
            "monitors",
            "outlier detection monitors",
        ),
    ];
    if let Some((_, field, what)) = refused.iter().find(|r| r.0) {
        return Err(err(p(field), format!("not supported by baton ({what})")));
    }
    let d = super::model::OutlierDetection::default();
    let percent = |v: Option<u32>, field: &str, default: u32| match v {
        Some(v) if v > 100 => Err(err(p(field), format!("{v} out of range (0..=100)"))),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let positive = |v: Option<raw::Dur>, field: &str, default: Duration| match v {
        Some(raw::Dur(d)) if d.is_zero() => Err(err(p(field), "must be greater than 0s")),
        Some(raw::Dur(d)) => Ok(d),
        None => Ok(default),
    };
    let base_ejection_time = positive(
        o.base_ejection_time,
        "base_ejection_time",
        d.base_ejection_time,
    )?;
    let max_ejection_time = positive(
        o.max_ejection_time,
        "max_ejection_time",
        d.max_ejection_time,
    )?;
    if max_ejection_time < base_ejection_time {
        return Err(err(
            p("max_ejection_time"),
            "must not be smaller than base_ejection_time (as in Envoy)",
        ));
    }
    Ok(super::model::OutlierDetection {
        base_ejection_time,
        max_ejection_time,
        consecutive_5xx: o.consecutive_5xx.unwrap_or(d.consecutive_5xx),
        consecutive_gateway_failure: o
            .consecutive_gateway_failure
            .unwrap_or(d.consecutive_gateway_failure),
        consecutive_local_origin_failure: o
            .consecutive_local_origin_failure
            .unwrap_or(d.consecutive_local_origin_failure),
        split_external_local_origin_errors: o.split_external_local_origin_errors.unwrap_or(false),
        interval: positive(o.interval, "interval", d.interval)?,
        max_ejection_percent: percent(
            o.max_ejection_percent,
            "max_ejection_percent",
            d.max_ejection_percent,
        )?,
        always_eject_one_host: o.always_eject_one_host.unwrap_or(false),
        enforcing_consecutive_5xx: percent(
            o.enforcing_consecutive_5xx,
            "enforcing_consecutive_5xx",
            d.enforcing_consecutive_5xx,
        )?,
        enforcing_consecutive_gateway_failure: percent(
            o.enforcing_consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure",
            d.enforcing_consecutive_gateway_failure,
        )?,
        enforcing_consecutive_local_origin_failure: percent(
            o.enforcing_consecutive_local_origin_failure,
            "enforcing_consecutive_local_origin_failure",
            d.enforcing_consecutive_local_origin_failure,
        )?,
        enforcing_success_rate: percent(
            o.enforcing_success_rate,
            "enforcing_success_rate",
            d.enforcing_success_rate,
        )?,
        enforcing_local_origin_success_rate: percent(
            o.enforcing_local_origin_success_rate,
            "enforcing_local_origin_success_rate",
            d.enforcing_local_origin_success_rate,
        )?,
        success_rate_minimum_hosts: o
            .success_rate_minimum_hosts
            .unwrap_or(d.success_rate_minimum_hosts),
        success_rate_request_volume: o
            .success_rate_request_volume
            .unwrap_or(d.success_rate_request_volume),
        success_rate_stdev_factor: o
            .success_rate_stdev_factor
            .unwrap_or(d.success_rate_stdev_factor),
        successful_active_health_check_uneject_host: o
            .successful_active_health_check_uneject_host
            .unwrap_or(true),
    })
}
