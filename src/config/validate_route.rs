//! Route configuration: virtual hosts, route matching, route actions and header mutations,
//! checked and defaulted as Envoy does at load. Cluster names are resolved to indices here so
//! the data path never looks a cluster up by name.

use std::collections::HashMap;
use std::time::Duration;

use super::de::join_key;
use super::model::*;
use super::raw;
use super::validate::{data_source, enum_or, err, keep, timeout, Each, EnumEntry};
use super::{format, validate_action, validate_filters, ConfigError};

pub type Clusters = HashMap<String, usize>;

pub fn route_config(
    rc: raw::RouteConfiguration,
    path: &str,
    clusters: &Clusters,
) -> Result<RouteConfig, ConfigError> {
    let mut first = None;
    let headers = keep(mutations(&rc, path), &mut first);
    let mut virtual_hosts: Each<VirtualHost> = Each::new();
    // domain → virtual host name, for Envoy's "domains are unique per route config" rule.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, vh) in rc.virtual_hosts.into_iter().enumerate() {
        let vpath = format!("{path}.virtual_hosts[{i}]");
        let vh = virtual_host(vh, &vpath, clusters).and_then(|vh| {
            if virtual_hosts.items().iter().any(|o| o.name == vh.name) {
                return Err(err(
                    format!("{vpath}.name"),
                    format!("duplicate virtual host name \"{}\"", vh.name),
                ));
            }
            for (j, d) in vh.domains.iter().enumerate() {
                if let Some(other) = seen.insert(d.clone(), vh.name.clone()) {
                    return Err(err(
                        format!("{vpath}.domains[{j}]"),
                        format!("duplicate domain \"{d}\" (also in virtual host \"{other}\")"),
                    ));
                }
            }
            Ok(vh)
        });
        virtual_hosts.add(vh);
    }
    let virtual_hosts = keep(virtual_hosts.finish(), &mut first);
    let (Some(headers), Some(virtual_hosts), None) = (headers, virtual_hosts, &first) else {
        return Err(first.unwrap_or_else(|| err(path, "invalid")));
    };
    Ok(RouteConfig {
        name: rc.name,
        virtual_hosts,
        headers,
        most_specific_header_mutations_wins: rc
            .most_specific_header_mutations_wins
            .unwrap_or(false),
    })
}

const REQUIRE_TLS: &[EnumEntry<RequireTls>] = &[
    ("NONE", 0, Some(RequireTls::None)),
    ("EXTERNAL_ONLY", 1, Some(RequireTls::ExternalOnly)),
    ("ALL", 2, Some(RequireTls::All)),
];

fn virtual_host(
    vh: raw::VirtualHost,
    path: &str,
    clusters: &Clusters,
) -> Result<VirtualHost, ConfigError> {
    if vh.name.is_empty() {
        return Err(err(join_key(path, "name"), "must not be empty"));
    }
    let headers = mutations(&vh, path)?;
    // Envoy requires `domains`; the seed's configs (which operators copy) omit it, so absence
    // means "*" here. An explicit empty list is still an error.
    let given = vh.domains.unwrap_or_else(|| vec!["*".to_string()]);
    if given.is_empty() {
        return Err(err(
            join_key(path, "domains"),
            "at least one domain is required (\"*\" matches any host)",
        ));
    }
    let mut domains = Vec::new();
    for (i, d) in given.iter().enumerate() {
        domains.push(domain(d).map_err(|m| err(format!("{path}.domains[{i}]"), m))?);
    }
    let retry_policy = match vh.retry_policy {
        Some(r) => Some(validate_action::retry_policy(
            r,
            &join_key(path, "retry_policy"),
        )?),
        None => None,
    };
    let mut routes = Each::new();
    for (i, r) in vh.routes.into_iter().enumerate() {
        routes.add(route(r, &format!("{path}.routes[{i}]"), clusters));
    }
    let mut routes = routes.finish()?;
    // Envoy: a route's own retry policy and buffer limit win; the virtual host's serve the
    // others. The attempt count headers are the virtual host's alone.
    let attempt_count = AttemptCount {
        request: vh.include_request_attempt_count.unwrap_or(false),
        response: vh.include_attempt_count_in_response.unwrap_or(false),
    };
    for r in &mut routes {
        if let RouteAction::Forward(f) = &mut r.action {
            if f.retry_policy.is_none() {
                f.retry_policy = retry_policy.clone();
            }
            f.body_limit = f.body_limit.or(vh.per_request_buffer_limit_bytes);
            f.attempt_count = attempt_count;
        }
    }
    let filter_configs = validate_filters::per_filter_configs(
        vh.typed_per_filter_config,
        &join_key(path, "typed_per_filter_config"),
    )?;
    let cors = vh
        .cors
        .map(|c| validate_filters::cors_policy(c, &join_key(path, "cors")))
        .transpose()?;
    Ok(VirtualHost {
        name: vh.name,
        domains,
        routes,
        headers,
        retry_policy,
        require_tls: enum_or(
            &vh.require_tls,
            &join_key(path, "require_tls"),
            REQUIRE_TLS,
            RequireTls::None,
        )?,
        filter_configs,
        cors,
    })
}

