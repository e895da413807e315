//! Route actions that need more than a lookup: forwarding (clusters, weights, rewrites,
//! retries) and redirects.

use std::time::Duration;

use super::de::join_key;
use super::model::*;
use super::raw;
use super::validate::{enum_or, err, timeout, EnumEntry};
use super::validate_route::{path_text, regex, route_timeout, Clusters};
use super::ConfigError;

pub fn forward(
    a: raw::RouteAction,
    path: &str,
    clusters: &Clusters,
) -> Result<ForwardAction, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let lookup = |name: &str, at: String| {
        clusters
            .get(name)
            .copied()
            .ok_or_else(|| err(at, format!("unknown cluster \"{name}\"")))
    };
    let cluster = match (a.cluster, a.weighted_clusters) {
        (Some(c), None) => ClusterSpec::Single(lookup(&c, p("cluster"))?),
        (None, Some(w)) => weighted(w, &p("weighted_clusters"), &lookup)?,
        (None, None) => return Err(err(path, "one of cluster, weighted_clusters is required")),
        (Some(_), Some(_)) => {
            return Err(err(
                path,
                "only one of cluster, weighted_clusters may be set",
            ))
        }
    };
    if a.prefix_rewrite.is_some() && a.regex_rewrite.is_some() {
        return Err(err(
            path,
            "only one of prefix_rewrite, regex_rewrite may be set",
        ));
    }
    let prefix_rewrite = match a.prefix_rewrite {
        Some(s) => Some(path_text(s, &p("prefix_rewrite"))?),
        None => None,
    };
    let regex_rewrite = match a.regex_rewrite {
        Some(r) => Some(regex_rewrite(r, &p("regex_rewrite"))?),
        None => None,
    };
    let host_rewrite = match (a.host_rewrite_literal, a.auto_host_rewrite) {
        (Some(_), Some(true)) => {
            return Err(err(
                path,
                "only one of host_rewrite_literal, auto_host_rewrite may be set",
            ))
        }
        (Some(h), _) if h.is_empty() || h.bytes().any(|b| b.is_ascii_control() || b == b' ') => {
            return Err(err(
                p("host_rewrite_literal"),
                format!("invalid host {h:?}"),
            ))
        }
        (Some(h), _) => Some(HostRewrite::Literal(h)),
        (None, Some(true)) => Some(HostRewrite::Auto),
        (None, _) => None,
    };
    let retry_policy = match a.retry_policy {
        Some(r) => Some(retry_policy(r, &p("retry_policy"))?),
        None => None,
    };
    let mut mirrors = Vec::new();
    for (i, m) in a.request_mirror_policies.into_iter().enumerate() {
        let at = format!("{}[{i}]", p("request_mirror_policies"));
        mirrors.push(mirror_policy(m, &at, &lookup)?);
    }
    let mut upgrades = Vec::new();
    for (i, u) in a.upgrade_configs.into_iter().enumerate() {
        upgrades.push(route_upgrade(u, &format!("{}[{i}]", p("upgrade_configs")))?);
    }
    Ok(ForwardAction {
        upgrades,
        cluster,
        prefix_rewrite,
        timeout: route_timeout(a.timeout),
        regex_rewrite,
        host_rewrite,
        idle_timeout: a.idle_timeout.map(|d| timeout(Some(d), None)),
        retry_policy,
        cors: a
            .cors
            .map(|c| super::validate_filters::cors_policy(c, &p("cors")).map(Box::new))
            .transpose()?,
        mirrors,
        body_limit: None,
        attempt_count: AttemptCount::default(),
    })
}

