//! `envoy.filters.http.rbac`: the filter's `RBAC` and a route's `RBACPerRoute`, with their
//! policy sets (`envoy.config.rbac.v3.RBAC`) or matcher trees (`xds.type.matcher.v3.Matcher`).
//! Every permission, principal and input kind baton cannot evaluate is refused by path.

use serde_yaml::Value;

use super::de::{from_value, join_key};
use super::model::*;
use super::raw;
use super::validate::{cidr, enum_or, err, typed_payload, EnumEntry};
use super::validate_route::{header_matcher, string_match};
use super::ConfigError;

pub const RBAC_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub const RBAC_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";
const ACTION_TYPE: &str = "envoy.config.rbac.v3.Action";
const HEADER_INPUT_TYPE: &str = "envoy.type.matcher.v3.HttpRequestHeaderMatchInput";
const NETWORK_INPUTS: &str = "envoy.extensions.matching.common_inputs.network.v3.";

const ACTIONS: &[EnumEntry<RbacAction>] = &[
    ("ALLOW", 0, Some(RbacAction::Allow)),
    ("DENY", 1, Some(RbacAction::Deny)),
    ("LOG", 2, Some(RbacAction::Log)),
];

/// The filter's config (`per_route`: the `rbac` of an `RBACPerRoute`, whose stat prefixes
/// Envoy reads only to name dynamic metadata, which baton does not have).
pub fn rbac(r: raw::Rbac, path: &str, per_route: bool) -> Result<Rbac, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if r.track_per_rule_stats == Some(true) {
        return Err(err(
            p("track_per_rule_stats"),
            "not supported by baton (per-policy stats)",
        ));
    }
    let rules_stat_prefix = r.rules_stat_prefix.unwrap_or_default();
    let shadow_rules_stat_prefix = r.shadow_rules_stat_prefix.unwrap_or_default();
    if per_route {
        for (k, v) in [
            ("rules_stat_prefix", &rules_stat_prefix),
            ("shadow_rules_stat_prefix", &shadow_rules_stat_prefix),
        ] {
            if !v.is_empty() {
                return Err(err(
                    p(k),
                    "not supported by baton in a per-route config (Envoy uses it there only \
                     to name dynamic metadata; the filter's own prefix names the stats)",
                ));
            }
        }
    }
    Ok(Rbac {
        rules: engine(r.rules, r.matcher, path, ("rules", "matcher"))?,
        shadow_rules: engine(
            r.shadow_rules,
            r.shadow_matcher,
            path,
            ("shadow_rules", "shadow_matcher"),
        )?,
        rules_stat_prefix,
        shadow_rules_stat_prefix,
    })
}

/// An `RBACPerRoute` (its `rbac` absent: the filter lets every request through there).
pub fn rbac_per_route(v: &Value, path: &str) -> Result<Rbac, ConfigError> {
    let r: raw::RbacPerRoute = from_value(v, path)?;
    match r.rbac {
        None => Ok(Rbac::default()),
        Some(r) => rbac(r, &join_key(path, "rbac"), true),
    }
}

fn engine(
    rules: Option<raw::RbacRules>,
    matcher: Option<raw::XdsMatcher>,
    path: &str,
    (rk, mk): (&str, &str),
) -> Result<Option<RbacEngine>, ConfigError> {
    match (rules, matcher) {
        (Some(_), Some(_)) => Err(err(
            join_key(path, rk),
            format!("set together with {mk} (Envoy then ignores {rk}); set one"),
        )),
        (Some(r), None) => policies(r, &join_key(path, rk)).map(Some),
        (None, Some(m)) => Ok(Some(RbacEngine::Matcher(xds_matcher(
            m,
            &join_key(path, mk),
        )?))),
        (None, None) => Ok(None),
    }
}

