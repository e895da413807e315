//! Virtual-host and route selection, as Envoy does it: the Host header picks a virtual host
//! (exact name, then the longest `*.suffix`, then the longest `prefix*`, then `*`), and the
//! first route whose match fits the request wins. `matcher` holds the per-route match rules,
//! `rewrite` the path rewrites and redirect Locations, `edits` the header mutations.

pub mod edits;
pub mod matcher;
pub mod normalize;
pub mod rewrite;

use std::collections::HashMap;

pub use edits::{AddOp, Op, RouteEdits};
pub use matcher::path_matches;
pub use rewrite::{redirect_location, rewrite_prefix, rewrite_regex};

use crate::config::{Route, RouteConfig, VirtualHost};
use crate::http::codec::RequestHead;

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
    /// Header edits per (virtual host, route), all levels merged in Envoy's order.
    edits: Vec<Vec<RouteEdits>>,
    /// Some virtual host has `require_tls`: only then is the check paid for.
    pub tls_required: bool,
    /// Some route matches, or hashes, a header the connection manager edits or drops
    /// before routing (`x-envoy-*`, `x-forwarded-*`, `user-agent`): routing then reads the
    /// edited headers, as Envoy's does; other configs pay nothing.
    pub reads_edited_headers: bool,
}

/// Whether the connection manager may change header `n` (lower case) before routing.
fn edited_by_hcm(n: &str) -> bool {
    n.starts_with("x-envoy-") || n.starts_with("x-forwarded-") || n == "user-agent"
}

/// A matched route: indices into the route config, the route, and its merged header edits.
pub struct Matched<'a> {
    pub vh: usize,
    pub index: usize,
    pub route: &'a Route,
    pub edits: &'a RouteEdits,
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
        let edits = config
            .virtual_hosts
            .iter()
            .map(|vh| {
                vh.routes
                    .iter()
                    .map(|r| RouteEdits::merge(&config, vh, r))
                    .collect()
            })
            .collect();
        let tls_required = config
            .virtual_hosts
            .iter()
            .any(|v| v.require_tls != crate::config::RequireTls::None);
        let reads_edited_headers = config.virtual_hosts.iter().any(|v| {
            v.routes.iter().any(|r| {
                r.matcher.headers.iter().any(|h| edited_by_hcm(&h.name))
                    || matches!(&r.action, crate::config::RouteAction::Forward(f)
                        if f.hash_policy.iter().any(|p| matches!(&p.key,
                            crate::config::HashKey::Header(n) if edited_by_hcm(n))))
            })
        });
        Router {
            reads_edited_headers,
            tls_required,
            edits,
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
        self.vhost_index(host)
            .and_then(|i| self.config.virtual_hosts.get(i))
    }

    fn vhost_index(&self, host: Option<&str>) -> Option<usize> {
        // Only `*` (the common single virtual host): no Host can match anything else, so
        // it is neither lowercased nor hashed.
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.wildcard;
        }
        let i = host.and_then(|h| {
            // Clients send lower case; only a Host with capitals pays for a copy.
            let h: std::borrow::Cow<'_, str> = if h.bytes().any(|b| b.is_ascii_uppercase()) {
                h.to_ascii_lowercase().into()
            } else {
                h.into()
            };
            let h = h.as_ref();
            if let Some(&i) = self.exact.get(h) {
                return Some(i);
            }
            match strip_port(h) {
                Some(bare) => self.match_host(bare).or_else(|| self.match_host(h)),
                None => self.match_host(h),
            }
        });
        i.or(self.wildcard)
    }

    /// The first route of the matching virtual host whose match fits the request.
    pub fn route(&self, req: &RequestHead<'_>) -> Option<Matched<'_>> {
        let vh = self.vhost_index(req.host)?;
        let v = self.config.virtual_hosts.get(vh)?;
        let index = v
            .routes
            .iter()
            .position(|r| matcher::matches(&r.matcher, req))?;
        self.get(vh, index)
    }

    /// A route by the indices of an earlier match.
    pub fn get(&self, vh: usize, index: usize) -> Option<Matched<'_>> {
        let route = self.config.virtual_hosts.get(vh)?.routes.get(index)?;
        let edits = self.edits.get(vh)?.get(index)?;
        Some(Matched {
            vh,
            index,
            route,
            edits,
        })
    }
}

/// `host:port` → `host`; IPv6 literals keep their brackets.
fn strip_port(h: &str) -> Option<&str> {
    // A byte search: `rsplit_once(':')`'s reverse char search cost ~160 instructions per
    // request. `:` is ASCII, so its byte position is a char boundary and `get` cannot fail.
    let i = h.bytes().rposition(|b| b == b':')?;
    host_before_port(h, h.get(..i)?, h.get(i + 1..)?)
}

