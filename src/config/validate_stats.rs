//! The bootstrap's `stats_sinks`, `stats_flush_interval` and `stats_config` → the checked
//! model. Only the statsd and DogStatsD sinks over UDP and the stats matcher are implemented;
//! every other sink and field is refused with its path.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::de::{from_value, join_key};
use super::model::{StatsMatcher, StatsdSink};
use super::raw;
use super::validate::{
    err, extension_kind, no_filter, socket_address, typed_payload, EnumEntry, DOG_STATSD_SINK_TYPE,
    STATSD_SINK_TYPE,
};
use super::validate_route::string_match;
use super::ConfigError;

/// Envoy's UDP writer sends to the address whatever its `protocol` says.
const ANY_PROTOCOL: &[EnumEntry<()>] = &[("TCP", 0, Some(())), ("UDP", 1, Some(()))];

/// Envoy's default `stats_flush_interval`.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

pub fn sinks(list: &[raw::TypedExtension]) -> Result<Vec<StatsdSink>, ConfigError> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("stats_sinks[{i}]");
        let ty = extension_kind(
            s,
            &path,
            "stats sink",
            &[STATSD_SINK_TYPE, DOG_STATSD_SINK_TYPE],
        )?;
        no_filter(s, &path)?;
        let tpath = join_key(&path, "typed_config");
        let payload = typed_payload(&s.typed_config, &tpath, ty)?
            .ok_or_else(|| err(join_key(&tpath, "address"), "required field is missing"))?;
        let (address, prefix, tagged, max_bytes) = if ty == DOG_STATSD_SINK_TYPE {
            let c: raw::DogStatsdSink = from_value(&payload, &tpath)?;
            (c.address, c.prefix, true, c.max_bytes_per_datagram)
        } else {
            let c: raw::StatsdSink = from_value(&payload, &tpath)?;
            if c.tcp_cluster_name.is_some() {
                return Err(err(
                    join_key(&tpath, "tcp_cluster_name"),
                    "not supported by baton (statsd over TCP through a cluster; use address, UDP)",
                ));
            }
            (c.address, c.prefix, false, None)
        };
        let apath = join_key(&tpath, "address");
        let (host, port) = socket_address(address.as_ref(), &apath, false, ANY_PROTOCOL)?;
        let ip: IpAddr = host.parse().map_err(|_| {
            err(
                join_key(&join_key(&apath, "socket_address"), "address"),
                format!("not an IP address: \"{host}\""),
            )
        })?;
        out.push(StatsdSink {
            address: SocketAddr::new(ip, port),
            prefix: match prefix {
                Some(p) if !p.is_empty() => p,
                _ => "envoy".to_string(),
            },
            tagged,
            // Envoy's `UInt64Value` has no bounds; unset and 0 both mean one line a datagram.
            max_bytes_per_datagram: max_bytes.unwrap_or(0),
        });
    }
    Ok(out)
}

/// `stats_flush_interval`: Envoy's bounds (at least 1 ms, under 300 s), 5 s by default.
/// `stats_flush_on_admin: true` (flush only when the admin reads the stats) is refused.
pub fn flush_interval(
    interval: Option<raw::Dur>,
    on_admin: Option<bool>,
) -> Result<Duration, ConfigError> {
    if on_admin == Some(true) {
        return Err(err(
            "stats_flush_on_admin",
            "not supported by baton (flushing only when the admin reads the stats; use \
             stats_flush_interval)",
        ));
    }
    match interval {
        None => Ok(DEFAULT_FLUSH_INTERVAL),
        Some(raw::Dur(d)) if d >= Duration::from_millis(1) && d < Duration::from_secs(300) => Ok(d),
        Some(raw::Dur(d)) => Err(err(
            "stats_flush_interval",
            format!("{d:?} out of range (at least 1ms, less than 300s)"),
        )),
    }
}

/// `stats_config`: the stats matcher, and Envoy's default tag extraction kept on (it is what
/// the Prometheus output does). Custom tags and histogram buckets are refused.
pub fn stats_config(c: raw::StatsConfig) -> Result<StatsMatcher, ConfigError> {
    if !c.stats_tags.is_empty() {
        return Err(err(
            "stats_config.stats_tags",
            "not supported by baton (custom tag extraction; the default tags are applied)",
        ));
    }
    if c.use_all_default_tags == Some(false) {
        return Err(err(
            "stats_config.use_all_default_tags",
            "not supported by baton with false (the default tags are always applied)",
        ));
    }
    if !c.histogram_bucket_settings.is_empty() {
        return Err(err(
            "stats_config.histogram_bucket_settings",
            "not supported by baton (baton keeps no histograms)",
        ));
    }
    let Some(m) = c.stats_matcher else {
        return Ok(StatsMatcher::All);
    };
    let path = "stats_config.stats_matcher";
    let list = |l: raw::ListStringMatcher, key: &str| {
        let lp = join_key(&join_key(path, key), "patterns");
        if l.patterns.is_empty() {
            // Envoy's validation: `repeated = {min_items: 1}`.
            return Err(err(&lp, "at least 1 pattern is required"));
        }
        l.patterns
            .into_iter()
            .enumerate()
            .map(|(i, p)| string_match(p, &format!("{lp}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
    };
    match (m.reject_all, m.exclusion_list, m.inclusion_list) {
        (Some(true), None, None) => Ok(StatsMatcher::Nothing),
        (Some(false), None, None) => Ok(StatsMatcher::All),
        (None, Some(l), None) => Ok(StatsMatcher::Except(list(l, "exclusion_list")?)),
        (None, None, Some(l)) => Ok(StatsMatcher::Only(list(l, "inclusion_list")?)),
        (None, None, None) => Err(err(
            path,
            "one of reject_all, exclusion_list, inclusion_list is required",
        )),
        _ => Err(err(
            path,
            "only one of reject_all, exclusion_list, inclusion_list may be set",
        )),
    }
}