fn policies(r: raw::RbacRules, path: &str) -> Result<RbacEngine, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if r.audit_logging_options.is_some() {
        return Err(err(
            p("audit_logging_options"),
            "not supported by baton (RBAC audit loggers)",
        ));
    }
    let action = enum_or(&r.action, &p("action"), ACTIONS, RbacAction::Allow)?;
    let mut out = Vec::new();
    // A BTreeMap: by name, the order Envoy evaluates them in.
    for (name, pol) in r.policies {
        let pp = join_key(&p("policies"), &name);
        let q = |k: &str| join_key(&pp, k);
        for (k, set) in [
            ("condition", pol.condition.is_some()),
            ("checked_condition", pol.checked_condition.is_some()),
        ] {
            if set {
                return Err(err(q(k), "not supported by baton (CEL expressions)"));
            }
        }
        if pol.permissions.is_empty() {
            return Err(err(q("permissions"), "must have at least one entry"));
        }
        if pol.principals.is_empty() {
            return Err(err(q("principals"), "must have at least one entry"));
        }
        let permissions = pol
            .permissions
            .into_iter()
            .enumerate()
            .map(|(i, r)| permission(r, &format!("{}[{i}]", q("permissions"))))
            .collect::<Result<Vec<_>, _>>()?;
        let principals = pol
            .principals
            .into_iter()
            .enumerate()
            .map(|(i, r)| principal(r, &format!("{}[{i}]", q("principals"))))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((
            name,
            RbacPolicy {
                permissions,
                principals,
            },
        ));
    }
    Ok(RbacEngine::Policies {
        action,
        policies: out,
    })
}

