//! Does a route's `match` fit a request? Path (prefix, exact path, whole-path regex), then
//! header matchers and query-parameter matchers, all of which must hold (Envoy's AND).

use crate::config::{
    HeaderMatchRule, HeaderMatcher, PathMatch, QueryParameterMatcher, QueryParameterRule,
    RouteMatch, StringMatch, StringMatchKind,
};
use crate::http::codec::RequestHead;

/// The whole route match; cheap checks (path) first.
pub fn matches(m: &RouteMatch, req: &RequestHead<'_>) -> bool {
    // Envoy: `connect_matcher` takes CONNECT requests only, and only it takes them.
    if (m.path == PathMatch::Connect) != (req.method == "CONNECT") {
        return false;
    }
    path_matches(&m.path, m.case_sensitive, req.path)
        && (!m.grpc || is_grpc(req))
        && m.headers.iter().all(|h| header_matches(h, req))
        && (m.query_parameters.is_empty() || query_matches(&m.query_parameters, req.path))
}

/// A gRPC request, as Envoy's `Grpc::Common::hasGrpcContentType` (source/common/grpc/common.cc)
/// says: content-type exactly `application/grpc` or starting `application/grpc+`
/// (`application/grpc-web` is not gRPC).
fn is_grpc(req: &RequestHead<'_>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .is_some_and(|h| {
            let v = crate::http::codec::trim(h.value);
            v.starts_with(GRPC) && matches!(v.get(GRPC.len()), None | Some(b'+'))
        })
}

/// Compares bytes, so a multi-byte character in a peer's string cannot cause a bad cut.
fn starts_with_case(s: &str, p: &str, case_sensitive: bool) -> bool {
    match s.as_bytes().get(..p.len()) {
        Some(head) if case_sensitive => head == p.as_bytes(),
        Some(head) => head.eq_ignore_ascii_case(p.as_bytes()),
        None => false,
    }
}

/// The path without its query string.
pub fn bare_path(path: &str) -> &str {
    path.split_once('?').map_or(path, |(b, _)| b)
}

/// Envoy's semantics: `prefix` matches the start of the full :path (query included); `path`
/// must equal the path with the query string removed; `safe_regex` must match all of it.
pub fn path_matches(m: &PathMatch, case_sensitive: bool, path: &str) -> bool {
    match m {
        PathMatch::Prefix(p) => starts_with_case(path, p, case_sensitive),
        PathMatch::Path(p) => {
            let bare = bare_path(path);
            bare.len() == p.len() && starts_with_case(bare, p, case_sensitive)
        }
        PathMatch::SafeRegex(r) => r.is_full_match(bare_path(path)),
        PathMatch::Connect => true,
    }
}

/// Envoy's StringMatcher; `ignore_case` does not apply to regexes.
pub fn string_matches(m: &StringMatch, v: &str) -> bool {
    let ic = m.ignore_case;
    match &m.kind {
        StringMatchKind::Exact(s) => {
            if ic {
                v.eq_ignore_ascii_case(s)
            } else {
                v == s
            }
        }
        StringMatchKind::Prefix(s) => starts_with_case(v, s, !ic),
        StringMatchKind::Suffix(s) => {
            let tail = v
                .len()
                .checked_sub(s.len())
                .and_then(|at| v.as_bytes().get(at..));
            match tail {
                Some(t) if ic => t.eq_ignore_ascii_case(s.as_bytes()),
                Some(t) => t == s.as_bytes(),
                None => false,
            }
        }
        StringMatchKind::Contains(s) => {
            if ic {
                v.to_ascii_lowercase().contains(&s.to_ascii_lowercase())
            } else {
                v.contains(s.as_str())
            }
        }
        StringMatchKind::SafeRegex(r) => r.is_full_match(v),
    }
}

/// A request header by lower-cased name, pseudo-headers included; several values are joined
/// with "," as Envoy does for matching.
pub fn header_value(req: &RequestHead<'_>, name: &str) -> Option<String> {
    let pseudo = match name {
        ":path" => Some(req.path),
        ":method" => Some(req.method),
        ":authority" | "host" => req.host,
        ":scheme" => Some(if req.secure { "https" } else { "http" }),
        _ => None,
    };
    if name.starts_with(':') || name == "host" {
        return pseudo.map(str::to_string);
    }
    let mut out: Option<String> = None;
    for h in req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
    {
        let v = String::from_utf8_lossy(h.value);
        match &mut out {
            None => out = Some(v.into_owned()),
            Some(o) => {
                o.push(',');
                o.push_str(&v);
            }
        }
    }
    out
}

/// Envoy's header matching: an absent header matches only `present_match: false` (or an
/// inverted `present_match: true`); value rules never match an absent header, inverted or not.
pub fn header_matches(m: &HeaderMatcher, req: &RequestHead<'_>) -> bool {
    value_matches(m, header_value(req, &m.name).as_deref())
}