/// Lower-cases a domain and checks Envoy's wildcard forms: `*`, `*suffix`, `prefix*`.
fn domain(d: &str) -> Result<String, String> {
    let d = d.to_ascii_lowercase();
    if d.is_empty() {
        return Err("must not be empty".into());
    }
    if d.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
    {
        return Err(format!("invalid domain \"{d}\""));
    }
    let stars = d.matches('*').count();
    let ok = stars == 0 || d == "*" || (stars == 1 && (d.starts_with('*') || d.ends_with('*')));
    if !ok {
        return Err(format!(
            "invalid wildcard in \"{d}\": only \"*\", \"*suffix\" or \"prefix*\" are allowed"
        ));
    }
    Ok(d)
}

fn route(r: raw::Route, path: &str, clusters: &Clusters) -> Result<Route, ConfigError> {
    let headers = mutations(&r, path)?;
    let mpath = join_key(path, "match");
    let matcher = r
        .matcher
        .ok_or_else(|| err(&mpath, "required field is missing"))?;
    let matcher = route_match(matcher, &mpath)?;
    let mut action = match (r.route, r.redirect, r.direct_response) {
        (Some(a), None, None) => RouteAction::Forward(validate_action::forward(
            a,
            &join_key(path, "route"),
            clusters,
        )?),
        (None, Some(rd), None) => {
            RouteAction::Redirect(validate_action::redirect(rd, &join_key(path, "redirect"))?)
        }
        (None, None, Some(dr)) => direct_response(dr, &join_key(path, "direct_response"))?,
        (None, None, None) => {
            return Err(err(
                path,
                "one of route, redirect, direct_response is required",
            ))
        }
        _ => {
            return Err(err(
                path,
                "only one of route, redirect, direct_response may be set",
            ))
        }
    };
    let filter_configs = validate_filters::per_filter_configs(
        r.typed_per_filter_config,
        &join_key(path, "typed_per_filter_config"),
    )?;
    if let RouteAction::Forward(f) = &mut action {
        f.body_limit = r.per_request_buffer_limit_bytes;
    }
    let decorator = r
        .decorator
        .map(|d| super::validate_tracing::decorator(d, &join_key(path, "decorator")))
        .transpose()?;
    Ok(Route {
        name: r.name,
        matcher,
        action,
        headers,
        filter_configs,
        decorator,
    })
}

/// Envoy's default `max_direct_response_body_size_bytes`.
const MAX_DIRECT_BODY: usize = 4096;

fn direct_response(d: raw::DirectResponse, path: &str) -> Result<RouteAction, ConfigError> {
    if !(200..600).contains(&d.status) {
        return Err(err(
            join_key(path, "status"),
            format!("{} out of range (200..=599)", d.status),
        ));
    }
    let body = match d.body {
        None => None,
        Some(ds) => {
            let bpath = join_key(path, "body");
            let b = data_source(&ds, &bpath)?;
            if b.len() > MAX_DIRECT_BODY {
                return Err(err(
                    bpath,
                    format!(
                        "{} bytes is larger than the {MAX_DIRECT_BODY}-byte limit",
                        b.len()
                    ),
                ));
            }
            Some(b)
        }
    };
    Ok(RouteAction::DirectResponse {
        status: d.status as u16,
        body,
    })
}

