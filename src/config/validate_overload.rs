//! The overload manager's config: the fixed-heap monitor and the actions its pressure drives,
//! and the global downstream connection monitor (checked at every accept, not polled).

use std::time::Duration;

use super::de::{from_value, join_key};
use super::model::{Overload, OverloadAction, OverloadKind, OverloadTrigger};
use super::raw;
use super::validate::{err, extension_kind, keep, no_filter, positive, typed_payload};
use super::ConfigError;

pub(super) const GLOBAL_CX_TYPE: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
pub(super) const FIXED_HEAP_TYPE: &str =
    "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig";

/// Envoy's action names baton takes, and what each does here.
const ACTIONS: &[(&str, OverloadKind)] = &[
    (
        "envoy.overload_actions.stop_accepting_requests",
        OverloadKind::StopAcceptingRequests,
    ),
    (
        "envoy.overload_actions.disable_http_keepalive",
        OverloadKind::DisableHttpKeepalive,
    ),
    (
        "envoy.overload_actions.stop_accepting_connections",
        OverloadKind::StopAcceptingConnections,
    ),
    (
        "envoy.overload_actions.reject_incoming_connections",
        OverloadKind::RejectIncomingConnections,
    ),
    (
        "envoy.overload_actions.shrink_heap",
        OverloadKind::ShrinkHeap,
    ),
];

/// Envoy's `refresh_interval` when none is set.
const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// The monitors as configured: the connection limit (checked at accept) and the polled heap.
#[derive(Default)]
struct Monitors {
    max_connections: Option<(u64, String)>,
    heap: Option<(u64, String)>,
}

/// `overload_manager`: the global downstream connection limit (if its monitor is set) and the
/// polled part. Every error is reported, not only the first.
pub(super) fn overload_manager(
    om: raw::OverloadManager,
) -> Result<(Option<u64>, Overload), ConfigError> {
    let mut first = None;
    for (field, set) in [
        ("loadshed_points", om.loadshed_points.is_some()),
        ("buffer_factory_config", om.buffer_factory_config.is_some()),
    ] {
        if set {
            keep::<()>(
                Err(err(
                    format!("overload_manager.{field}"),
                    "not supported by baton",
                )),
                &mut first,
            );
        }
    }
    let monitors = keep(resource_monitors(&om.resource_monitors), &mut first).unwrap_or_default();
    let mut actions: Vec<OverloadAction> = Vec::new();
    for (i, a) in om.actions.iter().enumerate() {
        let path = format!("overload_manager.actions[{i}]");
        if let Some(a) = keep(action(a, &path, &monitors), &mut first) {
            if actions.iter().any(|b| b.name == a.name) {
                keep::<()>(
                    Err(err(join_key(&path, "name"), "duplicate overload action")),
                    &mut first,
                );
            }
            actions.push(a);
        }
    }
    let refresh = match om.refresh_interval {
        Some(raw::Dur(d)) if d.is_zero() => {
            keep::<()>(
                Err(err(
                    "overload_manager.refresh_interval",
                    "must be greater than 0",
                )),
                &mut first,
            );
            DEFAULT_REFRESH
        }
        Some(raw::Dur(d)) => d,
        None => DEFAULT_REFRESH,
    };
    if let Some(e) = first {
        return Err(e);
    }
    let (max_heap, monitor_name) = match monitors.heap {
        Some((max, name)) => (Some(max), name),
        None => (None, String::new()),
    };
    Ok((
        monitors.max_connections.map(|(n, _)| n),
        Overload {
            refresh,
            max_heap,
            monitor_name,
            actions,
        },
    ))
}

