//! The HTTP filters before the router, run on a request head in config order (Envoy's
//! decoder chain): the health check, CORS and CSRF filters. A filter that answers stops the
//! chain; the response headers the filters add (their encoder side) go on whatever answers
//! — the router's upstream response, a later filter's reply, or the filter's own.

use super::codec::RequestHead;
use crate::access_log::Flags;
use crate::config::{
    AppendAction, CorsPolicy, CsrfPolicy, FilterPolicy, Fraction, HealthCheckFilter, HttpFilter,
    HttpFilterKind, PerFilterConfig, StringMatch,
};
use crate::context::Ctx;
use crate::route::edits::Op;
use crate::route::matcher::{header_matches, string_matches};
use crate::stats::FilterCounts;
use crate::util::Rng;

/// The route the request matched, as the filters see it.
pub(super) struct RouteView<'a> {
    /// The route's, then its virtual host's `typed_per_filter_config`.
    pub levels: [&'a [PerFilterConfig]; 2],
    /// The route forwards (Envoy's route entry; a redirect or direct response has none).
    pub forwards: bool,
    /// The route's, then its virtual host's legacy `cors` policy.
    pub legacy_cors: [Option<&'a CorsPolicy>; 2],
}

/// A filter's own answer.
pub(super) struct Answer {
    pub status: u16,
    pub body: &'static str,
    /// Headers of this answer alone (the chain's `edits` go on it too).
    pub edits: Vec<Op>,
    /// The %RESPONSE_FLAGS% bit, or 0.
    pub flag: u16,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
}

impl Answer {
    fn new(status: u16, body: &'static str, details: &'static str) -> Answer {
        Answer {
            status,
            body,
            edits: Vec::new(),
            flag: 0,
            details,
        }
    }
}

/// What the chain made of a request.
#[derive(Default)]
pub(super) struct Outcome {
    /// A filter's own answer (the router does not run).
    pub answer: Option<Answer>,
    /// Response headers the filters set, applied after the route's.
    pub edits: Vec<Op>,
    pub counts: FilterCounts,
}

/// Runs `filters` on `req`. `rng` draws the filters' runtime fractions.
pub(super) fn run(
    filters: &[HttpFilter],
    req: &RequestHead<'_>,
    route: Option<&RouteView<'_>>,
    service_cluster: &str,
    ctx: &Ctx,
    rng: &mut Rng,
) -> Outcome {
    let mut out = Outcome::default();
    for f in filters {
        // The most specific per-route config of this filter decides whether it runs.
        let own = route.and_then(|r| {
            r.levels
                .iter()
                .find_map(|l| l.iter().find(|c| c.name == f.name))
        });
        if own.map_or(f.disabled, |c| c.disabled) {
            continue;
        }
        let answer = match &f.kind {
            HttpFilterKind::HealthCheck(hc) => {
                health_check(hc, req, service_cluster, ctx, &mut out.edits).map(|(status, d)| {
                    Answer {
                        flag: if status == 200 { 0 } else { Flags::LH },
                        ..Answer::new(status, "", d)
                    }
                })
            }
            HttpFilterKind::Cors => match route {
                Some(r) if r.forwards => cors(&f.name, r, req, rng, &mut out),
                _ => None,
            },
            HttpFilterKind::Csrf(own_policy) => {
                let per_route = own.and_then(|c| match &c.policy {
                    Some(FilterPolicy::Csrf(p)) => Some(p),
                    _ => None,
                });
                csrf(per_route.unwrap_or(own_policy), req, rng, &mut out.counts)
            }
        };
        if answer.is_some() {
            out.answer = answer;
            break;
        }
    }
    out
}

/// Envoy's health check filter: a request whose headers all match is a health check. It is
/// answered here (200, or 503 with LH while `/healthcheck/fail` is in force or a cluster is
/// short of healthy hosts) unless in pass-through mode — the status and Envoy's details are
/// returned — and its answer names the service cluster. While failed, every other answer
/// carries `x-envoy-immediate-health-check-fail` so that a downstream Envoy drops this host
/// at once.
fn health_check(
    hc: &HealthCheckFilter,
    req: &RequestHead<'_>,
    service_cluster: &str,
    ctx: &Ctx,
    edits: &mut Vec<Op>,
) -> Option<(u16, &'static str)> {
    let failed = ctx.stats.healthcheck_failed();
    let set = AppendAction::OverwriteIfExistsOrAdd;
    if !hc.headers.iter().all(|m| header_matches(m, req)) {
        if failed {
            edits.push(Op::fixed(
                "x-envoy-immediate-health-check-fail",
                "true",
                set,
            ));
        }
        return None;
    }
    edits.push(Op::fixed(
        "x-envoy-upstream-healthchecked-cluster",
        service_cluster,
        set,
    ));
    if failed {
        return Some((503, "health_check_failed"));
    }
    if hc.pass_through_mode {
        return None;
    }
    // Envoy's rule (the minimum taken as a whole percent): a cluster that does not exist is
    // short; one without hosts is short unless its minimum is 0; else its healthy hosts must
    // reach the minimum share.
    for (name, min) in &hc.cluster_min_healthy_percentages {
        let min = min.trunc();
        let Some(c) = ctx.clusters.iter().find(|c| c.cfg.name == *name) else {
            return Some((503, "health_check_no_cluster_found"));
        };
        if c.hosts.is_empty() {
            if min == 0.0 {
                continue;
            }
            return Some((503, "health_check_failed_cluster_empty"));
        }
        if (c.healthy_count() as f64) < c.hosts.len() as f64 * min / 100.0 {
            return Some((503, "health_check_failed_cluster_unhealthy"));
        }
    }
    Some((200, "health_check_ok"))
}

/// A runtime fraction drawn for one request (Envoy: a random number modulo the denominator
/// below the numerator).
fn sample(f: Fraction, rng: &mut Rng) -> bool {
    f.numerator >= f.denominator || rng.below(u64::from(f.denominator)) < u64::from(f.numerator)
}

/// The first value of request header `name` (lower case), when not empty.
fn header<'a>(req: &RequestHead<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .filter(|v| !v.is_empty())
}