fn route_match(m: raw::RouteMatch, path: &str) -> Result<RouteMatch, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let pm = match (m.prefix, m.path, m.safe_regex, m.connect_matcher) {
        (Some(s), None, None, None) => PathMatch::Prefix(path_text(s, &p("prefix"))?),
        (None, Some(s), None, None) => PathMatch::Path(path_text(s, &p("path"))?),
        (None, None, Some(r), None) => PathMatch::SafeRegex(regex(&r, &p("safe_regex"))?),
        (None, None, None, Some(_)) => PathMatch::Connect,
        (None, None, None, None) => {
            return Err(err(
                path,
                "one of prefix, path, safe_regex, connect_matcher is required",
            ))
        }
        _ => {
            return Err(err(
                path,
                "only one of prefix, path, safe_regex, connect_matcher may be set",
            ))
        }
    };
    let mut headers = Vec::new();
    for (i, h) in m.headers.into_iter().enumerate() {
        headers.push(header_matcher(h, &format!("{path}.headers[{i}]"))?);
    }
    let mut query_parameters = Vec::new();
    for (i, q) in m.query_parameters.into_iter().enumerate() {
        let qpath = format!("{path}.query_parameters[{i}]");
        if q.name.is_empty() {
            return Err(err(join_key(&qpath, "name"), "must not be empty"));
        }
        let rule = match (q.string_match, q.present_match) {
            (Some(s), None) => {
                QueryParameterRule::Value(string_match(s, &join_key(&qpath, "string_match"))?)
            }
            (None, Some(true)) | (None, None) => QueryParameterRule::Present,
            (None, Some(false)) => {
                return Err(err(
                    join_key(&qpath, "present_match"),
                    "false is not supported (omit the matcher instead)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    qpath,
                    "only one of string_match, present_match may be set",
                ))
            }
        };
        query_parameters.push(QueryParameterMatcher { name: q.name, rule });
    }
    Ok(RouteMatch {
        path: pm,
        case_sensitive: m.case_sensitive.unwrap_or(true),
        headers,
        query_parameters,
        grpc: m.grpc.is_some(),
    })
}

/// Paths and prefixes end up in request lines: no control characters or spaces.
pub fn path_text(s: String, path: &str) -> Result<String, ConfigError> {
    if s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(err(path, format!("invalid character in {s:?}")));
    }
    Ok(s)
}