/// `host` when `h` split at its last `:` into `host` and `port` is a host and a port.
fn host_before_port<'a>(h: &str, host: &'a str, port: &str) -> Option<&'a str> {
    if port.bytes().all(|c| c.is_ascii_digit()) && !host.ends_with(':') {
        if h.starts_with('[') && !host.ends_with(']') {
            return None;
        }
        Some(host)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        ClusterSpec, ForwardAction, HeaderMutations, PathMatch, RouteAction, RouteMatch,
    };
    use crate::http::codec::parse_request;

    /// A prefix route to `cluster` with nothing else set (shared with `edits` tests).
    pub(crate) fn route(prefix: &str, cluster: usize) -> Route {
        Route {
            name: String::new(),
            matcher: RouteMatch {
                path: PathMatch::Prefix(prefix.into()),
                case_sensitive: true,
                headers: Vec::new(),
                query_parameters: Vec::new(),
                grpc: false,
            },
            action: RouteAction::Forward(ForwardAction {
                cluster: ClusterSpec::Single(cluster),
                prefix_rewrite: None,
                timeout: None,
                regex_rewrite: None,
                host_rewrite: None,
                idle_timeout: None,
                retry_policy: None,
                upgrades: Vec::new(),
                cors: None,
                hash_policy: Vec::new(),
                mirrors: Vec::new(),
                body_limit: None,
                attempt_count: Default::default(),
            }),
            headers: HeaderMutations::default(),
            filter_configs: Vec::new(),
            decorator: None,
        }
    }

    fn vh(name: &str, domains: &[&str], cluster: usize) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: vec![route("/", cluster)],
            retry_policy: None,
            require_tls: crate::config::RequireTls::None,
            headers: HeaderMutations::default(),
            filter_configs: Vec::new(),
            cors: None,
        }
    }

    fn router() -> Router {
        Router::new(RouteConfig {
            name: "r".into(),
            virtual_hosts: vec![
                vh("any", &["*"], 0),
                vh("exact", &["api.example.com"], 1),
                vh("suffix", &["*.example.com"], 2),
                vh("longer", &["*.b.example.com"], 3),
                vh("prefix", &["api.*"], 4),
            ],
            headers: HeaderMutations::default(),
            most_specific_header_mutations_wins: false,
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
    fn strip_port_splits_on_the_last_colon_only() {
        assert_eq!(strip_port("a.com:80"), Some("a.com"));
        assert_eq!(strip_port("a.com:"), Some("a.com"));
        assert_eq!(strip_port("[::1]:80"), Some("[::1]"));
        assert_eq!(strip_port("[::1]"), None);
        assert_eq!(strip_port("::1"), None);
        assert_eq!(strip_port("\u{e9}:8\u{e9}"), None);
        assert_eq!(strip_port("\u{e9}\u{e9}:1"), Some("\u{e9}\u{e9}"));
        assert_eq!(strip_port("a.com"), None);
    }

    /// The split as it was before the byte search; `strip_port`'s must agree with it.
    fn strip_port_by_chars(h: &str) -> Option<&str> {
        let (host, port) = h.rsplit_once(':')?;
        host_before_port(h, host, port)
    }

    #[test]
    fn strip_port_agrees_with_the_char_split() {
        for h in [
            "",
            ":",
            "::",
            ":80",
            "80:",
            "a",
            "a:",
            "a:1",
            "a:b",
            "a:1:2",
            "a::1",
            "1.2.3.4:80",
            "[::1]",
            "[::1]:",
            "[::1]:80",
            "[::1]80",
            "[::1]:8a",
            "[a:80",
            "[a]:80",
            "::1",
            "fe80::1:80",
            "[fe80::1%eth0]:443",
            "\u{e9}:80",
            "\u{e9}:",
            ":\u{e9}",
            "\u{1f600}:1",
            "a.com:0080",
            "a.com: 80",
            "a.com:80 ",
            "[]:1",
            "[:1",
        ] {
            assert_eq!(strip_port(h), strip_port_by_chars(h), "{h:?}");
        }
    }

    #[test]
    fn no_wildcard_means_no_vhost() {
        let r = Router::new(RouteConfig {
            name: "r".into(),
            virtual_hosts: vec![vh("only", &["a.com"], 0)],
            headers: HeaderMutations::default(),
            most_specific_header_mutations_wins: false,
        });
        let found = |raw: &str| {
            let mut h = crate::http::codec::header_slots();
            let req = parse_request(raw.as_bytes(), &mut h).unwrap().unwrap();
            r.route(&req).is_some()
        };
        assert!(!found("GET / HTTP/1.1\r\nHost: b.com\r\n\r\n"));
        assert!(!found("GET / HTTP/1.0\r\n\r\n"));
        assert!(found("GET /x HTTP/1.1\r\nHost: a.com\r\n\r\n"));
    }
}
