//! `envoy.filters.http.fault`: the filter's `HTTPFault` and a route's. Aborts and delays are
//! honoured; response rate limits and every other field baton cannot honour are refused by
//! path.

use super::de::join_key;
use super::model::*;
use super::raw;
use super::runtime::FaultKeys;
use super::validate::err;
use super::validate_filters::fractional_percent;
use super::validate_route::header_matcher;
use super::ConfigError;

pub const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

thread_local! {
    /// The runtime's fault keys while a bootstrap is validated (`RuntimeFault::set`).
    static RUNTIME: std::cell::Cell<FaultKeys> = const { std::cell::Cell::new(FaultKeys {
        abort_percent: None,
        abort_http_status: None,
        delay_percent: None,
        delay_duration_ms: None,
        max_active_faults: None,
    }) };
}

/// Makes the runtime's fault keys apply to every fault filter validated until it is dropped:
/// a runtime value replaces the configured one, as Envoy reads these keys (a process serves
/// one runtime snapshot; a new disk layer is applied by a reload).
pub struct RuntimeFault;

impl RuntimeFault {
    pub fn set(keys: FaultKeys) -> RuntimeFault {
        RUNTIME.with(|r| r.set(keys));
        RuntimeFault
    }
}

impl Drop for RuntimeFault {
    fn drop(&mut self) {
        RUNTIME.with(|r| r.set(FaultKeys::default()));
    }
}

/// `HTTPFault` (the filter's or a route's: Envoy reads the same message for both).
pub fn fault(f: raw::HttpFault, path: &str) -> Result<Fault, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let refused: [(&str, bool, &str); 4] = [
        (
            "response_rate_limit",
            f.response_rate_limit.is_some(),
            "response rate limits",
        ),
        (
            "upstream_cluster",
            f.upstream_cluster.as_deref().is_some_and(|c| !c.is_empty()),
            "faults restricted to an upstream cluster",
        ),
        (
            "filter_metadata",
            f.filter_metadata.is_some(),
            "dynamic metadata",
        ),
        (
            "abort.grpc_status",
            f.abort.as_ref().is_some_and(|a| a.grpc_status.is_some()),
            "gRPC",
        ),
    ];
    if let Some(e) = super::validate::refused_fields(&refused, path).next() {
        return Err(e);
    }
    // Envoy reads these runtime keys. The abort's, the delay's and `max_active_faults`' keys
    // are applied below (`RuntimeFault`); the runtime refuses the others (rate limits, gRPC),
    // so no layer can set them. Another key name would be a key baton cannot honour.
    let keys = [
        (
            "delay_percent_runtime",
            &f.delay_percent_runtime,
            "fault.http.delay.fixed_delay_percent",
        ),
        (
            "abort_percent_runtime",
            &f.abort_percent_runtime,
            "fault.http.abort.abort_percent",
        ),
        (
            "delay_duration_runtime",
            &f.delay_duration_runtime,
            "fault.http.delay.fixed_duration_ms",
        ),
        (
            "abort_http_status_runtime",
            &f.abort_http_status_runtime,
            "fault.http.abort.http_status",
        ),
        (
            "max_active_faults_runtime",
            &f.max_active_faults_runtime,
            "fault.http.max_active_faults",
        ),
        (
            "response_rate_limit_percent_runtime",
            &f.response_rate_limit_percent_runtime,
            "fault.http.rate_limit.response_percent",
        ),
        (
            "abort_grpc_status_runtime",
            &f.abort_grpc_status_runtime,
            "fault.http.abort.grpc_status",
        ),
    ];
    for (field, v, default) in keys {
        if let Some(k) = v.as_deref().filter(|k| !k.is_empty() && k != &default) {
            return Err(err(
                p(field),
                format!(
                    "runtime key \"{k}\" is not supported by baton (only Envoy's default, \
                     \"{default}\", which no runtime layer sets)"
                ),
            ));
        }
    }
    let abort = match f.abort {
        None => None,
        Some(a) => {
            let ap = p("abort");
            let status = match (a.http_status, a.header_abort) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        join_key(&ap, "header_abort"),
                        "only one field may be set (also http_status)",
                    ))
                }
                (None, None) => {
                    return Err(err(
                        ap,
                        "exactly one of http_status, grpc_status, header_abort must be set",
                    ))
                }
                (Some(s), None) if (200..600).contains(&s) => Some(s as u16),
                (Some(s), None) => {
                    return Err(err(
                        join_key(&ap, "http_status"),
                        format!("{s} out of range (200..=599)"),
                    ))
                }
                (None, Some(_)) => None,
            };
            let mut percentage = match a.percentage {
                None => Fraction {
                    numerator: 0,
                    denominator: 100,
                },
                Some(d) => fractional_percent(d, &join_key(&ap, "percentage"))?,
            };
            let rt = RUNTIME.with(|r| r.get());
            // Envoy: `fault.http.abort.abort_percent` is a numerator over the configured
            // denominator; `fault.http.abort.http_status` replaces a configured status.
            if let Some(n) = rt.abort_percent {
                percentage.numerator = n;
            }
            let status = match (status, rt.abort_http_status) {
                (Some(_), Some(s)) => u16::try_from(s).ok(),
                (s, _) => s,
            };
            Some(FaultAbort { status, percentage })
        }
    };
    let delay = f.delay.map(|d| delay(d, &p("delay"))).transpose()?;
    let headers = f
        .headers
        .into_iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &format!("{}[{i}]", p("headers"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Fault {
        abort,
        delay,
        headers,
        downstream_nodes: f.downstream_nodes,
        max_active_faults: RUNTIME
            .with(|r| r.get().max_active_faults)
            .or(f.max_active_faults),
        downstream_cluster_stats: f.disable_downstream_cluster_stats != Some(true),
    })
}

/// `FaultDelay`: exactly one of `fixed_delay` (more than 0) and `header_delay`; the runtime's
/// `fault.http.delay.fixed_delay_percent` replaces the percentage's numerator (over the
/// configured denominator) and `fault.http.delay.fixed_duration_ms` the duration, as Envoy
/// reads them.
fn delay(d: raw::FaultDelay, path: &str) -> Result<FaultDelay, ConfigError> {
    let fixed = match (d.fixed_delay, d.header_delay) {
        (Some(_), Some(_)) => {
            return Err(err(
                join_key(path, "header_delay"),
                "only one field may be set (also fixed_delay)",
            ))
        }
        (None, None) => {
            return Err(err(
                path,
                "exactly one of fixed_delay, header_delay must be set",
            ))
        }
        (Some(f), None) if f.0.is_zero() => {
            return Err(err(
                join_key(path, "fixed_delay"),
                "must be greater than 0s",
            ))
        }
        (Some(f), None) => Some(f.0),
        (None, Some(_)) => None,
    };
    let mut percentage = match d.percentage {
        None => Fraction {
            numerator: 0,
            denominator: 100,
        },
        Some(p) => fractional_percent(p, &join_key(path, "percentage"))?,
    };
    let rt = RUNTIME.with(|r| r.get());
    if let Some(n) = rt.delay_percent {
        percentage.numerator = n;
    }
    let runtime = rt
        .delay_duration_ms
        .map(|ms| std::time::Duration::from_millis(u64::from(ms)));
    Ok(FaultDelay {
        from_header: fixed.is_none(),
        duration: runtime.or(fixed),
        percentage,
    })
}