/// `header_matches` on a header's value (`None`: the request has no such header); also what
/// an access-log `header_filter` checks.
pub fn value_matches(m: &HeaderMatcher, v: Option<&str>) -> bool {
    let Some(v) = v else {
        return matches!(m.rule, HeaderMatchRule::Present(p) if p == m.invert);
    };
    let hit = match &m.rule {
        HeaderMatchRule::Present(p) => *p,
        HeaderMatchRule::Value(s) => string_matches(s, v),
        HeaderMatchRule::Range { start, end } => v
            .trim()
            .parse::<i64>()
            .is_ok_and(|n| *start <= n && n < *end),
    };
    hit != m.invert
}

/// The first value of query parameter `name` in `path`, as sent (not percent-decoded).
pub fn query_value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The value of cookie `name` in the request's Cookie headers (surrounding quotes removed, as
/// Envoy's cookie parser does).
pub fn cookie_value<'a>(req: &RequestHead<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
}

/// The request's hash under a route's `hash_policy` (Envoy's HashPolicyImpl): each key found
/// is xxHash64'd and folded in as `rotl(hash, 1) ^ key`; a terminal entry that has a hash ends
/// it. None when no key is found (the balancer then draws a random one).
pub fn request_hash(
    policy: &[crate::config::HashPolicy],
    req: &RequestHead<'_>,
    peer: std::net::SocketAddr,
) -> Option<u64> {
    use crate::cluster::hash::xxh64;
    use crate::config::HashKey;
    let mut hash: Option<u64> = None;
    for p in policy {
        let key = match &p.key {
            HashKey::Header(n) if n == "host" || n == ":authority" => {
                req.host.map(|h| xxh64(h.as_bytes(), 0))
            }
            HashKey::Header(n) if n.starts_with(':') => {
                header_value(req, n).map(|v| xxh64(v.as_bytes(), 0))
            }
            HashKey::Header(n) => {
                // Every value, sorted, each hashed with the previous hash as the seed.
                let mut values: Vec<&[u8]> = req
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(n))
                    .map(|h| h.value)
                    .collect();
                values.sort_unstable();
                (!values.is_empty()).then(|| values.iter().fold(0, |s, v| xxh64(v, s)))
            }
            // An empty cookie gives no key (Envoy's CookieHashMethod).
            HashKey::Cookie(n) => cookie_value(req, n)
                .filter(|v| !v.is_empty())
                .map(|v| xxh64(v.as_bytes(), 0)),
            HashKey::SourceIp => Some(xxh64(peer.ip().to_string().as_bytes(), 0)),
            HashKey::QueryParameter(n) => query_value(req.path, n).map(|v| xxh64(v.as_bytes(), 0)),
        };
        if let Some(k) = key {
            hash = Some(hash.map_or(0, |h| h.rotate_left(1)) ^ k);
        }
        if p.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

/// Query parameters as sent (not percent-decoded, as Envoy's route matcher sees them); for a
/// repeated name the first value counts.
fn query_matches(ms: &[QueryParameterMatcher], path: &str) -> bool {
    let first = |name: &str| query_value(path, name);
    ms.iter().all(|m| match (first(&m.name), &m.rule) {
        (None, _) => false,
        (Some(_), QueryParameterRule::Present) => true,
        (Some(v), QueryParameterRule::Value(s)) => string_matches(s, v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Regex;
    use crate::http::codec::parse_request;

    fn with_req(raw: &str, f: impl FnOnce(&RequestHead<'_>)) {
        let mut h = crate::http::codec::header_slots();
        let r = parse_request(raw.as_bytes(), &mut h).unwrap().unwrap();
        f(&r)
    }

    fn hm(name: &str, rule: HeaderMatchRule, invert: bool) -> HeaderMatcher {
        HeaderMatcher {
            name: name.into(),
            rule,
            invert,
        }
    }

    fn sm(kind: StringMatchKind, ignore_case: bool) -> HeaderMatchRule {
        HeaderMatchRule::Value(StringMatch { kind, ignore_case })
    }

    #[test]
    fn paths() {
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
        let re = PathMatch::SafeRegex(Regex::new("/v[0-9]+/.*", None).unwrap());
        assert!(path_matches(&re, true, "/v12/x?y=1"));
        assert!(!path_matches(&re, true, "/x/v1/"));
    }

    /// Header values can carry non-ASCII (obs-text, decoded lossily); comparisons are on
    /// bytes, so a pattern length that lands inside a character is just a mismatch.
    #[test]
    fn non_ascii_values_compare_without_cutting_characters() {
        let m = |kind, ic, v: &str| {
            string_matches(
                &StringMatch {
                    kind,
                    ignore_case: ic,
                },
                v,
            )
        };
        assert!(!m(StringMatchKind::Prefix("ab".into()), true, "\u{e9}"));
        assert!(!m(StringMatchKind::Prefix("a".into()), false, "\u{e9}x"));
        assert!(m(StringMatchKind::Prefix("\u{e9}".into()), true, "\u{e9}x"));
        assert!(!m(StringMatchKind::Suffix("b".into()), true, "\u{e9}"));
        assert!(!m(StringMatchKind::Suffix("xx".into()), false, "a\u{e9}"));
        assert!(m(
            StringMatchKind::Suffix("\u{e9}".into()),
            true,
            "caf\u{e9}"
        ));
        assert!(!m(StringMatchKind::Suffix("long".into()), true, "a"));
        assert!(!path_matches(&PathMatch::Prefix("/a".into()), false, "/"));
    }

    #[test]
    fn grpc_is_its_content_type_as_envoy_says() {
        let ct = |v: &str, want: bool| {
            let raw = format!("POST /s/M HTTP/1.1\r\nHost: h\r\nContent-Type: {v}\r\n\r\n");
            with_req(&raw, |r| assert_eq!(is_grpc(r), want, "{v}"));
        };
        ct("application/grpc", true);
        ct("application/grpc+proto", true);
        ct("application/grpc-web", false);
        ct("application/grpcx", false);
        ct("text/plain", false);
        with_req("POST / HTTP/1.1\r\nHost: h\r\n\r\n", |r| {
            assert!(!is_grpc(r))
        });
    }

    #[test]
    fn headers_and_absence() {
        let raw = "GET /p?a=1&b=two&a=3 HTTP/1.1\r\nHost: h\r\nX-V: 5\r\nX-L: a\r\nX-L: B\r\n\r\n";
        with_req(raw, |r| {
            let exact = |v: &str| sm(StringMatchKind::Exact(v.into()), false);
            assert!(header_matches(&hm("x-l", exact("a,B"), false), r));
            assert!(header_matches(
                &hm("x-l", sm(StringMatchKind::Suffix("b".into()), true), false),
                r
            ));
            assert!(header_matches(
                &hm("x-v", HeaderMatchRule::Range { start: 1, end: 6 }, false),
                r
            ));
            assert!(!header_matches(
                &hm("x-v", HeaderMatchRule::Range { start: 1, end: 5 }, false),
                r
            ));
            assert!(header_matches(&hm(":method", exact("GET"), false), r));
            assert!(header_matches(
                &hm("x-none", HeaderMatchRule::Present(false), false),
                r
            ));
            assert!(header_matches(
                &hm("x-none", HeaderMatchRule::Present(true), true),
                r
            ));
            assert!(!header_matches(&hm("x-none", exact("q"), true), r));
            assert!(header_matches(&hm("x-v", exact("6"), true), r));
            let q = |name: &str, rule| QueryParameterMatcher {
                name: name.into(),
                rule,
            };
            assert!(query_matches(
                &[q("a", QueryParameterRule::Present)],
                r.path
            ));
            assert!(query_matches(
                &[q(
                    "a",
                    QueryParameterRule::Value(StringMatch {
                        kind: StringMatchKind::Exact("1".into()),
                        ignore_case: false
                    })
                )],
                r.path
            ));
            assert!(!query_matches(
                &[q("c", QueryParameterRule::Present)],
                r.path
            ));
        });
    }

    #[test]
    fn the_request_hash_folds_the_keys_found_as_envoy_does() {
        use crate::cluster::hash::xxh64;
        use crate::config::{HashKey, HashPolicy};
        let pol = |key, terminal| HashPolicy { key, terminal };
        let peer: std::net::SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let raw = "GET /p?a=1&q=v2&q=v3 HTTP/1.1\r\nHost: h.test\r\nX-U: b\r\nx-u: a\r\nCookie: x=1; sid=\"s1\"; none=\r\n\r\n";
        with_req(raw, |r| {
            let h = |p: &[HashPolicy]| request_hash(p, r, peer);
            let header = pol(HashKey::Header("x-u".into()), false);
            // Repeated header: the sorted values chained through the seed.
            assert_eq!(
                h(std::slice::from_ref(&header)),
                Some(xxh64(b"b", xxh64(b"a", 0)))
            );
            assert_eq!(
                h(&[pol(HashKey::Header("host".into()), false)]),
                Some(xxh64(b"h.test", 0))
            );
            assert_eq!(
                h(&[pol(HashKey::Cookie("sid".into()), false)]),
                Some(xxh64(b"s1", 0))
            );
            assert_eq!(h(&[pol(HashKey::Cookie("none".into()), false)]), None);
            assert_eq!(
                h(&[pol(HashKey::SourceIp, false)]),
                Some(xxh64(b"10.1.2.3", 0))
            );
            assert_eq!(
                h(&[pol(HashKey::QueryParameter("q".into()), false)]),
                Some(xxh64(b"v2", 0))
            );
            // Keys not found add nothing; none found is no hash.
            let missing = pol(HashKey::Cookie("nope".into()), false);
            assert_eq!(h(std::slice::from_ref(&missing)), None);
            let ip = xxh64(b"10.1.2.3", 0);
            let q = xxh64(b"v2", 0);
            let both = [
                missing,
                pol(HashKey::SourceIp, false),
                pol(HashKey::QueryParameter("q".into()), false),
            ];
            assert_eq!(h(&both), Some(ip.rotate_left(1) ^ q));
            // A terminal entry that found its key ends the hash.
            let term = [
                pol(HashKey::SourceIp, true),
                pol(HashKey::QueryParameter("q".into()), false),
            ];
            assert_eq!(h(&term), Some(ip));
        });
    }
}
