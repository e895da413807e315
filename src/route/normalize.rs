//! Envoy's `normalize_path` and `merge_slashes`, applied to the request path before routing
//! (and so to the path sent upstream). A route that denies `/admin` must also deny
//! `/x/../admin`, `/./admin` and `//admin`.
//!
//! `normalize_path` follows RFC 3986 §6.2.2: percent-encoded unreserved characters are decoded
//! (so `%2e` is a dot and `%41` an `A`), hex digits of the remaining escapes are upper-cased,
//! and dot segments are removed (§5.2.4); a backslash is not a separator (Envoy's default).
//! `merge_slashes` collapses runs of `/`. The query is never touched.

/// The path with `%2F` and `%5C` (any case) decoded to `/` and `\`, as Envoy's
/// `path_with_escaped_slashes_action` unescapes them; `None` when there are none. The query
/// is untouched.
pub fn unescape_slashes(target: &str) -> Option<String> {
    let (path, query) = match target.find('?') {
        Some(i) => (target.get(..i)?, target.get(i..)?),
        None => (target, ""),
    };
    let b = path.as_bytes();
    let escaped = |i: usize| -> Option<char> {
        match (b.get(i)?, b.get(i + 1)?, b.get(i + 2)?) {
            (b'%', b'2', b'f' | b'F') => Some('/'),
            (b'%', b'5', b'c' | b'C') => Some('\\'),
            _ => None,
        }
    };
    if !(0..b.len()).any(|i| escaped(i).is_some()) {
        return None;
    }
    let mut out = String::with_capacity(target.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(c) = escaped(i) {
            out.push(c);
            i += 3;
        } else {
            let ch = path.get(i..)?.chars().next()?;
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out.push_str(query);
    Some(out)
}

/// The path after the HCM's normalisations, or `None` when nothing changes.
pub fn normalize(target: &str, normalize_path: bool, merge_slashes: bool) -> Option<String> {
    if !normalize_path && !merge_slashes {
        return None;
    }
    let (path, query) = match target.find('?') {
        Some(i) => (target.get(..i)?, target.get(i..)?),
        None => (target, ""),
    };
    if !path.starts_with('/') {
        return None; // `*` (OPTIONS) and anything else are left alone
    }
    let mut p = path.to_string();
    if normalize_path {
        p = remove_dot_segments(&decode_unreserved(&p));
    }
    if merge_slashes {
        let mut out = String::with_capacity(p.len());
        for c in p.chars() {
            if !(c == '/' && out.ends_with('/')) {
                out.push(c);
            }
        }
        p = out;
    }
    if p == path {
        return None;
    }
    p.push_str(query);
    Some(p)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` of unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) and upper-cases
/// the hex digits of every other escape (RFC 3986 §6.2.2.1–2).
fn decode_unreserved(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                let v = h * 16 + l;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                }
                i += 3;
                continue;
            }
        }
        // The parser admits only printable ASCII in a target, so bytes are chars here.
        out.push(char::from(c));
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 on an absolute path: `.` segments go, `..` removes the segment before it
/// (never past the root).
fn remove_dot_segments(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = p.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut r = String::with_capacity(p.len());
    for s in &out {
        r.push('/');
        r.push_str(s);
    }
    if trailing || r.is_empty() {
        r.push('/');
    }
    r
}

#[cfg(test)]
mod tests {
    use super::{normalize, unescape_slashes};

    fn n(p: &str) -> String {
        normalize(p, true, false).unwrap_or_else(|| p.to_string())
    }

    #[test]
    fn dot_segments_and_escapes() {
        assert_eq!(n("/x/../admin"), "/admin");
        assert_eq!(n("/./admin"), "/admin");
        assert_eq!(n("/a/b/c/./../../g"), "/a/g");
        assert_eq!(n("/../../a"), "/a");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/%2e%2E/admin"), "/admin");
        assert_eq!(n("/x/%2e%2e/admin?q=/../x"), "/admin?q=/../x");
        assert_eq!(n("/%41dmin%2f%3a"), "/Admin%2F%3A");
        assert_eq!(n("/a//b"), "/a//b");
        assert_eq!(normalize("/a/b", true, true), None);
        assert_eq!(normalize("*", true, true), None);
        assert_eq!(normalize("/x", false, false), None);
    }

    #[test]
    fn escaped_slashes_are_unescaped_in_the_path_only() {
        assert_eq!(unescape_slashes("/a/b"), None);
        assert_eq!(unescape_slashes("/a?x=%2F"), None);
        assert_eq!(
            unescape_slashes("/a%2fb%2Fc%5cd%5C?x=%2F").as_deref(),
            Some("/a/b/c\\d\\?x=%2F")
        );
        assert_eq!(unescape_slashes("/%2").as_deref(), None);
        assert_eq!(unescape_slashes("/é%2f").as_deref(), Some("/é/"));
    }

    #[test]
    fn merged_slashes() {
        let m = |p: &str| normalize(p, false, true).unwrap_or_else(|| p.to_string());
        assert_eq!(m("//admin"), "/admin");
        assert_eq!(m("/a///b//c?x=//y"), "/a/b/c?x=//y");
        assert_eq!(
            normalize("//x/..//admin", true, true).as_deref(),
            Some("/admin")
        );
    }
}
