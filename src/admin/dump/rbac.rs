//! The RBAC filter's config and per-route configs, as Envoy writes them.

use serde_yaml::Value;

use super::{header_matcher, list, map, n, s, string_match, T};
use crate::config::{
    Rbac, RbacAction, RbacEngine, RbacInput, RbacMatcher, RbacOnMatch, RbacPredicate, RbacRule,
};

/// The filter's `RBAC`.
pub(super) fn rbac(c: &Rbac) -> Value {
    let mut pairs = vec![(
        "@type",
        s(&format!("{T}envoy.extensions.filters.http.rbac.v3.RBAC")),
    )];
    pairs.extend(fields(c));
    map(pairs)
}

/// A route's `RBACPerRoute`.
pub(super) fn per_route(c: &Rbac) -> Value {
    let empty = c.rules.is_none() && c.shadow_rules.is_none();
    map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
            )),
        ),
        ("rbac", (!empty).then(|| map(fields(c)))),
    ])
}

fn fields(c: &Rbac) -> Vec<(&'static str, Option<Value>)> {
    let engine = |e: &Option<RbacEngine>, rules: bool| match e {
        Some(RbacEngine::Policies { .. }) if rules => e.as_ref().map(policies),
        Some(RbacEngine::Matcher(m)) if !rules => Some(matcher(m)),
        _ => None,
    };
    let text = |v: &str| (!v.is_empty()).then(|| Value::from(v));
    vec![
        ("rules", engine(&c.rules, true)),
        ("matcher", engine(&c.rules, false)),
        ("shadow_rules", engine(&c.shadow_rules, true)),
        ("shadow_matcher", engine(&c.shadow_rules, false)),
        ("rules_stat_prefix", text(&c.rules_stat_prefix)),
        (
            "shadow_rules_stat_prefix",
            text(&c.shadow_rules_stat_prefix),
        ),
    ]
}

fn action(a: RbacAction) -> Option<Value> {
    s(match a {
        RbacAction::Allow => "ALLOW",
        RbacAction::Deny => "DENY",
        RbacAction::Log => "LOG",
    })
}

fn policies(e: &RbacEngine) -> Value {
    let RbacEngine::Policies {
        action: a,
        policies,
    } = e
    else {
        return map(Vec::new());
    };
    let entries = policies
        .iter()
        .map(|(name, p)| {
            let v = map(vec![
                (
                    "permissions",
                    list(p.permissions.iter().map(|r| rule(r, true)).collect()),
                ),
                (
                    "principals",
                    list(p.principals.iter().map(|r| rule(r, false)).collect()),
                ),
            ]);
            (name.as_str(), Some(v))
        })
        .collect();
    map(vec![
        ("action", action(*a)),
        ("policies", Some(map(entries))),
    ])
}

fn cidr(ip: &std::net::IpAddr, len: u8) -> Option<Value> {
    Some(map(vec![
        ("address_prefix", s(&ip.to_string())),
        ("prefix_len", n(len)),
    ]))
}