/// One `request_mirror_policies[]` entry. `trace_sampled: false` is refused: a shadow carries
/// the request's own trace context (baton makes no child span for it), so its sampling
/// cannot differ from the request's.
fn mirror_policy(
    m: raw::RequestMirrorPolicy,
    path: &str,
    lookup: &dyn Fn(&str, String) -> Result<usize, ConfigError>,
) -> Result<MirrorPolicy, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let target = match (m.cluster, m.cluster_header) {
        (Some(c), None) => MirrorTarget::Cluster(lookup(&c, p("cluster"))?),
        (None, Some(h)) => MirrorTarget::Header(super::validate_route::header_name(
            &h,
            &p("cluster_header"),
            false,
        )?),
        (None, None) => return Err(err(path, "one of cluster, cluster_header is required")),
        (Some(_), Some(_)) => {
            return Err(err(path, "only one of cluster, cluster_header may be set"))
        }
    };
    if m.trace_sampled == Some(false) {
        return Err(err(
            p("trace_sampled"),
            "false is not supported: a shadow carries the request's own trace context",
        ));
    }
    let fraction = m
        .runtime_fraction
        .map(|f| super::validate_filters::fraction(f, &p("runtime_fraction")))
        .transpose()?;
    Ok(MirrorPolicy {
        target,
        fraction,
        host_suffix: !m.disable_shadow_host_suffix_append.unwrap_or(false),
    })
}

/// One route `upgrade_configs[]` entry. `connect_config` (terminate CONNECT) is only meaningful
/// for CONNECT; PROXY protocol and POST-as-CONNECT are not implemented.
fn route_upgrade(u: raw::RouteUpgradeConfig, path: &str) -> Result<RouteUpgrade, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let upgrade_type = upgrade_type(&u.upgrade_type, &p("upgrade_type"))?;
    let terminate_connect = match u.connect_config {
        None => false,
        Some(_) if upgrade_type != "connect" => {
            return Err(err(
                p("connect_config"),
                "only valid with upgrade_type CONNECT",
            ))
        }
        Some(c) => {
            if c.proxy_protocol_config.is_some() {
                return Err(err(
                    join_key(&p("connect_config"), "proxy_protocol_config"),
                    "PROXY protocol is not implemented",
                ));
            }
            if c.allow_post == Some(true) {
                return Err(err(
                    join_key(&p("connect_config"), "allow_post"),
                    "POST tunnels are not implemented",
                ));
            }
            true
        }
    };
    Ok(RouteUpgrade {
        upgrade_type,
        enabled: u.enabled.unwrap_or(true),
        terminate_connect,
    })
}

/// An upgrade type, lower-cased (matched case-insensitively, as Envoy does).
pub fn upgrade_type(t: &str, path: &str) -> Result<String, ConfigError> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(path, format!("invalid upgrade type {t:?}")));
    }
    Ok(t.to_ascii_lowercase())
}

fn weighted(
    w: raw::WeightedClusters,
    path: &str,
    lookup: &dyn Fn(&str, String) -> Result<usize, ConfigError>,
) -> Result<ClusterSpec, ConfigError> {
    let (out, sum) = weighted_list(&w.clusters, path, |c, cp| {
        Ok((
            lookup(&c.name, format!("{cp}.name"))?,
            c.weight.unwrap_or(0),
        ))
    })?;
    if sum == 0 {
        return Err(err(path, "the weights must add up to more than 0"));
    }
    // Deprecated in Envoy but still honoured: when given, it must equal the sum.
    if let Some(total) = w.total_weight {
        if u64::from(total) != sum {
            return Err(err(
                join_key(path, "total_weight"),
                format!("{total} does not equal the sum of the weights ({sum})"),
            ));
        }
    }
    Ok(ClusterSpec::Weighted(out))
}

