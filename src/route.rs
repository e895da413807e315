//! Virtual-host and route selection, as Envoy does it: the Host header picks a virtual host
//! (exact name, then the longest `*.suffix`, then the longest `prefix*`, then `*`), and the
//! first route whose match fits the request wins.

use std::collections::HashMap;

use crate::config::{PathMatch, PathRedirect, RedirectAction, Route, RouteConfig, VirtualHost};

/// Lookup tables built once per listener from its route_config.
#[derive(Debug)]
pub struct Router {
    pub config: RouteConfig,
    exact: HashMap<String, usize>,
    /// (suffix without the `*`, vhost), longest suffix first.
    suffixes: Vec<(String, usize)>,
    /// (prefix without the `*`, vhost), longest prefix first.
    prefixes: Vec<(String, usize)>,
    wildcard: Option<usize>,
}

impl Router {
    pub fn new(config: RouteConfig) -> Router {
        let mut exact = HashMap::new();
        let mut suffixes = Vec::new();
        let mut prefixes = Vec::new();
        let mut wildcard = None;
        for (i, vh) in config.virtual_hosts.iter().enumerate() {
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                if d == "*" {
                    wildcard.get_or_insert(i);
                } else if let Some(s) = d.strip_prefix('*') {
                    suffixes.push((s.to_string(), i));
                } else if let Some(p) = d.strip_suffix('*') {
                    prefixes.push((p.to_string(), i));
                } else {
                    exact.entry(d).or_insert(i);
                }
            }
        }
        // Stable sorts keep config order among equal lengths, as Envoy's first-wins does.
        suffixes.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Router {
            config,
            exact,
            suffixes,
            prefixes,
            wildcard,
        }
    }

    fn match_host(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        // Envoy requires the wildcard to stand for at least one character.
        if let Some(&(_, i)) = self
            .suffixes
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
        {
            return Some(i);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| host.len() > p.len() && host.starts_with(p.as_str()))
            .map(|&(_, i)| i)
    }

    /// The virtual host for a Host value. A `host:port` that matches no domain is tried again
    /// without its port, so `domains: ["example.com"]` serves `Host: example.com:10000`.
    pub fn virtual_host(&self, host: Option<&str>) -> Option<&VirtualHost> {
        let i = host.and_then(|h| {
            let h = h.to_ascii_lowercase();
            if let Some(&i) = self.exact.get(&h) {
                return Some(i);
            }
            match strip_port(&h) {
                Some(bare) => self.match_host(bare).or_else(|| self.match_host(&h)),
                None => self.match_host(&h),
            }
        });
        i.or(self.wildcard)
            .and_then(|i| self.config.virtual_hosts.get(i))
    }

    /// The first route of the matching virtual host that matches `path` (with query).
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<(&VirtualHost, &Route)> {
        let vh = self.virtual_host(host)?;
        vh.routes
            .iter()
            .find(|r| path_matches(&r.matcher.path, r.matcher.case_sensitive, path))
            .map(|r| (vh, r))
    }
}

/// `host:port` → `host`; IPv6 literals keep their brackets.
fn strip_port(h: &str) -> Option<&str> {
    let i = h.rfind(':')?;
    if h[i + 1..].bytes().all(|c| c.is_ascii_digit()) && !h[..i].ends_with(':') {
        if h.starts_with('[') && !h[..i].ends_with(']') {
            return None;
        }
        Some(&h[..i])
    } else {
        None
    }
}

fn starts_with_case(s: &str, p: &str, case_sensitive: bool) -> bool {
    s.len() >= p.len()
        && if case_sensitive {
            s.as_bytes().starts_with(p.as_bytes())
        } else {
            s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        }
}

/// Envoy's semantics: `prefix` matches the start of the full :path (query included); `path`
/// must equal the path with the query string removed.
pub fn path_matches(m: &PathMatch, case_sensitive: bool, path: &str) -> bool {
    match m {
        PathMatch::Prefix(p) => starts_with_case(path, p, case_sensitive),
        PathMatch::Path(p) => {
            let bare = path.split_once('?').map_or(path, |(b, _)| b);
            bare.len() == p.len() && starts_with_case(bare, p, case_sensitive)
        }
        PathMatch::SafeRegex(re) => {
            let bare = path.split_once('?').map_or(path, |(b, _)| b);
            re.is_full_match(bare)
        }
    }
}

/// Applies `prefix_rewrite`: the matched prefix (or exact path) is replaced, the rest kept.
pub fn rewrite_prefix(m: &PathMatch, rewrite: &str, path: &str) -> String {
    let matched_len = match m {
        PathMatch::Prefix(p) => p.len(),
        PathMatch::Path(p) => p.len(),
        // Config validation allows prefix_rewrite only with prefix and path matches.
        PathMatch::SafeRegex(_) => 0,
    };
    let rest = path.get(matched_len..).unwrap_or("");
    let mut out = String::with_capacity(rewrite.len() + rest.len());
    out.push_str(rewrite);
    out.push_str(rest);
    out
}

