//! Header mutations of a route, merged once at load from its three levels in Envoy's order,
//! and applied to a header list on the data path. A route with no mutations at any level has
//! empty lists, so it costs nothing per request.
//!
//! Envoy's order: within a level, removals come before additions; levels go route → virtual
//! host → route_config (the more general level is applied last and so wins an overwrite), or
//! the reverse when `most_specific_header_mutations_wins` is set.

use std::borrow::Cow;

use crate::config::template::{Template, Vars};
use crate::config::{
    AppendAction, HeaderMutations, HeaderValueOption, Route, RouteConfig, VirtualHost,
};

/// One header edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Lower-cased name.
    Remove(String),
    Add(AddOp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddOp {
    pub name: String,
    pub value: Template,
    pub action: AppendAction,
    pub keep_empty: bool,
}

impl Op {
    /// Sets (or appends to, per `action`) header `name` to a fixed `value`, even when empty:
    /// what the HTTP filters and `via` add to a response.
    pub fn fixed(name: &str, value: &str, action: AppendAction) -> Op {
        Op::Add(AddOp {
            name: name.to_string(),
            value: Template::text(value),
            action,
            keep_empty: true,
        })
    }
}

/// The merged, ordered edits of one route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteEdits {
    pub request: Vec<Op>,
    pub response: Vec<Op>,
}

/// Headers as a list of (name, value), borrowing what came off the wire.
pub type HeaderList<'a> = Vec<(Cow<'a, str>, Cow<'a, [u8]>)>;

fn ops(remove: &[String], add: &[HeaderValueOption], out: &mut Vec<Op>) {
    out.extend(remove.iter().cloned().map(Op::Remove));
    out.extend(add.iter().map(|h| {
        Op::Add(AddOp {
            name: h.name.clone(),
            // Validated at load; an unparsable value cannot reach here, but stay literal if so.
            value: Template::parse(&h.value).unwrap_or_default(),
            action: h.append_action,
            keep_empty: h.keep_empty_value,
        })
    }));
}

/// Additions alone (a filter's `request_headers_to_add_when_not_enforced`, ...).
pub fn add_ops(add: &[HeaderValueOption]) -> Vec<Op> {
    let mut out = Vec::new();
    ops(&[], add, &mut out);
    out
}

/// The request edits of one level alone, in Envoy's order (a health check's).
pub fn request_ops(h: &HeaderMutations) -> Vec<Op> {
    let mut out = Vec::new();
    ops(
        &h.request_headers_to_remove,
        &h.request_headers_to_add,
        &mut out,
    );
    out
}

impl RouteEdits {
    pub fn merge(rc: &RouteConfig, vh: &VirtualHost, r: &Route) -> RouteEdits {
        let mut levels: [&HeaderMutations; 3] = [&r.headers, &vh.headers, &rc.headers];
        if rc.most_specific_header_mutations_wins {
            levels.reverse();
        }
        let mut e = RouteEdits::default();
        for l in levels {
            ops(
                &l.request_headers_to_remove,
                &l.request_headers_to_add,
                &mut e.request,
            );
            ops(
                &l.response_headers_to_remove,
                &l.response_headers_to_add,
                &mut e.response,
            );
        }
        e
    }
}

/// Evaluates what is known from the request in every added value, leaving only
/// `%UPSTREAM_HOST%` (see `Template::bind`); used for response edits, applied later.
pub fn bind(list: &[Op], v: &Vars<'_>) -> Vec<Op> {
    list.iter()
        .map(|op| match op {
            Op::Remove(n) => Op::Remove(n.clone()),
            Op::Add(a) => Op::Add(AddOp {
                name: a.name.clone(),
                value: match a.value.literal() {
                    Some(_) => a.value.clone(),
                    None => a.value.bind(v),
                },
                action: a.action,
                keep_empty: a.keep_empty,
            }),
        })
        .collect()
}

