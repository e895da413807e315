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
    let up = Upstream::start("up");
    let mut yaml = config(
        free_port(),
        &single_vhost(ROUTES),
        &[cluster("svc", &[up.port()])],
    );
    if normalize {
        yaml = yaml.replacen(
            "          stat_prefix: ingress_http\n",
            "          stat_prefix: ingress_http\n          normalize_path: true\n          merge_slashes: true\n",
            1,
        );
    }
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
