//! Path rewrites for forwarded requests (`prefix_rewrite`, `regex_rewrite`) and the Location of
//! redirects, as Envoy builds them.

use std::borrow::Cow;

use super::matcher::bare_path;
use crate::config::{PathMatch, PathRedirect, RedirectAction, RegexRewrite};

/// Applies `prefix_rewrite`: the matched prefix (or exact path) is replaced, the rest kept. A
/// regex route has matched the whole path, so all of it (not the query) is replaced.
pub fn rewrite_prefix(m: &PathMatch, rewrite: &str, path: &str) -> String {
    let matched_len = match m {
        PathMatch::Prefix(p) => p.len(),
        PathMatch::Path(p) => p.len(),
        PathMatch::SafeRegex(_) => bare_path(path).len(),
        PathMatch::Connect => 0,
    };
    let rest = path.get(matched_len..).unwrap_or("");
    let mut out = String::with_capacity(rewrite.len() + rest.len());
    out.push_str(rewrite);
    out.push_str(rest);
    out
}

/// Applies `regex_rewrite` to the path (every match replaced); the query string is kept.
pub fn rewrite_regex(r: &RegexRewrite, path: &str) -> String {
    let bare = bare_path(path);
    let query = path.get(bare.len()..).unwrap_or("");
    let mut out = r
        .pattern
        .unanchored()
        .replace_all(bare, r.substitution.as_str())
        .into_owned();
    out.push_str(query);
    out
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    }
}

/// `host:port` → (host, Some(port)); IPv6 literals keep their brackets.
pub fn split_port(h: &str) -> (&str, Option<&str>) {
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                return (host, Some(port));
            }
            (h, None)
        }
        _ => (h, None),
    }
}

/// The Location of a redirect: scheme, host, port and path from the request unless the route
/// overrides them. A port that is the default of the old or new scheme is dropped when the
/// scheme changes, so `http://a:80` → `https://a`. `secure`: the request came over TLS.
pub fn redirect_location(
    r: &RedirectAction,
    matched: &PathMatch,
    host: Option<&str>,
    path: &str,
    secure: bool,
) -> String {
    let old = if secure { "https" } else { "http" };
    let scheme = r.scheme.as_deref().unwrap_or(old);
    let orig = r.host.as_deref().or(host).unwrap_or("");
    let (name, mut port) = split_port(orig);
    // A host_redirect carrying its own port wins over the request's.
    if let Some(p) = r.port {
        let mut s = String::with_capacity(name.len() + 6);
        s.push_str(name);
        s.push(':');
        s.push_str(&p.to_string());
        return finish(scheme, &s, r, matched, path);
    }
    if r.scheme.is_some()
        && port.is_some_and(|p| Some(p) == default_port(old) || Some(p) == default_port(scheme))
    {
        port = None;
    }
    let authority: Cow<'_, str> = match port {
        Some(p) => format!("{name}:{p}").into(),
        None => name.into(),
    };
    finish(scheme, &authority, r, matched, path)
}

fn finish(
    scheme: &str,
    authority: &str,
    r: &RedirectAction,
    matched: &PathMatch,
    path: &str,
) -> String {
    let query = path.split_once('?').map(|(_, q)| q);
    let mut p: String = match &r.path {
        PathRedirect::Keep => bare_path(path).to_string(),
        // A query in path_redirect replaces the request's (and is never stripped).
        PathRedirect::Path(np) => {
            let mut out = String::with_capacity(scheme.len() + authority.len() + np.len() + 3);
            out.push_str(scheme);
            out.push_str("://");
            out.push_str(authority);
            out.push_str(np);
            if !np.contains('?') && !r.strip_query {
                if let Some(q) = query {
                    out.push('?');
                    out.push_str(q);
                }
            }
            return out;
        }
        PathRedirect::Prefix(rw) => bare_path(&rewrite_prefix(matched, rw, path)).to_string(),
        PathRedirect::Regex(rr) => bare_path(&rewrite_regex(rr, path)).to_string(),
    };
    if !r.strip_query {
        if let Some(q) = query {
            p.push('?');
            p.push_str(q);
        }
    }
    format!("{scheme}://{authority}{p}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Regex;

    fn redirect(
        scheme: Option<&str>,
        host: Option<&str>,
        port: Option<u16>,
        path: PathRedirect,
    ) -> RedirectAction {
        RedirectAction {
            scheme: scheme.map(String::from),
            host: host.map(String::from),
            port,
            path,
            response_code: 301,
            strip_query: false,
        }
    }

    #[test]
    fn rewrites() {
        assert_eq!(
            rewrite_prefix(&PathMatch::Prefix("/api/".into()), "/", "/api/x?y"),
            "/x?y"
        );
        let rr = RegexRewrite {
            pattern: Regex::new("/v([0-9]+)/", None).unwrap(),
            substitution: "/version-${1}/".into(),
        };
        assert_eq!(
            rewrite_regex(&rr, "/v1/a/v2/b?v3/=1"),
            "/version-1/a/version-2/b?v3/=1"
        );
    }

    #[test]
    fn redirect_locations() {
        let pm = PathMatch::Prefix("/old".into());
        let r = redirect(Some("https"), None, None, PathRedirect::Keep);
        assert_eq!(
            redirect_location(&r, &pm, Some("a.com:80"), "/old/x?q", false),
            "https://a.com/old/x?q"
        );
        assert_eq!(
            redirect_location(&r, &pm, Some("a.com:8080"), "/x", false),
            "https://a.com:8080/x"
        );
        let r = redirect(
            None,
            Some("b.org"),
            Some(9000),
            PathRedirect::Prefix("/new".into()),
        );
        assert_eq!(
            redirect_location(&r, &pm, Some("a.com"), "/old/x?q", false),
            "http://b.org:9000/new/x?q"
        );
        let mut r = redirect(None, None, None, PathRedirect::Path("/p".into()));
        assert_eq!(
            redirect_location(&r, &pm, Some("h"), "/old?q=1", false),
            "http://h/p?q=1"
        );
        r.strip_query = true;
        assert_eq!(
            redirect_location(&r, &pm, Some("h"), "/old?q=1", false),
            "http://h/p"
        );
        // Over TLS the scheme kept is https; to http the default port 443 goes.
        assert_eq!(
            redirect_location(&r, &pm, Some("h"), "/old?q=1", true),
            "https://h/p"
        );
        let r = redirect(Some("http"), None, None, PathRedirect::Keep);
        assert_eq!(
            redirect_location(&r, &pm, Some("a.com:443"), "/x", true),
            "http://a.com/x"
        );
    }
}