/// A oneof's set fields: exactly one must be, its name returned.
fn one_of(set: &[(&'static str, bool)], path: &str) -> Result<&'static str, ConfigError> {
    let mut on = set.iter().filter(|s| s.1).map(|s| s.0);
    let Some(first) = on.next() else {
        let names: Vec<&str> = set.iter().map(|s| s.0).collect();
        return Err(err(
            path,
            format!("exactly one of {} must be set", names.join(", ")),
        ));
    };
    if let Some(second) = on.next() {
        return Err(err(
            join_key(path, second),
            format!("only one field may be set (also {first})"),
        ));
    }
    Ok(first)
}

fn any(v: Option<bool>, path: &str) -> Result<RbacRule, ConfigError> {
    if v != Some(true) {
        return Err(err(join_key(path, "any"), "must be true"));
    }
    Ok(RbacRule::Any)
}

fn url_path(m: Option<raw::PathMatcherMsg>, path: &str) -> Result<RbacRule, ConfigError> {
    let upath = join_key(path, "url_path");
    match m.and_then(|m| m.path) {
        Some(s) => Ok(RbacRule::UrlPath(string_match(
            s,
            &join_key(&upath, "path"),
        )?)),
        None => Err(err(join_key(&upath, "path"), "required field is missing")),
    }
}

fn header(h: Option<raw::HeaderMatcher>, path: &str) -> Result<RbacRule, ConfigError> {
    let hpath = join_key(path, "header");
    match h {
        Some(h) => Ok(RbacRule::Header(header_matcher(h, &hpath)?)),
        None => Err(err(hpath, "required field is missing")),
    }
}

fn range(
    r: Option<raw::CidrRange>,
    path: &str,
    k: &str,
) -> Result<(std::net::IpAddr, u8), ConfigError> {
    match r {
        Some(r) => cidr(&r, &join_key(path, k)),
        None => Err(err(join_key(path, k), "required field is missing")),
    }
}

fn refused(what: &str) -> String {
    format!("not supported by baton ({what})")
}

fn permission(r: raw::RbacPermission, path: &str) -> Result<RbacRule, ConfigError> {
    let kind = one_of(
        &[
            ("any", r.any.is_some()),
            ("header", r.header.is_some()),
            ("url_path", r.url_path.is_some()),
            ("destination_ip", r.destination_ip.is_some()),
            ("destination_port", r.destination_port.is_some()),
            ("destination_port_range", r.destination_port_range.is_some()),
            ("and_rules", r.and_rules.is_some()),
            ("or_rules", r.or_rules.is_some()),
            ("not_rule", r.not_rule.is_some()),
            ("requested_server_name", r.requested_server_name.is_some()),
            ("metadata", r.metadata.is_some()),
            ("uri_template", r.uri_template.is_some()),
            ("matcher", r.matcher.is_some()),
        ],
        path,
    )?;
    let p = |k: &str| join_key(path, k);
    let set = |s: Option<raw::PermissionSet>, k: &str| -> Result<Vec<RbacRule>, ConfigError> {
        let rules = s.map(|s| s.rules).unwrap_or_default();
        if rules.is_empty() {
            return Err(err(
                join_key(&p(k), "rules"),
                "must have at least one entry",
            ));
        }
        rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| permission(r, &format!("{}.rules[{i}]", p(k))))
            .collect()
    };
    Ok(match kind {
        "any" => any(r.any, path)?,
        "header" => header(r.header, path)?,
        "url_path" => url_path(r.url_path, path)?,
        "destination_ip" => {
            let (ip, len) = range(r.destination_ip, path, kind)?;
            RbacRule::DestinationIp(ip, len)
        }
        "destination_port" => match r.destination_port {
            Some(n) if n <= 65535 => RbacRule::DestinationPort(n, n + 1),
            n => {
                return Err(err(
                    p(kind),
                    format!("{} out of range (0..=65535)", n.unwrap_or_default()),
                ))
            }
        },
        "destination_port_range" => {
            let rr = r
                .destination_port_range
                .unwrap_or(raw::Int64Range { start: 0, end: 0 });
            // Envoy: both ends within 0..=65536, the start below the end.
            let ok = |v: i64| (0..=65536).contains(&v);
            if !ok(rr.start) || !ok(rr.end) || rr.start >= rr.end {
                return Err(err(
                    p(kind),
                    format!(
                        "[{}, {}) is not a port range (0 <= start < end <= 65536)",
                        rr.start, rr.end
                    ),
                ));
            }
            RbacRule::DestinationPort(rr.start as u32, rr.end as u32)
        }
        "and_rules" => RbacRule::And(set(r.and_rules, kind)?),
        "or_rules" => RbacRule::Or(set(r.or_rules, kind)?),
        "not_rule" => match r.not_rule {
            Some(n) => RbacRule::Not(Box::new(permission(*n, &p(kind))?)),
            None => return Err(err(p(kind), "required field is missing")),
        },
        "requested_server_name" => match r.requested_server_name {
            Some(s) => RbacRule::ServerName(string_match(s, &p(kind))?),
            None => return Err(err(p(kind), "required field is missing")),
        },
        "metadata" => return Err(err(p(kind), refused("dynamic metadata"))),
        "uri_template" => return Err(err(p(kind), refused("URI templates"))),
        _ => return Err(err(p(kind), refused("permission matcher extensions"))),
    })
}

fn principal(r: raw::RbacPrincipal, path: &str) -> Result<RbacRule, ConfigError> {
    let kind = one_of(
        &[
            ("any", r.any.is_some()),
            ("header", r.header.is_some()),
            ("url_path", r.url_path.is_some()),
            ("direct_remote_ip", r.direct_remote_ip.is_some()),
            ("remote_ip", r.remote_ip.is_some()),
            ("source_ip", r.source_ip.is_some()),
            ("authenticated", r.authenticated.is_some()),
            ("and_ids", r.and_ids.is_some()),
            ("or_ids", r.or_ids.is_some()),
            ("not_id", r.not_id.is_some()),
            ("metadata", r.metadata.is_some()),
            ("filter_state", r.filter_state.is_some()),
            ("custom", r.custom.is_some()),
        ],
        path,
    )?;
    let p = |k: &str| join_key(path, k);
    let set = |s: Option<raw::PrincipalSet>, k: &str| -> Result<Vec<RbacRule>, ConfigError> {
        let ids = s.map(|s| s.ids).unwrap_or_default();
        if ids.is_empty() {
            return Err(err(join_key(&p(k), "ids"), "must have at least one entry"));
        }
        ids.into_iter()
            .enumerate()
            .map(|(i, r)| principal(r, &format!("{}.ids[{i}]", p(k))))
            .collect()
    };
    Ok(match kind {
        "any" => any(r.any, path)?,
        "header" => header(r.header, path)?,
        "url_path" => url_path(r.url_path, path)?,
        "direct_remote_ip" => {
            let (ip, len) = range(r.direct_remote_ip, path, kind)?;
            RbacRule::DirectRemoteIp(ip, len)
        }
        // The connection's remote address: a PROXY protocol header's client, not XFF's.
        "source_ip" => {
            let (ip, len) = range(r.source_ip, path, kind)?;
            RbacRule::SourceIp(ip, len)
        }
        "remote_ip" => {
            let (ip, len) = range(r.remote_ip, path, kind)?;
            RbacRule::RemoteIp(ip, len)
        }
        "authenticated" => {
            let m = r.authenticated.and_then(|a| a.principal_name);
            let name = m
                .map(|m| string_match(m, &join_key(&p(kind), "principal_name")))
                .transpose()?;
            RbacRule::Authenticated(name)
        }
        "and_ids" => RbacRule::And(set(r.and_ids, kind)?),
        "or_ids" => RbacRule::Or(set(r.or_ids, kind)?),
        "not_id" => match r.not_id {
            Some(n) => RbacRule::Not(Box::new(principal(*n, &p(kind))?)),
            None => return Err(err(p(kind), "required field is missing")),
        },
        "metadata" => return Err(err(p(kind), refused("dynamic metadata"))),
        "filter_state" => return Err(err(p(kind), refused("filter state"))),
        _ => return Err(err(p(kind), refused("principal extensions"))),
    })
}

/// The `@type` name of a typed config (after the last `/`).
fn type_name<'a>(v: &'a Option<Value>, path: &str) -> Result<&'a str, ConfigError> {
    match v {
        Some(Value::Mapping(m)) => match m.get("@type") {
            Some(Value::String(url)) => Ok(url.rsplit('/').next().unwrap_or_default()),
            _ => Err(err(join_key(path, "@type"), "required field is missing")),
        },
        _ => Err(err(path, "required field is missing")),
    }
}

