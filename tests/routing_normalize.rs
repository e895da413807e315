//! `normalize_path` and `merge_slashes` are applied before routing (and to the path sent
//! upstream): a route that answers `/admin` with 403 cannot be walked around with dot
//! segments, encoded dots or doubled slashes. Without them, as in Envoy, the path is routed as
//! written.

mod common;
mod routing_support;

use common::*;
use routing_support::*;

const ROUTES: &str = "  - match: {prefix: /admin}
    direct_response: {status: 403, body: {inline_string: denied}}
  - match: {prefix: /}
    route: {cluster: svc}
";

fn start(normalize: bool) -> (Baton, Upstream) {
    start_with(normalize, "")
}

/// `start` with `hcm_extra` (connection-manager lines, 10 columns deep) added.
fn start_with(normalize: bool, hcm_extra: &str) -> (Baton, Upstream) {
    let up = Upstream::start("up");
    let mut hcm = String::from("          stat_prefix: ingress_http\n");
    if normalize {
        hcm.push_str("          normalize_path: true\n          merge_slashes: true\n");
    }
    hcm.push_str(hcm_extra);
    let yaml = config(
        free_port(),
        &single_vhost(ROUTES),
        &[cluster("svc", &[up.port()])],
    )
    .replacen("          stat_prefix: ingress_http\n", &hcm, 1);
    (Baton::start(&yaml), up)
}

#[test]
fn normalized_paths_cannot_walk_around_a_route() {
    let (b, up) = start(true);
    for path in [
        "/admin",
        "/x/../admin",
        "/./admin",
        "//admin",
        "/x/%2e%2e/admin",
        "/x/%2E%2E//admin/",
        "/%61dmin",
    ] {
        let r = fetch(b.port, "h", path, "");
        assert_eq!(r.status(), 403, "{path} reached the upstream");
    }
    assert_eq!(up.requests(), 0, "a denied path reached the upstream");
    // Other paths go upstream normalised (the query untouched).
    assert_eq!(
        fetch(b.port, "h", "/a/./b/../c//d?x=/../y", "").status(),
        200
    );
    assert_eq!(up.seen()[0].target, "/a/c/d?x=/../y");
}

#[test]
fn without_the_settings_paths_are_routed_as_written() {
    let (b, up) = start(false);
    assert_eq!(fetch(b.port, "h", "/admin", "").status(), 403);
    assert_eq!(fetch(b.port, "h", "//admin", "").status(), 200);
    assert_eq!(up.seen()[0].target, "//admin");
}

#[test]
fn the_access_log_shows_the_normalized_path() {
    // Envoy's access log reads the header map the connection manager normalised: %REQ(:PATH)%
    // is what was routed and sent upstream, for a forwarded request and a local reply alike.
    let log = common::baton::log_path("normalize");
    let (b, up) = start_with(
        true,
        &common::yaml::file_access_log(
            &log.display().to_string(),
            "%RESPONSE_CODE% %REQ(:PATH)% %REQ_WITHOUT_QUERY(:PATH)%\\n",
        ),
    );
    assert_eq!(fetch(b.port, "h", "//a//./b?q=//x", "").status(), 200);
    assert_eq!(fetch(b.port, "h", "/x/%2e%2e//admin", "").status(), 403);
    assert_eq!(fetch(b.port, "h", "/plain?q=1", "").status(), 200);
    assert_eq!(up.seen()[0].target, "/a/b?q=//x");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 || std::time::Instant::now() > end {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        lines,
        "200 /a/b?q=//x /a/b\n403 /admin /admin\n200 /plain?q=1 /plain\n"
    );
}

#[test]
fn escaped_slashes_are_kept_refused_redirected_or_unescaped_as_configured() {
    // Default: forwarded as written.
    let (b, up) = start(false);
    assert_eq!(fetch(b.port, "h", "/a%2fb", "").status(), 200);
    assert_eq!(up.seen()[0].target, "/a%2fb");
    drop(b);
    let action = |a: &str| format!("          path_with_escaped_slashes_action: {a}\n");
    let (b, up) = start_with(true, &action("REJECT_REQUEST"));
    assert_eq!(fetch(b.port, "h", "/a%2fb", "").status(), 400);
    assert_eq!(
        fetch(b.port, "h", "/a/b?q=%2f", "").status(),
        200,
        "the query is not the path"
    );
    assert_eq!(up.requests(), 1);
    drop(b);
    let (b, up) = start_with(true, &action("UNESCAPE_AND_REDIRECT"));
    let r = fetch(b.port, "h", "/x%2F..%2Fadmin%5Cz?q=1", "");
    assert_eq!(r.status(), 307);
    let loc = r.header("location").unwrap_or_default().to_string();
    assert_eq!(loc, "/admin\\z?q=1", "unescaped, then normalised");
    assert_eq!(up.requests(), 0);
    drop(b);
    let (b, up) = start_with(true, &action("UNESCAPE_AND_FORWARD"));
    // Unescaped before routing: the admin route's 403 cannot be walked around with %2F.
    assert_eq!(fetch(b.port, "h", "/x%2F..%2Fadmin", "").status(), 403);
    assert_eq!(fetch(b.port, "h", "/y%2f..%2fadmin", "").status(), 403);
    // A backslash is no separator (Envoy's default): `\\..` is no dot segment.
    assert_eq!(fetch(b.port, "h", "/y%5c..%2fadmin", "").status(), 200);
    assert_eq!(fetch(b.port, "h", "/a%2Fb", "").status(), 200);
    let targets: Vec<String> = up.seen().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/y\\../admin", "/a/b"]);
}

#[test]
fn a_fragment_in_the_path_is_refused_and_a_trailing_host_dot_stripped() {
    let (b, up) = start_with(false, "          strip_trailing_host_dot: true\n");
    // Envoy's answer: 400, no body, the connection kept.
    let mut c = RawConn::connect(b.port);
    c.send(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 400);
    assert_eq!(r.body_str(), "");
    c.send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    assert_eq!(up.requests(), 1);
    assert_eq!(fetch(b.port, "example.com.", "/a", "").status(), 200);
    assert_eq!(fetch(b.port, "example.com.:81", "/a", "").status(), 200);
    let hosts: Vec<String> = up
        .seen()
        .iter()
        .map(|r| r.header("host").unwrap_or_default().to_string())
        .collect();
    assert_eq!(hosts, ["h", "example.com", "example.com:81"]);
}
