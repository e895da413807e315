//! The admin endpoints, as Envoy names and shapes them.

use std::fmt::Write;

use super::{Action, View, HOT_RESTART_VERSION, MAX_REQUEST};
use crate::context::Ctx;
use crate::http::codec::reason_phrase;
use crate::stats::{json_str, render_json, render_prometheus, render_text, ServerState};

/// A serialised response and what the proxy must do after sending it.
pub struct Reply {
    pub bytes: Vec<u8>,
    pub action: Option<Action>,
    /// The status and body size, for the admin access log.
    pub status: u16,
    pub body_len: usize,
}

/// Every endpoint: path, POST-only, help text (the 404 page lists them, as Envoy's does).
const ENDPOINTS: &[(&str, bool, &str)] = &[
    ("/clusters", false, "upstream cluster status"),
    ("/config_dump", false, "dump current Envoy configs"),
    ("/drain_listeners", true, "drain listeners"),
    (
        "/healthcheck/fail",
        true,
        "cause the server to fail health checks",
    ),
    (
        "/healthcheck/ok",
        true,
        "cause the server to pass health checks",
    ),
    (
        "/hot_restart_version",
        false,
        "print the hot restart compatibility version",
    ),
    ("/listeners", false, "print listener info"),
    ("/quitquitquit", true, "exit the server"),
    (
        "/ready",
        false,
        "print server state, return 200 if LIVE, otherwise return 503",
    ),
    (
        "/server_info",
        false,
        "print server version/status information",
    ),
    (
        "/stats",
        false,
        "print server stats (?format=json|prometheus, ?filter=REGEX)",
    ),
    (
        "/stats/prometheus",
        false,
        "print server stats in prometheus format",
    ),
];

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";
const PROM: &str = "text/plain; version=0.0.4; charset=UTF-8";

fn reply(status: u16, ctype: &str, body: &str, extra: &str) -> Reply {
    let mut b = String::with_capacity(body.len() + 160);
    let _ = write!(
        b,
        "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n{extra}cache-control: no-cache, max-age=0\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    );
    Reply {
        bytes: b.into_bytes(),
        action: None,
        status,
        body_len: body.len(),
    }
}

/// Parses a complete request in `buf` and answers it; None while more bytes are needed.
pub fn request(
    buf: &[u8],
    ctx: &mut Ctx,
    node: &(String, String),
    dump: &str,
    view: &View<'_>,
) -> Option<Reply> {
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hdrs);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_REQUEST => return None,
        Ok(httparse::Status::Partial) => return Some(reply(413, TEXT, "request too large\n", "")),
        Err(_) => return Some(reply(400, TEXT, "bad request\n", "")),
    };
    let body_len = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    if body_len > MAX_REQUEST {
        return Some(reply(413, TEXT, "request too large\n", ""));
    }
    if buf.len() < head_len + body_len {
        return None;
    }
    let method = req.method.unwrap_or("GET");
    if let Some(why) = foreign(method, req.headers) {
        log::warn!("admin: refused a request: {why}");
        return Some(reply(403, TEXT, &format!("{why}\n"), ""));
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(route(method, path, query, ctx, node, dump, view))
}

/// Why a request must be refused as a web page's rather than an operator's. Only requests
/// a browser made are judged (it sends `Sec-Fetch-*` metadata, an `Origin`, or a `Mozilla/`
/// user agent; curl, Prometheus, probes and scripts send none of these), so tools reach the
/// admin by any name. From a browser: a `Host` that is a DNS name other than `localhost` is
/// refused (DNS rebinding: a page on the attacker's name that resolves to us), and a
/// state-changing request must be same-origin (`Origin` equal to `Host`, or `Sec-Fetch-Site`
/// same-origin/none), so a cross-site form cannot POST `/quitquitquit`.
fn foreign(method: &str, headers: &[httparse::Header<'_>]) -> Option<&'static str> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let browser = headers.iter().any(|h| {
        h.name
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("sec-fetch-"))
    }) || value("origin").is_some()
        || value("user-agent").is_some_and(|u| u.starts_with("Mozilla/"));
    if !browser {
        return None;
    }
    let host = value("host");
    if !host.is_some_and(local_authority) {
        return Some("admin: a browser may reach the admin only as an IP address or localhost");
    }
    if method != "GET" && method != "HEAD" {
        if let Some(o) = value("origin") {
            let same = o
                .split_once("://")
                .is_some_and(|(_, rest)| Some(rest.trim_end_matches('/')) == host);
            if !same {
                return Some("admin: cross-origin request refused");
            }
        }
        if value("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
            return Some("admin: cross-site request refused");
        }
    }
    None
}