/// `overload_manager.resource_monitors`: at most one of each kind, each with a name.
fn resource_monitors(monitors: &[raw::TypedExtension]) -> Result<Monitors, ConfigError> {
    let mut out = Monitors::default();
    for (i, m) in monitors.iter().enumerate() {
        let path = format!("overload_manager.resource_monitors[{i}]");
        let kind = extension_kind(
            m,
            &path,
            "resource monitor",
            &[GLOBAL_CX_TYPE, FIXED_HEAP_TYPE],
        )?;
        if m.name.is_empty() {
            return Err(err(join_key(&path, "name"), "must not be empty"));
        }
        no_filter(m, &path)?;
        let tpath = join_key(&path, "typed_config");
        let payload = typed_payload(&m.typed_config, &tpath, kind)?
            .ok_or_else(|| err(&tpath, "required field is missing"))?;
        let slot = if kind == GLOBAL_CX_TYPE {
            let c: raw::DownstreamConnectionsConfig = from_value(&payload, &tpath)?;
            let max = positive(
                c.max_active_downstream_connections,
                &join_key(&tpath, "max_active_downstream_connections"),
            )?;
            (&mut out.max_connections, max)
        } else {
            let c: raw::FixedHeapConfig = from_value(&payload, &tpath)?;
            let max = positive(
                c.max_heap_size_bytes,
                &join_key(&tpath, "max_heap_size_bytes"),
            )?;
            if !cfg!(all(target_os = "linux", target_env = "gnu")) {
                return Err(err(
                    &path,
                    "not supported by this build of baton (the heap is measured with glibc's \
                     mallinfo2)",
                ));
            }
            (&mut out.heap, max)
        };
        if slot.0.is_some() {
            return Err(err(path, "the monitor is configured twice"));
        }
        *slot.0 = Some((slot.1, m.name.clone()));
    }
    Ok(out)
}

/// One action: a name baton knows and triggers on the fixed-heap monitor.
fn action(
    a: &raw::OverloadAction,
    path: &str,
    monitors: &Monitors,
) -> Result<OverloadAction, ConfigError> {
    let npath = join_key(path, "name");
    let name = a
        .name
        .as_deref()
        .ok_or_else(|| err(&npath, "required field is missing"))?;
    let kind = ACTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            err(
                &npath,
                format!(
                    "overload action \"{name}\" is not supported by baton (supported: {})",
                    ACTIONS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if a.typed_config.is_some() {
        return Err(err(
            join_key(path, "typed_config"),
            "not supported by baton (only envoy.overload_actions.reduce_timeouts takes one)",
        ));
    }
    if a.triggers.is_empty() {
        return Err(err(
            join_key(path, "triggers"),
            "at least one trigger is required",
        ));
    }
    let mut triggers = Vec::with_capacity(a.triggers.len());
    for (j, t) in a.triggers.iter().enumerate() {
        let tpath = format!("{path}.triggers[{j}]");
        let tname = t
            .name
            .as_deref()
            .ok_or_else(|| err(join_key(&tpath, "name"), "required field is missing"))?;
        match (&monitors.heap, &monitors.max_connections) {
            (Some((_, heap)), _) if heap == tname => {}
            (_, Some((_, cx))) if cx == tname => {
                return Err(err(
                    join_key(&tpath, "name"),
                    "the downstream connections monitor is checked at each accept and cannot \
                     trigger an action (as in Envoy, a proactive monitor)",
                ))
            }
            _ => {
                return Err(err(
                    join_key(&tpath, "name"),
                    format!(
                        "unknown trigger resource \"{tname}\" (no resource monitor has this name)"
                    ),
                ))
            }
        }
        if triggers.len() == 1 {
            // Every trigger names the one polled monitor baton has.
            return Err(err(
                join_key(&tpath, "name"),
                "duplicate trigger resource (an action has one trigger per monitor)",
            ));
        }
        triggers.push(trigger(t, &tpath)?);
    }
    Ok(OverloadAction {
        name: name.to_string(),
        kind,
        triggers,
    })
}

fn trigger(t: &raw::OverloadTrigger, path: &str) -> Result<OverloadTrigger, ConfigError> {
    let unit = |v: f64, field: &str| {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(err(format!("{path}.{field}"), "must be between 0 and 1"))
        }
    };
    match (&t.threshold, &t.scaled) {
        (Some(th), None) => Ok(OverloadTrigger::Threshold(unit(
            th.value,
            "threshold.value",
        )?)),
        (None, Some(s)) => {
            let scaling = unit(s.scaling_threshold, "scaled.scaling_threshold")?;
            let saturation = unit(s.saturation_threshold, "scaled.saturation_threshold")?;
            if scaling >= saturation {
                return Err(err(
                    format!("{path}.scaled"),
                    "scaling_threshold must be less than saturation_threshold",
                ));
            }
            Ok(OverloadTrigger::Scaled {
                scaling,
                saturation,
            })
        }
        (Some(_), Some(_)) => Err(err(path, "only one of threshold, scaled may be set")),
        (None, None) => Err(err(path, "one of threshold, scaled is required")),
    }
}