/// A `weighted_clusters` list as a route and the TCP proxy read it: at least one entry, each
/// made a (cluster, weight) by `entry` (given the entry's path), the weights' sum within
/// 2^32-1; returns the list and the sum.
pub(super) fn weighted_list<T>(
    clusters: &[T],
    path: &str,
    mut entry: impl FnMut(&T, &str) -> Result<(usize, u32), ConfigError>,
) -> Result<(Vec<(usize, u32)>, u64), ConfigError> {
    if clusters.is_empty() {
        return Err(err(
            join_key(path, "clusters"),
            "at least one cluster is required",
        ));
    }
    let mut out = Vec::new();
    let mut sum: u64 = 0;
    for (i, c) in clusters.iter().enumerate() {
        let (idx, weight) = entry(c, &format!("{path}.clusters[{i}]"))?;
        sum += u64::from(weight);
        out.push((idx, weight));
    }
    if sum > u64::from(u32::MAX) {
        return Err(err(
            path,
            format!("the weights add up to {sum}, more than 2^32-1"),
        ));
    }
    Ok((out, sum))
}

/// Converts an RE2 substitution (`\1`, literal `$`) into the regex crate's syntax (`${1}`, `$$`).
fn substitution(s: &str, groups: usize, path: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let n = d as usize - '0' as usize;
                    if n >= groups {
                        return Err(err(
                            path,
                            format!("\\{n} refers to a capture group the pattern does not have"),
                        ));
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('\\') => out.push('\\'),
                _ => return Err(err(path, "a backslash must be followed by a digit or '\\'")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn regex_rewrite(r: raw::RegexRewrite, path: &str) -> Result<RegexRewrite, ConfigError> {
    let pattern = regex(&r.pattern, &join_key(path, "pattern"))?;
    let groups = pattern.unanchored().captures_len();
    let substitution = substitution(&r.substitution, groups, &join_key(path, "substitution"))?;
    Ok(RegexRewrite {
        pattern,
        substitution,
    })
}

/// `retry_on` conditions: name → setter (`None`: a real Envoy condition baton does not retry on).
type RetrySetter = Option<fn(&mut RetryOn)>;
const RETRY_ON: &[(&str, RetrySetter)] = &[
    ("5xx", Some(|r| r.five_xx = true)),
    ("gateway-error", Some(|r| r.gateway_error = true)),
    ("reset", Some(|r| r.reset = true)),
    ("connect-failure", Some(|r| r.connect_failure = true)),
    ("retriable-4xx", Some(|r| r.retriable_4xx = true)),
    (
        "retriable-status-codes",
        Some(|r| r.retriable_status_codes = true),
    ),
    ("refused-stream", None),
    ("envoy-ratelimited", None),
    ("retriable-headers", None),
    ("reset-before-request", None),
    ("http3-post-connect-failure", None),
];

/// Adds Envoy's `retry_on` condition `cond` to `on`. `None`: no such condition; `Some(false)`:
/// a real Envoy condition baton does not retry on. Shared by the route config and the
/// `x-envoy-retry-on` request header.
pub fn add_retry_on(on: &mut RetryOn, cond: &str) -> Option<bool> {
    match RETRY_ON.iter().find(|(n, _)| *n == cond)? {
        (_, Some(set)) => {
            set(on);
            Some(true)
        }
        (_, None) => Some(false),
    }
}

pub fn retry_policy(r: raw::RetryPolicy, path: &str) -> Result<RetryPolicy, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let mut retry_on = RetryOn::default();
    for cond in r.retry_on.as_deref().unwrap_or("").split(',') {
        let cond = cond.trim();
        if cond.is_empty() {
            continue;
        }
        match add_retry_on(&mut retry_on, cond) {
            Some(true) => {}
            Some(false) => {
                return Err(err(
                    p("retry_on"),
                    format!("retry condition \"{cond}\" is not supported by baton"),
                ))
            }
            None => {
                return Err(err(
                    p("retry_on"),
                    format!("unknown retry condition \"{cond}\""),
                ))
            }
        }
    }
    let mut codes = Vec::new();
    for (i, c) in r.retriable_status_codes.iter().enumerate() {
        if !(100..600).contains(c) {
            return Err(err(
                format!("{}[{i}]", p("retriable_status_codes")),
                format!("{c} out of range (100..=599)"),
            ));
        }
        codes.push(*c as u16);
    }
    let (back_off_base, back_off_max) = match r.retry_back_off {
        None => (Duration::from_millis(25), Duration::from_millis(250)),
        Some(b) => {
            let bpath = p("retry_back_off");
            let base = b.base_interval.0;
            if base.is_zero() {
                return Err(err(
                    join_key(&bpath, "base_interval"),
                    "must be greater than 0s",
                ));
            }
            let max = b.max_interval.map_or(base * 10, |d| d.0);
            if max < base {
                return Err(err(
                    join_key(&bpath, "max_interval"),
                    "must not be less than base_interval",
                ));
            }
            (base, max)
        }
    };
    Ok(RetryPolicy {
        retry_on,
        num_retries: r.num_retries.unwrap_or(1),
        per_try_timeout: timeout(r.per_try_timeout, None),
        retriable_status_codes: codes,
        back_off_base,
        back_off_max,
    })
}

const REDIRECT_CODES: &[EnumEntry<u16>] = &[
    ("MOVED_PERMANENTLY", 0, Some(301)),
    ("FOUND", 1, Some(302)),
    ("SEE_OTHER", 2, Some(303)),
    ("TEMPORARY_REDIRECT", 3, Some(307)),
    ("PERMANENT_REDIRECT", 4, Some(308)),
];

pub fn redirect(r: raw::RedirectAction, path: &str) -> Result<RedirectAction, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let scheme = match (r.https_redirect, r.scheme_redirect) {
        (Some(true), Some(_)) => {
            return Err(err(
                path,
                "only one of https_redirect, scheme_redirect may be set",
            ))
        }
        (Some(true), None) => Some("https".to_string()),
        (_, Some(s)) => {
            let s = s.to_ascii_lowercase();
            let valid = s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !valid {
                return Err(err(p("scheme_redirect"), format!("invalid scheme {s:?}")));
            }
            Some(s)
        }
        (_, None) => None,
    };
    let host = match r.host_redirect {
        Some(h)
            if h.is_empty()
                || h.bytes()
                    .any(|b| b.is_ascii_control() || b"/ ?#".contains(&b)) =>
        {
            return Err(err(p("host_redirect"), format!("invalid host {h:?}")))
        }
        h => h,
    };
    let port = match r.port_redirect {
        None | Some(0) => None,
        Some(n) if (1..=65535).contains(&n) => Some(n as u16),
        Some(n) => return Err(err(p("port_redirect"), format!("{n} out of range"))),
    };
    let path_redirect = match (r.path_redirect, r.prefix_rewrite, r.regex_rewrite) {
        (None, None, None) => PathRedirect::Keep,
        (Some(s), None, None) => PathRedirect::Path(path_text(s, &p("path_redirect"))?),
        (None, Some(s), None) => PathRedirect::Prefix(path_text(s, &p("prefix_rewrite"))?),
        (None, None, Some(rr)) => PathRedirect::Regex(regex_rewrite(rr, &p("regex_rewrite"))?),
        _ => {
            return Err(err(
                path,
                "only one of path_redirect, prefix_rewrite, regex_rewrite may be set",
            ))
        }
    };
    Ok(RedirectAction {
        scheme,
        host,
        port,
        path: path_redirect,
        response_code: enum_or(&r.response_code, &p("response_code"), REDIRECT_CODES, 301)?,
        strip_query: r.strip_query.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::substitution;

    #[test]
    fn re2_substitution_becomes_regex_crate_syntax() {
        assert_eq!(substitution(r"/v2/\1/x", 2, "p").unwrap(), "/v2/${1}/x");
        assert_eq!(substitution(r"a$b\\c", 1, "p").unwrap(), r"a$$b\c");
        let e = substitution(r"\3", 2, "p.substitution").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.substitution: \\3 refers to a capture group the pattern does not have"
        );
        assert!(substitution(r"\x", 1, "p").is_err());
    }
}