fn xds_matcher(m: raw::XdsMatcher, path: &str) -> Result<RbacMatcher, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if m.matcher_tree.is_some() {
        return Err(err(
            p("matcher_tree"),
            refused("matcher trees; use matcher_list"),
        ));
    }
    let mut list = Vec::new();
    if let Some(l) = m.matcher_list {
        let lp = join_key(&p("matcher_list"), "matchers");
        if l.matchers.is_empty() {
            return Err(err(lp, "must have at least one entry"));
        }
        for (i, f) in l.matchers.into_iter().enumerate() {
            let fp = format!("{lp}[{i}]");
            let Some(pred) = f.predicate else {
                return Err(err(join_key(&fp, "predicate"), "required field is missing"));
            };
            let Some(on) = f.on_match else {
                return Err(err(join_key(&fp, "on_match"), "required field is missing"));
            };
            list.push((
                predicate(pred, &join_key(&fp, "predicate"))?,
                on_match(on, &join_key(&fp, "on_match"))?,
            ));
        }
    }
    let on_no_match = m
        .on_no_match
        .map(|o| on_match(o, &p("on_no_match")).map(Box::new))
        .transpose()?;
    Ok(RbacMatcher { list, on_no_match })
}

fn on_match(o: raw::XdsOnMatch, path: &str) -> Result<RbacOnMatch, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if o.keep_matching == Some(true) {
        return Err(err(p("keep_matching"), refused("keep_matching")));
    }
    let kind = one_of(
        &[
            ("matcher", o.matcher.is_some()),
            ("action", o.action.is_some()),
        ],
        path,
    )?;
    if let (Some(m), "matcher") = (o.matcher, kind) {
        return Ok(RbacOnMatch::Matcher(Box::new(xds_matcher(*m, &p(kind))?)));
    }
    let apath = join_key(&p("action"), "typed_config");
    let a = o.action.and_then(|a| a.typed_config);
    let ty = type_name(&a, &apath)?;
    if ty != ACTION_TYPE {
        return Err(err(
            join_key(&apath, "@type"),
            format!("the RBAC filter's matcher actions are {ACTION_TYPE}, not {ty}"),
        ));
    }
    let body =
        typed_payload(&a, &apath, ACTION_TYPE)?.unwrap_or(Value::Mapping(Default::default()));
    let act: raw::RbacMatchAction = from_value(&body, &apath)?;
    let action = enum_or(
        &act.action,
        &join_key(&apath, "action"),
        ACTIONS,
        RbacAction::Allow,
    )?;
    Ok(RbacOnMatch::Action(act.name, action))
}