thread_local! {
    /// The runtime's `re2.max_program_size.error_level` for the load in progress.
    static RE2_LIMIT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Sets the runtime's regex program-size limit for the load in progress; dropping it clears it.
pub struct Re2Limit;

impl Re2Limit {
    pub fn set(limit: Option<u32>) -> Re2Limit {
        RE2_LIMIT.with(|l| l.set(limit));
        Re2Limit
    }
}

impl Drop for Re2Limit {
    fn drop(&mut self) {
        RE2_LIMIT.with(|l| l.set(None));
    }
}

/// Compiles a `safe_regex`. Its program-size limit is `google_re2.max_program_size` when set,
/// else the runtime's `re2.max_program_size.error_level`, else none.
pub fn regex(r: &raw::RegexMatcher, path: &str) -> Result<Regex, ConfigError> {
    let own = r.google_re2.as_ref().and_then(|g| g.max_program_size);
    let limit = own.or_else(|| RE2_LIMIT.with(|l| l.get()));
    Regex::new(&r.regex, limit).map_err(|e| {
        let at = match (&e, own) {
            (RegexError::TooBig { .. }, Some(_)) => join_key(path, "google_re2.max_program_size"),
            _ => join_key(path, "regex"),
        };
        err(at, e.describe(&r.regex))
    })
}

pub(super) fn string_match(s: raw::StringMatcher, path: &str) -> Result<StringMatch, ConfigError> {
    let nonempty = |v: String, f: &str| {
        if v.is_empty() {
            Err(err(join_key(path, f), "must not be empty"))
        } else {
            Ok(v)
        }
    };
    let kind = match (s.exact, s.prefix, s.suffix, s.contains, s.safe_regex) {
        (Some(v), None, None, None, None) => StringMatchKind::Exact(v),
        (None, Some(v), None, None, None) => StringMatchKind::Prefix(nonempty(v, "prefix")?),
        (None, None, Some(v), None, None) => StringMatchKind::Suffix(nonempty(v, "suffix")?),
        (None, None, None, Some(v), None) => StringMatchKind::Contains(nonempty(v, "contains")?),
        (None, None, None, None, Some(r)) => {
            StringMatchKind::SafeRegex(regex(&r, &join_key(path, "safe_regex"))?)
        }
        (None, None, None, None, None) => {
            return Err(err(
                path,
                "one of exact, prefix, suffix, contains, safe_regex is required",
            ))
        }
        _ => {
            return Err(err(
                path,
                "only one of exact, prefix, suffix, contains, safe_regex may be set",
            ))
        }
    };
    Ok(StringMatch {
        kind,
        ignore_case: s.ignore_case.unwrap_or(false),
    })
}

pub(super) fn header_matcher(
    h: raw::HeaderMatcher,
    path: &str,
) -> Result<HeaderMatcher, ConfigError> {
    let p = |f: &str| join_key(path, f);
    let name = header_name(&h.name, &p("name"), true)?;
    let exact = |v: Option<String>| {
        v.map(|v| StringMatch {
            kind: StringMatchKind::Exact(v),
            ignore_case: false,
        })
    };
    let legacy = |v: Option<String>,
                  f: &str,
                  k: fn(String) -> StringMatchKind|
     -> Result<Option<StringMatch>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if v.is_empty() => Err(err(p(f), "must not be empty")),
            Some(v) => Ok(Some(StringMatch {
                kind: k(v),
                ignore_case: false,
            })),
        }
    };
    let mut rules: Vec<HeaderMatchRule> = Vec::new();
    if let Some(s) = h.string_match {
        rules.push(HeaderMatchRule::Value(string_match(s, &p("string_match"))?));
    }
    if let Some(b) = h.present_match {
        rules.push(HeaderMatchRule::Present(b));
    }
    let legacies = [
        exact(h.exact_match),
        legacy(h.prefix_match, "prefix_match", StringMatchKind::Prefix)?,
        legacy(h.suffix_match, "suffix_match", StringMatchKind::Suffix)?,
        legacy(
            h.contains_match,
            "contains_match",
            StringMatchKind::Contains,
        )?,
    ];
    rules.extend(legacies.into_iter().flatten().map(HeaderMatchRule::Value));
    if let Some(r) = h.safe_regex_match {
        rules.push(HeaderMatchRule::Value(StringMatch {
            kind: StringMatchKind::SafeRegex(regex(&r, &p("safe_regex_match"))?),
            ignore_case: false,
        }));
    }
    if let Some(r) = h.range_match {
        if r.start >= r.end {
            return Err(err(p("range_match"), "start must be less than end"));
        }
        rules.push(HeaderMatchRule::Range {
            start: r.start,
            end: r.end,
        });
    }
    let rule = match rules.len() {
        // Envoy: a matcher with only a name checks that the header is present.
        0 => HeaderMatchRule::Present(true),
        1 => rules.remove(0),
        _ => {
            return Err(err(
                path,
                "only one match rule may be set per header matcher",
            ))
        }
    };
    Ok(HeaderMatcher {
        name,
        rule,
        invert: h.invert_match.unwrap_or(false),
    })
}