/// `localhost`, an IPv4 address or a bracketed IPv6 address, with an optional port.
fn local_authority(a: &str) -> bool {
    let host = match a.strip_prefix('[') {
        Some(rest) => {
            return rest.split_once(']').is_some_and(|(ip, port)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty() || port.strip_prefix(':').is_some_and(is_port))
            })
        }
        None => match a.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return false,
            None => a,
        },
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// The value of query parameter `k` (percent-decoded), if present.
fn param(query: &str, k: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(n, _)| *n == k)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                // Not an escape (from_str_radix would also have taken "+1"): keep it as text.
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One hex digit's value.
fn hex(c: Option<&u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn not_found() -> Reply {
    let mut b = String::from("invalid path. admin commands are:\n");
    for (p, post, help) in ENDPOINTS {
        let _ = writeln!(b, "  {p}{}: {help}", if *post { " (POST)" } else { "" });
    }
    reply(404, TEXT, &b, "")
}

fn route(
    method: &str,
    path: &str,
    query: &str,
    ctx: &mut Ctx,
    node: &(String, String),
    dump: &str,
    view: &View<'_>,
) -> Reply {
    let Some(&(_, post_only, _)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path) else {
        return not_found();
    };
    if post_only && method != "POST" {
        return reply(
            405,
            TEXT,
            "This endpoint requires POST\n",
            "allow: POST\r\n",
        );
    }
    ctx.stats.refresh(ctx.now(), ctx.epoch());
    match path {
        "/stats" => stats(query, ctx),
        "/stats/prometheus" => reply(200, PROM, &render_prometheus(&ctx.stats.store), ""),
        "/server_info" => reply(200, JSON, &server_info(ctx, node, view), ""),
        "/ready" => {
            let st = ctx.stats.state();
            let code = if st == ServerState::Live { 200 } else { 503 };
            reply(code, TEXT, &format!("{}\n", st.as_str()), "")
        }
        "/healthcheck/fail" => {
            ctx.stats.set_healthcheck_failed(true);
            reply(200, TEXT, "OK\n", "")
        }
        "/healthcheck/ok" => {
            ctx.stats.set_healthcheck_failed(false);
            reply(200, TEXT, "OK\n", "")
        }
        "/listeners" => listeners(query, view),
        "/clusters" => reply(200, TEXT, &clusters(ctx), ""),
        "/config_dump" => reply(200, JSON, dump, ""),
        "/hot_restart_version" => reply(200, TEXT, &format!("{HOT_RESTART_VERSION}\n"), ""),
        "/drain_listeners" => Reply {
            action: Some(Action::DrainListeners),
            ..reply(200, TEXT, "OK\n", "")
        },
        "/quitquitquit" => Reply {
            action: Some(Action::Quit),
            ..reply(200, TEXT, "OK\n", "")
        },
        _ => not_found(),
    }
}

fn stats(query: &str, ctx: &Ctx) -> Reply {
    let filter = match param(query, "filter").filter(|f| !f.is_empty()) {
        Some(f) => match regex::Regex::new(&f) {
            Ok(r) => Some(r),
            Err(e) => return reply(400, TEXT, &format!("invalid regex: {e}\n"), ""),
        },
        None => None,
    };
    match param(query, "format").as_deref() {
        Some("json") => reply(
            200,
            JSON,
            &render_json(&ctx.stats.store, filter.as_ref()),
            "",
        ),
        Some("prometheus") => reply(200, PROM, &render_prometheus(&ctx.stats.store), ""),
        None | Some("text") => reply(
            200,
            TEXT,
            &render_text(&ctx.stats.store, filter.as_ref()),
            "",
        ),
        Some(other) => reply(400, TEXT, &format!("unsupported format {other:?}\n"), ""),
    }
}

fn duration_s(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

fn server_info(ctx: &Ctx, node: &(String, String), view: &View<'_>) -> String {
    let o = view.opts;
    let mut b = String::from("{\"version\":");
    json_str(&mut b, &format!("baton/{}/RELEASE", crate::VERSION));
    b.push_str(",\"state\":");
    json_str(&mut b, ctx.stats.state().as_str());
    b.push_str(",\"hot_restart_version\":");
    json_str(&mut b, HOT_RESTART_VERSION);
    b.push_str(",\"node\":{\"id\":");
    json_str(&mut b, &node.0);
    b.push_str(",\"cluster\":");
    json_str(&mut b, &node.1);
    b.push_str("},\"command_line_options\":{\"config_path\":");
    json_str(
        &mut b,
        &o.config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    b.push_str(",\"config_yaml\":");
    json_str(&mut b, o.config_yaml.as_deref().unwrap_or(""));
    b.push_str(",\"service_cluster\":");
    json_str(&mut b, &o.service_cluster);
    b.push_str(",\"service_node\":");
    json_str(&mut b, &o.service_node);
    let _ = write!(
        b,
        ",\"restart_epoch\":{},\"hot_restart_file\":",
        ctx.epoch()
    );
    json_str(
        &mut b,
        &o.hot_restart_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    b.push_str(",\"drain_time\":");
    json_str(&mut b, &duration_s(o.drain_time));
    b.push_str(",\"parent_shutdown_time\":");
    json_str(
        &mut b,
        &o.parent_shutdown_time.map(duration_s).unwrap_or_default(),
    );
    b.push_str(",\"log_level\":");
    json_str(&mut b, o.log_level.as_deref().unwrap_or("info"));
    b.push_str(",\"mode\":");
    json_str(
        &mut b,
        if o.mode == crate::cli::Mode::Validate {
            "Validate"
        } else {
            "Serve"
        },
    );
    b.push_str(",\"concurrency\":1,\"argv\":[");
    for (i, a) in o.argv.iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        json_str(&mut b, a);
    }
    b.push_str("]},\"uptime_current_epoch\":");
    json_str(&mut b, &duration_s(ctx.stats.uptime(ctx.now())));
    b.push_str(",\"uptime_all_epochs\":");
    json_str(&mut b, &duration_s(ctx.stats.uptime_all_epochs()));
    b.push_str("}\n");
    b
}

/// Envoy's text form `name::address`, or `?format=json` with `listener_statuses`.
fn listeners(query: &str, view: &View<'_>) -> Reply {
    if param(query, "format").as_deref() == Some("json") {
        let mut b = String::from("{\"listener_statuses\":[");
        for (i, (name, addr)) in view.bound.iter().enumerate() {
            if i > 0 {
                b.push(',');
            }
            b.push_str("{\"name\":");
            json_str(&mut b, name);
            if let Some(a) = addr {
                b.push_str(",\"local_address\":{\"socket_address\":{\"address\":");
                json_str(&mut b, &a.ip().to_string());
                let _ = write!(b, ",\"port_value\":{}}}}}", a.port());
            }
            b.push('}');
        }
        b.push_str("]}\n");
        return reply(200, JSON, &b, "");
    }
    let mut b = String::new();
    for (name, addr) in &view.bound {
        match addr {
            Some(a) => {
                let _ = writeln!(b, "{name}::{a}");
            }
            None => {
                let _ = writeln!(b, "{name}::closed");
            }
        }
    }
    reply(200, TEXT, &b, "")
}

/// Envoy's `/clusters` text: cluster-level lines, then one line per host and counter.
fn clusters(ctx: &Ctx) -> String {
    let mut b = String::new();
    for cl in &ctx.clusters {
        let n = &cl.cfg.name;
        let _ = writeln!(b, "{n}::observability_name::{n}");
        // The circuit-breaker limits of each priority, as Envoy lists them.
        for (p, br) in ["default_priority", "high_priority"]
            .iter()
            .zip(&cl.breakers)
        {
            let t = &br.limits;
            for (k, v) in [
                ("max_connections", t.max_connections),
                ("max_pending_requests", t.max_pending_requests),
                ("max_requests", t.max_requests),
                ("max_retries", t.max_retries),
            ] {
                let _ = writeln!(b, "{n}::{p}::{k}::{v}");
            }
        }
        let _ = writeln!(b, "{n}::added_via_api::false");
        for h in &cl.hosts {
            let a = h.addr;
            let s = &h.stats;
            let host = cl.hostname_of(a).unwrap_or_default();
            let loc = cl.locality_of(h);
            let l = |f: fn(&crate::config::Locality) -> &str| loc.map_or("", f).to_string();
            for (k, v) in [
                ("cx_active", s.cx_active.to_string()),
                ("cx_connect_fail", s.cx_connect_fail.to_string()),
                ("cx_total", s.cx_total.to_string()),
                ("rq_active", h.active_rq.to_string()),
                ("rq_error", s.rq_error.to_string()),
                ("rq_success", s.rq_success.to_string()),
                ("rq_timeout", s.rq_timeout.to_string()),
                ("rq_total", s.rq_total.to_string()),
                ("hostname", host.to_string()),
                ("health_flags", h.flags()),
                ("weight", h.weight.to_string()),
                ("region", l(|l| &l.region)),
                ("zone", l(|l| &l.zone)),
                ("sub_zone", l(|l| &l.sub_zone)),
                ("canary", "false".to_string()),
                ("priority", loc.map_or(0, |l| l.priority).to_string()),
            ] {
                let _ = writeln!(b, "{n}::{a}::{k}::{v}");
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            param("format=json&filter=a%2Eb+c", "filter").as_deref(),
            Some("a.b c")
        );
        assert_eq!(param("format=json", "format").as_deref(), Some("json"));
        assert_eq!(param("usedonly", "usedonly").as_deref(), Some(""));
        assert_eq!(param("", "filter"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%+1%4"), "% 1%4");
        assert_eq!(percent_decode("%e9%C3%A9"), "\u{fffd}\u{e9}");
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    fn h<'a>(n: &'a str, v: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name: n,
            value: v.as_bytes(),
        }
    }

    #[test]
    fn browsers_are_refused_operators_are_not() {
        const UA: &str = "Mozilla/5.0 (X11; Linux x86_64)";
        // Tools: any name, any method.
        assert_eq!(foreign("GET", &[]), None);
        assert_eq!(
            foreign("GET", &[h("Host", "envoy-admin.internal:9901")]),
            None
        );
        assert_eq!(
            foreign("POST", &[h("Host", "admin"), h("User-Agent", "curl/8.5")]),
            None
        );
        // Browsers: IP literals and localhost only.
        let get = |host: &str| foreign("GET", &[h("Host", host), h("User-Agent", UA)]);
        assert_eq!(get("127.0.0.1:9901"), None);
        assert_eq!(get("localhost:9901"), None);
        assert_eq!(get("[::1]:9901"), None);
        assert!(get("evil.example:9901").is_some());
        assert!(get("127.0.0.1.evil.example").is_some());
        assert!(
            foreign("GET", &[h("Sec-Fetch-Mode", "cors")]).is_some(),
            "no Host"
        );
        // Browsers: state changes only same-origin.
        let post = |extra: &[httparse::Header<'_>]| {
            let mut v = vec![h("Host", "127.0.0.1:9901"), h("User-Agent", UA)];
            v.extend_from_slice(extra);
            foreign("POST", &v)
        };
        assert_eq!(post(&[]), None);
        assert_eq!(post(&[h("Origin", "http://127.0.0.1:9901")]), None);
        assert!(post(&[h("Origin", "http://evil.example")]).is_some());
        assert!(post(&[h("Origin", "null")]).is_some());
        assert!(post(&[h("Sec-Fetch-Site", "cross-site")]).is_some());
        assert_eq!(post(&[h("Sec-Fetch-Site", "same-origin")]), None);
    }
}
