//! Envoy's RBAC filter (`envoy.filters.http.rbac`): a request's verdict under a config's
//! shadow engine (only counted) and enforced engine (a denial is answered 403), each a policy
//! set or a matcher tree; and the filters' counters, registered at start.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::codec::RequestHead;
use super::request::in_range;
use crate::access_log::TlsInfo;
use crate::config::{
    HttpFilterKind, Rbac, RbacAction, RbacEngine, RbacInput, RbacMatcher, RbacOnMatch,
    RbacPredicate, RbacRule,
};
use crate::route::matcher::{bare_path, header_matches, header_value, string_matches};
use crate::stats::{Counter, Stats};

/// What the rules read of the connection besides the request.
pub(super) struct Conn<'a> {
    /// The connection's local address.
    pub local: SocketAddr,
    /// The connection's socket peer.
    pub direct: SocketAddr,
    /// The connection's remote address: a PROXY protocol header's client, else `direct`.
    pub source: SocketAddr,
    /// The client address after the connection manager's XFF rules.
    pub client: SocketAddr,
    /// The TLS session (SNI, peer certificate), when the connection is TLS.
    pub tls: Option<&'a TlsInfo>,
}

/// The counters `allowed`, `denied`, `shadow_allowed`, `shadow_denied` of each RBAC filter,
/// by (listener, filter index); a per-route config counts under its filter's.
#[derive(Debug, Default)]
pub(crate) struct RbacStats {
    by_filter: HashMap<(usize, usize), [Counter; 4]>,
}

/// Envoy's `statPrefixJoin`: a `.` between the two unless the first is empty or ends with one.
fn join(prefix: &str, token: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('.') {
        format!("{prefix}{token}")
    } else {
        format!("{prefix}.{token}")
    }
}

/// Envoy's names: `http.<stat_prefix>.rbac.<rules_stat_prefix>allowed` and `denied`, and
/// `….rbac.<shadow_rules_stat_prefix>shadow_allowed` and `shadow_denied` (Envoy's
/// `generateStats` puts each prefix straight after `rbac.`, the shadow one not after the rules').
fn names(hcm_prefix: &str, c: &Rbac) -> [String; 4] {
    let base = format!("http.{hcm_prefix}.rbac.");
    let rules = join(&base, &c.rules_stat_prefix);
    let shadow = join(&base, &c.shadow_rules_stat_prefix);
    [
        join(&rules, "allowed"),
        join(&rules, "denied"),
        join(&shadow, "shadow_allowed"),
        join(&shadow, "shadow_denied"),
    ]
}

impl RbacStats {
    pub(crate) fn new(listeners: &[crate::context::ListenerRt], stats: &mut Stats) -> RbacStats {
        let mut by_filter = HashMap::new();
        for (l, listener) in listeners.iter().enumerate() {
            let Some(http) = listener.http() else {
                continue;
            };
            for (fi, f) in http.hcm.http_filters.iter().enumerate() {
                if let HttpFilterKind::Rbac(c) = &f.kind {
                    let counters = names(&http.hcm.stat_prefix, c).map(|n| stats.store.counter(&n));
                    by_filter.insert((l, fi), counters);
                }
            }
        }
        RbacStats { by_filter }
    }
}

/// Runs filter `fi` of listener `l` with `config` (its own, or the route's): the shadow engine
/// is only counted; the enforced one lets the request on (`None`) or denies it, returning
/// Envoy's response code details naming the policy that decided (`none` when none did).
pub(super) fn check(
    config: &Rbac,
    (l, fi): (usize, usize),
    req: &RequestHead<'_>,
    conn: &Conn<'_>,
    counters: &RbacStats,
    stats: &mut Stats,
) -> Option<Cow<'static, str>> {
    let c = counters.by_filter.get(&(l, fi)).copied();
    let mut count = |i: usize| {
        if let Some(c) = c {
            stats.store.inc(c[i]);
        }
    };
    if let Some(shadow) = &config.shadow_rules {
        let (allowed, _) = verdict(shadow, req, conn);
        count(if allowed { 2 } else { 3 });
    }
    let (allowed, policy) = verdict(config.rules.as_ref()?, req, conn);
    if allowed {
        count(0);
        return None;
    }
    count(1);
    Some(Cow::Owned(details(policy.unwrap_or(""))))
}