/// A permission (`permission`) or a principal rule.
fn rule(r: &RbacRule, permission: bool) -> Value {
    let set = |l: &[RbacRule]| {
        let key = if permission { "rules" } else { "ids" };
        Some(map(vec![(
            key,
            list(l.iter().map(|r| rule(r, permission)).collect()),
        )]))
    };
    let pair = match r {
        RbacRule::Any => ("any", n(true)),
        RbacRule::Header(h) => ("header", Some(header_matcher(h))),
        RbacRule::UrlPath(m) => ("url_path", Some(map(vec![("path", Some(string_match(m)))]))),
        RbacRule::DestinationIp(ip, len) => ("destination_ip", cidr(ip, *len)),
        RbacRule::DestinationPort(a, b) if *b == a + 1 => ("destination_port", n(*a)),
        RbacRule::DestinationPort(a, b) => (
            "destination_port_range",
            Some(map(vec![("start", n(*a)), ("end", n(*b))])),
        ),
        RbacRule::ServerName(m) => ("requested_server_name", Some(string_match(m))),
        RbacRule::DirectRemoteIp(ip, len) => ("direct_remote_ip", cidr(ip, *len)),
        RbacRule::SourceIp(ip, len) => ("source_ip", cidr(ip, *len)),
        RbacRule::RemoteIp(ip, len) => ("remote_ip", cidr(ip, *len)),
        RbacRule::Authenticated(m) => (
            "authenticated",
            Some(map(vec![("principal_name", m.as_ref().map(string_match))])),
        ),
        RbacRule::And(l) if permission => ("and_rules", set(l)),
        RbacRule::And(l) => ("and_ids", set(l)),
        RbacRule::Or(l) if permission => ("or_rules", set(l)),
        RbacRule::Or(l) => ("or_ids", set(l)),
        RbacRule::Not(r) if permission => ("not_rule", Some(rule(r, permission))),
        RbacRule::Not(r) => ("not_id", Some(rule(r, permission))),
    };
    map(vec![pair])
}

fn matcher(m: &RbacMatcher) -> Value {
    let matchers = m
        .list
        .iter()
        .map(|(p, o)| {
            map(vec![
                ("predicate", Some(predicate(p))),
                ("on_match", Some(on_match(o))),
            ])
        })
        .collect();
    map(vec![
        (
            "matcher_list",
            (!m.list.is_empty()).then(|| map(vec![("matchers", list(matchers))])),
        ),
        ("on_no_match", m.on_no_match.as_deref().map(on_match)),
    ])
}

fn on_match(o: &RbacOnMatch) -> Value {
    match o {
        RbacOnMatch::Matcher(m) => map(vec![("matcher", Some(matcher(m)))]),
        RbacOnMatch::Action(name, a) => map(vec![(
            "action",
            Some(map(vec![
                ("name", s("envoy.filters.rbac.action")),
                (
                    "typed_config",
                    Some(map(vec![
                        ("@type", s(&format!("{T}envoy.config.rbac.v3.Action"))),
                        ("name", s(name)),
                        ("action", action(*a)),
                    ])),
                ),
            ])),
        )]),
    }
}

fn predicate(p: &RbacPredicate) -> Value {
    let group = |l: &[RbacPredicate]| {
        Some(map(vec![(
            "predicate",
            list(l.iter().map(predicate).collect()),
        )]))
    };
    match p {
        RbacPredicate::Or(l) => map(vec![("or_matcher", group(l))]),
        RbacPredicate::And(l) => map(vec![("and_matcher", group(l))]),
        RbacPredicate::Not(p) => map(vec![("not_matcher", Some(predicate(p)))]),
        RbacPredicate::Single(i, m) => map(vec![(
            "single_predicate",
            Some(map(vec![
                ("input", Some(input(i))),
                ("value_match", Some(string_match(m))),
            ])),
        )]),
    }
}

fn input(i: &RbacInput) -> Value {
    let net = |name: &str| format!("{T}envoy.extensions.matching.common_inputs.network.v3.{name}");
    let (ty, header) = match i {
        RbacInput::Header(h) => (
            format!("{T}envoy.type.matcher.v3.HttpRequestHeaderMatchInput"),
            Some(h.as_str()),
        ),
        RbacInput::SourceIp => (net("SourceIPInput"), None),
        RbacInput::SourcePort => (net("SourcePortInput"), None),
        RbacInput::DirectSourceIp => (net("DirectSourceIPInput"), None),
        RbacInput::DestinationIp => (net("DestinationIPInput"), None),
        RbacInput::DestinationPort => (net("DestinationPortInput"), None),
        RbacInput::ServerName => (net("ServerNameInput"), None),
    };
    map(vec![
        ("name", s("input")),
        (
            "typed_config",
            Some(map(vec![
                ("@type", s(&ty)),
                ("header_name", header.and_then(s)),
            ])),
        ),
    ])
}