/// Applies `list` to `headers`; `render` turns a value template into text.
pub fn apply<'a>(
    headers: &mut HeaderList<'a>,
    list: &'a [Op],
    render: &dyn Fn(&Template) -> String,
) {
    for op in list {
        match op {
            Op::Remove(n) => headers.retain(|(h, _)| !h.eq_ignore_ascii_case(n)),
            Op::Add(a) => {
                let value: Cow<'a, [u8]> = match a.value.literal() {
                    Some(s) => s.as_bytes().into(),
                    None => render(&a.value).into_bytes().into(),
                };
                if value.is_empty() && !a.keep_empty {
                    continue;
                }
                let exists = headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(&a.name));
                let entry = (Cow::Borrowed(a.name.as_str()), value);
                match a.action {
                    AppendAction::AppendIfExistsOrAdd => headers.push(entry),
                    AppendAction::AddIfAbsent if !exists => headers.push(entry),
                    AppendAction::AddIfAbsent => {}
                    AppendAction::OverwriteIfExists if !exists => {}
                    AppendAction::OverwriteIfExistsOrAdd | AppendAction::OverwriteIfExists => {
                        // Replace the first occurrence in place, drop the others.
                        let mut entry = Some(entry);
                        headers.retain_mut(|(h, v)| {
                            if !h.eq_ignore_ascii_case(&a.name) {
                                return true;
                            }
                            match entry.take() {
                                Some((_, nv)) => {
                                    *v = nv;
                                    true
                                }
                                None => false,
                            }
                        });
                        if let Some(e) = entry {
                            headers.push(e);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(name: &str, value: &str, action: AppendAction) -> HeaderValueOption {
        HeaderValueOption {
            name: name.into(),
            value: value.into(),
            append_action: action,
            keep_empty_value: false,
        }
    }

    fn level(resp: Vec<HeaderValueOption>, remove: &[&str]) -> HeaderMutations {
        HeaderMutations {
            response_headers_to_add: resp,
            response_headers_to_remove: remove.iter().map(|s| s.to_string()).collect(),
            ..HeaderMutations::default()
        }
    }

    fn run(rc_wins_flag: bool) -> Vec<(String, String)> {
        use AppendAction::*;
        let mut route = crate::route::tests::route("/", 0);
        route.headers = level(
            vec![
                add("x-o", "route", OverwriteIfExistsOrAdd),
                add("x-a", "route", AppendIfExistsOrAdd),
                add("x-i", "route", AddIfAbsent),
            ],
            &[],
        );
        let vh = VirtualHost {
            name: "v".into(),
            domains: vec!["*".into()],
            routes: vec![],
            retry_policy: None,
            require_tls: crate::config::RequireTls::None,
            filter_configs: vec![],
            cors: None,
            headers: level(
                vec![
                    add("x-o", "vh", OverwriteIfExistsOrAdd),
                    add("x-a", "vh", AppendIfExistsOrAdd),
                    add("x-i", "vh", AddIfAbsent),
                ],
                &["x-up"],
            ),
        };
        let rc = RouteConfig {
            name: "r".into(),
            virtual_hosts: vec![],
            headers: level(
                vec![
                    add("x-o", "rc", OverwriteIfExistsOrAdd),
                    add("x-gen", "7", OverwriteIfExists),
                ],
                &[],
            ),
            most_specific_header_mutations_wins: rc_wins_flag,
        };
        let e = RouteEdits::merge(&rc, &vh, &route);
        let mut h: HeaderList<'_> = vec![
            (Cow::Borrowed("X-Up"), Cow::Borrowed(&b"1"[..])),
            (Cow::Borrowed("x-gen"), Cow::Borrowed(&b"0"[..])),
        ];
        apply(&mut h, &e.response, &|t| t.render_upstream(None));
        h.into_iter()
            .map(|(n, v)| (n.into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    #[test]
    fn general_level_wins_by_default() {
        let h = run(false);
        let get = |n: &str| {
            h.iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("x-o"), ["rc"]);
        assert_eq!(get("x-a"), ["route", "vh"]);
        assert_eq!(get("x-i"), ["route"]);
        assert_eq!(get("x-gen"), ["7"]);
        assert!(get("X-Up").is_empty());
    }

    #[test]
    fn most_specific_wins_when_asked() {
        let h = run(true);
        let get = |n: &str| {
            h.iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("x-o"), ["route"]);
        assert_eq!(get("x-i"), ["vh"]);
    }
}