/// Checks and lower-cases a header name. Pseudo-headers (`:method`) are fine for matching
/// but, like `host`, may not be added or removed (Envoy's rule).
pub fn header_name(n: &str, path: &str, matching: bool) -> Result<String, ConfigError> {
    if !matching && n.starts_with(':') {
        return Err(err(
            path,
            format!("pseudo-header \"{n}\" may not be modified"),
        ));
    }
    let body = if matching {
        n.strip_prefix(':').unwrap_or(n)
    } else {
        n
    };
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if body.is_empty() || !body.bytes().all(token) {
        return Err(err(path, format!("invalid header name \"{n}\"")));
    }
    let lower = n.to_ascii_lowercase();
    if !matching && lower == "host" {
        return Err(err(
            path,
            "header \"host\" may not be modified here (use host_rewrite_literal)",
        ));
    }
    if !matching && FRAMING.contains(&lower.as_str()) {
        return Err(err(
            path,
            format!("header \"{lower}\" frames the message and may not be modified"),
        ));
    }
    Ok(lower)
}

/// Hop-by-hop and framing headers: baton writes these itself, so an edit would corrupt framing.
const FRAMING: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

const APPEND_ACTIONS: &[EnumEntry<AppendAction>] = &[
    (
        "APPEND_IF_EXISTS_OR_ADD",
        0,
        Some(AppendAction::AppendIfExistsOrAdd),
    ),
    ("ADD_IF_ABSENT", 1, Some(AppendAction::AddIfAbsent)),
    (
        "OVERWRITE_IF_EXISTS_OR_ADD",
        2,
        Some(AppendAction::OverwriteIfExistsOrAdd),
    ),
    (
        "OVERWRITE_IF_EXISTS",
        3,
        Some(AppendAction::OverwriteIfExists),
    ),
];

/// A header value from the config: no byte that would end or break the header line.
pub(super) fn plain_header_value(value: &str, path: &str) -> Result<(), ConfigError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(err(path, "must not contain CR, LF or NUL"));
    }
    Ok(())
}

pub(super) fn header_value_option(
    h: &raw::HeaderValueOption,
    path: &str,
) -> Result<HeaderValueOption, ConfigError> {
    let name = header_name(&h.header.key, &format!("{path}.header.key"), false)?;
    let vpath = format!("{path}.header.value");
    let value = h.header.value.clone();
    plain_header_value(&value, &vpath)?;
    format::check(&value).map_err(|m| err(&vpath, m))?;
    super::template::Template::parse(&value).map_err(|m| err(&vpath, m))?;
    let append_action = match (h.append, &h.append_action) {
        (Some(_), Some(_)) => {
            return Err(err(
                path,
                "only one of append, append_action may be set (append is deprecated)",
            ))
        }
        (Some(true), None) => AppendAction::AppendIfExistsOrAdd,
        (Some(false), None) => AppendAction::OverwriteIfExistsOrAdd,
        (None, a) => enum_or(
            a,
            &format!("{path}.append_action"),
            APPEND_ACTIONS,
            AppendAction::AppendIfExistsOrAdd,
        )?,
    };
    Ok(HeaderValueOption {
        name,
        value,
        append_action,
        keep_empty_value: h.keep_empty_value.unwrap_or(false),
    })
}

/// The four header-edit lists of one level (route_config, virtual host or route).
pub(super) fn mutations(
    level: &impl raw::HeaderEdits,
    path: &str,
) -> Result<HeaderMutations, ConfigError> {
    let e = level.edits();
    let add = |list: &[raw::HeaderValueOption], field: &str| {
        list.iter()
            .enumerate()
            .map(|(i, h)| header_value_option(h, &format!("{}[{i}]", join_key(path, field))))
            .collect::<Result<Vec<_>, _>>()
    };
    let remove = |list: &[String], field: &str| {
        list.iter()
            .enumerate()
            .map(|(i, n)| header_name(n, &format!("{}[{i}]", join_key(path, field)), false))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(HeaderMutations {
        request_headers_to_add: add(e.request_add, "request_headers_to_add")?,
        request_headers_to_remove: remove(e.request_remove, "request_headers_to_remove")?,
        response_headers_to_add: add(e.response_add, "response_headers_to_add")?,
        response_headers_to_remove: remove(e.response_remove, "response_headers_to_remove")?,
    })
}

/// Default route timeout (Envoy's 15 s).
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Route `timeout`: absent → 15 s, `0s` → disabled.
pub fn route_timeout(d: Option<raw::Dur>) -> Option<Duration> {
    timeout(d, Some(DEFAULT_ROUTE_TIMEOUT))
}