const SET: AppendAction = AppendAction::OverwriteIfExistsOrAdd;

/// Envoy's CORS filter. Its policies are the route's and the virtual host's (each field from
/// the most specific policy that sets it; `filter_enabled` and `shadow_enabled` from the most
/// specific policy only). A preflight (OPTIONS with `Origin` and
/// `Access-Control-Request-Method`) is answered here, 200, unless its origin is not allowed
/// and `forward_not_matching_preflights` (default true) sends it on; an allowed origin's
/// other requests get `access-control-allow-origin` (and credentials, exposed headers) on
/// their response.
fn cors(
    name: &str,
    route: &RouteView<'_>,
    req: &RequestHead<'_>,
    rng: &mut Rng,
    out: &mut Outcome,
) -> Option<Answer> {
    let mut pols: [Option<&CorsPolicy>; 2] = [None, None];
    for (slot, level) in pols.iter_mut().zip(route.levels) {
        *slot = level.iter().find_map(|c| match &c.policy {
            Some(FilterPolicy::Cors(p)) if c.name == name => Some(p),
            _ => None,
        });
    }
    // Envoy reads the legacy `cors` fields only when no per-filter policy applies.
    if pols.iter().all(Option::is_none) {
        pols = route.legacy_cors;
    }
    let first = pols.iter().flatten().next()?;
    let enabled = first.filter_enabled.is_none_or(|f| sample(f, rng));
    let shadow = first.shadow_enabled.is_some_and(|f| sample(f, rng));
    if !enabled && !shadow {
        return None;
    }
    let origin = header(req, "origin")?;
    // The most specific policy that sets a field gives it.
    let field = |get: fn(&CorsPolicy) -> &str| -> &str {
        pols.iter()
            .flatten()
            .map(|p| get(p))
            .find(|v| !v.is_empty())
            .unwrap_or("")
    };
    let flag = |get: fn(&CorsPolicy) -> Option<bool>| pols.iter().flatten().find_map(|p| get(p));
    let allow_origin: &[StringMatch] = pols
        .iter()
        .flatten()
        .map(|p| p.allow_origin.as_slice())
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let allowed = allow_origin
        .iter()
        .any(|m| string_matches(m, "*") || string_matches(m, origin));
    out.counts.cors[usize::from(!allowed)] += 1;
    if !enabled {
        return None;
    }
    let credentials = flag(|p| p.allow_credentials).unwrap_or(false);
    // What the encoder side sets on the response, the filter's own preflight answer included.
    if allowed {
        out.edits
            .push(Op::fixed("access-control-allow-origin", origin, SET));
        if credentials {
            out.edits
                .push(Op::fixed("access-control-allow-credentials", "true", SET));
        }
        let expose = field(|p| &p.expose_headers);
        if !expose.is_empty() {
            out.edits
                .push(Op::fixed("access-control-expose-headers", expose, SET));
        }
    }
    let request_method =
        header(req, "access-control-request-method").filter(|_| req.method == "OPTIONS")?;
    if !allowed && flag(|p| p.forward_not_matching_preflights).unwrap_or(true) {
        return None;
    }
    let mut edits = Vec::new();
    if !allowed && credentials {
        edits.push(Op::fixed("access-control-allow-credentials", "true", SET));
    }
    let methods = field(|p| &p.allow_methods);
    if !methods.is_empty() {
        let v = if methods == "*" {
            request_method
        } else {
            methods
        };
        edits.push(Op::fixed("access-control-allow-methods", v, SET));
    }
    let headers = field(|p| &p.allow_headers);
    if !headers.is_empty() {
        let v = if headers == "*" {
            header(req, "access-control-request-headers").unwrap_or("")
        } else {
            headers
        };
        edits.push(Op::fixed("access-control-allow-headers", v, SET));
    }
    let max_age = field(|p| &p.max_age);
    if !max_age.is_empty() {
        edits.push(Op::fixed("access-control-max-age", max_age, SET));
    }
    if flag(|p| p.allow_private_network_access).unwrap_or(false)
        && header(req, "access-control-request-private-network") == Some("true")
    {
        edits.push(Op::fixed(
            "access-control-allow-private-network",
            "true",
            SET,
        ));
    }
    Some(Answer {
        edits,
        ..Answer::new(200, "", "cors_response")
    })
}