/// `rbac_access_denied_matched_policy[<policy>]`, whitespace in the name as `_` (so the access
/// log keeps its fields), `none` for no name, as Envoy writes it.
fn details(policy: &str) -> String {
    let name: String = if policy.is_empty() {
        "none".into()
    } else {
        policy
            .chars()
            .map(|c| {
                if " \t\n\r\x0b\x0c".contains(c) {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    format!("rbac_access_denied_matched_policy[{name}]")
}

/// Whether the engine allows the request, and the policy (or matcher action) that decided.
fn verdict<'c>(
    e: &'c RbacEngine,
    req: &RequestHead<'_>,
    conn: &Conn<'_>,
) -> (bool, Option<&'c str>) {
    match e {
        RbacEngine::Policies { action, policies } => {
            let hit = policies.iter().find(|(_, p)| {
                p.permissions.iter().any(|r| rule(r, req, conn))
                    && p.principals.iter().any(|r| rule(r, req, conn))
            });
            let name = hit.map(|(n, _)| n.as_str());
            let allowed = match action {
                RbacAction::Allow => hit.is_some(),
                RbacAction::Deny => hit.is_none(),
                RbacAction::Log => true,
            };
            (allowed, name)
        }
        // No action found: Envoy denies.
        RbacEngine::Matcher(m) => match find_action(m, req, conn) {
            Some((name, action)) => (*action != RbacAction::Deny, Some(name.as_str())),
            None => (false, None),
        },
    }
}

/// The matcher's action: the first entry whose predicate matches and whose `on_match` gives
/// one (a nested matcher that finds none lets the list go on), else `on_no_match`'s.
fn find_action<'c>(
    m: &'c RbacMatcher,
    req: &RequestHead<'_>,
    conn: &Conn<'_>,
) -> Option<(&'c String, &'c RbacAction)> {
    let resolve = |o: &'c RbacOnMatch| match o {
        RbacOnMatch::Action(name, a) => Some((name, a)),
        RbacOnMatch::Matcher(inner) => find_action(inner, req, conn),
    };
    m.list
        .iter()
        .filter(|(p, _)| predicate(p, req, conn))
        .find_map(|(_, o)| resolve(o))
        .or_else(|| m.on_no_match.as_deref().and_then(resolve))
}

fn predicate(p: &RbacPredicate, req: &RequestHead<'_>, conn: &Conn<'_>) -> bool {
    match p {
        // An input without a value does not match.
        RbacPredicate::Single(i, m) => input(i, req, conn).is_some_and(|v| string_matches(m, &v)),
        RbacPredicate::Or(l) => l.iter().any(|p| predicate(p, req, conn)),
        RbacPredicate::And(l) => l.iter().all(|p| predicate(p, req, conn)),
        RbacPredicate::Not(p) => !predicate(p, req, conn),
    }
}

/// A matching input's value as Envoy gives it to a string matcher.
fn input(i: &RbacInput, req: &RequestHead<'_>, conn: &Conn<'_>) -> Option<String> {
    Some(match i {
        RbacInput::Header(name) => return header_value(req, name),
        RbacInput::SourceIp => conn.client.ip().to_string(),
        RbacInput::SourcePort => conn.client.port().to_string(),
        RbacInput::DirectSourceIp => conn.direct.ip().to_string(),
        RbacInput::DestinationIp => conn.local.ip().to_string(),
        RbacInput::DestinationPort => conn.local.port().to_string(),
        RbacInput::ServerName => return sni(conn).map(str::to_string),
    })
}

fn sni<'a>(conn: &Conn<'a>) -> Option<&'a str> {
    conn.tls
        .and_then(|t| t.sni.as_deref())
        .filter(|s| !s.is_empty())
}

fn rule(r: &RbacRule, req: &RequestHead<'_>, conn: &Conn<'_>) -> bool {
    match r {
        RbacRule::Any => true,
        RbacRule::Header(m) => header_matches(m, req),
        RbacRule::UrlPath(m) => string_matches(m, bare_path(req.path)),
        RbacRule::DestinationIp(net, len) => in_range(conn.local.ip(), *net, *len),
        RbacRule::DestinationPort(start, end) => {
            (*start..*end).contains(&u32::from(conn.local.port()))
        }
        RbacRule::ServerName(m) => string_matches(m, sni(conn).unwrap_or("")),
        RbacRule::DirectRemoteIp(net, len) => in_range(conn.direct.ip(), *net, *len),
        RbacRule::SourceIp(net, len) => in_range(conn.source.ip(), *net, *len),
        RbacRule::RemoteIp(net, len) => in_range(conn.client.ip(), *net, *len),
        RbacRule::Authenticated(m) => match (conn.tls, m) {
            (None, _) => false,
            (Some(_), None) => true,
            // The URI SANs, then the DNS SANs, then the subject, as Envoy tries them.
            (Some(t), Some(m)) => {
                t.peer_uri_sans.iter().any(|s| string_matches(m, s))
                    || t.peer_dns_sans.iter().any(|s| string_matches(m, s))
                    || string_matches(m, t.peer_subject.as_deref().unwrap_or(""))
            }
        },
        RbacRule::And(l) => l.iter().all(|r| rule(r, req, conn)),
        RbacRule::Or(l) => l.iter().any(|r| rule(r, req, conn)),
        RbacRule::Not(r) => !rule(r, req, conn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_follow_envoys_prefix_joins() {
        let mut c = Rbac::default();
        assert_eq!(
            names("ing", &c),
            [
                "http.ing.rbac.allowed",
                "http.ing.rbac.denied",
                "http.ing.rbac.shadow_allowed",
                "http.ing.rbac.shadow_denied"
            ]
        );
        c.rules_stat_prefix = "r".into();
        c.shadow_rules_stat_prefix = "s.".into();
        assert_eq!(
            names("ing", &c),
            [
                "http.ing.rbac.r.allowed",
                "http.ing.rbac.r.denied",
                "http.ing.rbac.s.shadow_allowed",
                "http.ing.rbac.s.shadow_denied"
            ]
        );
    }

    #[test]
    fn details_name_the_policy_with_whitespace_as_underscores() {
        assert_eq!(details("p1"), "rbac_access_denied_matched_policy[p1]");
        assert_eq!(
            details("a b\tc"),
            "rbac_access_denied_matched_policy[a_b_c]"
        );
        assert_eq!(details(""), "rbac_access_denied_matched_policy[none]");
    }
}