fn predicate(pr: raw::XdsPredicate, path: &str) -> Result<RbacPredicate, ConfigError> {
    let kind = one_of(
        &[
            ("single_predicate", pr.single_predicate.is_some()),
            ("or_matcher", pr.or_matcher.is_some()),
            ("and_matcher", pr.and_matcher.is_some()),
            ("not_matcher", pr.not_matcher.is_some()),
        ],
        path,
    )?;
    let p = |k: &str| join_key(path, k);
    let list = |l: Option<raw::XdsPredicateList>| -> Result<Vec<RbacPredicate>, ConfigError> {
        let items = l.map(|l| l.predicate).unwrap_or_default();
        let lp = join_key(&p(kind), "predicate");
        if items.len() < 2 {
            return Err(err(lp, "must have at least two entries"));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, x)| predicate(x, &format!("{lp}[{i}]")))
            .collect()
    };
    match (kind, pr) {
        ("or_matcher", pr) => Ok(RbacPredicate::Or(list(pr.or_matcher)?)),
        ("and_matcher", pr) => Ok(RbacPredicate::And(list(pr.and_matcher)?)),
        (
            "not_matcher",
            raw::XdsPredicate {
                not_matcher: Some(n),
                ..
            },
        ) => Ok(RbacPredicate::Not(Box::new(predicate(*n, &p(kind))?))),
        (_, pr) => {
            let sp = p("single_predicate");
            let Some(s) = pr.single_predicate else {
                return Err(err(sp, "required field is missing"));
            };
            if s.custom_match.is_some() {
                return Err(err(
                    join_key(&sp, "custom_match"),
                    refused("custom matchers; use value_match"),
                ));
            }
            let Some(v) = s.value_match else {
                return Err(err(
                    join_key(&sp, "value_match"),
                    "required field is missing",
                ));
            };
            let ip = join_key(&sp, "input");
            let Some(inp) = s.input else {
                return Err(err(ip, "required field is missing"));
            };
            Ok(RbacPredicate::Single(
                input(inp, &ip)?,
                string_match(v, &join_key(&sp, "value_match"))?,
            ))
        }
    }
}

fn input(i: raw::NamedTyped, path: &str) -> Result<RbacInput, ConfigError> {
    let tpath = join_key(path, "typed_config");
    let ty = type_name(&i.typed_config, &tpath)?;
    if ty == HEADER_INPUT_TYPE {
        let body = typed_payload(&i.typed_config, &tpath, ty)?
            .unwrap_or(Value::Mapping(Default::default()));
        let h: raw::HeaderMatchInput = from_value(&body, &tpath)?;
        if h.header_name.is_empty() {
            return Err(err(join_key(&tpath, "header_name"), "must not be empty"));
        }
        return Ok(RbacInput::Header(h.header_name.to_ascii_lowercase()));
    }
    let network = [
        ("SourceIPInput", RbacInput::SourceIp),
        ("SourcePortInput", RbacInput::SourcePort),
        ("DirectSourceIPInput", RbacInput::DirectSourceIp),
        ("DestinationIPInput", RbacInput::DestinationIp),
        ("DestinationPortInput", RbacInput::DestinationPort),
        ("ServerNameInput", RbacInput::ServerName),
    ];
    for (name, kind) in network {
        if ty.strip_prefix(NETWORK_INPUTS) == Some(name) {
            if let Some(v) = typed_payload(&i.typed_config, &tpath, ty)? {
                let _: raw::EmptyInput = from_value(&v, &tpath)?;
            }
            return Ok(kind);
        }
    }
    Err(err(
        join_key(&tpath, "@type"),
        format!(
            "matching input \"{ty}\" is not supported by baton (supported: {HEADER_INPUT_TYPE}, \
             {NETWORK_INPUTS}{{SourceIPInput, SourcePortInput, DirectSourceIPInput, \
             DestinationIPInput, DestinationPortInput, ServerNameInput}})"
        ),
    ))
}