/// The `location` of a redirect route, built as Envoy does: each part of the request URL is
/// replaced only where the action says so.
pub fn redirect_location(
    r: &RedirectAction,
    m: &PathMatch,
    host: Option<&str>,
    path: &str,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let req_host = host.unwrap_or("");
    let (bare_host, req_port) = match strip_port(req_host) {
        Some(b) => (b, Some(&req_host[b.len() + 1..])),
        None => (req_host, None),
    };
    let host = r.host.as_deref().unwrap_or(bare_host);
    let port = match (r.port, r.scheme.is_some()) {
        (Some(p), _) => Some(p.to_string()),
        // A scheme change drops the old port, as it belonged to the old scheme.
        (None, true) => None,
        (None, false) if r.host.is_none() => req_port.map(str::to_string),
        (None, false) => None,
    };
    let (bare_path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut new_path = match &r.path {
        PathRedirect::Keep => bare_path.to_string(),
        PathRedirect::Path(p) => p.clone(),
        PathRedirect::Prefix(p) => rewrite_prefix(m, p, bare_path),
        PathRedirect::Regex(rw) => rw
            .pattern
            .unanchored()
            .replace_all(bare_path, rw.substitution.as_str())
            .into_owned(),
    };
    let path_has_query = new_path.contains('?');
    if let (Some(q), false, false) = (query, r.strip_query, path_has_query) {
        new_path.push('?');
        new_path.push_str(q);
    }
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{new_path}"),
        None => format!("{scheme}://{host}{new_path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterSpec, ForwardAction, HeaderMutations, RouteAction, RouteMatch};

    fn route(prefix: &str, cluster: usize) -> Route {
        Route {
            name: String::new(),
            matcher: RouteMatch {
                path: PathMatch::Prefix(prefix.into()),
                case_sensitive: true,
                headers: Vec::new(),
                query_parameters: Vec::new(),
            },
            action: RouteAction::Forward(ForwardAction {
                cluster: ClusterSpec::Single(cluster),
                prefix_rewrite: None,
                timeout: None,
                regex_rewrite: None,
                host_rewrite: None,
                idle_timeout: None,
                retry_policy: None,
            }),
            headers: HeaderMutations::default(),
        }
    }

    fn vh(name: &str, domains: &[&str], cluster: usize) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: vec![route("/", cluster)],
            headers: HeaderMutations::default(),
        }
    }

    fn router() -> Router {
        Router::new(RouteConfig {
            headers: HeaderMutations::default(),
            most_specific_header_mutations_wins: false,
            name: "r".into(),
            virtual_hosts: vec![
                vh("any", &["*"], 0),
                vh("exact", &["api.example.com"], 1),
                vh("suffix", &["*.example.com"], 2),
                vh("longer", &["*.b.example.com"], 3),
                vh("prefix", &["api.*"], 4),
            ],
        })
    }

    fn pick(r: &Router, host: &str) -> String {
        r.virtual_host(Some(host))
            .map(|v| v.name.clone())
            .unwrap_or_default()
    }

    #[test]
    fn domain_precedence_is_envoys() {
        let r = router();
        assert_eq!(pick(&r, "api.example.com"), "exact");
        assert_eq!(pick(&r, "API.Example.com"), "exact");
        assert_eq!(pick(&r, "x.example.com"), "suffix");
        assert_eq!(pick(&r, "a.b.example.com"), "longer");
        assert_eq!(pick(&r, "api.other.org"), "prefix");
        assert_eq!(pick(&r, "nothing"), "any");
        assert_eq!(pick(&r, "api.example.com:10000"), "exact");
        assert_eq!(pick(&r, ".example.com"), "any");
    }

    #[test]
    fn no_wildcard_means_no_vhost() {
        let r = Router::new(RouteConfig {
            headers: HeaderMutations::default(),
            most_specific_header_mutations_wins: false,
            name: "r".into(),
            virtual_hosts: vec![vh("only", &["a.com"], 0)],
        });
        assert!(r.route(Some("b.com"), "/").is_none());
        assert!(r.route(None, "/").is_none());
        assert!(r.route(Some("a.com"), "/x").is_some());
    }

    #[test]
    fn path_matching() {
        assert!(path_matches(
            &PathMatch::Prefix("/api".into()),
            true,
            "/api/x"
        ));
        assert!(!path_matches(
            &PathMatch::Prefix("/api".into()),
            true,
            "/API/x"
        ));
        assert!(path_matches(
            &PathMatch::Prefix("/api".into()),
            false,
            "/API/x"
        ));
        assert!(path_matches(&PathMatch::Path("/a".into()), true, "/a?q=1"));
        assert!(!path_matches(&PathMatch::Path("/a".into()), true, "/ab"));
        assert_eq!(
            rewrite_prefix(&PathMatch::Prefix("/api/".into()), "/", "/api/x?y"),
            "/x?y"
        );
    }
}