/// Envoy's CSRF filter: a POST, PUT, DELETE or PATCH whose source origin (`Origin`, else
/// `Referer`, as host and port) is neither the request's `Host` nor one of
/// `additional_origins` is refused: 403 `Invalid origin` (in shadow mode only counted).
fn csrf(
    p: &CsrfPolicy,
    req: &RequestHead<'_>,
    rng: &mut Rng,
    counts: &mut FilterCounts,
) -> Option<Answer> {
    let enabled = sample(p.filter_enabled, rng);
    let shadow = p.shadow_enabled.is_some_and(|f| sample(f, rng));
    if !enabled && !shadow {
        return None;
    }
    if !matches!(req.method, "POST" | "PUT" | "DELETE" | "PATCH") {
        return None;
    }
    let source = header(req, "origin")
        .map(host_and_port)
        .filter(|s| !s.is_empty())
        .or_else(|| header(req, "referer").map(host_and_port))
        .unwrap_or("");
    let mut valid = true;
    if source.is_empty() {
        valid = false;
        counts.csrf[0] += 1;
    }
    let target = req.host.map(host_and_port).unwrap_or("");
    let same = !source.is_empty() && source == target;
    if !same
        && !p
            .additional_origins
            .iter()
            .any(|m| string_matches(m, source))
    {
        valid = false;
        counts.csrf[1] += 1;
    }
    if valid {
        counts.csrf[2] += 1;
        return None;
    }
    if !enabled {
        return None;
    }
    Some(Answer::new(403, "Invalid origin", "csrf_origin_mismatch"))
}

/// The authority (host and port) of an absolute URL such as `https://a.example:8443/x`;
/// a value that is not one is taken whole, as Envoy does.
fn host_and_port(v: &str) -> &str {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if !scheme_ok || host.is_empty() {
        return v;
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_takes_the_authority_of_an_absolute_url() {
        assert_eq!(
            host_and_port("https://a.example:8443/x?y"),
            "a.example:8443"
        );
        assert_eq!(host_and_port("http://u:p@a.example/"), "a.example");
        assert_eq!(host_and_port("http://a.example"), "a.example");
        assert_eq!(host_and_port("a.example"), "a.example");
        assert_eq!(host_and_port("null"), "null");
        assert_eq!(host_and_port("http:///x"), "http:///x");
    }

    #[test]
    fn fractions_sample_their_share() {
        let mut rng = Rng::with_seed(7);
        let never = Fraction {
            numerator: 0,
            denominator: 100,
        };
        let always = Fraction {
            numerator: 100,
            denominator: 100,
        };
        let half = Fraction {
            numerator: 5000,
            denominator: 10_000,
        };
        assert!((0..100).all(|_| !sample(never, &mut rng)));
        assert!((0..100).all(|_| sample(always, &mut rng)));
        let n = (0..1000).filter(|_| sample(half, &mut rng)).count();
        assert!((350..650).contains(&n), "{n}");
    }
}
